//! Backups of an environment's tables to one local file, and restoring them.
//!
//! A backup is a tar archive: `manifest.json` (environment, region, time, and per table its key
//! schema, item count, byte count and the MD5 of its data, and the manifest's own checksum), then one
//! `<mapping>.json.gz` per table holding DynamoDB JSON lines in the layout of DynamoDB's S3 export
//! (`{"Item": {...}}`), so that `tar -xf` and `zcat` are enough to read one. Items keep ddbsync's hash
//! attribute, so a sync after a restore writes only what differs from the source.
//!
//! Invariants: an archive exists under its name only once every table in it was read whole from an
//! ACTIVE table that was still the same table at the end (a backup that cannot vouch for its counts
//! fails and leaves no file). [`verify`] reads the whole archive before a restore changes anything:
//! the manifest's checksum, every table's count and MD5, and every item's key against the manifest's
//! key schema. A restore records how far it got with each table ([`Progress`]), so that a failure
//! half-way says what each table holds and how to finish.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};

use crate::engine::guard;
use crate::engine::lock::Fence;
use crate::engine::pace::Cap;
use crate::engine::scan;
use crate::engine::stop::Stop;
use crate::engine::writer::{Pending, WriteOutcome};
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::pure::cost::{self, Footprint};
use crate::pure::ddb_json;
use crate::pure::hash;
use crate::pure::item::{self, AttributeValue};
use crate::pure::number;
use crate::pure::plan::show_schema;
use crate::pure::report::units;
use crate::target::retry::RetryPolicy;
use crate::target::Request;
use crate::target::{IndexSchema, KeySchema, TableInfo, TableSchema, Target};

/// The archive format this version writes: the manifest carries a checksum of itself.
const FORMAT: &str = "ddbsync-backup/2";
/// The format of archives written before manifests carried a checksum; read only on request.
const FORMAT_UNCHECKED: &str = "ddbsync-backup/1";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub environment: String,
    pub region: String,
    pub created_at: String,
    pub tables: Vec<TableEntry>,
    /// `md5:<hex>` of the manifest's JSON without this field, keys sorted and no whitespace (what
    /// `jq -cS 'del(.checksum)' manifest.json | tr -d '\n' | md5sum` prints), so that an edited count,
    /// key schema or table list is found. It detects damage and edits, not forgery: whoever can edit
    /// the file can recompute it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

impl Manifest {
    /// The manifest with its checksum set.
    pub fn sealed(self) -> Manifest {
        let bare = Manifest { checksum: None, ..self };
        let checksum = checksum_of(serde_json::to_value(&bare).expect("a manifest serializes"));
        Manifest { checksum: Some(checksum), ..bare }
    }
}

/// The checksum of a manifest's JSON: every field but `checksum`, keys sorted (serde_json's map is
/// ordered by key), no whitespace. Computed on the JSON as read, so an edit to any field counts,
/// even one this version does not know. Pure.
fn checksum_of(mut manifest: serde_json::Value) -> String {
    if let Some(fields) = manifest.as_object_mut() {
        fields.remove("checksum");
    }
    let json = serde_json::to_vec(&manifest).expect("JSON serializes");
    format!("md5:{}", hash::to_hex(&Md5::digest(&json).into()))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TableEntry {
    /// The mapping's name (without the environment's prefix).
    pub name: String,
    /// The DynamoDB table it was read from.
    pub table: String,
    /// Attribute name and type, partition key first.
    pub key_schema: KeySchema,
    /// The table's secondary indexes, recreated with it on restore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexSchema>,
    pub items: u64,
    /// Bytes of the uncompressed DynamoDB JSON lines.
    pub bytes: u64,
    /// MD5 of the uncompressed DynamoDB JSON lines, hex.
    pub md5: String,
    /// The entry of the archive holding the lines.
    pub file: String,
}

/// The default place of a new backup: `<backup_dir>/<env>-<UTC time>.ddbsync.tar`.
pub fn default_path(profile: &Profile) -> PathBuf {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    profile.backup_dir.join(format!("{}-{stamp}.ddbsync.tar", profile.env))
}

/// Writes every table of `mappings` that exists to a new archive at `path`.
pub async fn backup(
    dynamo: &dyn Target,
    profile: &Profile,
    mappings: &[&TableMapping],
    path: &Path,
    printer: &Printer,
) -> Result<Manifest> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let policy = RetryPolicy::new(profile.sync.max_attempts);
    let mut parts = Vec::new();
    for mapping in mappings {
        let table = &mapping.table_name;
        let Some(info) = dynamo.describe(table).await.with_context(|| format!("reading DynamoDB table {table}"))?
        else {
            printer.note(format!("{table} does not exist; nothing to back up"));
            continue;
        };
        // Only an ACTIVE table is read whole: one being created, deleted or recreated (a --clean
        // of an older ddbsync, another tool) holds a fraction of its items.
        if info.status != "ACTIVE" {
            bail!(
                "{table} is {}: a backup taken now would not hold all its items, so none was written; \
                 run the backup again once the table is ACTIVE",
                info.status
            );
        }
        let bar = printer.counter(format!("backing up {table}"));
        let part =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
        let mut gz =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(part.reopen()?), flate2::Compression::fast());
        let (mut items, mut bytes, mut md5) = (0u64, 0u64, Md5::new());
        // `ddbsync status` shows the items read (the lease's renewals carry them).
        let counters = crate::engine::progress::start(table);
        scan::each_page(dynamo, table, &policy, (&[], None), |page| {
            counters.read(page.len() as u64);
            for item in &page {
                let mut line = serde_json::to_vec(&serde_json::json!({ "Item": ddb_json::item_to_json(item) }))?;
                line.push(b'\n');
                md5.update(&line);
                gz.write_all(&line)?;
                bytes += line.len() as u64;
                items += 1;
            }
            bar.inc(page.len() as u64);
            Ok(())
        })
        .await
        .with_context(|| format!("backing up {table}; no backup was written"))?;
        gz.finish()?.flush()?;
        bar.finish_and_clear();
        counters.phase(crate::pure::status::Phase::Done);
        // The Scan saw one table only if the table it ends on is the one it began on.
        let after = dynamo.describe(table).await.with_context(|| format!("reading DynamoDB table {table}"))?;
        if let Some(changed) = changed_under_scan(&info, after.as_ref()) {
            bail!(
                "{table} {changed} while it was being read, so the {items} items read may be a fraction of it; \
                 no backup was written: run the backup again"
            );
        }
        let entry = TableEntry {
            name: mapping.name.clone(),
            table: mapping.table_name.clone(),
            key_schema: info.key_schema,
            indexes: info.indexes,
            items,
            bytes,
            md5: hash::to_hex(&md5.finalize().into()),
            file: format!("{}.json.gz", mapping.name),
        };
        parts.push((entry, part));
    }
    let manifest = Manifest {
        format: FORMAT.into(),
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        tables: parts.iter().map(|(e, _)| e.clone()).collect(),
        checksum: None,
    }
    .sealed();
    // Written under a temporary name and renamed, so that a backup that exists is complete.
    // Owner-only (0600, tempfile's mode on unix) and renamed with that mode: a backup holds whole items.
    let out = tempfile::NamedTempFile::new_in(dir)?;
    let mut archive = tar::Builder::new(std::io::BufWriter::new(out.reopen()?));
    let json = serde_json::to_vec_pretty(&manifest)?;
    append(&mut archive, MANIFEST, json.len() as u64, &json[..])?;
    for (entry, part) in &parts {
        let file = part.reopen()?;
        append(&mut archive, &entry.file, file.metadata()?.len(), file)?;
    }
    archive.into_inner()?.flush()?;
    out.persist(path).with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

