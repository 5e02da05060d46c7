//! The `--json` contract: real outputs of every command that reports, validated against
//! `schema/ddbsync-output.schema.json` (closed objects: a renamed or an unlisted field fails), errors
//! as one JSON document on stdout, and `sync --dry-run --exit-code`, judged by what DynamoDB holds.

use serde_json::{json, Value};

use crate::harness::{repo, text, Ctx, Run};

/// The schema file, as users get it.
fn schema() -> Value {
    let path = repo().join("schema/ddbsync-output.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The errors of `value` against the schema's document `def` (a key of its `$defs`), and, for
/// any document, against the whole schema (one of its documents).
pub fn errors(def: &str, value: &Value) -> Vec<String> {
    let whole = schema();
    let mut one = whole.clone();
    let root = one.as_object_mut().unwrap();
    root.remove("oneOf");
    root.insert("$ref".into(), json!(format!("#/$defs/{def}")));
    let one = jsonschema::draft202012::new(&one).expect("the schema compiles");
    let mut found: Vec<String> = one.iter_errors(value).map(|e| format!("{e} (at {})", e.instance_path())).collect();
    let whole = jsonschema::draft202012::new(&whole).expect("the schema compiles");
    if found.is_empty() && !whole.is_valid(value) {
        found.push("valid as its own document but not as one of the schema's documents".into());
    }
    found
}

/// The one JSON document on the run's stdout (a second one, or anything after it, fails), valid
/// as the schema's `def`, with this version.
fn document(run: &Run, def: &str) -> Value {
    let out = run.stdout();
    let value: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: not one JSON document:\n{out}"));
    let found = errors(def, &value);
    assert!(found.is_empty(), "{def}: {found:#?}\n{value:#}");
    assert_eq!(value["schema_version"], 1);
    value
}

#[tokio::test]
async fn every_json_output_matches_the_schema() {
    let ctx = Ctx::new(5).await;
    document(&ctx.ddbsync(&["--json", "envs"]), "envs");
    let run = ctx.ddbsync(&["--json", "check", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    document(&run, "check");

    // A dry run with --exit-code: everything is to be written, so 6, and DynamoDB holds nothing.
    let run = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--exit-code"]);
    assert_eq!(run.code(), 6, "{}", run.stderr());
    let dry = document(&run, "sync");
    assert_eq!(dry["outcome"]["exit_code"], 6, "the report says the process's code");
    assert!(!ctx.table_exists("lessons").await, "a dry run creates nothing");

    let run = ctx.ddbsync(&["--json", "tables", "create", "local", "--table", "lessons"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    document(&run, "tables");
    let synced = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(synced.code(), 0, "{}", synced.stderr());
    let synced = document(&synced, "sync");
    let stored = ctx.scan("lessons").await.len() as u64;
    assert!(stored > 0);
    assert_eq!(synced["total"]["created"].as_u64(), dry["total"]["created"].as_u64(), "the dry run's figures");
    let money = &synced["total"];
    let (cost, potential, saved) = (
        money["cost_usd"].as_f64().unwrap(),
        money["potential_usd"].as_f64().unwrap(),
        money["saved_usd"].as_f64().unwrap(),
    );
    assert!(cost > 0.0 && (potential - cost - saved).abs() < 1e-12, "{money}");

    // Nothing left to do: a dry run with --exit-code exits 0.
    let run = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--exit-code"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(document(&run, "sync")["outcome"]["exit_code"], 0);

    // Two titles change: 6, two updates in the report, and DynamoDB still holds the old titles.
    ctx.sql(&["UPDATE lessons SET title = 'changed ' || id WHERE id <= 2"]);
    let run = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--exit-code"]);
    assert_eq!(run.code(), 6, "{}", run.stderr());
    assert_eq!(document(&run, "sync")["total"]["updated"], 2);
    let titles: Vec<String> = ctx.scan("lessons").await.iter().map(|i| text(&i["title"])).collect();
    assert!(titles.iter().all(|t| !t.starts_with("changed ")), "the dry run wrote: {titles:?}");
    // Without --exit-code the same dry run exits 0, as before.
    assert_eq!(ctx.ddbsync(&["sync", "local", "--dry-run", "--table", "lessons"]).code(), 0);

    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--table", "lessons"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let verified = document(&run, "verify");
    assert_eq!(verified["tables"][0]["differing"]["count"], 2);
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--table", "lessons", "--repair", "--dry-run"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(document(&run, "verify_repair")["repair"]["tables"][0]["updated"], 2);

    assert_eq!(ctx.ddbsync(&["--json", "sync", "local"]).code(), 0);
    // --repair with nothing to repair says it did not run, and why, rather than leave `repair` out.
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--table", "lessons", "--repair", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let not_run = document(&run, "verify_repair");
    assert_eq!(not_run["repair"]["ran"], false, "{not_run}");
    assert!(not_run["repair"]["reason"].as_str().unwrap().contains("no differences"), "{not_run}");
    let history = document(&ctx.ddbsync(&["--json", "history", "local"]), "history");
    assert_eq!(history["runs"].as_array().map(Vec::len), Some(2), "{history}");
    // A completed run says so with `reason: null`, and a run without --param has `params: {}`.
    for doc in [&synced, &history["runs"][0]] {
        assert_eq!((&doc["outcome"]["reason"], &doc["params"]), (&Value::Null, &json!({})), "{doc}");
    }
    assert_eq!(history["runs"][1]["cost_usd"], synced["total"]["cost_usd"], "the same name and figure: {history}");
    let summary = document(&ctx.ddbsync(&["--json", "report", "local", "--since", "all"]), "report");
    assert_eq!(summary["runs"], 2);

    let archive = ctx.envs.path().join("contract.ddbsync.tar");
    let archive = archive.to_str().unwrap();
    let run = ctx.ddbsync(&["--json", "backup", "local", "--table", "lessons", "--output", archive]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(document(&run, "backup")["manifest"]["tables"][0]["items"].as_u64(), Some(stored));
    let run = ctx.ddbsync(&["--json", "restore", archive, "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(document(&run, "restore")["tables"][0]["written"].as_u64(), Some(stored));
    assert_eq!(ctx.scan("lessons").await.len() as u64, stored, "the restore put back every item");

    // The schema is closed: the sync's report with a field renamed back to its old name fails.
    let mut renamed = synced.clone();
    let total = renamed["total"].as_object_mut().unwrap();
    let cost = total.remove("cost_usd").unwrap();
    total.insert("cost".into(), json!({ "actual": cost }));
    assert!(!errors("sync", &renamed).is_empty(), "a renamed field passes the schema");
}

#[tokio::test]
async fn errors_are_one_json_document_on_stdout_with_json() {
    let ctx = Ctx::new(1).await;
    // A profile that does not exist (exit 2), from the command.
    let run = ctx.ddbsync(&["--json", "sync", "nowhere"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let error = document(&run, "error");
    assert_eq!(error["error"]["exit_code"], 2);
    assert_eq!(error["error"]["kind"], "usage");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("nowhere"), "{message}");
    assert!(run.stderr().contains(&format!("error: {message}")), "the same text on stderr: {}", run.stderr());
    // Without --json, stdout stays empty.
    assert_eq!(ctx.ddbsync(&["sync", "nowhere"]).stdout(), "");

    // A usage error (exit 2): the message says which option asks for which.
    let run = ctx.ddbsync(&["--json", "sync", "local", "--exit-code"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let error = document(&run, "error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("--exit-code needs --dry-run: "), "{error}");
    assert!(run.stderr().contains(message), "{}", run.stderr());
    assert_eq!(ctx.ddbsync(&["sync", "local", "--exit-code"]).stdout(), "", "no JSON without --json");
    assert!(!ctx.table_exists("lessons").await, "the refused sync wrote nothing");

    // A command line clap refuses keeps clap's tip, without the usage lines.
    let run = ctx.ddbsync(&["--json", "sync", "local", "--table"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let message = document(&run, "error")["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("a value is required for '--table <NAME>' but none was supplied"), "{message}");
    assert!(!message.contains("Usage:") && !message.contains("--help"), "{message}");
    // `--json=true` asks for JSON too (clap refuses a value for the flag); `--json=false` does not.
    let run = ctx.ddbsync(&["--json=true", "sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert_eq!(document(&run, "error")["error"]["kind"], "usage");
    assert_eq!(ctx.ddbsync(&["--json=false", "sync", "local"]).stdout(), "");

    // A failure at a server (exit 1): DynamoDB unreachable.
    ctx.write_profile("gone", "");
    let profile = ctx.envs.path().join("gone.toml");
    let text = std::fs::read_to_string(&profile).unwrap();
    let port = crate::harness::free_port();
    let endpoint = text.lines().find(|l| l.starts_with("endpoint_url")).expect("the profile names an endpoint");
    std::fs::write(&profile, text.replace(endpoint, &format!("endpoint_url = \"http://127.0.0.1:{port}\""))).unwrap();
    let run = ctx.ddbsync(&["--json", "history", "gone"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let error = document(&run, "error");
    assert_eq!((error["error"]["exit_code"].as_u64(), error["error"]["kind"].as_str()), (Some(1), Some("error")));

    // Rows rejected in a dry run that would also write: 3 outranks 6, and one document.
    ctx.sql(&["ALTER TABLE lessons ALTER COLUMN topic DROP NOT NULL", "UPDATE lessons SET topic = NULL WHERE id = 1"]);
    let run = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--exit-code"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = document(&run, "sync");
    assert!(report["total"]["rejected"].as_u64().unwrap() > 0 && report["total"]["created"].as_u64().unwrap() > 0);
    assert_eq!(report["outcome"]["exit_code"], 3, "{report}");
}

/// A run refused by the lock prints one error document (exit 4); the run holding it, stopped by
/// SIGTERM, prints one document too: its report, `outcome` interrupted, exit 5.
#[tokio::test]
async fn a_locked_run_and_an_interrupted_one_print_one_document_each() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let ctx = Ctx::new(200).await;
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' (2)'"]);
    let first = ctx
        .command(&["--json", "sync", "local", "--max-write-units-per-second", "50"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ctx.leases().await.is_empty() {
        assert!(Instant::now() < deadline, "the first run never took the lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for args in [&["--json", "sync", "local"][..], &["--json", "backup", "local"][..]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 4, "{args:?}: {}", run.stderr());
        let error = document(&run, "error");
        assert_eq!((error["error"]["exit_code"].as_u64(), error["error"]["kind"].as_str()), (Some(4), Some("locked")));
    }
    crate::harness::signal(&first, "TERM");
    let (code, stdout, stderr, _) = crate::harness::finish(first, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 5, "{stderr}");
    let report: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: not one JSON document:\n{stdout}"));
    let found = errors("sync", &report);
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(
        (report["outcome"]["status"].as_str(), report["outcome"]["exit_code"].as_u64()),
        (Some("interrupted"), Some(5))
    );
}

/// Every command listens for SIGTERM from its start: one stopped while it waits on a PostgreSQL
/// that accepts and never answers ends at once with exit 5 and the JSON error document, never
/// killed by the signal (exit 143, nothing said); a restore so stopped has changed nothing.
#[tokio::test]
async fn every_command_stopped_by_sigterm_exits_5_with_its_error_document() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let ctx = Ctx::new(5).await;
    ctx.sync(&["--table", "lessons"]);
    let archive = ctx.envs.path().join("lessons.ddbsync.tar");
    let archive = archive.to_str().unwrap();
    let run = ctx.ddbsync(&["backup", "local", "--table", "lessons", "--output", archive]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let before = ctx.scan("lessons").await.len();
    // A port that accepts connections and never answers them.
    let hang = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hang.local_addr().unwrap().port();
    let path = ctx.envs.path().join("local.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    std::fs::write(ctx.envs.path().join("hang.toml"), text.replace(&line, &format!("port = {port}"))).unwrap();
    let commands: [&[&str]; 5] = [
        &["verify", "hang", "--repair", "--yes"],
        &["verify", "hang"],
        &["tables", "create", "hang"],
        &["check", "hang"],
        &["restore", archive, "--env", "hang", "--yes"],
    ];
    for args in commands {
        let args: Vec<&str> = ["--json"].iter().chain(args).copied().collect();
        let child = ctx.command(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let child = child.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        crate::harness::signal(&child, "TERM");
        let (code, stdout, stderr, took) = crate::harness::finish(child, Instant::now(), Duration::from_secs(30));
        assert_eq!(code, 5, "{args:?}: {stderr}");
        assert!(took < Duration::from_secs(3), "{args:?}: ended {took:?} after the signal");
        let error: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"));
        let found = errors("error", &error);
        assert!(found.is_empty(), "{args:?}: {found:#?}");
        assert_eq!(error["error"]["kind"], "interrupted", "{args:?}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains("interrupted by SIGTERM") && stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(ctx.scan("lessons").await.len(), before, "the restore stopped before it changed anything");
    assert!(ctx.leases().await.is_empty(), "no lease is left behind");
}

/// The error kinds the schema allows are the ones README lists, and each is the name of an exit
/// code a failed command can have (`pending`, 6, is only a dry run's report's, never an error's).
#[test]
fn the_error_kinds_of_the_schema_are_the_readmes() {
    let schema = schema();
    let kinds: Vec<&str> = schema["$defs"]["error"]["properties"]["error"]["properties"]["kind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let listed = readme.split("(`kind`: ").nth(1).expect("README lists the error kinds").split(')').next().unwrap();
    let mut listed: Vec<&str> = listed.split(", ").map(|k| k.trim_matches('`')).collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    listed.sort_unstable();
    assert_eq!(sorted, listed, "README: {listed:?}, schema: {kinds:?}");
    assert!(!kinds.contains(&"pending") && !kinds.contains(&"success"));
}
