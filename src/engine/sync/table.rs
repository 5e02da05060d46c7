//! One table's sync: its Scan and its source rows through the diff, the writes, then the deletes
//! the guards allow, counted in a [`Tally`] that becomes the table's report.

use super::{open_or_halt, scope_refused, Prepared, Run, DUPLICATE, KEPT, PARK_BUDGET};
use crate::engine::guard;
use crate::engine::lock;
use crate::engine::progress::Counters;
use crate::engine::scan::{Feed, Page, Read, ScanCost};
use crate::engine::stop::DRAIN;
use crate::engine::writer::{Pending, Queue, WriteOutcome};
use crate::profile::DiffMode;
use crate::pure::bucket::{self, Shard};
use crate::pure::classify::Classifier;
use crate::pure::cost::{self, Footprint, Savings};
use crate::pure::diff::{self, Index, Verdict};
use crate::pure::hash::Digest;
use crate::pure::item::{self, Item};
use crate::pure::plan::{Built, KeyFlaw, Reject, Rejected};
use crate::pure::report::{DiffRead, EntityReport, TableReport};
use crate::pure::status::Phase;
use crate::target::dryrun::{doing, Mode};
use crate::target::IndexSchema;
use crate::target::{Request, TargetError};
use anyhow::{Context, Result};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;

/// The counts of one table's sync, and the hand-over of changed items to the writer.
pub(super) struct Tally<'a> {
    created: u64,
    updated: u64,
    unchanged: u64,
    changed_units: u64,
    unchanged_units: u64,
    /// The size of the items the table holds that have a source row: what a Scan reads of them.
    stored_bytes: u64,
    rejected: Vec<Reject>,
    /// The rejected rows whose key could be built: their place in `rejected`, and the key.
    rejected_keys: Vec<(usize, Digest)>,
    /// The place in `rejected` of the rows whose key could not be built.
    keyless: Vec<usize>,
    /// Rows whose key could not be built that another shard (shard 0) reports: they still hold
    /// this shard's deletes, as any of them may be one of its items. Their count and first key.
    keyless_elsewhere: (usize, Option<String>),
    /// Rows built whose key another shard owns (that shard syncs them).
    other_shards: u64,
    /// How the query could leave those rows out, from what is wrong with their keys.
    leave_out: diff::LeaveOut,
    /// Per entity, for tables with several; empty otherwise.
    entities: Vec<EntityReport>,
    key_names: Vec<&'a str>,
    /// In a dry run, the footprint of each stored item not yet judged, and the table's indexes:
    /// a write is priced as DynamoDB bills it, against the item it replaces.
    footprints: Option<(HashMap<Digest, Footprint>, &'a [IndexSchema])>,
    writer: Option<Queue>,
    bar: indicatif::ProgressBar,
    /// What `ddbsync status` shows of this table (the lease's renewals carry it).
    progress: Arc<Counters>,
}

impl Tally<'_> {
    fn reject(&mut self, entity: usize, reject: Reject, key: Result<Digest, KeyFlaw>, shard: Shard) {
        if !super::reports_reject(shard, key.as_ref().map(|k| *k).map_err(|_| ())) {
            if let Err(flaw) = &key {
                self.leave_out.add(flaw, &reject.key);
                let (count, first) = &mut self.keyless_elsewhere;
                *count += 1;
                first.get_or_insert(reject.key);
            } else {
                self.other_shards += 1;
            }
            return;
        }
        if let Some(e) = self.entities.get_mut(entity) {
            e.rejected += 1;
        }
        self.progress.rejected(1);
        match key {
            Ok(key) => self.rejected_keys.push((self.rejected.len(), key)),
            Err(flaw) => {
                self.keyless.push(self.rejected.len());
                self.leave_out.add(&flaw, &reject.key);
            }
        }
        self.rejected.push(reject);
    }

    async fn take(&mut self, verdict: Verdict, built: Built) {
        let units = match (&mut self.footprints, verdict) {
            (Some((old, indexes)), Verdict::Create | Verdict::Update) => {
                let new = Footprint::of(&built.item, &self.key_names, indexes);
                cost::put_units(old.remove(&built.key).as_ref(), &new)
            }
            (Some((old, _)), Verdict::Skip) => {
                old.remove(&built.key);
                built.units
            }
            _ => built.units,
        };
        if matches!(verdict, Verdict::Skip | Verdict::Update) {
            self.stored_bytes += built.size as u64;
        }
        if let Some(e) = self.entities.get_mut(built.entity) {
            match verdict {
                Verdict::Skip => e.unchanged += 1,
                Verdict::Duplicate => e.rejected += 1,
                Verdict::Create => {
                    (e.created, e.estimated_write_units) = (e.created + 1, e.estimated_write_units + units)
                }
                Verdict::Update => {
                    (e.updated, e.estimated_write_units) = (e.updated + 1, e.estimated_write_units + units)
                }
            }
        }
        match verdict {
            Verdict::Skip => {
                self.unchanged += 1;
                self.unchanged_units += units;
                return;
            }
            Verdict::Duplicate => {
                self.progress.rejected(1);
                let key = item::describe_key(&built.item, &self.key_names);
                self.rejected.push(Reject { key, reason: DUPLICATE.into() });
                return;
            }
            Verdict::Create => self.created += 1,
            Verdict::Update => self.updated += 1,
        }
        self.changed_units += units;
        if let Some(tx) = &self.writer {
            self.bar.inc_length(1);
            // A send fails only if the writer ended early; its outcome reports why.
            let _ = tx.send(Pending { key: built.key, request: Request::Put(built.item), units }).await;
        }
    }
}

