//! The `users` function: public signup, the caller's own profile, and superuser administration.
//! Its request and response schemas are in [`schemas`].

mod me;
pub mod schemas;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use secrecy::SecretString;
use shared::domain::{Email, FullName, Password, Patch};
use shared::openapi::{
    Conflict, Forbidden, JsonBodyErrors, KeyedConflict, KeyedJsonBodyErrors, NotFound, SuperuserErrors,
    Unavailable, ValidationFailed,
};
use shared::repo::{CreateUser, OutboxMail, UpdateUser, UserChanges, UserRecord};
use shared::web::idempotency::{self, IdempotencyKeyHeader, Pending};
use shared::web::paging::page;
use shared::web::{CurrentUser, Json, PageQuery, SuperUser, UserId};
use shared::{ApiError, ApiResult, AppState};

pub use schemas::{
    UpdatePassword, UserCreate, UserPage, UserRegister, UserResponse, UserUpdate, UserUpdateMe,
};

/// This function's part of the OpenAPI document (the catalog joins the parts).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        signup,
        me::read_me,
        me::update_me,
        me::update_password,
        me::send_verification,
        me::delete_me,
        list_users,
        create_user,
        read_user,
        update_user,
        delete_user
    ),
    tags((name = "users", description = "Signup, the caller's own account, and superuser administration"))
)]
pub struct Api;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Api as utoipa::OpenApi>::openapi()
}

/// The sample event (`events/get-v1-users-me.json`) that stands for this function where one request
/// must: the bench's cold starts.
pub const PROBE: &str = "get-v1-users-me";

pub fn router(state: AppState) -> Router {
    // A retried signup or create with the same `Idempotency-Key` creates one account. Both
    // bodies hold a password, which the layer never hashes fast; signup's caller is its address.
    let signup_keyed = from_fn_with_state(state.clone(), idempotency::keyed_signup);
    let create_keyed = from_fn_with_state(state.clone(), idempotency::keyed_with_password);
    let routes = Router::new()
        .route("/v1/users/signup", post(signup.layer(signup_keyed)))
        .route("/v1/users/me", get(me::read_me).patch(me::update_me).delete(me::delete_me))
        .route("/v1/users/me/password", patch(me::update_password))
        .route("/v1/users/me/verification-email", post(me::send_verification))
        .route("/v1/users", get(list_users).post(create_user.layer(create_keyed)))
        .route("/v1/users/{user_id}", get(read_user).patch(update_user).delete(delete_user));
    shared::web::finish(routes, state)
}

const EMAIL_TAKEN: &str = "The user with this email already exists in the system";
const USER_NOT_FOUND: &str = "User not found";
const CHANGED_MEANWHILE: &str = "The user's address changed meanwhile: read it again and repeat the change";
const NOT_ENOUGH_PRIVILEGES: &str = "The user doesn't have enough privileges";
const NO_SELF_DELETE: &str = "Super users are not allowed to delete themselves";

/// Refuses signup with 403 when open registration is switched off, before the body is read.
struct RegistrationOpen;

impl FromRequestParts<AppState> for RegistrationOpen {
    type Rejection = ApiError;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.open_registration {
            Ok(Self)
        } else {
            Err(ApiError::Forbidden("Open user registration is forbidden on this server".into()))
        }
    }
}

struct NewUser {
    email: Email,
    password: Password,
    full_name: Option<FullName>,
    is_active: bool,
    is_superuser: bool,
}

async fn create(state: &AppState, new: NewUser) -> ApiResult<Response> {
    let now = state.clock.now();
    let user = UserRecord {
        id: state.ids.new_id(now),
        email: new.email,
        full_name: new.full_name.map(FullName::into_inner),
        password_hash: state.hasher.hash(secret(new.password)).await?,
        is_active: new.is_active,
        is_superuser: new.is_superuser,
        credential_version: 0,
        email_verified: false,
        created_at: now,
        updated_at: now,
    };
    // Its verification is sent after the answer, from the outbox record written with the user.
    let verify = OutboxMail::verify(state.ids.new_id(now), user.id, &user.email, now);
    // A request with an idempotency key keeps its answer in the same write.
    let pending = Pending::current();
    let (response, completion) = idempotency::answer(pending.as_ref(), created(&user)).await?;
    match state.repos.users.create_user_with(&user, &[verify], completion.as_ref()).await? {
        CreateUser::Created => {
            idempotency::answer_kept(pending.as_ref(), completion.as_ref());
            Ok(response)
        }
        CreateUser::EmailTaken => Err(ApiError::Conflict(EMAIL_TAKEN.into())),
    }
}

