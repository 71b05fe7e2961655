//! The API suite: every scenario runs against a real server on port 0, once over a fresh
//! SQLite file and once over a fresh PostgreSQL database (skipped only when PostgreSQL is not
//! reachable and `CHAT_REQUIRE_SERVICES` is not `1`; CI sets it).

mod helpers;
mod ws;

mod admin;
mod at_rest;
mod attachments;
mod attacks;
mod audit;
mod auth;
mod conversations;
mod files;
mod hardening;
mod isolation;
mod keys;
mod matrix;
mod messages;
mod metrics;
mod operations;
mod processes;
mod realtime;
mod search;
