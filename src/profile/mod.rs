//! Environment profiles: `envs/<env>.toml` plus the shared mappings file it names, read once and
//! turned into the validated [`Profile`] the engine takes.
//!
//! Invariants: every error names the file (and the TOML line and column where the parser knows
//! them) and says how to fix it; nothing downstream sees an unvalidated value; no secret is read
//! here (a profile only names the variable that holds the password).

mod mapping;
mod raw;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::pure::cost::Prices;
use mapping::{bad_characters, check_param_name, name_flaw, table_mapping, NAME_RULE};
pub use mapping::{
    compared_with, distinct, placeholders, scope_attributes, DiffMode, Entity, Index, KeySource, KeySpec, Projection,
    Promote, TableMapping,
};
pub use template::{Part, Template};

/// A profile error: the file it concerns and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ProfileError {
    pub path: PathBuf,
    pub message: String,
}

impl ProfileError {
    pub fn new(path: &Path, message: impl Into<String>) -> Self {
        ProfileError { path: path.to_path_buf(), message: message.into() }
    }
}

/// A validated environment profile.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The environment's name (the file stem).
    pub env: String,
    /// The environment file.
    pub path: PathBuf,
    pub description: Option<String>,
    pub protected: bool,
    pub source: SourceConfig,
    pub target: TargetConfig,
    pub prices: Prices,
    pub sync: SyncSettings,
    pub tables: Vec<TableMapping>,
    /// Parameter values used when `--param` does not give them.
    pub param_defaults: std::collections::BTreeMap<String, String>,
    /// Full name of the table that records runs and holds the run lock.
    pub metadata_table: String,
    /// What makes a promotion's new IDs this environment's (`target.id_namespace`, else the
    /// environment's name).
    pub id_namespace: String,
    /// Where `--clean` on a protected environment writes its backup.
    pub backup_dir: PathBuf,
    /// Where the list of rejected and unwritten rows goes.
    pub rejects_dir: PathBuf,
    /// The prices come from the profile's `[prices]`, not from the region's built-in table.
    prices_given: bool,
}

impl Profile {
    /// Sets the region AWS's chain found for a profile that gives none (`origin` says which link
    /// of the chain), and the region's prices unless the profile has a `[prices]` section.
    pub fn settle_region(&mut self, region: String, origin: String) -> Result<(), ProfileError> {
        if !is_region_name(&region) {
            return Err(ProfileError::new(
                &self.path,
                format!(
                    "{origin} gives the region \"{}\", which is not an AWS region name (such as eu-west-1); fix \
                     it, or set target.region in this file, which wins",
                    region.escape_debug()
                ),
            ));
        }
        if !self.prices_given {
            self.prices = Prices::builtin(&region).ok_or_else(|| {
                ProfileError::new(
                    &self.path,
                    format!(
                        "no built-in prices for region \"{region}\" (from {origin}; built in: {}); add a [prices] \
                         section with write_per_million and read_per_million",
                        Prices::builtin_regions().join(", ")
                    ),
                )
            })?;
        }
        self.target.region = region;
        self.target.region_origin = origin;
        Ok(())
    }

    /// Whether the region is known yet (the profile's, or [`Profile::settle_region`]'s).
    pub fn region_settled(&self) -> bool {
        !self.target.region.is_empty()
    }

    /// The region, and the endpoint when it is not AWS's, for messages.
    pub fn location(&self) -> String {
        match &self.target.endpoint_url {
            Some(url) => format!("{} ({url})", self.target.region),
            None => self.target.region.clone(),
        }
    }
}

/// Which database the source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    Postgres,
    /// A SQLite database file (resolved against the environment file's directory).
    Sqlite {
        path: PathBuf,
    },
    /// Another environment's DynamoDB tables (a promotion).
    DynamoDb(DynamoSource),
}

/// Where a DynamoDB source is, and how its tables are named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoSource {
    /// `{table}` stands for each mapping's source table.
    pub table_template: String,
    /// None: the target's region (settled with it).
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// None: the target's.
    pub aws_profile: Option<String>,
    pub scan_segments: u32,
    /// `sync --limit`: read only a sample (set by the command line, never by a profile file).
    pub sample: Option<Sample>,
}

/// `sync --limit N`: the first N items of each of `roots` (mapping names), and the items they
/// reference, transitively, instead of whole tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub roots: Vec<String>,
    pub limit: usize,
}

