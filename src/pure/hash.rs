//! Content hashes and key digests: the fingerprints the incremental diff compares.
//!
//! The content hash is MD5 over a canonical encoding of the item, so that the same content always
//! has the same hash, however it was built or read back:
//!
//! - a map (the item itself too) is `M`, its entry count, then each entry in byte order of the
//!   name: name length, name, value;
//! - a list is `L`, its length, then each value in order;
//! - `S`/`B` are the tag, the byte length and the bytes; `N` is the same over the number's canonical
//!   text ([`crate::pure::number::normalize`]); `BOOL` is `T` or `F`; `NULL` is `0`;
//! - sets (`s`, `n`, `b`) are their count, then their elements sorted (numbers canonicalised first);
//! - lengths and counts are 4-byte big-endian.
//!
//! Attributes whose name is in the excluded set are left out at every depth (timestamps inside
//! embedded children too), and so are ddbsync's own attributes at the top level.
//!
//! Invariant: these hashes are stored in every table ddbsync writes. Changing the encoding makes every
//! item look changed and rewrites every table; the golden tests below exist to stop that happening by
//! accident.

use std::collections::BTreeSet;

use md5::{Digest as _, Md5};

use crate::pure::item::{self, AttributeValue, Item};
use crate::pure::number;

/// A 128-bit fingerprint (an MD5 digest).
pub type Digest = [u8; 16];

/// Names left out of the content hash at any depth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded(BTreeSet<String>);

impl Excluded {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        Excluded(names.into_iter().map(Into::into).collect())
    }

    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }
}

impl Default for Excluded {
    /// `created_at` and `updated_at`: the timestamps that change without the content changing.
    fn default() -> Self {
        Excluded::new(["created_at", "updated_at"])
    }
}

/// The content hash of an item.
pub fn content_hash(item: &Item, excluded: &Excluded) -> Digest {
    hash_and_size(item, excluded).0
}

/// The content hash and the item's size as [`crate::pure::item::item_size`] counts it (ddbsync's own
/// attribute left out of both), in one walk over the item: building items is the engine's hot path.
pub fn hash_and_size(item: &Item, excluded: &Excluded) -> (Digest, usize) {
    let mut buf = Vec::with_capacity(2048);
    // ddbsync's own attributes (the hash, an indexed table's bucket) are not content.
    let (size, _) = encode_map(&mut buf, item.iter().filter(|(name, _)| !item::is_reserved(name)), excluded);
    (Md5::digest(&buf).into(), size)
}

/// The digest of an item's key values, in key-schema order; identifies the item in the diff.
pub fn key_digest(values: &[&AttributeValue]) -> Digest {
    let mut buf = Vec::with_capacity(64);
    let none = Excluded::new::<[&str; 0], &str>([]);
    for value in values {
        encode(&mut buf, value, &none);
    }
    Md5::digest(&buf).into()
}

/// The key digest of a stored item, from its key attributes in key-schema order; `None` when one
/// is missing.
pub fn item_key_digest<S: AsRef<str>>(item: &Item, key_names: &[S]) -> Option<Digest> {
    let values: Option<Vec<&AttributeValue>> = key_names.iter().map(|k| item.get(k.as_ref())).collect();
    Some(key_digest(&values?))
}

/// Lower-case hex, the form stored in [`item::HASH_ATTR`].
pub fn to_hex(digest: &Digest) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(32);
    for byte in digest {
        text.push(HEX[usize::from(byte >> 4)] as char);
        text.push(HEX[usize::from(byte & 15)] as char);
    }
    text
}

/// Parses the stored hex form; `None` when it is not a 32-digit hex string.
pub fn from_hex(text: &str) -> Option<Digest> {
    if text.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    buf.extend_from_slice(&(len as u32).to_be_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag);
    put_len(buf, bytes.len());
    buf.extend_from_slice(bytes);
}

fn canonical_number(text: &str) -> std::borrow::Cow<'_, str> {
    // Values read from DynamoDB are valid numbers; anything else hashes by its raw text.
    number::normalize(text).unwrap_or(std::borrow::Cow::Borrowed(text))
}

