//! The users listing's index (`GSI2`: keys only, over `USERS_SHARDS` partitions) and its rollout
//! on DynamoDB Local: users written before it existed are listed from `GSI1` until the migration
//! `0003_users_index` has put them into `GSI2`, then from `GSI2`; the listing is the same, whole
//! and in creation order, before and after, and pages through either with the same cursor. No
//! attribute of a user is in the new index.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use shared::deps::SystemClock;
use shared::domain::Email;
use shared::migrate::{self, Migrator};
use shared::repo::dynamo::DynamoStore;
use shared::repo::keys::{GSI2, GSI2_PK, USERS_SHARDS, users_shard, users_shard_pk};
use shared::repo::{CreateUser, UserRecord, UserRepo};
use uuid::Uuid;

fn user() -> UserRecord {
    let now = Utc::now();
    UserRecord {
        id: Uuid::now_v7(),
        email: Email::parse(&format!("u-{}@example.com", Uuid::new_v4().simple())).unwrap(),
        full_name: None,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        is_active: true,
        is_superuser: false,
        credential_version: 0,
        email_verified: true,
        created_at: now,
        updated_at: now,
    }
}

/// Every user, through pages of `limit`.
async fn listed(store: &DynamoStore, limit: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_users(limit, after).await.unwrap();
        assert!(page.records.len() <= limit);
        ids.extend(page.records.iter().map(|u| u.id));
        if !page.more {
            return ids;
        }
        assert_eq!(page.records.len(), limit, "a page with more after it is full");
        after = ids.last().copied();
    }
}

/// The ids in `GSI2`, shard by shard, and whether any item there carries more than keys.
async fn in_the_new_index(store: &DynamoStore) -> (Vec<Uuid>, bool) {
    let mut ids = Vec::new();
    let mut attributes = false;
    for shard in 0..USERS_SHARDS {
        let out = store
            .client()
            .query()
            .table_name(store.table())
            .index_name(GSI2)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", GSI2_PK)
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(users_shard(shard)),
            )
            .send()
            .await
            .unwrap();
        for item in out.items() {
            attributes |= item.keys().any(|k| !["PK", "SK", "GSI2PK", "GSI2SK"].contains(&k.as_str()));
            ids.push(item["GSI2SK"].as_s().unwrap().parse().unwrap());
        }
    }
    ids.sort();
    (ids, attributes)
}

#[tokio::test]
async fn the_users_listing_stays_whole_while_its_new_index_is_rolled_out() {
    let store = api_tests::dynamo::store().await;
    let mut ids = Vec::new();
    for n in 0..23 {
        let u = user();
        assert_eq!(store.create_user(&u).await.unwrap(), CreateUser::Created);
        if n < 17 {
            // Written before the index existed: no keys of it.
            store
                .client()
                .update_item()
                .table_name(store.table())
                .key("PK", AttributeValue::S(format!("USER#{}", u.id)))
                .key("SK", AttributeValue::S("USER".into()))
                .update_expression("REMOVE GSI2PK, GSI2SK")
                .send()
                .await
                .unwrap();
        }
        ids.push(u.id);
    }
    // Before the migration: the index of before, whole.
    assert_eq!(in_the_new_index(&store).await.0.len(), 6, "only the users written since");
    for limit in [1, 4, 23, 100] {
        assert_eq!(listed(&store, limit).await, ids, "limit {limit}, before");
    }

    assert_eq!(in_the_index_of_before(&store).await.len(), 23, "every user in GSI1, hashes and all");
    let migrator = Migrator::new(store.clone(), Arc::new(SystemClock), migrate::all());
    let applied = migrator.run().await.unwrap();
    assert!(applied.ends_with(&["0003_users_index".to_owned(), "0004_users_index_of_before".to_owned()]));
    assert_eq!(
        in_the_index_of_before(&store).await,
        Vec::<String>::new(),
        "GSI1 emptied: no password hash in any index"
    );

    // After it, a store (a function's cold start) lists from the new index: the same users in
    // the same order, through the same pages; the index holds their keys and nothing more.
    let fresh = DynamoStore::new(store.client().clone(), store.table());
    let (indexed, attributes) = in_the_new_index(&fresh).await;
    assert_eq!(indexed, ids);
    assert!(!attributes, "a user's attributes (its password hash) copied into GSI2");
    for limit in [1, 4, 22, 23, 100] {
        assert_eq!(listed(&fresh, limit).await, ids, "limit {limit}, after");
    }
    let shards: BTreeSet<String> = ids.iter().map(|id| users_shard_pk(*id)).collect();
    assert!(shards.len() >= 4, "23 users over {} of {USERS_SHARDS} partitions", shards.len());

    // Users written now are listed from the new index at once; a deleted one is not listed.
    let late = user();
    assert_eq!(fresh.create_user(&late).await.unwrap(), CreateUser::Created);
    assert!(fresh.delete_user(ids[3], Utc::now()).await.unwrap());
    let mut expected = ids.clone();
    expected.remove(3);
    expected.push(late.id);
    assert_eq!(listed(&fresh, 5).await, expected);
    let full = fresh.list_users(30, None).await.unwrap();
    assert_eq!(full.records[0].password_hash, user().password_hash, "whole users, from the table");
    assert_eq!(
        in_the_index_of_before(&fresh).await,
        Vec::<String>::new(),
        "a user written now is not put into GSI1"
    );
}

