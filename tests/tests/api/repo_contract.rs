//! The repository contract: the same test bodies run against the in-memory store (`memory::`)
//! and DynamoDB Local (`dynamodb::`, with the `dynamodb` feature), so the in-memory store cannot
//! drift from DynamoDB. After each, every record the store holds must be of a kind the key schema
//! declares (`api_tests::records`): a kind a user owns that the delete cascade does not know
//! fails here.

// Test bodies shared by several #[tokio::test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use api_tests::item_store::ItemStore;
use api_tests::records::{Keys, assert_every_record_declared};
use chrono::{DateTime, Duration, SubsecRound, Utc};
use items::{Item, ItemChanges, ItemRecord};
use shared::domain::{Email, Patch};
use shared::repo::memory::MemoryStore;
use shared::repo::*;
use uuid::Uuid;

trait Store: AllRepos + MigrationRepo + Keys + Sync {}
impl<T: AllRepos + MigrationRepo + Keys + Sync> Store for T {}

macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory {
            use super::*;
            $(#[tokio::test]
            async fn $name() {
                let store = Arc::new(MemoryStore::new());
                super::$name(store.clone()).await;
                assert_every_record_declared(store.as_ref()).await;
            })*
        }
        #[cfg(feature = "dynamodb")]
        mod dynamodb {
            use super::*;
            $(#[tokio::test]
            async fn $name() {
                let store = api_tests::dynamo::store().await;
                super::$name(store.clone()).await;
                assert_every_record_declared(store.as_ref()).await;
            })*
        }
    };
}

contract!(
    a_created_user_is_found_by_id_and_by_email_case_insensitively,
    a_taken_email_creates_nothing,
    user_updates_apply_only_the_given_fields,
    an_email_change_moves_the_reservation,
    an_email_change_to_a_taken_email_changes_nothing,
    updating_a_missing_user_reports_not_found,
    deleting_a_user_is_immediate_and_leaves_its_purge_pending,
    a_purge_removes_everything_the_user_owned_page_by_page,
    a_purge_never_touches_a_user_that_exists,
    purge_progress_is_noted_until_the_purge_is_finished,
    pending_purges_are_listed_page_by_page,
    users_are_listed_in_creation_order_page_by_page,
    an_item_needs_an_existing_owner,
    a_taken_record_id_is_an_error_and_overwrites_nothing,
    items_are_found_under_their_owner_only,
    item_updates_bump_the_version_by_one,
    item_updates_and_deletes_honour_the_expected_version,
    items_are_listed_newest_first_page_by_page,
    a_refresh_token_rotates_once,
    a_revoked_or_expired_family_cannot_rotate,
    revoking_a_users_tokens_ends_every_family,
    a_password_change_is_a_new_credential_version,
    a_family_starts_only_while_its_user_has_the_credentials_of_its_login,
    a_family_of_older_credentials_does_not_rotate,
    login_attempts_count_within_a_window_and_reset_after_it,
    concurrent_login_attempts_are_each_counted_once,
    concurrent_attempts_below_a_limit_never_overshoot_it,
    a_forgiven_attempt_is_taken_back_from_its_own_window_only,
    a_login_address_is_remembered_until_it_expires_and_goes_with_its_user,
    migration_records_are_saved_and_listed_in_id_order,
    the_migration_lease_admits_one_holder_until_it_runs_out,
);

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn user(email: &str) -> UserRecord {
    let now = now();
    UserRecord {
        id: Uuid::now_v7(),
        email: Email::parse(email).expect("email"),
        full_name: Some("Full Name".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        is_active: true,
        is_superuser: false,
        credential_version: 0,
        email_verified: true,
        created_at: now,
        updated_at: now,
    }
}

fn unique_email() -> String {
    format!("u-{}@example.com", Uuid::new_v4().simple())
}

async fn created_user<S: Store>(s: &S) -> UserRecord {
    let u = user(&unique_email());
    assert_eq!(s.create_user(&u).await.expect("create"), CreateUser::Created);
    u
}

fn item(owner: Uuid, title: &str) -> ItemRecord {
    let now = now();
    ItemRecord {
        id: Uuid::now_v7(),
        owner_id: owner,
        fields: Item { title: title.into(), description: Some("description".into()) },
        version: 1,
        created_at: now,
        updated_at: now,
    }
}

fn refresh(user_id: Uuid, family_id: Uuid, expires_in: Duration) -> RefreshRecord {
    let now = now();
    RefreshRecord {
        token_hash: shared::auth::refresh::hash(&shared::auth::refresh::generate(user_id)),
        user_id,
        family_id,
        issued_at: now,
        expires_at: now + expires_in,
        used: false,
        credential_version: 0,
        family_ends_at: now + Duration::days(30),
    }
}

async fn a_created_user_is_found_by_id_and_by_email_case_insensitively<S: Store>(s: Arc<S>) {
    let u = user(&format!("Mixed.Case-{}@Example.COM", Uuid::new_v4().simple()));
    assert_eq!(s.create_user(&u).await.unwrap(), CreateUser::Created);
    assert_eq!(s.get_user(u.id).await.unwrap(), Some(u.clone()));
    assert_eq!(s.find_user_by_email(&u.email.key()).await.unwrap(), Some(u.clone()));
    assert_eq!(s.find_user_by_email("nobody@example.com").await.unwrap(), None);
    assert_eq!(s.get_user(Uuid::now_v7()).await.unwrap(), None);
}

async fn a_taken_email_creates_nothing<S: Store>(s: Arc<S>) {
    let first = created_user(s.as_ref()).await;
    let second = user(&first.email.as_str().to_uppercase());
    assert_eq!(s.create_user(&second).await.unwrap(), CreateUser::EmailTaken);
    assert_eq!(s.get_user(second.id).await.unwrap(), None, "no user without a reservation");
    assert_eq!(s.find_user_by_email(&first.email.key()).await.unwrap().map(|u| u.id), Some(first.id));
}

async fn user_updates_apply_only_the_given_fields<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let later = u.updated_at + Duration::seconds(5);
    let changes = UserChanges { is_superuser: Some(true), ..Default::default() };
    let UpdateUser::Updated(updated) = s.update_user(u.id, &changes, later).await.unwrap() else {
        panic!("update failed")
    };
    assert!(updated.is_superuser);
    assert_eq!(updated.full_name, u.full_name, "absent leaves it");
    assert_eq!(
        (updated.email.clone(), updated.password_hash.clone()),
        (u.email.clone(), u.password_hash.clone())
    );
    assert_eq!((updated.created_at, updated.updated_at), (u.created_at, later));

    let clear = UserChanges {
        full_name: Patch::Set(None),
        is_active: Some(false),
        password_hash: Some("new-hash".into()),
        ..Default::default()
    };
    let UpdateUser::Updated(cleared) = s.update_user(u.id, &clear, later).await.unwrap() else {
        panic!("update failed")
    };
    assert_eq!(cleared.full_name, None, "null clears it");
    assert!(!cleared.is_active);
    assert_eq!(cleared.password_hash, "new-hash");
    assert_eq!(s.get_user(u.id).await.unwrap(), Some(cleared));
}

