//! The item, as it is stored and as it goes over the wire: a user-owned resource (`Item` and its
//! change set), the request schemas that create and change one, and the response.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::deps::rfc3339;
use shared::domain::{Description, Patch, Title};
use shared::repo::keys::{self, OwnedKind};
use shared::repo::{Record, Resource};
use shared::web::Page;
use shared::web::resources::Served;
use utoipa::ToSchema;
use uuid::Uuid;

/// An item's own fields, as stored beside the envelope of every resource (`Record`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub title: String,
    /// Absent when unset (the attribute is not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

pub type ItemRecord = Record<Item>;

/// What an update changes: a present field is set, a `null` description removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ItemChanges {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Patch::is_absent")]
    pub description: Patch<Option<String>>,
}

impl Resource for Item {
    const KIND: OwnedKind = keys::ITEM;
    const LISTING: &'static str = "items";
    type Changes = ItemChanges;
}

impl Served for Item {
    const PATH: &'static str = "/v1/items";
    const NOT_FOUND: &'static str = "Item not found";
}

shared::path_id!(
    /// The item's id
    ItemId,
    "item_id"
);

shared::request_schema! {
    /// A new item.
    pub struct ItemCreate {
        pub title: Title,
        pub description: Option<Description>,
    }
}

impl From<ItemCreate> for Item {
    fn from(body: ItemCreate) -> Self {
        Self { title: body.title.into_inner(), description: body.description.map(Description::into_inner) }
    }
}

shared::request_schema! {
    /// An item update; an absent field is left as it is, `description: null` clears it, and `{}`
    /// is valid and changes nothing, the version included.
    pub struct ItemUpdate {
        pub title: Patch<Title>,
        pub description: Patch<Option<Description>>,
    }
}

impl From<ItemUpdate> for ItemChanges {
    fn from(body: ItemUpdate) -> Self {
        Self {
            title: body.title.into_option().map(Title::into_inner),
            description: body.description.map(|d| d.map(Description::into_inner)),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ItemResponse {
    pub id: Uuid,
    pub title: String,
    /// Always present; `null` when unset.
    #[schema(required = true)]
    pub description: Option<String>,
    pub owner_id: Uuid,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    /// Bumped by one on every change; the item's `ETag` is this number in quotes.
    #[schema(minimum = 1)]
    pub version: u64,
}

/// A page of items (named for the document, which refers to it as `Page_ItemResponse`).
pub type ItemPage = Page<ItemResponse>;

impl From<&ItemRecord> for ItemResponse {
    fn from(i: &ItemRecord) -> Self {
        Self {
            id: i.id,
            title: i.fields.title.clone(),
            description: i.fields.description.clone(),
            owner_id: i.owner_id,
            created_at: i.created_at,
            updated_at: i.updated_at,
            version: i.version,
        }
    }
}
