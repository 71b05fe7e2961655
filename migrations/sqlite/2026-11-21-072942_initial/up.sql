-- Initial schema of the embedded store (same logical schema as migrations/postgres).
--
-- Representation: every id is a 16-byte BLOB (the UUID's bytes); every instant is a BIGINT
-- count of microseconds since the Unix epoch (UTC), which round-trips chrono's
-- DateTime<Utc> at the precision both stores keep. Message content is the opaque sealed
-- bytes handed over by the domain (nonce ‖ ciphertext ‖ tag): no column, index or virtual
-- table ever holds message plaintext.

CREATE TABLE users (
    id            BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    email         TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    avatar_url    TEXT,
    password_hash TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL
);

CREATE TABLE refresh_tokens (
    digest     BLOB   NOT NULL PRIMARY KEY,
    family_id  BLOB   NOT NULL CHECK (length(family_id) = 16),
    user_id    BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE workspaces (
    id         BLOB   NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    name       TEXT   NOT NULL,
    slug       TEXT   NOT NULL UNIQUE,
    created_by BLOB   NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL
);

CREATE TABLE workspace_members (
    workspace_id BLOB   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    user_id      BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role         TEXT   NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    joined_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE INDEX workspace_members_user_idx ON workspace_members (user_id);

CREATE TABLE workspace_keys (
    workspace_id BLOB    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    version      INTEGER NOT NULL CHECK (version > 0),
    wrapped      BLOB    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, version)
);

CREATE TABLE conversations (
    id               BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    workspace_id     BLOB    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    kind             TEXT    NOT NULL CHECK (kind IN ('DM', 'GROUP', 'CHANNEL', 'DOCUMENT')),
    name             TEXT,
    description      TEXT,
    icon             TEXT,
    document_id      TEXT,
    unique_key       TEXT,
    is_encrypted     BOOLEAN NOT NULL DEFAULT 0,
    max_participants BIGINT  NOT NULL CHECK (max_participants > 0),
    created_by       BLOB    NOT NULL REFERENCES users (id),
    last_seq         BIGINT  NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    archived_at      BIGINT,
    UNIQUE (workspace_id, unique_key)
);

CREATE TABLE conversation_members (
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         BLOB    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'moderator', 'member')),
    joined_at       BIGINT  NOT NULL,
    last_read_seq   BIGINT  NOT NULL DEFAULT 0,
    last_read_at    BIGINT,
    is_muted        BOOLEAN NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user_idx ON conversation_members (user_id);

CREATE TABLE messages (
    id              BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    conversation_id BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    seq             BIGINT  NOT NULL CHECK (seq > 0),
    sender_id       BLOB    NOT NULL REFERENCES users (id),
    client_msg_id   TEXT,
    kind            TEXT    NOT NULL CHECK (kind IN ('text', 'image', 'file', 'system')),
    -- Sealed bytes; NULL (with key_version) once deleted.
    content         BLOB,
    key_version     INTEGER,
    reply_to_id     BLOB    REFERENCES messages (id) ON DELETE CASCADE,
    reply_count     BIGINT  NOT NULL DEFAULT 0,
    edited_at       BIGINT,
    deleted_at      BIGINT,
    created_at      BIGINT  NOT NULL,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id),
    CHECK ((content IS NULL) = (key_version IS NULL))
);
CREATE INDEX messages_thread_idx ON messages (reply_to_id, seq) WHERE reply_to_id IS NOT NULL;

CREATE TABLE message_reactions (
    message_id BLOB   NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id, emoji)
);

CREATE TABLE presence (
    user_id      BLOB   NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id BLOB   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    status       TEXT   NOT NULL CHECK (status IN ('online', 'away', 'busy', 'offline')),
    last_seen    BIGINT NOT NULL,
    PRIMARY KEY (user_id, workspace_id)
);
CREATE INDEX presence_workspace_idx ON presence (workspace_id);
