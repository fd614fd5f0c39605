//! `cargo lambda watch`: the functions as Lambda runs them (lambda_http behind cargo-lambda's
//! emulation of the Lambda runtime API and function URLs), on DynamoDB Local, one route of each
//! function called through `http://127.0.0.1:<port>/lambda-url/<function>/<path>`, and the
//! stream worker invoked through the Lambda invoke API by `admin worker`.
//!
//! cargo-lambda comes from PyPI; `./scripts/test` installs it into `.tools/venv`. Set
//! `CARGO_LAMBDA` to use another one.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use api_tests::PASSWORD;
use api_tests::process::{HOST_VARIABLES, Reply, Running, try_http, workspace};
use axum::http::{Method, StatusCode};
use serde_json::json;

fn cargo_lambda() -> PathBuf {
    if let Some(path) = std::env::var_os("CARGO_LAMBDA") {
        return PathBuf::from(path);
    }
    let installed = workspace().join(".tools/venv/bin/cargo-lambda");
    if installed.exists() {
        return installed;
    }
    let on_path = Command::new("cargo-lambda").arg("--version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return PathBuf::from("cargo-lambda");
    }
    panic!(
        "cargo-lambda is not installed: run ./scripts/test (it installs it into .tools/venv), or \
         `pip install cargo-lambda`, or set CARGO_LAMBDA to its path"
    );
}

/// Waits until the watcher has compiled and started the function behind `url`, by calling it
/// with a request that changes nothing until it answers. The first request to a function waits
/// while cargo compiles it, which can outlast a client's timeout; a request that creates something
/// must not be the one retried, or its retry meets what the first attempt made.
async fn warm(url: &str) {
    // Generous: the sam local test's release build may hold both cores meanwhile.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match try_http(Method::GET, url, &[], "").await {
            Ok(reply) if reply.status != StatusCode::BAD_GATEWAY => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("{url}: no answer from cargo lambda watch: {other:?}"),
        }
    }
}

/// One request to a function that `warm` has started: never retried.
async fn call(url: &str, method: Method, headers: &[(&str, &str)], body: &str) -> Reply {
    try_http(method, url, headers, body.to_owned()).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn cargo_lambda_watch_serves_every_function() {
    let cargo_lambda = cargo_lambda();
    let config = api_tests::dynamo::config();
    api_tests::dynamo::store_with(&config).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut command = Command::new(&cargo_lambda);
    for name in HOST_VARIABLES {
        command.env_remove(name);
    }
    let mail_dir =
        workspace().join("target/test-artifacts/watch-mail").join(uuid::Uuid::new_v4().to_string());
    let env = format!(
        // No SIGNING_KEY: auth makes a key at start and puts it in the ring, where users and
        // items (other processes) find it.
        "DYNAMODB_ENDPOINT={},TABLE_NAME={},MAIL_DIR={}",
        config.dynamodb_endpoint.clone().unwrap(),
        config.table_name,
        mail_dir.display()
    );
    command
        .current_dir(workspace())
        .args(["lambda", "watch", "--invoke-address", "127.0.0.1", "--invoke-port", &port.to_string()])
        .args(["--env-var", &env]);
    let watch = Running::spawn_group(command);
    let base = format!("http://127.0.0.1:{port}/lambda-url");

    // Each function compiled and started first, by a request that changes nothing (a 401 or 405).
    for path in ["users/v1/users/me", "auth/v1/auth/token", "items/v1/items", "docs/openapi.json"] {
        warm(&format!("{base}/{path}")).await;
    }

    // users: signup.
    let body = json!({"email": "watch@example.com", "password": PASSWORD}).to_string();
    let signup = call(
        &format!("{base}/users/v1/users/signup"),
        Method::POST,
        &[("content-type", "application/json")],
        &body,
    )
    .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{:?}\n{}", signup.body, watch.output().join("\n"));
    assert_eq!(signup.json()["email"], "watch@example.com");
    // auth: login.
    let form = format!("username=watch%40example.com&password={}", PASSWORD.replace(' ', "+"));
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let token = call(&format!("{base}/auth/v1/auth/token"), Method::POST, &[form_type], &form).await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    assert_eq!(token.header("cache-control"), Some("no-store"));
    let bearer = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    // items: create, then read it back at its Location.
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let item =
        call(&format!("{base}/items/v1/items"), Method::POST, &headers, r#"{"title":"watched"}"#).await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    let location = item.header("location").unwrap().to_owned();
    let read = call(&format!("{base}/items{location}"), Method::GET, &headers[1..], "").await;
    assert_eq!((read.status, read.json()["title"].clone()), (StatusCode::OK, json!("watched")));
    assert_eq!(read.header("etag"), Some("\"1\""));

    // docs: the document, and the health check, which reads DynamoDB Local.
    let document = call(&format!("{base}/docs/openapi.json"), Method::GET, &[], "").await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.json()["openapi"], "3.1.0");
    let health = call(&format!("{base}/docs/v1/health"), Method::GET, &[], "").await;
    assert_eq!(
        (health.status, health.json()),
        (StatusCode::OK, json!({"status": "ok"})),
        "{:?}",
        health.body
    );

    // worker: the account deleted through users, its records purged by the worker function,
    // which `admin worker` invokes with DynamoDB Local's stream records as Lambda would.
    let user_id = signup.json()["id"].as_str().unwrap().to_owned();
    let deleted = call(&format!("{base}/users/v1/users/me"), Method::DELETE, &headers[1..], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}\n{}", deleted.body, watch.output().join("\n"));
    let invoke = format!("http://127.0.0.1:{port}/2015-03-31/functions/worker/invocations");
    let mut poller = Command::new(api_tests::process::build_server().join("admin"));
    for name in HOST_VARIABLES {
        poller.env_remove(name);
    }
    poller
        .env("DYNAMODB_ENDPOINT", config.dynamodb_endpoint.clone().unwrap())
        .env("TABLE_NAME", &config.table_name)
        .args(["worker", "--invoke-url", &invoke]);
    let poller = Running::spawn(poller);
    let store = shared::repo::dynamo::DynamoStore::new(
        api_tests::dynamo::client(&config).await,
        config.table_name.clone(),
    );
    // The first invocation waits while cargo compiles the worker.
    if let Err(keys) = api_tests::dynamo::wait_until_purged(&store, &user_id, Duration::from_secs(900)).await
    {
        panic!("not purged: {keys:?}\n{}\n{}", poller.output().join("\n"), watch.output().join("\n"));
    }
    drop(poller);

    let output = watch.stop();
    // The functions' own JSON access-log lines, as Lambda would receive them.
    let logged = output.iter().filter(|l| l.contains(r#""message":"request""#)).count();
    assert!(logged >= 5, "{}", output.join("\n"));
}
