//! `ddbsync status`: a real `sync` held mid-run by the proxy (its writes stalled), whose progress
//! `status` reads from the lease items and is checked against what the proxy saw written and what
//! the run's own report says at its end; the outcome once it ends (`--watch` included); the shards
//! of a sharded run; and the stale lease of a run killed with SIGKILL.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::contract::errors;
use crate::harness::{finish, repo, Ctx};

/// Profile `local` through the test's proxy: a short lease (renewed every 2 s, so that the
/// progress in it is fresh), one batch in flight, and timeouts long enough that a stalled write
/// waits for the test rather than failing.
fn profile(ctx: &Ctx) {
    profile_timing(ctx, 120);
}

/// [`profile`] with DynamoDB calls bounded by `timeout` seconds.
fn profile_timing(ctx: &Ctx, timeout: u64) {
    let mappings = ctx.envs.path().join("mappings/pni.toml");
    if !mappings.exists() {
        ctx.write_mappings("pni.toml", &std::fs::read_to_string(repo().join("envs/mappings/pni.toml")).unwrap());
    }
    let text = format!(
        "mappings = \"mappings/pni.toml\"\ntable_prefix = \"{}\"\n\n[source]\nhost = \"127.0.0.1\"\nport = {}\n\
         dbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"\nconnect_timeout_secs = 5\n\n[target]\n\
         region = \"us-east-1\"\nendpoint_url = \"{}\"\nattempt_timeout_secs = {timeout}\noperation_timeout_secs = {timeout}\n\n\
         [sync]\nlock_lease_secs = 6\nmax_in_flight = 1\n",
        ctx.prefix,
        crate::harness::servers().pg_port,
        ctx.db,
        ctx.proxy.url
    );
    std::fs::write(ctx.envs.path().join("local.toml"), text).unwrap();
}

