//! Repositories: narrow async traits over the records the handlers need, each with a DynamoDB
//! implementation ([`dynamo::DynamoStore`]) and an in-memory one ([`memory::MemoryStore`]). The
//! two stores are laid out alike (their plumbing, then one file per entity) and key their records
//! alike ([`keys`]); the same contract tests (`tests/tests/*/repo_contract.rs`) run against both,
//! so the in-memory store cannot drift from DynamoDB. The table layout is
//! `docs/table-design.md`.
//!
//! An entity here is a trait and its records; user-owned CRUD resources (items, and whatever a
//! function adds) need no code of their own in the stores: they implement [`Resource`], and the
//! stores' one [`ResourceStore`] keeps every kind of them.

pub mod dynamo;
mod health;
mod idempotency;
pub mod key_ring;
pub mod keys;
mod mail;
pub mod memory;
mod migrations;
mod purge;
mod resources;
mod throttle;
mod tokens;
mod users;

use std::sync::Arc;

pub use health::{HEALTH_KEY, HealthRepo};
pub use idempotency::{
    Begin, Caller, Completion, IdempotencyKey, IdempotencyRecord, IdempotencyRepo, IdempotencyState,
    KeptAnswer, lock_passed,
};
pub use key_ring::KeyRingRepo;
pub use mail::{MailKind, MailRepo, MailToken, OutboxMail, TokenPurpose};
pub use migrations::{MigrationRecord, MigrationRepo};
pub use purge::{PurgePage, PurgeRecord, PurgeRepo};
pub use resources::{Record, Resource, ResourceRepo, ResourceStore};
pub use throttle::{AttemptWindow, ThrottleRepo};
pub use tokens::{NewFamily, RefreshRecord, Rotation, TokenRepo};
pub use users::{CreateUser, UpdateUser, UserChanges, UserRecord, UserRepo};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// The store could not be reached, timed out, or throttled after retries: a 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record that cannot be read as what its key says it is: a bug (or a hand edit), a 500.
    #[error("malformed record: {0}")]
    Corrupt(String),
    /// Anything else (a rejected request, a permission missing): a bug, a 500.
    #[error("store error: {0}")]
    Internal(String),
}

pub type RepoResult<T> = Result<T, RepoError>;

/// One page of a listing: up to `limit` records, and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub records: Vec<T>,
    pub more: bool,
}

impl<T> Listing<T> {
    /// A page from up to `limit + 1` records read: the extra one only says that more follow.
    pub fn of(mut records: Vec<T>, limit: usize) -> Self {
        let more = records.len() > limit;
        records.truncate(limit);
        Self { records, more }
    }

    /// The same page with each record converted.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Listing<U>, E> {
        let records = self.records.into_iter().map(f).collect::<Result<_, _>>()?;
        Ok(Listing { records, more: self.more })
    }
}

/// The outcome of a write that is conditional on the record existing and, optionally, on its
/// version (`If-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    Done(T),
    NotFound,
    VersionMismatch,
}

/// A store that is every repository a handler may use: what [`Repos::from_store`] takes, and
/// what the tests' own store bounds start from. A repository added to [`Repos`] is added here,
/// once.
pub trait AllRepos:
    UserRepo
    + ResourceStore
    + TokenRepo
    + ThrottleRepo
    + PurgeRepo
    + MailRepo
    + IdempotencyRepo
    + KeyRingRepo
    + HealthRepo
    + 'static
{
}

impl<S> AllRepos for S where
    S: UserRepo
        + ResourceStore
        + TokenRepo
        + ThrottleRepo
        + PurgeRepo
        + MailRepo
        + IdempotencyRepo
        + KeyRingRepo
        + HealthRepo
        + 'static
{
}

/// Every repository a handler may use. Each is its own `Arc<dyn ...>` so a test can replace one.
#[derive(Debug, Clone)]
pub struct Repos {
    pub users: Arc<dyn UserRepo>,
    /// Every user-owned resource; [`Repos::resources`] gives the typed view of one kind.
    pub resources: Arc<dyn ResourceStore>,
    pub tokens: Arc<dyn TokenRepo>,
    pub throttle: Arc<dyn ThrottleRepo>,
    pub purges: Arc<dyn PurgeRepo>,
    pub mail: Arc<dyn MailRepo>,
    pub idempotency: Arc<dyn IdempotencyRepo>,
    pub key_ring: Arc<dyn KeyRingRepo>,
    pub health: Arc<dyn HealthRepo>,
}

impl Repos {
    /// Every repository backed by one store.
    pub fn from_store<S: AllRepos>(store: Arc<S>) -> Self {
        Self {
            users: store.clone(),
            resources: store.clone(),
            tokens: store.clone(),
            throttle: store.clone(),
            purges: store.clone(),
            mail: store.clone(),
            idempotency: store.clone(),
            key_ring: store.clone(),
            health: store,
        }
    }

    /// The records of one resource: `repos.resources::<Item>().get(owner, id)`.
    pub fn resources<R: Resource>(&self) -> ResourceRepo<'_, R> {
        ResourceRepo::new(self.resources.as_ref())
    }
}
