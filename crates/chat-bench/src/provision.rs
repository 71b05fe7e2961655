//! Provisioning through the public API with `chat-client`: users (register), one workspace
//! (the first user owns it, everyone else is added), and GROUP conversations, each created by
//! its first member with the others as `memberIds`.

use chat_client::ChatClient;
use chat_client::protocol::{AddWorkspaceMemberRequest, CreateConversationRequest};
use futures_util::{StreamExt, TryStreamExt};
use uuid::Uuid;

use crate::error::BenchError;

/// A signed-in benchmark user.
#[derive(Clone, Debug)]
pub struct BenchUser {
    /// User id.
    pub id: Uuid,
    /// REST client holding the session.
    pub client: ChatClient,
}

impl BenchUser {
    /// The access token for the WebSocket upgrade.
    #[must_use]
    pub fn token(&self) -> String {
        self.client.access_token().unwrap_or_default()
    }
}

/// A group conversation and the indices of its members in [`World::users`].
#[derive(Clone, Debug)]
pub struct Group {
    /// Conversation id.
    pub conversation: Uuid,
    /// Members (the first created it).
    pub members: Vec<usize>,
}

/// Everything one server run needs.
#[derive(Clone, Debug)]
pub struct World {
    /// The workspace.
    pub workspace: Uuid,
    /// Its users.
    pub users: Vec<BenchUser>,
}

/// Registers `n` users (argon2id on the server makes this the slow part; `parallel` requests
/// at a time).
///
/// # Errors
/// When a registration fails.
pub async fn users(base_url: &str, n: usize, parallel: usize) -> Result<Vec<BenchUser>, BenchError> {
    let run = crate::server::random_hex(4);
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = ChatClient::new(base_url);
            let run = run.clone();
            async move {
                let email = format!("bench-{run}-{i}@example.test");
                let auth = client.register(&email, "bench-password-0123456789", &format!("Bench {i}")).await?;
                Ok::<_, BenchError>(BenchUser { id: auth.user.id, client })
            }
        })
        .buffered(parallel)
        .try_collect()
        .await
}

/// Registers `n` users, makes the first the owner of a new workspace and adds the others.
///
/// # Errors
/// When a call fails.
pub async fn world(base_url: &str, n: usize, parallel: usize) -> Result<World, BenchError> {
    let users = users(base_url, n.max(1), parallel).await?;
    let owner = users[0].client.clone();
    let workspace = owner.create_workspace("Bench").await?.id;
    futures_util::stream::iter(users.iter().skip(1).map(|u| u.id))
        .map(|id| {
            let owner = owner.clone();
            async move {
                let body = AddWorkspaceMemberRequest { user_id: Some(id), email: None, role: None };
                owner.add_workspace_member(workspace, &body).await
            }
        })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(World { workspace, users })
}

/// Creates `count` groups of `size` members from consecutive users (starting at `offset`).
///
/// # Errors
/// When there are not enough users or a call fails.
pub async fn groups(world: &World, offset: usize, count: usize, size: usize) -> Result<Vec<Group>, BenchError> {
    if offset + count * size > world.users.len() {
        return Err(BenchError::setup(format!("{count} groups of {size} need more than {} users", world.users.len())));
    }
    futures_util::stream::iter(0..count)
        .map(|g| {
            let members: Vec<usize> = (offset + g * size..offset + (g + 1) * size).collect();
            let creator = world.users[members[0]].client.clone();
            let body = CreateConversationRequest {
                kind: "GROUP".to_owned(),
                workspace_id: world.workspace,
                name: Some(format!("bench {size}-{g}")),
                description: None,
                icon: None,
                member_ids: members[1..].iter().map(|&i| world.users[i].id).collect(),
                document_id: None,
                is_encrypted: false,
                max_participants: Some(u32::try_from(size.max(2)).unwrap_or(u32::MAX)),
            };
            async move {
                let conversation = creator.create_conversation(&body).await?.into_inner().id;
                Ok::<_, BenchError>(Group { conversation, members })
            }
        })
        .buffered(4)
        .try_collect()
        .await
}
