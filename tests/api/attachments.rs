//! Message attachments: files uploaded to a conversation and attached to messages by id, over
//! REST and the WebSocket. Every read (history, `message:new`, threads) shows the attachment
//! objects, whose `url` downloads the file for members; an id that is not a file of the
//! conversation is refused like an unknown one and stores nothing; deleting the message takes
//! its attachments, and the sender's file with its blob.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use uuid::Uuid;

use crate::files::{self, PNG};
use crate::helpers::{TestApp, TestUser};
use crate::on_both_stores;

on_both_stores!(
    attachments_show_in_history_pushes_and_threads_and_their_urls_download_for_members,
    an_attachment_that_is_not_a_file_of_the_conversation_is_refused_and_nothing_is_stored,
    deleting_a_message_takes_its_attachments_and_the_senders_file_and_blob,
);

/// A minimal PDF.
pub(crate) const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n";

/// Uploads `bytes` as `name` to `conversation` with `POST /files`; the 201 body.
pub(crate) async fn upload(
    app: &TestApp,
    user: &TestUser,
    workspace: Uuid,
    conversation: Uuid,
    name: &str,
    bytes: &[u8],
) -> Value {
    let (reply, _) = files::upload(app, user, workspace, conversation, name, bytes).await;
    reply.assert_status(201);
    reply.body
}

/// The id of an uploaded file.
pub(crate) fn id_of(file: &Value) -> Uuid {
    file["id"].as_str().and_then(|id| id.parse().ok()).expect("file id")
}

/// The attachment object a message shows for `file` (an upload's answer).
fn shown(file: &Value, kind: &str) -> Value {
    json!({
        "id": file["id"],
        "type": kind,
        "name": file["name"],
        "mimeType": file["contentType"],
        "size": file["size"],
        "url": format!("/files/{}", id_of(file)),
    })
}

/// `GET <url>` (a path such as `/files/<id>`) as `user`: status and bytes.
async fn fetch(app: &TestApp, user: &TestUser, url: &str) -> (u16, Vec<u8>) {
    let res = app.client.get(format!("{}{url}", app.base)).bearer_auth(&user.token).send().await.expect("get");
    let status = res.status().as_u16();
    (status, res.bytes().await.expect("bytes").to_vec())
}

fn messages_path(conversation: Uuid) -> String {
    format!("/chat/conversations/{conversation}/messages")
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.insert(path);
            }
        }
    }
    out
}

