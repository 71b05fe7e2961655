//! The one place where domain outcomes become HTTP: every [`DomainError`] variant maps
//! explicitly to a status and one of SPEC.md's error codes. 5xx answers log their cause chain
//! and tell the client nothing internal.

use std::error::Error as StdError;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use chat_domain::error::DomainError;
use chat_protocol::{ErrorBody, ErrorDetail};

use crate::request_id;

/// An error answer: status, SPEC code, message, and (for 5xx) the cause kept for the logs.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    retry_after: Option<std::time::Duration>,
    cause: Option<Box<dyn StdError + Send + Sync>>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into(), retry_after: None, cause: None }
    }

    /// The client-facing message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401 `unauthorized`.
    #[must_use]
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication required")
    }

    /// 404 `not_found`.
    #[must_use]
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    /// 413 `payload_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, message)
    }

    /// 422 `validation_failed`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// The SPEC.md code for a status.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self.status {
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::UNPROCESSABLE_ENTITY => "validation_failed",
            StatusCode::TOO_MANY_REQUESTS => "rate_limited",
            _ => "internal",
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Unauthorized => Self::unauthorized(),
            DomainError::NotFound => Self::not_found(),
            DomainError::Forbidden(why) => Self::new(StatusCode::FORBIDDEN, why),
            DomainError::Validation { field, message } => Self::invalid(format!("{field}: {message}")),
            DomainError::TooLarge { field, max } => Self::too_large(format!("{field} is longer than {max}")),
            DomainError::Conflict(why) => Self::new(StatusCode::CONFLICT, why),
            DomainError::RateLimited { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("rate limited; retry after {} s", retry_after.as_secs_f64().ceil()),
                )
            },
            DomainError::Internal(cause) => {
                Self { cause: Some(cause), ..Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error") }
            }
        }
    }
}

/// The `{"error": …}` response for a status and message, with the current request id.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorDetail { code: code.to_owned(), message: message.to_owned(), request_id: request_id::current() },
    })
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        if self.status.is_server_error() {
            let mut chain = String::new();
            let mut source = self.cause.as_deref().map(|e| e as &(dyn StdError + 'static));
            while let Some(err) = source {
                chain.push_str(": ");
                chain.push_str(&err.to_string());
                source = err.source();
            }
            tracing::error!(cause = %chain, "request failed");
        }
        let mut res = error_response(self.status, self.code(), &self.message);
        if let Some(retry_after) = self.retry_after {
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            res.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from(seconds.max(1)),
            );
        }
        res
    }
}

/// Malformed JSON and unknown fields are 400; well-formed JSON of the wrong shape (missing or
/// mistyped fields) is 422; an oversize body is 413 (checked before it is read).
pub(crate) fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    let api = match &err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::too_large("request body is too large"),
        E::ContentType => ApiError::bad_request("expected Content-Type: application/json"),
        E::Deserialize(e) if e.classify() == serde_json::error::Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("unknown field") { ApiError::bad_request(msg) } else { ApiError::invalid(msg) }
        }
        E::Deserialize(e) => ApiError::bad_request(format!("malformed JSON: {e}")),
        _ => ApiError::bad_request("could not read the request body"),
    };
    api.into()
}

/// A malformed query string is 422.
pub(crate) fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid(format!("query: {err}")).into()
}

/// A path segment that is not a valid id names nothing: 404.
pub(crate) fn path_error(_err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::not_found().into()
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;
