//! `ddbsync status`: what the runs holding the lock have done so far, and how the last one ended.
//! Pure: the lock's renewals write each table's [`TableProgress`] into its lease item
//! ([`crate::engine::lock`]); the command reads the lease items and the run records and hands
//! them here as [`Held`] leases and [`RunRecord`]s, with the time to judge them by.
//!
//! A lease item carries only its own table's progress (a few hundred bytes, one write unit,
//! whatever the run's table count), so the figures are as fresh as the last renewal (a third of
//! the lease): `as_of` says when that was. The ETA is the time left to read the source at the
//! rate read so far, against the rows the previous run of the same command read from the same
//! tables (`unknown` without one). A lease whose holder is gone (expired, or its process ended
//! on the host that checks) is shown as stale: the next run takes it over.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use serde::Serialize;

use crate::pure::item::AttributeValue;
use crate::pure::report::units;
use crate::pure::runs::RunRecord;

/// Where a table of a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Locked, not started yet (its lease carries no progress yet).
    Waiting,
    /// Reading the source and the target's hashes, and diffing (writes start as changes are found).
    Reading,
    /// Every row read: the last writes are in flight.
    Writing,
    /// Deleting the items without a source row.
    Deleting,
    /// Done with this table; a run whose tables are all done is finishing (its report and record).
    Done,
}

impl Phase {
    pub const ALL: [Phase; 5] = [Phase::Waiting, Phase::Reading, Phase::Writing, Phase::Deleting, Phase::Done];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Waiting => "waiting",
            Phase::Reading => "reading",
            Phase::Writing => "writing",
            Phase::Deleting => "deleting",
            Phase::Done => "done",
        }
    }

    fn parse(text: &str) -> Option<Phase> {
        Phase::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// One table's progress, as a renewal writes it into the table's lease item (attribute
/// [`PROGRESS`], a map).
#[derive(Debug, Clone, PartialEq)]
pub struct TableProgress {
    pub phase: Phase,
    /// Source rows read (a shard reads every row, and keeps those it owns).
    pub read: u64,
    /// Items DynamoDB confirmed written.
    pub written: u64,
    pub deleted: u64,
    pub rejected: u64,
    /// Write units consumed, as DynamoDB reported them.
    pub write_units: f64,
    /// An apply's: its plan's changes to this table (`None` for any other command, which reads a
    /// source instead of a plan).
    pub planned: Option<u64>,
    /// An apply's changes the target already held, and those skipped as drift: done too, though
    /// not written.
    pub already_applied: u64,
    pub drifted: u64,
    /// When these figures were taken.
    pub at: DateTime<Utc>,
}

/// The lease item's attribute that holds its table's progress.
pub const PROGRESS: &str = "progress";
/// The lease item's attribute that names the command holding it (`sync`, `verify --repair`, …).
pub const COMMAND: &str = "command";

impl TableProgress {
    /// The map attribute a lease item carries.
    pub fn attribute(&self) -> AttributeValue {
        let n = |v: u64| AttributeValue::N(v.to_string());
        let map = [
            ("phase", AttributeValue::S(self.phase.as_str().into())),
            ("read", n(self.read)),
            ("written", n(self.written)),
            ("deleted", n(self.deleted)),
            ("rejected", n(self.rejected)),
            // Whole hundredths: DynamoDB's numbers, never an exponent.
            ("write_units", AttributeValue::N(format!("{:.2}", self.write_units.max(0.0)))),
            ("at", AttributeValue::S(self.at.to_rfc3339_opts(SecondsFormat::Millis, true))),
        ];
        // Only an apply's lease carries its plan's figures: a sync's stays as small as it was.
        let plan = self.planned.map(|planned| {
            [("planned", n(planned)), ("already_applied", n(self.already_applied)), ("drifted", n(self.drifted))]
        });
        AttributeValue::M(map.into_iter().chain(plan.into_iter().flatten()).map(|(k, v)| (k.to_string(), v)).collect())
    }

    /// Reads [`TableProgress::attribute`] back; `None` for anything else (an older ddbsync's
    /// lease has none).
    pub fn from_attribute(value: &AttributeValue) -> Option<TableProgress> {
        let map = value.as_m().ok()?;
        let num = |k: &str| map.get(k).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<f64>().ok());
        let count = |k: &str| num(k).map(|n| n.max(0.0) as u64).unwrap_or(0);
        let at = map.get("at").and_then(|v| v.as_s().ok()).and_then(|t| DateTime::parse_from_rfc3339(t).ok())?;
        Some(TableProgress {
            phase: map.get("phase").and_then(|v| v.as_s().ok()).and_then(|p| Phase::parse(p))?,
            read: count("read"),
            written: count("written"),
            deleted: count("deleted"),
            rejected: count("rejected"),
            write_units: num("write_units").unwrap_or(0.0).max(0.0),
            planned: num("planned").map(|n| n.max(0.0) as u64),
            already_applied: count("already_applied"),
            drifted: count("drifted"),
            at: at.with_timezone(&Utc),
        })
    }
}

