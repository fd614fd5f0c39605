//! A message rendered whole: the kind's text and HTML templates (`templates/mail/`, compiled in)
//! filled with minijinja, the HTML autoescaped since addresses are the user's text, and put
//! together with lettre's builder as multipart/alternative with its headers.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::message::{Mailbox, MultiPart};
use minijinja::{Environment, UndefinedBehavior, Value, context};
use uuid::Uuid;

use super::{Content, MailKind, MailSettings, OutgoingMail, RenderError};

/// Each kind's templates: (text, HTML).
fn templates(kind: MailKind) -> (&'static str, &'static str) {
    match kind {
        MailKind::ResetPassword => (
            include_str!("../../templates/mail/reset_password.txt"),
            include_str!("../../templates/mail/reset_password.html"),
        ),
        MailKind::VerifyEmail => (
            include_str!("../../templates/mail/verify_email.txt"),
            include_str!("../../templates/mail/verify_email.html"),
        ),
        MailKind::EmailChanged => (
            include_str!("../../templates/mail/email_changed.txt"),
            include_str!("../../templates/mail/email_changed.html"),
        ),
    }
}

/// One environment for every message: a name ending in `.html` turns HTML escaping on, and a
/// variable a template names but is not given is an error rather than an empty string.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env
});

fn subject(kind: MailKind, product: &str) -> String {
    match kind {
        MailKind::ResetPassword => format!("Reset your {product} password"),
        MailKind::VerifyEmail => format!("Verify your email address for {product}"),
        MailKind::EmailChanged => format!("Your {product} email address was changed"),
    }
}

/// Renders `content` for `to` as a whole RFC 5322 message dated `now`.
pub fn render(
    settings: &MailSettings,
    to: &str,
    content: Content<'_>,
    now: DateTime<Utc>,
) -> Result<OutgoingMail, RenderError> {
    let from: Mailbox = settings.from.parse().map_err(|_| RenderError::InvalidSender)?;
    let to: Mailbox = to.parse().map_err(|_| RenderError::InvalidRecipient)?;
    let kind = content.kind();
    let app_url = settings.app_url.trim_end_matches('/');
    let (link, new_email) = match content {
        Content::ResetPassword { token } => (Some(link(app_url, "reset-password", token)), None),
        Content::VerifyEmail { token } => (Some(link(app_url, "verify-email", token)), None),
        Content::EmailChanged { new_email } => (None, Some(new_email)),
    };
    let email = to.email.to_string();
    let product = settings.product_name.as_str();
    // The URLs come from the configuration and a token, not from the user; HTML gets them with
    // only the characters that matter in an attribute escaped (minijinja would escape '/' too).
    let html_url = |url: &str| Value::from_safe_string(escape_html(url));
    let text_context = context! {
        product, email => email.as_str(), app_url, minutes => settings.reset_minutes, hours => settings.verify_hours,
        link => link.clone(), new_email,
    };
    let html_context = context! {
        product, email => email.as_str(), app_url => html_url(app_url), minutes => settings.reset_minutes,
        hours => settings.verify_hours, link => link.as_deref().map(html_url), new_email,
    };
    let (text_source, html_source) = templates(kind);
    let text = fill(kind, "txt", text_source, text_context)?;
    let html = fill(kind, "html", html_source, html_context)?;

    let message_id = format!("<{}@{}>", Uuid::new_v4().simple(), from.email.domain());
    let message = Message::builder()
        .from(from)
        .to(to.clone())
        .subject(subject(kind, product))
        .date(now.into())
        .message_id(Some(message_id.clone()))
        .multipart(MultiPart::alternative_plain_html(text, html))
        .map_err(|e| RenderError::Build(e.to_string()))?;
    Ok(OutgoingMail { kind, to: email, message_id, raw: message.formatted() })
}

fn fill(kind: MailKind, extension: &str, source: &str, context: Value) -> Result<String, RenderError> {
    let name = format!("{}.{extension}", kind.as_str());
    TEMPLATES
        .render_named_str(&name, source, context)
        .map_err(|e| RenderError::Template { message: e.to_string(), template: name })
}

