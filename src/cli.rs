//! Command-line arguments. Every flag's doc comment is its `--help` text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ddbsync", version, about = "Keep DynamoDB tables in sync with PostgreSQL, writing only what changed")]
pub struct Cli {
    /// Directory holding the environment profiles (<env>.toml).
    #[arg(long, global = true, env = "DDBSYNC_ENVS_DIR", default_value = "envs")]
    pub envs_dir: PathBuf,
    /// Print the report as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the report: no progress bars, no notes.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log what happens (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write new and changed items to DynamoDB, then print the cost report.
    Sync(SyncArgs),
    /// List the environments in the profiles directory.
    Envs,
    /// Write an environment's tables to a local file (DynamoDB JSON lines, compressed, with a manifest).
    Backup(BackupArgs),
    /// Put a backup back: recreate each table it holds and write its items.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The environment whose tables to back up.
    pub env: String,
    /// Back up only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// The file to write; default <backup_dir>/<env>-<time>.ddbsync.tar.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `ddbsync backup` (or by --clean on a protected environment).
    pub file: PathBuf,
    /// Restore into this environment's tables; default: the environment the backup was taken from.
    #[arg(long, value_name = "ENV")]
    pub env: Option<String>,
    /// Restore only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// Do not ask before deleting and recreating the tables.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The environment: the name of a profile in the profiles directory (dev, prod, local…).
    pub env: String,
    /// Compute the same diff and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Delete and recreate the tables, then write every item (after a schema change).
    #[arg(long)]
    pub clean: bool,
    /// Do not ask before --clean (for schedulers and scripts); a protected environment always needs it.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Let deletes (delete_missing) remove more than sync.max_delete_fraction of a table.
    #[arg(long)]
    pub allow_mass_delete: bool,
    /// Take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long)]
    pub force_unlock: bool,
    /// Where to list rejected and unwritten rows (JSON lines); default <rejects_dir>/<env>-<time>.jsonl.
    #[arg(long, value_name = "FILE")]
    pub rejects_file: Option<PathBuf>,
    /// Sync only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// Spend at most this many write units per second (overrides sync.max_write_units_per_second).
    #[arg(long, value_name = "N")]
    pub max_write_units_per_second: Option<u32>,
    /// BatchWriteItem calls in flight at most (overrides sync.max_in_flight).
    #[arg(long, value_name = "N")]
    pub max_in_flight: Option<usize>,
    /// Parallel Scan segments for the diff (overrides sync.scan_segments).
    #[arg(long, value_name = "N")]
    pub scan_segments: Option<u32>,
}