/// A backup's key against the key attribute names its mapping gives (known without PostgreSQL),
/// for when the types cannot be had: `has key attributes (id) but envs/mappings/m.toml gives
/// (lesson_id)`. Pure.
pub fn key_names_mismatch(found: &KeySchema, mapping: &TableMapping) -> Option<String> {
    let wanted: Vec<&str> = mapping.entities.first()?.keys().map(|k| k.attribute.as_str()).collect();
    let have: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
    (have != wanted).then(|| {
        format!(
            "has key attributes ({}) but {} gives ({})",
            have.join(", "),
            mapping.origin.display(),
            wanted.join(", ")
        )
    })
}

/// How a table changed between the start and the end of its Scan, if it did. Pure.
fn changed_under_scan(before: &TableInfo, after: Option<&TableInfo>) -> Option<String> {
    match after {
        None => Some("was deleted".into()),
        Some(a) if a.created != before.created => Some("was deleted and created again".into()),
        Some(a) if a.status != "ACTIVE" => Some(format!("became {}", a.status)),
        Some(_) => None,
    }
}

fn append(archive: &mut tar::Builder<impl Write>, name: &str, size: u64, data: impl Read) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    archive.append_data(&mut header, name, data)?;
    Ok(())
}

/// Reads the whole archive before anything is changed: the manifest and its checksum, every table's
/// item count and MD5, and every item's key against the manifest's key schema. An archive without a
/// manifest checksum (format `ddbsync-backup/1`) is refused unless `allow_unchecked`.
pub fn verify(path: &Path, allow_unchecked: bool) -> Result<Manifest> {
    let mut manifest: Option<Manifest> = None;
    let mut checked: Vec<String> = Vec::new();
    each_table(path, |name, data| {
        if name == MANIFEST {
            if manifest.is_some() {
                bail!("{MANIFEST} appears twice; the backup is damaged or was edited");
            }
            let mut text = String::new();
            data.read_to_string(&mut text).map_err(|e| anyhow::anyhow!("{MANIFEST}: {e}; the backup is damaged"))?;
            manifest = Some(read_manifest(&text, allow_unchecked)?);
            return Ok(());
        }
        let m = manifest
            .as_ref()
            .context("manifest.json is not the first entry: not a ddbsync backup, or an edited one")?;
        let Some(entry) = m.tables.iter().find(|t| t.file == name) else {
            let listed: Vec<&str> = m.tables.iter().map(|t| t.file.as_str()).collect();
            bail!("{name} is not in the manifest (it lists {}); the backup was edited", listed.join(", "));
        };
        if checked.iter().any(|c| c == name) {
            bail!("{name} appears twice; the backup is damaged or was edited");
        }
        let (mut items, mut md5) = (0u64, Md5::new());
        // Line of each key seen: the same key twice would be written once and counted twice.
        let mut keys: HashMap<hash::Digest, u64> = HashMap::with_capacity(entry.items.min(1 << 24) as usize);
        let mut reader = BufReader::new(flate2::read::GzDecoder::new(data));
        let mut line = Vec::new();
        let damaged = |e: std::io::Error| anyhow::anyhow!("{name}: {e}; the backup is damaged");
        while reader.read_until(b'\n', &mut line).map_err(damaged)? > 0 {
            md5.update(&line);
            items += 1;
            let edited = |e: String| anyhow::anyhow!("{name}: line {items}: {e}; the backup is damaged or was edited");
            let key = check_line(&line, entry).map_err(edited)?;
            if let Some(first) = keys.insert(key, items) {
                let value: serde_json::Value = serde_json::from_slice(&line).unwrap_or_default();
                let item = ddb_json::item_from_json(&value["Item"]).unwrap_or_default();
                let names: Vec<&str> = entry.key_schema.iter().map(|(n, _)| n.as_str()).collect();
                return Err(edited(format!(
                    "item {} is also on line {first}: a table holds one item per key",
                    item::describe_key(&item, &names)
                )));
            }
            line.clear();
        }
        let digest = hash::to_hex(&md5.finalize().into());
        if items != entry.items || digest != entry.md5 {
            bail!(
                "{name}: {items} items with MD5 {digest}, but the manifest says {} items with MD5 {}; the backup is damaged",
                entry.items,
                entry.md5
            );
        }
        checked.push(name.to_string());
        Ok(())
    })?;
    let manifest = manifest.with_context(|| format!("{}: no manifest.json: not a ddbsync backup", path.display()))?;
    if let Some(missing) = manifest.tables.iter().find(|t| !checked.contains(&t.file)) {
        bail!("{}: {} is in the manifest but not in the archive; the backup is damaged", path.display(), missing.file);
    }
    Ok(manifest)
}

