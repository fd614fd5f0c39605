//! The key schema of the one table: where every kind of record lives, in one place. It mirrors
//! the table design (`docs/table-design.md`; `tests/tests/api/table_design.rs` checks that
//! the two agree), and both stores use it: the DynamoDB store as its keys, the memory store as the
//! keys of its own map, so the two lay their records out alike.
//!
//! [`OWNED`] is the one list of what a user owns. Both stores' delete cascades run over it, the
//! resource store refuses a kind missing from it, and the repository contract tests fail on any
//! record in a user's partition whose kind it does not name.

use uuid::Uuid;

/// Attribute names of the table's keys, its index and its TTL.
pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The users listing's index of before (projection ALL, one partition for every user): still
/// written and read until the migration `0003_users_index` has filled [`GSI2`]; a later release
/// drops it (`docs/table-design.md`, "Rolling out the users index").
pub const GSI1: &str = "GSI1";
pub const GSI1_PK: &str = "GSI1PK";
pub const GSI1_SK: &str = "GSI1SK";
/// The users listing's index: keys only (no attribute of a user is copied into it), its
/// partition key sharded over [`USERS_SHARDS`] partitions.
pub const GSI2: &str = "GSI2";
pub const GSI2_PK: &str = "GSI2PK";
pub const GSI2_SK: &str = "GSI2SK";
pub const TTL: &str = "ttl";

/// An index's projection: every attribute, or the keys alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    All,
    KeysOnly,
}

