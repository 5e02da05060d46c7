//! Where an item sits in the diff's hash index, and which shard of a sharded run owns it.
//!
//! Both come from the item's key digest ([`crate::pure::hash::key_digest`]), never from the source:
//! its first two bytes are the item's *slot* (0 to 65,535, uniform because the digest is MD5).
//!
//! - The *bucket* is the slot's top bits: [`BUCKETS`] buckets of 1,024 slots each. A table whose diff
//!   reads the hash index stores it in [`BUCKET_ATTR`], the index's partition key, so that the diff
//!   can Query the index bucket by bucket, in parallel.
//! - Shard K of N owns the slots `s` with `s × N / 65,536 = K`: a contiguous range, every slot in
//!   exactly one shard whatever N is. A shard reads the buckets its range touches and keeps only its
//!   own slots, so ownership never depends on how the target is read (index or Scan).
//!
//! Invariant: the bucket is stored in every item of an indexed table; changing [`slot`] or
//! [`BUCKETS`] would put every item in the wrong bucket (the golden test below freezes them).

use std::fmt;
use std::ops::Range;

use crate::pure::hash::Digest;

/// The attribute holding an item's bucket (a number) in a table whose diff reads the hash index.
pub const BUCKET_ATTR: &str = "_ddbsync_bucket";

/// Buckets per table: enough that 64 shards each read only their own and that a full load's index
/// writes spread over 64 partition key values (DynamoDB allows about 1,000 write units a second on
/// one), few enough that a Query per bucket on a small table costs little (each page is billed at
/// least 4 KB).
pub const BUCKETS: u32 = 64;

/// The hash index's name; it carries the bucket count, so that a table says how its items were
/// bucketed.
pub const INDEX_NAME: &str = "_ddbsync_diff_b64";

/// How many slots there are: the range of two bytes.
pub const SLOTS: u32 = 1 << 16;

/// Most shards a run can be split into.
pub const MAX_SHARDS: u32 = 1024;

/// An item's slot: the first two bytes of its key digest.
pub fn slot(key: &Digest) -> u32 {
    u32::from(u16::from_be_bytes([key[0], key[1]]))
}

/// An item's bucket, 0 to [`BUCKETS`] − 1.
pub fn bucket(key: &Digest) -> u32 {
    slot(key) * BUCKETS / SLOTS
}

/// One shard of a run split N ways (0-based, as Kubernetes' `JOB_COMPLETION_INDEX` and AWS Batch's
/// `AWS_BATCH_JOB_ARRAY_INDEX` count); the whole run is shard 0 of 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
}

impl Shard {
    /// The unsharded run: it owns every slot.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; the message says what is wrong and what is allowed.
    pub fn new(index: u32, count: u32) -> Result<Shard, String> {
        if count == 0 || count > MAX_SHARDS {
            return Err(format!("{count} shards: a run is split into 1 to {MAX_SHARDS} shards"));
        }
        if index >= count {
            return Err(format!(
                "shard {index} of {count}: shards are numbered from 0 to {} (0-based, like JOB_COMPLETION_INDEX)",
                count - 1
            ));
        }
        Ok(Shard { index, count })
    }