async fn an_email_change_moves_the_reservation<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let new_email = Email::parse(&unique_email()).unwrap();
    let changes = UserChanges { email: Some(new_email.clone()), ..Default::default() };
    let UpdateUser::Updated(updated) = s.update_user(u.id, &changes, now()).await.unwrap() else {
        panic!("update failed")
    };
    assert_eq!(updated.email, new_email);
    assert_eq!(s.find_user_by_email(&new_email.key()).await.unwrap().map(|u| u.id), Some(u.id));
    assert_eq!(s.find_user_by_email(&u.email.key()).await.unwrap(), None, "the old email is released");
    // ...and can be taken by someone else.
    let taker = user(u.email.as_str());
    assert_eq!(s.create_user(&taker).await.unwrap(), CreateUser::Created);
}

async fn an_email_change_to_a_taken_email_changes_nothing<S: Store>(s: Arc<S>) {
    let (a, b) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let changes = UserChanges {
        email: Some(Email::parse(&b.email.as_str().to_uppercase()).unwrap()),
        full_name: Patch::Set(Some("changed".into())),
        ..Default::default()
    };
    assert_eq!(s.update_user(a.id, &changes, now()).await.unwrap(), UpdateUser::EmailTaken);
    assert_eq!(s.get_user(a.id).await.unwrap(), Some(a.clone()), "nothing changed");
    assert_eq!(s.find_user_by_email(&a.email.key()).await.unwrap().map(|u| u.id), Some(a.id));
    assert_eq!(s.find_user_by_email(&b.email.key()).await.unwrap().map(|u| u.id), Some(b.id));
}

async fn updating_a_missing_user_reports_not_found<S: Store>(s: Arc<S>) {
    let changes = UserChanges { is_active: Some(false), ..Default::default() };
    assert_eq!(s.update_user(Uuid::now_v7(), &changes, now()).await.unwrap(), UpdateUser::NotFound);
}

