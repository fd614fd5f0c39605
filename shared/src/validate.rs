//! Parse, don't validate: request bodies are read field by field into newtypes (`Email`,
//! `Password`, `Title`, ...), collecting *every* problem into FastAPI/Pydantic v2-shaped 422
//! entries rather than stopping at the first, and rejecting unknown fields (`extra_forbidden`).
//!
//! Serde's derive stops at the first error and cannot tell "absent" from "null", which the
//! contract needs for `full_name`/`description` ("null clears it, absent leaves it").

use serde_json::{Map, Value, json};

use crate::error::{ApiError, FieldError};

/// A field of a PATCH body: absent (leave it), or present with a value. For nullable fields the
/// value is itself an `Option` ("null clears it").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    #[default]
    Absent,
    Set(T),
}

impl<T> Patch<T> {
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Absent => None,
            Self::Set(v) => Some(v),
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

/// Something that can be parsed from one JSON value, reporting Pydantic-shaped errors at `loc`.
pub trait FieldValue: Sized {
    fn parse(value: &Value, loc: &[Value]) -> Result<Self, FieldError>;
}

/// Types that are read from a JSON request body.
pub trait FromJsonBody: Sized {
    fn from_body(reader: &mut ObjectReader) -> Option<Self>;
}

/// Parse a whole body: it must be a JSON object; every field error and every unknown field is
/// reported, in the order of the schema and then of the input.
pub fn parse_body<T: FromJsonBody>(value: Value) -> Result<T, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::validation(FieldError::new(
            vec![json!("body")],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )));
    };
    let mut reader = ObjectReader::new(map);
    let parsed = T::from_body(&mut reader);
    reader.finish()?;
    parsed.ok_or_else(|| ApiError::Internal("body parser returned nothing without errors".into()))
}

/// Reads the fields of one JSON object, remembering which were consumed and every error seen.
#[derive(Debug)]
pub struct ObjectReader {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl ObjectReader {
    pub fn new(map: Map<String, Value>) -> Self {
        Self { map, errors: Vec::new() }
    }

    fn loc(name: &str) -> Vec<Value> {
        vec![json!("body"), json!(name)]
    }

    /// A required field that may not be null.
    pub fn required<T: FieldValue>(&mut self, name: &str) -> Option<T> {
        match self.map.remove(name) {
            None => {
                self.errors.push(FieldError::new(Self::loc(name), "missing", "Field required"));
                None
            }
            Some(value) => self.parse(name, &value),
        }
    }

    /// An optional field that may not be null; absent gives `default`.
    pub fn optional<T: FieldValue>(&mut self, name: &str, default: T) -> Option<T> {
        match self.map.remove(name) {
            None => Some(default),
            Some(value) => self.parse(name, &value),
        }
    }

    /// A PATCH field that may not be null: absent leaves it.
    pub fn patch<T: FieldValue>(&mut self, name: &str) -> Option<Patch<T>> {
        match self.map.remove(name) {
            None => Some(Patch::Absent),
            Some(value) => self.parse(name, &value).map(Patch::Set),
        }
    }

    /// A nullable field: absent or null give `None`.
    pub fn nullable<T: FieldValue>(&mut self, name: &str) -> Option<Option<T>> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Some(None),
            Some(value) => self.parse(name, &value).map(Some),
        }
    }

    /// A nullable PATCH field: absent leaves it, null clears it.
    pub fn nullable_patch<T: FieldValue>(&mut self, name: &str) -> Option<Patch<Option<T>>> {
        match self.map.remove(name) {
            None => Some(Patch::Absent),
            Some(Value::Null) => Some(Patch::Set(None)),
            Some(value) => self.parse(name, &value).map(|v| Patch::Set(Some(v))),
        }
    }

    fn parse<T: FieldValue>(&mut self, name: &str, value: &Value) -> Option<T> {
        match T::parse(value, &Self::loc(name)) {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// Reports every field that the schema did not read as `extra_forbidden`.
    fn finish(mut self) -> Result<(), ApiError> {
        let extra = std::mem::take(&mut self.map);
        for key in extra.keys() {
            self.errors.push(FieldError::new(
                Self::loc(key),
                "extra_forbidden",
                "Extra inputs are not permitted",
            ));
        }
        if self.errors.is_empty() { Ok(()) } else { Err(ApiError::Validation(self.errors)) }
    }
}

/// The OpenAPI schema of a boolean as [`FieldValue for bool`] reads it: a JSON boolean, 0 or 1,
/// or one of Pydantic's boolean strings in any case.
pub fn lax_bool_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Type};
    let strings = "^([01]|[oO][nN]|[oO][fF][fF]|[tT]([rR][uU][eE])?|[fF]([aA][lL][sS][eE])?|[yY]([eE][sS])?|[nN][oO]?)$";
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(ObjectBuilder::new().schema_type(Type::Number).enum_values(Some([0, 1])))
        .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(strings)))
        .description(Some("A boolean; also 0 or 1, or \"true\", \"false\", \"yes\", \"no\", \"on\", \"off\", \"t\", \"f\", \"y\", \"n\", \"1\", \"0\" in any case, as Pydantic reads them"))
        .into()
}

/// Booleans as Pydantic v2's lax mode reads them: JSON booleans, 0 and 1, and the strings it
/// accepts (`"true"`, `"false"`, `"yes"`, `"off"`, ...).
impl FieldValue for bool {
    fn parse(value: &Value, loc: &[Value]) -> Result<Self, FieldError> {
        let type_error = || FieldError::new(loc.to_vec(), "bool_type", "Input should be a valid boolean");
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => match n.as_f64() {
                Some(0.0) => Ok(false),
                Some(1.0) => Ok(true),
                _ => Err(FieldError::new(
                    loc.to_vec(),
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                )),
            },
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
                "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
                _ => Err(FieldError::new(
                    loc.to_vec(),
                    "bool_parsing",
                    "Input should be a valid boolean, unable to interpret input",
                )),
            },
            _ => Err(type_error()),
        }
    }
}

