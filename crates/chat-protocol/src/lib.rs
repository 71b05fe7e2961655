//! # chat-protocol
//!
//! The wire types of SecureRealTime Chat, exactly as SPEC.md names them: REST request and
//! response bodies (camelCase JSON) and, with the real-time gateway, WebSocket frames.
//!
//! **Layer.** Shared vocabulary between the server's delivery crate (`chat-http`) and clients
//! (`chat-client`, bots, other Rust services). It depends on serde only (plus `utoipa` behind
//! the `openapi` feature, for the server's generated OpenAPI document), never on actix or a
//! store, so a client can use it without pulling in the server.
//!
//! **Conventions.** Requests reject unknown fields. A single resource is returned bare; a list
//! is [`Page`]. Errors are [`ErrorBody`].

#![forbid(unsafe_code)]

pub mod rest;
pub mod ws;

pub use rest::*;
