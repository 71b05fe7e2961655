//! # chat-http
//!
//! The delivery layer: SecureRealTime Chat's REST API on actix-web, and the WebSocket gateway
//! ([`gateway`], tokio-tungstenite on the upgraded connection). Handlers parse wire types from
//! `chat-protocol`, call one `chat-domain`
//! service, and map the result — including every error, in [`error`] — onto SPEC.md's shapes
//! and codes. No business rule lives here.
//!
//! **Layer.** Outer: depends on the domain and the protocol crate, never on a store or a
//! crypto adapter (those arrive as trait objects inside [`chat_domain::Chat`]).
//!
//! **Where to start reading.** [`app`] assembles middleware and routes; [`serve`] runs them,
//! with WebSocket upgrades taken over by [`gateway`]; [`routes`] holds one module per
//! resource; [`auth::Caller`] is the bearer-token extractor.

#![forbid(unsafe_code)]

use std::net::TcpListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{HttpServiceFactory, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{Condition, DefaultHeaders, from_fn};
use actix_web::{App, HttpResponse, web};
use async_trait::async_trait;
use chat_domain::Chat;
use utoipa::OpenApi;
use utoipa_actix_web::{AppExt, OpenApiFactory, UtoipaApp};

pub mod audit;
pub mod auth;
mod convert;
pub mod error;
pub mod gateway;
pub mod metrics;
pub mod realtime;
pub mod request_id;
mod routes;
pub mod sanitize;
mod socket_stream;

/// Whether the service's dependencies answer (for `/readyz`).
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `true` when the store (and later Redis) answers.
    async fn ready(&self) -> bool;
}

/// What every handler can reach.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct AppState {
    /// The domain services.
    pub chat: Chat,
    /// Readiness probe.
    pub readiness: Arc<dyn Readiness>,
    /// Live delivery (the same value is the services' event publisher).
    pub realtime: realtime::Realtime,
    /// Rate limits the gateway applies itself (connections per IP).
    pub limiter: Arc<dyn chat_domain::realtime::RateLimiter>,
    /// Gateway settings.
    pub gateway: gateway::GatewaySettings,
    /// The process's metrics (`GET /metrics`).
    pub metrics: Arc<metrics::Metrics>,
}

/// HTTP-level settings.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// Largest JSON body accepted, in bytes (checked before reading it).
    pub json_limit: usize,
    /// Worker threads (0 = one per core).
    pub workers: usize,
    /// How long in-flight requests get to finish on shutdown.
    pub shutdown_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        // A 64 KiB E2E envelope, JSON-escaped inside a JSON string, fits in 160 KiB.
        Self { json_limit: 160 * 1024, workers: 0, shutdown_timeout: Duration::from_secs(10) }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "SecureRealTime Chat API", description = "See docs/api.md; errors are {\"error\": {code, message, requestId}}."),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// What [`with_routes`] registers into: a worker's router ([`App`]), or the collector of the
/// OpenAPI document ([`UtoipaApp`]). Workers register on the plain router, so none of them
/// builds the document; it is made once per process, on the first `/openapi.json`.
trait Routes: Sized {
    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(self, factory: F) -> Self;
}

impl<T> Routes for App<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(self, factory: F) -> Self {
        App::service(self, factory)
    }
}

impl<T> Routes for UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(self, factory: F) -> Self {
        UtoipaApp::service(self, factory)
    }
}

/// Every route, registered once: the router and the OpenAPI document come from this list.
fn with_routes<R: Routes>(app: R) -> R {
    use routes::{auth, conversations, health, messages, presence, workspaces};
    app.service(health::healthz)
        .service(health::readyz)
        .service(auth::register)
        .service(auth::login)
        .service(auth::refresh)
        .service(auth::me)
        .service(workspaces::create)
        .service(workspaces::list)
        .service(workspaces::get)
        .service(workspaces::add_member)
        .service(workspaces::members)
        .service(workspaces::remove_member)
        .service(routes::audit::list)
        .service(conversations::create)
        .service(conversations::list)
        .service(conversations::get)
        .service(conversations::update)
        .service(conversations::archive)
        .service(conversations::members)
        .service(conversations::add_member)
        .service(conversations::add_participant)
        .service(conversations::remove_member)
        .service(conversations::set_role)
        .service(conversations::mark_read)
        .service(conversations::unread_count)
        .service(messages::send)
        .service(messages::list)
        .service(messages::edit_put)
        .service(messages::edit_patch)
        .service(messages::remove)
        .service(messages::react)
        .service(routes::search::search)
        .service(routes::keys::publish)
        .service(routes::keys::list)
        .service(routes::keys::claim)
        .service(presence::set)
        .service(presence::list)
        .service(routes::files::upload)
        .service(routes::files::download)
}

/// The OpenAPI document, generated from the registered routes.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_routes(App::new().into_utoipa_app().openapi(ApiDoc::openapi())).split_for_parts().1
}

