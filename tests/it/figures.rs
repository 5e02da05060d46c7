//! The report's figures against what DynamoDB did: a dry run's write units against the units the
//! server then reports, counts of what DynamoDB confirmed when writes fail, and run records of
//! every run that writes (refused deletes and restores included), read back by `history` and
//! `report`.

use crate::harness::{figure, text, Ctx, Profile, Run};

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: not JSON:\n{}\n{}", run.stdout(), run.stderr()))
}

/// `things`, with a keys-only, an include and a whole-item index, deleting orphans.
const MAPPING: &str = r#"
[tables.things]
partition_key = "id"
delete_missing = true
query = "SELECT id, grp, tag, extra, cat, body FROM things"

[tables.things.indexes.by_grp]
partition_key = "grp"
projection = "keys_only"

[tables.things.indexes.by_tag]
partition_key = "tag"
projection = ["extra"]

[tables.things.indexes.by_cat]
partition_key = "cat"
"#;

fn things(ctx: &Ctx) {
    ctx.sql(&["CREATE TABLE things AS SELECT g AS id, 'g' || (g % 7) AS grp, \
               CASE WHEN g % 3 = 0 THEN NULL ELSE 't' || (g % 5) END AS tag, 'x' || g AS extra, \
               CASE WHEN g % 4 = 0 THEN NULL ELSE 'c' || (g % 2) END AS cat, \
               repeat('b', CASE WHEN g % 10 = 0 THEN 1500 ELSE 100 END) AS body \
               FROM generate_series(1, 120) g"]);
    ctx.use_mappings("things.toml", MAPPING);
}

/// `items`: 50 rows, deleting orphans.
fn items(ctx: &Ctx) {
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 50) g"]);
    let mapping =
        "[tables.items]\npartition_key = \"id\"\ndelete_missing = true\nquery = \"SELECT id, title FROM items\"\n";
    ctx.use_mappings("items.toml", mapping);
}

/// The write units the server itself reported for BatchWriteItem calls since the proxy's log was
/// cleared: the independent figure.
fn server_write_units(ctx: &Ctx) -> f64 {
    ctx.proxy
        .exchanges("BatchWriteItem")
        .iter()
        .flat_map(|e| e.response["ConsumedCapacity"].as_array().cloned().unwrap_or_default())
        .map(|c| c["CapacityUnits"].as_f64().unwrap_or(0.0))
        .sum()
}

/// The dry run's estimate against the real run's measured units: equal on dynoxide, which bills
/// index writes as DynamoDB does; dynalite leaves index writes out of its figures, so it reports
/// no more than the estimate.
fn assert_priced(predicted: f64, measured: f64) {
    match crate::harness::server_kind().as_str() {
        "dynalite" => assert!(measured <= predicted, "measured {measured}, predicted {predicted}"),
        _ => assert_eq!(predicted, measured, "the dry run's write units are what the server billed"),
    }
}

#[tokio::test]
async fn a_dry_run_prices_creates_updates_and_deletes_as_dynamodb_bills_them() {
    let ctx = Ctx::new(1).await;
    things(&ctx);
    let table = ctx.table("things");

    let predicted = ctx.sync(&["--dry-run"]);
    ctx.proxy.clear();
    let first = ctx.sync(&[]);
    let units = |r: &serde_json::Value| figure(r, &table, "write_units");
    assert_eq!(units(&first), server_write_units(&ctx));
    assert_priced(units(&predicted), units(&first));

    ctx.sql(&[
        // Bodies shrink below 1 KB: billed on the old, larger item.
        "UPDATE things SET body = 'short' WHERE id IN (10, 20, 30)",
        // A keys-only index key moves: out of one place, into another.
        "UPDATE things SET grp = 'moved' WHERE id IN (1, 2, 3)",
        // An included attribute changes: the include index entry is rewritten in place.
        "UPDATE things SET extra = 'changed' WHERE id IN (4, 5)",
        // Out of the include index, and into the whole-item index.
        "UPDATE things SET tag = NULL, cat = 'c9' WHERE id IN (7, 8)",
        // Only the body: the keys-only and include entries stay as they are.
        "UPDATE things SET body = repeat('z', 900) WHERE id IN (11, 13)",
        // Gone from the source: deleted with their index entries (5 of 120, within the guard).
        "DELETE FROM things WHERE id IN (40, 41, 42, 43, 50)",
        "INSERT INTO things SELECT g, 'new', 't1', 'x', 'c1', repeat('n', 2100) FROM generate_series(200, 203) g",
    ]);
    let predicted = ctx.sync(&["--dry-run"]);
    assert_eq!(figure(&predicted, &table, "deleted"), 5.0);
    ctx.proxy.clear();
    let real = ctx.sync(&[]);
    assert_eq!(
        [figure(&real, &table, "created"), figure(&real, &table, "updated"), figure(&real, &table, "deleted")],
        [4.0, 12.0, 5.0]
    );
    assert_eq!(units(&real), server_write_units(&ctx), "the report's units are the server's");
    assert_priced(units(&predicted), units(&real));
}

