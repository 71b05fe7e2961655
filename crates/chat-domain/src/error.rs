//! Errors. Repositories report [`RepoError`] for infrastructure failures and typed outcomes
//! for expected conflicts; services report [`DomainError`], whose variants the delivery layer
//! maps one by one onto the wire's error codes.

use std::error::Error as StdError;

/// An infrastructure failure inside an adapter (connection lost, query failed, corrupt row).
/// Its source is logged by the delivery layer and never shown to clients.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct RepoError {
    context: &'static str,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl RepoError {
    /// Wraps a driver error with a short, static description of what was being done.
    pub fn new(context: &'static str, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self { context, source: Some(source.into()) }
    }

    /// A failure with no underlying error value (e.g. a row that fails an invariant).
    #[must_use]
    pub const fn msg(context: &'static str) -> Self {
        Self { context, source: None }
    }
}

/// The outcome of a use case that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Missing or invalid credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The thing does not exist *for this caller*: ids of other workspaces and of private
    /// conversations the caller cannot see end here too, so existence never leaks.
    #[error("not found")]
    NotFound,
    /// The caller can see the thing but their role does not allow the action.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A value failed validation.
    #[error("{field}: {message}")]
    Validation {
        /// The offending field, as named on the wire.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A value is longer than allowed.
    #[error("{field} is longer than {max}")]
    TooLarge {
        /// The offending field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// The action conflicts with the current state (archived conversation, duplicate member…).
    #[error("{0}")]
    Conflict(&'static str),
    /// Too many requests of this kind; try again after the given time.
    #[error("rate limited; retry after {retry_after:?}")]
    RateLimited {
        /// How long until a request would be allowed.
        retry_after: std::time::Duration,
    },
    /// Storage or crypto failed; the cause is kept for the logs.
    #[error("internal error")]
    Internal(#[source] Box<dyn StdError + Send + Sync>),
}

impl DomainError {
    /// A validation failure on `field`.
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Validation { field, message: message.into() }
    }
}

impl From<RepoError> for DomainError {
    fn from(err: RepoError) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Shorthand for service results.
pub type DomainResult<T> = Result<T, DomainError>;
