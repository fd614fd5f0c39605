//! The `auth` function: OAuth2 password login (RFC 6749 §4.3), refresh-token rotation with reuse
//! detection (RFC 6749 §6, RFC 9700 §4.14.2), and revocation (RFC 7009). Errors at these
//! endpoints are RFC 6749 §5.2 bodies, except 413 and the login throttle's 429.

mod recovery;
mod well_known;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use shared::auth::jwt::Subject;
use shared::auth::refresh::{self, MAX_REFRESH_TOKEN_LEN};
use shared::domain::Email;
use shared::error::OAuthErrorCode;
use shared::metrics::{Counted, Event};
use shared::openapi::{OAuthBadRequest, PayloadTooLarge, TooManyRequests, Unavailable};
use shared::repo::{NewFamily, RefreshRecord, Rotation};
use shared::web::{Form, Param, SourceAddress, throttle};
use shared::{ApiError, ApiResult, AppState};
use utoipa::ToSchema;
use uuid::Uuid;

/// This function's part of the OpenAPI document (the catalog joins the parts).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        token, revoke, recovery::password_recovery, recovery::reset_password, recovery::verify_email,
        well_known::jwks, well_known::openid_configuration,
    ),
    tags((name = "auth", description = "OAuth2 password login, refresh-token rotation, revocation, password recovery, email verification"))
)]
pub struct Api;

/// The token request: RFC 6749 §4.3 (password grant, as FastAPI's `OAuth2PasswordRequestForm`,
/// `grant_type` may be left out) and §6 (refresh). Only the fields of the chosen grant are read.
#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` (the default) or `refresh_token`.
    #[serde(default)]
    #[schema(value_type = String, required = false, pattern = "^(password|refresh_token)$")]
    pub grant_type: Param,
    /// The email address (password grant).
    #[serde(default)]
    #[schema(value_type = String, required = false, max_length = 1024)]
    pub username: Param,
    /// The password (password grant).
    #[serde(default)]
    #[schema(value_type = String, required = false, max_length = 1024, format = Password)]
    pub password: Param,
    /// The refresh token to exchange (refresh grant).
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub refresh_token: Param,
    /// Accepted and ignored, as OAuth2 clients send it.
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub scope: Param,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub client_id: Param,
    /// Accepted and ignored.
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub client_secret: Param,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password, the refresh token and the client secret never reach a log line.
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type.get().ok().flatten())
            .finish_non_exhaustive()
    }
}

/// The revocation request (RFC 7009 §2.1).
#[derive(Deserialize, ToSchema)]
pub struct RevokeRequest {
    /// The refresh token to revoke, with every token of its login.
    #[serde(default)]
    #[schema(value_type = String, required = true, min_length = 1)]
    pub token: Param,
    /// Accepted and ignored: only refresh tokens can be revoked.
    #[serde(default)]
    #[schema(value_type = String, required = false)]
    pub token_type_hint: Param,
}

impl std::fmt::Debug for RevokeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokeRequest").finish_non_exhaustive()
    }
}

/// The token response (RFC 6749 §5.1).
#[derive(Clone, Serialize, ToSchema)]
pub struct Token {
    /// An RS256 JWT for `Authorization: Bearer`, naming its key (`kid`) in the JWKS.
    pub access_token: String,
    #[schema(value_type = String, pattern = "^bearer$", example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; exchanged once for a new pair with `grant_type=refresh_token`.
    pub refresh_token: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Api as utoipa::OpenApi>::openapi()
}

/// The sample event (`events/post-v1-auth-token.json`) that stands for this function where one request
/// must: the bench's cold starts.
pub const PROBE: &str = "post-v1-auth-token";

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/auth/token", post(token))
        .route("/v1/auth/revoke", post(revoke))
        .route("/v1/auth/password-recovery", post(recovery::password_recovery))
        .route("/v1/auth/reset-password", post(recovery::reset_password))
        .route("/v1/auth/verify-email", post(recovery::verify_email))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/openid-configuration", get(well_known::openid_configuration));
    shared::web::finish(routes, state)
}

/// Longest username or password the token endpoint looks at; longer ones cannot be ours.
const MAX_CREDENTIAL_LEN: usize = 1024;

