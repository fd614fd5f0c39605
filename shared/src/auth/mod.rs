//! Authentication: argon2id password hashing, HS256 access JWTs, opaque rotating refresh tokens,
//! and the `CurrentUser` / `SuperUser` extractors.

pub mod extract;
pub mod jwt;
pub mod password;
pub mod refresh;

pub use extract::{CurrentUser, SuperUser, TokenSubject, current_user};
pub use jwt::JwtKeys;
pub use password::{Argon2Hasher, PasswordHasher};
