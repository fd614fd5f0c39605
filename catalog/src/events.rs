//! The sample events of `events/`: one API Gateway HTTP API (payload v2) event per route of
//! `template.yaml` and method it serves, as `sam local invoke -e` and `cargo lambda invoke
//! --data-file` take them. They are generated, never written by hand: from the template's routes
//! and, for each operation, the OpenAPI document (its request body's example, its parameters,
//! whether it needs a token, and whether only a superuser may call it). `cargo run -p catalog
//! --bin generate` writes them; a test fails while they are stale.
//!
//! They name fixtures that the events test creates: two users, a superuser (`ADMIN_ID`) and
//! `user@example.com` (`USER_ID`), both with the password `correct horse battery`, and for each
//! resource path parameter (`{item_id}`) a record of the user's with a fixed id. Placeholders
//! stand where a real token must go: `<access token of user@example.com>` and the like.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::template::{DEFAULT_ROUTE, Route};

/// The superuser of the fixtures, `admin@example.com`.
pub const ADMIN_ID: &str = "0193f1a0-0000-7000-8000-000000000001";
/// The user of the fixtures, `user@example.com`.
pub const USER_ID: &str = "0193f1a0-0000-7000-8000-000000000002";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const USER_EMAIL: &str = "user@example.com";
/// The path a greedy `{proxy+}` stands for in the events: one of Swagger UI's files.
pub const PROXY_PATH: &str = "swagger-ui.css";
/// The version every fixture record has, so `If-Match: "1"` matches it.
pub const FIXTURE_VERSION: u64 = 1;
/// The `Idempotency-Key` of the events of operations that take one.
pub const SAMPLE_IDEMPOTENCY_KEY: &str = "3f2a9c1e-sample-retry";

/// The placeholder standing for a token of `email` in an event.
pub fn access_token_placeholder(email: &str) -> String {
    format!("<access token of {email}>")
}

pub fn refresh_token_placeholder(email: &str) -> String {
    format!("<refresh token of {email}>")
}

/// The placeholder standing for the token of a reset link sent to `email`.
pub fn reset_token_placeholder(email: &str) -> String {
    format!("<reset token of {email}>")
}

/// The placeholder standing for the token of a verification link sent to `email`.
pub fn verification_token_placeholder(email: &str) -> String {
    format!("<verification token of {email}>")
}

/// The id of the fixture that path parameter `name` names: the user for `user_id`, and one
/// record of the user's for each other (`item_id`, ...), numbered in the order of their names.
pub fn fixture_id(name: &str, parameters: &[String]) -> String {
    if name == "user_id" {
        return USER_ID.to_owned();
    }
    let index = parameters.iter().filter(|p| *p != "user_id").position(|p| p == name).unwrap_or(0);
    format!("0193f1a0-0000-7000-8000-{:012x}", 3 + index)
}

/// One sample event, with what the contract promises it answers over the fixtures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The file's name without `.json`: `get-v1-items-item_id`.
    pub name: String,
    /// The template route it goes to, and the method.
    pub route: String,
    pub method: String,
    /// The operation's success status in the document (200 for routes outside it).
    pub status: u16,
    /// The file's text.
    pub text: String,
}

/// The name an event for `method path` has: `get-v1-items-item_id`, `get-openapi_json`.
pub fn event_name(method: &str, path: &str) -> String {
    let path = path.trim_start_matches('/').replace('/', "-").replace('.', "_").replace(['{', '}', '+'], "");
    format!("{}-{path}", method.to_lowercase())
}

/// The path parameters of every route, by name, sorted: what the fixture ids are numbered by.
pub fn path_parameters(routes: &[Route]) -> Vec<String> {
    let mut names: Vec<String> = routes
        .iter()
        .flat_map(|r| r.path.split('/'))
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .filter(|s| !s.ends_with('+'))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Http<'a> {
    method: &'a str,
    path: &'a str,
    protocol: &'static str,
    source_ip: &'static str,
    user_agent: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    account_id: &'static str,
    api_id: &'static str,
    domain_name: &'static str,
    domain_prefix: &'static str,
    http: Http<'a>,
    request_id: &'a str,
    route_key: &'a str,
    stage: &'static str,
    time: &'static str,
    time_epoch: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiGatewayEvent<'a> {
    version: &'static str,
    route_key: &'a str,
    raw_path: &'a str,
    raw_query_string: &'a str,
    headers: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    query_string_parameters: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    path_parameters: BTreeMap<String, String>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    is_base64_encoded: bool,
}

const HOST: &str = "abc123.execute-api.eu-west-1.amazonaws.com";
const SOURCE_IP: &str = "192.0.2.10";
const USER_AGENT: &str = "curl/8.5.0";

/// The body of an operation's example: JSON as sent, a form encoded.
fn body(content_type: &str, example: &Value) -> Result<String, String> {
    if content_type == "application/x-www-form-urlencoded" {
        let pairs: Vec<(String, String)> = example
            .as_object()
            .ok_or("a form's example is not an object")?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
            .collect();
        // A placeholder (`<refresh token of ...>`) stays as it is, for whoever fills it in.
        let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
        let encoded = pairs.iter().map(|(k, v)| {
            let placeholder = v.starts_with('<') && v.ends_with('>');
            Ok(format!("{}={}", encode(k), if placeholder { v.clone() } else { encode(v) }))
        });
        Ok(encoded.collect::<Result<Vec<String>, String>>()?.join("&"))
    } else {
        Ok(example.to_string())
    }
}

