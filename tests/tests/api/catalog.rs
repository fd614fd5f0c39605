//! The catalog of functions is the template's: every function `template.yaml` deploys is in
//! `catalog::FUNCTIONS` and the reverse, each is a crate of its own under `functions/`, and each
//! function's part of the document holds exactly the paths the template routes to it.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use catalog::FUNCTIONS;
use catalog::template::{TEMPLATE, binaries_of};

fn workspace() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_catalog_and_the_template_name_the_same_functions() {
    let deployed: BTreeSet<String> = binaries_of(TEMPLATE).unwrap().into_iter().collect();
    let cataloged: BTreeSet<String> = FUNCTIONS.iter().map(|f| f.name.to_owned()).collect();
    assert_eq!(cataloged, deployed, "catalog::FUNCTIONS (left) and template.yaml's functions (right)");
    assert_eq!(cataloged.len(), FUNCTIONS.len(), "a function twice in the catalog");
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
        let routed: BTreeSet<String> = routes
            .iter()
            .filter(|r| r.binary == function.name && r.path != catalog::DEFAULT_ROUTE)
            .map(|r| r.path.clone())
            .collect();
        let documented: BTreeSet<String> = (function.openapi)().paths.paths.keys().cloned().collect();
        if documented.is_empty() {
            // The docs function's pages are not API operations, as FastAPI leaves /docs out.
            assert!(routed.iter().all(|p| !p.starts_with("/v1/")), "{}: {routed:?}", function.name);
        } else {
            assert_eq!(documented, routed, "{}: its document part (left), its routes (right)", function.name);
        }
    }
}
