//! Exact values and DynamoDB's limits: numbers are stored as PostgreSQL prints them (checked against
//! psql's own text output, read back from the server without ddbsync), rows that break a limit are
//! rejected one by one while their neighbours are written, and names ddbsync owns are refused.

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{figure, server_kind, text, Ctx, Item};

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
    ctx.use_mappings(
        "nums.toml",
        &format!("[tables.nums]\npartition_key = \"id\"\nquery = \"\"\"\n{NUMBERS_QUERY}\n\"\"\"\n"),
    );
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
    // Each reason says how to store the value: the column's text cast, as the query can use it;
    // and so for each document holding it, in the same reason.
    let each = |column: &str, what: &str| {
        format!(
            "column \"{column}\": {what}; cast the column to text to store the number as a string, as PostgreSQL \
             prints it ({column}::text AS {column})"
        ) + &["j", "jb"]
            .map(|doc| {
                format!(
                    "; also column \"{doc}\": {what}; cast the column to text to store the document as a string, as \
                     PostgreSQL prints it ({doc}::text AS {doc}) ({doc} being the expression the query selects as {doc})"
                )
            })
            .concat()
    };
    let range = |column: &str, value: &str| {
        each(column, &format!("{value} is outside DynamoDB's number range (1E-130 to 9.99E+125)"))
    };
    let want = [
        ("id=90", range("d", "5E-324")),
        ("id=91", range("d", "1.7976931348623157E+308")),
        ("id=92", range("n", "1E+126")),
        ("id=93", range("n", "1E-131")),
        (
            "id=94",
            each(
                "n",
                "1.23456789012345678901234567890123456789E+38 has 39 significant digits; DynamoDB keeps at most 38",
            ),
        ),
        ("id=95", range("d", "1E-131")),
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
             invent one; return NULL in the query instead (NULLIF(at, 'infinity') AS at), leave such rows out \
             (WHERE at IS DISTINCT FROM 'infinity'), or cast the column to text to store the word (at::text AS at)"
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

    ctx.use_mappings("limits.toml", LIMITS);
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
    let column = ctx.use_mappings(
        "column.toml",
        "[tables.things]\npartition_key = \"id\"\nquery = \"SELECT 1 AS id, 'mine' AS _ddbsync_hash\"\n",
    );
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let want = format!(
        "{}: table \"things\": column \"_ddbsync_hash\": names starting with _ddbsync_ are ddbsync's own (it keeps \
         each item's content hash in _ddbsync_hash); rename the column in the query (… AS ddbsync_hash)",
        column.display()
    );
    assert!(run.stderr().contains(&want), "{}\nwanted: {want}", run.stderr());
    assert!(!ctx.table_exists("things").await, "nothing was created");

    ctx.use_mappings(
        "key.toml",
        "[tables.things]\npartition_key = { name = \"_ddbsync_key\", template = \"T#{id}\" }\nquery = \"SELECT 1 AS id\"\n",
    );
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

/// A key template over a double, as a hostile reviewer wrote it: NaN, infinities and 1e300 in it.
fn float_keys(query: &str) -> String {
    format!(
        r#"
[tables.tp]
partition_key = {{ name = "PK", template = "F#{{f}}" }}
sort_key = {{ name = "SK", template = "T#{{t}}#R#{{r}}" }}
delete_missing = true
query = "{query}"
"#
    )
}

/// The (PK, SK) pairs psql spells for the rows of `tp` a filter selects: the oracle of the keys.
fn printed_keys(ctx: &Ctx, filter: &str) -> BTreeSet<(String, String)> {
    ctx.query(&format!("SELECT 'F#' || f::text, 'T#' || t || '#R#' || r FROM tp WHERE {filter}"))
        .into_iter()
        .map(|line| {
            let (pk, sk) = line.split_once('|').unwrap();
            (pk.to_string(), sk.to_string())
        })
        .collect()
}

async fn stored_keys(ctx: &Ctx) -> BTreeSet<(String, String)> {
    ctx.scan("tp").await.iter().map(|i| (text(&i["PK"]), text(&i["SK"]))).collect()
}

#[tokio::test]
async fn key_templates_name_unusable_values_truthfully() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&["CREATE TABLE tp AS SELECT g AS id, g * 1.5::float8 AS f, 't' || g AS t, 'r' || g AS r \
               FROM generate_series(1, 50) g"]);
    let mappings = ctx.use_mappings("tp.toml", &float_keys("SELECT id, f, t, r FROM tp"));
    let table = ctx.table("tp");
    ctx.sync(&[]);
    assert_eq!(stored_keys(&ctx).await, printed_keys(&ctx, "true"), "keys as psql spells them");
    assert!(stored_keys(&ctx).await.contains(&("F#1.5".to_string(), "T#t1#R#r1".to_string())));

    // Rows 2 and 3 get a key value no key can hold, row 4 one DynamoDB's numbers cannot; row 50 goes.
    ctx.sql(&[
        "UPDATE tp SET f = 'NaN' WHERE id = 2",
        "UPDATE tp SET f = 'Infinity' WHERE id = 3",
        "UPDATE tp SET f = 1e300 WHERE id = 4",
        "DELETE FROM tp WHERE id = 50",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let rejected: BTreeMap<String, String> = report["tables"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    let not_finite = |word: &str| {
        format!(
            "column \"f\" is {word}, which has no place in a key (DynamoDB numbers have no NaN or infinity); leave \
             such rows out of the query (WHERE f IS DISTINCT FROM '{word}'), or build the key from other columns"
        )
    };
    // The oracle spells the 1e300 row's partition key: psql's own text of the double.
    let huge = printed_keys(&ctx, "id = 4").into_iter().next().unwrap();
    assert_eq!(huge.0, "F#1e+300");
    let want: BTreeMap<String, String> = [
        // The key that cannot be built is named by its column, as the source gave it.
        ("f=NaN, SK=\"T#t2#R#r2\"".to_string(), not_finite("NaN")),
        ("f=Infinity, SK=\"T#t3#R#r3\"".to_string(), not_finite("Infinity")),
        (
            format!("PK=\"{}\", SK=\"{}\"", huge.0, huge.1),
            "column \"f\": 1E+300 is outside DynamoDB's number range (1E-130 to 9.99E+125); cast the column to text \
             to store the number as a string, as PostgreSQL prints it (f::text AS f)"
                .to_string(),
        ),
    ]
    .into();
    assert_eq!(rejected, want);

    // The deletes wait for the two keyless rows, and the advice is the filter that leaves them out.
    assert_eq!(figure(&report, &table, "orphans"), 4.0, "F#3, F#4.5, F#6 (row 4's old key) and F#75");
    assert_eq!(figure(&report, &table, "deleted"), 0.0);
    let held = report["tables"][0]["deletes_refused_reason"].as_str().expect("deletes held");
    assert!(
        held.starts_with("not deleted: 4 items have no source row, but 2 source rows have no key (first: f="),
        "{held}"
    );
    let filter = held
        .split_once("leave them out of the query (WHERE ")
        .and_then(|(_, rest)| rest.strip_suffix("), then run again"))
        .unwrap_or_else(|| panic!("no filter in: {held}"));
    let conditions: BTreeSet<&str> = filter.split(" AND ").collect();
    assert_eq!(conditions, BTreeSet::from(["f IS DISTINCT FROM 'NaN'", "f IS DISTINCT FROM 'Infinity'"]), "{held}");
    assert_eq!(ctx.scan("tp").await.len(), 50, "nothing deleted");

    // Taken as it is written, the advice works: the orphans go (4 of 50, within the guard) and
    // only the 1e300 row is still rejected, by its key.
    let filtered = format!("SELECT id, f, t, r FROM tp WHERE {filter}");
    std::fs::write(&mappings, float_keys(&filtered)).unwrap();
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert!(report["tables"][0]["deletes_refused_reason"].is_null(), "{report}");
    assert_eq!(figure(&report, &table, "deleted"), 4.0);
    let rejected = report["tables"][0]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0]["key"], format!("PK=\"{}\", SK=\"{}\"", huge.0, huge.1));
    assert_eq!(stored_keys(&ctx).await, printed_keys(&ctx, &format!("{filter} AND id <> 4")));

    // Cast to text as the reason says, 1e300 is stored under the key the reject named (read back
    // from the server); every other key is unchanged, so nothing is created or deleted but it.
    let as_text = format!("SELECT id, f::text AS f, t, r FROM tp WHERE {filter}");
    std::fs::write(&mappings, float_keys(&as_text)).unwrap();
    let report = ctx.sync(&[]);
    assert_eq!((figure(&report, &table, "created"), figure(&report, &table, "deleted")), (1.0, 0.0), "{report}");
    let stored = stored_keys(&ctx).await;
    assert!(stored.contains(&huge), "{huge:?} stored");
    assert_eq!(stored, printed_keys(&ctx, filter));
}

