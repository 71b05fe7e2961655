//! Search: tokenisation, the cursor, the search service's policy, and the indexing hooks of
//! the message service.

use std::sync::{Arc, Mutex};

use super::tokens::{
    MAX_PREFIX_CHARS, MAX_QUERY_CHARS, MAX_TOKENS_PER_MESSAGE, index_tokens, normalize, normalize_unicode,
};
use super::*;
use crate::conversation::ConversationRole::{Admin, Member as Plain};
use crate::conversation::{Conversation, ConversationListing, ConversationType};
use crate::error::{DomainError, RepoError};
use crate::ids::{ConversationId, MessageId, UserId};
use crate::message::{InsertOutcome, NewMessage, SendMessage, StoredMessage};
use crate::tests::{
    Scene, assert_invalid, conversation, fake_tag, member, minutes_ago, now, stored_from_new, stored_message,
};

fn tokens(text: &str) -> Vec<String> {
    index_tokens(text)
}

fn has(tokens: &[String], token: &str) -> bool {
    tokens.iter().any(|t| t == token)
}

// ----------------------------------------------------------------------------- tokens

#[test]
fn words_are_lower_cased_and_prefixes_from_three_characters_are_indexed() {
    assert_eq!(tokens("Hello, WORLD!"), ["hello", "world", "hell", "hel", "worl", "wor"]);
}

#[test]
fn short_words_are_indexed_whole_and_only_whole() {
    assert_eq!(tokens("go to a b2"), ["go", "to", "a", "b2"]);
}

#[test]
fn compatibility_forms_and_decomposed_accents_normalise_alike() {
    // Precomposed é, e + combining acute, and upper-case É all give one word.
    assert_eq!(normalize("Caf\u{e9}"), normalize("cafe\u{301}"));
    assert_eq!(normalize("CAF\u{c9}"), "caf\u{e9}");
    // Full-width letters and the "fi" ligature fold to ASCII.
    assert_eq!(normalize("\u{ff28}\u{ff49}"), "hi");
    assert_eq!(normalize("\u{fb01}le"), "file");
    assert_eq!(tokens("Cafe\u{301}"), tokens("caf\u{e9}"));
}

#[test]
fn ascii_text_normalises_as_unicode_text_does() {
    let every_ascii: String = (0..=127u8).map(char::from).collect();
    assert_eq!(normalize(&every_ascii), normalize_unicode(&every_ascii));
    let sentence = "Meet @ 10:30 -- Room B2, bring the Q3 DECK & snacks!";
    assert_eq!(normalize(sentence), normalize_unicode(sentence));
    assert_eq!(normalize(sentence), "meet @ 10:30 -- room b2, bring the q3 deck & snacks!");
}

#[test]
fn accents_are_significant() {
    assert!(has(&tokens("café"), "café"));
    assert!(!has(&tokens("café"), "cafe"));
    assert!(!SearchQuery::parse("cafe").unwrap().matches("un café noir"));
    assert!(SearchQuery::parse("CAFÉ").unwrap().matches("un café noir"));
}

#[test]
fn han_characters_are_words_of_their_own_and_katakana_runs_are_one_word() {
    let t = tokens("東京タワーへ行く");
    for token in ["東", "京", "タワー", "行"] {
        assert!(has(&t, token), "{token} in {t:?}");
    }
    assert!(SearchQuery::parse("京").unwrap().matches("東京タワーへ行く"));
    assert!(SearchQuery::parse("タワー").unwrap().matches("東京タワーへ行く"));
}

#[test]
fn emoji_and_punctuation_are_not_words() {
    assert_eq!(tokens("ship it 🚀🎉 !!! ..."), ["ship", "it", "shi"]);
    assert_invalid(SearchQuery::parse("🚀🎉"), "q");
    assert_invalid(SearchQuery::parse("  ?! "), "q");
    assert_invalid(SearchQuery::parse(""), "q");
}

#[test]
fn html_escapes_of_sanitised_text_are_indexed_as_the_characters_they_stand_for() {
    assert_eq!(tokens("AT&amp;T &lt;3"), tokens("AT&T <3"));
    assert!(!has(&tokens("a &lt; b &amp;&amp; c"), "amp"));
    assert!(SearchQuery::parse("l'été").unwrap().matches("l&#39;été"));
}