/// The ids in `GSI1`, the users index of before.
async fn in_the_index_of_before(store: &DynamoStore) -> Vec<String> {
    let out = store
        .client()
        .query()
        .table_name(store.table())
        .index_name(shared::repo::keys::GSI1)
        .key_condition_expression("#pk = :pk")
        .expression_attribute_names("#pk", shared::repo::keys::GSI1_PK)
        .expression_attribute_values(":pk", AttributeValue::S(shared::repo::keys::USERS_INDEX_PK.into()))
        .send()
        .await
        .unwrap();
    out.items().iter().map(|item| item["GSI1SK"].as_s().unwrap().clone()).collect()
}

#[tokio::test]
async fn a_page_skips_ids_whose_user_is_gone_and_is_still_full() {
    let store = api_tests::dynamo::store().await;
    Migrator::new(store.clone(), Arc::new(SystemClock), migrate::all()).run().await.unwrap();
    let mut ids = Vec::new();
    for n in 0..6 {
        if n % 2 == 0 {
            // An id the index lists but whose user the table no longer holds (the index lags a
            // deletion): a record in GSI2 that is not a user.
            let ghost = Uuid::now_v7();
            store
                .client()
                .put_item()
                .table_name(store.table())
                .item("PK", AttributeValue::S(format!("USER#{ghost}")))
                .item("SK", AttributeValue::S("GHOST".into()))
                .item("GSI2PK", AttributeValue::S(users_shard_pk(ghost)))
                .item("GSI2SK", AttributeValue::S(ghost.to_string()))
                .send()
                .await
                .unwrap();
        }
        let u = user();
        assert_eq!(store.create_user(&u).await.unwrap(), CreateUser::Created);
        ids.push(u.id);
    }
    let fresh = DynamoStore::new(store.client().clone(), store.table());
    for limit in [1, 2, 5, 6, 7] {
        assert_eq!(listed(&fresh, limit).await, ids, "limit {limit}");
    }
}

#[tokio::test]
async fn the_users_index_migration_waits_for_the_index() {
    // A table without GSI2 (made before it existed): the migration refuses, names why, and the
    // listing keeps reading GSI1.
    let config = api_tests::dynamo::config();
    let client = api_tests::dynamo::client(&config).await;
    let key = |name: &str, kind| {
        aws_sdk_dynamodb::types::KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    let attribute = |name: &str| {
        aws_sdk_dynamodb::types::AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let gsi1 = aws_sdk_dynamodb::types::GlobalSecondaryIndex::builder()
        .index_name("GSI1")
        .key_schema(key("GSI1PK", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("GSI1SK", aws_sdk_dynamodb::types::KeyType::Range))
        .projection(
            aws_sdk_dynamodb::types::Projection::builder()
                .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                .build(),
        )
        .build()
        .unwrap();
    client
        .create_table()
        .table_name(&config.table_name)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(key("PK", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("SK", aws_sdk_dynamodb::types::KeyType::Range))
        .attribute_definitions(attribute("PK"))
        .attribute_definitions(attribute("SK"))
        .attribute_definitions(attribute("GSI1PK"))
        .attribute_definitions(attribute("GSI1SK"))
        .global_secondary_indexes(gsi1)
        .send()
        .await
        .unwrap();
    let store = Arc::new(DynamoStore::new(client, config.table_name.clone()));
    let u = user();
    assert_eq!(store.create_user(&u).await.unwrap(), CreateUser::Created);
    let refused =
        Migrator::new(store.clone(), Arc::new(SystemClock), migrate::all()).run().await.unwrap_err();
    assert!(refused.to_string().contains("GSI2 is missing or still being built"), "{refused}");
    assert_eq!(listed(&store, 10).await, [u.id]);
}
