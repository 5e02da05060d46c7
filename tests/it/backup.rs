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

use crate::harness::{text, Ctx, Item, Profile};

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
    let mappings = ctx.write_mappings("items.toml", &items_mapping(""));
    ctx.write_profile_with("local", &Profile { mappings: Some(&mappings), ..Profile::default() });
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
    let run = ctx.ddbsync(&["restore", file_arg, "--yes"]);
    ctx.proxy.fail_after(None);
    let stderr = run.stderr();
    assert_eq!(run.code(), 3, "items were not written: {stderr}");
    let held = ctx.scan("lessons").await.len();
    assert!(held > 0 && held < 40, "{held}");
    let (l, t) = (ctx.table("lessons"), ctx.table("topics"));
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
    assert!(run.stderr().contains("--wait-lock"), "{}", run.stderr());
    assert!(run.stderr().contains(&format!("(pid {})", clean.id())), "{}", run.stderr());
    assert!(!refused.exists(), "no archive was written");

    let waited = ctx.envs.path().join("b/waited.tar");
    let run = ctx.ddbsync(&[
        "--json",
        "backup",
        "local",
        "--table",
        "lessons",
        "--wait-lock",
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