#[test]
fn long_words_are_indexed_by_their_first_prefixes_only() {
    let t = tokens("Internationalization");
    assert_eq!(t.len(), MAX_PREFIX_CHARS - 2);
    assert_eq!(t[0], "internationa");
    assert!(t.iter().all(|token| token.chars().count() <= MAX_PREFIX_CHARS));
}

#[test]
fn a_message_has_at_most_the_token_cap_and_keeps_whole_words_first() {
    let text: Vec<String> = (0..600).map(|i| format!("word{i:04}")).collect();
    let t = tokens(&text.join(" "));
    // Whole words come before any shorter prefix: the first 512 words, and nothing else.
    assert_eq!(t, text[..MAX_TOKENS_PER_MESSAGE]);
    // A shorter message gets its prefixes too.
    let t = tokens(&text[..10].join(" "));
    assert!(t.len() < MAX_TOKENS_PER_MESSAGE && has(&t, "word000") && has(&t, "wor"));
}

#[test]
fn a_query_matches_whole_short_words_and_prefixes_of_longer_ones() {
    let q = SearchQuery::parse("hel WO").unwrap();
    assert_eq!(q.tokens(), ["hel", "wo"]);
    assert!(q.matches("Hello wo"));
    assert!(!q.matches("Hello world"), "a two-letter term matches whole words only");
    assert!(!q.matches("shell wo"), "a prefix matches from the start of a word");
}

#[test]
fn every_query_term_must_match() {
    let q = SearchQuery::parse("deploy friday").unwrap();
    assert!(q.matches("We deploy on Friday"));
    assert!(!q.matches("We deploy on Monday"));
}

#[test]
fn long_query_terms_look_up_their_capped_prefix_and_are_checked_whole() {
    let q = SearchQuery::parse("internationalization").unwrap();
    assert_eq!(q.tokens(), ["internationa"]);
    assert!(q.matches("i18n means internationalization"));
    assert!(!q.matches("internationally known"), "same capped prefix, different word");
}

#[test]
fn repeated_query_words_are_one_term_and_queries_are_bounded() {
    assert_eq!(SearchQuery::parse("Deploy deploy DEPLOY").unwrap().tokens(), ["deploy"]);
    assert_invalid(SearchQuery::parse(&"a".repeat(MAX_QUERY_CHARS + 1)), "q");
    assert_invalid(SearchQuery::parse("a b c d e f g h i"), "q");
    assert!(SearchQuery::parse("a b c d e f g h").is_ok());
}

#[test]
fn a_cursor_round_trips_and_garbage_is_refused() {
    let cursor = SearchCursor { created_at: minutes_ago(3), message_id: MessageId::generate() };
    assert_eq!(SearchCursor::parse(&cursor.encode()).unwrap(), cursor);
    for bad in [
        "",
        "12",
        "x_y",
        "12_abc",
        "12_0123456789abcdef0123456789abcdeg",
        "99999999999999999999_00000000000000000000000000000000",
    ] {
        assert_invalid(SearchCursor::parse(bad), "cursor");
    }
}

#[test]
fn a_tag_prints_as_hex() {
    assert_eq!(format!("{:?}", SearchTag([0xab; TAG_LEN])), format!("SearchTag({})", "ab".repeat(TAG_LEN)));
}

// ----------------------------------------------------------------------------- service

fn listing(c: &Conversation, user: UserId) -> ConversationListing {
    ConversationListing { conversation: c.clone(), member: member(c, user, Plain), unread_count: 0, last_message: None }
}

fn search(scene: &Scene, q: &str) -> Search {
    Search { workspace_id: scene.workspace.id, query: q.to_owned(), conversation_id: None, limit: None, cursor: None }
}

/// Alice's conversations: a group and an E2E DM with bob (both listed for her), and a channel
/// she is not in (not listed).
struct World {
    scene: Scene,
    group: Conversation,
    e2e: Conversation,
    channel: Conversation,
}

