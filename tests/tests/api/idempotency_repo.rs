//! The idempotency records' repository contract, the same on the memory store and DynamoDB Local:
//! one conditional write takes a key and, refused, returns the record it found; a lock that
//! passed, or a record that expired, is taken over; an answer is kept only by the request that
//! holds the lock; a key belongs to its caller, method and concrete path; and, on DynamoDB Local,
//! of 20 requests taking one key at once exactly one gets it.

// Test bodies: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use api_tests::Backend;
use chrono::{DateTime, Duration, Utc};
use shared::repo::{Begin, Caller, IdempotencyKey, IdempotencyRepo, IdempotencyState, KeptAnswer};
use uuid::Uuid;

async fn store(backend: Backend) -> Arc<dyn IdempotencyRepo> {
    backend.repos().await.idempotency
}

on_both_stores!(
    a_free_key_is_taken_and_a_taken_one_returns_its_record,
    an_answer_is_kept_only_by_the_request_that_holds_the_lock,
    a_lock_that_passed_or_a_record_that_expired_is_taken_over,
    a_released_key_is_free_and_only_its_holder_releases_it,
    a_key_belongs_to_its_caller_method_and_path,
);

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap()
}

fn key(caller: Caller) -> IdempotencyKey {
    IdempotencyKey {
        caller,
        method: "POST".into(),
        path: "/v1/items".into(),
        key: format!("key-{}", Uuid::new_v4()),
    }
}

