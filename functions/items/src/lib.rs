//! The `items` function: a user's own items, with optimistic concurrency (`ETag` = version,
//! `If-Match` → 412) and no existence leak: another user's item is a 404, unless the caller is
//! a superuser.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shared::auth::{CurrentUser, TokenSubject, current_user};
use shared::openapi::{
    Forbidden, IfMatchHeader, ItemsParams, JsonBodyErrors, NotFound, PayloadTooLarge, PreconditionFailed,
    ProtectedErrors, Unauthorized, Unavailable, UnsupportedMediaType, ValidationFailed,
};
use shared::repo::{Conditional, ItemChanges, ItemRecord, UserRecord};
use shared::schemas::{ItemCreate, ItemResponse, ItemUpdate, Page};
use shared::validate::{Description, Patch, Title};
use shared::web::extract::ItemId;
use shared::web::{IfMatch, ItemsQuery, Json};
use shared::{ApiError, ApiResult, AppState};
use uuid::Uuid;

/// This function's part of the OpenAPI document (`functions/docs` joins the parts).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(list_items, create_item, read_item, update_item, delete_item),
    components(responses(
        Unauthorized,
        Forbidden,
        NotFound,
        PreconditionFailed,
        PayloadTooLarge,
        UnsupportedMediaType,
        ValidationFailed,
        Unavailable
    ))
)]
pub struct Api;

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/items", get(list_items).post(create_item))
        .route("/v1/items/{item_id}", get(read_item).patch(update_item).delete(delete_item));
    shared::web::finish(routes, state)
}

const ITEM_NOT_FOUND: &str = "Item not found";

/// The strong ETag of an item version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

fn item_response(status: StatusCode, item: &ItemRecord) -> Response {
    let mut response = (status, axum::Json(ItemResponse::from(item))).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag(item.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

#[utoipa::path(
    post, path = "/v1/items", tag = "items", operation_id = "create_item",
    security(("OAuth2PasswordBearer" = [])),
    request_body = ItemCreate,
    responses(
        (status = 201, description = "Created", body = ItemResponse, headers(
            ("Location" = String, description = "The new item's URL"),
            ("ETag" = String, description = "The item's version in quotes: `\"1\"`"))),
        ProtectedErrors,
        JsonBodyErrors,
    )
)]
async fn create_item(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Json(body): Json<ItemCreate>,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let item = ItemRecord {
        id: state.ids.new_id(now),
        owner_id: me.id,
        title: body.title.into_inner(),
        description: body.description.map(Description::into_inner),
        version: 1,
        created_at: now,
        updated_at: now,
    };
    if !state.repos.items.create_item(&item).await? {
        // The caller was deleted while this request ran.
        return Err(ApiError::InvalidToken);
    }
    let mut response = item_response(StatusCode::CREATED, &item);
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/items/{}", item.id)) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[utoipa::path(
    get, path = "/v1/items", tag = "items", operation_id = "list_items",
    security(("OAuth2PasswordBearer" = [])),
    params(ItemsParams),
    responses(
        (status = 200, description = "The caller's items, newest first", body = Page<ItemResponse>),
        ProtectedErrors,
        (status = 422, response = ValidationFailed),
    )
)]
async fn list_items(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ItemsQuery { page: query, owner_id }: ItemsQuery,
) -> ApiResult<axum::Json<Page<ItemResponse>>> {
    let owner = owner_id.unwrap_or(me.id);
    if owner != me.id && !me.is_superuser {
        return Err(ApiError::Forbidden("The user doesn't have enough privileges".into()));
    }
    // Bound to the owner: a cursor from another owner's listing is refused.
    let listing_name = format!("items:{owner}");
    let before = query.cursor.as_deref().map(|c| state.cursors.decode(&listing_name, c)).transpose()?;
    let listing = state.repos.items.list_items(owner, query.limit, before).await?;
    let next_cursor = listing
        .more
        .then(|| listing.records.last().map(|i| state.cursors.encode(&listing_name, i.id)))
        .flatten();
    Ok(axum::Json(Page { data: listing.records.iter().map(ItemResponse::from).collect(), next_cursor }))
}

/// The owner under whom to look for an item: the caller, or for a superuser whoever owns it.
async fn owner_of(state: &AppState, me: &UserRecord, id: Uuid) -> ApiResult<Uuid> {
    if !me.is_superuser || state.repos.items.get_item(me.id, id).await?.is_some() {
        return Ok(me.id);
    }
    state.repos.items.find_item_owner(id).await?.ok_or(ApiError::NotFound(ITEM_NOT_FOUND))
}

/// The item, given what a read under the caller found: the caller's own, or for a superuser
/// whoever's it is; anything else a 404.
async fn found(
    state: &AppState,
    me: &UserRecord,
    id: Uuid,
    own: Option<ItemRecord>,
) -> ApiResult<ItemRecord> {
    if let Some(item) = own {
        return Ok(item);
    }
    if !me.is_superuser {
        return Err(ApiError::NotFound(ITEM_NOT_FOUND));
    }
    let owner = state.repos.items.find_item_owner(id).await?.ok_or(ApiError::NotFound(ITEM_NOT_FOUND))?;
    state.repos.items.get_item(owner, id).await?.ok_or(ApiError::NotFound(ITEM_NOT_FOUND))
}

