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

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::FutureExt;

use super::auth::Authenticated;
use super::{MAX_BODY_BYTES, SourceAddress, TokenSubject, current_user, deadline};

mod fingerprint;
mod key_header;
mod secret;
use fingerprint::fingerprint;
use key_header::parse_key;
pub use key_header::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, IdempotencyKeyHeader};

use crate::error::ApiError;
use crate::repo::{Begin, Caller, Completion, IdempotencyKey, IdempotencyState, KeptAnswer};
use crate::state::AppState;

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
    /// response back as it was. An answer that cannot be kept (over [`MAX_KEPT_BYTES`]) is an
    /// error before anything is written: the work is never done without its answer kept.
    pub async fn completion(&self, response: Response) -> Result<(Response, Option<Completion>), ApiError> {
        // One answer per key: a second write of the same request carries none.
        if self.kept.load(Ordering::SeqCst) {
            return Ok((response, None));
        }
        let (response, answer) = kept_answer(response).await;
        let Some(answer) = answer else {
            return Err(ApiError::Internal("an answer too large to keep with its work".into()));
        };
        let completion = Completion { key: self.key.clone(), locked_until: self.locked_until, answer };
        Ok((response, Some(completion)))
    }

    /// Says that the answer was written with the work, which committed.
    pub fn kept(&self) {
        self.kept.store(true, Ordering::SeqCst);
    }
}

/// `response` as the answer of the request being served, if it is keyed (else `None`): what a
/// write that is one transaction passes to its repository; then [`answer_kept`] once it committed.
pub async fn answer(
    pending: Option<&Pending>,
    response: Response,
) -> Result<(Response, Option<Completion>), ApiError> {
    match pending {
        Some(pending) => pending.completion(response).await,
        None => Ok((response, None)),
    }
}

/// Says that the write with `completion` committed (nothing when there was none).
pub fn answer_kept(pending: Option<&Pending>, completion: Option<&Completion>) {
    if let (Some(pending), Some(_)) = (pending, completion) {
        pending.kept();
    }
}

/// What a route's requests are.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Callers are anonymous: keys belong to the source address.
    anonymous: bool,
    /// Only superusers may call the route: anyone else takes no key.
    superuser: bool,
    /// Body fields that hold a secret: left out of the fingerprint.
    secrets: &'static [&'static str],
}

/// For routes of an authenticated caller whose bodies hold no secret (`POST /v1/items`,
/// `PATCH /v1/items/{item_id}`).
pub async fn keyed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: false, superuser: false, secrets: &[] }, request, next).await
}

/// For a superuser's `POST /v1/users`: its body holds the new account's password.
pub async fn keyed_with_password(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: false, superuser: true, secrets: &["password"] }, request, next).await
}

/// For signup: anonymous, and its body holds a password.
pub async fn keyed_signup(State(state): State<AppState>, request: Request, next: Next) -> Response {
    run(&state, Options { anonymous: true, superuser: false, secrets: &["password"] }, request, next).await
}

