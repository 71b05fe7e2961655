use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Cast, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_stranger_to_the_workspace_gets_404_from_every_route_and_changes_nothing,
    presence_is_set_and_listed_per_workspace
);

/// Everything alice can observe of the workspace, to compare before and after an attack.
async fn snapshot(app: &TestApp, cast: &Cast, conversations: &[uuid::Uuid]) -> Vec<Value> {
    let mut out = vec![
        app.get(&format!("/workspaces/{}", cast.workspace), &cast.alice).await.body,
        app.get(&format!("/workspaces/{}/members", cast.workspace), &cast.alice).await.body,
        app.get(&format!("/chat/presence/{}", cast.workspace), &cast.alice).await.body,
        app.get(&format!("/chat/conversations?workspaceId={}", cast.workspace), &cast.alice).await.body,
        app.get(&format!("/chat/workspaces/{}/unread-count", cast.workspace), &cast.bob).await.body,
    ];
    for id in conversations {
        out.push(app.get(&format!("/chat/conversations/{id}"), &cast.alice).await.body);
        out.push(app.get(&format!("/chat/conversations/{id}/members"), &cast.alice).await.body);
        out.push(app.get(&format!("/chat/conversations/{id}/messages?limit=100"), &cast.alice).await.body);
    }
    out
}

async fn a_stranger_to_the_workspace_gets_404_from_every_route_and_changes_nothing(app: TestApp) {
    let cast = app.cast().await;
    let ws = cast.workspace;
    let channel = app.channel(&cast.alice, ws, "general", &[&cast.bob]).await;
    let group = app.group(&cast.alice, ws, "private", &[&cast.bob]).await;
    let dm = app
        .create_conversation(&cast.alice, json!({"type": "DM", "workspaceId": ws, "memberIds": [cast.bob.id]}))
        .await;
    let dm: chat_protocol::Conversation = dm.json();
    let doc = app
        .create_conversation(&cast.alice, json!({"type": "DOCUMENT", "workspaceId": ws, "documentId": "d1"}))
        .await
        .json::<chat_protocol::Conversation>();
    let conversations = [channel.id, group.id, dm.id, doc.id];
    let mut messages = Vec::new();
    for id in conversations {
        let root = app.send(&cast.alice, id, "root").await;
        messages.push(root.id);
    }
    let before = snapshot(&app, &cast, &conversations).await;

    let m = &cast.mallory;
    let (alice, bob) = (cast.alice.id, cast.bob.id);
    let mut attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/workspaces/{ws}"), None),
        (Method::GET, format!("/workspaces/{ws}/members"), None),
        (Method::POST, format!("/workspaces/{ws}/members"), Some(json!({"userId": m.id}))),
        (Method::POST, format!("/workspaces/{ws}/members"), Some(json!({"email": m.email, "role": "admin"}))),
        (Method::DELETE, format!("/workspaces/{ws}/members/{bob}"), None),
        (Method::DELETE, format!("/workspaces/{ws}/members/{alice}"), None),
        (Method::GET, format!("/chat/conversations?workspaceId={ws}"), None),
        (Method::GET, format!("/chat/workspaces/{ws}/unread-count"), None),
        (Method::PUT, "/chat/presence".to_owned(), Some(json!({"status": "online", "workspaceId": ws}))),
        (Method::GET, format!("/chat/presence/{ws}"), None),
    ];
    for kind in ["CHANNEL", "GROUP", "DOCUMENT"] {
        attempts.push((
            Method::POST,
            "/chat/conversations".to_owned(),
            Some(json!({"type": kind, "workspaceId": ws, "name": "x", "documentId": if kind == "DOCUMENT" { json!("d1") } else { Value::Null }})),
        ));
    }
    attempts.push((
        Method::POST,
        "/chat/conversations".to_owned(),
        Some(json!({"type": "DM", "workspaceId": ws, "memberIds": [alice]})),
    ));
    for (id, message) in conversations.iter().zip(&messages) {
        let c = format!("/chat/conversations/{id}");
        attempts.extend([
            (Method::GET, c.clone(), None),
            (Method::PUT, c.clone(), Some(json!({"name": "pwned"}))),
            (Method::DELETE, c.clone(), None),
            (Method::GET, format!("{c}/members"), None),
            (Method::POST, format!("{c}/members"), Some(json!({"userId": m.id}))),
            (Method::POST, format!("{c}/participants"), Some(json!({"userId": m.id}))),
            (Method::DELETE, format!("{c}/members/{bob}"), None),
            (Method::PUT, format!("{c}/members/{bob}/role"), Some(json!({"role": "member"}))),
            (Method::POST, format!("{c}/read"), Some(json!({"seq": 1}))),
            (Method::GET, format!("{c}/messages"), None),
            (Method::GET, format!("{c}/messages?threadOf={message}"), None),
            (Method::POST, format!("{c}/messages"), Some(json!({"content": "spam"}))),
            (Method::PUT, format!("/chat/messages/{message}"), Some(json!({"content": "pwned"}))),
            (Method::PATCH, format!("/chat/messages/{message}"), Some(json!({"content": "pwned"}))),
            (Method::DELETE, format!("/chat/messages/{message}"), None),
            (Method::POST, format!("/chat/messages/{message}/reactions"), Some(json!({"emoji": "💀"}))),
        ]);
    }
    for (method, path, body) in attempts {
        let reply = app.call(method.clone(), &path, Some(&m.token), body).await;
        assert_eq!(reply.status.as_u16(), 404, "{method} {path} answered {} {}", reply.status, reply.body);
        assert_eq!(reply.body["error"]["code"], "not_found", "{method} {path}");
    }
    let after = snapshot(&app, &cast, &conversations).await;
    assert_eq!(before, after, "the stranger changed something");
}

async fn presence_is_set_and_listed_per_workspace(app: TestApp) {
    let cast = app.cast().await;
    let set = app.put("/chat/presence", &cast.bob, json!({"status": "busy", "workspaceId": cast.workspace})).await;
    set.assert_status(200);
    assert_eq!(set.body["status"], "busy");
    let list = app.get(&format!("/chat/presence/{}", cast.workspace), &cast.alice).await;
    list.assert_status(200);
    let items = list.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    let bob = items.iter().find(|p| p["userId"] == cast.bob.id.to_string()).expect("bob");
    assert_eq!(bob["status"], "busy");
    let alice = items.iter().find(|p| p["userId"] == cast.alice.id.to_string()).expect("alice");
    assert_eq!(alice["status"], "offline");
    app.put("/chat/presence", &cast.bob, json!({"status": "asleep", "workspaceId": cast.workspace}))
        .await
        .assert_error(422, "validation_failed");
}
