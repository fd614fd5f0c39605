//! A function without a usable JWT secret stops at start and says what to set. (Every function's
//! `main` is the same `shared::run_lambda`, so this holds for users and items too.)

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn start(secret: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    if let Some(secret) = secret {
        command.env("JWT_SECRET", secret);
    }
    let output = command.output().expect("run the auth binary");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_missing_jwt_secret_stops_the_function_with_a_message() {
    let (code, stderr) = start(None);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("JWT_SECRET is not set"), "{stderr}");
}

#[test]
fn a_short_jwt_secret_stops_the_function_and_is_not_printed() {
    let (code, stderr) = start(Some("short-secret-value"));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("at least 32 bytes"), "{stderr}");
    assert!(!stderr.contains("short-secret-value"), "the secret itself never reaches the log");
}
