//! Writes what is generated from the code: `openapi.json` (the document of the whole API) and
//! `events/` (one sample event per route), at the workspace's root. Run it after changing an
//! endpoint or a route: `cargo run -p catalog --bin generate`. Tests fail while either is stale.

use std::path::{Path, PathBuf};

fn main() -> std::process::ExitCode {
    match generate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("..")) {
        Ok(written) => {
            eprintln!("wrote openapi.json and {written} events");
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
