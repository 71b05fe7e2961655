use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{
    AccessToken, Email, NewRefreshToken, NewUser, Password, PasswordHash, RefreshSecret, RotateOutcome, TokenDigest,
    User,
};
use crate::error::RepoError;
use crate::ids::UserId;

/// Why creating a user failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// The (normalised) e-mail is taken.
    #[error("email already registered")]
    DuplicateEmail,
    /// Storage failed.
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Accounts.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Inserts an account.
    ///
    /// # Errors
    /// [`CreateUserError::DuplicateEmail`] when the e-mail exists (enforced by a unique index,
    /// so two concurrent registrations cannot both succeed); `Repo` on storage failure.
    async fn create_user(&self, user: &NewUser) -> Result<User, CreateUserError>;

    /// The account and its password hash, by normalised e-mail.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, RepoError>;

    /// The account by id.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn find_user(&self, id: UserId) -> Result<Option<User>, RepoError>;
}

/// Refresh-token families.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new refresh token.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), RepoError>;

    /// Atomically spends `presented` and stores `replacement` (issued at `now`, expiring at
    /// `expires_at`) in the same family and for the same user. A token that
    /// was already spent revokes its whole family ([`RotateOutcome::Reused`]); one that is
    /// unknown, revoked or expired at `now` is [`RotateOutcome::Invalid`]. Of two concurrent
    /// rotations of one token, exactly one is `Rotated`.
    ///
    /// # Errors
    /// [`RepoError`] on storage failure.
    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RotateOutcome, RepoError>;
}

/// Password hashing (argon2id in production). Async because hashing is deliberately slow and
/// must not block the reactor.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    /// Hashes a password with a fresh salt.
    ///
    /// # Errors
    /// [`RepoError`]-style opaque failure when the hasher itself fails.
    async fn hash_password(&self, password: &Password) -> Result<PasswordHash, RepoError>;

    /// Whether `password` matches `hash`; `None` checks against a fixed dummy hash so that an
    /// unknown e-mail costs as much time as a wrong password.
    async fn verify_password(&self, password: &Password, hash: Option<PasswordHash>) -> bool;
}

/// Access and refresh tokens.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait TokenIssuer: Send + Sync {
    /// Signs an access token for `user` valid from `now`.
    ///
    /// # Errors
    /// [`RepoError`]-style opaque failure when signing fails.
    fn issue_access_token(&self, user: UserId, now: DateTime<Utc>) -> Result<AccessToken, RepoError>;

    /// Verifies signature, algorithm, `exp`, `iss` and `aud`; returns the subject.
    fn verify_access_token(&self, token: &str) -> Option<UserId>;

    /// A fresh random refresh token and its digest.
    ///
    /// # Errors
    /// Opaque failure when the random source fails.
    fn new_refresh_token(&self) -> Result<RefreshSecret, RepoError>;

    /// The digest of a presented refresh token.
    fn digest_refresh_token(&self, token: &str) -> TokenDigest;
}
