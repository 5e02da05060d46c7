//! ddbsync keeps DynamoDB tables in sync with PostgreSQL, writing only the items whose content
//! changed. See ARCHITECTURE.md for the data flow and the invariants.

pub mod build;
pub mod classify;
pub mod cli;
pub mod convert;
pub mod cost;
pub mod diff;
pub mod dynamo;
pub mod exit;
pub mod hash;
pub mod item;
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
pub mod writer;

use std::io::IsTerminal;

use anyhow::{bail, Result};

use cli::{Cli, Command, SyncArgs};
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
    }
}

async fn sync(envs_dir: &std::path::Path, args: SyncArgs, printer: &Printer) -> Result<Exit> {
    let mut profile = profile::load(envs_dir, &args.env)?;
    profile.sync = profile.sync.overridden(args.scan_segments, args.max_in_flight, args.max_write_units_per_second);
    if args.clean && !args.dry_run && !args.yes {
        confirm_clean(&profile, &args, printer)?;
    }
    let options = sync::SyncOptions { dry_run: args.dry_run, clean: args.clean, tables: args.tables };
    let report = sync::run(&profile, &options, printer).await?;
    printer.report(&report)?;
    Ok(if report.has_losses() { Exit::Incomplete } else { Exit::Success })
}

/// `--clean` deletes tables: ask on a terminal, refuse without `--yes` elsewhere.
fn confirm_clean(profile: &profile::Profile, args: &SyncArgs, printer: &Printer) -> Result<()> {
    let tables = sync::selected(profile, &args.tables)?;
    let names: Vec<&str> = tables.iter().map(|t| t.table_name.as_str()).collect();
    if !std::io::stdin().is_terminal() {
        return Err(ProfileError::new(
            &profile.path,
            format!(
                "--clean deletes and recreates {}; there is no terminal to confirm on, so add --yes",
                names.join(", ")
            ),
        )
        .into());
    }
    // On a protected environment the answer is its name, so that a habitual "yes" is not enough.
    let expected = if profile.protected { profile.env.as_str() } else { "yes" };
    let question = format!(
        "--clean deletes and recreates {} in {} ({}), then writes every item.",
        names.join(", "),
        profile.env,
        profile.target.region
    );
    if !printer.confirm(&question, expected)? {
        bail!("not confirmed; nothing was changed");
    }
    Ok(())
}

/// The exit code for an error: profile and usage errors are distinguished from failed runs.
pub fn exit_for(error: &anyhow::Error) -> Exit {
    let misconfigured = |e: &(dyn std::error::Error + 'static)| {
        e.is::<ProfileError>() || matches!(e.downcast_ref(), Some(source::SourceError::MissingPassword { .. }))
    };
    if error.chain().any(misconfigured) {
        Exit::Usage
    } else {
        Exit::Error
    }
}
