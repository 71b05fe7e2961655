//! Workspaces: the tenant boundary, with owner/admin/member/guest roles.

mod model;
mod ports;
mod service;

pub use model::*;
pub use ports::*;
pub use service::{MemberRef, WorkspaceService};

#[cfg(test)]
mod tests;
