//! `ddbsync apply`: writes exactly a plan's changes, under the run lock, each only where the
//! target still holds what the plan was computed against.
//!
//! Every change is one conditional write. A create is a PutItem on `attribute_not_exists` of the
//! partition key. An update or a delete reads the stored item first (one strongly consistent read)
//! and goes on only if its whole content is what the plan saw, then writes on the condition that
//! `_ddbsync_hash` is still the one read: a hand edit before the read is found by the content, a
//! ddbsync run's write after it by the condition (a hand edit in the milliseconds between the read
//! and the write is not). BatchWriteItem carries no condition, so the apply sends one request per
//! item (the same write units as a batched write; the throughput is in BENCHMARKS.md).
//! A change not made is judged by the stored item: one that already holds what the plan writes (or,
//! for a delete, no item) was applied before (an apply stopped half way, then run again) and is
//! counted so; anything else changed since the plan and is skipped as drift, never overwritten.
//! Nothing outside the plan is written.

use std::sync::Arc;

use anyhow::{Context, Result};
use futures::StreamExt;
use serde::Serialize;

use crate::engine::lock::{self, Fence};
use crate::engine::pace::Cap;
use crate::engine::stop::{Interrupted, Stop};
use crate::engine::sync;
use crate::printer::Printer;
use crate::profile::Profile;
use crate::pure::ddb_json;
use crate::pure::item::{self, AttributeValue, Item, HASH_ATTR};
use crate::pure::planfile::{self, Against, PlanFile, PlanTable};
use crate::pure::report::{OperationRun, OperationTable, Outcome};
use crate::target::retry::{self, RetryPolicy};
use crate::target::{Condition, Target, TargetError};

/// How the apply takes the lock.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    pub force_unlock: bool,
    pub lock_timeout: Option<std::time::Duration>,
}

/// What an apply did to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppliedTable {
    pub table: String,
    pub created: u64,
    pub updated: u64,
    pub deleted: u64,
    /// Changes the target already held (an earlier apply of this plan wrote them).
    pub already_applied: u64,
    /// Changes skipped because the target changed since the plan.
    pub drifted: u64,
    /// Changes not made: the apply stopped (a signal, an error) before them, or their write failed.
    pub not_applied: u64,
    /// Write units of the changes made, estimated from the plan (a conditional write's answer
    /// does not say them).
    pub write_units: f64,
    /// Read units of the read-backs after failed conditions.
    pub read_units: f64,
}

/// A change skipped as drift: the key, and what the target holds now.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drift {
    pub table: String,
    pub key: String,
    /// `create`, `update` or `delete`.
    pub change: &'static str,
    /// `an item`, `no item`, `an item with another content hash`…
    pub found: String,
}

/// The apply's report.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub environment: String,
    pub plan: String,
    pub plan_created_at: String,
    pub started_at: String,
    pub finished_at: String,
    pub tables: Vec<AppliedTable>,
    pub drift: Vec<Drift>,
    pub write_units: f64,
    pub read_units: f64,
    pub cost_usd: f64,
    pub outcome: Outcome,
}

