//! The `items` function in-process: CRUD, ETag / If-Match, ownership without existence leaks,
//! listings with owner-bound cursors, and the superuser's reach.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

fn loc(parts: &[&str]) -> Value {
    json!(parts)
}

async fn patch_if_match(app: &TestApp, path: &str, token: &str, if_match: &str, body: Value) -> TestResponse {
    let request = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("if-match", if_match)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

async fn delete_if_match(app: &TestApp, path: &str, token: &str, if_match: &str) -> TestResponse {
    let request = Request::builder()
        .method(Method::DELETE)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("if-match", if_match)
        .body(Body::empty())
        .unwrap();
    app.send(request).await
}

#[tokio::test]
async fn creating_an_item_returns_it_with_location_and_etag() {
    let app = TestApp::memory();
    let user = app.user().await;
    let response = app
        .json(Method::POST, "/v1/items", Some(&user.access), json!({"title": "Milk", "description": "2 l"}))
        .await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
    let body = response.json();
    let id = body["id"].as_str().unwrap();
    assert_eq!(response.header("location"), Some(format!("/v1/items/{id}").as_str()));
    assert_eq!(response.header("etag"), Some("\"1\""));
    assert_eq!((body["title"].as_str(), body["description"].as_str()), (Some("Milk"), Some("2 l")));
    assert_eq!(
        (body["owner_id"].as_str(), body["version"].as_u64()),
        (Some(user.id.to_string().as_str()), Some(1))
    );
    assert_eq!(body.as_object().unwrap().len(), 7);
    assert_eq!(body["created_at"], body["updated_at"]);
    let fetched = app.get(&format!("/v1/items/{id}"), &user.access).await;
    assert_eq!((fetched.status, fetched.header("etag")), (StatusCode::OK, Some("\"1\"")));
    assert_eq!(fetched.json(), body);
}

#[tokio::test]
async fn item_bodies_are_validated_and_protected_fields_refused() {
    let app = TestApp::memory();
    let user = app.user().await;
    let cases = [
        (json!({}), vec![(loc(&["body", "title"]), "missing")]),
        (json!({"title": ""}), vec![(loc(&["body", "title"]), "string_too_short")]),
        (json!({"title": "x".repeat(256)}), vec![(loc(&["body", "title"]), "string_too_long")]),
        (
            json!({"title": "ok", "description": "d".repeat(4001)}),
            vec![(loc(&["body", "description"]), "string_too_long")],
        ),
        (json!({"title": null}), vec![(loc(&["body", "title"]), "string_type")]),
        (json!({"title": "ok", "owner_id": user.id}), vec![(loc(&["body", "owner_id"]), "extra_forbidden")]),
        (json!({"title": "ok", "version": 9}), vec![(loc(&["body", "version"]), "extra_forbidden")]),
    ];
    for (body, expected) in cases {
        let response = app.json(Method::POST, "/v1/items", Some(&user.access), body.clone()).await;
        let expected: Vec<_> = expected.into_iter().map(|(l, t)| (l, t.to_owned())).collect();
        assert_eq!(response.validation_errors(), expected, "{body}");
    }
    let max = app
        .json(
            Method::POST,
            "/v1/items",
            Some(&user.access),
            json!({"title": "t".repeat(255), "description": "d".repeat(4000)}),
        )
        .await;
    assert_eq!(max.status, StatusCode::CREATED);
    let unicode =
        app.json(Method::POST, "/v1/items", Some(&user.access), json!({"title": "é".repeat(255)})).await;
    assert_eq!(unicode.status, StatusCode::CREATED, "lengths count characters, not bytes");
}

#[tokio::test]
async fn updates_bump_the_version_and_honour_null_and_absent() {
    let app = TestApp::memory();
    let user = app.user().await;
    let item = app.item(&user.access, "Eggs").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let described =
        app.json(Method::PATCH, &path, Some(&user.access), json!({"description": "a dozen"})).await;
    assert_eq!(described.status, StatusCode::OK);
    assert_eq!(described.header("etag"), Some("\"2\""));
    let body = described.json();
    assert_eq!(
        (body["title"].as_str(), body["description"].as_str(), body["version"].as_u64()),
        (Some("Eggs"), Some("a dozen"), Some(2))
    );
    let cleared =
        app.json(Method::PATCH, &path, Some(&user.access), json!({"description": null})).await.json();
    assert_eq!((cleared["description"].clone(), cleared["version"].as_u64()), (Value::Null, Some(3)));
    let empty = app.json(Method::PATCH, &path, Some(&user.access), json!({})).await;
    assert_eq!(
        (empty.status, empty.json()["version"].as_u64()),
        (StatusCode::OK, Some(3)),
        "{{}} changes nothing"
    );
    let bad = app.json(Method::PATCH, &path, Some(&user.access), json!({"title": "", "id": "x"})).await;
    assert_eq!(
        bad.validation_errors(),
        vec![
            (loc(&["body", "title"]), "string_too_short".to_owned()),
            (loc(&["body", "id"]), "extra_forbidden".to_owned())
        ]
    );
    assert_eq!(app.get(&path, &user.access).await.json()["version"], 3);
}

#[tokio::test]
async fn if_match_guards_updates_and_deletes() {
    let app = TestApp::memory();
    let user = app.user().await;
    let item = app.item(&user.access, "Bread").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let ok = patch_if_match(&app, &path, &user.access, "\"1\"", json!({"title": "Rye"})).await;
    assert_eq!((ok.status, ok.header("etag")), (StatusCode::OK, Some("\"2\"")));
    let stale = patch_if_match(&app, &path, &user.access, "\"1\"", json!({"title": "Lost"})).await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert!(stale.detail().is_string());
    let stale_empty = patch_if_match(&app, &path, &user.access, "\"1\"", json!({})).await;
    assert_eq!(stale_empty.status, StatusCode::PRECONDITION_FAILED);
    let weak = patch_if_match(&app, &path, &user.access, "W/\"2\"", json!({"title": "Weak"})).await;
    assert_eq!(weak.status, StatusCode::PRECONDITION_FAILED, "weak tags never match");
    let listed = patch_if_match(&app, &path, &user.access, "\"7\", \"2\"", json!({"title": "Listed"})).await;
    assert_eq!(listed.status, StatusCode::OK);
    let star = patch_if_match(&app, &path, &user.access, "*", json!({"title": "Any"})).await;
    assert_eq!((star.status, star.json()["version"].as_u64()), (StatusCode::OK, Some(4)));
    // Not an entity tag at all: it names no version the item can have.
    for malformed in ["4", "null", "\"4", "*, \"4\"", ""] {
        let reply = patch_if_match(&app, &path, &user.access, malformed, json!({"title": "x"})).await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED, "{malformed:?}");
    }
    assert_eq!(app.get(&path, &user.access).await.json()["title"], "Any");

    assert_eq!(
        delete_if_match(&app, &path, &user.access, "\"3\"").await.status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(app.get(&path, &user.access).await.status, StatusCode::OK, "still there");
    assert_eq!(delete_if_match(&app, &path, &user.access, "\"4\"").await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &user.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, &user.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        patch_if_match(&app, &path, &user.access, "*", json!({"title": "x"})).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn another_users_item_is_404_and_stays_unchanged() {
    let app = TestApp::memory();
    let (owner, intruder) = (app.user().await, app.user().await);
    let item = app.item(&owner.access, "Private").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let attempts = [
        app.get(&path, &intruder.access).await,
        app.json(Method::PATCH, &path, Some(&intruder.access), json!({"title": "Mine now"})).await,
        app.json(Method::PATCH, &path, Some(&intruder.access), json!({})).await,
        patch_if_match(&app, &path, &intruder.access, "\"1\"", json!({"title": "Mine now"})).await,
        app.delete(&path, &intruder.access).await,
        delete_if_match(&app, &path, &intruder.access, "*").await,
    ];
    for response in attempts {
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{}", response.text());
        assert_eq!(response.detail(), "Item not found");
    }
    let missing = app.get(&format!("/v1/items/{}", uuid::Uuid::now_v7()), &intruder.access).await;
    assert_eq!(missing.body, app.get(&path, &intruder.access).await.body, "no existence leak");
    assert_eq!(app.get(&path, &owner.access).await.json(), item, "unchanged");
    let listing = app.get("/v1/items", &intruder.access).await.json();
    assert_eq!(listing["data"], json!([]));
}

#[tokio::test]
async fn an_item_id_that_is_not_a_uuid_is_422() {
    let app = TestApp::memory();
    let user = app.user().await;
    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = if method == Method::PATCH {
            app.json(method, "/v1/items/42", Some(&user.access), json!({})).await
        } else {
            app.call(method, "/v1/items/42", Some(&user.access)).await
        };
        assert_eq!(
            response.validation_errors(),
            vec![(loc(&["path", "item_id"]), "uuid_parsing".to_owned())]
        );
    }
    let unauthenticated = app.call(Method::GET, "/v1/items/42", None).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED, "authentication comes first, as in FastAPI");
}

#[tokio::test]
async fn listings_are_newest_first_with_cursors_bound_to_the_owner() {
    let app = TestApp::memory();
    let (user, other) = (app.user().await, app.user().await);
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(app.item(&user.access, &format!("item {n}")).await["id"].as_str().unwrap().to_owned());
    }
    app.item(&other.access, "not mine").await;
    created.reverse();
    let first = app.get("/v1/items?limit=2", &user.access).await.json();
    let ids = |page: &Value| {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), created[..2]);
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app.get(&format!("/v1/items?limit=10&cursor={cursor}"), &user.access).await.json();
    assert_eq!(ids(&rest), created[2..]);
    assert_eq!(rest["next_cursor"], Value::Null);

    let foreign = app.get(&format!("/v1/items?cursor={cursor}"), &other.access).await;
    assert_eq!(foreign.validation_errors(), vec![(loc(&["query", "cursor"]), "value_error".to_owned())]);
    let forged = app.get("/v1/items?cursor=bm90LWEtY3Vyc29y", &user.access).await;
    assert_eq!(forged.validation_errors(), vec![(loc(&["query", "cursor"]), "value_error".to_owned())]);
    let limit = app.get("/v1/items?limit=0&owner_id=nope", &user.access).await;
    assert_eq!(
        limit.validation_errors(),
        vec![
            (loc(&["query", "limit"]), "greater_than_equal".to_owned()),
            (loc(&["query", "owner_id"]), "uuid_parsing".to_owned())
        ]
    );
}

