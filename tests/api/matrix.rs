//! The authorization matrix. Every REST route of [`chat_http::openapi`] and every WebSocket
//! client event of [`chat_protocol::ws::client::ALL`] has an entry here: how to call it with
//! the real ids of a fixture, one call by somebody allowed (the control: it proves the ids and
//! body are right), and the calls that must be refused — a member of another workspace always
//! 404, each insufficient role per `docs/api.md` 403 or 404 — with nothing observable changed.
//!
//! `every_route_and_event_has_a_matrix_entry` fails, naming them, when a route or an event has
//! no entry (or an entry names something that no longer exists). Adding an entry is one
//! `rest(…)` or `ws(…)` call in [`rest_table`] or [`ws_table`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chat_client::e2e::Device;
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestUser};
use crate::on_both_stores;
use crate::ws::Ws;

on_both_stores!(every_route_and_event_refuses_whom_the_rules_refuse_and_changes_nothing);

/// Routes called without a token: nothing to authorize.
const PUBLIC: &[(&str, &str)] = &[
    ("POST", "/auth/register"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Actor {
    /// Workspace owner; creator (conversation admin) of every fixture conversation.
    Owner,
    /// Workspace admin, in no conversation.
    Admin,
    /// Workspace member, `moderator` of the group, not in the channel.
    Moderator,
    /// Workspace member, `member` of the group, the channel and the DM.
    Member,
    /// Workspace guest, in no conversation.
    Guest,
    /// Owner of another workspace.
    Stranger,
}
use Actor::{Admin, Guest, Member, Moderator, Owner, Stranger};

/// The fixture's ids (no tokens: the table is pure data, also built without a server).
struct Fixture {
    ws: Uuid,
    /// The stranger's own workspace.
    stranger_ws: Uuid,
    owner: Uuid,
    admin: Uuid,
    moderator: Uuid,
    member: Uuid,
    guest: Uuid,
    stranger: Uuid,
    channel: Uuid,
    group: Uuid,
    dm: Uuid,
    doc: Uuid,
    /// A group only the archive control touches.
    spare: Uuid,
    /// The owner's messages in each conversation, and the member's in the group.
    channel_msg: Uuid,
    group_msg: Uuid,
    member_msg: Uuid,
    dm_msg: Uuid,
    doc_msg: Uuid,
    /// Files the owner uploaded to the group and to the channel.
    group_file: Uuid,
    channel_file: Uuid,
    /// The owner's published E2E device, and its publish body.
    device: &'static str,
    device_body: Value,
}

impl Fixture {
    /// Made-up ids, for the coverage test.
    fn fake() -> Self {
        let id = Uuid::new_v4;
        Self {
            ws: id(),
            stranger_ws: id(),
            owner: id(),
            admin: id(),
            moderator: id(),
            member: id(),
            guest: id(),
            stranger: id(),
            channel: id(),
            group: id(),
            dm: id(),
            doc: id(),
            spare: id(),
            channel_msg: id(),
            group_msg: id(),
            member_msg: id(),
            dm_msg: id(),
            doc_msg: id(),
            group_file: id(),
            channel_file: id(),
            device: "owner-phone",
            device_body: Value::Null,
        }
    }

    /// Ids that nobody outside the workspace may ever see in an answer.
    fn secrets(&self) -> Vec<Uuid> {
        vec![
            self.ws,
            self.owner,
            self.admin,
            self.moderator,
            self.member,
            self.guest,
            self.channel,
            self.group,
            self.dm,
            self.doc,
            self.spare,
            self.channel_msg,
            self.group_msg,
            self.member_msg,
            self.dm_msg,
            self.doc_msg,
            self.group_file,
            self.channel_file,
        ]
    }
}

/// One REST call: who, where, what body, and the expected status. In `denied`, a 4xx status
/// also fixes the error code; a 2xx means the route is not workspace-scoped (the caller is
/// answered about themself) and the answer must mention no id of the fixture.
struct Call {
    actor: Actor,
    path: String,
    body: Body,
    status: u16,
}

enum Body {
    None,
    Json(Value),
    /// `multipart/form-data` text parts, then a small text `file` part.
    Upload {
        workspace: Uuid,
        conversation: Uuid,
    },
}

struct RestEntry {
    method: Method,
    template: &'static str,
    allowed: Call,
    denied: Vec<Call>,
}

fn call(actor: Actor, path: impl Into<String>, body: Option<Value>, status: u16) -> Call {
    Call { actor, path: path.into(), body: body.map_or(Body::None, Body::Json), status }
}

/// `POST /files` of a small text file into `conversation`, naming `workspace`.
fn upload(actor: Actor, workspace: Uuid, conversation: Uuid, status: u16) -> Call {
    Call { actor, path: "/files".to_owned(), body: Body::Upload { workspace, conversation }, status }
}

/// Sends one matrix call.
async fn send(app: &TestApp, method: &Method, call: &Call, user: &TestUser) -> crate::helpers::Reply {
    match &call.body {
        Body::None => app.call(method.clone(), &call.path, Some(&user.token), None).await,
        Body::Json(body) => app.call(method.clone(), &call.path, Some(&user.token), Some(body.clone())).await,
        Body::Upload { workspace, conversation } => upload_file(app, user, *workspace, *conversation).await,
    }
}

/// `POST /files` with a hand-built multipart body (ids first, then the file).
async fn upload_file(app: &TestApp, user: &TestUser, workspace: Uuid, conversation: Uuid) -> crate::helpers::Reply {
    let boundary = format!("matrix{}", Uuid::new_v4().simple());
    let part = |name: &str, value: &str| {
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
    };
    let body = format!(
        "{}{}--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nmatrix file body\r\n--{boundary}--\r\n",
        part("workspaceId", &workspace.to_string()),
        part("conversationId", &conversation.to_string()),
    );
    let res = app
        .client
        .post(format!("{}/files", app.base))
        .bearer_auth(&user.token)
        .header("content-type", format!("multipart/form-data; boundary={boundary}"))
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let status = res.status();
    let text = res.text().await.expect("body read");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    crate::helpers::Reply { status, body }
}

fn rest(method: Method, template: &'static str, allowed: Call, denied: Vec<Call>) -> RestEntry {
    RestEntry { method, template, allowed, denied }
}

/// One WebSocket frame and its expected answer: an error `code`, or `None` for an ack.
struct Frame {
    actor: Actor,
    data: Value,
    error: Option<&'static str>,
}

struct WsEntry {
    event: &'static str,
    allowed: (Actor, Value),
    denied: Vec<Frame>,
}

fn frame(actor: Actor, data: Value, error: &'static str) -> Frame {
    Frame { actor, data, error: Some(error) }
}

/// A frame that is acked whoever sends it because it touches nothing but the sender's own
/// socket (`ping`, `leave_conversation` unfollows, `typing_stop` ends only the sender's own
/// indicator): the matrix still checks that it changes and pushes nothing.
fn harmless(actor: Actor, data: Value) -> Frame {
    Frame { actor, data, error: None }
}

fn ws(event: &'static str, allowed: (Actor, Value), denied: Vec<Frame>) -> WsEntry {
    WsEntry { event, allowed, denied }
}

/// The REST matrix. The `allowed` controls run after the refusals, in this order, so the
/// destructive ones pick targets no later control needs.
#[allow(clippy::too_many_lines)]
fn rest_table(f: &Fixture) -> Vec<RestEntry> {
    let ws = f.ws;
    let (group, channel, dm, doc, spare) = (f.group, f.channel, f.dm, f.doc, f.spare);
    let c = |id: Uuid| format!("/chat/conversations/{id}");
    let m = |id: Uuid| format!("/chat/messages/{id}");
    let create = |kind: &str| {
        let mut body = json!({"type": kind, "workspaceId": ws, "name": "new", "memberIds": []});
        if kind == "DM" {
            body = json!({"type": "DM", "workspaceId": ws, "memberIds": [f.owner]});
        }
        Some(body)
    };
    let content = || Some(json!({"content": "pwned"}));
    let user = |id: Uuid| Some(json!({"userId": id}));
    vec![
        rest(Method::GET, "/auth/me", call(Owner, "/auth/me", None, 200), vec![call(Stranger, "/auth/me", None, 200)]),
        rest(
            Method::POST,
            "/workspaces",
            call(Owner, "/workspaces", Some(json!({"name": "Another"})), 201),
            vec![call(Stranger, "/workspaces", Some(json!({"name": "Mine"})), 201)],
        ),
        rest(
            Method::GET,
            "/workspaces",
            call(Guest, "/workspaces", None, 200),
            vec![call(Stranger, "/workspaces", None, 200)],
        ),
        rest(
            Method::GET,
            "/workspaces/{id}",
            call(Guest, format!("/workspaces/{ws}"), None, 200),
            vec![call(Stranger, format!("/workspaces/{ws}"), None, 404)],
        ),
        rest(
            Method::POST,
            "/workspaces/{id}/members",
            call(Owner, format!("/workspaces/{ws}/members"), user(f.stranger), 201),
            vec![
                call(Stranger, format!("/workspaces/{ws}/members"), user(f.stranger), 404),
                call(Member, format!("/workspaces/{ws}/members"), user(f.stranger), 403),
                call(Guest, format!("/workspaces/{ws}/members"), user(f.stranger), 403),
                call(
                    Admin,
                    format!("/workspaces/{ws}/members"),
                    Some(json!({"userId": f.stranger, "role": "admin"})),
                    403,
                ),
            ],
        ),
        rest(
            Method::GET,
            "/workspaces/{id}/members",
            call(Guest, format!("/workspaces/{ws}/members"), None, 200),
            vec![call(Stranger, format!("/workspaces/{ws}/members"), None, 404)],
        ),
        rest(
            Method::DELETE,
            "/workspaces/{id}/members/{uid}",
            // The stranger the POST control added.
            call(Owner, format!("/workspaces/{ws}/members/{}", f.stranger), None, 204),
            vec![
                call(Stranger, format!("/workspaces/{ws}/members/{}", f.member), None, 404),
                call(Member, format!("/workspaces/{ws}/members/{}", f.moderator), None, 403),
                call(Member, format!("/workspaces/{ws}/members/{}", f.guest), None, 403),
                call(Guest, format!("/workspaces/{ws}/members/{}", f.member), None, 403),
                call(Admin, format!("/workspaces/{ws}/members/{}", f.owner), None, 403),
            ],
        ),
        rest(
            Method::GET,
            "/workspaces/{id}/audit",
            call(Admin, format!("/workspaces/{ws}/audit"), None, 200),
            vec![
                call(Stranger, format!("/workspaces/{ws}/audit"), None, 404),
                call(Member, format!("/workspaces/{ws}/audit"), None, 403),
                call(Moderator, format!("/workspaces/{ws}/audit"), None, 403),
                call(Guest, format!("/workspaces/{ws}/audit"), None, 403),
            ],
        ),
        rest(
            Method::POST,
            "/chat/conversations",
            call(Owner, "/chat/conversations", create("CHANNEL"), 201),
            vec![
                call(Stranger, "/chat/conversations", create("CHANNEL"), 404),
                call(Stranger, "/chat/conversations", create("DM"), 404),
                call(Guest, "/chat/conversations", create("CHANNEL"), 403),
                call(Guest, "/chat/conversations", create("GROUP"), 403),
            ],
        ),
        rest(
            Method::GET,
            "/chat/conversations",
            call(Guest, format!("/chat/conversations?workspaceId={ws}"), None, 200),
            vec![call(Stranger, format!("/chat/conversations?workspaceId={ws}"), None, 404)],
        ),
        rest(
            Method::GET,
            "/chat/conversations/{id}",
            call(Member, c(group), None, 200),
            vec![
                call(Stranger, c(group), None, 404),
                call(Stranger, c(channel), None, 404),
                call(Guest, c(channel), None, 404),
                call(Guest, c(doc), None, 404),
                call(Admin, c(group), None, 404),
                call(Moderator, c(dm), None, 404),
            ],
        ),
        rest(
            Method::PUT,
            "/chat/conversations/{id}",
            call(Owner, c(group), Some(json!({"description": "updated"})), 200),
            vec![
                call(Stranger, c(group), Some(json!({"name": "pwned"})), 404),
                call(Member, c(group), Some(json!({"name": "pwned"})), 403),
                call(Moderator, c(group), Some(json!({"name": "pwned"})), 403),
                call(Member, c(channel), Some(json!({"name": "pwned"})), 403),
                call(Moderator, c(channel), Some(json!({"name": "pwned"})), 403),
                call(Admin, c(group), Some(json!({"name": "pwned"})), 404),
                call(Guest, c(channel), Some(json!({"name": "pwned"})), 404),
            ],
        ),
        rest(
            Method::DELETE,
            "/chat/conversations/{id}",
            call(Owner, c(spare), None, 204),
            vec![
                call(Stranger, c(group), None, 404),
                call(Member, c(group), None, 403),
                call(Moderator, c(group), None, 403),
                call(Member, c(channel), None, 403),
                call(Admin, c(group), None, 404),
            ],
        ),
        rest(
            Method::GET,
            "/chat/conversations/{id}/members",
            call(Member, format!("{}/members", c(group)), None, 200),
            vec![
                call(Stranger, format!("{}/members", c(group)), None, 404),
                call(Guest, format!("{}/members", c(channel)), None, 404),
                call(Admin, format!("{}/members", c(group)), None, 404),
            ],
        ),
        rest(
            Method::POST,
            "/chat/conversations/{id}/members",
            call(Moderator, format!("{}/members", c(group)), user(f.admin), 201),
            vec![
                call(Stranger, format!("{}/members", c(group)), user(f.stranger), 404),
                call(Stranger, format!("{}/members", c(channel)), user(f.stranger), 404),
                call(Member, format!("{}/members", c(group)), user(f.admin), 403),
                call(
                    Moderator,
                    format!("{}/members", c(group)),
                    Some(json!({"userId": f.admin, "role": "admin"})),
                    403,
                ),
                call(Guest, format!("{}/members", c(channel)), user(f.guest), 404),
                call(Guest, format!("{}/members", c(doc)), user(f.guest), 404),
                call(Admin, format!("{}/members", c(group)), user(f.admin), 404),
            ],
        ),
        rest(
            Method::POST,
            "/chat/conversations/{id}/participants",
            call(Moderator, format!("{}/participants", c(channel)), user(f.moderator), 201),
            vec![
                call(Stranger, format!("{}/participants", c(channel)), user(f.stranger), 404),
                call(Member, format!("{}/participants", c(group)), user(f.guest), 403),
                call(Guest, format!("{}/participants", c(channel)), user(f.guest), 404),
            ],
        ),
        rest(
            Method::DELETE,
            "/chat/conversations/{id}/members/{uid}",
            call(Member, format!("{}/members/{}", c(channel), f.member), None, 204),
            vec![
                call(Stranger, format!("{}/members/{}", c(group), f.member), None, 404),
                call(Member, format!("{}/members/{}", c(group), f.moderator), None, 403),
                call(Moderator, format!("{}/members/{}", c(group), f.owner), None, 403),
                call(Moderator, format!("{}/members/{}", c(channel), f.member), None, 403),
                call(Admin, format!("{}/members/{}", c(group), f.member), None, 404),
            ],
        ),
        rest(
            Method::PUT,
            "/chat/conversations/{id}/members/{uid}/role",
            call(Owner, format!("{}/members/{}/role", c(group), f.member), Some(json!({"role": "member"})), 200),
            vec![
                call(Stranger, format!("{}/members/{}/role", c(group), f.member), Some(json!({"role": "admin"})), 404),
                call(
                    Moderator,
                    format!("{}/members/{}/role", c(group), f.member),
                    Some(json!({"role": "moderator"})),
                    403,
                ),
                call(Member, format!("{}/members/{}/role", c(group), f.member), Some(json!({"role": "admin"})), 403),
                call(Admin, format!("{}/members/{}/role", c(group), f.member), Some(json!({"role": "admin"})), 404),
            ],
        ),
        rest(
            Method::POST,
            "/chat/conversations/{id}/read",
            call(Member, format!("{}/read", c(group)), Some(json!({"seq": 1})), 200),
            vec![
                call(Stranger, format!("{}/read", c(group)), Some(json!({"seq": 1})), 404),
                call(Guest, format!("{}/read", c(channel)), Some(json!({"seq": 1})), 404),
                call(Moderator, format!("{}/read", c(channel)), Some(json!({"seq": 1})), 403),
                call(Admin, format!("{}/read", c(group)), Some(json!({"seq": 1})), 404),
            ],
        ),
        rest(
            Method::GET,
            "/chat/workspaces/{id}/unread-count",
            call(Guest, format!("/chat/workspaces/{ws}/unread-count"), None, 200),
            vec![call(Stranger, format!("/chat/workspaces/{ws}/unread-count"), None, 404)],
        ),
        rest(
            Method::POST,
            "/chat/conversations/{id}/messages",
            call(Member, format!("{}/messages", c(group)), Some(json!({"content": "allowed"})), 201),
            vec![
                call(Stranger, format!("{}/messages", c(group)), content(), 404),
                call(Stranger, format!("{}/messages", c(channel)), content(), 404),
                call(Stranger, format!("{}/messages", c(doc)), content(), 404),
                call(Guest, format!("{}/messages", c(channel)), content(), 404),
                call(Guest, format!("{}/messages", c(doc)), content(), 404),
                call(Admin, format!("{}/messages", c(group)), content(), 404),
                call(Moderator, format!("{}/messages", c(channel)), content(), 403),
                call(Moderator, format!("{}/messages", c(dm)), content(), 404),
            ],
        ),
        rest(
            Method::GET,
            "/chat/conversations/{id}/messages",
            call(Moderator, format!("{}/messages?threadOf={}", c(group), f.group_msg), None, 200),
            vec![
                call(Stranger, format!("{}/messages", c(group)), None, 404),
                call(Stranger, format!("{}/messages?threadOf={}", c(group), f.group_msg), None, 404),
                call(Guest, format!("{}/messages", c(channel)), None, 404),
                call(Guest, format!("{}/messages", c(doc)), None, 404),
                call(Admin, format!("{}/messages", c(group)), None, 404),
                call(Moderator, format!("{}/messages", c(dm)), None, 404),
            ],
        ),
        rest(
            Method::PUT,
            "/chat/messages/{id}",
            call(Member, m(f.member_msg), Some(json!({"content": "edited by PUT"})), 200),
            vec![
                call(Stranger, m(f.group_msg), content(), 404),
                call(Moderator, m(f.member_msg), content(), 403),
                call(Owner, m(f.member_msg), content(), 403),
                call(Admin, m(f.group_msg), content(), 404),
                call(Guest, m(f.channel_msg), content(), 404),
            ],
        ),
        rest(
            Method::PATCH,
            "/chat/messages/{id}",
            call(Member, m(f.member_msg), Some(json!({"content": "edited by PATCH"})), 200),
            vec![
                call(Stranger, m(f.group_msg), content(), 404),
                call(Moderator, m(f.member_msg), content(), 403),
                call(Owner, m(f.member_msg), content(), 403),
                call(Admin, m(f.group_msg), content(), 404),
                call(Guest, m(f.doc_msg), content(), 404),
            ],
        ),
        rest(
            Method::DELETE,
            "/chat/messages/{id}",
            call(Moderator, m(f.member_msg), None, 204),
            vec![
                call(Stranger, m(f.group_msg), None, 404),
                call(Member, m(f.group_msg), None, 403),
                call(Member, m(f.channel_msg), None, 403),
                call(Guest, m(f.channel_msg), None, 404),
                call(Admin, m(f.group_msg), None, 404),
                call(Moderator, m(f.dm_msg), None, 404),
            ],
        ),
        rest(
            Method::POST,
            "/chat/messages/{id}/reactions",
            call(Member, format!("{}/reactions", m(f.group_msg)), Some(json!({"emoji": "👍"})), 200),
            vec![
                call(Stranger, format!("{}/reactions", m(f.group_msg)), Some(json!({"emoji": "💀"})), 404),
                call(Guest, format!("{}/reactions", m(f.channel_msg)), Some(json!({"emoji": "💀"})), 404),
                call(Admin, format!("{}/reactions", m(f.group_msg)), Some(json!({"emoji": "💀"})), 404),
                call(Moderator, format!("{}/reactions", m(f.dm_msg)), Some(json!({"emoji": "💀"})), 404),
                call(Moderator, format!("{}/reactions", m(f.channel_msg)), Some(json!({"emoji": "💀"})), 403),
            ],
        ),
        rest(
            Method::GET,
            "/chat/search",
            call(Member, format!("/chat/search?workspaceId={ws}&q=root"), None, 200),
            vec![
                call(Stranger, format!("/chat/search?workspaceId={ws}&q=root"), None, 404),
                call(Guest, format!("/chat/search?workspaceId={ws}&q=root&conversationId={channel}"), None, 404),
                call(Admin, format!("/chat/search?workspaceId={ws}&q=root&conversationId={group}"), None, 404),
                call(Moderator, format!("/chat/search?workspaceId={ws}&q=root&conversationId={dm}"), None, 404),
            ],
        ),
        rest(
            Method::PUT,
            "/keys/devices/{device_id}",
            call(Owner, format!("/keys/devices/{}", f.device), Some(f.device_body.clone()), 200),
            vec![
                call(Stranger, format!("/keys/devices/{}", f.device), Some(f.device_body.clone()), 409),
                call(Member, format!("/keys/devices/{}", f.device), Some(f.device_body.clone()), 409),
            ],
        ),
        rest(
            Method::GET,
            "/keys/users/{user_id}",
            call(Guest, format!("/keys/users/{}", f.owner), None, 200),
            vec![call(Stranger, format!("/keys/users/{}", f.owner), None, 404)],
        ),
        rest(
            Method::POST,
            "/keys/users/{user_id}/claim",
            call(Member, format!("/keys/users/{}/claim", f.owner), None, 200),
            vec![call(Stranger, format!("/keys/users/{}/claim", f.owner), None, 404)],
        ),
        rest(
            Method::POST,
            "/files",
            upload(Member, ws, group, 201),
            vec![
                upload(Stranger, ws, group, 404),
                // Its own workspace named, a conversation of another.
                upload(Stranger, f.stranger_ws, group, 404),
                upload(Guest, ws, channel, 404),
                upload(Guest, ws, doc, 404),
                upload(Admin, ws, group, 404),
                upload(Moderator, ws, channel, 403),
                upload(Moderator, ws, dm, 404),
            ],
        ),
        rest(
            Method::GET,
            "/files/{id}",
            call(Member, format!("/files/{}", f.group_file), None, 200),
            vec![
                call(Stranger, format!("/files/{}", f.group_file), None, 404),
                call(Guest, format!("/files/{}", f.channel_file), None, 404),
                call(Admin, format!("/files/{}", f.group_file), None, 404),
                // Files are for members: reading a channel is not enough.
                call(Moderator, format!("/files/{}", f.channel_file), None, 404),
            ],
        ),
        rest(
            Method::PUT,
            "/chat/presence",
            call(Guest, "/chat/presence", Some(json!({"status": "away", "workspaceId": ws})), 200),
            vec![call(Stranger, "/chat/presence", Some(json!({"status": "online", "workspaceId": ws})), 404)],
        ),
        rest(
            Method::GET,
            "/chat/presence/{workspace_id}",
            call(Guest, format!("/chat/presence/{ws}"), None, 200),
            vec![call(Stranger, format!("/chat/presence/{ws}"), None, 404)],
        ),
    ]
}

/// The WebSocket matrix (its controls run after the REST ones).
fn ws_table(f: &Fixture) -> Vec<WsEntry> {
    use chat_protocol::ws::client;
    let (ws_id, group, channel, dm) = (f.ws, f.group, f.channel, f.dm);
    let conv = |id: Uuid| json!({"conversationId": id});
    let send = |id: Uuid| json!({"conversationId": id, "content": "pwned"});
    let on = |message: Uuid, conversation: Uuid| json!({"messageId": message, "conversationId": conversation});
    let react = |message: Uuid, conversation: Uuid| json!({"messageId": message, "conversationId": conversation, "emoji": "💀"});
    vec![
        ws(
            client::JOIN_WORKSPACE,
            (Moderator, json!({"workspaceId": ws_id})),
            vec![frame(Stranger, json!({"workspaceId": ws_id}), "not_found")],
        ),
        ws(
            client::JOIN_CONVERSATION,
            (Moderator, conv(channel)),
            vec![
                frame(Stranger, conv(group), "not_found"),
                frame(Stranger, conv(channel), "not_found"),
                frame(Guest, conv(channel), "not_found"),
                frame(Admin, conv(group), "not_found"),
                frame(Moderator, conv(dm), "not_found"),
            ],
        ),
        ws(client::LEAVE_CONVERSATION, (Member, conv(group)), vec![harmless(Stranger, conv(group))]),
        ws(
            client::SEND_MESSAGE,
            (Member, json!({"conversationId": group, "content": "allowed over ws"})),
            vec![
                frame(Stranger, send(group), "not_found"),
                frame(Guest, send(channel), "not_found"),
                frame(Admin, send(group), "not_found"),
                frame(Moderator, send(channel), "forbidden"),
                frame(Moderator, send(dm), "not_found"),
            ],
        ),
        ws(
            client::EDIT_MESSAGE,
            (Owner, json!({"messageId": f.dm_msg, "content": "edited over ws"})),
            vec![
                frame(Stranger, json!({"messageId": f.group_msg, "content": "pwned"}), "not_found"),
                frame(Moderator, json!({"messageId": f.group_msg, "content": "pwned"}), "forbidden"),
                frame(Guest, json!({"messageId": f.channel_msg, "content": "pwned"}), "not_found"),
                frame(Admin, json!({"messageId": f.group_msg, "content": "pwned"}), "not_found"),
            ],
        ),
        ws(
            client::DELETE_MESSAGE,
            (Owner, on(f.doc_msg, f.doc)),
            vec![
                frame(Stranger, on(f.group_msg, group), "not_found"),
                frame(Member, on(f.group_msg, group), "forbidden"),
                frame(Guest, on(f.channel_msg, channel), "not_found"),
                frame(Admin, on(f.group_msg, group), "not_found"),
                frame(Moderator, on(f.dm_msg, dm), "not_found"),
                // A message named with another conversation the caller moderates.
                frame(Moderator, on(f.dm_msg, group), "not_found"),
            ],
        ),
        ws(
            client::ADD_REACTION,
            (Owner, json!({"messageId": f.dm_msg, "conversationId": dm, "emoji": "👍"})),
            vec![
                frame(Stranger, react(f.group_msg, group), "not_found"),
                frame(Guest, react(f.channel_msg, channel), "not_found"),
                frame(Admin, react(f.group_msg, group), "not_found"),
                frame(Moderator, react(f.dm_msg, dm), "not_found"),
                frame(Moderator, react(f.dm_msg, group), "not_found"),
            ],
        ),
        ws(
            client::TYPING_START,
            (Member, conv(group)),
            vec![
                frame(Stranger, conv(group), "not_found"),
                frame(Guest, conv(channel), "not_found"),
                frame(Admin, conv(group), "not_found"),
                frame(Moderator, conv(dm), "not_found"),
            ],
        ),
        ws(client::TYPING_STOP, (Member, conv(group)), vec![harmless(Stranger, conv(group))]),
        ws(
            client::MARK_AS_READ,
            (Member, conv(group)),
            vec![
                frame(Stranger, conv(group), "not_found"),
                frame(Guest, conv(channel), "not_found"),
                frame(Moderator, conv(channel), "forbidden"),
                frame(Admin, conv(group), "not_found"),
            ],
        ),
        ws(
            client::UPDATE_PRESENCE,
            (Moderator, json!({"status": "busy", "workspaceId": ws_id})),
            vec![frame(Stranger, json!({"status": "online", "workspaceId": ws_id}), "not_found")],
        ),
        ws(
            client::RESUME,
            (Member, json!({"conversations": {group.to_string(): 0}})),
            vec![
                frame(Stranger, json!({"conversations": {group.to_string(): 0}}), "not_found"),
                frame(Guest, json!({"conversations": {channel.to_string(): 0}}), "not_found"),
                frame(Admin, json!({"conversations": {group.to_string(): 0}}), "not_found"),
                // One readable and one unreadable conversation: nothing is replayed.
                frame(Moderator, json!({"conversations": {group.to_string(): 0, dm.to_string(): 0}}), "not_found"),
            ],
        ),
        ws(client::PING, (Owner, json!({})), vec![harmless(Stranger, json!({}))]),
    ]
}

/// Every `(METHOD, path)` of the generated OpenAPI document.
fn documented_routes() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(chat_http::openapi()).expect("openapi serialises");
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "options", "head", "patch", "trace"] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn every_route_and_event_has_a_matrix_entry() {
    let f = Fixture::fake();
    let mut problems = Vec::new();
    let mut covered: BTreeMap<(String, String), usize> = BTreeMap::new();
    for entry in rest_table(&f) {
        *covered.entry((entry.method.to_string(), entry.template.to_owned())).or_default() += 1;
        if !entry.denied.iter().any(|d| d.actor == Stranger) {
            problems.push(format!("{} {} has no stranger row", entry.method, entry.template));
        }
    }
    for (method, path) in PUBLIC {
        *covered.entry(((*method).to_owned(), (*path).to_owned())).or_default() += 1;
    }
    let routes = documented_routes();
    for (method, path) in routes.iter().filter(|r| !covered.contains_key(*r)) {
        problems.push(format!("route {method} {path} has no entry in rest_table (or PUBLIC)"));
    }
    for ((method, path), n) in &covered {
        if !routes.contains(&(method.clone(), path.clone())) {
            problems.push(format!("entry {method} {path} names no route of chat_http::openapi()"));
        }
        if *n > 1 {
            problems.push(format!("route {method} {path} has {n} entries"));
        }
    }

    let events: BTreeSet<&str> = chat_protocol::ws::client::ALL.iter().copied().collect();
    let mut table: BTreeMap<&str, usize> = BTreeMap::new();
    for entry in ws_table(&f) {
        *table.entry(entry.event).or_default() += 1;
        if !entry.denied.iter().any(|d| d.actor == Stranger) {
            problems.push(format!("event {} has no stranger row", entry.event));
        }
    }
    for event in events.iter().filter(|e| !table.contains_key(*e)) {
        problems.push(format!("event {event} has no entry in ws_table"));
    }
    for (event, n) in &table {
        if !events.contains(event) {
            problems.push(format!("entry {event} names no event of chat_protocol::ws::client::ALL"));
        }
        if *n > 1 {
            problems.push(format!("event {event} has {n} entries"));
        }
    }
    assert!(problems.is_empty(), "authorization matrix coverage (tests/api/matrix.rs):\n{}", problems.join("\n"));
}

struct Cast {
    users: BTreeMap<Actor, TestUser>,
}

impl Cast {
    fn user(&self, actor: Actor) -> &TestUser {
        &self.users[&actor]
    }
}

async fn fixture(app: &TestApp) -> (Cast, Fixture) {
    let mut users = BTreeMap::new();
    for (actor, name) in [
        (Owner, "owner"),
        (Admin, "admin"),
        (Moderator, "moderator"),
        (Member, "member"),
        (Guest, "guest"),
        (Stranger, "stranger"),
    ] {
        users.insert(actor, app.register(name).await);
    }
    let cast = Cast { users };
    let owner = cast.user(Owner);
    let ws = app.create_workspace(owner, "Acme").await.id;
    for (actor, role) in [(Admin, "admin"), (Moderator, "member"), (Member, "member"), (Guest, "guest")] {
        app.add_to_workspace(owner, ws, cast.user(actor), role).await;
    }
    let stranger_ws = app.create_workspace(cast.user(Stranger), "Elsewhere").await.id;
    let (moderator, member) = (cast.user(Moderator), cast.user(Member));
    let channel = app.channel(owner, ws, "general", &[member]).await.id;
    let group = app.group(owner, ws, "private", &[moderator, member]).await.id;
    app.put(&format!("/chat/conversations/{group}/members/{}/role", moderator.id), owner, json!({"role": "moderator"}))
        .await
        .assert_status(200);
    let spare = app.group(owner, ws, "spare", &[member]).await.id;
    let dm = app
        .create_conversation(owner, json!({"type": "DM", "workspaceId": ws, "memberIds": [member.id]}))
        .await
        .json::<chat_protocol::Conversation>()
        .id;
    let doc = app
        .create_conversation(owner, json!({"type": "DOCUMENT", "workspaceId": ws, "documentId": "doc-1"}))
        .await
        .json::<chat_protocol::Conversation>()
        .id;
    let channel_msg = app.send(owner, channel, "root in the channel").await.id;
    let group_msg = app.send(owner, group, "root in the group").await.id;
    let member_msg = app.send(member, group, "the member's own words").await.id;
    let dm_msg = app.send(owner, dm, "root in the dm").await.id;
    let doc_msg = app.send(owner, doc, "root in the doc").await.id;
    let mut files = Vec::new();
    for conversation in [group, channel] {
        let reply = upload_file(app, owner, ws, conversation).await;
        reply.assert_status(201);
        files.push(reply.json::<chat_protocol::FileInfo>().id);
    }
    let [group_file, channel_file] = files[..] else { unreachable!() };
    let device = "owner-phone";
    let body = Device::generate(device).expect("device").publish_request(3).expect("bundle");
    let device_body = serde_json::to_value(&body).expect("json");
    app.put(&format!("/keys/devices/{device}"), owner, &device_body).await.assert_status(200);
    let fixture = Fixture {
        ws,
        stranger_ws,
        owner: owner.id,
        admin: cast.user(Admin).id,
        moderator: moderator.id,
        member: member.id,
        guest: cast.user(Guest).id,
        stranger: cast.user(Stranger).id,
        channel,
        group,
        dm,
        doc,
        spare,
        channel_msg,
        group_msg,
        member_msg,
        dm_msg,
        doc_msg,
        group_file,
        channel_file,
        device,
        device_body,
    };
    (cast, fixture)
}

/// Everything the workspace's people can observe, to compare before and after the refusals.
async fn snapshot(app: &TestApp, cast: &Cast, f: &Fixture) -> Vec<(String, Value)> {
    let owner = cast.user(Owner);
    let ws = f.ws;
    let mut paths = vec![
        format!("/workspaces/{ws}"),
        format!("/workspaces/{ws}/members"),
        format!("/chat/presence/{ws}"),
        format!("/chat/conversations?workspaceId={ws}"),
        format!("/workspaces/{ws}/audit?limit=100"),
        format!("/keys/users/{}", f.owner),
        format!("/files/{}", f.group_file),
        format!("/files/{}", f.channel_file),
    ];
    for id in [f.channel, f.group, f.dm, f.doc, f.spare] {
        paths.push(format!("/chat/conversations/{id}"));
        paths.push(format!("/chat/conversations/{id}/members"));
        paths.push(format!("/chat/conversations/{id}/messages?limit=100"));
    }
    let mut out = Vec::new();
    for path in paths {
        let reply = app.get(&path, owner).await;
        reply.assert_status(200);
        let mut body = reply.body;
        if path.contains("/audit") {
            // Refusals may be audited (`…_denied`); nothing else may appear.
            if let Some(items) = body["items"].as_array_mut() {
                items.retain(|i| !i["action"].as_str().is_some_and(|a| a.ends_with("_denied")));
            }
        }
        out.push((path, body));
    }
    for actor in [Owner, Admin, Moderator, Member, Guest] {
        let path = format!("/chat/workspaces/{ws}/unread-count");
        let reply = app.get(&path, cast.user(actor)).await;
        reply.assert_status(200);
        out.push((format!("{path} as {actor:?}"), reply.body));
    }
    out
}

/// `actor`'s socket, opened on first use.
async fn socket_of<'a>(sockets: &'a mut BTreeMap<Actor, Ws>, app: &TestApp, cast: &Cast, actor: Actor) -> &'a mut Ws {
    match sockets.entry(actor) {
        std::collections::btree_map::Entry::Occupied(socket) => socket.into_mut(),
        std::collections::btree_map::Entry::Vacant(slot) => slot.insert(app.ws(cast.user(actor)).await),
    }
}

