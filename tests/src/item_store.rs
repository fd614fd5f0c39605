//! Items through the stores' one resource store, called by the names the item repository used
//! to have (`create_item`, `update_item`, ...): what the repository contract and the fault tests
//! call, on both stores.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use items::{Item, ItemChanges, ItemRecord};
use shared::repo::{Conditional, Listing, RepoResult, ResourceRepo, ResourceStore};
use uuid::Uuid;

#[async_trait]
pub trait ItemStore {
    async fn create_item(&self, item: &ItemRecord) -> RepoResult<bool>;
    async fn get_item(&self, owner: Uuid, id: Uuid) -> RepoResult<Option<ItemRecord>>;
    async fn find_item_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>>;
    async fn update_item(
        &self,
        owner: Uuid,
        id: Uuid,
        changes: &ItemChanges,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<ItemRecord>>;
    async fn delete_item(
        &self,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>>;
    async fn list_items(
        &self,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<ItemRecord>>;
}

fn items<S: ResourceStore>(store: &S) -> ResourceRepo<'_, Item> {
    ResourceRepo::new(store)
}

#[async_trait]
impl<S: ResourceStore> ItemStore for S {
    async fn create_item(&self, item: &ItemRecord) -> RepoResult<bool> {
        items(self).create(item, None).await
    }

    async fn get_item(&self, owner: Uuid, id: Uuid) -> RepoResult<Option<ItemRecord>> {
        items(self).get(owner, id).await
    }

    async fn find_item_owner(&self, id: Uuid) -> RepoResult<Option<Uuid>> {
        items(self).find_owner(id).await
    }

    async fn update_item(
        &self,
        owner: Uuid,
        id: Uuid,
        changes: &ItemChanges,
        expected_version: Option<u64>,
        now: DateTime<Utc>,
    ) -> RepoResult<Conditional<ItemRecord>> {
        items(self).update(owner, id, changes, expected_version, now).await
    }

    async fn delete_item(
        &self,
        owner: Uuid,
        id: Uuid,
        expected_version: Option<u64>,
    ) -> RepoResult<Conditional<()>> {
        items(self).delete(owner, id, expected_version).await
    }

    async fn list_items(
        &self,
        owner: Uuid,
        limit: usize,
        before: Option<Uuid>,
    ) -> RepoResult<Listing<ItemRecord>> {
        items(self).list(owner, limit, before).await
    }
}
