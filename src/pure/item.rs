//! The item model shared by the whole engine: a DynamoDB item, its key, its billed size, and the
//! limits DynamoDB holds every item to.
//!
//! Items use the SDK's `AttributeValue` directly: it is plain data, and the target adapter can send it
//! without a copy. Sizes follow DynamoDB's published rules (attribute names count, numbers take about
//! one byte per two significant digits) and are used only for estimates; measured capacity from
//! `ReturnConsumedCapacity` is what the report bills.
//!
//! The limits are checked before an item is batched ([`value_flaw`], [`key_bytes`]): DynamoDB refuses
//! a whole BatchWriteItem call for one bad item, so a bad row must be rejected on its own, by key.

use std::collections::HashMap;

pub use aws_sdk_dynamodb::types::AttributeValue;

use crate::pure::number;

/// One DynamoDB item, attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

/// The attribute in which ddbsync stores each item's content hash (hex MD5). Never hashed itself.
pub const HASH_ATTR: &str = "_ddbsync_hash";

/// Attribute names starting with this are ddbsync's own ([`HASH_ATTR`], and any it adds later): a
/// query column, key, default or index key of that name would overwrite it or be overwritten.
pub const RESERVED_PREFIX: &str = "_ddbsync_";

/// Whether ddbsync owns attributes of this name.
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(RESERVED_PREFIX)
}

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's nesting limit: a top-level attribute's value is level 1, an element of a list or map
/// one level deeper than the list or map.
pub const MAX_DEPTH: usize = 32;

/// Largest partition key value (table or index), in bytes as [`key_bytes`] counts them.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;

/// Largest sort key value (table or index), in bytes as [`key_bytes`] counts them.
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Longest attribute name DynamoDB accepts, a key of a nested map included.
pub const MAX_NAME_BYTES: usize = 65_535;

/// A key value's size as DynamoDB limits it: the UTF-8 bytes of a string, the raw bytes of a binary,
/// the text of a number (at most 38 digits, so never near a limit).
pub fn key_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        _ => 0,
    }
}

/// Something inside an attribute's value that DynamoDB refuses, wherever it is nested.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Flaw {
    #[error(
        "attribute \"{attribute}\" is nested more than {MAX_DEPTH} levels deep (at {path}), DynamoDB's limit; \
         flatten it in the query, or cast the column to text to store it as a string"
    )]
    TooDeep { attribute: String, path: String },
    #[error(
        "attribute \"{attribute}\" holds a map with an empty key (at {path}), which DynamoDB refuses; \
         rename or drop that key in the query, or cast the column to text to store it as a string"
    )]
    EmptyName { attribute: String, path: String },
    #[error(
        "attribute \"{attribute}\" holds a map key of {bytes} bytes (at {path}), over DynamoDB's {MAX_NAME_BYTES}-byte \
         limit for attribute names; shorten that key in the query, or cast the column to text"
    )]
    LongName { attribute: String, path: String, bytes: usize },
    #[error(
        "attribute \"{attribute}\" holds an empty set (at {path}), which DynamoDB refuses; \
         return NULL or a list instead"
    )]
    EmptySet { attribute: String, path: String },
    #[error("attribute \"{attribute}\" holds a set with a member twice (at {path}), which DynamoDB refuses")]
    DuplicateInSet { attribute: String, path: String },
}

/// What is wrong, before the path to it is known.
enum FlawKind {
    TooDeep,
    EmptyName,
    LongName(usize),
    EmptySet,
    DuplicateInSet,
}

/// One step of a path into a value: a map key or a list position.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The first thing DynamoDB would refuse in the value of top-level attribute `attribute`: nesting
/// past [`MAX_DEPTH`], an empty or over-long map key, an empty set. Numbers are not checked here:
/// every number is made by [`crate::pure::number`], which refuses what DynamoDB refuses.
///
/// The walk never goes deeper than the limit, so a value nested any deeper costs no more.
pub fn value_flaw(attribute: &str, value: &AttributeValue) -> Option<Flaw> {
    let (kind, mut steps) = flaw_in(value, 1)?;
    let mut path = attribute.to_string();
    steps.reverse();
    for step in steps {
        match step {
            Step::Key(key) => {
                path.push('.');
                path.push_str(&shorten(key, 40));
            }
            Step::Index(i) => path.push_str(&format!("[{i}]")),
        }
    }
    let attribute = attribute.to_string();
    Some(match kind {
        FlawKind::TooDeep => Flaw::TooDeep { attribute, path },
        FlawKind::EmptyName => Flaw::EmptyName { attribute, path },
        FlawKind::LongName(bytes) => Flaw::LongName { attribute, path, bytes },
        FlawKind::EmptySet => Flaw::EmptySet { attribute, path },
        FlawKind::DuplicateInSet => Flaw::DuplicateInSet { attribute, path },
    })
}