async fn attachments_show_in_history_pushes_and_threads_and_their_urls_download_for_members(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "design", &[&cast.bob]).await;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;
    let mut alice = app.ws_in(&cast.alice, cast.workspace).await;
    let png = upload(&app, &cast.alice, cast.workspace, group.id, "chart.png", PNG).await;
    let pdf = upload(&app, &cast.bob, cast.workspace, group.id, "Q3 rapport été.pdf", PDF).await;
    let photo = upload(&app, &cast.alice, cast.workspace, group.id, "../photo.png", PNG).await;
    assert_eq!(
        (png["contentType"].as_str(), pdf["contentType"].as_str()),
        (Some("image/png"), Some("application/pdf"))
    );
    let (png_shown, pdf_shown, photo_shown) = (shown(&png, "image"), shown(&pdf, "file"), shown(&photo, "image"));
    assert_eq!(pdf_shown["name"], "Q3 rapport été.pdf");
    assert_eq!(photo_shown["name"], "photo.png");
    assert_eq!(png_shown["size"], PNG.len());

    // Over REST, a file of each member, in the sender's order: not all images, so a `file`.
    let body = json!({"content": "the numbers", "attachments": [{"id": id_of(&pdf)}, {"id": id_of(&png)}]});
    let reply = app.post(&messages_path(group.id), &cast.alice, body).await;
    reply.assert_status(201);
    let root = reply.body;
    assert_eq!(root["type"], "file");
    assert_eq!(root["attachments"], json!([pdf_shown, png_shown]));
    let pushed = bob.push("message:new").await;
    assert_eq!(pushed["message"], root);

    // Over the socket, a reply with images only and no caption: an `image`.
    let acked = alice
        .ok(
            "send_message",
            json!({"conversationId": group.id, "content": "", "replyToId": root["id"], "attachments": [{"id": id_of(&photo)}]}),
        )
        .await;
    assert_eq!((&acked["type"], &acked["content"]), (&json!("image"), &json!("")));
    assert_eq!(acked["attachments"], json!([photo_shown]));
    let pushed = bob.push("message:new").await;
    assert_eq!(pushed["message"], acked);

    // History and the thread show the same objects.
    let history = app.get(&messages_path(group.id), &cast.bob).await;
    history.assert_status(200);
    let mut root_now = root.clone();
    root_now["replyCount"] = json!(1);
    assert_eq!(history.body["items"], json!([acked, root_now]));
    let thread =
        app.get(&format!("{}?threadOf={}", messages_path(group.id), root["id"].as_str().expect("id")), &cast.bob).await;
    thread.assert_status(200);
    let attachments: Vec<&Value> =
        thread.body["items"].as_array().expect("items").iter().map(|m| &m["attachments"]).collect();
    assert_eq!(attachments, [&json!([pdf_shown, png_shown]), &json!([photo_shown])]);
    // A retry of a send answers the original with its attachments.
    let key = json!({"content": "again", "clientMsgId": "k-1", "attachments": [{"id": id_of(&png)}]});
    let first = app.post(&messages_path(group.id), &cast.bob, &key).await;
    first.assert_status(201);
    let retried =
        app.post(&messages_path(group.id), &cast.bob, json!({"content": "again", "clientMsgId": "k-1"})).await;
    retried.assert_status(200);
    assert_eq!(retried.body["attachments"], json!([png_shown]));
    // The conversation list's last message carries them too.
    let listed = app.get(&format!("/chat/conversations?workspaceId={}", cast.workspace), &cast.alice).await;
    listed.assert_status(200);
    let items = listed.body["items"].as_array().expect("a page of conversations");
    let entry = items.iter().find(|c| c["id"] == group.id.to_string()).expect("the group is listed");
    assert_eq!(entry["lastMessage"]["attachments"], json!([png_shown]));

    // Each url downloads the file for a member, and for nobody else.
    for (file, bytes) in [(&png_shown, PNG), (&pdf_shown, PDF), (&photo_shown, PNG)] {
        let url = file["url"].as_str().expect("url");
        for member in [&cast.alice, &cast.bob] {
            assert_eq!(fetch(&app, member, url).await, (200, bytes.to_vec()), "{url}");
        }
        assert_eq!(fetch(&app, &cast.mallory, url).await.0, 404, "{url}");
    }
}

