CREATE TABLE message_search_tags (
    message_id      uuid        NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tag             bytea       NOT NULL CHECK (octet_length(tag) = 16),
    workspace_id    uuid        NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id uuid        NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (message_id, tag)
);
CREATE INDEX message_search_tags_lookup_idx
    ON message_search_tags (workspace_id, tag, created_at DESC, message_id DESC);

INSERT INTO message_search_tags (message_id, tag, workspace_id, conversation_id, created_at)
SELECT s.message_id, t.tag, s.workspace_id, s.conversation_id, s.created_at
FROM message_search AS s, unnest(s.tags) AS t(tag)
WHERE EXISTS (SELECT 1 FROM messages AS m WHERE m.id = s.message_id);

DROP TABLE message_search;
