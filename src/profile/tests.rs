use super::*;
use crate::pure::hash::Excluded;
use crate::pure::item::AttributeValue;

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
    let topics = &p.tables[1].entities[0];
    assert_eq!((topics.name.as_str(), topics.label.as_str()), ("topics", "table \"topics\""));
    assert_eq!(topics.partition_key.attribute, "PK");
    assert!(matches!(&topics.partition_key.source, KeySource::Template(t) if t.columns().eq(["category"])));
    assert_eq!(topics.sort_key.as_ref().unwrap().source, KeySource::Column("topic".into()));
    assert_eq!(topics.excluded, Excluded::new(["synced"]));
    assert_eq!(p.tables[0].entities[0].excluded, Excluded::default());
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
fn names_ddbsync_owns_are_refused_as_keys_defaults_and_index_keys() {
    let fix = "is a name ddbsync keeps for its own attributes (names starting with _ddbsync_; it stores each item's \
               content hash in _ddbsync_hash); use another name, renaming the column in the query (… AS ddbsync_";
    let cases = [
        (
            MAPPINGS.replace("partition_key = \"lesson_id\"", "partition_key = \"_ddbsync_hash\""),
            format!("mappings/m.toml: table \"lessons\": partition_key: \"_ddbsync_hash\" {fix}hash)"),
        ),
        (
            MAPPINGS.replace("sort_key = \"topic\"", "sort_key = { name = \"_ddbsync_sk\", template = \"T#{topic}\" }"),
            format!("table \"topics\": sort_key: \"_ddbsync_sk\" {fix}sk)"),
        ),
        (
            MAPPINGS.replace("sort_key = \"topic\"", "sort_key = { name = \"SK\", column = \"_ddbsync_hash\" }"),
            format!("table \"topics\": sort_key: \"_ddbsync_hash\" {fix}hash)"),
        ),
        (
            MAPPINGS.replace("defaults = { rating = 0,", "defaults = { _ddbsync_hash = \"x\", rating = 0,"),
            format!("table \"topics\": defaults._ddbsync_hash: \"_ddbsync_hash\" {fix}hash)"),
        ),
        (
            CATALOG.replace("partition_key = \"title\"", "partition_key = \"_ddbsync_hash\""),
            format!("table \"catalog\": index \"by_title\": \"_ddbsync_hash\" {fix}hash)"),
        ),
    ];
    for (mappings, want) in cases {
        let err = load_err(ENV, &mappings);
        assert!(err.contains(&want), "{err}\nwanted: {want}");
    }
}

#[test]
fn key_and_projected_attribute_names_over_255_bytes_are_refused() {
    let long = "k".repeat(256);
    let cases = [
        MAPPINGS.replace(
            "sort_key = \"topic\"",
            &format!("sort_key = {{ name = \"{long}\", template = \"T#{{topic}}\" }}"),
        ),
        CATALOG.replace("partition_key = \"title\"", &format!("partition_key = \"{long}\"")),
        CATALOG.replace("projection = [\"title\"]", &format!("projection = [\"{long}\"]")),
    ];
    for mappings in cases {
        let err = load_err(ENV, &mappings);
        assert!(
            err.contains(&format!(
                "attribute name \"{}…\" is 256 bytes; DynamoDB allows at most 255 for a key or projected attribute; use a shorter name",
                "k".repeat(20)
            )),
            "{err}"
        );
    }
    // 255 bytes is fine.
    let ok = CATALOG.replace("partition_key = \"title\"", &format!("partition_key = \"{}\"", "k".repeat(255)));
    let dir = dir_with(ENV, &ok);
    assert!(load(dir.path(), "dev").is_ok());
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
    let err = load_err(&ENV.replace("table_prefix = \"t-\"", "table_prefix = \"bad prefix/\""), MAPPINGS);
    assert!(err.contains("dev.toml: table_prefix = \"bad prefix/\" has characters DynamoDB refuses"), "{err}");
    assert!(err.contains("(\" \", \"/\")"), "each bad character once: {err}");
    let err = load_err(&(ENV.to_string() + "\n[sync]\nmax_in_flight = 0\n"), MAPPINGS);
    assert!(err.contains("sync.max_in_flight = 0 must be between 1 and 1000"), "{err}");
}

#[test]
fn numeric_settings_are_bounded_in_the_profile() {
    let cases = [
        ("scan_segments = 4294967295", "sync.scan_segments = 4294967295 must be between 1 and 1000 (each segment"),
        ("scan_segments = 0", "sync.scan_segments = 0 must be between 1 and 1000"),
        ("max_in_flight = 18446744073709551615", "TOML parse error"),
        ("max_in_flight = 1001", "sync.max_in_flight = 1001 must be between 1 and 1000"),
        ("max_attempts = 0", "sync.max_attempts = 0 must be between 1 and 100"),
        (
            "max_write_units_per_second = 0",
            "sync.max_write_units_per_second = 0 must be between 1 and 1000000 (0 would never write",
        ),
        (
            "max_write_units_per_second = 4294967295",
            "sync.max_write_units_per_second = 4294967295 must be between 1 and 1000000",
        ),
        (
            "lock_lease_secs = 9223372036854775807",
            "sync.lock_lease_secs = 9223372036854775807 must be between 1 and 86400",
        ),
        ("lock_lease_secs = -1", "TOML parse error"),
    ];
    for (line, words) in cases {
        let err = load_err(&format!("{ENV}\n[sync]\n{line}\n"), MAPPINGS);
        assert!(err.contains(words), "{line}: {err}");
    }
    let dir = dir_with(&format!("{ENV}\n[sync]\nscan_segments = 1000\nlock_lease_secs = 86400\n"), MAPPINGS);
    let profile = load(dir.path(), "dev").unwrap();
    assert_eq!((profile.sync.scan_segments, profile.sync.lock_lease.as_secs()), (1000, 86400));
}

