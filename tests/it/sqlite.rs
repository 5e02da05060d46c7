//! The SQLite source (`[source] kind = "sqlite"`), on SQLite files the tests create:
//! - the generated Chinook ([`crate::chinook_data`]) synced from PostgreSQL with
//!   `envs/mappings/chinook.toml` and from SQLite with `envs/mappings/chinook-sqlite.toml` gives
//!   the same items, key for key, attribute for attribute, hash for hash;
//! - changes in the file, deletes, `--param` with the scope, verify and a dry run behave as they
//!   do with PostgreSQL;
//! - each SQLite storage class, REAL numbers, dates, JSON text and DynamoDB's limits, checked
//!   against what SQLite itself says of the stored value;
//! - the file is only read: a sync leaves its bytes as they were, and a query that writes is
//!   refused.
//!
//! Every oracle reads DynamoDB back through the server and the file through rusqlite, never
//! through ddbsync.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue;
use rusqlite::types::ValueRef;

use crate::chinook_data::{self, ALBUMS, ARTISTS, CUSTOMERS, EMPLOYEES, INVOICES, PLAYLISTS, TRACKS};
use crate::harness::{text, Ctx, Item, Run};

const TABLES: [&str; 4] = ["MusicCatalog", "CustomerData", "PlaylistData", "EmployeeData"];

/// `ddbsync --json sync <env> <args>`: the run and its report.
fn sync(ctx: &Ctx, env: &str, args: &[&str]) -> (Run, serde_json::Value) {
    let mut all = vec!["--json", "sync", env];
    all.extend_from_slice(args);
    let run = ctx.ddbsync(&all);
    let report = serde_json::from_str(&run.stdout())
        .unwrap_or_else(|e| panic!("ddbsync {all:?}: no JSON report ({e}):\n{}\n{}", run.stdout(), run.stderr()));
    (run, report)
}

/// A sync that must succeed with nothing rejected.
fn sync_ok(ctx: &Ctx, env: &str, args: &[&str]) -> serde_json::Value {
    let (run, report) = sync(ctx, env, args);
    assert_eq!(run.code(), 0, "sync {env} {args:?}:\n{}\n{report}", run.stderr());
    assert_eq!(report["total"]["rejected"], 0, "{report}");
    report
}

fn total(report: &serde_json::Value, field: &str) -> u64 {
    report["total"][field].as_u64().unwrap_or_else(|| panic!("no total {field} in {report}"))
}

/// Every item of a table (its full name), by `PK|SK`, read back with a consistent Scan.
async fn items(ctx: &Ctx, table: &str) -> BTreeMap<String, Item> {
    let (mut all, mut start) = (BTreeMap::new(), None);
    loop {
        let out = ctx
            .dynamo
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        for item in out.items.unwrap_or_default() {
            all.insert(format!("{}|{}", text(&item["PK"]), text(&item["SK"])), item);
        }
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return all;
        }
    }
}

/// `table PK|SK` → content hash, over the four Chinook tables of a prefix.
async fn hashes(ctx: &Ctx, prefix: &str) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    for table in TABLES {
        for (key, item) in items(ctx, &format!("{prefix}{table}")).await {
            all.insert(format!("{table} {key}"), text(&item["_ddbsync_hash"]));
        }
    }
    all
}

/// The keys whose hash differs, or that are on one side only.
fn changed(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> BTreeSet<String> {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter().filter(|k| before.get(*k) != after.get(*k)).cloned().collect()
}

async fn get(ctx: &Ctx, table: &str, pk: &str, sk: &str) -> Option<Item> {
    let key = HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))]);
    let out = ctx.dynamo.get_item().table_name(table).set_key(Some(key)).consistent_read(true).send().await;
    out.unwrap_or_else(|e| panic!("get {pk} {sk} from {table}: {e:?}")).item
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// A connection to the test's SQLite file, for the changes a test makes and its oracle.
fn open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