async fn deleting_a_user_is_immediate_and_leaves_its_purge_pending<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let mine = item(u.id, "mine");
    assert!(s.create_item(&mine).await.unwrap());
    let token = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    s.create_family(&token).await.unwrap();

    let at = now();
    assert!(s.delete_user(u.id, at).await.unwrap());
    assert_eq!(s.get_user(u.id).await.unwrap(), None);
    assert_eq!(s.find_user_by_email(&u.email.key()).await.unwrap(), None);
    let next = refresh(u.id, token.family_id, Duration::days(7));
    assert_ne!(s.rotate_refresh(&token, &next, now()).await.unwrap(), Rotation::Rotated, "sessions end");
    assert!(!s.create_item(&item(u.id, "late")).await.unwrap(), "nothing is added to a deleted user");
    let purge = s.get_purge(u.id).await.unwrap().expect("a pending purge");
    assert_eq!(purge, PurgeRecord { user_id: u.id, requested_at: at, updated_at: at, deleted: 0 });
    assert!(!s.delete_user(u.id, now()).await.unwrap(), "a second delete finds nothing");
    assert_eq!(s.create_user(&user(u.email.as_str())).await.unwrap(), CreateUser::Created, "email released");
}

async fn a_purge_removes_everything_the_user_owned_page_by_page<S: Store>(s: Arc<S>) {
    let (u, other) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let mine: Vec<_> = (0..5).map(|n| item(u.id, &format!("mine {n}"))).collect();
    for record in &mine {
        assert!(s.create_item(record).await.unwrap());
    }
    let theirs = item(other.id, "theirs");
    assert!(s.create_item(&theirs).await.unwrap());
    let token = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    s.create_family(&token).await.unwrap();
    s.remember_address(u.id, "203.0.113.9", now() + Duration::days(30)).await.unwrap();
    assert!(s.delete_user(u.id, now()).await.unwrap());

    // 5 items, the family, its refresh token and the address: 8 records, 3 at a time.
    let mut pages = Vec::new();
    loop {
        match s.purge_page(u.id, 3).await.unwrap() {
            PurgePage::Deleted(n) => pages.push(n),
            PurgePage::Empty => break,
            PurgePage::UserExists => panic!("the user was deleted"),
        }
    }
    assert_eq!(pages, [3, 3, 2]);
    for record in &mine {
        assert_eq!(s.get_item(u.id, record.id).await.unwrap(), None);
        assert_eq!(s.find_item_owner(record.id).await.unwrap(), None, "no pointer left behind");
    }
    assert_eq!(s.get_refresh(u.id, &token.token_hash).await.unwrap(), None, "refresh tokens are gone");
    let keys = s.all_keys().await;
    let id = u.id.to_string();
    let left: Vec<_> = keys.iter().filter(|(pk, sk)| pk.contains(&id) || sk.contains(&id)).collect();
    let purge = (shared::repo::keys::purges_pk(u.id), format!("USER#{}", u.id));
    assert_eq!(left, [&purge], "only the purge record");
    assert_eq!(s.get_item(other.id, theirs.id).await.unwrap(), Some(theirs), "others keep theirs");
    assert_eq!(s.purge_page(u.id, 3).await.unwrap(), PurgePage::Empty, "a finished purge is a no-op");
}

async fn a_purge_never_touches_a_user_that_exists<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let mine = item(u.id, "mine");
    assert!(s.create_item(&mine).await.unwrap());
    assert_eq!(s.purge_page(u.id, 100).await.unwrap(), PurgePage::UserExists);
    assert_eq!(s.get_item(u.id, mine.id).await.unwrap(), Some(mine));
    assert_eq!(s.get_user(u.id).await.unwrap(), Some(u));
}

async fn purge_progress_is_noted_until_the_purge_is_finished<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let at = now();
    assert!(s.delete_user(u.id, at).await.unwrap());
    let later = at + Duration::seconds(5);
    s.note_purge_progress(u.id, 100, later).await.unwrap();
    s.note_purge_progress(u.id, 40, later + Duration::seconds(1)).await.unwrap();
    let purge = s.get_purge(u.id).await.unwrap().unwrap();
    assert_eq!(
        (purge.deleted, purge.updated_at, purge.requested_at),
        (140, later + Duration::seconds(1), at)
    );
    s.finish_purge(u.id).await.unwrap();
    assert_eq!(s.get_purge(u.id).await.unwrap(), None);
    s.note_purge_progress(u.id, 1, later).await.unwrap();
    assert_eq!(s.get_purge(u.id).await.unwrap(), None, "a late note does not bring a finished purge back");
    s.finish_purge(u.id).await.unwrap();
}

