//! Whether a table's diff may read its hash index, and the record that says it may.
//!
//! The hash index ([`INDEX_NAME`]) holds an entry only for an item that carries its bucket. Items
//! written before the table's diff read the index (or by a run whose mapping did not bucket them)
//! are missing from it, and an orphan missing from it would never be deleted. So the diff reads the
//! index only when a record in the metadata table (`pk = DIFF`, `sk = TABLE#<name>`) says every
//! item of the table, as it was created (its creation time is in the record), carries its bucket:
//!
//! - written when a run creates the table with the index (it is empty), or when a Scan of the
//!   table that read the whole source ends with every item that lacked its bucket rewritten or
//!   deleted ([`Switch::complete`]);
//! - deleted when a run writes the table through a mapping that does not bucket its items;
//! - void when the table was deleted and created again (another creation time), by ddbsync or not.
//!
//! Otherwise the diff Scans the table, says why, and rewrites every item without its bucket: a
//! table switched to `diff = "index"` is read in full once, then through the index.

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};

use crate::engine::scan::Read;
use crate::profile::{DiffMode, Profile};
use crate::pure::bucket::INDEX_NAME;
use crate::pure::item::{AttributeValue, Item, HASH_ATTR};
use crate::target::{Condition, IndexSchema, Projection, TableInfo, Target};

/// The record's key in the metadata table.
fn key(table: &str) -> Item {
    [
        ("pk".to_string(), AttributeValue::S("DIFF".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{table}"))),
    ]
    .into()
}

/// The table's creation time as the record holds it (DynamoDB's seconds, as Rust spells an `f64`:
/// it reads back equal).
fn spelled(created: f64) -> String {
    created.to_string()
}

/// Reads the record: the creation time of the table it speaks of, if there is one.
pub async fn recorded(dynamo: &dyn Target, profile: &Profile, table: &str) -> Result<Option<String>> {
    let item = dynamo
        .get_item(&profile.metadata_table, key(table))
        .await
        .with_context(|| format!("reading whether {table}'s hash index is complete, in {}", profile.metadata_table))?;
    Ok(item.and_then(|i| i.get("table_created").and_then(|v| v.as_n().ok()).cloned()))
}

/// Records that every item of the table, as created at `created`, carries its bucket.
pub async fn mark_complete(dynamo: &dyn Target, profile: &Profile, table: &str, created: f64) -> Result<()> {
    let mut item = key(table);
    item.insert("table_created".into(), AttributeValue::N(spelled(created)));
    item.insert("index".into(), AttributeValue::S(INDEX_NAME.into()));
    item.insert("complete_since".into(), AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)));
    dynamo
        .put_item(&profile.metadata_table, item)
        .await
        .with_context(|| format!("recording that {table}'s hash index is complete, in {}", profile.metadata_table))?;
    Ok(())
}

/// Deletes the record, before a run writes items without their bucket.
pub async fn forget(dynamo: &dyn Target, profile: &Profile, table: &str) -> Result<()> {
    let always = Condition { expression: "attribute_exists(pk) OR attribute_not_exists(pk)", values: vec![] };
    dynamo.delete_if(&profile.metadata_table, key(table), always).await.with_context(|| {
        format!(
            "deleting the record of {table}'s hash index in {}, before writing items without their bucket",
            profile.metadata_table
        )
    })?;
    Ok(())
}

