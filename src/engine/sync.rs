//! A sync run: plan every table, take the run lock, prepare the targets, then per table scan the
//! target's hashes, stream the source through item building and the diff, write what changed and
//! delete what the guard allows.
//!
//! Invariants: every mapping is checked against its query before anything is written; `--dry-run`
//! goes through the same diff and writes nothing to DynamoDB (no table, no item, no lock, no run
//! record); every source row ends created, updated, unchanged, rejected or failed, and the report
//! counts each; a writing run holds the lock from before it describes a table until it has recorded
//! the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::engine::backup;
use crate::engine::guard;
use crate::engine::lock::{self, Fence};
use crate::engine::pace::Cap;
use crate::printer::Printer;
use crate::profile::{Entity, Profile, ProfileError, TableMapping};
use crate::pure::classify::Classifier;
use crate::pure::cost::{self, Footprint, Savings};
use crate::pure::diff::{self, Index, Verdict};
use crate::pure::hash::Digest;
use crate::pure::item::{self, Item};
use crate::pure::params::Params;
use crate::pure::plan::{show_schema, show_table_schema, Built, KeyFlaw, Plan, Reject, TablePlan};
use crate::pure::report::{EntityReport, Outcome, RunReport, TableReport, Totals};
use crate::target::dryrun::{doing, Mode};
use crate::target::dynamo;
use crate::target::{IndexSchema, KeySchema, TableInfo, Target, TABLE_WAIT};

use crate::engine::scan::{self, Feed, Page, ScanCost};
use crate::engine::stop::{Interrupted, Stop, DRAIN};
use crate::engine::writer::{Pending, WriteOutcome};
use crate::source::{self, Source, SourceError};
use crate::target::{Request, TargetError};

/// Bytes of source items (as DynamoDB sizes them) held while the Scan has not yet returned their
/// key; past this the source waits for the Scan. Items take about seven times their DynamoDB size
/// in memory, so 2 MB here is about 15 MB of RSS (BENCHMARKS.md).
const PARK_BUDGET: usize = 2 << 20;

/// How long recording a run may take: a DynamoDB that stopped answering must not hold the report.
const RECORD_WAIT: Duration = Duration::from_secs(5);

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
    /// Where to list rejected and unwritten rows; default `<rejects_dir>/<env>-<time>.jsonl`.
    pub rejects_file: Option<PathBuf>,
    /// `--param name=value`, bound to the queries that list the name.
    pub params: Vec<(String, String)>,
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
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The mappings a run covers, in file order, or an error naming the unknown ones.
pub fn selected<'a>(profile: &'a Profile, names: &[String]) -> Result<Vec<&'a TableMapping>> {
    if let Some(unknown) = names.iter().find(|n| !profile.tables.iter().any(|t| &t.name == *n)) {
        let known: Vec<&str> = profile.tables.iter().map(|t| t.name.as_str()).collect();
        let message = format!("no table \"{unknown}\" in the mappings (tables: {})", known.join(", "));
        return Err(ProfileError::new(&profile.path, message).into());
    }
    Ok(profile.tables.iter().filter(|t| names.is_empty() || names.contains(&t.name)).collect())
}

/// Where a query's errors are reported: `envs/mappings/pni.toml: table "lessons": query`.
pub fn query_context(entity: &Entity) -> String {
    format!("{}: {}: query", entity.origin.display(), entity.label)
}

/// Checks a mapping against its queries' columns and parameters (they are prepared, not run).
/// Every entity is checked, even after one fails, so that one run names every problem.
pub async fn plan(source: &dyn Source, mapping: &TableMapping) -> Result<TablePlan> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    let mut param_types = HashMap::new();
    for entity in &mapping.entities {
        let described = match source.describe(&entity.query, &query_context(entity)).await {
            Ok(described) => described,
            Err(e) => {
                let e = anyhow::Error::from(e);
                if !PlanErrors::local(&e) {
                    errors.push(e);
                    return Err(PlanErrors::all(errors));
                }
                errors.push(e);
                continue;
            }
        };
        if described.params.len() != entity.params.len() {
            let listed = if entity.params.is_empty() { "none".to_string() } else { entity.params.join(", ") };
            errors.push(
                entity
                    .error(format!(
                        "the query has {} parameters ({}) but `params` names {} ({listed}); list one name per parameter, in order",
                        described.params.len(),
                        match source.system() {
                            "SQLite" => "?1, ?2, …",
                            _ => "$1, $2, …",
                        },
                        entity.params.len()
                    ))
                    .into(),
            );
            continue;
        }
        for (name, ty) in entity.params.iter().zip(described.params) {
            param_types.entry(name.clone()).or_insert(ty);
        }
        match Plan::new(entity, &mapping.indexes, described.columns) {
            Ok(plan) => plans.push(plan.sourced(described.origins)),
            Err(e) => errors.push(e.into()),
        }
    }
    if !errors.is_empty() {
        return Err(PlanErrors::all(errors));
    }
    Ok(TablePlan::new(mapping, plans, param_types)?)
}

