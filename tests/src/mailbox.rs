//! A mailer for in-process tests: it keeps every message the worker sends, and reads them back
//! as a person would (the text and HTML parts, the link, the token in it).

use std::sync::Mutex;

use worker::mail::{MailKind, Mailer, OutgoingMail, SendError};

/// A message as received: to whom, of which kind, its headers and its two parts, decoded.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: MailKind,
    pub to: String,
    pub raw: Vec<u8>,
    pub subject: String,
    pub from: String,
    pub text: String,
    pub html: String,
}

impl Received {
    /// Reads a whole RFC 5322 message: its `Subject`, `From` and its text and HTML parts.
    pub fn parse(kind: MailKind, to: &str, raw: &[u8]) -> Self {
        let parsed = mailparse::parse_mail(raw).expect("an RFC 5322 message");
        let header = |name: &str| {
            mailparse::MailHeaderMap::get_first_value(parsed.headers.as_slice(), name).unwrap_or_default()
        };
        let part = |mime: &str| {
            parsed
                .subparts
                .iter()
                .find(|p| p.ctype.mimetype == mime)
                .map(|p| p.get_body().expect("a decodable part"))
                .unwrap_or_default()
        };
        Self {
            kind,
            to: to.to_owned(),
            raw: raw.to_vec(),
            subject: header("Subject"),
            from: header("From"),
            text: part("text/plain"),
            html: part("text/html"),
        }
    }

    /// The token of the message's link (`...?token=<token>`), as the text part shows it.
    pub fn token(&self) -> Option<String> {
        let at = self.text.find("?token=")? + "?token=".len();
        let token: String = self.text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        Some(token)
    }
}

/// Every message sent, in order; and, when told, failures instead.
#[derive(Debug, Default)]
pub struct Mailbox {
    sent: Mutex<Vec<Received>>,
    failures: Mutex<Vec<SendError>>,
}

impl Mailbox {
    /// The messages to `to` (as typed: the stored address), oldest first.
    pub fn to(&self, to: &str) -> Vec<Received> {
        self.all().into_iter().filter(|m| m.to == to).collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The token of the latest message of `kind` to `to`.
    pub fn token(&self, to: &str, kind: MailKind) -> String {
        self.to(to)
            .into_iter()
            .rev()
            .find(|m| m.kind == kind)
            .and_then(|m| m.token())
            .unwrap_or_else(|| panic!("no {kind:?} message with a token to {to}"))
    }

    /// The next sends fail with these, in order.
    pub fn fail_next(&self, failures: impl IntoIterator<Item = SendError>) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).extend(failures);
    }
}

#[async_trait::async_trait]
impl Mailer for Mailbox {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            if !failures.is_empty() {
                return Err(failures.remove(0));
            }
        }
        let received = Received::parse(mail.kind, &mail.to, &mail.raw);
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).push(received);
        Ok(())
    }
}
