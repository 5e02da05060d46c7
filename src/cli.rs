//! Command-line arguments. Every flag's doc comment is its `--help` text, and each command's
//! `after_help` ends its help with examples (a test parses every example line as a command line
//! of that command).
//!
//! Options are grouped in `--help` (and in the man page) under the headings of [`heading`]: a flag
//! says `help_heading = heading::RATE`. A new flag joins the heading of what it is about: what the
//! command acts on (`SELECTION`: `--table`, `--param`), what it may destroy or must confirm
//! (`SAFETY`: `--dry-run`, `--yes`), how fast it goes (`RATE`), the run lock (`LOCKING`:
//! `--lock-timeout`, `--force-unlock`), what it prints, in which format and where
//! (`OUTPUT`: `--json`, a log format, a metrics file, an exit code for pending changes). A new kind
//! of flag gets a new constant in [`heading`] and its place in [`heading::ORDER`]. A flag keeps its
//! heading in every command, and the headings come in `ORDER` everywhere (a test checks both:
//! clap lists a heading where its first flag is, so a command declares its flags in that order).
//! A flag without a heading is listed under "Options", with `--help` and the command's own
//! switch (`verify --repair`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueHint};

/// The headings options are grouped under in `--help` and in the man page. The same flag has the
/// same heading in every command.
pub mod heading {
    /// What the command acts on: tables, query parameters, a period, how much it reads.
    pub const SELECTION: &str = "Selection";
    /// What a command may destroy, and the confirmations and rehearsals that guard it.
    pub const SAFETY: &str = "Safety";
    /// How fast a run reads and writes DynamoDB.
    pub const RATE: &str = "Rate";
    /// The run lock that keeps two runs off the same tables.
    pub const LOCKING: &str = "Locking";
    /// What is printed, in which format, and the files a run writes beside its report.
    pub const OUTPUT: &str = "Output";

    /// The order of the headings in every command's `--help`, after "Options" (a heading that no
    /// flag of a command has is left out).
    pub const ORDER: [&str; 5] = [SELECTION, SAFETY, RATE, LOCKING, OUTPUT];
}

/// The exit codes, at the end of `--help` (a test holds it to [`crate::exit::Exit::ALL`]).
pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error: a server, a query or a check failed
  2  bad usage or profile; nothing was done
  3  differences: rows rejected or not written, deletes refused, or verify found differences
  4  another run holds the lock of a table; nothing was done
  5  interrupted by SIGTERM or SIGINT; what was written is kept, the next run completes it
  6  changes pending: sync --dry-run --exit-code would write or delete something
  7  over budget: the estimated cost exceeds --max-cost; nothing was written";

/// What `--version` and `-V` print after the name: the package version, then the commit and its
/// date when built from a git checkout (`build.rs`, `src/version.rs`).
pub const VERSION: &str = env!("DDBSYNC_VERSION");

/// The top-level examples; the exit codes follow them, last.
pub const EXAMPLES: &str = "Examples:
  ddbsync check dev             # can a sync run? profile, source, queries, credentials, tables
  ddbsync sync dev --dry-run    # the diff and its cost report; nothing is written
  ddbsync sync dev              # write the new and changed items, then the report
  ddbsync history dev           # the recorded runs, newest first
  ddbsync sync --help           # a command's options and examples";

