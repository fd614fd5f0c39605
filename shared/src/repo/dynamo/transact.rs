//! Transactions whose failure names the action that failed. Each action is added with a label
//! of the caller's own (an enum saying what the action is for); when a condition fails, the
//! outcome lists the labels of the actions whose conditions failed. Reordering actions cannot
//! change what an outcome means, as reading cancellation codes by position would.

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{ConditionCheck, Delete, Put, TransactWriteItem, Update};

use uuid::Uuid;

use super::DynamoStore;
use super::attrs::Attrs;
use super::idempotency::completion_update;
use super::retry::{ATTEMPTS, TRANSIENT_CANCELLATIONS, backoff, build_error, sdk_error};
use crate::repo::keys::PK;
use crate::repo::{Completion, RepoError, RepoResult};

/// The actions of one transaction, each with its label.
#[derive(Debug)]
pub(super) struct Transaction<'a, L> {
    table: &'a str,
    actions: Vec<(L, TransactWriteItem)>,
}

/// A transaction that wrote nothing because conditions failed: the labels of those actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refused<L>(Vec<L>);

impl<L: PartialEq> Refused<L> {
    /// Whether the action labelled `label` is one whose condition failed.
    pub(super) fn by(&self, label: L) -> bool {
        self.0.contains(&label)
    }

    /// Whether `label`'s is the only condition that failed.
    pub(super) fn only(&self, label: L) -> bool {
        self.0.iter().all(|l| *l == label)
    }
}

impl<'a, L: Copy + PartialEq + std::fmt::Debug> Transaction<'a, L> {
    pub(super) fn new(store: &'a DynamoStore) -> Self {
        Self { table: &store.table, actions: Vec::new() }
    }

    /// Puts `item`, on `condition` if one is given (which may name the key as `#pk`).
    pub(super) fn put(mut self, label: L, item: Attrs, condition: Option<&str>) -> RepoResult<Self> {
        let mut put = Put::builder().table_name(self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put.condition_expression(condition).expression_attribute_names("#pk", PK);
        }
        let put = put.build().map_err(build_error)?;
        self.actions.push((label, TransactWriteItem::builder().put(put).build()));
        Ok(self)
    }

    /// An update, a delete or a condition check, built by the caller.
    pub(super) fn update(mut self, label: L, update: Update) -> Self {
        self.actions.push((label, TransactWriteItem::builder().update(update).build()));
        self
    }

    pub(super) fn delete(mut self, label: L, delete: Delete) -> Self {
        self.actions.push((label, TransactWriteItem::builder().delete(delete).build()));
        self
    }

    pub(super) fn check(mut self, label: L, check: ConditionCheck) -> Self {
        self.actions.push((label, TransactWriteItem::builder().condition_check(check).build()));
        self
    }

    /// The request's idempotency answer, if it has one, kept with the work: refused, and with it
    /// the whole transaction, when the request no longer holds its key's lock.
    pub(super) fn complete(self, label: L, completion: Option<&Completion>) -> RepoResult<Self> {
        let Some(completion) = completion else { return Ok(self) };
        let update = completion_update(self.table, completion)?;
        Ok(self.update(label, update))
    }
}

impl DynamoStore {
    /// Runs a transaction: `Ok(Ok(()))` when it committed, `Ok(Err(refused))` when conditions
    /// failed (nothing was written). Conflicts with a concurrent transaction, and throttling,
    /// wrote nothing either and are retried with a short jittered back-off, then a 503.
    pub(super) async fn commit<L>(
        &self,
        transaction: Transaction<'_, L>,
    ) -> RepoResult<Result<(), Refused<L>>>
    where
        L: Copy + PartialEq + std::fmt::Debug,
    {
        let (labels, actions): (Vec<L>, Vec<TransactWriteItem>) = transaction.actions.into_iter().unzip();
        // The labels stay here; what runs the transaction is one function for every label type.
        match self.run_transaction(actions).await? {
            Ok(()) => Ok(Ok(())),
            Err(failed) => match failed.iter().map(|i| labels.get(*i).copied()).collect() {
                Some(labels) => Ok(Err(Refused(labels))),
                None => Err(RepoError::Internal(format!(
                    "a transaction of {} actions was refused at positions {failed:?}",
                    labels.len()
                ))),
            },
        }
    }

    /// Runs the actions; on a refusal, the positions of the actions whose conditions failed
    /// (which [`DynamoStore::commit`] turns back into labels).
    async fn run_transaction(&self, actions: Vec<TransactWriteItem>) -> RepoResult<Result<(), Vec<usize>>> {
        // One idempotency token for every attempt, ours and the SDK's: an attempt that committed
        // but whose answer was lost (or that is still in progress) makes the next one a no-op
        // success. A fresh token per attempt would run it again, and its conditions, now false,
        // would report a refusal of what in fact succeeded (a rotation as reuse, a signup as a
        // taken email).
        let token = Uuid::new_v4().to_string();
        for attempt in 1..=ATTEMPTS {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions.clone()))
                .client_request_token(&token)
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(Ok(())),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
                let codes: Vec<&str> =
                    e.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None")).collect();
                let failed: Vec<usize> = codes
                    .iter()
                    .enumerate()
                    .filter(|(_, code)| **code == "ConditionalCheckFailed")
                    .map(|(i, _)| i)
                    .collect();
                if !failed.is_empty() {
                    return Ok(Err(failed));
                }
                // Lost to a concurrent transaction, or throttled: nothing was written.
                if codes.iter().any(|c| TRANSIENT_CANCELLATIONS.contains(c)) {
                    if attempt < ATTEMPTS {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(RepoError::Unavailable(format!("transaction cancelled: {codes:?}")));
                }
            }
            if err.code() == Some("TransactionInProgressException") && attempt < ATTEMPTS {
                backoff(attempt).await;
                continue;
            }
            return Err(sdk_error("TransactWriteItems", err));
        }
        Err(RepoError::Unavailable("transaction kept conflicting with concurrent writes".into()))
    }
}