async fn pending_purges_are_listed_page_by_page<S: Store>(s: Arc<S>) {
    // Four in one partition and one in another, so a page merges partitions and pages within one.
    let mut ids = Vec::new();
    let mut in_first = 0;
    let first = shared::repo::keys::purges_shard(0);
    while ids.len() < 5 {
        let mut u = user(&unique_email());
        u.id = Uuid::now_v7();
        let shard_zero = shared::repo::keys::purges_pk(u.id) == first;
        if (shard_zero && in_first == 4) || (!shard_zero && ids.len() - in_first == 1) {
            continue;
        }
        in_first += usize::from(shard_zero);
        assert_eq!(s.create_user(&u).await.unwrap(), CreateUser::Created);
        assert!(s.delete_user(u.id, now()).await.unwrap());
        ids.push(u.id);
    }
    ids.sort();
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = s.pending_purges(2, after).await.unwrap();
        assert!(page.records.len() <= 2);
        listed.extend(page.records.iter().map(|p| p.user_id));
        if !page.more {
            break;
        }
        after = listed.last().copied();
    }
    assert_eq!(listed, ids);
    s.finish_purge(ids[2]).await.unwrap();
    let all = s.pending_purges(10, None).await.unwrap();
    assert_eq!(all.records.len(), 4);
    assert!(!all.more);
    assert_eq!(s.pending_purges(10, Some(ids[4])).await.unwrap().records, vec![]);
}

async fn users_are_listed_in_creation_order_page_by_page<S: Store>(s: Arc<S>) {
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(created_user(s.as_ref()).await.id);
    }
    let first = s.list_users(2, None).await.unwrap();
    assert!(first.more);
    assert_eq!(first.records.iter().map(|u| u.id).collect::<Vec<_>>(), ids[..2]);
    let second = s.list_users(2, Some(ids[1])).await.unwrap();
    assert_eq!(second.records.iter().map(|u| u.id).collect::<Vec<_>>(), ids[2..4]);
    assert!(second.more);
    let last = s.list_users(2, Some(ids[3])).await.unwrap();
    assert_eq!(last.records.iter().map(|u| u.id).collect::<Vec<_>>(), ids[4..]);
    assert!(!last.more);
    let exact = s.list_users(5, None).await.unwrap();
    assert_eq!((exact.records.len(), exact.more), (5, false), "an exact fit says no more");
}

async fn an_item_needs_an_existing_owner<S: Store>(s: Arc<S>) {
    let orphan = item(Uuid::now_v7(), "orphan");
    assert!(!s.create_item(&orphan).await.unwrap());
    assert_eq!(s.get_item(orphan.owner_id, orphan.id).await.unwrap(), None);
}

async fn a_taken_record_id_is_an_error_and_overwrites_nothing<S: Store>(s: Arc<S>) {
    let owner = created_user(s.as_ref()).await;
    let first = item(owner.id, "first");
    assert!(s.create_item(&first).await.unwrap());
    let second = ItemRecord { fields: Item { title: "second".into(), description: None }, ..first.clone() };
    assert!(matches!(s.create_item(&second).await, Err(RepoError::Internal(_))), "an id collision is a bug");
    assert_eq!(s.get_item(owner.id, first.id).await.unwrap(), Some(first));
}

async fn items_are_found_under_their_owner_only<S: Store>(s: Arc<S>) {
    let (owner, other) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let it = item(owner.id, "title");
    assert!(s.create_item(&it).await.unwrap());
    assert_eq!(s.get_item(owner.id, it.id).await.unwrap(), Some(it.clone()));
    assert_eq!(s.get_item(other.id, it.id).await.unwrap(), None);
    assert_eq!(s.find_item_owner(it.id).await.unwrap(), Some(owner.id));
    assert_eq!(s.find_item_owner(Uuid::now_v7()).await.unwrap(), None);
    let change = ItemChanges { title: Some("stolen".into()), ..Default::default() };
    assert_eq!(s.update_item(other.id, it.id, &change, None, now()).await.unwrap(), Conditional::NotFound);
    assert_eq!(s.delete_item(other.id, it.id, None).await.unwrap(), Conditional::NotFound);
    assert_eq!(s.get_item(owner.id, it.id).await.unwrap(), Some(it));
}

