//! # chat-client
//!
//! The typed Rust client of SecureRealTime Chat — *the* way a Rust service, a bot, the test
//! suites and the benchmark talk to the server: every REST route of SPEC.md §2 as a method of
//! [`ChatClient`], and the WebSocket API of §3 as [`Realtime`] (one connection) or
//! [`ResumingRealtime`] (reconnects, re-joins and resumes without losing or repeating a
//! message).
//!
//! **Layer.** A client: it depends on `chat-protocol`'s wire types (re-exported as
//! [`protocol`]), `reqwest` and `tokio-tungstenite`, never on actix or a server crate. Plain
//! `http://` and `ws://` for now.
//!
//! End-to-end encrypted DMs are [`e2e`]: device keys, the X3DH-style set-up, envelopes and
//! safety numbers (`docs/e2e.md`).
//!
//! **Where to start reading.** [`ChatClient`] (REST and sessions), [`RealtimeHandle`] (the
//! WebSocket requests), [`Push`] (what the server sends), [`ResumingRealtime`] (what happens
//! on a disconnect), [`ClientError`] (what can fail).
//!
//! **Rules.** Errors come back as [`ClientError::Api`] with SPEC.md's `status` and `code`
//! (or [`ClientError::Rejected`] for a WebSocket error frame, same codes). Nothing is retried
//! behind your back except what is idempotent by construction: a WebSocket `send_message`
//! with a `clientMsgId` on a [`ResumingRealtime`], and the reconnect itself.
//!
//! ```no_run
//! use chat_client::protocol::CreateConversationRequest;
//! use chat_client::{ChatClient, ClientError, Push};
//!
//! # async fn bot() -> Result<(), ClientError> {
//! // REST: sign in, find a workspace, open a channel.
//! let client = ChatClient::new("http://127.0.0.1:8080");
//! client.login("echo-bot@example.test", "correct horse battery").await?;
//! let me = client.me().await?;
//! let workspace = client.create_workspace("Bots").await?;
//! let channel = client
//!     .create_conversation(&CreateConversationRequest {
//!         kind: "CHANNEL".to_owned(),
//!         workspace_id: workspace.id,
//!         name: Some("echo".to_owned()),
//!         description: None,
//!         icon: None,
//!         member_ids: vec![],
//!         document_id: None,
//!         is_encrypted: false,
//!         max_participants: None,
//!     })
//!     .await?
//!     .into_inner();
//!
//! // WebSocket: follow the workspace and echo what others say, across reconnects.
//! let mut realtime = client.connect_resuming().await?;
//! realtime.join_workspace(workspace.id).await?;
//! while let Some(push) = realtime.next_push().await {
//!     if let Push::MessageNew(new) = push {
//!         if new.message.sender_id != me.id && new.conversation_id == channel.id {
//!             realtime.send_text(channel.id, &format!("echo: {}", new.message.content)).await?;
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod e2e;
mod error;
mod realtime;
mod rest;

pub use chat_protocol as protocol;

pub use crate::error::{ClientError, CloseInfo};
pub use crate::realtime::resume::{ConnectionState, ResumeOptions, ResumingHandle, ResumingRealtime};
pub use crate::realtime::{Push, Pushes, Realtime, RealtimeHandle, RealtimeOptions};
pub use crate::rest::{ChatClient, GetOrCreate, Sent};
