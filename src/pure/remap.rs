//! Promotion between environments: each item's ID becomes a new one, and every reference to
//! another table's item becomes that item's new ID. Pure.
//!
//! A new ID is a keyed hash (HMAC-SHA-256) of the source table, the source ID and the target's
//! namespace (`target.id_namespace`, by default the environment's name): the same on every run
//! and every machine, different per target environment, and unrelated to the source ID for
//! anyone without the namespace. It keeps the source ID's shape, so that applications that
//! parse or validate IDs keep working:
//!
//! - a UUID (`8-4-4-4-12` hex digits) stays a UUID: version 8 (RFC 9562's custom version), the
//!   RFC's variant, the original's letter case;
//! - any other string keeps its length and each character's class: a digit becomes a digit, a
//!   lowercase letter a lowercase letter (a hex digit when the whole ID is hex), an uppercase one
//!   an uppercase one, and every other character (`-`, `_`, `#`, `:`) stays where it is;
//! - a number stays a whole number of as many digits, at least 16 (fewer would collide on tables
//!   of a few thousand items; 16 digits starting with 1 to 8 stay below 2^53, so JavaScript reads
//!   them exactly);
//! - binary stays binary of the same length.
//!
//! A string or binary shape with fewer than [`MIN_BITS`] bits of values (`cust_0042`, `---`) is
//! refused: its new IDs would collide. Numbers have about 53 bits; the adapter that remaps a table
//! still checks every new ID against the others and rejects a second item that gets one.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::pure::item::{self, AttributeValue, Item};

/// One step of a reference's path: a map's key, or every element of a list or set (`[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Each,
}

/// Where an attribute holds another table's ID: `projectId`, `address.propertyId`,
/// `contactIds[]`, `items[].contactId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// As the mapping writes it, for messages.
    pub path: String,
    pub steps: Vec<Step>,
    /// The referenced table's mapping name.
    pub table: String,
}

impl Reference {
    /// Parses a path: keys separated by `.`, each optionally followed by `[]` (one or more).
    pub fn parse(path: &str, table: &str) -> Result<Reference, String> {
        let mut steps = Vec::new();
        for part in path.split('.') {
            let key = part.trim_end_matches("[]");
            let each = (part.len() - key.len()) / 2;
            if key.is_empty() || key.contains('[') || key.contains(']') || (part.len() - key.len()) % 2 != 0 {
                return Err(format!(
                    "reference \"{path}\" is not a path: write attribute names separated by `.` (a map's key), each \
                     followed by `[]` for every element of a list or set, as in \"address.propertyId\" or \
                     \"items[].contactId\""
                ));
            }
            steps.push(Step::Key(key.to_string()));
            steps.extend(std::iter::repeat_n(Step::Each, each));
        }
        Ok(Reference { path: path.to_string(), steps, table: table.to_string() })
    }

    /// The top-level attribute the reference is in.
    pub fn attribute(&self) -> &str {
        match &self.steps[0] {
            Step::Key(key) => key,
            Step::Each => unreachable!("a path starts with a key"),
        }
    }
}

/// An ID as text that tells the types apart (`S:abc`, `N:12`, `B:0a0b`): the key of the sets of
/// known IDs and of the ID map.
pub fn id_text(value: &AttributeValue) -> Option<String> {
    match value {
        AttributeValue::S(s) => Some(format!("S:{s}")),
        AttributeValue::N(n) => Some(format!("N:{n}")),
        AttributeValue::B(b) => Some(format!("B:{}", hex(b.as_ref()))),
        _ => None,
    }
}

/// An ID as a message shows it: `"abc"`, `12`.
pub fn show_id(value: &AttributeValue) -> String {
    item::describe_value(value)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why an ID cannot be remapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is {0}, not an ID (a string, a number or binary)")]
    NotAnId(String),
    #[error("is an empty string, which has no shape to keep")]
    Empty,
    #[error("is the number {0}: only whole non-negative numbers are remapped as number IDs")]
    NotWhole(String),
    /// A shape with fewer than [`MIN_BITS`] bits of values: new IDs of it would collide.
    #[error(
        "has a shape with about {bits} bits of values (its letters and digits), too few for new IDs of that shape \
         to stay apart ({MIN_BITS} needed, as in a UUID or a 14-character alphanumeric ID): give the source items \
         longer IDs, or leave `id` out of the mapping to copy the IDs as they are"
    )]
    FewValues { bits: u32 },
}