#[tokio::test]
async fn key_templates_spell_each_column_type_or_say_why_not() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE kinds (id int, n numeric, at timestamptz, b boolean, doc jsonb)",
        "INSERT INTO kinds VALUES
           (1, 1.50, '2024-06-01 00:01:00+00', true, '\"x\"'),
           (2, 12345678901234567890.000, '2024-06-01 00:01:00.123+02', false, '7.50'),
           (3, 'NaN', '2024-06-01 00:01:00+00', true, '\"x\"'),
           (4, 1, 'infinity', true, '\"x\"'),
           (5, 1, '2024-06-01 00:01:00+00', true, '{\"a\": 1}'),
           (6, 1, '2024-06-01 00:01:00+00', NULL, '\"x\"')",
    ]);
    ctx.use_mappings(
        "kinds.toml",
        r#"
[tables.kinds]
partition_key = { name = "PK", template = "K#{n}#{at}#{b}#{doc}" }
sort_key = { name = "SK", template = "ID#{id}" }
query = "SELECT id, n, at, b, doc FROM kinds"
"#,
    );
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());

    // Read back: numbers canonical (as the item's N attribute: 1.50 and 1.5 make one key), times
    // as the items hold them (ISO-8601, UTC), booleans and JSON scalars by their text.
    let stored: BTreeSet<String> = ctx.scan("kinds").await.iter().map(|i| text(&i["PK"])).collect();
    let printed: BTreeSet<String> = ctx
        .query(
            "SELECT 'K#' || trim_scale(n)::text || '#' || (to_json(at AT TIME ZONE 'UTC') #>> '{}') || '+00:00#' \
             || b::text || '#' || trim_scale((doc #>> '{}')::numeric)::text FROM kinds WHERE id = 2
             UNION ALL SELECT 'K#1.5#2024-06-01T00:01:00+00:00#true#x'",
        )
        .into_iter()
        .collect();
    assert_eq!(stored, printed);
    assert!(stored.contains("K#12345678901234567890#2024-05-31T22:01:00.123+00:00#false#7.5"), "{stored:?}");

    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let rejected: BTreeMap<String, String> = report["tables"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeMap<String, String> = [
        // Each named by the columns of the key that could not be built, as the source gave them.
        (
            "n=NaN, at=\"2024-06-01T00:01:00+00:00\", b=true, doc=\"x\", SK=\"ID#3\"",
            "column \"n\" is NaN, which has no place in a key (DynamoDB numbers have no NaN or infinity); leave such \
             rows out of the query (WHERE n IS DISTINCT FROM 'NaN'), or build the key from other columns",
        ),
        (
            "n=1, at=infinity, b=true, doc=\"x\", SK=\"ID#4\"",
            "column \"at\" is timestamptz 'infinity', which has no place in a key (it is not a point in time); leave \
             such rows out of the query (WHERE at IS DISTINCT FROM 'infinity'), or build the key from other columns",
        ),
        (
            "n=1, at=\"2024-06-01T00:01:00+00:00\", b=true, doc=<JSON object>, SK=\"ID#5\"",
            "column \"doc\" holds a JSON object, which has no place in a key (a key is one text); return one value of \
             it in the query instead (doc->>'name' AS …), or leave such rows out (WHERE (doc IS NULL OR \
             jsonb_typeof(doc) IN ('string', 'number', 'boolean')))",
        ),
        ("n=1, at=\"2024-06-01T00:01:00+00:00\", b=NULL, doc=\"x\", SK=\"ID#6\"", "key column \"b\" is NULL"),
    ]
    .into_iter()
    .map(|(k, r)| (k.to_string(), r.to_string()))
    .collect();
    assert_eq!(rejected, want);
    // Each filter the reasons give, as written, is SQL PostgreSQL takes, and leaves out exactly its
    // row: a row where the column is NULL is not among them.
    let filters: Vec<&str> =
        rejected.values().filter_map(|r| between(r, "leave such rows out of the query (WHERE ")).collect();
    let json_filter = between(
        &rejected["n=1, at=\"2024-06-01T00:01:00+00:00\", b=true, doc=<JSON object>, SK=\"ID#5\""],
        "leave such rows out (WHERE ",
    )
    .unwrap();
    assert_eq!(filters.len(), 2);
    ctx.sql(&["INSERT INTO kinds VALUES (7, NULL, NULL, true, NULL)"]);
    let kept = ctx.query(&format!(
        "SELECT id FROM kinds WHERE {} AND {json_filter} AND b IS NOT NULL ORDER BY id",
        filters.join(" AND ")
    ));
    assert_eq!(kept, ["1", "2", "7"]);

    // An array has no one text: refused before anything is read or written.
    ctx.use_mappings(
        "arrays.toml",
        "[tables.arr]\npartition_key = { name = \"PK\", template = \"T#{tags}\" }\n\
         query = \"SELECT 1 AS id, ARRAY['a', 'b'] AS tags\"\n",
    );
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains(
            "table \"arr\": key \"PK\": template \"T#{tags}\": column \"tags\" is an array (text[]), which has no one \
             text for a key; return one element (tags[1] AS …) or join them (array_to_string(tags, ',') AS …) in the \
             query"
        ),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("arr").await, "nothing was created");
}