#[derive(Debug, Parser)]
#[command(
    name = "ddbsync",
    version = VERSION,
    about = "Keep DynamoDB tables in sync with PostgreSQL or SQLite, writing only what changed",
    after_help = format!("{EXAMPLES}\n\n{EXIT_CODES}")
)]
pub struct Cli {
    /// Directory holding the environment profiles (<env>.toml).
    #[arg(long, global = true, env = "DDBSYNC_ENVS_DIR", hide_env_values = true, default_value = "envs", value_hint = ValueHint::DirPath)]
    pub envs_dir: PathBuf,
    /// Print the result as JSON on stdout (every command that reports).
    #[arg(long, global = true, help_heading = heading::OUTPUT)]
    pub json: bool,
    /// Print only the report: no progress bars, no notes.
    #[arg(short, long, global = true, help_heading = heading::OUTPUT)]
    pub quiet: bool,
    /// Log what happens (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = heading::OUTPUT)]
    pub verbose: u8,
    /// How log lines are written on stderr: text, or one JSON object a line for log shippers, each
    /// with the run's run_id (notes and warnings then come as log events too).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT", help_heading = heading::OUTPUT)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write new and changed items to DynamoDB, then print the cost report.
    #[command(after_help = "Examples:
  ddbsync sync dev --dry-run           # the same diff and report; nothing is written
  ddbsync sync dev                     # write only the new and changed items, then the report
  ddbsync sync dev --table lessons     # one table (repeat --table for more)
  ddbsync sync dev --table CustomerData --param from=2025-01-01 --param to=2025-02-01
  ddbsync sync prod --clean --yes      # recreate the tables and write every item, from a scheduler
  ddbsync --json sync prod             # the report as JSON on stdout
  ddbsync sync prod --max-write-units-per-second 500   # cap the write rate
  ddbsync sync dev --dry-run --exit-code   # exit 6 when the run would change something
  ddbsync sync prod --lock-timeout 10m     # wait for a running backup or sync instead of exiting 4
  ddbsync sync prod --metrics-file /var/lib/node_exporter/ddbsync.prom   # metrics for Prometheus
  ddbsync sync prod --shard 0/4 --run-id nightly-2026-11-28   # shard 0 of 4; start 1/4, 2/4, 3/4 too
  ddbsync sync prod --shards 4   # K from JOB_COMPLETION_INDEX or AWS_BATCH_JOB_ARRAY_INDEX
  ddbsync sync promote-prod --dry-run --id-map ids.jsonl   # a promotion's analysis, and its new IDs
  ddbsync sync promote-prod --table Quotes --limit 1       # one quote and what it references, as a test")]
    Sync(SyncArgs),
    /// Save a sync's changes to a plan file for review, writing nothing to DynamoDB.
    #[command(after_help = "Examples:
  ddbsync plan prod -o prod.plan.json             # the changes, per table; apply it after review
  ddbsync plan prod --table lessons --show 5      # and what changes inside five of the items
  ddbsync plan prod --max-cost 2                  # exit 7, no plan saved, if applying would cost more")]
    Plan(PlanArgs),
    /// Write exactly a plan's changes, each only where the target still holds what the plan saw.
    #[command(after_help = "Examples:
  ddbsync apply prod.plan.json                    # under the run lock; drift is skipped (exit 3)
  ddbsync apply prod.plan.json --max-age 2h --yes # refuse a plan older than two hours")]
    Apply(ApplyArgs),
    /// List the environments in the profiles directory.
    #[command(after_help = "Examples:
  ddbsync envs                          # the profiles in ./envs, with their descriptions
  ddbsync --envs-dir /etc/ddbsync envs  # the profiles elsewhere (or DDBSYNC_ENVS_DIR)")]
    Envs,
    /// Write an environment's tables to a local file (DynamoDB JSON lines, compressed, with a manifest).
    #[command(after_help = "Examples:
  ddbsync backup prod                       # every table to <backup_dir>/prod-<time>.ddbsync.tar
  ddbsync backup prod --table lessons -o lessons.ddbsync.tar
  ddbsync backup prod --lock-timeout 30m    # wait for a running sync instead of exiting 4")]
    Backup(BackupArgs),
    /// Put a backup back: recreate each table it holds and write its items.
    #[command(after_help = "Examples:
  ddbsync restore backups/prod-20261121T020000Z.ddbsync.tar     # every table it holds (asks first)
  ddbsync restore prod.ddbsync.tar --env staging --table lessons --yes")]
    Restore(RestoreArgs),
    /// Check that a sync can run: profile, the source database, every query, AWS credentials, the tables.
    #[command(after_help = "Examples:
  ddbsync check prod                   # every table of the profile
  ddbsync check prod --table lessons   # one table
  ddbsync --json check prod            # the checklist as JSON")]
    Check(EnvArgs),
    /// Create or drop an environment's tables without syncing.
    #[command(
        subcommand,
        after_help = "Examples:
  ddbsync tables create dev                 # the missing tables and global indexes
  ddbsync tables drop dev --table lessons   # delete a table (asks first)"
    )]
    Tables(TablesCommand),
    /// Compare what DynamoDB holds with the source, item by item; exit 3 when they differ.
    #[command(after_help = "Examples:
  ddbsync verify prod                      # about 100 items read by key, 100 from a random place
  ddbsync verify prod --full               # every item
  ddbsync verify prod --repair --dry-run   # what a repair would write and delete
  ddbsync verify prod --full --repair      # then write what is missing or differs (asks first)
  ddbsync verify promote-prod --references # every reference a promotion wrote resolves")]
    Verify(VerifyArgs),
    /// List the recorded runs: items written and skipped, units, cost and savings per run.
    #[command(after_help = "Examples:
  ddbsync history prod --since 7d          # the runs of the last week, newest first
  ddbsync history prod --limit 5 --csv > runs.csv")]
    History(HistoryArgs),
    /// Show the progress of the run holding the lock (phase, rows per table, rate, ETA), or how the last run ended.
    #[command(after_help = "Examples:
  ddbsync status prod                  # the running sync's progress, or the last run's outcome
  ddbsync status prod --watch          # refresh every 2 s until the run ends (then its outcome)
  ddbsync status prod --watch 10       # refresh every 10 s
  ddbsync --json status prod           # the status as JSON (with --watch: one document a line)")]
    Status(StatusArgs),
    /// Sum the recorded runs over a period: items, units, cost and savings per table.
    #[command(after_help = "Examples:
  ddbsync report prod                            # the last 30 days
  ddbsync report prod --since 2026-11-01 --csv   # since a date, as CSV
  ddbsync report prod --since all                # every recorded run")]
    Report(ReportArgs),
    /// Print the least-privilege IAM policy this profile needs (JSON).
    #[command(after_help = "Examples:
  ddbsync iam-policy prod > policy.json              # everything ddbsync does
  ddbsync iam-policy prod --for sync --for verify    # only what these commands need")]
    IamPolicy(IamArgs),
    /// Print a shell's completion script for ddbsync on stdout.
    #[command(after_help = "Examples:
  ddbsync completions bash > ~/.local/share/bash-completion/completions/ddbsync
  ddbsync completions zsh > ~/.zfunc/_ddbsync      # with fpath+=(~/.zfunc) before compinit
  ddbsync completions fish > ~/.config/fish/completions/ddbsync.fish")]
    Completions(CompletionsArgs),
    /// Print ddbsync's manual page (roff) on stdout: every command, option and exit code.
    #[command(after_help = "Examples:
  ddbsync man > ~/.local/share/man/man1/ddbsync.1   # then: man ddbsync
  ddbsync man | man -l -                            # read it without installing it")]
    Man,
}

/// An environment and, optionally, some of its tables.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The environment: the name of a profile in the profiles directory.
    pub env: String,
    /// Only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME", help_heading = heading::SELECTION)]
    pub tables: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create the tables that do not exist yet (key types from the queries' columns), and add the
    /// global indexes that existing tables lack.
    #[command(after_help = "Examples:
  ddbsync tables create dev                   # every table of the profile
  ddbsync tables create dev --table lessons   # one table")]
    Create(EnvArgs),
    /// Delete the tables (never the metadata table); asks first.
    #[command(after_help = "Examples:
  ddbsync tables drop dev                     # every table of the profile (asks first)
  ddbsync tables drop dev --table lessons --yes")]
    Drop(DropArgs),
}

#[derive(Debug, Args)]
pub struct DropArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Do not ask (for scripts); a protected environment always needs it.
    #[arg(long, short = 'y', help_heading = heading::SAFETY)]
    pub yes: bool,
    /// While another run holds the lock of a table, wait up to this long for it (30s, 10m, 1h; at
    /// most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
}

