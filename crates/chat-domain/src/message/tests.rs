//! Messages: content rules, sending (sealing, idempotency, threads, who may post), history,
//! edits, deletes and reactions — with the events each use case publishes.

use std::sync::{Arc, Mutex};

use super::*;
use crate::cipher::MockContentSanitizer;
use crate::conversation::ConversationRole::{Admin, Member as Plain, Moderator};
use crate::conversation::{Conversation, ConversationType};
use crate::error::DomainError;
use crate::event::DomainEvent;
use crate::file::{BlobStore, FileName, FileRepository, StoredFile, stored_name_ctx};
use crate::ids::{FileId, WorkspaceId};
use crate::ids::{MessageId, UserId};
use crate::tests::{
    Scene, assert_invalid, conversation, fake_seal, minutes_ago, now, open_text, stored_from_new, stored_message,
};
use crate::user::User;
use uuid::Uuid;

// ----------------------------------------------------------------------------- content

#[test]
fn plain_content_up_to_the_limit_is_accepted() {
    assert_eq!(MessageBody::plain("hello".to_owned(), 5).unwrap().as_str(), "hello");
    assert_eq!(MessageBody::plain("ééééé".to_owned(), 5).unwrap().into_string(), "ééééé");
}

#[test]
fn plain_content_past_the_limit_is_too_large() {
    assert!(matches!(
        MessageBody::plain("hello!".to_owned(), 5),
        Err(DomainError::TooLarge { field: "content", max: 5 })
    ));
}

#[test]
fn blank_plain_content_is_rejected() {
    for blank in ["", "   ", "\n\t "] {
        assert_invalid(MessageBody::plain(blank.to_owned(), 100), "content");
    }
}

const ENVELOPE: &str = r#"{ "v": 1, "senderDevice": "phone-1", "recipients": { "laptop-2": { "header": "aGVhZA==", "ciphertext": "Y2lwaA==" } } }"#;

#[test]
fn a_well_formed_envelope_is_kept_byte_for_byte() {
    assert_eq!(MessageBody::envelope(ENVELOPE.to_owned()).unwrap().as_str(), ENVELOPE);
}

#[test]
fn an_envelope_with_extra_or_missing_fields_is_rejected() {
    for bad in [
        r#"{"v":1,"senderDevice":"d","recipients":{"r":{"header":"h","ciphertext":"c"}},"plaintext":"oops"}"#,
        r#"{"v":1,"senderDevice":"d","recipients":{"r":{"header":"h","ciphertext":"c","key":"k"}}}"#,
        r#"{"v":1,"senderDevice":"d"}"#,
        r#"{"v":1,"senderDevice":"d","recipients":{}}"#,
        r#"{"v":1,"senderDevice":"d","recipients":{"r":{"header":"h"}}}"#,
        r#"{"v":"1","senderDevice":"d","recipients":{"r":{"header":"h","ciphertext":"c"}}}"#,
        r#"{"v":1,"senderDevice":"","recipients":{"r":{"header":"h","ciphertext":"c"}}}"#,
        r#"{"v":1,"senderDevice":"d","recipients":{"r":{"header":1,"ciphertext":"c"}}}"#,
    ] {
        assert_invalid(MessageBody::envelope(bad.to_owned()), "content");
    }
}

#[test]
fn an_envelope_that_is_not_a_json_object_is_rejected() {
    for bad in ["hello", "", "[1,2]", "\"text\"", "{\"v\":1"] {
        assert_invalid(MessageBody::envelope(bad.to_owned()), "content");
    }
}

#[test]
fn an_envelope_over_64_kib_is_too_large() {
    let big = |len: usize| {
        format!(
            r#"{{"v":1,"senderDevice":"d","recipients":{{"r":{{"header":"h","ciphertext":"{}"}}}}}}"#,
            "A".repeat(len)
        )
    };
    let overhead = big(0).len();
    assert!(MessageBody::envelope(big(MessageBody::MAX_ENVELOPE_BYTES - overhead)).is_ok());
    assert!(matches!(
        MessageBody::envelope(big(MessageBody::MAX_ENVELOPE_BYTES - overhead + 1)),
        Err(DomainError::TooLarge { field: "content", max: MessageBody::MAX_ENVELOPE_BYTES })
    ));
}

#[test]
fn message_types_parse_in_any_case() {
    assert_eq!(MessageType::parse("TEXT").unwrap(), MessageType::Text);
    assert_eq!(MessageType::parse("Image").unwrap(), MessageType::Image);
    assert_invalid(MessageType::parse("video"), "type");
}

// ----------------------------------------------------------------------------- send

fn text(content: &str) -> SendMessage {
    SendMessage { content: content.to_owned(), kind: None, reply_to_id: None, client_msg_id: None, attachments: vec![] }
}

type Inserts = Arc<Mutex<Vec<NewMessage>>>;

/// Every insert is recorded and stored at `seq`.
fn expect_insert(scene: &mut Scene, seq: i64) -> Inserts {
    let inserts: Inserts = Arc::default();
    let log = inserts.clone();
    scene.mocks.messages.expect_insert_message().times(1).returning(move |new| {
        log.lock().unwrap().push(new.clone());
        Ok(InsertOutcome::Inserted(stored_from_new(new, seq)))
    });
    inserts
}

/// The one insert finds `original` by its `clientMsgId` (a retry the store caught).
fn insert_finds(scene: &mut Scene, original: &StoredMessage) {
    let found = original.clone();
    scene
        .mocks
        .messages
        .expect_insert_message()
        .times(1)
        .returning(move |_| Ok(InsertOutcome::Duplicate(found.clone())));
}

fn refuse_insert(scene: &mut Scene) {
    scene.mocks.messages.expect_insert_message().never();
}

fn no_earlier_send(scene: &mut Scene) {
    scene.mocks.messages.expect_find_by_client_msg_id().returning(|_, _, _| Ok(None));
}

/// A group of alice (admin) and bob.
fn group(scene: &mut Scene) -> (Conversation, User, User) {
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let c = scene.conversation(ConversationType::Group, &[(&alice, Admin), (&bob, Plain)]);
    (c, alice, bob)
}

fn archived(scene: &mut Scene, kind: ConversationType) -> (Conversation, User) {
    let alice = scene.alice.clone();
    let mut c = conversation(kind, scene.workspace.id, alice.id);
    c.archived_at = Some(minutes_ago(1));
    scene.put(&c, &[(&alice, Admin)]);
    (c, alice)
}

