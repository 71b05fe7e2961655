//! Accounts: the validating newtypes, and registration, login, refresh rotation and bearer
//! authentication against mocked ports.

use std::sync::Arc;

use chrono::Duration;

use super::*;
use crate::audit::{AuditAction, Auditor};
use crate::error::DomainError;
use crate::ids::UserId;
use crate::tests::{FixedClock, RecordingAudit, assert_invalid, now, user};

// ----------------------------------------------------------------------------- newtypes

#[test]
fn an_email_is_trimmed_and_lower_cased() {
    let email = Email::parse("  Alice.Smith@Example.COM ").unwrap();
    assert_eq!(email.as_str(), "alice.smith@example.com");
    assert_eq!(email, Email::parse("alice.smith@example.com").unwrap());
}

#[test]
fn a_malformed_email_is_rejected() {
    let too_long = format!("{}@example.com", "a".repeat(250));
    for bad in
        ["", "alice", "@example.com", "alice@", "a@b@c", "alice@.com", "alice@com.", "al ice@example.com", &too_long]
    {
        assert_invalid(Email::parse(bad), "email");
    }
}

#[test]
fn a_display_name_is_trimmed_and_stripped_of_control_and_bidi_characters() {
    let name = DisplayName::parse("  Al\u{202E}i\u{0007}ce\u{2066} ").unwrap();
    assert_eq!(name.as_str(), "Alice");
}

#[test]
fn an_empty_display_name_is_rejected() {
    for bad in ["", "   ", "\u{202E}\u{2069}", "\n\t"] {
        assert_invalid(DisplayName::parse(bad), "displayName");
    }
}

#[test]
fn a_display_name_may_have_100_characters_but_not_101() {
    // Characters, not bytes: "é" is two bytes.
    assert_eq!(DisplayName::parse(&"é".repeat(100)).unwrap().as_str().chars().count(), 100);
    assert_invalid(DisplayName::parse(&"é".repeat(101)), "displayName");
}

#[test]
fn a_password_has_8_to_1024_characters() {
    assert_invalid(Password::parse("1234567".to_owned()), "password");
    assert!(Password::parse("12345678".to_owned()).is_ok());
    assert!(Password::parse("ü".repeat(8)).is_ok(), "counts characters, not bytes");
    assert!(Password::parse("x".repeat(1024)).is_ok());
    assert_invalid(Password::parse("x".repeat(1025)), "password");
}

#[test]
fn a_presented_password_has_no_minimum_but_the_same_maximum() {
    assert!(Password::for_verification("short".to_owned()).is_some());
    assert!(Password::for_verification("x".repeat(1025)).is_none());
}

#[test]
fn a_password_never_shows_in_debug_output() {
    let password = Password::parse("hunter2hunter2".to_owned()).unwrap();
    assert!(!format!("{password:?}").contains("hunter2"));
}

// ----------------------------------------------------------------------------- service

const TTL_DAYS: i64 = 30;

struct Ports {
    users: MockUserRepository,
    sessions: MockSessionRepository,
    hasher: MockPasswordHasher,
    tokens: MockTokenIssuer,
    audit: Arc<RecordingAudit>,
}

impl Ports {
    fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            sessions: MockSessionRepository::new(),
            hasher: MockPasswordHasher::new(),
            tokens: MockTokenIssuer::new(),
            audit: Arc::default(),
        }
    }

    /// Expects one new session for `user`: a fresh refresh token stored in a new family, and an
    /// access token.
    fn expect_session_for(&mut self, user: UserId) {
        self.tokens.expect_new_refresh_token().times(1).returning(|| {
            Ok(RefreshSecret { token: "refresh-1".to_owned(), digest: TokenDigest(b"digest-1".to_vec()) })
        });
        self.sessions
            .expect_insert_refresh_token()
            .withf(move |t| {
                t.user_id == user
                    && t.digest == TokenDigest(b"digest-1".to_vec())
                    && t.issued_at == now()
                    && t.expires_at == now() + Duration::days(TTL_DAYS)
            })
            .times(1)
            .returning(|_| Ok(()));
        self.tokens.expect_issue_access_token().withf(move |u, at| *u == user && *at == now()).times(1).returning(
            |_, at| Ok(AccessToken { token: "access-1".to_owned(), expires_at: at + Duration::minutes(15) }),
        );
    }

    fn service(self) -> AuthService {
        AuthService::new(
            Arc::new(self.users),
            Arc::new(self.sessions),
            Arc::new(self.hasher),
            Arc::new(self.tokens),
            Arc::new(FixedClock),
            Duration::days(TTL_DAYS),
            Auditor::new(self.audit, Arc::new(FixedClock)),
        )
    }
}

fn stored(new: &NewUser) -> User {
    User {
        id: new.id,
        email: new.email.clone(),
        display_name: new.display_name.clone(),
        avatar_url: None,
        created_at: new.created_at,
    }
}

