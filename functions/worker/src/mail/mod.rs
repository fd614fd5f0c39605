//! The worker's mail (API.md, password recovery and email verification): each message rendered
//! from the templates in `templates/mail/` into a whole RFC 5322 message ([`render`]), then
//! handed to a [`Mailer`]: Amazon SES v2 in AWS ([`SesMailer`]), a directory of `.eml` files
//! locally ([`MailDir`]).
//!
//! A message carries a single-use token, so neither a message's bytes nor its body reach a log
//! line or an error: [`OutgoingMail`]'s `Debug` leaves the bytes out, and [`SendError`] names
//! only what failed.

mod maildir;
mod render;
mod ses;

use std::fmt;

pub use maildir::MailDir;
pub use render::render;
pub use ses::SesMailer;

/// The kinds of message the API sends: the outbox's own (its name is also its templates',
/// `templates/mail/<name>.txt|.html`).
pub use shared::repo::MailKind;

/// What every message says about the product and where its links lead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// Names the product in the subject and the body, e.g. "Lambda API".
    pub product_name: String,
    /// The front end's base URL (`APP_URL`), e.g. "http://localhost:5173"; a trailing '/' is
    /// allowed.
    pub app_url: String,
    /// The sender: "Name <addr@example.com>" or "addr@example.com".
    pub from: String,
    /// How long a reset link is valid, as the message states it.
    pub reset_minutes: i64,
    /// How long a verification link is valid, as the message states it.
    pub verify_hours: i64,
}

/// What a message says, by kind.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Content<'a> {
    /// A link `<app_url>/reset-password?token=<token>`.
    ResetPassword { token: &'a str },
    /// A link `<app_url>/verify-email?token=<token>`.
    VerifyEmail { token: &'a str },
    /// To the old address: the account's address is now `new_email`. No token.
    EmailChanged { new_email: &'a str },
}

impl Content<'_> {
    pub fn kind(&self) -> MailKind {
        match self {
            Content::ResetPassword { .. } => MailKind::ResetPassword,
            Content::VerifyEmail { .. } => MailKind::VerifyEmail,
            Content::EmailChanged { .. } => MailKind::EmailChanged,
        }
    }
}

/// Tokens stay out of logs: only the kind.
impl fmt::Debug for Content<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Content").field("kind", &self.kind()).finish_non_exhaustive()
    }
}

/// A rendered message, ready to send.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub kind: MailKind,
    /// The recipient's address alone (no display name): the envelope's recipient.
    pub to: String,
    /// The `Message-ID` header's value, angle brackets included.
    pub message_id: String,
    /// The whole RFC 5322 message, CRLF line endings. It holds the token: never log it.
    pub raw: Vec<u8>,
}

/// Without the message's bytes: they hold a token.
impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("kind", &self.kind)
            .field("to", &self.to)
            .field("message_id", &self.message_id)
            .field("raw_len", &self.raw.len())
            .finish()
    }
}

/// Why a message could not be rendered. Names what was wrong, never the address or the token.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the recipient is not a valid email address")]
    InvalidRecipient,
    #[error("the sender (MAIL_FROM) is not a valid mailbox")]
    InvalidSender,
    #[error("mail template {template}: {message}")]
    Template { template: String, message: String },
    #[error("the message could not be built: {0}")]
    Build(String),
}

/// Why a message was not sent. The strings name the failure (an SES error code, an IO error's
/// kind), never the message or its token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: throttling, a server error, a timeout, the network, a paused
    /// account.
    #[error("transient mail failure: {0}")]
    Transient(String),
    /// Sending it again will not help: the message or its addresses were refused.
    #[error("permanent mail failure: {0}")]
    Permanent(String),
}

impl SendError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}

/// Where rendered messages go.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync + fmt::Debug {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError>;

    /// False for a mailer that sends nothing by configuration (no sender given): the messages
    /// it refuses are given up by design, not failures to count.
    fn sends(&self) -> bool {
        true
    }
}
