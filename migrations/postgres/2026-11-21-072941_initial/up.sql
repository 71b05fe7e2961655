-- The whole schema of SecureRealTime Chat on Postgres. Kept in sync by hand with
-- crates/chat-postgres/src/schema.rs. Invariants live in constraints, so that concurrent
-- writers cannot break them: unique e-mails and slugs, one conversation per unique_key, gap-free
-- seqs (the counter row is locked by the insert), one message per (sender, clientMsgId).

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    display_name  text        NOT NULL,
    avatar_url    text,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email)
);

-- Refresh tokens are stored by digest only. A family is one login session: rotation keeps it,
-- reuse of a spent token revokes all of it.
CREATE TABLE refresh_tokens (
    digest     bytea       PRIMARY KEY,
    family_id  uuid        NOT NULL,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);

CREATE TABLE workspaces (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    slug       text        NOT NULL,
    created_by uuid        NOT NULL REFERENCES users (id),
    created_at timestamptz NOT NULL,
    CONSTRAINT workspaces_slug_key UNIQUE (slug)
);

-- `ordinal` only breaks ties between members who joined at the same instant (insertion order).
CREATE TABLE workspace_members (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         text        NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    joined_at    timestamptz NOT NULL,
    ordinal      bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_id_idx ON workspace_members (user_id);

-- Wrapped (master-key-encrypted) per-workspace data keys, by version.
CREATE TABLE workspace_keys (
    workspace_id uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    version      integer     NOT NULL CHECK (version > 0),
    wrapped      bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, version)
);

CREATE TABLE conversations (
    id               uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind             text        NOT NULL CHECK (kind IN ('DM', 'GROUP', 'CHANNEL', 'DOCUMENT')),
    name             text,
    description      text,
    icon             text,
    document_id      text,
    -- `dm:<a>:<b>:<e2e>` or `doc:<documentId>`: makes DMs and document chats get-or-create.
    unique_key       text,
    is_encrypted     boolean     NOT NULL DEFAULT false,
    max_participants integer     NOT NULL CHECK (max_participants > 0),
    created_by       uuid        NOT NULL REFERENCES users (id),
    -- The seq counter: the highest seq assigned so far.
    last_seq         bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    archived_at      timestamptz,
    -- Also serves lookups by workspace_id (its leading column).
    CONSTRAINT conversations_workspace_id_unique_key_key UNIQUE (workspace_id, unique_key)
);

CREATE TABLE conversation_members (
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            text        NOT NULL CHECK (role IN ('admin', 'moderator', 'member')),
    joined_at       timestamptz NOT NULL,
    last_read_seq   bigint      NOT NULL DEFAULT 0,
    last_read_at    timestamptz,
    is_muted        boolean     NOT NULL DEFAULT false,
    ordinal         bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user_id_idx ON conversation_members (user_id);

-- Content is sealed (nonce ‖ ciphertext ‖ tag) under workspace key `key_version`; a deleted
-- message keeps its row and seq with content and key_version NULL.
CREATE TABLE messages (
    id              uuid        PRIMARY KEY,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL CHECK (seq > 0),
    sender_id       uuid        NOT NULL REFERENCES users (id),
    client_msg_id   text,
    kind            text        NOT NULL CHECK (kind IN ('text', 'image', 'file', 'system')),
    content         bytea,
    key_version     integer,
    reply_to_id     uuid        REFERENCES messages (id) ON DELETE CASCADE,
    reply_count     bigint      NOT NULL DEFAULT 0,
    edited_at       timestamptz,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL,
    CONSTRAINT messages_conversation_id_seq_key UNIQUE (conversation_id, seq),
    CONSTRAINT messages_conversation_id_sender_id_client_msg_id_key
        UNIQUE (conversation_id, sender_id, client_msg_id),
    CONSTRAINT messages_content_has_key_version CHECK ((content IS NULL) = (key_version IS NULL))
);
CREATE INDEX messages_reply_to_id_seq_idx ON messages (reply_to_id, seq) WHERE reply_to_id IS NOT NULL;

-- `ordinal` breaks ties between reactions made at the same instant (insertion order).
CREATE TABLE message_reactions (
    message_id uuid        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      text        NOT NULL,
    created_at timestamptz NOT NULL,
    ordinal    bigint      GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (message_id, user_id, emoji)
);

CREATE TABLE presence (
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    status       text        NOT NULL CHECK (status IN ('online', 'away', 'busy', 'offline')),
    last_seen    timestamptz NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);
CREATE INDEX presence_workspace_id_idx ON presence (workspace_id);