impl ApplyReport {
    pub fn render(&self) -> String {
        use comfy_table::{presets::UTF8_FULL_CONDENSED, Cell, CellAlignment, Table};
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED);
        table.set_header(["table", "created", "updated", "deleted", "already applied", "drift", "not applied"]);
        for t in &self.tables {
            let mut cells = vec![Cell::new(&t.table)];
            let figures = [t.created, t.updated, t.deleted, t.already_applied, t.drifted, t.not_applied];
            cells.extend(figures.iter().map(|n| Cell::new(n).set_alignment(CellAlignment::Right)));
            table.add_row(cells);
        }
        let mut out = format!("apply of {} to {} ({})\n{table}\n", self.plan, self.environment, self.outcome.status);
        for d in &self.drift {
            out.push_str(&format!(
                "drift: {} {}: {} skipped: the target holds {}\n",
                d.table, d.key, d.change, d.found
            ));
        }
        out.push_str(&format!(
            "write units {:.1} (estimated), read units {:.1}, USD {:.6}\n",
            self.write_units, self.read_units, self.cost_usd
        ));
        if !self.drift.is_empty() {
            out.push_str("the changes skipped as drift were not written: run ddbsync plan again to see them now\n");
        }
        out
    }

    /// The run record (`history` shows it with mode `apply`).
    pub fn record(&self, profile: &Profile) -> Item {
        OperationRun {
            environment: self.environment.clone(),
            mode: "apply",
            started_at: self.started_at.clone(),
            finished_at: self.finished_at.clone(),
            prices: profile.prices.clone(),
            tables: self
                .tables
                .iter()
                .map(|t| OperationTable {
                    table: t.table.clone(),
                    created: t.created,
                    updated: t.updated,
                    deleted: t.deleted,
                    failed: t.drifted + t.not_applied,
                    write_units: t.write_units,
                    read_units: t.read_units,
                })
                .collect(),
            outcome: self.outcome.clone(),
        }
        .record()
    }
}

/// What became of one change.
enum Done {
    Made,
    AlreadyApplied,
    Drift(String),
}

