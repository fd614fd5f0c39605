//! The values a body's fields are read into: bounded texts, emails, and booleans as Pydantic's lax
//! mode reads them; each with its schema.

use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};

use super::{Components, FieldValue};
use crate::domain::{BoundedText, Email, LengthError};
use crate::error::{FieldError, LocItem};

/// The schema of a named type: a reference to it, and it among the components.
fn named<T: ToSchema>(out: &mut Components) {
    out.push((T::name().into_owned(), T::schema()));
    T::schemas(out);
}

fn reference<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// Any bounded text (`Password`, `Title`, a function's own): a string of the allowed length.
impl<T: BoundedText + ToSchema> FieldValue for T {
    fn parse(value: &Value, loc: &[LocItem]) -> Result<Self, FieldError> {
        let text = string_of(value, loc)?;
        T::parse(&text).map_err(|e| match e {
            LengthError::TooShort { min } => {
                let unit = if min == 1 { "character" } else { "characters" };
                FieldError::new(
                    loc.to_vec(),
                    "string_too_short",
                    format!("String should have at least {min} {unit}"),
                )
                .with_ctx(json!({ "min_length": min }))
            }
            LengthError::TooLong { max } => FieldError::new(
                loc.to_vec(),
                "string_too_long",
                format!("String should have at most {max} characters"),
            )
            .with_ctx(json!({ "max_length": max })),
        })
    }

    fn schema() -> RefOr<Schema> {
        reference::<T>()
    }

    fn components(out: &mut Components) {
        named::<T>(out);
    }
}

impl FieldValue for Email {
    fn parse(value: &Value, loc: &[LocItem]) -> Result<Self, FieldError> {
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

    fn schema() -> RefOr<Schema> {
        reference::<Email>()
    }

    fn components(out: &mut Components) {
        named::<Email>(out);
    }
}

/// Booleans as Pydantic v2's lax mode reads them: JSON booleans, 0 and 1, and the strings it
/// accepts (`"true"`, `"false"`, `"yes"`, `"off"`, ...).
impl FieldValue for bool {
    fn parse(value: &Value, loc: &[LocItem]) -> Result<Self, FieldError> {
        let unreadable = || {
            FieldError::new(
                loc.to_vec(),
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            )
        };
        match value {
            Value::Bool(b) => Ok(*b),
            Value::Number(n) => match n.as_f64() {
                Some(0.0) => Ok(false),
                Some(1.0) => Ok(true),
                _ => Err(unreadable()),
            },
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "1" | "on" | "t" | "true" | "y" | "yes" => Ok(true),
                "0" | "off" | "f" | "false" | "n" | "no" => Ok(false),
                _ => Err(unreadable()),
            },
            _ => Err(FieldError::new(loc.to_vec(), "bool_type", "Input should be a valid boolean")),
        }
    }

    /// A reference to `LaxBool`: a JSON boolean, 0 or 1, or one of Pydantic's boolean strings in
    /// any case.
    fn schema() -> RefOr<Schema> {
        RefOr::Ref(Ref::from_schema_name(LAX_BOOL))
    }

    fn components(out: &mut Components) {
        let strings = "^([01]|[oO][nN]|[oO][fF][fF]|[tT]([rR][uU][eE])?|[fF]([aA][lL][sS][eE])?|[yY]([eE][sS])?|[nN][oO]?)$";
        // An integer from 0 to 1 is exactly what is read: 0 and 1, and 0.0 and 1.0 too, which
        // JSON Schema counts as integers.
        let schema = AnyOfBuilder::new()
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .item(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).maximum(Some(1)))
            .item(ObjectBuilder::new().schema_type(Type::String).pattern(Some(strings)))
            .description(Some("A boolean; also 0 or 1, or \"true\", \"false\", \"yes\", \"no\", \"on\", \"off\", \"t\", \"f\", \"y\", \"n\", \"1\", \"0\" in any case, as Pydantic reads them"));
        out.push((LAX_BOOL.to_owned(), schema.into()));
    }
}

