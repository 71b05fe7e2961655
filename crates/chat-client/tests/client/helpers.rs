//! A real server on port 0 over a temp-dir SQLite database, as `tests/api/helpers.rs`
//! starts it, and signed-in clients for the scenarios.

use chat_client::protocol::{AddWorkspaceMemberRequest, Conversation, CreateConversationRequest, Workspace};
use chat_client::{ChatClient, GetOrCreate};
use chat_server::{Application, Settings};
use uuid::Uuid;

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A running server; dropping it removes its data directory.
pub(crate) struct TestServer {
    pub(crate) base: String,
    _dir: tempfile::TempDir,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", Uuid::new_v4().as_bytes()[0])).collect()
}

impl TestServer {
    pub(crate) async fn spawn() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let vars = [
            ("DATABASE_URL", format!("sqlite://{}", dir.path().join("chat.db").display())),
            ("DATA_DIR", dir.path().display().to_string()),
            ("BIND", "127.0.0.1:0".to_owned()),
            ("JWT_SECRET", random_hex(32)),
            ("ENCRYPTION_KEY", random_hex(32)),
            ("HTTP_WORKERS", "2".to_owned()),
            ("DATABASE_POOL_SIZE", "8".to_owned()),
        ];
        let settings = Settings::from_vars(vars.into_iter().map(|(k, v)| (k.to_owned(), v))).expect("settings");
        let app = Application::build(settings).await.expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        Self { base, _dir: dir }
    }

    /// The server's data directory (its SQLite database lives here as `chat.db`).
    pub(crate) fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// A new client, not signed in.
    pub(crate) fn client(&self) -> ChatClient {
        ChatClient::new(self.base.clone())
    }

    /// A client signed in as a fresh `name@example.test`, and the user's id.
    pub(crate) async fn user(&self, name: &str) -> (ChatClient, Uuid) {
        let client = self.client();
        let auth = client.register(&format!("{name}@example.test"), PASSWORD, name).await.expect("register");
        (client, auth.user.id)
    }
}

/// Alice owns a workspace that Bob is a member of.
pub(crate) struct Cast {
    pub(crate) alice: ChatClient,
    pub(crate) alice_id: Uuid,
    pub(crate) bob: ChatClient,
    pub(crate) bob_id: Uuid,
    pub(crate) workspace: Workspace,
}

impl Cast {
    pub(crate) async fn new(server: &TestServer) -> Self {
        let (alice, alice_id) = server.user("alice").await;
        let (bob, bob_id) = server.user("bob").await;
        let workspace = alice.create_workspace("Acme").await.expect("workspace");
        alice
            .add_workspace_member(
                workspace.id,
                &AddWorkspaceMemberRequest { user_id: Some(bob_id), email: None, role: None },
            )
            .await
            .expect("bob joins");
        Self { alice, alice_id, bob, bob_id, workspace }
    }

    /// A channel created by Alice with Bob in it.
    pub(crate) async fn channel(&self, name: &str) -> Conversation {
        let created = self
            .alice
            .create_conversation(&conversation("CHANNEL", self.workspace.id, Some(name), &[self.bob_id]))
            .await;
        match created.expect("channel") {
            GetOrCreate::Created(conversation) => conversation,
            other => panic!("a new channel must be created: {other:?}"),
        }
    }
}

pub(crate) fn conversation(
    kind: &str,
    workspace: Uuid,
    name: Option<&str>,
    members: &[Uuid],
) -> CreateConversationRequest {
    CreateConversationRequest {
        kind: kind.to_owned(),
        workspace_id: workspace,
        name: name.map(str::to_owned),
        description: None,
        icon: None,
        member_ids: members.to_vec(),
        document_id: None,
        is_encrypted: false,
        max_participants: None,
    }
}