/// One lease item as the command read it: whose, of which table, and the progress it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub table: String,
    /// The holder's own run id (a shard's own process).
    pub run_id: String,
    /// The command holding it; `unknown` for a lease of an older ddbsync.
    pub command: String,
    /// The environment whose run holds it (another may name the same tables).
    pub environment: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// A shard's lease: the run id the shards share, their count and this one (`1/4`).
    pub shard: Option<(String, u32, String)>,
    /// Why the lease is stale (its holder is gone); `None` while it is live.
    pub stale: Option<String>,
    pub progress: Option<TableProgress>,
}

/// `status`'s result.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub environment: String,
    /// When the lease items were read (RFC 3339).
    pub checked_at: String,
    /// The runs holding the lock of a table of the environment (stale ones included, marked).
    pub active: Vec<ActiveRun>,
    /// The last recorded run, as `history` lists it; `null` when none is recorded.
    pub last_run: Option<RunRecord>,
    /// The metadata table the leases and records were read from.
    pub metadata_table: String,
    /// `false` when it does not exist: no run of this profile has ever taken a lock there, or the
    /// profile names the wrong one (`table_prefix`, `table_suffix`, the region).
    pub metadata_table_exists: bool,
    /// Where it was looked for (the region, and the endpoint when the profile sets one).
    #[serde(skip)]
    pub location: String,
}

/// A run holding the lock: one process, or the shards of a sharded run.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveRun {
    /// The run id (a sharded run's shared `--run-id`).
    pub run_id: String,
    /// `sync`, `verify --repair`, `restore`, `backup`, `tables drop`…
    pub command: String,
    /// The environment whose run it is: this one, or another naming the same tables.
    pub environment: String,
    /// N for a sharded run; `null` otherwise.
    pub shards: Option<u32>,
    /// Each process of the run: one, or one per shard holding its lease.
    pub processes: Vec<Process>,
}

/// One process of an active run and its tables.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// `K/N` for a shard; `null` otherwise.
    pub shard: Option<String>,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    /// When its lease runs out unless it is renewed.
    pub expires_at: String,
    /// `null` while the holder renews its lease; else why it is stale (the next run takes it over).
    pub stale: Option<String>,
    /// The process's phase: that of its first table not done, `finishing` once all are.
    pub phase: String,
    /// Its figures, summed over its tables.
    pub read: u64,
    pub written: u64,
    pub deleted: u64,
    pub rejected: u64,
    pub write_units: f64,
    /// When its latest figures were written (RFC 3339); `null` before the first.
    pub as_of: Option<String>,
    /// Source rows read per second since it took the lock; `null` before any figures.
    pub rows_per_second: Option<f64>,
    /// An apply's: the changes its plan makes to its tables (`null` for other commands).
    pub planned: Option<u64>,
    /// An apply's changes done: written, deleted, already applied or skipped as drift.
    pub done: Option<u64>,
    pub already_applied: u64,
    pub drifted: u64,
    /// An apply's changes done per second since it took the lock; `null` before any figures.
    pub changes_per_second: Option<f64>,
    /// Seconds left to read the source at that rate, against the rows the previous run read (an
    /// apply: to make the plan's changes left at its rate of changes); `null` when unknown (no
    /// previous run of the tables, no rate yet) or once reading is over.
    pub eta_seconds: Option<u64>,
    pub tables: Vec<TableStatus>,
}

/// One table of a process.
#[derive(Debug, Clone, Serialize)]
pub struct TableStatus {
    pub table: String,
    pub phase: Phase,
    pub read: u64,
    pub written: u64,
    pub deleted: u64,
    pub rejected: u64,
    pub write_units: f64,
    /// The rows the previous run of the same command read from this table; `null` when none is recorded.
    pub previous_rows: Option<u64>,
    /// An apply's: its plan's changes to this table, and those already applied or skipped as drift.
    pub planned: Option<u64>,
    pub already_applied: u64,
    pub drifted: u64,
    /// Seconds left to read this table at the process's rate (an apply: to make its changes left);
    /// `null` when unknown or not reading.
    pub eta_seconds: Option<u64>,
}

impl TableStatus {
    /// An apply's changes done to this table: written, deleted, already applied or drift.
    fn done(&self) -> u64 {
        self.written + self.deleted + self.already_applied + self.drifted
    }
}

