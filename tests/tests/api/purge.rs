//! Deleting an account (API.md, `DELETE /v1/users/me`): the user goes at once, and the `worker`
//! purges what it owned in the background, page by page, from the table's stream (its events
//! built here as Lambda delivers them) and from the sweep; a purge interrupted anywhere finishes.
//! On both stores; with DynamoDB Local, also faults in the middle of a purge and the number of
//! requests a delete makes, which does not grow with what the user owns.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use api_tests::TestApp;
use api_tests::records::Keys;
use api_tests::stream::{batch, stream_record};
use async_trait::async_trait;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::repo::keys::purges_pk;
use shared::repo::memory::MemoryStore;
use shared::repo::{Listing, PurgePage, PurgeRecord, PurgeRepo, RepoError, RepoResult, Repos};
use tokio::time::Instant;
use uuid::Uuid;
use worker::{Event, Worker};

#[derive(Clone, Copy)]
enum Backend {
    Memory,
    #[cfg(feature = "dynamodb")]
    DynamoDb,
}

/// The application over a store, and the store's every key.
struct Rig {
    app: TestApp,
    keys: Arc<dyn Keys + Send + Sync>,
    worker: Worker,
}

impl Backend {
    async fn rig(self) -> Rig {
        let (state, keys): (shared::AppState, Arc<dyn Keys + Send + Sync>) = match self {
            Self::Memory => {
                let store = Arc::new(MemoryStore::new());
                (shared::AppState::new(api_tests::config(), Repos::from_store(store.clone())), store)
            }
            #[cfg(feature = "dynamodb")]
            Self::DynamoDb => {
                let store = api_tests::dynamo::store().await;
                (shared::AppState::new(api_tests::config(), Repos::from_store(store.clone())), store)
            }
        };
        let app = TestApp::from_state(state.with_hasher(api_tests::fast_hasher()));
        let worker = Worker::new(&app.state, app.mailbox.clone());
        Rig { app, keys, worker }
    }
}

impl Rig {
    /// Every key of the store that names `user`: its partition and its purge record.
    async fn keys_of(&self, user: Uuid) -> Vec<(String, String)> {
        let id = user.to_string();
        let all = self.keys.all_keys().await;
        all.into_iter().filter(|(pk, sk)| pk.contains(&id) || sk.contains(&id)).collect()
    }

    /// A user with `n` items (through the API) and a session; returns it.
    async fn user_with_items(&self, n: usize) -> api_tests::Session {
        let user = self.app.user().await;
        for i in 0..n {
            self.app.item(&user.access, &format!("item {i}")).await;
        }
        user
    }
}

on_both_stores!(
    a_deleted_account_is_gone_at_once_and_its_records_are_purged_by_the_worker,
    a_run_out_of_time_hands_the_rest_to_the_next_run_through_the_stream,
    the_sweep_takes_over_purges_left_alone,
    a_stream_batch_is_retried_from_the_record_that_failed,
    a_superuser_deleting_a_user_purges_the_same_way,
);

fn purge_inserted(user: Uuid, sequence: u64) -> Value {
    stream_record("INSERT", &purges_pk(user), &format!("USER#{user}"), sequence)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

async fn a_deleted_account_is_gone_at_once_and_its_records_are_purged_by_the_worker(backend: Backend) {
    let rig = backend.rig().await;
    let app = &rig.app;
    let admin = app.superuser().await;
    let user = rig.user_with_items(3).await;
    let item = app.item(&user.access, "read by id").await;
    let item_path = format!("/v1/items/{}", item["id"].as_str().unwrap());

    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    // At once: no user, no token of theirs, the address free again.
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.get(&format!("/v1/users/{}", user.id), &admin.access).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.signup(&user.email, api_tests::PASSWORD).await.status, StatusCode::CREATED);
    let pending = rig.keys_of(user.id).await;
    assert!(pending.len() > 4, "the purge is the worker's: {pending:?}");
    // Before the worker has run, a superuser finds nothing of the deleted user's either.
    assert_eq!(app.get(&item_path, &admin.access).await.status, StatusCode::NOT_FOUND);
    let patch =
        app.json(axum::http::Method::PATCH, &item_path, Some(&admin.access), json!({"title": "x"})).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&item_path, &admin.access).await.status, StatusCode::NOT_FOUND);
    let listed = app.get(&format!("/v1/items?owner_id={}", user.id), &admin.access).await;
    assert_eq!((listed.status, listed.json()["data"].clone()), (StatusCode::OK, json!([])));

    // The stream hands the worker the purge record it wrote.
    let answer = rig.worker.handle(batch(vec![purge_inserted(user.id, 1)]), soon()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(rig.keys_of(user.id).await, [], "every record of the user, and the purge record, gone");
    assert_eq!(app.get(&item_path, &admin.access).await.status, StatusCode::NOT_FOUND);
    // Delivered again (streams deliver at least once): nothing to do, nothing wrong.
    let again = rig.worker.handle(batch(vec![purge_inserted(user.id, 1)]), soon()).await.unwrap();
    assert_eq!(again, json!({"batchItemFailures": []}));
}