/// Which shell `completions` writes a script for.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Compare about N source items read by key and N target items from a random place (default 100, at
    /// most 1000000).
    #[arg(long, value_name = "N", conflicts_with = "full", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=1_000_000), help_heading = heading::SELECTION)]
    pub sample: Option<u32>,
    /// Compare every item (reads the whole table).
    #[arg(long, help_heading = heading::SELECTION)]
    pub full: bool,
    /// A query parameter, as for sync; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::pure::params::parse, help_heading = heading::SELECTION)]
    pub params: Vec<(String, String)>,
    /// Then write the missing and differing items from the source and delete the extra ones where
    /// the mapping sets delete_missing, under the run lock, as a sync writes (asks first).
    #[arg(long)]
    pub repair: bool,
    /// Check instead that every reference a promotion wrote (the mappings' `references`) resolves
    /// in the target: reads the target's tables, never the source; exit 3 when one does not.
    #[arg(long, conflicts_with_all = ["repair", "sample", "full", "params"], help_heading = heading::SELECTION)]
    pub references: bool,
    /// With --repair: do not ask (for scripts); a protected environment always needs it.
    #[arg(long, short = 'y', requires = "repair", help_heading = heading::SAFETY)]
    pub yes: bool,
    /// With --repair: say what would be written and deleted; write nothing.
    #[arg(long, requires = "repair", help_heading = heading::SAFETY)]
    pub dry_run: bool,
    /// With --repair: let deletes remove more than sync.max_delete_fraction of a table.
    #[arg(long, requires = "repair", help_heading = heading::SAFETY)]
    pub allow_mass_delete: bool,
    /// With --repair: spend at most this many write units per second, 1 to 1000000 (overrides
    /// sync.max_write_units_per_second).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>, requires = "repair", help_heading = heading::RATE)]
    pub max_write_units_per_second: Option<u32>,
    /// With --repair: take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long, requires = "repair", help_heading = heading::LOCKING)]
    pub force_unlock: bool,
    /// With --repair: while another run holds the lock of a table, wait up to this long for it (30s,
    /// 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, requires = "repair", help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
    /// With --repair: write nothing, and exit 7, when the repair's writes are estimated to cost
    /// more than this many USD.
    #[arg(long, value_name = "USD", allow_negative_numbers = true, value_parser = max_cost, requires = "repair", help_heading = heading::SAFETY)]
    pub max_cost: Option<f64>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The environment whose runs to list.
    pub env: String,
    /// Only runs started since then: a duration back (30d, 12h, 2w) or a date (2026-11-01).
    #[arg(long, value_name = "WHEN", help_heading = heading::SELECTION)]
    pub since: Option<String>,
    /// The newest N runs at most.
    #[arg(long, value_name = "N", default_value_t = 30, allow_negative_numbers = true, value_parser = whole::<u32>, value_parser = clap::value_parser!(u32).range(1..), help_heading = heading::SELECTION)]
    pub limit: u32,
    /// Print CSV instead of a table.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The environment whose runs to show.
    pub env: String,
    /// Refresh every SECS seconds (default 2, at most 3600) until no run holds the lock, then show
    /// how it ended; SIGINT (Ctrl-C) stops watching.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "2", allow_negative_numbers = true, value_parser = watch_secs, help_heading = heading::OUTPUT)]
    pub watch: Option<u64>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The environment whose runs to sum.
    pub env: String,
    /// The period: a duration back (30d, 12h, 2w) or a date (2026-11-01); `all` for every run.
    #[arg(long, value_name = "WHEN", default_value = "30d", help_heading = heading::SELECTION)]
    pub since: String,
    /// Print CSV instead of a table.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct IamArgs {
    /// The environment whose tables the policy covers.
    pub env: String,
    /// Only what these commands need (repeatable); default: all of them.
    #[arg(long = "for", value_name = "USE", value_enum, help_heading = heading::SELECTION)]
    pub uses: Vec<crate::pure::iam::Use>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The environment whose tables to back up.
    pub env: String,
    /// Back up only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME", help_heading = heading::SELECTION)]
    pub tables: Vec<String>,
    /// While another run (a sync, a restore) holds the environment's lock, wait up to this long for
    /// it (30s, 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
    /// Take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long, help_heading = heading::LOCKING)]
    pub force_unlock: bool,
    /// The file to write; default <backup_dir>/<env>-<time>.ddbsync.tar.
    #[arg(long, short, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = heading::OUTPUT)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A file written by `ddbsync backup` (or by --clean on a protected environment).
    #[arg(value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Restore into this environment's tables; default: the environment the backup was taken from.
    #[arg(long, value_name = "ENV", help_heading = heading::SELECTION)]
    pub env: Option<String>,
    /// Restore only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME", help_heading = heading::SELECTION)]
    pub tables: Vec<String>,
    /// Do not ask before deleting and recreating the tables.
    #[arg(long, short = 'y', help_heading = heading::SAFETY)]
    pub yes: bool,
    /// Restore a table even when its key in the backup is not the key its mapping gives now (a sync
    /// then refuses the table until `sync --clean`).
    #[arg(long, help_heading = heading::SAFETY)]
    pub allow_key_change: bool,
    /// Read a backup written before manifests carried a checksum (format ddbsync-backup/1), whose
    /// counts and key schemas cannot be checked for edits.
    #[arg(long, help_heading = heading::SAFETY)]
    pub allow_unchecked_manifest: bool,
    /// While another run (a sync, a backup) holds the lock of a table, wait up to this long for it
    /// (30s, 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The environment: the name of a profile in the profiles directory (dev, prod, local…).
    pub env: String,
    /// Sync only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME", help_heading = heading::SELECTION)]
    pub tables: Vec<String>,
    /// A value for the queries' parameter NAME (bound to $1, $2… as the mapping's `params` lists
    /// them; never put into the SQL text); repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::pure::params::parse, help_heading = heading::SELECTION)]
    pub params: Vec<(String, String)>,
    #[command(flatten)]
    pub sharding: ShardArgs,
    /// A promotion's test (a DynamoDB source): read only the first N items of each table selected
    /// (--table, else every table) and the items they reference, transitively, and write those;
    /// nothing is deleted.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<usize>, help_heading = heading::SELECTION)]
    pub limit: Option<usize>,
    /// Compute the same diff and report, write nothing.
    #[arg(long, help_heading = heading::SAFETY)]
    pub dry_run: bool,
    /// Delete and recreate the tables, then write every item (after a schema change).
    #[arg(long, help_heading = heading::SAFETY)]
    pub clean: bool,
    /// Do not ask before --clean (for schedulers and scripts); a protected environment always needs it.
    #[arg(long, short = 'y', help_heading = heading::SAFETY)]
    pub yes: bool,
    /// Let deletes (delete_missing) remove more than sync.max_delete_fraction of a table.
    #[arg(long, help_heading = heading::SAFETY)]
    pub allow_mass_delete: bool,
    /// Scan the whole table even where the mapping's diff reads the hash index (diff = "index"):
    /// to reconcile, or while the index is missing.
    #[arg(long, help_heading = heading::SELECTION)]
    pub full_scan: bool,
    /// Spend at most this many write units per second, 1 to 1000000 (overrides sync.max_write_units_per_second).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>, help_heading = heading::RATE)]
    pub max_write_units_per_second: Option<u32>,
    /// BatchWriteItem calls in flight at most, 1 to 1000 (overrides sync.max_in_flight).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<usize>, help_heading = heading::RATE)]
    pub max_in_flight: Option<usize>,
    /// Parallel Scan segments for the diff, 1 to 1000 (overrides sync.scan_segments).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>, help_heading = heading::RATE)]
    pub scan_segments: Option<u32>,
    /// Take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long, help_heading = heading::LOCKING)]
    pub force_unlock: bool,
    /// While another run holds the lock of a table, wait up to this long for it (30s, 10m, 1h; at
    /// most 7d) instead of exiting 4: a scheduled sync that may overlap a backup or a longer run.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
    /// Where to list rejected and unwritten rows (JSON lines); default <rejects_dir>/<env>-<time>.jsonl.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = heading::OUTPUT)]
    pub rejects_file: Option<PathBuf>,
    /// A promotion (a DynamoDB source): write every ID it remapped to FILE, one JSON object a line
    /// (table, source ID, target ID), also in a dry run.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = heading::OUTPUT)]
    pub id_map: Option<PathBuf>,
    /// With --dry-run: exit 6 when the run would write or delete something (create, update or delete
    /// an item, create or recreate a table), 0 when it would not; rejected rows still exit 3.
    // Checked by `SyncArgs::refused`, not by clap's `requires`: clap's refusal would only say that
    // --dry-run is missing, not that --exit-code asks for it.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub exit_code: bool,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    /// Write nothing, and exit 7, when the run's estimated cost in USD exceeds this (the estimate
    /// is a dry run's, made first: README, "Plan, apply and the cost ceiling").
    #[arg(long, value_name = "USD", allow_negative_numbers = true, value_parser = max_cost, help_heading = heading::SAFETY)]
    pub max_cost: Option<f64>,
}

