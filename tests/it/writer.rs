//! What one bad row or item may cost its neighbours: nothing. A rejected row keeps its stored item
//! (it is not an orphan), a batch the server refuses is split until the bad item is alone, the run
//! record fits in an item, and bad command-line or profile values stop the run with exit 2.

use std::collections::HashMap;

use crate::harness::{figure, text, Ctx};

/// `things`, fed by a table the test edits, deleting orphans.
const THINGS: &str = r#"
[tables.things]
partition_key = "id"
delete_missing = true
query = "SELECT id, f, body FROM things"
"#;

fn json(run: &crate::harness::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()))
}

/// The reasons of a table's rejected (or failed) rows, by key.
fn listed(report: &serde_json::Value, list: &str) -> HashMap<String, String> {
    report["tables"][0][list]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn a_rejected_row_keeps_its_stored_item_and_is_no_orphan() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE things AS SELECT g AS id, g * 1.5::float8 AS f, 'body ' || g AS body \
               FROM generate_series(1, 20) g"]);
    ctx.use_mappings("things.toml", THINGS);
    let table = ctx.table("things");
    ctx.sync(&[]);

    // Row 2 becomes NaN, row 3 grows over 400 KB: both unwritable. Row 20 leaves the source.
    ctx.sql(&[
        "UPDATE things SET f = 'NaN' WHERE id = 2",
        "UPDATE things SET body = repeat('x', 420000) WHERE id = 3",
        "DELETE FROM things WHERE id = 20",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "rejected rows make exit 3: {}", run.stderr());
    let report = json(&run);

    // Read back from the server: the rejected rows' items are still there, as last written.
    let items: HashMap<String, _> = ctx.scan("things").await.into_iter().map(|i| (text(&i["id"]), i)).collect();
    assert_eq!(text(&items["2"]["f"]), "3", "row 2's stored item is kept, stale: {:?}", items.get("2"));
    assert_eq!(text(&items["3"]["body"]), "body 3", "row 3's stored item is kept, stale");
    assert!(!items.contains_key("20"), "the true orphan is deleted");
    assert_eq!(items.len(), 19);

    // One true orphan of 20 items is within the 10 % guard; the two rejected rows are not orphans.
    assert_eq!(figure(&report, &table, "orphans"), 1.0, "{report}");
    assert_eq!(figure(&report, &table, "deleted"), 1.0);
    assert_eq!(report["tables"][0]["deleted_keys"], serde_json::json!(["id=20"]));
    assert!(report["tables"][0]["deletes_refused_reason"].is_null(), "{report}");
    assert_eq!(figure(&report, &table, "stale"), 2.0);
    assert_eq!(report["total"]["stale"], 2);
    let rejected = listed(&report, "rejected");
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    for (key, cause) in [("id=2", "NaN cannot be stored"), ("id=3", "over DynamoDB's 400 KB limit")] {
        let reason = &rejected[key];
        assert!(reason.contains(cause), "{key}: {reason}");
        assert!(reason.ends_with("; kept the stored item, which is now stale"), "{key}: {reason}");
    }
    let text = ctx.ddbsync(&["sync", "local"]).stdout();
    assert!(text.contains("2 rows rejected (2 stored items kept, now stale):"), "{text}");

    // A row rejected before it was ever written has no stored item to keep.
    ctx.sql(&["INSERT INTO things VALUES (21, 'Infinity', 'new')"]);
    let report = json(&ctx.ddbsync(&["--json", "sync", "local"]));
    assert_eq!(figure(&report, &table, "stale"), 2.0, "{report}");
    assert!(!listed(&report, "rejected")["id=21"].contains("kept"), "{report}");
}

#[tokio::test]
async fn a_row_without_a_key_holds_the_deletes() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE things AS SELECT g AS id, g * 1.5::float8 AS f, 'body ' || g AS body \
               FROM generate_series(1, 20) g"]);
    let template =
        THINGS.replace("partition_key = \"id\"", "partition_key = { name = \"PK\", template = \"THING#{id}\" }");
    ctx.use_mappings("things.toml", &template);
    let table = ctx.table("things");
    ctx.sync(&[]);
    let stored = |items: Vec<crate::harness::Item>| {
        let mut keys: Vec<String> = items.iter().map(|i| text(&i["PK"])).collect();
        keys.sort();
        keys
    };

    // Row 5 loses its key (which item was it?), row 20 leaves the source: nothing is deleted.
    ctx.sql(&["UPDATE things SET id = NULL WHERE id = 5", "DELETE FROM things WHERE id = 20"]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(ctx.scan("things").await.len(), 20, "THING#5 and THING#20 are kept");
    assert_eq!((figure(&report, &table, "orphans"), figure(&report, &table, "deleted")), (2.0, 0.0));
    let held = report["tables"][0]["deletes_refused_reason"].as_str().expect("deletes held");
    assert!(
        held.starts_with("not deleted: 2 items have no source row, but 1 source rows have no key (first: id=NULL)"),
        "{held}"
    );
    assert_eq!(listed(&report, "rejected")["id=NULL"], "key column \"id\" is NULL");

    // Once the row is fixed (here: gone), the orphans go, within the guard.
    ctx.sql(&["DELETE FROM things WHERE id IS NULL"]);
    let report = ctx.sync(&[]);
    assert_eq!(figure(&report, &table, "deleted"), 2.0, "{report}");
    let expected: Vec<String> = (1..20).filter(|&g| g != 5).map(|g| format!("THING#{g}")).collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(stored(ctx.scan("things").await), expected);
}

/// `things` with `n` rows keyed by text, row `bad` holding `body`.
fn batch_of(ctx: &Ctx, n: u32, bad: u32, id: &str, body: &str) {
    ctx.sql(&[
        "CREATE TABLE things (id text, f float8, body text)",
        &format!("INSERT INTO things SELECT 'k' || g, g, 'body ' || g FROM generate_series(1, {n}) g WHERE g <> {bad}"),
        &format!("INSERT INTO things VALUES ({id}, {bad}, '{body}')"),
    ]);
    ctx.use_mappings("things.toml", THINGS);
}

/// The write units the server itself reported for the BatchWriteItem calls it answered.
fn server_units(ctx: &Ctx) -> f64 {
    let calls = ctx.proxy.exchanges("BatchWriteItem");
    calls
        .iter()
        .flat_map(|e| e.response["ConsumedCapacity"].as_array().cloned().unwrap_or_default())
        .map(|c| c["CapacityUnits"].as_f64().unwrap_or(0.0))
        .sum()
}

#[tokio::test]
async fn a_refused_batch_is_split_until_the_bad_item_is_alone() {
    let ctx = Ctx::new(1).await;
    batch_of(&ctx, 25, 13, "'k13'", "POISON");
    ctx.proxy.refuse_batches_holding(Some("POISON"));
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = json(&run);
    let table = ctx.table("things");

    let mut stored: Vec<String> = ctx.scan("things").await.iter().map(|i| text(&i["id"])).collect();
    stored.sort();
    let mut expected: Vec<String> = (1..=25).filter(|&g| g != 13).map(|g| format!("k{g}")).collect();
    expected.sort();
    assert_eq!(stored, expected, "the 24 good items are stored");

    let failed = listed(&report, "failed");
    assert_eq!(failed.len(), 1, "only the bad item is reported: {failed:?}");
    assert!(failed["id=\"k13\""].starts_with("ValidationException: "), "{failed:?}");
    // One refused call of 25, then halves down to the item alone (25 → 12 or 13 → … → 1): each
    // refused call but the last is split in two, and each half sent counts as a retry.
    let refused = ctx.proxy.refused() as f64;
    assert!((5.0..=6.0).contains(&refused), "{refused}");
    assert_eq!(figure(&report, &table, "created"), 24.0, "what DynamoDB confirmed");
    assert_eq!(figure(&report, &table, "write_units"), server_units(&ctx), "units as the server reported them");
    assert_eq!(figure(&report, &table, "retries"), 2.0 * (refused - 1.0), "{report}");
    assert_eq!(figure(&report, &table, "throttled"), 0.0);
}

#[tokio::test]
async fn an_item_the_server_refuses_does_not_sink_its_batch() {
    let ctx = Ctx::new(1).await;
    // A partition key of 3,000 bytes: DynamoDB stores at most 2,048.
    batch_of(&ctx, 25, 7, "repeat('k', 3000)", "long key");
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = json(&run);
    let stored = ctx.scan("things").await;
    assert_eq!(stored.len(), 24, "every other item is stored");
    assert!(stored.iter().all(|i| text(&i["id"]).len() < 10));
    // Reported once, as rejected before the write or as refused by the server.
    let reported: Vec<String> = ["rejected", "failed"].iter().flat_map(|l| listed(&report, l).into_keys()).collect();
    assert_eq!(reported.len(), 1, "{report}");
    // A long key is shortened in messages, with its size.
    assert!(reported[0].starts_with("id=\"kkkk") && reported[0].ends_with("(3000 bytes)"), "{report}");
}

#[tokio::test]
async fn a_run_record_over_400_kb_is_trimmed_to_fit() {
    let ctx = Ctx::new(1).await;
    // One argument may not exceed 128 KB (Linux's MAX_ARG_STRLEN): five parameters of 110 KB.
    let names = ["a", "b", "c", "d", "e"];
    let filters: Vec<String> = (1..=5).map(|i| format!("${i}::text <> ''")).collect();
    ctx.use_mappings(
        "params.toml",
        &format!(
            "[tables.things]\npartition_key = \"id\"\nparams = {names:?}\nquery = \"SELECT g AS id FROM generate_series(1, 3) g WHERE {}\"\n",
            filters.join(" AND ")
        ),
    );
    let values: Vec<String> = names.iter().map(|n| format!("{n}={}", n.repeat(110 * 1024))).collect();
    let mut args = vec!["--json", "sync", "local"];
    for value in &values {
        args.extend(["--param", value.as_str()]);
    }
    let run = ctx.ddbsync(&args);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(ctx.scan("things").await.len(), 3);

    let records = ctx.scan("cache-metadata").await;
    let record = records.iter().find(|r| text(&r["pk"]) == "RUN").expect("the run is recorded");
    let trimmed = text(&record["trimmed"]);
    assert!(trimmed.starts_with("parameter values longer than "), "{trimmed}");
    let params = record["params"].as_m().unwrap();
    assert_eq!(params.len(), 5, "every parameter is named");
    assert!(text(&params["a"]).starts_with("aaaa") && text(&params["a"]).len() < 110 * 1024);
    let history = ctx.ddbsync(&["--json", "history", "local"]);
    assert_eq!(history.code(), 0, "{}", history.stderr());
    assert_eq!(json(&history)["runs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn bad_numbers_on_the_command_line_or_in_the_profile_exit_2() {
    let ctx = Ctx::new(1).await;
    let cases: &[(&[&str], &str)] = &[
        (&["sync", "local", "--scan-segments", "0"], "--scan-segments 0: must be between 1 and 1000"),
        (&["sync", "local", "--scan-segments", "4294967295"], "--scan-segments 4294967295: must be between 1 and 1000"),
        (&["sync", "local", "--scan-segments", "4294967296"], "--scan-segments"),
        (&["sync", "local", "--scan-segments", "-1"], "--scan-segments"),
        (&["sync", "local", "--scan-segments", "four"], "--scan-segments"),
        (&["sync", "local", "--scan-segments", ""], "--scan-segments"),
        (&["sync", "local", "--max-in-flight", "0"], "--max-in-flight 0: must be between 1 and 1000"),
        (
            &["sync", "local", "--max-in-flight", "18446744073709551615"],
            "--max-in-flight 18446744073709551615: must be between 1 and 1000",
        ),
        (
            &["sync", "local", "--max-write-units-per-second", "0"],
            "--max-write-units-per-second 0: must be between 1 and 1000000",
        ),
        (
            &["sync", "local", "--max-write-units-per-second", "4294967295"],
            "--max-write-units-per-second 4294967295: must be between 1 and 1000000",
        ),
        (&["sync", "local", "--max-write-units-per-second", "1.5"], "--max-write-units-per-second"),
        (&["verify", "local", "--sample", "0"], "--sample"),
        (&["verify", "local", "--sample", "18446744073709551615"], "--sample"),
        (&["history", "local", "--limit", "0"], "--limit"),
        (&["history", "local", "--limit", "-5"], "--limit"),
        (&["report", "local", "--since", "99999999999999d"], "--since 99999999999999d"),
    ];
    for (args, words) in cases {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 2, "{args:?}: {}{}", run.stdout(), run.stderr());
        assert!(run.stderr().contains(words), "{args:?} should say {words:?}: {}", run.stderr());
        assert!(!run.stderr().contains("panicked"), "{args:?}: {}", run.stderr());
    }

    let profile_cases = [
        (
            "lock_lease_secs = 9223372036854775807",
            "sync.lock_lease_secs = 9223372036854775807 must be between 1 and 86400",
        ),
        ("lock_lease_secs = 0", "sync.lock_lease_secs = 0 must be between 1 and 86400"),
        (
            "max_write_units_per_second = 4294967295",
            "sync.max_write_units_per_second = 4294967295 must be between 1 and 1000000",
        ),
        ("max_in_flight = 100000", "sync.max_in_flight = 100000 must be between 1 and 1000"),
        ("max_attempts = 4294967295", "sync.max_attempts = 4294967295 must be between 1 and 100"),
    ];
    for (line, words) in profile_cases {
        ctx.write_profile("local", line);
        for args in [&["sync", "local"][..], &["sync", "local", "--dry-run"], &["check", "local"]] {
            let run = ctx.ddbsync(args);
            assert_eq!(run.code(), 2, "{line} {args:?}: {}{}", run.stdout(), run.stderr());
            assert!(run.stderr().contains(words), "{line} should say {words:?}: {}", run.stderr());
        }
    }

    // Values in range still work, and the command line wins over the profile.
    ctx.write_profile("local", "max_write_units_per_second = 5");
    let run = ctx.ddbsync(&[
        "sync",
        "local",
        "--scan-segments",
        "1000",
        "--max-in-flight",
        "1",
        "--max-write-units-per-second",
        "1000000",
    ]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
}

/// Runs ddbsync and follows its peak resident memory (`VmHWM`, a high-water mark, read until the
/// process ends); the run and that peak in bytes.
fn with_peak_rss(ctx: &Ctx, args: &[&str]) -> (std::process::Output, u64) {
    let child = ctx.command(args).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).spawn();
    let child = child.expect("run ddbsync");
    let status = format!("/proc/{}/status", child.id());
    let waiter = std::thread::spawn(move || child.wait_with_output().expect("ddbsync ends"));
    let mut peak = 0;
    while !waiter.is_finished() {
        let read = std::fs::read_to_string(&status).unwrap_or_default();
        if let Some(kb) = read.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
            peak = peak.max(kb.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap() * 1024);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    (waiter.join().unwrap(), peak)
}

#[tokio::test]
async fn large_items_are_written_whole_and_the_writer_holds_them_by_bytes_not_by_count() {
    let ctx = Ctx::new(1).await;
    // 200 items of 300 KB: 60 MB, all of which the writer's item counts (a window of 1,000, a queue
    // of 1,024) would hold at once.
    ctx.sql(&["CREATE TABLE things AS SELECT g AS id, g * 1.5::float8 AS f, \
               left(repeat(md5(g::text), 9400), 300000) AS body FROM generate_series(1, 200) g"]);
    ctx.use_mappings("things.toml", THINGS);
    let (full, full_peak) = with_peak_rss(&ctx, &["--json", "sync", "local"]);
    assert_eq!(full.status.code(), Some(0), "{}", String::from_utf8_lossy(&full.stderr));
    // The same rows again, unchanged: read, built and judged, and none handed to the writer.
    let (same, same_peak) = with_peak_rss(&ctx, &["--json", "sync", "local"]);
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stderr));
    let report: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(figure(&report, &ctx.table("things"), "unchanged"), 200.0, "{report}");

    // Read back from the server: every item, whole, as the source has it.
    let source: HashMap<String, String> = ctx
        .query("SELECT id || '|' || length(body) || '|' || left(body, 64) || '|' || right(body, 64) FROM things")
        .into_iter()
        .map(|line| (line.split('|').next().unwrap().to_string(), line))
        .collect();
    let items = ctx.scan("things").await;
    assert_eq!(items.len(), 200);
    for item in &items {
        let (id, body) = (text(&item["id"]), text(&item["body"]));
        let stored = format!("{id}|{}|{}|{}", body.len(), &body[..64], &body[body.len() - 64..]);
        assert_eq!(Some(&stored), source.get(&id), "item {id}");
    }
    // What the writer held on top of reading and judging the rows: within its 16 MB budget and the
    // allocator's slack, far under the 60 MB (and their copies in flight) it held when it counted items.
    let extra = full_peak.saturating_sub(same_peak);
    assert!(full_peak > 0 && same_peak > 0, "peaks read: {full_peak} {same_peak}");
    assert!(extra < 32 << 20, "the full load's peak RSS is {full_peak} B, {extra} B above the resync's {same_peak} B");
}
