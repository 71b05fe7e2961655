//! Route handlers, one module per resource. Each handler parses the wire body, calls one
//! domain service, and converts the result; it holds no business rule of its own.

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod conversations;
pub(crate) mod files;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod messages;
pub(crate) mod presence;
pub(crate) mod search;
pub(crate) mod workspaces;

use actix_web::HttpResponse;
use serde::Serialize;

pub(crate) fn created<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Created().json(body)
}

pub(crate) fn ok<T: Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok().json(body)
}
