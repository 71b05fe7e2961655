-- The audit log of security-relevant actions (docs/security.md). Rows are history: no
-- foreign keys, so an entry outlives the account, workspace or conversation it names.
-- `workspace_id` is NULL for account-level actions (logins); `target` holds `kind:id` pairs,
-- never content, tokens or passwords. Ids are 16-byte UUIDs (v7), `at` is microseconds since
-- the Unix epoch (UTC).
CREATE TABLE audit_log (
    id           BLOB   NOT NULL PRIMARY KEY CHECK (length(id) = 16),
    workspace_id BLOB   CHECK (workspace_id IS NULL OR length(workspace_id) = 16),
    actor_id     BLOB   CHECK (actor_id IS NULL OR length(actor_id) = 16),
    action       TEXT   NOT NULL,
    target       TEXT,
    ip           TEXT,
    at           BIGINT NOT NULL
);
-- A workspace's log, newest first, paged by (at, id).
CREATE INDEX audit_log_workspace_at_idx ON audit_log (workspace_id, at DESC, id DESC);
