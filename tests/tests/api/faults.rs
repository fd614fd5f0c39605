//! Faults in the middle of requests, against DynamoDB Local behind a fault-injecting proxy
//! (`api_tests::faults`): errors, throttling, slowness and lost responses become a 503 with
//! `Retry-After` — never a panic or a 500 — and afterwards the real table holds nothing
//! half-written: no user without its email reservation or the reverse, no item version bumped
//! by a failed write, a failed delete leaves the account whole, and a purge that failed part-way
//! completes on its next run.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::faults::{Fault, FaultProxy, Rule};
use api_tests::{PASSWORD, TestApp, TestResponse};
use axum::http::{Method, StatusCode};
use serde_json::json;
use shared::AppState;
use shared::repo::Repos;
use shared::repo::dynamo::DynamoStore;

const SERVER_ERROR: Fault = Fault::Error { status: 500, kind: "InternalServerError" };
const THROTTLED: Fault = Fault::Error { status: 400, kind: "ProvisionedThroughputExceededException" };

struct Rig {
    app: TestApp,
    proxy: FaultProxy,
    direct: Arc<DynamoStore>,
}

/// The API over a fresh table, reached through the proxy; `direct` reads the table itself.
async fn rig() -> Rig {
    let config = api_tests::dynamo::config();
    let direct = api_tests::dynamo::store_with(&config).await;
    let proxy = FaultProxy::start(config.dynamodb_endpoint.clone().unwrap()).await;
    let mut proxied = config.clone();
    proxied.dynamodb_endpoint = Some(proxy.endpoint.clone());
    let client = api_tests::dynamo::client(&proxied).await;
    let store = Arc::new(DynamoStore::new(client, config.table_name.clone()));
    let state = AppState::new(proxied, Repos::from_store(store)).with_hasher(api_tests::fast_hasher());
    Rig { app: TestApp::from_state(state), proxy, direct }
}

/// Every (PK, SK) in the table: a test may scan.
async fn records(direct: &DynamoStore) -> Vec<(String, String)> {
    let out = direct.client().scan().table_name(direct.table()).send().await.unwrap();
    let mut keys: Vec<(String, String)> = out
        .items()
        .iter()
        .map(|item| {
            let s = |k: &str| item[k].as_s().unwrap().clone();
            (s("PK"), s("SK"))
        })
        .collect();
    keys.sort();
    keys
}

fn unavailable(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", response.text());
    assert_eq!(response.json(), json!({"detail": "Service temporarily unavailable"}), "{what}");
    assert!(response.header("retry-after").is_some(), "{what}");
}