async fn an_attachment_that_is_not_a_file_of_the_conversation_is_refused_and_nothing_is_stored(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "design", &[&cast.bob]).await;
    let other = app.group(&cast.alice, cast.workspace, "other", &[&cast.bob]).await;
    let strangers = app.group(&cast.mallory, cast.elsewhere, "theirs", &[]).await;
    let mine = id_of(&upload(&app, &cast.alice, cast.workspace, group.id, "mine.pdf", PDF).await);
    let of_other = id_of(&upload(&app, &cast.alice, cast.workspace, other.id, "other.pdf", PDF).await);
    let of_stranger = id_of(&upload(&app, &cast.mallory, cast.elsewhere, strangers.id, "theirs.pdf", PDF).await);
    let first = app.send(&cast.alice, group.id, "before").await;
    let mut socket = app.ws_in(&cast.alice, cast.workspace).await;

    for bad in [of_stranger, of_other, Uuid::now_v7()] {
        let body = json!({"content": "see attached", "attachments": [{"id": mine}, {"id": bad}]});
        let reply = app.post(&messages_path(group.id), &cast.alice, body).await;
        reply.assert_error(422, "validation_failed");
        assert_eq!(reply.body["error"]["message"], "attachments: unknown file");
        let frame = socket
            .request("send_message", json!({"conversationId": group.id, "content": "x", "attachments": [{"id": bad}]}))
            .await;
        assert_eq!(
            (&frame["event"], &frame["data"]["code"]),
            (&json!("error"), &json!("validation_failed")),
            "{frame}"
        );
    }
    // The other refusals of docs/api.md.
    let eleven: Vec<Value> = (0..11).map(|_| json!({"id": mine})).collect();
    for (body, status, code) in [
        (json!({"content": "x", "attachments": [{"fileId": mine}]}), 400, "bad_request"),
        (json!({"content": "x", "attachments": [{"id": mine, "name": "x"}]}), 400, "bad_request"),
        (json!({"content": "x", "attachments": eleven}), 422, "validation_failed"),
        (json!({"content": "x", "attachments": [{"id": mine}, {"id": mine}]}), 422, "validation_failed"),
        (json!({"content": "x", "type": "image"}), 422, "validation_failed"),
        (json!({"content": "x", "type": "text", "attachments": [{"id": mine}]}), 422, "validation_failed"),
        (json!({"content": "x", "type": "image", "attachments": [{"id": mine}]}), 422, "validation_failed"),
        (json!({"content": "  ", "attachments": []}), 422, "validation_failed"),
    ] {
        app.post(&messages_path(group.id), &cast.alice, &body).await.assert_error(status, code);
    }

    // Nothing was stored and no seq was consumed.
    let page = app.messages(&cast.bob, group.id, "").await;
    assert_eq!(page.items.iter().map(|m| m.id).collect::<Vec<_>>(), vec![first.id]);
    let next = app.send(&cast.alice, group.id, "after").await;
    assert_eq!(next.seq, first.seq + 1);
    // The refused ids are still there for their own members.
    assert_eq!(fetch(&app, &cast.mallory, &format!("/files/{of_stranger}")).await.0, 200);
    assert_eq!(fetch(&app, &cast.bob, &format!("/files/{of_other}")).await.0, 200);
}

async fn deleting_a_message_takes_its_attachments_and_the_senders_file_and_blob(app: TestApp) {
    let cast = app.cast().await;
    let group = app.group(&cast.alice, cast.workspace, "design", &[&cast.bob]).await;
    let blobs = app.data_dir.as_deref().expect("a local server").join("files");
    let before = files_under(&blobs);
    let own = upload(&app, &cast.alice, cast.workspace, group.id, "mine.png", PNG).await;
    let after_own = files_under(&blobs);
    let own_blob: Vec<&PathBuf> = after_own.difference(&before).collect();
    assert_eq!(own_blob.len(), 1, "one blob per upload");
    let own_blob = own_blob[0].clone();
    let bobs = upload(&app, &cast.bob, cast.workspace, group.id, "bobs.pdf", PDF).await;
    let bobs_blob: Vec<PathBuf> = files_under(&blobs).difference(&after_own).cloned().collect();
    let body = json!({"content": "both", "attachments": [{"id": id_of(&own)}, {"id": id_of(&bobs)}]});
    let reply = app.post(&messages_path(group.id), &cast.alice, body).await;
    reply.assert_status(201);
    let message = reply.body;
    let mut bob = app.ws_in(&cast.bob, cast.workspace).await;

    app.delete(&format!("/chat/messages/{}", message["id"].as_str().expect("id")), &cast.alice)
        .await
        .assert_status(204);

    assert_eq!(bob.push("message:delete").await["messageId"], message["id"]);
    let page = app.get(&messages_path(group.id), &cast.bob).await;
    let shown = &page.body["items"][0];
    assert_eq!((&shown["id"], &shown["content"], &shown["attachments"]), (&message["id"], &json!(""), &json!([])));
    assert!(shown["deletedAt"].is_string());
    // Alice's file went with her message, blob included; Bob's stays his.
    for member in [&cast.alice, &cast.bob] {
        assert_eq!(fetch(&app, member, &format!("/files/{}", id_of(&own))).await.0, 404);
        assert_eq!(fetch(&app, member, &format!("/files/{}", id_of(&bobs))).await, (200, PDF.to_vec()));
    }
    assert!(!own_blob.exists(), "the deleted file's blob is gone");
    assert_eq!(bobs_blob.len(), 1);
    assert!(bobs_blob[0].exists(), "bob's blob stays");
}
