//! One function per command: load the profile, call the engine, hand the result to the printer,
//! and say which exit code it deserves.

pub mod check;
pub mod docs;
pub mod status;
pub mod tables;

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::cli::{
    ApplyArgs, BackupArgs, Cli, Command, HistoryArgs, IamArgs, PlanArgs, ReportArgs, RestoreArgs, StatusArgs, SyncArgs,
    TablesCommand, VerifyArgs,
};
use crate::engine::preflight;
use crate::engine::stop::{Interrupted, Stop};
use crate::exit::{Exit, UsageError};
use crate::printer::Printer;
use crate::profile::{self, ProfileError};
use crate::pure::report::{OperationRun, Outcome};
use crate::source;
use crate::target::dryrun::Mode;
use crate::{
    engine::backup, engine::lock, engine::repair, engine::sync, engine::verify, pure::iam, pure::runs, target::dynamo,
};

/// Loads a profile for a command: validated, with its region settled (the profile's, else AWS's
/// chain: `dynamo::settle_region`), so that nothing downstream sees a profile without one.
async fn load(dir: &Path, env: &str) -> Result<profile::Profile, ProfileError> {
    let mut profile = profile::load(dir, env)?;
    dynamo::settle_region(&mut profile).await?;
    Ok(profile)
}

/// Runs a parsed command line as the run `run_id` (its leases carry it; the caller logs in its
/// span); the caller turns the result into the process's exit code (and prints an error on
/// stderr). With `--json`, an error the command did not report itself is also printed on stdout,
/// as JSON.
pub async fn run(cli: Cli, run_id: String) -> Result<Exit> {
    crate::engine::run_id::scope(run_id, command(cli)).await
}

async fn command(cli: Cli) -> Result<Exit> {
    let printer = Printer::new(cli.json, cli.quiet, cli.log_format == crate::cli::LogFormat::Json);
    // Listening from the start, for every command: a signal never kills one (exit 143, nothing
    // said). What holds nothing is cut at once; what holds something ends itself (`Stop::hold`).
    let stop = Stop::on_signals();
    let name = name(&cli.command);
    // As the run's leases name it, for `status`.
    crate::engine::progress::set_command(match &cli.command {
        Command::Verify(args) if args.repair => "verify --repair",
        _ => name,
    });
    let outcome = tokio::select! {
        outcome = dispatch(cli, &printer, &stop) => outcome,
        cut = stop.cut(name) => Err(cut),
    };
    if let Err(error) = &outcome {
        if !crate::is_broken_pipe(error) {
            printer.error(error, crate::exit_for(error));
        }
    }
    outcome
}

/// The command's name, as its messages give it.
fn name(command: &Command) -> &'static str {
    match command {
        Command::Envs => "envs",
        Command::Sync(_) => "sync",
        Command::Plan(_) => "plan",
        Command::Apply(_) => "apply",
        Command::Backup(_) => "backup",
        Command::Restore(_) => "restore",
        Command::Check(_) => "check",
        Command::Tables(TablesCommand::Create(_)) => "tables create",
        Command::Tables(TablesCommand::Drop(_)) => "tables drop",
        Command::Verify(_) => "verify",
        Command::History(_) => "history",
        Command::Status(_) => "status",
        Command::Report(_) => "report",
        Command::IamPolicy(_) => "iam-policy",
        Command::Completions(_) => "completions",
        Command::Man => "man",
    }
}

async fn dispatch(cli: Cli, printer: &Printer, stop: &Stop) -> Result<Exit> {
    let csv = matches!(
        &cli.command,
        Command::History(HistoryArgs { csv: true, .. }) | Command::Report(ReportArgs { csv: true, .. })
    );
    if csv && cli.json {
        return Err(UsageError("--csv and --json: choose one".into()).into());
    }
    let dir = cli.envs_dir.as_path();
    match cli.command {
        Command::Envs => envs(dir, printer),
        Command::Sync(args) => sync(dir, args, printer, stop).await,
        Command::Plan(args) => plan(dir, args, printer, stop).await,
        Command::Apply(args) => apply(dir, args, printer, stop).await,
        Command::Backup(args) => backup(dir, args, printer, stop).await,
        Command::Restore(args) => restore(dir, args, printer, stop).await,
        Command::Check(args) => {
            let profile = load(dir, &args.env).await?;
            let report = check::run(&profile, &args.tables).await?;
            printer.show(&report, check::CheckReport::render)?;
            Ok(report.exit())
        }
        Command::Tables(TablesCommand::Create(args)) => {
            let profile = load(dir, &args.env).await?;
            let mappings = preflight::selected(&profile, &args.tables)?;
            let done = tables::create(&profile, &mappings, printer).await?;
            printer.show(&tables::Done { tables: done }, tables::Done::render)?;
            Ok(Exit::Success)
        }
        Command::Tables(TablesCommand::Drop(args)) => {
            let profile = load(dir, &args.target.env).await?;
            let mappings = preflight::selected(&profile, &args.target.tables)?;
            let names: Vec<&str> = mappings.iter().map(|t| t.table_name.as_str()).collect();
            let action = format!("tables drop deletes {}", names.join(", "));
            // Dropping writes nothing after it: not `confirm_destruction`'s "then writes every item".
            confirm(&profile, &action, "", args.yes, printer)?;
            let done = tables::drop(&profile, &mappings, args.lock_timeout, printer, stop).await?;
            printer.show(&tables::Done { tables: done }, tables::Done::render)?;
            Ok(Exit::Success)
        }
        Command::Verify(args) => verify(dir, args, cli.json, printer, stop).await,
        Command::History(args) => history(dir, args, printer).await,
        Command::Status(StatusArgs { env, watch }) => {
            let profile = load(dir, &env).await?;
            status::run(&profile, watch.map(Duration::from_secs), printer).await
        }
        Command::Report(args) => report(dir, args, printer).await,
        Command::IamPolicy(args) => iam_policy(dir, args, printer).await,
        Command::Completions(args) => {
            printer.raw(&String::from_utf8_lossy(&docs::completions(args.shell)))?;
            Ok(Exit::Success)
        }
        Command::Man => {
            printer.raw(&docs::man_page())?;
            Ok(Exit::Success)
        }
    }
}