/// Parses the manifest and checks its checksum and its own consistency. Pure.
fn read_manifest(text: &str, allow_unchecked: bool) -> Result<Manifest> {
    let value: serde_json::Value = serde_json::from_str(text).context("manifest.json is not JSON")?;
    let expected = checksum_of(value.clone());
    let m: Manifest = serde_json::from_value(value).context("manifest.json is not a ddbsync manifest")?;
    match (m.format.as_str(), &m.checksum) {
        (FORMAT, Some(found)) if *found == expected => {}
        (FORMAT, Some(found)) => bail!(
            "manifest.json was changed after the backup was written: it records checksum {found} but its content \
             has {expected}; a count, a key schema or the list of tables may be wrong, so the backup cannot be \
             trusted"
        ),
        (FORMAT, None) => {
            bail!("manifest.json has no checksum, which {FORMAT} always records; the backup was edited or is damaged")
        }
        (FORMAT_UNCHECKED, _) if allow_unchecked => {}
        (FORMAT_UNCHECKED, _) => {
            return Err(crate::exit::UsageError(format!(
                "manifest.json has format {FORMAT_UNCHECKED}, written before manifests carried a checksum, so an \
                 edit to its counts, key schemas or list of tables cannot be detected (each table's MD5 and every \
                 item's key are still checked); if the file is the one you expect, run again with \
                 --allow-unchecked-manifest"
            ))
            .into())
        }
        (other, _) => bail!(
            "manifest.json has format {other:?}; this ddbsync reads {FORMAT} (and {FORMAT_UNCHECKED} with \
             --allow-unchecked-manifest)"
        ),
    }
    for (i, t) in m.tables.iter().enumerate() {
        let scalar = t.key_schema.iter().all(|(_, ty)| matches!(ty.as_str(), "S" | "N" | "B"));
        if !(1..=2).contains(&t.key_schema.len()) || !scalar {
            bail!(
                "manifest.json: table \"{}\" has key ({}), which is not a DynamoDB key",
                t.name,
                show_schema(&t.key_schema)
            );
        }
        if m.tables[..i].iter().any(|o| o.name == t.name || o.file == t.file) {
            bail!("manifest.json lists table \"{}\" ({}) twice; the backup was edited", t.name, t.file);
        }
    }
    Ok(m)
}

/// Checks that one line of a table's data is an item holding every key attribute of the table's
/// key, of its type, and that DynamoDB would store it as it is ([`item_flaw`]); returns its key
/// digest, for finding a key twice. Pure.
fn check_line(line: &[u8], entry: &TableEntry) -> Result<hash::Digest, String> {
    let key = &entry.key_schema;
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| format!("not a JSON line ({e})"))?;
    let item = ddb_json::item_from_json(&value["Item"]).map_err(|e| format!("not a DynamoDB JSON item ({e})"))?;
    let names: Vec<&str> = key.iter().map(|(n, _)| n.as_str()).collect();
    for (name, ty) in key {
        let found = match item.get(name) {
            None => {
                return Err(format!(
                    "item {} lacks key attribute \"{name}\" (the manifest's key is {})",
                    item::describe_key(&item, &names),
                    show_schema(key)
                ))
            }
            Some(value) => type_name(value),
        };
        if found != ty {
            return Err(format!(
                "item {} has key attribute \"{name}\" of type {found}, but the manifest's key is {}",
                item::describe_key(&item, &names),
                show_schema(key)
            ));
        }
    }
    if let Some(flaw) = item_flaw(&item, entry) {
        return Err(format!("item {}: {flaw}", item::describe_key(&item, &names)));
    }
    // DynamoDB keys numbers by value: "1" and "1.0" are one key.
    let values: Vec<AttributeValue> = names
        .iter()
        .map(|n| match &item[*n] {
            AttributeValue::N(text) => {
                AttributeValue::N(number::normalize(text).map(|c| c.into_owned()).unwrap_or_default())
            }
            other => other.clone(),
        })
        .collect();
    Ok(hash::key_digest(&values.iter().collect::<Vec<_>>()))
}

/// The first thing DynamoDB would refuse in an item of the archive, whose key attributes are
/// present and of the key's types: the limits a sync holds every item to before batching it (numbers,
/// sets, map keys, nesting, size, table and index key sizes, empty index keys), so that a restore
/// finds a bad item before it deletes anything rather than after. Pure.
fn item_flaw(item: &item::Item, entry: &TableEntry) -> Option<String> {
    if item.keys().any(String::is_empty) {
        return Some("it has an attribute with an empty name, which DynamoDB refuses".into());
    }
    if let Some(flaw) = item.iter().find_map(|(name, value)| item::value_flaw(name, value)) {
        return Some(flaw.to_string());
    }
    // Walked only once the nesting is known to be within DynamoDB's limit.
    if let Some((name, e)) = item.iter().find_map(|(name, value)| number_flaw(value).map(|e| (name, e))) {
        // Said without the advice for a query column that the error carries for a sync.
        let reason = match e {
            number::NumberError::Invalid(text) => format!("{text:?} is not a number"),
            number::NumberError::TooManyDigits { value, digits } => {
                format!("{value} has {digits} significant digits; DynamoDB keeps at most {}", number::MAX_DIGITS)
            }
            number::NumberError::OutOfRange(value) => {
                format!("{value} is outside DynamoDB's number range (1E-130 to 9.99E+125)")
            }
            number::NumberError::NotFinite(value) => format!("{value} is not a finite number"),
        };
        return Some(format!("attribute \"{name}\": {reason}"));
    }
    let size = item::item_size(item);
    if size > item::MAX_ITEM_BYTES {
        return Some(format!("the item is {} KB, over DynamoDB's 400 KB limit", size.div_ceil(1024)));
    }
    let table = entry.key_schema.iter().enumerate().map(|(i, (n, t))| (n, t, i == 0, None));
    let indexes = entry
        .indexes
        .iter()
        .flat_map(|x| x.keys.iter().enumerate().map(move |(i, (n, t))| (n, t, i == 0, Some(x.name.as_str()))));
    for (name, ty, partition, index) in table.chain(indexes) {
        // An item without an index key attribute is simply not in that index.
        let Some(value) = item.get(name) else { continue };
        let role = if partition { "partition key" } else { "sort key" };
        let of = index.map(|x| format!(" of index \"{x}\"")).unwrap_or_default();
        let found = type_name(value);
        if found != ty {
            return Some(format!("attribute \"{name}\", the {role}{of}, is of type {found}, not {ty}"));
        }
        if item::key_bytes(value) == 0 {
            return Some(format!("attribute \"{name}\", the {role}{of}, is empty, which DynamoDB refuses"));
        }
        let limit = if partition { item::MAX_PARTITION_KEY_BYTES } else { item::MAX_SORT_KEY_BYTES };
        let bytes = item::key_bytes(value);
        if bytes > limit {
            return Some(format!(
                "attribute \"{name}\", the {role}{of}, is {bytes} bytes, over DynamoDB's limit of {limit} for a {role}"
            ));
        }
    }
    None
}

/// The first number in `value` (at any depth) that DynamoDB refuses. Pure.
fn number_flaw(value: &AttributeValue) -> Option<number::NumberError> {
    match value {
        AttributeValue::N(n) => number::normalize(n).err(),
        AttributeValue::Ns(set) => set.iter().find_map(|n| number::normalize(n).err()),
        AttributeValue::L(list) => list.iter().find_map(number_flaw),
        AttributeValue::M(map) => map.values().find_map(number_flaw),
        _ => None,
    }
}

