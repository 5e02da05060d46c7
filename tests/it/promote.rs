//! Promotion from a DynamoDB source (`[source] kind = "dynamodb"`): a generated Amplify-like dev
//! environment ([`crate::amplify_data`]) promoted to prod tables in the same server.
//!
//! The oracle never asks ddbsync: prod is read back through the test's client, and the new IDs
//! are computed here, with HMAC-SHA-256 over the message `src/pure/remap.rs` documents (its
//! golden test pins it), so every prod item is compared with the dev item it must come from.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::amplify_data::{self, references, Dev, TABLES};
use crate::harness::{finish, servers, text, Ctx, Item, Run};
use crate::proxy::Proxy;

/// The new ID of a UUID `id` of source table `table`, computed apart from ddbsync:
/// HMAC-SHA-256 keyed by the namespace over length-prefixed "ddbsync-id-1", the table and
/// "S:<id>", then block 0; the first 16 bytes with version 8 and the RFC variant.
fn oracle_uuid(namespace: &str, table: &str, id: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(namespace.as_bytes()).unwrap();
    for part in ["ddbsync-id-1", table, &format!("S:{id}")] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    mac.update(&0u32.to_be_bytes());
    let mut b = mac.finalize().into_bytes()[..16].to_vec();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

#[test]
fn the_oracle_gives_remap_rs_golden_uuid() {
    // The golden value of src/pure/remap.rs: the oracle and ddbsync agree on the message.
    let id = oracle_uuid("prod", "Contacts-fvn7t5hbobaxjklhrqzdl4ac34-dev", "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b");
    assert_eq!(id, "dd729497-0b43-8bf5-98be-8d258c304b85");
}

/// One promotion world: the dev tables (`<prefix><Table>-dev`) in this test's server, and the
/// profiles that promote them.
struct World {
    ctx: Ctx,
    dev: Dev,
}

const SEED: u64 = 17;
const COUNT: usize = 150;

impl World {
    async fn new(count: usize) -> World {
        let ctx = Ctx::new(1).await;
        let dev = amplify_data::generate(SEED, count);
        dev.write(&ctx.dynamo, &ctx.prefix, "-dev").await;
        let world = World { ctx, dev };
        world.profile(world.ctx.envs.path(), "prod", &Settings::default());
        world
    }

    fn dev_table(&self, table: &str) -> String {
        format!("{}{table}-dev", self.ctx.prefix)
    }

    /// Writes `<dir>/<env>.toml` and its mappings file.
    fn profile(&self, dir: &Path, env: &str, s: &Settings) {
        std::fs::create_dir_all(dir.join("mappings")).unwrap();
        let mappings = dir.join(format!("mappings/{env}.toml"));
        let text = s.mappings.clone().unwrap_or_else(|| amplify_data::mappings(!s.keep_missing));
        std::fs::write(&mappings, text).unwrap();
        let target_prefix = s.target_prefix.clone().unwrap_or_else(|| self.ctx.prefix.clone());
        let source_url = s.source_url.clone().unwrap_or_else(|| servers().dynamo_url.clone());
        let target_url = s.target_url.clone().unwrap_or_else(|| self.ctx.proxy.url.clone());
        let namespace = s.namespace.map(|n| format!("id_namespace = \"{n}\"")).unwrap_or_default();
        let profile = format!(
            r#"description = "promotion test"
mappings = "{mappings}"
table_prefix = "{target_prefix}"
table_suffix = "-prod"

[source]
kind = "dynamodb"
table_template = "{prefix}{{table}}-dev"
endpoint_url = "{source_url}"
{source_extra}

[target]
region = "us-east-1"
endpoint_url = "{target_url}"
{namespace}

[sync]
scan_segments = 3
{sync}
"#,
            mappings = mappings.display(),
            prefix = s.source_prefix.as_deref().unwrap_or(&self.ctx.prefix),
            source_extra = s.source_extra,
            sync = s.sync,
        );
        std::fs::write(dir.join(format!("{env}.toml")), profile).unwrap();
    }

    /// `ddbsync --json sync prod <args>` in the world's profiles directory: the run and its report.
    fn sync(&self, args: &[&str]) -> (Run, serde_json::Value) {
        self.sync_in(self.ctx.envs.path(), "prod", args)
    }

    fn sync_in(&self, dir: &Path, env: &str, args: &[&str]) -> (Run, serde_json::Value) {
        let mut all = vec!["--json", "sync", env];
        all.extend_from_slice(args);
        let started = Instant::now();
        let output = self.ctx.command_in(dir, &all).stdin(std::process::Stdio::null()).output().unwrap();
        let run = Run { output, elapsed: started.elapsed() };
        let report = serde_json::from_str(&run.stdout()).unwrap_or(serde_json::Value::Null);
        (run, report)
    }

    /// Every item of prod table `table` (with target prefix `prefix`), by id.
    async fn prod(&self, prefix: &str, table: &str) -> BTreeMap<String, Item> {
        scan_all(&self.ctx, &format!("{prefix}{table}-prod")).await.into_iter().map(|i| (text(&i["id"]), i)).collect()
    }

    /// Every dev item of `table`, read back from the server.
    async fn dev_items(&self, table: &str) -> Vec<Item> {
        scan_all(&self.ctx, &self.dev_table(table)).await
    }

    /// The new ID of `table`'s source ID `id` in `namespace`.
    fn new_id(&self, namespace: &str, table: &str, id: &str) -> String {
        oracle_uuid(namespace, &self.dev_table(table), id)
    }

    /// Dev item → the prod item it must become: its id and every reference through the oracle.
    fn expected(&self, namespace: &str, table: &str, item: &Item) -> Item {
        let mut out = item.clone();
        let id = text(&item["id"]);
        out.insert("id".into(), AttributeValue::S(self.new_id(namespace, table, &id)));
        for (path, to) in references(table) {
            let map = |v: &AttributeValue| AttributeValue::S(self.new_id(namespace, to, &text(v)));
            match *path {
                "teamContactIds[]" => {
                    if let Some(AttributeValue::L(list)) = out.get("teamContactIds") {
                        let list = list.iter().map(map).collect();
                        out.insert("teamContactIds".into(), AttributeValue::L(list));
                    }
                }
                "details.contactId" => {
                    if let Some(AttributeValue::M(details)) = out.get_mut("details") {
                        let new = map(&details["contactId"]);
                        details.insert("contactId".into(), new);
                    }
                }
                top => {
                    if let Some(v) = item.get(top) {
                        out.insert(top.into(), map(v));
                    }
                }
            }
        }
        out
    }
}

#[derive(Default)]
struct Settings {
    mappings: Option<String>,
    keep_missing: bool,
    target_prefix: Option<String>,
    source_prefix: Option<String>,
    source_url: Option<String>,
    target_url: Option<String>,
    namespace: Option<&'static str>,
    source_extra: &'static str,
    sync: &'static str,
}

async fn scan_all(ctx: &Ctx, table: &str) -> Vec<Item> {
    let (mut items, mut start) = (Vec::new(), None);
    loop {
        let out = ctx
            .dynamo
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return items;
        }
    }
}