/// The command a run record's mode comes from, to match a running command with its previous run.
/// Only a sync's own modes are a sync's: an apply writes a plan's few changes and a restore a
/// backup, so neither says how many rows a sync reads (nor a sync how many changes an apply makes).
fn command_of_mode(mode: &str) -> &str {
    match mode {
        "incremental" | "clean" => "sync",
        "repair" => "verify",
        other => other,
    }
}

/// The rows a recorded run read from a table: every source row ends created, updated,
/// unchanged, rejected or failed (a sharded run's record sums its shards, each row once).
fn rows_of(figures: &crate::pure::runs::Figures) -> u64 {
    figures.created + figures.updated + figures.unchanged + figures.rejected + figures.failed
}

/// The rows the latest completed run of `command` read from each table (`runs` oldest first).
fn previous_rows(command: &str, runs: &[RunRecord]) -> BTreeMap<String, u64> {
    let base = command.split_whitespace().next().unwrap_or("");
    let mut rows = BTreeMap::new();
    for run in runs.iter().filter(|r| r.outcome.status == "completed" && command_of_mode(&r.mode) == base) {
        for (table, figures) in &run.tables {
            rows.insert(table.clone(), rows_of(figures));
        }
    }
    rows
}

/// Seconds to read `left` rows at `rate` rows a second; `None` without a rate.
pub fn eta(left: u64, rate: Option<f64>) -> Option<u64> {
    match rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => Some((left as f64 / rate).ceil() as u64),
        _ if left == 0 => Some(0),
        _ => None,
    }
}

/// Groups the lease items into runs (a sharded run's shards are one run), each process with its
/// tables, rate and ETA; `runs` are the recorded runs, oldest first.
pub fn build(environment: &str, now: DateTime<Utc>, leases: Vec<Held>, runs: &[RunRecord]) -> Status {
    /// A run's command, shard count, and leases per process (its own run id).
    type Leases = (String, Option<u32>, BTreeMap<String, Vec<Held>>);
    // Per run: the shared id of a sharded run, else the holder's.
    let mut by_run: BTreeMap<String, Leases> = BTreeMap::new();
    for lease in leases {
        let run = lease.shard.as_ref().map_or_else(|| lease.run_id.clone(), |(run, _, _)| run.clone());
        let count = lease.shard.as_ref().map(|(_, n, _)| *n);
        let entry = by_run.entry(run).or_insert_with(|| (lease.command.clone(), count, BTreeMap::new()));
        entry.2.entry(lease.run_id.clone()).or_default().push(lease);
    }
    let mut active: Vec<ActiveRun> = by_run
        .into_iter()
        .map(|(run_id, (command, shards, processes))| {
            let runs_of = processes.values().flatten().next().map(|h| h.environment.clone()).unwrap_or_default();
            // Another environment's records are not read: its run's ETA is unknown.
            let previous = match runs_of == environment {
                true => previous_rows(&command, runs),
                false => BTreeMap::new(),
            };
            let mut processes: Vec<Process> = processes.into_values().map(|held| process(held, &previous)).collect();
            processes.sort_by(|a, b| a.shard.cmp(&b.shard).then(a.started_at.cmp(&b.started_at)));
            ActiveRun { run_id, command, environment: runs_of, shards, processes }
        })
        .collect();
    active.sort_by(|a, b| a.processes.first().map(|p| &p.started_at).cmp(&b.processes.first().map(|p| &p.started_at)));
    Status {
        environment: environment.to_string(),
        checked_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        active,
        last_run: runs.last().cloned(),
        metadata_table: String::new(),
        metadata_table_exists: true,
        location: String::new(),
    }
}

