//! Enumeration by timing at password recovery (API.md: "the same body and about the same time
//! for a known, an unknown and an inactive address"): the whole `POST /v1/auth/password-recovery`
//! in-process, for an active account's address, an address no account has, and an inactive
//! account's, interleaved, on the memory store or on DynamoDB Local. The request never looks the
//! address up (the worker does, after the answer), so the three should cost the same two writes.
//!
//! `cargo bench -p api-tests --bench recovery_timing` (memory), add `-- --store dynamodb` for
//! DynamoDB Local (started as the tests start it, or `DYNAMODB_ENDPOINT`), `--rounds 400` for
//! more. It prints a markdown table.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use api_tests::stats::{arg, bench_state, median, ms, percentile};
use api_tests::{PASSWORD, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::json;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = arg(&args, "--rounds").and_then(|n| n.parse().ok()).unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut config = api_tests::config();
        // One source address asks for every message here: its throttle must not answer instead.
        config.mail_max_requests_per_address = u32::MAX / 2;
        let (store, state) = bench_state(&args, config).await;
        let app = TestApp::from_state(state.with_hasher(api_tests::fast_hasher()));
        let admin = app.superuser().await;
        let (mut active, mut inactive) = (Vec::new(), Vec::new());
        for n in 0..rounds {
            let (a, i) = (format!("active-{n}@example.com"), format!("inactive-{n}@example.com"));
            assert_eq!(app.signup(&a, PASSWORD).await.status, StatusCode::CREATED);
            let created = app.signup(&i, PASSWORD).await;
            let path = format!("/v1/users/{}", created.json()["id"].as_str().unwrap());
            let off = app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
            assert_eq!(off.status, StatusCode::OK);
            active.push(a);
            inactive.push(i);
        }
        let ask = |email: String| {
            let app = app.clone();
            async move {
                let started = Instant::now();
                let response =
                    app.json(Method::POST, "/v1/auth/password-recovery", None, json!({"email": email})).await;
                let took = started.elapsed();
                assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text());
                (took, response.body)
            }
        };
        // Warm up every path.
        for n in 0..3 {
            ask(active[n % rounds].clone()).await;
            ask(format!("warm-{n}@example.com")).await;
        }
        let mut samples: [Vec<Duration>; 3] = Default::default();
        let mut bodies = std::collections::BTreeSet::new();
        for n in 0..rounds {
            let cases = [active[n].clone(), format!("nobody-{n}@example.com"), inactive[n].clone()];
            // Rotate which goes first, so drift in the machine's load hits all three alike.
            for k in 0..3 {
                let which = (n + k) % 3;
                let (took, body) = ask(cases[which].clone()).await;
                samples[which].push(took);
                bodies.insert(body);
            }
        }
        assert_eq!(bodies.len(), 1, "one body for every address");
        let medians: Vec<Duration> = samples.iter().map(|s| median(s.clone())).collect();
        let low = medians.iter().min().unwrap().as_secs_f64();
        let high = medians.iter().max().unwrap().as_secs_f64();
        println!("| password recovery on {store} ({rounds} each, interleaved) | median | p95 |");
        println!("| --- | --- | --- |");
        for (name, s) in ["known, active", "unknown", "known, inactive"].iter().zip(&samples) {
            println!(
                "| {name} | {:.3} ms | {:.3} ms |",
                ms(median(s.clone())),
                ms(percentile(s.clone(), 0.95))
            );
        }
        let spread = (high - low) / low;
        println!(
            "| largest difference of medians | {:.1} % | target ≤ 10 %: {} |",
            spread * 100.0,
            if spread <= 0.10 { "met" } else { "missed" }
        );
    });
}