/// The rejected rows of the report's first table, key → reason.
fn rejected_of(report: &serde_json::Value) -> BTreeMap<String, String> {
    report["tables"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
        .collect()
}

/// The text between `open` and the `)` that closes it, in `reason`.
fn between<'a>(reason: &'a str, open: &str) -> Option<&'a str> {
    let start = reason.find(open)? + open.len();
    let mut depth = 1;
    for (i, c) in reason[start..].char_indices() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth == 0 {
            return Some(&reason[start..start + i]);
        }
    }
    None
}

#[tokio::test]
async fn number_rejects_give_fixes_that_work_as_written() {
    let ctx = Ctx::new(1).await;
    // One kind of bad value per column, each in its own row; row 1 is good.
    ctx.sql(&[
        "CREATE TABLE odd_nums (id int PRIMARY KEY, f_nan float8, f_inf real, n_nan numeric, n_big numeric,
           n_wide numeric, fs float8[], at timestamp)",
        "INSERT INTO odd_nums VALUES
           (1, 1.5, 1, 1, 1, 1, '{1}', '2024-01-01'),
           (2, 'NaN', 1, 1, 1, 1, '{1}', '2024-01-01'),
           (3, 1, '-Infinity', 1, 1, 1, '{1}', '2024-01-01'),
           (4, 1, 1, 'NaN', 1, 1, '{1}', '2024-01-01'),
           (5, 1, 1, 1, 1e130, 1, '{1}', '2024-01-01'),
           (6, 1, 1, 1, 1, 123456789012345678901234567890123456789, '{1}', '2024-01-01'),
           (7, 1, 1, 1, 1, 1, '{1,NaN}', '2024-01-01'),
           (8, 1, 1, 1, 1, 1, '{1}', 'infinity'),
           (9, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
           (10, 1, 1, 1, 1, 1, '{{1,2},{3,4}}', '2024-01-01'),
           (11, 1, 1, 1, 1, 1, '{1,NULL}', '2024-01-01')",
    ]);
    let columns = ["f_nan", "f_inf", "n_nan", "n_big", "n_wide", "fs", "at"];
    let write = |select: &[String], filter: &str| {
        let text = format!(
            "[tables.odd_nums]\npartition_key = \"id\"\nquery = \"SELECT id, {} FROM odd_nums{filter}\"\n",
            select.join(", ")
        );
        ctx.use_mappings("odd_nums.toml", &text);
    };
    write(&columns.map(String::from), "");
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let rejected = rejected_of(&serde_json::from_str(&run.stdout()).unwrap());
    let word = |column: &str, what: &str, word: &str| {
        format!(
            "column \"{column}\": {what}; return NULL in the query instead (NULLIF({column}, '{word}') AS {column}), \
             leave such rows out (WHERE {column} IS DISTINCT FROM '{word}'), or cast the column to text to store \
             the word ({column}::text AS {column})"
        )
    };
    let not_finite = |column: &str, value: &str| {
        word(column, &format!("{value} cannot be stored: DynamoDB numbers have no NaN or infinity"), value)
    };
    let as_text = |column: &str, what: &str| {
        format!(
            "column \"{column}\": {what}; cast the column to text to store the number as a string, as PostgreSQL \
             prints it ({column}::text AS {column})"
        )
    };
    let want: BTreeMap<String, String> = [
        ("id=2", not_finite("f_nan", "NaN")),
        ("id=3", not_finite("f_inf", "-Infinity")),
        ("id=4", not_finite("n_nan", "NaN")),
        ("id=5", as_text("n_big", "1E+130 is outside DynamoDB's number range (1E-130 to 9.99E+125)")),
        (
            "id=6",
            as_text(
                "n_wide",
                "1.23456789012345678901234567890123456789E+38 has 39 significant digits; DynamoDB keeps at most 38",
            ),
        ),
        (
            "id=7",
            "column \"fs\": NaN cannot be stored: DynamoDB numbers have no NaN or infinity; return NULL for such \
             elements (array_replace(fs, 'NaN', NULL) AS fs), leave such rows out (WHERE ('NaN' = ANY(fs)) IS NOT \
             TRUE), or cast the column to text to store the words (fs::text[] AS fs)"
                .to_string(),
        ),
        (
            "id=8",
            word(
                "at",
                "timestamp 'infinity' cannot be stored: it is not a point in time, and ddbsync does not invent one",
                "infinity",
            ),
        ),
    ]
    .into_iter()
    .map(|(k, r)| (k.to_string(), r))
    .collect();
    assert_eq!(rejected, want);

    // Each column's fix, taken from its reason as written.
    let reason_of = |column: &str| rejected.values().find(|r| r.starts_with(&format!("column \"{column}\""))).unwrap();
    let text_cast = |column: &str| between(reason_of(column), "as PostgreSQL prints it (").unwrap().to_string();

    // The filters, with the text casts where no filter is offered: the rows they leave out are
    // gone, the numbers beyond DynamoDB are stored as PostgreSQL prints them. The rows whose
    // values are NULL (9), a two-dimensional array (10) or an array holding NULL (11) are kept.
    let filters: Vec<&str> = ["f_nan", "f_inf", "n_nan", "fs", "at"]
        .iter()
        .map(|c| between(reason_of(c), "leave such rows out (WHERE ").unwrap())
        .collect();
    let mut select: Vec<String> = columns.map(String::from).to_vec();
    select[3] = text_cast("n_big");
    select[4] = text_cast("n_wide");
    write(&select, &format!(" WHERE {}", filters.join(" AND ")));
    // (ctx.sync holds the run to exit code 0: no row is rejected.)
    ctx.sync(&[]);
    let items = ctx.scan("odd_nums").await;
    let by_id = |items: &[Item], id: &str| items.iter().find(|i| text(&i["id"]) == id).unwrap().clone();
    let ids: BTreeSet<String> = items.iter().map(|i| text(&i["id"])).collect();
    assert_eq!(ids, ["1", "5", "6", "9", "10", "11"].map(String::from).into());
    for (id, column) in [("5", "n_big"), ("6", "n_wide")] {
        let printed = ctx.query(&format!("SELECT {column}::text FROM odd_nums WHERE id = {id}"));
        assert_eq!(by_id(&items, id)[column], AttributeValue::S(printed[0].clone()), "{column}");
    }

    // NULL instead: every row is stored, without the values DynamoDB cannot hold.
    let mut select: Vec<String> = ["f_nan", "f_inf", "n_nan", "fs", "at"]
        .iter()
        .map(|c| {
            let reason = reason_of(c);
            let open =
                if *c == "fs" { "return NULL for such elements (" } else { "return NULL in the query instead (" };
            between(reason, open).unwrap().to_string()
        })
        .collect();
    select.push(text_cast("n_big"));
    select.push(text_cast("n_wide"));
    write(&select, "");
    ctx.sync(&[]);
    let items = ctx.scan("odd_nums").await;
    assert_eq!(items.len(), 11);
    for (id, column) in [("2", "f_nan"), ("3", "f_inf"), ("4", "n_nan"), ("8", "at")] {
        assert!(!by_id(&items, id).contains_key(column), "row {id}: {column} is NULL, so not stored");
    }
    let n = |v: &str| AttributeValue::N(v.into());
    assert_eq!(by_id(&items, "7")["fs"], AttributeValue::L(vec![n("1"), AttributeValue::Null(true)]));
    assert_eq!(by_id(&items, "1")["f_nan"], n("1.5"));
}

