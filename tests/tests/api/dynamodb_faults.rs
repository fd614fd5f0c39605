//! Faults from DynamoDB, served by a fake endpoint on loopback that answers every request with
//! one error and counts the requests: throttling and 5xx become 503 (never 500), reads and
//! refused writes are retried, and a write that may have landed is never sent twice.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use api_tests::item_store::ItemStore;
use chrono::Utc;
use items::{Item, ItemChanges, ItemRecord};
use serde_json::json;
use shared::repo::dynamo::DynamoStore;
use shared::repo::{RepoError, ThrottleRepo, TokenRepo, UserRepo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use uuid::Uuid;

/// The bodies of the requests the fake received.
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.0.lock().unwrap().iter().map(|b| serde_json::from_str(b).unwrap()).collect()
    }
}

/// A fake DynamoDB that answers every request with `status` and the error `kind`.
async fn failing_dynamodb(status: u16, kind: &'static str) -> (DynamoStore, Requests) {
    failing_dynamodb_with(status, kind, "").await
}

/// As [`failing_dynamodb`], with `extra` JSON members in the error body.
async fn failing_dynamodb_with(status: u16, kind: &'static str, extra: &str) -> (DynamoStore, Requests) {
    let extra = extra.to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let requests = Requests::default();
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let (counter, extra) = (counter.clone(), extra.clone());
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length announces.
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buffer.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let text = String::from_utf8_lossy(&buffer).to_string();
                let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
                counter.0.lock().unwrap().push(body);
                let body = format!(
                    r#"{{"__type":"com.amazonaws.dynamodb.v20120810#{kind}","message":"injected"{extra}}}"#
                );
                let response = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: fake\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    let mut config = api_tests::config();
    config.dynamodb_endpoint = Some(format!("http://127.0.0.1:{port}"));
    let client = api_tests::dynamo::client(&config).await;
    (DynamoStore::new(client, "faulty"), requests)
}

fn change() -> ItemChanges {
    ItemChanges { title: Some("t".into()), ..Default::default() }
}

#[tokio::test]
async fn a_version_bump_that_may_have_landed_is_sent_once_and_is_a_503() {
    let (store, requests) = failing_dynamodb(500, "InternalServerError").await;
    let result = store.update_item(Uuid::now_v7(), Uuid::now_v7(), &change(), None, Utc::now()).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 1, "not retried: it may have been applied");
}

#[tokio::test]
async fn a_transaction_that_may_have_landed_is_resent_under_its_idempotency_token() {
    let (store, requests) = failing_dynamodb(500, "InternalServerError").await;
    let deleted = store.delete_item(Uuid::now_v7(), Uuid::now_v7(), Some(1)).await;
    assert!(matches!(deleted, Err(RepoError::Unavailable(_))), "{deleted:?}");
    assert_eq!(requests.count(), 3, "retried by the SDK");
    // (The reads before it, of whether the users index is filled, carry no token.)
    let tokens: Vec<_> = requests
        .bodies()
        .iter()
        .filter(|b| b.get("TransactItems").is_some())
        .map(|b| b["ClientRequestToken"].as_str().unwrap().to_owned())
        .collect();
    assert!(tokens.len() > 1, "{tokens:?}");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "under one idempotency token: {tokens:?}");
}

#[tokio::test]
async fn a_transaction_in_progress_is_retried_under_the_same_idempotency_token() {
    let (store, requests) = failing_dynamodb(400, "TransactionInProgressException").await;
    let now = Utc::now();
    let user = shared::repo::UserRecord {
        id: Uuid::now_v7(),
        email: shared::domain::Email::parse("in-progress@example.com").unwrap(),
        full_name: None,
        password_hash: "hash".into(),
        is_active: true,
        is_superuser: false,
        credential_version: 0,
        email_verified: true,
        created_at: now,
        updated_at: now,
    };
    let created = store.create_user(&user).await;
    assert!(matches!(created, Err(RepoError::Unavailable(_))), "{created:?}");
    assert!(requests.count() > 1, "retried: {}", requests.count());
    // (The reads before it, of whether the users index is filled, carry no token.)
    let tokens: Vec<_> = requests
        .bodies()
        .iter()
        .filter(|b| b.get("TransactItems").is_some())
        .map(|b| b["ClientRequestToken"].as_str().unwrap().to_owned())
        .collect();
    assert!(tokens.len() > 1, "{tokens:?}");
    assert!(tokens.iter().all(|t| *t == tokens[0]), "every attempt under one token: {tokens:?}");
}