/// DynamoDB's name for a value's type.
fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "S",
        AttributeValue::N(_) => "N",
        AttributeValue::B(_) => "B",
        AttributeValue::Bool(_) => "BOOL",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::Ss(_) => "SS",
        AttributeValue::Ns(_) => "NS",
        AttributeValue::Bs(_) => "BS",
        AttributeValue::L(_) => "L",
        AttributeValue::M(_) => "M",
        _ => "unknown",
    }
}

/// Calls `f` with each archive entry's name and contents, in order.
fn each_table(path: &Path, mut f: impl FnMut(&str, &mut dyn Read) -> Result<()>) -> Result<()> {
    let file = match File::open(path) {
        Ok(file) => file,
        // The path given is wrong, not the backup: a usage error (exit 2), with what to give.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(crate::exit::UsageError(format!(
            "{}: no such file; give the path of a file that ddbsync backup wrote (ls <backup_dir>, default backups/)",
            path.display()
        ))
            .into())
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("opening {}", path.display()))),
    };
    let mut archive = tar::Archive::new(BufReader::new(file));
    let not_archive = || {
        format!(
            "{} is not a ddbsync backup archive (a tar of manifest.json and one <table>.json.gz per table), \
             or it was cut short",
            path.display()
        )
    };
    for entry in archive.entries().with_context(not_archive)? {
        let mut entry = entry.with_context(not_archive)?;
        let name = entry.path()?.to_string_lossy().into_owned();
        f(&name, &mut entry).with_context(|| format!("{}", path.display()))?;
    }
    Ok(())
}

/// What restoring one table did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub table: String,
    pub items: u64,
    pub outcome: WriteOutcome,
}

/// What a restore did, as `restore` shows it (`--json` gives it whole): how it ended, in the form
/// of a sync's report (`outcome`), and every table of the archive with its state.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The archive restored.
    pub file: String,
    /// The environment restored into.
    pub environment: String,
    /// `completed`, `interrupted` or `failed`, with the exit code (3 when items were not written)
    /// and the reason of a restore that did not complete.
    pub outcome: crate::pure::report::Outcome,
    pub tables: Vec<RestoredTable>,
    /// What each table holds and the command that finishes the restore, when it is incomplete.
    pub unfinished: Option<String>,
}

/// One table of the archive in a [`RestoreReport`].
#[derive(Debug, Clone, Serialize)]
pub struct RestoredTable {
    /// The table's name in the archive and the mappings.
    pub name: String,
    /// The DynamoDB table restored into (none for a table left out with `--table`).
    pub table: Option<String>,
    /// `restored`, `partly written`, `not reached`, `deleted, not recreated`, `deletion
    /// unconfirmed` or `left out`.
    pub state: &'static str,
    /// Items in the archive.
    pub items: u64,
    /// Items written so far.
    pub written: u64,
    /// Write units DynamoDB reported (0 for a table whose writer was abandoned after a stop).
    pub write_units: f64,
    pub retries: u64,
    /// Items of the archive a table the restore deleted and recreated does not hold: refused by
    /// DynamoDB (listed in `failed`), or never sent because the restore stopped (0 for a table it did
    /// not reach, which holds what it held).
    pub not_written: u64,
    /// Items that may or may not have been written (listed in `failed`, their reason says so).
    pub unknown: u64,
    pub failed: Vec<crate::pure::plan::Reject>,
}

impl RestoredTable {
    fn left_out(name: &str, items: u64) -> RestoredTable {
        RestoredTable {
            name: name.to_string(),
            table: None,
            state: "left out",
            items,
            written: 0,
            write_units: 0.0,
            retries: 0,
            not_written: 0,
            unknown: 0,
            failed: Vec::new(),
        }
    }
}

/// How far a restore got with one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    /// Not deleted: it holds what it held before.
    Untouched,
    /// Its deletion was asked for and not confirmed.
    Deleting,
    /// Deleted (or absent), not created again yet.
    Deleted,
    /// Created again from the backup; `written` of `of` items written so far.
    Writing { written: u64, of: u64 },
    /// Every item written.
    Done { of: u64 },
}

impl TableState {
    /// The state's name in a [`RestoreReport`].
    fn label(self) -> &'static str {
        match self {
            TableState::Untouched => "not reached",
            TableState::Deleting => "deletion unconfirmed",
            TableState::Deleted => "deleted, not recreated",
            TableState::Writing { written, of } if written >= of => "restored",
            TableState::Writing { .. } => "partly written",
            TableState::Done { .. } => "restored",
        }
    }
}

/// Where a restore stands, table by table, kept outside the restore so that whoever stops it (an
/// error, the lost lock) can say what each table holds.
pub struct Progress {
    file: PathBuf,
    env: Option<String>,
    /// Mapping name, table, state.
    tables: Mutex<Vec<(String, String, TableState)>>,
    /// Per table, what its writer did, once it has finished.
    written: Mutex<HashMap<String, WriteOutcome>>,
}

