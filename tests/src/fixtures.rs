//! What the sample events of `events/` name (`catalog::events`): the superuser
//! `admin@example.com` and the user `user@example.com` with their fixed ids, a real token for
//! each placeholder, and for each resource path parameter (`{item_id}`) a record of the user's
//! with the fixed id, made by the collection's own create event (`POST /v1/items`). The events
//! test and the IAM test both build them.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use chrono::{DateTime, Utc};
use shared::AppState;
use shared::deps::{Clock, IdGenerator, UuidV7};
use shared::domain::Email;
use shared::repo::{MailToken, TokenPurpose, UserRecord};
use uuid::Uuid;

use crate::{PASSWORD, TestApp};
use catalog::events::{self, ADMIN_EMAIL, ADMIN_ID, Event, USER_EMAIL, USER_ID};

/// Ids given out in a chosen order first, then new ones: how a create makes a fixture's id.
#[derive(Debug, Default)]
pub struct QueuedIds {
    queue: Mutex<VecDeque<Uuid>>,
    fallback: UuidV7,
}

impl QueuedIds {
    pub fn push(&self, id: Uuid) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push_back(id);
    }
}

impl IdGenerator for QueuedIds {
    fn new_id(&self, at: DateTime<Utc>) -> Uuid {
        let queued = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
        queued.unwrap_or_else(|| self.fallback.new_id(at))
    }
}

/// The events of the built-in template and the code's document.
pub fn all_events() -> Vec<Event> {
    let document = serde_json::to_value(catalog::openapi()).expect("the document as JSON");
    events::events(&catalog::routes().expect("the template's routes"), &document).expect("the events")
}

/// An event's text with every placeholder filled in.
pub fn fill(event: &Event, substitutions: &[(String, String)]) -> String {
    let mut text = event.text.clone();
    for (placeholder, value) in substitutions {
        text = text.replace(placeholder, value);
    }
    assert!(
        !["<access token", "<refresh token", "<reset token", "<verification token"]
            .iter()
            .any(|p| text.contains(p)),
        "{}: unknown placeholder",
        event.name
    );
    text
}

/// The fixtures over `state`.
#[derive(Debug)]
pub struct Fixtures {
    pub app: TestApp,
    /// Placeholder in the events → what the test puts there.
    pub substitutions: Vec<(String, String)>,
}

pub async fn fixtures(state: AppState) -> Fixtures {
    let ids = Arc::new(QueuedIds::default());
    let app = TestApp::from_state(state.with_ids(ids.clone()));
    let now = app.clock.now();
    let hash = app.state.hasher.hash(PASSWORD.into()).await.expect("hash");
    for (id, email, superuser) in [(ADMIN_ID, ADMIN_EMAIL, true), (USER_ID, USER_EMAIL, false)] {
        let user = UserRecord {
            id: id.parse().expect("uuid"),
            email: Email::parse(email).expect("email"),
            full_name: None,
            password_hash: hash.clone(),
            is_active: true,
            is_superuser: superuser,
            credential_version: 0,
            email_verified: true,
            created_at: now,
            updated_at: now,
        };
        app.state.repos.users.create_user(&user).await.expect("create a fixture user");
    }
    let mut substitutions = Vec::new();
    for email in [ADMIN_EMAIL, USER_EMAIL] {
        let token = app.login(email, PASSWORD).await.json();
        let access = token["access_token"].as_str().expect("access token").to_owned();
        let refresh = token["refresh_token"].as_str().expect("refresh token").to_owned();
        substitutions.push((events::access_token_placeholder(email), access));
        substitutions.push((events::refresh_token_placeholder(email), refresh));
    }
    // A live link of each purpose for the user, as the worker mints them.
    let user_id: Uuid = USER_ID.parse().expect("uuid");
    for (purpose, placeholder) in [
        (TokenPurpose::ResetPassword, events::reset_token_placeholder(USER_EMAIL)),
        (TokenPurpose::VerifyEmail, events::verification_token_placeholder(USER_EMAIL)),
    ] {
        let token = shared::auth::refresh::generate(user_id);
        let record = MailToken {
            user_id,
            purpose,
            token_hash: shared::auth::refresh::hash(&token),
            credential_version: 0,
            email_key: Email::parse(USER_EMAIL).expect("email").key(),
            expires_at: now + chrono::Duration::minutes(30),
        };
        assert!(app.state.repos.mail.mint_token(&record).await.expect("mint"), "a live link");
        substitutions.push((placeholder, token));
    }
    // Each resource's fixture, by its own create event, under the id its events name.
    let all = all_events();
    let routes = catalog::routes().expect("routes");
    let parameters = events::path_parameters(&routes);
    for parameter in parameters.iter().filter(|p| *p != "user_id") {
        let route = routes
            .iter()
            .find(|r| r.path.ends_with(&format!("/{{{parameter}}}")))
            .unwrap_or_else(|| panic!("no route ends with {{{parameter}}}"));
        let collection = route.path.trim_end_matches(&format!("/{{{parameter}}}"));
        let create = all
            .iter()
            .find(|e| e.route == collection && e.method == "POST")
            .unwrap_or_else(|| panic!("{{{parameter}}}: no POST {collection} event makes its fixture"));
        ids.push(events::fixture_id(parameter, &parameters).parse().expect("uuid"));
        let mut request = lambda_http::request::from_str(&fill(create, &substitutions)).expect("the event");
        // Without the event's retry key: the event itself, sent later, must do its work (not be
        // answered with this one's).
        request.headers_mut().remove("idempotency-key");
        let created = app.send(request.map(|b| Body::from(b.to_vec()))).await;
        assert_eq!(created.status.as_u16(), 201, "{}: {}", create.name, created.text());
    }
    Fixtures { app, substitutions }
}