/// Encodes the included entries; returns the size of all entries (names + values, excluded ones
/// too, since DynamoDB stores and bills them) and their count.
fn encode_map<'a>(
    buf: &mut Vec<u8>,
    entries: impl Iterator<Item = (&'a String, &'a AttributeValue)>,
    excluded: &Excluded,
) -> (usize, usize) {
    let (mut size, mut count) = (0, 0);
    let mut included = Vec::with_capacity(16);
    for (name, value) in entries {
        count += 1;
        if excluded.contains(name) {
            size += name.len() + item::value_size(value);
        } else {
            included.push((name, value));
        }
    }
    included.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    buf.push(b'M');
    put_len(buf, included.len());
    for (name, value) in included {
        put_len(buf, name.len());
        buf.extend_from_slice(name.as_bytes());
        size += name.len() + encode(buf, value, excluded);
    }
    (size, count)
}

fn encode_set<'a>(buf: &mut Vec<u8>, tag: u8, mut elements: Vec<std::borrow::Cow<'a, [u8]>>) {
    elements.sort_unstable();
    elements.dedup();
    buf.push(tag);
    put_len(buf, elements.len());
    for element in elements {
        put_len(buf, element.len());
        buf.extend_from_slice(&element);
    }
}

/// Encodes one value; returns its size as [`crate::pure::item::value_size`] counts it.
fn encode(buf: &mut Vec<u8>, value: &AttributeValue, excluded: &Excluded) -> usize {
    use std::borrow::Cow;
    match value {
        AttributeValue::S(s) => {
            put_bytes(buf, b'S', s.as_bytes());
            s.len()
        }
        AttributeValue::N(n) => {
            let canonical = canonical_number(n);
            put_bytes(buf, b'N', canonical.as_bytes());
            item::number_size(&canonical)
        }
        AttributeValue::B(b) => {
            put_bytes(buf, b'B', b.as_ref());
            b.as_ref().len()
        }
        AttributeValue::Bool(b) => {
            buf.push(if *b { b'T' } else { b'F' });
            1
        }
        AttributeValue::Null(_) => {
            buf.push(b'0');
            1
        }
        AttributeValue::L(list) => {
            buf.push(b'L');
            put_len(buf, list.len());
            3 + list.iter().map(|v| 1 + encode(buf, v, excluded)).sum::<usize>()
        }
        AttributeValue::M(map) => {
            let (size, count) = encode_map(buf, map.iter(), excluded);
            3 + count + size
        }
        AttributeValue::Ss(set) => {
            encode_set(buf, b's', set.iter().map(|s| Cow::Borrowed(s.as_bytes())).collect());
            item::value_size(value)
        }
        AttributeValue::Ns(set) => {
            let canonical = set.iter().map(|n| Cow::Owned(canonical_number(n).into_owned().into_bytes())).collect();
            encode_set(buf, b'n', canonical);
            item::value_size(value)
        }
        AttributeValue::Bs(set) => {
            encode_set(buf, b'b', set.iter().map(|b| Cow::Borrowed(b.as_ref())).collect());
            item::value_size(value)
        }
        // A type this SDK version does not know: hash its debug text so it still counts as content.
        other => {
            put_bytes(buf, b'?', format!("{other:?}").as_bytes());
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::HASH_ATTR;
    use aws_sdk_dynamodb::primitives::Blob;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }
    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }
    fn item(pairs: Vec<(&str, AttributeValue)>) -> Item {
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
    fn hash(item: &Item) -> String {
        to_hex(&content_hash(item, &Excluded::default()))
    }

    /// A lesson as the PNI mapping builds it, with one embedded question.
    fn lesson() -> Item {
        item(vec![
            ("lesson_id", n("1")),
            ("title", s("Reading 1")),
            ("level", n("2")),
            ("score", n("1.5")),
            ("published", AttributeValue::Bool(true)),
            ("tags", AttributeValue::Ss(vec!["b".into(), "a".into()])),
            ("created_at", s("2024-01-01T00:00:00Z")),
            ("updated_at", s("2024-01-02T00:00:00Z")),
            (
                "questions",
                AttributeValue::L(vec![AttributeValue::M(
                    [
                        ("question_id".to_string(), n("10")),
                        ("text".to_string(), s("Why?")),
                        ("updated_at".to_string(), s("2024-01-03T00:00:00Z")),
                    ]
                    .into(),
                )]),
            ),
        ])
    }

    #[test]
    fn golden_hashes_are_frozen() {
        // These values are stored in users' tables: a change here rewrites every item everywhere.
        // They were checked against an independent implementation of the encoding in the module doc.
        assert_eq!(hash(&lesson()), "90bdc8ec3d228a58167c07d8060d2211");
        assert_eq!(hash(&item(vec![("id", n("1"))])), "ba7a88d634ef1552f63f2528fe76d4bc");
        assert_eq!(to_hex(&key_digest(&[&s("LESSON#1"), &n("7")])), "efefed26fcdc72aea7d86dd62308c492");
    }

    #[test]
    fn timestamps_are_ignored_at_any_depth() {
        let mut touched = lesson();
        touched.insert("updated_at".into(), s("2030-01-01T00:00:00Z"));
        let Some(AttributeValue::L(questions)) = touched.get_mut("questions") else { panic!() };
        let AttributeValue::M(q) = &mut questions[0] else { panic!() };
        q.insert("updated_at".into(), s("2030-01-01T00:00:00Z"));
        q.insert("created_at".into(), s("2030-01-01T00:00:00Z"));
        assert_eq!(hash(&touched), hash(&lesson()));
    }

    #[test]
    fn content_changes_change_the_hash() {
        let base = hash(&lesson());
        let mut changed = lesson();
        let Some(AttributeValue::L(questions)) = changed.get_mut("questions") else { panic!() };
        let AttributeValue::M(q) = &mut questions[0] else { panic!() };
        q.insert("text".into(), s("Why not?"));
        assert_ne!(hash(&changed), base);

        let mut added = lesson();
        added.insert("extra".into(), AttributeValue::Null(true));
        assert_ne!(hash(&added), base);
    }

    #[test]
    fn spelling_of_numbers_and_set_order_do_not_matter() {
        let mut respelled = lesson();
        respelled.insert("score".into(), n("1.50"));
        respelled.insert("level".into(), n("2.0"));
        respelled.insert("tags".into(), AttributeValue::Ss(vec!["a".into(), "b".into()]));
        assert_eq!(hash(&respelled), hash(&lesson()));
        let a = item(vec![("ns", AttributeValue::Ns(vec!["10".into(), "2".into()]))]);
        let b = item(vec![("ns", AttributeValue::Ns(vec!["2.0".into(), "1e1".into()]))]);
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn own_attributes_are_not_content() {
        let mut stored = lesson();
        stored.insert(HASH_ATTR.into(), s("0123"));
        stored.insert(crate::pure::bucket::BUCKET_ATTR.into(), n("9"));
        assert_eq!(hash(&stored), hash(&lesson()));
        // Only at the top level: inside content, such a name is content.
        let nested = item(vec![("doc", AttributeValue::M([(HASH_ATTR.to_string(), s("x"))].into()))]);
        assert_ne!(hash(&nested), hash(&item(vec![("doc", AttributeValue::M(Default::default()))])));
    }

    #[test]
    fn types_are_distinguished() {
        let as_string = item(vec![("v", s("1"))]);
        let as_number = item(vec![("v", n("1"))]);
        let as_binary = item(vec![("v", AttributeValue::B(Blob::new(b"1".to_vec())))]);
        let list_vs_map_boundary = item(vec![("v", AttributeValue::L(vec![s("ab")]))]);
        let split = item(vec![("v", AttributeValue::L(vec![s("a"), s("b")]))]);
        let hashes = [hash(&as_string), hash(&as_number), hash(&as_binary), hash(&list_vs_map_boundary), hash(&split)];
        let unique: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(unique.len(), hashes.len());
    }

    #[test]
    fn the_size_walk_agrees_with_item_size() {
        let mut item = lesson();
        item.insert("blob".into(), AttributeValue::B(Blob::new(vec![1, 2, 3])));
        item.insert("ns".into(), AttributeValue::Ns(vec!["-1.5".into(), "100".into()]));
        item.insert("nested".into(), AttributeValue::M([("updated_at".to_string(), n("12345"))].into()));
        assert_eq!(hash_and_size(&item, &Excluded::default()).1, crate::pure::item::item_size(&item));
    }

    #[test]
    fn hex_round_trips() {
        let d = content_hash(&lesson(), &Excluded::default());
        assert_eq!(from_hex(&to_hex(&d)), Some(d));
        assert_eq!(from_hex("xyz"), None);
        assert_eq!(from_hex(&"g".repeat(32)), None);
    }
}
