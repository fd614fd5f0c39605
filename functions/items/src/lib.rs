//! The `items` function: a user's own items, with optimistic concurrency (`ETag` = version,
//! `If-Match` → 412) and no existence leak: another user's item is a 404, unless the caller is
//! a superuser. The behaviour every user-owned resource shares is `shared::web::resources`;
//! what is an item's own is in [`model`].

pub mod model;

use axum::Router;
use axum::extract::State;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use shared::openapi::{
    KeyInProgress, KeyedJsonBodyErrors, NotFound, PreconditionFailed, ProtectedErrors, ValidationFailed,
};
use shared::web::idempotency::{self, IdempotencyKeyHeader};
use shared::web::resources::{self, respond};
use shared::web::{CurrentUser, IfMatch, Json, ResourceQuery, TokenSubject};
use shared::{ApiError, ApiResult, AppState};

pub use model::{Item, ItemChanges, ItemCreate, ItemId, ItemPage, ItemRecord, ItemResponse, ItemUpdate};

/// This function's part of the OpenAPI document (the catalog joins the parts).
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(list_items, create_item, read_item, update_item, delete_item),
    tags((name = "items", description = "The caller's items, with optimistic concurrency (ETag / If-Match)"))
)]
pub struct Api;

/// This function's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <Api as utoipa::OpenApi>::openapi()
}

/// The sample event (`events/get-v1-items-item_id.json`) that stands for this function where one request
/// must: the bench's cold starts.
pub const PROBE: &str = "get-v1-items-item_id";

pub fn router(state: AppState) -> Router {
    // A retried create or update with the same `Idempotency-Key` does its work once.
    let keyed = || axum::middleware::from_fn_with_state(state.clone(), idempotency::keyed);
    let routes = Router::new()
        .route("/v1/items", get(list_items).post(create_item.layer(keyed())))
        .route("/v1/items/{item_id}", get(read_item).patch(update_item.layer(keyed())).delete(delete_item));
    shared::web::finish(routes, state)
}

#[utoipa::path(
    post, path = "/v1/items", tag = "items", operation_id = "create_item",
    security(("OAuth2PasswordBearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = ItemCreate, example = json!({"title": "Buy milk", "description": "Two litres"})),
    responses(
        (status = 201, description = "Created", body = ItemResponse, headers(
            ("Location" = String, description = "The new item's URL"),
            ("ETag" = String, description = "The item's version in quotes: `\"1\"`"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the kept answer to an earlier request with the same `Idempotency-Key`"))),
        ProtectedErrors,
        (status = 409, response = KeyInProgress),
        KeyedJsonBodyErrors,
    )
)]
async fn create_item(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    Json(body): Json<ItemCreate>,
) -> ApiResult<Response> {
    resources::create::<Item, ItemResponse>(&state, &me, Item::from(body)).await
}

#[utoipa::path(
    get, path = "/v1/items", tag = "items", operation_id = "list_items",
    security(("OAuth2PasswordBearer" = [])),
    params(ResourceQuery<Item>),
    responses(
        (status = 200, description = "The caller's items, newest first", body = ItemPage),
        ProtectedErrors,
        (status = 422, response = ValidationFailed),
    )
)]
async fn list_items(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    query: ResourceQuery<Item>,
) -> ApiResult<axum::Json<ItemPage>> {
    Ok(axum::Json(resources::list::<Item, ItemResponse>(&state, &me, &query).await?))
}

#[utoipa::path(
    get, path = "/v1/items/{item_id}", tag = "items", operation_id = "read_item",
    security(("OAuth2PasswordBearer" = [])),
    params(ItemId),
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
    let item = resources::read::<Item>(&state, me, item_id.map(|ItemId(id)| id)).await?;
    Ok(respond::<Item, ItemResponse>(StatusCode::OK, &item))
}

#[utoipa::path(
    patch, path = "/v1/items/{item_id}", tag = "items", operation_id = "update_item",
    security(("OAuth2PasswordBearer" = [])),
    params(ItemId, IfMatch, IdempotencyKeyHeader),
    request_body(content = ItemUpdate, example = json!({"title": "Groceries for the week"})),
    responses(
        (status = 200, description = "The item, updated", body = ItemResponse, headers(("ETag" = String, description = "The item's version in quotes: `\"3\"`"),
            ("Idempotent-Replayed" = String, description = "`true` when this is the kept answer to an earlier request with the same `Idempotency-Key`"))),
        ProtectedErrors,
        (status = 404, response = NotFound),
        (status = 409, response = KeyInProgress),
        (status = 412, response = PreconditionFailed),
        KeyedJsonBodyErrors,
    )
)]
async fn update_item(
    State(state): State<AppState>,
    CurrentUser(me): CurrentUser,
    ItemId(id): ItemId,
    if_match: IfMatch,
    Json(body): Json<ItemUpdate>,
) -> ApiResult<Response> {
    resources::update::<Item, ItemResponse>(&state, &me, id, &if_match, &ItemChanges::from(body)).await
}

#[utoipa::path(
    delete, path = "/v1/items/{item_id}", tag = "items", operation_id = "delete_item",
    security(("OAuth2PasswordBearer" = [])),
    params(ItemId, IfMatch),
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
    resources::delete::<Item>(&state, &me, id, &if_match).await?;
    Ok(StatusCode::NO_CONTENT)
}