impl SourceKind {
    /// The database's name, for messages.
    pub fn system(&self) -> &'static str {
        match self {
            SourceKind::Postgres => "PostgreSQL",
            SourceKind::Sqlite { .. } => "SQLite",
            SourceKind::DynamoDb(_) => "DynamoDB",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// The variable holding the connection string (`url_env`), read when connecting.
    pub url_env: Option<String>,
    /// The profile's libpq service; without it `PGSERVICE` (resolved when connecting).
    pub service: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    /// The environment variable named by `password_env`, if any.
    pub password_env: Option<String>,
    /// The profile's `sslmode`; without it `PGSSLMODE`, else `prefer` (resolved when connecting).
    pub sslmode: Option<SslMode>,
    /// CA certificates for `verify-ca` / `verify-full` (the profile's, else libpq's defaults).
    pub sslrootcert: Option<PathBuf>,
    /// The profile's `connect_timeout_secs`; without it `PGCONNECT_TIMEOUT`, else 10 seconds.
    pub connect_timeout: Option<Duration>,
    /// Longest wait for PostgreSQL's next answer (a prepare, a query's next row).
    pub read_timeout: Duration,
}

/// The longest any wait on a server may be set to: a day. Longer is a typo (milliseconds meant for
/// seconds), and an unattended run must end before the next night's.
pub const MAX_WAIT_SECS: u64 = 86_400;

/// libpq's `sslmode` values, except `allow` (plain first, TLS on refusal), which nobody should want.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(text: &str) -> Option<SslMode> {
        // `allow` is refused like any unknown value rather than silently treated as `prefer`.
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name libpq gives the mode.
    pub fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// The region: the profile's `region`, or, without it, the one AWS's chain gives, set by
    /// [`Profile::settle_region`] before any command uses the profile (empty until then).
    pub region: String,
    /// Where `region` came from (`target.region in envs/dev.toml`, `AWS_REGION`, …), for `check`.
    pub region_origin: String,
    /// Attempts per control-plane call; `None`: the SDK's chain decides (`AWS_MAX_ATTEMPTS`, …).
    pub max_attempts: Option<u32>,
    /// `adaptive` rather than `standard` retries; `None`: the SDK's chain decides.
    pub adaptive_retries: Option<bool>,
    pub connect_timeout: Duration,
    pub attempt_timeout: Duration,
    pub operation_timeout: Duration,
    pub endpoint_url: Option<String>,
    pub aws_profile: Option<String>,
    /// The 12-digit account, for the ARNs of the IAM policy.
    pub account_id: Option<String>,
}

/// The values a numeric sync setting may take, the same in a profile and on the command line.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub min: u64,
    pub max: u64,
    /// Why the maximum, for the message.
    pub why: &'static str,
}

impl Bounds {
    /// `what` (`sync.scan_segments = 0`, `--scan-segments 0:`) must be between …, or why not.
    pub fn check(&self, what: &str, value: u64) -> Result<u64, String> {
        if (self.min..=self.max).contains(&value) {
            return Ok(value);
        }
        Err(format!("{what} must be between {} and {} ({})", self.min, self.max, self.why))
    }
}

/// Each segment is a task and at least one Scan call (DynamoDB allows up to 1,000,000 segments).
pub const SCAN_SEGMENTS: Bounds =
    Bounds { min: 1, max: 1000, why: "each segment is a task and at least one Scan call; 4 to 32 suit most tables" };
/// More calls in flight than the shuffle window holds batches gain nothing.
pub const MAX_IN_FLIGHT: Bounds =
    Bounds { min: 1, max: 1000, why: "throttling halves it anyway; 8 to 64 suit most tables" };
pub const MAX_ATTEMPTS: Bounds =
    Bounds { min: 1, max: 100, why: "backoff waits up to 10 s between attempts; 10 is the default" };
/// The SDK's attempts per control-plane call: its own default differs from `sync.max_attempts`'.
pub const TARGET_MAX_ATTEMPTS: Bounds = Bounds {
    min: 1,
    max: 100,
    why: "leave it out for AWS_MAX_ATTEMPTS, else the AWS profile's max_attempts, else the SDK's default of 3",
};
/// Far above any table's quota (40,000 per second by default), well within the rate limiter's reach.
pub const MAX_WRITE_UNITS_PER_SECOND: Bounds = Bounds {
    min: 1,
    max: 1_000_000,
    why: "0 would never write: leave it out for no cap; a table's default quota is 40,000",
};
/// A lease left by a killed run on another host blocks the environment until it expires.
pub const LOCK_LEASE_SECS: Bounds =
    Bounds { min: 1, max: 86_400, why: "a killed run's lease blocks every other run until it expires" };

#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub scan_segments: u32,
    pub max_in_flight: usize,
    pub max_attempts: u32,
    pub max_write_units_per_second: Option<std::num::NonZeroU32>,
    /// Any rejected row fails the run before the first write.
    pub fail_on_reject: bool,
    pub max_delete_fraction: f64,
    pub lock_lease: Duration,
    /// Longest time a run may go without progress before it lets its lock go and stops: the
    /// longest single wait it makes (a source answer, a table becoming ready) plus one lease.
    pub stall_limit: Duration,
}

