//! Whole partitions: every record under a sort-key prefix, page after page, and deletes in
//! batches. What revoking a user's sessions, the purge and the migrations' listing need; request
//! paths read one page at a time with their own Query.

use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_s, s};
use super::retry::{ATTEMPTS, Resend, backoff, resend, sdk_error};
use crate::repo::keys::{PK, SK, user_pk};
use crate::repo::{RepoError, RepoResult};

impl DynamoStore {
    /// The next `limit + 1` records of each of the `shards` partitions (their sort keys starting
    /// with `prefix`), after the sort key `after` in each, read consistently: what a listing
    /// spread over shards (the pending purges, the outbox) merges. Also whether any shard held
    /// more than `limit`, which says that more follow whatever the caller keeps of these.
    pub(super) async fn query_shards(
        &self,
        shards: impl IntoIterator<Item = String>,
        prefix: &str,
        after: Option<String>,
        limit: usize,
    ) -> RepoResult<(Vec<Attrs>, bool)> {
        let (mut items, mut more) = (Vec::new(), false);
        for pk in shards {
            let start = after.as_ref().map(|sk| super::attrs::key(pk.clone(), sk));
            let out = self
                .prefix_query(pk, prefix)
                .set_exclusive_start_key(start)
                .limit(i32::try_from(limit.saturating_add(1)).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| sdk_error("Query", e))?;
            more |= out.items().len() > limit;
            items.extend(out.items.unwrap_or_default());
        }
        Ok((items, more))
    }

    /// Keys (PK, SK) of every record in a user's partition whose SK starts with `prefix`.
    pub(super) async fn partition_keys(&self, user_id: Uuid, prefix: &str) -> RepoResult<Vec<Attrs>> {
        self.query_prefix(user_pk(user_id), prefix, true).await
    }

    /// A strongly consistent query of partition `pk` for the records whose SK starts with `prefix`.
    pub(super) fn prefix_query(&self, pk: String, prefix: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
    }

    /// Every record (or only its keys) of partition `pk` whose SK starts with `prefix`, all pages.
    pub(super) async fn query_prefix(
        &self,
        pk: String,
        prefix: &str,
        keys_only: bool,
    ) -> RepoResult<Vec<Attrs>> {
        let mut records = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let mut query = self.prefix_query(pk.clone(), prefix).set_exclusive_start_key(start);
            if keys_only {
                query = query.projection_expression("#pk, #sk");
            }
            let out = query.send().await.map_err(|e| sdk_error("Query", e))?;
            records.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(records);
            }
        }
    }

    /// Deletes records by key, 25 at a time, re-sending what DynamoDB left unprocessed.
    pub(super) async fn delete_keys(&self, keys: Vec<Attrs>) -> RepoResult<()> {
        for chunk in keys.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| RepoError::Internal(e.to_string()))
                })
                .collect::<RepoResult<Vec<_>>>()?;
            for attempt in 1..=ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .customize()
                    .config_override(resend::<BatchWriteItemError>(Resend::Idempotent))
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == ATTEMPTS {
                    return Err(RepoError::Unavailable("batch delete left items unprocessed".into()));
                }
                backoff(attempt).await;
            }
        }
        Ok(())
    }

    /// The key of every record in the table, by a Scan. For tests and operators only (the
    /// repository contract tests check every record's kind with it): no request path scans.
    pub async fn scan_keys(&self) -> RepoResult<Vec<(String, String)>> {
        let mut keys = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .projection_expression("#pk, #sk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| sdk_error("Scan", e))?;
            for item in out.items() {
                keys.push((get_s(item, PK)?.to_owned(), get_s(item, SK)?.to_owned()));
            }
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(keys);
            }
        }
    }
}
