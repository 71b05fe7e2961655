//! `GET /chat/search`: search over encrypted messages through the keyed blind index.

use chat_protocol::{Message, Page};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Reply, TestApp, TestUser};
use crate::on_both_stores;

on_both_stores!(
    words_and_prefixes_are_found_in_any_case,
    search_never_reaches_beyond_the_callers_own_conversations,
    an_e2e_conversation_is_never_searched,
    an_edited_message_is_found_by_its_new_words_only,
    a_deleted_message_is_not_found,
    results_page_newest_first_with_the_cursor,
    bad_searches_are_refused,
    the_index_holds_no_plaintext_token,
);

/// `/chat/search` with `params`, URL-encoded.
fn search_path(params: &[(&str, &str)]) -> String {
    let mut url = reqwest::Url::parse("http://localhost/chat/search").expect("url");
    url.query_pairs_mut().extend_pairs(params);
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

async fn search_raw(app: &TestApp, user: &TestUser, params: &[(&str, &str)]) -> Reply {
    app.get(&search_path(params), user).await
}

/// A successful search of `workspace` for `q`.
async fn search(app: &TestApp, user: &TestUser, workspace: Uuid, q: &str) -> Page<Message> {
    let reply = search_raw(app, user, &[("workspaceId", &workspace.to_string()), ("q", q)]).await;
    reply.assert_status(200);
    reply.json()
}

fn ids(page: &Page<Message>) -> Vec<Uuid> {
    page.items.iter().map(|m| m.id).collect()
}

async fn words_and_prefixes_are_found_in_any_case(app: TestApp) {
    let cast = app.cast().await;
    let (alice, bob) = (&cast.alice, &cast.bob);
    let channel = app.channel(alice, cast.workspace, "releases", &[bob]).await;
    let hit = app.send(alice, channel.id, "Deploying the Quokka release on Friday").await;
    app.send(bob, channel.id, "lunch at noon?").await;

    for q in ["quokka", "QUOKKA", "Quok", "deploy friday", "FRI the"] {
        let found = search(&app, bob, cast.workspace, q).await;
        assert_eq!(ids(&found), vec![hit.id], "{q}");
        assert_eq!(found.next_cursor, None);
    }
    let found = search(&app, alice, cast.workspace, "quokka").await;
    let item = &found.items[0];
    assert_eq!((item.conversation_id, item.content.as_str()), (channel.id, "Deploying the Quokka release on Friday"));
    // Every word must match; a prefix matches from the start of a word only.
    assert!(search(&app, bob, cast.workspace, "quokka monday").await.items.is_empty());
    assert!(search(&app, bob, cast.workspace, "okka").await.items.is_empty());
    // Words shorter than three characters match whole words only.
    assert!(search(&app, bob, cast.workspace, "fr").await.items.is_empty());
    assert_eq!(ids(&search(&app, bob, cast.workspace, "on").await), vec![hit.id]);
}

async fn search_never_reaches_beyond_the_callers_own_conversations(app: TestApp) {
    let cast = app.cast().await;
    let (alice, bob, mallory) = (&cast.alice, &cast.bob, &cast.mallory);
    let carol = app.register("carol").await;
    app.add_to_workspace(alice, cast.workspace, &carol, "member").await;
    let private = app.group(alice, cast.workspace, "plans", &[bob]).await;
    let secret = app.send(alice, private.id, "the marmalade plan").await;
    // A channel carol could join but has not: search covers members only.
    let channel = app.channel(alice, cast.workspace, "general", &[bob]).await;
    let public = app.send(bob, channel.id, "marmalade for everyone").await;
    let own = app.channel(&carol, cast.workspace, "carol's", &[]).await;
    let carols = app.send(&carol, own.id, "my marmalade").await;
    // The same word in another workspace.
    let theirs = app.channel(mallory, cast.elsewhere, "theirs", &[]).await;
    let foreign = app.send(mallory, theirs.id, "marmalade elsewhere").await;

    assert_eq!(ids(&search(&app, &carol, cast.workspace, "marmalade").await), vec![carols.id]);
    assert_eq!(ids(&search(&app, bob, cast.workspace, "marmalade").await), vec![public.id, secret.id]);
    assert_eq!(ids(&search(&app, alice, cast.workspace, "marmalade").await), vec![public.id, secret.id]);
    assert_eq!(ids(&search(&app, mallory, cast.elsewhere, "marmalade").await), vec![foreign.id]);

    // A conversation filter outside the caller's conversations is 404, like a missing one.
    let workspace = cast.workspace.to_string();
    for target in [private.id, channel.id, theirs.id, Uuid::new_v4()] {
        search_raw(
            &app,
            &carol,
            &[("workspaceId", &workspace), ("q", "marmalade"), ("conversationId", &target.to_string())],
        )
        .await
        .assert_error(404, "not_found");
    }
    let only_private = search_raw(
        &app,
        bob,
        &[("workspaceId", &workspace), ("q", "marmalade"), ("conversationId", &private.id.to_string())],
    )
    .await;
    only_private.assert_status(200);
    assert_eq!(ids(&only_private.json()), vec![secret.id]);
    // A workspace the caller is not in does not exist for them.
    search_raw(&app, mallory, &[("workspaceId", &workspace), ("q", "marmalade")]).await.assert_error(404, "not_found");
    search_raw(&app, alice, &[("workspaceId", &cast.elsewhere.to_string()), ("q", "marmalade")])
        .await
        .assert_error(404, "not_found");
}

/// An envelope whose every string field is the word `marmalade`.
const ENVELOPE: &str =
    r#"{"v":1,"senderDevice":"marmalade","recipients":{"marmalade":{"header":"marmalade","ciphertext":"marmalade"}}}"#;

async fn an_e2e_conversation_is_never_searched(app: TestApp) {
    let cast = app.cast().await;
    let (alice, bob) = (&cast.alice, &cast.bob);
    let reply = app
        .create_conversation(
            alice,
            json!({"type": "DM", "workspaceId": cast.workspace, "memberIds": [bob.id], "isEncrypted": true}),
        )
        .await;
    reply.assert_status(201);
    let dm: chat_protocol::Conversation = reply.json();
    app.send(alice, dm.id, ENVELOPE).await;
    let plain = app.group(alice, cast.workspace, "plain", &[bob]).await;
    let visible = app.send(bob, plain.id, "marmalade").await;

    for user in [alice, bob] {
        assert_eq!(ids(&search(&app, user, cast.workspace, "marmalade").await), vec![visible.id]);
        assert!(search(&app, user, cast.workspace, "recipients").await.items.is_empty());
        search_raw(
            &app,
            user,
            &[("workspaceId", &cast.workspace.to_string()), ("q", "marmalade"), ("conversationId", &dm.id.to_string())],
        )
        .await
        .assert_error(404, "not_found");
    }
}

async fn an_edited_message_is_found_by_its_new_words_only(app: TestApp) {
    let cast = app.cast().await;
    let alice = &cast.alice;
    let group = app.group(alice, cast.workspace, "birds", &[&cast.bob]).await;
    let message = app.send(alice, group.id, "an original pelican").await;
    assert_eq!(ids(&search(&app, alice, cast.workspace, "pelican").await), vec![message.id]);

    app.put(&format!("/chat/messages/{}", message.id), alice, json!({"content": "a revised albatross"}))
        .await
        .assert_status(200);

    assert!(search(&app, alice, cast.workspace, "pelican").await.items.is_empty());
    assert!(search(&app, alice, cast.workspace, "original").await.items.is_empty());
    let found = search(&app, &cast.bob, cast.workspace, "ALBAT").await;
    assert_eq!(ids(&found), vec![message.id]);
    assert_eq!(found.items[0].content, "a revised albatross");
    assert!(found.items[0].edited_at.is_some());
}

async fn a_deleted_message_is_not_found(app: TestApp) {
    let cast = app.cast().await;
    let alice = &cast.alice;
    let group = app.group(alice, cast.workspace, "oops", &[&cast.bob]).await;
    let gone = app.send(alice, group.id, "accidental password hunter2").await;
    let kept = app.send(alice, group.id, "the password policy").await;
    assert_eq!(ids(&search(&app, alice, cast.workspace, "password").await), vec![kept.id, gone.id]);

    app.delete(&format!("/chat/messages/{}", gone.id), alice).await.assert_status(204);

    assert_eq!(ids(&search(&app, alice, cast.workspace, "password").await), vec![kept.id]);
    assert!(search(&app, alice, cast.workspace, "hunter2").await.items.is_empty());
}

async fn results_page_newest_first_with_the_cursor(app: TestApp) {
    let cast = app.cast().await;
    let alice = &cast.alice;
    let group = app.group(alice, cast.workspace, "wombats", &[&cast.bob]).await;
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(app.send(alice, group.id, &format!("wombat number {i}")).await.id);
    }
    app.send(alice, group.id, "no marsupial here").await;
    sent.reverse();

    let workspace = cast.workspace.to_string();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let mut params = vec![("workspaceId", workspace.as_str()), ("q", "wombat"), ("limit", "2")];
        if let Some(c) = &cursor {
            params.push(("cursor", c.as_str()));
        }
        let reply = search_raw(&app, alice, &params).await;
        reply.assert_status(200);
        let page: Page<Message> = reply.json();
        sizes.push(page.items.len());
        seen.extend(ids(&page));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, sent, "every match once, newest first");
    // The default page holds them all.
    let all = search(&app, alice, cast.workspace, "wombat").await;
    assert_eq!((ids(&all), all.next_cursor), (sent, None));
}

