//! Account recovery and email verification (API.md v1.1, "Auth"): the requests, the outbox the
//! worker sends from, the tokens of the links (single use, expiring, superseded, bound to the
//! credentials and the address), the throttles, and `REQUIRE_EMAIL_VERIFICATION`.

// Test bodies and their helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration as StdDuration;

use api_tests::{Backend, PASSWORD, Session, TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Duration;
use serde_json::{Value, json};
use shared::web::address::context_with_source_ip;
use worker::mail::{MailKind, SendError};

/// The API over `backend` with the test configuration and `vars` over it.
async fn app(backend: Backend, vars: &[(&str, &str)]) -> TestApp {
    let mut all: HashMap<String, String> = HashMap::new();
    all.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    backend.app(shared::Config::from_vars(&all).unwrap()).await
}

on_both_stores!(
    a_recovery_link_resets_the_password_once_and_ends_every_session,
    known_unknown_and_inactive_addresses_get_the_same_answer_and_only_an_active_account_mail,
    a_reset_link_expires_after_30_minutes,
    a_newer_reset_link_supersedes_the_older,
    a_password_change_makes_an_outstanding_reset_link_worthless,
    a_link_is_good_for_its_own_purpose_only,
    signup_sends_a_verification_whose_link_verifies_the_address_once,
    a_verification_link_expires_after_24_hours,
    an_email_change_is_verified_anew_and_told_to_the_address_of_before,
    a_superusers_new_account_gets_a_verification_too,
    a_new_verification_message_supersedes_the_last_and_none_goes_to_a_verified_address,
    with_verification_required_an_unverified_login_is_refused_and_says_why,
    at_most_three_messages_go_to_one_address_an_hour,
    requests_for_mail_from_one_source_address_are_throttled,
    a_send_that_fails_stays_in_the_outbox_until_it_goes,
    a_send_that_fails_in_the_stream_is_left_to_the_sweep_and_holds_up_no_purge,
    a_deactivation_during_a_reset_wins,
    an_internationalised_domain_is_mailed_in_its_ascii_form,
    the_notice_of_an_email_change_is_never_throttled,
    a_link_is_used_once_even_by_two_requests_at_once,
    an_email_change_or_a_deletion_makes_an_outstanding_reset_link_worthless,
    an_email_change_counts_as_a_request_for_mail,
    a_message_refused_for_good_is_dropped_and_one_never_sent_is_given_up_after_a_day,
    messages_name_the_product_link_to_the_app_and_hold_no_password,
    a_deactivated_account_cannot_use_a_reset_link,
    nothing_is_sent_for_a_deleted_account,
);

const NEW_PASSWORD: &str = "a brand new passphrase";
const INVALID: &str = "Invalid or expired token";

async fn recover(app: &TestApp, email: &str) -> TestResponse {
    app.json(Method::POST, "/v1/auth/password-recovery", None, json!({"email": email})).await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    app.json(Method::POST, "/v1/auth/reset-password", None, json!({"token": token, "new_password": password}))
        .await
}

async fn verify(app: &TestApp, token: &str) -> TestResponse {
    app.json(Method::POST, "/v1/auth/verify-email", None, json!({"token": token})).await
}

async fn me(app: &TestApp, token: &str) -> Value {
    let me = app.get("/v1/users/me", token).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    me.json()
}

fn invalid(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}: {}", response.text());
    assert_eq!(response.detail(), INVALID, "{what}");
}

/// A superuser's `is_active: false` on `user`.
async fn deactivate(app: &TestApp, admin: &Session, user: &Session) {
    let path = format!("/v1/users/{}", user.id);
    let off = app.json(Method::PATCH, &path, Some(&admin.access), json!({"is_active": false})).await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.text());
}

/// The token of a reset link asked for and delivered to `email`.
async fn reset_link(app: &TestApp, email: &str) -> String {
    assert_eq!(recover(app, email).await.status, StatusCode::ACCEPTED);
    app.deliver_mail().await;
    app.mailbox.token(email, MailKind::ResetPassword)
}

/// A user whose signup's verification has been delivered (and not used).
async fn user_with_mail(app: &TestApp) -> Session {
    let user = app.user().await;
    app.deliver_mail().await;
    user
}

