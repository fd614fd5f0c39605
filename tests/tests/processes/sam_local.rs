//! `scripts/sam-local`: the whole API under `sam local start-api`, each function in its Lambda
//! container as `template.yaml` deploys it (built by `sam build` for this machine's architecture),
//! on DynamoDB Local. One test, as the script starts (and stops) a Docker engine of its own when
//! none runs: a user's journey and the worker's purge through the table's stream, schemathesis's
//! check as against the local server (less two requests that SAM answers itself), every event of
//! `events/` through `sam local invoke` into its function, the glibc floor of what `sam build`
//! made, and a clean stop.
//!
//! Needs Docker (or `dockerd` and root: `scripts/test` installs Debian's docker.io and
//! busybox-static), and SAM CLI and cargo-lambda (`scripts/test` installs them into .tools/venv).

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use api_tests::PASSWORD;
use api_tests::fixtures::{all_events, fill, fixtures};
use api_tests::process::{Finished, HOST_VARIABLES, Running, finish, http, workspace};
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::AppState;
use shared::repo::Repos;

const JSON: (&str, &str) = ("content-type", "application/json");
/// The highest glibc of Amazon Linux 2023 (its glibc 2.34): a `bootstrap` that needs a newer
/// symbol version would not start in Lambda's provided.al2023 runtime.
const AL2023_GLIBC: (u32, u32) = (2, 34);

/// What the script's banner says, read back.
struct Banner {
    url: String,
    /// DynamoDB Local as this host reaches it, and as the containers do.
    dynamodb: String,
    dynamodb_from_containers: String,
    /// The options of `sam local invoke` that match the running API (built template,
    /// architecture, env file, image), and where `sam build` put the functions.
    invoke_options: Vec<String>,
    build: PathBuf,
}

fn read_banner(lines: &[String], url: String) -> Banner {
    let field = |name: &str| {
        let prefix = format!("  {name}:");
        let line = lines.iter().find_map(|l| l.strip_prefix(&prefix)).unwrap_or_else(|| {
            panic!("no {name} line in the banner:\n{}", lines.join("\n"));
        });
        line.trim().to_owned()
    };
    let dynamodb = field("dynamodb");
    let dynamodb_from_containers = dynamodb.rsplit("from the containers ").next().unwrap().to_owned();
    let dynamodb = dynamodb.split_whitespace().next().unwrap().to_owned();
    let invoke = field("one event");
    let invoke = invoke.strip_prefix("sam local invoke ").unwrap();
    let invoke = invoke.strip_suffix(" <Function> -e events/<event>.json").unwrap();
    Banner {
        url,
        dynamodb,
        dynamodb_from_containers,
        invoke_options: invoke.split_whitespace().map(str::to_owned).collect(),
        build: workspace().join(field("build")),
    }
}

/// The running script. Stopped as a user stops it (SIGTERM, then its own cleanup) when the test
/// ends, even by a failed assertion; and if the script could not stop the engine it started
/// (which runs in a session of its own, out of reach of a kill of the script's group), that is
/// stopped last, after SAM and its containers.
struct Script(Option<Running>);

impl Script {
    fn running(&mut self) -> &mut Running {
        self.0.as_mut().unwrap()
    }

    /// The pid of the dockerd the script says it started.
    fn dockerd(&self) -> Option<u32> {
        self.0.as_ref()?.output().iter().find_map(|line| {
            let rest = line.split("started dockerd (pid ").nth(1)?;
            rest.split(')').next()?.parse().ok()
        })
    }

    /// SIGTERM, and up to 2 minutes for the script's cleanup: its exit status (None: killed)
    /// and everything it printed.
    fn stop(&mut self) -> (Option<std::process::ExitStatus>, Vec<String>) {
        let dockerd = self.dockerd();
        let stopped = self.0.take().unwrap().terminate(Duration::from_secs(120));
        if let Some(pid) = dockerd
            && Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = Command::new("kill").args(["-s", "TERM", &pid.to_string()]).status();
        }
        stopped
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        if self.0.is_some() {
            let (_, output) = self.stop();
            if std::thread::panicking() {
                // What SAM and the functions said: the failure's other half, kept whole.
                let log = api_tests::process::bin_dir().join("../test-artifacts/sam-local.log");
                let _ = std::fs::write(&log, output.join("\n"));
                let errors: Vec<&String> = output
                    .iter()
                    .filter(|l| l.contains("ERROR") || l.contains("Error") || l.contains(" 50"))
                    .collect();
                eprintln!("scripts/sam-local's output is in {}; its errors:\n{errors:#?}", log.display());
            }
        }
    }
}