async fn a_run_out_of_time_hands_the_rest_to_the_next_run_through_the_stream(backend: Backend) {
    let rig = backend.rig().await;
    let app = &rig.app;
    let user = rig.user_with_items(130).await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let purges = app.state.repos.purges.as_ref();

    // A run whose time is up after its first page notes how far it got.
    let run = shared::purge::run(purges, app.clock.as_ref(), user.id, Instant::now()).await.unwrap();
    assert_eq!(run, shared::purge::Run::Continues { deleted: shared::purge::PAGE as u64 });
    let noted = purges.get_purge(user.id).await.unwrap().unwrap();
    assert_eq!(noted.deleted, shared::purge::PAGE as u64);
    assert!(!rig.keys_of(user.id).await.is_empty());

    // That note is a change of the purge record, which the stream hands to the next run.
    let modified = stream_record("MODIFY", &purges_pk(user.id), &format!("USER#{}", user.id), 2);
    let answer = rig.worker.handle(batch(vec![modified]), soon()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(rig.keys_of(user.id).await, []);
}

async fn the_sweep_takes_over_purges_left_alone(backend: Backend) {
    let rig = backend.rig().await;
    let app = &rig.app;
    let user = rig.user_with_items(2).await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let sweep = || serde_json::from_value::<Event>(json!({"sweep": {}})).unwrap();

    // A purge the stream may still be driving is left to it.
    let answer = rig.worker.handle(sweep(), soon()).await.unwrap();
    assert_eq!(
        answer,
        json!({"stale": 0, "done": 0, "deleted": 0, "mail_sent": 0, "mail_given_up": 0, "mail_retry_later": 0})
    );
    assert!(!rig.keys_of(user.id).await.is_empty());

    // Left alone for longer than the stream's runs ever are: the sweep runs it.
    app.clock.advance(chrono::Duration::from_std(worker::SWEEP_IDLE).unwrap());
    let answer = rig.worker.handle(sweep(), soon()).await.unwrap();
    // Two items, the login's family and refresh token, and its remembered address.
    assert_eq!(
        answer,
        json!({"stale": 1, "done": 1, "deleted": 5, "mail_sent": 0, "mail_given_up": 0, "mail_retry_later": 0})
    );
    assert_eq!(rig.keys_of(user.id).await, []);

    // `admin purge` (and an operator's event) take every pending purge at once.
    let other = rig.user_with_items(1).await;
    assert_eq!(app.delete("/v1/users/me", &other.access).await.status, StatusCode::NO_CONTENT);
    let now: Event = serde_json::from_value(json!({"sweep": {"idle_seconds": 0}})).unwrap();
    assert_eq!(rig.worker.handle(now, soon()).await.unwrap()["done"], 1);
    assert_eq!(rig.keys_of(other.id).await, []);
    assert!(serde_json::from_value::<Event>(json!({"sweep": {"idle": 0}})).is_err(), "a misspelt option");
}

/// The purges of a store, failing for one user as a store that is down would.
#[derive(Debug)]
struct FailsFor {
    inner: Arc<dyn PurgeRepo>,
    user: Uuid,
}

#[async_trait]
impl PurgeRepo for FailsFor {
    async fn purge_page(&self, user: Uuid, limit: usize) -> RepoResult<PurgePage> {
        if user == self.user {
            return Err(RepoError::Unavailable("injected".into()));
        }
        self.inner.purge_page(user, limit).await
    }
    async fn note_purge_progress(&self, user: Uuid, deleted: u64, now: DateTime<Utc>) -> RepoResult<()> {
        self.inner.note_purge_progress(user, deleted, now).await
    }
    async fn finish_purge(&self, user: Uuid) -> RepoResult<()> {
        self.inner.finish_purge(user).await
    }
    async fn get_purge(&self, user: Uuid) -> RepoResult<Option<PurgeRecord>> {
        self.inner.get_purge(user).await
    }
    async fn pending_purges(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<PurgeRecord>> {
        self.inner.pending_purges(limit, after).await
    }
}

async fn a_stream_batch_is_retried_from_the_record_that_failed(backend: Backend) {
    let rig = backend.rig().await;
    let app = &rig.app;
    let (a, b, c) =
        (rig.user_with_items(1).await, rig.user_with_items(1).await, rig.user_with_items(1).await);
    for user in [&a, &b, &c] {
        assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    }
    let failing = Worker {
        purges: Arc::new(FailsFor { inner: app.state.repos.purges.clone(), user: b.id }),
        ..rig.worker.clone()
    };
    let records = vec![
        purge_inserted(a.id, 10),
        // Not work: a purge record removed, and writes elsewhere (the filter lets none through,
        // and the handler ignores them too).
        stream_record("REMOVE", &purges_pk(a.id), &format!("USER#{}", a.id), 11),
        stream_record("INSERT", &format!("USER#{}", a.id), "ITEM#x", 12),
        stream_record("INSERT", "PURGES#1", "USER#not-a-user", 13),
        purge_inserted(b.id, 14),
        purge_inserted(c.id, 15),
    ];
    let answer = failing.handle(batch(records.clone()), soon()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": [{"itemIdentifier": "14"}]}), "retried from b");
    assert_eq!(rig.keys_of(a.id).await, [], "what came before it is done");
    assert!(!rig.keys_of(b.id).await.is_empty());
    assert!(!rig.keys_of(c.id).await.is_empty(), "what comes after it waits for the retry");

    // Lambda retries from the failed record.
    let answer = rig.worker.handle(batch(records[4..].to_vec()), soon()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!((rig.keys_of(b.id).await, rig.keys_of(c.id).await), (vec![], vec![]));

    // With no time left, each purge of the batch still gets a page deleted (every attempt makes
    // progress, and a large purge first in the batch never holds up those after it), and none is
    // failed: the batch's retries are not spent on healthy records.
    let (d, e) = (rig.user_with_items(150).await, rig.user_with_items(1).await);
    for user in [&d, &e] {
        assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    }
    let d_before = rig.keys_of(d.id).await.len();
    let late = batch(vec![purge_inserted(d.id, 20), purge_inserted(e.id, 21)]);
    let answer = rig.worker.handle(late, Instant::now()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let d_after = rig.keys_of(d.id).await.len();
    assert!(d_after < d_before && d_after > 1, "{d_before} -> {d_after}");
    let e_left = rig.keys_of(e.id).await;
    assert_eq!(e_left, [(purges_pk(e.id), format!("USER#{}", e.id))], "e's page ran too: {e_left:?}");
    let noted = app.state.repos.purges.get_purge(e.id).await.unwrap().unwrap();
    assert_eq!(noted.deleted, 4, "its progress noted, for the stream's next run");

    // The sweep runs past a purge that fails, and then fails itself (so the schedule sees it).
    let (f, g) = (rig.user_with_items(1).await, rig.user_with_items(1).await);
    let (first, second) = if f.id < g.id { (f, g) } else { (g, f) };
    for user in [&first, &second] {
        assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    }
    let sweeper = Worker {
        purges: Arc::new(FailsFor { inner: app.state.repos.purges.clone(), user: first.id }),
        ..rig.worker.clone()
    };
    let sweep = serde_json::from_value::<Event>(json!({"sweep": {"idle_seconds": 0}})).unwrap();
    assert!(sweeper.handle(sweep, soon()).await.is_err());
    assert!(!rig.keys_of(first.id).await.is_empty());
    assert_eq!(rig.keys_of(second.id).await, [], "the purge after the failing one ran");
}

async fn a_superuser_deleting_a_user_purges_the_same_way(backend: Backend) {
    let rig = backend.rig().await;
    let app = &rig.app;
    let admin = app.superuser().await;
    let user = rig.user_with_items(4).await;
    let path = format!("/v1/users/{}", user.id);
    assert_eq!(app.delete(&path, &admin.access).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::UNAUTHORIZED);
    let purge = app.state.repos.purges.get_purge(user.id).await.unwrap().unwrap();
    assert_eq!((purge.user_id, purge.deleted), (user.id, 0));
    let answer = rig.worker.handle(batch(vec![purge_inserted(user.id, 1)]), soon()).await.unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    assert_eq!(rig.keys_of(user.id).await, []);
    let listed = app.get(&format!("/v1/items?owner_id={}", user.id), &admin.access).await;
    assert_eq!(listed.json()["data"], json!([]));
}

#[test]
fn a_run_keeps_a_margin_before_its_invocations_deadline() {
    let now_ms = |ahead: u64| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        u64::try_from(now.as_millis()).unwrap() + ahead
    };
    let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
    // The template's 60 s: the margin off, 48 s of work.
    let budget = left(worker::deadline_of(now_ms(60_000)));
    assert!(budget <= Duration::from_secs(48) && budget > Duration::from_secs(47), "{budget:?}");
    // A short timeout (an emulator's): half of it.
    let budget = left(worker::deadline_of(now_ms(3_000)));
    assert!(budget <= Duration::from_millis(1_500) && budget > Duration::from_millis(1_000), "{budget:?}");
    // Past: none.
    assert_eq!(left(worker::deadline_of(now_ms(0).saturating_sub(5_000))), Duration::ZERO);
}
