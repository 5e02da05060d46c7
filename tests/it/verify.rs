//! `verify` of small tables (read whole, whatever the sample) and `verify --repair`: what it writes
//! and deletes, read back through the server; its question, guards, lock, signal and run record.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{figure, finish, signal, text, Ctx, Profile, Run};

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()))
}

/// `items`, fed by a table the test edits, deleting extras or not.
fn items_mapping(delete: bool) -> String {
    format!(
        "[tables.items]\npartition_key = \"id\"\ndelete_missing = {delete}\nquery = \"SELECT id, title FROM items\"\n"
    )
}

/// A world with `items` (ids 1 to `n`, title `title <id>` padded to `width` characters) synced,
/// profile `local` deleting extras and `keep` not.
async fn items(n: u32, width: usize) -> Ctx {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[&format!(
        "CREATE TABLE items AS SELECT g AS id, rpad('title ' || g, {width}, '.') AS title FROM generate_series(1, {n}) g"
    )]);
    let del = ctx.write_mappings("delete.toml", &items_mapping(true));
    let keep = ctx.write_mappings("keep.toml", &items_mapping(false));
    ctx.write_profile_with("local", &Profile { mappings: Some(&del), ..Profile::default() });
    ctx.write_profile_with("keep", &Profile { mappings: Some(&keep), ..Profile::default() });
    ctx.sync(&[]);
    ctx
}

/// What DynamoDB holds, read back through the server: id → title.
async fn stored(ctx: &Ctx) -> BTreeMap<u32, String> {
    let items = ctx.scan("items").await;
    items.iter().map(|i| (text(&i["id"]).parse().unwrap(), text(&i["title"]))).collect()
}

/// What the source gives: id → title.
fn source(ctx: &Ctx) -> BTreeMap<u32, String> {
    ctx.query("SELECT id || '|' || title FROM items")
        .iter()
        .map(|line| {
            let (id, title) = line.split_once('|').unwrap();
            (id.parse().unwrap(), title.to_string())
        })
        .collect()
}

/// Puts an item straight into DynamoDB, as someone other than ddbsync would.
async fn put(ctx: &Ctx, item: std::collections::HashMap<String, AttributeValue>) {
    ctx.dynamo.put_item().table_name(ctx.table("items")).set_item(Some(item)).send().await.unwrap();
}

/// The stored item with this id.
async fn item(ctx: &Ctx, id: u32) -> std::collections::HashMap<String, AttributeValue> {
    ctx.scan("items").await.into_iter().find(|i| text(&i["id"]) == id.to_string()).expect("the item")
}

/// Edits DynamoDB and the source behind ddbsync's back: item 7 edited in place (its stored hash
/// kept, so a sync does not see it), item 8 deleted, item 999 added, and row 9 changed in the source.
async fn break_items(ctx: &Ctx) {
    let mut seven = item(ctx, 7).await;
    seven.insert("title".into(), AttributeValue::S("Edited by hand".into()));
    let mut extra = seven.clone();
    extra.insert("id".into(), AttributeValue::N("999".into()));
    put(ctx, seven).await;
    put(ctx, extra).await;
    ctx.dynamo
        .delete_item()
        .table_name(ctx.table("items"))
        .key("id", AttributeValue::N("8".into()))
        .send()
        .await
        .unwrap();
    ctx.sql(&["UPDATE items SET title = 'New title' WHERE id = 9"]);
}

