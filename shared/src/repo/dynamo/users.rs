//! Users in DynamoDB: the user record in its own partition (and in `GSI2`, and `GSI1` of before,
//! for the listing), and the email reservation that makes an address unique, moved and released
//! in the same transactions as the user.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Update};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{Attrs, get_bool, get_opt_n, get_opt_s, get_s, get_time, get_uuid, key, n, s, time};
use super::mail::outbox_item;
use super::purge::purge_item;
use super::retry::{ATTEMPTS, build_error};
use super::transact::Transaction;
use crate::domain::{Email, Patch};
use crate::repo::keys::{
    EMAIL_SK, EMAIL_TYPE, GSI1_PK, GSI1_SK, GSI2_PK, GSI2_SK, PK, SK, USER_SK, USER_TYPE, USERS_INDEX_PK,
    email_pk, user_pk, users_shard_pk,
};
use crate::repo::{
    Completion, CreateUser, Listing, OutboxMail, RepoError, RepoResult, UpdateUser, UserChanges, UserRecord,
    UserRepo, lock_passed,
};

/// A user's record. `of_before`: also in `GSI1`, the users index of before, which copies every
/// attribute (only while the listing still reads it: until `0003_users_index` is applied).
fn user_to_item(u: &UserRecord, of_before: bool) -> Attrs {
    let mut item = HashMap::from([
        (PK.to_owned(), s(user_pk(u.id))),
        (SK.to_owned(), s(USER_SK)),
        (GSI2_PK.to_owned(), s(users_shard_pk(u.id))),
        (GSI2_SK.to_owned(), s(u.id.to_string())),
        ("type".to_owned(), s(USER_TYPE)),
        ("id".to_owned(), s(u.id.to_string())),
        ("email".to_owned(), s(u.email.as_str())),
        ("email_key".to_owned(), s(u.email.key())),
        ("password_hash".to_owned(), s(&u.password_hash)),
        ("is_active".to_owned(), AttributeValue::Bool(u.is_active)),
        ("is_superuser".to_owned(), AttributeValue::Bool(u.is_superuser)),
        (CREDENTIAL_VERSION.to_owned(), n(u.credential_version)),
        (EMAIL_VERIFIED.to_owned(), AttributeValue::Bool(u.email_verified)),
        ("created_at".to_owned(), time(&u.created_at)),
        ("updated_at".to_owned(), time(&u.updated_at)),
    ]);
    if let Some(name) = &u.full_name {
        item.insert("full_name".to_owned(), s(name));
    }
    if of_before {
        item.insert(GSI1_PK.to_owned(), s(USERS_INDEX_PK));
        item.insert(GSI1_SK.to_owned(), s(u.id.to_string()));
    }
    item
}

pub(super) fn user_from_item(item: &Attrs) -> RepoResult<UserRecord> {
    Ok(UserRecord {
        id: get_uuid(item, "id")?,
        email: Email::from_stored(get_s(item, "email")?.to_owned(), get_s(item, "email_key")?.to_owned()),
        full_name: get_opt_s(item, "full_name"),
        password_hash: get_s(item, "password_hash")?.to_owned(),
        is_active: get_bool(item, "is_active")?,
        is_superuser: get_bool(item, "is_superuser")?,
        // Users written before credential versions existed are at their first.
        credential_version: get_opt_n(item, CREDENTIAL_VERSION)?.unwrap_or(0),
        // Users written before verification existed count as verified (API.md).
        email_verified: match item.get(EMAIL_VERIFIED) {
            None => true,
            Some(_) => get_bool(item, EMAIL_VERIFIED)?,
        },
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
    })
}

fn reservation(email_key: &str, user_id: Uuid) -> Attrs {
    HashMap::from([
        (PK.to_owned(), s(email_pk(email_key))),
        (SK.to_owned(), s(EMAIL_SK)),
        ("type".to_owned(), s(EMAIL_TYPE)),
        ("user_id".to_owned(), s(user_id.to_string())),
    ])
}

const NEW: Option<&str> = Some("attribute_not_exists(#pk)");

/// The user's attribute that says whether its address is proved ([`UserRecord::email_verified`]).
const EMAIL_VERIFIED: &str = "email_verified";

/// The user's attribute that counts its password changes ([`UserRecord::credential_version`]).
pub(super) const CREDENTIAL_VERSION: &str = "credential_version";

/// The condition that a user record has `version` of its credentials (`#cv`, `:cv`): a user
/// written before versions existed has none, which is version 0.
pub(super) fn has_credential_version(version: u64) -> &'static str {
    if version == 0 { "(attribute_not_exists(#cv) OR #cv = :cv)" } else { "#cv = :cv" }
}

