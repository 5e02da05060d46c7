//! Bad input: each case gives a clear error naming the thing, the cause and the fix, a non-zero
//! exit code, and no silent partial write.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::harness::{figure, text, Ctx};

#[tokio::test]
async fn unknown_environment_lists_the_available_ones() {
    let ctx = Ctx::new(1).await;
    ctx.write_profile("staging", "");
    let run = ctx.ddbsync(&["sync", "prdo"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("unknown environment \"prdo\"; available in"), "{}", run.stderr());
    assert!(run.stderr().contains(": local, staging"), "{}", run.stderr());
}

#[tokio::test]
async fn malformed_toml_and_unknown_keys_name_the_line() {
    let ctx = Ctx::new(1).await;
    std::fs::write(ctx.envs.path().join("broken.toml"), "mappings = \"m.toml\"\n[source\nhost = 1\n").unwrap();
    let run = ctx.ddbsync(&["sync", "broken"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("broken.toml: TOML parse error at line 2, column 8"), "{}", run.stderr());

    ctx.write_profile("typo", "max_in_fligth = 3");
    let run = ctx.ddbsync(&["sync", "typo"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("typo.toml: TOML parse error at line"), "{}", run.stderr());
    assert!(run.stderr().contains("unknown field `max_in_fligth`"), "{}", run.stderr());
}

#[tokio::test]
async fn a_missing_password_variable_is_named() {
    let ctx = Ctx::new(1).await;
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let with_password =
        profile.replace("user = \"postgres\"", "user = \"postgres\"\npassword_env = \"DDBSYNC_TEST_NO_SUCH_PASSWORD\"");
    std::fs::write(ctx.envs.path().join("local.toml"), with_password).unwrap();
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("source.password_env names DDBSYNC_TEST_NO_SUCH_PASSWORD, which is not set"),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("lessons").await, "nothing was created");
}

#[tokio::test]
async fn unreachable_servers_fail_quickly_and_clearly() {
    let ctx = Ctx::new(1).await;
    let closed = crate::harness::free_port();
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let port_line = profile.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    std::fs::write(ctx.envs.path().join("nopg.toml"), profile.replace(&port_line, &format!("port = {closed}")))
        .unwrap();
    let run = ctx.ddbsync(&["sync", "nopg"]);
    assert_eq!(run.code(), 1);
    assert!(
        run.stderr().contains(&format!("cannot connect to PostgreSQL at postgres@127.0.0.1:{closed}/")),
        "{}",
        run.stderr()
    );
    assert!(run.elapsed < Duration::from_secs(15), "took {:?}", run.elapsed);

    let url_line = profile.lines().find(|l| l.starts_with("endpoint_url")).unwrap().to_string();
    std::fs::write(
        ctx.envs.path().join("noddb.toml"),
        profile.replace(&url_line, &format!("endpoint_url = \"http://127.0.0.1:{closed}\"")),
    )
    .unwrap();
    let run = ctx.ddbsync(&["sync", "noddb"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("reading DynamoDB table"), "{}", run.stderr());
    assert!(run.stderr().contains("no answer from DynamoDB: Connection refused"), "{}", run.stderr());
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}", run.elapsed);
}

#[tokio::test]
async fn a_query_without_the_key_column_names_it_and_lists_the_columns() {
    let ctx = Ctx::new(1).await;
    let mappings = ctx.envs.path().join("bad-mappings.toml");
    std::fs::write(
        &mappings,
        "[tables.lessons]\npartition_key = \"lesson_id\"\nquery = \"SELECT id, title FROM lessons\"\n",
    )
    .unwrap();
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let line = profile.lines().find(|l| l.starts_with("mappings")).unwrap().to_string();
    std::fs::write(ctx.envs.path().join("nokey.toml"), profile.replace(&line, "mappings = \"bad-mappings.toml\""))
        .unwrap();
    let run = ctx.ddbsync(&["sync", "nokey"]);
    assert_eq!(run.code(), 2);
    assert!(
        run.stderr().contains(
            "bad-mappings.toml: table \"lessons\": key column \"lesson_id\" is not in the query's columns (id, title)"
        ),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists("lessons").await, "nothing was created");
}

#[tokio::test]
async fn rows_with_a_null_or_empty_key_are_reported_and_the_rest_is_written() {
    let ctx = Ctx::new(5).await;
    // The topics table is keyed by category and topic: make one group's topic empty and one NULL.
    ctx.sql(&[
        "ALTER TABLE lessons ALTER COLUMN topic DROP NOT NULL",
        "UPDATE lessons SET topic = '' WHERE id = 1",
        "UPDATE lessons SET topic = NULL WHERE id = 2",
    ]);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "rejected rows make the run incomplete: {}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let topics = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == ctx.table("topics")).unwrap();
    let mut reasons: Vec<String> = topics["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}: {}", r["key"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "category=\"history\", topic=\"\": key column \"topic\" is empty".to_string(),
            "category=\"technology\", topic=NULL: key column \"topic\" is NULL".to_string(),
        ]
    );
    let written = figure(&report, &ctx.table("topics"), "created") as usize;
    assert_eq!(ctx.scan("topics").await.len(), written, "every other topic was written");
    assert_eq!(figure(&report, &ctx.table("lessons"), "created"), 5.0);

    let human = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(human.code(), 3);
    assert!(human.stdout().contains("2 rows rejected:"), "{}", human.stdout());
}

#[tokio::test]
async fn clean_without_a_terminal_needs_yes() {
    let ctx = Ctx::new(2).await;
    ctx.sync(&[]);
    let run = ctx.ddbsync(&["sync", "local", "--clean"]);
    assert_eq!(run.code(), 2);
    assert!(run.stderr().contains("there is no terminal to confirm on, so add --yes"), "{}", run.stderr());
    assert_eq!(ctx.scan("lessons").await.len(), 2, "nothing was deleted");
}

#[tokio::test]
async fn query_parameters_are_named_checked_and_never_spliced() {
    let ctx = Ctx::new(5).await;
    let write = |params: &str| {
        let text = format!(
            "[tables.lessons]\npartition_key = \"lesson_id\"\n{params}\n\
             query = \"SELECT id AS lesson_id, title FROM lessons WHERE title <> $1 AND id >= $2\"\n"
        );
        let path = ctx.write_mappings("p.toml", &text);
        ctx.write_profile_with("p", &crate::harness::Profile { mappings: Some(&path), ..Default::default() });
    };
    // $1 and $2 without names: the count is checked when the query is prepared.
    write("params = [\"title\"]");
    let run = ctx.ddbsync(&["sync", "p", "--param", "title=x"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains(
            "table \"lessons\": the query has 2 parameters ($1, $2, …) but `params` names 1 (title); list one name per parameter, in order"
        ),
        "{}",
        run.stderr()
    );
    write("params = [\"title\", \"min_id\"]");
    let run = ctx.ddbsync(&["sync", "p", "--param", "title=x"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("table \"lessons\": parameter \"min_id\" has no value; pass --param min_id=…"),
        "{}",
        run.stderr()
    );
    // A value PostgreSQL cannot read as the parameter's type is its error, naming the query.
    let run = ctx.ddbsync(&["sync", "p", "--param", "title=x", "--param", "min_id=three"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("table \"lessons\": query: invalid input syntax for type integer: \"three\""),
        "{}",
        run.stderr()
    );
    // A value is data, not SQL: quotes and SQL text match nothing and break nothing.
    let run = ctx.ddbsync(&["--json", "sync", "p", "--param", "title=x' OR '1'='1", "--param", "min_id=3"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(figure(&report, &ctx.table("lessons"), "created"), 3.0, "lessons 3, 4 and 5");
    assert_eq!(report["params"]["title"], "x' OR '1'='1");
    // Without a scope, the items the parameters left out are not orphans.
    let run = ctx.ddbsync(&["--json", "sync", "p", "--param", "title=x", "--param", "min_id=5"]);
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(figure(&report, &ctx.table("lessons"), "orphans"), 0.0);
    assert_eq!(figure(&report, &ctx.table("lessons"), "unchanged"), 1.0);
}

/// A stored attribute as JSON, numbers as `f64`: what `to_jsonb` of the same value gives, read apart
/// from ddbsync.
fn as_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> serde_json::Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) => s.clone().into(),
        A::N(n) => n.parse::<f64>().unwrap().into(),
        A::Bool(b) => (*b).into(),
        A::Null(_) => serde_json::Value::Null,
        A::L(list) => list.iter().map(as_json).collect(),
        A::M(map) => map.iter().map(|(k, v)| (k.clone(), as_json(v))).collect::<serde_json::Map<_, _>>().into(),
        other => panic!("unexpected attribute {other:?}"),
    }
}

/// Numbers as `f64` wherever they are, so that PostgreSQL's `2775845.000000` and DynamoDB's
/// `2775845` compare equal.
fn numbers_as_f64(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Number(n) => n.as_f64().unwrap().into(),
        Value::Array(list) => list.into_iter().map(numbers_as_f64).collect(),
        Value::Object(map) => {
            map.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect::<serde_json::Map<_, _>>().into()
        }
        other => other,
    }
}

/// `column "price" (money): price::numeric AS price instead — why` or, alone in its query, `column
/// "price" has type money, which ddbsync does not convert; in the query (price being …), return
/// price::numeric AS price instead — why`: (column, type, expression). `as_name` is the name as the
/// advice spells it after AS (`"select"`, or `name` for an unnamed expression).
fn advice_as(line: &str, as_name: Option<&str>) -> Option<(String, String, String)> {
    let (_, rest) = line.split_once("column \"")?;
    let (name, rest) = rest.split_once('"')?;
    let (ty, rest) = match rest.strip_prefix(" (") {
        Some(list) => list.split_once("): ")?,
        None => {
            let (ty, rest) = rest.strip_prefix(" has type ")?.split_once(", which ddbsync does not convert; ")?;
            (ty, rest.split_once(", return ")?.1)
        }
    };
    let (expression, _) = rest.split_once(&format!(" AS {} instead — ", as_name.unwrap_or(name)))?;
    Some((name.to_string(), ty.to_string(), expression.to_string()))
}

fn advice(line: &str) -> Option<(String, String, String)> {
    advice_as(line, None)
}

#[tokio::test]
async fn every_unconvertible_column_is_named_with_a_cast_that_works() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TYPE pair AS (a int, b text)",
        "CREATE DOMAIN price_t AS money",
        "CREATE TYPE mood AS ENUM ('ok', 'sad')",
        "CREATE TABLE odd (id int PRIMARY KEY, price money, span interval, addr inet, net cidr, at time, atz timetz,
           bits bit(4), vbits varbit, tsv tsvector, r int4range, x xml, pt point, mac macaddr, spans interval[],
           amounts money[], pr pair, dp price_t, feel mood, title text)",
        "INSERT INTO odd VALUES (1, 1234.56, '1 mon 2 days 03:04:05', '10.0.0.1', '10.0.0.0/8', '13:45:00.5',
           '13:45:00+02', B'0101', B'001', 'the fat cat', '[1,10)', '<a>1</a>', '(1.5,2)', '08:00:2b:01:02:03',
           '{1 day, 02:00:00}', '{1.50, 2}', ROW(1, 'x'), 9.99, 'ok', 'first')",
    ]);
    // Every column but id, feel (an enum) and title converts only with a cast.
    let want: BTreeMap<&str, &str> = [
        ("price", "money"),
        ("span", "interval"),
        ("addr", "inet"),
        ("net", "cidr"),
        ("at", "time"),
        ("atz", "timetz"),
        ("bits", "bit"),
        ("vbits", "varbit"),
        ("tsv", "tsvector"),
        ("r", "int4range"),
        ("x", "xml"),
        ("pt", "point"),
        ("mac", "macaddr"),
        ("spans", "interval[]"),
        ("amounts", "money[]"),
        ("pr", "pair"),
        // PostgreSQL describes a domain's column by its base type.
        ("dp", "money"),
    ]
    .into();
    let columns: Vec<&str> = want.keys().copied().collect();
    // Two tables: one query with every type, and two entities with one each.
    let mappings = |select: &dyn Fn(&str) -> String| {
        format!(
            "[tables.odd]\npartition_key = \"id\"\nquery = \"SELECT id, {}, feel, title FROM odd\"\n\n\
             [tables.multi.entities.first]\npartition_key = {{ name = \"PK\", template = \"A#{{id}}\" }}\n\
             query = \"SELECT id, {} FROM odd\"\n\n\
             [tables.multi.entities.second]\npartition_key = {{ name = \"PK\", template = \"B#{{id}}\" }}\n\
             query = \"SELECT id, {} FROM odd\"\n",
            columns.iter().map(|c| select(c)).collect::<Vec<_>>().join(", "),
            select("price"),
            select("span")
        )
    };
    let path = ctx.use_mappings("odd.toml", &mappings(&|c| c.to_string()));

    // check: each table's line names every column of every entity, with its type and its cast.
    let run = ctx.ddbsync(&["--json", "check", "local"]);
    assert_eq!(run.code(), 2, "a profile error: {}", run.stdout());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let detail = |what: &str| {
        let check = report["checks"].as_array().unwrap().iter().find(|c| c["what"] == what).unwrap();
        assert_eq!(check["status"], "fail", "{check}");
        check["detail"].as_str().unwrap().to_string()
    };
    let odd = detail("query of odd");
    assert!(
        odd.starts_with(&format!(
            "{}: table \"odd\": 17 columns have types ddbsync does not convert; in the query (each name being the \
             column or expression it selects under that name), return:\n",
            path.display()
        )),
        "{odd}"
    );
    let listed: BTreeMap<String, (String, String)> =
        odd.lines().filter_map(advice).map(|(name, ty, expression)| (name, (ty, expression))).collect();
    let listed_types: BTreeMap<&str, &str> = listed.iter().map(|(n, (t, _))| (n.as_str(), t.as_str())).collect();
    assert_eq!(listed_types, want, "{odd}");
    // Money as a number, not lc_monetary's text; an interval as seconds.
    assert_eq!(listed["price"].1, "price::numeric");
    assert_eq!(listed["span"].1, "EXTRACT(EPOCH FROM span)");
    assert!(odd.contains("price::text would store it as lc_monetary spells it"), "{odd}");
    let multi = detail("queries of multi (2)");
    let lines: Vec<&str> = multi.lines().collect();
    assert_eq!(lines[0], "2 problems with the mappings' queries:", "{multi}");
    assert!(
        lines[1].starts_with(&format!(
            "  {}: table \"multi\": entity \"first\": column \"price\" has type money, which ddbsync does not \
             convert; in the query (price being the column or expression the query selects as price), return \
             price::numeric AS price instead — ",
            path.display()
        )),
        "{multi}"
    );
    assert!(lines[2].contains("entity \"second\": column \"span\" has type interval"), "{multi}");

    // sync: the same, for both tables in one run, and nothing is created.
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    let stderr = run.stderr();
    let named: Vec<(String, String, String)> = stderr.lines().filter_map(advice).collect();
    assert_eq!(named.len(), 17 + 2, "{stderr}");
    assert!(stderr.starts_with("error: 3 problems with the mappings' queries:\n"), "{stderr}");
    assert!(!ctx.table_exists("odd").await && !ctx.table_exists("multi").await, "nothing was created");

    // Taken as written, the casts work: the sync stores every value, as PostgreSQL's own
    // to_jsonb of the same expression has it (read back from the server).
    let cast = |c: &str| format!("{} AS {c}", listed[c].1);
    std::fs::write(&path, mappings(&cast)).unwrap();
    ctx.sync(&[]);
    let items = ctx.scan("odd").await;
    assert_eq!(items.len(), 1);
    for column in &columns {
        let printed = ctx.query(&format!("SELECT to_jsonb({}) FROM odd", listed[*column].1));
        let expected = numbers_as_f64(serde_json::from_str(&printed[0]).unwrap());
        assert_eq!(as_json(&items[0][*column]), expected, "{column}: {}", listed[*column].1);
    }
    assert_eq!(text(&items[0]["price"]), "1234.56");
    assert_eq!(text(&items[0]["span"]), "2775845", "1 month (30 days) 2 days 3:04:05 in seconds");
    assert_eq!(text(&items[0]["addr"]), "10.0.0.1/32");
    assert_eq!(text(&items[0]["feel"]), "ok");
    assert_eq!(ctx.scan("multi").await.len(), 2);
}

