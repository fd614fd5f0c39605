//! Account mail in DynamoDB: the outbox (`OUTBOX#<n>` / `MAIL#<id>`), whose inserts the table's
//! stream hands to the worker, and each user's live token of a purpose (`USER#<id>` /
//! `MAILTOKEN#<purpose>`), written with a check of the user it is bound to and redeemed in one
//! transaction with the user's change.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_n, get_opt_s, get_s, get_time, get_uuid, key, n, s, time, ttl};
use super::retry::{applied, build_error, sdk_error};
use super::transact::Transaction;
use super::users::{CREDENTIAL_VERSION, has_credential_version};
use crate::repo::UserRepo;
use crate::repo::keys::{
    MAIL_TOKEN, OUTBOX_SHARDS, OUTBOX_TYPE, PK, SK, TTL, USER_SK, outbox_pk, outbox_shard, outbox_sk, user_pk,
};
use crate::repo::{
    Listing, MailKind, MailRepo, MailToken, OutboxMail, RepoError, RepoResult, TokenPurpose, UserChanges,
    UserRecord,
};

/// A message to send, as written in the transaction of the change that asks for it.
pub(super) fn outbox_item(mail: &OutboxMail) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(outbox_pk(mail.id))),
        (SK.to_owned(), s(outbox_sk(mail.id))),
        ("type".to_owned(), s(OUTBOX_TYPE)),
        ("id".to_owned(), s(mail.id.to_string())),
        ("kind".to_owned(), s(mail.kind.as_str())),
        ("email_key".to_owned(), s(&mail.email_key)),
        ("requested_at".to_owned(), time(&mail.requested_at)),
        // A backstop: the worker gives a message up a day after it was asked for; one it could
        // never even read goes by TTL.
        (TTL.to_owned(), ttl(mail.requested_at + chrono::Duration::days(OUTBOX_TTL_DAYS))),
    ]);
    if let Some(new_email) = &mail.new_email {
        item.insert("new_email".to_owned(), s(new_email));
    }
    if mail.admitted {
        item.insert(ADMITTED.to_owned(), AttributeValue::Bool(true));
    }
    if let Some(user) = mail.user_id {
        item.insert("user_id".to_owned(), s(user.to_string()));
    }
    if let Some(to) = &mail.to {
        item.insert("to".to_owned(), s(to));
    }
    item
}

fn outbox_from_item(item: &Attrs) -> RepoResult<OutboxMail> {
    let kind = get_s(item, "kind")?;
    Ok(OutboxMail {
        id: get_uuid(item, "id")?,
        kind: MailKind::parse(kind).ok_or_else(|| RepoError::Corrupt(format!("outbox kind {kind:?}")))?,
        user_id: item.get("user_id").map(|_| get_uuid(item, "user_id")).transpose()?,
        email_key: get_s(item, "email_key")?.to_owned(),
        to: get_opt_s(item, "to"),
        new_email: get_opt_s(item, "new_email"),
        requested_at: get_time(item, "requested_at")?,
        admitted: item.contains_key(ADMITTED),
    })
}

/// Days after its request that an outbox record expires by TTL, whatever became of it.
const OUTBOX_TTL_DAYS: i64 = 7;
/// The outbox record's mark that it was counted against its address's limit.
const ADMITTED: &str = "admitted";

fn token_to_item(token: &MailToken) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(user_pk(token.user_id))),
        (SK.to_owned(), s(MAIL_TOKEN.sk(token.purpose.as_str()))),
        ("type".to_owned(), s(MAIL_TOKEN.name)),
        ("purpose".to_owned(), s(token.purpose.as_str())),
        ("token_hash".to_owned(), s(&token.token_hash)),
        (CREDENTIAL_VERSION.to_owned(), n(token.credential_version)),
        ("email_key".to_owned(), s(&token.email_key)),
        ("expires_at".to_owned(), time(&token.expires_at)),
        (TTL.to_owned(), ttl(token.expires_at)),
    ])
}

