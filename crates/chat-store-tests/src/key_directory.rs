//! Behaviours of the [`KeyDirectory`](chat_domain::keys::KeyDirectory): devices owned by their
//! first publisher, signed prekeys replaced, one-time prekeys appended and each handed out
//! exactly once, even to concurrent claimers.

use std::collections::HashSet;

use chat_domain::ids::UserId;
use chat_domain::keys::{
    DeviceId, DeviceKeys, DeviceKeysUpload, Ed25519Key, OneTimePrekey, PublishOutcome, Signature, SignedPrekey,
    X25519Key,
};

use crate::Stores;
use crate::fixtures::{at, user};

fn x(byte: u8) -> X25519Key {
    X25519Key::from_stored([byte; 32])
}

/// An upload for `device` with identity key `[identity; 32]`, signed prekey `spk_id`, and
/// one-time prekeys with the given ids (key bytes derived from the id).
fn upload(device: &str, identity: u8, spk_id: u32, prekeys: impl IntoIterator<Item = u32>) -> DeviceKeysUpload {
    DeviceKeysUpload {
        device_id: DeviceId::parse(device).expect("a valid device id"),
        identity_key: x(identity),
        signing_key: Ed25519Key::from_stored([identity.wrapping_add(1); 32]),
        signed_prekey: SignedPrekey {
            id: spk_id,
            key: x(100 + u8::try_from(spk_id % 100).expect("small")),
            signature: Signature::from_stored([u8::try_from(spk_id % 250).expect("small"); 64]),
        },
        one_time_prekeys: prekeys
            .into_iter()
            .map(|id| OneTimePrekey { id, key: x(u8::try_from(id % 250).expect("small") + 2) })
            .collect(),
    }
}

async fn publish(stores: &Stores, owner: UserId, up: &DeviceKeysUpload, secs: i64) -> DeviceKeys {
    match stores.key_directory.publish_device(owner, up, at(secs)).await.expect("publish") {
        PublishOutcome::Published(device) => *device,
        PublishOutcome::OwnedByAnother => panic!("{} is owned by another user", up.device_id),
    }
}

/// A published device is listed with its keys and how many one-time prekeys it has left,
/// devices oldest first, and never among another user's devices.
pub async fn a_published_device_is_listed_with_its_prekey_count(stores: Stores) {
    let alice = user(&stores, "alice").await;
    let bob = user(&stores, "bob").await;
    let phone = upload("alice-phone", 1, 7, 0..3);
    let published = publish(&stores, alice.id, &phone, 10).await;
    assert_eq!(published.user_id, alice.id);
    assert_eq!(published.device_id, phone.device_id);
    assert_eq!(published.identity_key, phone.identity_key);
    assert_eq!(published.signing_key, phone.signing_key);
    assert_eq!(published.signed_prekey, phone.signed_prekey);
    assert_eq!(published.one_time_prekeys_left, 3);
    assert_eq!((published.created_at, published.updated_at), (at(10), at(10)));
    let laptop = publish(&stores, alice.id, &upload("alice-laptop", 2, 1, []), 20).await;
    assert_eq!(laptop.one_time_prekeys_left, 0);

    let listed = stores.key_directory.list_devices(alice.id).await.expect("list");
    assert_eq!(listed, vec![published, laptop], "oldest first");
    assert_eq!(stores.key_directory.list_devices(bob.id).await.expect("list"), []);
}

/// Publishing again replaces the identity, signing and signed prekey, keeps `created_at`, and
/// appends one-time prekeys; an id the device already has keeps its stored key.
pub async fn republishing_replaces_the_signed_prekey_and_appends_one_time_prekeys(stores: Stores) {
    let alice = user(&stores, "alice").await;
    publish(&stores, alice.id, &upload("phone", 1, 1, 0..3), 10).await;
    let mut again = upload("phone", 1, 2, 2..5);
    // Id 2 again, with other bytes: the stored key stays.
    again.one_time_prekeys[0].key = x(99);
    let republished = publish(&stores, alice.id, &again, 20).await;
    assert_eq!(republished.signed_prekey, again.signed_prekey);
    assert_eq!(republished.one_time_prekeys_left, 5, "ids 0..5");
    assert_eq!((republished.created_at, republished.updated_at), (at(10), at(20)));
    let claimed: Vec<_> = {
        let mut keys = Vec::new();
        for _ in 0..6 {
            let claim = stores.key_directory.claim_prekeys(alice.id).await.expect("claim");
            keys.push(claim[0].one_time_prekey);
        }
        keys
    };
    let ids: Vec<Option<u32>> = claimed.iter().map(|k| k.map(|k| k.id)).collect();
    assert_eq!(ids, [Some(0), Some(1), Some(2), Some(3), Some(4), None]);
    assert_eq!(claimed[2].map(|k| k.key), Some(x(4)), "the first key stored under id 2 is kept");
}

/// A new identity key makes the device's remaining one-time prekeys useless: they are dropped
/// before the upload's are appended.
pub async fn a_new_identity_key_drops_the_old_one_time_prekeys(stores: Stores) {
    let alice = user(&stores, "alice").await;
    publish(&stores, alice.id, &upload("phone", 1, 1, 0..4), 10).await;
    let reinstalled = publish(&stores, alice.id, &upload("phone", 9, 1, 10..12), 20).await;
    assert_eq!(reinstalled.identity_key, x(9));
    assert_eq!(reinstalled.one_time_prekeys_left, 2);
    let claim = stores.key_directory.claim_prekeys(alice.id).await.expect("claim");
    assert_eq!(claim[0].one_time_prekey.map(|k| k.id), Some(10));
}

