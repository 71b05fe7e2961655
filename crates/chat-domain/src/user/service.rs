use std::sync::Arc;

use chrono::Duration;

use super::model::{AuthSession, DisplayName, Email, NewRefreshToken, NewUser, Password, RotateOutcome, User};
use super::ports::{CreateUserError, PasswordHasher, SessionRepository, TokenIssuer, UserRepository};
use crate::audit::{AuditAction, Auditor};
use crate::clock::Clock;
use crate::error::{DomainError, DomainResult};
use crate::ids::{SessionFamilyId, UserId};

/// Registration, login, token refresh and bearer-token authentication.
#[derive(Clone)]
pub struct AuthService {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn TokenIssuer>,
    clock: Arc<dyn Clock>,
    refresh_ttl: Duration,
    audit: Auditor,
}

impl std::fmt::Debug for AuthService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthService").finish_non_exhaustive()
    }
}

impl AuthService {
    /// Wires the service to its ports. Refresh tokens live for `refresh_ttl`.
    #[must_use]
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionRepository>,
        hasher: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn TokenIssuer>,
        clock: Arc<dyn Clock>,
        refresh_ttl: Duration,
        audit: Auditor,
    ) -> Self {
        Self { users, sessions, hasher, tokens, clock, refresh_ttl, audit }
    }

    /// Creates an account and signs it in.
    ///
    /// # Errors
    /// `Validation` for a bad e-mail, name or password; `Conflict` when the e-mail is taken.
    #[tracing::instrument(skip_all)]
    pub async fn register(&self, email: &str, password: String, display_name: &str) -> DomainResult<AuthSession> {
        let email = Email::parse(email)?;
        let display_name = DisplayName::parse(display_name)?;
        let password = Password::parse(password)?;
        let password_hash = self.hasher.hash_password(&password).await?;
        let new = NewUser { id: UserId::generate(), email, display_name, password_hash, created_at: self.clock.now() };
        let user = match self.users.create_user(&new).await {
            Ok(user) => user,
            Err(CreateUserError::DuplicateEmail) => return Err(DomainError::Conflict("email already registered")),
            Err(CreateUserError::Repo(e)) => return Err(e.into()),
        };
        tracing::info!(user_id = %user.id, "user registered");
        self.start_session(user, SessionFamilyId::generate()).await
    }

    /// Checks credentials and signs in. A wrong password and an unknown e-mail are the same
    /// `Unauthorized`, and cost the same time.
    ///
    /// # Errors
    /// `Unauthorized` on bad credentials.
    #[tracing::instrument(skip_all)]
    pub async fn login(&self, email: &str, password: String) -> DomainResult<AuthSession> {
        let (Ok(email), Some(password)) = (Email::parse(email), Password::for_verification(password)) else {
            self.audit.record(None, None, AuditAction::LoginFailed, None).await;
            return Err(DomainError::Unauthorized);
        };
        let found = self.users.find_user_by_email(&email).await?;
        let ok = self.hasher.verify_password(&password, found.as_ref().map(|(_, h)| h.clone())).await;
        match found {
            Some((user, _)) if ok => {
                tracing::info!(user_id = %user.id, "login succeeded");
                let id = user.id;
                let session = self.start_session(user, SessionFamilyId::generate()).await?;
                self.audit.record(None, Some(id), AuditAction::LoginSucceeded, None).await;
                Ok(session)
            }
            found => {
                tracing::info!("login failed");
                // The account when the e-mail exists; never the e-mail or the password typed.
                self.audit.record(None, found.map(|(user, _)| user.id), AuditAction::LoginFailed, None).await;
                Err(DomainError::Unauthorized)
            }
        }
    }

    /// Exchanges a refresh token for a new pair. The presented token is spent; presenting a
    /// spent token again revokes every token of its family.
    ///
    /// # Errors
    /// `Unauthorized` for an unknown, expired, revoked or reused token.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(&self, presented: &str) -> DomainResult<AuthSession> {
        let now = self.clock.now();
        let digest = self.tokens.digest_refresh_token(presented);
        let replacement = self.tokens.new_refresh_token()?;
        match self.sessions.rotate_refresh_token(&digest, &replacement.digest, now, now + self.refresh_ttl).await? {
            RotateOutcome::Rotated { user_id } => {
                let user = self.users.find_user(user_id).await?.ok_or(DomainError::Unauthorized)?;
                let access = self.tokens.issue_access_token(user.id, now)?;
                Ok(AuthSession { user, access, refresh: replacement })
            }
            RotateOutcome::Reused => {
                tracing::warn!("refresh token reuse detected; session family revoked");
                self.audit.record(None, None, AuditAction::RefreshTokenReused, None).await;
                Err(DomainError::Unauthorized)
            }
            RotateOutcome::Invalid => Err(DomainError::Unauthorized),
        }
    }

    /// Resolves a bearer token to its user id.
    ///
    /// # Errors
    /// `Unauthorized` when the token does not verify.
    pub fn authenticate(&self, bearer: &str) -> DomainResult<UserId> {
        self.tokens.verify_access_token(bearer).ok_or(DomainError::Unauthorized)
    }

    /// The caller's account.
    ///
    /// # Errors
    /// `Unauthorized` when the account no longer exists.
    pub async fn me(&self, user: UserId) -> DomainResult<User> {
        self.users.find_user(user).await?.ok_or(DomainError::Unauthorized)
    }

    async fn start_session(&self, user: User, family: SessionFamilyId) -> DomainResult<AuthSession> {
        let now = self.clock.now();
        let refresh = self.tokens.new_refresh_token()?;
        self.sessions
            .insert_refresh_token(&NewRefreshToken {
                digest: refresh.digest.clone(),
                family,
                user_id: user.id,
                issued_at: now,
                expires_at: now + self.refresh_ttl,
            })
            .await?;
        let access = self.tokens.issue_access_token(user.id, now)?;
        Ok(AuthSession { user, access, refresh })
    }
}