#[tokio::test]
async fn a_message_is_sealed_before_it_is_stored() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    no_earlier_send(&mut scene);
    let inserts = expect_insert(&mut scene, 1);
    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("hello world") };

    let sent = scene.build().chat.messages.send(alice.id, c.id, req).await.unwrap();

    let new = inserts.lock().unwrap().remove(0);
    assert!(
        !new.content.bytes.windows(5).any(|w| w == b"hello" || w == b"world"),
        "the repository must never see plaintext"
    );
    assert_eq!(open_text(&c, new.id, &new.content), "hello world", "sealed for this very row");
    assert_eq!((new.conversation_id, new.sender_id, new.kind), (c.id, alice.id, MessageType::Text));
    assert_eq!((new.client_msg_id.as_deref(), new.created_at), (Some("c-1"), now()));
    let Sent::New(message) = sent else { panic!("expected a new message") };
    assert_eq!((message.id, message.seq, message.content.as_str()), (new.id, 1, "hello world"));
    assert!(!message.is_encrypted);
}

#[tokio::test]
async fn sending_tells_the_conversation_about_the_opened_message() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    expect_insert(&mut scene, 4);
    let h = scene.build();

    let sent = h.chat.messages.send(alice.id, c.id, text("hi")).await.unwrap();

    assert_eq!(sent.message().content, "hi");
    assert_eq!(
        h.events(),
        vec![DomainEvent::MessageCreated { workspace_id: c.workspace_id, message: sent.message().clone() }]
    );
}

#[tokio::test]
async fn a_retry_of_a_committed_send_refused_by_a_check_is_answered_with_the_original() {
    // The conversation was archived after the first attempt committed: the retry cannot be
    // inserted, and is answered with the original rather than the conflict.
    let mut scene = Scene::new();
    let (c, alice) = archived(&mut scene, ConversationType::Group);
    let original =
        StoredMessage { client_msg_id: Some("c-1".to_owned()), ..stored_message(&c, alice.id, 3, "first try") };
    let found = original.clone();
    let (id, sender) = (c.id, alice.id);
    scene
        .mocks
        .messages
        .expect_find_by_client_msg_id()
        .withf(move |conv, s, key| *conv == id && *s == sender && key == "c-1")
        .times(1)
        .returning(move |_, _, _| Ok(Some(found.clone())));
    refuse_insert(&mut scene);
    let h = scene.build();

    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("second try") };
    let sent = h.chat.messages.send(alice.id, c.id, req).await.unwrap();

    let Sent::Replayed(message) = sent else { panic!("expected a replay") };
    assert_eq!((message.id, message.seq, message.content.as_str()), (original.id, 3, "first try"));
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn a_refused_send_with_an_unknown_client_msg_id_keeps_its_error() {
    let mut scene = Scene::new();
    let (c, alice) = archived(&mut scene, ConversationType::Group);
    no_earlier_send(&mut scene);
    refuse_insert(&mut scene);
    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("hello?") };
    let result = scene.build().chat.messages.send(alice.id, c.id, req).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_first_attempt_goes_straight_to_the_insert_without_a_lookup() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    scene.mocks.messages.expect_find_by_client_msg_id().never();
    expect_insert(&mut scene, 1);
    let h = scene.build();
    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("hello") };
    let sent = h.chat.messages.send(alice.id, c.id, req).await.unwrap();
    assert!(matches!(sent, Sent::New(_)), "{sent:?}");
    assert_eq!(h.events().len(), 1);
}

#[tokio::test]
async fn a_duplicate_found_by_the_store_is_a_replay() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let original = stored_message(&c, alice.id, 2, "raced");
    insert_finds(&mut scene, &original);
    let h = scene.build();

    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("raced") };
    let sent = h.chat.messages.send(alice.id, c.id, req).await.unwrap();

    assert!(matches!(&sent, Sent::Replayed(m) if m.id == original.id), "{sent:?}");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn a_conversation_archived_during_the_send_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    scene.mocks.messages.expect_insert_message().times(1).returning(|_| Ok(InsertOutcome::Archived));
    let h = scene.build();
    let result = h.chat.messages.send(alice.id, c.id, text("too late")).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
    assert!(h.events().is_empty());
}

/// A world in which `sender`'s membership of `c` can be taken away mid-test, as another node
/// would: `find_standing` answers from it and counts its reads; the store's insert checks it.
struct Removable {
    member: Arc<std::sync::atomic::AtomicBool>,
    reads: Arc<std::sync::atomic::AtomicUsize>,
    inserts: Arc<std::sync::atomic::AtomicUsize>,
}

impl Removable {
    fn new(scene: &mut Scene, c: &Conversation, sender: &User) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let world = Self { member: Arc::new(AtomicBool::new(true)), reads: Arc::default(), inserts: Arc::default() };
        let (member, reads, conversation) = (world.member.clone(), world.reads.clone(), c.clone());
        let membership = crate::tests::member(c, sender.id, Plain);
        scene.mocks.conversations.expect_find_standing().returning(move |_, _| {
            reads.fetch_add(1, SeqCst);
            Ok(Some(crate::conversation::Standing {
                conversation: conversation.clone(),
                workspace_role: Some(crate::workspace::WorkspaceRole::Member),
                member: member.load(SeqCst).then(|| membership.clone()),
            }))
        });
        let (member, inserts) = (world.member.clone(), world.inserts.clone());
        scene.mocks.messages.expect_insert_message().returning(move |new| {
            let seq = i64::try_from(inserts.fetch_add(1, SeqCst)).unwrap() + 1;
            Ok(if member.load(SeqCst) {
                InsertOutcome::Inserted(stored_from_new(new, seq))
            } else {
                InsertOutcome::NotMember
            })
        });
        world
    }

    fn remove(&self) {
        self.member.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.reads.load(SeqCst), self.inserts.load(SeqCst))
    }
}

#[tokio::test]
async fn a_members_later_sends_read_no_standing() {
    let mut scene = Scene::new();
    let (c, _, bob) = group(&mut scene);
    let world = Removable::new(&mut scene, &c, &bob);
    let h = scene.build();
    for i in 1..=3 {
        let sent = h.chat.messages.send(bob.id, c.id, text("hello")).await.unwrap();
        assert_eq!(sent.message().seq, i);
    }
    assert_eq!(world.counts(), (1, 3), "one standing read, three inserts");
}

#[tokio::test]
async fn a_send_on_a_remembered_view_after_removal_is_refused_as_a_fresh_view_would_be() {
    // Removed from a GROUP: outside it, it does not exist for them; from a CHANNEL: they may
    // still read it, but not post.
    for (kind, refused) in [(ConversationType::Group, "NotFound"), (ConversationType::Channel, "Forbidden")] {
        let mut scene = Scene::new();
        let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
        let c = scene.conversation(kind, &[(&alice, Admin), (&bob, Plain)]);
        let world = Removable::new(&mut scene, &c, &bob);
        let h = scene.build();
        h.chat.messages.send(bob.id, c.id, text("before")).await.unwrap();
        world.remove();

        let result = h.chat.messages.send(bob.id, c.id, text("after")).await;
        let got = match &result {
            Err(DomainError::NotFound) => "NotFound",
            Err(DomainError::Forbidden(_)) => "Forbidden",
            _ => "something else",
        };
        assert_eq!(got, refused, "{kind:?}: {result:?}");
        assert_eq!(world.counts(), (2, 2), "{kind:?}: the store refused it, a fresh read answered");
        // The view is forgotten: the next send reads the standing and goes no further.
        assert!(h.chat.messages.send(bob.id, c.id, text("again")).await.is_err());
        assert_eq!(world.counts(), (3, 2), "{kind:?}");
        assert_eq!(h.events().len(), 1, "{kind:?}: only the first message was published");
    }
}

