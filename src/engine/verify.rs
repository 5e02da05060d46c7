//! `ddbsync verify`: compares what DynamoDB holds with what the source would produce now.
//!
//! The source side is read in full (it costs nothing in DynamoDB): every row is built into its item
//! and kept as key digest → content hash. The target side is hashed from the items as stored,
//! never taken from the stored hash attribute, so that an item edited in DynamoDB by someone else
//! is caught even though its stored hash still matches (a sync would not rewrite it); and the
//! stored hash attribute must be the content's too, so that an item whose hash was removed or
//! altered (which a sync would rewrite) is caught although its content matches. `--full` scans
//! every item; a sample reads N source keys with BatchGetItem and N target items with one limited
//! Scan from a random segment, so that it costs about 2N reads whatever the table's size. A table no
//! bigger than the sample, or small enough that reading it whole costs less than the sample
//! ([`reads_whole`]), is read whole instead: a sample of a small table would miss most extras.
//!
//! Every difference found is also kept by key ([`Fixes`]), for `verify --repair` ([`crate::engine::repair`]).
//! A rejected row's stored item is not an extra: as in a sync, it is kept (stale), never deleted.
//!
//! The comparison of one item ([`judge`]) and the choice of a whole read are pure and unit-tested.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, Result};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use futures::StreamExt;
use serde::Serialize;

use crate::engine::preflight;
use crate::engine::scan;
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::pure::cost::Footprint;
use crate::pure::hash::{self, Digest};
use crate::pure::item::{self, Item, HASH_ATTR};
use crate::pure::params::Params;
use crate::pure::plan::{Built, TablePlan};
use crate::pure::report::usd;
use crate::source::{self, Source};
use crate::target::dynamo;
use crate::target::retry::{self, RetryPolicy};
use crate::target::{Filter, IndexSchema, Target};

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
    /// The mapping's name (without the prefix), for the `--table` of the advice.
    #[serde(skip)]
    pub name: String,
    /// The table exists (a repair writes only into existing tables; a sync creates them).
    #[serde(skip)]
    pub exists: bool,
    /// Rows the source query returned.
    pub source_rows: u64,
    /// Of those, rows that cannot become items (the sync rejects them too).
    pub rejected: u64,
    /// Items the source gives (distinct keys of the rows that can become items).
    pub source_items: u64,
    /// Items in DynamoDB: counted by the Scan when the table was read whole, else DynamoDB's own
    /// estimate (refreshed about every six hours).
    pub target_items: u64,
    pub target_items_exact: bool,
    /// Every item was read (`--full`, or a sample at least as large as the table, or cheaper read whole).
    pub read_whole: bool,
    /// Both counts are exact, cover the same items, and differ.
    pub counts_differ: bool,
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
        self.counts_differ || self.rejected + self.missing.count + self.extra.count + self.differing.count > 0
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
    /// `verify --repair` follows: the advice to run it is left out.
    #[serde(skip)]
    pub repairing: bool,
    /// The run's `--param`s, which the advised commands repeat.
    #[serde(skip)]
    pub params: Vec<(String, String)>,
}

impl VerifyReport {
    pub fn differs(&self) -> bool {
        self.tables.iter().any(TableVerify::differs)
    }
}

pub const EDITED: &str = "changed in DynamoDB after ddbsync wrote it";
pub const SOURCE_CHANGED: &str = "the source changed since the last sync; the next sync rewrites it";
pub const NOT_OURS: &str = "written by something other than ddbsync (no stored hash); the next sync rewrites it";
/// The content is the source's, but the stored hash attribute is missing or is not the content's:
/// a sync would rewrite the item (its hash does not match), so it is a difference.
pub const HASH_DIFFERS: &str = "not written by ddbsync or edited: its stored hash attribute is missing or not its \
                                content's; the next sync rewrites it";
pub const MISSING: &str = "no such item in DynamoDB";
pub const EXTRA: &str = "no source row gives this key";

/// What a stored item is, given the hash the source expects for its key (`None`: no source row),
/// the hash of its content as stored, and its stored hash attribute. An item matches only when
/// both its content and its stored hash are the source's: a sync compares the stored hash, so an
/// item whose hash attribute was removed or altered is one it would rewrite.
pub fn judge(expected: Option<&Digest>, content: &Digest, stored: Option<&Digest>) -> Option<&'static str> {
    match expected {
        None => Some(EXTRA),
        Some(e) if e == content && stored == Some(e) => None,
        Some(e) if e == content => Some(HASH_DIFFERS),
        Some(e) if stored == Some(e) => Some(EDITED),
        Some(_) if stored.is_none() => Some(NOT_OURS),
        Some(_) => Some(SOURCE_CHANGED),
    }
}

