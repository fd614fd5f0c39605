//! Data migrations (`shared::migrate`, run by `admin migrate`): applied in id order, each once,
//! resumed from its checkpoint after a failure, never two runs at once; and the first
//! superuser (`admin create-superuser`, `FIRST_SUPERUSER_*` of the local server). Each test runs
//! on the in-memory store and on DynamoDB Local.

// Test bodies shared by several #[tokio::test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::http::StatusCode;
use chrono::Duration;
use shared::AppState;
use shared::admin::{AdminError, IfExists, Outcome, ensure_superuser};
use shared::deps::{Clock, TestClock};
use shared::migrate::{self, Baseline, MigrateError, Migration, Migrator, Progress, State};
use shared::repo::{MigrationRepo, Repos, UserRecord};
use uuid::Uuid;

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                let store = std::sync::Arc::new(shared::repo::memory::MemoryStore::new());
                super::$name(super::state(api_tests::config(), store.clone()), store).await;
            })*
        }
        #[cfg(feature = "dynamodb")]
        mod dynamodb {
            $(#[tokio::test]
            async fn $name() {
                let config = api_tests::dynamo::config();
                let store = api_tests::dynamo::store_with(&config).await;
                super::$name(super::state(config, store.clone()), store).await;
            })*
        }
    };
}

on_both_stores!(
    migrations_apply_in_order_once_each,
    a_failed_migration_resumes_from_its_checkpoint,
    a_second_run_waits_for_the_lease,
    a_migration_the_build_does_not_know_stops_the_run,
    a_run_that_lost_its_lease_records_nothing_more,
    the_baseline_changes_nothing_but_its_record,
    create_superuser_creates_refuses_an_account_or_promotes_it_with_a_new_password,
    emails_written_before_normalisation_are_normalised_and_keyed_anew,
);

/// A store of every repository and the migrations' ledger: what `Migrator::new` takes.
trait Store: shared::repo::AllRepos + MigrationRepo {}
impl<T: shared::repo::AllRepos + MigrationRepo> Store for T {}

/// The application over `store`; each test is given both.
fn state<S: Store>(config: shared::Config, store: Arc<S>) -> AppState {
    AppState::new(config, Repos::from_store(store)).with_hasher(api_tests::fast_hasher())
}

/// A migration that logs its runs and, if told to, fails once after its second step.
struct Steps {
    id: &'static str,
    log: Arc<Mutex<Vec<String>>>,
    fail_once_after: Option<u32>,
    failures: AtomicU32,
}

impl Steps {
    fn new(id: &'static str, log: &Arc<Mutex<Vec<String>>>) -> Arc<Self> {
        Arc::new(Self { id, log: log.clone(), fail_once_after: None, failures: AtomicU32::new(0) })
    }
}

#[async_trait]
impl Migration for Steps {
    fn id(&self) -> &'static str {
        self.id
    }

    fn description(&self) -> &'static str {
        "test steps"
    }

    async fn apply(&self, _repos: &Repos, progress: &mut Progress) -> Result<(), MigrateError> {
        let first: u32 = progress.checkpoint().map_or(1, |c| c.parse::<u32>().unwrap() + 1);
        for step in first..=4 {
            self.log.lock().unwrap().push(format!("{} step {step}", self.id));
            progress.save(step.to_string()).await?;
            if self.fail_once_after == Some(step) && self.failures.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(MigrateError::Failed { id: self.id.into(), reason: "throttled".into() });
            }
        }
        Ok(())
    }
}

fn migrator<S: Store>(state: &AppState, store: &Arc<S>, migrations: Vec<Arc<dyn Migration>>) -> Migrator {
    Migrator::new(store.clone(), state.clock.clone(), migrations)
}

async fn migrations_apply_in_order_once_each<S: Store>(state: AppState, store: Arc<S>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    // Given out of order: they run by id.
    let set: Vec<Arc<dyn Migration>> =
        vec![Steps::new("0003_c", &log), Arc::new(Baseline), Steps::new("0002_b", &log)];
    let m = migrator(&state, &store, set.clone());
    let states: Vec<_> = m.status().await.unwrap().into_iter().map(|s| (s.id, s.state)).collect();
    assert_eq!(
        states,
        [
            ("0001_baseline".to_owned(), State::Pending),
            ("0002_b".to_owned(), State::Pending),
            ("0003_c".to_owned(), State::Pending)
        ]
    );
    assert_eq!(m.run().await.unwrap(), ["0001_baseline", "0002_b", "0003_c"]);
    let runs = log.lock().unwrap().clone();
    assert_eq!(runs.first().map(String::as_str), Some("0002_b step 1"));
    assert_eq!(runs.last().map(String::as_str), Some("0003_c step 4"));
    assert_eq!(runs.len(), 8);
    assert!(m.status().await.unwrap().iter().all(|s| matches!(s.state, State::Applied { .. })));
    // Idempotent at the level of the run: nothing is applied twice.
    assert!(migrator(&state, &store, set).run().await.unwrap().is_empty());
    assert_eq!(log.lock().unwrap().len(), 8);
}