async fn item_updates_bump_the_version_by_one<S: Store>(s: Arc<S>) {
    let owner = created_user(s.as_ref()).await;
    let it = item(owner.id, "title");
    assert!(s.create_item(&it).await.unwrap());
    let later = it.updated_at + Duration::seconds(1);
    let change = ItemChanges { title: Some("new title".into()), description: Patch::Absent };
    let Conditional::Done(updated) = s.update_item(owner.id, it.id, &change, None, later).await.unwrap()
    else {
        panic!("update failed")
    };
    assert_eq!((updated.fields.title.as_str(), updated.version), ("new title", 2));
    assert_eq!(updated.fields.description, it.fields.description, "absent leaves it");
    assert_eq!((updated.created_at, updated.updated_at), (it.created_at, later));
    let clear = ItemChanges { title: None, description: Patch::Set(None) };
    let Conditional::Done(cleared) = s.update_item(owner.id, it.id, &clear, None, later).await.unwrap()
    else {
        panic!("update failed")
    };
    assert_eq!((cleared.fields.description, cleared.version), (None, 3));
    assert_eq!(s.get_item(owner.id, it.id).await.unwrap().map(|i| i.version), Some(3));
}

async fn item_updates_and_deletes_honour_the_expected_version<S: Store>(s: Arc<S>) {
    let owner = created_user(s.as_ref()).await;
    let it = item(owner.id, "title");
    assert!(s.create_item(&it).await.unwrap());
    let change = ItemChanges { title: Some("x".into()), description: Patch::Absent };
    assert!(matches!(
        s.update_item(owner.id, it.id, &change, Some(1), now()).await.unwrap(),
        Conditional::Done(_)
    ));
    assert_eq!(
        s.update_item(owner.id, it.id, &change, Some(1), now()).await.unwrap(),
        Conditional::VersionMismatch
    );
    assert_eq!(s.delete_item(owner.id, it.id, Some(1)).await.unwrap(), Conditional::VersionMismatch);
    assert_eq!(s.get_item(owner.id, it.id).await.unwrap().map(|i| i.version), Some(2));
    assert_eq!(s.delete_item(owner.id, it.id, Some(2)).await.unwrap(), Conditional::Done(()));
    assert_eq!(s.get_item(owner.id, it.id).await.unwrap(), None);
    assert_eq!(s.find_item_owner(it.id).await.unwrap(), None);
    assert_eq!(s.delete_item(owner.id, it.id, None).await.unwrap(), Conditional::NotFound);
    assert_eq!(s.update_item(owner.id, it.id, &change, None, now()).await.unwrap(), Conditional::NotFound);
}

async fn items_are_listed_newest_first_page_by_page<S: Store>(s: Arc<S>) {
    let (owner, other) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let mut ids = Vec::new();
    for n in 0..5 {
        let it = item(owner.id, &format!("item {n}"));
        assert!(s.create_item(&it).await.unwrap());
        ids.push(it.id);
    }
    assert!(s.create_item(&item(other.id, "not listed")).await.unwrap());
    s.create_family(&refresh(owner.id, Uuid::new_v4(), Duration::days(1))).await.unwrap();
    ids.reverse();
    let first = s.list_items(owner.id, 2, None).await.unwrap();
    assert_eq!(first.records.iter().map(|i| i.id).collect::<Vec<_>>(), ids[..2]);
    assert!(first.more);
    let rest = s.list_items(owner.id, 10, Some(ids[1])).await.unwrap();
    assert_eq!(rest.records.iter().map(|i| i.id).collect::<Vec<_>>(), ids[2..]);
    assert!(!rest.more);
    assert_eq!(s.list_items(other.id, 10, None).await.unwrap().records.len(), 1);
}

async fn a_refresh_token_rotates_once<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let first = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    s.create_family(&first).await.unwrap();
    assert_eq!(s.get_refresh(first.user_id, &first.token_hash).await.unwrap(), Some(first.clone()));
    let second = refresh(u.id, first.family_id, Duration::days(7));
    assert_eq!(s.rotate_refresh(&first, &second, now()).await.unwrap(), Rotation::Rotated);
    assert!(s.get_refresh(first.user_id, &first.token_hash).await.unwrap().expect("kept").used);
    assert_eq!(s.get_refresh(second.user_id, &second.token_hash).await.unwrap(), Some(second.clone()));
    let third = refresh(u.id, first.family_id, Duration::days(7));
    assert_eq!(s.rotate_refresh(&first, &third, now()).await.unwrap(), Rotation::AlreadyUsed);
    assert_eq!(
        s.get_refresh(third.user_id, &third.token_hash).await.unwrap(),
        None,
        "the loser writes nothing"
    );
    assert_eq!(s.get_refresh(u.id, "0".repeat(64).as_str()).await.unwrap(), None);
    assert_eq!(s.get_refresh(Uuid::now_v7(), &second.token_hash).await.unwrap(), None, "only under its user");
}

