//! Purging a deleted user's records: a page of the user's partition at a time (every kind of
//! `keys::OWNED`, found by the partition alone: nothing here names a kind), each record with its
//! owner pointer; and the durable purge records in the `PURGES#<n>` partitions that say what is
//! left to do. The DynamoDB stream of writes to those partitions drives the `worker` function.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_n, get_s, get_time, get_uuid, key, n, s, time};
use super::retry::{Resend, applied, resend, sdk_error};
use crate::repo::keys::{
    OWNED, PK, POINTER_SK, PURGE_SHARDS, PURGE_TYPE, SK, USER_SK, purge_sk, purges_pk, purges_shard, user_pk,
};
use crate::repo::{Listing, PurgePage, PurgeRecord, PurgeRepo, RepoResult};

/// The purge record written with the deletion of `user` (in its transaction).
pub(super) fn purge_item(user: Uuid, now: DateTime<Utc>) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(purges_pk(user))),
        (SK.to_owned(), s(purge_sk(user))),
        ("type".to_owned(), s(PURGE_TYPE)),
        ("user_id".to_owned(), s(user.to_string())),
        ("requested_at".to_owned(), time(&now)),
        ("updated_at".to_owned(), time(&now)),
        ("deleted".to_owned(), n(0)),
    ])
}

fn purge_from_item(item: &Attrs) -> RepoResult<PurgeRecord> {
    Ok(PurgeRecord {
        user_id: get_uuid(item, "user_id")?,
        requested_at: get_time(item, "requested_at")?,
        updated_at: get_time(item, "updated_at")?,
        deleted: get_n(item, "deleted")?,
    })
}

#[async_trait]
impl PurgeRepo for DynamoStore {
    async fn purge_page(&self, user: Uuid, limit: usize) -> RepoResult<PurgePage> {
        // A purge runs only once its user is gone; then nothing can be added to the partition
        // (every write into it is conditional on the user), so each page only shrinks it.
        // The user's key alone: the worker has no use for a user's attributes (its hash).
        let exists = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user), USER_SK)))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?
            .item
            .is_some();
        if exists {
            return Ok(PurgePage::UserExists);
        }
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(user_pk(user)))
            .projection_expression("#pk, #sk")
            .consistent_read(true)
            .limit(i32::try_from(limit.max(1)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records = out.items.unwrap_or_default();
        if records.is_empty() {
            return Ok(PurgePage::Empty);
        }
        let mut keys = Vec::with_capacity(records.len() * 2);
        for record in &records {
            let sk = get_s(record, SK)?;
            if OWNED.iter().any(|kind| kind.pointer && sk.starts_with(kind.prefix)) {
                keys.push(key(sk.to_owned(), POINTER_SK));
            }
        }
        let count = records.len();
        keys.extend(records);
        // A record and its pointer may land in different batches: one deleted before the other
        // is a pointer to nothing (read as not found) or a record of a deleted user that no
        // pointer names, and the next page deletes what is left either way.
        self.delete_keys(keys).await?;
        Ok(PurgePage::Deleted(count))
    }

    async fn note_purge_progress(&self, user: Uuid, deleted: u64, now: DateTime<Utc>) -> RepoResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(purges_pk(user), &purge_sk(user))))
            .update_expression("ADD #deleted :deleted SET #updated_at = :now")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#deleted", "deleted")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":deleted", n(deleted))
            .expression_attribute_values(":now", time(&now))
            .customize()
            // Counted twice at worst: the count is for operators, and any write hands on the work.
            .config_override(resend::<UpdateItemError>(Resend::Idempotent))
            .send()
            .await;
        // Not applied: another run finished the purge meanwhile.
        applied("UpdateItem", result).map(drop)
    }

    async fn finish_purge(&self, user: Uuid) -> RepoResult<()> {
        self.delete_record(purges_pk(user), &purge_sk(user)).await
    }

    async fn get_purge(&self, user: Uuid) -> RepoResult<Option<PurgeRecord>> {
        self.get(purges_pk(user), &purge_sk(user)).await?.as_ref().map(purge_from_item).transpose()
    }

    async fn pending_purges(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<PurgeRecord>> {
        let shards = (0..PURGE_SHARDS).map(purges_shard);
        let (items, _) = self.query_shards(shards, "USER#", after.map(purge_sk), limit).await?;
        let mut records = items.iter().map(purge_from_item).collect::<RepoResult<Vec<_>>>()?;
        records.sort_by_key(|r| r.user_id);
        Ok(Listing::of(records, limit))
    }
}