/// `verify`, and with `--repair` the repair of what it found: the verify's report is printed
/// before the question (with `--json`, the two reports come as one at the end).
async fn verify(dir: &Path, args: VerifyArgs, json: bool, printer: &Printer, stop: &Stop) -> Result<Exit> {
    let mut profile = load(dir, &args.target.env).await?;
    profile.sync = profile.sync.overridden(None, None, args.max_write_units_per_second)?;
    let depth = match (args.full, args.sample) {
        (true, _) => verify::Depth::Full,
        (false, n) => verify::Depth::Sample(n.unwrap_or(100) as usize),
    };
    if args.references {
        let report = crate::engine::references::check(&profile, &args.target.tables, printer).await?;
        printer.show(&report, crate::engine::references::ReferencesReport::render)?;
        return Ok(if report.dangles() { Exit::Differences } else { Exit::Success });
    }
    let writes = args.repair && !args.dry_run;
    if writes {
        // Refused before anything is read when there will be no way to say yes.
        let names: Vec<String> =
            preflight::selected(&profile, &args.target.tables)?.iter().map(|t| t.table_name.clone()).collect();
        may_confirm(&profile, &format!("verify --repair writes to {}", names.join(", ")), args.yes)?;
        free_to_repair(&profile, &names, &args, printer, stop).await?;
    }
    let scope = verify::Scope { tables: &args.target.tables, depth, params: &args.params };
    let mut verified = verify::run(&profile, scope, printer).await?;
    verified.report.repairing = args.repair;
    let found = if verified.report.differs() { Exit::Differences } else { Exit::Success };
    let planned = repair::planned_action(&verified);
    let Some(planned) = planned.filter(|_| args.repair) else {
        if !args.repair {
            printer.show(&verified.report, verify::VerifyReport::render)?;
            return Ok(found);
        }
        // `--repair` with nothing a repair can do: the JSON says it did not run, and why.
        let reason = if found == Exit::Success {
            "verify found no differences: nothing to repair".to_string()
        } else {
            repair::nothing_to_do(&verified)
        };
        let not_run = repair::NotRepaired {
            verify: &verified.report,
            repair: repair::NotRun { ran: false, reason: reason.clone() },
        };
        printer.show(&not_run, |n| verify::VerifyReport::render(n.verify))?;
        if found != Exit::Success {
            printer.warn(reason);
        }
        return Ok(found);
    };
    if !json {
        printer.show(&verified.report, verify::VerifyReport::render)?;
    }
    if let (Some(max), true) = (args.max_cost, writes) {
        // The repair's writes are known once its source rows are read: a dry run of it first.
        let rehearsal = repair::Options {
            mode: Mode::Rehearsal,
            allow_mass_delete: args.allow_mass_delete,
            force_unlock: false,
            lock_timeout: None,
        };
        let (estimated, error) = repair::run(&profile, &verified, &rehearsal, printer, stop).await?;
        if let Some(error) = error {
            return Err(error.context("estimating the repair's cost (--max-cost); nothing was written"));
        }
        let estimate = profile.prices.cost(estimated.write_units, 0.0);
        if estimate > max {
            let parts = format!("{:.1} write units, estimated from the items' sizes", estimated.write_units);
            let what = format!("verify --repair {}", profile.env);
            return Err(crate::exit::OverBudget::of(&what, estimate, &parts, max).into());
        }
    }
    if writes {
        confirm(&profile, &format!("verify --repair {planned}"), "", args.yes, printer)?;
    }
    // Held from here: the repair stops itself on a signal. Before, a signal cuts the command at
    // once (it has written nothing).
    let _held = stop.hold();
    let options = repair::Options {
        mode: Mode::of(args.dry_run),
        allow_mass_delete: args.allow_mass_delete,
        force_unlock: args.force_unlock,
        lock_timeout: args.lock_timeout,
    };
    let (report, error) = tokio::select! {
        repaired = repair::run(&profile, &verified, &options, printer, stop) => repaired?,
        signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => {
            return Err(crate::engine::stop::Interrupted(signal).into())
        }
    };
    // The report comes first, whatever ended the repair: it says what was written.
    if json {
        printer.show(&repair::Repaired { verify: &verified.report, repair: &report }, |_| String::new())?;
    } else {
        printer.show(&report, repair::RepairReport::render)?;
    }
    if let Some(error) = error {
        return Err(error);
    }
    // The code the report and the run record carry (`RepairReport::settle_exit`).
    let left = report.outcome.exit_code == Exit::Differences as u8;
    Ok(if left { found.max(Exit::Differences) } else { Exit::Success })
}

/// Refuses a repair (exit 4) before it reads anything while another run holds the tables' lock
/// (waiting for it with `--lock-timeout`): a table that a `sync --clean` is recreating reads as
/// missing or half written, and the verify's error would hide the lock behind it. The lock is
/// taken and released at once; the repair takes it again for its writes.
async fn free_to_repair(
    profile: &profile::Profile,
    names: &[String],
    args: &VerifyArgs,
    printer: &Printer,
    stop: &Stop,
) -> Result<()> {
    let _held = stop.hold();
    let dynamo = dynamo::connect(&profile.target).await;
    let waiting = lock::take(&dynamo, profile, names, args.force_unlock, args.lock_timeout, |e| {
        printer.waiting_for_lock(args.lock_timeout, e)
    });
    let taken = tokio::select! {
        taken = waiting => taken,
        // Only waiting (--lock-timeout) is cut short: an acquisition in flight is given time to finish.
        signal = stop.expired(Duration::from_secs(5)) => {
            let interrupted = anyhow::Error::new(crate::engine::stop::Signalled(signal));
            return Err(interrupted.context(lock::StoppedWaiting(names.join(", "))));
        }
    };
    let lock = taken.map_err(|e| {
        if e.chain().any(|c| c.is::<lock::Locked>()) {
            e.context(format!(
                "not repairing {} while another run writes to it; nothing \
                 was read or written",
                profile.env
            ))
        } else {
            e
        }
    })?;
    lock.release().await.context("releasing the run lock taken to check it before the repair")
}

