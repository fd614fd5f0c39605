//! Sessions end when they must (API.md, "Auth"): a credential change ends every session at once,
//! logins in flight included, and a refresh-token family lives at most 30 days from its login
//! however often it is rotated.

// Test bodies and their helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use api_tests::gated::GatedHasher;
use api_tests::keys::{header_of, signed_by, test_key};
use api_tests::records::Keys;
use api_tests::{PASSWORD, Session, TestApp, TestResponse};
use axum::http::{Method, StatusCode};
use chrono::Duration;
use serde_json::{Value, json};
use shared::repo::Repos;
use shared::repo::keys::user_pk;

fn oauth_error(response: &TestResponse) -> String {
    assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text());
    response.json()["error"].as_str().unwrap_or_default().to_owned()
}

/// A token of a session that has ended: 401 with RFC 6750's `invalid_token`.
fn assert_ended(response: &TestResponse, what: &str) {
    assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{what}: {}", response.text());
    assert_eq!(response.header("www-authenticate"), Some(r#"Bearer error="invalid_token""#), "{what}");
}

fn change_password(app: &TestApp, session: &Session, new: &str) -> impl Future<Output = TestResponse> {
    let body = json!({"current_password": PASSWORD, "new_password": new});
    app.json(Method::PATCH, "/v1/users/me/password", Some(&session.access), body)
}

#[tokio::test]
async fn a_password_change_ends_every_session_of_the_user_at_once() {
    let app = TestApp::memory();
    let phone = app.user().await;
    // A second login of the same user: another session.
    let login = app.login(&phone.email, PASSWORD).await.json();
    let laptop = Session {
        access: login["access_token"].as_str().unwrap().into(),
        refresh: login["refresh_token"].as_str().unwrap().into(),
        ..phone.clone()
    };
    let bystander = app.user().await;
    assert_eq!(change_password(&app, &phone, "a brand new passphrase").await.status, StatusCode::NO_CONTENT);
    // At once: the access tokens of both sessions, not only their refresh tokens, with no
    // waiting for the 15 minutes of an access token to pass.
    for session in [&phone, &laptop] {
        assert_ended(&app.get("/v1/users/me", &session.access).await, "an access token from before");
        assert_ended(&app.get("/v1/items", &session.access).await, "on another function");
        assert_eq!(oauth_error(&app.refresh(&session.refresh).await), "invalid_grant");
    }
    assert_eq!(app.get("/v1/users/me", &bystander.access).await.status, StatusCode::OK, "another user");
    let login = app.login(&phone.email, "a brand new passphrase").await;
    assert_eq!(login.status, StatusCode::OK);
    let access = login.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.get("/v1/users/me", &access).await.status, StatusCode::OK, "a login after the change");
    let refreshed = app.refresh(login.json()["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed.status, StatusCode::OK, "and its refresh token rotates");
}

#[tokio::test]
async fn a_password_set_by_a_superuser_ends_every_session_of_that_user() {
    let app = TestApp::memory();
    let (admin, user) = (app.superuser().await, app.user().await);
    let path = format!("/v1/users/{}", user.id);
    let reset =
        app.json(Method::PATCH, &path, Some(&admin.access), json!({"password": "set by the admin"})).await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.text());
    assert_ended(&app.get("/v1/users/me", &user.access).await, "the user's access token");
    assert_eq!(oauth_error(&app.refresh(&user.refresh).await), "invalid_grant");
    assert_eq!(
        app.get("/v1/users/me", &admin.access).await.status,
        StatusCode::OK,
        "the admin's own session"
    );
    // Any other change by a superuser ends nothing.
    let fresh = app.login(&user.email, "set by the admin").await.json();
    let access = fresh["access_token"].as_str().unwrap().to_owned();
    let renamed = app.json(Method::PATCH, &path, Some(&admin.access), json!({"full_name": "Renamed"})).await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(app.get("/v1/users/me", &access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_email_change_alone_ends_no_session() {
    let app = TestApp::memory();
    let user = app.user().await;
    let body = json!({"email": "moved-sessions@example.com", "current_password": PASSWORD});
    let moved = app.json(Method::PATCH, "/v1/users/me", Some(&user.access), body).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text());
    assert_eq!(app.get("/v1/users/me", &user.access).await.status, StatusCode::OK);
    assert_eq!(app.refresh(&user.refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_access_token_without_a_credential_version_is_refused() {
    let app = TestApp::memory();
    let user = app.user().await;
    let now = chrono::Utc::now().timestamp();
    let claims = json!({
        "sub": user.id.to_string(), "iat": now, "exp": now + 600, "iss": app.state.jwt.issuer(),
        "aud": "lambda-api", "jti": "a-jti",
    });
    let key = test_key();
    let header = header_of(&key);
    let token = signed_by(&key, &header, &claims);
    assert_ended(&app.get("/v1/users/me", &token).await, "a token from before the claim existed");
    // The same claims with the user's version pass: only the claim was missing.
    let mut with_version: Value = claims.clone();
    with_version["cv"] = json!(0);
    let token = signed_by(&key, &header, &with_version);
    assert_eq!(app.get("/v1/users/me", &token).await.status, StatusCode::OK);
}

trait Store: shared::repo::AllRepos + Keys + Sync {}
impl<T: shared::repo::AllRepos + Keys + Sync> Store for T {}

fn gated_app<S: Store>(store: &Arc<S>, hasher: &Arc<GatedHasher>) -> TestApp {
    let state = shared::AppState::new(api_tests::config(), Repos::from_store(store.clone()));
    TestApp::from_state(state.with_hasher(hasher.clone()))
}

/// Each race on both stores: in memory, and on DynamoDB Local (with the `dynamodb` feature).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(std::sync::Arc::new(shared::repo::memory::MemoryStore::new())).await;
            })*
        }
        #[cfg(feature = "dynamodb")]
        mod dynamodb {
            $(#[tokio::test]
            async fn $name() {
                super::$name(api_tests::dynamo::store().await).await;
            })*
        }
    };
}

on_both_stores!(
    a_login_in_flight_when_the_password_changes_gets_no_session,
    a_password_change_checked_against_a_replaced_password_is_refused,
    an_email_change_checked_against_a_replaced_password_is_refused,
    a_promotion_does_not_follow_an_account_that_moved_away_from_the_address,
);

/// A login whose password check is still running when the password changes gets no session:
/// neither a token pair nor a family recorded afterwards, nor its address remembered.
async fn a_login_in_flight_when_the_password_changes_gets_no_session<S: Store>(store: Arc<S>) {
    let hasher = GatedHasher::new(false);
    let app = gated_app(&store, &hasher);
    let user = app.user().await;
    let (arrived, release) = hasher.arm();
    let in_flight = app.login_from("203.0.113.77", &user.email, PASSWORD);
    let change = async {
        arrived.await.expect("the login reached the gate");
        let changed = change_password(&app, &user, "changed mid-login").await;
        release.send(()).expect("release the login");
        changed
    };
    let (login, changed) = tokio::join!(in_flight, change);
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.text());
    assert_eq!(oauth_error(&login), "invalid_grant", "the login in flight: {}", login.text());
    let partition = user_pk(user.id);
    let families: Vec<_> = store
        .all_keys()
        .await
        .into_iter()
        .filter(|(pk, sk)| *pk == partition && sk.starts_with(shared::repo::keys::FAMILY.prefix))
        .collect();
    assert_eq!(families, vec![], "no family is left behind for the login in flight");
    let now = shared::deps::Clock::now(app.clock.as_ref());
    assert!(!store.knows_address(user.id, "203.0.113.77", now).await.unwrap(), "nor its address");
    assert_eq!(app.login(&user.email, "changed mid-login").await.status, StatusCode::OK);
}

/// Two who know the password change it at once: the one whose check ran against the password
/// the other replaced is refused (its session ended), and the other's password stands.
async fn a_password_change_checked_against_a_replaced_password_is_refused<S: Store>(store: Arc<S>) {
    let hasher = GatedHasher::new(false);
    let app = gated_app(&store, &hasher);
    let owner = app.user().await;
    let login = app.login_from("203.0.113.66", &owner.email, PASSWORD).await.json();
    let thief = Session { access: login["access_token"].as_str().unwrap().into(), ..owner.clone() };
    let (arrived, release) = hasher.arm();
    let stolen = change_password(&app, &thief, "the thief's password");
    let rescue = async {
        arrived.await.expect("the thief's change reached the gate");
        let changed = change_password(&app, &owner, "the owner's new password").await;
        release.send(()).expect("release");
        changed
    };
    let (stolen, rescue) = tokio::join!(stolen, rescue);
    assert_eq!(rescue.status, StatusCode::NO_CONTENT, "{}", rescue.text());
    assert_ended(&stolen, "the change checked against the replaced password");
    assert_eq!(app.login(&owner.email, "the owner's new password").await.status, StatusCode::OK);
    assert_eq!(app.login(&owner.email, "the thief's password").await.status, StatusCode::BAD_REQUEST);
}

/// The same for an email change: it cannot move the account once the password it was checked
/// against has been replaced.
async fn an_email_change_checked_against_a_replaced_password_is_refused<S: Store>(store: Arc<S>) {
    let hasher = GatedHasher::new(false);
    let app = gated_app(&store, &hasher);
    let owner = app.user().await;
    let (arrived, release) = hasher.arm();
    let body = json!({"email": "thief@example.com", "current_password": PASSWORD});
    let stolen = app.json(Method::PATCH, "/v1/users/me", Some(&owner.access), body);
    let rescue = async {
        arrived.await.expect("the email change reached the gate");
        let login = app.login_from("198.51.100.9", &owner.email, PASSWORD).await.json();
        let fresh = Session { access: login["access_token"].as_str().unwrap().into(), ..owner.clone() };
        let changed = change_password(&app, &fresh, "the owner's new password").await;
        release.send(()).expect("release");
        changed
    };
    let (stolen, rescue) = tokio::join!(stolen, rescue);
    assert_eq!(rescue.status, StatusCode::NO_CONTENT, "{}", rescue.text());
    assert_ended(&stolen, "the email change checked against the replaced password");
    let login = app.login(&owner.email, "the owner's new password").await;
    assert_eq!(login.status, StatusCode::OK, "the account still has its address: {}", login.text());
}

/// `--promote-existing` names an address; an account that moves away from it while the new
/// password is being hashed is not the one promoted: the address, now free, gets a new superuser.
async fn a_promotion_does_not_follow_an_account_that_moved_away_from_the_address<S: Store>(store: Arc<S>) {
    use shared::admin::{IfExists, Outcome, ensure_superuser};
    let hasher = GatedHasher::new(true);
    let app = gated_app(&store, &hasher);
    let squatter = app.user().await;
    let (arrived, release) = hasher.arm();
    let promote = ensure_superuser(
        &app.state,
        &squatter.email,
        Some("the operator's password"),
        IfExists::PromoteExisting,
    );
    let moving = async {
        arrived.await.expect("the promotion reached the gate");
        let elsewhere = shared::domain::Email::parse("moved-away@example.com").unwrap();
        let moved = shared::repo::UserChanges { email: Some(elsewhere), ..Default::default() };
        let now = shared::deps::Clock::now(app.clock.as_ref());
        store.update_user(squatter.id, &moved, now).await.unwrap();
        release.send(()).expect("release");
    };
    let (promoted, ()) = tokio::join!(promote, moving);
    assert_eq!(promoted.unwrap(), Outcome::Created, "a new account for the address");
    let moved = store.get_user(squatter.id).await.unwrap().unwrap();
    assert!(!moved.is_superuser, "the account that moved away is not promoted");
    let key = shared::domain::Email::parse(&squatter.email).unwrap().key();
    let holder = store.find_user_by_email(&key).await.unwrap().unwrap();
    assert!(holder.is_superuser && holder.id != squatter.id);
}

#[tokio::test]
async fn a_session_ends_30_days_after_its_login_however_often_it_rotates() {
    let app = TestApp::memory();
    let user = app.user().await;
    let mut refresh = user.refresh.clone();
    // Rotated every 6 days, well within the refresh token's 7: on day 24 still alive.
    for _ in 0..4 {
        app.clock.advance(Duration::days(6));
        let rotated = app.refresh(&refresh).await;
        assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.text());
        refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    // Day 30 minus a second: the last rotation; its token ends with the session, not 7 days on.
    app.clock.advance(Duration::days(6) - Duration::seconds(1));
    let last = app.refresh(&refresh).await;
    assert_eq!(last.status, StatusCode::OK, "{}", last.text());
    let refresh = last.json()["refresh_token"].as_str().unwrap().to_owned();
    app.clock.advance(Duration::seconds(1));
    assert_eq!(oauth_error(&app.refresh(&refresh).await), "invalid_grant", "30 days after the login");
    // A new login starts a new session.
    assert_eq!(app.login(&user.email, PASSWORD).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_longest_session_is_configurable() {
    let mut config = api_tests::config();
    config.session_max_age_secs = 3600;
    let app = TestApp::with_config(config);
    let user = app.user().await;
    app.clock.advance(Duration::minutes(30));
    let rotated = app.refresh(&user.refresh).await;
    assert_eq!(rotated.status, StatusCode::OK);
    app.clock.advance(Duration::minutes(30));
    let refresh = rotated.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(oauth_error(&app.refresh(&refresh).await), "invalid_grant");
}
