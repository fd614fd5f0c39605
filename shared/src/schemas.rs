//! The family of schemas per entity (as in the FastAPI template: `UserCreate`, `UserUpdate`,
//! `UserPublic`, ...). Requests are parsed field by field into validated newtypes; responses are
//! plain serialisable structs that can never carry a password or a hash.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::deps::rfc3339;
use crate::repo::{ItemRecord, UserRecord};
use crate::validate::{Description, Email, FromJsonBody, FullName, ObjectReader, Password, Patch, Title};

/// Public signup.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRegister {
    pub email: Email,
    pub password: Password,
    pub full_name: Option<FullName>,
}

impl FromJsonBody for UserRegister {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (email, password, full_name) =
            (r.required("email"), r.required("password"), r.nullable("full_name"));
        Some(Self { email: email?, password: password?, full_name: full_name? })
    }
}

/// Admin creation: `UserRegister` plus the flags.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserCreate {
    pub email: Email,
    pub password: Password,
    pub full_name: Option<FullName>,
    /// Default true.
    #[schema(schema_with = crate::validate::lax_bool_schema, required = false)]
    pub is_active: bool,
    /// Default false.
    #[schema(schema_with = crate::validate::lax_bool_schema, required = false)]
    pub is_superuser: bool,
}

impl FromJsonBody for UserCreate {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (email, password, full_name) =
            (r.required("email"), r.required("password"), r.nullable("full_name"));
        let (is_active, is_superuser) = (r.optional("is_active", true), r.optional("is_superuser", false));
        Some(Self {
            email: email?,
            password: password?,
            full_name: full_name?,
            is_active: is_active?,
            is_superuser: is_superuser?,
        })
    }
}

/// Self-service profile update: an absent field is left as it is; `full_name: null` clears it.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdateMe {
    #[schema(value_type = Email, required = false)]
    pub email: Patch<Email>,
    #[schema(value_type = Option<FullName>, required = false)]
    pub full_name: Patch<Option<FullName>>,
}

impl FromJsonBody for UserUpdateMe {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (email, full_name) = (r.patch("email"), r.nullable_patch("full_name"));
        Some(Self { email: email?, full_name: full_name? })
    }
}

/// Admin update of any user: an absent field is left as it is; `full_name: null` clears it.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[schema(value_type = Email, required = false)]
    pub email: Patch<Email>,
    #[schema(value_type = Option<FullName>, required = false)]
    pub full_name: Patch<Option<FullName>>,
    #[schema(value_type = Password, required = false)]
    pub password: Patch<Password>,
    #[schema(schema_with = crate::validate::lax_bool_schema, required = false)]
    pub is_active: Patch<bool>,
    #[schema(schema_with = crate::validate::lax_bool_schema, required = false)]
    pub is_superuser: Patch<bool>,
}

impl FromJsonBody for UserUpdate {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (email, full_name, password) =
            (r.patch("email"), r.nullable_patch("full_name"), r.patch("password"));
        let (is_active, is_superuser) = (r.patch("is_active"), r.patch("is_superuser"));
        Some(Self {
            email: email?,
            full_name: full_name?,
            password: password?,
            is_active: is_active?,
            is_superuser: is_superuser?,
        })
    }
}

/// A password change: the current password (any string up to 128 characters; a wrong one is a
/// 400, not a 422) and the new one (8–128).
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePassword {
    pub current_password: CurrentPassword,
    pub new_password: Password,
}

crate::validate::bounded_string!(
    /// The current password as typed: 1–128 characters, checked against the stored hash.
    CurrentPassword, 1, 128
);

impl std::fmt::Debug for CurrentPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentPassword(**redacted**)")
    }
}

impl FromJsonBody for UpdatePassword {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (current, new) = (r.required("current_password"), r.required("new_password"));
        Some(Self { current_password: current?, new_password: new? })
    }
}

#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemCreate {
    pub title: Title,
    pub description: Option<Description>,
}

impl FromJsonBody for ItemCreate {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (title, description) = (r.required("title"), r.nullable("description"));
        Some(Self { title: title?, description: description? })
    }
}

/// An item update; an absent field is left as it is, `description: null` clears it, and `{}`
/// is valid and changes nothing, the version included.
#[derive(Debug, Clone, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemUpdate {
    #[schema(value_type = Title, required = false)]
    pub title: Patch<Title>,
    #[schema(value_type = Option<Description>, required = false)]
    pub description: Patch<Option<Description>>,
}

impl FromJsonBody for ItemUpdate {
    fn from_body(r: &mut ObjectReader) -> Option<Self> {
        let (title, description) = (r.patch("title"), r.nullable_patch("description"));
        Some(Self { title: title?, description: description? })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    #[schema(format = Email)]
    pub email: String,
    /// Always present; `null` when unset.
    #[schema(required = true)]
    pub full_name: Option<String>,
    pub is_active: bool,
    pub is_superuser: bool,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl From<&UserRecord> for UserResponse {
    fn from(u: &UserRecord) -> Self {
        Self {
            id: u.id,
            email: u.email.as_str().to_owned(),
            full_name: u.full_name.clone(),
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResponse {
    pub id: Uuid,
    pub title: String,
    /// Always present; `null` when unset.
    #[schema(required = true)]
    pub description: Option<String>,
    pub owner_id: Uuid,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Bumped by one on every change; the item's `ETag` is this number in quotes.
    #[schema(minimum = 1)]
    pub version: u64,
}

impl From<&ItemRecord> for ItemResponse {
    fn from(i: &ItemRecord) -> Self {
        Self {
            id: i.id,
            title: i.title.clone(),
            description: i.description.clone(),
            owner_id: i.owner_id,
            created_at: i.created_at,
            updated_at: i.updated_at,
            version: i.version,
        }
    }
}

/// One page of a listing, and the cursor of the next one (`null` on the last page).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// `null` on the last page.
    #[schema(required = true)]
    pub next_cursor: Option<String>,
}

/// The token response (RFC 6749 §5.1).
#[derive(Clone, Serialize, ToSchema)]
pub struct Token {
    /// An HS256 JWT for `Authorization: Bearer`.
    pub access_token: String,
    #[schema(value_type = String, pattern = "^bearer$", example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque; exchanged once for a new pair with `grant_type=refresh_token`.
    pub refresh_token: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("expires_in", &self.expires_in).finish_non_exhaustive()
    }
}
