//! Every user-owned resource in DynamoDB: a record at `USER#<owner>` / `<prefix><id>`, and its
//! owner pointer at `<prefix><id>` / `OWNER`, so that a superuser's lookup by id alone is a
//! consistent GetItem (an index would be eventually consistent).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{Delete, ReturnValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, corrupt, get_uuid, key, n, s, time, to_attribute, to_attrs, to_json};
use super::retry::{Resend, build_error, resend, sdk_error};
use super::transact::Transaction;
use crate::repo::keys::{OwnedKind, PK, POINTER_SK, SK, user_pk};
use crate::repo::resources::{Fields, UPDATED_AT, VERSION};
use crate::repo::{Completion, Conditional, Listing, RepoError, RepoResult, ResourceStore, lock_passed};

const NEW: Option<&str> = Some("attribute_not_exists(#pk)");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    OwnerExists,
    Record,
    Pointer,
    Completion,
}

fn pointer(kind: OwnedKind, owner: Uuid, id: Uuid) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(kind.sk(id))),
        (SK.to_owned(), s(POINTER_SK)),
        ("type".to_owned(), s(kind.pointer_type())),
        ("owner_id".to_owned(), s(owner.to_string())),
    ])
}

/// A change set as an update expression: each field set or (`null`) removed, `updated_at` set,
/// `version` bumped by one; on the condition that the record exists and, with an expected
/// version, is at it. The same for an UpdateItem and for a transaction's Update.
struct Change {
    expression: String,
    condition: String,
    names: HashMap<String, String>,
    values: Attrs,
}

impl Change {
    fn of(changes: &Fields, expected_version: Option<u64>, now: DateTime<Utc>) -> Self {
        let mut sets = vec!["#updated_at = :updated_at".to_owned()];
        let mut removes = vec![];
        let mut names = HashMap::from([
            ("#pk".to_owned(), PK.to_owned()),
            ("#version".to_owned(), VERSION.to_owned()),
            ("#updated_at".to_owned(), UPDATED_AT.to_owned()),
        ]);
        let mut values = HashMap::from([(":one".to_owned(), n(1)), (":updated_at".to_owned(), time(&now))]);
        for (i, (field, value)) in changes.iter().enumerate() {
            names.insert(format!("#f{i}"), field.clone());
            if value.is_null() {
                removes.push(format!("#f{i}"));
            } else {
                sets.push(format!("#f{i} = :f{i}"));
                values.insert(format!(":f{i}"), to_attribute(value));
            }
        }
        let mut condition = "attribute_exists(#pk)".to_owned();
        if let Some(v) = expected_version {
            condition.push_str(" AND #version = :expected");
            values.insert(":expected".to_owned(), n(v));
        }
        let mut expression = format!("SET {} ADD #version :one", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        Self { expression, condition, names, values }
    }
}

#[async_trait]
impl ResourceStore for DynamoStore {
    async fn create_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        record: &Fields,
        completion: Option<&Completion>,
    ) -> RepoResult<bool> {
        // Only while the owner exists: a record can never outlive its user's deletion.
        let owner_exists = self.user_exists(owner)?;
        let mut item = to_attrs(record);
        item.insert(PK.to_owned(), s(user_pk(owner)));
        item.insert(SK.to_owned(), s(kind.sk(id)));
        item.insert("type".to_owned(), s(kind.name));
        let mut transaction =
            Transaction::new(self).check(Step::OwnerExists, owner_exists).put(Step::Record, item, NEW)?;
        if kind.pointer {
            transaction = transaction.put(Step::Pointer, pointer(kind, owner, id), NEW)?;
        }
        match self.commit(transaction.complete(Step::Completion, completion)?).await? {
            Ok(()) => Ok(true),
            Err(refused) if refused.by(Step::OwnerExists) => Ok(false),
            Err(refused) if refused.by(Step::Completion) => Err(lock_passed()),
            Err(_) => Err(RepoError::Internal(format!("{} id {id} is taken", kind.name))),
        }
    }