/// Every id the references at `path` of `item` hold.
fn referenced_ids(item: &Item, path: &str) -> Vec<String> {
    match path {
        "teamContactIds[]" => match item.get("teamContactIds") {
            Some(AttributeValue::L(list)) => list.iter().map(text).collect(),
            _ => Vec::new(),
        },
        "details.contactId" => match item.get("details") {
            Some(AttributeValue::M(d)) => d.get("contactId").map(text).into_iter().collect(),
            _ => Vec::new(),
        },
        top => item.get(top).map(text).into_iter().collect(),
    }
}

/// The dev items that must be rejected, by table: those with a reference to an id that the
/// referenced table does not hold, or holds only in an item that is itself rejected (tables are
/// in dependency order, so one pass settles it).
fn expected_rejects(dev: &BTreeMap<&str, Vec<Item>>) -> BTreeMap<&'static str, BTreeSet<String>> {
    let mut kept: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut rejected = BTreeMap::new();
    for table in TABLES {
        let (mut good, mut bad) = (BTreeSet::new(), BTreeSet::new());
        for item in &dev[table] {
            let ok = references(table)
                .iter()
                .all(|(path, to)| referenced_ids(item, path).iter().all(|id| kept[to].contains(id)));
            let id = text(&item["id"]);
            if ok { good.insert(id) } else { bad.insert(id) };
        }
        kept.insert(table, good);
        rejected.insert(table, bad);
    }
    rejected
}

