//! [`SessionRepository`](chat_domain::user::SessionRepository): rotating refresh tokens with
//! reuse detection.

use chat_domain::ids::SessionFamilyId;
use chat_domain::user::{NewRefreshToken, RotateOutcome, TokenDigest, User};
use chrono::{DateTime, Utc};
use futures_util::future::join_all;

use crate::Stores;
use crate::fixtures::{at, user};

/// A digest: arbitrary bytes, as a hash would be.
fn digest(tag: &str) -> TokenDigest {
    let mut bytes = vec![0x00, 0x9f, 0xff];
    bytes.extend_from_slice(tag.as_bytes());
    TokenDigest(bytes)
}

fn token(user: &User, family: SessionFamilyId, tag: &str, expires_at: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken { digest: digest(tag), family, user_id: user.id, issued_at: at(0), expires_at }
}

async fn rotate(stores: &Stores, presented: &str, replacement: &str, now: DateTime<Utc>) -> RotateOutcome {
    stores
        .sessions
        .rotate_refresh_token(&digest(presented), &digest(replacement), now, at(10_000))
        .await
        .expect("rotate")
}

/// A current token rotates once into its replacement, which is stored for the same user with
/// the given expiry and rotates in turn.
pub async fn a_current_refresh_token_rotates_into_its_replacement(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let family = SessionFamilyId::generate();
    stores.sessions.insert_refresh_token(&token(&ada, family, "a", at(1000))).await.expect("insert");

    assert_eq!(rotate(&stores, "a", "b", at(10)).await, RotateOutcome::Rotated { user_id: ada.id });
    assert_eq!(rotate(&stores, "b", "c", at(20)).await, RotateOutcome::Rotated { user_id: ada.id });
    // The replacement carries the expiry it was given.
    let rotated =
        stores.sessions.rotate_refresh_token(&digest("c"), &digest("d"), at(30), at(40)).await.expect("rotate");
    assert_eq!(rotated, RotateOutcome::Rotated { user_id: ada.id });
    assert_eq!(rotate(&stores, "d", "e", at(41)).await, RotateOutcome::Invalid);
}

/// Presenting a spent token again is `Reused` and revokes its whole family: the replacement is
/// then `Invalid` too. Other families of the same user are untouched.
pub async fn a_spent_refresh_token_revokes_its_whole_family(stores: Stores) {
    let ada = user(&stores, "ada").await;
    let family = SessionFamilyId::generate();
    let other_family = SessionFamilyId::generate();
    stores.sessions.insert_refresh_token(&token(&ada, family, "a", at(1000))).await.expect("insert");
    stores.sessions.insert_refresh_token(&token(&ada, other_family, "x", at(1000))).await.expect("insert");

    assert_eq!(rotate(&stores, "a", "b", at(10)).await, RotateOutcome::Rotated { user_id: ada.id });
    assert_eq!(rotate(&stores, "a", "c", at(20)).await, RotateOutcome::Reused);
    assert_eq!(rotate(&stores, "b", "d", at(30)).await, RotateOutcome::Invalid, "the replacement is revoked");
    assert_eq!(rotate(&stores, "c", "e", at(40)).await, RotateOutcome::Invalid, "a reuse stores no replacement");
    assert_eq!(rotate(&stores, "x", "y", at(50)).await, RotateOutcome::Rotated { user_id: ada.id });
}

/// An expired token and an unknown one are `Invalid`, and neither stores its replacement.
pub async fn an_expired_or_unknown_refresh_token_is_invalid(stores: Stores) {
    let ada = user(&stores, "ada").await;
    stores
        .sessions
        .insert_refresh_token(&token(&ada, SessionFamilyId::generate(), "a", at(100)))
        .await
        .expect("insert");

    assert_eq!(rotate(&stores, "a", "b", at(101)).await, RotateOutcome::Invalid);
    assert_eq!(rotate(&stores, "b", "c", at(102)).await, RotateOutcome::Invalid);
    assert_eq!(rotate(&stores, "unknown", "d", at(103)).await, RotateOutcome::Invalid);
    assert_eq!(rotate(&stores, "d", "e", at(104)).await, RotateOutcome::Invalid);
}

/// Of ten concurrent rotations of one token exactly one is `Rotated`, round after round (the
/// later rounds run on a warm connection pool, where the rotations truly overlap).
pub async fn concurrent_rotations_of_one_token_rotate_exactly_once(stores: Stores) {
    let ada = user(&stores, "ada").await;
    for round in 0..5 {
        let presented = format!("a{round}");
        stores
            .sessions
            .insert_refresh_token(&token(&ada, SessionFamilyId::generate(), &presented, at(1000)))
            .await
            .expect("insert");
        let rotations = (0..10).map(|i| {
            let sessions = stores.sessions.clone();
            let (presented, replacement) = (digest(&presented), digest(&format!("b{round}-{i}")));
            tokio::spawn(async move { sessions.rotate_refresh_token(&presented, &replacement, at(10), at(2000)).await })
        });
        let outcomes: Vec<RotateOutcome> =
            join_all(rotations).await.into_iter().map(|r| r.expect("task").expect("rotate")).collect();
        let rotated: Vec<&RotateOutcome> =
            outcomes.iter().filter(|o| matches!(o, RotateOutcome::Rotated { .. })).collect();
        assert_eq!(rotated, [&RotateOutcome::Rotated { user_id: ada.id }], "round {round}: {outcomes:?}");
        // The first loser to get the token sees it spent; later ones may find the family revoked.
        let reused = outcomes.iter().filter(|o| **o == RotateOutcome::Reused).count();
        let invalid = outcomes.iter().filter(|o| **o == RotateOutcome::Invalid).count();
        assert!(reused >= 1 && reused + invalid == 9, "round {round}: {outcomes:?}");
    }
}
