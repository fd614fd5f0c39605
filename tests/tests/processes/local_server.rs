//! The local API server and the admin command as a user runs them: real processes, real HTTP.
//! The server mounts the functions' own routers on the routes of `template.yaml`, needs no
//! configuration at all, and uses DynamoDB when `DYNAMODB_ENDPOINT` says so.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use api_tests::PASSWORD;
use api_tests::process::{HOST_VARIABLES, LocalServer, Reply, build_server, http};
use axum::http::{Method, StatusCode};
use serde_json::json;
use uuid::Uuid;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const JSON: (&str, &str) = ("content-type", "application/json");

async fn login(url: &str, email: &str, password: &str) -> Reply {
    let form = serde_urlencoded::to_string([("username", email), ("password", password)]).unwrap();
    http(Method::POST, &format!("{url}/v1/auth/token"), &[FORM], form).await
}

async fn refresh(url: &str, refresh_token: &str) -> Reply {
    let form =
        serde_urlencoded::to_string([("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
            .unwrap();
    http(Method::POST, &format!("{url}/v1/auth/token"), &[FORM], form).await
}

async fn signup(url: &str, email: &str) -> Reply {
    let body = json!({"email": email, "password": PASSWORD}).to_string();
    http(Method::POST, &format!("{url}/v1/users/signup"), &[JSON], body).await
}

#[tokio::test]
async fn with_no_configuration_at_all_the_whole_api_runs_in_memory() {
    let admin_password = "first superuser password";
    let server = LocalServer::start(
        &["--port", "0"],
        &[
            ("FIRST_SUPERUSER_EMAIL", "root@example.com"),
            ("FIRST_SUPERUSER_PASSWORD", admin_password),
            ("CORS_ALLOWED_ORIGINS", "http://localhost:5173"),
        ],
    )
    .await;
    let url = server.url.clone();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let banner = server.process.output().join("\n");
    assert!(banner.contains("store:      in memory"), "{banner}");
    assert!(banner.contains("SIGNING_KEY not set, so one was made for this run"), "{banner}");
    assert!(banner.contains(&format!("issuer:     {url} (keys at {url}/.well-known/jwks.json)")), "{banner}");
    // The issuer is the server's own URL, whatever Host a request names.
    let discovery = http(
        Method::GET,
        &format!("{url}/.well-known/openid-configuration"),
        &[("host", "attacker.example")],
        "",
    )
    .await
    .json();
    assert_eq!(discovery["issuer"], url.as_str());
    assert_eq!(discovery["jwks_uri"], format!("{url}/.well-known/jwks.json"));
    let jwks = http(Method::GET, &format!("{url}/.well-known/jwks.json"), &[], "").await.json();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "the key made at start");
    assert!(banner.contains("superuser:  root@example.com (created)"), "{banner}");
    assert!(banner.contains(&format!("docs:       {url}/docs")), "{banner}");

    // Every route of the template is served (a bodiless, anonymous request is refused by the
    // function, never a 404 of the server).
    let routes = catalog::routes().unwrap();
    assert!(routes.len() >= 10);
    for route in routes.iter().filter(|r| r.path != catalog::DEFAULT_ROUTE) {
        let path: String = route
            .path
            .split('/')
            .map(|segment| match segment {
                "{proxy+}" => "swagger-ui.css".to_owned(),
                s if s.starts_with('{') => Uuid::now_v7().to_string(),
                s => s.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let reply = http(Method::POST, &format!("{url}{path}"), &[], "").await;
        assert_ne!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert!(reply.status.is_client_error(), "{path}: {}", reply.status);
    }
    let unknown = http(Method::GET, &format!("{url}/v2/nothing"), &[], "").await;
    assert_eq!((unknown.status, unknown.json()), (StatusCode::NOT_FOUND, json!({"detail": "Not Found"})));
    let put = http(Method::PUT, &format!("{url}/v1/items"), &[], "").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.header("allow"), Some("GET,HEAD,POST"));

    // A user's whole journey, and the first superuser's powers.
    assert_eq!(signup(&url, "local@example.com").await.status, StatusCode::CREATED);
    let token = login(&url, "local@example.com", PASSWORD).await.json();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {access}");
    let created = http(
        Method::POST,
        &format!("{url}/v1/items"),
        &[JSON, ("authorization", &bearer)],
        r#"{"title":"t"}"#,
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let location = created.header("location").unwrap().to_owned();
    let read = http(Method::GET, &format!("{url}{location}"), &[("authorization", &bearer)], "").await;
    assert_eq!((read.status, read.json()["title"].clone()), (StatusCode::OK, json!("t")));
    let root = login(&url, "root@example.com", admin_password).await.json();
    let root_bearer = format!("Bearer {}", root["access_token"].as_str().unwrap());
    let users = http(Method::GET, &format!("{url}/v1/users"), &[("authorization", &root_bearer)], "").await;
    assert_eq!(users.status, StatusCode::OK);
    assert_eq!(users.json()["data"].as_array().unwrap().len(), 2);

    // CORS: the configured origin may call, preflight included (with an Idempotency-Key, whose
    // replays a browser can tell); another may not.
    let preflight = http(
        Method::OPTIONS,
        &format!("{url}/v1/items"),
        &[
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization,content-type,idempotency-key"),
        ],
        "",
    )
    .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("http://localhost:5173"));
    assert_eq!(preflight.header("access-control-allow-methods"), Some("GET,POST,PATCH,DELETE"));
    assert!(preflight.header("access-control-allow-headers").unwrap().contains("idempotency-key"));
    assert!(preflight.header("x-request-id").is_some());
    let simple = http(
        Method::GET,
        &format!("{url}{location}"),
        &[("origin", "http://localhost:5173"), ("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(simple.header("access-control-allow-origin"), Some("http://localhost:5173"));
    let exposed = simple.header("access-control-expose-headers").unwrap();
    assert!(exposed.contains("etag") && exposed.contains("idempotent-replayed"), "{exposed}");
    let foreign = http(
        Method::GET,
        &format!("{url}{location}"),
        &[("origin", "https://evil.example"), ("authorization", &bearer)],
        "",
    )
    .await;
    assert_eq!(foreign.header("access-control-allow-origin"), None);

    // One access-log line per request, with its route and status; no secret in any line.
    let output = server.process.stop();
    let requests: Vec<&String> = output.iter().filter(|l| l.contains(" request ")).collect();
    assert!(
        requests.iter().any(|l| l.contains("route=\"/v1/items/{item_id}\"") && l.contains("status=200")),
        "{output:#?}"
    );
    assert!(requests.iter().any(|l| l.contains("route=\"/v1/users/signup\"") && l.contains("status=201")));
    let unlike: Vec<_> =
        requests.iter().filter(|l| !(l.contains("request_id=") && l.contains("latency_ms="))).collect();
    assert!(unlike.is_empty(), "{unlike:#?}");
    // The preflight never reached a function (as in AWS, where API Gateway answers it), and is
    // logged by the server itself.
    assert!(
        requests.iter().any(|l| l.contains("route=\"<cors preflight>\"") && l.contains("method=OPTIONS"))
    );
    let everything = output.join("\n");
    for secret in [PASSWORD, admin_password, &access, "Bearer"] {
        assert!(!everything.contains(secret), "{secret:?} was logged:\n{everything}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn the_port_comes_from_port_or_the_flag_and_the_flag_wins() {
    let port = free_port();
    let server = LocalServer::start(&[], &[("PORT", &port.to_string())]).await;
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
    assert_eq!(signup(&server.url, "port@example.com").await.status, StatusCode::CREATED);
    drop(server);
    let port = free_port();
    let server = LocalServer::start(&["--port", &port.to_string()], &[("PORT", "1")]).await;
    assert_eq!(server.url, format!("http://127.0.0.1:{port}"));
}

#[tokio::test]
async fn it_serves_on_one_thread_or_on_as_many_as_asked() {
    for workers in [("--workers", "3"), ("--workers", "1")] {
        let server = LocalServer::start(&["--port", "0", workers.0, workers.1], &[]).await;
        let email = format!("workers-{}@example.com", workers.1);
        assert_eq!(signup(&server.url, &email).await.status, StatusCode::CREATED);
        assert_eq!(login(&server.url, &email, PASSWORD).await.status, StatusCode::OK);
    }
    let server = LocalServer::start(&["--port", "0"], &[("WORKERS", "2")]).await;
    assert_eq!(signup(&server.url, "workers-env@example.com").await.status, StatusCode::CREATED);
    let (ok, output) = run("server", &["--workers", "0"], &[], None);
    assert!(!ok, "0 workers started: {output}");
    assert!(output.contains("--workers"), "{output}");
}

fn run(bin: &str, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new(build_server().join(bin));
    for name in HOST_VARIABLES {
        command.env_remove(name);
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test]
async fn failed_logins_count_under_the_tcp_peer_not_a_header_the_client_sets() {
    let server = LocalServer::start(&["--port", "0"], &[]).await;
    assert_eq!(signup(&server.url, "peer@example.com").await.status, StatusCode::CREATED);
    let url = format!("{}/v1/auth/token", server.url);
    let form =
        serde_urlencoded::to_string([("username", "peer@example.com"), ("password", "wrong password")]);
    for n in 0..5 {
        let forged = format!("198.51.100.{n}");
        let reply =
            http(Method::POST, &url, &[FORM, ("x-forwarded-for", &forged)], form.clone().unwrap()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{n}: {:?}", reply.body);
    }
    let reply = http(Method::POST, &url, &[FORM, ("x-forwarded-for", "198.51.100.99")], form.unwrap()).await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the peer, 127.0.0.1, is throttled: {:?}",
        reply.body
    );
    // Another peer (Linux answers all of 127/8 on loopback) is not: the owner elsewhere.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let server_address = server.url.trim_start_matches("http://").parse().unwrap();
    let mut stream = socket.connect(server_address).await.unwrap();
    let body =
        serde_urlencoded::to_string([("username", "peer@example.com"), ("password", PASSWORD)]).unwrap();
    let request = format!(
        "POST /v1/auth/token HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "from 127.0.0.2: {answer}");
}

#[tokio::test]
async fn a_table_needs_an_endpoint_before_it_is_created() {
    let (ok, out) = run("server", &["--create-table", "--port", "0"], &[], None);
    assert!(!ok && out.contains("--create-table needs DYNAMODB_ENDPOINT"), "{out}");
    // A key in the environment is refused (outside `sam local`), and not repeated.
    let pem = format!("pem:{}", api_tests::keys::TEST_KEY_PEM.replace('\n', "\\n"));
    let (ok, out) = run("server", &["--port", "0"], &[("SIGNING_KEY", &pem)], None);
    assert!(!ok && out.contains("for `sam local` only") && !out.contains("MII"), "{out}");
    let (ok, out) = run("server", &["--port", "0"], &[("SIGNING_KEY", "file:/nonexistent/key.pem")], None);
    assert!(!ok && out.contains("/nonexistent/key.pem"), "{out}");
    let (ok, out) = run("server", &["--port", "0"], &[("FIRST_SUPERUSER_EMAIL", "a@example.com")], None);
    assert!(!ok && out.contains("set both FIRST_SUPERUSER_EMAIL and FIRST_SUPERUSER_PASSWORD"), "{out}");
    let (ok, out) = run("admin", &["migrate", "--status"], &[], None);
    assert!(!ok && out.contains("set TABLE_NAME"), "{out}");
    // A table that is not there is found at start, not by every request's 5xx.
    let endpoint = api_tests::dynamo::endpoint();
    let env = [("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", "never-created")];
    let (ok, out) = run("server", &["--port", "0"], &env, None);
    assert!(
        !ok && out.contains("\"never-created\" does not exist") && out.contains("--create-table"),
        "{out}"
    );
    let (ok, out) = run("admin", &["--create-table", "migrate"], &[("TABLE_NAME", "deployed")], None);
    assert!(!ok && out.contains("--create-table needs DYNAMODB_ENDPOINT"), "{out}");
}

#[tokio::test]
async fn with_dynamodb_endpoint_it_keeps_its_data_in_dynamodb() {
    let endpoint = api_tests::dynamo::endpoint();
    let table = format!("local-{}", Uuid::new_v4().simple());
    let key = format!("file:{}", api_tests::keys::TEST_KEY_FILE);
    let env = [
        ("DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("TABLE_NAME", table.as_str()),
        ("SIGNING_KEY", key.as_str()),
        ("FIRST_SUPERUSER_EMAIL", "root@example.com"),
        ("FIRST_SUPERUSER_PASSWORD", PASSWORD),
    ];
    let server = LocalServer::start(&["--port", "0", "--create-table"], &env).await;
    let banner = server.process.output().join("\n");
    assert!(banner.contains(&format!("store:      DynamoDB table {table:?} at {endpoint}")), "{banner}");
    assert!(banner.contains("root@example.com (created)"), "{banner}");
    assert!(banner.contains(&format!("SIGNING_KEY file:{}", api_tests::keys::TEST_KEY_FILE)), "{banner}");
    assert_eq!(signup(&server.url, "kept@example.com").await.status, StatusCode::CREATED);
    drop(server);

    // The data outlives the process; the superuser is kept, not made twice.
    let server = LocalServer::start(&["--port", "0"], &env).await;
    assert!(server.process.output().join("\n").contains("root@example.com (already there)"));
    // An ordinary account named as the first superuser is not promoted by a start: the server
    // refuses to start, and the account stays as it was.
    let mut hijack = env.to_vec();
    hijack.retain(|(name, _)| *name != "FIRST_SUPERUSER_EMAIL");
    hijack.push(("FIRST_SUPERUSER_EMAIL", "kept@example.com"));
    let (ok, out) = run("server", &["--port", "0"], &hijack, None);
    assert!(!ok && out.contains("already exists and is not a superuser"), "{out}");
    let kept = login(&server.url, "kept@example.com", PASSWORD).await.json();
    let bearer = format!("Bearer {}", kept["access_token"].as_str().unwrap());
    let users =
        http(Method::GET, &format!("{}/v1/users", server.url), &[("authorization", &bearer)], "").await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "still an ordinary user");
    assert_eq!(login(&server.url, "kept@example.com", PASSWORD).await.status, StatusCode::OK);
    let mut config = api_tests::config();
    config.table_name = table;
    config.dynamodb_endpoint = Some(endpoint);
    let client = api_tests::dynamo::client(&config).await;
    let store = shared::repo::dynamo::DynamoStore::new(client, config.table_name.clone());
    let user = shared::repo::UserRepo::find_user_by_email(&store, "kept@example.com").await.unwrap();
    assert!(user.is_some(), "the signup is in the DynamoDB table");

    // The key ring, through the admin command: the server's key signs; a rotation schedules the
    // next; the only key that signs is never withdrawn.
    let admin_env = [
        ("DYNAMODB_ENDPOINT", config.dynamodb_endpoint.as_deref().unwrap()),
        ("TABLE_NAME", &config.table_name),
    ];
    let test_kid = api_tests::keys::test_key().kid().to_owned();
    let (ok, out) = run("admin", &["keys", "list"], &admin_env, None);
    assert!(ok && out.contains(&format!("signing   {test_kid} file:")), "{out}");
    let to = format!("file:{}", api_tests::keys::OTHER_KEY_FILE);
    let (ok, out) = run("admin", &["keys", "rotate", "--to", &to], &admin_env, None);
    let other_kid = api_tests::keys::other_key().kid().to_owned();
    assert!(ok && out.contains(&format!("{other_kid} is published and signs from")), "{out}");
    assert!(out.contains(&format!("{test_kid} verifies until")), "{out}");
    let (ok, out) = run("admin", &["keys", "list"], &admin_env, None);
    assert!(ok && out.contains(&format!("next      {other_kid}")), "{out}");
    let (ok, out) = run("admin", &["keys", "withdraw", &test_kid], &admin_env, None);
    assert!(!ok && out.contains("is the key that signs"), "{out}");
    // One rotation at a time: a third key (written readable by its owner alone) waits.
    let third = std::env::temp_dir().join(format!("third-{}.pem", Uuid::new_v4()));
    let (ok, out) = run("admin", &["keys", "generate", "--out", third.to_str().unwrap()], &[], None);
    assert!(ok && out.contains("wrote a new signing key"), "{out}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&third).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let to_third = format!("file:{}", third.display());
    let (ok, out) = run("admin", &["keys", "rotate", "--to", &to_third], &admin_env, None);
    assert!(!ok && out.contains(&format!("a rotation to {other_kid} is under way")), "{out}");
    let _ = std::fs::remove_file(&third);
    let (ok, out) =
        run("admin", &["keys", "rotate", "--to", "pem:-----BEGIN PRIVATE KEY-----"], &admin_env, None);
    assert!(!ok && out.contains("for `sam local` only") && !out.contains("BEGIN"), "{out}");
    let (ok, out) = run("admin", &["keys", "rotate", "--to", "a-pasted-secret"], &admin_env, None);
    assert!(!ok && out.contains("--to must be kms:") && !out.contains("a-pasted-secret"), "{out}");
}

#[tokio::test]
async fn the_admin_command_migrates_and_makes_superusers_on_a_table() {
    let endpoint = api_tests::dynamo::endpoint();
    let table = format!("admin-{}", Uuid::new_v4().simple());
    let env = [("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", table.as_str())];
    let (ok, out) = run("admin", &["--create-table", "migrate", "--status"], &env, None);
    assert!(ok && out.contains("0001_baseline") && out.contains("pending"), "{out}");
    let (ok, out) = run("admin", &["migrate"], &env, None);
    assert!(ok && out.contains("applied 0001_baseline"), "{out}");
    let (ok, out) = run("admin", &["migrate"], &env, None);
    assert!(ok && out.contains("nothing to apply"), "{out}");
    let (ok, out) = run("admin", &["migrate", "--status"], &env, None);
    assert!(ok && out.contains("0001_baseline") && out.contains("applied 20"), "{out}");

    // The password comes from standard input or ADMIN_PASSWORD, never the command line.
    let (ok, out) =
        run("admin", &["create-superuser", "--email", "ops@example.com"], &env, Some("ops password 1\n"));
    assert!(ok && out.contains("ops@example.com: created"), "{out}");
    let mut with_password = env.to_vec();
    with_password.push(("ADMIN_PASSWORD", "ops password 1"));
    let (ok, out) = run("admin", &["create-superuser", "--email", "ops@example.com"], &with_password, None);
    assert!(ok && out.contains("already a superuser"), "{out}");
    let (ok, out) = run("admin", &["create-superuser", "--email", "weak@example.com"], &env, Some("short\n"));
    assert!(!ok && out.contains("invalid password"), "{out}");
    assert!(!out.contains("short\n") && !out.contains("ops password 1"), "{out}");

    // An ordinary user of the API, promoted; the API then treats it as a superuser.
    let server = LocalServer::start(
        &["--port", "0"],
        &[("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", table.as_str())],
    )
    .await;
    assert_eq!(signup(&server.url, "promote@example.com").await.status, StatusCode::CREATED);
    let before = login(&server.url, "promote@example.com", PASSWORD).await.json();
    let old_bearer = format!("Bearer {}", before["access_token"].as_str().unwrap());
    let users_url = format!("{}/v1/users", server.url);
    // Whoever signed up with the address first is not made superuser by the documented command.
    let (ok, out) = run("admin", &["create-superuser", "--email", "promote@example.com"], &env, None);
    assert!(!ok && out.contains("already exists and is not a superuser"), "{out}");
    let users = http(Method::GET, &users_url, &[("authorization", &old_bearer)], "").await;
    assert_eq!(users.status, StatusCode::FORBIDDEN, "refused: still an ordinary user");
    // Promoted on purpose: a new password, and every session of the account ends.
    let args = ["create-superuser", "--email", "promote@example.com", "--promote-existing"];
    let (ok, out) = run("admin", &args, &env, Some("the operator's password\n"));
    assert!(ok && out.contains("promoted to superuser"), "{out}");
    let me = http(Method::GET, &format!("{}/v1/users/me", server.url), &[("authorization", &old_bearer)], "")
        .await;
    assert_eq!(me.status, StatusCode::UNAUTHORIZED, "the old session ended");
    let refreshed = refresh(&server.url, before["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, StatusCode::BAD_REQUEST, "its refresh token too");
    assert_eq!(login(&server.url, "promote@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    let token = login(&server.url, "promote@example.com", "the operator's password").await.json();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let users = http(Method::GET, &users_url, &[("authorization", &bearer)], "").await;
    assert_eq!(users.status, StatusCode::OK);
    // A rerun is a success that changes nothing.
    let (ok, out) =
        run("admin", &["create-superuser", "--email", "promote@example.com"], &with_password, None);
    assert!(ok && out.contains("already a superuser"), "{out}");
    assert_eq!(
        login(&server.url, "promote@example.com", "the operator's password").await.status,
        StatusCode::OK
    );
    let ops = login(&server.url, "ops@example.com", "ops password 1").await;
    assert_eq!(ops.status, StatusCode::OK);
}

/// Polls `done` every 200 ms until it holds; fails after `seconds` (a generous bound on a
/// background task, not a timing claim).
async fn eventually<F: std::future::Future<Output = bool>>(
    seconds: u64,
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "{what}: not within {seconds} s");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Signs up a user with two items and deletes the account; returns its id and an item's path.
async fn delete_an_account_with_items(url: &str) -> (Uuid, String) {
    let email = format!("gone-{}@example.com", Uuid::new_v4().simple());
    let created = signup(url, &email).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id: Uuid = created.json()["id"].as_str().unwrap().parse().unwrap();
    let token = login(url, &email, PASSWORD).await.json();
    let bearer = format!("Bearer {}", token["access_token"].as_str().unwrap());
    let auth = [JSON, ("authorization", bearer.as_str())];
    let mut path = String::new();
    for title in ["one", "two"] {
        let item =
            http(Method::POST, &format!("{url}/v1/items"), &auth, json!({"title": title}).to_string()).await;
        assert_eq!(item.status, StatusCode::CREATED);
        path = item.header("location").unwrap().to_owned();
    }
    let deleted = http(Method::DELETE, &format!("{url}/v1/users/me"), &auth[1..], "").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    (id, path)
}

#[tokio::test]
async fn the_local_server_runs_the_worker_that_purges_deleted_accounts_in_memory() {
    let env = [("FIRST_SUPERUSER_EMAIL", "root@example.com"), ("FIRST_SUPERUSER_PASSWORD", PASSWORD)];
    let server = LocalServer::start(&["--port", "0"], &env).await;
    assert!(server.process.output().join("\n").contains("worker:     in this process"));
    let admin = login(&server.url, "root@example.com", PASSWORD).await.json();
    let bearer = format!("Bearer {}", admin["access_token"].as_str().unwrap());
    let (_, item) = delete_an_account_with_items(&server.url).await;
    let url = format!("{}{item}", server.url);
    // The item is gone once the worker has purged it (a superuser reads any item by id).
    eventually(30, "the deleted user's item purged", || async {
        http(Method::GET, &url, &[("authorization", bearer.as_str())], "").await.status
            == StatusCode::NOT_FOUND
    })
    .await;
}

#[tokio::test]
async fn on_dynamodb_local_the_local_servers_worker_reads_the_tables_stream() {
    let endpoint = api_tests::dynamo::endpoint();
    let table = format!("stream-{}", Uuid::new_v4().simple());
    let env = [("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", table.as_str())];
    let mut server = LocalServer::start(&["--port", "0", "--create-table"], &env).await;
    // Its first sweep done and the stream read from then on: a deletion now reaches it by the
    // stream alone (the next sweep is a minute away).
    server.process.wait_for(std::time::Duration::from_secs(30), |line| {
        line.contains("worker reading the table's stream").then_some(())
    });
    let mut config = api_tests::config();
    config.table_name = table;
    config.dynamodb_endpoint = Some(endpoint);
    let store =
        shared::repo::dynamo::DynamoStore::new(api_tests::dynamo::client(&config).await, config.table_name);
    let (id, _) = delete_an_account_with_items(&server.url).await;
    let id = id.to_string();
    eventually(60, "every record of the deleted user purged, the purge record too", || async {
        let keys = store.scan_keys().await.unwrap();
        !keys.iter().any(|(pk, sk)| pk.contains(&id) || sk.contains(&id))
    })
    .await;
    let output = server.process.output().join("\n");
    assert!(!output.contains("the local worker stopped"), "{output}");
}

#[tokio::test]
async fn admin_purge_lists_and_runs_pending_purges() {
    let endpoint = api_tests::dynamo::endpoint();
    let table = format!("purge-{}", Uuid::new_v4().simple());
    let env = [("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", table.as_str())];
    let (ok, out) = run("admin", &["--create-table", "purge", "--status"], &env, None);
    assert!(ok && !out.contains("pending:"), "{out}");
    let mut config = api_tests::config();
    config.table_name = table.clone();
    config.dynamodb_endpoint = Some(endpoint.clone());
    let store = std::sync::Arc::new(shared::repo::dynamo::DynamoStore::new(
        api_tests::dynamo::client(&config).await,
        config.table_name.clone(),
    ));
    let app = api_tests::TestApp::from_state(
        shared::AppState::new(config, shared::repo::Repos::from_store(store.clone()))
            .with_hasher(api_tests::fast_hasher()),
    );
    let user = app.user().await;
    app.item(&user.access, "left behind").await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let (ok, out) = run("admin", &["purge", "--status"], &env, None);
    assert!(ok && out.contains(&format!("pending: user {}", user.id)), "{out}");
    assert!(!out.contains("purged"), "--status only lists: {out}");
    let (ok, out) = run("admin", &["purge"], &env, None);
    assert!(ok && out.contains("purged 1 of 1 pending, 4 records deleted"), "{out}");
    let id = user.id.to_string();
    let keys = store.scan_keys().await.unwrap();
    assert!(!keys.iter().any(|(pk, sk)| pk.contains(&id) || sk.contains(&id)), "{keys:?}");
}

/// The `.eml` files in `dir`, oldest first (their names sort by time), and whether anything else
/// (a temporary file left behind) is there.
fn mail_files(dir: &std::path::Path) -> (Vec<std::path::PathBuf>, Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return (Vec::new(), Vec::new()) };
    let (mut eml, mut other) = (Vec::new(), Vec::new());
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".eml") { eml.push(path) } else { other.push(name) }
    }
    eml.sort();
    (eml, other)
}

/// Waits for the `n`th message in the server's mail folder, and reads it as a mail client would.
async fn nth_message(server: &LocalServer, n: usize) -> api_tests::mailbox::Received {
    let dir = server.mail_dir.clone();
    eventually(20, &format!("message {n} in {}", dir.display()), || {
        let dir = dir.clone();
        async move { mail_files(&dir).0.len() >= n }
    })
    .await;
    let path = mail_files(&server.mail_dir).0[n - 1].clone();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    // `<UTC timestamp>-<uuid>.eml`, e.g. 20261201T165210.123456Z-<uuid>.eml.
    let (stamp, rest) = name.split_once('-').unwrap();
    assert!(stamp.ends_with('Z') && stamp.contains('T'), "{name}");
    assert!(rest.trim_end_matches(".eml").parse::<Uuid>().is_ok(), "{name}");
    let raw = std::fs::read(&path).unwrap();
    let parsed = mailparse::parse_mail(&raw).unwrap();
    let to = mailparse::MailHeaderMap::get_first_value(parsed.headers.as_slice(), "To").unwrap();
    api_tests::mailbox::Received::parse(worker::mail::MailKind::VerifyEmail, &to, &raw)
}

#[tokio::test]
async fn the_local_server_writes_account_mail_to_files_whose_links_work() {
    let env = [("REQUIRE_EMAIL_VERIFICATION", "true"), ("APP_URL", "http://localhost:5173")];
    let server = LocalServer::start(&["--port", "0"], &env).await;
    let banner = server.process.output().join("\n");
    assert!(
        banner.contains(&format!(
            "mail:       each message written as an .eml file into {}",
            server.mail_dir.display()
        )),
        "{banner}"
    );
    let email = format!("mailed-{}@example.com", Uuid::new_v4().simple());
    assert_eq!(signup(&server.url, &email).await.status, StatusCode::CREATED);
    let refused = login(&server.url, &email, PASSWORD).await;
    assert!(refused.json()["error_description"].as_str().unwrap().contains("not verified"));

    // The signup's verification, as a file a developer opens.
    let verification = nth_message(&server, 1).await;
    assert_eq!(verification.to, email);
    assert!(verification.text.contains("http://localhost:5173/verify-email?token="), "{}", verification.text);
    let token = verification.token().unwrap();
    let verified = http(
        Method::POST,
        &format!("{}/v1/auth/verify-email", server.url),
        &[JSON],
        json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
    assert_eq!(login(&server.url, &email, PASSWORD).await.status, StatusCode::OK);

    // A recovery, its link, a new password.
    let asked = http(
        Method::POST,
        &format!("{}/v1/auth/password-recovery", server.url),
        &[JSON],
        json!({"email": email}).to_string(),
    )
    .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let recovery = nth_message(&server, 2).await;
    assert!(recovery.text.contains("http://localhost:5173/reset-password?token="), "{}", recovery.text);
    let body = json!({"token": recovery.token().unwrap(), "new_password": "a brand new passphrase"});
    let reset =
        http(Method::POST, &format!("{}/v1/auth/reset-password", server.url), &[JSON], body.to_string())
            .await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT);
    assert_eq!(login(&server.url, &email, "a brand new passphrase").await.status, StatusCode::OK);
    let (files, leftovers) = mail_files(&server.mail_dir);
    assert_eq!((files.len(), leftovers), (2, Vec::<String>::new()), "written whole, nothing else");
    // Nothing of the tokens reached the log.
    let output = server.process.output().join("\n");
    assert!(!output.contains(&token) && !output.contains(&recovery.token().unwrap()), "{output}");
}

#[tokio::test]
async fn on_dynamodb_local_account_mail_goes_out_through_the_tables_stream() {
    let endpoint = api_tests::dynamo::endpoint();
    let table = format!("mail-{}", Uuid::new_v4().simple());
    let env = [("DYNAMODB_ENDPOINT", endpoint.as_str()), ("TABLE_NAME", table.as_str())];
    let mut server = LocalServer::start(&["--port", "0", "--create-table"], &env).await;
    server.process.wait_for(std::time::Duration::from_secs(30), |line| {
        line.contains("worker reading the table's stream").then_some(())
    });
    let email = format!("streamed-{}@example.com", Uuid::new_v4().simple());
    assert_eq!(signup(&server.url, &email).await.status, StatusCode::CREATED);
    let verification = nth_message(&server, 1).await;
    assert_eq!(verification.to, email);
    let body = json!({"token": verification.token().unwrap()});
    let verified =
        http(Method::POST, &format!("{}/v1/auth/verify-email", server.url), &[JSON], body.to_string()).await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
}
