//! `POST /files` and `GET /files/:id`: encrypted file sharing. Round trip, who may download
//! (members of the file's conversation only; anyone else 404, audited), the size cap (413),
//! content types from magic bytes, the download's security headers, no plaintext at rest (blob
//! directory and database), the per-user upload limit (429), streamed downloads that stop
//! short of `Content-Length` when a chunk fails authentication, and the S3-compatible blob
//! store (against `moto_server`, see `chat_blobstore::testing`).

use std::path::Path;

use reqwest::header::HeaderMap;
use serde_json::Value;
use uuid::Uuid;

use chat_blobstore::testing::S3Server;

use crate::helpers::{Backend, Cast, Reply, TestApp, TestUser};
use crate::on_both_stores;

on_both_stores!(
    a_file_round_trips_through_upload_and_download_with_safe_headers,
    only_members_of_the_files_conversation_may_download_it_and_refusals_are_audited,
    uploads_need_posting_rights_in_a_conversation_of_the_named_workspace,
    content_types_come_from_magic_bytes_and_markup_is_served_as_octet_stream,
    neither_the_blob_store_nor_the_database_holds_a_files_plaintext_or_name,
    a_chunk_that_fails_authentication_cuts_the_download_short_of_its_content_length,
);

/// Plaintext bytes per sealed chunk, and a sealed chunk's length (nonce and tag around it).
const CHUNK: usize = 64 * 1024;
const SEALED_CHUNK: usize = 12 + CHUNK + 16;

