//! The function that signs tokens stops at start when `SIGNING_KEY` names no usable key, and
//! says what to set, never repeating the value (it might be a key pasted by mistake). (Its
//! `main` is `shared::run_signing_lambda`; users and items share the configuration.)

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn start(signing_key: &str) -> (Option<i32>, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    command.env("SIGNING_KEY", signing_key);
    let output = command.output().expect("run the auth binary");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_signing_key_that_names_no_key_stops_the_function_with_a_message() {
    let (code, stderr) = start("a-secret-value-pasted-here");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("SIGNING_KEY must be kms:<key id or ARN>"), "{stderr}");
    assert!(!stderr.contains("a-secret-value-pasted-here"), "the value never reaches the log");
    let (code, stderr) = start("file:/nonexistent/signing-key.pem");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("SIGNING_KEY") && stderr.contains("/nonexistent/signing-key.pem"), "{stderr}");
}

#[test]
fn a_key_in_the_environment_stops_the_function_and_is_not_printed() {
    let key = include_str!("../../../shared/src/auth/testdata/test_signing_key.pem");
    let (code, stderr) = start(&format!("pem:{key}"));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("for `sam local` only"), "{stderr}");
    assert!(
        !stderr.contains("PRIVATE KEY") && !stderr.contains(&key[28..80]),
        "the key never reaches the log"
    );
}

/// Runs the binary with a SIGNING_KEY that names no key, so its one log line is the
/// configuration error.
fn log_line(env: &[(&str, &str)]) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_auth"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).envs(env.iter().copied());
    command.env("SIGNING_KEY", "nothing:here");
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
        assert!(json["fields"]["message"].as_str().unwrap().contains("SIGNING_KEY must be"), "{line}");
    }
    let text = log_line(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
    assert!(text.contains("ERROR") && text.contains("SIGNING_KEY must be"), "{text}");
    assert!(serde_json::from_str::<serde_json::Value>(&text).is_err(), "{text}");
    // The level filters what is written: with it off, nothing is.
    assert_eq!(log_line(&[("AWS_LAMBDA_LOG_LEVEL", "off")]), "");
}
