//! Backups and restores under damage, edits and concurrent runs: a restore reads and checks the whole
//! archive (manifest checksum, counts, MD5s, every item's key, the mapping's key) before it deletes
//! anything, says what each table holds when it stops half-way, and a backup never reports a
//! fraction of a table as complete.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use md5::{Digest as _, Md5};
use serde_json::Value;

use crate::harness::{finish, signal, text, Ctx, Item, Profile};

/// Every item of a table as canonical text, sorted by the text of `key`, for comparing whole tables.
async fn snapshot(ctx: &Ctx, table: &str, key: &str) -> Vec<(String, String)> {
    let mut items: Vec<(String, String)> = ctx.scan(table).await.iter().map(|i| (text(&i[key]), canon(i))).collect();
    items.sort();
    items
}

/// An item's attributes in name order, maps at any depth too (a map's own order is random).
fn canon(item: &Item) -> String {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort();
    let fields: Vec<String> = names.iter().map(|n| format!("{n:?}: {}", canon_value(&item[*n]))).collect();
    format!("{{{}}}", fields.join(", "))
}

fn canon_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(map) => canon(map),
        AttributeValue::L(list) => format!("[{}]", list.iter().map(canon_value).collect::<Vec<_>>().join(", ")),
        other => format!("{other:?}"),
    }
}

/// The entries of a tar archive, in order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn write_entries(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, name, &bytes[..]).unwrap();
    }
    builder.into_inner().unwrap().flush().unwrap();
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

