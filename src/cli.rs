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
    /// Do not ask before --clean (for schedulers and scripts).
    #[arg(long, short = 'y')]
    pub yes: bool,
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
