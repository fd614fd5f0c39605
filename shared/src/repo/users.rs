//! Users: the account records, and the email reservation that keeps addresses unique.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Completion, Listing, OutboxMail, RepoResult};
use crate::domain::{Email, Patch};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: Email,
    pub full_name: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub is_superuser: bool,
    /// Which credentials the user has: 0 for a new user, one more at each password change
    /// (the stores bump it in the same write as the hash). Access tokens carry it and refresh
    /// families are bound to it, so a change ends every session at once.
    pub credential_version: u64,
    /// Whether the address has been proved (a verification link, or a password reset, which
    /// also proves it). Users written before verification existed count as verified.
    pub email_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The fields a user update may change; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct UserChanges {
    pub email: Option<Email>,
    pub full_name: Patch<Option<String>>,
    /// A new password's hash; setting it also bumps the user's `credential_version`.
    pub password_hash: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub email_verified: Option<bool>,
    /// Messages to send because of this change (a verification of a new address, a notice to
    /// the one of before), written in the same step.
    pub mail: Vec<OutboxMail>,
    /// Apply only while the user still has this credential version: the one a password was
    /// checked against for this change (else [`UpdateUser::Changed`]).
    pub if_credential_version: Option<u64>,
    /// Apply only while the user still holds this email (its key): the one it was found by.
    pub if_email_key: Option<String>,
    /// Apply only while the user is active (a password reset: a deactivation that lands while
    /// the new password is being hashed wins).
    pub if_active: bool,
}

impl UserChanges {
    /// Whether `user` is still what these changes were checked against.
    pub fn expected_of(&self, user: &UserRecord) -> bool {
        self.if_credential_version.is_none_or(|v| v == user.credential_version)
            && self.if_email_key.as_ref().is_none_or(|key| *key == user.email.key())
            && (!self.if_active || user.is_active)
    }
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
    /// The user no longer has the credential version or the email the changes required.
    Changed,
}

#[async_trait]
pub trait UserRepo: Send + Sync + std::fmt::Debug {
    /// Creates the user and reserves its email in one step; a taken email creates nothing.
    async fn create_user(&self, user: &UserRecord) -> RepoResult<CreateUser> {
        self.create_user_with(user, &[], None).await
    }
    /// As [`UserRepo::create_user`], with the messages the signup sends (its verification) and
    /// the request's idempotency [`Completion`] written in the same step. A completion whose
    /// lock has passed fails the whole step ([`super::lock_passed`]).
    async fn create_user_with(
        &self,
        user: &UserRecord,
        mail: &[OutboxMail],
        completion: Option<&Completion>,
    ) -> RepoResult<CreateUser>;
    async fn get_user(&self, id: Uuid) -> RepoResult<Option<UserRecord>>;
    async fn find_user_by_email(&self, email_key: &str) -> RepoResult<Option<UserRecord>>;
    /// Applies the changes; an email change moves the reservation in the same step.
    async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<UpdateUser>;
    /// Deletes the user and its email reservation, and records the purge of everything else it
    /// owns (every kind of `keys::OWNED`; `PurgeRepo`), in one step whose cost does not depend on
    /// what it owns. Returns false when there was no such user.
    async fn delete_user(&self, id: Uuid, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Users in creation order, after `after`.
    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>>;
    /// Puts a user written before the users index existed into it (the migration
    /// `0003_users_index`); a user that is gone is left so. A store whose listing needs no index
    /// has nothing to do.
    async fn index_user(&self, id: Uuid) -> RepoResult<()>;
    /// Whether the users index can be read (DynamoDB builds a new index after the stack update
    /// that adds it); always for a store without one.
    async fn users_index_active(&self) -> RepoResult<bool>;
    /// Takes every user out of the users index of before (`GSI1`, which copies every
    /// attribute), once the listing no longer reads it and no user is put there any more (the
    /// migration `0004_users_index_of_before`). Returns how many it took out.
    async fn empty_users_index_of_before(&self) -> RepoResult<u64>;
}
