//! Real server processes (the `chat-server` binary): two nodes sharing PostgreSQL and Redis
//! behave as one, and SIGTERM closes every socket with 1001.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::helpers::{TestApp, TestUser, random_hex};
use crate::ws::WAIT;

/// One running `chat-server` process, killed when dropped.
struct Node {
    child: Child,
    /// Reuses the API suite's client helpers against this process.
    app: TestApp,
}

/// Starts the binary with `vars` on a free port and waits until it listens.
async fn start(vars: &[(&str, String)]) -> Node {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIND", "127.0.0.1:0")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("RATE_LIMIT_MESSAGES_PER_MINUTE", "0")
        .env("RATE_LIMIT_CONNECTIONS_PER_MINUTE", "0")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-server starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("log line") {
            let Ok(entry) = serde_json::from_str::<Value>(&line) else { continue };
            if entry["fields"]["message"] == "chat-server listening" {
                return entry["fields"]["port"].as_u64().expect("port");
            }
        }
        panic!("chat-server exited before listening");
    })
    .await
    .expect("chat-server listens within 30 s");
    // Keep draining the log so the process never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Node { child, app: TestApp::attach(&format!("http://127.0.0.1:{port}")) }
}

async fn login(node: &Node, user: &TestUser) -> TestUser {
    let reply = node
        .app
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(json!({"email": user.email, "password": "correct horse battery"})),
        )
        .await;
    reply.assert_status(200);
    let auth: chat_protocol::AuthResponse = reply.json();
    TestUser { token: auth.access_token, refresh: auth.refresh_token, ..user.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_postgres_and_redis_behave_as_one() {
    let Some(db) = chat_postgres::testing::fresh_database().await else { return };
    let Some(redis) = chat_redis::testing::redis_url().await else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = [
        ("DATABASE_URL", db.url().to_owned()),
        ("REDIS_URL", redis),
        ("REDIS_NAMESPACE", chat_redis::testing::namespace()),
        ("JWT_SECRET", random_hex(32)),
        ("ENCRYPTION_KEY", random_hex(32)),
        ("DATA_DIR", dir.path().display().to_string()),
    ];
    let a = start(&shared).await;
    let b = start(&shared).await;

    let cast = a.app.cast().await;
    let group = a.app.group(&cast.alice, cast.workspace, "across", &[&cast.bob]).await;
    let bob_b = login(&b, &cast.bob).await;

    let mut bob = b.app.ws_in(&bob_b, cast.workspace).await;
    let mut alice = a.app.ws_in(&cast.alice, cast.workspace).await;
    let is_alice = |p: &Value| p["userId"] == cast.alice.id.to_string();
    // Presence is global: bob, on B, sees alice come online on A.
    assert_eq!(bob.push_where("presence_update", WAIT, is_alice).await["status"], "online");

    // A → B: a socket send on A reaches bob's socket on B, with the same seq.
    let acked = alice.ok("send_message", json!({"conversationId": group.id, "content": "from node A"})).await;
    let seen = bob.push("message:new").await;
    assert_eq!(seen["message"], acked);
    assert_eq!(seen["message"]["seq"], 1);
    // B → A, over REST on B.
    let sent = b.app.send(&bob_b, group.id, "from node B").await;
    let seen = alice.push_where("message:new", WAIT, |d| d["message"]["id"] == sent.id.to_string()).await;
    assert_eq!(seen["message"]["id"], sent.id.to_string());
    assert_eq!((sent.seq, seen["message"]["seq"].as_i64()), (2, Some(2)));

    // Typing crosses nodes both ways.
    bob.ok("typing_start", json!({"conversationId": group.id})).await;
    assert_eq!(alice.push("typing:start").await["userId"], cast.bob.id.to_string());
    bob.ok("typing_stop", json!({"conversationId": group.id})).await;
    assert_eq!(alice.push("typing:stop").await["userId"], cast.bob.id.to_string());

    // Alice also connects on B; closing her socket on A keeps her online (connections are
    // counted across nodes); closing the last one makes her offline everywhere.
    let alice_b = login(&b, &cast.alice).await;
    let mut alice_on_b = b.app.ws_in(&alice_b, cast.workspace).await;
    alice_on_b.ok("ping", json!({})).await;
    drop(alice);
    alice_on_b.ok("update_presence", json!({"status": "away", "workspaceId": cast.workspace})).await;
    assert_eq!(bob.push_where("presence_update", WAIT, is_alice).await["status"], "away", "not offline first");
    drop(alice_on_b);
    assert_eq!(bob.push_where("presence_update", WAIT, is_alice).await["status"], "offline");
    let listed = a.app.get(&format!("/chat/presence/{}", cast.workspace), &cast.bob).await;
    let record = listed.body["items"].as_array().expect("items").iter().find(|p| is_alice(p)).cloned().expect("alice");
    assert_eq!(record["status"], "offline", "A reads what B stored");
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_with_1001_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = start(&[("DATA_DIR", dir.path().display().to_string())]).await;
    let cast = node.app.cast().await;
    let mut first = node.app.ws_in(&cast.alice, cast.workspace).await;
    let mut second = node.app.ws_in(&cast.bob, cast.workspace).await;
    second.ok("ping", json!({})).await;
    let pid = node.child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    assert_eq!(first.closed(Duration::from_secs(10)).await, Some(1001));
    assert_eq!(second.closed(Duration::from_secs(10)).await, Some(1001));
    let exit =
        tokio::time::timeout(Duration::from_secs(15), node.child.wait()).await.expect("exits in time").expect("status");
    assert!(exit.success(), "{exit:?}");
}