fn world() -> World {
    let mut scene = Scene::new();
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let group = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    let mut e2e = conversation(ConversationType::Dm, scene.workspace.id, alice.id);
    e2e.is_encrypted = true;
    scene.put(&e2e, &[(&alice, Admin), (&bob, Admin)]);
    let channel = scene.conversation(ConversationType::Channel, &[(&bob, Admin)]);
    let listings = vec![listing(&group, alice.id), listing(&e2e, alice.id)];
    let (workspace, alice_id) = (scene.workspace.id, alice.id);
    scene
        .mocks
        .conversations
        .expect_list_conversations_of()
        .withf(move |w, u| *w == workspace && *u == alice_id)
        .returning(move |_, _| Ok(listings.clone()));
    World { scene, group, e2e, channel }
}

type Queries = Arc<Mutex<Vec<TagQuery>>>;

/// The index answers every lookup with `messages` (and `next`), recording the lookups.
fn answer(scene: &mut Scene, messages: Vec<StoredMessage>, next: Option<SearchCursor>) -> Queries {
    let queries: Queries = Arc::default();
    let log = queries.clone();
    scene.mocks.search_index.expect_search_messages().returning(move |q| {
        log.lock().unwrap().push(q.clone());
        Ok(TagMatches { messages: messages.clone(), next })
    });
    queries
}

#[tokio::test]
async fn only_the_callers_plain_conversations_are_searched_with_the_querys_tags() {
    let mut w = world();
    let queries = answer(&mut w.scene, vec![], None);
    let (alice, workspace) = (w.scene.alice.id, w.scene.workspace.id);
    let h = w.scene.build();

    let found = h.chat.search.search(alice, search_of(workspace, "Deploy fri")).await.unwrap();

    assert_eq!(found, SearchResults { items: vec![], next_cursor: None });
    let q = queries.lock().unwrap().remove(0);
    assert_eq!(q.workspace_id, workspace);
    assert_eq!(q.conversations, vec![w.group.id], "not the E2E DM, not the channel alice is not in");
    assert_eq!(q.tags, vec![fake_tag(workspace, "deploy"), fake_tag(workspace, "fri")]);
    assert_eq!((q.before, q.limit), (None, DEFAULT_SEARCH_LIMIT));
}

fn search_of(workspace: crate::ids::WorkspaceId, q: &str) -> Search {
    Search { workspace_id: workspace, query: q.to_owned(), conversation_id: None, limit: None, cursor: None }
}

#[tokio::test]
async fn results_are_decrypted_and_candidates_whose_text_does_not_match_are_dropped() {
    let mut w = world();
    let (alice, bob) = (w.scene.alice.id, w.scene.bob.id);
    let hit = stored_message(&w.group, bob, 2, "Deploying on Friday");
    let stale = stored_message(&w.group, bob, 1, "edited: nothing to see");
    let next = SearchCursor { created_at: stale.created_at, message_id: stale.id };
    answer(&mut w.scene, vec![hit.clone(), stale], Some(next));
    let workspace = w.scene.workspace.id;
    let h = w.scene.build();

    let found = h.chat.search.search(alice, search_of(workspace, "deploy FRIDAY")).await.unwrap();

    assert_eq!(found.items.len(), 1);
    assert_eq!((found.items[0].id, found.items[0].content.as_str()), (hit.id, "Deploying on Friday"));
    assert_eq!(found.next_cursor, Some(next.encode()));
}

#[tokio::test]
async fn messages_of_conversations_that_were_not_asked_for_or_deleted_are_never_returned() {
    let mut w = world();
    let (alice, bob) = (w.scene.alice.id, w.scene.bob.id);
    let foreign = stored_message(&w.channel, bob, 1, "deploy");
    let mut deleted = stored_message(&w.group, bob, 1, "deploy");
    deleted.deleted_at = Some(minutes_ago(1));
    answer(&mut w.scene, vec![foreign, deleted], None);
    let workspace = w.scene.workspace.id;
    let found = w.scene.build().chat.search.search(alice, search_of(workspace, "deploy")).await.unwrap();
    assert!(found.items.is_empty(), "{found:?}");
}

#[tokio::test]
async fn a_conversation_filter_narrows_the_search_to_one_of_the_callers_conversations() {
    let mut w = world();
    let queries = answer(&mut w.scene, vec![], None);
    let alice = w.scene.alice.id;
    let req = Search { conversation_id: Some(w.group.id), ..search(&w.scene, "deploy") };
    w.scene.build().chat.search.search(alice, req).await.unwrap();
    assert_eq!(queries.lock().unwrap()[0].conversations, vec![w.group.id]);
}

