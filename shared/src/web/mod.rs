//! What every function's router shares: typed extractors whose rejections use the API's own
//! error format ([`extract`], [`auth`]: `CurrentUser`, `SuperUser`), listings a page at a time
//! ([`paging`]), the handlers' side of user-owned resources ([`resources`]), and [`finish`],
//! which wraps a router with the contract's cross-cutting behaviour (JSON 404/405,
//! `x-request-id`, panics as 500, one log line a request).

pub mod address;
pub mod auth;
pub mod deadline;
pub mod extract;
pub mod idempotency;
pub mod paging;
pub mod resources;
pub mod throttle;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;

use crate::deps::Clock;
use crate::error::ApiError;
use crate::metrics::{Counted, Event, Metrics, RequestRecord};
use crate::state::AppState;

pub use address::SourceAddress;
pub use auth::{CurrentUser, SuperUser, TokenSubject, current_user};
pub use extract::{Form, IfMatch, Json, Param, UserId};
pub use paging::{Page, PageQuery, ResourceQuery};

/// `202 {"detail": "..."}`: a request for mail, taken. The message (if any) is sent after the
/// answer, so the answer says nothing of whether one is.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// What happens next, for a human.
    pub detail: &'static str,
}

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        (StatusCode::ACCEPTED, axum::Json(self)).into_response()
    }
}

/// Bodies above this are refused with 413 before they are parsed.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Finishes a function's router: state, fallback, and the layers every response goes through.
///
/// The request-level middleware wraps the *whole* router (as its fallback service), not each
/// route: axum adds `Allow` to a 405 outside per-route layers, and the 405 body must keep it.
pub fn finish(router: Router<AppState>, state: AppState) -> Router {
    let recorder = Arc::new(Recorder { metrics: state.metrics.clone(), clock: state.clock.clone() });
    let inner = router.fallback(not_found).layer(middleware::from_fn(record_route)).with_state(state);
    // Layers wrap outwards: the panic catcher sits inside the request context, so a panic's 500
    // still gets its `x-request-id` and its access-log line.
    let catch_panic = CatchPanicLayer::custom(|_panic: Box<dyn std::any::Any + Send>| {
        // The panic payload may hold request data: it is not logged.
        ApiError::Internal("handler panicked".into()).into_response()
    });
    Router::new()
        .fallback_service(inner)
        .layer(catch_panic)
        .layer(middleware::from_fn_with_state(recorder, request_context))
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, axum::Json(serde_json::json!({ "detail": "Not Found" }))).into_response()
}

/// The route template that matched, carried out to [`request_context`] for the log line.
#[derive(Debug, Clone)]
struct Route(MatchedPath);

async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(Route(route));
    }
    response
}

/// What [`request_context`] needs of the state, behind one `Arc`: a middleware's state is cloned
/// for every request, and a whole `AppState` is dozens of reference counts and two strings (the
/// local server's throughput fell by about 8% with it).
struct Recorder {
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

/// Request id, the JSON 405, the access-log line and the request's metrics.
async fn request_context(State(recorder): State<Arc<Recorder>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = request
        .extensions()
        .get::<lambda_http::Context>()
        .map(|ctx| ctx.request_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let method = request.method().clone();
    let mut response = next.run(request).await;
    let route = response.extensions().get::<Route>().map(|r| r.0.as_str().to_owned());
    // axum answers a known path with an unknown method itself, with an empty body and a
    // complete `Allow`; give it the contract's JSON body, keeping the header.
    if response.status() == StatusCode::METHOD_NOT_ALLOWED && !is_json(&response) {
        let allow = response.headers().get(header::ALLOW).cloned().unwrap_or(HeaderValue::from_static(""));
        response = ApiError::MethodNotAllowed(allow).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    let (route, latency_ms) =
        (route.as_deref().unwrap_or("<unmatched>"), started.elapsed().as_secs_f64() * 1000.0);
    tracing::info!(request_id, method = %method, route, status = response.status().as_u16(), latency_ms, "request");
    if recorder.metrics.keeps() {
        let mut events = response.extensions_mut().remove::<Counted>().map(|c| c.0).unwrap_or_default();
        if response.headers().contains_key(&idempotency::IDEMPOTENT_REPLAYED) {
            events.push(Event::IdempotentReplay);
        }
        let record = RequestRecord {
            route,
            status: response.status().as_u16(),
            latency_ms,
            events: &events,
            request_id: &request_id,
        };
        recorder.metrics.request(&record, recorder.clock.now().timestamp_millis());
    }
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
