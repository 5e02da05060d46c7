//! The item model shared by the whole engine: a DynamoDB item, its key, and its billed size.
//!
//! Items use the SDK's `AttributeValue` directly: it is plain data, and the target adapter can send it
//! without a copy. Sizes follow DynamoDB's published rules (attribute names count, numbers take about
//! one byte per two significant digits) and are used only for estimates; measured capacity from
//! `ReturnConsumedCapacity` is what the report bills.

use std::collections::HashMap;

pub use aws_sdk_dynamodb::types::AttributeValue;

use crate::number;

/// One DynamoDB item, attribute name → value.
pub type Item = HashMap<String, AttributeValue>;

/// The attribute in which ddbsync stores each item's content hash (hex MD5). Never hashed itself.
pub const HASH_ATTR: &str = "_ddbsync_hash";

/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

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

/// A scalar's text as a user would type it; other types by their DynamoDB type name.
fn describe_value(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) => format!("{s:?}"),
        AttributeValue::N(n) => n.clone(),
        AttributeValue::B(b) => format!("<{} bytes>", b.as_ref().len()),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "NULL".into(),
        _ => "<non-scalar>".into(),
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
}