/// Several problems found while checking mappings against their queries, each in full: every
/// entity of every mapping is checked, so that an unconvertible column in one query does not hide
/// one in the next. The exit code is the worst of theirs (a profile error's, 2, as for one).
#[derive(Debug)]
pub struct PlanErrors(Vec<anyhow::Error>);

impl PlanErrors {
    /// The one error, or all of them, flattened (`errors` is not empty).
    fn all(errors: Vec<anyhow::Error>) -> anyhow::Error {
        let mut flat = Vec::new();
        for error in errors {
            match error.downcast::<PlanErrors>() {
                Ok(several) => flat.extend(several.0),
                Err(one) => flat.push(one),
            }
        }
        match flat.len() {
            1 => flat.remove(0),
            _ => PlanErrors(flat).into(),
        }
    }

    /// Whether checking can go on to the next query after `error`: a mapping or a query is at
    /// fault (PostgreSQL refused the statement), not the connection.
    fn local(error: &anyhow::Error) -> bool {
        match error.downcast_ref::<PlanErrors>() {
            Some(several) => several.0.iter().all(PlanErrors::local),
            None => !matches!(error.downcast_ref::<SourceError>(), Some(e) if !matches!(e, SourceError::Query { .. })),
        }
    }

    /// The worst exit code of the problems.
    pub fn exit(&self) -> crate::exit::Exit {
        self.0.iter().map(crate::exit_for).fold(crate::exit::Exit::Success, crate::exit::Exit::max)
    }
}

/// `3 problems with the mappings' queries:`, then each on its own lines, indented.
impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problems with the mappings' queries:", self.0.len())?;
        for error in &self.0 {
            write!(f, "\n  {}", format!("{error:#}").replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// The indexes a mapping declares that the table lacks (or has with another key).
pub fn missing_indexes<'p>(info: &TableInfo, plan: &'p TablePlan) -> Vec<&'p IndexSchema> {
    plan.schema
        .indexes
        .iter()
        .filter(|want| !info.indexes.iter().any(|have| have.name == want.name && have.keys == want.keys))
        .collect()
}

/// `lacks index GenreIndex that … declares; …` with the fix: `tables create` adds a global index to
/// the table as it is; a local one exists only if the table is created with it.
pub fn missing_indexes_message(missing: &[&IndexSchema], profile: &Profile, mapping: &TableMapping) -> String {
    let names: Vec<&str> = missing.iter().map(|i| i.name.as_str()).collect();
    let fix = if missing.iter().any(|i| i.local) {
        format!(
            "a local index exists only if the table is created with it: `sync {} --clean --table {}`",
            profile.env, mapping.name
        )
    } else {
        format!("`ddbsync tables create {} --table {}` adds it", profile.env, mapping.name)
    };
    format!("lacks index {} that {} declares; {fix}", names.join(", "), mapping.origin.display())
}

/// `has key (id S) but envs/mappings/pni.toml gives (lesson_id N)` when a table's key is not the
/// one its mapping gives; the callers say what follows from it.
pub fn key_mismatch(found: &KeySchema, mapping: &TableMapping, plan: &TablePlan) -> Option<String> {
    let wanted = &plan.schema.keys;
    (found != wanted).then(|| {
        format!("has key ({}) but {} gives ({})", show_schema(found), mapping.origin.display(), show_schema(wanted))
    })
}

