//! What an `Idempotency-Key` costs (issue 16, API.md "Idempotency"): the whole `POST /v1/items`
//! in-process, with a fresh key each time and without one, interleaved, on the memory store or on
//! DynamoDB Local. A keyed create adds one conditional PutItem (taking the key) before the work
//! and one Update inside the create's own transaction (keeping the answer); an unkeyed one is
//! as before. A replay (the same key again) is measured too: one refused PutItem, no work.
//!
//! `cargo bench -p api-tests --bench idempotency_cost` (memory), add `-- --store dynamodb` for
//! DynamoDB Local (started as the tests start it, or `DYNAMODB_ENDPOINT`), `--rounds 400` for
//! more. It prints a markdown table.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use api_tests::TestApp;
use api_tests::stats::{arg, bench_state, median, ms, percentile};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds").and_then(|n| n.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let config = api_tests::config();
        let (store, state) = bench_state(&args, config).await;
        let app = TestApp::from_state(state.with_hasher(api_tests::fast_hasher()));
        let user = app.user().await;
        let create = |key: Option<String>, replay: bool| {
            let (app, token) = (app.clone(), user.access.clone());
            async move {
                let mut request = Request::builder()
                    .method(Method::POST)
                    .uri("/v1/items")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::CONTENT_TYPE, "application/json");
                if let Some(key) = key {
                    request = request.header("idempotency-key", key);
                }
                let body = Body::from(json!({"title": "benched", "description": "d"}).to_string());
                let started = Instant::now();
                let response = app.send(request.body(body).unwrap()).await;
                let took = started.elapsed();
                assert_eq!(response.status, StatusCode::CREATED, "{}", response.text());
                assert_eq!(response.header("idempotent-replayed").is_some(), replay);
                took
            }
        };
        // Warm up every path, and keep one key to replay.
        create(Some("replay".to_owned()), false).await;
        for n in 0..3 {
            create(None, false).await;
            create(Some(format!("warm-{n}")), false).await;
        }
        let mut samples: [Vec<Duration>; 3] = Default::default();
        for n in 0..rounds {
            // Rotate which goes first, so drift in the machine's load hits all three alike.
            for k in 0..3 {
                let which = (n + k) % 3;
                let key = match which {
                    0 => None,
                    1 => Some(format!("key-{n}")),
                    _ => Some("replay".to_owned()),
                };
                samples[which].push(create(key, which == 2).await);
            }
        }
        let medians: Vec<f64> = samples.iter().map(|s| ms(median(s.clone()))).collect();
        println!("| `POST /v1/items` on {store} ({rounds} each, interleaved) | median | p95 |");
        println!("| --- | --- | --- |");
        for (name, s) in
            ["without a key", "with a new key", "replayed (the same key again)"].iter().zip(&samples)
        {
            println!(
                "| {name} | {:.3} ms | {:.3} ms |",
                ms(median(s.clone())),
                ms(percentile(s.clone(), 0.95))
            );
        }
        println!(
            "| a key's cost, median | {:+.3} ms ({:+.0} %) | |",
            medians[1] - medians[0],
            (medians[1] / medians[0] - 1.0) * 100.0
        );
    });
}
