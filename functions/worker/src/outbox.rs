//! Sending the outbox (API.md, password recovery and email verification). A request that asks
//! for a message writes an outbox record in its own transaction and answers; the table's stream
//! hands the insert to the worker, which sends it here: it claims the record (one sender at a
//! time), looks the account up, counts the message against its address's hourly limit, mints the
//! token (recording only its hash), renders the message, sends it to the account's **stored**
//! address, and removes the record. A send that fails for a while leaves the record (and fails
//! the stream record, which Lambda retries; then the sweep sends it); one that can never succeed
//! is logged (never with its token) and removed. The plain token lives only in this function's
//! memory and in the message.
//!
//! A message SES cannot take now is left to the sweep (every 10 minutes, for a day), never
//! answered as a failed stream record: Lambda would retry the whole rest of the batch, purges
//! included, and send it to the on-failure queue. A store that fails is a failed record.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::auth::refresh;
use shared::deps::Clock;
use shared::repo::{
    MailKind, MailRepo, MailToken, OutboxMail, RepoError, ThrottleRepo, TokenPurpose, UserRecord, UserRepo,
};
use tokio::time::Instant;
use uuid::Uuid;

use crate::mail::{Content, MailSettings, Mailer, SendError, render};

/// How long one sender holds a message it claimed: more than a send takes, so two never send it
/// at once, and short enough that a sender that died leaves it to the next run soon.
pub const CLAIM: Duration = Duration::from_secs(60);
/// A message still unsent this long after it was asked for is given up (and logged): its reason
/// is stale, and its token would outlive what the user expects.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long a message must have waited before the sweep sends it: the stream's run, and its
/// retries, are first.
pub const SWEEP_AFTER: Duration = Duration::from_secs(120);

/// What the worker needs to send mail.
#[derive(Debug, Clone)]
pub struct Outbox {
    pub mail: Arc<dyn MailRepo>,
    pub users: Arc<dyn UserRepo>,
    pub throttle: Arc<dyn ThrottleRepo>,
    pub mailer: Arc<dyn Mailer>,
    pub settings: MailSettings,
    pub config: Arc<shared::Config>,
    pub clock: Arc<dyn Clock>,
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    Sent,
    /// Nothing to send: no active account has the address (a recovery), the account changed or
    /// is gone, or its address is verified already. Removed.
    Nothing,
    /// Over its address's hourly limit: removed unsent.
    Throttled,
    /// Refused for good (by SES, or it could not be rendered), or older than
    /// [`GIVE_UP_AFTER`]: logged and removed.
    GivenUp,
    /// Another sender holds it, or it is gone already.
    Elsewhere,
}

/// What a sweep of the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sent: usize,
    pub given_up: usize,
    /// Not sent for now (SES throttling, an outage): left for the next sweep.
    pub retry_later: usize,
}

/// A send that may succeed later: the record stays.
#[derive(Debug, thiserror::Error)]
pub enum Retry {
    #[error(transparent)]
    Store(#[from] RepoError),
    #[error(transparent)]
    Mail(SendError),
}

impl Outbox {
    /// Sends the outbox message `id`, if it is still to send.
    pub async fn send(&self, id: Uuid) -> Result<Sent, Retry> {
        let now = self.clock.now();
        let mail = match self.mail.get_mail(id).await {
            Ok(Some(mail)) => mail,
            Ok(None) => return Ok(Sent::Elsewhere),
            // A record that cannot be read would fail every retry and every sweep: it is named
            // in the log and removed, so that it holds nothing else up. (Only that: a store
            // that refuses the read, a permission missing, removes nothing.)
            Err(RepoError::Corrupt(error)) => {
                tracing::error!(mail_id = %id, error, outcome = "given_up", "an outbox record that cannot be read is removed");
                self.mail.finish_mail(id).await?;
                return Ok(Sent::GivenUp);
            }
            Err(error) => return Err(error.into()),
        };
        if now - mail.requested_at
            > chrono::Duration::from_std(GIVE_UP_AFTER).unwrap_or(chrono::Duration::MAX)
        {
            tracing::error!(mail_id = %id, kind = mail.kind.as_str(), outcome = "given_up", "a message unsent for a day is given up");
            self.mail.finish_mail(id).await?;
            return Ok(Sent::GivenUp);
        }
        let until = now + chrono::Duration::from_std(CLAIM).unwrap_or_default();
        if !self.mail.claim_mail(id, until, now).await? {
            return Ok(Sent::Elsewhere);
        }
        let outcome = self.deliver(&mail, now).await;
        match &outcome {
            Ok(sent) => {
                self.mail.finish_mail(id).await?;
                tracing::info!(mail_id = %id, kind = mail.kind.as_str(), outcome = ?sent, "outbox message done");
            }
            Err(error) => {
                tracing::warn!(mail_id = %id, kind = mail.kind.as_str(), error = %error, "outbox message not sent; it stays for a retry");
                // The stream's retry (or the next sweep) may take it up at once.
                if let Err(e) = self.mail.release_mail(id, until).await {
                    tracing::warn!(mail_id = %id, error = %e, "the claim stays until it expires");
                }
            }
        }
        outcome
    }

