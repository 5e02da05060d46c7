//! The cost-savings report: what each table's sync did and cost against a full rewrite. The model
//! is pure; [`crate::printer`] decides how it is shown, and [`RunReport::record`] is what the
//! metadata table keeps of a run ([`crate::pure::runs`] reads it back).

use std::collections::BTreeMap;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use crate::pure::cost::{Prices, Savings};
use crate::pure::item::{self, AttributeValue, Item, MAX_ITEM_BYTES};
use crate::pure::plan::Reject;

/// The largest run record written: DynamoDB's item limit, less a margin for the ways its size
/// counting may differ from [`item::item_size`].
const RECORD_BYTES: usize = MAX_ITEM_BYTES - 8 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// The DynamoDB table.
    pub table: String,
    /// The table did not exist and was created by this run (or would be, in a dry run).
    pub table_created: bool,
    /// Items DynamoDB confirmed it wrote that were not in the table (in a dry run: to be written).
    pub created: u64,
    /// Items DynamoDB confirmed it replaced (in a dry run: to be replaced). Items it did not
    /// write are in `failed`, not here.
    pub updated: u64,
    pub unchanged: u64,
    /// Rejected rows whose stored item was kept as it was (a rejected row is not a missing row:
    /// its item is neither rewritten nor deleted).
    pub stale: u64,
    /// Target items no source row produced (rejected rows' items are not among them). Counted
    /// only when the whole source was read (see `orphans_counted`).
    pub orphans: u64,
    /// Whether the orphans were looked for: not when the run stopped or failed before it read the
    /// whole source, nor for a parameterised query without a `scope`.
    pub orphans_counted: bool,
    /// The mapping deletes orphans (`delete_missing = true`).
    pub delete_missing: bool,
    /// Of those, deleted (`delete_missing`), or in a dry run, to be deleted.
    pub deleted: u64,
    /// The keys of the items deleted (or to be deleted, in a dry run).
    pub deleted_keys: Vec<String>,
    /// Why the orphans were not deleted although `delete_missing` is on: the mass-delete guard or
    /// rows whose key could not be built. Deletes DynamoDB did not carry out are not refused ones:
    /// they are in `failed`. In JSON `deletes_refused_reason`: `deletes_refused` names a count of
    /// items wherever it appears (the totals, `history`, `report`).
    #[serde(rename = "deletes_refused_reason")]
    pub deletes_refused: Option<String>,
    /// Write units DynamoDB reported, deletes and index writes included. In a dry run, what
    /// DynamoDB will bill by its rules, from the sizes of the items to write and of the stored items
    /// they replace or delete (and their index entries).
    pub write_units: f64,
    /// Read units the diff's Scan consumed.
    pub read_units: f64,
    /// Write units a full rewrite of every source item would have taken.
    pub potential_write_units: f64,
    /// Calls (writes and Scan pages) sent again after throttling, errors or unprocessed items.
    pub retries: u64,
    /// Write calls answered with throttling or with unprocessed items.
    pub throttled: u64,
    /// In USD: `cost_usd`, `potential_usd`, `saved_usd` and `saved_percent`, as `history` and `report`
    /// name them.
    #[serde(flatten)]
    pub cost: Savings,
    /// Rows that could not become items.
    pub rejected: Vec<Reject>,
    /// Items DynamoDB did not confirm it wrote, with the reason.
    pub failed: Vec<Reject>,
    /// Of those, items that may or may not have been written (a call that held them was answered
    /// with a server error or not at all; their reason says so): not counted as not written, and
    /// their write units, which DynamoDB did not report, are not in `write_units`.
    pub unknown: u64,
    /// The counts per entity, for a table fed by several queries.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntityReport>,
    /// How the diff read the table, and what the hash index cost and saved.
    #[serde(flatten)]
    pub diff: DiffRead,
}

/// How a table's diff read what DynamoDB holds (`diff`, `index_write_units`, `scan_read_units` in JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffRead {
    /// `scan` (a Scan of the table), `index` (the hash index) or `none` (a table the run created).
    pub diff: &'static str,
    /// Write units the hash index's entries took, included in `write_units` (estimated: one per item
    /// written or deleted, an entry being far under 1 KB); 0 for a table without the index.
    pub index_write_units: f64,
    /// For an index read: the read units a Scan of the table would have consumed (estimated from the
    /// items' sizes), to weigh against `read_units`.
    pub scan_read_units: Option<f64>,
    /// Items a Scan of a table whose diff is to read the hash index found without their bucket
    /// (rewritten where a source row has their key).
    #[serde(skip)]
    pub unbucketed: u64,
}

impl Default for DiffRead {
    fn default() -> Self {
        DiffRead { diff: "scan", index_write_units: 0.0, scan_read_units: None, unbucketed: 0 }
    }
}

impl DiffRead {
    /// The line that weighs an index read against a Scan: what it read, and what its entries cost.
    fn line(&self, table: &str, read_units: f64, write_units: f64) -> Option<String> {
        let scan = self.scan_read_units?;
        let fewer = match read_units > 0.0 {
            true => format!("{:.1}× fewer", scan / read_units),
            false => "none of them".to_string(),
        };
        Some(format!(
            "{table}: the diff read the hash index: {} read units, where a Scan would have read about {} ({fewer}); \
             the index's entries took {} of the {} write units.",
            units(read_units),
            units(scan),
            units(self.index_write_units),
            units(write_units)
        ))
    }
}

/// What one entity (one query) of a single-table design contributed to its table's sync.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EntityReport {
    pub entity: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    /// Estimated write units of the items it wrote (the table's measured figure is not split
    /// by DynamoDB).
    pub estimated_write_units: u64,
}

