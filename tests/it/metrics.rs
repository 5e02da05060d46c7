//! A sync's metrics where a scheduler reads them: the Prometheus file for node_exporter's textfile
//! collector, a real Pushgateway (read back through its own API), CloudWatch EMF lines, and the
//! JSON logs with the run's id. Figures are checked against DynamoDB read back, not against
//! ddbsync's report alone.

use std::collections::BTreeMap;

use crate::harness::{http_get, pushgateway, Ctx, Run};

const SCALE: u32 = 12;

/// One sample: the metric's name, its labels, its value.
type Sample = (String, BTreeMap<String, String>, f64);

/// The samples of a Prometheus text (comments skipped; label values with `\"` and `\\` unescaped).
fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (name, rest) = line.split_once('{').unwrap_or_else(|| line.split_once(' ').unwrap());
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if line.contains('{') {
            loop {
                rest = rest.trim_start_matches(',');
                if let Some(after) = rest.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = rest.split_once("=\"").unwrap();
                let mut value = String::new();
                let mut chars = after.char_indices();
                let end = loop {
                    match chars.next().unwrap() {
                        (i, '"') => break i,
                        (_, '\\') => value.push(chars.next().unwrap().1),
                        (_, c) => value.push(c),
                    }
                };
                labels.insert(key.to_string(), value);
                rest = &after[end + 1..];
            }
        }
        let value = rest.trim().split(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"));
        out.push((name.to_string(), labels, value));
    }
    out
}

/// The value of the one sample named `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, labels, _)| n == name && with.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(v)))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(found.len() <= 1, "{name} {with:?}: {found:?}");
    found.first().copied()
}

fn sync_with(ctx: &Ctx, args: &[&str]) -> Run {
    let mut all = vec!["--json", "sync", "local"];
    all.extend_from_slice(args);
    ctx.ddbsync(&all)
}

/// Breaks the source: the lessons query then fails (exit 1).
fn break_source(ctx: &Ctx) {
    ctx.sql(&["ALTER TABLE lessons RENAME TO lessons_gone"]);
}

