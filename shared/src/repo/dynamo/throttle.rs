//! The login throttle's counters in DynamoDB: `LOGIN#<typed email>` / `ATTEMPTS`, counted with
//! conditional writes that never apply twice.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Duration, Utc};

use std::collections::HashMap;

use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, corrupt, get_micros, get_n, n, s, ttl};
use super::retry::{ATTEMPTS, Resend, resend, sdk_error};
use super::transact::Transaction;
use crate::repo::keys::{ATTEMPTS_SK, ATTEMPTS_TYPE, LOGIN_ADDRESS, PK, SK, TTL, attempts_pk, user_pk};
use crate::repo::{AttemptWindow, RepoError, RepoResult, ThrottleRepo};

/// The actions of remembering a login address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remember {
    User,
    Address,
}

fn window_of(item: &Attrs) -> RepoResult<AttemptWindow> {
    Ok(AttemptWindow { count: get_n(item, "count")?, started_at: get_micros(item, "started_at_us")? })
}

impl DynamoStore {
    /// Counts one attempt under `counter` in the open window or a new one; with `max`, only
    /// while the open window holds fewer (`Err(window)` then, nothing counted), in the same
    /// conditional write.
    async fn count(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
        max: Option<u32>,
    ) -> RepoResult<Result<AttemptWindow, AttemptWindow>> {
        let cutoff = (now - Duration::seconds(window_secs)).timestamp_micros();
        let mut condition = "attribute_exists(#pk) AND #started > :cutoff".to_owned();
        if max.is_some() {
            condition.push_str(" AND #count < :max");
        }
        for _ in 0..ATTEMPTS {
            // Count into the open window...
            let counted = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(attempts_pk(email_key)))
                .key(SK, s(ATTEMPTS_SK))
                .update_expression("ADD #count :one")
                .condition_expression(condition.clone())
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#started", "started_at_us")
                .set_expression_attribute_values(Some(
                    [(":one".to_owned(), n(1)), (":cutoff".to_owned(), n(cutoff))]
                        .into_iter()
                        .chain(max.map(|max| (":max".to_owned(), n(max))))
                        .collect(),
                ))
                .return_values(ReturnValue::AllNew)
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .customize()
                .config_override(resend::<UpdateItemError>(Resend::OnlyRefused))
                .send()
                .await;
            match counted {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("UpdateItem returned nothing"))?;
                    return Ok(Ok(window_of(&item)?));
                }
                Err(err) => match err.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(refused)) => {
                        // The open window is full: refused, nothing counted. (Otherwise there is
                        // no open window: open one.)
                        if let (Some(max), Some(item)) = (max, refused.item()) {
                            let window = window_of(item)?;
                            if window.started_at.timestamp_micros() > cutoff && window.count >= max {
                                return Ok(Err(window));
                            }
                        }
                    }
                    _ => return Err(sdk_error("UpdateItem", err)),
                },
            }
            // ...or open a new one, unless a concurrent failure just did.
            let started = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(PK, s(attempts_pk(email_key)))
                .item(SK, s(ATTEMPTS_SK))
                .item("type", s(ATTEMPTS_TYPE))
                .item("count", n(1))
                .item("started_at_us", n(now.timestamp_micros()))
                .item(TTL, ttl(now + Duration::seconds(window_secs)))
                .condition_expression("attribute_not_exists(#pk) OR #started <= :cutoff")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#started", "started_at_us")
                .expression_attribute_values(":cutoff", n(cutoff))
                .customize()
                .config_override(resend::<PutItemError>(Resend::OnlyRefused))
                .send()
                .await;
            match started {
                Ok(_) => return Ok(Ok(AttemptWindow { count: 1, started_at: now })),
                Err(err)
                    if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(sdk_error("PutItem", err)),
            }
        }
        Err(RepoError::Unavailable("login attempt counter kept racing".into()))
    }
}

#[async_trait]
impl ThrottleRepo for DynamoStore {
    async fn count_attempt(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        Ok(self.count(counter, now, window_secs, None).await?.unwrap_or_else(|full| full))
    }