#[tokio::test]
async fn only_a_superuser_lists_or_touches_another_users_items() {
    let app = TestApp::memory();
    let (user, other, admin) = (app.user().await, app.user().await, app.superuser().await);
    let item = app.item(&user.access, "Owned").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());

    let by_owner = format!("/v1/items?owner_id={}", user.id);
    assert_eq!(app.get(&by_owner, &other.access).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.get(&by_owner, &user.access).await.status, StatusCode::OK, "one's own id is fine");
    let listed = app.get(&by_owner, &admin.access).await.json();
    assert_eq!(listed["data"][0]["id"], item["id"]);
    assert_eq!(app.get("/v1/items", &admin.access).await.json()["data"], json!([]), "default: own items");

    assert_eq!(app.get(&path, &admin.access).await.status, StatusCode::OK);
    let edited = app.json(Method::PATCH, &path, Some(&admin.access), json!({"title": "Moderated"})).await;
    assert_eq!(
        (edited.status, edited.json()["owner_id"].as_str()),
        (StatusCode::OK, Some(user.id.to_string().as_str()))
    );
    assert_eq!(app.get(&path, &user.access).await.json()["title"], "Moderated");
    assert_eq!(app.delete(&path, &admin.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&path, &user.access).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn item_routes_answer_405_with_allow() {
    let app = TestApp::memory();
    let collection = app.call(Method::PUT, "/v1/items", None).await;
    assert_eq!(collection.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(collection.header("allow"), Some("GET,HEAD,POST"));
    let one = app.call(Method::POST, &format!("/v1/items/{}", uuid::Uuid::now_v7()), None).await;
    assert_eq!(one.header("allow"), Some("GET,HEAD,PATCH,DELETE"));
    assert_eq!(one.detail(), "Method Not Allowed");
}
