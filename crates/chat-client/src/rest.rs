//! [`ChatClient`]: one method per route of SPEC.md §2, typed with `chat-protocol`'s bodies.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chat_protocol::{
    AddMemberRequest, AddWorkspaceMemberRequest, AuthResponse, ClaimedDeviceKeys, Conversation,
    CreateConversationRequest, CreateWorkspaceRequest, DeviceKeysBody, EditMessageRequest, Health,
    ListConversationsQuery, ListMessagesQuery, LoginRequest, Member, Message, Page, Presence, PresenceRequest,
    PublishDeviceKeysRequest, ReactionRequest, ReadRequest, ReadResponse, RefreshRequest, RegisterRequest, SearchQuery,
    SendMessageRequest, SetRoleRequest, UnreadCountResponse, UpdateConversationRequest, User, Workspace,
    WorkspaceMember,
};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::ClientError;

/// How long [`ChatClient::new`]'s pool keeps an idle connection: under the server's keep-alive
/// timeout (actix-http's default, 5 seconds), so that no request is written onto a connection
/// the server is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// What a get-or-create call did: `POST /chat/conversations` answers 201 for a new
/// conversation and 200 for the existing DM or DOCUMENT chat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetOrCreate<T> {
    /// 201: created now.
    Created(T),
    /// 200: it already existed.
    Existing(T),
}

impl<T> GetOrCreate<T> {
    /// The resource, either way.
    #[must_use]
    pub fn into_inner(self) -> T {
        match self {
            Self::Created(t) | Self::Existing(t) => t,
        }
    }

    /// The resource, either way.
    #[must_use]
    pub fn get(&self) -> &T {
        match self {
            Self::Created(t) | Self::Existing(t) => t,
        }
    }

    /// `true` for [`GetOrCreate::Created`].
    #[must_use]
    pub fn is_created(&self) -> bool {
        matches!(self, Self::Created(_))
    }
}

/// What `POST /chat/conversations/:id/messages` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sent {
    /// 201: a new message.
    New(Message),
    /// 200: a message with this `clientMsgId` from this sender already existed; this is it.
    Replayed(Message),
}

impl Sent {
    /// The message, either way.
    #[must_use]
    pub fn into_message(self) -> Message {
        match self {
            Self::New(m) | Self::Replayed(m) => m,
        }
    }

    /// The message, either way.
    #[must_use]
    pub fn message(&self) -> &Message {
        match self {
            Self::New(m) | Self::Replayed(m) => m,
        }
    }

    /// `true` for [`Sent::New`].
    #[must_use]
    pub fn is_new(&self) -> bool {
        matches!(self, Self::New(_))
    }
}

/// The tokens of one signed-in session, shared by a client and its clones.
#[derive(Default)]
struct Tokens {
    access: Option<String>,
    refresh: Option<String>,
}

struct Session {
    tokens: Mutex<Tokens>,
    /// Serialises refreshes: refresh tokens are single use, and presenting a spent one revokes
    /// the whole family, so two clones must never refresh with the same token.
    refreshing: tokio::sync::Mutex<()>,
}

