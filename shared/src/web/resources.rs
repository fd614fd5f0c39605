//! What every user-owned resource's handlers share: optimistic concurrency (`ETag` = version,
//! `If-Match` → 412), no existence leak (another user's record is a 404, unless the caller is a
//! superuser, who finds it by id alone), and a listing of the caller's own records (or, for a
//! superuser, anyone's). A resource's handlers are each a line or two over these.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use uuid::Uuid;

use super::auth::current_user;
use super::extract::IfMatch;
use super::idempotency::{self, Pending};
use super::paging::{Page, ResourceQuery, page};
use crate::auth::jwt::Subject;
use crate::error::{ApiError, ApiResult};
use crate::repo::{Conditional, Record, Resource, ResourceRepo, UserRecord};
use crate::state::AppState;

/// A resource as the API serves it.
pub trait Served: Resource {
    /// Its collection's path (`/v1/items`): a new record's `Location` is `<PATH>/<id>`.
    const PATH: &'static str;
    /// The 404's detail (`Item not found`).
    const NOT_FOUND: &'static str;
}

/// The strong ETag of a record's version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// `status` with the record as `T`, and its `ETag`.
pub fn respond<R: Served, T: Serialize + for<'a> From<&'a Record<R>>>(
    status: StatusCode,
    record: &Record<R>,
) -> Response {
    let mut response = (status, axum::Json(T::from(record))).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(record.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// 201 with the new record as `T`, its `Location` and its `ETag`.
pub fn created<R: Served, T: Serialize + for<'a> From<&'a Record<R>>>(record: &Record<R>) -> Response {
    let mut response = respond::<R, T>(StatusCode::CREATED, record);
    if let Ok(location) = HeaderValue::from_str(&format!("{}/{}", R::PATH, record.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Creates the caller's new record of `fields`, at version 1, and answers 201 with it as `T`
/// ([`created`]). A request with an idempotency key keeps that answer in the same write.
pub async fn create<R: Served, T: Serialize + for<'a> From<&'a Record<R>>>(
    state: &AppState,
    me: &UserRecord,
    fields: R,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let record = Record {
        id: state.ids.new_id(now),
        owner_id: me.id,
        fields,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let pending = Pending::current();
    let (response, completion) = idempotency::answer(pending.as_ref(), created::<R, T>(&record)).await?;
    if !state.repos.resources::<R>().create(&record, completion.as_ref()).await? {
        // The caller was deleted while this request ran.
        return Err(ApiError::InvalidToken);
    }
    idempotency::answer_kept(pending.as_ref(), completion.as_ref());
    Ok(response)
}

/// A page of the caller's records, newest first; a superuser may name another `owner_id`.
pub async fn list<R: Served, T: for<'a> From<&'a Record<R>>>(
    state: &AppState,
    me: &UserRecord,
    query: &ResourceQuery<R>,
) -> ApiResult<Page<T>> {
    let owner = query.owner_id.unwrap_or(me.id);
    if owner != me.id && !me.is_superuser {
        return Err(ApiError::Forbidden("The user doesn't have enough privileges".into()));
    }
    // Bound to the owner: a cursor from another owner's listing is refused.
    let listing = format!("{}:{owner}", R::LISTING);
    let records = state.repos.resources::<R>();
    // A deleted owner has nothing, though the worker may not have purged it all yet (the
    // cursor is still checked as for any listing).
    if owner != me.id && state.repos.users.get_user(owner).await?.is_none() {
        return page(&state.cursors, &listing, &query.page, |_, _| async {
            Ok(crate::repo::Listing { records: Vec::<Record<R>>::new(), more: false })
        })
        .await;
    }
    page(&state.cursors, &listing, &query.page, |limit, before| records.list(owner, limit, before)).await
}

/// The record `id` for the token's subject `me`. Who is asking is settled before what they
/// asked for (401/403 before a malformed id's 422); the caller and the record under the caller
/// are read at once, one DynamoDB round trip of latency instead of two.
pub async fn read<R: Served>(
    state: &AppState,
    subject: Subject,
    id: Result<Uuid, ApiError>,
) -> ApiResult<Record<R>> {
    let records = state.repos.resources::<R>();
    let me = subject.user_id;
    let id = match id {
        Ok(id) => id,
        Err(invalid) => {
            current_user(&subject, state.repos.users.get_user(me).await)?;
            return Err(invalid);
        }
    };
    let (user, own) = tokio::join!(state.repos.users.get_user(me), records.get(me, id));
    let me = current_user(&subject, user)?;
    if let Some(record) = own? {
        return Ok(record);
    }
    if !me.is_superuser {
        return Err(ApiError::NotFound(R::NOT_FOUND));
    }
    let owner = records.find_owner(id).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
    // A deleted owner's records are gone, though the worker may not have purged them yet.
    let (record, owner) = tokio::join!(records.get(owner, id), state.repos.users.get_user(owner));
    match (record?, owner?) {
        (Some(record), Some(_)) => Ok(record),
        _ => Err(ApiError::NotFound(R::NOT_FOUND)),
    }
}

/// The owner under whom to look for a record: the caller, or for a superuser whoever owns it.
async fn owner_of<R: Served>(state: &AppState, me: &UserRecord, id: Uuid) -> ApiResult<Uuid> {
    let records = state.repos.resources::<R>();
    if !me.is_superuser || records.get(me.id, id).await?.is_some() {
        return Ok(me.id);
    }
    let owner = records.find_owner(id).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
    // A deleted owner's records are not changed: they are the worker's to purge.
    state.repos.users.get_user(owner).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
    Ok(owner)
}

/// The version a conditional write must find: `None` for no `If-Match` or `*` (the write is
/// still conditional on the record existing), or the version whose ETag the client named.
async fn expected_version<R: Served>(
    state: &AppState,
    owner: Uuid,
    id: Uuid,
    if_match: &IfMatch,
) -> ApiResult<Option<u64>> {
    if matches!(if_match, IfMatch::Absent | IfMatch::Any) {
        return Ok(None);
    }
    let current =
        state.repos.resources::<R>().get(owner, id).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
    if !if_match.matches(&etag(current.version)) {
        return Err(ApiError::PreconditionFailed);
    }
    Ok(Some(current.version))
}

fn conditional<R: Served, T>(outcome: Conditional<T>) -> ApiResult<T> {
    match outcome {
        Conditional::Done(v) => Ok(v),
        Conditional::NotFound => Err(ApiError::NotFound(R::NOT_FOUND)),
        Conditional::VersionMismatch => Err(ApiError::PreconditionFailed),
    }
}

/// Applies `changes` to the record `id`, bumping its version by one, and answers 200 with it as
/// `T` ([`respond`]); an empty change set changes nothing, the version included (the
/// precondition still applies). A request with an idempotency key keeps that answer in the same
/// write ([`update_keyed`]).
pub async fn update<R: Served, T: Serialize + for<'a> From<&'a Record<R>>>(
    state: &AppState,
    me: &UserRecord,
    id: Uuid,
    if_match: &IfMatch,
    changes: &R::Changes,
) -> ApiResult<Response> {
    let records = state.repos.resources::<R>();
    let owner = owner_of::<R>(state, me, id).await?;
    let empty = serde_json::to_value(changes).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty()));
    if empty {
        let current = records.get(owner, id).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
        if !if_match.matches(&etag(current.version)) {
            return Err(ApiError::PreconditionFailed);
        }
        return Ok(respond::<R, T>(StatusCode::OK, &current));
    }
    if let Some(pending) = Pending::current() {
        return update_keyed::<R, T>(state, owner, id, if_match, changes, &pending).await;
    }
    let expected = expected_version::<R>(state, owner, id, if_match).await?;
    let record = conditional::<R, _>(records.update(owner, id, changes, expected, state.clock.now()).await?)?;
    Ok(respond::<R, T>(StatusCode::OK, &record))
}

/// How many times a keyed update without a precondition reads the record again when another
/// write changed it between its read and its write.
const KEYED_UPDATE_ATTEMPTS: usize = 3;

/// An update with an idempotency key: the record is read, and the change applied only while it
/// is still at the version read, so its answer is known before the write ([`ResourceRepo::after`],
/// what every store applies) and is kept in the same transaction. Without `If-Match`, a record that another write changed meanwhile is
/// read again, as the unkeyed update (one atomic `ADD`) would apply the changes over it.
async fn update_keyed<R: Served, T: Serialize + for<'a> From<&'a Record<R>>>(
    state: &AppState,
    owner: Uuid,
    id: Uuid,
    if_match: &IfMatch,
    changes: &R::Changes,
    pending: &Pending,
) -> ApiResult<Response> {
    let records = state.repos.resources::<R>();
    for _ in 0..KEYED_UPDATE_ATTEMPTS {
        let current = records.get(owner, id).await?.ok_or(ApiError::NotFound(R::NOT_FOUND))?;
        if !if_match.matches(&etag(current.version)) {
            return Err(ApiError::PreconditionFailed);
        }
        let now = state.clock.now();
        let next = ResourceRepo::<R>::after(&current, changes, now)?;
        let (response, completion) = pending.completion(respond::<R, T>(StatusCode::OK, &next)).await?;
        match records.update_at(owner, id, changes, current.version, now, completion.as_ref()).await? {
            Conditional::Done(()) => {
                idempotency::answer_kept(Some(pending), completion.as_ref());
                return Ok(response);
            }
            Conditional::NotFound => return Err(ApiError::NotFound(R::NOT_FOUND)),
            Conditional::VersionMismatch if matches!(if_match, IfMatch::Absent | IfMatch::Any) => {}
            Conditional::VersionMismatch => return Err(ApiError::PreconditionFailed),
        }
    }
    // Never a kept answer: a 503 frees the key, and the retry reads the record afresh.
    Err(ApiError::Unavailable(format!("{} kept changing while a keyed update ran", R::KIND.name)))
}

/// Deletes the record `id`, if `If-Match` allows.
pub async fn delete<R: Served>(
    state: &AppState,
    me: &UserRecord,
    id: Uuid,
    if_match: &IfMatch,
) -> ApiResult<()> {
    let owner = owner_of::<R>(state, me, id).await?;
    let expected = expected_version::<R>(state, owner, id, if_match).await?;
    conditional::<R, _>(state.repos.resources::<R>().delete(owner, id, expected).await?)
}
