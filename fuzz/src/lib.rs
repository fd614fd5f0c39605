//! What every fuzz target shares: the whole API in-process (the local server's dispatch over the
//! functions' routers, an in-memory store, a cheap hasher) with a user, an item and a token, and
//! one call that fails the run on a 5xx: untrusted bytes must always get a 4xx, never a panic or
//! a 500.

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use shared::admin::{IfExists, Outcome, ensure_superuser};
use shared::auth::Argon2Hasher;
use shared::auth::jwt::Issuing;
use shared::auth::keys::SigningKey;
use shared::auth::signer::KeySource;
use shared::{AppState, Config};
use tower::ServiceExt;

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub app: axum::Router,
    pub state: AppState,
    pub token: String,
    pub item_path: String,
    pub user_path: String,
    pub user_id: String,
    /// (method, concrete path) of every operation of the document that reads a JSON body, its
    /// path parameters filled with the fixture's user or a record of the fixture's own.
    pub json_endpoints: Vec<(String, String)>,
}

pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let config = Config::for_tests();
        // The tests' fixed signing key, held as the local server holds its own.
        let pem = include_str!("../../shared/src/auth/testdata/test_signing_key.pem");
        let key = Arc::new(SigningKey::from_pem(pem).expect("the test key"));
        let issuing = Issuing::held(key, KeySource::Generated);
        let state = AppState::in_memory(config)
            .with_hasher(Arc::new(Argon2Hasher::with_params(8, 1, 1)))
            .with_issuing(issuing);
        let app = catalog::app(state.clone(), &catalog::Cors::default()).expect("routes");
        let fixture = runtime.block_on(async {
            let body = r#"{"email":"fuzz@example.com","password":"correct horse battery"}"#;
            let (status, user) = send(&app, json("POST", "/v1/users/signup", None, body)).await;
            assert_eq!(status, StatusCode::CREATED);
            // A superuser, so the superuser routes parse what the fuzzer sends them too.
            let promoted = ensure_superuser(
                &state,
                "fuzz@example.com",
                Some("correct horse battery"),
                IfExists::PromoteExisting,
            )
            .await;
            assert_eq!(promoted.expect("promote"), Outcome::Promoted);
            let form = "username=fuzz%40example.com&password=correct+horse+battery";
            let request = Request::post("/v1/auth/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form))
                .expect("request");
            let (_, token) = send(&app, request).await;
            let token = token["access_token"].as_str().expect("token").to_owned();
            let (_, item) = send(&app, json("POST", "/v1/items", Some(&token), r#"{"title":"fuzz"}"#)).await;
            let item_path = format!("/v1/items/{}", item["id"].as_str().expect("id"));
            let user_id = user["id"].as_str().expect("id").to_owned();
            let user_path = format!("/v1/users/{user_id}");
            let json_endpoints = json_endpoints(&app, &token, &user_id).await;
            (token, item_path, user_path, user_id, json_endpoints)
        });
        let (token, item_path, user_path, user_id, json_endpoints) = fixture;
        Fixture { runtime, app, state, token, item_path, user_path, user_id, json_endpoints }
    })
}

/// Every operation of the document with a JSON body, at a concrete path: `{user_id}` is the
/// fixture's user, and any other parameter a record made by its collection's own example.
async fn json_endpoints(app: &axum::Router, token: &str, user_id: &str) -> Vec<(String, String)> {
    let document = serde_json::to_value(catalog::openapi()).expect("the document");
    let paths = document["paths"].as_object().expect("paths");
    let mut endpoints = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("operations") {
            if operation["requestBody"]["content"].get("application/json").is_none() {
                continue;
            }
            let (mut concrete, mut template) = (Vec::new(), Vec::new());
            for segment in path.split('/') {
                if segment == "{user_id}" {
                    concrete.push(user_id.to_owned());
                } else if segment.starts_with('{') {
                    // A record of the collection this parameter names, made by its create example.
                    let collection = template.join("/");
                    let example = paths
                        .get(&collection)
                        .and_then(|c| c["post"]["requestBody"]["content"]["application/json"].get("example"))
                        .unwrap_or_else(|| {
                            panic!("{path}: no POST {collection} with an example makes its {segment}")
                        });
                    let at = concrete.join("/");
                    let (status, made) = send(app, json("POST", &at, Some(token), example.to_string())).await;
                    let id = made["id"].as_str().unwrap_or_else(|| panic!("POST {at}: {status} {made}"));
                    concrete.push(id.to_owned());
                } else {
                    concrete.push(segment.to_owned());
                }
                template.push(segment.to_owned());
            }
            endpoints.push((method.to_uppercase(), concrete.join("/")));
        }
    }
    endpoints
}

pub fn json(method: &str, path: &str, token: Option<&str>, body: impl Into<Body>) -> Request<Body> {
    let mut request = Request::builder().method(method).uri(path).header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(body.into()).expect("request")
}

async fn send(app: &axum::Router, request: Request<Body>) -> (StatusCode, serde_json::Value) {
    let response = app.clone().oneshot(request).await.unwrap_or_else(|e| match e {});
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

/// Sends `request` through the whole API; any 5xx fails the run.
pub fn call(request: Request<Body>) -> StatusCode {
    let fixture = fixture();
    let what = format!("{} {}", request.method(), request.uri());
    let (status, body) = fixture.runtime.block_on(send(&fixture.app, request));
    assert!(!status.is_server_error(), "{what}: {status} {body}");
    status
}
