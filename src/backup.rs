//! Backups of an environment's tables to one local file, and restoring them.
//!
//! A backup is a tar archive: `manifest.json` (environment, region, time, and per table its key
//! schema, item count, byte count and the MD5 of its data), then one `<mapping>.json.gz` per table
//! holding DynamoDB JSON lines in the layout of DynamoDB's S3 export (`{"Item": {...}}`), so that
//! `tar -xf` and `zcat` are enough to read one. Items keep ddbsync's hash attribute, so a sync after
//! a restore writes only what differs from the source. A restore checks every count and digest
//! before it changes anything.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::ddb_json;
use crate::dynamo::{Dynamo, IndexSchema, KeySchema, TableSchema};
use crate::hash;
use crate::item::{self, AttributeValue};
use crate::pace::Pace;
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::retry::RetryPolicy;
use crate::scan;
use crate::target::Request;
use crate::writer::{self, Pending, WriteOutcome, WriterSettings, MAX_BATCH};

const FORMAT: &str = "ddbsync-backup/1";
const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: String,
    pub environment: String,
    pub region: String,
    pub created_at: String,
    pub tables: Vec<TableEntry>,
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
    dynamo: &Dynamo,
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
        let Some(info) = dynamo.describe(&mapping.table_name).await? else {
            printer.note(format!("{} does not exist; nothing to back up", mapping.table_name));
            continue;
        };
        let bar = printer.counter(format!("backing up {}", mapping.table_name));
        let part =
            tempfile::NamedTempFile::new_in(dir).with_context(|| format!("creating a file in {}", dir.display()))?;
        let mut gz =
            flate2::write::GzEncoder::new(std::io::BufWriter::new(part.reopen()?), flate2::Compression::fast());
        let (mut items, mut bytes, mut md5) = (0u64, 0u64, Md5::new());
        scan::each_page(dynamo, &mapping.table_name, &policy, None, |page| {
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
        .await?;
        gz.finish()?.flush()?;
        bar.finish_and_clear();
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
    };
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

fn append(archive: &mut tar::Builder<impl Write>, name: &str, size: u64, data: impl Read) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(chrono::Utc::now().timestamp().max(0) as u64);
    archive.append_data(&mut header, name, data)?;
    Ok(())
}

