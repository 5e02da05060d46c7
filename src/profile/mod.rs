//! Environment profiles: `envs/<env>.toml` plus the shared mappings file it names, read once and
//! turned into the validated [`Profile`] the engine takes.
//!
//! Invariants: every error names the file (and the TOML line and column where the parser knows
//! them) and says how to fix it; nothing downstream sees an unvalidated value; no secret is read
//! here (a profile only names the variable that holds the password).

mod raw;
pub mod template;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cost::Prices;
use crate::hash::Excluded;
use crate::item::{AttributeValue, HASH_ATTR};
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
    /// Where `--clean` on a protected environment writes its backup.
    pub backup_dir: PathBuf,
    /// Where the list of rejected and unwritten rows goes.
    pub rejects_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub dbname: Option<String>,
    pub user: Option<String>,
    /// The environment variable named by `password_env`, if any.
    pub password_env: Option<String>,
    pub sslmode: SslMode,
    /// CA certificates for `verify-ca` / `verify-full` (the profile's, else libpq's defaults).
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Duration,
}

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
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    pub region: String,
    pub endpoint_url: Option<String>,
    pub aws_profile: Option<String>,
    /// The 12-digit account, for the ARNs of the IAM policy.
    pub account_id: Option<String>,
}

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
}

impl SyncSettings {
    /// Applies command-line values over the profile's (the command line wins).
    pub fn overridden(
        mut self,
        scan_segments: Option<u32>,
        max_in_flight: Option<usize>,
        max_wcu: Option<u32>,
    ) -> Self {
        if let Some(n) = scan_segments.filter(|&n| n > 0) {
            self.scan_segments = n;
        }
        if let Some(n) = max_in_flight.filter(|&n| n > 0) {
            self.max_in_flight = n;
        }
        if let Some(n) = max_wcu {
            self.max_write_units_per_second = std::num::NonZeroU32::new(n);
        }
        self
    }
}

/// How one DynamoDB table is fed: by one query, or by several entity queries (single-table design).
#[derive(Debug, Clone)]
pub struct TableMapping {
    /// The mapping's name, without the environment's prefix (`lessons`).
    pub name: String,
    /// The DynamoDB table name (`pni-lessons`).
    pub table_name: String,
    /// At least one; all give the same key attribute names. A table with a single `query` has one
    /// entity named after the table.
    pub entities: Vec<Entity>,
    /// Secondary indexes created with the table.
    pub indexes: Vec<Index>,
    /// Delete target items whose source row is gone.
    pub delete_missing: bool,
    /// A filter expression limiting the diff to the items the parameters cover.
    pub scope: Option<String>,
    /// The mappings file, for messages.
    pub origin: PathBuf,
}

impl TableMapping {
    /// An error about this table, located in its mappings file.
    pub fn error(&self, message: impl std::fmt::Display) -> ProfileError {
        ProfileError::new(&self.origin, format!("table \"{}\": {message}", self.name))
    }

    /// Whether any of the table's queries takes parameters.
    pub fn takes_params(&self) -> bool {
        self.entities.iter().any(|e| !e.params.is_empty())
    }

    /// Whether the table has several entities (the report then shows each).
    pub fn is_multi(&self) -> bool {
        self.entities.len() > 1
    }
}

/// One query feeding a table, and how its rows become items.
#[derive(Debug, Clone)]
pub struct Entity {
    /// The entity's name (`album`); the table's name for a table with a single query.
    pub name: String,
    pub query: String,
    /// Parameter names bound to `$1`, `$2`, … in order.
    pub params: Vec<String>,
    pub partition_key: KeySpec,
    pub sort_key: Option<KeySpec>,
    pub excluded: Excluded,
    /// Attribute → value used when the column is NULL.
    pub defaults: Vec<(String, AttributeValue)>,
    /// `table "lessons"` or `table "catalog": entity "album"`, for messages.
    pub label: String,
    /// The mappings file, for messages.
    pub origin: PathBuf,
}

impl Entity {
    pub fn keys(&self) -> impl Iterator<Item = &KeySpec> {
        std::iter::once(&self.partition_key).chain(self.sort_key.as_ref())
    }

