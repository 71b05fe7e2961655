//! Shared fixtures for the domain's unit tests.
//!
//! * Builders for [`User`], [`Workspace`], [`Conversation`], [`Member`] and [`StoredMessage`].
//! * [`FixedClock`]: "now" is always [`now()`].
//! * [`FakeCipher`]: a reversible stand-in for AES-GCM that binds the sealed bytes to their
//!   [`SealContext`] and never leaves the plaintext readable, so a test can check both that a
//!   repository never sees plaintext and that content is opened under the right row.
//! * [`RecordingEvents`]: an [`EventPublisher`] that keeps what was published, so a test asserts
//!   exactly which events a use case emits.
//! * [`Mocks`]: one `mockall` mock per port plus a small "world" (workspace members,
//!   conversations, members, stored messages) from which the read-only lookups every service
//!   starts with are answered. A test sets its own expectations on the mocks — they take
//!   precedence, because `mockall` evaluates expectations in FIFO order and the world's are
//!   added last by [`Mocks::build`] — and gets back a wired [`Chat`].
//! * [`Scene`]: a workspace with an owner, three members, a guest and an outsider.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};

use crate::audit::{AuditCursor, AuditEntry, AuditLog};
use crate::cipher::{ContentCipher, ContentSanitizer, MockContentSanitizer, SealContext, Sealed};
use crate::clock::Clock;
use crate::conversation::{
    Conversation, ConversationRole, ConversationType, Member, MockConversationRepository, Standing,
};
use crate::error::{DomainError, RepoError};
use crate::event::{DomainEvent, EventPublisher};
use crate::ids::{ConversationId, MessageId, UserId, WorkspaceId};
use crate::keys::{MockKeyDirectory, MockSignatureVerifier};
use crate::message::{MessageType, MockMessageRepository, NewMessage, StoredMessage};
use crate::presence::MockPresenceRepository;
use crate::realtime::{MockConnectionTracker, MockRateLimiter};
use crate::search::{BlindIndexer, MockSearchIndex, SearchTag, TAG_LEN};
use crate::user::{
    DisplayName, Email, MockPasswordHasher, MockSessionRepository, MockTokenIssuer, MockUserRepository, User,
};
use crate::workspace::{MockWorkspaceRepository, Name, Workspace, WorkspaceMember, WorkspaceRole};
use crate::{Chat, Limits, Ports};

// ---------------------------------------------------------------------------------------------
// Time

/// The instant every [`FixedClock`] reports.
pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).single().expect("a valid instant")
}

/// `minutes` before [`now()`] (for things that happened earlier).
pub(crate) fn minutes_ago(minutes: i64) -> DateTime<Utc> {
    now() - chrono::Duration::minutes(minutes)
}

/// A clock stopped at [`now()`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        now()
    }
}

/// A clock the test moves by hand (starting at [`now()`]).
#[derive(Debug)]
pub(crate) struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self(std::sync::Mutex::new(now())))
    }

    pub(crate) fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Encryption at rest

/// The key version the fake cipher writes.
pub(crate) const FAKE_KEY_VERSION: i32 = 7;

fn fake_header(ctx: &SealContext) -> Vec<u8> {
    format!("{}|{}|{}|{}|", ctx.workspace, ctx.conversation, ctx.message, ctx.field).into_bytes()
}

/// Seals like [`FakeCipher`]: a header naming the context, then the plaintext with every byte
/// flipped (so it is not readable in the sealed bytes).
pub(crate) fn fake_seal(ctx: &SealContext, plaintext: &[u8]) -> Sealed {
    let mut bytes = fake_header(ctx);
    bytes.extend(plaintext.iter().map(|b| b ^ 0xA5));
    Sealed { key_version: FAKE_KEY_VERSION, bytes }
}

