use actix_web::{HttpResponse, get, web};
use chat_protocol::Health;

use crate::AppState;

/// Liveness: the process serves requests.
#[utoipa::path(tag = "health", responses((status = 200, body = Health)))]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok".to_owned() })
}

/// Readiness: the store answers.
#[utoipa::path(tag = "health", responses((status = 200, body = Health), (status = 503, body = Health)))]
#[get("/readyz")]
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.readiness.ready().await {
        HttpResponse::Ok().json(Health { status: "ok".to_owned() })
    } else {
        HttpResponse::ServiceUnavailable().json(Health { status: "unavailable".to_owned() })
    }
}
