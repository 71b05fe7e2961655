//! Request ids and the access log. Every request gets an id (a sane incoming `x-request-id`
//! is kept, otherwise a fresh one), carried in a task-local so that error bodies can quote it,
//! in the tracing span of everything the request does, and in the `x-request-id` header.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use tracing::Instrument;

use crate::AppState;
use crate::metrics::method_label;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// `x-request-id`.
pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served (empty outside a request).
#[must_use]
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

fn incoming(req: &ServiceRequest) -> Option<String> {
    let value = req.headers().get(&HEADER)?.to_str().ok()?;
    let sane = !value.is_empty()
        && value.len() <= 64
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    sane.then(|| value.to_owned())
}

/// Middleware: assigns the id, opens the span, logs one line per request (method, route
/// pattern, status, latency — never bodies, queries or headers, which may hold secrets) and
/// records it in the HTTP metrics.
///
/// # Errors
/// Whatever the inner service returns.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = incoming(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let method = req.method().clone();
    let route = req.match_pattern().unwrap_or_else(|| "<unmatched>".to_owned());
    let span = tracing::info_span!("request", request_id = %id, %method, %route);
    let metrics = req.app_data::<web::Data<AppState>>().map(|state| Arc::clone(&state.metrics));
    // The TCP peer, for the audit log (`crate::audit`); never logged here.
    let ip = req.peer_addr().map(|a| a.ip().to_string());
    let started = Instant::now();
    let result = REQUEST_ID.scope(id.clone(), crate::audit::scope(ip, next.call(req))).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let _enter = span.enter();
    let status = match &result {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    if let Some(metrics) = metrics {
        metrics.http_request(method_label(&method), route, status.as_u16(), elapsed);
    }
    match result {
        Ok(mut res) => {
            tracing::info!(status = status.as_u16(), latency_us = elapsed.as_micros() as u64, "served");
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HEADER, value);
            }
            Ok(res)
        }
        Err(err) => {
            tracing::warn!(error = %err, "request failed before a response");
            Err(err)
        }
    }
}