impl Progress {
    /// Every target untouched; `env` is the `--env` the restore was given, for the command to repeat.
    pub fn new(file: &Path, env: Option<&str>, targets: &[(String, String)]) -> Progress {
        let tables = targets.iter().map(|(name, table)| (name.clone(), table.clone(), TableState::Untouched)).collect();
        Progress {
            file: file.to_path_buf(),
            env: env.map(str::to_string),
            tables: Mutex::new(tables),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// What the restore wrote to each table it touched so far, for its run record: items written,
    /// units DynamoDB reported, items not written.
    pub fn figures(&self) -> Vec<crate::pure::report::OperationTable> {
        let tables = self.tables.lock().expect("progress lock");
        let written = self.written.lock().expect("progress lock");
        tables
            .iter()
            .filter(|(_, _, state)| *state != TableState::Untouched)
            .map(|(_, table, state)| {
                let (created, lacking) = match state {
                    TableState::Writing { written, of } => (*written, of.saturating_sub(*written)),
                    TableState::Done { of } => (*of, 0),
                    _ => (0, 0),
                };
                let (write_units, refused) =
                    written.get(table).map_or((0.0, 0), |o| (o.consumed_units, o.failed.len() as u64));
                // A stopped restore's table lacks more items than its writer refused: every one of
                // them is not written.
                let failed = lacking.max(refused);
                crate::pure::report::OperationTable {
                    table: table.clone(),
                    created,
                    failed,
                    write_units,
                    ..Default::default()
                }
            })
            .collect()
    }

    /// The restore's report: its outcome, and every table of the archive with what it holds now
    /// (`restored`, `partly written`, `not reached` …) and what its writer did. The tables left
    /// out with `--table` are listed too (`left out`), so that the report covers the whole archive.
    pub fn report(
        &self,
        manifest: &Manifest,
        environment: &str,
        outcome: crate::pure::report::Outcome,
    ) -> RestoreReport {
        let tables = self.tables.lock().expect("progress lock");
        let written = self.written.lock().expect("progress lock");
        let rows = manifest
            .tables
            .iter()
            .map(|entry| {
                let Some((_, table, state)) = tables.iter().find(|(name, _, _)| name == &entry.name) else {
                    return RestoredTable::left_out(&entry.name, entry.items);
                };
                let count = match state {
                    TableState::Writing { written, .. } => *written,
                    TableState::Done { of } => *of,
                    _ => 0,
                };
                let o = written.get(table).cloned().unwrap_or_default();
                RestoredTable {
                    name: entry.name.clone(),
                    table: Some(table.clone()),
                    state: state.label(),
                    items: entry.items,
                    written: count,
                    write_units: o.consumed_units,
                    retries: o.retries,
                    // Every item of the archive a table the restore changed lacks: refused, or never
                    // sent (a stop). A table not reached holds what it held, as the run record says.
                    not_written: match state {
                        TableState::Untouched => 0,
                        _ => entry.items.saturating_sub(count + o.unknown),
                    },
                    unknown: o.unknown,
                    failed: o.failed,
                }
            })
            .collect();
        RestoreReport {
            file: self.file.display().to_string(),
            environment: environment.to_string(),
            outcome,
            tables: rows,
            unfinished: describe_unfinished(&self.file, self.env.as_deref(), &tables),
        }
    }

    fn set(&self, table: &str, state: impl FnOnce(TableState) -> TableState) {
        let mut tables = self.tables.lock().expect("progress lock");
        if let Some(entry) = tables.iter_mut().find(|(_, t, _)| t == table) {
            entry.2 = state(entry.2);
        }
    }

    /// `None` when nothing was changed or everything is done; otherwise what each table holds and
    /// the command that finishes the restore.
    pub fn unfinished(&self) -> Option<String> {
        let tables = self.tables.lock().expect("progress lock");
        describe_unfinished(&self.file, self.env.as_deref(), &tables)
    }

    /// As [`Progress::unfinished`], after `restored`: when DynamoDB refused items as invalid, running
    /// the restore again would delete the table and stop at the same items, so that is not advised.
    /// `env` is the environment restored into, for the sync that rebuilds the tables instead.
    pub fn unfinished_after(&self, restored: &[Restored], env: &str) -> Option<String> {
        let refused =
            restored.iter().flat_map(|r| &r.outcome.failed).find(|f| f.reason.starts_with("ValidationException"));
        let tables = self.tables.lock().expect("progress lock");
        let state = describe_unfinished(&self.file, self.env.as_deref(), &tables)?;
        let Some(refused) = refused else { return Some(state) };
        let (state, _) = state.split_once("; run `").unwrap_or((&state, ""));
        Some(format!(
            "{state}; DynamoDB refused item {} as invalid ({}), so restoring this backup again would stop at the same \
             item: restore another backup, or rebuild the tables from the source with `ddbsync sync {env} --clean`",
            refused.key, refused.reason
        ))
    }
}

/// What each table of an interrupted restore holds, and the command that finishes it. Pure.
fn describe_unfinished(file: &Path, env: Option<&str>, tables: &[(String, String, TableState)]) -> Option<String> {
    let touched = tables.iter().any(|(_, _, s)| *s != TableState::Untouched);
    // A table whose every item was written is not to be restored again.
    let finished = |s: &TableState| match s {
        TableState::Done { .. } => true,
        TableState::Writing { written, of } => written >= of,
        _ => false,
    };
    let pending: Vec<&str> = tables.iter().filter(|(_, _, s)| !finished(s)).map(|(n, _, _)| n.as_str()).collect();
    if !touched || pending.is_empty() {
        return None;
    }
    let states: Vec<String> = tables
        .iter()
        .map(|(_, table, state)| match state {
            TableState::Untouched => format!("{table} was not touched"),
            TableState::Deleting => format!("{table} may have been deleted (its deletion did not finish)"),
            TableState::Deleted => format!("{table} was deleted and not created again"),
            TableState::Writing { written, of } if written >= of => format!("{table} was restored ({of} items)"),
            TableState::Writing { written, of } => {
                format!("{table} was deleted and recreated; {written} of {of} items written")
            }
            TableState::Done { of } => format!("{table} was restored ({of} items)"),
        })
        .collect();
    let env = env.map(|e| format!(" --env {e}")).unwrap_or_default();
    let tables: String = pending.iter().map(|n| format!(" --table {n}")).collect();
    Some(format!(
        "the restore is incomplete: {}; run `ddbsync restore {}{env}{tables} --yes` again to finish",
        states.join("; "),
        file.display()
    ))
}

/// Recreates each table of the manifest that `targets` names (mapping name → table) and writes
/// its items back, recording each step in `progress` (which names the archive). The archive must
/// have passed [`verify`]. A table whose items are not all written stops the restore before the
/// next table is deleted. Every write passes `fence` and `stop`; after a stop nothing more is sent,
/// deleted or created, and the restore ends with [`crate::engine::stop::Interrupted`].
pub async fn restore(
    dynamo: Arc<dyn Target>,
    profile: &Profile,
    manifest: &Manifest,
    targets: &[(String, String)],
    progress: &Arc<Progress>,
    (fence, stop): (&Fence, &Stop),
    printer: &Printer,
) -> Result<Vec<Restored>> {
    let mut restored = Vec::new();
    // One cap for the whole restore, as for a sync: `max_write_units_per_second` bounds what the
    // run writes, not what each table writes (a fresh cap per table would let each table burst).
    let cap = profile.sync.max_write_units_per_second.map(|n| Arc::new(Cap::new(n)));
    let stopped = || stop.requested().map_or(Ok(()), |signal| Err(crate::engine::stop::Interrupted(signal)));
    for (name, table) in targets {
        let entry = manifest.tables.iter().find(|t| &t.name == name).expect("targets come from the manifest");
        // No table is deleted or created after a stop was asked for.
        stopped()?;
        if dynamo.describe(table).await.with_context(|| format!("reading DynamoDB table {table}"))?.is_some() {
            fence.check()?;
            printer.note(format!("deleting {table}"));
            progress.set(table, |_| TableState::Deleting);
            dynamo.drop_table(table).await.with_context(|| format!("deleting {table}"))?;
        }
        progress.set(table, |_| TableState::Deleted);
        stopped()?;
        fence.check()?;
        printer.note(format!("creating {table}"));
        let schema = TableSchema { keys: entry.key_schema.clone(), indexes: entry.indexes.clone() };
        dynamo.make_table(table, &schema).await.with_context(|| format!("creating {table}"))?;
        let of = entry.items;
        progress.set(table, |_| TableState::Writing { written: 0, of });

        let key_names: Vec<String> = entry.key_schema.iter().map(|(n, _)| n.clone()).collect();
        let bar = printer.writes(format!("restoring {table}"));
        bar.set_length(entry.items);
        let on_written = {
            let (bar, table, progress) = (bar.clone(), table.clone(), progress.clone());
            // `ddbsync status` reads it from the lease's renewals.
            let counters = crate::engine::progress::start(&table);
            counters.phase(crate::pure::status::Phase::Writing);
            move |n: u64, units: f64| {
                bar.inc(n);
                counters.written(n, units);
                progress.set(&table, |s| match s {
                    TableState::Writing { written, of } => TableState::Writing { written: written + n, of },
                    other => other,
                });
            }
        };
        let settings_table = table.clone();
        // The writer a sync starts: the same pace, the run's cap, every batch passing the fence and
        // the stop (a restore that lost its lease, or was asked to stop, sends nothing more).
        let (tx, mut writing) = guard::spawn_writer(
            dynamo.clone(),
            (fence, stop),
            (&profile.sync, cap.clone()),
            (table, key_names.clone()),
            on_written,
        );
        // The archive is read on a blocking thread and fed to the writer through the channel.
        let (path, file, names, digest) = (progress.file.clone(), entry.file.clone(), key_names, entry.md5.clone());
        let indexes = entry.indexes.clone();
        let halt = stop.clone();
        let reader = tokio::task::spawn_blocking(move || -> Result<u64> {
            let (mut items, mut md5, mut halted) = (0, Md5::new(), false);
            each_table(&path, |name, data| {
                if name != file || halted {
                    return Ok(());
                }
                for line in BufReader::new(flate2::read::GzDecoder::new(data)).lines() {
                    // After a stop nothing more is fed to the writer, which would only pace and drop it.
                    if halt.requested().is_some() {
                        halted = true;
                        return Ok(());
                    }
                    let line = line?;
                    md5.update(line.as_bytes());
                    md5.update(b"\n");
                    let value: serde_json::Value = serde_json::from_str(&line)?;
                    let item = ddb_json::item_from_json(&value["Item"]).map_err(anyhow::Error::msg)?;
                    let key: Vec<&AttributeValue> = names.iter().filter_map(|n| item.get(n)).collect();
                    let pending = Pending {
                        key: hash::key_digest(&key),
                        // As DynamoDB bills a new item: itself and its entry in each index (the units cap
                        // holds on what is billed, as a sync's does).
                        units: cost::put_units(None, &Footprint::of(&item, &names, &indexes)),
                        request: Request::Put(item),
                    };
                    if tx.blocking_send(pending).is_err() {
                        bail!("the writer stopped");
                    }
                    items += 1;
                }
                Ok(())
            })?;
            if halted {
                return Ok(items);
            }
            // The archive was verified before anything changed; this finds it replaced since.
            if hash::to_hex(&md5.finalize().into()) != digest {
                bail!("{file} is not what was verified: the archive changed while it was being restored");
            }
            Ok(items)
        });
        // After a stop, batches still waiting for the write-units cap would only wait to be refused:
        // the writer is given the drain, as the batches in flight are, and then ended.
        let bounded = async {
            tokio::select! {
                outcome = &mut writing => Some(outcome),
                _ = stop.expired(crate::engine::stop::DRAIN) => {
                    writing.abort();
                    None
                }
            }
        };
        let (read, outcome) = tokio::join!(reader, bounded);
        let outcome = outcome.transpose().with_context(|| format!("the writer of {table} panicked"))?;
        bar.finish_and_clear();
        crate::engine::progress::table(table).phase(crate::pure::status::Phase::Done);
        // Kept before a stop ends the restore: the run record counts what was billed, and a table
        // whose every item was written is done, whatever came after.
        if let Some(o) = &outcome {
            progress.written.lock().expect("progress lock").insert(table.clone(), o.clone());
            if o.failed.is_empty() && o.written == of {
                progress.set(table, |_| TableState::Done { of });
            }
        }
        // The items not sent after the stop are not failures: the restore was interrupted.
        stopped()?;
        let outcome = outcome.expect("the writer is dropped only after a stop");
        let items = read
            .context("the archive reader panicked")?
            .with_context(|| format!("reading the items of {settings_table}"))?;
        let complete = outcome.failed.is_empty() && outcome.written == of;
        if complete {
            progress.set(table, |_| TableState::Done { of });
        }
        restored.push(Restored { table: table.clone(), items, outcome });
        if !complete {
            // Deleting the next table would leave two tables incomplete instead of one.
            break;
        }
    }
    Ok(restored)
}

/// What a backup wrote, for the printer: the file and each table's figures (JSON: the file and
/// the manifest).
pub fn written(path: &Path, manifest: &Manifest) -> (serde_json::Value, String) {
    let value = serde_json::json!({ "file": path.display().to_string(), "manifest": manifest });
    let mut text = format!("{}\n", path.display());
    for t in &manifest.tables {
        text.push_str(&format!("  {:<24} {:>10} items  {:>12} bytes  md5 {}\n", t.table, t.items, t.bytes, t.md5));
    }
    (value, text)
}

impl RestoreReport {
    /// The report as a person reads it: every table of the archive with its state, then how it
    /// ended when that is not plain success.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for t in &self.tables {
            let name = t.table.as_deref().unwrap_or(&t.name);
            let line = match t.state {
                "restored" => {
                    format!("{name:<24} {:>10} items restored, {} write units", t.written, units(t.write_units))
                }
                "partly written" => format!(
                    "{name:<24} {:>10} of {} items written (partly written), {} write units",
                    t.written,
                    t.items,
                    units(t.write_units)
                ),
                "left out" => format!("{name:<24} left out (not named with --table)"),
                state => format!("{name:<24} {state}"),
            };
            out.push_str(&line);
            out.push('\n');
            for f in &t.failed {
                // An item whose outcome is unknown says so in its reason; it is not called unwritten.
                let label =
                    if f.reason.starts_with(crate::engine::writer::OUTCOME_UNKNOWN) { "" } else { "not written: " };
                out.push_str(&format!("  {label}{}: {}\n", f.key, f.reason));
            }
        }
        let o = &self.outcome;
        if o.status != "completed" || o.exit_code != 0 {
            out.push_str(&format!("Restore {} (exit {})\n", o.status, o.exit_code));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::Projection;

    fn archive(manifest: &Manifest, data: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut b = tar::Builder::new(out.reopen().unwrap());
        let json = serde_json::to_vec(manifest).unwrap();
        append(&mut b, MANIFEST, json.len() as u64, &json[..]).unwrap();
        for (name, lines) in data {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(lines).unwrap();
            let bytes = gz.finish().unwrap();
            append(&mut b, name, bytes.len() as u64, &bytes[..]).unwrap();
        }
        b.into_inner().unwrap();
        out
    }

    fn entry(items: u64, md5: &str) -> TableEntry {
        TableEntry {
            name: "lessons".into(),
            table: "pni-lessons".into(),
            key_schema: vec![("lesson_id".into(), "N".into())],
            indexes: vec![],
            items,
            bytes: 0,
            md5: md5.into(),
            file: "lessons.json.gz".into(),
        }
    }

    /// A sealed manifest of one table.
    fn manifest(items: u64, md5: &str) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            environment: "dev".into(),
            region: "us-east-1".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            tables: vec![entry(items, md5)],
            checksum: None,
        }
        .sealed()
    }

