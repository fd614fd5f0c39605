//! Sending through Amazon SES v2: `SendEmail` with the rendered message as its raw content, and
//! SES's answer sorted into what is worth trying again and what is not.

use aws_sdk_sesv2::Client;
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::operation::send_email::SendEmailError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;

use super::{Mailer, OutgoingMail, SendError};

#[derive(Debug, Clone)]
pub struct SesMailer {
    client: Client,
    from: String,
    configuration_set: Option<String>,
}

impl SesMailer {
    /// A client for SES v2 from `sdk_config` (region, credentials, retries, timeouts, its HTTP
    /// client). `endpoint` replaces SES's (a fake on loopback); without it the SDK's own SES
    /// endpoint is used, even when `sdk_config` names another service's (DynamoDB Local's).
    /// `from` is the `FromEmailAddress`; `configuration_set` names SES's configuration set.
    pub fn new(
        sdk_config: &aws_config::SdkConfig,
        endpoint: Option<&str>,
        from: String,
        configuration_set: Option<String>,
    ) -> Self {
        let mut config = aws_sdk_sesv2::config::Builder::from(sdk_config);
        config.set_endpoint_url(endpoint.map(str::to_owned));
        if sdk_config.http_client().is_none() {
            config.set_http_client(Some(shared::state::https_client(endpoint)));
        }
        Self { client: Client::from_conf(config.build()), from, configuration_set }
    }
}

#[async_trait::async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), SendError> {
        let raw = RawMessage::builder()
            .data(Blob::new(mail.raw.clone()))
            .build()
            .map_err(|_| SendError::Permanent("SES SendEmail: no raw message".into()))?;
        let sent = self
            .client
            .send_email()
            .from_email_address(&self.from)
            .destination(Destination::builder().to_addresses(&mail.to).build())
            .content(EmailContent::builder().raw(raw).build())
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| classify(&e))?;
        tracing::debug!(
            kind = mail.kind.as_str(),
            message_id = %mail.message_id,
            ses_message_id = sent.message_id().unwrap_or_default(),
            "mail handed to SES"
        );
        Ok(())
    }
}

/// Whether SES's error is worth trying again. The string names SES's error code (or the kind of
/// failure) and the HTTP status, nothing of the message.
fn classify(error: &SdkError<SendEmailError, HttpResponse>) -> SendError {
    match error {
        SdkError::ServiceError(context) => classify_service(context.err(), context.raw().status().as_u16()),
        SdkError::TimeoutError(_) => SendError::Transient("SES SendEmail: timed out".into()),
        SdkError::DispatchFailure(failure) => {
            let kind = if failure.is_timeout() {
                "timeout"
            } else if failure.is_io() {
                "io"
            } else if failure.is_user() {
                "user"
            } else {
                "other"
            };
            SendError::Transient(format!("SES SendEmail: request not delivered ({kind})"))
        }
        SdkError::ResponseError(context) => SendError::Transient(format!(
            "SES SendEmail: unreadable answer (HTTP {})",
            context.raw().status().as_u16()
        )),
        // Credentials or configuration missing: a deployment fixed later lets the message go.
        SdkError::ConstructionFailure(_) => SendError::Transient("SES SendEmail: request not built".into()),
        _ => SendError::Transient("SES SendEmail: unknown failure".into()),
    }
}

fn classify_service(error: &SendEmailError, status: u16) -> SendError {
    let code = match error {
        SendEmailError::AccountSuspendedException(_) => "AccountSuspendedException",
        SendEmailError::BadRequestException(_) => "BadRequestException",
        SendEmailError::LimitExceededException(_) => "LimitExceededException",
        SendEmailError::MailFromDomainNotVerifiedException(_) => "MailFromDomainNotVerifiedException",
        SendEmailError::MessageRejected(_) => "MessageRejected",
        SendEmailError::NotFoundException(_) => "NotFoundException",
        SendEmailError::SendingPausedException(_) => "SendingPausedException",
        SendEmailError::TooManyRequestsException(_) => "TooManyRequestsException",
        other => other.code().unwrap_or("unknown error"),
    };
    // Error codes are identifiers; whatever else an answer put there stays out of the logs.
    let code: String =
        code.chars().filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c)).take(80).collect();
    let described = format!("SES SendEmail: {code} (HTTP {status})");
    let transient = matches!(
        code.as_str(),
        "TooManyRequestsException"
            | "LimitExceededException"
            | "SendingPausedException"
            | "AccountSuspendedException"
            | "Throttling"
            | "ThrottlingException"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "ServiceUnavailable"
            | "InternalFailure"
            | "ExpiredTokenException"
            // A deployment not set up yet (an identity still being verified, a permission or a
            // configuration set missing): fixed by its operator, so worth trying again until
            // the outbox gives the message up after a day.
            | "AccessDeniedException"
            | "AccessDenied"
            | "MailFromDomainNotVerifiedException"
            | "NotFoundException"
    ) || status == 429
        || status >= 500;
    if transient { SendError::Transient(described) } else { SendError::Permanent(described) }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sesv2::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sesv2::types::error::{MessageRejected, TooManyRequestsException};

    use super::*;

    #[test]
    fn throttling_server_errors_a_paused_account_and_setup_errors_are_transient_the_rest_permanent() {
        let modeled = [
            (
                SendEmailError::TooManyRequestsException(TooManyRequestsException::builder().build()),
                429,
                true,
            ),
            (SendEmailError::MessageRejected(MessageRejected::builder().build()), 400, false),
        ];
        for (error, status, transient) in modeled {
            let sorted = classify_service(&error, status);
            assert_eq!(sorted.is_transient(), transient, "{sorted}");
        }
        let generic = |code: &str| SendEmailError::generic(ErrorMetadata::builder().code(code).build());
        for (code, status, transient) in [
            ("InternalFailure", 500, true),
            ("ServiceUnavailable", 503, true),
            ("Whatever", 502, true),
            ("Throttling", 400, true),
            ("SendingPausedException", 400, true),
            ("AccessDeniedException", 403, true),
            ("MailFromDomainNotVerifiedException", 400, true),
            ("BadRequestException", 400, false),
            ("MessageRejected", 400, false),
            ("Whatever", 404, false),
        ] {
            let sorted = classify_service(&generic(code), status);
            assert_eq!(sorted.is_transient(), transient, "{code} {status}: {sorted}");
            assert!(sorted.to_string().contains(code), "{sorted}");
        }
        let sorted = classify_service(&generic("Evil\r\nmessage: the token"), 400);
        assert_eq!(sorted, SendError::Permanent("SES SendEmail: Evilmessagethetoken (HTTP 400)".into()));
    }

    #[test]
    fn timeouts_and_network_failures_are_transient() {
        let timeout: SdkError<SendEmailError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(classify(&timeout).is_transient());
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let dispatch: SdkError<SendEmailError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(io.into()));
        assert_eq!(
            classify(&dispatch),
            SendError::Transient("SES SendEmail: request not delivered (io)".into())
        );
    }
}
