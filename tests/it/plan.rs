//! `plan` and `apply`: a plan file holds the diff, `apply` writes exactly it, each change only where
//! the target still holds what the plan saw; `--max-cost` on sync, plan and apply.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{finish, signal, text, Ctx, Profile};

/// One table of the lessons' ids and titles, whose missing rows are deleted.
fn mapping() -> String {
    "[tables.items]\npartition_key = \"id\"\ndelete_missing = true\nquery = \"SELECT id, title FROM lessons\"\n".into()
}

fn json(run: &crate::harness::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()))
}

/// `value` is the schema's document `def` (schema/ddbsync-output.schema.json, closed objects).
fn conforms(def: &str, value: &serde_json::Value) {
    let path = crate::harness::repo().join("schema/ddbsync-output.schema.json");
    let mut schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let root = schema.as_object_mut().unwrap();
    root.remove("oneOf");
    root.insert("$ref".into(), serde_json::json!(format!("#/$defs/{def}")));
    let validator = jsonschema::draft202012::new(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator.iter_errors(value).map(|e| format!("{e} (at {})", e.instance_path())).collect();
    assert!(errors.is_empty(), "{def}: {errors:#?}\n{value:#}");
}

/// The `id`s of the item keys a call of `operation` sent to `table` (`Item` or `Key`).
fn keys(ctx: &Ctx, operation: &str, table: &str) -> BTreeSet<String> {
    ctx.proxy
        .requests(operation)
        .iter()
        .filter(|r| r["TableName"] == table)
        .map(|r| {
            let item = if r["Item"].is_object() { &r["Item"] } else { &r["Key"] };
            item["id"]["N"].as_str().expect("an id").to_string()
        })
        .collect()
}

fn batch_writes_to(ctx: &Ctx, table: &str) -> usize {
    ctx.proxy.requests("BatchWriteItem").iter().filter(|r| r["RequestItems"].get(table).is_some()).count()
}

async fn title(ctx: &Ctx, id: &str) -> Option<String> {
    let out = ctx
        .dynamo
        .get_item()
        .table_name(ctx.table("items"))
        .key("id", AttributeValue::N(id.into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    out.item.map(|i| text(&i["title"]))
}

/// Writes an attribute of a stored item as another program would: its `_ddbsync_hash` untouched.
async fn edit_by_hand(ctx: &Ctx, id: &str, value: &str) {
    ctx.dynamo
        .update_item()
        .table_name(ctx.table("items"))
        .key("id", AttributeValue::N(id.into()))
        .update_expression("SET title = :t")
        .expression_attribute_values(":t", AttributeValue::S(value.into()))
        .send()
        .await
        .unwrap();
}

/// A synced table, then a source with two rows changed, one deleted and one added.
async fn changed() -> Ctx {
    let ctx = Ctx::new(40).await;
    ctx.use_mappings("plan.toml", &mapping());
    ctx.sync(&[]);
    ctx.sql(&[
        "UPDATE lessons SET title = 'Renamed ' || id WHERE id IN (3, 4)",
        "DELETE FROM questions WHERE lesson_id = 5",
        "DELETE FROM passages WHERE lesson_id = 5",
        "DELETE FROM lessons WHERE id = 5",
        "INSERT INTO lessons (id, title, category, topic, level, created_at, updated_at) \
         VALUES (1000, 'New', 'c', 't', 1, now(), now())",
    ]);
    ctx
}

#[tokio::test]
async fn apply_writes_exactly_the_planned_items_and_a_second_plan_is_empty() {
    let ctx = changed().await;
    let table = ctx.table("items");
    ctx.proxy.clear();
    let planned = ctx.ddbsync(&["--json", "plan", "local", "-o", "p.json", "--show", "10"]);
    assert_eq!(planned.code(), 0, "{}", planned.stderr());
    let planned = json(&planned);
    conforms("plan", &planned);
    assert_eq!(planned["changes"], 4, "{planned}");
    let t = &planned["tables"][0];
    assert_eq!((t["create"].as_u64(), t["update"].as_u64(), t["delete"].as_u64()), (Some(1), Some(2), Some(1)));
    assert_eq!(batch_writes_to(&ctx, &table), 0, "a plan writes nothing");
    assert!(keys(&ctx, "PutItem", &table).is_empty() && keys(&ctx, "DeleteItem", &table).is_empty());
    // The change view: the renamed titles, old and new, read from DynamoDB.
    let shown = planned["shown"].as_array().unwrap();
    assert_eq!(shown.len(), 4);
    let update = shown.iter().find(|c| c["change"] == "update").unwrap();
    assert_eq!(update["attributes"][0]["path"], "title");
    assert!(update["attributes"][0]["new"].as_str().unwrap().starts_with("\"Renamed "), "{update}");
    assert!(planned["show_read_units"].as_f64().unwrap() >= 4.0, "each stored item read is counted");
    assert!(planned["apply_read_units"].as_f64().unwrap() > 0.0, "the apply reads what it replaces or deletes");
    // Saved for its owner alone: it holds items.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(ctx.envs.path().join("p.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    ctx.proxy.clear();
    let applied = ctx.ddbsync(&["--json", "apply", "p.json"]);
    assert_eq!(applied.code(), 0, "{}", applied.stderr());
    let applied = json(&applied);
    conforms("apply", &applied);
    let t = &applied["tables"][0];
    assert_eq!((t["created"].as_u64(), t["updated"].as_u64(), t["deleted"].as_u64()), (Some(1), Some(2), Some(1)));
    // The proxy saw exactly the planned keys written, one conditional request each, and no batch.
    assert_eq!(keys(&ctx, "PutItem", &table), BTreeSet::from(["3".into(), "4".into(), "1000".into()]));
    assert_eq!(keys(&ctx, "DeleteItem", &table), BTreeSet::from(["5".to_string()]));
    assert!(ctx
        .proxy
        .requests("PutItem")
        .iter()
        .filter(|r| r["TableName"] == table)
        .all(|r| r["ConditionExpression"].is_string()));
    assert_eq!(batch_writes_to(&ctx, &table), 0);
    // DynamoDB itself holds the source's state.
    assert_eq!(title(&ctx, "3").await.as_deref(), Some("Renamed 3"));
    assert_eq!(title(&ctx, "1000").await.as_deref(), Some("New"));
    assert_eq!(title(&ctx, "5").await, None);
    assert_eq!(ctx.scan("items").await.len(), 40);

    let again = ctx.ddbsync(&["--json", "plan", "local", "-o", "p2.json"]);
    assert_eq!(json(&again)["changes"], 0, "the apply left nothing to do");
    let runs = ctx.scan("cache-metadata").await;
    let apply = runs.iter().find(|r| r.get("mode").map(text).as_deref() == Some("apply")).expect("an apply run");
    assert_eq!(text(&apply["created"]), "1");
    assert_eq!(text(&apply["outcome"]), "completed");
    let history = json(&ctx.ddbsync(&["--json", "history", "local"]));
    let modes: Vec<&str> = history["runs"].as_array().unwrap().iter().filter_map(|r| r["mode"].as_str()).collect();
    assert!(modes.contains(&"apply"), "history lists the apply: {modes:?}");
}

#[tokio::test]
async fn a_change_made_after_the_plan_is_drift_and_is_not_overwritten() {
    let ctx = changed().await;
    let table = ctx.table("items");
    let planned = ctx.ddbsync(&["--json", "plan", "local", "-o", "p.json"]);
    assert_eq!(planned.code(), 0, "{}", planned.stderr());
    // Another program edits an item the plan updates, and one the plan deletes.
    edit_by_hand(&ctx, "3", "Edited by hand").await;
    edit_by_hand(&ctx, "5", "Kept by hand").await;
    ctx.proxy.clear();
    let applied = ctx.ddbsync(&["--json", "apply", "p.json"]);
    assert_eq!(applied.code(), 3, "drift exits 3: {}", applied.stderr());
    let report = json(&applied);
    conforms("apply", &report);
    let drift: BTreeSet<String> =
        report["drift"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap().to_string()).collect();
    assert_eq!(drift, BTreeSet::from(["id=3".to_string(), "id=5".to_string()]), "{report}");
    assert!(report["drift"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["found"].as_str().unwrap().contains("edited since the plan")));
    let text = ctx.ddbsync(&["apply", "p.json"]).stdout();
    assert!(
        text.contains(&format!("drift: {table} id=3: update skipped: the target holds an item edited since the plan")),
        "{text}"
    );
    assert_eq!(title(&ctx, "3").await.as_deref(), Some("Edited by hand"), "not overwritten");
    assert_eq!(title(&ctx, "5").await.as_deref(), Some("Kept by hand"), "not deleted");
    assert_eq!(title(&ctx, "4").await.as_deref(), Some("Renamed 4"), "the rest is applied");
    assert!(!keys(&ctx, "PutItem", &table).contains("3"), "no write was even sent for it");
    assert!(!keys(&ctx, "DeleteItem", &table).contains("5"));
}

/// Seals a changed plan, its checksum recomputed as the program computes it.
fn reseal(path: &std::path::Path, edit: impl FnOnce(&mut ddbsync::pure::planfile::PlanFile)) {
    let mut plan: ddbsync::pure::planfile::PlanFile =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut plan);
    std::fs::write(path, ddbsync::pure::planfile::seal(&plan)).unwrap();
}

#[tokio::test]
async fn a_tampered_foreign_or_old_plan_is_refused_and_writes_nothing() {
    let ctx = changed().await;
    let table = ctx.table("items");
    let planned = ctx.ddbsync(&["plan", "local", "-o", "p.json"]);
    assert_eq!(planned.code(), 0, "{}", planned.stderr());
    let path = ctx.envs.path().join("p.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let refused = |file: &str, args: &[&str], cause: &str| {
        let mut all = vec!["apply", file];
        all.extend_from_slice(args);
        let run = ctx.ddbsync(&all);
        assert_eq!(run.code(), 2, "{file} {args:?}: {}", run.stderr());
        let stderr = run.stderr();
        assert!(stderr.contains(&format!("plan {file}")), "{stderr}");
        assert!(stderr.contains(cause) && stderr.contains("run ddbsync plan again"), "{stderr}");
    };
    ctx.proxy.clear();

    // One byte changed.
    std::fs::write(&path, original.replacen("Renamed 3", "Renamed 8", 1)).unwrap();
    refused("p.json", &[], "does not match its checksum");
    // An item changed, the checksum recomputed: the item no longer matches its content hash.
    std::fs::write(&path, &original).unwrap();
    reseal(&path, |p| p.tables[0].puts[0].item["title"] = serde_json::json!({"S": "Forged"}));
    refused("p.json", &[], "does not match its own content hash");
    // Another environment's plan.
    std::fs::write(&path, &original).unwrap();
    ctx.write_profile_with(
        "other",
        &Profile { mappings: Some(&ctx.envs.path().join("mappings/plan.toml")), ..Profile::default() },
    );
    reseal(&path, |p| p.environment = "other".into());
    refused("p.json", &[], "made with another profile or other mappings");
    // Made with other mappings.
    std::fs::write(&path, &original).unwrap();
    ctx.use_mappings("plan.toml", &mapping().replace("SELECT id, title", "SELECT id, title, level"));
    refused("p.json", &[], "made with another profile or other mappings");
    ctx.use_mappings("plan.toml", &mapping());
    // Another table than the mapping's, the checksum recomputed.
    std::fs::write(&path, &original).unwrap();
    reseal(&path, |p| p.tables[0].table = format!("{}-elsewhere", p.tables[0].table));
    refused("p.json", &[], "whose table in local is");
    // Another key, or none, the checksum recomputed: the conditions name the profile's key only.
    for forged in [vec!["zzz".to_string()], vec![]] {
        std::fs::write(&path, &original).unwrap();
        reseal(&path, |p| p.tables[0].key = forged.clone());
        refused("p.json", &[], "whose key in local is (id)");
    }
    // Cost figures edited to nothing: the items' own cost is the floor of the ceiling's estimate.
    std::fs::write(&path, &original).unwrap();
    reseal(&path, |p| {
        p.cost_usd = 0.0;
        p.write_units = 0.0;
        p.apply_read_units = 0.0;
    });
    let cheap = ctx.ddbsync(&["apply", "p.json", "--max-cost", "0"]);
    assert_eq!(cheap.code(), 7, "{}", cheap.stderr());
    assert!(cheap.stderr().contains("make a smaller plan"), "{}", cheap.stderr());
    std::fs::write(&path, &original).unwrap();
    // Too old.
    refused("p.json", &["--max-age", "0s"], "older than --max-age");
    // A plan made an hour ago is within the default day.
    reseal(&path, |p| {
        let hour_ago = chrono::Utc::now() - chrono::TimeDelta::hours(1);
        p.created_at = hour_ago.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    });
    refused("p.json", &["--max-age", "30m"], "older than --max-age 30m");
    // A protected environment needs --yes, as a sync --clean does.
    let mappings = ctx.envs.path().join("mappings/plan.toml");
    ctx.write_profile_with(
        "local",
        &Profile { top: "protected = true", mappings: Some(&mappings), ..Profile::default() },
    );
    let asked = ctx.ddbsync(&["apply", "p.json"]);
    assert_eq!(asked.code(), 2, "{}", asked.stderr());
    assert!(asked.stderr().contains("local is protected: apply writes 4 changes to"), "{}", asked.stderr());
    assert!(keys(&ctx, "PutItem", &table).is_empty() && keys(&ctx, "DeleteItem", &table).is_empty());
    let ok = ctx.ddbsync(&["apply", "p.json", "--yes"]);
    assert_eq!(ok.code(), 0, "{}", ok.stderr());
}

#[tokio::test]
async fn max_cost_below_the_estimate_writes_nothing_and_above_it_writes() {
    let ctx = changed().await;
    let table = ctx.table("items");
    ctx.proxy.clear();
    let plan = ctx.ddbsync(&["plan", "local", "-o", "p.json", "--max-cost", "0"]);
    assert_eq!(plan.code(), 7, "{}", plan.stderr());
    assert!(plan.stderr().contains("exceeds --max-cost 0") && plan.stderr().contains("no plan was saved"));
    assert!(!ctx.envs.path().join("p.json").exists());

    assert_eq!(ctx.ddbsync(&["plan", "local", "-o", "p.json"]).code(), 0);
    let apply = ctx.ddbsync(&["apply", "p.json", "--max-cost", "0.0000001"]);
    assert_eq!(apply.code(), 7, "{}", apply.stderr());

    let sync = ctx.ddbsync(&["--json", "sync", "local", "--max-cost", "0"]);
    assert_eq!(sync.code(), 7, "{}", sync.stderr());
    let refused: serde_json::Value = serde_json::from_str(&sync.stdout()).unwrap();
    conforms("error", &refused);
    assert_eq!(refused["error"]["kind"], "over-budget");
    assert_eq!(batch_writes_to(&ctx, &table), 0, "nothing was written");
    assert!(keys(&ctx, "PutItem", &table).is_empty() && keys(&ctx, "DeleteItem", &table).is_empty());
    assert_ne!(title(&ctx, "3").await.as_deref(), Some("Renamed 3"), "the item is as it was");

    // A dry run over the ceiling says the real run would be refused, in its code and its report.
    let dry = ctx.ddbsync(&["--json", "sync", "local", "--dry-run", "--max-cost", "0"]);
    assert_eq!(dry.code(), 7, "{}", dry.stderr());
    assert_eq!(json(&dry)["outcome"]["exit_code"], 7);
    assert!(dry.stderr().contains("the real run would write nothing"), "{}", dry.stderr());

    // The estimate, from a dry run, against what the run reports.
    let rehearsal = ctx.sync(&["--dry-run"]);
    let estimate = rehearsal["total"]["cost_usd"].as_f64().unwrap() + ctx_prices_read(&rehearsal);
    let real = ctx.sync(&["--max-cost", "1"]);
    assert_eq!(real["total"]["created"], rehearsal["total"]["created"]);
    assert_eq!(real["total"]["updated"], rehearsal["total"]["updated"]);
    assert_eq!(real["total"]["deleted"], rehearsal["total"]["deleted"]);
    let cost = real["total"]["cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0 && cost <= estimate, "the run cost {cost}, estimated {estimate} (the reads counted twice)");
    let (estimated_units, units) =
        (rehearsal["total"]["write_units"].as_f64().unwrap(), real["total"]["write_units"].as_f64().unwrap());
    assert!(
        (units - estimated_units).abs() <= estimated_units * 0.1,
        "wrote {units} units, estimated {estimated_units}"
    );
    assert_eq!(title(&ctx, "3").await.as_deref(), Some("Renamed 3"));
}

/// The read cost of a run's diff, in USD: the estimate counts it twice (the dry run's and the run's).
fn ctx_prices_read(report: &serde_json::Value) -> f64 {
    let read_units = report["total"]["read_units"].as_f64().unwrap();
    let prices = &report["prices"];
    read_units * prices["read_per_million"].as_f64().unwrap() / 1e6
}

#[tokio::test]
async fn an_apply_stopped_by_sigterm_is_finished_by_a_second_apply_without_rewriting() {
    let ctx = Ctx::new(160).await;
    let mappings = ctx.use_mappings("plan.toml", &mapping());
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = title || ' v2'"]);
    assert_eq!(ctx.ddbsync(&["plan", "local", "-o", "p.json"]).code(), 0);
    // Slow enough to be stopped half way: 10 write units a second; a short lease, renewed (with
    // the progress `status` shows) every few seconds.
    let sync = "max_write_units_per_second = 10\nlock_lease_secs = 6";
    let slow = Profile { mappings: Some(&mappings), sync, ..Profile::default() };
    ctx.write_profile_with("local", &slow);
    ctx.proxy.clear();
    let child =
        ctx.command(&["--json", "apply", "p.json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // `status` shows the apply's progress from its lease: its plan's changes done, not rows read.
    let started = Instant::now();
    let doc = loop {
        let doc = json(&ctx.ddbsync(&["--json", "status", "local"]));
        let active = doc["active"].as_array().cloned().unwrap_or_default();
        let written = active.first().and_then(|run| {
            assert_eq!(run["command"], "apply", "{doc:#}");
            // From the lease's first write: never an apply without its plan's size.
            assert_eq!(run["processes"][0]["planned"], 160, "{doc:#}");
            let tables = run["processes"][0]["tables"].as_array()?;
            tables.iter().find(|t| t["table"] == ctx.table("items").as_str())?["written"].as_u64()
        });
        if written.is_some_and(|n| n > 0) {
            break doc;
        }
        assert!(started.elapsed() < Duration::from_secs(12), "status never showed the apply writing: {doc:#}");
        std::thread::sleep(Duration::from_millis(300));
    };
    conforms("status", &doc);
    let p = &doc["active"][0]["processes"][0];
    assert_eq!(p["planned"], 160, "the plan's changes: {p:#}");
    let done = p["done"].as_u64().unwrap();
    let parts: u64 = ["written", "deleted", "already_applied", "drifted"].iter().map(|f| p[f].as_u64().unwrap()).sum();
    assert_eq!(done, parts, "{p:#}");
    // What the lease said was written, the server had been sent by then (the proxy tells).
    let sent = keys(&ctx, "PutItem", &ctx.table("items")).len() as u64;
    assert!(done > 0 && done <= sent && done < 160, "{done} done, {sent} sent: {p:#}");
    assert_eq!(p["rows_per_second"], serde_json::Value::Null, "an apply reads no rows: {p:#}");
    assert!(p["changes_per_second"].as_f64().is_some_and(|r| r > 0.0), "{p:#}");
    assert!(p["eta_seconds"].as_u64().is_some_and(|s| s > 0), "changes are left, at a known rate: {p:#}");
    let text = ctx.ddbsync(&["status", "local"]).stdout();
    assert!(text.contains(" of 160 changes done (") && !text.contains("rows read"), "{text}");
    signal(&child, "TERM");
    let (code, stdout, stderr, _) = finish(child, Instant::now(), Duration::from_secs(30));
    assert_eq!(code, 5, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let made = first["tables"][0]["updated"].as_u64().unwrap();
    assert!(made > 0 && made < 160, "stopped half way: {first}");
    let written = keys(&ctx, "PutItem", &ctx.table("items"));
    assert_eq!(written.len() as u64, made, "every write sent before the stop is answered and counted");
    assert_eq!(first["tables"][0]["not_applied"].as_u64().unwrap(), 160 - made);

    ctx.write_profile_with("local", &Profile { mappings: Some(&mappings), ..Profile::default() });
    ctx.proxy.clear();
    let second = ctx.ddbsync(&["--json", "apply", "p.json"]);
    assert_eq!(second.code(), 0, "{}", second.stderr());
    let second = json(&second);
    let t = &second["tables"][0];
    assert_eq!(t["drifted"], 0, "what the first apply wrote is not drift: {second}");
    assert_eq!(t["already_applied"].as_u64().unwrap() + t["updated"].as_u64().unwrap(), 160);
    assert!(t["already_applied"].as_u64().unwrap() >= made);
    let rewritten = keys(&ctx, "PutItem", &ctx.table("items"));
    assert!(written.is_disjoint(&rewritten), "nothing the first apply wrote is written again");
    let again = ctx.ddbsync(&["--json", "plan", "local", "-o", "p2.json"]);
    assert_eq!(json(&again)["changes"], 0);
}

#[tokio::test]
async fn a_repair_over_its_max_cost_writes_nothing_and_within_it_repairs() {
    let ctx = changed().await;
    let table = ctx.table("items");
    ctx.proxy.clear();
    let over = ctx.ddbsync(&["verify", "local", "--full", "--repair", "--yes", "--max-cost", "0"]);
    assert_eq!(over.code(), 7, "{}", over.stderr());
    assert!(over.stderr().contains("verify --repair local: the estimated cost"), "{}", over.stderr());
    assert_eq!(batch_writes_to(&ctx, &table), 0, "nothing was written");
    assert_ne!(title(&ctx, "3").await.as_deref(), Some("Renamed 3"));
    let within = ctx.ddbsync(&["verify", "local", "--full", "--repair", "--yes", "--max-cost", "1"]);
    assert_eq!(within.code(), 0, "{}", within.stderr());
    assert_eq!(title(&ctx, "3").await.as_deref(), Some("Renamed 3"));
    assert_eq!(title(&ctx, "5").await, None);
}

#[tokio::test]
async fn the_plan_summary_and_its_change_view_as_printed() {
    let ctx = changed().await;
    let run = ctx.ddbsync(&["plan", "local", "-o", "p.json", "--show", "4"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let prefix: String =
        ctx.prefix.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") }).collect();
    // As wide as the random prefix, so that the table's columns stay aligned.
    let placeholder = format!("{:_<1$}-", "<prefix>", ctx.prefix.len() - 1);
    // The read units are the server's own figures (they differ between servers); the rest is not.
    insta::with_settings!({
        filters => vec![
            (prefix.as_str(), placeholder.as_str()),
            (r"made \d{4}-\d\d-\d\dT[0-9:.]+Z", "made <time>"),
            (r"the plan read .* units \(USD [0-9.]+\)", "the plan read <units> (USD <usd>)"),
            (r"about USD [0-9.]+", "about USD <usd>"),
            (r"and [0-9.]+ read units for", "and <units> read units for"),
            (r"took [0-9.]+ read units", "took <units> read units"),
        ],
    }, {
        insta::assert_snapshot!(run.stdout());
    });
}

/// A DynamoDB that stops answering the apply's reads half way ends the apply within its timeouts
/// and attempts (exit 1, naming the item), writing nothing it did not read first.
#[tokio::test]
async fn a_stalled_dynamodb_ends_an_apply_within_its_timeouts() {
    let ctx = changed().await;
    let table = ctx.table("items");
    ctx.sql(&["UPDATE lessons SET title = title || ' v2'"]);
    assert_eq!(ctx.ddbsync(&["plan", "local", "-o", "p.json"]).code(), 0);
    // The same profile with short timeouts and 5 write units a second: not in the plan's fingerprint.
    let path = ctx.envs.path().join("local.toml");
    let profile = std::fs::read_to_string(&path).unwrap();
    let short = profile.replacen("[target]\n", "[target]\nattempt_timeout_secs = 1\noperation_timeout_secs = 2\n", 1);
    let slow =
        short.replacen("[sync]\n", "[sync]\nmax_attempts = 2\nmax_in_flight = 1\nmax_write_units_per_second = 5\n", 1);
    assert!(slow.contains("max_write_units_per_second = 5") && slow.contains("operation_timeout_secs = 2"));
    std::fs::write(&path, slow).unwrap();
    ctx.proxy.clear();
    let child =
        ctx.command(&["--json", "apply", "p.json"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Once the apply writes, DynamoDB stops answering reads.
    let started = Instant::now();
    while keys(&ctx, "PutItem", &table).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(20), "the apply never wrote");
        std::thread::sleep(Duration::from_millis(20));
    }
    ctx.proxy.stall_operation(Some("GetItem"));
    let stalled = Instant::now();
    let (code, stdout, stderr, took) = finish(child, stalled, Duration::from_secs(40));
    ctx.proxy.stall_operation(None);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(&format!("applying a change to {table}: id=")), "{stderr}");
    assert!(stderr.contains("no answer from DynamoDB"), "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    conforms("apply", &report);
    assert_eq!(report["outcome"]["status"], "failed", "{report}");
    let t = &report["tables"][0];
    let done = t["created"].as_u64().unwrap() + t["updated"].as_u64().unwrap() + t["deleted"].as_u64().unwrap();
    assert!(t["not_applied"].as_u64().unwrap() > 0 && done < 41, "{report}");
    // Every write sent was answered and counted, and none was sent after the failure.
    assert_eq!(keys(&ctx, "PutItem", &table).len() + keys(&ctx, "DeleteItem", &table).len(), done as usize);
}

/// A table whose diff reads the hash index: the plan's changes carry their bucket, and after the
/// apply the index diff finds nothing left.
#[tokio::test]
async fn a_plan_of_a_table_whose_diff_reads_the_hash_index_applies_and_leaves_nothing() {
    let ctx = Ctx::new(40).await;
    ctx.use_mappings(
        "plan.toml",
        &mapping().replace("delete_missing = true\n", "delete_missing = true\ndiff = \"index\"\n"),
    );
    ctx.sync(&[]);
    ctx.sql(&["UPDATE lessons SET title = 'Renamed ' || id WHERE id IN (3, 4)"]);
    let planned = json(&ctx.ddbsync(&["--json", "plan", "local", "-o", "p.json"]));
    assert_eq!(planned["changes"], 2, "{planned}");
    let applied = ctx.ddbsync(&["--json", "apply", "p.json"]);
    assert_eq!(applied.code(), 0, "{}", applied.stderr());
    let stored = ctx.scan("items").await;
    let three = stored.iter().find(|i| text(&i["id"]) == "3").unwrap();
    assert_eq!(text(&three["title"]), "Renamed 3");
    assert!(three.contains_key("_ddbsync_bucket"), "the hash index holds it: {three:?}");
    let again = ctx.sync(&[]);
    assert_eq!(again["tables"][0]["diff"], "index", "{again}");
    assert_eq!((again["total"]["created"].as_u64(), again["total"]["updated"].as_u64()), (Some(0), Some(0)));
}

#[tokio::test]
async fn a_change_whose_item_moves_while_the_plan_is_made_is_left_out() {
    let ctx = changed().await;
    // A second table whose query takes a few seconds: the window in which the item moves, after
    // the diff of `items` read it and before the plan reads it whole.
    let slow = format!(
        "{}\n[tables.slow]\npartition_key = \"id\"\nquery = \"SELECT 1 AS id, pg_sleep(4)::text AS s\"\n",
        mapping()
    );
    ctx.use_mappings("plan.toml", &slow);
    ctx.sync(&["--table", "slow"]);
    let child = ctx
        .command(&["--json", "plan", "local", "-o", "p.json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Another run writes item 3 as the source now has it, and item 4 is deleted by hand.
    ctx.sql(&["UPDATE lessons SET title = 'Newer 3' WHERE id = 3"]);
    ctx.sync(&["--table", "items"]);
    ctx.dynamo
        .delete_item()
        .table_name(ctx.table("items"))
        .key("id", AttributeValue::N("4".into()))
        .send()
        .await
        .unwrap();
    let (code, stdout, stderr, _) = finish(child, Instant::now(), Duration::from_secs(60));
    assert_eq!(code, 0, "{stderr}");
    // 3 and 4, and 5, which the other run deleted (its row is gone from the source).
    assert!(stderr.contains("3 changes left out of the plan: their items changed while it was made"), "{stderr}");
    let planned: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(planned["changes"].as_u64().unwrap() < 4, "{planned}");
    let run = ctx.ddbsync(&["apply", "p.json"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(title(&ctx, "3").await.as_deref(), Some("Newer 3"), "the newer write is kept");
    assert_eq!(title(&ctx, "4").await, None, "the item deleted by hand is not brought back");
}

#[tokio::test]
async fn apply_counts_the_units_of_the_items_it_replaces_and_deletes() {
    let ctx = Ctx::new(40).await;
    ctx.use_mappings("plan.toml", &mapping());
    ctx.sql(&["UPDATE lessons SET title = repeat('x', 100000) WHERE id IN (7, 8)"]);
    ctx.sync(&[]);
    ctx.sql(&[
        "UPDATE lessons SET title = 'short' WHERE id = 7",
        "DELETE FROM questions WHERE lesson_id = 8",
        "DELETE FROM passages WHERE lesson_id = 8",
        "DELETE FROM lessons WHERE id = 8",
    ]);
    assert_eq!(ctx.ddbsync(&["plan", "local", "-o", "p.json"]).code(), 0);
    let applied = json(&ctx.ddbsync(&["--json", "apply", "p.json"]));
    // 100,000 bytes: 98 units to replace, 98 to delete (a sync measures the same).
    let units = applied["write_units"].as_f64().unwrap_or_else(|| panic!("{applied}"));
    assert!(units >= 196.0, "billed on the larger item: {applied}");
}