#[tokio::test]
async fn a_throttled_write_is_retried_then_a_503() {
    let (store, requests) = failing_dynamodb(400, "ThrottlingException").await;
    let result = store.update_item(Uuid::now_v7(), Uuid::now_v7(), &change(), None, Utc::now()).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 3, "refused, so safe to retry: 3 attempts in all");
}

#[tokio::test]
async fn reads_are_retried_and_5xx_is_a_503() {
    let (store, requests) = failing_dynamodb(500, "InternalServerError").await;
    let result = store.get_user(Uuid::now_v7()).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 3);
}

#[tokio::test]
async fn a_transaction_cancelled_by_throttling_is_retried_then_a_503() {
    let reasons =
        r#","CancellationReasons":[{"Code":"None"},{"Code":"ThrottlingError","Message":"slow down"}]"#;
    let (store, requests) = failing_dynamodb_with(400, "TransactionCanceledException", reasons).await;
    let item = ItemRecord {
        id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        fields: Item { title: "t".into(), description: None },
        version: 1,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let result = store.create_item(&item).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 8, "nothing was written, so every attempt was safe");
}

#[tokio::test]
async fn an_unexpected_validation_error_is_a_500_not_a_503() {
    let (store, requests) = failing_dynamodb(400, "ValidationException").await;
    let result = store.get_user(Uuid::now_v7()).await;
    assert!(matches!(result, Err(RepoError::Internal(_))), "{result:?}");
    assert_eq!(requests.count(), 1);
}

#[tokio::test]
async fn a_login_attempt_that_may_have_been_counted_is_not_counted_again() {
    let (store, requests) = failing_dynamodb(500, "InternalServerError").await;
    let result = store.count_attempt("someone@example.com", Utc::now(), 900).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 1, "an ADD that may have landed is not resent");
}

#[tokio::test]
async fn a_conflict_with_a_transaction_is_retried_then_a_503_for_every_kind_of_write() {
    let (store, requests) = failing_dynamodb(400, "TransactionConflictException").await;
    let result = store.update_item(Uuid::now_v7(), Uuid::now_v7(), &change(), None, Utc::now()).await;
    assert!(matches!(result, Err(RepoError::Unavailable(_))), "{result:?}");
    assert_eq!(requests.count(), 3, "a conflict wrote nothing: safe to resend");
    let revoked = store.revoke_family(Uuid::now_v7(), Uuid::now_v7()).await;
    assert!(matches!(revoked, Err(RepoError::Unavailable(_))), "{revoked:?}");
    assert_eq!(requests.count(), 6);
}

#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn the_cold_start_warm_up_reads_dynamodb_local_and_never_fails_a_start() {
    // Against DynamoDB Local: one read, of the key ring, answered.
    let store = api_tests::dynamo::store().await;
    assert!(store.warm_up().await.is_some(), "the warm-up read was not answered");

    // Against a fake that answers 500 to everything, and against a port with nothing on it:
    // nothing, within its bound, and no panic.
    let (failing, requests) = failing_dynamodb(500, "InternalServerError").await;
    let started = std::time::Instant::now();
    assert!(failing.warm_up().await.is_none());
    assert!(requests.count() >= 1, "the warm-up never reached DynamoDB");
    let mut config = api_tests::dynamo::config();
    config.dynamodb_endpoint = Some("http://127.0.0.1:1".into());
    let nothing = DynamoStore::new(api_tests::dynamo::client(&config).await, "api");
    assert!(nothing.warm_up().await.is_none());
    let bound = shared::repo::dynamo::WARM_UP_TIMEOUT * 2 + std::time::Duration::from_secs(2);
    assert!(started.elapsed() < bound, "the warm-up took {:?}", started.elapsed());
}

