//! CPU-only throughput of ddbsync's engine: PostgreSQL wire values converted to cells (the
//! adapter's work), item building, content
//! hashing and the diff, on one thread, with no I/O, for two shapes of about 1 KB items: `pni`
//! (lessons with three questions embedded as JSON) and `flat` (fifteen plain columns). Used by
//! `scripts/bench.sh`; prints one JSON line.
//!
//! usage: engine [ROWS] [PASSES]    throughput
//!        engine index N [sized]    resident bytes per item of a diff index of N items, grown from
//!                                  empty or sized in advance (run it in a fresh process: memory
//!                                  freed earlier would hide the growth)

use std::time::Instant;

use ddbsync::profile::{Entity, KeySource, KeySpec};
use ddbsync::pure::diff::{Index, Verdict};
use ddbsync::pure::hash::Excluded;
use ddbsync::pure::plan::Plan;
use ddbsync::pure::value::{Cell, ColType};
use ddbsync::source::postgres::convert::{cell, PgType};
use tokio_postgres::types::Type;

// The same allocator as the ddbsync binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn timestamptz(micros: i64) -> Vec<u8> {
    micros.to_be_bytes().to_vec()
}

type Row = Vec<Option<Vec<u8>>>;

fn pni_columns() -> Vec<(&'static str, Type)> {
    vec![
        ("lesson_id", Type::INT4),
        ("title", Type::TEXT),
        ("category", Type::TEXT),
        ("topic", Type::TEXT),
        ("level", Type::INT2),
        ("summary", Type::TEXT),
        ("metadata", Type::JSONB),
        ("published", Type::BOOL),
        ("created_at", Type::TIMESTAMPTZ),
        ("updated_at", Type::TIMESTAMPTZ),
        ("questions", Type::JSON),
    ]
}

fn flat_columns() -> Vec<(&'static str, Type)> {
    let mut columns =
        vec![("lesson_id", Type::INT8), ("amount", Type::INT4), ("count", Type::INT4), ("active", Type::BOOL)];
    for name in ["a", "b", "c", "d", "e", "f", "g", "h", "i"] {
        columns.push((name, Type::TEXT));
    }
    columns.push(("created_at", Type::TIMESTAMPTZ));
    columns.push(("updated_at", Type::TIMESTAMPTZ));
    columns
}

fn flat_row(i: u32) -> Row {
    let mut row = vec![
        Some(i64::from(i).to_be_bytes().to_vec()),
        Some((i as i32 * 7).to_be_bytes().to_vec()),
        Some((i as i32 % 1000).to_be_bytes().to_vec()),
        Some(vec![(i % 2) as u8]),
    ];
    for c in 0..9u32 {
        row.push(Some(format!("{:0>100}", format!("{c}-{:x}", u64::from(i) * 0x9e37_79b9)).into_bytes()));
    }
    row.push(Some(timestamptz(i64::from(i) * 60_000_000)));
    row.push(Some(timestamptz(i64::from(i) * 60_000_000 + 1)));
    row
}

