-- Files shared in conversations (docs/security.md, "Files"). The body is in the blob store
-- under `storage_key` (random hex, never a client path), sealed in chunks under a per-file key;
-- `wrapped_file_key` is that key wrapped by the workspace data key of `key_version`. The name is
-- sealed too (`name` = nonce ‖ ciphertext ‖ tag under data key `name_key_version`).
-- Ids are 16-byte UUIDs, `created_at` microseconds since the Unix epoch (UTC).
CREATE TABLE files (
    id               BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    workspace_id     BLOB    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id  BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    uploader_id      BLOB    NOT NULL REFERENCES users (id),
    name             BLOB    NOT NULL,
    name_key_version INTEGER NOT NULL,
    content_type     TEXT    NOT NULL,
    size             BIGINT  NOT NULL CHECK (size >= 0),
    storage_key      TEXT    NOT NULL UNIQUE,
    wrapped_file_key BLOB    NOT NULL,
    key_version      INTEGER NOT NULL,
    created_at       BIGINT  NOT NULL
);
CREATE INDEX files_conversation_idx ON files (conversation_id);