/// One process's leases (one per table) as its status.
fn process(mut held: Vec<Held>, previous: &BTreeMap<String, u64>) -> Process {
    held.sort_by(|a, b| a.table.cmp(&b.table));
    let first = held[0].clone();
    // An apply reads no source: its progress is its plan's changes done, not rows read.
    let apply =
        first.command == "apply" || held.iter().any(|h| h.progress.as_ref().is_some_and(|p| p.planned.is_some()));
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let as_of = held.iter().filter_map(|h| h.progress.as_ref().map(|p| p.at)).max();
    let read: u64 = held.iter().filter_map(|h| h.progress.as_ref()).map(|p| p.read).sum();
    let elapsed = as_of.map(|at| (at - first.started_at).num_milliseconds() as f64 / 1000.0);
    let done: u64 = held
        .iter()
        .filter_map(|h| h.progress.as_ref())
        .map(|p| p.written + p.deleted + p.already_applied + p.drifted)
        .sum();
    let rate = elapsed.filter(|s| *s > 0.0).map(|s| if apply { done } else { read } as f64 / s);
    let phase_of = |h: &Held| h.progress.as_ref().map_or(Phase::Waiting, |p| p.phase);
    let tables: Vec<TableStatus> = held
        .iter()
        .map(|h| {
            let p = h.progress.clone();
            let phase = phase_of(h);
            let read = p.as_ref().map_or(0, |p| p.read);
            let previous_rows = previous.get(&h.table).copied();
            let planned = p.as_ref().and_then(|p| p.planned);
            let eta_seconds = match (apply, phase) {
                (true, Phase::Done) => None,
                (true, _) => planned.and_then(|n| {
                    let done = p.as_ref().map_or(0, |p| p.written + p.deleted + p.already_applied + p.drifted);
                    eta(n.saturating_sub(done), rate)
                }),
                (false, Phase::Waiting | Phase::Reading) => {
                    previous_rows.and_then(|rows| eta(rows.saturating_sub(read), rate))
                }
                (false, _) => None,
            };
            TableStatus {
                table: h.table.clone(),
                phase,
                read,
                written: p.as_ref().map_or(0, |p| p.written),
                deleted: p.as_ref().map_or(0, |p| p.deleted),
                rejected: p.as_ref().map_or(0, |p| p.rejected),
                write_units: p.as_ref().map_or(0.0, |p| p.write_units),
                previous_rows: previous_rows.filter(|_| !apply),
                planned,
                already_applied: p.as_ref().map_or(0, |p| p.already_applied),
                drifted: p.as_ref().map_or(0, |p| p.drifted),
                eta_seconds,
            }
        })
        .collect();
    // Tables are read one after the other: the time left is the sum of theirs, known only when
    // every table still to read has a previous run.
    // An apply's tables are applied one after the other too, each until it is done.
    let reading: Vec<&TableStatus> = tables
        .iter()
        .filter(|t| match apply {
            true => t.phase != Phase::Done,
            false => matches!(t.phase, Phase::Waiting | Phase::Reading),
        })
        .collect();
    // A run whose holder is gone ends no sooner for it: no ETA.
    let gone = held.iter().any(|h| h.stale.is_some());
    let eta_seconds = match reading.is_empty() || gone {
        true => None,
        false => reading.iter().map(|t| t.eta_seconds).sum::<Option<u64>>(),
    };
    let phase = match tables.iter().map(|t| t.phase).find(|p| *p != Phase::Done) {
        Some(phase) => phase.as_str().to_string(),
        None => "finishing".to_string(),
    };
    Process {
        shard: first.shard.as_ref().map(|(_, _, k)| k.clone()),
        host: first.host.clone(),
        pid: first.pid,
        started_at: time(first.started_at),
        expires_at: time(held.iter().map(|h| h.expires_at).max().unwrap_or(first.expires_at)),
        stale: held.iter().find_map(|h| h.stale.clone()),
        phase,
        read,
        written: tables.iter().map(|t| t.written).sum(),
        deleted: tables.iter().map(|t| t.deleted).sum(),
        rejected: tables.iter().map(|t| t.rejected).sum(),
        write_units: tables.iter().map(|t| t.write_units).sum(),
        as_of: as_of.map(time),
        // Known only when every table's plan is: each carries its own in its lease.
        planned: tables.iter().map(|t| t.planned).sum::<Option<u64>>().filter(|_| apply),
        done: apply.then(|| tables.iter().map(TableStatus::done).sum()),
        already_applied: tables.iter().map(|t| t.already_applied).sum(),
        drifted: tables.iter().map(|t| t.drifted).sum(),
        rows_per_second: rate.filter(|_| !apply).map(|r| (r * 10.0).round() / 10.0),
        changes_per_second: rate.filter(|_| apply).map(|r| (r * 10.0).round() / 10.0),
        eta_seconds,
        tables,
    }
}

impl Status {
    /// Whether a run still holds the lock: a live lease (a stale one is a run that is gone).
    pub fn running(&self) -> bool {
        self.active.iter().any(|r| r.processes.iter().any(|p| p.stale.is_none()))
    }
}

/// A duration as the ETA column shows it: `45s`, `3m 20s`, `2h 5m`.
pub fn duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m {}s", s / 60, s % 60),
        s => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

fn eta_text(eta: Option<u64>, phase: Phase) -> String {
    match (eta, phase) {
        (Some(s), _) => duration(s),
        (None, Phase::Waiting | Phase::Reading) => "unknown".into(),
        (None, _) => "-".into(),
    }
}

