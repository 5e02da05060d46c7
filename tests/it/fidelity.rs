//! Exact values and DynamoDB's limits: numbers are stored as PostgreSQL prints them (checked against
//! psql's own text output, read back from the server without ddbsync), rows that break a limit are
//! rejected one by one while their neighbours are written, and names ddbsync owns are refused.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{server_kind, text, Ctx, Item, Profile};

/// A number as (sign, significant digits, exponent of the last digit), zero as `0`: two spellings of
/// one exact decimal give the same text, whatever their zeros and exponent. Written here, apart from
/// ddbsync's own number code, so that it can judge it.
fn exact(number: &str) -> String {
    let (negative, rest) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().unwrap_or_else(|_| panic!("exponent of {number}"))),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "not a decimal: {number:?}");
    let leading = digits.trim_start_matches('0');
    let significant = leading.trim_end_matches('0');
    if significant.is_empty() {
        return "0".into();
    }
    let exponent = exponent - frac.len() as i64 + (leading.len() - significant.len()) as i64;
    format!("{}{significant}e{exponent}", if negative { "-" } else { "" })
}

#[test]
fn exact_decimals_ignore_spelling_only() {
    assert_eq!(exact("1.0000000000000002e+15"), exact("1000000000000000.2"));
    assert_eq!(exact("-0"), exact("0.000"));
    assert_eq!(exact("3.4028235e+38"), exact("340282350000000000000000000000000000000"));
    assert_eq!(exact("5e-324"), "5e-324");
    assert_ne!(exact("32.38"), exact("32.380001068115234"));
    assert_ne!(exact("-1"), exact("1"));
}

/// The query synced, which the oracle reads too: the numbers as columns, and inside json and jsonb.
const NUMBERS_QUERY: &str = "SELECT id, r, d, n,
       json_build_object('r', r, 'd', d, 'n', n) AS j,
       jsonb_build_object('r', r, 'd', d, 'n', n, 'deep', jsonb_build_array(jsonb_build_object('n', n))) AS jb
FROM nums";

/// The columns compared, each with the SQL that makes psql print the same value as text.
const PRINTED: [(&str, &str); 10] = [
    ("r", "r::text"),
    ("d", "d::text"),
    ("n", "n::text"),
    ("j.r", "j->>'r'"),
    ("j.d", "j->>'d'"),
    ("j.n", "j->>'n'"),
    ("jb.r", "jb->>'r'"),
    ("jb.d", "jb->>'d'"),
    ("jb.n", "jb->>'n'"),
    ("jb.deep", "jb->'deep'->0->>'n'"),
];

/// The number at `path` (`r`, `j.r`, `jb.deep`) of a stored item.
fn stored_number<'a>(item: &'a Item, path: &str) -> &'a str {
    let mut parts = path.split('.');
    let mut value = &item[parts.next().unwrap()];
    for part in parts {
        value = match value {
            AttributeValue::M(map) => &map[part],
            other => panic!("{path}: {other:?} is not a map"),
        };
        // `deep` is a list holding a map holding the number.
        if let AttributeValue::L(list) = value {
            value = match &list[0] {
                AttributeValue::M(map) => &map["n"],
                other => panic!("{path}: {other:?}"),
            };
        }
    }
    match value {
        AttributeValue::N(n) => n,
        other => panic!("{path} is stored as {other:?}, not a number"),
    }
}

