//! Opaque refresh tokens: the user's id and 256 random bits, shown to the client once. The user
//! id tells the store which partition holds the record, so deleting a user deletes its refresh
//! tokens with everything else it owns. The server records only the token's SHA-256 (a fast hash
//! is enough for a random secret of this size), so a leak of the table leaks no usable token.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Longest refresh token we look at: ours are 64 characters.
pub const MAX_REFRESH_TOKEN_LEN: usize = 128;

pub fn generate(user_id: Uuid) -> String {
    let mut bytes = [0u8; 48];
    bytes[..16].copy_from_slice(user_id.as_bytes());
    OsRng.fill_bytes(&mut bytes[16..]);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The user a token names, if it has our shape at all. (Naming a user proves nothing: only the
/// recorded hash of the whole token does.)
pub fn user_of(token: &str) -> Option<Uuid> {
    if token.len() > MAX_REFRESH_TOKEN_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    if bytes.len() != 48 {
        return None;
    }
    Uuid::from_slice(&bytes[..16]).ok()
}

pub fn hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    #[test]
    fn tokens_are_random_name_their_user_and_hash_stably() {
        let user = Uuid::now_v7();
        let (a, b) = (super::generate(user), super::generate(user));
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!((super::user_of(&a), super::user_of(&b)), (Some(user), Some(user)));
        assert_eq!(super::hash(&a), super::hash(&a));
        assert_ne!(super::hash(&a), super::hash(&b));
        assert_eq!(super::hash(&a).len(), 64);
        for bad in ["", "short", "!!!!", &"A".repeat(200), &a[..63]] {
            assert_eq!(super::user_of(bad), None, "{bad:?}");
        }
    }
}
