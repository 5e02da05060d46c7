//! The hash index (`diff = "index"`): the diff Queries a global index of keys and hashes instead of
//! Scanning the table, reads fewer units, and a lagging index costs rewrites, never a change.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use md5::{Digest as _, Md5};

use crate::harness::{figure, text, Ctx};

const INDEX: &str = "_ddbsync_diff_b64";

fn mappings(diff: &str) -> String {
    format!(
        r#"exclude_from_hash = ["created_at", "updated_at"]

[tables.lessons]
partition_key = "lesson_id"
delete_missing = true
{diff}
query = """
SELECT l.id AS lesson_id, l.title, l.category, l.topic, l.level, l.summary, l.metadata,
       l.published, l.created_at, l.updated_at
FROM lessons l
"""
"#
    )
}

/// The bucket of a numeric key, computed here from its definition: the first two bytes of the MD5
/// of `N`, the key's length (4 bytes, big-endian) and its digits, times 64, over 65,536.
fn bucket_of(id: &str) -> String {
    let mut encoded = vec![b'N'];
    encoded.extend_from_slice(&(id.len() as u32).to_be_bytes());
    encoded.extend_from_slice(id.as_bytes());
    let digest = Md5::digest(&encoded);
    (u32::from(u16::from_be_bytes([digest[0], digest[1]])) * 64 / 65_536).to_string()
}

/// Every entry of the table's hash index, read from the server bucket by bucket, as DynamoDB JSON.
async fn index_entries(ctx: &Ctx, name: &str) -> Vec<serde_json::Value> {
    let mut entries = Vec::new();
    for bucket in 0..64 {
        let mut start = None;
        loop {
            let out = ctx
                .dynamo
                .query()
                .table_name(ctx.table(name))
                .index_name(INDEX)
                .key_condition_expression("#b = :b")
                .expression_attribute_names("#b", "_ddbsync_bucket")
                .expression_attribute_values(":b", AttributeValue::N(bucket.to_string()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("query {name} bucket {bucket}: {e:?}"));
            entries.extend(out.items().iter().map(ddbsync::pure::ddb_json::item_to_json));
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                break;
            }
        }
    }
    entries
}

/// The read units the server reported for the calls of `operation` since the proxy was cleared.
fn units_of(ctx: &Ctx, operation: &str) -> f64 {
    ctx.proxy
        .exchanges(operation)
        .iter()
        .map(|e| e.response["ConsumedCapacity"]["CapacityUnits"].as_f64().unwrap_or(0.0))
        .sum()
}

/// The keys each BatchWriteItem call put and deleted, as the server was asked.
fn written(ctx: &Ctx) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut puts, mut deletes) = (BTreeSet::new(), BTreeSet::new());
    for exchange in ctx.proxy.requests("BatchWriteItem") {
        for requests in exchange["RequestItems"].as_object().unwrap().values() {
            for request in requests.as_array().unwrap() {
                if let Some(item) = request.get("PutRequest") {
                    puts.insert(item["Item"]["lesson_id"]["N"].as_str().unwrap().to_string());
                }
                if let Some(key) = request.get("DeleteRequest") {
                    deletes.insert(key["Key"]["lesson_id"]["N"].as_str().unwrap().to_string());
                }
            }
        }
    }
    (puts, deletes)
}

/// The table read back (lesson id → title and bucket) and the source's lessons (id → title), to compare.
async fn both_sides(ctx: &Ctx) -> (BTreeMap<String, (String, String)>, BTreeMap<String, String>) {
    let stored = ctx
        .scan("lessons")
        .await
        .iter()
        .map(|i| (text(&i["lesson_id"]), (text(&i["title"]), text(&i["_ddbsync_bucket"]))))
        .collect();
    let source = ctx
        .query("SELECT id || '|' || title FROM lessons")
        .iter()
        .map(|row| {
            let (id, title) = row.split_once('|').unwrap();
            (id.to_string(), title.to_string())
        })
        .collect();
    (stored, source)
}