    const LINES: &[u8] = b"{\"Item\":{\"lesson_id\":{\"N\":\"1\"}}}\n{\"Item\":{\"lesson_id\":{\"N\":\"2\"}}}\n";

    fn md5_of(data: &[u8]) -> String {
        hash::to_hex(&Md5::digest(data).into())
    }

    fn refusal(manifest: &Manifest, data: &[(&str, &[u8])], allow_unchecked: bool) -> String {
        let file = archive(manifest, data);
        format!("{:#}", verify(file.path(), allow_unchecked).unwrap_err())
    }

    #[test]
    fn a_sound_archive_verifies() {
        let md5 = md5_of(LINES);
        let file = archive(&manifest(2, &md5), &[("lessons.json.gz", LINES)]);
        assert_eq!(verify(file.path(), false).unwrap(), manifest(2, &md5));
    }

    #[test]
    fn a_damaged_or_incomplete_archive_is_refused() {
        let md5 = md5_of(LINES);
        let err = refusal(&manifest(3, &md5), &[("lessons.json.gz", LINES)], false);
        assert!(err.contains("lessons.json.gz: 2 items with MD5"), "{err}");
        assert!(err.contains("but the manifest says 3 items"), "{err}");
        let err = refusal(&manifest(2, &md5), &[], false);
        assert!(err.contains("lessons.json.gz is in the manifest but not in the archive"), "{err}");
        let extra = [("lessons.json.gz", LINES), ("extra.json.gz", LINES)];
        let err = refusal(&manifest(2, &md5), &extra, false);
        assert!(err.contains("extra.json.gz is not in the manifest (it lists lessons.json.gz)"), "{err}");
    }

