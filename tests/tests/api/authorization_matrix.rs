//! Authorization matrices (OWASP API Top 10 2023: API1 object-level, API3 property-level, API5
//! function-level authorization). Every item operation on another user's item is a 404 and
//! every superuser operation by an ordinary user a 403, with the resource unchanged; every write
//! endpoint refuses every protected field it does not take (422 `extra_forbidden`), and changes
//! nothing.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{PASSWORD, Session, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

/// (method, path, body, `If-Match`, the answer due).
type Cell = (Method, String, Option<Value>, Option<&'static str>, StatusCode);
/// (method, path, token, a valid body, the protected fields it must refuse).
type Endpoint<'a> = (Method, String, &'a str, Value, Vec<(&'static str, Value)>);

async fn snapshot(
    app: &TestApp,
    admin: &Session,
    victim: &Session,
    item_path: &str,
) -> (Value, Value, Value) {
    let user = app.get(&format!("/v1/users/{}", victim.id), &admin.access).await.json();
    let item = app.get(item_path, &victim.access).await.json();
    let users = app.get("/v1/users?limit=100", &admin.access).await.json();
    (user, item, users)
}

#[tokio::test]
async fn another_users_resources_are_out_of_reach() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let victim = app.user().await;
    let attacker = app.user().await;
    let item = app.item(&victim.access, "the victim's").await;
    let item_id = item["id"].as_str().unwrap().to_owned();
    let item_path = format!("/v1/items/{item_id}");
    let user_path = format!("/v1/users/{}", victim.id);
    let before = snapshot(&app, &admin, &victim, &item_path).await;

    let update = json!({"title": "taken over", "description": "mine now"});
    let cells: Vec<Cell> = vec![
        // Items: another user's item does not exist for the caller (no existence leak).
        (Method::GET, item_path.clone(), None, None, StatusCode::NOT_FOUND),
        (Method::PATCH, item_path.clone(), Some(update.clone()), None, StatusCode::NOT_FOUND),
        (Method::PATCH, item_path.clone(), Some(update.clone()), Some("\"1\""), StatusCode::NOT_FOUND),
        (Method::PATCH, item_path.clone(), Some(update.clone()), Some("*"), StatusCode::NOT_FOUND),
        (Method::DELETE, item_path.clone(), None, None, StatusCode::NOT_FOUND),
        (Method::DELETE, item_path.clone(), None, Some("\"1\""), StatusCode::NOT_FOUND),
        (Method::GET, format!("/v1/items?owner_id={}", victim.id), None, None, StatusCode::FORBIDDEN),
        // Superuser operations.
        (Method::GET, "/v1/users".into(), None, None, StatusCode::FORBIDDEN),
        (
            Method::POST,
            "/v1/users".into(),
            Some(json!({"email": "planted@example.com", "password": PASSWORD, "is_superuser": true})),
            None,
            StatusCode::FORBIDDEN,
        ),
        (Method::GET, user_path.clone(), None, None, StatusCode::FORBIDDEN),
        (
            Method::PATCH,
            user_path.clone(),
            Some(json!({"email": "stolen@example.com", "password": "a password of mine"})),
            None,
            StatusCode::FORBIDDEN,
        ),
        (Method::PATCH, user_path.clone(), Some(json!({"is_active": false})), None, StatusCode::FORBIDDEN),
        (
            Method::PATCH,
            format!("/v1/users/{}", attacker.id),
            Some(json!({"is_superuser": true})),
            None,
            StatusCode::FORBIDDEN,
        ),
        (Method::DELETE, user_path.clone(), None, None, StatusCode::FORBIDDEN),
        (Method::DELETE, format!("/v1/users/{}", admin.id), None, None, StatusCode::FORBIDDEN),
    ];
    for (method, path, body, if_match, expected) in &cells {
        let expected: &StatusCode = expected;
        let mut request = axum::http::Request::builder()
            .method(method.clone())
            .uri(path)
            .header("authorization", format!("Bearer {}", attacker.access));
        if let Some(tag) = if_match {
            request = request.header("if-match", *tag);
        }
        let request = match body {
            Some(body) => request
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body.to_string())),
            None => request.body(axum::body::Body::empty()),
        };
        let response = app.send(request.unwrap()).await;
        assert_eq!(response.status, *expected, "{method} {path}: {}", response.text());
        assert!(response.json()["detail"].is_string(), "{method} {path}");
    }
    println!("object/function-level matrix: {} cells", cells.len());
    assert_eq!(snapshot(&app, &admin, &victim, &item_path).await, before, "nothing changed");
    let me = app.get("/v1/users/me", &attacker.access).await.json();
    assert_eq!(me["is_superuser"], false);
    assert_eq!(app.login("stolen@example.com", "a password of mine").await.status, StatusCode::BAD_REQUEST);
}