fn assert_in_sync(stored: &BTreeMap<String, (String, String)>, source: &BTreeMap<String, String>) {
    let titles: BTreeMap<&String, &String> = stored.iter().map(|(id, (title, _))| (id, title)).collect();
    assert_eq!(titles, source.iter().collect::<BTreeMap<_, _>>(), "the table holds exactly the source's lessons");
    for (id, (_, bucket)) in stored {
        assert_eq!(bucket, &bucket_of(id), "lesson {id} is in the bucket its key gives");
    }
}

#[tokio::test]
async fn an_indexed_table_is_diffed_through_its_index_and_writes_exactly_the_changes() {
    let ctx = Ctx::new(1500).await;
    ctx.use_mappings("indexed.toml", &mappings("diff = \"index\""));
    let first = ctx.sync(&[]);
    let table = ctx.table("lessons");
    assert_eq!(figure(&first, &table, "created"), 1500.0);
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);
    let entries = index_entries(&ctx, "lessons").await;
    assert_eq!(entries.len(), 1500, "every item is in the index");
    let copied: BTreeSet<String> = entries.iter().flat_map(|e| e.as_object().unwrap().keys().cloned()).collect();
    assert_eq!(
        copied,
        ["_ddbsync_bucket", "_ddbsync_hash", "lesson_id"].map(String::from).into(),
        "keys and hash only"
    );

    // No change: the diff reads the index, never the table.
    ctx.proxy.clear();
    let second = ctx.sync(&[]);
    assert_eq!(second["tables"][0]["diff"], "index");
    assert_eq!(figure(&second, &table, "unchanged"), 1500.0);
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty(), "no write");
    let index_units = units_of(&ctx, "Scan");
    let requests = ctx.proxy.requests("Scan");
    assert!(
        !requests.is_empty() && requests.iter().all(|r| r["IndexName"] == INDEX),
        "only the index is read: {requests:?}"
    );
    assert_eq!(figure(&second, &table, "read_units"), index_units, "the report says what the server billed");

    // The same table Scanned, for the comparison.
    ctx.proxy.clear();
    let scanned = ctx.sync(&["--full-scan"]);
    assert_eq!(scanned["tables"][0]["diff"], "scan");
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty(), "a full scan of a bucketed table rewrites nothing");
    let scan_units = units_of(&ctx, "Scan");
    assert!(ctx.proxy.requests("Scan").iter().all(|r| r.get("IndexName").is_none()), "the table itself");
    assert!(scan_units > 3.0 * index_units, "the index read {index_units} units, a Scan {scan_units}");
    let estimate = second["tables"][0]["scan_read_units"].as_f64().unwrap();
    assert!(
        (estimate - scan_units).abs() <= 0.1 * scan_units,
        "the report's estimate of a Scan ({estimate}) is within 10 % of the Scan's units ({scan_units})"
    );

    // Changes: 3 rewritten, 2 removed, 1 added; exactly those are written, through the index's diff.
    ctx.sql(&[
        "UPDATE lessons SET title = title || ' (revised)' WHERE id IN (7, 300, 1200)",
        "UPDATE lessons SET updated_at = now() WHERE id IN (8, 9)",
        "DELETE FROM questions WHERE lesson_id IN (11, 12)",
        "DELETE FROM passages WHERE lesson_id IN (11, 12)",
        "DELETE FROM lessons WHERE id IN (11, 12)",
        "INSERT INTO lessons (id, title, category, topic, level, summary, metadata, published, created_at, updated_at) \
         SELECT 99999, 'new', category, topic, level, summary, metadata, published, created_at, updated_at FROM lessons WHERE id = 1",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    ctx.proxy.clear();
    let third = ctx.sync(&[]);
    assert_eq!(third["tables"][0]["diff"], "index");
    assert_eq!(
        written(&ctx),
        (["1200", "300", "7", "99999"].map(String::from).into(), ["11", "12"].map(String::from).into())
    );
    assert_eq!((figure(&third, &table, "updated"), figure(&third, &table, "created")), (3.0, 1.0));
    assert_eq!(figure(&third, &table, "deleted"), 2.0);
    assert_eq!(figure(&third, &table, "index_write_units"), 6.0, "one index entry per item written or deleted");
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);
    assert_eq!(index_entries(&ctx, "lessons").await.len(), 1499, "the index follows the table");
}

