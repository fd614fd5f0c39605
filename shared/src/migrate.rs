//! Data migrations: the counterpart of Alembic for a table whose *shape* lives in
//! `template.yaml`. Tables and indexes are never created by code in AWS; what changes over time
//! is the data in them (a new attribute to backfill, a key layout to move), and that is what a
//! migration does.
//!
//! Migrations run in id order. Each is idempotent (running it twice changes nothing the second
//! time) and resumable: it may save a checkpoint as it goes, and a run that stopped part-way
//! (a crash, a throttled table) resumes from there. Each applied one is recorded in the table
//! itself, and a lease keeps two runs from migrating at once. The first is a baseline that
//! changes nothing: it marks the layout this code was written for.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::deps::Clock;
use crate::domain::Email;
use crate::repo::{AllRepos, MigrationRecord, MigrationRepo, RepoError, Repos, UpdateUser, UserChanges};

/// How long a run holds the lease before another may take it over; renewed at each checkpoint
/// and each migration, so only a run that died lets it lapse.
pub const LEASE_SECS: i64 = 15 * 60;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(
        "another migration run holds the lease (or took it over from this one); try again when it has finished"
    )]
    Busy,
    #[error(
        "the table records migration {0:?}, which this build does not know: it was migrated by newer code"
    )]
    Unknown(String),
    #[error("migration {id} failed: {reason}")]
    Failed { id: String, reason: String },
    #[error(transparent)]
    Store(#[from] RepoError),
}

/// One data migration.
#[async_trait]
pub trait Migration: Send + Sync {
    /// Stable and sortable: `0001_baseline`, `0002_...`. Never renamed once released.
    fn id(&self) -> &'static str;
    fn description(&self) -> &'static str;
    /// Applies the migration, starting after `progress.checkpoint()` when a previous run saved
    /// one. Must be idempotent: it may run again over work already done.
    async fn apply(&self, repos: &Repos, progress: &mut Progress) -> Result<(), MigrateError>;
}

/// What a migration may record about how far it got.
#[derive(Debug)]
pub struct Progress {
    ledger: Arc<dyn MigrationRepo>,
    clock: Arc<dyn Clock>,
    holder: Uuid,
    record: MigrationRecord,
}

impl Progress {
    /// Where a previous, unfinished run stopped.
    pub fn checkpoint(&self) -> Option<&str> {
        self.record.checkpoint.as_deref()
    }

    /// The migration's clock (for the times it writes).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Records that everything up to `checkpoint` is done, and renews the lease.
    pub async fn save(&mut self, checkpoint: impl Into<String>) -> Result<(), MigrateError> {
        self.record.checkpoint = Some(checkpoint.into());
        save(self.ledger.as_ref(), self.clock.as_ref(), self.holder, &self.record).await
    }
}

/// The first migration: records the layout of `docs/table-design.md` as the starting point.
#[derive(Debug)]
pub struct Baseline;

#[async_trait]
impl Migration for Baseline {
    fn id(&self) -> &'static str {
        "0001_baseline"
    }

    fn description(&self) -> &'static str {
        "baseline: the single-table layout of docs/table-design.md; changes nothing"
    }

    async fn apply(&self, _repos: &Repos, _progress: &mut Progress) -> Result<(), MigrateError> {
        Ok(())
    }
}

/// Emails in their normal form (API.md v1.1): each user's address NFC and lower-cased, and its
/// uniqueness key (the email reservation's) with the domain in IDNA ASCII. Records written before
/// kept the address as typed and keyed it by its lower-cased form, so `bücher.example` and
/// `xn--bcher-kva.example`, or NFC and NFD spellings, could be two accounts, and such an account
/// would not be found by the key of its own address. Resumable by user id. An account it cannot
/// bring over (two accounts whose addresses turn out to be one, or a stored address that is no
/// address under the current rules) is left as it is, and the migration fails naming the
/// accounts by id, and is not recorded as applied, for an operator to settle (merging accounts,
/// or choosing which keeps the address, is no migration's to decide); a rerun resumes from the
/// first of them.
#[derive(Debug)]
pub struct NormalEmails;