#[tokio::test]
async fn a_row_without_a_key_is_named_by_the_columns_it_has() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE nk (lesson_id float8, course text, lesson numeric, title text)",
        "INSERT INTO nk VALUES (1.5, 'c1', 1, 'fine'), ('NaN', 'c1', 'NaN', 'a'), (NULL, 'c2', NULL, 'b'),
           ('-Infinity', 'c3', 3, 'c'), (1e300, 'c4', 4, 'd')",
    ]);
    ctx.use_mappings(
        "nk.toml",
        r#"
[tables.by_column]
partition_key = "lesson_id"
query = "SELECT lesson_id, title FROM nk"

[tables.by_template]
partition_key = { name = "PK", template = "C#{course}#L#{lesson}" }
sort_key = { name = "SK", template = "T#{title}" }
query = "SELECT course, lesson, title FROM nk"
"#,
    );
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let keys = |table: &str| -> BTreeSet<String> {
        let table = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table(table)).unwrap();
        table["rejected"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap().to_string()).collect()
    };
    // The key column with its value as PostgreSQL has it; psql spells the same words.
    let printed: BTreeSet<String> = ctx
        .query("SELECT 'lesson_id=' || COALESCE(lesson_id::text, 'NULL') FROM nk WHERE lesson_id IS NULL OR lesson_id IN ('NaN', '-Infinity', 1e300)")
        .into_iter()
        .collect();
    assert_eq!(keys("by_column"), printed);
    assert_eq!(
        keys("by_column"),
        BTreeSet::from(
            ["lesson_id=NaN", "lesson_id=NULL", "lesson_id=-Infinity", "lesson_id=1e+300"].map(String::from)
        )
    );
    let by_column = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table("by_column")).unwrap();
    let huge = by_column["rejected"].as_array().unwrap().iter().find(|r| r["key"] == "lesson_id=1e+300").unwrap();
    assert_eq!(
        huge["reason"],
        "key column \"lesson_id\": 1E+300 is outside DynamoDB's number range (1E-130 to 9.99E+125), which has no place \
         in a key; leave such rows out of the query (WHERE (lesson_id IS NULL OR lesson_id = 0 OR abs(lesson_id) >= \
         1e-130 AND abs(lesson_id) < 1e126)), or return the column as text (lesson_id::text AS lesson_id), which a \
         key can hold"
    );
    // A template key: every column it is made of, and the other key as stored.
    assert_eq!(
        keys("by_template"),
        BTreeSet::from(
            ["course=\"c1\", lesson=NaN, SK=\"T#a\"", "course=\"c2\", lesson=NULL, SK=\"T#b\""].map(String::from)
        )
    );
    assert_eq!(ctx.scan("by_column").await.len(), 1);
    assert_eq!(ctx.scan("by_template").await.len(), 3);
}

