//! ddbsync keeps DynamoDB tables in sync with PostgreSQL, writing only the items whose content
//! changed. See ARCHITECTURE.md for the data flow and the invariants.

pub mod backup;
pub mod build;
pub mod classify;
pub mod cli;
pub mod convert;
pub mod cost;
pub mod ddb_json;
pub mod diff;
pub mod dynamo;
pub mod exit;
pub mod hash;
pub mod item;
pub mod lock;
pub mod number;
pub mod pace;
pub mod pgpass;
pub mod printer;
pub mod profile;
pub mod report;
pub mod retry;
pub mod scan;
pub mod source;
pub mod sync;
pub mod target;
pub mod tls;
pub mod writer;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Result};

use cli::{BackupArgs, Cli, Command, RestoreArgs, SyncArgs};
use exit::Exit;
use printer::Printer;
use profile::ProfileError;

/// Runs a parsed command line; the caller turns the result into the process's exit code.
pub async fn run(cli: Cli) -> Result<Exit> {
    let printer = Printer::new(cli.json, cli.quiet);
    match cli.command {
        Command::Envs => {
            for env in profile::available(&cli.envs_dir) {
                let description = profile::load(&cli.envs_dir, &env)
                    .map(|p| p.description.unwrap_or_default())
                    .unwrap_or_else(|e| format!("(invalid: {e})"));
                printer.line(format!("{env:<12} {description}"));
            }
            Ok(Exit::Success)
        }
        Command::Sync(args) => sync(&cli.envs_dir, args, &printer).await,
        Command::Backup(args) => backup(&cli.envs_dir, args, &printer).await,
        Command::Restore(args) => restore(&cli.envs_dir, args, &printer).await,
    }
}

async fn backup(envs_dir: &Path, args: BackupArgs, printer: &Printer) -> Result<Exit> {
    let profile = profile::load(envs_dir, &args.env)?;
    let mappings = sync::selected(&profile, &args.tables)?;
    let path = args.output.unwrap_or_else(|| backup::default_path(&profile));
    let dynamo = dynamo::Dynamo::connect(&profile.target).await;
    let manifest = backup::backup(&dynamo, &profile, &mappings, &path, printer).await?;
    printer.backup(&path, &manifest)?;
    Ok(Exit::Success)
}

async fn restore(envs_dir: &Path, args: RestoreArgs, printer: &Printer) -> Result<Exit> {
    let manifest = backup::verify(&args.file)?;
    let env = args.env.clone().unwrap_or_else(|| manifest.environment.clone());
    let profile = profile::load(envs_dir, &env)?;
    if let Some(unknown) = args.tables.iter().find(|t| !manifest.tables.iter().any(|e| &e.name == *t)) {
        let held: Vec<&str> = manifest.tables.iter().map(|t| t.name.as_str()).collect();
        bail!("{}: no table \"{unknown}\" in this backup (it holds: {})", args.file.display(), held.join(", "));
    }
    // Each table of the backup goes to the table the profile gives its mapping.
    let mut targets = Vec::new();
    for entry in manifest.tables.iter().filter(|e| args.tables.is_empty() || args.tables.contains(&e.name)) {
        let mapping = profile.tables.iter().find(|t| t.name == entry.name).ok_or_else(|| {
            ProfileError::new(
                &profile.path,
                format!("the backup holds table \"{}\", which the mappings do not define", entry.name),
            )
        })?;
        targets.push((entry.name.clone(), mapping.table_name.clone()));
    }
    let names: Vec<&str> = targets.iter().map(|(_, t)| t.as_str()).collect();
    let action = format!("restore deletes and recreates {}", names.join(", "));
    confirm_destruction(&profile, &action, args.yes, printer)?;
    let dynamo = std::sync::Arc::new(dynamo::Dynamo::connect(&profile.target).await);
    sync::ensure_metadata_table(&dynamo, &profile).await?;
    let lock =
        lock::acquire(dynamo.clone(), &profile.metadata_table, &profile.env, profile.sync.lock_lease, false).await?;
    let restored = tokio::select! {
        restored = backup::restore(dynamo.clone(), &profile, &args.file, &manifest, &targets, printer) => restored,
        reason = lock.lost() => Err(anyhow::anyhow!("stopped: {reason}")),
    };
    lock.release().await?;
    let restored = restored?;
    printer.restored(&restored)?;
    let failed = restored.iter().any(|r| !r.outcome.failed.is_empty());
    Ok(if failed { Exit::Incomplete } else { Exit::Success })
}

async fn sync(envs_dir: &Path, args: SyncArgs, printer: &Printer) -> Result<Exit> {
    let mut profile = profile::load(envs_dir, &args.env)?;
    profile.sync = profile.sync.overridden(args.scan_segments, args.max_in_flight, args.max_write_units_per_second);
    if args.clean && !args.dry_run {
        let tables = sync::selected(&profile, &args.tables)?;
        let names: Vec<&str> = tables.iter().map(|t| t.table_name.as_str()).collect();
        let action = format!("--clean deletes and recreates {}", names.join(", "));
        confirm_destruction(&profile, &action, args.yes, printer)?;
    }
    let options = sync::SyncOptions {
        dry_run: args.dry_run,
        clean: args.clean,
        tables: args.tables,
        allow_mass_delete: args.allow_mass_delete,
        force_unlock: args.force_unlock,
        rejects_file: args.rejects_file,
    };
    let report = sync::run(&profile, &options, printer).await?;
    printer.report(&report)?;
    Ok(if report.has_losses() { Exit::Incomplete } else { Exit::Success })
}

/// Before deleting tables (`--clean`, `restore`): an ordinary environment asks on a terminal and
/// needs `--yes` elsewhere; a protected one always needs `--yes` and, on a terminal, its name typed.
fn confirm_destruction(profile: &profile::Profile, action: &str, yes: bool, printer: &Printer) -> Result<()> {
    let terminal = std::io::stdin().is_terminal();
    if profile.protected && !yes {
        let message = format!("{} is protected: {action} only with --yes", profile.env);
        return Err(ProfileError::new(&profile.path, message).into());
    }
    if yes && !(profile.protected && terminal) {
        return Ok(());
    }
    if !terminal {
        let message = format!("{action}; there is no terminal to confirm on, so add --yes");
        return Err(ProfileError::new(&profile.path, message).into());
    }
    // On a protected environment the answer is its name, so that a habitual "yes" is not enough.
    let expected = if profile.protected { profile.env.as_str() } else { "yes" };
    let question = format!("{action} in {} ({}), then writes every item.", profile.env, profile.target.region);
    if !printer.confirm(&question, expected)? {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// The exit code for an error: profile and usage errors are distinguished from failed runs.
pub fn exit_for(error: &anyhow::Error) -> Exit {
    let misconfigured = |e: &(dyn std::error::Error + 'static)| {
        e.is::<ProfileError>()
            || matches!(
                e.downcast_ref(),
                Some(source::SourceError::MissingPassword { .. } | source::SourceError::Tls { .. })
            )
    };
    if error.chain().any(|e| e.is::<lock::Locked>()) {
        Exit::Locked
    } else if error.chain().any(|e| e.is::<sync::RejectedBeforeWrite>()) {
        Exit::Incomplete
    } else if error.chain().any(misconfigured) {
        Exit::Usage
    } else {
        Exit::Error
    }
}