/// `<app_url>/<page>?token=<token>`: a base64url token goes in as it is; anything else a URL
/// cannot carry in a query is percent-encoded.
fn link(app_url: &str, page: &str, token: &str) -> String {
    let mut link = format!("{app_url}/{page}?token=");
    for byte in token.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            link.push(char::from(byte));
        } else {
            link.push_str(&format!("%{byte:02X}"));
        }
    }
    link
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use mailparse::{MailHeaderMap, ParsedMail};

    use super::*;

    const TOKEN: &str = "q1W-e_2rTy3uIo4pAs5dFg6hJk7lZx8cVb9nM0";

    fn settings(app_url: &str) -> MailSettings {
        MailSettings {
            product_name: "Lambda API".into(),
            app_url: app_url.into(),
            from: "Lambda API <no-reply@mail.example.com>".into(),
            reset_minutes: 30,
            verify_hours: 24,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 16, 52, 10).single().expect("a date")
    }

    /// The message, its text part and its HTML part, transfer encodings decoded, lines ending in
    /// LF.
    fn parts(mail: &OutgoingMail) -> (ParsedMail<'_>, String, String) {
        let parsed = mailparse::parse_mail(&mail.raw).expect("a parseable message");
        assert_eq!(parsed.ctype.mimetype, "multipart/alternative");
        assert_eq!(parsed.subparts.len(), 2, "a text and an HTML part");
        let (text, html) = (&parsed.subparts[0], &parsed.subparts[1]);
        assert_eq!(text.ctype.mimetype, "text/plain");
        assert_eq!(html.ctype.mimetype, "text/html");
        assert_eq!((text.ctype.charset.as_str(), html.ctype.charset.as_str()), ("utf-8", "utf-8"));
        let body = |part: &ParsedMail<'_>| part.get_body().expect("a body").replace("\r\n", "\n");
        let (text, html) = (body(text), body(html));
        (parsed, text, html)
    }

    fn header(parsed: &ParsedMail<'_>, name: &str) -> String {
        parsed.headers.get_first_value(name).unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn each_kind_is_a_whole_multipart_message_that_names_the_product() {
        let settings = settings("http://localhost:5173");
        for content in [
            Content::ResetPassword { token: TOKEN },
            Content::VerifyEmail { token: TOKEN },
            Content::EmailChanged { new_email: "new@example.org" },
        ] {
            let mail = render(&settings, "user@example.com", content, now()).expect("rendered");
            assert_eq!((mail.kind, mail.to.as_str()), (content.kind(), "user@example.com"));
            let (parsed, text, html) = parts(&mail);
            assert_eq!(header(&parsed, "From"), "\"Lambda API\" <no-reply@mail.example.com>");
            assert_eq!(header(&parsed, "To"), "user@example.com");
            assert!(header(&parsed, "Subject").contains("Lambda API"), "{}", header(&parsed, "Subject"));
            assert_eq!(header(&parsed, "MIME-Version"), "1.0");
            let date = mailparse::dateparse(&header(&parsed, "Date")).expect("a date");
            assert_eq!(date, now().timestamp());
            assert_eq!(header(&parsed, "Message-ID"), mail.message_id);
            assert!(mail.message_id.starts_with('<') && mail.message_id.ends_with("@mail.example.com>"));
            for body in [&text, &html] {
                assert!(body.contains("Lambda API"), "{kind}: {body}", kind = mail.kind.as_str());
                assert!(body.contains("user@example.com"), "{body}");
            }
            assert!(html.contains("<html") && !text.contains("<p>"), "{html}\n{text}");
        }
    }

    #[test]
    fn links_are_exact_and_the_base_url_s_slash_is_not_doubled() {
        for app_url in ["https://app.example.com", "https://app.example.com/"] {
            let settings = settings(app_url);
            for (content, page) in [
                (Content::ResetPassword { token: TOKEN }, "reset-password"),
                (Content::VerifyEmail { token: TOKEN }, "verify-email"),
            ] {
                let mail = render(&settings, "user@example.com", content, now()).expect("rendered");
                let (_, text, html) = parts(&mail);
                let link = format!("https://app.example.com/{page}?token={TOKEN}");
                assert!(text.contains(&format!("\n{link}\n")), "{text}");
                assert!(html.contains(&format!("href=\"{link}\"")), "{html}");
                assert!(!text.contains(".com//") && !html.contains(".com//"), "{text}\n{html}");
            }
        }
        assert_eq!(link("http://x", "verify-email", "a b/+="), "http://x/verify-email?token=a%20b%2F%2B%3D");
    }

    #[test]
    fn the_validity_is_stated_and_the_change_notice_has_no_token() {
        let settings = settings("http://localhost:5173");
        let (_, text, html) = parts(
            &render(&settings, "a@example.com", Content::ResetPassword { token: TOKEN }, now()).unwrap(),
        );
        assert!(text.contains("30 minutes") && html.contains("30 minutes"), "{text}");
        let (_, text, html) =
            parts(&render(&settings, "a@example.com", Content::VerifyEmail { token: TOKEN }, now()).unwrap());
        assert!(text.contains("24 hours") && html.contains("24 hours"), "{text}");
        let changed = Content::EmailChanged { new_email: "new@example.org" };
        let (_, text, html) = parts(&render(&settings, "old@example.com", changed, now()).unwrap());
        for body in [&text, &html] {
            assert!(body.contains("new@example.org") && body.contains("old@example.com"), "{body}");
            assert!(body.contains("wasn't you") && body.contains("support"), "{body}");
            assert!(!body.contains("token"), "{body}");
        }
    }

    #[test]
    fn addresses_are_escaped_in_the_html_part() {
        let settings = settings("http://localhost:5173");
        let changed = Content::EmailChanged { new_email: "<script>alert(1)</script>@example.org" };
        let (_, text, html) = parts(&render(&settings, "tom&jerry@example.com", changed, now()).unwrap());
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;@example.org"), "{html}");
        assert!(html.contains("tom&amp;jerry@example.com"), "{html}");
        assert!(!html.contains("<script>") && !html.contains("tom&jerry"), "{html}");
        // The text part is not HTML: as typed.
        assert!(text.contains("<script>alert(1)</script>@example.org") && text.contains("tom&jerry@"));
    }

    #[test]
    fn bad_addresses_are_errors_and_ids_are_unique() {
        let good = settings("http://localhost:5173");
        let content = Content::VerifyEmail { token: TOKEN };
        for to in ["not an address", "", "a@example.com\r\nBcc: b@example.com", "a@b@c"] {
            let result = render(&good, to, content, now());
            assert!(matches!(result, Err(RenderError::InvalidRecipient)), "{to:?}: {result:?}");
        }
        let bad = MailSettings { from: "no sender".into(), ..good.clone() };
        assert!(matches!(render(&bad, "a@example.com", content, now()), Err(RenderError::InvalidSender)));
        let bare = MailSettings { from: "bare@example.com".into(), ..good.clone() };
        assert!(render(&bare, "Ann <a@example.com>", content, now()).is_ok_and(|m| m.to == "a@example.com"));
        let (one, two) = (render(&good, "a@x.com", content, now()), render(&good, "a@x.com", content, now()));
        assert_ne!(one.unwrap().message_id, two.unwrap().message_id);
    }

    #[test]
    fn debug_output_has_no_token() {
        let content = Content::ResetPassword { token: TOKEN };
        let mail = render(&settings("http://x"), "a@example.com", content, now()).expect("rendered");
        assert!(String::from_utf8_lossy(&mail.raw).contains("q1W-e_2rTy3uIo4pAs5dFg"), "the test sees it");
        for debug in [format!("{mail:?}"), format!("{mail:#?}"), format!("{content:?}")] {
            assert!(!debug.contains(TOKEN) && !debug.contains("q1W-e"), "{debug}");
        }
        assert!(format!("{mail:?}").contains("raw_len"));
    }
}
