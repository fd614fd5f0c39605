//! Deleting what a user owns: every kind of `keys::OWNED`, found by its sort-key prefix in the
//! user's partition. Nothing here names a kind: a kind added to the list is deleted with its user.

use uuid::Uuid;

use super::DynamoStore;
use super::attrs::{get_s, key};
use crate::repo::RepoResult;
use crate::repo::keys::{OWNED, POINTER_SK, SK};

impl DynamoStore {
    /// Deletes everything a user owns but the user record: the owner pointers first, then the
    /// records. A failure in between leaves records that the next attempt finds (by their
    /// partition) and completes; never a pointer to nothing.
    pub(super) async fn delete_owned(&self, user: Uuid) -> RepoResult<()> {
        let mut records = Vec::new();
        let mut pointers = Vec::new();
        for kind in OWNED {
            let keys = self.partition_keys(user, kind.prefix).await?;
            if kind.pointer {
                for record in &keys {
                    pointers.push(key(get_s(record, SK)?.to_owned(), POINTER_SK));
                }
            }
            records.extend(keys);
        }
        self.delete_keys(pointers).await?;
        self.delete_keys(records).await
    }
}
