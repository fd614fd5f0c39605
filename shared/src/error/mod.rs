//! The one error type of the API: every variant is a row of the contract's error table
//! (`docs/contract.md`) and renders exactly that status, body and headers, through the wire
//! types of [`body`]. 5xx bodies never carry the cause; it goes to the log.

mod body;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub use body::{
    ErrorDetail, FieldError, KeyedRequestError, LocItem, OAuthError, OAuthErrorCode, ValidationErrors,
};

use crate::repo::RepoError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: well-formed but refused by a rule (wrong current password, ...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// 401 without a token: `WWW-Authenticate: Bearer` (RFC 6750 §3: no error code).
    #[error("not authenticated")]
    NotAuthenticated,
    /// 401 with a token that did not validate: `error="invalid_token"`.
    #[error("invalid token")]
    InvalidToken,
    /// 403.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// 404, also for a resource that belongs to someone else (no existence leak).
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// 405 with the complete `Allow` list of the path.
    #[error("method not allowed")]
    MethodNotAllowed(HeaderValue),
    /// 409.
    #[error("conflict: {0}")]
    Conflict(String),
    /// 409: a request with the same `Idempotency-Key` is still in progress; `Retry-After` is the
    /// seconds until its lock passes.
    #[error("idempotency key in progress")]
    KeyInProgress { retry_after_secs: u64 },
    /// 412: `If-Match` does not match the current ETag.
    #[error("precondition failed")]
    PreconditionFailed,
    /// 413: refused before parsing.
    #[error("payload too large")]
    PayloadTooLarge,
    /// 415.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// 422 `{"detail": "..."}`: an `Idempotency-Key` used again with another payload.
    #[error("idempotency key used with another payload")]
    KeyReused,
    /// 422, FastAPI shape.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 429 with `Retry-After` in seconds.
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64, detail: &'static str },
    /// 400 at the OAuth2 endpoints, RFC 6749 §5.2 shape.
    #[error("oauth error: {code:?}")]
    OAuth { code: OAuthErrorCode, description: &'static str },
    /// 503: the store is unavailable or throttling after retries.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 500: a bug. The cause is logged, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Seconds a client should wait after a 503; DynamoDB throttling clears within a few seconds.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 2;

impl ApiError {
    pub fn validation(error: FieldError) -> Self {
        Self::Validation(vec![error])
    }

    pub fn invalid_grant() -> Self {
        Self::OAuth { code: OAuthErrorCode::InvalidGrant, description: "Invalid credentials or grant" }
    }

    pub fn invalid_request(description: &'static str) -> Self {
        Self::OAuth { code: OAuthErrorCode::InvalidRequest, description }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) | Self::OAuth { .. } => StatusCode::BAD_REQUEST,
            Self::NotAuthenticated | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) | Self::KeyInProgress { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Validation(_) | Self::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<RepoError> for ApiError {
    fn from(err: RepoError) -> Self {
        match err {
            RepoError::Unavailable(cause) => Self::Unavailable(cause),
            RepoError::Internal(cause) => Self::Internal(cause),
            RepoError::Corrupt(cause) => Self::Internal(format!("malformed record: {cause}")),
        }
    }
}

fn detail(status: StatusCode, message: &str) -> Response {
    (status, Json(ErrorDetail { detail: message.to_owned() })).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = match &self {
            Self::BadRequest(msg) | Self::Forbidden(msg) | Self::Conflict(msg) => detail(status, msg),
            Self::NotAuthenticated => detail(status, "Not authenticated"),
            Self::InvalidToken => detail(status, "Could not validate credentials"),
            Self::NotFound(what) => detail(status, what),
            Self::MethodNotAllowed(_) => detail(status, "Method Not Allowed"),
            Self::KeyInProgress { .. } => {
                detail(status, "A request with this Idempotency-Key is still in progress")
            }
            Self::KeyReused => detail(status, "This Idempotency-Key was used with another payload"),
            Self::PreconditionFailed => detail(status, "Precondition Failed: the resource has changed"),
            Self::PayloadTooLarge => detail(status, "Request body too large (limit 65536 bytes)"),
            Self::UnsupportedMediaType(expected) => {
                detail(status, &format!("Unsupported Media Type: expected {expected}"))
            }
            Self::Validation(errors) => {
                (status, Json(ValidationErrors { detail: errors.clone() })).into_response()
            }
            Self::TooManyRequests { detail: text, .. } => detail(status, text),
            Self::OAuth { code, description } => {
                (status, Json(OAuthError { error: *code, error_description: (*description).to_owned() }))
                    .into_response()
            }
            Self::Unavailable(cause) => {
                tracing::warn!(error.cause = %cause, "store unavailable");
                let mut response = detail(status, "Service temporarily unavailable");
                crate::metrics::Counted::add(&mut response, crate::metrics::Event::Unavailable);
                response
            }
            Self::Internal(cause) => {
                tracing::error!(error.cause = %cause, "internal error");
                detail(status, "Internal Server Error")
            }
        };
        let headers = response.headers_mut();
        match self {
            Self::NotAuthenticated => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::MethodNotAllowed(allow) => {
                headers.insert(header::ALLOW, allow);
            }
            Self::TooManyRequests { retry_after_secs, .. } | Self::KeyInProgress { retry_after_secs } => {
                insert_retry_after(headers, retry_after_secs)
            }
            Self::Unavailable(_) => insert_retry_after(headers, UNAVAILABLE_RETRY_AFTER_SECS),
            Self::OAuth { .. } => {
                // RFC 6749 §5.1/§5.2: token endpoint answers must not be cached.
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            }
            _ => {}
        }
        response
    }
}

fn insert_retry_after(headers: &mut HeaderMap, secs: u64) {
    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
}

pub type ApiResult<T> = Result<T, ApiError>;
