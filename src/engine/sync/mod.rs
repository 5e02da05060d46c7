//! A sync run: plan every table, take the run lock, prepare the targets, then per table scan the
//! target's hashes, stream the source through item building and the diff, write what changed and
//! delete what the guard allows.
//!
//! Invariants: every mapping is checked against its query before anything is written; `--dry-run`
//! goes through the same diff and writes nothing to DynamoDB (no table, no item, no lock, no run
//! record); every source row ends created, updated, unchanged, rejected or failed, and the report
//! counts each; a writing run holds the lock from before it describes a table until it has recorded
//! the run. A shard (`--shard K/N`) does all of this for the items its range owns: a source row
//! whose key another shard owns is left to that shard (a row without a key, to shard 0), a target
//! item of another shard is neither compared nor deleted.

mod rejects;
mod table;

use crate::engine::backup;
use crate::engine::diff_index;
use crate::engine::lock::{self, Fence};
use crate::engine::pace::Cap;
use crate::engine::preflight::{self, missing_indexes_message, open_rows, plans, selected, Rows};
use crate::engine::scan::{self, Read, INDEX_SETTLE};
use crate::engine::stop::{Interrupted, Stop, DRAIN};
use crate::printer::Printer;
use crate::profile::{DiffMode, Entity, Profile, ProfileError, TableMapping};
use crate::pure::bucket::Shard;
use crate::pure::item::{self, Item};
use crate::pure::params::Params;
use crate::pure::plan::{show_table_schema, Reject, TablePlan};
use crate::pure::report::{Outcome, RunReport, TableReport, Totals};
use crate::source::{self, Source};
use crate::target::dryrun::{doing, Mode};
use crate::target::dynamo;
use crate::target::TargetError;
use crate::target::{IndexSchema, Target};
use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use rejects::write_rejects;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use table::sync_table;

/// Memory the rows waiting for the Scan may hold ([`crate::pure::classify`]); the benchmarks found
/// no gain in overlap from more (BENCHMARKS.md).
const PARK_BUDGET: usize = 4 << 20;

/// How long recording a run may take: a DynamoDB that stopped answering must not hold the report.
const RECORD_WAIT: Duration = Duration::from_secs(5);
/// The record's wait after DynamoDB failed to answer the run's own calls.
const RECORD_WAIT_AFTER_SILENCE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// A real run, or a rehearsal (`--dry-run`) that writes nothing.
    pub mode: Mode,
    pub clean: bool,
    /// Only these mappings (by name without prefix); all when empty.
    pub tables: Vec<String>,
    /// Lets deletes exceed `sync.max_delete_fraction` of a table.
    pub allow_mass_delete: bool,
    /// Takes the run lock even from a live lease.
    pub force_unlock: bool,
    /// `--lock-timeout`: wait up to this long for a lock another run holds.
    pub lock_timeout: Option<Duration>,
    /// Where to list rejected and unwritten rows; default `<rejects_dir>/<env>-<time>.jsonl`.
    pub rejects_file: Option<PathBuf>,
    /// `--param name=value`, bound to the queries that list the name.
    pub params: Vec<(String, String)>,
    /// `--full-scan`: Scan tables whose diff reads the hash index.
    pub full_scan: bool,
    /// The part of the key space this process syncs (`--shard K/N`); the whole run by default.
    pub shard: Shard,
    /// The id the run is recorded under (`--run-id`; shared by the shards of one run); this
    /// process's own run id when none is given.
    pub run_id: Option<String>,
    /// `--limit`: the run reads a sample of the source, so items it did not read are not orphans.
    pub sampled: bool,
    /// `--id-map`: where to list the IDs a promotion remapped.
    pub id_map: Option<PathBuf>,
    /// For `ddbsync plan` (a rehearsal): where its target keeps every write whole and the hashes
    /// the diff read.
    pub capture: Option<Arc<crate::target::dryrun::Capture>>,
}

/// `sync.on_reject = "fail"` found rows that cannot be written; nothing was written.
#[derive(Debug, thiserror::Error)]
#[error(
    "{count} source rows cannot be written (first: {first}); nothing was written because sync.on_reject is \"fail\". \
     Every row is listed in {file}"
)]
pub struct RejectedBeforeWrite {
    pub count: usize,
    pub first: String,
    pub file: String,
}

