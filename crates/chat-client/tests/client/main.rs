//! The client against a real server (REST, and the WebSocket gateway when it answers) and
//! against a scripted WebSocket peer (frame encoding, ack routing, close codes, resume).

mod e2e;
mod fake;
mod gateway;
mod helpers;
mod protocol;
mod proxy;
mod rest;
mod resume;