/// `ddbsync plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The environment: the name of a profile in the profiles directory.
    pub env: String,
    /// Plan only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME", help_heading = heading::SELECTION)]
    pub tables: Vec<String>,
    /// A value for the queries' parameter NAME, as for sync; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::pure::params::parse, help_heading = heading::SELECTION)]
    pub params: Vec<(String, String)>,
    /// Scan the whole table even where the mapping's diff reads the hash index.
    #[arg(long, help_heading = heading::SELECTION)]
    pub full_scan: bool,
    /// Let the plan's deletes remove more than sync.max_delete_fraction of a table.
    #[arg(long, help_heading = heading::SAFETY)]
    pub allow_mass_delete: bool,
    /// Save no plan, and exit 7, when planning and applying it are estimated to cost more than
    /// this many USD (the diff's reads and the writes).
    #[arg(long, value_name = "USD", allow_negative_numbers = true, value_parser = max_cost, help_heading = heading::SAFETY)]
    pub max_cost: Option<f64>,
    /// Where to save the plan; default <env>.plan.json.
    #[arg(long, short = 'o', value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = heading::OUTPUT)]
    pub output: Option<PathBuf>,
    /// Show what changes inside up to N of the items (attribute paths, old and new values); reads
    /// each one's stored item.
    #[arg(long, value_name = "N", default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=10_000), help_heading = heading::OUTPUT)]
    pub show: u32,
}

/// `ddbsync apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The plan file `ddbsync plan` saved.
    #[arg(value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Refuse a plan older than this (30m, 2h, 1d); default 24h.
    #[arg(long, value_name = "DURATION", value_parser = max_age, help_heading = heading::SAFETY)]
    pub max_age: Option<Duration>,
    /// Do not ask (for scripts); a protected environment always needs it.
    #[arg(long, short = 'y', help_heading = heading::SAFETY)]
    pub yes: bool,
    /// Apply nothing, and exit 7, when the plan's writes are estimated to cost more than this many USD.
    #[arg(long, value_name = "USD", allow_negative_numbers = true, value_parser = max_cost, help_heading = heading::SAFETY)]
    pub max_cost: Option<f64>,
    /// Take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long, help_heading = heading::LOCKING)]
    pub force_unlock: bool,
    /// While another run holds the lock of a table, wait up to this long for it instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, help_heading = heading::LOCKING)]
    pub lock_timeout: Option<Duration>,
}

/// A cost ceiling in USD: a finite number, not negative.
fn max_cost(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(n),
        Ok(n) => Err(format!("{n} is not an amount of USD; give a number from 0, such as 2.50")),
        Err(_) => Err(format!("\"{text}\" is not a number; give an amount of USD such as 2.50")),
    }
}

/// How old a plan `apply` takes: a duration of at most a year.
fn max_age(text: &str) -> Result<Duration, String> {
    let age = humantime::parse_duration(text).map_err(|e| format!("{e} (a duration such as 30m, 2h or 1d)"))?;
    if age > Duration::from_secs(366 * 86400) {
        return Err(format!("{text} is longer than the year --max-age accepts"));
    }
    Ok(age)
}

impl SyncArgs {
    /// A combination of options a sync refuses (exit 2) before it does anything.
    pub fn refused(&self) -> Option<crate::exit::UsageError> {
        if self.exit_code && !self.dry_run {
            return Some(crate::exit::UsageError(
                "--exit-code needs --dry-run: only a dry run has changes pending to signal (exit 6); add --dry-run, \
                 or leave --exit-code out"
                    .into(),
            ));
        }
        let sharded = self.sharding.shard.is_some() || self.sharding.shards.is_some();
        match self.limit {
            Some(0) => {
                return Some(crate::exit::UsageError("--limit 0 would read nothing; give at least 1".into()));
            }
            Some(_) if self.clean || sharded => {
                return Some(crate::exit::UsageError(
                    "--limit writes a few items as a test, and --clean (or sharding) works on whole tables: leave one of them out"
                        .into(),
                ));
            }
            _ => {}
        }
        (sharded && self.clean).then(|| {
            crate::exit::UsageError(
                "--clean deletes and recreates whole tables, which no shard may do while the others write: run the \
                 clean load unsharded (leave out --shard and --shards), then the nightly runs sharded"
                    .into(),
            )
        })
    }
}

