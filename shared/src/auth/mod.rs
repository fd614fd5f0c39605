//! Authentication's cryptography: argon2id password hashing, RS256 access JWTs signed by a key
//! only `auth` can use (`keys`, `ring`, `signer`) and opaque rotating refresh tokens. (The
//! extractors that use them, `CurrentUser` and `SuperUser`, are in `web::auth`.)

pub mod issuing;
pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;
pub mod ring;
pub mod rotation;
pub mod signer;
pub mod verified;

pub use jwt::JwtKeys;
pub use password::{Argon2Hasher, PasswordHasher};