/// An apply's figures and tables: its plan's changes done, not rows read.
fn apply_progress(p: &Process) -> String {
    let as_of = p.as_of.as_deref().unwrap_or("no figures yet");
    let rate = p.changes_per_second.map_or("unknown".to_string(), |r| format!("{r:.1}"));
    let planned = p.planned.map_or("unknown".to_string(), |n| n.to_string());
    let eta = match (p.eta_seconds, p.tables.iter().all(|t| t.phase == Phase::Done)) {
        (Some(s), _) => duration(s),
        (None, false) if p.as_of.is_none() => "unknown (no figures yet)".into(),
        (None, false) if p.planned.is_none() => "unknown (the plan's size is not in its lease)".into(),
        (None, false) => "unknown (no change made yet)".into(),
        (None, true) => "every change made".into(),
    };
    let mut out = format!(
        "  as of {as_of}: {} of {planned} changes done ({rate} changes/s): {} written, {} deleted, {} already \
         applied, {} drift, {} write units; ETA {eta}\n",
        p.done.unwrap_or(0),
        p.written,
        p.deleted,
        p.already_applied,
        p.drifted,
        units(p.write_units)
    );
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header([
        "table",
        "phase",
        "done",
        "planned",
        "written",
        "deleted",
        "already applied",
        "drift",
        "units",
        "ETA",
    ]);
    for table in &p.tables {
        let right = |v: String| Cell::new(v).set_alignment(CellAlignment::Right);
        t.add_row(vec![
            Cell::new(&table.table),
            Cell::new(table.phase.as_str()),
            right(table.done().to_string()),
            right(table.planned.map_or("unknown".into(), |n| n.to_string())),
            right(table.written.to_string()),
            right(table.deleted.to_string()),
            right(table.already_applied.to_string()),
            right(table.drifted.to_string()),
            right(units(table.write_units)),
            right(match (table.eta_seconds, table.phase) {
                (Some(s), _) => duration(s),
                (None, Phase::Done) => "-".into(),
                (None, _) => "unknown".into(),
            }),
        ]);
    }
    out.push_str(&format!("{t}\n"));
    out
}