impl EntityReport {
    pub fn named(name: &str) -> EntityReport {
        EntityReport { entity: name.to_string(), ..EntityReport::default() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub environment: String,
    pub region: String,
    pub started_at: String,
    pub finished_at: String,
    pub dry_run: bool,
    pub clean: bool,
    /// Whether write units are DynamoDB's figures (`measured`) or item-size estimates (`estimated`).
    pub units: &'static str,
    pub prices: Prices,
    pub tables: Vec<TableReport>,
    pub total: Totals,
    /// The `--param` values (and defaults) the queries ran with; `{}` for queries without.
    pub params: BTreeMap<String, String>,
    /// The JSON-lines file listing every rejected or unwritten row, when there are any.
    pub rejects_file: Option<String>,
    /// The backup taken before `--clean` on a protected environment.
    pub backup: Option<String>,
    /// How the run ended: completed, interrupted or failed, with its exit code (3 when rows were
    /// rejected or not written or deletes refused).
    pub outcome: Outcome,
    /// What went wrong after the work was done (the run record or the rejects file could not be
    /// written); the report still holds every figure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// The run's id in its run record: `--run-id`, shared by the shards of a sharded run, or the
    /// process's own run id (the one its log lines and leases carry).
    pub run_id: String,
    /// `K/N` for shard K of a run split N ways (`--shard`); `null` for an unsharded run.
    pub shard: Option<String>,
    /// A promotion (a DynamoDB source): what it did to IDs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<PromotionReport>,
}

/// What a promotion did: the IDs each table remapped and the references it rewrote.
#[derive(Debug, Clone, Serialize)]
pub struct PromotionReport {
    /// Where the source is: its region (and endpoint).
    pub source: String,
    pub tables: Vec<crate::pure::remap::Promoted>,
    /// `--limit`: the items taken from each table selected.
    pub sample: Option<usize>,
    /// The file `--id-map` wrote.
    pub id_map: Option<String>,
    /// A dry run's estimate of the real run's duration ([`crate::pure::cost::estimated_seconds`]).
    pub estimated_seconds: Option<f64>,
}

impl PromotionReport {
    fn lines(&self) -> String {
        let mut out = String::new();
        let sample = match self.sample {
            Some(n) => format!(" (a test: the first {n} items of each table selected, and the items they reference)"),
            None => String::new(),
        };
        out.push_str(&format!("Promoted from DynamoDB at {}{sample}:\n", self.source));
        for t in &self.tables {
            let refs: Vec<String> = t.references.iter().map(|(path, n)| format!("{path} {n}")).collect();
            let refs = match refs.is_empty() {
                true => String::new(),
                false => format!("; references rewritten: {}", refs.join(", ")),
            };
            out.push_str(&format!("  {} (from {}): {} IDs remapped{refs}\n", t.table, t.source_table, t.ids));
        }
        if let Some(path) = &self.id_map {
            out.push_str(&format!("Source and new IDs listed in {path}\n"));
        }
        if let Some(seconds) = self.estimated_seconds {
            out.push_str(&format!(
                "The real run should take about {}: this dry run's reading, plus its writes at the write cap (else at \
                 the 4,000 write units a second a new on-demand table takes)\n",
                crate::pure::cost::duration_text(seconds)
            ));
        }
        out
    }
}

/// How a run ended, as the report shows it and the run record keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// `completed`, `interrupted` or `failed`.
    pub status: &'static str,
    /// The error or the signal that ended it; `null` for a run that completed.
    pub reason: Option<String>,
    /// The process's exit code for the run: a completed run that left rows rejected or not
    /// written, or deletes refused, exits 3.
    pub exit_code: u8,
}

impl Outcome {
    pub fn completed() -> Outcome {
        Outcome { status: "completed", reason: None, exit_code: 0 }
    }

