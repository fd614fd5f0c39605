//! Enumeration by timing (OWASP ASVS 5.0 §6.3): does a login for an unknown email answer as
//! fast as one with a wrong password? Both run the whole token endpoint in-process with the
//! production argon2id parameters (the unknown email is checked against a dummy hash of the same
//! cost), interleaved, and the medians are compared. Target: within 10 % of each other.
//!
//! `cargo bench -p api-tests --bench login_timing` (add `-- --rounds 400` for more); it prints a
//! markdown table. `--rounds 2` is the short smoke run.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::time::Instant;

use api_tests::stats::{median, ms, percentile};
use api_tests::{PASSWORD, TestApp};
use axum::http::StatusCode;
use shared::AppState;
use shared::auth::Argon2Hasher;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let mut config = api_tests::config();
        // Each email is tried once, so the throttle never answers instead of the hasher.
        config.login_max_failures = 1000;
        let state = AppState::in_memory(config).with_hasher(std::sync::Arc::new(Argon2Hasher::owasp()));
        let app = TestApp::from_state(state);
        let mut users = Vec::new();
        for n in 0..rounds {
            let email = format!("timing-{n}@example.com");
            assert_eq!(app.signup(&email, PASSWORD).await.status, StatusCode::CREATED);
            users.push(email);
        }
        // Warm up both paths.
        for n in 0..3 {
            app.login(&users[n % users.len()], "warm-up password").await;
            app.login(&format!("warm-{n}@example.com"), "warm-up password").await;
        }
        let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
        for (n, email) in users.iter().enumerate() {
            let cases = [(email.clone(), true), (format!("nobody-{n}@example.com"), false)];
            // Alternate which goes first, so drift in the machine's load hits both alike.
            let order: Vec<_> =
                if n % 2 == 0 { cases.iter().collect() } else { cases.iter().rev().collect() };
            for (email, known) in order {
                let started = Instant::now();
                let response = app.login(email, "not the password").await;
                let took = started.elapsed();
                assert_eq!(response.status, StatusCode::BAD_REQUEST);
                if *known { wrong.push(took) } else { unknown.push(took) }
            }
        }
        let (m_wrong, m_unknown) = (median(wrong.clone()), median(unknown.clone()));
        let difference = (m_wrong.as_secs_f64() - m_unknown.as_secs_f64()).abs() / m_wrong.as_secs_f64();
        println!("| login ({} each, interleaved) | median | p95 |", rounds);
        println!("| --- | --- | --- |");
        println!("| wrong password | {:.2} ms | {:.2} ms |", ms(m_wrong), ms(percentile(wrong, 0.95)));
        println!("| unknown email | {:.2} ms | {:.2} ms |", ms(m_unknown), ms(percentile(unknown, 0.95)));
        println!(
            "| difference of medians | {:.1} % | target ≤ 10 %: {} |",
            difference * 100.0,
            if difference <= 0.10 { "met" } else { "missed" }
        );
    });
}