async fn a_failed_migration_resumes_from_its_checkpoint<S: Store>(state: AppState, store: Arc<S>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let flaky = Arc::new(Steps {
        id: "0002_flaky",
        log: log.clone(),
        fail_once_after: Some(2),
        failures: AtomicU32::new(0),
    });
    let set: Vec<Arc<dyn Migration>> = vec![Arc::new(Baseline), flaky, Steps::new("0003_after", &log)];
    let err = migrator(&state, &store, set.clone()).run().await.unwrap_err();
    assert!(matches!(err, MigrateError::Failed { ref id, .. } if id == "0002_flaky"), "{err}");
    let status = migrator(&state, &store, set.clone()).status().await.unwrap();
    assert!(matches!(status[0].state, State::Applied { .. }));
    assert_eq!(status[1].state, State::Unfinished { checkpoint: Some("2".into()) });
    assert_eq!(status[2].state, State::Pending, "nothing after a failure runs");
    // The next run resumes at step 3 and goes on to the rest.
    assert_eq!(migrator(&state, &store, set).run().await.unwrap(), ["0002_flaky", "0003_after"]);
    let runs: Vec<String> = log.lock().unwrap().iter().filter(|l| l.starts_with("0002")).cloned().collect();
    assert_eq!(runs, ["0002_flaky step 1", "0002_flaky step 2", "0002_flaky step 3", "0002_flaky step 4"]);
}

async fn a_second_run_waits_for_the_lease<S: Store>(state: AppState, store: Arc<S>) {
    let clock = Arc::new(TestClock::default());
    let state = state.with_clock(clock.clone());
    let other = Uuid::new_v4();
    let now = clock.now();
    assert!(
        store
            .acquire_migration_lease(other, now, now + Duration::seconds(migrate::LEASE_SECS))
            .await
            .unwrap()
    );
    let m = migrator(&state, &store, vec![Arc::new(Baseline)]);
    assert!(matches!(m.run().await, Err(MigrateError::Busy)));
    assert_eq!(m.status().await.unwrap()[0].state, State::Pending, "nothing ran");
    // A holder that died lets its lease run out; then the run goes ahead and gives it back.
    clock.advance(Duration::seconds(migrate::LEASE_SECS + 1));
    assert_eq!(m.run().await.unwrap(), ["0001_baseline"]);
    let later = clock.now();
    assert!(store.acquire_migration_lease(other, later, later).await.unwrap(), "released");
}

/// A migration so slow that its lease runs out and another run takes it over mid-way.
struct Overtaken {
    clock: Arc<TestClock>,
    ledger: Arc<dyn MigrationRepo>,
}

#[async_trait]
impl Migration for Overtaken {
    fn id(&self) -> &'static str {
        "0002_slow"
    }

    fn description(&self) -> &'static str {
        "outlives its lease"
    }

    async fn apply(&self, _repos: &Repos, progress: &mut Progress) -> Result<(), MigrateError> {
        progress.save("1").await?;
        self.clock.advance(Duration::seconds(migrate::LEASE_SECS + 1));
        let now = self.clock.now();
        let other = Uuid::new_v4();
        assert!(self.ledger.acquire_migration_lease(other, now, now + Duration::seconds(60)).await.unwrap());
        progress.save("2").await
    }
}

async fn a_run_that_lost_its_lease_records_nothing_more<S: Store>(state: AppState, store: Arc<S>) {
    let clock = Arc::new(TestClock::default());
    let state = state.with_clock(clock.clone());
    let set: Vec<Arc<dyn Migration>> =
        vec![Arc::new(Baseline), Arc::new(Overtaken { clock: clock.clone(), ledger: store.clone() })];
    assert!(matches!(migrator(&state, &store, set.clone()).run().await, Err(MigrateError::Busy)));
    let status = migrator(&state, &store, set).status().await.unwrap();
    assert!(matches!(status[0].state, State::Applied { .. }));
    // The checkpoint it saved while it held the lease stands; the one after does not.
    assert_eq!(status[1].state, State::Unfinished { checkpoint: Some("1".into()) });
}

async fn a_migration_the_build_does_not_know_stops_the_run<S: Store>(state: AppState, store: Arc<S>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let newer: Vec<Arc<dyn Migration>> = vec![Arc::new(Baseline), Steps::new("0002_newer", &log)];
    migrator(&state, &store, newer).run().await.unwrap();
    // An older build, which knows only the baseline, refuses to run against this table.
    let older = || -> Vec<Arc<dyn Migration>> { vec![Arc::new(Baseline)] };
    let err = migrator(&state, &store, older()).run().await.unwrap_err();
    assert!(matches!(err, MigrateError::Unknown(ref id) if id == "0002_newer"), "{err}");
    let status = migrator(&state, &store, older()).status().await.unwrap();
    assert_eq!(status.len(), 2, "status still lists the unknown one");
}

