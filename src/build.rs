//! Source rows → DynamoDB items. Pure.
//!
//! A [`Plan`] is made once per query from the columns PostgreSQL describes, before any row is read,
//! so that a mapping that cannot work (a key column the query lacks, a type that does not convert)
//! fails before anything is written. [`Plan::build`] then turns each row into an item with its key
//! digest, content hash and estimated size, or into a [`Reject`] that names the row's key and the
//! reason, so that nothing is dropped silently.

use tokio_postgres::types::Type;

use crate::convert::{self, ConvertError};
use crate::hash::{self, Digest, Excluded};
use crate::item::{self, AttributeValue, Item, HASH_ATTR, MAX_ITEM_BYTES};
use crate::profile::{KeySource, Part, ProfileError, TableMapping};

/// A source row turned into an item ready to diff and write.
#[derive(Debug, Clone)]
pub struct Built {
    /// The item, its content hash stored in [`HASH_ATTR`].
    pub item: Item,
    pub key: Digest,
    pub hash: Digest,
    /// Estimated size in bytes, hash attribute included.
    pub size: usize,
}

/// A row that cannot become an item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reject {
    /// The row's key as far as it could be read (`lesson_id=7`).
    pub key: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
enum KeyPlan {
    Column { attribute: String, index: usize },
    Template { attribute: String, parts: Vec<TemplatePart> },
}

#[derive(Debug, Clone)]
enum TemplatePart {
    Text(String),
    Column(usize),
}

/// Everything needed to build items from one query's rows.
#[derive(Debug, Clone)]
pub struct Plan {
    columns: Vec<(String, Type)>,
    keys: Vec<KeyPlan>,
    /// Key attribute name and DynamoDB type (`S`, `N`, `B`), partition first.
    pub key_schema: Vec<(String, &'static str)>,
    excluded: Excluded,
    defaults: Vec<(String, AttributeValue)>,
}

impl Plan {
    /// Checks the mapping against the query's columns.
    pub fn new(mapping: &TableMapping, columns: Vec<(String, Type)>) -> Result<Plan, ProfileError> {
        let listed = || {
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            names.join(", ")
        };
        for (i, (name, ty)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(other, _)| other == name) {
                return Err(mapping.error(format!(
                    "the query returns column \"{name}\" twice; give one of them another name (AS …)"
                )));
            }
            convert::supported(ty).map_err(|e| mapping.error(format!("column \"{name}\": {e}")))?;
        }
        let index_of = |column: &str, role: &str| {
            columns.iter().position(|(n, _)| n == column).ok_or_else(|| {
                mapping.error(format!("{role} column \"{column}\" is not in the query's columns ({})", listed()))
            })
        };
        let mut keys = Vec::new();
        let mut key_schema = Vec::new();
        for spec in mapping.keys() {
            match &spec.source {
                KeySource::Column(column) => {
                    let index = index_of(column, "key")?;
                    let ty = &columns[index].1;
                    let key_type = convert::key_type(ty);
                    if key_type == "S"
                        && ![
                            Type::TEXT,
                            Type::VARCHAR,
                            Type::BPCHAR,
                            Type::NAME,
                            Type::UUID,
                            Type::DATE,
                            Type::TIMESTAMP,
                            Type::TIMESTAMPTZ,
                        ]
                        .contains(ty)
                    {
                        return Err(mapping.error(format!(
                            "key column \"{column}\" has type {}, which cannot be a DynamoDB key (use a number, text or bytea column)",
                            ty.name()
                        )));
                    }
                    key_schema.push((spec.attribute.clone(), key_type));
                    keys.push(KeyPlan::Column { attribute: spec.attribute.clone(), index });
                }
                KeySource::Template(template) => {
                    if columns.iter().any(|(n, _)| *n == spec.attribute) {
                        return Err(mapping.error(format!(
                            "key \"{}\" is built from a template but the query also returns a column of that name",
                            spec.attribute
                        )));
                    }
                    let parts = template
                        .parts
                        .iter()
                        .map(|p| match p {
                            Part::Text(t) => Ok(TemplatePart::Text(t.clone())),
                            Part::Column(c) => index_of(c, "template").map(TemplatePart::Column),
                        })
                        .collect::<Result<_, _>>()?;
                    key_schema.push((spec.attribute.clone(), "S"));
                    keys.push(KeyPlan::Template { attribute: spec.attribute.clone(), parts });
                }
            }
        }
        Ok(Plan { columns, keys, key_schema, excluded: mapping.excluded.clone(), defaults: mapping.defaults.clone() })
    }

