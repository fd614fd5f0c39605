//! The throttle of password checks (API.md v1.1, "Auth"): per email and source address, per
//! address across emails, per email across addresses with the owner's recent addresses exempt;
//! wrong `current_password` checks count too; the source address as API.md defines it.

// Test bodies and their helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use api_tests::{Backend, PASSWORD, Session, TestApp, TestResponse};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use chrono::Duration;
use serde_json::json;
use shared::web::address::context_with_source_ip;

on_both_stores!(
    failures_from_one_address_never_lock_the_owner_out_from_another,
    a_success_clears_only_its_own_email_and_address_counter,
    spraying_one_password_over_many_emails_from_one_address_is_stopped,
    a_distributed_guess_is_stopped_except_from_the_owners_recent_addresses,
    a_wrong_current_password_counts_as_a_failed_login,
    a_forwarded_address_is_believed_only_from_a_trusted_proxy,
    without_trusted_proxies_forwarded_headers_are_ignored,
    ipv6_counts_per_64_and_mapped_ipv4_as_ipv4,
    requests_with_no_known_address_share_one_bucket,
    an_address_over_its_limit_writes_to_nothing_but_its_own_counter,
    a_login_from_no_known_address_is_never_remembered,
    every_spelling_of_an_address_is_one_counter,
);

const WRONG: &str = "not the password";

fn throttled(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::TOO_MANY_REQUESTS, "{what}: {}", response.text());
    let retry_after: u64 = response.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{what}: Retry-After {retry_after}");
}

fn refused(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{what}: {}", response.text());
    assert_eq!(response.json()["error"], "invalid_grant", "{what}");
}

fn ok(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::OK, "{what}: {}", response.text());
}

/// A login that reached the API from `peer`, carrying `X-Forwarded-For: forwarded` if given.
async fn login_via(
    app: &TestApp,
    peer: &str,
    forwarded: Option<&str>,
    email: &str,
    password: &str,
) -> TestResponse {
    let pairs = [("username", email), ("password", password)];
    let mut builder = Request::builder()
        .method(Method::POST)
        .uri("/v1/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(forwarded) = forwarded {
        builder = builder.header("x-forwarded-for", forwarded);
    }
    let mut request = builder.body(Body::from(serde_urlencoded::to_string(pairs).unwrap())).unwrap();
    request.extensions_mut().insert(context_with_source_ip(peer));
    app.send(request).await
}

async fn failures_from_one_address_never_lock_the_owner_out_from_another(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let victim = app.user().await;
    for n in 1..=5 {
        refused(&app.login_from("203.0.113.66", &victim.email, WRONG).await, &format!("guess {n}"));
    }
    throttled(&app.login_from("203.0.113.66", &victim.email, PASSWORD).await, "the guesser, even when right");
    ok(&app.login_from("198.51.100.1", &victim.email, PASSWORD).await, "the owner elsewhere");
    app.clock.advance(Duration::minutes(15));
    ok(&app.login_from("203.0.113.66", &victim.email, PASSWORD).await, "after the window");
}

async fn a_success_clears_only_its_own_email_and_address_counter(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    for peer in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..4 {
            refused(&app.login_from(peer, &user.email, WRONG).await, peer);
        }
    }
    ok(&app.login_from("203.0.113.1", &user.email, PASSWORD).await, "a success from the first");
    // The first address starts again from nothing; the second still has its four.
    for n in 1..=5 {
        refused(&app.login_from("203.0.113.1", &user.email, WRONG).await, &format!("first, again {n}"));
    }
    refused(&app.login_from("203.0.113.2", &user.email, WRONG).await, "second, its fifth");
    throttled(&app.login_from("203.0.113.2", &user.email, PASSWORD).await, "second, its sixth");
}

async fn spraying_one_password_over_many_emails_from_one_address_is_stopped(backend: Backend) {
    let mut config = api_tests::config();
    config.login_max_failures_per_address = 10;
    let app = backend.app(config).await;
    let user = app.user().await;
    for n in 0..10 {
        let email = format!("sprayed-{n}@example.com");
        refused(&app.login_from("203.0.113.99", &email, "Summer2026!").await, &email);
    }
    throttled(&app.login_from("203.0.113.99", "another@example.com", "Summer2026!").await, "the 11th");
    throttled(&app.login_from("203.0.113.99", &user.email, PASSWORD).await, "any login from there");
    ok(&app.login_from("198.51.100.1", &user.email, PASSWORD).await, "from another address");
    // Successes from one address (an office behind one NAT) are no failures.
    let mut config = api_tests::config();
    config.login_max_failures_per_address = 10;
    let office = backend.app(config).await;
    let colleague = office.user().await;
    for n in 0..25 {
        ok(&office.login_from("198.51.100.50", &colleague.email, PASSWORD).await, &format!("login {n}"));
    }
}

