//! The DynamoDB store: one table, the single-table design of `shared/TABLE.md`. Every
//! multi-record write is a transaction, every write that must not race carries a condition, and
//! every listing is a Query on a key or an index (never a Scan).

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, Put, ReturnValue,
    ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update, WriteRequest,
};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use super::table::{GSI1, GSI1_PK, GSI1_SK, PK, SK, TTL};
use super::*;
use crate::validate::{Email, Patch};

type Attrs = HashMap<String, AttributeValue>;

/// How often a transaction that lost a conflict with a concurrent one is tried again before the
/// request gives up with a 503. Conflicts clear in milliseconds.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// The key the warm-up reads: no record has it (every partition key has a `TYPE#` prefix).
const WARM_UP_KEY: &str = "WARMUP";
/// The most a cold start waits for its warm-up read.
pub const WARM_UP_TIMEOUT: StdDuration = StdDuration::from_secs(1);

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens the way to DynamoDB before the first request needs it: credentials, endpoint
    /// resolution, DNS, TCP and TLS, paid once during a Lambda cold start (whose init phase runs
    /// at full CPU) instead of inside the first request. One read of a key that never exists,
    /// bounded by [`WARM_UP_TIMEOUT`]; a failure is logged and the start goes on (the request
    /// that follows will say 503 if DynamoDB is really down). Returns whether it answered.
    pub async fn warm_up(&self) -> bool {
        let started = std::time::Instant::now();
        let read = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(WARM_UP_KEY.into(), WARM_UP_KEY)));
        match tokio::time::timeout(WARM_UP_TIMEOUT, read.send()).await {
            Ok(Ok(_)) => {
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "DynamoDB connection warmed"
                );
                true
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %DisplayErrorContext(&e), "DynamoDB warm-up failed; starting anyway");
                false
            }
            Err(_) => {
                tracing::warn!("DynamoDB warm-up took over {WARM_UP_TIMEOUT:?}; starting anyway");
                false
            }
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get(&self, pk: String, sk: &str) -> RepoResult<Option<Attrs>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(pk))
            .key(SK, s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error("GetItem", e))?;
        Ok(out.item)
    }

    /// Runs a transaction. `Ok(None)` when it committed; `Ok(Some(codes))` when a condition
    /// failed, with one cancellation code per action (`"ConditionalCheckFailed"`, `"None"`).
    /// Conflicts with a concurrent transaction are retried with a short jittered back-off.
    async fn transact(&self, actions: Vec<TransactWriteItem>) -> RepoResult<Option<Vec<String>>> {
        for attempt in 1..=TRANSACTION_ATTEMPTS {
            let result =
                self.client.transact_write_items().set_transact_items(Some(actions.clone())).send().await;
            let err = match result {
                Ok(_) => return Ok(None),
                Err(err) => err,
            };
            if let Some(TransactWriteItemsError::TransactionCanceledException(e)) = err.as_service_error() {
                let codes: Vec<String> =
                    e.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_owned()).collect();
                if codes.iter().any(|c| c == "ConditionalCheckFailed") {
                    return Ok(Some(codes));
                }
                // Lost to a concurrent transaction, or throttled: nothing was written.
                if codes.iter().any(|c| TRANSIENT_CANCELLATIONS.contains(&c.as_str())) {
                    if attempt < TRANSACTION_ATTEMPTS {
                        backoff(attempt).await;
                        continue;
                    }
                    return Err(RepoError::Unavailable(format!("transaction cancelled: {codes:?}")));
                }
            }
            if err.code() == Some("TransactionInProgressException") && attempt < TRANSACTION_ATTEMPTS {
                backoff(attempt).await;
                continue;
            }
            return Err(sdk_error("TransactWriteItems", err));
        }
        Err(RepoError::Unavailable("transaction kept conflicting with concurrent writes".into()))
    }

    /// Keys (PK, SK) of every record in a user's partition whose SK starts with `prefix`.
    async fn partition_keys(&self, user_id: Uuid, prefix: &str) -> RepoResult<Vec<Attrs>> {
        self.query_prefix(user_pk(user_id), prefix, true).await
    }

    /// Every record (or only its keys) of partition `pk` whose SK starts with `prefix`, all pages.
    async fn query_prefix(&self, pk: String, prefix: &str, keys_only: bool) -> RepoResult<Vec<Attrs>> {
        let mut records = Vec::new();
        let mut start: Option<Attrs> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start);
            if keys_only {
                query = query.projection_expression("#pk, #sk");
            }
            let out = query.send().await.map_err(|e| sdk_error("Query", e))?;
            records.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(records);
            }
        }
    }

    /// Deletes records by key, 25 at a time, re-sending what DynamoDB left unprocessed.
    async fn delete_keys(&self, keys: Vec<Attrs>) -> RepoResult<()> {
        for chunk in keys.chunks(25) {
            let mut requests = chunk
                .iter()
                .map(|key| {
                    DeleteRequest::builder()
                        .set_key(Some(key.clone()))
                        .build()
                        .map(|d| WriteRequest::builder().delete_request(d).build())
                        .map_err(|e| RepoError::Internal(e.to_string()))
                })
                .collect::<RepoResult<Vec<_>>>()?;
            for attempt in 1..=TRANSACTION_ATTEMPTS {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, requests)
                    .customize()
                    .config_override(resend::<BatchWriteItemError>(Resend::Idempotent))
                    .send()
                    .await
                    .map_err(|e| sdk_error("BatchWriteItem", e))?;
                requests = out.unprocessed_items.and_then(|mut m| m.remove(&self.table)).unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == TRANSACTION_ATTEMPTS {
                    return Err(RepoError::Unavailable("batch delete left items unprocessed".into()));
                }
                backoff(attempt).await;
            }
        }
        Ok(())
    }

    fn put(&self, item: Attrs, condition: Option<&str>) -> RepoResult<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(item));
        if let Some(condition) = condition {
            put = put.condition_expression(condition).expression_attribute_names("#pk", PK);
        }
        let put = put.build().map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Deletes an email reservation, only while it still belongs to `user_id`.
    fn release_email(&self, email_key: &str, user_id: Uuid) -> RepoResult<TransactWriteItem> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(email_pk(email_key), EMAIL_SK)))
            .condition_expression("#user_id = :user_id")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_values(":user_id", s(user_id.to_string()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    fn key(pk: String, sk: &str) -> Attrs {
        HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn user_pk(id: Uuid) -> String {
    format!("USER#{id}")
}
const USER_SK: &str = "USER";
fn email_pk(key: &str) -> String {
    format!("EMAIL#{key}")
}
const EMAIL_SK: &str = "EMAIL";
fn item_sk(id: Uuid) -> String {
    format!("ITEM#{id}")
}
const ITEM_PREFIX: &str = "ITEM#";
/// The owner pointer of an item lives at `ITEM#<id>` / `OWNER`, so a superuser's lookup by id
/// alone is a consistent GetItem (an index would be eventually consistent).
const OWNER_SK: &str = "OWNER";
fn family_sk(id: Uuid) -> String {
    format!("FAMILY#{id}")
}
const FAMILY_PREFIX: &str = "FAMILY#";
fn refresh_sk(hash: &str) -> String {
    format!("REFRESH#{hash}")
}
const REFRESH_PREFIX: &str = "REFRESH#";
fn attempts_pk(key: &str) -> String {
    format!("LOGIN#{key}")
}
const ATTEMPTS_SK: &str = "ATTEMPTS";
const USERS_INDEX_PK: &str = "USERS";
/// Data migrations live in one partition: `MIGRATION#<id>` records and the `LEASE`.
const MIGRATIONS_PK: &str = "MIGRATIONS";
const MIGRATION_PREFIX: &str = "MIGRATION#";
const LEASE_SK: &str = "LEASE";

/// Epoch seconds for DynamoDB's TTL, which deletes the record some time after it passes; code
/// checks expiry itself, since TTL deletion can lag by days.
fn ttl(at: DateTime<Utc>) -> AttributeValue {
    n(at.timestamp())
}

async fn backoff(attempt: u32) {
    // Jitter from the random bits of a v4 UUID keeps racing requests from retrying in lockstep.
    let jitter = (Uuid::new_v4().as_u128() % 20) as u64;
    tokio::time::sleep(StdDuration::from_millis(5 * u64::from(attempt) + jitter)).await;
}

/// Error codes with which DynamoDB refused a request without applying it.
const REFUSED_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
];

/// How the SDK may resend a single-item write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resend {
    /// A write that must not apply twice (`ADD`, a counter's conditional put): resent only when
    /// DynamoDB refused it. After a timeout, a lost response or a 500 it may have landed, and
    /// sending it again would bump a version or a counter twice; the client gets a 503 instead.
    /// (Transactions need no such care: the SDK gives each an idempotency token.)
    OnlyRefused,
    /// A write that may apply twice (an unconditional delete): the SDK's own retries, and also
    /// after a conflict with a transaction on the same item, which the SDK does not retry.
    Idempotent,
}

#[derive(Debug)]
struct ResendClassifier<E>(Resend, std::marker::PhantomData<fn() -> E>);

impl<E> ClassifyRetry for ResendClassifier<E>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error.as_operation_error().and_then(|e| e.downcast_ref::<E>()).and_then(|e| e.code());
        match (self.0, code) {
            (_, Some("TransactionConflictException")) => RetryAction::throttling_error(),
            (Resend::OnlyRefused, Some(c)) if REFUSED_CODES.contains(&c) => RetryAction::throttling_error(),
            (Resend::OnlyRefused, _) => RetryAction::RetryForbidden,
            (Resend::Idempotent, _) => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "ResendClassifier"
    }
}