async fn a_revoked_or_expired_family_cannot_rotate<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let revoked = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    s.create_family(&revoked).await.unwrap();
    assert!(s.revoke_family(u.id, revoked.family_id).await.unwrap(), "it was there");
    assert!(!s.revoke_family(u.id, revoked.family_id).await.unwrap(), "gone already");
    assert!(!s.revoke_family(u.id, Uuid::new_v4()).await.unwrap(), "never was");
    let next = refresh(u.id, revoked.family_id, Duration::days(7));
    assert_eq!(s.rotate_refresh(&revoked, &next, now()).await.unwrap(), Rotation::FamilyGone);
    assert_eq!(s.get_refresh(next.user_id, &next.token_hash).await.unwrap(), None);

    let expiring = refresh(u.id, Uuid::new_v4(), Duration::seconds(60));
    s.create_family(&expiring).await.unwrap();
    let next = refresh(u.id, expiring.family_id, Duration::days(7));
    let later = now() + Duration::seconds(61);
    assert_eq!(s.rotate_refresh(&expiring, &next, later).await.unwrap(), Rotation::FamilyGone);
}

async fn a_password_change_is_a_new_credential_version<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    assert_eq!(u.credential_version, 0);
    let rename = UserChanges { full_name: Patch::Set(None), ..UserChanges::default() };
    let email = Email::parse(&format!("moved-{}@example.com", Uuid::new_v4().simple())).unwrap();
    let moved = UserChanges { email: Some(email), ..UserChanges::default() };
    for changes in [rename, moved] {
        s.update_user(u.id, &changes, now()).await.unwrap();
        assert_eq!(s.get_user(u.id).await.unwrap().unwrap().credential_version, 0, "{changes:?}");
    }
    for expected in [1, 2] {
        let password =
            UserChanges { password_hash: Some(format!("hash {expected}")), ..UserChanges::default() };
        let UpdateUser::Updated(updated) = s.update_user(u.id, &password, now()).await.unwrap() else {
            panic!("not updated");
        };
        assert_eq!(updated.credential_version, expected);
        assert_eq!(s.get_user(u.id).await.unwrap(), Some(updated));
    }
}

async fn a_family_starts_only_while_its_user_has_the_credentials_of_its_login<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let first = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    assert_eq!(s.create_family(&first).await.unwrap(), NewFamily::Created);
    // A password change lands while a login with the old one is still being verified.
    let password = UserChanges { password_hash: Some("new hash".into()), ..UserChanges::default() };
    s.update_user(u.id, &password, now()).await.unwrap();
    let late = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    assert_eq!(s.create_family(&late).await.unwrap(), NewFamily::CredentialsChanged);
    assert_eq!(s.get_refresh(u.id, &late.token_hash).await.unwrap(), None, "nothing recorded");
    let current = RefreshRecord { credential_version: 1, ..refresh(u.id, Uuid::new_v4(), Duration::days(7)) };
    assert_eq!(s.create_family(&current).await.unwrap(), NewFamily::Created);
    // An inactive or unknown user starts none either.
    let off = UserChanges { is_active: Some(false), ..UserChanges::default() };
    s.update_user(u.id, &off, now()).await.unwrap();
    let inactive =
        RefreshRecord { credential_version: 1, ..refresh(u.id, Uuid::new_v4(), Duration::days(7)) };
    assert_eq!(s.create_family(&inactive).await.unwrap(), NewFamily::CredentialsChanged);
    let nobody = refresh(Uuid::now_v7(), Uuid::new_v4(), Duration::days(7));
    assert_eq!(s.create_family(&nobody).await.unwrap(), NewFamily::CredentialsChanged);
    assert_eq!(s.get_refresh(nobody.user_id, &nobody.token_hash).await.unwrap(), None);
}

async fn a_family_of_older_credentials_does_not_rotate<S: Store>(s: Arc<S>) {
    let u = created_user(s.as_ref()).await;
    let first = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    assert_eq!(s.create_family(&first).await.unwrap(), NewFamily::Created);
    // The change, without revoking the families: the version alone stops the rotation.
    let password = UserChanges { password_hash: Some("new hash".into()), ..UserChanges::default() };
    s.update_user(u.id, &password, now()).await.unwrap();
    let next = refresh(u.id, first.family_id, Duration::days(7));
    assert_eq!(s.rotate_refresh(&first, &next, now()).await.unwrap(), Rotation::FamilyGone);
    assert_eq!(s.get_refresh(u.id, &next.token_hash).await.unwrap(), None, "the new token is not recorded");
    assert!(!s.get_refresh(u.id, &first.token_hash).await.unwrap().unwrap().used, "nothing was written");
}