/// How the diff reads a table that exists, and why it Scans when its mapping asks for the index
/// (a note for the run's output). `record`: the creation time the metadata table's record holds.
pub fn choose(
    mode: DiffMode,
    full_scan: bool,
    (info, wanted): (&TableInfo, Option<&IndexSchema>),
    record: Option<&str>,
) -> (Read, Option<String>) {
    if mode == DiffMode::Scan {
        return (Read::Scan { bucketed: false }, None);
    }
    let scan = |why: String| (Read::Scan { bucketed: true }, Some(why));
    if full_scan {
        return scan("--full-scan: the diff Scans the whole table instead of reading its hash index".into());
    }
    let Some(index) = info.indexes.iter().find(|i| i.name == INDEX_NAME) else {
        return scan(format!(
            "has no hash index {INDEX_NAME} yet: the diff Scans the table and writes each item's bucket; \
             `ddbsync tables create` adds the index"
        ));
    };
    let lacking = uncopied(index, wanted);
    if !lacking.is_empty() {
        return scan(format!(
            "has a hash index {INDEX_NAME} that does not copy {}, which the scope reads (the scope changed since \
             the index was made), so a filter on it would match nothing: the diff Scans the table. Delete the index \
             (aws dynamodb update-table --table-name <table> --global-secondary-index-updates \
             '[{{\"Delete\":{{\"IndexName\":\"{INDEX_NAME}\"}}}}]'), then `ddbsync tables create` makes it again",
            lacking.join(", ")
        ));
    }
    if info.indexes_building > 0 {
        return scan(format!(
            "is still building a global index ({INDEX_NAME} or another): the diff Scans the table until DynamoDB has filled it"
        ));
    }
    let Some(created) = info.created else {
        return scan("does not say when it was created, which the hash index's record is checked against: the diff Scans the table".into());
    };
    match record {
        Some(recorded) if recorded.parse::<f64>().ok() == Some(created) => {
            (Read::Index { not_before: None, buckets: None }, None)
        }
        Some(_) => scan(format!(
            "was created again since its hash index was last complete: the diff Scans the table once, writing the \
             bucket of every item that lacks it, and reads {INDEX_NAME} from the next run"
        )),
        None => scan(format!(
            "is read through {INDEX_NAME} once every item carries its bucket: this run Scans the table and rewrites \
             the items without it"
        )),
    }
}

/// The attributes the mapping's hash index copies (`wanted`) that the table's does not.
fn uncopied(index: &IndexSchema, wanted: Option<&IndexSchema>) -> Vec<String> {
    let (Some(Projection::Include(wanted)), Projection::Include(has)) =
        (wanted.map(|w| &w.projection), &index.projection)
    else {
        // An index that copies everything copies what is wanted; one that copies keys only lacks the hash.
        return match &index.projection {
            Projection::KeysOnly => vec![format!("\"{HASH_ATTR}\"")],
            _ => Vec::new(),
        };
    };
    wanted.iter().filter(|a| !has.contains(a)).map(|a| format!("\"{a}\"")).collect()
}

/// Why a Scan that bucketed what it could did not complete the switch: the items that may still
/// lack their bucket, and how to clear them.
pub fn blocked(table: &str, left_orphans: u64, stale: u64, not_written: usize) -> String {
    let mut what = Vec::new();
    if left_orphans > 0 {
        what.push(format!("{left_orphans} items without a source row (set delete_missing = true, or delete them)"));
    }
    if stale > 0 {
        what.push(format!("{stale} stale items of rejected rows (fix the rows)"));
    }
    if not_written > 0 {
        what.push(format!("{not_written} items not written (see the report)"));
    }
    format!(
        "{table}: the diff keeps Scanning the table instead of reading {INDEX_NAME}: some items may lack their \
         bucket: {}; once they are gone, the next run completes the switch",
        what.join(", ")
    )
}

/// What a Scan of a bucketed table found, to tell whether every item now carries its bucket.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switch {
    /// Items the Scan found without their bucket (rewritten when a source row has their key).
    pub unbucketed: u64,
}