#[async_trait]
impl Migration for NormalEmails {
    fn id(&self) -> &'static str {
        "0002_normal_emails"
    }

    fn description(&self) -> &'static str {
        "emails in their normal form: NFC and lower case, keyed with the domain in IDNA ASCII"
    }

    async fn apply(&self, repos: &Repos, progress: &mut Progress) -> Result<(), MigrateError> {
        let failed = |reason: String| MigrateError::Failed { id: self.id().to_owned(), reason };
        let mut after = match progress.checkpoint() {
            Some(checkpoint) => Some(checkpoint.parse::<Uuid>().map_err(|e| failed(e.to_string()))?),
            None => None,
        };
        let mut stuck: Vec<Uuid> = Vec::new();
        loop {
            let page = repos.users.list_users(100, after).await?;
            for user in &page.records {
                let Ok(normal) = Email::parse(user.email.as_str()) else {
                    tracing::warn!(user_id = %user.id, "a stored address that is no address now: left as it is");
                    stuck.push(user.id);
                    continue;
                };
                if normal == user.email {
                    continue;
                }
                let changes = UserChanges {
                    email: Some(normal),
                    if_email_key: Some(user.email.key()),
                    ..UserChanges::default()
                };
                match repos.users.update_user(user.id, &changes, progress.now()).await? {
                    UpdateUser::EmailTaken => {
                        tracing::warn!(
                            user_id = %user.id,
                            "its address is, normalised, another account's: both left as they are"
                        );
                        stuck.push(user.id);
                    }
                    // Done; or deleted, or changed by a request (which wrote the normal form).
                    UpdateUser::Updated(_) | UpdateUser::NotFound | UpdateUser::Changed => {}
                }
            }
            if let Some(last) = page.records.last() {
                after = Some(last.id);
                // Never past an account left behind: a rerun comes back to it.
                if stuck.is_empty() {
                    progress.save(last.id.to_string()).await?;
                }
            }
            if !page.more {
                break;
            }
        }
        if stuck.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = stuck.iter().map(Uuid::to_string).collect();
        Err(failed(format!(
            "{} account(s) left as they were, for an operator: users {} (their address, normalised, is \
             another account's, or is no address now); settle them (admin PATCH /v1/users/{{id}}, or \
             delete one) and run migrate again",
            ids.len(),
            ids.join(", ")
        )))
    }
}

mod users_index;
pub use users_index::{UsersIndex, UsersIndexOfBefore};

/// Every migration this build knows, in order.
pub fn all() -> Vec<Arc<dyn Migration>> {
    vec![Arc::new(Baseline), Arc::new(NormalEmails), Arc::new(UsersIndex), Arc::new(UsersIndexOfBefore)]
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Pending,
    /// Started and not finished: the next run resumes it.
    Unfinished {
        checkpoint: Option<String>,
    },
    Applied {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: String,
    pub description: String,
    pub state: State,
}

pub struct Migrator {
    /// What the migrations change.
    repos: Repos,
    /// Where they are recorded, and the lease: only `admin migrate` reads it, so it is no part of
    /// [`Repos`], and the functions do not link it.
    ledger: Arc<dyn MigrationRepo>,
    clock: Arc<dyn Clock>,
    migrations: Vec<Arc<dyn Migration>>,
}

impl std::fmt::Debug for Migrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.migrations.iter().map(|m| m.id()).collect();
        f.debug_struct("Migrator").field("migrations", &ids).finish_non_exhaustive()
    }
}

/// Renews the lease, then writes `record` on condition that the lease is still ours.
async fn save(
    ledger: &dyn MigrationRepo,
    clock: &dyn Clock,
    holder: Uuid,
    record: &MigrationRecord,
) -> Result<(), MigrateError> {
    renew(ledger, clock, holder).await?;
    if ledger.save_migration(record, holder, clock.now()).await? { Ok(()) } else { Err(MigrateError::Busy) }
}