#[utoipa::path(
    get, path = "/v1/items/{item_id}", tag = "items", operation_id = "read_item",
    security(("OAuth2PasswordBearer" = [])),
    params(("item_id" = Uuid, Path, description = "The item's id")),
    responses(
        (status = 200, description = "The item", body = ItemResponse, headers(("ETag" = String, description = "The item's version in quotes: `\"3\"`"))),
        ProtectedErrors,
        (status = 404, response = NotFound),
        (status = 422, response = ValidationFailed),
    )
)]
async fn read_item(
    State(state): State<AppState>,
    TokenSubject(me): TokenSubject,
    item_id: Result<ItemId, ApiError>,
) -> ApiResult<Response> {
    let id = match item_id {
        Ok(ItemId(id)) => id,
        Err(invalid) => {
            // Who is asking is settled before what they asked for (401/403 before 422).
            current_user(state.repos.users.get_user(me).await)?;
            return Err(invalid);
        }
    };
    // The caller and the item under the caller are read at once: one DynamoDB round trip of
    // latency instead of two. The caller's checks still decide first.
    let (user, own) = tokio::join!(state.repos.users.get_user(me), state.repos.items.get_item(me, id));
    let me = current_user(user)?;
    Ok(item_response(StatusCode::OK, &found(&state, &me, id, own?).await?))
}

/// The version a conditional write must find: `None` for no `If-Match` or `*` (the write is
/// still conditional on the item existing), or the version whose ETag the client named.
async fn expected_version(
    state: &AppState,
    owner: Uuid,
    id: Uuid,
    if_match: &IfMatch,
) -> ApiResult<Option<u64>> {
    if matches!(if_match, IfMatch::Absent | IfMatch::Any) {
        return Ok(None);
    }
    let current = state.repos.items.get_item(owner, id).await?.ok_or(ApiError::NotFound(ITEM_NOT_FOUND))?;
    if !if_match.matches(&etag(current.version)) {
        return Err(ApiError::PreconditionFailed);
    }
    Ok(Some(current.version))
}

fn conditional<T>(outcome: Conditional<T>) -> ApiResult<T> {
    match outcome {
        Conditional::Done(v) => Ok(v),
        Conditional::NotFound => Err(ApiError::NotFound(ITEM_NOT_FOUND)),
        Conditional::VersionMismatch => Err(ApiError::PreconditionFailed),
    }
}

#[utoipa::path(
    patch, path = "/v1/items/{item_id}", tag = "items", operation_id = "update_item",
    security(("OAuth2PasswordBearer" = [])),
    params(("item_id" = Uuid, Path, description = "The item's id"), IfMatchHeader),
    request_body = ItemUpdate,
    responses(
        (status = 200, description = "The item, updated", body = ItemResponse, headers(("ETag" = String, description = "The item's version in quotes: `\"3\"`"))),
        ProtectedErrors,
        (status = 404, response = NotFound),
        (status = 412, response = PreconditionFailed),
        JsonBodyErrors,
    )
)]
async fn update_item(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ItemId(id): ItemId,
    if_match: IfMatch,
    Json(body): Json<ItemUpdate>,
) -> ApiResult<Response> {
    let owner = owner_of(&state, &me, id).await?;
    if body.title.is_absent() && body.description.is_absent() {
        // `{}` changes nothing, so the version stays; the precondition still applies.
        let current =
            state.repos.items.get_item(owner, id).await?.ok_or(ApiError::NotFound(ITEM_NOT_FOUND))?;
        if !if_match.matches(&etag(current.version)) {
            return Err(ApiError::PreconditionFailed);
        }
        return Ok(item_response(StatusCode::OK, &current));
    }
    let expected = expected_version(&state, owner, id, &if_match).await?;
    let changes = ItemChanges {
        title: body.title.into_option().map(Title::into_inner),
        description: match body.description {
            Patch::Absent => Patch::Absent,
            Patch::Set(d) => Patch::Set(d.map(Description::into_inner)),
        },
    };
    let outcome = state.repos.items.update_item(owner, id, &changes, expected, state.clock.now()).await?;
    Ok(item_response(StatusCode::OK, &conditional(outcome)?))
}

#[utoipa::path(
    delete, path = "/v1/items/{item_id}", tag = "items", operation_id = "delete_item",
    security(("OAuth2PasswordBearer" = [])),
    params(("item_id" = Uuid, Path, description = "The item's id"), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted"),
        ProtectedErrors,
        (status = 404, response = NotFound),
        (status = 412, response = PreconditionFailed),
        (status = 422, response = ValidationFailed),
    )
)]
async fn delete_item(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ItemId(id): ItemId,
    if_match: IfMatch,
) -> ApiResult<StatusCode> {
    let owner = owner_of(&state, &me, id).await?;
    let expected = expected_version(&state, owner, id, &if_match).await?;
    conditional(state.repos.items.delete_item(owner, id, expected).await?)?;
    Ok(StatusCode::NO_CONTENT)
}
