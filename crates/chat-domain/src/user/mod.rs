//! Accounts and sessions: registration, login, refresh-token rotation with reuse detection.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::AuthService;

#[cfg(test)]
mod tests;
