//! # chat-bench
//!
//! Load generator and baselines for SecureRealTime Chat (`docs/benchmarks.md`): it starts the
//! servers under test as child processes, provisions users, workspaces and conversations
//! through `chat-client`, drives the scenarios of issue 5 with lean WebSocket connections, and
//! writes a table, JSON and SVG charts.
//!
//! **Layer.** A tool, outside the product: it may depend on anything in the workspace. The
//! server is measured as a black box (a process, its sockets and `/proc`); only [`naive`]
//! links the PostgreSQL store, to compare write paths below the API.
//!
//! **Where to start reading.** [`scenarios`] (what each phase does), then [`conn`] (the load
//! generating connections) and [`wire`] (what they send and parse); [`stats`] and [`report`]
//! turn counters into figures and verdicts; [`server`] starts and samples processes.

#![forbid(unsafe_code)]

pub mod bare;
pub mod charts;
pub mod conn;
pub mod error;
pub mod naive;
pub mod procfs;
pub mod profile;
pub mod provision;
pub mod report;
pub mod scenarios;
pub mod server;
pub mod stats;
pub mod wire;

pub use error::BenchError;
