//! Attribute values in and out: the few shapes the records use, each read with a check (a
//! malformed record is a 500, never a panic), and whole records as the JSON objects they serialise to.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};
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
    RepoError::Corrupt(what.to_owned())
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

/// A number that records written before it existed lack: `None` when absent, an error when it
/// is there but not a number of this type.
pub(super) fn get_opt_n<T: std::str::FromStr>(item: &Attrs, name: &str) -> RepoResult<Option<T>> {
    item.get(name).map(|_| get_n(item, name)).transpose()
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

/// A JSON value as its attribute: a resource's record is its serde form, a JSON object, and each
/// of its values maps to one attribute type (numbers to `N`, as DynamoDB keeps every number).
pub(super) fn to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(text) => AttributeValue::S(text.clone()),
        Value::Array(values) => AttributeValue::L(values.iter().map(to_attribute).collect()),
        Value::Object(fields) => AttributeValue::M(to_attrs(fields)),
    }
}

/// A record's JSON object as its attributes.
pub(super) fn to_attrs(fields: &Map<String, Value>) -> Attrs {
    fields.iter().map(|(name, value)| (name.clone(), to_attribute(value))).collect()
}

/// An attribute as the JSON value it was written from. A type no resource writes (binary, and
/// sets, which a record edited in the console may hold) or a number JSON cannot hold is a
/// malformed record: an error that names the record's attribute `name` (even for a value nested
/// in it, whose keys may be data), never the value.
fn to_value(name: &str, attribute: &AttributeValue) -> RepoResult<Value> {
    Ok(match attribute {
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::S(text) => Value::String(text.clone()),
        AttributeValue::N(n) => match (n.parse::<u64>(), n.parse::<i64>(), n.parse::<f64>()) {
            (Ok(unsigned), _, _) => Value::from(unsigned),
            (_, Ok(signed), _) => Value::from(signed),
            // Not `Value::from(f64)`, which turns NaN and infinities into null.
            (_, _, Ok(float)) => Number::from_f64(float).map(Value::Number).ok_or_else(|| corrupt(name))?,
            _ => return Err(corrupt(name)),
        },
        AttributeValue::L(values) => {
            Value::Array(values.iter().map(|v| to_value(name, v)).collect::<RepoResult<_>>()?)
        }
        AttributeValue::M(fields) => Value::Object(
            fields.iter().map(|(key, v)| Ok((key.clone(), to_value(name, v)?))).collect::<RepoResult<_>>()?,
        ),
        _ => return Err(corrupt(name)),
    })
}

fn to_json_fields(item: &Attrs) -> RepoResult<Map<String, Value>> {
    item.iter().map(|(name, attribute)| Ok((name.clone(), to_value(name, attribute)?))).collect()
}

/// A record's attributes as a JSON object, without its keys.
pub(super) fn to_json(mut item: Attrs) -> RepoResult<Map<String, Value>> {
    for name in [PK, SK, "type"] {
        item.remove(name);
    }
    to_json_fields(&item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_comes_back_as_it_was_written() {
        let record = json!({
            "title": "Sword", "count": 3, "debt": -7, "big": u64::MAX, "price": 9.5,
            "small": 1e-7, "done": false, "note": null,
            "tags": ["a", 1, null], "where": {"shelf": 2, "row": [true]}
        });
        let Value::Object(fields) = record.clone() else { unreachable!() };
        let mut item = to_attrs(&fields);
        assert_eq!(item["count"], AttributeValue::N("3".into()));
        assert_eq!(item["note"], AttributeValue::Null(true));
        item.insert(PK.into(), s("USER#1"));
        item.insert(SK.into(), s("ITEM#1"));
        item.insert("type".into(), s("item"));
        assert_eq!(Value::Object(to_json(item).unwrap()), record);
    }

    #[test]
    fn an_attribute_no_resource_writes_is_a_malformed_record_named_without_its_value() {
        let nested = |key: &str, inner| AttributeValue::M(HashMap::from([(key.to_owned(), inner)]));
        for attribute in [
            AttributeValue::Ss(vec!["secret".into()]),
            AttributeValue::N("secret".into()),
            AttributeValue::N("NaN".into()),
            AttributeValue::N("inf".into()),
            AttributeValue::N("1e999".into()),
            AttributeValue::L(vec![AttributeValue::Ns(vec!["1".into()])]),
            nested("secret", AttributeValue::Bs(vec![])),
        ] {
            let item = HashMap::from([("odd".to_owned(), attribute)]);
            let err = to_json(item).unwrap_err().to_string();
            assert!(err.contains("odd") && !err.contains("secret"), "{err}");
        }
    }
}
