//! Every record a store holds is of a kind the key schema declares (`shared::repo::keys`): a
//! user, a record of a kind the user owns (one of `keys::OWNED`, which the delete cascade walks),
//! an owner pointer, an email reservation, a login counter, or a migration. The repository
//! contract runs this check after every test, on both stores, so a new kind of record that a
//! user owns fails it until it is in `OWNED`, and so cannot outlive its user unnoticed.

use shared::repo::dynamo::DynamoStore;
use shared::repo::keys::{Kind, OWNED, classify};
use shared::repo::memory::MemoryStore;

/// The key of every record a store holds: a Scan of DynamoDB, the memory store's map.
#[async_trait::async_trait]
pub trait Keys {
    async fn all_keys(&self) -> Vec<(String, String)>;
}

#[async_trait::async_trait]
impl Keys for MemoryStore {
    async fn all_keys(&self) -> Vec<(String, String)> {
        self.keys()
    }
}

#[async_trait::async_trait]
impl Keys for DynamoStore {
    async fn all_keys(&self) -> Vec<(String, String)> {
        self.scan_keys().await.expect("scan the table")
    }
}

/// Fails on any record whose kind the key schema does not declare.
pub async fn assert_every_record_declared(store: &(impl Keys + Sync)) {
    let keys = store.all_keys().await;
    let undeclared: Vec<&(String, String)> =
        keys.iter().filter(|(pk, sk)| classify(pk, sk).is_none()).collect();
    let owned: Vec<&str> = OWNED.iter().map(|k| k.prefix).collect();
    assert!(
        undeclared.is_empty(),
        "records of a kind that shared/src/repo/keys.rs does not declare: {undeclared:?}. A record in a \
         user's partition (USER#<id>) must be of a kind in keys::OWNED ({owned:?}), or deleting the user \
         leaves it behind."
    );
    // And no declared kind is in a place it should not be.
    for (pk, sk) in &keys {
        if let Some(Kind::Owned(kind)) = classify(pk, sk) {
            assert!(pk.starts_with("USER#"), "{} record {sk} outside a user's partition", kind.name);
        }
    }
}
