//! Run history and the cumulative cost report: the run records of the metadata table read back,
//! listed per run (`history`) or summed over a period (`report`). Pure: [`crate::target::dynamo`] fetches
//! the records; this module parses, sums and renders them.
//!
//! Records written before a field existed read it as 0, so that old runs still list. The shards of
//! a sharded run each leave a record; [`group`] makes them one run, so that a run is counted once
//! whatever its shards.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use crate::pure::bucket::Shard;
use crate::pure::item::{AttributeValue, Item};
use crate::pure::report::{negative, saved, units, usd};

/// The counts and units of one table in one run, or summed over runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Figures {
    pub created: u64,
    pub updated: u64,
    /// Items skipped because their content had not changed.
    pub unchanged: u64,
    pub deleted: u64,
    /// Rows rejected plus items not written (those whose write may or may not have happened are
    /// in `unknown` instead).
    pub not_written: u64,
    /// Items that may or may not have been written: DynamoDB answered a call that held them with
    /// a server error or not at all.
    pub unknown: u64,
    /// Rows rejected (records from before these were kept: 0, and their rows are in `not_written`).
    pub rejected: u64,
    /// Items DynamoDB did not confirm written, `unknown` included (as a sync's report counts them).
    pub failed: u64,
    /// Items without a source row left in place although the mapping deletes them: the
    /// mass-delete guard refused the deletes, or rows without a key held them.
    pub deletes_refused: u64,
    /// Of the items in `not_written` and `unknown`, deletes DynamoDB did not carry out or did not
    /// confirm (records from before these were kept: 0).
    pub deletes_failed: u64,
    pub write_units: f64,
    pub read_units: f64,
    pub potential_write_units: f64,
    pub cost_usd: f64,
    pub potential_usd: f64,
    pub saved_usd: f64,
    /// `saved_usd / potential_usd × 100`, 0 when nothing would have been written.
    pub saved_percent: f64,
}

impl Figures {
    fn of(item: &Item) -> Figures {
        let num = |name: &str| match item.get(name) {
            Some(AttributeValue::N(n)) => n.parse::<f64>().unwrap_or(0.0),
            _ => 0.0,
        };
        let count = |name: &str| num(name).max(0.0) as u64;
        let (cost, potential) = (num("cost_usd"), num("potential_usd"));
        Figures {
            created: count("created"),
            updated: count("updated"),
            unchanged: count("unchanged"),
            deleted: count("deleted"),
            not_written: (count("rejected") + count("failed")).saturating_sub(count("unknown")),
            unknown: count("unknown"),
            rejected: count("rejected"),
            failed: count("failed"),
            deletes_refused: count("deletes_refused"),
            deletes_failed: count("deletes_failed"),
            write_units: num("write_units"),
            read_units: num("read_units"),
            potential_write_units: num("potential_write_units"),
            cost_usd: cost,
            potential_usd: potential,
            saved_usd: potential - cost,
            saved_percent: crate::pure::cost::saved_percent(potential - cost, potential),
        }
    }

    fn add(&mut self, o: &Figures) {
        self.created += o.created;
        self.updated += o.updated;
        self.unchanged += o.unchanged;
        self.deleted += o.deleted;
        self.not_written += o.not_written;
        self.unknown += o.unknown;
        self.rejected += o.rejected;
        self.failed += o.failed;
        self.deletes_refused += o.deletes_refused;
        self.deletes_failed += o.deletes_failed;
        self.write_units += o.write_units;
        self.read_units += o.read_units;
        self.potential_write_units += o.potential_write_units;
        self.cost_usd += o.cost_usd;
        self.potential_usd += o.potential_usd;
        self.saved_usd += o.saved_usd;
        self.saved_percent = crate::pure::cost::saved_percent(self.saved_usd, self.potential_usd);
    }

    /// Items written: created plus updated.
    pub fn written(&self) -> u64 {
        self.created + self.updated
    }
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRecord {
    pub started_at: String,
    pub finished_at: String,
    /// `incremental` or `clean` (a sync), `restore`, or `repair` (`verify --repair`).
    pub mode: String,
    #[serde(flatten)]
    pub total: Figures,
    pub tables: BTreeMap<String, Figures>,
    /// The `--param` values a run's queries took: it covered that slice of the source (`{}` for a
    /// run without).
    pub params: BTreeMap<String, String>,
    /// How the run ended, in the form of a sync's report (`outcome`). The metadata table keeps it
    /// in three attributes: `outcome` (the status), `outcome_reason` and `exit_code`. A sharded
    /// run's is its shards' worst, `incomplete` while shards are missing.
    pub outcome: RecordedOutcome,
    /// The id the run was recorded under (`--run-id`, or the process's own); `null` for records
    /// from before it was kept.
    pub run_id: Option<String>,
    /// For a sharded run: its shards, and which are missing or failed; `null` for an unsharded run.
    pub shards: Option<Shards>,
    /// The shard this record is of, before [`group`] merges a run's shards.
    #[serde(skip)]
    shard: Option<Shard>,
}

/// The shards of one sharded run, as its records tell them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shards {
    /// N: how many shards the run was split into.
    pub count: u32,
    /// How many shards left a record (a shard run again counts once).
    pub recorded: u32,
    /// The shards without a record (`2/4`): still running, or killed before they could record.
    pub missing: Vec<String>,
    /// The shards whose latest record did not complete (failed or interrupted).
    pub failed: Vec<String>,
}

/// How a recorded run ended: a sync report's [`crate::pure::report::Outcome`], read back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedOutcome {
    /// `completed`, `interrupted` or `failed` (records from before outcomes were kept: completed);
    /// `incomplete` for a sharded run some of whose shards left no record.
    pub status: String,
    /// The signal or error that ended a run that did not complete; `null` for one that did.
    pub reason: Option<String>,
    pub exit_code: u8,
}

