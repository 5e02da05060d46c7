use super::*;

const ENV: &str = r#"
description = "test"
mappings = "mappings/m.toml"
table_prefix = "t-"

[source]
host = "127.0.0.1"
port = 5432
dbname = "pni"
user = "sync"
password_env = "T_PGPASSWORD"

[target]
region = "eu-west-1"
"#;

const MAPPINGS: &str = r#"
[tables.lessons]
partition_key = "lesson_id"
query = "SELECT id AS lesson_id FROM lessons"

[tables.topics]
partition_key = { name = "PK", template = "TOPIC#{category}" }
sort_key = "topic"
exclude_from_hash = ["synced"]
query = "SELECT category, topic FROM topics"
defaults = { rating = 0, tags = ["none"] }
"#;

fn dir_with(env: &str, mappings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("mappings")).unwrap();
    std::fs::write(dir.path().join("dev.toml"), env).unwrap();
    std::fs::write(dir.path().join("mappings/m.toml"), mappings).unwrap();
    dir
}

fn load_err(env: &str, mappings: &str) -> String {
    let dir = dir_with(env, mappings);
    load(dir.path(), "dev").unwrap_err().to_string()
}

#[test]
fn loads_a_valid_profile() {
    let dir = dir_with(ENV, MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    assert_eq!(p.env, "dev");
    assert_eq!(p.metadata_table, "t-cache-metadata");
    assert_eq!(p.prices, Prices::builtin("eu-west-1").unwrap());
    assert_eq!(p.source.password_env.as_deref(), Some("T_PGPASSWORD"));
    assert_eq!(p.sync.scan_segments, 4);
    let names: Vec<_> = p.tables.iter().map(|t| t.table_name.as_str()).collect();
    assert_eq!(names, ["t-lessons", "t-topics"]);
    let topics = &p.tables[1];
    assert_eq!(topics.partition_key.attribute, "PK");
    assert!(matches!(&topics.partition_key.source, KeySource::Template(t) if t.columns().eq(["category"])));
    assert_eq!(topics.sort_key.as_ref().unwrap().source, KeySource::Column("topic".into()));
    assert_eq!(topics.excluded, Excluded::new(["synced"]));
    assert_eq!(p.tables[0].excluded, Excluded::default());
    assert!(topics.defaults.contains(&("rating".into(), AttributeValue::N("0".into()))));
}

#[test]
fn unknown_environment_lists_the_available_ones() {
    let dir = dir_with(ENV, MAPPINGS);
    std::fs::write(dir.path().join("prod.toml"), ENV).unwrap();
    let err = load(dir.path(), "staging").unwrap_err().to_string();
    let want = format!("unknown environment \"staging\"; available in {}: dev, prod", dir.path().display());
    assert!(err.ends_with(&want), "{err}");
}

#[test]
fn malformed_toml_gives_line_and_column() {
    let err = load_err(&ENV.replace("table_prefix = \"t-\"", "table_prefix = t-"), MAPPINGS);
    assert!(err.contains("dev.toml: TOML parse error at line 4, column 16"), "{err}");
}

#[test]
fn unknown_keys_are_errors() {
    let err = load_err(&ENV.replace("port = 5432", "port = 5432\npasword = \"x\""), MAPPINGS);
    assert!(err.contains("unknown field `pasword`"), "{err}");
    assert!(err.contains("line 9, column 1"), "{err}");
    let err = load_err(ENV, &MAPPINGS.replace("sort_key = \"topic\"", "sortkey = \"topic\""));
    assert!(err.contains("m.toml") && err.contains("unknown field `sortkey`"), "{err}");
}

#[test]
fn bad_keys_name_the_table_and_the_fix() {
    let err = load_err(ENV, &MAPPINGS.replace("\"TOPIC#{category}\"", "\"TOPIC\""));
    assert!(err.contains("table \"topics\": partition_key: template \"TOPIC\" names no column"), "{err}");
    let err = load_err(ENV, &MAPPINGS.replace("partition_key = \"lesson_id\"", "partition_key = 5"));
    assert!(err.contains("table \"lessons\": partition_key: write a column name"), "{err}");
}

#[test]
fn regions_without_prices_need_a_prices_section() {
    let err = load_err(&ENV.replace("eu-west-1", "ap-south-1"), MAPPINGS);
    assert!(err.contains("no built-in prices for region \"ap-south-1\"") && err.contains("[prices]"), "{err}");
    let with_prices =
        ENV.replace("eu-west-1", "ap-south-1") + "\n[prices]\nwrite_per_million = 1.0\nread_per_million = 0.2\n";
    let dir = dir_with(&with_prices, MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    assert_eq!(p.prices.write_per_million, 1.0);
    assert!(p.prices.source.ends_with("dev.toml [prices]"));
}

#[test]
fn invalid_table_names_and_settings_are_rejected() {
    let err = load_err(&ENV.replace("table_prefix = \"t-\"", "table_prefix = \"bad prefix \""), MAPPINGS);
    assert!(err.contains("not a valid DynamoDB table name"), "{err}");
    let err = load_err(&(ENV.to_string() + "\n[sync]\nmax_in_flight = 0\n"), MAPPINGS);
    assert!(err.contains("sync.max_in_flight = 0 must be at least 1"), "{err}");
}