/// A fake that cancels every transaction with these cancellation reasons, one per action.
async fn cancelling(reasons: &[&str]) -> DynamoStore {
    let reasons: Vec<String> = reasons.iter().map(|code| format!(r#"{{"Code":"{code}"}}"#)).collect();
    let extra = format!(r#","CancellationReasons":[{}]"#, reasons.join(","));
    failing_dynamodb_with(400, "TransactionCanceledException", &extra).await.0
}

#[tokio::test]
async fn a_cancelled_transaction_is_read_by_which_action_failed_not_by_position() {
    let now = Utc::now();
    let token = |user_id| shared::repo::RefreshRecord {
        token_hash: "h".into(),
        user_id,
        family_id: Uuid::now_v7(),
        issued_at: now,
        expires_at: now + chrono::Duration::days(1),
        used: false,
        credential_version: 0,
        family_ends_at: now + chrono::Duration::days(30),
    };
    let (old, new) = (token(Uuid::now_v7()), token(Uuid::now_v7()));
    // Rotation's actions: mark the old token used, check the user's credentials, extend the
    // family, put the new token.
    let used = cancelling(&["ConditionalCheckFailed", "None", "None", "None"]).await;
    assert_eq!(used.rotate_refresh(&old, &new, now).await, Ok(shared::repo::Rotation::AlreadyUsed));
    let changed = cancelling(&["None", "ConditionalCheckFailed", "None", "None"]).await;
    assert_eq!(changed.rotate_refresh(&old, &new, now).await, Ok(shared::repo::Rotation::FamilyGone));
    let gone = cancelling(&["None", "None", "ConditionalCheckFailed", "None"]).await;
    assert_eq!(gone.rotate_refresh(&old, &new, now).await, Ok(shared::repo::Rotation::FamilyGone));
    // A resource's creation: its owner exists, the record, its pointer.
    let item = ItemRecord {
        id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        fields: Item { title: "t".into(), description: None },
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let orphan = cancelling(&["ConditionalCheckFailed", "None", "None"]).await;
    assert_eq!(orphan.create_item(&item).await, Ok(false), "the owner is gone");
    let taken = cancelling(&["None", "ConditionalCheckFailed", "None"]).await;
    assert!(matches!(taken.create_item(&item).await, Err(RepoError::Internal(_))), "an id collision");
}

/// The health check's one read failing, whatever the fault (down, throttled, refused): a 503
/// with Retry-After in the contract's shape, naming nothing of the deployment.
#[tokio::test]
async fn the_health_check_is_a_503_that_says_nothing_whatever_the_fault() {
    for (status, kind) in [
        (500, "InternalServerError"),
        (400, "ProvisionedThroughputExceededException"),
        (400, "AccessDeniedException"),
        (400, "ResourceNotFoundException"),
    ] {
        let (store, requests) = failing_dynamodb(status, kind).await;
        let state =
            shared::AppState::new(api_tests::config(), shared::repo::Repos::from_store(Arc::new(store)));
        let health =
            api_tests::TestApp::from_state(state).call(axum::http::Method::GET, "/v1/health", None).await;
        assert_eq!(health.status, axum::http::StatusCode::SERVICE_UNAVAILABLE, "{kind}");
        assert_eq!(health.json(), json!({"detail": "Service temporarily unavailable"}), "{kind}");
        assert!(health.header("retry-after").is_some(), "{kind}");
        let body = String::from_utf8_lossy(&health.body).to_string();
        assert!(!body.contains("faulty") && !body.contains("injected"), "{kind}: {body}");
        assert_eq!(health.header("cache-control"), Some("no-store"), "{kind}");
        // One eventually consistent GetItem of the health key, not retried: a health check
        // reports a fault, and holds its function no longer than one attempt.
        let bodies = requests.bodies();
        assert_eq!(bodies.len(), 1, "{kind}: {bodies:?}");
        assert_eq!(
            (&bodies[0]["Key"]["PK"]["S"], &bodies[0]["Key"]["SK"]["S"]),
            (&json!("HEALTH"), &json!("HEALTH"))
        );
        assert!(bodies[0].get("ConsistentRead").is_none(), "{bodies:?}");
    }
}