async fn renew(ledger: &dyn MigrationRepo, clock: &dyn Clock, holder: Uuid) -> Result<(), MigrateError> {
    let now = clock.now();
    if ledger.acquire_migration_lease(holder, now, now + Duration::seconds(LEASE_SECS)).await? {
        Ok(())
    } else {
        Err(MigrateError::Busy)
    }
}

impl Migrator {
    /// A migrator over `migrations`, which it sorts by id: they change the records of `store`,
    /// and are recorded in it, under its lease (one store for both, or the lease would not keep
    /// two runs apart).
    pub fn new<S>(store: Arc<S>, clock: Arc<dyn Clock>, mut migrations: Vec<Arc<dyn Migration>>) -> Self
    where
        S: AllRepos + MigrationRepo,
    {
        migrations.sort_by_key(|m| m.id());
        Self { repos: Repos::from_store(store.clone()), ledger: store, clock, migrations }
    }

    /// Every known migration with its state, then any recorded one this build does not know.
    pub async fn status(&self) -> Result<Vec<Status>, MigrateError> {
        let records = self.ledger.migrations().await?;
        let mut out: Vec<Status> = self
            .migrations
            .iter()
            .map(|m| {
                let state = match records.iter().find(|r| r.id == m.id()) {
                    None => State::Pending,
                    Some(r) => match r.applied_at {
                        Some(at) => State::Applied { at },
                        None => State::Unfinished { checkpoint: r.checkpoint.clone() },
                    },
                };
                Status { id: m.id().to_owned(), description: m.description().to_owned(), state }
            })
            .collect();
        for r in records.iter().filter(|r| !self.migrations.iter().any(|m| m.id() == r.id)) {
            let state = match r.applied_at {
                Some(at) => State::Applied { at },
                None => State::Unfinished { checkpoint: r.checkpoint.clone() },
            };
            out.push(Status { id: r.id.clone(), description: r.description.clone(), state });
        }
        Ok(out)
    }

    /// Applies every pending or unfinished migration in order, and returns the ids it finished.
    /// Stops at the first failure, leaving it unfinished (with its checkpoint) for the next run.
    pub async fn run(&self) -> Result<Vec<String>, MigrateError> {
        let holder = Uuid::new_v4();
        renew(self.ledger.as_ref(), self.clock.as_ref(), holder).await?;
        let result = self.run_holding(holder).await;
        // Give the lease back whatever happened; if that fails too, it lapses by itself.
        let _ = self.ledger.release_migration_lease(holder).await;
        result
    }

    async fn run_holding(&self, holder: Uuid) -> Result<Vec<String>, MigrateError> {
        let records = self.ledger.migrations().await?;
        if let Some(unknown) = records.iter().find(|r| !self.migrations.iter().any(|m| m.id() == r.id)) {
            return Err(MigrateError::Unknown(unknown.id.clone()));
        }
        let mut finished = Vec::new();
        for migration in &self.migrations {
            let record = records.iter().find(|r| r.id == migration.id());
            if record.is_some_and(|r| r.applied_at.is_some()) {
                continue;
            }
            let record = record.cloned().unwrap_or_else(|| MigrationRecord {
                id: migration.id().to_owned(),
                description: migration.description().to_owned(),
                started_at: self.clock.now(),
                checkpoint: None,
                applied_at: None,
            });
            save(self.ledger.as_ref(), self.clock.as_ref(), holder, &record).await?;
            let mut progress =
                Progress { ledger: self.ledger.clone(), clock: self.clock.clone(), holder, record };
            match migration.apply(&self.repos, &mut progress).await {
                Ok(()) => {}
                Err(e @ (MigrateError::Failed { .. } | MigrateError::Busy)) => return Err(e),
                Err(e) => {
                    return Err(MigrateError::Failed {
                        id: migration.id().to_owned(),
                        reason: e.to_string(),
                    });
                }
            }
            let mut record = progress.record;
            record.applied_at = Some(self.clock.now());
            save(self.ledger.as_ref(), self.clock.as_ref(), holder, &record).await?;
            finished.push(record.id);
        }
        Ok(finished)
    }
}
