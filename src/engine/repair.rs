//! `verify --repair`: writes the items a verify found missing or differing, and deletes the extra
//! ones of mappings with `delete_missing`, instead of recreating the whole table (`sync --clean`).
//!
//! It works as a sync does: under the run lock (taken only for the tables with something to
//! repair), through the sync's writer (batches, pace, `max_write_units_per_second`, retries, the
//! fence), stopping on SIGTERM or SIGINT (no more rows, no new batch, no delete), and its report
//! gives DynamoDB's write units and the cost. The source is read again under the lock, so an item
//! is written as the source gives it now, and an extra is deleted only if no source row gives its
//! key now; a rejected row's stored item is kept (stale), as a sync keeps it, and deletes pass the
//! sync's guards (rows without a key, `max_delete_fraction` unless `--allow-mass-delete`). An item
//! edited in DynamoDB whose stored hash still matches is rewritten whole, content and hash. A dry
//! run writes nothing, takes no lock and records nothing; it prices its writes and deletes as
//! DynamoDB bills them, from the stored items the verify read.
//!
//! Its record is a sync's ([`crate::pure::report::RunReport::record`], mode `repair`), with the exit code
//! the process exits with ([`RepairReport::settle_exit`]); its full rewrite is what `sync --clean`,
//! the alternative it replaces, would write. Deletes count as refused only when a guard refused
//! them on a mapping that deletes; deletes DynamoDB did not carry out are items not written; a
//! repair stopped before it read the whole source did not look for extras.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use chrono::{SecondsFormat, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use futures::StreamExt;
use serde::Serialize;

use crate::engine::guard;
use crate::engine::lock::{self, Fence};
use crate::engine::pace::Cap;
use crate::engine::preflight;
use crate::engine::stop::{Interrupted, Stop, DRAIN};
use crate::engine::verify::{Fixes, TableVerify, Verified};
use crate::engine::writer::{Pending, Queue, WriteOutcome};
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::pure::cost::{self, Footprint, Savings};
use crate::pure::diff::{self, LeaveOut};
use crate::pure::hash::Digest;
use crate::pure::item::{self, AttributeValue, Item};
use crate::pure::params::Params;
use crate::pure::plan::{Reject, Rejected, TablePlan};
use crate::pure::report::{usd, Outcome};
use crate::source::Source;
use crate::target::dryrun::Mode;
use crate::target::Request;
use crate::target::Target;

/// How a repair runs.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// A real repair, or a rehearsal (`--dry-run`) that says what would be written and deleted
    /// and writes nothing.
    pub mode: Mode,
    /// Let deletes remove more than `sync.max_delete_fraction` of a table.
    pub allow_mass_delete: bool,
    /// Take the run lock even from a live lease.
    pub force_unlock: bool,
    /// `--lock-timeout`: wait up to this long for a lock another run holds.
    pub lock_timeout: Option<Duration>,
}