/// A mapping with its checked plan and what the target holds now.
struct Prepared<'a> {
    mapping: &'a TableMapping,
    plan: TablePlan,
    exists: bool,
    /// DynamoDB's (approximate) item count, to size the diff index once.
    item_count: u64,
    /// The indexes the run's writes go through: the table's own, or the mapping's for a table the
    /// run creates. A dry run prices index writes by them.
    indexes: Vec<IndexSchema>,
    /// How the diff reads the table, when it exists and is not recreated.
    read: Read,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a sync did, even when it did not finish: the report of the tables it got through (with
/// the run's outcome) and the error that ended it, if one did. The report comes first: it is printed
/// and recorded whatever the error.
pub struct Finished {
    pub report: RunReport,
    pub error: Option<anyhow::Error>,
}

/// Runs a sync. An `Err` means nothing was touched (a bad profile or parameter, an unreachable or
/// refusing source, rows refused by `on_reject = "fail"`, the lock held by another run); anything
/// later comes back as a [`Finished`] with its report.
pub async fn run(profile: &Profile, options: &SyncOptions, printer: &Printer, stop: &Stop) -> Result<Finished> {
    let started_at = now();
    let started = std::time::Instant::now();
    let mappings = selected(profile, &options.tables)?;
    let mut params = Params::new(profile, &mappings, &options.params)?;
    let mode = options.mode;
    let dynamo = match (&options.capture, mode) {
        (Some(capture), Mode::Rehearsal) => {
            let inner = dynamo::connect(&profile.target).await;
            Arc::new(crate::target::dryrun::DryRun::capturing(inner, capture.clone()))
        }
        _ => mode.target(dynamo::connect(&profile.target).await),
    };
    if options.clean {
        unless_stopped(stop, refuse_sliced_clean(&*dynamo, profile, &mappings)).await?;
    }
    // Until the lock is taken nothing is held: a signal ends the run at once.
    let source = unless_stopped(stop, async { Ok(source::connect(profile).await?) }).await?;
    tracing::info!(source = %source.target(), "connected to {}", source.system());

    let mut plans = unless_stopped(stop, plans(source.as_ref(), &mappings)).await?;
    preflight::check_params(&mut params, &mappings, &mut plans)?;
    let rejects_path = || rejects_file(options, profile, &started_at);
    if profile.sync.fail_on_reject {
        // The check and the sync read one snapshot: a row changed between them cannot slip past
        // the check.
        source.hold_snapshot().await?;
        let rejected =
            unless_stopped(stop, check_source(source.as_ref(), &params, &mappings, &plans, options.shard)).await?;
        let count: usize = rejected.iter().map(|(_, r)| r.len()).sum();
        if count > 0 {
            let path = rejects_path();
            write_rejects(&path, rejected.iter().map(|(t, r)| (t.as_str(), "rejected", r.as_slice())))?;
            let (table, first) = rejected.iter().find_map(|(t, r)| r.first().map(|r| (t, r))).expect("a reject");
            let first = format!("{table}: {}: {}", first.key, first.reason);
            return Err(RejectedBeforeWrite { count, first, file: path.display().to_string() }.into());
        }
    }

    let run_id = options.run_id.clone().unwrap_or_else(crate::engine::run_id::current);
    let mut done = Done::default();
    let names: Vec<String> = mappings.iter().map(|m| m.table_name.clone()).collect();
    let covered = mappings.clone();
    let work = |fence: Fence| {
        let run = Run {
            profile,
            options,
            printer,
            source: source.as_ref(),
            params: &params,
            dynamo: dynamo.clone(),
            mode,
            // A rehearsal sends nothing: nothing to pace. The shards of a run share the profile's
            // cap: each takes its N-th (at least one unit a second).
            cap: profile
                .sync
                .max_write_units_per_second
                .filter(|_| mode == Mode::Real)
                .map(|n| Arc::new(Cap::new(shard_cap(n, options.shard)))),
            fence,
            stop: stop.clone(),
            // The lock was just taken: every write of an earlier run is older than this.
            locked_at: (mode == Mode::Real).then(tokio::time::Instant::now),
        };
        let done = &mut done;
        async move {
            // The graceful stop inside the sync has its bound; this one ends whatever still runs.
            tokio::select! {
                outcome = prepare_and_sync(&run, mappings, plans, done) => outcome,
                signal = run.stop.expired(DRAIN + Duration::from_secs(5)) => Err(Interrupted(signal).into()),
            }
        }
    };
    // The lock is taken before the tables are even described, so that this run never acts on what
    // another run was in the middle of changing.
    // A rehearsal takes no lock: it writes nothing, so it must neither wait for a real run nor
    // hold one up.
    let outcome = match mode {
        Mode::Rehearsal => work(Fence::open()).await,
        Mode::Real => {
            let on_wait = |e: &anyhow::Error| printer.waiting_for_lock(options.lock_timeout, e);
            let sharding = (!options.shard.is_whole()).then(|| (options.shard, run_id.clone()));
            let wait = (options.force_unlock, options.lock_timeout, sharding);
            lock::with_lock_sharded(&dynamo, profile, &names, wait, on_wait, stop, work).await
        }
    };
    if profile.sync.fail_on_reject {
        // Rolled back, never committed; a failure leaves it to the server, which rolls it back
        // when the connection closes.
        if let Err(e) = source.end_snapshot().await {
            tracing::warn!("{e}");
        }
    }
    let mut error = match outcome {
        // No lock, so nothing done: no report, no run record.
        Err(e) if done.tables.is_empty() && (e.chain().any(|c| c.is::<lock::Locked>()) || waited(&e)) => return Err(e),
        Err(e) => Some(e),
        Ok(()) => stop.requested().map(|signal| Interrupted(signal).into()),
    };

    let tables = done.tables;
    let total = Totals::of(&tables, &profile.prices);
    let mut report = RunReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        started_at: started_at.clone(),
        finished_at: now(),
        dry_run: mode == Mode::Rehearsal,
        clean: options.clean,
        units: mode.units(),
        prices: profile.prices.clone(),
        tables,
        total,
        params: params.used_by(&covered),
        rejects_file: None,
        backup: done.backup,
        outcome: Outcome::of(error.as_ref(), crate::exit_for),
        notes: done.notes,
        run_id,
        shard: (!options.shard.is_whole()).then(|| options.shard.to_string()),
        promotion: None,
    };
    if let Some(promotion) = source.promotion() {
        let (report_promotion, note) = promotion_report(profile, options, promotion, &report, &started);
        report.promotion = Some(report_promotion);
        report.notes.extend(note);
    }
    report.settle_exit();
    // Every run that got this far is recorded, failed and interrupted ones too (a rehearsal's
    // target keeps the record to itself).
    // A DynamoDB that just failed to answer is given a short wait for the record, not a second
    // full one: the run's outcome is known, and the note says the record is missing.
    let wait = match error.as_ref().is_some_and(unanswered) {
        true => RECORD_WAIT_AFTER_SILENCE,
        false => RECORD_WAIT,
    };
    match record_run_within(&*dynamo, profile, report.record(), wait).await {
        Ok(()) if mode == Mode::Rehearsal => {
            tracing::info!(outcome = report.outcome.status, "the dry run is not recorded (a dry run writes nothing)")
        }
        Ok(()) => tracing::info!(table = %profile.metadata_table, outcome = report.outcome.status, "recorded the run"),
        Err(message) => {
            report.notes.push(message.clone());
            error.get_or_insert_with(|| anyhow::anyhow!("{message}; the sync itself finished (report above)"));
        }
    }
    if report.total.rejected + report.total.failed > 0 {
        let path = rejects_path();
        let lists = report.tables.iter().flat_map(|t| {
            [(t.table.as_str(), "rejected", &t.rejected[..]), (t.table.as_str(), "not written", &t.failed[..])]
        });
        match write_rejects(&path, lists) {
            Ok(()) => report.rejects_file = Some(path.display().to_string()),
            // The report lists every row itself; the file is a convenience.
            Err(e) => report.notes.push(format!("{e:#}; the rows are listed in this report instead")),
        }
    }
    Ok(Finished { report, error })
}

