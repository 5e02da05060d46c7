//! `ddbsync plan`: a sync's diff, made by a dry run whose target keeps every write whole and the
//! hash the diff read at each key ([`Capture`]), turned into a [`PlanFile`]. Nothing is written to
//! DynamoDB and no lock is taken (as for any dry run). The items an update or a delete would
//! replace are then read whole (BatchGetItem, counted in the plan's reads), so that the plan holds
//! what each change was computed against ([`Against`]); `--show N` reads the stored items of up to N
//! changes to show what changes inside them, and counts those reads.
//!
//! A plan covers tables that exist: a table the sync would create (or a `--clean`) is a change of
//! schema, which `tables create` makes, not a change of items that a condition can guard.

use std::sync::Arc;

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

use crate::engine::preflight;
use crate::engine::stop::Stop;
use crate::engine::sync::{self, SyncOptions};
use crate::exit::UsageError;
use crate::printer::Printer;
use crate::profile::Profile;
use crate::pure::ddb_json;
use crate::pure::hash;
use crate::pure::item::{self, Item};
use crate::pure::planfile::{
    self, attribute_changes, Against, PlanFile, PlanTable, PlannedDelete, PlannedPut, ShownChange,
};
use crate::pure::report::RunReport;
use crate::target::dryrun::{Capture, Mode};
use crate::target::retry::{self, RetryPolicy};
use crate::target::{dynamo, Target};

/// A plan made, with the dry run's report (its rejects and notes) and the `--show` view.
pub struct Made {
    pub plan: PlanFile,
    pub report: RunReport,
    pub shown: Vec<ShownChange>,
    /// Read units the `--show` view's reads took (estimated from the items' sizes).
    pub show_read_units: f64,
    /// Changes left out because their item changed between the diff's read and the read of the
    /// item whole (another run or a hand edit): table and key of each.
    pub moved: Vec<String>,
}

/// Makes the plan of `options`' tables and parameters (always a dry run). `now` is its creation time.
pub async fn make(
    profile: &Profile,
    options: SyncOptions,
    show: usize,
    now: chrono::DateTime<chrono::Utc>,
    printer: &Printer,
    stop: &Stop,
) -> Result<Made> {
    let mappings = preflight::selected(profile, &options.tables)?;
    let capture = Arc::new(Capture::default());
    let options = SyncOptions { mode: Mode::Rehearsal, clean: false, capture: Some(capture.clone()), ..options };
    let finished = sync::run(profile, &options, printer, stop).await?;
    if let Some(error) = finished.error {
        return Err(error.context("making the plan; no plan was written"));
    }
    let report = finished.report;
    let reader = dynamo::connect(&profile.target).await;
    let mut tables = Vec::new();
    // What reading the replaced items took: what the apply's reads of them take again.
    let mut replaced_reads = 0.0;
    let mut moved = Vec::new();
    for mapping in &mappings {
        let name = &mapping.table_name;
        let Some(figures) = report.tables.iter().find(|t| &t.table == name) else {
            bail!("making the plan: the dry run did not get to table {name}; no plan was written")
        };
        if figures.table_created {
            return Err(UsageError(format!(
                "{name} does not exist, and a plan holds changes of items, not of tables: create it with `ddbsync \
                 tables create {} --table {}`, then run ddbsync plan again",
                profile.env, mapping.name
            ))
            .into());
        }
        let captured = capture.table(name);
        let key: Vec<&str> = captured.key_names.iter().map(String::as_str).collect();
        let mut puts = captured.puts.clone();
        // In key order, so that a plan reads (and diffs) the same from one day to the next.
        puts.sort_by_cached_key(|i| item::describe_key(i, &key));
        let mut deletes = captured.deletes.clone();
        deletes.sort_by_cached_key(|i| item::describe_key(i, &key));
        // The items the changes replace or delete, read whole: the diff read only their hashes.
        let replaced: Vec<Item> = puts
            .iter()
            .filter(|i| hash::item_key_digest(i, &key).is_some_and(|k| captured.stored.contains_key(&k)))
            .chain(&deletes)
            .map(|i| key_of(i, &key))
            .collect();
        let (stored, reads) = read_whole(&*reader, name, &key, replaced).await?;
        replaced_reads += reads;
        // A change computed against an item that has moved since the diff read it would be applied
        // against what the later read found, newer than what it was computed from: left out (the
        // next plan computes it afresh). A create is guarded by its condition alone.
        let moved_item = |item: &Item| {
            let digest = hash::item_key_digest(item, &key)?;
            let seen = captured.stored.get(&digest)?;
            let now = stored.get(&digest).map(|i| i.get(item::HASH_ATTR).and_then(|h| h.as_s().ok()).cloned());
            (now.as_ref() != Some(seen)).then(|| format!("{name}: {}", item::describe_key(item, &key)))
        };
        let before = moved.len();
        moved.extend(puts.iter().chain(&deletes).filter_map(moved_item));
        if moved.len() > before {
            puts.retain(|i| moved_item(i).is_none());
            deletes.retain(|i| moved_item(i).is_none());
        }
        let against = |item: &Item| {
            let digest = hash::item_key_digest(item, &key);
            Against::of(digest.and_then(|d| stored.get(&d)))
        };
        tables.push(PlanTable {
            name: mapping.name.clone(),
            table: name.clone(),
            key: captured.key_names.clone(),
            puts: puts.iter().map(|i| PlannedPut { item: ddb_json::item_to_json(i), against: against(i) }).collect(),
            deletes: deletes
                .iter()
                .map(|k| PlannedDelete { key: ddb_json::item_to_json(k), against: against(k) })
                .collect(),
            unchanged: figures.unchanged,
            rejected: figures.rejected.len() as u64,
            write_units: figures.write_units,
            read_units: figures.read_units + reads,
        });
    }
    let write_units: f64 = tables.iter().map(|t| t.write_units).sum();
    let read_units: f64 = tables.iter().map(|t| t.read_units).sum();
    let plan = PlanFile {
        kind: planfile::KIND.into(),
        format: planfile::FORMAT,
        environment: profile.env.clone(),
        fingerprint: planfile::fingerprint(profile, &mappings),
        created_at: now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        params: report.params.clone(),
        tables,
        read_units,
        write_units,
        apply_read_units: replaced_reads,
        cost_usd: profile.prices.cost(write_units, replaced_reads),
        checksum: None,
    };
    let (shown, show_read_units) = match show {
        0 => (Vec::new(), 0.0),
        n => show_changes(&*reader, &plan, n).await?,
    };
    Ok(Made { plan, report, shown, show_read_units, moved })
}

