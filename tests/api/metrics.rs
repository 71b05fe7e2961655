//! `GET /metrics`: unauthenticated, OpenMetrics text, bounded labels (route patterns, known
//! event names), and counts that follow what the server did.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp};
use crate::ws::WAIT;

pub(crate) async fn scrape(app: &TestApp) -> String {
    let res = app.client.get(format!("{}/metrics", app.base)).send().await.expect("scraped");
    assert_eq!(res.status().as_u16(), 200);
    let content_type = res.headers()["content-type"].to_str().expect("ascii").to_owned();
    assert!(content_type.starts_with("application/openmetrics-text"), "{content_type}");
    res.text().await.expect("body")
}

/// The value of one series (`name{labels}`), if the scrape has it.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[track_caller]
fn assert_sample(text: &str, series: &str, expected: f64) {
    assert_eq!(sample(text, series), Some(expected), "{series} in\n{text}");
}

/// Scrapes until `series` reads `expected`, for at most [`WAIT`].
async fn eventually(app: &TestApp, series: &str, expected: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(app).await;
        if sample(&text, series) == Some(expected) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{series} never reached {expected}:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_requests_sockets_sends_and_rate_limits() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("RATE_LIMIT_MESSAGES_PER_MINUTE", "1"), ("RATE_LIMIT_CONNECTIONS_PER_MINUTE", "1")],
    )
    .await
    .expect("sqlite");
    let alice = app.register("alice").await;
    let workspace = app.create_workspace(&alice, "Acme").await;
    app.get(&format!("/workspaces/{}", workspace.id), &alice).await.assert_status(200);
    let stranger = Uuid::new_v4();
    app.get(&format!("/workspaces/{stranger}"), &alice).await.assert_status(404);
    app.get(&format!("/no/such/{stranger}"), &alice).await.assert_status(404);
    let channel = app.channel(&alice, workspace.id, "general", &[]).await;

    let mut ws = app.ws_in(&alice, workspace.id).await;
    ws.ok("send_message", json!({"conversationId": channel.id, "content": "hello"})).await;
    ws.push_where("message:new", WAIT, |d: &Value| d["message"]["content"] == "hello").await;
    ws.fails("send_message", json!({"conversationId": channel.id, "content": "again"}), "rate_limited").await;
    ws.fails("shout", json!({}), "bad_request").await;
    app.post(&format!("/chat/conversations/{}/messages", channel.id), &alice, json!({"content": "rest"}))
        .await
        .assert_error(429, "rate_limited");
    let url = format!("{}/chat/ws?token={}", app.base.replace("http://", "ws://"), alice.token);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status().as_u16(), 429),
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }

    let text = scrape(&app).await;
    let requests = "chat_http_requests_total";
    assert_sample(&text, &format!(r#"{requests}{{method="POST",route="/auth/register",status="201"}}"#), 1.0);
    assert_sample(&text, &format!(r#"{requests}{{method="POST",route="/workspaces",status="201"}}"#), 1.0);
    assert_sample(&text, &format!(r#"{requests}{{method="GET",route="/workspaces/{{id}}",status="200"}}"#), 1.0);
    assert_sample(&text, &format!(r#"{requests}{{method="GET",route="/workspaces/{{id}}",status="404"}}"#), 1.0);
    assert_sample(&text, &format!(r#"{requests}{{method="GET",route="<unmatched>",status="404"}}"#), 1.0);
    assert_sample(
        &text,
        &format!(r#"{requests}{{method="POST",route="/chat/conversations/{{id}}/messages",status="429"}}"#),
        1.0,
    );
    assert_sample(&text, &format!(r#"{requests}{{method="GET",route="/chat/ws",status="101"}}"#), 1.0);
    assert_sample(&text, &format!(r#"{requests}{{method="GET",route="/chat/ws",status="429"}}"#), 1.0);
    assert!(!text.contains(&stranger.to_string()) && !text.contains(&workspace.id.to_string()), "raw paths:\n{text}");
    assert_sample(&text, r#"chat_http_request_duration_seconds_count{method="POST",route="/workspaces"}"#, 1.0);

    assert_sample(&text, "chat_ws_connections", 1.0);
    assert_sample(&text, r#"chat_ws_frames_in_total{event="join_workspace"}"#, 1.0);
    assert_sample(&text, r#"chat_ws_frames_in_total{event="send_message"}"#, 2.0);
    assert_sample(&text, r#"chat_ws_frames_in_total{event="unknown"}"#, 1.0);
    assert!(sample(&text, "chat_ws_frames_out_total").is_some_and(|n| n >= 1.0), "{text}");
    assert!(sample(&text, "chat_ws_queue_depth").is_some(), "{text}");
    assert_sample(&text, "chat_ws_slow_consumer_disconnects_total", 0.0);
    assert_sample(&text, r#"chat_message_send_seconds_count{transport="ws"}"#, 1.0);
    assert_eq!(sample(&text, r#"chat_message_send_seconds_count{transport="rest"}"#), None, "refused: not timed");
    assert_sample(&text, r#"chat_rate_limited_total{kind="messages"}"#, 2.0);
    assert_sample(&text, r#"chat_rate_limited_total{kind="connections"}"#, 1.0);

    drop(ws);
    eventually(&app, "chat_ws_connections", 0.0).await;
    let openapi = app.call(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert!(openapi.body["paths"].get("/metrics").is_none(), "/metrics is not part of the API document");
}