impl RecordedOutcome {
    /// The outcome a record keeps. Records from before outcomes were kept have no `outcome` and
    /// no `exit_code`: such a run got to its end (a run that failed or was stopped wrote no record
    /// then), so it is `completed`, and its exit code is inferred from its figures as the run
    /// would have exited: 3 when it left rows rejected, items not written or deletes refused, else
    /// 0. A record with a status but no code gets the status's code (interrupted 5, failed 1).
    fn of(item: &Item, figures: &Figures) -> RecordedOutcome {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let status = text("outcome").unwrap_or_else(|| "completed".into());
        let kept = item.get("exit_code").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok());
        let left_undone = figures.rejected + figures.failed + figures.not_written + figures.deletes_refused > 0;
        let exit_code = kept.unwrap_or(match status.as_str() {
            "interrupted" => crate::exit::Exit::Interrupted as u8,
            "failed" => crate::exit::Exit::Error as u8,
            _ if left_undone => crate::exit::Exit::Differences as u8,
            _ => crate::exit::Exit::Success as u8,
        });
        RecordedOutcome { status, reason: text("outcome_reason"), exit_code }
    }
}

/// `history`'s result: an environment's runs, newest first.
#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub environment: String,
    pub runs: Vec<RunRecord>,
}

impl RunRecord {
    /// `incremental`, or `incremental from=2025-01-01 to=2025-02-01` for a run with parameters,
    /// then `(interrupted, exit 5)` for a run that did not complete, or `(completed, exit 3, 10
    /// deletes refused)` for one that left something undone (`, 5 outcome unknown` for items that
    /// may or may not have been written).
    pub fn described_mode(&self) -> String {
        let params = self.params.iter().map(|(k, v)| format!(" {k}={v}"));
        let mut left = String::new();
        if self.total.deletes_refused > 0 {
            left.push_str(&format!(", {} deletes refused", self.total.deletes_refused));
        }
        if self.total.unknown > 0 {
            left.push_str(&format!(", {} outcome unknown", self.total.unknown));
        }
        if let Some(shards) = &self.shards {
            if !shards.missing.is_empty() {
                left.push_str(&format!(", missing {}", shards.missing.join(" ")));
            }
            if !shards.failed.is_empty() {
                left.push_str(&format!(", failed {}", shards.failed.join(" ")));
            }
        }
        let o = &self.outcome;
        let outcome = (o.status != "completed" || o.exit_code != 0)
            .then(|| format!(" ({}, exit {}{left})", o.status, o.exit_code));
        let sharded = self
            .shards
            .as_ref()
            .map(|s| format!(" run {} in {} shards", self.run_id.as_deref().unwrap_or("?"), s.count));
        std::iter::once(self.mode.clone()).chain(params).chain(sharded).chain(outcome).collect()
    }
}

/// Merges the records of each sharded run (same run id and shard count) into one record: the
/// figures summed over every record (a shard run again adds what its second attempt did), the
/// outcome of each shard's latest record, the worst of them, and the shards missing or failed.
/// Records come and go in the order given (oldest first); a run stands where its first shard does.
pub fn group(records: Vec<RunRecord>) -> Vec<RunRecord> {
    /// Each shard's latest record: when it started, and how it ended.
    type Latest = BTreeMap<u32, (String, RecordedOutcome)>;
    let mut out: Vec<RunRecord> = Vec::new();
    // Per merged run (run id, shard count): its place in `out`, and its shards' latest outcomes.
    let mut runs: BTreeMap<(String, u32), (usize, Latest)> = BTreeMap::new();
    for record in records {
        let (Some(shard), Some(run_id)) = (record.shard, record.run_id.clone()) else {
            out.push(record);
            continue;
        };
        let (at, latest) = runs.entry((run_id, shard.count())).or_insert_with(|| {
            let mut first = record.clone();
            first.total = Figures::default();
            first.tables = BTreeMap::new();
            first.finished_at = String::new();
            out.push(first);
            (out.len() - 1, BTreeMap::new())
        });
        let run = &mut out[*at];
        run.started_at = run.started_at.clone().min(record.started_at.clone());
        run.finished_at = run.finished_at.clone().max(record.finished_at.clone());
        run.total.add(&record.total);
        for (name, figures) in &record.tables {
            run.tables.entry(name.clone()).or_default().add(figures);
        }
        let newer = latest.get(&shard.index()).is_none_or(|(started, _)| *started <= record.started_at);
        if newer {
            latest.insert(shard.index(), (record.started_at.clone(), record.outcome.clone()));
        }
    }
    for ((_, count), (at, latest)) in runs {
        let name = |k: u32| format!("{k}/{count}");
        let missing: Vec<String> = (0..count).filter(|k| !latest.contains_key(k)).map(name).collect();
        let failed: Vec<(u32, &RecordedOutcome)> =
            latest.iter().filter(|(_, (_, o))| o.status != "completed").map(|(k, (_, o))| (*k, o)).collect();
        let worst = latest
            .values()
            .map(|(_, o)| o.exit_code)
            .max_by_key(|&code| exit_rank(code))
            .unwrap_or(crate::exit::Exit::Success as u8);
        let mut reasons: Vec<String> = failed
            .iter()
            .map(|(k, o)| format!("shard {}: {}", name(*k), o.reason.as_deref().unwrap_or(&o.status)))
            .collect();
        if !missing.is_empty() {
            reasons.push(format!(
                "shards {} not recorded: still running, or stopped before recording; run them again with the same \
                 --run-id",
                missing.join(", ")
            ));
        }
        let status = if failed.iter().any(|(_, o)| o.status == "failed") {
            "failed"
        } else if !failed.is_empty() {
            "interrupted"
        } else if !missing.is_empty() {
            "incomplete"
        } else {
            "completed"
        };
        let run = &mut out[at];
        run.total.saved_percent = crate::pure::cost::saved_percent(run.total.saved_usd, run.total.potential_usd);
        run.outcome = RecordedOutcome {
            status: status.into(),
            reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
            exit_code: worst,
        };
        run.shards = Some(Shards {
            count,
            recorded: latest.len() as u32,
            missing,
            failed: failed.iter().map(|(k, _)| name(*k)).collect(),
        });
    }
    out
}

