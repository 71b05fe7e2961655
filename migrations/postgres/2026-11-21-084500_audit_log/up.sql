-- The audit log of security-relevant actions (docs/security.md). Rows are history: no
-- foreign keys, so an entry outlives the account, workspace or conversation it names.
-- `workspace_id` is NULL for account-level actions (logins); `target` holds `kind:id` pairs,
-- never content, tokens or passwords.
CREATE TABLE audit_log (
    id           uuid        PRIMARY KEY,
    workspace_id uuid,
    actor_id     uuid,
    action       text        NOT NULL,
    target       text,
    ip           text,
    at           timestamptz NOT NULL
);
-- A workspace's log, newest first, paged by (at, id).
CREATE INDEX audit_log_workspace_at_idx ON audit_log (workspace_id, at DESC, id DESC);
