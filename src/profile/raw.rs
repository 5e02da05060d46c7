//! The profile files exactly as written: serde mirrors with unknown keys rejected. Each field's doc
//! comment is the user documentation of that key (the README's reference repeats it).

use std::collections::BTreeMap;

use serde::Deserialize;

/// An environment file, `envs/<env>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// One line saying what this environment is; shown by `ddbsync` when it lists environments.
    pub description: Option<String>,
    /// Path of the shared table mappings, relative to this file (for example `mappings/pni.toml`).
    pub mappings: String,
    /// Put before each mapping's name to form the DynamoDB table name (`pni-` → `pni-lessons`).
    #[serde(default)]
    pub table_prefix: String,
    /// A protected environment (production) needs `--yes` for `--clean`, whatever the terminal.
    #[serde(default)]
    pub protected: bool,
    /// Name, after the prefix, of the table that records each run and holds the run lock.
    /// Default `cache-metadata`.
    pub metadata_table: Option<String>,
    /// Directory for the backups `--clean` takes on a protected environment, relative to the
    /// working directory. Default `backups`.
    pub backup_dir: Option<String>,
    /// Directory for the JSON-lines files that list rejected and unwritten rows. Default `rejects`.
    pub rejects_dir: Option<String>,
    /// The PostgreSQL database to read.
    pub source: SourceSection,
    /// The DynamoDB account and region to write.
    pub target: TargetSection,
    /// Overrides the built-in on-demand prices (needed for regions the built-in table lacks).
    pub prices: Option<PricesSection>,
    /// Tuning of the sync engine.
    #[serde(default)]
    pub sync: SyncSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// Host name or address; default `PGHOST`, else `localhost`.
    pub host: Option<String>,
    /// Port; default `PGPORT`, else 5432.
    pub port: Option<u16>,
    /// Database name; default `PGDATABASE`, else the user name.
    pub dbname: Option<String>,
    /// User name; default `PGUSER`, else the operating-system user.
    pub user: Option<String>,
    /// Name of the environment variable holding the password. Without it: `PGPASSWORD`, then
    /// `~/.pgpass` (or `PGPASSFILE`), like libpq. Passwords never go in profile files.
    pub password_env: Option<String>,
    /// Like libpq: `disable`, `prefer` (the default: TLS when the server offers it), `require` (TLS,
    /// certificate not checked), `verify-ca` (TLS, certificate signed by `sslrootcert`) or
    /// `verify-full` (also checks that the certificate names the host).
    pub sslmode: Option<String>,
    /// PEM file of the certificate authorities to trust for `verify-ca` and `verify-full`. Default
    /// `PGSSLROOTCERT`, else `~/.postgresql/root.crt`, like libpq.
    pub sslrootcert: Option<String>,
    /// Seconds to wait for the connection before giving up. Default 10.
    pub connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// AWS region of the tables, for example `us-east-1`.
    pub region: String,
    /// Endpoint of a DynamoDB-compatible server (local testing); default: the region's AWS endpoint.
    pub endpoint_url: Option<String>,
    /// Named AWS profile (`~/.aws/config`) to take credentials from; default: the usual chain.
    pub aws_profile: Option<String>,
    /// The 12-digit AWS account that holds the tables; `ddbsync iam-policy` puts it in the table
    /// ARNs (without it they match any account).
    pub account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricesSection {
    /// USD per million on-demand write request units.
    pub write_per_million: f64,
    /// USD per million on-demand read request units.
    pub read_per_million: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSection {
    /// Parallel Scan segments used to read the target's hashes. Default 4.
    pub scan_segments: Option<u32>,
    /// BatchWriteItem calls in flight at once. Default 8.
    pub max_in_flight: Option<usize>,
    /// Attempts per batch or Scan page (first try included) before giving up. Default 10.
    pub max_attempts: Option<u32>,
    /// Cap on write units spent per second, to leave room for production traffic. Default: none.
    pub max_write_units_per_second: Option<u32>,
    /// `report` (the default): rows that cannot become items are listed and the rest is written.
    /// `fail`: the source is checked in full first and any reject stops the run before the first write.
    pub on_reject: Option<String>,
    /// Largest share of a table that deletes may remove in one run without `--allow-mass-delete`.
    /// Default 0.1 (10 %).
    pub max_delete_fraction: Option<f64>,
    /// Seconds the run lock is held without renewal; a run renews it every third of that. A lock
    /// left by a killed run is free after this long. Default 60.
    pub lock_lease_secs: Option<u64>,
}

/// The shared mappings file: which tables exist and how each is fed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingsFile {
    /// Attribute names left out of the content hash at any depth, for every table.
    /// Default `["created_at", "updated_at"]`.
    pub exclude_from_hash: Option<Vec<String>>,
    /// One entry per DynamoDB table, keyed by its name without the environment's prefix.
    pub tables: BTreeMap<String, TableSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// The SQL query whose rows become this table's items, one row per item; every column becomes
    /// an attribute (json/jsonb columns become nested maps and lists).
    pub query: String,
    /// The partition key: a column name (`"lesson_id"`), or `{ name = "PK", template = "LESSON#{id}" }`
    /// for a string attribute built from columns.
    pub partition_key: toml::Value,
    /// The sort key, in the same forms as `partition_key`. Optional.
    pub sort_key: Option<toml::Value>,
    /// Overrides the file-level `exclude_from_hash` for this table.
    pub exclude_from_hash: Option<Vec<String>>,
    /// Values used instead of omitting an attribute when its column is NULL.
    #[serde(default)]
    pub defaults: toml::Table,
    /// Delete target items whose source row is gone. Default false: they are only counted as orphans.
    #[serde(default)]
    pub delete_missing: bool,
}