fn resend<E>(mode: Resend) -> aws_sdk_dynamodb::config::Builder
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_sdk_dynamodb::config::Builder::default()
        .retry_classifier(ResendClassifier::<E>(mode, std::marker::PhantomData))
}

fn build_error(e: impl std::fmt::Display) -> RepoError {
    RepoError::Internal(format!("building a DynamoDB request: {e}"))
}

/// Cancellation reasons of a transaction that wrote nothing and may simply be tried again.
const TRANSIENT_CANCELLATIONS: &[&str] =
    &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    "TransactionInProgressException",
    "TransactionConflictException",
];

fn sdk_error<E, R>(op: &str, err: SdkError<E, R>) -> RepoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        _ => false,
    };
    let message = format!("{op}: {}", DisplayErrorContext(&err));
    if transient { RepoError::Unavailable(message) } else { RepoError::Internal(message) }
}

fn corrupt(what: &str) -> RepoError {
    RepoError::Internal(format!("malformed record: {what}"))
}

fn get_s<'a>(item: &'a Attrs, name: &str) -> RepoResult<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str).ok_or_else(|| corrupt(name))
}

fn get_opt_s(item: &Attrs, name: &str) -> Option<String> {
    item.get(name).and_then(|v| v.as_s().ok()).cloned()
}

