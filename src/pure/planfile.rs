//! A plan file: the writes one diff found, saved for review (`ddbsync plan`) and applied exactly
//! (`ddbsync apply`). Pure: the engine fills it from a dry run's recorded writes and reads it back.
//!
//! A plan is data, never code: per table the items to put (DynamoDB JSON) and the keys to delete,
//! each with what the target held when the diff was made ([`Against`]), so that the apply writes a
//! change only where the target still holds that. It carries the environment, a fingerprint of the
//! profile and mappings it was made with ([`fingerprint`]), the parameters, the estimate, a format
//! version and a checksum of its own content ([`seal`], [`open`]). The checksum finds a damaged or
//! edited file; it is not a signature (anyone who can edit the file can recompute it), so every item
//! to put must also still match its own content hash ([`content_matches`]), and a plan is reviewed
//! where it is kept (version control, a change request).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
use md5::{Digest as _, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::profile::{Profile, TableMapping};
use crate::pure::hash::{self, Excluded};
use crate::pure::item::{self, AttributeValue, Item, HASH_ATTR};

/// The format this version writes and reads.
pub const FORMAT: u32 = 1;

/// What a plan file says it is, so that another JSON file is not taken for one.
pub const KIND: &str = "ddbsync-plan";

/// How old a plan `apply` takes by default: a day, long enough for a review, short enough that the
/// target has rarely moved far from it.
pub const DEFAULT_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// A whole plan, as saved.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanFile {
    pub kind: String,
    pub format: u32,
    pub environment: String,
    /// [`fingerprint`] of the profile and the mappings of the plan's tables.
    pub fingerprint: String,
    /// When the diff was made (RFC 3339, UTC).
    pub created_at: String,
    /// The parameter values the queries were run with.
    pub params: BTreeMap<String, String>,
    pub tables: Vec<PlanTable>,
    /// Read units the plan's diff consumed (already spent).
    pub read_units: f64,
    /// Write units the apply is estimated to consume.
    pub write_units: f64,
    /// Read units the apply is estimated to consume: it reads each item it replaces or deletes
    /// before writing, as the plan read them.
    pub apply_read_units: f64,
    /// USD the apply is estimated to cost: its writes and those reads.
    pub cost_usd: f64,
    /// `md5:<hex>` of the plan without this field ([`seal`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
}

/// One table's changes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanTable {
    /// The mapping's name (without the environment's prefix).
    pub name: String,
    /// The DynamoDB table.
    pub table: String,
    /// The key attribute names, partition key first.
    pub key: Vec<String>,
    pub puts: Vec<PlannedPut>,
    pub deletes: Vec<PlannedDelete>,
    /// Source rows whose item is already stored as it is.
    pub unchanged: u64,
    /// Rows that cannot become items (not in the plan); the count, for the summary.
    pub rejected: u64,
    pub write_units: f64,
    pub read_units: f64,
}

/// An item to write, and what its key held when the plan was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedPut {
    /// The whole item, in DynamoDB JSON, its content hash in `_ddbsync_hash`.
    pub item: Value,
    pub against: Against,
}

/// A key to delete, and the stored hash of the item it named when the plan was made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlannedDelete {
    /// The key attributes, in DynamoDB JSON.
    pub key: Value,
    pub against: Against,
}

/// What the target held at a key when the plan was made: what the apply requires it still holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Against {
    /// No item (a create).
    Absent,
    /// An item: its `_ddbsync_hash` (none for an item ddbsync did not write) and the hash of its
    /// whole content as stored ([`stored_content`]), so that an item edited by hand without
    /// touching its `_ddbsync_hash` is not taken for the one the plan saw.
    Item { hash: Option<String>, content: String },
}

/// The hash of everything a stored item holds but ddbsync's own attributes, timestamps included:
/// what a hand edit changes.
pub fn stored_content(item: &Item) -> String {
    hash::to_hex(&hash::content_hash(item, &Excluded::new::<[&str; 0], &str>([])))
}