/// The least entropy a string or binary ID's shape must have for its new IDs: two new IDs of
/// 64 bits collide once in about 10^7 promotions of a million items.
pub const MIN_BITS: u32 = 64;

/// The keyed stream of bytes a new ID is drawn from: HMAC-SHA-256 blocks of the source table,
/// the typed source ID and a block counter, keyed by the namespace.
struct Stream<'a> {
    namespace: &'a str,
    table: &'a str,
    id: &'a str,
    block: u32,
    bytes: Vec<u8>,
    at: usize,
}

impl<'a> Stream<'a> {
    fn new(namespace: &'a str, table: &'a str, id: &'a str) -> Self {
        Stream { namespace, table, id, block: 0, bytes: Vec::new(), at: 0 }
    }

    fn next(&mut self) -> u8 {
        if self.at == self.bytes.len() {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.namespace.as_bytes()).expect("any key length");
            // Lengths first, so that no two (table, id) pairs give the same message.
            for part in [b"ddbsync-id-1".as_slice(), self.table.as_bytes(), self.id.as_bytes()] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
            mac.update(&self.block.to_be_bytes());
            self.block += 1;
            self.bytes = mac.finalize().into_bytes().to_vec();
            self.at = 0;
        }
        self.at += 1;
        self.bytes[self.at - 1]
    }

    /// A value below `n` (at most 256), without the bias of a plain modulo.
    fn below(&mut self, n: u16) -> u8 {
        let limit = 256 - 256 % n;
        loop {
            let b = u16::from(self.next());
            if b < limit {
                return (b % n) as u8;
            }
        }
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// The new ID of source ID `id` of source table `table` in `namespace`, in the same shape.
pub fn new_id(namespace: &str, table: &str, id: &AttributeValue) -> Result<AttributeValue, IdError> {
    let text = id_text(id).ok_or_else(|| IdError::NotAnId(item::type_name(id).to_string()))?;
    let mut stream = Stream::new(namespace, table, &text);
    Ok(match id {
        AttributeValue::S(s) if s.is_empty() => return Err(IdError::Empty),
        AttributeValue::S(s) if is_uuid(s) => {
            let mut bytes: Vec<u8> = (0..16).map(|_| stream.next()).collect();
            bytes[6] = (bytes[6] & 0x0f) | 0x80;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let h = hex(&bytes);
            let uuid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            let upper = s.bytes().any(|c| c.is_ascii_uppercase());
            AttributeValue::S(if upper { uuid.to_ascii_uppercase() } else { uuid })
        }
        AttributeValue::S(s) => {
            // Hex when it holds a hex letter: digits alone stay digits.
            let lower_hex = s.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                && s.bytes().any(|c| (b'a'..=b'f').contains(&c));
            let upper_hex = s.bytes().all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c))
                && s.bytes().any(|c| (b'A'..=b'F').contains(&c));
            let bits: f64 = s
                .chars()
                .map(|c| match c {
                    _ if (lower_hex || upper_hex) && c.is_ascii_alphanumeric() => 4.0,
                    '0'..='9' => 10f64.log2(),
                    'a'..='z' | 'A'..='Z' => 26f64.log2(),
                    _ => 0.0,
                })
                .sum();
            if bits < f64::from(MIN_BITS) {
                return Err(IdError::FewValues { bits: bits as u32 });
            }
            let shaped = s
                .chars()
                .map(|c| {
                    let pick = |stream: &mut Stream, set: &[u8]| set[stream.below(set.len() as u16) as usize] as char;
                    match c {
                        _ if lower_hex && c.is_ascii_alphanumeric() => pick(&mut stream, b"0123456789abcdef"),
                        _ if upper_hex && c.is_ascii_alphanumeric() => pick(&mut stream, b"0123456789ABCDEF"),
                        '0'..='9' => pick(&mut stream, b"0123456789"),
                        'a'..='z' => pick(&mut stream, b"abcdefghijklmnopqrstuvwxyz"),
                        'A'..='Z' => pick(&mut stream, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
                        other => other,
                    }
                })
                .collect();
            AttributeValue::S(shaped)
        }
        AttributeValue::N(n) => {
            let digits = n.trim_start_matches('+');
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(IdError::NotWhole(n.clone()));
            }
            // At least 16 digits, and then below 2^53 (a first digit of 1 to 8): JavaScript reads them exactly.
            let length = digits.trim_start_matches('0').len().clamp(16, 38);
            let mut out = String::with_capacity(length);
            let first = if length == 16 { 8 } else { 9 };
            out.push((b'1' + stream.below(first)) as char);
            for _ in 1..length {
                out.push((b'0' + stream.below(10)) as char);
            }
            AttributeValue::N(out)
        }
        AttributeValue::B(b) if b.as_ref().len() * 8 < MIN_BITS as usize => {
            return Err(IdError::FewValues { bits: b.as_ref().len() as u32 * 8 })
        }
        AttributeValue::B(b) => {
            let bytes: Vec<u8> = (0..b.as_ref().len()).map(|_| stream.next()).collect();
            AttributeValue::B(bytes.into())
        }
        _ => unreachable!("id_text answered"),
    })
}

