//! The users listing in DynamoDB: from `GSI2` (keys only, over `USERS_SHARDS` partitions, merged
//! by id, the page's users then read from the table), or from `GSI1`, the index of before, until
//! the migration `0003_users_index` has filled `GSI2` (`docs/table-design.md`, "Rolling out the
//! users index").

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_uuid, key, s};
use super::retry::{ATTEMPTS, Resend, applied, backoff, build_error, resend, sdk_error};
use super::users::user_from_item;
use crate::repo::keys::{
    GSI1, GSI1_PK, GSI1_SK, GSI2, GSI2_PK, GSI2_SK, MIGRATION_PREFIX, MIGRATIONS_PK, PK, SK, USER_SK,
    USERS_INDEX_MIGRATION, USERS_INDEX_PK, USERS_SHARDS, user_pk, users_shard, users_shard_pk,
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

    /// The listing from `GSI2`: the next ids of each shard (keys only), merged by id, then the
    /// page's users read from the table in one consistent `BatchGetItem`. An id whose user is
    /// gone (the index lags the table) is skipped and the page filled from further ids, so a page
    /// that says more follow is always full and its last user is the cursor.
    pub(super) async fn list_users_by_shard(
        &self,
        limit: usize,
        after: Option<Uuid>,
    ) -> RepoResult<Listing<UserRecord>> {
        let mut records = Vec::with_capacity(limit);
        let mut after = after;
        loop {
            let need = limit - records.len();
            let mut ids = self.indexed_user_ids(need + 1, after).await?;
            let more = ids.len() > need;
            ids.truncate(need);
            let Some(last) = ids.last().copied() else {
                return Ok(Listing { records, more: false });
            };
            let mut found = self.users_by_id(&ids).await?;
            found.sort_by_key(|u| u.id);
            records.extend(found);
            if records.len() == limit || !more {
                return Ok(Listing { records, more });
            }
            after = Some(last);
        }
    }

    /// The first `want` ids after `after` in `GSI2`: up to `want` from each shard, merged.
    async fn indexed_user_ids(&self, want: usize, after: Option<Uuid>) -> RepoResult<Vec<Uuid>> {
        let want = i32::try_from(want).unwrap_or(i32::MAX);
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
        ids.truncate(usize::try_from(want).unwrap_or(usize::MAX));
        Ok(ids)
    }

    /// The users of `ids`, read consistently, 100 at a time (BatchGetItem's most); those
    /// deleted meanwhile are left out.
    async fn users_by_id(&self, ids: &[Uuid]) -> RepoResult<Vec<UserRecord>> {
        let mut records = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(100) {
            records.extend(self.users_of_chunk(chunk).await?);
        }
        Ok(records)
    }

    async fn users_of_chunk(&self, ids: &[Uuid]) -> RepoResult<Vec<UserRecord>> {
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
            .query_index_of_before()
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records = out.items().iter().map(user_from_item).collect::<RepoResult<Vec<_>>>()?;
        Ok(Listing::of(records, limit))
    }
}

impl DynamoStore {
    /// A Query of `GSI1`'s one partition, every user's in the index of before.
    fn query_index_of_before(&self) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_values(":pk", s(USERS_INDEX_PK))
    }

    /// A check, in a transaction, that `0003_users_index` is not applied (its record absent, or
    /// without `applied_at`): the condition of putting a user into `GSI1`.
    pub(super) fn users_index_not_ready(&self) -> RepoResult<aws_sdk_dynamodb::types::ConditionCheck> {
        aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                MIGRATIONS_PK.to_owned(),
                &format!("{MIGRATION_PREFIX}{USERS_INDEX_MIGRATION}"),
            )))
            .condition_expression("attribute_not_exists(#applied)")
            .expression_attribute_names("#applied", "applied_at")
            .build()
            .map_err(build_error)
    }

    /// Takes every user out of `GSI1`: its pages until a query finds none, then once more after
    /// a pause (the index lags the table). Returns how many were taken out.
    pub(super) async fn empty_index_of_before(&self) -> RepoResult<u64> {
        let mut taken = 0u64;
        let mut quiet = 0;
        while quiet < 2 {
            let out =
                self.query_index_of_before().limit(100).send().await.map_err(|e| sdk_error("Query", e))?;
            if out.items().is_empty() {
                quiet += 1;
                if quiet < 2 {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                continue;
            }
            quiet = 0;
            for item in out.items() {
                let id = get_uuid(item, GSI1_SK)?;
                self.set_index_keys(id, "REMOVE #gpk, #gsk", false).await?;
                taken += 1;
            }
        }
        Ok(taken)
    }

    /// Whether `GSI2` exists and is built (DynamoDB builds a new index after the stack update).
    pub(super) async fn gsi2_active(&self) -> RepoResult<bool> {
        let described = self.client.describe_table().table_name(&self.table).send().await.map_err(|e| {
            RepoError::Unavailable(format!(
                "DescribeTable: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ))
        })?;
        let index = described
            .table
            .and_then(|t| t.global_secondary_indexes)
            .into_iter()
            .flatten()
            .find(|i| i.index_name() == Some(GSI2));
        Ok(index.is_some_and(|i| i.index_status() == Some(&aws_sdk_dynamodb::types::IndexStatus::Active)))
    }

    /// Sets a user's `GSI2` keys (`into_gsi2`), or removes its `GSI1` keys, by `expression`; a
    /// user deleted meanwhile is left so.
    pub(super) async fn set_index_keys(&self, id: Uuid, expression: &str, into_gsi2: bool) -> RepoResult<()> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(id), USER_SK)))
            .update_expression(expression)
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        update = if into_gsi2 {
            update
                .expression_attribute_names("#gpk", GSI2_PK)
                .expression_attribute_names("#gsk", GSI2_SK)
                .expression_attribute_values(":gpk", s(users_shard_pk(id)))
                .expression_attribute_values(":gsk", s(id.to_string()))
        } else {
            update.expression_attribute_names("#gpk", GSI1_PK).expression_attribute_names("#gsk", GSI1_SK)
        };
        let result =
            update.customize().config_override(resend::<UpdateItemError>(Resend::Idempotent)).send().await;
        // Not applied: the user was deleted meanwhile.
        applied("UpdateItem", result).map(drop)
    }
}
