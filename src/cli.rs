//! Command-line arguments. Every flag's doc comment is its `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The exit codes, at the end of `--help` (a test holds it to [`crate::exit::Exit::ALL`]).
pub const EXIT_CODES: &str = "Exit codes:
  0  success
  1  error: a server, a query or a check failed
  2  bad usage or profile; nothing was done
  3  differences: rows rejected or not written, deletes refused, or verify found differences
  4  another run holds the lock of a table; nothing was done
  5  interrupted by SIGTERM or SIGINT; what was written is kept, the next run completes it
  6  changes pending: sync --dry-run --exit-code would write or delete something";

#[derive(Debug, Parser)]
#[command(
    name = "ddbsync",
    version,
    about = "Keep DynamoDB tables in sync with PostgreSQL or SQLite, writing only what changed",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Directory holding the environment profiles (<env>.toml).
    #[arg(long, global = true, env = "DDBSYNC_ENVS_DIR", hide_env_values = true, default_value = "envs")]
    pub envs_dir: PathBuf,
    /// Print the result as JSON on stdout (every command that reports).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only the report: no progress bars, no notes.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log what happens (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How log lines are written on stderr: text, or one JSON object a line for log shippers, each
    /// with the run's run_id (notes and warnings then come as log events too).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
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
    /// Check that a sync can run: profile, the source database, every query, AWS credentials, the tables.
    Check(EnvArgs),
    /// Create or drop an environment's tables without syncing.
    #[command(subcommand)]
    Tables(TablesCommand),
    /// Compare what DynamoDB holds with the source, item by item; exit 3 when they differ.
    Verify(VerifyArgs),
    /// List the recorded runs: items written and skipped, units, cost and savings per run.
    History(HistoryArgs),
    /// Sum the recorded runs over a period: items, units, cost and savings per table.
    Report(ReportArgs),
    /// Print the least-privilege IAM policy this profile needs (JSON).
    IamPolicy(IamArgs),
}

/// An environment and, optionally, some of its tables.
#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The environment: the name of a profile in the profiles directory.
    pub env: String,
    /// Only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TablesCommand {
    /// Create the tables that do not exist yet (key types from the queries' columns), and add the
    /// global indexes that existing tables lack.
    Create(EnvArgs),
    /// Delete the tables (never the metadata table); asks first.
    Drop(DropArgs),
}