#[utoipa::path(
    post, path = "/v1/auth/token", tag = "auth", operation_id = "create_token",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded",
        example = json!({"grant_type": "password", "username": "user@example.com", "password": "correct horse battery"})),
    responses(
        (status = 200, description = "A new access token and refresh token", body = Token,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, response = OAuthBadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
async fn token(
    State(state): State<AppState>,
    address: SourceAddress,
    Form(form): Form<TokenRequest>,
) -> ApiResult<Response> {
    // As FastAPI's OAuth2PasswordRequestForm, grant_type may be omitted for the password grant.
    match form.grant_type.get()? {
        None | Some("password") => {
            let login = password_grant(&state, &form, &address).await;
            // Counted (metrics): a login let in, refused its credentials, or throttled.
            let event = match &login {
                Ok(_) => Some(Event::LoginOk),
                Err(ApiError::OAuth { code: OAuthErrorCode::InvalidGrant, description })
                    if *description != NOT_VERIFIED =>
                {
                    Some(Event::LoginFailed)
                }
                Err(ApiError::TooManyRequests { .. }) => Some(Event::LoginThrottled),
                Err(_) => None,
            };
            let mut response = login.into_response();
            if let Some(event) = event {
                Counted::add(&mut response, event);
            }
            Ok(response)
        }
        Some("refresh_token") => refresh_grant(&state, &form).await,
        Some(_) => Err(ApiError::OAuth {
            code: OAuthErrorCode::UnsupportedGrantType,
            description: "grant_type must be password or refresh_token",
        }),
    }
}

/// A login with the right password to an address not verified yet (when verification is
/// required): refused, but not a failed login (no metric counts it as one).
const NOT_VERIFIED: &str = "Email address not verified: follow the link in the verification message, or reset the password (a reset link proves the address too)";

async fn password_grant(
    state: &AppState,
    form: &TokenRequest,
    address: &SourceAddress,
) -> ApiResult<Response> {
    let username = form.username.get()?.ok_or(ApiError::invalid_request("username is required"))?;
    let password = form.password.get()?.ok_or(ApiError::invalid_request("password is required"))?;
    if username.len() > MAX_CREDENTIAL_LEN || password.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::invalid_grant());
    }
    let now = state.clock.now();
    // Parsed (normalised) once: the lookup and the throttle use the same key.
    let email = Email::parse(username).ok();
    let user = match &email {
        Some(email) => state.repos.users.find_user_by_email(&email.key()).await?,
        None => None,
    };
    // Unknown emails are throttled exactly like known ones, keyed by what was typed. The attempt
    // is counted before the password is checked, atomically: concurrent guesses cannot all pass
    // under the limits while their hashes are being verified.
    let throttle_key = throttle::email_key(username, email.as_ref());
    let admitted = throttle::admit(state, &throttle_key, address, user.as_ref().map(|u| u.id)).await?;
    // Always one argon2 verification, against a dummy hash for unknown emails: a wrong email
    // and a wrong password cost the same time and get the same answer.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let verified = state.hasher.verify(secrecy::SecretString::from(password.to_owned()), hash).await?;
    let Some(user) = user.filter(|u| verified && u.is_active) else {
        return Err(ApiError::invalid_grant());
    };
    // Said only to who knows the password: the right one was given, so it is no oracle.
    if state.config.require_email_verification && !user.email_verified {
        if let Err(e) = throttle::succeeded(state, &admitted).await {
            tracing::warn!(user_id = %user.id, error = ?e, "the throttle's bookkeeping failed");
        }
        return Err(ApiError::OAuth { code: OAuthErrorCode::InvalidGrant, description: NOT_VERIFIED });
    }
    let session = Session {
        subject: Subject { user_id: user.id, credential_version: user.credential_version },
        family_id: state.ids.new_id(now),
        ends_at: now + Duration::seconds(state.config.session_max_age_secs),
    };
    let (token, first) = issue(state, &session, now).await?;
    // Recorded only while the user still has the credentials just checked: a password change
    // that landed while the hash was being verified ends this login too.
    match state.repos.tokens.create_family(&first).await? {
        NewFamily::Created => {
            // Only now is it a login: its counter cleared, its address remembered. The session
            // exists: a failure of that bookkeeping is logged, not answered as a failed login.
            if let Err(e) = throttle::logged_in(state, &admitted, user.id).await {
                tracing::warn!(user_id = %user.id, error = ?e, "logged in; the throttle's bookkeeping failed");
            }
            Ok(token_response(token))
        }
        NewFamily::CredentialsChanged => Err(ApiError::invalid_grant()),
    }
}

