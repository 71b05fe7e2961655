//! `RedisBus` against a real Redis: two buses in one process stand for two server nodes.

use std::time::Duration;

use chat_domain::ids::WorkspaceId;
use chat_domain::realtime::ClusterBus;
use chat_redis::RedisBus;
use chat_redis::testing::{namespace, redis_url};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// The longest any test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(10);

/// One server node: its bus and what the bus hands to the hub.
struct Node {
    bus: RedisBus,
    inbox: mpsc::Receiver<(WorkspaceId, Vec<u8>)>,
}

impl Node {
    async fn start(url: &str, namespace: &str) -> Self {
        Self::with_capacity(url, namespace, 64).await
    }

    async fn with_capacity(url: &str, namespace: &str, capacity: usize) -> Self {
        let (tx, inbox) = mpsc::channel(capacity);
        let bus = RedisBus::connect(url, namespace, tx).await.expect("the bus connects");
        Self { bus, inbox }
    }

    async fn next(&mut self) -> (WorkspaceId, Vec<u8>) {
        timeout(WAIT, self.inbox.recv()).await.expect("a payload arrives in time").expect("the bus is running")
    }

    async fn subscribe(&self, workspace: WorkspaceId) {
        self.bus.subscribe(workspace).await.expect("subscribe");
    }

    async fn publish(&self, workspace: WorkspaceId, payload: &[u8]) {
        self.bus.publish(workspace, payload.to_vec()).await.expect("publish");
    }
}

// Redis handles commands one at a time and writes to each subscriber in that order, so when a
// node receives B after A was published earlier, A would have arrived before B had it been
// delivered. The tests below use such a later payload as the proof that an earlier one was
// not delivered, instead of waiting for a while.

#[tokio::test]
async fn a_payload_reaches_the_other_node_and_not_its_publisher() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let (mut a, mut b) = (Node::start(&url, &ns).await, Node::start(&url, &ns).await);
    let ws = WorkspaceId::generate();
    a.subscribe(ws).await;
    b.subscribe(ws).await;

    a.publish(ws, b"hello").await;
    assert_eq!(b.next().await, (ws, b"hello".to_vec()));

    b.publish(ws, b"").await;
    assert_eq!(a.next().await, (ws, Vec::new()), "a's own copy of hello never arrives; an empty payload does");

    a.publish(ws, b"again").await;
    assert_eq!(b.next().await, (ws, b"again".to_vec()), "b's own copy never arrives");
}

#[tokio::test]
async fn only_subscribed_workspaces_arrive() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let (a, mut b) = (Node::start(&url, &ns).await, Node::start(&url, &ns).await);
    let (mine, other) = (WorkspaceId::generate(), WorkspaceId::generate());
    b.subscribe(mine).await;
    b.subscribe(mine).await;

    a.publish(other, b"not for b").await;
    a.publish(mine, b"for b").await;

    assert_eq!(b.next().await, (mine, b"for b".to_vec()));
}

#[tokio::test]
async fn unsubscribing_stops_delivery() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let (a, mut b) = (Node::start(&url, &ns).await, Node::start(&url, &ns).await);
    let (kept, left) = (WorkspaceId::generate(), WorkspaceId::generate());
    b.subscribe(kept).await;
    b.subscribe(left).await;
    a.publish(left, b"before").await;
    assert_eq!(b.next().await, (left, b"before".to_vec()));

    b.bus.unsubscribe(left).await.expect("unsubscribe");
    b.bus.unsubscribe(left).await.expect("unsubscribing twice is fine");
    a.publish(left, b"after").await;
    a.publish(kept, b"still").await;

    assert_eq!(b.next().await, (kept, b"still".to_vec()));
}

#[tokio::test]
async fn another_namespace_hears_nothing() {
    let Some(url) = redis_url().await else { return };
    let (ours, theirs) = (namespace(), namespace());
    let (stranger, mut b, c) =
        (Node::start(&url, &theirs).await, Node::start(&url, &ours).await, Node::start(&url, &ours).await);
    let ws = WorkspaceId::generate();
    b.subscribe(ws).await;

    stranger.publish(ws, b"other deployment").await;
    c.publish(ws, b"ours").await;

    assert_eq!(b.next().await, (ws, b"ours".to_vec()));
}