#[tokio::test]
async fn a_retry_on_a_remembered_view_after_removal_is_not_answered_with_the_original() {
    let mut scene = Scene::new();
    let (c, _, bob) = group(&mut scene);
    let world = Removable::new(&mut scene, &c, &bob);
    let original = stored_message(&c, bob.id, 1, "before");
    let found = original.clone();
    scene.mocks.messages.expect_find_by_client_msg_id().returning(move |_, _, _| Ok(Some(found.clone())));
    let h = scene.build();
    let keyed = || SendMessage { client_msg_id: Some("k".to_owned()), ..text("before") };
    h.chat.messages.send(bob.id, c.id, keyed()).await.unwrap();
    world.remove();

    // Refused before the insert (a client may not send a system message), so the original is
    // looked up: only a member now gets it.
    let retry = SendMessage { kind: Some(MessageType::System), ..keyed() };
    assert_invalid(h.chat.messages.send(bob.id, c.id, retry).await, "type");
    assert_eq!(world.counts(), (2, 1), "a fresh read, no insert");
}

#[tokio::test]
async fn posting_to_an_archived_conversation_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice) = archived(&mut scene, ConversationType::Group);
    refuse_insert(&mut scene);
    let result = scene.build().chat.messages.send(alice.id, c.id, text("hello?")).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_sender_over_their_message_budget_is_rate_limited_and_nothing_is_stored() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    refuse_insert(&mut scene);
    let subject = alice.id.to_string();
    scene
        .mocks
        .limiter
        .expect_acquire()
        .withf(move |kind, who, per_minute| {
            *kind == crate::realtime::RateKind::Messages && who == subject && *per_minute == 60
        })
        .times(1)
        .returning(|_, _, _| Ok(Err(std::time::Duration::from_secs(2))));
    let h = scene.build();
    let result = h.chat.messages.send(alice.id, c.id, text("one too many")).await;
    assert!(
        matches!(result, Err(DomainError::RateLimited { retry_after }) if retry_after == std::time::Duration::from_secs(2)),
        "{result:?}"
    );
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn a_limiter_outage_lets_messages_through() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    scene.mocks.limiter.expect_acquire().returning(|_, _, _| Err(crate::error::RepoError::msg("redis down")));
    scene.mocks.messages.expect_find_by_client_msg_id().returning(|_, _, _| Ok(None));
    scene
        .mocks
        .messages
        .expect_insert_message()
        .times(1)
        .returning(|new| Ok(InsertOutcome::Inserted(stored_from_new(new, 1))));
    let sent = scene.build().chat.messages.send(alice.id, c.id, text("still works")).await.unwrap();
    assert_eq!(sent.message().seq, 1);
}

#[tokio::test]
async fn a_client_cannot_send_a_system_message() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    refuse_insert(&mut scene);
    let req = SendMessage { kind: Some(MessageType::System), ..text("alice joined") };
    assert_invalid(scene.build().chat.messages.send(alice.id, c.id, req).await, "type");
}

#[tokio::test]
async fn a_malformed_client_msg_id_is_rejected() {
    for key in [String::new(), "k".repeat(MAX_CLIENT_MSG_ID_LEN + 1), "a\u{0000}b".to_owned()] {
        let mut scene = Scene::new();
        let (c, alice, _) = group(&mut scene);
        refuse_insert(&mut scene);
        let req = SendMessage { client_msg_id: Some(key), ..text("hi") };
        assert_invalid(scene.build().chat.messages.send(alice.id, c.id, req).await, "clientMsgId");
    }
}

#[tokio::test]
async fn content_over_the_limit_is_too_large_and_never_sanitised() {
    let mut scene = Scene::new();
    scene.mocks.limits.max_message_chars = 10;
    let mut sanitizer = MockContentSanitizer::new();
    sanitizer.expect_sanitize().never();
    scene.mocks.sanitizer = Some(sanitizer);
    let (c, alice, _) = group(&mut scene);
    refuse_insert(&mut scene);

    let result = scene.build().chat.messages.send(alice.id, c.id, text("eleven char")).await;

    assert!(matches!(result, Err(DomainError::TooLarge { field: "content", max: 10 })), "{result:?}");
}

#[tokio::test]
async fn the_sanitised_text_is_what_is_stored() {
    let mut scene = Scene::new();
    let mut sanitizer = MockContentSanitizer::new();
    sanitizer
        .expect_sanitize()
        .withf(|raw| raw == "<script>x</script><b>bold</b> move")
        .times(1)
        .returning(|_| "bold move".to_owned());
    scene.mocks.sanitizer = Some(sanitizer);
    let (c, alice, _) = group(&mut scene);
    let inserts = expect_insert(&mut scene, 1);

    let sent =
        scene.build().chat.messages.send(alice.id, c.id, text("<script>x</script><b>bold</b> move")).await.unwrap();

    let new = inserts.lock().unwrap().remove(0);
    assert_eq!(open_text(&c, new.id, &new.content), "bold move");
    assert_eq!(sent.message().content, "bold move");
}

#[tokio::test]
async fn content_that_sanitises_to_nothing_is_rejected() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    refuse_insert(&mut scene);
    assert_invalid(scene.build().chat.messages.send(alice.id, c.id, text("<img src=x>")).await, "content");
}

/// An encrypted DM of alice and bob.
fn encrypted_dm(scene: &mut Scene) -> (Conversation, User) {
    let (alice, bob) = (scene.alice.clone(), scene.bob.clone());
    let mut c = conversation(ConversationType::Dm, scene.workspace.id, alice.id);
    c.is_encrypted = true;
    scene.put(&c, &[(&alice, Admin), (&bob, Admin)]);
    (c, alice)
}

#[tokio::test]
async fn in_an_encrypted_conversation_the_envelope_is_stored_as_sent_and_never_sanitised() {
    let mut scene = Scene::new();
    let mut sanitizer = MockContentSanitizer::new();
    sanitizer.expect_sanitize().never();
    scene.mocks.sanitizer = Some(sanitizer);
    let (c, alice) = encrypted_dm(&mut scene);
    let inserts = expect_insert(&mut scene, 1);

    let sent = scene.build().chat.messages.send(alice.id, c.id, text(ENVELOPE)).await.unwrap();

    let new = inserts.lock().unwrap().remove(0);
    assert_eq!(open_text(&c, new.id, &new.content), ENVELOPE);
    assert_eq!(sent.message().content, ENVELOPE);
    assert!(sent.message().is_encrypted);
}

#[tokio::test]
async fn in_an_encrypted_conversation_plain_text_is_rejected() {
    let mut scene = Scene::new();
    let (c, alice) = encrypted_dm(&mut scene);
    refuse_insert(&mut scene);
    assert_invalid(scene.build().chat.messages.send(alice.id, c.id, text("hello in the clear")).await, "content");
}

