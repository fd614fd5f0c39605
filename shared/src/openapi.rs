//! What the OpenAPI document says about the parts every function shares: the reusable error
//! responses (each a status, the wire body [`crate::error::ApiError`] renders for it, and its
//! headers), the sets of them that whole groups of operations answer, and the security scheme.
//! Each function annotates its handlers with `#[utoipa::path]` using these; the catalog joins
//! the functions' parts into one document.

use utoipa::openapi::schema::{SchemaFormat, Type};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, KnownFormat, ObjectBuilder, Ref, RefOr, ResponseBuilder,
};
use utoipa::{Modify, ToSchema};

use crate::error::{
    ErrorDetail, FieldError, KeyedRequestError, LocItem, OAuthError, OAuthErrorCode, ValidationErrors,
};

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

/// A response header's type.
#[derive(Debug, Clone, Copy)]
enum HeaderType {
    Text,
    Seconds,
}

fn header(kind: HeaderType, description: &str) -> utoipa::openapi::header::Header {
    let schema = match kind {
        HeaderType::Text => ObjectBuilder::new().schema_type(Type::String),
        HeaderType::Seconds => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
    };
    HeaderBuilder::new().schema(Some(schema)).description(Some(description)).build()
}

/// Declares the reusable error responses: for each, a unit type (`response = NotFound` in
/// `#[utoipa::path]`) whose response is the named body schema, by reference, with its headers;
/// and [`ERROR_RESPONSES`], every one with the status it is answered with.
macro_rules! error_responses {
    ($(
        $(#[doc = $doc:expr])*
        $name:ident = $status:literal, $body:ty, $description:literal
            $(, $header:literal: $kind:ident = $header_doc:literal)*;
    )*) => {
        $(
            $(#[doc = $doc])*
            #[derive(Debug)]
            pub struct $name;

            impl utoipa::ToResponse<'static> for $name {
                fn response() -> (&'static str, RefOr<utoipa::openapi::Response>) {
                    let content = ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(<$body as ToSchema>::name())))
                        .build();
                    let response = ResponseBuilder::new()
                        .description($description)
                        .content("application/json", content)
                        $( .header($header, header(HeaderType::$kind, $header_doc)) )*
                        .build();
                    (stringify!($name), RefOr::T(response))
                }
            }
        )*

        /// Every reusable error response, by name, with the status it answers.
        pub const ERROR_RESPONSES: &[(&str, u16)] = &[$((stringify!($name), $status)),*];
    };
}

error_responses! {
    /// 400 with a `detail`.
    BadRequest = 400, ErrorDetail, "The request cannot be carried out as asked";
    /// 400 from the token and revocation endpoints (RFC 6749 §5.2).
    OAuthBadRequest = 400, OAuthError, "The request or the grant is invalid",
        "Cache-Control": Text = "no-store";
    /// 401.
    Unauthorized = 401, ErrorDetail, "No valid bearer token",
        "WWW-Authenticate": Text = "`Bearer`, with `error=\"invalid_token\"` when a token was sent (RFC 6750)";
    /// 403 on any protected operation.
    Forbidden = 403, ErrorDetail, "Not allowed to the caller (inactive, not a superuser, or forbidden)";
    /// 403 on an operation only superusers may call.
    NotSuperuser = 403, ErrorDetail, "The caller is inactive, or not a superuser";
    /// 404.
    NotFound = 404, ErrorDetail, "No such resource, or not the caller's";
    /// 409.
    Conflict = 409, ErrorDetail, "The email is taken";
    /// 409 of an operation that takes an `Idempotency-Key` and creates nothing unique.
    KeyInProgress = 409, ErrorDetail, "A request with this `Idempotency-Key` is still in progress",
        "Retry-After": Seconds = "Seconds until its lock passes (its deadline), when a retry may do the work";
    /// 409 of a create that takes an `Idempotency-Key` and reserves an email.
    KeyedConflict = 409, ErrorDetail,
        "The email is taken; or a request with this `Idempotency-Key` is still in progress (then with `Retry-After`)",
        "Retry-After": Seconds = "With a request in progress: seconds until its lock passes";
    /// 412.
    PreconditionFailed = 412, ErrorDetail,
        "`If-Match` matches no current version of the record at this path (a stale or a malformed tag)";
    /// 413.
    PayloadTooLarge = 413, ErrorDetail, "The body is over 65536 bytes";
    /// 415.
    UnsupportedMediaType = 415, ErrorDetail, "The body is not of the media type the operation takes";
    /// 422.
    ValidationFailed = 422, ValidationErrors, "Validation error";
    /// 422 of an operation that takes an `Idempotency-Key`.
    KeyedValidationFailed = 422, KeyedRequestError,
        "Validation error (`loc: [\"header\", \"idempotency-key\"]` for a malformed key); or, as `{\"detail\": \"...\"}`, this `Idempotency-Key` was used with another payload";
    /// 429.
    TooManyRequests = 429, ErrorDetail, "Too many failed password checks for this email from this address, from this address, or for this email from everywhere",
        "Retry-After": Seconds = "Seconds until the next attempt may be made";
    /// 503.
    Unavailable = 503, ErrorDetail,
        "The data store did not answer in time or refused the request. It may or may not have taken effect, but never in part: it can be retried (a create that did land then answers 409)",
        "Retry-After": Seconds = "Seconds to wait before retrying";
}

/// The error bodies and responses every function's part refers to.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(components(
    schemas(
        ErrorDetail,
        ValidationErrors,
        KeyedRequestError,
        FieldError,
        LocItem,
        OAuthError,
        OAuthErrorCode
    ),
    responses(
        BadRequest,
        OAuthBadRequest,
        Unauthorized,
        Forbidden,
        NotSuperuser,
        NotFound,
        Conflict,
        KeyInProgress,
        KeyedConflict,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        KeyedValidationFailed,
        TooManyRequests,
        Unavailable
    )
))]
pub struct SharedComponents;

/// The answers every protected operation may give whatever it does: no or a bad token (401),
/// an inactive user (403), the store down (503).
#[derive(Debug, utoipa::IntoResponses)]
pub enum ProtectedErrors {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    Forbidden(#[ref_response] Forbidden),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// The answers of an operation only superusers may call: as [`ProtectedErrors`], and 403 for
/// everyone else.
#[derive(Debug, utoipa::IntoResponses)]
pub enum SuperuserErrors {
    #[response(status = 401)]
    Unauthorized(#[ref_response] Unauthorized),
    #[response(status = 403)]
    NotSuperuser(#[ref_response] NotSuperuser),
    #[response(status = 503)]
    Unavailable(#[ref_response] Unavailable),
}

/// As [`JsonBodyErrors`], for an operation that takes an `Idempotency-Key`: its 422 may also be
/// the key used with another payload.
#[derive(Debug, utoipa::IntoResponses)]
pub enum KeyedJsonBodyErrors {
    #[response(status = 413)]
    PayloadTooLarge(#[ref_response] PayloadTooLarge),
    #[response(status = 415)]
    UnsupportedMediaType(#[ref_response] UnsupportedMediaType),
    #[response(status = 422)]
    KeyedValidationFailed(#[ref_response] KeyedValidationFailed),
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
