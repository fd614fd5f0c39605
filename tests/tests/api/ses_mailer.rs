//! `SesMailer` against the fake SES v2 on loopback: the request it makes (signed, addressed, the
//! raw message whole), and how SES's refusals are sorted into worth-retrying and not.

// Test bodies: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::ses::{FakeSes, SEND_EMAIL_PATH};
use chrono::Utc;
use worker::mail::{Content, MailSettings, Mailer, SendError, SesMailer, render};

fn message() -> worker::mail::OutgoingMail {
    let settings = MailSettings {
        product_name: "Lambda API".into(),
        app_url: "http://localhost:5173".into(),
        from: "Lambda API <no-reply@example.com>".into(),
        reset_minutes: 30,
        verify_hours: 24,
    };
    render(&settings, "user@example.com", Content::VerifyEmail { token: "tok-123_abc" }, Utc::now())
        .expect("rendered")
}

#[tokio::test]
async fn ses_mailer_sends_the_raw_message_signed_and_sorts_ses_refusals() {
    let ses = FakeSes::start().await;
    let sdk = FakeSes::sdk_config();
    let mail = message();

    let mailer =
        SesMailer::new(&sdk, Some(&ses.url()), "no-reply@example.com".into(), Some("transactional".into()));
    mailer.send(&mail).await.expect("sent");
    let sent = ses.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let request = &sent[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str(), request.status),
        ("POST", SEND_EMAIL_PATH, 200)
    );
    assert!(request.signed, "a SigV4 authorization header");
    assert_eq!(request.from_address(), Some("no-reply@example.com"));
    assert_eq!(request.to_addresses(), ["user@example.com"]);
    assert_eq!(request.configuration_set(), Some("transactional"));
    assert_eq!(request.raw, mail.raw, "the message, byte for byte");

    // No configuration set: none is sent.
    let plain = SesMailer::new(&sdk, Some(&ses.url()), "no-reply@example.com".into(), None);
    plain.send(&mail).await.expect("sent");
    assert_eq!(ses.sent()[1].configuration_set(), None);
    assert!(ses.sent()[1].body.get("ConfigurationSetName").is_none());

    // Server errors and throttling are worth retrying; a refused message is not. The reasons
    // name SES's error code, never the message (its token).
    for (status, error_type, transient) in [
        (500, "InternalFailure", true),
        (503, "ServiceUnavailable", true),
        (429, "TooManyRequestsException", true),
        (400, "SendingPausedException", true),
        (400, "MessageRejected", false),
        (400, "MailFromDomainNotVerifiedException", true),
        (403, "AccessDeniedException", true),
        (404, "NotFoundException", true),
        (400, "BadRequestException", false),
    ] {
        ses.fail_next(1, status, error_type);
        let error = plain.send(&mail).await.expect_err("refused");
        match &error {
            SendError::Transient(reason) | SendError::Permanent(reason) => {
                assert!(reason.contains(error_type), "{error_type}: {reason}");
                assert!(!reason.contains("tok-123_abc"), "{reason}");
            }
        }
        assert_eq!(error.is_transient(), transient, "{status} {error_type}: {error:?}");
        assert_eq!(ses.sent().last().map(|r| r.status), Some(status));
    }
    // Once the fault is used up, sending works again.
    plain.send(&mail).await.expect("sent");

    // Nothing listening: the network failed, try again later.
    let address = ses.url();
    drop(ses);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let gone = SesMailer::new(&sdk, Some(&address), "no-reply@example.com".into(), None);
    assert!(matches!(gone.send(&mail).await, Err(SendError::Transient(_))));
}

/// The worker's own choice of mailer: SES at a stand-in is signed with stand-in credentials (no
/// real key signs for a stand-in) and reaches it; with no sender and no stand-in, every message
/// is refused for good (so it is given up and logged at once, not retried for a day).
#[tokio::test]
async fn the_workers_mailer_is_the_stand_in_when_named_and_refuses_without_a_sender() {
    let ses = FakeSes::start().await;
    let mut config = api_tests::config();
    config.mail.ses_endpoint = Some(ses.url());
    config.mail.from = Some("no-reply@example.com".into());
    let mailer = worker::mailer(&config).await;
    mailer.send(&message()).await.expect("sent to the stand-in");
    let sent = ses.sent();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].signed);
    assert_eq!(sent[0].from_address(), Some("no-reply@example.com"));

    let mut config = api_tests::config();
    config.mail.from = None;
    let refused = worker::mailer(&config).await.send(&message()).await;
    assert!(
        matches!(&refused, Err(SendError::Permanent(reason)) if reason.contains("MAIL_FROM")),
        "{refused:?}"
    );
}

/// `admin mail-sink`, the SES stand-in `scripts/sam-local` gives the worker's container: what
/// `SesMailer` sends it is written whole as an `.eml` file.
#[tokio::test]
async fn the_mail_sink_writes_what_ses_mailer_sends_as_eml_files() {
    let dir = api_tests::process::workspace()
        .join("target/test-artifacts/mail-sink")
        .join(uuid::Uuid::new_v4().to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let sink = server::mail_sink::router(dir.clone());
    tokio::spawn(async move { axum::serve(listener, sink).await });
    let mailer = SesMailer::new(&FakeSes::sdk_config(), Some(&url), "no-reply@example.com".into(), None);
    let mail = message();
    mailer.send(&mail).await.expect("taken by the sink");
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "eml"));
    assert_eq!(std::fs::read(&files[0]).unwrap(), mail.raw, "the message, byte for byte");
}
