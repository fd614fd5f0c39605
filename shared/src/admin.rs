//! Administration shared by the admin command and the local server: the first superuser (the
//! counterpart of FastAPI's `initial_data.py`), through the same repositories as the API.

use crate::domain::{Email, Password};
use crate::repo::{CreateUser, RepoError, UpdateUser, UserChanges, UserRecord};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Make an existing user an active superuser (its password is left alone).
    Promote,
    /// Leave an existing user exactly as it is.
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Promoted,
    /// Already an active superuser: nothing to do.
    AlreadySuperuser,
    /// The user exists and was left as it is ([`IfExists::Keep`]).
    Kept,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid email: {0}")]
    Email(String),
    #[error("invalid password: must be {min} to {max} characters", min = Password::MIN, max = Password::MAX)]
    Password,
    /// The user must be created, and no password was given.
    #[error("a password is needed to create the user")]
    PasswordNeeded,
    #[error("could not hash the password")]
    Hash,
    #[error(transparent)]
    Store(#[from] RepoError),
}

/// Creates the superuser, or deals with an existing user of that email as `if_exists` says.
/// The password is only needed (and only checked) when the user is created.
pub async fn ensure_superuser(
    state: &AppState,
    email: &str,
    password: Option<&str>,
    if_exists: IfExists,
) -> Result<Outcome, AdminError> {
    let email = Email::parse(email).map_err(AdminError::Email)?;
    let password = password.map(|p| Password::parse(p).map_err(|_| AdminError::Password)).transpose()?;
    // Two attempts: a user created between our lookup and our write is found the second time.
    for _ in 0..2 {
        if let Some(user) = state.repos.users.find_user_by_email(&email.key()).await? {
            if user.is_superuser && user.is_active {
                return Ok(Outcome::AlreadySuperuser);
            }
            if if_exists == IfExists::Keep {
                return Ok(Outcome::Kept);
            }
            let changes =
                UserChanges { is_superuser: Some(true), is_active: Some(true), ..UserChanges::default() };
            return match state.repos.users.update_user(user.id, &changes, state.clock.now()).await? {
                UpdateUser::Updated(_) => Ok(Outcome::Promoted),
                // Deleted since we looked: create it afresh.
                UpdateUser::NotFound | UpdateUser::EmailTaken => continue,
            };
        }
        let password = password.as_ref().ok_or(AdminError::PasswordNeeded)?;
        let hash = state.hasher.hash(password.as_str().into()).await.map_err(|_| AdminError::Hash)?;
        let now = state.clock.now();
        let user = UserRecord {
            id: state.ids.new_id(now),
            email: email.clone(),
            full_name: None,
            password_hash: hash,
            is_active: true,
            is_superuser: true,
            credential_version: 0,
            created_at: now,
            updated_at: now,
        };
        if state.repos.users.create_user(&user).await? == CreateUser::Created {
            return Ok(Outcome::Created);
        }
    }
    Err(AdminError::Store(RepoError::Unavailable("the user kept changing while we looked".into())))
}
