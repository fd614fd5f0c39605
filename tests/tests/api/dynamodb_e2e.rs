//! End to end against DynamoDB Local: the three functions' routers over a real table, with the
//! production argon2 parameters, including the races API.md promises to win.

// Test bodies shared by several #[tokio::test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{PASSWORD, TestApp, TestResponse, dynamo};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use tokio::task::JoinSet;

async fn app() -> TestApp {
    TestApp::from_state(dynamo::app_state().await)
}

/// Runs `n` copies of a request concurrently and returns their statuses.
async fn concurrently<F, Fut>(n: usize, make: F) -> Vec<TestResponse>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = TestResponse> + Send + 'static,
{
    let mut set = JoinSet::new();
    for i in 0..n {
        set.spawn(make(i));
    }
    let mut responses = Vec::with_capacity(n);
    while let Some(done) = set.join_next().await {
        responses.push(done.expect("request task"));
    }
    responses
}

fn count(responses: &[TestResponse], status: StatusCode) -> usize {
    responses.iter().filter(|r| r.status == status).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_whole_api_works_on_dynamodb() {
    let app = app().await;
    let user = app.user().await;
    let admin = app.superuser().await;

    let item = app.json(Method::POST, "/v1/items", Some(&user.access), json!({"title": "Milk"})).await;
    assert_eq!(item.status, StatusCode::CREATED, "{}", item.text());
    let path = item.header("location").expect("location").to_owned();
    let updated = app.json(Method::PATCH, &path, Some(&user.access), json!({"description": "2 l"})).await;
    assert_eq!((updated.status, updated.header("etag")), (StatusCode::OK, Some("\"2\"")));
    assert_eq!(
        app.get(&path, &admin.access).await.json()["description"],
        "2 l",
        "superuser via the owner pointer"
    );
    for n in 0..3 {
        app.item(&user.access, &format!("more {n}")).await;
    }
    let page = app.get("/v1/items?limit=2", &user.access).await.json();
    assert_eq!(page["data"][0]["title"], "more 2", "newest first");
    let cursor = page["next_cursor"].as_str().expect("cursor");
    let rest = app.get(&format!("/v1/items?limit=2&cursor={cursor}"), &user.access).await.json();
    assert_eq!(
        (rest["data"][1]["title"].as_str(), &rest["next_cursor"]),
        (Some("Milk"), &serde_json::Value::Null)
    );

    let renamed = format!("renamed-{}", user.email);
    let moved = app
        .json(
            Method::PATCH,
            "/v1/users/me",
            Some(&user.access),
            json!({"email": renamed, "current_password": PASSWORD}),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!(app.signup(&user.email, PASSWORD).await.status, StatusCode::CREATED, "old email released");
    let rotated = app.refresh(&user.refresh).await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST, "reuse");
    let second = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(app.refresh(&second).await.status, StatusCode::BAD_REQUEST, "family revoked");

    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.purge_now().await.done, 1, "the worker's purge");
    assert_eq!(app.get(&path, &admin.access).await.status, StatusCode::NOT_FOUND, "items purged");
    assert_eq!(app.login(&renamed, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    let owner = format!("/v1/items?owner_id={}", user.id);
    assert_eq!(app.get(&owner, &admin.access).await.json()["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_signups_with_one_email_create_exactly_one_user() {
    let app = app().await;
    let responses = concurrently(20, |i| {
        let app = app.clone();
        // The same account, spelled differently.
        let email = if i % 2 == 0 { "race@example.com" } else { "  RACE@Example.com" };
        async move { app.signup(email, PASSWORD).await }
    })
    .await;
    assert_eq!((count(&responses, StatusCode::CREATED), count(&responses, StatusCode::CONFLICT)), (1, 19));
    let admin = app.superuser().await;
    let users = app.get("/v1/users", &admin.access).await.json();
    assert_eq!(users["data"].as_array().unwrap().len(), 2, "the winner and the admin, nothing half-written");
}

async fn patch(
    app: TestApp,
    path: String,
    token: String,
    if_match: Option<&'static str>,
    title: String,
) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::PATCH)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    if let Some(tag) = if_match {
        request = request.header("if-match", tag);
    }
    app.send(request.body(Body::from(json!({"title": title}).to_string())).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_patches_with_one_if_match_let_exactly_one_win() {
    let app = app().await;
    let user = app.user().await;
    let item = app.item(&user.access, "contested").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let responses = concurrently(20, |i| {
        patch(app.clone(), path.clone(), user.access.clone(), Some("\"1\""), format!("writer {i}"))
    })
    .await;
    assert_eq!(
        (count(&responses, StatusCode::OK), count(&responses, StatusCode::PRECONDITION_FAILED)),
        (1, 19)
    );
    let winner = responses.iter().find(|r| r.status == StatusCode::OK).unwrap().json();
    let now = app.get(&path, &user.access).await.json();
    assert_eq!((now["title"].clone(), now["version"].as_u64()), (winner["title"].clone(), Some(2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_blind_patches_all_land() {
    let app = app().await;
    let user = app.user().await;
    let item = app.item(&user.access, "counter").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let responses = concurrently(20, |i| {
        patch(app.clone(), path.clone(), user.access.clone(), None, format!("writer {i}"))
    })
    .await;
    assert_eq!(count(&responses, StatusCode::OK), 20);
    let mut versions: Vec<u64> = responses.iter().map(|r| r.json()["version"].as_u64().unwrap()).collect();
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<_>>(), "each success bumped the version by exactly one");
    assert_eq!(app.get(&path, &user.access).await.json()["version"], 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_refreshes_of_one_token_let_at_most_one_through() {
    let app = app().await;
    let user = app.user().await;
    let responses = concurrently(10, |_| {
        let (app, token) = (app.clone(), user.refresh.clone());
        async move { app.refresh(&token).await }
    })
    .await;
    assert!(
        count(&responses, StatusCode::OK) <= 1,
        "{:?}",
        responses.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(count(&responses, StatusCode::OK) + count(&responses, StatusCode::BAD_REQUEST), 10);
    for r in responses.iter().filter(|r| r.status == StatusCode::BAD_REQUEST) {
        assert_eq!(r.json()["error"], "invalid_grant");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_throttling_counts_in_dynamodb() {
    let app = app().await;
    let user = app.user().await;
    for _ in 0..5 {
        assert_eq!(app.login(&user.email, "wrong password").await.status, StatusCode::BAD_REQUEST);
    }
    let throttled = app.login(&user.email, PASSWORD).await;
    assert_eq!(
        (throttled.status, throttled.header("retry-after")),
        (StatusCode::TOO_MANY_REQUESTS, Some("900"))
    );
    app.clock.advance(chrono::Duration::minutes(15));
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
    let guesses = concurrently(20, |n| {
        let (app, email) = (app.clone(), user.email.clone());
        async move { app.login(&email, &format!("guess number {n}")).await }
    })
    .await;
    assert_eq!(
        (count(&guesses, StatusCode::BAD_REQUEST), count(&guesses, StatusCode::TOO_MANY_REQUESTS)),
        (5, 15),
        "concurrent guesses cannot exceed the limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_dynamodb_is_a_503_with_retry_after() {
    let mut config = api_tests::config();
    // A port with nothing listening on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.dynamodb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let client = dynamo::client(&config).await;
    let store = std::sync::Arc::new(shared::repo::dynamo::DynamoStore::new(client, "absent"));
    let state = shared::AppState::new(config, shared::repo::Repos::from_store(store))
        .with_hasher(api_tests::fast_hasher());
    let app = TestApp::from_state(state);
    let signup = app.signup("down@example.com", PASSWORD).await;
    assert_eq!(signup.status, StatusCode::SERVICE_UNAVAILABLE, "{}", signup.text());
    assert_eq!(signup.json(), json!({"detail": "Service temporarily unavailable"}));
    assert!(signup.header("retry-after").is_some());
    let login = app.login("down@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!login.text().contains("127.0.0.1"), "no internals in the body");
}
