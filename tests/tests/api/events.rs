//! `events/`: one API Gateway HTTP API (payload v2) event per route, as `sam local invoke -e` and
//! `cargo lambda invoke --data-file` take them, generated from the template and the document
//! (`catalog::events`). Each goes through lambda_http's own event parsing into the router of the
//! function that `template.yaml` routes it to, over the fixtures the events name (two users, and
//! a record of each resource), and answers the status the document promises.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use api_tests::fixtures::{all_events, fill, fixtures};
use api_tests::{TestApp, api_routes, contract_statuses};
use catalog::events::event_name;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

fn events_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../events"))
}

#[test]
fn there_is_one_event_per_route_and_nothing_else() {
    // `events/worker/` holds the stream worker's events (it has no route): see below.
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != "worker")
        .collect();
    let routes: BTreeSet<String> = api_routes()
        .iter()
        .flat_map(|(_, path, methods)| methods.iter().map(move |m| format!("{}.json", event_name(m, path))))
        .collect();
    assert_eq!(on_disk, routes);
    let generated: BTreeSet<String> = all_events().iter().map(|e| format!("{}.json", e.name)).collect();
    assert_eq!(generated, routes);
}

#[test]
fn the_checked_in_events_are_current() {
    for event in all_events() {
        let path = events_dir().join(format!("{}.json", event.name));
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == event.text,
            "events/{}.json is stale: regenerate the events with `cargo run -p catalog --bin generate`",
            event.name
        );
    }
}

#[test]
fn each_events_status_is_the_one_the_contract_promises() {
    // The document's success status (what the events expect) is the contract's, route by route.
    let promised = contract_statuses();
    for event in all_events() {
        let key = (event.method.clone(), event.route.clone());
        assert_eq!(
            Some(&event.status),
            promised.get(&key),
            "{}: docs/contract.md's table of routes",
            event.name
        );
    }
}

#[tokio::test]
async fn every_event_reaches_its_function_and_answers_as_the_document_says() {
    let routes = catalog::routes().unwrap();
    for event in all_events() {
        let fixtures = fixtures(TestApp::memory().state).await;
        let name = &event.name;
        let file = std::fs::read_to_string(events_dir().join(format!("{name}.json"))).unwrap();
        assert_eq!(file, event.text, "{name}: stale");
        let text = fill(&event, &fixtures.substitutions);
        let raw: Value = serde_json::from_str(&text).unwrap();
        // API Gateway's route key names the template route, and so the function.
        let route_key = raw["routeKey"].as_str().unwrap();
        let path =
            route_key.strip_prefix("ANY ").unwrap_or_else(|| panic!("{name}: routes ANY: {route_key}"));
        assert_eq!(raw["requestContext"]["routeKey"], route_key);
        let binary =
            &routes.iter().find(|r| r.path == path).unwrap_or_else(|| panic!("{name}: {path}")).binary;
        let router = (catalog::function(binary).unwrap().router)(fixtures.app.state.clone());

        let request = lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let method = request.method().to_string();
        assert_eq!(event_name(&method, path), *name, "the file is named after its route");
        let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(status, event.status, "{name}: {}", String::from_utf8_lossy(&body));
        assert!((200..300).contains(&status), "{name}: {status}");
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
    for event in all_events() {
        let request = lambda_http::request::from_str(&event.text).unwrap();
        let protected = request.headers().contains_key("authorization");
        let response = app.send(request.map(|b| axum::body::Body::from(b.to_vec()))).await;
        assert!(response.status.as_u16() < 500, "{}: {}", event.name, response.text());
        if protected {
            assert_eq!(response.status.as_u16(), 401, "{}", event.name);
        }
    }
}

/// The worker's sample events (`sam local invoke WorkerFunction -e events/worker/<name>.json`):
/// a batch of the table's stream as Lambda delivers it, and the schedule's sweep. Each is read as
/// the worker reads its events and handled: the purge of a user that was deleted, the sweep.
#[tokio::test]
async fn the_workers_sample_events_are_what_it_handles() {
    let dir = events_dir().join("worker");
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["purge.json", "sweep.json"]);
    let app = api_tests::TestApp::memory();
    let user = app.user().await;
    app.item(&user.access, "purged").await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, axum::http::StatusCode::NO_CONTENT);
    let worker = worker::Worker::new(&app.state, app.mailbox.clone());
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);

    let text = std::fs::read_to_string(dir.join("purge.json")).unwrap();
    let sample = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    assert!(text.contains(sample));
    let sample_pk = shared::repo::keys::purges_pk(sample.parse().unwrap());
    assert!(text.contains(&format!("\"{sample_pk}\"")), "purge.json's PK is its user's shard");
    let text = text.replace(&sample_pk, &shared::repo::keys::purges_pk(user.id));
    let event: worker::Event = serde_json::from_str(&text.replace(sample, &user.id.to_string())).unwrap();
    let worker::Event::Stream(batch) = &event else { panic!("purge.json is a stream batch") };
    assert_eq!(worker::purge_of(&batch.records[0]), Some(user.id));
    let answer = worker.handle(event, deadline()).await.unwrap();
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
    assert_eq!(app.state.repos.purges.get_purge(user.id).await.unwrap(), None, "purged");

    let sweep: worker::Event =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert!(matches!(sweep, worker::Event::Sweep(_)));
    assert_eq!(worker.handle(sweep, deadline()).await.unwrap()["stale"], 0);
}