fn envs(dir: &Path, printer: &Printer) -> Result<Exit> {
    #[derive(serde::Serialize)]
    struct Env {
        name: String,
        description: String,
        valid: bool,
    }
    #[derive(serde::Serialize)]
    struct Envs {
        environments: Vec<Env>,
    }
    let list: Vec<Env> = profile::available(dir)?
        .into_iter()
        .map(|name| match profile::load(dir, &name) {
            Ok(p) => Env { description: p.description.unwrap_or_default(), name, valid: true },
            Err(e) => Env { description: format!("(invalid: {e})"), name, valid: false },
        })
        .collect();
    let envs = Envs { environments: list };
    printer.show(&envs, |envs: &Envs| {
        envs.environments.iter().map(|e| format!("{:<12} {}\n", e.name, e.description)).collect()
    })?;
    Ok(Exit::Success)
}

/// The run records of an environment since `since` (all when `None`), oldest first.
async fn records(profile: &profile::Profile, since: Option<&str>) -> Result<Vec<runs::RunRecord>> {
    let dynamo = dynamo::connect(&profile.target).await;
    let table = &profile.metadata_table;
    let context = || format!("reading the run records in {table} in {}", profile.location());
    if dynamo.describe(table).await.with_context(context)?.is_none() {
        return Ok(Vec::new());
    }
    let items = dynamo.query_from(table, ("pk", "RUN"), ("sk", since.unwrap_or(""))).await.with_context(context)?;
    tracing::info!(table = %table, since = since.unwrap_or("the start"), records = items.len(), "read run records");
    // The metadata table may be shared by environments with the same prefix.
    let ours = items.iter().filter(|i| i.get("environment").and_then(|v| v.as_s().ok()) == Some(&profile.env));
    // The shards of a sharded run are one run here, summed.
    Ok(runs::group(ours.filter_map(runs::RunRecord::from_item).collect()))
}

fn since(text: &str) -> Result<String> {
    runs::since(text, chrono::Utc::now()).map_err(|e| UsageError(e).into())
}

async fn history(dir: &Path, args: HistoryArgs, printer: &Printer) -> Result<Exit> {
    let profile = load(dir, &args.env).await?;
    let since = args.since.as_deref().map(since).transpose()?;
    let mut runs = records(&profile, since.as_deref()).await?;
    runs.reverse();
    runs.truncate(args.limit as usize);
    if args.csv {
        printer.raw(&runs::history_csv(&runs)?)?;
    } else {
        let history = runs::History { environment: profile.env.clone(), runs };
        printer.show(&history, |h: &runs::History| runs::render_history(&h.environment, &h.runs))?;
    }
    Ok(Exit::Success)
}

async fn report(dir: &Path, args: ReportArgs, printer: &Printer) -> Result<Exit> {
    let profile = load(dir, &args.env).await?;
    let since = if args.since == "all" { None } else { Some(since(&args.since)?) };
    let runs = records(&profile, since.as_deref()).await?;
    let summary = runs::summarize(&profile.env, since, &runs);
    if args.csv {
        printer.raw(&runs::summary_csv(&summary)?)?;
    } else {
        printer.show(&summary, runs::render_summary)?;
    }
    Ok(Exit::Success)
}

async fn iam_policy(dir: &Path, args: IamArgs, printer: &Printer) -> Result<Exit> {
    let profile = load(dir, &args.env).await?;
    if profile.target.account_id.is_none() {
        printer.note(format!(
            "{}: target.account_id is not set, so the ARNs match these table names in any account",
            profile.path.display()
        ));
    }
    let policy = iam::policy(&profile, &args.uses);
    printer.raw(&format!("{}\n", serde_json::to_string_pretty(&policy)?))?;
    Ok(Exit::Success)
}

async fn backup(envs_dir: &Path, args: BackupArgs, printer: &Printer, stop: &Stop) -> Result<Exit> {
    // The backup bounds its own phases on a signal, and removes its partial files.
    let _held = stop.hold();
    let profile = load(envs_dir, &args.env).await?;
    let mappings = preflight::selected(&profile, &args.tables)?;
    let path = args.output.unwrap_or_else(|| backup::default_path(&profile));
    let dynamo = dynamo::connect(&profile.target).await;
    // A backup read while a sync or --clean writes the tables would hold a fraction of their items:
    // it holds the run lock as a writing run does.
    let tables: Vec<String> = mappings.iter().map(|m| m.table_name.clone()).collect();
    let taken = tokio::select! {
        taken = lock::take(&dynamo, &profile, &tables, args.force_unlock, args.lock_timeout, |e| printer.waiting_for_lock(args.lock_timeout, e)) => taken,
        // Only waiting (--lock-timeout) is cut short: an acquisition in flight is given time to finish.
        signal = stop.expired(Duration::from_secs(5)) => {
            return Err(anyhow::Error::new(crate::engine::stop::Signalled(signal)).context("no backup was written"))
        }
    };
    let lock = taken.map_err(|e| {
        if e.chain().any(|c| c.is::<lock::Locked>()) {
            let env = &profile.env;
            e.context(format!("not backing up {env} while another run writes to it"))
        } else {
            e
        }
    })?;
    // Dropping the backup's future on a signal or a lost lease drops its temporary files with it, so
    // nothing partial is left.
    let manifest = tokio::select! {
        manifest = backup::backup(&*dynamo, &profile, &mappings, &path, printer) => manifest,
        // A backup writes nothing to DynamoDB: only its reads could have overlapped another run's writes.
        reason = lock.lost() => Err(anyhow::anyhow!(
            "the run lock was lost while the tables were read: {}; no backup was written, since a table read while \
             another run writes to it may be read in part: run the backup again",
            reason
        )),
        signal = stop.wait() => Err(anyhow::Error::new(crate::engine::stop::Signalled(signal)).context(format!(
            "no backup was written ({} was not created); run the backup again",
            path.display()
        ))),
    };
    let released = lock.release().await;
    let manifest = manifest?;
    if let Err(e) = released {
        // The archive is complete; a lease left behind expires by itself.
        printer
            .warn(format!("the backup is complete, but the run lock was not released ({e:#}); it expires by itself"));
    }
    let (value, text) = backup::written(&path, &manifest);
    printer.show(&value, |_| text)?;
    Ok(Exit::Success)
}