impl Session {
    fn new(access: Option<String>, refresh: Option<String>) -> Arc<Self> {
        Arc::new(Self { tokens: Mutex::new(Tokens { access, refresh }), refreshing: tokio::sync::Mutex::new(()) })
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The REST client, and the factory of WebSocket connections
/// ([`ChatClient::connect_ws`], [`ChatClient::connect_resuming`]).
///
/// A client holds one session: [`register`](Self::register), [`login`](Self::login) and
/// [`refresh`](Self::refresh) store the tokens they receive, and every later call sends the
/// access token as `Authorization: Bearer`. Clones share the session (a refresh through one
/// is seen by all), so use one client per user. Calls are never retried behind your back;
/// the only automatic call is the refresh a [`ResumingRealtime`](crate::ResumingRealtime)
/// makes when a reconnect is refused with 401.
#[derive(Clone)]
pub struct ChatClient {
    http: reqwest::Client,
    base: Arc<str>,
    session: Arc<Session>,
}

impl fmt::Debug for ChatClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tokens = self.session.tokens();
        f.debug_struct("ChatClient")
            .field("base", &self.base)
            .field("access_token", &tokens.access.as_ref().map(|_| "<redacted>"))
            .field("refresh_token", &tokens.refresh.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ChatClient {
    /// A client of the server at `base_url` (`http://127.0.0.1:8080`, or with a path prefix),
    /// not signed in. Requests time out after 30 seconds, and a pooled connection idle for 4
    /// seconds is dropped before the server (after 5) closes it: a request written onto a
    /// connection the server is closing fails with "error sending request" (seen in long
    /// benchmark runs). See [`Self::with_http_client`].
    #[must_use]
    pub fn new(base_url: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_http_client(base_url, http)
    }

    /// A client that sends its requests through `http` (your timeouts, proxies, pool).
    #[must_use]
    pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let base: String = base_url.into();
        Self { http, base: base.trim_end_matches('/').into(), session: Session::new(None, None) }
    }

    /// This client with a new session that uses `access` as its bearer token (and holds no
    /// refresh token). The original client keeps its own session.
    #[must_use]
    pub fn with_token(self, access: impl Into<String>) -> Self {
        Self { session: Session::new(Some(access.into()), None), ..self }
    }

    /// This client with a new session holding both tokens.
    #[must_use]
    pub fn with_tokens(self, access: impl Into<String>, refresh: impl Into<String>) -> Self {
        Self { session: Session::new(Some(access.into()), Some(refresh.into())), ..self }
    }

    /// The server's base URL, without a trailing slash.
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The current access token.
    #[must_use]
    pub fn access_token(&self) -> Option<String> {
        self.session.tokens().access.clone()
    }

    /// The current refresh token.
    #[must_use]
    pub fn refresh_token(&self) -> Option<String> {
        self.session.tokens().refresh.clone()
    }

    fn store(&self, auth: &AuthResponse) {
        let mut tokens = self.session.tokens();
        tokens.access = Some(auth.access_token.clone());
        tokens.refresh = Some(auth.refresh_token.clone());
    }

    // ------------------------------------------------------------ plumbing

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match self.access_token() {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends, and turns any non-2xx answer into [`ClientError::Api`].
    async fn send(&self, context: &str, builder: RequestBuilder) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let response = builder.send().await?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await?.to_vec();
        tracing::debug!(request = context, status = status.as_u16(), "chat api answered");
        if status.is_success() {
            Ok((status, body))
        } else {
            Err(ClientError::from_response(status.as_u16(), retry_after, &body))
        }
    }

    async fn call<T: DeserializeOwned>(&self, context: &str, builder: RequestBuilder) -> Result<T, ClientError> {
        let (_, body) = self.send(context, builder).await?;
        decode(context, &body)
    }

    /// A call answered by 201 (created) or 200 (existing or replayed).
    async fn call_created<T: DeserializeOwned>(
        &self,
        context: &str,
        builder: RequestBuilder,
    ) -> Result<(bool, T), ClientError> {
        let (status, body) = self.send(context, builder).await?;
        let value = decode(context, &body)?;
        match status {
            StatusCode::CREATED => Ok((true, value)),
            StatusCode::OK => Ok((false, value)),
            other => Err(ClientError::UnexpectedResponse {
                status: other.as_u16(),
                body: String::from_utf8_lossy(&body).into_owned(),
            }),
        }
    }

    /// A call answered by 204.
    async fn call_empty(&self, context: &str, builder: RequestBuilder) -> Result<(), ClientError> {
        self.send(context, builder).await.map(drop)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    fn post<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> RequestBuilder {
        self.request(Method::POST, path).json(body)
    }

    fn put<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> RequestBuilder {
        self.request(Method::PUT, path).json(body)
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    // ------------------------------------------------------------ auth

    /// `POST /auth/register`; stores the session's tokens.
    ///
    /// # Errors
    /// `Api` 409 `conflict` when the e-mail is taken, 422 `validation_failed` for a bad
    /// e-mail, password or name; transport and decode errors.
    pub async fn register(&self, email: &str, password: &str, display_name: &str) -> Result<AuthResponse, ClientError> {
        let body = RegisterRequest {
            email: email.to_owned(),
            password: password.to_owned(),
            display_name: display_name.to_owned(),
        };
        let auth: AuthResponse = self.call("POST /auth/register", self.post("/auth/register", &body)).await?;
        self.store(&auth);
        Ok(auth)
    }

    /// `POST /auth/login`; stores the session's tokens.
    ///
    /// # Errors
    /// `Api` 401 `unauthorized` for an unknown e-mail or a wrong password.
    pub async fn login(&self, email: &str, password: &str) -> Result<AuthResponse, ClientError> {
        let body = LoginRequest { email: email.to_owned(), password: password.to_owned() };
        let auth: AuthResponse = self.call("POST /auth/login", self.post("/auth/login", &body)).await?;
        self.store(&auth);
        Ok(auth)
    }

    /// `POST /auth/refresh` with the stored refresh token; stores the new pair (refresh tokens
    /// rotate). Concurrent refreshes through clones of this client are serialised.
    ///
    /// # Errors
    /// [`ClientError::NoRefreshToken`] without a session; `Api` 401 when the token was
    /// rejected or already spent (which revokes its family: sign in again).
    pub async fn refresh(&self) -> Result<AuthResponse, ClientError> {
        let _one_at_a_time = self.session.refreshing.lock().await;
        self.refresh_locked().await
    }

    /// Refreshes unless the access token is no longer `stale` (a clone refreshed meanwhile).
    pub(crate) async fn refresh_if_still(&self, stale: Option<&str>) -> Result<(), ClientError> {
        let _one_at_a_time = self.session.refreshing.lock().await;
        if self.access_token().as_deref() != stale {
            return Ok(());
        }
        self.refresh_locked().await.map(drop)
    }

    async fn refresh_locked(&self) -> Result<AuthResponse, ClientError> {
        let refresh_token = self.refresh_token().ok_or(ClientError::NoRefreshToken)?;
        let body = RefreshRequest { refresh_token };
        let auth: AuthResponse = self.call("POST /auth/refresh", self.post("/auth/refresh", &body)).await?;
        self.store(&auth);
        Ok(auth)
    }

    /// `GET /auth/me`.
    ///
    /// # Errors
    /// `Api` 401 without a valid access token.
    pub async fn me(&self) -> Result<User, ClientError> {
        self.call("GET /auth/me", self.get("/auth/me")).await
    }

    // ------------------------------------------------------------ workspaces

    /// `POST /workspaces`; the caller becomes its owner.
    ///
    /// # Errors
    /// `Api` 422 for a bad name.
    pub async fn create_workspace(&self, name: &str) -> Result<Workspace, ClientError> {
        let body = CreateWorkspaceRequest { name: name.to_owned() };
        self.call("POST /workspaces", self.post("/workspaces", &body)).await
    }

    /// `GET /workspaces`: the caller's workspaces.
    ///
    /// # Errors
    /// `Api` 401 without a valid access token.
    pub async fn list_workspaces(&self) -> Result<Page<Workspace>, ClientError> {
        self.call("GET /workspaces", self.get("/workspaces")).await
    }

    /// `GET /workspaces/:id`.
    ///
    /// # Errors
    /// `Api` 404 when it does not exist or the caller is not a member.
    pub async fn get_workspace(&self, workspace: Uuid) -> Result<Workspace, ClientError> {
        self.call("GET /workspaces/:id", self.get(&format!("/workspaces/{workspace}"))).await
    }

    /// `POST /workspaces/:id/members` (owners and admins).
    ///
    /// # Errors
    /// `Api` 403 for a plain member, 404 for an unknown user, 409 for an existing member.
    pub async fn add_workspace_member(
        &self,
        workspace: Uuid,
        body: &AddWorkspaceMemberRequest,
    ) -> Result<WorkspaceMember, ClientError> {
        self.call("POST /workspaces/:id/members", self.post(&format!("/workspaces/{workspace}/members"), body)).await
    }

    /// `GET /workspaces/:id/members`.
    ///
    /// # Errors
    /// `Api` 404 when the caller is not a member.
    pub async fn workspace_members(&self, workspace: Uuid) -> Result<Page<WorkspaceMember>, ClientError> {
        self.call("GET /workspaces/:id/members", self.get(&format!("/workspaces/{workspace}/members"))).await
    }

    /// `DELETE /workspaces/:id/members/:uid` (leave, or remove a weaker member).
    ///
    /// # Errors
    /// `Api` 403 when not allowed, 404 when not visible.
    pub async fn remove_workspace_member(&self, workspace: Uuid, user: Uuid) -> Result<(), ClientError> {
        self.call_empty(
            "DELETE /workspaces/:id/members/:uid",
            self.delete(&format!("/workspaces/{workspace}/members/{user}")),
        )
        .await
    }

    // ------------------------------------------------------------ conversations

    /// `POST /chat/conversations`: [`GetOrCreate::Created`] on 201, [`GetOrCreate::Existing`]
    /// when a DM or DOCUMENT chat already existed (200).
    ///
    /// # Errors
    /// `Api` 404 for a workspace the caller is not in, 422 for an invalid body.
    pub async fn create_conversation(
        &self,
        body: &CreateConversationRequest,
    ) -> Result<GetOrCreate<Conversation>, ClientError> {
        let (created, conversation) =
            self.call_created("POST /chat/conversations", self.post("/chat/conversations", body)).await?;
        Ok(if created { GetOrCreate::Created(conversation) } else { GetOrCreate::Existing(conversation) })
    }

    /// `GET /chat/conversations?workspaceId=`: the caller's conversations, each with
    /// `unreadCount` and `lastMessage`.
    ///
    /// # Errors
    /// `Api` 404 for a workspace the caller is not in.
    pub async fn list_conversations(&self, workspace: Uuid) -> Result<Page<Conversation>, ClientError> {
        let query = ListConversationsQuery { workspace_id: workspace };
        self.call("GET /chat/conversations", self.get("/chat/conversations").query(&query)).await
    }

    /// `GET /chat/conversations/:id`.
    ///
    /// # Errors
    /// `Api` 404 when it does not exist or is not visible to the caller.
    pub async fn get_conversation(&self, conversation: Uuid) -> Result<Conversation, ClientError> {
        self.call("GET /chat/conversations/:id", self.get(&format!("/chat/conversations/{conversation}"))).await
    }

    /// `PUT /chat/conversations/:id` (conversation admins): absent fields stay, `Some(None)`
    /// clears.
    ///
    /// # Errors
    /// `Api` 403 for non-admins, 409 when archived, 422 for bad values.
    pub async fn update_conversation(
        &self,
        conversation: Uuid,
        body: &UpdateConversationRequest,
    ) -> Result<Conversation, ClientError> {
        self.call("PUT /chat/conversations/:id", self.put(&format!("/chat/conversations/{conversation}"), body)).await
    }

    /// `DELETE /chat/conversations/:id`: archives it (conversation admins).
    ///
    /// # Errors
    /// `Api` 403 for non-admins, 404 when not visible.
    pub async fn archive_conversation(&self, conversation: Uuid) -> Result<(), ClientError> {
        self.call_empty("DELETE /chat/conversations/:id", self.delete(&format!("/chat/conversations/{conversation}")))
            .await
    }

    /// `GET /chat/conversations/:id/members`.
    ///
    /// # Errors
    /// `Api` 404 when not visible.
    pub async fn conversation_members(&self, conversation: Uuid) -> Result<Page<Member>, ClientError> {
        self.call(
            "GET /chat/conversations/:id/members",
            self.get(&format!("/chat/conversations/{conversation}/members")),
        )
        .await
    }

    /// `POST /chat/conversations/:id/members`: adds `user` (or joins a channel when `user` is
    /// the caller), with `role` `admin|moderator|member` (default `member`).
    ///
    /// # Errors
    /// `Api` 403 when not allowed, 409 for an existing member, 422 for a full conversation or
    /// a DM.
    pub async fn add_member(&self, conversation: Uuid, user: Uuid, role: Option<&str>) -> Result<Member, ClientError> {
        let body = AddMemberRequest { user_id: user, role: role.map(str::to_owned) };
        self.call(
            "POST /chat/conversations/:id/members",
            self.post(&format!("/chat/conversations/{conversation}/members"), &body),
        )
        .await
    }

    /// `DELETE /chat/conversations/:id/members/:uid` (leave, or remove someone).
    ///
    /// # Errors
    /// `Api` 403 when not allowed, 409 for the last admin leaving a populated conversation.
    pub async fn remove_member(&self, conversation: Uuid, user: Uuid) -> Result<(), ClientError> {
        self.call_empty(
            "DELETE /chat/conversations/:id/members/:uid",
            self.delete(&format!("/chat/conversations/{conversation}/members/{user}")),
        )
        .await
    }

    /// `PUT /chat/conversations/:id/members/:uid/role` (conversation admins).
    ///
    /// # Errors
    /// `Api` 403 when not allowed, 409 when the last admin would step down, 422 for a bad role.
    pub async fn set_member_role(&self, conversation: Uuid, user: Uuid, role: &str) -> Result<Member, ClientError> {
        let body = SetRoleRequest { role: role.to_owned() };
        self.call(
            "PUT /chat/conversations/:id/members/:uid/role",
            self.put(&format!("/chat/conversations/{conversation}/members/{user}/role"), &body),
        )
        .await
    }

    /// `POST /chat/conversations/:id/read`: moves the caller's watermark forward (by
    /// `messageId` or `seq`; everything with neither).
    ///
    /// # Errors
    /// `Api` 403 for non-members, 404 when not visible.
    pub async fn mark_read(&self, conversation: Uuid, body: &ReadRequest) -> Result<ReadResponse, ClientError> {
        self.call(
            "POST /chat/conversations/:id/read",
            self.post(&format!("/chat/conversations/{conversation}/read"), body),
        )
        .await
    }

    /// `GET /chat/workspaces/:id/unread-count`.
    ///
    /// # Errors
    /// `Api` 404 for a workspace the caller is not in.
    pub async fn unread_count(&self, workspace: Uuid) -> Result<UnreadCountResponse, ClientError> {
        self.call(
            "GET /chat/workspaces/:id/unread-count",
            self.get(&format!("/chat/workspaces/{workspace}/unread-count")),
        )
        .await
    }

    // ------------------------------------------------------------ messages

    /// `POST /chat/conversations/:id/messages`: [`Sent::New`] on 201, [`Sent::Replayed`]
    /// when this sender already sent this `clientMsgId` there (200, the original message).
    /// With a `clientMsgId`, retrying after a transport failure is safe.
    ///
    /// # Errors
    /// `Api` 403/404 for non-members, 409 when archived, 413 when too long, 422 for blank or
    /// invalid content, 429 `rate_limited` (see `retry_after`).
    pub async fn send_message(&self, conversation: Uuid, body: &SendMessageRequest) -> Result<Sent, ClientError> {
        let (created, message) = self
            .call_created(
                "POST /chat/conversations/:id/messages",
                self.post(&format!("/chat/conversations/{conversation}/messages"), body),
            )
            .await?;
        Ok(if created { Sent::New(message) } else { Sent::Replayed(message) })
    }

    /// [`Self::send_message`] of plain text, without an idempotency key.
    ///
    /// # Errors
    /// As [`Self::send_message`].
    pub async fn send_text(&self, conversation: Uuid, content: &str) -> Result<Message, ClientError> {
        let body = SendMessageRequest {
            content: content.to_owned(),
            kind: None,
            reply_to_id: None,
            client_msg_id: None,
            attachments: Vec::new(),
        };
        self.send_message(conversation, &body).await.map(Sent::into_message)
    }

    /// `GET /chat/conversations/:id/messages`: newest first (`before`, `offset`), or oldest
    /// first with `after`; `threadOf` lists a thread. `ListMessagesQuery::default()` is the
    /// newest 50.
    ///
    /// # Errors
    /// `Api` 404 when not visible, 422 for a bad query.
    pub async fn list_messages(
        &self,
        conversation: Uuid,
        query: &ListMessagesQuery,
    ) -> Result<Page<Message>, ClientError> {
        self.call(
            "GET /chat/conversations/:id/messages",
            self.get(&format!("/chat/conversations/{conversation}/messages")).query(query),
        )
        .await
    }

    /// `PUT /chat/messages/:id` (the author only).
    ///
    /// # Errors
    /// `Api` 403 for someone else's message, 409 once deleted, 413/422 for bad content.
    pub async fn edit_message(&self, message: Uuid, content: &str) -> Result<Message, ClientError> {
        let body = EditMessageRequest { content: content.to_owned() };
        self.call("PUT /chat/messages/:id", self.put(&format!("/chat/messages/{message}"), &body)).await
    }

    /// `DELETE /chat/messages/:id` (the author, moderators, admins); a soft delete.
    ///
    /// # Errors
    /// `Api` 403 when not allowed, 404 when not visible.
    pub async fn delete_message(&self, message: Uuid) -> Result<(), ClientError> {
        self.call_empty("DELETE /chat/messages/:id", self.delete(&format!("/chat/messages/{message}"))).await
    }

    /// `POST /chat/messages/:id/reactions`: toggles the caller's `emoji`; returns the message.
    ///
    /// # Errors
    /// `Api` 409 on a deleted message, 422 for a bad emoji.
    pub async fn react(&self, message: Uuid, emoji: &str) -> Result<Message, ClientError> {
        let body = ReactionRequest { emoji: emoji.to_owned() };
        self.call("POST /chat/messages/:id/reactions", self.post(&format!("/chat/messages/{message}/reactions"), &body))
            .await
    }

    // ------------------------------------------------------------ search

    /// `GET /chat/search`: messages of the caller's conversations (never end-to-end ones)
    /// containing every word of `query.q`, newest first. Follow `nextCursor` (as
    /// `query.cursor`) until it is `null`; a page may be shorter than `limit` before the end.
    ///
    /// # Errors
    /// `Api` 404 for a workspace or `conversationId` the caller cannot search, 422 for a query
    /// with no word, too long a query or a bad cursor.
    pub async fn search(&self, query: &SearchQuery) -> Result<Page<Message>, ClientError> {
        self.call("GET /chat/search", self.get("/chat/search").query(query)).await
    }

    // ------------------------------------------------------------ presence

    /// `PUT /chat/presence`: `online|away|busy|offline` in `workspace`.
    ///
    /// # Errors
    /// `Api` 404 for a workspace the caller is not in, 422 for a bad status.
    pub async fn set_presence(&self, workspace: Uuid, status: &str) -> Result<Presence, ClientError> {
        let body = PresenceRequest { status: status.to_owned(), workspace_id: workspace };
        self.call("PUT /chat/presence", self.put("/chat/presence", &body)).await
    }

    /// `GET /chat/presence/:workspaceId`: every member's presence.
    ///
    /// # Errors
    /// `Api` 404 for a workspace the caller is not in.
    pub async fn list_presence(&self, workspace: Uuid) -> Result<Page<Presence>, ClientError> {
        self.call("GET /chat/presence/:workspaceId", self.get(&format!("/chat/presence/{workspace}"))).await
    }

    // ------------------------------------------------------------ E2E key directory

    /// `PUT /keys/devices/:deviceId`: publish (create or replace) one of the caller's devices
    /// and append one-time prekeys. [`crate::e2e::Device::publish_request`] builds the body.
    ///
    /// # Errors
    /// `Api` 409 when the device id belongs to another user, 422 for a bad key or signature.
    pub async fn publish_device_keys(
        &self,
        device_id: &str,
        body: &PublishDeviceKeysRequest,
    ) -> Result<DeviceKeysBody, ClientError> {
        let path = format!("/keys/devices/{}", path_segment(device_id));
        self.call("PUT /keys/devices/:deviceId", self.put(&path, body)).await
    }

    /// `GET /keys/users/:userId`: the public keys of every device of a user the caller shares
    /// a workspace with (or their own).
    ///
    /// # Errors
    /// `Api` 404 for a user the caller shares no workspace with.
    pub async fn device_keys(&self, user: Uuid) -> Result<Page<DeviceKeysBody>, ClientError> {
        self.call("GET /keys/users/:userId", self.get(&format!("/keys/users/{user}"))).await
    }

    /// `POST /keys/users/:userId/claim`: one one-time prekey of each of the user's devices
    /// (handed out to this caller only), with their signed prekeys.
    ///
    /// # Errors
    /// `Api` 404 for a user the caller shares no workspace with, 429 past the claim budget.
    pub async fn claim_prekeys(&self, user: Uuid) -> Result<Page<ClaimedDeviceKeys>, ClientError> {
        let path = format!("/keys/users/{user}/claim");
        self.call("POST /keys/users/:userId/claim", self.request(Method::POST, &path)).await
    }

    // ------------------------------------------------------------ health

    /// `GET /healthz`: the process answers.
    ///
    /// # Errors
    /// Transport errors when it does not.
    pub async fn healthz(&self) -> Result<Health, ClientError> {
        self.call("GET /healthz", self.get("/healthz")).await
    }

    /// `GET /readyz`: `status` is `ok`, or `unavailable` (answered with 503) when a
    /// dependency is down.
    ///
    /// # Errors
    /// Transport errors, or an answer that is not a health body.
    pub async fn readyz(&self) -> Result<Health, ClientError> {
        let response = self.get("/readyz").send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        match status {
            StatusCode::OK | StatusCode::SERVICE_UNAVAILABLE => decode("GET /readyz", &body),
            other => Err(ClientError::from_response(other.as_u16(), None, &body)),
        }
    }

    /// `GET /metrics`: the OpenMetrics text exposition, as served.
    ///
    /// # Errors
    /// Transport errors, or a status other than 200.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let response = self.get("/metrics").send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status != StatusCode::OK {
            return Err(ClientError::from_response(status.as_u16(), None, &body));
        }
        Ok(String::from_utf8_lossy(&body).into_owned())
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so that any device id is
/// one path segment.
fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn decode<T: DeserializeOwned>(context: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::decode(context, e))
}