/// How bad an exit code is, as [`crate::exit::Exit::max`] ranks them (an unknown code ranks as an
/// error).
fn exit_rank(code: u8) -> u8 {
    use crate::exit::Exit;
    let exit = Exit::ALL.iter().map(|(e, _)| *e).find(|e| *e as u8 == code).unwrap_or(Exit::Error);
    let mut rank = 0;
    for (e, _) in Exit::ALL {
        if exit.max(e) == exit && e != exit {
            rank += 1;
        }
    }
    rank
}

impl RunRecord {
    /// Reads a record written by [`crate::pure::report::RunReport::record`].
    pub fn from_item(item: &Item) -> Option<RunRecord> {
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let tables = match item.get("tables") {
            Some(AttributeValue::M(m)) => {
                m.iter().filter_map(|(name, v)| v.as_m().ok().map(|t| (name.clone(), Figures::of(t)))).collect()
            }
            _ => BTreeMap::new(),
        };
        Some(RunRecord {
            started_at: text("started_at")?,
            finished_at: text("finished_at").unwrap_or_default(),
            mode: text("mode").unwrap_or_else(|| "incremental".into()),
            outcome: RecordedOutcome::of(item, &Figures::of(item)),
            total: Figures::of(item),
            run_id: text("run_id"),
            shards: None,
            shard: text("shard").and_then(|k| Shard::parse(&k).ok()),
            tables,
            params: match item.get("params") {
                Some(AttributeValue::M(m)) => {
                    m.iter().filter_map(|(k, v)| v.as_s().ok().map(|v| (k.clone(), v.clone()))).collect()
                }
                _ => BTreeMap::new(),
            },
        })
    }
}

/// The sum of a period's runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub environment: String,
    /// The start of the period (RFC 3339), as asked.
    pub since: Option<String>,
    pub runs: usize,
    pub clean_runs: usize,
    /// Runs of `restore`.
    pub restore_runs: usize,
    /// Runs of `verify --repair`.
    pub repair_runs: usize,
    /// Runs that did not exit 0: failed, interrupted, or that left something undone (`history`
    /// lists each with its outcome).
    pub unsuccessful_runs: usize,
    pub first_run: Option<String>,
    pub last_run: Option<String>,
    /// The period's figures (its `saved_percent` is the period's).
    pub total: Figures,
    pub tables: BTreeMap<String, TableSummary>,
}

/// One table's sum over a period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TableSummary {
    /// The runs that touched the table (a run of some tables of an environment touches only those).
    pub runs: usize,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Sums runs (in any order).
pub fn summarize(environment: &str, since: Option<String>, runs: &[RunRecord]) -> Summary {
    let mut total = Figures::default();
    let mut tables: BTreeMap<String, TableSummary> = BTreeMap::new();
    for run in runs {
        total.add(&run.total);
        for (name, figures) in &run.tables {
            let table = tables.entry(name.clone()).or_default();
            table.runs += 1;
            table.figures.add(figures);
        }
    }
    Summary {
        environment: environment.to_string(),
        since,
        runs: runs.len(),
        clean_runs: runs.iter().filter(|r| r.mode == "clean").count(),
        restore_runs: runs.iter().filter(|r| r.mode == "restore").count(),
        repair_runs: runs.iter().filter(|r| r.mode == "repair").count(),
        unsuccessful_runs: runs.iter().filter(|r| r.outcome.status != "completed" || r.outcome.exit_code != 0).count(),
        first_run: runs.iter().map(|r| r.started_at.clone()).min(),
        last_run: runs.iter().map(|r| r.started_at.clone()).max(),
        total,
        tables,
    }
}

