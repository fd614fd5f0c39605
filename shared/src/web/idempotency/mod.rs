//! `Idempotency-Key` (API.md, "Idempotency"; draft-ietf-httpapi-idempotency-key-header): a
//! middleware a route opts into with one line,
//! `post(handler).layer(middleware::from_fn_with_state(state.clone(), idempotency::keyed))`, that
//! does a retried request's work once and answers every retry with the first answer.
//!
//! It runs after authentication: the caller is the bearer token's user (a request whose token is
//! refused goes through untouched, and the handler answers 401), or, on a route for anonymous
//! callers (signup), the source address. The fingerprint of the payload is the SHA-256 of its
//! JSON with the keys in order, secret fields (a password) taken out: a fast hash of a password
//! would be a faster oracle for it than the account's own argon2 hash. A retry that carries one
//! is instead checked against the account its first request created.
//!
//! Where the operation is one DynamoDB transaction, its answer is kept in that transaction: while
//! the handler runs, [`Pending::current`] is the request's key, and the shared writes (a
//! resource's create and update in `web::resources`, a user's create) render their answer before
//! they commit and pass it to the repository as a [`Completion`]. So a request whose answer was
//! lost on the way back can never do its work twice. A handler that writes otherwise needs
//! nothing: its answer is kept after it returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{MAX_BODY_BYTES, SourceAddress};

mod fingerprint;
use fingerprint::fingerprint;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use crate::error::{ApiError, FieldError};
use crate::repo::{Begin, Caller, Completion, IdempotencyKey, IdempotencyState, KeptAnswer};
use crate::state::AppState;

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// How long a request holds its key when no Lambda deadline says otherwise (the local server).
pub const LOCAL_DEADLINE: Duration = Duration::from_secs(30);

tokio::task_local! {
    /// The key of the request being served, while a keyed route's handler runs.
    static PENDING: Pending;
}

/// A keyed request's key while its handler runs: what a write that is one transaction keeps the
/// answer with.
#[derive(Debug, Clone)]
pub struct Pending {
    key: IdempotencyKey,
    locked_until: DateTime<Utc>,
    /// Set once the answer has been written with the work: the layer then writes nothing more.
    kept: Arc<AtomicBool>,
}

impl Pending {
    /// The key of the request being served, if its route is keyed and it named one.
    pub fn current() -> Option<Self> {
        PENDING.try_with(Clone::clone).ok()
    }

    /// `response` as this key's answer, to be written with the work ([`Completion`]), and the
    /// response back as it was.
    pub async fn completion(&self, response: Response) -> (Response, Option<Completion>) {
        let (response, answer) = kept_answer(response).await;
        let completion = answer.map(|answer| Completion {
            key: self.key.clone(),
            locked_until: self.locked_until,
            answer,
        });
        (response, completion)
    }

    /// Says that the answer was written with the work, which committed.
    pub fn kept(&self) {
        self.kept.store(true, Ordering::SeqCst);
    }
}

/// `response` as the answer of the request being served, if it is keyed (else `None`): what a
/// write that is one transaction passes to its repository; then [`answer_kept`] once it committed.
pub async fn answer(pending: Option<&Pending>, response: Response) -> (Response, Option<Completion>) {
    match pending {
        Some(pending) => pending.completion(response).await,
        None => (response, None),
    }
}

/// Says that the write with `completion` committed (nothing when there was none).
pub fn answer_kept(pending: Option<&Pending>, completion: Option<&Completion>) {
    if let (Some(pending), Some(_)) = (pending, completion) {
        pending.kept();
    }
}

/// The `Idempotency-Key` header in the OpenAPI document: `params(IdempotencyKeyHeader)` on an
/// operation whose route is keyed.
#[derive(Debug)]
pub struct IdempotencyKeyHeader;

impl utoipa::IntoParams for IdempotencyKeyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): the first request with a key does \
                     the work, and a retry with the same key and payload gets its answer again, with \
                     `Idempotent-Replayed: true`, for 24 hours. The key is the caller's, for this method and path. \
                     The same key with another payload is a 422; while the first is in progress, a 409 with \
                     `Retry-After`. 5xx, 401, 403 and 429 are never kept.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[\\x20-\\x7E]+$")),
                ))
                .build(),
        ]
    }
}

