//! Classifying source items while the target's Scan is still running. Pure.
//!
//! A row can be judged as soon as the Scan has returned its key (update or skip); a row whose key
//! the Scan has not returned yet may be new or may simply not have been scanned yet, so it is
//! parked until either the Scan returns its key or the Scan ends (then it is new). Parked items are
//! held within a byte budget, counted in memory ([`item::memory_size`]: a small item with many
//! attributes costs several times its DynamoDB size): when it is full the caller stops reading the
//! source until the Scan releases some, so memory stays bounded and the worst case is the old order,
//! scan then source.
//!
//! A row rejected with a key (its key columns were fine, another value was not) still names its
//! stored item: that item is kept, stale, and is no orphan.
//!
//! Invariant: every item offered comes out exactly once, with the verdict the diff would give it
//! after a complete Scan; orphans are target items whose key no source row gave, rejected or not.

use std::collections::{HashMap, HashSet};

use crate::pure::diff::{Index, Verdict};
use crate::pure::hash::Digest;
use crate::pure::item;
use crate::pure::plan::Built;

pub struct Classifier {
    index: Index,
    /// Items waiting for the Scan, with the memory each one holds.
    parked: HashMap<Digest, (Built, usize)>,
    parked_bytes: usize,
    budget: usize,
    scan_done: bool,
    /// Keys of rejected rows: their stored items are not orphans. As few as the rejects.
    rejected: HashSet<Digest>,
}

impl Classifier {
    /// `index` holds what is already known of the target; `scan_done` says whether that is all of it.
    pub fn new(index: Index, scan_done: bool, budget: usize) -> Classifier {
        Classifier { index, parked: HashMap::new(), parked_bytes: 0, budget, scan_done, rejected: HashSet::new() }
    }

    /// Whether the caller may read another source row (false while the parking budget is full).
    pub fn can_accept(&self) -> bool {
        self.scan_done || self.parked_bytes < self.budget
    }

    /// A source item: its verdict now, or `None` while it waits for the Scan.
    pub fn offer(&mut self, built: Built) -> Option<(Verdict, Built)> {
        if self.scan_done || self.index.contains(&built.key) {
            return Some((self.index.classify(built.key, built.hash), built));
        }
        if self.parked.contains_key(&built.key) {
            return Some((Verdict::Duplicate, built));
        }
        let bytes = item::memory_size(&built.item);
        self.parked_bytes += bytes;
        self.parked.insert(built.key, (built, bytes));
        None
    }

    /// A target item found by the Scan; releases the parked item with that key, if any.
    pub fn scanned(&mut self, key: Digest, stored: Option<Digest>) -> Option<(Verdict, Built)> {
        self.index.insert(key, stored);
        let (built, bytes) = self.parked.remove(&key)?;
        self.parked_bytes -= bytes;
        Some((self.index.classify(built.key, built.hash), built))
    }

    /// The Scan has ended: every parked item is new.
    pub fn scan_finished(&mut self) -> Vec<(Verdict, Built)> {
        self.scan_done = true;
        self.parked_bytes = 0;
        let parked: Vec<Built> = self.parked.drain().map(|(_, (b, _))| b).collect();
        parked.into_iter().map(|b| (self.index.classify(b.key, b.hash), b)).collect()
    }

    /// A source row with this key was rejected: whatever the target holds under it stays.
    pub fn rejected(&mut self, key: Digest) {
        self.rejected.insert(key);
    }

    /// Whether a rejected row's key names a stored item that no other row rewrote, which is
    /// therefore kept as it was: stale. Meaningful once the Scan and the source have ended.
    pub fn stale(&self, key: &Digest) -> bool {
        self.rejected.contains(key) && self.index.is_unseen(key)
    }

    /// Whether the Scan found `key` in the target: a write of it replaces an item.
    pub fn in_target(&self, key: &Digest) -> bool {
        self.index.was_stored(key)
    }

    /// Target items no source row produced (orphans); meaningful once the Scan and the source
    /// have ended.
    pub fn unseen(&self) -> usize {
        self.unseen_keys().count()
    }

