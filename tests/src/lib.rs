//! Test support shared by every cross-function test: [`TestApp`], every function's router on the
//! routes of `template.yaml` (as the local server mounts them), called in-process with
//! `oneshot`; [`dynamo`], which starts DynamoDB Local for the tests that need it; [`fixtures`],
//! what the sample events name; [`records`], the check that every record in a store is of a
//! kind the key schema declares.

pub mod dynamo;
pub mod faults;
pub mod fixtures;
pub mod gated;
pub mod item_store;
pub mod key_service;
pub mod keys;
pub mod mailbox;
pub mod process;
pub mod records;
pub mod ses;
pub mod stats;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use shared::auth::Argon2Hasher;
use shared::auth::jwt::Subject;
use shared::deps::TestClock;
use shared::domain::Email;
use shared::repo::memory::MemoryStore;
use shared::repo::{Repos, UserRecord};
use shared::web::address::context_with_source_ip;
use shared::{AppState, Config};
use tower::ServiceExt;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";
/// The source address of the in-process tests' requests, unless a test names another.
pub const SOURCE_IP: &str = "192.0.2.10";

/// The routes of the contract: (function, path in the template's syntax, methods), as the
/// table of routes in `docs/contract.md` lists them. Written there once, by hand, as the
/// independent check on `template.yaml` and the OpenAPI document: a route dropped from both (or
/// added to both without the contract) is noticed. Everything else derives its routes from those
/// two.
pub fn api_routes() -> Vec<(String, String, Vec<String>)> {
    let mut routes: Vec<(String, String, Vec<String>)> = Vec::new();
    for (method, path, function, _) in contract_routes() {
        match routes.iter_mut().find(|(_, p, _)| *p == path) {
            Some((f, _, methods)) => {
                assert_eq!(*f, function, "{path}: two functions in docs/contract.md");
                methods.push(method);
            }
            None => routes.push((function, path, vec![method])),
        }
    }
    routes
}

/// Whether a route is one of the docs function's pages (the document, Swagger UI), which are
/// not API operations, as FastAPI leaves `/docs` and `/openapi.json` out of its document; its
/// health check is one.
pub fn is_docs_page(function: &str, path: &str) -> bool {
    function == "docs" && !path.starts_with("/v1/")
}

/// The status each route and method of the contract answers on success: (method, path) → the
/// status that opens the "success" column of `docs/contract.md`'s table of routes.
pub fn contract_statuses() -> std::collections::BTreeMap<(String, String), u16> {
    contract_routes().into_iter().map(|(method, path, _, status)| ((method, path), status)).collect()
}

/// The rows of `docs/contract.md`'s table of routes: (method, path, function, success status).
fn contract_routes() -> Vec<(String, String, String, u16)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/contract.md");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let table =
        text.split("\n## Routes\n").nth(1).expect("a Routes section").split("\n## ").next().unwrap_or("");
    let mut rows = Vec::new();
    for row in table.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells.len() >= 7, "docs/contract.md: a row of the table of routes has not five cells: {row}");
        let (method, path, function, success) = (cells[1], cells[2].trim_matches('`'), cells[3], cells[5]);
        if !["GET", "POST", "PATCH", "PUT", "DELETE"].contains(&method) {
            continue;
        }
        let status = success
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("docs/contract.md: {method} {path}: no status opens {success:?}"));
        rows.push((method.to_owned(), path.to_owned(), function.to_owned(), status));
    }
    assert!(!rows.is_empty(), "no routes in the table of docs/contract.md");
    rows
}

/// A configuration for tests.
pub fn config() -> Config {
    Config::for_tests()
}

/// Argon2id at a tiny cost: in-process tests hash hundreds of passwords. The real parameters are
/// tested in `shared::auth::password` and used by the DynamoDB end-to-end tests.
pub fn fast_hasher() -> Arc<Argon2Hasher> {
    Arc::new(Argon2Hasher::with_params(256, 1, 1))
}

#[derive(Debug, Clone)]
pub struct TestApp {
    pub state: AppState,
    pub clock: Arc<TestClock>,
    /// Every message the worker has sent ([`TestApp::deliver_mail`]).
    pub mailbox: Arc<mailbox::Mailbox>,
    /// The whole API as the local server mounts it: each function's router on the routes of
    /// `template.yaml`.
    app: Router,
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `detail` of an error body.
    pub fn detail(&self) -> Value {
        self.json()["detail"].clone()
    }