/// Whether a sample of `n` should read the table whole instead: when the table (by the larger of
/// the source's count and DynamoDB's estimate) holds no more than `n` items, or when a Scan of all of
/// it costs fewer read units than the sample, which reads up to `n` source keys by key (strongly
/// consistent: a unit per started 4 KB of each item) and `n` items by Scan (half a unit per 4 KB).
/// Item sizes are the source's (`source_bytes` over `source_items`).
pub fn reads_whole(n: usize, source_items: u64, source_bytes: u64, target_estimate: u64) -> bool {
    let items = source_items.max(target_estimate);
    if items <= n as u64 {
        return true;
    }
    let size = source_bytes as f64 / source_items.max(1) as f64;
    let by_key = (size / 4096.0).ceil().max(1.0);
    let sample = source_items.min(n as u64) as f64 * by_key + n as f64 * size / 8192.0;
    let whole = items as f64 * size / 8192.0;
    whole <= sample
}

/// What verify found by key, for a repair: the keys whose item must be written from the source
/// (missing or differing), and the keys of the extras (their key attributes, to delete them).
#[derive(Debug, Default)]
pub struct Fixes {
    /// Key → true when the item is missing, false when it differs.
    pub write: HashMap<Digest, bool>,
    pub delete: HashMap<Digest, Item>,
    /// The [`Footprint`] of each differing and extra item as stored (verify reads whole items), so
    /// that a repair's dry run prices its writes and deletes as DynamoDB bills them.
    pub stored: HashMap<Digest, Footprint>,
    /// The table's indexes, which the footprints are made with.
    pub indexes: Vec<IndexSchema>,
}

/// The source side of one table.
struct Expected {
    /// Key → content hash and the entity that gives the item (whose exclusions hash it).
    hashes: HashMap<Digest, (Digest, usize)>,
    /// Keys of rejected rows: their stored items are kept (stale), so they are not extras.
    stale: HashSet<Digest>,
    rows: u64,
    rejected: u64,
    /// DynamoDB sizes of the built items, summed: how much a whole read costs.
    bytes: u64,
    /// Estimated write units of every built item: what rewriting the table would cost.
    units: u64,
    /// A uniform sample of the built items' keys (reservoir sampling), for `Depth::Sample`.
    sample: Vec<(Digest, Item)>,
}

/// What a verify compares: the tables, how deep, and the query parameters.
pub struct Scope<'a> {
    pub tables: &'a [String],
    pub depth: Depth,
    pub params: &'a [(String, String)],
}

/// A verify's report, with what a repair needs to act on it: the source (still connected), each
/// table's plan and the differences by key.
pub struct Verified<'p> {
    pub report: VerifyReport,
    pub source: Box<dyn Source>,
    pub params: Params,
    pub dynamo: Arc<dyn Target>,
    /// Per table verified: its mapping, plan, what verify found by key, and the source's estimate of
    /// a full rewrite (write units).
    pub tables: Vec<(&'p TableMapping, TablePlan, Fixes, u64)>,
}

