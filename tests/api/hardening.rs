//! Hardening: security headers on every response, CORS only for `CORS_ORIGIN`, and logs that
//! never hold a password, a token or a secret.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message as Frame;

use crate::helpers::{Backend, TestApp, random_hex};

const ORIGIN: &str = "https://app.example.test";

async fn raw(app: &TestApp, method: Method, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = app.client.request(method, format!("{}{path}", app.base));
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.send().await.expect("request sent")
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    res.headers().get(name).map(|v| v.to_str().expect("ascii header"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let alice = app.register("alice").await;
    let auth = format!("Bearer {}", alice.token);
    let cases = [
        (Method::GET, "/healthz", None),
        (Method::GET, "/auth/me", None),
        (Method::GET, "/auth/me", Some(auth.as_str())),
        (Method::GET, "/no/such/route", None),
        (Method::GET, "/openapi.json", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/chat/ws", None),
    ];
    for (method, path, authorization) in cases {
        let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
        let res = raw(&app, method.clone(), path, &headers).await;
        let status = res.status();
        for (name, expected) in [
            ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
            ("x-frame-options", "DENY"),
            ("x-content-type-options", "nosniff"),
            ("referrer-policy", "no-referrer"),
        ] {
            assert_eq!(header(&res, name), Some(expected), "{method} {path} ({status}): {name}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_cors_origin_no_cors_headers_are_sent() {
    let app = TestApp::spawn(Backend::Sqlite).await.expect("sqlite");
    let alice = app.register("alice").await;
    let auth = format!("Bearer {}", alice.token);
    let simple = raw(&app, Method::GET, "/auth/me", &[("origin", ORIGIN), ("authorization", &auth)]).await;
    assert_eq!(simple.status(), 200);
    let preflight = raw(
        &app,
        Method::OPTIONS,
        "/auth/me",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "authorization"),
        ],
    )
    .await;
    for res in [&simple, &preflight] {
        let cors: Vec<_> = res.headers().keys().filter(|name| name.as_str().starts_with("access-control-")).collect();
        assert!(cors.is_empty(), "{}: {cors:?}", res.status());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_cors_origin_only_that_origin_is_allowed_without_credentials() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[("CORS_ORIGIN", ORIGIN)]).await.expect("sqlite");
    let alice = app.register("alice").await;
    let auth = format!("Bearer {}", alice.token);

    let preflight = raw(
        &app,
        Method::OPTIONS,
        "/chat/conversations/00000000-0000-0000-0000-000000000000",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "DELETE"),
            ("access-control-request-headers", "authorization, content-type"),
        ],
    )
    .await;
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(header(&preflight, "access-control-allow-origin"), Some(ORIGIN));
    let methods = header(&preflight, "access-control-allow-methods").expect("methods").to_ascii_uppercase();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{methods}");
    }
    let headers = header(&preflight, "access-control-allow-headers").expect("headers").to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("content-type"), "{headers}");
    assert_eq!(header(&preflight, "access-control-allow-credentials"), None);

    let allowed = raw(&app, Method::GET, "/auth/me", &[("origin", ORIGIN), ("authorization", &auth)]).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(header(&allowed, "access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(header(&allowed, "access-control-allow-credentials"), None);
    assert!(header(&allowed, "access-control-expose-headers").is_some_and(|h| h.contains("x-request-id")));

    let other = "https://evil.example.test";
    let refused = raw(&app, Method::GET, "/auth/me", &[("origin", other), ("authorization", &auth)]).await;
    assert_eq!(header(&refused, "access-control-allow-origin"), None);
    let refused_preflight =
        raw(&app, Method::OPTIONS, "/auth/me", &[("origin", other), ("access-control-request-method", "GET")]).await;
    assert_eq!(header(&refused_preflight, "access-control-allow-origin"), None);
}

/// Collects every line `stream` writes into `lines`.
fn collect(stream: impl AsyncRead + Unpin + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            lines.lock().expect("lines").push(line);
        }
    });
}

