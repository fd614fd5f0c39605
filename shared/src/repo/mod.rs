//! Repositories: narrow async traits over the records the handlers need, with a DynamoDB
//! implementation ([`dynamo::DynamoStore`]) and an in-memory one ([`memory::MemoryStore`]).
//! The same contract tests (`tests/tests/repo_contract.rs`) run against both, so the in-memory
//! store cannot drift from DynamoDB. The table layout is in `shared/TABLE.md`.

pub mod dynamo;
pub mod memory;
pub mod table;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::validate::{Email, Patch};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoError {
    /// The store could not be reached, timed out, or throttled after retries: a 503.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a malformed record, a rejected request): a bug, a 500.
    #[error("store error: {0}")]
    Internal(String),
}

pub type RepoResult<T> = Result<T, RepoError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: Email,
    pub full_name: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields a user update may change; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub full_name: Patch<Option<String>>,
    pub password_hash: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecord {
    pub id: Uuid,
    pub owner_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub version: u64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ItemChanges {
    pub title: Option<String>,
    pub description: Patch<Option<String>>,
}

/// A refresh token as recorded server-side: only its SHA-256, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub user_id: Uuid,
    /// Every token descended from one login shares the family; reuse revokes the family.
    pub family_id: Uuid,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set once the token has been exchanged for a new one.
    pub used: bool,
}

/// Login attempts for one email within the current window that no successful login has cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptWindow {
    pub count: u32,
    pub started_at: DateTime<Utc>,
}

/// One page of a listing: up to `limit` records, and whether more follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    pub records: Vec<T>,
    pub more: bool,
}

/// Builds a page from up to `limit + 1` records read: the extra one only says that more follow.
pub(crate) fn listing<T>(mut records: Vec<T>, limit: usize) -> Listing<T> {
    let more = records.len() > limit;
    records.truncate(limit);
    Listing { records, more }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateUser {
    Created,
    EmailTaken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateUser {
    Updated(UserRecord),
    NotFound,
    EmailTaken,
}

/// The outcome of a write that is conditional on the record existing and, optionally, on its
/// version (`If-Match`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    Done(T),
    NotFound,
    VersionMismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The presented token was already exchanged (reuse, or a concurrent refresh that lost).
    AlreadyUsed,
    /// The family was revoked, expired, or its user deleted.
    FamilyGone,
}

#[async_trait]
pub trait UserRepo: Send + Sync + std::fmt::Debug {
    /// Creates the user and reserves its email in one step; a taken email creates nothing.
    async fn create_user(&self, user: &UserRecord) -> RepoResult<CreateUser>;
    async fn get_user(&self, id: Uuid) -> RepoResult<Option<UserRecord>>;
    async fn find_user_by_email(&self, email_key: &str) -> RepoResult<Option<UserRecord>>;
    /// Applies the changes; an email change moves the reservation in the same step.
    async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<UpdateUser>;
    /// Deletes the user with everything it owns: items, refresh tokens and their families, then
    /// (last, in one step) the user and its email reservation, so a failure part-way can be
    /// retried.
    /// Returns false when there was no such user.
    async fn delete_user(&self, id: Uuid) -> RepoResult<bool>;
    /// Users in creation order, after `after`.
    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>>;
}

#[async_trait]
pub trait ItemRepo: Send + Sync + std::fmt::Debug {
    /// Stores a new item; false (and nothing written) when its owner no longer exists.
    async fn create_item(&self, item: &ItemRecord) -> RepoResult<bool>;
    async fn get_item(&self, owner_id: Uuid, id: Uuid) -> RepoResult<Option<ItemRecord>>;
    /// The owner of an item, for superusers who address items by id alone.
    async fn find_item_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>>;
    /// Applies the changes and bumps `version` by exactly one, atomically; with
    /// `expected_version`, only if the item is still at that version.
    async fn update_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        changes: &ItemChanges,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<ItemRecord>>;
    async fn delete_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>>;
    /// The owner's items, newest first, older than `before`.
    async fn list_items(
        &self,
        owner_id: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<ItemRecord>>;
}

#[async_trait]
pub trait TokenRepo: Send + Sync + std::fmt::Debug {
    /// Starts a family (one login) with its first refresh token.
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<()>;
    /// The refresh token with this hash, recorded for this user.
    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>>;
    /// Marks `old` used and records `new` in one conditional step: of two concurrent rotations
    /// of one token, exactly one wins.
    async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new: &RefreshRecord,
        now: DateTime<Utc>,
    ) -> RepoResult<Rotation>;
    /// Revokes every token of the family.
    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<()>;
    /// Revokes every token of every family of the user.
    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()>;
}

/// The login throttle. An attempt is counted *before* its password is checked, atomically, so
/// concurrent guesses cannot all slip in under the limit; a successful login clears the count.
#[async_trait]
pub trait ThrottleRepo: Send + Sync + std::fmt::Debug {
    /// Counts one attempt, in the window open at `now` or in a new one, and returns the window.
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow>;
    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()>;
}

/// A data migration as recorded in the store: started, perhaps part-way (its checkpoint), or
/// applied. See `shared::migrate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationRecord {
    pub id: String,
    pub description: String,
    pub started_at: DateTime<Utc>,
    /// How far an unfinished run got, in the migration's own terms; a new run resumes there.
    pub checkpoint: Option<String>,
    pub applied_at: Option<DateTime<Utc>>,
}

/// The record of data migrations, and a lease so that two runs never migrate at once.
#[async_trait]
pub trait MigrationRepo: Send + Sync + std::fmt::Debug {
    /// Every recorded migration, in id order.
    async fn migrations(&self) -> RepoResult<Vec<MigrationRecord>>;
    /// Creates or replaces the record of one migration, only while `holder` has an unexpired
    /// lease at `now`, in one step: a run whose lease ran out (and was taken over) cannot
    /// overwrite what the new holder records. False, and nothing written, without the lease.
    async fn save_migration(
        &self,
        record: &MigrationRecord,
        holder: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Takes the migration lease for `holder` until `until`, unless another holder's lease is
    /// still running at `now`. Taking one's own lease again extends it.
    async fn acquire_migration_lease(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<bool>;
    /// Gives the lease back, if `holder` still has it.
    async fn release_migration_lease(&self, holder: Uuid) -> RepoResult<()>;
}

/// Every repository a handler may use. Each is its own `Arc<dyn ...>` so a test can replace one.
#[derive(Debug, Clone)]
pub struct Repos {
    pub users: Arc<dyn UserRepo>,
    pub items: Arc<dyn ItemRepo>,
    pub tokens: Arc<dyn TokenRepo>,
    pub throttle: Arc<dyn ThrottleRepo>,
    pub migrations: Arc<dyn MigrationRepo>,
}

impl Repos {
    /// Every repository backed by one store.
    pub fn from_store<S>(store: Arc<S>) -> Self
    where
        S: UserRepo + ItemRepo + TokenRepo + ThrottleRepo + MigrationRepo + 'static,
    {
        Self {
            users: store.clone(),
            items: store.clone(),
            tokens: store.clone(),
            throttle: store.clone(),
            migrations: store,
        }
    }
}
