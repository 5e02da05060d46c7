//! `--lock-timeout`: a scheduled run that finds the tables locked by another run waits for them
//! instead of exiting 4. The other run is a lease written into the metadata table as the engine
//! writes it, by a run on another machine (so that no dead pid frees it early); the test releases
//! it, or not, and reads the outcome back from DynamoDB.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{finish, signal, text, Ctx, Item};

/// The lease of a live run of `nightly` on another machine on table `name`, an hour long.
async fn hold(ctx: &Ctx, name: &str) {
    ctx.hold_lease(name, "nightly", Some(3600)).await;
}

/// The holder of each lease in the metadata table.
async fn holders(ctx: &Ctx) -> Vec<String> {
    ctx.leases().await.iter().map(|l| text(&l["run_id"])).collect()
}

async fn release(ctx: &Ctx, name: &str) {
    let key: Item = [
        ("pk".to_string(), AttributeValue::S("LOCK".into())),
        ("sk".to_string(), AttributeValue::S(format!("TABLE#{}", ctx.table(name)))),
    ]
    .into();
    ctx.dynamo.delete_item().table_name(ctx.table("cache-metadata")).set_key(Some(key)).send().await.unwrap();
}

/// Lesson id → title, as DynamoDB holds them.
async fn titles(ctx: &Ctx) -> HashMap<String, String> {
    ctx.scan("lessons").await.iter().map(|i| (text(&i["lesson_id"]), text(&i["title"]))).collect()
}

/// The run records (`pk = RUN`) in the metadata table.
async fn records(ctx: &Ctx) -> usize {
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
    out.items.unwrap_or_default().len()
}

/// Starts `ddbsync <args>` and returns it once its stderr says it waits for the lock; the lines of
/// stderr keep arriving on the receiver.
fn start_waiting(ctx: &Ctx, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = ctx.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains("waiting up to") => {
                assert!(line.contains("for the run lock: table"), "{line}");
                assert!(line.contains("batch-7 (pid 4242)"), "the note names the holder: {line}");
                return (child, lines);
            }
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("ddbsync {args:?} never said it waits for the lock ({e}): {:?}", child.wait_with_output());
            }
        }
    }
}

#[tokio::test]
async fn a_sync_with_lock_timeout_waits_for_the_lock_and_writes_once_it_is_released() {
    let ctx = Ctx::new(30).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let before = titles(&ctx).await;
    hold(&ctx, "lessons").await;

    let (child, stderr) = start_waiting(&ctx, &["sync", "local", "--lock-timeout", "2m"]);
    // Two polls of the lock later it still waits, and has written nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(titles(&ctx).await, before, "nothing is written while another run holds the lock");
    assert_eq!(holders(&ctx).await, ["batch-7:4242:1"], "the waiting run took no lease");

    release(&ctx, "lessons").await;
    let released = Instant::now();
    let (code, stdout, _, took) = finish(child, released, Duration::from_secs(90));
    let stderr: Vec<String> = stderr.try_iter().collect();
    assert_eq!(code, 0, "{}", stderr.join("\n"));
    assert!(stdout.contains(&ctx.table("lessons")), "the report: {stdout}");
    let after = titles(&ctx).await;
    assert_eq!(after.len(), before.len());
    assert!(after.values().all(|t| t.ends_with(" (2)")), "every changed row was written once the lock was free");
    assert!(holders(&ctx).await.is_empty(), "its own leases released at the end");
    eprintln!("written {took:?} after the lock was released");
}

