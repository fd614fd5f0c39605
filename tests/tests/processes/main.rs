//! The processes tier (the `processes` feature; `scripts/test` installs what it needs): the
//! workspace's binaries as a user runs them (the local server, the admin command), cargo lambda
//! watch, the whole API under `sam local start-api` (scripts/sam-local), schemathesis against
//! the running API, Swagger UI in headless Chromium, and a client generated from the document
//! with openapi-python-client.

mod browser;
mod cargo_lambda_watch;
mod client;
mod local_server;
mod sam_local;
mod schemathesis;
