//! The test command's check of the bench (README: Benchmarks): it builds, and one short
//! iteration of every measurement runs against this build's binaries and writes its report.
//! The numbers are not checked: benchmarks are not tests.

use std::process::Command;

#[test]
fn one_short_iteration_of_every_measurement_runs_and_is_reported() {
    let workspace = api_tests::process::workspace();
    let bin_dir = api_tests::process::bin_dir();
    let profile = match bin_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    // The binaries the bench starts, built as `cargo test` built this one (a no-op if they are).
    let built = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--profile", &profile])
        .args(catalog::FUNCTIONS.iter().flat_map(|f| ["-p", f.name]))
        .args(["-p", "server", "-p", "bench"])
        .current_dir(&workspace)
        .status()
        .expect("cargo");
    assert!(built.success(), "cargo build: {built}");

    let out = workspace.join("target/bench-quick.md");
    let _ = std::fs::remove_file(&out);
    let ran = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["run", "--quick", "--out"])
        .arg(&out)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .current_dir(&workspace)
        .output()
        .expect("run the bench");
    assert!(
        ran.status.success(),
        "bench run --quick: {}\n{}\n{}",
        ran.status,
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );

    let report = std::fs::read_to_string(&out).expect("the report");
    for expected in [
        "quick run",
        "### Targets",
        "| init, `auth`, median |",
        "| init, `docs` ÷ hello-world |",
        "| warm `GET /v1/items/{item_id}`, in-memory, median |",
        "| authenticated GET requests/s, local server ÷ FastAPI |",
        "| peak RSS after one request, `items` |",
        "| zipped arm64 `bootstrap`, `users` |",
        "| GET p99 while logins hash ÷ alone (local server) |",
        "| `items, no warm-up` |",
        "| `POST /v1/auth/token` | DynamoDB Local |",
        "| `GET /v1/items/{item_id}` | in-memory |",
        "| `hello` |",
        "| hash |",
        "| Rust local server |",
        "| FastAPI peer |",
    ] {
        assert!(report.contains(expected), "no {expected:?} in the report:\n{report}");
    }
    assert!(report.starts_with("# Benchmarks"), "{report}");
}

/// Runs `bench <command> --quick` into a report whose `<command>` section (between its markers)
/// holds `old`, between the paragraphs `before` and `after`; returns the report it wrote.
fn quick_into_markers(command: &str) -> String {
    let workspace = api_tests::process::workspace();
    let out = workspace.join(format!("target/bench-{command}-quick.md"));
    let section = format!(
        "<!-- {command}:begin (written by `bench {command}`; edits inside are overwritten) -->\nold\n<!-- {command}:end -->"
    );
    std::fs::write(&out, format!("# Benchmarks\n\nbefore\n\n{section}\n\nafter\n")).expect("write");
    let ran = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([command, "--quick", "--out"])
        .arg(&out)
        .current_dir(&workspace)
        .output()
        .expect("run the bench");
    assert!(
        ran.status.success(),
        "bench {command} --quick: {}\n{}\n{}",
        ran.status,
        String::from_utf8_lossy(&ran.stdout),
        String::from_utf8_lossy(&ran.stderr)
    );
    std::fs::read_to_string(&out).expect("the report")
}

#[test]
fn the_purge_measurement_runs_and_is_reported() {
    let report = quick_into_markers("purge");
    assert!(report.contains("| `DELETE /v1/users/me`, median |"), "{report}");
    assert!(report.contains("| 150 | 1 |"), "{report}");
    assert!(report.starts_with("# Benchmarks\n\nbefore\n") && report.ends_with("\n\nafter\n"), "{report}");
    assert!(!report.contains("old"), "{report}");
}

/// `bench sizes --quick`: every function in a container of 512 MB's CPU share, two requests of
/// each of its rows. It needs a Docker engine (the test command installs docker.io; the bench
/// starts dockerd for its run as root): without one it fails, it is not skipped.
#[test]
fn the_memory_sizes_measurement_runs_in_containers_and_is_reported() {
    let report = quick_into_markers("sizes");
    for expected in [
        "quick run",
        "| `auth` | `POST /v1/auth/token` | 512 MB | 0.289 |",
        "| `users` | `POST /v1/users/signup` | 512 MB | 0.289 |",
        "| `users` | `GET /v1/users/me` | 512 MB | 0.289 |",
        "| `items` | `GET /v1/items` | 512 MB | 0.289 |",
        "| `docs` | `GET /v1/health` | 512 MB | 0.289 |",
        "| `docs` | `GET /openapi.json` | 512 MB | 0.289 |",
    ] {
        assert!(report.contains(expected), "no {expected:?} in the report:\n{report}");
    }
    assert!(report.starts_with("# Benchmarks\n\nbefore\n") && report.ends_with("\n\nafter\n"), "{report}");
    assert!(!report.contains("\nold\n"), "{report}");
}
