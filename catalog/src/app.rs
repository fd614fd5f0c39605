//! The whole API in one router: every function's router (from the catalog), mounted on the
//! routes `template.yaml` gives API Gateway, with the CORS settings the HTTP API has. What the
//! local server serves and the in-process tests call; it holds no handler code.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any_service;
use http::HeaderValue;
use shared::AppState;
use tower::ServiceExt;

use crate::cors::Cors;
use crate::template::{DEFAULT_ROUTE, TemplateError, routes};

/// API Gateway's path syntax to axum's: `{id}` is the same, a greedy `{proxy+}` is `{*proxy}`.
fn axum_path(path: &str) -> String {
    path.split('/')
        .map(|segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
            Some(name) => format!("{{*{name}}}"),
            None => segment.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The whole API over `state`, routed as `template.yaml` routes it.
pub fn app(state: AppState, cors: &Cors) -> Result<Router, TemplateError> {
    let routes = routes()?;
    let mut routers: BTreeMap<String, Router> = BTreeMap::new();
    for route in &routes {
        if !routers.contains_key(&route.binary) {
            let function = crate::function(&route.binary)
                .ok_or_else(|| TemplateError::UnknownBinary(route.binary.clone()))?;
            routers.insert(route.binary.clone(), (function.router)(state.clone()));
        }
    }
    let mut app = Router::new();
    for route in &routes {
        let function = routers[&route.binary].clone().map_request(as_received);
        // Every method goes to the function (the template routes `ANY`), whose router answers
        // the methods it does not serve with the contract's 405.
        app = if route.path == DEFAULT_ROUTE {
            app.fallback_service(function)
        } else {
            app.route(&axum_path(&route.path), any_service(function))
        };
    }
    // Each request gets 30 s, as a Lambda function gets its timeout (an idempotency key is locked
    // until then); inside CORS and the access log, so a 504 has both.
    let app = app.layer(middleware::from_fn(shared::web::deadline::local_deadline));
    let app = match cors.layer()? {
        Some(layer) => app.layer(layer),
        None => app,
    };
    Ok(app.layer(middleware::from_fn(log_answered_here)))
}

/// The access-log line (and `x-request-id`) of a request this server answers itself, before any
/// function sees it: a CORS preflight, as API Gateway answers it in AWS. Every other request is
/// logged once, by its function.
async fn log_answered_here(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let mut response = next.run(request).await;
    if !response.headers().contains_key(&shared::web::X_REQUEST_ID) {
        let request_id = uuid::Uuid::new_v4().to_string();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(shared::web::X_REQUEST_ID.clone(), value);
        }
        tracing::info!(
            request_id,
            method = %method,
            route = "<cors preflight>",
            status = response.status().as_u16(),
            latency_ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
}

/// The request as the client sent it, without what this dispatching router attached (its matched
/// route and path parameters), as API Gateway hands the function a request of its own: the
/// function's router matches it afresh. API Gateway's request context (the source address) goes
/// with it, as it does on Lambda.
fn as_received(request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let mut fresh = Request::new(body);
    *fresh.method_mut() = parts.method;
    *fresh.uri_mut() = parts.uri;
    *fresh.version_mut() = parts.version;
    *fresh.headers_mut() = parts.headers;
    if let Some(context) = parts.extensions.get::<shared::web::address::RequestContext>() {
        fresh.extensions_mut().insert(context.clone());
    }
    // And its deadline, as Lambda's context carries the invocation's.
    if let Some(deadline) = parts.extensions.get::<shared::web::deadline::Deadline>() {
        fresh.extensions_mut().insert(*deadline);
    }
    fresh
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_paths_become_axum_wildcards() {
        assert_eq!(axum_path("/v1/items/{item_id}"), "/v1/items/{item_id}");
        assert_eq!(axum_path("/static/{proxy+}"), "/static/{*proxy}");
    }
}
