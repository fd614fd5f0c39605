//! `CurrentUser` and `SuperUser`, the counterparts of FastAPI's `CurrentUser` dependency: they
//! read the bearer token (RFC 6750 §2.1), verify it, and load the user on every request, so a
//! deactivated or deleted user is refused at once rather than when the token expires.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::auth::jwt::Subject;
use crate::error::ApiError;
use crate::repo::UserRecord;
use crate::state::AppState;

#[derive(Debug, Clone)]
pub struct CurrentUser(pub UserRecord);

/// The caller, already loaded and checked by a layer before the handler (the idempotency
/// layer): [`CurrentUser`] takes it instead of reading the user again.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub(crate) UserRecord);

/// A current user who is a superuser; anyone else gets 403.
#[derive(Debug, Clone)]
pub struct SuperUser(pub UserRecord);

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let value = parts.headers.get(header::AUTHORIZATION).ok_or(ApiError::NotAuthenticated)?;
    let value = value.to_str().map_err(|_| ApiError::InvalidToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(ApiError::NotAuthenticated)?;
    // As FastAPI's OAuth2PasswordBearer: another scheme counts as no credentials at all.
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::NotAuthenticated);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(ApiError::NotAuthenticated);
    }
    Ok(token)
}

/// The subject of a valid access token, the user not loaded yet: for a handler that reads the
/// user together with what the request is about (a DynamoDB round trip saved), and then checks
/// it with [`current_user`].
#[derive(Debug, Clone, Copy)]
pub struct TokenSubject(pub Subject);

impl FromRequestParts<AppState> for TokenSubject {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(Self(state.jwt.verify(bearer(parts)?, state.clock.now()).await?))
    }
}

/// What [`CurrentUser`] requires of the token's user, once loaded: that it exists and still has
/// the credentials the token was issued under (401: a password change since ends the token),
/// and is active (403).
pub fn current_user<E: Into<ApiError>>(
    subject: &Subject,
    loaded: Result<Option<UserRecord>, E>,
) -> Result<UserRecord, ApiError> {
    let user = loaded.map_err(Into::into)?.ok_or(ApiError::InvalidToken)?;
    if user.id != subject.user_id || user.credential_version != subject.credential_version {
        return Err(ApiError::InvalidToken);
    }
    if !user.is_active {
        return Err(ApiError::Forbidden("Inactive user".into()));
    }
    Ok(user)
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(Authenticated(user)) = parts.extensions.get::<Authenticated>() {
            return Ok(Self(user.clone()));
        }
        let TokenSubject(subject) = TokenSubject::from_request_parts(parts, state).await?;
        current_user(&subject, state.repos.users.get_user(subject.user_id).await).map(Self)
    }
}

impl FromRequestParts<AppState> for SuperUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.is_superuser {
            return Err(ApiError::Forbidden("The user doesn't have enough privileges".into()));
        }
        Ok(Self(user))
    }
}
