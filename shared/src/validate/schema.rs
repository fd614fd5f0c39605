//! The declaration of a request schema ([`request_schema!`](crate::request_schema)) and the
//! OpenAPI schema it gives.

use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::schema::{AdditionalProperties, AllOfBuilder, ObjectBuilder, Schema, Type};

use super::BodyField;

/// The OpenAPI schema of a request body declared with [`request_schema!`](crate::request_schema):
/// an object of exactly its fields (`additionalProperties: false`).
pub struct BodySchema(ObjectBuilder, std::collections::BTreeMap<String, Vec<String>>);

impl std::fmt::Debug for BodySchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BodySchema")
    }
}

impl BodySchema {
    /// `doc`: the declaration's doc comment, one item per line.
    pub fn new(doc: &[&str]) -> Self {
        let text =
            doc.iter().map(|line| line.strip_prefix(' ').unwrap_or(line)).collect::<Vec<_>>().join("\n");
        let object = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(text.trim().to_owned()).filter(|t| !t.is_empty()))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        Self(object, std::collections::BTreeMap::new())
    }

    /// Adds field `name` of type `T`, with the value it takes when absent, if it has one.
    pub fn field<T: BodyField>(mut self, name: &str, default: Option<Value>) -> Self {
        let required = T::REQUIRED && default.is_none();
        let schema = match (T::schema(), default) {
            (RefOr::T(Schema::Object(mut object)), Some(default)) => {
                object.default = Some(default);
                RefOr::T(Schema::Object(object))
            }
            // A reference with a default: wrapped, as Pydantic does, so generators see both.
            (schema @ RefOr::Ref(_), Some(default)) => {
                AllOfBuilder::new().item(schema).default(Some(default)).into()
            }
            (schema, _) => schema,
        };
        self.0 = self.0.property(name, schema);
        if required {
            self.0 = self.0.required(name);
        }
        self
    }

    /// JSON Schema's `dependentRequired`: when `field` is sent, `needs` must be too. (utoipa's
    /// builder has no such keyword; an extension map serialises its keys as they are.)
    pub fn requires_with(mut self, field: &str, needs: &str) -> Self {
        self.1.entry(field.to_owned()).or_default().push(needs.to_owned());
        self
    }

    pub fn build(self) -> RefOr<Schema> {
        let Self(mut object, dependent) = self;
        if !dependent.is_empty() {
            let keyword = serde_json::to_value(&dependent).unwrap_or_default();
            object = object.extensions(Some(Extensions::from_iter([("dependentRequired", keyword)])));
        }
        object.into()
    }
}

/// Declares a request schema once: the struct, its reader and its OpenAPI schema.
///
/// ```ignore
/// request_schema! {
///     /// Admin creation.
///     pub struct UserCreate {
///         pub email: Email,                  // required
///         pub full_name: Option<FullName>,   // nullable; absent is null
///         pub is_active: bool = true,        // optional, with its default
///     }
/// }
/// ```
#[macro_export]
macro_rules! request_schema {
    (
        $(#[doc = $doc:expr])*
        pub struct $name:ident {
            $(
                $(#[doc = $field_doc:expr])*
                pub $field:ident : $ty:ty $(= $default:expr)?
            ),* $(,)?
        }
        $(requires { $($with:ident => $needs:ident),* $(,)? })?
    ) => {
        $(#[doc = $doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            $( $(#[doc = $field_doc])* pub $field: $ty, )*
        }

        impl $crate::validate::FromJsonBody for $name {
            fn from_body(reader: &mut $crate::validate::ObjectReader) -> Option<Self> {
                $( let $field = $crate::request_schema!(@read reader, $field, $ty $(, $default)?); )*
                $($( reader.requires_with(stringify!($with), stringify!($needs)); )*)?
                Some(Self { $( $field: $field?, )* })
            }
        }

        impl $crate::__macro::utoipa::PartialSchema for $name {
            fn schema() -> $crate::__macro::utoipa::openapi::RefOr<$crate::__macro::utoipa::openapi::schema::Schema> {
                $crate::validate::BodySchema::new(&[$($doc),*])
                    $( .field::<$ty>(stringify!($field), $crate::request_schema!(@default $($default)?)) )*
                    $($( .requires_with(stringify!($with), stringify!($needs)) )*)?
                    .build()
            }
        }

        impl $crate::__macro::utoipa::ToSchema for $name {
            fn schemas(out: &mut $crate::validate::Components) {
                $( <$ty as $crate::validate::BodyField>::components(out); )*
            }
        }
    };
    (@read $reader:ident, $field:ident, $ty:ty) => {
        <$ty as $crate::validate::BodyField>::read($reader, stringify!($field))
    };
    (@read $reader:ident, $field:ident, $ty:ty, $default:expr) => {
        $reader.optional::<$ty>(stringify!($field), $default)
    };
    (@default) => { None };
    (@default $default:expr) => { Some($crate::__macro::serde_json::json!($default)) };
}