async fn a_recovery_link_resets_the_password_once_and_ends_every_session(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let asked = recover(&app, &user.email.to_uppercase()).await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
    assert!(asked.detail().as_str().unwrap().contains("reset"), "{}", asked.text());
    assert_eq!(app.deliver_mail().await.sent, 1);
    let token = app.mailbox.token(&user.email, MailKind::ResetPassword);
    assert_eq!(token.len(), 64, "a user id and 256 random bits, base64url without padding");
    assert!(token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");

    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status, StatusCode::NO_CONTENT);
    // Every session ended: the access token and the refresh token of before.
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.refresh(&user.refresh).await.json()["error"], "invalid_grant");
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::BAD_REQUEST);
    let login = app.login(&user.email, NEW_PASSWORD).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text());
    let access = login.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, &access).await["email_verified"], true, "a reset proves the address");
    // Single use.
    invalid(&reset(&app, &token, "yet another passphrase").await, "a used token");
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status, StatusCode::OK);
}

async fn known_unknown_and_inactive_addresses_get_the_same_answer_and_only_an_active_account_mail(
    backend: Backend,
) {
    let app = app(backend, &[]).await;
    let admin = app.superuser().await;
    let (known, inactive) = (user_with_mail(&app).await, user_with_mail(&app).await);
    deactivate(&app, &admin, &inactive).await;
    let before = app.mailbox.all().len();
    let answers: Vec<TestResponse> = vec![
        recover(&app, &known.email).await,
        recover(&app, "nobody-has-this@example.com").await,
        recover(&app, &inactive.email).await,
    ];
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        assert_eq!(answer.body, answers[0].body, "the same body whatever the address");
    }
    app.deliver_mail().await;
    let sent = app.mailbox.all()[before..].to_vec();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].kind, sent[0].to.as_str()), (MailKind::ResetPassword, known.email.as_str()));
    assert!(
        app.state.repos.mail.pending_mail(10, None).await.unwrap().records.is_empty(),
        "the outbox is empty"
    );
}

async fn a_reset_link_expires_after_30_minutes(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = reset_link(&app, &user.email).await;
    app.clock.advance(Duration::minutes(30) + Duration::seconds(1));
    invalid(&reset(&app, &token, NEW_PASSWORD).await, "30 minutes on");
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK, "nothing changed");
}

async fn a_newer_reset_link_supersedes_the_older(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let first = reset_link(&app, &user.email).await;
    let second = reset_link(&app, &user.email).await;
    assert_ne!(first, second);
    invalid(&reset(&app, &first, NEW_PASSWORD).await, "the older link");
    assert_eq!(reset(&app, &second, NEW_PASSWORD).await.status, StatusCode::NO_CONTENT);
}

async fn a_password_change_makes_an_outstanding_reset_link_worthless(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = reset_link(&app, &user.email).await;
    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let changed = app.json(Method::PATCH, "/v1/users/me/password", Some(&user.access), body).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    invalid(&reset(&app, &token, "the attackers passphrase").await, "after a password change");
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status, StatusCode::OK);
}

