//! The audit log: security-relevant actions — logins, membership and role changes, moderator
//! deletions, archiving, key rotation, refused file access — recorded as [`AuditEntry`] rows
//! through the [`AuditLog`] port, and read back by workspace owners and admins through
//! [`AuditService::list`].
//!
//! **Who records.** The services, right after the action committed, through an [`Auditor`]
//! (which stamps the id and the time). An entry that cannot be written does not undo the
//! action: the failure is logged under the `audit` target with the whole entry, so the record
//! survives in the logs. Every entry is also logged at `info` under that target.
//!
//! **From where.** Services do not know the client's address. The [`AuditLog`] adapter that
//! the composition root installs may fill [`AuditEntry::ip`] from its own context (chat-http
//! keeps the client IP of the request or socket being served in a task-local and wraps the
//! store's audit log with a decorator that reads it), so no service signature carries it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::access::Access;
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult, RepoError};
use crate::ids::{UserId, WorkspaceId};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditAction {
    /// A password login succeeded (`actor` signed in).
    LoginSucceeded,
    /// A password login failed (`actor` is the account when the e-mail exists).
    LoginFailed,
    /// A spent refresh token was presented again; its session family was revoked.
    RefreshTokenReused,
    /// `target` (a user id) joined the workspace (`role=…` appended to the target).
    WorkspaceMemberAdded,
    /// `target` left or was removed from the workspace.
    WorkspaceMemberRemoved,
    /// `target` was added to a conversation.
    ConversationMemberAdded,
    /// `target` left or was removed from a conversation.
    ConversationMemberRemoved,
    /// `target`'s conversation role changed.
    ConversationRoleChanged,
    /// A moderator or admin deleted someone else's message.
    MessageDeletedByModerator,
    /// A conversation was archived.
    ConversationArchived,
    /// A workspace data key was rotated.
    KeyRotated,
    /// A file download was refused.
    FileAccessDenied,
    /// A workspace's data keys were destroyed (crypto-shredding): its content is unreadable.
    WorkspaceShredded,
}

impl AuditAction {
    /// Every action, for parsers and tests.
    pub const ALL: [Self; 13] = [
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::RefreshTokenReused,
        Self::WorkspaceMemberAdded,
        Self::WorkspaceMemberRemoved,
        Self::ConversationMemberAdded,
        Self::ConversationMemberRemoved,
        Self::ConversationRoleChanged,
        Self::MessageDeletedByModerator,
        Self::ConversationArchived,
        Self::KeyRotated,
        Self::FileAccessDenied,
        Self::WorkspaceShredded,
    ];

    /// The wire and storage spelling (`snake_case`, stable).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::WorkspaceMemberAdded => "workspace_member_added",
            Self::WorkspaceMemberRemoved => "workspace_member_removed",
            Self::ConversationMemberAdded => "conversation_member_added",
            Self::ConversationMemberRemoved => "conversation_member_removed",
            Self::ConversationRoleChanged => "conversation_role_changed",
            Self::MessageDeletedByModerator => "message_deleted_by_moderator",
            Self::ConversationArchived => "conversation_archived",
            Self::KeyRotated => "key_rotated",
            Self::FileAccessDenied => "file_access_denied",
            Self::WorkspaceShredded => "workspace_shredded",
        }
    }

    /// Parses [`Self::as_str`]'s spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Time-ordered id (UUID v7).
    pub id: Uuid,
    /// The workspace it happened in; `None` for account-level actions (logins).
    pub workspace_id: Option<WorkspaceId>,
    /// Who did it (`None` when unknown, e.g. a failed login for an unknown e-mail).
    pub actor: Option<UserId>,
    /// What happened.
    pub action: AuditAction,
    /// What it happened to, as `kind:id` pairs (`user:…`, `conversation:…`, `message:…`,
    /// `role:…`), space-separated; never message content, tokens or passwords.
    pub target: Option<String>,
    /// The client's IP address, when the adapter knows it.
    pub ip: Option<String>,
    /// When (microsecond precision, as both stores keep it).
    pub at: DateTime<Utc>,
}

/// A position in a workspace's audit log, newest first: entries strictly older than
/// (`at`, `id`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditCursor {
    /// The last seen entry's time.
    pub at: DateTime<Utc>,
    /// The last seen entry's id (breaks ties in time).
    pub id: Uuid,
}

impl AuditCursor {
    /// The cursor after `entry`.
    #[must_use]
    pub fn after(entry: &AuditEntry) -> Self {
        Self { at: entry.at, id: entry.id }
    }