/// The next page of a running Scan; never, when there is none.
async fn next_page(feed: &mut Option<Feed>) -> Option<Page> {
    match feed {
        Some(feed) => feed.pages.recv().await,
        None => std::future::pending().await,
    }
}

/// One table's sync. A failure part-way (the source, the Scan, the lost lease) comes back beside the
/// report of what was done before it, so that the run still reports and records it.
pub(super) async fn sync_table(
    run: &Run<'_>,
    p: &Prepared<'_>,
    mut feed: Option<Feed>,
) -> Result<(TableReport, Option<anyhow::Error>)> {
    let table = &p.mapping.table_name;

    let bar = run.printer.writes(table.clone());
    let (counters, on_written) = crate::engine::progress::counting(table, bar.clone());
    let (tx, writer_task) = start_writer(run, p, on_written);
    let mut tally = Tally {
        created: 0,
        updated: 0,
        unchanged: 0,
        changed_units: 0,
        unchanged_units: 0,
        stored_bytes: 0,
        rejected: Vec::new(),
        rejected_keys: Vec::new(),
        keyless: Vec::new(),
        keyless_elsewhere: (0, None),
        other_shards: 0,
        leave_out: Default::default(),
        entities: match p.mapping.is_multi() {
            true => p.mapping.entities.iter().map(|e| EntityReport::named(&e.name)).collect(),
            false => Vec::new(),
        },
        key_names: p.plan.key_names(),
        footprints: (run.mode == Mode::Rehearsal).then(|| (HashMap::new(), p.indexes.as_slice())),
        writer: Some(tx),
        bar: bar.clone(),
        progress: counters.clone(),
    };

    // The source is read while the Scan runs: rows whose key the Scan has returned are judged at
    // once, the others wait in the classifier (see classify.rs).
    let expected = feed.as_ref().map_or(0, |f| f.expected);
    let index = Index::with_capacity((expected + expected / 8) as usize);
    let mut classifier = Classifier::new(index, feed.is_none(), PARK_BUDGET);
    let scan_bar = feed.as_ref().map(|_| run.printer.counter(format!("{table}: reading target hashes")));
    let mut scan_cost = ScanCost::default();
    // Target items found, and (for tables that delete orphans) their keys.
    let mut scanned = 0u64;
    let mut keys: HashMap<Digest, Item> = HashMap::new();
    // The entities' queries are read one after the other into the same diff: the table is one
    // key space, whichever query an item comes from.
    let entities = &p.mapping.entities;
    let mut current = 0;
    let mut stopped: Option<&str> = None;
    // What ended the table early (the source, the Scan, the lease): the writes already made are
    // still reported, and nothing is deleted.
    let mut failure: Option<anyhow::Error> = None;
    // Opening a query may wait long for its first row: a signal or a lost lease ends the wait.
    let mut rows = match open_or_halt(run, &entities[0]).await {
        Ok(rows) => rows,
        Err(halt) => {
            halt.into_state(&mut stopped, &mut failure);
            Box::pin(futures::stream::empty())
        }
    };
    let mut source_done = false;
    while stopped.is_none() && failure.is_none() {
        tokio::select! {
            reason = run.fence.lost(), if !source_done || feed.is_some() => {
                failure = Some(lock::LeaseLost(reason).into());
                break;
            }
            // Enabled only while there is something to read, so that `else` still ends the loop.
            signal = run.stop.wait(), if !source_done || feed.is_some() => {
                stopped = Some(signal);
                break;
            }
            page = next_page(&mut feed), if feed.is_some() => match page {
                Some(page) => {
                    lock::beat();
                    if let Some(bar) = &scan_bar {
                        bar.inc(page.len() as u64);
                    }
                    scanned += page.len() as u64;
                    for seen in page {
                        if let Some(key) = seen.item_key {
                            keys.insert(seen.key, key);
                        }
                        if let (Some(old), Some((footprints, _))) = (seen.old, &mut tally.footprints) {
                            footprints.insert(seen.key, old);
                        }
                        if let Some((verdict, built)) = classifier.scanned(seen.key, seen.stored) {
                            tally.take(verdict, built).await;
                        }
                    }
                }
                None => {
                    let done = feed.take().expect("a running scan").done;
                    let ended = match done.await.context("scan task panicked")? {
                        // DynamoDB refuses the Scan's filter: the mapping's scope, a profile error.
                        Err(TargetError::Invalid(refusal)) if p.mapping.scope.is_some() => {
                            Err(scope_refused(p.mapping, &refusal).into())
                        }
                        other => other.with_context(|| format!("scanning {table}")),
                    };
                    match ended {
                        Ok(cost) => {
                            tracing::info!(table = %table, items = scanned, read_units = cost.read_units, "scanned {scanned} items");
                            scan_cost = cost
                        }
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                    if let Some(bar) = &scan_bar {
                        bar.finish_and_clear();
                    }
                    for (verdict, built) in classifier.scan_finished() {
                        tally.take(verdict, built).await;
                    }
                }
            },
            row = rows.next(), if !source_done && classifier.can_accept() => match row {
                Some(row) => {
                    let row = match row {
                        Ok(row) => row,
                        Err(e) => {
                            failure = Some(e.into());
                            break;
                        }
                    };
                    lock::beat();
                    counters.read(1);
                    match p.plan.entities[current].build(row) {
                        // Another shard's item: it is neither written nor an orphan here.
                        Ok(built) if !run.options.shard.owns(&built.key) => tally.other_shards += 1,
                        Ok(mut built) => {
                            built.entity = current;
                            if let Some((verdict, built)) = classifier.offer(built) {
                                tally.take(verdict, built).await;
                            }
                        }
                        Err(Rejected { reject, key }) => {
                            run.source.rejected_last(&entities[current].query);
                            // A row rejected for a value other than its key still names its
                            // stored item, which stays (stale) instead of becoming an orphan.
                            if let Some(key) = key.as_ref().ok().filter(|k| run.options.shard.owns(k)) {
                                classifier.rejected(*key);
                            }
                            tally.reject(current, reject, key.map_err(|flaw| *flaw), run.options.shard);
                        }
                    }
                }
                None if current + 1 < entities.len() => {
                    current += 1;
                    match open_or_halt(run, &entities[current]).await {
                        Ok(next) => rows = next,
                        Err(halt) => {
                            halt.into_state(&mut stopped, &mut failure);
                            break;
                        }
                    }
                }
                None => source_done = true,
            },
            else => break,
        }
    }
    // A stopped table's query may still be running: dropping its rows cancels it now, not when the
    // run ends.
    drop(rows);

    if let Some(signal) = stopped {
        run.printer.note(format!(
            "{signal}: stopping {table}: no more rows are read; the batches already sent get {} s to finish \
             (a second signal exits at once)",
            DRAIN.as_secs()
        ));
    }
    drop(tally.writer.take());
    counters.phase(Phase::Writing);
    let mut stale = std::collections::HashSet::new();
    for (at, key) in &tally.rejected_keys {
        if classifier.stale(key) {
            stale.insert(*key);
            tally.rejected[*at].reason.push_str(KEPT);
        }
    }
    // A signal after every row was read finds the writes in flight: said as when it comes earlier,
    // so that a run draining its batches is not silent.
    let mut writer_task = writer_task;
    let finished = match stopped {
        Some(_) => writer_task.await,
        None => tokio::select! {
            done = &mut writer_task => done,
            signal = run.stop.wait() => {
                run.printer.note(format!(
                    "{signal}: stopping {table}: every row was read; the batches already sent get {} s to finish \
                     (a second signal exits at once)",
                    DRAIN.as_secs()
                ));
                writer_task.await
            }
        },
    };
    let mut outcome = finished.context("writer task panicked")?;
    // A DynamoDB that stopped answering the writes ends the run (exit 1), not only the batch.
    if let Some(silence) = outcome.silent.take() {
        failure.get_or_insert_with(|| TargetError::Transient(silence).into());
    }
    bar.finish_and_clear();
    // Created and updated count what DynamoDB confirmed: an item not written is taken back from
    // the count it was in (a key the Scan found was an update).
    for key in outcome.failed_keys.iter().flatten() {
        match classifier.in_target(key) {
            true => tally.updated = tally.updated.saturating_sub(1),
            false => tally.created = tally.created.saturating_sub(1),
        }
    }

    // Orphans: deleted only when the mapping asks and the guard allows, after every write. A
    // parameterised query without a scope returns part of the table, so the items it did not
    // return are not orphans (profile validation makes sure such a table does not delete).
    // A stopped run has not read the whole source: what it did not read is not missing.
    let stopped = stopped.or(run.stop.requested());
    let judged = (!p.mapping.takes_params() || p.mapping.scope.is_some())
        && !run.options.sampled
        && stopped.is_none()
        && failure.is_none();
    let orphans = if judged { classifier.unseen() as u64 } else { 0 };
    let mut deletes = Deletes::default();
    // The puts' units, before any delete's: a full rewrite (a clean load) deletes nothing.
    let put_units = match run.mode {
        Mode::Real => outcome.consumed_units,
        Mode::Rehearsal => tally.changed_units as f64,
    };
    // A dry run's deletes, priced as DynamoDB bills them (the item and its index entries).
    let mut delete_units = 0;
    if p.mapping.delete_missing && orphans > 0 {
        let (elsewhere, first_elsewhere) = &tally.keyless_elsewhere;
        let first_keyless = match tally.keyless.first() {
            Some(&at) => tally.rejected[at].key.clone(),
            None => first_elsewhere.clone().unwrap_or_default(),
        };
        let leave_out = &tally.leave_out;
        let keyless = tally.keyless.len() + elsewhere;
        let guard = diff::keyless_guard(orphans, keyless, &first_keyless, leave_out).and_then(|()| {
            let shard = run.options.shard;
            diff::delete_guard(orphans, scanned, run.profile.sync.max_delete_fraction, run.options.allow_mass_delete)
                .map_err(|reason| match shard.is_whole() {
                    true => reason,
                    // The guard judged this shard's range, not the table: with many shards a range
                    // is small, and a routine delete a large share of it.
                    false => format!(
                        "shard {shard} (its range holds {scanned} of the table's items): {reason}; or run fewer \
                         shards, whose ranges are larger"
                    ),
                })
        });
        match guard {
            Err(reason) => deletes.refused = Some(reason),
            Ok(()) => {
                let doomed: Vec<(Digest, Item)> =
                    classifier.unseen_keys().filter_map(|d| keys.remove(d).map(|k| (*d, k))).collect();
                let names = p.plan.key_names();
                deletes.keys = doomed.iter().map(|(_, k)| item::describe_key(k, &names)).collect();
                // Priced as DynamoDB bills them (the item and its index entries), for a rehearsal's
                // figures: its target bills nothing.
                let old = tally.footprints.as_ref().map(|(old, _)| old);
                delete_units = doomed
                    .iter()
                    .map(|(d, _)| old.and_then(|o| o.get(d)).map_or(1, Footprint::delete_units))
                    .sum::<u64>();
                {
                    counters.phase(Phase::Deleting);
                    let done = delete(run, p, doomed).await?;
                    deletes.count = done.written;
                    if !done.failed.is_empty() {
                        // The report lists only what was deleted; the rest are with the rows not
                        // written (no guard refused them: they are not refused deletes).
                        let missed: std::collections::HashSet<&str> =
                            done.failed.iter().map(|r| r.key.as_str()).collect();
                        deletes.keys.retain(|k| !missed.contains(k.as_str()));
                    }
                    outcome.consumed_units += done.consumed_units;
                    outcome.retries += done.retries;
                    outcome.throttled += done.throttled;
                    outcome.failed.extend(done.failed);
                    outcome.failed_keys.extend(done.failed_keys);
                    outcome.unknown += done.unknown;
                }
            }
        }
    }
    let write_units = match run.mode {
        Mode::Real => outcome.consumed_units,
        Mode::Rehearsal => (tally.changed_units + delete_units) as f64,
    };
    // A full rewrite of what this run got to decide: the items written (as billed) and the unchanged
    // ones (estimated); it deletes nothing. Items not written (refused, never sent before a stop or
    // a failure) are left out: the run did not do their work, so it saved nothing on them, and a
    // run that wrote nothing shows no saving.
    let potential_write_units = put_units + tally.unchanged_units as f64;
    let written = tally.created + tally.updated;
    if !run.options.shard.is_whole() {
        tracing::info!(table = %table, shard = %run.options.shard, rows = tally.other_shards, "left {} rows to the other shards", tally.other_shards);
    }
    tracing::info!(
        table = %table,
        items = written,
        created = tally.created,
        updated = tally.updated,
        unchanged = tally.unchanged,
        not_written = outcome.failed.len(),
        write_units,
        dry_run = run.mode == Mode::Rehearsal,
        "wrote {written} items"
    );
    if p.mapping.delete_missing {
        let refused = deletes.refused.is_some();
        tracing::info!(table = %table, items = deletes.count, orphans, refused, "deleted {} items", deletes.count);
    }
    // The hash index's entries, estimated: one write unit each (an entry is keys, bucket and hash,
    // far under 1 KB), for every item written or deleted that has or gets one. Through a mapping
    // without buckets, an item rewritten loses its entry and a new one gets none.
    let indexed = p.indexes.iter().any(|i| i.name == bucket::INDEX_NAME);
    let index_write_units = match (indexed, p.mapping.diff) {
        (false, _) => 0.0,
        (true, DiffMode::Index) => (tally.created + tally.updated + deletes.count) as f64,
        (true, DiffMode::Scan) => (tally.updated + deletes.count) as f64,
    };
    let diff = DiffRead {
        diff: match (&p.read, p.exists && !run.options.clean) {
            (_, false) => "none",
            (Read::Index { .. }, true) => "index",
            (Read::Scan { .. }, true) => "scan",
        },
        index_write_units,
        scan_read_units: matches!(p.read, Read::Index { .. })
            // A shard's Scan reads the whole table: about N times its own items.
            .then(|| {
                scan_units(tally.stored_bytes * u64::from(run.options.shard.count()), run.profile.sync.scan_segments)
            }),
        unbucketed: scan_cost.unbucketed,
    };
    counters.phase(Phase::Done);
    let report = TableReport {
        table: table.clone(),
        table_created: run.options.clean || !p.exists,
        created: tally.created,
        updated: tally.updated,
        unchanged: tally.unchanged,
        stale: stale.len() as u64,
        orphans,
        orphans_counted: judged,
        delete_missing: p.mapping.delete_missing,
        deleted: deletes.count,
        deleted_keys: deletes.keys,
        deletes_refused: deletes.refused,
        write_units,
        read_units: scan_cost.read_units,
        potential_write_units,
        retries: scan_cost.retries + outcome.retries,
        throttled: outcome.throttled,
        cost: Savings::new(&run.profile.prices, write_units, scan_cost.read_units, potential_write_units),
        rejected: tally.rejected,
        entities: tally.entities,
        failed: outcome.failed,
        unknown: outcome.unknown,
        diff,
    };
    Ok((report, failure))
}

/// What a parallel Scan of `bytes` of items in `segments` segments is billed: half a unit per 4 KB
/// (eventually consistent), each segment's pages rounded up, and at least one page per segment.
fn scan_units(bytes: u64, segments: u32) -> f64 {
    let segments = f64::from(segments.max(1));
    let per_segment = (bytes as f64 / segments / 4096.0).ceil().max(1.0);
    segments * per_segment * 0.5
}

#[derive(Default)]
struct Deletes {
    count: u64,
    keys: Vec<String>,
    refused: Option<String>,
}

/// A writer task for one table with the run's settings and shared cap; requests go in through the sender.
pub(super) fn start_writer(
    run: &Run<'_>,
    p: &Prepared<'_>,
    on_written: impl Fn(u64, f64) + Send + 'static,
) -> (Queue, tokio::task::JoinHandle<WriteOutcome>) {
    let key_names = p.plan.key_names().into_iter().map(String::from).collect();
    guard::spawn_writer(
        run.dynamo.clone(),
        (&run.fence, &run.stop),
        (&run.profile.sync, run.cap.clone()),
        (&p.mapping.table_name, key_names),
        on_written,
    )
}

/// Deletes target items by key, through the same writer (batches, pace, retries) as the puts.
pub(super) async fn delete(run: &Run<'_>, p: &Prepared<'_>, doomed: Vec<(Digest, Item)>) -> Result<WriteOutcome> {
    let counters = crate::engine::progress::table(&p.mapping.table_name);
    let (tx, task) = start_writer(run, p, move |n, units| counters.deleted(n, units));
    let table = &p.mapping.table_name;
    let deleting = doing(run.mode, ("deleting", "delete"));
    run.printer.note(format!("{table}: {deleting} {} items that have no source row", doomed.len()));
    for (key, item) in doomed {
        // A delete is billed by the size of the item removed; one unit is the floor.
        if tx.send(Pending { key, request: Request::Delete(item), units: 1 }).await.is_err() {
            break;
        }
    }
    drop(tx);
    task.await.context("writer task panicked")
}
