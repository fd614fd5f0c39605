//! Writes what is generated from the code: `openapi.json` (the document of the whole API),
//! `events/` (one sample event per route), and the table of what a user owns in
//! `docs/table-design.md`. Run it after changing an endpoint, a route or an owned kind:
//! `cargo run -p catalog --bin generate`. Tests fail while any of them is stale.

use std::path::{Path, PathBuf};

fn main() -> std::process::ExitCode {
    match generate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")) {
        Ok(written) => {
            eprintln!("wrote openapi.json, {written} events and docs/table-design.md's owned kinds");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn generate(root: &Path) -> Result<usize, String> {
    std::fs::write(root.join("openapi.json"), catalog::openapi_json())
        .map_err(|e| format!("openapi.json: {e}"))?;
    let design = root.join("docs/table-design.md");
    let text = std::fs::read_to_string(&design).map_err(|e| format!("{}: {e}", design.display()))?;
    let written = catalog::table_design::with_owned_kinds(&text)
        .ok_or_else(|| format!("{}: the owned-kinds markers are missing", design.display()))?;
    std::fs::write(&design, written).map_err(|e| format!("{}: {e}", design.display()))?;
    let document = serde_json::to_value(catalog::openapi()).map_err(|e| e.to_string())?;
    let routes = catalog::routes().map_err(|e| e.to_string())?;
    let events = catalog::events::events(&routes, &document)?;
    let dir: PathBuf = root.join("events");
    // Only what the routes give: an event of a route that is gone goes too.
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    for event in &events {
        let path = dir.join(format!("{}.json", event.name));
        std::fs::write(&path, &event.text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(events.len())
}
