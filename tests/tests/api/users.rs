//! The `users` function in-process: signup, the caller's profile and password, account deletion
//! and its cascade, and the superuser routes; with every error path API.md names.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{PASSWORD, TestApp, TestResponse};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

fn locs(response: &TestResponse) -> Vec<(Value, String)> {
    response.validation_errors()
}

fn loc(parts: &[&str]) -> Value {
    json!(parts)
}

#[tokio::test]
async fn signup_creates_a_user_without_exposing_its_password() {
    let app = TestApp::memory();
    let response = app
        .json(
            Method::POST,
            "/v1/users/signup",
            None,
            json!({"email": "  Alice@Example.IO ", "password": PASSWORD, "full_name": "Alice"}),
        )
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let body = response.json();
    let id = body["id"].as_str().expect("id");
    let uuid: uuid::Uuid = id.parse().expect("uuid");
    assert_eq!((uuid.get_version_num(), id.to_lowercase()), (7, id.to_owned()), "lower-case UUIDv7");
    assert_eq!(response.header("location"), Some(format!("/v1/users/{id}").as_str()));
    assert_eq!(body["email"], "alice@example.io", "trimmed, NFC and lower-cased (API.md v1.1)");
    assert_eq!((body["full_name"].as_str(), body["is_active"].as_bool()), (Some("Alice"), Some(true)));
    assert_eq!(body["is_superuser"], false);
    let created = body["created_at"].as_str().expect("created_at");
    assert!(created.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created).is_ok(), "{created}");
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 8, "exactly the UserResponse fields: {keys:?}");
    assert_eq!(body["email_verified"], false, "not until its link is followed");
    assert!(!response.text().contains(PASSWORD) && !response.text().contains("argon2"));
    assert!(response.header("x-request-id").is_some());
}

#[tokio::test]
async fn an_email_is_taken_case_insensitively_and_trimmed() {
    let app = TestApp::memory();
    assert_eq!(app.signup("bob@example.com", PASSWORD).await.status, StatusCode::CREATED);
    for again in ["bob@example.com", "BOB@Example.com", "  bob@example.com  "] {
        let response = app.signup(again, PASSWORD).await;
        assert_eq!(response.status, StatusCode::CONFLICT, "{again:?}");
        assert!(response.detail().is_string());
    }
}

#[tokio::test]
async fn signup_can_be_switched_off() {
    let mut config = api_tests::config();
    config.open_registration = false;
    let app = TestApp::with_config(config);
    let response = app.signup("carol@example.com", PASSWORD).await;
    assert_eq!(response.status, StatusCode::FORBIDDEN);
    assert!(response.detail().is_string());
    let garbage = app.raw(Method::POST, "/v1/users/signup", None, "application/json", "{").await;
    assert_eq!(garbage.status, StatusCode::FORBIDDEN, "refused before the body is read");
}

#[tokio::test]
async fn signup_reports_every_invalid_field_in_fastapi_shape() {
    let app = TestApp::memory();
    let response = app
        .json(
            Method::POST,
            "/v1/users/signup",
            None,
            json!({"email": "not-an-email", "password": "Zq9!x", "full_name": "x".repeat(256), "is_superuser": true}),
        )
        .await;
    let errors = locs(&response);
    assert_eq!(
        errors,
        vec![
            (loc(&["body", "email"]), "value_error".into()),
            (loc(&["body", "password"]), "string_too_short".into()),
            (loc(&["body", "full_name"]), "string_too_long".into()),
            (loc(&["body", "is_superuser"]), "extra_forbidden".into()),
        ]
    );
    assert!(!response.text().contains("Zq9!x"), "inputs (a password here) are never echoed");
    let detail = response.detail();
    assert_eq!(detail[1]["msg"], "String should have at least 8 characters");
    assert_eq!(detail[1]["ctx"]["min_length"], 8);

    let missing = app.json(Method::POST, "/v1/users/signup", None, json!({})).await;
    assert_eq!(
        locs(&missing),
        vec![(loc(&["body", "email"]), "missing".into()), (loc(&["body", "password"]), "missing".into())]
    );
    let wrong_types =
        app.json(Method::POST, "/v1/users/signup", None, json!({"email": 1, "password": true})).await;
    assert_eq!(
        locs(&wrong_types),
        vec![
            (loc(&["body", "email"]), "string_type".into()),
            (loc(&["body", "password"]), "string_type".into())
        ]
    );
    let long_password = app.signup("dave@example.com", &"p".repeat(129)).await;
    assert_eq!(locs(&long_password), vec![(loc(&["body", "password"]), "string_too_long".into())]);
    let long_email = app.signup(&format!("{}@example.com", "e".repeat(250)), PASSWORD).await;
    assert_eq!(locs(&long_email), vec![(loc(&["body", "email"]), "value_error".into())]);
}