impl Against {
    /// What a stored item says, `None` for no item.
    pub fn of(stored: Option<&Item>) -> Against {
        match stored {
            None => Against::Absent,
            Some(item) => Against::Item {
                hash: item.get(HASH_ATTR).and_then(|h| h.as_s().ok()).cloned(),
                content: stored_content(item),
            },
        }
    }

    /// Whether a stored item (`None`: no item) is what the plan was made against.
    pub fn holds(&self, stored: Option<&Item>) -> bool {
        Against::of(stored) == *self
    }
}

/// The write units a plan's changes cost at the least, from its items alone: each put's own size
/// (it may replace a larger item), one unit per delete. A floor the file's figures cannot go under.
pub fn least_write_units(plan: &PlanFile) -> f64 {
    let puts = plan.tables.iter().flat_map(|t| t.puts.iter());
    let put_units: u64 = puts
        .filter_map(|p| crate::pure::ddb_json::item_from_json(&p.item).ok())
        .map(|item| crate::pure::item::write_units(crate::pure::item::item_size(&item)))
        .sum();
    let deletes: usize = plan.tables.iter().map(|t| t.deletes.len()).sum();
    (put_units + deletes as u64) as f64
}

impl PlanFile {
    pub fn changes(&self) -> usize {
        self.tables.iter().map(|t| t.puts.len() + t.deletes.len()).sum()
    }

    /// The estimated cost of planning and applying it: the plan's reads, then the apply's writes
    /// and reads.
    pub fn total_cost(&self, prices: &crate::pure::cost::Prices) -> f64 {
        prices.cost(self.write_units, self.read_units + self.apply_read_units)
    }
}

/// The fingerprint of what a plan depends on in the profile: the environment, the source's
/// identity (its kind, host, port, database, user, service and the name of its URL variable, never
/// a secret; for DynamoDB, its tables, region, endpoint and the ID namespace of a promotion), the
/// target (region, endpoint, metadata table) and the mappings of `mappings` (their tables, queries,
/// keys, parameters, defaults, exclusions, indexes, scope, deletes, diff and promotion). Paths
/// of files are left out, so that a plan made on one machine is applied on another.
pub fn fingerprint(profile: &Profile, mappings: &[&TableMapping]) -> String {
    let source = &profile.source;
    let mut text = String::new();
    let kind = match &source.kind {
        crate::profile::SourceKind::Postgres => "postgres".to_string(),
        crate::profile::SourceKind::Sqlite { path } => {
            format!("sqlite {}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())
        }
        crate::profile::SourceKind::DynamoDb(d) => {
            format!("dynamodb {} {:?} {:?} {}", d.table_template, d.region, d.endpoint_url, profile.id_namespace)
        }
    };
    let _ = writeln!(text, "env {}", profile.env);
    let _ = writeln!(
        text,
        "source {kind} {:?} {:?} {:?} {:?} {:?} {:?}",
        source.host, source.port, source.dbname, source.user, source.service, source.url_env
    );
    let target = &profile.target;
    let _ = writeln!(text, "target {} {:?} {}", target.region, target.endpoint_url, profile.metadata_table);
    for m in mappings {
        let _ = writeln!(
            text,
            "table {} {} {} {:?} {} {:?} {:?}",
            m.name,
            m.table_name,
            m.delete_missing,
            m.scope,
            m.diff.name(),
            m.indexes,
            m.promote
        );
        for e in &m.entities {
            let _ = writeln!(
                text,
                "entity {} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                e.name, e.query, e.params, e.partition_key, e.sort_key, e.excluded, e.defaults, e.json_columns
            );
        }
    }
    format!("md5:{}", hash::to_hex(&Md5::digest(text.as_bytes()).into()))
}

/// The checksum of a plan's JSON without its `checksum` field: of the value, so that the spacing
/// of the file does not matter and any changed value does.
fn checksum_of(mut value: Value) -> String {
    if let Some(fields) = value.as_object_mut() {
        fields.remove("checksum");
    }
    let json = serde_json::to_vec(&value).expect("JSON serializes");
    format!("md5:{}", hash::to_hex(&Md5::digest(&json).into()))
}

/// The plan as its file holds it: JSON with its checksum.
pub fn seal(plan: &PlanFile) -> String {
    let bare = PlanFile { checksum: None, ..plan.clone() };
    let value = serde_json::to_value(&bare).expect("a plan serializes");
    let sealed = PlanFile { checksum: Some(checksum_of(value)), ..bare };
    let mut text = serde_json::to_string_pretty(&sealed).expect("a plan serializes");
    text.push('\n');
    text
}

/// Reads a plan file's text, refusing one that is not a plan of this format, has no checksum or
/// does not match it, or holds an item that does not match its own content hash. The error is
/// the cause; the caller names the file and the fix.
pub fn open(text: &str, excluded: impl Fn(&str) -> Vec<Excluded>) -> Result<PlanFile, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("it is not JSON ({e})"))?;
    if value.get("kind").and_then(Value::as_str) != Some(KIND) {
        return Err(format!("it is not a ddbsync plan (no \"kind\": \"{KIND}\")"));
    }
    let format = value.get("format").and_then(Value::as_u64);
    if format != Some(u64::from(FORMAT)) {
        return Err(format!(
            "it is a plan of format {}, and this ddbsync reads format {FORMAT}",
            format.map_or("(none)".to_string(), |f| f.to_string())
        ));
    }
    let Some(stated) = value.get("checksum").and_then(Value::as_str).map(str::to_string) else {
        return Err("it has no checksum".into());
    };
    if checksum_of(value.clone()) != stated {
        return Err("its content does not match its checksum: it was edited or damaged".into());
    }
    let plan: PlanFile = serde_json::from_value(value).map_err(|e| format!("it does not hold a plan ({e})"))?;
    for table in &plan.tables {
        let exclusions = excluded(&table.name);
        for put in &table.puts {
            let item = crate::pure::ddb_json::item_from_json(&put.item)
                .map_err(|e| format!("table {}: an item is not DynamoDB JSON ({e})", table.table))?;
            if !content_matches(&item, &exclusions) {
                let key: Vec<&str> = table.key.iter().map(String::as_str).collect();
                return Err(format!(
                    "table {}: the item {} does not match its own content hash: it was edited after the plan was \
                     made",
                    table.table,
                    item::describe_key(&item, &key)
                ));
            }
        }
    }
    Ok(plan)
}

