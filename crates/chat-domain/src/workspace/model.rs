use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::ids::{UserId, WorkspaceId};
use crate::text::{char_len, clean_single_line};
use crate::user::User;

/// A tenant: every conversation, file and presence record lives in exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    /// Its id.
    pub id: WorkspaceId,
    /// Display name.
    pub name: Name,
    /// URL-safe unique handle derived from the name.
    pub slug: String,
    /// Who made it (its first owner).
    pub created_by: UserId,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A name of a workspace or conversation: one line, 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name for `field`.
    ///
    /// # Errors
    /// [`DomainError::Validation`] when empty or longer than 100 characters.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, DomainError> {
        let name = clean_single_line(raw);
        if name.is_empty() {
            return Err(DomainError::invalid(field, "must not be empty"));
        }
        if char_len(&name) > Self::MAX_CHARS {
            return Err(DomainError::invalid(field, "must be at most 100 characters"));
        }
        Ok(Self(name))
    }

    /// Rebuilds a stored value.
    #[must_use]
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A lower-case ASCII slug of the name (`"Acme Corp!"` → `"acme-corp"`), never empty.
    #[must_use]
    pub fn slug(&self) -> String {
        let mut slug = String::new();
        for c in self.0.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_alphanumeric() {
                slug.push(c);
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        // Cut first, then trim: a cut can land right after a separator.
        let slug: String = slug.chars().take(48).collect();
        let slug = slug.trim_end_matches('-');
        if slug.is_empty() { "workspace".to_owned() } else { slug.to_owned() }
    }
}

/// A member's standing in a workspace, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkspaceRole {
    /// Created it; cannot be removed.
    Owner,
    /// Manages members.
    Admin,
    /// Ordinary member: sees channels and document chats.
    Member,
    /// Sees only the conversations they are added to.
    Guest,
}

impl WorkspaceRole {
    /// Numeric strength: higher may manage lower.
    #[must_use]
    pub const fn rank(self) -> u8 {
        match self {
            Self::Owner => 3,
            Self::Admin => 2,
            Self::Member => 1,
            Self::Guest => 0,
        }
    }

    /// Owners and admins manage the workspace's membership.
    #[must_use]
    pub const fn manages_members(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
    }

    /// The wire and storage spelling.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Guest => "guest",
        }
    }

    /// Parses the wire spelling (case-insensitive).
    ///
    /// # Errors
    /// [`DomainError::Validation`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        match raw.to_ascii_lowercase().as_str() {
            "owner" => Ok(Self::Owner),
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            "guest" => Ok(Self::Guest),
            _ => Err(DomainError::invalid("role", "must be one of owner, admin, member, guest")),
        }
    }
}

/// A user's membership of a workspace, with the user's public profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceMember {
    /// The workspace.
    pub workspace_id: WorkspaceId,
    /// The member.
    pub user: User,
    /// Their role.
    pub role: WorkspaceRole,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// A workspace as seen by one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceView {
    /// The workspace.
    pub workspace: Workspace,
    /// The caller's role in it.
    pub role: WorkspaceRole,
}