/// The key attributes of an item.
fn key_of(item: &Item, key: &[&str]) -> Item {
    item.iter().filter(|(k, _)| key.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The stored items at `keys`, by key digest (strongly consistent BatchGetItem calls of 100 keys,
/// each retried as a Scan page is), and the read units they took.
async fn read_whole(
    dynamo: &dyn Target,
    table: &str,
    key: &[&str],
    keys: Vec<Item>,
) -> Result<(HashMap<hash::Digest, Item>, f64)> {
    let mut found = HashMap::new();
    let mut units = 0.0;
    let policy = RetryPolicy::new(10);
    for chunk in keys.chunks(100) {
        let mut left = chunk.to_vec();
        let mut rounds = 0;
        while !left.is_empty() {
            rounds += 1;
            if rounds > 20 {
                bail!("reading the stored items of {table}: DynamoDB left keys unread 20 times; try again later");
            }
            let (fetched, _) = retry::retrying(&policy, || dynamo.batch_get(table, left.clone())).await;
            let fetched = fetched.with_context(|| format!("reading the stored items of {table}"))?;
            units += fetched.consumed_units;
            for item in fetched.items {
                if let Some(digest) = hash::item_key_digest(&item, key) {
                    found.insert(digest, item);
                }
            }
            left = fetched.unprocessed;
        }
    }
    Ok((found, units))
}

/// The attribute-level view of the plan's first `n` changes: each stored item read by key (a
/// strongly consistent read, billed one unit per 4 KB of the item, one at least).
async fn show_changes(dynamo: &dyn Target, plan: &PlanFile, n: usize) -> Result<(Vec<ShownChange>, f64)> {
    let mut shown = Vec::new();
    let mut reads = 0.0;
    for table in &plan.tables {
        let key: Vec<&str> = table.key.iter().map(String::as_str).collect();
        let changes = table.puts.iter().map(|p| (&p.item, true)).chain(table.deletes.iter().map(|d| (&d.key, false)));
        for (json, put) in changes {
            if shown.len() >= n {
                return Ok((shown, reads));
            }
            let new = ddb_json::item_from_json(json).map_err(anyhow::Error::msg)?;
            let key_item = key_of(&new, &key);
            let old = dynamo
                .get_item(&table.table, key_item)
                .await
                .map_err(|e| anyhow::anyhow!("reading an item of {} to show its changes: {e}", table.table))?;
            reads += old.as_ref().map_or(1, |o| item::item_size(o).div_ceil(4096).max(1)) as f64;
            let empty = Item::new();
            let (change, before, after) = match (put, &old) {
                (true, None) => ("create", &empty, &new),
                (true, Some(old)) => ("update", old, &new),
                (false, old) => ("delete", old.as_ref().unwrap_or(&empty), &empty),
            };
            shown.push(ShownChange {
                table: table.table.clone(),
                key: item::describe_key(&new, &key),
                change,
                attributes: attribute_changes(before, after),
            });
        }
    }
    Ok((shown, reads))
}
