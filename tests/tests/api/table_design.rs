//! The table design (`docs/table-design.md`) and the key schema in code (`shared::repo::keys`)
//! agree: every kind of record the code declares is in the document's table of item types,
//! with its keys, and every kind a user owns is marked as going with its user.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use shared::repo::keys::{
    ATTEMPTS_SK, EMAIL_SK, GSI1, LEASE_SK, MIGRATION_PREFIX, MIGRATIONS_PK, OWNED, POINTER_SK, TTL, USER_SK,
    USERS_INDEX_PK,
};

fn design() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/table-design.md")).unwrap()
}

/// The rows of the document's "Item types" table: (type, PK, SK) of each.
fn item_types(text: &str) -> Vec<(String, String, String)> {
    let section = text.split("## Item types").nth(1).unwrap().split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| type") && !l.starts_with("| ---"))
        .map(|l| {
            let cells: Vec<String> = l.split('|').map(|c| c.trim().trim_matches('`').to_owned()).collect();
            (cells[1].clone(), cells[2].clone(), cells[3].clone())
        })
        .collect()
}

#[test]
fn every_owned_kind_is_in_the_table_design_in_its_owners_partition() {
    let rows = item_types(&design());
    for kind in OWNED {
        let row = rows
            .iter()
            .find(|(_, pk, sk)| pk == "USER#<user_id>" && sk.starts_with(kind.prefix))
            .unwrap_or_else(|| {
                panic!(
                    "docs/table-design.md has no row for {} ({}…) in USER#<user_id>",
                    kind.name, kind.prefix
                )
            });
        assert!(row.0.contains(kind.name.replace('_', " ").as_str()) || row.0.contains(kind.name), "{row:?}");
        if kind.pointer {
            let pointer = rows.iter().find(|(_, pk, sk)| pk.starts_with(kind.prefix) && sk == POINTER_SK);
            assert!(pointer.is_some(), "docs/table-design.md has no owner pointer of {}", kind.name);
        }
    }
}

#[test]
fn every_other_key_of_the_code_is_in_the_table_design() {
    let text = design();
    let rows = item_types(&text);
    for (pk, sk) in [
        ("USER#<user_id>", USER_SK),
        ("EMAIL#<email_key>", EMAIL_SK),
        ("LOGIN#<typed email, lower-cased>", ATTEMPTS_SK),
        (MIGRATIONS_PK, LEASE_SK),
    ] {
        assert!(rows.iter().any(|(_, p, s)| p == pk && s == sk), "no row for {pk} / {sk} in {rows:?}");
    }
    assert!(rows.iter().any(|(_, p, s)| p == MIGRATIONS_PK && s.starts_with(MIGRATION_PREFIX)), "{rows:?}");
    for word in [GSI1, USERS_INDEX_PK, TTL, "shared/src/repo/keys.rs"] {
        assert!(text.contains(word), "docs/table-design.md never mentions {word}");
    }
}
