//! The sync itself: what is written, what is skipped, and what the report says.

use crate::harness::{figure, text, Ctx};

const SCALE: u32 = 40;

fn counts(report: &serde_json::Value, table: &str) -> (f64, f64, f64) {
    (figure(report, table, "created"), figure(report, table, "updated"), figure(report, table, "unchanged"))
}

#[tokio::test]
async fn first_sync_creates_everything_and_the_second_writes_nothing() {
    let ctx = Ctx::new(SCALE).await;
    let topics: f64 = ctx.query("SELECT count(DISTINCT (category, topic)) FROM lessons")[0].parse().unwrap();
    let first = ctx.sync(&[]);
    assert_eq!(counts(&first, &ctx.table("lessons")), (SCALE as f64, 0.0, 0.0));
    assert_eq!(counts(&first, &ctx.table("passages")), (2.0 * SCALE as f64, 0.0, 0.0));
    assert_eq!(counts(&first, &ctx.table("topics")), (topics, 0.0, 0.0));
    assert_eq!(ctx.scan("lessons").await.len(), SCALE as usize);
    assert_eq!(ctx.scan("passages").await.len(), 2 * SCALE as usize);

    ctx.proxy.clear();
    let second = ctx.sync(&[]);
    assert_eq!(counts(&second, &ctx.table("lessons")), (0.0, 0.0, SCALE as f64));
    assert_eq!(counts(&second, &ctx.table("topics")), (0.0, 0.0, topics));
    assert_eq!(second["total"]["write_units"], 0.0);
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty(), "an unchanged source sends no write at all");
    assert!(second["total"]["saved_percent"].as_f64().unwrap() > 50.0, "{}", second["total"]);

    let mut runs = ctx.scan("cache-metadata").await;
    runs.sort_by_key(|r| text(&r["sk"]));
    assert_eq!(runs.len(), 2, "each run is recorded");
    assert_eq!(text(&runs[0]["environment"]), "local");
    assert_eq!(text(&runs[0]["created"]), first["total"]["created"].to_string());
    assert_eq!(text(&runs[1]["unchanged"]), second["total"]["unchanged"].to_string());
    assert_eq!(text(&runs[1]["write_units"]), "0");
}

#[tokio::test]
async fn touching_only_timestamps_writes_nothing() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    ctx.sql(&[
        "UPDATE lessons SET updated_at = now() WHERE id IN (3, 4)",
        "UPDATE questions SET updated_at = now(), created_at = now() WHERE id = 10",
    ]);
    ctx.proxy.clear();
    let report = ctx.sync(&[]);
    assert_eq!(report["total"]["created"], 0);
    assert_eq!(report["total"]["updated"], 0);
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty());
}

#[tokio::test]
async fn a_changed_question_rewrites_exactly_its_lesson_and_its_passage() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    let (lesson, passage) = {
        let row = ctx.query("SELECT lesson_id || ' ' || passage_id FROM questions WHERE id = 9");
        let mut parts = row[0].split(' ').map(str::to_string);
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let lessons_before = ctx.hashes("lessons", "lesson_id").await;
    let passages_before = ctx.hashes("passages", "passage_id").await;
    ctx.sql(&["UPDATE questions SET prompt = 'Reworded?' WHERE id = 9"]);

    let report = ctx.sync(&[]);
    assert_eq!(counts(&report, &ctx.table("lessons")), (0.0, 1.0, SCALE as f64 - 1.0));
    assert_eq!(counts(&report, &ctx.table("passages")), (0.0, 1.0, 2.0 * SCALE as f64 - 1.0));
    assert_eq!(figure(&report, &ctx.table("topics"), "updated"), 0.0);

    let changed = |before: &std::collections::HashMap<String, String>,
                   after: std::collections::HashMap<String, String>| {
        let mut keys: Vec<String> =
            after.into_iter().filter(|(k, h)| before.get(k) != Some(h)).map(|(k, _)| k).collect();
        keys.sort();
        keys
    };
    assert_eq!(changed(&lessons_before, ctx.hashes("lessons", "lesson_id").await), vec![lesson.clone()]);
    assert_eq!(changed(&passages_before, ctx.hashes("passages", "passage_id").await), vec![passage]);
    let item = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == lesson).unwrap();
    let questions = item["questions"].as_l().unwrap();
    assert!(questions.iter().any(|q| q.as_m().unwrap().get("prompt").map(text).as_deref() == Some("Reworded?")));
}

#[tokio::test]
async fn a_new_lesson_is_created() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    ctx.sql(&["INSERT INTO lessons (id, title, category, topic, level, created_at, updated_at)
               VALUES (9999, 'Brand new', 'science', 'earth', 3, now(), now())"]);
    let report = ctx.sync(&[]);
    assert_eq!(counts(&report, &ctx.table("lessons")), (1.0, 0.0, SCALE as f64));
    let item = ctx.scan("lessons").await.into_iter().find(|i| text(&i["lesson_id"]) == "9999").expect("lesson 9999");
    assert_eq!(text(&item["title"]), "Brand new");
    assert_eq!(item["questions"].as_l().unwrap().len(), 0);
    assert!(!item.contains_key("summary"), "a NULL column is omitted");
}

#[tokio::test]
async fn dry_run_writes_nothing_and_predicts_the_real_run() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    ctx.sql(&[
        "UPDATE questions SET prompt = 'Changed' WHERE id IN (1, 50)",
        "UPDATE lessons SET updated_at = now() WHERE id = 7",
        "INSERT INTO lessons (id, title, category, topic, level, created_at, updated_at)
         VALUES (5000, 'New', 'nature', 'rivers', 1, now(), now())",
    ]);
    let before = ctx.hashes("lessons", "lesson_id").await;
    ctx.proxy.clear();
    let predicted = ctx.sync(&["--dry-run"]);
    assert!(ctx.proxy.exchanges("BatchWriteItem").is_empty(), "a dry run writes nothing");
    assert!(ctx.proxy.exchanges("PutItem").is_empty(), "a dry run records no run");
    assert_eq!(ctx.hashes("lessons", "lesson_id").await, before);

    let actual = ctx.sync(&[]);
    for table in ["lessons", "passages", "topics"] {
        let t = ctx.table(table);
        assert_eq!(counts(&predicted, &t), counts(&actual, &t), "{table}");
    }
    assert_eq!(counts(&actual, &ctx.table("lessons")), (1.0, 2.0, SCALE as f64 - 2.0));
}