/// Whether an item's `_ddbsync_hash` is its content's hash under one of its table's entities'
/// exclusions (an edited value changes the content, not the stored hash).
pub fn content_matches(item: &Item, exclusions: &[Excluded]) -> bool {
    let Some(stored) = item.get(HASH_ATTR).and_then(|h| h.as_s().ok()) else { return false };
    exclusions.iter().any(|excluded| hash::to_hex(&hash::content_hash(item, excluded)) == *stored)
}

/// Why a plan is not applied to this environment now, if it is not: another environment, another
/// fingerprint, or older than `max_age` (`age`: since its creation).
pub fn refusal(
    plan: &PlanFile,
    env: &str,
    fingerprint: &str,
    age: Option<chrono::TimeDelta>,
    max_age: std::time::Duration,
) -> Option<String> {
    if plan.environment != env {
        return Some(format!("it was made for environment {}, not {env}", plan.environment));
    }
    if plan.fingerprint != fingerprint {
        return Some(
            "it was made with another profile or other mappings (its fingerprint differs from theirs now)".into(),
        );
    }
    match age {
        None => Some(format!("its creation time \"{}\" is not a time", plan.created_at)),
        Some(age) if age.num_seconds() < -300 => Some(format!("it was made in the future ({})", plan.created_at)),
        Some(age) if age.to_std().unwrap_or_default() > max_age => Some(format!(
            "it is {} old, older than --max-age {}",
            humantime::format_duration(std::time::Duration::from_secs(age.num_seconds().max(0) as u64)),
            humantime::format_duration(max_age)
        )),
        Some(_) => None,
    }
}

/// One attribute that differs between the stored item and the planned one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributeChange {
    /// `title`, `tags[2]`, `meta.author`.
    pub path: String,
    /// `None`: the attribute is new (or, in `new`, removed).
    pub old: Option<String>,
    pub new: Option<String>,
}