impl SyncSettings {
    /// Applies command-line values over the profile's (the command line wins), checked with the
    /// profile's bounds.
    pub fn overridden(
        mut self,
        scan_segments: Option<u32>,
        max_in_flight: Option<usize>,
        max_wcu: Option<u32>,
    ) -> Result<Self, crate::exit::UsageError> {
        let check = |flag: &str, bounds: Bounds, n: u64| {
            bounds.check(&format!("--{flag} {n}:"), n).map_err(crate::exit::UsageError)
        };
        if let Some(n) = scan_segments {
            self.scan_segments = check("scan-segments", SCAN_SEGMENTS, n.into())? as u32;
        }
        if let Some(n) = max_in_flight {
            self.max_in_flight = check("max-in-flight", MAX_IN_FLIGHT, n as u64)? as usize;
        }
        if let Some(n) = max_wcu {
            check("max-write-units-per-second", MAX_WRITE_UNITS_PER_SECOND, n.into())?;
            self.max_write_units_per_second = std::num::NonZeroU32::new(n);
        }
        Ok(self)
    }
}

/// The environments available in `dir` (file stems of `*.toml`), sorted.
pub fn available(dir: &Path) -> Result<Vec<String>, ProfileError> {
    let mut names: Vec<String> = read_envs_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    Ok(names)
}

/// Opens the environments directory: one that is missing, not a directory or unreadable is said
/// as such, with the fix.
fn read_envs_dir(dir: &Path) -> Result<std::fs::ReadDir, ProfileError> {
    const WHERE: &str = "--envs-dir DIR or DDBSYNC_ENVS_DIR names it (default: envs in the working directory)";
    std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            ProfileError::new(dir, format!("the environments directory does not exist; {WHERE}"))
        }
        _ if dir.exists() && !dir.is_dir() => {
            ProfileError::new(dir, format!("is not a directory, so it cannot hold environments; {WHERE}"))
        }
        _ => ProfileError::new(
            dir,
            format!("cannot read the environments directory: {e}; give the user running ddbsync read and search access to it"),
        ),
    })
}

/// Reads and validates `dir/<env>.toml` and the mappings it names.
pub fn load(dir: &Path, env: &str) -> Result<Profile, ProfileError> {
    let path = dir.join(format!("{env}.toml"));
    find(dir, env, &path)?;
    let file: raw::EnvFile = read_toml(&path)?;
    let mappings_path = path.parent().unwrap_or(Path::new(".")).join(&file.mappings);
    inside(dir, &path, &file.mappings, &mappings_path)?;
    let mappings = read_mappings(&mappings_path)?;
    validate(env, &path, file, &mappings_path, mappings)
}

/// Checks that `path` is the environment's profile file. An environments directory that is
/// missing or cannot be read, and a profile that is a directory, are said as such: calling them an
/// unknown environment would send the user looking for a typo.
fn find(dir: &Path, env: &str, path: &Path) -> Result<(), ProfileError> {
    let unknown = |listing: &str| {
        // `sync dev.toml`: the environment is the file's name without `.toml`.
        let hint = env
            .strip_suffix(".toml")
            .filter(|stem| dir.join(format!("{stem}.toml")).is_file())
            .map(|stem| format!(" (the environment is named without .toml: {stem})"))
            .unwrap_or_default();
        ProfileError::new(
            path,
            format!("unknown environment \"{env}\"{hint}; available in {}: {listing}", dir.display()),
        )
    };
    if env.contains(['/', '\\']) {
        read_envs_dir(dir)?;
        return Err(unknown(&listing(dir)));
    }
    let error = match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => return Ok(()),
        Ok(meta) if meta.is_dir() => {
            return Err(ProfileError::new(
                path,
                format!(
                    "is a directory, not a profile: environment \"{env}\" is the file {env}.toml in {}; rename or \
                     remove the directory",
                    dir.display()
                ),
            ))
        }
        Ok(_) => return Err(ProfileError::new(path, "is not a regular file; a profile is a TOML file")),
        Err(e) => e,
    };
    read_envs_dir(dir)?;
    if error.kind() == std::io::ErrorKind::NotFound {
        Err(unknown(&listing(dir)))
    } else {
        Err(ProfileError::new(path, format!("cannot read: {error}")))
    }
}

/// The available environments, for a message: `dev, prod`, or `none`.
fn listing(dir: &Path) -> String {
    let names = available(dir).unwrap_or_default();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::new(path, format!("cannot read: {e}")))?;
    toml::from_str(&text).map_err(|e| ProfileError::new(path, toml_error(&text, &e)))
}