#[tokio::test]
async fn json_the_parser_refuses_is_named_without_its_position_or_the_document() {
    let ctx = Ctx::new(1).await;
    // PostgreSQL's json type keeps half a surrogate pair as written (jsonb would refuse it).
    ctx.sql(&[
        "CREATE TABLE docs (id int PRIMARY KEY, doc json)",
        r#"INSERT INTO docs VALUES (1, '{"a": 1}'), (2, '{"a":"\ud83d"}'),
             (3, '{"token": "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "b": "x\udc00"}')"#,
    ]);
    let write = |doc: &str| {
        // A literal string: the query's backslashes are PostgreSQL's, not TOML escapes.
        let text = format!("[tables.docs]\npartition_key = \"id\"\nquery = '''SELECT id, {doc} FROM docs'''\n");
        ctx.use_mappings("docs.toml", &text);
    };
    write("doc");
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let rejected = rejected_of(&serde_json::from_str(&run.stdout()).unwrap());
    let reason = |escape: &str| {
        format!(
            "column \"doc\": the JSON text holds {escape} (for example: the first such escape), half of a UTF-16 \
             surrogate pair without its other half: it stands for no character, and DynamoDB strings hold only \
             characters (PostgreSQL's json type keeps such an escape as written; jsonb refuses it); cast the column \
             to text to store the document as a string, as PostgreSQL prints it (doc::text AS doc), or leave the row \
             out of the query"
        )
    };
    let want: BTreeMap<String, String> =
        [("id=2".to_string(), reason("\\ud83d")), ("id=3".to_string(), reason("\\udc00"))].into();
    assert_eq!(rejected, want);
    for reason in rejected.values() {
        assert!(!reason.contains(" at line ") && !reason.contains("sk_live"), "{reason}");
    }
    let stored: Vec<String> = std::fs::read_dir(ctx.envs.path().join("rejects"))
        .map(|dir| dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect())
        .unwrap_or_default();
    assert!(stored.iter().all(|file| !file.contains("sk_live")), "the rejects file quotes no document");

    // The fix as written, pasted into a """…""" string as the README writes queries (a backslash
    // there would be a TOML escape): the text cast stores each document as PostgreSQL prints it.
    let fix = between(&rejected["id=2"], "as PostgreSQL prints it (").unwrap();
    assert!(!fix.contains('\\'), "{fix}");
    let text_mapping =
        format!("[tables.docs]\npartition_key = \"id\"\nquery = \"\"\"SELECT id, {fix} FROM docs\"\"\"\n");
    ctx.use_mappings("docs.toml", &text_mapping);
    ctx.sync(&[]);
    let items = ctx.scan("docs").await;
    assert_eq!(items.len(), 3);
    for item in &items {
        let id = text(&item["id"]);
        let printed = ctx.query(&format!("SELECT doc::text FROM docs WHERE id = {id}"));
        assert_eq!(item["doc"], AttributeValue::S(printed[0].clone()), "id={id}");
    }
}

#[tokio::test]
async fn documents_that_only_look_like_a_lone_surrogate_are_stored_as_maps() {
    let ctx = Ctx::new(1).await;
    // A whole pair, and the letters of an escape after an escaped backslash: what a replace() of
    // the escape would have broken. Both are valid JSON, stored as maps, never rejected.
    ctx.sql(&[
        "CREATE TABLE docs (id int PRIMARY KEY, doc json)",
        r#"INSERT INTO docs VALUES (1, '{"a":"\ud83d\ude00"}'), (2, '{"a":"\\ud83d"}')"#,
    ]);
    let mapping = "[tables.docs]\npartition_key = \"id\"\nquery = \"SELECT id, doc FROM docs\"\n";
    ctx.use_mappings("docs.toml", mapping);
    ctx.sync(&[]);
    let items = ctx.scan("docs").await;
    // The oracle: PostgreSQL's own reading of each document's "a".
    for id in ["1", "2"] {
        let printed = ctx.query(&format!("SELECT doc->>'a' FROM docs WHERE id = {id}"));
        let item = items.iter().find(|i| text(&i["id"]) == id).unwrap();
        let want = AttributeValue::M([("a".to_string(), AttributeValue::S(printed[0].clone()))].into());
        assert_eq!(item["doc"], want, "id={id}");
    }
}

/// A table whose every column holds a value DynamoDB cannot store in one row, and other rows that
/// hold them elsewhere.
#[tokio::test]
async fn one_reject_names_every_value_of_its_row_with_fixes_that_work_pasted() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE bad (id int PRIMARY KEY, f float8, r real, n numeric, fs float8[], ts timestamp)",
        "INSERT INTO bad VALUES
           (1, 1.5, 2.5, 3.5, '{1,2}', '2024-01-01'),
           (2, 'NaN', 'NaN', 'NaN', '{1,NaN,-Infinity}', 'infinity'),
           (3, 1, 1, 1, '{{1,NaN},{-Infinity,2}}', '2024-01-01'),
           (4, NULL, NULL, NULL, NULL, NULL),
           (5, 1, 1, 1, '{{1,NULL},{3,4}}', '2024-01-01')",
    ]);
    let write = |select: &str, filter: &str| {
        let text = format!(
            "[tables.bad]\npartition_key = \"id\"\ndelete_missing = true\n\
             query = \"\"\"SELECT id, {select} FROM bad{filter}\"\"\"\n"
        );
        ctx.use_mappings("bad.toml", &text);
    };
    write("f, r, n, fs, ts", "");
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let rejected = rejected_of(&serde_json::from_str(&run.stdout()).unwrap());
    assert_eq!(rejected.keys().cloned().collect::<Vec<_>>(), ["id=2", "id=3"]);
    // Row 2: one reason, each of its five columns with its own fix, the array's two kinds in it.
    let reasons: Vec<&str> = rejected["id=2"].split("; also ").collect();
    let columns: Vec<&str> =
        reasons.iter().map(|r| r.strip_prefix("column \"").and_then(|r| r.split_once('"')).unwrap().0).collect();
    assert_eq!(columns, ["f", "r", "n", "fs", "ts"], "{}", rejected["id=2"]);
    let fs = reasons[3];
    assert!(fs.contains("NaN cannot be stored") && fs.contains("the array also holds -Infinity"), "{fs}");
    assert_eq!(reasons[3], rejected["id=3"], "a two-dimensional array is told the same");

    // Every filter of the reason, pasted: the rows with a bad value go, the others stay, those
    // with NULLs (4) and an array holding NULL (5) among them; nothing else is rejected.
    let filters: Vec<&str> = reasons.iter().map(|r| between(r, "leave such rows out (WHERE ").unwrap()).collect();
    write("f, r, n, fs, ts", &format!(" WHERE {}", filters.join(" AND ")));
    // (ctx.sync holds the run to exit code 0: no row is rejected.)
    ctx.sync(&[]);
    let ids = |items: &[Item]| items.iter().map(|i| text(&i["id"])).collect::<BTreeSet<_>>();
    let kept: BTreeSet<String> =
        ctx.query(&format!("SELECT id FROM bad WHERE {}", filters.join(" AND "))).into_iter().collect();
    assert_eq!(kept, ["1", "4", "5"].map(String::from).into(), "PostgreSQL's reading of the filter");
    assert_eq!(ids(&ctx.scan("bad").await), kept);

    // Every NULL-instead fix of the reason, pasted: every row is stored.
    let nulls: Vec<&str> = reasons
        .iter()
        .map(|r| {
            between(r, "return NULL in the query instead (").or_else(|| between(r, "return NULL for such elements ("))
        })
        .map(Option::unwrap)
        .collect();
    write(&nulls.join(", "), "");
    // (ctx.sync holds the run to exit code 0: no row is rejected.)
    ctx.sync(&[]);
    let items = ctx.scan("bad").await;
    assert_eq!(ids(&items), ["1", "2", "3", "4", "5"].map(String::from).into());
    let row = |id: &str| items.iter().find(|i| text(&i["id"]) == id).unwrap().clone();
    let (n, null) = (|v: &str| AttributeValue::N(v.into()), AttributeValue::Null(true));
    assert_eq!(
        row("2").keys().cloned().collect::<BTreeSet<_>>(),
        ["_ddbsync_hash", "fs", "id"].map(String::from).into()
    );
    assert_eq!(row("2")["fs"], AttributeValue::L(vec![n("1"), null.clone(), null.clone()]));
    assert_eq!(
        row("3")["fs"],
        AttributeValue::L(vec![AttributeValue::L(vec![n("1"), null.clone()]), AttributeValue::L(vec![null, n("2")])])
    );
}

