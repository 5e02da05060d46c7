//! The incremental diff: the target's key → hash index and each source item's verdict. Pure.
//!
//! The index holds, per target item, the 128-bit key digest, the first 64 bits of the stored content
//! hash and a flag byte: 25 bytes plus one control byte of the map, so 30 to 60 bytes per item
//! depending on how full the map is, never the items themselves. Comparing 64 bits of an MD5 digest
//! mistakes a changed item for an unchanged one with probability 2⁻⁶⁴. Every source item is classified once:
//! absent from the target → create, different or missing hash → update, same hash → skip (no write
//! at all). A key seen twice in one run is a duplicate: the second row is rejected rather than
//! letting two rows overwrite each other in an order nobody chose.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::hash::Digest;

/// Key digests are MD5 output, already uniformly spread: their first eight bytes are the hash.
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as a length prefix, then its bytes: both fold into the first eight bytes.
        for chunk in bytes.chunks(8).take(1) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Create,
    Update,
    Skip,
    Duplicate,
}

/// The first half of a content hash: what the index compares.
type Short = [u8; 8];

fn short(hash: &Digest) -> Short {
    hash[..8].try_into().expect("16 bytes")
}

const HAS_HASH: u8 = 1;
const SEEN: u8 = 2;
/// Not in the target: a source item the diff created.
const CREATED: u8 = 4;

/// Byte-aligned on purpose: no padding between the map's keys and entries.
#[derive(Debug, Clone, Copy)]
struct Entry {
    stored: Short,
    flags: u8,
}

/// What the target holds, by key digest.
#[derive(Default)]
pub struct Index {
    entries: HashMap<Digest, Entry, BuildHasherDefault<DigestHasher>>,
}

impl Index {
    pub fn with_capacity(n: usize) -> Self {
        Index { entries: HashMap::with_capacity_and_hasher(n, Default::default()) }
    }

    /// Records a target item found by the scan; `stored` is `None` when it has no (readable) hash,
    /// i.e. it was not written by ddbsync.
    pub fn insert(&mut self, key: Digest, stored: Option<Digest>) {
        let entry = match stored {
            Some(hash) => Entry { stored: short(&hash), flags: HAS_HASH },
            None => Entry { stored: [0; 8], flags: 0 },
        };
        self.entries.insert(key, entry);
    }

    pub fn contains(&self, key: &Digest) -> bool {
        self.entries.contains_key(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The verdict for a source item, which is then remembered as seen.
    pub fn classify(&mut self, key: Digest, hash: Digest) -> Verdict {
        match self.entries.get_mut(&key) {
            Some(entry) if entry.flags & SEEN != 0 => Verdict::Duplicate,
            Some(entry) => {
                entry.flags |= SEEN;
                if entry.flags & HAS_HASH != 0 && entry.stored == short(&hash) {
                    Verdict::Skip
                } else {
                    Verdict::Update
                }
            }
            None => {
                self.entries.insert(key, Entry { stored: short(&hash), flags: HAS_HASH | SEEN | CREATED });
                Verdict::Create
            }
        }
    }

    /// Whether the target held an item with this key (a write of it replaces that item).
    pub fn was_stored(&self, key: &Digest) -> bool {
        self.entries.get(key).is_some_and(|e| e.flags & CREATED == 0)
    }

    /// Target items no source row produced ("orphans").
    pub fn unseen(&self) -> usize {
        self.entries.values().filter(|e| e.flags & SEEN == 0).count()
    }

    /// The key digests of those items.
    pub fn unseen_keys(&self) -> impl Iterator<Item = &Digest> {
        self.entries.iter().filter(|(_, e)| e.flags & SEEN == 0).map(|(k, _)| k)
    }

    /// Whether the target holds an item with this key that no source item has claimed.
    pub fn is_unseen(&self, key: &Digest) -> bool {
        self.entries.get(key).is_some_and(|e| e.flags & SEEN == 0)
    }
}

/// The mass-delete guard: deleting `orphans` of the `target` items the table held is allowed when it
/// is at most `max_fraction` of them, or when the run says so; otherwise, why not.
pub fn delete_guard(orphans: u64, target: u64, max_fraction: f64, allowed: bool) -> Result<(), String> {
    if orphans == 0 || allowed || orphans as f64 <= max_fraction * target as f64 {
        return Ok(());
    }
    Err(format!(
        "not deleted: {orphans} of {target} items ({:.1}%) have no source row, over the {:.0}% guard \
         (sync.max_delete_fraction); if the source is right, run again with --allow-mass-delete",
        100.0 * orphans as f64 / target.max(1) as f64,
        100.0 * max_fraction
    ))
}

/// The SQL conditions that leave a table's keyless rows out of its query (`f IS DISTINCT FROM
/// 'NaN'`), gathered from each row's reason: the advice of [`keyless_guard`] then matches what is
/// wrong with them. Each distinct condition is kept once, and all of them are shown, so the filter
/// can be pasted whole. They are bounded by the plan, not by the source: one per key column and
/// kind of flaw (NULL, empty, NaN, each infinity, a JSON container), whatever the rows hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaveOut {
    conditions: Vec<String>,
    /// Some row's flaw has no such condition (a number beyond DynamoDB's range, say).
    more: bool,
}

impl LeaveOut {
    pub fn add(&mut self, condition: Option<String>) {
        match condition {
            Some(c) if self.conditions.contains(&c) => {}
            Some(c) => self.conditions.push(c),
            None => self.more = true,
        }
    }