async fn a_forgiven_attempt_is_taken_back_from_its_own_window_only<S: Store>(s: Arc<S>) {
    let counter = format!("E#forgive-{}@example.com", Uuid::new_v4().simple());
    let at = now();
    let first = s.count_attempt(&counter, at, 900).await.unwrap();
    assert_eq!(s.count_attempt(&counter, at, 900).await.unwrap().count, 2);
    s.forgive_attempt(&counter, first.started_at).await.unwrap();
    assert_eq!(s.count_attempt(&counter, at, 900).await.unwrap().count, 2, "2 - 1 + 1");
    // Another window's forgiveness takes nothing from this one.
    s.forgive_attempt(&counter, first.started_at - Duration::seconds(1)).await.unwrap();
    assert_eq!(s.count_attempt(&counter, at, 900).await.unwrap().count, 3);
    for _ in 0..4 {
        s.forgive_attempt(&counter, first.started_at).await.unwrap();
    }
    let keys = s.all_keys().await;
    assert!(!keys.iter().any(|(pk, _)| pk.ends_with(&counter)), "a counter at nothing is gone: {keys:?}");
    assert_eq!(s.count_attempt(&counter, at, 900).await.unwrap().count, 1, "never below nothing");
}

async fn a_login_address_is_remembered_until_it_expires_and_goes_with_its_user<S: Store>(s: Arc<S>) {
    let (u, other) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let at = now();
    assert!(!s.knows_address(u.id, "203.0.113.9", at).await.unwrap());
    s.remember_address(u.id, "203.0.113.9", at + Duration::days(30)).await.unwrap();
    assert!(s.knows_address(u.id, "203.0.113.9", at).await.unwrap());
    assert!(
        s.knows_address(u.id, "203.0.113.9", at + Duration::days(30) - Duration::seconds(1)).await.unwrap()
    );
    assert!(!s.knows_address(u.id, "203.0.113.9", at + Duration::days(30)).await.unwrap(), "expired");
    assert!(!s.knows_address(u.id, "2001:db8::/64", at).await.unwrap(), "another address");
    assert!(!s.knows_address(other.id, "203.0.113.9", at).await.unwrap(), "another user");
    let nobody = Uuid::now_v7();
    s.remember_address(nobody, "203.0.113.9", at + Duration::days(30)).await.unwrap();
    assert!(!s.knows_address(nobody, "203.0.113.9", at).await.unwrap(), "nothing under a missing user");
    assert!(s.delete_user(u.id, now()).await.unwrap());
    while s.purge_page(u.id, 10).await.unwrap() != PurgePage::Empty {}
    let keys = s.all_keys().await;
    let left = keys.iter().filter(|(pk, _)| pk.contains(&u.id.to_string())).count();
    assert_eq!(left, 0, "gone with the user: {keys:?}");
}

async fn revoking_a_users_tokens_ends_every_family<S: Store>(s: Arc<S>) {
    let (u, other) = (created_user(s.as_ref()).await, created_user(s.as_ref()).await);
    let a = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    let b = refresh(u.id, Uuid::new_v4(), Duration::days(7));
    let keep = refresh(other.id, Uuid::new_v4(), Duration::days(7));
    for t in [&a, &b, &keep] {
        s.create_family(t).await.unwrap();
    }
    s.revoke_user_tokens(u.id).await.unwrap();
    for t in [&a, &b] {
        let next = refresh(u.id, t.family_id, Duration::days(7));
        assert_eq!(s.rotate_refresh(t, &next, now()).await.unwrap(), Rotation::FamilyGone);
    }
    let next = refresh(other.id, keep.family_id, Duration::days(7));
    assert_eq!(s.rotate_refresh(&keep, &next, now()).await.unwrap(), Rotation::Rotated);
}

async fn login_attempts_count_within_a_window_and_reset_after_it<S: Store>(s: Arc<S>) {
    let key = unique_email();
    let start = now();
    for n in 1..=3 {
        let w = s.count_attempt(&key, start + Duration::seconds(n), 900).await.unwrap();
        assert_eq!(w, AttemptWindow { count: n as u32, started_at: start + Duration::seconds(1) });
    }
    let after = start + Duration::seconds(902);
    let fresh = s.count_attempt(&key, after, 900).await.unwrap();
    assert_eq!(fresh, AttemptWindow { count: 1, started_at: after }, "the window closed");
    s.clear_attempts(&key).await.unwrap();
    assert_eq!(s.count_attempt(&key, after, 900).await.unwrap().count, 1, "cleared");
    assert_eq!(s.count_attempt("other@example.com", after, 900).await.unwrap().count, 1, "per key");
}

