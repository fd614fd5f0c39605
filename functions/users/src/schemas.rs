//! The users' schemas, as in the FastAPI template's family per entity: the request bodies
//! (`UserRegister`, `UserCreate`, `UserUpdateMe`, `UserUpdate`, `UpdatePassword`), each declared
//! once, and `UserResponse`, which can never carry a password or a hash.

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::deps::rfc3339;
use shared::domain::{CurrentPassword, Email, FullName, Password, Patch};
use shared::repo::UserRecord;
use shared::web::Page;
use utoipa::ToSchema;
use uuid::Uuid;

shared::request_schema! {
    /// Public signup.
    pub struct UserRegister {
        pub email: Email,
        pub password: Password,
        pub full_name: Option<FullName>,
    }
}

shared::request_schema! {
    /// Admin creation: `UserRegister` plus the flags.
    pub struct UserCreate {
        pub email: Email,
        pub password: Password,
        pub full_name: Option<FullName>,
        pub is_active: bool = true,
        pub is_superuser: bool = false,
    }
}

shared::request_schema! {
    /// Self-service profile update: an absent field is left as it is; `full_name: null` clears it.
    /// Changing `email` needs `current_password` too (422 when it is missing, 400 when wrong), so
    /// that an access token alone cannot move the account to another address.
    pub struct UserUpdateMe {
        pub email: Patch<Email>,
        pub full_name: Patch<Option<FullName>>,
        pub current_password: Patch<CurrentPassword>,
    }
    requires { email => current_password }
}

shared::request_schema! {
    /// Admin update of any user: an absent field is left as it is; `full_name: null` clears it.
    pub struct UserUpdate {
        pub email: Patch<Email>,
        pub full_name: Patch<Option<FullName>>,
        pub password: Patch<Password>,
        pub is_active: Patch<bool>,
        pub is_superuser: Patch<bool>,
    }
}

shared::request_schema! {
    /// A password change: the current password (any string up to 128 characters; a wrong one is a
    /// 400, not a 422) and the new one (8–128).
    pub struct UpdatePassword {
        pub current_password: CurrentPassword,
        pub new_password: Password,
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
    /// Whether the address has been proved (a verification link, or a password reset).
    pub email_verified: bool,
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
            email_verified: u.email_verified,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// A page of users (the document's `Page_UserResponse`).
pub type UserPage = Page<UserResponse>;
