//! Attribute values in and out: the few shapes the records use, each read with a check (a
//! malformed record is a 500, never a panic), and whole records through serde.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::deps::{format_timestamp, parse_timestamp};
use crate::repo::keys::{PK, SK};
use crate::repo::{RepoError, RepoResult};

pub(super) type Attrs = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// A record's key.
pub(super) fn key(pk: String, sk: &str) -> Attrs {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// Epoch seconds for DynamoDB's TTL, which deletes the record some time after it passes; code
/// checks expiry itself, since TTL deletion can lag by days.
pub(super) fn ttl(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp())
}

pub(super) fn time(t: &DateTime<Utc>) -> AttributeValue {
    s(format_timestamp(t))
}

pub(super) fn corrupt(what: &str) -> RepoError {
    RepoError::Internal(format!("malformed record: {what}"))
}

pub(super) fn get_s<'a>(item: &'a Attrs, name: &str) -> RepoResult<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| corrupt(name))
}

pub(super) fn get_opt_s(item: &Attrs, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

pub(super) fn get_n<T: std::str::FromStr>(item: &Attrs, name: &str) -> RepoResult<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(name))
}

pub(super) fn get_bool(item: &Attrs, name: &str) -> RepoResult<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied().ok_or_else(|| corrupt(name))
}

pub(super) fn get_uuid(item: &Attrs, name: &str) -> RepoResult<Uuid> {
    get_s(item, name)?.parse().map_err(|_| corrupt(name))
}

pub(super) fn get_time(item: &Attrs, name: &str) -> RepoResult<DateTime<Utc>> {
    parse_timestamp(get_s(item, name)?).ok_or_else(|| corrupt(name))
}

pub(super) fn get_micros(item: &Attrs, name: &str) -> RepoResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(get_n(item, name)?).ok_or_else(|| corrupt(name))
}

/// A value as its attribute (through serde).
pub(super) fn to_attribute<T: Serialize>(value: &T) -> RepoResult<AttributeValue> {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(value)
        .map_err(|e| RepoError::Internal(format!("serialising an attribute: {e}")))
}

/// A serialised record as its attributes.
pub(super) fn to_attrs<T: Serialize>(record: &T) -> RepoResult<Attrs> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(record)
        .map_err(|e| RepoError::Internal(format!("serialising a record: {e}")))
}

/// A record's attributes as a JSON object, without its keys.
pub(super) fn to_json(mut item: Attrs) -> RepoResult<serde_json::Map<String, serde_json::Value>> {
    for name in [PK, SK, "type"] {
        item.remove(name);
    }
    // Not the error's own text: it would quote the stored value.
    serde_dynamo::aws_sdk_dynamodb_1::from_item(item)
        .map_err(|_| corrupt("an attribute of a type no resource has"))
}