    /// The opaque wire form, `<unix micros>_<uuid>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}_{}", self.at.timestamp_micros(), self.id.simple())
    }

    /// Parses [`Self::encode`]'s form.
    ///
    /// # Errors
    /// `Validation` on anything else.
    pub fn parse(s: &str) -> DomainResult<Self> {
        let invalid = || DomainError::invalid("before", "not a cursor from nextCursor");
        let (micros, id) = s.split_once('_').ok_or_else(invalid)?;
        let at = micros.parse::<i64>().ok().and_then(DateTime::from_timestamp_micros).ok_or_else(invalid)?;
        let id = Uuid::parse_str(id).map_err(|_| invalid())?;
        Ok(Self { at, id })
    }
}

/// Where audit entries are kept.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one entry.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn record(&self, entry: AuditEntry) -> Result<(), RepoError>;

    /// The workspace's entries and the account-level entries (no workspace) of its current
    /// members, newest first (by `at`, then `id`), strictly older than `before` when given, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn list_audit(
        &self,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepoError>;
}

/// Stamps and records entries on behalf of the services.
#[derive(Clone)]
pub struct Auditor {
    log: Arc<dyn AuditLog>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Auditor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auditor").finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor writing to `log`, stamping times from `clock`.
    #[must_use]
    pub fn new(log: Arc<dyn AuditLog>, clock: Arc<dyn Clock>) -> Self {
        Self { log, clock }
    }

    /// Records `action` (after the action itself succeeded). Never fails the caller: a storage
    /// failure is logged with the whole entry.
    pub async fn record(
        &self,
        workspace_id: Option<WorkspaceId>,
        actor: Option<UserId>,
        action: AuditAction,
        target: Option<String>,
    ) {
        let entry =
            AuditEntry { id: Uuid::now_v7(), workspace_id, actor, action, target, ip: None, at: self.clock.now() };
        let (workspace, actor) = (fmt_opt(entry.workspace_id), fmt_opt(entry.actor));
        let target = entry.target.clone().unwrap_or_default();
        tracing::info!(target: "audit", %action, %workspace, %actor, %target, "audit");
        if let Err(error) = self.log.record(entry).await {
            tracing::error!(target: "audit", %action, %workspace, %actor, %target, error = %error, "audit entry not stored");
        }
    }
}

fn fmt_opt<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(String::new, |v| v.to_string())
}

/// Default page size of [`AuditService::list`].
pub const DEFAULT_AUDIT_PAGE: u32 = 50;
/// Largest page size of [`AuditService::list`].
pub const MAX_AUDIT_PAGE: u32 = 100;

/// A page of entries and the cursor of the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntry>,
    /// Pass as `before` for the next page; `None` on the last.
    pub next_cursor: Option<AuditCursor>,
}

/// Reads the audit log.
#[derive(Clone)]
pub struct AuditService {
    access: Access,
    log: Arc<dyn AuditLog>,
}

impl fmt::Debug for AuditService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditService").finish_non_exhaustive()
    }
}

impl AuditService {
    /// The service over `log`, guarded by `access`.
    #[must_use]
    pub fn new(access: Access, log: Arc<dyn AuditLog>) -> Self {
        Self { access, log }
    }

    /// The workspace's audit log, newest first: `limit` entries (default 50, capped at 100)
    /// older than `before`. Account-level entries (logins, refresh-token reuse) belong to no
    /// workspace; they are listed in the log of every workspace their actor is a member of.
    ///
    /// # Errors
    /// `NotFound` when the caller is not in the workspace; `Forbidden` for members and guests
    /// (owners and admins only).
    #[tracing::instrument(skip(self), fields(caller = %caller, workspace = %workspace))]
    pub async fn list(
        &self,
        caller: UserId,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: Option<u32>,
    ) -> DomainResult<AuditPage> {
        let role = self.access.workspace_role(caller, workspace).await?;
        if !role.manages_members() {
            return Err(DomainError::Forbidden("only workspace owners and admins read the audit log"));
        }
        let limit = limit.unwrap_or(DEFAULT_AUDIT_PAGE).clamp(1, MAX_AUDIT_PAGE);
        let mut items = self.log.list_audit(workspace, before, limit + 1).await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(AuditCursor::after)
        } else {
            None
        };
        Ok(AuditPage { items, next_cursor })
    }
}

#[cfg(test)]
mod tests;