    async fn count_attempt_below(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
        max: u32,
    ) -> RepoResult<Result<AttemptWindow, AttemptWindow>> {
        self.count(counter, now, window_secs, Some(max)).await
    }

    async fn attempts(
        &self,
        counter: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<Option<AttemptWindow>> {
        let Some(item) = self.get(attempts_pk(counter), ATTEMPTS_SK).await? else {
            return Ok(None);
        };
        let window =
            AttemptWindow { count: get_n(&item, "count")?, started_at: get_micros(&item, "started_at_us")? };
        Ok((window.started_at + Duration::seconds(window_secs) > now).then_some(window))
    }

    async fn forgive_attempt(&self, counter: &str, started_at: DateTime<Utc>) -> RepoResult<()> {
        let forgiven = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(attempts_pk(counter)))
            .key(SK, s(ATTEMPTS_SK))
            .update_expression("ADD #count :minus_one")
            .condition_expression("#started = :started AND #count > :zero")
            .expression_attribute_names("#count", "count")
            .expression_attribute_names("#started", "started_at_us")
            .expression_attribute_values(":minus_one", n(-1))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":started", n(started_at.timestamp_micros()))
            .return_values(ReturnValue::UpdatedNew)
            .customize()
            .config_override(resend::<UpdateItemError>(Resend::OnlyRefused))
            .send()
            .await;
        match forgiven {
            Ok(out) => {
                let count: u32 = out.attributes.as_ref().map(|a| get_n(a, "count")).transpose()?.unwrap_or(0);
                if count > 0 {
                    return Ok(());
                }
                // Nothing left to count: the record goes, rather than wait for its TTL (which
                // may lag by days) with a typed email in its key. Only while still empty.
                let deleted = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, s(attempts_pk(counter)))
                    .key(SK, s(ATTEMPTS_SK))
                    .condition_expression("#count = :zero")
                    .expression_attribute_names("#count", "count")
                    .expression_attribute_values(":zero", n(0))
                    .customize()
                    .config_override(resend::<DeleteItemError>(Resend::Idempotent))
                    .send()
                    .await;
                match deleted {
                    Ok(_) => Ok(()),
                    Err(err)
                        if err
                            .as_service_error()
                            .is_some_and(DeleteItemError::is_conditional_check_failed_exception) =>
                    {
                        Ok(())
                    }
                    Err(err) => Err(sdk_error("DeleteItem", err)),
                }
            }
            // The window closed (or is empty): nothing to take back.
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(UpdateItemError::is_conditional_check_failed_exception) =>
            {
                Ok(())
            }
            Err(err) => Err(sdk_error("UpdateItem", err)),
        }
    }

    async fn remember_address(&self, user_id: Uuid, address: &str, until: DateTime<Utc>) -> RepoResult<()> {
        // Only under a user that exists, in one step: a record written into a deleted user's
        // partition after its purge would outlive it.
        let user_exists = self.user_exists(user_id)?;
        let record = HashMap::from([
            (PK.to_owned(), s(user_pk(user_id))),
            (SK.to_owned(), s(LOGIN_ADDRESS.sk(address))),
            ("type".to_owned(), s(LOGIN_ADDRESS.name)),
            ("until_us".to_owned(), n(until.timestamp_micros())),
            (TTL.to_owned(), ttl(until)),
        ]);
        let transaction =
            Transaction::new(self).check(Remember::User, user_exists).put(Remember::Address, record, None)?;
        // A user deleted meanwhile: nothing to remember.
        self.commit(transaction).await?.ok();
        Ok(())
    }

    async fn knows_address(&self, user_id: Uuid, address: &str, now: DateTime<Utc>) -> RepoResult<bool> {
        let Some(item) = self.get(user_pk(user_id), &LOGIN_ADDRESS.sk(address)).await? else {
            return Ok(false);
        };
        Ok(get_micros(&item, "until_us")? > now)
    }

    async fn clear_attempts(&self, email_key: &str) -> RepoResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(attempts_pk(email_key)))
            .key(SK, s(ATTEMPTS_SK))
            .customize()
            .config_override(resend::<DeleteItemError>(Resend::Idempotent))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }
}
