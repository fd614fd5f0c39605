//! Data migrations in DynamoDB: one partition, `MIGRATIONS`, with a record per migration and
//! the lease that keeps two runs from migrating at once.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::ConditionCheck;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_opt_s, get_s, get_time, key, n, s, time, ttl};
use super::retry::{Resend, applied, build_error, resend};
use super::transact::Transaction;
use crate::repo::keys::{LEASE_SK, LEASE_TYPE, MIGRATION_PREFIX, MIGRATION_TYPE, MIGRATIONS_PK, PK, SK, TTL};
use crate::repo::{MigrationRecord, MigrationRepo, RepoResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    LeaseHeld,
    Record,
}

fn migration_to_item(m: &MigrationRecord) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(MIGRATIONS_PK)),
        (SK.to_owned(), s(format!("{MIGRATION_PREFIX}{}", m.id))),
        ("type".to_owned(), s(MIGRATION_TYPE)),
        ("id".to_owned(), s(&m.id)),
        ("description".to_owned(), s(&m.description)),
        ("started_at".to_owned(), time(&m.started_at)),
    ]);
    if let Some(checkpoint) = &m.checkpoint {
        item.insert("checkpoint".to_owned(), s(checkpoint));
    }
    if let Some(applied_at) = &m.applied_at {
        item.insert("applied_at".to_owned(), time(applied_at));
    }
    item
}

fn migration_from_item(item: &Attrs) -> RepoResult<MigrationRecord> {
    Ok(MigrationRecord {
        id: get_s(item, "id")?.to_owned(),
        description: get_s(item, "description")?.to_owned(),
        started_at: get_time(item, "started_at")?,
        checkpoint: get_opt_s(item, "checkpoint"),
        applied_at: match item.get("applied_at") {
            Some(_) => Some(get_time(item, "applied_at")?),
            None => None,
        },
    })
}

#[async_trait]
impl MigrationRepo for DynamoStore {
    async fn migrations(&self) -> RepoResult<Vec<MigrationRecord>> {
        let items = self.query_prefix(MIGRATIONS_PK.to_owned(), MIGRATION_PREFIX, false).await?;
        items.iter().map(migration_from_item).collect()
    }

    async fn save_migration(
        &self,
        record: &MigrationRecord,
        holder: Uuid,
        now: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let lease_held = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(MIGRATIONS_PK.to_owned(), LEASE_SK)))
            .condition_expression("#holder = :holder AND #until > :now")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#until", "until_us")
            .expression_attribute_values(":holder", s(holder.to_string()))
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .build()
            .map_err(build_error)?;
        let transaction = Transaction::new(self).check(Step::LeaseHeld, lease_held).put(
            Step::Record,
            migration_to_item(record),
            None,
        )?;
        Ok(self.commit(transaction).await?.is_ok())
    }

    async fn acquire_migration_lease(
        &self,
        holder: Uuid,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> RepoResult<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(MIGRATIONS_PK))
            .item(SK, s(LEASE_SK))
            .item("type", s(LEASE_TYPE))
            .item("holder", s(holder.to_string()))
            .item("until_us", n(until.timestamp_micros()))
            .item(TTL, ttl(until))
            .condition_expression("attribute_not_exists(#pk) OR #holder = :holder OR #until < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#until", "until_us")
            .expression_attribute_values(":holder", s(holder.to_string()))
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .customize()
            .config_override(resend::<PutItemError>(Resend::OnlyRefused))
            .send()
            .await;
        applied("PutItem", result)
    }

    async fn release_migration_lease(&self, holder: Uuid) -> RepoResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(MIGRATIONS_PK))
            .key(SK, s(LEASE_SK))
            .condition_expression("#holder = :holder")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":holder", s(holder.to_string()))
            .customize()
            .config_override(resend::<DeleteItemError>(Resend::Idempotent))
            .send()
            .await;
        // Not applied: someone else's lease (ours ran out and was taken), or none: nothing of
        // ours to release.
        applied("DeleteItem", result).map(drop)
    }
}
