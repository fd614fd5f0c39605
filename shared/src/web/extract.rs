//! Extractors whose rejections are the API's own errors: the JSON body (415 → 413 → 422, in that
//! order, the size checked before anything is parsed), the OAuth2 form, path ids and `If-Match`.
//! Each documents itself in the OpenAPI document where it can (path ids and `If-Match` are
//! `IntoParams`), so the document describes what the extractor reads.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use super::MAX_BODY_BYTES;
use crate::error::{ApiError, FieldError};
use crate::validate::{FromJsonBody, parse_body};

/// The essence of a `Content-Type` (lower-cased, without parameters), and its charset.
fn media_type(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let raw = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mut parts = raw.split(';');
    let essence = parts.next()?.trim().to_ascii_lowercase();
    let charset = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
    Some((essence, charset))
}

/// JSON, as FastAPI decides it: `application/json` or `application/*+json` (with a UTF-8
/// charset, if one is named), or no `Content-Type` at all.
fn is_json_media(headers: &HeaderMap) -> bool {
    if !headers.contains_key(header::CONTENT_TYPE) {
        return true;
    }
    match media_type(headers) {
        Some((essence, charset)) => {
            let json = essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"));
            json && charset.is_none_or(|c| c == "utf-8" || c == "utf8")
        }
        None => false,
    }
}

/// Reads the body, refusing it with 413 when it is (or announces itself as) over the limit.
async fn read_limited(request: Request) -> Result<Bytes, ApiError> {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(request.into_body(), MAX_BODY_BYTES).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::PayloadTooLarge
        } else {
            ApiError::BadRequest("Could not read the request body".into())
        }
    })
}

/// A JSON request body parsed into `T`, FastAPI-style.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: FromJsonBody, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        if !is_json_media(request.headers()) {
            return Err(ApiError::UnsupportedMediaType("application/json".into()));
        }
        let bytes = read_limited(request).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::validation(FieldError::new(
                vec!["body".into()],
                "missing",
                "Field required",
            )));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| json_invalid(&bytes, &e))?;
        parse_body(value).map(Self)
    }
}

/// FastAPI's `json_invalid`: the location is the byte offset of the error.
fn json_invalid(bytes: &[u8], error: &serde_json::Error) -> ApiError {
    let offset: usize = bytes
        .split(|b| *b == b'\n')
        .take(error.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum::<usize>()
        + error.column().saturating_sub(1);
    let reason = error.to_string();
    let reason = reason.split(" at line ").next().unwrap_or("invalid JSON").to_owned();
    ApiError::validation(
        FieldError::new(vec!["body".into(), offset.into()], "json_invalid", "JSON decode error")
            .with_ctx(json!({ "error": reason })),
    )
}

/// An `application/x-www-form-urlencoded` body read into `T` for the OAuth2 endpoints, whose
/// errors are RFC 6749 §5.2 `invalid_request`. `T` declares its parameters once, as fields of
/// type [`Param`] (serde); parameters it does not name are ignored.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let form =
            media_type(request.headers()).is_some_and(|(e, _)| e == "application/x-www-form-urlencoded");
        if !form {
            return Err(ApiError::invalid_request("Content-Type must be application/x-www-form-urlencoded"));
        }
        let invalid = || ApiError::invalid_request("The form body is not valid");
        let bytes = read_limited(request).await?;
        let pairs = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).map_err(|_| invalid())?;
        // Each name once: its value, or every value when it was sent more than once.
        let mut params = serde_json::Map::new();
        for (name, value) in pairs {
            match params.remove(&name) {
                None => params.insert(name, Value::String(value)),
                Some(Value::Array(mut values)) => {
                    values.push(Value::String(value));
                    params.insert(name, Value::Array(values))
                }
                Some(first) => params.insert(name, Value::Array(vec![first, Value::String(value)])),
            };
        }
        serde_json::from_value(Value::Object(params)).map(Self).map_err(|_| invalid())
    }
}

/// One parameter of an OAuth2 form: absent, or empty (which RFC 6749 §3.1 counts as absent),
/// sent once, or sent more than once. §3.2 forbids the last for the parameters a request uses,
/// so [`Param::get`] refuses it where the parameter is read, and only there: a repeated parameter
/// the grant does not use is ignored like any other.
#[derive(Clone, Default)]
pub enum Param {
    #[default]
    Absent,
    Once(String),
    Repeated,
}

impl Param {
    /// The value, if one was sent; a parameter sent more than once is an `invalid_request`.
    pub fn get(&self) -> Result<Option<&str>, ApiError> {
        match self {
            Self::Absent => Ok(None),
            Self::Once(value) => Ok(Some(value)),
            Self::Repeated => Err(ApiError::invalid_request("A parameter was sent more than once")),
        }
    }
}

/// Never the value: a parameter may be a password or a token.
impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Absent => "Absent",
            Self::Once(_) => "Once(**redacted**)",
            Self::Repeated => "Repeated",
        })
    }
}