fn get_n<T: std::str::FromStr>(item: &Attrs, name: &str) -> RepoResult<T> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).ok_or_else(|| corrupt(name))
}

fn get_bool(item: &Attrs, name: &str) -> RepoResult<bool> {
    item.get(name).and_then(|v| v.as_bool().ok()).copied().ok_or_else(|| corrupt(name))
}

fn get_uuid(item: &Attrs, name: &str) -> RepoResult<Uuid> {
    get_s(item, name)?.parse().map_err(|_| corrupt(name))
}

fn get_time(item: &Attrs, name: &str) -> RepoResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(get_s(item, name)?).map(|t| t.with_timezone(&Utc)).map_err(|_| corrupt(name))
}

fn get_micros(item: &Attrs, name: &str) -> RepoResult<DateTime<Utc>> {
    DateTime::from_timestamp_micros(get_n(item, name)?).ok_or_else(|| corrupt(name))
}

fn time(t: &DateTime<Utc>) -> AttributeValue {
    s(crate::deps::format_timestamp(t))
}

fn user_to_item(u: &UserRecord) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(u.id))),
        (SK.to_owned(), s(USER_SK)),
        (GSI1_PK.to_owned(), s(USERS_INDEX_PK)),
        (GSI1_SK.to_owned(), s(u.id.to_string())),
        ("type".to_owned(), s("user")),
        ("id".to_owned(), s(u.id.to_string())),
        ("email".to_owned(), s(u.email.as_str())),
        ("email_key".to_owned(), s(u.email.key())),
        ("password_hash".to_owned(), s(&u.password_hash)),
        ("is_active".to_owned(), AttributeValue::Bool(u.is_active)),
        ("is_superuser".to_owned(), AttributeValue::Bool(u.is_superuser)),
        ("created_at".to_owned(), time(&u.created_at)),
        ("updated_at".to_owned(), time(&u.updated_at)),
    ]);
    if let Some(name) = &u.full_name {
        item.insert("full_name".to_owned(), s(name));
    }
    item
}

