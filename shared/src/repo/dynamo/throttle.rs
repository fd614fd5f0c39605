//! The login throttle's counters in DynamoDB: `LOGIN#<typed email>` / `ATTEMPTS`, counted with
//! conditional writes that never apply twice.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use chrono::{DateTime, Duration, Utc};

use super::DynamoStore;
use super::attrs::{corrupt, get_micros, get_n, n, s, ttl};
use super::retry::{ATTEMPTS, Resend, resend, sdk_error};
use crate::repo::keys::{ATTEMPTS_SK, ATTEMPTS_TYPE, PK, SK, TTL, attempts_pk};
use crate::repo::{AttemptWindow, RepoError, RepoResult, ThrottleRepo};

#[async_trait]
impl ThrottleRepo for DynamoStore {
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        let cutoff = (now - Duration::seconds(window_secs)).timestamp_micros();
        for _ in 0..ATTEMPTS {
            // Count into the open window...
            let counted = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(PK, s(attempts_pk(email_key)))
                .key(SK, s(ATTEMPTS_SK))
                .update_expression("ADD #count :one")
                .condition_expression("attribute_exists(#pk) AND #started > :cutoff")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#count", "count")
                .expression_attribute_names("#started", "started_at_us")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":cutoff", n(cutoff))
                .return_values(ReturnValue::AllNew)
                .customize()
                .config_override(resend::<UpdateItemError>(Resend::OnlyRefused))
                .send()
                .await;
            match counted {
                Ok(out) => {
                    let item = out.attributes.ok_or_else(|| corrupt("UpdateItem returned nothing"))?;
                    return Ok(AttemptWindow {
                        count: get_n(&item, "count")?,
                        started_at: get_micros(&item, "started_at_us")?,
                    });
                }
                Err(err)
                    if err
                        .as_service_error()
                        .is_some_and(UpdateItemError::is_conditional_check_failed_exception) => {}
                Err(err) => return Err(sdk_error("UpdateItem", err)),
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
                Ok(_) => return Ok(AttemptWindow { count: 1, started_at: now }),
                Err(err)
                    if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(err) => return Err(sdk_error("PutItem", err)),
            }
        }
        Err(RepoError::Unavailable("login attempt counter kept racing".into()))
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
