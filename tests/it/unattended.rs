//! Nobody watching: two profiles on the same tables, a run paused past its lease, a lost answer to
//! the lock's write, a DynamoDB that stops answering, SIGTERM and SIGINT mid-write, and results
//! that must be reported even when the last step fails. Each test reads the outcome back from the
//! servers themselves.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{finish, signal, text, Ctx};
use crate::proxy::Fault;

/// Waits until a run holds a lease, then `after` more.
async fn until_locked(ctx: &Ctx, after: Duration) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.leases().await.is_empty() {
        assert!(Instant::now() < deadline, "no run took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(after).await;
}

/// Every lesson's title, as the target holds it and as PostgreSQL holds it.
async fn titles(ctx: &Ctx) -> (HashMap<String, String>, HashMap<String, String>) {
    let target = ctx.scan("lessons").await.iter().map(|i| (text(&i["lesson_id"]), text(&i["title"]))).collect();
    let source = ctx
        .query("SELECT id || '|' || title FROM lessons")
        .iter()
        .map(|l| l.split_once('|').unwrap())
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    (target, source)
}

#[tokio::test]
async fn two_profiles_naming_the_same_tables_exclude_each_other() {
    let ctx = Ctx::new(200).await;
    // `other` reaches the same tables: same prefix, same endpoint, another name.
    ctx.write_profile("other", "");
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let first = ctx.command(&["sync", "local", "--max-write-units-per-second", "100"]).stdout(Stdio::null()).spawn();
    let first = first.unwrap();
    until_locked(&ctx, Duration::from_millis(200)).await;
    let second = ctx.ddbsync(&["sync", "other", "--clean", "--yes"]);
    assert_eq!(second.code(), 4, "{}", second.stderr());
    assert!(second.stderr().contains("is locked by another run (environment local)"), "{}", second.stderr());
    let (code, _, stderr, _) = finish(first, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    let (target, source) = titles(&ctx).await;
    assert_eq!(target, source, "the first run's work was not deleted under it");
    assert!(ctx.leases().await.is_empty(), "both runs released what they held");
}

#[tokio::test]
async fn a_run_paused_past_its_lease_writes_nothing_more() {
    let ctx = Ctx::new(300).await;
    ctx.write_profile("local", "lock_lease_secs = 3");
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = 'stale ' || id"]);
    let mut paused = ctx.command(&["--json", "sync", "local", "--max-write-units-per-second", "60"]);
    let paused = paused.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(1500)).await;
    signal(&paused, "STOP");
    tokio::time::sleep(Duration::from_secs(5)).await;

    // Meanwhile the lease expires and a newer run writes the newer titles.
    ctx.sql(&["UPDATE lessons SET title = 'fresh ' || id"]);
    let newer = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(newer.code(), 0, "the expired lease is taken over: {}", newer.stderr());

    signal(&paused, "CONT");
    let (code, stdout, stderr, _) = finish(paused, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 1, "{stderr}");
    // The report of what it did before it stopped comes first, and the record keeps it.
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report of the failed run");
    assert_eq!(report["outcome"]["status"], "failed", "{report}");
    let lessons = &report["tables"][0];
    // `updated` counts only what DynamoDB confirmed.
    let written = lessons["updated"].as_u64().unwrap();
    assert!(written > 0, "it had written some items before the pause: {report}");
    assert!(stderr.contains("nothing more was written"), "the message says what happened: {stderr}");
    assert!(!stderr.contains("--force-unlock)"), "nobody forced the lock: {stderr}");
    let (target, source) = titles(&ctx).await;
    let stale: Vec<_> = target.iter().filter(|(id, title)| source.get(*id) != Some(*title)).collect();
    assert!(stale.is_empty(), "the paused run overwrote the newer run's items: {stale:?}");
    let history = ctx.ddbsync(&["--json", "history", "local"]);
    let runs = serde_json::from_str::<serde_json::Value>(&history.stdout()).unwrap()["runs"].take();
    let failed = runs.as_array().unwrap().iter().find(|r| r["outcome"]["status"] == "failed").expect("the failed run");
    assert_eq!(failed["updated"].as_u64(), lessons["updated"].as_u64(), "recorded with its figures: {runs}");
}

#[tokio::test]
async fn a_run_whose_lock_is_forced_away_writes_nothing_after_the_forcing_run() {
    let ctx = Ctx::new(300).await;
    ctx.write_profile("local", "lock_lease_secs = 6");
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = 'old ' || id"]);
    let mut forced = ctx.command(&["sync", "local", "--max-write-units-per-second", "100"]);
    let forced = forced.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(1500)).await;
    ctx.sql(&["UPDATE lessons SET title = 'new ' || id"]);
    let forcing = ctx.ddbsync(&["sync", "local", "--force-unlock"]);
    assert_eq!(forcing.code(), 0, "{}", forcing.stderr());
    let (code, _, stderr, _) = finish(forced, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("another run took the lock"), "{stderr}");
    let (target, source) = titles(&ctx).await;
    let stale: Vec<_> = target.iter().filter(|(id, title)| source.get(*id) != Some(*title)).collect();
    assert!(stale.is_empty(), "the forced run wrote after the forcing run: {stale:?}");
}

