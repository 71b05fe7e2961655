//! Accounts and refresh-token families.

use async_trait::async_trait;
use chat_domain::error::RepoError;
use chat_domain::ids::UserId;
use chat_domain::user::{
    CreateUserError, DisplayName, Email, NewRefreshToken, NewUser, PasswordHash, RotateOutcome, SessionRepository,
    TokenDigest, User, UserRepository,
};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use crate::schema::{refresh_tokens, users};
use crate::{PgStore, is_unique_violation, repo};

/// A `users` row.
#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub(crate) struct UserRow {
    pub(crate) id: Uuid,
    pub(crate) email: String,
    pub(crate) display_name: String,
    pub(crate) avatar_url: Option<String>,
    pub(crate) password_hash: String,
    pub(crate) created_at: DateTime<Utc>,
}

impl UserRow {
    /// The public profile (without the hash).
    pub(crate) fn into_user(self) -> User {
        User {
            id: UserId::from_uuid(self.id),
            email: Email::from_trusted(self.email),
            display_name: DisplayName::from_trusted(self.display_name),
            avatar_url: self.avatar_url,
            created_at: self.created_at,
        }
    }
}

/// The columns of a refresh token that rotation looks at.
#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::pg::Pg))]
struct TokenState {
    family_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

#[async_trait]
impl UserRepository for PgStore {
    #[tracing::instrument(skip_all, fields(user = %user.id))]
    async fn create_user(&self, user: &NewUser) -> Result<User, CreateUserError> {
        let mut conn = self.conn().await?;
        let row = UserRow {
            id: user.id.as_uuid(),
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.as_str().to_owned(),
            avatar_url: None,
            password_hash: user.password_hash.0.clone(),
            created_at: user.created_at,
        };
        let inserted = diesel::insert_into(users::table)
            .values(&row)
            .returning(UserRow::as_returning())
            .get_result(&mut conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e, "users_email_key") {
                    CreateUserError::DuplicateEmail
                } else {
                    CreateUserError::Repo(RepoError::new("inserting a user", e))
                }
            })?;
        Ok(inserted.into_user())
    }

    #[tracing::instrument(skip_all)]
    async fn find_user_by_email(&self, email: &Email) -> Result<Option<(User, PasswordHash)>, RepoError> {
        let mut conn = self.conn().await?;
        let row = users::table
            .filter(users::email.eq(email.as_str()))
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a user by e-mail"))?;
        Ok(row.map(|row| {
            let hash = PasswordHash(row.password_hash.clone());
            (row.into_user(), hash)
        }))
    }

    #[tracing::instrument(skip_all, fields(user = %id))]
    async fn find_user(&self, id: UserId) -> Result<Option<User>, RepoError> {
        let mut conn = self.conn().await?;
        let row = users::table
            .find(id.as_uuid())
            .select(UserRow::as_select())
            .first(&mut conn)
            .await
            .optional()
            .map_err(repo("finding a user"))?;
        Ok(row.map(UserRow::into_user))
    }
}

#[async_trait]
impl SessionRepository for PgStore {
    #[tracing::instrument(skip_all, fields(user = %token.user_id, family = %token.family))]
    async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<(), RepoError> {
        let mut conn = self.conn().await?;
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::digest.eq(&token.digest.0),
                refresh_tokens::family_id.eq(token.family.as_uuid()),
                refresh_tokens::user_id.eq(token.user_id.as_uuid()),
                refresh_tokens::issued_at.eq(token.issued_at),
                refresh_tokens::expires_at.eq(token.expires_at),
            ))
            .execute(&mut conn)
            .await
            .map_err(repo("inserting a refresh token"))?;
        Ok(())
    }

    #[tracing::instrument(skip_all)]
    async fn rotate_refresh_token(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RotateOutcome, RepoError> {
        let mut conn = self.conn().await?;
        // One transaction: the row lock serialises concurrent presentations of one token, so
        // the first spends it and every later one sees it spent. A reuse revokes the family and
        // commits that revocation.
        let outcome = (*conn)
            .transaction::<_, DieselError, _>(async |conn: &mut AsyncPgConnection| {
                let state = refresh_tokens::table
                    .find(&presented.0)
                    .select(TokenState::as_select())
                    .for_update()
                    .first(conn)
                    .await
                    .optional()?;
                let Some(state) = state else { return Ok(RotateOutcome::Invalid) };
                if state.revoked_at.is_some() {
                    return Ok(RotateOutcome::Invalid);
                }
                if state.used_at.is_some() {
                    diesel::update(
                        refresh_tokens::table
                            .filter(refresh_tokens::family_id.eq(state.family_id))
                            .filter(refresh_tokens::revoked_at.is_null()),
                    )
                    .set(refresh_tokens::revoked_at.eq(now))
                    .execute(conn)
                    .await?;
                    return Ok(RotateOutcome::Reused);
                }
                if state.expires_at <= now {
                    return Ok(RotateOutcome::Invalid);
                }
                diesel::update(refresh_tokens::table.find(&presented.0))
                    .set(refresh_tokens::used_at.eq(now))
                    .execute(conn)
                    .await?;
                diesel::insert_into(refresh_tokens::table)
                    .values((
                        refresh_tokens::digest.eq(&replacement.0),
                        refresh_tokens::family_id.eq(state.family_id),
                        refresh_tokens::user_id.eq(state.user_id),
                        refresh_tokens::issued_at.eq(now),
                        refresh_tokens::expires_at.eq(expires_at),
                    ))
                    .execute(conn)
                    .await?;
                Ok(RotateOutcome::Rotated { user_id: UserId::from_uuid(state.user_id) })
            })
            .await
            .map_err(repo("rotating a refresh token"))?;
        Ok(outcome)
    }
}