fn secret(password: Password) -> SecretString {
    SecretString::from(password.into_inner())
}

fn created(user: &UserRecord) -> Response {
    let mut response = (StatusCode::CREATED, axum::Json(UserResponse::from(user))).into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/users/{}", user.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

#[utoipa::path(
    post, path = "/v1/users/signup", tag = "users", operation_id = "sign_up",
    params(IdempotencyKeyHeader),
    request_body(content = UserRegister, example = json!({"email": "new@example.com", "password": "correct horse battery", "full_name": "New User"})),
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "The new user's URL"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the kept answer to an earlier request with the same `Idempotency-Key`"))),
        (status = 403, response = Forbidden),
        (status = 409, response = KeyedConflict),
        KeyedJsonBodyErrors,
        (status = 503, response = Unavailable),
    )
)]
async fn signup(
    State(state): State<AppState>,
    _open: RegistrationOpen,
    Json(body): Json<UserRegister>,
) -> ApiResult<Response> {
    let new = NewUser {
        email: body.email,
        password: body.password,
        full_name: body.full_name,
        is_active: true,
        is_superuser: false,
    };
    create(&state, new).await
}

/// Applies changes and maps the outcome to the contract's answers. A change of address makes it
/// unproved, and sends a verification to the new one and a notice to the one of before, in the
/// same write.
async fn apply(state: &AppState, user: &UserRecord, mut changes: UserChanges) -> ApiResult<UserRecord> {
    let now = state.clock.now();
    if let Some(email) = &changes.email {
        // Decided on this read of the address, so only while the user still has it: a change
        // racing another cannot move the account, or tell an address, on a stale premise.
        changes.if_email_key = Some(user.email.key());
        if email.key() != user.email.key() {
            changes.email_verified = Some(false);
            changes.mail.push(OutboxMail::verify(state.ids.new_id(now), user.id, email, now));
            // The address of before is told only if it was proved: an address the account never
            // showed it holds is nobody's to warn, and telling it would let anyone who signs up
            // with a stranger's address mail the stranger at will.
            if user.email_verified {
                changes.mail.push(OutboxMail::email_changed(state.ids.new_id(now), user, email, now));
            }
        }
    }
    match state.repos.users.update_user(user.id, &changes, now).await? {
        UpdateUser::Updated(user) => Ok(user),
        UpdateUser::NotFound => Err(ApiError::NotFound(USER_NOT_FOUND)),
        UpdateUser::EmailTaken => Err(ApiError::Conflict(EMAIL_TAKEN.into())),
        UpdateUser::Changed => {
            let now_is = state.repos.users.get_user(user.id).await?;
            match now_is {
                // The password the change was checked against has been replaced meanwhile: the
                // caller's session ended with it.
                Some(now_is)
                    if changes.if_credential_version.is_some_and(|v| v != now_is.credential_version) =>
                {
                    Err(ApiError::InvalidToken)
                }
                Some(_) => Err(ApiError::Conflict(CHANGED_MEANWHILE.into())),
                None => Err(ApiError::NotFound(USER_NOT_FOUND)),
            }
        }
    }
}

fn full_name_change(patch: Patch<Option<FullName>>) -> Patch<Option<String>> {
    patch.map(|name| name.map(FullName::into_inner))
}

const USERS_LISTING: &str = "users";

#[utoipa::path(
    get, path = "/v1/users", tag = "users", operation_id = "list_users",
    security(("OAuth2PasswordBearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "Users in creation order", body = UserPage),
        SuperuserErrors,
        (status = 422, response = ValidationFailed),
    )
)]
async fn list_users(
    State(state): State<AppState>,
    _admin: SuperUser,
    query: PageQuery,
) -> ApiResult<axum::Json<UserPage>> {
    let users = &state.repos.users;
    let page =
        page(&state.cursors, USERS_LISTING, &query, |limit, after| users.list_users(limit, after)).await?;
    Ok(axum::Json(page))
}

