-- The blind index as one row per message (it was one row per message and tag): the message's
-- tags in an array under a GIN index. A send now writes one row, and GIN's pending list
-- (fastupdate) takes its tags in bulk; a row per tag made a dozen random B-tree inserts per
-- message, each with three foreign-key checks (docs/benchmarks.md, round 4).
--
-- No foreign keys: every check takes a KEY SHARE lock on a parent row that every batch of the
-- workspace shares. The rows are derived: a message's go when it is deleted or re-indexed
-- (`SearchIndex::delete_message_tags`, `replace_message_tags`), a workspace's with
-- `shred-workspace`, and a search reads the messages it finds from `messages` (a row without
-- its message finds nothing).
CREATE TABLE message_search (
    message_id      uuid        NOT NULL PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    conversation_id uuid        NOT NULL,
    created_at      timestamptz NOT NULL,
    tags            bytea[]     NOT NULL
);
-- Which messages carry every tag of a query (`tags @> $1`).
CREATE INDEX message_search_tags_idx ON message_search USING gin (tags);
-- A workspace's rows, newest first (shredding; searches whose tags are everywhere).
CREATE INDEX message_search_recent_idx ON message_search (workspace_id, created_at DESC, message_id DESC);

INSERT INTO message_search (message_id, workspace_id, conversation_id, created_at, tags)
SELECT message_id, workspace_id, conversation_id, created_at, array_agg(tag ORDER BY tag)
FROM message_search_tags
GROUP BY message_id, workspace_id, conversation_id, created_at;

DROP TABLE message_search_tags;