/// The run records in the metadata table (read through the server), oldest first.
async fn records(ctx: &Ctx) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    let out = ctx
        .dynamo
        .query()
        .table_name(ctx.table("cache-metadata"))
        .key_condition_expression("pk = :run")
        .expression_attribute_values(":run", AttributeValue::S("RUN".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.items.unwrap_or_default()
}

#[tokio::test]
async fn a_sample_no_smaller_than_the_table_reads_it_whole_and_finds_a_stray_item() {
    let ctx = Ctx::new(20).await;
    ctx.sync(&[]);
    let lessons = ctx.table("lessons");
    let mut stray = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == "7").unwrap();
    stray.insert("lesson_id".into(), AttributeValue::N("999".into()));
    ctx.dynamo.put_item().table_name(&lessons).set_item(Some(stray)).send().await.unwrap();

    for sample in ["1000", "20"] {
        let run = ctx.ddbsync(&["--json", "verify", "local", "--sample", sample, "--table", "lessons"]);
        assert_eq!(run.code(), 3, "--sample {sample}: {}", run.stderr());
        let found = json(&run);
        let t = &found["tables"][0];
        assert_eq!(t["extra"]["keys"][0]["key"], "lesson_id=999", "--sample {sample}: {found}");
        assert_eq!(t["extra"]["count"], 1, "{found}");
        assert_eq!(t["read_whole"], true, "{found}");
        assert_eq!((figure(&found, &lessons, "target_items"), t["target_items_exact"].as_bool()), (21.0, Some(true)));
        assert_eq!(figure(&found, &lessons, "source_items"), 20.0);
        assert_eq!(t["counts_differ"], true, "{found}");
    }
    let out = ctx.ddbsync(&["verify", "local", "--table", "lessons"]).stdout();
    assert!(out.contains(&format!("{lessons}: the source gives 20 items and DynamoDB holds 21.")), "{out}");
    assert!(out.contains("`ddbsync verify local --table lessons --repair` writes the missing"), "{out}");
    assert!(!out.contains("Sampled:"), "the table was read whole: {out}");
    assert!(!out.contains("<name>"), "{out}");
}

