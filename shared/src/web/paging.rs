//! Listings a page at a time: the query (`limit`, `cursor`, and for resources `owner_id`), the
//! [`Page`] that goes back, and [`page`], which turns a repository listing into a page with the
//! next cursor. Every listing builds its page here, in one place.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Required};
use utoipa::{IntoParams, PartialSchema, ToSchema};
use uuid::Uuid;

use crate::cursor::CursorCodec;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::repo::{Listing, Record, RepoResult, Resource, UserRecord};

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;

/// `limit` (1–100, default 20) and `cursor` of a listing.
#[derive(Debug, Clone)]
pub struct PageQuery {
    pub limit: usize,
    pub cursor: Option<String>,
}

/// A listing's query of the resource `R`: the page, and `owner_id` (superusers only).
pub struct ResourceQuery<R> {
    pub page: PageQuery,
    pub owner_id: Option<Uuid>,
    resource: PhantomData<fn() -> R>,
}

impl<R> std::fmt::Debug for ResourceQuery<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceQuery").field("page", &self.page).field("owner_id", &self.owner_id).finish()
    }
}

fn query_pairs(parts: &Parts) -> HashMap<String, String> {
    // As FastAPI does for scalar parameters, the last occurrence wins.
    serde_urlencoded::from_str::<Vec<(String, String)>>(parts.uri.query().unwrap_or(""))
        .unwrap_or_default()
        .into_iter()
        .collect()
}

/// Reads the page parameters, adding any errors to `errors` (FastAPI reports every query
/// parameter's error at once). Parameters a listing does not declare are ignored, as FastAPI does.
fn page_query(query: &HashMap<String, String>, errors: &mut Vec<FieldError>) -> PageQuery {
    let limit = match query.get("limit").map(|s| s.trim()) {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<i64>() {
            Err(_) => {
                errors.push(FieldError::at(
                    "query",
                    "limit",
                    "int_parsing",
                    "Input should be a valid integer, unable to parse string as an integer",
                ));
                DEFAULT_LIMIT
            }
            Ok(n) if n < 1 => {
                errors.push(
                    FieldError::at(
                        "query",
                        "limit",
                        "greater_than_equal",
                        "Input should be greater than or equal to 1",
                    )
                    .with_ctx(json!({ "ge": 1 })),
                );
                DEFAULT_LIMIT
            }
            Ok(n) if n > MAX_LIMIT as i64 => {
                errors.push(
                    FieldError::at(
                        "query",
                        "limit",
                        "less_than_equal",
                        "Input should be less than or equal to 100",
                    )
                    .with_ctx(json!({ "le": MAX_LIMIT })),
                );
                DEFAULT_LIMIT
            }
            Ok(n) => n as usize,
        },
    };
    PageQuery { limit, cursor: query.get("cursor").filter(|c| !c.is_empty()).cloned() }
}

impl<S: Send + Sync> FromRequestParts<S> for PageQuery {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let page = page_query(&query_pairs(parts), &mut errors);
        if errors.is_empty() { Ok(page) } else { Err(ApiError::Validation(errors)) }
    }
}

impl<R, S: Send + Sync> FromRequestParts<S> for ResourceQuery<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = query_pairs(parts);
        let mut errors = Vec::new();
        let page = page_query(&query, &mut errors);
        let owner_id = match query.get("owner_id") {
            None => None,
            Some(raw) => match Uuid::parse_str(raw) {
                Ok(id) => Some(id),
                Err(e) => {
                    errors.push(FieldError::at(
                        "query",
                        "owner_id",
                        "uuid_parsing",
                        format!("Input should be a valid UUID, {e}"),
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { page, owner_id, resource: PhantomData })
        } else {
            Err(ApiError::Validation(errors))
        }
    }
}

fn query_parameter(name: &str, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

impl IntoParams for PageQuery {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let limit = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(MAX_LIMIT as i32))
            .default(Some(json!(DEFAULT_LIMIT)));
        vec![
            query_parameter("limit", "How many records a page holds.", limit),
            query_parameter(
                "cursor",
                "`next_cursor` of the previous page, to read the next one. A cursor of another listing,\nor an altered one, is a 422.",
                ObjectBuilder::new().schema_type(Type::String),
            ),
        ]
    }
}

impl<R: Resource> IntoParams for ResourceQuery<R> {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = PageQuery::into_params(parameter_in);
        params.push(query_parameter(
            "owner_id",
            &format!("Superusers only: list this user's {} instead of their own.", R::LISTING),
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))),
        ));
        params
    }
}

/// One page of a listing, and the cursor of the next one (`null` on the last page).
#[derive(Debug, Clone, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Named as FastAPI names a generic model (`Page_ItemResponse`), with its items referenced.
impl<T: ToSchema> PartialSchema for Page<T> {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One page of a listing, and the cursor of the next one (`null` on the last page).",
            ))
            .property("data", ArrayBuilder::new().items(RefOr::Ref(Ref::from_schema_name(T::name()))))
            .required("data")
            .property(
                "next_cursor",
                ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some("`null` on the last page.")),
            )
            .required("next_cursor")
            .into()
    }
}

impl<T: ToSchema> ToSchema for Page<T> {
    fn name() -> std::borrow::Cow<'static, str> {
        format!("Page_{}", T::name()).into()
    }

    fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
}

/// Where a record sits in its listing: the position a cursor holds.
pub trait Positioned {
    fn position(&self) -> Uuid;
}

impl Positioned for UserRecord {
    fn position(&self) -> Uuid {
        self.id
    }
}

impl<R> Positioned for Record<R> {
    fn position(&self) -> Uuid {
        self.id
    }
}

/// One page of the listing called `listing`: the query's cursor decoded for it (a cursor of any
/// other listing is a 422), `read(limit, after)` for the records, and the next cursor issued
/// for it when more follow.
pub async fn page<R, T, Fut>(
    cursors: &CursorCodec,
    listing: &str,
    query: &PageQuery,
    read: impl FnOnce(usize, Option<Uuid>) -> Fut,
) -> ApiResult<Page<T>>
where
    Fut: Future<Output = RepoResult<Listing<R>>>,
    R: Positioned,
    T: for<'a> From<&'a R>,
{
    let after = query.cursor.as_deref().map(|c| cursors.decode(listing, c)).transpose()?;
    let listing_read = read(query.limit, after).await?;
    let next_cursor = listing_read
        .more
        .then(|| listing_read.records.last().map(|r| cursors.encode(listing, r.position())))
        .flatten();
    Ok(Page { data: listing_read.records.iter().map(T::from).collect(), next_cursor })
}
