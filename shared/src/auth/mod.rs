//! Authentication's cryptography: argon2id password hashing, HS256 access JWTs and opaque
//! rotating refresh tokens. (The extractors that use them, `CurrentUser` and `SuperUser`, are in
//! `web::auth`.)

pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;

pub use jwt::JwtKeys;
pub use password::{Argon2Hasher, PasswordHasher};