async fn refresh_grant(state: &AppState, form: &TokenRequest) -> ApiResult<Response> {
    let presented =
        form.refresh_token.get()?.ok_or(ApiError::invalid_request("refresh_token is required"))?;
    if presented.len() > MAX_REFRESH_TOKEN_LEN {
        return Err(ApiError::invalid_grant());
    }
    let now = state.clock.now();
    let tokens = &state.repos.tokens;
    let user_id = refresh::user_of(presented).ok_or_else(ApiError::invalid_grant)?;
    let old =
        tokens.get_refresh(user_id, &refresh::hash(presented)).await?.ok_or_else(ApiError::invalid_grant)?;
    if old.used {
        return Ok(reuse_detected(state, &old).await);
    }
    if old.expires_at <= now || old.family_ends_at <= now {
        return Err(ApiError::invalid_grant());
    }
    let user = state.repos.users.get_user(old.user_id).await?;
    // The family is bound to the credentials of its login: a password change since ends it
    // (rotation checks this again in its own write, against a change racing this one).
    let Some(user) = user.filter(|u| u.is_active && u.credential_version == old.credential_version) else {
        return Err(ApiError::invalid_grant());
    };
    let session = Session {
        subject: Subject { user_id: user.id, credential_version: old.credential_version },
        family_id: old.family_id,
        ends_at: old.family_ends_at,
    };
    let (token, new) = issue(state, &session, now).await?;
    match tokens.rotate_refresh(&old, &new, now).await? {
        Rotation::Rotated => Ok(token_response(token)),
        // Another request exchanged the same token first: that is reuse too.
        Rotation::AlreadyUsed => Ok(reuse_detected(state, &old).await),
        Rotation::FamilyGone => Err(ApiError::invalid_grant()),
    }
}

/// RFC 9700 §4.14.2: a rotated refresh token presented again means it may have been stolen;
/// revoke every token descended from the same login. The answer is the refusal, or the store's
/// fault. A reuse that ended a live session is counted (the metrics' alarm); the same token
/// presented again, its session already ended, is not: anyone could replay one token of their
/// own to page whoever is on call.
async fn reuse_detected(state: &AppState, old: &RefreshRecord) -> Response {
    match state.repos.tokens.revoke_family(old.user_id, old.family_id).await {
        Ok(ended) => {
            tracing::warn!(user_id = %old.user_id, family_id = %old.family_id, ended, "refresh token reuse: family revoked");
            let mut response = ApiError::invalid_grant().into_response();
            if ended {
                Counted::add(&mut response, Event::RefreshReuse);
            }
            response
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// RFC 7009: 200 whether or not the token was known; a known token's whole family stops working.
#[utoipa::path(
    post, path = "/v1/auth/revoke", tag = "auth", operation_id = "revoke_token",
    request_body(content = RevokeRequest, content_type = "application/x-www-form-urlencoded",
        example = json!({"token": "<refresh token of user@example.com>"})),
    responses(
        (status = 200, description = "Revoked (RFC 7009: also when the token was unknown)",
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 400, response = OAuthBadRequest),
        (status = 413, response = PayloadTooLarge),
        (status = 503, response = Unavailable),
    )
)]
async fn revoke(State(state): State<AppState>, Form(form): Form<RevokeRequest>) -> ApiResult<Response> {
    let token = form.token.get()?.ok_or(ApiError::invalid_request("token is required"))?;
    if token.len() <= MAX_REFRESH_TOKEN_LEN {
        let tokens = &state.repos.tokens;
        let record = match refresh::user_of(token) {
            Some(user_id) => tokens.get_refresh(user_id, &refresh::hash(token)).await?,
            None => None,
        };
        if let Some(record) = record {
            tokens.revoke_family(record.user_id, record.family_id).await?;
        }
    }
    Ok(no_store(StatusCode::OK.into_response()))
}

/// One login's session: whose, which family, and when it ends however often it rotates.
struct Session {
    subject: Subject,
    family_id: Uuid,
    ends_at: DateTime<Utc>,
}

/// A new access token and refresh token of `session`; the refresh token lives its lifetime or
/// until the session ends, whichever comes first.
async fn issue(state: &AppState, session: &Session, now: DateTime<Utc>) -> ApiResult<(Token, RefreshRecord)> {
    let user_id = session.subject.user_id;
    let refresh_token = refresh::generate(user_id);
    let record = RefreshRecord {
        token_hash: refresh::hash(&refresh_token),
        user_id,
        family_id: session.family_id,
        issued_at: now,
        expires_at: (now + Duration::seconds(state.config.refresh_token_ttl_secs)).min(session.ends_at),
        used: false,
        credential_version: session.subject.credential_version,
        family_ends_at: session.ends_at,
    };
    let token = Token {
        access_token: state.jwt.issue(session.subject, now).await?,
        token_type: "bearer",
        expires_in: state.jwt.access_ttl_secs(),
        refresh_token,
    };
    Ok((token, record))
}

fn token_response(token: Token) -> Response {
    no_store(axum::Json(token).into_response())
}

/// RFC 6749 §5.1: responses carrying tokens must not be cached.
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