    /// The outcome of a run that ended with `error` (none: it completed); `exit` maps the error.
    pub fn of(error: Option<&anyhow::Error>, exit: impl Fn(&anyhow::Error) -> crate::exit::Exit) -> Outcome {
        let Some(error) = error else { return Outcome::completed() };
        let code = exit(error);
        let status = if code == crate::exit::Exit::Interrupted { "interrupted" } else { "failed" };
        Outcome { status, reason: Some(format!("{error:#}")), exit_code: code as u8 }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    /// Rejected rows whose stored items were kept as they were.
    pub stale: u64,
    pub orphans: u64,
    pub deleted: u64,
    /// Tables whose deletes were refused or held (see `TableReport::deletes_refused`).
    #[serde(rename = "deletes_refused_tables")]
    pub deletes_refused: u64,
    /// Items without a source row left in place in those tables (`history`'s `deletes_refused`).
    #[serde(rename = "deletes_refused")]
    pub deletes_refused_items: u64,
    pub rejected: u64,
    /// Items not confirmed written, `unknown` included.
    pub failed: u64,
    /// Items that may or may not have been written (see `TableReport::unknown`).
    pub unknown: u64,
    pub write_units: f64,
    pub read_units: f64,
    pub potential_write_units: f64,
    pub retries: u64,
    pub throttled: u64,
    /// In USD: `cost_usd`, `potential_usd`, `saved_usd` and `saved_percent`, as `history` and `report`
    /// name them.
    #[serde(flatten)]
    pub cost: Savings,
}

impl Totals {
    pub fn of(tables: &[TableReport], prices: &Prices) -> Totals {
        let sum_f = |f: fn(&TableReport) -> f64| tables.iter().map(f).sum::<f64>();
        let sum = |f: fn(&TableReport) -> u64| tables.iter().map(f).sum::<u64>();
        let (write_units, read_units, potential) =
            (sum_f(|t| t.write_units), sum_f(|t| t.read_units), sum_f(|t| t.potential_write_units));
        Totals {
            created: sum(|t| t.created),
            updated: sum(|t| t.updated),
            unchanged: sum(|t| t.unchanged),
            stale: sum(|t| t.stale),
            orphans: sum(|t| t.orphans),
            deleted: sum(|t| t.deleted),
            deletes_refused: sum(|t| u64::from(t.deletes_refused.is_some())),
            deletes_refused_items: sum(TableReport::refused_items),
            rejected: sum(|t| t.rejected.len() as u64),
            failed: sum(|t| t.failed.len() as u64),
            unknown: sum(|t| t.unknown),
            write_units,
            read_units,
            potential_write_units: potential,
            retries: sum(|t| t.retries),
            throttled: sum(|t| t.throttled),
            cost: Savings::new(prices, write_units, read_units, potential),
        }
    }
}

/// Dollars with cents for large sums and six decimals for the small ones a nightly sync costs;
/// an amount six decimals would show as zero gets two significant digits (`$0.00000031`), so that no
/// amount that is not zero shows as zero, and none shows a sign on zero.
pub(crate) fn usd(v: f64) -> String {
    if v.abs() >= 1.0 {
        return format!("{}${:.2}", if v < 0.0 { "-" } else { "" }, v.abs());
    }
    let text = format!("${:.*}", decimals(v.abs(), 6, 12), v.abs());
    let zero = text.bytes().all(|b| matches!(b, b'$' | b'0' | b'.'));
    if v < 0.0 && !zero {
        format!("-{text}")
    } else {
        text
    }
}

/// `least` decimals, or, when those would show `v` as zero, enough for two significant digits
/// (at most `most`).
fn decimals(v: f64, least: usize, most: usize) -> usize {
    if v == 0.0 || !v.is_finite() || v >= 0.5 * 10f64.powi(-(least as i32)) {
        return least;
    }
    let first = (-v.log10().floor()) as i64; // the place of the first significant digit
    ((first + 1).max(least as i64) as usize).min(most)
}

/// A percentage with one decimal, or more when one would show a value that is not zero as zero;
/// never a sign on zero.
fn percent(p: f64) -> String {
    let text = format!("{:.*}", decimals(p.abs(), 1, 4), p.abs());
    let zero = text.bytes().all(|b| matches!(b, b'0' | b'.'));
    format!("{}{text}%", if p < 0.0 && !zero { "-" } else { "" })
}

/// Whether a saving shows as negative (a difference below what [`usd`] shows is none).
pub(crate) fn negative(saved: f64) -> bool {
    usd(saved).starts_with('-')
}

/// The saving with its percentage of the full rewrite (none when nothing would have been
/// written); a negative one is marked, and explained under the table.
pub(crate) fn saved(saved: f64, potential: f64) -> String {
    let amount = usd(saved);
    let mark = if negative(saved) { " *" } else { "" };
    if potential > 0.0 {
        format!("{amount} ({}){mark}", percent(crate::pure::cost::saved_percent(saved, potential)))
    } else {
        format!("{amount}{mark}")
    }
}

/// Why a saving is negative: the diff's Scan cost more than the writes it spared.
pub(crate) fn negative_saving(name: &str, cost: &Savings, read_units: f64, prices: &Prices) -> String {
    format!(
        "* {name}: saved is negative: the diff's Scan read {} units ({}), more than the writes it spared cost; \
         with this little unchanged, rewriting every item (no Scan) would have cost {} less",
        units(read_units),
        usd(prices.cost(0.0, read_units)),
        usd(-cost.saved)
    )
}

/// What is known of items whose write may or may not have happened.
pub(crate) fn unknown_line(n: u64) -> String {
    unknown_line_of(n, false)
}

/// [`unknown_line`], for items among which deletes may be (`deletes`): they may or may not have
/// been written or deleted.
pub(crate) fn unknown_line_of(n: u64, deletes: bool) -> String {
    let (done, redo) = if deletes { ("written or deleted", "rewrites or deletes") } else { ("written", "rewrites") };
    format!(
        "{n} items may or may not have been {done}: DynamoDB answered a call that held them with a server error \
         or not at all, after which it may have applied it (listed below with the rows not written); they are \
         counted neither as {done} nor as not {done}, and their write units are unknown (the write units above \
         leave them out); a verify finds out, and the next sync {redo} any that differ"
    )
}

/// The heading of a table's items not confirmed written: how many were not written and how many
/// are of unknown outcome, each once (`deletes`: deletes are among them).
fn failed_heading(table: &str, failed: u64, unknown: u64, deletes: bool) -> String {
    let done = if deletes { "written or deleted" } else { "written" };
    let not_done = failed.saturating_sub(unknown);
    match (not_done, unknown) {
        (n, 0) => format!("{table}: {n} rows not {done}"),
        (0, u) => format!("{table}: {u} rows of unknown outcome (may or may not have been {done})"),
        (n, u) => format!(
            "{table}: {} rows not confirmed {done}: {n} not {done}, {u} of unknown outcome (may or may not have \
             been {done})",
            n + u
        ),
    }
}

pub(crate) fn units(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

impl RunReport {
    /// Whether the run writes or deletes anything (a dry run: would): an item created, updated or
    /// deleted, a table created, or tables recreated (`--clean`). `sync --dry-run --exit-code`
    /// exits 6 on it.
    pub fn pending(&self) -> bool {
        self.clean || self.tables.iter().any(|t| t.table_created || t.created + t.updated + t.deleted > 0)
    }
}

impl TableReport {
    /// Deletes DynamoDB did not carry out or did not confirm: the orphans the mapping deletes, that
    /// no guard kept, and that were not deleted (they are among `failed`).
    pub fn deletes_failed(&self) -> u64 {
        if self.delete_missing && self.orphans_counted && self.deletes_refused.is_none() {
            self.orphans.saturating_sub(self.deleted).min(self.failed.len() as u64)
        } else {
            0
        }
    }

    /// Items without a source row left in place although the mapping deletes them.
    pub fn refused_items(&self) -> u64 {
        if self.deletes_refused.is_some() {
            self.orphans.saturating_sub(self.deleted)
        } else {
            0
        }
    }

    /// What becomes of the table's items that have no source row, when a person should know: the
    /// line names the table, the count, the cause and what to do. `ended` is how a run that did not
    /// complete ended (`interrupted`, `failed`).
    fn orphan_line(&self, dry_run: bool, ended: Option<&str>) -> Option<String> {
        let table = &self.table;
        if let Some(reason) = &self.deletes_refused {
            return Some(format!("{table}: {reason}"));
        }
        if !self.orphans_counted {
            let ended = match ended? {
                "interrupted" => "was interrupted",
                _ => "failed",
            };
            return self.delete_missing.then(|| {
                format!(
                    "{table}: items without a source row were not looked for, as the run {ended} before it read \
                     the whole source; nothing was deleted, and the next complete run deletes them"
                )
            });
        }
        let kept = self.orphans.saturating_sub(self.deleted);
        if kept == 0 || self.delete_missing {
            return None;
        }
        let verb = if dry_run { "would be left" } else { "left" };
        Some(format!(
            "{table}: {kept} items have no source row; {verb} in place, as the mapping does not delete them \
             (`delete_missing = true` on the mapping deletes them)"
        ))
    }
}

impl RunReport {
    /// Whether the run left something undone: rows rejected, writes failed, deletes refused.
    pub fn has_losses(&self) -> bool {
        self.total.rejected + self.total.failed + self.total.deletes_refused > 0
    }

    /// Sets the exit code of a run that completed but left something undone (3), so that the
    /// run record keeps the code the process exits with.
    pub fn settle_exit(&mut self) {
        if self.outcome.status == "completed" && self.has_losses() {
            self.outcome.exit_code = crate::exit::Exit::Differences as u8;
        }
    }

    /// The human form: one row per table, a total, then the rows that were not written.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header([
            "table",
            "new",
            "updated",
            "unchanged",
            "deleted",
            "not written",
            "write units",
            "read units",
            "cost",
            "full rewrite",
            "saved",
        ]);
        let row = |name: &str, [c, u, s, d, n]: [u64; 5], w: f64, r: f64, cost: &Savings| {
            let mut cells = vec![
                Cell::new(name),
                Cell::new(c),
                Cell::new(u),
                Cell::new(s),
                Cell::new(d),
                Cell::new(n),
                Cell::new(units(w)),
                Cell::new(units(r)),
                Cell::new(usd(cost.actual)),
                Cell::new(usd(cost.potential)),
                Cell::new(saved(cost.saved, cost.potential)),
            ];
            for cell in cells.iter_mut().skip(1) {
                *cell = cell.clone().set_alignment(CellAlignment::Right);
            }
            cells
        };
        for t in &self.tables {
            let not_written = (t.rejected.len() + t.failed.len()) as u64 - t.unknown;
            let counts = [t.created, t.updated, t.unchanged, t.deleted, not_written];
            table.add_row(row(&t.table, counts, t.write_units, t.read_units, &t.cost));
            for e in &t.entities {
                let cells =
                    [e.created, e.updated, e.unchanged].map(|n| Cell::new(n).set_alignment(CellAlignment::Right));
                let mut cells: Vec<Cell> =
                    std::iter::once(Cell::new(format!("  · {}", e.entity))).chain(cells).collect();
                cells.push(Cell::new(""));
                cells.push(Cell::new(e.rejected).set_alignment(CellAlignment::Right));
                cells.push(Cell::new(format!("≈{}", e.estimated_write_units)).set_alignment(CellAlignment::Right));
                table.add_row(cells);
            }
        }
        let tot = &self.total;
        let counts = [tot.created, tot.updated, tot.unchanged, tot.deleted, tot.rejected + tot.failed - tot.unknown];
        table.add_row(row("total", counts, tot.write_units, tot.read_units, &tot.cost));
        let mode = match (self.dry_run, self.clean) {
            (true, true) => "dry run of a clean load: nothing was written",
            (true, false) => "dry run: nothing was written",
            (false, true) => "clean load",
            (false, false) => "incremental sync",
        };
        let mut out = format!("{} ({}), {mode}\n", self.environment, self.region);
        if let Some(shard) = &self.shard {
            out.push_str(&format!(
                "Shard {shard} of run {}: the figures are this shard's items only (history sums the shards)\n",
                self.run_id
            ));
        }
        if let Some(reason) = &self.outcome.reason {
            let heading = if self.outcome.status == "interrupted" { "Stopped early" } else { "Failed" };
            out.push_str(&format!("{heading}: {reason}\n"));
        }
        if !self.params.is_empty() {
            let list: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("Parameters: {}\n", list.join(", ")));
        }
        out.push_str(&format!("{table}\n"));
        out.push_str(&format!("Write units are {}; prices {}.\n", self.units, self.prices.source));
        if tot.failed > tot.unknown {
            out.push_str(&format!(
                "new and updated count only the items DynamoDB confirmed; {} items were not written (listed below).\n",
                tot.failed - tot.unknown
            ));
        }
        if tot.unknown > 0 {
            let deletes = self.tables.iter().any(|t| t.unknown > 0 && t.deletes_failed() > 0);
            out.push_str(&format!("{}\n", unknown_line_of(tot.unknown, deletes)));
        }
        let costly: Vec<(&str, &Savings, f64)> = self
            .tables
            .iter()
            .map(|t| (t.table.as_str(), &t.cost, t.read_units))
            .filter(|(_, c, _)| negative(c.saved))
            .collect();
        for (name, cost, read) in &costly {
            out.push_str(&format!("{}\n", negative_saving(name, cost, *read, &self.prices)));
        }
        if negative(tot.cost.saved) && self.tables.len() > 1 {
            out.push_str(&format!("{}\n", negative_saving("total", &tot.cost, tot.read_units, &self.prices)));
        }
        if tot.retries + tot.throttled > 0 {
            out.push_str(&format!(
                "Calls sent again: {} (BatchWriteItem calls and Scan pages, each resend counted); BatchWriteItem \
                 calls answered with throttling or unprocessed items: {}.\n",
                tot.retries, tot.throttled
            ));
        }
        if let Some(path) = &self.backup {
            match self.clean {
                true => out.push_str(&format!("Backup taken before the clean load: {path}\n")),
                false => out.push_str(&format!(
                    "Backup of the target tables taken before the promotion wrote anything: {path} (ddbsync restore \
                     rolls back to it)\n"
                )),
            }
        }
        if let Some(promotion) = &self.promotion {
            out.push_str(&promotion.lines());
        }
        for t in &self.tables {
            if let Some(line) = t.diff.line(&t.table, t.read_units, t.write_units) {
                out.push_str(&format!("{line}\n"));
            }
        }
        let ended = (self.outcome.status != "completed").then_some(self.outcome.status);
        for t in &self.tables {
            if let Some(line) = t.orphan_line(self.dry_run, ended) {
                out.push_str(&format!("{line}\n"));
            }
            out.push_str(&deleted_lines(&t.table, &t.deleted_keys, self.dry_run));
            for (what, list) in [("rejected", &t.rejected), ("not written", &t.failed)] {
                if list.is_empty() {
                    continue;
                }
                let heading = match what {
                    "rejected" if t.stale > 0 => {
                        format!("{}: {} rows rejected ({} stored items kept, now stale)", t.table, list.len(), t.stale)
                    }
                    "rejected" => format!("{}: {} rows rejected", t.table, list.len()),
                    _ => failed_heading(&t.table, list.len() as u64, t.unknown, t.deletes_failed() > 0),
                };
                out.push_str(&format!("{heading}:\n"));
                for r in list.iter().take(20) {
                    out.push_str(&format!("  {}: {}\n", r.key, r.reason));
                }
                if list.len() > 20 {
                    out.push_str(&format!("  … and {} more (see --json)\n", list.len() - 20));
                }
            }
        }
        if let Some(path) = &self.rejects_file {
            out.push_str(&format!("Every rejected or unwritten row is listed in {path}\n"));
        }
        for note in &self.notes {
            out.push_str(&format!("Note: {note}\n"));
        }
        out
    }

    /// The item recorded in the metadata table for this run, trimmed to fit in an item.
    pub fn record(&self) -> Item {
        trim(self.whole_record())
    }

    fn whole_record(&self) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: f64| AttributeValue::N(crate::pure::number::from_f64(v).unwrap_or_else(|_| "0".into()));
        let tables = self
            .tables
            .iter()
            .map(|t| {
                let entry: Item = [
                    ("created", n(t.created as f64)),
                    ("updated", n(t.updated as f64)),
                    ("unchanged", n(t.unchanged as f64)),
                    ("deleted", n(t.deleted as f64)),
                    ("orphans", n(t.orphans as f64)),
                    ("deletes_refused", n(t.refused_items() as f64)),
                    ("rejected", n(t.rejected.len() as f64)),
                    ("failed", n(t.failed.len() as f64)),
                    ("unknown", n(t.unknown as f64)),
                    ("deletes_failed", n(t.deletes_failed() as f64)),
                    ("write_units", n(t.write_units)),
                    ("read_units", n(t.read_units)),
                    ("potential_write_units", n(t.potential_write_units)),
                    ("cost_usd", n(t.cost.actual)),
                    ("potential_usd", n(t.cost.potential)),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                (t.table.clone(), AttributeValue::M(entry))
            })
            .collect();
        let tot = &self.total;
        // Shards start at once: each record's key holds its run and shard, so none replaces another.
        let sk = match &self.shard {
            Some(shard) => format!("{}#{}#{}#{shard}", self.started_at, self.environment, self.run_id),
            None => format!("{}#{}", self.started_at, self.environment),
        };
        [
            ("pk", s("RUN")),
            ("sk", s(&sk)),
            ("run_id", s(&self.run_id)),
            ("environment", s(&self.environment)),
            ("started_at", s(&self.started_at)),
            ("finished_at", s(&self.finished_at)),
            ("mode", s(if self.clean { "clean" } else { "incremental" })),
            ("outcome", s(self.outcome.status)),
            ("exit_code", n(self.outcome.exit_code as f64)),
            ("created", n(tot.created as f64)),
            ("updated", n(tot.updated as f64)),
            ("unchanged", n(tot.unchanged as f64)),
            ("deleted", n(tot.deleted as f64)),
            ("orphans", n(tot.orphans as f64)),
            ("deletes_refused", n(tot.deletes_refused_items as f64)),
            ("rejected", n(tot.rejected as f64)),
            ("failed", n(tot.failed as f64)),
            ("unknown", n(tot.unknown as f64)),
            ("deletes_failed", n(self.tables.iter().map(TableReport::deletes_failed).sum::<u64>() as f64)),
            ("write_units", n(tot.write_units)),
            ("read_units", n(tot.read_units)),
            ("potential_write_units", n(tot.potential_write_units)),
            ("retries", n(tot.retries as f64)),
            ("cost_usd", n(tot.cost.actual)),
            ("potential_usd", n(tot.cost.potential)),
            ("saved_usd", n(tot.cost.saved)),
            ("tables", AttributeValue::M(tables)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.outcome.reason.as_ref().map(|r| ("outcome_reason".to_string(), s(r))))
        .chain(self.shard.as_ref().map(|k| ("shard".to_string(), s(k))))
        .chain((!self.params.is_empty()).then(|| {
            let params = self.params.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            ("params".to_string(), AttributeValue::M(params))
        }))
        .collect()
    }
}

