//! `verify --references`: whether every reference a promotion wrote resolves in the target. It
//! reads the target alone, never the source: the IDs each referenced table holds (a Scan of the
//! ID attribute), then every item of the tables with references (a Scan of whole items), and
//! lists each reference to an ID the referenced table does not hold, with the item's key and the
//! reference's path.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::engine::scan::each_page;
use crate::printer::Printer;
use crate::profile::{Profile, TableMapping};
use crate::pure::item;
use crate::pure::remap;
use crate::target::retry::RetryPolicy;
use crate::target::{dynamo, Target};

/// At most this many dangling references are listed per table; all are counted.
const LISTED: usize = 1000;

#[derive(Debug, Serialize)]
pub struct Dangling {
    /// The referencing item's key, as messages spell it.
    pub key: String,
    pub path: String,
    /// The table the reference names (its mapping's name) and the ID it holds, in DynamoDB's
    /// JSON (`{"S": "…"}`).
    pub references: String,
    pub id: serde_json::Value,
    #[serde(skip)]
    shown: String,
}

#[derive(Debug, Serialize)]
pub struct TableReferences {
    pub table: String,
    pub items: u64,
    /// References read (each ID of a list counted).
    pub checked: u64,
    /// References to an ID the referenced table does not hold.
    pub dangling: u64,
    /// The first of them.
    pub listed: Vec<Dangling>,
}

#[derive(Debug, Serialize)]
pub struct ReferencesReport {
    pub environment: String,
    pub region: String,
    pub references: Vec<TableReferences>,
    pub read_units: f64,
    pub cost_usd: f64,
}

impl ReferencesReport {
    pub fn dangles(&self) -> bool {
        self.references.iter().any(|t| t.dangling > 0)
    }

    pub fn render(&self) -> String {
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        table.set_header(["table", "items", "references", "dangling"]);
        for t in &self.references {
            table.add_row(vec![t.table.clone(), t.items.to_string(), t.checked.to_string(), t.dangling.to_string()]);
        }
        let mut out = format!("{} ({}), references in the target\n{table}\n", self.environment, self.region);
        for t in self.references.iter().filter(|t| t.dangling > 0) {
            out.push_str(&format!("{}: {} references point at nothing:\n", t.table, t.dangling));
            for d in t.listed.iter().take(20) {
                out.push_str(&format!("  {}: {} = {} is not in {}\n", d.key, d.path, d.shown, d.references));
            }
            if t.dangling > 20 {
                out.push_str(&format!("  … and {} more (see --json)\n", t.dangling - 20));
            }
        }
        if !self.dangles() {
            out.push_str("Every reference resolves.\n");
        } else {
            out.push_str(
                "A reference dangles when the item it points at was deleted (by delete_missing, or by hand) while the \
                 referencing item was kept as it was (a promotion rejects a source item whose reference the source \
                 cannot resolve, and keeps its stored item: its report names the source item), or when something \
                 other than ddbsync wrote it. Fix the source item (point it at an item that exists, or clear the \
                 reference) and promote again, or fix or delete the target item.\n",
            );
        }
        out.push_str(&format!("Read {:.1} units (${:.6}).\n", self.read_units, self.cost_usd));
        out
    }
}

/// Checks the references of the selected tables (all with references when none is named).
pub async fn check(profile: &Profile, names: &[String], printer: &Printer) -> Result<ReferencesReport> {
    let selected = crate::engine::preflight::selected(profile, names)?;
    let with_references: Vec<&TableMapping> =
        selected.into_iter().filter(|t| t.promote.as_ref().is_some_and(|p| !p.references.is_empty())).collect();
    if with_references.is_empty() {
        anyhow::bail!(crate::exit::UsageError(format!(
            "no table of {} (of those selected) has references to check: --references checks the `references` of a \
             promotion's mappings (a DynamoDB source)",
            profile.env
        )));
    }
    let target = dynamo::connect(&profile.target).await;
    let policy = RetryPolicy::new(profile.sync.max_attempts);
    let mut units = 0.0;
    let mut ids: HashMap<&str, HashSet<String>> = HashMap::new();
    for reference in with_references.iter().flat_map(|t| t.promote.iter().flat_map(|p| p.references.iter())) {
        if ids.contains_key(reference.table.as_str()) {
            continue;
        }
        let referenced = profile.tables.iter().find(|t| t.name == reference.table).expect("checked by the profile");
        let attribute = referenced.promote.as_ref().and_then(|p| p.id.clone()).expect("checked by the profile");
        let mut held = HashSet::new();
        if exists(&*target, &referenced.table_name).await? {
            printer.note(format!("reading the IDs of {}", referenced.table_name));
            let attributes = std::slice::from_ref(&attribute);
            units += each_page(&*target, &referenced.table_name, &policy, (attributes, None), |items| {
                held.extend(items.iter().filter_map(|i| i.get(&attribute)).filter_map(remap::id_text));
                Ok(())
            })
            .await?;
        } else {
            printer.warn(format!(
                "{} does not exist: every reference to it points at nothing (promote it: ddbsync sync {} --table {})",
                referenced.table_name, profile.env, referenced.name
            ));
        }
        ids.insert(&reference.table, held);
    }
    let mut report = Vec::new();
    for mapping in with_references {
        let promote = mapping.promote.as_ref().expect("filtered");
        let keys: Vec<&str> = mapping.entities[0].keys().map(|k| k.attribute.as_str()).collect();
        let mut t = TableReferences {
            table: mapping.table_name.clone(),
            items: 0,
            checked: 0,
            dangling: 0,
            listed: Vec::new(),
        };
        if !exists(&*target, &mapping.table_name).await? {
            printer.note(format!("{} does not exist: no reference to check in it", mapping.table_name));
            report.push(t);
            continue;
        }
        printer.note(format!("reading {}", mapping.table_name));
        units += each_page(&*target, &mapping.table_name, &policy, (&[], None), |items| {
            for item in &items {
                t.items += 1;
                for reference in &promote.references {
                    for id in remap::referenced_ids(item, reference) {
                        t.checked += 1;
                        let known =
                            remap::id_text(&id).is_some_and(|text| ids[reference.table.as_str()].contains(&text));
                        if !known {
                            t.dangling += 1;
                            if t.listed.len() < LISTED {
                                t.listed.push(Dangling {
                                    key: item::describe_key(item, &keys),
                                    path: reference.path.clone(),
                                    references: reference.table.clone(),
                                    id: crate::pure::ddb_json::value_to_json(&id),
                                    shown: remap::show_id(&id),
                                });
                            }
                        }
                    }
                }
            }
            Ok(())
        })
        .await?;
        report.push(t);
    }
    Ok(ReferencesReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        references: report,
        read_units: units,
        cost_usd: profile.prices.cost(0.0, units),
    })
}

/// Whether the table exists.
async fn exists(target: &dyn Target, table: &str) -> Result<bool> {
    Ok(target.describe(table).await.with_context(|| format!("describing {table}"))?.is_some())
}
