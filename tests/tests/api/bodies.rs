//! Every JSON endpoint of the auth, users and items groups refuses bad bodies the same way:
//! 415 for another content type, 413 over 64 KiB (before parsing), 422 `json_invalid` for
//! malformed JSON, 422 `extra_forbidden` for unknown fields; each answer with `x-request-id`.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::TestApp;
use axum::http::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_json_endpoint_refuses_bad_bodies_alike() {
    let app = TestApp::memory();
    let (user, admin) = (app.user().await, app.superuser().await);
    let item = app.item(&user.access, "x").await;
    let item_path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let user_path = format!("/v1/users/{}", user.id);
    let endpoints = [
        (Method::POST, "/v1/users/signup".to_owned(), None),
        (Method::PATCH, "/v1/users/me".to_owned(), Some(&user.access)),
        (Method::PATCH, "/v1/users/me/password".to_owned(), Some(&user.access)),
        (Method::POST, "/v1/users".to_owned(), Some(&admin.access)),
        (Method::PATCH, user_path, Some(&admin.access)),
        (Method::POST, "/v1/items".to_owned(), Some(&user.access)),
        (Method::PATCH, item_path, Some(&user.access)),
    ];
    for (method, path, token) in &endpoints {
        let token = token.map(String::as_str);
        let what = format!("{method} {path}");

        let wrong_type = app.raw(method.clone(), path, token, "text/plain", "{}").await;
        assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{what}");
        assert!(wrong_type.detail().is_string(), "{what}");

        let huge = format!("{{\"title\": \"{}\"}}", "x".repeat(65 * 1024));
        let too_large = app.raw(method.clone(), path, token, "application/json", huge).await;
        assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE, "{what}");

        let malformed = app.raw(method.clone(), path, token, "application/json", "{\"a\": }").await;
        assert_eq!(malformed.validation_errors()[0].1, "json_invalid", "{what}");

        let extra = app.json(method.clone(), path, token, json!({"is_superuser": true, "unknown": 1})).await;
        let errors = extra.validation_errors();
        assert!(
            errors.contains(&(json!(["body", "unknown"]), "extra_forbidden".to_owned())),
            "{what}: {errors:?}"
        );

        for response in [&wrong_type, &too_large, &malformed, &extra] {
            assert!(response.header("x-request-id").is_some(), "{what}");
        }
    }
    // Nothing above changed anything.
    let me = app.get("/v1/users/me", &user.access).await.json();
    assert_eq!(me["is_superuser"], false);
    assert_eq!(
        app.get(&format!("/v1/items/{}", item["id"].as_str().unwrap()), &user.access).await.json(),
        item
    );
}
