//! The health check's read: one eventually consistent `GetItem` of a key never written (half a
//! read unit). One attempt of at most a second: a health check reports a fault rather than
//! retrying it, and holds its function no longer than that while DynamoDB is down.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;

use super::DynamoStore;
use super::attrs::key;
use super::retry::sdk_error;
use crate::repo::keys::PK;
use crate::repo::{HEALTH_KEY, HealthRepo, RepoResult};

/// The longest a health check waits for DynamoDB.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

#[async_trait]
impl HealthRepo for DynamoStore {
    async fn reachable(&self) -> RepoResult<()> {
        self.client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(HEALTH_KEY.to_owned(), HEALTH_KEY)))
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .customize()
            .config_override(
                aws_sdk_dynamodb::config::Builder::default()
                    .retry_config(RetryConfig::standard().with_max_attempts(1))
                    .timeout_config(
                        TimeoutConfig::builder()
                            .connect_timeout(CHECK_TIMEOUT)
                            .operation_attempt_timeout(CHECK_TIMEOUT)
                            .operation_timeout(CHECK_TIMEOUT)
                            .build(),
                    ),
            )
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(())
    }
}
