//! Every user-owned resource of the API behaves as one: found in the document (a collection
//! that lists and creates, and an item path that reads, changes and deletes with `If-Match`),
//! each is exercised here with its own examples, so a resource added to the API is held to the
//! contract with no test of its own: 201 with `Location` and `ETag`, another user's record a
//! 404 that changes nothing, a superuser's reach, newest first, `If-Match` and 412, `{}` changing
//! nothing, and the record gone with its owner.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use api_tests::{TestApp, config, fast_hasher};
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use shared::AppState;
use shared::repo::Repos;
use shared::repo::memory::MemoryStore;

/// A resource of the document: its collection, and the examples of its create and update
/// bodies.
struct Resource {
    collection: String,
    create: Value,
    update: Value,
}

fn resources() -> Vec<Resource> {
    let doc = serde_json::to_value(catalog::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let example = |op: &Value| op["requestBody"]["content"]["application/json"]["example"].clone();
    let mut found = Vec::new();
    for (path, ops) in paths {
        let Some((_, item_ops)) = paths.iter().find(|(p, _)| {
            p.strip_prefix(path.as_str())
                .is_some_and(|rest| rest.starts_with("/{") && rest.matches('/').count() == 1)
        }) else {
            continue;
        };
        let if_match = |method: &str| {
            item_ops[method]["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "If-Match"))
        };
        if ops.get("post").is_some() && ops.get("get").is_some() && if_match("patch") && if_match("delete") {
            found.push(Resource {
                collection: path.clone(),
                create: example(&ops["post"]),
                update: example(&item_ops["patch"]),
            });
        }
    }
    found
}

async fn with_if_match(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    tag: &str,
    body: Option<&Value>,
) -> StatusCode {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::IF_MATCH, tag)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .unwrap();
    app.send(request).await.status
}

#[tokio::test]
async fn every_resource_of_the_document_keeps_the_resource_contract() {
    let resources = resources();
    assert!(resources.iter().any(|r| r.collection == "/v1/items"), "items are found as a resource");
    // Every resource kind has its collection in the document, with the shape found above: one
    // that forgot its listing or `If-Match` is not silently left out of this test.
    let kinds = shared::repo::keys::OWNED.iter().filter(|k| k.resource).count();
    assert_eq!(resources.len(), kinds, "resources of the document vs resource kinds of keys::OWNED");
    let mut prefixes = std::collections::BTreeMap::new();
    for r in &resources {
        let store = Arc::new(MemoryStore::new());
        let app = TestApp::from_state(
            AppState::new(config(), Repos::from_store(store.clone())).with_hasher(fast_hasher()),
        );
        let (owner, other, admin) = (app.user().await, app.user().await, app.superuser().await);
        let what = &r.collection;

        let created = app.json(Method::POST, &r.collection, Some(&owner.access), r.create.clone()).await;
        assert_eq!(created.status, StatusCode::CREATED, "{what}: {}", created.text());
        let record = created.json();
        let id = record["id"].as_str().unwrap().to_owned();
        let path = format!("{}/{id}", r.collection);
        assert_eq!(created.header("location"), Some(path.as_str()), "{what}");
        assert_eq!((created.header("etag"), record["version"].as_u64()), (Some("\"1\""), Some(1)), "{what}");
        assert_eq!(record["owner_id"], owner.id.to_string(), "{what}");
        assert_eq!(app.get(&path, &owner.access).await.json(), record, "{what}");
        // Its records are under a sort-key prefix of its own: two resources never share a kind.
        let (_, sk) = store.keys().into_iter().find(|(_, sk)| sk.ends_with(&id)).unwrap();
        let prefix = sk.trim_end_matches(&id).to_owned();
        if let Some(other) = prefixes.insert(prefix.clone(), what.clone()) {
            panic!("{what} and {other} both keep their records under {prefix}");
        }

        // Another user's record does not exist for the caller, and stays as it is.
        assert_eq!(app.get(&path, &other.access).await.status, StatusCode::NOT_FOUND, "{what}");
        let taken = app.json(Method::PATCH, &path, Some(&other.access), r.update.clone()).await;
        assert_eq!(taken.status, StatusCode::NOT_FOUND, "{what}");
        assert_eq!(app.delete(&path, &other.access).await.status, StatusCode::NOT_FOUND, "{what}");
        let listed = format!("{}?owner_id={}", r.collection, owner.id);
        assert_eq!(app.get(&listed, &other.access).await.status, StatusCode::FORBIDDEN, "{what}");
        assert_eq!(app.get(&path, &owner.access).await.json(), record, "{what}: changed by another user");
        // A superuser reaches it by id alone, and lists it.
        assert_eq!(app.get(&path, &admin.access).await.json(), record, "{what}");
        assert_eq!(app.get(&listed, &admin.access).await.json()["data"][0]["id"], json!(id), "{what}");

        // Newest first.
        let newer = app.json(Method::POST, &r.collection, Some(&owner.access), r.create.clone()).await.json();
        let page = app.get(&format!("{}?limit=1", r.collection), &owner.access).await.json();
        assert_eq!(page["data"][0]["id"], newer["id"], "{what}");
        assert!(page["next_cursor"].is_string(), "{what}");

        // If-Match: the current version changes it (by one), a stale one is a 412; `{}` changes nothing.
        let update = Some(&r.update);
        assert_eq!(
            with_if_match(&app, Method::PATCH, &path, &owner.access, "\"1\"", update).await,
            StatusCode::OK
        );
        let changed = app.get(&path, &owner.access).await;
        assert_eq!(
            (changed.header("etag"), changed.json()["version"].as_u64()),
            (Some("\"2\""), Some(2)),
            "{what}"
        );
        // What the update set is set, and every field it left out is as it was.
        for (field, value) in record.as_object().unwrap() {
            let expected = r.update.get(field).unwrap_or(value);
            if !["version", "updated_at"].contains(&field.as_str()) {
                assert_eq!(&changed.json()[field], expected, "{what}: {field} after the update");
            }
        }
        let stale = with_if_match(&app, Method::PATCH, &path, &owner.access, "\"1\"", update).await;
        assert_eq!(stale, StatusCode::PRECONDITION_FAILED, "{what}");
        let nothing = app.json(Method::PATCH, &path, Some(&owner.access), json!({})).await;
        assert_eq!((nothing.status, nothing.json()["version"].as_u64()), (StatusCode::OK, Some(2)), "{what}");
        let stale = with_if_match(&app, Method::DELETE, &path, &owner.access, "\"1\"", None).await;
        assert_eq!(stale, StatusCode::PRECONDITION_FAILED, "{what}");
        assert_eq!(
            with_if_match(&app, Method::DELETE, &path, &owner.access, "\"2\"", None).await,
            StatusCode::NO_CONTENT
        );
        assert_eq!(app.get(&path, &owner.access).await.status, StatusCode::NOT_FOUND, "{what}");

        // Gone with its owner: nothing of the owner's is left in the store.
        let newer_path = format!("{}/{}", r.collection, newer["id"].as_str().unwrap());
        assert_eq!(app.delete("/v1/users/me", &owner.access).await.status, StatusCode::NO_CONTENT);
        app.purge_now().await;
        assert_eq!(app.get(&newer_path, &admin.access).await.status, StatusCode::NOT_FOUND, "{what}");
        let left: Vec<(String, String)> = store
            .keys()
            .into_iter()
            .filter(|(pk, sk)| {
                pk.contains(&owner.id.to_string()) || sk.contains(&newer["id"].as_str().unwrap().to_string())
            })
            .collect();
        assert!(left.is_empty(), "{what}: left behind: {left:?}");
        api_tests::records::assert_every_record_declared(store.as_ref()).await;
    }
}
