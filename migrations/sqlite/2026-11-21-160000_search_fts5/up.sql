-- The blind index on FTS5 (it was one row per message and tag): one document per message in
-- `message_search_docs`, its tags as lower-case hex words, and an FTS5 index over them that
-- triggers keep in step. A send writes one row, and FTS5 writes the terms of a whole batch as
-- one segment at COMMIT, where a row per tag made a dozen random B-tree inserts per message,
-- each a dirty page for the WAL (docs/benchmarks.md, round 4).
--
-- No foreign keys, as on PostgreSQL: the rows are derived; a message's go when it is deleted
-- or re-indexed, a workspace's with `shred-workspace`, and a search reads what it finds from
-- `messages` (a document without its message finds nothing).
CREATE TABLE message_search_docs (
    doc             INTEGER NOT NULL PRIMARY KEY,
    message_id      BLOB    NOT NULL UNIQUE,
    workspace_id    BLOB    NOT NULL,
    conversation_id BLOB    NOT NULL,
    created_at      BIGINT  NOT NULL,
    tags            TEXT    NOT NULL,
    tag_count       INTEGER NOT NULL
);
CREATE INDEX message_search_docs_workspace_idx ON message_search_docs (workspace_id);

-- detail=none: which documents hold a term, no positions (queries are ANDs of whole terms).
CREATE VIRTUAL TABLE message_search USING fts5(
    tags, content = 'message_search_docs', content_rowid = 'doc', detail = none, tokenize = 'ascii'
);
CREATE TRIGGER message_search_docs_insert AFTER INSERT ON message_search_docs BEGIN
    INSERT INTO message_search (rowid, tags) VALUES (new.doc, new.tags);
END;
CREATE TRIGGER message_search_docs_delete AFTER DELETE ON message_search_docs BEGIN
    INSERT INTO message_search (message_search, rowid, tags) VALUES ('delete', old.doc, old.tags);
END;

INSERT INTO message_search_docs (message_id, workspace_id, conversation_id, created_at, tags, tag_count)
SELECT message_id, workspace_id, conversation_id, created_at, group_concat(lower(hex(tag)), ' '), count(*)
FROM message_search_tags
GROUP BY message_id, workspace_id, conversation_id, created_at;

DROP TABLE message_search_tags;