/// `ddbsync --json status local`, which must exit 0, its document checked against the schema.
fn status(ctx: &Ctx) -> Value {
    let run = ctx.ddbsync(&["--json", "status", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let doc: Value = serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}", run.stdout()));
    let found = errors("status", &doc);
    assert!(found.is_empty(), "{found:#?}\n{doc:#}");
    doc
}

/// Reads the status until `ready` holds for it (at most 60 s); the last one read.
fn status_until(ctx: &Ctx, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let doc = status(ctx);
        if ready(&doc) {
            return doc;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "status never showed {what}:\n{doc:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn spawn(ctx: &Ctx, args: &[&str]) -> Child {
    ctx.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Items DynamoDB confirmed written through the proxy into `table`: those the BatchWriteItem calls
/// carried, less the ones it answered as unprocessed.
fn written_through(ctx: &Ctx, table: &str) -> u64 {
    let mut written = 0;
    for exchange in ctx.proxy.exchanges("BatchWriteItem") {
        let sent = exchange.request["RequestItems"][table].as_array().map_or(0, Vec::len);
        let unprocessed = exchange.response["UnprocessedItems"][table].as_array().map_or(0, Vec::len);
        written += (sent - unprocessed) as u64;
    }
    written
}

/// The one process of the only active run.
fn process(doc: &Value) -> &Value {
    let active = doc["active"].as_array().unwrap();
    assert_eq!(active.len(), 1, "{doc:#}");
    &active[0]["processes"][0]
}

fn table<'a>(process: &'a Value, name: &str) -> &'a Value {
    let tables = process["tables"].as_array().unwrap();
    tables.iter().find(|t| t["table"] == name).unwrap_or_else(|| panic!("no {name}: {process:#}"))
}

#[tokio::test]
async fn status_shows_a_running_syncs_progress_then_its_outcome() {
    let ctx = Ctx::new(300).await;
    profile(&ctx);
    let lessons = ctx.table("lessons");
    // Nothing runs yet, nothing recorded: the metadata table does not even exist, and status says
    // so rather than "no run in progress" (a wrong prefix or region would look just like it).
    let idle = status(&ctx);
    assert_eq!((idle["active"].as_array().map(Vec::len), &idle["last_run"]), (Some(0), &Value::Null), "{idle:#}");
    let metadata = idle["metadata_table"].as_str().unwrap().to_string();
    let described = ctx.dynamo.describe_table().table_name(&metadata).send().await;
    assert!(described.is_err_and(|e| e.into_service_error().is_resource_not_found_exception()), "{metadata}");
    assert_eq!(idle["metadata_table_exists"], false, "{idle:#}");
    let text = ctx.ddbsync(&["status", "local"]);
    assert_eq!(text.code(), 0, "{}", text.stderr());
    let text = text.stdout();
    assert!(text.contains(&format!("local: the metadata table {metadata} does not exist in us-east-1")), "{text}");
    assert!(text.contains("table_prefix") && !text.contains("no run in progress"), "{text}");

    // Two batches of lessons get through, then the writes stall: the run holds the lock mid-way.
    ctx.proxy.stall_operation_after("BatchWriteItem", 2);
    let started = Instant::now();
    let sync = spawn(&ctx, &["--json", "sync", "local"]);
    let doc = status_until(&ctx, "the lessons written before the stall", |doc| {
        doc["active"].as_array().is_some_and(|a| !a.is_empty()) && {
            let p = process(doc);
            p["phase"] == "writing" && table(p, &lessons)["written"].as_u64() == Some(written_through(&ctx, &lessons))
        }
    });
    let p = process(&doc);
    let run = &doc["active"][0];
    assert_eq!((&run["command"], &run["shards"], &p["stale"]), (&Value::from("sync"), &Value::Null, &Value::Null));
    assert_eq!(p["pid"].as_u64(), Some(u64::from(sync.id())), "{p:#}");
    let t = table(p, &lessons);
    let written = t["written"].as_u64().unwrap();
    assert!(written > 0, "two batches got through: {t:#}");
    assert!(t["write_units"].as_f64().unwrap() >= written as f64, "at least a unit an item: {t:#}");
    assert_eq!(t["phase"], "writing", "every lesson read, the writes stalled: {t:#}");
    // No previous run: the ETA is unknown, and says so.
    assert_eq!((&t["previous_rows"], &p["eta_seconds"]), (&Value::Null, &Value::Null), "{p:#}");
    let read_mid_run = t["read"].as_u64().unwrap();
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains(&format!("local: sync run {}", run["run_id"].as_str().unwrap())), "{text}");
    assert!(text.contains(&lessons) && text.contains("writing"), "{text}");

    // A watch started now ends by itself once the run has ended, with its outcome.
    let watch = spawn(&ctx, &["--json", "status", "local", "--watch", "1"]);
    std::thread::sleep(Duration::from_secs(2));
    ctx.proxy.stall_operation(None);
    let (code, out, err, _) = finish(sync, started, Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let (code, lines, err, _) = finish(watch, started, Duration::from_secs(60));
    assert_eq!(code, 0, "the watch ends with 0 when the run ends: {err}");

    // The run read every lesson before the stall: what status said it had read.
    let reported = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == lessons.as_str()).unwrap();
    let rows: u64 = ["created", "updated", "unchanged"].iter().map(|f| reported[f].as_u64().unwrap()).sum::<u64>()
        + reported["rejected"].as_array().map_or(0, |r| r.len() as u64);
    assert_eq!(read_mid_run, rows, "status's rows read against the report's: {reported:#}");
    assert_eq!(written_through(&ctx, &lessons), reported["created"].as_u64().unwrap());

    let docs: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for doc in &docs {
        assert!(errors("status", doc).is_empty(), "{doc:#}");
    }
    assert!(docs.len() >= 2, "one line per change: {lines}");
    assert!(docs[0]["active"].as_array().is_some_and(|a| !a.is_empty()), "{lines}");
    let last = docs.last().unwrap();
    assert_eq!(last["active"], Value::Array(vec![]), "{last:#}");
    assert_eq!(last["last_run"]["run_id"], report["run_id"], "the watched run's outcome: {last:#}");

    let done = status(&ctx);
    assert_eq!(done["active"], Value::Array(vec![]));
    assert_eq!(done["metadata_table_exists"], true, "{done:#}");
    let last = &done["last_run"];
    assert_eq!(
        (&last["outcome"]["status"], &last["outcome"]["exit_code"]),
        (&Value::from("completed"), &Value::from(0))
    );
    assert_eq!(last["created"], report["total"]["created"], "{last:#}");
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains("local: no run in progress"), "{text}");
    assert!(text.contains("completed (exit 0)"), "{text}");

    // The next run has a previous one: while it reads, status knows how many rows to expect.
    ctx.proxy.stall_operation_after("BatchWriteItem", 0);
    ctx.sql(&["UPDATE lessons SET title = title || ' (changed)'"]);
    let sync = spawn(&ctx, &["sync", "local"]);
    let doc = status_until(&ctx, "the second run", |doc| {
        doc["active"].as_array().is_some_and(|a| !a.is_empty()) && process(doc)["phase"] == "writing"
    });
    assert_eq!(table(process(&doc), &lessons)["previous_rows"].as_u64(), Some(rows), "{doc:#}");
    ctx.proxy.stall_operation(None);
    let (code, _, err, _) = finish(sync, Instant::now(), Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn status_shows_each_shard_of_a_sharded_run() {
    let ctx = Ctx::new(200).await;
    profile(&ctx);
    ctx.proxy.stall_operation(Some("BatchWriteItem"));
    let started = Instant::now();
    let shards: Vec<Child> =
        ["0/2", "1/2"].iter().map(|k| spawn(&ctx, &["sync", "local", "--shard", k, "--run-id", "status-7"])).collect();
    let doc = status_until(&ctx, "both shards", |doc| {
        doc["active"].as_array().is_some_and(|a| a.len() == 1 && a[0]["processes"].as_array().unwrap().len() == 2)
    });
    let run = &doc["active"][0];
    assert_eq!((&run["run_id"], &run["shards"]), (&Value::from("status-7"), &Value::from(2)), "{run:#}");
    let mut shown: Vec<(String, u64)> = run["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["shard"].as_str().unwrap().to_string(), p["pid"].as_u64().unwrap()))
        .collect();
    shown.sort();
    let pids: Vec<u64> = shards.iter().map(|c| u64::from(c.id())).collect();
    assert_eq!(shown, [("0/2".to_string(), pids[0]), ("1/2".to_string(), pids[1])]);
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains("sync run status-7 in 2 shards"), "{text}");
    assert!(text.contains("shard 0/2:") && text.contains("shard 1/2:"), "{text}");
    // SIGINT ends a watch of a run still going: exit 5, as any command a signal stops.
    let watch = spawn(&ctx, &["status", "local", "--watch"]);
    std::thread::sleep(Duration::from_secs(2));
    crate::harness::signal(&watch, "INT");
    let (code, out, err, _) = finish(watch, Instant::now(), Duration::from_secs(20));
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("status: interrupted by SIGINT"), "{err}");
    assert!(out.contains("sync run status-7 in 2 shards"), "it showed the run first: {out}");
    ctx.proxy.stall_operation(None);
    for shard in shards {
        let (code, _, err, _) = finish(shard, started, Duration::from_secs(120));
        assert_eq!(code, 0, "{err}");
    }
    let done = status(&ctx);
    assert_eq!(done["active"], Value::Array(vec![]), "{done:#}");
    let last = &done["last_run"];
    assert_eq!((&last["run_id"], &last["shards"]["count"]), (&Value::from("status-7"), &Value::from(2)), "{last:#}");
    assert_eq!(last["outcome"]["status"], "completed", "{last:#}");
}

