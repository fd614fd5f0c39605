//! Account recovery and email verification (API.md, "Auth"): asking for a reset link, and
//! redeeming the tokens that reset and verification messages carry. The messages themselves are
//! the worker's (`functions/worker`, from the outbox); nothing here sends mail or sees a token
//! it did not receive.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use shared::auth::refresh;
use shared::domain::{Email, LinkToken, Password};
use shared::openapi::{BadRequest, JsonBodyErrors, TooManyRequests, Unavailable};
use shared::repo::{MailToken, OutboxMail, TokenPurpose, UserChanges, UserRecord};
use shared::web::{Accepted, Json, SourceAddress, throttle};
use shared::{ApiError, ApiResult, AppState};

shared::request_schema! {
    /// A request for a password reset link.
    pub struct PasswordRecovery {
        pub email: Email,
    }
}

shared::request_schema! {
    /// A new password, with the token of a reset link.
    pub struct PasswordReset {
        pub token: LinkToken,
        pub new_password: Password,
    }
}

shared::request_schema! {
    /// The token of a verification link.
    pub struct EmailVerification {
        pub token: LinkToken,
    }
}

const RECOVERY_ACCEPTED: &str =
    "If an active account has this address, a message with a link to reset its password is on its way";
pub(crate) const INVALID_TOKEN: &str = "Invalid or expired token";

#[utoipa::path(
    post, path = "/v1/auth/password-recovery", tag = "auth", operation_id = "recover_password",
    request_body(content = PasswordRecovery, example = json!({"email": "user@example.com"})),
    responses(
        (status = 202, description = "Taken. The same answer, in about the same time, whether or not an account has the address; an active account's address gets a message with a single-use link, valid 30 minutes by default (RESET_TOKEN_TTL_SECONDS; at most 3 messages an hour per address by default)", body = Accepted),
        JsonBodyErrors,
        (status = 429, response = TooManyRequests),
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn password_recovery(
    State(state): State<AppState>,
    address: SourceAddress,
    Json(body): Json<PasswordRecovery>,
) -> ApiResult<Accepted> {
    throttle::admit_mail_request(&state, &address).await?;
    // The same two writes whatever the address: the worker, after the answer, looks it up and
    // sends only to an active account's stored address. Nothing here depends on the account.
    let now = state.clock.now();
    state
        .repos
        .mail
        .enqueue_mail(&OutboxMail::recovery(state.ids.new_id(now), body.email.key(), now))
        .await?;
    Ok(Accepted { detail: RECOVERY_ACCEPTED })
}

#[utoipa::path(
    post, path = "/v1/auth/reset-password", tag = "auth", operation_id = "reset_password",
    request_body(content = PasswordReset, example = json!({"token": "<reset token of user@example.com>", "new_password": "a brand new passphrase"})),
    responses(
        (status = 204, description = "The password is set, every session of the user has ended, and the address counts as verified"),
        (status = 400, response = BadRequest),
        JsonBodyErrors,
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Json(body): Json<PasswordReset>,
) -> ApiResult<StatusCode> {
    let (token, user) = live_token(&state, body.token.as_str(), TokenPurpose::ResetPassword).await?;
    if !user.is_active {
        return Err(ApiError::BadRequest(INVALID_TOKEN.into()));
    }
    // Hashed only once the token is known to be live: a stream of made-up tokens costs a read
    // each, never an argon2 hash.
    let hash = state.hasher.hash(SecretString::from(body.new_password.into_inner())).await?;
    // Active in the same write: a deactivation that lands while the hash is made wins.
    let changes = UserChanges {
        password_hash: Some(hash),
        email_verified: Some(true),
        if_active: true,
        ..bound_to(&token)
    };
    redeem(&state, &token, &changes).await?;
    // The new credential version has ended every session; deleting the families is tidying.
    if let Err(e) = state.repos.tokens.revoke_user_tokens(user.id).await {
        tracing::warn!(user_id = %user.id, error = %e, "password reset; its old families left to expire");
    }
    tracing::info!(user_id = %user.id, "password reset");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/v1/auth/verify-email", tag = "auth", operation_id = "verify_email",
    request_body(content = EmailVerification, example = json!({"token": "<verification token of user@example.com>"})),
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, response = BadRequest),
        JsonBodyErrors,
        (status = 503, response = Unavailable),
    )
)]
pub(crate) async fn verify_email(
    State(state): State<AppState>,
    Json(body): Json<EmailVerification>,
) -> ApiResult<StatusCode> {
    let (token, _) = live_token(&state, body.token.as_str(), TokenPurpose::VerifyEmail).await?;
    let changes = UserChanges { email_verified: Some(true), ..bound_to(&token) };
    redeem(&state, &token, &changes).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The recorded token that `presented` is, when it is its user's live one of `purpose`, not
/// expired, and its user still has the credentials and address it was minted for; else the
/// contract's 400, the same for every reason.
async fn live_token(
    state: &AppState,
    presented: &str,
    purpose: TokenPurpose,
) -> ApiResult<(MailToken, UserRecord)> {
    let invalid = || ApiError::BadRequest(INVALID_TOKEN.into());
    let user_id = refresh::user_of(presented).ok_or_else(invalid)?;
    let token = state.repos.mail.get_token(user_id, purpose).await?.ok_or_else(invalid)?;
    // Expiry is checked here: DynamoDB's TTL deletes a record up to days after it passes.
    if token.token_hash != refresh::hash(presented) || token.expires_at <= state.clock.now() {
        return Err(invalid());
    }
    let user = state.repos.users.get_user(user_id).await?.ok_or_else(invalid)?;
    if user.credential_version != token.credential_version || user.email.key() != token.email_key {
        return Err(invalid());
    }
    Ok((token, user))
}

/// Changes that apply only while the user has the credentials and address `token` was minted for.
fn bound_to(token: &MailToken) -> UserChanges {
    UserChanges {
        if_credential_version: Some(token.credential_version),
        if_email_key: Some(token.email_key.clone()),
        ..UserChanges::default()
    }
}

/// Uses the token up and applies `changes`, in one step; 400 when another request used it (or
/// the user changed) in the meantime.
async fn redeem(state: &AppState, token: &MailToken, changes: &UserChanges) -> ApiResult<UserRecord> {
    let now = state.clock.now();
    state
        .repos
        .mail
        .redeem_token(token, changes, now)
        .await?
        .ok_or_else(|| ApiError::BadRequest(INVALID_TOKEN.into()))
}