fn user_from_item(item: &Attrs) -> RepoResult<UserRecord> {
    Ok(UserRecord {
        id: get_uuid(item, "id")?,
        email: Email::from_trusted(get_s(item, "email")?.to_owned()),
        full_name: get_opt_s(item, "full_name"),
        password_hash: get_s(item, "password_hash")?.to_owned(),
        is_active: get_bool(item, "is_active")?,
        is_superuser: get_bool(item, "is_superuser")?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
    })
}

fn reservation(email_key: &str, user_id: Uuid) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(email_pk(email_key))),
        (SK.to_owned(), s(EMAIL_SK)),
        ("type".to_owned(), s("email")),
        ("user_id".to_owned(), s(user_id.to_string())),
    ])
}

fn item_to_attrs(i: &ItemRecord) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(i.owner_id))),
        (SK.to_owned(), s(item_sk(i.id))),
        ("type".to_owned(), s("item")),
        ("id".to_owned(), s(i.id.to_string())),
        ("owner_id".to_owned(), s(i.owner_id.to_string())),
        ("title".to_owned(), s(&i.title)),
        ("version".to_owned(), n(i.version)),
        ("created_at".to_owned(), time(&i.created_at)),
        ("updated_at".to_owned(), time(&i.updated_at)),
    ]);
    if let Some(d) = &i.description {
        item.insert("description".to_owned(), s(d));
    }
    item
}

fn owner_pointer(i: &ItemRecord) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(item_sk(i.id))),
        (SK.to_owned(), s(OWNER_SK)),
        ("type".to_owned(), s("item_owner")),
        ("owner_id".to_owned(), s(i.owner_id.to_string())),
    ])
}

fn item_from_attrs(item: &Attrs) -> RepoResult<ItemRecord> {
    Ok(ItemRecord {
        id: get_uuid(item, "id")?,
        owner_id: get_uuid(item, "owner_id")?,
        title: get_s(item, "title")?.to_owned(),
        description: get_opt_s(item, "description"),
        version: get_n(item, "version")?,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
    })
}

fn refresh_to_item(r: &RefreshRecord) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(user_pk(r.user_id))),
        (SK.to_owned(), s(refresh_sk(&r.token_hash))),
        ("type".to_owned(), s("refresh_token")),
        ("user_id".to_owned(), s(r.user_id.to_string())),
        ("family_id".to_owned(), s(r.family_id.to_string())),
        ("issued_at".to_owned(), time(&r.issued_at)),
        ("expires_at_us".to_owned(), n(r.expires_at.timestamp_micros())),
        ("used".to_owned(), AttributeValue::Bool(r.used)),
        (TTL.to_owned(), ttl(r.expires_at)),
    ])
}