/// Applies `plan` (already checked against the profile) under the run lock. The report comes
/// back whatever ended the apply, with the error that did, if one did.
pub async fn run(
    dynamo: Arc<dyn Target>,
    profile: &Profile,
    (plan, file): (&PlanFile, &str),
    options: &ApplyOptions,
    printer: &Printer,
    stop: &Stop,
) -> Result<(ApplyReport, Option<anyhow::Error>)> {
    let started_at = now();
    let names: Vec<String> = plan.tables.iter().map(|t| t.table.clone()).collect();
    let mut tables: Vec<AppliedTable> =
        plan.tables.iter().map(|t| AppliedTable { table: t.table.clone(), ..AppliedTable::default() }).collect();
    let mut drift = Vec::new();
    // Every table's plan total in its lease from the lease's first write: `status` counts the
    // tables to come, and never shows an apply without its plan's size.
    for t in &plan.tables {
        crate::engine::progress::planned(&t.table, (t.puts.len() + t.deletes.len()) as u64);
    }
    let on_wait = |e: &anyhow::Error| printer.waiting_for_lock(options.lock_timeout, e);
    let (tables_done, drift_found, writer) = (&mut tables, &mut drift, dynamo.clone());
    let work = move |fence: Fence| {
        let (tables, drift, dynamo) = (tables_done, drift_found, writer);
        async move {
            let cap = profile.sync.max_write_units_per_second.map(|n| Arc::new(Cap::new(n)));
            for (t, applied) in plan.tables.iter().zip(tables.iter_mut()) {
                apply_table(&dynamo, profile, t, applied, drift, (&fence, stop, cap.as_deref())).await?;
            }
            Ok(())
        }
    };
    let outcome =
        lock::with_lock(&dynamo, profile, &names, (options.force_unlock, options.lock_timeout), on_wait, stop, work)
            .await;
    let error = match outcome {
        Err(e) if e.chain().any(|c| c.is::<lock::Locked>() || c.is::<lock::StoppedWaiting>()) => return Err(e),
        Err(e) => Some(e),
        Ok(()) => stop.requested().map(|signal| Interrupted(signal).into()),
    };
    // What the stop or the error left unwritten.
    for (t, applied) in plan.tables.iter().zip(tables.iter_mut()) {
        let handled = applied.created + applied.updated + applied.deleted + applied.already_applied + applied.drifted;
        applied.not_applied = (t.puts.len() + t.deletes.len()) as u64 - handled;
    }
    let write_units: f64 = tables.iter().map(|t| t.write_units).sum();
    let read_units: f64 = tables.iter().map(|t| t.read_units).sum();
    let mut outcome = Outcome::of(error.as_ref(), crate::exit_for);
    if error.is_none() && !drift.is_empty() {
        outcome.exit_code = crate::exit::Exit::Differences as u8;
    }
    let report = ApplyReport {
        environment: profile.env.clone(),
        plan: file.to_string(),
        plan_created_at: plan.created_at.clone(),
        started_at,
        finished_at: now(),
        tables,
        drift,
        write_units,
        read_units,
        cost_usd: profile.prices.cost(write_units, read_units),
        outcome,
    };
    let mut error = error;
    if let Err(message) = sync::record_run(&*dynamo, profile, report.record(profile)).await {
        printer.warn(&message);
        error.get_or_insert_with(|| anyhow::anyhow!("{message}; the apply itself finished (report above)"));
    }
    Ok((report, error))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One table's changes, `in_flight` at once; stops sending at a signal or a closed fence, and at
/// the first write that fails for good.
async fn apply_table(
    dynamo: &Arc<dyn Target>,
    profile: &Profile,
    table: &PlanTable,
    applied: &mut AppliedTable,
    drift: &mut Vec<Drift>,
    (fence, stop, cap): (&Fence, &Stop, Option<&Cap>),
) -> Result<()> {
    let key: Vec<&str> = table.key.iter().map(String::as_str).collect();
    let policy = RetryPolicy::new(profile.sync.max_attempts);
    let changes = table
        .puts
        .iter()
        .map(|p| (&p.item, &p.against, true))
        .chain(table.deletes.iter().map(|d| (&d.key, &d.against, false)));
    // What `ddbsync status` shows of the apply, through the lease's renewals.
    let counters = crate::engine::progress::table(&table.table);
    counters.phase(crate::pure::status::Phase::Writing);
    let in_flight = profile.sync.max_in_flight.clamp(1, 64);
    // Set at the first failure or stop: no change is sent after it, and the ones in flight are
    // given their answers and counted.
    let halted = std::sync::atomic::AtomicBool::new(false);
    let halt = |e: anyhow::Error| {
        halted.store(true, std::sync::atomic::Ordering::SeqCst);
        e
    };
    let writes = futures::stream::iter(changes)
        .map(|(json, against, put)| {
            let (key, halt, halted, counters) = (&key, &halt, &halted, &counters);
            async move {
                let go = || -> Result<()> {
                    if let Some(signal) = stop.requested() {
                        return Err(Interrupted(signal).into());
                    }
                    Ok(fence.check()?)
                };
                if halted.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok(None);
                }
                go().map_err(halt)?;
                let item = ddb_json::item_from_json(json).map_err(anyhow::Error::msg).map_err(halt)?;
                let units = item::write_units(item::item_size(&item));
                if let Some(cap) = cap {
                    cap.spend(units).await;
                    // The wait may have outlasted a stop or the lease.
                    go().map_err(halt)?;
                }
                let done = change(&**dynamo, &table.table, key, (item.clone(), against, put), (&policy, fence)).await;
                lock::beat();
                // Billed as DynamoDB bills a write: on the larger of the item written and the one
                // it replaces, a delete on the item deleted.
                let billed = |replaced: Option<u64>| match put {
                    true => units.max(replaced.unwrap_or(0)),
                    false => replaced.unwrap_or(1),
                };
                match (&done, put) {
                    (Ok((Done::Made, _, replaced)), true) => counters.written(1, billed(*replaced) as f64),
                    (Ok((Done::Made, _, replaced)), false) => counters.deleted(1, billed(*replaced) as f64),
                    (Ok((Done::AlreadyApplied, _, _)), _) => counters.already_applied(1),
                    (Ok((Done::Drift(_), _, _)), _) => counters.drifted(1),
                    (Err(_), _) => {}
                }
                let described = item::describe_key(&item, key);
                let (done, reads, replaced) =
                    done.with_context(|| format!("applying a change to {}: {described}", table.table)).map_err(halt)?;
                Ok(Some((done, reads, billed(replaced), put, against.clone(), described)))
            }
        })
        .buffer_unordered(in_flight);
    let results: Vec<Result<_>> = writes.collect().await;
    let mut failure = None;
    for result in results {
        let (done, reads, units, put, against, described) = match result {
            Ok(Some(done)) => done,
            Ok(None) => continue,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        applied.read_units += reads;
        let kind = match (put, &against) {
            (false, _) => "delete",
            (true, Against::Absent) => "create",
            (true, _) => "update",
        };
        match done {
            Done::Made => {
                match kind {
                    "create" => applied.created += 1,
                    "update" => applied.updated += 1,
                    _ => applied.deleted += 1,
                }
                applied.write_units += units as f64;
            }
            Done::AlreadyApplied => applied.already_applied += 1,
            Done::Drift(found) => {
                applied.drifted += 1;
                drift.push(Drift { table: table.table.clone(), key: described, change: kind, found });
            }
        }
    }
    drift.sort_by(|a, b| (&a.table, &a.key).cmp(&(&b.table, &b.key)));
    if failure.is_none() {
        counters.phase(crate::pure::status::Phase::Done);
    }
    failure.map_or(Ok(()), Err)
}

/// One change. A create is a PutItem on `attribute_not_exists` of the partition key. An update or
/// a delete first reads the stored item (strongly consistent) and goes on only if it is the one
/// the plan saw, then writes on the condition that its `_ddbsync_hash` is still the one read (no
/// ddbsync run wrote it in between). A change not made is read back to tell an earlier apply's
/// write from drift. Also returns the read units the reads took, and the write units of the item
/// the change replaced or deleted, when it read one.
async fn change(
    dynamo: &dyn Target,
    table: &str,
    key_names: &[&str],
    (item, against, put): (Item, &Against, bool),
    (policy, fence): (&RetryPolicy, &Fence),
) -> Result<(Done, f64, Option<u64>), TargetError> {
    // No attempt once the lease may be lost: a DynamoDB that stopped answering ends the apply
    // within a lease, not after every attempt's timeout.
    let fenced = || fence.check().map_err(|lost| TargetError::Unanswered(lost.0));
    let key: Item =
        item.iter().filter(|(k, _)| key_names.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
    let read = || async {
        let (stored, _) = retry::retrying(policy, || async {
            fenced()?;
            dynamo.get_item(table, key.clone()).await
        })
        .await;
        let stored = stored?;
        let units = stored.as_ref().map_or(1, |i| item::item_size(i).div_ceil(4096).max(1)) as f64;
        Ok::<_, TargetError>((stored, units))
    };
    let mut reads = 0.0;
    let mut replaced = None;
    let s = |v: &str| AttributeValue::S(v.to_string());
    let (expression, mut values) = match against {
        Against::Absent => ("attribute_not_exists(#k)", vec![("#k", s(key_names[0]))]),
        Against::Item { hash, .. } => {
            let (stored, units) = read().await?;
            reads += units;
            if !against.holds(stored.as_ref()) {
                return Ok((judge(&item, put, against, stored.as_ref()), reads, None));
            }
            replaced = stored.as_ref().map(|i| item::write_units(item::item_size(i)));
            match hash {
                Some(h) => ("#h = :h", vec![(":h", s(h))]),
                None => ("attribute_exists(#k) AND attribute_not_exists(#h)", vec![("#k", s(key_names[0]))]),
            }
        }
    };
    if expression.contains("#h") {
        values.push(("#h", s(HASH_ATTR)));
    }
    let condition = || Condition { expression, values: values.clone() };
    let (made, _) = retry::retrying(policy, || async {
        fenced()?;
        match put {
            true => dynamo.put_if(table, item.clone(), condition()).await,
            false => dynamo.delete_if(table, key.clone(), condition()).await,
        }
    })
    .await;
    if made? {
        return Ok((Done::Made, reads, replaced));
    }
    let (stored, units) = read().await?;
    Ok((judge(&item, put, against, stored.as_ref()), reads + units, None))
}

/// A change whose target is not what the plan saw: already applied when the target holds what the
/// change writes (or, for a delete, no item), drift otherwise, saying what the target holds.
fn judge(item: &Item, put: bool, against: &Against, stored: Option<&Item>) -> Done {
    let applied = match put {
        true => stored.is_some_and(|s| {
            s.get(HASH_ATTR) == item.get(HASH_ATTR) && planfile::stored_content(s) == planfile::stored_content(item)
        }),
        false => stored.is_none(),
    };
    if applied {
        return Done::AlreadyApplied;
    }
    let Some(stored) = stored else { return Done::Drift("no item".into()) };
    let hash = stored.get(HASH_ATTR).and_then(|h| h.as_s().ok());
    Done::Drift(match against {
        Against::Item { hash: seen, .. } if hash == seen.as_ref() => {
            "an item edited since the plan (the _ddbsync_hash the plan saw, other content)".into()
        }
        _ if hash.is_none() => "an item without a content hash".into(),
        Against::Absent => "an item created since the plan".into(),
        Against::Item { .. } => "an item written since the plan (another _ddbsync_hash)".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::hash::{self, Excluded};
    use crate::target::scripted::Scripted;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn hashed(title: &str) -> Item {
        let mut item = Item::from([("id".to_string(), s("1")), ("title".to_string(), s(title))]);
        let h = hash::to_hex(&hash::content_hash(&item, &Excluded::default()));
        item.insert(HASH_ATTR.into(), s(&h));
        item
    }

    async fn one(target: &Scripted, item: Item, against: &Against, put: bool) -> (Done, f64) {
        let (fence, policy) = (Fence::open(), RetryPolicy::new(2));
        let (done, reads, _) = change(target, "t", &["id"], (item, against, put), (&policy, &fence)).await.unwrap();
        (done, reads)
    }

    #[tokio::test]
    async fn an_update_is_written_on_the_hash_it_read_when_the_item_is_the_one_the_plan_saw() {
        let target = Scripted::default();
        let old = hashed("Old");
        target.gets.lock().unwrap().push_back(Ok(Some(old.clone())));
        let (done, reads) = one(&target, hashed("New"), &Against::of(Some(&old)), true).await;
        assert!(matches!(done, Done::Made));
        assert_eq!(reads, 1.0);
        assert_eq!(target.calls(), ["get_item t", "put_if t #h = :h"]);
    }

    #[tokio::test]
    async fn an_item_edited_by_hand_since_the_plan_is_drift_and_nothing_is_written() {
        let target = Scripted::default();
        let old = hashed("Old");
        let mut edited = old.clone();
        edited.insert("title".into(), s("Edited by hand"));
        target.gets.lock().unwrap().push_back(Ok(Some(edited)));
        let (done, _) = one(&target, hashed("New"), &Against::of(Some(&old)), true).await;
        assert!(matches!(done, Done::Drift(found) if found.contains("edited since the plan")));
        assert_eq!(target.calls(), ["get_item t"], "no write was sent");
    }

    #[tokio::test]
    async fn a_change_an_earlier_apply_made_is_already_applied_not_drift() {
        // A create whose item exists, as this change writes it.
        let target = Scripted::default();
        target.conditionals.lock().unwrap().push_back(Ok(false));
        target.gets.lock().unwrap().push_back(Ok(Some(hashed("New"))));
        let (done, _) = one(&target, hashed("New"), &Against::Absent, true).await;
        assert!(matches!(done, Done::AlreadyApplied));
        assert_eq!(target.calls(), ["put_if t attribute_not_exists(#k)", "get_item t"]);
        // A delete whose item is gone.
        let target = Scripted::default();
        target.gets.lock().unwrap().push_back(Ok(None));
        let old = hashed("Old");
        let (done, _) = one(&target, old.clone(), &Against::of(Some(&old)), false).await;
        assert!(matches!(done, Done::AlreadyApplied));
        assert_eq!(target.calls(), ["get_item t"]);
    }

    #[tokio::test]
    async fn a_create_whose_key_holds_another_item_now_is_drift() {
        let target = Scripted::default();
        target.conditionals.lock().unwrap().push_back(Ok(false));
        target.gets.lock().unwrap().push_back(Ok(Some(hashed("Someone else's"))));
        let (done, _) = one(&target, hashed("New"), &Against::Absent, true).await;
        assert!(matches!(done, Done::Drift(found) if found.contains("an item created since the plan")));
    }
}
