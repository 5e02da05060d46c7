//! What the running command has done so far, per table, for `ddbsync status`: the run lock's
//! renewals ([`crate::engine::lock`]) copy each table's figures into its lease item, so progress
//! costs no write of its own. Process-wide, as the lock is: a process runs one command.
//!
//! The counters are atomics, bumped on the hot path (a source row, a batch written) without a lock;
//! only registering a table takes the map's mutex.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use chrono::Utc;

use crate::pure::status::{Phase, TableProgress};

/// One table's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// The [`Phase`]'s place in [`Phase::ALL`].
    phase: AtomicU8,
    read: AtomicU64,
    written: AtomicU64,
    deleted: AtomicU64,
    rejected: AtomicU64,
    /// Write units in thousandths: an atomic cannot hold a float.
    milli_units: AtomicU64,
    /// An apply's: its plan's changes to the table, known before it starts ([`planned`]).
    planned: Option<u64>,
    already_applied: AtomicU64,
    drifted: AtomicU64,
}

impl Counters {
    pub fn phase(&self, phase: Phase) {
        let at = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        self.phase.store(at as u8, Ordering::Relaxed);
    }

    pub fn read(&self, rows: u64) {
        self.read.fetch_add(rows, Ordering::Relaxed);
    }

    pub fn rejected(&self, rows: u64) {
        self.rejected.fetch_add(rows, Ordering::Relaxed);
    }

    /// Items written, and the write units DynamoDB reported for them.
    pub fn written(&self, items: u64, units: f64) {
        self.written.fetch_add(items, Ordering::Relaxed);
        self.units(units);
    }

    /// Items deleted, and their write units.
    pub fn deleted(&self, items: u64, units: f64) {
        self.deleted.fetch_add(items, Ordering::Relaxed);
        self.units(units);
    }

    /// An apply's change the target already held.
    pub fn already_applied(&self, changes: u64) {
        self.already_applied.fetch_add(changes, Ordering::Relaxed);
    }

    /// An apply's change skipped as drift.
    pub fn drifted(&self, changes: u64) {
        self.drifted.fetch_add(changes, Ordering::Relaxed);
    }

    fn units(&self, units: f64) {
        if units.is_finite() && units > 0.0 {
            self.milli_units.fetch_add((units * 1000.0).round() as u64, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> TableProgress {
        TableProgress {
            phase: Phase::ALL.get(self.phase.load(Ordering::Relaxed) as usize).copied().unwrap_or(Phase::Waiting),
            read: self.read.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            deleted: self.deleted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            write_units: self.milli_units.load(Ordering::Relaxed) as f64 / 1000.0,
            planned: self.planned,
            already_applied: self.already_applied.load(Ordering::Relaxed),
            drifted: self.drifted.load(Ordering::Relaxed),
            at: Utc::now(),
        }
    }
}

fn tables() -> &'static Mutex<BTreeMap<String, Arc<Counters>>> {
    static TABLES: OnceLock<Mutex<BTreeMap<String, Arc<Counters>>>> = OnceLock::new();
    TABLES.get_or_init(Default::default)
}

/// Fresh counters for `table`, in the [`Phase::Reading`] phase, from now on in its lease's
/// renewals: a step of the run starts on it (a protected `--clean`'s backup, then the sync, each
/// counts its own).
pub fn start(name: &str) -> Arc<Counters> {
    register(name, Counters::default(), Phase::Reading)
}

/// [`start`]'s counters for `table`, and a writer's callback that counts each batch written both
/// in them and on the terminal's progress bar `bar`.
pub fn counting(name: &str, bar: indicatif::ProgressBar) -> (Arc<Counters>, impl Fn(u64, f64) + Send + 'static) {
    let counters = start(name);
    let counted = counters.clone();
    (counters, move |items, units| {
        bar.inc(items);
        counted.written(items, units);
    })
}

/// An apply's counters for `table`, `waiting` with its plan's `changes` until it starts on the
/// table: every table's total is in its lease from the start, so the ETA counts the tables to come.
pub fn planned(name: &str, changes: u64) -> Arc<Counters> {
    register(name, Counters { planned: Some(changes), ..Counters::default() }, Phase::Waiting)
}

fn register(name: &str, counters: Counters, phase: Phase) -> Arc<Counters> {
    let counters = Arc::new(counters);
    counters.phase(phase);
    let mut tables = tables().lock().unwrap_or_else(|e| e.into_inner());
    tables.insert(name.to_string(), counters.clone());
    counters
}

/// Leaves `table` without figures (`waiting` in its lease) until a step [`start`]s on it.
pub fn forget(name: &str) {
    tables().lock().unwrap_or_else(|e| e.into_inner()).remove(name);
}

/// The counters of `table` as the current step keeps them ([`start`]ed if none is).
pub fn table(name: &str) -> Arc<Counters> {
    let existing = tables().lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned();
    existing.unwrap_or_else(|| start(name))
}

/// The figures of `table` now; `None` until the run started on it.
pub fn snapshot(table: &str) -> Option<TableProgress> {
    let tables = tables().lock().unwrap_or_else(|e| e.into_inner());
    tables.get(table).map(|c| c.snapshot())
}

static COMMAND: Mutex<&'static str> = Mutex::new("unknown");

/// The command this process runs, as its leases name it (`sync`, `verify --repair`, …).
pub fn set_command(command: &'static str) {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner()) = command;
}

pub fn command() -> &'static str {
    *COMMAND.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tables_counters_add_up_and_carry_their_phase() {
        let c = start("progress-test-table");
        c.read(3);
        c.written(2, 2.5);
        c.deleted(1, 1.0);
        c.rejected(1);
        c.phase(Phase::Deleting);
        let p = snapshot("progress-test-table").unwrap();
        assert_eq!((p.phase, p.read, p.written, p.deleted, p.rejected), (Phase::Deleting, 3, 2, 1, 1));
        assert_eq!(p.write_units, 3.5);
        assert_eq!(snapshot("progress-no-such-table"), None);
        // The next step on the table counts from zero; the deletes of this one join its counters.
        table("progress-test-table").deleted(1, 1.0);
        assert_eq!(snapshot("progress-test-table").unwrap().deleted, 2);
        start("progress-test-table");
        let p = snapshot("progress-test-table").unwrap();
        assert_eq!((p.phase, p.read, p.deleted, p.write_units), (Phase::Reading, 0, 0, 0.0));
        forget("progress-test-table");
        assert_eq!(snapshot("progress-test-table"), None);
    }

    #[test]
    fn an_applys_counters_carry_its_plans_total_and_the_changes_not_written() {
        let c = planned("progress-apply-table", 155);
        assert_eq!(snapshot("progress-apply-table").unwrap().phase, Phase::Waiting);
        c.phase(Phase::Writing);
        c.written(12, 12.0);
        c.already_applied(2);
        c.drifted(1);
        let p = snapshot("progress-apply-table").unwrap();
        assert_eq!((p.planned, p.written, p.already_applied, p.drifted), (Some(155), 12, 2, 1));
        // The table's counters as the apply finds them again.
        assert_eq!(table("progress-apply-table").snapshot().planned, Some(155));
        assert_eq!(start("progress-apply-table").snapshot().planned, None, "a sync's counters have none");
        forget("progress-apply-table");
    }
}