impl Switch {
    /// Whether every item of the table now carries its bucket, after a Scan that read the whole
    /// source: none lacked it, or every one that did was rewritten (no write failed or may have
    /// failed), and no orphan or kept stale item was left behind (either may lack it).
    pub fn complete(&self, not_written: usize, left_orphans: u64, stale: u64) -> bool {
        not_written == 0 && (self.unbucketed == 0 || (left_orphans == 0 && stale == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(indexed: bool, building: usize, created: Option<f64>) -> TableInfo {
        let index = IndexSchema {
            name: INDEX_NAME.into(),
            local: false,
            keys: vec![("_ddbsync_bucket".into(), "N".into())],
            projection: Projection::Include(vec![HASH_ATTR.into()]),
        };
        TableInfo {
            status: "ACTIVE".into(),
            key_schema: vec![("id".into(), "N".into())],
            indexes: if indexed { vec![index] } else { vec![] },
            indexes_building: building,
            item_count: 0,
            created,
        }
    }

    #[test]
    fn the_index_is_read_only_when_the_record_speaks_of_this_very_table() {
        let created = 1_764_300_000.125;
        let record = spelled(created);
        let ready = info(true, 0, Some(created));
        let mut keys_only = ready.clone();
        keys_only.indexes[0].projection = Projection::KeysOnly;
        assert!(matches!(choose(DiffMode::Index, false, (&ready, None), Some(&record)), (Read::Index { .. }, None)));
        assert_eq!(spelled(record.parse().unwrap()), record, "the spelling reads back equal");
        for (why, table, record, says) in [
            ("asked", &ready, Some(record.as_str()), "--full-scan"),
            ("no index", &info(false, 0, Some(created)), Some(record.as_str()), "tables create"),
            ("filling", &info(true, 1, Some(created)), Some(record.as_str()), "building"),
            ("no record", &ready, None, "rewrites the items without it"),
            ("keys only", &keys_only, Some(record.as_str()), "does not copy \"_ddbsync_hash\""),
            ("recreated", &info(true, 0, Some(created + 1.0)), Some(record.as_str()), "created again"),
            ("unknown creation", &info(true, 0, None), Some(record.as_str()), "does not say when"),
        ] {
            let full_scan = why == "asked";
            let (read, note) = choose(DiffMode::Index, full_scan, (table, None), record);
            assert_eq!(read, Read::Scan { bucketed: true }, "{why}");
            assert!(note.unwrap().contains(says), "{why}");
        }
        let (read, note) = choose(DiffMode::Scan, false, (&ready, None), Some(&record));
        assert_eq!((read, note), (Read::Scan { bucketed: false }, None), "a scan mapping neither buckets nor says");
    }

    #[test]
    fn an_index_that_does_not_copy_what_the_scope_reads_is_not_read() {
        let created = 7.5;
        let (record, mut table) = (spelled(created), info(true, 0, Some(created)));
        let mut wanted = table.indexes[0].clone();
        wanted.projection = Projection::Include(vec![HASH_ATTR.into(), "region".into(), "name".into()]);
        table.indexes[0].projection = Projection::Include(vec![HASH_ATTR.into(), "region".into()]);
        let (read, note) = choose(DiffMode::Index, false, (&table, Some(&wanted)), Some(&record));
        assert_eq!(read, Read::Scan { bucketed: true });
        assert!(note.unwrap().contains("does not copy \"name\", which the scope reads"));
        table.indexes[0].projection = wanted.projection.clone();
        let (read, _) = choose(DiffMode::Index, false, (&table, Some(&wanted)), Some(&record));
        assert!(matches!(read, Read::Index { .. }), "the same projection");
        table.indexes[0].projection = Projection::All;
        assert!(matches!(choose(DiffMode::Index, false, (&table, Some(&wanted)), Some(&record)).0, Read::Index { .. }));
    }

    #[test]
    fn a_switch_is_complete_only_when_no_item_can_lack_its_bucket() {
        let none = Switch { unbucketed: 0 };
        let some = Switch { unbucketed: 5 };
        assert!(none.complete(0, 3, 1), "every item had it: orphans and stale items have it too");
        assert!(some.complete(0, 0, 0), "every item without it was rewritten");
        assert!(!some.complete(0, 1, 0), "an orphan left may lack it");
        assert!(!some.complete(0, 0, 1), "a stale item kept may lack it");
        assert!(!some.complete(1, 0, 0), "a rewrite that failed");
    }
}