#[tokio::test]
async fn created_and_updated_count_only_what_dynamodb_confirmed() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 60) g"]);
    ctx.use_mappings("items.toml", "[tables.items]\npartition_key = \"id\"\nquery = \"SELECT id, title FROM items\"\n");
    ctx.sync(&[]);

    // Ten rows change and five are new; DynamoDB refuses the items holding the marker.
    ctx.sql(&[
        "UPDATE items SET title = 'changed ' || id WHERE id <= 10",
        "UPDATE items SET title = 'REFUSE-ME ' || id WHERE id IN (3, 7)",
        "INSERT INTO items SELECT g, 'new ' || g FROM generate_series(100, 104) g",
        "UPDATE items SET title = 'REFUSE-ME ' || id WHERE id = 104",
    ]);
    ctx.proxy.refuse_batches_holding(Some("REFUSE-ME"));
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    ctx.proxy.refuse_batches_holding(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let table = ctx.table("items");

    // What DynamoDB holds now, read back: the oracle.
    let stored: Vec<(u32, String)> =
        ctx.scan("items").await.iter().map(|i| (text(&i["id"]).parse().unwrap(), text(&i["title"]))).collect();
    let changed = stored.iter().filter(|(id, t)| *id <= 10 && t.starts_with("changed ")).count();
    let new = stored.iter().filter(|(id, _)| *id >= 100).count();
    assert_eq!((changed, new), (8, 4));
    assert_eq!(figure(&report, &table, "updated"), changed as f64);
    assert_eq!(figure(&report, &table, "created"), new as f64);
    let failed = report["tables"][0]["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 3);
    assert_eq!(report["total"]["failed"], 3);
    assert_eq!(report["outcome"]["exit_code"], 3, "the report's exit code is the process's");

    // The text says so, and the run record keeps the same figures.
    let history = ctx.ddbsync(&["--json", "history", "local", "--limit", "1"]);
    let last = serde_json::from_str::<serde_json::Value>(&history.stdout()).unwrap()["runs"].take();
    assert_eq!((last[0]["updated"].as_f64(), last[0]["not_written"].as_f64()), (Some(8.0), Some(3.0)));
    assert_eq!(last[0]["outcome"]["exit_code"], 3);
    ctx.sql(&["UPDATE items SET title = 'again ' || id WHERE id <= 2"]);
    ctx.proxy.refuse_batches_holding(Some("again 2"));
    let text = ctx.ddbsync(&["sync", "local"]).stdout();
    ctx.proxy.refuse_batches_holding(None);
    assert!(
        text.contains("new and updated count only the items DynamoDB confirmed; 1 items were not written"),
        "{text}"
    );
}

#[tokio::test]
async fn history_and_report_count_refused_deletes_and_restores() {
    let ctx = Ctx::new(1).await;
    items(&ctx);
    ctx.sync(&[]);

    // 20 of 50 items without a source row: over the guard.
    ctx.sql(&["DELETE FROM items WHERE id <= 20"]);
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert!(run.stdout().contains(&format!("{}: not deleted: 20 of 50 items", ctx.table("items"))), "{}", run.stdout());
    assert!(!run.stdout().contains("delete_missing = true"), "the mapping deletes already: {}", run.stdout());
    let history = ctx.ddbsync(&["history", "local"]).stdout();
    assert!(history.contains("incremental (completed, exit 3, 20 deletes refused)"), "{history}");

    // A restore writes a run record with the units the server reported for it.
    let file = ctx.envs.path().join("b/local.tar");
    let backup = ctx.ddbsync(&["backup", "local", "-o", file.to_str().unwrap()]);
    assert_eq!(backup.code(), 0, "{}", backup.stderr());
    ctx.proxy.clear();
    let restore = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes"]);
    assert_eq!(restore.code(), 0, "{}", restore.stderr());
    let billed = server_write_units(&ctx);
    assert!(billed >= 50.0, "{billed}");
    let runs = json(&ctx.ddbsync(&["--json", "history", "local"]))["runs"].take();
    let restored = &runs[0];
    assert_eq!(restored["mode"], "restore");
    let outcome = &restored["outcome"];
    assert_eq!((outcome["status"].as_str(), outcome["exit_code"].as_u64()), (Some("completed"), Some(0)));
    assert_eq!(restored["write_units"].as_f64(), Some(billed));
    assert_eq!(restored["created"], 50);
    assert!(ctx.ddbsync(&["history", "local"]).stdout().contains("┆ restore "), "history names the mode");

    let summary: serde_json::Value =
        serde_json::from_str(&ctx.ddbsync(&["--json", "report", "local", "--since", "all"]).stdout()).unwrap();
    let listed: f64 = runs.as_array().unwrap().iter().map(|r| r["write_units"].as_f64().unwrap()).sum();
    assert_eq!(summary["runs"], 3);
    assert_eq!(summary["restore_runs"], 1);
    assert_eq!(summary["unsuccessful_runs"], 1);
    assert_eq!(summary["total"]["write_units"].as_f64(), Some(listed));
    assert_eq!(summary["total"]["deletes_refused"], 20);
    let items = ctx.dynamo.scan().table_name(ctx.table("items")).send().await.unwrap();
    assert_eq!(items.count, 50, "the restore put back every item");
}

/// A batch DynamoDB applied and then answered with a 500: its items may or may not have been
/// written, and the report says so instead of calling them not written; the full rewrite does not
/// shrink with them; `history --csv` carries the outcome and exit code.
#[tokio::test]
async fn a_batch_written_then_answered_with_a_500_is_reported_as_outcome_unknown() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 60) g"]);
    let mappings = ctx.write_mappings(
        "items.toml",
        "[tables.items]\npartition_key = \"id\"\nquery = \"SELECT id, title FROM items\"\n",
    );
    ctx.write_profile_with(
        "local",
        &Profile { mappings: Some(&mappings), sync: "max_attempts = 2", ..Profile::default() },
    );
    ctx.sync(&[]);
    let table = ctx.table("items");

    // Five rows change; the calls holding them are applied by the server and answered with a 500.
    ctx.sql(&["UPDATE items SET title = 'LOST-ANSWER ' || id WHERE id <= 5"]);
    let predicted = ctx.sync(&["--dry-run"]);
    ctx.proxy.fail_after_writing(Some("LOST-ANSWER"));
    ctx.proxy.clear();
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    ctx.proxy.fail_after_writing(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();

    // The oracle: the server holds every one of them.
    let stored: Vec<(u32, String)> =
        ctx.scan("items").await.iter().map(|i| (text(&i["id"]).parse().unwrap(), text(&i["title"]))).collect();
    let lost = stored.iter().filter(|(_, t)| t.starts_with("LOST-ANSWER ")).count();
    assert_eq!(lost, 5, "the server applied the calls it answered with a 500");
    let t = &report["tables"][0];
    assert_eq!(figure(&report, &table, "updated"), 0.0, "only what DynamoDB confirmed: {t}");
    assert_eq!(figure(&report, &table, "unknown"), 5.0, "{t}");
    assert_eq!(report["total"]["unknown"], 5);
    let failed = t["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 5);
    for f in failed {
        let reason = f["reason"].as_str().unwrap();
        assert!(
            reason.starts_with("outcome unknown: ") && reason.contains("may or may not have been written"),
            "{reason}"
        );
        assert!(!reason.contains("not written after"), "{reason}");
    }
    // The server billed the calls whose answers were lost; the report, which never saw those
    // figures, does not claim them.
    assert!(server_write_units(&ctx) >= 5.0, "{}", server_write_units(&ctx));
    assert_eq!(figure(&report, &table, "write_units"), 0.0);
    // The full rewrite counts only what the run got to decide: the dry run's, less the five items
    // whose outcome is unknown (the dry run's writes).
    let decided = figure(&predicted, &table, "potential_write_units") - figure(&predicted, &table, "write_units");
    assert_eq!(figure(&report, &table, "potential_write_units"), decided);

    // The text says what is known, and counts them apart from the items not written.
    ctx.sql(&["UPDATE items SET title = 'LOST-ANSWER again ' || id WHERE id = 1"]);
    ctx.proxy.fail_after_writing(Some("LOST-ANSWER again"));
    let run = ctx.ddbsync(&["sync", "local"]);
    ctx.proxy.fail_after_writing(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let out = run.stdout();
    assert!(out.contains("1 items may or may not have been written: DynamoDB answered"), "{out}");
    assert!(out.contains("their write units are unknown"), "{out}");
    // The table's line counts them once, as of unknown outcome (no delete among them).
    assert!(
        out.contains(&format!("{table}: 1 rows of unknown outcome (may or may not have been written):\n")),
        "{out}"
    );
    assert!(!out.contains("of them)"), "{out}");
    assert!(!out.contains("items were not written"), "{out}");

    // history: counted as unknown, not as not written; the CSV has the outcome and the exit code.
    let history = json(&ctx.ddbsync(&["--json", "history", "local", "--limit", "2"]))["runs"].take();
    assert_eq!((history[1]["unknown"].as_u64(), history[1]["not_written"].as_u64()), (Some(5), Some(0)));
    assert_eq!(history[1]["outcome"]["exit_code"], 3);
    let listed = ctx.ddbsync(&["history", "local", "--limit", "2"]).stdout();
    assert!(listed.contains("incremental (completed, exit 3, 5 outcome unknown)"), "{listed}");
    let csv = ctx.ddbsync(&["history", "local", "--csv", "--limit", "2"]).stdout();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("started_at,finished_at,mode,params,outcome,exit_code,created,"), "{csv}");
    // The columns JSON has too come last, so that the others keep their positions.
    // The run's id and its shards (none here) after them.
    let shards = ",run_id,shards,missing_shards,failed_shards";
    assert!(
        lines[0].ends_with(&format!(",deletes_refused,unknown,deletes_failed,rejected,failed,saved_percent{shards}")),
        "{csv}"
    );
    assert!(lines[2].contains(",incremental,,completed,3,0,0,"), "{csv}");
    let fields: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(fields[fields.len() - 4..], [history[1]["run_id"].as_str().unwrap(), "", "", ""], "{csv}");
    let fields = &fields[..fields.len() - 4];
    assert_eq!(fields[fields.len() - 6..fields.len() - 4], ["0", "5"], "deletes_refused, unknown: {csv}");
    // rejected, failed and saved_percent, as the JSON has them.
    let run = &history[1];
    let want = [
        run["rejected"].to_string(),
        run["failed"].to_string(),
        format!("{:.2}", run["saved_percent"].as_f64().unwrap()),
    ];
    assert_eq!(fields[fields.len() - 3..], want, "{csv}");
    assert_eq!(want[1], "5", "the five of unknown outcome are among the failed");
}

/// A repair's dry run prices its writes and deletes from the stored items the verify read, index
/// entries included: the real repair is billed the same.
#[tokio::test]
async fn a_repairs_dry_run_prices_what_the_repair_is_billed() {
    let ctx = Ctx::new(1).await;
    things(&ctx);
    ctx.sync(&[]);
    let table = ctx.table("things");
    let item = |id: u32| {
        let ctx = &ctx;
        async move { ctx.scan("things").await.into_iter().find(|i| text(&i["id"]) == id.to_string()).expect("the item") }
    };
    // Edited in DynamoDB: an index key moved, a body grown past 1 KB (its hash kept: only a
    // repair rewrites them); two extras in every index; one item deleted.
    use aws_sdk_dynamodb::types::AttributeValue as Av;
    let mut one = item(1).await;
    one.insert("grp".into(), Av::S("elsewhere".into()));
    let mut two = item(2).await;
    two.insert("body".into(), Av::S("w".repeat(2500)));
    let mut extra = item(10).await;
    extra.insert("id".into(), Av::N("900".into()));
    let mut other = item(11).await;
    other.insert("id".into(), Av::N("901".into()));
    for i in [one, two, extra, other] {
        ctx.dynamo.put_item().table_name(&table).set_item(Some(i)).send().await.unwrap();
    }
    ctx.dynamo.delete_item().table_name(&table).key("id", Av::N("5".into())).send().await.unwrap();
    // Changed in the source: out of the include index, into another group.
    ctx.sql(&["UPDATE things SET tag = NULL, grp = 'moved' WHERE id IN (7, 8)"]);

    let dry = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--dry-run"]);
    assert_eq!(dry.code(), 3, "{}", dry.stderr());
    let dry: serde_json::Value = serde_json::from_str(&dry.stdout()).unwrap();
    let planned = &dry["repair"]["tables"][0];
    assert_eq!(
        (planned["created"].as_u64(), planned["updated"].as_u64(), planned["deleted"].as_u64()),
        (Some(1), Some(4), Some(2)),
        "{planned}"
    );
    assert!(planned.get("unpriced").is_none(), "every stored item was read: {planned}");
    ctx.proxy.clear();
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let real: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let measured = real["repair"]["tables"][0]["write_units"].as_f64().unwrap();
    assert_eq!(measured, server_write_units(&ctx), "the report's units are the server's");
    assert_priced(planned["write_units"].as_f64().unwrap(), measured);
    assert_eq!(dry["repair"]["outcome"]["exit_code"], 3, "a dry run exits 3, and says so");
}

/// A delete DynamoDB does not carry out is an item not written, not a refused delete: no guard
/// refused it.
#[tokio::test]
async fn a_failed_delete_is_not_written_and_not_refused() {
    let ctx = Ctx::new(1).await;
    items(&ctx);
    ctx.sync(&[]);
    ctx.sql(&["DELETE FROM items WHERE id IN (47, 48)"]);
    // The call deleting item 48 is refused; item 47's delete goes alone.
    ctx.proxy.refuse_batches_holding(Some("\"48\""));
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    ctx.proxy.refuse_batches_holding(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let t = &report["tables"][0];
    assert_eq!(t["deleted"], 1, "{t}");
    assert_eq!(t["failed"].as_array().map(Vec::len), Some(1), "{t}");
    assert!(t["deletes_refused_reason"].is_null(), "no guard refused it: {t}");
    let ids: Vec<String> = ctx.scan("items").await.iter().map(|i| text(&i["id"])).collect();
    assert!(ids.contains(&"48".to_string()) && !ids.contains(&"47".to_string()), "{ids:?}");
    let history = json(&ctx.ddbsync(&["--json", "history", "local", "--limit", "1"]))["runs"].take();
    assert_eq!((history[0]["deletes_refused"].as_u64(), history[0]["not_written"].as_u64()), (Some(0), Some(1)));
}

/// Deletes answered with a 500 after the server applied them are of unknown outcome, and every
/// line that counts them says "written or deleted"; a put refused in the same run is counted apart,
/// as not written.
#[tokio::test]
async fn deletes_answered_with_a_500_are_of_unknown_outcome_written_or_deleted() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 50) g"]);
    let mapping =
        "[tables.items]\npartition_key = \"id\"\ndelete_missing = true\nquery = \"SELECT id, title FROM items\"\n";
    let mappings = ctx.write_mappings("items.toml", mapping);
    ctx.write_profile_with(
        "local",
        &Profile { mappings: Some(&mappings), sync: "max_attempts = 2", ..Profile::default() },
    );
    ctx.sync(&[]);
    let table = ctx.table("items");
    ctx.sql(&["DELETE FROM items WHERE id IN (47, 48)", "UPDATE items SET title = 'REFUSED' WHERE id = 1"]);
    // The put of item 1 is refused; the call deleting 47 and 48 is applied, then answered with a 500.
    ctx.proxy.refuse_batches_holding(Some("REFUSED"));
    ctx.proxy.fail_after_writing(Some("\"48\""));
    let run = ctx.ddbsync(&["sync", "local"]);
    ctx.proxy.refuse_batches_holding(None);
    ctx.proxy.fail_after_writing(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    // The oracle: the server deleted both, and kept item 1 as it was.
    let stored: Vec<(String, String)> =
        ctx.scan("items").await.iter().map(|i| (text(&i["id"]), text(&i["title"]))).collect();
    assert!(!stored.iter().any(|(id, _)| id == "47" || id == "48"), "{stored:?}");
    assert!(stored.contains(&("1".to_string(), "title 1".to_string())), "{stored:?}");
    let out = run.stdout();
    assert!(
        out.contains(&format!(
            "{table}: 3 rows not confirmed written or deleted: 1 not written or deleted, 2 of unknown outcome (may \
             or may not have been written or deleted):\n"
        )),
        "{out}"
    );
    assert!(out.contains("2 items may or may not have been written or deleted: DynamoDB answered"), "{out}");
    assert!(!out.contains("of them)"), "{out}");

    let history = json(&ctx.ddbsync(&["--json", "history", "local", "--limit", "1"]))["runs"].take();
    assert_eq!(
        (history[0]["unknown"].as_u64(), history[0]["not_written"].as_u64(), history[0]["deletes_failed"].as_u64()),
        (Some(2), Some(1), Some(2)),
        "{history}"
    );
    let report = ctx.ddbsync(&["report", "local", "--since", "all"]).stdout();
    assert!(report.contains("2 items may or may not have been written or deleted ("), "{report}");
}

#[tokio::test]
async fn the_full_rewrite_is_the_source_items_alone_whatever_the_deletes_cost() {
    let ctx = Ctx::new(1).await;
    things(&ctx);
    let table = ctx.table("things");
    let full = |r: &serde_json::Value| figure(r, &table, "potential_write_units");
    let loaded = ctx.sync(&[]);
    // 10 of 120 rows go: a tenth of the table, under the guard.
    ctx.sql(&["DELETE FROM things WHERE id > 110"]);
    let predicted = ctx.sync(&["--dry-run"]);
    let deleting = ctx.sync(&[]);
    assert_eq!(figure(&deleting, &table, "deleted"), 10.0, "{deleting}");
    assert!(figure(&deleting, &table, "write_units") >= 10.0, "the deletes are billed: {deleting}");
    // A clean load of the 110 rows deletes nothing: its cost is what the next run, with nothing to
    // do, estimates, whether deletes happened in a run or not.
    let idle = ctx.sync(&[]);
    assert_eq!(figure(&idle, &table, "write_units"), 0.0, "{idle}");
    assert_eq!(full(&deleting), full(&idle), "deleting: {deleting}\nidle: {idle}");
    assert_eq!(full(&predicted), full(&idle), "dry run: {predicted}");
    assert!(full(&loaded) > 0.0, "{loaded}");
}

/// A run whose writes DynamoDB all refused wrote nothing, so it saved nothing: the full rewrite it
/// is compared with counts only the items it got to decide (written or unchanged), not those it
/// did not write; `history` and `report` show no saving for it either.
#[tokio::test]
async fn a_run_that_wrote_nothing_is_credited_with_no_saving() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE items AS SELECT g AS id, 'title ' || g AS title FROM generate_series(1, 40) g"]);
    ctx.use_mappings("items.toml", "[tables.items]\npartition_key = \"id\"\nquery = \"SELECT id, title FROM items\"\n");
    ctx.sync(&[]);
    ctx.sql(&["UPDATE items SET title = 'REFUSE-ME ' || id"]);
    ctx.proxy.refuse_batches_holding(Some("REFUSE-ME"));
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    ctx.proxy.refuse_batches_holding(None);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    // The oracle: DynamoDB holds none of the new titles.
    let stored = ctx.scan("items").await;
    assert_eq!(stored.len(), 40);
    assert!(stored.iter().all(|i| !text(&i["title"]).starts_with("REFUSE-ME")), "nothing was written");
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let total = &report["total"];
    assert_eq!(
        (total["created"].as_u64(), total["updated"].as_u64(), total["failed"].as_u64()),
        (Some(0), Some(0), Some(40))
    );
    assert_eq!(total["potential_write_units"].as_f64(), Some(0.0), "{total}");
    assert!(total["saved_usd"].as_f64().unwrap() <= 0.0, "{total}");
    assert_eq!(total["saved_percent"].as_f64(), Some(0.0), "{total}");
    let runs = json(&ctx.ddbsync(&["--json", "history", "local", "--limit", "1"]))["runs"].take();
    assert!(runs[0]["saved_usd"].as_f64().unwrap() <= 0.0, "{runs}");
    assert_eq!(runs[0]["potential_usd"].as_f64(), Some(0.0), "{runs}");
}
