//! `bench purge`: deleting an account on DynamoDB Local. For an account with 300 items and one
//! with 20,000, the time of `DELETE /v1/users/me` (the users function's router, in this
//! process) and the time the `worker` takes to purge what the account owned, in runs of the
//! template's budget (its 60 s timeout less the margin) as the stream would drive them. Writes a
//! table between the purge markers of `BENCHMARKS.md`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_tests::TestApp;
use api_tests::item_store::ItemStore;
use shared::purge::{self, Run};
use shared::repo::Repos;
use shared::repo::dynamo::DynamoStore;

pub const BEGIN: &str = "<!-- purge:begin (written by `bench purge`; edits inside are overwritten) -->";
pub const END: &str = "<!-- purge:end -->";

/// One account size: its items, and how many such accounts are deleted and purged.
struct Size {
    items: usize,
    accounts: usize,
}

struct Row {
    items: usize,
    deletes: Vec<Duration>,
    purges: Vec<Duration>,
    runs: usize,
    records: u64,
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// A user with `items` items in a fresh table, and the app over it.
async fn account(items: usize) -> Result<(TestApp, Arc<DynamoStore>, api_tests::Session), String> {
    let config = api_tests::dynamo::config();
    let store = api_tests::dynamo::store_with(&config).await;
    let state =
        shared::AppState::new(config, Repos::from_store(store.clone())).with_hasher(api_tests::fast_hasher());
    let app = TestApp::from_state(state);
    let user = app.user().await;
    let now = chrono::Utc::now();
    let mut pending = tokio::task::JoinSet::new();
    for n in 0..items {
        if pending.len() >= 32 {
            pending.join_next().await.ok_or("seed")?.map_err(|e| e.to_string())??;
        }
        let (store, owner) = (store.clone(), user.id);
        pending.spawn(async move {
            let record = items::ItemRecord {
                id: uuid::Uuid::now_v7(),
                owner_id: owner,
                fields: items::Item { title: format!("item {n}"), description: Some("seeded".into()) },
                version: 1,
                created_at: now,
                updated_at: now,
            };
            match store.create_item(&record).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("an item was refused".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        });
    }
    while let Some(done) = pending.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    Ok((app, store, user))
}

pub async fn run(quick: bool, out: &Path) -> Result<(), String> {
    let sizes = if quick {
        vec![Size { items: 3, accounts: 1 }, Size { items: 150, accounts: 1 }]
    } else {
        vec![
            Size { items: 0, accounts: 5 },
            Size { items: 300, accounts: 5 },
            Size { items: 20_000, accounts: 1 },
        ]
    };
    // The template's worker: a 60 s timeout less the margin.
    let budget = Duration::from_secs(60) - worker::MARGIN;
    let mut rows = Vec::new();
    for size in sizes {
        let mut row = Row { items: size.items, deletes: Vec::new(), purges: Vec::new(), runs: 0, records: 0 };
        for _ in 0..size.accounts {
            let (app, store, user) = account(size.items).await?;
            let started = Instant::now();
            let deleted = app.delete("/v1/users/me", &user.access).await;
            row.deletes.push(started.elapsed());
            if deleted.status != axum::http::StatusCode::NO_CONTENT {
                return Err(format!("DELETE /v1/users/me: {} {}", deleted.status, deleted.text()));
            }
            let started = Instant::now();
            loop {
                row.runs += 1;
                let deadline = tokio::time::Instant::now() + budget;
                match purge::run(store.as_ref(), app.clock.as_ref(), user.id, deadline).await {
                    Ok(Run::Done { deleted }) => {
                        row.records += deleted;
                        break;
                    }
                    Ok(Run::Continues { deleted }) => row.records += deleted,
                    Ok(Run::UserExists) => return Err("the deleted user exists".into()),
                    Err(e) => return Err(format!("purge: {e}")),
                }
            }
            row.purges.push(started.elapsed());
        }
        println!(
            "{} items: DELETE {:?}, purge {:?} in {} runs",
            row.items,
            median(&row.deletes),
            median(&row.purges),
            row.runs
        );
        rows.push(row);
    }
    write(out, &markdown(quick, &rows))
}

fn markdown(quick: bool, rows: &[Row]) -> String {
    use std::fmt::Write;
    let mut out = format!("{BEGIN}\n\n");
    if quick {
        out.push_str("*A quick run: too short to mean anything.*\n\n");
    }
    out.push_str(
        "| items of the account | accounts | `DELETE /v1/users/me`, median | purge, in the worker's runs, median | \
         worker runs | records purged (per account) |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let accounts = row.deletes.len().max(1);
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} ms | {:.2} s | {} | {} |",
            row.items,
            row.deletes.len(),
            median(&row.deletes).as_secs_f64() * 1000.0,
            median(&row.purges).as_secs_f64(),
            row.runs / accounts,
            row.records / accounts as u64,
        );
    }
    out.push('\n');
    out.push_str(END);
    out
}

fn write(path: &Path, section: &str) -> Result<(), String> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(BEGIN), existing.find(END)) {
        (Some(begin), Some(end)) if end > begin => {
            format!("{}{}{}", &existing[..begin], section, &existing[end + END.len()..])
        }
        _ => format!("{}\n### Deleting an account\n\n{section}\n", existing.trim_end()),
    };
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
