//! Extractors whose rejections are the API's own errors: the JSON body (415 → 413 → 422, in that
//! order, the size checked before anything is parsed), the OAuth2 form, path ids, paging query
//! parameters and `If-Match`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde_json::{Value, json};
use uuid::Uuid;

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
                vec![json!("body")],
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
        FieldError::new(vec![json!("body"), json!(offset)], "json_invalid", "JSON decode error")
            .with_ctx(json!({ "error": reason })),
    )
}

/// An `application/x-www-form-urlencoded` body for the OAuth2 endpoints, whose errors are
/// RFC 6749 §5.2 `invalid_request`.
#[derive(Debug)]
pub struct OAuthForm(Vec<(String, String)>);

impl OAuthForm {
    /// A parameter that must appear at most once (RFC 6749 §3.2); empty counts as absent.
    pub fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        let mut values = self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str());
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::invalid_request("A parameter was sent more than once"));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }
}

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, _state: &S) -> Result<Self, ApiError> {
        let form =
            media_type(request.headers()).is_some_and(|(e, _)| e == "application/x-www-form-urlencoded");
        if !form {
            return Err(ApiError::invalid_request("Content-Type must be application/x-www-form-urlencoded"));
        }
        let bytes = read_limited(request).await?;
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
            .map(Self)
            .map_err(|_| ApiError::invalid_request("The form body is not valid"))
    }
}

/// Declares an extractor for one UUID path parameter, reporting `loc: ["path", name]`.
macro_rules! path_uuid {
    ($(#[$doc:meta])* $name:ident, $param:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub Uuid);

        impl<S: Send + Sync> FromRequestParts<S> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let invalid = |why: String| {
                    ApiError::validation(FieldError::at(
                        "path",
                        $param,
                        "uuid_parsing",
                        format!("Input should be a valid UUID, {why}"),
                    ))
                };
                let params = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map_err(|_| invalid("the path is not valid UTF-8".into()))?;
                let raw = params
                    .iter()
                    .find(|(k, _)| *k == $param)
                    .map(|(_, v)| v)
                    .ok_or_else(|| ApiError::Internal(concat!("route has no ", $param).into()))?;
                Uuid::parse_str(raw).map(Self).map_err(|e| invalid(e.to_string()))
            }
        }
    };
}

path_uuid!(
    /// `{item_id}` in the path.
    ItemId,
    "item_id"
);
path_uuid!(
    /// `{user_id}` in the path.
    UserId,
    "user_id"
);

fn query_pairs(parts: &Parts) -> HashMap<String, String> {
    // As FastAPI does for scalar parameters, the last occurrence wins.
    serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query().unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// `limit` (1–100, default 20) and `cursor` of a listing.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub limit: usize,
    pub cursor: Option<String>,
}

/// The items listing's query: the page, and `owner_id` (superusers only).
#[derive(Debug, Clone)]
pub struct ItemsQuery {
    pub page: PageQuery,
    pub owner_id: Option<Uuid>,
}

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// Reads the page parameters, adding any errors to `errors` (FastAPI reports every query
/// parameter's error at once). Parameters a listing does not declare are ignored, as FastAPI does.
fn page_query(query: &HashMap<String, String>, errors: &mut Vec<FieldError>) -> PageQuery {
    let limit = match query.get("limit").map(|s| s.trim()) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Err(_) => {
                errors.push(FieldError::at(
                    "query",
                    "limit",
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                ));
                DEFAULT_LIMIT
            }
            Ok(n) if n < 1 => {
                errors.push(
                    FieldError::at(
                        "query",
                        "limit",
                        "greater_than_equal",
                        "Input should be greater than or equal to 1",
                    )
                    .with_ctx(json!({ "ge": 1 })),
                );
                DEFAULT_LIMIT
            }
            Ok(n) if n > MAX_LIMIT as i64 => {
                errors.push(
                    FieldError::at(
                        "query",
                        "limit",
                        "less_than_equal",
                        "Input should be less than or equal to 100",
                    )
                    .with_ctx(json!({ "le": MAX_LIMIT })),
                );
                DEFAULT_LIMIT
            }
            Ok(n) => n as usize,
        },
    };
    PageQuery { limit, cursor: query.get("cursor").filter(|c| !c.is_empty()).cloned() }
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let page = page_query(&query_pairs(parts), &mut errors);
        if errors.is_empty() { Ok(page) } else { Err(ApiError::Validation(errors)) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ItemsQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = query_pairs(parts);
        let mut errors = Vec::new();
        let page = page_query(&query, &mut errors);
        let owner_id = match query.get("owner_id") {
            None => None,
            Some(raw) => match Uuid::parse_str(raw) {
                Ok(id) => Some(id),
                Err(e) => {
                    errors.push(FieldError::at(
                        "query",
                        "owner_id",
                        "uuid_parsing",
                        format!("Input should be a valid UUID, {e}"),
                    ));
                    None
                }
            },
        };
        if errors.is_empty() { Ok(Self { page, owner_id }) } else { Err(ApiError::Validation(errors)) }
    }
}

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