/// What a promotion did to IDs, for the report; writes `--id-map` (a note says why it could not).
fn promotion_report(
    profile: &Profile,
    options: &SyncOptions,
    promotion: source::Promotion,
    report: &RunReport,
    started: &std::time::Instant,
) -> (crate::pure::report::PromotionReport, Option<String>) {
    let location = match &profile.source.kind {
        crate::profile::SourceKind::DynamoDb(d) => {
            let region = d.region.as_deref().unwrap_or(&profile.target.region);
            match &d.endpoint_url {
                Some(url) => format!("{region} ({url})"),
                None => region.to_string(),
            }
        }
        _ => String::new(),
    };
    let sample = match &profile.source.kind {
        crate::profile::SourceKind::DynamoDb(d) => d.sample.as_ref().map(|s| s.limit),
        _ => None,
    };
    let estimated_seconds = report.dry_run.then(|| {
        let cap = profile.sync.max_write_units_per_second.map(|c| c.get());
        crate::pure::cost::estimated_seconds(started.elapsed().as_secs_f64(), report.total.write_units, cap)
    });
    let mut note = None;
    let id_map = options.id_map.as_ref().and_then(|path| match write_id_map(path, profile, &promotion) {
        Ok(()) => Some(path.display().to_string()),
        Err(e) => {
            // Nothing half written is left beside it.
            let _ = std::fs::remove_file(path.with_extension("partial"));
            tracing::warn!("{e:#}; the IDs were not listed");
            note = Some(format!("{e:#}; the IDs were not listed"));
            None
        }
    });
    let tables = promotion.tables;
    (crate::pure::report::PromotionReport { source: location, tables, sample, id_map, estimated_seconds }, note)
}