fn sam() -> PathBuf {
    let installed = workspace().join(".tools/venv/bin/sam");
    assert!(
        installed.exists(),
        "SAM CLI is not installed: run ./scripts/test (it installs it into .tools/venv)"
    );
    installed
}

/// The template's function whose binary is `binary` (its logical id).
fn function_of(binary: &str) -> String {
    let template: serde_norway::Value = serde_norway::from_str(catalog::template::TEMPLATE).unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let found = resources
        .iter()
        .find(|(_, resource)| resource["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(binary));
    found.unwrap_or_else(|| panic!("no function builds {binary}")).0.as_str().unwrap().to_owned()
}

/// A fresh table on the script's DynamoDB Local, and the application over it (the tokens it
/// issues are signed with the secret the containers have).
async fn state_on(banner: &Banner, table: &str) -> AppState {
    let mut config = api_tests::config();
    config.dynamodb_endpoint = Some(banner.dynamodb.clone());
    config.table_name = table.to_owned();
    let store = api_tests::dynamo::store_with(&config).await;
    AppState::new(config, Repos::from_store(store)).with_hasher(api_tests::fast_hasher())
}

/// `sam local invoke <function> -e <event>` with the running API's options, its functions on
/// `table`; returns what the function answered.
async fn invoke(banner: &Banner, dir: &Path, function: &str, table: &str, event: &str) -> Value {
    let event_file = dir.join(format!("{table}.json"));
    std::fs::write(&event_file, event).unwrap();
    let env_file = dir.join(format!("{table}.env.json"));
    let parameters = json!({
        // The fixtures' tokens are issued as the tests' configuration says.
        "Parameters": {
            "DYNAMODB_ENDPOINT": banner.dynamodb_from_containers,
            "TABLE_NAME": table,
            "PUBLIC_BASE_URL": api_tests::config().jwt_issuer,
        },
        // The tests' key, which signed the fixtures' tokens into this table's ring.
        "AuthFunction": {"SIGNING_KEY": format!("pem:{}", api_tests::keys::TEST_KEY_PEM)},
    });
    std::fs::write(&env_file, parameters.to_string()).unwrap();
    let mut options = banner.invoke_options.clone();
    let at = options.iter().position(|o| o == "--env-vars").unwrap();
    options[at + 1] = env_file.display().to_string();
    let mut command = Command::new(sam());
    for name in HOST_VARIABLES {
        command.env_remove(name);
    }
    // No AWS credentials: SAM hands the containers stand-ins, which the script's DynamoDB Local
    // (-sharedDb) takes as any others; with credentials, each invoke would first ask STS for the
    // account (9 s without a network).
    for name in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"] {
        command.env_remove(name);
    }
    command
        .current_dir(workspace())
        .env("SAM_CLI_TELEMETRY", "0")
        .env("AWS_REGION", "us-east-1")
        .args(["local", "invoke"])
        .args(&options)
        .arg(function)
        .arg("-e")
        .arg(&event_file);
    let Finished { status, stdout, stderr } = finish(command).await;
    assert!(status.success(), "{function} {table}: {status}\n{stdout}\n{stderr}");
    // The function's answer is the last line of standard output (the logs go to standard error).
    let answer = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    serde_json::from_str(answer).unwrap_or_else(|e| panic!("{function} {table}: {e}\n{stdout}\n{stderr}"))
}

/// The highest `GLIBC_x.y` symbol version that `binary` needs, read by objdump.
fn highest_glibc(binary: &Path) -> (u32, u32) {
    let output = Command::new("objdump").arg("-T").arg(binary).output().expect("objdump (binutils) runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    let versions = text.split(|c: char| c.is_whitespace() || c == '(' || c == ')').filter_map(|word| {
        let version = word.strip_prefix("GLIBC_")?;
        let mut parts = version.split('.').map(|p| p.parse::<u32>());
        Some((parts.next()?.ok()?, parts.next().unwrap_or(Ok(0)).ok()?))
    });
    versions.max().unwrap_or_else(|| panic!("{} needs no glibc symbol at all?", binary.display()))
}