#[test]
fn command_line_values_are_checked_like_the_profile_s() {
    let dir = dir_with(ENV, MAPPINGS);
    let sync = load(dir.path(), "dev").unwrap().sync;
    let over = |s: Option<u32>, f: Option<usize>, w: Option<u32>| sync.clone().overridden(s, f, w);
    let message = |r: Result<SyncSettings, crate::exit::UsageError>| r.unwrap_err().to_string();
    assert_eq!(
        message(over(Some(0), None, None)),
        "--scan-segments 0: must be between 1 and 1000 (each segment is a task and at least one Scan call; 4 to 32 suit most tables)"
    );
    assert!(
        message(over(Some(u32::MAX), None, None)).starts_with("--scan-segments 4294967295: must be between 1 and 1000")
    );
    assert!(message(over(None, Some(0), None)).starts_with("--max-in-flight 0: must be between 1 and 1000"));
    assert!(message(over(None, Some(usize::MAX), None)).starts_with("--max-in-flight 18446744073709551615: must be"));
    assert!(
        message(over(None, None, Some(0))).starts_with("--max-write-units-per-second 0: must be between 1 and 1000000")
    );
    let ok = over(Some(1000), Some(1), Some(1_000_000)).unwrap();
    assert_eq!((ok.scan_segments, ok.max_in_flight), (1000, 1));
    assert_eq!(ok.max_write_units_per_second.map(|n| n.get()), Some(1_000_000));
    let kept = over(None, None, None).unwrap();
    assert_eq!((kept.scan_segments, kept.max_in_flight), (sync.scan_segments, sync.max_in_flight), "the profile's");
}

const CATALOG: &str = r#"
[tables.catalog]
delete_missing = true

[tables.catalog.entities.artist]
partition_key = { name = "PK", template = "ARTIST#{artist_id}" }
sort_key = { name = "SK", template = "PROFILE" }
query = "SELECT artist_id, name FROM artist"

[tables.catalog.entities.album]
partition_key = { name = "PK", template = "ARTIST#{artist_id}" }
sort_key = { name = "SK", template = "ALBUM#{album_id}" }
exclude_from_hash = ["loaded_at"]
query = "SELECT artist_id, album_id, title FROM album"

[tables.catalog.indexes.by_title]
partition_key = "title"
projection = "keys_only"

[tables.catalog.indexes.by_kind]
kind = "local"
sort_key = "kind"
projection = ["title"]
"#;

#[test]
fn a_table_takes_several_entities_and_indexes() {
    let dir = dir_with(ENV, CATALOG);
    let p = load(dir.path(), "dev").unwrap();
    let catalog = &p.tables[0];
    let names: Vec<&str> = catalog.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["artist", "album"], "in file order");
    assert_eq!(catalog.entities[1].label, "table \"catalog\": entity \"album\"");
    assert_eq!(catalog.entities[1].excluded, Excluded::new(["loaded_at"]));
    // A constant sort key is a template without columns.
    assert!(
        matches!(&catalog.entities[0].sort_key.as_ref().unwrap().source, KeySource::Template(t) if t.columns().count() == 0)
    );
    assert_eq!(
        catalog.indexes,
        [
            Index {
                name: "by_title".into(),
                local: false,
                partition_key: "title".into(),
                sort_key: None,
                projection: Projection::KeysOnly,
            },
            Index {
                name: "by_kind".into(),
                local: true,
                partition_key: "PK".into(),
                sort_key: Some("kind".into()),
                projection: Projection::Include(vec!["title".into()]),
            },
        ]
    );
}

