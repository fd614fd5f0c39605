//! Metrics (issue 18, item 1): each request writes one CloudWatch Embedded Metric Format line,
//! checked here against the EMF specification, with what it counts: requests by route and
//! status class, latency, the cold start, logins (ok, failed, throttled), refresh-token reuse,
//! idempotent replays and 503s.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use api_tests::{PASSWORD, TestApp};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use shared::AppState;
use shared::metrics::{Captured, Metrics};

/// The units EMF allows (CloudWatch's `StandardUnit`).
const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// One line checked against the EMF specification: a JSON object whose `_aws` holds a
/// `Timestamp` in epoch milliseconds and one or more metric directives; each directive's
/// namespace is 1–255 characters, its dimension sets name at most 30 dimensions, each a
/// top-level string member, and its 1–100 metrics each a top-level number with a standard unit.
/// Returns the document.
fn emf(line: &str) -> Value {
    assert!(!line.contains('\n'), "one line: {line}");
    let doc: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let aws = doc["_aws"].as_object().unwrap_or_else(|| panic!("no _aws: {line}"));
    let timestamp = aws["Timestamp"].as_i64().unwrap();
    assert!(timestamp > 1_500_000_000_000 && timestamp < 10_000_000_000_000, "milliseconds: {timestamp}");
    let directives = aws["CloudWatchMetrics"].as_array().unwrap();
    assert!(!directives.is_empty());
    for directive in directives {
        let namespace = directive["Namespace"].as_str().unwrap();
        assert!((1..=255).contains(&namespace.len()) && !namespace.trim().is_empty(), "{namespace}");
        let mut dimension_names = BTreeSet::new();
        for set in directive["Dimensions"].as_array().unwrap() {
            let set = set.as_array().unwrap();
            assert!(set.len() <= 30);
            for name in set {
                let name = name.as_str().unwrap();
                let value = doc[name].as_str().unwrap_or_else(|| panic!("dimension {name}: {line}"));
                assert!(!value.is_empty() && value.len() <= 1024, "{name}");
                dimension_names.insert(name.to_owned());
            }
        }
        let metrics = directive["Metrics"].as_array().unwrap();
        assert!((1..=100).contains(&metrics.len()));
        for metric in metrics {
            let name = metric["Name"].as_str().unwrap();
            assert!((1..=255).contains(&name.len()) && !dimension_names.contains(name), "{name}");
            assert!(UNITS.contains(&metric["Unit"].as_str().unwrap()), "{metric}");
            assert!(doc[name].as_f64().is_some_and(f64::is_finite), "metric {name}: {line}");
        }
    }
    doc
}

fn app() -> (TestApp, Arc<Captured>) {
    app_with(api_tests::config())
}

fn app_with(config: shared::Config) -> (TestApp, Arc<Captured>) {
    let captured = Arc::new(Captured::default());
    let app = TestApp::with_config(config);
    let metrics = Metrics::new("the-stack", "the-stack-function", captured.clone());
    let app = TestApp::from_state(app.state.clone().with_metrics(metrics));
    (app, captured)
}

/// The documents written since `from`.
fn since(captured: &Captured, from: usize) -> Vec<Value> {
    captured.lines()[from..].iter().map(|l| emf(l)).collect()
}

