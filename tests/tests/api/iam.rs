//! Least privilege: each function's IAM policy in `template.yaml` grants exactly the DynamoDB
//! actions its routes use — no fewer (it would fail in AWS with AccessDenied), no more.
//!
//! What a route uses is observed, not declared: every route of the function runs against
//! DynamoDB Local, success and failure paths, through a client whose interceptor records each
//! request as IAM authorizes it (a transaction is authorized per action inside it; a Query on
//! an index needs the index's ARN).

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use api_tests::{PASSWORD, TestApp};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use serde_norway::Value as Yaml;
use shared::AppState;
use shared::migrate::{self, Migrator};
use shared::repo::dynamo::DynamoStore;
use shared::repo::{MailRepo, Repos};

/// (IAM action, resource): `table` or `index/<name>`.
type Grants = BTreeSet<(String, String)>;

/// What the requests used: (action, resource), and the partition keys they touched in the
/// table, as the patterns of `dynamodb:LeadingKeys` (`USER#*`, or a whole fixed key).
#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Grants>>, Arc<Mutex<BTreeSet<String>>>, Arc<Mutex<Grants>>);

impl Recorder {
    fn record(&self, action: &str, resource: String) {
        self.0.lock().unwrap().insert((format!("dynamodb:{action}"), resource));
    }

    /// A partition key of the table that `action` reads or writes.
    fn key(&self, action: &str, pk: &Value) {
        let pk = pk["S"].as_str().unwrap_or_else(|| panic!("a partition key that is not a string: {pk}"));
        let pattern = match pk.find('#') {
            Some(at) => format!("{}*", &pk[..=at]),
            None => pk.to_owned(),
        };
        self.2.lock().unwrap().insert((format!("dynamodb:{action}"), pattern.clone()));
        self.1.lock().unwrap().insert(pattern);
    }

    /// (action, key pattern): which action touched which keys.
    fn pairs(&self) -> Grants {
        self.2.lock().unwrap().clone()
    }

    fn keys(&self) -> BTreeSet<String> {
        self.1.lock().unwrap().clone()
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "iam-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let operation = target.rsplit('.').next().unwrap_or_default();
        let body: Value = serde_json::from_slice(request.body().bytes().unwrap_or_default())?;
        match operation {
            // IAM authorizes each action inside a transaction on its own.
            "TransactWriteItems" => {
                for item in body["TransactItems"].as_array().into_iter().flatten() {
                    for (kind, action) in [
                        ("Put", "PutItem"),
                        ("Update", "UpdateItem"),
                        ("Delete", "DeleteItem"),
                        ("ConditionCheck", "ConditionCheckItem"),
                    ] {
                        if let Some(action_body) = item.get(kind) {
                            self.record(action, "table".into());
                            let key = if kind == "Put" { &action_body["Item"] } else { &action_body["Key"] };
                            self.key(action, &key["PK"]);
                        }
                    }
                }
            }
            "BatchWriteItem" => {
                self.record(operation, "table".into());
                for requests in body["RequestItems"].as_object().into_iter().flat_map(|m| m.values()) {
                    for request in requests.as_array().into_iter().flatten() {
                        match (request.get("DeleteRequest"), request.get("PutRequest")) {
                            (Some(delete), _) => self.key(operation, &delete["Key"]["PK"]),
                            (_, Some(put)) => self.key(operation, &put["Item"]["PK"]),
                            _ => panic!("a batch write of neither kind: {request}"),
                        }
                    }
                }
            }
            "BatchGetItem" => {
                self.record(operation, "table".into());
                for request in body["RequestItems"].as_object().into_iter().flat_map(|m| m.values()) {
                    for key in request["Keys"].as_array().into_iter().flatten() {
                        self.key(operation, &key["PK"]);
                    }
                }
            }
            "Query" | "Scan" => match body["IndexName"].as_str() {
                Some(index) => self.record(operation, format!("index/{index}")),
                None => {
                    self.record(operation, "table".into());
                    // Our queries name their partition `:pk` (a Scan names none: no function scans).
                    self.key(operation, &body["ExpressionAttributeValues"][":pk"]);
                }
            },
            "PutItem" => {
                self.record(operation, "table".into());
                self.key(operation, &body["Item"]["PK"]);
            }
            other => {
                self.record(other, "table".into());
                self.key(other, &body["Key"]["PK"]);
            }
        }
        Ok(())
    }
}