async fn a_link_is_good_for_its_own_purpose_only(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let reset_token = reset_link(&app, &user.email).await;
    let verify_token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    invalid(&reset(&app, &verify_token, NEW_PASSWORD).await, "a verification token as a reset's");
    invalid(&verify(&app, &reset_token).await, "a reset token as a verification's");
    invalid(&verify(&app, &user.refresh).await, "a refresh token");
    // An access token is longer than any link's token: refused as a field.
    let access = reset(&app, &user.access, NEW_PASSWORD).await;
    assert!(
        access.validation_errors().iter().any(|(loc, kind)| loc[1] == "token" && kind == "string_too_long")
    );
    let mut forged = reset_token.clone().into_bytes();
    forged[63] = if forged[63] == b'A' { b'B' } else { b'A' };
    invalid(
        &reset(&app, &String::from_utf8(forged).unwrap(), NEW_PASSWORD).await,
        "a token one character off",
    );
    for garbage in ["x", "!!!", &"A".repeat(128)] {
        invalid(&verify(&app, garbage).await, garbage);
    }
    // Malformed requests are the contract's 422s, before any token is looked at.
    let cases = [
        (json!({"token": ""}), "token"),
        (json!({"token": "A".repeat(129)}), "token"),
        (json!({}), "token"),
        (json!({"token": reset_token, "extra": 1}), "extra"),
    ];
    for (body, field) in cases {
        let response = app.json(Method::POST, "/v1/auth/verify-email", None, body.clone()).await;
        let errors = response.validation_errors();
        assert!(errors.iter().any(|(loc, _)| loc[1] == field), "{body}: {errors:?}");
    }
    let short = reset(&app, &reset_token, "short").await;
    assert!(short.validation_errors().iter().any(|(loc, _)| loc[1] == "new_password"));
    let bad_email = recover(&app, "not an address").await;
    assert!(bad_email.validation_errors().iter().any(|(loc, _)| loc[1] == "email"));
    // None of those used the links up.
    assert_eq!(verify(&app, &verify_token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(reset(&app, &reset_token, NEW_PASSWORD).await.status, StatusCode::NO_CONTENT);
}

async fn signup_sends_a_verification_whose_link_verifies_the_address_once(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    assert_eq!(me(&app, &user.access).await["email_verified"], false);
    assert!(app.mailbox.to(&user.email).is_empty(), "sent after the answer, by the worker");
    assert_eq!(app.deliver_mail().await.sent, 1);
    let token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    assert_eq!(verify(&app, &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &user.access).await["email_verified"], true);
    invalid(&verify(&app, &token).await, "a used verification token");
    // The session goes on: verifying is no credential change.
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::OK);
}

async fn a_verification_link_expires_after_24_hours(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    app.clock.advance(Duration::hours(24) + Duration::seconds(1));
    invalid(&verify(&app, &token).await, "a day on");
}

async fn an_email_change_is_verified_anew_and_told_to_the_address_of_before(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let old_token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    let moved = format!("moved-{}", user.email);
    let body = json!({"email": moved, "current_password": PASSWORD});
    let changed = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
    assert_eq!(changed.json()["email_verified"], false);
    app.deliver_mail().await;
    // The address of before was never proved: nobody there is told (or anyone could mail a
    // stranger by signing up with the stranger's address and moving away from it).
    assert!(app.mailbox.to(&user.email).iter().all(|m| m.kind != MailKind::EmailChanged));
    // Its link is bound to it: worthless now.
    invalid(&verify(&app, &old_token).await, "a link to the address of before");
    let token = app.mailbox.token(&moved, MailKind::VerifyEmail);
    assert_eq!(verify(&app, &token).await.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &user.access).await["email_verified"], true);
    // A proved address that the account leaves is told, and the notice names where it went.
    let again = format!("again-{}", user.email);
    let body = json!({"email": again, "current_password": PASSWORD});
    assert_eq!(
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await.status,
        StatusCode::OK
    );
    app.deliver_mail().await;
    let notice = app.mailbox.to(&moved).into_iter().find(|m| m.kind == MailKind::EmailChanged);
    let notice = notice.expect("a notice to the proved address of before");
    assert!(notice.text.contains(&again) && notice.token().is_none(), "{}", notice.text);
    // A change of spelling only (the same account key) is no change of address.
    let body = json!({"email": again.to_uppercase(), "current_password": PASSWORD});
    let respelt = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(respelt.status, StatusCode::OK, "{}", respelt.text());
}

async fn a_superusers_new_account_gets_a_verification_too(backend: Backend) {
    let app = app(backend, &[]).await;
    let admin = app.superuser().await;
    let email = format!("made-{}@example.com", uuid::Uuid::new_v4().simple());
    let body = json!({"email": email, "password": PASSWORD});
    let created = app.json(Method::POST, "/v1/users", Some(&admin.access), body).await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.json()["email_verified"], false);
    assert_eq!(
        me(&app, &admin.access).await["email_verified"],
        true,
        "the admin command's superusers are verified"
    );
    app.deliver_mail().await;
    assert_eq!(app.mailbox.to(&email).len(), 1);
}