fn refresh_from_item(hash: &str, item: &Attrs) -> RepoResult<RefreshRecord> {
    Ok(RefreshRecord {
        token_hash: hash.to_owned(),
        user_id: get_uuid(item, "user_id")?,
        family_id: get_uuid(item, "family_id")?,
        issued_at: get_time(item, "issued_at")?,
        expires_at: get_micros(item, "expires_at_us")?,
        used: get_bool(item, "used")?,
    })
}

fn family_to_item(user_id: Uuid, family_id: Uuid, expires_at: DateTime<Utc>) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(user_pk(user_id))),
        (SK.to_owned(), s(family_sk(family_id))),
        ("type".to_owned(), s("token_family")),
        ("expires_at_us".to_owned(), n(expires_at.timestamp_micros())),
        (TTL.to_owned(), ttl(expires_at)),
    ])
}

#[async_trait]
impl UserRepo for DynamoStore {
    async fn create_user(&self, user: &UserRecord) -> RepoResult<CreateUser> {
        let cond = Some("attribute_not_exists(#pk)");
        let actions = vec![
            self.put(user_to_item(user), cond)?,
            self.put(reservation(&user.email.key(), user.id), cond)?,
        ];
        Ok(match self.transact(actions).await? {
            None => CreateUser::Created,
            Some(_) => CreateUser::EmailTaken,
        })
    }

    async fn get_user(&self, id: Uuid) -> RepoResult<Option<UserRecord>> {
        self.get(user_pk(id), USER_SK).await?.as_ref().map(user_from_item).transpose()
    }

    async fn find_user_by_email(&self, email_key: &str) -> RepoResult<Option<UserRecord>> {
        let Some(reservation) = self.get(email_pk(email_key), EMAIL_SK).await? else {
            return Ok(None);
        };
        self.get_user(get_uuid(&reservation, "user_id")?).await
    }