/// How a sync is split across processes (README, "Sharded runs").
#[derive(Debug, Clone, Default, Args)]
pub struct ShardArgs {
    /// Run shard K of N (K from 0): it reads the whole source but diffs, writes and deletes only
    /// the items whose key falls in its range; start every K from 0 to N-1 with the same --run-id.
    #[arg(long, value_name = "K/N", value_parser = crate::pure::bucket::Shard::parse, allow_hyphen_values = true, conflicts_with = "shards", help_heading = heading::SELECTION)]
    pub shard: Option<crate::pure::bucket::Shard>,
    /// Run one of N shards, K taken from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job) or else
    /// AWS_BATCH_JOB_ARRAY_INDEX (an AWS Batch array job), 1 to 1024.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>, help_heading = heading::SELECTION)]
    pub shards: Option<u32>,
    /// The id the shards of one run share, in their run records (history and report show them as
    /// one run); default for a sharded run: AWS_BATCH_JOB_ID without its :index (on Kubernetes, set
    /// DDBSYNC_RUN_ID to the Job's name, as deploy/kubernetes/ddbsync-sharded.yaml does).
    #[arg(long, value_name = "ID", env = "DDBSYNC_RUN_ID", help_heading = heading::SELECTION)]
    pub run_id: Option<String>,
}

/// Where a sharded run takes K from, in this order, when `--shards N` is given.
pub const SHARD_INDEX_VARS: [&str; 2] = ["JOB_COMPLETION_INDEX", "AWS_BATCH_JOB_ARRAY_INDEX"];

/// Longest run id: it is stored in every shard's run record and lease.
const RUN_ID_MAX: usize = 128;

impl ShardArgs {
    /// The shard and run id of this process, from the flags and then the environment (`var`
    /// reads one variable: the process's own, or a test's); `None` for an unsharded run without
    /// `--run-id`. Every refusal names the flag or variable and the fix (exit 2).
    pub fn resolve(
        &self,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<(crate::pure::bucket::Shard, Option<String>), crate::exit::UsageError> {
        use crate::pure::bucket::Shard;
        let usage = |m: String| crate::exit::UsageError(m);
        let shard = match (self.shard, self.shards) {
            (Some(shard), _) => shard,
            (None, Some(count)) => {
                // The count first: no variable makes a bad one right.
                Shard::new(0, count).map_err(|e| usage(format!("--shards {count}: {e}")))?;
                let found = SHARD_INDEX_VARS.iter().find_map(|name| var(name).map(|v| (*name, v)));
                let Some((name, value)) = found else {
                    return Err(usage(format!(
                        "--shards {count}: neither {} nor {} is set, so this process does not know which shard it \
                         is; run it as a Kubernetes Indexed Job or an AWS Batch array job, or give --shard K/{count}",
                        SHARD_INDEX_VARS[0], SHARD_INDEX_VARS[1]
                    )));
                };
                let index = value.trim().parse::<u32>().map_err(|_| {
                    usage(format!(
                        "--shards {count}: {name}=\"{}\" is not a shard number (a whole number from 0); run it as a \
                         Kubernetes Indexed Job or an AWS Batch array job, or give --shard K/{count}",
                        value.escape_debug()
                    ))
                })?;
                Shard::new(index, count).map_err(|e| usage(format!("--shards {count} with {name}={index}: {e}")))?
            }
            (None, None) => Shard::WHOLE,
        };
        let given = self.run_id.clone().map(|id| ("--run-id (or DDBSYNC_RUN_ID)", id));
        let batch = || {
            var("AWS_BATCH_JOB_ID").map(|id| {
                // A child of an array job is `<parent id>:<index>`; the shards share the parent's.
                let parent = match id.rsplit_once(':') {
                    Some((parent, index)) if index.bytes().all(|b| b.is_ascii_digit()) => parent.to_string(),
                    _ => id,
                };
                ("AWS_BATCH_JOB_ID", parent)
            })
        };
        let run_id = match given.or_else(|| (!shard.is_whole()).then(batch).flatten()) {
            Some((from, id)) => Some(check_run_id(from, &id).map_err(usage)?),
            None if !shard.is_whole() => {
                return Err(usage(format!(
                    "shard {shard} has no run id: the shards of one run must share one, so that history shows them as \
                     one run; give --run-id ID (the same for every shard, such as the date or the scheduler's job \
                     name), or set DDBSYNC_RUN_ID (AWS Batch sets AWS_BATCH_JOB_ID, which is used when present)"
                )))
            }
            None => None,
        };
        Ok((shard, run_id))
    }
}

/// A run id: 1 to 128 printable characters, no space (it is shown in tables and matched exactly).
fn check_run_id(from: &str, id: &str) -> Result<String, String> {
    if id.is_empty() || id.chars().count() > RUN_ID_MAX || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{from}: \"{}\" is not a run id: give 1 to {RUN_ID_MAX} characters without spaces, the same for every \
             shard of the run (such as nightly-2026-11-28)",
            id.chars().take(RUN_ID_MAX + 8).collect::<String>().escape_debug()
        ));
    }
    Ok(id.to_string())
}

/// `--log-format`: how log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    // Plain comments, not doc comments: a value's help would turn every `--help` into the long form.
    // Lines for people (coloured on a terminal).
    Text,
    // One JSON object a line (tracing's JSON formatter), each event with the run's `run_id`.
    Json,
}

/// Where a sync's metrics go, for schedulers to alert on (README, "Metrics"). A delivery that
/// fails is a warning: the exit code stays the run's.
#[derive(Debug, Clone, Default, Args)]
pub struct MetricsArgs {
    /// Write the run's metrics to FILE in the Prometheus text format (for node_exporter's textfile
    /// collector: name it *.prom in the collector's directory), replacing it whole by a rename.
    #[arg(long, value_name = "FILE", value_hint = ValueHint::FilePath, help_heading = heading::OUTPUT)]
    pub metrics_file: Option<PathBuf>,
    /// Push the run's metrics to this Prometheus Pushgateway, in the group job="ddbsync",
    /// env=<env> (user and password, if needed, in the URL; never shown).
    #[arg(long, value_name = "URL", env = "DDBSYNC_PUSHGATEWAY", hide_env_values = true, help_heading = heading::OUTPUT)]
    pub pushgateway: Option<String>,
    /// Print the run's metrics as CloudWatch embedded-metric-format lines on stderr (one per table
    /// and one for the run), for Lambda, ECS and Batch log groups.
    #[arg(long, help_heading = heading::OUTPUT)]
    pub emf: bool,
}

