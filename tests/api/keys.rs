//! The E2E public key directory over HTTP (`docs/api.md` "Keys"): publishing and replacing a
//! device, refusing bad signatures and small-order keys, hiding users from strangers, handing
//! out each one-time prekey once, protecting device ids, and limiting claims.

use std::collections::HashSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chat_client::e2e::Device;
use chat_protocol::{ClaimedDeviceKeys, DeviceKeysBody, Page, PublishDeviceKeysRequest};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, TestUser};
use crate::on_both_stores;

on_both_stores!(
    a_published_device_is_listed_to_workspace_mates_without_its_one_time_prekeys,
    bad_signatures_small_order_keys_and_malformed_bundles_are_refused,
    a_user_sharing_no_workspace_is_not_found,
    concurrent_claims_hand_out_each_one_time_prekey_once,
    a_device_id_belongs_to_the_first_user_who_published_it,
);

async fn publish(
    app: &TestApp,
    user: &TestUser,
    device: &str,
    body: &PublishDeviceKeysRequest,
) -> crate::helpers::Reply {
    app.put(&format!("/keys/devices/{device}"), user, body).await
}

async fn claim(app: &TestApp, user: &TestUser, target: uuid::Uuid) -> crate::helpers::Reply {
    app.call(Method::POST, &format!("/keys/users/{target}/claim"), Some(&user.token), None).await
}

async fn a_published_device_is_listed_to_workspace_mates_without_its_one_time_prekeys(app: TestApp) {
    let cast = app.cast().await;
    let mut phone = Device::generate("alice-phone").expect("test value");
    let body = phone.publish_request(3).expect("test value");
    let reply = publish(&app, &cast.alice, "alice-phone", &body).await;
    reply.assert_status(200);
    let published: DeviceKeysBody = reply.json();
    assert_eq!(published.user_id, cast.alice.id);
    assert_eq!(published.device_id, "alice-phone");
    assert_eq!(published.identity_key, body.identity_key);
    assert_eq!(published.signing_key, body.signing_key);
    assert_eq!(published.signed_prekey, body.signed_prekey);
    assert_eq!(published.one_time_prekey_count, 3);
    assert_eq!(URL_SAFE_NO_PAD.decode(&published.identity_key).expect("test value"), phone.identity_key());

    let listing = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.bob).await;
    listing.assert_status(200);
    assert_eq!(listing.body["nextCursor"], serde_json::Value::Null);
    let item = &listing.body["items"][0];
    assert!(item.get("oneTimePrekeys").is_none() && item.get("oneTimePrekey").is_none(), "{item}");
    let page: Page<DeviceKeysBody> = listing.json();
    assert_eq!(page.items, vec![published.clone()]);
    // Oneself, always.
    let own: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.alice).await.json();
    assert_eq!(own.items.len(), 1);

    // Publishing again rotates the signed prekey and appends one-time prekeys.
    phone.rotate_signed_prekey().expect("test value");
    let again = phone.publish_request(2).expect("test value");
    let republished: DeviceKeysBody = publish(&app, &cast.alice, "alice-phone", &again).await.json();
    assert_eq!(republished.signed_prekey, again.signed_prekey);
    assert_ne!(republished.signed_prekey, published.signed_prekey);
    assert_eq!(republished.one_time_prekey_count, 5);
    assert_eq!(republished.created_at, published.created_at);
    // The routes are in the API document.
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    for path in ["/keys/devices/{device_id}", "/keys/users/{user_id}", "/keys/users/{user_id}/claim"] {
        assert!(doc.body["paths"].get(path).is_some(), "openapi.json lacks {path}");
    }
    // Bob has no devices: an empty list.
    let none: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.bob.id), &cast.alice).await.json();
    assert_eq!(none.items, []);
}