#[tokio::test]
async fn a_run_killed_with_sigkill_is_shown_as_stale() {
    let ctx = Ctx::new(100).await;
    profile(&ctx);
    ctx.proxy.stall_operation(Some("BatchWriteItem"));
    let mut sync = spawn(&ctx, &["sync", "local"]);
    status_until(&ctx, "the run", |doc| doc["active"].as_array().is_some_and(|a| !a.is_empty()));
    let pid = sync.id();
    sync.kill().unwrap();
    sync.wait().unwrap();
    let doc = status(&ctx);
    let p = process(&doc);
    let stale = p["stale"].as_str().unwrap_or_else(|| panic!("not stale: {p:#}"));
    assert!(stale.contains(&format!("process {pid} on this host has ended")), "{stale}");
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains("STALE") && text.contains("the next run takes it over"), "{text}");
    assert!(text.contains(&format!("its lease expires at {}", p["expires_at"].as_str().unwrap())), "{text}");
    // A watch does not wait for a run that is gone.
    let watch = ctx.ddbsync(&["status", "local", "--watch", "1"]);
    assert_eq!(watch.code(), 0, "{}", watch.stderr());
    assert!(watch.stdout().contains("STALE"), "{}", watch.stdout());

    // Once the lease has expired it is said so too; the next run takes the lock over.
    std::thread::sleep(Duration::from_secs(7));
    let doc = status(&ctx);
    let stale = process(&doc)["stale"].as_str().unwrap().to_string();
    assert!(stale.starts_with("the lease expired at"), "{stale}");
    ctx.proxy.stall_operation(None);
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(status(&ctx)["active"], Value::Array(vec![]));
}