#[tokio::test]
async fn repair_writes_what_is_missing_or_differs_deletes_extras_and_leaves_nothing_for_a_sync() {
    let ctx = items(50, 20).await;
    let table = ctx.table("items");
    break_items(&ctx).await;
    let before = stored(&ctx).await;

    // No terminal and no --yes: refused before anything is read, nothing written.
    let run = ctx.ddbsync(&["verify", "local", "--repair"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr()
            .contains(&format!("verify --repair writes to {table}; there is no terminal to confirm on, so add --yes")),
        "{}",
        run.stderr()
    );
    assert!(run.stdout().is_empty(), "{}", run.stdout());
    // A protected environment needs --yes, terminal or not.
    let mappings = ctx.envs.path().join("mappings/delete.toml");
    ctx.write_profile_with(
        "prot",
        &Profile { top: "protected = true", mappings: Some(&mappings), ..Profile::default() },
    );
    let run = ctx.ddbsync(&["verify", "prot", "--repair"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains(&format!("prot is protected: verify --repair writes to {table} only with --yes")));
    assert_eq!(stored(&ctx).await, before, "nothing written");

    // The verify names the fix with the real table.
    let out = ctx.ddbsync(&["verify", "local", "--full"]).stdout();
    assert!(out.contains("hash still matches the source; a repair does.\n"), "{out}");
    assert!(out.contains("`ddbsync verify local --table items --repair` writes the missing and differing"), "{out}");

    // A dry run says what it would do and writes nothing.
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--dry-run"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let dry = json(&run);
    let r = &dry["repair"]["tables"][0];
    assert_eq!(dry["repair"]["dry_run"], true);
    assert_eq!((r["missing"].as_u64(), r["differing"].as_u64(), r["extra"].as_u64()), (Some(1), Some(2), Some(1)));
    assert_eq!((r["created"].as_u64(), r["updated"].as_u64(), r["deleted"].as_u64()), (Some(1), Some(2), Some(1)));
    assert_eq!(r["deleted_keys"][0], "id=999");
    assert_eq!(dry["tables"][0]["differing"]["count"], 2, "the verify's report is there too: {dry}");
    assert_eq!(stored(&ctx).await, before, "a dry run writes nothing");
    assert!(ctx.leases().await.is_empty(), "a dry run takes no lock");
    let runs_before = records(&ctx).await.len();

    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let done = json(&run);
    let r = &done["repair"]["tables"][0];
    assert_eq!(
        (r["created"].as_u64(), r["updated"].as_u64(), r["deleted"].as_u64()),
        (Some(1), Some(2), Some(1)),
        "{done}"
    );
    assert_eq!(r["failed"].as_array().unwrap().len(), 0);
    assert!(r["write_units"].as_f64().unwrap() > 0.0, "DynamoDB's units: {done}");
    assert!(done["repair"]["cost_usd"].as_f64().unwrap() > 0.0, "{done}");
    assert_eq!(done["repair"]["outcome"]["status"], "completed");
    assert!(done["repair"]["sampled"].as_array().unwrap().is_empty());

    // The oracle: DynamoDB, read back through the server, holds exactly the source; item 7 got its
    // content back although its stored hash had never changed.
    assert_eq!(stored(&ctx).await, source(&ctx));
    assert_eq!(text(&item(&ctx, 7).await["title"]), source(&ctx)[&7]);
    assert!(ctx.leases().await.is_empty(), "the lock was released");

    // Recorded as a repair, with its figures.
    let records = records(&ctx).await;
    assert_eq!(records.len(), runs_before + 1);
    let last = records.last().unwrap();
    assert_eq!(text(&last["mode"]), "repair");
    assert_eq!(
        (text(&last["created"]), text(&last["updated"]), text(&last["deleted"])),
        ("1".into(), "2".into(), "1".into())
    );
    assert_eq!(text(&last["outcome"]), "completed");

    // After it, a verify finds nothing and a sync writes nothing.
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let report = ctx.sync(&[]);
    let total = &report["total"];
    assert_eq!(
        (total["created"].as_u64(), total["updated"].as_u64(), total["deleted"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(total["unchanged"], 50);

    // Nothing to repair: no question, no lock, no record.
    let run = ctx.ddbsync(&["verify", "local", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains("No differences"), "{}", run.stdout());
}

#[tokio::test]
async fn repair_keeps_extras_without_delete_missing_or_past_the_guard() {
    let ctx = items(50, 20).await;
    let table = ctx.table("items");
    break_items(&ctx).await;
    // Without delete_missing the extra stays, is said to stay, and the repair exits 3.
    let run = ctx.ddbsync(&["verify", "keep", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "{}\n{}", run.stdout(), run.stderr());
    let out = run.stdout();
    assert!(
        out.contains(&format!(
            "{table}: 1 extra items kept: left in place: the mapping items does not set delete_missing"
        )),
        "{out}"
    );
    let now = stored(&ctx).await;
    assert_eq!(now.get(&999).map(String::as_str), Some("Edited by hand"), "the extra was kept");
    let mut expected = source(&ctx);
    expected.insert(999, now[&999].clone());
    assert_eq!(now, expected, "the rest was repaired");
    // Then only the extra is left, which a repair may not delete: it says so, and takes no lock.
    let run = ctx.ddbsync(&["verify", "keep", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!(
            "verify --repair: nothing a repair can do: the extra items of {table} stay: its mapping does not set \
             delete_missing"
        )),
        "{}",
        run.stderr()
    );

    // Ten more extras: 11 of 61 items is over the 10% guard.
    for id in 1000..1010 {
        let mut extra = item(&ctx, 1).await;
        extra.insert("id".into(), AttributeValue::N(id.to_string()));
        put(&ctx, extra).await;
    }
    let run = ctx.ddbsync(&["--json", "verify", "local", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let r = &json(&run)["repair"]["tables"][0];
    assert_eq!(r["kept"], 11, "{r}");
    assert!(r["kept_reason"].as_str().unwrap().contains("over the 10% guard"), "{r}");
    assert!(r["kept_reason"].as_str().unwrap().contains("--allow-mass-delete"), "{r}");
    assert_eq!(stored(&ctx).await.len(), 61, "nothing deleted");

    let run = ctx.ddbsync(&["verify", "local", "--repair", "--yes", "--allow-mass-delete"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    assert!(run.stdout().contains(&format!("{table}: 11 items deleted (no source row):")), "{}", run.stdout());
    assert_eq!(stored(&ctx).await, source(&ctx));
}

#[tokio::test]
async fn repair_keeps_a_rejected_rows_item() {
    let ctx = items(20, 10).await;
    // Row 5's title becomes too large for an item: the row is rejected, its stored item kept
    // (stale), as a sync keeps it; the extra item 999 goes.
    ctx.sql(&["UPDATE items SET title = repeat('x', 500000) WHERE id = 5"]);
    let mut extra = item(&ctx, 1).await;
    extra.insert("id".into(), AttributeValue::N("999".into()));
    put(&ctx, extra).await;
    let run = ctx.ddbsync(&["--json", "verify", "local", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "the rejected row is still to be fixed in the source: {}", run.stderr());
    let report = json(&run);
    assert_eq!(report["tables"][0]["rejected"], 1, "{report}");
    assert_eq!(report["tables"][0]["extra"]["count"], 1, "item 5 is not an extra: {report}");
    assert_eq!(report["repair"]["tables"][0]["deleted_keys"], serde_json::json!(["id=999"]));
    let now = stored(&ctx).await;
    assert_eq!(now.len(), 20, "{now:?}");
    assert_eq!(now[&5], "title 5...", "the stale item is kept as it was");
}

#[tokio::test]
async fn a_sampled_repair_repairs_what_the_sample_found_and_says_so() {
    // Items of about 4 KB, 60 of them: a sample of 1 costs less than a whole read.
    let ctx = items(60, 4000).await;
    ctx.sql(&["UPDATE items SET title = title || '!'"]);
    let run = ctx.ddbsync(&["--json", "verify", "local", "--sample", "1", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let done = json(&run);
    assert_eq!(done["tables"][0]["read_whole"], false, "{done}");
    assert_eq!(done["repair"]["sampled"], serde_json::json!([ctx.table("items")]));
    let written = done["repair"]["tables"][0]["updated"].as_u64().unwrap();
    assert!((1..=2).contains(&written), "the key read back, and maybe the item scanned: {done}");
    let source = source(&ctx);
    let now = stored(&ctx).await;
    let fixed = now.iter().filter(|(id, title)| source.get(id) == Some(title)).count();
    assert_eq!(fixed as u64, written, "what the report says was written is what the server holds");

    // Every item differs again, so that whichever item the next sample draws has a difference to
    // repair (a sample of the one or two items repaired above would find none and say nothing).
    ctx.sql(&["UPDATE items SET title = title || '?'"]);
    let run = ctx.ddbsync(&["verify", "local", "--sample", "1", "--repair", "--yes"]);
    assert!(run.stdout().contains("The verify was sampled ("), "{}", run.stdout());
    assert!(run.stdout().contains("`ddbsync verify local --full --repair` finds and repairs every one"));
}

#[tokio::test]
async fn repair_takes_the_run_lock_and_stops_on_sigterm() {
    let ctx = items(300, 20).await;
    ctx.write_profile_with(
        "local",
        &Profile {
            mappings: Some(&ctx.envs.path().join("mappings/delete.toml")),
            sync: "lock_lease_secs = 3",
            ..Profile::default()
        },
    );
    ctx.sql(&["UPDATE items SET title = title || ' (2)'"]);
    // Another run holds the lock: exit 4, nothing written.
    ctx.hold_lease("items", "local", None).await;
    let before = stored(&ctx).await;
    let run = ctx.ddbsync(&["verify", "local", "--repair", "--yes"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("not repairing local while another run writes to it"), "{}", run.stderr());
    assert!(run.stderr().contains("is locked by another run (environment local): batch-7 (pid 4242)"));
    assert_eq!(stored(&ctx).await, before, "nothing written");
    let run = ctx.ddbsync(&["verify", "local", "--repair", "--yes", "--lock-timeout", "1s"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("waiting up to 1s for the run lock: table"), "{}", run.stderr());
    assert!(run.elapsed >= Duration::from_secs(1), "{:?}", run.elapsed);

    // An extra item, which the stopped repair does not get to: not looked for, not refused.
    let mut extra = item(&ctx, 1).await;
    extra.insert("id".into(), AttributeValue::N("999".into()));
    put(&ctx, extra).await;
    // --force-unlock takes it; a low cap keeps batches waiting when SIGTERM comes.
    let mut child = ctx.command(&[
        "--json",
        "verify",
        "local",
        "--repair",
        "--yes",
        "--force-unlock",
        "--max-write-units-per-second",
        "30",
    ]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Until the repair holds its own lease (the forced one waits out the old lease first) and writes.
    let started = Instant::now();
    let wanted = source(&ctx);
    loop {
        let ours = ctx.leases().await.iter().any(|l| l.get("host").map(text).as_deref() != Some("batch-7"));
        let written = stored(&ctx).await.iter().filter(|(id, t)| wanted.get(id) == Some(t)).count();
        if ours && written > 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the repair never started writing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let signalled = started.elapsed();
    signal(&child, "TERM");
    let (code, stdout, stderr, took) = finish(child, Instant::now(), Duration::from_secs(20));
    assert_eq!(code, 5, "signalled after {signalled:?}: {stdout}\n{stderr}");
    assert!(took < Duration::from_secs(12), "stopped after {took:?}: {stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report on stdout");
    assert_eq!(report["repair"]["outcome"]["status"], "interrupted", "{report}");
    assert!(ctx.leases().await.is_empty(), "the lock was released");
    let source = source(&ctx);
    let now = stored(&ctx).await;
    let fixed = now.iter().filter(|(id, title)| source.get(id) == Some(title)).count() as u64;
    assert!(fixed < 300, "SIGTERM came after the repair had finished: the test proves nothing");
    assert_eq!(report["repair"]["tables"][0]["updated"].as_u64(), Some(fixed), "the report says what the server holds");
    let last = records(&ctx).await.pop().unwrap();
    assert_eq!((text(&last["mode"]), text(&last["outcome"])), ("repair".into(), "interrupted".into()));
    assert_eq!(text(&last["exit_code"]), "5");
    // The extras of a repair that did not read the whole source were not looked for: none refused.
    assert_eq!((text(&last["deletes_refused"]), text(&last["orphans"])), ("0".into(), "0".into()));

    // The next repair completes it.
    let run = ctx.ddbsync(&["verify", "local", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(stored(&ctx).await, source);
}

/// An item whose `_ddbsync_hash` was removed or altered in DynamoDB, its content as the source
/// gives it: a sync would rewrite it, so verify calls it differing, and the repair rewrites it.
#[tokio::test]
async fn an_item_whose_stored_hash_was_removed_or_altered_differs_and_is_repaired() {
    let ctx = items(20, 10).await;
    let table = ctx.table("items");
    let key = |id: &str| std::collections::HashMap::from([("id".to_string(), AttributeValue::N(id.into()))]);
    ctx.dynamo
        .update_item()
        .table_name(&table)
        .set_key(Some(key("3")))
        .update_expression("REMOVE #h")
        .expression_attribute_names("#h", "_ddbsync_hash")
        .send()
        .await
        .unwrap();
    let four = item(&ctx, 4).await;
    let hash = text(&four["_ddbsync_hash"]);
    let first = if hash.starts_with('0') { '1' } else { '0' };
    let altered: String = std::iter::once(first).chain(hash.chars().skip(1)).collect();
    ctx.dynamo
        .update_item()
        .table_name(&table)
        .set_key(Some(key("4")))
        .update_expression("SET #h = :h")
        .expression_attribute_names("#h", "_ddbsync_hash")
        .expression_attribute_values(":h", AttributeValue::S(altered))
        .send()
        .await
        .unwrap();
    // What a sync would do: it compares the stored hash, so it would rewrite both.
    let dry = ctx.sync(&["--dry-run"]);
    assert_eq!(dry["total"]["updated"], 2, "{dry}");

    let run = ctx.ddbsync(&["--json", "verify", "local", "--full"]);
    assert_eq!(run.code(), 3, "{}", run.stdout());
    let report = json(&run);
    let differing = &report["tables"][0]["differing"];
    assert_eq!(differing["count"], 2, "{report}");
    for d in differing["keys"].as_array().unwrap() {
        assert!(
            d["reason"].as_str().unwrap().starts_with("not written by ddbsync or edited: its stored hash attribute"),
            "{d}"
        );
    }

    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    assert_eq!(json(&run)["repair"]["tables"][0]["updated"], 2);
    // Read back through the server: both carry the hash a sync writes (that of item 5's kind).
    assert_eq!(text(&item(&ctx, 4).await["_ddbsync_hash"]), hash);
    assert!(item(&ctx, 3).await.contains_key("_ddbsync_hash"));
    let run = ctx.ddbsync(&["verify", "local", "--full"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let report = ctx.sync(&[]);
    let total = &report["total"];
    assert_eq!(
        (total["created"].as_u64(), total["updated"].as_u64(), total["unchanged"].as_u64()),
        (Some(0), Some(0), Some(20))
    );
}

/// A repair's report, run record, `history` and `report` carry the exit code the process exits
/// with; deletes count as refused only when a guard refused them on a mapping that deletes, and
/// deletes DynamoDB did not carry out are items not written.
#[tokio::test]
async fn a_repairs_record_carries_its_exit_code_and_only_refused_deletes() {
    let ctx = items(50, 20).await;
    break_items(&ctx).await;
    // A mapping without delete_missing: the extra is kept, the repair exits 3, nothing refused.
    let run = ctx.ddbsync(&["--json", "verify", "keep", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(report["repair"]["outcome"]["exit_code"], 3, "{report}");
    let last = records(&ctx).await.pop().unwrap();
    assert_eq!((text(&last["exit_code"]), text(&last["deletes_refused"])), ("3".into(), "0".into()));
    let history = serde_json::from_str::<serde_json::Value>(
        &ctx.ddbsync(&["--json", "history", "keep", "--limit", "1"]).stdout(),
    )
    .unwrap()["runs"]
        .take();
    assert_eq!((history[0]["mode"].as_str(), history[0]["outcome"]["exit_code"].as_u64()), (Some("repair"), Some(3)));
    let summary: serde_json::Value =
        serde_json::from_str(&ctx.ddbsync(&["--json", "report", "keep", "--since", "all"]).stdout()).unwrap();
    assert_eq!(summary["repair_runs"], 1);
    assert_eq!(summary["unsuccessful_runs"], 1, "{summary}");
    assert_eq!(summary["total"]["deletes_refused"], 0, "{summary}");
    let text_report = ctx.ddbsync(&["report", "keep", "--since", "all"]).stdout();
    assert!(!text_report.contains("left in place although their mappings delete them"), "{text_report}");

    // A delete DynamoDB refuses: not written, not refused.
    ctx.proxy.refuse_batches_holding(Some("\"999\""));
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--yes"]);
    ctx.proxy.refuse_batches_holding(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let r = &json(&run)["repair"]["tables"][0];
    assert_eq!((r["kept"].as_u64(), r["failed"].as_array().map(Vec::len)), (Some(0), Some(1)), "{r}");
    assert_eq!(stored(&ctx).await.get(&999).map(String::as_str), Some("Edited by hand"), "the server still holds it");
    let last = records(&ctx).await.pop().unwrap();
    assert_eq!(
        (text(&last["exit_code"]), text(&last["deletes_refused"]), text(&last["failed"])),
        ("3".into(), "0".into(), "1".into())
    );

    // Over the guard on a mapping that deletes: refused, and counted so.
    for id in 1000..1010 {
        let mut extra = item(&ctx, 1).await;
        extra.insert("id".into(), AttributeValue::N(id.to_string()));
        put(&ctx, extra).await;
    }
    let run = ctx.ddbsync(&["verify", "local", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let last = records(&ctx).await.pop().unwrap();
    assert_eq!((text(&last["exit_code"]), text(&last["deletes_refused"])), ("3".into(), "11".into()));
}