async fn a_new_verification_message_supersedes_the_last_and_none_goes_to_a_verified_address(
    backend: Backend,
) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let first = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    let again = app.call(Method::POST, "/v1/users/me/verification-email", Some(&user.access)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.text());
    app.deliver_mail().await;
    let second = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    assert_ne!(first, second);
    invalid(&verify(&app, &first).await, "the superseded link");
    assert_eq!(verify(&app, &second).await.status, StatusCode::NO_CONTENT);
    let sent = app.mailbox.all().len();
    let verified = app.call(Method::POST, "/v1/users/me/verification-email", Some(&user.access)).await;
    assert_eq!(verified.status, StatusCode::ACCEPTED);
    app.deliver_mail().await;
    assert_eq!(app.mailbox.all().len(), sent, "nothing to a verified address");
    let anonymous = app.call(Method::POST, "/v1/users/me/verification-email", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

async fn with_verification_required_an_unverified_login_is_refused_and_says_why(backend: Backend) {
    let app = app(backend, &[("REQUIRE_EMAIL_VERIFICATION", "true")]).await;
    let email = format!("strict-{}@example.com", uuid::Uuid::new_v4().simple());
    assert_eq!(app.signup(&email, PASSWORD).await.status, StatusCode::CREATED);
    let refused = app.login(&email, PASSWORD).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"], "invalid_grant");
    assert!(
        refused.json()["error_description"].as_str().unwrap().contains("not verified"),
        "{}",
        refused.text()
    );
    // A wrong password learns nothing of it: the answer of an address nobody has.
    let wrong = app.login(&email, "not the password").await;
    let nobody = app.login("nobody-at-all@example.com", "not the password").await;
    assert_eq!((wrong.status, &wrong.body), (nobody.status, &nobody.body));
    // Refusals of the right password are not failures: the owner is never locked out by them.
    for _ in 0..6 {
        assert!(app.login(&email, PASSWORD).await.text().contains("not verified"));
    }
    app.deliver_mail().await;
    assert_eq!(
        verify(&app, &app.mailbox.token(&email, MailKind::VerifyEmail)).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.login(&email, PASSWORD).await.status, StatusCode::OK);
}

async fn at_most_three_messages_go_to_one_address_an_hour(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    // The signup's verification is the first of the hour's three.
    for _ in 0..4 {
        assert_eq!(recover(&app, &user.email).await.status, StatusCode::ACCEPTED);
    }
    let swept = app.deliver_mail().await;
    assert_eq!(swept.sent, 3, "{swept:?}");
    let kinds: Vec<MailKind> = app.mailbox.to(&user.email).iter().map(|m| m.kind).collect();
    assert_eq!(kinds, [MailKind::VerifyEmail, MailKind::ResetPassword, MailKind::ResetPassword]);
    assert!(
        app.state.repos.mail.pending_mail(10, None).await.unwrap().records.is_empty(),
        "dropped, not kept"
    );
    app.clock.advance(Duration::hours(1) + Duration::seconds(1));
    recover(&app, &user.email).await;
    assert_eq!(app.deliver_mail().await.sent, 1, "a new hour");
}

async fn request_from(app: &TestApp, address: &str, email: &str) -> TestResponse {
    let mut request = Request::post("/v1/auth/password-recovery")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({"email": email}).to_string()))
        .unwrap();
    request.extensions_mut().insert(context_with_source_ip(address));
    app.send(request).await
}

async fn requests_for_mail_from_one_source_address_are_throttled(backend: Backend) {
    let app = app(backend, &[]).await;
    for n in 0..20 {
        let response = request_from(&app, "198.51.100.7", &format!("nobody-{n}@example.com")).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "request {n}");
    }
    let refused = request_from(&app, "198.51.100.7", "nobody-else@example.com").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text());
    let retry_after: i64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after), "{retry_after}");
    assert!(refused.detail().as_str().unwrap().contains("mail"), "{}", refused.text());
    // Another address is not held by it; and the verification endpoint shares the limit.
    assert_eq!(request_from(&app, "198.51.100.8", "nobody@example.com").await.status, StatusCode::ACCEPTED);
    let user = app.user().await;
    let mut resend = Request::post("/v1/users/me/verification-email")
        .header(header::AUTHORIZATION, format!("Bearer {}", user.access))
        .body(Body::empty())
        .unwrap();
    resend.extensions_mut().insert(context_with_source_ip("198.51.100.7"));
    assert_eq!(app.send(resend).await.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(Duration::hours(1));
    assert_eq!(request_from(&app, "198.51.100.7", "nobody@example.com").await.status, StatusCode::ACCEPTED);
}

