//! Opaque cursors bound to their listing, with no key. A cursor is the position (a record id)
//! and a check over the listing's name and that position: a cursor from another listing (another
//! owner's items, the users listing), a truncated or an altered one fails the check and is a 422,
//! never a 500. It is not a secret's MAC, on purpose: a function that holds no secret can read
//! and write it (docs/signing-keys.md), and a cursor a caller forges for its own listing moves
//! nothing but its own position in it, since every listing's query is fixed to the caller's own
//! records whatever the cursor says. (`web::paging` reads and writes them for a listing's page.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct CursorCodec;

impl CursorCodec {
    fn tag(listing: &str, position: Uuid) -> [u8; TAG_LEN] {
        let digest = Sha256::new()
            .chain_update(b"cursor-v2\0")
            .chain_update(listing.as_bytes())
            .chain_update(b"\0")
            .chain_update(position.as_bytes())
            .finalize();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&digest[..TAG_LEN]);
        tag
    }

    pub fn encode(&self, listing: &str, position: Uuid) -> String {
        let mut bytes = position.as_bytes().to_vec();
        bytes.extend_from_slice(&Self::tag(listing, position));
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
        if bytes[16..] != Self::tag(listing, position) {
            return Err(invalid());
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_decodes_only_in_its_own_listing() {
        let codec = CursorCodec;
        let id = Uuid::now_v7();
        let cursor = codec.encode("items:a", id);
        assert_eq!(codec.decode("items:a", &cursor).expect("valid"), id);
        assert!(codec.decode("items:b", &cursor).is_err());
        assert!(codec.decode("users", &cursor).is_err());
        let mut moved = URL_SAFE_NO_PAD.decode(&cursor).expect("base64");
        moved[15] ^= 1;
        assert!(codec.decode("items:a", &URL_SAFE_NO_PAD.encode(moved)).is_err(), "another position");
        for forged in ["", "x", "!!!!", &cursor[..cursor.len() - 1], &format!("{cursor}A")] {
            assert!(codec.decode("items:a", forged).is_err(), "{forged:?}");
        }
    }
}
