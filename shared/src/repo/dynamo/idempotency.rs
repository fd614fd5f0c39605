//! Idempotency records in DynamoDB: taken with one conditional put that returns the record it
//! found when refused (`ReturnValuesOnConditionCheckFailure`), completed and released on the
//! condition that the request still holds its lock.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure, Update};
use chrono::{DateTime, Utc};

use super::DynamoStore;
use super::attrs::{Attrs, corrupt, get_micros, get_n, get_opt_s, get_s, key, n, s, ttl};
use super::retry::{applied, build_error, sdk_error};
use crate::repo::keys::{CALLER_IDEMPOTENCY_TYPE, IDEMPOTENCY, PK, SK, TTL};
use crate::repo::{
    Begin, Caller, Completion, IdempotencyKey, IdempotencyRecord, IdempotencyRepo, IdempotencyState,
    KeptAnswer, RepoResult,
};

const IN_PROGRESS: &str = "in_progress";
const COMPLETE: &str = "complete";

fn record_from_item(item: &Attrs) -> RepoResult<IdempotencyRecord> {
    let state = match get_s(item, "state")? {
        IN_PROGRESS => IdempotencyState::InProgress { locked_until: get_micros(item, "locked_until_us")? },
        COMPLETE => IdempotencyState::Complete(KeptAnswer {
            status: get_n(item, "status")?,
            location: get_opt_s(item, "location"),
            etag: get_opt_s(item, "etag"),
            content_type: get_opt_s(item, "content_type"),
            body: match item.get("body") {
                Some(AttributeValue::B(body)) => body.as_ref().to_vec(),
                None => Vec::new(),
                Some(_) => return Err(corrupt("idempotency body")),
            },
        }),
        other => return Err(corrupt(&format!("idempotency state {other:?}"))),
    };
    Ok(IdempotencyRecord {
        fingerprint: get_s(item, "fingerprint")?.to_owned(),
        state,
        expires_at: get_micros(item, "expires_at_us")?,
    })
}

fn micros(t: &DateTime<Utc>) -> AttributeValue {
    n(t.timestamp_micros())
}

/// The update that completes a key with its answer, while the request still holds its lock:
/// alone (`IdempotencyRepo::complete`) or in an operation's own transaction.
struct CompletionWrite {
    key: Attrs,
    expression: String,
    condition: &'static str,
    names: HashMap<String, String>,
    values: Attrs,
}

impl CompletionWrite {
    fn of(idem: &IdempotencyKey, locked_until: DateTime<Utc>, answer: &KeptAnswer) -> Self {
        let (pk, sk) = idem.location();
        let mut sets =
            vec!["#state = :complete".to_owned(), "#status = :status".to_owned(), "#body = :body".to_owned()];
        let mut values: Attrs = HashMap::from([
            (":complete".to_owned(), s(COMPLETE)),
            (":status".to_owned(), n(answer.status)),
            (":body".to_owned(), AttributeValue::B(Blob::new(answer.body.clone()))),
            (":in_progress".to_owned(), s(IN_PROGRESS)),
            (":locked".to_owned(), micros(&locked_until)),
        ]);
        let mut names: HashMap<String, String> = HashMap::from([
            ("#state".to_owned(), "state".to_owned()),
            ("#status".to_owned(), "status".to_owned()),
            ("#body".to_owned(), "body".to_owned()),
            ("#locked".to_owned(), "locked_until_us".to_owned()),
        ]);
        let headers = [
            ("#location", ":location", "location", &answer.location),
            ("#etag", ":etag", "etag", &answer.etag),
            ("#content_type", ":content_type", "content_type", &answer.content_type),
        ];
        for (name, placeholder, attribute, value) in headers {
            if let Some(value) = value {
                sets.push(format!("{name} = {placeholder}"));
                names.insert(name.to_owned(), attribute.to_owned());
                values.insert(placeholder.to_owned(), s(value));
            }
        }
        Self {
            key: key(pk, &sk),
            expression: format!("SET {} REMOVE #locked", sets.join(", ")),
            condition: "#state = :in_progress AND #locked = :locked",
            names,
            values,
        }
    }
}

/// `completion` as an action of an operation's own transaction (`Transaction::complete`): the
/// transaction is refused by it when the request no longer holds its lock.
pub(super) fn completion_update(table: &str, completion: &Completion) -> RepoResult<Update> {
    let write = CompletionWrite::of(&completion.key, completion.locked_until, &completion.answer);
    Update::builder()
        .table_name(table)
        .set_key(Some(write.key))
        .update_expression(write.expression)
        .condition_expression(write.condition)
        .set_expression_attribute_names(Some(write.names))
        .set_expression_attribute_values(Some(write.values))
        .build()
        .map_err(build_error)
}

#[async_trait]
impl IdempotencyRepo for DynamoStore {
    async fn begin(
        &self,
        idem: &IdempotencyKey,
        fingerprint: &str,
        locked_until: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> RepoResult<Begin> {
        let (pk, sk) = idem.location();
        let kind = match idem.caller {
            Caller::User(_) => IDEMPOTENCY.name,
            Caller::Address(_) => CALLER_IDEMPOTENCY_TYPE,
        };
        let item: Attrs = HashMap::from([
            (PK.to_owned(), s(pk)),
            (SK.to_owned(), s(sk)),
            ("type".to_owned(), s(kind)),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("state".to_owned(), s(IN_PROGRESS)),
            ("locked_until_us".to_owned(), micros(&locked_until)),
            ("expires_at_us".to_owned(), micros(&expires_at)),
            (TTL.to_owned(), ttl(expires_at)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#pk) OR #expires <= :now OR (#state = :in_progress AND #locked <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#expires", "expires_at_us")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#locked", "locked_until_us")
            .expression_attribute_values(":now", micros(&now))
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Begin::Started),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => match refused.item() {
                    Some(item) => Ok(Begin::Existing(record_from_item(item)?)),
                    None => Err(corrupt("a refused idempotency record came back empty")),
                },
                _ => Err(sdk_error("PutItem", err)),
            },
        }
    }

    async fn complete(
        &self,
        idem: &IdempotencyKey,
        locked_until: DateTime<Utc>,
        answer: &KeptAnswer,
    ) -> RepoResult<bool> {
        let write = CompletionWrite::of(idem, locked_until, answer);
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(write.key))
            .update_expression(write.expression)
            .condition_expression(write.condition)
            .set_expression_attribute_names(Some(write.names))
            .set_expression_attribute_values(Some(write.values))
            .send()
            .await;
        applied("UpdateItem", result)
    }

    async fn release(&self, idem: &IdempotencyKey, locked_until: DateTime<Utc>) -> RepoResult<()> {
        let (pk, sk) = idem.location();
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, &sk)))
            .condition_expression("#state = :in_progress AND #locked = :locked")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#locked", "locked_until_us")
            .expression_attribute_values(":in_progress", s(IN_PROGRESS))
            .expression_attribute_values(":locked", micros(&locked_until))
            .send()
            .await;
        applied("DeleteItem", result).map(drop)
    }
}
