//! Refresh tokens in DynamoDB: each family (`FAMILY#<id>`, its expiry) and each token
//! (`REFRESH#<sha256>`) in the user's partition, so they go with the user.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, ReturnValue, Update};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_bool, get_micros, get_opt_n, get_time, get_uuid, key, n, s, time, ttl};
use super::retry::{Resend, build_error, resend, sdk_error};
use super::transact::Transaction;
use super::users::{CREDENTIAL_VERSION, has_credential_version};
use crate::repo::keys::{FAMILY, PK, REFRESH, SK, TTL, USER_SK, user_pk};
use crate::repo::{NewFamily, RefreshRecord, RepoError, RepoResult, Rotation, TokenRepo};

fn refresh_to_item(r: &RefreshRecord) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(user_pk(r.user_id))),
        (SK.to_owned(), s(REFRESH.sk(&r.token_hash))),
        ("type".to_owned(), s(REFRESH.name)),
        ("user_id".to_owned(), s(r.user_id.to_string())),
        ("family_id".to_owned(), s(r.family_id.to_string())),
        ("issued_at".to_owned(), time(&r.issued_at)),
        ("expires_at_us".to_owned(), n(r.expires_at.timestamp_micros())),
        ("used".to_owned(), AttributeValue::Bool(r.used)),
        (CREDENTIAL_VERSION.to_owned(), n(r.credential_version)),
        ("family_ends_at_us".to_owned(), n(r.family_ends_at.timestamp_micros())),
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
        // Tokens recorded before these existed: of a user's first credentials, and their family
        // ends when they do.
        credential_version: get_opt_n(item, CREDENTIAL_VERSION)?.unwrap_or(0),
        family_ends_at: match item.get("family_ends_at_us") {
            Some(_) => get_micros(item, "family_ends_at_us")?,
            None => get_micros(item, "expires_at_us")?,
        },
    })
}

fn family_to_item(user_id: Uuid, family_id: Uuid, expires_at: DateTime<Utc>) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(user_pk(user_id))),
        (SK.to_owned(), s(FAMILY.sk(family_id))),
        ("type".to_owned(), s(FAMILY.name)),
        ("expires_at_us".to_owned(), n(expires_at.timestamp_micros())),
        (TTL.to_owned(), ttl(expires_at)),
    ])
}

const NEW: Option<&str> = Some("attribute_not_exists(#pk)");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The check that the user still has the credentials the family is bound to.
    User,
    Family,
    MarkUsed,
    NewToken,
}

impl DynamoStore {
    /// A check that the user exists with `credential_version` (and, if `active`, is active).
    fn user_has_credentials(
        &self,
        user_id: Uuid,
        credential_version: u64,
        active: bool,
    ) -> RepoResult<ConditionCheck> {
        let mut condition =
            format!("attribute_exists(#pk) AND {}", has_credential_version(credential_version));
        let mut check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user_id), USER_SK)))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#cv", CREDENTIAL_VERSION)
            .expression_attribute_values(":cv", n(credential_version));
        if active {
            condition.push_str(" AND #active = :true");
            check = check
                .expression_attribute_names("#active", "is_active")
                .expression_attribute_values(":true", AttributeValue::Bool(true));
        }
        check.condition_expression(condition).build().map_err(build_error)
    }
}

#[async_trait]
impl TokenRepo for DynamoStore {
    async fn create_family(&self, first: &RefreshRecord) -> RepoResult<NewFamily> {
        let transaction = Transaction::new(self)
            .check(Step::User, self.user_has_credentials(first.user_id, first.credential_version, true)?)
            .put(Step::Family, family_to_item(first.user_id, first.family_id, first.expires_at), None)?
            .put(Step::NewToken, refresh_to_item(first), NEW)?;
        match self.commit(transaction).await? {
            Ok(()) => Ok(NewFamily::Created),
            Err(refused) if refused.by(Step::User) => Ok(NewFamily::CredentialsChanged),
            Err(_) => Err(RepoError::Internal("refresh token hash collision".into())),
        }
    }

    async fn get_refresh(&self, user_id: Uuid, token_hash: &str) -> RepoResult<Option<RefreshRecord>> {
        self.get(user_pk(user_id), &REFRESH.sk(token_hash))
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
            .set_key(Some(key(user_pk(old.user_id), &REFRESH.sk(&old.token_hash))))
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
            .set_key(Some(key(user_pk(old.user_id), &FAMILY.sk(old.family_id))))
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
        let transaction = Transaction::new(self)
            .update(Step::MarkUsed, mark_used)
            .check(Step::User, self.user_has_credentials(old.user_id, old.credential_version, false)?)
            .update(Step::Family, extend_family)
            .put(Step::NewToken, refresh_to_item(new), NEW)?;
        Ok(match self.commit(transaction).await? {
            Ok(()) => Rotation::Rotated,
            Err(refused) if refused.by(Step::MarkUsed) => Rotation::AlreadyUsed,
            Err(_) => Rotation::FamilyGone,
        })
    }

    async fn revoke_family(&self, user_id: Uuid, family_id: Uuid) -> RepoResult<bool> {
        // What was deleted says whether the family was still there (a resend after a lost
        // answer finds it gone: the first attempt revoked it, and this one says false).
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(user_pk(user_id)))
            .key(SK, s(FAMILY.sk(family_id)))
            .return_values(ReturnValue::AllOld)
            .customize()
            .config_override(resend::<DeleteItemError>(Resend::Idempotent))
            .send()
            .await
            .map_err(|e| sdk_error("DeleteItem", e))?;
        Ok(deleted.attributes.is_some_and(|old| !old.is_empty()))
    }

    async fn revoke_user_tokens(&self, user_id: Uuid) -> RepoResult<()> {
        // Deleting the families is enough: a token of a family that is gone cannot rotate, and
        // the token records expire by TTL.
        self.delete_keys(self.partition_keys(user_id, FAMILY.prefix).await?).await
    }
}
