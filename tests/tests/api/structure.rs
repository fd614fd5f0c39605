//! The shape of the code, kept so by tests: `shared`'s modules use one another without circles
//! (a layer only uses the ones below it), the stores do not use each other, no source file grows
//! past 400 lines, and the documentation links only to files inside the repository.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The top-level module of `shared` a file belongs to (`repo` for `repo/dynamo/users.rs`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?.trim_end_matches(".rs").to_owned();
    (first != "lib").then_some(first)
}

/// The modules of `shared` each top-level module refers to through `crate::...`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("shared/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let Some(module) = top_module(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        let uses = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            // `$crate::` in a macro names the crate of the macro's user, not a module here.
            if text[..i].ends_with('$') {
                continue;
            }
            let target: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !target.is_empty() && target != module && !target.chars().next().unwrap().is_uppercase() {
                uses.insert(target);
            }
        }
    }
    // Only modules: `crate::bounded_string` (a macro at the root) is not one.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for uses in graph.values_mut() {
        uses.retain(|m| modules.contains(m));
    }
    graph
}

/// A circle through `from`, if there is one: the modules along it.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == from {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn shared_has_no_import_circles() {
    let graph = module_graph();
    assert!(graph.len() >= 10, "{graph:?}");
    for module in graph.keys() {
        assert_eq!(circle(&graph, module), None, "an import circle through {module}");
    }
    // The layers of shared/src/lib.rs: domain values use nothing of the crate.
    for leaf in ["domain", "deps", "config", "telemetry"] {
        assert_eq!(graph[leaf], BTreeSet::new(), "{leaf} uses {:?}", graph[leaf]);
    }
    assert!(
        graph["repo"].iter().all(|m| ["domain", "deps"].contains(&m.as_str())),
        "repo uses {:?}",
        graph["repo"]
    );
}

#[test]
fn the_two_stores_do_not_use_each_other() {
    let repo = workspace().join("shared/src/repo");
    for (store, other) in [("dynamo", "memory"), ("memory", "dynamo")] {
        for file in rust_files(&repo.join(store)) {
            let text = std::fs::read_to_string(&file).unwrap();
            // Code, not comments: a comment may name the other store.
            let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
            let uses = code
                .iter()
                .any(|l| l.contains(&format!("repo::{other}")) || l.contains(&format!("super::{other}")));
            assert!(!uses, "{} uses the {other} store", file.display());
        }
    }
}

#[test]
fn no_source_file_is_over_400_lines() {
    let root = workspace();
    let mut long = Vec::new();
    for dir in ["shared", "functions", "catalog", "server"] {
        for file in rust_files(&root.join(dir)) {
            let lines = std::fs::read_to_string(&file).unwrap().lines().count();
            if lines > 400 {
                long.push(format!("{} ({lines} lines)", file.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by concern: {long:?}");
}

/// The targets of the Markdown links (`[text](target)`) in `text`.
fn links(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(i, _)| text[i + 2..].split_once(')').map(|(target, _)| target.to_owned()))
        .collect()
}

#[test]
fn the_documentation_links_only_to_files_inside_the_repository() {
    let root = workspace();
    let mut documents = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        documents.push(entry.unwrap().path());
    }
    for document in documents {
        let text = std::fs::read_to_string(&document).unwrap();
        for target in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") || target.starts_with('#') {
                continue;
            }
            let file = target.split('#').next().unwrap();
            let path = document.parent().unwrap().join(file);
            let inside = path.canonicalize().is_ok_and(|p| p.starts_with(root.canonicalize().unwrap()));
            assert!(
                inside,
                "{}: a link to {target}, which is not a file of this repository",
                document.display()
            );
        }
    }
}
