//! A client generated from the document, as users of FastAPI's template generate theirs: with
//! openapi-python-client (installed by the test command into `.tools/venv`). Every schema is
//! named once and referenced, so the client has one model per shared type, never a copy per
//! operation or per status (`CreateItemResponse401`) or per container (`PageItemResponseDataItem`);
//! and the client works: it signs up, logs in, and creates and reads an item on the local server.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use api_tests::process::{LocalServer, finish, workspace};

/// Generates the client into `target/test-artifacts/client`, fresh.
async fn generate() -> PathBuf {
    let out = workspace().join("target/test-artifacts/client");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let config = workspace().join("target/test-artifacts/client-config.yaml");
    // No formatter runs after generation: it is not installed, and not what is checked.
    std::fs::write(&config, "post_hooks: []\n").unwrap();
    let mut command = Command::new(workspace().join(".tools/venv/bin/openapi-python-client"));
    command.args(["generate", "--meta", "none", "--path"]).arg(workspace().join("openapi.json"));
    command.arg("--output-path").arg(&out).arg("--config").arg(&config);
    let generated = finish(command).await;
    assert!(
        generated.status.success() && out.join("models").is_dir(),
        "openapi-python-client (pip install -r requirements-dev.txt): {}\n{}",
        generated.stdout,
        generated.stderr
    );
    out
}

/// Each model's source with its own class name taken out: two models with the same text are
/// one type generated twice.
fn models(dir: &Path) -> BTreeMap<String, String> {
    let mut models = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("models")).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().unwrap() == "__init__.py" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let class = text
            .lines()
            .find_map(|l| l.strip_prefix("class ").and_then(|rest| rest.split(['(', ':']).next()))
            .unwrap_or_else(|| panic!("no class in {}", path.display()))
            .to_owned();
        let module = path.file_stem().unwrap().to_str().unwrap().to_owned();
        models.insert(class.clone(), text.replace(&class, "MODEL").replace(&module, "module"));
    }
    models
}

#[tokio::test]
async fn a_generated_client_has_one_model_per_shared_type_and_works() {
    let dir = generate().await;
    let models = models(&dir);
    let mut by_text: BTreeMap<&String, Vec<&String>> = BTreeMap::new();
    for (class, text) in &models {
        by_text.entry(text).or_default().push(class);
    }
    let copies: Vec<&Vec<&String>> = by_text.values().filter(|classes| classes.len() > 1).collect();
    assert!(copies.is_empty(), "one type generated as several models: {copies:?}");

    let document = serde_json::to_value(catalog::openapi()).unwrap();
    for (name, schema) in document["components"]["schemas"].as_object().unwrap() {
        let modelled = schema["type"] == "object" || schema.get("enum").is_some();
        if modelled {
            assert!(models.contains_key(&name.replace('_', "")), "no model {name}: {:?}", models.keys());
        }
    }
    for path in document["paths"].as_object().unwrap().values() {
        for operation in path.as_object().unwrap().values() {
            let id: String = operation["operationId"]
                .as_str()
                .unwrap()
                .split('_')
                .map(|w| w[..1].to_uppercase() + &w[1..])
                .collect();
            let per_operation: Vec<&String> = models.keys().filter(|m| m.starts_with(&id)).collect();
            assert!(per_operation.is_empty(), "models of operation {id}: {per_operation:?}");
        }
    }

    // And it works, against the local server.
    let server = LocalServer::start(&["--port", "0"], &[]).await;
    let script = r#"
import sys
sys.path.insert(0, sys.argv[1])
from client import AuthenticatedClient, Client
from client.api.auth import create_token
from client.api.items import create_item, read_item
from client.api.users import sign_up
from client.models import ItemCreate, ItemResponse, Token, TokenRequest, UserRegister, UserResponse
url = sys.argv[2]
user = sign_up.sync(client=Client(base_url=url), body=UserRegister(email="client@example.com", password="correct horse battery"))
assert isinstance(user, UserResponse), user
token = create_token.sync(client=Client(base_url=url), body=TokenRequest(username="client@example.com", password="correct horse battery"))
assert isinstance(token, Token), token
me = AuthenticatedClient(base_url=url, token=token.access_token)
item = create_item.sync(client=me, body=ItemCreate(title="from the generated client"))
assert isinstance(item, ItemResponse), item
again = read_item.sync(client=me, item_id=item.id)
assert again.title == "from the generated client" and again.version == 1, again
print("client ok")
"#;
    let mut command = Command::new(workspace().join(".tools/venv/bin/python"));
    command.args(["-c", script]).arg(dir.parent().unwrap()).arg(&server.url);
    let ran = finish(command).await;
    assert!(ran.status.success() && ran.stdout.contains("client ok"), "{}\n{}", ran.stdout, ran.stderr);
}