#[tokio::test]
async fn the_metrics_file_holds_the_runs_figures_and_a_failed_run_keeps_the_last_success() {
    let ctx = Ctx::new(SCALE).await;
    let file = ctx.envs.path().join("textfile").join("ddbsync.prom");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let path = file.to_str().unwrap();
    let before = chrono::Utc::now().timestamp() as f64;
    let first = sync_with(&ctx, &["--metrics-file", path]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let report: serde_json::Value = serde_json::from_str(&first.stdout()).expect("stdout is the JSON report alone");
    let text = std::fs::read_to_string(&file).unwrap();
    let s = samples(&text);
    let lessons = ctx.table("lessons");
    let stored = ctx.scan("lessons").await.len() as f64;
    let env_table = [("env", "local"), ("table", lessons.as_str())];
    let created = value(&s, "ddbsync_items", &[env_table[0], env_table[1], ("result", "created")]);
    assert_eq!(created, Some(stored), "created items as DynamoDB holds them:\n{text}");
    assert_eq!(value(&s, "ddbsync_items", &[env_table[0], env_table[1], ("result", "unchanged")]), Some(0.0));
    let units = value(&s, "ddbsync_write_units", &env_table).unwrap();
    assert_eq!(
        Some(units),
        report["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == lessons.as_str())
            .and_then(|t| t["write_units"].as_f64())
    );
    assert!(units >= stored, "at least one unit per item written: {units}");
    assert!(value(&s, "ddbsync_cost_usd", &env_table).unwrap() > 0.0);
    assert_eq!(value(&s, "ddbsync_run_exit_code", &[("env", "local")]), Some(0.0));
    let duration = value(&s, "ddbsync_run_duration_seconds", &[("env", "local")]).unwrap();
    assert!(duration > 0.0 && duration <= first.elapsed.as_secs_f64(), "{duration} vs {:?}", first.elapsed);
    let success = value(&s, "ddbsync_last_success_timestamp_seconds", &env_table).unwrap();
    let after = chrono::Utc::now().timestamp() as f64 + 1.0;
    assert!(before <= success && success <= after, "{before} <= {success} <= {after}");
    let tables = ["lessons", "passages", "topics"].map(|t| ctx.table(t));
    for t in &tables {
        assert_eq!(
            value(&s, "ddbsync_last_success_timestamp_seconds", &[("env", "local"), ("table", t)]),
            Some(success)
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644, "the collector reads it");
    }
    assert_eq!(std::fs::read_dir(file.parent().unwrap()).unwrap().count(), 1, "no temporary file left beside it");

    break_source(&ctx);
    let failed = sync_with(&ctx, &["--metrics-file", path]);
    assert_ne!(failed.code(), 0, "{}", failed.stderr());
    let s = samples(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(value(&s, "ddbsync_run_exit_code", &[("env", "local")]), Some(f64::from(failed.code() as u8)));
    for t in &tables {
        let kept = value(&s, "ddbsync_last_success_timestamp_seconds", &[("env", "local"), ("table", t)]);
        assert_eq!(kept, Some(success), "{t}: the last success survives a failed run");
    }
    assert_eq!(
        value(&s, "ddbsync_items", &[env_table[0], env_table[1], ("result", "created")]),
        None,
        "no figures of a run that read nothing"
    );
}

#[tokio::test]
async fn a_missing_metrics_directory_is_refused_before_the_run() {
    let ctx = Ctx::new(2).await;
    let run = sync_with(&ctx, &["--metrics-file", "/nonexistent-dir/ddbsync.prom"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("--metrics-file /nonexistent-dir/ddbsync.prom: /nonexistent-dir is not a directory"),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("lessons").await, "nothing was done");
}

#[tokio::test]
async fn the_push_goes_to_one_group_per_job_and_env_and_a_failed_run_keeps_the_last_success() {
    let ctx = Ctx::new(SCALE).await;
    let gateway = pushgateway();
    let secret = "pUsH-s3cret-91";
    let with_auth = gateway.replacen("http://", &format!("http://monitor:{secret}@"), 1);
    let first = sync_with(&ctx, &["--pushgateway", &with_auth]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    serde_json::from_str::<serde_json::Value>(&first.stdout()).expect("stdout is the JSON report alone");
    let second = sync_with(&ctx, &["--pushgateway", &with_auth]);
    assert_eq!(second.code(), 0, "{}", second.stderr());

    // The Pushgateway's own view: one group, job and env, whatever the number of runs.
    let api: serde_json::Value = serde_json::from_str(&http_get(&format!("{gateway}/api/v1/metrics"))).unwrap();
    let groups: Vec<&serde_json::Value> =
        api["data"].as_array().unwrap().iter().filter(|g| g["labels"]["job"] == "ddbsync").collect();
    assert_eq!(groups.len(), 1, "{api}");
    let labels = groups[0]["labels"].as_object().unwrap();
    let mut keys: Vec<&str> = labels.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["env", "job"], "grouped by job and environment only, never by run: {labels:?}");
    assert_eq!(labels["env"], "local");

    let s = samples(&http_get(&format!("{gateway}/metrics")));
    let lessons = ctx.table("lessons");
    let stored = ctx.scan("lessons").await.len() as f64;
    let ours = [("job", "ddbsync"), ("env", "local"), ("table", lessons.as_str())];
    let unchanged = value(&s, "ddbsync_items", &[ours[0], ours[1], ours[2], ("result", "unchanged")]);
    assert_eq!(unchanged, Some(stored), "the second run's figures replaced the first's");
    assert_eq!(value(&s, "ddbsync_items", &[ours[0], ours[1], ours[2], ("result", "created")]), Some(0.0));
    assert_eq!(value(&s, "ddbsync_write_units", &ours), Some(0.0));
    let success = value(&s, "ddbsync_last_success_timestamp_seconds", &ours).expect("a last success");
    assert!(success > 1.7e9, "{success}");

    break_source(&ctx);
    let failed = sync_with(&ctx, &["--pushgateway", &with_auth]);
    assert_ne!(failed.code(), 0);
    let s = samples(&http_get(&format!("{gateway}/metrics")));
    let code = value(&s, "ddbsync_run_exit_code", &[("job", "ddbsync"), ("env", "local")]);
    assert_eq!(code, Some(f64::from(failed.code() as u8)), "the failed run was pushed");
    assert_eq!(value(&s, "ddbsync_last_success_timestamp_seconds", &ours), Some(success), "and kept the last success");

    for run in [&first, &second, &failed] {
        assert!(!run.stderr().contains(secret) && !run.stdout().contains(secret), "{}", run.stderr());
    }
}

#[tokio::test]
async fn a_pushgateway_that_is_gone_is_a_warning_and_the_exit_code_is_the_runs() {
    let ctx = Ctx::new(2).await;
    let port = crate::harness::free_port();
    let run = sync_with(&ctx, &["--pushgateway", &format!("http://u:gone-pw-55@127.0.0.1:{port}/")]);
    assert_eq!(run.code(), 0, "the data were synced: {}", run.stderr());
    let stderr = run.stderr();
    assert!(
        stderr.contains(&format!("--pushgateway http://127.0.0.1:{port}/: the metrics were not pushed")),
        "{stderr}"
    );
    assert!(stderr.contains("exit code unchanged"), "{stderr}");
    assert!(!stderr.contains("gone-pw-55"), "{stderr}");
    serde_json::from_str::<serde_json::Value>(&run.stdout()).expect("stdout is the JSON report alone");
    let bad = sync_with(&ctx, &["--pushgateway", "ftp://u:gone-pw-55@host/"]);
    assert_eq!(bad.code(), 2);
    assert!(
        bad.stderr().contains("--pushgateway ftp://host/: the scheme is ftp, not http or https"),
        "{}",
        bad.stderr()
    );
    assert!(!bad.stderr().contains("gone-pw-55"));
}

#[tokio::test]
async fn emf_lines_on_stderr_carry_each_tables_figures_and_stdout_keeps_the_report() {
    let ctx = Ctx::new(SCALE).await;
    let run = sync_with(&ctx, &["--emf"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).expect("stdout is the JSON report alone");
    let lines: Vec<serde_json::Value> = run
        .stderr()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert_eq!(lines.len(), 4, "three tables and the run: {}", run.stderr());
    for name in ["lessons", "passages", "topics"] {
        let table = ctx.table(name);
        let line = lines.iter().find(|l| l["table"] == table.as_str()).unwrap_or_else(|| panic!("{table}"));
        assert_eq!(line["created"].as_f64(), Some(ctx.scan(name).await.len() as f64), "{line}");
        assert_eq!(line["env"], "local");
        let in_report = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == table.as_str()).unwrap();
        assert_eq!(line["write_units"].as_f64(), in_report["write_units"].as_f64());
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Dimensions"], serde_json::json!([["env", "table"]]));
    }
    let whole = lines.iter().find(|l| l.get("table").is_none()).unwrap();
    assert_eq!((whole["exit_code"].as_f64(), whole["succeeded"].as_f64()), (Some(0.0), Some(1.0)));
}

#[tokio::test]
async fn json_logs_carry_every_phase_with_the_runs_id_and_no_colour() {
    let ctx = Ctx::new(SCALE).await;
    ctx.use_mappings(
        "one.toml",
        "[tables.lessons]\npartition_key = \"lesson_id\"\ndelete_missing = true\n\
         query = \"SELECT id AS lesson_id, title FROM lessons\"\n",
    );
    ctx.sync(&[]);
    ctx.use_mappings(
        "one.toml",
        "[tables.lessons]\npartition_key = \"lesson_id\"\ndelete_missing = true\n\
         query = \"SELECT id AS lesson_id, title || '!' AS title FROM lessons WHERE id <> 1\"\n",
    );
    let mut ids = Vec::new();
    for dry in [true, false] {
        let mut args = vec!["--log-format", "json", "-v", "--json", "sync", "local"];
        if dry {
            args.push("--dry-run");
        }
        let stored = ctx.scan("lessons").await.len() as u64;
        let run = ctx.ddbsync(&args);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        serde_json::from_str::<serde_json::Value>(&run.stdout()).expect("stdout is the JSON report alone");
        assert!(!run.output.stderr.contains(&0x1b), "no ANSI escape outside a terminal");
        let events: Vec<serde_json::Value> = run
            .stderr()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
            .collect();
        let run_ids: std::collections::BTreeSet<&str> =
            events.iter().map(|e| e["span"]["run_id"].as_str().unwrap_or_else(|| panic!("no run id: {e}"))).collect();
        assert_eq!(run_ids.len(), 1, "one run id per run: {run_ids:?}");
        ids.push(run_ids.into_iter().next().unwrap().to_string());
        let message = |start: &str| {
            events
                .iter()
                .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.starts_with(start)))
                .unwrap_or_else(|| panic!("no event \"{start}…\" in {}", run.stderr()))
        };
        assert_eq!(message("connected to")["level"], "INFO");
        assert_eq!(message("described the table")["fields"]["table"], ctx.table("lessons").as_str());
        let scanned = message("scanned ");
        assert_eq!(scanned["fields"]["items"].as_u64(), Some(stored), "{scanned}");
        let wrote = message("wrote ");
        assert_eq!(wrote["fields"]["updated"].as_u64(), Some(SCALE as u64 - 1), "{wrote}");
        assert_eq!(message("deleted ")["fields"]["items"].as_u64(), Some(1));
        if dry {
            message("the dry run is not recorded");
        } else {
            message("recorded the run");
        }
    }
    assert_ne!(ids[0], ids[1], "each run its own id, dry runs included");
}

#[tokio::test]
async fn a_run_stopped_by_sigterm_writes_its_metrics_with_exit_code_5() {
    use std::time::{Duration, Instant};
    let ctx = Ctx::new(2).await;
    let file = ctx.envs.path().join("ddbsync.prom");
    std::fs::write(&file, "ddbsync_last_success_timestamp_seconds{env=\"local\",table=\"earlier\"} 1700000000\n")
        .unwrap();
    let args = ["--log-format", "json", "-v", "sync", "local", "--metrics-file", file.to_str().unwrap(), "--emf"];
    let child = sleeping_sync(&ctx, &args);
    let leases = ctx.leases().await;
    assert_eq!(leases.len(), 1, "the run holds the lock of its one table");
    let lease_run = crate::harness::text(&leases[0]["run_id"]);
    crate::harness::signal(&child, "TERM");
    let (code, _, stderr, took) = crate::harness::finish(child, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 5, "{stderr}");
    assert!(took < Duration::from_secs(5), "metrics written {took:?} after the signal");
    let s = samples(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(value(&s, "ddbsync_run_exit_code", &[("env", "local")]), Some(5.0));
    let earlier = value(&s, "ddbsync_last_success_timestamp_seconds", &[("env", "local"), ("table", "earlier")]);
    assert_eq!(earlier, Some(1_700_000_000.0), "carried from the previous file");
    let emf: Vec<serde_json::Value> = stderr.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    // Every log event, the final error among them, names the run that holds the lease.
    let events: Vec<&serde_json::Value> = emf.iter().filter(|v| v.get("_aws").is_none()).collect();
    assert!(events.iter().any(|e| e["level"] == "ERROR" && e["fields"]["exit_code"] == 5), "{stderr}");
    for event in &events {
        assert_eq!(event["span"]["run_id"].as_str(), Some(lease_run.as_str()), "{event}");
    }
    let run = emf.iter().find(|v| v.get("_aws").is_some() && v.get("exit_code").is_some()).expect("the run's EMF line");
    assert_eq!(run["exit_code"].as_f64(), Some(5.0));
}

#[tokio::test]
async fn a_metrics_file_that_is_a_fifo_is_refused_and_a_symbolic_link_is_followed() {
    use std::os::unix::fs::FileTypeExt;
    let ctx = Ctx::new(SCALE).await;
    let fifo = ctx.envs.path().join("fifo.prom");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Bounded: reading a FIFO as the previous file would wait for a writer for ever.
    let child = ctx
        .command(&["--json", "sync", "local", "--metrics-file", fifo.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (code, _, stderr, _) =
        crate::harness::finish(child, std::time::Instant::now(), std::time::Duration::from_secs(20));
    assert_eq!(code, 2, "{stderr}");
    let expected = format!("--metrics-file {}: is a FIFO (named pipe), not a regular file", fifo.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is left as it was");
    assert!(!ctx.table_exists("lessons").await, "nothing was done");

    // A link into the collector's directory: the file it names is replaced, in its own directory.
    let textfile = ctx.envs.path().join("textfile");
    std::fs::create_dir(&textfile).unwrap();
    let real = textfile.join("ddbsync.prom");
    std::fs::write(&real, "ddbsync_last_success_timestamp_seconds{env=\"local\",table=\"earlier\"} 1700000000\n")
        .unwrap();
    let link = ctx.envs.path().join("link.prom");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = sync_with(&ctx, &["--metrics-file", link.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
    let s = samples(&std::fs::read_to_string(&real).unwrap());
    let lessons = ctx.table("lessons");
    let stored = ctx.scan("lessons").await.len() as f64;
    let created = value(&s, "ddbsync_items", &[("env", "local"), ("table", &lessons), ("result", "created")]);
    assert_eq!(created, Some(stored), "the file the link names holds the run's figures");
    let earlier = value(&s, "ddbsync_last_success_timestamp_seconds", &[("env", "local"), ("table", "earlier")]);
    assert_eq!(earlier, Some(1_700_000_000.0), "carried through the link");
    let names: Vec<_> = std::fs::read_dir(&textfile).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "no temporary file left beside it: {names:?}");

    // Another environment's file is refused: the run would drop its series.
    std::fs::write(&real, "ddbsync_run_exit_code{env=\"prod\"} 0\n").unwrap();
    let run = sync_with(&ctx, &["--metrics-file", real.to_str().unwrap()]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("holds the metrics of environment \"prod\""), "{}", run.stderr());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "ddbsync_run_exit_code{env=\"prod\"} 0\n");
}

#[tokio::test]
async fn a_pushgateway_url_without_a_scheme_is_told_so_and_never_shows_the_password() {
    let ctx = Ctx::new(2).await;
    let run = sync_with(&ctx, &["--pushgateway", "bob:hunter2@127.0.0.1:9091"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    for text in [run.stderr(), run.stdout()] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("--pushgateway 127.0.0.1:9091: it has no http:// or https:// (add http://"), "{text}");
    }
    let doc: serde_json::Value = serde_json::from_str(&run.stdout()).expect("the JSON error document");
    assert_eq!(doc["error"]["exit_code"], 2);
}

/// The JSON events on a run's stderr (EMF lines apart), each checked to be an object.
fn events(stderr: &str) -> Vec<serde_json::Value> {
    stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .filter(|v| v.get("_aws").is_none())
        .collect()
}

/// The one run id every event carries.
fn one_run_id(events: &[serde_json::Value]) -> String {
    let ids: std::collections::BTreeSet<&str> = events
        .iter()
        .map(|e| e["span"]["run_id"].as_str().unwrap_or_else(|| panic!("an event without the run id: {e}")))
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap().to_string()
}

#[tokio::test]
async fn json_logs_of_failed_runs_and_of_warnings_carry_the_run_id_without_dash_v() {
    let ctx = Ctx::new(2).await;
    for (args, code) in [
        (vec!["--log-format", "json", "sync", "local", "--table", "nope"], 2),
        (vec!["--log-format", "json", "sync", "nosuch"], 2),
    ] {
        let run = ctx.ddbsync(&args);
        assert_eq!(run.code(), code, "{}", run.stderr());
        let events = events(&run.stderr());
        one_run_id(&events);
        assert!(events.iter().any(|e| e["level"] == "ERROR" && e["fields"]["exit_code"] == code), "{}", run.stderr());
    }
    // A warning (the push failed) and the EMF lines: the same id.
    let port = crate::harness::free_port();
    let gone = format!("http://127.0.0.1:{port}");
    let run = ctx.ddbsync(&["--log-format", "json", "sync", "local", "--pushgateway", &gone, "--emf"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let events = events(&run.stderr());
    let id = one_run_id(&events);
    assert!(events.iter().any(|e| e["level"] == "WARN"
        && e["fields"]["message"].as_str().is_some_and(|m| m.contains("the metrics were not pushed"))));
    let emf: Vec<serde_json::Value> = run
        .stderr()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    assert!(!emf.is_empty());
    for line in &emf {
        assert_eq!(line["run_id"].as_str(), Some(id.as_str()), "{line}");
    }
}

/// Runs a sync that pushes to a Pushgateway that accepts and never answers, sends `signals` once
/// the push has connected, and returns the exit code, stdout, stderr and the time after the signals.
fn stalled_push(ctx: &Ctx, signals: usize) -> (i32, String, String, std::time::Duration) {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let args = ["--json", "sync", "local", "--pushgateway", url.as_str()];
    let child = ctx.command(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    listener.set_nonblocking(true).unwrap();
    let started = Instant::now();
    let _held = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(_) => {
                assert!(started.elapsed() < Duration::from_secs(60), "the push never connected");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    for _ in 0..signals {
        crate::harness::signal(&child, "TERM");
    }
    crate::harness::finish(child, Instant::now(), Duration::from_secs(30))
}

#[tokio::test]
async fn a_signal_during_the_push_cuts_it_short_and_the_exit_code_is_the_runs() {
    let ctx = Ctx::new(SCALE).await;
    for signals in [1, 2] {
        let (code, stdout, stderr, took) = stalled_push(&ctx, signals);
        assert_eq!(code, 0, "{signals} signal(s), the run completed: {stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("the report");
        assert_eq!(report["outcome"]["exit_code"], 0, "{report}");
        assert!(took < std::time::Duration::from_secs(3), "{signals} signal(s): ended {took:?} after");
        if signals == 1 {
            assert!(stderr.contains("SIGTERM: the metrics' delivery was cut short (the push to"), "{stderr}");
        }
    }
    let stored = ctx.scan("lessons").await.len();
    assert_eq!(stored, SCALE as usize, "the data were synced");
}

#[tokio::test]
async fn a_report_that_cannot_be_written_to_stdout_says_so() {
    let ctx = Ctx::new(2).await;
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let out = ctx.command(&["sync", "local"]).stdin(std::process::Stdio::null()).stdout(full).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: writing the result to stdout failed: No space left on device"), "{stderr}");
}

#[tokio::test]
async fn environments_dot_and_dot_dot_reach_a_real_pushgateway_as_their_own_groups() {
    let gateway = pushgateway();
    let push = ddbsync::export::Pushgateway::parse(&gateway).unwrap();
    for env in [".", ".."] {
        push.push(env, "ddbsync_run_exit_code 0\n".into(), true).await.unwrap_or_else(|e| panic!("{env}: {e}"));
    }
    let api: serde_json::Value = serde_json::from_str(&http_get(&format!("{gateway}/api/v1/metrics"))).unwrap();
    let mut envs: Vec<&str> =
        api["data"].as_array().unwrap().iter().filter_map(|g| g["labels"]["env"].as_str()).collect();
    envs.sort();
    assert_eq!(envs, [".", ".."], "{api}");
}

#[tokio::test]
async fn a_second_signal_is_a_json_event_of_the_run_under_log_format_json() {
    use std::time::{Duration, Instant};
    let ctx = Ctx::new(2).await;
    let args = ["--json", "--log-format", "json", "sync", "local"];
    let child = sleeping_sync(&ctx, &args);
    let pid = child.id() as i32;
    // DynamoDB stops answering: the first signal's stop (recording the run) waits on it, so that
    // the second comes while the first's stop is under way.
    ctx.proxy.set_stalled(true);
    for _ in 0..2 {
        // SAFETY: kill(2) on our own child's pid, which it has not reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, stdout, stderr, _) = crate::harness::finish(child, Instant::now(), Duration::from_secs(30));
    ctx.proxy.set_stalled(false);
    assert_eq!(code, 5, "{stderr}");
    // With --json, stdout holds the one error document even though the process ended at once.
    let documents: Vec<serde_json::Value> =
        serde_json::Deserializer::from_str(&stdout).into_iter().map(Result::unwrap).collect();
    assert_eq!(documents.len(), 1, "{stdout}");
    assert_eq!(documents[0]["error"]["exit_code"], 5, "{stdout}");
    assert_eq!(documents[0]["error"]["kind"], "interrupted", "{stdout}");
    let events = events(&stderr);
    one_run_id(&events);
    let again = events
        .iter()
        .find(|e| e["fields"]["message"].as_str().is_some_and(|m| m.starts_with("SIGTERM again: exiting at once")))
        .unwrap_or_else(|| panic!("no event for the second signal: {stderr}"));
    assert_eq!((again["level"].as_str(), again["fields"]["exit_code"].as_i64()), (Some("ERROR"), Some(5)));
}

/// Starts ddbsync with `args` on a mapping of `lessons` whose query sleeps 30 s, and returns once
/// PostgreSQL shows that query running: the run then holds its lock and has written nothing.
fn sleeping_sync(ctx: &Ctx, args: &[&str]) -> std::process::Child {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    ctx.use_mappings(
        "slow.toml",
        "[tables.lessons]\npartition_key = \"lesson_id\"\nquery = \"SELECT id AS lesson_id, title FROM lessons, pg_sleep(30)\"\n",
    );
    let child = ctx.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let started = Instant::now();
    let running = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND state = 'active' AND query LIKE '%pg_sleep(30)%' \
         AND application_name = 'ddbsync'",
        ctx.db
    );
    while ctx.query(&running)[0] == "0" {
        assert!(started.elapsed() < Duration::from_secs(30), "the query never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}