    /// An error about this entity, located in its mappings file.
    pub fn error(&self, message: impl std::fmt::Display) -> ProfileError {
        ProfileError::new(&self.origin, format!("{}: {message}", self.label))
    }
}

/// A secondary index declared in a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    /// A local index shares the table's partition key and exists only if created with the table.
    pub local: bool,
    pub partition_key: String,
    pub sort_key: Option<String>,
    pub projection: Projection,
}

impl Index {
    pub fn key_attributes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.partition_key.as_str()).chain(self.sort_key.as_deref())
    }
}

/// Which attributes an index copies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    All,
    KeysOnly,
    /// The keys and these attributes.
    Include(Vec<String>),
}

/// A key attribute and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub attribute: String,
    pub source: KeySource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// The value of this column, with its own type (`N` for integers, `S` for text…).
    Column(String),
    /// A string built from columns.
    Template(Template),
}

/// The environments available in `dir` (file stems of `*.toml`), sorted.
pub fn available(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

/// Reads and validates `dir/<env>.toml` and the mappings it names.
pub fn load(dir: &Path, env: &str) -> Result<Profile, ProfileError> {
    let path = dir.join(format!("{env}.toml"));
    if env.contains(['/', '\\']) || !path.is_file() {
        let names = available(dir);
        let list = if names.is_empty() { "none".to_string() } else { names.join(", ") };
        return Err(ProfileError::new(
            &path,
            format!("unknown environment \"{env}\"; available in {}: {list}", dir.display()),
        ));
    }
    let file: raw::EnvFile = read_toml(&path)?;
    let mappings_path = path.parent().unwrap_or(Path::new(".")).join(&file.mappings);
    let mappings: raw::MappingsFile = read_toml(&mappings_path)?;
    validate(env, &path, file, &mappings_path, mappings)
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|e| ProfileError::new(path, format!("cannot read: {e}")))?;
    // toml's message gives the line, the column and the offending text.
    toml::from_str(&text).map_err(|e| ProfileError::new(path, e.to_string().trim_end().to_string()))
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
        None => SslMode::Prefer,
        Some(text) => SslMode::parse(text).ok_or_else(|| {
            err(format!(
                "source.sslmode = \"{text}\" is not supported; use disable, prefer, require, verify-ca or verify-full"
            ))
        })?,
    };
    let prices = match file.prices {
        Some(p) if p.write_per_million >= 0.0 && p.read_per_million >= 0.0 => Prices {
            write_per_million: p.write_per_million,
            read_per_million: p.read_per_million,
            source: format!("{} [prices]", path.display()),
        },
        Some(_) => return Err(err("[prices] must not be negative".into())),
        None => Prices::builtin(&file.target.region).ok_or_else(|| {
            err(format!(
                "no built-in prices for region \"{}\" (built in: {}); add a [prices] section with write_per_million and read_per_million",
                file.target.region,
                Prices::builtin_regions().join(", ")
            ))
        })?,
    };
    let sync = SyncSettings {
        scan_segments: positive(path, "sync.scan_segments", file.sync.scan_segments.unwrap_or(4))?,
        max_in_flight: positive(path, "sync.max_in_flight", file.sync.max_in_flight.unwrap_or(8))?,
        max_attempts: positive(path, "sync.max_attempts", file.sync.max_attempts.unwrap_or(10))?,
        max_write_units_per_second: match file.sync.max_write_units_per_second {
            Some(n) => Some(std::num::NonZeroU32::new(n).ok_or_else(|| {
                err("sync.max_write_units_per_second = 0 would never write; remove it for no cap".into())
            })?),
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
        lock_lease: Duration::from_secs(positive(
            path,
            "sync.lock_lease_secs",
            file.sync.lock_lease_secs.unwrap_or(60),
        )?),
    };
    let metadata_table = format!("{}{}", file.table_prefix, file.metadata_table.as_deref().unwrap_or("cache-metadata"));
    let global_excluded = mappings.exclude_from_hash.clone();
    for name in mappings.param_defaults.keys() {
        check_param_name(name).map_err(|m| ProfileError::new(mappings_path, format!("param_defaults: {m}")))?;
    }
    let mappings_param_defaults = mappings.param_defaults;
    if mappings.tables.is_empty() {
        return Err(ProfileError::new(mappings_path, "no tables: add at least one [tables.<name>] section"));
    }
    let tables = mappings
        .tables
        .into_iter()
        .map(|(name, table)| table_mapping(mappings_path, &file.table_prefix, name, table, global_excluded.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(t) = tables.iter().find(|t| t.table_name == metadata_table) {
        return Err(t.error(format!(
            "its table name {} is the metadata table's; rename the mapping or set metadata_table",
            t.table_name
        )));
    }
    Ok(Profile {
        env: env.to_string(),
        path: path.to_path_buf(),
        description: file.description,
        protected: file.protected,
        source: SourceConfig {
            host: file.source.host,
            port: file.source.port,
            dbname: file.source.dbname,
            user: file.source.user,
            password_env: file.source.password_env,
            sslmode,
            sslrootcert: file.source.sslrootcert.map(PathBuf::from),
            connect_timeout: Duration::from_secs(file.source.connect_timeout_secs.unwrap_or(10).max(1)),
        },
        target: TargetConfig {
            region: file.target.region,
            endpoint_url: file.target.endpoint_url,
            aws_profile: file.target.aws_profile,
            account_id: match file.target.account_id {
                Some(id) if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) => {
                    return Err(err(format!("target.account_id = \"{id}\" is not a 12-digit AWS account number")))
                }
                id => id,
            },
        },
        prices,
        sync,
        tables,
        param_defaults: mappings_param_defaults,
        metadata_table,
        backup_dir: PathBuf::from(file.backup_dir.as_deref().unwrap_or("backups")),
        rejects_dir: PathBuf::from(file.rejects_dir.as_deref().unwrap_or("rejects")),
    })
}

fn positive<T: PartialOrd + Default + std::fmt::Display>(path: &Path, key: &str, value: T) -> Result<T, ProfileError> {
    if value > T::default() {
        Ok(value)
    } else {
        Err(ProfileError::new(path, format!("{key} = {value} must be at least 1")))
    }
}

fn table_mapping(
    origin: &Path,
    prefix: &str,
    name: String,
    table: raw::TableSection,
    global_excluded: Option<&[String]>,
) -> Result<TableMapping, ProfileError> {
    let err = |message: String| ProfileError::new(origin, format!("table \"{name}\": {message}"));
    let table_name = format!("{prefix}{name}");
    if !valid_name(&table_name) {
        return Err(err(format!("\"{table_name}\" is not a valid DynamoDB table name (3-255 of a-z A-Z 0-9 _ . -)")));
    }
    let table_excluded = table.exclude_from_hash.as_deref().or(global_excluded);
    let entities = if table.entities.is_empty() {
        let (Some(query), Some(partition_key)) = (table.query, table.partition_key) else {
            return Err(err(
                "give a `query` and a `partition_key`, or [tables.<name>.entities.<entity>] sections with them".into(),
            ));
        };
        let section = raw::EntitySection {
            query,
            partition_key,
            sort_key: table.sort_key,
            exclude_from_hash: None,
            defaults: table.defaults,
            params: table.params,
        };
        vec![entity(origin, format!("table \"{name}\""), name.clone(), section, table_excluded)?]
    } else {
        let stray = [
            ("query", table.query.is_some()),
            ("partition_key", table.partition_key.is_some()),
            ("sort_key", table.sort_key.is_some()),
            ("params", !table.params.is_empty()),
            ("defaults", !table.defaults.is_empty()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(err(format!(
                "`{key}` belongs in each [tables.{name}.entities.<entity>] section when the table has entities"
            )));
        }
        table
            .entities
            .into_iter()
            .map(|(entity_name, section)| {
                let label = format!("table \"{name}\": entity \"{entity_name}\"");
                entity(origin, label, entity_name, section, table_excluded)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let first = &entities[0];
    for other in &entities[1..] {
        let names = |e: &Entity| (e.partition_key.attribute.clone(), e.sort_key.as_ref().map(|k| k.attribute.clone()));
        if names(other) != names(first) {
            let show = |e: &Entity| e.keys().map(|k| k.attribute.as_str()).collect::<Vec<_>>().join(", ");
            return Err(err(format!(
                "entity \"{}\" has key ({}) but entity \"{}\" has ({}); every entity of a table uses the same key attributes",
                other.name,
                show(other),
                first.name,
                show(first)
            )));
        }
    }
    let indexes = table
        .indexes
        .into_iter()
        .map(|(index_name, section)| index(first, index_name, section).map_err(&err))
        .collect::<Result<Vec<_>, _>>()?;
    for (kind, local, most) in [("global", false, 20), ("local", true, 5)] {
        if indexes.iter().filter(|i| i.local == local).count() > most {
            return Err(err(format!("DynamoDB allows at most {most} {kind} secondary indexes per table")));
        }
    }
    if let Some(scope) = &table.scope {
        let used: Vec<&str> = entities.iter().flat_map(|e| e.params.iter().map(String::as_str)).collect();
        for placeholder in scope_placeholders(scope) {
            if !used.contains(&placeholder) {
                return Err(err(format!(
                    "scope uses `:{placeholder}`, which is not a parameter of the table's queries ({})",
                    if used.is_empty() { "they take none".to_string() } else { used.join(", ") }
                )));
            }
        }
    }
    if table.delete_missing && table.scope.is_none() && entities.iter().any(|e| !e.params.is_empty()) {
        return Err(err(
            "delete_missing needs a `scope` when the queries take parameters: without one, every item outside \
             the parameters' range would look deleted (scope = \"order_date >= :start AND order_date < :end\")"
                .into(),
        ));
    }
    Ok(TableMapping {
        name,
        table_name,
        entities,
        indexes,
        delete_missing: table.delete_missing,
        scope: table.scope,
        origin: origin.to_path_buf(),
    })
}

/// DynamoDB's rule for table and index names: 3-255 of `[a-zA-Z0-9_.-]`.
fn valid_name(name: &str) -> bool {
    (3..=255).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("parameter name {name:?} must be letters, digits and _"));
    }
    Ok(())
}

/// The `:name` placeholders of a filter expression, in order.
pub fn scope_placeholders(expression: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = expression;
    while let Some(at) = rest.find(':') {
        rest = &rest[at + 1..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end > 0 && !out.contains(&&rest[..end]) {
            out.push(&rest[..end]);
        }
        rest = &rest[end..];
    }
    out
}

fn entity(
    origin: &Path,
    label: String,
    name: String,
    section: raw::EntitySection,
    table_excluded: Option<&[String]>,
) -> Result<Entity, ProfileError> {
    let err = |message: String| ProfileError::new(origin, format!("{label}: {message}"));
    if section.query.trim().is_empty() {
        return Err(err("query is empty".into()));
    }
    let partition_key = key_spec(&section.partition_key).map_err(|m| err(format!("partition_key: {m}")))?;
    if let KeySource::Template(t) = &partition_key.source {
        if t.columns().next().is_none() {
            return Err(err(format!(
                "partition_key: template \"{t}\" names no column; a partition key built from no column is the same for every row"
            )));
        }
    }
    let sort_key = section.sort_key.as_ref().map(key_spec).transpose().map_err(|m| err(format!("sort_key: {m}")))?;
    if sort_key.as_ref().is_some_and(|s| s.attribute == partition_key.attribute) {
        return Err(err("sort_key and partition_key name the same attribute".into()));
    }
    for param in &section.params {
        check_param_name(param).map_err(|m| err(format!("params: {m}")))?;
    }
    let excluded = match section.exclude_from_hash.as_deref().or(table_excluded) {
        Some(names) => Excluded::new(names.iter().cloned()),
        None => Excluded::default(),
    };
    let defaults = section
        .defaults
        .iter()
        .map(|(k, v)| toml_value(v).map(|v| (k.clone(), v)).map_err(|m| err(format!("defaults.{k}: {m}"))))
        .collect::<Result<_, _>>()?;
    Ok(Entity {
        name,
        query: section.query,
        params: section.params,
        partition_key,
        sort_key,
        excluded,
        defaults,
        label,
        origin: origin.to_path_buf(),
    })
}

fn index(table_key: &Entity, name: String, section: raw::IndexSection) -> Result<Index, String> {
    let err = |message: String| format!("index \"{name}\": {message}");
    if !valid_name(&name) {
        return Err(err("is not a valid index name (3-255 of a-z A-Z 0-9 _ . -)".into()));
    }
    let local = match section.kind.as_deref() {
        None | Some("global") => false,
        Some("local") => true,
        Some(other) => return Err(err(format!("kind = \"{other}\" is not supported; use \"global\" or \"local\""))),
    };
    let table_partition = &table_key.partition_key.attribute;
    let partition_key = match (local, section.partition_key) {
        (false, Some(pk)) => pk,
        (false, None) => return Err(err("partition_key is missing".into())),
        (true, Some(pk)) if pk != *table_partition => {
            return Err(err(format!(
                "a local index has the table's partition key \"{table_partition}\", not \"{pk}\"; remove partition_key"
            )))
        }
        (true, _) => table_partition.clone(),
    };
    if local && (section.sort_key.is_none() || table_key.sort_key.is_none()) {
        return Err(err("a local index needs a sort_key, on a table that has a sort key".into()));
    }
    let projection = match &section.projection {
        None => Projection::All,
        Some(toml::Value::String(s)) if s == "all" => Projection::All,
        Some(toml::Value::String(s)) if s == "keys_only" => Projection::KeysOnly,
        Some(toml::Value::Array(list)) => Projection::Include(
            list.iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err("projection lists attribute names".into())))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(err("projection is \"all\", \"keys_only\" or a list of attribute names".into())),
    };
    if [Some(&partition_key), section.sort_key.as_ref()].into_iter().flatten().any(|a| a.is_empty() || a == HASH_ATTR) {
        return Err(err(format!("its key attributes must be named, and not {HASH_ATTR}")));
    }
    Ok(Index { name, local, partition_key, sort_key: section.sort_key, projection })
}

fn key_spec(value: &toml::Value) -> Result<KeySpec, String> {
    const FORMS: &str = "write a column name (\"lesson_id\") or { name = \"PK\", template = \"LESSON#{lesson_id}\" }";
    match value {
        toml::Value::String(column) if !column.trim().is_empty() => {
            Ok(KeySpec { attribute: column.clone(), source: KeySource::Column(column.clone()) })
        }
        toml::Value::Table(t) => {
            if let Some(unknown) = t.keys().find(|k| !["name", "template", "column"].contains(&k.as_str())) {
                return Err(format!("unknown key `{unknown}`; {FORMS}"));
            }
            let text =
                |k: &str| t.get(k).map(|v| v.as_str().map(str::to_string).ok_or(format!("`{k}` must be a string")));
            let name = text("name").ok_or(format!("`name` is missing; {FORMS}"))??;
            let source = match (text("template").transpose()?, text("column").transpose()?) {
                (Some(template), None) => KeySource::Template(Template::parse(&template)?),
                (None, Some(column)) => KeySource::Column(column),
                (None, None) => KeySource::Column(name.clone()),
                (Some(_), Some(_)) => return Err("give either `template` or `column`, not both".into()),
            };
            Ok(KeySpec { attribute: name, source })
        }
        _ => Err(FORMS.into()),
    }
}

fn toml_value(value: &toml::Value) -> Result<AttributeValue, String> {
    use crate::number;
    Ok(match value {
        toml::Value::String(s) => AttributeValue::S(s.clone()),
        toml::Value::Integer(i) => AttributeValue::N(i.to_string()),
        toml::Value::Float(f) => AttributeValue::N(number::from_f64(*f).map_err(|e| e.to_string())?),
        toml::Value::Boolean(b) => AttributeValue::Bool(*b),
        toml::Value::Datetime(d) => AttributeValue::S(d.to_string()),
        toml::Value::Array(items) => AttributeValue::L(items.iter().map(toml_value).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => {
            AttributeValue::M(t.iter().map(|(k, v)| Ok((k.clone(), toml_value(v)?))).collect::<Result<_, String>>()?)
        }
    })
}

#[cfg(test)]
mod tests;
