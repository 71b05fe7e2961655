//! [`UserRepository`] and [`SessionRepository`]: accounts and rotating refresh tokens.

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::UserId;
use chat_domain::user::{
    CreateUserError, Email, NewRefreshToken, NewUser, PasswordHash, RotateOutcome, SessionRepository, TokenDigest,
    User, UserRepository,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::rows::{NewRefreshTokenRow, RefreshTokenState, UserRow, key, micros, uuid};
use crate::schema::{refresh_tokens, users};
use crate::store::{SqliteStore, unique_violation};

#[async_trait]
impl UserRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user = %user.id))]
    async fn create_user(&self, user: &NewUser) -> Result<User, CreateUserError> {
        let row = UserRow {
            id: key(user.id.as_uuid()),
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
            avatar_url: None,
            password_hash: user.password_hash.0.clone(),
            created_at: micros(user.created_at),
        };
        self.run("inserting a user", move |c| match diesel::insert_into(users::table).values(&row).execute(c) {
            Ok(_) => row.into_user().map(Ok),
            Err(e) if unique_violation(&e, "users.email") => Ok(Err(CreateUserError::DuplicateEmail)),
            Err(e) => Err(e),
        })
        .await?
    }

    #[tracing::instrument(skip_all)]
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, RepoError> {
        let email = email.as_str().to_owned();
        self.run("finding a user by e-mail", move |c| {
            let row =
                users::table.filter(users::email.eq(email)).select(UserRow::as_select()).get_result(c).optional()?;
            row.map(|mut row| {
                let hash = PasswordHash(std::mem::take(&mut row.password_hash));
                Ok((row.into_user()?, hash))
            })
            .transpose()
        })
        .await
    }

    #[tracing::instrument(skip_all, fields(user = %id))]
    async fn find_user(&self, id: UserId) -> Result<Option<User>, RepoError> {
        self.run("finding a user", move |c| {
            let row = users::table.find(key(id.as_uuid())).select(UserRow::as_select()).get_result(c).optional()?;
            row.map(UserRow::into_user).transpose()
        })
        .await
    }
}

#[async_trait]
impl SessionRepository for SqliteStore {
    #[tracing::instrument(skip_all, fields(user = %token.user_id, family = %token.family))]
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), RepoError> {
        let row = NewRefreshTokenRow {
            digest: token.digest.0.clone(),
            family_id: key(token.family.as_uuid()),
            user_id: key(token.user_id.as_uuid()),
            issued_at: micros(token.issued_at),
            expires_at: micros(token.expires_at),
        };
        self.run("inserting a refresh token", move |c| {
            diesel::insert_into(refresh_tokens::table).values(&row).execute(c).map(drop)
        })
        .await
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RotateOutcome, RepoError> {
        let (presented, replacement) = (presented.0.clone(), replacement.0.clone());
        let (now, expires_at) = (micros(now), micros(expires_at));
        self.run("rotating a refresh token", move |c| {
            // One immediate transaction: of two concurrent rotations of one token, the second
            // waits for the first to commit and then finds the token spent.
            c.immediate_transaction(|c| {
                let state = refresh_tokens::table
                    .find(&presented)
                    .select(RefreshTokenState::as_select())
                    .get_result(c)
                    .optional()?;
                let Some(state) = state else { return Ok(RotateOutcome::Invalid) };
                if state.used_at.is_some() {
                    // A spent token came back: whoever holds it, the session is compromised.
                    diesel::update(
                        refresh_tokens::table
                            .filter(refresh_tokens::family_id.eq(&state.family_id))
                            .filter(refresh_tokens::revoked_at.is_null()),
                    )
                    .set(refresh_tokens::revoked_at.eq(now))
                    .execute(c)?;
                    return Ok(RotateOutcome::Reused);
                }
                if state.revoked_at.is_some() || state.expires_at <= now {
                    return Ok(RotateOutcome::Invalid);
                }
                diesel::update(refresh_tokens::table.find(&presented))
                    .set(refresh_tokens::used_at.eq(now))
                    .execute(c)?;
                diesel::insert_into(refresh_tokens::table)
                    .values(NewRefreshTokenRow {
                        digest: replacement,
                        family_id: state.family_id,
                        user_id: state.user_id.clone(),
                        issued_at: now,
                        expires_at,
                    })
                    .execute(c)?;
                Ok(RotateOutcome::Rotated { user_id: UserId::from_uuid(uuid(&state.user_id)?) })
            })
        })
        .await
    }
}