/// What a route's requests are.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Callers are anonymous: keys belong to the source address.
    anonymous: bool,
    /// Body fields that hold a secret: left out of the fingerprint.
    secrets: &'static [&'static str],
}

/// For routes of an authenticated caller whose bodies hold no secret (`POST /v1/items`,
/// `PATCH /v1/items/{item_id}`).
pub async fn keyed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: false, secrets: &[] }, request, next).await
}

/// For a superuser's `POST /v1/users`: its body holds the new account's password.
pub async fn keyed_with_password(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: false, secrets: &["password"] }, request, next).await
}

/// For signup: anonymous, and its body holds a password.
pub async fn keyed_signup(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: true, secrets: &["password"] }, request, next).await
}

/// The key a request names: 1–255 printable ASCII characters.
fn parse_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(&IDEMPOTENCY_KEY) else { return Ok(None) };
    let bytes = value.as_bytes();
    if bytes.is_empty() || bytes.len() > 255 || !bytes.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(ApiError::validation(FieldError::at(
            "header",
            "idempotency-key",
            "string_pattern_mismatch",
            "Idempotency-Key must be 1 to 255 printable ASCII characters",
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

async fn run(state: &AppState, options: Options, request: Request, next: Next) -> Response {
    let key = match parse_key(request.headers()) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(request).await,
        Err(refused) => return refused.into_response(),
    };
    let now = state.clock.now();
    let caller = if options.anonymous {
        let (mut parts, body) = request.into_parts();
        let address = <SourceAddress as axum::extract::FromRequestParts<AppState>>::from_request_parts(
            &mut parts, state,
        )
        .await
        .unwrap_or_else(|never| match never {});
        let caller = Caller::Address(address.as_str().to_owned());
        return with_caller(state, options, caller, key, Request::from_parts(parts, body), next, now).await;
    } else {
        match bearer_subject(state, request.headers(), now) {
            Some(user) => Caller::User(user),
            // Refused by the handler's own authentication: nothing is recorded.
            None => return next.run(request).await,
        }
    };
    with_caller(state, options, caller, key, request, next, now).await
}

/// The user of a valid bearer token, if the request has one.
fn bearer_subject(state: &AppState, headers: &HeaderMap, now: DateTime<Utc>) -> Option<uuid::Uuid> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    state.jwt.verify(token.trim(), now).ok().map(|subject| subject.user_id)
}

async fn with_caller(
    state: &AppState,
    options: Options,
    caller: Caller,
    key: String,
    request: Request,
    next: Next,
    now: DateTime<Utc>,
) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let (fingerprint, secret) = fingerprint(&bytes, options.secrets);
    let idem = IdempotencyKey {
        caller,
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        key,
    };
    let locked_until = now
        + parts
            .extensions
            .get::<lambda_http::Context>()
            .and_then(|ctx| remaining(ctx.deadline))
            .unwrap_or_else(|| chrono::Duration::from_std(LOCAL_DEADLINE).unwrap_or_default());
    let expires_at = now + chrono::Duration::seconds(state.config.idempotency_ttl_secs);
    let begun = state.repos.idempotency.begin(&idem, &fingerprint, locked_until, expires_at, now).await;
    match begun {
        Err(error) => ApiError::from(error).into_response(),
        Ok(Begin::Existing(record)) => {
            if record.fingerprint != fingerprint {
                return detail(StatusCode::UNPROCESSABLE_ENTITY, ANOTHER_PAYLOAD);
            }
            match record.state {
                IdempotencyState::InProgress { locked_until } => {
                    let mut response = detail(StatusCode::CONFLICT, IN_PROGRESS);
                    let wait = (locked_until - now).num_seconds().max(1);
                    if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
                        response.headers_mut().insert(header::RETRY_AFTER, value);
                    }
                    response
                }
                IdempotencyState::Complete(answer) => {
                    if secret.is_some() && !same_secret(state, &answer, secret.as_deref()).await {
                        return detail(StatusCode::UNPROCESSABLE_ENTITY, ANOTHER_PAYLOAD);
                    }
                    replay(&answer)
                }
            }
        }
        Ok(Begin::Started) => {
            let pending = Pending { key: idem.clone(), locked_until, kept: Arc::new(AtomicBool::new(false)) };
            let response =
                PENDING.scope(pending.clone(), next.run(Request::from_parts(parts, Body::from(bytes)))).await;
            if pending.kept.load(Ordering::SeqCst) {
                return response;
            }
            keep_or_release(state, &idem, locked_until, response, secret.is_some()).await
        }
    }
}