    /// The `type` of each FastAPI-shaped validation error, with its `loc`.
    pub fn validation_errors(&self) -> Vec<(Value, String)> {
        assert_eq!(self.status, StatusCode::UNPROCESSABLE_ENTITY, "body: {}", self.text());
        self.detail()
            .as_array()
            .unwrap_or_else(|| panic!("detail is not a list: {}", self.text()))
            .iter()
            .map(|e| {
                assert!(e["msg"].is_string(), "every error has a msg: {e}");
                (e["loc"].clone(), e["type"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A logged-in user: the user as the API returned it, and its tokens.
#[derive(Debug, Clone)]
pub struct Session {
    pub id: Uuid,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// In-memory stores, a test clock and a fast hasher.
    pub fn memory() -> Self {
        Self::with_config(config())
    }

    pub fn with_config(config: Config) -> Self {
        let state =
            AppState::new(config, Repos::from_store(Arc::new(MemoryStore::new()))).with_hasher(fast_hasher());
        Self::from_state(state)
    }

    /// Builds the routers over `state`, replacing its clock with a [`TestClock`]; tokens are
    /// signed with the tests' key, as the local server signs with its own.
    pub fn from_state(state: AppState) -> Self {
        Self::signing(state, keys::test_issuing())
    }

    /// As [`TestApp::from_state`], signing as `issuing` says.
    pub fn signing(state: AppState, issuing: shared::auth::jwt::Issuing) -> Self {
        let clock = Arc::new(TestClock::default());
        let state = state.with_clock(clock.clone()).with_issuing(issuing);
        let app = catalog::app(state.clone(), &catalog::Cors::default()).expect("the template's routes");
        Self { app, state, clock, mailbox: Arc::default() }
    }

    pub async fn send(&self, mut request: Request<Body>) -> TestResponse {
        // As API Gateway (and the local server) would: the request comes from an address.
        if request.extensions().get::<shared::web::address::RequestContext>().is_none() {
            request.extensions_mut().insert(context_with_source_ip(SOURCE_IP));
        }
        let response = self.app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("read body").to_bytes();
        TestResponse { status: parts.status, headers: parts.headers, body }
    }

    fn builder(method: Method, path: &str, token: Option<&str>) -> axum::http::request::Builder {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        builder
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>) -> TestResponse {
        self.send(Self::builder(method, path, token).body(Body::empty()).expect("request")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::GET, path, Some(token)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> TestResponse {
        self.call(Method::DELETE, path, Some(token)).await
    }

    pub async fn json(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.raw(method, path, token, "application/json", body.to_string()).await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: impl Into<Body>,
    ) -> TestResponse {
        let request = Self::builder(method, path, token)
            .header(header::CONTENT_TYPE, content_type)
            .body(body.into())
            .expect("request");
        self.send(request).await
    }

    pub async fn form(&self, path: &str, pairs: &[(&str, &str)]) -> TestResponse {
        let body = serde_urlencoded::to_string(pairs).expect("form");
        self.raw(Method::POST, path, None, "application/x-www-form-urlencoded", body).await
    }

    pub async fn signup(&self, email: &str, password: &str) -> TestResponse {
        self.json(Method::POST, "/v1/users/signup", None, json!({"email": email, "password": password})).await
    }

    /// A password login from the source address `source_ip`.
    pub async fn login_from(&self, source_ip: &str, email: &str, password: &str) -> TestResponse {
        let pairs = [("grant_type", "password"), ("username", email), ("password", password)];
        let mut request = Self::builder(Method::POST, "/v1/auth/token", None)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(serde_urlencoded::to_string(pairs).expect("form")))
            .expect("request");
        request.extensions_mut().insert(context_with_source_ip(source_ip));
        self.send(request).await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.form(
            "/v1/auth/token",
            &[("grant_type", "password"), ("username", email), ("password", password)],
        )
        .await
    }

    /// An access token for the user as it is now (its current credentials), issued directly, as
    /// a login would, without the login's own reads and writes.
    pub async fn token_of(&self, user_id: Uuid) -> String {
        let user = self.state.repos.users.get_user(user_id).await.expect("read the user").expect("the user");
        let subject = Subject { user_id, credential_version: user.credential_version };
        self.state.jwt.issue(subject, self.state.clock.now()).await.expect("issue a token")
    }

    pub async fn refresh(&self, refresh_token: &str) -> TestResponse {
        self.form("/v1/auth/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
            .await
    }

    fn session_from(id: Uuid, email: &str, token: &TestResponse) -> Session {
        assert_eq!(token.status, StatusCode::OK, "login failed: {}", token.text());
        let body = token.json();
        Session {
            id,
            email: email.to_owned(),
            access: body["access_token"].as_str().expect("access_token").to_owned(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_owned(),
        }
    }

    /// Signs a new user up through the API and logs it in.
    pub async fn user(&self) -> Session {
        let email = format!("user-{}@example.com", Uuid::new_v4().simple());
        let created = self.signup(&email, PASSWORD).await;
        assert_eq!(created.status, StatusCode::CREATED, "signup failed: {}", created.text());
        let id = created.json()["id"].as_str().expect("id").parse().expect("uuid");
        Self::session_from(id, &email, &self.login(&email, PASSWORD).await)
    }

    /// Creates a superuser directly in the store (as the admin command will) and logs it in.
    pub async fn superuser(&self) -> Session {
        let email = format!("admin-{}@example.com", Uuid::new_v4().simple());
        let now = shared::deps::Clock::now(self.clock.as_ref());
        let hash = self.state.hasher.hash(PASSWORD.into()).await.expect("hash");
        let record = UserRecord {
            id: Uuid::now_v7(),
            email: Email::parse(&email).expect("email"),
            full_name: Some("Admin".into()),
            password_hash: hash,
            is_active: true,
            is_superuser: true,
            credential_version: 0,
            email_verified: true,
            created_at: now,
            updated_at: now,
        };
        self.state.repos.users.create_user(&record).await.expect("create superuser");
        Self::session_from(record.id, &email, &self.login(&email, PASSWORD).await)
    }

    /// Runs every pending purge to its end, as the worker's sweep does: what the stream's
    /// worker would have done by now.
    pub async fn purge_now(&self) -> shared::purge::Swept {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        shared::purge::sweep(
            self.state.repos.purges.as_ref(),
            self.clock.as_ref(),
            std::time::Duration::ZERO,
            deadline,
        )
        .await
        .expect("purge")
    }

    /// Sends every message in the outbox, as the stream's worker would have by now, into
    /// [`TestApp::mailbox`].
    pub async fn deliver_mail(&self) -> worker::outbox::Swept {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
        let worker = worker::Worker::new(&self.state, self.mailbox.clone());
        worker.outbox.sweep(std::time::Duration::ZERO, deadline).await.expect("outbox sweep")
    }

    /// Creates an item through the API and returns its JSON.
    pub async fn item(&self, token: &str, title: &str) -> Value {
        let created = self.json(Method::POST, "/v1/items", Some(token), json!({"title": title})).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        created.json()
    }
}

/// The store a test runs on; `on_both_stores!` runs each test on every one.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Memory,
    #[cfg(feature = "dynamodb")]
    DynamoDb,
}

impl Backend {
    /// A fresh store of this kind: in memory, or a new table in DynamoDB Local.
    pub async fn repos(self) -> Repos {
        match self {
            Self::Memory => Repos::from_store(Arc::new(MemoryStore::new())),
            #[cfg(feature = "dynamodb")]
            Self::DynamoDb => Repos::from_store(dynamo::store().await),
        }
    }

    /// The whole API with `config` over a fresh store of this kind, and `hasher`.
    pub async fn app_with(self, config: Config, hasher: Arc<dyn shared::auth::PasswordHasher>) -> TestApp {
        TestApp::from_state(AppState::new(config, self.repos().await).with_hasher(hasher))
    }

    /// The whole API with `config` over a fresh store of this kind, and the fast hasher.
    pub async fn app(self, config: Config) -> TestApp {
        self.app_with(config, fast_hasher()).await
    }
}
