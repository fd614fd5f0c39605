//! The `docs` function: the OpenAPI 3.1 document of the whole API at `GET /openapi.json`,
//! Swagger UI at `GET /docs`, whose "Authorize" logs in through the OAuth2 password flow, and
//! `GET /v1/health` for uptime checks and canaries: the only route that reads the table, one
//! `GetItem` of a fixed key, the function's one table permission.
//!
//! The document is generated from the types and handlers every function runs (the catalog joins
//! each function's part: `cargo run -p catalog --bin generate` writes it to `openapi.json`), and
//! built into this binary as that file, which a test proves current. So this function needs none
//! of the other functions' code, and stays small.
//!
//! Swagger UI's assets are built into the binary (utoipa-swagger-ui's `vendored` feature, which
//! packages the swagger-ui-dist release as a crate): `/docs` works with no internet access, from
//! a browser that cannot reach a CDN, and the build needs none either.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use shared::error::ErrorDetail;
use shared::repo::RepoError;
use shared::{ApiError, AppState};
use utoipa::ToSchema;
use utoipa_swagger_ui::Config;

/// The whole API's document, as `openapi.json` holds it.
pub const DOCUMENT: &str = include_str!("../../../openapi.json");

/// Swagger UI, configured for this API's document.
fn swagger_config() -> Arc<Config<'static>> {
    // No validator: Swagger UI would send the document's URL to validator.swagger.io from any host
    // but localhost, which needs the internet and tells a third party where the API is.
    Arc::new(
        Config::new(["/openapi.json"])
            .persist_authorization(false)
            .try_it_out_enabled(true)
            .validator_url("none"),
    )
}

/// One Swagger UI file, as `utoipa_swagger_ui::serve` gives it.
fn file(path: &str, config: &Arc<Config<'static>>) -> Option<(String, Vec<u8>)> {
    match utoipa_swagger_ui::serve(path, config.clone()) {
        Ok(Some(file)) => Some((file.content_type, file.bytes.into_owned())),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error.cause = %e, path, "Swagger UI file");
            None
        }
    }
}

/// Swagger UI's `index.html` with its assets under `/docs/`: the page is served at `/docs`
/// itself (no redirect to `/docs/`, a path API Gateway's `/docs/{proxy+}` route does not match).
fn index_html(config: &Arc<Config<'static>>) -> Vec<u8> {
    let (_, bytes) = file("index.html", config).unwrap_or_default();
    String::from_utf8_lossy(&bytes)
        .replace("\"./", "\"/docs/")
        .replace("href=\"index.css\"", "href=\"/docs/index.css\"")
        .into_bytes()
}

/// What `GET /v1/health` says: only ever `ok` (anything else is a 503).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// `GET /v1/health`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
}

/// Whether the API can reach its table: one read of a key never written, one attempt of at most
/// a second. Any fault of that read (unreachable, throttled, refused, no such table) is a 503
/// whose body says nothing of the deployment; neither answer may be cached.
#[utoipa::path(
    get, path = "/v1/health", tag = "health", operation_id = "get_health",
    responses(
        (status = 200, description = "The API can reach its table", body = Health,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 503, description = "The API cannot reach its table (down, throttled, refused): try again after `Retry-After`", body = ErrorDetail,
            headers(
                ("Cache-Control" = String, description = "no-store"),
                ("Retry-After" = i64, description = "Seconds to wait before checking again"),
            )),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let mut answer = match state.repos.health.reachable().await {
        Ok(()) => axum::Json(Health { status: HealthStatus::Ok }).into_response(),
        Err(e) => {
            // A fault that will not pass by itself (a policy, a table name) is an error to fix,
            // not a blip: logged as one, though the answer is the same 503.
            if !matches!(e, RepoError::Unavailable(_)) {
                tracing::error!(error.cause = %e, "the health check cannot read the table");
            }
            ApiError::Unavailable(format!("health: {e}")).into_response()
        }
    };
    answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(health),
    tags((name = "health", description = "Whether the API can reach its table: for uptime checks and canaries"))
)]
struct Api;

/// This function's part of the OpenAPI document: the health check. Its pages are not API
/// operations, as FastAPI leaves `/docs` and `/openapi.json` out of its document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Api as utoipa::OpenApi>::openapi()
}

/// The sample event (`events/get-openapi_json.json`) that stands for this function where one
/// request must: the bench's cold starts.
pub const PROBE: &str = "get-openapi_json";

pub fn router(state: AppState) -> Router {
    let config = swagger_config();
    let index = Bytes::from(index_html(&config));
    let routes = Router::new()
        .route("/v1/health", get(health))
        .route("/openapi.json", get(|| async { ([(header::CONTENT_TYPE, "application/json")], DOCUMENT) }))
        .route(
            "/docs",
            get(move || async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], index) }),
        )
        .route(
            "/docs/{*file}",
            get(move |Path(path): Path<String>| async move {
                match file(&path, &config) {
                    Some((content_type, bytes)) => {
                        ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
                    }
                    None => ApiError::NotFound("Not Found").into_response(),
                }
            }),
        );
    shared::web::finish(routes, state)
}