/// `value` sits at `level`; returns the flaw and the steps to it, innermost first.
fn flaw_in(value: &AttributeValue, level: usize) -> Option<(FlawKind, Vec<Step<'_>>)> {
    fn nested<'a>(child: &'a AttributeValue, step: Step<'a>, level: usize) -> Option<(FlawKind, Vec<Step<'a>>)> {
        flaw_in(child, level + 1).map(|(kind, mut steps)| {
            steps.push(step);
            (kind, steps)
        })
    }
    // The elements of a list or map at the last level would lie past it (an empty one has none).
    let full = level >= MAX_DEPTH;
    match value {
        AttributeValue::L(list) if full && !list.is_empty() => Some((FlawKind::TooDeep, Vec::new())),
        AttributeValue::M(map) if full && !map.is_empty() => Some((FlawKind::TooDeep, Vec::new())),
        AttributeValue::L(list) => list.iter().enumerate().find_map(|(i, v)| nested(v, Step::Index(i), level)),
        AttributeValue::M(map) => map.iter().find_map(|(key, v)| {
            if key.is_empty() {
                Some((FlawKind::EmptyName, Vec::new()))
            } else if key.len() > MAX_NAME_BYTES {
                Some((FlawKind::LongName(key.len()), Vec::new()))
            } else {
                nested(v, Step::Key(key), level)
            }
        }),
        AttributeValue::Ss(set) if set.is_empty() => Some((FlawKind::EmptySet, Vec::new())),
        AttributeValue::Ns(set) if set.is_empty() => Some((FlawKind::EmptySet, Vec::new())),
        AttributeValue::Bs(set) if set.is_empty() => Some((FlawKind::EmptySet, Vec::new())),
        // Numbers are members by value: 1 and 1.0 are one member.
        AttributeValue::Ss(set) if has_duplicate(set.iter().map(|s| s.as_bytes().to_vec())) => {
            Some((FlawKind::DuplicateInSet, Vec::new()))
        }
        AttributeValue::Ns(set)
            if has_duplicate(set.iter().map(|n| {
                crate::pure::number::normalize(n).map_or_else(|_| n.clone(), |c| c.into_owned()).into_bytes()
            })) =>
        {
            Some((FlawKind::DuplicateInSet, Vec::new()))
        }
        AttributeValue::Bs(set) if has_duplicate(set.iter().map(|b| b.as_ref().to_vec())) => {
            Some((FlawKind::DuplicateInSet, Vec::new()))
        }
        _ => None,
    }
}

fn has_duplicate(members: impl Iterator<Item = Vec<u8>>) -> bool {
    let mut seen = std::collections::HashSet::new();
    members.into_iter().any(|m| !seen.insert(m))
}

/// At most `max` bytes of `text` (on a character boundary), with `…` when cut.
pub fn shorten(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end]).into()
}

/// Estimated size in bytes of an item as DynamoDB bills it.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(name, value)| name.len() + value_size(value)).sum()
}

/// Estimated size of one value, without its attribute name.
pub fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => 3 + map.iter().map(|(k, v)| 1 + k.len() + value_size(v)).sum::<usize>(),
        _ => 0,
    }
}

/// About how many bytes `item` occupies in this process (its maps' tables, strings and lists), as
/// opposed to [`item_size`], what DynamoDB counts. A small item costs several times its DynamoDB
/// size (a map entry is a `String` and an `AttributeValue`, each of its strings a separate
/// allocation); a large one about its size. What a run holds in flight is bounded by this figure.
pub fn memory_size(item: &Item) -> usize {
    std::mem::size_of::<Item>() + map_memory(item)
}

/// A map's table (a control byte and an entry per bucket, buckets at least 8/7 of the capacity) and
/// what its entries own.
fn map_memory(map: &HashMap<String, AttributeValue>) -> usize {
    const ENTRY: usize = std::mem::size_of::<String>() + std::mem::size_of::<AttributeValue>() + 1;
    map.capacity() * 8 / 7 * ENTRY + map.iter().map(|(k, v)| k.capacity() + value_memory(v)).sum::<usize>()
}

fn value_memory(value: &AttributeValue) -> usize {
    const STRING: usize = std::mem::size_of::<String>();
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.capacity(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(set) | AttributeValue::Ns(set) => {
            set.capacity() * STRING + set.iter().map(String::capacity).sum::<usize>()
        }
        AttributeValue::Bs(set) => set.capacity() * STRING + set.iter().map(|b| b.as_ref().len()).sum::<usize>(),
        AttributeValue::L(list) => {
            list.capacity() * std::mem::size_of::<AttributeValue>() + list.iter().map(value_memory).sum::<usize>()
        }
        AttributeValue::M(map) => map_memory(map),
        _ => 0,
    }
}

