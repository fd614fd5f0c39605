//! `events/`: one API Gateway HTTP API (payload v2) event per route, as `sam local invoke -e` and
//! `cargo lambda invoke --data-file` take them. Each goes through lambda_http's own event
//! parsing into the router of the function that `template.yaml` routes it to, over the fixtures
//! the events name (two users, an item), and answers the status API.md promises.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use api_tests::{API_ROUTES, PASSWORD, TestApp};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::deps::Clock;
use shared::repo::{ItemRecord, UserRecord};
use shared::validate::Email;
use tower::ServiceExt;

const ADMIN_ID: &str = "0193f1a0-0000-7000-8000-000000000001";
const USER_ID: &str = "0193f1a0-0000-7000-8000-000000000002";
const ITEM_ID: &str = "0193f1a0-0000-7000-8000-000000000003";

/// (event file, status API.md promises for it over the fixtures).
const EXPECTED: &[(&str, u16)] = &[
    ("post-v1-auth-token", 200),
    ("post-v1-auth-revoke", 200),
    ("post-v1-users-signup", 201),
    ("get-v1-users-me", 200),
    ("patch-v1-users-me", 200),
    ("delete-v1-users-me", 204),
    ("patch-v1-users-me-password", 204),
    ("get-v1-users", 200),
    ("post-v1-users", 201),
    ("get-v1-users-user_id", 200),
    ("patch-v1-users-user_id", 200),
    ("delete-v1-users-user_id", 204),
    ("get-v1-items", 200),
    ("post-v1-items", 201),
    ("get-v1-items-item_id", 200),
    ("patch-v1-items-item_id", 200),
    ("delete-v1-items-item_id", 204),
    ("get-openapi_json", 200),
    ("get-docs", 200),
    ("get-docs-proxy", 200),
];

fn events_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

/// The name an event for `method path` has: `get-v1-items-item_id`, `get-openapi_json`.
fn event_name(method: &str, path: &str) -> String {
    let path = path.trim_start_matches('/').replace('/', "-").replace('.', "_").replace(['{', '}', '+'], "");
    format!("{}-{path}", method.to_lowercase())
}

#[test]
fn there_is_one_event_per_route_and_nothing_else() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let routes: BTreeSet<String> = API_ROUTES
        .iter()
        .flat_map(|(_, path, methods)| methods.iter().map(move |m| format!("{}.json", event_name(m, path))))
        .collect();
    assert_eq!(on_disk, routes);
    let expected: BTreeSet<String> = EXPECTED.iter().map(|(name, _)| format!("{name}.json")).collect();
    assert_eq!(expected, routes);
}

struct Fixtures {
    app: TestApp,
    /// Placeholder in the events → what the test puts there.
    substitutions: Vec<(String, String)>,
}

/// The users and the item the events name, with their ids, and real tokens for the
/// placeholders.
async fn fixtures() -> Fixtures {
    let app = TestApp::memory();
    let state = &app.state;
    let now = app.clock.now();
    let hash = state.hasher.hash(PASSWORD.into()).await.unwrap();
    for (id, email, superuser) in
        [(ADMIN_ID, "admin@example.com", true), (USER_ID, "user@example.com", false)]
    {
        let user = UserRecord {
            id: id.parse().unwrap(),
            email: Email::parse(email).unwrap(),
            full_name: None,
            password_hash: hash.clone(),
            is_active: true,
            is_superuser: superuser,
            created_at: now,
            updated_at: now,
        };
        state.repos.users.create_user(&user).await.unwrap();
    }
    let item = ItemRecord {
        id: ITEM_ID.parse().unwrap(),
        owner_id: USER_ID.parse().unwrap(),
        title: "Groceries".into(),
        description: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    assert!(state.repos.items.create_item(&item).await.unwrap());
    let mut substitutions = Vec::new();
    for email in ["admin@example.com", "user@example.com"] {
        let token = app.login(email, PASSWORD).await.json();
        substitutions
            .push((format!("<access token of {email}>"), token["access_token"].as_str().unwrap().into()));
        substitutions
            .push((format!("<refresh token of {email}>"), token["refresh_token"].as_str().unwrap().into()));
    }
    Fixtures { app, substitutions }
}

#[tokio::test]
async fn every_event_reaches_its_function_and_answers_as_api_md_says() {
    let routes = server::routes().unwrap();
    for (name, expected) in EXPECTED {
        let fixtures = fixtures().await;
        let mut text = std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap();
        let raw: Value = serde_json::from_str(&text).unwrap();
        for (placeholder, value) in &fixtures.substitutions {
            text = text.replace(placeholder, value);
        }
        assert!(
            !text.contains("<access token") && !text.contains("<refresh token"),
            "{name}: unknown placeholder"
        );
        // API Gateway's route key names the template route, and so the function.
        let route_key = raw["routeKey"].as_str().unwrap();
        let path =
            route_key.strip_prefix("ANY ").unwrap_or_else(|| panic!("{name}: routes ANY: {route_key}"));
        assert_eq!(raw["requestContext"]["routeKey"], route_key);
        let binary =
            &routes.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("{name}: {path}")).binary;
        let router = server::function_router(binary, fixtures.app.state.clone()).unwrap();

        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let method = request.method().to_string();
        assert_eq!(event_name(&method, path), *name, "the file is named after its route");
        let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, *expected, "{name}: {}", String::from_utf8_lossy(&body));
        if !body.is_empty() && !name.starts_with("get-docs") {
            let json: Value = serde_json::from_slice(&body).unwrap();
            assert!(json.is_object(), "{name}: {json}");
        }
    }
}

#[tokio::test]
async fn without_the_fixtures_the_same_events_are_refused_cleanly() {
    // As `sam local invoke` against an empty table would answer them: the placeholders are not
    // tokens, so protected routes say 401, and nothing is a 5xx.
    let app = TestApp::memory();
    for (name, _) in EXPECTED {
        let text = std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap();
        let request = lambda_http::request::from_str(&text).unwrap();
        let protected = request.headers().contains_key("authorization");
        let response = app.send(request.map(|b| axum::body::Body::from(b.to_vec()))).await;
        assert!(response.status.as_u16() < 500, "{name}: {}", response.text());
        if protected {
            assert_eq!(response.status.as_u16(), 401, "{name}");
        }
    }
}