#[tokio::test]
async fn under_sam_local_the_whole_api_keeps_its_contract_and_every_event_answers() {
    let started = Instant::now();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let admin = "sam-admin@example.com";
    let admin_password = "sam local superuser password";
    let mut command = Command::new(workspace().join("scripts/sam-local"));
    for name in HOST_VARIABLES {
        command.env_remove(name);
    }
    command
        .env("PORT", port.to_string())
        .env("FIRST_SUPERUSER_EMAIL", admin)
        .env("FIRST_SUPERUSER_PASSWORD", admin_password)
        .env("SIGNING_KEY_FILE", api_tests::keys::TEST_KEY_FILE);
    let mail_dir =
        workspace().join("target/test-artifacts/sam-local-mail").join(uuid::Uuid::new_v4().to_string());
    command.env("MAIL_DIR", &mail_dir);
    let mut script = Script(Some(Running::spawn_group(command)));
    // The first run builds every function in release (minutes on two cores).
    let url = script
        .running()
        .wait_for(Duration::from_secs(1800), |l| l.strip_prefix("API listening on ").map(str::to_owned));
    let ready = started.elapsed();
    let banner = read_banner(&script.running().output(), url);
    let url = banner.url.clone();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    println!("sam-local: API listening after {ready:.1?}");

    // A user's journey, each function in its container.
    let signup = http(
        Method::POST,
        &format!("{url}/v1/users/signup"),
        &[JSON],
        json!({"email": "sam@example.com", "password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(signup.status, StatusCode::CREATED, "{:?}", signup.body);
    let user_id = signup.json()["id"].as_str().unwrap().to_owned();
    // Its verification: the stream → WorkerFunction in its container → SES (the script's
    // stand-in) → an .eml file in MAIL_DIR, whose link verifies the address.
    let output = script.running().output().join("\n");
    assert!(
        output.contains(&format!(
            "mail:       each message written as an .eml file into {}",
            mail_dir.display()
        )),
        "{output}"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let message = loop {
        let found = std::fs::read_dir(&mail_dir)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "eml"));
        if let Some(path) = found {
            break std::fs::read(path).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "no message in {}\n{}",
            mail_dir.display(),
            script.running().output().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let received =
        api_tests::mailbox::Received::parse(worker::mail::MailKind::VerifyEmail, "sam@example.com", &message);
    assert!(received.raw.windows(15).any(|w| w == b"sam@example.com"), "to the account's address");
    let verified = http(
        Method::POST,
        &format!("{url}/v1/auth/verify-email"),
        &[JSON],
        json!({"token": received.token().unwrap()}).to_string(),
    )
    .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT, "{:?}", verified.body);
    let form =
        serde_urlencoded::to_string([("username", "sam@example.com"), ("password", PASSWORD)]).unwrap();
    let token = http(
        Method::POST,
        &format!("{url}/v1/auth/token"),
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await;
    assert_eq!(token.status, StatusCode::OK, "{:?}", token.body);
    let bearer = format!("Bearer {}", token.json()["access_token"].as_str().unwrap());
    let item = http(
        Method::POST,
        &format!("{url}/v1/items"),
        &[JSON, ("authorization", &bearer)],
        r#"{"title":"boxed"}"#,
    )
    .await;
    assert_eq!(item.status, StatusCode::CREATED, "{:?}", item.body);
    let location = item.header("location").unwrap().to_owned();
    let read = http(Method::GET, &format!("{url}{location}"), &[("authorization", &bearer)], "").await;
    assert_eq!((read.status, read.json()["title"].clone()), (StatusCode::OK, json!("boxed")));
    assert_eq!(read.header("etag"), Some("\"1\""));
    // The health check, from the docs function's container, reads DynamoDB Local.
    let health = http(Method::GET, &format!("{url}/v1/health"), &[], "").await;
    assert_eq!(
        (health.status, health.json()),
        (StatusCode::OK, json!({"status": "ok"})),
        "{:?}",
        health.body
    );
    // The contract's 404 and 405, from the functions' routers (API Gateway routes every method).
    let unknown = http(Method::GET, &format!("{url}/v2/nothing"), &[], "").await;
    assert_eq!((unknown.status, unknown.json()), (StatusCode::NOT_FOUND, json!({"detail": "Not Found"})));
    let put = http(Method::PUT, &format!("{url}/v1/items"), &[], "").await;
    assert_eq!((put.status, put.header("allow")), (StatusCode::METHOD_NOT_ALLOWED, Some("GET,HEAD,POST")));
    // The account deleted: the table's stream → the poller → WorkerFunction in its container.
    let deleted =
        http(Method::DELETE, &format!("{url}/v1/users/me"), &[("authorization", &bearer)], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{:?}", deleted.body);
    let mut config = api_tests::config();
    config.dynamodb_endpoint = Some(banner.dynamodb.clone());
    config.table_name = "api".into();
    let store = shared::repo::dynamo::DynamoStore::new(api_tests::dynamo::client(&config).await, "api");
    if let Err(keys) = api_tests::dynamo::wait_until_purged(&store, &user_id, Duration::from_secs(120)).await
    {
        panic!("not purged: {keys:?}\n{}", script.running().output().join("\n"));
    }

    // The contract, as schemathesis checks it against the local server (but for the two
    // requests SAM itself answers otherwise than API Gateway: schemathesis.rs, Host::SamLocal).
    let fuzzing = Instant::now();
    let summary =
        crate::schemathesis::check(&url, admin, admin_password, crate::schemathesis::Host::SamLocal).await;
    println!("sam-local: schemathesis {summary} in {:.1?}", fuzzing.elapsed());

    // Every event of events/ through `sam local invoke`, each on a table of its own with the
    // fixtures it names, answering the status the events test expects.
    let dir = api_tests::process::bin_dir().join("../test-artifacts/sam-local");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let routes = catalog::routes().unwrap();
    let invoking = Instant::now();
    let events = all_events();
    for (n, event) in events.iter().enumerate() {
        let table = format!("event-{n}");
        let fixtures = fixtures(state_on(&banner, &table).await).await;
        let binary = &routes.iter().find(|r| r.path == event.route).unwrap().binary;
        let answer =
            invoke(&banner, &dir, &function_of(binary), &table, &fill(event, &fixtures.substitutions)).await;
        assert_eq!(answer["statusCode"], event.status, "{}: {answer}", event.name);
    }
    // The worker's two: a stream batch with a deleted user's purge record, and the sweep.
    let app = api_tests::TestApp::from_state(state_on(&banner, "worker-events").await);
    let user = app.user().await;
    app.item(&user.access, "purged").await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let sample = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    let purge = std::fs::read_to_string(workspace().join("events/worker/purge.json")).unwrap();
    let purge = purge
        .replace(
            &shared::repo::keys::purges_pk(sample.parse().unwrap()),
            &shared::repo::keys::purges_pk(user.id),
        )
        .replace(sample, &user.id.to_string());
    let answer = invoke(&banner, &dir, "WorkerFunction", "worker-events", &purge).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(app.state.repos.purges.get_purge(user.id).await.unwrap(), None, "purged");
    let sweep = std::fs::read_to_string(workspace().join("events/worker/sweep.json")).unwrap();
    let answer = invoke(&banner, &dir, "WorkerFunction", "worker-events", &sweep).await;
    assert_eq!(answer["stale"], 0, "{answer}");
    println!("sam-local: {} events through sam local invoke in {:.1?}", events.len() + 2, invoking.elapsed());

    // What sam build made runs on Amazon Linux 2023: no bootstrap needs a newer glibc.
    // Its own build directory: .aws-sam/build stays what `sam deploy` ships.
    let build = banner.build.clone();
    assert!(build.ends_with(".aws-sam/sam-local-x86_64") || build.ends_with(".aws-sam/sam-local-arm64"));
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&build).unwrap() {
        let bootstrap = entry.unwrap().path().join("bootstrap");
        if bootstrap.is_file() {
            let glibc = highest_glibc(&bootstrap);
            assert!(glibc <= AL2023_GLIBC, "{} needs GLIBC_{}.{}", bootstrap.display(), glibc.0, glibc.1);
            checked.push(format!("{}: GLIBC_{}.{}", bootstrap.parent().unwrap().display(), glibc.0, glibc.1));
        }
    }
    assert_eq!(checked.len(), 5, "{checked:?}");
    println!("sam-local: {checked:?}");

    // Stopped, it leaves nothing running: SAM, DynamoDB Local, the engine it started.
    let dockerd = script.dockerd();
    let (status, output) = script.stop();
    assert!(status.is_some(), "it did not stop within 2 minutes:\n{}", output.join("\n"));
    let dynamodb_port = banner.dynamodb.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", dynamodb_port)).is_err(), "DynamoDB Local still runs");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "sam local start-api still runs");
    if let Some(pid) = dockerd {
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the dockerd it started still runs");
        assert!(output.iter().any(|l| l.contains("stopped the dockerd it started")), "{}", output.join("\n"));
    }
}