/// `GET /openapi.json`: the document, generated and serialised once per process (every
/// worker serves the same bytes).
async fn openapi_json() -> HttpResponse {
    static JSON: OnceLock<actix_web::web::Bytes> = OnceLock::new();
    let body = JSON.get_or_init(|| serde_json::to_vec(&openapi()).unwrap_or_default().into());
    HttpResponse::Ok().content_type(actix_web::http::header::ContentType::json()).body(body.clone())
}

async fn not_found() -> HttpResponse {
    error::error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

/// CORS for `CORS_ORIGIN` (`GatewaySettings::cors_origin`): that one origin, no credentials
/// (the API authenticates with bearer tokens, never cookies), the methods and request headers
/// the API uses, preflights answered and cached for 10 minutes. Without an origin the
/// middleware is not installed at all: no CORS headers, so browsers allow same-origin only.
fn cors(origin: Option<&str>) -> actix_cors::Cors {
    use actix_web::http::header;
    let Some(origin) = origin else { return actix_cors::Cors::default() };
    actix_cors::Cors::default()
        .allowed_origin(origin)
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT, request_id::HEADER])
        .expose_headers([request_id::HEADER, header::RETRY_AFTER, header::CONTENT_DISPOSITION])
        .max_age(600)
}

/// The application: middleware, body limits, error shapes, routes, `/openapi.json` and
/// `/metrics`.
/// `json_limit` caps request bodies (see [`HttpSettings::json_limit`]).
pub fn app(
    state: web::Data<AppState>,
    json_limit: usize,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let app = with_routes(App::new());
    let cors_origin = state.gateway.cors_origin.clone();
    app.app_data(state)
        .app_data(web::JsonConfig::default().limit(json_limit).error_handler(error::json_error))
        .app_data(web::PayloadConfig::default().limit(json_limit))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PathConfig::default().error_handler(error::path_error))
        .service(gateway::upgrade)
        .route("/openapi.json", web::get().to(openapi_json))
        .route("/metrics", web::get().to(metrics::scrape))
        .default_service(web::to(not_found))
        .wrap(Condition::new(cors_origin.is_some(), cors(cors_origin.as_deref())))
        .wrap(
            // A JSON API: nothing it serves may run script, load anything, or be framed.
            // `Strict-Transport-Security` belongs to the TLS terminator (docs/security.md).
            DefaultHeaders::new()
                .add(("X-Content-Type-Options", "nosniff"))
                .add(("Cache-Control", "no-store"))
                .add(("Referrer-Policy", "no-referrer"))
                .add(("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"))
                .add(("X-Frame-Options", "DENY")),
        )
        .wrap(from_fn(request_id::middleware))
}

/// Binds the application to `listener` and returns the running server (not yet awaited).
///
/// The server is actix-web's `HttpServer` taken apart (its settings and graceful shutdown are
/// the same) for one addition: the upgrade service of actix-http, through which every request
/// asking for a WebSocket upgrade is answered (`gateway::serve_upgrade`), so that an open
/// socket does not keep the HTTP connection's buffers.
///
/// # Errors
/// When the listener cannot be used.
pub fn serve(
    state: AppState,
    listener: TcpListener,
    settings: HttpSettings,
) -> std::io::Result<actix_web::dev::Server> {
    use std::rc::Rc;

    use actix_http::{HttpService, KeepAlive};
    use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_factory, fn_service, map_config};
    use actix_web::dev::AppConfig;

    let state = web::Data::new(state);
    let workers = if settings.workers == 0 {
        std::thread::available_parallelism().map_or(2, usize::from)
    } else {
        settings.workers
    };
    let json_limit = settings.json_limit;
    let addr = listener.local_addr()?;
    let builder = actix_server::Server::build();
    let shutdown = builder.graceful_shutdown_signal();
    let server = builder
        .workers(workers)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        // The caller owns signal handling: sockets are closed (1001) before the server stops.
        .disable_signals()
        .listen("chat-http", listener, move || {
            let shutdown = shutdown.clone();
            // Each worker's upgrade service runs requests through an instance of the
            // application of its own. Nothing reads the `AppConfig`'s host or address (no URL
            // generation, no `ConnectionInfo`), so its defaults do.
            let upgrade = {
                let state = state.clone();
                fn_factory(move || {
                    let app = app(state.clone(), json_limit).into_factory().new_service(AppConfig::default());
                    async move {
                        let app = Rc::new(app.await?);
                        Ok::<_, ()>(fn_service(move |upgrade| gateway::serve_upgrade(Rc::clone(&app), upgrade)))
                    }
                })
            };
            let service = app(state.clone(), json_limit).into_factory().map_err(|e| e.error_response());
            // `HttpServer`'s defaults.
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = shutdown.clone();
                    async move { signal.notified().await }
                })
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                .h1_allow_half_closed(true)
                .local_addr(addr)
                .upgrade(upgrade)
                .finish(map_config(service, |()| AppConfig::default()))
                .tcp()
        })?
        .run();
    Ok(server)
}