fn count(records: &[(String, String)], pk_prefix: &str, sk: &str) -> usize {
    records.iter().filter(|(pk, s)| pk.starts_with(pk_prefix) && s == sk).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_signup_leaves_neither_a_user_nor_a_reservation() {
    let rig = rig().await;
    rig.proxy.add(Rule::always("TransactWriteItems", SERVER_ERROR));
    unavailable(&rig.app.signup("failed@example.com", PASSWORD).await, "signup");
    assert_eq!(records(&rig.direct).await, [], "nothing written");
    rig.proxy.clear();
    assert_eq!(rig.app.signup("failed@example.com", PASSWORD).await.status, StatusCode::CREATED);
    let after = records(&rig.direct).await;
    assert_eq!((count(&after, "USER#", "USER"), count(&after, "EMAIL#", "EMAIL")), (1, 1));
    println!("faults injected: {}", rig.proxy.injected());
}

/// A transaction that committed, answered as still in progress: the retry must be the same
/// transaction (one idempotency token), which DynamoDB then answers as the success it was. Under
/// a new token its conditions, now false, would turn each success into a refusal: a signup into
/// 409, a login into `invalid_grant`, a rotation into reuse (revoking the family), an item's
/// creation into a 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_answered_in_progress_is_retried_as_the_same_one() {
    let rig = rig().await;
    let once = || {
        rig.proxy.clear();
        let fault = Fault::LandThenAnswer { status: 400, kind: "TransactionInProgressException" };
        // As many times as the SDK tries one call (3): it gives up, and our own retry follows.
        rig.proxy.add(Rule { operation: "TransactWriteItems", fault, skip: 0, times: 3 });
    };
    once();
    let signup = rig.app.signup("in-progress@example.com", PASSWORD).await;
    assert_eq!(signup.status, StatusCode::CREATED, "signup: {}", signup.text());
    once();
    let login = rig.app.login("in-progress@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "login: {}", login.text());
    let access = login.json()["access_token"].as_str().unwrap().to_owned();
    once();
    let rotated = rig.app.refresh(login.json()["refresh_token"].as_str().unwrap()).await;
    assert_eq!(rotated.status, StatusCode::OK, "rotation: {}", rotated.text());
    once();
    let item = rig.app.json(Method::POST, "/v1/items", Some(&access), json!({"title": "once"})).await;
    assert_eq!(item.status, StatusCode::CREATED, "item: {}", item.text());
    rig.proxy.clear();
    assert_eq!(rig.proxy.injected(), 12);
    // The family was not revoked as reuse: the rotated token rotates again.
    let again = rig.app.refresh(rotated.json()["refresh_token"].as_str().unwrap()).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    let after = records(&rig.direct).await;
    assert_eq!((count(&after, "USER#", "USER"), count(&after, "EMAIL#", "EMAIL")), (1, 1), "{after:?}");
    let items = rig.app.get("/v1/items", &access).await.json();
    assert_eq!(items["data"].as_array().unwrap().len(), 1, "one item: {items}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signup_whose_answer_was_lost_is_whole_or_absent() {
    let rig = rig().await;
    // The transaction reaches DynamoDB and commits; its answer is lost on the way back.
    rig.proxy.add(Rule { operation: "TransactWriteItems", fault: Fault::LoseResponse, skip: 0, times: 1 });
    let first = rig.app.signup("lost@example.com", PASSWORD).await;
    assert!(
        [StatusCode::CREATED, StatusCode::SERVICE_UNAVAILABLE].contains(&first.status),
        "{}",
        first.text()
    );
    let after = records(&rig.direct).await;
    assert_eq!(count(&after, "USER#", "USER"), count(&after, "EMAIL#", "EMAIL"), "{after:?}");
    assert_eq!(count(&after, "USER#", "USER"), 1, "the resent transaction is the same one: {after:?}");
    assert_eq!(rig.app.signup("lost@example.com", PASSWORD).await.status, StatusCode::CONFLICT);
    assert_eq!(rig.app.login("lost@example.com", PASSWORD).await.status, StatusCode::OK);
    println!("faults injected: {}", rig.proxy.injected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delete_leaves_the_account_whole() {
    let rig = rig().await;
    let user = rig.app.user().await;
    rig.app.item(&user.access, "kept").await;
    let before = records(&rig.direct).await;
    rig.proxy.add(Rule::always("TransactWriteItems", SERVER_ERROR));
    unavailable(&rig.app.delete("/v1/users/me", &user.access).await, "delete");
    assert_eq!(records(&rig.direct).await, before, "neither the user gone nor a purge recorded");
    rig.proxy.clear();
    assert_eq!(rig.app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    assert_eq!(rig.app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    println!("faults injected: {}", rig.proxy.injected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_failed_part_way_completes_on_the_next_run() {
    let rig = rig().await;
    let app = &rig.app;
    let bystander = app.user().await;
    app.item(&bystander.access, "not theirs to delete").await;
    let before_user = records(&rig.direct).await;
    let user = app.user().await;
    // 140 items (each with its owner pointer) and two logins: two pages of the purge, each more
    // than one batch of 25 deletes.
    for n in 0..140 {
        app.item(&user.access, &format!("item {n}")).await;
    }
    let second = app.login(&user.email, PASSWORD).await;
    assert_eq!(second.status, StatusCode::OK);
    let full = records(&rig.direct).await.len();
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    // The first page's first batch lands, every later one fails.
    rig.proxy.add(Rule { operation: "BatchWriteItem", fault: SERVER_ERROR, skip: 1, times: usize::MAX });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let state = &app.state;
    let failed = shared::purge::run(state.repos.purges.as_ref(), app.clock.as_ref(), user.id, deadline).await;
    assert!(failed.is_err(), "{failed:?}");
    let mid = records(&rig.direct).await;
    assert!(mid.len() < full - 2 && mid.len() > before_user.len(), "{} of {full} records left", mid.len());
    assert_eq!(count(&mid, "PURGES#", &format!("USER#{}", user.id)), 1, "the purge is still recorded");
    rig.proxy.clear();
    let done = shared::purge::run(state.repos.purges.as_ref(), app.clock.as_ref(), user.id, deadline).await;
    assert!(matches!(done, Ok(shared::purge::Run::Done { .. })), "{done:?}");
    // (Its signup's verification is the outbox's: the worker, which did not run here, drops it.)
    let not_mail = |records: Vec<(String, String)>| -> Vec<(String, String)> {
        records.into_iter().filter(|(pk, _)| !pk.starts_with(shared::repo::keys::OUTBOX_PREFIX)).collect()
    };
    assert_eq!(
        not_mail(records(&rig.direct).await),
        not_mail(before_user),
        "everything of the user is gone, nothing else"
    );
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    println!("faults injected: {}", rig.proxy.injected());
}

/// The requests DynamoDB received for one `DELETE /v1/users/me` of a user owning `items`.
async fn requests_to_delete_a_user_owning(items: usize) -> usize {
    let rig = rig().await;
    let user = rig.app.user().await;
    let owner = user.id;
    let store = &rig.direct;
    let now = chrono::Utc::now();
    for n in 0..items {
        let record = items::ItemRecord {
            id: uuid::Uuid::now_v7(),
            owner_id: owner,
            fields: items::Item { title: format!("item {n}"), description: None },
            version: 1,
            created_at: now,
            updated_at: now,
        };
        assert!(api_tests::item_store::ItemStore::create_item(store.as_ref(), &record).await.unwrap());
    }
    let before = rig.proxy.forwarded();
    assert_eq!(rig.app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    rig.proxy.forwarded() - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_makes_as_many_requests_for_300_items_as_for_none() {
    let none = requests_to_delete_a_user_owning(0).await;
    let many = requests_to_delete_a_user_owning(300).await;
    assert_eq!(many, none, "the answer's work does not grow with what the user owns");
    assert!(none <= 4, "{none} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_update_bumps_no_version() {
    let rig = rig().await;
    let user = rig.app.user().await;
    let item = rig.app.item(&user.access, "before").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    for fault in [SERVER_ERROR, THROTTLED] {
        rig.proxy.add(Rule::always("UpdateItem", fault));
        let patch = rig.app.json(Method::PATCH, &path, Some(&user.access), json!({"title": "after"})).await;
        unavailable(&patch, "patch");
        rig.proxy.clear();
        let now = rig.app.get(&path, &user.access).await.json();
        assert_eq!((now["title"].as_str(), now["version"].as_u64()), (Some("before"), Some(1)));
    }
    let patch = rig.app.json(Method::PATCH, &path, Some(&user.access), json!({"title": "after"})).await;
    assert_eq!((patch.status, patch.json()["version"].as_u64()), (StatusCode::OK, Some(2)));
    println!("faults injected: {}", rig.proxy.injected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_throttled_at_any_step_is_a_503_and_the_next_one_works() {
    let rig = rig().await;
    let user = rig.app.user().await;
    for operation in ["UpdateItem", "PutItem", "GetItem"] {
        rig.proxy.add(Rule::always(operation, THROTTLED));
        unavailable(&rig.app.login(&user.email, PASSWORD).await, operation);
        rig.proxy.clear();
    }
    assert_eq!(rig.app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
    println!("faults injected: {}", rig.proxy.injected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_dynamodb_is_a_503_before_the_function_times_out() {
    let rig = rig().await;
    let user = rig.app.user().await;
    // Slower than an attempt may take (2 s): every attempt times out.
    rig.proxy.add(Rule::always("GetItem", Fault::Delay(Duration::from_secs(3))));
    let started = Instant::now();
    unavailable(&rig.app.get("/v1/users/me", &user.access).await, "read");
    let took = started.elapsed();
    // Inside template.yaml's 10 s function timeout, so the caller gets the contract's answer.
    assert!(took < Duration::from_secs(9), "took {took:?}");
    rig.proxy.clear();
    assert_eq!(rig.app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    println!("faults injected: {}", rig.proxy.injected());
}

/// A `POST /v1/items` with an `Idempotency-Key`.
async fn keyed_item(app: &TestApp, token: &str, key: &str, title: &str) -> TestResponse {
    let request = axum::http::Request::builder()
        .method(Method::POST)
        .uri("/v1/items")
        .header(axum::http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .header("idempotency-key", key)
        .body(axum::body::Body::from(json!({"title": title}).to_string()))
        .unwrap();
    app.send(request).await
}

fn items_in(records: &[(String, String)]) -> usize {
    records.iter().filter(|(pk, sk)| pk.starts_with("USER#") && sk.starts_with("ITEM#")).count()
}

fn keys_in(records: &[(String, String)]) -> usize {
    records.iter().filter(|(_, sk)| sk.starts_with("IDEM#")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_that_cannot_be_taken_is_a_503_and_no_work() {
    let rig = rig().await;
    let user = rig.app.user().await;
    // Taking the key is the request's only PutItem.
    rig.proxy.add(Rule::always("PutItem", SERVER_ERROR));
    unavailable(&keyed_item(&rig.app, &user.access, "f-1", "never").await, "taking the key");
    rig.proxy.clear();
    let after = records(&rig.direct).await;
    assert_eq!((items_in(&after), keys_in(&after)), (0, 0), "no work, no key");
    let retried = keyed_item(&rig.app, &user.access, "f-1", "never").await;
    assert_eq!((retried.status, retried.header("idempotent-replayed")), (StatusCode::CREATED, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_never_kept_and_its_key_is_freed() {
    let rig = rig().await;
    let user = rig.app.user().await;
    rig.proxy.add(Rule::always("TransactWriteItems", SERVER_ERROR));
    unavailable(&keyed_item(&rig.app, &user.access, "f-2", "failed").await, "the create");
    rig.proxy.clear();
    let after = records(&rig.direct).await;
    assert_eq!((items_in(&after), keys_in(&after)), (0, 0), "nothing written, the key freed");
    let retried = keyed_item(&rig.app, &user.access, "f-2", "failed").await;
    assert_eq!((retried.status, retried.header("idempotent-replayed")), (StatusCode::CREATED, None));
    assert_eq!(items_in(&records(&rig.direct).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_whose_answer_was_lost_is_replayed_never_done_twice() {
    let rig = rig().await;
    let user = rig.app.user().await;
    // The create lands, with its kept answer in the same transaction; the API never hears.
    rig.proxy.add(Rule::always("TransactWriteItems", Fault::LoseResponse));
    unavailable(&keyed_item(&rig.app, &user.access, "f-3", "landed").await, "the lost create");
    rig.proxy.clear();
    let retried = keyed_item(&rig.app, &user.access, "f-3", "landed").await;
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.text());
    assert_eq!(retried.header("idempotent-replayed"), Some("true"), "the answer kept with the work");
    let after = records(&rig.direct).await;
    assert_eq!(items_in(&after), 1, "one item: {after:?}");
    let id = retried.json()["id"].as_str().unwrap().to_owned();
    assert!(after.iter().any(|(_, sk)| *sk == format!("ITEM#{id}")), "the replay names the item");
    // Later retries too, whatever the clock: the key is complete, not locked.
    rig.app.clock.advance(chrono::Duration::seconds(31));
    let later = keyed_item(&rig.app, &user.access, "f-3", "landed").await;
    assert_eq!((later.status, later.body.clone()), (StatusCode::CREATED, retried.body.clone()));
    assert_eq!(items_in(&records(&rig.direct).await), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_could_not_be_kept_holds_its_key_until_its_lock_passes() {
    let rig = rig().await;
    let user = rig.app.user().await;
    let missing = format!("/v1/items/{}", uuid::Uuid::new_v4());
    let patch = || {
        axum::http::Request::builder()
            .method(Method::PATCH)
            .uri(&missing)
            .header(axum::http::header::AUTHORIZATION, format!("Bearer {}", user.access))
            .header(axum::http::header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "f-4")
            .body(axum::body::Body::from(json!({"title": "x"}).to_string()))
            .unwrap()
    };
    // A 404 is kept on its own (it wrote nothing), by an UpdateItem that fails: the answer is
    // still given, and the failure logged.
    rig.proxy.add(Rule::always("UpdateItem", SERVER_ERROR));
    assert_eq!(rig.app.send(patch()).await.status, StatusCode::NOT_FOUND);
    rig.proxy.clear();
    let held = rig.app.send(patch()).await;
    assert_eq!(held.status, StatusCode::CONFLICT, "{}", held.text());
    assert!(held.header("retry-after").is_some());
    rig.app.clock.advance(chrono::Duration::seconds(31));
    let later = rig.app.send(patch()).await;
    assert_eq!((later.status, later.header("idempotent-replayed")), (StatusCode::NOT_FOUND, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_request_whose_caller_cannot_be_read_is_a_503_and_never_runs_unkeyed() {
    let rig = rig().await;
    let user = rig.app.user().await;
    // The layer's read of the caller fails (every attempt of it); the route's own read after it
    // would not. The request must not go on without its key.
    rig.proxy.add(Rule { operation: "GetItem", fault: SERVER_ERROR, skip: 0, times: 8 });
    unavailable(&keyed_item(&rig.app, &user.access, "f-5", "unread").await, "the caller unread");
    rig.proxy.clear();
    let after = records(&rig.direct).await;
    assert_eq!((items_in(&after), keys_in(&after)), (0, 0), "no work, no key");
    let retried = keyed_item(&rig.app, &user.access, "f-5", "unread").await;
    assert_eq!((retried.status, retried.header("idempotent-replayed")), (StatusCode::CREATED, None));
}
