//! The docs function needs no key, and its cold start no table (its health check reads one at
//! its first call): with nothing configured it gets past its configuration (and on to the
//! Lambda runtime API, absent here).

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn start(env: &[(&str, &str)]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_docs"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(!output.status.success(), "there is no Lambda runtime API to serve");
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn the_docs_function_starts_with_nothing_configured() {
    let out = start(&[]);
    assert!(!out.contains("configuration error"), "{out}");
    // lambda_runtime's own settings are what it misses next.
    assert!(out.contains("AWS_LAMBDA_"), "it went on to the Lambda runtime: {out}");
}

#[test]
fn a_bad_setting_still_stops_it_with_a_message() {
    let out = start(&[("OPEN_REGISTRATION", "maybe")]);
    assert!(out.contains("configuration error") && out.contains("OPEN_REGISTRATION"), "{out}");
}
