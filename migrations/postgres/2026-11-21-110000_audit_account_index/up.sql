-- Account-level entries (logins, refresh-token reuse: no workspace) are listed in the audit
-- log of every workspace their actor belongs to; this index finds them by actor.
CREATE INDEX audit_log_account_actor_idx ON audit_log (actor_id, at DESC, id DESC) WHERE workspace_id IS NULL;