pub async fn run<'p>(profile: &'p Profile, scope: Scope<'_>, printer: &Printer) -> Result<Verified<'p>> {
    let depth = scope.depth;
    let mappings = preflight::selected(profile, scope.tables)?;
    let mut params = Params::new(profile, &mappings, scope.params)?;
    let source = source::connect(profile).await?;
    let mut plans = preflight::plans(source.as_ref(), &mappings).await?;
    preflight::check_params(&mut params, &mappings, &mut plans)?;
    let dynamo = dynamo::connect(&profile.target).await;
    let policy = RetryPolicy::new(profile.sync.max_attempts);
    let mut out = Vec::new();
    let mut tables = Vec::new();
    for (mapping, plan) in mappings.into_iter().zip(plans) {
        let table = &mapping.table_name;
        let compared = preflight::compare(&*dynamo, profile, mapping, &plan, false).await?;
        let info = compared.info;
        if let Some(mismatch) = compared.mismatch {
            anyhow::bail!(
                "DynamoDB table {table} {mismatch}; its items cannot be matched to the source (`ddbsync sync {} \
                 --clean --table {}` recreates the table)",
                profile.env,
                mapping.name
            );
        }
        let owned = plan;
        let plan = &owned;
        let sample_size = match depth {
            Depth::Sample(n) => n,
            Depth::Full => 0,
        };
        let bar = printer.counter(format!("{table}: reading the source"));
        let expected = read_source(source.as_ref(), &params, mapping, plan, sample_size, &bar).await?;
        bar.finish_and_clear();
        let mut t = TableVerify {
            table: table.clone(),
            name: mapping.name.clone(),
            exists: info.is_some(),
            source_rows: expected.rows,
            rejected: expected.rejected,
            source_items: expected.hashes.len() as u64,
            ..TableVerify::default()
        };
        let mut fixes =
            Fixes { indexes: info.as_ref().map(|i| i.indexes.clone()).unwrap_or_default(), ..Fixes::default() };
        // A parameterised query returns part of the table: without a scope, items it did not
        // return are not extras.
        let filter = params.filter(mapping, &plan.param_types, &plan.scope_values);
        let extras = !mapping.takes_params() || filter.is_some();
        let whole = match (&info, depth) {
            (Some(_), Depth::Full) => true,
            (Some(info), Depth::Sample(n)) => reads_whole(n, t.source_items, expected.bytes, info.item_count),
            (None, _) => false,
        };
        let units = expected.units;
        let remaining = match &info {
            None => {
                printer.note(format!("{table} does not exist: every source row is missing"));
                t.target_items_exact = true;
                t.read_whole = true;
                expected.hashes
            }
            Some(_) if whole => {
                let bar = printer.counter(format!("{table}: reading every item"));
                let (mut hashes, stale) = (expected.hashes, expected.stale);
                t.read_units = scan::each_page(&*dynamo, table, &policy, (&[], filter.as_ref()), |page| {
                    bar.inc(page.len() as u64);
                    t.target_items += page.len() as u64;
                    for item in &page {
                        compare(&mut t, &mut fixes, plan, item, (extras, &stale), |k| hashes.remove(k));
                    }
                    Ok(())
                })
                .await?;
                bar.finish_and_clear();
                t.target_items_exact = true;
                t.read_whole = true;
                hashes
            }
            Some(info) => {
                t.target_items = info.item_count;
                let n = match depth {
                    Depth::Sample(n) => n,
                    Depth::Full => unreachable!("a full verify reads the table whole"),
                };
                sample(&*dynamo, &policy, (&mut t, &mut fixes), (plan, filter.as_ref(), extras), &expected, n).await?;
                HashMap::new()
            }
        };
        // Missing items (whole reads and absent tables): the count is known; name the first ones.
        if !remaining.is_empty() {
            t.missing.count += remaining.len() as u64;
            fixes.write.extend(remaining.keys().map(|k| (*k, true)));
            name_missing(source.as_ref(), &params, (mapping, plan), &remaining, &mut t.missing.keys).await?;
        }
        // With every item read and extras judged, the two counts cover the same items.
        t.counts_differ = t.target_items_exact && extras && t.target_items != t.source_items;
        tracing::info!(
            table = %t.table,
            compared = t.compared,
            missing = t.missing.count,
            extra = t.extra.count,
            differing = t.differing.count,
            "verified"
        );
        out.push(t);
        tables.push((mapping, owned, fixes, units));
    }
    let read_units = out.iter().map(|t| t.read_units).sum();
    let report = VerifyReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        depth: match depth {
            Depth::Full => "full".into(),
            Depth::Sample(n) => format!("sample of {n}"),
        },
        tables: out,
        read_units,
        cost_usd: profile.prices.cost(0.0, read_units),
        repairing: false,
        params: scope.params.to_vec(),
    };
    Ok(Verified { report, source, params, dynamo, tables })
}