/// toml's error said without the line's text or the value: a profile's file is where someone
/// may paste a password or a connection string by mistake, and an error may be logged or shown
/// in a CI job. The key, the line and the column say where; the message says what was expected.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let at = e.span().map(|span| line_and_column(text, span.start));
    let key = at.and_then(|(line, _)| key_at(text, line));
    let message = e.message().trim_end();
    let what = if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split_once('`')) {
        let (name, rest) = field;
        let hint = match name {
            "password" => {
                "; a profile holds no password: name the variable that holds it with password_env = \"PGPASSWORD_PROD\", \
                 or leave it to PGPASSWORD or ~/.pgpass"
            }
            _ => "",
        };
        format!("unknown field `{name}`{rest}{hint}")
    } else if message.starts_with("invalid type: ") || message.starts_with("invalid value: ") {
        let expected = message.rsplit_once(", expected ").map(|(_, e)| e).unwrap_or("another kind of value");
        match &key {
            Some(key) if key.ends_with("_secs") => {
                format!("{key} must be a whole number of seconds between 1 and {MAX_WAIT_SECS} (a day)")
            }
            _ => format!("the value is not {}", expected_words(expected)),
        }
    } else if message.starts_with("unknown variant ") {
        let expected = message.rsplit_once(", expected ").map(|(_, e)| e).unwrap_or("another value");
        format!("the value is not supported; expected {expected}")
    } else {
        // toml's own syntax messages ("invalid string", "expected `=`") hold no text of the file.
        message.to_string()
    };
    let key = key.filter(|k| !what.starts_with(k.as_str())).map(|k| format!("{k}: ")).unwrap_or_default();
    match at {
        Some((line, column)) => {
            format!("TOML parse error at line {line}, column {column}: {key}{what} (the line is not shown)")
        }
        None => format!("TOML parse error: {key}{what}"),
    }
}

/// serde's name of an expected type, in words.
fn expected_words(expected: &str) -> String {
    match expected {
        "u8" => "a whole number from 0 to 255".to_string(),
        "u16" => "a whole number from 0 to 65535".to_string(),
        "u32" => "a whole number from 0 to 4294967295".to_string(),
        "u64" | "usize" => "a whole number, 0 or more".to_string(),
        "i64" => "a whole number".to_string(),
        "f64" => "a number".to_string(),
        other if other.starts_with("struct ") || other.starts_with("a map") => "a table ([section])".to_string(),
        other => other.to_string(),
    }
}

/// The dotted key written on 1-based `line` (`source.connect_timeout_secs`), when the line is a
/// plain `key = value`: the section is the last `[header]` above it. Only a key's name is taken
/// from the file, never anything after `=`.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let own = lines.get(line.checked_sub(1)?)?;
    let (name, _) = own.split_once('=')?;
    let name = name.trim();
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if !plain(name) {
        return None;
    }
    let section = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l.strip_prefix('[')?.split_once(']')?.0.trim_matches(|c| c == '[' || c == ' ');
        Some(inner.to_string())
    });
    match section {
        Some(section) if plain(&section) => Some(format!("{section}.{name}")),
        Some(_) => None,
        None => Some(name.to_string()),
    }
}

/// Refuses a `mappings` path that leads outside the environments directory, symbolic links
/// resolved: a profile names a mappings file, not any file the user running ddbsync can read.
fn inside(dir: &Path, env_file: &Path, written: &str, mappings: &Path) -> Result<(), ProfileError> {
    let resolved = mappings.canonicalize().map_err(|e| ProfileError::new(mappings, format!("cannot read: {e}")))?;
    let envs = dir.canonicalize().map_err(|e| ProfileError::new(dir, format!("cannot read: {e}")))?;
    if resolved.starts_with(&envs) {
        return Ok(());
    }
    Err(ProfileError::new(
        env_file,
        format!(
            "mappings = \"{written}\" leads to {}, outside the environments directory {}; mappings files must be \
             inside it (for example mappings/pni.toml)",
            resolved.display(),
            envs.display()
        ),
    ))
}

/// Reads the mappings file. `mappings` may name any file, so toml's usual message, which quotes
/// the offending line, is given only for a file that is TOML with a `[tables]` table: the line of
/// some other file (a key file, a password list) is never printed, only where the error is.
fn read_mappings(path: &Path) -> Result<raw::MappingsFile, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::new(path, format!("cannot read: {e}")))?;
    let table = text.parse::<toml::Table>().map_err(|e| {
        let at =
            e.span().map(|span| line_and_column(&text, span.start)).map(|(l, c)| format!(" at line {l}, column {c}"));
        ProfileError::new(
            path,
            format!(
                "not valid TOML{}; `mappings` must name a mappings file (the line is not shown, in case the file \
                 is something else)",
                at.unwrap_or_default()
            ),
        )
    })?;
    if !table.get("tables").is_some_and(toml::Value::is_table) {
        return Err(ProfileError::new(
            path,
            "not a mappings file: it has no [tables.<name>] section; `mappings` must name the file of table mappings",
        ));
    }
    // Said without the line's text, as for the environment file: a password or a connection
    // string pasted into a mappings file by mistake is not shown either.
    toml::from_str(&text).map_err(|e| ProfileError::new(path, toml_error(&text, &e)))
}

/// The 1-based line and column (in characters) of a byte offset.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (before.matches('\n').count() + 1, before[line_start..].chars().count() + 1)
}