    /// Their key digests.
    pub fn unseen_keys(&self) -> impl Iterator<Item = &Digest> {
        self.index.unseen_keys().filter(|k| !self.rejected.contains(*k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::{AttributeValue, Item};

    fn built(key: u8, hash: u8) -> Built {
        Built { item: Item::new(), key: [key; 16], hash: [hash; 16], size: 100, units: 1, entity: 0 }
    }

    fn verdict(out: Option<(Verdict, Built)>) -> Option<(Verdict, u8)> {
        out.map(|(v, b)| (v, b.key[0]))
    }

    #[test]
    fn items_already_scanned_are_judged_at_once() {
        let mut c = Classifier::new(Index::default(), false, 1000);
        assert_eq!(c.scanned([1; 16], Some([10; 16])).map(|(v, _)| v), None);
        c.scanned([2; 16], Some([20; 16]));
        assert_eq!(verdict(c.offer(built(1, 10))), Some((Verdict::Skip, 1)));
        assert_eq!(verdict(c.offer(built(2, 21))), Some((Verdict::Update, 2)));
    }

    #[test]
    fn unknown_keys_wait_for_the_scan() {
        let mut c = Classifier::new(Index::default(), false, 1000);
        assert_eq!(verdict(c.offer(built(3, 30))), None, "parked");
        assert_eq!(verdict(c.offer(built(4, 40))), None, "parked");
        // The Scan finds key 3 unchanged: released as a skip.
        assert_eq!(verdict(c.scanned([3; 16], Some([30; 16]))), Some((Verdict::Skip, 3)));
        // Key 4 never shows up: new.
        let rest: Vec<_> = c.scan_finished().into_iter().map(|(v, b)| (v, b.key[0])).collect();
        assert_eq!(rest, vec![(Verdict::Create, 4)]);
        // After the Scan, everything is judged at once.
        assert_eq!(verdict(c.offer(built(5, 50))), Some((Verdict::Create, 5)));
        assert_eq!(c.unseen(), 0);
    }

    #[test]
    fn duplicates_are_caught_parked_or_not() {
        let mut c = Classifier::new(Index::default(), false, 1000);
        assert_eq!(verdict(c.offer(built(6, 60))), None);
        assert_eq!(verdict(c.offer(built(6, 61))), Some((Verdict::Duplicate, 6)));
        c.scanned([7; 16], Some([70; 16]));
        assert_eq!(verdict(c.offer(built(7, 70))), Some((Verdict::Skip, 7)));
        assert_eq!(verdict(c.offer(built(7, 70))), Some((Verdict::Duplicate, 7)));
    }

    /// An item of fifty small attributes: about 500 bytes in DynamoDB, several KB in memory.
    fn many_attributes(key: u8) -> Built {
        let item: Item = (0..50).map(|i| (format!("a{i}"), AttributeValue::N(i.to_string()))).collect();
        let size = item::item_size(&item);
        Built { item, size, ..built(key, key) }
    }

    #[test]
    fn the_budget_stops_the_source_until_the_scan_releases_items() {
        let one = item::memory_size(&many_attributes(0).item);
        assert!(one > 5 * many_attributes(0).size, "{one}");
        // Room for two and a half items in memory: ten times what three weigh in DynamoDB.
        let mut c = Classifier::new(Index::default(), false, one * 5 / 2);
        c.offer(many_attributes(1));
        c.offer(many_attributes(2));
        assert!(c.can_accept());
        c.offer(many_attributes(3));
        assert!(!c.can_accept(), "three items parked, room for two and a half");
        c.scanned([2; 16], Some([2; 16]));
        assert!(c.can_accept());
        c.scan_finished();
        assert!(c.can_accept());
    }

    #[test]
    fn a_rejected_key_is_no_orphan_but_stale() {
        let mut c = Classifier::new(Index::default(), false, 1000);
        // Rejected before the Scan returns its key, and after.
        c.rejected([1; 16]);
        c.scanned([1; 16], Some([10; 16]));
        c.scanned([2; 16], Some([20; 16]));
        c.rejected([2; 16]);
        c.scanned([3; 16], Some([30; 16]));
        c.rejected([4; 16]);
        c.scan_finished();
        assert_eq!(c.unseen(), 1);
        assert_eq!(c.unseen_keys().collect::<Vec<_>>(), vec![&[3; 16]], "only key 3 has no source row");
        assert!(c.stale(&[1; 16]) && c.stale(&[2; 16]));
        assert!(!c.stale(&[3; 16]), "an orphan, not a rejected row");
        assert!(!c.stale(&[4; 16]), "nothing stored under key 4");
    }

    #[test]
    fn a_rejected_key_another_row_wrote_is_not_stale() {
        let mut c = Classifier::new(Index::default(), true, 0);
        c.rejected([1; 16]);
        assert_eq!(verdict(c.offer(built(1, 1))), Some((Verdict::Create, 1)), "not a duplicate of the reject");
        assert!(!c.stale(&[1; 16]));
        let mut index = Index::default();
        index.insert([2; 16], Some([2; 16]));
        let mut c = Classifier::new(index, true, 0);
        c.rejected([2; 16]);
        assert_eq!(verdict(c.offer(built(2, 3))), Some((Verdict::Update, 2)));
        assert!(!c.stale(&[2; 16]), "rewritten from the other row");
        assert_eq!(c.unseen(), 0);
    }

    #[test]
    fn a_complete_index_judges_everything_at_once() {
        let mut index = Index::default();
        index.insert([1; 16], Some([1; 16]));
        let mut c = Classifier::new(index, true, 0);
        assert_eq!(verdict(c.offer(built(1, 1))), Some((Verdict::Skip, 1)));
        assert_eq!(verdict(c.offer(built(2, 2))), Some((Verdict::Create, 2)));
        assert_eq!(c.unseen(), 0);
    }
}