#[tokio::test]
async fn clean_rewrites_everything_and_the_content_equals_the_source() {
    let ctx = Ctx::new(SCALE).await;
    ctx.sync(&[]);
    // An item nobody should keep: --clean recreates the table.
    ctx.dynamo
        .put_item()
        .table_name(ctx.table("lessons"))
        .item("lesson_id", aws_sdk_dynamodb::types::AttributeValue::N("123456".into()))
        .send()
        .await
        .unwrap();
    let report = ctx.sync(&["--clean", "--yes"]);
    assert_eq!(counts(&report, &ctx.table("lessons")), (SCALE as f64, 0.0, 0.0));
    assert_eq!(counts(&report, &ctx.table("passages")), (2.0 * SCALE as f64, 0.0, 0.0));
    let lessons = ctx.scan("lessons").await;
    assert_eq!(lessons.len(), SCALE as usize);

    // Field by field against the source, read with psql (independently of ddbsync's conversion).
    let rows = ctx.query(
        "SELECT id, title, category, level, coalesce(summary, '<null>'), metadata->>'grade', published,
                to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'),
                (SELECT string_agg(prompt || '=' || difficulty::float8::text, '|' ORDER BY position) FROM questions q WHERE q.lesson_id = l.id)
         FROM lessons l ORDER BY id",
    );
    assert_eq!(rows.len(), SCALE as usize);
    for row in rows {
        let f: Vec<&str> = row.split('|').collect();
        let item =
            lessons.iter().find(|i| text(&i["lesson_id"]) == f[0]).unwrap_or_else(|| panic!("lesson {} missing", f[0]));
        assert_eq!(text(&item["title"]), f[1]);
        assert_eq!(text(&item["category"]), f[2]);
        assert_eq!(text(&item["level"]), f[3]);
        match f[4] {
            "<null>" => assert!(!item.contains_key("summary")),
            summary => assert_eq!(text(&item["summary"]), summary),
        }
        assert_eq!(text(&item["metadata"].as_m().unwrap()["grade"]), f[5]);
        assert_eq!(text(&item["published"]), if f[6] == "t" { "true" } else { "false" });
        assert_eq!(text(&item["created_at"]), format!("{}+00:00", f[7]));
        let questions: Vec<String> = item["questions"]
            .as_l()
            .unwrap()
            .iter()
            .map(|q| {
                let q = q.as_m().unwrap();
                format!("{}={}", text(&q["prompt"]), text(&q["difficulty"]))
            })
            .collect();
        let expected: Vec<String> = f[8..].iter().map(|s| s.to_string()).collect();
        assert_eq!(questions, expected, "questions of lesson {}", f[0]);
    }
}

#[tokio::test]
async fn reported_units_are_what_the_server_reported() {
    let ctx = Ctx::new(SCALE).await;
    ctx.proxy.clear();
    let first = ctx.sync(&[]);
    ctx.sql(&["UPDATE questions SET prompt = 'Again?' WHERE id IN (2, 30, 100)"]);
    let second = ctx.sync(&[]);

    let consumed = |operation: &str| -> f64 {
        ctx.proxy
            .exchanges(operation)
            .iter()
            .map(|e| match &e.response["ConsumedCapacity"] {
                serde_json::Value::Array(list) => list.iter().filter_map(|c| c["CapacityUnits"].as_f64()).sum(),
                c => c["CapacityUnits"].as_f64().unwrap_or(0.0),
            })
            .sum()
    };
    let writes = consumed("BatchWriteItem");
    let reads = consumed("Scan");
    assert!(writes > 0.0 && reads > 0.0, "the server reported capacity: writes {writes}, reads {reads}");
    let reported_writes =
        first["total"]["write_units"].as_f64().unwrap() + second["total"]["write_units"].as_f64().unwrap();
    let reported_reads =
        first["total"]["read_units"].as_f64().unwrap() + second["total"]["read_units"].as_f64().unwrap();
    assert_eq!(reported_writes, writes);
    assert_eq!(reported_reads, reads);
}

#[tokio::test]
async fn the_write_unit_cap_holds() {
    let ctx = Ctx::new(SCALE).await;
    let run = ctx.ddbsync(&["--json", "sync", "local", "--max-write-units-per-second", "100"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let units = report["total"]["write_units"].as_f64().unwrap();
    assert!(units > 250.0, "enough units to need the cap: {units}");
    // The bucket starts with one second's worth (100 units); the rest cannot go faster than 100/s.
    // The cap spends estimated units, which may be a little under what the server bills: 20 % slack.
    let floor = (units - 100.0) / 100.0;
    assert!(
        run.elapsed.as_secs_f64() >= floor * 0.8,
        "{units} units in {:?}, under the cap's floor of {floor}s",
        run.elapsed
    );
}
