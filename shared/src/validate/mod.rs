//! Request bodies, FastAPI/Pydantic v2-style: read field by field into domain types, collecting
//! *every* problem into 422 entries rather than stopping at the first, telling an absent field
//! from a `null` one, and rejecting unknown fields (`extra_forbidden`). Serde's derive stops at
//! the first error and cannot tell absent from null, which the contract needs ("null clears
//! it, absent leaves it").
//!
//! A request schema is declared once, with [`request_schema!`](crate::request_schema): each
//! field's type says how it is read ([`BodyField`]: `T` required, `Option<T>` nullable,
//! `Patch<T>` may be absent, `Patch<Option<T>>` absent or null, `T = default` optional), and the
//! same declaration gives the reader and the OpenAPI schema.

mod fields;
mod reader;
mod schema;

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};

pub use reader::{ObjectReader, parse_body};
pub use schema::BodySchema;

use crate::domain::Patch;
use crate::error::{FieldError, LocItem};

/// The named schemas a schema refers to, as utoipa collects them.
pub type Components = Vec<(String, RefOr<Schema>)>;

/// Something that can be parsed from one JSON value, reporting Pydantic-shaped errors at `loc`.
pub trait FieldValue: Sized {
    fn parse(value: &Value, loc: &[LocItem]) -> Result<Self, FieldError>;
    /// Its schema where a body holds it: a reference to its named schema, or inline.
    fn schema() -> RefOr<Schema>;
    /// The named schemas [`FieldValue::schema`] refers to.
    fn components(_out: &mut Components) {}
}

/// How a field of this type is read from a body, and what the document says of it.
pub trait BodyField: Sized {
    /// Whether the body must hold the field.
    const REQUIRED: bool;
    fn read(reader: &mut ObjectReader, name: &str) -> Option<Self>;
    fn schema() -> RefOr<Schema>;
    fn components(out: &mut Components);
}

/// Types that are read from a JSON request body.
pub trait FromJsonBody: Sized {
    fn from_body(reader: &mut ObjectReader) -> Option<Self>;
}

/// A required field that may not be null.
impl<T: FieldValue> BodyField for T {
    const REQUIRED: bool = true;

    fn read(reader: &mut ObjectReader, name: &str) -> Option<Self> {
        reader.required(name)
    }

    fn schema() -> RefOr<Schema> {
        T::schema()
    }

    fn components(out: &mut Components) {
        T::components(out);
    }
}

fn nullable(schema: RefOr<Schema>) -> RefOr<Schema> {
    OneOfBuilder::new().item(schema).item(ObjectBuilder::new().schema_type(Type::Null)).into()
}

/// A nullable field: absent or null give `None`.
impl<T: FieldValue> BodyField for Option<T> {
    const REQUIRED: bool = false;

    fn read(reader: &mut ObjectReader, name: &str) -> Option<Self> {
        reader.nullable(name)
    }

    fn schema() -> RefOr<Schema> {
        nullable(T::schema())
    }

    fn components(out: &mut Components) {
        T::components(out);
    }
}

/// A PATCH field that may not be null: absent leaves it.
impl<T: FieldValue> BodyField for Patch<T> {
    const REQUIRED: bool = false;

    fn read(reader: &mut ObjectReader, name: &str) -> Option<Self> {
        reader.patch(name)
    }

    fn schema() -> RefOr<Schema> {
        T::schema()
    }

    fn components(out: &mut Components) {
        T::components(out);
    }
}

/// A nullable PATCH field: absent leaves it, null clears it.
impl<T: FieldValue> BodyField for Patch<Option<T>> {
    const REQUIRED: bool = false;

    fn read(reader: &mut ObjectReader, name: &str) -> Option<Self> {
        reader.nullable_patch(name)
    }

    fn schema() -> RefOr<Schema> {
        nullable(T::schema())
    }

    fn components(out: &mut Components) {
        T::components(out);
    }
}
