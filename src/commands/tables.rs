//! `ddbsync tables create` and `tables drop`: the target tables on their own, without a sync.
//! Creating needs the source, because a table's key types come from its query's columns. Dropping
//! holds the run lock, so that no sync is writing to a table while it goes; the metadata table
//! (run records and the lock) is never dropped.

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::lock;
use crate::engine::preflight;
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::pure::plan::{show_schema, show_table_schema};
use crate::source;
use crate::target::dynamo;

#[derive(Debug, Clone, Serialize)]
pub struct TableAction {
    pub table: String,
    /// `created`, `exists`, `deleted` or `absent`.
    pub action: &'static str,
    pub detail: String,
}

/// What `tables create` or `tables drop` did, table by table.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub tables: Vec<TableAction>,
}

impl Done {
    pub fn render(&self) -> String {
        self.tables.iter().map(|a| format!("{:<32} {:<8} {}\n", a.table, a.action, a.detail)).collect()
    }
}

/// Creates the tables that do not exist, each with the key schema its mapping gives.
pub async fn create(profile: &Profile, mappings: &[&TableMapping], printer: &Printer) -> Result<Vec<TableAction>> {
    let plans = preflight::plans(source::connect(profile).await?.as_ref(), mappings).await?;
    let dynamo = dynamo::connect(&profile.target).await;
    lock::ensure_metadata_table(&*dynamo, profile).await?;
    let mut out = Vec::new();
    for (mapping, plan) in mappings.iter().zip(&plans) {
        let (table, wanted) = (&mapping.table_name, &plan.schema);
        let compared = preflight::compare(&*dynamo, profile, mapping, plan, false).await?;
        if let Some(mismatch) = compared.mismatch {
            anyhow::bail!("{table} exists and {mismatch}; `sync --clean` recreates it");
        }
        let (action, detail) = match compared.info {
            Some(_) => {
                let missing = compared.missing;
                let (local, global): (Vec<_>, Vec<_>) = missing.into_iter().partition(|i| i.local);
                let mut detail = format!("key ({})", show_schema(&wanted.keys));
                for index in &global {
                    // DynamoDB fills a new global index from the items already there.
                    printer.note(format!("adding index {} to {table}", index.name));
                    dynamo
                        .build_index(table, &wanted.keys, index)
                        .await
                        .with_context(|| format!("adding index {} to {table}", index.name))?;
                    detail.push_str(&format!("; index {} added", index.name));
                }
                if !local.is_empty() {
                    detail.push_str(&format!("; {}", preflight::missing_indexes_message(&local, profile, mapping)));
                }
                (if global.is_empty() { "exists" } else { "updated" }, detail)
            }
            None => {
                printer.note(format!("creating {table}"));
                dynamo.make_table(table, wanted).await.with_context(|| format!("creating {table}"))?;
                if mapping.diff == crate::profile::DiffMode::Index {
                    // Empty: every item a sync writes carries its bucket, so the first reads the index.
                    let created = dynamo.describe(table).await?.and_then(|info| info.created);
                    if let Some(created) = created {
                        crate::engine::diff_index::mark_complete(&*dynamo, profile, table, created).await?;
                    }
                }
                ("created", format!("{}, on demand", show_table_schema(wanted)))
            }
        };
        out.push(TableAction { table: table.clone(), action, detail });
    }
    Ok(out)
}

/// Deletes the tables that exist, under the run lock (waiting up to `lock_timeout` for it). A
/// signal ends the wait at once, and after it no further table is deleted.
pub async fn drop(
    profile: &Profile,
    mappings: &[&TableMapping],
    lock_timeout: Option<std::time::Duration>,
    printer: &Printer,
    stop: &crate::engine::stop::Stop,
) -> Result<Vec<TableAction>> {
    // The lock's wait and the deletions stop themselves on a signal.
    let _held = stop.hold();
    let dynamo = dynamo::connect(&profile.target).await;
    let tables: Vec<String> = mappings.iter().map(|m| m.table_name.clone()).collect();
    let dynamo = &dynamo;
    lock::with_lock(
        dynamo,
        profile,
        &tables,
        (false, lock_timeout),
        |e| printer.waiting_for_lock(lock_timeout, e),
        stop,
        |fence| async move {
            let mut out = Vec::new();
            for mapping in mappings {
                let table = &mapping.table_name;
                let exists = dynamo.describe(table).await.with_context(|| format!("reading {table}"))?.is_some();
                if exists {
                    fence.check()?;
                    if let Some(signal) = stop.requested() {
                        return Err(crate::engine::stop::Interrupted(signal).into());
                    }
                    printer.note(format!("deleting {table}"));
                    dynamo.drop_table(table).await.with_context(|| format!("deleting {table}"))?;
                }
                let (action, detail) = if exists { ("deleted", "") } else { ("absent", "did not exist") };
                out.push(TableAction { table: table.clone(), action, detail: detail.into() });
            }
            anyhow::Ok(out)
        },
    )
    .await
}
