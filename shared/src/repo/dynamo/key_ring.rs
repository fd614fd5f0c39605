//! The key ring in DynamoDB: one item, `KEYS`/`KEYS`, holding the ring as JSON and a version
//! that every write is conditional on.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;

use super::DynamoStore;
use super::attrs::{Attrs, get_s, n, s};
use super::retry::{Resend, applied, resend};
use crate::repo::key_ring::KeyRing;
use crate::repo::keys::{KEY_RING_KEY, KEY_RING_TYPE, PK, SK};
use crate::repo::{KeyRingRepo, RepoError, RepoResult};

/// The ring in a read item (the warm-up's, or [`KeyRingRepo::key_ring`]'s).
pub(super) fn ring_from_item(item: &Attrs) -> RepoResult<KeyRing> {
    let mut ring: KeyRing = serde_json::from_str(get_s(item, "ring")?)
        .map_err(|e| RepoError::Corrupt(format!("key ring: {e}")))?;
    ring.version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| RepoError::Corrupt("key ring: no version".to_owned()))?;
    Ok(ring)
}

#[async_trait]
impl KeyRingRepo for DynamoStore {
    async fn key_ring(&self) -> RepoResult<Option<KeyRing>> {
        self.get(KEY_RING_KEY.to_owned(), KEY_RING_KEY).await?.map(|item| ring_from_item(&item)).transpose()
    }

    async fn save_key_ring(&self, ring: &KeyRing) -> RepoResult<bool> {
        let json = serde_json::to_string(ring).map_err(|e| RepoError::Internal(format!("key ring: {e}")))?;
        let item: Attrs = HashMap::from([
            (PK.to_owned(), s(KEY_RING_KEY)),
            (SK.to_owned(), s(KEY_RING_KEY)),
            ("type".to_owned(), s(KEY_RING_TYPE)),
            ("ring".to_owned(), s(json)),
            ("version".to_owned(), n(ring.version + 1)),
        ]);
        let mut put = self.client.put_item().table_name(&self.table);
        put = if ring.version == 0 {
            put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
        } else {
            put.condition_expression("#version = :read")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":read", n(ring.version))
        };
        let sent = put
            .set_item(Some(item))
            .customize()
            .config_override(resend::<PutItemError>(Resend::OnlyRefused))
            .send()
            .await;
        applied("PutItem", sent)
    }
}