/// The template's filter on the worker's stream lets through exactly what the worker handles:
/// inserts and changes in the purges' partitions, inserts in the outbox's.
#[test]
fn the_workers_stream_filter_is_the_workers_own() {
    let template: serde_norway::Value = serde_norway::from_str(catalog::template::TEMPLATE).unwrap();
    let events = &template["Resources"]["WorkerFunction"]["Properties"]["Events"];
    let stream = &events["Purges"]["Properties"];
    assert_eq!(
        stream["Stream"],
        serde_norway::from_str::<serde_norway::Value>("!GetAtt Table.StreamArn").unwrap()
    );
    let patterns: Vec<serde_json::Value> = stream["FilterCriteria"]["Filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_str(f["Pattern"].as_str().unwrap()).unwrap())
        .collect();
    let expected: Vec<serde_json::Value> = worker::TRIGGERS
        .iter()
        .map(|(prefix, events)| {
            serde_json::json!({
                "eventName": events,
                "dynamodb": {"Keys": {"PK": {"S": [{"prefix": prefix}]}}}
            })
        })
        .collect();
    assert_eq!(patterns, expected);
    assert_eq!(stream["FunctionResponseTypes"][0], "ReportBatchItemFailures");
    assert_eq!(stream["BisectBatchOnFunctionError"], true);
    let queue = &stream["DestinationConfig"]["OnFailure"]["Destination"];
    assert!(matches!(queue, serde_norway::Value::Tagged(t) if t.value == "WorkerFailures.Arn"), "{queue:?}");
    let input: serde_json::Value =
        serde_json::from_str(events["Sweep"]["Properties"]["Input"].as_str().unwrap()).unwrap();
    assert!(matches!(serde_json::from_value(input).unwrap(), worker::Event::Sweep(_)));
    // The worker stops MARGIN before its timeout, and each DynamoDB call gives up before that.
    let timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"].as_u64().unwrap();
    assert!(worker::MARGIN > shared::state::DYNAMODB_OPERATION_TIMEOUT * 2);
    assert!(std::time::Duration::from_secs(timeout) > worker::MARGIN * 3, "{timeout}");
    assert_eq!(
        template["Resources"]["Table"]["Properties"]["StreamSpecification"]["StreamViewType"],
        "KEYS_ONLY"
    );
}
