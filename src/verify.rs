//! `ddbsync verify`: compares what DynamoDB holds with what the source would produce now.
//!
//! The source side is read in full (it costs nothing in DynamoDB): every row is built into its item
//! and kept as key digest → content hash. The target side is hashed from the items as stored,
//! never from the stored hash attribute, so that an item edited in DynamoDB by someone else is
//! caught even though its stored hash still matches (a sync would not rewrite it). `--full` scans
//! every item; a sample reads N source keys with BatchGetItem and N target items with one limited
//! Scan from a random segment, so that it costs about 2N reads whatever the table's size.
//!
//! The comparison of one item ([`judge`]) is pure and unit-tested.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use futures::StreamExt;
use serde::Serialize;

use crate::build::{Built, TablePlan};
use crate::dynamo::{Dynamo, Filter};
use crate::hash::{self, Digest};
use crate::item::{self, Item, HASH_ATTR};
use crate::params::Params;
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::report::usd;
use crate::retry::{self, RetryPolicy};
use crate::scan;
use crate::source::{self, Source};
use crate::sync;

/// Keys listed per kind of difference and table (the counts are always complete).
pub const LISTED: usize = 100;

/// Segments a sample's Scan divides the table into; it reads from one of them, chosen at random.
const SAMPLE_SEGMENTS: i32 = 16;

/// How much of the target to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// About this many source keys and as many target items.
    Sample(usize),
    /// Every item.
    Full,
}

/// An item that is not as the source says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub key: String,
    pub reason: String,
}

/// A kind of difference: how many, and the first [`LISTED`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct Found {
    pub count: u64,
    pub keys: Vec<Difference>,
}

impl Found {
    fn push(&mut self, key: impl FnOnce() -> String, reason: &str) {
        self.count += 1;
        if self.keys.len() < LISTED {
            self.keys.push(Difference { key: key(), reason: reason.to_string() });
        }
    }
}

/// One table's verification.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableVerify {
    pub table: String,
    /// Rows the source query returned.
    pub source_rows: u64,
    /// Of those, rows that cannot become items (the sync rejects them too).
    pub rejected: u64,
    /// Items in DynamoDB: counted by the Scan with `--full`, else DynamoDB's own estimate (refreshed
    /// about every six hours).
    pub target_items: u64,
    pub target_items_exact: bool,
    /// Items compared field by field (through their content hash).
    pub compared: u64,
    /// In the source, not in DynamoDB.
    pub missing: Found,
    /// In DynamoDB, not in the source.
    pub extra: Found,
    /// In both, with different content.
    pub differing: Found,
    /// Of the differing, items changed in DynamoDB after ddbsync wrote them: a sync does not rewrite
    /// them, because their stored hash still matches the source.
    pub edited: u64,
    pub read_units: f64,
}

impl TableVerify {
    pub fn differs(&self) -> bool {
        self.rejected + self.missing.count + self.extra.count + self.differing.count > 0
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub environment: String,
    pub region: String,
    /// `full`, or `sample` with its size.
    pub depth: String,
    pub tables: Vec<TableVerify>,
    pub read_units: f64,
    pub cost_usd: f64,
}

impl VerifyReport {
    pub fn differs(&self) -> bool {
        self.tables.iter().any(TableVerify::differs)
    }
}

pub const EDITED: &str = "changed in DynamoDB after ddbsync wrote it";
pub const SOURCE_CHANGED: &str = "the source changed since the last sync; the next sync rewrites it";
pub const NOT_OURS: &str = "written by something other than ddbsync (no stored hash); the next sync rewrites it";
pub const MISSING: &str = "no such item in DynamoDB";
pub const EXTRA: &str = "no source row gives this key";

/// What a stored item is, given the hash the source expects for its key (`None`: no source row),
/// the hash of its content as stored, and its stored hash attribute.
pub fn judge(expected: Option<&Digest>, content: &Digest, stored: Option<&Digest>) -> Option<&'static str> {
    match expected {
        None => Some(EXTRA),
        Some(e) if e == content => None,
        Some(e) if stored == Some(e) => Some(EDITED),
        Some(_) if stored.is_none() => Some(NOT_OURS),
        Some(_) => Some(SOURCE_CHANGED),
    }
}

/// The source side of one table.
struct Expected {
    /// Key → content hash and the entity that gives the item (whose exclusions hash it).
    hashes: HashMap<Digest, (Digest, usize)>,
    rows: u64,
    rejected: u64,
    /// A uniform sample of the built items' keys (reservoir sampling), for `Depth::Sample`.
    sample: Vec<(Digest, Item)>,
}

