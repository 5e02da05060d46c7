//! `status`: the runs holding the lock of an environment's tables, read from their lease items (one
//! Query of the metadata table), with their progress, rate and ETA ([`crate::pure::status`]); with
//! no run active, the last run's outcome. `--watch` reads them again every interval until no live
//! run is left, then shows the outcome. It only reads: Query on the metadata table, and when both
//! Queries find nothing, DescribeTable of it (a metadata table that does not exist is said so, not
//! taken for an idle one: a wrong prefix or region would look like "nothing runs").

use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;

use crate::engine::lock;
use crate::exit::Exit;
use crate::printer::Printer;
use crate::profile::Profile;
use crate::pure::runs::{self, RunRecord};
use crate::pure::status::{self, Held, TableProgress};
use crate::target::{dynamo, Target};

/// The lease items of the environment's runs, as `status` judges them (`now`, this host).
async fn leases(dynamo: &dyn Target, profile: &Profile) -> Result<Vec<Held>> {
    let table = &profile.metadata_table;
    let items = dynamo
        .query_from(table, ("pk", "LOCK"), ("sk", "TABLE#"))
        .await
        .with_context(|| format!("reading the run lock's leases in {table} in {}", profile.location()))?;
    let (now, host) = (Utc::now(), lock::host_id());
    let mut held = Vec::new();
    for item in &items {
        let Some(lease) = lock::from_item(item) else { continue };
        let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) else { continue };
        let name = sk.trim_start_matches("TABLE#");
        let name = name.split("#SHARD#").next().unwrap_or(name).to_string();
        // The metadata table may be shared by environments with the same prefix: the runs shown
        // are this environment's, and any other holding one of its tables (which a sync of this
        // one would wait for). A sharded run's marker stands for its shards, whose own items
        // carry their progress.
        let ours = lease.env == profile.env || profile.tables.iter().any(|t| t.table_name == name);
        if !ours || lease.sharding.as_ref().is_some_and(|s| s.shard.is_none()) {
            continue;
        }
        let stale = match lock::decide(Some(&lease), "", now, &host, lock::process_alive) {
            lock::Decision::Stale(why) => Some(why),
            _ => None,
        };
        held.push(Held {
            table: name,
            command: item.get(status::COMMAND).and_then(|v| v.as_s().ok()).cloned().unwrap_or_else(|| "unknown".into()),
            progress: item.get(status::PROGRESS).and_then(TableProgress::from_attribute),
            shard: lease.sharding.as_ref().and_then(|s| Some((s.run.clone(), s.count, s.shard.clone()?))),
            run_id: lease.run_id,
            environment: lease.env,
            host: lease.host,
            pid: lease.pid,
            started_at: lease.started_at,
            expires_at: lease.expires_at,
            stale,
        });
    }
    Ok(held)
}

/// How long a watch waits for the record of a run that ended (a killed run leaves none).
const RECORD_WAIT_STEPS: u32 = 10;
const RECORD_WAIT_STEP: Duration = Duration::from_millis(500);

/// The environment's run records, oldest first (a sharded run's as one).
async fn records(dynamo: &dyn Target, profile: &Profile) -> Result<Vec<RunRecord>> {
    let table = &profile.metadata_table;
    let items = dynamo
        .query_from(table, ("pk", "RUN"), ("sk", ""))
        .await
        .with_context(|| format!("reading the run records in {table} in {}", profile.location()))?;
    let ours = items.iter().filter(|i| i.get("environment").and_then(|v| v.as_s().ok()) == Some(&profile.env));
    Ok(runs::group(ours.filter_map(RunRecord::from_item).collect()))
}

/// Whether the metadata table exists; asked only when its Queries found nothing (a Query of a
/// table that does not exist finds nothing too).
async fn exists(dynamo: &dyn Target, profile: &Profile, status: &status::Status) -> Result<bool> {
    if !status.active.is_empty() || status.last_run.is_some() {
        return Ok(true);
    }
    let table = &profile.metadata_table;
    let found = dynamo
        .describe(table)
        .await
        .with_context(|| format!("checking that the metadata table {table} exists in {}", profile.location()))?;
    Ok(found.is_some())
}

/// `ddbsync status <env> [--watch [SECS]]`: always exits 0 once it could read the metadata table
/// (the run's own outcome is in what it prints), and when that table does not exist (said so: no
/// run of the profile has taken a lock there yet, or the profile names another); a signal ends a
/// watch with 5, as any command.
pub async fn run(profile: &Profile, watch: Option<Duration>, printer: &Printer) -> Result<Exit> {
    let dynamo = dynamo::connect(&profile.target).await;
    let dynamo = &*dynamo;
    let mut history = records(dynamo, profile).await?;
    let read = |history: &[RunRecord], held| {
        let mut s = status::build(&profile.env, Utc::now(), held, history);
        (s.metadata_table, s.location) = (profile.metadata_table.clone(), profile.location());
        s
    };
    let Some(every) = watch else {
        let mut now = read(&history, leases(dynamo, profile).await?);
        now.metadata_table_exists = exists(dynamo, profile, &now).await?;
        printer.show(&now, status::render)?;
        return Ok(Exit::Success);
    };
    let mut shown = String::new();
    // The live runs seen: once they end, their records are waited for.
    let mut watched: Vec<String> = Vec::new();
    loop {
        let mut now = read(&history, leases(dynamo, profile).await?);
        now.metadata_table_exists = exists(dynamo, profile, &now).await?;
        if !now.running() && !watched.is_empty() {
            // A run writes its record right after it lets the lock go: given a moment to.
            for _ in 0..RECORD_WAIT_STEPS {
                history = records(dynamo, profile).await?;
                let recorded = |id: &String| history.iter().any(|r| r.run_id.as_ref() == Some(id));
                if watched.iter().all(recorded) {
                    break;
                }
                tokio::time::sleep(RECORD_WAIT_STEP).await;
            }
            now.last_run = history.last().cloned();
        }
        let text = status::render(&now);
        // Only what changed: a log that collects the output gets one block per change.
        if text != shown {
            printer.update(&now, &text)?;
            shown = text;
        }
        if !now.running() {
            return Ok(Exit::Success);
        }
        for run in now.active.iter().filter(|r| r.processes.iter().any(|p| p.stale.is_none())) {
            if !watched.contains(&run.run_id) {
                watched.push(run.run_id.clone());
            }
        }
        tokio::time::sleep(every).await;
    }
}