/// The source's kind, and for SQLite its file: the settings of the other kind are refused, not
/// ignored, so that a profile says what it uses.
fn source_kind(path: &Path, source: &raw::SourceSection) -> Result<SourceKind, ProfileError> {
    let err = |message: String| ProfileError::new(path, message);
    let postgres_only = [
        ("url_env", source.url_env.is_some()),
        ("service", source.service.is_some()),
        ("host", source.host.is_some()),
        ("port", source.port.is_some()),
        ("dbname", source.dbname.is_some()),
        ("user", source.user.is_some()),
        ("password_env", source.password_env.is_some()),
        ("sslmode", source.sslmode.is_some()),
        ("sslrootcert", source.sslrootcert.is_some()),
        ("connect_timeout_secs", source.connect_timeout_secs.is_some()),
    ];
    let dynamodb_only = [
        ("table_template", source.table_template.is_some()),
        ("region", source.region.is_some()),
        ("endpoint_url", source.endpoint_url.is_some()),
        ("aws_profile", source.aws_profile.is_some()),
        ("scan_segments", source.scan_segments.is_some()),
    ];
    if let Some(other) = source.kind.as_deref().filter(|k| !["postgres", "sqlite", "dynamodb"].contains(k)) {
        return Err(err(format!(
            "source.kind = \"{other}\" is not a source ddbsync reads; use postgres, sqlite or dynamodb (in lower case)"
        )));
    }
    if source.kind.as_deref() != Some("dynamodb") {
        if let Some((key, _)) = dynamodb_only.iter().find(|(_, set)| *set) {
            return Err(err(format!(
                "source.{key} is a setting of a DynamoDB source; add kind = \"dynamodb\" to [source], or remove it"
            )));
        }
    }
    match source.kind.as_deref() {
        None | Some("postgres") => match &source.path {
            Some(_) => Err(err(
                "source.path is the file of a SQLite source; add kind = \"sqlite\" to [source], or remove path for \
                 PostgreSQL"
                    .into(),
            )),
            None => Ok(SourceKind::Postgres),
        },
        Some("sqlite") => {
            if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
                return Err(err(format!(
                    "source.{key} is a PostgreSQL setting, and this source is SQLite (kind = \"sqlite\"); remove it"
                )));
            }
            let Some(file) = source.path.as_deref().filter(|p| !p.trim().is_empty()) else {
                return Err(err(
                    "source.path is missing: a SQLite source names its database file (path = \"data/app.sqlite\", \
                     relative to this file)"
                        .into(),
                ));
            };
            let dir = path.parent().unwrap_or(Path::new("."));
            Ok(SourceKind::Sqlite { path: dir.join(file) })
        }
        Some("dynamodb") => {
            if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
                return Err(err(format!(
                    "source.{key} is a PostgreSQL setting, and this source is DynamoDB (kind = \"dynamodb\"); remove it"
                )));
            }
            if source.path.is_some() {
                return Err(err(
                    "source.path is the file of a SQLite source, and this source is DynamoDB; remove it".into()
                ));
            }
            let table_template = source.table_template.clone().unwrap_or_else(|| "{table}".into());
            if table_template.matches("{table}").count() != 1 {
                return Err(err(format!(
                    "source.table_template = \"{table_template}\" must hold {{table}} once, where each mapping's source \
                     table name goes (\"{{table}}-fvn7t5hbobaxjklhrqzdl4ac34-dev\")"
                )));
            }
            if let Some(region) = source.region.as_deref().filter(|r| !is_region_name(r)) {
                return Err(err(format!("source.region = \"{region}\" is not an AWS region name (such as eu-west-1)")));
            }
            if let Some(flaw) = source.endpoint_url.as_deref().and_then(endpoint_flaw) {
                return Err(err(format!(
                    "source.endpoint_url {flaw}; write the server's address as http://host:port, or leave it out for AWS"
                )));
            }
            let segments = source.scan_segments.unwrap_or(4);
            let scan_segments = SCAN_SEGMENTS
                .check(&format!("source.scan_segments = {segments}"), segments.into())
                .map_err(err)? as u32;
            Ok(SourceKind::DynamoDb(DynamoSource {
                table_template,
                region: source.region.clone(),
                endpoint_url: source.endpoint_url.clone(),
                aws_profile: source.aws_profile.clone(),
                scan_segments,
                sample: None,
            }))
        }
        Some(other) => Err(err(format!(
            "source.kind = \"{other}\" is not a source ddbsync reads; use postgres, sqlite or dynamodb"
        ))),
    }
}