fn ids(db: &rusqlite::Connection, sql: &str) -> Vec<i64> {
    let mut stmt = db.prepare(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt.query_map([], |r| r.get(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// The table, its key schema, attribute types and indexes, in an order that does not depend on
/// the server.
async fn shape(ctx: &Ctx, table: &str) -> String {
    let desc = ctx.dynamo.describe_table().table_name(table).send().await.unwrap().table.unwrap();
    let mut attributes: Vec<String> = desc
        .attribute_definitions()
        .iter()
        .map(|a| format!("{}:{}", a.attribute_name(), a.attribute_type().as_str()))
        .collect();
    attributes.sort();
    let keys = |k: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> String {
        k.iter().map(|e| format!("{}:{}", e.attribute_name(), e.key_type().as_str())).collect::<Vec<_>>().join(",")
    };
    let projection = |p: Option<&aws_sdk_dynamodb::types::Projection>| -> String {
        let p = p.unwrap();
        let mut names: Vec<&str> = p.non_key_attributes().iter().map(String::as_str).collect();
        names.sort();
        format!("{:?} {names:?}", p.projection_type())
    };
    let mut indexes: Vec<String> = desc
        .global_secondary_indexes()
        .iter()
        .map(|i| format!("global {} {} {}", i.index_name().unwrap(), keys(i.key_schema()), projection(i.projection())))
        .chain(desc.local_secondary_indexes().iter().map(|i| {
            format!("local {} {} {}", i.index_name().unwrap(), keys(i.key_schema()), projection(i.projection()))
        }))
        .collect();
    indexes.sort();
    format!("keys {} attributes {attributes:?} indexes {indexes:#?}", keys(desc.key_schema()))
}

/// The attributes in which two items differ, each with both values.
fn differences(a: &Item, b: &Item) -> Vec<String> {
    let names: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| format!("{n}: {:?} / {:?}", a.get(n), b.get(n)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_fed_tables_are_item_for_item_identical_to_postgresql_fed_ones() {
    let ctx = Ctx::chinook_generated().await;
    let from_pg = sync_ok(&ctx, "local", &[]);
    let from_lite = sync_ok(&ctx, "lite", &[]);
    assert_eq!(total(&from_pg, "created"), total(&from_lite, "created"));

    let data = chinook_data::generate();
    let playlist_tracks = data.table("playlist_track").rows.len() as i64;
    let expected = [
        ("MusicCatalog", ARTISTS + ALBUMS + TRACKS),
        ("CustomerData", CUSTOMERS + INVOICES),
        ("PlaylistData", PLAYLISTS + playlist_tracks),
        ("EmployeeData", EMPLOYEES),
    ];
    let mut differing = Vec::new();
    for (table, count) in expected {
        let (pg_name, lite_name) = (ctx.table(table), format!("{}{table}", ctx.lite_prefix()));
        // The same tables: keys, key types (from PostgreSQL's types and SQLite's declared types)
        // and indexes.
        assert_eq!(shape(&ctx, &pg_name).await, shape(&ctx, &lite_name).await, "{table}");
        let (pg, lite) = (items(&ctx, &pg_name).await, items(&ctx, &lite_name).await);
        assert_eq!(pg.len() as i64, count, "{table}: one item per source row");
        let only_pg: Vec<&String> = pg.keys().filter(|k| !lite.contains_key(*k)).collect();
        let only_lite: Vec<&String> = lite.keys().filter(|k| !pg.contains_key(*k)).collect();
        assert!(
            only_pg.is_empty() && only_lite.is_empty(),
            "{table}: only from PostgreSQL {only_pg:?}, only from SQLite {only_lite:?}"
        );
        // Item for item: every attribute, `_ddbsync_hash` among them. No difference is
        // irreducible on this data: 2.00 stored by SQLite as INTEGER 2 is PostgreSQL's 2.00 once
        // DynamoDB normalises it, and the dates SQLite holds as text in its several formats are the
        // ISO text of PostgreSQL's timestamps.
        differing.extend(pg.iter().filter_map(|(key, item)| {
            let d = differences(item, &lite[key]);
            (!d.is_empty()).then(|| format!("{table} {key}: {}", d.join("; ")))
        }));
    }
    assert!(differing.is_empty(), "{} items differ:\n{}", differing.len(), differing.join("\n"));

    // The awkward values made it through unchanged (compared with the generator's rows).
    let music = ctx.table("MusicCatalog");
    let track = get(&ctx, &music, "TRACK#15", "PROFILE").await.unwrap();
    assert_eq!(text(&track["name"]), "It's \"quoted\" \\ slashed");
    let artist = get(&ctx, &music, "ARTIST#7", "PROFILE").await.unwrap();
    assert!(!artist.contains_key("name"), "artist 7 has no name: {artist:?}");
    let employees = ctx.table("EmployeeData");
    let gm = get(&ctx, &employees, "EMPLOYEE#1", "PROFILE").await.unwrap();
    assert!(!gm.contains_key("manager") && !gm.contains_key("reports_to"), "{gm:?}");
    assert_eq!(text(&gm["birth_date"]), "1962-02-18T00:00:00");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_row_in_the_sqlite_file_rewrites_exactly_the_items_that_hold_it_and_a_deleted_row_its_item() {
    let ctx = Ctx::chinook_generated().await;
    let prefix = ctx.lite_prefix();
    sync_ok(&ctx, "lite", &[]);
    let before = hashes(&ctx, &prefix).await;

    // A track on an album, on playlists and on invoices: its own item and every item embedding it.
    let db = open(&ctx.sqlite_file());
    let track = ids(
        &db,
        "SELECT TrackId FROM Track WHERE AlbumId IS NOT NULL AND TrackId IN (SELECT TrackId FROM PlaylistTrack) \
         AND TrackId IN (SELECT TrackId FROM InvoiceLine) ORDER BY TrackId LIMIT 1",
    )[0];
    let mut expected = BTreeSet::from([format!("MusicCatalog TRACK#{track}|PROFILE")]);
    let q = |sql: &str| ids(&db, &sql.replace("{t}", &track.to_string()));
    let (album, artist) = (
        q("SELECT AlbumId FROM Track WHERE TrackId = {t}")[0],
        q("SELECT a.ArtistId FROM Track t JOIN Album a USING (AlbumId) WHERE t.TrackId = {t}")[0],
    );
    expected.insert(format!("MusicCatalog ARTIST#{artist}|ALBUM#{album}"));
    for p in q("SELECT PlaylistId FROM PlaylistTrack WHERE TrackId = {t}") {
        expected.insert(format!("PlaylistData PLAYLIST#{p}|TRACK#{track}"));
    }
    for (invoice, customer) in q("SELECT DISTINCT InvoiceId FROM InvoiceLine WHERE TrackId = {t}")
        .into_iter()
        .map(|i| (i, ids(&db, &format!("SELECT CustomerId FROM Invoice WHERE InvoiceId = {i}"))[0]))
    {
        expected.insert(format!("CustomerData CUSTOMER#{customer}|INVOICE#{invoice}"));
    }
    db.execute("UPDATE Track SET Name = 'Renamed — ✓' WHERE TrackId = ?1", [track]).unwrap();
    drop(db);

    let report = sync_ok(&ctx, "lite", &[]);
    assert_eq!(
        (total(&report, "created"), total(&report, "updated"), total(&report, "deleted")),
        (0, expected.len() as u64, 0),
        "{report}"
    );
    let after = hashes(&ctx, &prefix).await;
    assert_eq!(changed(&before, &after), expected);
    let item = get(&ctx, &format!("{prefix}MusicCatalog"), &format!("TRACK#{track}"), "PROFILE").await.unwrap();
    assert_eq!(text(&item["name"]), "Renamed — ✓");

    // A playlist entry deleted: its item goes (delete_missing), and the playlist's count changes.
    let db = open(&ctx.sqlite_file());
    let playlist = ids(&db, &format!("SELECT min(PlaylistId) FROM PlaylistTrack WHERE TrackId = {track}"))[0];
    db.execute("DELETE FROM PlaylistTrack WHERE PlaylistId = ?1 AND TrackId = ?2", [playlist, track]).unwrap();
    let left = ids(&db, &format!("SELECT count(*) FROM PlaylistTrack WHERE PlaylistId = {playlist}"))[0];
    drop(db);
    let report = sync_ok(&ctx, "lite", &[]);
    assert_eq!((total(&report, "updated"), total(&report, "deleted")), (1, 1), "{report}");
    let table = format!("{prefix}PlaylistData");
    assert!(get(&ctx, &table, &format!("PLAYLIST#{playlist}"), &format!("TRACK#{track}")).await.is_none());
    let profile = get(&ctx, &table, &format!("PLAYLIST#{playlist}"), "PROFILE").await.unwrap();
    assert_eq!(text(&profile["track_count"]), left.to_string());
    let last = hashes(&ctx, &prefix).await;
    assert_eq!(
        changed(&after, &last),
        BTreeSet::from([
            format!("PlaylistData PLAYLIST#{playlist}|PROFILE"),
            format!("PlaylistData PLAYLIST#{playlist}|TRACK#{track}")
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn param_from_to_binds_sqlite_parameters_and_the_scope_keeps_deletes_inside_the_period() {
    let ctx = Ctx::chinook_generated().await;
    let prefix = ctx.lite_prefix();
    sync_ok(&ctx, "lite", &[]);
    let table = format!("{prefix}CustomerData");

    // January 2021 as SQLite sees it, whatever format each date is written in.
    let db = open(&ctx.sqlite_file());
    let january = ids(
        &db,
        "SELECT InvoiceId FROM Invoice WHERE datetime(InvoiceDate) >= '2021-01-01' \
         AND datetime(InvoiceDate) < '2021-02-01' ORDER BY InvoiceId",
    );
    let later =
        ids(&db, "SELECT InvoiceId FROM Invoice WHERE datetime(InvoiceDate) >= '2021-03-01' ORDER BY InvoiceId");
    assert!(january.len() >= 2 && later.len() >= 2, "{january:?} {later:?}");
    let customer = |i: i64| ids(&db, &format!("SELECT CustomerId FROM Invoice WHERE InvoiceId = {i}"))[0];
    let key = |i: i64| (format!("CUSTOMER#{}", customer(i)), format!("INVOICE#{i}"));
    let (in_changed, in_deleted, out_changed, out_deleted) =
        (key(january[0]), key(january[1]), key(later[0]), key(later[1]));
    db.execute_batch(&format!(
        "UPDATE Invoice SET BillingCity = 'Changé' WHERE InvoiceId IN ({}, {});
         DELETE FROM InvoiceLine WHERE InvoiceId IN ({2}, {3}); DELETE FROM Invoice WHERE InvoiceId IN ({2}, {3});",
        january[0], later[0], january[1], later[1]
    ))
    .unwrap();
    drop(db);
    let before = items(&ctx, &table).await;

    let report =
        sync_ok(&ctx, "lite", &["--table", "CustomerData", "--param", "from=2021-01-01", "--param", "to=2021-02-01"]);
    assert_eq!((total(&report, "updated"), total(&report, "deleted")), (1, 1), "{report}");
    let city = |item: &Item| text(&item["billing_city"]);
    assert_eq!(city(&get(&ctx, &table, &in_changed.0, &in_changed.1).await.unwrap()), "Changé");
    assert!(get(&ctx, &table, &in_deleted.0, &in_deleted.1).await.is_none());
    // Outside the period: neither read nor deleted.
    let kept = get(&ctx, &table, &out_changed.0, &out_changed.1).await.unwrap();
    assert_eq!(kept, before[&format!("{}|{}", out_changed.0, out_changed.1)]);
    assert!(get(&ctx, &table, &out_deleted.0, &out_deleted.1).await.is_some());

    // The same period spelled as timestamps reads the same invoices: SQLite compares them through
    // datetime(), as PostgreSQL compares a timestamp.
    let spelled = ["--param", "from=2021-01-01T00:00:00", "--param", "to=2021-02-01T00:00:00"];
    let report = sync_ok(&ctx, "lite", &[&["--table", "CustomerData"][..], &spelled[..]].concat());
    let invoices = report["tables"][0]["entities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["entity"] == "invoice")
        .map(|e| ["created", "updated", "unchanged"].map(|f| e[f].as_u64().unwrap()))
        .unwrap();
    assert_eq!(invoices, [0, 0, january.len() as u64 - 1], "{report}");

    // The whole file: the rest follows.
    let report = sync_ok(&ctx, "lite", &["--table", "CustomerData"]);
    assert_eq!((total(&report, "updated"), total(&report, "deleted")), (1, 1), "{report}");
    assert_eq!(city(&get(&ctx, &table, &out_changed.0, &out_changed.1).await.unwrap()), "Changé");
    assert!(get(&ctx, &table, &out_deleted.0, &out_deleted.1).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_no_difference_after_a_sqlite_sync_and_a_dry_run_writes_nothing() {
    let ctx = Ctx::chinook_generated().await;
    let prefix = ctx.lite_prefix();
    sync_ok(&ctx, "lite", &[]);

    let verified = ctx.ddbsync(&["--json", "verify", "lite", "--full"]);
    assert_eq!(verified.code(), 0, "{}{}", verified.stdout(), verified.stderr());
    let v: serde_json::Value = serde_json::from_str(&verified.stdout()).unwrap();
    let compared: u64 = v["tables"].as_array().unwrap().iter().map(|t| t["compared"].as_u64().unwrap()).sum();
    let mut stored = 0;
    for table in TABLES {
        stored += items(&ctx, &format!("{prefix}{table}")).await.len() as u64;
    }
    assert_eq!(compared, stored, "{v}");

    // One customer's phone changed: verify sees it, a dry run counts it and writes nothing.
    let db = open(&ctx.sqlite_file());
    db.execute("UPDATE Customer SET Phone = '+33 1 23 45 67 89' WHERE CustomerId = 3", []).unwrap();
    drop(db);
    let verified = ctx.ddbsync(&["--json", "verify", "lite", "--full", "--table", "CustomerData"]);
    assert_eq!(verified.code(), 3, "{}{}", verified.stdout(), verified.stderr());
    let v: serde_json::Value = serde_json::from_str(&verified.stdout()).unwrap();
    assert_eq!(v["tables"][0]["differing"]["count"], 1, "{v}");

    let mut before = BTreeMap::new();
    for table in TABLES {
        before.insert(table, items(&ctx, &format!("{prefix}{table}")).await);
    }
    let report = sync_ok(&ctx, "lite", &["--dry-run"]);
    assert_eq!(
        (total(&report, "created"), total(&report, "updated"), total(&report, "deleted")),
        (0, 1, 0),
        "{report}"
    );
    for table in TABLES {
        assert!(items(&ctx, &format!("{prefix}{table}")).await == before[table], "{table}: the dry run wrote");
    }
    let report = sync_ok(&ctx, "lite", &[]);
    assert_eq!(total(&report, "updated"), 1, "{report}");
    let customer = get(&ctx, &format!("{prefix}CustomerData"), "CUSTOMER#3", "PROFILE").await.unwrap();
    assert_eq!(text(&customer["phone"]), "+33 1 23 45 67 89");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_leaves_the_sqlite_file_untouched_and_a_query_that_writes_is_refused() {
    let ctx = Ctx::chinook_generated().await;
    let file = ctx.sqlite_file();
    let siblings = || -> BTreeSet<String> {
        std::fs::read_dir(ctx.envs.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("chinook.sqlite"))
            .collect()
    };
    let state = || (std::fs::read(&file).unwrap(), std::fs::metadata(&file).unwrap().modified().unwrap());
    let (files, before) = (siblings(), state());
    sync_ok(&ctx, "lite", &[]);
    assert!(state() == before, "the sync changed the SQLite file");
    assert_eq!(siblings(), files, "no journal or WAL file left beside it");

    // A query that writes, plain and behind a CTE: refused, and the file is as it was. The same
    // mapping reading the table is accepted, so the refusal is the write's.
    for (name, query) in [
        ("select", "SELECT GenreId AS genre_id, Name AS name FROM Genre"),
        (
            "returning",
            "INSERT INTO Genre (GenreId, Name) VALUES (99, 'written') RETURNING GenreId AS genre_id, Name AS name",
        ),
        (
            "cte",
            "WITH g(id, n) AS (SELECT 98, 'written') INSERT INTO Genre (GenreId, Name) SELECT id, n FROM g \
             RETURNING GenreId AS genre_id, Name AS name",
        ),
    ] {
        let mappings = ctx.write_mappings(
            &format!("writes-{name}.toml"),
            &format!(
                "[tables.genres.entities.genre]\npartition_key = {{ name = \"PK\", template = \"G#{{genre_id}}\" }}\n\
                 sort_key = {{ name = \"SK\", template = \"G\" }}\nquery = \"\"\"\n{query}\n\"\"\"\n"
            ),
        );
        ctx.write_sqlite_profile("writer", &mappings, "chinook.sqlite", &format!("{}w-", ctx.prefix), "");
        let run = ctx.ddbsync(&["sync", "writer"]);
        if name == "select" {
            assert_eq!(run.code(), 0, "{}", run.stderr());
            continue;
        }
        assert!([1, 2].contains(&run.code()), "{name}: exit {}: {}{}", run.code(), run.stdout(), run.stderr());
        let said = run.stderr().to_lowercase();
        assert!(said.contains("read-only") || said.contains("readonly") || said.contains("writ"), "{name}: {said}");
        assert!(state() == before, "{name}: the refused query changed the file");
        let read_only = rusqlite::Connection::open_with_flags(&file, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY);
        let written = ids(&read_only.unwrap(), "SELECT count(*) FROM Genre WHERE GenreId IN (98, 99)")[0];
        assert_eq!(written, 0, "{name}");
    }
}

// ---- SQLite's types, on a hand-made table -------------------------------------------------------

/// A number as (sign, significant digits, exponent of the last digit): two spellings of one exact
/// decimal give the same text. Written here, apart from ddbsync's number code, to judge it.
fn exact(number: &str) -> String {
    let (negative, rest) = number.strip_prefix('-').map(|r| (true, r)).unwrap_or((false, number));
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => (&rest[..at], rest[at + 1..].parse::<i64>().unwrap()),
        None => (rest, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let leading = digits.trim_start_matches('0');
    let significant = leading.trim_end_matches('0');
    if significant.is_empty() {
        return "0".into();
    }
    let exponent = exponent - frac.len() as i64 + (leading.len() - significant.len()) as i64;
    format!("{}{significant}e{exponent}", if negative { "-" } else { "" })
}

/// A world with the SQLite file `types.sqlite` made by `ddl`, and profile `lite` syncing it with
/// `mappings` into this test's prefix.
async fn types_world(ddl: &str, mappings: &str) -> Ctx {
    let ctx = Ctx::new(1).await;
    let db = open(&ctx.envs.path().join("types.sqlite"));
    db.execute_batch(ddl).unwrap_or_else(|e| panic!("{ddl}: {e}"));
    drop(db);
    let path = ctx.write_mappings("types.toml", mappings);
    ctx.write_sqlite_profile("lite", &path, "types.sqlite", &ctx.prefix, "");
    ctx
}

/// One entity `row` in table `t`, keyed `T#{id}`, from `query`, with these `json_columns`.
fn one_entity(query: &str, json_columns: &str) -> String {
    format!(
        "[tables.t]\ndelete_missing = true\n[tables.t.entities.row]\n\
         partition_key = {{ name = \"PK\", template = \"T#{{id}}\" }}\nsort_key = {{ name = \"SK\", template = \"ROW\" }}\n\
         json_columns = [{json_columns}]\nquery = \"\"\"\n{query}\n\"\"\"\n"
    )
}

/// `T#<id>` → the item, and the report's rejects (key → reason), after a sync expected to reject.
async fn synced(ctx: &Ctx) -> (BTreeMap<String, Item>, BTreeMap<String, String>, i32) {
    let (run, report) = sync(ctx, "lite", &[]);
    let rejected = report["tables"][0]["rejected"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| (r["key"].as_str().unwrap().to_string(), r["reason"].as_str().unwrap().to_string()))
                .collect()
        })
        .unwrap_or_default();
    let items = items(ctx, &ctx.table("t")).await.into_iter().map(|(k, v)| (k.replace("|ROW", ""), v)).collect();
    (items, rejected, run.code())
}

/// The reject whose key names `T#<id>`.
fn reject_of(rejected: &BTreeMap<String, String>, id: i64) -> &str {
    let tag = format!("\"T#{id}\"");
    rejected
        .iter()
        .find(|(k, _)| k.contains(&tag))
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("no reject for T#{id}: {rejected:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sqlite_storage_class_becomes_its_attribute_and_reals_keep_their_shortest_decimal() {
    // `mixed` has no declared type: each row keeps the storage class it was given. `n` has NUMERIC
    // affinity, which stores '2.00' as INTEGER 2 and '1.50' as REAL 1.5.
    let ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY, mixed, n NUMERIC(10,2));
        INSERT INTO t VALUES (1, 42, '2.00'), (2, 2.5, '1.50'), (3, 'text ✓ ''quoted''', 0.99),
          (4, x'00ff10', NULL), (5, NULL, 7), (6, 9007199254740993, NULL), (7, 0.1, NULL), (8, 1e300, NULL), (17, 1e125, NULL),
          (9, -0.0, NULL), (10, 1e-7, NULL), (11, -9223372036854775808, NULL), (12, 1e999, NULL),
          (14, -1e999, NULL), (15, 123456789.123456789, NULL), (16, '0.99', NULL);";
    let ctx = types_world(ddl, &one_entity("SELECT id, mixed, n FROM t", "")).await;
    let (items, rejected, code) = synced(&ctx).await;
    assert_eq!(code, 3, "the infinite rows and 1e300 are rejected: {rejected:#?}");

    // What SQLite says each stored value is.
    let db = open(&ctx.envs.path().join("types.sqlite"));
    let mut stmt = db.prepare("SELECT id, mixed, n FROM t ORDER BY id").unwrap();
    let mut rows = stmt.query([]).unwrap();
    let mut checked = 0;
    while let Some(row) = rows.next().unwrap() {
        let id: i64 = row.get(0).unwrap();
        // A double DynamoDB cannot hold: infinite, or beyond its range (1E-130 to 9.99E+125).
        let unstorable = match row.get_ref(1).unwrap() {
            ValueRef::Real(f) if f.is_infinite() => Some("Infinity cannot be stored"),
            ValueRef::Real(f) if f != 0.0 && !(1e-130..1e126).contains(&f.abs()) => {
                Some("outside DynamoDB's number range")
            }
            _ => None,
        };
        if let Some(said) = unstorable {
            let reason = reject_of(&rejected, id);
            assert!(reason.contains(said) && reason.contains("column \"mixed\""), "T#{id}: {reason}");
            assert!(!items.contains_key(&format!("T#{id}")), "T#{id} was written");
            continue;
        }
        let item = items.get(&format!("T#{id}")).unwrap_or_else(|| panic!("T#{id} not written: {rejected:#?}"));
        for (column, at) in [("mixed", 1), ("n", 2)] {
            let got = item.get(column);
            match row.get_ref(at).unwrap() {
                ValueRef::Null => assert_eq!(got, None, "T#{id}.{column}: NULL is no attribute"),
                ValueRef::Integer(i) => assert_eq!(got, Some(&AttributeValue::N(i.to_string())), "T#{id}.{column}"),
                ValueRef::Real(f) => {
                    // The shortest decimal that reads back as the same double (Rust's `{:e}`).
                    let n = got.and_then(|v| v.as_n().ok()).unwrap_or_else(|| panic!("T#{id}.{column}: {got:?}"));
                    assert_eq!(exact(n), exact(&format!("{f:e}")), "T#{id}.{column}: {n} for the double {f:e}");
                    assert_eq!(n.parse::<f64>().unwrap(), f, "T#{id}.{column}");
                }
                ValueRef::Text(t) => {
                    assert_eq!(got, Some(&AttributeValue::S(String::from_utf8(t.to_vec()).unwrap())), "T#{id}.{column}")
                }
                ValueRef::Blob(b) => {
                    assert_eq!(got, Some(&AttributeValue::B(b.to_vec().into())), "T#{id}.{column}")
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 2 * 13);
    assert_eq!(rejected.len(), 3, "{rejected:#?}");
    // Values that a careless conversion would get wrong, spelled out.
    assert_eq!(items["T#6"]["mixed"], AttributeValue::N("9007199254740993".into()));
    assert_eq!(text(&items["T#1"]["n"]), "2");
    assert_eq!(text(&items["T#2"]["n"]), "1.5");
    assert_eq!(text(&items["T#3"]["n"]), "0.99");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_in_each_sqlite_format_become_iso_text_and_a_bad_date_is_refused_with_the_fix() {
    let ddl = "CREATE TABLE t (id INTEGER PRIMARY KEY, d DATETIME, day DATE);
        INSERT INTO t VALUES (1, '2021-01-01', '2021-03-04'), (2, '2021-01-01 10:30', NULL),
          (3, '2021-01-01 10:30:45', NULL), (4, '2021-01-01 10:30:45.123', NULL), (5, '2021-01-01T10:30:45', NULL),
          (6, '2021-01-01T10:30', NULL), (7, 'yesterday', NULL), (8, 1700000000, NULL), (9, NULL, '1999-12-31'),
          (10, '2021-12-31 23:59:59', NULL);";
    let ctx = types_world(ddl, &one_entity("SELECT id, d, day FROM t", "")).await;
    let (items, rejected, code) = synced(&ctx).await;
    assert_eq!(code, 3, "{rejected:#?}");

    // SQLite's own reading of each date, in ISO form; no fraction when it is zero, as
    // PostgreSQL's timestamp prints.
    let db = open(&ctx.envs.path().join("types.sqlite"));
    let mut stmt = db
        .prepare("SELECT id, strftime('%Y-%m-%dT%H:%M:%f', d), date(day) FROM t WHERE id NOT IN (7, 8) ORDER BY id")
        .unwrap();
    let expected: Vec<(i64, Option<String>, Option<String>)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(expected.len(), 8);
    let mut wrong = Vec::new();
    for (id, d, day) in expected {
        let item = items.get(&format!("T#{id}")).unwrap_or_else(|| panic!("T#{id} not written: {rejected:#?}"));
        let d = d.map(|d| d.strip_suffix(".000").map(str::to_string).unwrap_or(d));
        for (column, want) in [("d", d), ("day", day)] {
            let got = item.get(column).map(text);
            if got != want {
                wrong.push(format!("T#{id}.{column}: stored {got:?}, SQLite reads {want:?}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(text(&items["T#4"]["d"]), "2021-01-01T10:30:45.123");

    // Text that is no date, and a number: refused with the row's key and the fix.
    let bad_text = reject_of(&rejected, 7);
    assert!(bad_text.contains("CAST(d AS TEXT) AS d"), "{bad_text}");
    let number = reject_of(&rejected, 8);
    assert!(number.contains("datetime(d, 'unixepoch') AS d"), "{number}");
    assert_eq!(rejected.len(), 2, "{rejected:#?}");
    assert_eq!(items.len(), 8);
}

/// A document nested `levels` deep: `{"a":{"a":…1…}}`.
fn nested(levels: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels))
}

/// A JSON value as the attribute it must become: objects → M, arrays → L, null → NULL.
fn attribute(value: &serde_json::Value) -> AttributeValue {
    match value {
        serde_json::Value::Null => AttributeValue::Null(true),
        serde_json::Value::Bool(b) => AttributeValue::Bool(*b),
        serde_json::Value::Number(n) => AttributeValue::N(n.to_string()),
        serde_json::Value::String(s) => AttributeValue::S(s.clone()),
        serde_json::Value::Array(a) => AttributeValue::L(a.iter().map(attribute).collect()),
        serde_json::Value::Object(o) => AttributeValue::M(o.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_columns_become_maps_and_lists_and_documents_dynamodb_cannot_hold_are_refused() {
    let ddl = format!(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, j TEXT);
         INSERT INTO t VALUES (1, '{{\"a\":[1,2.5,{{\"b\":\"ü\"}}],\"c\":null,\"d\":true,\"e\":\"x\"}}'),
           (2, '{{\"a\": '), (3, '[]'), (4, '{nested40}'), (5, '{{\"\": 1}}'), (6, '{{\"x\":[{{\"\": 1}}]}}'),
           (7, NULL), (8, '{nested20}'), (9, '\"just text\"');",
        nested40 = nested(40),
        nested20 = nested(20),
    );
    // `built` comes from SQLite's own JSON functions, as the Chinook mapping's documents do.
    let query = "SELECT id, j, json_object('id', id, 'list', json_array(1, 'x', NULL, 0.5)) AS built, \
                 (SELECT json_group_array(json(x)) FROM (SELECT json_object('n', id) AS x FROM t t2 \
                  WHERE t2.id <= t.id ORDER BY t2.id)) AS agg FROM t";
    let ctx = types_world(&ddl, &one_entity(query, "\"j\", \"built\", \"agg\"")).await;
    let (items, rejected, code) = synced(&ctx).await;
    assert_eq!(code, 3, "{rejected:#?}");

    let db = open(&ctx.envs.path().join("types.sqlite"));
    let mut stmt = db.prepare(&format!("{query} ORDER BY id")).unwrap();
    let rows: Vec<(i64, Option<String>, String, String)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).unwrap().map(Result::unwrap).collect();
    let refused = [2, 4, 5, 6];
    for (id, j, built, agg) in rows {
        if refused.contains(&id) {
            assert!(!items.contains_key(&format!("T#{id}")), "T#{id} was written");
            continue;
        }
        let item = items.get(&format!("T#{id}")).unwrap_or_else(|| panic!("T#{id} not written: {rejected:#?}"));
        let parse = |t: &str| attribute(&serde_json::from_str(t).unwrap());
        assert_eq!(item.get("j"), j.as_deref().map(parse).as_ref(), "T#{id}.j");
        assert_eq!(item.get("built"), Some(&parse(&built)), "T#{id}.built");
        assert_eq!(item.get("agg"), Some(&parse(&agg)), "T#{id}.agg");
    }
    assert!(matches!(&items["T#1"]["j"], AttributeValue::M(m) if m.len() == 4));
    assert_eq!(text(&items["T#9"]["j"]), "just text");
    assert!(reject_of(&rejected, 2).contains("column \"j\""), "{rejected:#?}");
    assert!(reject_of(&rejected, 4).contains("nested more than 32 levels"), "{rejected:#?}");
    assert!(reject_of(&rejected, 5).contains("holds a map with an empty key (at j)"), "{rejected:#?}");
    assert!(reject_of(&rejected, 6).contains("holds a map with an empty key (at j.x[0])"), "{rejected:#?}");
    assert_eq!(rejected.len(), refused.len(), "{rejected:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_kb_key_from_sqlite_is_written_and_a_longer_one_refused() {
    let ddl = "CREATE TABLE k (id TEXT PRIMARY KEY, v INTEGER);
        INSERT INTO k VALUES ('a', 1), (replace(hex(zeroblob(1024)), '0', 'k'), 2),
          (replace(hex(zeroblob(1024)), '0', 'k') || 'k', 3), ('b', 4);";
    let mappings = "[tables.t]\npartition_key = \"id\"\nquery = \"SELECT id, v FROM k\"\n";
    let ctx = types_world(ddl, mappings).await;
    let (run, report) = sync(&ctx, "lite", &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let rejected = report["tables"][0]["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0]["reason"].as_str().unwrap().contains("2049 bytes"), "{rejected:?}");
    // The key SQLite holds, read back by it through the server.
    let db = open(&ctx.envs.path().join("types.sqlite"));
    let long: String = db.query_row("SELECT id FROM k WHERE v = 2", [], |r| r.get(0)).unwrap();
    assert_eq!(long.len(), 2048);
    let key = HashMap::from([("id".to_string(), s(&long))]);
    let out = ctx.dynamo.get_item().table_name(ctx.table("t")).set_key(Some(key)).consistent_read(true).send().await;
    let item = out.unwrap().item.expect("the 2048-byte key is written");
    assert_eq!(item["v"], AttributeValue::N("2".into()));
    let stored = items_by_id(&ctx).await;
    assert_eq!(stored, BTreeSet::from(["a".to_string(), "b".to_string(), long]));
}

async fn items_by_id(ctx: &Ctx) -> BTreeSet<String> {
    let out = ctx.dynamo.scan().table_name(ctx.table("t")).consistent_read(true).send().await.unwrap();
    out.items.unwrap_or_default().iter().map(|i| text(&i["id"])).collect()
}

/// The SQLite mapping is the PostgreSQL one with other SQL: the same tables, entities, keys,
/// indexes, scope, parameters and everything else but the queries and the JSON columns they need.
#[test]
fn the_sqlite_chinook_mapping_differs_from_the_postgresql_one_only_in_its_queries() {
    fn without_sql(value: &mut toml::Value) {
        if let toml::Value::Table(t) = value {
            t.remove("query");
            t.remove("json_columns");
            t.iter_mut().for_each(|(_, v)| without_sql(v));
        }
    }
    let read = |name: &str| {
        let path = crate::harness::repo().join("envs/mappings").join(name);
        let mut value: toml::Value = toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        without_sql(&mut value);
        value
    };
    assert_eq!(read("chinook-sqlite.toml"), read("chinook.toml"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_parameter_sqlite_cannot_read_as_a_date_is_refused_before_anything_is_deleted() {
    let ctx = Ctx::chinook_generated().await;
    let prefix = ctx.lite_prefix();
    sync_ok(&ctx, "lite", &[]);
    let table = format!("{prefix}CustomerData");
    let before = items(&ctx, &table).await;
    // datetime('2021-02-1') is NULL in SQLite: the query would return no invoice while the scope,
    // comparing strings, still covers the period's items, which would look deleted.
    for bad in ["to=2021-02-1", "to=2021/02/01", "to=next week"] {
        let run =
            ctx.ddbsync(&["sync", "lite", "--table", "CustomerData", "--param", "from=2021-01-15", "--param", bad]);
        assert_eq!(run.code(), 2, "{bad}: {}", run.stderr());
        let value = bad.trim_start_matches("to=");
        assert!(
            run.stderr().contains(&format!("--param to={value} is not a date and time"))
                && run.stderr().contains("compares it with invoice_date (declared DATETIME)"),
            "{}",
            run.stderr()
        );
    }
    assert_eq!(items(&ctx, &table).await, before, "nothing written or deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_numeric_scope_types_sqlite_parameters_as_numbers_and_named_parameters_are_refused() {
    let mappings = "[tables.t]\ndelete_missing = true\npartition_key = \"id\"\nparams = [\"lo\", \"hi\"]\n\
                    scope = \"n >= :lo AND n < :hi\"\nquery = \"SELECT id, n FROM p WHERE n >= ?1 AND n < ?2\"\n";
    let ddl = "CREATE TABLE p (id INTEGER PRIMARY KEY, n INTEGER);
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 100) INSERT INTO p SELECT i, i FROM g;";
    let ctx = types_world(ddl, mappings).await;
    let slice = ["--param", "lo=50", "--param", "hi=55"];
    let first = sync_ok(&ctx, "lite", &slice);
    assert_eq!(total(&first, "created"), 5, "{first}");
    // The scope reads the slice back as numbers: nothing is new the second time.
    let second = sync_ok(&ctx, "lite", &slice);
    assert_eq!((total(&second, "created"), total(&second, "unchanged")), (0, 5), "{second}");
    open(&ctx.envs.path().join("types.sqlite")).execute_batch("DELETE FROM p WHERE id = 52").unwrap();
    // One of the slice's five: over the 10 % guard, so allowed here.
    let third = sync_ok(&ctx, "lite", &[&slice[..], &["--allow-mass-delete"]].concat());
    assert_eq!(total(&third, "deleted"), 1, "{third}");
    let left: BTreeSet<String> = ctx.scan("t").await.iter().map(|i| i["id"].as_n().unwrap().clone()).collect();
    assert_eq!(left, ["50", "51", "53", "54"].map(String::from).into());
    // A value that is not a number, for a number column, is refused.
    let run = ctx.ddbsync(&["sync", "lite", "--param", "lo=fifty", "--param", "hi=55"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("--param lo=fifty is not a number"), "{}", run.stderr());

    // Named parameters would be bound by their place, not their name: refused, with the fix.
    let named = mappings.replace("n >= ?1 AND n < ?2", "n >= :hi AND n < :lo");
    let path = ctx.write_mappings("types.toml", &named);
    ctx.write_sqlite_profile("lite", &path, "types.sqlite", &ctx.prefix, "");
    let run = ctx.ddbsync(&["sync", "lite", "--param", "lo=50", "--param", "hi=55"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    assert!(
        run.stderr().contains("the query names a parameter :hi; ddbsync binds the values of `params` by position"),
        "{}",
        run.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_that_is_not_utf8_is_refused_by_its_key_and_its_neighbours_are_written() {
    let ddl = "CREATE TABLE u (id TEXT PRIMARY KEY, v TEXT);
        INSERT INTO u VALUES ('a', CAST(x'6162ff' AS TEXT)), ('b', 'fine'), (CAST(x'ff' AS TEXT), 'x'), (CAST(x'fe' AS TEXT), 'y');";
    let ctx = types_world(ddl, &one_entity("SELECT id, v FROM u", "")).await;
    let (items, rejected, code) = synced(&ctx).await;
    assert_eq!(code, 3, "{rejected:#?}");
    assert_eq!(items.keys().cloned().collect::<Vec<_>>(), ["T#b"], "{rejected:#?}");
    let a = rejected.iter().find(|(k, _)| k.contains("T#a")).map(|(_, r)| r.as_str()).unwrap();
    assert!(a.contains("not valid UTF-8") && a.contains("CAST(v AS BLOB) AS v"), "{a}");
    // The two keys that are not text are two rejects (not one key and a duplicate of it).
    let (_, report) = sync(&ctx, "lite", &[]);
    let reasons: Vec<&str> =
        report["tables"][0]["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 3, "{reasons:#?}");
    assert_eq!(reasons.iter().filter(|r| r.contains("key column \"id\": the text is not valid UTF-8")).count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expression_as_a_table_key_is_refused_before_a_table_is_made() {
    let ddl = "CREATE TABLE k (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO k VALUES (1, 'a');";
    let mappings = "[tables.t]\npartition_key = \"id\"\nquery = \"SELECT id + 0 AS id, name FROM k\"\n";
    let ctx = types_world(ddl, mappings).await;
    let run = ctx.ddbsync(&["sync", "lite"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(
        run.stderr().contains("key column \"id\" has no type of its own (SQLite declares no type for an expression)"),
        "{}",
        run.stderr()
    );
    assert!(!ctx.table_exists(&ctx.table("t")).await, "no table was created");
}

/// The events of the period tests: three on the first day (09:00, 10:00, 11:00), then one a day.
const EVENTS: &str = "(1, '2021-01-01 09:00:00'), (2, '2021-01-01 10:00:00'), (3, '2021-01-01 11:00:00')";

fn event_rows() -> String {
    let later: Vec<String> = (4..=24).map(|i| format!("({i}, '2021-01-{:02} 12:00:00')", i - 2)).collect();
    format!("{EVENTS}, {}", later.join(", "))
}

fn event_mappings(condition: &str) -> String {
    format!(
        "[tables.ev]\ndelete_missing = true\npartition_key = \"id\"\nparams = [\"from\", \"to\"]\n\
         scope = \"d >= :from AND d < :to\"\nquery = \"SELECT id, d FROM ev WHERE {condition}\"\n"
    )
}

/// The ids of the items in table `ev`.
async fn event_ids(ctx: &Ctx) -> BTreeSet<i64> {
    ctx.scan("ev").await.iter().map(|i| i["id"].as_n().unwrap().parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_starting_at_a_time_of_day_keeps_the_items_before_it_in_both_sources() {
    let all = ["--param", "from=2021-01-01", "--param", "to=2021-02-01"];
    let later = ["--param", "from=2021-01-01 10:00", "--param", "to=2021-02-01"];
    let expected: BTreeSet<i64> = (1..=24).collect();

    // SQLite: the query compares through datetime(), the scope as DynamoDB strings.
    let ddl = format!("CREATE TABLE ev (id INTEGER PRIMARY KEY, d DATETIME); INSERT INTO ev VALUES {};", event_rows());
    let ctx = types_world(&ddl, &event_mappings("datetime(d) >= datetime(?1) AND datetime(d) < datetime(?2)")).await;
    assert_eq!(total(&sync_ok(&ctx, "lite", &all), "created"), 24);
    // `2021-01-01 10:00` as a string sorts after the stored `2021-01-01T09:00:00`: spelled as the
    // items hold it, the 09:00 item is outside the period, as it is outside the query.
    let report = sync_ok(&ctx, "lite", &later);
    assert_eq!((total(&report, "deleted"), total(&report, "unchanged")), (0, 23), "{report}");
    assert_eq!(event_ids(&ctx).await, expected);
    // A second 60 and an offset SQLite's datetime() does not read are refused, as it would read no row.
    for to in ["to=2021-01-31 23:59:60", "to=2021-01-31T10:00:00+15:00"] {
        let run = ctx.ddbsync(&["sync", "lite", "--param", "from=2021-01-01", "--param", to]);
        assert_eq!(run.code(), 2, "{to}: {}", run.stderr());
    }

    // PostgreSQL: the same period over a timestamp column.
    let ctx = Ctx::new(0).await;
    ctx.sql(&["CREATE TABLE ev (id int PRIMARY KEY, d timestamp)", &format!("INSERT INTO ev VALUES {}", event_rows())]);
    ctx.use_mappings("ev.toml", &event_mappings("d >= $1 AND d < $2"));
    let run = ctx.ddbsync(&["--json", "sync", "local", all[0], all[1], all[2], all[3]]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let run = ctx.ddbsync(&["--json", "sync", "local", later[0], later[1], later[2], later[3]]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!((total(&report, "deleted"), total(&report, "unchanged")), (0, 23), "{report}");
    // Forms only PostgreSQL reads cannot be spelled as the items are: refused before anything is
    // read, where given as they are they would put items the query leaves out in the period.
    for (from, to) in
        [("2021-01-01 10:00+00", "2021-02-01"), ("2021-01-01", "Feb 1 2021"), ("2021-01-01 10:00+05:00", "2021-02-01")]
    {
        let run = ctx.ddbsync(&["sync", "local", "--param", &format!("from={from}"), "--param", &format!("to={to}")]);
        assert_eq!(run.code(), 2, "{from} {to}: {}", run.stderr());
        assert!(run.stderr().contains("the scope of table ev uses it as timestamp"), "{}", run.stderr());
        let run = ctx.ddbsync(&["verify", "local", "--param", &format!("from={from}"), "--param", &format!("to={to}")]);
        assert_eq!(run.code(), 2, "verify {from} {to}: {}", run.stderr());
    }
    assert_eq!(event_ids(&ctx).await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_the_scope_types_is_bound_as_a_number_where_the_query_compares_an_expression() {
    let ddl = "CREATE TABLE p (id INTEGER PRIMARY KEY, amt NUMERIC);
        WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 60) INSERT INTO p SELECT i, i * 5 FROM g;";
    let mappings = "[tables.t]\ndelete_missing = true\npartition_key = \"id\"\nparams = [\"min\"]\n\
                    scope = \"amt >= :min\"\nquery = \"SELECT id, amt FROM p WHERE coalesce(amt, 0) >= ?1\"\n";
    let ctx = types_world(ddl, mappings).await;
    // As text, '100' would be greater than every number SQLite compares it with: no row at all.
    let report = sync_ok(&ctx, "lite", &["--param", "min=100"]);
    assert_eq!(total(&report, "created"), 41, "{report}");
    let report = sync_ok(&ctx, "lite", &["--param", "min=100"]);
    assert_eq!((total(&report, "unchanged"), total(&report, "deleted")), (41, 0), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn advice_for_a_sqlite_key_is_sqlite_and_an_empty_file_is_named() {
    let ddl = "CREATE TABLE r (x REAL PRIMARY KEY, v TEXT);
        INSERT INTO r VALUES (1.5, 'a'), (9e999, 'inf'), (1e300, 'big');";
    let ctx = types_world(ddl, "[tables.t]\npartition_key = \"x\"\nquery = \"SELECT x, v FROM r\"\n").await;
    let (run, report) = sync(&ctx, "lite", &[]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let reasons: Vec<&str> =
        report["tables"][0]["rejected"].as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    let infinity = reasons.iter().find(|r| r.contains("Infinity")).unwrap();
    assert!(infinity.contains("WHERE (x IS NULL OR abs(x) < 9e999)"), "{infinity}");
    let big = reasons.iter().find(|r| !r.contains("Infinity")).unwrap();
    assert!(big.contains("(CAST(x AS TEXT) AS x)") && !big.contains("::"), "{big}");
    // What the advice says does what it says, in SQLite itself.
    let db = open(&ctx.envs.path().join("types.sqlite"));
    assert_eq!(ids(&db, "SELECT count(*) FROM r WHERE (x IS NULL OR abs(x) < 9e999)"), [2]);

    std::fs::write(ctx.envs.path().join("empty.sqlite"), b"").unwrap();
    let path = ctx.write_mappings("types.toml", "[tables.t]\npartition_key = \"x\"\nquery = \"SELECT x FROM r\"\n");
    ctx.write_sqlite_profile("empty", &path, "empty.sqlite", &ctx.prefix, "");
    let run = ctx.ddbsync(&["sync", "empty"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("it holds no tables (an empty file opens as an empty database)"), "{}", run.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_fails_a_parameter_default_no_run_could_use() {
    let ddl = format!("CREATE TABLE ev (id INTEGER PRIMARY KEY, d DATETIME); INSERT INTO ev VALUES {};", event_rows());
    let mappings = format!(
        "param_defaults = {{ from = \"1900-1-1\", to = \"2100-01-01\" }}\n{}",
        event_mappings("datetime(d) >= datetime(?1) AND datetime(d) < datetime(?2)")
    );
    let ctx = types_world(&ddl, &mappings).await;
    let run = ctx.ddbsync(&["check", "lite"]);
    assert_eq!(run.code(), 2, "{}\n{}", run.stdout(), run.stderr());
    assert!(
        run.stdout()
            .contains("param_defaults.from = \"1900-1-1\" (the mappings file's default) is not a date and time"),
        "{}",
        run.stdout()
    );
    // A run without --param fails the same way, before anything is read.
    let run = ctx.ddbsync(&["sync", "lite"]);
    assert_eq!(run.code(), 2, "{}", run.stderr());
    assert!(run.stderr().contains("param_defaults.from = \"1900-1-1\""), "{}", run.stderr());
}