async fn a_send_that_fails_stays_in_the_outbox_until_it_goes(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    let throttled = || SendError::Transient("TooManyRequestsException".into());
    app.mailbox.fail_next([throttled(), throttled(), throttled()]);
    let worker = worker::Worker::new(&app.state, app.mailbox.clone());
    let deadline = || tokio::time::Instant::now() + StdDuration::from_secs(30);
    // Three runs fail (the claim is given back each time, so the next may try at once)...
    for run in 0..3 {
        let swept = worker.outbox.sweep(StdDuration::ZERO, deadline()).await.unwrap();
        assert_eq!((swept.sent, swept.retry_later), (0, 1), "run {run} leaves it for the next");
        let pending = app.state.repos.mail.pending_mail(10, None).await.unwrap().records;
        assert_eq!(pending.len(), 1, "kept after run {run}");
    }
    // ...and the fourth sends it, the link in it the live one.
    assert_eq!(app.deliver_mail().await.sent, 1);
    let token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    assert_eq!(
        verify(&app, &token).await.status,
        StatusCode::NO_CONTENT,
        "the link that went is the live one"
    );
    // It was counted once against the address's three an hour, not once per attempt.
    for _ in 0..2 {
        recover(&app, &user.email).await;
    }
    assert_eq!(app.deliver_mail().await.sent, 2);
}

async fn a_send_that_fails_in_the_stream_is_left_to_the_sweep_and_holds_up_no_purge(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    let gone = app.user().await;
    assert_eq!(app.delete("/v1/users/me", &gone.access).await.status, StatusCode::NO_CONTENT);
    let mail = app.state.repos.mail.pending_mail(10, None).await.unwrap().records;
    let id = mail.iter().find(|m| m.email_key == user.email).unwrap().id;
    let record = |n: u32, pk: String, sk: String| {
        json!({"eventID": n.to_string(), "eventName": "INSERT", "awsRegion": "us-east-1",
            "dynamodb": {"Keys": {"PK": {"S": pk}, "SK": {"S": sk}}, "SequenceNumber": n.to_string(), "SizeBytes": 1}})
    };
    use shared::repo::keys::{outbox_pk, outbox_sk, purge_sk, purges_pk};
    let batch = json!({"Records": [
        record(7, outbox_pk(id), outbox_sk(id)),
        record(8, purges_pk(gone.id), purge_sk(gone.id)),
    ]});
    let worker = worker::Worker::new(&app.state, app.mailbox.clone());
    let deadline = || tokio::time::Instant::now() + StdDuration::from_secs(30);
    app.mailbox.fail_next([SendError::Transient("ServiceUnavailable".into())]);
    let event = serde_json::from_value::<worker::Event>(batch).unwrap();
    // No failed record: Lambda would retry the rest of the batch (the purge) and, in the end,
    // send it to the on-failure queue. The message stays in the outbox; the purge is done.
    assert_eq!(worker.handle(event, deadline()).await.unwrap(), json!({"batchItemFailures": []}));
    assert_eq!(app.state.repos.purges.get_purge(gone.id).await.unwrap(), None, "purged");
    assert!(app.state.repos.mail.get_mail(id).await.unwrap().is_some(), "kept for the sweep");
    assert!(app.mailbox.to(&user.email).is_empty());
    app.deliver_mail().await;
    assert_eq!(app.mailbox.to(&user.email).len(), 1, "the sweep sent it");
}

async fn the_notice_of_an_email_change_is_never_throttled(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = app.mailbox.token(&user.email, MailKind::VerifyEmail);
    assert_eq!(verify(&app, &token).await.status, StatusCode::NO_CONTENT);
    // The signup's verification and two recoveries: the address's three of the hour.
    for _ in 0..2 {
        recover(&app, &user.email).await;
    }
    assert_eq!(app.deliver_mail().await.sent, 2);
    recover(&app, &user.email).await;
    assert_eq!(app.deliver_mail().await.sent, 0, "the limit holds");
    let new_email = format!("elsewhere-{}", user.email);
    let body = json!({"email": new_email, "current_password": PASSWORD});
    assert_eq!(
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await.status,
        StatusCode::OK
    );
    app.deliver_mail().await;
    let notices: Vec<_> =
        app.mailbox.to(&user.email).into_iter().filter(|m| m.kind == MailKind::EmailChanged).collect();
    assert_eq!(notices.len(), 1, "the proved address of before is told, over its limit or not");
    assert!(notices[0].text.contains(&new_email));
}

