//! Sharded runs (`sync --shard K/N`): N processes started at once, each through a recording proxy
//! of its own, so that what each shard sent is known. The target is judged by reading it back
//! through the server, against what one unsharded run makes of the same source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use ddbsync::pure::bucket::Shard;
use ddbsync::pure::hash::key_digest;
use ddbsync::pure::item::AttributeValue as Av;
use serde_json::Value;

use crate::harness::{finish, servers, Ctx};
use crate::proxy::Proxy;

const ROWS: i64 = 400;

const MAPPING: &str =
    "[tables.big]\npartition_key = \"id\"\ndelete_missing = true\nquery = \"SELECT id, v, n FROM big\"\n";

/// A test world with the table `big` (ids 1 to [`ROWS`]) in PostgreSQL and its mappings file.
async fn world() -> (Ctx, PathBuf) {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE big (id int PRIMARY KEY, v text NOT NULL, n numeric)",
        &format!("INSERT INTO big SELECT g, 'value ' || g, g * 1.5 FROM generate_series(1, {ROWS}) g"),
    ]);
    let mappings = ctx.use_mappings("big.toml", MAPPING);
    (ctx, mappings)
}

/// The processes of one sharded run: a profiles directory and a recording proxy per shard, all
/// naming their tables with `prefix`.
struct Shards {
    envs: Vec<tempfile::TempDir>,
    proxies: Vec<Proxy>,
    count: u32,
}

impl Shards {
    fn new(ctx: &Ctx, mappings: &std::path::Path, prefix: &str, count: u32) -> Shards {
        let proxies: Vec<Proxy> = (0..count).map(|_| Proxy::start(&servers().dynamo_url)).collect();
        let envs = proxies.iter().map(|p| ctx.envs_via(p, prefix, mappings)).collect();
        Shards { envs, proxies, count }
    }