const ANOTHER_PAYLOAD: &str = "This Idempotency-Key was used with another payload";
const IN_PROGRESS: &str = "A request with this Idempotency-Key is still in progress";

fn detail(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(serde_json::json!({"detail": text}))).into_response()
}

/// What is left of an invocation whose deadline is `deadline_ms` (milliseconds since the epoch).
fn remaining(deadline_ms: u64) -> Option<chrono::Duration> {
    let deadline = DateTime::<Utc>::from_timestamp_millis(i64::try_from(deadline_ms).ok()?)?;
    let left = deadline - Utc::now();
    (left > chrono::Duration::zero()).then_some(left)
}

/// Whether a retried password is the one the first request created its account with: checked
/// against the account's own argon2 hash (the answer's `id`), never a fast hash of it.
async fn same_secret(state: &AppState, answer: &KeptAnswer, secret: Option<&str>) -> bool {
    let Some(secret) = secret else { return false };
    let id = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|body| body["id"].as_str().and_then(|id| id.parse().ok()));
    let Some(id) = id else {
        // No account to check against (an answer that created none): as another payload.
        return false;
    };
    let hash = match state.repos.users.get_user(id).await {
        Ok(Some(user)) => Some(user.password_hash),
        _ => None,
    };
    matches!(state.hasher.verify(secrecy::SecretString::from(secret.to_owned()), hash).await, Ok(true))
}

fn replay(answer: &KeptAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Body::from(answer.body.clone())).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::LOCATION, &answer.location),
        (header::ETAG, &answer.etag),
        (header::CONTENT_TYPE, &answer.content_type),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert(IDEMPOTENT_REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

/// Keeps a 2xx answer and the handler's own 4xx (400, 404, 409, 412, 422), and frees the key
/// otherwise (401, 403, 429, 5xx: a retry does the work). A request whose body held a secret
/// keeps only what a retry can be checked against: a creation (2xx) or a 409.
async fn keep_or_release(
    state: &AppState,
    idem: &IdempotencyKey,
    locked_until: DateTime<Utc>,
    response: Response,
    secret: bool,
) -> Response {
    let status = response.status();
    let kept = if secret {
        status.is_success() || status == StatusCode::CONFLICT
    } else {
        status.is_success() || [400, 404, 409, 412, 422].contains(&status.as_u16())
    };
    if !kept {
        if let Err(e) = state.repos.idempotency.release(idem, locked_until).await {
            tracing::warn!(error = %e, "an idempotency key not freed: it frees itself when its lock passes");
        }
        return response;
    }
    let (response, answer) = kept_answer(response).await;
    let Some(answer) = answer else { return response };
    match state.repos.idempotency.complete(idem, locked_until, &answer).await {
        Ok(true) => {}
        Ok(false) => tracing::warn!("an idempotency lock passed before its answer was kept"),
        // What was done is done: a retry gets 409 until the lock passes. (A write that is one
        // transaction kept its answer with it, so this is an answer that wrote nothing.)
        Err(e) => tracing::warn!(error = %e, "an answer not kept: a retry gets 409 until the lock passes"),
    }
    response
}

/// The answer `response` is, to be kept; and the response back. A body that cannot be read
/// (never, for the handlers' own bodies) is answered empty and not kept.
async fn kept_answer(response: Response) -> (Response, Option<KeptAnswer>) {
    let (parts, body) = response.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(error = %e, "an answer could not be read to be kept");
            return ((parts, Body::empty()).into_response(), None);
        }
    };
    let header =
        |name: header::HeaderName| parts.headers.get(&name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = KeptAnswer {
        status: parts.status.as_u16(),
        location: header(header::LOCATION),
        etag: header(header::ETAG),
        content_type: header(header::CONTENT_TYPE),
        body: bytes.to_vec(),
    };
    ((parts, Body::from(bytes)).into_response(), Some(answer))
}
