//! User-owned resources: records a user owns, addressed by their owner and id, versioned for
//! `If-Match`, listed newest first, found by id alone through an owner pointer (for superusers),
//! and deleted with their owner. Items are one; a function that adds a resource declares its
//! fields and change set, implements [`Resource`], and names its kind in `keys::OWNED`: the stores
//! need no code of their own for it.
//!
//! The stores see a record as its JSON object (serde), which is how the DynamoDB store writes its
//! attributes and the memory store keeps it. So a record's stored form is its serde form: the
//! envelope ([`Record`]: `id`, `owner_id`, `version`, `created_at`, `updated_at`) beside the
//! resource's own fields.

use std::marker::PhantomData;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::keys::{GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, OWNED, OwnedKind, PK, SK, TTL};
use super::{Completion, Conditional, Listing, RepoError, RepoResult};
use crate::deps::rfc3339;

/// The fields of one user-owned resource (an item's title and description).
pub trait Resource: Serialize + DeserializeOwned + Clone + std::fmt::Debug + Send + Sync + 'static {
    /// Where its records live. It must be one of `keys::OWNED`, or the stores refuse it: a kind
    /// the delete cascade does not know would outlive its owner.
    const KIND: OwnedKind;
    /// The name its listings are known by: cursors are bound to `<LISTING>:<owner>`.
    const LISTING: &'static str;
    /// A change set. Serialised to a JSON object, each field present in it is set, and each
    /// `null` one removed (`#[serde(skip_serializing_if = ...)]` leaves unchanged ones out).
    type Changes: Serialize + std::fmt::Debug + Send + Sync;
}

/// A resource's record: the envelope every resource has, around its own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<R> {
    pub id: Uuid,
    pub owner_id: Uuid,
    #[serde(flatten)]
    pub fields: R,
    /// 1 at creation, +1 per change; the `ETag` is this number in quotes.
    pub version: u64,
    #[serde(with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// The envelope's attributes: the store keeps them, a change set may not name them.
pub const ENVELOPE: [&str; 5] = ["id", "owner_id", "version", "created_at", "updated_at"];
/// Attributes of the table itself (keys, index keys, TTL, the record's kind): no resource's field
/// may be named so, or DynamoDB would read it as one of them (a `ttl` expires the record).
pub const RESERVED: [&str; 8] = [PK, SK, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, TTL, "type"];
pub const VERSION: &str = "version";
pub const UPDATED_AT: &str = "updated_at";

/// A record or a change set as the stores see it: a JSON object.
pub type Fields = Map<String, Value>;

/// Every resource, whatever its kind: what each store implements once.
#[async_trait]
pub trait ResourceStore: Send + Sync + std::fmt::Debug {
    /// Stores a new record; false (and nothing written) when its owner no longer exists. With a
    /// `completion`, the request's idempotency answer is kept in the same write; if its lock has
    /// passed, nothing is written ([`super::lock_passed`]).
    async fn create_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        record: &Fields,
        completion: Option<&Completion>,
    ) -> RepoResult<bool>;
    async fn get_resource(&self, kind: OwnedKind, owner: Uuid, id: Uuid) -> RepoResult<Option<Fields>>;
    /// The owner of a record, for superusers who address records by id alone.
    async fn find_resource_owner(&self, kind: OwnedKind, id: Uuid) -> RepoResult<Option<Uuid>>;
    /// Applies the changes (a `null` removes the field), sets `updated_at` and bumps `version` by
    /// exactly one, atomically; with `expected_version`, only if the record is still at it.
    async fn update_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<Fields>>;
    /// As [`ResourceStore::update_resource`], only while the record is at `expected_version`,
    /// with the request's idempotency `completion` in the same write. What an update with an
    /// idempotency key does: having read the record, its answer is known before it commits
    /// ([`changed`]), and is kept with it.
    #[allow(clippy::too_many_arguments)]
    async fn update_resource_at(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: u64,
        now: DateTime<Utc>,
        completion: Option<&Completion>,
    ) -> RepoResult<Conditional<()>>;
    async fn delete_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>>;
    /// The owner's records, newest first, older than `before`.
    async fn list_resources(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<Fields>>;
}

/// The records of one resource, typed: `repos.resources::<Item>()`.
pub struct ResourceRepo<'a, R> {
    store: &'a dyn ResourceStore,
    resource: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ResourceRepo<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceRepo").field("type", &std::any::type_name::<R>()).finish()
    }
}

impl<'a, R: Resource> ResourceRepo<'a, R> {
    pub fn new(store: &'a dyn ResourceStore) -> Self {
        Self { store, resource: PhantomData }
    }

    /// The resource's kind, if the cascade knows it and it is a resource's.
    fn kind() -> RepoResult<OwnedKind> {
        if !OWNED.contains(&R::KIND) {
            return Err(RepoError::Internal(format!(
                "resource kind {:?} is not in repo::keys::OWNED: its records would outlive their owner",
                R::KIND.name
            )));
        }
        if !R::KIND.resource {
            return Err(RepoError::Internal(format!("kind {:?} is not a resource's", R::KIND.name)));
        }
        Ok(R::KIND)
    }

