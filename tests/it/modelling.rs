//! Modelling choices on the PNI sample: the questions embedded in their lesson
//! (`envs/mappings/pni.toml`) or stored as items of their own beside it
//! (`envs/mappings/pni-single-table.toml`), and what each does with a lesson over 400 KB.

use crate::harness::{figure, repo, text, Ctx, Profile};

fn entity(report: &serde_json::Value, entity: &str) -> [u64; 3] {
    let e = report["tables"][0]["entities"].as_array().unwrap().iter().find(|e| e["entity"] == entity).unwrap();
    ["created", "updated", "unchanged"].map(|f| e[f].as_u64().unwrap())
}

/// `ddbsync --json sync single <args>`, which must succeed (exit 0).
fn sync_single(ctx: &Ctx, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json", "sync", "single"];
    all.extend_from_slice(args);
    let run = ctx.ddbsync(&all);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    serde_json::from_str(&run.stdout()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_as_items_rewrite_one_small_item_and_outgrow_the_item_limit() {
    let ctx = Ctx::new(20).await;
    let mappings = repo().join("envs/mappings/pni-single-table.toml");
    ctx.write_profile_with("single", &Profile { mappings: Some(&mappings), ..Profile::default() });

    let first = sync_single(&ctx, &[]);
    assert_eq!(entity(&first, "lesson"), [20, 0, 0]);
    assert_eq!(entity(&first, "question"), [140, 0, 0]);
    let items = ctx.scan("content").await;
    let lesson7: Vec<String> =
        items.iter().filter(|i| text(&i["PK"]) == "LESSON#7").map(|i| text(&i["SK"])).collect::<Vec<_>>();
    assert_eq!(lesson7.len(), 8, "the lesson and its 7 questions share a partition: {lesson7:?}");
    // The sparse index holds the lessons only.
    let indexed = ctx.dynamo.scan().table_name(ctx.table("content")).index_name("ByTopic").send().await.unwrap();
    assert_eq!(indexed.count, 20);

    // One question reworded: one question item rewritten, the lesson untouched.
    ctx.sql(&["UPDATE questions SET prompt = 'Reworded?' WHERE id = 45"]);
    let second = sync_single(&ctx, &[]);
    assert_eq!(entity(&second, "question"), [0, 1, 139]);
    assert_eq!(entity(&second, "lesson"), [0, 0, 20]);
    // The embedded design rewrites the whole lesson for the same change.
    ctx.sync(&[]);
    ctx.sql(&["UPDATE questions SET prompt = 'Reworded again?' WHERE id = 45"]);
    let embedded = ctx.sync(&["--table", "lessons"]);
    assert_eq!(figure(&embedded, &ctx.table("lessons"), "updated"), 1.0);
    assert!(
        figure(&embedded, &ctx.table("lessons"), "write_units")
            > figure(&sync_single(&ctx, &[]), &ctx.table("content"), "write_units"),
        "a lesson with its questions costs more to rewrite than one question"
    );

    // Lesson 3 grows 300 questions of 2 KB: 600 KB embedded.
    ctx.sql(&[
        "INSERT INTO questions (id, lesson_id, position, prompt, choices, answer, difficulty, created_at, updated_at) \
               SELECT 10000 + g, 3, 7 + g, repeat('long question ', 150), '[]', 1, 1.0, now(), now() \
               FROM generate_series(1, 300) AS g",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local", "--table", "lessons"]);
    assert_eq!(run.code(), 3, "a rejected row makes the run exit 3: {}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let rejected = &report["tables"][0]["rejected"][0];
    assert_eq!(rejected["key"], "lesson_id=3");
    let reason = rejected["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the item is ")
            && reason.contains("over DynamoDB's 400 KB limit; its largest attribute, \"questions\""),
        "{reason}"
    );
    // As items of their own, the same questions are written.
    let grown = sync_single(&ctx, &[]);
    assert_eq!(entity(&grown, "question"), [300, 0, 140]);
    assert_eq!(grown["total"]["rejected"], 0);

    // verify hashes each item with its own entity's settings.
    let verified = ctx.ddbsync(&["verify", "single", "--full"]);
    assert_eq!(verified.code(), 0, "{}{}", verified.stdout(), verified.stderr());
    ctx.sql(&["UPDATE lessons SET title = 'Retitled' WHERE id = 2"]);
    let differs = ctx.ddbsync(&["--json", "verify", "single", "--full"]);
    assert_eq!(differs.code(), 3, "{}", differs.stderr());
    let v: serde_json::Value = serde_json::from_str(&differs.stdout()).unwrap();
    assert_eq!(v["tables"][0]["differing"]["keys"][0]["key"], "PK=\"LESSON#2\", SK=\"LESSON\"");
}
