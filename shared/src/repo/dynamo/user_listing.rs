//! The users listing in DynamoDB: from `GSI2` (keys only, over `USERS_SHARDS` partitions, merged
//! by id, the page's users then read from the table), or from `GSI1`, the index of before, until
//! the migration `0003_users_index` has filled `GSI2` (`docs/table-design.md`, "Rolling out the
//! users index").

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::types::KeysAndAttributes;
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_uuid, key, s};
use super::retry::{ATTEMPTS, backoff, build_error, sdk_error};
use super::users::user_from_item;
use crate::repo::keys::{
    GSI1, GSI1_PK, GSI1_SK, GSI2, GSI2_PK, GSI2_SK, MIGRATION_PREFIX, MIGRATIONS_PK, PK, SK, USER_SK,
    USERS_INDEX_MIGRATION, USERS_INDEX_PK, USERS_SHARDS, user_pk, users_shard,
};
use crate::repo::{Listing, RepoError, RepoResult, UserRecord};

impl DynamoStore {
    /// Whether the migration that fills `GSI2` has been applied: read until it has, then
    /// remembered.
    pub(super) async fn users_index_ready(&self) -> RepoResult<bool> {
        if self.users_index_ready.load(Ordering::Relaxed) {
            return Ok(true);
        }
        let record =
            self.get(MIGRATIONS_PK.to_owned(), &format!("{MIGRATION_PREFIX}{USERS_INDEX_MIGRATION}")).await?;
        let ready = record.is_some_and(|r| r.contains_key("applied_at"));
        if ready {
            self.users_index_ready.store(true, Ordering::Relaxed);
        }
        Ok(ready)
    }

    /// The listing from `GSI2`: the next `limit + 1` ids of each shard (keys only), merged by id,
    /// then the page's users read from the table in one consistent `BatchGetItem`.
    pub(super) async fn list_users_by_shard(
        &self,
        limit: usize,
        after: Option<Uuid>,
    ) -> RepoResult<Listing<UserRecord>> {
        let want = i32::try_from(limit + 1).unwrap_or(i32::MAX);
        let mut queries = tokio::task::JoinSet::new();
        for shard in 0..USERS_SHARDS {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI2)
                .expression_attribute_names("#pk", GSI2_PK)
                .expression_attribute_values(":pk", s(users_shard(shard)))
                .limit(want);
            query = match after {
                Some(after) => query
                    .key_condition_expression("#pk = :pk AND #sk > :after")
                    .expression_attribute_names("#sk", GSI2_SK)
                    .expression_attribute_values(":after", s(after.to_string())),
                None => query.key_condition_expression("#pk = :pk"),
            };
            queries.spawn(query.send());
        }
        let mut ids = Vec::new();
        while let Some(done) = queries.join_next().await {
            let out =
                done.map_err(|e| RepoError::Internal(e.to_string()))?.map_err(|e| sdk_error("Query", e))?;
            for item in out.items() {
                ids.push(get_uuid(item, GSI2_SK)?);
            }
        }
        ids.sort();
        let more = ids.len() > limit;
        ids.truncate(limit);
        let mut records = self.users_by_id(&ids).await?;
        records.sort_by_key(|u| u.id);
        Ok(Listing { records, more })
    }

    /// The users of `ids` (at most 100), read consistently; those deleted meanwhile are left out.
    async fn users_by_id(&self, ids: &[Uuid]) -> RepoResult<Vec<UserRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Attrs> = ids.iter().map(|id| key(user_pk(*id), USER_SK)).collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(build_error)?;
        let mut records = Vec::with_capacity(ids.len());
        for attempt in 1..=ATTEMPTS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| sdk_error("BatchGetItem", e))?;
            for item in out.responses.as_ref().and_then(|r| r.get(&self.table)).into_iter().flatten() {
                records.push(user_from_item(item)?);
            }
            match out.unprocessed_keys.and_then(|mut m| m.remove(&self.table)) {
                Some(left) if !left.keys().is_empty() => request = left,
                _ => return Ok(records),
            }
            if attempt == ATTEMPTS {
                return Err(RepoError::Unavailable("users left unread by BatchGetItem".into()));
            }
            backoff(attempt).await;
        }
        Ok(records)
    }

    /// The listing from `GSI1`, the index of before, until `GSI2` is filled.
    pub(super) async fn list_users_of_before(
        &self,
        limit: usize,
        after: Option<Uuid>,
    ) -> RepoResult<Listing<UserRecord>> {
        let start = after.map(|id| {
            HashMap::from([
                (PK.to_owned(), s(user_pk(id))),
                (SK.to_owned(), s(USER_SK)),
                (GSI1_PK.to_owned(), s(USERS_INDEX_PK)),
                (GSI1_SK.to_owned(), s(id.to_string())),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_values(":pk", s(USERS_INDEX_PK))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records = out.items().iter().map(user_from_item).collect::<RepoResult<Vec<_>>>()?;
        Ok(Listing::of(records, limit))
    }
}
