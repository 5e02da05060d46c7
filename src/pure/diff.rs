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

use crate::pure::hash::Digest;
use crate::pure::plan::{literal_note, KeyFlaw};

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

/// The SQL conditions that leave a table's keyless rows out of its queries (`f IS DISTINCT FROM
/// 'NaN'`), gathered from each row's reason: the advice of [`keyless_guard`] then matches what is
/// wrong with them. They are kept per entity: each query is given only the conditions its own rows
/// need (another entity's `defaults` may give a NULL column a key, and its query may not have the
/// column at all). Each distinct condition is kept once, and all of them are shown, so the filter
/// can be pasted whole. They are bounded by the plan, not by the source: one per key column and
/// kind of flaw (NULL, empty, NaN, each infinity, a JSON container), whatever the rows hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaveOut {
    groups: Vec<Group>,
}

/// One entity's keyless rows (the table's, when it has one entity).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    entity: Option<String>,
    rows: usize,
    /// The first such row's key, as its reject names it.
    first: String,
    /// Each condition as a WHERE inside the query writes it (table columns by their own names),
    /// and as a filter around the query does (every column by the name the query gives it).
    conditions: Vec<(String, String)>,
    /// Some condition names an expression by the name the query gives it, which a WHERE inside the
    /// query cannot use (or reads as a table column of that name): the filter goes around it.
    around: bool,
    /// Some row's flaw has no such condition (a number with too many digits, say).
    more: bool,
}

impl LeaveOut {
    /// A keyless row: its key as its reject names it, and what is wrong with the key.
    pub fn add(&mut self, flaw: &KeyFlaw, key: &str) {
        let condition = flaw.leave_out().zip(flaw.leave_out_around());
        self.add_condition(flaw.entity(), condition, flaw.stands_for().is_some(), key);
    }

    /// A keyless row of `entity` (`None` for a table with one), with the condition that leaves it
    /// out, if there is one (inside the query, and around it), and whether it names an expression.
    pub fn add_condition(
        &mut self,
        entity: Option<&str>,
        condition: Option<(String, String)>,
        around: bool,
        key: &str,
    ) {
        let at = match self.groups.iter().position(|g| g.entity.as_deref() == entity) {
            Some(at) => at,
            None => {
                self.groups.push(Group {
                    entity: entity.map(str::to_string),
                    rows: 0,
                    first: key.to_string(),
                    conditions: Vec::new(),
                    around: false,
                    more: false,
                });
                self.groups.len() - 1
            }
        };
        let group = &mut self.groups[at];
        group.rows += 1;
        match condition {
            Some(c) if group.conditions.contains(&c) => {}
            Some(c) => {
                group.conditions.push(c);
                group.around |= around;
            }
            None => group.more = true,
        }
    }

    /// For a table with one entity, ` (WHERE a IS NOT NULL AND f IS DISTINCT FROM 'NaN')`; for one
    /// with several, each entity's own filter, named. Every condition, valid SQL as shown; when
    /// some row's flaw has no condition, where its reason is.
    fn clause(&self) -> String {
        match &self.groups[..] {
            [] => String::new(),
            [group] if group.entity.is_none() => format!(" of the query{}", group.clause()),
            groups => {
                let each: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let rows = if g.rows == 1 { "1 row".to_string() } else { format!("{} rows", g.rows) };
                        let entity = g.entity.as_deref().unwrap_or_default();
                        format!("entity \"{entity}\", {rows}, first {}{}", g.first, g.clause())
                    })
                    .collect();
                format!(" of their entity's query, each its own filter: {}", each.join("; "))
            }
        }
    }
}

impl Group {
    fn clause(&self) -> String {
        const OTHERS: &str = "each rejected row's reason says what is wrong with its key";
        if self.conditions.is_empty() {
            return format!(" ({OTHERS})");
        }
        let filter = if self.around {
            let each: Vec<&str> = self.conditions.iter().map(|(_, around)| around.as_str()).collect();
            format!(
                "around the query, as it names expressions, which a WHERE inside it cannot use: SELECT * FROM (…the \
                 query…) AS q WHERE {}",
                each.join(" AND ")
            )
        } else {
            let each: Vec<&str> = self.conditions.iter().map(|(inside, _)| inside.as_str()).collect();
            format!("WHERE {}", each.join(" AND "))
        };
        if self.more {
            format!(" ({filter}) (that leaves out some of them, and for the others {OTHERS})")
        } else {
            format!(" ({filter})")
        }
    }
}