#[tokio::test]
async fn malformed_and_non_object_bodies_are_422() {
    let app = TestApp::memory();
    let broken = app.raw(Method::POST, "/v1/users/signup", None, "application/json", "{\"email\": ").await;
    let errors = locs(&broken);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].1, "json_invalid");
    assert_eq!(errors[0].0[0], "body");
    assert!(errors[0].0[1].is_u64(), "the position of the error");
    let array = app.json(Method::POST, "/v1/users/signup", None, json!(["a"])).await;
    assert_eq!(locs(&array), vec![(loc(&["body"]), "model_attributes_type".into())]);
    let empty = app.raw(Method::POST, "/v1/users/signup", None, "application/json", "").await;
    assert_eq!(locs(&empty), vec![(loc(&["body"]), "missing".into())]);
    let charset = app
        .raw(
            Method::POST,
            "/v1/users/signup",
            None,
            "application/json; charset=utf-8",
            json!({"email": "erin@example.com", "password": PASSWORD}).to_string(),
        )
        .await;
    assert_eq!(charset.status, StatusCode::CREATED);
}

#[tokio::test]
async fn json_endpoints_refuse_other_content_types_with_415() {
    let app = TestApp::memory();
    let body = json!({"email": "frank@example.com", "password": PASSWORD}).to_string();
    for content_type in
        ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin1"]
    {
        let response = app.raw(Method::POST, "/v1/users/signup", None, content_type, body.clone()).await;
        assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{content_type}");
        assert!(response.detail().is_string());
    }
    // As FastAPI does, a body without a Content-Type is read as JSON.
    let request = axum::http::Request::post("/v1/users/signup").body(axum::body::Body::from(body)).unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::CREATED, "no content type");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_before_parsing() {
    let app = TestApp::memory();
    let huge = format!("{{\"email\": \"{}\"", "x".repeat(65 * 1024));
    let response = app.raw(Method::POST, "/v1/users/signup", None, "application/json", huge).await;
    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE, "malformed, but too large comes first");
    assert!(response.detail().is_string());
    let exactly = format!("{{\"email\": \"{}\"}}", "x".repeat(64 * 1024 - 13));
    assert_eq!(exactly.len(), 64 * 1024);
    let at_limit = app.raw(Method::POST, "/v1/users/signup", None, "application/json", exactly).await;
    assert_eq!(at_limit.status, StatusCode::UNPROCESSABLE_ENTITY, "64 KiB itself is parsed");
}

#[tokio::test]
async fn a_user_reads_and_updates_its_own_profile() {
    let app = TestApp::memory();
    let user = app.user().await;
    let me = app.get("/v1/users/me", &user.access).await;
    assert_eq!((me.status, me.json()["id"].as_str()), (StatusCode::OK, Some(user.id.to_string().as_str())));

    let named =
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({"full_name": "New Name"})).await;
    assert_eq!(named.json()["full_name"], "New Name");
    let absent = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({})).await;
    assert_eq!(absent.json()["full_name"], "New Name", "absent leaves it");
    let cleared =
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({"full_name": null})).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.json()["full_name"], Value::Null, "null clears it");

    let new_email = format!("renamed-{}", user.email);
    let body = json!({"email": new_email, "current_password": PASSWORD});
    let moved = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(moved.json()["email"], new_email);
    assert_eq!(app.login(&new_email, PASSWORD).await.status, StatusCode::OK);
    assert_eq!(app.signup(&user.email, PASSWORD).await.status, StatusCode::CREATED, "old email released");
}