/// Checks every mapping against its query on an open source, in order; every problem of every
/// mapping is named (unless the connection itself fails).
pub async fn plans(source: &dyn Source, mappings: &[&TableMapping]) -> Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for mapping in mappings {
        match plan(source, mapping).await {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                let go_on = PlanErrors::local(&e);
                errors.push(e);
                if !go_on {
                    break;
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(PlanErrors::all(errors));
    }
    Ok(plans)
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
    let mappings = selected(profile, &options.tables)?;
    let params = Params::new(profile, &mappings, &options.params)?;
    let mode = options.mode;
    let dynamo = mode.target(dynamo::connect(&profile.target).await);
    if options.clean {
        unless_stopped(stop, refuse_sliced_clean(&*dynamo, profile, &mappings)).await?;
    }
    // Until the lock is taken nothing is held: a signal ends the run at once.
    let source = unless_stopped(stop, async { Ok(source::connect(profile).await?) }).await?;
    tracing::info!(source = %source.target(), "connected to {}", source.system());

    let plans = unless_stopped(stop, plans(source.as_ref(), &mappings)).await?;
    let rejects_path = || {
        options.rejects_file.clone().unwrap_or_else(|| {
            let stamp = started_at.replace([':', '.'], "").replace('-', "");
            profile.rejects_dir.join(format!("{}-{stamp}.jsonl", profile.env))
        })
    };
    if profile.sync.fail_on_reject {
        // The check and the sync read one snapshot: a row changed between them cannot slip past
        // the check.
        source.hold_snapshot().await?;
        let rejected = unless_stopped(stop, check_source(source.as_ref(), &params, &mappings, &plans)).await?;
        let count: usize = rejected.iter().map(|(_, r)| r.len()).sum();
        if count > 0 {
            let path = rejects_path();
            write_rejects(&path, rejected.iter().map(|(t, r)| (t.as_str(), "rejected", r.as_slice())))?;
            let (table, first) = rejected.iter().find_map(|(t, r)| r.first().map(|r| (t, r))).expect("a reject");
            let first = format!("{table}: {}: {}", first.key, first.reason);
            return Err(RejectedBeforeWrite { count, first, file: path.display().to_string() }.into());
        }
    }

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
            // A rehearsal sends nothing: nothing to pace.
            cap: profile.sync.max_write_units_per_second.filter(|_| mode == Mode::Real).map(|n| Arc::new(Cap::new(n))),
            fence,
            stop: stop.clone(),
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
        Mode::Real => lock::with_lock(&dynamo, profile, &names, (options.force_unlock, None), |_| {}, stop, work).await,
    };
    if profile.sync.fail_on_reject {
        // Rolled back, never committed; a failure leaves it to the server, which rolls it back
        // when the connection closes.
        if let Err(e) = source.end_snapshot().await {
            tracing::warn!("{e}");
        }
    }
    let mut error = match outcome {
        Err(e) if done.tables.is_empty() && e.chain().any(|c| c.is::<lock::Locked>()) => return Err(e),
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
    };
    report.settle_exit();
    // Every run that got this far is recorded, failed and interrupted ones too (a rehearsal's
    // target keeps the record to itself).
    if let Err(message) = record_run(&*dynamo, profile, report.record()).await {
        report.notes.push(message.clone());
        error.get_or_insert_with(|| anyhow::anyhow!("{message}; the sync itself finished (report above)"));
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

/// Writes a run record ([`RunReport::record`], [`crate::pure::report::OperationRun::record`]) into the
/// metadata table, waiting at most a few seconds; on failure, the note that says so. A restore
/// (and `verify --repair`) calls it while it still holds the run lock.
pub async fn record_run(dynamo: &dyn Target, profile: &Profile, record: Item) -> Result<(), String> {
    let table = &profile.metadata_table;
    let failed = match tokio::time::timeout(RECORD_WAIT, dynamo.put_item(table, record)).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer in {} s", RECORD_WAIT.as_secs()),
    };
    Err(format!("the run could not be recorded in {table} in {}: {failed}", dynamo.endpoint()))
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
    let where_ = profile.location();
    let mut prepared = Vec::new();
    for (mapping, plan) in mappings.into_iter().zip(plans) {
        let table = &mapping.table_name;
        let mut info =
            dynamo.describe(table).await.with_context(|| format!("reading DynamoDB table {table} in {where_}"))?;
        // A table left deleting or creating by an interrupted run: let it finish first.
        match info.as_ref().map(|i| i.status.as_str()) {
            Some("DELETING") => {
                dynamo.wait(table, true, TABLE_WAIT).await?;
                info = None;
            }
            Some("CREATING" | "UPDATING") => dynamo.wait(table, false, TABLE_WAIT).await?,
            _ => {}
        }
        if let Some(mismatch) = info.as_ref().and_then(|i| key_mismatch(&i.key_schema, mapping, &plan)) {
            if !options.clean {
                bail!("DynamoDB table {table} {mismatch}; run with --clean to recreate the table");
            }
        }
        if let Some(missing) = info.as_ref().map(|i| missing_indexes(i, &plan)).filter(|m| !m.is_empty()) {
            if !options.clean {
                let message = missing_indexes_message(&missing, profile, mapping);
                run.printer.note(format!("{table} {message} (the items are written all the same)"));
            }
        }
        let item_count = info.as_ref().map_or(0, |i| i.item_count);
        let indexes = match &info {
            Some(info) if !options.clean => info.indexes.clone(),
            _ => plan.schema.indexes.clone(),
        };
        prepared.push(Prepared { mapping, plan, exists: info.is_some(), item_count, indexes });
    }

    sync_tables(run, &mut prepared, done).await
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
    let Some(filter) = run.params.filter(p.mapping, &p.plan.param_types) else { return Ok(()) };
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
    if options.clean && profile.protected && run.mode == Mode::Real {
        let existing: Vec<&TableMapping> = prepared.iter().filter(|p| p.exists).map(|p| p.mapping).collect();
        if !existing.is_empty() {
            let path = backup::default_path(profile);
            printer.note(format!("{} is protected: backing up {} tables before --clean", profile.env, existing.len()));
            let manifest = backup::backup(&**dynamo, profile, &existing, &path, printer)
                .await
                .context("taking the backup before --clean; nothing was deleted")?;
            let items: u64 = manifest.tables.iter().map(|t| t.items).sum();
            printer.note(format!("backup: {} ({items} items)", path.display()));
            done.backup = Some(path.display().to_string());
        }
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
            dynamo.make_table(table, &p.plan.schema).await.with_context(|| format!("creating {table}"))?;
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
                let filter = run.params.filter(p.mapping, &p.plan.param_types);
                let scope = (p.mapping.delete_missing, filter);
                let footprints = (run.mode == Mode::Rehearsal).then(|| p.indexes.clone());
                scan::start(dynamo.clone(), table, key_names, scope, footprints, p.item_count, profile)
            })
        })
        .collect();
    for (at, (p, scan)) in prepared.iter().zip(scans).enumerate() {
        let table = &p.mapping.table_name;
        let context = || format!("syncing table {table}");
        let ended = match run.stop.requested() {
            Some(signal) => Err(Interrupted(signal).into()),
            None => sync_table(run, p, scan).await.with_context(context).map(|(report, failure)| {
                done.tables.push(report);
                failure.map_or(Ok(()), |e| Err(e.context(context())))
            }),
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

/// `sync.on_reject = "fail"`: reads every table's source once, building items and checking keys,
/// without writing. Returns each table's rejects.
async fn check_source(
    source: &dyn Source,
    params: &Params,
    mappings: &[&TableMapping],
    plans: &[TablePlan],
) -> Result<Vec<(String, Vec<Reject>)>> {
    let mut out = Vec::new();
    for (mapping, plan) in mappings.iter().zip(plans) {
        let mut keys = std::collections::HashSet::new();
        let mut rejected = Vec::new();
        for (entity, entity_plan) in mapping.entities.iter().zip(&plan.entities) {
            let mut rows = open_rows(source, params, entity).await?;
            while let Some(row) = rows.next().await {
                match entity_plan.build(&row?) {
                    Ok(built) if !keys.insert(built.key) => rejected.push(Reject {
                        key: item::describe_key(&built.item, &plan.key_names()),
                        reason: DUPLICATE.into(),
                    }),
                    Ok(_) => {}
                    Err(reject) => rejected.push(reject),
                }
            }
        }
        out.push((mapping.table_name.clone(), rejected));
    }
    Ok(out)
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

/// A query's rows, one after another.
pub use source::Rows;

/// Runs an entity's query with its parameters.
pub async fn open_rows<'s>(source: &'s dyn Source, params: &Params, entity: &'s Entity) -> Result<Rows<'s>> {
    Ok(source.rows(&entity.query, params.for_entity(entity), query_context(entity)).await?)
}

/// Added to the reason of a rejected row whose key names a stored item: the item stays as it was.
const KEPT: &str = "; kept the stored item, which is now stale";

/// Also when the other row came from another entity of the table: the table is one key space.
const DUPLICATE: &str = "another source row of the table has the same key; only the first was kept";

/// Writes the rows that were not written, one JSON object per line: table, kind, key, reason.
fn write_rejects<'a>(path: &Path, lists: impl IntoIterator<Item = (&'a str, &'a str, &'a [Reject])>) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = create_private(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for (table, kind, list) in lists {
        for r in list {
            let line = serde_json::json!({ "table": table, "kind": kind, "key": r.key, "reason": r.reason });
            writeln!(out, "{line}").with_context(|| format!("writing {}", path.display()))?;
        }
    }
    out.flush().with_context(|| format!("writing {}", path.display()))
}

/// Creates (or truncates) a file that only its owner may read and write (0600): a rejects file
/// holds the keys of source rows. A file that already exists keeps its mode.
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

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
}