async fn restore(envs_dir: &Path, args: RestoreArgs, printer: &Printer, stop: &Stop) -> Result<Exit> {
    let manifest = backup::verify(&args.file, args.allow_unchecked_manifest)?;
    if manifest.checksum.is_none() {
        printer.warn(format!(
            "{}: its manifest has no checksum (format {}), so its counts and key schemas are taken as they are",
            args.file.display(),
            manifest.format
        ));
    }
    let env = args.env.clone().unwrap_or_else(|| manifest.environment.clone());
    let profile = load(envs_dir, &env).await?;
    if let Some(unknown) = args.tables.iter().find(|t| !manifest.tables.iter().any(|e| &e.name == *t)) {
        let held: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
        bail!("{}: no table \"{unknown}\" in this backup (it holds: {})", args.file.display(), held.join(", "));
    }
    // Each table of the backup goes to the table the profile gives its mapping.
    let mut targets = Vec::new();
    let mut pairs = Vec::new();
    for entry in manifest.tables.iter().filter(|e| args.tables.is_empty() || args.tables.contains(&e.name)) {
        let mapping = profile.tables.iter().find(|t| t.name == entry.name).ok_or_else(|| {
            let defined: String = manifest
                .tables
                .iter()
                .filter(|e| profile.tables.iter().any(|t| t.name == e.name))
                .map(|e| format!(" --table {}", e.name))
                .collect();
            let fix = if defined.is_empty() {
                "none of its tables is defined there, so restore it into another environment (--env)".to_string()
            } else {
                format!(
                    "restore only the tables they define with{defined}, or restore into another environment (--env)"
                )
            };
            ProfileError::new(
                &profile.path,
                format!("the backup holds table \"{}\", which the mappings do not define; {fix}", entry.name),
            )
        })?;
        targets.push((entry.name.clone(), mapping.table_name.clone()));
        pairs.push((entry, mapping));
    }
    restore_keys(&profile, &args, &pairs, printer).await?;
    let names: Vec<&str> = targets.iter().map(|(_, t)| t.as_str()).collect();
    let action = format!("restore deletes and recreates {}", names.join(", "));
    confirm_destruction(&profile, &action, args.yes, printer)?;
    let dynamo = dynamo::connect(&profile.target).await;
    let tables: Vec<String> = targets.iter().map(|(_, t)| t.clone()).collect();
    // Held from here: the restore stops itself on a signal and records it. Before, a signal (at
    // the confirmation too) ends the command at once: nothing was changed.
    let _held = stop.hold();
    let waiting = lock::take(&dynamo, &profile, &tables, false, args.lock_timeout, |e| {
        printer.waiting_for_lock(args.lock_timeout, e)
    });
    let lock = tokio::select! {
        taken = waiting => taken?,
        // Only waiting (--lock-timeout) is cut short: an acquisition in flight is given time to finish.
        signal = stop.expired(Duration::from_secs(5)) => {
            let interrupted = anyhow::Error::new(crate::engine::stop::Signalled(signal));
            return Err(interrupted.context(lock::StoppedWaiting(tables.join(", "))));
        }
    };
    let started_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let progress = std::sync::Arc::new(backup::Progress::new(&args.file, args.env.as_deref(), &targets));
    let fence = lock.fence();
    let restore = backup::restore(dynamo.clone(), &profile, &manifest, &targets, &progress, (&fence, stop), printer);
    let restored = tokio::select! {
        restored = restore => restored,
        reason = lock.lost() => Err(lock::LeaseLost(reason).into()),
        // The restore stops itself on a signal; this bounds a deletion or creation still waited for.
        signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => Err(Interrupted(signal).into()),
    };
    // Recorded before the lock is released, as a sync's run is, whatever the outcome.
    let unfinished = restored.as_ref().ok().and_then(|r| progress.unfinished_after(r, &profile.env));
    let outcome = match (&restored, &unfinished) {
        (Err(e), _) => Outcome { reason: Some(restore_failure(e, &progress)), ..Outcome::of(Some(e), crate::exit_for) },
        (Ok(_), Some(_)) => Outcome { exit_code: Exit::Differences as u8, ..Outcome::completed() },
        (Ok(_), None) => Outcome::completed(),
    };
    let mut report = progress.report(&manifest, &profile.env, outcome.clone());
    if restored.is_ok() {
        // What the restore says after it finished (it may advise against running it again).
        report.unfinished.clone_from(&unfinished);
    }
    let run = OperationRun {
        environment: profile.env.clone(),
        mode: "restore",
        started_at,
        finished_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        prices: profile.prices.clone(),
        tables: progress.figures(),
        outcome,
    };
    let recorded = sync::record_run(&*dynamo, &profile, run.record()).await;
    let released = lock.release().await;
    // What was done is reported whatever the outcome, every table of the archive with its state.
    printer.show(&report, backup::RestoreReport::render)?;
    if let Err(e) = restored {
        if let Err(message) = recorded {
            printer.warn(message);
        }
        let message = restore_failure(&e, &progress);
        if e.chain().any(|c| c.is::<Interrupted>()) {
            printer.warn(format!("error: {message}"));
            return Ok(Exit::Interrupted);
        }
        if e.chain().any(|c| c.is::<lock::LeaseLost>()) {
            bail!("{message}");
        }
        return Err(e.context(progress.unfinished().unwrap_or_else(|| "nothing was changed".into())));
    }
    released?;
    if let Some(state) = &unfinished {
        printer.warn(state);
    }
    if let Err(message) = recorded {
        bail!("{message}; the restore itself finished (report above)");
    }
    Ok(if unfinished.is_some() { Exit::Differences } else { Exit::Success })
}