fn token_from_item(user_id: Uuid, item: &Attrs) -> RepoResult<MailToken> {
    Ok(MailToken {
        user_id,
        purpose: {
            let purpose = get_s(item, "purpose")?;
            TokenPurpose::parse(purpose)
                .ok_or_else(|| RepoError::Corrupt(format!("token purpose {purpose:?}")))?
        },
        token_hash: get_s(item, "token_hash")?.to_owned(),
        credential_version: get_n(item, CREDENTIAL_VERSION)?,
        email_key: get_s(item, "email_key")?.to_owned(),
        expires_at: get_time(item, "expires_at")?,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    User,
    Token,
    Mail,
}

#[async_trait]
impl MailRepo for DynamoStore {
    async fn enqueue_mail(&self, mail: &OutboxMail) -> RepoResult<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(outbox_item(mail)))
            .send()
            .await
            .map_err(|e| sdk_error("PutItem", e))?;
        Ok(())
    }

    async fn get_mail(&self, id: Uuid) -> RepoResult<Option<OutboxMail>> {
        self.get(outbox_pk(id), &outbox_sk(id)).await?.as_ref().map(outbox_from_item).transpose()
    }

    async fn claim_mail(&self, id: Uuid, until: DateTime<Utc>, now: DateTime<Utc>) -> RepoResult<bool> {
        // A change of the record, which the stream's filter (inserts only) does not hand back.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(outbox_pk(id), &outbox_sk(id))))
            .update_expression("SET #claimed = :until")
            .condition_expression(
                "attribute_exists(#pk) AND (attribute_not_exists(#claimed) OR #claimed <= :now)",
            )
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#claimed", "claimed_until")
            .expression_attribute_values(":until", time(&until))
            .expression_attribute_values(":now", time(&now))
            .send()
            .await;
        applied("UpdateItem", result)
    }

    async fn release_mail(&self, id: Uuid, until: DateTime<Utc>) -> RepoResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(outbox_pk(id), &outbox_sk(id))))
            .update_expression("REMOVE #claimed")
            .condition_expression("#claimed = :until")
            .expression_attribute_names("#claimed", "claimed_until")
            .expression_attribute_values(":until", time(&until))
            .send()
            .await;
        applied("UpdateItem", result).map(drop)
    }

    async fn note_mail_admitted(&self, id: Uuid) -> RepoResult<()> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(outbox_pk(id), &outbox_sk(id))))
            .update_expression("SET #admitted = :true")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#admitted", ADMITTED)
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .send()
            .await;
        applied("UpdateItem", result).map(drop)
    }

    async fn finish_mail(&self, id: Uuid) -> RepoResult<()> {
        self.delete_record(outbox_pk(id), &outbox_sk(id)).await
    }

    async fn pending_mail(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<OutboxMail>> {
        // Whether more follow is decided by what each shard held, not by what could be read: a
        // record skipped below must not end the listing before the records after it.
        let shards = (0..OUTBOX_SHARDS).map(outbox_shard);
        let (items, more) = self.query_shards(shards, "MAIL#", after.map(outbox_sk), limit).await?;
        let mut records = Vec::new();
        for item in &items {
            // One record that cannot be read must not stop every other message: it is named in
            // the log (and expires by TTL); the rest are listed.
            match outbox_from_item(item) {
                Ok(mail) => records.push(mail),
                Err(e) => {
                    let sk = get_s(item, SK).unwrap_or_default();
                    tracing::error!(sk, error = %e, "an outbox record that cannot be read: skipped");
                }
            }
        }
        records.sort_by_key(|m| m.id);
        let mut listing = Listing::of(records, limit);
        listing.more |= more;
        Ok(listing)
    }

    async fn mint_token(&self, token: &MailToken) -> RepoResult<bool> {
        // Bound to the user's credentials and address as they are now: a change of either since
        // the worker read the user records nothing.
        let user = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(token.user_id), USER_SK)))
            .condition_expression(format!(
                "attribute_exists(#pk) AND #email_key = :email_key AND {}",
                has_credential_version(token.credential_version)
            ))
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#email_key", "email_key")
            .expression_attribute_names("#cv", CREDENTIAL_VERSION)
            .expression_attribute_values(":email_key", s(&token.email_key))
            .expression_attribute_values(":cv", n(token.credential_version))
            .build()
            .map_err(build_error)?;
        // No condition on the token: a newer one overwrites (supersedes) the older.
        let transaction =
            Transaction::new(self).check(Step::User, user).put(Step::Token, token_to_item(token), None)?;
        Ok(self.commit(transaction).await?.is_ok())
    }

    async fn get_token(&self, user_id: Uuid, purpose: TokenPurpose) -> RepoResult<Option<MailToken>> {
        let item = self.get(user_pk(user_id), &MAIL_TOKEN.sk(purpose.as_str())).await?;
        item.as_ref().map(|item| token_from_item(user_id, item)).transpose()
    }

    async fn redeem_token(
        &self,
        token: &MailToken,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<UserRecord>> {
        let Some(current) = self.get_user(token.user_id).await? else {
            return Ok(None);
        };
        if !changes.expected_of(&current) {
            return Ok(None);
        }
        // Single use: the token goes, on the condition that it is still the live one, in the
        // same transaction as the change it allows.
        let consume = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(token.user_id), &MAIL_TOKEN.sk(token.purpose.as_str()))))
            .condition_expression("#hash = :hash")
            .expression_attribute_names("#hash", "token_hash")
            .expression_attribute_values(":hash", s(&token.token_hash))
            .build()
            .map_err(build_error)?;
        let mut transaction = Transaction::new(self)
            .delete(Step::Token, consume)
            .update(Step::User, self.user_update(&current, changes, now)?);
        for mail in &changes.mail {
            transaction = transaction.put(Step::Mail, outbox_item(mail), None)?;
        }
        match self.commit(transaction).await? {
            Ok(()) => self.get_user(token.user_id).await,
            Err(_) => Ok(None),
        }
    }
}