    async fn update_user(
        &self,
        id: Uuid,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<UpdateUser> {
        let Some(current) = self.get_user(id).await? else {
            return Ok(UpdateUser::NotFound);
        };
        let mut sets = vec!["#updated_at = :updated_at"];
        let mut removes = vec![];
        let mut values: Attrs = HashMap::from([(":updated_at".to_owned(), time(&now))]);
        let mut names: HashMap<String, String> = HashMap::from([
            ("#pk".to_owned(), PK.to_owned()),
            ("#updated_at".to_owned(), "updated_at".to_owned()),
        ]);
        let mut name = |placeholder: &str, attribute: &str| {
            names.insert(placeholder.to_owned(), attribute.to_owned());
        };
        if let Some(email) = &changes.email {
            sets.extend(["#email = :email", "#email_key = :email_key"]);
            name("#email", "email");
            name("#email_key", "email_key");
            values.insert(":email".into(), s(email.as_str()));
            values.insert(":email_key".into(), s(email.key()));
        }
        match &changes.full_name {
            Patch::Set(Some(full_name)) => {
                sets.push("#full_name = :full_name");
                values.insert(":full_name".into(), s(full_name));
                name("#full_name", "full_name");
            }
            Patch::Set(None) => {
                removes.push("#full_name");
                name("#full_name", "full_name");
            }
            Patch::Absent => {}
        }
        if let Some(hash) = &changes.password_hash {
            sets.push("#password_hash = :password_hash");
            values.insert(":password_hash".into(), s(hash));
            name("#password_hash", "password_hash");
        }
        if let Some(active) = changes.is_active {
            sets.push("#is_active = :is_active");
            values.insert(":is_active".into(), AttributeValue::Bool(active));
            name("#is_active", "is_active");
        }
        if let Some(superuser) = changes.is_superuser {
            sets.push("#is_superuser = :is_superuser");
            values.insert(":is_superuser".into(), AttributeValue::Bool(superuser));
            name("#is_superuser", "is_superuser");
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        // The update is conditional on the email we read, so a concurrent email change cannot
        // leave the reservation pointing at an address the user no longer has.
        values.insert(":current_email_key".into(), s(current.email.key()));
        names.insert("#current_email_key".into(), "email_key".into());
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(id), USER_SK)))
            .update_expression(expression)
            .condition_expression("attribute_exists(#pk) AND #current_email_key = :current_email_key")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)?;
        let mut actions = vec![TransactWriteItem::builder().update(update).build()];
        let moving_email = changes.email.as_ref().filter(|e| e.key() != current.email.key());
        if let Some(email) = moving_email {
            actions.push(self.put(reservation(&email.key(), id), Some("attribute_not_exists(#pk)"))?);
            actions.push(self.release_email(&current.email.key(), id)?);
        }
        match self.transact(actions).await? {
            None => {}
            Some(codes) if codes.get(1).is_some_and(|c| c == "ConditionalCheckFailed") => {
                return Ok(UpdateUser::EmailTaken);
            }
            Some(_) => {
                // The user was deleted or changed its email concurrently: report what is now true.
                return match self.get_user(id).await? {
                    None => Ok(UpdateUser::NotFound),
                    Some(_) => Err(RepoError::Unavailable("user changed concurrently".into())),
                };
            }
        }
        self.get_user(id).await?.map(UpdateUser::Updated).map_or(Ok(UpdateUser::NotFound), Ok)
    }

    async fn delete_user(&self, id: Uuid) -> RepoResult<bool> {
        // Children first, then the user and its reservation in one transaction, then one more
        // sweep for anything created meanwhile (item creation is conditional on the user, so
        // nothing can be added after the transaction). Retrying after a failure completes it.
        self.delete_owned(id).await?;
        for _ in 0..TRANSACTION_ATTEMPTS {
            let Some(user) = self.get_user(id).await? else {
                return Ok(false);
            };
            let delete_user = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(Self::key(user_pk(id), USER_SK)))
                .condition_expression("attribute_exists(#pk) AND #email_key = :email_key")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#email_key", "email_key")
                .expression_attribute_values(":email_key", s(user.email.key()))
                .build()
                .map_err(build_error)?;
            let actions = vec![
                TransactWriteItem::builder().delete(delete_user).build(),
                self.release_email(&user.email.key(), id)?,
            ];
            if self.transact(actions).await?.is_none() {
                self.delete_owned(id).await?;
                return Ok(true);
            }
            // The user changed its email (or was deleted) since we read it: read it again.
        }
        Err(RepoError::Unavailable("user kept changing while being deleted".into()))
    }

    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>> {
        let start = after.map(|id| {
            HashMap::from([
                (PK.to_owned(), s(user_pk(id))),
                (SK.to_owned(), s(USER_SK)),
                (GSI1_PK.to_owned(), s(USERS_INDEX_PK)),
                (GSI1_SK.to_owned(), s(id.to_string())),
            ])
        });
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI1_PK)
            .expression_attribute_values(":pk", s(USERS_INDEX_PK))
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records = out.items().iter().map(user_from_item).collect::<RepoResult<Vec<_>>>()?;
        Ok(listing(records, limit))
    }
}

impl DynamoStore {
    /// Deletes everything a user owns but the user record: the owner pointers of its items, then
    /// its items, token families and refresh tokens. Pointers go first, so a failure in between leaves items that
    /// the next attempt finds (by their partition) and completes; never a pointer to nothing.
    async fn delete_owned(&self, id: Uuid) -> RepoResult<()> {
        let items = self.partition_keys(id, ITEM_PREFIX).await?;
        let pointers = items
            .iter()
            .map(|key| {
                let sk = get_s(key, SK)?;
                Ok(Self::key(sk.to_owned(), OWNER_SK))
            })
            .collect::<RepoResult<Vec<_>>>()?;
        self.delete_keys(pointers).await?;
        let mut keys = items;
        keys.extend(self.partition_keys(id, FAMILY_PREFIX).await?);
        keys.extend(self.partition_keys(id, REFRESH_PREFIX).await?);
        self.delete_keys(keys).await
    }
}