/// `--since`: a duration back from `now` (`30d`, `12h`, `2w`) or a date or time (`2026-11-01`,
/// RFC 3339). Returns the RFC 3339 instant, which orders like the records' sort keys.
pub fn since(text: &str, now: DateTime<Utc>) -> Result<String, String> {
    let instant = if let Ok(d) = humantime::parse_duration(text) {
        let d = chrono::Duration::from_std(d).map_err(|_| format!("--since {text}: too long ago"))?;
        now.checked_sub_signed(d).ok_or_else(|| format!("--since {text}: too long ago"))?
    } else if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
    } else if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        t.with_timezone(&Utc)
    } else {
        return Err(format!(
            "--since {text}: give a duration back from now (30d, 12h, 2w) or a date (2026-11-01) or an RFC 3339 time"
        ));
    };
    Ok(instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

const HEADER: [&str; 9] =
    ["new", "updated", "unchanged", "deleted", "not written", "write units", "cost", "full rewrite", "saved"];

fn cells(first: Vec<String>, f: &Figures) -> Vec<Cell> {
    let numbers = [
        f.created.to_string(),
        f.updated.to_string(),
        f.unchanged.to_string(),
        f.deleted.to_string(),
        f.not_written.to_string(),
        units(f.write_units),
        usd(f.cost_usd),
        usd(f.potential_usd),
        saved(f.saved_usd, f.potential_usd),
    ];
    first
        .into_iter()
        .map(Cell::new)
        .chain(numbers.into_iter().map(|n| Cell::new(n).set_alignment(CellAlignment::Right)))
        .collect()
}

fn table(first: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(first.iter().chain(HEADER.iter()));
    table
}

/// `ddbsync history`: one row per run, newest first.
pub fn render_history(environment: &str, runs: &[RunRecord]) -> String {
    if runs.is_empty() {
        return format!("{environment}: no runs recorded\n");
    }
    let mut t = table(&["started (UTC)", "mode"]);
    for run in runs {
        let started = run.started_at.get(..19).unwrap_or(&run.started_at).replace('T', " ");
        t.add_row(cells(vec![started, run.described_mode()], &run.total));
    }
    let mut out = format!("{environment}: {} runs\n{t}\n", runs.len());
    if runs.iter().any(|r| negative(r.total.saved_usd)) {
        out.push_str(
            "* Saved is negative where the diff's Scan cost more than the writes it spared: rewriting every item \
             without a Scan would have cost less.\n",
        );
    }
    out
}

/// `ddbsync report`: one row per table and the total, summed over the period.
pub fn render_summary(s: &Summary) -> String {
    let period = match &s.since {
        Some(since) => format!("since {}", since.get(..10).unwrap_or(since)),
        None => "all recorded runs".to_string(),
    };
    let mut kinds = vec![format!("{} clean", s.clean_runs)];
    for (n, kind) in [(s.restore_runs, "restore"), (s.repair_runs, "repair")] {
        if n > 0 {
            kinds.push(format!("{n} {kind}"));
        }
    }
    if s.unsuccessful_runs > 0 {
        kinds.push(format!("{} not exiting 0, see history", s.unsuccessful_runs));
    }
    let mut out = format!("{}: {} runs ({}), {period}\n", s.environment, s.runs, kinds.join(", "));
    if s.runs == 0 {
        return out;
    }
    let mut t = table(&["table", "runs"]);
    let row = |name: &str, runs: usize, f: &Figures| {
        let mut row = cells(vec![name.to_string(), runs.to_string()], f);
        row[1] = row[1].clone().set_alignment(CellAlignment::Right);
        row
    };
    for (name, table) in &s.tables {
        t.add_row(row(name, table.runs, &table.figures));
    }
    t.add_row(row("total", s.runs, &s.total));
    out.push_str(&format!("{t}\n"));
    out.push_str(&format!(
        "Written {} items and skipped {} unchanged; paid {} where rewriting everything would have cost {}.\n",
        s.total.written(),
        s.total.unchanged,
        usd(s.total.cost_usd),
        usd(s.total.potential_usd)
    ));
    if negative(s.total.saved_usd) {
        out.push_str(&format!(
            "* Saved is negative: the diffs' Scans read {} units, which cost more than the writes they spared; \
             rewriting every item without a Scan would have cost {} less.\n",
            units(s.total.read_units),
            usd(-s.total.saved_usd)
        ));
    }
    if s.total.unknown > 0 {
        let done = if s.total.deletes_failed > 0 { "written or deleted" } else { "written" };
        out.push_str(&format!(
            "{} items may or may not have been {done} (DynamoDB answered with a server error or not at all; \
             history shows which runs).\n",
            s.total.unknown
        ));
    }
    if s.total.deletes_refused > 0 {
        out.push_str(&format!(
            "{} items without a source row were left in place although their mappings delete them (history shows \
             which runs).\n",
            s.total.deletes_refused
        ));
    }
    out
}

/// The CSV columns of [`Figures`], after the leading ones.
const CSV_FIGURES: [&str; 17] = [
    "created",
    "updated",
    "unchanged",
    "deleted",
    "not_written",
    "write_units",
    "read_units",
    "potential_write_units",
    "cost_usd",
    "potential_usd",
    "saved_usd",
    "deletes_refused",
    "unknown",
    "deletes_failed",
    // Added after the others, so that the columns before keep their positions.
    "rejected",
    "failed",
    "saved_percent",
];

impl Figures {
    fn csv_fields(&self) -> [String; 17] {
        [
            self.created.to_string(),
            self.updated.to_string(),
            self.unchanged.to_string(),
            self.deleted.to_string(),
            self.not_written.to_string(),
            units(self.write_units),
            units(self.read_units),
            units(self.potential_write_units),
            format!("{:.8}", self.cost_usd),
            format!("{:.8}", self.potential_usd),
            format!("{:.8}", self.saved_usd),
            self.deletes_refused.to_string(),
            self.unknown.to_string(),
            self.deletes_failed.to_string(),
            self.rejected.to_string(),
            self.failed.to_string(),
            format!("{:.2}", self.saved_percent),
        ]
    }
}

/// CSV with `leading` columns before the figures and `trailing` ones after them, one row per
/// `(leading values, figures, trailing values)`.
fn csv<'a>(
    (leading, trailing): (&[&str], &[&str]),
    rows: impl Iterator<Item = (Vec<String>, &'a Figures, Vec<String>)>,
) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(leading.iter().chain(CSV_FIGURES.iter()).chain(trailing))?;
    for (first, figures, last) in rows {
        w.write_record(first.iter().cloned().chain(figures.csv_fields()).chain(last))?;
    }
    let bytes = w.into_inner().map_err(|e| csv::Error::from(e.into_error()))?;
    Ok(String::from_utf8(bytes).expect("CSV of UTF-8 fields"))
}

/// One CSV row per run: `mode` is the plain mode, as in JSON; `params` the run's `--param`
/// values (`from=2025-02-01 to=2025-03-01`), empty for a run without. After the figures (so that
/// the earlier columns keep their positions): `run_id`, and for a sharded run `shards` (N) and the
/// shards `missing` and `failed` (`2/4 3/4`), empty for an unsharded one.
pub fn history_csv(runs: &[RunRecord]) -> Result<String, csv::Error> {
    let rows = runs.iter().map(|r| {
        let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let leading = vec![
            r.started_at.clone(),
            r.finished_at.clone(),
            r.mode.clone(),
            params.join(" "),
            r.outcome.status.clone(),
            r.outcome.exit_code.to_string(),
        ];
        let shards = r.shards.as_ref();
        let trailing = vec![
            r.run_id.clone().unwrap_or_default(),
            shards.map_or(String::new(), |s| s.count.to_string()),
            shards.map_or(String::new(), |s| s.missing.join(" ")),
            shards.map_or(String::new(), |s| s.failed.join(" ")),
        ];
        (leading, &r.total, trailing)
    });
    let leading = ["started_at", "finished_at", "mode", "params", "outcome", "exit_code"];
    csv((&leading, &["run_id", "shards", "missing_shards", "failed_shards"]), rows)
}