fn hex_md5(bytes: &[u8]) -> String {
    Md5::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets a manifest's checksum to what its content calls for, as the README defines it (MD5 of the
/// JSON without `checksum`, keys sorted, no whitespace: `jq -cS 'del(.checksum)'`); a manifest
/// without one (an older format) is left without.
fn reseal(manifest: &mut Value) {
    if manifest.get("checksum").is_none() {
        return;
    }
    let mut bare = manifest.clone();
    bare.as_object_mut().unwrap().remove("checksum");
    // serde_json's map keeps keys sorted, so this is jq's -cS output.
    manifest["checksum"] = Value::String(format!("md5:{}", hex_md5(&serde_json::to_vec(&bare).unwrap())));
}

/// A copy of `original` at `name`, with `edit` applied to its manifest and entries.
fn tampered(
    ctx: &Ctx,
    original: &Path,
    name: &str,
    edit: impl FnOnce(&mut Value, &mut Vec<(String, Vec<u8>)>),
) -> PathBuf {
    let mut all = entries(original);
    assert_eq!(all[0].0, "manifest.json");
    let mut manifest: Value = serde_json::from_slice(&all[0].1).unwrap();
    edit(&mut manifest, &mut all);
    all[0].1 = serde_json::to_vec_pretty(&manifest).unwrap();
    let path = ctx.envs.path().join(format!("b/{name}.tar"));
    write_entries(&path, &all);
    path
}

/// Rewrites the lines of one table's data and makes the manifest agree with them (count, bytes,
/// MD5, checksum), so that only a check of the items themselves can find the edit.
fn forge_lines(manifest: &mut Value, all: &mut [(String, Vec<u8>)], file: &str, edit: impl Fn(&mut Value)) {
    let entry = all.iter_mut().find(|(n, _)| n == file).unwrap();
    let mut lines = Vec::new();
    for line in String::from_utf8(gunzip(&entry.1)).unwrap().lines() {
        let mut value: Value = serde_json::from_str(line).unwrap();
        edit(&mut value);
        lines.extend(serde_json::to_vec(&value).unwrap());
        lines.push(b'\n');
    }
    entry.1 = gzip(&lines);
    let table = manifest["tables"].as_array_mut().unwrap().iter_mut().find(|t| t["file"] == file).unwrap();
    table["md5"] = Value::String(hex_md5(&lines));
    table["bytes"] = lines.len().into();
    reseal(manifest);
}

fn lessons_entry(manifest: &mut Value) -> &mut Value {
    manifest["tables"].as_array_mut().unwrap().iter_mut().find(|t| t["name"] == "lessons").unwrap()
}

#[tokio::test]
async fn a_tampered_archive_is_refused_before_the_live_table_is_touched() {
    let ctx = Ctx::new(40).await;
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/good.tar");
    let run =
        ctx.ddbsync(&["backup", "local", "--table", "lessons", "--table", "topics", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    // The live table moves on after the backup, so a restore that went ahead would show.
    ctx.sql(&["UPDATE lessons SET title = 'after the backup'"]);
    ctx.sync(&[]);
    let live = snapshot(&ctx, "lessons", "lesson_id").await;
    assert_eq!(live.len(), 40);

    type Edit = Box<dyn FnOnce(&mut Value, &mut Vec<(String, Vec<u8>)>)>;
    let cases: Vec<(&str, Edit, &str, &str)> = vec![
        (
            "count",
            Box::new(|m, _| lessons_entry(m)["items"] = 41.into()),
            "manifest.json was changed after the backup was written",
            "cannot be trusted",
        ),
        (
            "key-schema",
            Box::new(|m, _| lessons_entry(m)["key_schema"][0][1] = "S".into()),
            "manifest.json was changed after the backup was written",
            "cannot be trusted",
        ),
        (
            "table-added",
            Box::new(|m, all| {
                let mut extra = lessons_entry(m).clone();
                extra["name"] = "passages".into();
                extra["table"] = "passages".into();
                extra["file"] = "passages.json.gz".into();
                m["tables"].as_array_mut().unwrap().push(extra);
                let lessons = all.iter().find(|(n, _)| n == "lessons.json.gz").unwrap().1.clone();
                all.push(("passages.json.gz".into(), lessons));
            }),
            "manifest.json was changed after the backup was written",
            "cannot be trusted",
        ),
        (
            "key-removed",
            Box::new(|m, all| {
                forge_lines(m, all, "lessons.json.gz", |line| {
                    if line["Item"]["lesson_id"]["N"] == "7" {
                        line["Item"].as_object_mut().unwrap().remove("lesson_id");
                    }
                })
            }),
            "lessons.json.gz: line ",
            "lacks key attribute \"lesson_id\" (the manifest's key is lesson_id N); the backup is damaged or was edited",
        ),
        (
            "key-type",
            Box::new(|m, all| {
                forge_lines(m, all, "lessons.json.gz", |line| {
                    if line["Item"]["lesson_id"]["N"] == "7" {
                        line["Item"]["lesson_id"] = serde_json::json!({ "S": "7" });
                    }
                })
            }),
            "lessons.json.gz: line ",
            "item lesson_id=\"7\" has key attribute \"lesson_id\" of type S, but the manifest's key is lesson_id N",
        ),
        (
            "truncated",
            Box::new(|_, all| {
                let data = &mut all.iter_mut().find(|(n, _)| n == "lessons.json.gz").unwrap().1;
                data.truncate(data.len() / 2);
            }),
            "lessons.json.gz: ",
            "the backup is damaged",
        ),
        (
            "not-gzip",
            Box::new(|_, all| {
                let data = &mut all.iter_mut().find(|(n, _)| n == "lessons.json.gz").unwrap().1;
                *data = gunzip(data);
            }),
            "lessons.json.gz: invalid gzip header",
            "the backup is damaged",
        ),
        (
            "extra-table",
            Box::new(|_, all| {
                let lessons = all.iter().find(|(n, _)| n == "lessons.json.gz").unwrap().1.clone();
                all.push(("extra.json.gz".into(), lessons));
            }),
            "extra.json.gz is not in the manifest",
            "the backup was edited",
        ),
    ];
    for (name, edit, entry, words) in cases {
        let path = tampered(&ctx, &file, name, edit);
        let run = ctx.ddbsync(&["restore", path.to_str().unwrap(), "--yes"]);
        let stderr = run.stderr();
        assert_eq!(run.code(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.tar: {entry}")),
            "{name}: the archive and the entry are named: {stderr}"
        );
        assert!(stderr.contains(words), "{name}: {stderr}");
        assert!(!stderr.contains("deleting"), "{name}: {stderr}");
        assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, live, "{name}: the live table is untouched");
    }

    // An archive in the format before manifest checksums is read only when asked to.
    let old = tampered(&ctx, &file, "unchecked", |m, _| {
        m["format"] = "ddbsync-backup/1".into();
        m.as_object_mut().unwrap().remove("checksum");
    });
    let run = ctx.ddbsync(&["restore", old.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("unchecked.tar: manifest.json has format ddbsync-backup/1"), "{}", run.stderr());
    assert!(run.stderr().contains("run again with --allow-unchecked-manifest"), "{}", run.stderr());
    assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, live);
    let run = ctx.ddbsync(&["restore", old.to_str().unwrap(), "--yes", "--allow-unchecked-manifest"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("its manifest has no checksum"), "{}", run.stderr());
    let titles: Vec<String> = ctx.scan("lessons").await.iter().map(|i| text(&i["title"])).collect();
    assert_eq!(titles.len(), 40);
    assert!(titles.iter().all(|t| t != "after the backup"), "the backup's items are back");
}

/// `items` keyed by `id`, a number or (with `::text`) a string.
fn items_mapping(cast: &str) -> String {
    format!("[tables.items]\npartition_key = \"id\"\nquery = \"SELECT id{cast} AS id, title FROM items\"\n")
}

#[tokio::test]
async fn a_backup_whose_key_is_not_the_mappings_is_refused_unless_allowed() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 30) g"]);
    let mappings = ctx.use_mappings("items.toml", &items_mapping(""));
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/items.tar");
    let run = ctx.ddbsync(&["backup", "local", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let live = snapshot(&ctx, "items", "id").await;
    assert_eq!(live.len(), 30);

    // The mapping now keys the table by a string: the backup's numeric key is not its key.
    ctx.write_mappings("items.toml", &items_mapping("::text"));
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes"]);
    let stderr = run.stderr();
    assert_eq!(run.code(), 2, "{stderr}");
    let table = ctx.table("items");
    assert!(
        stderr.contains(&format!(
            "items.tar: table \"items\" ({table}) in the backup has key (id N) but {} gives (id S)",
            mappings.display()
        )),
        "the table and both keys are named: {stderr}"
    );
    assert!(stderr.contains("run again with --allow-key-change"), "{stderr}");
    assert!(stderr.contains("Nothing was changed"), "{stderr}");
    assert_eq!(snapshot(&ctx, "items", "id").await, live, "the live table is untouched");

    // Without PostgreSQL the key's attribute names are still compared, and the user is told so.
    let renamed = ctx
        .write_mappings("renamed.toml", &items_mapping("").replace("\"id\"", "\"code\"").replace("AS id", "AS code"));
    let unreachable = "host = \"127.0.0.2\"\nuser = \"postgres\"\nsslmode = \"disable\"";
    ctx.write_profile_with(
        "nopg",
        &Profile { mappings: Some(&renamed), source: Some(unreachable), ..Profile::default() },
    );
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--env", "nopg", "--yes"]);
    let stderr = run.stderr();
    assert_eq!(run.code(), 2, "{stderr}");
    assert!(
        stderr.contains("compared with the key attribute names the mappings give, not with their types"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("has key attributes (id) but {} gives (code)", renamed.display())), "{stderr}");
    assert_eq!(snapshot(&ctx, "items", "id").await, live, "the live table is untouched");

    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes", "--allow-key-change"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("--allow-key-change: restoring with the backup's keys"), "{}", run.stderr());
    assert_eq!(snapshot(&ctx, "items", "id").await, live, "restored with the backup's key");
}

#[tokio::test]
async fn a_restore_stopped_half_way_says_what_each_table_holds_and_running_it_again_finishes() {
    let ctx = Ctx::new(40).await;
    ctx.write_profile("local", "max_attempts = 2");
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/half.tar");
    let file_arg = file.to_str().unwrap();
    let run = ctx.ddbsync(&["backup", "local", "--table", "lessons", "--table", "topics", "-o", file_arg]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lessons = snapshot(&ctx, "lessons", "lesson_id").await;
    let topics = snapshot(&ctx, "topics", "topic").await;
    assert_eq!(lessons.len(), 40);

    // The first batch of lessons is written; every later write fails, after the table was recreated.
    ctx.proxy.fail_after(Some(("BatchWriteItem", 1)));
    let run = ctx.ddbsync(&["--json", "restore", file_arg, "--yes"]);
    ctx.proxy.fail_after(None);
    let stderr = run.stderr();
    assert_eq!(run.code(), 3, "items were not written: {stderr}");
    let held = ctx.scan("lessons").await.len();
    assert!(held > 0 && held < 40, "{held}");
    let (l, t) = (ctx.table("lessons"), ctx.table("topics"));
    // The JSON says how the restore ended and lists every table of the archive, the one not
    // reached too, each with its state.
    let report: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()));
    assert_eq!(
        (report["outcome"]["status"].as_str(), report["outcome"]["exit_code"].as_u64()),
        (Some("completed"), Some(3))
    );
    let states: Vec<(&str, &str, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["table"].as_str().unwrap(), t["state"].as_str().unwrap(), t["written"].as_u64().unwrap()))
        .collect();
    assert_eq!(states, [(l.as_str(), "partly written", held as u64), (t.as_str(), "not reached", 0)], "{report}");
    let lessons_report = &report["tables"][0];
    assert_eq!(
        lessons_report["not_written"].as_u64().unwrap() + lessons_report["unknown"].as_u64().unwrap(),
        40 - held as u64,
        "{report}"
    );
    // The table not reached holds what it held: nothing of it is counted as not written, as in
    // the run record.
    assert_eq!(report["tables"][1]["not_written"], 0, "{report}");
    let expected = format!(
        "the restore is incomplete: {l} was deleted and recreated; {held} of 40 items written; {t} was not touched; \
         run `ddbsync restore {file_arg} --table lessons --table topics --yes` again to finish"
    );
    assert!(stderr.contains(&expected), "what each table holds, as the server says: {stderr}");
    assert_eq!(snapshot(&ctx, "topics", "topic").await, topics, "the next table was not deleted");

    let run = ctx.ddbsync(&["restore", file_arg, "--table", "lessons", "--table", "topics", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, lessons);
    assert_eq!(snapshot(&ctx, "topics", "topic").await, topics);
}

/// How many items a table holds now; `None` while it cannot be read (deleted, being created).
async fn count(ctx: &Ctx, name: &str) -> Option<usize> {
    let (mut total, mut start) = (0, None);
    loop {
        let scan = ctx.dynamo.scan().table_name(ctx.table(name)).select(aws_sdk_dynamodb::types::Select::Count);
        let out = scan.set_exclusive_start_key(start).send().await.ok()?;
        total += out.count as usize;
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return Some(total);
        }
    }
}

/// Items of one table in an archive, counted from its data (not from its manifest).
fn lines_in(path: &Path, entry: &str) -> usize {
    let data = entries(path).into_iter().find(|(n, _)| n == entry).unwrap().1;
    String::from_utf8(gunzip(&data)).unwrap().lines().count()
}

#[tokio::test]
async fn a_backup_during_a_clean_sync_waits_or_refuses_and_never_holds_a_fraction() {
    let ctx = Ctx::new(200).await;
    ctx.sync(&[]);
    let source: usize = ctx.query("SELECT count(*) FROM lessons")[0].parse().unwrap();
    let mut clean = ctx
        .command(&["sync", "local", "--clean", "--yes", "--max-write-units-per-second", "100"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the clean has recreated lessons and written part of it.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the clean never got to writing lessons");
        if let Some(held) = count(&ctx, "lessons").await {
            if held > 0 && held < source {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let refused = ctx.envs.path().join("b/refused.tar");
    let run = ctx.ddbsync(&["backup", "local", "--table", "lessons", "-o", refused.to_str().unwrap()]);
    assert_eq!(run.code(), 4, "a backup during a --clean is refused: {}", run.stderr());
    assert!(run.stderr().contains("not backing up local while another run writes to it"), "{}", run.stderr());
    assert!(run.stderr().contains("--lock-timeout"), "{}", run.stderr());
    assert!(run.stderr().contains(&format!("(pid {})", clean.id())), "{}", run.stderr());
    assert!(!refused.exists(), "no archive was written");

    let waited = ctx.envs.path().join("b/waited.tar");
    let run = ctx.ddbsync(&[
        "--json",
        "backup",
        "local",
        "--table",
        "lessons",
        "--lock-timeout",
        "3m",
        "-o",
        waited.to_str().unwrap(),
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(clean.wait().unwrap().success(), "the clean finished first");
    let out: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(out["manifest"]["tables"][0]["items"], source as u64);
    assert_eq!(lines_in(&waited, "lessons.json.gz"), source, "every item of the table, none missing");
}

/// An item edited in the data, with the manifest made to agree (counts, MD5s, checksum), is one
/// DynamoDB would refuse: the restore finds it before it deletes anything, names it, and exits 1.
#[tokio::test]
async fn an_archive_holding_an_item_dynamodb_refuses_is_refused_before_anything_is_deleted() {
    let ctx = Ctx::new(40).await;
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/items.tar");
    let run =
        ctx.ddbsync(&["backup", "local", "--table", "lessons", "--table", "topics", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    ctx.sql(&["UPDATE lessons SET title = 'after the backup'"]);
    ctx.sync(&[]);
    let (lessons, topics) = (snapshot(&ctx, "lessons", "lesson_id").await, snapshot(&ctx, "topics", "category").await);
    let long = "x".repeat(420 * 1024);
    let key = "k".repeat(3000);

    // (case, table file, edit of one item, what the message says)
    type Edit = Box<dyn Fn(&mut Value)>;
    let set = |attribute: &'static str, value: Value| -> Edit {
        Box::new(move |item: &mut Value| item[attribute] = value.clone())
    };
    let cases: Vec<(&str, &str, Edit, String)> = vec![
        ("nan", "lessons.json.gz", set("title", serde_json::json!({"N": "abc"})), "\"abc\" is not a number".into()),
        (
            "huge",
            "lessons.json.gz",
            set("level", serde_json::json!({"N": "1e200"})),
            "outside DynamoDB's number range".into(),
        ),
        ("empty-set", "lessons.json.gz", set("tags", serde_json::json!({"SS": []})), "holds an empty set".into()),
        (
            "empty-name",
            "lessons.json.gz",
            set("metadata", serde_json::json!({"M": {"": {"S": "v"}}})),
            "holds a map with an empty key".into(),
        ),
        (
            "too-big",
            "lessons.json.gz",
            set("summary", serde_json::json!({ "S": long })),
            "KB, over DynamoDB's 400 KB limit".into(),
        ),
        (
            "long-key",
            "topics.json.gz",
            set("category", serde_json::json!({ "S": key })),
            "the partition key, is 3000 bytes, over DynamoDB's limit of 2048".into(),
        ),
        ("empty-key", "topics.json.gz", set("topic", serde_json::json!({"S": ""})), "the sort key, is empty".into()),
    ];
    for (name, table, edit, words) in cases {
        let path = tampered(&ctx, &file, name, |m, all| {
            let first = std::cell::Cell::new(true);
            // Only the first item of the table is edited.
            forge_lines(m, all, table, |line| {
                if first.replace(false) {
                    edit(&mut line["Item"]);
                }
            })
        });
        let run = ctx.ddbsync(&["restore", path.to_str().unwrap(), "--yes"]);
        let stderr = run.stderr();
        assert_eq!(run.code(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("{name}.tar: {table}: line 1: item ")),
            "{name}: archive, table, line: {stderr}"
        );
        assert!(stderr.contains(&words), "{name}: {stderr}");
        assert!(stderr.contains("the backup is damaged or was edited"), "{name}: {stderr}");
        assert!(!stderr.contains("deleting") && !stderr.contains("again to finish"), "{name}: {stderr}");
        assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, lessons, "{name}: lessons untouched");
        assert_eq!(snapshot(&ctx, "topics", "category").await, topics, "{name}: topics untouched");
    }

    // The same item twice: 41 lines for 40 keys would be "41 items restored".
    let twice = tampered(&ctx, &file, "twice", |m, all| {
        let entry = all.iter_mut().find(|(n, _)| n == "lessons.json.gz").unwrap();
        let mut lines = gunzip(&entry.1);
        let first = lines.split(|b| *b == b'\n').next().unwrap().to_vec();
        lines.extend(&first);
        lines.push(b'\n');
        entry.1 = gzip(&lines);
        let table = lessons_entry(m);
        table["md5"] = Value::String(hex_md5(&lines));
        table["bytes"] = lines.len().into();
        table["items"] = 41.into();
        reseal(m);
    });
    let run = ctx.ddbsync(&["restore", twice.to_str().unwrap(), "--yes"]);
    let stderr = run.stderr();
    assert_eq!(run.code(), 1, "{stderr}");
    assert!(stderr.contains("twice.tar: lessons.json.gz: line 41: item lesson_id="), "{stderr}");
    assert!(stderr.contains("is also on line 1: a table holds one item per key"), "{stderr}");
    assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, lessons, "lessons untouched");
}

/// A file that is not a tar, and a backup holding a table the target's mappings do not define.
#[tokio::test]
async fn a_file_that_is_not_a_backup_and_a_missing_mapping_say_what_to_do() {
    let ctx = Ctx::new(5).await;
    let garbage = ctx.envs.path().join("g.tar");
    std::fs::write(&garbage, b"not a tar archive at all").unwrap();
    let run = ctx.ddbsync(&["restore", garbage.to_str().unwrap(), "--yes"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("g.tar is not a ddbsync backup archive (a tar of manifest.json and one <table>.json.gz"),
        "{}",
        run.stderr()
    );

    // A path that names nothing is the user's slip (exit 2), said with what to give.
    let run = ctx.ddbsync(&["restore", ctx.envs.path().join("nothere.tar").to_str().unwrap(), "--yes"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("nothere.tar: no such file; give the path of a file that ddbsync backup wrote"));

    // A wait the clock cannot add is refused, naming the flag and its range.
    let run = ctx.ddbsync(&["backup", "local", "--lock-timeout", "18446744073709551615s"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("--lock-timeout"), "{}", run.stderr());
    assert!(run.stderr().contains("(from 0s to 7d)"), "{}", run.stderr());

    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/orig.tar");
    let run =
        ctx.ddbsync(&["backup", "local", "--table", "lessons", "--table", "topics", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let only_lessons = ctx.write_mappings(
        "nk.toml",
        "[tables.lessons]\npartition_key = \"lesson_id\"\nquery = \"SELECT id AS lesson_id, title FROM lessons\"\n",
    );
    ctx.write_profile_with("nk", &Profile { mappings: Some(&only_lessons), ..Profile::default() });
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--env", "nk", "--yes"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("the backup holds table \"topics\", which the mappings do not define"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("restore only the tables they define with --table lessons"), "{}", run.stderr());
}

#[tokio::test]
async fn a_restore_stopped_by_sigterm_says_what_each_table_holds_and_releases_the_lock() {
    let ctx = Ctx::new(200).await;
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/term.tar");
    let file_arg = file.to_str().unwrap();
    let run = ctx.ddbsync(&["backup", "local", "--table", "lessons", "-o", file_arg]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let lessons = snapshot(&ctx, "lessons", "lesson_id").await;
    assert_eq!(lessons.len(), 200);

    // 20 items a second: the restore is half-way for seconds.
    ctx.write_profile("local", "max_write_units_per_second = 20");
    let mut restore = ctx.command(&["--json", "restore", file_arg, "--yes"]);
    let child = restore.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "the restore never got to writing lessons");
        if count(&ctx, "lessons").await.is_some_and(|held| held > 0 && held < 100) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal(&child, "TERM");
    let (code, stdout, stderr, _) = finish(child, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 5, "{stderr}");
    let held = ctx.scan("lessons").await.len();
    assert!(held > 0 && held < 200, "{held}");
    // With --json, the report of what was restored comes all the same, as the server holds it.
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout:?}\n{stderr}"));
    assert_eq!(report["outcome"]["status"], "interrupted", "{report}");
    assert_eq!(report["outcome"]["exit_code"], 5, "{report}");
    assert!(report["outcome"]["reason"].as_str().is_some_and(|r| r.contains("SIGTERM")), "{report}");
    let tables = report["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 1, "every table of the archive: {report}");
    assert_eq!(tables[0]["table"], ctx.table("lessons"), "{report}");
    assert_eq!(tables[0]["state"], "partly written", "{report}");
    assert_eq!(
        (tables[0]["written"].as_u64(), tables[0]["items"].as_u64()),
        (Some(held as u64), Some(200)),
        "{report}"
    );
    assert!(report["unfinished"].as_str().is_some_and(|u| u.contains("--table lessons --yes")), "{report}");
    // Every item the table lacks is not written (or of unknown outcome), those never sent too.
    assert_eq!(
        tables[0]["not_written"].as_u64().unwrap() + tables[0]["unknown"].as_u64().unwrap(),
        200 - held as u64,
        "{report}"
    );
    // The recorded reason, like the message, gives the restore's own command.
    let reason = report["outcome"]["reason"].as_str().unwrap();
    assert!(reason.contains("--table lessons --yes") && !reason.contains("next run"), "{reason}");
    // The message gives the restore's own command and nothing that sends a person to a sync.
    assert!(!stderr.contains("next run"), "{stderr}");
    let l = ctx.table("lessons");
    assert!(
        stderr.contains(&format!(
            "the restore is incomplete: {l} was deleted and recreated; {held} of 200 items written; run `ddbsync \
             restore {file_arg} --table lessons --yes` again to finish"
        )),
        "what the table holds, as the server says: {stderr}"
    );
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(ctx.leases().await.is_empty(), "the lock was released");

    ctx.write_profile("local", "");
    let run = ctx.ddbsync(&["restore", file_arg, "--table", "lessons", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(count(&ctx, "lessons").await, Some(200));
    assert_eq!(snapshot(&ctx, "lessons", "lesson_id").await, lessons);
}

#[tokio::test]
async fn a_backup_stopped_by_sigterm_leaves_no_file_and_releases_the_lock() {
    let ctx = Ctx::new(40).await;
    ctx.sync(&[]);
    let dir = ctx.envs.path().join("b/term");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("term.tar");
    let args = ["backup", "local", "--table", "lessons", "--table", "topics", "-o", out.to_str().unwrap()];
    let mut backup = ctx.command(&args);
    let child = backup.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.leases().await.is_empty() {
        assert!(Instant::now() < deadline, "the backup never took the lock");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // DynamoDB stops answering while the tables are read: the backup waits, mid-way.
    ctx.proxy.set_stalled(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    ctx.proxy.set_stalled(false);
    let (code, _, stderr, _) = finish(child, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 5, "{stderr}");
    assert!(stderr.contains("no backup was written"), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "no archive and no temporary file: {left:?}");
    assert!(ctx.leases().await.is_empty(), "the lock was released");
}

/// DynamoDB refusing an item as invalid stops the restore: running it again would stop at the same
/// item, so the message does not advise it.
#[tokio::test]
async fn a_restore_refused_by_dynamodb_does_not_advise_running_it_again() {
    let ctx = Ctx::new(40).await;
    ctx.sql(&["UPDATE lessons SET title = 'refuse-me' WHERE id = 7"]);
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/refused.tar");
    let run = ctx.ddbsync(&["backup", "local", "--table", "lessons", "-o", file.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    ctx.proxy.refuse_batches_holding(Some("refuse-me"));
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes"]);
    ctx.proxy.refuse_batches_holding(None);
    let stderr = run.stderr();
    assert_eq!(run.code(), 3, "{stderr}");
    assert_eq!(ctx.scan("lessons").await.len(), 39, "every other item was written");
    assert!(stderr.contains("DynamoDB refused item lesson_id=7 as invalid"), "{stderr}");
    assert!(stderr.contains("`ddbsync sync local --clean`"), "{stderr}");
    assert!(!stderr.contains("again to finish"), "{stderr}");
}

/// `max_write_units_per_second` bounds a restore as a whole, as it bounds a sync: the tables share
/// one cap, rather than each starting with a fresh one (and its second's burst).
#[tokio::test]
async fn a_restore_of_several_tables_shares_one_write_units_cap() {
    let ctx = Ctx::new(30).await;
    ctx.sync(&[]);
    let file = ctx.envs.path().join("b/capped.tar");
    let file_arg = file.to_str().unwrap();
    let run = ctx.ddbsync(&["backup", "local", "-o", file_arg]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let restore = |tables: &[&str]| {
        let mut args = vec!["--json", "restore", file_arg, "--yes"];
        args.extend(tables.iter().flat_map(|t| ["--table", t]));
        let since = Instant::now();
        let run = ctx.ddbsync(&args);
        let took = since.elapsed();
        assert_eq!(run.code(), 0, "{}", run.stderr());
        let report: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()));
        (took, report)
    };
    let (_, report) = restore(&[]);
    let tables: Vec<(String, u64)> = report["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap().to_string(), t["items"].as_u64().unwrap()))
        .collect();
    assert!(tables.len() == 3, "{report}");

    // A cap no larger than any table's units (an item costs one unit at least). The bucket holds one
    // second's units: each table restored alone starts with a full bucket, and so would each table of
    // one restore with a cap per table; with one cap for the restore, only its first table does, and
    // the others wait a second longer each.
    let cap = tables.iter().map(|(_, n)| *n).min().unwrap();
    ctx.write_profile("local", &format!("max_write_units_per_second = {cap}"));
    let alone: Duration = tables.iter().map(|(name, _)| restore(&[name.as_str()]).0).sum();
    let (together, _) = restore(&[]);
    let bursts = Duration::from_secs(tables.len() as u64 - 1);
    assert!(
        together >= alone + bursts / 2,
        "{tables:?} at {cap} units a second: {together:?} together, {alone:?} one table at a time; one cap would take \
         about {bursts:?} longer together: the tables do not share the cap"
    );
    let mut held = 0;
    for (name, _) in &tables {
        held += count(&ctx, name).await.unwrap_or_else(|| panic!("{name} is not readable"));
    }
    assert_eq!(
        held as u64,
        tables.iter().map(|(_, n)| n).sum::<u64>(),
        "every item restored, as the server holds them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_caps_what_dynamodb_bills_index_entries_included() {
    let ctx = Ctx::new(0).await;
    // 60 one-unit items, each also one unit in the index: 120 units billed.
    let mappings = ctx.use_mappings(
        "idx.toml",
        "[tables.idx]\npartition_key = \"id\"\nquery = \"SELECT g AS id, 'c' AS cat FROM generate_series(1, 60) g\"\n\
         [tables.idx.indexes.ByCat]\npartition_key = \"cat\"\nsort_key = \"id\"\n",
    );
    assert_eq!(ctx.ddbsync(&["sync", "local"]).code(), 0);
    let file = ctx.envs.path().join("b/idx.tar");
    let file_arg = file.to_str().unwrap();
    assert_eq!(ctx.ddbsync(&["backup", "local", "-o", file_arg]).code(), 0);
    let cap = 20;
    ctx.write_profile_with(
        "local",
        &crate::harness::Profile {
            mappings: Some(&mappings),
            sync: &format!("max_write_units_per_second = {cap}"),
            ..Default::default()
        },
    );
    let since = Instant::now();
    let run = ctx.ddbsync(&["--json", "restore", file_arg, "--yes"]);
    let took = since.elapsed();
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(report["tables"][0]["written"], 60, "{report}");
    // What DynamoDB bills: each item under 1 KB is one unit, and its index entry (projection all,
    // under 1 KB) one more. (dynoxide reports these 120; dynalite leaves index units out.)
    let billed = 120.0;
    // A second's burst, then the cap: counting the items alone would take half as long.
    let floor = Duration::from_secs_f64((billed - cap as f64) / cap as f64 * 0.8);
    assert!(took >= floor, "{billed} units at {cap} a second took {took:?}, under {floor:?}: the cap did not hold");
    assert_eq!(count(&ctx, "idx").await, Some(60));
}
