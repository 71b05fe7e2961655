//! Encryption at rest, at scale: a thousand known messages, some with attached files, leave no
//! plaintext (text, file names or file contents) in the database, the data directory or Redis;
//! and a ciphertext moved to another row does not decrypt.

use std::path::Path;

use futures_util::future::join_all;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::attachments::{id_of, upload};
use crate::helpers::{Storage, TestApp};
use crate::on_both_stores;

on_both_stores!(
    a_thousand_messages_leave_no_plaintext_in_the_database_the_data_dir_or_redis,
    a_ciphertext_moved_to_another_row_does_not_decrypt,
);

const MESSAGES: usize = 1_000;
const BATCH: usize = 50;
/// Every this many messages, one carries a file.
const WITH_FILE: usize = 50;

/// Every file under `dir`, recursively, as raw bytes.
fn files_under(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).expect("data dir readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files_under(&path, out);
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path.display().to_string(), bytes));
        }
    }
}

/// Every key of the server's Redis namespace with its value, read by type (not `DUMP`,
/// whose LZF compression could hide a plaintext from the scan).
async fn redis_contents(url: &str, namespace: &str) -> Vec<(String, String)> {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis connection");
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{namespace}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut out = Vec::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut conn).await.expect("TYPE");
        let value: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&key).query_async(&mut conn).await.expect("GET")],
            "zset" => redis::cmd("ZRANGE")
                .arg(&key)
                .arg(0)
                .arg(-1)
                .arg("WITHSCORES")
                .query_async(&mut conn)
                .await
                .expect("ZRANGE"),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).query_async(&mut conn).await.expect("LRANGE"),
            "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut conn).await.expect("SMEMBERS"),
            "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await.expect("HGETALL"),
            // Gone between SCAN and TYPE.
            "none" => continue,
            other => panic!("{key}: the scan does not read Redis type {other}; teach it"),
        };
        let text = value.iter().map(|v| String::from_utf8_lossy(v).into_owned()).collect::<Vec<_>>().join("\n");
        out.push((key, text));
    }
    out
}

async fn a_thousand_messages_leave_no_plaintext_in_the_database_the_data_dir_or_redis(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "bulk", &[&cast.bob]).await;
    // A live socket keeps presence entries in Redis during the scan.
    let _socket = app.ws_in(&cast.bob, cast.workspace).await;
    let run = Uuid::new_v4().simple().to_string();
    let marker = |i: usize| format!("atrest{}x{i:04} quokka", &run[..12]);
    // Attached files with distinctive names and contents (text, kept as is by the server).
    let file_name = |i: usize| format!("atrest{}f{i:04} wombat.txt", &run[..12]);
    let file_body = |i: usize| format!("atrest{}b{i:04} numbat ledger, row {i}\n", &run[..12]).repeat(40);
    let mut attached = Vec::new();
    for i in (0..MESSAGES).step_by(WITH_FILE) {
        let uploader = if i % 2 == 0 { &cast.alice } else { &cast.bob };
        let file = upload(&app, uploader, cast.workspace, channel.id, &file_name(i), file_body(i).as_bytes()).await;
        attached.push(id_of(&file));
    }
    let (server, channel_id, attached) = (&app, channel.id, &attached);
    for start in (0..MESSAGES).step_by(BATCH) {
        let sends = (start..start + BATCH).map(|i| {
            let sender = if i % 2 == 0 { &cast.alice } else { &cast.bob };
            let body = if i % WITH_FILE == 0 {
                json!({"content": marker(i), "attachments": [{"id": attached[i / WITH_FILE]}]})
            } else {
                json!({"content": marker(i)})
            };
            async move { server.post(&format!("/chat/conversations/{channel_id}/messages"), sender, body).await }
        });
        for reply in join_all(sends).await {
            reply.assert_status(201);
        }
    }
    // All of them read back, decrypted, the files with their names.
    let mut seen = 0;
    let mut names = Vec::new();
    let mut query = "?limit=100".to_owned();
    loop {
        let page = app.messages(&cast.alice, channel.id, &query).await;
        seen += page.items.iter().filter(|m| m.content.starts_with(&format!("atrest{}x", &run[..12]))).count();
        names.extend(page.items.iter().flat_map(|m| m.attachments.iter().map(|a| a.name.clone())));
        match page.next_cursor {
            Some(cursor) if !page.items.is_empty() => query = format!("?limit=100&before={cursor}"),
            _ => break,
        }
    }
    assert_eq!(seen, MESSAGES);
    names.sort();
    assert_eq!(names, (0..MESSAGES).step_by(WITH_FILE).map(file_name).collect::<Vec<_>>());
    let (status, bytes) = {
        let url = format!("{}/files/{}", app.base, attached[1]);
        let res = app.client.get(url).bearer_auth(&cast.alice.token).send().await.expect("download");
        (res.status().as_u16(), res.bytes().await.expect("bytes"))
    };
    assert_eq!((status, bytes.as_ref()), (200, file_body(WITH_FILE).as_bytes()));

    let mut places: Vec<(String, String)> = Vec::new();
    let dump = app.raw_storage_dump().await;
    let dump = String::from_utf8_lossy(&dump).into_owned();
    // The scan reads the store: what is not encrypted (the workspace's name) is there.
    assert!(dump.contains("Acme"), "the database scan read nothing useful");
    places.push(("database".to_owned(), dump));
    let mut files = Vec::new();
    files_under(app.data_dir.as_deref().expect("a local server"), &mut files);
    places.extend(files.into_iter().map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned())));
    if let Some((url, namespace)) = &app.redis {
        let keys = redis_contents(url, namespace).await;
        assert!(
            keys.iter().any(|(key, _)| key.starts_with(&format!("{namespace}:presence:"))),
            "the Redis scan found no presence key: {keys:?}"
        );
        places.extend(keys.into_iter().map(|(key, value)| (format!("redis {key}"), value)));
    }
    for (place, text) in &places {
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        // Every message's, file name's and file body's distinctive part, as text and as hex
        // (PostgreSQL's bytea dump).
        let prefix = format!("atrest{}", &run[..12]);
        assert!(!text.contains(&prefix), "a plaintext is readable in {place}");
        assert!(!text.contains(&hex(&prefix)), "a hex-encoded plaintext is readable in {place}");
        for word in ["quokka", "wombat", "numbat"] {
            assert!(!text.contains(word), "the plaintext word {word} is readable in {place}");
            assert!(!text.contains(&hex(word)), "the hex-encoded word {word} is readable in {place}");
        }
    }
}