async fn concurrent_login_attempts_are_each_counted_once<S: Store>(s: Arc<S>) {
    let key = unique_email();
    let start = now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (s, key) = (s.clone(), key.clone());
        set.spawn(async move { s.count_attempt(&key, start, 900).await.unwrap().count });
    }
    let mut counts = Vec::new();
    while let Some(count) = set.join_next().await {
        counts.push(count.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u32>>());
}

async fn concurrent_attempts_below_a_limit_never_overshoot_it<S: Store>(s: Arc<S>) {
    let key = unique_email();
    let start = now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (s, key) = (s.clone(), key.clone());
        set.spawn(async move { s.count_attempt_below(&key, start, 900, 5).await.unwrap() });
    }
    let (mut counted, mut refused) = (Vec::new(), 0);
    while let Some(outcome) = set.join_next().await {
        match outcome.unwrap() {
            Ok(window) => counted.push(window.count),
            Err(full) => {
                assert_eq!(full.count, 5, "refused only by a full window");
                refused += 1;
            }
        }
    }
    counted.sort_unstable();
    assert_eq!((counted, refused), ((1..=5).collect::<Vec<u32>>(), 15));
    assert_eq!(s.attempts(&key, start, 900).await.unwrap().map(|w| w.count), Some(5), "nothing past it");
    // A closed window opens a new one.
    let later = start + Duration::seconds(900);
    assert_eq!(s.count_attempt_below(&key, later, 900, 5).await.unwrap().map(|w| w.count), Ok(1));
}

async fn migration_records_are_saved_and_listed_in_id_order<S: Store>(s: Arc<S>) {
    assert_eq!(s.migrations().await.unwrap(), []);
    let started = now();
    let holder = Uuid::new_v4();
    let second = MigrationRecord {
        id: "0002_second".into(),
        description: "second".into(),
        started_at: started,
        checkpoint: Some("page 3".into()),
        applied_at: None,
    };
    let first = MigrationRecord {
        id: "0001_first".into(),
        description: "first".into(),
        started_at: started,
        checkpoint: None,
        applied_at: Some(started + Duration::seconds(1)),
    };
    // Only under a lease that is held and unexpired.
    assert!(!s.save_migration(&second, holder, started).await.unwrap());
    assert!(s.acquire_migration_lease(holder, started, started + Duration::seconds(60)).await.unwrap());
    assert!(!s.save_migration(&second, Uuid::new_v4(), started).await.unwrap(), "not the holder");
    assert!(!s.save_migration(&second, holder, started + Duration::seconds(61)).await.unwrap(), "expired");
    assert_eq!(s.migrations().await.unwrap(), []);
    assert!(s.save_migration(&second, holder, started).await.unwrap());
    assert!(s.save_migration(&first, holder, started).await.unwrap());
    assert_eq!(s.migrations().await.unwrap(), [first.clone(), second.clone()]);
    // Saving again replaces the record: the checkpoint goes, the applied time arrives.
    let done =
        MigrationRecord { checkpoint: None, applied_at: Some(started + Duration::seconds(2)), ..second };
    assert!(s.save_migration(&done, holder, started).await.unwrap());
    assert_eq!(s.migrations().await.unwrap(), [first, done]);
}

async fn the_migration_lease_admits_one_holder_until_it_runs_out<S: Store>(s: Arc<S>) {
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let t = now();
    let minute = Duration::seconds(60);
    assert!(s.acquire_migration_lease(a, t, t + minute).await.unwrap());
    assert!(!s.acquire_migration_lease(b, t, t + minute).await.unwrap(), "held by a");
    // The holder may renew it.
    assert!(s.acquire_migration_lease(a, t + Duration::seconds(30), t + minute * 2).await.unwrap());
    assert!(!s.acquire_migration_lease(b, t + minute + Duration::seconds(1), t + minute * 3).await.unwrap());
    // A lease that ran out (its holder died) may be taken over...
    assert!(
        s.acquire_migration_lease(b, t + minute * 2 + Duration::seconds(1), t + minute * 3).await.unwrap()
    );
    // ...and then the old holder cannot release it.
    s.release_migration_lease(a).await.unwrap();
    assert!(
        !s.acquire_migration_lease(a, t + minute * 2 + Duration::seconds(2), t + minute * 4).await.unwrap()
    );
    s.release_migration_lease(b).await.unwrap();
    assert!(
        s.acquire_migration_lease(a, t + minute * 2 + Duration::seconds(3), t + minute * 4).await.unwrap()
    );
}