#[test]
fn entity_and_index_mistakes_are_named() {
    let cases = [
        (
            CATALOG.replace("sort_key = { name = \"SK\", template = \"PROFILE\" }", ""),
            "table \"catalog\": entity \"album\" has key (PK, SK) but entity \"artist\" has (PK); every entity of a table uses the same key attributes",
        ),
        (
            CATALOG.replace("delete_missing = true", "delete_missing = true\nquery = \"SELECT 1\""),
            "table \"catalog\": `query` belongs in each [tables.catalog.entities.<entity>] section when the table has entities",
        ),
        (
            CATALOG.replace("partition_key = \"title\"", ""),
            "table \"catalog\": index \"by_title\": partition_key is missing",
        ),
        (
            CATALOG.replace("kind = \"local\"", "kind = \"local\"\npartition_key = \"title\""),
            "table \"catalog\": index \"by_kind\": a local index has the table's partition key \"PK\", not \"title\"; remove partition_key",
        ),
        (
            CATALOG.replace("kind = \"local\"", "kind = \"sparse\""),
            "table \"catalog\": index \"by_kind\": kind = \"sparse\" is not supported; use \"global\" or \"local\"",
        ),
        (
            CATALOG.replace("projection = \"keys_only\"", "projection = \"some\""),
            "table \"catalog\": index \"by_title\": projection is \"all\", \"keys_only\" or a list of attribute names",
        ),
        (
            CATALOG.replace("template = \"ARTIST#{artist_id}\" }\nsort_key = { name = \"SK\", template = \"PROFILE\" }", "template = \"ARTISTS\" }\nsort_key = { name = \"SK\", template = \"PROFILE\" }"),
            "table \"catalog\": entity \"artist\": partition_key: template \"ARTISTS\" names no column",
        ),
        (
            CATALOG.replace("query = \"SELECT artist_id, name FROM artist\"", "query = \"SELECT artist_id, name FROM artist WHERE artist_id > $1\"\nparams = [\"min_id\"]"),
            "table \"catalog\": delete_missing needs a `scope` when the queries take parameters",
        ),
        (
            "[tables.catalog]\ndelete_missing = true\n".to_string(),
            "table \"catalog\": give a `query` and a `partition_key`, or [tables.<name>.entities.<entity>] sections with them",
        ),
    ];
    for (mappings, want) in cases {
        let err = load_err(ENV, &mappings);
        assert!(err.contains(want), "{err}\nwanted: {want}");
    }
}

