//! A promotion's workflow around the sync (seed 001): a test of one record and what it references
//! (`--limit`), the ID map (`--id-map`), the integrity check of the target (`verify --references`),
//! the backup and the confirmation a protected target asks for, and the dry run's estimate. The
//! source is a DynamoDB "dev" environment the test builds with its own client; every check reads
//! the target back with that client and judges by the items' own content (each has a unique
//! `name`), not by ddbsync's idea of the IDs.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{text, Ctx};

type Item = HashMap<String, AttributeValue>;

const MAPPINGS: &str = r#"exclude_from_hash = ["updatedAt", "_version"]

[tables.Quotes]
partition_key = "id"
id = "id"
references = { projectId = "Projects", "people[]" = "Contacts" }

[tables.Projects]
partition_key = "id"
id = "id"
references = { contactId = "Contacts" }

[tables.Contacts]
partition_key = "id"
id = "id"
"#;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

/// A UUID-shaped ID from a small number, as Amplify's are.
fn uuid(kind: u32, n: u32) -> String {
    format!("{kind:08x}-0000-4000-8000-{n:012x}")
}

/// The dev environment: 6 contacts, 4 projects (project p references contact p), 8 quotes (quote q
/// references project q % 4 and contacts q % 6 and (q + 1) % 6 in a list). Each item has a unique
/// `name`, by which the target's items are matched with the source's.
async fn build_dev(ctx: &Ctx) {
    let mut tables: BTreeMap<&str, Vec<Item>> = BTreeMap::new();
    for c in 0..6 {
        tables.entry("Contacts").or_default().push(
            [
                ("id".into(), s(&uuid(1, c))),
                ("name".into(), s(&format!("contact {c}"))),
                ("_version".into(), AttributeValue::N("1".into())),
            ]
            .into(),
        );
    }
    for p in 0..4 {
        tables.entry("Projects").or_default().push(
            [
                ("id".into(), s(&uuid(2, p))),
                ("name".into(), s(&format!("project {p}"))),
                ("contactId".into(), s(&uuid(1, p))),
            ]
            .into(),
        );
    }
    for q in 0..8 {
        let people = AttributeValue::L(vec![s(&uuid(1, q % 6)), s(&uuid(1, (q + 1) % 6))]);
        tables.entry("Quotes").or_default().push(
            [
                ("id".into(), s(&uuid(3, q))),
                ("name".into(), s(&format!("quote {q}"))),
                ("projectId".into(), s(&uuid(2, q % 4))),
                ("people".into(), people),
                ("updatedAt".into(), s("2026-01-01T00:00:00Z")),
            ]
            .into(),
        );
    }
    for (table, items) in tables {
        ctx.create_table(&format!("{table}-dev"), "id").await;
        let name = ctx.table(&format!("{table}-dev"));
        for item in items {
            ctx.dynamo.put_item().table_name(&name).set_item(Some(item)).send().await.unwrap();
        }
    }
}

/// Profile `env` promoting the test's dev tables into `<prefix><table>-<env>`.
fn write_env(ctx: &Ctx, env: &str, top: &str) {
    let mappings = ctx.write_mappings("promote.toml", MAPPINGS);
    let url = &ctx.proxy.url;
    let text = format!(
        r#"mappings = "{mappings}"
table_prefix = "{prefix}"
table_suffix = "-{env}"
{top}

[source]
kind = "dynamodb"
table_template = "{prefix}{{table}}-dev"
endpoint_url = "{url}"

[target]
region = "us-east-1"
endpoint_url = "{url}"
id_namespace = "prod"
"#,
        mappings = mappings.display(),
        prefix = ctx.prefix,
    );
    std::fs::write(ctx.envs.path().join(format!("{env}.toml")), text).unwrap();
}

/// A table's items by their `name`.
async fn by_name(ctx: &Ctx, table: &str) -> BTreeMap<String, Item> {
    let items = if ctx.table_exists(table).await { ctx.scan(table).await } else { Vec::new() };
    items.into_iter().map(|item| (text(&item["name"]), item)).collect()
}

fn json(run: &crate::harness::Run) -> serde_json::Value {
    serde_json::from_str(&run.stdout()).unwrap_or_else(|e| panic!("{e}: {}\n{}", run.stdout(), run.stderr()))
}

