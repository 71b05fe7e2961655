-- Files shared in conversations (docs/security.md, "Files"). The body is in the blob store
-- under `storage_key` (random hex, never a client path), sealed in chunks under a per-file key;
-- `wrapped_file_key` is that key wrapped by the workspace data key of `key_version`. The name is
-- sealed too (`name` = nonce ‖ ciphertext ‖ tag under data key `name_key_version`).
CREATE TABLE files (
    id               uuid        PRIMARY KEY,
    workspace_id     uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id  uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uploader_id      uuid        NOT NULL REFERENCES users (id),
    name             bytea       NOT NULL,
    name_key_version integer     NOT NULL,
    content_type     text        NOT NULL,
    size             bigint      NOT NULL CHECK (size >= 0),
    storage_key      text        NOT NULL UNIQUE,
    wrapped_file_key bytea       NOT NULL,
    key_version      integer     NOT NULL,
    created_at       timestamptz NOT NULL
);
CREATE INDEX files_conversation_idx ON files (conversation_id);
