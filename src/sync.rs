//! A sync run: plan every table, prepare the targets, then per table scan the target's hashes, stream
//! the source through item building and the diff, and write what changed.
//!
//! Invariants: every mapping is checked against its query before anything is written; `--dry-run`
//! goes through the same diff and writes nothing (no table, no item, no run record); every source
//! row ends created, updated, unchanged, rejected or failed, and the report counts each.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::build::{Plan, Reject};
use crate::cost::Savings;
use crate::diff::Verdict;
use crate::dynamo::{Dynamo, KeySchema};
use crate::item;
use crate::pace::{Cap, Pace};
use crate::printer::Printer;
use crate::profile::{Profile, ProfileError, TableMapping};
use crate::report::{RunReport, TableReport, Totals};
use crate::retry::RetryPolicy;
use crate::scan::{self, Scanned};
use crate::source::{self, Source};
use crate::writer::{self, Pending, WriterSettings, MAX_BATCH};

/// How long a table may take to be created or deleted.
const TABLE_WAIT: Duration = Duration::from_secs(300);

/// Items the writer holds back to interleave writes (about 40 batches).
const SHUFFLE_WINDOW: usize = 40 * MAX_BATCH;

/// Items between the diff and the writer: enough to keep every call in flight busy, few enough
/// that memory stays flat whatever the source's size.
const WRITE_QUEUE: usize = 1024;

#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    pub dry_run: bool,
    pub clean: bool,
    /// Only these mappings (by name without prefix); all when empty.
    pub tables: Vec<String>,
}

/// A mapping with its checked plan and what the target holds now.
struct Prepared<'a> {
    mapping: &'a TableMapping,
    plan: Plan,
    exists: bool,
    /// DynamoDB's (approximate) item count, to size the diff index once.
    item_count: u64,
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn key_schema(plan: &Plan) -> KeySchema {
    plan.key_schema.iter().map(|(n, t)| (n.clone(), t.to_string())).collect()
}

fn show_schema(schema: &KeySchema) -> String {
    schema.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
}

/// The mappings a run covers, in file order, or an error naming the unknown ones.
pub fn selected<'a>(profile: &'a Profile, names: &[String]) -> Result<Vec<&'a TableMapping>> {
    if let Some(unknown) = names.iter().find(|n| !profile.tables.iter().any(|t| &t.name == *n)) {
        let known: Vec<&str> = profile.tables.iter().map(|t| t.name.as_str()).collect();
        let message = format!("no table \"{unknown}\" in the mappings (tables: {})", known.join(", "));
        return Err(ProfileError::new(&profile.path, message).into());
    }
    Ok(profile.tables.iter().filter(|t| names.is_empty() || names.contains(&t.name)).collect())
}

pub async fn run(profile: &Profile, options: &SyncOptions, printer: &Printer) -> Result<RunReport> {
    let started_at = now();
    let mappings = selected(profile, &options.tables)?;
    let source = Source::connect(profile).await?;
    tracing::info!(source = %source.target, "connected to PostgreSQL");

    let mut plans = Vec::new();
    for mapping in &mappings {
        let context = format!("{}: table \"{}\": query", mapping.origin.display(), mapping.name);
        let columns = source.describe(&mapping.query, &context).await?;
        plans.push(Plan::new(mapping, columns)?);
    }

    let dynamo = Dynamo::connect(&profile.target).await;
    let where_ = match &profile.target.endpoint_url {
        Some(url) => format!("{} ({url})", profile.target.region),
        None => profile.target.region.clone(),
    };
    let mut prepared = Vec::new();
    for (mapping, plan) in mappings.into_iter().zip(plans) {
        let info = dynamo
            .describe(&mapping.table_name)
            .await
            .with_context(|| format!("reading DynamoDB table {} in {where_}", mapping.table_name))?;
        let wanted = key_schema(&plan);
        if let Some(info) = &info {
            if info.key_schema != wanted && !options.clean {
                bail!(
                    "DynamoDB table {} has key ({}) but {} gives ({}); run with --clean to recreate the table",
                    mapping.table_name,
                    show_schema(&info.key_schema),
                    mapping.origin.display(),
                    show_schema(&wanted)
                );
            }
        }
        let item_count = info.as_ref().map_or(0, |i| i.item_count);
        prepared.push(Prepared { mapping, plan, exists: info.is_some(), item_count });
    }

    if !options.dry_run {
        for p in &mut prepared {
            let table = &p.mapping.table_name;
            if options.clean && p.exists {
                printer.note(format!("deleting {table}"));
                dynamo.delete_table(table).await.with_context(|| format!("deleting {table}"))?;
                dynamo.wait(table, true, TABLE_WAIT).await?;
            }
            if options.clean || !p.exists {
                printer.note(format!("creating {table} ({})", show_schema(&key_schema(&p.plan))));
                dynamo.create_table(table, &key_schema(&p.plan)).await.with_context(|| format!("creating {table}"))?;
                dynamo.wait(table, false, TABLE_WAIT).await?;
            }
        }
    }

    let dynamo = Arc::new(dynamo);
    let scans: Vec<_> = prepared
        .iter()
        .map(|p| {
            let key_names = p.plan.key_names().into_iter().map(String::from).collect();
            (p.exists && !options.clean).then(|| {
                let table = p.mapping.table_name.clone();
                scan::start(dynamo.clone(), table, key_names, p.item_count, profile, printer)
            })
        })
        .collect();
    let run = Run {
        profile,
        options,
        printer,
        source: &source,
        dynamo: dynamo.clone(),
        cap: profile.sync.max_write_units_per_second.map(|n| Arc::new(Cap::new(n))),
    };
    let mut tables = Vec::new();
    for (p, scan) in prepared.iter().zip(scans) {
        let table = &p.mapping.table_name;
        let scanned = match scan {
            Some(task) => task.await.context("scan task panicked")?.with_context(|| format!("scanning {table}"))?,
            None => Scanned::empty(),
        };
        let report = sync_table(&run, p, scanned).await.with_context(|| format!("syncing table {table}"))?;
        tables.push(report);
    }

    let total = Totals::of(&tables, &profile.prices);
    let report = RunReport {
        environment: profile.env.clone(),
        region: profile.target.region.clone(),
        started_at,
        finished_at: now(),
        dry_run: options.dry_run,
        clean: options.clean,
        units: if options.dry_run { "estimated from item sizes" } else { "measured" },
        prices: profile.prices.clone(),
        tables,
        total,
    };
    if !options.dry_run {
        record_run(&dynamo, profile, &report).await?;
    }
    Ok(report)
}

