//! Prices and cost arithmetic. Pure.
//!
//! On-demand prices per region come from a dated table (DynamoDB Standard table class, after the
//! 2024-11-01 price cut); a profile's `[prices]` overrides them, and the report says which was used.
//!
//! [`Footprint`] is DynamoDB's billing of one write, so that a dry run prices what the real run
//! will be billed: a put is billed on the larger of the item before and after (per started KB), a
//! delete on the item removed (one unit at least), and each secondary index on the change to the
//! entry it holds: nothing when the entry stays as it was, the entry's units when it appears,
//! disappears or changes in place (the larger image), both images when its key moves.

use serde::Serialize;

use crate::pure::hash::{self, Digest};
use crate::pure::item::{self, AttributeValue, Item};
use crate::target::IndexSchema;
use crate::target::Projection;

/// The date the built-in prices were last checked against AWS's published prices.
pub const PRICES_AS_OF: &str = "2024-11-01";

/// USD per million on-demand request units, by region.
const BUILTIN: &[(&str, f64, f64)] = &[
    // region, write, read
    ("us-east-1", 0.625, 0.125),
    ("eu-west-1", 0.705, 0.1415),
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prices {
    /// USD per million write request units.
    pub write_per_million: f64,
    /// USD per million read request units.
    pub read_per_million: f64,
    /// Where the figures come from: `built-in 2024-11-01 us-east-1` or the profile's path.
    pub source: String,
}

impl Prices {
    /// The built-in on-demand prices of `region`, if the table has them.
    pub fn builtin(region: &str) -> Option<Prices> {
        BUILTIN.iter().find(|(r, _, _)| *r == region).map(|&(r, write, read)| Prices {
            write_per_million: write,
            read_per_million: read,
            source: format!("built-in {PRICES_AS_OF} {r}"),
        })
    }

    /// Regions with built-in prices, for error messages.
    pub fn builtin_regions() -> Vec<&'static str> {
        BUILTIN.iter().map(|(r, _, _)| *r).collect()
    }

    pub fn cost(&self, write_units: f64, read_units: f64) -> f64 {
        (write_units * self.write_per_million + read_units * self.read_per_million) / 1e6
    }
}

/// What a run cost against what rewriting every item would have cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Savings {
    /// USD billed for the run's writes and the diff's reads.
    #[serde(rename = "cost_usd")]
    pub actual: f64,
    /// USD that writing every source item would have cost (no scan needed then).
    #[serde(rename = "potential_usd")]
    pub potential: f64,
    /// `potential - actual` (negative when the scan cost more than the writes it saved).
    #[serde(rename = "saved_usd")]
    pub saved: f64,
    /// `saved / potential × 100`, 0 when nothing would have been written.
    pub saved_percent: f64,
}

/// `saved / potential × 100`, 0 when nothing would have been written.
pub fn saved_percent(saved: f64, potential: f64) -> f64 {
    if potential > 0.0 {
        saved / potential * 100.0
    } else {
        0.0
    }
}

impl Savings {
    pub fn new(prices: &Prices, write_units: f64, read_units: f64, potential_write_units: f64) -> Savings {
        let actual = prices.cost(write_units, read_units);
        let potential = prices.cost(potential_write_units, 0.0);
        let saved = potential - actual;
        Savings { actual, potential, saved, saved_percent: saved_percent(saved, potential) }
    }
}

/// What DynamoDB bills for writing over or deleting one item: its units, and its entry in each of
/// the table's indexes (in the order of the index list it was made with).
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    /// Write units of the item itself: one per started KB.
    units: u32,
    entries: Box<[Option<Entry>]>,
}

/// An item's entry in one index.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    /// The digest of the index key's values (64 of its bits: a dry run keeps one per stored item
    /// and index): a different one moves the entry.
    key: u64,
    /// The digest of what the index copies, for `keys_only` and `include`; `None` for `all`, whose
    /// entry is the whole item, which changes whenever the item is rewritten (its hash attribute
    /// changes with it).
    content: Option<u64>,
    units: u32,
}