    async fn deliver(&self, mail: &OutboxMail, now: DateTime<Utc>) -> Result<Sent, Retry> {
        let Some(user) = self.recipient(mail).await? else {
            return Ok(Sent::Nothing);
        };
        // Recovery and verification count against the address's hourly limit, once per message
        // (a retry of one that failed to send is not counted again). The notice of an email
        // change does not: nobody may keep it from the address of before.
        if mail.kind != MailKind::EmailChanged && !mail.admitted {
            let throttle = self.throttle.as_ref();
            if !shared::web::throttle::admit_message_to(throttle, &self.config, &mail.email_key, now).await? {
                tracing::info!(mail_id = %mail.id, kind = mail.kind.as_str(), "over the address's hourly limit of messages: not sent");
                return Ok(Sent::Throttled);
            }
            self.mail.note_mail_admitted(mail.id).await?;
        }
        let rendered = match mail.kind.purpose() {
            Some(purpose) => {
                let Some(token) = self.mint(&user, purpose, now).await? else {
                    // The account's credentials or address changed since it was read.
                    return Ok(Sent::Nothing);
                };
                let content = match purpose {
                    TokenPurpose::ResetPassword => Content::ResetPassword { token: &token },
                    TokenPurpose::VerifyEmail => Content::VerifyEmail { token: &token },
                };
                // To the stored address in the form mail servers take: its domain in IDNA ASCII
                // (the account's key), so that an internationalised domain is delivered too.
                render(&self.settings, &user.email.key(), content, now)
            }
            None => {
                // The notice of an email change: to the address of before, as its key (its
                // domain in IDNA ASCII), naming the address it moved to then, whatever it is now.
                let new_email = mail.new_email.as_deref().unwrap_or(user.email.as_str());
                render(&self.settings, &mail.email_key, Content::EmailChanged { new_email }, now)
            }
        };
        let message = match rendered {
            Ok(message) => message,
            Err(error) => {
                tracing::error!(mail_id = %mail.id, kind = mail.kind.as_str(), error = %error, outcome = "given_up", "a message could not be rendered");
                return Ok(Sent::GivenUp);
            }
        };
        match self.mailer.send(&message).await {
            Ok(()) => Ok(Sent::Sent),
            Err(SendError::Permanent(reason)) => {
                tracing::error!(mail_id = %mail.id, kind = mail.kind.as_str(), reason, outcome = "given_up", "a message was refused for good");
                Ok(Sent::GivenUp)
            }
            Err(transient) => Err(Retry::Mail(transient)),
        }
    }

    /// The account a message goes to, if it should still go: an active account that holds the
    /// address a recovery names; the account of a verification while it still has the address
    /// and has not proved it; the account of an email change notice.
    async fn recipient(&self, mail: &OutboxMail) -> Result<Option<UserRecord>, RepoError> {
        let user = match (mail.kind, mail.user_id) {
            (MailKind::ResetPassword, _) => self.users.find_user_by_email(&mail.email_key).await?,
            (_, Some(id)) => self.users.get_user(id).await?,
            (_, None) => None,
        };
        Ok(user.filter(|user| match mail.kind {
            MailKind::ResetPassword => user.is_active && user.email.key() == mail.email_key,
            MailKind::VerifyEmail => !user.email_verified && user.email.key() == mail.email_key,
            MailKind::EmailChanged => mail.to.is_some(),
        }))
    }

    /// A new token for `user`, recorded (its hash) as the live one of `purpose`; `None` when the
    /// user changed since it was read.
    async fn mint(
        &self,
        user: &UserRecord,
        purpose: TokenPurpose,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, RepoError> {
        let ttl = match purpose {
            TokenPurpose::ResetPassword => self.config.mail.reset_token_ttl_secs,
            TokenPurpose::VerifyEmail => self.config.mail.verify_token_ttl_secs,
        };
        let token = refresh::generate(user.id);
        let record = MailToken {
            user_id: user.id,
            purpose,
            token_hash: refresh::hash(&token),
            credential_version: user.credential_version,
            email_key: user.email.key(),
            expires_at: now + chrono::Duration::seconds(ttl),
        };
        Ok(self.mail.mint_token(&record).await?.then_some(token))
    }

    /// Sends every message that has waited `idle` or longer (all, for zero), until `deadline`:
    /// what the sweep does for messages whose stream run was lost or failed. Returns what became
    /// of them; a failure is logged, the rest are tried, and the sweep then fails.
    pub async fn sweep(&self, idle: Duration, deadline: Instant) -> Result<Swept, RepoError> {
        let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
        let (mut sent, mut failed, mut after) = (Swept::default(), None, None);
        loop {
            let listing = self.mail.pending_mail(shared::purge::PAGE, after).await?;
            for mail in &listing.records {
                if self.clock.now() - mail.requested_at < idle {
                    continue;
                }
                if Instant::now() >= deadline {
                    return failed.map_or(Ok(sent), Err);
                }
                match self.send(mail.id).await {
                    Ok(Sent::Sent) => sent.sent += 1,
                    Ok(Sent::GivenUp) => sent.given_up += 1,
                    Ok(_) => {}
                    Err(Retry::Store(e)) => {
                        failed.get_or_insert(e);
                    }
                    // Mail that cannot go now waits for the next sweep; it is no failure of this one.
                    Err(Retry::Mail(_)) => sent.retry_later += 1,
                }
            }
            if !listing.more {
                return failed.map_or(Ok(sent), Err);
            }
            after = listing.records.last().map(|m| m.id);
        }
    }
}