/// A 1×1 PNG.
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xff\xff?\0\x05\xfe\x02\xfe\xa7\x35\x81\x84\0\0\0\0IEND\xaeB`\x82";

const BOUNDARY: &str = "chat-test-boundary-7MA4YWxkTrZu0gW";

/// A `multipart/form-data` body with the given text parts and one file part.
fn multipart(fields: &[(&str, String)], file: Option<(&str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    if let Some((filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
                 Content-Type: text/plain\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Posts `body` to `/files` as `user`; the reply and its headers.
async fn post_files(app: &TestApp, user: &TestUser, body: Vec<u8>) -> (Reply, HeaderMap) {
    let res = app
        .client
        .post(format!("{}/files", app.base))
        .bearer_auth(&user.token)
        .header("Content-Type", format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await
        .expect("upload sent");
    let (status, headers) = (res.status(), res.headers().clone());
    let text = res.text().await.expect("body read");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    (Reply { status, body }, headers)
}

pub(crate) async fn upload(
    app: &TestApp,
    user: &TestUser,
    workspace: Uuid,
    conversation: Uuid,
    name: &str,
    bytes: &[u8],
) -> (Reply, HeaderMap) {
    let fields = [("workspaceId", workspace.to_string()), ("conversationId", conversation.to_string())];
    post_files(app, user, multipart(&fields, Some((name, bytes)))).await
}

/// Uploads and expects 201; the file's id.
pub(crate) async fn uploaded(
    app: &TestApp,
    user: &TestUser,
    workspace: Uuid,
    conversation: Uuid,
    name: &str,
    bytes: &[u8],
) -> Uuid {
    let (reply, _) = upload(app, user, workspace, conversation, name, bytes).await;
    reply.assert_status(201);
    reply.body["id"].as_str().and_then(|id| id.parse().ok()).expect("file id")
}

/// Downloads as `user`: status, headers and raw bytes.
pub(crate) async fn download(app: &TestApp, user: &TestUser, id: Uuid) -> (u16, HeaderMap, Vec<u8>) {
    let res =
        app.client.get(format!("{}/files/{id}", app.base)).bearer_auth(&user.token).send().await.expect("download");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, headers, res.bytes().await.expect("bytes").to_vec())
}

pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn a_file_round_trips_through_upload_and_download_with_safe_headers(app: TestApp) {
    let Cast { alice, bob, workspace, .. } = app.cast().await;
    let group = app.group(&alice, workspace, "design", &[&bob]).await.id;
    // More than one 64 KiB chunk, with a recognisable pattern.
    let content: Vec<u8> = b"quarterly numbers, row ".iter().copied().cycle().take(200_000).collect();

    let (reply, _) = upload(&app, &alice, workspace, group, "../../Q3 rapport été.txt", &content).await;
    reply.assert_status(201);
    let file = &reply.body;
    assert_eq!(file["name"], "Q3 rapport été.txt");
    assert_eq!(file["contentType"], "text/plain");
    assert_eq!(file["size"], 200_000);
    assert_eq!(file["conversationId"], group.to_string());
    assert!(file["createdAt"].as_str().is_some());
    let keys: Vec<&String> = file.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 6, "only the documented fields: {keys:?}");
    let id: Uuid = file["id"].as_str().expect("id").parse().expect("uuid");

    for who in [&alice, &bob] {
        let (status, headers, bytes) = download(&app, who, id).await;
        assert_eq!(status, 200);
        assert_eq!(bytes, content);
        assert_eq!(header(&headers, "content-type"), "text/plain; charset=utf-8");
        assert_eq!(
            header(&headers, "content-disposition"),
            "attachment; filename=\"Q3 rapport _t_.txt\"; filename*=UTF-8''Q3%20rapport%20%C3%A9t%C3%A9.txt"
        );
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "content-security-policy"), "sandbox; default-src 'none'");
    }

    // An empty file is a file too.
    let empty = uploaded(&app, &alice, workspace, group, "empty", b"").await;
    let (status, _, bytes) = download(&app, &bob, empty).await;
    assert_eq!((status, bytes.len()), (200, 0));

    // Unknown ids and malformed ones.
    let (status, _, _) = download(&app, &alice, Uuid::now_v7()).await;
    assert_eq!(status, 404);
    let res = app.client.get(format!("{}/files/not-a-uuid", app.base)).bearer_auth(&alice.token).send().await;
    assert_eq!(res.expect("sent").status().as_u16(), 404);
    // No token, no file.
    let res = app.client.get(format!("{}/files/{id}", app.base)).send().await.expect("sent");
    assert_eq!(res.status().as_u16(), 401);
}

async fn only_members_of_the_files_conversation_may_download_it_and_refusals_are_audited(app: TestApp) {
    let Cast { alice, bob, mallory, workspace, .. } = app.cast().await;
    let carol = app.register("carol").await;
    app.add_to_workspace(&alice, workspace, &carol, "member").await;
    let group = app.group(&alice, workspace, "private", &[&bob]).await.id;
    let channel = app.channel(&alice, workspace, "general", &[&bob]).await.id;
    let in_group = uploaded(&app, &bob, workspace, group, "plan.txt", b"the plan").await;
    let in_channel = uploaded(&app, &alice, workspace, channel, "notes.txt", b"the notes").await;

    // carol is in the workspace but not in the group; mallory is in another workspace. A
    // channel's files are for its members too, though carol could read the channel.
    for (who, id) in [(&carol, in_group), (&mallory, in_group), (&carol, in_channel), (&mallory, in_channel)] {
        let (status, _, bytes) = download(&app, who, id).await;
        assert_eq!(status, 404, "{} downloading {id}", who.email);
        assert!(!bytes.windows(3).any(|w| w == b"the"), "a refusal leaks nothing");
    }
    let (status, _, bytes) = download(&app, &bob, in_channel).await;
    assert_eq!((status, bytes.as_slice()), (200, &b"the notes"[..]));

    let audit = app.get(&format!("/workspaces/{workspace}/audit?limit=100"), &alice).await;
    audit.assert_status(200);
    let denied: Vec<&Value> =
        audit.body["items"].as_array().expect("items").iter().filter(|e| e["action"] == "file_access_denied").collect();
    assert_eq!(denied.len(), 4, "{}", audit.body);
    let actors: Vec<&str> = denied.iter().map(|e| e["actorId"].as_str().unwrap_or_default()).collect();
    assert_eq!(actors.iter().filter(|a| **a == carol.id.to_string()).count(), 2);
    assert_eq!(actors.iter().filter(|a| **a == mallory.id.to_string()).count(), 2);
    assert!(denied.iter().any(|e| e["target"] == format!("file:{in_group} conversation:{group}")));
}

async fn uploads_need_posting_rights_in_a_conversation_of_the_named_workspace(app: TestApp) {
    let Cast { alice, bob, mallory, workspace, elsewhere } = app.cast().await;
    let group = app.group(&alice, workspace, "private", &[]).await.id;
    let channel = app.channel(&alice, workspace, "general", &[]).await.id;

    let (reply, _) = upload(&app, &mallory, workspace, group, "x.txt", b"x").await;
    reply.assert_error(404, "not_found");
    let (reply, _) = upload(&app, &mallory, elsewhere, group, "x.txt", b"x").await;
    reply.assert_error(404, "not_found");
    let (reply, _) = upload(&app, &bob, workspace, group, "x.txt", b"x").await;
    reply.assert_error(404, "not_found");
    // bob may read the channel but must join it to post.
    let (reply, _) = upload(&app, &bob, workspace, channel, "x.txt", b"x").await;
    reply.assert_error(403, "forbidden");
    // The conversation must be in the named workspace.
    let (reply, _) = upload(&app, &alice, elsewhere, group, "x.txt", b"x").await;
    reply.assert_error(404, "not_found");

    // Archived conversations take no files.
    app.delete(&format!("/chat/conversations/{channel}"), &alice).await.assert_status(204);
    let (reply, _) = upload(&app, &alice, workspace, channel, "x.txt", b"x").await;
    reply.assert_error(409, "conflict");

    // Missing parts, malformed ids, unknown parts, a body that is not multipart.
    let ids = || [("workspaceId", workspace.to_string()), ("conversationId", group.to_string())];
    post_files(&app, &alice, multipart(&ids(), None)).await.0.assert_error(422, "validation_failed");
    post_files(&app, &alice, multipart(&[("workspaceId", workspace.to_string())], Some(("a", b"x"))))
        .await
        .0
        .assert_error(422, "validation_failed");
    let bad = [("workspaceId", "nope".to_owned()), ("conversationId", group.to_string())];
    post_files(&app, &alice, multipart(&bad, Some(("a", b"x")))).await.0.assert_error(422, "validation_failed");
    let mut extra = ids().to_vec();
    extra.push(("path", "/etc/passwd".to_owned()));
    post_files(&app, &alice, multipart(&extra, Some(("a", b"x")))).await.0.assert_error(400, "bad_request");
    let reply = app.post("/files", &alice, serde_json::json!({"workspaceId": workspace})).await;
    reply.assert_error(400, "bad_request");
    // And none of that stored anything.
    assert_eq!(blobs(app.data_dir.as_deref().expect("data dir")).len(), 0);
}

async fn content_types_come_from_magic_bytes_and_markup_is_served_as_octet_stream(app: TestApp) {
    let Cast { alice, workspace, .. } = app.cast().await;
    let group = app.group(&alice, workspace, "media", &[]).await.id;
    let cases: [(&str, &[u8], &str); 4] = [
        ("x.txt", PNG, "image/png"),
        (
            "page.html",
            b"<!DOCTYPE html><html><script>alert(document.domain)</script></html>",
            "application/octet-stream",
        ),
        ("logo.png", b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>", "application/octet-stream"),
        ("report.pdf", b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0", "application/octet-stream"),
    ];
    for (name, bytes, expected) in cases {
        let (reply, _) = upload(&app, &alice, workspace, group, name, bytes).await;
        reply.assert_status(201);
        assert_eq!(reply.body["contentType"], expected, "{name}");
        assert_eq!(reply.body["name"], name);
        let id: Uuid = reply.body["id"].as_str().expect("id").parse().expect("uuid");
        let (status, headers, body) = download(&app, &alice, id).await;
        assert_eq!((status, body.as_slice()), (200, bytes), "{name}");
        assert_eq!(header(&headers, "content-type"), expected, "{name}");
        assert!(header(&headers, "content-disposition").starts_with("attachment;"), "{name}");
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
        assert_eq!(header(&headers, "content-security-policy"), "sandbox; default-src 'none'");
    }
}

/// Every regular file under `dir/files`.
pub(crate) fn blobs(data_dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(data_dir.join("files"))
        .map(|entries| entries.map(|e| e.expect("entry").path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default()
}

async fn neither_the_blob_store_nor_the_database_holds_a_files_plaintext_or_name(app: TestApp) {
    let Cast { alice, bob, workspace, .. } = app.cast().await;
    let group = app.group(&alice, workspace, "vault", &[&bob]).await.id;
    let marker = "TOP-SECRET-FILE-CONTENT-4f1d";
    let name = "payroll-export-9c2e.csv";
    let content = format!("{marker}\n").repeat(20_000);
    let id = uploaded(&app, &alice, workspace, group, name, content.as_bytes()).await;
    assert_eq!(download(&app, &bob, id).await.2, content.as_bytes());

    let dir = app.data_dir.clone().expect("data dir");
    let stored = blobs(&dir);
    assert_eq!(stored.len(), 1, "one sealed object: {stored:?}");
    let object = &stored[0];
    let file_name = object.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(file_name.len() == 32 && file_name.bytes().all(|b| b.is_ascii_hexdigit()), "random name: {file_name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(object).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let sealed = std::fs::read(object).expect("read");
    assert!(sealed.len() > content.len(), "sealed, with nonces and tags");
    let dump = app.raw_storage_dump().await;
    for needle in [marker, "TOP-SECRET", "payroll-export", "payroll"] {
        for (what, haystack) in [("blob", &sealed), ("database", &dump)] {
            assert!(
                !haystack.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{what} holds {needle:?} in clear"
            );
        }
    }
    // Hex-encoded bytea in the PostgreSQL dump: the marker's hex must not appear either.
    let hex_marker: String = marker.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.windows(hex_marker.len()).any(|w| w == hex_marker.as_bytes()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_cap_is_refused_with_413_on_both_stores() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_with(backend, &[("MAX_UPLOAD_BYTES", "100000")]).await else { continue };
        let Cast { alice, workspace, .. } = app.cast().await;
        let group = app.group(&alice, workspace, "big", &[]).await.id;
        let (reply, _) = upload(&app, &alice, workspace, group, "big.bin", &vec![7_u8; 100_001]).await;
        reply.assert_error(413, "payload_too_large");
        let (reply, _) = upload(&app, &alice, workspace, group, "big.bin", &vec![7_u8; 1_000_000]).await;
        reply.assert_error(413, "payload_too_large");
        assert_eq!(blobs(app.data_dir.as_deref().expect("data dir")).len(), 0);
        let (reply, _) = upload(&app, &alice, workspace, group, "fits.bin", &vec![7_u8; 100_000]).await;
        reply.assert_status(201);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_past_the_per_user_limit_get_429_with_retry_after_on_both_stores() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(app) = TestApp::spawn_with(backend, &[("RATE_LIMIT_UPLOADS_PER_MINUTE", "2")]).await else {
            continue;
        };
        let Cast { alice, bob, workspace, .. } = app.cast().await;
        let group = app.group(&alice, workspace, "burst", &[&bob]).await.id;
        for _ in 0..2 {
            uploaded(&app, &alice, workspace, group, "a.txt", b"a").await;
        }
        let (reply, headers) = upload(&app, &alice, workspace, group, "a.txt", b"a").await;
        reply.assert_error(429, "rate_limited");
        let retry: u64 = header(&headers, "retry-after").parse().expect("Retry-After seconds");
        assert!((1..=60).contains(&retry), "Retry-After {retry}");
        // The budget is per user: bob still has his.
        uploaded(&app, &bob, workspace, group, "b.txt", b"b").await;
        assert_eq!(blobs(app.data_dir.as_deref().expect("data dir")).len(), 3);
    }
}

/// What a client receives of a download that may be cut short: the status, the announced
/// `Content-Length`, the bytes that arrived, and whether the body ended in an error.
async fn download_until_cut(app: &TestApp, user: &TestUser, id: Uuid) -> (u16, Option<u64>, Vec<u8>, bool) {
    let mut res =
        app.client.get(format!("{}/files/{id}", app.base)).bearer_auth(&user.token).send().await.expect("download");
    let (status, length) = (res.status().as_u16(), res.content_length());
    let mut received = Vec::new();
    loop {
        match res.chunk().await {
            Ok(Some(piece)) => received.extend_from_slice(&piece),
            Ok(None) => return (status, length, received, false),
            Err(_) => return (status, length, received, true),
        }
    }
}

async fn a_chunk_that_fails_authentication_cuts_the_download_short_of_its_content_length(app: TestApp) {
    let Cast { alice, bob, workspace, .. } = app.cast().await;
    let group = app.group(&alice, workspace, "tampered", &[&bob]).await.id;
    let dir = app.data_dir.clone().expect("data dir");
    // Four chunks, of a pattern that shows where a received prefix comes from.
    let content: Vec<u8> = (0..200_000_u32).map(|i| b"0123456789abcdef"[(i % 16) as usize]).collect();
    // Each upload's blob is the one new file of the directory.
    let mut paths = Vec::new();
    let mut ids = Vec::new();
    for name in ["late.txt", "early.txt", "intact.txt"] {
        let before = blobs(&dir);
        ids.push(uploaded(&app, &alice, workspace, group, name, &content).await);
        paths.push(blobs(&dir).into_iter().find(|p| !before.contains(p)).expect("a new blob"));
    }
    let tamper = |path: &Path, at: usize| {
        let mut bytes = std::fs::read(path).expect("read");
        bytes[at] ^= 0x01;
        std::fs::write(path, bytes).expect("write");
    };
    // One byte flipped in the third chunk of the first blob, in the first chunk of the second.
    tamper(&paths[0], 1 + 2 * SEALED_CHUNK + 100);
    tamper(&paths[1], 1 + 100);

    // Intact, the body arrives whole, as long as announced.
    let (status, length, received, cut) = download_until_cut(&app, &bob, ids[2]).await;
    assert_eq!((status, length, cut), (200, Some(200_000), false));
    assert_eq!(received, content);

    // The headers (and the chunks before the bad one) went out; then the connection closed
    // short of Content-Length: the client can tell, and got no byte of the bad chunk.
    let (status, length, received, cut) = download_until_cut(&app, &bob, ids[0]).await;
    assert_eq!((status, length), (200, Some(200_000)));
    assert!(cut, "the body ends in an error, not a normal end");
    assert!(received.len() <= 2 * CHUNK, "nothing of the tampered chunk: got {}", received.len());
    assert_eq!(received[..], content[..received.len()], "what arrived is an authentic prefix");

    // A first chunk that fails is refused before anything is sent.
    let (status, _, bytes) = download(&app, &bob, ids[1]).await;
    assert_eq!(status, 500);
    let body: Value = serde_json::from_slice(&bytes).expect("an error body");
    assert_eq!(body["error"]["code"], "internal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_an_s3_bucket_round_trip_and_the_bucket_holds_only_sealed_objects_on_both_stores() {
    let Some(s3) = S3Server::start().await else { return };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let bucket = s3.create_bucket().await;
        let mut vars = s3.aws_vars();
        vars.push(("FILE_STORE".to_owned(), format!("s3://{bucket}/chat/files")));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let Some(app) = TestApp::spawn_with(backend, &vars).await else { continue };
        let Cast { alice, bob, mallory, workspace, .. } = app.cast().await;
        let group = app.group(&alice, workspace, "bucket", &[&bob]).await.id;
        let marker = "S3-SECRET-FILE-CONTENT-77e1";
        let name = "board-minutes-3b9f.txt";
        let content = format!("{marker}\n").repeat(10_000);
        let id = uploaded(&app, &alice, workspace, group, name, content.as_bytes()).await;
        let small = uploaded(&app, &alice, workspace, group, "small.txt", b"tiny").await;

        let (status, headers, bytes) = download(&app, &bob, id).await;
        assert_eq!(status, 200);
        assert_eq!(bytes, content.as_bytes(), "byte-identical through the bucket");
        assert_eq!(header(&headers, "content-length"), content.len().to_string());
        assert!(header(&headers, "content-disposition").contains(name));
        assert_eq!(download(&app, &bob, small).await.2, b"tiny");
        assert_eq!(download(&app, &mallory, id).await.0, 404);

        let objects = s3.objects(&bucket).await;
        assert_eq!(objects.len(), 2, "{:?}", objects.iter().map(|(n, _)| n).collect::<Vec<_>>());
        for (object, sealed) in &objects {
            let key = object.strip_prefix("chat/files/").expect("under the prefix");
            assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()), "random name: {object}");
            for needle in [marker, "S3-SECRET", name, "board-minutes", "tiny"] {
                assert!(!sealed.windows(needle.len()).any(|w| w == needle.as_bytes()), "{object} holds {needle:?}");
                assert!(!object.contains(needle));
            }
        }
        assert!(objects.iter().any(|(_, sealed)| sealed.len() > content.len()), "sealed, with nonces and tags");
        assert!(blobs(app.data_dir.as_deref().expect("data dir")).is_empty(), "nothing in the local directory");
    }
}
