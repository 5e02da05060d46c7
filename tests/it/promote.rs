//! Promotion from a DynamoDB source (`[source] kind = "dynamodb"`): a generated Amplify-like dev
//! environment ([`crate::amplify_data`]) promoted to prod tables in the same server.
//!
//! The oracle never asks ddbsync: prod is read back through the test's client, and the new IDs
//! are computed here, with HMAC-SHA-256 over the message `src/pure/remap.rs` documents (its
//! golden test pins it), so every prod item is compared with the dev item it must come from.
//!
//! [`World`] is the shared setup: a generated dev environment and a profile per test, the
//! target reached through the recording proxy ([`written`] lists the keys each run wrote).
//! Tests of single-record runs, the ID map, reference checks in verify and the backup before the
//! first write belong here too, on the same world and oracle.

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

    /// Deletes the dev item of `table` whose `id` is `id`, as the app would.
    async fn delete_dev(&self, table: &str, id: AttributeValue) {
        let name = self.dev_table(table);
        self.ctx.dynamo.delete_item().table_name(name).key("id", id).send().await.unwrap();
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
            if ok {
                good.insert(id)
            } else {
                bad.insert(id)
            };
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
                let item =
                    w.get("PutRequest").map(|p| &p["Item"]).or_else(|| w.get("DeleteRequest").map(|d| &d["Key"]));
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
            let (_, reason) =
                listed.iter().find(|(k, _)| k.contains(&new)).unwrap_or_else(|| panic!("{table} {id}: {listed:#?}"));
            if let Some((_, _, path, missing)) = w.dev.dangling.iter().find(|d| d.0 == table && d.1 == *id) {
                assert!(reason.contains(path) && reason.contains(missing), "{reason}");
                assert!(reason.contains(&id.to_string()), "the source item is named: {reason}");
            } else {
                assert!(reason.contains("itself rejected"), "a reference to a rejected item: {reason}");
            }
        }
    }
    // The oracle's cascade is not empty: QuoteItems 20 and 21 point at a quote that is itself
    // rejected (a dangling nested contact), and are rejected for it.
    for at in [11, 20, 21] {
        assert!(expected["QuoteItems"].contains(&text(&w.dev.items["QuoteItems"][at]["id"])), "QuoteItems {at}");
    }
}