pub(crate) fn string_of(value: &Value, loc: &[Value]) -> Result<String, FieldError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| FieldError::new(loc.to_vec(), "string_type", "Input should be a valid string"))
}

/// Checks a length in characters (Unicode scalar values), as Pydantic counts.
pub(crate) fn check_length(s: &str, min: usize, max: usize, loc: &[Value]) -> Result<(), FieldError> {
    let n = s.chars().count();
    if n < min {
        let unit = if min == 1 { "character" } else { "characters" };
        return Err(FieldError::new(
            loc.to_vec(),
            "string_too_short",
            format!("String should have at least {min} {unit}"),
        )
        .with_ctx(json!({ "min_length": min })));
    }
    if n > max {
        return Err(FieldError::new(
            loc.to_vec(),
            "string_too_long",
            format!("String should have at most {max} characters"),
        )
        .with_ctx(json!({ "max_length": max })));
    }
    Ok(())
}

/// Declares a string newtype with a length range (in characters).
macro_rules! bounded_string {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MIN: usize = $min;
            pub const MAX: usize = $max;

            pub fn parse(s: &str) -> Result<Self, $crate::error::FieldError> {
                Self::parse_at(s, &[::serde_json::json!("body")])
            }

            fn parse_at(s: &str, loc: &[::serde_json::Value]) -> Result<Self, $crate::error::FieldError> {
                $crate::validate::check_length(s, Self::MIN, Self::MAX, loc)?;
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .min_length(Some(Self::MIN))
                    .max_length(Some(Self::MAX))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}

        impl $crate::validate::FieldValue for $name {
            fn parse(
                value: &::serde_json::Value,
                loc: &[::serde_json::Value],
            ) -> Result<Self, $crate::error::FieldError> {
                Self::parse_at(&$crate::validate::string_of(value, loc)?, loc)
            }
        }
    };
}
pub(crate) use bounded_string;

bounded_string!(
    /// A password as submitted: 8–128 characters. Its `Debug` never shows it.
    Password, 8, 128
);
bounded_string!(
    /// `full_name`: at most 255 characters.
    FullName, 0, 255
);
bounded_string!(
    /// An item's title: 1–255 characters.
    Title, 1, 255
);
bounded_string!(
    /// An item's description: at most 4000 characters.
    Description, 0, 4000
);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(**redacted**)")
    }
}

macro_rules! debug_as_str {
    ($($name:ident),*) => {$(
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(&self.0, f)
            }
        }
    )*};
}
debug_as_str!(FullName, Title, Description);

/// A valid, trimmed e-mail address (≤ 254 characters) with its domain lower-cased, as
/// email-validator normalises it. Uniqueness uses [`Email::key`], the whole address lower-cased,
/// so `A@x.io` and `a@x.io` are the same account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub const MAX: usize = 254;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX {
            return Err(format!("The email address is too long (at most {} characters)", Self::MAX));
        }
        let options = email_address::Options::default()
            .with_required_tld()
            .without_domain_literal()
            .without_display_text();
        let parsed =
            email_address::EmailAddress::parse_with_options(trimmed, options).map_err(|e| e.to_string())?;
        Ok(Self(format!("{}@{}", parsed.local_part(), parsed.domain().to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The case-insensitive uniqueness key.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// Rebuilds an address that was validated before it was stored.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }
}

impl utoipa::PartialSchema for Email {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(Self::MAX))
            .into()
    }
}

impl utoipa::ToSchema for Email {}

impl FieldValue for Email {
    fn parse(value: &Value, loc: &[Value]) -> Result<Self, FieldError> {
        let s = string_of(value, loc)?;
        Email::parse(&s).map_err(|reason| {
            FieldError::new(
                loc.to_vec(),
                "value_error",
                format!("value is not a valid email address: {reason}"),
            )
            .with_ctx(json!({ "reason": reason }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_their_domain_lowercased() {
        let e = Email::parse("  Alice@Example.IO ").expect("valid");
        assert_eq!(e.as_str(), "Alice@example.io");
        assert_eq!(e.key(), "alice@example.io");
    }

    #[test]
    fn invalid_emails_are_rejected() {
        for bad in ["", "no-at-sign", "a@b", "a@@b.io", "Name <a@b.io>", "a@[127.0.0.1]", " @x.io"] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.io", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }

    #[test]
    fn lengths_are_counted_in_characters() {
        assert!(Password::parse("éééééééé").is_ok());
        assert!(Password::parse("short").is_err());
        assert!(Title::parse("").is_err());
        assert!(Title::parse(&"x".repeat(255)).is_ok());
        assert!(Title::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn booleans_are_read_as_pydantic_lax_mode_reads_them() {
        let loc = [json!("body"), json!("flag")];
        for (input, expected) in
            [(json!(true), true), (json!(0), false), (json!("YES"), true), (json!("off"), false)]
        {
            assert_eq!(<bool as FieldValue>::parse(&input, &loc), Ok(expected), "{input}");
        }
        for (input, kind) in [
            (json!(2), "bool_parsing"),
            (json!("maybe"), "bool_parsing"),
            (json!(null), "bool_type"),
            (json!([]), "bool_type"),
        ] {
            assert_eq!(
                <bool as FieldValue>::parse(&input, &loc).map_err(|e| e.kind),
                Err(kind.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn password_debug_never_shows_the_password() {
        let p = Password::parse("hunter2hunter2").expect("valid");
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