async fn the_baseline_changes_nothing_but_its_record<S: Store>(state: AppState, store: Arc<S>) {
    let admin =
        ensure_superuser(&state, "base@example.com", Some(api_tests::PASSWORD), IfExists::Refuse).await;
    assert_eq!(admin.unwrap(), Outcome::Created);
    let before = state.repos.users.list_users(100, None).await.unwrap();
    assert_eq!(migrator(&state, &store, vec![Arc::new(Baseline)]).run().await.unwrap(), ["0001_baseline"]);
    assert_eq!(state.repos.users.list_users(100, None).await.unwrap(), before);
    let records = store.migrations().await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].id.as_str(), records[0].checkpoint.as_deref()), ("0001_baseline", None));
}

async fn create_superuser_creates_refuses_an_account_or_promotes_it_with_a_new_password<S: Store>(
    state: AppState,
    _store: Arc<S>,
) {
    let email = format!("root-{}@Example.com", Uuid::new_v4().simple());
    let created =
        ensure_superuser(&state, &email, Some(api_tests::PASSWORD), IfExists::Refuse).await.unwrap();
    assert_eq!(created, Outcome::Created);
    let user = state.repos.users.find_user_by_email(&email.to_lowercase()).await.unwrap().unwrap();
    assert!(user.is_superuser && user.is_active);
    assert!(state.hasher.verify(api_tests::PASSWORD.into(), Some(user.password_hash.clone())).await.unwrap());
    // Again, either way: a success that changes nothing, whatever the password given.
    for if_exists in [IfExists::Refuse, IfExists::PromoteExisting] {
        let again = ensure_superuser(&state, &email, Some("another password entirely"), if_exists).await;
        assert_eq!(again.unwrap(), Outcome::AlreadySuperuser);
        assert_eq!(state.repos.users.get_user(user.id).await.unwrap().unwrap(), user, "{if_exists:?}");
    }

    // Someone signed up with the address first, and holds a session.
    let app = api_tests::TestApp::from_state(state.clone());
    let squatter = app.user().await;
    let refused =
        ensure_superuser(&state, &squatter.email, Some("the operator's password"), IfExists::Refuse).await;
    assert!(matches!(refused, Err(AdminError::Exists)), "{refused:?}");
    let untouched = state.repos.users.get_user(squatter.id).await.unwrap().unwrap();
    assert!(!untouched.is_superuser);
    assert_eq!(app.get("/v1/users/me", &squatter.access).await.status, StatusCode::OK, "nothing changed");
    // Deactivated, or not: promoting needs the new password, and ends every session.
    let deactivate = shared::repo::UserChanges { is_active: Some(false), ..Default::default() };
    state.repos.users.update_user(squatter.id, &deactivate, state.clock.now()).await.unwrap();
    let without = ensure_superuser(&state, &squatter.email, None, IfExists::PromoteExisting).await;
    assert!(matches!(without, Err(AdminError::PasswordNeeded)), "{without:?}");
    let promoted =
        ensure_superuser(&state, &squatter.email, Some("the operator's password"), IfExists::PromoteExisting)
            .await;
    assert_eq!(promoted.unwrap(), Outcome::Promoted);
    let after = state.repos.users.get_user(squatter.id).await.unwrap().unwrap();
    assert!(after.is_superuser && after.is_active);
    assert!(state.hasher.verify("the operator's password".into(), Some(after.password_hash)).await.unwrap());
    assert_eq!(app.get("/v1/users/me", &squatter.access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&squatter.refresh).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&squatter.email, api_tests::PASSWORD).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.login(&squatter.email, "the operator's password").await.status, StatusCode::OK);

    // Bad input is refused before anything is written; a new user needs a password.
    let bad = ensure_superuser(&state, "not an email", Some(api_tests::PASSWORD), IfExists::Refuse).await;
    assert!(matches!(bad, Err(AdminError::Email(_))));
    let short = ensure_superuser(&state, "short@example.com", Some("short"), IfExists::Refuse).await;
    assert!(matches!(short, Err(AdminError::Password)));
    let none = ensure_superuser(&state, "short@example.com", None, IfExists::Refuse).await;
    assert!(matches!(none, Err(AdminError::PasswordNeeded)));
    assert!(state.repos.users.find_user_by_email("short@example.com").await.unwrap().is_none());
}

