//! [`BenchError`]: what can stop a benchmark run.

/// Why a benchmark (or one of its phases) failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A system call or process failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A WebSocket failed.
    #[error("websocket: {0}")]
    Ws(#[from] tokio_tungstenite::tungstenite::Error),
    /// A REST call to our server failed.
    #[error("api: {0}")]
    Client(#[from] chat_client::ClientError),
    /// Anything else (a server that never became ready, a refused join…).
    #[error("{0}")]
    Setup(String),
}

impl BenchError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let context = context.into();
        move |source| Self::Io { context, source }
    }

    /// A setup failure.
    #[must_use]
    pub fn setup(message: impl Into<String>) -> Self {
        Self::Setup(message.into())
    }
}