/// Without ddbsync's own attributes.
fn content(item: &Item) -> Item {
    item.iter().filter(|(k, _)| !k.starts_with("_ddbsync_")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The report's (key, reason) rejects of a table.
fn rejects(report: &serde_json::Value, table: &str) -> Vec<(String, String)> {
    let tables = report["tables"].as_array().cloned().unwrap_or_default();
    let Some(t) = tables.iter().find(|t| t["table"] == table) else { return Vec::new() };
    t["rejected"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| (r["key"].as_str().unwrap_or("").to_string(), r["reason"].as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn count(report: &serde_json::Value, table: &str, field: &str) -> u64 {
    let tables = report["tables"].as_array().expect("tables");
    let t = tables.iter().find(|t| t["table"] == table).unwrap_or_else(|| panic!("no {table} in {report}"));
    t[field].as_u64().unwrap_or_else(|| panic!("no {field} for {table}: {t}"))
}

/// The keys each BatchWriteItem put or deleted, as the server was asked: (table, id).
fn written(proxy: &Proxy) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    for request in proxy.requests("BatchWriteItem") {
        for (table, writes) in request["RequestItems"].as_object().unwrap() {
            for w in writes.as_array().unwrap() {
                let item = w.get("PutRequest").map(|p| &p["Item"]).or_else(|| w.get("DeleteRequest").map(|d| &d["Key"]));
                let id = item.and_then(|i| i["id"]["S"].as_str()).unwrap_or("?");
                keys.push((table.clone(), id.to_string()));
            }
        }
    }
    keys
}

/// Checks prod against dev through the oracle: every kept dev item is in prod with its content,
/// nothing else is, and every reference in prod resolves to an item of the referenced prod table.
async fn check_promoted(w: &World, prefix: &str, namespace: &str) {
    let dev: BTreeMap<&str, Vec<Item>> = {
        let mut m = BTreeMap::new();
        for table in TABLES {
            m.insert(table, w.dev_items(table).await);
        }
        m
    };
    let rejected = expected_rejects(&dev);
    let mut prod = HashMap::new();
    for table in TABLES {
        prod.insert(table, w.prod(prefix, table).await);
    }
    for table in TABLES {
        let mut expected = BTreeMap::new();
        for item in &dev[table] {
            if !rejected[table].contains(&text(&item["id"])) {
                let e = w.expected(namespace, table, item);
                expected.insert(text(&e["id"]), e);
            }
        }
        let actual: BTreeMap<String, Item> = prod[table].iter().map(|(k, v)| (k.clone(), content(v))).collect();
        assert_eq!(actual.len(), expected.len(), "{table}: prod holds one item per kept dev item");
        for (id, e) in &expected {
            let a = actual.get(id).unwrap_or_else(|| panic!("{table}: no prod item {id}"));
            assert_eq!(a, e, "{table} {id}: content equal apart from the remapped attributes");
        }
        for (id, item) in &prod[table] {
            for (path, to) in references(table) {
                for r in referenced_ids(item, path) {
                    assert!(prod[to].contains_key(&r), "{table} {id}: {path} = {r} resolves to nothing in {to}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_keeps_every_relationship_and_rejects_dangling_references() {
    let w = World::new(COUNT).await;
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "rejects end in exit 3:\n{}\n{report}", run.stderr());
    check_promoted(&w, &w.ctx.prefix, "prod").await;

    // Each reject is listed with its key (the new ID) and the reason naming the missing ID.
    let dev = w.dev.items.clone();
    let expected = expected_rejects(&dev);
    for table in TABLES {
        let listed = rejects(&report, &format!("{}{table}-prod", w.ctx.prefix));
        assert_eq!(listed.len(), expected[table].len(), "{table}: {listed:#?}");
        for id in &expected[table] {
            let new = w.new_id("prod", table, id);
            let (_, reason) = listed.iter().find(|(k, _)| k.contains(&new)).unwrap_or_else(|| panic!("{table} {id}: {listed:#?}"));
            if let Some((_, _, path, missing)) = w.dev.dangling.iter().find(|d| d.0 == table && d.1 == *id) {
                assert!(reason.contains(path) && reason.contains(missing), "{reason}");
                assert!(reason.contains(&id.to_string()), "the source item is named: {reason}");
            }
        }
    }
    // The oracle's cascade is not empty: QuoteItems 20 and 21 point at a quote that is itself
    // rejected (a dangling nested contact), and are rejected for it.
    for at in [11, 20, 21] {
        assert!(expected["QuoteItems"].contains(&text(&w.dev.items["QuoteItems"][at]["id"])), "QuoteItems {at}");
    }
}
