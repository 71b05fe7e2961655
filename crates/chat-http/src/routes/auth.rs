use actix_web::{HttpResponse, get, post, web};
use chat_domain::user::AuthSession;
use chat_protocol::{AuthResponse, LoginRequest, RefreshRequest, RegisterRequest, User};

use super::{created, ok};
use crate::AppState;
use crate::auth::Caller;
use crate::convert;
use crate::error::ApiResult;

fn session(s: &AuthSession) -> AuthResponse {
    AuthResponse {
        user: convert::user(&s.user),
        access_token: s.access.token.clone(),
        access_token_expires_at: s.access.expires_at,
        refresh_token: s.refresh.token.clone(),
    }
}

/// Create an account and sign in.
#[utoipa::path(tag = "auth", request_body = RegisterRequest,
    responses((status = 201, body = AuthResponse), (status = 409, description = "e-mail taken"), (status = 422)))]
#[post("/auth/register")]
pub(crate) async fn register(state: web::Data<AppState>, body: web::Json<RegisterRequest>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let s = state.chat.auth.register(&body.email, body.password, &body.display_name).await?;
    Ok(created(&session(&s)))
}

/// Sign in.
#[utoipa::path(tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = AuthResponse), (status = 401)))]
#[post("/auth/login")]
pub(crate) async fn login(state: web::Data<AppState>, body: web::Json<LoginRequest>) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let s = state.chat.auth.login(&body.email, body.password).await?;
    Ok(ok(&session(&s)))
}

/// Exchange a refresh token for a new pair (rotation; reuse revokes the session).
#[utoipa::path(tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = AuthResponse), (status = 401)))]
#[post("/auth/refresh")]
pub(crate) async fn refresh(state: web::Data<AppState>, body: web::Json<RefreshRequest>) -> ApiResult<HttpResponse> {
    let s = state.chat.auth.refresh(&body.refresh_token).await?;
    Ok(ok(&session(&s)))
}

/// The caller's account.
#[utoipa::path(tag = "auth", responses((status = 200, body = User), (status = 401)), security(("bearer" = [])))]
#[get("/auth/me")]
pub(crate) async fn me(state: web::Data<AppState>, caller: Caller) -> ApiResult<HttpResponse> {
    let user = state.chat.auth.me(caller.0).await?;
    Ok(ok(&convert::user(&user)))
}
