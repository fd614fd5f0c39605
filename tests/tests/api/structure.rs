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

/// The top-level module of `shared` a file belongs to (`repo` for `repo/dynamo/users.rs`), and how
/// deep the file's module is (`repo/dynamo/users.rs`: 3; `repo/mod.rs`: 1; `cursor.rs`: 1).
fn module_of(src: &Path, file: &Path) -> Option<(String, usize)> {
    let relative = file.strip_prefix(src).unwrap();
    let parts: Vec<&str> = relative.components().map(|c| c.as_os_str().to_str().unwrap()).collect();
    let first = parts[0].trim_end_matches(".rs").to_owned();
    let depth = if parts.last() == Some(&"mod.rs") { parts.len() - 1 } else { parts.len() };
    (first != "lib").then_some((first, depth))
}

/// The first identifier of each path in `text` (after `crate::`): one for `crate::a::b`, one for
/// each item of `crate::{a::X, b::Y}`.
fn first_segments(text: &str) -> Vec<String> {
    let ident =
        |t: &str| t.trim_start().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    match text.strip_prefix('{') {
        Some(group) => {
            let (mut depth, mut items, mut current) = (0, Vec::new(), String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => items.push(std::mem::take(&mut current)),
                    _ => {}
                }
                if depth == 0 && c != ',' {
                    current.push(c);
                }
            }
            items.push(current);
            items.iter().map(|item| ident(item)).filter(|i| !i.is_empty()).collect()
        }
        None => vec![ident(text)].into_iter().filter(|i| !i.is_empty()).collect(),
    }
}

/// The modules of `shared` each top-level module refers to: through `crate::...` (grouped
/// imports, and the root's re-exports such as `crate::AppState`, included) and through `super::`
/// chains that climb to the crate's root.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join("shared/src");
    // The root's re-exports: `pub use state::AppState;` makes `crate::AppState` the state module.
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    let mut reexports: BTreeMap<String, String> = BTreeMap::new();
    // Every `pub use` / `pub(crate) use` statement, over as many lines as it takes.
    for statement in lib.split(';').filter_map(|s| {
        s.split_once(" use ")
            .filter(|(v, _)| v.trim_end().ends_with("pub") || v.trim_end().ends_with(')'))
            .map(|(_, u)| u)
    }) {
        let statement: String = statement.split_whitespace().collect();
        let (module, items) = statement.trim_start_matches("self::").split_once("::").unwrap_or(("", ""));
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            reexports.insert(item.to_owned(), module.to_owned());
        }
    }
    // A glob of the root (`use crate::*`, or `use super::*` in a file right under it) reaches
    // every module behind the root's re-exports.
    let behind_root: Vec<String> = reexports.values().cloned().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let Some((module, depth)) = module_of(&src, &file) else { continue };
        let text = std::fs::read_to_string(&file).unwrap();
        // The code, not its unit tests: a test module's `super::` is its file, not the root.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let mut targets = Vec::new();
        let from_root = |rest: &str, targets: &mut Vec<String>| {
            if rest.starts_with('*') {
                targets.extend(behind_root.iter().cloned());
            } else {
                targets.extend(first_segments(rest));
            }
        };
        for (i, _) in text.match_indices("crate::") {
            // `$crate::` in a macro names the crate of the macro's user, not a module here.
            if !text[..i].ends_with('$') {
                from_root(&text[i + "crate::".len()..], &mut targets);
            }
        }
        // `super::` as many times as the file is deep reaches the root.
        let climb = "super::".repeat(depth);
        for (i, _) in text.match_indices(&climb) {
            if !text[..i].ends_with("super::") {
                from_root(&text[i + climb.len()..], &mut targets);
            }
        }
        let uses = graph.entry(module.clone()).or_default();
        for target in targets {
            let target = reexports.get(&target).cloned().unwrap_or(target);
            if target != module {
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
fn the_import_graph_sees_grouped_imports_reexports_and_climbs() {
    assert_eq!(first_segments("{state::AppState, web::{Json, Form}};"), ["state", "web"]);
    assert_eq!(first_segments("repo::keys::PK;"), ["repo"]);
    let graph = module_graph();
    // `web` uses the state through `crate::state::AppState` and `crate::AppState` alike.
    assert!(graph["web"].contains("state"), "{graph:?}");
    assert!(graph["error"].contains("repo"), "error renders repository errors: {graph:?}");
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
