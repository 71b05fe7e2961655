//! [`ClientError`]: everything a call can fail with, REST or WebSocket.

use std::fmt;
use std::time::Duration;

use chat_protocol::ErrorBody;
use tokio_tungstenite::tungstenite;

/// Why a call failed.
///
/// Match on `Api { status, code, .. }` for the server's answers (SPEC.md §2 codes such as
/// `not_found`, `conflict`, `validation_failed`) and on `Rejected { code, .. }` for a WebSocket
/// `error` frame (the same codes).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error body `{"error": {code, message, requestId}}`.
    #[error("{status} {code}: {message} (request {request_id})")]
    Api {
        /// HTTP status (401, 404, 409, 422, 429 …).
        status: u16,
        /// SPEC.md's code (`unauthorized`, `not_found`, `conflict`, `validation_failed` …).
        code: String,
        /// The server's explanation.
        message: String,
        /// The request's id, to find it in the server's log.
        request_id: String,
        /// `Retry-After`, when the server sent one (429).
        retry_after: Option<Duration>,
    },
    /// The server answered with a status this client did not expect, or an error without
    /// SPEC.md's body (a proxy's error page, say).
    #[error("unexpected response {status}: {body}")]
    UnexpectedResponse {
        /// HTTP status.
        status: u16,
        /// The start of the body, lossily decoded.
        body: String,
    },
    /// The WebSocket server answered a request with an `error` frame.
    #[error("{event} rejected: {code}: {message}")]
    Rejected {
        /// The event that was refused.
        event: String,
        /// SPEC.md's code (`forbidden`, `not_found`, `rate_limited` …).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The HTTP request could not be sent or its answer not read.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// The WebSocket could not be opened, or failed while open.
    #[error("websocket: {0}")]
    WebSocket(#[source] Box<tungstenite::Error>),
    /// A body or frame did not have the expected shape.
    #[error("decoding {context}: {source}")]
    Decode {
        /// What was being decoded (`GET /auth/me`, `ack of send_message` …).
        context: String,
        /// Why it failed.
        #[source]
        source: serde_json::Error,
    },
    /// No ack or error frame arrived in time for a WebSocket request.
    #[error("no answer to {event} within {after:?}")]
    Timeout {
        /// The event.
        event: String,
        /// The time waited.
        after: Duration,
    },
    /// The WebSocket connection is closed (the request may or may not have been processed).
    #[error("connection closed: {0}")]
    Closed(CloseInfo),
    /// `refresh()` was called on a client that holds no refresh token.
    #[error("no refresh token: register or log in first")]
    NoRefreshToken,
}

impl ClientError {
    /// SPEC.md's error code, for [`ClientError::Api`] and [`ClientError::Rejected`].
    #[must_use]
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } | Self::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, for [`ClientError::Api`] and [`ClientError::UnexpectedResponse`].
    #[must_use]
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::UnexpectedResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the call's fate is unknown because the connection failed under it (closed,
    /// timed out, transport error): only an idempotent call (a send with a `clientMsgId`)
    /// should be retried on it.
    #[must_use]
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, Self::Closed(_) | Self::Timeout { .. } | Self::Transport(_) | Self::WebSocket(_))
    }

    pub(crate) fn decode(context: impl Into<String>, source: serde_json::Error) -> Self {
        Self::Decode { context: context.into(), source }
    }

    /// An error answer: SPEC.md's body when it parses, [`ClientError::UnexpectedResponse`]
    /// otherwise.
    pub(crate) fn from_response(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(ErrorBody { error }) => Self::Api {
                status,
                code: error.code,
                message: error.message,
                request_id: error.request_id,
                retry_after,
            },
            Err(_) => Self::UnexpectedResponse { status, body: excerpt(body) },
        }
    }
}

impl From<tungstenite::Error> for ClientError {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            // The upgrade was refused with an HTTP answer (401 for a bad token …).
            tungstenite::Error::Http(response) => {
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                Self::from_response(response.status().as_u16(), retry_after, response.body().as_deref().unwrap_or(&[]))
            }
            other => Self::WebSocket(Box::new(other)),
        }
    }
}

fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    if body.len() > MAX { format!("{text}…") } else { text }
}

/// How a WebSocket connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseInfo {
    /// The close code (1000 normal, 1001 going away, 1008 policy, 1013 try again later …);
    /// `None` when the connection dropped without a close frame.
    pub code: Option<u16>,
    /// The close reason, or what failed.
    pub reason: String,
}

impl fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "code {code}")?,
            None => f.write_str("no close frame")?,
        }
        if !self.reason.is_empty() {
            write!(f, " ({})", self.reason)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_decodes_to_api() {
        let body = br#"{"error":{"code":"not_found","message":"no such conversation","requestId":"r-1"}}"#;
        let error = ClientError::from_response(404, None, body);
        assert!(
            matches!(&error, ClientError::Api { status: 404, code, request_id, .. } if code == "not_found" && request_id == "r-1"),
            "{error:?}"
        );
        assert_eq!(error.code(), Some("not_found"));
        assert_eq!(error.status(), Some(404));
    }

    #[test]
    fn a_body_without_the_error_shape_is_an_unexpected_response() {
        let error = ClientError::from_response(502, None, b"<html>bad gateway</html>");
        assert!(
            matches!(&error, ClientError::UnexpectedResponse { status: 502, body } if body.contains("bad gateway"))
        );
        assert_eq!(error.code(), None);
    }

    #[test]
    fn a_refused_upgrade_decodes_its_error_body() {
        let response = tungstenite::http::Response::builder()
            .status(401)
            .header("retry-after", "3")
            .body(Some(br#"{"error":{"code":"unauthorized","message":"bad token","requestId":"x"}}"#.to_vec()))
            .expect("response");
        let error = ClientError::from(tungstenite::Error::Http(Box::new(response)));
        assert!(
            matches!(&error, ClientError::Api { status: 401, code, retry_after: Some(d), .. } if code == "unauthorized" && d.as_secs() == 3),
            "{error:?}"
        );
    }
}