/// 64 bits of a digest: enough to tell an entry's old key or content from its new one.
fn short(digest: Digest) -> u64 {
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// Write units as kept in a footprint: an item is at most 400 KB, so 400 units.
fn units_of(bytes: usize) -> u32 {
    item::write_units(bytes).min(u64::from(u32::MAX)) as u32
}

impl Footprint {
    /// `item`'s footprint in a table keyed by `table_keys` with `indexes`.
    pub fn of<S: AsRef<str>>(item: &Item, table_keys: &[S], indexes: &[IndexSchema]) -> Footprint {
        let size = item::item_size(item);
        let entries = indexes.iter().map(|index| Entry::of(item, size, table_keys, index)).collect();
        Footprint { units: units_of(size), entries }
    }

    /// Units of a delete: the item and every index entry it had.
    pub fn delete_units(&self) -> u64 {
        u64::from(self.units) + self.entries.iter().flatten().map(|e| u64::from(e.units)).sum::<u64>()
    }
}

impl Entry {
    fn of<S: AsRef<str>>(item: &Item, size: usize, table_keys: &[S], index: &IndexSchema) -> Option<Entry> {
        // Sparse: an item lacking an index key attribute is not in the index.
        let key: Vec<&AttributeValue> = index.keys.iter().map(|(name, _)| item.get(name)).collect::<Option<_>>()?;
        let key = short(hash::key_digest(&key));
        let extra: &[String] = match &index.projection {
            Projection::All => return Some(Entry { key, content: None, units: units_of(size) }),
            Projection::KeysOnly => &[],
            Projection::Include(extra) => extra,
        };
        let mut names: Vec<&str> = table_keys.iter().map(AsRef::as_ref).collect();
        names.extend(index.keys.iter().map(|(n, _)| n.as_str()).chain(extra.iter().map(String::as_str)));
        names.sort_unstable();
        names.dedup();
        let copied: Vec<(AttributeValue, &AttributeValue)> =
            names.iter().filter_map(|n| item.get(*n).map(|v| (AttributeValue::S((*n).to_string()), v))).collect();
        let size = copied.iter().map(|(n, v)| n.as_s().map_or(0, String::len) + item::value_size(v)).sum();
        // Names and values alike: an attribute that appears or goes changes the entry.
        let content: Vec<&AttributeValue> = copied.iter().flat_map(|(n, v)| [n, *v]).collect();
        Some(Entry { key, content: Some(short(hash::key_digest(&content))), units: units_of(size) })
    }
}

/// Units DynamoDB bills for putting `new` where `old` was (`None`: no item there).
pub fn put_units(old: Option<&Footprint>, new: &Footprint) -> u64 {
    let table = u64::from(old.map_or(new.units, |old| old.units.max(new.units)));
    let olds: &[Option<Entry>] = old.map_or(&[][..], |o| &o.entries[..]);
    let indexes: u64 = new
        .entries
        .iter()
        .enumerate()
        .map(|(at, new)| match (olds.get(at).and_then(Option::as_ref), new) {
            (None, None) => 0,
            (None, Some(new)) => new.units,
            (Some(old), None) => old.units,
            (Some(old), Some(new)) if old.key != new.key => old.units + new.units,
            (Some(old), Some(new)) if old.content.is_some() && old.content == new.content => 0,
            (Some(old), Some(new)) => old.units.max(new.units),
        })
        .map(u64::from)
        .sum();
    table + indexes
}

/// Write units a second a new on-demand table takes before it scales (the facts file: "warm" at
/// 4,000 writes a second): the rate a promotion's estimate assumes without a write cap.
pub const NEW_TABLE_WRITE_UNITS_PER_SECOND: f64 = 4000.0;

/// A dry run's estimate of the real run's duration in seconds: the dry run's own reading (`read`
/// seconds), plus `write_units` at the write cap, else at [`NEW_TABLE_WRITE_UNITS_PER_SECOND`].
pub fn estimated_seconds(read: f64, write_units: f64, cap: Option<u32>) -> f64 {
    let rate = cap.map_or(NEW_TABLE_WRITE_UNITS_PER_SECOND, |c| f64::from(c).min(NEW_TABLE_WRITE_UNITS_PER_SECOND));
    read + write_units / rate
}

/// A duration for a person: `12 s`, `3 min 20 s`, `2 h 5 min`.
pub fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{} s", s.max(1)),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_promotion_is_estimated_at_the_write_cap_or_a_new_tables_rate() {
        assert_eq!(estimated_seconds(10.0, 40_000.0, None), 20.0);
        assert_eq!(estimated_seconds(10.0, 40_000.0, Some(100)), 410.0);
        assert_eq!(estimated_seconds(0.0, 8_000.0, Some(1_000_000)), 2.0, "never faster than a new table takes");
        assert_eq!(duration_text(0.2), "1 s");
        assert_eq!(duration_text(200.0), "3 min 20 s");
        assert_eq!(duration_text(7500.0), "2 h 5 min");
    }

    #[test]
    fn builtin_prices_are_dated_and_per_region() {
        let us = Prices::builtin("us-east-1").unwrap();
        assert_eq!((us.write_per_million, us.read_per_million), (0.625, 0.125));
        assert_eq!(us.source, "built-in 2024-11-01 us-east-1");
        assert_eq!(Prices::builtin("eu-west-1").unwrap().write_per_million, 0.705);
        assert_eq!(Prices::builtin("ap-south-9"), None);
    }

    #[test]
    fn savings_compare_with_a_full_rewrite() {
        let prices = Prices::builtin("us-east-1").unwrap();
        // 1,000,000 items of 1 unit each; 10,000 written; the scan read 250,000 units.
        let s = Savings::new(&prices, 10_000.0, 250_000.0, 1_000_000.0);
        assert!((s.actual - (0.00625 + 0.03125)).abs() < 1e-12, "{s:?}");
        assert!((s.potential - 0.625).abs() < 1e-12);
        assert!((s.saved - (0.625 - 0.0375)).abs() < 1e-12);
        assert!((s.saved_percent - 94.0).abs() < 1e-9);
    }

    #[test]
    fn nothing_to_write_means_zero_percent_not_nan() {
        let prices = Prices::builtin("eu-west-1").unwrap();
        let s = Savings::new(&prices, 0.0, 0.0, 0.0);
        assert_eq!(s.saved_percent, 0.0);
        let scan_only = Savings::new(&prices, 0.0, 8.0, 0.0);
        assert!(scan_only.saved < 0.0);
    }
}