fn code_of(status: u16) -> &'static str {
    match status {
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "validation_failed",
        other => panic!("no error code for {other}"),
    }
}

async fn every_route_and_event_refuses_whom_the_rules_refuse_and_changes_nothing(app: TestApp) {
    let (cast, f) = fixture(&app).await;
    let rest = rest_table(&f);
    let events = ws_table(&f);
    let secrets: Vec<String> = f.secrets().iter().map(Uuid::to_string).collect();
    let mut watcher = app.ws_in(cast.user(Owner), f.ws).await;
    let before = snapshot(&app, &cast, &f).await;

    let mut failures = Vec::new();
    for entry in &rest {
        for denied in &entry.denied {
            let user = cast.user(denied.actor);
            let reply = send(&app, &entry.method, denied, user).await;
            let what = format!("{} {} as {:?}", entry.method, denied.path, denied.actor);
            let status = reply.status.as_u16();
            if status != denied.status {
                failures.push(format!("{what}: expected {}, got {status} {}", denied.status, reply.body));
            } else if status >= 400 {
                if reply.body["error"]["code"] != code_of(status) {
                    failures.push(format!("{what}: wrong error body {}", reply.body));
                }
            } else {
                let text = reply.body.to_string();
                if let Some(leak) = secrets.iter().find(|s| text.contains(s.as_str())) {
                    failures.push(format!("{what}: answer mentions fixture id {leak}: {text}"));
                }
            }
        }
    }
    let mut sockets: BTreeMap<Actor, Ws> = BTreeMap::new();
    for entry in &events {
        for denied in &entry.denied {
            let socket = socket_of(&mut sockets, &app, &cast, denied.actor).await;
            let answer = socket.request(entry.event, denied.data.clone()).await;
            let what = format!("{} {} as {:?}", entry.event, denied.data, denied.actor);
            match denied.error {
                Some(code) if answer["event"] != "error" || answer["data"]["code"] != code => {
                    failures.push(format!("{what}: expected error {code}, got {answer}"));
                }
                None if answer["event"] != "ack" || answer["data"] != json!({}) => {
                    failures.push(format!("{what}: expected an empty ack, got {answer}"));
                }
                _ => {}
            }
        }
    }
    assert!(failures.is_empty(), "authorization matrix violations:\n{}", failures.join("\n"));
    let after = snapshot(&app, &cast, &f).await;
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        assert_eq!(was, is, "a refused call changed {path}");
    }
    // No refused frame pushed anything, to anyone: not to the refused sockets, and not to the
    // owner's socket, whose next frame is the sentinel sent now.
    for (actor, socket) in &mut sockets {
        if let Some(frame) = socket.next_frame(Duration::from_millis(200)).await {
            panic!("{actor:?} received {frame}");
        }
    }
    let sentinel = app.send(cast.user(Owner), f.group, "sentinel").await;
    let next = watcher.next_frame(crate::ws::WAIT).await.expect("the sentinel");
    assert_eq!((next["event"].as_str(), &next["data"]["message"]["id"]), (Some("message:new"), &json!(sentinel.id)));

    // The controls: the same routes, ids and bodies work for whom the rules allow.
    for entry in &rest {
        let allowed = &entry.allowed;
        let user = cast.user(allowed.actor);
        let reply = send(&app, &entry.method, allowed, user).await;
        assert_eq!(
            reply.status.as_u16(),
            allowed.status,
            "control {} {} as {:?}: {}",
            entry.method,
            allowed.path,
            allowed.actor,
            reply.body
        );
    }
    for entry in &events {
        let (actor, data) = &entry.allowed;
        let socket = socket_of(&mut sockets, &app, &cast, *actor).await;
        let answer = socket.request(entry.event, data.clone()).await;
        assert_eq!(answer["event"], "ack", "control {} as {actor:?}: {answer}", entry.event);
    }
}