/// The counts of one table's sync, and the hand-over of changed items to the writer.
struct Tally<'a> {
    created: u64,
    updated: u64,
    unchanged: u64,
    changed_units: u64,
    unchanged_units: u64,
    rejected: Vec<Reject>,
    /// The rejected rows whose key could be built: their place in `rejected`, and the key.
    rejected_keys: Vec<(usize, Digest)>,
    /// The place in `rejected` of the rows whose key could not be built.
    keyless: Vec<usize>,
    /// How the query could leave those rows out, from what is wrong with their keys.
    leave_out: diff::LeaveOut,
    /// Per entity, for tables with several; empty otherwise.
    entities: Vec<EntityReport>,
    key_names: Vec<&'a str>,
    /// In a dry run, the footprint of each stored item not yet judged, and the table's indexes:
    /// a write is priced as DynamoDB bills it, against the item it replaces.
    footprints: Option<(HashMap<Digest, Footprint>, &'a [IndexSchema])>,
    writer: Option<mpsc::Sender<Pending>>,
    bar: indicatif::ProgressBar,
}

impl Tally<'_> {
    fn reject(&mut self, entity: usize, reject: Reject, key: Result<Digest, KeyFlaw>) {
        if let Some(e) = self.entities.get_mut(entity) {
            e.rejected += 1;
        }
        match key {
            Ok(key) => self.rejected_keys.push((self.rejected.len(), key)),
            Err(flaw) => {
                self.keyless.push(self.rejected.len());
                self.leave_out.add(&flaw, &reject.key);
            }
        }
        self.rejected.push(reject);
    }

    async fn take(&mut self, verdict: Verdict, built: Built) {
        let units = match (&mut self.footprints, verdict) {
            (Some((old, indexes)), Verdict::Create | Verdict::Update) => {
                let new = Footprint::of(&built.item, &self.key_names, indexes);
                cost::put_units(old.remove(&built.key).as_ref(), &new)
            }
            (Some((old, _)), Verdict::Skip) => {
                old.remove(&built.key);
                built.units
            }
            _ => built.units,
        };
        if let Some(e) = self.entities.get_mut(built.entity) {
            match verdict {
                Verdict::Skip => e.unchanged += 1,
                Verdict::Duplicate => e.rejected += 1,
                Verdict::Create => {
                    (e.created, e.estimated_write_units) = (e.created + 1, e.estimated_write_units + units)
                }
                Verdict::Update => {
                    (e.updated, e.estimated_write_units) = (e.updated + 1, e.estimated_write_units + units)
                }
            }
        }
        match verdict {
            Verdict::Skip => {
                self.unchanged += 1;
                self.unchanged_units += units;
                return;
            }
            Verdict::Duplicate => {
                let key = item::describe_key(&built.item, &self.key_names);
                self.rejected.push(Reject { key, reason: DUPLICATE.into() });
                return;
            }
            Verdict::Create => self.created += 1,
            Verdict::Update => self.updated += 1,
        }
        self.changed_units += units;
        if let Some(tx) = &self.writer {
            self.bar.inc_length(1);
            // A send fails only if the writer ended early; its outcome reports why.
            let _ = tx.send(Pending { key: built.key, request: Request::Put(built.item), units }).await;
        }
    }
}