#[tokio::test]
async fn in_an_encrypted_conversation_only_text_and_file_messages_are_sent() {
    let mut scene = Scene::new();
    let (c, alice) = encrypted_dm(&mut scene);
    refuse_insert(&mut scene);
    let req = SendMessage { kind: Some(MessageType::Image), ..text(ENVELOPE) };
    assert_invalid(scene.build().chat.messages.send(alice.id, c.id, req).await, "type");
}

#[tokio::test]
async fn a_reply_to_a_reply_attaches_to_the_root() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let root = stored_message(&c, bob.id, 1, "root");
    let reply = StoredMessage { reply_to_id: Some(root.id), ..stored_message(&c, alice.id, 2, "reply") };
    scene.mocks.with_message(&root);
    scene.mocks.with_message(&reply);
    let inserts = expect_insert(&mut scene, 3);

    let req = SendMessage { reply_to_id: Some(reply.id), ..text("reply to the reply") };
    let sent = scene.build().chat.messages.send(alice.id, c.id, req).await.unwrap();

    assert_eq!(inserts.lock().unwrap()[0].reply_to_id, Some(root.id));
    assert_eq!(sent.message().reply_to_id, Some(root.id));
}

#[tokio::test]
async fn a_reply_to_a_root_attaches_to_it() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let root = stored_message(&c, bob.id, 1, "root");
    scene.mocks.with_message(&root);
    let inserts = expect_insert(&mut scene, 2);
    let req = SendMessage { reply_to_id: Some(root.id), ..text("reply") };
    scene.build().chat.messages.send(alice.id, c.id, req).await.unwrap();
    assert_eq!(inserts.lock().unwrap()[0].reply_to_id, Some(root.id));
}

#[tokio::test]
async fn a_reply_to_a_message_of_another_conversation_is_not_found() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let elsewhere = conversation(ConversationType::Group, scene.workspace.id, alice.id);
    let foreign = stored_message(&elsewhere, alice.id, 1, "elsewhere");
    scene.mocks.with_message(&foreign);
    refuse_insert(&mut scene);
    let service = scene.build().chat.messages;

    for parent in [foreign.id, MessageId::generate()] {
        let req = SendMessage { reply_to_id: Some(parent), ..text("reply") };
        let result = service.send(alice.id, c.id, req).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }
}

#[tokio::test]
async fn posting_to_a_channel_without_joining_is_forbidden() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    refuse_insert(&mut scene);
    scene.mocks.conversations.expect_add_member().never();
    let result = scene.build().chat.messages.send(carol, c.id, text("hi all")).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn a_non_member_cannot_post_to_a_group_or_learn_that_it_exists() {
    let mut scene = Scene::new();
    let (c, _, _) = group(&mut scene);
    let carol = scene.carol.id;
    refuse_insert(&mut scene);
    let result = scene.build().chat.messages.send(carol, c.id, text("hi")).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

fn expect_document_join(scene: &mut Scene, c: &Conversation, user: UserId, outcome: Result<(), ()>) {
    let id = c.id;
    scene
        .mocks
        .conversations
        .expect_add_member()
        .withf(move |m, _| m.conversation_id == id && m.user_id == user && m.role == Plain)
        .times(1)
        .returning(move |m, _| match outcome {
            Ok(()) => Ok(m.clone()),
            Err(()) => Err(crate::conversation::AddMemberError::Duplicate),
        });
}

#[tokio::test]
async fn posting_to_a_document_chat_joins_it_then_sends() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Document, &[(&alice, Admin)]);
    expect_document_join(&mut scene, &c, carol, Ok(()));
    expect_insert(&mut scene, 1);
    let h = scene.build();

    let sent = h.chat.messages.send(carol, c.id, text("first comment")).await.unwrap();

    assert_eq!(
        h.events(),
        vec![
            DomainEvent::MemberJoined { workspace_id: c.workspace_id, conversation_id: c.id, user_id: carol },
            DomainEvent::ConversationCreated { conversation: c.clone(), member_ids: vec![carol] },
            DomainEvent::MessageCreated { workspace_id: c.workspace_id, message: sent.message().clone() },
        ]
    );
}

#[tokio::test]
async fn posting_to_a_document_chat_someone_else_just_joined_for_you_still_sends() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Document, &[(&alice, Admin)]);
    expect_document_join(&mut scene, &c, carol, Err(()));
    expect_insert(&mut scene, 1);
    let h = scene.build();

    h.chat.messages.send(carol, c.id, text("raced")).await.unwrap();

    assert!(matches!(h.events().as_slice(), [DomainEvent::MessageCreated { .. }]));
}

// ----------------------------------------------------------------------------- history

#[tokio::test]
async fn a_page_limit_is_clamped_to_1_through_100() {
    for (asked, used) in [(0, 1), (1, 1), (50, 50), (100, 100), (101, 100), (u32::MAX, 100)] {
        let mut scene = Scene::new();
        let (c, alice, _) = group(&mut scene);
        let window = MessageWindow::Latest { before: Some(9), offset: 2 };
        let id = c.id;
        scene
            .mocks
            .messages
            .expect_list_messages()
            .withf(move |conv, page| *conv == id && *page == MessagePage { window, limit: used })
            .times(1)
            .returning(|_, _| Ok(vec![]));
        scene.build().chat.messages.list(alice.id, c.id, window, asked).await.unwrap();
    }
}

#[tokio::test]
async fn a_page_of_history_comes_back_opened() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let page = vec![stored_message(&c, bob.id, 2, "two"), stored_message(&c, alice.id, 1, "one")];
    scene.mocks.messages.expect_list_messages().returning(move |_, _| Ok(page.clone()));

    let listed = scene.build().chat.messages.list(alice.id, c.id, MessageWindow::After { after: 0 }, 50).await.unwrap();

    let contents: Vec<&str> = listed.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["two", "one"]);
}

#[tokio::test]
async fn a_non_member_cannot_read_a_groups_history() {
    let mut scene = Scene::new();
    let (c, _, _) = group(&mut scene);
    let carol = scene.carol.id;
    scene.mocks.messages.expect_list_messages().never();
    let result = scene.build().chat.messages.list(carol, c.id, MessageWindow::After { after: 0 }, 50).await;
    assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
}

#[tokio::test]
async fn a_thread_is_its_root_then_its_replies() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let root = stored_message(&c, bob.id, 1, "root");
    let reply = StoredMessage { reply_to_id: Some(root.id), ..stored_message(&c, alice.id, 2, "reply") };
    scene.mocks.with_message(&root);
    let thread = vec![root.clone(), reply];
    let root_id = root.id;
    scene
        .mocks
        .messages
        .expect_list_thread()
        .withf(move |r, after, limit| *r == root_id && *after == 0 && *limit == 100)
        .returning(move |_, _, _| Ok(thread.clone()));

    let listed = scene.build().chat.messages.thread(alice.id, c.id, root.id, 0, 1000).await.unwrap();

    let contents: Vec<&str> = listed.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["root", "reply"]);
}