/// What a promotion of one table needs to know besides the item.
pub struct Remapper<'a> {
    pub namespace: &'a str,
    /// The item's own source table (its physical name) and ID attribute, when its IDs are remapped.
    pub own: Option<(&'a str, &'a str)>,
    pub references: &'a [Reference],
    /// The physical source table of a mapping's name.
    pub source_table: &'a dyn Fn(&str) -> &'a str,
    /// Whether the referenced table's source holds an item with this ID ([`id_text`]).
    pub exists: &'a dyn Fn(&str, &str) -> bool,
}

/// The IDs a reference holds in an item, as the source has them (a value of another shape is
/// left for [`Remapper::apply`] to refuse).
pub fn referenced_ids(item: &Item, reference: &Reference) -> Vec<AttributeValue> {
    fn walk(value: &AttributeValue, steps: &[Step], out: &mut Vec<AttributeValue>) {
        match (steps.first(), value) {
            (None, AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::B(_)) => out.push(value.clone()),
            (Some(Step::Key(key)), AttributeValue::M(map)) => {
                if let Some(inner) = map.get(key) {
                    walk(inner, &steps[1..], out);
                }
            }
            (Some(Step::Each), AttributeValue::L(list)) => list.iter().for_each(|v| walk(v, &steps[1..], out)),
            (Some(Step::Each), AttributeValue::Ss(set)) if steps.len() == 1 => {
                out.extend(set.iter().map(|s| AttributeValue::S(s.clone())))
            }
            (Some(Step::Each), AttributeValue::Ns(set)) if steps.len() == 1 => {
                out.extend(set.iter().map(|n| AttributeValue::N(n.clone())))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(value) = item.get(reference.attribute()) {
        walk(value, &reference.steps[1..], &mut out);
    }
    out
}

/// What [`Remapper::apply`] did to an item: its source and new ID (when its IDs are remapped),
/// and per reference of the mapping, how many IDs it rewrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    pub ids: Option<(AttributeValue, AttributeValue)>,
    pub references: Vec<u64>,
}

/// What a promotion did to a table's IDs, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Promoted {
    /// The mapping's name.
    pub table: String,
    pub source_table: String,
    /// Items whose ID was replaced by its new one.
    pub ids: u64,
    /// Per reference path, the IDs rewritten.
    pub references: Vec<(String, u64)>,
}

/// Why an item cannot be promoted: the top-level attribute to blame, and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub attribute: String,
    pub reason: String,
}