#[tokio::test]
async fn registering_hashes_the_password_and_stores_only_the_hash() {
    let mut ports = Ports::new();
    ports
        .hasher
        .expect_hash_password()
        .withf(|p| p.expose() == "correct horse battery")
        .times(1)
        .returning(|_| Ok(PasswordHash("$argon2id$fake".to_owned())));
    ports
        .users
        .expect_create_user()
        .withf(|n| {
            n.password_hash == PasswordHash("$argon2id$fake".to_owned())
                && n.email.as_str() == "alice@example.com"
                && n.display_name.as_str() == "Alice"
                && n.created_at == now()
        })
        .times(1)
        .returning(|n| Ok(stored(n)));
    // The new user's id is minted by the service: accept whichever it is.
    ports
        .tokens
        .expect_new_refresh_token()
        .times(1)
        .returning(|| Ok(RefreshSecret { token: "refresh-1".to_owned(), digest: TokenDigest(b"digest-1".to_vec()) }));
    ports.sessions.expect_insert_refresh_token().times(1).returning(|_| Ok(()));
    ports
        .tokens
        .expect_issue_access_token()
        .times(1)
        .returning(|_, at| Ok(AccessToken { token: "access-1".to_owned(), expires_at: at }));

    let session =
        ports.service().register("Alice@Example.com", "correct horse battery".to_owned(), " Alice ").await.unwrap();

    assert_eq!(session.user.email.as_str(), "alice@example.com");
    assert_eq!(session.access.token, "access-1");
    assert_eq!(session.refresh.token, "refresh-1");
}

#[tokio::test]
async fn registering_an_email_that_is_taken_is_a_conflict() {
    let mut ports = Ports::new();
    ports.hasher.expect_hash_password().returning(|_| Ok(PasswordHash("$argon2id$fake".to_owned())));
    ports.users.expect_create_user().times(1).returning(|_| Err(CreateUserError::DuplicateEmail));
    ports.tokens.expect_new_refresh_token().never();

    let result = ports.service().register("alice@example.com", "correct horse battery".to_owned(), "Alice").await;

    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn registering_with_bad_input_is_rejected_before_hashing() {
    let register = |email: &'static str, password: &'static str, name: &'static str| async move {
        let mut ports = Ports::new();
        ports.hasher.expect_hash_password().never();
        ports.users.expect_create_user().never();
        ports.service().register(email, password.to_owned(), name).await
    };
    assert_invalid(register("not-an-email", "correct horse battery", "Alice").await, "email");
    assert_invalid(register("alice@example.com", "short", "Alice").await, "password");
    assert_invalid(register("alice@example.com", "correct horse battery", "  ").await, "displayName");
}

#[tokio::test]
async fn logging_in_with_an_unknown_email_is_unauthorized_and_still_verifies_a_password() {
    let mut ports = Ports::new();
    ports.users.expect_find_user_by_email().times(1).returning(|_| Ok(None));
    ports.hasher.expect_verify_password().withf(|_, hash| hash.is_none()).times(1).return_const(false);

    let audit = Arc::clone(&ports.audit);
    let result = ports.service().login("nobody@example.com", "whatever1".to_owned()).await;

    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
    let entries = audit.take();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((entries[0].action, entries[0].actor, entries[0].workspace_id), (AuditAction::LoginFailed, None, None));
    assert_eq!(entries[0].target, None, "the typed e-mail is not recorded");
}

#[tokio::test]
async fn logging_in_with_a_wrong_password_is_unauthorized_after_verifying_it() {
    let alice = user("alice");
    let mut ports = Ports::new();
    let found = alice.clone();
    ports
        .users
        .expect_find_user_by_email()
        .times(1)
        .returning(move |_| Ok(Some((found.clone(), PasswordHash("$argon2id$alice".to_owned())))));
    ports
        .hasher
        .expect_verify_password()
        .withf(|p, hash| p.expose() == "wrong password" && *hash == Some(PasswordHash("$argon2id$alice".to_owned())))
        .times(1)
        .return_const(false);
    ports.tokens.expect_issue_access_token().never();

    let audit = Arc::clone(&ports.audit);
    let result = ports.service().login("alice@example.com", "wrong password".to_owned()).await;

    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
    let entries = audit.take();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!((entries[0].action, entries[0].actor), (AuditAction::LoginFailed, Some(alice.id)));
    assert_eq!(entries[0].at, now());
}

#[tokio::test]
async fn logging_in_with_the_right_password_starts_a_session() {
    let alice = user("alice");
    let mut ports = Ports::new();
    let found = alice.clone();
    ports
        .users
        .expect_find_user_by_email()
        .withf(|e| e.as_str() == "alice@example.com")
        .times(1)
        .returning(move |_| Ok(Some((found.clone(), PasswordHash("$argon2id$alice".to_owned())))));
    ports.hasher.expect_verify_password().times(1).return_const(true);
    ports.expect_session_for(alice.id);

    let audit = Arc::clone(&ports.audit);
    let session = ports.service().login("ALICE@example.com", "the password".to_owned()).await.unwrap();

    assert_eq!(session.user, alice);
    let entries = audit.take();
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0].action, entries[0].actor, entries[0].workspace_id),
        (AuditAction::LoginSucceeded, Some(alice.id), None)
    );
    assert_eq!(session.access.token, "access-1");
}

