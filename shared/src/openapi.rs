//! What the OpenAPI document says about the parts every function shares: the error bodies of
//! `ApiError` (as reusable responses, with their headers), the query parameters of listings, and
//! the security scheme. Each function annotates its handlers with `#[utoipa::path]` using these;
//! `functions/docs` gathers them into one document.

// The error and parameter types here describe what `ApiError` and the extractors produce; they
// are never built, only documented.
#![allow(dead_code)]

use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{IntoParams, Modify, ToResponse, ToSchema};

/// The name of the security scheme every protected operation requires.
pub const SECURITY_SCHEME: &str = "OAuth2PasswordBearer";
/// Where Swagger UI's "Authorize" sends the user's email and password.
pub const TOKEN_URL: &str = "/v1/auth/token";

/// Adds the OAuth2 password flow (RFC 6749 §4.3) as FastAPI's `OAuth2PasswordBearer` does.
#[derive(Debug)]
pub struct SecurityAddon;

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let flow = Flow::Password(Password::new(TOKEN_URL, Scopes::new()));
        components.add_security_scheme(SECURITY_SCHEME, SecurityScheme::OAuth2(OAuth2::new([flow])));
    }
}

/// `{"detail": "..."}`: every error but validation and the token endpoint's.
#[derive(Debug, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for a human.
    pub detail: String,
}

/// One item of a validation error's location: a source (`body`, `query`, `path`), a field
/// name, or an index.
#[derive(Debug, ToSchema)]
#[schema(as = LocationItem)]
#[serde(untagged)]
pub enum LocItem {
    Name(String),
    Index(i64),
}

/// One validation error, as Pydantic reports it.
#[derive(Debug, ToSchema)]
pub struct ValidationError {
    pub loc: Vec<LocItem>,
    pub msg: String,
    /// The kind of error: `missing`, `extra_forbidden`, `string_too_short`, `json_invalid`, ...
    #[schema(rename = "type")]
    pub kind: String,
    /// Details of the constraint that failed, when there are any.
    #[schema(value_type = Option<Object>, required = false)]
    pub ctx: Option<serde_json::Value>,
}

/// `{"detail": [...]}`: a 422.
#[derive(Debug, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct HttpValidationError {
    pub detail: Vec<ValidationError>,
}

/// An RFC 6749 §5.2 error of the token endpoint.
#[derive(Debug, ToSchema)]
pub struct OAuthError {
    #[schema(value_type = String, example = "invalid_grant")]
    pub error: String,
    pub error_description: String,
}

/// 400 from the token and revocation endpoints (RFC 6749 §5.2).
#[derive(Debug, ToResponse)]
#[response(
    description = "The request or the grant is invalid",
    headers(("Cache-Control" = String, description = "no-store"))
)]
pub struct OAuthBadRequest(#[to_schema] OAuthError);

/// 400 with a `detail`.
#[derive(Debug, ToResponse)]
#[response(description = "The request cannot be carried out as asked")]
pub struct BadRequest(#[to_schema] ErrorDetail);

/// 401.
#[derive(Debug, ToResponse)]
#[response(
    description = "No valid bearer token",
    headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was sent (RFC 6750)"))
)]
pub struct Unauthorized(#[to_schema] ErrorDetail);

/// 403.
#[derive(Debug, ToResponse)]
#[response(description = "Not allowed to the caller (inactive, not a superuser, or forbidden)")]
pub struct Forbidden(#[to_schema] ErrorDetail);

/// 404.
#[derive(Debug, ToResponse)]
#[response(description = "No such resource, or not the caller's")]
pub struct NotFound(#[to_schema] ErrorDetail);

/// 409.
#[derive(Debug, ToResponse)]
#[response(description = "The email is taken")]
pub struct Conflict(#[to_schema] ErrorDetail);

/// 412.
#[derive(Debug, ToResponse)]
#[response(description = "`If-Match` matches no current version of the item (a stale or a malformed tag)")]
pub struct PreconditionFailed(#[to_schema] ErrorDetail);

/// 413.
#[derive(Debug, ToResponse)]
#[response(description = "The body is over 65536 bytes")]
pub struct PayloadTooLarge(#[to_schema] ErrorDetail);

/// 415.
#[derive(Debug, ToResponse)]
#[response(description = "The body is not of the media type the operation takes")]
pub struct UnsupportedMediaType(#[to_schema] ErrorDetail);

/// 422.
#[derive(Debug, ToResponse)]
#[response(description = "Validation error")]
pub struct ValidationFailed(#[to_schema] HttpValidationError);

/// 429.
#[derive(Debug, ToResponse)]
#[response(
    description = "Too many failed logins for this email",
    headers(("Retry-After" = i64, description = "Seconds until the next attempt may be made"))
)]
pub struct TooManyRequests(#[to_schema] ErrorDetail);

/// 503.
#[derive(Debug, ToResponse)]
#[response(
    description = "The data store did not answer in time or refused the request. It may or may not have taken effect, but never in part: it can be retried (a create that did land then answers 409)",
    headers(("Retry-After" = i64, description = "Seconds to wait before retrying"))
)]
pub struct Unavailable(#[to_schema] ErrorDetail);

/// `limit` and `cursor` of a listing.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// How many records a page holds.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page, to read the next one. A cursor of another listing,
    /// or an altered one, is a 422.
    cursor: Option<String>,
}

/// The items listing's query: the page, and (superusers only) whose items.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemsParams {
    /// How many records a page holds.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page, to read the next one. A cursor of another listing,
    /// or an altered one, is a 422.
    cursor: Option<String>,
    /// Superusers only: list this user's items instead of their own.
    owner_id: Option<uuid::Uuid>,
}

/// `If-Match` of the item writes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
pub struct IfMatchHeader {
    /// Only if the item's `ETag` matches (RFC 9110 §13.1.1): `"3"`, a list of them, or `*`;
    /// otherwise 412 and nothing changes. A value that is none of these matches no version (412).
    /// Without it the write is unconditional.
    #[param(rename = "If-Match", required = false)]
    if_match: String,
}

/// The schemas the shared responses refer to.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(components(schemas(ErrorDetail, HttpValidationError, ValidationError, LocItem, OAuthError)))]
pub struct SharedComponents;

/// The answers every protected operation may give whatever it does: no or a bad token (401),
/// an inactive user or a missing privilege (403), the store down (503).
#[derive(Debug, utoipa::IntoResponses)]
pub enum ProtectedErrors {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The answers of every operation that reads a JSON body: too large (413), not JSON (415),
/// invalid (422).
#[derive(Debug, utoipa::IntoResponses)]
pub enum JsonBodyErrors {
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 415)]
    UnsupportedMediaType(#[ref_response] UnsupportedMediaType),
    #[response(status = 422)]
    ValidationFailed(#[ref_response] ValidationFailed),
}
