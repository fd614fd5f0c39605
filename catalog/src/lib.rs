//! The catalog of functions: each function of the API once, with its router and its part of the
//! OpenAPI document. Everything that needs "every function" reads it: the local server and the
//! tests mount the routers on the routes of `template.yaml` ([`app`]), the document is joined
//! from the parts ([`openapi`]; the docs function serves it as `openapi.json`), the sample events
//! are generated from the routes and the document ([`events`]), and the bench starts each one.
//!
//! Adding a function: its crate under `functions/`, a line in `Cargo.toml` here, an entry in
//! [`FUNCTIONS`], and its resource in `template.yaml` (`docs/adding-a-resource.md`). The template
//! tests fail until the template and this list name the same functions.

pub mod app;
pub mod cors;
pub mod events;
pub mod template;

use axum::Router;
use shared::AppState;
use utoipa::openapi::{InfoBuilder, LicenseBuilder, OpenApi};
use utoipa::{Modify, OpenApi as _};

pub use app::app;
pub use cors::Cors;
pub use template::{DEFAULT_ROUTE, Route, TemplateError, routes};

/// One Lambda function of the API.
#[derive(Debug, Clone, Copy)]
pub struct Function {
    /// Its crate, and its binary: `Metadata.BuildProperties.Binary` in `template.yaml`.
    pub name: &'static str,
    /// Its router: what its Lambda `main` runs, and what the local server mounts.
    pub router: fn(AppState) -> Router,
    /// Its part of the OpenAPI document; none for the docs function, which serves the document.
    pub openapi: Option<fn() -> OpenApi>,
    /// The sample event (`events/<probe>.json`) that stands for it where one request must: the
    /// bench's cold starts.
    pub probe: &'static str,
}

/// Every function of the API.
pub const FUNCTIONS: &[Function] = &[
    Function {
        name: "auth",
        router: auth::router,
        openapi: Some(auth::Api::openapi),
        probe: "post-v1-auth-token",
    },
    Function {
        name: "users",
        router: users::router,
        openapi: Some(users::Api::openapi),
        probe: "get-v1-users-me",
    },
    Function {
        name: "items",
        router: items::router,
        openapi: Some(items::Api::openapi),
        probe: "get-v1-items-item_id",
    },
    Function { name: "docs", router: docs::router, openapi: None, probe: "get-openapi_json" },
];

/// The function built as `name`.
pub fn function(name: &str) -> Option<&'static Function> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// What the document says of the API as a whole.
const DESCRIPTION: &str = "A typed HTTP API on AWS Lambda: OAuth2 password login with short-lived \
JWT access tokens and rotating refresh tokens, users, and their items.\n\n\
Errors are `{\"detail\": ...}` (validation errors: a list of `{loc, msg, type}`, as FastAPI), \
except at the token endpoints, which answer RFC 6749 `{error, error_description}`. A method a path \
does not serve is a 405 with a complete `Allow`; an unknown path a 404. Every response carries \
`x-request-id`.";

/// The whole API's document: every function's part, the shared error responses and schemas,
/// and the OAuth2 password flow.
pub fn openapi() -> OpenApi {
    let mut doc = OpenApi::default();
    for part in FUNCTIONS.iter().filter_map(|f| f.openapi) {
        doc.merge(part());
    }
    doc.merge(shared::openapi::SharedComponents::openapi());
    doc.info = InfoBuilder::new()
        .title("lambda-api")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(Some(LicenseBuilder::new().name("MIT").identifier(Some("MIT")).build()))
        .build();
    shared::openapi::SecurityAddon.modify(&mut doc);
    doc
}

/// The document as the checked-in `openapi.json` holds it: pretty JSON and a final newline.
pub fn openapi_json() -> String {
    let mut text =
        serde_json::to_string_pretty(&openapi()).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}