/// Reads the manifest and checks every table's item count and digest against it.
pub fn verify(path: &Path) -> Result<Manifest> {
    let mut manifest: Option<Manifest> = None;
    let mut checked = Vec::new();
    each_table(path, |name, lines| {
        if name == MANIFEST {
            let mut text = String::new();
            lines.read_to_string(&mut text)?;
            let m: Manifest = serde_json::from_str(&text).context("manifest.json is not a ddbsync manifest")?;
            if m.format != FORMAT {
                bail!("manifest.json has format {:?}; this ddbsync reads {FORMAT}", m.format);
            }
            manifest = Some(m);
            return Ok(());
        }
        let m = manifest.as_ref().context("manifest.json is not the first entry")?;
        let Some(entry) = m.tables.iter().find(|t| t.file == name) else {
            bail!("{name} is not in the manifest");
        };
        let (mut items, mut md5) = (0u64, Md5::new());
        let mut reader = BufReader::new(flate2::read::GzDecoder::new(lines));
        let mut line = Vec::new();
        let damaged = |e: std::io::Error| anyhow::anyhow!("{name}: {e}; the backup is damaged");
        while reader.read_until(b'\n', &mut line).map_err(damaged)? > 0 {
            md5.update(&line);
            items += 1;
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
    let manifest = manifest.context("no manifest.json: not a ddbsync backup")?;
    if let Some(missing) = manifest.tables.iter().find(|t| !checked.contains(&t.file)) {
        bail!("{} is in the manifest but not in the archive", missing.file);
    }
    Ok(manifest)
}

/// Calls `f` with each archive entry's name and contents, in order.
fn each_table(path: &Path, mut f: impl FnMut(&str, &mut dyn Read) -> Result<()>) -> Result<()> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut archive = tar::Archive::new(BufReader::new(file));
    for entry in archive.entries().with_context(|| format!("{} is not a ddbsync backup", path.display()))? {
        let mut entry = entry.with_context(|| format!("reading {}", path.display()))?;
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

/// Recreates each table of the manifest that `targets` names (mapping name → table) and writes
/// its items back. The archive must have passed [`verify`].
pub async fn restore(
    dynamo: Arc<Dynamo>,
    profile: &Profile,
    path: &Path,
    manifest: &Manifest,
    targets: &[(String, String)],
    printer: &Printer,
) -> Result<Vec<Restored>> {
    let mut restored = Vec::new();
    for (name, table) in targets {
        let entry = manifest.tables.iter().find(|t| &t.name == name).expect("targets come from the manifest");
        if dynamo.describe(table).await?.is_some() {
            printer.note(format!("deleting {table}"));
            dynamo.drop_table(table).await?;
        }
        printer.note(format!("creating {table}"));
        let schema = TableSchema { keys: entry.key_schema.clone(), indexes: entry.indexes.clone() };
        dynamo.make_table(table, &schema).await?;

        let key_names: Vec<String> = entry.key_schema.iter().map(|(n, _)| n.clone()).collect();
        let (tx, rx) = mpsc::channel(1024);
        let settings = WriterSettings {
            table: table.clone(),
            key_names: key_names.clone(),
            policy: RetryPolicy::new(profile.sync.max_attempts),
            shuffle_window: 40 * MAX_BATCH,
        };
        let pace = Arc::new(Pace::new(profile.sync.max_in_flight, None));
        let bar = printer.writes(format!("restoring {table}"));
        bar.set_length(entry.items);
        let progress = bar.clone();
        let task = tokio::spawn(writer::write_all(dynamo.clone(), settings, pace, rx, move |n| progress.inc(n)));
        // The archive is read on a blocking thread and fed to the writer through the channel.
        let (path, file, names) = (path.to_path_buf(), entry.file.clone(), key_names);
        let reader = tokio::task::spawn_blocking(move || -> Result<u64> {
            let mut items = 0;
            each_table(&path, |name, data| {
                if name != file {
                    return Ok(());
                }
                for line in BufReader::new(flate2::read::GzDecoder::new(data)).lines() {
                    let value: serde_json::Value = serde_json::from_str(&line?)?;
                    let item = ddb_json::item_from_json(&value["Item"]).map_err(anyhow::Error::msg)?;
                    let key: Vec<&AttributeValue> = names.iter().filter_map(|n| item.get(n)).collect();
                    let pending = Pending {
                        key: hash::key_digest(&key),
                        units: item::write_units(item::item_size(&item)),
                        request: Request::Put(item),
                    };
                    if tx.blocking_send(pending).is_err() {
                        bail!("the writer stopped");
                    }
                    items += 1;
                }
                Ok(())
            })?;
            Ok(items)
        });
        let items = reader.await??;
        let outcome = task.await?;
        bar.finish_and_clear();
        restored.push(Restored { table: table.clone(), items, outcome });
    }
    Ok(restored)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn manifest(items: u64, md5: &str) -> Manifest {
        Manifest {
            format: FORMAT.into(),
            environment: "dev".into(),
            region: "us-east-1".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            tables: vec![TableEntry {
                name: "lessons".into(),
                table: "pni-lessons".into(),
                key_schema: vec![("lesson_id".into(), "N".into())],
                indexes: vec![],
                items,
                bytes: 0,
                md5: md5.into(),
                file: "lessons.json.gz".into(),
            }],
        }
    }

    const LINES: &[u8] = b"{\"Item\":{\"lesson_id\":{\"N\":\"1\"}}}\n{\"Item\":{\"lesson_id\":{\"N\":\"2\"}}}\n";

    #[test]
    fn a_sound_archive_verifies() {
        let md5 = hash::to_hex(&Md5::digest(LINES).into());
        let file = archive(&manifest(2, &md5), &[("lessons.json.gz", LINES)]);
        assert_eq!(verify(file.path()).unwrap(), manifest(2, &md5));
    }

    #[test]
    fn a_damaged_or_incomplete_archive_is_refused() {
        let md5 = hash::to_hex(&Md5::digest(LINES).into());
        let short = archive(&manifest(3, &md5), &[("lessons.json.gz", LINES)]);
        let err = format!("{:#}", verify(short.path()).unwrap_err());
        assert!(err.contains("lessons.json.gz: 2 items with MD5"), "{err}");
        assert!(err.contains("but the manifest says 3 items"), "{err}");
        let missing = archive(&manifest(2, &md5), &[]);
        let err = format!("{:#}", verify(missing.path()).unwrap_err());
        assert!(err.contains("lessons.json.gz is in the manifest but not in the archive"), "{err}");
    }
}