/// What the repair did to one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableRepair {
    pub table: String,
    /// What the verify found.
    pub missing: u64,
    pub differing: u64,
    pub extra: u64,
    /// Missing items written from the source (in a dry run, to be written).
    pub created: u64,
    /// Differing items written again from the source (in a dry run, to be written).
    pub updated: u64,
    /// Extra items deleted (in a dry run, to be deleted), and their keys.
    pub deleted: u64,
    pub deleted_keys: Vec<String>,
    /// Extra items left in place, and why (`delete_missing` is off, a guard, a stop). Deletes
    /// DynamoDB did not carry out are not among them: they are in `failed`.
    pub kept: u64,
    pub kept_reason: Option<String>,
    /// A guard (`max_delete_fraction`, rows without a key) refused the deletes of a mapping that
    /// deletes extras: the run record's refused deletes.
    #[serde(skip)]
    pub refused: bool,
    /// The repair stopped before it had read the whole source: the extras were not looked for.
    #[serde(skip)]
    pub stopped: bool,
    /// The mapping deletes extras (`delete_missing = true`): the run record's orphan hint.
    #[serde(skip)]
    pub delete_missing: bool,
    /// Differences the source settled since the verify read it: keys found missing or differing
    /// that no source row gives now, and extras a source row gives now. Nothing was done to them.
    pub settled: u64,
    /// Items DynamoDB did not confirm it wrote (or that were not sent after a stop), with the reason.
    pub failed: Vec<Reject>,
    /// Of those, items that may or may not have been written (see the sync's `unknown`).
    pub unknown: u64,
    /// Write units DynamoDB reported (in a dry run, what DynamoDB will bill by its rules, from the
    /// items to write and the stored items they replace or delete, index entries included).
    pub write_units: f64,
    /// Read units of the verify that found the differences.
    pub read_units: f64,
    /// What rewriting every source item (`sync --clean`) would write, estimated from item sizes
    /// (a sync's `potential_write_units`).
    #[serde(rename = "potential_write_units")]
    pub full_rewrite_units: f64,
    pub retries: u64,
    pub throttled: u64,
    /// In USD: `cost_usd`, `potential_usd`, `saved_usd` and `saved_percent`, as `history` and `report`
    /// name them.
    #[serde(flatten)]
    pub cost: Savings,
    /// In a dry run, items priced from their size alone (the verify did not keep their stored
    /// form): the write units are an estimate for those.
    #[serde(skip_serializing_if = "is_zero")]
    pub unpriced: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a repair did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub environment: String,
    pub region: String,
    pub started_at: String,
    pub finished_at: String,
    pub dry_run: bool,
    /// `measured` (DynamoDB's figures) or, in a dry run, `estimated from item sizes`: as a sync's
    /// dry run, priced as DynamoDB bills, from the sizes and index entries of the items to write and
    /// of the stored items the verify read (an item it did not keep is priced from its own size
    /// alone, and a note says so).
    pub units: &'static str,
    /// Tables the verify read by sample: only the differences the sample found were repaired.
    pub sampled: Vec<String>,
    pub tables: Vec<TableRepair>,
    pub write_units: f64,
    pub read_units: f64,
    /// In USD: `cost_usd`, `potential_usd`, `saved_usd` and `saved_percent`, as `history` and `report`
    /// name them.
    #[serde(flatten)]
    pub cost: Savings,
    /// How the repair ended: completed, interrupted or failed, with its exit code.
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RepairReport {
    /// Whether something is left that a person must look at: items not written, extras kept.
    pub fn has_losses(&self) -> bool {
        self.tables.iter().any(|t| !t.failed.is_empty() || t.kept > 0)
    }

    /// Sets the exit code of a repair that completed but left something to look at (3): a dry
    /// run, items not written, extras kept, or rows the source rejects (`rejected`), so that the
    /// report and the run record carry the code the process exits with.
    pub fn settle_exit(&mut self, rejected: bool) {
        if self.outcome.status == "completed" && (self.dry_run || rejected || self.has_losses()) {
            self.outcome.exit_code = crate::exit::Exit::Differences as u8;
        }
    }
}

/// A verify's report and, with `--repair`, what the repair did (`--json` prints the two as one).
#[derive(Debug, Serialize)]
pub struct Repaired<'a> {
    #[serde(flatten)]
    pub verify: &'a crate::engine::verify::VerifyReport,
    pub repair: &'a RepairReport,
}

/// `--repair` that did not run: the verify found nothing a repair can do. `--json` prints it as
/// the document's `repair`, in place of a repair's report, so that a reader never takes a verify
/// report without `repair` for a repair that wrote nothing.
#[derive(Debug, Serialize)]
pub struct NotRun {
    /// Always `false`.
    pub ran: bool,
    /// Why: no differences, or the differences no repair can fix (each named, with its fix).
    pub reason: String,
}

/// A verify's report with `--repair` that did not run.
#[derive(Debug, Serialize)]
pub struct NotRepaired<'a> {
    #[serde(flatten)]
    pub verify: &'a crate::engine::verify::VerifyReport,
    pub repair: NotRun,
}

/// Per table with something a repair can do: items to write, and extras the mapping lets it
/// delete. `(position, table, write, delete)`; extras alone, in a table without `delete_missing`,
/// are nothing to do.
fn planned(verified: &Verified<'_>) -> Vec<(usize, String, usize, usize)> {
    let tables = verified.tables.iter().enumerate().filter(|(at, _)| verified.report.tables[*at].exists);
    let plan = tables.map(|(at, (m, _, f, _))| {
        (at, m.table_name.clone(), f.write.len(), if m.delete_missing { f.delete.len() } else { 0 })
    });
    plan.filter(|(_, _, write, delete)| write + delete > 0).collect()
}

