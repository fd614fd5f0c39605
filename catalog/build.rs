//! Writes the catalog's list of functions from `template.yaml`: every `AWS::Serverless::Function`
//! with HTTP API routes there is one entry, by its binary (`Metadata.BuildProperties.Binary`), which is also its
//! crate's name. Each function crate exports the same three things (`router`, `openapi`,
//! `PROBE`), so an entry is the same line for every function; adding a function to the template
//! and its crate to this crate's `Cargo.toml` adds it here.

use std::fmt::Write;
use std::path::Path;

fn main() {
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    println!("cargo:rerun-if-changed={}", template.display());
    let text = std::fs::read_to_string(&template).unwrap_or_else(|e| panic!("{}: {e}", template.display()));
    let yaml: serde_norway::Value =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("template.yaml is not YAML: {e}"));
    let mut entries = String::new();
    for (name, resource) in yaml["Resources"].as_mapping().into_iter().flatten() {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        // A function without HTTP API routes (the stream worker) is not part of the API.
        let http = resource["Properties"]["Events"]
            .as_mapping()
            .into_iter()
            .flatten()
            .any(|(_, event)| event["Type"] == "HttpApi");
        if !http {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{name:?} has no Metadata.BuildProperties.Binary"));
        assert!(
            !binary.is_empty()
                && binary.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{binary:?}: a function's binary is its crate's name"
        );
        let _ = writeln!(
            entries,
            "    Function {{ name: \"{binary}\", router: {binary}::router, openapi: {binary}::openapi, probe: {binary}::PROBE }},"
        );
    }
    let code = format!(
        "/// Every function of `template.yaml`, in its order (written by `build.rs`).\npub const FUNCTIONS: &[Function] = &[\n{entries}];\n"
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("functions.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}