/// A device id belongs to the first user who published it: another user's upload changes
/// nothing.
pub async fn a_device_id_belongs_to_its_first_publisher(stores: Stores) {
    let alice = user(&stores, "alice").await;
    let mallory = user(&stores, "mallory").await;
    let original = publish(&stores, alice.id, &upload("phone", 1, 1, 0..2), 10).await;
    let outcome =
        stores.key_directory.publish_device(mallory.id, &upload("phone", 5, 9, 50..60), at(20)).await.expect("publish");
    assert_eq!(outcome, PublishOutcome::OwnedByAnother);
    assert_eq!(stores.key_directory.list_devices(alice.id).await.expect("list"), vec![original]);
    assert_eq!(stores.key_directory.list_devices(mallory.id).await.expect("list"), []);
}

/// Concurrent first publishers of one device id: exactly one owns it afterwards, the others are
/// told it belongs to someone else.
pub async fn concurrent_first_publishers_of_one_device_id_leave_one_owner(stores: Stores) {
    let mut users = Vec::new();
    for i in 0..6 {
        users.push(user(&stores, &format!("user{i}")).await);
    }
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let directory = stores.key_directory.clone();
            let id = u.id;
            let up = upload("contested", u8::try_from(i).expect("small") + 1, 1, 0..2);
            tokio::spawn(async move { directory.publish_device(id, &up, at(10)).await })
        })
        .collect();
    let mut owners = Vec::new();
    for (task, u) in tasks.into_iter().zip(&users) {
        match task.await.expect("join").expect("publish") {
            PublishOutcome::Published(device) => owners.push((u.id, *device)),
            PublishOutcome::OwnedByAnother => {}
        }
    }
    assert_eq!(owners.len(), 1, "exactly one first publisher");
    let (owner, device) = owners.pop().expect("one owner");
    assert_eq!(device.user_id, owner);
    assert_eq!(device.one_time_prekeys_left, 2);
    for u in &users {
        let listed = stores.key_directory.list_devices(u.id).await.expect("list");
        assert_eq!(listed.len(), usize::from(u.id == owner));
    }
}

/// A claim hands out, for every device, its lowest one-time prekey with its signed prekey, and
/// removes it; a device with none left comes without one.
pub async fn claims_hand_out_the_lowest_prekey_once_then_none(stores: Stores) {
    let alice = user(&stores, "alice").await;
    let phone = upload("phone", 1, 3, [5, 2]);
    publish(&stores, alice.id, &phone, 10).await;
    publish(&stores, alice.id, &upload("laptop", 2, 4, []), 20).await;

    let first = stores.key_directory.claim_prekeys(alice.id).await.expect("claim");
    assert_eq!(first.len(), 2);
    assert_eq!(first[0].device_id.as_str(), "phone");
    assert_eq!(first[0].user_id, alice.id);
    assert_eq!(first[0].identity_key, phone.identity_key);
    assert_eq!(first[0].signing_key, phone.signing_key);
    assert_eq!(first[0].signed_prekey, phone.signed_prekey);
    assert_eq!(first[0].one_time_prekey, Some(phone.one_time_prekeys[1]), "lowest id first");
    assert_eq!(first[1].device_id.as_str(), "laptop");
    assert_eq!(first[1].one_time_prekey, None);

    let second = stores.key_directory.claim_prekeys(alice.id).await.expect("claim");
    assert_eq!(second[0].one_time_prekey, Some(phone.one_time_prekeys[0]));
    let third = stores.key_directory.claim_prekeys(alice.id).await.expect("claim");
    assert_eq!(third[0].one_time_prekey, None);
    assert_eq!(third[0].signed_prekey, phone.signed_prekey, "the signed prekey is always handed out");
    let listed = stores.key_directory.list_devices(alice.id).await.expect("list");
    assert_eq!(listed[0].one_time_prekeys_left, 0);
    // Nobody has devices: nothing to claim.
    let bob = user(&stores, "bob").await;
    assert_eq!(stores.key_directory.claim_prekeys(bob.id).await.expect("claim"), []);
}

/// Twenty concurrent claims of a device with five one-time prekeys: exactly five distinct
/// prekeys are handed out, the other fifteen claims get none.
pub async fn concurrent_claims_hand_out_each_one_time_prekey_exactly_once(stores: Stores) {
    let alice = user(&stores, "alice").await;
    publish(&stores, alice.id, &upload("phone", 1, 1, 0..5), 10).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let directory = stores.key_directory.clone();
            let id = alice.id;
            tokio::spawn(async move { directory.claim_prekeys(id).await })
        })
        .collect();
    let mut handed_out = Vec::new();
    let mut without = 0;
    for task in tasks {
        let claim = task.await.expect("join").expect("claim");
        assert_eq!(claim.len(), 1);
        match claim[0].one_time_prekey {
            Some(key) => handed_out.push(key.id),
            None => without += 1,
        }
    }
    let distinct: HashSet<u32> = handed_out.iter().copied().collect();
    assert_eq!(handed_out.len(), 5, "{handed_out:?}");
    assert_eq!(distinct, (0..5).collect(), "each prekey exactly once");
    assert_eq!(without, 15);
}