/// The real binary at `RUST_LOG=trace`, both output streams captured, through register,
/// login, refresh, a token in a REST query string, and WebSocket upgrades with `?token=` and
/// with the header: no line holds the password, any access or refresh token, the JWT secret
/// or the encryption key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_log_line_holds_a_password_a_token_or_a_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (jwt_secret, encryption_key) = (random_hex(32), random_hex(32));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "trace")
        .env("DATABASE_URL", format!("sqlite://{}", dir.path().join("chat.db").display()))
        .env("DATA_DIR", dir.path())
        .env("JWT_SECRET", &jwt_secret)
        .env("ENCRYPTION_KEY", &encryption_key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-server starts");
    collect(child.stdout.take().expect("stdout"), Arc::clone(&lines));
    collect(child.stderr.take().expect("stderr"), Arc::clone(&lines));
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let found = lines.lock().expect("lines").iter().find_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                (entry["fields"]["message"] == "chat-server listening").then(|| entry["fields"]["port"].as_u64())?
            });
            if let Some(port) = found {
                return port;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("chat-server listens within 30 s");
    let app = TestApp::attach(&format!("http://127.0.0.1:{port}"));

    let password = format!("pw-{}", random_hex(12));
    let registered = app
        .call(
            Method::POST,
            "/auth/register",
            None,
            Some(json!({"email": "leaky@example.test", "password": password, "displayName": "Leaky"})),
        )
        .await;
    registered.assert_status(201);
    let login = app
        .call(Method::POST, "/auth/login", None, Some(json!({"email": "leaky@example.test", "password": password})))
        .await;
    login.assert_status(200);
    let wrong = app
        .call(
            Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": "leaky@example.test", "password": format!("{password}x")})),
        )
        .await;
    wrong.assert_status(401);
    let refresh_token = login.body["refreshToken"].as_str().expect("refresh").to_owned();
    let refreshed = app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": refresh_token}))).await;
    refreshed.assert_status(200);
    // The spent token again: reuse detection (and its audit entry) must not log it either.
    app.call(Method::POST, "/auth/refresh", None, Some(json!({"refreshToken": refresh_token})))
        .await
        .assert_status(401);
    let access = refreshed.body["accessToken"].as_str().expect("access").to_owned();
    let query =
        raw(&app, Method::GET, &format!("/auth/me?token={access}"), &[("authorization", &format!("Bearer {access}"))])
            .await;
    assert_eq!(query.status(), 200);

    let ws = format!("ws://127.0.0.1:{port}/chat/ws?token={access}");
    let (mut socket, _) = tokio_tungstenite::connect_async(ws.as_str()).await.expect("upgrade with ?token=");
    socket.send(Frame::text(r#"{"event":"ping","ref":1}"#)).await.expect("send");
    socket.next().await.expect("frame").expect("ack");
    socket.close(None).await.expect("close");
    let bad = format!("ws://127.0.0.1:{port}/chat/ws?token={access}tampered");
    assert!(tokio_tungstenite::connect_async(bad.as_str()).await.is_err());

    let secrets = [
        ("the password", password.clone()),
        ("the first access token", registered.body["accessToken"].as_str().expect("access").to_owned()),
        ("the first refresh token", registered.body["refreshToken"].as_str().expect("refresh").to_owned()),
        ("the login access token", login.body["accessToken"].as_str().expect("access").to_owned()),
        ("the spent refresh token", refresh_token),
        ("the refreshed access token", access.clone()),
        ("the refreshed refresh token", refreshed.body["refreshToken"].as_str().expect("refresh").to_owned()),
        ("the JWT secret", jwt_secret),
        ("the encryption key", encryption_key),
        // The signature alone would do an attacker no good, but it proves a token was cut up.
        ("an access token's signature", access.rsplit_once('.').expect("jwt").1.to_owned()),
    ];
    // Let the last lines (the socket closing) arrive, then stop the server.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.expect("kill");
    let lines = lines.lock().expect("lines").clone();
    assert!(lines.iter().any(|l| l.contains("\"served\"")), "the access log was captured");
    assert!(lines.len() > 50, "trace output was captured ({} lines)", lines.len());
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        for line in lines.iter().filter(|l| l.contains(secret.as_str())) {
            leaks.push(format!("{what} in: {line}"));
        }
    }
    assert!(leaks.is_empty(), "{} leaking lines:\n{}", leaks.len(), leaks.join("\n"));
}
