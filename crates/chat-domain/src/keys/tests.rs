use std::sync::{Arc, Mutex};

use super::*;
use crate::error::DomainError;
use crate::ids::UserId;
use crate::realtime::RateKind;
use crate::tests::{Scene, assert_invalid, now, user, workspace};
use crate::workspace::{WorkspaceRole, WorkspaceView};

fn x(byte: u8) -> X25519Key {
    X25519Key::parse("k", &[byte; 32]).expect("not a small-order point")
}

fn upload(device: &str, prekeys: u32) -> DeviceKeysUpload {
    DeviceKeysUpload {
        device_id: DeviceId::parse(device).unwrap(),
        identity_key: x(9),
        signing_key: Ed25519Key::parse("signingKey", &[7; 32]).unwrap(),
        signed_prekey: SignedPrekey { id: 1, key: x(10), signature: Signature::parse("signature", &[3; 64]).unwrap() },
        one_time_prekeys: (0..prekeys).map(|id| OneTimePrekey { id, key: x(20 + id as u8) }).collect(),
    }
}

fn listed(owner: UserId, upload: &DeviceKeysUpload) -> DeviceKeys {
    DeviceKeys {
        user_id: owner,
        device_id: upload.device_id.clone(),
        identity_key: upload.identity_key,
        signing_key: upload.signing_key,
        signed_prekey: upload.signed_prekey,
        one_time_prekeys_left: upload.one_time_prekeys.len() as u64,
        created_at: now(),
        updated_at: now(),
    }
}

/// Answers `list_workspaces_of` as the scene's memberships would: everyone but the outsider is
/// in the scene's workspace; the outsider only in a workspace of their own.
fn stub_workspaces_of(scene: &mut Scene) {
    let inside = [scene.owner.id, scene.admin.id, scene.alice.id, scene.bob.id, scene.carol.id, scene.guest.id];
    let here = scene.workspace.clone();
    let elsewhere = workspace(scene.outsider.id);
    let outsider = scene.outsider.id;
    scene.mocks.workspaces.expect_list_workspaces_of().returning(move |u| {
        Ok(if inside.contains(&u) {
            vec![WorkspaceView { workspace: here.clone(), role: WorkspaceRole::Member }]
        } else if u == outsider {
            vec![WorkspaceView { workspace: elsewhere.clone(), role: WorkspaceRole::Owner }]
        } else {
            vec![]
        })
    });
}

#[test]
fn device_ids_are_one_to_128_printable_ascii_characters() {
    assert!(DeviceId::parse("phone-1").is_ok());
    assert!(DeviceId::parse(&"d".repeat(128)).is_ok());
    assert!(DeviceId::parse("550e8400-e29b-41d4-a716-446655440000").is_ok());
    assert!(DeviceId::parse("!~#%").is_ok());
    for bad in ["", " ", "a b", "tab\there", "nl\n", "\u{7}", "ünïcode", "✓", &"d".repeat(129)] {
        assert_invalid(DeviceId::parse(bad), "deviceId");
    }
}