/// A restore, kept in the metadata table as a sync's run is, so that `history` lists it with its
/// mode, outcome and exit code, and `report` counts its write units. Its "full rewrite" is what it
/// cost: it saves nothing, as nothing cheaper does its work. (A `verify --repair` is recorded as a
/// sync is, [`RunReport::record`] with mode `repair`: its alternative is `sync --clean`, so its full
/// rewrite is what that would write, and it is credited with the difference.)
#[derive(Debug, Clone)]
pub struct OperationRun {
    pub environment: String,
    /// `restore`: what `history` shows as the run's mode.
    pub mode: &'static str,
    pub started_at: String,
    pub finished_at: String,
    pub prices: Prices,
    pub tables: Vec<OperationTable>,
    pub outcome: Outcome,
}

/// What an [`OperationRun`] did to one table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OperationTable {
    pub table: String,
    /// Items written that the table did not hold (every item of a restore).
    pub created: u64,
    /// Items written over a stored one.
    pub updated: u64,
    pub deleted: u64,
    /// Items that were to be written or deleted and were not.
    pub failed: u64,
    /// Write units DynamoDB reported.
    pub write_units: f64,
    /// Read units the operation consumed on the table.
    pub read_units: f64,
}

impl OperationRun {
    /// The item recorded in the metadata table, in the layout of [`RunReport::record`].
    pub fn record(&self) -> Item {
        let s = |v: &str| AttributeValue::S(v.to_string());
        let n = |v: f64| AttributeValue::N(crate::pure::number::from_f64(v).unwrap_or_else(|_| "0".into()));
        let figures = |t: &OperationTable| -> Vec<(&'static str, AttributeValue)> {
            let cost = self.prices.cost(t.write_units, t.read_units);
            vec![
                ("created", n(t.created as f64)),
                ("updated", n(t.updated as f64)),
                ("deleted", n(t.deleted as f64)),
                ("failed", n(t.failed as f64)),
                ("write_units", n(t.write_units)),
                ("read_units", n(t.read_units)),
                ("potential_write_units", n(t.write_units)),
                ("cost_usd", n(cost)),
                ("potential_usd", n(cost)),
            ]
        };
        let total = self.tables.iter().fold(OperationTable::default(), |mut sum, t| {
            sum.created += t.created;
            sum.updated += t.updated;
            sum.deleted += t.deleted;
            sum.failed += t.failed;
            sum.write_units += t.write_units;
            sum.read_units += t.read_units;
            sum
        });
        let tables = self
            .tables
            .iter()
            .map(|t| {
                let entry: Item = figures(t).into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                (t.table.clone(), AttributeValue::M(entry))
            })
            .collect();
        let record: Item = [
            ("pk", s("RUN")),
            ("sk", s(&format!("{}#{}", self.started_at, self.environment))),
            ("environment", s(&self.environment)),
            ("started_at", s(&self.started_at)),
            ("finished_at", s(&self.finished_at)),
            ("mode", s(self.mode)),
            ("outcome", s(self.outcome.status)),
            ("exit_code", n(self.outcome.exit_code as f64)),
            ("saved_usd", n(0.0)),
            ("tables", AttributeValue::M(tables)),
        ]
        .into_iter()
        .chain(figures(&total))
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.outcome.reason.as_ref().map(|r| ("outcome_reason".to_string(), s(r))))
        .collect();
        trim(record)
    }
}

