//! The `docs` function: the OpenAPI 3.1 document of the whole API at `GET /openapi.json`, and
//! Swagger UI at `GET /docs`, whose "Authorize" logs in through the OAuth2 password flow.
//!
//! The document is generated from the types and handlers every function runs (the catalog joins
//! each function's part: `cargo run -p catalog --bin generate` writes it to `openapi.json`), and
//! built into this binary as that file, which a test proves current. So this function needs none
//! of the other functions' code: it starts as fast as a hello-world and stays small.
//!
//! Swagger UI's assets are built into the binary (utoipa-swagger-ui's `vendored` feature, which
//! packages the swagger-ui-dist release as a crate): `/docs` works with no internet access, from
//! a browser that cannot reach a CDN, and the build needs none either.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use shared::{ApiError, AppState};
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

/// This function's part of the OpenAPI document: none. Its pages are not API operations, as
/// FastAPI leaves `/docs` and `/openapi.json` out of its document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    utoipa::openapi::OpenApi::default()
}

/// The sample event (`events/get-openapi_json.json`) that stands for this function where one
/// request must: the bench's cold starts.
pub const PROBE: &str = "get-openapi_json";

pub fn router(state: AppState) -> Router {
    let config = swagger_config();
    let index = Bytes::from(index_html(&config));
    let routes = Router::new()
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
