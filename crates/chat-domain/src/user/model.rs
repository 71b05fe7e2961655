use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::DomainError;
use crate::ids::{SessionFamilyId, UserId};
use crate::text::{char_len, clean_single_line};

/// A registered account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Unique, stored lower-cased.
    pub email: Email,
    /// What other people see.
    pub display_name: DisplayName,
    /// Optional picture.
    pub avatar_url: Option<String>,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
}

/// An e-mail address, trimmed and lower-cased (uniqueness is case-insensitive).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The longest address accepted (RFC 5321's path limit).
    pub const MAX_LEN: usize = 254;

    /// Validates and normalises an address.
    ///
    /// # Errors
    /// [`DomainError::Validation`] when it is not `local@domain` or is too long.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim().to_lowercase();
        let valid = email.len() <= Self::MAX_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
                    && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid { Ok(Self(email)) } else { Err(DomainError::invalid("email", "must be a valid e-mail address")) }
    }

    /// Rebuilds a value that was validated before it was stored.
    #[must_use]
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }

    /// The address.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A display name: one line, 1 to 100 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted name, in characters.
    pub const MAX_CHARS: usize = 100;

    /// Validates a name (trimmed, control characters removed).
    ///
    /// # Errors
    /// [`DomainError::Validation`] when empty or too long.
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = clean_single_line(raw);
        if name.is_empty() {
            return Err(DomainError::invalid("displayName", "must not be empty"));
        }
        if char_len(&name) > Self::MAX_CHARS {
            return Err(DomainError::invalid("displayName", "must be at most 100 characters"));
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
}

/// A password in the clear, on its way to the hasher. `Debug` never shows it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Shortest accepted password.
    pub const MIN_CHARS: usize = 8;
    /// Longest accepted password (bounds hashing cost).
    pub const MAX_CHARS: usize = 1024;

    /// Checks length only: composition rules do more harm than good (NIST SP 800-63B).
    ///
    /// # Errors
    /// [`DomainError::Validation`] when shorter than 8 or longer than 1024 characters.
    pub fn parse(raw: String) -> Result<Self, DomainError> {
        let n = char_len(&raw);
        if n < Self::MIN_CHARS {
            return Err(DomainError::invalid("password", "must be at least 8 characters"));
        }
        if n > Self::MAX_CHARS {
            return Err(DomainError::invalid("password", "must be at most 1024 characters"));
        }
        Ok(Self(raw))
    }

    /// A presented password at login: no minimum (it simply will not match), but the maximum
    /// still bounds the hashing cost. `None` when too long.
    #[must_use]
    pub fn for_verification(raw: String) -> Option<Self> {
        (char_len(&raw) <= Self::MAX_CHARS).then_some(Self(raw))
    }

    /// The secret, for the hasher only.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A PHC-format password hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHash(pub String);

/// What the user store needs to create an account.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// Pre-minted id.
    pub id: UserId,
    /// Normalised address.
    pub email: Email,
    /// Name.
    pub display_name: DisplayName,
    /// Hash of the password.
    pub password_hash: PasswordHash,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A signed, short-lived access token.
#[derive(Clone)]
pub struct AccessToken {
    /// The compact JWT.
    pub token: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// The digest under which a refresh token is stored (the token itself never is).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub Vec<u8>);

/// A fresh refresh token: the secret for the client, the digest for the store.
#[derive(Clone)]
pub struct RefreshSecret {
    /// Opaque string handed to the client once.
    pub token: String,
    /// What the store keeps.
    pub digest: TokenDigest,
}

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(<redacted>)")
    }
}

/// A refresh token row to insert.
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    /// Digest of the secret.
    pub digest: TokenDigest,
    /// The login session it belongs to; rotation keeps the family, reuse revokes it.
    pub family: SessionFamilyId,
    /// Owner.
    pub user_id: UserId,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// Hard expiry.
    pub expires_at: DateTime<Utc>,
}

/// What happened when a refresh token was presented.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was current: it is now spent and the replacement is stored.
    Rotated {
        /// Whose session it is.
        user_id: UserId,
    },
    /// The token had already been spent: the whole family is now revoked.
    Reused,
    /// Unknown, expired or revoked.
    Invalid,
}

/// What a successful register, login or refresh hands back.
#[derive(Clone, Debug)]
pub struct AuthSession {
    /// The account.
    pub user: User,
    /// Short-lived bearer token.
    pub access: AccessToken,
    /// Long-lived, single-use refresh token.
    pub refresh: RefreshSecret,
}