#[test]
fn small_order_x25519_points_are_refused_with_or_without_the_top_bit() {
    let mut one = [0u8; 32];
    one[0] = 1;
    let mut order8 = [0u8; 32];
    order8.copy_from_slice(&[
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09,
        0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00,
    ]);
    let mut p = [0xffu8; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    for point in [[0u8; 32], one, order8, p] {
        assert!(is_small_order_x25519(&point));
        assert_invalid(X25519Key::parse("identityKey", &point), "identityKey");
        let mut high = point;
        high[31] |= 0x80;
        assert_invalid(X25519Key::parse("identityKey", &high), "identityKey");
    }
    assert!(!is_small_order_x25519(&[9; 32]));
    assert_invalid(X25519Key::parse("identityKey", &[9; 31]), "identityKey");
    assert_invalid(Ed25519Key::parse("signingKey", &[9; 33]), "signingKey");
    assert_invalid(Signature::parse("signature", &[9; 63]), "signature");
}

#[test]
fn the_signed_message_binds_the_identity_the_id_and_the_prekey() {
    let base = signed_prekey_message(&x(1), 7, &x(2));
    assert!(base.starts_with(SIGNED_PREKEY_CONTEXT));
    assert_eq!(base.len(), SIGNED_PREKEY_CONTEXT.len() + 32 + 4 + 32);
    assert_ne!(base, signed_prekey_message(&x(3), 7, &x(2)));
    assert_ne!(base, signed_prekey_message(&x(1), 8, &x(2)));
    assert_ne!(base, signed_prekey_message(&x(1), 7, &x(4)));
}

#[tokio::test]
async fn a_device_is_published_when_its_signature_verifies_over_the_signed_message() {
    let mut scene = Scene::new();
    let alice = scene.alice.id;
    let up = upload("phone", 3);
    let expected_message = signed_prekey_message(&up.identity_key, 1, &up.signed_prekey.key);
    scene
        .mocks
        .signatures
        .expect_verify_ed25519()
        .withf(move |key, message, sig| {
            key.as_bytes() == &[7; 32] && message == expected_message.as_slice() && sig.as_bytes() == &[3; 64]
        })
        .times(1)
        .return_const(true);
    let stored = listed(alice, &up);
    let answer = stored.clone();
    let sent = up.clone();
    scene
        .mocks
        .key_directory
        .expect_publish_device()
        .withf(move |u, upload, at| *u == alice && *upload == sent && *at == now())
        .times(1)
        .returning(move |_, _, _| Ok(PublishOutcome::Published(Box::new(answer.clone()))));
    let published = scene.build().chat.keys.publish(alice, up).await.unwrap();
    assert_eq!(published, stored);
}

#[tokio::test]
async fn a_bad_signature_is_a_validation_error_and_nothing_is_stored() {
    let mut scene = Scene::new();
    let alice = scene.alice.id;
    scene.mocks.signatures.expect_verify_ed25519().return_const(false);
    scene.mocks.key_directory.expect_publish_device().never();
    let result = scene.build().chat.keys.publish(alice, upload("phone", 1)).await;
    assert_invalid(result, "signedPrekey.signature");
}

#[tokio::test]
async fn too_many_or_repeated_one_time_prekeys_are_refused_before_anything_else() {
    let mut scene = Scene::new();
    let alice = scene.alice.id;
    scene.mocks.signatures.expect_verify_ed25519().never();
    scene.mocks.key_directory.expect_publish_device().never();
    let chat = scene.build().chat;
    assert_invalid(chat.keys.publish(alice, upload("phone", 101)).await, "oneTimePrekeys");
    let mut repeated = upload("phone", 2);
    repeated.one_time_prekeys[1].id = repeated.one_time_prekeys[0].id;
    assert_invalid(chat.keys.publish(alice, repeated).await, "oneTimePrekeys");
}

#[tokio::test]
async fn someone_elses_device_id_is_a_conflict() {
    let mut scene = Scene::new();
    let bob = scene.bob.id;
    scene.mocks.signatures.expect_verify_ed25519().return_const(true);
    scene.mocks.key_directory.expect_publish_device().returning(|_, _, _| Ok(PublishOutcome::OwnedByAnother));
    let result = scene.build().chat.keys.publish(bob, upload("alices-phone", 1)).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn workspace_mates_and_oneself_list_devices_but_strangers_get_not_found() {
    let mut scene = Scene::new();
    stub_workspaces_of(&mut scene);
    let (alice, bob, outsider) = (scene.alice.id, scene.bob.id, scene.outsider.id);
    let loner = user("loner").id;
    let devices = vec![listed(alice, &upload("phone", 2))];
    let answer = devices.clone();
    scene
        .mocks
        .key_directory
        .expect_list_devices()
        .withf(move |u| *u == alice)
        .times(2)
        .returning(move |_| Ok(answer.clone()));
    let chat = scene.build().chat;
    assert_eq!(chat.keys.list(bob, alice).await.unwrap(), devices);
    assert_eq!(chat.keys.list(alice, alice).await.unwrap(), devices);
    for stranger in [outsider, loner] {
        let result = chat.keys.list(stranger, alice).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }
    // A user in no workspace at all is invisible too, not an error of another kind.
    let result = chat.keys.list(alice, loner).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_claim_takes_a_token_of_the_callers_budget_and_hands_out_the_directorys_answer() {
    let mut scene = Scene::new();
    stub_workspaces_of(&mut scene);
    let (alice, bob) = (scene.alice.id, scene.bob.id);
    scene
        .mocks
        .limiter
        .expect_acquire()
        .withf(move |kind, subject, per_minute| {
            *kind == RateKind::KeyClaims && subject == bob.to_string() && *per_minute == 30
        })
        .times(1)
        .returning(|_, _, _| Ok(Ok(())));
    let up = upload("phone", 1);
    let claimed = vec![ClaimedKeys {
        user_id: alice,
        device_id: up.device_id.clone(),
        identity_key: up.identity_key,
        signing_key: up.signing_key,
        signed_prekey: up.signed_prekey,
        one_time_prekey: Some(up.one_time_prekeys[0]),
    }];
    let answer = claimed.clone();
    scene
        .mocks
        .key_directory
        .expect_claim_prekeys()
        .withf(move |u| *u == alice)
        .times(1)
        .returning(move |_| Ok(answer.clone()));
    assert_eq!(scene.build().chat.keys.claim(bob, alice).await.unwrap(), claimed);
}

#[tokio::test]
async fn a_claim_past_the_budget_is_rate_limited_and_claims_nothing() {
    let mut scene = Scene::new();
    stub_workspaces_of(&mut scene);
    let (alice, bob) = (scene.alice.id, scene.bob.id);
    let wait = std::time::Duration::from_secs(2);
    scene.mocks.limiter.expect_acquire().returning(move |_, _, _| Ok(Err(wait)));
    scene.mocks.key_directory.expect_claim_prekeys().never();
    let result = scene.build().chat.keys.claim(bob, alice).await;
    assert!(matches!(result, Err(DomainError::RateLimited { retry_after }) if retry_after == wait), "{result:?}");
}

#[tokio::test]
async fn a_stranger_cannot_claim_and_spends_no_budget() {
    let mut scene = Scene::new();
    stub_workspaces_of(&mut scene);
    let (alice, outsider) = (scene.alice.id, scene.outsider.id);
    let asked = Arc::new(Mutex::new(0));
    let counter = asked.clone();
    scene.mocks.limiter.expect_acquire().returning(move |_, _, _| {
        *counter.lock().unwrap() += 1;
        Ok(Ok(()))
    });
    scene.mocks.key_directory.expect_claim_prekeys().never();
    let result = scene.build().chat.keys.claim(outsider, alice).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    assert_eq!(*asked.lock().unwrap(), 0);
}
