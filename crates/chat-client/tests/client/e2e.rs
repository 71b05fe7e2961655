//! The acceptance test of end-to-end encrypted DMs: two users with two devices each talk
//! through a running server; every device decrypts, the server holds only envelopes, and a
//! device added later changes the safety number.

use chat_client::ChatClient;
use chat_client::e2e::{Bundle, Device, E2eError, safety_number};
use chat_client::protocol::{ListMessagesQuery, Message, SendMessageRequest};
use uuid::Uuid;

use crate::helpers::{Cast, PASSWORD, TestServer, conversation};

/// A device of a user, with its own signed-in client (its own session, as on a real phone).
struct Phone {
    client: ChatClient,
    device: Device,
}

async fn phone(server: &TestServer, email: &str, device_id: &str) -> Phone {
    let client = server.client();
    client.login(email, PASSWORD).await.expect("login");
    let mut device = Device::generate(device_id).expect("keys");
    let published = device.publish(&client, 5).await.expect("publish");
    assert_eq!(published.one_time_prekey_count, 5);
    Phone { client, device }
}

async fn send(phone: &mut Phone, conversation: Uuid, users: &[Uuid], text: &str) -> Message {
    let envelope =
        phone.device.encrypt_for(&phone.client, conversation, text.as_bytes(), users).await.expect("encrypt");
    let body = SendMessageRequest {
        content: envelope.clone(),
        kind: None,
        reply_to_id: None,
        client_msg_id: None,
        attachments: Vec::new(),
    };
    let sent = phone.client.send_message(conversation, &body).await.expect("send").into_message();
    assert!(sent.is_encrypted);
    assert_eq!(sent.content, envelope, "stored and returned byte for byte");
    sent
}

/// Reads the conversation's newest message through this device's own client and decrypts it.
async fn receive(phone: &mut Phone, conversation: Uuid, expected: &Message) -> String {
    let page = phone
        .client
        .list_messages(conversation, &ListMessagesQuery { limit: Some(1), ..ListMessagesQuery::default() })
        .await
        .expect("history");
    let message = &page.items[0];
    assert_eq!(message.id, expected.id);
    assert_eq!(message.content, expected.content, "the envelope comes back byte for byte");
    let plaintext = phone
        .device
        .decrypt_from(&phone.client, conversation, message.sender_id, &message.content)
        .await
        .expect("decrypt");
    String::from_utf8(plaintext).expect("utf-8")
}

async fn devices(client: &ChatClient, users: &[Uuid]) -> Vec<Bundle> {
    let mut all = Vec::new();
    for &user in users {
        let listed = client.device_keys(user).await.expect("list devices");
        all.extend(listed.items.iter().map(|d| Bundle::from_listed(d).expect("valid bundle")));
    }
    all
}

async fn one_time_left(client: &ChatClient, user: Uuid, device: &str) -> u64 {
    let listed = client.device_keys(user).await.expect("list devices");
    listed.items.iter().find(|d| d.device_id == device).expect("device listed").one_time_prekey_count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_with_two_devices_each_exchange_encrypted_dms_that_only_their_devices_read() {
    let server = TestServer::spawn().await;
    let cast = Cast::new(&server).await;
    let (alice, bob) = (cast.alice_id, cast.bob_id);
    let mut request = conversation("DM", cast.workspace.id, None, &[bob]);
    request.is_encrypted = true;
    let dm = cast.alice.create_conversation(&request).await.expect("encrypted DM").into_inner();
    assert!(dm.is_encrypted);
    let users = [alice, bob];

    let mut a1 = phone(&server, "alice@example.test", "alice-phone").await;
    let mut a2 = phone(&server, "alice@example.test", "alice-laptop").await;
    let mut b1 = phone(&server, "bob@example.test", "bob-phone").await;
    let mut b2 = phone(&server, "bob@example.test", "bob-laptop").await;

    // Alice's phone writes: her laptop and both of Bob's devices read it.
    let secret = "the treasure is under the third oak 7f3a9c";
    let first = send(&mut a1, dm.id, &users, secret).await;
    let envelope: serde_json::Value = serde_json::from_str(&first.content).expect("an envelope");
    assert_eq!(envelope["v"], 1);
    assert_eq!(envelope["senderDevice"], "alice-phone");
    let mut addressed: Vec<&String> = envelope["recipients"].as_object().expect("recipients").keys().collect();
    addressed.sort();
    assert_eq!(addressed, ["alice-laptop", "bob-laptop", "bob-phone"], "every device of both users but the sender");
    assert!(!first.content.contains("treasure"));
    for reader in [&mut a2, &mut b1, &mut b2] {
        assert_eq!(receive(reader, dm.id, &first).await, secret);
    }
    // The sender's own device is not a recipient (it knows what it wrote).
    assert!(matches!(
        a1.device.decrypt_from(&a1.client, dm.id, alice, &first.content).await,
        Err(E2eError::NotForThisDevice)
    ));
    // One claim per recipient device: one one-time prekey each is spent.
    for (user, device) in [(alice, "alice-laptop"), (bob, "bob-phone"), (bob, "bob-laptop")] {
        assert_eq!(one_time_left(&a1.client, user, device).await, 4, "{device}");
    }

    // Bob's laptop answers; Alice's two devices and Bob's phone read it.
    let reply = send(&mut b2, dm.id, &users, "and the map? 51c0de").await;
    for reader in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(receive(reader, dm.id, &reply).await, "and the map? 51c0de");
    }

    // A second message from Alice's phone reuses its sessions: no claim, no prekey spent.
    let again = send(&mut a1, dm.id, &users, "in the attic").await;
    for reader in [&mut a2, &mut b1, &mut b2] {
        assert_eq!(receive(reader, dm.id, &again).await, "in the attic");
    }
    assert_eq!(one_time_left(&a1.client, bob, "bob-phone").await, 3, "only Bob's laptop's answer claimed another");

    // The server never had the plaintext: not in the database file, nor in its WAL.
    let mut raw = Vec::new();
    for file in ["chat.db", "chat.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir().join(file)) {
            raw.extend(bytes);
        }
    }
    assert!(!raw.is_empty());
    for needle in ["treasure", "7f3a9c", "51c0de", "attic"] {
        assert!(!raw.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} found in the database");
    }

    // Safety numbers: both users see the same 60 digits...
    let seen_by_alice = safety_number(alice, bob, &devices(&a1.client, &users).await);
    let seen_by_bob = safety_number(bob, alice, &devices(&b1.client, &users).await);
    assert_eq!(seen_by_alice.len(), 60);
    assert_eq!(seen_by_alice, seen_by_bob);

    // ...until Bob adds a third device: the number changes, for both of them alike.
    let mut b3 = phone(&server, "bob@example.test", "bob-tablet").await;
    let after_alice = safety_number(alice, bob, &devices(&a2.client, &users).await);
    let after_bob = safety_number(bob, alice, &devices(&b3.client, &users).await);
    assert_ne!(after_alice, seen_by_alice);
    assert_eq!(after_alice, after_bob);

    // The new device reads what is written from now on, and nothing from before.
    assert!(matches!(
        b3.device.decrypt_from(&b3.client, dm.id, alice, &again.content).await,
        Err(E2eError::NotForThisDevice)
    ));
    let later = send(&mut a2, dm.id, &users, "welcome, tablet").await;
    for reader in [&mut a1, &mut b1, &mut b2, &mut b3] {
        assert_eq!(receive(reader, dm.id, &later).await, "welcome, tablet");
    }
}