/// Opens what [`fake_seal`] sealed under the same context; `None` under any other.
pub(crate) fn fake_open(ctx: &SealContext, sealed: &Sealed) -> Option<Vec<u8>> {
    let header = fake_header(ctx);
    if sealed.key_version != FAKE_KEY_VERSION || !sealed.bytes.starts_with(&header) {
        return None;
    }
    Some(sealed.bytes[header.len()..].iter().map(|b| b ^ 0xA5).collect())
}

/// The seal context of a message's content.
pub(crate) fn content_ctx(conversation: &Conversation, message: MessageId) -> SealContext {
    SealContext { workspace: conversation.workspace_id, conversation: conversation.id, message, field: "content" }
}

/// Opens sealed content of `message` in `conversation` as text (panics when it does not open).
pub(crate) fn open_text(conversation: &Conversation, message: MessageId, sealed: &Sealed) -> String {
    let bytes = fake_open(&content_ctx(conversation, message), sealed).expect("content opens under its own context");
    String::from_utf8(bytes).expect("utf-8 content")
}

/// A reversible, context-bound stand-in for the AEAD adapter.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FakeCipher;

#[async_trait]
impl ContentCipher for FakeCipher {
    async fn seal(&self, ctx: &SealContext, plaintext: &[u8]) -> Result<Sealed, RepoError> {
        Ok(fake_seal(ctx, plaintext))
    }

    async fn open(&self, ctx: &SealContext, sealed: &Sealed) -> Result<Vec<u8>, RepoError> {
        fake_open(ctx, sealed).ok_or(RepoError::msg("fake cipher: wrong context"))
    }
}

/// A sanitiser that drops anything between `<` and `>` (a stand-in for ammonia).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TagStripper;