async fn run(state: &AppState, options: Options, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // Who is asking is settled first: a request the route refuses (401, 403) takes no key, and
    // is answered by the route as if it had none.
    let caller = if options.anonymous {
        let address =
            SourceAddress::from_request_parts(&mut parts, state).await.unwrap_or_else(|never| match never {});
        // The shared bucket of requests whose address is unknown is nobody's: no key there.
        if address.is_unknown() {
            return next.run(Request::from_parts(parts, body)).await;
        }
        Caller::Address(address.as_str().to_owned())
    } else {
        let Ok(TokenSubject(subject)) = TokenSubject::from_request_parts(&mut parts, state).await else {
            return next.run(Request::from_parts(parts, body)).await;
        };
        match current_user(&subject, state.repos.users.get_user(subject.user_id).await) {
            // A route for superusers answers anyone else 403 itself, with no key taken.
            Ok(user) if options.superuser && !user.is_superuser => {
                return next.run(Request::from_parts(parts, body)).await;
            }
            Ok(user) => {
                let caller = Caller::User(user.id);
                // The route's own `CurrentUser` takes this user instead of reading it again.
                parts.extensions.insert(Authenticated(user));
                caller
            }
            // What the route would answer (401, 403), or the store down (503): never the route
            // run without its key.
            Err(refused) => return refused.into_response(),
        }
    };
    let key = match parse_key(&parts.headers) {
        Ok(Some(key)) => key,
        Ok(None) => return next.run(Request::from_parts(parts, body)).await,
        Err(refused) => return refused.into_response(),
    };
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::PayloadTooLarge.into_response();
    };
    let Some((fingerprint, secret)) = fingerprint(&bytes, options.secrets) else {
        // A body the route refuses for want of a string password: no key, so no other shape of
        // a password is ever fingerprinted.
        return next.run(Request::from_parts(parts, Body::from(bytes))).await;
    };
    let idem = IdempotencyKey {
        caller,
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        key,
    };
    let now = state.clock.now();
    let Some(left) = deadline::remaining(&parts) else {
        // No time left to do the work in: nothing is begun.
        return ApiError::Unavailable("the request's deadline has passed".into()).into_response();
    };
    let locked_until = now + left;
    // Never expiring before its lock: a record taken over as expired must not be a live one.
    let expires_at = (now + chrono::Duration::seconds(state.config.idempotency_ttl_secs)).max(locked_until);
    match state.repos.idempotency.begin(&idem, &fingerprint, locked_until, expires_at, now).await {
        Err(error) => ApiError::from(error).into_response(),
        Ok(Begin::Existing(record)) if record.fingerprint != fingerprint => {
            ApiError::KeyReused.into_response()
        }
        Ok(Begin::Existing(record)) => match record.state {
            IdempotencyState::InProgress { locked_until } => {
                let retry_after_secs = u64::try_from((locked_until - now).num_seconds()).unwrap_or(1);
                ApiError::KeyInProgress { retry_after_secs }.into_response()
            }
            IdempotencyState::Complete(answer) => match &secret {
                None => replay(&answer),
                Some(password) => match secret::check(state, &mut parts, &bytes, &answer, password).await {
                    secret::Verdict::Same => replay(&answer),
                    secret::Verdict::Another => ApiError::KeyReused.into_response(),
                    secret::Verdict::Refused(response) => response,
                },
            },
        },
        Ok(Begin::Started) => {
            let pending = Pending { key: idem.clone(), locked_until, kept: Arc::new(AtomicBool::new(false)) };
            let work =
                PENDING.scope(pending.clone(), next.run(Request::from_parts(parts, Body::from(bytes))));
            // A panic (answered 500 by the catch-panic layer outside) frees the key as any 5xx does.
            let response = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(response) => response,
                Err(panic) => {
                    if !pending.kept.load(Ordering::SeqCst) {
                        release(state, &idem, locked_until).await;
                    }
                    std::panic::resume_unwind(panic);
                }
            };
            if pending.kept.load(Ordering::SeqCst) {
                return response;
            }
            keep_or_release(state, &idem, locked_until, response, secret.is_some()).await
        }
    }
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

/// Frees a key (an answer that is not kept), if the request still holds it.
async fn release(state: &AppState, idem: &IdempotencyKey, locked_until: DateTime<Utc>) {
    if let Err(e) = state.repos.idempotency.release(idem, locked_until).await {
        tracing::warn!(error = %e, "an idempotency key not freed: it frees itself when its lock passes");
    }
}

/// The largest answer kept: DynamoDB's item limit is 400 KB, with the record's other attributes.
pub const MAX_KEPT_BYTES: usize = 350 * 1024;

/// Keeps a 2xx answer and the handler's own 4xx (400, 404, 409, 412, 422), and frees the key
/// otherwise (401, 403, 429, 5xx: a retry does the work). A request whose body held a password
/// keeps only a creation, whose account a retry's password is checked against. An answer over
/// [`MAX_KEPT_BYTES`] is not kept (the key is freed, and the reason logged): only a validation
/// error of a huge body comes near it, and doing that again changes nothing.
async fn keep_or_release(
    state: &AppState,
    idem: &IdempotencyKey,
    locked_until: DateTime<Utc>,
    response: Response,
    secret: bool,
) -> Response {
    let status = response.status();
    let kept = status.is_success() || (!secret && [400, 404, 409, 412, 422].contains(&status.as_u16()));
    if !kept {
        release(state, idem, locked_until).await;
        return response;
    }
    let (response, answer) = kept_answer(response).await;
    let Some(answer) = answer else {
        release(state, idem, locked_until).await;
        return response;
    };
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
    if bytes.len() > MAX_KEPT_BYTES {
        tracing::warn!(bytes = bytes.len(), "an answer too large to keep: its key is freed instead");
        return ((parts, Body::from(bytes)).into_response(), None);
    }
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
