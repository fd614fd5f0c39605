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

/// Runs the binary without a secret, so its one log line is the configuration error.
fn log_line(env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().copied());
    let output = command.output().expect("run the auth binary");
    String::from_utf8_lossy(&output.stdout).lines().next().unwrap_or_default().to_owned()
}

#[test]
fn logs_are_json_lines_unless_lambdas_log_format_says_text() {
    // Lambda's default here, and what `LogFormat: JSON` in template.yaml sets.
    for env in [&[][..], &[("AWS_LAMBDA_LOG_FORMAT", "JSON")][..]] {
        let line = log_line(env);
        let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(json["level"], "ERROR");
        assert!(json["fields"]["message"].as_str().unwrap().contains("JWT_SECRET is not set"), "{line}");
    }
    let text = log_line(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
    assert!(text.contains("ERROR") && text.contains("JWT_SECRET is not set"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err(), "{text}");
    // The level filters what is written: with it off, nothing is.
    assert_eq!(log_line(&[("AWS_LAMBDA_LOG_LEVEL", "off")]), "");
}
