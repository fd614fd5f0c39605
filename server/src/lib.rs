//! The whole API in one process: every function's router, mounted on the routes that
//! `template.yaml` gives API Gateway, with the CORS settings the HTTP API has. It holds no
//! handler code; the routers are exactly the ones Lambda runs.
//!
//! The route table is read from `template.yaml` itself (embedded at build time), so the local
//! server and API Gateway cannot disagree about which function answers which path.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::any_service;
use http::{HeaderName, HeaderValue, Method};
use serde_norway::Value;
use shared::AppState;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The end of a command-line `main`: an error is printed (never a panic or a debug dump) and
/// becomes a failing exit status.
pub fn exit_with(result: Result<(), String>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `template.yaml`, as built into this binary.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// API Gateway's catch-all route.
pub const DEFAULT_ROUTE: &str = "$default";

/// One HTTP API route of the template: its path (in API Gateway's syntax) and the function
/// (by its binary name) that serves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub path: String,
    pub binary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(String),
    #[error("function {0} has no Metadata.BuildProperties.Binary")]
    NoBinary(String),
    #[error("route {path} of function {function} has no Path")]
    NoPath { function: String, path: String },
    #[error("no router is known for binary {0:?}: add it to server::function_router")]
    UnknownBinary(String),
    #[error("invalid CORS origin {0:?}")]
    Origin(String),
}

/// Every `HttpApi` event of every function in `template`.
pub fn routes_of(template: &str) -> Result<Vec<Route>, TemplateError> {
    let t: Value = serde_norway::from_str(template).map_err(|e| TemplateError::Yaml(e.to_string()))?;
    let mut routes = Vec::new();
    for (name, resource) in t["Resources"].as_mapping().into_iter().flatten() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let function = name.as_str().unwrap_or_default().to_owned();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .ok_or_else(|| TemplateError::NoBinary(function.clone()))?;
        for (event_name, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().ok_or_else(|| TemplateError::NoPath {
                function: function.clone(),
                path: event_name.as_str().unwrap_or_default().to_owned(),
            })?;
            routes.push(Route { path: path.to_owned(), binary: binary.to_owned() });
        }
    }
    routes.sort();
    Ok(routes)
}

/// The routes of the built-in template.
pub fn routes() -> Result<Vec<Route>, TemplateError> {
    routes_of(TEMPLATE)
}

/// The router of the function built as `binary`: the same one its Lambda `main` runs.
pub fn function_router(binary: &str, state: AppState) -> Option<Router> {
    match binary {
        "auth" => Some(auth::router(state)),
        "users" => Some(users::router(state)),
        "items" => Some(items::router(state)),
        "docs" => Some(docs::router(state)),
        _ => None,
    }
}

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
            let router = function_router(&route.binary, state.clone())
                .ok_or_else(|| TemplateError::UnknownBinary(route.binary.clone()))?;
            routers.insert(route.binary.clone(), router);
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
/// function's router matches it afresh.
fn as_received(request: Request) -> Request {
    let (parts, body) = request.into_parts();
    let mut fresh = Request::new(body);
    *fresh.method_mut() = parts.method;
    *fresh.uri_mut() = parts.uri;
    *fresh.version_mut() = parts.version;
    *fresh.headers_mut() = parts.headers;
    fresh
}

/// CORS as the HTTP API's `CorsConfiguration` in `template.yaml` sets it; only the allowed
/// origins vary (the `CorsAllowedOrigins` parameter there, `CORS_ALLOWED_ORIGINS` here).
pub const CORS_ALLOW_METHODS: [&str; 4] = ["GET", "POST", "PATCH", "DELETE"];
pub const CORS_ALLOW_HEADERS: [&str; 3] = ["authorization", "content-type", "if-match"];
pub const CORS_EXPOSE_HEADERS: [&str; 5] =
    ["etag", "location", "retry-after", "www-authenticate", "x-request-id"];
pub const CORS_MAX_AGE_SECS: u64 = 600;

/// The origins browsers may call the API from; none means CORS is off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    pub origins: Vec<String>,
}

impl Cors {
    /// A comma-separated list, as the template parameter takes it; `*` allows any origin.
    pub fn parse(list: &str) -> Self {
        Self {
            origins: list.split(',').map(str::trim).filter(|o| !o.is_empty()).map(str::to_owned).collect(),
        }
    }

    pub fn from_env() -> Self {
        Self::parse(&std::env::var("CORS_ALLOWED_ORIGINS").unwrap_or_default())
    }

    fn layer(&self) -> Result<Option<CorsLayer>, TemplateError> {
        if self.origins.is_empty() {
            return Ok(None);
        }
        let origin = if self.origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let values = self
                .origins
                .iter()
                .map(|o| HeaderValue::from_str(o).map_err(|_| TemplateError::Origin(o.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(values)
        };
        let methods: Vec<Method> = CORS_ALLOW_METHODS.iter().filter_map(|m| m.parse().ok()).collect();
        let headers =
            |names: &[&'static str]| names.iter().map(|h| HeaderName::from_static(h)).collect::<Vec<_>>();
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods(methods)
                .allow_headers(headers(&CORS_ALLOW_HEADERS))
                .expose_headers(headers(&CORS_EXPOSE_HEADERS))
                .max_age(Duration::from_secs(CORS_MAX_AGE_SECS)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_paths_become_axum_wildcards() {
        assert_eq!(axum_path("/v1/items/{item_id}"), "/v1/items/{item_id}");
        assert_eq!(axum_path("/static/{proxy+}"), "/static/{*proxy}");
    }

    #[test]
    fn origins_are_a_comma_separated_list() {
        assert_eq!(
            Cors::parse(" https://a.example , ,http://localhost:5173").origins,
            ["https://a.example", "http://localhost:5173"]
        );
        assert!(Cors::parse("").origins.is_empty());
    }
}