#[tokio::test]
async fn unicode_spellings_of_one_address_are_one_account() {
    let app = TestApp::memory();
    let nfc = app.signup("Jos\u{e9}@Example.com", PASSWORD).await;
    assert_eq!(nfc.status, StatusCode::CREATED, "{}", nfc.text());
    assert_eq!(nfc.json()["email"], "jos\u{e9}@example.com", "NFC and lower case");
    let nfd = app.signup("jose\u{301}@example.com", PASSWORD).await;
    assert_eq!(nfd.status, StatusCode::CONFLICT, "the NFD spelling is the same account");
    let unicode = app.signup("Info@B\u{fc}cher.Example", PASSWORD).await;
    assert_eq!(unicode.status, StatusCode::CREATED, "{}", unicode.text());
    assert_eq!(unicode.json()["email"], "info@b\u{fc}cher.example", "the domain as typed");
    let ascii = app.signup("info@xn--bcher-kva.example", PASSWORD).await;
    assert_eq!(ascii.status, StatusCode::CONFLICT, "the IDNA ASCII domain is the same account");
    for spelling in ["info@xn--bcher-kva.example", "INFO@B\u{dc}CHER.example", "jose\u{301}@EXAMPLE.com"] {
        assert_eq!(app.login(spelling, PASSWORD).await.status, StatusCode::OK, "{spelling}");
    }
}

#[tokio::test]
async fn an_email_change_needs_the_current_password() {
    let app = TestApp::memory();
    let user = app.user().await;
    let patch = |body: Value| app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body);
    let missing = patch(json!({"email": "stolen@example.com", "full_name": "Thief"})).await;
    assert_eq!(locs(&missing), vec![(loc(&["body", "current_password"]), "missing".into())]);
    let wrong = patch(json!({"email": "stolen@example.com", "current_password": "not the password"})).await;
    assert_eq!(
        (wrong.status, wrong.json()),
        (StatusCode::BAD_REQUEST, json!({"detail": "Incorrect password"}))
    );
    let me = app.get("/v1/users/me", &user.access).await.json();
    assert_eq!(
        (me["email"].as_str(), &me["full_name"]),
        (Some(user.email.as_str()), &Value::Null),
        "unchanged"
    );
    // A name alone needs no password; a password sent with it is not checked.
    let named = patch(json!({"full_name": "Named", "current_password": "anything"})).await;
    assert_eq!(named.status, StatusCode::OK);
    let moved =
        patch(json!({"email": "moved-with-password@example.com", "current_password": PASSWORD})).await;
    assert_eq!(moved.json()["email"], "moved-with-password@example.com");
}

#[tokio::test]
async fn profile_updates_refuse_taken_emails_and_protected_fields() {
    let app = TestApp::memory();
    let (user, other) = (app.user().await, app.user().await);
    let body = json!({"email": other.email.to_uppercase(), "current_password": PASSWORD});
    let taken = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    for field in ["is_superuser", "is_active", "id", "password", "password_hash", "created_at"] {
        let response =
            app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({field: true})).await;
        assert_eq!(locs(&response), vec![(loc(&["body", field]), "extra_forbidden".into())], "{field}");
    }
    let email_null =
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({"email": null})).await;
    assert_eq!(locs(&email_null), vec![(loc(&["body", "email"]), "string_type".into())]);
    let me = app.get("/v1/users/me", &user.access).await.json();
    assert_eq!(
        (me["email"].as_str(), me["is_superuser"].as_bool()),
        (Some(user.email.as_str()), Some(false))
    );
}