async fn bad_searches_are_refused(app: TestApp) {
    let cast = app.cast().await;
    let alice = &cast.alice;
    let workspace = cast.workspace.to_string();
    for q in ["", "   ", "?!", "🚀🎉", &"a".repeat(257)] {
        search_raw(&app, alice, &[("workspaceId", &workspace), ("q", q)]).await.assert_error(422, "validation_failed");
    }
    search_raw(&app, alice, &[("workspaceId", &workspace), ("q", "wombat"), ("cursor", "not-a-cursor")])
        .await
        .assert_error(422, "validation_failed");
    search_raw(&app, alice, &[("q", "wombat")]).await.assert_error(422, "validation_failed");
    let path = search_path(&[("workspaceId", &workspace), ("q", "x")]);
    app.call(reqwest::Method::GET, &path, None, None).await.assert_error(401, "unauthorized");
}

async fn the_index_holds_no_plaintext_token(app: TestApp) {
    let cast = app.cast().await;
    let alice = &cast.alice;
    let group = app.group(alice, cast.workspace, "music", &[&cast.bob]).await;
    let word = "xylophonist";
    let message = app.send(alice, group.id, &format!("Our {word} quit")).await;
    // The index is written: the word and its prefixes find the message.
    assert_eq!(ids(&search(&app, alice, cast.workspace, word).await), vec![message.id]);
    assert_eq!(ids(&search(&app, alice, cast.workspace, "xylop").await), vec![message.id]);

    let dump = app.raw_storage_dump().await;
    let text = String::from_utf8_lossy(&dump).to_lowercase();
    // Neither the word nor a prefix of it, as text or as the hex of a bytea column.
    for len in 5..=word.len() {
        let token = &word[..len];
        assert!(!text.contains(token), "{token} stored in the clear");
        let hex: String = token.bytes().map(|b| format!("{b:02x}")).collect();
        assert!(!text.contains(&hex), "{token} stored as bytes");
    }
}