    /// Parses `K/N` (`--shard 2/8`).
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("\"{text}\" is not a shard: write K/N, shard K (from 0) of N, such as 0/4"))?;
        let number = |part: &str, what: &str| {
            let n = part
                .trim()
                .parse::<u64>()
                .map_err(|_| format!("\"{text}\": {what} \"{part}\" is not a whole number; write K/N, such as 0/4"))?;
            // Beyond the range, said as such by `new`.
            Ok::<u32, String>(u32::try_from(n).unwrap_or(u32::MAX))
        };
        Shard::new(number(k, "the shard")?, number(n, "the shard count")?)
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// Whether the item with this key digest is this shard's.
    pub fn owns(&self, key: &Digest) -> bool {
        self.is_whole() || u64::from(slot(key)) * u64::from(self.count) / u64::from(SLOTS) == u64::from(self.index)
    }

    /// The slots this shard owns: `ceil(K × 65,536 / N)` up to `ceil((K + 1) × 65,536 / N)`.
    pub fn slots(&self) -> Range<u32> {
        let bound = |k: u32| ((u64::from(k) * u64::from(SLOTS)).div_ceil(u64::from(self.count))) as u32;
        bound(self.index)..bound(self.index + 1)
    }

    /// The buckets holding this shard's slots (a bucket on the boundary of two shards is read by
    /// both, each keeping its own slots).
    pub fn buckets(&self) -> Range<u32> {
        let slots = self.slots();
        if slots.is_empty() {
            return 0..0;
        }
        slots.start * BUCKETS / SLOTS..(slots.end - 1) * BUCKETS / SLOTS + 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::hash;
    use crate::pure::item::AttributeValue;

    fn digest_of_slot(slot: u32) -> Digest {
        let mut d = [0u8; 16];
        d[..2].copy_from_slice(&(slot as u16).to_be_bytes());
        d
    }

    #[test]
    fn golden_buckets_are_frozen() {
        // Stored in every item of an indexed table: these must never change. Computed apart from
        // the code: MD5 of the canonical key encoding (`S`, 4-byte length, bytes), first two bytes.
        let s = |v: &str| AttributeValue::S(v.into());
        let n = |v: &str| AttributeValue::N(v.into());
        let cases = [
            (vec![s("LESSON#1")], 10_092, 9),
            (vec![n("7")], 48_321, 47),
            (vec![s("TENANT#a"), s("INVOICE#2024-01")], 34_431, 33),
        ];
        for (values, want_slot, want_bucket) in cases {
            let key = hash::key_digest(&values.iter().collect::<Vec<_>>());
            assert_eq!((slot(&key), bucket(&key)), (want_slot, want_bucket), "{values:?}");
        }
        assert_eq!(INDEX_NAME, format!("_ddbsync_diff_b{BUCKETS}"));
    }

    #[test]
    fn every_slot_is_owned_by_exactly_one_shard_and_read_from_its_bucket() {
        for count in [1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 100, 1000, MAX_SHARDS] {
            let shards: Vec<Shard> = (0..count).map(|k| Shard::new(k, count).unwrap()).collect();
            let mut next = 0;
            for shard in &shards {
                let slots = shard.slots();
                assert_eq!(slots.start, next, "{shard}: contiguous, no gap or overlap");
                next = slots.end;
                for probe in [slots.start, slots.end.saturating_sub(1)] {
                    if slots.contains(&probe) {
                        let key = digest_of_slot(probe);
                        assert!(shard.owns(&key), "{shard} owns its slot {probe}");
                        assert!(shard.buckets().contains(&bucket(&key)), "{shard} reads the bucket of {probe}");
                    }
                }
            }
            assert_eq!(next, SLOTS, "{count} shards cover every slot");
        }
        for slot in (0..SLOTS).step_by(97) {
            let key = digest_of_slot(slot);
            let owners = (0..7).filter(|&k| Shard::new(k, 7).unwrap().owns(&key)).count();
            assert_eq!(owners, 1, "slot {slot}");
        }
    }

    #[test]
    fn shards_read_only_the_buckets_of_their_slots() {
        let all: Vec<u32> = (0..4).flat_map(|k| Shard::new(k, 4).unwrap().buckets()).collect();
        assert_eq!(all, (0..BUCKETS).collect::<Vec<_>>(), "4 shards: 16 buckets each, none read twice");
        assert_eq!(Shard::WHOLE.buckets(), 0..BUCKETS);
        assert_eq!(Shard::new(1, 3).unwrap().buckets(), 21..43, "boundary buckets are read by both neighbours");
        assert_eq!(Shard::new(999, 1000).unwrap().buckets(), 63..64);
    }

    #[test]
    fn shard_specs_are_checked() {
        assert_eq!(Shard::parse("2/8").unwrap(), Shard::new(2, 8).unwrap());
        assert_eq!(Shard::parse(" 0 / 1 ").unwrap(), Shard::WHOLE);
        assert_eq!(Shard::parse("3/8").unwrap().to_string(), "3/8");
        for (bad, says) in [
            ("8/8", "numbered from 0 to 7"),
            ("0/0", "1 to 1024 shards"),
            ("0/5000", "1 to 1024 shards"),
            ("0/99999999999", "1 to 1024 shards"),
            ("99999999999/4", "numbered from 0 to 3"),
            ("-1/4", "\"-1\" is not a whole number"),
            ("2", "write K/N"),
            ("a/4", "\"a\" is not a whole number"),
            ("1/", "\"\" is not a whole number"),
        ] {
            let err = Shard::parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