#[test]
fn waits_on_the_source_are_bounded() {
    let dir = dir_with(ENV, MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    assert_eq!(p.source.read_timeout, Duration::from_secs(300));
    assert_eq!(p.source.connect_timeout, None, "PGCONNECT_TIMEOUT, else 10 s, is chosen when connecting");
    assert_eq!(p.source.sslmode, None, "PGSSLMODE, else prefer, is chosen when connecting");
    let with = |line: &str| ENV.replace("port = 5432", &format!("port = 5432\n{line}"));
    let dir = dir_with(&with("read_timeout_secs = 2\nconnect_timeout_secs = 3"), MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    assert_eq!(p.source.read_timeout, Duration::from_secs(2));
    assert_eq!(p.source.connect_timeout, Some(Duration::from_secs(3)));
    for (line, want) in [
        ("read_timeout_secs = 0", "source.read_timeout_secs = 0 must be between 1 and 86400 seconds (a day)"),
        ("read_timeout_secs = 300000", "source.read_timeout_secs = 300000 must be between 1 and 86400 seconds"),
        (
            "read_timeout_secs = 9223372036854775807",
            "source.read_timeout_secs = 9223372036854775807 must be between 1 and 86400",
        ),
        ("connect_timeout_secs = 0", "source.connect_timeout_secs = 0 must be between 1 and 86400 seconds"),
    ] {
        let err = load_err(&with(line), MAPPINGS);
        assert!(err.contains("dev.toml: ") && err.contains(want), "{line}: {err}");
    }
    let err = load_err(&with("read_timeout_secs = -1"), MAPPINGS);
    assert!(err.contains("dev.toml: TOML parse error") && err.contains("read_timeout_secs"), "{err}");
}

/// A directory holding `envs/dev.toml` with this `mappings` value and a file outside `envs`.
fn envs_beside_a_secret(mappings: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let envs = root.path().join("envs");
    std::fs::create_dir_all(envs.join("mappings")).unwrap();
    std::fs::write(envs.join("mappings/m.toml"), MAPPINGS).unwrap();
    std::fs::write(root.path().join("secret.toml"), MAPPINGS).unwrap();
    std::fs::write(envs.join("dev.toml"), ENV.replace("mappings/m.toml", mappings)).unwrap();
    (root, envs)
}

#[test]
fn mappings_outside_the_environments_directory_are_refused() {
    let (root, envs) = envs_beside_a_secret("../secret.toml");
    let secret = root.path().join("secret.toml");
    let absolute = secret.display().to_string();
    let err = load(&envs, "dev").unwrap_err().to_string();
    let outside = secret.canonicalize().unwrap().display().to_string();
    let want =
        format!("dev.toml: mappings = \"../secret.toml\" leads to {outside}, outside the environments directory");
    assert!(err.contains(&want), "{err}");
    assert!(err.ends_with("mappings files must be inside it (for example mappings/pni.toml)"), "{err}");

    let (_root2, envs2) = envs_beside_a_secret(&absolute);
    let err = load(&envs2, "dev").unwrap_err().to_string();
    assert!(err.contains(&format!("mappings = \"{absolute}\" leads to {outside}, outside")), "{err}");

    // A link inside the directory to a file outside is followed before the check.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(&secret, envs.join("mappings/link.toml")).unwrap();
        std::fs::write(envs.join("dev.toml"), ENV.replace("mappings/m.toml", "mappings/link.toml")).unwrap();
        let err = load(&envs, "dev").unwrap_err().to_string();
        assert!(err.contains(&format!("mappings = \"mappings/link.toml\" leads to {outside}, outside")), "{err}");
    }
    // Inside, through `..` or not, is fine.
    std::fs::write(envs.join("dev.toml"), ENV.replace("mappings/m.toml", "mappings/../mappings/m.toml")).unwrap();
    assert!(load(&envs, "dev").is_ok());
}

#[test]
fn a_mappings_file_that_is_not_one_is_never_quoted() {
    // Not TOML at all: where, never what.
    let secret_file = "# keys\nexport AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG\nhunter2 hunter2\n";
    let err = load_err(ENV, secret_file);
    assert!(err.contains("m.toml: not valid TOML at line 2, column 8;"), "{err}");
    assert!(err.contains("`mappings` must name a mappings file"), "{err}");
    for secret in ["wJalrXUtnFEMI", "AWS_SECRET", "hunter2"] {
        assert!(!err.contains(secret), "{err}");
    }
    let err = load_err(ENV, "password = hunter2-s3cret\n");
    assert!(err.contains("not valid TOML at line 1, column 12") && !err.contains("s3cret"), "{err}");
    // TOML, but not a mappings file: not quoted either.
    let err = load_err(ENV, "[credentials]\ntoken = \"tok-s3cret\"\n");
    assert!(err.contains("m.toml: not a mappings file: it has no [tables.<name>] section"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
    // A mappings file's own mistakes: the key, where, and what was expected; never the line, which
    // may hold a password pasted there by mistake.
    let err = load_err(ENV, &MAPPINGS.replace("sort_key = \"topic\"", "sortkey = \"topic-s3cret\""));
    assert!(err.contains("at line 8, column 1: tables.topics.sortkey: unknown field `sortkey`"), "{err}");
    assert!(err.contains("(the line is not shown)") && !err.contains("s3cret"), "{err}");
    let err = load_err(ENV, &format!("password = \"hunter2-s3cret\"\n{MAPPINGS}"));
    assert!(err.contains("unknown field `password`") && !err.contains("s3cret"), "{err}");
}

#[test]
fn line_and_column_count_characters() {
    let text = "a = 1\nbé = x\n";
    assert_eq!(line_and_column(text, 0), (1, 1));
    assert_eq!(line_and_column(text, 6), (2, 1));
    assert_eq!(line_and_column(text, text.find('x').unwrap()), (2, 6));
    assert_eq!(line_and_column(text, 8), (2, 2), "inside a character: the character's column");
    assert_eq!(line_and_column(text, 999), (3, 1));
}

#[test]
fn a_bad_table_name_blames_the_file_that_gives_it() {
    // A name DynamoDB refuses for its own characters: the mappings file.
    let err = load_err(ENV, &MAPPINGS.replace("[tables.lessons]", "[tables.\"my lessons\"]"));
    assert!(err.contains("m.toml: table \"my lessons\": the table name \"t-my lessons\" has characters"), "{err}");
    // A name fine alone that the prefix makes too long: the environment file.
    let long = "p".repeat(250);
    let err = load_err(&ENV.replace("table_prefix = \"t-\"", &format!("table_prefix = \"{long}\"")), MAPPINGS);
    assert!(err.contains(&format!("dev.toml: table_prefix = \"{long}\"")), "{err}");
    // Which name: the metadata table's (the first one built from the prefix).
    assert!(err.contains("the metadata table's name") && err.contains("is 264 characters, more than the 255"), "{err}");
    let err = load_err(
        &ENV.replace("table_prefix = \"t-\"", &format!("table_prefix = \"{long}\"\nmetadata_table = \"m\"")),
        MAPPINGS,
    );
    assert!(err.contains("dev.toml: table_prefix = ") && err.contains("makes the name of table \"lessons\""), "{err}");
    assert!(err.contains("is 257 characters, more than the 255 DynamoDB allows; shorten the prefix"), "{err}");
    // A name too long alone: the mappings file.
    let name = "n".repeat(256);
    let err = load_err(ENV, &MAPPINGS.replace("[tables.lessons]", &format!("[tables.{name}]")));
    assert!(err.contains(&format!("m.toml: table \"{name}\": the table name")), "{err}");
}

#[test]
fn an_invalid_metadata_table_is_refused_when_the_profile_loads() {
    let err = load_err(
        &ENV.replace("table_prefix = \"t-\"", "table_prefix = \"t-\"\nmetadata_table = \"run log\""),
        MAPPINGS,
    );
    assert!(
        err.contains(
            "dev.toml: metadata_table = \"run log\": the metadata table's name \"t-run log\" has characters \
             DynamoDB refuses in a name (\" \")"
        ),
        "{err}"
    );
    let err = load_err(&ENV.replace("table_prefix = \"t-\"", "metadata_table = \"m\""), MAPPINGS);
    assert!(err.contains("the metadata table's name \"m\" is 1 characters, fewer than the 3 DynamoDB needs"), "{err}");
}

#[test]
fn endpoint_urls_need_a_scheme_and_a_host() {
    for good in [
        "http://localhost:8000",
        "https://dynamodb.eu-west-1.amazonaws.com",
        "http://127.0.0.1:8000/",
        "http://[::1]:8000",
        "HTTP://h",
    ] {
        assert_eq!(endpoint_flaw(good), None, "{good}");
    }
    for (bad, why) in [
        ("localhost:8000", "has no http:// or https://"),
        ("ftp://h", "is not an http or https URL"),
        ("http://", "has no host"),
        ("http://:8000", "has no host"),
        ("http://h:99999", "has a port that is not a number from 1 to 65535"),
        ("http://h:0", "has a port that is not a number from 1 to 65535"),
        ("http://h:80x", "has a port that is not a number from 1 to 65535"),
        ("http://local host", "contains a space or a control character"),
        (
            "http://u:p@h",
            "holds a user name or password, which DynamoDB never takes (credentials come from AWS's chain)",
        ),
        ("http://h%20x", "has a host that is not a name or an address"),
        ("http://[::1", "has an IPv6 address that is not one"),
        (
            "http://h:8000/path",
            "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port",
        ),
        (
            "http://h:8000/?x=1",
            "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port",
        ),
        ("http://h#top", "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port"),
        ("http://h:8000/.", "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port"),
        ("http://h/x/..", "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port"),
        ("http://h/%2e", "has a path, query or fragment: DynamoDB's endpoint is only a scheme, a host and a port"),
    ] {
        assert_eq!(endpoint_flaw(bad), Some(why), "{bad}");
    }
    let env = ENV.replace("region = \"eu-west-1\"", "region = \"eu-west-1\"\nendpoint_url = \"localhost:8000\"");
    let err = load_err(&env, MAPPINGS);
    assert!(
        err.contains("dev.toml: target.endpoint_url = \"localhost:8000\" has no http:// or https://; write the server's address as http://host:port"),
        "{err}"
    );
}

#[test]
fn a_profile_that_is_a_directory_is_not_an_unknown_environment() {
    let dir = dir_with(ENV, MAPPINGS);
    std::fs::create_dir(dir.path().join("staging.toml")).unwrap();
    let err = load(dir.path(), "staging").unwrap_err().to_string();
    assert!(err.contains("staging.toml: is a directory, not a profile"), "{err}");
}

#[test]
fn a_missing_or_unusable_environments_directory_is_named() {
    let dir = dir_with(ENV, MAPPINGS);
    let missing = dir.path().join("nowhere");
    let err = load(&missing, "dev").unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{}: the environments directory does not exist; --envs-dir DIR or DDBSYNC_ENVS_DIR names it (default: \
             envs in the working directory)",
            missing.display()
        )
    );
    let file = dir.path().join("dev.toml");
    let err = load(&file, "dev").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("{}: is not a directory, so it cannot hold environments", file.display())),
        "{err}"
    );
}