/// The deletes a keyless row holds back: the filter the refusal gives is whole (every distinct
/// condition, however many), and pasted it keeps a row whose key column is NULL and takes the
/// mapping's default, which `f <> 'NaN'` would have left out, and so deleted.
#[tokio::test]
async fn the_keyless_filter_is_whole_and_keeps_rows_whose_key_takes_a_default() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE kg AS SELECT g AS id, g * 1.5::float8 AS f, 't' || g AS t, 'r' || g AS r \
         FROM generate_series(1, 80) g",
        "UPDATE kg SET f = NULL WHERE id = 80",
    ]);
    let mapping = |query: &str| {
        format!(
            "[tables.kg]\npartition_key = {{ name = \"PK\", template = \"F#{{f}}\" }}\n\
             sort_key = {{ name = \"SK\", template = \"T#{{t}}#R#{{r}}\" }}\ndelete_missing = true\n\
             defaults = {{ f = 0 }}\nquery = \"\"\"{query}\"\"\"\n"
        )
    };
    let path = ctx.use_mappings("kg.toml", &mapping("SELECT id, f, t, r FROM kg"));
    let table = ctx.table("kg");
    ctx.sync(&[]);
    let stored = |items: Vec<Item>| items.iter().map(|i| text(&i["PK"])).collect::<BTreeSet<_>>();
    assert!(stored(ctx.scan("kg").await).contains("F#0"), "row 80 under its default");

    // Five kinds of keyless row (more than the refusal once listed), and one row gone.
    ctx.sql(&[
        "UPDATE kg SET f = 'NaN' WHERE id = 1",
        "UPDATE kg SET f = 'Infinity' WHERE id = 2",
        "UPDATE kg SET f = '-Infinity' WHERE id = 3",
        "UPDATE kg SET t = NULL WHERE id = 4",
        "UPDATE kg SET r = NULL WHERE id = 5",
        "DELETE FROM kg WHERE id = 79",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(figure(&report, &table, "deleted"), 0.0);
    let held = report["tables"][0]["deletes_refused_reason"].as_str().expect("deletes held");
    let filter = held
        .split_once("leave them out of the query (WHERE ")
        .and_then(|(_, rest)| rest.strip_suffix("), then run again"))
        .unwrap_or_else(|| panic!("no filter in: {held}"));
    assert!(!filter.contains('…'), "{held}");
    let conditions: BTreeSet<&str> = filter.split(" AND ").collect();
    assert_eq!(
        conditions,
        BTreeSet::from([
            "f IS DISTINCT FROM 'NaN'",
            "f IS DISTINCT FROM 'Infinity'",
            "f IS DISTINCT FROM '-Infinity'",
            "t IS NOT NULL",
            "r IS NOT NULL",
        ]),
        "{held}"
    );

    // Pasted as written: the five rows' old items and row 79's are deleted, row 80's stays.
    std::fs::write(&path, mapping(&format!("SELECT id, f, t, r FROM kg WHERE {filter}"))).unwrap();
    let report = ctx.sync(&[]);
    assert_eq!(figure(&report, &table, "deleted"), 6.0, "{report}");
    let items = ctx.scan("kg").await;
    let ids: BTreeSet<String> = items.iter().map(|i| text(&i["id"])).collect();
    let kept: BTreeSet<String> = ctx.query(&format!("SELECT id FROM kg WHERE {filter}")).into_iter().collect();
    assert_eq!(ids, kept, "the items are the rows PostgreSQL's reading of the filter keeps");
    assert!(ids.contains("80") && stored(items).contains("F#0"), "the row whose key took the default");
}

/// The filter of one entity in a refusal that gives each entity its own.
fn entity_filter<'a>(held: &'a str, entity: &str) -> Option<&'a str> {
    let start = held.find(&format!("entity \"{entity}\", "))?;
    between(&held[start..], "(WHERE ")
}