impl<'de> Deserialize<'de> for Param {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // What was sent: one value, or the values of a repeated parameter (which are never read:
        // a repeat is refused whatever its values).
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Sent {
            Once(String),
            Repeated(serde::de::IgnoredAny),
        }
        Ok(match Sent::deserialize(d)? {
            Sent::Once(value) if value.is_empty() => Self::Absent,
            Sent::Once(value) => Self::Once(value),
            Sent::Repeated(_) => Self::Repeated,
        })
    }
}

/// Declares the extractor of one UUID path parameter: `path_id!(/// The item's id. ItemId,
/// "item_id")`. A value that is not a UUID is a 422 at `["path", name]`, and the type documents
/// the parameter (`params(ItemId)` in `#[utoipa::path]`).
#[macro_export]
macro_rules! path_id {
    ($(#[doc = $doc:expr])* $name:ident, $param:literal) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub $crate::__macro::uuid::Uuid);

        impl<S: Send + Sync> $crate::__macro::axum::extract::FromRequestParts<S> for $name {
            type Rejection = $crate::ApiError;

            async fn from_request_parts(
                parts: &mut $crate::__macro::axum::http::request::Parts,
                state: &S,
            ) -> Result<Self, $crate::ApiError> {
                $crate::web::extract::path_uuid(parts, state, $param).await.map(Self)
            }
        }

        impl $crate::__macro::utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<$crate::__macro::utoipa::openapi::path::ParameterIn>,
            ) -> Vec<$crate::__macro::utoipa::openapi::path::Parameter> {
                vec![$crate::web::extract::path_parameter($param, &[$($doc),*])]
            }
        }
    };
}

/// The UUID path parameter `name`, or a 422 at `["path", name]`.
pub async fn path_uuid<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<uuid::Uuid, ApiError> {
    let invalid = |why: String| {
        ApiError::validation(FieldError::at(
            "path",
            name,
            "uuid_parsing",
            format!("Input should be a valid UUID, {why}"),
        ))
    };
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| invalid("the path is not valid UTF-8".into()))?;
    let raw = params
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .ok_or_else(|| ApiError::Internal(format!("route has no {name}")))?;
    uuid::Uuid::parse_str(raw).map_err(|e| invalid(e.to_string()))
}

/// The document's entry for a UUID path parameter.
pub fn path_parameter(name: &str, doc: &[&str]) -> Parameter {
    let description = doc.iter().map(|l| l.trim()).collect::<Vec<_>>().join(" ");
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description).filter(|d| !d.is_empty()))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid))),
        ))
        .build()
}

crate::path_id!(
    /// The user's id
    UserId,
    "user_id"
);

/// `If-Match` (RFC 9110 §13.1.1): absent, `*`, or a list of entity tags compared strongly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    Absent,
    Any,
    Tags(Vec<String>),
    /// Not `*` nor a list of entity tags: matches nothing.
    Malformed,
}

impl IfMatch {
    /// Whether a resource with this current ETag satisfies the precondition.
    pub fn matches(&self, etag: &str) -> bool {
        match self {
            Self::Absent | Self::Any => true,
            // A weak tag never matches under strong comparison.
            Self::Tags(tags) => tags.iter().any(|t| t == etag),
            Self::Malformed => false,
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        if raw == "*" {
            return Some(Self::Any);
        }
        let mut tags = Vec::new();
        for tag in raw.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let opaque = tag.strip_prefix("W/").unwrap_or(tag);
            let valid = opaque.len() >= 2
                && opaque.starts_with('"')
                && opaque.ends_with('"')
                && !opaque[1..opaque.len() - 1].contains('"');
            if !valid {
                return None;
            }
            tags.push(tag.to_owned());
        }
        if tags.is_empty() { None } else { Some(Self::Tags(tags)) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let values: Vec<_> = parts.headers.get_all(header::IF_MATCH).iter().collect();
        if values.is_empty() {
            return Ok(Self::Absent);
        }
        let joined = values.iter().map(|v| v.to_str().unwrap_or("\u{0}")).collect::<Vec<_>>().join(",");
        // A value that is not `*` or a list of entity tags names no version the item can have:
        // the precondition is false (412), as for a tag that does not match.
        Ok(Self::parse(&joined).unwrap_or(Self::Malformed))
    }
}

impl utoipa::IntoParams for IfMatch {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![
            ParameterBuilder::new()
                .name("If-Match")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Only if the `ETag` of the record at this path matches (RFC 9110 §13.1.1): `\"3\"`, a list of them, or `*`;\n\
                     otherwise 412 and nothing changes. A value that is none of these matches no version (412).\n\
                     Without it the write is unconditional.",
                ))
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_parses_star_and_tag_lists() {
        assert_eq!(IfMatch::parse("*"), Some(IfMatch::Any));
        let m = IfMatch::parse(r#""1", W/"2" ,"3""#).expect("valid");
        assert!(m.matches(r#""1""#) && m.matches(r#""3""#));
        assert!(!m.matches(r#""2""#), "weak tags never match strongly");
        for bad in ["", "1", r#""1"#, r#"a"1""#, r#""1"2""#] {
            assert_eq!(IfMatch::parse(bad), None, "{bad:?}");
        }
    }
}