async fn a_distributed_guess_is_stopped_except_from_the_owners_recent_addresses(backend: Backend) {
    let mut config = api_tests::config();
    config.login_max_failures_per_email = 6;
    let app = backend.app(config).await;
    let owner = app.user().await;
    ok(&app.login_from("198.51.100.7", &owner.email, PASSWORD).await, "the owner, at home");
    for n in 1..=6 {
        let stranger = format!("203.0.113.{n}");
        refused(&app.login_from(&stranger, &owner.email, WRONG).await, &stranger);
    }
    throttled(&app.login_from("203.0.113.200", &owner.email, WRONG).await, "a 7th stranger");
    throttled(&app.login_from("203.0.113.201", &owner.email, PASSWORD).await, "even with the password");
    // The owner's own recent address is held only by its own (email, address) limit.
    ok(&app.login_from("198.51.100.7", &owner.email, PASSWORD).await, "the owner, at home");
    refused(&app.login_from("198.51.100.7", &owner.email, WRONG).await, "a typo at home");
    ok(&app.login_from("198.51.100.7", &owner.email, PASSWORD).await, "and again");
    // An address is remembered for 30 days from the last login there.
    app.clock.advance(Duration::days(30) + Duration::minutes(1));
    for n in 1..=6 {
        refused(&app.login_from(&format!("192.0.2.{n}"), &owner.email, WRONG).await, "a month later");
    }
    throttled(
        &app.login_from("198.51.100.7", &owner.email, PASSWORD).await,
        "home is forgotten after 30 days",
    );
    // Unknown emails are counted alike.
    for n in 1..=6 {
        refused(&app.login_from(&format!("203.0.113.{n}"), "nobody@example.com", WRONG).await, "unknown");
    }
    throttled(&app.login_from("203.0.113.7", "nobody@example.com", WRONG).await, "unknown, 7th");
}

async fn change_password(app: &TestApp, user: &Session, current: &str) -> TestResponse {
    let body = json!({"current_password": current, "new_password": "a brand new passphrase"});
    app.json(Method::PATCH, "/v1/users/me/password", Some(&user.access), body).await
}

async fn a_wrong_current_password_counts_as_a_failed_login(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    for n in 1..=3 {
        let wrong = change_password(&app, &user, WRONG).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "password change {n}");
    }
    for n in 1..=2 {
        let body = json!({"email": format!("moved-{n}@example.com"), "current_password": WRONG});
        let wrong = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
        assert_eq!(wrong.status, StatusCode::BAD_REQUEST, "email change {n}");
    }
    // Five failures for this email from this address, whichever way they came.
    throttled(&change_password(&app, &user, PASSWORD).await, "a sixth check, even right");
    throttled(&app.login(&user.email, PASSWORD).await, "a login from the same address");
    ok(&app.login_from("198.51.100.1", &user.email, PASSWORD).await, "the owner elsewhere");
    app.clock.advance(Duration::minutes(15));
    let fresh = Session { access: app.token_of(user.id).await, ..user.clone() };
    let changed = change_password(&app, &fresh, PASSWORD).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
}

async fn a_forwarded_address_is_believed_only_from_a_trusted_proxy(backend: Backend) {
    let mut config = api_tests::config();
    config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let app = backend.app(config).await;
    let user = app.user().await;
    // Behind the proxy, the client is the rightmost entry that is not a trusted proxy; what the
    // client wrote to the left of it is never believed.
    for n in 0..5 {
        let chain = format!("1.2.3.{n}, 203.0.113.9, 10.9.9.9");
        refused(&login_via(&app, "10.0.0.5", Some(&chain), &user.email, WRONG).await, "through the proxy");
    }
    throttled(&login_via(&app, "10.0.0.5", Some("203.0.113.9"), &user.email, PASSWORD).await, "that client");
    ok(&login_via(&app, "10.0.0.5", Some("198.51.100.1"), &user.email, PASSWORD).await, "another client");
    // A peer that is not a trusted proxy is the address, whatever it forwards.
    for _ in 0..5 {
        refused(&login_via(&app, "198.51.100.77", Some("198.51.100.2"), &user.email, WRONG).await, "spoof");
    }
    throttled(
        &login_via(&app, "198.51.100.77", Some("198.51.100.3"), &user.email, PASSWORD).await,
        "spoofer",
    );
    ok(
        &login_via(&app, "10.0.0.5", Some("198.51.100.2"), &user.email, PASSWORD).await,
        "the spoofed address",
    );
}

