//! `Idempotency-Key` through the API (API.md, "Idempotency"): a retried `POST /v1/items` does
//! its work once and is answered with the first answer, marked `Idempotent-Replayed`; the same
//! key with another payload is a 422, a malformed key a 422 on the header; keys are the caller's.
//! The same for `PATCH /v1/items/{item_id}`, signup (whose caller is its source address) and a
//! superuser's `POST /v1/users`, whose passwords are compared against the account's own argon2
//! hash; a request in progress holds its key (409, `Retry-After`) until its lock passes, and a
//! request whose lock passed can no longer write.

// Test bodies: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::gated::GatedHasher;
use api_tests::{Backend, PASSWORD, TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use shared::repo::{Begin, Caller, IdempotencyKey};
use shared::web::address::context_with_source_ip;

async fn app(backend: Backend) -> TestApp {
    backend.app(api_tests::config()).await
}

on_both_stores!(
    a_retried_create_does_its_work_once_and_replays_its_answer,
    the_same_key_with_another_payload_is_a_422_and_a_malformed_key_a_422_on_the_header,
    a_key_is_its_callers_own,
    a_retried_update_bumps_the_version_once_and_a_key_belongs_to_its_path,
    a_handlers_own_4xx_is_kept_and_a_refused_caller_keeps_nothing,
    a_retried_signup_creates_one_account_and_another_password_is_another_payload,
    a_superusers_retried_create_creates_one_user,
    a_key_in_progress_is_a_409_until_its_lock_passes_and_a_late_request_writes_nothing,
    twenty_concurrent_requests_with_one_key_create_one_item,
    a_retry_without_its_password_or_with_wrong_ones_is_never_the_first_answer,
    a_token_that_no_longer_holds_gets_no_replay,
    two_keys_in_one_request_and_a_signup_from_nowhere_take_no_key,
    an_answer_too_large_to_keep_is_given_and_not_kept,
    a_handler_that_panics_frees_its_key,
    a_keyed_update_changes_only_what_it_names,
);

/// A signup with `key`, from the source address `source_ip`.
async fn signup_keyed(app: &TestApp, source_ip: &str, key: &str, body: &Value) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/v1/users/signup")
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    request.extensions_mut().insert(context_with_source_ip(source_ip));
    app.send(request).await
}

/// Whether `user`'s key `key` for `POST path` is free: taking it (as a probe) succeeds.
async fn key_is_free(app: &TestApp, user: uuid::Uuid, path: &str, key: &str) -> bool {
    let key = IdempotencyKey {
        caller: Caller::User(user),
        method: "POST".into(),
        path: path.into(),
        key: key.into(),
    };
    let now = shared::deps::Clock::now(app.clock.as_ref());
    let (lock, expiry) = (now + chrono::Duration::seconds(30), now + chrono::Duration::hours(1));
    app.state.repos.idempotency.begin(&key, "probe", lock, expiry, now).await.unwrap() == Begin::Started
}

fn replayed(response: &TestResponse, first: &TestResponse, what: &str) {
    assert_eq!(response.status, first.status, "{what}: {}", response.text());
    assert_eq!(response.header("idempotent-replayed"), Some("true"), "{what}");
    assert_eq!(response.body, first.body, "{what}");
    for name in ["location", "etag", "content-type"] {
        assert_eq!(response.header(name), first.header(name), "{what}: {name}");
    }
}

async fn keyed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    key: &str,
    body: Value,
) -> TestResponse {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap();
    app.send(request).await
}

