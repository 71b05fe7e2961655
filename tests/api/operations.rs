use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_stores;

on_both_stores!(
    health_readiness_and_openapi_are_served,
    malformed_bodies_are_400_and_unknown_fields_are_refused,
    oversize_bodies_are_413_before_parsing,
    errors_carry_a_request_id_matching_the_header,
    no_message_plaintext_reaches_the_store,
);

async fn health_readiness_and_openapi_are_served(app: TestApp) {
    app.call(Method::GET, "/healthz", None, None).await.assert_status(200);
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    ready.assert_status(200);
    assert_eq!(ready.body["status"], "ok");
    let doc = app.call(Method::GET, "/openapi.json", None, None).await;
    doc.assert_status(200);
    let paths = doc.body["paths"].as_object().expect("paths");
    for path in [
        "/auth/register",
        "/auth/login",
        "/auth/refresh",
        "/auth/me",
        "/workspaces",
        "/workspaces/{id}",
        "/workspaces/{id}/members",
        "/workspaces/{id}/members/{uid}",
        "/chat/conversations",
        "/chat/conversations/{id}",
        "/chat/conversations/{id}/messages",
        "/chat/messages/{id}",
        "/chat/messages/{id}/reactions",
        "/chat/conversations/{id}/members",
        "/chat/conversations/{id}/participants",
        "/chat/conversations/{id}/members/{uid}",
        "/chat/conversations/{id}/members/{uid}/role",
        "/chat/conversations/{id}/read",
        "/chat/presence",
        "/chat/presence/{workspace_id}",
        "/chat/workspaces/{id}/unread-count",
    ] {
        assert!(paths.contains_key(path), "openapi.json lacks {path}");
    }
    let unknown = app.call(Method::GET, "/no/such/route", None, None).await;
    unknown.assert_error(404, "not_found");
}

async fn malformed_bodies_are_400_and_unknown_fields_are_refused(app: TestApp) {
    let alice = app.register("alice").await;
    let raw = app
        .client
        .post(format!("{}/workspaces", app.base))
        .bearer_auth(&alice.token)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(raw.status().as_u16(), 400);
    let body: Value = raw.json().await.expect("json");
    assert_eq!(body["error"]["code"], "bad_request");

    app.post("/workspaces", &alice, json!({"name": "Acme", "extra": true})).await.assert_error(400, "bad_request");
    app.post("/workspaces", &alice, json!({"title": "Acme"})).await.assert_error(400, "bad_request");
    app.post("/workspaces", &alice, json!({})).await.assert_error(422, "validation_failed");
    app.post("/workspaces", &alice, json!({"name": 42})).await.assert_error(422, "validation_failed");
    // Nothing was created by any of them.
    let list = app.get("/workspaces", &alice).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(0));
}

async fn oversize_bodies_are_413_before_parsing(app: TestApp) {
    let alice = app.register("alice").await;
    let huge = "x".repeat(400 * 1024);
    app.post("/workspaces", &alice, json!({"name": huge})).await.assert_error(413, "payload_too_large");
}

async fn errors_carry_a_request_id_matching_the_header(app: TestApp) {
    let res = app.client.get(format!("{}/auth/me", app.base)).send().await.expect("sent");
    let header = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned).expect("header");
    let body: Value = res.json().await.expect("json");
    assert_eq!(body["error"]["requestId"], header.as_str());
}

async fn no_message_plaintext_reaches_the_store(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "secrets", &[&cast.bob]).await;
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    for i in 0..20 {
        app.send(&cast.alice, channel.id, &format!("{marker} number {i}")).await;
    }
    let edited = app.send(&cast.bob, channel.id, "to be edited").await;
    app.put(&format!("/chat/messages/{}", edited.id), &cast.bob, json!({"content": format!("{marker} edited")}))
        .await
        .assert_status(200);
    // The API still reads them back.
    let page = app.messages(&cast.alice, channel.id, "?limit=100").await;
    assert_eq!(page.items.iter().filter(|m| m.content.contains(marker)).count(), 21);

    let dump = app.raw_storage_dump().await;
    assert!(!dump.is_empty());
    let hex_marker: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
    let haystack = String::from_utf8_lossy(&dump);
    assert!(!haystack.contains(marker), "plaintext found in the store");
    assert!(!haystack.contains(&hex_marker), "hex-encoded plaintext found in the store");
    assert!(!haystack.contains("to be edited"), "pre-edit plaintext found in the store");
}