    async fn get_resource(&self, kind: OwnedKind, owner: Uuid, id: Uuid) -> RepoResult<Option<Fields>> {
        self.get(user_pk(owner), &kind.sk(id)).await?.map(to_json).transpose()
    }

    async fn find_resource_owner(&self, kind: OwnedKind, id: Uuid) -> RepoResult<Option<Uuid>> {
        self.get(kind.sk(id), POINTER_SK).await?.map(|pointer| get_uuid(&pointer, "owner_id")).transpose()
    }

    async fn update_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<Fields>> {
        // One UpdateItem: `ADD version 1` is atomic, so blind concurrent updates never lose a
        // write and each bumps the version by exactly one; If-Match adds a condition on it.
        let change = Change::of(changes, expected_version, now);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(owner)))
            .key(SK, s(kind.sk(id)))
            .update_expression(change.expression)
            .condition_expression(change.condition)
            .set_expression_attribute_names(Some(change.names))
            .set_expression_attribute_values(Some(change.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .config_override(resend::<UpdateItemError>(Resend::OnlyRefused))
            .send()
            .await;
        match result {
            Ok(out) => {
                let attrs = out.attributes.ok_or_else(|| corrupt("UpdateItem returned nothing"))?;
                Ok(Conditional::Done(to_json(attrs)?))
            }
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(e)) => Ok(match e.item() {
                    Some(_) => Conditional::VersionMismatch,
                    None => Conditional::NotFound,
                }),
                _ => Err(sdk_error("UpdateItem", err)),
            },
        }
    }

    async fn update_resource_at(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        changes: &Fields,
        expected_version: u64,
        now: DateTime<Utc>,
        completion: Option<&Completion>,
    ) -> RepoResult<Conditional<()>> {
        // The unkeyed update's own expression, on its version, in a transaction with the answer.
        let change = Change::of(changes, Some(expected_version), now);
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(owner), &kind.sk(id))))
            .update_expression(change.expression)
            .condition_expression(change.condition)
            .set_expression_attribute_names(Some(change.names))
            .set_expression_attribute_values(Some(change.values))
            .build()
            .map_err(build_error)?;
        let transaction =
            Transaction::new(self).update(Step::Record, update).complete(Step::Completion, completion)?;
        match self.commit(transaction).await? {
            Ok(()) => Ok(Conditional::Done(())),
            Err(refused) if refused.by(Step::Record) => {
                Ok(match self.get_resource(kind, owner, id).await? {
                    Some(_) => Conditional::VersionMismatch,
                    None => Conditional::NotFound,
                })
            }
            Err(_) => Err(lock_passed()),
        }
    }

    async fn delete_resource(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        // The record and its pointer go together. As a transaction the delete carries an
        // idempotency token, so the SDK may safely resend it.
        let mut condition = "attribute_exists(#pk)".to_owned();
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(owner), &kind.sk(id))))
            .expression_attribute_names("#pk", PK);
        if let Some(v) = expected_version {
            condition.push_str(" AND #version = :expected");
            delete = delete
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":expected", n(v));
        }
        let mut transaction = Transaction::new(self)
            .delete(Step::Record, delete.condition_expression(condition).build().map_err(build_error)?);
        if kind.pointer {
            let pointer = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(kind.sk(id), POINTER_SK)))
                .build()
                .map_err(build_error)?;
            transaction = transaction.delete(Step::Pointer, pointer);
        }
        match self.commit(transaction).await? {
            Ok(()) => Ok(Conditional::Done(())),
            // Gone, or at another version: what is true now decides the answer.
            Err(_) => Ok(match self.get_resource(kind, owner, id).await? {
                Some(_) => Conditional::VersionMismatch,
                None => Conditional::NotFound,
            }),
        }
    }

    async fn list_resources(
        &self,
        kind: OwnedKind,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<Fields>> {
        let start = before.map(|id| key(user_pk(owner), &kind.sk(id)));
        let out = self
            .prefix_query(user_pk(owner), kind.prefix)
            .scan_index_forward(false)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records =
            out.items.unwrap_or_default().into_iter().map(to_json).collect::<RepoResult<Vec<_>>>()?;
        Ok(Listing::of(records, limit))
    }
}