#[tokio::test]
async fn a_lagging_index_costs_rewrites_and_redeletes_never_a_change() {
    let ctx = Ctx::new(60).await;
    ctx.use_mappings("indexed.toml", &mappings("diff = \"index\""));
    ctx.sync(&[]);
    let before = index_entries(&ctx, "lessons").await;
    ctx.sql(&[
        "UPDATE lessons SET title = 'changed' WHERE id = 5",
        "DELETE FROM questions WHERE lesson_id = 6",
        "DELETE FROM passages WHERE lesson_id = 6",
        "DELETE FROM lessons WHERE id = 6",
        "INSERT INTO lessons (id, title, category, topic, level, summary, metadata, published, created_at, updated_at) \
         SELECT 700, 'new', category, topic, level, summary, metadata, published, created_at, updated_at FROM lessons WHERE id = 1",
    ]);
    ctx.sync(&[]);
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);

    // The index still shows the table as it was before those writes: the changed lesson with its
    // old hash, the deleted one, and not the new one.
    ctx.proxy.lag_index(Some(before));
    ctx.proxy.clear();
    let lagged = ctx.sync(&[]);
    ctx.proxy.lag_index(None);
    assert_eq!(lagged["tables"][0]["diff"], "index");
    let (puts, deletes) = written(&ctx);
    assert_eq!(
        puts,
        ["5", "700"].map(String::from).into(),
        "rewritten: the lesson the index shows stale, the one it lacks"
    );
    assert_eq!(deletes, ["6"].map(String::from).into(), "deleted again: the lesson the index still shows");
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);

    // Once the index has caught up, nothing is written.
    ctx.proxy.clear();
    let caught_up = ctx.sync(&[]);
    assert_eq!(caught_up["total"]["write_units"], 0.0);
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty());
}

