//! Refresh tokens and their families (one family per login), kept in their user's partition.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::RepoResult;

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
    /// The user's `credential_version` when the family's login happened: the family can be
    /// started, and rotated, only while the user still has it.
    pub credential_version: u64,
    /// When the family ends, however often it is rotated: its login plus the longest a session
    /// may last. No token of the family expires later.
    pub family_ends_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Rotated,
    /// The presented token was already exchanged (reuse, or a concurrent refresh that lost).
    AlreadyUsed,
    /// The family was revoked, expired, or its user deleted, or the user's credentials changed.
    FamilyGone,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewFamily {
    Created,
    /// The user is gone, inactive, or no longer has the credential version the login checked
    /// (a password change raced the login): nothing was recorded.
    CredentialsChanged,
}

#[async_trait]
pub trait TokenRepo: Send + Sync + std::fmt::Debug {
    /// Starts a family (one login) with its first refresh token, in one step with a check that
    /// the user is active and still has `first.credential_version`.
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<NewFamily>;
    /// The refresh token with this hash, recorded for this user.
    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>>;
    /// Marks `old` used and records `new` in one conditional step: of two concurrent rotations
    /// of one token, exactly one wins; a user whose credential version is no longer the
    /// family's rotates nothing.
    async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new: &RefreshRecord,
        now: DateTime<Utc>,
    ) -> RepoResult<Rotation>;
    /// Revokes every token of the family; true if the family was still there (false: it had
    /// been revoked, had expired, or never was).
    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<bool>;
    /// Revokes every token of every family of the user.
    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()>;
}