async fn a_retried_create_does_its_work_once_and_replays_its_answer(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let first = keyed(
        &app,
        Method::POST,
        "/v1/items",
        &user.access,
        "k-1",
        json!({"title": "once", "description": "d"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(first.header("idempotent-replayed"), None);
    // Key order and whitespace do not matter: the payload is compared as parsed JSON.
    let again = keyed(
        &app,
        Method::POST,
        "/v1/items",
        &user.access,
        "k-1",
        json!({"description": "d", "title": "once"}),
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(again.header("etag"), first.header("etag"));
    let listed = app.get("/v1/items", &user.access).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "one item");
    // Without the header, requests behave as before.
    app.item(&user.access, "unkeyed").await;
    app.item(&user.access, "unkeyed").await;
    assert_eq!(app.get("/v1/items", &user.access).await.json()["data"].as_array().unwrap().len(), 3);
}

async fn the_same_key_with_another_payload_is_a_422_and_a_malformed_key_a_422_on_the_header(
    backend: Backend,
) {
    let app = app(backend).await;
    let user = app.user().await;
    keyed(&app, Method::POST, "/v1/items", &user.access, "k-2", json!({"title": "one"})).await;
    let other = keyed(&app, Method::POST, "/v1/items", &user.access, "k-2", json!({"title": "two"})).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(other.detail().is_string(), "{}", other.text());
    for bad in ["", &"x".repeat(256), "tab\there"] {
        let refused = keyed(&app, Method::POST, "/v1/items", &user.access, bad, json!({"title": "t"})).await;
        let errors = refused.validation_errors();
        assert_eq!(errors[0].0, json!(["header", "idempotency-key"]), "{bad:?}");
    }
}

async fn a_key_is_its_callers_own(backend: Backend) {
    let app = app(backend).await;
    let (a, b) = (app.user().await, app.user().await);
    let one = keyed(&app, Method::POST, "/v1/items", &a.access, "shared", json!({"title": "a's"})).await;
    let two = keyed(&app, Method::POST, "/v1/items", &b.access, "shared", json!({"title": "b's"})).await;
    assert_eq!((one.status, two.status), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(two.header("idempotent-replayed"), None);
    // An unauthenticated request with a key is the handler's 401, and records nothing.
    let anonymous =
        keyed(&app, Method::POST, "/v1/items", "not-a-token", "shared", json!({"title": "x"})).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

async fn a_retried_update_bumps_the_version_once_and_a_key_belongs_to_its_path(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let (one, two) = (app.item(&user.access, "one").await, app.item(&user.access, "two").await);
    let path = format!("/v1/items/{}", one["id"].as_str().unwrap());
    let change = json!({"title": "changed", "description": null});
    let first = keyed(&app, Method::PATCH, &path, &user.access, "p-1", change.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(first.header("etag"), Some("\"2\""));
    assert_eq!(first.json()["title"], "changed");
    let again = keyed(&app, Method::PATCH, &path, &user.access, "p-1", change.clone()).await;
    replayed(&again, &first, "the retried update");
    // One version bump; what the update wrote is what it answered, and what a read gives.
    let read = app.get(&path, &user.access).await;
    assert_eq!(read.header("etag"), Some("\"2\""));
    assert_eq!(read.json(), first.json());
    // The same key on another item's path is another key: that item is changed too.
    let other = format!("/v1/items/{}", two["id"].as_str().unwrap());
    let there = keyed(&app, Method::PATCH, &other, &user.access, "p-1", change.clone()).await;
    assert_eq!((there.status, there.header("idempotent-replayed")), (StatusCode::OK, None));
    // With If-Match, a keyed update keeps its precondition: a stale tag is a 412.
    let stale = Request::builder()
        .method(Method::PATCH)
        .uri(&other)
        .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_MATCH, "\"1\"")
        .header("idempotency-key", "p-2")
        .body(Body::from(json!({"title": "late"}).to_string()))
        .unwrap();
    assert_eq!(app.send(stale).await.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.get(&other, &user.access).await.json()["title"], "changed");
}

async fn a_handlers_own_4xx_is_kept_and_a_refused_caller_keeps_nothing(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let missing = format!("/v1/items/{}", uuid::Uuid::new_v4());
    let first = keyed(&app, Method::PATCH, &missing, &user.access, "m-1", json!({"title": "x"})).await;
    assert_eq!(first.status, StatusCode::NOT_FOUND);
    let again = keyed(&app, Method::PATCH, &missing, &user.access, "m-1", json!({"title": "x"})).await;
    replayed(&again, &first, "a kept 404");
    // A body the handler refuses (422) is kept as well.
    let bad = keyed(&app, Method::POST, "/v1/items", &user.access, "m-2", json!({"title": ""})).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_again = keyed(&app, Method::POST, "/v1/items", &user.access, "m-2", json!({"title": ""})).await;
    replayed(&bad_again, &bad, "a kept 422");
    // A 403 keeps nothing: the key is free again as soon as the answer is given.
    let new_user = json!({"email": "x@example.com", "password": PASSWORD});
    let refused = keyed(&app, Method::POST, "/v1/users", &user.access, "m-3", new_user).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(key_is_free(&app, user.id, "/v1/users", "m-3").await, "the 403 kept nothing");
}

async fn a_retried_signup_creates_one_account_and_another_password_is_another_payload(backend: Backend) {
    let app = app(backend).await;
    let body = json!({"email": "once@example.com", "password": PASSWORD, "full_name": "Once"});
    let first = signup_keyed(&app, "198.51.100.1", "s-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    // Key order does not matter; the password is checked against the account's argon2 hash.
    let reordered = json!({"full_name": "Once", "password": PASSWORD, "email": "once@example.com"});
    replayed(&signup_keyed(&app, "198.51.100.1", "s-1", &reordered).await, &first, "the retried signup");
    let other =
        json!({"email": "once@example.com", "password": "another long password", "full_name": "Once"});
    let refused = signup_keyed(&app, "198.51.100.1", "s-1", &other).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text());
    assert!(refused.detail().is_string());
    // Another source address is another caller: its key is its own, and the address is taken.
    let elsewhere = signup_keyed(&app, "198.51.100.2", "s-1", &body).await;
    assert_eq!((elsewhere.status, elsewhere.header("idempotent-replayed")), (StatusCode::CONFLICT, None));
    // The account works with its password, and the kept answer holds none.
    assert_eq!(app.login("once@example.com", PASSWORD).await.status, StatusCode::OK);
    assert!(!first.text().contains(PASSWORD));
}

async fn a_superusers_retried_create_creates_one_user(backend: Backend) {
    let app = app(backend).await;
    let admin = app.superuser().await;
    let body = json!({"email": "made@example.com", "password": PASSWORD, "is_superuser": false});
    let first = keyed(&app, Method::POST, "/v1/users", &admin.access, "u-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    let again = keyed(&app, Method::POST, "/v1/users", &admin.access, "u-1", body.clone()).await;
    replayed(&again, &first, "the retried create");
    let changed = json!({"email": "made@example.com", "password": PASSWORD, "is_superuser": true});
    let refused = keyed(&app, Method::POST, "/v1/users", &admin.access, "u-1", changed).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    let listed = app.get("/v1/users?limit=100", &admin.access).await.json();
    let made = listed["data"].as_array().unwrap().iter().filter(|u| u["email"] == "made@example.com").count();
    assert_eq!(made, 1);
}

async fn a_key_in_progress_is_a_409_until_its_lock_passes_and_a_late_request_writes_nothing(
    backend: Backend,
) {
    let hasher = GatedHasher::new(true);
    let app = backend.app_with(api_tests::config(), hasher.clone()).await;
    let body = json!({"email": "held@example.com", "password": PASSWORD});
    let (arrived, release) = hasher.arm();
    let (first, taken_over) = tokio::join!(signup_keyed(&app, "198.51.100.7", "h-1", &body), async {
        arrived.await.unwrap();
        let during = signup_keyed(&app, "198.51.100.7", "h-1", &body).await;
        assert_eq!(during.status, StatusCode::CONFLICT, "{}", during.text());
        let wait: i64 = during.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "Retry-After {wait}");
        assert!(during.detail().is_string());
        // The first request runs past its 30 s deadline (a Lambda timeout): its key is free,
        // and a retry does the work.
        app.clock.advance(chrono::Duration::seconds(31));
        let taken_over = signup_keyed(&app, "198.51.100.7", "h-1", &body).await;
        release.send(()).unwrap();
        taken_over
    });
    assert_eq!((taken_over.status, taken_over.header("idempotent-replayed")), (StatusCode::CREATED, None));
    // The request whose lock passed wrote nothing (its transaction carried its lock): a 503,
    // not kept, and one account.
    assert_eq!(first.status, StatusCode::SERVICE_UNAVAILABLE, "{}", first.text());
    replayed(&signup_keyed(&app, "198.51.100.7", "h-1", &body).await, &taken_over, "after the takeover");
    assert_eq!(app.login("held@example.com", PASSWORD).await.status, StatusCode::OK);
}

// What the race came to is printed for the record (`--nocapture`).
#[allow(clippy::print_stdout)]
async fn twenty_concurrent_requests_with_one_key_create_one_item(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (app, token) = (app.clone(), user.access.clone());
        requests.spawn(async move {
            keyed(&app, Method::POST, "/v1/items", &token, "race", json!({"title": "raced"})).await
        });
    }
    let answers = requests.join_all().await;
    let created: Vec<&TestResponse> = answers.iter().filter(|a| a.status == StatusCode::CREATED).collect();
    let in_progress = answers.iter().filter(|a| a.status == StatusCode::CONFLICT).count();
    assert_eq!(created.len() + in_progress, 20, "every answer the original or a 409");
    let first: Vec<&&TestResponse> =
        created.iter().filter(|a| a.header("idempotent-replayed").is_none()).collect();
    assert_eq!(first.len(), 1, "exactly one did the work");
    for replay in &created {
        assert_eq!(replay.body, first[0].body, "every 201 is the first answer");
    }
    let listed = app.get("/v1/items", &user.access).await.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "one item");
    println!(
        "20 concurrent requests: {} created or replayed, {in_progress} in progress (409)",
        created.len()
    );
}

async fn a_retry_without_its_password_or_with_wrong_ones_is_never_the_first_answer(backend: Backend) {
    let app = app(backend).await;
    let body = json!({"email": "pw@example.com", "password": PASSWORD, "full_name": "Pw"});
    let first = signup_keyed(&app, "198.51.100.3", "w-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // Without a password, or with one that is not a string: no key is taken, and the route
    // answers the body as it would without one.
    for body in [
        json!({"email": "pw@example.com", "full_name": "Pw"}),
        json!({"email": "pw@example.com", "password": 12345678, "full_name": "Pw"}),
    ] {
        let refused = signup_keyed(&app, "198.51.100.3", "w-1", &body).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.text());
        assert_eq!(refused.header("idempotent-replayed"), None);
        assert!(
            refused.validation_errors().iter().any(|(loc, _)| loc[1] == "password"),
            "{}",
            refused.text()
        );
    }
    // Wrong passwords are password checks, throttled as logins are: 5, then 429; the right one
    // clears what the wrong ones counted, as a login does.
    let wrong = json!({"email": "pw@example.com", "password": "not the password at all", "full_name": "Pw"});
    for n in 0..4 {
        let another = signup_keyed(&app, "198.51.100.3", "w-1", &wrong).await;
        assert_eq!(another.status, StatusCode::UNPROCESSABLE_ENTITY, "wrong password {n}");
    }
    replayed(&signup_keyed(&app, "198.51.100.3", "w-1", &body).await, &first, "the right password");
    for n in 0..5 {
        let another = signup_keyed(&app, "198.51.100.3", "w-1", &wrong).await;
        assert_eq!(
            another.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "wrong password {n} after the right one"
        );
    }
    let throttled = signup_keyed(&app, "198.51.100.3", "w-1", &wrong).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS, "{}", throttled.text());
    assert!(throttled.header("retry-after").is_some());
}

async fn a_token_that_no_longer_holds_gets_no_replay(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let body = json!({"title": "mine"});
    let first = keyed(&app, Method::POST, "/v1/items", &user.access, "t-1", body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED);
    // The password changes: every session of before ends, and with it any replay to it.
    let change = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    let changed = app.json(Method::PATCH, "/v1/users/me/password", Some(&user.access), change).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let stale = keyed(&app, Method::POST, "/v1/items", &user.access, "t-1", body.clone()).await;
    assert_eq!((stale.status, stale.header("idempotent-replayed")), (StatusCode::UNAUTHORIZED, None));
    // The check runs after authentication: a malformed key with a refused token is the 401.
    let both = keyed(&app, Method::POST, "/v1/items", &user.access, "", body.clone()).await;
    assert_eq!(both.status, StatusCode::UNAUTHORIZED);
    // A new session of the same user replays.
    let fresh = app.token_of(user.id).await;
    let again = keyed(&app, Method::POST, "/v1/items", &fresh, "t-1", body).await;
    replayed(&again, &first, "a new session");
}

async fn two_keys_in_one_request_and_a_signup_from_nowhere_take_no_key(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    let two = Request::builder()
        .method(Method::POST)
        .uri("/v1/items")
        .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
        .header(header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .body(Body::from(json!({"title": "t"}).to_string()))
        .unwrap();
    let refused = app.send(two).await;
    assert_eq!(refused.validation_errors()[0].0, json!(["header", "idempotency-key"]));
    // A signup whose source address is unknown shares that bucket with everyone's: no key.
    let body = json!({"email": "nowhere@example.com", "password": PASSWORD});
    let first = signup_keyed(&app, "not an address", "n-1", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let second = signup_keyed(&app, "not an address", "n-1", &body).await;
    assert_eq!((second.status, second.header("idempotent-replayed")), (StatusCode::CONFLICT, None));
}

async fn an_answer_too_large_to_keep_is_given_and_not_kept(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    // Thousands of unknown fields: each is a validation error, and the answer is over 350 KB.
    let mut fields = serde_json::Map::new();
    fields.insert("title".into(), json!("t"));
    for n in 0..7000u32 {
        // Short names, in base 36, so that the body stays under 64 KiB.
        let name: String =
            [n / 1296, n / 36 % 36, n % 36].iter().map(|d| char::from_digit(*d, 36).unwrap()).collect();
        fields.insert(format!("_{name}"), json!(0));
    }
    let body = Value::Object(fields);
    assert!(body.to_string().len() < 65_536);
    let first = keyed(&app, Method::POST, "/v1/items", &user.access, "big", body.clone()).await;
    assert_eq!(first.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(first.body.len() > shared::web::idempotency::MAX_KEPT_BYTES, "{} bytes", first.body.len());
    let again = keyed(&app, Method::POST, "/v1/items", &user.access, "big", body).await;
    assert_eq!((again.status, again.header("idempotent-replayed")), (StatusCode::UNPROCESSABLE_ENTITY, None));
}

async fn a_handler_that_panics_frees_its_key(backend: Backend) {
    use axum::handler::Handler;
    let app = app(backend).await;
    let user = app.user().await;
    async fn panics() -> StatusCode {
        panic!("a bug in a handler")
    }
    let state = app.state.clone();
    let keyed_layer = axum::middleware::from_fn_with_state(state.clone(), shared::web::idempotency::keyed);
    let router = shared::web::finish(
        axum::Router::new().route("/v1/items", axum::routing::post(panics.layer(keyed_layer))),
        state,
    );
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/items")
        .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
        .header("idempotency-key", "boom")
        .body(Body::empty())
        .unwrap();
    let response = tower::ServiceExt::oneshot(router, request).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(key_is_free(&app, user.id, "/v1/items", "boom").await, "the panic freed the key");
}

async fn a_keyed_update_changes_only_what_it_names(backend: Backend) {
    let app = app(backend).await;
    let user = app.user().await;
    // A record with an attribute the resource does not declare (one of before, or of a later
    // release): an update keeps it, keyed or not.
    let id = uuid::Uuid::now_v7();
    let now = shared::deps::format_timestamp(&shared::deps::Clock::now(app.clock.as_ref()));
    let Value::Object(record) = json!({
        "id": id, "owner_id": user.id, "title": "t", "version": 1,
        "created_at": now, "updated_at": now, "legacy_note": "kept"
    }) else {
        unreachable!()
    };
    let kind = shared::repo::keys::ITEM;
    assert!(app.state.repos.resources.create_resource(kind, user.id, id, &record, None).await.unwrap());
    let path = format!("/v1/items/{id}");
    let changed = keyed(&app, Method::PATCH, &path, &user.access, "u-1", json!({"title": "new"})).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(changed.header("etag"), Some("\"2\""));
    let stored = app.state.repos.resources.get_resource(kind, user.id, id).await.unwrap().unwrap();
    assert_eq!((stored["title"].clone(), stored["legacy_note"].clone()), (json!("new"), json!("kept")));
    assert_eq!(stored["version"], json!(2));
}