/// Every event: one per route of `routes` (`$default` aside) and method of its operations in
/// `document`, or GET for a route outside the document (the docs function's pages).
pub fn events(routes: &[Route], document: &Value) -> Result<Vec<Event>, String> {
    let parameters = path_parameters(routes);
    let mut events = Vec::new();
    for route in routes.iter().filter(|r| r.path != DEFAULT_ROUTE) {
        let operations: Vec<(String, Option<&Value>)> = match document["paths"][&route.path].as_object() {
            Some(item) => item.iter().map(|(method, op)| (method.to_uppercase(), Some(op))).collect(),
            None => vec![("GET".to_owned(), None)],
        };
        for (method, operation) in operations {
            events.push(event(route, &method, operation, &parameters)?);
        }
    }
    events.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(events)
}

fn event(
    route: &Route,
    method: &str,
    operation: Option<&Value>,
    parameters: &[String],
) -> Result<Event, String> {
    let name = event_name(method, &route.path);
    let what = |e: &str| format!("{name}: {e}");
    let mut path_parameters = BTreeMap::new();
    let mut segments = Vec::new();
    for segment in route.path.split('/') {
        match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(greedy) if greedy.ends_with('+') => {
                path_parameters.insert(greedy.trim_end_matches('+').to_owned(), PROXY_PATH.to_owned());
                segments.push(PROXY_PATH.to_owned());
            }
            Some(param) => {
                let id = fixture_id(param, parameters);
                path_parameters.insert(param.to_owned(), id.clone());
                segments.push(id);
            }
            None => segments.push(segment.to_owned()),
        }
    }
    let raw_path = segments.join("/");
    // A page of the docs function is asked for as a browser asks for it.
    let accept =
        if operation.is_none() && !route.path.ends_with(".json") { "text/html" } else { "application/json" };
    let mut headers = BTreeMap::from([
        ("accept", accept.to_owned()),
        ("host", HOST.to_owned()),
        ("user-agent", USER_AGENT.to_owned()),
        ("x-forwarded-for", SOURCE_IP.to_owned()),
        ("x-forwarded-port", "443".to_owned()),
        ("x-forwarded-proto", "https".to_owned()),
    ]);
    let (mut query, mut body_text, mut status) = (Vec::new(), None, 200);
    if let Some(op) = operation {
        if op.get("security").is_some() {
            // Only a superuser may call an operation whose 403 says so.
            let superuser =
                op["responses"]["403"]["$ref"].as_str().is_some_and(|r| r.ends_with("/NotSuperuser"));
            let caller = if superuser { ADMIN_EMAIL } else { USER_EMAIL };
            headers.insert("authorization", format!("Bearer {}", access_token_placeholder(caller)));
        }
        for parameter in op["parameters"].as_array().into_iter().flatten() {
            match (parameter["in"].as_str(), parameter["name"].as_str()) {
                (Some("query"), Some(name)) => {
                    if let Some(default) = parameter["schema"].get("default") {
                        query.push((
                            name.to_owned(),
                            default.as_str().map_or_else(|| default.to_string(), str::to_owned),
                        ));
                    }
                }
                (Some("header"), Some("If-Match")) => {
                    headers.insert("if-match", format!("\"{FIXTURE_VERSION}\""));
                }
                // A client's retry key, as one that retries safely sends it.
                (Some("header"), Some("Idempotency-Key")) => {
                    headers.insert("idempotency-key", SAMPLE_IDEMPOTENCY_KEY.to_owned());
                }
                _ => {}
            }
        }
        if let Some((content_type, media)) =
            op["requestBody"]["content"].as_object().and_then(|c| c.iter().next())
        {
            let example = media.get("example").ok_or_else(|| what("its request body has no example"))?;
            headers.insert("content-type", content_type.clone());
            body_text = Some(body(content_type, example).map_err(|e| what(&e))?);
        }
        status = op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .filter_map(|(code, _)| code.parse::<u16>().ok())
            .find(|code| (200..300).contains(code))
            .ok_or_else(|| what("no success status"))?;
    }
    let route_key = format!("ANY {}", route.path);
    let raw_query_string = serde_urlencoded::to_string(&query).map_err(|e| what(&e.to_string()))?;
    let event = ApiGatewayEvent {
        version: "2.0",
        route_key: &route_key,
        raw_path: &raw_path,
        raw_query_string: &raw_query_string,
        headers,
        query_string_parameters: query.into_iter().collect(),
        path_parameters,
        request_context: RequestContext {
            account_id: "123456789012",
            api_id: "abc123",
            domain_name: HOST,
            domain_prefix: "abc123",
            http: Http {
                method,
                path: &raw_path,
                protocol: "HTTP/1.1",
                source_ip: SOURCE_IP,
                user_agent: USER_AGENT,
            },
            request_id: &name,
            route_key: &route_key,
            stage: "$default",
            time: "24/Nov/2026:12:00:00 +0000",
            time_epoch: 1_795_521_600_000,
        },
        body: body_text,
        is_base64_encoded: false,
    };
    let mut text = serde_json::to_string_pretty(&event).map_err(|e| what(&e.to_string()))?;
    text.push('\n');
    Ok(Event { name, route: route.path.clone(), method: method.to_owned(), status, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_after_their_route() {
        assert_eq!(event_name("GET", "/v1/items/{item_id}"), "get-v1-items-item_id");
        assert_eq!(event_name("GET", "/openapi.json"), "get-openapi_json");
        assert_eq!(event_name("GET", "/docs/{proxy+}"), "get-docs-proxy");
    }

    #[test]
    fn fixtures_are_numbered_after_the_two_users() {
        let names = ["item_id".to_owned(), "project_id".to_owned(), "user_id".to_owned()];
        assert_eq!(fixture_id("user_id", &names), USER_ID);
        assert_eq!(fixture_id("item_id", &names), "0193f1a0-0000-7000-8000-000000000003");
        assert_eq!(fixture_id("project_id", &names), "0193f1a0-0000-7000-8000-000000000004");
    }
}