/// Cuts a run record down to [`RECORD_BYTES`], so that a run with huge `--param` values (or
/// thousands of tables) is still recorded rather than failing after its writes. The per-table
/// figures go first, as far as needed to leave the parameters up to half the item (the totals still
/// count those tables); then the parameter values are cut, each to an equal share of the room left.
/// A `trimmed` attribute says what was cut.
fn trim(mut record: Item) -> Item {
    if item::item_size(&record) <= RECORD_BYTES {
        return record;
    }
    let mut notes = Vec::new();
    // Room for the note itself.
    let budget = RECORD_BYTES - 200;
    let params = match record.remove("params") {
        Some(AttributeValue::M(params)) => params,
        _ => Default::default(),
    };
    let params_size =
        if params.is_empty() { 0 } else { "params".len() + item::value_size(&AttributeValue::M(params.clone())) };
    if let Some(AttributeValue::M(mut tables)) = record.remove("tables") {
        let target = budget - params_size.min(budget / 2);
        let mut names: Vec<String> = tables.keys().cloned().collect();
        names.sort();
        let all = names.len();
        let rest = item::item_size(&record) + "tables".len();
        let mut size = item::value_size(&AttributeValue::M(tables.clone()));
        while rest + size > target {
            let Some(name) = names.pop() else { break };
            if let Some(entry) = tables.remove(&name) {
                size -= 1 + name.len() + item::value_size(&entry);
            }
        }
        if tables.len() < all {
            notes.push(format!(
                "the figures of {} of {all} tables left out (the totals count them)",
                all - tables.len()
            ));
        }
        record.insert("tables".into(), AttributeValue::M(tables));
    }
    if !params.is_empty() {
        let names: usize = params.keys().map(|k| 2 + k.len()).sum();
        let room = budget.saturating_sub(item::item_size(&record) + "params".len() + 3 + names);
        // The longest values are cut to one length, as long as the shorter ones leave room for.
        let mut lengths: Vec<usize> = params.values().map(item::value_size).collect();
        lengths.sort_unstable();
        let (mut share, mut left) = (room, room);
        for (i, &length) in lengths.iter().enumerate() {
            let sharing = lengths.len() - i;
            if length > left / sharing {
                share = left / sharing;
                break;
            }
            left -= length;
        }
        let mut cut_params = params.clone();
        loop {
            for (name, value) in &mut cut_params {
                if let Some(AttributeValue::S(whole)) = params.get(name) {
                    // At most `share` bytes, the `…` that marks a cut included.
                    let kept = if whole.len() <= share {
                        whole.into()
                    } else {
                        item::shorten(whole, share.saturating_sub('…'.len_utf8()))
                    };
                    *value = AttributeValue::S(kept.into_owned());
                }
            }
            let size =
                item::item_size(&record) + "params".len() + item::value_size(&AttributeValue::M(cut_params.clone()));
            if size <= budget || share == 0 {
                break;
            }
            share /= 2;
        }
        if cut_params != params {
            notes.push(format!("parameter values longer than {share} bytes cut to that length (marked …)"));
        }
        record.insert("params".into(), AttributeValue::M(cut_params));
    }
    let note = format!("{}, to fit DynamoDB's 400 KB item limit", notes.join("; "));
    record.insert("trimmed".into(), AttributeValue::S(note));
    record
}