#[tokio::test]
async fn each_request_writes_one_emf_line_by_function_and_route() {
    let (app, captured) = app();
    let user = app.user().await;
    let item = app.item(&user.access, "measured").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    let from = captured.lines().len();
    assert_eq!(app.get(&path, &user.access).await.status, StatusCode::OK);
    assert_eq!(app.get("/v2/nothing", &user.access).await.status, StatusCode::NOT_FOUND);
    let docs = since(&captured, from);
    assert_eq!(docs.len(), 2, "one line a request");
    let read = &docs[0];
    assert_eq!(read["FunctionName"], "the-stack-function");
    assert_eq!(read["Route"], "/v1/items/{item_id}", "the route, never the concrete path");
    assert_eq!((read["Requests"].as_f64(), read["Status2xx"].as_f64()), (Some(1.0), Some(1.0)));
    assert_eq!((read["Status4xx"].as_f64(), read["Status5xx"].as_f64()), (Some(0.0), Some(0.0)));
    assert!(read["Latency"].as_f64().unwrap() >= 0.0);
    assert!(read.get("ColdStart").is_none(), "only the process's first request");
    assert!(read["requestId"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(read["status"], 200, "a number, as in the access log");
    let written = read["_aws"]["Timestamp"].as_i64().unwrap();
    assert!((written - app.state.clock.now().timestamp_millis()).abs() < 60_000, "now, in milliseconds");
    let directives = read["_aws"]["CloudWatchMetrics"].as_array().unwrap();
    assert_eq!(directives.len(), 1, "no events, no second directive: {read}");
    assert_eq!(directives[0]["Namespace"], "the-stack");
    assert_eq!(directives[0]["Dimensions"], json!([["FunctionName", "Route"], ["FunctionName"]]));
    let unmatched = &docs[1];
    assert_eq!(
        (unmatched["Route"].as_str(), unmatched["Status4xx"].as_f64()),
        (Some("<unmatched>"), Some(1.0))
    );
    // The very first line of the process said it was a cold start, by function alone.
    let first = emf(&captured.lines()[0]);
    assert_eq!(first["ColdStart"].as_f64(), Some(1.0));
    let events = &first["_aws"]["CloudWatchMetrics"][1];
    assert_eq!(events["Dimensions"], json!([["FunctionName"]]));
    assert_eq!(events["Metrics"], json!([{"Name": "ColdStart", "Unit": "Count"}]));
    assert_eq!(captured.lines().iter().filter(|l| emf(l).get("ColdStart").is_some()).count(), 1);
}

/// The count a document gives `metric` (0 when absent).
fn count(doc: &Value, metric: &str) -> f64 {
    doc.get(metric).and_then(Value::as_f64).unwrap_or(0.0)
}

#[tokio::test]
async fn logins_are_counted_ok_failed_and_throttled_and_reuse_and_replays_too() {
    let (app, captured) = app();
    let user = app.user().await;
    let from = captured.lines().len();
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
    let max = app.state.config.login_max_failures;
    for _ in 0..max {
        assert_eq!(app.login(&user.email, "a wrong password").await.status, StatusCode::BAD_REQUEST);
    }
    assert_eq!(app.login(&user.email, "a wrong password").await.status, StatusCode::TOO_MANY_REQUESTS);
    let docs = since(&captured, from);
    let total = |metric: &str| docs.iter().map(|d| count(d, metric)).sum::<f64>();
    assert_eq!((total("LoginOk"), total("LoginFailed"), total("LoginThrottled")), (1.0, f64::from(max), 1.0));
    // A refresh token presented twice: the second is reuse. Presented again, its session ended
    // already, it is no new reuse: one replayed token cannot make the alarm fire.
    let from = captured.lines().len();
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::OK);
    for _ in 0..3 {
        assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST);
    }
    let docs = since(&captured, from);
    assert_eq!(docs.iter().map(|d| count(d, "RefreshReuse")).collect::<Vec<_>>(), [0.0, 1.0, 0.0, 0.0]);
    assert_eq!(docs.iter().map(|d| count(d, "LoginOk")).sum::<f64>(), 0.0, "a refresh is no login");
    // A create retried with its key: the second answer is a replay.
    let from = captured.lines().len();
    for _ in 0..2 {
        let request = Request::builder()
            .method(Method::POST)
            .uri("/v1/items")
            .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", "metrics-1")
            .body(Body::from(json!({"title": "once"}).to_string()))
            .unwrap();
        assert_eq!(app.send(request).await.status, StatusCode::CREATED);
    }
    let docs = since(&captured, from);
    assert_eq!(docs.iter().map(|d| count(d, "IdempotentReplay")).collect::<Vec<_>>(), [0.0, 1.0]);
}