/// Refuses (exit 2), before anything changes, a table whose key in the backup is not the key its
/// mapping gives now, unless `--allow-key-change`: restored, it would be a table the next sync
/// refuses. The mapping's key types come from PostgreSQL, its queries prepared as a sync prepares
/// them; when that fails, only the key's attribute names are compared, and a note says so.
async fn restore_keys(
    profile: &profile::Profile,
    args: &RestoreArgs,
    pairs: &[(&backup::TableEntry, &profile::TableMapping)],
    printer: &Printer,
) -> Result<()> {
    let source = match source::connect(profile).await {
        Ok(source) => Some(source),
        Err(e) => {
            printer.warn(format!(
                "the backup's keys are compared with the key attribute names the mappings give, not with their \
                 types, which the source gives: {e:#}"
            ));
            None
        }
    };
    let mut conflicts = Vec::new();
    for (entry, mapping) in pairs {
        let plan = match &source {
            Some(source) => preflight::plan(source.as_ref(), mapping).await.map(Some).unwrap_or_else(|e| {
                let table = &mapping.table_name;
                printer.warn(format!("{table}: the key's types were not compared with the mapping's: {e:#}"));
                None
            }),
            None => None,
        };
        let mismatch = match plan {
            Some(plan) => preflight::key_mismatch(&entry.key_schema, mapping, &plan),
            None => backup::key_names_mismatch(&entry.key_schema, mapping),
        };
        if let Some(mismatch) = mismatch {
            conflicts.push(format!("table \"{}\" ({}) in the backup {mismatch}", entry.name, mapping.table_name));
        }
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    let conflicts = conflicts.join("; ");
    if args.allow_key_change {
        printer.warn(format!(
            "--allow-key-change: restoring with the backup's keys: {conflicts}; a sync refuses such a table until \
             `sync --clean` recreates it with the mapping's key"
        ));
        return Ok(());
    }
    Err(UsageError(format!(
        "{}: {conflicts}; restored, the table would have a key the next sync refuses. Nothing was changed: run \
         again with --allow-key-change to restore the backup's key anyway, or leave the table out (--table)",
        args.file.display()
    ))
    .into())
}

/// `sync`, then its metrics where `--metrics-file`, `--pushgateway` and `--emf` send them, whatever
/// the outcome (a run that failed says so in its metrics, and keeps its last success time).
async fn sync(envs_dir: &Path, args: SyncArgs, printer: &Printer, stop: &Stop) -> Result<Exit> {
    if let Some(refused) = args.refused() {
        return Err(refused.into());
    }
    // The sync stops itself on a signal and records it, then its metrics are delivered (a signal
    // then cuts the delivery short, the exit code staying the run's): held until both are done.
    let _held = stop.hold();
    let outputs = crate::export::Outputs::of(&args.metrics, &args.env)?;
    let started = std::time::Instant::now();
    let (env, dry_run) = (args.env.clone(), args.dry_run);
    let mut report = None;
    let outcome = sync_run(envs_dir, args, printer, stop, &mut report).await;
    if !outputs.is_empty() {
        let code = match &outcome {
            Ok(code) => *code,
            Err(e) if crate::is_broken_pipe(e) => Exit::Success,
            Err(e) => crate::exit_for(e),
        };
        let mut figures = crate::pure::metrics::RunFigures::new(&env, dry_run, report.as_ref(), code as u8);
        figures.duration_seconds = started.elapsed().as_secs_f64();
        figures.finished_at = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        figures.run_id = crate::engine::run_id::current();
        outputs.publish(figures, printer, stop).await;
    }
    outcome
}

/// The sync itself; `kept` receives its report, for the metrics.
async fn sync_run(
    envs_dir: &Path,
    args: SyncArgs,
    printer: &Printer,
    stop: &Stop,
    kept: &mut Option<crate::pure::report::RunReport>,
) -> Result<Exit> {
    let (shard, run_id) = args.sharding.resolve(|name| std::env::var(name).ok())?;
    let mut profile = load(envs_dir, &args.env).await?;
    profile.sync = profile.sync.overridden(args.scan_segments, args.max_in_flight, args.max_write_units_per_second)?;
    if let Some(cap) = profile.sync.max_write_units_per_second.filter(|cap| cap.get() < shard.count()) {
        // Each shard takes its N-th of the cap, at least one unit a second: N of them would exceed it.
        return Err(crate::exit::UsageError(format!(
            "a write cap of {cap} units a second cannot be shared by {} shards (each needs at least 1): raise \
             max_write_units_per_second (or --max-write-units-per-second) to at least {}, or run fewer shards",
            shard.count(),
            shard.count()
        ))
        .into());
    }
    let promotion = matches!(profile.source.kind, profile::SourceKind::DynamoDb(_));
    let mut tables = args.tables;
    if !promotion && (args.limit.is_some() || args.id_map.is_some()) {
        let flag = if args.limit.is_some() { "--limit" } else { "--id-map" };
        return Err(UsageError(format!(
            "{flag} is for promotions from a DynamoDB source ([source] kind = \"dynamodb\"), and {}'s source is {}: \
             leave it out",
            profile.env,
            profile.source.kind.system()
        ))
        .into());
    }
    if let Some(path) = &args.id_map {
        // Known before anything is read or written, not after the run.
        writable(path, "--id-map")?;
    }
    if promotion && args.limit.is_none() && !tables.is_empty() {
        tables = with_referenced(&profile, tables, printer);
    }
    if let (Some(limit), profile::SourceKind::DynamoDb(source)) = (args.limit, &mut profile.source.kind) {
        // The sample's referenced items are written too, so their tables are in the run.
        let roots: Vec<String> = match tables.is_empty() {
            true => profile.tables.iter().map(|t| t.name.clone()).collect(),
            false => tables.clone(),
        };
        tables = referenced_closure(&profile.tables, &roots);
        source.sample = Some(profile::Sample { roots, limit });
    }
    if promotion && !args.dry_run && profile.protected {
        let names = preflight::selected(&profile, &tables)?;
        let names: Vec<&str> = names.iter().map(|t| t.table_name.as_str()).collect();
        let action = format!("promoting data into {}", names.join(", "));
        confirm(&profile, &action, ", after a backup of the tables that exist", args.yes, printer)?;
        // Twice: the environment's name, then the word that says what is about to happen.
        if std::io::stdin().is_terminal() {
            let question = format!(
                "This writes another environment's data into {} ({}), which is protected.",
                profile.env, profile.target.region
            );
            if !printer.confirm(&question, "promote")? {
                return Err(UsageError("not confirmed; nothing was changed".into()).into());
            }
        }
    }
    if args.clean && !args.dry_run {
        let tables = preflight::selected(&profile, &tables)?;
        let names: Vec<&str> = tables.iter().map(|t| t.table_name.as_str()).collect();
        let action = format!("--clean deletes and recreates {}", names.join(", "));
        confirm_destruction(&profile, &action, args.yes, printer)?;
    }
    let (exit_code, max_cost) = (args.exit_code, args.max_cost);
    let options = sync::SyncOptions {
        mode: Mode::of(args.dry_run),
        clean: args.clean,
        tables,
        allow_mass_delete: args.allow_mass_delete,
        force_unlock: args.force_unlock,
        lock_timeout: args.lock_timeout,
        rejects_file: args.rejects_file,
        params: args.params,
        full_scan: args.full_scan,
        shard,
        run_id,
        sampled: args.limit.is_some(),
        id_map: args.id_map,
        capture: None,
    };
    if let (Some(max), Mode::Real) = (max_cost, options.mode) {
        // The run's cost is known once its diff is: a dry run makes it first, and the run writes
        // only if it is within the ceiling.
        printer.note(format!("--max-cost {max}: estimating the run's cost with a dry run first"));
        let rehearsal = sync::SyncOptions { mode: Mode::Rehearsal, ..options.clone() };
        let estimated = tokio::select! {
            finished = sync::run(&profile, &rehearsal, printer, stop) => finished?,
            signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => {
                return Err(crate::engine::stop::Interrupted(signal).into())
            }
        };
        if let Some(error) = estimated.error {
            return Err(error.context("estimating the run's cost (--max-cost); nothing was written"));
        }
        let total = &estimated.report.total;
        let estimate = profile.prices.cost(total.write_units, 2.0 * total.read_units);
        let parts = format!(
            "{:.1} write units, and {:.1} read units for the diff, read twice: by the estimate and by the run",
            total.write_units, total.read_units
        );
        if estimate > max {
            return Err(crate::exit::OverBudget::of(&format!("sync {}", profile.env), estimate, &parts, max).into());
        }
        printer.note(format!("estimated USD {estimate:.6} ({parts}), within --max-cost {max}"));
    }
    // The sync stops itself on a signal (and records it); this bound covers the phases before it
    // holds anything, such as connecting and preparing the queries.
    let finished = tokio::select! {
        finished = sync::run(&profile, &options, printer, stop) => finished?,
        signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => {
            return Err(crate::engine::stop::Interrupted(signal).into())
        }
    };
    let report = kept.insert(finished.report);
    // `--exit-code` (dry runs only): the code a scheduler branches on, and the report says it too.
    let pending = exit_code && finished.error.is_none() && report.pending();
    if pending && report.outcome.exit_code == Exit::Success as u8 {
        report.outcome.exit_code = Exit::Pending as u8;
    }
    // A dry run writes nothing anyway: with --max-cost its code says whether the real run would
    // be refused, and its report says so too.
    let over = max_cost.filter(|max| report.dry_run && finished.error.is_none() && report.total.cost.actual > *max);
    // It outranks what a completed dry run found (Exit::max): the real run would not happen.
    let outranked = [Exit::Success, Exit::Pending, Exit::Differences].map(|e| e as u8);
    if over.is_some() && outranked.contains(&report.outcome.exit_code) {
        report.outcome.exit_code = Exit::OverBudget as u8;
    }
    // The report comes first, whatever ended the run: it says what was written.
    if finished.error.is_none() || !report.tables.is_empty() {
        printer.show(&*report, crate::pure::report::RunReport::render)?;
    }
    if let Some(error) = finished.error {
        return Err(error);
    }
    if let Some(max) = over {
        let parts = "the writes and the diff's reads, as this dry run estimates them";
        let refusal =
            crate::exit::OverBudget::of(&format!("sync {}", report.environment), report.total.cost.actual, parts, max);
        printer.warn(refusal.0.replace("nothing was written", "the real run would write nothing"));
        return Ok(Exit::OverBudget);
    }
    Ok(if report.has_losses() {
        Exit::Differences
    } else if pending {
        Exit::Pending
    } else {
        Exit::Success
    })
}

/// Refuses (exit 2) an output file that cannot be written: a directory, or a place whose directory
/// does not exist or refuses a new file. Tried by creating and removing the file beside it that
/// the output is first written to.
fn writable(path: &Path, flag: &str) -> Result<()> {
    let refuse = |why: String| -> Result<()> {
        Err(UsageError(format!(
            "{flag} {}: {why}; give a file in a directory that exists and may be written",
            path.display()
        ))
        .into())
    };
    if path.is_dir() {
        return refuse("is a directory".into());
    }
    // The file is renamed into place: a device or a FIFO there would be replaced.
    crate::export::replaced_file(flag, path, "").map_err(UsageError)?;
    let trial = path.with_extension("partial");
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&trial) {
        Ok(_) => {
            let _ = std::fs::remove_file(&trial);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => refuse(format!("cannot be written ({e})")),
    }
}

/// A promotion of some tables (`--table`) promotes the tables they reference too, so that every
/// reference it writes resolves in the target (said when it adds one).
fn with_referenced(profile: &profile::Profile, tables: Vec<String>, printer: &Printer) -> Vec<String> {
    let all = referenced_closure(&profile.tables, &tables);
    let added: Vec<&str> = all.iter().filter(|t| !tables.contains(t)).map(String::as_str).collect();
    if !added.is_empty() {
        printer.note(format!(
            "{} referenced by the tables selected: promoted too, so that their references resolve in the target",
            added.join(", ")
        ));
    }
    all
}

/// `roots` and every table they reference, transitively (mapping names, in the profile's order,
/// which is referenced tables first).
fn referenced_closure(tables: &[profile::TableMapping], roots: &[String]) -> Vec<String> {
    let mut wanted: Vec<&str> = roots.iter().map(String::as_str).collect();
    let mut at = 0;
    while at < wanted.len() {
        let name = wanted[at];
        let references = tables.iter().filter(|t| t.name == name).flat_map(|t| t.promote.iter());
        for reference in references.flat_map(|p| p.references.iter()) {
            if !wanted.contains(&reference.table.as_str()) {
                wanted.push(&reference.table);
            }
        }
        at += 1;
    }
    // Unknown names stay, for the selection to refuse by name.
    let mut ordered: Vec<String> =
        tables.iter().filter(|t| wanted.contains(&t.name.as_str())).map(|t| t.name.clone()).collect();
    ordered.extend(roots.iter().filter(|r| !tables.iter().any(|t| t.name == **r)).cloned());
    ordered
}

/// Why a restore stopped, with what each table holds and the restore's own command that finishes
/// it: the stop's and the lost lock's "the next run completes the work" would send a person to a
/// sync, which does not.
fn restore_failure(e: &anyhow::Error, progress: &backup::Progress) -> String {
    let state = progress.unfinished().unwrap_or_else(|| "nothing was changed".into());
    if let Some(stop) = e.chain().find_map(|c| c.downcast_ref::<Interrupted>()) {
        format!("{state}: interrupted by {}", stop.0)
    } else if let Some(lost) = e.chain().find_map(|c| c.downcast_ref::<lock::LeaseLost>()) {
        format!("{state}: stopped: {}; nothing more was written", lost.0)
    } else {
        format!("{state}: {e:#}")
    }
}

/// Before deleting tables (`--clean`, `restore`): an ordinary environment asks on a terminal and
/// needs `--yes` elsewhere; a protected one always needs `--yes` and, on a terminal, its name typed.
fn confirm_destruction(profile: &profile::Profile, action: &str, yes: bool, printer: &Printer) -> Result<()> {
    confirm(profile, action, ", then writes every item", yes, printer)
}

/// Refuses (exit 2) an action that would have to ask but cannot: a protected environment without
/// `--yes`, or no terminal and no `--yes`.
fn may_confirm(profile: &profile::Profile, action: &str, yes: bool) -> Result<()> {
    if profile.protected && !yes {
        let message = format!("{} is protected: {action} only with --yes", profile.env);
        return Err(ProfileError::new(&profile.path, message).into());
    }
    if !yes && !std::io::stdin().is_terminal() {
        let message = format!("{action}; there is no terminal to confirm on, so add --yes");
        return Err(ProfileError::new(&profile.path, message).into());
    }
    Ok(())
}

/// Asks before `action` (a table deletion, a repair) as [`confirm_destruction`] says; `then` ends
/// the question.
fn confirm(profile: &profile::Profile, action: &str, then: &str, yes: bool, printer: &Printer) -> Result<()> {
    may_confirm(profile, action, yes)?;
    let terminal = std::io::stdin().is_terminal();
    if yes && !(profile.protected && terminal) {
        return Ok(());
    }
    // On a protected environment the answer is its name, so that a habitual "yes" is not enough.
    let expected = if profile.protected { profile.env.as_str() } else { "yes" };
    let question = format!("{action} in {} ({}){then}.", profile.env, profile.target.region);
    if !printer.confirm(&question, expected)? {
        // Declined: nothing was done, as with a refused command line (exit 2), not a failure.
        return Err(UsageError("not confirmed; nothing was changed".into()).into());
    }
    Ok(())
}

/// `ddbsync plan`: the diff saved as a plan file, its summary printed (and with `--show`, what
/// changes inside the first items); nothing is written to DynamoDB.
async fn plan(dir: &Path, args: PlanArgs, printer: &Printer, stop: &Stop) -> Result<Exit> {
    let _held = stop.hold();
    let profile = load(dir, &args.env).await?;
    let file = args.output.clone().unwrap_or_else(|| std::path::PathBuf::from(format!("{}.plan.json", profile.env)));
    // Checked before the diff is made: the plan is renamed into place, over whatever is there.
    let file = crate::export::replaced_file("plan -o", &file, "").map_err(UsageError)?;
    let tables = match profile.source.kind {
        profile::SourceKind::DynamoDb(_) if !args.tables.is_empty() => with_referenced(&profile, args.tables, printer),
        _ => args.tables,
    };
    let options = sync::SyncOptions {
        tables,
        allow_mass_delete: args.allow_mass_delete,
        params: args.params,
        full_scan: args.full_scan,
        ..sync::SyncOptions::default()
    };
    let now = chrono::Utc::now();
    let made = tokio::select! {
        made = crate::engine::planning::make(&profile, options, args.show as usize, now, printer, stop) => made?,
        signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => {
            return Err(Interrupted(signal).into())
        }
    };
    let plan = made.plan;
    if let Some(first) = made.moved.first() {
        printer.warn(format!(
            "{} changes left out of the plan: their items changed while it was made (another run or a hand edit; \
             first: {first}); the next plan computes them afresh",
            made.moved.len()
        ));
    }
    for t in &made.report.tables {
        for r in t.rejected.iter().take(20) {
            printer.warn(format!("{}: rejected {}: {}", t.table, r.key, r.reason));
        }
    }
    if let Some(file) = &made.report.rejects_file {
        printer.note(format!("every rejected row is listed in {file}; they are not in the plan"));
    }
    if let Some(max) = args.max_cost {
        // The `--show` view's reads are spent already; counted, so that the ceiling sees them.
        let estimate = plan.total_cost(&profile.prices) + profile.prices.cost(0.0, made.show_read_units);
        if estimate > max {
            let parts = format!(
                "{:.1} read units the plan took, {:.1} write units and {:.1} read units to apply it",
                plan.read_units, plan.write_units, plan.apply_read_units
            );
            let refusal = crate::exit::OverBudget::of(&format!("plan {}", profile.env), estimate, &parts, max);
            return Err(crate::exit::OverBudget(refusal.0.replace("nothing was written", "no plan was saved")).into());
        }
    }
    let text = crate::pure::planfile::seal(&plan);
    write_private(&file, &text).with_context(|| format!("saving the plan to {}", file.display()))?;
    let shown = file.display().to_string();
    let rejected = made.report.total.rejected;
    #[derive(serde::Serialize)]
    struct Planned<'a> {
        plan: &'a str,
        environment: &'a str,
        created_at: &'a str,
        changes: usize,
        tables: Vec<serde_json::Value>,
        read_units: f64,
        write_units: f64,
        apply_read_units: f64,
        cost_usd: f64,
        shown: &'a [crate::pure::planfile::ShownChange],
        show_read_units: f64,
        rejected: u64,
    }
    let tables = plan
        .tables
        .iter()
        .map(|t| {
            let creates = t.puts.iter().filter(|p| p.against == crate::pure::planfile::Against::Absent).count();
            serde_json::json!({
                "table": t.table,
                "create": creates,
                "update": t.puts.len() - creates,
                "delete": t.deletes.len(),
                "unchanged": t.unchanged,
                "rejected": t.rejected,
                "write_units": t.write_units,
                "read_units": t.read_units,
            })
        })
        .collect();
    let planned = Planned {
        plan: &shown,
        environment: &plan.environment,
        created_at: &plan.created_at,
        changes: plan.changes(),
        tables,
        read_units: plan.read_units,
        write_units: plan.write_units,
        apply_read_units: plan.apply_read_units,
        cost_usd: plan.cost_usd,
        shown: &made.shown,
        show_read_units: made.show_read_units,
        rejected,
    };
    printer.show(&planned, |_| {
        let mut text = crate::pure::planfile::render_summary(&plan, &shown, &profile.prices);
        text.push_str(&crate::pure::planfile::render_changes(&made.shown, made.show_read_units));
        text
    })?;
    Ok(if rejected > 0 { Exit::Differences } else { Exit::Success })
}