impl Projection {
    /// As CloudFormation and DynamoDB name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::All => "ALL",
            Self::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A key schema: (attribute, HASH|RANGE) pairs.
pub type KeySchema = [(&'static str, &'static str); 2];

/// The key schema as (attribute, HASH|RANGE) pairs: the table's, then each index's by name, with
/// its projection.
pub const TABLE_KEYS: KeySchema = [(PK, "HASH"), (SK, "RANGE")];
pub const INDEXES: [(&str, KeySchema, Projection); 2] = [
    (GSI1, [(GSI1_PK, "HASH"), (GSI1_SK, "RANGE")], Projection::All),
    (GSI2, [(GSI2_PK, "HASH"), (GSI2_SK, "RANGE")], Projection::KeysOnly),
];

/// The `type` attribute of each kind of record that is not a user's own (those are
/// [`OwnedKind::name`]).
pub const USER_TYPE: &str = "user";
pub const EMAIL_TYPE: &str = "email";
pub const ATTEMPTS_TYPE: &str = "login_attempts";
pub const MIGRATION_TYPE: &str = "migration";
pub const LEASE_TYPE: &str = "migration_lease";
pub const PURGE_TYPE: &str = "purge";
pub const OUTBOX_TYPE: &str = "outbox";
pub const CALLER_IDEMPOTENCY_TYPE: &str = "caller_idempotency";

/// A user's partition: the user record and everything it owns.
pub fn user_pk(id: Uuid) -> String {
    format!("USER#{id}")
}
pub const USER_SK: &str = "USER";
/// Every user is also in `GSI1` under this partition, sorted by id (= creation time).
pub const USERS_INDEX_PK: &str = "USERS";

/// The partitions of the users listing in [`GSI2`]: user writes spread over this many index
/// partitions instead of one, and a page of the listing merges them by id.
pub const USERS_SHARDS: u8 = 8;

/// A user's partition in [`GSI2`]: `USERS#<0..USERS_SHARDS>`, from the random bits of its id.
pub fn users_shard_pk(id: Uuid) -> String {
    users_shard(u8::try_from(id.as_u128() % u128::from(USERS_SHARDS)).unwrap_or(0))
}

/// The `GSI2` partition of shard `n`.
pub fn users_shard(n: u8) -> String {
    format!("USERS#{n}")
}

/// The migration that fills [`GSI2`]: until it is applied the listing reads [`GSI1`].
pub const USERS_INDEX_MIGRATION: &str = "0003_users_index";

/// An email reservation: the uniqueness of an address (`email_key`) across users.
pub fn email_pk(email_key: &str) -> String {
    format!("EMAIL#{email_key}")
}
pub const EMAIL_SK: &str = "EMAIL";

/// Failed-login counter of one typed email.
pub fn attempts_pk(email_key: &str) -> String {
    format!("LOGIN#{email_key}")
}
pub const ATTEMPTS_SK: &str = "ATTEMPTS";

/// Data migrations live in one partition: `MIGRATION#<id>` records and the `LEASE`.
pub const MIGRATIONS_PK: &str = "MIGRATIONS";
pub const MIGRATION_PREFIX: &str = "MIGRATION#";
pub const LEASE_SK: &str = "LEASE";

/// The purges still to do live in [`PURGE_SHARDS`] partitions, `PURGES#<n>`: `USER#<id>` for
/// each deleted user whose records are not all gone yet. The stream worker is triggered by
/// writes there (and only there), and the sweep lists them. Shards, because the stream hands
/// one partition key's records over one at a time: purges in different ones run side by side.
pub const PURGES_PREFIX: &str = "PURGES#";
pub const PURGE_SHARDS: u8 = 10;

/// The partition of `user`'s pending purge.
pub fn purges_pk(user: Uuid) -> String {
    purges_shard(u8::try_from(user.as_u128() % u128::from(PURGE_SHARDS)).unwrap_or(0))
}

/// The partition of shard `n` of the pending purges.
pub fn purges_shard(n: u8) -> String {
    format!("{PURGES_PREFIX}{n}")
}

/// A pending purge's sort key in its partition: the deleted user's partition key.
pub fn purge_sk(user: Uuid) -> String {
    user_pk(user)
}

/// Messages still to send (the outbox) live in [`OUTBOX_SHARDS`] partitions, `OUTBOX#<n>`, each
/// under its own id: written in the transaction of the request that asks for the message, sent
/// by the stream worker (triggered by inserts there, and only there), removed once sent. Shards,
/// as for purges: the stream hands one partition key's records over one at a time.
pub const OUTBOX_PREFIX: &str = "OUTBOX#";
pub const OUTBOX_SHARDS: u8 = 10;

/// The partition of the outbox message `id`.
pub fn outbox_pk(id: Uuid) -> String {
    outbox_shard(u8::try_from(id.as_u128() % u128::from(OUTBOX_SHARDS)).unwrap_or(0))
}

/// The partition of shard `n` of the outbox.
pub fn outbox_shard(n: u8) -> String {
    format!("{OUTBOX_PREFIX}{n}")
}

/// An outbox message's sort key in its partition: its id.
pub fn outbox_sk(id: Uuid) -> String {
    format!("MAIL#{id}")
}

/// An anonymous caller's idempotency records (a signup's): `CALLER#<sha256(source address)>`,
/// each under [`idempotency_sk`]. An authenticated caller's are its own ([`IDEMPOTENCY`]).
pub const CALLER_PREFIX: &str = "CALLER#";

/// The partition of an anonymous caller's idempotency records.
pub fn caller_pk(address_hash: &str) -> String {
    format!("{CALLER_PREFIX}{address_hash}")
}

/// The sort key of an idempotency record: the SHA-256 of its method, path and key.
pub fn idempotency_sk(request_hash: &str) -> String {
    IDEMPOTENCY.sk(request_hash)
}

/// The key ring's one record (`auth::ring`), partition and sort key: what the warm-up reads.
pub const KEY_RING_KEY: &str = "KEYS";
pub const KEY_RING_TYPE: &str = "key_ring";

/// A kind of record that a user owns. It lives in its owner's partition, `USER#<owner>`, under
/// `<prefix><id>`, and is deleted with its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedKind {
    /// The record's `type` attribute.
    pub name: &'static str,
    /// The sort-key prefix of these records in their owner's partition.
    pub prefix: &'static str,
    /// What follows the prefix in the sort key (for the table design).
    pub id: &'static str,
    /// Whether a pointer `<prefix><id>` / `OWNER` names each one's owner, so that a superuser
    /// finds one by its id alone with a consistent read. The cascade deletes pointers first.
    pub pointer: bool,
    /// Whether the kind is a resource's (kept by the stores' `ResourceStore`, which refuses
    /// any other kind): records of a token kind must never be read as a resource's.
    pub resource: bool,
}

impl OwnedKind {
    /// The record's sort key in its owner's partition, and the partition key of its pointer.
    pub fn sk(&self, id: impl std::fmt::Display) -> String {
        format!("{}{id}", self.prefix)
    }

    /// The `type` attribute of this kind's pointers.
    pub fn pointer_type(&self) -> String {
        format!("{}_owner", self.name)
    }
}