#[async_trait]
impl ItemRepo for DynamoStore {
    async fn create_item(&self, item: &ItemRecord) -> RepoResult<bool> {
        let owner_exists = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(item.owner_id), USER_SK)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().condition_check(owner_exists).build(),
            self.put(item_to_attrs(item), Some("attribute_not_exists(#pk)"))?,
            self.put(owner_pointer(item), Some("attribute_not_exists(#pk)"))?,
        ];
        Ok(self.transact(actions).await?.is_none())
    }

    async fn get_item(&self, owner_id: Uuid, id: Uuid) -> RepoResult<Option<ItemRecord>> {
        self.get(user_pk(owner_id), &item_sk(id)).await?.as_ref().map(item_from_attrs).transpose()
    }

    async fn find_item_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>> {
        self.get(item_sk(id), OWNER_SK).await?.map(|pointer| get_uuid(&pointer, "owner_id")).transpose()
    }

    async fn update_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        changes: &ItemChanges,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<ItemRecord>> {
        // One UpdateItem: `ADD version 1` is atomic, so blind concurrent updates never lose a
        // write and each bumps the version by exactly one; If-Match adds a condition on it.
        let mut sets = vec!["#updated_at = :updated_at"];
        let mut expression_tail = String::new();
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(owner_id)))
            .key(SK, s(item_sk(id)))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#version", "version")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":updated_at", time(&now));
        if let Some(title) = &changes.title {
            sets.push("#title = :title");
            request = request
                .expression_attribute_names("#title", "title")
                .expression_attribute_values(":title", s(title));
        }
        match &changes.description {
            Patch::Set(Some(d)) => {
                sets.push("#description = :description");
                request = request
                    .expression_attribute_names("#description", "description")
                    .expression_attribute_values(":description", s(d));
            }
            Patch::Set(None) => {
                expression_tail = " REMOVE #description".to_owned();
                request = request.expression_attribute_names("#description", "description");
            }
            Patch::Absent => {}
        }
        let mut condition = "attribute_exists(#pk)".to_owned();
        if let Some(v) = expected_version {
            condition.push_str(" AND #version = :expected");
            request = request.expression_attribute_values(":expected", n(v));
        }
        let result = request
            .update_expression(format!("SET {} ADD #version :one{expression_tail}", sets.join(", ")))
            .condition_expression(condition)
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .config_override(resend::<UpdateItemError>(Resend::OnlyRefused))
            .send()
            .await;
        match result {
            Ok(out) => {
                let attrs = out.attributes.ok_or_else(|| corrupt("UpdateItem returned nothing"))?;
                Ok(Conditional::Done(item_from_attrs(&attrs)?))
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

    async fn delete_item(
        &self,
        owner_id: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        // The item and its owner pointer go together. As a transaction the delete carries an
        // idempotency token, so the SDK may safely resend it.
        let mut condition = "attribute_exists(#pk)".to_owned();
        let mut delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(owner_id), &item_sk(id))))
            .expression_attribute_names("#pk", PK);
        if let Some(v) = expected_version {
            condition.push_str(" AND #version = :expected");
            delete = delete
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":expected", n(v));
        }
        let delete_item = delete.condition_expression(condition).build().map_err(build_error)?;
        let delete_pointer = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(item_sk(id), OWNER_SK)))
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().delete(delete_item).build(),
            TransactWriteItem::builder().delete(delete_pointer).build(),
        ];
        match self.transact(actions).await? {
            None => Ok(Conditional::Done(())),
            // Gone, or at another version: what is true now decides the answer.
            Some(_) => Ok(match self.get_item(owner_id, id).await? {
                Some(_) => Conditional::VersionMismatch,
                None => Conditional::NotFound,
            }),
        }
    }

    async fn list_items(
        &self,
        owner_id: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<ItemRecord>> {
        let start = before.map(|id| Self::key(user_pk(owner_id), &item_sk(id)));
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(user_pk(owner_id)))
            .expression_attribute_values(":prefix", s(ITEM_PREFIX))
            .scan_index_forward(false)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error("Query", e))?;
        let records = out.items().iter().map(item_from_attrs).collect::<RepoResult<Vec<_>>>()?;
        Ok(listing(records, limit))
    }
}