#[tokio::test]
async fn a_lock_timeout_that_runs_out_exits_4_naming_the_holder_the_wait_and_the_fix() {
    let ctx = Ctx::new(10).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let before = titles(&ctx).await;
    let recorded = records(&ctx).await;
    hold(&ctx, "lessons").await;

    let run = ctx.ddbsync(&["sync", "local", "--lock-timeout", "3s"]);
    let err = run.stderr();
    assert_eq!(run.code(), 4, "{err}");
    assert!(run.elapsed >= Duration::from_secs(3), "it waited: {:?}", run.elapsed);
    assert!(err.contains("waiting up to 3s for the run lock"), "{err}");
    let last = err.lines().last().unwrap_or_default();
    for part in [
        &format!("error: table {} is locked by another run (environment nightly)", ctx.table("lessons")),
        "batch-7 (pid 4242) took the lock at",
        "waited 3s for it (--lock-timeout)",
        "run again with a longer --lock-timeout, or if that run is gone with --force-unlock",
    ] {
        assert!(last.contains(part), "{part:?} in {last}");
    }
    assert_eq!(titles(&ctx).await, before, "nothing written");
    assert_eq!(records(&ctx).await, recorded, "a run that never had the lock records nothing");
    assert_eq!(holders(&ctx).await, ["batch-7:4242:1"]);

    // Without a timeout the refusal is at once, and says how to wait.
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("wait for it to finish (--lock-timeout 10m waits"), "{}", run.stderr());

    // The flag's older name still works, for the scripts that use it.
    let run = ctx.ddbsync(&["sync", "local", "--wait-lock", "1s"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("waited 1s for it (--lock-timeout)"), "{}", run.stderr());

    // A restore waits the same way (it takes the lock of every table it writes).
    let file = ctx.envs.path().join("lessons.tar");
    let backup = ctx.ddbsync(&["backup", "local", "--table", "topics", "-o", file.to_str().unwrap()]);
    assert_eq!(backup.code(), 0, "{}", backup.stderr());
    hold(&ctx, "topics").await;
    let run = ctx.ddbsync(&["restore", file.to_str().unwrap(), "--yes", "--lock-timeout", "1s"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("waited 1s for it (--lock-timeout)"), "{}", run.stderr());
    assert!(ctx.table_exists("topics").await, "nothing deleted");
}

#[tokio::test]
async fn sigterm_while_waiting_for_the_lock_exits_5_at_once_without_taking_it() {
    let ctx = Ctx::new(10).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let before = titles(&ctx).await;
    let recorded = records(&ctx).await;
    hold(&ctx, "lessons").await;

    let (child, stderr) = start_waiting(&ctx, &["sync", "local", "--lock-timeout", "10m"]);
    let sent = Instant::now();
    signal(&child, "TERM");
    let (code, _, _, took) = finish(child, sent, Duration::from_secs(20));
    let stderr: Vec<String> = stderr.iter().collect();
    assert_eq!(code, 5, "{}", stderr.join("\n"));
    assert!(took < Duration::from_secs(3), "it stopped at once, not after the wait: {took:?}");
    let last = stderr.last().map(String::as_str).unwrap_or_default();
    assert!(last.contains("stopped while waiting for the run lock of"), "{last}");
    assert!(last.contains("no lock was taken and nothing was done: interrupted by SIGTERM"), "{last}");
    assert_eq!(holders(&ctx).await, ["batch-7:4242:1"], "the holder's lease is untouched, none added");
    assert_eq!(titles(&ctx).await, before, "nothing written");
    assert_eq!(records(&ctx).await, recorded, "nothing recorded");
}

#[tokio::test]
async fn a_second_sync_with_lock_timeout_runs_once_a_real_first_one_finishes() {
    let ctx = Ctx::new(200).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    // The first run writes slowly (a low cap), holding the lock meanwhile.
    let mut first = ctx
        .command(&["sync", "local", "--max-write-units-per-second", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while holders(&ctx).await.is_empty() {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let second = ctx.ddbsync(&["--json", "sync", "local", "--lock-timeout", "2m"]);
    let first_ended = first.try_wait().unwrap();
    assert!(first_ended.is_some_and(|s| s.success()), "the first run had finished when the second wrote");
    assert_eq!(second.code(), 0, "{}", second.stderr());
    let waited = format!("waiting up to 2m for the run lock: table {}", ctx.table("lessons"));
    assert!(second.stderr().contains(&waited), "{}", second.stderr());
    assert!(second.stderr().contains(&format!("(pid {})", first.id())), "{}", second.stderr());
    // The second ran after the first had written everything: nothing left for it to write. (The
    // note above is on stderr with --json too: the JSON on stdout stays whole.)
    let report: serde_json::Value = serde_json::from_str(&second.stdout()).expect("only JSON on stdout");
    let lessons = ctx.table("lessons");
    assert_eq!(crate::harness::figure(&report, &lessons, "updated"), 0.0, "{report}");
    assert!(crate::harness::figure(&report, &lessons, "unchanged") > 0.0, "{report}");
    assert!(titles(&ctx).await.values().all(|t| t.ends_with(" (2)")));
    assert!(holders(&ctx).await.is_empty());
}

/// `verify --repair` while another run holds the lock (a `sync --clean` that has just deleted the
/// table it recreates) is refused before it reads, with exit 4 and the lock's message, every time:
/// not with the error of reading a table that is being recreated, and not with exit 0 when the
/// tables it reads happen to agree.
#[tokio::test]
async fn a_repair_while_another_run_holds_the_lock_exits_4_before_it_reads() {
    let ctx = Ctx::new(20).await;
    ctx.sync(&["--table", "lessons"]);
    hold(&ctx, "lessons").await;
    // In agreement: a verify alone finds nothing, yet the repair is refused.
    let run = ctx.ddbsync(&["--json", "verify", "local", "--table", "lessons", "--repair", "--yes", "--full"]);
    assert_eq!(run.code(), 4, "{}", run.stderr());
    assert!(run.stderr().contains("not repairing local while another run writes to it"), "{}", run.stderr());
    // The table gone, as a --clean deletes it before it recreates it.
    ctx.dynamo.delete_table().table_name(ctx.table("lessons")).send().await.unwrap();
    for _ in 0..3 {
        let run = ctx.ddbsync(&["verify", "local", "--table", "lessons", "--repair", "--yes"]);
        let err = run.stderr();
        assert_eq!(run.code(), 4, "{err}");
        assert!(err.contains("table ") && err.contains("is locked by another run (environment nightly)"), "{err}");
        assert!(err.contains("nothing was read or written"), "{err}");
    }
    assert_eq!(holders(&ctx).await, ["batch-7:4242:1"], "the refused repair took no lease");
    assert!(!ctx.table_exists("lessons").await, "the refused repair created nothing");
    // Released, the repair runs: it recreates nothing (verify says the table is missing) but is
    // no longer refused for the lock.
    release(&ctx, "lessons").await;
    let run = ctx.ddbsync(&["verify", "local", "--table", "lessons", "--repair", "--yes"]);
    assert_ne!(run.code(), 4, "{}", run.stderr());
    assert!(holders(&ctx).await.is_empty(), "the check's lease was released");
}
