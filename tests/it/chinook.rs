//! The Chinook example (`envs/mappings/chinook.toml`) on a Chinook the tests generate (`chinook_data.rs`): four single-table
//! designs with several entities each, global, local and sparse indexes, and a parameterised,
//! scoped sync of one period's invoices.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{text, Ctx, Item};

/// One value from PostgreSQL.
fn one(ctx: &Ctx, sql: &str) -> String {
    ctx.query(sql).pop().unwrap_or_else(|| panic!("no row for {sql}"))
}

fn count(ctx: &Ctx, sql: &str) -> u64 {
    one(ctx, sql).parse().unwrap()
}

/// A table's figures for one entity from a JSON report.
fn entity(report: &serde_json::Value, table: &str, entity: &str) -> [u64; 3] {
    let t = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == table).expect("table in report");
    let e = t["entities"].as_array().unwrap().iter().find(|e| e["entity"] == entity).expect("entity in report");
    ["created", "updated", "unchanged"].map(|f| e[f].as_u64().unwrap())
}

/// `PK|SK` → stored hash, for every item of a table.
async fn hashes(ctx: &Ctx, table: &str) -> HashMap<String, String> {
    let items = ctx.scan(table).await;
    items.iter().map(|i| (format!("{}|{}", text(&i["PK"]), text(&i["SK"])), text(&i["_ddbsync_hash"]))).collect()
}

fn changed(before: &HashMap<String, String>, after: &HashMap<String, String>) -> Vec<String> {
    let mut keys: Vec<String> =
        after.iter().filter(|(k, h)| before.get(*k) != Some(h)).map(|(k, _)| k.clone()).collect();
    keys.sort();
    keys
}

async fn get(ctx: &Ctx, table: &str, pk: &str, sk: &str) -> Item {
    let key = HashMap::from([("PK".to_string(), s(pk)), ("SK".to_string(), s(sk))]);
    let out = ctx.dynamo.get_item().table_name(ctx.table(table)).set_key(Some(key)).consistent_read(true).send().await;
    out.unwrap().item.unwrap_or_else(|| panic!("no item {pk} {sk} in {table}"))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn list(value: &AttributeValue) -> &Vec<AttributeValue> {
    value.as_l().unwrap()
}

fn field<'a>(value: &'a AttributeValue, name: &str) -> &'a AttributeValue {
    &value.as_m().unwrap()[name]
}

/// Items of an index whose partition key is `value`.
async fn query_index(ctx: &Ctx, table: &str, index: &str, (key, value): (&str, AttributeValue)) -> Vec<Item> {
    let (mut items, mut start) = (Vec::new(), None);
    loop {
        let out = ctx
            .dynamo
            .query()
            .table_name(ctx.table(table))
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":v", value.clone())
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("query {index}: {e:?}"));
        items.extend(out.items.unwrap_or_default());
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return items;
        }
    }
}