#[tokio::test]
async fn a_thread_of_a_reply_or_of_another_conversation_is_not_found() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let root = stored_message(&c, alice.id, 1, "root");
    let reply = StoredMessage { reply_to_id: Some(root.id), ..stored_message(&c, alice.id, 2, "reply") };
    let foreign = stored_message(&conversation(ConversationType::Group, c.workspace_id, alice.id), alice.id, 1, "x");
    for m in [&root, &reply, &foreign] {
        scene.mocks.with_message(m);
    }
    scene.mocks.messages.expect_list_thread().never();
    let service = scene.build().chat.messages;
    for id in [reply.id, foreign.id] {
        let result = service.thread(alice.id, c.id, id, 0, 50).await;
        assert!(matches!(result, Err(DomainError::NotFound)), "{result:?}");
    }
}

// ----------------------------------------------------------------------------- edit

#[tokio::test]
async fn an_author_edits_their_message_and_the_conversation_hears_of_it() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let original = stored_message(&c, alice.id, 1, "helo");
    scene.mocks.with_message(&original);
    let (conv, id) = (c.clone(), original.id);
    let before = original.clone();
    scene
        .mocks
        .messages
        .expect_edit_message()
        .withf(move |i, sealed, at| *i == id && open_text(&conv, id, sealed) == "hello" && *at == now())
        .times(1)
        .returning(move |_, sealed, at| {
            Ok(Some(StoredMessage { content: Some(sealed.clone()), edited_at: Some(at), ..before.clone() }))
        });
    let h = scene.build();

    let edited = h.chat.messages.edit(alice.id, original.id, "<i>hello</i>".to_owned()).await.unwrap();

    assert_eq!((edited.content.as_str(), edited.edited_at), ("hello", Some(now())));
    assert_eq!(h.events(), vec![DomainEvent::MessageEdited { workspace_id: c.workspace_id, message: edited }]);
}

#[tokio::test]
async fn nobody_edits_someone_elses_message_not_even_an_admin() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let bobs = stored_message(&c, bob.id, 1, "mine");
    scene.mocks.with_message(&bobs);
    scene.mocks.messages.expect_edit_message().never();
    let result = scene.build().chat.messages.edit(alice.id, bobs.id, "yours now".to_owned()).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn editing_a_deleted_message_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let deleted =
        StoredMessage { content: None, deleted_at: Some(minutes_ago(1)), ..stored_message(&c, alice.id, 1, "") };
    scene.mocks.with_message(&deleted);
    scene.mocks.messages.expect_edit_message().never();
    let result = scene.build().chat.messages.edit(alice.id, deleted.id, "back".to_owned()).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_message_deleted_while_being_edited_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let original = stored_message(&c, alice.id, 1, "text");
    scene.mocks.with_message(&original);
    scene.mocks.messages.expect_edit_message().times(1).returning(|_, _, _| Ok(None));
    let h = scene.build();
    let result = h.chat.messages.edit(alice.id, original.id, "new text".to_owned()).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn an_edit_obeys_the_content_rules_of_a_send() {
    let mut scene = Scene::new();
    scene.mocks.limits.max_message_chars = 5;
    let (c, alice, _) = group(&mut scene);
    let original = stored_message(&c, alice.id, 1, "text");
    scene.mocks.with_message(&original);
    scene.mocks.messages.expect_edit_message().never();
    let service = scene.build().chat.messages;
    let too_long = service.edit(alice.id, original.id, "too long".to_owned()).await;
    assert!(matches!(too_long, Err(DomainError::TooLarge { .. })), "{too_long:?}");
    assert_invalid(service.edit(alice.id, original.id, "<br>".to_owned()).await, "content");
}

#[tokio::test]
async fn editing_in_an_archived_conversation_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice) = archived(&mut scene, ConversationType::Group);
    let original = stored_message(&c, alice.id, 1, "text");
    scene.mocks.with_message(&original);
    scene.mocks.messages.expect_edit_message().never();
    let result = scene.build().chat.messages.edit(alice.id, original.id, "new".to_owned()).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

// ----------------------------------------------------------------------------- delete

fn expect_delete(scene: &mut Scene, message: &StoredMessage) {
    let (id, before) = (message.id, message.clone());
    scene
        .mocks
        .messages
        .expect_delete_message()
        .withf(move |i, at| *i == id && *at == now())
        .times(1)
        .returning(move |_, at| Ok(Some(StoredMessage { content: None, deleted_at: Some(at), ..before.clone() })));
}

fn deleted_event(c: &Conversation, m: &StoredMessage) -> DomainEvent {
    DomainEvent::MessageDeleted { workspace_id: c.workspace_id, conversation_id: c.id, message_id: m.id, seq: m.seq }
}

#[tokio::test]
async fn an_author_deletes_their_message_and_the_conversation_hears_of_it() {
    let mut scene = Scene::new();
    let (c, _, bob) = group(&mut scene);
    let message = stored_message(&c, bob.id, 4, "oops");
    scene.mocks.with_message(&message);
    expect_delete(&mut scene, &message);
    let h = scene.build();

    h.chat.messages.delete(bob.id, message.id).await.unwrap();

    assert_eq!(h.events(), vec![deleted_event(&c, &message)]);
}

#[tokio::test]
async fn a_moderator_or_admin_deletes_anyones_message() {
    for role in [Moderator, Admin] {
        let mut scene = Scene::new();
        let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
        let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, Plain), (&carol, role)]);
        let message = stored_message(&c, bob.id, 1, "spam");
        scene.mocks.with_message(&message);
        expect_delete(&mut scene, &message);
        let h = scene.build();

        h.chat.messages.delete(carol.id, message.id).await.unwrap();

        assert_eq!(h.events(), vec![deleted_event(&c, &message)], "{role:?}");
    }
}

#[tokio::test]
async fn a_plain_member_cannot_delete_someone_elses_message() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let message = stored_message(&c, alice.id, 1, "keep");
    scene.mocks.with_message(&message);
    scene.mocks.messages.expect_delete_message().never();
    let result = scene.build().chat.messages.delete(bob.id, message.id).await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn deleting_a_deleted_message_does_nothing_and_tells_nobody() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let deleted =
        StoredMessage { content: None, deleted_at: Some(minutes_ago(3)), ..stored_message(&c, alice.id, 1, "") };
    scene.mocks.with_message(&deleted);
    scene.mocks.messages.expect_delete_message().never();
    let h = scene.build();

    h.chat.messages.delete(alice.id, deleted.id).await.unwrap();

    assert!(h.events().is_empty());
}

