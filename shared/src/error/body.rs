//! The error bodies as they go over the wire. [`super::ApiError`] renders every error through
//! one of these, and the OpenAPI document describes them from these same types.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `{"detail": "..."}`: every error but validation and the token endpoint's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for a human.
    pub detail: String,
}

/// One item of a validation error's location: a source (`body`, `query`, `path`), a field
/// name, or an index (a byte offset, for malformed JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = LocationItem)]
#[serde(untagged)]
pub enum LocItem {
    Name(String),
    Index(usize),
}

impl From<&str> for LocItem {
    fn from(name: &str) -> Self {
        Self::Name(name.to_owned())
    }
}

impl From<usize> for LocItem {
    fn from(index: usize) -> Self {
        Self::Index(index)
    }
}

/// One validation error, as Pydantic reports it (but never with its `input`, which may be a
/// password).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = ValidationError)]
pub struct FieldError {
    pub loc: Vec<LocItem>,
    pub msg: String,
    /// The kind of error: `missing`, `extra_forbidden`, `string_too_short`, `json_invalid`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// Details of the constraint that failed, when there are any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, required = false)]
    pub ctx: Option<Value>,
}

impl FieldError {
    pub fn new(loc: Vec<LocItem>, kind: &str, msg: impl Into<String>) -> Self {
        Self { loc, msg: msg.into(), kind: kind.to_owned(), ctx: None }
    }

    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// A single error for one named parameter, e.g. `("path", "item_id")`.
    pub fn at(source: &str, name: &str, kind: &str, msg: impl Into<String>) -> Self {
        Self::new(vec![source.into(), name.into()], kind, msg)
    }
}

/// `{"detail": [...]}`: a 422.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct ValidationErrors {
    pub detail: Vec<FieldError>,
}

/// A 422 of an operation that takes an `Idempotency-Key`: a validation error, or the key used
/// with another payload (`{"detail": "..."}`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum KeyedRequestError {
    Validation(ValidationErrors),
    AnotherPayload(ErrorDetail),
}

/// RFC 6749 §5.2 error codes used by the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    InvalidRequest,
    InvalidGrant,
    UnsupportedGrantType,
}

/// An RFC 6749 §5.2 error of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OAuthError {
    pub error: OAuthErrorCode,
    pub error_description: String,
}