fn pni_row(i: u32) -> Row {
    let questions: Vec<String> = (1..=3)
        .map(|q| {
            format!(
                r#"{{"id":{},"lesson_id":{i},"passage_id":{},"position":{q},"prompt":"Question {q} about lesson {i}: which statement is best supported by the passage?","choices":["A {i:08x}{q}","B {i:08x}{q}","C","D"],"answer":{},"difficulty":{}.{:02},"created_at":"2024-01-01T00:00:00+00:00","updated_at":"2024-06-01T00:00:00+00:00"}}"#,
                7 * i + q,
                2 * i,
                1 + (i + q) % 4,
                q,
                (i * q) % 100
            )
        })
        .collect();
    let mut jsonb = vec![1u8];
    jsonb.extend_from_slice(
        format!(r#"{{"grade": {}, "minutes": {}, "tags": ["reading", "level-{}"]}}"#, i % 6, 20 + i % 25, i % 5)
            .as_bytes(),
    );
    vec![
        Some((i as i32).to_be_bytes().to_vec()),
        Some(format!("Lesson {i}: Tides and the moon").into_bytes()),
        Some(b"science".to_vec()),
        Some(b"earth".to_vec()),
        Some(((i % 5) as i16).to_be_bytes().to_vec()),
        Some(format!("A short lesson about {:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15).into_bytes()),
        Some(jsonb),
        Some(vec![1]),
        Some(timestamptz(i64::from(i) * 60_000_000)),
        Some(timestamptz(i64::from(i) * 60_000_000 + 1)),
        Some(format!("[{}]", questions.join(",")).into_bytes()),
    ]
}

/// Median items/s of build + hash + diff over `passes`, the target holding 90 % of the rows
/// unchanged (so most verdicts are skips, like a nightly run); also the average item size.
fn measure(columns: Vec<(&'static str, Type)>, make: fn(u32) -> Row, rows: usize, passes: usize) -> (f64, usize) {
    let mapping = Entity {
        name: "lessons".into(),
        query: String::new(),
        params: vec![],
        partition_key: KeySpec { attribute: "lesson_id".into(), source: KeySource::Column("lesson_id".into()) },
        sort_key: None,
        excluded: Excluded::default(),
        defaults: vec![],
        json_columns: vec![],
        label: "table \"lessons\"".into(),
        origin: "bench".into(),
    };
    let types: Vec<Type> = columns.iter().map(|(_, t)| t.clone()).collect();
    let described = columns.iter().map(|(n, t)| (n.to_string(), std::sync::Arc::new(PgType(t.clone())) as ColType));
    let plan = Plan::new(&mapping, &[], described.collect()).unwrap();
    // What the PostgreSQL adapter does to each row before the core sees it.
    let cells = |r: &Vec<Option<&[u8]>>| -> Vec<Cell> { types.iter().zip(r).map(|(t, v)| cell(t, *v)).collect() };
    let data: Vec<Row> = (0..rows as u32).map(make).collect();
    let raw: Vec<Vec<Option<&[u8]>>> = data.iter().map(|r| r.iter().map(|v| v.as_deref()).collect()).collect();
    let mut bytes = 0usize;
    let mut rates = Vec::new();
    for _ in 0..passes {
        let mut index = Index::with_capacity(rows);
        bytes = 0;
        for (i, r) in raw.iter().enumerate() {
            let built = plan.build(cells(r)).unwrap();
            bytes += built.size;
            if i % 10 != 0 {
                index.insert(built.key, Some(built.hash));
            }
        }
        let start = Instant::now();
        let mut changed = 0usize;
        for r in &raw {
            let built = plan.build(cells(r)).expect("valid row");
            if index.classify(built.key, built.hash) != Verdict::Skip {
                changed += 1;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(changed, rows.div_ceil(10));
        rates.push(rows as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], bytes / rows)
}

/// Resident memory of this process, in bytes (Linux).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// Bytes of resident memory per item of a diff index holding `n` target items, filled the way a
/// Scan fills it: grown from empty, or sized from the table's item count.
fn index_bytes_per_item(n: u32, sized: bool) -> f64 {
    let before = rss();
    let mut index = if sized { Index::with_capacity(n as usize + n as usize / 8) } else { Index::default() };
    for i in 0..n {
        let key = ddbsync::pure::hash::key_digest(&[&ddbsync::pure::item::AttributeValue::N(i.to_string())]);
        index.insert(key, Some(key));
    }
    let after = rss();
    assert_eq!(index.len(), n as usize);
    (after - before) as f64 / f64::from(n)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("index") {
        let n = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
        let sized = args.get(2).map(String::as_str) == Some("sized");
        let key = if sized { "index_sized_bytes_per_item" } else { "index_bytes_per_item" };
        println!(r#"{{"{key}": {:.1}}}"#, index_bytes_per_item(n, sized));
        return;
    }
    let args: Vec<usize> = args.iter().map(|a| a.parse().expect("a number")).collect();
    let rows = args.first().copied().unwrap_or(100_000);
    let passes = args.get(1).copied().unwrap_or(5);
    let (pni, pni_bytes) = measure(pni_columns(), pni_row, rows, passes);
    let (flat, flat_bytes) = measure(flat_columns(), flat_row, rows, passes);
    println!(
        r#"{{"rows": {rows}, "passes": {passes}, "pni_items_per_s": {pni:.0}, "pni_item_bytes": {pni_bytes}, "flat_items_per_s": {flat:.0}, "flat_item_bytes": {flat_bytes}}}"#
    );
}