/// One CSV row per table, with the runs that touched it, then `total` with every run.
pub fn summary_csv(s: &Summary) -> Result<String, csv::Error> {
    let tables = s.tables.iter().map(|(name, t)| (vec![name.clone(), t.runs.to_string()], &t.figures, vec![]));
    let total = std::iter::once((vec!["total".to_string(), s.runs.to_string()], &s.total, vec![]));
    csv((&["table", "runs"], &[]), tables.chain(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::cost::{Prices, Savings};
    use crate::pure::plan::Reject;
    use crate::pure::report::{Outcome, RunReport, TableReport, Totals};

    fn report(started_at: &str, created: u64, unchanged: u64, clean: bool) -> RunReport {
        let prices = Prices::builtin("us-east-1").unwrap();
        let table = |name: &str, created: u64, unchanged: u64| {
            let (w, r, p) = (created as f64, 2.0, (created + unchanged) as f64);
            TableReport {
                table: name.into(),
                table_created: false,
                created,
                updated: 1,
                unchanged,
                stale: 0,
                orphans: 0,
                orphans_counted: true,
                delete_missing: false,
                deleted: 0,
                deleted_keys: vec![],
                deletes_refused: None,
                write_units: w + 1.0,
                read_units: r,
                potential_write_units: p + 1.0,
                retries: 0,
                throttled: 0,
                cost: Savings::new(&prices, w + 1.0, r, p + 1.0),
                rejected: vec![],
                failed: vec![],
                unknown: 0,
                diff: Default::default(),
                entities: vec![],
            }
        };
        let tables = vec![table("t-lessons", created, unchanged), table("t-topics", 0, 12)];
        RunReport {
            environment: "dev".into(),
            region: "us-east-1".into(),
            started_at: started_at.into(),
            finished_at: started_at.into(),
            dry_run: false,
            clean,
            units: "measured",
            total: Totals::of(&tables, &prices),
            prices,
            tables,
            params: Default::default(),
            rejects_file: None,
            backup: None,
            outcome: Outcome::completed(),
            notes: Vec::new(),
            run_id: "host:1:2".into(),
            shard: None,
            promotion: None,
        }
    }

    fn runs() -> Vec<RunRecord> {
        [
            report("2026-11-01T02:00:00.000Z", 200, 0, true),
            report("2026-11-02T02:00:00.000Z", 5, 195, false),
            report("2026-11-03T02:00:00.000Z", 0, 200, false),
        ]
        .iter()
        .map(|r| RunRecord::from_item(&r.record()).expect("a record"))
        .collect()
    }

    #[test]
    fn a_run_with_parameters_lists_them_with_its_mode() {
        let mut sliced = report("2026-11-04T02:00:00.000Z", 1, 0, false);
        sliced.params.insert("from".into(), "2026-10-01".into());
        sliced.params.insert("to".into(), "2026-11-01".into());
        let run = RunRecord::from_item(&sliced.record()).unwrap();
        assert_eq!(run.described_mode(), "incremental from=2026-10-01 to=2026-11-01");
        assert!(render_history("dev", &[run]).contains("incremental from=2026-10-01 to=2026-11-01"));
        assert_eq!(runs()[0].described_mode(), "clean");
    }

    #[test]
    fn a_record_reads_back_what_the_report_said() {
        let r = report("2026-11-02T02:00:00.000Z", 5, 195, false);
        let back = RunRecord::from_item(&r.record()).unwrap();
        assert_eq!((back.total.created, back.total.updated, back.total.unchanged), (5, 2, 207));
        assert_eq!(back.total.write_units, r.total.write_units);
        assert_eq!(back.total.potential_write_units, r.total.potential_write_units);
        assert!((back.total.cost_usd - r.total.cost.actual).abs() < 1e-15);
        assert!((back.total.saved_usd - r.total.cost.saved).abs() < 1e-15);
        assert_eq!(back.tables["t-lessons"].created, 5);
        assert!((back.tables["t-topics"].cost_usd - r.tables[1].cost.actual).abs() < 1e-15);
    }

    #[test]
    fn old_records_without_newer_fields_read_as_zero() {
        let mut item = report("2026-11-02T02:00:00.000Z", 5, 195, false).record();
        item.remove("potential_write_units");
        item.remove("tables");
        let back = RunRecord::from_item(&item).unwrap();
        assert_eq!(back.total.potential_write_units, 0.0);
        assert!(back.tables.is_empty());
        item.remove("started_at");
        assert_eq!(RunRecord::from_item(&item), None);
    }

    /// A record from before outcomes were kept (no `outcome`, no `exit_code`) that left rows
    /// rejected or not written exited 3: `history` says so and `report` counts it as unsuccessful;
    /// one that left nothing exited 0. Its JSON has `reason: null` and `params: {}` all the same.
    #[test]
    fn old_records_without_an_outcome_get_the_exit_code_their_figures_give() {
        let old = |rejected: u64, failed: u64| {
            let mut item = report("2026-11-02T02:00:00.000Z", 5, 195, false).record();
            for name in ["outcome", "exit_code", "outcome_reason"] {
                item.remove(name);
            }
            item.insert("rejected".into(), AttributeValue::N(rejected.to_string()));
            item.insert("failed".into(), AttributeValue::N(failed.to_string()));
            RunRecord::from_item(&item).unwrap()
        };
        let left = old(2, 1);
        assert_eq!((left.outcome.status.as_str(), left.outcome.exit_code), ("completed", 3));
        assert!(left.described_mode().contains("(completed, exit 3)"), "{}", left.described_mode());
        let clean = old(0, 0);
        assert_eq!(clean.outcome.exit_code, 0);
        assert_eq!(summarize("dev", None, &[left.clone(), clean]).unsuccessful_runs, 1);
        let json = serde_json::to_value(&left).unwrap();
        assert_eq!((&json["outcome"]["reason"], &json["params"]), (&serde_json::Value::Null, &serde_json::json!({})));
        // A status without a code: the status's.
        let mut item = report("2026-11-02T02:00:00.000Z", 5, 195, false).record();
        item.remove("exit_code");
        item.insert("outcome".into(), AttributeValue::S("interrupted".into()));
        assert_eq!(RunRecord::from_item(&item).unwrap().outcome.exit_code, 5);
    }

    /// `--json` names a figure the same in a sync's report, in `history` and in `report`, with the
    /// same value (the contract `schema/ddbsync-output.schema.json` describes).
    #[test]
    fn history_and_report_name_the_sync_reports_figures_alike() {
        let mut r = report("2026-11-02T02:00:00.000Z", 5, 195, false);
        r.tables[0].rejected = vec![Reject { key: "id=1".into(), reason: "bad".into() }; 2];
        r.tables[0].failed = vec![Reject { key: "id=2".into(), reason: "outcome unknown: …".into() }; 3];
        r.tables[0].unknown = 1;
        r.tables[0].delete_missing = true;
        r.tables[0].orphans = 4;
        r.tables[0].deletes_refused = Some("the mass-delete guard".into());
        r.total = Totals::of(&r.tables, &r.prices);
        let sync = serde_json::to_value(&r).unwrap();
        let run = RunRecord::from_item(&r.record()).unwrap();
        let history = serde_json::to_value(History { environment: "dev".into(), runs: vec![run.clone()] }).unwrap();
        let summary = serde_json::to_value(summarize("dev", None, &[run])).unwrap();
        let figures = [
            "created",
            "updated",
            "unchanged",
            "deleted",
            "rejected",
            "failed",
            "unknown",
            "deletes_refused",
            "write_units",
            "read_units",
            "potential_write_units",
            "cost_usd",
            "potential_usd",
            "saved_usd",
            "saved_percent",
        ];
        for name in figures {
            let want = sync["total"][name].as_f64().unwrap_or_else(|| panic!("sync total has no {name}: {sync}"));
            for (what, got) in [("history", &history["runs"][0][name]), ("report", &summary["total"][name])] {
                let got = got.as_f64().unwrap_or_else(|| panic!("{what} has no {name}"));
                assert!((got - want).abs() < 1e-12, "{name}: {what} {got}, sync {want}");
            }
            let table = sync["tables"][0][name].as_f64();
            if let Some(table) = table {
                let got = history["runs"][0]["tables"]["t-lessons"][name].as_f64().unwrap();
                assert!((got - table).abs() < 1e-12, "{name} of a table: history {got}, sync {table}");
            }
        }
        assert_eq!(sync["total"]["deletes_refused"], 4, "items, as history counts them");
        assert_eq!(sync["total"]["deletes_refused_tables"], 1);
        assert_eq!(sync["tables"][0]["deletes_refused_reason"], "the mass-delete guard");
        assert!(sync.get("cost").is_none() && sync["total"].get("cost").is_none(), "no cost object: {sync}");
        assert_eq!(history["runs"][0]["outcome"], sync["outcome"], "the outcome has one shape");
    }

    /// A record as the metadata table held it before `rejected`, `failed` and the outcome were read
    /// back (attribute names frozen: they are persisted) still lists, with what it has.
    #[test]
    fn a_record_of_an_older_version_reads_with_its_outcome() {
        let n = |v: &str| AttributeValue::N(v.into());
        let s = |v: &str| AttributeValue::S(v.into());
        let item: Item = [
            ("pk", s("RUN")),
            ("sk", s("2026-01-02T02:00:00.000Z#dev")),
            ("environment", s("dev")),
            ("started_at", s("2026-01-02T02:00:00.000Z")),
            ("finished_at", s("2026-01-02T02:01:00.000Z")),
            ("mode", s("incremental")),
            ("outcome", s("interrupted")),
            ("outcome_reason", s("SIGTERM")),
            ("exit_code", n("5")),
            ("created", n("7")),
            ("cost_usd", n("0.25")),
            ("potential_usd", n("1")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let run = RunRecord::from_item(&item).unwrap();
        let want = RecordedOutcome { status: "interrupted".into(), reason: Some("SIGTERM".into()), exit_code: 5 };
        assert_eq!(run.outcome, want);
        assert_eq!((run.total.created, run.total.rejected, run.total.failed), (7, 0, 0));
        assert_eq!((run.total.saved_usd, run.total.saved_percent), (0.75, 75.0));
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["outcome"], serde_json::json!({"status": "interrupted", "reason": "SIGTERM", "exit_code": 5}));
    }

    #[test]
    fn a_summary_adds_up_every_run_and_table() {
        let runs = runs();
        let s = summarize("dev", None, &runs);
        assert_eq!((s.runs, s.clean_runs), (3, 1));
        assert_eq!(s.total.created, 205);
        assert_eq!(s.total.updated, 6);
        assert_eq!(s.total.unchanged, 395 + 36);
        assert_eq!(s.tables["t-lessons"].figures.created, 205);
        assert_eq!(s.tables["t-topics"].figures.unchanged, 36);
        let cost: f64 = runs.iter().map(|r| r.total.cost_usd).sum();
        assert!((s.total.cost_usd - cost).abs() < 1e-15);
        assert_eq!(s.first_run.as_deref(), Some("2026-11-01T02:00:00.000Z"));
        assert_eq!(s.last_run.as_deref(), Some("2026-11-03T02:00:00.000Z"));
    }

    #[test]
    fn each_tables_runs_are_the_runs_that_touched_it() {
        let mut all = runs();
        let mut one = report("2026-11-04T02:00:00.000Z", 1, 0, false);
        one.tables.truncate(1);
        one.total = Totals::of(&one.tables, &one.prices);
        all.push(RunRecord::from_item(&one.record()).unwrap());
        let s = summarize("dev", None, &all);
        assert_eq!((s.runs, s.tables["t-lessons"].runs, s.tables["t-topics"].runs), (4, 4, 3));
        let csv = summary_csv(&s).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[1].starts_with("t-lessons,4,") && lines[2].starts_with("t-topics,3,"), "{csv}");
        assert!(lines[3].starts_with("total,4,"), "{csv}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(
            (json["tables"]["t-topics"]["runs"].as_u64(), json["tables"]["t-topics"]["unchanged"].as_u64()),
            (Some(3), Some(36))
        );
        assert!(render_summary(&s).contains("│ t-topics  ┆    3 ┆"), "{}", render_summary(&s));
    }

    #[test]
    fn history_csv_has_the_plain_mode_and_the_parameters_apart() {
        let mut sliced = report("2026-11-04T02:00:00.000Z", 1, 0, false);
        sliced.params.insert("from".into(), "2025-02-01".into());
        sliced.params.insert("to".into(), "2025-03-01".into());
        sliced.outcome = Outcome { status: "interrupted", reason: Some("SIGTERM".into()), exit_code: 5 };
        let run = RunRecord::from_item(&sliced.record()).unwrap();
        let csv = history_csv(&[run]).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("started_at,finished_at,mode,params,outcome,exit_code,created,"), "{csv}");
        assert!(lines[1].contains(",incremental,from=2025-02-01 to=2025-03-01,interrupted,5,"), "{csv}");
    }

    #[test]
    fn a_report_says_written_or_deleted_where_deletes_are_of_unknown_outcome() {
        let mut r = report("2026-11-04T02:00:00.000Z", 1, 0, false);
        let plain = summarize("dev", None, &[RunRecord::from_item(&r.record()).unwrap()]);
        assert_eq!(plain.total.deletes_failed, 0);
        r.tables[0].delete_missing = true;
        r.tables[0].orphans = 2;
        r.tables[0].failed = vec![Reject { key: "id=1".into(), reason: "outcome unknown: …".into() }; 2];
        r.tables[0].unknown = 2;
        r.total = Totals::of(&r.tables, &r.prices);
        let run = RunRecord::from_item(&r.record()).unwrap();
        assert_eq!((run.total.deletes_failed, run.tables["t-lessons"].deletes_failed, run.total.unknown), (2, 2, 2));
        let text = render_summary(&summarize("dev", None, &[run]));
        assert!(text.contains("2 items may or may not have been written or deleted ("), "{text}");
    }

    #[test]
    fn runs_that_did_not_exit_zero_say_so_with_their_refused_deletes() {
        let mut refused = report("2026-11-04T02:00:00.000Z", 1, 0, false);
        refused.tables[0].delete_missing = true;
        refused.tables[0].orphans = 10;
        refused.tables[0].deletes_refused = Some("not deleted: over the guard".into());
        refused.total = Totals::of(&refused.tables, &refused.prices);
        refused.settle_exit();
        let run = RunRecord::from_item(&refused.record()).unwrap();
        assert_eq!((run.outcome.exit_code, run.total.deletes_refused), (3, 10));
        assert_eq!(run.described_mode(), "incremental (completed, exit 3, 10 deletes refused)");
        assert_eq!(run.tables["t-lessons"].deletes_refused, 10);
        // A record written before refused deletes were kept reads them as none.
        let mut old = refused.record();
        old.remove("deletes_refused");
        assert_eq!(RunRecord::from_item(&old).unwrap().total.deletes_refused, 0);
        let summary = summarize("dev", None, &[run]);
        assert_eq!((summary.unsuccessful_runs, summary.total.deletes_refused), (1, 10));
        let text = render_summary(&summary);
        assert!(text.starts_with("dev: 1 runs (0 clean, 1 not exiting 0, see history), all recorded runs\n"), "{text}");
        assert!(text.contains("10 items without a source row were left in place"), "{text}");
    }

    #[test]
    fn a_restore_is_listed_and_its_units_summed() {
        use crate::pure::report::{OperationRun, OperationTable};
        let restore = OperationRun {
            environment: "dev".into(),
            mode: "restore",
            started_at: "2026-11-05T02:00:00.000Z".into(),
            finished_at: "2026-11-05T02:10:00.000Z".into(),
            prices: Prices::builtin("us-east-1").unwrap(),
            tables: vec![OperationTable {
                table: "t-lessons".into(),
                created: 2000,
                write_units: 2678.0,
                ..Default::default()
            }],
            outcome: Outcome { status: "interrupted", reason: Some("SIGTERM".into()), exit_code: 5 },
        };
        let back = RunRecord::from_item(&restore.record()).unwrap();
        assert_eq!(back.described_mode(), "restore (interrupted, exit 5)");
        assert_eq!((back.total.created, back.total.write_units, back.total.saved_usd), (2000, 2678.0, 0.0));
        let mut all = runs();
        all.push(back);
        let s = summarize("dev", None, &all);
        let syncs: f64 = runs().iter().map(|r| r.total.write_units).sum();
        assert_eq!(s.total.write_units, syncs + 2678.0);
        assert_eq!(
            s.tables["t-lessons"].figures.write_units,
            runs().iter().map(|r| r.tables["t-lessons"].write_units).sum::<f64>() + 2678.0
        );
        assert_eq!((s.restore_runs, s.unsuccessful_runs), (1, 1));
        assert!(render_summary(&s).starts_with("dev: 4 runs (1 clean, 1 restore, 1 not exiting 0, see history)"));
        assert!(render_history("dev", &all).contains("restore (interrupted, exit 5)"));
    }

    #[test]
    fn a_negative_saving_is_marked_and_explained() {
        let mut costly = report("2026-11-04T02:00:00.000Z", 0, 0, false);
        for t in &mut costly.tables {
            t.read_units = 5000.0;
            t.cost = Savings::new(&costly.prices, t.write_units, 5000.0, t.potential_write_units);
        }
        costly.total = Totals::of(&costly.tables, &costly.prices);
        let run = RunRecord::from_item(&costly.record()).unwrap();
        assert!(run.total.saved_usd < 0.0);
        let history = render_history("dev", std::slice::from_ref(&run));
        assert!(history.contains("%) *"), "{history}");
        assert!(history.contains("* Saved is negative where the diff's Scan cost more"), "{history}");
        let summary = render_summary(&summarize("dev", None, &[run]));
        assert!(summary.contains("* Saved is negative: the diffs' Scans read 10000 units"), "{summary}");
    }

    #[test]
    fn since_takes_durations_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(since("30d", now).unwrap(), "2026-10-22T12:00:00.000Z");
        assert_eq!(since("12h", now).unwrap(), "2026-11-21T00:00:00.000Z");
        assert_eq!(since("2026-11-01", now).unwrap(), "2026-11-01T00:00:00.000Z");
        assert_eq!(since("2026-11-01T06:30:00+01:00", now).unwrap(), "2026-11-01T05:30:00.000Z");
        assert!(since("last tuesday", now).unwrap_err().contains("30d"));
    }

    #[test]
    fn history_and_summary_render() {
        let mut runs = runs();
        runs.reverse();
        insta::assert_snapshot!("history", render_history("dev", &runs));
        insta::assert_snapshot!(
            "summary",
            render_summary(&summarize("dev", Some("2026-10-22T12:00:00.000Z".into()), &runs))
        );
        insta::assert_snapshot!("history_csv", history_csv(&runs).unwrap());
        insta::assert_snapshot!("summary_csv", summary_csv(&summarize("dev", None, &runs)).unwrap());
    }

    /// Shard `k` of `n` of run `run`, started at `started`, creating `created` items.
    fn shard_record(run: &str, k: u32, n: u32, started: &str, created: u64, outcome: Outcome) -> RunRecord {
        let mut r = report(started, created, 0, false);
        r.run_id = run.into();
        r.shard = Some(format!("{k}/{n}"));
        r.outcome = outcome;
        RunRecord::from_item(&r.record()).unwrap()
    }

    #[test]
    fn a_sharded_run_is_one_run_summed_over_its_shards() {
        let single = RunRecord::from_item(&report("2026-11-01T01:00:00.000Z", 7, 0, false).record()).unwrap();
        let records = vec![
            single.clone(),
            shard_record("n1", 1, 3, "2026-11-02T02:00:00.002Z", 10, Outcome::completed()),
            shard_record("n1", 0, 3, "2026-11-02T02:00:00.001Z", 20, Outcome::completed()),
            shard_record("n2", 0, 3, "2026-11-03T02:00:00.000Z", 1, Outcome::completed()),
            shard_record("n1", 2, 3, "2026-11-02T02:00:00.003Z", 30, Outcome::completed()),
        ];
        let runs = group(records);
        assert_eq!(runs.len(), 3, "the unsharded run, n1 and n2");
        assert_eq!(runs[0], single);
        let n1 = &runs[1];
        assert_eq!(n1.run_id.as_deref(), Some("n1"));
        assert_eq!(n1.total.created, 60, "summed");
        assert_eq!(n1.tables["t-lessons"].created, 60);
        assert_eq!(n1.started_at, "2026-11-02T02:00:00.001Z", "the first shard's start");
        assert_eq!((n1.outcome.status.as_str(), n1.outcome.exit_code), ("completed", 0));
        let shards = n1.shards.as_ref().unwrap();
        assert_eq!((shards.count, shards.recorded, shards.missing.len(), shards.failed.len()), (3, 3, 0, 0));
        assert_eq!(n1.described_mode(), "incremental run n1 in 3 shards");
        let n2 = &runs[2];
        assert_eq!(n2.shards.as_ref().unwrap().missing, ["1/3", "2/3"]);
        assert_eq!(n2.outcome.status, "incomplete");
        assert!(n2.described_mode().contains("(incomplete, exit 0, missing 1/3 2/3)"), "{}", n2.described_mode());
        let summary = summarize("dev", None, &runs);
        assert_eq!((summary.runs, summary.unsuccessful_runs, summary.total.created), (3, 1, 68));
        assert_eq!(summary.tables["t-lessons"].runs, 3, "a sharded run counts once per table");
    }

    #[test]
    fn a_failed_shard_run_again_counts_by_its_latest_record_and_both_attempts_figures() {
        let failed = Outcome { status: "interrupted", reason: Some("SIGTERM".into()), exit_code: 5 };
        let broken = Outcome { status: "failed", reason: Some("DynamoDB said no".into()), exit_code: 1 };
        let runs = group(vec![
            shard_record("r", 0, 2, "2026-11-02T02:00:00.000Z", 5, Outcome::completed()),
            shard_record("r", 1, 2, "2026-11-02T02:00:00.000Z", 3, failed.clone()),
            shard_record("r", 1, 2, "2026-11-02T02:10:00.000Z", 4, Outcome::completed()),
        ]);
        assert_eq!(runs.len(), 1);
        assert_eq!((runs[0].outcome.status.as_str(), runs[0].outcome.exit_code), ("completed", 0));
        assert_eq!(runs[0].total.created, 12, "what each attempt wrote");
        assert_eq!(runs[0].shards.as_ref().unwrap().recorded, 2);

        let runs = group(vec![
            shard_record("r", 0, 2, "2026-11-02T02:00:00.000Z", 5, broken),
            shard_record("r", 1, 2, "2026-11-02T02:00:00.000Z", 3, failed),
        ]);
        let run = &runs[0];
        assert_eq!((run.outcome.status.as_str(), run.outcome.exit_code), ("failed", 1), "the worst");
        assert_eq!(run.shards.as_ref().unwrap().failed, ["0/2", "1/2"]);
        let reason = run.outcome.reason.as_deref().unwrap();
        assert!(reason.contains("shard 0/2: DynamoDB said no") && reason.contains("shard 1/2: SIGTERM"), "{reason}");
        assert!(render_history("dev", &runs).contains("failed 0/2 1/2"), "{}", render_history("dev", &runs));
        // Two splits of one run id are two runs.
        let two = group(vec![
            shard_record("r", 0, 2, "2026-11-02T02:00:00.000Z", 1, Outcome::completed()),
            shard_record("r", 0, 4, "2026-11-02T02:00:00.000Z", 1, Outcome::completed()),
        ]);
        assert_eq!(two.len(), 2);
    }

    #[test]
    fn history_csv_ends_with_the_run_id_and_the_shards() {
        let runs = group(vec![shard_record("n1", 1, 2, "2026-11-02T02:00:00.000Z", 1, Outcome::completed())]);
        let csv = history_csv(&runs).unwrap();
        let mut lines = csv.lines();
        assert!(lines.next().unwrap().ends_with(",saved_percent,run_id,shards,missing_shards,failed_shards"));
        assert!(lines.next().unwrap().ends_with(",n1,2,0/2,"), "{csv}");
    }

    #[test]
    fn shards_starting_at_once_have_records_of_their_own() {
        let key = |k| {
            let mut r = report("2026-11-02T02:00:00.000Z", 1, 0, false);
            r.run_id = "n".into();
            r.shard = Some(format!("{k}/2"));
            r.record()["sk"].clone()
        };
        assert_ne!(key(0), key(1));
        let plain = report("2026-11-02T02:00:00.000Z", 1, 0, false).record();
        assert_eq!(plain["sk"], AttributeValue::S("2026-11-02T02:00:00.000Z#dev".into()), "unchanged for a whole run");
    }
}