/// The next page of a running Scan; never, when there is none.
async fn next_page(feed: &mut Option<Feed>) -> Option<Page> {
    match feed {
        Some(feed) => feed.pages.recv().await,
        None => std::future::pending().await,
    }
}

/// One table's sync. A failure part-way (the source, the Scan, the lost lease) comes back beside the
/// report of what was done before it, so that the run still reports and records it.
async fn sync_table(
    run: &Run<'_>,
    p: &Prepared<'_>,
    mut feed: Option<Feed>,
) -> Result<(TableReport, Option<anyhow::Error>)> {
    let table = &p.mapping.table_name;

    let bar = run.printer.writes(table.clone());
    let progress = bar.clone();
    let (tx, writer_task) = start_writer(run, p, move |n| progress.inc(n));
    let mut tally = Tally {
        created: 0,
        updated: 0,
        unchanged: 0,
        changed_units: 0,
        unchanged_units: 0,
        rejected: Vec::new(),
        rejected_keys: Vec::new(),
        keyless: Vec::new(),
        leave_out: Default::default(),
        entities: match p.mapping.is_multi() {
            true => p.mapping.entities.iter().map(|e| EntityReport::named(&e.name)).collect(),
            false => Vec::new(),
        },
        key_names: p.plan.key_names(),
        footprints: (run.mode == Mode::Rehearsal).then(|| (HashMap::new(), p.indexes.as_slice())),
        writer: Some(tx),
        bar: bar.clone(),
    };

    // The source is read while the Scan runs: rows whose key the Scan has returned are judged at
    // once, the others wait in the classifier (see classify.rs).
    let expected = feed.as_ref().map_or(0, |f| f.expected);
    let index = Index::with_capacity((expected + expected / 8) as usize);
    let mut classifier = Classifier::new(index, feed.is_none(), PARK_BUDGET);
    let scan_bar = feed.as_ref().map(|_| run.printer.counter(format!("{table}: reading target hashes")));
    let mut scan_cost = ScanCost::default();
    // Target items found, and (for tables that delete orphans) their keys.
    let mut scanned = 0u64;
    let mut keys: HashMap<Digest, Item> = HashMap::new();
    // The entities' queries are read one after the other into the same diff: the table is one
    // key space, whichever query an item comes from.
    let entities = &p.mapping.entities;
    let mut current = 0;
    let mut stopped: Option<&str> = None;
    // What ended the table early (the source, the Scan, the lease): the writes already made are
    // still reported, and nothing is deleted.
    let mut failure: Option<anyhow::Error> = None;
    // Opening a query may wait long for its first row: a signal or a lost lease ends the wait.
    let mut rows = match open_or_halt(run, &entities[0]).await {
        Ok(rows) => rows,
        Err(halt) => {
            halt.into_state(&mut stopped, &mut failure);
            Box::pin(futures::stream::empty())
        }
    };
    let mut source_done = false;
    while stopped.is_none() && failure.is_none() {
        tokio::select! {
            reason = run.fence.lost(), if !source_done || feed.is_some() => {
                failure = Some(lock::LeaseLost(reason).into());
                break;
            }
            // Enabled only while there is something to read, so that `else` still ends the loop.
            signal = run.stop.wait(), if !source_done || feed.is_some() => {
                stopped = Some(signal);
                break;
            }
            page = next_page(&mut feed), if feed.is_some() => match page {
                Some(page) => {
                    lock::beat();
                    if let Some(bar) = &scan_bar {
                        bar.inc(page.len() as u64);
                    }
                    scanned += page.len() as u64;
                    for seen in page {
                        if let Some(key) = seen.item_key {
                            keys.insert(seen.key, key);
                        }
                        if let (Some(old), Some((footprints, _))) = (seen.old, &mut tally.footprints) {
                            footprints.insert(seen.key, old);
                        }
                        if let Some((verdict, built)) = classifier.scanned(seen.key, seen.stored) {
                            tally.take(verdict, built).await;
                        }
                    }
                }
                None => {
                    let done = feed.take().expect("a running scan").done;
                    let scanned = match done.await.context("scan task panicked")? {
                        // DynamoDB refuses the Scan's filter: the mapping's scope, a profile error.
                        Err(TargetError::Invalid(refusal)) if p.mapping.scope.is_some() => {
                            Err(scope_refused(p.mapping, &refusal).into())
                        }
                        other => other.with_context(|| format!("scanning {table}")),
                    };
                    match scanned {
                        Ok(cost) => scan_cost = cost,
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    if let Some(bar) = &scan_bar {
                        bar.finish_and_clear();
                    }
                    for (verdict, built) in classifier.scan_finished() {
                        tally.take(verdict, built).await;
                    }
                }
            },
            row = rows.next(), if !source_done && classifier.can_accept() => match row {
                Some(row) => {
                    let row = match row {
                        Ok(row) => row,
                        Err(e) => {
                            failure = Some(e.into());
                            break;
                        }
                    };
                    lock::beat();
                    let raw = row;
                    match p.plan.entities[current].build(&raw) {
                        Ok(mut built) => {
                            built.entity = current;
                            if let Some((verdict, built)) = classifier.offer(built) {
                                tally.take(verdict, built).await;
                            }
                        }
                        Err(reject) => {
                            // A row rejected for a value other than its key still names its
                            // stored item, which stays (stale) instead of becoming an orphan.
                            let key = p.plan.entities[current].key_digest(&raw);
                            if let Ok(key) = &key {
                                classifier.rejected(*key);
                            }
                            tally.reject(current, reject, key);
                        }
                    }
                }
                None if current + 1 < entities.len() => {
                    current += 1;
                    match open_or_halt(run, &entities[current]).await {
                        Ok(next) => rows = next,
                        Err(halt) => {
                            halt.into_state(&mut stopped, &mut failure);
                            break;
                        }
                    }
                }
                None => source_done = true,
            },
            else => break,
        }
    }
    // A stopped table's query may still be running: dropping its rows cancels it now, not when the
    // run ends.
    drop(rows);

    if let Some(signal) = stopped {
        run.printer.note(format!(
            "{signal}: stopping {table}: no more rows are read; the batches already sent get {} s to finish \
             (a second signal exits at once)",
            DRAIN.as_secs()
        ));
    }
    drop(tally.writer.take());
    let mut stale = std::collections::HashSet::new();
    for (at, key) in &tally.rejected_keys {
        if classifier.stale(key) {
            stale.insert(*key);
            tally.rejected[*at].reason.push_str(KEPT);
        }
    }
    let mut outcome = writer_task.await.context("writer task panicked")?;
    bar.finish_and_clear();
    // Created and updated count what DynamoDB confirmed: an item not written is taken back from
    // the count it was in (a key the Scan found was an update).
    for key in outcome.failed_keys.iter().flatten() {
        match classifier.in_target(key) {
            true => tally.updated = tally.updated.saturating_sub(1),
            false => tally.created = tally.created.saturating_sub(1),
        }
    }

    // Orphans: deleted only when the mapping asks and the guard allows, after every write. A
    // parameterised query without a scope returns part of the table, so the items it did not
    // return are not orphans (profile validation makes sure such a table does not delete).
    // A stopped run has not read the whole source: what it did not read is not missing.
    let stopped = stopped.or(run.stop.requested());
    let judged = (!p.mapping.takes_params() || p.mapping.scope.is_some()) && stopped.is_none() && failure.is_none();
    let orphans = if judged { classifier.unseen() as u64 } else { 0 };
    let mut deletes = Deletes::default();
    // The puts' units, before any delete's: a full rewrite (a clean load) deletes nothing.
    let put_units = match run.mode {
        Mode::Real => outcome.consumed_units,
        Mode::Rehearsal => tally.changed_units as f64,
    };
    // A dry run's deletes, priced as DynamoDB bills them (the item and its index entries).
    let mut delete_units = 0;
    if p.mapping.delete_missing && orphans > 0 {
        let first_keyless = tally.keyless.first().map_or(String::new(), |&at| tally.rejected[at].key.clone());
        let leave_out = &tally.leave_out;
        let guard = diff::keyless_guard(orphans, tally.keyless.len(), &first_keyless, leave_out).and_then(|()| {
            diff::delete_guard(orphans, scanned, run.profile.sync.max_delete_fraction, run.options.allow_mass_delete)
        });
        match guard {
            Err(reason) => deletes.refused = Some(reason),
            Ok(()) => {
                let doomed: Vec<(Digest, Item)> =
                    classifier.unseen_keys().filter_map(|d| keys.remove(d).map(|k| (*d, k))).collect();
                let names = p.plan.key_names();
                deletes.keys = doomed.iter().map(|(_, k)| item::describe_key(k, &names)).collect();
                // Priced as DynamoDB bills them (the item and its index entries), for a rehearsal's
                // figures: its target bills nothing.
                let old = tally.footprints.as_ref().map(|(old, _)| old);
                delete_units = doomed
                    .iter()
                    .map(|(d, _)| old.and_then(|o| o.get(d)).map_or(1, Footprint::delete_units))
                    .sum::<u64>();
                {
                    let done = delete(run, p, doomed).await?;
                    deletes.count = done.written;
                    if !done.failed.is_empty() {
                        // The report lists only what was deleted; the rest are with the rows not
                        // written (no guard refused them: they are not refused deletes).
                        let missed: std::collections::HashSet<&str> =
                            done.failed.iter().map(|r| r.key.as_str()).collect();
                        deletes.keys.retain(|k| !missed.contains(k.as_str()));
                    }
                    outcome.consumed_units += done.consumed_units;
                    outcome.retries += done.retries;
                    outcome.throttled += done.throttled;
                    outcome.failed.extend(done.failed);
                    outcome.failed_keys.extend(done.failed_keys);
                    outcome.unknown += done.unknown;
                }
            }
        }
    }
    let write_units = match run.mode {
        Mode::Real => outcome.consumed_units,
        Mode::Rehearsal => (tally.changed_units + delete_units) as f64,
    };
    // A full rewrite writes the changed items (as billed, and those not written as estimated) and
    // the unchanged ones (estimated), whatever happened to the writes, and deletes nothing.
    let potential_write_units = put_units + outcome.failed_units as f64 + tally.unchanged_units as f64;
    let report = TableReport {
        table: table.clone(),
        table_created: run.options.clean || !p.exists,
        created: tally.created,
        updated: tally.updated,
        unchanged: tally.unchanged,
        stale: stale.len() as u64,
        orphans,
        orphans_counted: judged,
        delete_missing: p.mapping.delete_missing,
        deleted: deletes.count,
        deleted_keys: deletes.keys,
        deletes_refused: deletes.refused,
        write_units,
        read_units: scan_cost.read_units,
        potential_write_units,
        retries: scan_cost.retries + outcome.retries,
        throttled: outcome.throttled,
        cost: Savings::new(&run.profile.prices, write_units, scan_cost.read_units, potential_write_units),
        rejected: tally.rejected,
        entities: tally.entities,
        failed: outcome.failed,
        unknown: outcome.unknown,
    };
    Ok((report, failure))
}

#[derive(Default)]
struct Deletes {
    count: u64,
    keys: Vec<String>,
    refused: Option<String>,
}

/// A writer task for one table with the run's settings and shared cap; requests go in through the sender.
fn start_writer(
    run: &Run<'_>,
    p: &Prepared<'_>,
    on_written: impl Fn(u64) + Send + 'static,
) -> (mpsc::Sender<Pending>, tokio::task::JoinHandle<WriteOutcome>) {
    let key_names = p.plan.key_names().into_iter().map(String::from).collect();
    guard::spawn_writer(
        run.dynamo.clone(),
        (&run.fence, &run.stop),
        (&run.profile.sync, run.cap.clone()),
        (&p.mapping.table_name, key_names),
        on_written,
    )
}

/// Deletes target items by key, through the same writer (batches, pace, retries) as the puts.
async fn delete(run: &Run<'_>, p: &Prepared<'_>, doomed: Vec<(Digest, Item)>) -> Result<WriteOutcome> {
    let (tx, task) = start_writer(run, p, |_| {});
    let table = &p.mapping.table_name;
    let deleting = doing(run.mode, ("deleting", "delete"));
    run.printer.note(format!("{table}: {deleting} {} items that have no source row", doomed.len()));
    for (key, item) in doomed {
        // A delete is billed by the size of the item removed; one unit is the floor.
        if tx.send(Pending { key, request: Request::Delete(item), units: 1 }).await.is_err() {
            break;
        }
    }
    drop(tx);
    task.await.context("writer task panicked")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;

    fn profile_error(message: &str) -> anyhow::Error {
        ProfileError::new(Path::new("m.toml"), message).into()
    }

    #[test]
    fn every_plan_problem_is_listed_once_and_the_worst_exit_code_wins() {
        // One problem is itself: its message and exit code are unchanged.
        let one = PlanErrors::all(vec![profile_error("table \"a\": column \"x\" has type money")]);
        assert_eq!(format!("{one:#}"), "m.toml: table \"a\": column \"x\" has type money");
        assert_eq!(crate::exit_for(&one), Exit::Usage);

        // Several: each on its own lines (its own lines indented under it), nested lists flattened.
        let query: anyhow::Error =
            SourceError::Query { context: "m.toml: table \"b\": query".into(), cause: "syntax error".into() }.into();
        let inner =
            PlanErrors::all(vec![profile_error("table \"a\": 2 columns:\n  column \"x\"\n  column \"y\""), query]);
        assert_eq!(crate::exit_for(&inner), Exit::Usage, "a profile error's code, worse than a query's");
        let all = PlanErrors::all(vec![inner, profile_error("table \"c\": column \"z\" has type interval")]);
        assert_eq!(
            format!("{all:#}"),
            "3 problems with the mappings' queries:\n  m.toml: table \"a\": 2 columns:\n      column \"x\"\n      \
             column \"y\"\n  m.toml: table \"b\": query: syntax error\n  m.toml: table \"c\": column \"z\" has type \
             interval"
        );
        let queries: Vec<anyhow::Error> =
            (0..2).map(|_| SourceError::Query { context: "q".into(), cause: "no such column".into() }.into()).collect();
        assert_eq!(crate::exit_for(&PlanErrors::all(queries)), Exit::Error);
    }

    #[test]
    fn checking_goes_on_past_a_refused_query_but_not_past_a_lost_connection() {
        assert!(PlanErrors::local(&profile_error("x")));
        assert!(PlanErrors::local(&SourceError::Query { context: "q".into(), cause: "c".into() }.into()));
        let lost: anyhow::Error = SourceError::Connect { target: "t".into(), cause: "c".into() }.into();
        assert!(!PlanErrors::local(&lost));
    }
}