#[test]
fn a_scope_reads_the_attributes_it_names() {
    let cases: [(&str, &[&str]); 6] = [
        ("attribute_not_exists(invoice_date) OR (invoice_date >= :from AND invoice_date < :to)", &["invoice_date"]),
        ("#date BETWEEN :a AND :b AND total > :min", &["date", "total"]),
        ("begins_with(sk, :p) AND size(doc.items[0].name) > :n", &["sk", "doc"]),
        ("contains (tags, :t) or NOT attribute_type(x, :s)", &["tags", "x"]),
        ("status IN (:a, :b) AND level>=:l", &["status", "level"]),
        ("a = :v AND a <> b", &["a", "b"]),
    ];
    for (expression, want) in cases {
        assert_eq!(scope_attributes(expression), want.to_vec(), "{expression}");
    }
}

#[test]
fn a_scope_tells_which_attribute_each_parameter_is_compared_with() {
    use crate::profile::compared_with;
    let with = |scope: &str, param: &str| compared_with(scope, param);
    assert_eq!(with("invoice_date >= :from AND invoice_date < :to", "to"), ["invoice_date"]);
    assert_eq!(with(":lo <= n", "lo"), ["n"]);
    assert_eq!(with("#d BETWEEN :a AND :b", "a"), ["d"]);
    assert_eq!(with("#d BETWEEN :a AND :b", "b"), ["d"]);
    assert_eq!(with("kind IN (:x, :y) OR other = :y", "y"), ["kind", "other"]);
    assert_eq!(with("attribute_not_exists(invoice_date) OR (invoice_date >= :from)", "from"), ["invoice_date"]);
    // A function's result, a path's tail, a keyword: no attribute to type the value by.
    assert!(with("size(tags) > :n", "n").is_empty());
    assert!(with("a = :other", "n").is_empty());
}