async fn bad_signatures_small_order_keys_and_malformed_bundles_are_refused(app: TestApp) {
    let cast = app.cast().await;
    let mut phone = Device::generate("phone").expect("test value");
    let good = phone.publish_request(1).expect("test value");

    let mut bad_signature = good.clone();
    let mut signature = URL_SAFE_NO_PAD.decode(&bad_signature.signed_prekey.signature).expect("test value");
    signature[0] ^= 1;
    bad_signature.signed_prekey.signature = URL_SAFE_NO_PAD.encode(&signature);
    publish(&app, &cast.alice, "phone", &bad_signature).await.assert_error(422, "validation_failed");

    // A signature made for another identity key does not carry over.
    let mut other_identity = good.clone();
    other_identity.identity_key =
        Device::generate("x").expect("test value").publish_request(0).expect("test value").identity_key;
    publish(&app, &cast.alice, "phone", &other_identity).await.assert_error(422, "validation_failed");

    let mut one = [0u8; 32];
    one[0] = 1;
    for small in [[0u8; 32], one] {
        let small = URL_SAFE_NO_PAD.encode(small);
        let mut identity = good.clone();
        identity.identity_key = small.clone();
        publish(&app, &cast.alice, "phone", &identity).await.assert_error(422, "validation_failed");
        let mut one_time = good.clone();
        one_time.one_time_prekeys[0].public_key = small.clone();
        publish(&app, &cast.alice, "phone", &one_time).await.assert_error(422, "validation_failed");
        let mut prekey = good.clone();
        prekey.signed_prekey.public_key = small;
        publish(&app, &cast.alice, "phone", &prekey).await.assert_error(422, "validation_failed");
    }

    let mut short = good.clone();
    short.signing_key = URL_SAFE_NO_PAD.encode([7u8; 31]);
    publish(&app, &cast.alice, "phone", &short).await.assert_error(422, "validation_failed");
    let mut padded = good.clone();
    padded.identity_key.push('=');
    publish(&app, &cast.alice, "phone", &padded).await.assert_error(422, "validation_failed");
    let too_many = phone.publish_request(101).expect("test value");
    publish(&app, &cast.alice, "phone", &too_many).await.assert_error(422, "validation_failed");
    publish(&app, &cast.alice, "a%20b", &good).await.assert_error(422, "validation_failed");
    publish(&app, &cast.alice, &"d".repeat(129), &good).await.assert_error(422, "validation_failed");
    let mut unknown = serde_json::to_value(&good).expect("test value");
    unknown["extra"] = json!(1);
    app.put("/keys/devices/phone", &cast.alice, unknown).await.assert_error(400, "bad_request");
    app.call(Method::PUT, "/keys/devices/phone", None, Some(serde_json::to_value(&good).expect("test value")))
        .await
        .assert_error(401, "unauthorized");

    // Nothing of the refused uploads was stored; the good one is.
    let listed: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.bob).await.json();
    assert_eq!(listed.items, []);
    publish(&app, &cast.alice, "phone", &good).await.assert_status(200);
}

async fn a_user_sharing_no_workspace_is_not_found(app: TestApp) {
    let cast = app.cast().await;
    let mut phone = Device::generate("phone").expect("test value");
    publish(&app, &cast.alice, "phone", &phone.publish_request(2).expect("test value")).await.assert_status(200);
    let alice = cast.alice.id;
    app.get(&format!("/keys/users/{alice}"), &cast.mallory).await.assert_error(404, "not_found");
    claim(&app, &cast.mallory, alice).await.assert_error(404, "not_found");
    app.get(&format!("/keys/users/{}", uuid::Uuid::new_v4()), &cast.alice).await.assert_error(404, "not_found");
    app.get("/keys/users/not-a-uuid", &cast.alice).await.assert_error(404, "not_found");
    app.call(Method::GET, &format!("/keys/users/{alice}"), None, None).await.assert_error(401, "unauthorized");
    // Mallory's attempts spent nothing.
    let listed: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{alice}"), &cast.bob).await.json();
    assert_eq!(listed.items[0].one_time_prekey_count, 2);
}