/// Longest `--lock-timeout`: a run waiting longer than a week waits for a run that is not coming.
pub const MAX_LOCK_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// `--lock-timeout` (restic's `--retry-lock`, Terraform's `-lock-timeout`; `--wait-lock` is its
/// older name, kept as a hidden alias for the scripts that use it): a humantime duration of at
/// most [`MAX_LOCK_TIMEOUT`] (a longer one would overflow the clock's arithmetic).
fn lock_timeout(text: &str) -> Result<Duration, String> {
    let wait = humantime::parse_duration(text).map_err(|e| format!("{e} (a duration such as 30s, 10m or 1h)"))?;
    if wait > MAX_LOCK_TIMEOUT {
        // humantime reads `M` as months: `10M` was most likely meant as ten minutes.
        let months = if text.contains('M') { " (M is months; m is minutes)" } else { "" };
        return Err(format!("{text} is longer than the 7 days --lock-timeout accepts (from 0s to 7d){months}"));
    }
    Ok(wait)
}

/// A whole number for a count flag: a negative one said as such (the command then checks the
/// flag's own bounds and says why they are what they are).
/// `status --watch [SECS]`: 1 to 3600 seconds. The value is optional, so a word after `--watch` is
/// taken for it: most likely the environment, given after the flag.
fn watch_secs(text: &str) -> Result<u64, String> {
    match text.trim().parse::<i128>() {
        Ok(secs @ 1..=3600) => Ok(secs as u64),
        Ok(secs) => Err(format!("{secs} seconds: refresh every 1 to 3600 seconds")),
        // A number, not a whole one: an interval, not an environment named before the flag.
        Err(_) if text.trim().parse::<f64>().is_ok_and(f64::is_finite) => {
            Err(format!("{} seconds: the interval is whole seconds, 1 to 3600 (as --watch 2)", text.trim()))
        }
        Err(_) => Err(format!(
            "\"{text}\" is not a number of seconds (1 to 3600); name the environment before --watch (ddbsync \
             status {text} --watch), or give the interval after it (--watch 5)"
        )),
    }
}

