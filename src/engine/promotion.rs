//! Which ID namespace a promoted table's items were given, kept in the metadata table
//! (`pk = PROMOTE`, `sk = TABLE#<name>`): a promotion with another namespace would give every item
//! a new ID and write the whole table again beside the old one, so it is refused before anything
//! is written. A changed `target.id_namespace`, or a renamed environment file (the namespace's
//! default), is the usual cause.

use anyhow::{Context, Result};
use chrono::{SecondsFormat, Utc};

use crate::exit::UsageError;
use crate::profile::{Profile, TableMapping};
use crate::pure::item::{AttributeValue, Item};
use crate::target::Target;

fn key(table: &str) -> Item {
    [
        ("pk".to_string(), AttributeValue::S("PROMOTE".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{table}"))),
    ]
    .into()
}

/// Refuses the run when a table that holds items was promoted with another namespace; then
/// records this run's namespace for the tables without a record (or recreated: `fresh`).
/// `tables`: each promoted table, and whether it is empty or recreated by this run.
pub async fn claim(dynamo: &dyn Target, profile: &Profile, tables: &[(&TableMapping, bool)]) -> Result<()> {
    let ours = &profile.id_namespace;
    // A dry run of a first sync finds no metadata table (a real run's lock creates it): no record.
    let meta = dynamo.describe(&profile.metadata_table).await;
    if meta.with_context(|| format!("reading the metadata table {}", profile.metadata_table))?.is_none() {
        return Ok(());
    }
    let mut unrecorded = Vec::new();
    for (mapping, fresh) in tables {
        let table = &mapping.table_name;
        let record = dynamo.get_item(&profile.metadata_table, key(table)).await.with_context(|| {
            format!("reading the ID namespace {table} was promoted with, in {}", profile.metadata_table)
        })?;
        let theirs = record.as_ref().and_then(|r| r.get("id_namespace")).and_then(|v| v.as_s().ok());
        match theirs {
            Some(theirs) if theirs == ours => {}
            Some(theirs) if !fresh => {
                return Err(UsageError(format!(
                    "{table} was promoted with id_namespace \"{theirs}\", and this run's is \"{ours}\" (target.id_namespace \
                     in {}, by default the environment's name): every item would get another ID and the table would \
                     hold each twice. Set target.id_namespace = \"{theirs}\" (was the environment file renamed?), or \
                     start the table afresh with --clean; nothing was written",
                    profile.path.display()
                ))
                .into());
            }
            _ => unrecorded.push(table),
        }
    }
    for table in unrecorded {
        let mut item = key(table);
        item.insert("id_namespace".into(), AttributeValue::S(ours.clone()));
        item.insert("since".into(), AttributeValue::S(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)));
        dynamo
            .put_item(&profile.metadata_table, item)
            .await
            .with_context(|| format!("recording the ID namespace of {table} in {}", profile.metadata_table))?;
    }
    Ok(())
}