async fn concurrent_claims_hand_out_each_one_time_prekey_once(app: TestApp) {
    let cast = app.cast().await;
    let mut phone = Device::generate("phone").expect("test value");
    let mut laptop = Device::generate("laptop").expect("test value");
    let phone_keys = phone.publish_request(3).expect("test value");
    publish(&app, &cast.alice, "phone", &phone_keys).await.assert_status(200);
    publish(&app, &cast.alice, "laptop", &laptop.publish_request(0).expect("test value")).await.assert_status(200);

    let claims = futures_util::future::join_all((0..10).map(|_| claim(&app, &cast.bob, cast.alice.id))).await;
    let mut handed_out = Vec::new();
    for reply in claims {
        reply.assert_status(200);
        let page: Page<ClaimedDeviceKeys> = reply.json();
        assert_eq!(page.items.len(), 2, "one entry per device");
        for item in page.items {
            assert_eq!(item.user_id, cast.alice.id);
            match item.device_id.as_str() {
                "phone" => {
                    assert_eq!(item.signed_prekey, phone_keys.signed_prekey);
                    handed_out.extend(item.one_time_prekey);
                }
                "laptop" => assert_eq!(item.one_time_prekey, None),
                other => panic!("unexpected device {other}"),
            }
        }
    }
    let published: HashSet<_> = phone_keys.one_time_prekeys.iter().cloned().map(|k| (k.key_id, k.public_key)).collect();
    let claimed: HashSet<_> = handed_out.iter().cloned().map(|k| (k.key_id, k.public_key)).collect();
    assert_eq!(handed_out.len(), 3, "{handed_out:?}");
    assert_eq!(claimed, published, "each one-time prekey exactly once");
    let listed: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.bob).await.json();
    assert!(listed.items.iter().all(|d| d.one_time_prekey_count == 0));
}

async fn a_device_id_belongs_to_the_first_user_who_published_it(app: TestApp) {
    let cast = app.cast().await;
    let mut alices = Device::generate("shared-name").expect("test value");
    let original: DeviceKeysBody =
        publish(&app, &cast.alice, "shared-name", &alices.publish_request(1).expect("test value")).await.json();
    let mut bobs = Device::generate("shared-name").expect("test value");
    publish(&app, &cast.bob, "shared-name", &bobs.publish_request(5).expect("test value"))
        .await
        .assert_error(409, "conflict");
    let listed: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.bob).await.json();
    assert_eq!(listed.items, vec![original]);
    let bobs_devices: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.bob.id), &cast.alice).await.json();
    assert_eq!(bobs_devices.items, []);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_past_the_per_minute_budget_are_rate_limited() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("RATE_LIMIT_KEY_CLAIMS_PER_MINUTE", "2")]).await.expect("sqlite");
    let cast = app.cast().await;
    let mut phone = Device::generate("phone").expect("test value");
    publish(&app, &cast.alice, "phone", &phone.publish_request(5).expect("test value")).await.assert_status(200);
    claim(&app, &cast.bob, cast.alice.id).await.assert_status(200);
    claim(&app, &cast.bob, cast.alice.id).await.assert_status(200);
    let limited = app
        .client
        .post(format!("{}/keys/users/{}/claim", app.base, cast.alice.id))
        .bearer_auth(&cast.bob.token)
        .send()
        .await
        .expect("test value");
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().get("retry-after").is_some());
    // The budget is the caller's: Alice still claims.
    claim(&app, &cast.alice, cast.alice.id).await.assert_status(200);
    // The refused claim handed nothing out: 5 - 3 claimed.
    let listed: Page<DeviceKeysBody> = app.get(&format!("/keys/users/{}", cast.alice.id), &cast.alice).await.json();
    assert_eq!(listed.items[0].one_time_prekey_count, 2);
}