/// Fields a client never sets where they are refused, with a plausible value each, but for
/// those the endpoint takes.
fn protected(except: &[&str]) -> Vec<(&'static str, Value)> {
    let all: [(&'static str, Value); 11] = [
        ("id", json!("01a20d00-0000-7000-8000-000000000000")),
        ("owner_id", json!("01a20d00-0000-7000-8000-000000000001")),
        ("version", json!(99)),
        ("is_superuser", json!(true)),
        ("is_active", json!(false)),
        ("created_at", json!("2000-01-01T00:00:00Z")),
        ("updated_at", json!("2000-01-01T00:00:00Z")),
        ("password_hash", json!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")),
        ("hashed_password", json!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")),
        ("hash", json!("x")),
        ("email_verified", json!(true)),
    ];
    all.into_iter().filter(|(name, _)| !except.contains(name)).collect()
}

#[tokio::test]
async fn every_write_refuses_every_protected_field_and_changes_nothing() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let user = app.user().await;
    let item = app.item(&user.access, "mine").await;
    let item_path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let user_path = format!("/v1/users/{}", user.id);
    let before = snapshot(&app, &admin, &user, &item_path).await;
    let everything: &[&str] = &[];
    let not_flags = ["is_superuser", "is_active"];

    let new_user = |email: &str| json!({"email": email, "password": PASSWORD});
    let endpoints: Vec<Endpoint> = vec![
        (
            Method::POST,
            "/v1/users/signup".into(),
            "",
            new_user("signup-matrix@example.com"),
            protected(everything),
        ),
        (
            Method::PATCH,
            "/v1/users/me".into(),
            &user.access,
            json!({"full_name": "Me"}),
            protected(everything),
        ),
        (
            Method::POST,
            "/v1/users".into(),
            &admin.access,
            new_user("admin-matrix@example.com"),
            protected(&not_flags),
        ),
        (
            Method::PATCH,
            user_path.clone(),
            &admin.access,
            json!({"full_name": "Renamed"}),
            protected(&not_flags),
        ),
        (Method::POST, "/v1/items".into(), &user.access, json!({"title": "new"}), protected(everything)),
        (Method::PATCH, item_path.clone(), &user.access, json!({"title": "changed"}), protected(everything)),
        // Last: a password change ends every session, this access token's included.
        (
            Method::PATCH,
            "/v1/users/me/password".into(),
            &user.access,
            json!({"current_password": PASSWORD, "new_password": "another long password"}),
            protected(everything),
        ),
    ];
    let mut cells = 0;
    for (method, path, token, valid, fields) in &endpoints {
        let token = (!token.is_empty()).then_some(*token);
        for (field, value) in fields {
            let mut body = valid.clone();
            body[*field] = value.clone();
            let response = app.json(method.clone(), path, token, body).await;
            let errors = response.validation_errors();
            assert!(
                errors.contains(&(json!(["body", field]), "extra_forbidden".to_owned())),
                "{method} {path} with {field}: {errors:?}"
            );
            cells += 1;
        }
    }
    println!("property-level matrix: {} endpoints, {cells} cells", endpoints.len());
    assert!(cells >= 60);
    assert_eq!(snapshot(&app, &admin, &user, &item_path).await, before, "nothing changed");
    assert_eq!(app.login("signup-matrix@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK, "the password is unchanged");
    // And each valid body alone is accepted: the 422s are for the field, not the body.
    for (method, path, token, valid, _) in &endpoints {
        let token = (!token.is_empty()).then_some(*token);
        let response = app.json(method.clone(), path, token, valid.clone()).await;
        assert!(response.status.is_success(), "{method} {path}: {}", response.text());
    }
}