#[tokio::test]
async fn deleting_in_an_archived_conversation_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice) = archived(&mut scene, ConversationType::Group);
    let message = stored_message(&c, alice.id, 1, "text");
    scene.mocks.with_message(&message);
    scene.mocks.messages.expect_delete_message().never();
    let result = scene.build().chat.messages.delete(alice.id, message.id).await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_message_the_caller_cannot_see_is_not_found() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let message = stored_message(&c, alice.id, 1, "private");
    scene.mocks.with_message(&message);
    scene.mocks.messages.expect_delete_message().never();
    scene.mocks.messages.expect_edit_message().never();
    scene.mocks.messages.expect_toggle_reaction().never();
    let (carol, outsider) = (scene.carol.id, scene.outsider.id);
    let service = scene.build().chat.messages;
    for actor in [carol, outsider] {
        assert!(matches!(service.delete(actor, message.id).await, Err(DomainError::NotFound)));
        assert!(matches!(service.edit(actor, message.id, "x".to_owned()).await, Err(DomainError::NotFound)));
        assert!(matches!(service.react(actor, message.id, "👍").await, Err(DomainError::NotFound)));
    }
    assert!(matches!(service.delete(alice.id, MessageId::generate()).await, Err(DomainError::NotFound)));
}

// ----------------------------------------------------------------------------- reactions

fn expect_toggle(scene: &mut Scene, message: &StoredMessage, user: UserId) {
    let (id, before) = (message.id, message.clone());
    scene
        .mocks
        .messages
        .expect_toggle_reaction()
        .withf(move |i, u, emoji, at| *i == id && *u == user && emoji == "👍" && *at == now())
        .times(1)
        .returning(move |_, u, emoji, _| {
            Ok(Some(StoredMessage {
                reactions: vec![Reaction { emoji: emoji.to_owned(), user_ids: vec![u] }],
                ..before.clone()
            }))
        });
}

#[tokio::test]
async fn a_reaction_toggles_through_the_store_and_the_conversation_hears_of_it() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let message = stored_message(&c, alice.id, 1, "ship it");
    scene.mocks.with_message(&message);
    expect_toggle(&mut scene, &message, bob.id);
    let h = scene.build();

    let after = h.chat.messages.react(bob.id, message.id, "👍").await.unwrap();

    assert_eq!(after.reactions, vec![Reaction { emoji: "👍".to_owned(), user_ids: vec![bob.id] }]);
    assert_eq!(after.content, "ship it");
    assert_eq!(h.events(), vec![DomainEvent::ReactionToggled { workspace_id: c.workspace_id, message: after }]);
}

#[tokio::test]
async fn an_invalid_emoji_is_rejected_before_anything_is_looked_up() {
    let mut scene = Scene::new();
    scene.mocks.messages.expect_find_message().never();
    scene.mocks.messages.expect_toggle_reaction().never();
    let alice = scene.alice.id;
    assert_invalid(scene.build().chat.messages.react(alice, MessageId::generate(), "<script>").await, "emoji");
}

#[tokio::test]
async fn reacting_to_a_deleted_message_is_a_conflict() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let deleted =
        StoredMessage { content: None, deleted_at: Some(minutes_ago(1)), ..stored_message(&c, alice.id, 1, "") };
    scene.mocks.with_message(&deleted);
    scene.mocks.messages.expect_toggle_reaction().never();
    let result = scene.build().chat.messages.react(bob.id, deleted.id, "👍").await;
    assert!(matches!(result, Err(DomainError::Conflict(_))), "{result:?}");
}

#[tokio::test]
async fn a_reader_who_has_not_joined_a_channel_cannot_react() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin)]);
    let message = stored_message(&c, alice.id, 1, "announcement");
    scene.mocks.with_message(&message);
    scene.mocks.messages.expect_toggle_reaction().never();
    let result = scene.build().chat.messages.react(carol, message.id, "👍").await;
    assert!(matches!(result, Err(DomainError::Forbidden(_))), "{result:?}");
}

#[tokio::test]
async fn reacting_in_a_document_chat_joins_it() {
    let mut scene = Scene::new();
    let (alice, carol) = (scene.alice.clone(), scene.carol.id);
    let c = scene.conversation(ConversationType::Document, &[(&alice, Admin)]);
    let message = stored_message(&c, alice.id, 1, "draft v2");
    scene.mocks.with_message(&message);
    expect_document_join(&mut scene, &c, carol, Ok(()));
    expect_toggle(&mut scene, &message, carol);
    let h = scene.build();

    h.chat.messages.react(carol, message.id, "👍").await.unwrap();

    let events = h.events();
    assert!(
        matches!(
            events.as_slice(),
            [DomainEvent::MemberJoined { user_id, .. }, DomainEvent::ConversationCreated { .. }, DomainEvent::ReactionToggled { .. }]
                if *user_id == carol
        ),
        "{events:?}"
    );
}

#[tokio::test]
async fn content_sealed_for_another_row_does_not_open() {
    // A ciphertext copied into another conversation is useless: opening it fails loudly.
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let other = conversation(ConversationType::Group, c.workspace_id, alice.id);
    let moved = StoredMessage { conversation_id: c.id, ..stored_message(&other, alice.id, 1, "secret") };
    scene.mocks.messages.expect_list_messages().returning(move |_, _| Ok(vec![moved.clone()]));
    let result = scene.build().chat.messages.list(alice.id, c.id, MessageWindow::After { after: 0 }, 10).await;
    assert!(matches!(result, Err(DomainError::Internal(_))), "{result:?}");
}

// ----------------------------------------------------------------------------- audit log

#[tokio::test]
async fn a_moderators_delete_records_exactly_one_audit_entry() {
    let mut scene = Scene::new();
    let (alice, bob, carol) = (scene.alice.clone(), scene.bob.clone(), scene.carol.clone());
    let c = scene.conversation(ConversationType::Channel, &[(&alice, Admin), (&bob, Plain), (&carol, Moderator)]);
    let message = stored_message(&c, bob.id, 1, "spam");
    scene.mocks.with_message(&message);
    expect_delete(&mut scene, &message);
    let h = scene.build();

    h.chat.messages.delete(carol.id, message.id).await.unwrap();

    let entries = h.audit();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    assert_eq!(entry.action, crate::audit::AuditAction::MessageDeletedByModerator);
    assert_eq!((entry.workspace_id, entry.actor), (Some(c.workspace_id), Some(carol.id)));
    assert_eq!(entry.target, Some(format!("conversation:{} message:{} user:{}", c.id, message.id, bob.id)));
    assert!(!entry.target.as_deref().unwrap_or_default().contains("spam"), "never the content");
}

#[tokio::test]
async fn an_author_deleting_their_own_message_is_not_audited() {
    let mut scene = Scene::new();
    let (c, _, bob) = group(&mut scene);
    let message = stored_message(&c, bob.id, 4, "oops");
    scene.mocks.with_message(&message);
    expect_delete(&mut scene, &message);
    let h = scene.build();

    h.chat.messages.delete(bob.id, message.id).await.unwrap();

    assert!(h.audit().is_empty());
}

// ----------------------------------------------------------------------------- attachments

