//! The `Idempotency-Key` header: what a valid one is, and how the OpenAPI document describes it.

use axum::http::{HeaderMap, HeaderName};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};

use crate::error::{ApiError, FieldError};

pub static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
pub static IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The key a request names: 1–255 printable ASCII characters.
pub(super) fn parse_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(&IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else { return Ok(None) };
    let bytes = value.as_bytes();
    // One key: a request that names two is not one retry of another.
    let valid = values.next().is_none()
        && !bytes.is_empty()
        && bytes.len() <= 255
        && bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    if !valid {
        return Err(ApiError::validation(FieldError::at(
            "header",
            "idempotency-key",
            "string_pattern_mismatch",
            "Idempotency-Key must be one value of 1 to 255 printable ASCII characters",
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
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
