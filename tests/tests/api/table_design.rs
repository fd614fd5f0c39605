//! The table design (`docs/table-design.md`) and the key schema in code (`shared::repo::keys`)
//! agree: its table of what a user owns is the one `keys::OWNED` writes, and every other kind of
//! record the code keys is in its table of item types.

// Test helpers as well as #[test]s: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use shared::repo::keys::{
    ATTEMPTS_SK, EMAIL_SK, GSI1, LEASE_SK, MIGRATION_PREFIX, MIGRATIONS_PK, TTL, USER_SK, USERS_INDEX_PK,
};

fn design() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/table-design.md")).unwrap()
}

/// The rows of the document's "Item types" table: (type, PK, SK) of each.
fn item_types(text: &str) -> Vec<(String, String, String)> {
    let section = text.split("## Item types").nth(1).unwrap().split("\n#").next().unwrap();
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
fn the_table_of_what_a_user_owns_is_the_one_keys_owned_writes() {
    let text = design();
    let current = catalog::table_design::with_owned_kinds(&text).expect("the owned-kinds markers");
    assert!(
        current == text,
        "docs/table-design.md's table of owned kinds is stale: run `cargo run -p catalog --bin generate`"
    );
    for kind in shared::repo::keys::OWNED {
        assert!(text.contains(&format!("| {} | `{}{}` |", kind.name, kind.prefix, kind.id)), "{}", kind.name);
    }
}

#[test]
fn every_other_key_of_the_code_is_in_the_table_design() {
    let text = design();
    let rows = item_types(&text);
    for (pk, sk) in [
        ("USER#<user_id>", USER_SK),
        ("EMAIL#<email_key>", EMAIL_SK),
        ("LOGIN#A#<source address>", ATTEMPTS_SK),
        ("LOGIN#EA#<source address>#<email key>", ATTEMPTS_SK),
        ("LOGIN#E#<email key>", ATTEMPTS_SK),
        (MIGRATIONS_PK, LEASE_SK),
        (shared::repo::HEALTH_KEY, shared::repo::HEALTH_KEY),
    ] {
        assert!(rows.iter().any(|(_, p, s)| p == pk && s == sk), "no row for {pk} / {sk} in {rows:?}");
    }
    assert!(rows.iter().any(|(_, p, s)| p == MIGRATIONS_PK && s.starts_with(MIGRATION_PREFIX)), "{rows:?}");
    for word in [GSI1, USERS_INDEX_PK, TTL, "shared/src/repo/keys.rs"] {
        assert!(text.contains(word), "docs/table-design.md never mentions {word}");
    }
}