#[tokio::test]
async fn a_repair_and_another_environments_lease_on_these_tables_are_shown() {
    let ctx = Ctx::new(60).await;
    profile(&ctx);
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    ctx.sql(&["UPDATE lessons SET title = title || ' (changed)'"]);
    ctx.proxy.stall_operation(Some("BatchWriteItem"));
    let started = Instant::now();
    let repair = spawn(&ctx, &["verify", "local", "--full", "--repair", "--yes", "--table", "lessons"]);
    let doc = status_until(&ctx, "the repair", |doc| {
        doc["active"].as_array().is_some_and(|a| !a.is_empty()) && process(doc)["phase"] == "writing"
    });
    assert_eq!(doc["active"][0]["command"], "verify --repair", "{doc:#}");
    let t = table(process(&doc), &ctx.table("lessons"));
    assert_eq!(t["read"].as_u64(), Some(60), "every lesson read again under the lock: {t:#}");
    ctx.proxy.stall_operation(None);
    let (code, _, err, _) = finish(repair, started, Duration::from_secs(120));
    assert_eq!(code, 0, "{err}");

    // A run of another environment holding one of these tables (a lease as an older ddbsync
    // writes it: no command, no progress) is shown, as a sync here would wait for it; one on a
    // table of its own is not.
    ctx.hold_lease("lessons", "staging", None).await;
    ctx.hold_lease("elsewhere", "staging", None).await;
    let doc = status(&ctx);
    let run = &doc["active"][0];
    assert_eq!(doc["active"].as_array().unwrap().len(), 1, "{doc:#}");
    assert_eq!((&run["environment"], &run["command"]), (&Value::from("staging"), &Value::from("unknown")));
    let p = &run["processes"][0];
    assert_eq!(
        (&p["host"], &p["stale"], &p["phase"]),
        (&Value::from("batch-7"), &Value::Null, &Value::from("waiting"))
    );
    assert_eq!(p["tables"].as_array().unwrap().len(), 1, "{p:#}");
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains("of environment staging, on this environment's tables"), "{text}");
    // The last run stays said: the repair.
    assert_eq!(doc["last_run"]["mode"], "repair", "{doc:#}");
}

/// A DynamoDB that stops answering ends `status` (and a watch) with exit 1 within the profile's
/// operation timeout, naming what it was reading and the setting that bounds it.
#[tokio::test]
async fn a_stalled_dynamodb_ends_status_within_its_timeout() {
    let ctx = Ctx::new(5).await;
    profile_timing(&ctx, 2);
    ctx.proxy.set_stalled(true);
    for args in [&["status", "local"][..], &["status", "local", "--watch"]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 1, "{args:?}: {}", run.stderr());
        let err = run.stderr();
        assert!(err.contains("reading the run records in") && err.contains("no answer from DynamoDB"), "{err}");
        assert!(err.contains("target.operation_timeout_secs bounds each call"), "the fix: {err}");
        assert!(run.elapsed < Duration::from_secs(15), "took {:?}", run.elapsed);
    }
    ctx.proxy.set_stalled(false);
}