    /// The manifest as this version writes it, byte for byte: an archive written today must stay
    /// readable, so a change here is a format change (a new FORMAT, and reading the old one).
    #[test]
    fn the_manifest_format_is_frozen() {
        let mut m = manifest(2, &md5_of(LINES));
        m.tables[0].bytes = LINES.len() as u64;
        m.tables[0].indexes = vec![IndexSchema {
            name: "by_topic".into(),
            local: false,
            keys: vec![("topic".into(), "S".into())],
            projection: Projection::KeysOnly,
        }];
        let m = Manifest { checksum: None, ..m }.sealed();
        assert_eq!(m.checksum.as_deref(), Some("md5:3a15db0b33127446d32185c251185848"));
        insta::assert_snapshot!("manifest_format", serde_json::to_string_pretty(&m).unwrap());
        let read = read_manifest(&serde_json::to_string_pretty(&m).unwrap(), false).unwrap();
        assert_eq!(read, m, "the manifest reads back as written");
    }

    #[test]
    fn an_edited_manifest_is_refused() {
        let md5 = md5_of(LINES);
        let sound = manifest(2, &md5);
        let mut count = sound.clone();
        count.tables[0].items = 3;
        let mut key = sound.clone();
        key.tables[0].key_schema[0].1 = "S".into();
        let mut added = sound.clone();
        added.tables.push(TableEntry {
            name: "topics".into(),
            file: "topics.json.gz".into(),
            ..entry(0, &md5_of(b""))
        });
        for (what, edited) in [("count", count), ("key schema", key), ("a table added", added)] {
            let data: &[(&str, &[u8])] = &[("lessons.json.gz", LINES), ("topics.json.gz", b"")];
            let err = refusal(&edited, data, false);
            assert!(err.contains("manifest.json was changed after the backup was written"), "{what}: {err}");
            assert!(err.contains("the backup cannot be trusted"), "{what}: {err}");
        }
        let bare = Manifest { checksum: None, ..sound };
        let err = refusal(&bare, &[("lessons.json.gz", LINES)], false);
        assert!(err.contains("manifest.json has no checksum"), "{err}");
    }

    #[test]
    fn an_unchecked_manifest_is_read_only_with_the_option() {
        let md5 = md5_of(LINES);
        let old = Manifest { format: FORMAT_UNCHECKED.into(), checksum: None, ..manifest(2, &md5) };
        let file = archive(&old, &[("lessons.json.gz", LINES)]);
        let err = verify(file.path(), false).unwrap_err();
        assert!(err.chain().any(|e| e.is::<crate::exit::UsageError>()), "exit 2: {err:#}");
        assert!(format!("{err:#}").contains("--allow-unchecked-manifest"), "{err:#}");
        assert_eq!(verify(file.path(), true).unwrap(), old);
        // Counts and MD5s are still checked.
        let short = Manifest { format: FORMAT_UNCHECKED.into(), checksum: None, ..manifest(3, &md5) };
        assert!(refusal(&short, &[("lessons.json.gz", LINES)], true).contains("but the manifest says 3 items"));
    }