/// The actions of the users' transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    User,
    NewReservation,
    /// That no account holds the address under a key of before v1.1 (`Email::legacy_keys`).
    LegacyReservation,
    OldReservation,
    Purge,
    /// That the users index of before is still the listing's (`0003_users_index` not applied).
    IndexOfBefore,
    /// A message to send, asked for by the change.
    Mail,
    /// The request's idempotency answer, kept with the work.
    Completion,
}

impl DynamoStore {
    /// A check, in a transaction, that the user exists: what a record written into a user's
    /// partition is conditional on, so that none outlives the delete cascade.
    pub(super) fn user_exists(&self, user_id: Uuid) -> RepoResult<ConditionCheck> {
        ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(user_id), USER_SK)))
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .build()
            .map_err(build_error)
    }

    /// Adds to `transaction` a check that no account holds an address under one of `legacy`,
    /// its keys of before v1.1 (none does once the migration `0002_normal_emails` has run; until
    /// then, one may).
    fn no_legacy_reservation<'a>(
        &'a self,
        mut transaction: Transaction<'a, Step>,
        legacy: Vec<String>,
    ) -> RepoResult<Transaction<'a, Step>> {
        for legacy in legacy {
            let check = ConditionCheck::builder()
                .table_name(&self.table)
                .set_key(Some(key(email_pk(&legacy), EMAIL_SK)))
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK)
                .build()
                .map_err(build_error)?;
            transaction = transaction.check(Step::LegacyReservation, check);
        }
        Ok(transaction)
    }

    /// Deletes an email reservation, only while it still belongs to `user_id`.
    fn release_email(&self, email_key: &str, user_id: Uuid) -> RepoResult<Delete> {
        Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key(email_pk(email_key), EMAIL_SK)))
            .condition_expression("#user_id = :user_id")
            .expression_attribute_names("#user_id", "user_id")
            .expression_attribute_values(":user_id", s(user_id.to_string()))
            .build()
            .map_err(build_error)
    }

    /// The update of a user's attributes, conditional on the email it was read with, so a
    /// concurrent email change cannot leave the reservation pointing at an address the user no
    /// longer has.
    pub(super) fn user_update(
        &self,
        current: &UserRecord,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<Update> {
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
            // A new password is a new credential version, in the same write.
            sets.extend(["#password_hash = :password_hash", "#cv = :next_cv"]);
            values.insert(":password_hash".into(), s(hash));
            values.insert(":next_cv".into(), n(current.credential_version + 1));
            name("#password_hash", "password_hash");
            name("#cv", CREDENTIAL_VERSION);
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
        if let Some(verified) = changes.email_verified {
            sets.push("#email_verified = :email_verified");
            values.insert(":email_verified".into(), AttributeValue::Bool(verified));
            name("#email_verified", EMAIL_VERIFIED);
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        values.insert(":current_email_key".into(), s(current.email.key()));
        names.insert("#current_email_key".into(), "email_key".into());
        // And on the credential version it was read with (which is the one the change was
        // checked against, when it names one): two password changes at once cannot both move
        // from one version to the same next one, and a change checked against a password that
        // has since been replaced is refused.
        let mut condition = "attribute_exists(#pk) AND #current_email_key = :current_email_key".to_owned();
        if changes.if_active {
            condition.push_str(" AND #active_now = :active_now");
            values.insert(":active_now".into(), AttributeValue::Bool(true));
            names.insert("#active_now".into(), "is_active".into());
        }
        if changes.password_hash.is_some() || changes.if_credential_version.is_some() {
            condition.push_str(&format!(" AND {}", has_credential_version(current.credential_version)));
            values.insert(":cv".into(), n(current.credential_version));
            names.insert("#cv".into(), CREDENTIAL_VERSION.into());
        }
        Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(user_pk(current.id), USER_SK)))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .build()
            .map_err(build_error)
    }
}