#[tokio::test]
async fn a_503_is_counted_as_unavailable() {
    let captured = Arc::new(Captured::default());
    let mut config = api_tests::config();
    // Nothing listens there (a port just let go): the health check's one read fails.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.dynamodb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let metrics = Metrics::new("the-stack", "the-stack-docs", captured.clone());
    let docs = TestApp::from_state(AppState::health_only(config).with_metrics(metrics));
    assert_eq!(docs.call(Method::GET, "/v1/health", None).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let doc = emf(captured.lines().last().unwrap());
    assert_eq!((count(&doc, "Unavailable"), count(&doc, "Status5xx")), (1.0, 1.0));
    assert_eq!(doc["Route"], "/v1/health");
}

/// The right password to an address not verified yet (verification required) is refused, but is
/// no failed login: an alarm on failed logins must not fire on new users.
#[tokio::test]
async fn an_unverified_login_is_neither_ok_nor_failed() {
    let mut config = api_tests::config();
    config.require_email_verification = true;
    let (app, captured) = app_with(config);
    let signup = app
        .json(
            Method::POST,
            "/v1/users/signup",
            None,
            json!({"email": "new@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(signup.status, StatusCode::CREATED);
    let from = captured.lines().len();
    let login = app.login("new@example.com", PASSWORD).await;
    assert_eq!(login.status, StatusCode::BAD_REQUEST);
    assert!(login.json()["error_description"].as_str().unwrap().contains("not verified"));
    let doc = &since(&captured, from)[0];
    assert_eq!((count(doc, "LoginOk"), count(doc, "LoginFailed")), (0.0, 0.0), "{doc}");
}

/// The worker writes one line per invocation, by function alone: messages sent, given up and
/// left for later, purges finished and records purged, and work that failed on the store; zeros
/// included, and the process's first line a cold start.
#[tokio::test]
async fn the_worker_counts_mail_and_purges_once_per_invocation() {
    use api_tests::stream::{batch, stream_record};
    use shared::repo::keys::{outbox_pk, outbox_sk, purge_sk, purges_pk};
    use worker::mail::SendError;
    let (app, _) = app();
    let (user, other, gone) = (app.user().await, app.user().await, app.user().await);
    assert_eq!(app.delete("/v1/users/me", &gone.access).await.status, StatusCode::NO_CONTENT);
    let pending = app.state.repos.mail.pending_mail(10, None).await.unwrap().records;
    let mail_of = |email: &str| pending.iter().find(|m| m.email_key == email).unwrap().id;
    let (first, second) = (mail_of(&user.email), mail_of(&other.email));
    let captured = Arc::new(Captured::default());
    let worker = worker::Worker {
        metrics: Metrics::new("the-stack", "the-stack-worker", captured.clone()),
        ..worker::Worker::new(&app.state, app.mailbox.clone())
    };
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let record = |n: u64, pk: String, sk: String| stream_record("INSERT", &pk, &sk, n);
    let names = ["MailSent", "MailGivenUp", "MailDeferred", "PurgesDone", "PurgedRecords", "WorkFailed"];
    let counts =
        |doc: &Value| names.map(|name| doc[name].as_f64().unwrap_or_else(|| panic!("{name}: {doc}")));

    // A batch: one message sent, one SES cannot take now (left for the sweep), one purge done.
    app.mailbox.fail_next([SendError::Transient("TooManyRequestsException".into())]);
    let records = batch(vec![
        record(1, outbox_pk(second), outbox_sk(second)),
        record(2, outbox_pk(first), outbox_sk(first)),
        record(3, purges_pk(gone.id), purge_sk(gone.id)),
    ]);
    assert_eq!(worker.handle(records, deadline()).await.unwrap(), json!({"batchItemFailures": []}));
    let lines = captured.lines();
    assert_eq!(lines.len(), 1, "one line an invocation");
    let doc = emf(&lines[0]);
    let purged = doc["PurgedRecords"].as_f64().unwrap();
    assert!(purged >= 2.0, "the user's records and its own purge record: {doc}");
    assert_eq!(counts(&doc), [1.0, 0.0, 1.0, 1.0, purged, 0.0]);
    assert_eq!((doc["FunctionName"].as_str(), count(&doc, "ColdStart")), (Some("the-stack-worker"), 1.0));
    assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
    assert!(doc.get("Route").is_none(), "no route: the worker serves none");

    // The sweep: the deferred message refused for good now.
    app.mailbox.fail_next([SendError::Permanent("MessageRejected".into())]);
    let sweep = || serde_json::from_value::<worker::Event>(json!({"sweep": {"idle_seconds": 0}})).unwrap();
    worker.handle(sweep(), deadline()).await.unwrap();
    let doc = emf(&captured.lines()[1]);
    assert_eq!(counts(&doc), [0.0, 1.0, 0.0, 0.0, 0.0, 0.0]);
    assert!(doc.get("ColdStart").is_none(), "only the process's first invocation");

    // A worker given no sender (MailFrom empty) gives a message up by design: no failure.
    let unconfigured = worker::Worker {
        metrics: worker.metrics.clone(),
        ..worker::Worker::new(&app.state, Arc::new(worker::Unconfigured))
    };
    assert_eq!(app.signup("unsent@example.com", PASSWORD).await.status, StatusCode::CREATED);
    let answer = unconfigured.handle(sweep(), deadline()).await.unwrap();
    assert_eq!(answer["mail_given_up"], 1, "given up and logged: {answer}");
    let doc = emf(&captured.lines()[2]);
    assert_eq!(counts(&doc), [0.0; 6]);

    // A store out of reach: the sweep fails, and says so.
    let mut config = api_tests::config();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    config.dynamodb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let down = AppState::dynamodb(config).await;
    let broken =
        worker::Worker { metrics: worker.metrics.clone(), ..worker::Worker::new(&down, app.mailbox.clone()) };
    assert!(broken.handle(sweep(), deadline()).await.is_err());
    let doc = emf(&captured.lines()[3]);
    assert_eq!(counts(&doc), [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
}