/// `--id-map`: every ID a promotion remapped, one JSON object a line: the mapping, its source and
/// target tables, and the source and target IDs in DynamoDB's JSON (`{"S": "…"}`), so that a
/// number stays a number. Written whole to a temporary file, then renamed into place.
fn write_id_map(path: &std::path::Path, profile: &Profile, promotion: &source::Promotion) -> Result<()> {
    use std::io::Write;
    let table = |name: &str| profile.tables.iter().find(|t| t.name == name);
    let temporary = path.with_extension("partial");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&temporary).with_context(|| format!("cannot write the ID map {}", path.display()))?,
    );
    for (name, old, new) in &promotion.ids {
        let mapping = table(name);
        let line = serde_json::json!({
            "table": name,
            "source_table": mapping.and_then(|m| m.promote.as_ref()).map(|p| p.source_table.as_str()),
            "target_table": mapping.map(|m| m.table_name.as_str()),
            "source_id": crate::pure::ddb_json::value_to_json(old),
            "target_id": crate::pure::ddb_json::value_to_json(new),
        });
        writeln!(file, "{line}").with_context(|| format!("cannot write the ID map {}", path.display()))?;
    }
    file.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot write the ID map {}", path.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot move the ID map into {}", path.display()))
}

/// Writes a run record ([`RunReport::record`], [`crate::pure::report::OperationRun::record`]) into the
/// metadata table, waiting at most a few seconds; on failure, the note that says so. A restore
/// (and `verify --repair`) calls it while it still holds the run lock.
pub async fn record_run(dynamo: &dyn Target, profile: &Profile, record: Item) -> Result<(), String> {
    record_run_within(dynamo, profile, record, RECORD_WAIT).await
}

async fn record_run_within(dynamo: &dyn Target, profile: &Profile, record: Item, wait: Duration) -> Result<(), String> {
    let table = &profile.metadata_table;
    let failed = match tokio::time::timeout(wait, dynamo.put_item(table, record)).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer in {} s", wait.as_secs()),
    };
    Err(format!("the run could not be recorded in {table} in {}: {failed}", dynamo.endpoint()))
}

/// Whether the run failed because DynamoDB did not answer (a timeout, a refused connection):
/// a [`TargetError::Transient`] without an answer, anywhere in the chain.
fn unanswered(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(c.downcast_ref::<crate::target::TargetError>(),
            Some(crate::target::TargetError::Transient(m)) if m.starts_with("no answer from DynamoDB"))
    })
}

/// Whether the run was stopped while it waited for the lock ([`lock::StoppedWaiting`], a context).
fn waited(e: &anyhow::Error) -> bool {
    e.downcast_ref::<lock::StoppedWaiting>().is_some()
}

/// `work`, unless a signal comes first.
async fn unless_stopped<T>(stop: &Stop, work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::select! {
        done = work => done,
        signal = stop.wait() => Err(Interrupted(signal).into()),
    }
}

/// What a run got through: kept by the caller, so that a run that fails or is stopped half-way
/// still reports and records the tables it finished.
#[derive(Default)]
struct Done {
    tables: Vec<TableReport>,
    backup: Option<String>,
    /// The tables the run did not get to, and what state it left them in.
    notes: Vec<String>,
}

/// Describes the target tables (waiting for any left deleting or creating), checks their keys, then
/// syncs them.
async fn prepare_and_sync(
    run: &Run<'_>,
    mappings: Vec<&TableMapping>,
    plans: Vec<TablePlan>,
    done: &mut Done,
) -> Result<()> {
    let (profile, options, dynamo) = (run.profile, run.options, &run.dynamo);
    let mut prepared = Vec::new();
    for (mapping, plan) in mappings.into_iter().zip(plans) {
        let table = &mapping.table_name;
        // A table left deleting or creating by an interrupted run is let finish first.
        let compared = preflight::compare(&**dynamo, profile, mapping, &plan, true).await?;
        if let Some(mismatch) = compared.mismatch.filter(|_| !options.clean) {
            bail!("DynamoDB table {table} {mismatch}; run with --clean to recreate the table");
        }
        if !compared.missing.is_empty() && !options.clean {
            let message = missing_indexes_message(&compared.missing, profile, mapping);
            run.printer.note(format!("{table} {message} (the items are written all the same)"));
        }
        let info = compared.info;
        let item_count = info.as_ref().map_or(0, |i| i.item_count);
        tracing::info!(table = %table, exists = info.is_some(), approximate_items = item_count, "described the table");
        let indexes = match &info {
            Some(info) if !options.clean => info.indexes.clone(),
            _ => plan.schema.indexes.clone(),
        };
        let read = match &info {
            Some(info) if !options.clean => choose_read(run, (mapping, &plan), info, &mut done.notes).await?,
            _ => Read::Scan { bucketed: false },
        };
        prepared.push(Prepared { mapping, plan, exists: info.is_some(), item_count, indexes, read });
    }

    sync_tables(run, &mut prepared, done).await
}