/// What a verify compares: the tables, how deep, and the query parameters.
pub struct Scope<'a> {
    pub tables: &'a [String],
    pub depth: Depth,
    pub params: &'a [(String, String)],
}

pub async fn run(profile: &Profile, scope: Scope<'_>, printer: &Printer) -> Result<VerifyReport> {
    let depth = scope.depth;
    let mappings = sync::selected(profile, scope.tables)?;
    let params = Params::new(profile, &mappings, scope.params)?;
    let source = Source::connect(profile).await?;
    let plans = sync::plans(&source, &mappings).await?;
    let dynamo = Dynamo::connect(&profile.target).await;
    let policy = RetryPolicy::new(profile.sync.max_attempts);
    let mut out = Vec::new();
    for (mapping, plan) in mappings.into_iter().zip(&plans) {
        let table = &mapping.table_name;
        let info = dynamo
            .describe(table)
            .await
            .with_context(|| format!("reading DynamoDB table {table} in {}", sync::location(profile)))?;
        if let Some(mismatch) = info.as_ref().and_then(|i| sync::key_mismatch(&i.key_schema, mapping, plan)) {
            anyhow::bail!(
                "DynamoDB table {table} {mismatch}; its items cannot be matched to the source (`sync --clean` \
                 recreates the table)"
            );
        }
        let sample_size = match depth {
            Depth::Sample(n) => n,
            Depth::Full => 0,
        };
        let bar = printer.counter(format!("{table}: reading the source"));
        let expected = read_source(&source, &params, mapping, plan, sample_size, &bar).await?;
        bar.finish_and_clear();
        let mut t = TableVerify {
            table: table.clone(),
            source_rows: expected.rows,
            rejected: expected.rejected,
            ..TableVerify::default()
        };
        // A parameterised query returns part of the table: without a scope, items it did not
        // return are not extras.
        let filter = params.filter(mapping, &plan.param_types);
        let extras = !mapping.takes_params() || filter.is_some();
        let remaining = match (&info, depth) {
            (None, _) => {
                printer.note(format!("{table} does not exist: every source row is missing"));
                t.target_items_exact = true;
                expected.hashes
            }
            (Some(_), Depth::Full) => {
                let bar = printer.counter(format!("{table}: reading every item"));
                let mut hashes = expected.hashes;
                t.read_units = scan::each_page(&dynamo, table, &policy, filter.as_ref(), |page| {
                    bar.inc(page.len() as u64);
                    t.target_items += page.len() as u64;
                    for item in &page {
                        compare(&mut t, plan, item, extras, |k| hashes.remove(k));
                    }
                    Ok(())
                })
                .await?;
                bar.finish_and_clear();
                t.target_items_exact = true;
                hashes
            }
            (Some(info), Depth::Sample(n)) => {
                t.target_items = info.item_count;
                sample(&dynamo, &policy, &mut t, (plan, filter.as_ref(), extras), &expected, n).await?;
                HashMap::new()
            }
        };
        // Missing items (full and absent tables): the count is known; name the first ones.
        if !remaining.is_empty() {
            t.missing.count += remaining.len() as u64;
            name_missing(&source, &params, (mapping, plan), &remaining, &mut t.missing.keys).await?;
        }
        tracing::info!(
            table = %t.table,
            compared = t.compared,
            missing = t.missing.count,
            extra = t.extra.count,
            differing = t.differing.count,
            "verified"
        );
        out.push(t);
    }
    let read_units = out.iter().map(|t| t.read_units).sum();
    Ok(VerifyReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        depth: match depth {
            Depth::Full => "full".into(),
            Depth::Sample(n) => format!("sample of {n}"),
        },
        tables: out,
        read_units,
        cost_usd: profile.prices.cost(0.0, read_units),
    })
}