impl Remapper<'_> {
    /// Rewrites the item's ID and references in place; the item's source ID ([`id_text`]) and the
    /// new one, for the ID map and the collision check. A refusal leaves the item half rewritten:
    /// it is rejected whole.
    pub fn apply(&self, item: &mut Item) -> Result<Applied, Refusal> {
        let mut applied = Applied { ids: None, references: vec![0; self.references.len()] };
        if let Some((table, attribute)) = self.own {
            let refuse = |reason: String| Refusal { attribute: attribute.to_string(), reason };
            let Some(id) = item.get(attribute) else {
                return Err(refuse(format!(
                    "the item has no \"{attribute}\", the mapping's id attribute; give the item its ID in the source, \
                     or name the attribute that holds the IDs with the mapping's `id`"
                )));
            };
            let new = new_id(self.namespace, table, id).map_err(|e| {
                refuse(format!(
                    "the ID \"{attribute}\" {e}; fix the item in the source, or name the attribute that holds the IDs \
                     with the mapping's `id`"
                ))
            })?;
            applied.ids = Some((id.clone(), new.clone()));
            item.insert(attribute.to_string(), new);
        }
        for (at, reference) in self.references.iter().enumerate() {
            let Some(value) = item.get_mut(reference.attribute()) else { continue };
            applied.references[at] =
                self.rewrite(value, &reference.steps[1..], reference).map_err(|reason| Refusal {
                    attribute: reference.attribute().to_string(),
                    reason: format!("reference \"{}\" (to {}) {reason}", reference.path, reference.table),
                })?;
        }
        Ok(applied)
    }

    /// Rewrites each member of a string or number set (`wrap` makes a member an attribute); two
    /// members with one new ID would be one, as a set holds each value once.
    fn rewrite_set(
        &self,
        set: &mut Vec<String>,
        wrap: fn(String) -> AttributeValue,
        reference: &Reference,
    ) -> Result<u64, String> {
        let mut out: Vec<String> = Vec::with_capacity(set.len());
        for member in set.iter() {
            let mut value = wrap(member.clone());
            self.rewrite(&mut value, &[], reference)?;
            if let AttributeValue::S(new) | AttributeValue::N(new) = value {
                if !out.contains(&new) {
                    out.push(new);
                }
            }
        }
        *set = out;
        Ok(set.len() as u64)
    }

    /// Rewrites the IDs `steps` lead to; how many.
    fn rewrite(&self, value: &mut AttributeValue, steps: &[Step], reference: &Reference) -> Result<u64, String> {
        if matches!(value, AttributeValue::Null(_)) {
            return Ok(0);
        }
        let table = (self.source_table)(&reference.table);
        match steps.first() {
            None => {
                let text = id_text(value).ok_or_else(|| {
                    let fix = match value {
                        AttributeValue::L(_) | AttributeValue::Ss(_) | AttributeValue::Ns(_) | AttributeValue::Bs(_) => {
                            format!("for a list or set of IDs write \"{}[]\" in the mapping's references", reference.path)
                        }
                        AttributeValue::M(_) => format!(
                            "for an ID inside a map write its key in the path (\"{}.<key>\") in the mapping's references",
                            reference.path
                        ),
                        _ => "fix or clear the reference in the source".to_string(),
                    };
                    format!("holds {}, not an ID; {fix}", item::type_name(value))
                })?;
                if !(self.exists)(&reference.table, &text) {
                    return Err(format!(
                        "is {}, which the source table {table} does not hold, or holds in an item that is itself \
                         rejected: the item would point at nothing in the target; fix or clear the reference in the \
                         source, or fix the referenced item",
                        show_id(value)
                    ));
                }
                *value = new_id(self.namespace, table, value).map_err(|e| format!("is an ID that {e}"))?;
                Ok(1)
            }
            Some(Step::Key(key)) => match value {
                AttributeValue::M(map) => match map.get_mut(key) {
                    Some(inner) => self.rewrite(inner, &steps[1..], reference),
                    None => Ok(0),
                },
                other => Err(format!(
                    "holds {} where a map with \"{key}\" was expected; fix the item in the source, or the path in the \
                     mapping's references",
                    item::type_name(other)
                )),
            },
            Some(Step::Each) => match value {
                AttributeValue::L(list) => list
                    .iter_mut()
                    .try_fold(0, |count, element| Ok(count + self.rewrite(element, &steps[1..], reference)?)),
                AttributeValue::Ss(set) if steps.len() == 1 => self.rewrite_set(set, AttributeValue::S, reference),
                AttributeValue::Ns(set) if steps.len() == 1 => self.rewrite_set(set, AttributeValue::N, reference),
                other => Err(format!(
                    "holds {} where a list or set was expected; fix the item in the source, or the path in the \
                     mapping's references",
                    item::type_name(other)
                )),
            },
        }
    }
}

