//! The record of data migrations (`shared::migrate`) and the lease that serialises their runs.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;

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