/// Casts for columns named by reserved words, by another column's alias and not at all: each, as
/// written (the placeholder filled in where the message says to), works.
#[tokio::test]
async fn casts_name_each_column_as_the_query_can_use_it() {
    let ctx = Ctx::new(1).await;
    ctx.sql(&[
        "CREATE TABLE kw (id int PRIMARY KEY, \"select\" interval, \"Left\" money, addr inet, started timestamptz)",
        "INSERT INTO kw VALUES (1, '1 day 02:00:00', 12.5, '10.0.0.1', '2024-01-01 00:00:00+00')",
    ]);
    let write = |select: &str| {
        let text = format!("[tables.kw]\npartition_key = \"id\"\nquery = \"\"\"SELECT id, {select} FROM kw\"\"\"\n");
        ctx.use_mappings("kw.toml", &text);
    };
    // One at a time, so that each message is the single column's, with what its name stands for.
    let single = |select: &str, as_name: Option<&str>| {
        write(select);
        let run = ctx.ddbsync(&["sync", "local"]);
        assert_eq!(run.code(), 2, "{}", run.stderr());
        let stderr = run.stderr();
        let (_, _, expression) = advice_as(&stderr, as_name).unwrap_or_else(|| panic!("no advice in {stderr}"));
        (stderr, expression)
    };
    // A reserved word, and a name with a capital: quoted, so the cast runs as written.
    let (said, select) = single("\"select\"", Some("\"select\""));
    assert_eq!(select, "EXTRACT(EPOCH FROM \"select\")", "{said}");
    let (said, left) = single("\"Left\"", Some("\"Left\""));
    assert_eq!(left, "\"Left\"::numeric", "{said}");
    // Another column's alias: the message says the name stands for what the query selects as it.
    let (said, address) = single("addr AS address", None);
    assert_eq!(address, "address::text", "{said}");
    assert!(
        said.contains("in the query (address being the column or expression the query selects as address)"),
        "{said}"
    );
    // An expression the query does not name: name it, the expression in place of (…).
    let (said, unnamed) = single("started - started", Some("name"));
    assert!(
        said.contains(
            "column \"?column?\" has type interval, which ddbsync does not convert; the query does not name this \
             expression (PostgreSQL calls it ?column?): name it, and in the advice that follows put the expression \
             in place of (…): in the query, return EXTRACT(EPOCH FROM (…)) AS name instead — "
        ),
        "{said}"
    );
    let filled = unnamed.replace("(…)", "(started - started)");

    // Each pasted as written: the sync stores what PostgreSQL computes for the same expressions.
    let fixed = format!(
        "{select} AS \"select\", {left} AS \"Left\", {} AS address, {filled} AS name",
        address.replace("address", "addr")
    );
    write(&fixed);
    ctx.sync(&[]);
    let items = ctx.scan("kw").await;
    let printed =
        ctx.query(&format!("SELECT {select}, {left}, {}, {filled} FROM kw", address.replace("address", "addr")));
    let want: Vec<&str> = printed[0].split('|').collect();
    let got: Vec<String> = ["select", "Left", "address", "name"].iter().map(|a| text(&items[0][*a])).collect();
    assert_eq!(got.len(), 4);
    assert_eq!(got[2], want[2]);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.parse::<f64>().ok(), w.parse::<f64>().ok(), "{got:?} vs {want:?}");
    }
}