#[async_trait]
impl UserRepo for DynamoStore {
    async fn create_user_with(
        &self,
        user: &UserRecord,
        mail: &[OutboxMail],
        completion: Option<&Completion>,
    ) -> RepoResult<CreateUser> {
        // Into GSI1, the users index of before, only while the listing still reads it: on the
        // condition, in the same transaction, that `0003_users_index` is not applied. Once it is,
        // no user is ever put there again (and `0004` has taken out those that were).
        let mut of_before = !self.users_index_ready.load(Ordering::Relaxed);
        for _ in 0..2 {
            let mut transaction = Transaction::new(self)
                .put(Step::User, user_to_item(user, of_before), NEW)?
                .put(Step::NewReservation, reservation(&user.email.key(), user.id), NEW)?
                .complete(Step::Completion, completion)?;
            for mail in mail {
                transaction = transaction.put(Step::Mail, outbox_item(mail), None)?;
            }
            if of_before {
                transaction = transaction.check(Step::IndexOfBefore, self.users_index_not_ready()?);
            }
            let transaction = self.no_legacy_reservation(transaction, user.email.legacy_keys())?;
            match self.commit(transaction).await? {
                Ok(()) => return Ok(CreateUser::Created),
                Err(refused) if refused.by(Step::IndexOfBefore) && refused.only(Step::IndexOfBefore) => {
                    self.users_index_ready.store(true, Ordering::Relaxed);
                    of_before = false;
                }
                Err(refused) if refused.by(Step::Completion) => return Err(lock_passed()),
                Err(_) => return Ok(CreateUser::EmailTaken),
            }
        }
        Err(RepoError::Internal("the users index's state changed back".into()))
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
        if !changes.expected_of(&current) {
            return Ok(UpdateUser::Changed);
        }
        let mut transaction =
            Transaction::new(self).update(Step::User, self.user_update(&current, changes, now)?);
        for mail in &changes.mail {
            transaction = transaction.put(Step::Mail, outbox_item(mail), None)?;
        }
        let moving_email = changes.email.as_ref().filter(|e| e.key() != current.email.key());
        if let Some(email) = moving_email {
            transaction = transaction
                .put(Step::NewReservation, reservation(&email.key(), id), NEW)?
                .delete(Step::OldReservation, self.release_email(&current.email.key(), id)?);
            // (The user's own reservation of before is the one released above, not a holder.)
            let others = email.legacy_keys().into_iter().filter(|k| *k != current.email.key()).collect();
            transaction = self.no_legacy_reservation(transaction, others)?;
        }
        match self.commit(transaction).await? {
            Ok(()) => {}
            Err(refused) if refused.by(Step::NewReservation) || refused.by(Step::LegacyReservation) => {
                return Ok(UpdateUser::EmailTaken);
            }
            Err(_) => {
                // The user was deleted or changed concurrently: report what is now true.
                return match self.get_user(id).await? {
                    None => Ok(UpdateUser::NotFound),
                    Some(now) if !changes.expected_of(&now) => Ok(UpdateUser::Changed),
                    Some(_) => Err(RepoError::Unavailable("user changed concurrently".into())),
                };
            }
        }
        self.get_user(id).await?.map(UpdateUser::Updated).map_or(Ok(UpdateUser::NotFound), Ok)
    }

    async fn delete_user(&self, id: Uuid, now: DateTime<Utc>) -> RepoResult<bool> {
        // The user and its reservation go, and the purge of the rest is recorded, in one
        // transaction: from then on nothing can be added to the partition (writes there are
        // conditional on the user), and the worker deletes what is in it. The time this takes
        // does not depend on what the user owns.
        for _ in 0..ATTEMPTS {
            let Some(user) = self.get_user(id).await? else {
                return Ok(false);
            };
            let delete_user = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(user_pk(id), USER_SK)))
                .condition_expression("attribute_exists(#pk) AND #email_key = :email_key")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#email_key", "email_key")
                .expression_attribute_values(":email_key", s(user.email.key()))
                .build()
                .map_err(build_error)?;
            let transaction = Transaction::new(self)
                .delete(Step::User, delete_user)
                .delete(Step::OldReservation, self.release_email(&user.email.key(), id)?)
                .put(Step::Purge, purge_item(id, now), None)?;
            if self.commit(transaction).await?.is_ok() {
                return Ok(true);
            }
            // The user changed its email (or was deleted) since we read it: read it again.
        }
        Err(RepoError::Unavailable("user kept changing while being deleted".into()))
    }

    async fn users_index_active(&self) -> RepoResult<bool> {
        self.gsi2_active().await
    }

    async fn index_user(&self, id: Uuid) -> RepoResult<()> {
        self.set_index_keys(id, "SET #gpk = :gpk, #gsk = :gsk", true).await
    }

    async fn empty_users_index_of_before(&self) -> RepoResult<u64> {
        self.empty_index_of_before().await
    }

    async fn list_users(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<UserRecord>> {
        if self.users_index_ready().await? {
            self.list_users_by_shard(limit, after).await
        } else {
            self.list_users_of_before(limit, after).await
        }
    }
}