/// How the diff reads an existing table (said when its mapping asks for the hash index and it cannot
/// be read yet); a table with the index that this run writes without buckets loses its record first.
async fn choose_read(
    run: &Run<'_>,
    (mapping, plan): (&TableMapping, &TablePlan),
    info: &crate::target::TableInfo,
    notes: &mut Vec<String>,
) -> Result<Read> {
    let (dynamo, profile, table) = (&*run.dynamo, run.profile, &mapping.table_name);
    if mapping.diff == DiffMode::Scan {
        // Whether or not the table has the index now (it may have been deleted by hand and be
        // made again later), items written without a bucket void the record.
        if run.mode == Mode::Real {
            diff_index::forget(dynamo, profile, table).await?;
        }
        return Ok(Read::Scan { bucketed: false });
    }
    let record = diff_index::recorded(dynamo, profile, table).await?;
    let wanted = plan.schema.indexes.iter().find(|i| i.name == crate::pure::bucket::INDEX_NAME);
    let (read, mut why) = diff_index::choose(mapping.diff, run.options.full_scan, (info, wanted), record.as_deref());
    if read == (Read::Scan { bucketed: true }) && !run.options.shard.is_whole() && !run.options.full_scan {
        // A shard sees its range only: it cannot tell that every item of the table has its bucket.
        why = why.map(|why| {
            format!(
                "{why}. A shard cannot complete that (it reads its range only): run `ddbsync sync {} --table {}` \
                 once unsharded, and the shards read the index from then on",
                run.profile.env, mapping.name
            )
        });
    }
    if let Some(why) = why {
        // In the report too: a scheduled run's JSON says why it read the whole table.
        run.printer.note(format!("{table} {why}"));
        notes.push(format!("{table} {why}"));
    }
    Ok(match read {
        // A shard Queries only its buckets; the whole run Scans the index.
        Read::Index { .. } => Read::Index {
            not_before: run.locked_at.map(|at| at + INDEX_SETTLE),
            buckets: (!run.options.shard.is_whole()).then(|| run.options.shard.buckets()),
        },
        scan => scan,
    })
}

/// Refuses a clean load of an existing table whose queries take parameters: a run loads one slice
/// of it, and recreating it would lose every item of the others, which no report could show. Asked
/// before anything is held or recorded: nothing was done.
async fn refuse_sliced_clean(dynamo: &dyn Target, profile: &Profile, mappings: &[&TableMapping]) -> Result<()> {
    for mapping in mappings.iter().filter(|m| m.takes_params()) {
        let table = &mapping.table_name;
        let where_ = profile.location();
        if dynamo
            .describe(table)
            .await
            .with_context(|| format!("reading DynamoDB table {table} in {where_}"))?
            .is_some()
        {
            return Err(crate::exit::UsageError(format!(
                "--clean recreates the whole table {table}, but its queries take parameters and load one slice of \
                 it: every item outside the slice would be lost. Nothing was changed. Leave out --clean (a sync \
                 rewrites what changed in the slice) or leave the table out (--table), or, to start it over, \
                 `ddbsync tables drop {} --table {}` and then sync every slice",
                profile.env, mapping.name
            ))
            .into());
        }
    }
    Ok(())
}

/// Tries the table's scope before a run that would not scan it (a new table, a clean load) writes
/// anything: a scope DynamoDB refuses would otherwise fail only the next run, at its Scan.
async fn try_scope(run: &Run<'_>, p: &Prepared<'_>) -> Result<()> {
    let Some(filter) = run.params.filter(p.mapping, &p.plan.param_types, &p.plan.scope_values) else { return Ok(()) };
    let table = &p.mapping.table_name;
    match run.dynamo.scan_limited(table, &[], (0, 1), None, Some(1), Some(&filter)).await {
        Ok(_) => Ok(()),
        Err(TargetError::Invalid(refusal)) => Err(scope_refused(p.mapping, &refusal).into()),
        Err(e) => Err(anyhow::Error::new(e).context(format!("trying the scope of {table}"))),
    }
}

/// DynamoDB refused a mapping's scope: a profile error, with the fix.
pub fn scope_refused(mapping: &TableMapping, refusal: &str) -> ProfileError {
    let expression = mapping.scope.as_deref().unwrap_or_default();
    mapping.error(format!(
        "DynamoDB refuses scope = \"{expression}\": {refusal}; correct the expression (its `:name`s are the \
         parameters, `#name` stands for attribute name), or every sync of the table fails at its Scan"
    ))
}

