//! Opaque cursors bound to their listing. A cursor is the position (a record id) plus an HMAC
//! over the listing's name and that position, keyed from the JWT secret: a cursor from another
//! listing, another owner's listing, or a forged one fails the check and is a 422, never a 500.
//! (`web::paging` reads and writes them for a listing's page.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;

#[derive(Clone)]
pub struct CursorCodec {
    key: [u8; 32],
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(**redacted**)")
    }
}

impl CursorCodec {
    /// Derives the cursor key from the JWT secret, so a cursor tag can never be used as a token
    /// signature or the reverse.
    pub fn new(secret: &[u8]) -> Self {
        let mut mac = Self::mac(secret);
        mac.update(b"cursor-key-v1");
        Self { key: mac.finalize().into_bytes().into() }
    }

    fn mac(key: &[u8]) -> HmacSha256 {
        #[allow(clippy::expect_used)] // HMAC accepts keys of any length
        HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
    }

    fn tagged(&self, listing: &str, position: Uuid) -> HmacSha256 {
        let mut mac = Self::mac(&self.key);
        mac.update(listing.as_bytes());
        mac.update(b"\0");
        mac.update(position.as_bytes());
        mac
    }

    pub fn encode(&self, listing: &str, position: Uuid) -> String {
        let tag = self.tagged(listing, position).finalize().into_bytes();
        let mut bytes = position.as_bytes().to_vec();
        bytes.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    pub fn decode(&self, listing: &str, cursor: &str) -> Result<Uuid, ApiError> {
        let invalid = || {
            ApiError::validation(FieldError::at(
                "query",
                "cursor",
                "value_error",
                "Value error, invalid cursor: it was not issued by this listing",
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
        if bytes.len() != 16 + TAG_LEN {
            return Err(invalid());
        }
        let position = Uuid::from_slice(&bytes[..16]).map_err(|_| invalid())?;
        self.tagged(listing, position).verify_truncated_left(&bytes[16..]).map_err(|_| invalid())?;
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_only_in_its_own_listing() {
        let codec = CursorCodec::new(b"0123456789abcdef0123456789abcdef");
        let id = Uuid::now_v7();
        let cursor = codec.encode("items:a", id);
        assert_eq!(codec.decode("items:a", &cursor).expect("valid"), id);
        assert!(codec.decode("items:b", &cursor).is_err());
        assert!(codec.decode("users", &cursor).is_err());
        let other = CursorCodec::new(b"another-secret-another-secret-32");
        assert!(other.decode("items:a", &cursor).is_err());
        for forged in ["", "x", "!!!!", &cursor[..cursor.len() - 1], &format!("{cursor}A")] {
            assert!(codec.decode("items:a", forged).is_err(), "{forged:?}");
        }
    }
}
