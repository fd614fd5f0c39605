//! Deleting what a user owns: every kind of `keys::OWNED`, found by its sort-key prefix in the
//! user's range of the map, as the DynamoDB store finds it in the user's partition.

use uuid::Uuid;

use super::State;
use crate::repo::keys::{OWNED, POINTER_SK, user_pk};

impl State {
    /// Deletes everything `user` owns but the user record, pointers included.
    pub(super) fn delete_owned(&mut self, user: Uuid) {
        for kind in OWNED {
            for (pk, sk) in self.keys_under(&user_pk(user), kind.prefix) {
                if kind.pointer {
                    self.records.remove(&(sk.clone(), POINTER_SK.to_owned()));
                }
                self.records.remove(&(pk, sk));
            }
        }
    }
}
