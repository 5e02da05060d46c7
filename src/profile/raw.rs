//! The profile files exactly as written: serde mirrors with unknown keys rejected. Each field's doc
//! comment is the user documentation of that key (the README's reference repeats it).

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A TOML table's entries in the order the file gives them (reports follow that order).
#[derive(Debug)]
pub struct Ordered<T>(pub Vec<(String, T)>);

impl<T> Default for Ordered<T> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Ordered<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Entries<T> {
            type Value = Ordered<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Ordered(entries))
            }
        }
        deserializer.deserialize_map(Entries(PhantomData))
    }
}

/// An environment file, `envs/<env>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// One line saying what this environment is; shown by `ddbsync` when it lists environments.
    pub description: Option<String>,
    /// Path of the shared table mappings, relative to this file (for example `mappings/pni.toml`).
    /// It must be inside the environments directory (symbolic links resolved).
    pub mappings: String,
    /// Put before each mapping's name to form the DynamoDB table name (`pni-` → `pni-lessons`);
    /// only `a-z A-Z 0-9 _ . -`, and with it every table name at most 255 characters.
    #[serde(default)]
    pub table_prefix: String,
    /// Put after each mapping's name (and the metadata table's): Amplify names its tables
    /// `<model>-<api id>-<env>`, so `table_suffix = "-aqnqdrctpzfwfjwyxxsmu6peoq-prod"` with mapping
    /// `Quotes` writes `Quotes-aqnqdrctpzfwfjwyxxsmu6peoq-prod`. Same characters as the prefix.
    #[serde(default)]
    pub table_suffix: String,
    /// A protected environment (production) needs `--yes` for `--clean`, whatever the terminal.
    #[serde(default)]
    pub protected: bool,
    /// Name, after the prefix, of the table that records each run and holds the run lock
    /// (a DynamoDB table name with the prefix: 3 to 255 of `a-z A-Z 0-9 _ . -`). Default `cache-metadata`.
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
    /// `postgres` (the default), `sqlite`, or `dynamodb` (promote another environment's tables).
    pub kind: Option<String>,
    /// DynamoDB: the source tables' names, `{table}` standing for each mapping's `source_table`
    /// (by default the mapping's name): `"{table}-fvn7t5hbobaxjklhrqzdl4ac34-dev"`. Default `"{table}"`.
    pub table_template: Option<String>,
    /// DynamoDB: the source's AWS region. Default: the target's.
    pub region: Option<String>,
    /// DynamoDB: the endpoint of a DynamoDB-compatible server (`http://localhost:8000`). Default:
    /// the region's AWS endpoint (not the target's endpoint_url).
    pub endpoint_url: Option<String>,
    /// DynamoDB: the named AWS profile to read the source with (another account). Default: the
    /// target's `aws_profile`, else the usual chain.
    pub aws_profile: Option<String>,
    /// DynamoDB: parallel Scan segments per source table. Default 4.
    pub scan_segments: Option<u32>,
    /// SQLite: the database file, relative to this environment file (or absolute). Opened
    /// read-only; it must exist.
    pub path: Option<String>,
    /// Name of the environment variable holding the connection string, for example
    /// `DATABASE_URL`: a `postgresql://user:password@host:port/dbname?sslmode=require` URI or libpq's
    /// `host=… dbname=…` pairs. Its values win over the profile's `sslmode`, `sslrootcert` and
    /// `connect_timeout_secs`, which fill what it leaves out; a service it names, then `PG*`
    /// variables, fill the rest. Not with `host`, `port`, `dbname`, `user`, `password_env` or
    /// `service`, which the string gives. The variable must be set and not empty when ddbsync runs.
    pub url_env: Option<String>,
    /// A service of libpq's connection service file (`PGSERVICEFILE`, else `~/.pg_service.conf`,
    /// then `pg_service.conf` in `PGSYSCONFDIR`, else in `/etc/postgresql-common`): its settings
    /// fill those the profile leaves out, and win over the `PG*` variables. Default `PGSERVICE`.
    pub service: Option<String>,
    /// Host name or address; default the service's, else `PGHOST`, else `localhost`.
    pub host: Option<String>,
    /// Port; default the service's, else `PGPORT`, else 5432.
    pub port: Option<u16>,
    /// Database name; default the service's, else `PGDATABASE`, else the user name.
    pub dbname: Option<String>,
    /// User name; default the service's, else `PGUSER`, else the operating-system user (the
    /// effective user's login name, as libpq takes it; not `$USER`).
    pub user: Option<String>,
    /// Name of the environment variable holding the password. Without it: the service's password,
    /// then `PGPASSWORD`, then `~/.pgpass` (or `PGPASSFILE`), like libpq; a password file that group
    /// or others may read is ignored with a warning, as libpq does. Passwords never go in profile
    /// files.
    pub password_env: Option<String>,
    /// Like libpq: `disable`, `prefer` (TLS when the server offers it), `require` (TLS,
    /// certificate not checked), `verify-ca` (TLS, certificate signed by `sslrootcert`) or
    /// `verify-full` (also checks that the certificate names the host). Default `PGSSLMODE`, else
    /// `prefer`.
    pub sslmode: Option<String>,
    /// PEM file of the certificate authorities to trust for `verify-ca` and `verify-full`. Default
    /// `PGSSLROOTCERT`, else `~/.postgresql/root.crt`, like libpq.
    pub sslrootcert: Option<String>,
    /// Seconds to wait for the connection before giving up, 1 to 86400. Default
    /// `PGCONNECT_TIMEOUT`, else 10.
    pub connect_timeout_secs: Option<u64>,
    /// Longest wait in seconds, 1 to 86400, for the source's next answer: a query prepared, its
    /// first row or the next one (for SQLite, also the wait for a lock another process holds on
    /// the file). A source that stops answering then ends the run with an error instead of
    /// holding it, and its lock, for ever. Default 300.
    pub read_timeout_secs: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSection {
    /// AWS region of the tables, for example `us-east-1`. Default: AWS's chain, as the SDK and the
    /// AWS CLI read it: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the `region` of the AWS profile
    /// in `~/.aws/config` (`AWS_CONFIG_FILE`), else the EC2 instance metadata service. Prices are
    /// the region's, whichever gives it.
    pub region: Option<String>,
    /// Endpoint of a DynamoDB-compatible server (local testing), an `http://` or `https://` URL with
    /// a host (`http://localhost:8000`); default: the region's AWS endpoint.
    pub endpoint_url: Option<String>,
    /// Named AWS profile (`~/.aws/config`) to take credentials from; default: the usual chain.
    pub aws_profile: Option<String>,
    /// Promotions from a DynamoDB source: the word that makes this environment's new IDs its own
    /// (new ID = keyed hash of the source table, the source ID and this). Default: the
    /// environment's name. Changing it changes every new ID: set it once and keep it.
    pub id_namespace: Option<String>,
    /// The 12-digit AWS account that holds the tables; `ddbsync iam-policy` puts it in the table
    /// ARNs (without it they match any account).
    pub account_id: Option<String>,
    /// Attempts per DynamoDB control-plane call (describe, create, the lock's conditional writes),
    /// the first included, 1 to 100. Default: `AWS_MAX_ATTEMPTS`, else `max_attempts` of the AWS
    /// profile, else 3 (the SDK's). Batch writes and Scan pages are retried by ddbsync itself
    /// (`sync.max_attempts`), with the SDK's retries off, so the two never multiply.
    pub max_attempts: Option<u32>,
    /// `standard` or `adaptive` (client-side rate limiting on throttling), for control-plane calls.
    /// Default: `AWS_RETRY_MODE`, else `retry_mode` of the AWS profile, else `standard`.
    pub retry_mode: Option<String>,
    /// Seconds to wait for a connection to DynamoDB, 1 to 86400. Default 3.
    pub connect_timeout_secs: Option<u64>,
    /// Seconds one attempt of a call may take, 1 to 86400. Default 30.
    pub attempt_timeout_secs: Option<u64>,
    /// Seconds a whole call may take, its retries included, 1 to 86400: a DynamoDB that stops
    /// answering ends the run instead of holding it. At least `attempt_timeout_secs`. Default 60.
    pub operation_timeout_secs: Option<u64>,
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
    /// Values of query parameters when `--param` does not give them (`start = "2009-01-01"`). A
    /// parameter a query uses with no default here must be given on the command line.
    #[serde(default)]
    pub param_defaults: BTreeMap<String, String>,
    /// One entry per DynamoDB table, keyed by its name without the environment's prefix.
    pub tables: Ordered<TableSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSection {
    /// DynamoDB source: the source table's name, put into source.table_template's `{table}`.
    /// Default: the mapping's name. Items are read with a parallel Scan, every attribute copied.
    pub source_table: Option<String>,
    /// DynamoDB source: the attribute that holds the item's ID. The ID is replaced by a new one,
    /// the same on every run (a keyed hash of the source table, the ID and target.id_namespace)
    /// and of the same shape (a UUID stays a UUID). Without it, IDs are copied as they are.
    pub id: Option<String>,
    /// DynamoDB source: the attributes that hold another table's IDs, each rewritten to that
    /// table's new ID: `{ projectId = "Projects", "address.propertyId" = "Properties",
    /// "contactIds[]" = "Contacts" }` (`.` steps into a map, `[]` into each element of a list or
    /// set). A value the referenced source table does not hold rejects the item.
    #[serde(default)]
    pub references: Ordered<String>,
    /// The SQL query whose rows become this table's items, one row per item; every column becomes
    /// an attribute (json/jsonb columns become nested maps and lists). A table fed by several
    /// queries has `[tables.<name>.entities.<entity>]` sections instead.
    pub query: Option<String>,
    /// The partition key: a column name (`"lesson_id"`), or `{ name = "PK", template = "LESSON#{id}" }`
    /// for a string attribute built from columns.
    pub partition_key: Option<toml::Value>,
    /// The sort key, in the same forms as `partition_key`. Optional.
    pub sort_key: Option<toml::Value>,
    /// Overrides the file-level `exclude_from_hash` for this table.
    pub exclude_from_hash: Option<Vec<String>>,
    /// Values used instead of omitting an attribute when its column is NULL.
    #[serde(default)]
    pub defaults: toml::Table,
    /// Names of the `--param` values bound to the query's `$1`, `$2`, … in that order.
    #[serde(default)]
    pub params: Vec<String>,
    /// Columns whose text is a JSON document, stored as the maps and lists it holds (for SQLite's
    /// `json_object` and `json_group_array`, which return text; PostgreSQL's json and jsonb
    /// columns need no entry).
    #[serde(default)]
    pub json_columns: Vec<String>,
    /// The item types of a single-table design: each entity has its own query and key templates,
    /// and all of them write this table.
    #[serde(default)]
    pub entities: Ordered<EntitySection>,
    /// Secondary indexes created with the table: `[tables.<name>.indexes.<index>]`.
    #[serde(default)]
    pub indexes: Ordered<IndexSection>,
    /// Delete target items whose source row is gone. Default false: they are only counted as orphans.
    #[serde(default)]
    pub delete_missing: bool,
    /// How a sync finds what DynamoDB holds: `"scan"` (the default) reads the whole table with a
    /// parallel Scan, billed on whole items; `"index"` Queries a global index (`_ddbsync_diff_b64`,
    /// created with the table or by `tables create`) holding only each item's key and content hash,
    /// billed on those few bytes: about 20 times fewer read units for items of a few KB, for one
    /// more index write on every item written. See README, "The hash index".
    pub diff: Option<toml::Value>,
    /// For queries that take parameters: a DynamoDB filter expression selecting the items those
    /// parameters cover (`"invoice_date >= :start AND invoice_date < :end"`, `:name` being a
    /// parameter). The diff reads only these items, so orphans and deletes stay inside the range.
    pub scope: Option<String>,
}

/// One item type of a table fed by several queries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySection {
    /// The SQL query whose rows become this entity's items.
    pub query: String,
    /// The partition key, as for a table. Every entity of a table uses the same key attribute names.
    pub partition_key: toml::Value,
    /// The sort key, as for a table.
    pub sort_key: Option<toml::Value>,
    /// Overrides the table's (or the file's) `exclude_from_hash` for this entity.
    pub exclude_from_hash: Option<Vec<String>>,
    /// Values used instead of omitting an attribute when its column is NULL.
    #[serde(default)]
    pub defaults: toml::Table,
    /// Names of the `--param` values bound to `$1`, `$2`, … of this query.
    #[serde(default)]
    pub params: Vec<String>,
    /// Columns whose text is a JSON document, as for a table.
    #[serde(default)]
    pub json_columns: Vec<String>,
}

/// A secondary index, created with its table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexSection {
    /// `global` (the default) or `local` (same partition key as the table; only at table creation).
    pub kind: Option<String>,
    /// The index's partition key attribute. Items without it are not in the index (a sparse
    /// index). A local index takes the table's and may leave this out.
    pub partition_key: Option<String>,
    /// The index's sort key attribute. Optional for a global index, required for a local one.
    pub sort_key: Option<String>,
    /// `"all"` (the default), `"keys_only"`, or a list of the attributes to copy besides the keys.
    pub projection: Option<toml::Value>,
}