/// The largest plan file `apply` reads: a plan is held in memory whole (a million changes of a
/// few KB), and a file past this is not one ddbsync saved (or a device such as /dev/zero).
const MAX_PLAN_BYTES: u64 = 4 << 30;

/// A plan file's text, refused past [`MAX_PLAN_BYTES`] without reading further.
fn read_plan(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    file.take(MAX_PLAN_BYTES + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_PLAN_BYTES {
        return Err(std::io::Error::other(format!(
            "it is larger than {} GiB, which no plan is; make smaller plans with --table or --param",
            MAX_PLAN_BYTES >> 30
        )));
    }
    Ok(text)
}

/// Writes a file only its owner reads (a plan holds items), replacing it whole.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new().prefix(".ddbsync-plan").tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(path)?;
    Ok(())
}

/// `ddbsync apply`: the plan checked (checksum, items, environment, fingerprint, age, cost), then
/// written under the run lock, change by change.
async fn apply(dir: &Path, args: ApplyArgs, printer: &Printer, stop: &Stop) -> Result<Exit> {
    let name = args.file.display().to_string();
    let refused = |cause: String| -> anyhow::Error {
        UsageError(format!("plan {name}: {cause}; nothing was written: run ddbsync plan again")).into()
    };
    let text = read_plan(&args.file).map_err(|e| {
        UsageError(format!("plan {name}: cannot be read ({e}); nothing was written: give the file ddbsync plan saved"))
    })?;
    // The environment is the plan's: read it before the checksum is checked, to load its profile.
    let env = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("environment").and_then(|e| e.as_str().map(str::to_string)));
    let Some(env) = env else {
        return Err(refused("it names no environment (it is not a ddbsync plan)".into()));
    };
    let profile = load(dir, &env).await?;
    let excluded = |name: &str| -> Vec<crate::pure::hash::Excluded> {
        profile
            .tables
            .iter()
            .filter(|t| t.name == name)
            .flat_map(|t| t.entities.iter().map(|e| e.excluded.clone()))
            .collect()
    };
    let plan = crate::pure::planfile::open(&text, excluded).map_err(refused)?;
    let names: Vec<String> = plan.tables.iter().map(|t| t.name.clone()).collect();
    let mappings = preflight::selected(&profile, &names).map_err(|e| refused(format!("{e:#}")))?;
    let fingerprint = crate::pure::planfile::fingerprint(&profile, &mappings);
    let age = chrono::DateTime::parse_from_rfc3339(&plan.created_at)
        .ok()
        .map(|made| chrono::Utc::now().signed_duration_since(made));
    let max_age = args.max_age.unwrap_or(crate::pure::planfile::DEFAULT_MAX_AGE);
    if let Some(cause) = crate::pure::planfile::refusal(&plan, &profile.env, &fingerprint, age, max_age) {
        return Err(refused(cause));
    }
    // The tables written, and the keys the conditions name, are the profile's, whatever the file
    // says: a plan names them only to be checked.
    for t in &plan.tables {
        let mapping = profile.tables.iter().find(|m| m.name == t.name);
        let table = mapping.map(|m| m.table_name.as_str());
        if table != Some(t.table.as_str()) {
            return Err(refused(format!(
                "it writes table {} for mapping \"{}\", whose table in {} is {}",
                t.table,
                t.name,
                profile.env,
                table.unwrap_or("none")
            )));
        }
        let key: Vec<&str> =
            mapping.into_iter().flat_map(|m| m.entities[0].keys().map(|k| k.attribute.as_str())).collect();
        if t.key.iter().map(String::as_str).ne(key.iter().copied()) {
            return Err(refused(format!(
                "it names the key ({}) for table {}, whose key in {} is ({})",
                t.key.join(", "),
                t.table,
                profile.env,
                key.join(", ")
            )));
        }
    }
    // The file's estimate, but never less than its items alone cost: an edited figure cannot
    // pass the ceiling.
    let least = crate::pure::planfile::least_write_units(&plan);
    let cost = plan.cost_usd.max(profile.prices.cost(least, 0.0));
    if let Some(max) = args.max_cost.filter(|max| cost > *max) {
        let parts = format!(
            "{:.1} write units, estimated from the items' sizes, and {:.1} read units for the items it replaces or \
             deletes",
            plan.write_units.max(least),
            plan.apply_read_units
        );
        let refusal = crate::exit::OverBudget::of(&format!("apply {name}"), cost, &parts, max);
        let fix = "make a smaller plan (ddbsync plan with --table or --param)";
        return Err(crate::exit::OverBudget(refusal.0.replace("write less at once (--table, --param)", fix)).into());
    }
    if plan.changes() == 0 {
        printer.note(format!("{name}: the plan holds no change; nothing to apply"));
    }
    if profile.protected {
        let tables: Vec<&str> = plan.tables.iter().map(|t| t.table.as_str()).collect();
        let action = format!("apply writes {} changes to {}", plan.changes(), tables.join(", "));
        confirm(&profile, &action, "", args.yes, printer)?;
    }
    // Held from here: the apply stops itself on a signal and records it.
    let _held = stop.hold();
    let dynamo = dynamo::connect(&profile.target).await;
    let options =
        crate::engine::apply::ApplyOptions { force_unlock: args.force_unlock, lock_timeout: args.lock_timeout };
    let (report, error) = tokio::select! {
        applied = crate::engine::apply::run(dynamo, &profile, (&plan, &name), &options, printer, stop) => applied?,
        signal = stop.expired(crate::engine::stop::STOPPED_WITHIN) => return Err(Interrupted(signal).into()),
    };
    printer.show(&report, crate::engine::apply::ApplyReport::render)?;
    if let Some(error) = error {
        return Err(error);
    }
    Ok(if report.drift.is_empty() { Exit::Success } else { Exit::Differences })
}