impl ContentSanitizer for TagStripper {
    fn sanitize(&self, raw: &str) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut in_tag = false;
        for c in raw.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Blind index

/// A deterministic stand-in for the HMAC tagger: a tag is a SipHash (fixed keys) of the
/// workspace and the token, so equal tokens of one workspace agree, other workspaces differ,
/// and no token is readable in a tag.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FakeIndexer;

/// The tag [`FakeIndexer`] gives `token` in `workspace`.
pub(crate) fn fake_tag(workspace: WorkspaceId, token: &str) -> SearchTag {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut tag = [0_u8; TAG_LEN];
    for (half, chunk) in tag.chunks_mut(8).enumerate() {
        let mut hasher = DefaultHasher::new();
        (half, workspace, token).hash(&mut hasher);
        chunk.copy_from_slice(&hasher.finish().to_be_bytes());
    }
    SearchTag(tag)
}

impl BlindIndexer for FakeIndexer {
    fn tags(&self, workspace: WorkspaceId, tokens: &[String]) -> Result<Vec<SearchTag>, RepoError> {
        Ok(tokens.iter().map(|t| fake_tag(workspace, t)).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Events

/// Keeps every published event, in order.
#[derive(Debug, Default)]
pub(crate) struct RecordingEvents {
    published: Mutex<Vec<DomainEvent>>,
}

impl RecordingEvents {
    /// Everything published so far (and forgets it).
    pub(crate) fn take(&self) -> Vec<DomainEvent> {
        std::mem::take(&mut *self.published.lock().expect("events lock"))
    }
}

#[async_trait]
impl EventPublisher for RecordingEvents {
    async fn publish(&self, event: DomainEvent) {
        self.published.lock().expect("events lock").push(event);
    }
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// Keeps every recorded audit entry, in order (and lists them as a store would).
#[derive(Debug, Default)]
pub(crate) struct RecordingAudit {
    entries: Mutex<Vec<AuditEntry>>,
}

impl RecordingAudit {
    /// Everything recorded so far (and forgets it).
    pub(crate) fn take(&self) -> Vec<AuditEntry> {
        std::mem::take(&mut *self.entries.lock().expect("audit lock"))
    }
}

#[async_trait]
impl AuditLog for RecordingAudit {
    async fn record(&self, entry: AuditEntry) -> Result<(), RepoError> {
        self.entries.lock().expect("audit lock").push(entry);
        Ok(())
    }

    async fn list_audit(
        &self,
        workspace: WorkspaceId,
        before: Option<AuditCursor>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, RepoError> {
        let mut found: Vec<AuditEntry> = self
            .entries
            .lock()
            .expect("audit lock")
            .iter()
            .filter(|e| e.workspace_id == Some(workspace))
            .filter(|e| before.is_none_or(|c| (e.at, e.id) < (c.at, c.id)))
            .cloned()
            .collect();
        found.sort_by_key(|e| std::cmp::Reverse((e.at, e.id)));
        found.truncate(limit as usize);
        Ok(found)
    }
}

// ---------------------------------------------------------------------------------------------
// Builders

/// An account named `name` (`name@example.com`), created an hour ago.
pub(crate) fn user(name: &str) -> User {
    User {
        id: UserId::generate(),
        email: Email::parse(&format!("{name}@example.com")).expect("a valid test e-mail"),
        display_name: DisplayName::parse(name).expect("a valid test name"),
        avatar_url: None,
        created_at: minutes_ago(60),
    }
}

/// A workspace "Acme" created by `owner`.
pub(crate) fn workspace(owner: UserId) -> Workspace {
    Workspace {
        id: WorkspaceId::generate(),
        name: Name::parse("name", "Acme").expect("a valid test name"),
        slug: "acme".to_owned(),
        created_by: owner,
        created_at: minutes_ago(60),
    }
}

/// A conversation of `kind` in `workspace`, made by `creator` half an hour ago, with no messages.
pub(crate) fn conversation(kind: ConversationType, workspace: WorkspaceId, creator: UserId) -> Conversation {
    Conversation {
        id: ConversationId::generate(),
        workspace_id: workspace,
        kind,
        name: match kind {
            ConversationType::Dm => None,
            _ => Some(format!("{} chat", kind.as_str().to_lowercase())),
        },
        description: None,
        icon: None,
        document_id: (kind == ConversationType::Document).then(|| "doc-1".to_owned()),
        is_encrypted: false,
        max_participants: if kind == ConversationType::Dm { 2 } else { 100 },
        created_by: creator,
        last_seq: 0,
        created_at: minutes_ago(30),
        updated_at: minutes_ago(30),
        archived_at: None,
    }
}

/// `user`'s membership of `conversation` with `role`, joined half an hour ago, nothing read.
pub(crate) fn member(conversation: &Conversation, user: UserId, role: ConversationRole) -> Member {
    Member {
        conversation_id: conversation.id,
        user_id: user,
        role,
        joined_at: minutes_ago(30),
        last_read_seq: 0,
        last_read_at: None,
        is_muted: false,
    }
}

/// A stored text message of `conversation` at `seq`, sealed with the [`FakeCipher`].
pub(crate) fn stored_message(conversation: &Conversation, sender: UserId, seq: i64, text: &str) -> StoredMessage {
    let id = MessageId::generate();
    StoredMessage {
        id,
        conversation_id: conversation.id,
        seq,
        sender_id: sender,
        client_msg_id: None,
        kind: MessageType::Text,
        content: Some(fake_seal(&content_ctx(conversation, id), text.as_bytes())),
        reply_to_id: None,
        reply_count: 0,
        reactions: Vec::new(),
        attachments: Vec::new(),
        edited_at: None,
        deleted_at: None,
        created_at: minutes_ago(10),
    }
}

/// What a store would hand back after inserting `new` at `seq`.
pub(crate) fn stored_from_new(new: &NewMessage, seq: i64) -> StoredMessage {
    StoredMessage {
        id: new.id,
        conversation_id: new.conversation_id,
        seq,
        sender_id: new.sender_id,
        client_msg_id: new.client_msg_id.clone(),
        kind: new.kind,
        content: Some(new.content.clone()),
        reply_to_id: new.reply_to_id,
        reply_count: 0,
        reactions: Vec::new(),
        // A store returns the attached files' rows; tests that attach files fill them in.
        attachments: Vec::new(),
        edited_at: None,
        deleted_at: None,
        created_at: new.created_at,
    }
}

/// The workspace membership row of `user`.
pub(crate) fn workspace_member(workspace: WorkspaceId, user: &User, role: WorkspaceRole) -> WorkspaceMember {
    WorkspaceMember { workspace_id: workspace, user: user.clone(), role, joined_at: minutes_ago(45) }
}

/// Answers `member_role` from a fixed list of memberships.
pub(crate) fn stub_member_roles(repo: &mut MockWorkspaceRepository, members: Vec<WorkspaceMember>) {
    repo.expect_member_role().returning(move |workspace, user| {
        Ok(members.iter().find(|m| m.workspace_id == workspace && m.user.id == user).map(|m| m.role))
    });
}

/// Asserts `result` is a `Validation` error on `field`.
#[track_caller]
pub(crate) fn assert_invalid<T: std::fmt::Debug>(result: Result<T, DomainError>, field: &str) {
    match result {
        Err(DomainError::Validation { field: f, .. }) if f == field => {}
        other => panic!("expected a validation error on {field}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Wiring

/// One mock per port, and the world the read-only lookups are answered from.
pub(crate) struct Mocks {
    pub(crate) users: MockUserRepository,
    pub(crate) sessions: MockSessionRepository,
    pub(crate) workspaces: MockWorkspaceRepository,
    pub(crate) conversations: MockConversationRepository,
    pub(crate) messages: MockMessageRepository,
    pub(crate) presence: MockPresenceRepository,
    pub(crate) hasher: MockPasswordHasher,
    pub(crate) tokens: MockTokenIssuer,
    pub(crate) tracker: MockConnectionTracker,
    pub(crate) limiter: MockRateLimiter,
    /// The blind index's store (accepts every write unless a test says otherwise).
    pub(crate) search_index: MockSearchIndex,
    pub(crate) key_directory: MockKeyDirectory,
    pub(crate) signatures: MockSignatureVerifier,
    /// The services' clock ([`FixedClock`] unless a test moves time).
    pub(crate) clock: Arc<dyn Clock>,
    /// `None`: the [`TagStripper`].
    pub(crate) sanitizer: Option<MockContentSanitizer>,
    pub(crate) limits: Limits,
    workspace_members: Vec<WorkspaceMember>,
    conversation_rows: Vec<Conversation>,
    members: Vec<Member>,
    stored: Vec<StoredMessage>,
}

impl std::fmt::Debug for Mocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mocks").finish_non_exhaustive()
    }
}

impl Mocks {
    /// Mocks with no expectations and an empty world.
    pub(crate) fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            sessions: MockSessionRepository::new(),
            workspaces: MockWorkspaceRepository::new(),
            conversations: MockConversationRepository::new(),
            messages: MockMessageRepository::new(),
            presence: MockPresenceRepository::new(),
            hasher: MockPasswordHasher::new(),
            tokens: MockTokenIssuer::new(),
            tracker: MockConnectionTracker::new(),
            limiter: MockRateLimiter::new(),
            search_index: MockSearchIndex::new(),
            key_directory: MockKeyDirectory::new(),
            signatures: MockSignatureVerifier::new(),
            clock: Arc::new(FixedClock),
            sanitizer: None,
            limits: Limits::default(),
            workspace_members: Vec::new(),
            conversation_rows: Vec::new(),
            members: Vec::new(),
            stored: Vec::new(),
        }
    }

    /// Makes `user` a member of `workspace` with `role`.
    pub(crate) fn in_workspace(&mut self, workspace: WorkspaceId, user: &User, role: WorkspaceRole) {
        self.workspace_members.push(workspace_member(workspace, user, role));
    }

    /// Puts a conversation in the world.
    pub(crate) fn with_conversation(&mut self, conversation: &Conversation) {
        self.conversation_rows.push(conversation.clone());
    }

    /// Puts a membership in the world.
    pub(crate) fn with_member(&mut self, member: Member) {
        self.members.push(member);
    }

    /// Puts a stored message in the world.
    pub(crate) fn with_message(&mut self, message: &StoredMessage) {
        self.stored.push(message.clone());
    }

    /// Adds the world's answers (after the test's own expectations) and wires every service.
    pub(crate) fn build(mut self) -> Harness {
        stub_member_roles(&mut self.workspaces, self.workspace_members.clone());
        let all = self.workspace_members;
        let roles = all.clone();
        self.workspaces
            .expect_list_workspace_members()
            .returning(move |workspace| Ok(all.iter().filter(|m| m.workspace_id == workspace).cloned().collect()));
        let rows = self.conversation_rows;
        let (standing_rows, standing_members) = (rows.clone(), self.members.clone());
        self.conversations.expect_find_standing().returning(move |id, user| {
            Ok(standing_rows.iter().find(|c| c.id == id).map(|conversation| Standing {
                conversation: conversation.clone(),
                workspace_role: roles
                    .iter()
                    .find(|m| m.workspace_id == conversation.workspace_id && m.user.id == user)
                    .map(|m| m.role),
                member: standing_members.iter().find(|m| m.conversation_id == id && m.user_id == user).cloned(),
            }))
        });
        self.conversations
            .expect_find_conversation()
            .returning(move |id| Ok(rows.iter().find(|c| c.id == id).cloned()));
        let members = self.members;
        let lookup = members.clone();
        self.conversations.expect_find_member().returning(move |conversation, user| {
            Ok(lookup.iter().find(|m| m.conversation_id == conversation && m.user_id == user).cloned())
        });
        self.conversations.expect_list_members().returning(move |conversation| {
            Ok(members.iter().filter(|m| m.conversation_id == conversation).cloned().collect())
        });
        let stored = self.stored;
        self.messages.expect_find_message().returning(move |id| Ok(stored.iter().find(|m| m.id == id).cloned()));

        // Unless a test says otherwise, nobody is rate limited.
        self.limiter.expect_acquire().returning(|_, _, _| Ok(Ok(())));
        // Unless a test says otherwise, index writes succeed.
        self.search_index.expect_replace_message_tags().returning(|_| Ok(()));
        self.search_index.expect_delete_message_tags().returning(|_| Ok(()));
        let events = Arc::new(RecordingEvents::default());
        let audit = Arc::new(RecordingAudit::default());
        let blobs = Arc::new(crate::file::tests::MemoryBlobs::default());
        let file_rows = Arc::new(crate::file::tests::MemoryFiles::default());
        let sanitizer: Arc<dyn ContentSanitizer> = match self.sanitizer {
            Some(mock) => Arc::new(mock),
            None => Arc::new(TagStripper),
        };
        let ports = Ports {
            users: Arc::new(self.users),
            sessions: Arc::new(self.sessions),
            workspaces: Arc::new(self.workspaces),
            conversations: Arc::new(self.conversations),
            messages: Arc::new(self.messages),
            presence: Arc::new(self.presence),
            key_directory: Arc::new(self.key_directory),
            signatures: Arc::new(self.signatures),
            cipher: Arc::new(FakeCipher),
            blind_indexer: Arc::new(FakeIndexer),
            search_index: Arc::new(self.search_index),
            sanitizer,
            hasher: Arc::new(self.hasher),
            tokens: Arc::new(self.tokens),
            events: events.clone(),
            tracker: Arc::new(self.tracker),
            limiter: Arc::new(self.limiter),
            audit: audit.clone(),
            clock: self.clock,
            files: file_rows.clone(),
            blobs: blobs.clone(),
            file_cipher: Arc::new(crate::file::tests::FakeFileCipher),
        };
        Harness { chat: Chat::new(ports, self.limits), events, audit, blobs, file_rows }
    }
}

/// Every service wired on the mocks, and the events they published.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) chat: Chat,
    pub(crate) events: Arc<RecordingEvents>,
    /// What the services wrote to the audit log.
    pub(crate) audit: Arc<RecordingAudit>,
    /// The file bodies the services stored.
    pub(crate) blobs: Arc<crate::file::tests::MemoryBlobs>,
    /// The file rows the services stored.
    pub(crate) file_rows: Arc<crate::file::tests::MemoryFiles>,
}

impl Harness {
    /// The events published so far.
    pub(crate) fn events(&self) -> Vec<DomainEvent> {
        self.events.take()
    }

    /// The audit entries recorded so far (and forgets them).
    pub(crate) fn audit(&self) -> Vec<AuditEntry> {
        self.audit.take()
    }
}

/// A workspace with its owner, an admin, three members (alice, bob, carol), a guest, and an
/// outsider who belongs to another workspace only.
#[derive(Debug)]
pub(crate) struct Scene {
    pub(crate) workspace: Workspace,
    pub(crate) owner: User,
    pub(crate) admin: User,
    pub(crate) alice: User,
    pub(crate) bob: User,
    pub(crate) carol: User,
    pub(crate) guest: User,
    pub(crate) outsider: User,
    pub(crate) mocks: Mocks,
}

impl Scene {
    pub(crate) fn new() -> Self {
        let owner = user("owner");
        let workspace = workspace(owner.id);
        let (admin, alice, bob, carol, guest, outsider) =
            (user("admin"), user("alice"), user("bob"), user("carol"), user("guest"), user("outsider"));
        let mut mocks = Mocks::new();
        mocks.in_workspace(workspace.id, &owner, WorkspaceRole::Owner);
        mocks.in_workspace(workspace.id, &admin, WorkspaceRole::Admin);
        for u in [&alice, &bob, &carol] {
            mocks.in_workspace(workspace.id, u, WorkspaceRole::Member);
        }
        mocks.in_workspace(workspace.id, &guest, WorkspaceRole::Guest);
        mocks.in_workspace(WorkspaceId::generate(), &outsider, WorkspaceRole::Owner);
        Self { workspace, owner, admin, alice, bob, carol, guest, outsider, mocks }
    }

    /// A conversation of `kind` in the scene's workspace, made by the first of `members`, with
    /// those members and roles, put in the world.
    pub(crate) fn conversation(
        &mut self,
        kind: ConversationType,
        members: &[(&User, ConversationRole)],
    ) -> Conversation {
        let creator = members.first().map_or(self.owner.id, |(u, _)| u.id);
        let conversation = conversation(kind, self.workspace.id, creator);
        self.put(&conversation, members);
        conversation
    }

    /// Puts `conversation` and the given memberships in the world.
    pub(crate) fn put(&mut self, conversation: &Conversation, members: &[(&User, ConversationRole)]) {
        self.mocks.with_conversation(conversation);
        for (u, role) in members {
            self.mocks.with_member(member(conversation, u.id, *role));
        }
    }

    /// Builds the services.
    pub(crate) fn build(self) -> Harness {
        self.mocks.build()
    }
}

#[test]
fn the_fake_cipher_opens_only_under_the_context_it_sealed_with() {
    let c = conversation(ConversationType::Group, WorkspaceId::generate(), UserId::generate());
    let id = MessageId::generate();
    let sealed = fake_seal(&content_ctx(&c, id), b"secret words");
    assert!(!sealed.bytes.windows(6).any(|w| w == b"secret"), "plaintext must not be visible");
    assert_eq!(open_text(&c, id, &sealed), "secret words");
    assert_eq!(fake_open(&content_ctx(&c, MessageId::generate()), &sealed), None);
}
