//! Account mail: the outbox of messages still to send, and the single-use tokens that reset and
//! verify messages carry (API.md, "Auth": password recovery, email verification).
//!
//! A request never sends mail. It writes what must be sent (which message, for which account or
//! typed address; never a token) as an outbox record, in the same transaction as its other
//! writes, and answers. The stream worker then mints the token (recording only its hash), sends
//! the message to the account's stored address and removes the record; a record whose send
//! failed stays, and the sweep sends it again. The plain token exists only in the worker's memory
//! and in the message.
//!
//! A token is recorded in its user's partition under its purpose, so a newer token of a purpose
//! overwrites (supersedes) the older, redeeming one deletes it (single use), and deleting the
//! user deletes it. It is bound to the user's credential version and address when it was minted:
//! a password change or an email change since makes it worthless.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Listing, RepoResult, UserChanges, UserRecord};
use crate::domain::Email;

/// What a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link to set a new password (`/reset-password?token=`), to an account's address.
    ResetPassword,
    /// A link to prove the address (`/verify-email?token=`), to an account's address.
    VerifyEmail,
    /// A notice to an account's address of before that it was changed.
    EmailChanged,
}

impl MailKind {
    pub const ALL: [MailKind; 3] = [Self::ResetPassword, Self::VerifyEmail, Self::EmailChanged];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResetPassword => "reset_password",
            Self::VerifyEmail => "verify_email",
            Self::EmailChanged => "email_changed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The token a message of this kind carries, if any.
    pub fn purpose(self) -> Option<TokenPurpose> {
        match self {
            Self::ResetPassword => Some(TokenPurpose::ResetPassword),
            Self::VerifyEmail => Some(TokenPurpose::VerifyEmail),
            Self::EmailChanged => None,
        }
    }
}

/// What a token is for: each purpose has its own live token per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    ResetPassword,
    VerifyEmail,
}

impl TokenPurpose {
    pub const ALL: [TokenPurpose; 2] = [Self::ResetPassword, Self::VerifyEmail];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResetPassword => "reset_password",
            Self::VerifyEmail => "verify_email",
        }
    }
}

/// A message still to send. It names no token and holds no address a request typed, except
/// the notice of an email change, which goes to the account's address of before (`to`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMail {
    pub id: Uuid,
    pub kind: MailKind,
    /// The account: `None` for a password recovery, which names an address (`email_key`) that
    /// the worker looks up (so that the request costs the same whether an account has it).
    pub user_id: Option<Uuid>,
    /// The key of the address the message is for: the account's when it was requested, or the
    /// one a recovery typed. The worker sends nothing if the account no longer has it.
    pub email_key: String,
    /// The address of before, for [`MailKind::EmailChanged`] only.
    pub to: Option<String>,
    /// The address the account moved to, for [`MailKind::EmailChanged`] only: what the notice
    /// names, as it was when the change was made.
    pub new_email: Option<String>,
    pub requested_at: DateTime<Utc>,
    /// Counted against its address's hourly limit already (by an attempt that then failed to
    /// send): a retry is not counted again.
    pub admitted: bool,
}

impl OutboxMail {
    /// A verification of the address `email` of the user `user_id` (signup, an account made by
    /// a superuser, an email change, a new one asked for).
    pub fn verify(id: Uuid, user_id: Uuid, email: &Email, now: DateTime<Utc>) -> Self {
        Self {
            id,
            kind: MailKind::VerifyEmail,
            user_id: Some(user_id),
            email_key: email.key(),
            to: None,
            new_email: None,
            requested_at: now,
            admitted: false,
        }
    }

    /// The notice to `before`'s address that the account's address changed to `after`.
    pub fn email_changed(id: Uuid, before: &UserRecord, after: &Email, now: DateTime<Utc>) -> Self {
        Self {
            id,
            kind: MailKind::EmailChanged,
            user_id: Some(before.id),
            email_key: before.email.key(),
            to: Some(before.email.as_str().to_owned()),
            new_email: Some(after.as_str().to_owned()),
            requested_at: now,
            admitted: false,
        }
    }

    /// A password recovery for whichever account holds `email_key`, if any.
    pub fn recovery(id: Uuid, email_key: String, now: DateTime<Utc>) -> Self {
        Self {
            id,
            kind: MailKind::ResetPassword,
            user_id: None,
            email_key,
            to: None,
            new_email: None,
            requested_at: now,
            admitted: false,
        }
    }
}

/// A token as recorded: the SHA-256 of the token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailToken {
    pub user_id: Uuid,
    pub purpose: TokenPurpose,
    pub token_hash: String,
    /// The user's credential version and email key when it was minted.
    pub credential_version: u64,
    pub email_key: String,
    pub expires_at: DateTime<Utc>,
}

#[async_trait]
pub trait MailRepo: Send + Sync + std::fmt::Debug {
    /// Writes a message to send (a password recovery; the others are written with the user
    /// changes that ask for them: `UserRepo::create_user_with`, [`UserChanges::mail`]).
    async fn enqueue_mail(&self, mail: &OutboxMail) -> RepoResult<()>;
    /// The message `id`, if it is still to send.
    async fn get_mail(&self, id: Uuid) -> RepoResult<Option<OutboxMail>>;
    /// Claims the message for one sender until `until`, unless another claim on it holds at
    /// `now`: the stream's run and a sweep never send one message at once. False: another
    /// sender has it, or it is gone.
    async fn claim_mail(&self, id: Uuid, until: DateTime<Utc>, now: DateTime<Utc>) -> RepoResult<bool>;
    /// Gives up the claim `until` (if it is still this one): a send that failed for now, which
    /// the stream's retry may take up at once.
    async fn release_mail(&self, id: Uuid, until: DateTime<Utc>) -> RepoResult<()>;
    /// Records that the message was counted against its address's hourly limit.
    async fn note_mail_admitted(&self, id: Uuid) -> RepoResult<()>;
    /// Removes the message: sent, or given up.
    async fn finish_mail(&self, id: Uuid) -> RepoResult<()>;
    /// Messages still to send, in order of id (= request time), after `after`.
    async fn pending_mail(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<OutboxMail>>;
    /// Records `token` as its user's live token of its purpose (superseding any other), in one
    /// step with a check that the user still has the token's credential version and address;
    /// false (nothing recorded) when not.
    async fn mint_token(&self, token: &MailToken) -> RepoResult<bool>;
    /// The user's live token of `purpose`, as recorded (expired or not).
    async fn get_token(&self, user_id: Uuid, purpose: TokenPurpose) -> RepoResult<Option<MailToken>>;
    /// Redeems `token` (as read by `get_token`): in one step, deletes it, on the condition that it
    /// is still the live one, and applies `changes` to its user (which should require the
    /// token's credential version and address). `None`: nothing was done (the token was used,
    /// superseded, or the user changed).
    async fn redeem_token(
        &self,
        token: &MailToken,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<UserRecord>>;
}
