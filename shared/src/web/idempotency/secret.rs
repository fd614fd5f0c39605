//! A retry whose body holds a password (signup, `POST /v1/users`) is the same payload only if the
//! password is the one the first request created its account with. That is checked against the
//! account's own argon2 hash, never a fast hash of it, and counted by the login throttle as every
//! password check is (API.md, "Auth"): a key is no faster or freer an oracle than the token
//! endpoint.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::domain::Email;
use crate::error::ApiError;
use crate::repo::KeptAnswer;
use crate::state::AppState;
use crate::web::{SourceAddress, throttle};

/// What a retry's password is.
pub(super) enum Verdict {
    /// The account's: the kept answer is the retry's.
    Same,
    /// Another: another payload.
    Another,
    /// Not checked: too many checks (429), or the store down (503).
    Refused(Response),
}

/// Checks `password`, from the retry whose body is `body`, against the account that `answer`
/// (a kept 201) created.
pub(super) async fn check(
    state: &AppState,
    parts: &mut Parts,
    body: &[u8],
    answer: &KeptAnswer,
    password: &str,
) -> Verdict {
    let account = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|kept| kept["id"].as_str().and_then(|id| id.parse().ok()));
    // Only a creation is kept on a route with a password, and it names its account.
    let Some(account) = account else { return Verdict::Another };
    let typed = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|sent| sent["email"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let email_key = throttle::email_key(&typed, Email::parse(&typed).ok().as_ref());
    let address =
        SourceAddress::from_request_parts(parts, state).await.unwrap_or_else(|never| match never {});
    let admitted = match throttle::admit(state, &email_key, &address, Some(account)).await {
        Ok(admitted) => admitted,
        Err(refused) => return Verdict::Refused(refused.into_response()),
    };
    let hash = match state.repos.users.get_user(account).await {
        Ok(user) => user.map(|user| user.password_hash),
        Err(e) => return Verdict::Refused(ApiError::from(e).into_response()),
    };
    match state.hasher.verify(secrecy::SecretString::from(password.to_owned()), hash).await {
        Ok(true) => match throttle::succeeded(state, &admitted).await {
            Ok(()) => Verdict::Same,
            Err(e) => Verdict::Refused(e.into_response()),
        },
        Ok(false) => Verdict::Another,
        Err(e) => Verdict::Refused(e.into_response()),
    }
}