/// The sort key of an owner pointer (its partition key is the record's sort key).
pub const POINTER_SK: &str = "OWNER";

/// A user's item (a resource: `shared::repo::resources`).
pub const ITEM: OwnedKind =
    OwnedKind { name: "item", prefix: "ITEM#", id: "<item_id>", pointer: true, resource: true };
/// A refresh-token family: one login and every token rotated from it.
pub const FAMILY: OwnedKind =
    OwnedKind { name: "token_family", prefix: "FAMILY#", id: "<family_id>", pointer: false, resource: false };
/// A refresh token, by the SHA-256 of the token.
pub const REFRESH: OwnedKind = OwnedKind {
    name: "refresh_token",
    prefix: "REFRESH#",
    id: "<sha256(token)>",
    pointer: false,
    resource: false,
};

/// A source address the user logged in from, for 30 days: exempt from the throttle of failures
/// for the user's email from all addresses together.
pub const LOGIN_ADDRESS: OwnedKind = OwnedKind {
    name: "login_address",
    prefix: "ADDR#",
    id: "<source address>",
    pointer: false,
    resource: false,
};

/// The user's live token of one purpose (reset or verify), by the purpose: only the SHA-256 of
/// the token, which a newer token of the purpose overwrites (superseding it) and its redemption
/// deletes (single use).
pub const MAIL_TOKEN: OwnedKind =
    OwnedKind { name: "mail_token", prefix: "MAILTOKEN#", id: "<purpose>", pointer: false, resource: false };

/// An idempotency record of the user's: a request it made with an `Idempotency-Key`, and the
/// answer kept for a retry of it.
pub const IDEMPOTENCY: OwnedKind = OwnedKind {
    name: "idempotency",
    prefix: "IDEM#",
    id: "<sha256(method, path, key)>",
    pointer: false,
    resource: false,
};

/// Everything a user owns besides the user record itself. Deleting a user deletes every record of
/// these kinds in its partition (and their pointers); a kind missing here would outlive its user.
pub const OWNED: &[OwnedKind] = &[ITEM, FAMILY, REFRESH, LOGIN_ADDRESS, MAIL_TOKEN, IDEMPOTENCY];

/// What a record is, by its key: every record in the table is one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    /// Deleted with its user, in the same transaction as the user record.
    EmailReservation,
    Owned(OwnedKind),
    Pointer(OwnedKind),
    /// Keyed by the typed email, not a user: it expires by TTL.
    LoginAttempts,
    Migration,
    MigrationLease,
    /// The durable work of purging a deleted user's records: removed when they are all gone.
    Purge,
    /// A message still to send: removed once sent.
    Outbox,
    /// An anonymous caller's idempotency record: it expires by TTL.
    CallerIdempotency,
    KeyRing,
}