/// A file row of `c` uploaded by `uploader`, its name sealed as the files service seals it.
fn file_row(c: &Conversation, uploader: UserId, name: &str, content_type: &str, size: u64) -> StoredFile {
    let id = FileId::generate();
    StoredFile {
        id,
        workspace_id: c.workspace_id,
        conversation_id: c.id,
        uploader,
        name: fake_seal(&stored_name_ctx(c.workspace_id, c.id, id), name.as_bytes()),
        content_type: content_type.to_owned(),
        size,
        storage_key: Uuid::new_v4().simple().to_string(),
        wrapped_file_key: b"wrapped".to_vec(),
        key_version: 1,
        created_at: minutes_ago(5),
    }
}

/// Stores each insert as a store would: at `seq`, with the rows of the files it links (from
/// `files`, in the order the message lists them).
fn expect_insert_with_files(scene: &mut Scene, seq: i64, files: Vec<StoredFile>) -> Inserts {
    let inserts: Inserts = Arc::default();
    let log = inserts.clone();
    scene.mocks.messages.expect_insert_message().times(1).returning(move |new| {
        log.lock().unwrap().push(new.clone());
        let linked = new.attachments.iter().filter_map(|id| files.iter().find(|f| f.id == *id).cloned()).collect();
        Ok(InsertOutcome::Inserted(StoredMessage { attachments: linked, ..stored_from_new(new, seq) }))
    });
    inserts
}

fn with_files(content: &str, files: &[&StoredFile]) -> SendMessage {
    SendMessage { attachments: files.iter().map(|f| f.id).collect(), ..text(content) }
}

async fn store_files(h: &crate::tests::Harness, files: &[&StoredFile]) {
    for file in files {
        h.file_rows.insert_file(file).await.unwrap();
    }
}

#[tokio::test]
async fn attachments_are_linked_in_order_and_come_back_with_their_names_opened() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let (pdf, png) = (
        file_row(&c, alice.id, "Q3 report.pdf", "application/pdf", 2048),
        file_row(&c, alice.id, "chart.png", "image/png", 67),
    );
    let inserts = expect_insert_with_files(&mut scene, 1, vec![pdf.clone(), png.clone()]);
    let h = scene.build();
    store_files(&h, &[&pdf, &png]).await;

    let sent = h.chat.messages.send(alice.id, c.id, with_files("the numbers", &[&pdf, &png])).await.unwrap();

    let new = inserts.lock().unwrap().remove(0);
    assert_eq!(new.attachments, vec![pdf.id, png.id], "the store links them in the sender's order");
    assert_eq!(new.kind, MessageType::File, "not every attachment is an image");
    let message = sent.message();
    assert_eq!(message.kind, MessageType::File);
    assert_eq!(message.content, "the numbers");
    assert_eq!(
        message.attachments,
        vec![
            Attachment {
                id: pdf.id,
                kind: AttachmentKind::File,
                name: FileName::from_stored("Q3 report.pdf".to_owned()),
                content_type: "application/pdf".to_owned(),
                size: 2048,
            },
            Attachment {
                id: png.id,
                kind: AttachmentKind::Image,
                name: FileName::from_stored("chart.png".to_owned()),
                content_type: "image/png".to_owned(),
                size: 67,
            },
        ]
    );
    assert_eq!(
        h.events(),
        vec![DomainEvent::MessageCreated { workspace_id: c.workspace_id, message: message.clone() }]
    );
}

#[tokio::test]
async fn without_a_type_a_message_is_an_image_when_every_attachment_is_one_else_a_file() {
    let cases: [(&[(&str, &str)], MessageType); 3] = [
        (&[("a.png", "image/png"), ("b.webp", "image/webp")], MessageType::Image),
        (&[("a.png", "image/png"), ("notes.txt", "text/plain")], MessageType::File),
        (&[("blob.bin", "application/octet-stream")], MessageType::File),
    ];
    for (files, expected) in cases {
        let mut scene = Scene::new();
        let (c, alice, _) = group(&mut scene);
        let rows: Vec<StoredFile> = files.iter().map(|(name, ty)| file_row(&c, alice.id, name, ty, 1)).collect();
        let inserts = expect_insert_with_files(&mut scene, 1, rows.clone());
        let h = scene.build();
        let refs: Vec<&StoredFile> = rows.iter().collect();
        store_files(&h, &refs).await;

        let sent = h.chat.messages.send(alice.id, c.id, with_files("", &refs)).await.unwrap();

        assert_eq!(inserts.lock().unwrap()[0].kind, expected, "{files:?}");
        assert_eq!(sent.message().kind, expected);
    }
}

#[tokio::test]
async fn an_explicit_type_must_agree_with_the_attachments() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let (png, pdf) =
        (file_row(&c, alice.id, "a.png", "image/png", 1), file_row(&c, alice.id, "b.pdf", "application/pdf", 1));
    let inserts = expect_insert_with_files(&mut scene, 1, vec![png.clone()]);
    let h = scene.build();
    store_files(&h, &[&png, &pdf]).await;
    let typed = |kind, files: &[&StoredFile]| SendMessage { kind: Some(kind), ..with_files("caption", files) };

    for kind in [MessageType::Image, MessageType::File] {
        assert_invalid(h.chat.messages.send(alice.id, c.id, typed(kind, &[])).await, "type");
    }
    assert_invalid(h.chat.messages.send(alice.id, c.id, typed(MessageType::Text, &[&png])).await, "type");
    assert_invalid(h.chat.messages.send(alice.id, c.id, typed(MessageType::Image, &[&png, &pdf])).await, "type");
    // `file` may label any attachments, images included.
    let sent = h.chat.messages.send(alice.id, c.id, typed(MessageType::File, &[&png])).await.unwrap();
    assert_eq!((sent.message().kind, inserts.lock().unwrap().len()), (MessageType::File, 1));
}

#[tokio::test]
async fn a_file_of_another_conversation_or_workspace_or_an_unknown_id_is_an_unknown_file() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let (other_group, _, _) = group(&mut scene);
    let elsewhere = conversation(ConversationType::Group, WorkspaceId::generate(), scene.outsider.id);
    let mine = file_row(&c, alice.id, "mine.txt", "text/plain", 3);
    let of_other_group = file_row(&other_group, alice.id, "other.txt", "text/plain", 3);
    let of_other_workspace = file_row(&elsewhere, scene.outsider.id, "theirs.txt", "text/plain", 3);
    // Moved rows: the conversation is right but the workspace is not.
    let mismatched =
        StoredFile { workspace_id: WorkspaceId::generate(), ..file_row(&c, alice.id, "x", "text/plain", 1) };
    refuse_insert(&mut scene);
    let h = scene.build();
    store_files(&h, &[&mine, &of_other_group, &of_other_workspace, &mismatched]).await;

    let unknown = file_row(&c, alice.id, "never uploaded", "text/plain", 1);
    for bad in [&of_other_group, &of_other_workspace, &mismatched, &unknown] {
        let result = h.chat.messages.send(alice.id, c.id, with_files("see attached", &[&mine, bad])).await;
        match result {
            Err(DomainError::Validation { field: "attachments", message }) => assert_eq!(message, "unknown file"),
            other => panic!("expected an unknown file, got {other:?}"),
        }
    }
    assert!(h.events().is_empty());
}