/// Why a repair of `verified` has nothing to do although the verify found differences.
pub fn nothing_to_do(verified: &Verified<'_>) -> String {
    let mut why = Vec::new();
    let env = &verified.report.environment;
    for (t, (mapping, ..)) in verified.report.tables.iter().zip(&verified.tables) {
        if !t.exists {
            why.push(format!(
                "{} does not exist (`ddbsync sync {env} --table {}` creates and fills it)",
                t.table, t.name
            ));
        } else if t.extra.count > 0 && !mapping.delete_missing {
            why.push(format!(
                "the extra items of {} stay: its mapping does not set delete_missing (delete_missing = true lets a \
                 repair delete them)",
                t.table
            ));
        }
        if t.rejected > 0 {
            why.push(format!(
                "the {} rejected rows of {} are fixed in the source (see sync's report)",
                t.rejected, t.table
            ));
        }
    }
    if why.is_empty() {
        why.push("the counts differ, but no item was found missing, extra or differing".to_string());
    }
    format!("verify --repair: nothing a repair can do: {}", why.join("; "))
}

/// What a repair of `verified` would do, for the question asked before it (`writes 3 items to
/// pni-lessons and deletes 1 from it`); `None` when there is nothing it can do.
pub fn planned_action(verified: &Verified<'_>) -> Option<String> {
    let parts: Vec<String> = planned(verified)
        .into_iter()
        .map(|(_, table, write, delete)| match (write, delete) {
            (_, 0) => format!("writes {write} items to {table}"),
            (0, _) => format!("deletes {delete} items from {table}"),
            _ => format!("writes {write} items to {table} and deletes {delete} from it"),
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// What every table of a repair shares.
struct Run<'a> {
    profile: &'a Profile,
    options: &'a Options,
    printer: &'a Printer,
    source: &'a dyn Source,
    params: &'a Params,
    dynamo: Arc<dyn Target>,
    cap: Option<Arc<Cap>>,
    stop: Stop,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Repairs what `verified` found. An `Err` means nothing was written (the lock is held by another
/// run); anything later comes back beside the report of what was done.
pub async fn run(
    profile: &Profile,
    verified: &Verified<'_>,
    options: &Options,
    printer: &Printer,
    stop: &Stop,
) -> Result<(RepairReport, Option<anyhow::Error>)> {
    let started_at = now();
    let dynamo = options.mode.target(verified.dynamo.clone());
    let run = Run {
        profile,
        options,
        printer,
        source: verified.source.as_ref(),
        params: &verified.params,
        dynamo: dynamo.clone(),
        // A rehearsal sends nothing: nothing to pace.
        cap: profile
            .sync
            .max_write_units_per_second
            .filter(|_| !options.mode.is_rehearsal())
            .map(|n| Arc::new(Cap::new(n))),
        stop: stop.clone(),
    };
    let todo: Vec<usize> = planned(verified).into_iter().map(|(at, ..)| at).collect();
    let names: Vec<String> = todo.iter().map(|&i| verified.tables[i].0.table_name.clone()).collect();
    let mut done: Vec<TableRepair> = Vec::new();
    let (run, done_so_far, todo_ref) = (&run, &mut done, &todo);
    let work = move |fence: Fence| {
        let (done, todo) = (done_so_far, todo_ref);
        async move {
            let tables = async {
                for &i in todo {
                    if let Some(signal) = run.stop.requested() {
                        return Err(Interrupted(signal).into());
                    }
                    let (mapping, plan, fixes, full_units) = &verified.tables[i];
                    let found = &verified.report.tables[i];
                    // Items written without their bucket: the hash index no longer holds every one.
                    if mapping.diff == crate::profile::DiffMode::Scan && !options.mode.is_rehearsal() {
                        crate::engine::diff_index::forget(&*run.dynamo, profile, &mapping.table_name).await?;
                    }
                    let context = || format!("repairing table {}", mapping.table_name);
                    let (report, failure) =
                        repair_table(run, (mapping, plan), fixes, (found, *full_units), &fence).await;
                    done.push(report);
                    if let Some(e) = failure {
                        return Err(e.context(context()));
                    }
                }
                Ok(())
            };
            // The graceful stop inside has its bound; this one ends whatever still runs.
            tokio::select! {
                outcome = tables => outcome,
                signal = run.stop.expired(DRAIN + Duration::from_secs(5)) => Err(Interrupted(signal).into()),
            }
        }
    };
    // A rehearsal takes no lock: it writes nothing, so it must neither wait for a real run nor
    // hold one up.
    let outcome = match options.mode {
        Mode::Rehearsal => work(Fence::open()).await,
        Mode::Real => {
            let on_wait = |e: &anyhow::Error| printer.waiting_for_lock(options.lock_timeout, e);
            let wait = (options.force_unlock, options.lock_timeout);
            lock::with_lock(&dynamo, profile, &names, wait, on_wait, stop, work).await
        }
    };
    let mut error = match outcome {
        // Stopped while waiting for the lock: nothing done, nothing to record.
        Err(e) if done.is_empty() && e.downcast_ref::<lock::StoppedWaiting>().is_some() => return Err(e),
        Err(e) if done.is_empty() && e.chain().any(|c| c.is::<lock::Locked>()) => {
            return Err(e.context(format!(
                "not repairing {} while another run writes to it; nothing \
                 was written",
                profile.env
            )));
        }
        Err(e) => Some(e),
        Ok(()) => stop.requested().map(|signal| Interrupted(signal).into()),
    };
    let mut notes = Vec::new();
    for &i in &todo {
        let table = &verified.tables[i].0.table_name;
        if !done.iter().any(|t| &t.table == table) {
            notes.push(format!("{table}: not repaired; run the repair again"));
        }
    }
    let sum = |f: fn(&TableRepair) -> f64| done.iter().map(f).sum::<f64>();
    let (write_units, read_units) = (sum(|t| t.write_units), verified.report.read_units);
    let mut report = RepairReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        started_at,
        finished_at: now(),
        dry_run: options.mode.is_rehearsal(),
        units: options.mode.units(),
        sampled: verified.report.tables.iter().filter(|t| !t.read_whole).map(|t| t.table.clone()).collect(),
        cost: Savings::new(&profile.prices, write_units, read_units, sum(|t| t.full_rewrite_units)),
        write_units,
        read_units,
        tables: done,
        outcome: Outcome::of(error.as_ref(), crate::exit_for),
        notes,
    };
    report.settle_exit(verified.report.tables.iter().any(|t| t.rejected > 0));
    // A rehearsal's target keeps the record to itself.
    let params = verified.params.used_by(&verified.tables.iter().map(|t| t.0).collect::<Vec<_>>());
    if let Some(failed) = record(&*dynamo, profile, &report, params).await {
        report.notes.push(failed.clone());
        error.get_or_insert_with(|| anyhow::anyhow!("{failed}; the repair itself finished (report above)"));
    }
    Ok((report, error))
}

/// Records the repair in the metadata table as the sync records a run (its run record, with mode
/// `repair`); the one place a repair touches the run records. `Some(why)` when it could not.
async fn record(
    dynamo: &dyn Target,
    profile: &Profile,
    repair: &RepairReport,
    params: std::collections::BTreeMap<String, String>,
) -> Option<String> {
    use crate::pure::report::{RunReport, TableReport, Totals};
    let tables: Vec<TableReport> = repair
        .tables
        .iter()
        .map(|t| TableReport {
            table: t.table.clone(),
            table_created: false,
            created: t.created,
            updated: t.updated,
            unchanged: 0,
            stale: 0,
            // A stopped repair did not look for extras; only a guard's refusal is a refused delete.
            orphans: if t.stopped { 0 } else { t.extra },
            orphans_counted: !t.stopped,
            delete_missing: t.delete_missing,
            deleted: t.deleted,
            deleted_keys: t.deleted_keys.clone(),
            deletes_refused: t.kept_reason.clone().filter(|_| t.refused),
            write_units: t.write_units,
            read_units: t.read_units,
            potential_write_units: t.full_rewrite_units,
            retries: t.retries,
            throttled: t.throttled,
            cost: t.cost,
            rejected: Vec::new(),
            failed: t.failed.clone(),
            unknown: t.unknown,
            diff: Default::default(),
            entities: Vec::new(),
        })
        .collect();
    let run = RunReport {
        environment: repair.environment.clone(),
        region: repair.region.clone(),
        started_at: repair.started_at.clone(),
        finished_at: repair.finished_at.clone(),
        dry_run: false,
        clean: false,
        units: repair.units,
        prices: profile.prices.clone(),
        total: Totals::of(&tables, &profile.prices),
        tables,
        params,
        rejects_file: None,
        backup: None,
        outcome: repair.outcome.clone(),
        notes: Vec::new(),
        run_id: crate::engine::run_id::current(),
        shard: None,
        promotion: None,
    };
    let mut item = run.record();
    item.insert("mode".into(), AttributeValue::S("repair".into()));
    crate::engine::sync::record_run(dynamo, profile, item).await.err()
}

/// A writer task for one table, with the sync's settings and the run's shared units cap.
fn start_writer(
    run: &Run<'_>,
    (table, key_names): (&str, &[&str]),
    fence: &Fence,
    on_written: impl Fn(u64, f64) + Send + 'static,
) -> (Queue, tokio::task::JoinHandle<WriteOutcome>) {
    let key_names = key_names.iter().map(|k| k.to_string()).collect();
    guard::spawn_writer(
        run.dynamo.clone(),
        (fence, &run.stop),
        (&run.profile.sync, run.cap.clone()),
        (table, key_names),
        on_written,
    )
}

/// What ended the read of the source early.
enum Halt {
    Stopped(&'static str),
    Failed(anyhow::Error),
}

/// Repairs one table: reads its source again, writes the items to write, then deletes the extras
/// the mapping and the guards allow. A failure part-way comes back beside the report of what was
/// done before it.
async fn repair_table(
    run: &Run<'_>,
    (mapping, plan): (&TableMapping, &TablePlan),
    fixes: &Fixes,
    (found, full_units): (&TableVerify, u64),
    fence: &Fence,
) -> (TableRepair, Option<anyhow::Error>) {
    let table = &mapping.table_name;
    let key_names = plan.key_names();
    let mut write = fixes.write.clone();
    let mut delete = fixes.delete.clone();
    let mut r = TableRepair {
        table: table.clone(),
        missing: write.values().filter(|&&missing| missing).count() as u64,
        differing: write.values().filter(|&&missing| !missing).count() as u64,
        extra: delete.len() as u64,
        created: 0,
        updated: 0,
        deleted: 0,
        deleted_keys: Vec::new(),
        kept: 0,
        kept_reason: None,
        refused: false,
        stopped: false,
        delete_missing: mapping.delete_missing,
        settled: 0,
        failed: Vec::new(),
        unknown: 0,
        write_units: 0.0,
        read_units: found.read_units,
        full_rewrite_units: full_units as f64,
        retries: 0,
        throttled: 0,
        cost: Savings::new(&run.profile.prices, 0.0, 0.0, 0.0),
        unpriced: 0,
    };
    let bar = run.printer.writes(format!("{table}: repairing"));
    // `ddbsync status` reads these from the lease's renewals.
    let (counters, on_written) = crate::engine::progress::counting(table, bar.clone());
    let (tx, task) = start_writer(run, (table, &key_names), fence, on_written);
    // The keys of the missing items sent, to tell created from updated when some fail.
    let mut created_keys = HashSet::new();
    let mut estimated = 0u64;
    // Items whose stored form the verify did not keep: priced from their size alone.
    let mut unpriced = 0u64;
    let (mut keyless, mut first_keyless, mut leave_out) = (0usize, String::new(), LeaveOut::default());
    let mut halt = None;
    'read: for (entity, entity_plan) in mapping.entities.iter().zip(&plan.entities) {
        let opened = tokio::select! {
            rows = preflight::open_rows(run.source, run.params, entity) => rows,
            signal = run.stop.wait() => Err(anyhow::Error::new(Interrupted(signal))),
            reason = fence.lost() => Err(lock::LeaseLost(reason).into()),
        };
        let mut rows = match opened {
            Ok(rows) => rows,
            Err(e) => {
                halt = Some(match run.stop.requested() {
                    Some(signal) => Halt::Stopped(signal),
                    None => Halt::Failed(e),
                });
                break;
            }
        };
        loop {
            let row = tokio::select! {
                row = rows.next() => row,
                signal = run.stop.wait() => {
                    halt = Some(Halt::Stopped(signal));
                    break 'read;
                }
                reason = fence.lost() => {
                    halt = Some(Halt::Failed(lock::LeaseLost(reason).into()));
                    break 'read;
                }
            };
            let row = match row {
                None => break,
                Some(Ok(row)) => row,
                Some(Err(e)) => {
                    halt = Some(Halt::Failed(e.into()));
                    break 'read;
                }
            };
            lock::beat();
            counters.read(1);
            match entity_plan.build(row) {
                Ok(built) => {
                    // A source row gives this key now: it is not an extra.
                    r.settled += u64::from(delete.remove(&built.key).is_some());
                    // The first row of a key is the one a sync keeps.
                    let Some(missing) = write.remove(&built.key) else { continue };
                    if missing {
                        r.created += 1;
                        created_keys.insert(item::describe_key(&built.item, &key_names));
                    } else {
                        r.updated += 1;
                    }
                    // A rehearsal prices it as DynamoDB bills it: against the stored item the
                    // verify read (a missing item replaces nothing); a real run is measured.
                    if run.options.mode.is_rehearsal() {
                        let new = Footprint::of(&built.item, &key_names, &fixes.indexes);
                        estimated += match fixes.stored.get(&built.key) {
                            Some(old) => cost::put_units(Some(old), &new),
                            None if missing => cost::put_units(None, &new),
                            None => {
                                unpriced += 1;
                                built.units
                            }
                        };
                    }
                    bar.inc_length(1);
                    let pending = Pending { key: built.key, request: Request::Put(built.item), units: built.units };
                    if tx.send(pending).await.is_err() {
                        break 'read; // the writer ended early; its outcome says why
                    }
                }
                Err(Rejected { reject, key }) => {
                    run.source.rejected_last(&entity.query);
                    match key {
                        // A rejected row's item is kept, stale, as a sync keeps it.
                        Ok(key) => r.settled += u64::from(delete.remove(&key).is_some()),
                        Err(flaw) => {
                            keyless += 1;
                            leave_out.add(&flaw, &reject.key);
                            if first_keyless.is_empty() {
                                first_keyless = reject.key;
                            }
                        }
                    }
                }
            }
        }
    }
    counters.phase(crate::pure::status::Phase::Writing);
    drop(tx);
    if let Some(Halt::Stopped(signal)) = &halt {
        run.printer.note(format!(
            "{signal}: stopping the repair of {table}: no more rows are read; the batches already sent get {} s to \
             finish (a second signal exits at once)",
            DRAIN.as_secs()
        ));
    }
    let mut outcome = task.await.unwrap_or_else(panicked);
    bar.finish_and_clear();
    // A DynamoDB that stopped answering the writes ends the repair (no deletes, exit 1), as a sync.
    let mut halt = halt;
    if let Some(silence) = outcome.silent.take() {
        halt.get_or_insert(Halt::Failed(crate::target::TargetError::Transient(silence).into()));
    }
    // The missing and differing items whose source row is gone.
    if halt.is_none() {
        r.settled += write.len() as u64;
    }
    // Every put not written is in `failed`, by key: what was written is what was sent, less those.
    let failed_created = outcome.failed.iter().filter(|f| created_keys.contains(&f.key)).count() as u64;
    r.created = r.created.saturating_sub(failed_created);
    r.updated = r.updated.saturating_sub(outcome.failed.len() as u64 - failed_created);
    r.write_units = match run.options.mode {
        Mode::Real => outcome.consumed_units,
        Mode::Rehearsal => estimated as f64,
    };
    (r.retries, r.throttled, r.failed, r.unknown) =
        (outcome.retries, outcome.throttled, outcome.failed, outcome.unknown);

    // Deletes: only after the whole source was read, as in a sync.
    let stopped = halt.is_some() || run.stop.requested().is_some();
    r.stopped = stopped;
    if !delete.is_empty() {
        let orphans = delete.len() as u64;
        let guard = if stopped {
            Err("not deleted: the repair stopped before it had read the whole source; run it again".to_string())
        } else if !mapping.delete_missing {
            Err(format!(
                "left in place: the mapping {} does not set delete_missing (delete_missing = true lets a sync or a \
                 repair delete them)",
                mapping.name
            ))
        } else {
            diff::keyless_guard(orphans, keyless, &first_keyless, &leave_out).and_then(|()| {
                let fraction = run.profile.sync.max_delete_fraction;
                diff::delete_guard(orphans, found.target_items, fraction, run.options.allow_mass_delete)
            })
        };
        match guard {
            Err(reason) => {
                r.refused = !stopped && mapping.delete_missing;
                (r.kept, r.kept_reason) = (orphans, Some(reason));
            }
            Ok(()) => {
                let doomed: Vec<(Digest, Item)> = delete.into_iter().collect();
                r.deleted_keys = doomed.iter().map(|(_, k)| item::describe_key(k, &key_names)).collect();
                if run.options.mode.is_rehearsal() {
                    // A delete is billed on the item removed and its index entries.
                    let units: u64 = doomed
                        .iter()
                        .map(|(d, _)| {
                            fixes.stored.get(d).map_or_else(
                                || {
                                    unpriced += 1;
                                    1
                                },
                                Footprint::delete_units,
                            )
                        })
                        .sum();
                    r.write_units += units as f64;
                }
                counters.phase(crate::pure::status::Phase::Deleting);
                let done = delete_items(run, (table, &key_names), fence, doomed).await;
                r.deleted = done.written;
                let missed: HashSet<&str> = done.failed.iter().map(|f| f.key.as_str()).collect();
                r.deleted_keys.retain(|k| !missed.contains(k.as_str()));
                if !run.options.mode.is_rehearsal() {
                    r.write_units += done.consumed_units;
                }
                r.retries += done.retries;
                r.throttled += done.throttled;
                // Deletes DynamoDB did not carry out are items not written, not refused ones.
                r.failed.extend(done.failed);
                r.unknown += done.unknown;
            }
        }
    }
    r.unpriced = unpriced;
    r.cost = Savings::new(&run.profile.prices, r.write_units, r.read_units, r.full_rewrite_units);
    counters.phase(crate::pure::status::Phase::Done);
    let failure = match halt {
        Some(Halt::Failed(e)) => Some(e),
        Some(Halt::Stopped(signal)) => Some(Interrupted(signal).into()),
        None => None,
    };
    (r, failure)
}

/// A writer that panicked wrote an unknown part: every item handed to it is listed as not written.
fn panicked(e: tokio::task::JoinError) -> WriteOutcome {
    let reject = Reject { key: "(every item of the table)".into(), reason: format!("the writer task failed: {e}") };
    WriteOutcome { failed: vec![reject], ..WriteOutcome::default() }
}

/// Deletes items by key through the same writer (batches, pace, retries) as the puts.
async fn delete_items(
    run: &Run<'_>,
    (table, key_names): (&str, &[&str]),
    fence: &Fence,
    doomed: Vec<(Digest, Item)>,
) -> WriteOutcome {
    let counters = crate::engine::progress::table(table);
    let (tx, task) = start_writer(run, (table, key_names), fence, move |n, units| counters.deleted(n, units));
    let deleting = crate::target::dryrun::doing(run.options.mode, ("deleting", "delete"));
    run.printer.note(format!("{table}: {deleting} {} items that have no source row", doomed.len()));
    for (key, item) in doomed {
        // A delete is billed by the size of the item removed; one unit is the floor.
        if tx.send(Pending { key, request: Request::Delete(item), units: 1 }).await.is_err() {
            break;
        }
    }
    drop(tx);
    task.await.unwrap_or_else(panicked)
}

impl RepairReport {
    /// The human form: one row per table (found, done, cost), then what was deleted, kept or not written.
    pub fn render(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header([
            "table",
            "missing",
            "differing",
            "extra",
            "written",
            "deleted",
            "not written",
            "write units",
            "cost",
            "full rewrite",
        ]);
        for t in &self.tables {
            let mut cells = vec![Cell::new(&t.table)];
            let figures = [
                t.missing.to_string(),
                t.differing.to_string(),
                t.extra.to_string(),
                (t.created + t.updated).to_string(),
                t.deleted.to_string(),
                (t.failed.len() as u64 - t.unknown).to_string(),
                crate::pure::report::units(t.write_units),
                usd(t.cost.actual),
                usd(t.cost.potential),
            ];
            cells.extend(figures.into_iter().map(|f| Cell::new(f).set_alignment(CellAlignment::Right)));
            table.add_row(cells);
        }
        let mode = if self.dry_run { "dry run of a repair: nothing was written" } else { "repair" };
        let mut out = format!("{} ({}), {mode}\n", self.environment, self.region);
        if let Some(reason) = &self.outcome.reason {
            let heading = if self.outcome.status == "interrupted" { "Stopped early" } else { "Failed" };
            out.push_str(&format!("{heading}: {reason}\n"));
        }
        out.push_str(&format!("{table}\n"));
        out.push_str(&format!(
            "Write units are {}; the cost counts the verify's reads ({} units); the full rewrite is what `sync \
             --clean` would write.\n",
            self.units,
            crate::pure::report::units(self.read_units)
        ));
        for t in &self.tables {
            if t.unpriced > 0 {
                out.push_str(&format!(
                    "{}: {} items priced from their size alone (the verify did not keep them as stored): the write \
                     units are an estimate\n",
                    t.table, t.unpriced
                ));
            }
            out.push_str(&crate::pure::report::deleted_lines(&t.table, &t.deleted_keys, self.dry_run));
            if let Some(reason) = &t.kept_reason {
                out.push_str(&format!("{}: {} extra items kept: {reason}\n", t.table, t.kept));
            }
            if t.settled > 0 {
                out.push_str(&format!(
                    "{}: {} differences were settled by the source since the verify read it; nothing was done to \
                     them\n",
                    t.table, t.settled
                ));
            }
            if t.unknown > 0 {
                out.push_str(&format!("{}: {}\n", t.table, crate::pure::report::unknown_line(t.unknown)));
            }
            if !t.failed.is_empty() {
                let heading = if t.unknown > 0 { "not confirmed written" } else { "not written" };
                out.push_str(&format!("{}: {} items {heading}:\n", t.table, t.failed.len()));
                for f in t.failed.iter().take(20) {
                    out.push_str(&format!("  {}: {}\n", f.key, f.reason));
                }
                if t.failed.len() > 20 {
                    out.push_str(&format!("  … and {} more (see --json)\n", t.failed.len() - 20));
                }
            }
        }
        if !self.sampled.is_empty() {
            out.push_str(&format!(
                "The verify was sampled ({}): only the differences the sample found were repaired; `ddbsync verify \
                 {} --full --repair` finds and repairs every one.\n",
                self.sampled.join(", "),
                self.environment
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("Note: {note}\n"));
        }
        let verdict = match (self.dry_run, self.has_losses()) {
            (true, _) => "Nothing was written",
            (false, true) => "Repaired in part",
            (false, false) => "Repaired",
        };
        out.push_str(&format!("{verdict}; cost {}.\n", usd(self.cost.actual)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableRepair {
        let prices = crate::pure::cost::Prices::builtin("us-east-1").expect("prices");
        TableRepair {
            table: name.into(),
            missing: 1,
            differing: 2,
            extra: 1,
            created: 1,
            updated: 2,
            deleted: 0,
            deleted_keys: Vec::new(),
            kept: 1,
            kept_reason: Some("left in place: the mapping lessons does not set delete_missing (…)".into()),
            refused: false,
            stopped: false,
            unpriced: 0,
            settled: 0,
            delete_missing: false,
            failed: Vec::new(),
            unknown: 0,
            write_units: 3.0,
            read_units: 40.0,
            full_rewrite_units: 80.0,
            retries: 0,
            throttled: 0,
            cost: Savings::new(&prices, 3.0, 40.0, 80.0),
        }
    }

    fn report(tables: Vec<TableRepair>, sampled: &[&str]) -> RepairReport {
        let prices = crate::pure::cost::Prices::builtin("us-east-1").expect("prices");
        RepairReport {
            environment: "dev".into(),
            region: "us-east-1".into(),
            started_at: "2026-11-27T17:00:00.000Z".into(),
            finished_at: "2026-11-27T17:00:01.000Z".into(),
            dry_run: false,
            units: "measured",
            sampled: sampled.iter().map(|s| s.to_string()).collect(),
            cost: Savings::new(&prices, 3.0, 40.0, 80.0),
            write_units: 3.0,
            read_units: 40.0,
            tables,
            outcome: Outcome::completed(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn extras_kept_are_a_loss_and_say_why() {
        let r = report(vec![table("t-lessons")], &[]);
        assert!(r.has_losses());
        insta::assert_snapshot!(r.render());
    }

    #[test]
    fn a_sampled_repair_says_so() {
        let mut t = table("t-lessons");
        (t.kept, t.kept_reason) = (0, None);
        let r = report(vec![t], &["t-lessons"]);
        assert!(!r.has_losses());
        let text = r.render();
        assert!(text.contains("The verify was sampled (t-lessons): only the differences the sample found"), "{text}");
        assert!(text.contains("`ddbsync verify dev --full --repair`"), "{text}");
        assert!(text.ends_with("Repaired; cost $0.000007.\n"), "{text}");
    }
}