/// The whole of a sync once the lock is held: clean or create tables, diff, write, delete. Each
/// finished table goes into `done` at once.
async fn sync_tables(run: &Run<'_>, prepared: &mut [Prepared<'_>], done: &mut Done) -> Result<()> {
    let (profile, options, printer, dynamo) = (run.profile, run.options, run.printer, &run.dynamo);
    // The backup is kept outside DynamoDB, where a rehearsal's target cannot hold it back: taken
    // only before a clean that deletes.
    // A promotion into a protected environment keeps the same rollback point: `restore` returns to it.
    let promotion = matches!(profile.source.kind, crate::profile::SourceKind::DynamoDb(_));
    if promotion {
        // Before the backup and the first write: a run that would duplicate the tables does neither.
        let tables: Vec<(&TableMapping, bool)> = prepared
            .iter()
            .filter(|p| p.mapping.promote.is_some())
            .map(|p| (p.mapping, !p.exists || options.clean))
            .collect();
        crate::engine::promotion::claim(&**dynamo, profile, &tables).await?;
    }
    if (options.clean || promotion) && profile.protected && run.mode == Mode::Real {
        let existing: Vec<&TableMapping> = prepared.iter().filter(|p| p.exists).map(|p| p.mapping).collect();
        if !existing.is_empty() {
            let path = backup::default_path(profile);
            let before = if options.clean { "--clean" } else { "the promotion" };
            printer.note(format!("{} is protected: backing up {} tables before {before}", profile.env, existing.len()));
            let manifest = backup::backup(&**dynamo, profile, &existing, &path, printer)
                .await
                .with_context(|| format!("taking the backup before {before}; nothing was written"))?;
            let items: u64 = manifest.tables.iter().map(|t| t.items).sum();
            printer.note(format!("backup: {} ({items} items)", path.display()));
            done.backup = Some(path.display().to_string());
        }
    }
    // The backup's figures are not the sync's: its tables wait for it.
    for p in prepared.iter() {
        crate::engine::progress::forget(&p.mapping.table_name);
    }
    // A table about to be recreated is tried before it is deleted; a new one once it exists.
    for p in prepared.iter().filter(|p| p.exists && options.clean) {
        try_scope(run, p).await?;
    }
    for p in prepared.iter_mut() {
        let table = &p.mapping.table_name;
        if let Some(signal) = run.stop.requested() {
            return Err(Interrupted(signal).into());
        }
        if options.clean && p.exists {
            run.fence.check()?;
            printer.note(format!("{} {table}", doing(run.mode, ("deleting", "delete"))));
            dynamo.drop_table(table).await.with_context(|| format!("deleting {table}"))?;
        }
        if options.clean || !p.exists {
            run.fence.check()?;
            let creating = doing(run.mode, ("creating", "create"));
            printer.note(format!("{creating} {table} ({})", show_table_schema(&p.plan.schema)));
            match dynamo.make_table(table, &p.plan.schema).await {
                // The shards of a run start at once: another shard created the table first.
                Err(e) if !options.shard.is_whole() && lock::already_exists(&e) => {
                    dynamo.wait(table, false, crate::target::TABLE_WAIT).await
                }
                made => made,
            }
            .with_context(|| format!("creating {table}"))?;
            if p.mapping.diff == DiffMode::Index && run.mode == Mode::Real {
                // Empty, and every item this run writes carries its bucket.
                let created = dynamo.describe(table).await?.and_then(|info| info.created);
                match created {
                    Some(created) => diff_index::mark_complete(&**dynamo, profile, table, created).await?,
                    None => printer.note(format!(
                        "{table}: DynamoDB does not say when the table was created, so the next run Scans it \
                         instead of reading its hash index"
                    )),
                }
            }
            if !p.exists {
                match run.mode {
                    Mode::Real => try_scope(run, p).await?,
                    // A rehearsal's new table is its own, not DynamoDB's: said, so that a clean
                    // dry run is not read as a scope DynamoDB accepts.
                    Mode::Rehearsal if p.mapping.scope.is_some() => done.notes.push(format!(
                        "{table}: its scope was not tried on DynamoDB, as the table does not exist yet; the real \
                         sync tries it on the new table before it writes"
                    )),
                    Mode::Rehearsal => {}
                }
            }
        }
        lock::beat();
    }

    let scans: Vec<_> = prepared
        .iter()
        .map(|p| {
            let key_names = p.plan.key_names().into_iter().map(String::from).collect();
            (p.exists && !options.clean).then(|| {
                let table = p.mapping.table_name.clone();
                let filter = run.params.filter(p.mapping, &p.plan.param_types, &p.plan.scope_values);
                let scope = (p.mapping.delete_missing, filter);
                let footprints = (run.mode == Mode::Rehearsal).then(|| p.indexes.clone());
                // A shard keeps only its items: about its N-th of the table.
                let expected = p.item_count / u64::from(options.shard.count());
                let read = p.read.clone();
                scan::start(dynamo.clone(), table, key_names, scope, footprints, expected, read, profile, options.shard)
            })
        })
        .collect();
    for (at, (p, scan)) in prepared.iter().zip(scans).enumerate() {
        let table = &p.mapping.table_name;
        let context = || format!("syncing table {table}");
        let ended = match run.stop.requested() {
            Some(signal) => Err(Interrupted(signal).into()),
            None => match sync_table(run, p, scan).await.with_context(context) {
                Ok((report, failure)) => {
                    if failure.is_none() {
                        finish_switch(run, p, &report, &mut done.notes).await;
                    }
                    done.tables.push(report);
                    Ok(failure.map_or(Ok(()), |e| Err(e.context(context()))))
                }
                Err(e) => Err(e),
            },
        };
        if let Err(e) = ended.and_then(|r| r) {
            // The tables not started are named, with what --clean already did to them.
            let skipped = if done.tables.iter().any(|t| &t.table == table) { at + 1 } else { at };
            for p in &prepared[skipped..] {
                let recreated = options.clean && run.mode == Mode::Real;
                let state = if recreated { ", recreated empty by --clean" } else { "" };
                done.notes.push(format!(
                    "{}: not synced{state}, as the run ended before it; the next run that gets that far syncs it",
                    p.mapping.table_name
                ));
            }
            return Err(e);
        }
    }
    Ok(())
}

