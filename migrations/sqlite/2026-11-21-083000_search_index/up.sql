-- The search blind index: one row per (message, tag). A tag is a truncated HMAC of a
-- normalised token under the workspace's search key (see docs/security.md); no plaintext is
-- stored. `created_at` (microseconds) copies the message's, so a search is answered from
-- this table alone and pages newest first by (created_at, message_id).
CREATE TABLE message_search_tags (
    message_id      BLOB   NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tag             BLOB   NOT NULL CHECK (length(tag) = 16),
    workspace_id    BLOB   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id BLOB   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, tag)
);
-- Lookups: the rows of one tag in one workspace, newest first.
CREATE INDEX message_search_tags_lookup_idx
    ON message_search_tags (workspace_id, tag, created_at DESC, message_id DESC);