#[tokio::test]
async fn a_limited_promotion_writes_one_quote_and_what_it_references_and_deletes_nothing() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    let run = ctx.ddbsync(&["--json", "sync", "test", "--table", "Quotes", "--limit", "1"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let quotes = by_name(&ctx, "Quotes-test").await;
    assert_eq!(quotes.len(), 1, "{quotes:?}");
    // The oracle: the dev quote of the same name, and what it references in dev.
    let name = quotes.keys().next().unwrap();
    let q: u32 = name.trim_start_matches("quote ").parse().unwrap();
    let project = q % 4;
    let contacts: BTreeSet<String> = [q % 6, (q + 1) % 6, project].iter().map(|c| format!("contact {c}")).collect();
    let projects: BTreeSet<String> = by_name(&ctx, "Projects-test").await.into_keys().collect();
    assert_eq!(projects, BTreeSet::from([format!("project {project}")]));
    let written: BTreeSet<String> = by_name(&ctx, "Contacts-test").await.into_keys().collect();
    assert_eq!(written, contacts, "the quote's contacts and its project's, nothing else");
    let report = json(&run);
    assert_eq!(report["promotion"]["sample"], 1);

    // After a whole promotion, a limited run deletes nothing, even of a table with delete_missing.
    let whole = MAPPINGS.replace("[tables.Contacts]\n", "[tables.Contacts]\ndelete_missing = true\n");
    ctx.write_mappings("promote.toml", &whole);
    assert_eq!(ctx.ddbsync(&["sync", "test"]).code(), 0);
    assert_eq!(by_name(&ctx, "Contacts-test").await.len(), 6);
    let run = ctx.ddbsync(&["--json", "sync", "test", "--table", "Contacts", "--limit", "2"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(report["total"]["deleted"], 0);
    assert_eq!(by_name(&ctx, "Contacts-test").await.len(), 6, "the 4 contacts not sampled are kept");
}

#[tokio::test]
async fn the_id_map_and_the_references_agree_with_the_source() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    let map = ctx.envs.path().join("ids.jsonl");
    let run = ctx.ddbsync(&["--json", "sync", "test", "--id-map", map.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report = json(&run);
    assert_eq!(report["promotion"]["id_map"], map.display().to_string());
    assert!(report["promotion"]["estimated_seconds"].is_null(), "an estimate only in a dry run");
    // Source ID → target ID, per table, as the map lists them.
    let mut ids: HashMap<(String, String), String> = HashMap::new();
    for line in std::fs::read_to_string(&map).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (source, target) = (v["source_id"]["S"].as_str().unwrap(), v["target_id"]["S"].as_str().unwrap());
        ids.insert((v["table"].as_str().unwrap().to_string(), source.to_string()), target.to_string());
    }
    assert_eq!(ids.len(), 6 + 4 + 8);
    for (table, kind, n) in [("Contacts", 1, 6), ("Projects", 2, 4), ("Quotes", 3, 8)] {
        let target = by_name(&ctx, &format!("{table}-test")).await;
        assert_eq!(target.len(), n as usize);
        for i in 0..n {
            let name = format!("{} {i}", table.trim_end_matches('s').to_lowercase());
            let item = &target[&name];
            assert_eq!(text(&item["id"]), ids[&(table.to_string(), uuid(kind, i))], "{name}");
            assert_ne!(text(&item["id"]), uuid(kind, i), "a new ID");
        }
    }
    // Every reference points at the target item made from the dev item it pointed at.
    let contacts = by_name(&ctx, "Contacts-test").await;
    let projects = by_name(&ctx, "Projects-test").await;
    for (name, quote) in by_name(&ctx, "Quotes-test").await {
        let q: u32 = name.trim_start_matches("quote ").parse().unwrap();
        assert_eq!(text(&quote["projectId"]), text(&projects[&format!("project {}", q % 4)]["id"]));
        let AttributeValue::L(people) = &quote["people"] else { panic!("{quote:?}") };
        let expected: Vec<String> =
            [q % 6, (q + 1) % 6].iter().map(|c| text(&contacts[&format!("contact {c}")]["id"])).collect();
        assert_eq!(people.iter().map(text).collect::<Vec<_>>(), expected);
    }

    // The target's references all resolve; one written behind ddbsync's back does not.
    let run = ctx.ddbsync(&["--json", "verify", "test", "--references"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(json(&run)["references"][1]["dangling"], 0);
    let stray: Item = [
        ("id".into(), s("stray")),
        ("name".into(), s("quote stray")),
        ("projectId".into(), s(&uuid(2, 0))),
        ("people".into(), AttributeValue::L(vec![])),
    ]
    .into();
    ctx.dynamo.put_item().table_name(ctx.table("Quotes-test")).set_item(Some(stray)).send().await.unwrap();
    let run = ctx.ddbsync(&["--json", "verify", "test", "--references"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let quotes = json(&run)["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == ctx.table("Quotes-test"))
        .cloned()
        .unwrap();
    assert_eq!(quotes["dangling"], 1);
    assert_eq!(quotes["listed"][0]["key"], "id=\"stray\"");
    assert_eq!(quotes["listed"][0]["path"], "projectId");
    assert_eq!(quotes["listed"][0]["id"]["S"], uuid(2, 0), "the dev ID, which the target does not hold");
}

#[tokio::test]
async fn a_protected_target_needs_yes_and_is_backed_up_before_the_promotion_writes() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "protected = true");
    let run = ctx.ddbsync(&["sync", "test"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("test is protected: promoting data into") && run.stderr().contains("--yes"),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("Quotes-test").await, "nothing was written");
    // The first promotion: no table exists yet, so there is nothing to back up.
    let run = ctx.ddbsync(&["--json", "sync", "test", "--table", "Contacts", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(json(&run)["backup"].is_null());
    // The second: the table that exists is backed up before anything is written.
    ctx.dynamo
        .update_item()
        .table_name(ctx.table("Contacts-dev"))
        .key("id", s(&uuid(1, 5)))
        .update_expression("SET phone = :p")
        .expression_attribute_values(":p", s("555-0100"))
        .send()
        .await
        .unwrap();
    let run = ctx.ddbsync(&["--json", "sync", "test", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report = json(&run);
    let backup = report["backup"].as_str().unwrap_or_else(|| panic!("{report}"));
    let manifest = std::process::Command::new("tar")
        .args(["-xOf", backup, "manifest.json"])
        .current_dir(ctx.envs.path())
        .output()
        .expect("run tar");
    assert!(manifest.status.success(), "{}", String::from_utf8_lossy(&manifest.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let tables = manifest["tables"].as_array().unwrap_or_else(|| panic!("{manifest}"));
    assert_eq!(tables.len(), 1, "{manifest}");
    assert_eq!(tables[0]["items"], 6, "the contacts as they were before this promotion");
    assert_eq!(report["total"]["updated"], 1, "{report}");
    assert_eq!(by_name(&ctx, "Contacts-test").await["contact 5"]["phone"], s("555-0100"));
}

#[tokio::test]
async fn one_table_promotes_the_tables_it_references_so_that_its_references_resolve() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    let run = ctx.ddbsync(&["sync", "test", "--table", "Quotes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(
        run.stderr().contains("Contacts, Projects referenced by the tables selected: promoted too"),
        "{}",
        run.stderr()
    );
    assert_eq!(by_name(&ctx, "Projects-test").await.len(), 4);
    assert_eq!(by_name(&ctx, "Contacts-test").await.len(), 6);
    assert_eq!(ctx.ddbsync(&["verify", "test", "--references"]).code(), 0);
}

#[tokio::test]
async fn a_dry_run_predicts_the_promotion_and_estimates_its_duration() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    let dry = json(&ctx.ddbsync(&["--json", "sync", "test", "--dry-run"]));
    let seconds = dry["promotion"]["estimated_seconds"].as_f64().unwrap_or_else(|| panic!("{dry}"));
    assert!(seconds > 0.0 && seconds < 60.0, "{seconds}");
    let tables = dry["promotion"]["tables"].as_array().unwrap();
    let quotes = tables.iter().find(|t| t["table"] == "Quotes").unwrap();
    assert_eq!(quotes["ids"], 8);
    assert_eq!(quotes["references"], serde_json::json!([["projectId", 8], ["people[]", 16]]));
    let real = json(&ctx.ddbsync(&["--json", "sync", "test"]));
    for field in ["created", "updated", "deleted", "write_units"] {
        assert_eq!(dry["total"][field], real["total"][field], "{field}");
    }
    assert_eq!(real["total"]["created"], 18);
}

#[tokio::test]
async fn limit_and_id_map_are_refused_for_a_sql_source() {
    let ctx = Ctx::new(1).await;
    for args in [&["sync", "local", "--limit", "1"][..], &["sync", "local", "--id-map", "x.jsonl"]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(run.stderr().contains("is for promotions from a DynamoDB source"), "{}", run.stderr());
    }
    let run = ctx.ddbsync(&["verify", "local", "--references"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("has references to check"), "{}", run.stderr());
}

#[tokio::test]
async fn an_id_map_that_cannot_be_written_is_refused_before_anything_is_read() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    let dir = ctx.envs.path().to_str().unwrap().to_string();
    let devices = [("/dev/null", "is a character device, not a regular file"), ("/dev/full", "is a character device")];
    for (path, why) in
        [("/nonexistent-dir/ids.jsonl", "/nonexistent-dir is not a directory"), (dir.as_str(), "is a directory")]
            .into_iter()
            .chain(devices)
    {
        let run = ctx.ddbsync(&["sync", "test", "--id-map", path]);
        assert_eq!(run.code(), 2, "{path}: {}", run.stderr());
        assert!(run.stderr().contains(&format!("--id-map {path}: {why}")), "{}", run.stderr());
    }
    assert!(!ctx.table_exists("Contacts-test").await, "nothing was written");
    use std::os::unix::fs::FileTypeExt;
    let full = std::fs::metadata("/dev/full").unwrap().file_type();
    assert!(full.is_char_device(), "the device is still a device, not a file renamed over it");
}

#[tokio::test]
async fn another_id_namespace_is_refused_before_it_duplicates_the_target() {
    let ctx = Ctx::new(1).await;
    build_dev(&ctx).await;
    write_env(&ctx, "test", "");
    assert_eq!(ctx.ddbsync(&["sync", "test"]).code(), 0);
    let before = by_name(&ctx, "Quotes-test").await;
    // The same tables under another namespace: as if the environment file had been renamed.
    let profile = std::fs::read_to_string(ctx.envs.path().join("test.toml")).unwrap();
    std::fs::write(
        ctx.envs.path().join("test.toml"),
        profile.replace("id_namespace = \"prod\"", "id_namespace = \"prod-2\""),
    )
    .unwrap();
    for args in [&["sync", "test"][..], &["sync", "test", "--dry-run"]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 2, "{args:?}: {}", run.stderr());
        assert!(
            run.stderr().contains("was promoted with id_namespace \"prod\", and this run's is \"prod-2\""),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(by_name(&ctx, "Quotes-test").await, before, "nothing was written");
    // --clean starts the tables afresh under the new namespace.
    let run = ctx.ddbsync(&["--json", "sync", "test", "--clean", "--yes"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let after = by_name(&ctx, "Quotes-test").await;
    assert_eq!(after.len(), 8);
    assert!(after.iter().all(|(name, item)| item["id"] != before[name]["id"]), "every ID is the new namespace's");
    assert_eq!(ctx.ddbsync(&["sync", "test"]).code(), 0, "and the new namespace is the table's from now on");
}

#[tokio::test]
async fn a_table_that_references_itself_is_promoted_and_a_short_id_is_refused() {
    let ctx = Ctx::new(1).await;
    ctx.create_table("Tree-dev", "id").await;
    let node = |n: u32, parent: Option<String>| {
        let mut item: Item = [("id".into(), s(&uuid(4, n))), ("name".into(), s(&format!("node {n}")))].into();
        if let Some(parent) = parent {
            item.insert("parentId".into(), s(&parent));
        }
        item
    };
    let mut items: Vec<Item> = (0..5).map(|n| node(n, n.checked_sub(1).map(|p| uuid(4, p)))).collect();
    items.push(node(5, Some(uuid(4, 99))));
    // Its child points at a rejected item of the same table: rejected too.
    items.push(node(6, Some(uuid(4, 5))));
    items.push([("id".into(), s("x1")), ("name".into(), s("node short"))].into());
    for item in items {
        ctx.dynamo.put_item().table_name(ctx.table("Tree-dev")).set_item(Some(item)).send().await.unwrap();
    }
    write_env(&ctx, "test", "");
    ctx.write_mappings(
        "promote.toml",
        "[tables.Tree]\npartition_key = \"id\"\nid = \"id\"\nreferences = { parentId = \"Tree\" }\n",
    );
    let run = ctx.ddbsync(&["--json", "sync", "test"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report = json(&run);
    let rejected = report["tables"][0]["rejected"].as_array().unwrap();
    let reasons: Vec<&str> = rejected.iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains(&uuid(4, 5))), "the child of a rejected item: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains(&uuid(4, 99))), "the missing parent: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("too few for new IDs of that shape")), "the short ID: {reasons:?}");
    let tree = by_name(&ctx, "Tree-test").await;
    assert_eq!(tree.len(), 5);
    for n in 1..5 {
        assert_eq!(tree[&format!("node {n}")]["parentId"], tree[&format!("node {}", n - 1)]["id"], "node {n}");
    }
    assert_eq!(ctx.ddbsync(&["verify", "test", "--references"]).code(), 0);
}