    /// Refuses fields named as the envelope's or the table's own attributes.
    fn check_names(fields: &Fields) -> RepoResult<()> {
        match fields.keys().find(|k| ENVELOPE.contains(&k.as_str()) || RESERVED.contains(&k.as_str())) {
            Some(name) => Err(RepoError::Internal(format!(
                "{} has a field named {name:?}, which the store keeps for itself",
                R::KIND.name
            ))),
            None => Ok(()),
        }
    }

    /// Stores a new record; false (and nothing written) when its owner no longer exists. With a
    /// `completion`, the request's idempotency answer is kept in the same write.
    pub async fn create(&self, record: &Record<R>, completion: Option<&Completion>) -> RepoResult<bool> {
        let kind = Self::kind()?;
        Self::check_names(&to_fields(&record.fields)?)?;
        let fields = to_fields(record)?;
        self.store.create_resource(kind, record.owner_id, record.id, &fields, completion).await
    }

    /// The record `current` (as read at its version) after `changes` at `now`: what
    /// [`ResourceRepo::update_at`] writes, known before it does.
    pub fn after(current: &Record<R>, changes: &R::Changes, now: DateTime<Utc>) -> RepoResult<Record<R>> {
        let changes = to_fields(changes)?;
        Self::check_names(&changes)?;
        from_fields(changed(to_fields(current)?, &changes, now))
    }

    /// Applies `changes` only while the record is at `expected_version`, with the request's
    /// idempotency `completion` in the same write.
    pub async fn update_at(
        &self,
        owner: Uuid,
        id: Uuid,
        changes: &R::Changes,
        expected_version: u64,
        now: DateTime<Utc>,
        completion: Option<&Completion>,
    ) -> RepoResult<Conditional<()>> {
        let kind = Self::kind()?;
        let changes = to_fields(changes)?;
        Self::check_names(&changes)?;
        self.store.update_resource_at(kind, owner, id, &changes, expected_version, now, completion).await
    }

    pub async fn get(&self, owner: Uuid, id: Uuid) -> RepoResult<Option<Record<R>>> {
        self.store.get_resource(Self::kind()?, owner, id).await?.map(from_fields).transpose()
    }

    /// The owner of a record, for superusers who address records by id alone.
    pub async fn find_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>> {
        self.store.find_resource_owner(Self::kind()?, id).await
    }

    /// Applies the changes and bumps `version` by exactly one, atomically; with
    /// `expected_version`, only if the record is still at that version.
    pub async fn update(
        &self,
        owner: Uuid,
        id: Uuid,
        changes: &R::Changes,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<Record<R>>> {
        let kind = Self::kind()?;
        let changes = to_fields(changes)?;
        Self::check_names(&changes)?;
        Ok(match self.store.update_resource(kind, owner, id, &changes, expected_version, now).await? {
            Conditional::Done(fields) => Conditional::Done(from_fields(fields)?),
            Conditional::NotFound => Conditional::NotFound,
            Conditional::VersionMismatch => Conditional::VersionMismatch,
        })
    }

    pub async fn delete(
        &self,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        self.store.delete_resource(Self::kind()?, owner, id, expected_version).await
    }

    /// The owner's records, newest first, older than `before`.
    pub async fn list(
        &self,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<Record<R>>> {
        self.store.list_resources(Self::kind()?, owner, limit, before).await?.try_map(from_fields)
    }
}

/// A record's fields after `changes` at `now`, as every store applies them: each field present
/// set, each `null` one removed, `version` one more and `updated_at` now.
pub fn changed(mut fields: Fields, changes: &Fields, now: DateTime<Utc>) -> Fields {
    for (field, value) in changes {
        if value.is_null() {
            fields.remove(field);
        } else {
            fields.insert(field.clone(), value.clone());
        }
    }
    let version = fields.get(VERSION).and_then(Value::as_u64).unwrap_or(0);
    fields.insert(VERSION.to_owned(), Value::from(version + 1));
    fields.insert(UPDATED_AT.to_owned(), Value::from(crate::deps::format_timestamp(&now)));
    fields
}

fn to_fields<T: Serialize>(value: &T) -> RepoResult<Fields> {
    match serde_json::to_value(value) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(RepoError::Internal(format!("a record serialises to {other}, not an object"))),
        Err(e) => Err(RepoError::Internal(format!("serialising a record: {e}"))),
    }
}

/// A stored record as `Record<R>`. What does not fit is an error that names the field, never its
/// value (serde's own message would quote the value into the log).
fn from_fields<R: Resource>(fields: Fields) -> RepoResult<Record<R>> {
    serde_path_to_error::deserialize(Value::Object(fields)).map_err(|e| {
        RepoError::Internal(format!(
            "malformed {} record: `{}` is missing or not of the type the resource declares",
            R::KIND.name,
            e.path()
        ))
    })
}

#[cfg(test)]
mod tests;