#[derive(Debug, Args)]
pub struct DropArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Do not ask (for scripts); a protected environment always needs it.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// While another run holds the lock of a table, wait up to this long for it (30s, 10m, 1h; at
    /// most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub target: EnvArgs,
    /// Compare about N source items read by key and N target items from a random place (default 100, at
    /// most 1000000).
    #[arg(long, value_name = "N", conflicts_with = "full", allow_negative_numbers = true, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub sample: Option<u32>,
    /// Compare every item (reads the whole table).
    #[arg(long)]
    pub full: bool,
    /// A query parameter, as for sync; repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::pure::params::parse)]
    pub params: Vec<(String, String)>,
    /// Then write the missing and differing items from the source and delete the extra ones where
    /// the mapping sets delete_missing, under the run lock, as a sync writes (asks first).
    #[arg(long)]
    pub repair: bool,
    /// With --repair: do not ask (for scripts); a protected environment always needs it.
    #[arg(long, short = 'y', requires = "repair")]
    pub yes: bool,
    /// With --repair: say what would be written and deleted; write nothing.
    #[arg(long, requires = "repair")]
    pub dry_run: bool,
    /// With --repair: let deletes remove more than sync.max_delete_fraction of a table.
    #[arg(long, requires = "repair")]
    pub allow_mass_delete: bool,
    /// With --repair: take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long, requires = "repair")]
    pub force_unlock: bool,
    /// With --repair: while another run holds the lock of a table, wait up to this long for it (30s,
    /// 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout, requires = "repair")]
    pub lock_timeout: Option<Duration>,
    /// With --repair: spend at most this many write units per second, 1 to 1000000 (overrides
    /// sync.max_write_units_per_second).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>, requires = "repair")]
    pub max_write_units_per_second: Option<u32>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The environment whose runs to list.
    pub env: String,
    /// Only runs started since then: a duration back (30d, 12h, 2w) or a date (2026-11-01).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// The newest N runs at most.
    #[arg(long, value_name = "N", default_value_t = 30, allow_negative_numbers = true, value_parser = whole::<u32>, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The environment whose runs to sum.
    pub env: String,
    /// The period: a duration back (30d, 12h, 2w) or a date (2026-11-01); `all` for every run.
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    pub since: String,
    /// Print CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct IamArgs {
    /// The environment whose tables the policy covers.
    pub env: String,
    /// Only what these commands need (repeatable); default: all of them.
    #[arg(long = "for", value_name = "USE", value_enum)]
    pub uses: Vec<crate::pure::iam::Use>,
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
    /// While another run (a sync, a restore) holds the environment's lock, wait up to this long for
    /// it (30s, 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,
    /// Take the run lock even if another run holds it (when that run is known to be gone).
    #[arg(long)]
    pub force_unlock: bool,
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
    /// Restore a table even when its key in the backup is not the key its mapping gives now (a sync
    /// then refuses the table until `sync --clean`).
    #[arg(long)]
    pub allow_key_change: bool,
    /// Read a backup written before manifests carried a checksum (format ddbsync-backup/1), whose
    /// counts and key schemas cannot be checked for edits.
    #[arg(long)]
    pub allow_unchecked_manifest: bool,
    /// While another run (a sync, a backup) holds the lock of a table, wait up to this long for it
    /// (30s, 10m, 1h; at most 7d) instead of exiting 4.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The environment: the name of a profile in the profiles directory (dev, prod, local…).
    pub env: String,
    /// Compute the same diff and report, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: exit 6 when the run would write or delete something (create, update or delete
    /// an item, create or recreate a table), 0 when it would not; rejected rows still exit 3.
    #[arg(long, requires = "dry_run")]
    pub exit_code: bool,
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
    /// While another run holds the lock of a table, wait up to this long for it (30s, 10m, 1h; at
    /// most 7d) instead of exiting 4: a scheduled sync that may overlap a backup or a longer run.
    #[arg(long, alias = "wait-lock", value_name = "DURATION", value_parser = lock_timeout)]
    pub lock_timeout: Option<Duration>,
    /// Where to list rejected and unwritten rows (JSON lines); default <rejects_dir>/<env>-<time>.jsonl.
    #[arg(long, value_name = "FILE")]
    pub rejects_file: Option<PathBuf>,
    /// Sync only this table (its name without the prefix); repeatable.
    #[arg(long = "table", value_name = "NAME")]
    pub tables: Vec<String>,
    /// Spend at most this many write units per second, 1 to 1000000 (overrides sync.max_write_units_per_second).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub max_write_units_per_second: Option<u32>,
    /// BatchWriteItem calls in flight at most, 1 to 1000 (overrides sync.max_in_flight).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<usize>)]
    pub max_in_flight: Option<usize>,
    /// Parallel Scan segments for the diff, 1 to 1000 (overrides sync.scan_segments).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole::<u32>)]
    pub scan_segments: Option<u32>,
    /// A value for the queries' parameter NAME (bound to $1, $2… as the mapping's `params` lists
    /// them; never put into the SQL text); repeatable.
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = crate::pure::params::parse)]
    pub params: Vec<(String, String)>,
    #[command(flatten)]
    pub metrics: MetricsArgs,
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
#[command(next_help_heading = "Metrics")]
pub struct MetricsArgs {
    /// Write the run's metrics to FILE in the Prometheus text format (for node_exporter's textfile
    /// collector: name it *.prom in the collector's directory), replacing it whole by a rename.
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Push the run's metrics to this Prometheus Pushgateway, in the group job="ddbsync",
    /// env=<env> (user and password, if needed, in the URL; never shown).
    #[arg(long, value_name = "URL", env = "DDBSYNC_PUSHGATEWAY", hide_env_values = true)]
    pub pushgateway: Option<String>,
    /// Print the run's metrics as CloudWatch embedded-metric-format lines on stderr (one per table
    /// and one for the run), for Lambda, ECS and Batch log groups.
    #[arg(long)]
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
        return Err(format!("{text} is longer than the 7 days --lock-timeout accepts (from 0s to 7d)"));
    }
    Ok(wait)
}

/// A whole number for a count flag: a negative one said as such (the command then checks the
/// flag's own bounds and says why they are what they are).
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
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--exit-code"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--dry-run"), "{err}");
        assert!(Cli::try_parse_from(["ddbsync", "sync", "dev", "--dry-run", "--exit-code"]).is_ok());
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
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--lock-timeout", "soon"]).unwrap_err();
        assert!(err.to_string().contains("a duration such as 30s, 10m or 1h"), "{err}");
        assert!(Cli::try_parse_from(["ddbsync", "verify", "dev", "--sample", "1000000"]).is_ok());
        // A negative count is said as such, not as a range of the flag's type.
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--scan-segments", "-1"]).unwrap_err();
        assert!(err.to_string().contains("-1 is negative; give a whole number from 1"), "{err}");
        let err = Cli::try_parse_from(["ddbsync", "sync", "dev", "--max-in-flight", "many"]).unwrap_err();
        assert!(err.to_string().contains("\"many\" is not a whole number"), "{err}");
    }
}