#[tokio::test]
async fn numbers_are_stored_exactly_as_postgresql_prints_them() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE nums (id int PRIMARY KEY, r real, d double precision, n numeric)",
        // Edge values; ids 90-95 hold values DynamoDB cannot, which must be refused, not altered.
        "INSERT INTO nums (id, r, d, n) VALUES
           (1, 32.38, 32.38, 32.38),
           (2, 0.1, 0.1, 0.1),
           (3, 1e-38, 1e-38, 1e-38),
           (4, 3.4028235e38, 3.4028235e38, 3.4028235e38),
           (5, '-0.0', '-0.0', '-0.0'),
           (6, 1.17549435e-38, 1.17549435e-38, 1.17549435e-38),
           (7, 123456.789, 123456.789, 123456.789),
           (8, 1e15 + 0.3, 1e15 + 0.3, 1e15 + 0.3),
           (9, 1.4e-45, 2.2250738585072014e-120, 1e-130),
           (10, 16777217, 9007199254740993, 12345678901234567890123456789012345678),
           (11, -2.5e-7, 9.99e125, 0.12345678901234567890123456789012345678),
           (12, 1, 1e-130, -9.9999999999999999999999999999999999999e125),
           (90, 1, 5e-324, 1),
           (91, 1, 1.7976931348623157e308, 1),
           (92, 1, 1, 1e126),
           (93, 1, 1, 1e-131),
           (94, 1, 1, 123456789012345678901234567890123456789),
           (95, 1, 1e-131, 1)",
        // A thousand values of every magnitude DynamoDB holds, the same each run.
        "SELECT setseed(0.38)",
        "INSERT INTO nums (id, r, d, n)
           SELECT 1000 + g, x::real, x, x::numeric
           FROM (SELECT g, (random() - 0.5) * 10 ^ (floor(random() * 70) - 35) AS x
                 FROM generate_series(1, 1000) AS g) AS v",
    ]);
    let mappings = ctx.write_mappings(
        "nums.toml",
        &format!("[tables.nums]\npartition_key = \"id\"\nquery = \"\"\"\n{NUMBERS_QUERY}\n\"\"\"\n"),
    );
    ctx.write_profile_with("local", &Profile { mappings: Some(&mappings), ..Profile::default() });
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "the out-of-range rows are rejected: {}", run.stderr());
    // The oracle: psql's text output of every column, against the items read back from the server.
    let columns: Vec<&str> = PRINTED.iter().map(|(_, sql)| *sql).collect();
    let printed: BTreeMap<String, Vec<String>> = ctx
        .query(&format!("SELECT id, {} FROM ({NUMBERS_QUERY}) AS q WHERE id < 90 OR id >= 1000", columns.join(", ")))
        .into_iter()
        .map(|line| {
            let mut fields = line.split('|').map(str::to_string);
            (fields.next().unwrap(), fields.collect())
        })
        .collect();
    assert_eq!(printed.len(), 1012);
    let items = ctx.scan("nums").await;
    let stored: BTreeSet<String> = items.iter().map(|i| text(&i["id"])).collect();
    assert_eq!(stored, printed.keys().cloned().collect(), "every row in range is stored, and only those");
    let mut wrong = Vec::new();
    for item in &items {
        let id = text(&item["id"]);
        for ((path, sql), pg) in PRINTED.iter().zip(&printed[&id]) {
            let got = stored_number(item, path);
            if exact(got) != exact(pg) {
                wrong.push(format!("id={id} {path}: stored {got}, PostgreSQL prints {pg} ({sql})"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} numbers differ from PostgreSQL's text:\n{}", wrong.len(), wrong.join("\n"));
    // The figure the issue names, spelled out.
    let first = items.iter().find(|i| text(&i["id"]) == "1").unwrap();
    assert_eq!(text(&first["r"]), "32.38");

    // Refused, with the reason, not altered.
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let rejected: BTreeMap<String, String> = report["tables"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    let range =
        "is outside DynamoDB's number range (1E-130 to 9.99E+125; cast the column to text to store it as a string)";
    let want = [
        ("id=90", format!("column \"d\": 5E-324 {range}")),
        ("id=91", format!("column \"d\": 1.7976931348623157E+308 {range}")),
        ("id=92", format!("column \"n\": 1E+126 {range}")),
        ("id=93", format!("column \"n\": 1E-131 {range}")),
        (
            "id=94",
            "column \"n\": 1.23456789012345678901234567890123456789E+38 has 39 significant digits; DynamoDB keeps \
             at most 38 (cast the column to text to store it as a string)"
                .to_string(),
        ),
        ("id=95", format!("column \"d\": 1E-131 {range}")),
    ];
    let want: BTreeMap<String, String> = want.into_iter().map(|(k, r)| (k.to_string(), r)).collect();
    assert_eq!(rejected, want);
}

/// Rows of `limits_src`: each bad one between two good ones.
const LIMITS: &str = r#"
[tables.limits]
partition_key = "id"
sort_key = "sk"
query = "SELECT id, sk, tag, label, doc, at, day, raw FROM limits_src"

[tables.limits.indexes.by_tag]
partition_key = "tag"
sort_key = "label"
projection = "keys_only"
"#;

fn nested(levels: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels))
}

#[tokio::test]
async fn rows_breaking_a_dynamodb_limit_are_rejected_and_their_neighbours_written() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE limits_src (id text, sk text, tag text, label text, doc jsonb, at timestamp, day date, raw json)",
    ]);
    let good = |id: &str| format!("('{id}', 's', 'x', 'l', '{{\"ok\": 1}}', '2024-01-01 00:00', '2024-01-01', '[1]')");
    let with = |id: &str, column: &str, sql: &str| {
        let base =
            format!("'{id}', 's', 'x', 'l', '{{\"ok\": 1}}'::jsonb, '2024-01-01 00:00'::timestamp, '2024-01-01'::date, '[1]'::json");
        let mut fields: Vec<String> = base.split(", ").map(str::to_string).collect();
        let at = ["id", "sk", "tag", "label", "doc", "at", "day", "raw"].iter().position(|c| *c == column).unwrap();
        fields[at] = sql.to_string();
        format!("({})", fields.join(", "))
    };
    let deep40 = nested(40, "1");
    let deep10000 = nested(10_000, "1");
    let limit31 = nested(31, "1");
    // (row, key as reported, reason) for the bad rows; the good rows are g0, g1, …
    let k60 = "k".repeat(60);
    let bad: Vec<(String, String, String)> = vec![
        (
            with("", "id", "repeat('k', 2049)"),
            format!("id=\"{k60}…\" (2049 bytes), sk=\"s\""),
            "partition key \"id\" is 2049 bytes, over DynamoDB's limit of 2048 for a partition key; build it from \
             shorter values"
                .into(),
        ),
        (
            with("", "id", "repeat('é', 1025)"),
            format!("id=\"{}…\" (2050 bytes), sk=\"s\"", "é".repeat(30)),
            "partition key \"id\" is 2050 bytes".into(),
        ),
        (
            with("bad-sk", "sk", "repeat('s', 1025)"),
            format!("id=\"bad-sk\", sk=\"{}…\" (1025 bytes)", "s".repeat(60)),
            "sort key \"sk\" is 1025 bytes, over DynamoDB's limit of 1024 for a sort key".into(),
        ),
        (
            with("bad-index-pk", "tag", "repeat('t', 2049)"),
            "id=\"bad-index-pk\", sk=\"s\"".into(),
            "attribute \"tag\" is the partition key of index \"by_tag\" and is 2049 bytes, over DynamoDB's limit of \
             2048 for a partition key; return a shorter value, or NULL to leave the item out of the index"
                .into(),
        ),
        (
            with("bad-index-sk", "label", "repeat('l', 1025)"),
            "id=\"bad-index-sk\", sk=\"s\"".into(),
            "attribute \"label\" is the sort key of index \"by_tag\" and is 1025 bytes".into(),
        ),
        (
            with("deep-40", "doc", &format!("'{deep40}'::jsonb")),
            "id=\"deep-40\", sk=\"s\"".into(),
            "column \"doc\": the JSON document is nested more than 32 levels deep, DynamoDB's limit; flatten it in the \
             query, or cast the column to text to store it as a string"
                .into(),
        ),
        (
            with("deep-10000", "doc", &format!("'{deep10000}'::jsonb")),
            "id=\"deep-10000\", sk=\"s\"".into(),
            "column \"doc\": the JSON document is nested more than 32 levels deep".into(),
        ),
        (
            with("empty-key", "doc", "'{\"\": 1}'::jsonb"),
            "id=\"empty-key\", sk=\"s\"".into(),
            "attribute \"doc\" holds a map with an empty key (at doc), which DynamoDB refuses; rename or drop that key \
             in the query, or cast the column to text to store it as a string"
                .into(),
        ),
        (
            with("empty-key-inside", "doc", "'{\"a\": [{\"\": 1}]}'::jsonb"),
            "id=\"empty-key-inside\", sk=\"s\"".into(),
            "attribute \"doc\" holds a map with an empty key (at doc.a[0])".into(),
        ),
        (
            with("infinite-timestamp", "at", "'infinity'::timestamp"),
            "id=\"infinite-timestamp\", sk=\"s\"".into(),
            "column \"at\": timestamp 'infinity' cannot be stored: it is not a point in time, and ddbsync does not \
             invent one; return NULL in the query instead (NULLIF(column, 'infinity')) or cast the column to text to \
             store the word"
                .into(),
        ),
        (
            with("infinite-date", "day", "'-infinity'::date"),
            "id=\"infinite-date\", sk=\"s\"".into(),
            "column \"day\": date '-infinity' cannot be stored".into(),
        ),
        (
            // json (unlike jsonb) keeps any exponent PostgreSQL's parser accepts.
            with("huge-exponent", "raw", "'[1.5e-9223372036854775808]'::json"),
            "id=\"huge-exponent\", sk=\"s\"".into(),
            "column \"raw\": 1.5e-9223372036854775808 is outside DynamoDB's number range".into(),
        ),
    ];
    // At the limits exactly: stored.
    let edge: Vec<(String, &str)> = vec![
        (with("edge-id", "id", "repeat('k', 2048)"), "a 2048-byte partition key"),
        (with("edge-sk", "sk", "repeat('s', 1024)"), "a 1024-byte sort key"),
        (with("edge-index", "tag", "repeat('t', 2048)"), "a 2048-byte index partition key"),
        (with("edge-deep", "doc", &format!("'{limit31}'::jsonb")), "a number at level 32"),
        (with("edge-empty", "doc", &format!("'{}'::jsonb", nested(32, ""))), "an empty array at level 32"),
    ];
    let mut rows = vec![good("g0")];
    let mut good_ids = vec!["g0".to_string()];
    for (i, row) in bad.iter().map(|(row, _, _)| row.clone()).chain(edge.iter().map(|(r, _)| r.clone())).enumerate() {
        rows.push(row);
        let id = format!("g{}", i + 1);
        rows.push(good(&id));
        good_ids.push(id);
    }
    ctx.sql(&[&format!("INSERT INTO limits_src VALUES {}", rows.join(",\n"))]);

    let mappings = ctx.write_mappings("limits.toml", LIMITS);
    ctx.write_profile_with("local", &Profile { mappings: Some(&mappings), ..Profile::default() });
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let rejected: BTreeMap<String, String> = report["tables"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    for (_, key, reason) in &bad {
        let got = rejected.get(key).unwrap_or_else(|| panic!("no reject for {key}: {rejected:#?}"));
        assert!(got.starts_with(reason.as_str()), "{key}:\n  {got}\nshould start with\n  {reason}");
    }
    assert_eq!(rejected.len(), bad.len(), "{rejected:#?}");
    assert_eq!(report["tables"][0]["failed"].as_array().map(Vec::len), Some(0), "nothing failed at the server");

    // Read back from the server: every good row and every row at a limit, nothing else.
    let items = ctx.scan("limits").await;
    let stored: BTreeSet<String> = items.iter().map(|i| text(&i["id"])).collect();
    let mut want: BTreeSet<String> = good_ids.into_iter().collect();
    want.extend(["k".repeat(2048), "edge-sk".into(), "edge-index".into(), "edge-deep".into(), "edge-empty".into()]);
    assert_eq!(stored, want, "stored ids (edge rows: {:?})", edge.iter().map(|(_, what)| *what).collect::<Vec<_>>());

    // The server itself refuses what ddbsync rejected, and takes what it let through (the limits are
    // DynamoDB's, not guesses). dynalite checks key sizes only; dynoxide checks nesting and names too.
    let put = |item: Item| {
        let dynamo = ctx.dynamo.clone();
        let table = ctx.table("limits");
        async move { dynamo.put_item().table_name(table).set_item(Some(item)).send().await }
    };
    let s = |v: &str| AttributeValue::S(v.into());
    let key = |id: String, sk: String| -> Item { [("id".to_string(), s(&id)), ("sk".to_string(), s(&sk))].into() };
    assert!(put(key("k".repeat(2049), "s".into())).await.is_err(), "a 2049-byte partition key");
    assert!(put(key("k".repeat(2047), "s".repeat(1025))).await.is_err(), "a 1025-byte sort key");
    if server_kind() == "dynoxide" {
        let list = |levels: usize| (0..levels).fold(AttributeValue::N("1".into()), |v, _| AttributeValue::L(vec![v]));
        let mut item = key("server-deep".into(), "s".into());
        item.insert("doc".into(), list(32));
        assert!(put(item.clone()).await.is_err(), "a number at level 33");
        item.insert("doc".into(), list(31));
        assert!(put(item).await.is_ok(), "a number at level 32");
        let mut item = key("server-empty-key".into(), "s".into());
        item.insert("doc".into(), AttributeValue::M([(String::new(), AttributeValue::N("1".into()))].into()));
        assert!(put(item).await.is_err(), "an empty map key");
    }
}