fn validate(
    env: &str,
    path: &Path,
    file: raw::EnvFile,
    mappings_path: &Path,
    mappings: raw::MappingsFile,
) -> Result<Profile, ProfileError> {
    let err = |message: String| ProfileError::new(path, message);
    let sslmode = match file.source.sslmode.as_deref() {
        None => None,
        Some(text) => Some(SslMode::parse(text).ok_or_else(|| {
            err(format!(
                "source.sslmode = \"{text}\" is not supported; use disable, prefer, require, verify-ca or verify-full"
            ))
        })?),
    };
    let connect_timeout = match file.source.connect_timeout_secs {
        Some(secs) => Some(wait(path, "source.connect_timeout_secs", secs)?),
        None => None,
    };
    let read_timeout = wait(path, "source.read_timeout_secs", file.source.read_timeout_secs.unwrap_or(300))?;
    let kind = source_kind(path, &file.source)?;
    let prices_given = file.prices.is_some();
    let prices = match file.prices {
        Some(p) if p.write_per_million >= 0.0 && p.read_per_million >= 0.0 => Prices {
            write_per_million: p.write_per_million,
            read_per_million: p.read_per_million,
            source: format!("{} [prices]", path.display()),
        },
        Some(_) => return Err(err("[prices] must not be negative".into())),
        // Set with the region (`settle_region`).
        None => Prices { write_per_million: 0.0, read_per_million: 0.0, source: String::new() },
    };
    url_env_alone(path, &file.source)?;
    let target = target_config(path, &file.target)?;
    let within =
        |key: &str, bounds: Bounds, value: u64| bounds.check(&format!("sync.{key} = {value}"), value).map_err(err);
    let sync = SyncSettings {
        scan_segments: within("scan_segments", SCAN_SEGMENTS, file.sync.scan_segments.unwrap_or(4).into())? as u32,
        max_in_flight: within("max_in_flight", MAX_IN_FLIGHT, file.sync.max_in_flight.unwrap_or(8) as u64)? as usize,
        max_attempts: within("max_attempts", MAX_ATTEMPTS, file.sync.max_attempts.unwrap_or(10).into())? as u32,
        max_write_units_per_second: match file.sync.max_write_units_per_second {
            Some(n) => {
                within("max_write_units_per_second", MAX_WRITE_UNITS_PER_SECOND, n.into())?;
                std::num::NonZeroU32::new(n)
            }
            None => None,
        },
        fail_on_reject: match file.sync.on_reject.as_deref() {
            None | Some("report") => false,
            Some("fail") => true,
            Some(other) => {
                return Err(err(format!("sync.on_reject = \"{other}\" is not supported; use \"report\" or \"fail\"")))
            }
        },
        max_delete_fraction: match file.sync.max_delete_fraction {
            None => 0.1,
            Some(f) if (0.0..=1.0).contains(&f) => f,
            Some(f) => {
                return Err(err(format!("sync.max_delete_fraction = {f} must be between 0 and 1 (0.1 is 10 %)")))
            }
        },
        lock_lease: Duration::from_secs(within(
            "lock_lease_secs",
            LOCK_LEASE_SECS,
            file.sync.lock_lease_secs.unwrap_or(60),
        )?),
        // The longest single wait is a table becoming ready (TABLE_WAIT, 5 minutes) or a source
        // answer (read_timeout); one lease more, so that the wait ends on its own timeout first.
        stall_limit: read_timeout.max(crate::target::TABLE_WAIT)
            + Duration::from_secs(file.sync.lock_lease_secs.unwrap_or(60).min(LOCK_LEASE_SECS.max)),
    };
    let prefix = &file.table_prefix;
    if let Some(bad) = bad_characters(prefix) {
        return Err(err(format!(
            "table_prefix = \"{prefix}\" has characters DynamoDB refuses in a table name ({bad}); {NAME_RULE}"
        )));
    }
    let suffix = &file.table_suffix;
    if let Some(bad) = bad_characters(suffix) {
        return Err(err(format!(
            "table_suffix = \"{suffix}\" has characters DynamoDB refuses in a table name ({bad}); {NAME_RULE}"
        )));
    }
    let metadata_table = format!("{prefix}{}{suffix}", file.metadata_table.as_deref().unwrap_or("cache-metadata"));
    if let Some(flaw) = name_flaw(&metadata_table) {
        let key = match &file.metadata_table {
            Some(name) => format!("metadata_table = \"{name}\""),
            None if suffix.is_empty() => format!("table_prefix = \"{prefix}\""),
            None => format!("table_prefix = \"{prefix}\" with table_suffix = \"{suffix}\""),
        };
        return Err(err(format!("{key}: the metadata table's name \"{metadata_table}\" {flaw}; {NAME_RULE}")));
    }
    if let Some(url) = &file.target.endpoint_url {
        if let Some(flaw) = endpoint_flaw(url) {
            // A URL with `@` may carry a password (`http://key:secret@host`): named, not quoted.
            let shown = match url.contains('@') {
                true => "target.endpoint_url (not shown: it holds an @, perhaps a password)".to_string(),
                false => format!("target.endpoint_url = \"{url}\""),
            };
            return Err(err(format!(
                "{shown} {flaw}; write the server's address as http://host:port (https:// \
                 for TLS), for example http://localhost:8000, or leave endpoint_url out for AWS itself"
            )));
        }
    }
    let global_excluded = mappings.exclude_from_hash.clone();
    for name in mappings.param_defaults.keys() {
        check_param_name(name).map_err(|m| ProfileError::new(mappings_path, format!("param_defaults: {m}")))?;
    }
    let mappings_param_defaults = mappings.param_defaults;
    if mappings.tables.0.is_empty() {
        return Err(ProfileError::new(mappings_path, "no tables: add at least one [tables.<name>] section"));
    }
    let source_template = match &kind {
        SourceKind::DynamoDb(dynamo) => Some(dynamo.table_template.as_str()),
        _ => None,
    };
    let mut tables = mappings
        .tables
        .0
        .into_iter()
        .map(|(name, table)| {
            let names = (file.table_prefix.as_str(), file.table_suffix.as_str());
            table_mapping(mappings_path, path, names, name, table, global_excluded.as_deref(), source_template)
        })
        .collect::<Result<Vec<_>, _>>()?;
    mapping::order_promotions(&mut tables)?;
    let id_namespace = match file.target.id_namespace.as_deref() {
        Some(ns) if ns.trim().is_empty() => {
            return Err(err("target.id_namespace is empty; leave it out to use the environment's name".into()))
        }
        Some(ns) => ns.to_string(),
        None => env.to_string(),
    };
    if let Some(t) = tables.iter().find(|t| t.table_name == metadata_table) {
        return Err(t.error(format!(
            "its table name {} is the metadata table's; rename the mapping or set metadata_table",
            t.table_name
        )));
    }
    let mut profile = Profile {
        env: env.to_string(),
        path: path.to_path_buf(),
        description: file.description,
        protected: file.protected,
        source: SourceConfig {
            kind,
            url_env: file.source.url_env,
            service: file.source.service,
            host: file.source.host,
            port: file.source.port,
            dbname: file.source.dbname,
            user: file.source.user,
            password_env: file.source.password_env,
            sslmode,
            sslrootcert: file.source.sslrootcert.map(PathBuf::from),
            connect_timeout,
            read_timeout,
        },
        target,
        prices,
        sync,
        tables,
        param_defaults: mappings_param_defaults,
        metadata_table,
        id_namespace,
        backup_dir: PathBuf::from(file.backup_dir.as_deref().unwrap_or("backups")),
        rejects_dir: PathBuf::from(file.rejects_dir.as_deref().unwrap_or("rejects")),
        prices_given,
    };
    if let Some(region) = file.target.region {
        let origin = format!("target.region in {}", path.display());
        profile.settle_region(region, origin)?;
    }
    Ok(profile)
}

