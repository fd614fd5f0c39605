//! The catalog of functions: each function of the API once, with its router, its part of the
//! OpenAPI document and its probe. Everything that needs "every function" reads it: the local
//! server and the tests mount the routers on the routes of `template.yaml` ([`app`]), the
//! document is joined from the parts ([`openapi`]; the docs function serves it as
//! `openapi.json`), the sample events are generated from the routes and the document
//! ([`events`]), and the bench starts each one.
//!
//! The list, [`FUNCTIONS`], is `template.yaml`'s own: `build.rs` writes one entry per function
//! there, from the three things every function crate exports (`router`, `openapi`, `PROBE`).
//! Adding a function is its crate under `functions/`, its resource in `template.yaml`, and a
//! line in this crate's `Cargo.toml` (`docs/adding-a-resource.md`).

pub mod app;
pub mod cors;
pub mod events;
pub mod table_design;
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
    /// Its part of the OpenAPI document (for the docs function, only its health check: its
    /// pages are not operations).
    pub openapi: fn() -> OpenApi,
    /// The sample event (`events/<probe>.json`) that stands for it where one request must: the
    /// bench's cold starts.
    pub probe: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/functions.rs"));

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
    for function in FUNCTIONS {
        doc.merge((function.openapi)());
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