async fn a_deactivation_during_a_reset_wins(backend: Backend) {
    let app = app(backend, &[]).await;
    let admin = app.superuser().await;
    let user = user_with_mail(&app).await;
    recover(&app, &user.email).await;
    app.deliver_mail().await;
    // The reset's token as the handler read it, then a deactivation, then the reset's own write
    // (what happens when the deactivation lands while the new password is being hashed).
    let token = app
        .state
        .repos
        .mail
        .get_token(user.id, shared::repo::TokenPurpose::ResetPassword)
        .await
        .unwrap()
        .unwrap();
    deactivate(&app, &admin, &user).await;
    let changes = shared::repo::UserChanges {
        password_hash: Some("$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into()),
        email_verified: Some(true),
        if_active: true,
        if_credential_version: Some(token.credential_version),
        if_email_key: Some(token.email_key.clone()),
        ..Default::default()
    };
    let now = shared::deps::Clock::now(app.clock.as_ref());
    assert_eq!(app.state.repos.mail.redeem_token(&token, &changes, now).await.unwrap(), None);
    let stored = app.state.repos.users.get_user(user.id).await.unwrap().unwrap();
    assert_eq!(stored.credential_version, 0, "the password is the one of before");
}

async fn an_internationalised_domain_is_mailed_in_its_ascii_form(backend: Backend) {
    let app = app(backend, &[]).await;
    let local = format!("idn-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(app.signup(&format!("{local}@bücher.example"), PASSWORD).await.status, StatusCode::CREATED);
    app.deliver_mail().await;
    let ascii = format!("{local}@xn--bcher-kva.example");
    let received = app.mailbox.to(&ascii);
    assert_eq!(received.len(), 1, "{:?}", app.mailbox.all().iter().map(|m| m.to.clone()).collect::<Vec<_>>());
    assert_eq!(verify(&app, &received[0].token().unwrap()).await.status, StatusCode::NO_CONTENT);
}

async fn a_link_is_used_once_even_by_two_requests_at_once(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = reset_link(&app, &user.email).await;
    let (a, b) = tokio::join!(
        reset(&app, &token, "first new passphrase"),
        reset(&app, &token, "second new passphrase")
    );
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::NO_CONTENT, StatusCode::BAD_REQUEST]);
    let winner =
        if a.status == StatusCode::NO_CONTENT { "first new passphrase" } else { "second new passphrase" };
    assert_eq!(app.login(&user.email, winner).await.status, StatusCode::OK);
}

async fn an_email_change_or_a_deletion_makes_an_outstanding_reset_link_worthless(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = user_with_mail(&app).await;
    let token = reset_link(&app, &user.email).await;
    let body = json!({"email": format!("new-{}", user.email), "current_password": PASSWORD});
    assert_eq!(
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await.status,
        StatusCode::OK
    );
    invalid(&reset(&app, &token, NEW_PASSWORD).await, "a link to the address of before");

    let other = user_with_mail(&app).await;
    let token = reset_link(&app, &other.email).await;
    assert_eq!(app.delete("/v1/users/me", &other.access).await.status, StatusCode::NO_CONTENT);
    invalid(&reset(&app, &token, NEW_PASSWORD).await, "a deleted account's link, before its purge");
}

async fn an_email_change_counts_as_a_request_for_mail(backend: Backend) {
    let app = app(backend, &[("MAIL_MAX_REQUESTS_PER_ADDRESS", "2")]).await;
    let user = app.user().await;
    for n in 0..2 {
        let body = json!({"email": format!("move-{n}-{}", user.email), "current_password": PASSWORD});
        let moved = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    }
    let body = json!({"email": format!("move-2-{}", user.email), "current_password": PASSWORD});
    let refused = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.text());
    assert!(me(&app, &user.access).await["email"].as_str().unwrap().starts_with("move-1-"), "unchanged");
    // A change of the name alone sends nothing, and is not counted.
    let renamed =
        app.json(Method::PATCH, "/v1/users/me", Some(&user.access), json!({"full_name": "N"})).await;
    assert_eq!(renamed.status, StatusCode::OK);
}