#[tokio::test]
async fn a_conversation_filter_outside_the_callers_searchable_conversations_is_not_found() {
    for pick in [0, 1, 2] {
        let mut w = world();
        w.scene.mocks.search_index.expect_search_messages().never();
        let target = [w.e2e.id, w.channel.id, ConversationId::generate()][pick];
        let alice = w.scene.alice.id;
        let req = Search { conversation_id: Some(target), ..search(&w.scene, "deploy") };
        let result = w.scene.build().chat.search.search(alice, req).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{pick}: {result:?}");
    }
}

#[tokio::test]
async fn someone_outside_the_workspace_gets_not_found_even_for_a_bad_query() {
    let mut scene = Scene::new();
    scene.mocks.search_index.expect_search_messages().never();
    scene.mocks.conversations.expect_list_conversations_of().never();
    let outsider = scene.outsider.id;
    let req = search(&scene, "");
    let result = scene.build().chat.search.search(outsider, req).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn an_empty_query_or_a_bad_cursor_is_invalid() {
    let mut w = world();
    w.scene.mocks.search_index.expect_search_messages().never();
    let alice = w.scene.alice.id;
    let (empty, bad_cursor) =
        (search(&w.scene, " ... "), Search { cursor: Some("nope".into()), ..search(&w.scene, "deploy") });
    let h = w.scene.build();
    assert_invalid(h.chat.search.search(alice, empty).await, "q");
    assert_invalid(h.chat.search.search(alice, bad_cursor).await, "cursor");
}

#[tokio::test]
async fn the_cursor_is_passed_on_and_the_limit_is_clamped() {
    let mut w = world();
    let queries = answer(&mut w.scene, vec![], None);
    let alice = w.scene.alice.id;
    let cursor = SearchCursor { created_at: now(), message_id: MessageId::generate() };
    let base = search(&w.scene, "deploy");
    let h = w.scene.build();
    for (limit, expected) in [(Some(0), 1), (Some(500), MAX_SEARCH_LIMIT), (Some(7), 7)] {
        let req = Search { limit, cursor: Some(cursor.encode()), ..base.clone() };
        h.chat.search.search(alice, req).await.unwrap();
        let q = queries.lock().unwrap().pop().unwrap();
        assert_eq!((q.limit, q.before), (expected, Some(cursor)));
    }
}

#[tokio::test]
async fn a_caller_with_no_searchable_conversation_gets_nothing_without_a_lookup() {
    let mut scene = Scene::new();
    let carol = scene.carol.id;
    scene.mocks.conversations.expect_list_conversations_of().returning(|_, _| Ok(vec![]));
    scene.mocks.search_index.expect_search_messages().never();
    let req = search(&scene, "deploy");
    let found = scene.build().chat.search.search(carol, req).await.unwrap();
    assert_eq!(found, SearchResults { items: vec![], next_cursor: None });
}

// ----------------------------------------------------------------------------- indexing hooks

fn text(content: &str) -> SendMessage {
    SendMessage { content: content.to_owned(), kind: None, reply_to_id: None, client_msg_id: None, attachments: vec![] }
}

type Entries = Arc<Mutex<Vec<IndexEntry>>>;

fn record_index_writes(scene: &mut Scene) -> Entries {
    let entries: Entries = Arc::default();
    let log = entries.clone();
    scene.mocks.search_index.expect_replace_message_tags().returning(move |e| {
        log.lock().unwrap().push(e.clone());
        Ok(())
    });
    entries
}

type Inserted = Arc<Mutex<Vec<NewMessage>>>;

/// Inserts succeed; the messages handed to the store are recorded.
fn record_inserts(scene: &mut Scene) -> Inserted {
    let inserted: Inserted = Arc::default();
    let log = inserted.clone();
    scene.mocks.messages.expect_insert_message().times(1).returning(move |new| {
        log.lock().unwrap().push(new.clone());
        Ok(InsertOutcome::Inserted(stored_from_new(new, 1)))
    });
    inserted
}

#[tokio::test]
async fn a_sent_message_carries_the_tags_of_its_sanitised_text_into_its_insert() {
    let mut w = world();
    // Written with the message, in its transaction: no separate index write.
    w.scene.mocks.search_index.expect_replace_message_tags().never();
    let inserted = record_inserts(&mut w.scene);
    let (alice, workspace, group) = (w.scene.alice.id, w.scene.workspace.id, w.group.clone());

    let sent = w.scene.build().chat.messages.send(alice, group.id, text("<b>Ship</b> it")).await.unwrap();

    let new = inserted.lock().unwrap().remove(0);
    let expected: Vec<SearchTag> = ["ship", "it", "shi"].iter().map(|t| fake_tag(workspace, t)).collect();
    assert_eq!(
        new.search,
        Some(IndexEntry {
            message_id: sent.message().id,
            workspace_id: workspace,
            conversation_id: group.id,
            created_at: sent.message().created_at,
            tags: expected,
        })
    );
}

#[tokio::test]
async fn a_message_to_an_e2e_conversation_is_never_indexed() {
    let mut w = world();
    w.scene.mocks.search_index.expect_replace_message_tags().never();
    let inserted = record_inserts(&mut w.scene);
    let envelope = r#"{"v":1,"senderDevice":"d","recipients":{"r":{"header":"h","ciphertext":"c"}}}"#;
    let (alice, e2e) = (w.scene.alice.id, w.e2e.id);
    w.scene.build().chat.messages.send(alice, e2e, text(envelope)).await.unwrap();
    assert_eq!(inserted.lock().unwrap()[0].search, None);
}

#[tokio::test]
async fn an_edit_replaces_the_messages_tags() {
    let mut w = world();
    let entries = record_index_writes(&mut w.scene);
    let (alice, workspace) = (w.scene.alice.id, w.scene.workspace.id);
    let original = stored_message(&w.group, alice, 1, "old words");
    w.scene.mocks.with_message(&original);
    let before = original.clone();
    w.scene.mocks.messages.expect_edit_message().times(1).returning(move |_, sealed, at| {
        Ok(Some(StoredMessage { content: Some(sealed.clone()), edited_at: Some(at), ..before.clone() }))
    });

    w.scene.build().chat.messages.edit(alice, original.id, "fresh".to_owned()).await.unwrap();

    let entry = entries.lock().unwrap().remove(0);
    assert_eq!(entry.message_id, original.id);
    assert_eq!(entry.created_at, original.created_at, "the search order follows creation, not edits");
    assert_eq!(entry.tags, ["fresh", "fres", "fre"].map(|t| fake_tag(workspace, t)).to_vec());
}

#[tokio::test]
async fn a_delete_drops_the_messages_tags() {
    let mut w = world();
    let bob = w.scene.bob.id;
    let message = stored_message(&w.group, bob, 1, "oops");
    w.scene.mocks.with_message(&message);
    let gone = StoredMessage { content: None, deleted_at: Some(now()), ..message.clone() };
    w.scene.mocks.messages.expect_delete_message().times(1).returning(move |_, _| Ok(Some(gone.clone())));
    let id = message.id;
    w.scene.mocks.search_index.expect_delete_message_tags().withf(move |m| *m == id).times(1).returning(|_| Ok(()));
    w.scene.build().chat.messages.delete(bob, message.id).await.unwrap();
}

#[tokio::test]
async fn a_failed_index_write_does_not_fail_an_edit() {
    let mut w = world();
    w.scene.mocks.search_index.expect_replace_message_tags().times(1).returning(|_| Err(RepoError::msg("down")));
    let alice = w.scene.alice.id;
    let original = stored_message(&w.group, alice, 1, "old words");
    w.scene.mocks.with_message(&original);
    let before = original.clone();
    w.scene.mocks.messages.expect_edit_message().times(1).returning(move |_, sealed, at| {
        Ok(Some(StoredMessage { content: Some(sealed.clone()), edited_at: Some(at), ..before.clone() }))
    });
    let edited = w.scene.build().chat.messages.edit(alice, original.id, "still edited".to_owned()).await;
    assert_eq!(edited.expect("the edit stands").content, "still edited");
}