    /// ` (WHERE a IS NOT NULL AND f IS DISTINCT FROM 'NaN')`, every condition, valid SQL as shown;
    /// when some row's flaw has no condition, where its reason is.
    fn clause(&self) -> String {
        const OTHERS: &str = "each rejected row's reason says what is wrong with its key";
        match (self.conditions.is_empty(), self.more) {
            (true, _) => format!(" ({OTHERS})"),
            (false, false) => format!(" (WHERE {})", self.conditions.join(" AND ")),
            (false, true) => format!(
                " (WHERE {}; that leaves out some of them, and for the others {OTHERS})",
                self.conditions.join(" AND ")
            ),
        }
    }
}

/// Deletes wait while source rows have no key (a NULL, empty, NaN or infinite key column, one a
/// template uses included): such a row may be what any of the orphans was written from, and
/// deleting them would remove an item whose row is broken, not gone. `first` names one of those
/// rows; `leave_out` says how the query could leave them out.
pub fn keyless_guard(orphans: u64, keyless: usize, first: &str, leave_out: &LeaveOut) -> Result<(), String> {
    if orphans == 0 || keyless == 0 {
        return Ok(());
    }
    Err(format!(
        "not deleted: {orphans} items have no source row, but {keyless} source rows have no key (first: {first}), and \
         their stored items may be among them; fix those rows or leave them out of the query{}, then run again",
        leave_out.clause()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        [n; 16]
    }

    #[test]
    fn a_created_key_is_not_taken_for_a_stored_one() {
        let mut index = Index::default();
        index.insert(d(1), Some(d(10)));
        assert_eq!(index.classify(d(1), d(11)), Verdict::Update);
        assert_eq!(index.classify(d(2), d(20)), Verdict::Create);
        assert!(index.was_stored(&d(1)));
        assert!(!index.was_stored(&d(2)), "created by the diff, not stored");
        assert!(!index.was_stored(&d(3)));
    }

    #[test]
    fn classifies_created_updated_skipped() {
        let mut index = Index::default();
        index.insert(d(1), Some(d(10)));
        index.insert(d(2), Some(d(20)));
        index.insert(d(3), None);
        index.insert(d(4), Some(d(40)));
        assert_eq!(index.classify(d(1), d(10)), Verdict::Skip);
        assert_eq!(index.classify(d(2), d(21)), Verdict::Update);
        assert_eq!(index.classify(d(3), d(30)), Verdict::Update, "an item without a stored hash is rewritten");
        assert_eq!(index.classify(d(5), d(50)), Verdict::Create);
        assert_eq!(index.unseen(), 1, "key 4 has no source row");
    }

    #[test]
    fn the_delete_guard_stops_mass_deletes() {
        assert_eq!(delete_guard(10, 100, 0.1, false), Ok(()), "exactly 10 %");
        let refused = delete_guard(11, 100, 0.1, false).unwrap_err();
        assert!(refused.starts_with("not deleted: 11 of 100 items (11.0%) have no source row, over the 10% guard"));
        assert_eq!(delete_guard(100, 100, 0.1, true), Ok(()), "--allow-mass-delete");
        assert!(delete_guard(5, 5, 0.1, false).is_err(), "an empty source never empties a table");
        assert_eq!(delete_guard(0, 0, 0.1, false), Ok(()));
    }

    #[test]
    fn rows_without_a_key_hold_the_deletes() {
        let null = LeaveOut { conditions: vec!["id IS NOT NULL".into()], more: false };
        assert_eq!(keyless_guard(3, 0, "", &LeaveOut::default()), Ok(()));
        assert_eq!(keyless_guard(0, 2, "id=<missing>", &null), Ok(()), "nothing to delete, nothing held");
        let held = keyless_guard(3, 2, "id=<missing>", &null).unwrap_err();
        assert_eq!(
            held,
            "not deleted: 3 items have no source row, but 2 source rows have no key (first: id=<missing>), and their \
             stored items may be among them; fix those rows or leave them out of the query (WHERE id IS NOT NULL), \
             then run again"
        );
    }

    #[test]
    fn the_advice_matches_what_is_wrong_with_the_keys() {
        let mut leave_out = LeaveOut::default();
        for condition in ["f IS DISTINCT FROM 'NaN'", "f IS DISTINCT FROM 'Infinity'", "f IS DISTINCT FROM 'NaN'"] {
            leave_out.add(Some(condition.into()));
        }
        assert_eq!(
            leave_out.clause(),
            " (WHERE f IS DISTINCT FROM 'NaN' AND f IS DISTINCT FROM 'Infinity')",
            "each condition once"
        );
        leave_out.add(None);
        assert_eq!(
            leave_out.clause(),
            " (WHERE f IS DISTINCT FROM 'NaN' AND f IS DISTINCT FROM 'Infinity'; that leaves out some of them, and for \
             the others each rejected row's reason says what is wrong with its key)",
            "not every row covered: the filter shown is whole, and says where the rest is"
        );
        let mut unknown = LeaveOut::default();
        unknown.add(None);
        assert_eq!(unknown.clause(), " (each rejected row's reason says what is wrong with its key)");
        // Every distinct condition is shown, none cut short.
        let mut many = LeaveOut::default();
        for i in 0..6 {
            many.add(Some(format!("c{i} IS NOT NULL")));
        }
        let clause = many.clause();
        assert!(!clause.contains('…'), "{clause}");
        assert!(clause.contains("c0 IS NOT NULL AND") && clause.ends_with("c5 IS NOT NULL)"), "{clause}");
    }

    #[test]
    fn unseen_keys_are_the_orphans() {
        let mut index = Index::default();
        index.insert(d(1), Some(d(10)));
        index.insert(d(2), Some(d(20)));
        index.classify(d(1), d(10));
        assert_eq!(index.unseen_keys().collect::<Vec<_>>(), vec![&d(2)]);
    }

    #[test]
    fn entries_stay_small() {
        assert_eq!(std::mem::size_of::<(Digest, Entry)>(), 25);
    }

    #[test]
    fn digests_spread_over_the_map() {
        // Digests differing only after their first eight bytes still find their own entries.
        let mut index = Index::default();
        for i in 0..1000u16 {
            let mut key = [7u8; 16];
            key[14..].copy_from_slice(&i.to_be_bytes());
            index.insert(key, Some(d(1)));
        }
        assert_eq!(index.len(), 1000);
        let mut key = [7u8; 16];
        key[14..].copy_from_slice(&999u16.to_be_bytes());
        assert_eq!(index.classify(key, d(1)), Verdict::Skip);
    }

    #[test]
    fn a_key_seen_twice_is_a_duplicate() {
        let mut index = Index::default();
        index.insert(d(1), Some(d(10)));
        assert_eq!(index.classify(d(1), d(10)), Verdict::Skip);
        assert_eq!(index.classify(d(1), d(11)), Verdict::Duplicate);
        assert_eq!(index.classify(d(9), d(90)), Verdict::Create);
        assert_eq!(index.classify(d(9), d(90)), Verdict::Duplicate);
    }
}
