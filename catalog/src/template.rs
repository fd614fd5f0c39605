//! `template.yaml`, as built into this crate, read for its HTTP API routes: which function
//! (by its binary) serves which path. The local server, the tests and the event generator route
//! by it, so none of them can disagree with API Gateway.

use serde_norway::Value;

/// `template.yaml`, as built into this crate.
pub const TEMPLATE: &str = include_str!("../../template.yaml");

/// API Gateway's catch-all route.
pub const DEFAULT_ROUTE: &str = "$default";

/// One HTTP API route of the template: its path (in API Gateway's syntax) and the function
/// (by its binary name) that serves it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub path: String,
    pub binary: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(String),
    #[error("function {0} has no Metadata.BuildProperties.Binary")]
    NoBinary(String),
    #[error("route {path} of function {function} has no Path")]
    NoPath { function: String, path: String },
    #[error("no function of the catalog is built as {0:?}: make its crate a dependency of catalog")]
    UnknownBinary(String),
    #[error("invalid CORS origin {0:?}")]
    Origin(String),
}

/// Every `HttpApi` event of every function in `template`.
pub fn routes_of(template: &str) -> Result<Vec<Route>, TemplateError> {
    let t: Value = serde_norway::from_str(template).map_err(|e| TemplateError::Yaml(e.to_string()))?;
    let mut routes = Vec::new();
    for (name, resource) in t["Resources"].as_mapping().into_iter().flatten() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let function = name.as_str().unwrap_or_default().to_owned();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .ok_or_else(|| TemplateError::NoBinary(function.clone()))?;
        for (event_name, event) in resource["Properties"]["Events"].as_mapping().into_iter().flatten() {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let path = event["Properties"]["Path"].as_str().ok_or_else(|| TemplateError::NoPath {
                function: function.clone(),
                path: event_name.as_str().unwrap_or_default().to_owned(),
            })?;
            routes.push(Route { path: path.to_owned(), binary: binary.to_owned() });
        }
    }
    routes.sort();
    Ok(routes)
}

/// The routes of the built-in template.
pub fn routes() -> Result<Vec<Route>, TemplateError> {
    routes_of(TEMPLATE)
}

/// The binary of every function in `template` (`Metadata.BuildProperties.Binary`), in order.
pub fn binaries_of(template: &str) -> Result<Vec<String>, TemplateError> {
    let t: Value = serde_norway::from_str(template).map_err(|e| TemplateError::Yaml(e.to_string()))?;
    let mut binaries = Vec::new();
    for (name, resource) in t["Resources"].as_mapping().into_iter().flatten() {
        if resource["Type"] == "AWS::Serverless::Function" {
            let binary = resource["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .ok_or_else(|| TemplateError::NoBinary(name.as_str().unwrap_or_default().to_owned()))?;
            binaries.push(binary.to_owned());
        }
    }
    Ok(binaries)
}
