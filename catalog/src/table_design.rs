//! The part of `docs/table-design.md` that is the key schema's own: the table of what a user
//! owns, written from `keys::OWNED` between its markers, so the document cannot lag the code.

use shared::repo::keys::OWNED;

/// The lines that open and close the written part.
pub const BEGIN: &str =
    "<!-- owned kinds: written by `cargo run -p catalog --bin generate` from keys::OWNED -->";
pub const END: &str = "<!-- owned kinds: end -->";

/// The table of what a user owns, from `keys::OWNED`.
pub fn owned_kinds() -> String {
    let mut table = String::from(
        "| kind (`type`) | `SK` in `USER#<user_id>` | owner pointer (`PK` / `SK`) |\n| --- | --- | --- |\n",
    );
    for kind in OWNED {
        let pointer = if kind.pointer {
            format!("`{}{}` / `OWNER` (`{}`)", kind.prefix, kind.id, kind.pointer_type())
        } else {
            "none".to_owned()
        };
        table.push_str(&format!("| {} | `{}{}` | {pointer} |\n", kind.name, kind.prefix, kind.id));
    }
    table
}

/// `document` with the written part replaced by the current table; `None` without its markers.
pub fn with_owned_kinds(document: &str) -> Option<String> {
    let (before, rest) = document.split_once(BEGIN)?;
    let (_, after) = rest.split_once(END)?;
    Some(format!("{before}{BEGIN}\n{}{END}{after}", owned_kinds()))
}