/// Whether `name` can be an environment variable's name (letters, digits and `_`, not starting
/// with a digit): what `url_env` and `password_env` take.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// The message for a `*_env` key whose value is not a variable's name. The value is not quoted:
/// what is written there by mistake is most often the secret itself.
fn not_a_variable_name(key: &str, example: &str, secret: &str) -> String {
    let short = key.rsplit('.').next().unwrap_or(key);
    format!(
        "{key} is not an environment variable's name (its value is not shown, in case it is the {secret} itself); \
         write the variable's name, such as {short} = \"{example}\", and export the {secret} in that variable, \
         never the {secret} itself in this file"
    )
}

/// `url_env` gives the whole connection: the profile's settings of the same things would be
/// silently overridden (or would override it), so they are refused. TLS and timeout settings may
/// stay, as defaults under the string's own.
fn url_env_alone(path: &Path, source: &raw::SourceSection) -> Result<(), ProfileError> {
    if source.password_env.as_deref().is_some_and(|v| !is_variable_name(v)) {
        return Err(ProfileError::new(path, not_a_variable_name("source.password_env", "PGPASSWORD_PROD", "password")));
    }
    let Some(var) = &source.url_env else { return Ok(()) };
    if !is_variable_name(var) {
        return Err(ProfileError::new(
            path,
            not_a_variable_name("source.url_env", "DATABASE_URL", "connection string"),
        ));
    }
    let given = [
        ("host", source.host.is_some()),
        ("port", source.port.is_some()),
        ("dbname", source.dbname.is_some()),
        ("user", source.user.is_some()),
        ("password_env", source.password_env.is_some()),
        ("service", source.service.is_some()),
    ];
    let both: Vec<&str> = given.iter().filter(|(_, set)| *set).map(|(key, _)| *key).collect();
    if both.is_empty() {
        return Ok(());
    }
    Err(ProfileError::new(
        path,
        format!(
            "source.url_env and source.{} both say where to connect; keep url_env (the connection string in {var} \
             gives them: postgresql://user@host:port/dbname, ?service=name) or remove it",
            both.join(", source.")
        ),
    ))
}