#[utoipa::path(
    post, path = "/v1/users", tag = "users", operation_id = "create_user",
    security(("OAuth2PasswordBearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = UserCreate, example = json!({"email": "created@example.com", "password": "correct horse battery", "full_name": "Created By Admin", "is_superuser": false})),
    responses(
        (status = 201, description = "Created", body = UserResponse,
            headers(("Location" = String, description = "The new user's URL"),
                ("Idempotent-Replayed" = String, description = "`true` when this is the kept answer to an earlier request with the same `Idempotency-Key`"))),
        SuperuserErrors,
        (status = 409, response = KeyedConflict),
        KeyedJsonBodyErrors,
    )
)]
async fn create_user(
    State(state): State<AppState>,
    _admin: SuperUser,
    Json(body): Json<UserCreate>,
) -> ApiResult<Response> {
    let new = NewUser {
        email: body.email,
        password: body.password,
        full_name: body.full_name,
        is_active: body.is_active,
        is_superuser: body.is_superuser,
    };
    create(&state, new).await
}

#[utoipa::path(
    get, path = "/v1/users/{user_id}", tag = "users", operation_id = "read_user",
    security(("OAuth2PasswordBearer" = [])),
    params(UserId),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        SuperuserErrors,
        (status = 404, response = NotFound),
        (status = 422, response = ValidationFailed),
    )
)]
async fn read_user(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    UserId(id): UserId,
) -> ApiResult<axum::Json<UserResponse>> {
    if id == me.id {
        return Ok(axum::Json(UserResponse::from(&me)));
    }
    if !me.is_superuser {
        return Err(ApiError::Forbidden(NOT_ENOUGH_PRIVILEGES.into()));
    }
    let user = state.repos.users.get_user(id).await?.ok_or(ApiError::NotFound(USER_NOT_FOUND))?;
    Ok(axum::Json(UserResponse::from(&user)))
}

#[utoipa::path(
    patch, path = "/v1/users/{user_id}", tag = "users", operation_id = "update_user",
    security(("OAuth2PasswordBearer" = [])),
    params(UserId),
    request_body(content = UserUpdate, example = json!({"full_name": "Renamed By Admin"})),
    responses(
        (status = 200, description = "The user, updated", body = UserResponse),
        SuperuserErrors,
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        JsonBodyErrors,
    )
)]
async fn update_user(
    State(state): State<AppState>,
    _admin: SuperUser,
    UserId(id): UserId,
    Json(body): Json<UserUpdate>,
) -> ApiResult<axum::Json<UserResponse>> {
    let user = state.repos.users.get_user(id).await?.ok_or(ApiError::NotFound(USER_NOT_FOUND))?;
    let password_hash = match body.password {
        Patch::Set(password) => Some(state.hasher.hash(secret(password)).await?),
        Patch::Absent => None,
    };
    let ends_sessions = password_hash.is_some() || body.is_active == Patch::Set(false);
    let changes = UserChanges {
        email: body.email.into_option(),
        full_name: full_name_change(body.full_name),
        password_hash,
        is_active: body.is_active.into_option(),
        is_superuser: body.is_superuser.into_option(),
        ..UserChanges::default()
    };
    let updated = apply(&state, &user, changes).await?;
    // After the update, so a refused one (409) ends no sessions; if revoking fails, repeating
    // the same admin request is harmless and completes it.
    if ends_sessions {
        state.repos.tokens.revoke_user_tokens(id).await?;
    }
    Ok(axum::Json(UserResponse::from(&updated)))
}

#[utoipa::path(
    delete, path = "/v1/users/{user_id}", tag = "users", operation_id = "delete_user",
    security(("OAuth2PasswordBearer" = [])),
    params(UserId),
    responses(
        (status = 204, description = "Deleted at once; everything the user owned is purged in the background"),
        SuperuserErrors,
        (status = 404, response = NotFound),
        (status = 422, response = ValidationFailed),
    )
)]
async fn delete_user(
    State(state): State<AppState>,
    SuperUser(me): SuperUser,
    UserId(id): UserId,
) -> ApiResult<StatusCode> {
    if id == me.id {
        return Err(ApiError::Forbidden(NO_SELF_DELETE.into()));
    }
    if !state.repos.users.delete_user(id, state.clock.now()).await? {
        return Err(ApiError::NotFound(USER_NOT_FOUND));
    }
    Ok(StatusCode::NO_CONTENT)
}