/// Overwrites `target`'s sealed content and key version with `source`'s, under the server.
async fn move_ciphertext(app: &TestApp, source: Uuid, target: Uuid) {
    let sql = "UPDATE messages SET content = (SELECT content FROM messages WHERE id = $1), \
               key_version = (SELECT key_version FROM messages WHERE id = $1) WHERE id = $2";
    match &app.storage {
        Storage::Sqlite { path } => {
            use diesel::sqlite::SqliteConnection;
            use diesel::{Connection, RunQueryDsl, sql_types::Binary};
            let mut conn = SqliteConnection::establish(&path.display().to_string()).expect("open sqlite");
            diesel::sql_query("PRAGMA busy_timeout = 5000").execute(&mut conn).expect("pragma");
            let sql = sql.replace("$1", "?1").replace("$2", "?2");
            let changed = diesel::sql_query(sql)
                .bind::<Binary, _>(source.as_bytes().to_vec())
                .bind::<Binary, _>(target.as_bytes().to_vec())
                .execute(&mut conn)
                .expect("update");
            assert_eq!(changed, 1);
        }
        Storage::Postgres { url } => {
            use diesel::sql_types::Uuid as SqlUuid;
            use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
            let mut conn = AsyncPgConnection::establish(url).await.expect("connect");
            let changed = diesel::sql_query(sql)
                .bind::<SqlUuid, _>(source)
                .bind::<SqlUuid, _>(target)
                .execute(&mut conn)
                .await
                .expect("update");
            assert_eq!(changed, 1);
        }
        Storage::Remote => panic!("not a local server"),
    }
}

async fn a_ciphertext_moved_to_another_row_does_not_decrypt(app: TestApp) {
    let cast = app.cast().await;
    let channel = app.channel(&cast.alice, cast.workspace, "tamper", &[&cast.bob]).await;
    let source = app.send(&cast.alice, channel.id, "the source words").await;
    let target = app.send(&cast.alice, channel.id, "the target words").await;
    let last = app.send(&cast.alice, channel.id, "an untouched message").await;
    // Same workspace, conversation and key version: only the message id in the AAD differs.
    move_ciphertext(&app, source.id, target.id).await;

    let reads: Vec<String> = vec![
        format!("/chat/conversations/{}/messages", channel.id),
        format!("/chat/conversations/{}/messages?threadOf={}", channel.id, target.id),
        format!("/chat/conversations/{}/messages?after=1", channel.id),
    ];
    for path in &reads {
        let reply = app.get(path, &cast.bob).await;
        reply.assert_error(500, "internal");
        assert_eq!(reply.body["error"]["message"], "internal error", "{path}: {}", reply.body);
        assert!(!reply.body.to_string().contains("source"), "{path} leaked the other message: {}", reply.body);
    }
    // The rows around it still read, and the source still says its own words.
    let page = app.messages(&cast.bob, channel.id, &format!("?after={}", target.seq)).await;
    assert_eq!(page.items.iter().map(|m| m.id).collect::<Vec<_>>(), vec![last.id]);
    let page = app.messages(&cast.bob, channel.id, &format!("?before={}", target.seq)).await;
    assert_eq!(
        page.items.iter().map(|m| (m.id, m.content.as_str())).collect::<Vec<_>>(),
        vec![(source.id, "the source words")]
    );
    // Over the socket, `resume` through the tampered row answers `internal` and replays nothing.
    let mut ws = app.ws_in(&cast.bob, cast.workspace).await;
    let frame = ws.request("resume", json!({"conversations": {channel.id.to_string(): target.seq - 1}})).await;
    assert_eq!((frame["event"].as_str(), &frame["data"]["code"]), (Some("error"), &Value::from("internal")), "{frame}");
    ws.silent(std::time::Duration::from_millis(200)).await;
    // An edit never opens the old content: it seals the new text afresh, which repairs the row.
    let edited = app.put(&format!("/chat/messages/{}", target.id), &cast.alice, json!({"content": "new words"})).await;
    edited.assert_status(200);
    let page = app.messages(&cast.bob, channel.id, "").await;
    assert_eq!(
        page.items.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        vec!["an untouched message", "new words", "the source words"]
    );
}
