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
    let counters = Arc::new(Counters::default());
    counters.phase(Phase::Reading);
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
}