/// Whether `region` can be an AWS region's name: lower-case letters, digits and `-`. The same rule
/// for `target.region` and for a region from AWS's chain (`AWS_REGION`, the AWS config file).
pub fn is_region_name(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 64
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The `[target]` section, validated; the region is set apart (`settle_region`).
fn target_config(path: &Path, target: &raw::TargetSection) -> Result<TargetConfig, ProfileError> {
    let err = |message: String| ProfileError::new(path, message);
    if let Some(region) = &target.region {
        if !is_region_name(region) {
            return Err(err(format!(
                "target.region = \"{region}\" is not an AWS region name (such as eu-west-1); fix it, or leave it \
                 out to take AWS_REGION or the AWS profile's region"
            )));
        }
    }
    let max_attempts = match target.max_attempts {
        Some(n) => {
            Some(TARGET_MAX_ATTEMPTS.check(&format!("target.max_attempts = {n}"), n.into()).map_err(err)? as u32)
        }
        None => None,
    };
    let adaptive_retries = match target.retry_mode.as_deref() {
        None => None,
        Some("standard") => Some(false),
        Some("adaptive") => Some(true),
        Some(other) => {
            return Err(err(format!(
                "target.retry_mode = \"{other}\" is not supported; use \"standard\" or \"adaptive\" (legacy is not \
                 offered)"
            )))
        }
    };
    let secs =
        |key: &str, value: Option<u64>, default: u64| wait(path, &format!("target.{key}"), value.unwrap_or(default));
    let attempt_timeout = secs("attempt_timeout_secs", target.attempt_timeout_secs, 30)?;
    let operation_timeout = secs("operation_timeout_secs", target.operation_timeout_secs, 60)?;
    if operation_timeout < attempt_timeout {
        return Err(err(format!(
            "target.operation_timeout_secs = {} is shorter than target.attempt_timeout_secs = {}: a call's whole time \
             bounds its attempts; raise operation_timeout_secs or lower attempt_timeout_secs",
            operation_timeout.as_secs(),
            attempt_timeout.as_secs()
        )));
    }
    Ok(TargetConfig {
        region: String::new(),
        region_origin: String::new(),
        endpoint_url: target.endpoint_url.clone(),
        aws_profile: target.aws_profile.clone(),
        account_id: match &target.account_id {
            Some(id) if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(err(format!("target.account_id = \"{id}\" is not a 12-digit AWS account number")))
            }
            id => id.clone(),
        },
        max_attempts,
        adaptive_retries,
        connect_timeout: secs("connect_timeout_secs", target.connect_timeout_secs, 3)?,
        attempt_timeout,
        operation_timeout,
    })
}

/// Why `url` cannot be a DynamoDB endpoint, if it cannot: the SDK needs `http(s)://host[:port][/path]`,
/// and would otherwise fail only at the first call, after PostgreSQL, with its own words.
pub fn endpoint_flaw(text: &str) -> Option<&'static str> {
    use url::ParseError;
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("contains a space or a control character");
    }
    let url = match url::Url::parse(text) {
        Ok(url) => url,
        Err(ParseError::EmptyHost) => return Some("has no host"),
        Err(ParseError::InvalidPort) => return Some("has a port that is not a number from 1 to 65535"),
        Err(ParseError::InvalidIpv6Address) => return Some("has an IPv6 address that is not one"),
        Err(ParseError::RelativeUrlWithoutBase) => return Some("has no http:// or https://"),
        Err(_) => return Some("has a host that is not a name or an address"),
    };
    if !matches!(url.scheme(), "http" | "https") {
        // `localhost:8000` parses as the scheme `localhost`.
        return Some(if text.contains("://") { "is not an http or https URL" } else { "has no http:// or https://" });
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Some("holds a user name or password, which DynamoDB never takes (credentials come from AWS's chain)");
    }
    if url.host().is_none() {
        return Some("has no host");
    }
    if url.port() == Some(0) {
        return Some("has a port that is not a number from 1 to 65535");
    }
    // The SDK ignores a query and sends requests to the path, where no DynamoDB answers. The text
    // is read as written: the parser folds `/.` and `/x/..` into `/`, which the SDK does not.
    let written = text.split_once("://").map_or("", |(_, rest)| rest);
    let after_host = written.find(['/', '?', '#']).map_or("", |at| &written[at..]);
    if !matches!(after_host, "" | "/") || url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Some("has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port");
    }
    None
}

/// A wait on a server in whole seconds: at least one, at most [`MAX_WAIT_SECS`].
fn wait(path: &Path, key: &str, secs: u64) -> Result<Duration, ProfileError> {
    if (1..=MAX_WAIT_SECS).contains(&secs) {
        Ok(Duration::from_secs(secs))
    } else {
        Err(ProfileError::new(path, format!("{key} = {secs} must be between 1 and {MAX_WAIT_SECS} seconds (a day)")))
    }
}

#[cfg(test)]
mod tests;