/// Size of a number: about one byte per two significant digits, plus one (and one for a sign).
pub fn number_size(text: &str) -> usize {
    let digits = number::normalize(text).map(|n| number::significant_digits(&n)).unwrap_or(text.len());
    1 + digits.div_ceil(2) + usize::from(text.starts_with('-'))
}

/// Write units DynamoDB bills for writing an item of `bytes` (1 per started KB, at least 1).
pub fn write_units(bytes: usize) -> u64 {
    (bytes.div_ceil(1024) as u64).max(1)
}

/// A short human-readable rendering of a key, for messages and reject lists: `lesson_id=7`.
pub fn describe_key(item: &Item, key_names: &[&str]) -> String {
    key_names
        .iter()
        .map(|name| match item.get(*name) {
            Some(value) => format!("{name}={}", describe_value(value)),
            None => format!("{name}=<missing>"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A scalar's text as a user would type it; other types by their DynamoDB type name. A long string
/// (a key over DynamoDB's size limit, say) is cut, with its size, so that a message stays readable.
pub fn describe_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) if s.len() > 100 => format!("{:?} ({} bytes)", shorten(s, 60), s.len()),
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "NULL".into(),
        _ => "<non-scalar>".into(),
    }
}

/// A value's type as a message names it: `a string`, `a map`, `a string set`.
pub fn type_name(value: &AttributeValue) -> &'static str {
    match value {
        AttributeValue::S(_) => "a string",
        AttributeValue::N(_) => "a number",
        AttributeValue::B(_) => "binary",
        AttributeValue::Bool(_) => "a boolean",
        AttributeValue::Null(_) => "NULL",
        AttributeValue::M(_) => "a map",
        AttributeValue::L(_) => "a list",
        AttributeValue::Ss(_) => "a string set",
        AttributeValue::Ns(_) => "a number set",
        AttributeValue::Bs(_) => "a binary set",
        _ => "a value of an unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::primitives::Blob;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn sizes_count_names_and_values() {
        let item: Item = [("id".to_string(), n("12345")), ("title".to_string(), s("héllo"))].into();
        // id: 2 + (1 + 3); title: 5 + 6 UTF-8 bytes
        assert_eq!(item_size(&item), 2 + 4 + 5 + 6);
    }

    #[test]
    fn memory_of_a_large_item_is_about_its_size() {
        let body = "x".repeat(300_000);
        let item: Item = [("id".to_string(), n("1")), ("body".to_string(), s(&body))].into();
        let memory = memory_size(&item);
        assert!((300_000..302_000).contains(&memory), "{memory}");
    }

    #[test]
    fn memory_of_a_small_item_is_several_times_its_size() {
        // Twenty short attributes and a list of maps: every string, map and list its own allocation.
        let mut item: Item = (0..20).map(|i| (format!("a{i}"), n(&i.to_string()))).collect();
        let question: Item = [("id".to_string(), n("7")), ("prompt".to_string(), s("why?"))].into();
        item.insert("questions".into(), AttributeValue::L(vec![AttributeValue::M(question); 3]));
        let (size, memory) = (item_size(&item), memory_size(&item));
        assert!(memory > 5 * size, "{memory} bytes in memory for {size} in DynamoDB");
        // Counted from what the item holds: one more attribute costs more.
        let before = memory;
        item.insert("extra".into(), s(&"y".repeat(1000)));
        assert!(memory_size(&item) >= before + 1000);
    }

    #[test]
    fn nested_values_carry_overhead() {
        let list = AttributeValue::L(vec![s("ab"), AttributeValue::Bool(true)]);
        assert_eq!(value_size(&list), 3 + (1 + 2) + (1 + 1));
        let map = AttributeValue::M([("k".to_string(), s("v"))].into());
        assert_eq!(value_size(&map), 3 + 1 + 1 + 1);
        assert_eq!(value_size(&AttributeValue::B(Blob::new(vec![0u8; 10]))), 10);
    }

    #[test]
    fn write_units_round_up_per_item() {
        assert_eq!(write_units(0), 1);
        assert_eq!(write_units(1024), 1);
        assert_eq!(write_units(1025), 2);
        assert_eq!(write_units(400 * 1024), 400);
    }

    #[test]
    fn describes_keys_for_messages() {
        let item: Item = [("PK".to_string(), s("LESSON#1")), ("n".to_string(), n("7"))].into();
        assert_eq!(describe_key(&item, &["PK", "n"]), "PK=\"LESSON#1\", n=7");
        assert_eq!(describe_key(&item, &["SK"]), "SK=<missing>");
    }

    #[test]
    fn long_key_values_are_cut_in_messages() {
        let item: Item = [("PK".to_string(), s(&"é".repeat(1500)))].into();
        assert_eq!(describe_key(&item, &["PK"]), format!("PK=\"{}…\" (3000 bytes)", "é".repeat(30)));
    }

    #[test]
    fn key_bytes_count_utf8_and_raw_bytes() {
        assert_eq!(key_bytes(&s("héllo")), 6);
        assert_eq!(key_bytes(&AttributeValue::B(Blob::new(vec![0u8; 2049]))), 2049);
        assert_eq!(key_bytes(&n("-12.5")), 5);
    }

    fn list(levels: usize, inner: AttributeValue) -> AttributeValue {
        (0..levels).fold(inner, |v, _| AttributeValue::L(vec![v]))
    }

    fn map(pairs: &[(&str, AttributeValue)]) -> AttributeValue {
        AttributeValue::M(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn nesting_counts_the_attribute_value_as_level_one() {
        // 31 lists around a scalar: the scalar is at level 32, the deepest DynamoDB stores.
        assert_eq!(value_flaw("doc", &list(31, n("1"))), None);
        // An empty list may sit at level 32: it has nothing at level 33.
        assert_eq!(value_flaw("doc", &list(31, AttributeValue::L(vec![]))), None);
        assert_eq!(value_flaw("doc", &list(31, map(&[]))), None);
        let deep = value_flaw("doc", &list(32, n("1"))).unwrap();
        assert!(matches!(&deep, Flaw::TooDeep { attribute, .. } if attribute == "doc"), "{deep:?}");
        assert!(deep.to_string().starts_with("attribute \"doc\" is nested more than 32 levels deep (at doc[0][0]"));
        assert!(matches!(value_flaw("doc", &list(40, n("1"))), Some(Flaw::TooDeep { .. })));
        assert!(matches!(value_flaw("doc", &list(31, map(&[("k", n("1"))]))), Some(Flaw::TooDeep { .. })));
    }

    #[test]
    fn a_very_deep_value_is_walked_only_to_the_limit() {
        // Built and dropped iteratively: a recursive drop of 100,000 levels would overflow the stack.
        let mut value = n("1");
        for _ in 0..100_000 {
            value = AttributeValue::L(vec![value]);
        }
        assert!(matches!(value_flaw("doc", &value), Some(Flaw::TooDeep { .. })));
        while let AttributeValue::L(mut inner) = value {
            value = inner.pop().unwrap_or(AttributeValue::Null(true));
        }
    }

    #[test]
    fn empty_and_long_map_keys_are_flaws_at_any_depth() {
        let flaw = value_flaw("doc", &map(&[("a", list(2, map(&[("", n("1"))])))])).unwrap();
        assert_eq!(
            flaw,
            Flaw::EmptyName { attribute: "doc".into(), path: "doc.a[0][0]".into() },
            "the path names the map that holds the empty key"
        );
        assert_eq!(
            flaw.to_string(),
            "attribute \"doc\" holds a map with an empty key (at doc.a[0][0]), which DynamoDB refuses; \
             rename or drop that key in the query, or cast the column to text to store it as a string"
        );
        assert!(matches!(value_flaw("doc", &map(&[("", s("x"))])), Some(Flaw::EmptyName { .. })));
        let long = "k".repeat(MAX_NAME_BYTES + 1);
        assert!(matches!(
            value_flaw("doc", &map(&[(&long, n("1"))])),
            Some(Flaw::LongName { bytes, .. }) if bytes == MAX_NAME_BYTES + 1
        ));
        assert_eq!(value_flaw("doc", &map(&[(&"k".repeat(MAX_NAME_BYTES), n("1"))])), None);
    }

    #[test]
    fn empty_sets_are_flaws_and_scalars_are_not() {
        assert!(matches!(value_flaw("tags", &AttributeValue::Ss(vec![])), Some(Flaw::EmptySet { .. })));
        assert!(matches!(
            value_flaw("l", &AttributeValue::L(vec![AttributeValue::Ns(vec![])])),
            Some(Flaw::EmptySet { .. })
        ));
        assert_eq!(value_flaw("tags", &AttributeValue::Ss(vec!["a".into()])), None);
        let twice = |v| matches!(value_flaw("s", &v), Some(Flaw::DuplicateInSet { .. }));
        assert!(twice(AttributeValue::Ss(vec!["a".into(), "a".into()])));
        assert!(twice(AttributeValue::Ns(vec!["1".into(), "1.0".into()])), "numbers by value");
        assert!(!twice(AttributeValue::Ns(vec!["1".into(), "2".into()])));
        assert_eq!(value_flaw("title", &s("")), None, "an empty string is fine outside keys");
        assert_eq!(value_flaw("list", &AttributeValue::L(vec![])), None);
    }

    #[test]
    fn reserved_names_are_the_prefix() {
        assert!(is_reserved(HASH_ATTR));
        assert!(is_reserved("_ddbsync_other"));
        assert!(!is_reserved("ddbsync_hash"));
        assert!(!is_reserved("_ddbsync"));
    }
}