async fn a_message_refused_for_good_is_dropped_and_one_never_sent_is_given_up_after_a_day(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    app.mailbox.fail_next([SendError::Permanent("MessageRejected".into())]);
    let swept = app.deliver_mail().await;
    assert_eq!((swept.sent, swept.given_up), (0, 1));
    assert!(app.mailbox.to(&user.email).is_empty());
    assert!(app.state.repos.mail.pending_mail(10, None).await.unwrap().records.is_empty());
    recover(&app, &user.email).await;
    app.clock.advance(Duration::hours(24) + Duration::seconds(1));
    let swept = app.deliver_mail().await;
    assert_eq!((swept.sent, swept.given_up), (0, 1), "a day late is too late");
}

async fn messages_name_the_product_link_to_the_app_and_hold_no_password(backend: Backend) {
    let app = app(backend, &[("APP_URL", "https://app.example.com/"), ("PRODUCT_NAME", "Acme Notes")]).await;
    let user = app.user().await;
    recover(&app, &user.email).await;
    app.deliver_mail().await;
    let messages = app.mailbox.to(&user.email);
    assert_eq!(messages.len(), 2);
    for message in &messages {
        assert!(message.subject.contains("Acme Notes"), "{}", message.subject);
        assert!(message.text.contains("Acme Notes") && message.html.contains("Acme Notes"));
        let token = message.token().unwrap();
        let path = if message.kind == MailKind::ResetPassword { "reset-password" } else { "verify-email" };
        let link = format!("https://app.example.com/{path}?token={token}");
        assert!(message.text.contains(&link) && message.html.contains(&link), "{}", message.text);
        let raw = String::from_utf8_lossy(&message.raw);
        assert!(
            !raw.contains(PASSWORD) && !message.text.contains(PASSWORD) && !message.html.contains(PASSWORD)
        );
        assert!(raw.contains("multipart/alternative"), "{raw}");
    }
}

async fn a_deactivated_account_cannot_use_a_reset_link(backend: Backend) {
    let app = app(backend, &[]).await;
    let admin = app.superuser().await;
    let user = user_with_mail(&app).await;
    let token = reset_link(&app, &user.email).await;
    deactivate(&app, &admin, &user).await;
    invalid(&reset(&app, &token, NEW_PASSWORD).await, "an inactive account");
}

async fn nothing_is_sent_for_a_deleted_account(backend: Backend) {
    let app = app(backend, &[]).await;
    let user = app.user().await;
    recover(&app, &user.email).await;
    assert_eq!(app.delete("/v1/users/me", &user.access).await.status, StatusCode::NO_CONTENT);
    let swept = app.deliver_mail().await;
    assert_eq!(swept.sent, 0);
    assert!(app.mailbox.to(&user.email).is_empty());
    assert!(app.state.repos.mail.pending_mail(10, None).await.unwrap().records.is_empty());
}

/// A record in the outbox that cannot be read (written by a release of before, or by hand) holds
/// nothing up: the listing skips it, and sending it removes it. (The memory store cannot hold one.)
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn an_outbox_record_that_cannot_be_read_holds_nothing_up() {
    use shared::repo::keys::{outbox_pk, outbox_sk};
    let store = api_tests::dynamo::store().await;
    let state = shared::AppState::new(api_tests::config(), shared::repo::Repos::from_store(store.clone()));
    let app = TestApp::from_state(state.with_hasher(api_tests::fast_hasher()));
    let user = app.user().await;
    let bad = uuid::Uuid::now_v7();
    let s = |v: String| aws_sdk_dynamodb::types::AttributeValue::S(v);
    store
        .client()
        .put_item()
        .table_name(store.table())
        .item("PK", s(outbox_pk(bad)))
        .item("SK", s(outbox_sk(bad)))
        .item("type", s("outbox".into()))
        .item("kind", s("no such kind".into()))
        .send()
        .await
        .unwrap();
    let pending = app.state.repos.mail.pending_mail(10, None).await.unwrap().records;
    assert_eq!(pending.len(), 1, "the readable one: {pending:?}");
    assert_eq!(app.deliver_mail().await.sent, 1);
    assert_eq!(app.mailbox.to(&user.email).len(), 1);
    let worker = worker::Worker::new(&app.state, app.mailbox.clone());
    assert_eq!(worker.outbox.send(bad).await.unwrap(), worker::outbox::Sent::GivenUp);
    assert_eq!(app.state.repos.mail.get_mail(bad).await.unwrap(), None, "removed");
}