#[async_trait]
impl TokenRepo for DynamoStore {
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<()> {
        let actions = vec![
            self.put(family_to_item(first.user_id, first.family_id, first.expires_at), None)?,
            self.put(refresh_to_item(first), Some("attribute_not_exists(#pk)"))?,
        ];
        match self.transact(actions).await? {
            None => Ok(()),
            Some(_) => Err(RepoError::Internal("refresh token hash collision".into())),
        }
    }

    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>> {
        self.get(user_pk(user_id), &refresh_sk(token_hash))
            .await?
            .as_ref()
            .map(|item| refresh_from_item(token_hash, item))
            .transpose()
    }

    async fn rotate_refresh(
        &self,
        old: &RefreshRecord,
        new: &RefreshRecord,
        now: DateTime<Utc>,
    ) -> RepoResult<Rotation> {
        let mark_used = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(old.user_id), &refresh_sk(&old.token_hash))))
            .update_expression("SET #used = :true")
            .condition_expression("attribute_exists(#pk) AND #used = :false")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#used", "used")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .map_err(build_error)?;
        let extend_family = Update::builder()
            .table_name(&self.table)
            .set_key(Some(Self::key(user_pk(old.user_id), &family_sk(old.family_id))))
            .update_expression("SET #exp = :exp, #ttl = :ttl")
            .condition_expression("attribute_exists(#pk) AND #exp > :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#exp", "expires_at_us")
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":exp", n(new.expires_at.timestamp_micros()))
            .expression_attribute_values(":ttl", ttl(new.expires_at))
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().update(mark_used).build(),
            TransactWriteItem::builder().update(extend_family).build(),
            self.put(refresh_to_item(new), Some("attribute_not_exists(#pk)"))?,
        ];
        Ok(match self.transact(actions).await? {
            None => Rotation::Rotated,
            Some(codes) if codes.first().is_some_and(|c| c == "ConditionalCheckFailed") => {
                Rotation::AlreadyUsed
            }
            Some(_) => Rotation::FamilyGone,
        })
    }

    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user_id)))
            .key(SK, s(family_sk(family_id)))
            .customize()
            .config_override(resend::<DeleteItemError>(Resend::Idempotent))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(())
    }

    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()> {
        self.delete_keys(self.partition_keys(user_id, FAMILY_PREFIX).await?).await
    }
}

#[async_trait]
impl ThrottleRepo for DynamoStore {
    async fn count_attempt(
        &self,
        email_key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> RepoResult<AttemptWindow> {
        let cutoff = (now - Duration::seconds(window_secs)).timestamp_micros();
        for _ in 0..TRANSACTION_ATTEMPTS {
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
                .item("type", s("login_attempts"))
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

fn migration_to_item(m: &MigrationRecord) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(MIGRATIONS_PK)),
        (SK.to_owned(), s(format!("{MIGRATION_PREFIX}{}", m.id))),
        ("type".to_owned(), s("migration")),
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
            .set_key(Some(Self::key(MIGRATIONS_PK.to_owned(), LEASE_SK)))
            .condition_expression("#holder = :holder AND #until > :now")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#until", "until_us")
            .expression_attribute_values(":holder", s(holder.to_string()))
            .expression_attribute_values(":now", n(now.timestamp_micros()))
            .build()
            .map_err(build_error)?;
        let actions = vec![
            TransactWriteItem::builder().condition_check(lease_held).build(),
            self.put(migration_to_item(record), None)?,
        ];
        Ok(self.transact(actions).await?.is_none())
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
            .item("type", s("migration_lease"))
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
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(false)
            }
            Err(err) => Err(sdk_error("PutItem", err)),
        }
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
        match result {
            Ok(_) => Ok(()),
            // Someone else's lease (ours ran out and was taken), or none: nothing of ours to release.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Ok(())
            }
            Err(err) => Err(sdk_error("DeleteItem", err)),
        }
    }
}
