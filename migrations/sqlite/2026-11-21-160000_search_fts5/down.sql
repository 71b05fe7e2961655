CREATE TABLE message_search_tags (
    message_id      BLOB   NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    tag             BLOB   NOT NULL CHECK (length(tag) = 16),
    workspace_id    BLOB   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    conversation_id BLOB   NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (message_id, tag)
);
CREATE INDEX message_search_tags_lookup_idx
    ON message_search_tags (workspace_id, tag, created_at DESC, message_id DESC);

WITH RECURSIVE split (message_id, workspace_id, conversation_id, created_at, tag, rest) AS (
    SELECT message_id, workspace_id, conversation_id, created_at, NULL, tags || ' '
    FROM message_search_docs
    WHERE message_id IN (SELECT id FROM messages)
    UNION ALL
    SELECT message_id, workspace_id, conversation_id, created_at,
           substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1)
    FROM split
    WHERE rest <> ''
)
INSERT INTO message_search_tags (message_id, tag, workspace_id, conversation_id, created_at)
SELECT message_id, unhex(tag), workspace_id, conversation_id, created_at FROM split WHERE tag IS NOT NULL;

DROP TRIGGER message_search_docs_delete;
DROP TRIGGER message_search_docs_insert;
DROP TABLE message_search;
DROP TABLE message_search_docs;