#[cfg(test)]
mod footprint_tests {
    use super::*;
    use crate::target::IndexSchema;

    fn index(name: &str, key: &str, projection: Projection) -> IndexSchema {
        IndexSchema { name: name.into(), local: false, keys: vec![(key.into(), "S".into())], projection }
    }

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string()))).collect()
    }

    fn indexes() -> Vec<IndexSchema> {
        vec![
            index("all", "a", Projection::All),
            index("keys", "k", Projection::KeysOnly),
            index("inc", "i", Projection::Include(vec!["x".into()])),
        ]
    }

    fn print(pairs: &[(&str, &str)]) -> Footprint {
        Footprint::of(&item(pairs), &["id"], &indexes())
    }

    #[test]
    fn a_new_item_pays_for_itself_and_each_index_it_is_in() {
        let new = print(&[("id", "1"), ("a", "A"), ("k", "K"), ("y", "body")]);
        // The item, its copy in `all`, its keys in `keys`; not in `inc` (no `i`).
        assert_eq!(put_units(None, &new), 3);
        assert_eq!(new.delete_units(), 3);
        let big = "b".repeat(1500);
        let large = print(&[("id", "1"), ("a", "A"), ("y", &big)]);
        assert_eq!(put_units(None, &large), 2 + 2, "a whole-item copy is as large as the item");
    }

    #[test]
    fn a_replaced_item_pays_for_the_larger_image_and_the_entries_that_change() {
        let big = "b".repeat(1500);
        let old = print(&[("id", "1"), ("a", "A"), ("k", "K"), ("i", "I"), ("x", "1"), ("y", &big)]);
        // Body shrinks: the table is billed on the old size; `all` changes in place (the larger
        // image), `keys` and `inc` copy nothing that changed.
        let new = print(&[("id", "1"), ("a", "A"), ("k", "K"), ("i", "I"), ("x", "1"), ("y", "small")]);
        assert_eq!(put_units(Some(&old), &new), 2 + 2);
        // An included attribute changes: `inc` is rewritten in place.
        let new = print(&[("id", "1"), ("a", "A"), ("k", "K"), ("i", "I"), ("x", "2"), ("y", "small")]);
        assert_eq!(put_units(Some(&old), &new), 2 + 2 + 1);
        // A keys-only index key moves: the old entry out, the new one in.
        let new = print(&[("id", "1"), ("a", "A"), ("k", "K2"), ("i", "I"), ("x", "1"), ("y", "small")]);
        assert_eq!(put_units(Some(&old), &new), 2 + 2 + 2);
        // Out of `all` and `keys`: each old entry is deleted.
        let new = print(&[("id", "1"), ("i", "I"), ("x", "1"), ("y", "small")]);
        assert_eq!(put_units(Some(&old), &new), 2 + 2 + 1);
        assert_eq!(old.delete_units(), 2 + 2 + 1 + 1);
    }
}