fn template() -> Yaml {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// The template's resource of the function built as `binary` (`ItemsFunction` for `items`).
fn resource_of(binary: &str) -> String {
    let t = template();
    let found = t["Resources"].as_mapping().unwrap().iter().find(|(_, r)| {
        r["Type"] == "AWS::Serverless::Function" && r["Metadata"]["BuildProperties"]["Binary"] == binary
    });
    found.unwrap_or_else(|| panic!("no function {binary} in template.yaml")).0.as_str().unwrap().to_owned()
}

/// The function's grants in the template: every (action, resource) its Allow statements give.
fn granted(function: &str) -> Grants {
    let t = template();
    let mut grants = Grants::new();
    let none = Vec::new();
    let policies = t["Resources"][function]["Properties"]["Policies"].as_sequence().unwrap_or(&none);
    // (A policy under a condition, `!If`, is not DynamoDB's: the worker's SES statement, which
    // `template.rs` checks; nor is auth's on its signing keys, checked there too.)
    for policy in policies.iter().filter(|p| !matches!(p, Yaml::Tagged(_))) {
        let statements = policy["Statement"].as_sequence().unwrap();
        for statement in
            statements.iter().filter(|s| !serde_norway::to_string(&s["Action"]).unwrap().contains("kms:"))
        {
            assert_eq!(statement["Effect"], "Allow");
            let resources = match &statement["Resource"] {
                Yaml::Sequence(list) => list.clone(),
                single => vec![single.clone()],
            };
            for resource in resources {
                let resource = match resource {
                    Yaml::Tagged(tagged) if tagged.value == "Table.Arn" => "table".to_owned(),
                    Yaml::Tagged(tagged) => {
                        let sub = tagged.value.as_str().unwrap().to_owned();
                        sub.strip_prefix("${Table.Arn}/")
                            .unwrap_or_else(|| panic!("{function}: {sub}"))
                            .to_owned()
                    }
                    other => panic!("{function}: resource {other:?} is not the table"),
                };
                for action in statement["Action"].as_sequence().unwrap() {
                    grants.insert((action.as_str().unwrap().to_owned(), resource.clone()));
                }
            }
        }
    }
    grants
}

/// The `dynamodb:LeadingKeys` patterns the function's statement on the table allows; every
/// statement on the table must have them.
fn granted_keys(function: &str) -> BTreeSet<String> {
    let t = template();
    let mut keys = BTreeSet::new();
    let none = Vec::new();
    let policies = t["Resources"][function]["Properties"]["Policies"].as_sequence().unwrap_or(&none);
    for statement in policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten() {
        if !matches!(&statement["Resource"], Yaml::Tagged(tagged) if tagged.value == "Table.Arn") {
            continue;
        }
        let patterns = statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{function}: a statement on the table without LeadingKeys"));
        keys.extend(patterns.iter().map(|p| p.as_str().unwrap().to_owned()));
    }
    keys
}

/// (action, key pattern) of every statement on the table: each action with each of the
/// `dynamodb:LeadingKeys` of its own statement.
fn granted_pairs(function: &str) -> Grants {
    let t = template();
    let mut pairs = Grants::new();
    let none = Vec::new();
    let policies = t["Resources"][function]["Properties"]["Policies"].as_sequence().unwrap_or(&none);
    for statement in policies.iter().filter_map(|p| p["Statement"].as_sequence()).flatten() {
        if !matches!(&statement["Resource"], Yaml::Tagged(tagged) if tagged.value == "Table.Arn") {
            continue;
        }
        let patterns =
            statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"].as_sequence().unwrap();
        for action in statement["Action"].as_sequence().unwrap() {
            for pattern in patterns {
                pairs.insert((action.as_str().unwrap().to_owned(), pattern.as_str().unwrap().to_owned()));
            }
        }
    }
    pairs
}

/// IAM grants each action on each resource of a statement; an action used only on the table
/// is also (harmlessly) granted on the index. Compare what is used with what the statement
/// must say: the actions, and which resources are named at all.
fn summary(grants: &Grants) -> (BTreeSet<String>, BTreeSet<String>) {
    (grants.iter().map(|(a, _)| a.clone()).collect(), grants.iter().map(|(_, r)| r.clone()).collect())
}

struct Rig {
    /// The function under test, over the recording client.
    app: TestApp,
    /// Its store, for what a cold start does before any request (the warm-up read).
    store: Arc<DynamoStore>,
    /// Fixtures (signups, logins of other functions) over the same table, not recorded.
    fixtures: TestApp,
    /// The fixtures' store, and the configuration.
    plain: Arc<DynamoStore>,
    config: shared::Config,
    recorder: Recorder,
}

async fn rig() -> Rig {
    let config = api_tests::dynamo::config();
    let plain = api_tests::dynamo::store_with(&config).await;
    // The operator's first key, as after the first deploy: no function writes the ring.
    api_tests::keys::put_first_key(&Repos::from_store(plain.clone()), chrono::Utc::now()).await;
    let recorder = Recorder::default();
    let client =
        Client::from_conf(plain.client().config().to_builder().interceptor(recorder.clone()).build());
    let recorded = Arc::new(DynamoStore::new(client, config.table_name.clone()));
    let state = |store: Repos| AppState::new(config.clone(), store).with_hasher(api_tests::fast_hasher());
    Rig {
        app: TestApp::from_state(state(Repos::from_store(recorded.clone()))),
        store: recorded,
        fixtures: TestApp::from_state(state(Repos::from_store(plain.clone()))),
        plain,
        config,
        recorder,
    }
}

impl Rig {
    /// `admin migrate` (not recorded), then the function after a cold start (a new store over
    /// the recording client, which reads the migrations' state anew).
    async fn after_migrate(&self) -> TestApp {
        let clock = self.app.clock.clone();
        Migrator::new(self.plain.clone(), clock, migrate::all()).run().await.unwrap();
        let store = Arc::new(DynamoStore::new(self.store.client().clone(), self.store.table()));
        let state = AppState::new(self.config.clone(), Repos::from_store(store));
        TestApp::from_state(state.with_hasher(api_tests::fast_hasher()))
    }

    /// A cold start of a function with a store: `shared::run_lambda` warms the connection up
    /// with one read.
    async fn cold_start(&self) {
        assert!(self.store.warm_up().await.is_some(), "the warm-up read answered");
    }
}

fn check(function: &str, rig: &Rig) {
    let used = rig.recorder.0.lock().unwrap().clone();
    assert_eq!(summary(&used), summary(&granted(function)), "{function}: used (left) vs granted (right)");
    assert_eq!(
        rig.recorder.keys(),
        granted_keys(function),
        "{function}: keys used (left) vs granted (right)"
    );
    // Each action on keys of its own statement: every (action, keys) used is granted by one
    // statement, or IAM would refuse it. (A statement grants each of its actions on each of its
    // keys; the worker's statements are split so finely that they grant nothing unused.)
    let (used, granted) = (rig.recorder.pairs(), granted_pairs(function));
    let refused: Vec<_> = used.difference(&granted).collect();
    assert!(refused.is_empty(), "{function}: used but granted by no statement: {refused:?}");
    if function == "WorkerFunction" {
        assert_eq!(used, granted, "{function}: (action, keys) used (left) vs granted (right)");
    }
    // The migrations' state is read and checked, never written; a purge record only put.
    let migrations: Vec<_> = granted.iter().filter(|(_, key)| key == "MIGRATIONS").collect();
    let read_only = ["dynamodb:GetItem", "dynamodb:ConditionCheckItem"];
    assert!(
        migrations.iter().all(|(action, _)| read_only.contains(&action.as_str())),
        "{function}: {migrations:?}"
    );
    if function == "UsersFunction" {
        let purges: Vec<_> = granted.iter().filter(|(_, key)| key == "PURGES#*").collect();
        assert_eq!(purges, [&("dynamodb:PutItem".to_owned(), "PURGES#*".to_owned())], "{function}");
    }
}

#[tokio::test]
async fn the_auth_function_is_granted_exactly_what_it_uses() {
    let rig = rig().await;
    rig.cold_start().await;
    let user = rig.fixtures.user().await;
    let app = &rig.app;
    // Failures: a new throttle window, then one counted into it; an unknown email.
    assert_eq!(app.login(&user.email, "wrong password!").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&user.email, "wrong password!").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login("nobody@example.com", PASSWORD).await.status, StatusCode::BAD_REQUEST);
    // Success clears the count and starts a family.
    let first = app.login(&user.email, PASSWORD).await.json();
    let old = first["refresh_token"].as_str().unwrap();
    let rotated = app.refresh(old).await;
    assert_eq!(rotated.status, StatusCode::OK);
    // Reuse of the old token revokes the family; revocation of a live one too.
    assert_eq!(app.refresh(old).await.status, StatusCode::BAD_REQUEST);
    let second = app.login(&user.email, PASSWORD).await.json();
    let revoke = app.form("/v1/auth/revoke", &[("token", second["refresh_token"].as_str().unwrap())]).await;
    assert_eq!(revoke.status, StatusCode::OK);
    // Account mail: a recovery is only written down; links are redeemed (the worker's part is
    // the fixtures' here).
    let asked =
        app.json(Method::POST, "/v1/auth/password-recovery", None, json!({"email": user.email})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    rig.fixtures.deliver_mail().await;
    let verify = rig.fixtures.mailbox.token(&user.email, worker::mail::MailKind::VerifyEmail);
    let verified = app.json(Method::POST, "/v1/auth/verify-email", None, json!({"token": verify})).await;
    assert_eq!(verified.status, StatusCode::NO_CONTENT);
    let reset = rig.fixtures.mailbox.token(&user.email, worker::mail::MailKind::ResetPassword);
    let body = json!({"token": reset, "new_password": "a brand new passphrase"});
    assert_eq!(
        app.json(Method::POST, "/v1/auth/reset-password", None, body).await.status,
        StatusCode::NO_CONTENT
    );
    check("AuthFunction", &rig);
}

/// A request with an `Idempotency-Key`.
fn keyed(
    method: Method,
    path: &str,
    token: Option<&str>,
    key: &str,
    body: Value,
) -> axum::http::Request<axum::body::Body> {
    let mut request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .header("idempotency-key", key);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    request.body(axum::body::Body::from(body.to_string())).unwrap()
}

#[tokio::test]
async fn the_users_function_is_granted_exactly_what_it_uses() {
    let rig = rig().await;
    rig.cold_start().await;
    let app = &rig.app;
    let admin = rig.fixtures.superuser().await;
    let created = app.signup("signup@example.com", PASSWORD).await;
    assert_eq!(created.status, StatusCode::CREATED);
    // An address whose key was another before v1.1: checked against its keys of before.
    assert_eq!(app.signup("idn@b\u{fc}cher.example", PASSWORD).await.status, StatusCode::CREATED);
    assert_eq!(app.signup("signup@example.com", PASSWORD).await.status, StatusCode::CONFLICT);
    // Keyed signups: the key (an anonymous caller's) taken, completed with the account, replayed;
    // a 409 kept on its own.
    let body = json!({"email": "keyed@example.com", "password": PASSWORD});
    for _ in 0..2 {
        let keyed_signup = keyed(Method::POST, "/v1/users/signup", None, "k-1", body.clone());
        assert_eq!(app.send(keyed_signup).await.status, StatusCode::CREATED);
    }
    let taken = json!({"email": "signup@example.com", "password": PASSWORD});
    let taken = app.send(keyed(Method::POST, "/v1/users/signup", None, "k-2", taken)).await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let me = rig.fixtures.user().await;
    rig.fixtures.item(&me.access, "owned").await;
    assert_eq!(app.get("/v1/users/me", &me.access).await.status, StatusCode::OK);
    let resend = app.call(Method::POST, "/v1/users/me/verification-email", Some(&me.access)).await;
    assert_eq!(resend.status, StatusCode::ACCEPTED);
    let patch = json!({"full_name": "Me", "email": "moved@example.com", "current_password": PASSWORD});
    assert_eq!(app.json(Method::PATCH, "/v1/users/me", Some(&me.access), patch).await.status, StatusCode::OK);
    let password = json!({"current_password": PASSWORD, "new_password": "a brand new passphrase"});
    let changed = app.json(Method::PATCH, "/v1/users/me/password", Some(&me.access), password).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    // The change ended the session of `me.access`: a token of the new credentials for what
    // follows (issued here, not by a login: the auth function's calls are not this one's).
    let me_access = app.token_of(me.id).await;
    // Superuser administration, the listing (an index) and the cascade included.
    assert_eq!(app.get("/v1/users?limit=1", &admin.access).await.status, StatusCode::OK);
    // Once `admin migrate` has filled the users index, the listing reads it, then the table.
    let migrated = rig.after_migrate().await;
    assert_eq!(migrated.get("/v1/users?limit=2", &admin.access).await.status, StatusCode::OK);
    let body = json!({"email": "byadmin@example.com", "password": PASSWORD});
    let by_admin = app.json(Method::POST, "/v1/users", Some(&admin.access), body).await;
    assert_eq!(by_admin.status, StatusCode::CREATED);
    // A keyed create; a keyed request refused (403) frees its key.
    let body = json!({"email": "keyedbyadmin@example.com", "password": PASSWORD});
    let keyed_create = keyed(Method::POST, "/v1/users", Some(&admin.access), "k-3", body.clone());
    assert_eq!(app.send(keyed_create).await.status, StatusCode::CREATED);
    let refused = app.send(keyed(Method::POST, "/v1/users", Some(&me_access), "k-4", body)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let other = rig.fixtures.user().await;
    rig.fixtures.item(&other.access, "cascaded").await;
    let path = format!("/v1/users/{}", other.id);
    assert_eq!(app.get(&path, &admin.access).await.status, StatusCode::OK);
    let off = app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
    assert_eq!(off.status, StatusCode::OK);
    assert_eq!(app.delete(&path, &admin.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete("/v1/users/me", &me_access).await.status, StatusCode::NO_CONTENT);
    check("UsersFunction", &rig);
    // Its query of GSI2 is limited to the listing's shards, which are all the index holds.
    let t = template();
    let statements =
        t["Resources"]["UsersFunction"]["Properties"]["Policies"][0]["Statement"].as_sequence().unwrap();
    let on_gsi2 = statements
        .iter()
        .find(|s| matches!(&s["Resource"], Yaml::Tagged(tagged) if tagged.value.as_str() == Some("${Table.Arn}/index/GSI2")))
        .unwrap();
    let keys = &on_gsi2["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert_eq!(keys.as_sequence().unwrap().len(), 1);
    assert_eq!(keys[0], "USERS#*");
    for shard in 0..shared::repo::keys::USERS_SHARDS {
        assert!(shared::repo::keys::users_shard(shard).starts_with("USERS#"));
    }
}

#[tokio::test]
async fn the_worker_function_is_granted_exactly_what_it_uses() {
    let rig = rig().await;
    rig.cold_start().await;
    let fixtures = &rig.fixtures;
    let (gone, swept) = (fixtures.user().await, fixtures.user().await);
    for user in [&gone, &swept] {
        fixtures.item(&user.access, "purged").await;
        assert_eq!(fixtures.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    }
    let worker = worker::Worker::new(&rig.app.state, rig.app.mailbox.clone());
    let deadline = || tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let keys = json!({"PK": {"S": shared::repo::keys::purges_pk(gone.id)}, "SK": {"S": format!("USER#{}", gone.id)}});
    let record = json!({"eventID": "1", "eventName": "INSERT", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": keys, "SequenceNumber": "1", "SizeBytes": 1}});
    let stream = serde_json::from_value(json!({"Records": [record]})).unwrap();
    assert_eq!(worker.handle(stream, deadline()).await.unwrap(), json!({"batchItemFailures": []}));
    // A run out of time notes its progress; the sweep takes over the rest.
    let run = shared::purge::run(
        rig.store.as_ref(),
        rig.app.clock.as_ref(),
        swept.id,
        deadline() - std::time::Duration::from_secs(60),
    )
    .await;
    assert!(matches!(run, Ok(shared::purge::Run::Continues { .. })), "{run:?}");
    // Mail: a verification (the signups' are in the outbox), a recovery by address, and the
    // notice of an email change; through the stream, then the sweep.
    let mailed = fixtures.user().await;
    let asked =
        fixtures.json(Method::POST, "/v1/auth/password-recovery", None, json!({"email": mailed.email})).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let moved = json!({"email": format!("moved-{}", mailed.email), "current_password": PASSWORD});
    assert_eq!(
        fixtures.json(Method::PATCH, "/v1/users/me", Some(&mailed.access), moved).await.status,
        StatusCode::OK
    );
    let pending = rig.plain.pending_mail(100, None).await.unwrap().records;
    let first = pending.first().unwrap();
    let keys = json!({"PK": {"S": shared::repo::keys::outbox_pk(first.id)}, "SK": {"S": shared::repo::keys::outbox_sk(first.id)}});
    let record = json!({"eventID": "2", "eventName": "INSERT", "awsRegion": "us-east-1",
        "dynamodb": {"Keys": keys, "SequenceNumber": "2", "SizeBytes": 1}});
    let stream = serde_json::from_value(json!({"Records": [record]})).unwrap();
    assert_eq!(worker.handle(stream, deadline()).await.unwrap(), json!({"batchItemFailures": []}));
    // (The fixtures' clock, which stamped the messages, is not the worker's.)
    rig.app.clock.advance(chrono::Duration::minutes(1));
    let sweep = serde_json::from_value(json!({"sweep": {"idle_seconds": 0}})).unwrap();
    let swept = worker.handle(sweep, deadline()).await.unwrap();
    assert_eq!(swept["done"], 1);
    // The recovery named an address the account left, and the address of before was never
    // proved (no notice): what goes is the new address's verification, to it alone.
    assert_eq!(swept["mail_sent"], 1, "{swept}");
    let moved_to = format!("moved-{}", mailed.email);
    let kinds: Vec<_> = rig.app.mailbox.all().iter().map(|m| (m.kind, m.to.clone())).collect();
    assert_eq!(kinds, [(worker::mail::MailKind::VerifyEmail, moved_to)]);
    check("WorkerFunction", &rig);
    // Every kind's owner pointers, not only the items' this test made: a resource added later
    // is purged with its user only if the worker may delete its pointers.
    let granted = granted_pairs("WorkerFunction");
    for kind in shared::repo::keys::OWNED.iter().filter(|k| k.pointer) {
        assert!(
            granted.contains(&("dynamodb:BatchWriteItem".to_owned(), format!("{}*", kind.prefix))),
            "{}: the worker deletes its pointers",
            kind.name
        );
    }
}

#[tokio::test]
async fn the_items_function_is_granted_exactly_what_it_uses() {
    let rig = rig().await;
    rig.cold_start().await;
    let app = &rig.app;
    let user = rig.fixtures.user().await;
    let admin = rig.fixtures.superuser().await;
    let item = app.item(&user.access, "first").await;
    let path = format!("/v1/items/{}", item["id"].as_str().unwrap());
    assert_eq!(app.get("/v1/items", &user.access).await.status, StatusCode::OK);
    assert_eq!(app.get(&path, &user.access).await.status, StatusCode::OK);
    // A superuser addresses another user's item by id alone.
    assert_eq!(app.get(&path, &admin.access).await.status, StatusCode::OK);
    let blind = app.json(Method::PATCH, &path, Some(&user.access), json!({"title": "blind"})).await;
    assert_eq!(blind.status, StatusCode::OK);
    // Keyed: a create and an update, each kept with its write; a 404 kept on its own; a 422
    // kept; a replay.
    for _ in 0..2 {
        let create = keyed(Method::POST, "/v1/items", Some(&user.access), "k-1", json!({"title": "keyed"}));
        assert_eq!(app.send(create).await.status, StatusCode::CREATED);
    }
    let update = keyed(Method::PATCH, &path, Some(&user.access), "k-2", json!({"title": "keyed"}));
    assert_eq!(app.send(update).await.status, StatusCode::OK);
    let missing = format!("/v1/items/{}", uuid::Uuid::new_v4());
    let absent = keyed(Method::PATCH, &missing, Some(&user.access), "k-3", json!({"title": "x"}));
    assert_eq!(app.send(absent).await.status, StatusCode::NOT_FOUND);
    let request = axum::http::Request::builder()
        .method(Method::DELETE)
        .uri(&path)
        .header("authorization", format!("Bearer {}", user.access))
        .header("if-match", "\"1\"")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.send(request).await.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(app.delete(&path, &user.access).await.status, StatusCode::NO_CONTENT);
    check("ItemsFunction", &rig);
}

/// Every function of the catalog, exercised by each of its own sample events (on fresh fixtures),
/// uses exactly what its policy grants: a function added to the template is checked here with no
/// scenario of its own. A function that may read the key ring warms up with it at cold start; the
/// docs function may not, and its cold start reads nothing (`shared::run_health_only_lambda`).
#[tokio::test]
async fn every_function_is_granted_exactly_what_its_sample_events_use() {
    let events = api_tests::fixtures::all_events();
    let routes = catalog::routes().unwrap();
    for function in catalog::FUNCTIONS {
        let mut used = Grants::new();
        let own =
            events.iter().filter(|e| routes.iter().any(|r| r.path == e.route && r.binary == function.name));
        let store = !granted(&resource_of(function.name)).is_empty();
        let warms_up = granted_keys(&resource_of(function.name)).contains("KEYS");
        let mut keys = BTreeSet::new();
        for event in own {
            let rig = rig().await;
            if warms_up {
                rig.cold_start().await;
            }
            let fixtures = api_tests::fixtures::fixtures(rig.fixtures.state.clone()).await;
            let text = api_tests::fixtures::fill(event, &fixtures.substitutions);
            let request = lambda_http::request::from_str(&text).unwrap();
            let request = request.map(|b| axum::body::Body::from(b.to_vec()));
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let again = axum::http::Request::from_parts(parts.clone(), axum::body::Body::from(body.clone()));
            let response =
                rig.app.send(axum::http::Request::from_parts(parts, axum::body::Body::from(body))).await;
            assert_eq!(response.status.as_u16(), event.status, "{}: {}", event.name, response.text());
            // A read once more after `admin migrate`: the users listing then reads its new index.
            if store && again.method() == Method::GET {
                let migrated = rig.after_migrate().await;
                let response = migrated.send(again).await;
                assert_eq!(
                    response.status.as_u16(),
                    event.status,
                    "{} after migrate: {}",
                    event.name,
                    response.text()
                );
            }
            used.extend(rig.recorder.0.lock().unwrap().iter().cloned());
            keys.extend(rig.recorder.keys());
        }
        let resource = resource_of(function.name);
        assert_eq!(
            summary(&used),
            summary(&granted(&resource)),
            "{resource}: used (left) vs granted (right)"
        );
        assert_eq!(keys, granted_keys(&resource), "{resource}: keys used (left) vs granted (right)");
    }
}

/// The docs function: its pages read nothing, its health check one key, and its cold start
/// (`shared::run_health_only_lambda`) nothing at all, so no warm-up read is recorded here.
#[tokio::test]
async fn the_docs_function_is_granted_exactly_what_it_uses() {
    let rig = rig().await;
    let app = &rig.app;
    for (path, status) in [
        ("/openapi.json", StatusCode::OK),
        ("/docs", StatusCode::OK),
        ("/docs/swagger-ui.css", StatusCode::OK),
        ("/v1/health", StatusCode::OK),
        ("/v2/nothing", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(app.call(Method::GET, path, None).await.status, status, "{path}");
    }
    check("DocsFunction", &rig);
}
