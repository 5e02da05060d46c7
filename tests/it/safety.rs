//! Unattended runs against production: bad rows, guarded deletes, the run lock, resuming after
//! kill -9, backups and protected environments.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{figure, text, Ctx, Item, Profile};

/// A table fed by literal rows, one bad in each way ddbsync checks, plus three good ones.
const BAD_ROWS: &str = r#"
[tables.things]
partition_key = "id"
query = """
SELECT * FROM (VALUES
  (1, 1.5::float8, 1::numeric, 'ok'::text),
  (2, 'NaN'::float8, 1, 'not a number'),
  (3, '-Infinity'::float8, 1, 'infinite'),
  (4, 1, 123456789012345678901234567890123456789::numeric, '39 digits'),
  (5, 1, 1e130::numeric, 'out of range'),
  (6, 1, 1, repeat('x', 420000)),
  (7, 1, 1, 'first'),
  (7, 1, 1, 'second'),
  (NULL, 1, 1, 'no key'),
  (8, 2.5, 2, 'ok too')
) AS t(id, f, n, body)
"""
"#;

fn lines(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

#[tokio::test]
async fn bad_rows_are_rejected_into_a_file_and_the_good_ones_written() {
    let ctx = Ctx::new(1).await;
    ctx.use_mappings("bad.toml", BAD_ROWS);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let things = ctx.table("things");
    assert_eq!(figure(&report, &things, "created"), 3.0);
    let mut ids: Vec<String> = ctx.scan("things").await.iter().map(|i| text(&i["id"])).collect();
    ids.sort();
    assert_eq!(ids, ["1", "7", "8"]);
    let first_of_7 = ctx.scan("things").await.into_iter().find(|i| text(&i["id"]) == "7").unwrap();
    assert_eq!(text(&first_of_7["body"]), "first", "the first row of a duplicated key is the one kept");

    let file = ctx.envs.path().join(report["rejects_file"].as_str().expect("a rejects file"));
    let rejects = lines(&file);
    let by_key: HashMap<String, String> = rejects
        .iter()
        .map(|r| {
            assert_eq!((r["table"].as_str(), r["kind"].as_str()), (Some(things.as_str()), Some("rejected")));
            (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(rejects.len(), 7, "{rejects:#?}");
    let expect = |key: &str, words: &str| {
        let reason = by_key.get(key).unwrap_or_else(|| panic!("no reject for {key}: {by_key:#?}"));
        assert!(reason.contains(words), "{key}: {reason:?} should say {words:?}");
    };
    expect("id=2", "NaN");
    expect("id=3", "-Infinity cannot be stored");
    expect("id=4", "1.23456789012345678901234567890123456789E+38 has 39 significant digits; DynamoDB keeps at most 38");
    expect("id=5", "1E+130 is outside DynamoDB's number range");
    expect("id=6", "over DynamoDB's 400 KB limit");
    expect("id=7", "same key");
    expect("id=NULL", "key column \"id\" is NULL");
}

#[tokio::test]
async fn on_reject_fail_stops_before_the_first_write() {
    let ctx = Ctx::new(1).await;
    let mappings = ctx.write_mappings("bad.toml", BAD_ROWS);
    let profile = Profile { mappings: Some(&mappings), sync: "on_reject = \"fail\"", ..Profile::default() };
    ctx.write_profile_with("local", &profile);
    let file = ctx.envs.path().join("out/rejects.jsonl");
    let run = ctx.ddbsync(&["sync", "local", "--rejects-file", file.to_str().unwrap()]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains("7 source rows cannot be written (first: "),
        "the count and the first reject are named: {}",
        run.stderr()
    );
    assert!(run.stderr().contains("nothing was written because sync.on_reject is \"fail\""), "{}", run.stderr());
    assert_eq!(lines(&file).len(), 7);
    assert!(!ctx.table_exists("things").await, "no table was created, no item written");
}

/// `items`, fed by a table the test edits, with or without deletes.
fn items_mapping(delete: bool) -> String {
    format!(
        "[tables.items]\npartition_key = \"id\"\ndelete_missing = {delete}\nquery = \"SELECT id, title FROM items\"\n"
    )
}

async fn ids(ctx: &Ctx) -> Vec<u32> {
    let mut ids: Vec<u32> = ctx.scan("items").await.iter().map(|i| text(&i["id"]).parse().unwrap()).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn orphans_are_kept_by_default_and_deleted_within_the_guard() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 50) g"]);
    let keep = ctx.write_mappings("keep.toml", &items_mapping(false));
    let del = ctx.write_mappings("delete.toml", &items_mapping(true));
    ctx.write_profile_with("keep", &Profile { mappings: Some(&keep), ..Profile::default() });
    ctx.write_profile_with("local", &Profile { mappings: Some(&del), ..Profile::default() });
    let table = ctx.table("items");
    ctx.sync(&[]);

    ctx.sql(&["DELETE FROM items WHERE id = 1"]);
    let run = ctx.ddbsync(&["sync", "keep"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let kept = format!(
        "{table}: 1 items have no source row; left in place, as the mapping does not delete them \
         (`delete_missing = true` on the mapping deletes them)"
    );
    assert!(run.stdout().contains(&kept), "{}", run.stdout());
    assert_eq!(ids(&ctx).await.len(), 50, "without delete_missing nothing is deleted");

    let dry = ctx.ddbsync(&["sync", "local", "--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", dry.stderr());
    assert!(dry.stdout().contains(&format!("{table}: 1 items would be deleted:\n  id=1\n")), "{}", dry.stdout());
    assert_eq!(ids(&ctx).await.len(), 50, "a dry run deletes nothing");

    let report = ctx.sync(&[]);
    assert_eq!((figure(&report, &table, "orphans"), figure(&report, &table, "deleted")), (1.0, 1.0));
    assert_eq!(ids(&ctx).await, (2..=50).collect::<Vec<_>>());

    // 10 of 49 items is 20 %: over the 10 % guard.
    ctx.sql(&["DELETE FROM items WHERE id <= 11"]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "a refused delete leaves the run incomplete: {}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let refused = report["tables"][0]["deletes_refused_reason"].as_str().expect("a refusal");
    assert!(refused.starts_with("not deleted: 10 of 49 items (20.4%) have no source row, over the 10% guard"));
    assert!(refused.contains("--allow-mass-delete"));
    assert_eq!(ids(&ctx).await.len(), 49, "nothing was deleted");

    let report = ctx.sync(&["--allow-mass-delete"]);
    assert_eq!(figure(&report, &table, "deleted"), 10.0);
    assert_eq!(ids(&ctx).await, (12..=50).collect::<Vec<_>>());

    // A source query that suddenly returns nothing never empties the table.
    ctx.sql(&["DELETE FROM items"]);
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 3);
    assert!(run.stdout().contains("not deleted: 39 of 39 items (100.0%)"), "{}", run.stdout());
    assert_eq!(ids(&ctx).await.len(), 39);
}

/// The lease item of the lessons table (every table has one while a run holds it).
fn lock_key(ctx: &Ctx) -> Item {
    let sk = format!("TABLE#{}", ctx.table("lessons"));
    [("pk".to_string(), AttributeValue::S("LOCK".into())), ("sk".to_string(), AttributeValue::S(sk))].into()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string()
}

async fn put_lease(ctx: &Ctx, host: &str, pid: u32, expires_in: chrono::Duration) {
    let now = chrono::Utc::now();
    let mut item = lock_key(ctx);
    for (k, v) in [
        ("run_id", format!("{host}:{pid}:1")),
        ("environment", "local".to_string()),
        // A lease of this host carries its kernel and pid namespace, as ddbsync writes them.
        ("host_id", if host == hostname() { ddbsync::engine::lock::host_id() } else { "elsewhere".to_string() }),
        ("host", host.to_string()),
        ("started_at", (now - chrono::Duration::minutes(5)).to_rfc3339()),
        ("expires_at", (now + expires_in).to_rfc3339()),
    ] {
        item.insert(k.into(), AttributeValue::S(v));
    }
    item.insert("pid".into(), AttributeValue::N(pid.to_string()));
    ctx.dynamo.put_item().table_name(ctx.table("cache-metadata")).set_item(Some(item)).send().await.unwrap();
}

async fn lease(ctx: &Ctx) -> Option<Item> {
    let out = ctx.dynamo.get_item().table_name(ctx.table("cache-metadata")).set_key(Some(lock_key(ctx)));
    out.consistent_read(true).send().await.unwrap().item
}

#[tokio::test]
async fn the_run_lock_keeps_two_runs_apart() {
    let ctx = Ctx::new(200).await;
    ctx.sync(&[]);
    assert_eq!(lease(&ctx).await, None, "a finished run releases the lock");

    put_lease(&ctx, "batch-7", 4242, chrono::Duration::hours(1)).await;
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!(
            "table {} is locked by another run (environment local): batch-7 (pid 4242) took the lock at",
            ctx.table("lessons")
        )),
        "the holder is named: {}",
        run.stderr()
    );
    assert!(run.stderr().contains("--force-unlock"), "{}", run.stderr());
    // The forced holder may write until its lease runs out: the forcing run waits for that first.
    ctx.write_profile("local", "lock_lease_secs = 3");
    let run = ctx.ddbsync(&["sync", "local", "--force-unlock"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("--force-unlock: waiting"), "{}", run.stderr());
    assert!(run.elapsed >= Duration::from_secs(2), "{:?}", run.elapsed);

    put_lease(&ctx, "batch-7", 4242, -chrono::Duration::seconds(1)).await;
    assert_eq!(ctx.ddbsync(&["sync", "local"]).code(), 0, "an expired lease is free");

    // A lease of this host whose process has ended is free at once.
    put_lease(&ctx, &hostname(), u32::MAX / 2, chrono::Duration::hours(1)).await;
    assert_eq!(ctx.ddbsync(&["sync", "local"]).code(), 0);

    // Two live runs: the second is refused while the first writes (slowly, under a cap).
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let mut first = ctx.command(&["sync", "local", "--max-write-units-per-second", "100"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lease(&ctx).await.is_none() {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(second.code(), 4, "{}", second.stderr());
    assert!(second.stderr().contains(&format!("(pid {})", first.id())), "{}", second.stderr());
    assert!(first.wait().unwrap().success());
    assert_eq!(lease(&ctx).await, None);
}

/// Every lesson's title as the target holds it.
async fn titles(ctx: &Ctx) -> HashMap<String, String> {
    ctx.scan("lessons").await.iter().map(|i| (text(&i["lesson_id"]), text(&i["title"]))).collect()
}

#[tokio::test]
async fn a_sync_killed_at_random_points_is_completed_by_the_next() {
    let ctx = Ctx::new(300).await;
    ctx.write_profile("local", "max_write_units_per_second = 600");
    let mut rng = fastrand::Rng::with_seed(2026);
    let tables = ["lessons", "passages", "topics"];
    for round in 0..6 {
        // Every round changes some titles, and every other one is a --clean.
        ctx.sql(&[&format!("UPDATE lessons SET title = 'round {round} ' || id WHERE id % 3 = {}", round % 3)]);
        let args: &[&str] = if round % 2 == 0 { &["sync", "local", "--clean", "--yes"] } else { &["sync", "local"] };
        let mut child =
            ctx.command(args).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        let at = Duration::from_millis(rng.u64(50..2500));
        tokio::time::sleep(at).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let source: HashMap<String, String> = ctx
            .query("SELECT id || '|' || title FROM lessons")
            .iter()
            .map(|l| l.split_once('|').unwrap())
            .map(|(a, b)| (a.into(), b.into()))
            .collect();
        // The server may still carry out batches the killed process had sent (dynalite is slow):
        // counted once they have landed, when two reads a moment apart agree.
        let mut fresh = usize::MAX;
        loop {
            let now = if ctx.table_exists("lessons").await {
                titles(&ctx).await.iter().filter(|(id, title)| source.get(*id) == Some(*title)).count()
            } else {
                0
            };
            if now == fresh {
                break;
            }
            fresh = now;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let report = ctx.sync(&[]);
        let lessons = ctx.table("lessons");
        let written = figure(&report, &lessons, "created") + figure(&report, &lessons, "updated");
        assert_eq!(
            written as usize,
            source.len() - fresh,
            "round {round}, killed after {at:?}: the next run writes exactly what the killed one had not"
        );
        assert_eq!(titles(&ctx).await, source, "round {round}: every lesson equals its row");
        for t in tables {
            let expected = match t {
                "lessons" => source.len(),
                "passages" => ctx.query("SELECT count(*) FROM passages")[0].parse().unwrap(),
                _ => ctx.query("SELECT count(DISTINCT (category, topic)) FROM lessons")[0].parse().unwrap(),
            };
            assert_eq!(ctx.scan(t).await.len(), expected, "round {round}: {t}");
        }
        let again = ctx.sync(&["--dry-run"]);
        assert_eq!(again["total"]["created"].as_f64().unwrap() + again["total"]["updated"].as_f64().unwrap(), 0.0);
    }
}

fn sorted(items: Vec<Item>, key: &str) -> Vec<(String, Item)> {
    let mut v: Vec<(String, Item)> = items.into_iter().map(|i| (text(&i[key]), i)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[tokio::test]
async fn a_backup_restores_every_item_exactly() {
    let ctx = Ctx::new(40).await;
    ctx.sync(&[]);
    let before = sorted(ctx.scan("lessons").await, "lesson_id");
    let topics = ctx.scan("topics").await.len();
    let file = ctx.envs.path().join("b/local.tar");
    let run = ctx.ddbsync(&["--json", "backup", "local", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let out: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let counts: HashMap<String, u64> = out["manifest"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["items"].as_u64().unwrap()))
        .collect();
    assert_eq!((counts["lessons"], counts["topics"]), (40, topics as u64));

    // Wreck the target: drop a table, change an item in another.
    ctx.dynamo.delete_table().table_name(ctx.table("lessons")).send().await.unwrap();
    let mut changed = ctx.scan("topics").await.remove(0);
    changed.insert("levels".into(), AttributeValue::S("wrong".into()));
    ctx.dynamo.put_item().table_name(ctx.table("topics")).set_item(Some(changed)).send().await.unwrap();

    let refused = ctx.ddbsync(&["restore", file.to_str().unwrap()]);
    assert_eq!(refused.code(), 2, "no terminal, no --yes: {}", refused.stderr());
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(sorted(ctx.scan("lessons").await, "lesson_id"), before, "every attribute of every item is back");
    let report = ctx.sync(&[]);
    assert_eq!(report["total"]["created"].as_f64().unwrap() + report["total"]["updated"].as_f64().unwrap(), 0.0);

    // A damaged archive is refused before anything changes: one byte of the lessons' data flipped.
    let mut bytes = std::fs::read(&file).unwrap();
    let header = bytes.windows(15).rposition(|w| w == b"lessons.json.gz").expect("the lessons entry");
    bytes[header + 512 + 200] ^= 0x55;
    let damaged = ctx.envs.path().join("b/damaged.tar");
    std::fs::write(&damaged, bytes).unwrap();
    ctx.sql(&["UPDATE lessons SET title = 'after the backup'"]);
    ctx.sync(&[]);
    let run = ctx.ddbsync(&["restore", damaged.to_str().unwrap(), "--yes"]);
    assert_ne!(run.code(), 0);
    assert!(run.stderr().contains("damaged.tar: lessons.json.gz: "), "the file is named: {}", run.stderr());
    assert!(run.stderr().contains("the backup is damaged"), "{}", run.stderr());
    assert!(titles(&ctx).await.values().all(|t| t == "after the backup"), "the target was not touched");
}

#[tokio::test]
async fn clean_on_a_protected_environment_needs_yes_and_backs_up_first() {
    let ctx = Ctx::new(12).await;
    ctx.write_profile_with("local", &Profile { top: "protected = true\nbackup_dir = \"saved\"", ..Profile::default() });
    ctx.sync(&[]);
    let run = ctx.ddbsync(&["sync", "local", "--clean"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("local is protected: --clean deletes and recreates"), "{}", run.stderr());
    assert!(run.stderr().contains("only with --yes"), "{}", run.stderr());

    let report = ctx.sync(&["--clean", "--yes"]);
    let backup = ctx.envs.path().join(report["backup"].as_str().expect("the backup is named in the report"));
    assert!(backup.starts_with(ctx.envs.path().join("saved")), "{}", backup.display());
    let manifest = ddbsync::engine::backup::verify(&backup, false).unwrap();
    let lessons = manifest.tables.iter().find(|t| t.name == "lessons").unwrap();
    assert_eq!(lessons.items, 12, "the backup holds the table as it was before the clean");
    assert_eq!(figure(&report, &ctx.table("lessons"), "created"), 12.0);
}

/// A dry run's target records every write instead of sending it: whatever the run would do (write
/// changed items, delete orphans, create a table, recreate one with --clean), the server sees only
/// reads, and the report still says what would be done.
#[tokio::test]
async fn a_dry_run_sends_dynamodb_only_reads_whatever_it_would_do() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 50) g"]);
    let del = ctx.write_mappings("delete.toml", &items_mapping(true));
    ctx.write_profile_with("local", &Profile { mappings: Some(&del), ..Profile::default() });
    ctx.sync(&[]);
    ctx.sql(&["DELETE FROM items WHERE id = 1", "UPDATE items SET title = 'changed' WHERE id = 2"]);
    let before = ctx.hashes("items", "id").await;
    const WRITES: [&str; 7] =
        ["BatchWriteItem", "PutItem", "DeleteItem", "UpdateItem", "CreateTable", "DeleteTable", "UpdateTable"];
    let sent = |ctx: &Ctx| -> Vec<String> {
        WRITES.iter().filter(|op| !ctx.proxy.exchanges(op).is_empty()).map(|op| op.to_string()).collect()
    };

    ctx.proxy.clear();
    let dry = ctx.ddbsync(&["--json", "sync", "local", "--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", dry.stderr());
    let report: serde_json::Value = serde_json::from_str(&dry.stdout()).unwrap();
    let table = ctx.table("items");
    assert_eq!((figure(&report, &table, "updated"), figure(&report, &table, "deleted")), (1.0, 1.0), "{report}");
    assert!(!ctx.proxy.exchanges("Scan").is_empty(), "the dry run read the table");
    assert_eq!(sent(&ctx), Vec::<String>::new(), "a dry run sends no write");

    // --clean: the table would be deleted and created again.
    ctx.proxy.clear();
    let clean = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--clean"]);
    assert_eq!(clean.code(), 0, "{}", clean.stderr());
    let report: serde_json::Value = serde_json::from_str(&clean.stdout()).unwrap();
    assert_eq!(figure(&report, &table, "created"), 49.0, "{report}");
    assert_eq!(sent(&ctx), Vec::<String>::new(), "a dry run sends no write");
    assert_eq!(ctx.hashes("items", "id").await, before, "the table is as it was");

    // A table that does not exist would be created.
    ctx.dynamo.delete_table().table_name(&table).send().await.unwrap();
    while ctx.table_exists("items").await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ctx.proxy.clear();
    let new = ctx.ddbsync(&["--json", "sync", "local", "--dry-run"]);
    assert_eq!(new.code(), 0, "{}", new.stderr());
    let report: serde_json::Value = serde_json::from_str(&new.stdout()).unwrap();
    assert_eq!(figure(&report, &table, "created"), 49.0, "{report}");
    assert_eq!(sent(&ctx), Vec::<String>::new(), "a dry run sends no write");
    assert!(!ctx.table_exists("items").await, "no table was created");
}
