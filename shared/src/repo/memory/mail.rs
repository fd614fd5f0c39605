//! Account mail in memory: the outbox under `OUTBOX#<n>` and each user's live tokens in its
//! range, as in DynamoDB. Each outbox write wakes whoever waits on
//! [`MemoryStore::work_written`], as the table's stream does the worker.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::users::apply_changes;
use super::{Entry, MemoryStore, State, key};
use crate::repo::keys::{MAIL_TOKEN, OUTBOX_PREFIX, outbox_pk, outbox_sk, user_pk};
use crate::repo::{
    Listing, MailRepo, MailToken, OutboxMail, RepoResult, TokenPurpose, UpdateUser, UserChanges, UserRecord,
};

impl State {
    /// Writes a message to send (with the change that asks for it).
    pub(super) fn record_mail(&mut self, mail: &OutboxMail) {
        self.records.insert(key(outbox_pk(mail.id), outbox_sk(mail.id)), Entry::Outbox(mail.clone(), None));
    }

    fn token(&self, user_id: Uuid, purpose: TokenPurpose) -> Option<&MailToken> {
        match self.get(&user_pk(user_id), &MAIL_TOKEN.sk(purpose.as_str())) {
            Some(Entry::MailToken(token)) => Some(token),
            _ => None,
        }
    }
}

#[async_trait]
impl MailRepo for MemoryStore {
    async fn enqueue_mail(&self, mail: &OutboxMail) -> RepoResult<()> {
        self.lock().record_mail(mail);
        self.work_written.notify_one();
        Ok(())
    }

    async fn get_mail(&self, id: Uuid) -> RepoResult<Option<OutboxMail>> {
        Ok(match self.lock().get(&outbox_pk(id), &outbox_sk(id)) {
            Some(Entry::Outbox(mail, _)) => Some(mail.clone()),
            _ => None,
        })
    }

    async fn claim_mail(&self, id: Uuid, until: DateTime<Utc>, now: DateTime<Utc>) -> RepoResult<bool> {
        let mut s = self.lock();
        match s.records.get_mut(&key(outbox_pk(id), outbox_sk(id))) {
            Some(Entry::Outbox(_, claim)) if claim.is_none_or(|held| held <= now) => {
                *claim = Some(until);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_mail(&self, id: Uuid, until: DateTime<Utc>) -> RepoResult<()> {
        if let Some(Entry::Outbox(_, claim)) = self.lock().records.get_mut(&key(outbox_pk(id), outbox_sk(id)))
            && *claim == Some(until)
        {
            *claim = None;
        }
        Ok(())
    }

    async fn note_mail_admitted(&self, id: Uuid) -> RepoResult<()> {
        if let Some(Entry::Outbox(mail, _)) = self.lock().records.get_mut(&key(outbox_pk(id), outbox_sk(id)))
        {
            mail.admitted = true;
        }
        Ok(())
    }

    async fn finish_mail(&self, id: Uuid) -> RepoResult<()> {
        self.lock().records.remove(&key(outbox_pk(id), outbox_sk(id)));
        Ok(())
    }

    async fn pending_mail(&self, limit: usize, after: Option<Uuid>) -> RepoResult<Listing<OutboxMail>> {
        let s = self.lock();
        let mut records: Vec<OutboxMail> = s
            .records
            .range(key(OUTBOX_PREFIX, "")..)
            .take_while(|((pk, _), _)| pk.starts_with(OUTBOX_PREFIX))
            .filter_map(|(_, entry)| match entry {
                Entry::Outbox(mail, _) if after.is_none_or(|after| mail.id > after) => Some(mail.clone()),
                _ => None,
            })
            .collect();
        records.sort_by_key(|m| m.id);
        records.truncate(limit.saturating_add(1));
        Ok(Listing::of(records, limit))
    }

    async fn mint_token(&self, token: &MailToken) -> RepoResult<bool> {
        let mut s = self.lock();
        let bound = s.user(token.user_id).is_some_and(|u| {
            u.credential_version == token.credential_version && u.email.key() == token.email_key
        });
        if bound {
            let at = key(user_pk(token.user_id), MAIL_TOKEN.sk(token.purpose.as_str()));
            s.records.insert(at, Entry::MailToken(token.clone()));
        }
        Ok(bound)
    }

    async fn get_token(&self, user_id: Uuid, purpose: TokenPurpose) -> RepoResult<Option<MailToken>> {
        Ok(self.lock().token(user_id, purpose).cloned())
    }

    async fn redeem_token(
        &self,
        token: &MailToken,
        changes: &UserChanges,
        now: DateTime<Utc>,
    ) -> RepoResult<Option<UserRecord>> {
        let redeemed = {
            let mut s = self.lock();
            if s.token(token.user_id, token.purpose).is_none_or(|live| live.token_hash != token.token_hash) {
                return Ok(None);
            }
            match apply_changes(&mut s, token.user_id, changes, now) {
                UpdateUser::Updated(user) => {
                    s.records.remove(&key(user_pk(token.user_id), MAIL_TOKEN.sk(token.purpose.as_str())));
                    Some(user)
                }
                UpdateUser::NotFound | UpdateUser::EmailTaken | UpdateUser::Changed => None,
            }
        };
        if redeemed.is_some() && !changes.mail.is_empty() {
            self.work_written.notify_one();
        }
        Ok(redeemed)
    }
}
