use chat_protocol::{Message, Page};
use serde_json::json;
use std::collections::HashSet;

use crate::helpers::TestApp;
use crate::on_both_stores;

on_both_stores!(
    a_message_is_sent_read_edited_reacted_to_and_deleted,
    fifty_concurrent_senders_get_seqs_one_to_fifty,
    twenty_concurrent_retries_of_one_client_msg_id_make_one_message,
    threads_attach_replies_to_their_root,
    history_pages_newest_first_and_after_a_seq,
    content_is_sanitised_and_bounded,
);

async fn a_message_is_sent_read_edited_reacted_to_and_deleted(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "general", &[&cast.bob]).await;
    let sent = app.send(&cast.alice, channel.id, "hello world").await;
    assert_eq!(sent.seq, 1);
    assert_eq!(sent.kind, "text");
    assert_eq!(sent.sender_id, cast.alice.id);
    assert!(!sent.is_encrypted);
    let page = app.messages(&cast.bob, channel.id, "").await;
    assert_eq!(page.items, vec![sent.clone()]);
    assert_eq!(page.next_cursor, None);

    let path = format!("/chat/messages/{}", sent.id);
    app.put(&path, &cast.bob, json!({"content": "not yours"})).await.assert_error(403, "forbidden");
    let edited = app
        .call(reqwest::Method::PATCH, &path, Some(&cast.alice.token), Some(json!({"content": "hello, world"})))
        .await;
    edited.assert_status(200);
    let edited: Message = edited.json();
    assert_eq!(edited.content, "hello, world");
    assert!(edited.edited_at.is_some());
    assert_eq!(edited.seq, 1);

    let reacted: Message = app.post(&format!("{path}/reactions"), &cast.bob, json!({"emoji": "👍"})).await.json();
    assert_eq!(reacted.reactions.get("👍"), Some(&vec![cast.bob.id]));
    let both: Message = app.post(&format!("{path}/reactions"), &cast.alice, json!({"emoji": "👍"})).await.json();
    assert_eq!(both.reactions.get("👍").map(Vec::len), Some(2));
    let toggled: Message = app.post(&format!("{path}/reactions"), &cast.bob, json!({"emoji": "👍"})).await.json();
    assert_eq!(toggled.reactions.get("👍"), Some(&vec![cast.alice.id]));
    let gone: Message = app.post(&format!("{path}/reactions"), &cast.alice, json!({"emoji": "👍"})).await.json();
    assert!(gone.reactions.is_empty(), "an emoji with no users is absent");
    app.post(&format!("{path}/reactions"), &cast.alice, json!({"emoji": "way too long emoji"}))
        .await
        .assert_error(422, "validation_failed");

    app.delete(&path, &cast.bob).await.assert_error(403, "forbidden");
    app.delete(&path, &cast.alice).await.assert_status(204);
    let after = app.messages(&cast.bob, channel.id, "").await;
    assert_eq!(after.items.len(), 1, "a deleted message keeps its row");
    assert_eq!(after.items[0].content, "");
    assert!(after.items[0].deleted_at.is_some());
    assert_eq!(after.items[0].seq, 1);
    let next = app.send(&cast.alice, channel.id, "next").await;
    assert_eq!(next.seq, 2, "seq continues after a deletion");
}

async fn fifty_concurrent_senders_get_seqs_one_to_fifty(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "busy", &[&cast.bob]).await;
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let replies = futures_util::future::join_all((0..50).map(|i| {
        let user = if i % 2 == 0 { &cast.alice } else { &cast.bob };
        app.post(&path, user, json!({"content": format!("message {i}")}))
    }))
    .await;
    let mut seqs: Vec<i64> = replies
        .iter()
        .map(|r| {
            r.assert_status(201);
            r.json::<Message>().seq
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=50).collect::<Vec<_>>());
    let stored = app.messages(&cast.alice, channel.id, "?after=0&limit=100").await;
    let stored_seqs: Vec<i64> = stored.items.iter().map(|m| m.seq).collect();
    assert_eq!(stored_seqs, (1..=50).collect::<Vec<_>>());
}

async fn twenty_concurrent_retries_of_one_client_msg_id_make_one_message(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "retries", &[]).await;
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let body = json!({"content": "exactly once", "clientMsgId": "client-123"});
    let replies = futures_util::future::join_all((0..20).map(|_| app.post(&path, &cast.alice, body.clone()))).await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    let replayed = replies.iter().filter(|r| r.status.as_u16() == 200).count();
    assert_eq!((created, replayed), (1, 19));
    let ids: HashSet<_> = replies.iter().map(|r| r.json::<Message>().id).collect();
    assert_eq!(ids.len(), 1);
    let stored = app.messages(&cast.alice, channel.id, "").await;
    assert_eq!(stored.items.len(), 1);
    // The next message takes seq 2: no seq was consumed by the retries.
    assert_eq!(app.send(&cast.alice, channel.id, "next").await.seq, 2);
}