/// The attributes that differ between `old` and `new`, in path order; ddbsync's own attributes are
/// left out. Maps and lists are compared element by element.
pub fn attribute_changes(old: &Item, new: &Item) -> Vec<AttributeChange> {
    let mut out = Vec::new();
    let names: std::collections::BTreeSet<&String> =
        old.keys().chain(new.keys()).filter(|n| !item::is_reserved(n)).collect();
    for name in names {
        walk(name.clone(), old.get(name), new.get(name), &mut out);
    }
    out
}

fn walk(path: String, old: Option<&AttributeValue>, new: Option<&AttributeValue>, out: &mut Vec<AttributeChange>) {
    match (old, new) {
        (Some(a), Some(b)) if a == b => {}
        (Some(AttributeValue::M(a)), Some(AttributeValue::M(b))) => {
            let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for name in names {
                walk(format!("{path}.{name}"), a.get(name), b.get(name), out);
            }
        }
        (Some(AttributeValue::L(a)), Some(AttributeValue::L(b))) => {
            for i in 0..a.len().max(b.len()) {
                walk(format!("{path}[{i}]"), a.get(i), b.get(i), out);
            }
        }
        (old, new) => out.push(AttributeChange { path, old: old.map(show), new: new.map(show) }),
    }
}

/// A value as the change view shows it: scalars as a report spells them, anything else as
/// DynamoDB JSON, shortened.
fn show(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(_)
        | AttributeValue::N(_)
        | AttributeValue::B(_)
        | AttributeValue::Bool(_)
        | AttributeValue::Null(_) => item::describe_value(value),
        other => {
            let json = crate::pure::ddb_json::item_to_json(&Item::from([(String::new(), other.clone())]));
            let text = json.get("").map(Value::to_string).unwrap_or_default();
            item::shorten(&text, 80).into_owned()
        }
    }
}

/// One change shown at the attribute level: its table, key, kind and attributes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShownChange {
    pub table: String,
    pub key: String,
    /// `create`, `update` or `delete`.
    pub change: &'static str,
    pub attributes: Vec<AttributeChange>,
}

/// The summary `plan` prints: per table what the apply would create, update and delete, its units
/// and cost.
pub fn render_summary(plan: &PlanFile, file: &str, prices: &crate::pure::cost::Prices) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(["table", "create", "update", "delete", "unchanged", "rejected", "write units", "write USD"]);
    let mut total = [0u64; 5];
    for t in &plan.tables {
        let creates = t.puts.iter().filter(|p| p.against == Against::Absent).count() as u64;
        let row = [creates, t.puts.len() as u64 - creates, t.deletes.len() as u64, t.unchanged, t.rejected];
        for (sum, n) in total.iter_mut().zip(row) {
            *sum += n;
        }
        let mut cells = vec![Cell::new(&t.table)];
        cells.extend(row.iter().map(|n| Cell::new(n).set_alignment(CellAlignment::Right)));
        cells.push(Cell::new(format!("{:.1}", t.write_units)).set_alignment(CellAlignment::Right));
        cells.push(Cell::new(format!("{:.6}", prices.cost(t.write_units, 0.0))).set_alignment(CellAlignment::Right));
        table.add_row(cells);
    }
    let mut cells = vec![Cell::new("total")];
    cells.extend(total.iter().map(|n| Cell::new(n).set_alignment(CellAlignment::Right)));
    cells.push(Cell::new(format!("{:.1}", plan.write_units)).set_alignment(CellAlignment::Right));
    cells.push(Cell::new(format!("{:.6}", prices.cost(plan.write_units, 0.0))).set_alignment(CellAlignment::Right));
    table.add_row(cells);
    let mut out =
        format!("plan for {} ({} changes), made {}\n{table}\n", plan.environment, plan.changes(), plan.created_at);
    let _ = writeln!(
        out,
        "the plan read {:.1} units (USD {:.6}); applying it costs about USD {:.6}: the writes, estimated from the \
         items' sizes, and {:.1} read units for the items it replaces or deletes",
        plan.read_units,
        prices.cost(0.0, plan.read_units),
        plan.cost_usd,
        plan.apply_read_units
    );
    if !plan.params.is_empty() {
        let params: Vec<String> = plan.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "parameters: {}", params.join(", "));
    }
    if plan.changes() == 0 {
        out.push_str("nothing to apply: the target holds what the source gives\n");
    } else {
        let _ = writeln!(out, "saved to {file}; review it, then: ddbsync apply {file}");
    }
    out
}

