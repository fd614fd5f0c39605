//! The table's definition in code, for DynamoDB Local in tests and local runs. In AWS the table
//! exists only through `template.yaml`; the template tests prove the two agree.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};

use crate::repo::keys::{self, INDEXES, TABLE_KEYS, TTL};
use crate::repo::{RepoError, RepoResult};

fn key(name: &str, kind: KeyType) -> RepoResult<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| RepoError::Internal(e.to_string()))
}

fn string_attribute(name: &str) -> RepoResult<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| RepoError::Internal(e.to_string()))
}

fn key_type(kind: &str) -> KeyType {
    if kind == "HASH" { KeyType::Hash } else { KeyType::Range }
}

/// Creates the table (on-demand, with its index, its stream of keys and TTL), as
/// `template.yaml` declares it.
pub async fn create_table(client: &Client, name: &str) -> RepoResult<()> {
    let stream = StreamSpecification::builder()
        .stream_enabled(true)
        .stream_view_type(StreamViewType::KeysOnly)
        .build()
        .map_err(|e| RepoError::Internal(e.to_string()))?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(stream);
    for (attribute, kind) in TABLE_KEYS {
        request = request
            .attribute_definitions(string_attribute(attribute)?)
            .key_schema(key(attribute, key_type(kind))?);
    }
    for (index, keys, projection) in INDEXES {
        let projection = match projection {
            keys::Projection::All => ProjectionType::All,
            keys::Projection::KeysOnly => ProjectionType::KeysOnly,
        };
        let mut gsi = GlobalSecondaryIndex::builder()
            .index_name(index)
            .projection(Projection::builder().projection_type(projection).build());
        for (attribute, kind) in keys {
            request = request.attribute_definitions(string_attribute(attribute)?);
            gsi = gsi.key_schema(key(attribute, key_type(kind))?);
        }
        request =
            request.global_secondary_indexes(gsi.build().map_err(|e| RepoError::Internal(e.to_string()))?);
    }
    request.send().await.map_err(|e| {
        RepoError::Internal(format!("CreateTable: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)))
    })?;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name(TTL)
        .build()
        .map_err(|e| RepoError::Internal(e.to_string()))?;
    client.update_time_to_live().table_name(name).time_to_live_specification(ttl).send().await.map_err(
        |e| {
            RepoError::Internal(format!(
                "UpdateTimeToLive: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&e)
            ))
        },
    )?;
    Ok(())
}

/// Creates the table unless it exists; true when it made it. For DynamoDB Local only: in AWS
/// the table exists through `template.yaml`.
pub async fn ensure_table(client: &Client, name: &str) -> RepoResult<bool> {
    if table_exists(client, name).await? {
        return Ok(false);
    }
    create_table(client, name).await?;
    Ok(true)
}

pub async fn table_exists(client: &Client, name: &str) -> RepoResult<bool> {
    match client.describe_table().table_name(name).send().await {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(false),
        Err(e) => Err(RepoError::Unavailable(format!(
            "DescribeTable: {}",
            aws_sdk_dynamodb::error::DisplayErrorContext(&e)
        ))),
    }
}