/// A user as code before API.md v1.1 stored it: the address as typed (domain lower-cased), keyed
/// by its lower-cased form.
async fn legacy_user<S: Store>(state: &AppState, store: &Arc<S>, typed: &str) -> UserRecord {
    let now = state.clock.now();
    let user = UserRecord {
        id: state.ids.new_id(now),
        email: shared::domain::Email::from_stored(typed.to_owned(), typed.to_lowercase()),
        full_name: None,
        password_hash: state.hasher.hash(api_tests::PASSWORD.into()).await.unwrap(),
        is_active: true,
        is_superuser: false,
        credential_version: 0,
        email_verified: true,
        created_at: now,
        updated_at: now,
    };
    assert_eq!(store.create_user(&user).await.unwrap(), shared::repo::CreateUser::Created, "{typed}");
    user
}

async fn emails_written_before_normalisation_are_normalised_and_keyed_anew<S: Store>(
    state: AppState,
    store: Arc<S>,
) {
    let unicode = legacy_user(&state, &store, "Info@b\u{fc}cher.example").await;
    let nfd = legacy_user(&state, &store, "Jose\u{301}@example.com").await;
    let ascii = legacy_user(&state, &store, "Bob@example.com").await;
    // Two accounts that are, normalised, one address: both are left as they are.
    let first = legacy_user(&state, &store, "ana\u{ef}s@example.org").await;
    let second = legacy_user(&state, &store, "anai\u{308}s@example.org").await;
    let app = api_tests::TestApp::from_state(state.clone());
    assert_eq!(
        app.login("info@xn--bcher-kva.example", api_tests::PASSWORD).await.status,
        StatusCode::BAD_REQUEST
    );

    // Between the deploy and the migration nobody can take an address an account of before
    // holds, in any spelling: neither by signing up nor by moving to it.
    for spelling in ["info@xn--bcher-kva.example", "INFO@B\u{fc}cher.example", "jos\u{e9}@example.com"] {
        assert_eq!(
            app.signup(spelling, api_tests::PASSWORD).await.status,
            StatusCode::CONFLICT,
            "{spelling}"
        );
    }
    let mover = app.user().await;
    let body =
        serde_json::json!({"email": "info@xn--bcher-kva.example", "current_password": api_tests::PASSWORD});
    let moved = app.json(axum::http::Method::PATCH, "/v1/users/me", Some(&mover.access), body).await;
    assert_eq!(moved.status, StatusCode::CONFLICT, "{}", moved.text());

    // Two accounts that are one address: the migration brings over the rest, names the one it
    // cannot, and is not recorded as applied until an operator settles it.
    let stuck = migrator(&state, &store, migrate::all()).run().await.unwrap_err();
    let named = matches!(&stuck, MigrateError::Failed { id, reason }
        if id == "0002_normal_emails" && reason.contains(&second.id.to_string()));
    assert!(named, "{stuck}");
    assert_eq!(store.get_user(second.id).await.unwrap().unwrap().email, second.email, "left as it was");
    assert!(store.delete_user(second.id, chrono::Utc::now()).await.unwrap(), "the operator settles it");
    let applied = migrator(&state, &store, migrate::all()).run().await.unwrap();
    assert_eq!(applied, ["0002_normal_emails", "0003_users_index", "0004_users_index_of_before"]);
    let read = |id| store.get_user(id);
    assert_eq!(read(unicode.id).await.unwrap().unwrap().email.as_str(), "info@b\u{fc}cher.example");
    assert_eq!(read(nfd.id).await.unwrap().unwrap().email.as_str(), "jos\u{e9}@example.com");
    assert_eq!(read(ascii.id).await.unwrap().unwrap().email.as_str(), "bob@example.com");
    assert_eq!(read(first.id).await.unwrap().unwrap().email.as_str(), "ana\u{ef}s@example.org");
    for (spelling, who) in [
        ("INFO@xn--bcher-kva.example", unicode.id),
        ("info@B\u{fc}cher.example", unicode.id),
        ("jos\u{e9}@example.com", nfd.id),
        ("jose\u{301}@example.com", nfd.id),
        ("BOB@example.com", ascii.id),
    ] {
        let key = shared::domain::Email::parse(spelling).unwrap().key();
        let found = store.find_user_by_email(&key).await.unwrap().map(|u| u.id);
        assert_eq!(found, Some(who), "{spelling}");
        assert_eq!(app.login(spelling, api_tests::PASSWORD).await.status, StatusCode::OK, "{spelling}");
    }
    // The old keys are released: nothing is found under them any more.
    for old in ["info@b\u{fc}cher.example", "jose\u{301}@example.com"] {
        assert_eq!(store.find_user_by_email(old).await.unwrap(), None, "{old}");
    }
    assert_eq!(
        app.signup("info@xn--bcher-kva.example", api_tests::PASSWORD).await.status,
        StatusCode::CONFLICT
    );
    // Run again: nothing left to do.
    assert_eq!(migrator(&state, &store, migrate::all()).run().await.unwrap(), Vec::<String>::new());
}
