//! The typed view's checks, on the memory store.

use chrono::Utc;
use serde_json::json;

use super::*;
use crate::repo::keys::{self, FAMILY, ITEM};
use crate::repo::memory::MemoryStore;

/// A resource whose fields are whatever the test gives it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Loose(Fields);

impl Resource for Loose {
    const KIND: OwnedKind = ITEM;
    const LISTING: &'static str = "loose";
    type Changes = Fields;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tokenish;

impl Resource for Tokenish {
    const KIND: OwnedKind = FAMILY;
    const LISTING: &'static str = "tokenish";
    type Changes = Fields;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Undeclared;

impl Resource for Undeclared {
    const KIND: OwnedKind =
        OwnedKind { name: "undeclared", prefix: "UNDECLARED#", id: "<id>", pointer: true, resource: true };
    const LISTING: &'static str = "undeclared";
    type Changes = Fields;
}

fn record<R>(fields: R) -> Record<R> {
    let now = Utc::now();
    Record {
        id: Uuid::now_v7(),
        owner_id: Uuid::now_v7(),
        fields,
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn fields(value: serde_json::Value) -> Fields {
    value.as_object().cloned().unwrap_or_default()
}

/// A store with one user, who owns nothing yet.
async fn store_with_owner() -> (MemoryStore, Uuid) {
    use crate::domain::Email;
    use crate::repo::{UserRecord, UserRepo};
    let store = MemoryStore::new();
    let now = Utc::now();
    let user = UserRecord {
        id: Uuid::now_v7(),
        email: Email::parse("owner@example.com").expect("email"),
        full_name: None,
        password_hash: "hash".into(),
        is_active: true,
        is_superuser: false,
        credential_version: 0,
        email_verified: true,
        created_at: now,
        updated_at: now,
    };
    store.create_user(&user).await.expect("the owner");
    (store, user.id)
}

fn owned_by<R>(owner: Uuid, fields: R) -> Record<R> {
    Record { owner_id: owner, ..record(fields) }
}

#[tokio::test]
async fn a_field_named_as_the_store_names_its_own_attributes_is_refused_before_any_write() {
    let (store, owner) = store_with_owner().await;
    let before = store.keys();
    let repo = ResourceRepo::<Loose>::new(&store);
    let fine = owned_by(owner, Loose(fields(json!({ "title": "x" }))));
    assert_eq!(repo.create(&fine, None).await, Ok(true), "an ordinary field is stored");
    let stored = store.keys();
    for name in [
        "type",
        "ttl",
        "PK",
        "SK",
        "GSI1PK",
        "GSI1SK",
        "GSI2PK",
        "GSI2SK",
        "id",
        "owner_id",
        "version",
        "created_at",
    ] {
        let result = repo.create(&owned_by(owner, Loose(fields(json!({ name: "x" })))), None).await;
        let refused = matches!(&result, Err(RepoError::Internal(e)) if e.contains("keeps for itself"));
        assert!(refused, "{name}: {result:?}");
        let changes = fields(json!({ name: "x" }));
        let result = repo.update(owner, fine.id, &changes, None, Utc::now()).await;
        let refused = matches!(&result, Err(RepoError::Internal(e)) if e.contains("keeps for itself"));
        assert!(refused, "{name}: {result:?}");
    }
    assert_eq!(store.keys(), stored, "nothing more was written");
    assert_eq!(stored.len(), before.len() + 2, "the record and its pointer");
    assert_eq!(repo.get(owner, fine.id).await.map(|r| r.map(|r| r.version)), Ok(Some(1)), "unchanged");
}

#[tokio::test]
async fn only_a_resource_kind_of_keys_owned_is_kept() {
    let (store, owner) = store_with_owner().await;
    // Reads serialise nothing: only the kind can refuse them.
    let tokenish = ResourceRepo::<Tokenish>::new(&store);
    let refused = tokenish.list(owner, 10, None).await;
    assert!(matches!(&refused, Err(RepoError::Internal(e)) if e.contains("not a resource's")), "{refused:?}");
    let refused = tokenish.get(owner, Uuid::now_v7()).await;
    assert!(matches!(&refused, Err(RepoError::Internal(e)) if e.contains("not a resource's")), "{refused:?}");
    let undeclared = ResourceRepo::<Undeclared>::new(&store).list(owner, 10, None).await;
    let refused =
        matches!(&undeclared, Err(RepoError::Internal(e)) if e.contains("not in repo::keys::OWNED"));
    assert!(refused, "{undeclared:?}");
    assert!(keys::OWNED.iter().any(|k| k.resource), "items are a resource");
}