#[tokio::test]
async fn a_thousand_payloads_arrive_in_publish_order() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let (a, mut b) = (Node::start(&url, &ns).await, Node::start(&url, &ns).await);
    let ws = WorkspaceId::generate();
    b.subscribe(ws).await;

    let publisher = tokio::spawn(async move {
        for i in 0..1000_u32 {
            a.publish(ws, &i.to_be_bytes()).await;
        }
    });
    for expected in 0..1000_u32 {
        assert_eq!(b.next().await, (ws, expected.to_be_bytes().to_vec()));
    }
    publisher.await.expect("the publisher finished");
}

#[tokio::test]
async fn a_stuck_receiver_loses_payloads_but_never_stalls_the_bus() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let (a, mut b) = (Node::start(&url, &ns).await, Node::with_capacity(&url, &ns, 1).await);
    let ws = WorkspaceId::generate();
    b.subscribe(ws).await;
    let mut state = b.bus.state();

    // 1 fills b's inbox; 2 waits for room until the bus gives up on it; 3 finds no room.
    for payload in [b"1", b"2", b"3"] {
        a.publish(ws, payload).await;
    }
    timeout(WAIT, state.wait_for(|s| s.dropped == 2)).await.expect("2 and 3 are dropped in time").expect("state");

    assert_eq!(b.next().await, (ws, b"1".to_vec()));
    a.publish(ws, b"4").await;
    assert_eq!(b.next().await, (ws, b"4".to_vec()), "delivery resumes once the receiver has room");
}

/// A Redis user of its own, so that the test can cut exactly its bus's connections
/// (`CLIENT KILL USER … TYPE pubsub`) without touching any other test's; deleted on drop.
struct TestUser {
    admin_url: String,
    name: String,
    url: String,
}

impl TestUser {
    async fn create(admin_url: &str) -> Self {
        let name = format!("chat-test-{}", uuid::Uuid::new_v4().simple());
        let password = uuid::Uuid::new_v4().simple().to_string();
        let mut admin = admin_connection(admin_url).await;
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(&name)
            .arg("on")
            .arg(format!(">{password}"))
            .arg("~*")
            .arg("&*")
            .arg("+@all")
            .exec_async(&mut admin)
            .await
            .expect("the test server lets us create an ACL user");
        let url = with_credentials(admin_url, &name, &password);
        Self { admin_url: admin_url.to_owned(), name, url }
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let deleted = redis::Client::open(self.admin_url.as_str())
            .and_then(|client| client.get_connection_with_timeout(WAIT))
            .and_then(|mut conn| redis::cmd("ACL").arg("DELUSER").arg(&self.name).exec(&mut conn));
        if let Err(e) = deleted {
            eprintln!("could not delete test user {}: {e}", self.name);
        }
    }
}

async fn admin_connection(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("the test URL parses");
    client.get_multiplexed_async_connection().await.expect("the test server accepts a connection")
}

/// `url` logging in as `user` with `password`.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("the test URL has a scheme");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{user}:{password}@{host}{}", &rest[authority_end..])
}

#[tokio::test]
async fn a_node_whose_subscription_connection_dies_reconnects_and_subscribes_again() {
    let Some(url) = redis_url().await else { return };
    let ns = namespace();
    let user = TestUser::create(&url).await;
    let (a, mut b) = (Node::start(&url, &ns).await, Node::start(&user.url, &ns).await);
    let (ws, later) = (WorkspaceId::generate(), WorkspaceId::generate());
    b.subscribe(ws).await;
    a.publish(ws, b"before").await;
    assert_eq!(b.next().await, (ws, b"before".to_vec()));
    let mut state = b.bus.state();
    assert_eq!(state.borrow().connections, 1);

    let mut admin = admin_connection(&url).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("USER")
        .arg(&user.name)
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1, "exactly b's subscription connection is cut");

    timeout(WAIT, state.wait_for(|s| s.connected && s.connections == 2))
        .await
        .expect("b reconnects in time")
        .expect("state");
    a.publish(ws, b"after").await;
    assert_eq!(b.next().await, (ws, b"after".to_vec()), "the workspace was subscribed again");

    b.subscribe(later).await;
    a.publish(later, b"new").await;
    assert_eq!(b.next().await, (later, b"new".to_vec()), "the new connection takes new subscriptions");
}

#[tokio::test]
async fn an_unreachable_server_fails_to_connect() {
    let (tx, _rx) = mpsc::channel(1);
    let connected = timeout(WAIT, RedisBus::connect("redis://127.0.0.1:1", &namespace(), tx)).await;
    assert!(matches!(connected, Ok(Err(_))), "connect reports the failure in time");
}