#[tokio::test]
async fn a_table_switched_to_the_index_is_scanned_and_bucketed_once_then_read_through_it() {
    let ctx = Ctx::new(40).await;
    let path = ctx.use_mappings("indexed.toml", &mappings(""));
    ctx.sync(&[]);
    assert!(
        ctx.scan("lessons").await.iter().all(|i| !i.contains_key("_ddbsync_bucket")),
        "a scan table has no buckets"
    );

    // The switch: the mapping asks for the index, `tables create` adds it.
    std::fs::write(&path, mappings("diff = \"index\"")).unwrap();
    let created = ctx.ddbsync(&["tables", "create", "local"]);
    if crate::harness::server_kind() == "dynalite" {
        // dynalite cannot add a global index to an existing table (it wants ProvisionedThroughput
        // for it, which DynamoDB refuses on an on-demand table, and then ignores it; see
        // chinook.rs). Without the index the diff Scans, and writes the buckets all the same.
        assert_eq!(created.code(), 1, "{}", created.stdout());
        for (run, updated) in [(1, 40.0), (2, 0.0)] {
            let report = ctx.sync(&[]);
            assert_eq!(report["tables"][0]["diff"], "scan", "run {run}");
            assert!(report["notes"].to_string().contains("has no hash index"), "{}", report["notes"]);
            assert_eq!(figure(&report, &ctx.table("lessons"), "updated"), updated, "run {run}");
        }
        let (stored, source) = both_sides(&ctx).await;
        assert_in_sync(&stored, &source);
        return;
    }
    assert_eq!(created.code(), 0, "{}", created.stderr());
    let described = ctx.dynamo.describe_table().table_name(ctx.table("lessons")).send().await.unwrap();
    let indexes = described.table().unwrap().global_secondary_indexes();
    assert_eq!(indexes.iter().filter_map(|i| i.index_name()).collect::<Vec<_>>(), [INDEX]);

    // The first run Scans and rewrites every item with its bucket, and says why.
    ctx.proxy.clear();
    let run = ctx.ddbsync(&["sync", "local", "--json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert!(report["notes"].to_string().contains("rewrites the items without it"), "{}", report["notes"]);
    assert_eq!(report["tables"][0]["diff"], "scan");
    assert_eq!(figure(&report, &ctx.table("lessons"), "updated"), 40.0);
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);
    assert_eq!(index_entries(&ctx, "lessons").await.len(), 40);

    // From then on, the index.
    ctx.proxy.clear();
    let next = ctx.sync(&[]);
    assert_eq!(next["tables"][0]["diff"], "index");
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty());

    // A run through a mapping that does not bucket writes items without one: the index is not
    // trusted again until a Scan has bucketed them.
    std::fs::write(&path, mappings("")).unwrap();
    ctx.sql(&["UPDATE lessons SET title = 'unbucketed' WHERE id = 3"]);
    ctx.sync(&[]);
    let item = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == "3").unwrap();
    assert!(!item.contains_key("_ddbsync_bucket"));
    std::fs::write(&path, mappings("diff = \"index\"")).unwrap();
    ctx.sql(&[
        "DELETE FROM questions WHERE lesson_id = 3",
        "DELETE FROM passages WHERE lesson_id = 3",
        "DELETE FROM lessons WHERE id = 3",
    ]);
    let back = ctx.sync(&[]);
    assert_eq!(back["tables"][0]["diff"], "scan", "the lesson without a bucket would be missing from the index");
    assert_eq!(figure(&back, &ctx.table("lessons"), "deleted"), 1.0, "and its orphan is deleted");
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);
    assert_eq!(ctx.sync(&[])["tables"][0]["diff"], "index");
}

#[tokio::test]
async fn a_scoped_table_filters_its_index_on_the_attributes_the_index_copies() {
    let ctx = Ctx::new(60).await;
    ctx.use_mappings(
        "scoped.toml",
        r##"[tables.lessons]
partition_key = "lesson_id"
diff = "index"
delete_missing = true
params = ["min_level"]
scope = "#level >= :min_level"
query = "SELECT id AS lesson_id, title, level FROM lessons WHERE level >= $1"
"##,
    );
    let first = ctx.sync(&["--param", "min_level=3"]);
    let in_scope: Vec<String> = ctx.query("SELECT id FROM lessons WHERE level >= 3 ORDER BY id");
    assert_eq!(figure(&first, &ctx.table("lessons"), "created"), in_scope.len() as f64);
    let entries = index_entries(&ctx, "lessons").await;
    assert!(entries.iter().all(|e| e.get("level").is_some()), "the index copies what the scope reads");

    // A lesson of the scope goes, one outside it changes: the scoped run deletes the first only,
    // reading the index through the scope's filter.
    let gone = &in_scope[0];
    let outside = ctx.query("SELECT id FROM lessons WHERE level < 3 ORDER BY id LIMIT 1")[0].clone();
    ctx.sql(&[
        &format!("DELETE FROM questions WHERE lesson_id = {gone}"),
        &format!("DELETE FROM passages WHERE lesson_id = {gone}"),
        &format!("DELETE FROM lessons WHERE id = {gone}"),
        &format!("UPDATE lessons SET title = 'outside' WHERE id = {outside}"),
    ]);
    ctx.proxy.clear();
    let second = ctx.sync(&["--param", "min_level=3"]);
    assert_eq!(second["tables"][0]["diff"], "index");
    let requests = ctx.proxy.requests("Scan");
    assert!(requests.iter().all(|r| r["IndexName"] == INDEX && r["FilterExpression"].is_string()), "{requests:?}");
    assert_eq!(written(&ctx), (BTreeSet::new(), [gone.clone()].into()));
    assert_eq!(figure(&second, &ctx.table("lessons"), "unchanged"), (in_scope.len() - 1) as f64);
    let stored: BTreeSet<String> = ctx.scan("lessons").await.iter().map(|i| text(&i["lesson_id"])).collect();
    assert_eq!(
        stored,
        in_scope[1..].iter().cloned().collect(),
        "the table holds the scope's lessons, but the one deleted"
    );
}