/// The tables in an order that writes every referenced table before the tables that reference
/// it, keeping the given order where references do not decide; a cycle is returned, each table
/// once, as the error (`Quotes → Projects → Quotes`).
pub fn dependency_order(tables: &[(String, Vec<String>)]) -> Result<Vec<usize>, Vec<String>> {
    let index = |name: &str| tables.iter().position(|(n, _)| n == name);
    let mut order = Vec::with_capacity(tables.len());
    // 0: not visited, 1: on the path, 2: placed.
    let mut state = vec![0u8; tables.len()];
    fn visit(
        at: usize,
        tables: &[(String, Vec<String>)],
        index: &dyn Fn(&str) -> Option<usize>,
        state: &mut [u8],
        path: &mut Vec<usize>,
        order: &mut Vec<usize>,
    ) -> Result<(), Vec<String>> {
        match state[at] {
            2 => return Ok(()),
            1 => {
                let from = path.iter().position(|&p| p == at).unwrap_or(0);
                let mut cycle: Vec<String> = path[from..].iter().map(|&p| tables[p].0.clone()).collect();
                cycle.push(tables[at].0.clone());
                return Err(cycle);
            }
            _ => {}
        }
        state[at] = 1;
        path.push(at);
        // A table that references itself needs no order: its items are written together.
        for referenced in tables[at].1.iter().filter(|r| **r != tables[at].0) {
            if let Some(next) = index(referenced) {
                visit(next, tables, index, state, path, order)?;
            }
        }
        path.pop();
        state[at] = 2;
        order.push(at);
        Ok(())
    }
    for at in 0..tables.len() {
        visit(at, tables, &index, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const UUID: &str = "3f2b8c1e-9d4a-4b6e-8f1a-2c3d4e5f6a7b";

    #[test]
    fn a_new_id_is_the_same_every_time_and_differs_per_namespace_table_and_id() {
        let id = AttributeValue::S(UUID.into());
        let a = new_id("prod", "Contacts-x-dev", &id).unwrap();
        assert_eq!(a, new_id("prod", "Contacts-x-dev", &id).unwrap());
        assert_ne!(a, new_id("staging", "Contacts-x-dev", &id).unwrap());
        assert_ne!(a, new_id("prod", "Quotes-x-dev", &id).unwrap());
        assert_ne!(a, new_id("prod", "Contacts-x-dev", &AttributeValue::S(UUID.replace('3', "4"))).unwrap());
        // The typed text: the string "12" and the number 12 are different IDs.
        assert_ne!(
            id_text(&new_id("prod", "t", &AttributeValue::S("1234567890123456789012".into())).unwrap()).unwrap()[2..],
            id_text(&new_id("prod", "t", &AttributeValue::N("1234567890123456789012".into())).unwrap()).unwrap()[2..]
        );
    }

    #[test]
    fn golden_new_ids() {
        // Frozen: every promoted item's ID depends on these. Computed apart from this code:
        // Python's hmac and hashlib, with the message layout of `GOLDEN_UUID`'s comment.
        let id = new_id("prod", "Contacts-fvn7t5hbobaxjklhrqzdl4ac34-dev", &AttributeValue::S(UUID.into())).unwrap();
        assert_eq!(id, AttributeValue::S(GOLDEN_UUID.into()));
    }

    /// HMAC-SHA-256(key "prod", be64(12) "ddbsync-id-1" be64(len) table be64(len) "S:<uuid>" be32(0)),
    /// first 16 bytes, version 8 and the RFC variant set.
    const GOLDEN_UUID: &str = "dd729497-0b43-8bf5-98be-8d258c304b85";

    #[test]
    fn the_shape_is_kept() {
        let shape = |v: &AttributeValue| match v {
            AttributeValue::S(s) => s
                .chars()
                .map(|c| match c {
                    '0'..='9' => 'd',
                    'a'..='z' => 'l',
                    'A'..='Z' => 'u',
                    o => o,
                })
                .collect::<String>(),
            other => format!("{other:?}"),
        };
        let new = |s: &str| new_id("prod", "t", &AttributeValue::S(s.into())).unwrap();
        let AttributeValue::S(uuid) = new(UUID) else { panic!() };
        assert!(is_uuid(&uuid) && uuid.as_bytes()[14] == b'8' && b"89ab".contains(&uuid.as_bytes()[19]), "{uuid}");
        let AttributeValue::S(upper) = new(&UUID.to_uppercase()) else { panic!() };
        assert!(is_uuid(&upper) && upper == upper.to_uppercase(), "{upper}");
        for s in ["customer_0042_abcdefgh", "ORDER-2024-A7BCDEFGHJKL", "a:b:c:defghijklmnop"] {
            assert_eq!(shape(&new(s)), shape(&AttributeValue::S(s.into())), "{s}");
        }
        let AttributeValue::S(hexed) = new("deadbeef00deadbeef") else { panic!() };
        assert!(hexed.len() == 18 && hexed.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Too few values in the shape: refused, not collided (or copied, for one without letters or digits).
        let few = |s: &str| new_id("prod", "t", &AttributeValue::S(s.into()));
        for s in ["x", "cust_0042", "---", "日本語", "deadbeef"] {
            assert!(matches!(few(s), Err(IdError::FewValues { .. })), "{s}: {:?}", few(s));
        }
        assert!(few("0123456789abcdef").is_ok(), "16 hex digits are 64 bits");
        let AttributeValue::S(digits) = new("12345678901234567890") else { panic!() };
        assert!(digits.len() == 20 && digits.bytes().all(|c| c.is_ascii_digit()), "digits stay digits: {digits}");
        let n = |s: &str| new_id("prod", "t", &AttributeValue::N(s.into()));
        for small in 0..200 {
            let AttributeValue::N(short) = n(&small.to_string()).unwrap() else { panic!() };
            assert!(short.len() == 16 && short.parse::<u64>().unwrap() < 1 << 53, "{short}");
        }
        let AttributeValue::N(long) = n("12345678901234567890").unwrap() else { panic!() };
        assert_eq!(long.len(), 20);
        assert_eq!(n("1.5"), Err(IdError::NotWhole("1.5".into())));
        assert_eq!(n("-3"), Err(IdError::NotWhole("-3".into())));
        assert_eq!(new_id("p", "t", &AttributeValue::S(String::new())), Err(IdError::Empty));
        assert!(matches!(new_id("p", "t", &AttributeValue::Bool(true)), Err(IdError::NotAnId(_))));
        let AttributeValue::B(b) = new_id("p", "t", &AttributeValue::B(vec![1; 9].into())).unwrap() else { panic!() };
        assert_eq!(b.as_ref().len(), 9);
        assert!(matches!(
            new_id("p", "t", &AttributeValue::B(vec![1, 2, 3].into())),
            Err(IdError::FewValues { bits: 24 })
        ));
    }

    #[test]
    fn uuids_do_not_collide_in_a_large_table() {
        let mut seen = HashSet::new();
        for i in 0..20_000 {
            let id = AttributeValue::S(format!("{:08x}-0000-4000-8000-{i:012x}", i));
            assert!(seen.insert(id_text(&new_id("prod", "t", &id).unwrap()).unwrap()));
        }
    }

    fn remapper<'a>(refs: &'a [Reference], exists: &'a dyn Fn(&str, &str) -> bool) -> Remapper<'a> {
        Remapper {
            namespace: "prod",
            own: Some(("Quotes-dev", "id")),
            references: refs,
            source_table: &|name| match name {
                "Projects" => "Projects-dev",
                _ => "Contacts-dev",
            },
            exists,
        }
    }

    #[test]
    fn references_are_rewritten_at_any_depth_and_a_missing_one_is_refused() {
        let refs = vec![
            Reference::parse("projectId", "Projects").unwrap(),
            Reference::parse("people.agent", "Contacts").unwrap(),
            Reference::parse("lines[].contactId", "Contacts").unwrap(),
            Reference::parse("watchers[]", "Contacts").unwrap(),
        ];
        let known = |_: &str, id: &str| !id.starts_with("S:gone");
        // IDs long enough for new ones of their shape (`MIN_BITS`).
        let text = |v: &str| format!("{v}-0123456789abcdefgh");
        let s = |v: &str| AttributeValue::S(text(v));
        let mut item: Item = [
            ("id".to_string(), s("q1")),
            ("projectId".to_string(), s("p1")),
            ("people".to_string(), AttributeValue::M([("agent".to_string(), s("c1"))].into())),
            (
                "lines".to_string(),
                AttributeValue::L(vec![
                    AttributeValue::M([("contactId".to_string(), s("c2"))].into()),
                    AttributeValue::M([("other".to_string(), s("x"))].into()),
                ]),
            ),
            ("watchers".to_string(), AttributeValue::Ss(vec![text("c1"), text("c2")])),
            ("title".to_string(), s("c1")),
        ]
        .into();
        let applied = remapper(&refs, &known).apply(&mut item).unwrap();
        assert_eq!(applied.references, [1, 1, 1, 2], "IDs rewritten per reference");
        let (old, new) = applied.ids.unwrap();
        assert_eq!((old, &new), (s("q1"), &new_id("prod", "Quotes-dev", &s("q1")).unwrap()));
        assert_eq!(item["id"], new);
        assert_eq!(item["projectId"], new_id("prod", "Projects-dev", &s("p1")).unwrap());
        let c1 = new_id("prod", "Contacts-dev", &s("c1")).unwrap();
        let c2 = new_id("prod", "Contacts-dev", &s("c2")).unwrap();
        assert_eq!(item["people"], AttributeValue::M([("agent".to_string(), c1.clone())].into()));
        let AttributeValue::L(lines) = &item["lines"] else { panic!() };
        assert_eq!(lines[0], AttributeValue::M([("contactId".to_string(), c2.clone())].into()));
        assert_eq!(lines[1], AttributeValue::M([("other".to_string(), s("x"))].into()), "no reference there");
        let (AttributeValue::S(c1), AttributeValue::S(c2)) = (c1, c2) else { panic!() };
        assert_eq!(item["watchers"], AttributeValue::Ss(vec![c1, c2]));
        assert_eq!(item["title"], s("c1"), "not a reference");

        let before: Item = [
            (
                "lines".to_string(),
                AttributeValue::L(vec![AttributeValue::M([("contactId".to_string(), s("c2"))].into())]),
            ),
            ("watchers".to_string(), AttributeValue::Ss(vec![text("c1"), text("c3")])),
            ("people".to_string(), s("not a map")),
        ]
        .into();
        assert_eq!(referenced_ids(&before, &refs[2]), [s("c2")]);
        assert_eq!(referenced_ids(&before, &refs[3]), [s("c1"), s("c3")]);
        assert!(referenced_ids(&before, &refs[1]).is_empty() && referenced_ids(&before, &refs[0]).is_empty());
        let mut dangling: Item = [("id".to_string(), s("q2")), ("projectId".to_string(), s("gone"))].into();
        let refusal = remapper(&refs, &known).apply(&mut dangling).unwrap_err();
        assert_eq!(refusal.attribute, "projectId");
        assert!(
            refusal.reason.contains("\"gone-0123456789abcdefgh\"") && refusal.reason.contains("Projects-dev"),
            "{}",
            refusal.reason
        );
        assert!(refusal.reason.contains("or holds in an item that is itself rejected"), "{}", refusal.reason);
        let mut wrong: Item = [("id".to_string(), s("q3")), ("people".to_string(), s("c1"))].into();
        let refusal = remapper(&refs, &known).apply(&mut wrong).unwrap_err();
        assert!(refusal.reason.contains("where a map with \"agent\" was expected"), "{}", refusal.reason);
        let mut null: Item =
            [("id".to_string(), s("q4")), ("projectId".to_string(), AttributeValue::Null(true))].into();
        assert!(remapper(&refs, &known).apply(&mut null).is_ok(), "a NULL reference points at nothing");
        let mut no_id: Item = [("projectId".to_string(), s("p1"))].into();
        let refusal = remapper(&refs, &known).apply(&mut no_id).unwrap_err();
        assert_eq!(refusal.attribute, "id");
        assert!(
            refusal.reason.contains("name the attribute that holds the IDs with the mapping's `id`"),
            "{refusal:?}"
        );
    }

    #[test]
    fn a_refusal_says_how_to_fix_it() {
        let refs = vec![
            Reference::parse("projectId", "Projects").unwrap(),
            Reference::parse("people.agent", "Contacts").unwrap(),
        ];
        let known = |_: &str, _: &str| true;
        let s = |v: &str| AttributeValue::S(format!("{v}-0123456789abcdefgh"));
        let reason = |mut item: Item| remapper(&refs, &known).apply(&mut item).unwrap_err().reason;
        let list =
            reason([("id".to_string(), s("q")), ("projectId".to_string(), AttributeValue::L(vec![s("p1")]))].into());
        assert!(list.contains("holds a list, not an ID; for a list or set of IDs write \"projectId[]\""), "{list}");
        let map = reason(
            [
                ("id".to_string(), s("q")),
                ("projectId".to_string(), AttributeValue::M([("v".to_string(), s("p1"))].into())),
            ]
            .into(),
        );
        assert!(map.contains("write its key in the path (\"projectId.<key>\")"), "{map}");
        let flat = reason([("id".to_string(), s("q")), ("people".to_string(), s("c1"))].into());
        assert!(flat.contains("fix the item in the source, or the path in the mapping's references"), "{flat}");
        let bad_id = reason([("id".to_string(), AttributeValue::Bool(true))].into());
        assert!(
            bad_id.contains("is a boolean, not an ID") && bad_id.contains("fix the item in the source"),
            "{bad_id}"
        );
    }

    #[test]
    fn paths_parse_and_bad_ones_are_refused() {
        let r = Reference::parse("items[].ids[][]", "T").unwrap();
        assert_eq!(r.steps, [Step::Key("items".into()), Step::Each, Step::Key("ids".into()), Step::Each, Step::Each]);
        assert_eq!(r.attribute(), "items");
        for bad in ["", ".a", "a.", "a[", "a[]b", "[]", "a..b", "a[0]"] {
            assert!(Reference::parse(bad, "T").is_err(), "{bad}");
        }
    }

    #[test]
    fn tables_are_ordered_parents_first_and_a_cycle_is_named() {
        let t = |n: &str, refs: &[&str]| (n.to_string(), refs.iter().map(|r| r.to_string()).collect());
        let tables = vec![
            t("QuoteItems", &["Quotes", "Projects"]),
            t("Quotes", &["Projects", "Contacts"]),
            t("Contacts", &[]),
            t("Projects", &["Contacts", "Properties"]),
            t("Properties", &[]),
        ];
        let order: Vec<&str> = dependency_order(&tables).unwrap().iter().map(|&i| tables[i].0.as_str()).collect();
        assert_eq!(order, ["Contacts", "Properties", "Projects", "Quotes", "QuoteItems"]);
        let cyclic = vec![t("A", &["B"]), t("B", &["C"]), t("C", &["A"]), t("D", &[])];
        assert_eq!(dependency_order(&cyclic).unwrap_err(), ["A", "B", "C", "A"]);
        assert_eq!(dependency_order(&[t("A", &["A"])]).unwrap(), [0], "a self-reference is no cycle");
    }
}