/// Rows of two entities that have no key: each entity is given a filter of its own, naming the
/// table column (`x`) rather than the name the query gives it (`f`), and never a condition on a
/// column its `defaults` fills. Pasted as printed, every row with a key is kept, and only the
/// items of rows gone or left out are deleted.
#[tokio::test]
async fn each_entity_is_given_its_own_keyless_filter_naming_table_columns() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE ea AS SELECT g AS id, CASE WHEN g <= 3 THEN NULL ELSE 't' || g END AS tag \
         FROM generate_series(1, 20) g",
        "CREATE TABLE eb AS SELECT g AS id, 't' || g AS tag, g * 1.5::float8 AS x FROM generate_series(1, 20) g",
    ]);
    let mapping = |a: &str, b: &str| {
        format!(
            "[tables.two]\ndelete_missing = true\n\
             [tables.two.entities.a]\npartition_key = {{ name = \"PK\", template = \"A#{{id}}\" }}\n\
             sort_key = {{ name = \"SK\", template = \"T#{{tag}}\" }}\ndefaults = {{ tag = \"none\" }}\n\
             query = \"\"\"SELECT id, tag FROM ea{a}\"\"\"\n\
             [tables.two.entities.b]\npartition_key = {{ name = \"PK\", template = \"B#{{id}}#{{f}}\" }}\n\
             sort_key = {{ name = \"SK\", template = \"T#{{tag}}\" }}\n\
             query = \"\"\"SELECT id, tag, x AS f FROM eb{b}\"\"\"\n"
        )
    };
    let path = ctx.use_mappings("two.toml", &mapping("", ""));
    let table = ctx.table("two");
    ctx.sync(&[]);
    assert_eq!(ctx.scan("two").await.len(), 40);

    ctx.sql(&[
        "INSERT INTO ea VALUES (NULL, 'orphaned')",
        "UPDATE eb SET tag = NULL WHERE id = 1",
        "UPDATE eb SET x = 'NaN' WHERE id = 2",
        "DELETE FROM ea WHERE id = 20",
        "DELETE FROM eb WHERE id = 20",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(figure(&report, &table, "deleted"), 0.0);
    let rejected = rejected_of(&report);
    assert!(
        rejected.keys().all(|k| k.starts_with("entity \"a\": ") || k.starts_with("entity \"b\": ")),
        "{rejected:?}"
    );
    let held = report["tables"][0]["deletes_refused_reason"].as_str().expect("deletes held");
    let (a, b) = (entity_filter(held, "a"), entity_filter(held, "b"));
    assert_eq!(a, Some("id IS NOT NULL"), "{held}");
    let b = b.unwrap_or_else(|| panic!("no filter for b in: {held}"));
    let conditions: BTreeSet<&str> = b.split(" AND ").collect();
    assert_eq!(conditions, BTreeSet::from(["tag IS NOT NULL", "x IS DISTINCT FROM 'NaN'"]), "{held}");

    // Pasted as printed, each into its own query.
    let (a, b) = (a.unwrap(), b);
    std::fs::write(&path, mapping(&format!(" WHERE {a}"), &format!(" WHERE {b}"))).unwrap();
    let report = ctx.sync(&[]);
    assert_eq!(figure(&report, &table, "deleted"), 4.0, "{report}");
    let stored: BTreeSet<(String, String)> =
        ctx.scan("two").await.iter().map(|i| (text(&i["PK"])[..1].to_string(), text(&i["id"]))).collect();
    let kept: BTreeSet<(String, String)> = ctx
        .query(&format!("SELECT 'A', id FROM ea WHERE {a} UNION ALL SELECT 'B', id FROM eb WHERE {b}"))
        .iter()
        .map(|l| {
            let (e, id) = l.split_once('|').unwrap();
            (e.to_string(), id.to_string())
        })
        .collect();
    assert_eq!(stored, kept, "the items are the rows PostgreSQL's reading of the filters keeps");
    for id in ["1", "2", "3"] {
        assert!(
            stored.contains(&("A".to_string(), id.to_string())),
            "entity a's row {id}, whose tag takes its default"
        );
    }
}

/// Key values no filter used to leave out: a number beyond DynamoDB's range, a second value of a
/// key template that has no place in a key, half a surrogate pair in a JSON key column. The
/// refusal's filter, pasted as printed (a literal string, as it says, since it holds backslashes),
/// leaves out exactly those rows: numbers at DynamoDB's limits, a whole pair and an escaped
/// backslash before the same letters are kept and stored.
#[tokio::test]
async fn unstorable_key_values_are_given_filters_that_keep_every_storable_row() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE nk2 AS SELECT g::numeric AS id, 'v' || g AS v FROM generate_series(0, 30) g",
        "CREATE TABLE tt AS SELECT g AS id, g * 1.5::float8 AS f, \
         '2020-01-01'::timestamp + g * interval '1 day' AS at, to_json('d' || g) AS doc \
         FROM generate_series(1, 40) g",
    ]);
    let mapping = |nk: &str, tt: &str| {
        format!(
            "[tables.nk2]\npartition_key = \"id\"\ndelete_missing = true\nquery = '''SELECT id, v FROM nk2{nk}'''\n\
             [tables.tt]\npartition_key = {{ name = \"PK\", template = \"D#{{doc}}\" }}\n\
             sort_key = {{ name = \"SK\", template = \"T#{{f}}#{{at}}\" }}\ndelete_missing = true\n\
             query = '''SELECT id, f, at, doc FROM tt{tt}'''\n"
        )
    };
    let path = ctx.use_mappings("odd.toml", &mapping("", ""));
    ctx.sync(&[]);

    ctx.sql(&[
        "UPDATE nk2 SET id = 1e300 WHERE id = 1",
        "UPDATE nk2 SET id = -1e-200 WHERE id = 2",
        "UPDATE nk2 SET id = 9.9999e125 WHERE id = 3",
        "UPDATE nk2 SET id = 1e-130 WHERE id = 4",
        "DELETE FROM nk2 WHERE id = 30",
        "UPDATE tt SET f = 'NaN', at = '-infinity' WHERE id = 1",
        "UPDATE tt SET at = '-infinity' WHERE id = 2",
        r#"UPDATE tt SET doc = '"\ud800"' WHERE id = 3"#,
        r#"UPDATE tt SET doc = '"\ud83d\ude00"' WHERE id = 4"#,
        r#"UPDATE tt SET doc = '"\\ud800"' WHERE id = 5"#,
        "DELETE FROM tt WHERE id = 40",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let table =
        |name: &str| report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table(name)).unwrap();
    let held = |name: &str| table(name)["deletes_refused_reason"].as_str().expect("deletes held").to_string();
    let reasons: Vec<String> =
        table("tt")["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().all(|r| !r.contains("NULLIF(at")), "a key's value is never made NULL: {reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("also column \"at\" is timestamp '-infinity', which has no place in a key")),
        "{reasons:?}"
    );
    let keys: Vec<&str> =
        table("nk2")["rejected"].as_array().unwrap().iter().map(|r| r["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"id=10000000000000000000… (301 digits)"), "{keys:?}");

    let (nk_held, tt_held) = (held("nk2"), held("tt"));
    assert!(tt_held.contains("write the query as a literal string ('''…''')"), "{tt_held}");
    let nk = between(&nk_held, "of the query (WHERE ").unwrap_or_else(|| panic!("no filter in: {nk_held}"));
    let tt = between(&tt_held, "of the query (WHERE ").unwrap_or_else(|| panic!("no filter in: {tt_held}"));
    std::fs::write(&path, mapping(&format!(" WHERE {nk}"), &format!(" WHERE {tt}"))).unwrap();
    // Rows 3 and 4 of nk2 and 4 and 5 of tt have new keys: their old items are orphans too.
    let report = ctx.sync(&["--allow-mass-delete"]);
    assert_eq!(figure(&report, &ctx.table("nk2"), "deleted"), 5.0, "{report}");
    assert_eq!(figure(&report, &ctx.table("tt"), "deleted"), 6.0, "{report}");

    let ids = |items: Vec<Item>, key: &str| items.iter().map(|i| text(&i[key])).collect::<BTreeSet<_>>();
    let stored = ids(ctx.scan("tt").await, "id");
    let kept: BTreeSet<String> = ctx.query(&format!("SELECT id FROM tt WHERE {tt}")).into_iter().collect();
    assert_eq!(stored, kept);
    assert!(stored.contains("4") && stored.contains("5") && !stored.contains("3"), "{stored:?}");
    let stored = ids(ctx.scan("nk2").await, "v");
    let kept: BTreeSet<String> = ctx.query(&format!("SELECT v FROM nk2 WHERE {nk}")).into_iter().collect();
    assert_eq!(stored, kept);
    for v in ["v0", "v3", "v4"] {
        assert!(stored.contains(v), "{v}: zero and the numbers at DynamoDB's limits are stored: {stored:?}");
    }
}

/// Advice naming a column whose name holds a backslash says to write the query as a TOML literal
/// string; pasted so, as printed, the fix runs and the row is stored.
#[tokio::test]
async fn advice_holding_a_backslash_works_pasted_into_a_literal_string() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[r#"CREATE TABLE bs AS SELECT g AS id, CASE WHEN g = 2 THEN 'NaN'::float8 ELSE g END AS "a\b" FROM generate_series(1, 3) g"#]);
    let mapping =
        |select: &str| format!("[tables.bs]\npartition_key = \"id\"\nquery = '''SELECT id, {select} FROM bs'''\n");
    let path = ctx.use_mappings("bs.toml", &mapping(r#""a\b""#));
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let reason = rejected_of(&report).remove("id=2").expect("row 2 rejected");
    assert!(reason.ends_with("write the query as a literal string ('''…'''), which TOML keeps as written"), "{reason}");
    let fix = between(&reason, "return NULL in the query instead (").unwrap_or_else(|| panic!("{reason}"));
    std::fs::write(&path, mapping(fix)).unwrap();
    ctx.sync(&[]);
    let items = ctx.scan("bs").await;
    let stored: BTreeMap<String, Option<String>> =
        items.iter().map(|i| (text(&i["id"]), i.get(r"a\b").map(text))).collect();
    let want: BTreeMap<String, Option<String>> = ctx
        .query(&format!("SELECT id, {fix} FROM bs"))
        .iter()
        .map(|l| {
            let (id, v) = l.split_once('|').unwrap();
            (id.to_string(), (!v.is_empty()).then(|| v.to_string()))
        })
        .collect();
    assert_eq!(stored, want);
    assert_eq!(stored.get("2"), Some(&None), "row 2 stored, its NaN as no attribute");
}

/// `doc->'k' AS doc`: an expression named like a table column. A WHERE inside the query would
/// read the table column (an object on every row, so it would leave every row out); the advice
/// filters around the query, by the name the query gives the expression, and keeps every good row.
#[tokio::test]
async fn a_filter_on_an_expression_named_like_a_table_column_goes_around_the_query() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE ta AS SELECT g AS id, jsonb_build_object('k', 'v' || g) AS doc FROM generate_series(1, 30) g",
    ]);
    let query = "SELECT id, doc->'k' AS doc FROM ta";
    let mapping = |query: &str| {
        format!(
            "[tables.shadow]\ndelete_missing = true\npartition_key = {{ name = \"PK\", template = \"J#{{doc}}\" }}\n\
             query = \"\"\"{query}\"\"\"\n"
        )
    };
    let path = ctx.use_mappings("shadow.toml", &mapping(query));
    let table = ctx.table("shadow");
    ctx.sync(&[]);
    assert_eq!(ctx.scan("shadow").await.len(), 30);

    ctx.sql(&[
        "UPDATE ta SET doc = '{\"k\": {\"a\": 1}}' WHERE id = 1",
        "UPDATE ta SET doc = '{\"k\": [1]}' WHERE id = 2",
        "DELETE FROM ta WHERE id = 30",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let held = report["tables"][0]["deletes_refused_reason"].as_str().expect("deletes held").to_string();
    let marker = "SELECT * FROM (…the query…) AS q WHERE ";
    let at = held.find(marker).unwrap_or_else(|| panic!("a filter around the query in: {held}"));
    let rest = &held[at + marker.len()..];
    // The filter ends where its parenthesis, opened before "around the query", closes.
    let mut depth = 0i32;
    let end = rest
        .char_indices()
        .find(|&(_, c)| {
            depth += match c {
                '(' => 1,
                ')' => -1,
                _ => 0,
            };
            depth < 0
        })
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{held}"));
    let filter = &rest[..end];
    assert!(filter.contains("jsonb_typeof(doc)"), "{held}");

    // Pasted as printed, around the query.
    let wrapped = format!("SELECT * FROM ({query}) AS q WHERE {filter}");
    std::fs::write(&path, mapping(&wrapped)).unwrap();
    let report = ctx.sync(&[]);
    // The two rejected rows and the removed one go; the 27 others are kept.
    assert_eq!(figure(&report, &table, "deleted"), 3.0, "{report}");
    let stored: BTreeSet<String> = ctx.scan("shadow").await.iter().map(|i| text(&i["PK"])).collect();
    let kept: BTreeSet<String> =
        ctx.query(&format!("SELECT 'J#' || (doc #>> '{{}}') FROM ({wrapped}) AS w")).into_iter().collect();
    assert_eq!(kept.len(), 27, "{kept:?}");
    assert_eq!(stored, kept, "the items are the rows PostgreSQL's reading of the filter keeps");
}