/// Every word PostgreSQL itself reserves (`pg_get_keywords()`, categories R and T: the "reserved"
/// column of its key word table) as a column name: the advice quotes each, so the query it makes
/// runs as written.
#[tokio::test]
async fn casts_quote_every_word_postgresql_reserves() {
    let ctx = Ctx::new(1).await;
    let words = ctx.query("SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T') ORDER BY word");
    assert!(words.len() > 90, "{words:?}");
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    ctx.sql(&[
        &format!(
            "CREATE TABLE reserved (id int PRIMARY KEY, {})",
            quoted.iter().map(|q| format!("{q} interval")).collect::<Vec<_>>().join(", ")
        ),
        &format!(
            "INSERT INTO reserved (id, {}) SELECT 1, {}",
            quoted.join(", "),
            vec!["'1 hour'"; words.len()].join(", ")
        ),
    ]);
    let write = |select: &str| {
        let text = format!(
            "[tables.reserved]\npartition_key = \"id\"\nquery = \"\"\"SELECT id, {select} FROM reserved\"\"\"\n"
        );
        ctx.use_mappings("reserved.toml", &text);
    };
    write(&quoted.join(", "));
    let run = ctx.ddbsync(&["sync", "local"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    // `  column "all" (interval): EXTRACT(EPOCH FROM "all") AS "all" instead — …`: the cast as written.
    let advised: Vec<String> = run
        .stderr()
        .lines()
        .filter_map(|line| line.strip_prefix("  column \"")?.split_once("): ")?.1.split_once(" instead — "))
        .map(|(cast, _)| cast.to_string())
        .collect();
    assert_eq!(advised.len(), words.len(), "{}", run.stderr());
    assert!(advised.contains(&"EXTRACT(EPOCH FROM \"select\") AS \"select\"".to_string()), "{advised:?}");
    write(&advised.join(", "));
    ctx.sync(&[]);
    let items = ctx.scan("reserved").await;
    for word in &words {
        assert_eq!(text(&items[0][word.as_str()]), "3600", "{word}");
    }
}

/// The test's `local` profile with `from` replaced by `to` (a line or part of one), as `env`.
fn profile_with(ctx: &Ctx, env: &str, from: &str, to: &str) {
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    assert!(profile.contains(from), "{from} in {profile}");
    std::fs::write(ctx.envs.path().join(format!("{env}.toml")), profile.replacen(from, to, 1)).unwrap();
}

#[tokio::test]
async fn profile_mistakes_exit_2_before_postgresql_naming_their_file() {
    let ctx = Ctx::new(1).await;
    // PostgreSQL is out of reach: each mistake must be found before it is contacted.
    let closed = crate::harness::free_port();
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let port_line = profile.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    std::fs::write(ctx.envs.path().join("local.toml"), profile.replace(&port_line, &format!("port = {closed}")))
        .unwrap();
    let env_file = ctx.envs.path().join("bad.toml");
    let cases = [
        (
            "description = ",
            "metadata_table = \"run log\"\ndescription = ",
            "metadata_table = \"run log\": the metadata table's name",
        ),
        ("endpoint_url = \"http://", "endpoint_url = \"", "target.endpoint_url = \"127.0.0.1:"),
        ("table_prefix = \"", "table_prefix = \"pni lessons/", "table_prefix = \"pni lessons/"),
    ];
    for (from, to, said) in cases {
        profile_with(&ctx, "bad", from, to);
        let run = ctx.ddbsync(&["sync", "bad"]);
        assert_eq!(run.code(), 2, "{from}: {}", run.stderr());
        let want = format!("error: {}: {said}", env_file.display());
        assert!(run.stderr().contains(&want), "{want} in {}", run.stderr());
        assert!(!run.stderr().contains("PostgreSQL"), "{}", run.stderr());
    }
    // A mapping's name that the prefix makes too long blames the prefix, in the environment file
    // (with the test's own prefix after it, the metadata table's name "m" still fits).
    let long = "p".repeat(238);
    profile_with(&ctx, "bad", "table_prefix = \"", &format!("metadata_table = \"m\"\ntable_prefix = \"{long}"));
    let run = ctx.ddbsync(&["sync", "bad"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains(&format!("error: {}: table_prefix = \"{long}", env_file.display())),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("makes the name of table \"lessons\" (of "), "{}", run.stderr());
    assert!(run.stderr().contains("more than the 255 DynamoDB allows; shorten the prefix"), "{}", run.stderr());
}

#[tokio::test]
async fn a_profile_that_is_a_directory_or_an_unreadable_envs_directory_is_said_as_such() {
    let ctx = Ctx::new(1).await;
    std::fs::create_dir(ctx.envs.path().join("staging.toml")).unwrap();
    let run = ctx.ddbsync(&["check", "staging"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("staging.toml: is a directory, not a profile"), "{}", run.stderr());

    // `sync dev.toml`: the name is the file's without .toml.
    let run = ctx.ddbsync(&["check", "local.toml"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("(the environment is named without .toml: local)"), "{}", run.stderr());

    // A missing directory, for a command that loads a profile and for the listing alike.
    let missing = ctx.envs.path().join("no-such-dir");
    for args in [&["check", "local"][..], &["envs"][..]] {
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_ddbsync"))
            .arg("--envs-dir")
            .arg(&missing)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(
                "no-such-dir: the environments directory does not exist; --envs-dir DIR or DDBSYNC_ENVS_DIR names it"
            ),
            "{args:?}: {stderr}"
        );
        assert!(run.stdout.is_empty(), "{args:?}");
    }

    // A directory the user cannot read: as root, permissions bind only another user, so the
    // command runs as nobody.
    use std::os::unix::fs::PermissionsExt;
    let dir = ctx.envs.path();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    let root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let mut cmd = if root {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_ddbsync")]);
        cmd
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_ddbsync"))
    };
    let out = cmd.arg("--envs-dir").arg(dir).args(["check", "local"]).current_dir("/").output().unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("{}: cannot read the environments directory: Permission denied", dir.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("unknown environment"), "{stderr}");
}

#[tokio::test]
async fn missing_aws_credentials_are_said_with_where_the_chain_looked() {
    let ctx = Ctx::new(2).await;
    let home = tempfile::tempdir().unwrap();
    let without_credentials = |args: &[&str]| {
        let mut cmd = ctx.command(args);
        cmd.env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env("HOME", home.path());
        let started = std::time::Instant::now();
        let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
        (out, started.elapsed())
    };
    let (out, elapsed) = without_credentials(&["sync", "local"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let home = home.path().display();
    for part in [
        "no AWS credentials: the credential chain looked at, in order, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (not set); ",
        &format!("profile \"default\" (neither AWS_PROFILE nor target.aws_profile is set) in {home}/.aws/credentials (absent) and {home}/.aws/config (absent)"),
        "the EC2 instance metadata service",
        "Export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or name a profile of ~/.aws/credentials",
    ] {
        assert!(stderr.contains(part), "{part} in {stderr}");
    }
    assert!(!stderr.contains("no answer from DynamoDB"), "no request was sent: {stderr}");
    assert!(stderr.starts_with("error: "), "the error alone, without the SDK's warning before it: {stderr}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert!(!ctx.table_exists("lessons").await, "nothing was created");

    let (out, _) = without_credentials(&["check", "local"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("[FAIL] AWS credentials: no AWS credentials: the credential chain looked at"), "{stdout}");
    // DynamoDB was never asked: the tables say why they were not checked.
    assert!(stdout.contains("not checked: no AWS credentials to ask DynamoDB with"), "{stdout}");
    assert!(!stdout.contains("DynamoDB did not answer"), "{stdout}");
}

#[tokio::test]
async fn logs_to_a_pipe_carry_no_colour_codes() {
    let ctx = Ctx::new(2).await;
    for args in [&["-vv", "check", "local"][..], &["-v", "sync", "local", "--dry-run"][..]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        let stderr = run.stderr();
        assert!(stderr.contains("INFO"), "logs were written: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "an escape code in {stderr:?}");
    }
}