/// The name of the schema of a boolean as a body reads it.
const LAX_BOOL: &str = "LaxBool";

fn string_of(value: &Value, loc: &[LocItem]) -> Result<String, FieldError> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| FieldError::new(loc.to_vec(), "string_type", "Input should be a valid string"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiError;
    use crate::domain::{Password, Patch, Title};
    use crate::validate::{Components, parse_body};

    fn loc() -> Vec<LocItem> {
        vec!["body".into(), "flag".into()]
    }

    #[test]
    fn booleans_are_read_as_pydantic_lax_mode_reads_them() {
        for (input, expected) in
            [(json!(true), true), (json!(0), false), (json!("YES"), true), (json!("off"), false)]
        {
            assert_eq!(<bool as FieldValue>::parse(&input, &loc()), Ok(expected), "{input}");
        }
        for (input, kind) in [
            (json!(2), "bool_parsing"),
            (json!("maybe"), "bool_parsing"),
            (json!(null), "bool_type"),
            (json!([]), "bool_type"),
        ] {
            assert_eq!(
                <bool as FieldValue>::parse(&input, &loc()).map_err(|e| e.kind),
                Err(kind.to_owned()),
                "{input}"
            );
        }
    }

    #[test]
    fn bounded_texts_report_pydantic_length_errors() {
        let short = <Password as FieldValue>::parse(&json!("short"), &loc()).expect_err("too short");
        assert_eq!((short.kind.as_str(), short.ctx), ("string_too_short", Some(json!({"min_length": 8}))));
        let empty = <Title as FieldValue>::parse(&json!(""), &loc()).expect_err("empty");
        assert_eq!(empty.msg, "String should have at least 1 character");
        let not_text = <Title as FieldValue>::parse(&json!(1), &loc()).expect_err("a number");
        assert_eq!(not_text.kind, "string_type");
    }

    crate::request_schema! {
        /// A schema for the tests.
        pub struct Sample {
            pub title: Title,
            pub note: Option<Title>,
            pub flag: bool = true,
            pub rename: Patch<Title>,
            pub clear: Patch<Option<Title>>,
        }
    }

    #[test]
    fn one_declaration_reads_every_kind_of_field_and_reports_every_problem() {
        let read: Sample = parse_body(json!({"title": "t", "clear": null})).expect("valid");
        assert_eq!(read.title.as_str(), "t");
        assert!(read.note.is_none() && read.flag && read.rename.is_absent());
        assert_eq!(read.clear, Patch::Set(None));
        let Err(ApiError::Validation(errors)) =
            parse_body::<Sample>(json!({"note": "", "flag": "maybe", "rename": null, "other": 1}))
        else {
            panic!("expected a 422")
        };
        let kinds: Vec<(String, &str)> = errors
            .iter()
            .map(|e| (serde_json::to_string(&e.loc).unwrap_or_default(), e.kind.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                (r#"["body","title"]"#.to_owned(), "missing"),
                (r#"["body","note"]"#.to_owned(), "string_too_short"),
                (r#"["body","flag"]"#.to_owned(), "bool_parsing"),
                (r#"["body","rename"]"#.to_owned(), "string_type"),
                (r#"["body","other"]"#.to_owned(), "extra_forbidden"),
            ]
        );
    }

    #[test]
    fn the_declaration_is_also_the_schema() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Sample::schema()).expect("JSON");
        assert_eq!(schema["required"], json!(["title"]));
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["description"], "A schema for the tests.");
        assert_eq!(schema["properties"]["title"]["$ref"], "#/components/schemas/Title");
        assert_eq!(schema["properties"]["note"]["oneOf"][1]["type"], "null");
        assert_eq!(schema["properties"]["flag"]["default"], true);
        let mut components = Components::new();
        <Sample as ToSchema>::schemas(&mut components);
        assert!(components.iter().any(|(name, _)| name == "Title"));
    }
}