#[tokio::test]
async fn changing_the_password_checks_the_current_one_and_ends_sessions() {
    let app = TestApp::memory();
    let user = app.user().await;
    let path = "/v1/users/me/password";
    let wrong = app
        .json(
            Method::PATCH,
            path,
            Some(&user.access),
            json!({"current_password": "wrong one", "new_password": "brand new pw"}),
        )
        .await;
    assert_eq!((wrong.status, wrong.detail()), (StatusCode::BAD_REQUEST, json!("Incorrect password")));
    let same = app
        .json(
            Method::PATCH,
            path,
            Some(&user.access),
            json!({"current_password": PASSWORD, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(same.status, StatusCode::BAD_REQUEST);
    let short = app
        .json(
            Method::PATCH,
            path,
            Some(&user.access),
            json!({"current_password": PASSWORD, "new_password": "short"}),
        )
        .await;
    assert_eq!(locs(&short), vec![(loc(&["body", "new_password"]), "string_too_short".into())]);

    let changed = app
        .json(
            Method::PATCH,
            path,
            Some(&user.access),
            json!({"current_password": PASSWORD, "new_password": "brand new pw"}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    assert!(changed.body.is_empty());
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&user.email, "brand new pw").await.status, StatusCode::OK);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST, "refresh tokens revoked");
}

#[tokio::test]
async fn deleting_an_account_removes_the_user_its_items_and_its_tokens() {
    let app = TestApp::memory();
    let (user, admin) = (app.user().await, app.superuser().await);
    let item = app.item(&user.access, "to be deleted").await;
    let deleted = app.delete("/v1/users/me", &user.access).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.purge_now().await.done, 1, "the worker purges what the user owned");
    assert_eq!(
        app.get(&format!("/v1/items/{}", item["id"].as_str().unwrap()), &admin.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&format!("/v1/users/{}", user.id), &admin.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.signup(&user.email, PASSWORD).await.status, StatusCode::CREATED, "email released");
}

#[tokio::test]
async fn a_superuser_may_not_delete_themselves() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let me = app.delete("/v1/users/me", &admin.access).await;
    assert_eq!(me.status, StatusCode::FORBIDDEN);
    let by_id = app.delete(&format!("/v1/users/{}", admin.id), &admin.access).await;
    assert_eq!(by_id.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get("/v1/users/me", &admin.access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_routes_are_403_for_ordinary_users() {
    let app = TestApp::memory();
    let (user, other) = (app.user().await, app.user().await);
    let other_path = format!("/v1/users/{}", other.id);
    let body = json!({"email": "new@example.com", "password": PASSWORD});
    let attempts = [
        app.get("/v1/users", &user.access).await,
        app.json(Method::POST, "/v1/users", Some(&user.access), body).await,
        app.get(&other_path, &user.access).await,
        app.json(Method::PATCH, &other_path, Some(&user.access), json!({"full_name": "x"})).await,
        app.json(
            Method::PATCH,
            &format!("/v1/users/{}", user.id),
            Some(&user.access),
            json!({"is_superuser": true}),
        )
        .await,
        app.delete(&other_path, &user.access).await,
    ];
    for response in attempts {
        assert_eq!(response.status, StatusCode::FORBIDDEN, "{}", response.text());
        assert_eq!(response.detail(), "The user doesn't have enough privileges");
    }
    assert_eq!(app.get(&format!("/v1/users/{}", user.id), &user.access).await.status, StatusCode::OK, "self");
    let me = app.get("/v1/users/me", &user.access).await.json();
    assert_eq!(me["is_superuser"], false, "nothing changed");
    assert_eq!(app.get(&other_path, &other.access).await.json()["full_name"], Value::Null);
}

#[tokio::test]
async fn a_superuser_lists_users_page_by_page_with_opaque_cursors() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    for _ in 0..4 {
        app.user().await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/users?limit=2".to_owned();
    loop {
        let page = app.get(&path, &admin.access).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let body = page.json();
        seen.extend(body["data"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "creation order");
    let default = app.get("/v1/users", &admin.access).await.json();
    assert_eq!((default["data"].as_array().unwrap().len(), &default["next_cursor"]), (5, &Value::Null));
}

#[tokio::test]
async fn a_foreign_or_forged_cursor_and_a_bad_limit_are_422() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    for _ in 0..3 {
        app.item(&admin.access, "x").await;
    }
    let items_cursor =
        app.get("/v1/items?limit=1", &admin.access).await.json()["next_cursor"].as_str().unwrap().to_owned();
    for cursor in [items_cursor.as_str(), "garbage", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%00"] {
        let response = app.get(&format!("/v1/users?cursor={cursor}"), &admin.access).await;
        assert_eq!(locs(&response), vec![(loc(&["query", "cursor"]), "value_error".into())], "{cursor}");
    }
    for (limit, kind) in [
        ("0", "greater_than_equal"),
        ("101", "less_than_equal"),
        ("ten", "int_parsing"),
        ("-1", "greater_than_equal"),
    ] {
        let response = app.get(&format!("/v1/users?limit={limit}"), &admin.access).await;
        assert_eq!(locs(&response), vec![(loc(&["query", "limit"]), kind.into())], "{limit}");
    }
    assert_eq!(app.get("/v1/users?limit=100", &admin.access).await.status, StatusCode::OK);
    let undeclared = app.get("/v1/users?owner_id=not-a-uuid&foo=bar", &admin.access).await;
    assert_eq!(undeclared.status, StatusCode::OK, "undeclared parameters are ignored, as in FastAPI");
}

#[tokio::test]
async fn a_superuser_creates_reads_updates_and_deletes_users() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    let body =
        json!({"email": "made@example.com", "password": PASSWORD, "is_superuser": true, "is_active": true});
    let created = app.json(Method::POST, "/v1/users", Some(&admin.access), body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("location"), Some(format!("/v1/users/{id}").as_str()));
    assert_eq!(created.json()["is_superuser"], true);
    assert_eq!(
        app.json(Method::POST, "/v1/users", Some(&admin.access), body).await.status,
        StatusCode::CONFLICT
    );
    let extra = app
        .json(
            Method::POST,
            "/v1/users",
            Some(&admin.access),
            json!({"email": "e@example.com", "password": PASSWORD, "id": "x"}),
        )
        .await;
    assert_eq!(locs(&extra), vec![(loc(&["body", "id"]), "extra_forbidden".into())]);

    let path = format!("/v1/users/{id}");
    assert_eq!(app.get(&path, &admin.access).await.json()["email"], "made@example.com");
    let patch = json!({"full_name": "Made", "password": "another password", "is_superuser": false});
    let updated = app.json(Method::PATCH, &path, Some(&admin.access), patch).await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(
        (updated.json()["full_name"].as_str(), updated.json()["is_superuser"].as_bool()),
        (Some("Made"), Some(false))
    );
    assert_eq!(app.login("made@example.com", "another password").await.status, StatusCode::OK);
    let other = app.user().await;
    let taken = app.json(Method::PATCH, &path, Some(&admin.access), json!({"email": other.email})).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);

    assert_eq!(app.delete(&path, &admin.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &admin.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, &admin.access).await.status, StatusCode::NOT_FOUND);
    let missing = format!("/v1/users/{}", uuid::Uuid::now_v7());
    assert_eq!(
        app.json(Method::PATCH, &missing, Some(&admin.access), json!({})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_user_id_that_is_not_a_uuid_is_422() {
    let app = TestApp::memory();
    let admin = app.superuser().await;
    for method in [Method::GET, Method::DELETE] {
        let response = app.call(method, "/v1/users/not-a-uuid", Some(&admin.access)).await;
        assert_eq!(locs(&response), vec![(loc(&["path", "user_id"]), "uuid_parsing".into())]);
    }
}

#[tokio::test]
async fn deactivation_takes_effect_at_once() {
    let app = TestApp::memory();
    let (user, admin) = (app.user().await, app.superuser().await);
    let path = format!("/v1/users/{}", user.id);
    app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
    let refused = app.get("/v1/users/me", &user.access).await;
    assert_eq!((refused.status, refused.detail()), (StatusCode::FORBIDDEN, json!("Inactive user")));
    assert_eq!(app.get("/v1/items", &user.access).await.status, StatusCode::FORBIDDEN);
    app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": true})).await;
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    assert_eq!(
        app.refresh(&user.refresh).await.status,
        StatusCode::BAD_REQUEST,
        "deactivation ended sessions"
    );
}

#[tokio::test]
async fn unknown_methods_get_405_with_a_complete_allow_and_unknown_paths_404() {
    let app = TestApp::memory();
    let cases = [
        (Method::POST, "/v1/users/me", "GET,HEAD,PATCH,DELETE"),
        (Method::PUT, "/v1/users/signup", "POST"),
        (Method::GET, "/v1/users/me/password", "PATCH"),
        (Method::DELETE, "/v1/users", "GET,HEAD,POST"),
        (Method::POST, &format!("/v1/users/{}", uuid::Uuid::now_v7()), "GET,HEAD,PATCH,DELETE"),
    ];
    for (method, path, allow) in cases {
        let response = app.call(method.clone(), path, None).await;
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(response.detail(), "Method Not Allowed");
        let mut got: Vec<_> = response.header("allow").unwrap().split(',').map(str::trim).collect();
        let mut want: Vec<_> = allow.split(',').collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{method} {path}");
        assert!(response.header("x-request-id").is_some());
    }
    let missing = app.call(Method::GET, "/v1/users/me/nothing/here", None).await;
    assert_eq!((missing.status, missing.detail()), (StatusCode::NOT_FOUND, json!("Not Found")));
}

#[tokio::test]
async fn an_admin_delete_cascades_like_a_self_delete() {
    let app = TestApp::memory();
    let (user, admin) = (app.user().await, app.superuser().await);
    let item = app.item(&user.access, "owned").await;
    let deleted = app.delete(&format!("/v1/users/{}", user.id), &admin.access).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.purge_now().await.done, 1, "the worker purges what the user owned");
    assert_eq!(
        app.get(&format!("/v1/items/{}", item["id"].as_str().unwrap()), &admin.access).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.signup(&user.email, PASSWORD).await.status, StatusCode::CREATED, "email released");
}
