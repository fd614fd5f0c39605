//! The caller's own account: read it, change its profile (an address only with the current
//! password) or its password (which ends every session), delete it.

use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use shared::domain::Patch;
use shared::openapi::{BadRequest, Conflict, JsonBodyErrors, ProtectedErrors, TooManyRequests};
use shared::repo::{OutboxMail, UserChanges, UserRecord};
use shared::web::{Accepted, CurrentUser, Json, SourceAddress, throttle};
use shared::{ApiError, ApiResult, AppState};

use super::{NO_SELF_DELETE, UpdatePassword, UserResponse, UserUpdateMe, apply, full_name_change, secret};

/// The caller's password, checked as a login checks it: 400 when wrong, and throttled with the
/// logins: a wrong one counts as a failed check for the caller's email from this address, so a
/// stolen access token is no faster oracle for the password than the token endpoint.
async fn check_current_password(
    state: &AppState,
    me: &UserRecord,
    address: &SourceAddress,
    password: &str,
) -> ApiResult<()> {
    let admitted = throttle::admit(state, &me.email.key(), address, Some(me.id)).await?;
    let verified =
        state.hasher.verify(SecretString::from(password.to_owned()), Some(me.password_hash.clone())).await?;
    if !verified {
        return Err(ApiError::BadRequest("Incorrect password".into()));
    }
    throttle::succeeded(state, &admitted).await
}

#[utoipa::path(
    get, path = "/v1/users/me", tag = "users", operation_id = "read_own_user",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 200, description = "The caller", body = UserResponse),
        ProtectedErrors,
    )
)]
pub(super) async fn read_me(CurrentUser(me): CurrentUser) -> axum::Json<UserResponse> {
    axum::Json(UserResponse::from(&me))
}

#[utoipa::path(
    patch, path = "/v1/users/me", tag = "users", operation_id = "update_own_user",
    security(("OAuth2PasswordBearer" = [])),
    request_body(content = UserUpdateMe, example = json!({"full_name": "Renamed User"})),
    responses(
        (status = 200, description = "The caller, updated", body = UserResponse),
        (status = 400, response = BadRequest),
        ProtectedErrors,
        (status = 409, response = Conflict),
        JsonBodyErrors,
        (status = 429, response = TooManyRequests),
    )
)]
pub(super) async fn update_me(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    address: SourceAddress,
    Json(body): Json<UserUpdateMe>,
) -> ApiResult<axum::Json<UserResponse>> {
    if body.email.is_absent() && body.full_name.is_absent() {
        return Ok(axum::Json(UserResponse::from(&me)));
    }
    // A stolen access token alone cannot move the account to another address.
    // (The schema already requires `current_password` with an `email`: `requires` in schemas.rs.)
    if let (Patch::Set(email), Patch::Set(current)) = (&body.email, &body.current_password) {
        check_current_password(&state, &me, &address, current.as_str()).await?;
        // A new address is sent a message: counted with the requests for mail from this source
        // address, so one account cannot mail address after address.
        if email.key() != me.email.key() {
            throttle::admit_mail_request(&state, &address).await?;
        }
    }
    // Only while the user still has the credentials the request was authenticated (and its
    // current_password checked) with: no email change can ride on a password already replaced.
    let changes = UserChanges {
        email: body.email.into_option(),
        full_name: full_name_change(body.full_name),
        if_credential_version: Some(me.credential_version),
        ..UserChanges::default()
    };
    Ok(axum::Json(UserResponse::from(&apply(&state, &me, changes).await?)))
}

#[utoipa::path(
    patch, path = "/v1/users/me/password", tag = "users", operation_id = "update_own_password",
    security(("OAuth2PasswordBearer" = [])),
    request_body(content = UpdatePassword, example = json!({"current_password": "correct horse battery", "new_password": "a brand new passphrase"})),
    responses(
        (status = 204, description = "Changed; every session of the user ends: its refresh tokens and the access tokens issued before"),
        (status = 400, response = BadRequest),
        ProtectedErrors,
        JsonBodyErrors,
        (status = 429, response = TooManyRequests),
    )
)]
pub(super) async fn update_password(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    address: SourceAddress,
    Json(body): Json<UpdatePassword>,
) -> ApiResult<StatusCode> {
    let current = body.current_password.into_inner();
    check_current_password(&state, &me, &address, &current).await?;
    if body.new_password.as_str() == current {
        return Err(ApiError::BadRequest("New password cannot be the same as the current one".into()));
    }
    // Only while the user still has the password just checked: a change that raced another
    // (someone else who knew the old password) is refused, 401, since the caller's session
    // ended with the other change.
    let changes = UserChanges {
        password_hash: Some(state.hasher.hash(secret(body.new_password)).await?),
        if_credential_version: Some(me.credential_version),
        ..UserChanges::default()
    };
    apply(&state, &me, changes).await?;
    // The new credential version (written with the hash) has ended every session: no access
    // token of before passes, no family starts or rotates under it. Deleting the families'
    // records is tidying; if it fails they are unusable anyway and expire by TTL, so the change,
    // which did happen, is not answered as a failure.
    if let Err(e) = state.repos.tokens.revoke_user_tokens(me.id).await {
        tracing::warn!(user_id = %me.id, error = %e, "password changed; its old families left to expire");
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    post, path = "/v1/users/me/verification-email", tag = "users", operation_id = "send_verification_email",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 202, description = "Taken: a new verification message (valid 24 hours by default, superseding any earlier one) is on its way, unless the address is verified already (then nothing is sent) or it got its hourly limit of messages (3 by default)", body = Accepted),
        ProtectedErrors,
        (status = 429, response = TooManyRequests),
    )
)]
pub(super) async fn send_verification(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    address: SourceAddress,
) -> ApiResult<Accepted> {
    throttle::admit_mail_request(&state, &address).await?;
    if !me.email_verified {
        let now = state.clock.now();
        state
            .repos
            .mail
            .enqueue_mail(&OutboxMail::verify(state.ids.new_id(now), me.id, &me.email, now))
            .await?;
    }
    Ok(Accepted { detail: VERIFICATION_ACCEPTED })
}

const VERIFICATION_ACCEPTED: &str =
    "Unless the address is verified already, a verification message is on its way";

#[utoipa::path(
    delete, path = "/v1/users/me", tag = "users", operation_id = "delete_own_user",
    security(("OAuth2PasswordBearer" = [])),
    responses(
        (status = 204, description = "Deleted at once; everything the user owned is purged in the background"),
        ProtectedErrors,
    )
)]
pub(super) async fn delete_me(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> ApiResult<StatusCode> {
    if me.is_superuser {
        return Err(ApiError::Forbidden(NO_SELF_DELETE.into()));
    }
    state.repos.users.delete_user(me.id, state.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
