//! The in-process tier: every function's router called in-process (`TestApp`), the memory store
//! against the repository contract, the schemas, the template, the catalog, the document and the
//! sample events, and the shape of the code itself. A plain `cargo test` runs it with nothing but
//! Rust.
//!
//! With the `dynamodb` feature (`scripts/test` turns it on), the same binary also runs what needs
//! DynamoDB Local: the repository contract against it, end-to-end races, faults through a proxy,
//! and least-privilege IAM. It starts DynamoDB Local once, on a free port, and gives each test
//! its own table.

/// The same test bodies on the memory store and (with the `dynamodb` feature) DynamoDB Local:
/// each named `async fn` takes the file's own `Backend` (`Memory`, `DynamoDb`).
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::Memory).await;
            })*
        }
        #[cfg(feature = "dynamodb")]
        mod dynamodb {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Backend::DynamoDb).await;
            })*
        }
    };
}

mod auth;
mod authorization_matrix;
mod bodies;
mod catalog;
mod dynamodb_faults;
mod events;
mod forged_tokens;
mod health;
mod idempotency;
mod idempotency_repo;
mod items;
mod key_ring;
mod lambda;
mod metrics;
mod migrate;
mod openapi;
mod purge;
mod recovery;
mod repo_contract;
mod resources;
mod ses_mailer;
mod sessions;
mod signing_keys;
mod structure;
mod table_design;
mod template;
mod template_alarms;
mod template_keys;
mod template_ops;
mod template_stages;
mod throttle;
mod users;
#[cfg(feature = "dynamodb")]
mod users_index;
mod web;

#[cfg(feature = "dynamodb")]
mod dynamodb_e2e;
#[cfg(feature = "dynamodb")]
mod faults;
#[cfg(feature = "dynamodb")]
mod iam;