#[tokio::test]
async fn at_most_ten_distinct_attachments_are_accepted() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let rows: Vec<StoredFile> = (0..11).map(|i| file_row(&c, alice.id, &format!("{i}.txt"), "text/plain", 1)).collect();
    let inserts = expect_insert_with_files(&mut scene, 1, rows.clone());
    let h = scene.build();
    let refs: Vec<&StoredFile> = rows.iter().collect();
    store_files(&h, &refs).await;

    assert_invalid(h.chat.messages.send(alice.id, c.id, with_files("eleven", &refs)).await, "attachments");
    assert_invalid(
        h.chat.messages.send(alice.id, c.id, with_files("twice", &[refs[0], refs[1], refs[0]])).await,
        "attachments",
    );
    assert!(inserts.lock().unwrap().is_empty());

    let sent = h.chat.messages.send(alice.id, c.id, with_files("ten", &refs[..MAX_ATTACHMENTS])).await.unwrap();
    assert_eq!(sent.message().attachments.len(), MAX_ATTACHMENTS);
    assert_eq!(inserts.lock().unwrap()[0].attachments, rows[..10].iter().map(|f| f.id).collect::<Vec<_>>());
}

#[tokio::test]
async fn attachments_are_refused_in_an_encrypted_conversation() {
    let mut scene = Scene::new();
    let (c, alice) = encrypted_dm(&mut scene);
    let file = file_row(&c, alice.id, "secret.pdf", "application/pdf", 9);
    let inserts = expect_insert(&mut scene, 1);
    let h = scene.build();
    store_files(&h, &[&file]).await;

    for kind in [None, Some(MessageType::File)] {
        let req = SendMessage { kind, ..with_files(ENVELOPE, &[&file]) };
        assert_invalid(h.chat.messages.send(alice.id, c.id, req).await, "attachments");
    }
    // A `file` message whose envelope carries the (client-encrypted) file needs no attachments.
    let req = SendMessage { kind: Some(MessageType::File), ..text(ENVELOPE) };
    let sent = h.chat.messages.send(alice.id, c.id, req).await.unwrap();
    assert_eq!((sent.message().kind, inserts.lock().unwrap()[0].attachments.len()), (MessageType::File, 0));
}

#[tokio::test]
async fn a_blank_caption_is_accepted_only_with_attachments() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let png = file_row(&c, alice.id, "a.png", "image/png", 1);
    let inserts = expect_insert_with_files(&mut scene, 1, vec![png.clone()]);
    let h = scene.build();
    store_files(&h, &[&png]).await;

    for blank in ["", "   ", "<b></b>"] {
        assert_invalid(h.chat.messages.send(alice.id, c.id, text(blank)).await, "content");
    }
    let sent = h.chat.messages.send(alice.id, c.id, with_files(" \n ", &[&png])).await.unwrap();
    assert_eq!((sent.message().content.as_str(), sent.message().kind), ("", MessageType::Image));
    let new = inserts.lock().unwrap().remove(0);
    assert_eq!(open_text(&c, new.id, &new.content), "");
}

#[tokio::test]
async fn a_captioned_attachment_may_be_edited_to_no_caption_but_a_text_may_not() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let png = file_row(&c, alice.id, "a.png", "image/png", 1);
    let captioned = StoredMessage {
        kind: MessageType::Image,
        attachments: vec![png.clone()],
        ..stored_message(&c, alice.id, 1, "look")
    };
    let plain = stored_message(&c, alice.id, 2, "words");
    scene.mocks.with_message(&captioned);
    scene.mocks.with_message(&plain);
    let before = captioned.clone();
    scene.mocks.messages.expect_edit_message().times(1).returning(move |_, sealed, at| {
        Ok(Some(StoredMessage { content: Some(sealed.clone()), edited_at: Some(at), ..before.clone() }))
    });
    let service = scene.build().chat.messages;

    let edited = service.edit(alice.id, captioned.id, "  ".to_owned()).await.unwrap();
    assert_eq!(edited.content, "");
    assert_eq!(edited.attachments.len(), 1, "an edit keeps the attachments");
    assert_invalid(service.edit(alice.id, plain.id, "  ".to_owned()).await, "content");
}

#[tokio::test]
async fn a_replayed_send_returns_the_originals_attachments() {
    let mut scene = Scene::new();
    let (c, alice, _) = group(&mut scene);
    let pdf = file_row(&c, alice.id, "contract.pdf", "application/pdf", 10);
    let original = StoredMessage {
        client_msg_id: Some("c-1".to_owned()),
        kind: MessageType::File,
        attachments: vec![pdf.clone()],
        ..stored_message(&c, alice.id, 5, "signed")
    };
    scene.mocks.messages.expect_find_by_client_msg_id().never();
    insert_finds(&mut scene, &original);
    let h = scene.build();

    // The retry does not even name the file again: the original answers.
    let req = SendMessage { client_msg_id: Some("c-1".to_owned()), ..text("signed") };
    let Sent::Replayed(message) = h.chat.messages.send(alice.id, c.id, req).await.unwrap() else {
        panic!("expected a replay")
    };
    assert_eq!(message.id, original.id);
    assert_eq!(
        message.attachments.iter().map(|a| (a.id, a.name.as_str(), a.kind)).collect::<Vec<_>>(),
        vec![(pdf.id, "contract.pdf", AttachmentKind::File)]
    );
}

#[tokio::test]
async fn deleting_a_message_removes_the_blobs_of_the_files_the_store_dropped_with_it() {
    let mut scene = Scene::new();
    let (c, alice, bob) = group(&mut scene);
    let dropped = file_row(&c, alice.id, "mine.png", "image/png", 1);
    let kept = file_row(&c, bob.id, "bobs.pdf", "application/pdf", 1);
    let message = StoredMessage {
        kind: MessageType::File,
        attachments: vec![dropped.clone(), kept.clone()],
        ..stored_message(&c, alice.id, 1, "two files")
    };
    scene.mocks.with_message(&message);
    expect_delete(&mut scene, &message);
    let h = scene.build();
    // After the delete's commit the store holds only the row it kept (bob uploaded it).
    store_files(&h, &[&kept]).await;
    h.blobs.put(&dropped.storage_key, b"sealed png".to_vec()).await.unwrap();
    h.blobs.put(&kept.storage_key, b"sealed pdf".to_vec()).await.unwrap();

    h.chat.messages.delete(alice.id, message.id).await.unwrap();

    let left: Vec<String> = h.blobs.all().into_iter().map(|(key, _)| key).collect();
    assert_eq!(left, vec![kept.storage_key.clone()]);
    assert_eq!(h.events(), vec![deleted_event(&c, &message)]);
}