/// After a Scan of a table whose diff is to read the hash index: records that every item carries
/// its bucket when the run made sure of it, or says what keeps the switch from completing.
async fn finish_switch(run: &Run<'_>, p: &Prepared<'_>, report: &TableReport, notes: &mut Vec<String>) {
    if p.read != (Read::Scan { bucketed: true }) || run.mode != Mode::Real || !p.exists || run.options.clean {
        return;
    }
    let table = &p.mapping.table_name;
    // A parameterised run reads a slice of the source, a shard a slice of the keys: the items of
    // the others are not judged.
    if !report.orphans_counted || p.mapping.takes_params() || !run.options.shard.is_whole() {
        return;
    }
    let switch = diff_index::Switch { unbucketed: report.diff.unbucketed };
    let left = report.orphans.saturating_sub(report.deleted);
    let not_written = report.failed.len() + report.unknown as usize;
    if !switch.complete(not_written, left, report.stale) {
        let note = diff_index::blocked(table, left, report.stale, not_written);
        run.printer.note(&note);
        notes.push(note);
        return;
    }
    let recorded = async {
        let info = run.dynamo.describe(table).await.with_context(|| format!("reading DynamoDB table {table}"))?;
        match info.and_then(|i| i.created) {
            Some(created) => diff_index::mark_complete(&*run.dynamo, run.profile, table, created).await,
            None => Ok(()),
        }
    };
    match recorded.await {
        Ok(()) => run
            .printer
            .note(format!("{table}: every item carries its bucket: the next run's diff reads the hash index")),
        Err(e) => tracing::warn!("{e:#}"),
    }
}

/// `sync.on_reject = "fail"`: reads every table's source once, building items and checking keys,
/// without writing. Returns each table's rejects.
async fn check_source(
    source: &dyn Source,
    params: &Params,
    mappings: &[&TableMapping],
    plans: &[TablePlan],
    shard: Shard,
) -> Result<Vec<(String, Vec<Reject>)>> {
    let mut out = Vec::new();
    for (mapping, plan) in mappings.iter().zip(plans) {
        let mut keys = std::collections::HashSet::new();
        let mut rejected = Vec::new();
        for (entity, entity_plan) in mapping.entities.iter().zip(&plan.entities) {
            let mut rows = open_rows(source, params, entity).await?;
            while let Some(row) = rows.next().await {
                match entity_plan.build(row?) {
                    // Another shard's row: that shard checks it.
                    Ok(built) if !shard.owns(&built.key) => {}
                    Err(r) if !reports_reject(shard, r.key.as_ref().map(|k| *k).map_err(|_| ())) => {}
                    Ok(built) if !keys.insert(built.key) => rejected.push(Reject {
                        key: item::describe_key(&built.item, &plan.key_names()),
                        reason: DUPLICATE.into(),
                    }),
                    Ok(_) => {}
                    Err(r) => rejected.push(r.reject),
                }
            }
        }
        out.push((mapping.table_name.clone(), rejected));
    }
    Ok(out)
}

