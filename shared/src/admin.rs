//! Administration shared by the admin command and the local server: the first superuser (the
//! counterpart of FastAPI's `initial_data.py`), through the same repositories as the API.

use crate::domain::{Email, Password};
use crate::repo::{CreateUser, RepoError, UpdateUser, UserChanges, UserRecord};
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfExists {
    /// Refuse an existing account that is not already a superuser: whoever signed up
    /// with the address (or moved their account to it) before the operator ran the command
    /// must not become superuser by it.
    Refuse,
    /// Make the existing account an active superuser with a new password, and end every one of
    /// its sessions: whatever its holder knew or held before is worth nothing after.
    PromoteExisting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// An existing account, promoted ([`IfExists::PromoteExisting`]), with the new password.
    Promoted,
    /// Already a superuser: nothing to do (a rerun, or a restart on a kept table).
    AlreadySuperuser,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("invalid email: {0}")]
    Email(String),
    #[error("invalid password: must be {min} to {max} characters", min = Password::MIN, max = Password::MAX)]
    Password,
    /// The user must be created or promoted, and no password was given.
    #[error("a password is needed to create or promote the user")]
    PasswordNeeded,
    /// An account that is not a superuser holds the address, and promoting it was not asked for.
    #[error(
        "an account with this email already exists and is not a superuser: it was left as it is. \
         To make it one, run `admin create-superuser --email <it> --promote-existing`, which sets a \
         new password and ends every session of that account"
    )]
    Exists,
    #[error("could not hash the password")]
    Hash,
    #[error(transparent)]
    Store(#[from] RepoError),
}

/// Creates the superuser, or deals with an existing account of that email as `if_exists` says.
/// An account that is already a superuser is left exactly as it is, whatever the password
/// given. The password is checked (and needed) only when it is going to be set.
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
            // A superuser, active or not, is left exactly as it is: a rerun, or a restart on a
            // kept table, must not fail (nor quietly reactivate an account someone deactivated).
            if user.is_superuser {
                return Ok(Outcome::AlreadySuperuser);
            }
            if if_exists == IfExists::Refuse {
                return Err(AdminError::Exists);
            }
            let password = password.as_ref().ok_or(AdminError::PasswordNeeded)?;
            let hash = state.hasher.hash(password.as_str().into()).await.map_err(|_| AdminError::Hash)?;
            // The new hash is a new credential version: every access token of the account
            // stops working, and no family can start or rotate under the old one.
            // Only while the account still holds the address: one that moved to another address
            // meanwhile is not the one the operator named (the address is then free to create).
            let changes = UserChanges {
                password_hash: Some(hash),
                is_superuser: Some(true),
                is_active: Some(true),
                if_email_key: Some(email.key()),
                ..UserChanges::default()
            };
            return match state.repos.users.update_user(user.id, &changes, state.clock.now()).await? {
                UpdateUser::Updated(_) => {
                    state.repos.tokens.revoke_user_tokens(user.id).await?;
                    Ok(Outcome::Promoted)
                }
                // Deleted, or moved to another address, since we looked: look again.
                UpdateUser::NotFound | UpdateUser::EmailTaken | UpdateUser::Changed => continue,
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
            email_verified: true,
            created_at: now,
            updated_at: now,
        };
        if state.repos.users.create_user(&user).await? == CreateUser::Created {
            return Ok(Outcome::Created);
        }
    }
    Err(AdminError::Store(RepoError::Unavailable("the user kept changing while we looked".into())))
}