#[tokio::test]
async fn a_lost_answer_to_the_lock_write_still_takes_the_lock() {
    let ctx = Ctx::new(20).await;
    // The first PutItem is the lease: the server applies it and the answer is lost.
    ctx.proxy.fault_next("PutItem", Fault::DropAfter);
    let child = ctx.command(&["-v", "sync", "local"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (code, _, stderr, _) = finish(child, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(ctx.proxy.injected(), vec![Fault::DropAfter]);
    assert!(ctx.leases().await.is_empty(), "the run released its own lease");
    assert_eq!(ctx.scan("lessons").await.len(), 20);
}

#[tokio::test]
async fn a_dynamodb_that_stops_answering_ends_the_run_within_its_lease_naming_dynamodb() {
    let ctx = Ctx::new(300).await;
    ctx.write_profile("local", "lock_lease_secs = 4");
    let mut child = ctx.command(&["sync", "local", "--max-write-units-per-second", "100"]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(1000)).await;
    ctx.proxy.set_stalled(true);
    let stalled_at = Instant::now();
    let (code, _, stderr, took) = finish(child, stalled_at, Duration::from_secs(90));
    ctx.proxy.set_stalled(false);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("DynamoDB"), "the message names DynamoDB: {stderr}");
    assert!(took < Duration::from_secs(45), "ended {took:?} after DynamoDB stopped answering: {stderr}");

    // The next run completes the work.
    let report = ctx.sync(&[]);
    assert_eq!(report["total"]["failed"], 0);
    let (target, source) = titles(&ctx).await;
    assert_eq!(target, source);
}

#[tokio::test]
async fn sigterm_stops_cleanly_records_the_run_and_the_next_run_completes_it() {
    for name in ["TERM", "INT"] {
        let ctx = Ctx::new(300).await;
        ctx.sync(&[]);
        ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
        // A low cap keeps a backlog of batches waiting for their turn when the signal comes.
        let mut child = ctx.command(&["--json", "sync", "local", "--max-write-units-per-second", "60"]);
        let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        until_locked(&ctx, Duration::from_millis(1500)).await;
        signal(&child, name);
        let (code, stdout, stderr, took) = finish(child, Instant::now(), Duration::from_secs(20));
        assert_eq!(code, 5, "SIG{name}: {stderr}");
        assert!(took < Duration::from_secs(5), "SIG{name}: stopped after {took:?}: {stderr}");
        assert!(stderr.contains(&format!("interrupted by SIG{name}")), "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("the partial report on stdout");
        assert_eq!(report["outcome"]["status"], "interrupted");
        assert_eq!(report["outcome"]["exit_code"], 5);
        assert!(ctx.leases().await.is_empty(), "SIG{name}: the lock was released");

        let history = ctx.ddbsync(&["--json", "history", "local"]);
        let runs = serde_json::from_str::<serde_json::Value>(&history.stdout()).unwrap()["runs"].take();
        let last = &runs[0];
        let outcome = &last["outcome"];
        assert_eq!(
            (outcome["status"].as_str(), outcome["exit_code"].as_u64()),
            (Some("interrupted"), Some(5)),
            "{runs}"
        );

        let (target, source) = titles(&ctx).await;
        let behind = target.iter().filter(|(id, title)| source.get(*id) != Some(*title)).count();
        assert!(behind > 0, "SIG{name} came after the run had finished: the test proves nothing");
        // What the report says was written is what the server holds (the oracle).
        let lessons = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table("lessons"));
        let lessons = lessons.expect("the table being written is in the report");
        // `updated` counts only what DynamoDB confirmed.
        let written = lessons["updated"].as_u64().unwrap();
        assert_eq!(written as usize, source.len() - behind, "SIG{name}: {report}");
        assert_eq!(
            (last["updated"].as_u64(), last["not_written"].as_u64()),
            (lessons["updated"].as_u64(), Some(lessons["failed"].as_array().unwrap().len() as u64)),
            "{runs}"
        );
        let next = ctx.sync(&[]);
        assert_eq!(next["total"]["updated"].as_u64(), Some(behind as u64), "the next run writes exactly the rest");
        let (target, source) = titles(&ctx).await;
        assert_eq!(target, source);
    }
}

#[tokio::test]
async fn a_second_signal_exits_at_once() {
    let ctx = Ctx::new(300).await;
    ctx.write_profile("local", "max_write_units_per_second = 100");
    let child = ctx.command(&["sync", "local"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(500)).await;
    signal(&child, "TERM");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let at = Instant::now();
    signal(&child, "TERM");
    let (code, _, stderr, took) = finish(child, at, Duration::from_secs(10));
    assert_eq!(code, 5, "{stderr}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Its lease is left, but its process is gone: the next run on this host takes it at once.
    let next = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(next.code(), 0, "{}", next.stderr());
}

#[tokio::test]
async fn an_unwritable_rejects_file_still_leaves_the_report_and_the_rows() {
    let ctx = Ctx::new(20).await;
    ctx.sql(&[r#"UPDATE lessons SET metadata = '{"n": 1234567890123456789012345678901234567890}' WHERE id = 3"#]);
    // A rejects file under a regular file cannot be created.
    let blocked = ctx.envs.path().join("local.toml").join("rejects.jsonl");
    let run = ctx.ddbsync(&["--json", "sync", "local", "--rejects-file", blocked.to_str().unwrap()]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("the report is printed");
    let lessons = &report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table("lessons")).unwrap();
    assert_eq!(lessons["rejected"][0]["key"], "lesson_id=3", "{report}");
    assert!(report["notes"][0].as_str().unwrap().contains("local.toml"), "{report}");
    assert_eq!(ctx.scan("lessons").await.len(), 19, "the other rows were written");
    let history = ctx.ddbsync(&["--json", "history", "local"]);
    assert!(history.stdout().contains("\"not_written\": 1"), "the run was recorded: {}", history.stdout());
}

#[tokio::test]
async fn a_clean_load_stopped_by_a_signal_names_the_tables_it_left_empty() {
    let ctx = Ctx::new(300).await;
    ctx.sync(&[]);
    let mut child = ctx.command(&["--json", "sync", "local", "--clean", "--yes", "--max-write-units-per-second", "60"]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(2500)).await;
    signal(&child, "TERM");
    let (code, stdout, stderr, _) = finish(child, Instant::now(), Duration::from_secs(20));
    assert_eq!(code, 5, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the partial report");
    let synced: Vec<&str> = report["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(synced, [ctx.table("lessons")], "stopped while writing the first table: {report}");
    let notes: Vec<&str> = report["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    for table in ["passages", "topics"] {
        let note = format!("{}: not synced, recreated empty by --clean, as the run ended before it; the next run that gets that far syncs it", ctx.table(table));
        assert!(notes.contains(&note.as_str()), "{notes:?}");
        assert!(ctx.scan(table).await.is_empty(), "the note tells the truth: {table} is empty");
    }
    // The next run (without --clean) completes the load.
    ctx.sync(&[]);
    assert_eq!(ctx.scan("passages").await.len(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_dry_run_reports_every_row_it_read_as_it_would_be_written() {
    let ctx = Ctx::new(1).await;
    // About 500 rows a second: the signal comes with rows still in the writer's window.
    ctx.use_mappings(
        "slow.toml",
        "[tables.slow]\npartition_key = \"k\"\nquery = \"\"\"\nSELECT g AS k, md5(g::text) AS v, \
         pg_sleep(0.002)::text AS z FROM generate_series(1, 3000) g\n\"\"\"\n",
    );
    let mut child = ctx.command(&["--json", "sync", "local", "--dry-run"]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    signal(&child, "TERM");
    let (code, stdout, stderr, _) = finish(child, Instant::now(), Duration::from_secs(20));
    assert_eq!(code, 5, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("the partial report on stdout");
    let t = &report["tables"][0];
    let created = t["created"].as_u64().unwrap();
    assert!(created > 0 && created < 3000, "the signal came mid-run: {report}");
    // Nothing is held back as "not written": a dry run sends nothing, so there is nothing to stop.
    assert_eq!(t["failed"].as_array().map(Vec::len), Some(0), "{report}");
    // Each item is one unit: what would be written and the full rewrite are those rows, once.
    assert_eq!(t["write_units"].as_f64(), Some(created as f64), "{report}");
    assert_eq!(t["potential_write_units"].as_f64(), Some(created as f64), "{report}");
    assert!(!ctx.table_exists("slow").await, "a dry run creates no table");
}

#[tokio::test]
async fn a_signal_after_every_row_was_read_is_said_while_the_batches_drain() {
    let ctx = Ctx::new(20).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    // One write unit a second: the twenty rows are read at once, their writes take twenty seconds.
    let mut child = ctx.command(&["sync", "local", "--table", "lessons", "--max-write-units-per-second", "1"]);
    let child = child.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    until_locked(&ctx, Duration::from_millis(1500)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    signal(&child, "TERM");
    let (code, _, stderr, took) = finish(child, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 5, "{stderr}");
    let said = format!(
        "SIGTERM: stopping {}: every row was read; the batches already sent get 10 s to finish",
        ctx.table("lessons")
    );
    assert!(stderr.contains(&said), "the stop is said at once, not after the drain: {stderr}");
    assert!(took < Duration::from_secs(20), "{took:?}");
    let report = ctx.sync(&[]);
    assert_eq!(report["total"]["failed"], 0, "the next run completes the work");
}