/// Where a run lists its rejected and unwritten rows: `--rejects-file`, or
/// `<rejects_dir>/<env>-<start time>.jsonl`. The shards of a run, which may start in the same
/// millisecond, each write their own: `-shard-K-of-N` before the extension.
fn rejects_file(options: &SyncOptions, profile: &Profile, started_at: &str) -> PathBuf {
    let path = options.rejects_file.clone().unwrap_or_else(|| {
        let stamp = started_at.replace([':', '.'], "").replace('-', "");
        profile.rejects_dir.join(format!("{}-{stamp}.jsonl", profile.env))
    });
    let shard = options.shard;
    if shard.is_whole() {
        return path;
    }
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-shard-{}-of-{}.{}", shard.index(), shard.count(), ext.to_string_lossy()),
        None => format!("{stem}-shard-{}-of-{}", shard.index(), shard.count()),
    };
    path.with_file_name(name)
}

/// A shard's share of the run's write-unit cap: its N-th, at least one unit a second, so that the
/// shards together stay within the profile's cap.
fn shard_cap(cap: std::num::NonZeroU32, shard: Shard) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(cap.get() / shard.count()).unwrap_or(std::num::NonZeroU32::MIN)
}

/// Whether this shard reports a rejected row: the owner of its key, or for a row whose key could
/// not be built (no digest, so no owner) shard 0 alone, so that the run's sum counts it once.
fn reports_reject(shard: Shard, key: Result<crate::pure::hash::Digest, ()>) -> bool {
    match key {
        Ok(key) => shard.owns(&key),
        Err(()) => shard.index() == 0,
    }
}

/// Why a query was not opened: an error, a signal, or the lost lease.
enum Halt {
    Failed(anyhow::Error),
    Stopped(&'static str),
}

impl Halt {
    fn into_state(self, stopped: &mut Option<&'static str>, failure: &mut Option<anyhow::Error>) {
        match self {
            Halt::Failed(e) => *failure = Some(e),
            Halt::Stopped(signal) => *stopped = Some(signal),
        }
    }
}

/// Opens an entity's query, unless a signal or the loss of the lease comes first (the abandoned
/// query is cancelled on the server when its future is dropped).
async fn open_or_halt<'s>(run: &'s Run<'_>, entity: &'s Entity) -> Result<Rows<'s>, Halt> {
    tokio::select! {
        rows = open_rows(run.source, run.params, entity) => rows.map_err(Halt::Failed),
        signal = run.stop.wait() => Err(Halt::Stopped(signal)),
        reason = run.fence.lost() => Err(Halt::Failed(lock::LeaseLost(reason).into())),
    }
}

/// Added to the reason of a rejected row whose key names a stored item: the item stays as it was.
const KEPT: &str = "; kept the stored item, which is now stale";

/// Also when the other row came from another entity of the table: the table is one key space.
const DUPLICATE: &str = "another source row of the table has the same key; only the first was kept";

/// What every table of a run shares.
struct Run<'a> {
    profile: &'a Profile,
    options: &'a SyncOptions,
    printer: &'a Printer,
    source: &'a dyn Source,
    params: &'a Params,
    dynamo: Arc<dyn Target>,
    mode: Mode,
    /// The run's write-units-per-second cap, shared by every table's writer.
    cap: Option<Arc<Cap>>,
    /// Closed when the run can no longer be sure it holds its lease: nothing is written after.
    fence: Fence,
    /// Asked for by SIGTERM or SIGINT: no more reading, no new batches, no deletes.
    stop: Stop,
    /// When the run took its lock (none in a rehearsal): the hash index is read [`INDEX_SETTLE`] later.
    locked_at: Option<tokio::time::Instant>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    #[test]
    fn the_shards_of_a_run_share_its_write_cap() {
        let cap = NonZeroU32::new(1000).unwrap();
        assert_eq!(shard_cap(cap, Shard::WHOLE).get(), 1000);
        assert_eq!(shard_cap(cap, Shard::new(2, 3).unwrap()).get(), 333, "three shards spend at most 999");
        assert_eq!(shard_cap(NonZeroU32::new(3).unwrap(), Shard::new(0, 8).unwrap()).get(), 1, "never 0");
    }

    #[test]
    fn a_reject_is_reported_by_the_owner_of_its_key_and_a_keyless_one_by_shard_0() {
        let key = crate::pure::hash::key_digest(&[&item::AttributeValue::N("7".into())]);
        let owners: Vec<u32> = (0..4).filter(|&k| reports_reject(Shard::new(k, 4).unwrap(), Ok(key))).collect();
        assert_eq!(owners.len(), 1);
        assert!(Shard::new(owners[0], 4).unwrap().owns(&key));
        let keyless: Vec<u32> = (0..4).filter(|&k| reports_reject(Shard::new(k, 4).unwrap(), Err(()))).collect();
        assert_eq!(keyless, [0]);
        assert!(reports_reject(Shard::WHOLE, Err(())) && reports_reject(Shard::WHOLE, Ok(key)));
    }
}