/// Reads a table's source in full: key → content hash of every item, and a sample of keys.
async fn read_source(
    source: &dyn Source,
    params: &Params,
    mapping: &TableMapping,
    plan: &TablePlan,
    sample_size: usize,
    bar: &indicatif::ProgressBar,
) -> Result<Expected> {
    let mut e = Expected {
        hashes: HashMap::new(),
        stale: HashSet::new(),
        rows: 0,
        rejected: 0,
        bytes: 0,
        units: 0,
        sample: Vec::new(),
    };
    let key_names = plan.key_names();
    for (index, (entity, entity_plan)) in mapping.entities.iter().zip(&plan.entities).enumerate() {
        let mut rows = preflight::open_rows(source, params, entity).await?;
        while let Some(row) = rows.next().await {
            e.rows += 1;
            bar.inc(1);
            let row = row?;
            let raw = row;
            let built = match entity_plan.build(raw) {
                Ok(built) => built,
                Err(rejected) => {
                    source.rejected_last(&entity.query);
                    e.rejected += 1;
                    e.stale.extend(rejected.key.ok());
                    continue;
                }
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
        self.bytes += built.size as u64;
        self.units += built.units;
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
/// in a whole read, removes, so that what remains at the end is missing). An item the source does
/// not give is an extra only when `extras` (the whole table, or its scope, was read) and its key is
/// not a rejected row's (`stale`: kept as it is, as a sync keeps it). Each difference is also kept
/// by key in `fixes`.
fn compare(
    t: &mut TableVerify,
    fixes: &mut Fixes,
    plan: &TablePlan,
    item: &Item,
    (extras, stale): (bool, &HashSet<Digest>),
    expected: impl FnOnce(&Digest) -> Option<(Digest, usize)>,
) {
    let key_names = plan.key_names();
    let Some(key) = hash::item_key_digest(item, &key_names) else { return };
    let extras = extras && !stale.contains(&key);
    let Some((expected, entity)) = expected(&key).map(|(h, e)| (Some(h), e)).or(extras.then_some((None, 0))) else {
        return;
    };
    let stored = item.get(HASH_ATTR).and_then(|v| v.as_s().ok()).and_then(|h| hash::from_hex(h));
    t.compared += u64::from(expected.is_some());
    let describe = || item::describe_key(item, &key_names);
    let verdict = judge(expected.as_ref(), &plan.entities[entity].content_hash(item), stored.as_ref());
    if verdict.is_some() {
        fixes.stored.insert(key, Footprint::of(item, &key_names, &fixes.indexes));
    }
    match verdict {
        None => {}
        Some(EXTRA) => {
            t.extra.push(describe, EXTRA);
            let mut key_item = item.clone();
            key_item.retain(|name, _| key_names.contains(&name.as_str()));
            fixes.delete.insert(key, key_item);
        }
        Some(reason) => {
            t.edited += u64::from(reason == EDITED);
            t.differing.push(describe, reason);
            fixes.write.insert(key, false);
        }
    }
}

/// The sampled comparison: the sampled source keys read back by key, then a limited Scan of the
/// target from a random segment for items the source does not have.
async fn sample(
    dynamo: &dyn Target,
    policy: &RetryPolicy,
    (t, fixes): (&mut TableVerify, &mut Fixes),
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
                compare(t, fixes, plan, item, (true, &expected.stale), lookup);
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
            fixes.write.insert(*key, true);
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
        compare(t, fixes, plan, item, (extras, &expected.stale), lookup);
    }
    Ok(())
}

/// Reads the source again to name the first [`LISTED`] missing keys (only when some are missing).
async fn name_missing(
    source: &dyn Source,
    params: &Params,
    (mapping, plan): (&TableMapping, &TablePlan),
    missing: &HashMap<Digest, (Digest, usize)>,
    out: &mut Vec<Difference>,
) -> Result<()> {
    let key_names = plan.key_names();
    for (entity, entity_plan) in mapping.entities.iter().zip(&plan.entities) {
        let mut rows = preflight::open_rows(source, params, entity).await?;
        while let Some(row) = rows.next().await {
            if out.len() >= LISTED {
                return Ok(());
            }
            if let Ok(built) = entity_plan.build(row?) {
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
        for t in self.tables.iter().filter(|t| t.counts_differ) {
            out.push_str(&format!(
                "{}: the source gives {} items and DynamoDB holds {}.\n",
                t.table, t.source_items, t.target_items
            ));
        }
        for t in self.tables.iter().filter(|t| t.edited > 0) {
            let fix = if self.repairing { "the repair below does" } else { "a repair does" };
            out.push_str(&format!(
                "{}: {} items were changed in DynamoDB directly. A sync does not rewrite them, because their stored \
                 hash still matches the source; {fix}.\n",
                t.table, t.edited
            ));
        }
        // A missing table is the sync's to create and fill: a repair writes only into existing tables.
        let params: String =
            self.params.iter().map(|(k, v)| format!(" --param {}", shell_word(&format!("{k}={v}")))).collect();
        let absent: String = self.tables.iter().filter(|t| !t.exists).map(|t| format!(" --table {}", t.name)).collect();
        if !absent.is_empty() {
            out.push_str(&format!(
                "`ddbsync sync {}{absent}{params}` creates and fills the tables that do not exist.\n",
                self.environment
            ));
        }
        let fixable = |t: &&TableVerify| t.exists && t.missing.count + t.extra.count + t.differing.count > 0;
        if !self.repairing && self.tables.iter().any(|t| fixable(&t)) {
            let tables: String = self.tables.iter().filter(fixable).map(|t| format!(" --table {}", t.name)).collect();
            out.push_str(&format!(
                "`ddbsync verify {}{tables}{params} --repair` writes the missing and differing items from the source and \
                 deletes the extra ones where the mapping sets delete_missing (asks first).\n",
                self.environment
            ));
        }
        let sampled: Vec<&str> = self.tables.iter().filter(|t| !t.read_whole).map(|t| t.table.as_str()).collect();
        if !sampled.is_empty() && self.depth != "full" {
            out.push_str(&format!(
                "Sampled: {} (items outside the sample were not compared; --full compares every one).\n",
                sampled.join(", ")
            ));
        }
        let verdict = if self.differs() { "Differences found" } else { "No differences" };
        out.push_str(&format!(
            "{verdict}; read {} units ({}).\n",
            crate::pure::report::units(self.read_units),
            usd(self.cost_usd)
        ));
        out
    }
}

/// `word` as a shell reads it back: quoted unless it holds only characters no shell treats apart.
fn shell_word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:,/=+@%".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Digest = [1; 16];
    const B: Digest = [2; 16];
    const C: Digest = [3; 16];

    #[test]
    fn an_item_as_the_source_says_matches_only_with_its_stored_hash() {
        assert_eq!(judge(Some(&A), &A, Some(&A)), None);
        // The hash attribute removed or altered in DynamoDB: a sync would rewrite the item.
        assert_eq!(judge(Some(&A), &A, None), Some(HASH_DIFFERS));
        assert_eq!(judge(Some(&A), &A, Some(&B)), Some(HASH_DIFFERS));
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
        let mut t = TableVerify {
            table: "t-lessons".into(),
            name: "lessons".into(),
            source_rows: 40,
            source_items: 40,
            target_items: 40,
            read_whole: true,
            exists: true,
            ..Default::default()
        };
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
            repairing: false,
            params: Vec::new(),
        };
        assert!(report.differs());
        insta::assert_snapshot!(report.render());
    }

    #[test]
    fn a_missing_table_is_the_syncs_to_fill_not_the_repairs() {
        let mut absent = TableVerify { table: "t-topics".into(), name: "topics".into(), ..Default::default() };
        absent.missing.push(|| "topic_id=1".into(), "missing");
        let mut present =
            TableVerify { table: "t-lessons".into(), name: "lessons".into(), exists: true, ..Default::default() };
        present.extra.push(|| "lesson_id=9".into(), "extra");
        let report = VerifyReport {
            environment: "dev".into(),
            region: "us-east-1".into(),
            depth: "full".into(),
            tables: vec![absent, present],
            read_units: 0.0,
            cost_usd: 0.0,
            repairing: false,
            params: vec![("from".into(), "2025-02-01".into()), ("who".into(), "O'Brien & co".into())],
        };
        let text = report.render();
        // The run's parameters are repeated, quoted where a shell needs it.
        let params = r#"--param from=2025-02-01 --param 'who=O'\''Brien & co'"#;
        assert!(
            text.contains(&format!(
                "`ddbsync sync dev --table topics {params}` creates and fills the tables that do not exist."
            )),
            "{text}"
        );
        assert!(text.contains(&format!("`ddbsync verify dev --table lessons {params} --repair` writes")), "{text}");
        assert!(!text.contains("--table topics --repair") && !text.contains("--table topics --table"), "{text}");
    }

    #[test]
    fn a_table_no_bigger_than_the_sample_is_read_whole() {
        // 78 small items, a sample of 1000: whichever count is larger decides.
        assert!(reads_whole(1000, 78, 78 * 300, 0));
        assert!(reads_whole(100, 100, 100 * 300, 90));
        // DynamoDB's estimate says the table is larger than the source: the larger count counts.
        assert!(!reads_whole(100, 80, 80 * 300_000, 5_000));
    }

    #[test]
    fn a_table_cheaper_to_read_whole_than_to_sample_is_read_whole() {
        // 100 keys of 500 bytes by key cost about 100 units, plus 6 for the Scan's 100 items; the
        // whole table costs 500 / 8192 of a unit per item: up to about 1,737 items that is cheaper.
        assert!(reads_whole(100, 1_700, 1_700 * 500, 0));
        assert!(!reads_whole(100, 1_800, 1_800 * 500, 0));
        // Items of 40 KB cost 10 units each by key and 5 by Scan: the sample costs 15n, a whole
        // read 5 per item, so it is cheaper up to 3n items.
        assert!(reads_whole(100, 200, 200 * 40_960, 0));
        assert!(!reads_whole(100, 400, 400 * 40_960, 0));
    }
}