/// The text `status` prints.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    if !s.metadata_table_exists {
        // Not "nothing runs": a wrong prefix or region would look just like it.
        out.push_str(&format!(
            "{}: the metadata table {} does not exist in {}, so no run of this profile has ever taken a lock \
             there; if runs have, check table_prefix and table_suffix in the environment file and [target] region \
             (checked {})\n",
            s.environment, s.metadata_table, s.location, s.checked_at
        ));
        return out;
    }
    if s.active.is_empty() {
        out.push_str(&format!("{}: no run in progress (checked {})\n", s.environment, s.checked_at));
    }
    for run in &s.active {
        let sharded = run.shards.map_or(String::new(), |n| format!(" in {n} shards"));
        let other = match run.environment == s.environment {
            true => String::new(),
            false => format!(" of environment {}, on this environment's tables", run.environment),
        };
        out.push_str(&format!("{}: {} run {}{sharded}{other}\n", s.environment, run.command, run.run_id));
        for p in &run.processes {
            let shard = p.shard.as_ref().map_or(String::new(), |k| format!("shard {k}: "));
            out.push_str(&format!(
                "  {shard}{} (pid {}), took the lock at {}: {}\n",
                p.host, p.pid, p.started_at, p.phase
            ));
            if let Some(why) = &p.stale {
                // An expired lease's reason already says when it expired: said once.
                let expires = match p.expires_at.as_str() <= s.checked_at.as_str() {
                    true => String::new(),
                    false => format!("; its lease expires at {}", p.expires_at),
                };
                out.push_str(&format!("  STALE: {why}{expires}, and the next run takes it over\n"));
            }
            if p.done.is_some() {
                out.push_str(&apply_progress(p));
                continue;
            }
            let as_of = p.as_of.as_deref().unwrap_or("no figures yet");
            let rate = p.rows_per_second.map_or("unknown".to_string(), |r| format!("{r:.1}"));
            let to_read = p.tables.iter().any(|t| matches!(t.phase, Phase::Waiting | Phase::Reading));
            let eta = match (p.eta_seconds, to_read) {
                (Some(s), _) => duration(s),
                (None, true) => "unknown (no previous run of these tables, or no row read yet)".into(),
                (None, false) => "every row read".into(),
            };
            out.push_str(&format!(
                "  as of {as_of}: {} rows read ({rate} rows/s), {} written, {} deleted, {} rejected, {} write \
                 units; ETA {eta}\n",
                p.read,
                p.written,
                p.deleted,
                p.rejected,
                units(p.write_units)
            ));
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(["table", "phase", "read", "previous run", "written", "deleted", "rejected", "units", "ETA"]);
            for table in &p.tables {
                let right = |v: String| Cell::new(v).set_alignment(CellAlignment::Right);
                t.add_row(vec![
                    Cell::new(&table.table),
                    Cell::new(table.phase.as_str()),
                    right(table.read.to_string()),
                    right(table.previous_rows.map_or("unknown".into(), |r| r.to_string())),
                    right(table.written.to_string()),
                    right(table.deleted.to_string()),
                    right(table.rejected.to_string()),
                    right(units(table.write_units)),
                    right(eta_text(table.eta_seconds, table.phase)),
                ]);
            }
            out.push_str(&format!("{t}\n"));
        }
    }
    match &s.last_run {
        Some(last) => {
            let o = &last.outcome;
            let reason = o.reason.as_ref().map_or(String::new(), |r| format!(": {r}"));
            out.push_str(&format!(
                "last run: {}, started {}, finished {}: {} (exit {}){reason}; {} new, {} updated, {} unchanged, {} \
                 deleted, {} not written, {} write units\n",
                last.described_mode(),
                last.started_at,
                if last.finished_at.is_empty() { "-" } else { &last.finished_at },
                o.status,
                o.exit_code,
                last.total.created,
                last.total.updated,
                last.total.unchanged,
                last.total.deleted,
                last.total.not_written,
                units(last.total.write_units),
            ));
        }
        None => out.push_str("last run: none recorded\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::Item;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn progress(phase: Phase, read: u64, written: u64, secs: i64) -> TableProgress {
        TableProgress {
            phase,
            read,
            written,
            deleted: 0,
            rejected: 1,
            write_units: written as f64,
            planned: None,
            already_applied: 0,
            drifted: 0,
            at: at(secs),
        }
    }

    /// An apply's table: `planned` changes, of which `written` made, `same` already applied and
    /// `drift` skipped.
    fn applying(phase: Phase, planned: u64, (written, same, drift): (u64, u64, u64), secs: i64) -> TableProgress {
        TableProgress {
            read: 0,
            rejected: 0,
            planned: Some(planned),
            already_applied: same,
            drifted: drift,
            ..progress(phase, 0, written, secs)
        }
    }

    fn apply_lease(table: &str, progress: TableProgress) -> Held {
        Held { command: "apply".into(), ..held(table, "a1", Some(progress)) }
    }

    #[test]
    fn an_apply_is_its_plans_changes_done_at_its_rate_of_changes_and_not_a_syncs_rows() {
        // 12 written, 2 already applied, 1 drift: 15 of 155 done in 5 s (3 changes/s); b's 40
        // changes wait. A completed sync that read 2000 rows of a says nothing of the apply.
        let leases = vec![
            apply_lease("a", applying(Phase::Writing, 115, (12, 2, 1), 5)),
            apply_lease("b", applying(Phase::Waiting, 40, (0, 0, 0), 5)),
        ];
        let s = build("prod", at(6), leases, &[record(&[("a", 2000)])]);
        let p = &s.active[0].processes[0];
        assert_eq!((p.done, p.planned), (Some(15), Some(155)));
        assert_eq!((p.already_applied, p.drifted), (2, 1));
        assert_eq!((p.changes_per_second, p.rows_per_second), (Some(3.0), None));
        assert_eq!(p.tables[0].eta_seconds, Some(34), "100 changes left of a at 3/s");
        assert_eq!(p.tables[1].eta_seconds, Some(14), "40 of b");
        assert_eq!(p.eta_seconds, Some(48));
        assert_eq!(p.tables[0].previous_rows, None);
        let text = render(&s);
        assert!(text.contains("15 of 155 changes done (3.0 changes/s)"), "{text}");
        assert!(!text.contains("rows read"), "{text}");
        // Every table done: nothing left, however the apply began.
        let leases = vec![apply_lease("a", applying(Phase::Done, 3, (1, 1, 1), 5))];
        let s = build("prod", at(6), leases, &[]);
        assert_eq!(s.active[0].processes[0].eta_seconds, None);
        assert!(render(&s).contains("3 of 3 changes done (0.6 changes/s)"), "{}", render(&s));
        assert!(render(&s).contains("ETA every change made"), "{}", render(&s));
    }

    #[test]
    fn an_applys_lease_carries_its_plan_and_a_syncs_no_more_than_before() {
        let apply = applying(Phase::Writing, 155, (12, 2, 1), 5);
        assert_eq!(TableProgress::from_attribute(&apply.attribute()), Some(apply.clone()));
        let sync = progress(Phase::Reading, 10, 5, 5);
        let AttributeValue::M(map) = sync.attribute() else { panic!("not a map") };
        assert!(!map.contains_key("planned") && !map.contains_key("drifted"), "{map:?}");
        let AttributeValue::M(map) = apply.attribute() else { panic!("not a map") };
        assert_eq!(map.get("planned"), Some(&AttributeValue::N("155".into())));
    }

    #[test]
    fn a_stale_lease_says_when_it_expires_once() {
        let mut h = held("a", "r1", Some(progress(Phase::Reading, 10, 10, 5)));
        h.stale = Some("the lease expired at 2027-01-15T08:02:00Z".into());
        let text = render(&build("prod", at(200), vec![h.clone()], &[]));
        assert_eq!(text.matches("expire").count(), 1, "{text}");
        // A holder gone before its lease ran out: when it does is news.
        h.stale = Some("process 4242 on this host has ended".into());
        let text = render(&build("prod", at(60), vec![h], &[]));
        assert!(text.contains("its lease expires at 2027-01-15T08:02:00Z"), "{text}");
    }

    fn held(table: &str, run: &str, progress: Option<TableProgress>) -> Held {
        Held {
            table: table.into(),
            run_id: run.into(),
            command: "sync".into(),
            environment: "prod".into(),
            host: "web-1".into(),
            pid: 4242,
            started_at: at(0),
            expires_at: at(120),
            shard: None,
            stale: None,
            progress,
        }
    }

    /// A completed sync that read `rows` of each table.
    fn record(tables: &[(&str, u64)]) -> RunRecord {
        let mut item: Item = [
            ("started_at".to_string(), AttributeValue::S("2026-11-27T02:00:00.000Z".into())),
            ("finished_at".to_string(), AttributeValue::S("2026-11-27T02:10:00.000Z".into())),
            ("mode".to_string(), AttributeValue::S("incremental".into())),
            ("created".to_string(), AttributeValue::N("3".into())),
            ("unchanged".to_string(), AttributeValue::N("1997".into())),
            ("write_units".to_string(), AttributeValue::N("3".into())),
        ]
        .into();
        let map = tables
            .iter()
            .map(|(t, rows)| {
                let figures: Item = [
                    ("created".to_string(), AttributeValue::N("1".into())),
                    ("unchanged".to_string(), AttributeValue::N((rows - 1).to_string())),
                ]
                .into();
                (t.to_string(), AttributeValue::M(figures))
            })
            .collect();
        item.insert("tables".into(), AttributeValue::M(map));
        RunRecord::from_item(&item).unwrap()
    }

    #[test]
    fn progress_round_trips_through_its_attribute() {
        let p = TableProgress { write_units: 12.5, deleted: 3, ..progress(Phase::Deleting, 1000, 40, 30) };
        assert_eq!(TableProgress::from_attribute(&p.attribute()), Some(p));
        assert_eq!(TableProgress::from_attribute(&AttributeValue::S("x".into())), None, "not a map");
    }

    #[test]
    fn the_eta_divides_the_rows_left_by_the_rate_and_is_unknown_without_a_rate() {
        assert_eq!(eta(1000, Some(100.0)), Some(10));
        assert_eq!(eta(1001, Some(100.0)), Some(11), "rounded up");
        assert_eq!(eta(1000, None), None);
        assert_eq!(eta(1000, Some(0.0)), None);
        assert_eq!(eta(0, None), Some(0), "nothing left");
    }

    #[test]
    fn a_reading_process_gets_its_eta_from_the_previous_runs_rows_for_its_tables() {
        // 600 rows in 30 s: 20 rows/s; the previous run read 1000 and 500 rows.
        let leases = vec![held("a", "r1", Some(progress(Phase::Reading, 600, 100, 30))), held("b", "r1", None)];
        let s = build("prod", at(31), leases, &[record(&[("a", 1000), ("b", 500)])]);
        let p = &s.active[0].processes[0];
        assert_eq!(p.rows_per_second, Some(20.0));
        assert_eq!(p.tables[0].eta_seconds, Some(20), "400 rows left of a");
        assert_eq!(p.tables[1].eta_seconds, Some(25), "b not started: 500 rows");
        assert_eq!(p.eta_seconds, Some(45), "read one after the other");
        assert_eq!(p.phase, "reading");
        // No previous run of b: the whole is unknown.
        let leases = vec![held("a", "r1", Some(progress(Phase::Reading, 600, 100, 30))), held("b", "r1", None)];
        let s = build("prod", at(31), leases, &[record(&[("a", 1000)])]);
        assert_eq!(s.active[0].processes[0].eta_seconds, None);
        assert_eq!(s.active[0].processes[0].tables[0].eta_seconds, Some(20));
    }

    #[test]
    fn only_a_completed_run_of_the_same_command_gives_the_previous_rows() {
        let mut repair = record(&[("a", 10)]);
        repair.mode = "repair".into();
        let mut failed = record(&[("a", 20)]);
        failed.outcome.status = "failed".into();
        let mut apply = record(&[("a", 15)]);
        apply.mode = "apply".into();
        let runs = [record(&[("a", 1000)]), repair, failed, apply];
        assert_eq!(previous_rows("sync", &runs).get("a"), Some(&1000), "an apply's record is not a sync's");
        assert_eq!(previous_rows("apply", &runs[..3]).get("a"), None, "a sync's record is not an apply's");
        assert_eq!(previous_rows("verify --repair", &runs).get("a"), Some(&10));
        assert_eq!(previous_rows("restore", &runs).get("a"), None);
    }

    #[test]
    fn shards_are_one_run_and_each_process_is_judged_apart() {
        let mut leases = Vec::new();
        for (k, own) in [(0, "p0"), (1, "p1")] {
            let mut h = held("a", own, Some(progress(Phase::Writing, 2000, 10 * (k + 1), 10)));
            h.shard = Some(("nightly".into(), 2, format!("{k}/2")));
            leases.push(h);
        }
        leases[1].stale = Some("process 4242 on this host has ended".into());
        let s = build("prod", at(11), leases, &[]);
        assert_eq!(s.active.len(), 1);
        let run = &s.active[0];
        assert_eq!((run.run_id.as_str(), run.shards), ("nightly", Some(2)));
        let shards: Vec<_> = run.processes.iter().map(|p| (p.shard.clone().unwrap(), p.written)).collect();
        assert_eq!(shards, [("0/2".to_string(), 10), ("1/2".to_string(), 20)]);
        assert!(s.running(), "shard 0 is live");
        assert_eq!(run.processes[0].eta_seconds, None, "reading is over");
    }

    #[test]
    fn a_process_whose_tables_are_done_is_finishing_and_stale_leases_are_not_running() {
        let mut h = held("a", "r1", Some(progress(Phase::Done, 10, 10, 5)));
        h.stale = Some("the lease expired at 2027-01-15T08:02:00Z".into());
        let s = build("prod", at(200), vec![h], &[]);
        assert_eq!(s.active[0].processes[0].phase, "finishing");
        assert!(!s.running());
    }

    #[test]
    fn a_process_that_is_gone_has_no_eta() {
        let live = held("a", "r1", Some(progress(Phase::Reading, 10, 0, 5)));
        let previous = BTreeMap::from([("a".to_string(), 100)]);
        assert!(process(vec![live.clone()], &previous).eta_seconds.is_some(), "a live run has one");
        let mut gone = live;
        gone.stale = Some("process 4242 on this host has ended".into());
        assert_eq!(process(vec![gone], &previous).eta_seconds, None);
    }

    #[test]
    fn a_missing_metadata_table_is_said_and_not_taken_for_an_idle_one() {
        let mut s = build("prod", at(32), vec![], &[]);
        (s.metadata_table, s.location) = ("prd-ddbsync".into(), "eu-west-1".into());
        let idle = render(&s);
        assert!(idle.contains("no run in progress") && idle.contains("last run: none recorded"), "{idle}");
        s.metadata_table_exists = false;
        let text = render(&s);
        assert!(text.contains("the metadata table prd-ddbsync does not exist in eu-west-1"), "{text}");
        assert!(text.contains("table_prefix") && !text.contains("no run in progress"), "{text}");
    }

    #[test]
    fn status_text() {
        let mut b = held("prod-users", "r-7", None);
        b.expires_at = at(125);
        let leases = vec![held("prod-lessons", "r-7", Some(progress(Phase::Reading, 1500, 250, 30))), b];
        let mut stale = held("prod-lessons", "r-6", Some(progress(Phase::Writing, 10, 5, 2)));
        stale.command = "verify --repair".into();
        stale.environment = "prod-eu".into();
        stale.stale = Some("process 77 on this host has ended".into());
        stale.pid = 77;
        let mut s = build("prod", at(32), leases, &[record(&[("prod-lessons", 2000), ("prod-users", 300)])]);
        s.active.extend(build("prod", at(32), vec![stale], &[]).active);
        let idle = build("prod", at(32), vec![], &[record(&[("prod-lessons", 2000)])]);
        let never = build("prod", at(32), vec![], &[]);
        insta::assert_snapshot!(format!("{}\n{}\n{}", render(&s), render(&idle), render(&never)));
    }
}
