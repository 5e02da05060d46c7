//! The operations commands: check, tables create/drop, verify, history, report and iam-policy.

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{figure, text, Ctx, Profile, Run};

const SCALE: u32 = 20;

fn json(run: &Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: not JSON:\n{}\n{}", run.stdout(), run.stderr()))
}

/// Each check's `what` → `status`.
fn statuses(report: &serde_json::Value) -> Vec<(String, String)> {
    let checks = report["checks"].as_array().expect("checks");
    checks.iter().map(|c| (c["what"].as_str().unwrap().into(), c["status"].as_str().unwrap().into())).collect()
}

fn status_of(report: &serde_json::Value, what: &str) -> String {
    let all = statuses(report);
    all.iter().find(|(w, _)| w == what).unwrap_or_else(|| panic!("no check {what} in {all:?}")).1.clone()
}

#[tokio::test]
async fn check_lists_every_problem_and_exits_by_the_worst() {
    let ctx = Ctx::new(SCALE).await;
    let run = ctx.ddbsync(&["--json", "check", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(status_of(&report, "PostgreSQL"), "ok");
    assert_eq!(status_of(&report, "query of lessons"), "ok");
    assert_eq!(status_of(&report, "AWS credentials"), "ok");
    assert_eq!(status_of(&report, "DynamoDB"), "ok");
    assert_eq!(status_of(&report, &format!("table {}", ctx.table("lessons"))), "note", "not created yet");
    assert!(!ctx.table_exists("lessons").await, "check creates nothing");

    // A table whose key is not the mapping's: a failure, while the other checks still run.
    ctx.dynamo
        .create_table()
        .table_name(ctx.table("topics"))
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .key_schema(
            aws_sdk_dynamodb::types::KeySchemaElement::builder()
                .attribute_name("id")
                .key_type(aws_sdk_dynamodb::types::KeyType::Hash)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            aws_sdk_dynamodb::types::AttributeDefinition::builder()
                .attribute_name("id")
                .attribute_type(aws_sdk_dynamodb::types::ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let run = ctx.ddbsync(&["check", "local"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let out = run.stdout();
    assert!(out.contains(&format!("[FAIL] table {}: has key (id S) but", ctx.table("topics"))), "{out}");
    assert!(out.contains("gives (category S, topic S)"), "{out}");
    assert!(out.contains("[ ok ] query of passages"), "{out}");
    assert!(out.contains("1 check failed."), "{out}");
    // verify cannot match items under another key either, and says why.
    let run = ctx.ddbsync(&["verify", "local", "--table", "topics"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("has key (id S) but"), "{}", run.stderr());

    // A query without its key column is a profile error (2), named with its file and table; the
    // worst failure decides the exit code.
    let broken = std::fs::read_to_string(crate::harness::repo().join("envs/mappings/pni.toml"))
        .unwrap()
        .replace("p.id AS passage_id", "p.id AS passage");
    ctx.use_mappings("broken.toml", &broken);
    let report = json(&ctx.ddbsync(&["--json", "check", "local"]));
    assert_eq!(status_of(&report, "query of passages"), "fail");
    assert_eq!(status_of(&report, "query of lessons"), "ok");
    let run = ctx.ddbsync(&["check", "local"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stdout()
            .contains("broken.toml: table \"passages\": key column \"passage_id\" is not in the query's columns"),
        "{}",
        run.stdout()
    );
    assert!(run.stdout().contains("2 checks failed."), "{}", run.stdout());
}

#[tokio::test]
async fn check_without_postgresql_still_checks_dynamodb() {
    let ctx = Ctx::new(1).await;
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let port = crate::harness::free_port();
    let unreachable =
        profile.replacen(&format!("port = {}", crate::harness::servers().pg_port), &format!("port = {port}"), 1);
    std::fs::write(ctx.envs.path().join("local.toml"), unreachable).unwrap();
    let run = ctx.ddbsync(&["--json", "check", "local"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(status_of(&report, "PostgreSQL"), "fail");
    assert_eq!(status_of(&report, "query of lessons"), "skipped");
    assert_eq!(status_of(&report, "DynamoDB"), "ok");
    let checks = report["checks"].as_array().unwrap();
    let pg = checks.iter().find(|c| c["what"] == "PostgreSQL").unwrap();
    assert!(pg["detail"].as_str().unwrap().contains(&format!("127.0.0.1:{port}")), "{pg}");
    // The query is not blamed on an answer: the cause may be the profile's settings, said above.
    let query = checks.iter().find(|c| c["what"] == "query of lessons").unwrap();
    assert_eq!(query["detail"], "not checked: no connection to PostgreSQL (above)", "{query}");
}

#[tokio::test]
async fn tables_are_created_and_dropped_on_demand() {
    let ctx = Ctx::new(SCALE).await;
    let run = ctx.ddbsync(&["--json", "tables", "create", "local", "--table", "lessons", "--table", "topics"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let actions: Vec<(String, String)> = json(&run)["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["table"].as_str().unwrap().into(), a["action"].as_str().unwrap().into()))
        .collect();
    assert_eq!(actions, [(ctx.table("lessons"), "created".into()), (ctx.table("topics"), "created".into())]);
    let keys = ctx.dynamo.describe_table().table_name(ctx.table("topics")).send().await.unwrap();
    let names: Vec<&str> = keys.table().unwrap().key_schema().iter().map(|k| k.attribute_name()).collect();
    assert_eq!(names, ["category", "topic"]);
    assert!(!ctx.table_exists("passages").await);

    // Again: nothing to do; the existing tables are left alone.
    let run = ctx.ddbsync(&["tables", "create", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stdout().contains(&format!("{:<32} exists", ctx.table("lessons"))), "{}", run.stdout());
    assert!(run.stdout().contains(&format!("{:<32} created", ctx.table("passages"))), "{}", run.stdout());
    assert_eq!(ctx.sync(&[])["total"]["created"].as_f64().unwrap(), (SCALE * 3) as f64 + topics(&ctx));

    // Dropping asks; without a terminal it needs --yes and changes nothing.
    let run = ctx.ddbsync(&["tables", "drop", "local"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("add --yes"), "{}", run.stderr());
    assert!(ctx.table_exists("lessons").await);
    let run = ctx.ddbsync(&["tables", "drop", "local", "--yes", "--table", "lessons"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(!ctx.table_exists("lessons").await);
    assert!(ctx.table_exists("passages").await);
    let run = ctx.ddbsync(&["tables", "drop", "local", "--yes"]);
    assert!(run.stdout().contains(&format!("{:<32} absent", ctx.table("lessons"))), "{}", run.stdout());
    assert!(!ctx.table_exists("passages").await && !ctx.table_exists("topics").await);
    assert!(ctx.table_exists("cache-metadata").await, "the run records are kept");
}

fn topics(ctx: &Ctx) -> f64 {
    ctx.query("SELECT count(DISTINCT (category, topic)) FROM lessons")[0].parse().unwrap()
}

fn keys(report: &serde_json::Value, table: &str, kind: &str) -> Vec<(String, String)> {
    let tables = report["tables"].as_array().unwrap();
    let t = tables.iter().find(|t| t["table"] == table).unwrap_or_else(|| panic!("no {table}"));
    let found = t[kind]["keys"].as_array().unwrap();
    found.iter().map(|d| (d["key"].as_str().unwrap().into(), d["reason"].as_str().unwrap().into())).collect()
}

#[tokio::test]
async fn verify_finds_items_edited_deleted_and_added_in_dynamodb() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full"]);
    assert_eq!(run.code(), 0, "{}\n{}", run.stdout(), run.stderr());
    let clean = json(&run);
    let lessons = ctx.table("lessons");
    assert_eq!(figure(&clean, &lessons, "compared"), SCALE as f64);
    assert_eq!(figure(&clean, &lessons, "target_items"), SCALE as f64);
    assert!(clean["read_units"].as_f64().unwrap() > 0.0);

    // Someone edits lesson 7 in DynamoDB, keeping its stored hash; deletes lesson 8; adds lesson 999.
    let mut seven = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == "7").unwrap();
    seven.insert("title".into(), AttributeValue::S("Edited by hand".into()));
    let mut extra = seven.clone();
    extra.insert("lesson_id".into(), AttributeValue::N("999".into()));
    for item in [seven, extra] {
        ctx.dynamo.put_item().table_name(&lessons).set_item(Some(item)).send().await.unwrap();
    }
    ctx.dynamo.delete_item().table_name(&lessons).key("lesson_id", AttributeValue::N("8".into())).send().await.unwrap();
    // And the source changes lesson 9 without a sync.
    ctx.sql(&["UPDATE lessons SET title = 'New title' WHERE id = 9"]);

    let run = ctx.ddbsync(&["--json", "verify", "local", "--full"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let found = json(&run);
    let mut differing = keys(&found, &lessons, "differing");
    differing.sort();
    assert_eq!(
        differing,
        [
            ("lesson_id=7".into(), "changed in DynamoDB after ddbsync wrote it".into()),
            ("lesson_id=9".into(), "the source changed since the last sync; the next sync rewrites it".into()),
        ]
    );
    assert_eq!(keys(&found, &lessons, "missing"), [("lesson_id=8".into(), "no such item in DynamoDB".into())]);
    assert_eq!(keys(&found, &lessons, "extra"), [("lesson_id=999".into(), "no source row gives this key".into())]);
    assert_eq!(figure(&found, &lessons, "edited"), 1.0);
    assert_eq!(figure(&found, &ctx.table("passages"), "compared"), 2.0 * SCALE as f64);

    let text = ctx.ddbsync(&["verify", "local", "--full", "--table", "lessons"]).stdout();
    assert!(text.contains("1 items were changed in DynamoDB directly"), "{text}");
    assert!(text.contains("Differences found"), "{text}");

    // A sample larger than the table reads every source key back: the same edits are found.
    let run = ctx.ddbsync(&["--json", "verify", "local", "--sample", "1000", "--table", "lessons"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let sampled = json(&run);
    assert_eq!(keys(&sampled, &lessons, "missing"), [("lesson_id=8".into(), "no such item in DynamoDB".into())]);
    let mut differing: Vec<String> = keys(&sampled, &lessons, "differing").into_iter().map(|(k, _)| k).collect();
    differing.sort();
    assert_eq!(differing, ["lesson_id=7", "lesson_id=9"]);

    // A sync repairs what changed in the source and what was deleted, not the hand edit, whose
    // stored hash still matches: that is what verify is for.
    ctx.sync(&[]);
    let after = json(&ctx.ddbsync(&["--json", "verify", "local", "--full", "--table", "lessons"]));
    assert_eq!(
        keys(&after, &lessons, "differing"),
        [("lesson_id=7".into(), "changed in DynamoDB after ddbsync wrote it".into())]
    );
    assert!(keys(&after, &lessons, "missing").is_empty());
    ctx.sync(&["--clean", "--yes", "--table", "lessons"]);
    let run = ctx.ddbsync(&["--json", "verify", "local", "--full", "--table", "lessons"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
}

#[tokio::test]
async fn history_and_report_sum_the_recorded_runs() {
    let ctx = Ctx::new(SCALE).await;
    let empty = ctx.ddbsync(&["history", "local"]);
    assert_eq!(empty.code(), 0, "{}", empty.stderr());
    assert_eq!(empty.stdout(), "local: no runs recorded\n");

    let mut reports = vec![ctx.sync(&[])];
    ctx.sql(&["UPDATE lessons SET title = title || '!' WHERE id <= 3"]);
    reports.push(ctx.sync(&[]));
    reports.push(ctx.sync(&[]));
    ctx.ddbsync(&["sync", "local", "--dry-run"]); // not recorded

    let history = json(&ctx.ddbsync(&["--json", "history", "local"]));
    let runs = history["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    // Newest first.
    for (run, report) in runs.iter().zip(reports.iter().rev()) {
        assert_eq!(run["started_at"], report["started_at"]);
        for field in ["created", "updated", "unchanged", "write_units"] {
            assert_eq!(run[field].as_f64(), report["total"][field].as_f64(), "{field}");
        }
    }
    assert_eq!(runs[1]["updated"], 3);

    let summary = json(&ctx.ddbsync(&["--json", "report", "local", "--since", "1h"]));
    assert_eq!(summary["runs"], 3);
    let sum = |path: &[&str]| -> f64 {
        reports.iter().map(|r| path.iter().fold(&r["total"], |v, k| &v[*k]).as_f64().unwrap()).sum()
    };
    assert_eq!(summary["total"]["created"].as_f64(), Some(sum(&["created"])));
    assert_eq!(summary["total"]["unchanged"].as_f64(), Some(sum(&["unchanged"])));
    assert_eq!(summary["total"]["write_units"].as_f64(), Some(sum(&["write_units"])));
    let cost = summary["total"]["cost_usd"].as_f64().unwrap();
    assert!((cost - sum(&["cost_usd"])).abs() < 1e-12, "{cost}");
    let saved = summary["total"]["saved_usd"].as_f64().unwrap();
    assert!((saved - sum(&["saved_usd"])).abs() < 1e-12, "{saved}");
    let lessons = &summary["tables"][ctx.table("lessons")];
    assert_eq!(lessons["updated"], 3);
    assert_eq!(lessons["created"], SCALE);

    let csv = ctx.ddbsync(&["report", "local", "--csv", "--since", "all"]).stdout();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("table,runs,created,updated,unchanged"), "{csv}");
    assert_eq!(lines.len(), 1 + 3 + 1, "{csv}");
    assert!(lines[4].starts_with(&format!("total,3,{},3,", sum(&["created"]))), "{csv}");
    let csv = ctx.ddbsync(&["history", "local", "--csv", "--limit", "2"]).stdout();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    // `mode` is the plain mode, as in JSON, the parameters and the outcome in columns of their own.
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("started_at,finished_at,mode,params,outcome,exit_code,created,"), "{csv}");
    let first = lines[1].split(',').collect::<Vec<_>>();
    assert_eq!(first[2..6], [runs[0]["mode"].as_str().unwrap(), "", "completed", "0"], "{csv}");

    // A run of one table counts for that table only: each table's `runs` is the runs that touched
    // it, as history lists them.
    ctx.sync(&["--table", "lessons"]);
    let history = json(&ctx.ddbsync(&["--json", "history", "local"]));
    let touched = |table: &str| {
        history["runs"].as_array().unwrap().iter().filter(|r| r["tables"].get(table).is_some()).count() as u64
    };
    let (lessons, topics) = (ctx.table("lessons"), ctx.table("topics"));
    assert_eq!((touched(&lessons), touched(&topics)), (4, 3), "{history}");
    let summary = json(&ctx.ddbsync(&["--json", "report", "local", "--since", "all"]));
    assert_eq!(summary["runs"], 4);
    for table in [&lessons, &topics] {
        assert_eq!(summary["tables"][table]["runs"].as_u64(), Some(touched(table)), "{table}: {summary}");
    }
    let csv = ctx.ddbsync(&["report", "local", "--csv", "--since", "all"]).stdout();
    for table in [&lessons, &topics] {
        let row = csv.lines().find(|l| l.starts_with(&format!("{table},"))).unwrap_or_else(|| panic!("{csv}"));
        assert_eq!(row.split(',').nth(1), Some(touched(table).to_string().as_str()), "{csv}");
    }
    assert!(csv.lines().last().unwrap().starts_with("total,4,"), "{csv}");

    let future = json(&ctx.ddbsync(&["--json", "report", "local", "--since", "2099-01-01"]));
    assert_eq!(future["runs"], 0);
    let bad = ctx.ddbsync(&["report", "local", "--since", "last tuesday"]);
    assert_eq!(bad.code(), 2);
    assert!(bad.stderr().contains("--since last tuesday: give a duration"), "{}", bad.stderr());
    let both = ctx.ddbsync(&["--json", "history", "local", "--csv"]);
    assert_eq!(both.code(), 2);
}

#[tokio::test]
async fn the_iam_policy_names_this_profiles_tables() {
    let ctx = Ctx::new(1).await;
    let run = ctx.ddbsync(&["iam-policy", "local", "--for", "sync"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let policy = json(&run);
    let statements = policy["Statement"].as_array().unwrap();
    let actions: Vec<&str> = statements[0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(actions.contains(&"dynamodb:BatchWriteItem") && !actions.contains(&"dynamodb:DeleteTable"), "{actions:?}");
    let resources = statements[0]["Resource"].to_string();
    assert!(
        resources.contains(&format!("arn:aws:dynamodb:us-east-1:*:table/{}\"", ctx.table("lessons"))),
        "{resources}"
    );
    assert!(run.stderr().contains("target.account_id is not set"), "{}", run.stderr());
}

/// The report of a first sync, as a person reads it; what changes from run to run is filtered.
#[tokio::test]
async fn the_sync_report_reads_the_same_every_time() {
    let ctx = Ctx::new(SCALE).await;
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let server = crate::harness::server_kind();
    let prefix = regex_escape(&ctx.prefix);
    // As wide as the random prefix, so that the table's columns stay aligned.
    let placeholder = format!("{:_<1$}-", "<prefix>", ctx.prefix.len() - 1);
    insta::with_settings!({
        snapshot_suffix => server.as_str(),
        filters => vec![(prefix.as_str(), placeholder.as_str())],
    }, {
        insta::assert_snapshot!(run.stdout());
    });
    ctx.sql(&["UPDATE lessons SET title = title || '!' WHERE id <= 3"]);
    ctx.ddbsync(&["sync", "local"]);
    let run = ctx.ddbsync(&["report", "local", "--since", "1h"]);
    insta::with_settings!({
        snapshot_suffix => server.as_str(),
        filters => vec![(prefix.as_str(), placeholder.as_str()), (r"since \d{4}-\d\d-\d\d", "since <date>")],
    }, {
        insta::assert_snapshot!(run.stdout());
    });
}

fn regex_escape(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_string() } else { format!("\\{c}") }).collect()
}

/// The environment `scoped`: lessons from `min_id` on, within `scope`, deleting orphans.
fn scoped(ctx: &Ctx, scope: &str) {
    let text = format!(
        "[tables.lessons]\npartition_key = \"lesson_id\"\nparams = [\"min_id\"]\ndelete_missing = true\n\
         scope = \"{scope}\"\nquery = \"SELECT id AS lesson_id, title, level FROM lessons WHERE id >= $1\"\n"
    );
    let path = ctx.write_mappings("scoped.toml", &text);
    ctx.write_profile_with("scoped", &Profile { mappings: Some(&path), ..Profile::default() });
}

#[tokio::test]
async fn a_scope_dynamodb_refuses_fails_the_first_sync_before_it_writes_and_a_sliced_table_is_never_cleaned() {
    let ctx = Ctx::new(6).await;
    let write = |scope: &str| scoped(&ctx, scope);
    // A new environment: check cannot try the scope anywhere, and says when it will be tried.
    write("lesson_id >>= :min_id");
    let run = ctx.ddbsync(&["check", "scoped"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert!(run.stdout().contains("the first sync tries it on the new table before it writes"), "{}", run.stdout());
    // A dry run creates no table to try it on, and says so.
    let dry = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=3", "--dry-run"]);
    assert_eq!(dry.code(), 0, "{}", dry.stderr());
    assert!(
        dry.stdout().contains("its scope was not tried on DynamoDB, as the table does not exist yet"),
        "{}",
        dry.stdout()
    );
    // The first sync: the table is created, the scope refused, nothing written; a profile error.
    let first = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=3"]);
    assert_eq!(first.code(), 2, "{}", first.stderr());
    assert!(
        first.stderr().contains("scoped.toml: table \"lessons\": DynamoDB refuses scope = \"lesson_id >>= :min_id\""),
        "{}",
        first.stderr()
    );
    assert!(ctx.table_exists("lessons").await);
    assert_eq!(ctx.scan("lessons").await.len(), 0, "nothing written under a scope DynamoDB refuses");

    // A clean load of a filled table: refused before the table is deleted.
    write("lesson_id >= :min_id");
    let filled = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=3"]);
    assert_eq!(filled.code(), 0, "{}", filled.stderr());
    assert_eq!(ctx.scan("lessons").await.len(), 4);
    write("lesson_id >>= :min_id");
    // A clean load of a parameterised table would keep only one slice: refused, the table as it was.
    let clean = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=5", "--clean", "--yes"]);
    assert_eq!(clean.code(), 2, "{}", clean.stderr());
    assert!(
        clean.stderr().contains("its queries take parameters and load one slice of it: every item outside the slice"),
        "{}",
        clean.stderr()
    );
    let dry = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=5", "--clean", "--dry-run"]);
    assert_eq!(dry.code(), 2, "the dry run says so too: {}", dry.stderr());
    assert_eq!(ctx.scan("lessons").await.len(), 4, "the table was not deleted");
    // Nothing was done, so nothing is recorded: no clean run in the history.
    let history = json(&ctx.ddbsync(&["--json", "history", "scoped"]));
    let runs = history["runs"].as_array().unwrap_or_else(|| panic!("{history}"));
    assert!(!runs.is_empty(), "{history}");
    assert!(runs.iter().all(|r| r["mode"] != "clean"), "{history}");
}

#[tokio::test]
async fn check_tries_each_scope_on_dynamodb_and_warns_of_attributes_no_query_returns() {
    let ctx = Ctx::new(6).await;
    let write = |scope: &str| scoped(&ctx, scope);
    let scope_check = |run: &Run| {
        let report = json(run);
        let check = report["checks"].as_array().unwrap().iter().find(|c| c["what"] == "scope of lessons").cloned();
        check.unwrap_or_else(|| panic!("no scope check in {report}"))
    };

    // Before any table exists there is nothing to try the scope on: said, not guessed.
    write("lesson_id >= :min_id");
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let check = scope_check(&run);
    assert_eq!(check["status"], "skipped", "{check}");
    assert!(
        check["detail"]
            .as_str()
            .unwrap()
            .contains("neither the table nor the metadata table exists yet; the first sync"),
        "{check}"
    );

    let first = ctx.ddbsync(&["--json", "sync", "scoped", "--param", "min_id=3"]);
    assert_eq!(first.code(), 0, "{}", first.stderr());
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let check = scope_check(&run);
    assert_eq!(check["status"], "ok", "{check}");
    assert_eq!(check["detail"], "DynamoDB accepts it; it reads lesson_id, which the queries return");

    // An expression DynamoDB refuses: a failed check (a mappings error, exit 2) naming the table
    // and the scope, with DynamoDB's own reason.
    write("lesson_id >>= :min_id");
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 2, "{}", run.stdout());
    let check = scope_check(&run);
    assert_eq!(check["status"], "fail", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "scoped.toml: table \"lessons\": DynamoDB refuses scope = \"lesson_id >>= :min_id\": ValidationException"
        ),
        "{detail}"
    );
    // The oracle: the sync's own Scan is refused by DynamoDB the same way, and the sync says it
    // is the scope, a mistake in the mappings file (exit 2).
    let sync = ctx.ddbsync(&["sync", "scoped", "--param", "min_id=3"]);
    assert_eq!(sync.code(), 2, "{}", sync.stderr());
    assert!(
        sync.stderr().contains(
            "scoped.toml: table \"lessons\": DynamoDB refuses scope = \"lesson_id >>= :min_id\": ValidationException"
        ),
        "{}",
        sync.stderr()
    );

    // A misspelt attribute: DynamoDB accepts it, but no item has it, so the scope selects none:
    // a warning (a sync can run), and the sync shows why it matters.
    write("lessonid >= :min_id");
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 0, "a warning is not a failure: {}", run.stdout());
    let check = scope_check(&run);
    assert_eq!(check["status"], "warn", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "DynamoDB accepts it, but it reads attribute \"lessonid\", which no query of the table returns"
        ),
        "{detail}"
    );
    assert!(detail.contains("scoped.toml"), "{detail}");
    let human = ctx.ddbsync(&["check", "scoped"]);
    assert!(human.stdout().contains("[warn] scope of lessons: DynamoDB accepts it, but"), "{}", human.stdout());
    let again = ctx.ddbsync(&["--json", "sync", "scoped", "--param", "min_id=3"]);
    let again = json(&again);
    let table = ctx.table("lessons");
    assert_eq!(
        figure(&again, &table, "unchanged"),
        0.0,
        "nothing changed in the source, yet the scope hides every item from the diff: {again}"
    );
    assert_eq!(ctx.scan("lessons").await.len(), 4, "lessons 3 to 6, written again");

    // While the table does not exist (a new table's first sync has nothing to scan, so a bad scope
    // would fail only the next one), the scope is tried on the metadata table.
    ctx.dynamo.delete_table().table_name(&table).send().await.unwrap();
    while ctx.table_exists("lessons").await {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    write("lesson_id >>= :min_id");
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 2, "{}", run.stdout());
    let check = scope_check(&run);
    assert_eq!(check["status"], "fail", "{check}");
    assert!(
        check["detail"].as_str().unwrap().contains("DynamoDB refuses scope = \"lesson_id >>= :min_id\""),
        "{check}"
    );
    write("lesson_id >= :min_id");
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    assert_eq!(scope_check(&run)["detail"], "DynamoDB accepts it; it reads lesson_id, which the queries return");
    // Credentials that may not Query the metadata table (a sync's policy) leave it untried, not failed.
    ctx.proxy.fault_next("Query", crate::proxy::Fault::AccessDenied);
    let run = ctx.ddbsync(&["--json", "check", "scoped"]);
    assert_eq!(run.code(), 0, "{}", run.stdout());
    let check = scope_check(&run);
    assert_eq!(check["status"], "skipped", "{check}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.starts_with("not tried on DynamoDB: the table does not exist yet, and these credentials may not Query the metadata table"), "{detail}");
    assert!(detail.contains("--for report` grants it): AccessDeniedException"), "{detail}");
    assert!(!ctx.table_exists("lessons").await, "check creates nothing");
}