    /// The content hash of an item as stored, computed as for a built one (what `verify` compares).
    pub fn content_hash(&self, item: &Item) -> Digest {
        hash::content_hash(item, &self.excluded)
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.key_schema.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Builds one item from a row's raw values (binary wire format, `None` for NULL).
    pub fn build(&self, raw: &[Option<&[u8]>]) -> Result<Built, Reject> {
        let mut item = Item::with_capacity(self.columns.len() + 2);
        let mut failure: Option<String> = None;
        for ((name, ty), raw) in self.columns.iter().zip(raw) {
            match convert::convert(ty, *raw) {
                Ok(Some(value)) => {
                    item.insert(name.clone(), value);
                }
                Ok(None) => {
                    if let Some((_, default)) = self.defaults.iter().find(|(n, _)| n == name) {
                        item.insert(name.clone(), default.clone());
                    }
                }
                Err(e) => {
                    failure.get_or_insert_with(|| column_error(name, &e));
                }
            }
        }
        let key_values = self.key_values(&item);
        let describe = |item: &Item| item::describe_key(item, &self.key_names());
        let key_values = match (key_values, failure) {
            (Ok(values), None) => values,
            (Ok(values), Some(reason)) => {
                for (name, value) in values {
                    item.insert(name, value);
                }
                return Err(Reject { key: describe(&item), reason });
            }
            (Err(reason), _) => return Err(Reject { key: describe(&item), reason }),
        };
        for (name, value) in key_values {
            item.insert(name, value);
        }
        let key_refs: Vec<&AttributeValue> = self.key_schema.iter().map(|(n, _)| &item[n]).collect();
        let key = hash::key_digest(&key_refs);
        let (hash, content_size) = hash::hash_and_size(&item, &self.excluded);
        let hex = hash::to_hex(&hash);
        let size = content_size + HASH_ATTR.len() + hex.len();
        item.insert(HASH_ATTR.to_string(), AttributeValue::S(hex));
        if size > MAX_ITEM_BYTES {
            return Err(Reject {
                key: describe(&item),
                reason: format!("the item is {} KB, over DynamoDB's 400 KB limit", size.div_ceil(1024)),
            });
        }
        Ok(Built { item, key, hash, size })
    }

    /// Values of the key attributes, or why there are none.
    fn key_values(&self, item: &Item) -> Result<Vec<(String, AttributeValue)>, String> {
        let column_value = |index: usize| {
            let name = &self.columns[index].0;
            match item.get(name) {
                None => Err(format!("key column \"{name}\" is NULL")),
                Some(AttributeValue::S(s)) if s.is_empty() => Err(format!("key column \"{name}\" is empty")),
                Some(AttributeValue::B(b)) if b.as_ref().is_empty() => Err(format!("key column \"{name}\" is empty")),
                Some(value) => Ok(value),
            }
        };
        self.keys
            .iter()
            .map(|key| match key {
                KeyPlan::Column { attribute, index } => Ok((attribute.clone(), column_value(*index)?.clone())),
                KeyPlan::Template { attribute, parts } => {
                    let mut text = String::new();
                    for part in parts {
                        match part {
                            TemplatePart::Text(t) => text.push_str(t),
                            TemplatePart::Column(index) => match column_value(*index)? {
                                AttributeValue::S(s) => text.push_str(s),
                                AttributeValue::N(n) => text.push_str(n),
                                AttributeValue::Bool(b) => text.push_str(&b.to_string()),
                                _ => {
                                    return Err(format!(
                                        "column \"{}\" is not a scalar and cannot go in a key template",
                                        self.columns[*index].0
                                    ))
                                }
                            },
                        }
                    }
                    Ok((attribute.clone(), AttributeValue::S(text)))
                }
            })
            .collect()
    }
}

fn column_error(name: &str, e: &ConvertError) -> String {
    format!("column \"{name}\": {e}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{KeySpec, Template};

    fn mapping(partition: KeySpec, sort: Option<KeySpec>) -> TableMapping {
        TableMapping {
            name: "lessons".into(),
            table_name: "t-lessons".into(),
            query: "SELECT …".into(),
            partition_key: partition,
            sort_key: sort,
            excluded: Excluded::default(),
            defaults: vec![("rating".into(), AttributeValue::N("0".into()))],
            delete_missing: false,
            origin: "envs/mappings/pni.toml".into(),
        }
    }
    fn column_key(name: &str) -> KeySpec {
        KeySpec { attribute: name.into(), source: KeySource::Column(name.into()) }
    }
    fn columns() -> Vec<(String, Type)> {
        vec![
            ("lesson_id".into(), Type::INT4),
            ("title".into(), Type::TEXT),
            ("rating".into(), Type::INT4),
            ("updated_at".into(), Type::TEXT),
        ]
    }

    #[test]
    fn missing_key_column_is_named_with_the_columns() {
        let err = Plan::new(&mapping(column_key("id"), None), columns()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "envs/mappings/pni.toml: table \"lessons\": key column \"id\" is not in the query's columns (lesson_id, title, rating, updated_at)"
        );
    }

    #[test]
    fn unsupported_column_types_fail_before_any_row() {
        let mut cols = columns();
        cols.push(("duration".into(), Type::INTERVAL));
        let err = Plan::new(&mapping(column_key("lesson_id"), None), cols).unwrap_err();
        assert!(err.to_string().contains("column \"duration\": type interval is not converted"), "{err}");
    }

    #[test]
    fn builds_items_with_hash_and_defaults() {
        let plan = Plan::new(&mapping(column_key("lesson_id"), None), columns()).unwrap();
        assert_eq!(plan.key_schema, vec![("lesson_id".to_string(), "N")]);
        let id = 7i32.to_be_bytes();
        let built = plan.build(&[Some(&id), Some(b"Reading"), None, Some(b"2024")]).unwrap();
        assert_eq!(built.item["lesson_id"], AttributeValue::N("7".into()));
        assert_eq!(built.item["rating"], AttributeValue::N("0".into()), "NULL takes the mapping's default");
        assert_eq!(built.item[HASH_ATTR], AttributeValue::S(hash::to_hex(&built.hash)));
        assert_eq!(built.size, item::item_size(&built.item));
        // updated_at is not content
        let touched = plan.build(&[Some(&id), Some(b"Reading"), None, Some(b"2030")]).unwrap();
        assert_eq!(touched.hash, built.hash);
        assert_eq!(touched.key, built.key);
        let changed = plan.build(&[Some(&id), Some(b"Writing"), None, Some(b"2024")]).unwrap();
        assert_ne!(changed.hash, built.hash);
    }

    #[test]
    fn templates_build_string_keys() {
        let pk = KeySpec {
            attribute: "PK".into(),
            source: KeySource::Template(Template::parse("LESSON#{lesson_id}").unwrap()),
        };
        let plan = Plan::new(&mapping(pk, Some(column_key("title"))), columns()).unwrap();
        assert_eq!(plan.key_schema, vec![("PK".to_string(), "S"), ("title".to_string(), "S")]);
        let built = plan.build(&[Some(&3i32.to_be_bytes()), Some(b"T"), None, None]).unwrap();
        assert_eq!(built.item["PK"], AttributeValue::S("LESSON#3".into()));
        assert_eq!(built.item["lesson_id"], AttributeValue::N("3".into()));
    }

    #[test]
    fn null_or_empty_keys_are_rejected_with_the_key() {
        let plan = Plan::new(&mapping(column_key("lesson_id"), Some(column_key("title"))), columns()).unwrap();
        let reject = plan.build(&[None, Some(b"T"), None, None]).unwrap_err();
        assert_eq!(
            reject,
            Reject {
                key: "lesson_id=<missing>, title=\"T\"".into(),
                reason: "key column \"lesson_id\" is NULL".into()
            }
        );
        let reject = plan.build(&[Some(&1i32.to_be_bytes()), Some(b""), None, None]).unwrap_err();
        assert_eq!(reject.reason, "key column \"title\" is empty");
    }

    #[test]
    fn conversion_failures_are_rejected_with_the_key() {
        let mut cols = columns();
        cols.push(("amount".into(), Type::FLOAT8));
        let plan = Plan::new(&mapping(column_key("lesson_id"), None), cols).unwrap();
        let nan = f64::NAN.to_be_bytes();
        let reject = plan.build(&[Some(&9i32.to_be_bytes()), None, None, None, Some(&nan)]).unwrap_err();
        assert_eq!(reject.key, "lesson_id=9");
        assert!(reject.reason.starts_with("column \"amount\": NaN cannot be stored"), "{}", reject.reason);
    }

    #[test]
    fn oversized_items_are_rejected() {
        let plan = Plan::new(&mapping(column_key("lesson_id"), None), columns()).unwrap();
        let big = vec![b'x'; MAX_ITEM_BYTES];
        let reject = plan.build(&[Some(&1i32.to_be_bytes()), Some(&big), None, None]).unwrap_err();
        assert!(reject.reason.contains("over DynamoDB's 400 KB limit"), "{}", reject.reason);
    }
}