/// The dev quote at `at`, skipping those the oracle rejects: its id.
fn kept_quote(w: &World) -> usize {
    let rejected = expected_rejects(&w.dev.items);
    (0..).find(|&i| !rejected["Quotes"].contains(&text(&w.dev.items["Quotes"][i]["id"]))).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_the_same_on_every_run_and_machine_and_differ_per_target_environment() {
    let w = World::new(COUNT).await;
    let (run, _) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    // Another machine: a profiles directory of its own, another environment name and target
    // prefix, a fresh process, the same id_namespace.
    let other = tempfile::tempdir().unwrap();
    let again = format!("{}again-", w.ctx.prefix);
    let settings = Settings { target_prefix: Some(again.clone()), namespace: Some("prod"), ..Settings::default() };
    w.profile(other.path(), "production", &settings);
    let (run, _) = w.sync_in(other.path(), "production", &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let mut prod_ids = BTreeSet::new();
    for table in TABLES {
        let first: BTreeSet<String> = w.prod(&w.ctx.prefix, table).await.into_keys().collect();
        let second: BTreeSet<String> = w.prod(&again, table).await.into_keys().collect();
        assert!(!first.is_empty());
        assert_eq!(first, second, "{table}: the same new IDs");
        prod_ids.extend(first);
    }
    check_promoted(&w, &again, "prod").await;

    // Another target environment (its name is its namespace): other IDs, and as consistent.
    let staging = format!("{}stg-", w.ctx.prefix);
    w.profile(other.path(), "staging", &Settings { target_prefix: Some(staging.clone()), ..Settings::default() });
    let (run, _) = w.sync_in(other.path(), "staging", &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    check_promoted(&w, &staging, "staging").await;
    for table in TABLES {
        let ids: BTreeSet<String> = w.prod(&staging, table).await.into_keys().collect();
        assert!(ids.is_disjoint(&prod_ids), "{table}: staging's IDs are not prod's");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_writes_nothing_and_one_changed_quote_rewrites_one_item() {
    let w = World::new(COUNT).await;
    let (run, first) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let quotes = format!("{}Quotes-prod", w.ctx.prefix);
    assert!(count(&first, &quotes, "created") > 100, "{first}");

    w.ctx.proxy.clear();
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "the same rejects: {}", run.stderr());
    assert_eq!(written(&w.ctx.proxy), [], "a second run writes nothing");
    assert_eq!(report["total"]["created"].as_u64(), Some(0), "{report}");

    // Amplify's bookkeeping only (excluded from the hash): nothing to write.
    let at = kept_quote(&w);
    let mut quote = w.dev.items["Quotes"][at].clone();
    quote.insert("updatedAt".into(), AttributeValue::S("2025-01-01T00:00:00.000Z".into()));
    quote.insert("_version".into(), AttributeValue::N("9".into()));
    quote.insert("_lastChangedAt".into(), AttributeValue::N("1735689600000".into()));
    amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Quotes"), std::slice::from_ref(&quote)).await;
    w.ctx.proxy.clear();
    let (run, _) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(written(&w.ctx.proxy), [], "a change to updatedAt and _version alone rewrites nothing");

    // A real change: exactly that quote's prod item.
    quote.insert("total".into(), AttributeValue::N("4242.5".into()));
    amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Quotes"), std::slice::from_ref(&quote)).await;
    w.ctx.proxy.clear();
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let new = w.new_id("prod", "Quotes", &text(&quote["id"]));
    assert_eq!(written(&w.ctx.proxy), [(quotes.clone(), new.clone())], "one prod item rewritten");
    assert_eq!(count(&report, &quotes, "updated"), 1);
    let prod = w.prod(&w.ctx.prefix, "Quotes").await;
    assert_eq!(prod[&new]["total"], AttributeValue::N("4242.5".into()));
    assert_eq!(prod[&new]["_version"], AttributeValue::N("9".into()), "the item is copied whole");
    check_promoted(&w, &w.ctx.prefix, "prod").await;
}

/// A contact that kept items reference (so deleting it rejects them), and those items.
fn referenced_contact(w: &World) -> (String, Vec<(&'static str, String)>) {
    let rejected = expected_rejects(&w.dev.items);
    let mut users: BTreeMap<String, Vec<(&'static str, String)>> = BTreeMap::new();
    for table in TABLES {
        for item in &w.dev.items[table] {
            let id = text(&item["id"]);
            if rejected[table].contains(&id) {
                continue;
            }
            for (path, to) in references(table) {
                if *to == "Contacts" {
                    for c in referenced_ids(item, path) {
                        users.entry(c).or_default().push((table, id.clone()));
                    }
                }
            }
        }
    }
    users.into_iter().find(|(_, u)| u.len() >= 2).expect("a contact referenced twice")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_dev_contact_is_deleted_in_prod_with_delete_missing_and_its_referrers_are_rejected() {
    let w = World::new(COUNT).await;
    assert_eq!(w.sync(&[]).0.code(), 3);
    let (contact, users) = referenced_contact(&w);
    let contacts = format!("{}Contacts-prod", w.ctx.prefix);
    w.delete_dev("Contacts", AttributeValue::S(contact.clone())).await;

    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(count(&report, &contacts, "deleted"), 1, "{report}");
    let gone = w.new_id("prod", "Contacts", &contact);
    assert!(!w.prod(&w.ctx.prefix, "Contacts").await.contains_key(&gone), "the prod contact is deleted");
    // Each dev item that referenced it is now rejected as dangling, by its key and the ID.
    for (table, id) in &users {
        let listed = rejects(&report, &format!("{}{table}-prod", w.ctx.prefix));
        let new = w.new_id("prod", table, id);
        let (_, reason) =
            listed.iter().find(|(k, _)| k.contains(&new)).unwrap_or_else(|| panic!("{table} {id}: {listed:#?}"));
        assert!(reason.contains(&contact), "{reason}");
        // As README says: the last promoted version stays, stale, and still names the deleted
        // contact until the referrer is fixed or deleted in dev.
        assert!(reason.ends_with("kept the stored item, which is now stale"), "{reason}");
        assert!(w.prod(&w.ctx.prefix, table).await.contains_key(&new), "{table} {id}");
    }
    // Everything else stays exactly as the oracle says.
    check_kept(&w, &users).await;
}

/// The items of dev other than `skip` are in prod as the oracle says.
async fn check_kept(w: &World, skip: &[(&'static str, String)]) {
    let dev = {
        let mut m = BTreeMap::new();
        for table in TABLES {
            m.insert(table, w.dev_items(table).await);
        }
        m
    };
    let rejected = expected_rejects(&dev);
    for table in TABLES {
        let prod = w.prod(&w.ctx.prefix, table).await;
        for item in &dev[table] {
            let id = text(&item["id"]);
            if rejected[table].contains(&id) || skip.iter().any(|(t, i)| *t == table && *i == id) {
                continue;
            }
            let e = w.expected("prod", table, item);
            assert_eq!(prod.get(&text(&e["id"])).map(content), Some(e), "{table} {id}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_delete_missing_a_deleted_contact_stays_as_an_orphan_and_a_mass_delete_is_held() {
    let w = World::new(COUNT).await;
    w.profile(w.ctx.envs.path(), "prod", &Settings { keep_missing: true, ..Settings::default() });
    assert_eq!(w.sync(&[]).0.code(), 3);
    let (contact, _) = referenced_contact(&w);
    let contacts = format!("{}Contacts-prod", w.ctx.prefix);
    w.delete_dev("Contacts", AttributeValue::S(contact.clone())).await;
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!((count(&report, &contacts, "deleted"), count(&report, &contacts, "orphans")), (0, 1), "{report}");
    assert!(w.prod(&w.ctx.prefix, "Contacts").await.contains_key(&w.new_id("prod", "Contacts", &contact)));

    // With delete_missing, a third of Properties gone from dev is over the 10 % guard: held.
    w.profile(w.ctx.envs.path(), "prod", &Settings::default());
    let properties = format!("{}Properties-prod", w.ctx.prefix);
    let before = w.prod(&w.ctx.prefix, "Properties").await.len();
    for item in w.dev.items["Properties"].iter().take(COUNT / 3) {
        w.delete_dev("Properties", item["id"].clone()).await;
    }
    w.ctx.proxy.clear();
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(count(&report, &properties, "deleted"), 0, "{report}");
    let table = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == properties.as_str()).unwrap();
    assert!(table["deletes_refused_reason"].as_str().is_some_and(|r| r.contains("allow-mass-delete")), "{table}");
    assert_eq!(w.prod(&w.ctx.prefix, "Properties").await.len(), before, "no prod property deleted");
    assert!(written(&w.ctx.proxy).iter().all(|(t, _)| t != &properties), "nothing written to Properties");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reference_cycle_is_a_profile_error_that_names_it() {
    let w = World::new(20).await;
    let cyclic = amplify_data::mappings(true).replace(
        "[tables.Contacts]\npartition_key = \"id\"\nid = \"id\"\n",
        "[tables.Contacts]\npartition_key = \"id\"\nid = \"id\"\nreferences = { lastQuoteId = \"Quotes\" }\n",
    );
    assert_ne!(cyclic, amplify_data::mappings(true));
    w.profile(w.ctx.envs.path(), "prod", &Settings { mappings: Some(cyclic), ..Settings::default() });
    let (run, _) = w.sync(&[]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains("cycle") && err.contains("Contacts → Quotes") && err.contains("prod.toml"), "{err}");
    assert!(!w.ctx.table_exists("Contacts-prod").await, "nothing was done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_predicts_the_real_runs_counts_and_write_units() {
    let w = World::new(COUNT).await;
    let fields = ["created", "updated", "unchanged", "deleted", "orphans"];
    let figures = |report: &serde_json::Value| -> Vec<(String, Vec<u64>, usize, String)> {
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let table = t["table"].as_str().unwrap().to_string();
                let counts = fields.iter().map(|f| t[*f].as_u64().unwrap_or(u64::MAX)).collect();
                let units = format!("{:.1}", t["write_units"].as_f64().unwrap_or(-1.0));
                (table.clone(), counts, rejects(report, &table).len(), units)
            })
            .collect()
    };
    for round in 0..2 {
        if round == 1 {
            // A change, a new item and a deleted one.
            let at = kept_quote(&w);
            let mut quote = w.dev.items["Quotes"][at].clone();
            quote.insert("total".into(), AttributeValue::N("1.5".into()));
            let mut contact = w.dev.items["Contacts"][0].clone();
            contact.insert("id".into(), AttributeValue::S("0b7e1a3c-2f4d-4e5a-9b6c-7d8e9f0a1b2c".into()));
            amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Quotes"), &[quote]).await;
            amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Contacts"), &[contact]).await;
            let gone = w.dev.items["QuoteItems"][40]["id"].clone();
            w.delete_dev("QuoteItems", gone).await;
        }
        w.ctx.proxy.clear();
        let (dry, predicted) = w.sync(&["--dry-run"]);
        assert_eq!(written(&w.ctx.proxy), [], "a dry run writes nothing");
        let (real, actual) = w.sync(&[]);
        assert_eq!((dry.code(), real.code()), (3, 3), "{}\n{}", dry.stderr(), real.stderr());
        assert_eq!(figures(&predicted), figures(&actual), "round {round}:\n{predicted}\n{actual}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_table_that_does_not_exist_is_named_with_the_template() {
    let w = World::new(20).await;
    let mappings =
        format!("{}\n[tables.Invoices]\npartition_key = \"id\"\nid = \"id\"\n", amplify_data::mappings(true));
    w.profile(w.ctx.envs.path(), "prod", &Settings { mappings: Some(mappings), ..Settings::default() });
    let (run, _) = w.sync(&[]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let err = run.stderr();
    assert!(err.contains(&w.dev_table("Invoices")) && err.contains("table_template"), "{err}");
}

/// A table of odd items: key `pk`, ID attribute `noteId`, references `contactId` and `meta.by`.
const NOTES: &str = "\n[tables.Notes]\npartition_key = \"pk\"\nid = \"noteId\"\nreferences = { contactId = \"Contacts\", \"meta.by\" = \"Contacts\" }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_items_are_rejected_by_key_with_the_cause_and_their_neighbours_are_written() {
    let w = World::new(20).await;
    let notes = w.dev_table("Notes");
    amplify_data::create_table_keyed(&w.ctx.dynamo, &notes, "pk").await;
    let contact = w.dev.items["Contacts"][0]["id"].clone();
    let s = |v: &str| AttributeValue::S(v.into());
    let note = |pk: &str, rest: Vec<(&str, AttributeValue)>| -> Item {
        let mut item: Item = rest.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        item.insert("pk".into(), s(pk));
        item
    };
    let good_id = "5d1e7c0a-8b2f-4c3d-9e4f-a0b1c2d3e4f5";
    let long_id = "a".repeat(2048);
    let mut nested = AttributeValue::S("deep".into());
    for _ in 0..40 {
        nested = AttributeValue::M([("x".to_string(), nested)].into());
    }
    let mut items = vec![
        note("good", vec![("noteId", s(good_id)), ("contactId", contact.clone())]),
        note(
            "long",
            vec![("noteId", s(&long_id)), ("meta", AttributeValue::M([("by".into(), contact.clone())].into()))],
        ),
        note("no-id", vec![("contactId", contact.clone())]),
        note("map-id", vec![("noteId", AttributeValue::M([("v".into(), s("1"))].into()))]),
        note(
            "list-ref",
            vec![
                ("noteId", s("6d1e7c0a-8b2f-4c3d-9e4f-a0b1c2d3e4f5")),
                ("contactId", AttributeValue::L(vec![contact.clone()])),
            ],
        ),
        note("string-meta", vec![("noteId", s("7d1e7c0a-8b2f-4c3d-9e4f-a0b1c2d3e4f5")), ("meta", contact.clone())]),
    ];
    // What the server itself refuses cannot be in a source (DynamoDB has no NaN either): each of
    // these is tried, and checked only if the server stored it.
    let odd = [
        ("deep", note("deep", vec![("noteId", s("8d1e7c0a-8b2f-4c3d-9e4f-a0b1c2d3e4f5")), ("body", nested)])),
        (
            "empty-key",
            note(
                "empty-key",
                vec![
                    ("noteId", s("9d1e7c0a-8b2f-4c3d-9e4f-a0b1c2d3e4f5")),
                    ("body", AttributeValue::M([(String::new(), s("v"))].into())),
                ],
            ),
        ),
    ];
    let mut stored = Vec::new();
    for (name, item) in odd {
        if w.ctx.dynamo.put_item().table_name(&notes).set_item(Some(item)).send().await.is_ok() {
            stored.push(name);
        }
    }
    amplify_data::put_all(&w.ctx.dynamo, &notes, &items).await;
    items.clear();
    w.profile(
        w.ctx.envs.path(),
        "prod",
        &Settings { mappings: Some(format!("{}{NOTES}", amplify_data::mappings(true))), ..Settings::default() },
    );
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}\n{report}", run.stderr());
    let listed = rejects(&report, &format!("{}Notes-prod", w.ctx.prefix));
    let reason = |pk: &str| -> String {
        listed
            .iter()
            .find(|(k, _)| k.contains(&format!("\"{pk}\"")))
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("no reject for {pk}: {listed:#?}"))
    };
    for pk in ["no-id", "map-id", "list-ref", "string-meta"] {
        assert!(reason(pk).starts_with("attribute \""), "a DynamoDB source's item has attributes: {}", reason(pk));
    }
    let r = reason("no-id");
    assert!(r.contains("no \"noteId\"") && r.contains("the mapping's `id`"), "{r}");
    let r = reason("map-id");
    assert!(r.contains("noteId") && r.contains("a map, not an ID") && r.contains("fix the item in the source"), "{r}");
    let r = reason("list-ref");
    assert!(r.contains("a list, not an ID") && r.contains("write \"contactId[]\""), "{r}");
    let r = reason("string-meta");
    assert!(r.contains("meta.by") && r.contains("where a map with \"by\" was expected"), "{r}");
    // dynoxide refuses both items, as DynamoDB does; dynalite stores them, and ddbsync rejects them.
    for (name, cause) in [("deep", "nested more than 32 levels"), ("empty-key", "a map with an empty key")] {
        if stored.contains(&name) {
            let r = reason(name);
            assert!(r.contains("attribute \"body\"") && r.contains(cause), "{name}: {r}");
        }
    }
    assert_eq!(listed.len(), 4 + stored.len(), "{listed:#?}");

    // The neighbours are written, their IDs remapped in their shape.
    let prod: BTreeMap<String, Item> = scan_all(&w.ctx, &format!("{}Notes-prod", w.ctx.prefix))
        .await
        .into_iter()
        .map(|i| (text(&i["pk"]), i))
        .collect();
    assert_eq!(prod.keys().collect::<Vec<_>>(), ["good", "long"]);
    assert_eq!(text(&prod["good"]["noteId"]), oracle_uuid("prod", &notes, good_id));
    assert_eq!(text(&prod["good"]["contactId"]), w.new_id("prod", "Contacts", &text(&contact)));
    let long = text(&prod["long"]["noteId"]);
    assert!(
        long.len() == 2048 && long != long_id && long.bytes().all(|c| c.is_ascii_hexdigit()),
        "a 2 KB ID keeps its shape"
    );
    let AttributeValue::M(meta) = &prod["long"]["meta"] else { panic!("{:?}", prod["long"]) };
    assert_eq!(text(&meta["by"]), w.new_id("prod", "Contacts", &text(&contact)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_stops_answering_its_scans_ends_the_run_within_read_timeout() {
    let w = World::new(20).await;
    let source = Proxy::start(&servers().dynamo_url);
    let settings =
        Settings { source_url: Some(source.url.clone()), source_extra: "read_timeout_secs = 3", ..Settings::default() };
    w.profile(w.ctx.envs.path(), "prod", &settings);
    source.stall_operation(Some("Scan"));
    let started = Instant::now();
    let child = w
        .ctx
        .command_in(w.ctx.envs.path(), &["sync", "prod"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, _, err, took) = finish(child, started, Duration::from_secs(30));
    assert_eq!(code, 1, "{err}");
    assert!(took < Duration::from_secs(15), "ended in {took:?}");
    assert!(err.contains("DynamoDB") && err.contains(&source.url) && err.contains("3"), "{err}");
    assert!(written(&w.ctx.proxy).is_empty(), "nothing written");
    source.stall_operation(None);
    // Once the source answers, the next run completes the work.
    let (run, _) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    check_promoted(&w, &w.ctx.prefix, "prod").await;
}

/// The committed `envs/amplify-dev-to-prod.toml` with its mappings, in `dir`, aimed at this test's
/// server and tables: the source read directly, the target through the recording proxy.
fn committed_profile(ctx: &Ctx, dir: &Path) {
    let repo = crate::harness::repo();
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    std::fs::copy(repo.join("envs/mappings/amplify.toml"), dir.join("mappings/amplify.toml")).unwrap();
    let text = std::fs::read_to_string(repo.join("envs/amplify-dev-to-prod.toml")).unwrap();
    let local = "endpoint_url = \"http://127.0.0.1:8766\"";
    assert_eq!(text.matches(local).count(), 2, "{text}");
    let text = text
        .replacen(local, &format!("endpoint_url = \"{}\"", servers().dynamo_url), 1)
        .replacen(local, &format!("endpoint_url = \"{}\"", ctx.proxy.url), 1)
        .replace("table_template = \"{table}", &format!("table_template = \"{}{{table}}", ctx.prefix))
        .replace("\ntable_suffix", &format!("\ntable_prefix = \"{}\"\ntable_suffix", ctx.prefix));
    std::fs::write(dir.join("amplify-dev-to-prod.toml"), text).unwrap();
}

fn amplify_dev(ctx: &Ctx, action: &str) {
    let out = std::process::Command::new("python3")
        .arg(crate::harness::repo().join("scripts/amplify_dev.py"))
        .args([action, "--endpoint", &servers().dynamo_url, "--prefix", &ctx.prefix, "--count", "40"])
        .output()
        .expect("python3 runs scripts/amplify_dev.py");
    assert!(out.status.success(), "amplify_dev.py {action}: {}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_promotes_with_the_committed_profile_and_rewrites_one_quote() {
    let ctx = Ctx::new(1).await;
    amplify_dev(&ctx, "build");
    committed_profile(&ctx, ctx.envs.path());
    let prod = |table: &str| format!("{}{table}-aqnqdrctpzfwfjwyxxsmu6peoq-prod", ctx.prefix);
    let sync = |args: &[&str]| {
        let mut all = vec!["--json", "sync", "amplify-dev-to-prod"];
        all.extend_from_slice(args);
        let run = ctx.ddbsync(&all);
        let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap_or_default();
        (run, report)
    };
    let (run, report) = sync(&[]);
    assert_eq!(run.code(), 3, "the demo's one dangling quote item: {}", run.stderr());
    let listed = rejects(&report, &prod("QuoteItems"));
    assert_eq!(listed.len(), 1, "{report}");
    assert!(listed[0].1.contains("quoteId") && listed[0].1.contains("does not hold"), "{listed:?}");
    assert_eq!(count(&report, &prod("Contacts"), "created"), 40);

    // Every reference in prod resolves to a prod item.
    let mut items = HashMap::new();
    for table in TABLES {
        let all: BTreeMap<String, Item> =
            scan_all(&ctx, &prod(table)).await.into_iter().map(|i| (text(&i["id"]), i)).collect();
        items.insert(table, all);
    }
    for table in TABLES {
        for (id, item) in &items[table] {
            for (path, to) in references(table) {
                for r in referenced_ids(item, path) {
                    assert!(items[to].contains_key(&r), "{table} {id}: {path} = {r} is not in {to}");
                }
            }
        }
    }

    ctx.proxy.clear();
    assert_eq!(sync(&[]).0.code(), 3);
    assert_eq!(written(&ctx.proxy), [], "the second promotion writes nothing");
    amplify_dev(&ctx, "change-quote");
    ctx.proxy.clear();
    let (_, report) = sync(&[]);
    let keys = written(&ctx.proxy);
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].0, prod("Quotes"));
    assert_eq!(count(&report, &prod("Quotes"), "updated"), 1);
    let quote = scan_all(&ctx, &prod("Quotes")).await.into_iter().find(|q| text(&q["id"]) == keys[0].1).unwrap();
    assert_eq!(quote["total"], AttributeValue::N("4321.5".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_table_alone_still_rejects_references_to_items_that_are_never_promoted() {
    let w = World::new(COUNT).await;
    assert_eq!(w.sync(&[]).0.code(), 3);
    // Quotes alone: Projects is not in the run, so its IDs are read from its source table. A
    // project that is itself rejected (a dangling team contact) is in that table but never in
    // prod: the quotes that point at it stay rejected.
    let rejected = expected_rejects(&w.dev.items);
    let bad_project = text(&w.dev.items["Projects"][7]["id"]);
    assert!(rejected["Projects"].contains(&bad_project));
    let orphaned: Vec<&Item> = w.dev.items["Quotes"].iter().filter(|q| text(&q["projectId"]) == bad_project).collect();
    let (run, report) = w.sync(&["--table", "Quotes"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let listed = rejects(&report, &format!("{}Quotes-prod", w.ctx.prefix));
    assert_eq!(listed.len(), rejected["Quotes"].len(), "{listed:#?}");
    for quote in orphaned {
        let new = w.new_id("prod", "Quotes", &text(&quote["id"]));
        assert!(listed.iter().any(|(k, r)| k.contains(&new) && r.contains(&bad_project)), "{new}: {listed:#?}");
    }
    check_promoted(&w, &w.ctx.prefix, "prod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_source_is_read_ends_the_promotion_with_exit_5() {
    let w = World::new(20).await;
    let source = Proxy::start(&servers().dynamo_url);
    let settings = Settings { source_url: Some(source.url.clone()), ..Settings::default() };
    w.profile(w.ctx.envs.path(), "prod", &settings);
    source.stall_operation(Some("Scan"));
    let child = w
        .ctx
        .command_in(w.ctx.envs.path(), &["sync", "prod"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it waits for a Scan page (it has created the prod tables by then).
    let deadline = Instant::now() + Duration::from_secs(20);
    while !w.ctx.table_exists("QuoteItems-prod").await {
        assert!(Instant::now() < deadline, "the prod tables were not created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = Instant::now();
    crate::harness::signal(&child, "TERM");
    let (code, _, err, took) = finish(child, sent, Duration::from_secs(25));
    assert_eq!(code, 5, "{err}");
    assert!(took < Duration::from_secs(21), "{took:?}");
    assert!(written(&w.ctx.proxy).is_empty());
    source.stall_operation(None);
    assert_eq!(w.sync(&[]).0.code(), 3, "the next run completes the work");
    check_promoted(&w, &w.ctx.prefix, "prod").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_templates_are_rendered_with_the_new_ids_and_ddbsyncs_own_attributes_are_not_copied() {
    let w = World::new(20).await;
    let notes = w.dev_table("Notes");
    amplify_data::create_table_keyed(&w.ctx.dynamo, &notes, "pk").await;
    let contact = text(&w.dev.items["Contacts"][2]["id"]);
    let note_id = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";
    let item: Item = [
        ("pk", AttributeValue::S("n1".into())),
        ("noteId", AttributeValue::S(note_id.into())),
        ("contactId", AttributeValue::S(contact.clone())),
        ("body", AttributeValue::S("hello".into())),
        // A source that ddbsync itself fills carries these: the target's are computed afresh.
        ("_ddbsync_hash", AttributeValue::S("bogus".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    amplify_data::put_all(&w.ctx.dynamo, &notes, &[item]).await;
    let mapping = "\n[tables.Notes]\npartition_key = { name = \"PK\", template = \"CONTACT#{contactId}\" }\n\
                   sort_key = { name = \"SK\", template = \"NOTE#{noteId}\" }\nid = \"noteId\"\n\
                   references = { contactId = \"Contacts\" }\n";
    let mappings = format!("{}{mapping}", amplify_data::mappings(true));
    w.profile(w.ctx.envs.path(), "prod", &Settings { mappings: Some(mappings), ..Settings::default() });
    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "the generated dangling references: {}", run.stderr());
    assert!(rejects(&report, &format!("{}Notes-prod", w.ctx.prefix)).is_empty(), "{report}");
    let prod = scan_all(&w.ctx, &format!("{}Notes-prod", w.ctx.prefix)).await;
    assert_eq!(prod.len(), 1);
    let new_contact = w.new_id("prod", "Contacts", &contact);
    let new_note = oracle_uuid("prod", &notes, note_id);
    assert_eq!(text(&prod[0]["PK"]), format!("CONTACT#{new_contact}"));
    assert_eq!(text(&prod[0]["SK"]), format!("NOTE#{new_note}"));
    assert_eq!((text(&prod[0]["noteId"]), text(&prod[0]["contactId"])), (new_note, new_contact));
    assert_ne!(text(&prod[0]["_ddbsync_hash"]), "bogus", "the hash is ddbsync's own");
    assert_eq!(text(&prod[0]["body"]), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_too_large_for_prod_rejects_the_items_that_reference_it() {
    let w = World::new(20).await;
    // A contact DynamoDB holds in dev that is over 400 KB once ddbsync's own attributes are added:
    // the engine rejects it when it builds the prod item, after the source has read it.
    let mut contact = w.dev.items["Contacts"][0].clone();
    let big = "2f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b";
    contact.insert("id".into(), AttributeValue::S(big.into()));
    let used: usize = contact.iter().map(|(k, v)| k.len() + text(v).len()).sum();
    contact.insert("body".into(), AttributeValue::S("x".repeat(409_600 - used - 4 - 20)));
    amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Contacts"), &[contact]).await;
    let mut request = w.dev.items["Requests"][0].clone();
    let referrer = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b";
    request.insert("id".into(), AttributeValue::S(referrer.into()));
    request.insert("agentContactId".into(), AttributeValue::S(big.into()));
    amplify_data::put_all(&w.ctx.dynamo, &w.dev_table("Requests"), &[request]).await;

    let (run, report) = w.sync(&[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let contacts = rejects(&report, &format!("{}Contacts-prod", w.ctx.prefix));
    assert!(
        contacts.iter().any(|(k, r)| k.contains(&w.new_id("prod", "Contacts", big)) && r.contains("400 KB")),
        "{contacts:#?}"
    );
    let requests = rejects(&report, &format!("{}Requests-prod", w.ctx.prefix));
    let new = w.new_id("prod", "Requests", referrer);
    assert!(requests.iter().any(|(k, r)| k.contains(&new) && r.contains(big)), "{requests:#?}");
    assert!(!w.prod(&w.ctx.prefix, "Requests").await.contains_key(&new), "no prod request points at nothing");
    // verify reads the source as the sync did: the request is a row the source rejects, not one
    // missing from prod (which verify --repair would write).
    let verified = w.ctx.command_in(w.ctx.envs.path(), &["--json", "verify", "prod", "--full"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    let t = v["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == format!("{}Requests-prod", w.ctx.prefix))
        .unwrap();
    assert_eq!((t["missing"]["count"].as_u64(), t["rejected"].as_u64()), (Some(0), Some(2)), "{t}");
    // The rest is as the oracle says: every prod reference resolves.
    let mut prod = HashMap::new();
    for table in TABLES {
        prod.insert(table, w.prod(&w.ctx.prefix, table).await);
    }
    for table in TABLES {
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
async fn number_ids_stay_whole_numbers_and_references_to_them_follow() {
    let w = World::new(20).await;
    let (orders, lines) = (w.dev_table("Orders"), w.dev_table("Lines"));
    for name in [&orders, &lines] {
        let number = aws_sdk_dynamodb::types::ScalarAttributeType::N;
        amplify_data::create_table_typed(&w.ctx.dynamo, name, "n", number).await;
    }
    let num = |v: u64| AttributeValue::N(v.to_string());
    let order_items: Vec<Item> = (1..=30).map(|i| [("n".to_string(), num(i))].into()).collect();
    let line_items: Vec<Item> =
        (1..=30).map(|i| [("n".to_string(), num(100 + i)), ("orderN".to_string(), num(i))].into()).collect();
    amplify_data::put_all(&w.ctx.dynamo, &orders, &order_items).await;
    amplify_data::put_all(&w.ctx.dynamo, &lines, &line_items).await;
    let mapping =
        "\n[tables.Orders]\npartition_key = \"n\"\nid = \"n\"\n\n[tables.Lines]\npartition_key = \"n\"\nid = \"n\"\n\
                   references = { orderN = \"Orders\" }\n";
    let mappings = format!("{}{mapping}", amplify_data::mappings(true));
    w.profile(w.ctx.envs.path(), "prod", &Settings { mappings: Some(mappings), ..Settings::default() });
    assert_eq!(w.sync(&[]).0.code(), 3, "the generated dangling references");
    let prod_orders: BTreeSet<String> =
        scan_all(&w.ctx, &format!("{}Orders-prod", w.ctx.prefix)).await.iter().map(|i| text(&i["n"])).collect();
    assert_eq!(prod_orders.len(), 30);
    for n in &prod_orders {
        assert!(n.len() >= 15 && !n.starts_with('0') && n.bytes().all(|c| c.is_ascii_digit()), "{n}");
    }
    let prod_lines = scan_all(&w.ctx, &format!("{}Lines-prod", w.ctx.prefix)).await;
    assert_eq!(prod_lines.len(), 30);
    for line in &prod_lines {
        assert!(matches!(line["orderN"], AttributeValue::N(_)), "a number stays a number");
        assert!(prod_orders.contains(&text(&line["orderN"])), "{line:?}");
    }
    let distinct: BTreeSet<String> = prod_lines.iter().map(|l| text(&l["orderN"])).collect();
    assert_eq!(distinct.len(), 30, "each line keeps its own order");
}