/// The keys a run deleted (or, in a dry run, would delete) from `table`: the first 20, and how many
/// more `--json` lists.
pub fn deleted_lines(table: &str, keys: &[String], dry_run: bool) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let verb = if dry_run { "would be deleted" } else { "deleted (no source row)" };
    let mut out = format!("{table}: {} items {verb}:\n", keys.len());
    for key in keys.iter().take(20) {
        out.push_str(&format!("  {key}\n"));
    }
    if keys.len() > 20 {
        out.push_str(&format!("  … and {} more (see --json)\n", keys.len() - 20));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_amounts_keep_their_digits_and_zero_has_no_sign() {
        assert_eq!(usd(0.000402), "$0.000402");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(-12.345), "-$12.35");
        // Too small for six decimals: two significant digits, with the sign.
        assert_eq!(usd(-0.00000031), "-$0.00000031");
        assert_eq!(usd(0.0000000137), "$0.000000014");
        assert_eq!(usd(-0.0), "$0.000000");
        assert_eq!(usd(-1e-15), "$0.000000000000");
        assert!(!negative(-1e-15));
        // A negative saving that rounds to zero at one decimal keeps its digits, sign and mark.
        assert_eq!(saved(-0.00000031, 0.0000625), "-$0.00000031 (-0.5%) *");
        assert_eq!(saved(-0.000000003, 0.0000625), "-$0.0000000030 (-0.0048%) *");
        // Nothing would have been written: no percentage of nothing.
        assert_eq!(saved(-0.00000013, 0.0), "-$0.00000013 *");
        assert_eq!(saved(0.0, 0.0), "$0.000000");
        assert_eq!(saved(0.5, 1.0), "$0.500000 (50.0%)");
    }

    fn table(name: &str, created: u64, unchanged: u64) -> TableReport {
        let prices = Prices::builtin("us-east-1").unwrap();
        let (w, r, p) = (created as f64, 2.0, (created + unchanged) as f64);
        TableReport {
            table: name.into(),
            table_created: false,
            created,
            updated: 0,
            unchanged,
            stale: 0,
            orphans: 0,
            orphans_counted: true,
            delete_missing: false,
            deleted: 0,
            deleted_keys: vec![],
            deletes_refused: None,
            write_units: w,
            read_units: r,
            potential_write_units: p,
            retries: 0,
            throttled: 0,
            cost: Savings::new(&prices, w, r, p),
            rejected: vec![],
            failed: vec![],
            unknown: 0,
            diff: Default::default(),
            entities: vec![],
        }
    }

    fn report() -> RunReport {
        let prices = Prices::builtin("us-east-1").unwrap();
        let tables = vec![table("t-lessons", 45, 143), table("t-topics", 0, 12)];
        RunReport {
            environment: "dev".into(),
            region: "us-east-1".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: "2026-01-01T00:00:01Z".into(),
            dry_run: false,
            clean: false,
            units: "measured",
            total: Totals::of(&tables, &prices),
            prices,
            tables,
            params: BTreeMap::new(),
            rejects_file: None,
            backup: None,
            outcome: Outcome::completed(),
            notes: Vec::new(),
            run_id: "host:1:2".into(),
            shard: None,
            promotion: None,
        }
    }

    #[test]
    fn totals_add_up_the_tables() {
        let r = report();
        assert_eq!((r.total.created, r.total.unchanged), (45, 155));
        assert_eq!(r.total.write_units, 45.0);
        assert_eq!(r.total.read_units, 4.0);
        assert_eq!(r.total.potential_write_units, 200.0);
        let expected = Savings::new(&r.prices, 45.0, 4.0, 200.0);
        assert_eq!(r.total.cost, expected);
    }

    #[test]
    fn renders_one_row_per_table_and_a_total() {
        let text = report().render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "dev (us-east-1), incremental sync");
        assert!(text.contains("│ t-lessons ┆  45 ┆       0 ┆       143 ┆       0 ┆"), "{text}");
        let total = "│ total     ┆  45 ┆       0 ┆       155 ┆       0 ┆           0 ┆          45 ┆          4 ┆";
        assert!(text.lines().any(|l| l.starts_with(total) && l.contains(" $0.000029 ┆")), "{text}");
        // Two read units cost less than a millionth of a dollar: shown, not rounded to nothing.
        assert!(text.contains(" $0.00000025 ┆"), "{text}");
        assert!(text.contains("Write units are measured; prices built-in 2024-11-01 us-east-1."), "{text}");
    }

    #[test]
    fn tables_with_entities_show_a_row_per_entity_and_the_parameters() {
        let mut r = report();
        r.params.insert("from".into(), "2025-01-01".into());
        r.tables[0].entities = vec![
            EntityReport {
                entity: "album".into(),
                created: 40,
                updated: 0,
                unchanged: 3,
                rejected: 0,
                estimated_write_units: 80,
            },
            EntityReport {
                entity: "track".into(),
                created: 5,
                updated: 0,
                unchanged: 140,
                rejected: 0,
                estimated_write_units: 5,
            },
        ];
        let text = r.render();
        assert!(text.contains("\nParameters: from=2025-01-01\n"), "{text}");
        assert!(
            text.contains("│   · album ┆  40 ┆       0 ┆         3 ┆         ┆           0 ┆         ≈80 ┆"),
            "{text}"
        );
        assert!(
            text.contains("│   · track ┆   5 ┆       0 ┆       140 ┆         ┆           0 ┆          ≈5 ┆"),
            "{text}"
        );
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["tables"][0]["entities"][1]["unchanged"], 140);
        assert!(json["tables"][1].get("entities").is_none(), "a one-query table has no entity list");
    }

    #[test]
    fn rejected_rows_are_listed_with_keys() {
        let mut r = report();
        r.tables[0]
            .rejected
            .push(Reject { key: "lesson_id=<missing>".into(), reason: "key column \"lesson_id\" is NULL".into() });
        r.total = Totals::of(&r.tables, &r.prices);
        assert!(r.has_losses());
        assert!(r
            .render()
            .contains("t-lessons: 1 rows rejected:\n  lesson_id=<missing>: key column \"lesson_id\" is NULL\n"));
    }

    #[test]
    fn failed_writes_are_counted_apart_from_what_was_written() {
        let mut r = report();
        r.tables[0].updated = 775;
        r.tables[0].failed = (0..225).map(|i| Reject { key: format!("id={i}"), reason: "stopped".into() }).collect();
        r.total = Totals::of(&r.tables, &r.prices);
        r.settle_exit();
        assert_eq!(r.outcome.exit_code, 3, "a completed run that left rows unwritten exits 3");
        let text = r.render();
        assert!(text.contains("│ t-lessons ┆  45 ┆     775 ┆       143 ┆       0 ┆         225 ┆"), "{text}");
        assert!(text.contains("new and updated count only the items DynamoDB confirmed; 225 items were not written"));
        let record = r.record();
        assert_eq!(record["updated"], AttributeValue::N("775".into()));
        assert_eq!(record["failed"], AttributeValue::N("225".into()));
        assert_eq!(record["exit_code"], AttributeValue::N("3".into()));
    }

    #[test]
    fn items_not_written_and_of_unknown_outcome_are_each_counted_once() {
        let unknown = |i: u64| Reject { key: format!("id={i}"), reason: "outcome unknown: …".into() };
        let mut r = report();
        r.tables[0].failed = (0..10).map(unknown).collect();
        r.tables[0].unknown = 10;
        r.total = Totals::of(&r.tables, &r.prices);
        let text = r.render();
        assert!(text.contains("t-lessons: 10 rows of unknown outcome (may or may not have been written):\n"), "{text}");
        assert!(!text.contains("of them"), "{text}");
        assert!(text.contains("10 items may or may not have been written: "), "{text}");

        // Deletes among them (the mapping deletes orphans, no guard kept them, 2 were not deleted).
        r.tables[0].failed.insert(0, Reject { key: "id=99".into(), reason: "not written after 3 attempts".into() });
        (r.tables[0].delete_missing, r.tables[0].orphans, r.tables[0].deleted) = (true, 5, 3);
        r.total = Totals::of(&r.tables, &r.prices);
        assert_eq!(r.tables[0].deletes_failed(), 2);
        let text = r.render();
        assert!(
            text.contains(
                "t-lessons: 11 rows not confirmed written or deleted: 1 not written or deleted, 10 of unknown \
                 outcome (may or may not have been written or deleted):\n"
            ),
            "{text}"
        );
        assert!(text.contains("10 items may or may not have been written or deleted: "), "{text}");
        assert_eq!(r.record()["deletes_failed"], AttributeValue::N("2".into()));
    }

    #[test]
    fn a_negative_saving_says_why() {
        let mut r = report();
        // Nothing unchanged to spare, and a Scan that read 800 units.
        r.tables[1].read_units = 800.0;
        r.tables[1].cost = Savings::new(&r.prices, 0.0, 800.0, 12.0);
        r.total = Totals::of(&r.tables, &r.prices);
        let text = r.render();
        assert!(text.contains("-$0.000092 (-1233.3%) *"), "{text}");
        assert!(text.contains("* total: saved is negative"), "{text}");
        assert!(
            text.contains(
                "* t-topics: saved is negative: the diff's Scan read 800 units ($0.000100), more than the writes it \
                 spared cost; with this little unchanged, rewriting every item (no Scan) would have cost $0.000092 less"
            ),
            "{text}"
        );
        assert!(!report().render().contains('*'), "a positive saving needs no note");
    }

    #[test]
    fn orphan_lines_name_the_table_and_the_hint_that_applies() {
        let mut r = report();
        let lessons = &mut r.tables[0];
        lessons.orphans = 4;
        // No delete_missing: suggest it.
        let text = r.render();
        assert!(
            text.contains(
                "t-lessons: 4 items have no source row; left in place, as the mapping does not delete them \
             (`delete_missing = true` on the mapping deletes them)\n"
            ),
            "{text}"
        );
        // delete_missing, refused by the guard: the refusal and its fix, not the suggestion.
        r.tables[0].delete_missing = true;
        r.tables[0].deletes_refused = Some("not deleted: 4 of 5 items (80.0%) have no source row, over …".into());
        let text = r.render();
        assert!(text.contains("t-lessons: not deleted: 4 of 5 items"), "{text}");
        assert!(!text.contains("delete_missing = true"), "{text}");
        assert_eq!(r.tables[0].refused_items(), 4);
        // Interrupted before the whole source was read: the orphans were not looked for.
        r.tables[0].deletes_refused = None;
        r.tables[0].orphans = 0;
        r.tables[0].orphans_counted = false;
        r.outcome = Outcome { status: "interrupted", reason: Some("SIGTERM".into()), exit_code: 5 };
        let text = r.render();
        assert!(
            text.contains(
                "t-lessons: items without a source row were not looked for, as the run was interrupted before it read \
                 the whole source; nothing was deleted, and the next complete run deletes them"
            ),
            "{text}"
        );
        // A table that does not delete says nothing then.
        r.tables[0].delete_missing = false;
        assert!(!r.render().contains("source row"), "{}", r.render());
    }

    #[test]
    fn an_operation_run_is_recorded_like_a_sync() {
        let prices = Prices::builtin("us-east-1").unwrap();
        let run = OperationRun {
            environment: "dev".into(),
            mode: "restore",
            started_at: "2026-01-01T00:00:00.000Z".into(),
            finished_at: "2026-01-01T00:01:00.000Z".into(),
            prices: prices.clone(),
            tables: vec![OperationTable {
                table: "t-lessons".into(),
                created: 2678,
                write_units: 2678.0,
                ..Default::default()
            }],
            outcome: Outcome::completed(),
        };
        let record = run.record();
        assert_eq!(record["mode"], AttributeValue::S("restore".into()));
        assert_eq!(record["write_units"], AttributeValue::N("2678".into()));
        assert_eq!(record["exit_code"], AttributeValue::N("0".into()));
        let AttributeValue::M(tables) = &record["tables"] else { panic!() };
        assert!(tables.contains_key("t-lessons"));
        let cost = prices.cost(2678.0, 0.0);
        assert_eq!(record["cost_usd"], AttributeValue::N(crate::pure::number::from_f64(cost).unwrap()));
    }

    #[test]
    fn the_run_record_keeps_counts_and_costs() {
        let record = report().record();
        assert_eq!(record["pk"], AttributeValue::S("RUN".into()));
        assert_eq!(record["sk"], AttributeValue::S("2026-01-01T00:00:00Z#dev".into()));
        assert_eq!(record["created"], AttributeValue::N("45".into()));
        let AttributeValue::M(tables) = &record["tables"] else { panic!() };
        assert_eq!(tables.len(), 2);
        assert!(!record.contains_key("params"), "a run without parameters records none");
        let mut sliced = report();
        sliced.params.insert("from".into(), "2025-01-01".into());
        let AttributeValue::M(params) = &sliced.record()["params"] else { panic!() };
        assert_eq!(params["from"], AttributeValue::S("2025-01-01".into()));
        assert!(!sliced.record().contains_key("trimmed"), "a record that fits is whole");
    }

    #[test]
    fn a_run_record_over_the_item_limit_is_trimmed_to_fit() {
        let mut r = report();
        for (name, fill) in [("from", "é"), ("to", "t"), ("big", "b")] {
            r.params.insert(name.into(), fill.repeat(300 * 1024));
        }
        r.params.insert("small".into(), "2025".into());
        assert!(item::item_size(&r.whole_record()) > MAX_ITEM_BYTES);
        let record = r.record();
        assert!(item::item_size(&record) <= RECORD_BYTES, "{}", item::item_size(&record));
        let AttributeValue::M(params) = &record["params"] else { panic!() };
        assert_eq!(params.len(), 4, "every parameter is still named");
        assert_eq!(params["small"], AttributeValue::S("2025".into()), "short values are whole");
        let from = params["from"].as_s().unwrap();
        assert!(from.starts_with("éé") && from.ends_with('…') && from.len() < 300 * 1024, "{}", from.len());
        let note = record["trimmed"].as_s().unwrap();
        assert!(note.starts_with("parameter values longer than "), "{note}");
        assert!(note.ends_with("cut to that length (marked …), to fit DynamoDB's 400 KB item limit"), "{note}");
        assert_eq!(record["created"], AttributeValue::N("45".into()), "the figures are kept");
        assert!(matches!(&record["tables"], AttributeValue::M(t) if t.len() == 2));
    }

    #[test]
    fn a_run_record_of_too_many_tables_keeps_the_totals() {
        let mut r = report();
        r.params.insert("from".into(), "2025-01-01".into());
        r.tables = (0..5000).map(|i| table(&format!("a-rather-long-table-name-number-{i:05}"), 1, 1)).collect();
        r.total = Totals::of(&r.tables, &r.prices);
        let record = r.record();
        assert!(item::item_size(&record) <= RECORD_BYTES);
        assert_eq!(record["created"], AttributeValue::N("5000".into()));
        let AttributeValue::M(tables) = &record["tables"] else { panic!() };
        assert!(tables.len() > 100 && tables.len() < 5000, "{}", tables.len());
        let AttributeValue::M(params) = &record["params"] else { panic!() };
        assert_eq!(params["from"], AttributeValue::S("2025-01-01".into()), "nothing to cut there");
        let note = record["trimmed"].as_s().unwrap();
        let left_out = 5000 - tables.len();
        assert_eq!(
            *note,
            format!(
                "the figures of {left_out} of 5000 tables left out (the totals count them), to fit DynamoDB's 400 KB \
                 item limit"
            )
        );

        // Both: the tables leave the parameters half the item, and the long value is cut to it.
        let mut both = r.clone();
        both.params.insert("big".into(), "b".repeat(300 * 1024));
        let record = both.record();
        assert!(item::item_size(&record) <= RECORD_BYTES);
        let note = record["trimmed"].as_s().unwrap();
        assert!(note.starts_with("the figures of ") && note.contains("; parameter values longer than "), "{note}");
        let AttributeValue::M(params) = &record["params"] else { panic!() };
        assert_eq!(params["from"], AttributeValue::S("2025-01-01".into()));
        assert!(params["big"].as_s().unwrap().len() > 100 * 1024, "about half the item is left to them");
    }
}