#[tokio::test]
async fn names_ddbsync_owns_are_refused_before_anything_is_written() {
    let ctx = Ctx::new(1).await;
    let column = ctx.write_mappings(
        "column.toml",
        "[tables.things]\npartition_key = \"id\"\nquery = \"SELECT 1 AS id, 'mine' AS _ddbsync_hash\"\n",
    );
    ctx.write_profile_with("local", &Profile { mappings: Some(&column), ..Profile::default() });
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let want = format!(
        "{}: table \"things\": column \"_ddbsync_hash\": names starting with _ddbsync_ are ddbsync's own (it keeps \
         each item's content hash in _ddbsync_hash); rename the column in the query (… AS ddbsync_hash)",
        column.display()
    );
    assert!(run.stderr().contains(&want), "{}\nwanted: {want}", run.stderr());
    assert!(!ctx.table_exists("things").await, "nothing was created");

    let key = ctx.write_mappings(
        "key.toml",
        "[tables.things]\npartition_key = { name = \"_ddbsync_key\", template = \"T#{id}\" }\nquery = \"SELECT 1 AS id\"\n",
    );
    ctx.write_profile_with("local", &Profile { mappings: Some(&key), ..Profile::default() });
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains(
            "table \"things\": partition_key: \"_ddbsync_key\" is a name ddbsync keeps for its own attributes"
        ),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("things").await, "nothing was created");
}