/// The kind of the record at (`pk`, `sk`), or `None` for a key this schema does not declare.
pub fn classify(pk: &str, sk: &str) -> Option<Kind> {
    if let Some(user) = pk.strip_prefix("USER#") {
        user.parse::<Uuid>().ok()?;
        if sk == USER_SK {
            return Some(Kind::User);
        }
        return OWNED.iter().find(|k| sk.starts_with(k.prefix)).map(|k| Kind::Owned(*k));
    }
    if sk == POINTER_SK {
        return OWNED.iter().find(|k| k.pointer && pk.starts_with(k.prefix)).map(|k| Kind::Pointer(*k));
    }
    match (pk, sk) {
        (pk, EMAIL_SK) if pk.starts_with("EMAIL#") => Some(Kind::EmailReservation),
        (pk, ATTEMPTS_SK) if pk.starts_with("LOGIN#") => Some(Kind::LoginAttempts),
        (MIGRATIONS_PK, LEASE_SK) => Some(Kind::MigrationLease),
        (KEY_RING_KEY, KEY_RING_KEY) => Some(Kind::KeyRing),
        (MIGRATIONS_PK, sk) if sk.starts_with(MIGRATION_PREFIX) => Some(Kind::Migration),
        (pk, sk)
            if sk
                .strip_prefix("USER#")
                .and_then(|id| id.parse::<Uuid>().ok())
                .is_some_and(|id| pk == purges_pk(id)) =>
        {
            Some(Kind::Purge)
        }
        (pk, sk) if pk.starts_with(CALLER_PREFIX) && sk.starts_with(IDEMPOTENCY.prefix) => {
            Some(Kind::CallerIdempotency)
        }
        (pk, sk)
            if sk
                .strip_prefix("MAIL#")
                .and_then(|id| id.parse::<Uuid>().ok())
                .is_some_and(|id| pk == outbox_pk(id)) =>
        {
            Some(Kind::Outbox)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_prefixes_are_distinct_and_none_is_a_prefix_of_another() {
        for a in OWNED {
            for b in OWNED {
                if a != b {
                    assert!(!a.prefix.starts_with(b.prefix), "{} / {}", a.prefix, b.prefix);
                    assert_ne!(a.name, b.name);
                }
            }
            assert!(a.prefix.ends_with('#'), "{}", a.prefix);
            assert!(!a.resource || a.pointer, "{}: a resource's records have owner pointers", a.name);
        }
    }

    #[test]
    fn owned_kinds_keep_clear_of_the_other_keys_and_type_names() {
        for kind in OWNED {
            for taken in [
                "USER#",
                "EMAIL#",
                "LOGIN#",
                MIGRATION_PREFIX,
                MIGRATIONS_PK,
                PURGES_PREFIX,
                OUTBOX_PREFIX,
                CALLER_PREFIX,
                KEY_RING_KEY,
            ] {
                assert!(
                    !taken.starts_with(kind.prefix) && !kind.prefix.starts_with(taken),
                    "{}",
                    kind.prefix
                );
            }
            for name in [
                USER_TYPE,
                EMAIL_TYPE,
                ATTEMPTS_TYPE,
                MIGRATION_TYPE,
                LEASE_TYPE,
                PURGE_TYPE,
                OUTBOX_TYPE,
                CALLER_IDEMPOTENCY_TYPE,
            ] {
                assert_ne!(kind.name, name);
                assert_ne!(kind.pointer_type(), name);
            }
        }
    }

    #[test]
    fn every_key_the_schema_makes_is_classified() {
        let (user, id) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(classify(&user_pk(user), USER_SK), Some(Kind::User));
        assert_eq!(classify(&email_pk("a@b.io"), EMAIL_SK), Some(Kind::EmailReservation));
        assert_eq!(classify(&attempts_pk("a@b.io"), ATTEMPTS_SK), Some(Kind::LoginAttempts));
        assert_eq!(classify(MIGRATIONS_PK, LEASE_SK), Some(Kind::MigrationLease));
        assert_eq!(classify(MIGRATIONS_PK, &format!("{MIGRATION_PREFIX}0001")), Some(Kind::Migration));
        assert_eq!(classify(&purges_pk(user), &purge_sk(user)), Some(Kind::Purge));
        assert_eq!(classify(&purges_pk(user), "USER#not-a-uuid"), None);
        assert_eq!(classify(&outbox_pk(id), &outbox_sk(id)), Some(Kind::Outbox));
        assert_eq!(classify(&caller_pk("ab12"), &idempotency_sk("cd34")), Some(Kind::CallerIdempotency));
        let shard: u8 = outbox_pk(id).trim_start_matches(OUTBOX_PREFIX).parse().unwrap();
        assert_eq!(
            classify(&outbox_shard((shard + 1) % OUTBOX_SHARDS), &outbox_sk(id)),
            None,
            "another shard"
        );
        assert_eq!(classify(&purges_shard(PURGE_SHARDS), &purge_sk(user)), None, "no such shard");
        let shard: u8 = purges_pk(user).trim_start_matches(PURGES_PREFIX).parse().unwrap();
        let other = purges_shard((shard + 1) % PURGE_SHARDS);
        assert_eq!(classify(&other, &purge_sk(user)), None, "another user's shard");
        assert_eq!(
            classify(&format!("{PURGES_PREFIX}0{shard}"), &purge_sk(user)),
            None,
            "a shard spelt otherwise"
        );
        for kind in OWNED {
            assert_eq!(classify(&user_pk(user), &kind.sk(id)), Some(Kind::Owned(*kind)));
            let pointer = classify(&kind.sk(id), POINTER_SK);
            assert_eq!(pointer, kind.pointer.then_some(Kind::Pointer(*kind)));
        }
        assert_eq!(classify(&user_pk(user), "UNDECLARED#1"), None, "an undeclared kind");
        assert_eq!(classify(KEY_RING_KEY, KEY_RING_KEY), Some(Kind::KeyRing));
    }
}