async fn record_run(dynamo: &Dynamo, profile: &Profile, report: &RunReport) -> Result<()> {
    let table = &profile.metadata_table;
    let schema: KeySchema = vec![("pk".into(), "S".into()), ("sk".into(), "S".into())];
    match dynamo.describe(table).await? {
        Some(_) => {}
        None => {
            dynamo.create_table(table, &schema).await.with_context(|| format!("creating metadata table {table}"))?;
            dynamo.wait(table, false, TABLE_WAIT).await?;
        }
    }
    dynamo.put_item(table, report.record()).await.with_context(|| format!("recording the run in {table}"))?;
    Ok(())
}

/// What every table of a run shares.
struct Run<'a> {
    profile: &'a Profile,
    options: &'a SyncOptions,
    printer: &'a Printer,
    source: &'a Source,
    dynamo: Arc<Dynamo>,
    /// The run's write-units-per-second cap, shared by every table's writer.
    cap: Option<Arc<Cap>>,
}

async fn sync_table(run: &Run<'_>, p: &Prepared<'_>, scanned: Scanned) -> Result<TableReport> {
    let table = &p.mapping.table_name;
    let key_names: Vec<String> = p.plan.key_names().into_iter().map(String::from).collect();
    let Scanned { mut index, read_units, retries: scan_retries } = scanned;

    let bar = run.printer.writes(table.clone());
    let writer = (!run.options.dry_run).then(|| {
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let settings = WriterSettings {
            table: table.clone(),
            key_names: key_names.clone(),
            policy: RetryPolicy::new(run.profile.sync.max_attempts),
            shuffle_window: SHUFFLE_WINDOW,
        };
        let pace = Arc::new(Pace::new(run.profile.sync.max_in_flight, run.cap.clone()));
        let progress = bar.clone();
        let task = tokio::spawn(writer::write_all(run.dynamo.clone(), settings, pace, rx, move |n| progress.inc(n)));
        (tx, task)
    });

    let (mut created, mut updated, mut unchanged) = (0u64, 0u64, 0u64);
    let (mut changed_units, mut unchanged_units) = (0u64, 0u64);
    let mut rejected: Vec<Reject> = Vec::new();
    let context = format!("{}: table \"{}\": query", p.mapping.origin.display(), p.mapping.name);
    let rows = run.source.rows(&p.mapping.query, &context).await?;
    futures::pin_mut!(rows);
    while let Some(row) = rows.next().await {
        let row = row?;
        let built = match p.plan.build(&source::raw_values(&row)) {
            Ok(built) => built,
            Err(reject) => {
                rejected.push(reject);
                continue;
            }
        };
        let units = item::write_units(built.size);
        match index.classify(built.key, built.hash) {
            Verdict::Skip => {
                unchanged += 1;
                unchanged_units += units;
                continue;
            }
            Verdict::Duplicate => {
                rejected.push(Reject {
                    key: item::describe_key(&built.item, &p.plan.key_names()),
                    reason: "another row of the query has the same key; only the first was kept".into(),
                });
                continue;
            }
            Verdict::Create => created += 1,
            Verdict::Update => updated += 1,
        }
        changed_units += units;
        if let Some((tx, _)) = &writer {
            bar.inc_length(1);
            if tx.send(Pending { key: built.key, item: built.item, units }).await.is_err() {
                break; // the writer ended early; its error is reported below
            }
        }
    }

    let outcome = match writer {
        Some((tx, task)) => {
            drop(tx);
            task.await.context("writer task panicked")?
        }
        None => Default::default(),
    };
    bar.finish_and_clear();
    let write_units = if run.options.dry_run { changed_units as f64 } else { outcome.consumed_units };
    // A full rewrite writes the changed items (as billed) and the unchanged ones (estimated).
    let potential_write_units = write_units + unchanged_units as f64;
    Ok(TableReport {
        table: table.clone(),
        table_created: run.options.clean || !p.exists,
        created,
        updated,
        unchanged,
        orphans: index.unseen() as u64,
        write_units,
        read_units,
        potential_write_units,
        retries: scan_retries + outcome.retries,
        throttled: outcome.throttled,
        cost: Savings::new(&run.profile.prices, write_units, read_units, potential_write_units),
        rejected,
        failed: outcome.failed,
    })
}