#[tokio::test]
async fn logging_in_with_a_malformed_email_is_unauthorized_not_invalid() {
    let mut ports = Ports::new();
    ports.users.expect_find_user_by_email().never();
    let audit = Arc::clone(&ports.audit);
    let result = ports.service().login("not-an-email", "the password".to_owned()).await;
    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
    assert_eq!(audit.take().iter().map(|e| e.action).collect::<Vec<_>>(), [AuditAction::LoginFailed]);
}

fn expect_rotation(ports: &mut Ports, outcome: RotateOutcome) {
    ports
        .tokens
        .expect_digest_refresh_token()
        .withf(|t| t == "old-refresh")
        .returning(|_| TokenDigest(b"old-digest".to_vec()));
    ports.tokens.expect_new_refresh_token().times(1).returning(|| {
        Ok(RefreshSecret { token: "new-refresh".to_owned(), digest: TokenDigest(b"new-digest".to_vec()) })
    });
    ports
        .sessions
        .expect_rotate_refresh_token()
        .withf(|presented, replacement, at, expires| {
            presented.0 == b"old-digest"
                && replacement.0 == b"new-digest"
                && *at == now()
                && *expires == now() + Duration::days(TTL_DAYS)
        })
        .times(1)
        .returning(move |_, _, _, _| Ok(outcome.clone()));
}

#[tokio::test]
async fn refreshing_a_current_token_rotates_it_into_a_new_pair() {
    let alice = user("alice");
    let mut ports = Ports::new();
    expect_rotation(&mut ports, RotateOutcome::Rotated { user_id: alice.id });
    let found = alice.clone();
    ports.users.expect_find_user().withf(move |id| *id == found.id).returning(move |_| Ok(Some(found.clone())));
    ports
        .tokens
        .expect_issue_access_token()
        .times(1)
        .returning(|_, at| Ok(AccessToken { token: "access-2".to_owned(), expires_at: at }));

    let session = ports.service().refresh("old-refresh").await.unwrap();

    assert_eq!(session.user.id, alice.id);
    assert_eq!(session.refresh.token, "new-refresh");
    assert_eq!(session.access.token, "access-2");
}

#[tokio::test]
async fn refreshing_with_a_reused_token_is_unauthorized() {
    let mut ports = Ports::new();
    expect_rotation(&mut ports, RotateOutcome::Reused);
    ports.tokens.expect_issue_access_token().never();
    let audit = Arc::clone(&ports.audit);
    let result = ports.service().refresh("old-refresh").await;
    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
    assert_eq!(audit.take().iter().map(|e| e.action).collect::<Vec<_>>(), [AuditAction::RefreshTokenReused]);
}

#[tokio::test]
async fn refreshing_with_an_unknown_or_expired_token_is_unauthorized() {
    let mut ports = Ports::new();
    expect_rotation(&mut ports, RotateOutcome::Invalid);
    ports.tokens.expect_issue_access_token().never();
    let result = ports.service().refresh("old-refresh").await;
    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
}

#[tokio::test]
async fn refreshing_for_an_account_that_is_gone_is_unauthorized() {
    let mut ports = Ports::new();
    expect_rotation(&mut ports, RotateOutcome::Rotated { user_id: UserId::generate() });
    ports.users.expect_find_user().returning(|_| Ok(None));
    ports.tokens.expect_issue_access_token().never();
    let result = ports.service().refresh("old-refresh").await;
    assert!(matches!(result, Err(DomainError::Unauthorized)), "{result:?}");
}

#[test]
fn a_valid_bearer_token_authenticates_its_subject() {
    let alice = UserId::generate();
    let mut ports = Ports::new();
    ports.tokens.expect_verify_access_token().withf(|t| t == "good").returning(move |_| Some(alice));
    assert_eq!(ports.service().authenticate("good").unwrap(), alice);
}

#[test]
fn an_invalid_bearer_token_is_unauthorized() {
    let mut ports = Ports::new();
    ports.tokens.expect_verify_access_token().returning(|_| None);
    assert!(matches!(ports.service().authenticate("forged"), Err(DomainError::Unauthorized)));
}

#[tokio::test]
async fn me_is_unauthorized_once_the_account_is_gone() {
    let alice = user("alice");
    let mut ports = Ports::new();
    let found = alice.clone();
    ports.users.expect_find_user().returning(move |id| Ok((id == found.id).then(|| found.clone())));
    let service = ports.service();
    assert_eq!(service.me(alice.id).await.unwrap(), alice);
    assert!(matches!(service.me(UserId::generate()).await, Err(DomainError::Unauthorized)));
}