#[tokio::test]
async fn check_says_what_the_next_diff_reads() {
    let ctx = Ctx::new(5).await;
    let path = ctx.use_mappings("indexed.toml", &mappings(""));
    ctx.sync(&[]);
    std::fs::write(&path, mappings("diff = \"index\"")).unwrap();
    let lacking = ctx.ddbsync(&["check", "local"]);
    assert!(lacking.stdout().contains(INDEX), "{}", lacking.stdout());
    ctx.ddbsync(&["sync", "local", "--clean", "--yes"]);
    let ready = ctx.ddbsync(&["check", "local"]);
    assert_eq!(ready.code(), 0, "{}{}", ready.stdout(), ready.stderr());
    assert!(ready.stdout().contains("the next sync's diff reads its hash index"), "{}", ready.stdout());
}

#[tokio::test]
async fn an_item_in_the_wrong_bucket_is_rewritten_into_its_own() {
    let ctx = Ctx::new(10).await;
    ctx.use_mappings("indexed.toml", &mappings("diff = \"index\""));
    ctx.sync(&[]);
    let key = [("lesson_id".to_string(), AttributeValue::N("4".into()))];
    let wrong = if bucket_of("4") == "7" { "8" } else { "7" };
    ctx.dynamo
        .update_item()
        .table_name(ctx.table("lessons"))
        .set_key(Some(key.into()))
        .update_expression("SET #b = :b")
        .expression_attribute_names("#b", "_ddbsync_bucket")
        .expression_attribute_values(":b", AttributeValue::N(wrong.into()))
        .send()
        .await
        .unwrap();
    ctx.proxy.clear();
    let report = ctx.sync(&[]);
    assert_eq!(report["tables"][0]["diff"], "index");
    assert_eq!(written(&ctx), (["4"].map(String::from).into(), BTreeSet::new()));
    let (stored, source) = both_sides(&ctx).await;
    assert_in_sync(&stored, &source);
}

#[tokio::test]
async fn a_switch_that_leaves_items_without_a_bucket_says_what_keeps_it_from_completing() {
    let ctx = Ctx::new(12).await;
    let path = ctx.use_mappings("indexed.toml", &mappings("").replace("delete_missing = true", ""));
    ctx.sync(&[]);
    ctx.sql(&[
        "DELETE FROM questions WHERE lesson_id = 2",
        "DELETE FROM passages WHERE lesson_id = 2",
        "DELETE FROM lessons WHERE id = 2",
    ]);
    // The index comes with the table: recreated under the index mapping, then the orphan put back
    // as an earlier scan run left it, without a bucket.
    std::fs::write(&path, mappings("diff = \"index\"").replace("delete_missing = true", "")).unwrap();
    let orphan = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == "2").unwrap();
    ctx.ddbsync(&["sync", "local", "--clean", "--yes"]);
    ctx.dynamo.put_item().table_name(ctx.table("lessons")).set_item(Some(orphan)).send().await.unwrap();
    // What a Scan run leaves: the record voided (as a run through a mapping without buckets does).
    let key = [
        ("pk".to_string(), AttributeValue::S("DIFF".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{}", ctx.table("lessons")))),
    ];
    ctx.dynamo.delete_item().table_name(ctx.table("cache-metadata")).set_key(Some(key.into())).send().await.unwrap();
    for run in 0..2 {
        let report = ctx.sync(&[]);
        assert_eq!(report["tables"][0]["diff"], "scan", "run {run}");
        let notes = report["notes"].to_string();
        assert!(
            notes.contains("1 items without a source row (set delete_missing = true, or delete them)"),
            "run {run}: {notes}"
        );
    }
}