#[test]
fn url_env_gives_the_whole_connection() {
    let url = ENV.replace(
        "host = \"127.0.0.1\"\nport = 5432\ndbname = \"pni\"\nuser = \"sync\"\npassword_env = \"T_PGPASSWORD\"",
        "url_env = \"DATABASE_URL\"\nsslmode = \"require\"\nconnect_timeout_secs = 4",
    );
    let dir = dir_with(&url, MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    assert_eq!(p.source.url_env.as_deref(), Some("DATABASE_URL"));
    assert_eq!(p.source.sslmode, Some(SslMode::Require), "TLS keys stay as defaults under the string's");
    for (key, line) in [
        ("host", "host = \"h\""),
        ("port", "port = 1"),
        ("dbname", "dbname = \"d\""),
        ("user", "user = \"u\""),
        ("password_env", "password_env = \"P\""),
        ("service", "service = \"s\""),
    ] {
        let err = load_err(&url.replace("url_env", &format!("{line}\nurl_env")), MAPPINGS);
        assert!(err.contains(&format!("source.url_env and source.{key} both say where to connect")), "{err}");
    }
    let err = load_err(&url.replace("\"DATABASE_URL\"", "\"postgresql://u:pw@h/db\""), MAPPINGS);
    assert!(
        err.contains("is not an environment variable's name") && err.contains("never the connection string"),
        "{err}"
    );
}

#[test]
fn url_env_and_service_are_postgresql_settings() {
    for key in ["url_env = \"DATABASE_URL\"", "service = \"prod\""] {
        let lite = ENV.replace(
            "host = \"127.0.0.1\"\nport = 5432\ndbname = \"pni\"\nuser = \"sync\"\npassword_env = \"T_PGPASSWORD\"",
            &format!("kind = \"sqlite\"\npath = \"x.sqlite\"\n{key}"),
        );
        let err = load_err(&lite, MAPPINGS);
        assert!(err.contains("is a PostgreSQL setting, and this source is SQLite"), "{err}");
    }
}

#[test]
fn a_profile_without_a_region_waits_for_awss_chain() {
    let dir = dir_with(&ENV.replace("region = \"eu-west-1\"", ""), MAPPINGS);
    let mut p = load(dir.path(), "dev").unwrap();
    assert!(!p.region_settled());
    p.settle_region("eu-west-1".into(), "AWS_REGION".into()).unwrap();
    assert_eq!((p.target.region.as_str(), p.target.region_origin.as_str()), ("eu-west-1", "AWS_REGION"));
    assert_eq!(p.prices, Prices::builtin("eu-west-1").unwrap(), "the resolved region's prices");
    let mut far = load(dir.path(), "dev").unwrap();
    let err = far.settle_region("ap-south-9".into(), "AWS_REGION".into()).unwrap_err().to_string();
    assert!(err.contains("no built-in prices for region \"ap-south-9\" (from AWS_REGION"), "{err}");
    // The profile's region is its own origin.
    let given = load(dir_with(ENV, MAPPINGS).path(), "dev").unwrap();
    assert!(given.target.region_origin.starts_with("target.region in "), "{}", given.target.region_origin);
}

#[test]
fn target_retries_and_timeouts() {
    let with = |lines: &str| ENV.replace("region = \"eu-west-1\"", &format!("region = \"eu-west-1\"\n{lines}"));
    let dir = dir_with(&with("max_attempts = 7\nretry_mode = \"adaptive\"\nconnect_timeout_secs = 2"), MAPPINGS);
    let t = load(dir.path(), "dev").unwrap().target;
    assert_eq!((t.max_attempts, t.adaptive_retries), (Some(7), Some(true)));
    assert_eq!((t.connect_timeout.as_secs(), t.attempt_timeout.as_secs(), t.operation_timeout.as_secs()), (2, 30, 60));
    let defaults = load(dir_with(ENV, MAPPINGS).path(), "dev").unwrap().target;
    assert_eq!((defaults.max_attempts, defaults.adaptive_retries), (None, None), "the SDK's chain decides");
    for (lines, wanted) in [
        ("max_attempts = 0", "target.max_attempts = 0 must be between 1 and 100"),
        ("retry_mode = \"legacy\"", "target.retry_mode = \"legacy\" is not supported"),
        ("operation_timeout_secs = 0", "target.operation_timeout_secs = 0 must be between 1 and 86400"),
        (
            "attempt_timeout_secs = 90",
            "target.operation_timeout_secs = 60 is shorter than target.attempt_timeout_secs = 90",
        ),
    ] {
        let err = load_err(&with(lines), MAPPINGS);
        assert!(err.contains(wanted), "{lines}: {err}");
    }
    let err = load_err(&ENV.replace("eu-west-1", "EU West"), MAPPINGS);
    assert!(err.contains("target.region = \"EU West\" is not an AWS region name"), "{err}");
}

/// What a user pastes into a `*_env` key or as `password` by mistake is most often the secret
/// itself: the error names the key and the fix, and never shows the value.
#[test]
fn a_secret_written_in_the_profile_is_never_echoed() {
    const SECRET: &str = "Xy7-SECRET";
    let own = "host = \"127.0.0.1\"\nport = 5432\ndbname = \"pni\"\nuser = \"sync\"\npassword_env = \"T_PGPASSWORD\"";
    let cases = [
        (format!("url_env = \"postgresql://a:{SECRET}@h/d\""), "source.url_env is not an environment variable's name"),
        (format!("url_env = \"host=h password={SECRET}\""), "source.url_env is not an environment variable's name"),
        (
            format!("host = \"h\"\npassword_env = \"Xy7@:/-{SECRET}\""),
            "source.password_env is not an environment variable's name",
        ),
        (format!("host = \"h\"\npassword = \"{SECRET}\""), "source.password: unknown field `password`"),
        (format!("host = \"h\"\nport = \"{SECRET}\""), "source.port: the value is not a whole number from 0 to 65535"),
        (format!("host = \"h\"\nsslmode = 7\nuser = \"{SECRET}\""), "source.sslmode: the value is not a string"),
    ];
    let err = load_err(
        &ENV.replace("[target]\n", &format!("[target]\nendpoint_url = \"http://k:{SECRET}@h:8000\"\n")),
        MAPPINGS,
    );
    assert!(err.contains("target.endpoint_url (not shown") && err.contains("holds a user name or password"), "{err}");
    assert!(!err.contains("SECRET"), "{err}");
    for (lines, want) in cases {
        let err = load_err(&ENV.replace(own, &lines), MAPPINGS);
        assert!(err.contains(want), "{lines}: {err}");
        assert!(!err.contains("SECRET"), "{lines}: the value is shown: {err}");
    }
    let err = load_err(&ENV.replace(own, &format!("host = \"h\"\npassword = \"{SECRET}\"")), MAPPINGS);
    assert!(err.contains("line 8, column 1") && err.contains("password_env") && err.contains("~/.pgpass"), "{err}");
    let err = load_err(&ENV.replace(own, &format!("host = \"h\"\npassword_env = \"{SECRET}\"")), MAPPINGS);
    assert!(err.contains("such as password_env = \"PGPASSWORD_PROD\""), "{err}");
}

#[test]
fn a_timeout_that_is_not_a_whole_number_gets_the_range_not_serdes_words() {
    for (section, value) in
        [("source", "-1"), ("source", "1.5"), ("source", "\"5\""), ("target", "-1"), ("target", "2.5")]
    {
        let env = ENV.replace(&format!("[{section}]\n"), &format!("[{section}]\nconnect_timeout_secs = {value}\n"));
        let err = load_err(&env, MAPPINGS);
        let want = format!("{section}.connect_timeout_secs must be a whole number of seconds between 1 and 86400");
        assert!(err.contains(&want) && !err.contains("expected u64"), "{value}: {err}");
    }
}

#[test]
fn target_max_attempts_states_its_own_default() {
    let err = load_err(&ENV.replace("[target]\n", "[target]\nmax_attempts = 0\n"), MAPPINGS);
    assert!(err.contains("target.max_attempts = 0 must be between 1 and 100"), "{err}");
    assert!(err.contains("AWS_MAX_ATTEMPTS") && err.contains("the SDK's default of 3"), "{err}");
    assert!(!err.contains("10 is the default"), "that is sync.max_attempts': {err}");
}

#[test]
fn a_region_from_awss_chain_is_checked_as_target_region_is() {
    let dir = dir_with(&ENV.replace("region = \"eu-west-1\"", ""), MAPPINGS);
    for bad in ["EU West", "eu_west_1", "", "eu-west-1\n"] {
        let mut p = load(dir.path(), "dev").unwrap();
        let err = p.settle_region(bad.into(), "AWS_REGION".into()).unwrap_err().to_string();
        assert!(err.contains("AWS_REGION gives the region") && err.contains("is not an AWS region name"), "{err}");
        assert!(!p.region_settled());
    }
}

const PROMOTE_ENV: &str = r#"
mappings = "mappings/m.toml"
table_suffix = "-aqnq-prod"
protected = true

[source]
kind = "dynamodb"
table_template = "{table}-fvn7-dev"
region = "us-west-1"

[target]
region = "eu-west-1"
"#;

const PROMOTE_MAPPINGS: &str = r#"
exclude_from_hash = ["updatedAt", "_version"]
[tables.QuoteItems]
partition_key = "id"
id = "id"
references = { quoteId = "Quotes" }
[tables.Quotes]
partition_key = "id"
id = "id"
references = { projectId = "Projects", "people.agent" = "Contacts", "watchers[]" = "Contacts" }
delete_missing = true
[tables.Contacts]
partition_key = "id"
id = "id"
source_table = "Person"
[tables.Projects]
partition_key = "id"
id = "id"
references = { contactId = "Contacts" }
"#;

#[test]
fn a_dynamodb_source_names_its_tables_and_orders_them_referenced_first() {
    let dir = dir_with(PROMOTE_ENV, PROMOTE_MAPPINGS);
    let p = load(dir.path(), "dev").unwrap();
    let SourceKind::DynamoDb(source) = &p.source.kind else { panic!("{:?}", p.source.kind) };
    assert_eq!((source.region.as_deref(), source.scan_segments), (Some("us-west-1"), 4));
    let order: Vec<_> = p.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(order, ["Contacts", "Projects", "Quotes", "QuoteItems"]);
    let contacts = &p.tables[0];
    assert_eq!(contacts.table_name, "Contacts-aqnq-prod");
    assert_eq!(contacts.promote.as_ref().unwrap().source_table, "Person-fvn7-dev");
    assert_eq!(contacts.entities[0].query, "Person-fvn7-dev", "the entity reads the source table");
    assert_eq!(p.metadata_table, "cache-metadata-aqnq-prod");
    assert_eq!(p.id_namespace, "dev", "the environment's name by default");
    let quotes = p.tables[2].promote.as_ref().unwrap();
    let paths: Vec<_> = quotes.references.iter().map(|r| (r.path.as_str(), r.table.as_str())).collect();
    assert_eq!(paths, [("projectId", "Projects"), ("people.agent", "Contacts"), ("watchers[]", "Contacts")]);
    let pinned =
        dir_with(&PROMOTE_ENV.replace("[target]\n", "[target]\nid_namespace = \"prod-2024\"\n"), PROMOTE_MAPPINGS);
    assert_eq!(load(pinned.path(), "dev").unwrap().id_namespace, "prod-2024");
}

#[test]
fn a_dynamodb_source_refuses_what_it_cannot_do() {
    let err = |env: &str, mappings: &str| load_err(env, mappings);
    let cycle =
        PROMOTE_MAPPINGS.replace("references = { contactId = \"Contacts\" }", "references = { quoteId = \"Quotes\" }");
    let text = err(PROMOTE_ENV, &cycle);
    assert!(
        text.contains("form a cycle (Projects → Quotes → Projects)") || text.contains("(Quotes → Projects → Quotes)"),
        "{text}"
    );
    let own = PROMOTE_MAPPINGS
        .replace("references = { contactId = \"Contacts\" }", "references = { parentId = \"Projects\" }");
    let dir = dir_with(PROMOTE_ENV, &own);
    let p = load(dir.path(), "dev").expect("a table that references itself needs no order");
    assert_eq!(
        p.tables.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["Projects", "Contacts", "Quotes", "QuoteItems"],
        "QuoteItems refers to Quotes, which refers to Projects and Contacts"
    );
    let unknown = PROMOTE_MAPPINGS.replace("quoteId = \"Quotes\"", "quoteId = \"Quote\"");
    assert!(err(PROMOTE_ENV, &unknown).contains("names table \"Quote\", which is not in the mappings"));
    let no_id = PROMOTE_MAPPINGS.replace("id = \"id\"\nsource_table", "source_table");
    assert!(err(PROMOTE_ENV, &no_id).contains("which has no `id`"), "{}", err(PROMOTE_ENV, &no_id));
    let bad_path = PROMOTE_MAPPINGS.replace("\"watchers[]\"", "\"watchers[0]\"");
    assert!(err(PROMOTE_ENV, &bad_path).contains("is not a path"));
    let with_query = PROMOTE_MAPPINGS.replace("source_table = \"Person\"", "query = \"SELECT 1\"");
    assert!(err(PROMOTE_ENV, &with_query).contains("`query` is for SQL sources"));
    assert!(err(PROMOTE_ENV.replace("{table}-fvn7-dev", "fvn7-dev").as_str(), PROMOTE_MAPPINGS)
        .contains("must hold {table} once"));
    assert!(err(
        PROMOTE_ENV.replace("kind = \"dynamodb\"\n", "host = \"h\"\nkind = \"dynamodb\"\n").as_str(),
        PROMOTE_MAPPINGS
    )
    .contains("source.host is a PostgreSQL setting"));
    assert!(err(
        PROMOTE_ENV.replace("table_suffix = \"-aqnq-prod\"", "table_suffix = \"/x\"").as_str(),
        PROMOTE_MAPPINGS
    )
    .contains("table_suffix = \"/x\" has characters"));
    // A SQL source refuses a promotion's settings, and a DynamoDB source's settings without its kind.
    assert!(err(ENV, &MAPPINGS.replace("[tables.topics]", "[tables.topics]\nid = \"id\""))
        .contains("`id` is for a DynamoDB source"));
    assert!(err(&ENV.replace("[source]\n", "[source]\ntable_template = \"{table}\"\n"), MAPPINGS)
        .contains("add kind = \"dynamodb\""));
    assert!(err(&PROMOTE_ENV.replace("[target]\n", "[target]\nid_namespace = \" \"\n"), PROMOTE_MAPPINGS)
        .contains("id_namespace is empty"));
}

#[test]
fn a_reference_on_the_tables_own_id_is_refused() {
    let own = PROMOTE_MAPPINGS.replace("references = { quoteId = \"Quotes\" }", "references = { id = \"Quotes\" }");
    let text = load_err(PROMOTE_ENV, &own);
    assert!(text.contains("reference \"id\" is the table's own `id`"), "{text}");
}

#[test]
fn a_source_kind_in_capitals_is_named_before_its_settings() {
    let capital = load_err(&PROMOTE_ENV.replace("kind = \"dynamodb\"", "kind = \"DynamoDB\""), PROMOTE_MAPPINGS);
    assert!(capital.contains("source.kind = \"DynamoDB\" is not a source ddbsync reads"), "{capital}");
    assert!(capital.contains("in lower case") && !capital.contains("add kind"), "{capital}");
}