/// Reads a table's source in full: key → content hash of every item, and a sample of keys.
async fn read_source(
    source: &Source,
    params: &Params,
    mapping: &TableMapping,
    plan: &TablePlan,
    sample_size: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Expected> {
    let mut e = Expected { hashes: HashMap::new(), rows: 0, rejected: 0, sample: Vec::new() };
    let key_names = plan.key_names();
    for (index, (entity, entity_plan)) in mapping.entities.iter().zip(&plan.entities).enumerate() {
        let mut rows = sync::open_rows(source, params, entity).await?;
        while let Some(row) = rows.next().await {
            e.rows += 1;
            bar.inc(1);
            let Ok(built) = entity_plan.build(&source::raw_values(&row?)) else {
                e.rejected += 1;
                continue;
            };
            e.take(built, index, sample_size, &key_names);
        }
    }
    Ok(e)
}

impl Expected {
    /// Adds a built item: its hash under its key, and maybe its key to the sample.
    fn take(&mut self, built: Built, entity: usize, sample_size: usize, key_names: &[&str]) {
        // A repeated key is rejected by the sync, which keeps the first row.
        if self.hashes.contains_key(&built.key) {
            self.rejected += 1;
            return;
        }
        self.hashes.insert(built.key, (built.hash, entity));
        let seen = self.hashes.len();
        // Reservoir sampling: the n-th key replaces a random slot with probability sample_size / n.
        let slot = if seen <= sample_size { seen - 1 } else { fastrand::usize(..seen) };
        if slot < sample_size {
            let mut key = built.item;
            key.retain(|name, _| key_names.contains(&name.as_str()));
            let entry = (built.key, key);
            if slot < self.sample.len() {
                self.sample[slot] = entry;
            } else {
                self.sample.push(entry);
            }
        }
    }
}

/// Compares one stored item with the source's hash for its key, which `expected` looks up (and,
/// with `--full`, removes, so that what remains at the end is missing). An item the source does
/// not give is an extra only when `extras` (the whole table, or its scope, was read).
fn compare(
    t: &mut TableVerify,
    plan: &TablePlan,
    item: &Item,
    extras: bool,
    expected: impl FnOnce(&Digest) -> Option<(Digest, usize)>,
) {
    let key_names = plan.key_names();
    let Some(key) = hash::item_key_digest(item, &key_names) else { return };
    let Some((expected, entity)) = expected(&key).map(|(h, e)| (Some(h), e)).or(extras.then_some((None, 0))) else {
        return;
    };
    let stored = item.get(HASH_ATTR).and_then(|v| v.as_s().ok()).and_then(|h| hash::from_hex(h));
    t.compared += u64::from(expected.is_some());
    let describe = || item::describe_key(item, &key_names);
    match judge(expected.as_ref(), &plan.entities[entity].content_hash(item), stored.as_ref()) {
        None => {}
        Some(EXTRA) => t.extra.push(describe, EXTRA),
        Some(reason) => {
            t.edited += u64::from(reason == EDITED);
            t.differing.push(describe, reason);
        }
    }
}

/// The sampled comparison: the sampled source keys read back by key, then a limited Scan of the
/// target from a random segment for items the source does not have.
async fn sample(
    dynamo: &Dynamo,
    policy: &RetryPolicy,
    t: &mut TableVerify,
    (plan, filter, extras): (&TablePlan, Option<&Filter>, bool),
    expected: &Expected,
    n: usize,
) -> Result<()> {
    let key_names = plan.key_names();
    let lookup = |k: &Digest| expected.hashes.get(k).copied();
    let mut found = HashSet::new();
    for chunk in expected.sample.chunks(100) {
        let mut keys: Vec<Item> = chunk.iter().map(|(_, k)| k.clone()).collect();
        let mut delays = policy.delays();
        while !keys.is_empty() {
            let (fetched, _) = retry::retrying(policy, || dynamo.batch_get(&t.table, keys.clone())).await;
            let fetched = fetched.with_context(|| format!("reading {}", t.table))?;
            t.read_units += fetched.consumed_units;
            for item in &fetched.items {
                found.extend(hash::item_key_digest(item, &key_names));
                compare(t, plan, item, true, lookup);
            }
            keys = fetched.unprocessed;
            if !keys.is_empty() {
                let delay = delays.next().with_context(|| format!("{}: keys left unprocessed", t.table))?;
                tokio::time::sleep(delay).await;
            }
        }
    }
    for (key, item_key) in &expected.sample {
        if !found.contains(key) {
            t.missing.push(|| item::describe_key(item_key, &key_names), MISSING);
        }
    }
    let segment = fastrand::i32(0..SAMPLE_SEGMENTS);
    let (page, _) = retry::retrying(policy, || {
        dynamo.scan_limited(&t.table, &[], (segment, SAMPLE_SEGMENTS), None, Some(n.max(1) as i32), filter)
    })
    .await;
    let page = page.with_context(|| format!("reading {}", t.table))?;
    t.read_units += page.consumed_units;
    for item in page.items.iter().filter(|i| hash::item_key_digest(i, &key_names).is_some_and(|k| !found.contains(&k)))
    {
        compare(t, plan, item, extras, lookup);
    }
    Ok(())
}

/// Reads the source again to name the first [`LISTED`] missing keys (only when some are missing).
async fn name_missing(
    source: &Source,
    params: &Params,
    (mapping, plan): (&TableMapping, &TablePlan),
    missing: &HashMap<Digest, (Digest, usize)>,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let key_names = plan.key_names();
    for (entity, entity_plan) in mapping.entities.iter().zip(&plan.entities) {
        let mut rows = sync::open_rows(source, params, entity).await?;
        while let Some(row) = rows.next().await {
            if out.len() >= LISTED {
                return Ok(());
            }
            if let Ok(built) = entity_plan.build(&source::raw_values(&row?)) {
                if missing.contains_key(&built.key) {
                    out.push(Difference { key: item::describe_key(&built.item, &key_names), reason: MISSING.into() });
                }
            }
        }
    }
    Ok(())
}

impl VerifyReport {
    /// The human form: one row per table, then the first keys of each kind of difference.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["table", "source rows", "target items", "compared", "missing", "extra", "differing"]);
        for t in &self.tables {
            let count =
                if t.target_items_exact { t.target_items.to_string() } else { format!("≈{}", t.target_items) };
            let mut cells = vec![Cell::new(&t.table)];
            let figures = [
                t.source_rows.to_string(),
                count,
                t.compared.to_string(),
                t.missing.count.to_string(),
                t.extra.count.to_string(),
                t.differing.count.to_string(),
            ];
            cells.extend(figures.into_iter().map(|f| Cell::new(f).set_alignment(CellAlignment::Right)));
            table.add_row(cells);
        }
        let mut out = format!("{} ({}), verify ({})\n{table}\n", self.environment, self.region, self.depth);
        for t in &self.tables {
            if t.rejected > 0 {
                out.push_str(&format!(
                    "{}: {} source rows cannot be written (see sync's report)\n",
                    t.table, t.rejected
                ));
            }
            for (what, found) in [("missing", &t.missing), ("extra", &t.extra), ("differing", &t.differing)] {
                if found.count == 0 {
                    continue;
                }
                out.push_str(&format!("{}: {} {what}:\n", t.table, found.count));
                for d in found.keys.iter().take(20) {
                    out.push_str(&format!("  {}: {}\n", d.key, d.reason));
                }
                if found.count > 20 {
                    out.push_str(&format!("  … and {} more (--json lists the first {LISTED})\n", found.count - 20));
                }
            }
        }
        for t in self.tables.iter().filter(|t| t.edited > 0) {
            out.push_str(&format!(
                "{}: {} items were changed in DynamoDB directly. A sync does not rewrite them, because their stored \
                 hash still matches the source; `ddbsync sync {} --clean --table <name>` rewrites the table.\n",
                t.table, t.edited, self.environment
            ));
        }
        let verdict = if self.differs() { "Differences found" } else { "No differences" };
        out.push_str(&format!(
            "{verdict}; read {} units ({}).\n",
            crate::report::units(self.read_units),
            usd(self.cost_usd)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Digest = [1; 16];
    const B: Digest = [2; 16];
    const C: Digest = [3; 16];

    #[test]
    fn an_item_as_the_source_says_matches_whatever_its_stored_hash() {
        assert_eq!(judge(Some(&A), &A, Some(&A)), None);
        assert_eq!(judge(Some(&A), &A, None), None);
        assert_eq!(judge(Some(&A), &A, Some(&B)), None);
    }

    #[test]
    fn an_item_edited_in_dynamodb_is_told_from_a_changed_source() {
        // Written with hash A, the source still says A, the content now hashes to B: someone edited it.
        assert_eq!(judge(Some(&A), &B, Some(&A)), Some(EDITED));
        // Written with A, content still A, the source now says C: the next sync fixes it.
        assert_eq!(judge(Some(&C), &A, Some(&A)), Some(SOURCE_CHANGED));
        assert_eq!(judge(Some(&C), &B, Some(&A)), Some(SOURCE_CHANGED));
        assert_eq!(judge(Some(&C), &B, None), Some(NOT_OURS));
        assert_eq!(judge(None, &A, Some(&A)), Some(EXTRA));
    }

    #[test]
    fn lists_are_capped_but_counts_are_not() {
        let mut found = Found::default();
        for i in 0..(LISTED + 5) {
            found.push(|| format!("id={i}"), MISSING);
        }
        assert_eq!(found.count, LISTED as u64 + 5);
        assert_eq!(found.keys.len(), LISTED);
        assert_eq!(found.keys[0].key, "id=0");
    }

    #[test]
    fn the_report_lists_differences_and_its_verdict() {
        let mut t = TableVerify { table: "t-lessons".into(), source_rows: 40, target_items: 40, ..Default::default() };
        t.target_items_exact = true;
        t.compared = 40;
        t.differing.push(|| "lesson_id=7".into(), EDITED);
        t.edited = 1;
        let report = VerifyReport {
            environment: "dev".into(),
            region: "us-east-1".into(),
            depth: "full".into(),
            tables: vec![t],
            read_units: 2.5,
            cost_usd: 0.0000003125,
        };
        assert!(report.differs());
        insta::assert_snapshot!(report.render());
    }
}