/// The attribute-level view of the changes `--show` asked for.
pub fn render_changes(changes: &[ShownChange], reads: f64) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(out, "{} {}: {}", c.change, c.table, c.key);
        for a in &c.attributes {
            let old = a.old.as_deref().unwrap_or("(none)");
            let new = a.new.as_deref().unwrap_or("(none)");
            let _ = writeln!(out, "  {}: {old} -> {new}", a.path);
        }
    }
    if !changes.is_empty() {
        let _ = writeln!(out, "reading the {} stored items took {reads:.1} read units", changes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn hashed(mut item: Item) -> Item {
        let h = hash::to_hex(&hash::content_hash(&item, &Excluded::default()));
        item.insert(HASH_ATTR.into(), s(&h));
        item
    }

    fn plan() -> PlanFile {
        let item = hashed(Item::from([("id".to_string(), s("1")), ("title".to_string(), s("Intro"))]));
        PlanFile {
            kind: KIND.into(),
            format: FORMAT,
            environment: "dev".into(),
            fingerprint: "md5:0".into(),
            created_at: "2026-11-28T03:00:00.000Z".into(),
            params: BTreeMap::from([("from".to_string(), "2026-01-01".to_string())]),
            tables: vec![PlanTable {
                name: "lessons".into(),
                table: "dev-lessons".into(),
                key: vec!["id".into()],
                puts: vec![
                    PlannedPut { item: crate::pure::ddb_json::item_to_json(&item), against: Against::Absent },
                    PlannedPut {
                        item: crate::pure::ddb_json::item_to_json(&item),
                        against: Against::Item { hash: Some("00".repeat(16)), content: "11".repeat(16) },
                    },
                ],
                deletes: vec![PlannedDelete {
                    key: serde_json::json!({"id": {"S": "9"}}),
                    against: Against::Item { hash: None, content: "22".repeat(16) },
                }],
                unchanged: 40,
                rejected: 1,
                write_units: 3.0,
                read_units: 12.5,
            }],
            read_units: 12.5,
            write_units: 3.0,
            apply_read_units: 2.0,
            cost_usd: 0.0000042,
            checksum: None,
        }
    }

    fn exclusions(_: &str) -> Vec<Excluded> {
        vec![Excluded::default()]
    }

    #[test]
    fn a_sealed_plan_opens_as_it_was() {
        let plan = plan();
        let opened = open(&seal(&plan), exclusions).unwrap();
        assert!(opened.checksum.as_deref().is_some_and(|c| c.starts_with("md5:")));
        assert_eq!(PlanFile { checksum: None, ..opened }, plan);
    }

    #[test]
    fn a_plan_with_one_byte_changed_is_refused() {
        let text = seal(&plan());
        let edited = text.replacen("Intro", "Intra", 1);
        assert_ne!(edited, text);
        assert!(open(&edited, exclusions).unwrap_err().contains("does not match its checksum"));
        let truncated = &text[..text.len() - 3];
        assert!(open(truncated, exclusions).unwrap_err().contains("not JSON"));
    }

    #[test]
    fn an_item_edited_with_the_checksum_recomputed_is_refused_by_its_content_hash() {
        let mut plan = plan();
        plan.tables[0].puts[0].item["title"] = serde_json::json!({"S": "Edited"});
        let err = open(&seal(&plan), exclusions).unwrap_err();
        assert!(err.contains("does not match its own content hash"), "{err}");
    }

    #[test]
    fn another_file_or_format_is_refused() {
        assert!(open("{\"a\": 1}", exclusions).unwrap_err().contains("not a ddbsync plan"));
        let text = seal(&plan()).replace("\"format\": 1", "\"format\": 9");
        assert!(open(&text, exclusions).unwrap_err().contains("format 9"));
        let mut value: Value = serde_json::from_str(&seal(&plan())).unwrap();
        value.as_object_mut().unwrap().remove("checksum");
        assert!(open(&value.to_string(), exclusions).unwrap_err().contains("no checksum"));
    }

    #[test]
    fn a_plan_for_another_environment_fingerprint_or_too_old_is_refused() {
        let plan = plan();
        let day = DEFAULT_MAX_AGE;
        let fresh = Some(chrono::TimeDelta::seconds(60));
        assert_eq!(refusal(&plan, "dev", "md5:0", fresh, day), None);
        assert!(refusal(&plan, "prod", "md5:0", fresh, day).unwrap().contains("environment dev, not prod"));
        assert!(refusal(&plan, "dev", "md5:1", fresh, day).unwrap().contains("fingerprint"));
        let old = Some(chrono::TimeDelta::hours(25));
        assert!(refusal(&plan, "dev", "md5:0", old, day).unwrap().contains("older than --max-age 1day"));
        assert!(refusal(&plan, "dev", "md5:0", None, day).unwrap().contains("not a time"));
    }

    #[test]
    fn against_is_read_from_the_stored_item_and_a_hand_edit_changes_it() {
        let item = hashed(Item::from([("id".to_string(), s("1")), ("title".to_string(), s("Intro"))]));
        let h = item[HASH_ATTR].as_s().unwrap().clone();
        assert_eq!(Against::of(None), Against::Absent);
        let seen = Against::of(Some(&item));
        assert!(matches!(&seen, Against::Item { hash: Some(x), .. } if *x == h));
        assert!(seen.holds(Some(&item)));
        assert!(!Against::Absent.holds(Some(&item)));
        assert!(!seen.holds(None));
        // Edited by hand: the stored hash is the same, the content is not.
        let mut edited = item.clone();
        edited.insert("title".into(), s("Edited"));
        assert!(!seen.holds(Some(&edited)));
        // A timestamp counts too: the plan's put would overwrite it.
        let mut touched = item.clone();
        touched.insert("updated_at".into(), s("2026-11-28"));
        assert!(!seen.holds(Some(&touched)));
        let unhashed = Against::of(Some(&Item::from([("id".to_string(), s("1"))])));
        assert!(matches!(unhashed, Against::Item { hash: None, .. }));
    }

    #[test]
    fn attribute_changes_walk_maps_and_lists() {
        let old = Item::from([
            ("id".to_string(), s("1")),
            ("title".to_string(), s("Intro")),
            ("gone".to_string(), AttributeValue::N("3".into())),
            ("meta".to_string(), AttributeValue::M(Item::from([("author".to_string(), s("Ann"))]))),
            ("tags".to_string(), AttributeValue::L(vec![s("a"), s("b")])),
            (HASH_ATTR.to_string(), s("x")),
        ]);
        let new = Item::from([
            ("id".to_string(), s("1")),
            ("title".to_string(), s("Introduction")),
            ("meta".to_string(), AttributeValue::M(Item::from([("author".to_string(), s("Bob"))]))),
            ("tags".to_string(), AttributeValue::L(vec![s("a"), s("c"), s("d")])),
            ("added".to_string(), AttributeValue::Ss(vec!["x".into()])),
            (HASH_ATTR.to_string(), s("y")),
        ]);
        let changes = attribute_changes(&old, &new);
        let view = render_changes(
            &[ShownChange {
                table: "dev-lessons".into(),
                key: "id=\"1\"".into(),
                change: "update",
                attributes: changes,
            }],
            1.0,
        );
        insta::assert_snapshot!(view);
    }

    #[test]
    fn the_summary_names_each_table_and_the_cost() {
        let prices = crate::pure::cost::Prices::builtin("us-east-1").unwrap();
        insta::assert_snapshot!(render_summary(&plan(), "dev.plan.json", &prices));
    }
}