/// Every entry of an index (a sparse index holds only the items with its key).
async fn index_size(ctx: &Ctx, table: &str, index: &str) -> u64 {
    let (mut n, mut start) = (0, None);
    loop {
        let out = ctx
            .dynamo
            .scan()
            .table_name(ctx.table(table))
            .index_name(index)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {index}: {e:?}"));
        n += out.count as u64;
        start = out.last_evaluated_key.filter(|k| !k.is_empty());
        if start.is_none() {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinook_builds_four_single_table_designs_and_rewrites_only_what_embeds_a_change() {
    let ctx = Ctx::chinook_generated().await;
    // `tables create` makes the tables with their indexes; the sync then only writes items.
    let created = ctx.ddbsync(&["tables", "create", "local"]);
    assert_eq!(created.code(), 0, "{}", created.stderr());
    let desc = ctx.dynamo.describe_table().table_name(ctx.table("CustomerData")).send().await.unwrap();
    let desc = desc.table.unwrap();
    let mut globals: Vec<&str> = desc.global_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
    globals.sort();
    assert_eq!(globals, ["EmailIndex", "SupportRepIndex"]);
    let locals: Vec<&str> = desc.local_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
    assert_eq!(locals, ["InvoiceDateIndex"]);

    let predicted = ctx.sync(&["--dry-run"]);
    let first = ctx.sync(&[]);
    // Index entries included, the estimate from item sizes is what dynoxide bills, as DynamoDB does.
    // dynalite leaves index writes out of its ConsumedCapacity: it reports less.
    let (estimated, measured) = (predicted["total"]["write_units"].as_f64(), first["total"]["write_units"].as_f64());
    match crate::harness::server_kind().as_str() {
        "dynalite" => assert!(measured < estimated, "{measured:?} {estimated:?}"),
        _ => assert_eq!(estimated, measured),
    }
    // The per-entity estimates add up to the table's.
    for t in predicted["tables"].as_array().unwrap() {
        let entities =
            t["entities"].as_array().map(|es| es.iter().map(|e| e["estimated_write_units"].as_f64().unwrap()).sum());
        assert_eq!(entities.unwrap_or(t["write_units"].as_f64().unwrap()), t["write_units"].as_f64().unwrap(), "{t}");
    }
    let n = |table: &str| count(&ctx, &format!("SELECT count(*) FROM {table}"));
    let music = ctx.table("MusicCatalog");
    assert_eq!(entity(&first, &music, "artist"), [n("artist"), 0, 0]);
    assert_eq!(entity(&first, &music, "album"), [n("album"), 0, 0]);
    assert_eq!(entity(&first, &music, "track"), [n("track"), 0, 0]);
    let customers = ctx.table("CustomerData");
    assert_eq!(entity(&first, &customers, "customer"), [n("customer"), 0, 0]);
    assert_eq!(entity(&first, &customers, "invoice"), [n("invoice"), 0, 0]);
    let playlists = ctx.table("PlaylistData");
    assert_eq!(entity(&first, &playlists, "playlist"), [n("playlist"), 0, 0]);
    assert_eq!(entity(&first, &playlists, "playlist_track"), [n("playlist_track"), 0, 0]);
    assert_eq!(crate::harness::figure(&first, &ctx.table("EmployeeData"), "created") as u64, n("employee"));
    assert_eq!(first["total"]["rejected"], 0);
    // Each entity's items are in the table, told apart by entity_type.
    let mut kinds: HashMap<String, u64> = HashMap::new();
    for item in ctx.scan("MusicCatalog").await {
        *kinds.entry(text(&item["entity_type"])).or_default() += 1;
    }
    assert_eq!(
        kinds,
        HashMap::from([("artist".into(), n("artist")), ("album".into(), n("album")), ("track".into(), n("track"))])
    );

    // A few items, field by field: the first album with tracks, and its artist.
    let pair = one(&ctx, "SELECT album_id || ' ' || artist_id FROM album WHERE album_id IN (SELECT album_id FROM track) ORDER BY album_id LIMIT 1");
    let (album_id, artist_id) = pair.split_once(' ').unwrap();
    let artist = get(&ctx, "MusicCatalog", &format!("ARTIST#{artist_id}"), "PROFILE").await;
    assert_eq!(text(&artist["name"]), one(&ctx, &format!("SELECT name FROM artist WHERE artist_id = {artist_id}")));
    assert_eq!(
        text(&artist["album_count"]),
        one(&ctx, &format!("SELECT count(*) FROM album WHERE artist_id = {artist_id}"))
    );
    let album = get(&ctx, "MusicCatalog", &format!("ARTIST#{artist_id}"), &format!("ALBUM#{album_id}")).await;
    assert_eq!(text(&album["name"]), one(&ctx, &format!("SELECT title FROM album WHERE album_id = {album_id}")));
    let tracks = list(&album["tracks"]);
    assert_eq!(tracks.len() as u64, count(&ctx, &format!("SELECT count(*) FROM track WHERE album_id = {album_id}")));
    assert_eq!(
        text(field(&tracks[0], "name")),
        one(&ctx, &format!("SELECT name FROM track WHERE album_id = {album_id} ORDER BY track_id LIMIT 1"))
    );
    // A track with every field (composer, album, genre).
    let track_id = one(
        &ctx,
        "SELECT min(track_id) FROM track WHERE composer IS NOT NULL AND album_id IS NOT NULL AND genre_id IS NOT NULL",
    );
    let track = get(&ctx, "MusicCatalog", &format!("TRACK#{track_id}"), "PROFILE").await;
    let row = one(
        &ctx,
        &format!("SELECT concat_ws('|', t.name, al.title, ar.name, g.name, t.composer, t.unit_price) FROM track t \
         JOIN album al USING (album_id) JOIN artist ar USING (artist_id) JOIN genre g USING (genre_id) WHERE track_id = {track_id}"),
    );
    let fields = ["name", "album_title", "artist_name", "genre", "composer", "unit_price"];
    assert_eq!(fields.map(|f| text(&track[f])).join("|"), row);
    // NULL columns are left out: a track without a composer has no composer attribute.
    let no_composer = one(&ctx, "SELECT min(track_id) FROM track WHERE composer IS NULL");
    let bare = get(&ctx, "MusicCatalog", &format!("TRACK#{no_composer}"), "PROFILE").await;
    assert!(!bare.contains_key("composer"), "{bare:?}");
    // The first invoice with lines; its date as PostgreSQL's own JSON spells it.
    let pair = one(&ctx, "SELECT invoice_id || ' ' || customer_id FROM invoice WHERE invoice_id IN (SELECT invoice_id FROM invoice_line) ORDER BY invoice_id LIMIT 1");
    let (invoice_id, customer_id) = pair.split_once(' ').unwrap();
    let invoice = get(&ctx, "CustomerData", &format!("CUSTOMER#{customer_id}"), &format!("INVOICE#{invoice_id}")).await;
    assert_eq!(
        text(&invoice["invoice_date"]),
        one(&ctx, &format!("SELECT to_json(invoice_date) #>> '{{}}' FROM invoice WHERE invoice_id = {invoice_id}"))
    );
    assert_eq!(
        text(&invoice["total"]),
        one(&ctx, &format!("SELECT total FROM invoice WHERE invoice_id = {invoice_id}"))
    );
    let lines = list(&invoice["lines"]);
    assert_eq!(
        lines.len() as u64,
        count(&ctx, &format!("SELECT count(*) FROM invoice_line WHERE invoice_id = {invoice_id}"))
    );
    assert_eq!(
        text(field(&lines[0], "track_name")),
        one(&ctx, &format!("SELECT t.name FROM invoice_line il JOIN track t USING (track_id) WHERE invoice_id = {invoice_id} ORDER BY invoice_line_id LIMIT 1"))
    );
    let served = one(&ctx, "SELECT min(customer_id) FROM customer WHERE support_rep_id IS NOT NULL");
    let customer = get(&ctx, "CustomerData", &format!("CUSTOMER#{served}"), "PROFILE").await;
    assert_eq!(
        text(&customer["support_rep_name"]),
        one(&ctx, &format!("SELECT e.first_name || ' ' || e.last_name FROM customer c JOIN employee e ON e.employee_id = c.support_rep_id WHERE customer_id = {served}"))
    );
    let boss = one(&ctx, "SELECT employee_id FROM employee WHERE reports_to IS NULL");
    let boss_item = get(&ctx, "EmployeeData", &format!("EMPLOYEE#{boss}"), "PROFILE").await;
    assert!(!boss_item.contains_key("manager") && !boss_item.contains_key("reports_to"), "{boss_item:?}");
    let report = one(&ctx, "SELECT min(employee_id) FROM employee WHERE reports_to IS NOT NULL");
    let report_item = get(&ctx, "EmployeeData", &format!("EMPLOYEE#{report}"), "PROFILE").await;
    assert_eq!(
        text(field(&report_item["manager"], "name")),
        one(&ctx, &format!("SELECT m.first_name || ' ' || m.last_name FROM employee e JOIN employee m ON m.employee_id = e.reports_to WHERE e.employee_id = {report}"))
    );

    // The indexes answer their access patterns; the sparse ones hold only the items with their key.
    let common = one(
        &ctx,
        "SELECT g.name FROM track JOIN genre g USING (genre_id) GROUP BY g.name ORDER BY count(*) DESC, g.name LIMIT 1",
    );
    let of_genre = query_index(&ctx, "MusicCatalog", "GenreIndex", ("genre", s(&common))).await;
    let genre_sql = format!(
        "SELECT count(*) FROM track JOIN genre USING (genre_id) WHERE genre.name = '{}'",
        common.replace('\'', "''")
    );
    assert_eq!(of_genre.len() as u64, count(&ctx, &genre_sql));
    assert_eq!(
        index_size(&ctx, "MusicCatalog", "ComposerIndex").await,
        count(&ctx, "SELECT count(*) FROM track WHERE composer IS NOT NULL")
    );
    assert_eq!(index_size(&ctx, "EmployeeData", "ManagerIndex").await, n("employee") - 1);
    let listed = one(&ctx, "SELECT min(track_id) FROM playlist_track");
    let on_playlists =
        query_index(&ctx, "PlaylistData", "TrackIndex", ("track_id", AttributeValue::N(listed.clone()))).await;
    assert_eq!(
        on_playlists.len() as u64,
        count(&ctx, &format!("SELECT count(*) FROM playlist_track WHERE track_id = {listed}"))
    );
    let buyer =
        one(&ctx, "SELECT customer_id FROM invoice GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1");
    let dated = query_index(&ctx, "CustomerData", "InvoiceDateIndex", ("PK", s(&format!("CUSTOMER#{buyer}")))).await;
    assert!(dated.len() > 1);
    assert_eq!(dated.len() as u64, count(&ctx, &format!("SELECT count(*) FROM invoice WHERE customer_id = {buyer}")));
    let dates: Vec<String> = dated.iter().map(|i| text(&i["invoice_date"])).collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "the local index sorts by date: {dates:?}");

    // Nothing changed: nothing written.
    let again = ctx.sync(&[]);
    assert_eq!((again["total"]["created"].as_u64(), again["total"]["updated"].as_u64()), (Some(0), Some(0)));

    // Rename a track that is on playlists and invoices: exactly the items that embed it change.
    let track_id: u64 = one(
        &ctx,
        "SELECT track_id FROM playlist_track JOIN invoice_line USING (track_id) \
         GROUP BY track_id ORDER BY count(DISTINCT playlist_id) DESC, track_id LIMIT 1",
    )
    .parse()
    .unwrap();
    let before =
        [hashes(&ctx, "MusicCatalog").await, hashes(&ctx, "CustomerData").await, hashes(&ctx, "PlaylistData").await];
    ctx.sql(&[&format!("UPDATE track SET name = 'Renamed Track' WHERE track_id = {track_id}")]);
    let third = ctx.sync(&[]);
    let after =
        [hashes(&ctx, "MusicCatalog").await, hashes(&ctx, "CustomerData").await, hashes(&ctx, "PlaylistData").await];

    let (artist_id, album_id) = {
        let row = one(&ctx, &format!("SELECT artist_id || ' ' || album_id FROM track JOIN album USING (album_id) WHERE track_id = {track_id}"));
        let (a, b) = row.split_once(' ').unwrap();
        (a.to_string(), b.to_string())
    };
    let mut want_music = vec![format!("ARTIST#{artist_id}|ALBUM#{album_id}"), format!("TRACK#{track_id}|PROFILE")];
    want_music.sort();
    assert_eq!(changed(&before[0], &after[0]), want_music);
    let mut want_invoices: Vec<String> = ctx
        .query(&format!(
            "SELECT DISTINCT 'CUSTOMER#' || customer_id || '|INVOICE#' || invoice_id FROM invoice_line \
             JOIN invoice USING (invoice_id) WHERE track_id = {track_id}"
        ))
        .into_iter()
        .collect();
    want_invoices.sort();
    assert!(!want_invoices.is_empty());
    assert_eq!(changed(&before[1], &after[1]), want_invoices);
    let mut want_playlists: Vec<String> = ctx
        .query(&format!(
            "SELECT 'PLAYLIST#' || playlist_id || '|TRACK#{track_id}' FROM playlist_track WHERE track_id = {track_id}"
        ))
        .into_iter()
        .collect();
    want_playlists.sort();
    assert!(want_playlists.len() > 1);
    assert_eq!(changed(&before[2], &after[2]), want_playlists);
    // The report says the same per entity, and nothing else was written.
    assert_eq!(entity(&third, &music, "album")[1], 1);
    assert_eq!(entity(&third, &music, "track")[1], 1);
    assert_eq!(entity(&third, &music, "artist"), [0, 0, n("artist")]);
    assert_eq!(entity(&third, &customers, "invoice")[1], want_invoices.len() as u64);
    assert_eq!(entity(&third, &customers, "customer"), [0, 0, n("customer")]);
    assert_eq!(entity(&third, &playlists, "playlist_track")[1], want_playlists.len() as u64);
    let total = 2 + want_invoices.len() + want_playlists.len();
    assert_eq!(third["total"]["updated"].as_u64(), Some(total as u64));
    assert_eq!(third["total"]["created"].as_u64(), Some(0));
    // The index follows the item.
    let genre =
        one(&ctx, &format!("SELECT g.name FROM track JOIN genre g USING (genre_id) WHERE track_id = {track_id}"));
    let renamed = query_index(&ctx, "MusicCatalog", "GenreIndex", ("genre", s(&genre))).await;
    assert!(renamed
        .iter()
        .any(|i| text(&i["name"]) == "Renamed Track" && text(&i["PK"]) == format!("TRACK#{track_id}")));
}

fn attribute(name: &str) -> aws_sdk_dynamodb::types::AttributeDefinition {
    use aws_sdk_dynamodb::types::{AttributeDefinition, ScalarAttributeType};
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap()
}

fn key(name: &str, kind: aws_sdk_dynamodb::types::KeyType) -> aws_sdk_dynamodb::types::KeySchemaElement {
    aws_sdk_dynamodb::types::KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap()
}

/// An invoice's total as DynamoDB holds it.
async fn stored_total(ctx: &Ctx, id: &str) -> String {
    let customer = one(ctx, &format!("SELECT customer_id FROM invoice WHERE invoice_id = {id}"));
    text(&get(ctx, "CustomerData", &format!("CUSTOMER#{customer}"), &format!("INVOICE#{id}")).await["total"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinook_syncs_one_period_of_invoices_with_parameters_and_deletes_only_inside_it() {
    let ctx = Ctx::chinook_generated().await;
    let clean = ctx.ddbsync(&["--json", "sync", "local", "--clean", "--yes"]);
    assert_eq!(clean.code(), 0, "{}", clean.stderr());
    let invoices_in = |from: &str, to: &str| {
        ctx.query(&format!(
            "SELECT invoice_id FROM invoice WHERE invoice_date >= '{from}' AND invoice_date < '{to}' ORDER BY invoice_id"
        ))
    };
    let january = invoices_in("2021-01-01", "2021-02-01");
    // Well outside the period.
    let later = invoices_in("2021-03-01", "2100-01-01");
    assert!(january.len() >= 3 && later.len() >= 2, "{january:?} {later:?}");
    let (gone_in, changed_in) = (&january[0], &january[1]);
    let (gone_out, changed_out) = (&later[0], &later[1]);
    let gone_in_customer = one(&ctx, &format!("SELECT customer_id FROM invoice WHERE invoice_id = {gone_in}"));
    ctx.sql(&[
        &format!("DELETE FROM invoice_line WHERE invoice_id IN ({gone_in}, {gone_out})"),
        &format!("DELETE FROM invoice WHERE invoice_id IN ({gone_in}, {gone_out})"),
        &format!("UPDATE invoice SET total = total + 1 WHERE invoice_id IN ({changed_in}, {changed_out})"),
    ]);

    // January only: the customers and January's invoices are compared; the rest is out of scope.
    let run = ctx.sync(&["--table", "CustomerData", "--param", "from=2021-01-01", "--param", "to=2021-02-01"]);
    let table = ctx.table("CustomerData");
    assert_eq!(run["params"], serde_json::json!({ "from": "2021-01-01", "to": "2021-02-01" }));
    let customers = count(&ctx, "SELECT count(*) FROM customer");
    assert_eq!(entity(&run, &table, "customer"), [0, 0, customers]);
    assert_eq!(entity(&run, &table, "invoice"), [0, 1, january.len() as u64 - 2]);
    let t = &run["tables"][0];
    assert_eq!((t["orphans"].as_u64(), t["deleted"].as_u64()), (Some(1), Some(1)), "{t}");
    assert_eq!(
        t["deleted_keys"],
        serde_json::json!([format!("PK=\"CUSTOMER#{gone_in_customer}\", SK=\"INVOICE#{gone_in}\"")])
    );
    let stored = hashes(&ctx, "CustomerData").await;
    assert!(!stored.keys().any(|k| k.ends_with(&format!("|INVOICE#{gone_in}"))), "deleted inside the period");
    assert!(stored.keys().any(|k| k.ends_with(&format!("|INVOICE#{gone_out}"))), "kept outside the period");
    assert_ne!(
        stored_total(&ctx, changed_out).await,
        one(&ctx, &format!("SELECT total FROM invoice WHERE invoice_id = {changed_out}"))
    );

    // The run record keeps the slice it covered.
    let history = ctx.ddbsync(&["--json", "history", "local", "--limit", "1"]);
    let runs = serde_json::from_str::<serde_json::Value>(&history.stdout()).unwrap()["runs"].take();
    assert_eq!(runs[0]["params"], serde_json::json!({ "from": "2021-01-01", "to": "2021-02-01" }), "{runs}");

    // Without parameters, every invoice: the later change and deletion are caught up.
    let full = ctx.sync(&["--table", "CustomerData"]);
    assert_eq!(entity(&full, &table, "invoice")[1], 1);
    assert_eq!(full["tables"][0]["deleted"].as_u64(), Some(1));
    assert_eq!(
        stored_total(&ctx, changed_out).await,
        one(&ctx, &format!("SELECT total FROM invoice WHERE invoice_id = {changed_out}"))
    );

    // verify reads the same period: no extras from outside it, nothing differing.
    for args in [&["--param", "from=2021-01-01", "--param", "to=2021-02-01"][..], &[][..]] {
        let mut all = vec!["--json", "verify", "local", "--full", "--table", "CustomerData"];
        all.extend_from_slice(args);
        let verified = ctx.ddbsync(&all);
        assert_eq!(verified.code(), 0, "{args:?}: {}{}", verified.stdout(), verified.stderr());
        let v: serde_json::Value = serde_json::from_str(&verified.stdout()).unwrap();
        let compared = v["tables"][0]["compared"].as_u64().unwrap();
        let invoices =
            if args.is_empty() { count(&ctx, "SELECT count(*) FROM invoice") } else { january.len() as u64 - 1 };
        assert_eq!(compared, customers + invoices, "{args:?}");
    }

    // A backup keeps the indexes, and a restore recreates them.
    let backup = ctx.ddbsync(&["backup", "local", "--table", "CustomerData", "-o", "c.tar"]);
    assert_eq!(backup.code(), 0, "{}", backup.stderr());
    let restore = ctx.ddbsync(&["restore", "c.tar", "--yes"]);
    assert_eq!(restore.code(), 0, "{}", restore.stderr());
    let desc = ctx.dynamo.describe_table().table_name(&table).send().await.unwrap().table.unwrap();
    let mut indexes: Vec<&str> = desc.global_secondary_indexes().iter().filter_map(|i| i.index_name()).collect();
    indexes.extend(desc.local_secondary_indexes().iter().filter_map(|i| i.index_name()));
    indexes.sort();
    assert_eq!(indexes, ["EmailIndex", "InvoiceDateIndex", "SupportRepIndex"]);
    let dated = query_index(&ctx, "CustomerData", "InvoiceDateIndex", ("PK", s("CUSTOMER#2"))).await;
    assert_eq!(dated.len() as u64, count(&ctx, "SELECT count(*) FROM invoice WHERE customer_id = 2"));

    // `check` shows the indexes; a table made without them is reported, and a sync says so but writes.
    let checked = ctx.ddbsync(&["check", "local"]);
    assert_eq!(checked.code(), 0, "{}{}", checked.stdout(), checked.stderr());
    assert!(checked.stdout().contains("local InvoiceDateIndex (PK S, invoice_date S)"), "{}", checked.stdout());
    // The period's scope is accepted by DynamoDB and reads an attribute the invoice query returns.
    let scope = "[ ok ] scope of CustomerData: DynamoDB accepts it; it reads invoice_date, which the queries return";
    assert!(checked.stdout().contains(scope), "{}", checked.stdout());
    let bare = ctx.table("EmployeeData");
    ctx.dynamo.delete_table().table_name(&bare).send().await.unwrap();
    while ctx.table_exists("EmployeeData").await {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    ctx.dynamo
        .create_table()
        .table_name(&bare)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .attribute_definitions(attribute("PK"))
        .attribute_definitions(attribute("SK"))
        .key_schema(key("PK", aws_sdk_dynamodb::types::KeyType::Hash))
        .key_schema(key("SK", aws_sdk_dynamodb::types::KeyType::Range))
        .send()
        .await
        .unwrap();
    let checked = ctx.ddbsync(&["check", "local"]);
    assert_eq!(checked.code(), 1, "{}", checked.stdout());
    let fix = "`ddbsync tables create local --table EmployeeData` adds it";
    assert!(
        checked.stdout().contains("lacks index ManagerIndex that ") && checked.stdout().contains(fix),
        "{}",
        checked.stdout()
    );
    let run = ctx.ddbsync(&["sync", "local", "--table", "EmployeeData"]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.stderr().contains("lacks index ManagerIndex"), "{}", run.stderr());
    // `tables create` adds the missing global index to the table as it is; DynamoDB fills it.
    let added = ctx.ddbsync(&["tables", "create", "local", "--table", "EmployeeData"]);
    if crate::harness::server_kind() == "dynalite" {
        // dynalite wants ProvisionedThroughput for a new index even on an on-demand table, which
        // DynamoDB refuses; the user sees its error, naming the index.
        assert_eq!(added.code(), 1, "{}", added.stdout());
        assert!(added.stderr().contains("adding index ManagerIndex to"), "{}", added.stderr());
    } else {
        assert_eq!(added.code(), 0, "{}", added.stderr());
        assert!(
            added.stdout().contains("updated") && added.stdout().contains("index ManagerIndex added"),
            "{}",
            added.stdout()
        );
        let indexed = index_size(&ctx, "EmployeeData", "ManagerIndex").await;
        assert_eq!(indexed, count(&ctx, "SELECT count(*) FROM employee") - 1, "filled from the items already there");
        assert_eq!(ctx.ddbsync(&["check", "local"]).code(), 0);
    }

    // A parameter no selected query takes, or a bad value, is refused before anything is written.
    let wrong = ctx.ddbsync(&["sync", "local", "--table", "MusicCatalog", "--param", "from=2021-01-01"]);
    assert_eq!(wrong.code(), 2, "{}", wrong.stderr());
    assert!(
        wrong.stderr().contains("--param from: no query of the selected tables uses a parameter \"from\""),
        "{}",
        wrong.stderr()
    );
    // The scope compares it with the items' ISO text, so it is refused before any query runs.
    let bad = ctx.ddbsync(&["sync", "local", "--table", "CustomerData", "--param", "from=last tuesday"]);
    assert_eq!(bad.code(), 2, "{}", bad.stderr());
    assert!(
        bad.stderr().contains("--param from=last tuesday is not a date and time the scope can compare")
            && bad.stderr().contains("the scope of table CustomerData uses it as timestamp"),
        "{}",
        bad.stderr()
    );
}
