//! The incremental diff: the target's key → hash index and each source item's verdict. Pure.
//!
//! The index holds a 128-bit key digest and the stored content hash per target item (about 40 bytes
//! with the map's overhead), never the items themselves. Every source item is classified once:
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// `None` when the item carries no (readable) hash: it was not written by ddbsync.
    stored: Option<Digest>,
    seen: bool,
}

/// What the target holds, by key digest: 16 bytes of key and 18 of entry per item, plus the map's
/// slack (at most 2× right after it grows).
#[derive(Default)]
pub struct Index {
    entries: HashMap<Digest, Entry, BuildHasherDefault<DigestHasher>>,
}

impl Index {
    pub fn with_capacity(n: usize) -> Self {
        Index { entries: HashMap::with_capacity_and_hasher(n, Default::default()) }
    }

    /// Records a target item found by the scan.
    pub fn insert(&mut self, key: Digest, stored: Option<Digest>) {
        self.entries.insert(key, Entry { stored, seen: false });
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
            Some(entry) if entry.seen => Verdict::Duplicate,
            Some(entry) => {
                entry.seen = true;
                if entry.stored == Some(hash) {
                    Verdict::Skip
                } else {
                    Verdict::Update
                }
            }
            None => {
                self.entries.insert(key, Entry { stored: Some(hash), seen: true });
                Verdict::Create
            }
        }
    }

    /// Target items no source row produced ("orphans").
    pub fn unseen(&self) -> usize {
        self.entries.values().filter(|e| !e.seen).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        [n; 16]
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