    /// Starts shard `k` (`--shard k/N --run-id run`, then `extra`).
    fn start(&self, ctx: &Ctx, k: u32, run: &str, extra: &[&str]) -> Child {
        let shard = format!("{k}/{}", self.count);
        let mut args = vec!["--json", "sync", "local", "--shard", &shard, "--run-id", run];
        args.extend_from_slice(extra);
        ctx.command_in(self.envs[k as usize].path(), &args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Starts every shard at once and waits for all: each one's exit code, report and stderr.
    fn run_all(&self, ctx: &Ctx, run: &str) -> Vec<(i32, Value, String)> {
        let children: Vec<Child> = (0..self.count).map(|k| self.start(ctx, k, run, &[])).collect();
        let started = Instant::now();
        children
            .into_iter()
            .map(|child| {
                let (code, stdout, stderr, _) = finish(child, started, Duration::from_secs(120));
                (code, serde_json::from_str(&stdout).unwrap_or(Value::Null), stderr)
            })
            .collect()
    }

    /// The keys shard `k` put and deleted, as the server received them.
    fn written(&self, k: u32) -> (Vec<i64>, Vec<i64>) {
        let (mut puts, mut deletes) = (Vec::new(), Vec::new());
        for exchange in self.proxies[k as usize].exchanges("BatchWriteItem") {
            for requests in exchange.request["RequestItems"].as_object().unwrap().values() {
                for request in requests.as_array().unwrap() {
                    let id = |v: &Value| v["id"]["N"].as_str().unwrap().parse::<i64>().unwrap();
                    if let Some(put) = request.get("PutRequest") {
                        puts.push(id(&put["Item"]));
                    } else {
                        deletes.push(id(&request["DeleteRequest"]["Key"]));
                    }
                }
            }
        }
        (puts, deletes)
    }

    fn clear(&self) {
        self.proxies.iter().for_each(Proxy::clear);
    }
}

/// The shard of `count` that owns item `id`.
fn owner(id: i64, count: u32) -> u32 {
    let digest = key_digest(&[&Av::N(id.to_string())]);
    (0..count).find(|&k| Shard::new(k, count).unwrap().owns(&digest)).unwrap()
}

/// A table's items read back through the server, by id, each as its attributes in order.
async fn items(ctx: &Ctx, name: &str) -> BTreeMap<i64, String> {
    ctx.scan(name)
        .await
        .into_iter()
        .map(|item| {
            let id = item["id"].as_n().unwrap().parse().unwrap();
            (id, format!("{:?}", item.into_iter().collect::<BTreeMap<_, _>>()))
        })
        .collect()
}

fn total(reports: &[(i32, Value, String)], field: &str) -> u64 {
    reports.iter().map(|(_, r, _)| r["total"][field].as_u64().unwrap()).sum()
}

#[tokio::test]
async fn shards_started_at_once_make_the_target_one_run_makes_and_each_writes_only_its_keys() {
    let (ctx, mappings) = world().await;
    ctx.sync(&[]);
    let single = items(&ctx, "big").await;
    assert_eq!(single.len(), ROWS as usize);

    let prefix = format!("{}sh-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 4);
    let reports = shards.run_all(&ctx, "night-1");
    for (code, report, stderr) in &reports {
        assert_eq!(*code, 0, "{stderr}");
        assert_eq!(report["run_id"], "night-1");
    }
    assert_eq!(items(&ctx, "sh-big").await, single, "the same items as one run makes");
    assert_eq!(total(&reports, "created"), ROWS as u64, "each item created once, by one shard");
    let mut all = BTreeSet::new();
    for k in 0..4 {
        let (puts, deletes) = shards.written(k);
        assert!(deletes.is_empty());
        assert!(!puts.is_empty(), "shard {k} has a quarter of the keys");
        for id in &puts {
            assert_eq!(owner(*id, 4), k, "shard {k} wrote {id}, which is not in its range");
            assert!(all.insert(*id), "{id} written by two shards");
        }
        assert_eq!(reports[k as usize].1["shard"], format!("{k}/4"));
        assert_eq!(reports[k as usize].1["total"]["created"].as_u64().unwrap(), puts.len() as u64);
    }
    assert_eq!(all.len(), ROWS as usize, "every key written by some shard");

    // A mutation round across the shards: exactly the changed items are written or deleted.
    ctx.sql(&[
        "UPDATE big SET v = v || ' changed' WHERE id IN (3, 77, 150, 222, 399)",
        "INSERT INTO big SELECT g, 'new ' || g, NULL FROM generate_series(401, 403) g",
        "DELETE FROM big WHERE id IN (10, 300)",
    ]);
    shards.clear();
    let reports = shards.run_all(&ctx, "night-2");
    for (code, _, stderr) in &reports {
        assert_eq!(*code, 0, "{stderr}");
    }
    let (mut puts, mut deletes) = (BTreeSet::new(), BTreeSet::new());
    for k in 0..4 {
        let (p, d) = shards.written(k);
        for id in p.iter().chain(&d) {
            assert_eq!(owner(*id, 4), k, "shard {k} wrote {id}");
        }
        puts.extend(p);
        deletes.extend(d);
    }
    assert_eq!(puts, BTreeSet::from([3, 77, 150, 222, 399, 401, 402, 403]));
    assert_eq!(deletes, BTreeSet::from([10, 300]));
    assert_eq!((total(&reports, "created"), total(&reports, "updated"), total(&reports, "deleted")), (3, 5, 2));
    assert_eq!(total(&reports, "unchanged"), ROWS as u64 - 5 - 2);
    ctx.sync(&[]);
    assert_eq!(items(&ctx, "sh-big").await, items(&ctx, "big").await, "still what one run makes");

    // history shows each sharded run once, summed over its shards.
    let history = ctx.command_in(shards.envs[0].path(), &["--json", "history", "local"]).output().unwrap();
    let history: Value = serde_json::from_slice(&history.stdout).unwrap();
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{history}");
    assert_eq!(runs[0]["run_id"], "night-2");
    assert_eq!(runs[0]["shards"], serde_json::json!({"count": 4, "recorded": 4, "missing": [], "failed": []}));
    assert_eq!((runs[0]["created"].as_u64(), runs[0]["deleted"].as_u64()), (Some(3), Some(2)));
    assert_eq!(runs[1]["created"].as_u64(), Some(ROWS as u64));
    assert!(ctx.leases().await.is_empty() && leases(&ctx, &prefix).await.is_empty(), "every lease released");
}

/// The lease items in the metadata table of `prefix`.
async fn leases(ctx: &Ctx, prefix: &str) -> Vec<crate::harness::Item> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let out = ctx
        .dynamo
        .query()
        .table_name(format!("{prefix}cache-metadata"))
        .key_condition_expression("pk = :lock")
        .expression_attribute_values(":lock", AttributeValue::S("LOCK".into()))
        .consistent_read(true)
        .send()
        .await;
    out.map(|o| o.items.unwrap_or_default()).unwrap_or_default()
}

/// Waits until shard `k`'s proxy has seen a batch written.
fn wait_for_a_write(shards: &Shards, k: u32, child: &mut Child) {
    let started = Instant::now();
    while shards.proxies[k as usize].exchanges("BatchWriteItem").is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "shard {k} ended before writing");
        assert!(started.elapsed() < Duration::from_secs(60), "shard {k} wrote nothing");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn a_shard_killed_mid_run_and_run_again_alone_completes_the_run_and_history_says_which_was_missing() {
    let (ctx, mappings) = world().await;
    ctx.sync(&[]);
    let single = items(&ctx, "big").await;
    let prefix = format!("{}sh-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 2);
    // Shard 1 reads its rows slowly past id 200 (the same items: a filter, not a column), so that it
    // is killed half-way, with some of its batches written.
    let slow = MAPPING.replace("FROM big", "FROM big WHERE id < 200 OR (SELECT true FROM pg_sleep(0.1 + 0 * id))");
    std::fs::write(shards.envs[1].path().join("mappings/big.toml"), slow).unwrap();
    let first = shards.start(&ctx, 0, "night-k", &[]);
    let mut killed = shards.start(&ctx, 1, "night-k", &[]);
    wait_for_a_write(&shards, 1, &mut killed);
    killed.kill().unwrap();
    let status = killed.wait().unwrap();
    assert!(!status.success());
    let (code, _, stderr, _) = finish(first, Instant::now(), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let partial = items(&ctx, "sh-big").await;
    assert!(partial.len() < single.len(), "shard 1 was killed before it finished");

    let history = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = ctx.command_in(shards.envs[0].path(), &all).output().unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let before = history(&["history", "local"]);
    let run = &before["runs"][0];
    assert_eq!(before["runs"].as_array().unwrap().len(), 1, "{before}");
    assert_eq!(run["shards"]["missing"], serde_json::json!(["1/2"]), "{run}");
    assert_eq!(run["outcome"]["status"], "incomplete");
    let text = ctx.command_in(shards.envs[0].path(), &["history", "local"]).output().unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains("run night-k in 2 shards (incomplete, exit 0, missing 1/2)"), "{text}");

    // Shard 1 alone, again, with the run's id: the killed process's lease is taken over (its
    // process is gone), and the run is complete.
    std::fs::write(shards.envs[1].path().join("mappings/big.toml"), MAPPING).unwrap();
    let again = shards.start(&ctx, 1, "night-k", &[]);
    let (code, _, stderr, _) = finish(again, Instant::now(), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(items(&ctx, "sh-big").await, single, "the run is complete");
    let after = history(&["history", "local"]);
    let run = &after["runs"][0];
    assert_eq!(run["shards"]["missing"], serde_json::json!([]), "{run}");
    assert_eq!((run["outcome"]["status"].as_str(), run["outcome"]["exit_code"].as_u64()), (Some("completed"), Some(0)));
    let report = history(&["report", "local", "--since", "all"]);
    assert_eq!(report["runs"], 1, "one run, whatever its shards: {report}");
    assert!(leases(&ctx, &prefix).await.is_empty(), "{:?}", leases(&ctx, &prefix).await);
}

#[tokio::test]
async fn overlapping_runs_are_refused_by_the_lock_and_the_shards_of_one_run_share_it() {
    let (ctx, mappings) = world().await;
    let prefix = format!("{}sh-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 2);
    // Shard 0 of 2 holds the lock while its query sleeps.
    let slow = MAPPING.replace("FROM big", "FROM big, pg_sleep(20)");
    std::fs::write(shards.envs[0].path().join("mappings/big.toml"), slow).unwrap();
    let mut holder = shards.start(&ctx, 0, "night-l", &[]);
    let started = Instant::now();
    while !leases(&ctx, &prefix).await.iter().any(|l| l.contains_key("shard")) {
        assert!(holder.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let envs = shards.envs[1].path();
    let refused = |args: &[&str], holder_says: &str| {
        let out = ctx.command_in(envs, args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("is locked by another run") && stderr.contains(holder_says), "{args:?}: {stderr}");
    };
    refused(&["sync", "local"], "shard 0/2 of run night-l");
    refused(&["sync", "local", "--shard", "1/4", "--run-id", "night-l"], "shard 0/2 of run night-l");
    refused(&["sync", "local", "--shard", "1/2", "--run-id", "another"], "shard 0/2 of run night-l");
    refused(&["sync", "local", "--shard", "0/2", "--run-id", "night-l"], "shard 0/2 of run night-l");
    // The other shard of the same run shares the table.
    let out = ctx.command_in(envs, &["sync", "local", "--shard", "1/2", "--run-id", "night-l"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // A run of an older ddbsync reads the run's lease as an ordinary live lease of the table.
    let marker = leases(&ctx, &prefix).await.into_iter().find(|l| !l.contains_key("shard")).expect("the marker");
    for field in ["run_id", "host", "started_at", "expires_at"] {
        assert!(marker[field].as_s().is_ok(), "{field}: {marker:?}");
    }
    assert!(marker["pid"].as_n().is_ok());
    holder.kill().unwrap();
    holder.wait().unwrap();
    // The killed holder's process is gone: its lease, and with it the run's, are free at once.
    let out = ctx.command_in(envs, &["sync", "local"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(leases(&ctx, &prefix).await.is_empty());
}

#[tokio::test]
async fn each_rejected_row_is_reported_once_across_the_shards() {
    let (ctx, mappings) = world().await;
    // A row without a key (no shard owns it) and one whose value DynamoDB cannot hold (its key's
    // owner reports it).
    ctx.sql(&["UPDATE big SET n = 'NaN' WHERE id = 42"]);
    let rejecting = MAPPING.replace("FROM big", "FROM big UNION ALL SELECT NULL, 'keyless', 1");
    std::fs::write(&mappings, &rejecting).unwrap();
    ctx.use_mappings("big.toml", &rejecting);
    let single = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(single.code(), 3, "{}", single.stderr());
    let single: Value = serde_json::from_str(&single.stdout()).unwrap();
    assert_eq!(single["total"]["rejected"], 2);

    let prefix = format!("{}sh-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 3);
    let reports = shards.run_all(&ctx, "night-r");
    let owner = owner(42, 3) as usize;
    for (k, (code, report, stderr)) in reports.iter().enumerate() {
        let mut keys: Vec<&str> =
            report["tables"][0]["rejected"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
        keys.sort();
        let mut wanted = Vec::new();
        if k == 0 {
            wanted.push("id=NULL");
        }
        if k == owner {
            wanted.push("id=42");
        }
        wanted.sort();
        assert_eq!(keys, wanted, "shard {k}: {report}");
        assert_eq!(*code, if wanted.is_empty() { 0 } else { 3 }, "shard {k}: {stderr}");
    }
    assert_eq!(total(&reports, "rejected"), 2, "each once, as one run reports them");
    assert_eq!(total(&reports, "created"), single["total"]["created"].as_u64().unwrap());
}

#[tokio::test]
async fn a_shard_stopped_by_sigterm_is_named_failed_until_it_is_run_again() {
    let (ctx, mappings) = world().await;
    let prefix = format!("{}sh-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 2);
    let slow = MAPPING.replace("FROM big", "FROM big WHERE id < 200 OR (SELECT true FROM pg_sleep(0.1 + 0 * id))");
    std::fs::write(shards.envs[1].path().join("mappings/big.toml"), slow).unwrap();
    let first = shards.start(&ctx, 0, "night-t", &[]);
    let mut stopped = shards.start(&ctx, 1, "night-t", &[]);
    wait_for_a_write(&shards, 1, &mut stopped);
    crate::harness::signal(&stopped, "TERM");
    let (code, _, stderr, _) = finish(stopped, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 5, "{stderr}");
    let (code, _, stderr, _) = finish(first, Instant::now(), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");

    let history = || {
        let out = ctx.command_in(shards.envs[0].path(), &["--json", "history", "local"]).output().unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["runs"][0].clone()
    };
    let run = history();
    assert_eq!(run["shards"]["failed"], serde_json::json!(["1/2"]), "{run}");
    assert_eq!(run["shards"]["missing"], serde_json::json!([]), "{run}");
    assert_eq!(
        (run["outcome"]["status"].as_str(), run["outcome"]["exit_code"].as_u64()),
        (Some("interrupted"), Some(5))
    );
    assert!(run["outcome"]["reason"].as_str().unwrap().starts_with("shard 1/2: "), "{run}");

    std::fs::write(shards.envs[1].path().join("mappings/big.toml"), MAPPING).unwrap();
    let again = shards.start(&ctx, 1, "night-t", &[]);
    let (code, _, stderr, _) = finish(again, Instant::now(), Duration::from_secs(120));
    assert_eq!(code, 0, "{stderr}");
    let run = history();
    assert_eq!(
        (run["outcome"]["status"].as_str(), run["shards"]["failed"].clone()),
        (Some("completed"), serde_json::json!([]))
    );
    assert_eq!(items(&ctx, "sh-big").await.len(), ROWS as usize);
}

#[tokio::test]
async fn shards_of_an_indexed_table_query_only_their_buckets_and_end_as_one_run() {
    let (ctx, _) = world().await;
    let mappings = ctx
        .use_mappings("big.toml", &MAPPING.replace("delete_missing = true", "delete_missing = true\ndiff = \"index\""));
    let prefix = format!("{}ix-", ctx.prefix);
    let shards = Shards::new(&ctx, &mappings, &prefix, 4);
    // The shards create the indexed table at once, then a mutation round reads the index.
    for (code, _, stderr) in shards.run_all(&ctx, "load") {
        assert_eq!(code, 0, "{stderr}");
    }
    ctx.sql(&[
        "UPDATE big SET v = v || ' changed' WHERE id IN (3, 77, 150, 222, 399)",
        "INSERT INTO big SELECT g, 'new ' || g, NULL FROM generate_series(401, 403) g",
        "DELETE FROM big WHERE id IN (10, 300)",
    ]);
    shards.clear();
    let reports = shards.run_all(&ctx, "round");
    let (mut puts, mut deletes) = (BTreeSet::new(), BTreeSet::new());
    for k in 0..4u32 {
        let (code, report, stderr) = &reports[k as usize];
        assert_eq!(*code, 0, "{stderr}");
        assert_eq!(report["tables"][0]["diff"], "index", "{report}");
        let proxy = &shards.proxies[k as usize];
        assert!(
            proxy.requests("Scan").iter().all(|r| r["TableName"].as_str().unwrap().ends_with("cache-metadata")),
            "shard {k} Scans no data table"
        );
        let queried: BTreeSet<u32> = proxy
            .requests("Query")
            .iter()
            .filter(|r| r["IndexName"] == "_ddbsync_diff_b64")
            .map(|r| r["ExpressionAttributeValues"][":p"]["N"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(queried, Shard::new(k, 4).unwrap().buckets().collect(), "shard {k} reads its buckets, each once");
        let (p, d) = shards.written(k);
        for id in p.iter().chain(&d) {
            assert_eq!(owner(*id, 4), k, "shard {k} wrote {id}");
        }
        puts.extend(p);
        deletes.extend(d);
    }
    assert_eq!(puts, BTreeSet::from([3, 77, 150, 222, 399, 401, 402, 403]));
    assert_eq!(deletes, BTreeSet::from([10, 300]));
    // The oracle: the table read back against PostgreSQL.
    let stored: BTreeMap<i64, String> = ctx
        .scan("ix-big")
        .await
        .iter()
        .map(|i| (i["id"].as_n().unwrap().parse().unwrap(), i["v"].as_s().unwrap().clone()))
        .collect();
    let source: BTreeMap<i64, String> = ctx
        .query("SELECT id || '|' || v FROM big")
        .iter()
        .map(|row| row.split_once('|').map(|(id, v)| (id.parse().unwrap(), v.to_string())).unwrap())
        .collect();
    assert_eq!(stored, source);
}

#[tokio::test]
async fn each_shard_lists_its_rejects_in_a_file_of_its_own_and_a_cap_below_the_shard_count_is_refused() {
    let (ctx, _) = world().await;
    ctx.use_mappings("big.toml", &MAPPING.replace("SELECT id, v, n FROM big", "SELECT id, v, n::float8 AS n FROM big"));
    ctx.sql(&["UPDATE big SET n = 'NaN' WHERE id <= 40"]);
    let file = ctx.envs.path().join("rejects.jsonl");
    let shards = Shards::new(&ctx, &ctx.envs.path().join("mappings/big.toml"), &ctx.prefix, 4);
    let children: Vec<Child> =
        (0..4).map(|k| shards.start(&ctx, k, "rej", &["--rejects-file", file.to_str().unwrap()])).collect();
    let started = Instant::now();
    let mut listed = 0;
    for (k, child) in children.into_iter().enumerate() {
        let (code, stdout, stderr, _) = finish(child, started, Duration::from_secs(120));
        assert_eq!(code, 3, "{stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        let own = ctx.envs.path().join(format!("rejects-shard-{k}-of-4.jsonl"));
        assert_eq!(report["rejects_file"], own.display().to_string());
        let lines = std::fs::read_to_string(&own).unwrap().lines().count();
        assert_eq!(lines as u64, report["total"]["rejected"].as_u64().unwrap(), "shard {k}'s file holds its rejects");
        listed += lines;
    }
    assert_eq!(listed, 40, "every rejected row listed once");

    let capped =
        ctx.ddbsync(&["sync", "local", "--shard", "0/4", "--run-id", "x", "--max-write-units-per-second", "3"]);
    assert_eq!(capped.code(), 2, "{}", capped.stderr());
    assert!(capped.stderr().contains("cannot be shared by 4 shards"), "{}", capped.stderr());
}