async fn threads_attach_replies_to_their_root(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "threads", &[&cast.bob]).await;
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let root = app.send(&cast.alice, channel.id, "root").await;
    let reply: Message = app.post(&path, &cast.bob, json!({"content": "reply", "replyToId": root.id})).await.json();
    assert_eq!(reply.reply_to_id, Some(root.id));
    let nested: Message =
        app.post(&path, &cast.alice, json!({"content": "nested", "replyToId": reply.id})).await.json();
    assert_eq!(nested.reply_to_id, Some(root.id), "replies to replies attach to the root");
    app.send(&cast.bob, channel.id, "unrelated").await;
    let thread = app.messages(&cast.bob, channel.id, &format!("?threadOf={}", root.id)).await;
    let contents: Vec<&str> = thread.items.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["root", "reply", "nested"]);
    assert_eq!(thread.items[0].reply_count, 2);
    let main = app.messages(&cast.bob, channel.id, "").await;
    assert_eq!(main.items.len(), 4, "the main list contains every message");
    // A reply to a message of another conversation names nothing here.
    let other = app.channel(&cast.alice, cast.workspace, "other", &[]).await;
    app.post(
        &format!("/chat/conversations/{}/messages", other.id),
        &cast.alice,
        json!({"content": "x", "replyToId": root.id}),
    )
    .await
    .assert_error(404, "not_found");
}

async fn history_pages_newest_first_and_after_a_seq(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "history", &[]).await;
    for i in 1..=120 {
        app.send(&cast.alice, channel.id, &format!("m{i}")).await;
    }
    let first = app.messages(&cast.alice, channel.id, "").await;
    assert_eq!(first.items.len(), 50, "default limit");
    assert_eq!(first.items[0].seq, 120, "newest first");
    assert_eq!(first.next_cursor.as_deref(), Some("71"));
    let capped = app.messages(&cast.alice, channel.id, "?limit=500").await;
    assert_eq!(capped.items.len(), 100, "limit capped at 100");
    let second = app.messages(&cast.alice, channel.id, "?before=71&limit=50").await;
    assert_eq!(second.items.first().map(|m| m.seq), Some(70));
    let last = app.messages(&cast.alice, channel.id, "?before=21&limit=50").await;
    assert_eq!(last.items.len(), 20);
    assert_eq!(last.next_cursor, None);
    let after = app.messages(&cast.alice, channel.id, "?after=100&limit=10").await;
    let seqs: Vec<i64> = after.items.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (101..=110).collect::<Vec<_>>());
    assert_eq!(after.next_cursor.as_deref(), Some("110"));
    let offset = app.messages(&cast.alice, channel.id, "?offset=5&limit=1").await;
    assert_eq!(offset.items[0].seq, 115);
    app.get(&format!("/chat/conversations/{}/messages?limit=abc", channel.id), &cast.alice)
        .await
        .assert_error(422, "validation_failed");
}

async fn content_is_sanitised_and_bounded(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "safety", &[]).await;
    let path = format!("/chat/conversations/{}/messages", channel.id);
    let sent = app.send(&cast.alice, channel.id, "<img src=x onerror=alert(1)>hi <b>there</b>\u{202E}").await;
    assert_eq!(sent.content, "hi there");
    app.post(&path, &cast.alice, json!({"content": "x".repeat(4001)})).await.assert_error(413, "payload_too_large");
    app.post(&path, &cast.alice, json!({"content": "<script>alert(1)</script>"}))
        .await
        .assert_error(422, "validation_failed");
    app.post(&path, &cast.alice, json!({"content": "   "})).await.assert_error(422, "validation_failed");
    app.post(&path, &cast.alice, json!({"content": "x", "type": "system"}))
        .await
        .assert_error(422, "validation_failed");
    app.post(&path, &cast.alice, json!({"content": "x", "attachments": [{"id": uuid::Uuid::now_v7()}]}))
        .await
        .assert_error(422, "validation_failed");
    let page: Page<Message> = app.messages(&cast.alice, channel.id, "").await;
    assert_eq!(page.items.len(), 1, "refused messages changed nothing");
    assert_eq!(app.send(&cast.alice, channel.id, &"y".repeat(4000)).await.seq, 2);
}
