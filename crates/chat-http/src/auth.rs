//! The bearer-token extractor: a handler that takes [`Caller`] only runs for a verified user.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use chat_domain::ids::UserId;

use crate::AppState;
use crate::error::ApiError;

/// The authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub UserId);

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return ready(Err(ApiError::unauthorized()));
        };
        let result = bearer(req)
            .ok_or_else(ApiError::unauthorized)
            .and_then(|token| state.chat.auth.authenticate(token).map_err(ApiError::from))
            .map(Caller);
        ready(result)
    }
}
