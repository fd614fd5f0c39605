//! The catalog of functions is the template's: every function `template.yaml` deploys is in
//! `catalog::FUNCTIONS` and the reverse, each is a crate of its own under `functions/`, and each
//! function's part of the document holds exactly the paths the template routes to it.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use catalog::FUNCTIONS;
use catalog::template::{TEMPLATE, binaries_of, routes_of};

fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The crates under `functions/`.
fn function_crates() -> BTreeSet<String> {
    std::fs::read_dir(workspace().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_function_crate_is_deployed_and_in_the_catalog() {
    // The catalog is written from the template (catalog/build.rs), and a function missing from
    // catalog/Cargo.toml does not build; what can still be half-added is a crate under
    // functions/ that the template does not deploy, or a template function with no crate there.
    let deployed: BTreeSet<String> = binaries_of(TEMPLATE).unwrap().into_iter().collect();
    assert_eq!(
        function_crates(),
        deployed,
        "crates under functions/ (left), template.yaml's functions (right)"
    );
    // The catalog is the API's: every function with HTTP routes (not the stream worker).
    let routed: BTreeSet<String> = routes_of(TEMPLATE).unwrap().into_iter().map(|r| r.binary).collect();
    let cataloged: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_owned()).collect();
    assert_eq!(cataloged, routed, "catalog::FUNCTIONS (left), template.yaml's routed functions (right)");
    let unrouted: Vec<_> = deployed.difference(&routed).collect();
    assert_eq!(unrouted, ["worker"], "the functions without routes");
    assert_eq!(cataloged.len(), FUNCTIONS.len(), "a function twice in the catalog");
}

#[test]
fn a_schema_that_two_functions_name_alike_is_the_same_schema() {
    // The document keeps the first of two schemas of one name: a function that declared its own
    // `Title` would silently get another's. Every name must mean one schema.
    let mut seen: std::collections::BTreeMap<String, (String, serde_json::Value)> = Default::default();
    let shared_part = <shared::openapi::SharedComponents as utoipa::OpenApi>::openapi();
    let parts = FUNCTIONS
        .iter()
        .map(|f| (f.name.to_owned(), (f.openapi)()))
        .chain([("shared".to_owned(), shared_part)]);
    for (owner, part) in parts {
        for (name, schema) in part.components.map(|c| c.schemas).unwrap_or_default() {
            let schema = serde_json::to_value(schema).unwrap();
            match seen.get(&name) {
                Some((first, earlier)) => {
                    assert_eq!(earlier, &schema, "schema {name}: {first} and {owner} declare it differently")
                }
                None => {
                    seen.insert(name, (owner.clone(), schema));
                }
            }
        }
    }
    assert!(seen.contains_key("ItemResponse") && seen.contains_key("ErrorDetail"), "{:?}", seen.keys());
}

#[test]
fn every_function_is_a_crate_of_its_own_with_a_lambda_binary() {
    for function in FUNCTIONS {
        let dir = workspace().join("functions").join(function.name);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("functions/{}/Cargo.toml: {e}", function.name));
        assert!(manifest.contains(&format!("name = \"{}\"", function.name)), "{}", function.name);
        let main = std::fs::read_to_string(dir.join("src/main.rs")).unwrap();
        assert!(
            main.contains(&format!("{}::router", function.name)),
            "functions/{}/src/main.rs",
            function.name
        );
    }
}

#[test]
fn each_functions_probe_is_one_of_its_own_sample_events() {
    let events = api_tests::fixtures::all_events();
    let routes = catalog::routes().unwrap();
    for function in FUNCTIONS {
        let event = events.iter().find(|e| e.name == function.probe);
        let event = event.unwrap_or_else(|| panic!("{}: no event {}", function.name, function.probe));
        let route = routes.iter().find(|r| r.path == event.route).unwrap();
        assert_eq!(route.binary, function.name, "{}: {} goes to {}", function.name, event.name, route.binary);
    }
}

#[test]
fn each_functions_part_of_the_document_holds_the_paths_the_template_routes_to_it() {
    let routes = catalog::routes().unwrap();
    for function in FUNCTIONS {
        // The docs function's pages are not API operations, as FastAPI leaves /docs out.
        let routed: BTreeSet<String> = routes
            .iter()
            .filter(|r| r.binary == function.name && r.path != catalog::DEFAULT_ROUTE)
            .filter(|r| !api_tests::is_docs_page(&r.binary, &r.path))
            .map(|r| r.path.clone())
            .collect();
        let documented: BTreeSet<String> = (function.openapi)().paths.paths.keys().cloned().collect();
        assert_eq!(documented, routed, "{}: its document part (left), its routes (right)", function.name);
    }
}