    #[test]
    fn every_item_must_hold_the_manifest_key() {
        let key: KeySchema = vec![("pk".into(), "S".into()), ("sk".into(), "N".into())];
        let cases: [(&str, Option<&str>); 6] = [
            (r#"{"Item":{"pk":{"S":"a"},"sk":{"N":"1"},"x":{"BOOL":true}}}"#, None),
            (
                r#"{"Item":{"pk":{"S":"a"}}}"#,
                Some(r#"item pk="a", sk=<missing> lacks key attribute "sk" (the manifest's key is pk S, sk N)"#),
            ),
            (
                r#"{"Item":{"pk":{"N":"1"},"sk":{"N":"1"}}}"#,
                Some(r#"item pk=1, sk=1 has key attribute "pk" of type N, but the manifest's key is pk S, sk N"#),
            ),
            (r#"{"Item":{"pk":{"S":"a"},"sk":{"L":[]}}}"#, Some(r#"has key attribute "sk" of type L"#)),
            (r#"{"Item":{"pk":{"Q":"a"}}}"#, Some("not a DynamoDB JSON item (pk: unknown type tag Q)")),
            (r#"{"Item":{"pk""#, Some("not a JSON line")),
        ];
        let table = TableEntry { key_schema: key, ..entry(0, "") };
        for (line, expected) in cases {
            match (check_line(line.as_bytes(), &table), expected) {
                (Ok(_), None) => {}
                (Err(e), Some(words)) => assert!(e.contains(words), "{line}: {e}"),
                (got, _) => panic!("{line}: {got:?}, expected {expected:?}"),
            }
        }
        let bad = b"{\"Item\":{\"lesson_id\":{\"N\":\"1\"}}}\n{\"Item\":{\"id\":{\"N\":\"2\"}}}\n";
        let err = refusal(&manifest(2, &md5_of(bad)), &[("lessons.json.gz", bad)], false);
        assert!(
            err.contains("lessons.json.gz: line 2: item lesson_id=<missing> lacks key attribute \"lesson_id\""),
            "{err}"
        );
    }

    #[test]
    fn every_item_must_be_one_dynamodb_stores() {
        let table = TableEntry {
            key_schema: vec![("pk".into(), "S".into())],
            indexes: vec![IndexSchema {
                name: "by_topic".into(),
                local: false,
                keys: vec![("topic".into(), "S".into()), ("rank".into(), "N".into())],
                projection: Projection::KeysOnly,
            }],
            ..entry(0, "")
        };
        let long = "x".repeat(420 * 1024);
        let pk = "k".repeat(3000);
        let cases = [
            (r#""n":{"N":"abc"}"#.to_string(), "attribute \"n\": \"abc\" is not a number"),
            (r#""n":{"N":"1e200"}"#.into(), "outside DynamoDB's number range"),
            (r#""m":{"L":[{"NS":["1","x"]}]}"#.into(), "attribute \"m\": \"x\" is not a number"),
            (r#""s":{"SS":[]}"#.into(), "holds an empty set"),
            (r#""s":{"SS":["a","a"]}"#.into(), "holds a set with a member twice"),
            (r#""s":{"NS":["1","1.0"]}"#.into(), "holds a set with a member twice"),
            (r#""m":{"M":{"":{"S":"v"}}}"#.into(), "holds a map with an empty key"),
            (format!(r#""big":{{"S":"{long}"}}"#), "the item is 421 KB, over DynamoDB's 400 KB limit"),
            (r#""topic":{"S":""}"#.into(), "attribute \"topic\", the partition key of index \"by_topic\", is empty"),
            (r#""topic":{"N":"1"}"#.into(), "is of type N, not S"),
            (r#""rank":{"N":"1"},"topic":{"S":"t"}"#.into(), ""),
        ];
        for (attrs, expected) in cases {
            let line = format!(r#"{{"Item":{{"pk":{{"S":"a"}},{attrs}}}}}"#);
            match check_line(line.as_bytes(), &table) {
                Ok(_) => assert_eq!(expected, "", "{attrs:.80}"),
                Err(e) => {
                    assert!(!expected.is_empty() && e.contains(expected), "{attrs:.80}: {e}");
                    assert!(e.starts_with("item pk=\"a\": "), "the item's key is named: {e}");
                }
            }
        }
        let line = format!(r#"{{"Item":{{"pk":{{"S":"{pk}"}}}}}}"#);
        let err = check_line(line.as_bytes(), &table).unwrap_err();
        assert!(err.contains("the partition key, is 3000 bytes, over DynamoDB's limit of 2048"), "{err}");
        let line = r#"{"Item":{"pk":{"S":""}}}"#;
        assert!(check_line(line.as_bytes(), &table).unwrap_err().contains("the partition key, is empty"));
    }

    #[test]
    fn a_key_twice_is_refused_numbers_by_value() {
        let lines = b"{\"Item\":{\"lesson_id\":{\"N\":\"1\"}}}\n{\"Item\":{\"lesson_id\":{\"N\":\"1.0\"}}}\n";
        let err = refusal(&manifest(2, &md5_of(lines)), &[("lessons.json.gz", lines)], false);
        assert!(
            err.contains(
                "lessons.json.gz: line 2: item lesson_id=1.0 is also on line 1: a table holds one item per key"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_table_changed_under_the_scan_is_found() {
        let info = |status: &str, created: f64| TableInfo {
            status: status.into(),
            key_schema: vec![],
            indexes: vec![],
            indexes_building: 0,
            item_count: 0,
            created: Some(created),
        };
        let before = info("ACTIVE", 1.0);
        assert_eq!(changed_under_scan(&before, Some(&info("ACTIVE", 1.0))), None);
        assert_eq!(changed_under_scan(&before, None).as_deref(), Some("was deleted"));
        assert_eq!(
            changed_under_scan(&before, Some(&info("ACTIVE", 2.0))).as_deref(),
            Some("was deleted and created again")
        );
        assert_eq!(changed_under_scan(&before, Some(&info("DELETING", 1.0))).as_deref(), Some("became DELETING"));
    }

    #[test]
    fn an_interrupted_restore_says_what_each_table_holds() {
        let file = Path::new("backups/prod.tar");
        let row = |name: &str, state| (name.to_string(), format!("pni-{name}"), state);
        let untouched = [row("lessons", TableState::Untouched), row("topics", TableState::Untouched)];
        assert_eq!(describe_unfinished(file, None, &untouched), None, "nothing changed");
        let done = [row("lessons", TableState::Done { of: 3 })];
        assert_eq!(describe_unfinished(file, None, &done), None);
        let halfway = [
            row("lessons", TableState::Done { of: 40 }),
            row("passages", TableState::Writing { written: 25, of: 80 }),
            row("topics", TableState::Untouched),
        ];
        assert_eq!(
            describe_unfinished(file, Some("staging"), &halfway).unwrap(),
            "the restore is incomplete: pni-lessons was restored (40 items); pni-passages was deleted and \
             recreated; 25 of 80 items written; pni-topics was not touched; run `ddbsync restore \
             backups/prod.tar --env staging --table passages --table topics --yes` again to finish"
        );
        // Every item of a table written before the stop: it is not listed for the resume.
        let written =
            [row("lessons", TableState::Writing { written: 260, of: 260 }), row("topics", TableState::Untouched)];
        assert_eq!(
            describe_unfinished(file, None, &written).unwrap(),
            "the restore is incomplete: pni-lessons was restored (260 items); pni-topics was not touched; run `ddbsync restore backups/prod.tar --table topics --yes` again to finish"
        );
        let deleted = [row("lessons", TableState::Deleted)];
        assert!(describe_unfinished(file, None, &deleted)
            .unwrap()
            .contains("pni-lessons was deleted and not created again"));
    }
}