/// Deletes wait while source rows have no key (a NULL, empty, NaN or infinite key column, one a
/// template uses included): such a row may be what any of the orphans was written from, and
/// deleting them would remove an item whose row is broken, not gone. `first` names one of those
/// rows; `leave_out` says how each query could leave them out.
pub fn keyless_guard(orphans: u64, keyless: usize, first: &str, leave_out: &LeaveOut) -> Result<(), String> {
    if orphans == 0 || keyless == 0 {
        return Ok(());
    }
    let clause = leave_out.clause();
    Err(format!(
        "not deleted: {orphans} items have no source row, but {keyless} source rows have no key (first: {first}), and \
         their stored items may be among them; fix those rows or leave them out{clause}, then run again{}",
        literal_note(&clause)
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
        let mut null = LeaveOut::default();
        null.add_condition(None, both("id IS NOT NULL"), false, "id=NULL");
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

    /// A condition that reads the same inside the query and around it.
    fn both(c: &str) -> Option<(String, String)> {
        Some((c.to_string(), c.to_string()))
    }

    fn one(conditions: &[Option<&str>]) -> LeaveOut {
        let mut leave_out = LeaveOut::default();
        for c in conditions {
            leave_out.add_condition(None, c.and_then(both), false, "k");
        }
        leave_out
    }

    #[test]
    fn the_advice_matches_what_is_wrong_with_the_keys() {
        let (nan, inf) = (Some("f IS DISTINCT FROM 'NaN'"), Some("f IS DISTINCT FROM 'Infinity'"));
        assert_eq!(
            one(&[nan, inf, nan]).clause(),
            " of the query (WHERE f IS DISTINCT FROM 'NaN' AND f IS DISTINCT FROM 'Infinity')",
            "each condition once"
        );
        assert_eq!(
            one(&[nan, inf, None]).clause(),
            " of the query (WHERE f IS DISTINCT FROM 'NaN' AND f IS DISTINCT FROM 'Infinity') (that leaves out some \
             of them, and for the others each rejected row's reason says what is wrong with its key)",
            "not every row covered: the filter shown is whole, and says where the rest is"
        );
        assert_eq!(one(&[None]).clause(), " of the query (each rejected row's reason says what is wrong with its key)");
        // Every distinct condition is shown, none cut short.
        let names: Vec<String> = (0..6).map(|i| format!("c{i} IS NOT NULL")).collect();
        let clause = one(&names.iter().map(|n| Some(n.as_str())).collect::<Vec<_>>()).clause();
        assert!(!clause.contains('…'), "{clause}");
        assert!(clause.contains("c0 IS NOT NULL AND") && clause.ends_with("c5 IS NOT NULL)"), "{clause}");
    }

    #[test]
    fn each_entity_is_given_its_own_filter() {
        let mut leave_out = LeaveOut::default();
        leave_out.add_condition(Some("a"), both("tag IS NOT NULL"), false, "entity \"a\": id=1");
        leave_out.add_condition(Some("b"), both("f IS DISTINCT FROM 'NaN'"), false, "entity \"b\": f=NaN");
        leave_out.add_condition(Some("a"), both("tag IS NOT NULL"), false, "entity \"a\": id=2");
        let held = keyless_guard(4, 3, "entity \"a\": id=1", &leave_out).unwrap_err();
        assert!(
            held.ends_with(
                "leave them out of their entity's query, each its own filter: entity \"a\", 2 rows, first entity \
                 \"a\": id=1 (WHERE tag IS NOT NULL); entity \"b\", 1 row, first entity \"b\": f=NaN (WHERE f IS \
                 DISTINCT FROM 'NaN'), then run again"
            ),
            "{held}"
        );
    }

    #[test]
    fn a_filter_naming_an_expression_goes_around_the_query_and_one_with_a_backslash_says_how_to_keep_it() {
        let mut leave_out = LeaveOut::default();
        // `x AS f`: inside the query the table column `x`; around it, the name `f`.
        leave_out.add_condition(None, Some(("x IS NOT NULL".into(), "f IS NOT NULL".into())), false, "f=NULL");
        // `doc->'k' AS doc`: an expression, which a WHERE inside the query would read as the table
        // column `doc`.
        let doc = "(doc IS NULL OR jsonb_typeof(doc) IN ('string', 'number', 'boolean'))";
        leave_out.add_condition(None, Some((doc.into(), doc.into())), true, "doc=<JSON object>");
        leave_out.add_condition(None, both(r#""a\b" IS NOT NULL"#), false, r"a\b=NULL");
        let held = keyless_guard(1, 3, "f=NULL", &leave_out).unwrap_err();
        let expected = format!(
            "leave them out of the query (around the query, as it names expressions, which a WHERE inside it cannot \
             use: SELECT * FROM (…the query…) AS q WHERE f IS NOT NULL AND {doc} AND \"a\\b\" IS NOT NULL), then run \
             again; the advice holds a backslash: in the mappings file write the query as a literal string \
             ('''…'''), which TOML keeps as written"
        );
        assert!(held.ends_with(&expected), "{held}");
        assert!(!held.contains("x IS NOT NULL"), "{held}");
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