fn answer() -> KeptAnswer {
    KeptAnswer {
        status: 201,
        location: Some("/v1/items/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into()),
        etag: Some("\"1\"".into()),
        content_type: Some("application/json".into()),
        body: br#"{"title":"once"}"#.to_vec(),
    }
}

async fn a_free_key_is_taken_and_a_taken_one_returns_its_record(backend: Backend) {
    let s = store(backend).await;
    let (k, at) = (key(Caller::User(Uuid::now_v7())), now());
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    assert_eq!(s.begin(&k, "fp-1", lock, expiry, at).await.unwrap(), Begin::Started);
    let Begin::Existing(found) = s.begin(&k, "fp-2", lock, expiry, at).await.unwrap() else {
        panic!("taken")
    };
    assert_eq!(found.fingerprint, "fp-1", "the first request's");
    assert_eq!(found.state, IdempotencyState::InProgress { locked_until: lock });
    assert_eq!(found.expires_at, expiry);
}

async fn an_answer_is_kept_only_by_the_request_that_holds_the_lock(backend: Backend) {
    let s = store(backend).await;
    let (k, at) = (key(Caller::User(Uuid::now_v7())), now());
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    s.begin(&k, "fp", lock, expiry, at).await.unwrap();
    let other_lock = lock + Duration::seconds(1);
    assert!(!s.complete(&k, other_lock, &answer()).await.unwrap(), "not its lock");
    assert!(s.complete(&k, lock, &answer()).await.unwrap());
    assert!(!s.complete(&k, lock, &answer()).await.unwrap(), "kept once");
    let Begin::Existing(found) = s.begin(&k, "fp", lock, expiry, at).await.unwrap() else { panic!("kept") };
    assert_eq!(found.state, IdempotencyState::Complete(answer()), "status, headers and body, whole");
    // A completed record is not taken over when its lock would have passed: only by expiry.
    let later = lock + Duration::minutes(5);
    assert!(matches!(
        s.begin(&k, "fp", later + Duration::seconds(30), expiry, later).await.unwrap(),
        Begin::Existing(_)
    ));
    let no_headers =
        KeptAnswer { location: None, etag: None, content_type: None, body: Vec::new(), status: 422 };
    let k2 = key(Caller::User(Uuid::now_v7()));
    s.begin(&k2, "fp", lock, expiry, at).await.unwrap();
    assert!(s.complete(&k2, lock, &no_headers).await.unwrap());
    let Begin::Existing(found) = s.begin(&k2, "fp", lock, expiry, at).await.unwrap() else { panic!("kept") };
    assert_eq!(found.state, IdempotencyState::Complete(no_headers));
}

async fn a_lock_that_passed_or_a_record_that_expired_is_taken_over(backend: Backend) {
    let s = store(backend).await;
    let (k, at) = (key(Caller::User(Uuid::now_v7())), now());
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    s.begin(&k, "fp-died", lock, expiry, at).await.unwrap();
    // Its deadline passed (a Lambda timeout): the key is free again.
    let later = lock + Duration::microseconds(1);
    let new_lock = later + Duration::seconds(30);
    assert_eq!(s.begin(&k, "fp-retry", new_lock, expiry, later).await.unwrap(), Begin::Started);
    assert!(!s.complete(&k, lock, &answer()).await.unwrap(), "the dead request keeps nothing");
    assert!(s.complete(&k, new_lock, &answer()).await.unwrap());
    // A day on, even a kept answer has expired (DynamoDB's TTL may not have removed it yet).
    let day = expiry + Duration::microseconds(1);
    let next = day + Duration::hours(24);
    assert_eq!(s.begin(&k, "fp-new", day + Duration::seconds(30), next, day).await.unwrap(), Begin::Started);
}

async fn a_released_key_is_free_and_only_its_holder_releases_it(backend: Backend) {
    let s = store(backend).await;
    let (k, at) = (key(Caller::Address("198.51.100.7".into())), now());
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    s.begin(&k, "fp", lock, expiry, at).await.unwrap();
    s.release(&k, lock + Duration::seconds(1)).await.unwrap();
    assert!(
        matches!(s.begin(&k, "fp", lock, expiry, at).await.unwrap(), Begin::Existing(_)),
        "not its holder"
    );
    s.release(&k, lock).await.unwrap();
    assert_eq!(s.begin(&k, "fp", lock, expiry, at).await.unwrap(), Begin::Started, "freed");
    // A kept answer is never released.
    assert!(s.complete(&k, lock, &answer()).await.unwrap());
    s.release(&k, lock).await.unwrap();
    assert!(matches!(s.begin(&k, "fp", lock, expiry, at).await.unwrap(), Begin::Existing(_)));
}

async fn a_key_belongs_to_its_caller_method_and_path(backend: Backend) {
    let s = store(backend).await;
    let at = now();
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    let k = key(Caller::User(Uuid::now_v7()));
    s.begin(&k, "fp", lock, expiry, at).await.unwrap();
    let others = [
        IdempotencyKey { caller: Caller::User(Uuid::now_v7()), ..k.clone() },
        IdempotencyKey { caller: Caller::Address("198.51.100.7".into()), ..k.clone() },
        IdempotencyKey { method: "PATCH".into(), ..k.clone() },
        IdempotencyKey { path: "/v1/items/other".into(), ..k.clone() },
    ];
    for other in others {
        assert_eq!(s.begin(&other, "fp", lock, expiry, at).await.unwrap(), Begin::Started, "{other:?}");
    }
}

/// 20 requests taking one key at once: exactly one holds it, and every other is told of it.
#[cfg(feature = "dynamodb")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_requests_taking_one_key_at_once_exactly_one_gets_it() {
    let s = store(Backend::DynamoDb).await;
    let (k, at) = (key(Caller::User(Uuid::now_v7())), now());
    let (lock, expiry) = (at + Duration::seconds(30), at + Duration::hours(24));
    let mut tasks = Vec::new();
    for n in 0..20 {
        let (s, k) = (s.clone(), k.clone());
        tasks.push(tokio::spawn(
            async move { s.begin(&k, &format!("fp-{n}"), lock, expiry, at).await.unwrap() },
        ));
    }
    let mut started = 0;
    for task in tasks {
        match task.await.unwrap() {
            Begin::Started => started += 1,
            Begin::Existing(record) => assert!(record.fingerprint.starts_with("fp-")),
        }
    }
    assert_eq!(started, 1);
}