async fn without_trusted_proxies_forwarded_headers_are_ignored(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    for n in 0..5 {
        let forged = format!("198.51.100.{n}");
        refused(
            &login_via(&app, "203.0.113.5", Some(&forged), &user.email, WRONG).await,
            "rotating a header",
        );
    }
    throttled(
        &login_via(&app, "203.0.113.5", Some("198.51.100.200"), &user.email, PASSWORD).await,
        "same peer",
    );
}

async fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    for n in 1..=5 {
        refused(&app.login_from(&format!("2001:db8:1:2::{n:x}"), &user.email, WRONG).await, "one /64");
    }
    throttled(&app.login_from("2001:db8:1:2:ffff::1", &user.email, PASSWORD).await, "anywhere in that /64");
    ok(&app.login_from("2001:db8:1:3::1", &user.email, PASSWORD).await, "the next /64");
    for _ in 0..5 {
        refused(&app.login_from("::ffff:203.0.113.44", &user.email, WRONG).await, "mapped");
    }
    throttled(&app.login_from("203.0.113.44", &user.email, PASSWORD).await, "the same IPv4 address");
}

async fn requests_with_no_known_address_share_one_bucket(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    for peer in ["", "not an address", "", "999.1.1.1", ""] {
        refused(&app.login_from(peer, &user.email, WRONG).await, "no known address");
    }
    throttled(&app.login_from("garbage", &user.email, PASSWORD).await, "the unknown bucket");
    ok(&app.login_from("198.51.100.1", &user.email, PASSWORD).await, "a known address");
}

/// A flood from an address over its limit costs one write to that address's own counter per
/// request, and touches nothing of the email it names: it cannot make the victim's counters hot.
async fn an_address_over_its_limit_writes_to_nothing_but_its_own_counter(backend: Backend) {
    let mut config = api_tests::config();
    config.login_max_failures_per_address = 3;
    let app = backend.app(config).await;
    let victim = app.user().await;
    for n in 0..3 {
        refused(&app.login_from("203.0.113.13", &format!("sprayed-{n}@example.com"), WRONG).await, "spray");
    }
    for _ in 0..20 {
        throttled(&app.login_from("203.0.113.13", &victim.email, WRONG).await, "the flood");
    }
    // (The counters' names are the throttle's own: shared/src/web/throttle.rs.)
    let throttle = &app.state.repos.throttle;
    let now = shared::deps::Clock::now(app.clock.as_ref());
    let key = shared::domain::Email::parse(&victim.email).unwrap().key();
    for counter in [format!("E#{key}"), format!("EA#203.0.113.13#{key}")] {
        assert_eq!(throttle.attempts(&counter, now, 900).await.unwrap(), None, "{counter} untouched");
    }
    ok(&app.login_from("198.51.100.1", &victim.email, PASSWORD).await, "the owner");
}

/// The shared bucket of requests with no known address is nobody's address: a login from it is
/// not remembered, so it can never lend the per-email exemption to a stranger.
async fn a_login_from_no_known_address_is_never_remembered(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    let user = app.user().await;
    ok(&app.login_from("not an address", &user.email, PASSWORD).await, "a login from nowhere known");
    let now = shared::deps::Clock::now(app.clock.as_ref());
    let throttle = &app.state.repos.throttle;
    assert!(!throttle.knows_address(user.id, "unknown", now).await.unwrap());
    assert!(throttle.knows_address(user.id, api_tests::SOURCE_IP, now).await.unwrap(), "a real one is");
}

/// The throttle counts an address under its account key: NFC, NFD and upper-case spellings of
/// one address cannot each get their own five guesses.
async fn every_spelling_of_an_address_is_one_counter(backend: Backend) {
    let app = backend.app(api_tests::config()).await;
    assert_eq!(app.signup("zo\u{eb}@example.net", PASSWORD).await.status, StatusCode::CREATED);
    for spelling in ["zo\u{eb}@example.net", "zoe\u{308}@example.net", "ZO\u{cb}@EXAMPLE.NET"] {
        refused(&app.login(spelling, WRONG).await, spelling);
    }
    refused(&app.login("zoe\u{308}@Example.net", WRONG).await, "a fourth spelling");
    refused(&app.login("zo\u{eb}@example.net", WRONG).await, "the fifth failure");
    throttled(&app.login("ZOE\u{308}@example.net", PASSWORD).await, "the sixth, in any spelling");
}