fn whole<T: TryFrom<u64>>(text: &str) -> Result<T, String> {
    match text.trim().parse::<i128>() {
        Ok(n) if n < 0 => Err(format!("{n} is negative; give a whole number from 1")),
        Ok(n) => u64::try_from(n).ok().and_then(|n| T::try_from(n).ok()).ok_or_else(|| format!("{n} is too large")),
        Err(_) => Err(format!("\"{text}\" is not a whole number")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn a_watch_interval_is_whole_seconds_and_a_word_is_taken_for_the_environment() {
        assert_eq!(watch_secs("5"), Ok(5));
        let fraction = watch_secs("1.5").unwrap_err();
        assert_eq!(fraction, "1.5 seconds: the interval is whole seconds, 1 to 3600 (as --watch 2)");
        assert!(!fraction.contains("ddbsync status"), "a number is no environment: {fraction}");
        assert!(watch_secs("prod").unwrap_err().contains("ddbsync status prod --watch"));
        assert!(watch_secs("0").unwrap_err().contains("1 to 3600"));
        // Not numbers, whatever Rust's float parser makes of them.
        assert!(watch_secs("inf").unwrap_err().contains("ddbsync status inf --watch"));
    }

    /// `ddbsync --help` and every subcommand's `--help`, exactly as users see them.
    #[test]
    fn help_texts() {
        fn paths(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<Vec<String>>) {
            out.push(path.clone());
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut longer = path.clone();
                longer.push(sub.get_name().to_string());
                paths(sub, longer, out);
            }
        }
        let mut all = Vec::new();
        paths(&Cli::command(), vec!["ddbsync".into()], &mut all);
        assert!(all.len() >= 13, "{}", all.len());
        for path in all {
            let args = path.iter().map(String::as_str).chain(["--help"]);
            let help = Cli::command().term_width(100).try_get_matches_from(args).expect_err("--help stops parsing");
            insta::assert_snapshot!(path.join("_"), help.render().to_string(), &path.join(" "));
        }
    }

    /// Every command's path below the top (`["tables", "create"]`), with its command, built.
    fn commands() -> Vec<(Vec<String>, clap::Command)> {
        fn walk(cmd: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut longer = path.clone();
                longer.push(sub.get_name().to_string());
                out.push((longer.clone(), sub.clone()));
                walk(sub, longer, out);
            }
        }
        let mut top = Cli::command();
        top.build();
        let mut out = vec![(Vec::new(), top.clone())];
        walk(&top, Vec::new(), &mut out);
        out
    }

    /// Each example is a command line of its own command that parses: a flag renamed or removed,
    /// or a value no longer accepted, fails here rather than in a user's terminal.
    #[test]
    fn every_command_has_examples_that_parse() {
        let all = commands();
        assert!(all.len() >= 15, "{}", all.len());
        for (path, command) in all {
            let after = command.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            let examples: Vec<&str> =
                after.lines().skip_while(|l| *l != "Examples:").skip(1).take_while(|l| !l.trim().is_empty()).collect();
            assert!(!examples.is_empty(), "ddbsync {}: no examples in {after:?}", path.join(" "));
            for line in examples {
                // What the shell would pass: up to a comment, a redirection or a pipe.
                let words: Vec<&str> = line.split_whitespace().take_while(|w| !["#", ">", "|"].contains(w)).collect();
                assert_eq!(words[0], "ddbsync", "{line}");
                let matches = match Cli::command().try_get_matches_from(&words) {
                    Ok(m) => m,
                    Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => continue,
                    Err(e) => panic!("{line}: {e}"),
                };
                let mut named = Vec::new();
                let mut at = &matches;
                while let Some((name, sub)) = at.subcommand() {
                    named.push(name.to_string());
                    at = sub;
                }
                assert!(
                    named.starts_with(&path),
                    "ddbsync {}: the example {line:?} is another command's",
                    path.join(" ")
                );
                Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{line}: {e}"));
            }
        }
    }

    #[test]
    fn the_exit_codes_end_the_top_level_help() {
        let help = Cli::command().term_width(100).try_get_matches_from(["ddbsync", "--help"]).unwrap_err();
        let help = help.render().to_string();
        assert!(help.trim_end().ends_with(EXIT_CODES), "{help}");
        assert!(help.contains("Examples:"), "{help}");
    }

    /// A flag has the same heading in every command that takes it, every heading is one of
    /// [`heading::ORDER`], and the headings come in that order everywhere.
    #[test]
    fn options_are_grouped_the_same_way_in_every_command() {
        let mut seen: std::collections::BTreeMap<String, (Option<String>, String)> = Default::default();
        for (path, command) in commands() {
            let name = format!("ddbsync {}", path.join(" "));
            let mut order = Vec::new();
            for arg in command.get_arguments().filter(|a| !a.is_positional()) {
                let flag = arg.get_long().map(String::from).unwrap_or_else(|| arg.get_id().to_string());
                let heading = arg.get_help_heading().map(String::from);
                if let Some(h) = &heading {
                    let rank = heading::ORDER.iter().position(|k| k == h);
                    assert!(rank.is_some(), "{name} --{flag}: heading {h:?} is not one of cli::heading's");
                    // clap lists a heading where its first flag is.
                    if !order.contains(&rank.unwrap()) {
                        order.push(rank.unwrap());
                    }
                }
                match seen.get(&flag) {
                    Some((first, at)) => {
                        assert_eq!(&heading, first, "--{flag} is under {heading:?} in {name}, {first:?} in {at}")
                    }
                    None => {
                        seen.insert(flag, (heading, name.clone()));
                    }
                }
            }
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "{name}: headings out of heading::ORDER");
        }
        assert_eq!(seen["dry-run"].0.as_deref(), Some(heading::SAFETY));
        assert_eq!(seen["json"].0.as_deref(), Some(heading::OUTPUT));
    }

    /// `--version` and `-V`: the name and the version, then the commit and its date when built
    /// from a checkout of this repository (as `git` says now), else nothing more.
    #[test]
    fn the_version_names_the_commit_it_was_built_from() {
        for flag in ["--version", "-V"] {
            let shown = Cli::command().try_get_matches_from(["ddbsync", flag]).unwrap_err();
            assert_eq!(shown.kind(), clap::error::ErrorKind::DisplayVersion);
            let text = shown.render().to_string();
            let rest = text.strip_prefix(concat!("ddbsync ", env!("CARGO_PKG_VERSION"))).expect(&text);
            let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
            match crate::version::from_git(here) {
                None => assert_eq!(rest, "\n", "{flag}"),
                Some(commit) => {
                    let full = std::process::Command::new("git")
                        .current_dir(here)
                        .args(["rev-parse", "HEAD"])
                        .output()
                        .expect("git runs");
                    let full = String::from_utf8(full.stdout).unwrap();
                    let inner = rest.strip_prefix(" (").and_then(|r| r.strip_suffix(")\n")).expect(&text);
                    let (hash, date) = inner.split_once(' ').expect(&text);
                    let hash = hash.strip_suffix("-dirty").unwrap_or(hash);
                    assert_eq!(hash.len(), 12, "{text}");
                    assert!(full.starts_with(hash), "{text} is not HEAD {full}");
                    assert_eq!(hash, commit.hash);
                    assert!(date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-', "{text}");
                    assert_eq!(inner.contains("-dirty"), commit.dirty, "{text}");
                }
            }
        }
    }

    #[test]
    fn the_help_lists_every_exit_code() {
        let lines: Vec<&str> = EXIT_CODES.lines().skip(1).collect();
        assert_eq!(lines.len(), crate::exit::Exit::ALL.len());
        for (line, (code, meaning)) in lines.iter().zip(crate::exit::Exit::ALL) {
            assert_eq!(line.trim(), format!("{}  {meaning}", code as u8));
        }
    }

    /// README's "Exit codes" table has one row per code, in order, and no other.
    #[test]
    fn the_readme_lists_every_exit_code() {
        let readme = include_str!("../README.md");
        let section = readme.split("\n## Exit codes\n").nth(1).expect("README has an Exit codes section");
        let section = section.split("\n## ").next().unwrap_or_default();
        let codes: Vec<&str> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| ")?.split(" |").next())
            .filter(|c| c.chars().all(|c| c.is_ascii_digit()))
            .collect();
        let want: Vec<String> = crate::exit::Exit::ALL.iter().map(|(code, _)| (*code as u8).to_string()).collect();
        assert_eq!(codes, want);
    }

    #[test]
    fn sync_exit_code_needs_dry_run() {
        let refused = |args: &[&str]| match Cli::try_parse_from(args).unwrap().command {
            Command::Sync(sync) => sync.refused().map(|e| e.to_string()),
            _ => unreachable!("a sync"),
        };
        let message = refused(&["ddbsync", "sync", "dev", "--exit-code"]).expect("refused");
        assert!(message.starts_with("--exit-code needs --dry-run: "), "{message}");
        assert_eq!(refused(&["ddbsync", "sync", "dev", "--dry-run", "--exit-code"]), None);
        assert_eq!(refused(&["ddbsync", "sync", "dev"]), None);
    }

    #[test]
    fn the_repair_flags_need_repair() {
        for flag in ["--yes", "--dry-run", "--allow-mass-delete", "--force-unlock"] {
            let err = Cli::try_parse_from(["ddbsync", "verify", "dev", flag]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{flag}");
            assert!(err.to_string().contains("--repair"), "{flag}: {err}");
            assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--repair", flag]).is_ok(), "{flag}");
        }
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--lock-timeout", "1m"]).is_err());
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--repair", "--lock-timeout", "1m"]).is_ok());
    }

    /// `--lock-timeout` on every command that takes the run lock, and `--wait-lock`, its older name,
    /// still accepted there (scripts use it) though no help shows it.
    #[test]
    fn every_command_that_locks_waits_with_lock_timeout_or_its_old_name() {
        fn timeout(cli: Cli) -> Option<Duration> {
            match cli.command {
                Command::Sync(a) => a.lock_timeout,
                Command::Backup(a) => a.lock_timeout,
                Command::Restore(a) => a.lock_timeout,
                Command::Verify(a) => a.lock_timeout,
                Command::Tables(TablesCommand::Drop(a)) => a.lock_timeout,
                other => panic!("{other:?} takes no lock"),
            }
        }
        let commands: [&[&str]; 5] = [
            &["sync", "dev"],
            &["backup", "dev"],
            &["restore", "b.tar"],
            &["verify", "dev", "--repair"],
            &["tables", "drop", "dev"],
        ];
        for command in commands {
            for (flag, value) in [("--lock-timeout", "10m"), ("--wait-lock", "10m"), ("--lock-timeout", "0s")] {
                let wait = [flag, value];
                let cli = Cli::try_parse_from(["ddbsync"].iter().chain(command).chain(&wait))
                    .unwrap_or_else(|e| panic!("{command:?} {flag}: {e}"));
                assert_eq!(timeout(cli), Some(humantime::parse_duration(value).unwrap()), "{command:?} {flag}");
            }
            let mut cmd = Cli::command();
            let help = cmd.try_get_matches_from_mut(["ddbsync"].iter().chain(command).chain(&["--help"]));
            let help = help.unwrap_err().to_string();
            assert!(help.contains("--lock-timeout <DURATION>"), "{command:?}: {help}");
            assert!(!help.contains("wait-lock"), "{command:?}: the old name is hidden: {help}");
        }
    }

    #[test]
    fn sample_and_full_exclude_each_other_and_sample_needs_a_number() {
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--sample", "5", "--full"]).is_err());
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--sample", "many"]).is_err());
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--sample", "5"]).is_ok());
    }

    #[test]
    fn numbers_out_of_range_are_refused_naming_the_flag() {
        let cases: [&[&str]; 10] = [
            &["sync", "dev", "--scan-segments", "-1"],
            &["verify", "dev", "--sample", "0"],
            &["verify", "dev", "--sample", "1000001"],
            &["verify", "dev", "--sample", "-1"],
            &["history", "dev", "--limit", "0"],
            &["history", "dev", "--limit", ""],
            &["sync", "dev", "--scan-segments", "4294967296"],
            &["sync", "dev", "--max-in-flight", "many"],
            &["backup", "dev", "--lock-timeout", "18446744073709551615s"],
            &["sync", "dev", "--lock-timeout", "8d"],
        ];
        for args in cases {
            let err = Cli::try_parse_from(["ddbsync"].iter().chain(args)).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
            let flag = args[2];
            assert!(err.to_string().contains(&format!("invalid value '{}' for '{flag} <", args[3])), "{err}");
        }
        let err =
            Cli::try_parse_from(["ddbsync", "backup", "dev", "--lock-timeout", "18446744073709551615s"]).unwrap_err();
        assert!(err.to_string().contains("longer than the 7 days --lock-timeout accepts (from 0s to 7d)"), "{err}");
        assert!(Cli::try_parse_from(["ddbsync", "backup", "dev", "--lock-timeout", "7d"]).is_ok());
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--lock-timeout", "10M"]).unwrap_err();
        assert!(err.to_string().contains("(M is months; m is minutes)"), "{err}");
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--lock-timeout", "8d"]).unwrap_err();
        assert!(!err.to_string().contains("months"), "{err}");
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--lock-timeout", "soon"]).unwrap_err();
        assert!(err.to_string().contains("a duration such as 30s, 10m or 1h"), "{err}");
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--sample", "1000000"]).is_ok());
        // A negative count is said as such, not as a range of the flag's type.
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--scan-segments", "-1"]).unwrap_err();
        assert!(err.to_string().contains("-1 is negative; give a whole number from 1"), "{err}");
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--max-in-flight", "many"]).unwrap_err();
        assert!(err.to_string().contains("\"many\" is not a whole number"), "{err}");
    }

    fn sharding(args: &[&str]) -> ShardArgs {
        let line = ["ddbsync", "sync", "dev"].into_iter().chain(args.iter().copied());
        match Cli::try_parse_from(line).unwrap().command {
            Command::Sync(sync) => sync.sharding,
            _ => unreachable!(),
        }
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_shard_takes_its_index_from_the_scheduler_and_its_run_id_from_the_flag_or_batch() {
        use crate::pure::bucket::Shard;
        let k8s = sharding(&["--shards", "4", "--run-id", "nightly-1"]);
        let (shard, id) =
            k8s.resolve(vars(&[("JOB_COMPLETION_INDEX", "2"), ("AWS_BATCH_JOB_ARRAY_INDEX", "3")])).unwrap();
        assert_eq!((shard, id.as_deref()), (Shard::new(2, 4).unwrap(), Some("nightly-1")), "Kubernetes' first");
        let batch = sharding(&["--shards", "8"]);
        let env = [("AWS_BATCH_JOB_ARRAY_INDEX", "7"), ("AWS_BATCH_JOB_ID", "6a1c-22:7")];
        let (shard, id) = batch.resolve(vars(&env)).unwrap();
        assert_eq!((shard, id.as_deref()), (Shard::new(7, 8).unwrap(), Some("6a1c-22")), "the parent's id");
        let (shard, id) = sharding(&[]).resolve(vars(&env)).unwrap();
        assert_eq!((shard, id), (Shard::WHOLE, None), "an unsharded run ignores the scheduler");
        let (_, id) = sharding(&["--shard", "1/2", "--run-id", "r"]).resolve(vars(&env)).unwrap();
        assert_eq!(id.as_deref(), Some("r"), "the flag wins over AWS_BATCH_JOB_ID");
    }

    #[test]
    fn a_shard_without_an_index_or_a_run_id_is_refused_with_the_fix() {
        for (args, env, says) in [
            (
                &["--shards", "4", "--run-id", "r"][..],
                &[][..],
                "neither JOB_COMPLETION_INDEX nor AWS_BATCH_JOB_ARRAY_INDEX",
            ),
            (
                &["--shards", "4", "--run-id", "r"],
                &[("JOB_COMPLETION_INDEX", "x1")],
                "JOB_COMPLETION_INDEX=\"x1\" is not a shard number",
            ),
            (&["--shards", "4", "--run-id", "r"], &[("JOB_COMPLETION_INDEX", "4")], "numbered from 0 to 3"),
            (&["--shards", "0", "--run-id", "r"], &[("JOB_COMPLETION_INDEX", "0")], "1 to 1024 shards"),
            (&["--shard", "1/4"], &[], "shard 1/4 has no run id"),
            (&["--shard", "1/4", "--run-id", "two words"], &[], "is not a run id"),
            (&["--run-id", ""], &[], "is not a run id"),
        ] {
            let err = sharding(args).resolve(vars(env)).unwrap_err();
            assert!(err.0.contains(says), "{args:?}: {}", err.0);
        }
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--shard", "4/4"]).unwrap_err();
        assert!(err.to_string().contains("numbered from 0 to 3"), "{err}");
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--shard", "0/4", "--shards", "4"]).unwrap_err();
        assert!(err.to_string().contains("cannot be used with"), "{err}");
        let Command::Sync(clean) =
            Cli::try_parse_from(["ddbsync", "sync", "dev", "--shard", "0/2", "--clean"]).unwrap().command
        else {
            unreachable!()
        };
        assert!(clean.refused().unwrap().0.contains("run the clean load unsharded"));
    }
}
