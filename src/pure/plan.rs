//! Source rows → DynamoDB items. Pure: rows arrive as cells the source's adapter converted
//! ([`crate::pure::value`]), columns with the adapter's [`ColumnType`](crate::pure::value::ColumnType)s, and no driver type.
//!
//! A [`Plan`] is made once per query from the columns the source describes, before any row is read,
//! so that a mapping that cannot work (a key column the query lacks, a type that does not convert)
//! fails before anything is written. [`Plan::build`] then turns each row into an item with its key
//! digest, content hash and estimated size, or into a [`Reject`] that names the row's key and the
//! reason, so that nothing is dropped silently. A row whose key cannot be built is named by the
//! columns that key is made of, with their values as the source gave them (`id=NULL`, `f=NaN`).
//!
//! Every limit DynamoDB holds an item to (key sizes, nesting, empty names, empty index keys, the
//! item size) is checked here, row by row: DynamoDB refuses a whole batch for one bad item.

use std::collections::HashMap;

use crate::profile::{distinct, Entity, Index, KeySource, Part, ProfileError, Projection, TableMapping};
use crate::pure::bucket;
use crate::pure::hash::{self, Digest, Excluded};
use crate::pure::item::{self, AttributeValue, Item, HASH_ATTR, MAX_ITEM_BYTES};
use crate::pure::value::{self, Cell, ColType, Column, ConvertError, Dialect, Row, Unkeyable};
use crate::target::{IndexSchema, KeySchema, TableSchema};

/// A source row turned into an item ready to diff and write.
#[derive(Debug, Clone)]
pub struct Built {
    /// The item, its content hash stored in [`HASH_ATTR`].
    pub item: Item,
    pub key: Digest,
    pub hash: Digest,
    /// Estimated size in bytes, hash attribute included.
    pub size: usize,
    /// Estimated write units of a put: the item's, plus its entry in each index it belongs to.
    /// Exact for a new item. For a replaced one DynamoDB bills an index entry only when the
    /// attributes the index copies change, and two when its key changes; the content hash cannot
    /// tell which, so the estimate counts one.
    pub units: u64,
    /// Which of the table's entities the row came from (its position in the mapping).
    pub entity: usize,
}

/// A row that cannot become an item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reject {
    /// The row's key (`lesson_id=7`); when a key attribute could not be built, the source columns
    /// it is made of, with their values (`id=NULL`, `f=NaN, SK="T#t2"`).
    pub key: String,
    pub reason: String,
}

/// A row [`Plan::build`] rejected, and its key digest when its key columns alone make a key
/// (another value was to blame: its stored item is then kept, not taken for an orphan); otherwise
/// why the key itself cannot be built (NULL, empty, NaN, …).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub reject: Reject,
    pub key: Result<Digest, Box<KeyFlaw>>,
}

/// Why a row's key cannot be built: the value of one column a key uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFlaw {
    column: String,
    /// How advice names the column: by the table column it comes from where PostgreSQL says so
    /// (`x` for `x AS f`: a filter cannot use the name `f`), else by the name the query gives it.
    sql: Box<Column>,
    /// The column is an expression the query names: the advice uses its name, and says so.
    stands: bool,
    /// The SQL of the advice.
    dialect: Dialect,
    /// `json` or `jsonb` for a JSON column: which `…_typeof` function tells its values apart.
    json: Option<&'static str>,
    kind: Flaw,
    /// The entity the row came from, when its table has several (`album`).
    entity: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Flaw {
    Null,
    Empty,
    Value(Unkeyable),
}

impl KeyFlaw {
    /// The SQL condition that leaves such rows out of a query (`f IS DISTINCT FROM 'NaN'`), when
    /// there is one. It leaves out those rows only: a row where the column is NULL is kept (a NULL
    /// key takes the mapping's default, if it has one; without one the row is rejected for it, with
    /// its own condition), so pasted with `AND`, the conditions never drop a row that has a key.
    pub fn leave_out(&self) -> Option<String> {
        self.condition(&self.sql.expression)
    }

    /// [`KeyFlaw::leave_out`] for a filter around the query (`SELECT * FROM (…) AS q WHERE …`),
    /// which sees each column by the name the query gives it.
    pub fn leave_out_around(&self) -> Option<String> {
        self.condition(&self.sql.name)
    }

    fn condition(&self, column: &str) -> Option<String> {
        Some(match &self.kind {
            Flaw::Null => format!("{column} IS NOT NULL"),
            Flaw::Empty => format!("{column} IS DISTINCT FROM ''"),
            Flaw::Value(Unkeyable::NotFinite(value)) => self.dialect.finite(column, value),
            Flaw::Value(Unkeyable::Infinite { value, .. }) => format!("{column} IS DISTINCT FROM '{value}'"),
            Flaw::Value(Unkeyable::NotScalar(_)) => {
                format!("({column} IS NULL OR {}_typeof({column}) IN ('string', 'number', 'boolean'))", self.json?)
            }
            // DynamoDB's range, 1E-130 to 9.99…E+125 in magnitude, and zero; NULL is kept as above.
            Flaw::Value(Unkeyable::Number { range: true, .. }) if self.json.is_none() => {
                format!("({column} IS NULL OR {column} = 0 OR abs({column}) >= 1e-130 AND abs({column}) < 1e126)")
            }
            // An escape of half a surrogate pair after an odd number of backslashes (after an even
            // number it is an escaped backslash and letters): a high half no low half follows, or
            // a low half no high half precedes. A whole pair, or such letters, keep their row.
            Flaw::Value(Unkeyable::Surrogate(_)) => format!(
                r"({column} IS NULL OR {column}::text !~ '(^|[^\\])(\\\\)*(\\u[dD][89abAB][0-9a-fA-F]{{2}}(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{{2}})\\u[dD][c-fC-F])')"
            ),
            Flaw::Value(Unkeyable::Number { .. } | Unkeyable::Other(_)) => return None,
        })
    }

    /// The entity the row came from, when its table has several.
    pub fn entity(&self) -> Option<&str> {
        self.entity.as_deref()
    }

    /// `(f being the expression the query selects as f)` when the advice names an expression by
    /// the name the query gives it, which a filter cannot use as it is.
    pub fn stands_for(&self) -> Option<String> {
        self.stands.then(|| stands_for(&self.sql))
    }
}

/// What a name in advice stands for when the query selects an expression under it.
fn stands_for(column: &Column) -> String {
    format!("({} being the expression the query selects as {})", column.expression, column.name)
}

/// A TOML basic string (`"""…"""`) reads a backslash as an escape: advice that holds one says how
/// to keep it (a column named `a\b`, a regular expression).
pub fn literal_note(advice: &str) -> &'static str {
    if advice.contains('\\') {
        "; the advice holds a backslash: in the mappings file write the query as a literal string \
         ('''…'''), which TOML keeps as written"
    } else {
        ""
    }
}

/// The reject's reason: what the value is and, where a filter can leave such rows out, which.
impl std::fmt::Display for KeyFlaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let column = &self.column;
        // An expression the query names cannot be filtered by that name inside the query (where a
        // table column of the name would be read instead): the filter goes around it.
        let leave_out = || match self.leave_out() {
            Some(c) if self.stands => {
                format!(" (around the query, as it names an expression: SELECT * FROM (…the query…) AS q WHERE {c})")
            }
            Some(c) => format!(" (WHERE {c})"),
            None => String::new(),
        };
        let named = &self.sql;
        match &self.kind {
            Flaw::Null => write!(f, "key column \"{column}\" is NULL"),
            Flaw::Empty => write!(f, "key column \"{column}\" is empty"),
            Flaw::Value(Unkeyable::NotFinite(value)) => write!(
                f,
                "column \"{column}\" is {value}, which has no place in a key (DynamoDB numbers have no NaN or \
                 infinity); leave such rows out of the query{}, or build the key from other columns",
                leave_out()
            ),
            Flaw::Value(Unkeyable::Infinite { ty, value }) => write!(
                f,
                "column \"{column}\" is {ty} '{value}', which has no place in a key (it is not a point in time); \
                 leave such rows out of the query{}, or build the key from other columns",
                leave_out()
            ),
            Flaw::Value(Unkeyable::NotScalar(what)) => write!(
                f,
                "column \"{column}\" {what}, which has no place in a key (a key is one text); return one value \
                 of it in the query instead ({}->>'name' AS …), or leave such rows out{}",
                named.expression,
                leave_out()
            ),
            Flaw::Value(Unkeyable::Number { reason, .. }) => write!(
                f,
                "key column \"{column}\": {reason}, which has no place in a key; leave such rows out of the \
                 query{}, or {}return the column as text ({} AS {}), which a key can hold",
                leave_out(),
                named.preamble(),
                self.dialect.as_text(&named.expression),
                named.name
            ),
            Flaw::Value(Unkeyable::Surrogate(reason)) => write!(
                f,
                "column \"{column}\": {reason}, so it has no place in a key; leave such rows out of the query{}",
                leave_out()
            ),
            Flaw::Value(Unkeyable::Other(reason)) => write!(f, "key column \"{column}\": {reason}"),
        }?;
        match self.stands_for() {
            Some(note) => write!(f, " {note}"),
            None => Ok(()),
        }
    }
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
    columns: Vec<(String, ColType)>,
    keys: Vec<KeyPlan>,
    /// Key attribute name and DynamoDB type (`S`, `N`, `B`), partition first.
    pub key_schema: Vec<(String, &'static str)>,
    /// Each index key attribute this entity's items carry, with its type: the index schema is
    /// made from every entity's (an attribute no entity gives is an error; one an entity lacks
    /// leaves its items out of that index).
    pub index_attributes: Vec<(String, &'static str)>,
    indexes: Vec<Index>,
    excluded: Excluded,
    /// The columns whose text is parsed as JSON (the mapping's `json_columns`).
    json_columns: Vec<usize>,
    defaults: Vec<(String, AttributeValue)>,
    /// Per column, the table column it comes from (`None`: an expression), when PostgreSQL was
    /// asked; advice names a column by it.
    origins: Option<Vec<Option<String>>>,
    /// The entity's name, when its table has several: rejects and their advice name it.
    entity: Option<String>,
    /// Whether items carry their bucket ([`bucket::BUCKET_ATTR`]): the table's diff reads the hash index.
    bucketed: bool,
}

/// A table's checked plans, one per entity, and the schema they give the table.
#[derive(Debug, Clone)]
pub struct TablePlan {
    pub entities: Vec<Plan>,
    pub schema: TableSchema,
    /// The DynamoDB type (`S`, `N`, `B`) of each parameter's values, as the source types it (or as
    /// the attribute the scope compares it with), so that the scope's values are typed like the items'.
    pub param_types: HashMap<String, &'static str>,
    /// Each parameter's type, as the source infers it or (for a source that does not) as the
    /// column of the attribute the scope compares it with (named): values are checked against it
    /// and spelled as the items hold them before anything is read.
    pub param_columns: Vec<(String, Option<String>, ColType)>,
    /// The scope's value of each parameter, in the items' spelling ([`value::ColumnType::param_value`]).
    pub scope_values: HashMap<String, String>,
}

impl TablePlan {
    /// Checks that the entities agree on the key's types and that every index key is given by
    /// some entity with one type.
    pub fn new(
        mapping: &TableMapping,
        mut entities: Vec<Plan>,
        param_types: HashMap<String, &'static str>,
    ) -> Result<TablePlan, ProfileError> {
        let first = &entities[0];
        for (entity, plan) in mapping.entities.iter().zip(&entities).skip(1) {
            if plan.key_schema != first.key_schema {
                return Err(mapping.error(format!(
                    "entity \"{}\" gives key ({}) but entity \"{}\" gives ({}); a table's key has one type",
                    entity.name,
                    show_schema(&plan.table_keys()),
                    mapping.entities[0].name,
                    show_schema(&first.table_keys())
                )));
            }
        }
        let mut indexes = Vec::new();
        for index in &mapping.indexes {
            let mut keys = Vec::new();
            for attribute in index.key_attributes() {
                let mut given = mapping.entities.iter().zip(&entities).filter_map(|(entity, plan)| {
                    plan.index_attributes.iter().find(|(a, _)| a == attribute).map(|(_, ty)| (&entity.name, *ty))
                });
                let Some((by, ty)) = given.next() else {
                    return Err(mapping.error(format!(
                        "index \"{}\": no query returns attribute \"{attribute}\"; add it as a column (NULL where \
                         an item is not to be indexed)",
                        index.name
                    )));
                };
                if let Some((other, other_ty)) = given.find(|(_, t)| *t != ty) {
                    return Err(mapping.error(format!(
                        "index \"{}\": attribute \"{attribute}\" is {ty} in entity \"{by}\" but {other_ty} in entity \"{other}\"; \
                         an index key has one type",
                        index.name
                    )));
                }
                keys.push((attribute.to_string(), ty.to_string()));
            }
            indexes.push(IndexSchema {
                name: index.name.clone(),
                local: index.local,
                keys,
                projection: index.projection.clone(),
            });
        }
        if let Some(diff) = mapping.diff_index() {
            for plan in &mut entities {
                plan.bucketed = true;
                plan.indexes.push(diff.clone());
            }
            indexes.push(IndexSchema {
                name: diff.name,
                local: false,
                keys: vec![(bucket::BUCKET_ATTR.to_string(), "N".to_string())],
                projection: diff.projection,
            });
        }
        let first = &entities[0];
        let keys = first.table_keys();
        if mapping.is_multi() {
            for (entity, plan) in mapping.entities.iter().zip(&mut entities) {
                plan.entity = Some(entity.name.clone());
            }
        }
        Ok(TablePlan {
            entities,
            schema: TableSchema { keys, indexes },
            param_types,
            param_columns: Vec::new(),
            scope_values: HashMap::new(),
        })
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.entities[0].key_names()
    }

    /// Whether some entity's items can carry `attribute` (a query column, a key, ddbsync's hash).
    pub fn gives(&self, attribute: &str) -> bool {
        attribute == HASH_ATTR
            || (attribute == bucket::BUCKET_ATTR && self.entities[0].bucketed)
            || self.entities.iter().any(|p| {
                p.key_schema.iter().any(|(n, _)| n == attribute) || p.columns.iter().any(|(n, _)| n == attribute)
            })
    }
}

/// `lesson_id N, topic S`, for messages.
pub fn show_schema(schema: &KeySchema) -> String {
    schema.iter().map(|(n, t)| format!("{n} {t}")).collect::<Vec<_>>().join(", ")
}

/// `PK S, SK S; indexes GenreIndex (genre S)`, for messages.
pub fn show_table_schema(schema: &TableSchema) -> String {
    let mut text = show_schema(&schema.keys);
    for (i, index) in schema.indexes.iter().enumerate() {
        let kind = if index.local { "local " } else { "" };
        text.push_str(if i == 0 { "; indexes " } else { ", " });
        text.push_str(&format!("{kind}{} ({})", index.name, show_schema(&index.keys)));
    }
    text
}

impl Plan {
    /// Checks an entity (and its table's indexes) against the query's columns.
    pub fn new(mapping: &Entity, indexes: &[Index], columns: Vec<(String, ColType)>) -> Result<Plan, ProfileError> {
        let listed = || {
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            names.join(", ")
        };
        // Every column of a type that does not convert is named at once, each with its cast.
        let mut unconverted = Vec::new();
        for (i, (name, ty)) in columns.iter().enumerate() {
            if columns[..i].iter().any(|(other, _)| other == name) {
                return Err(mapping.error(format!(
                    "the query returns column \"{name}\" twice; give one of them another name (AS …)"
                )));
            }
            if ty.unconverted(&Column::new(name).expression).is_some() {
                unconverted.push((name, ty));
            }
            if item::is_reserved(name) {
                return Err(mapping.error(format!(
                    "column \"{name}\": names starting with {} are ddbsync's own (it keeps each item's content \
                     hash in {HASH_ATTR}); rename the column in the query (… AS {})",
                    item::RESERVED_PREFIX,
                    name.trim_start_matches('_')
                )));
            }
        }
        if !unconverted.is_empty() {
            return Err(mapping.error(unconverted_columns(&unconverted)));
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
                    if let Some(why) = ty.untyped() {
                        return Err(mapping.error(format!(
                            "key column \"{column}\" has no type of its own ({why}), and the table's key type must be \
                             known before any row is read; select a table column under that name, or build a string \
                             key with a template (\"{{{column}}}\")"
                        )));
                    }
                    let Some(key_type) = ty.key_type() else {
                        return Err(mapping.error(format!(
                            "key column \"{column}\" has type {}, which cannot be a DynamoDB key (use a number, text or bytea column)",
                            ty.name()
                        )));
                    };
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
                            Part::Column(c) => {
                                let index = index_of(c, "template")?;
                                if let Some(why) = columns[index].1.unspellable(&Column::new(c).expression) {
                                    return Err(mapping.error(format!(
                                        "key \"{}\": template \"{template}\": column \"{c}\" {why}",
                                        spec.attribute
                                    )));
                                }
                                Ok(TemplatePart::Column(index))
                            }
                        })
                        .collect::<Result<_, _>>()?;
                    key_schema.push((spec.attribute.clone(), "S"));
                    keys.push(KeyPlan::Template { attribute: spec.attribute.clone(), parts });
                }
            }
        }
        let mut index_attributes: Vec<(String, &'static str)> = Vec::new();
        for index in indexes {
            for attribute in index.key_attributes() {
                if index_attributes.iter().any(|(a, _)| a == attribute) {
                    continue;
                }
                if let Some((_, ty)) = key_schema.iter().find(|(a, _)| a == attribute) {
                    index_attributes.push((attribute.to_string(), ty));
                } else if let Some((_, ty)) = columns.iter().find(|(n, _)| n == attribute) {
                    let Some(key_type) = ty.key_type() else {
                        return Err(mapping.error(format!(
                            "column \"{attribute}\" is a key of index \"{}\" but has type {}, which cannot be a DynamoDB key",
                            index.name,
                            ty.name()
                        )));
                    };
                    index_attributes.push((attribute.to_string(), key_type));
                }
            }
        }
        check_key_defaults(mapping, &columns, &keys, &key_schema, &index_attributes)?;
        let json_columns =
            mapping.json_columns.iter().map(|c| index_of(c, "json_columns")).collect::<Result<Vec<_>, _>>()?;
        Ok(Plan {
            columns,
            keys,
            key_schema,
            index_attributes,
            indexes: indexes.to_vec(),
            excluded: mapping.excluded.clone(),
            json_columns,
            defaults: mapping.defaults.clone(),
            origins: None,
            entity: None,
            bucketed: false,
        })
    }

    /// The plan with each column's origin: the table column it comes from, or `None` for an
    /// expression (as PostgreSQL describes the query), so that advice can name it in a filter.
    pub fn sourced(mut self, origins: Vec<Option<String>>) -> Self {
        if origins.len() == self.columns.len() {
            self.origins = Some(origins);
        }
        self
    }

    /// How advice names column `index`, and whether it is an expression named by the query (the
    /// advice then says what the name stands for).
    fn sql_column(&self, index: usize) -> (Column, bool) {
        let name = &self.columns[index].0;
        match self.origins.as_ref().map(|o| o[index].as_deref()) {
            Some(Some(source)) if source != name => {
                (Column { expression: value::sql_name(source), name: value::sql_name(name) }, false)
            }
            Some(None) if name != value::UNNAMED => (Column::new(name), true),
            _ => (Column::new(name), false),
        }
    }

    /// `entity "album": ` before a reject's key, when the table has several entities.
    fn named(&self, key: String) -> String {
        match &self.entity {
            Some(entity) => format!("entity \"{entity}\": {key}"),
            None => key,
        }
    }

    /// The type of the column that gives `attribute`, if this entity's query returns it.
    pub fn column_type(&self, attribute: &str) -> Option<&ColType> {
        self.columns.iter().find(|(name, _)| name == attribute).map(|(_, ty)| ty)
    }

    /// The content hash of an item as stored, computed as for a built one (what `verify` compares).
    pub fn content_hash(&self, item: &Item) -> Digest {
        hash::content_hash(item, &self.excluded)
    }

    pub fn key_names(&self) -> Vec<&str> {
        self.key_schema.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The key schema this entity gives its table, in DynamoDB's terms.
    pub fn table_keys(&self) -> KeySchema {
        self.key_schema.iter().map(|(n, t)| (n.clone(), t.to_string())).collect()
    }

    /// Builds one item from a row's values, as the source's adapter converted them. The values are
    /// moved into the item (a value the item holds is NULL in `raw` afterwards: every later look
    /// at a column asks the item first).
    pub fn build(&self, mut row: Row) -> Result<Built, Rejected> {
        let raw = &mut row[..];
        let mut item = Item::with_capacity(self.columns.len() + 2);
        // Every column that does not convert, so that one reject names all of the row's flaws
        // (empty, so not allocated, for a good row).
        let mut failures: Vec<(usize, ConvertError)> = Vec::new();
        for (index, ((name, ty), cell)) in self.columns.iter().zip(raw.iter_mut()).enumerate() {
            match cell {
                Cell::Value(value) => match self.json_columns.contains(&index) {
                    // A text that does not parse stays in `raw`, to be named.
                    true => match parse_json(value) {
                        Ok(value) => {
                            item.insert(name.clone(), value);
                        }
                        Err(e) => failures.push((index, e)),
                    },
                    false => match std::mem::replace(cell, Cell::Null) {
                        Cell::Value(AttributeValue::M(rest)) if ty.spread() => item.extend(rest),
                        Cell::Value(value) => {
                            item.insert(name.clone(), value);
                        }
                        _ => {}
                    },
                },
                Cell::Null => {
                    if let Some((_, default)) = self.defaults.iter().find(|(n, _)| n == name) {
                        item.insert(name.clone(), default.clone());
                    }
                }
                Cell::Refused { error, .. } => failures.push((index, error.clone())),
            }
        }
        let raw = &*raw;
        let (key_values, flaw) = self.key_values(&item, raw);
        let describe = |item: &Item| self.named(self.describe_row(item, raw));
        // The key of a row rejected for another value: its stored item is kept, not an orphan.
        let row_key = match &flaw {
            None => Ok(hash::key_digest(&key_values.iter().map(|(_, v)| v).collect::<Vec<_>>())),
            Some(flaw) => Err(Box::new(flaw.clone())),
        };
        let rejected = |reject: Reject| Rejected { reject, key: row_key.clone() };
        // The key parts that could be built name the row even when it is rejected.
        for (name, value) in key_values {
            item.insert(name, value);
        }
        if flaw.is_some() || !failures.is_empty() {
            // The key's flaw first; a column it names is not named twice.
            let flawed = flaw.as_ref().map(|f| f.column.as_str());
            // The advice's SQL: the key's filter and the names of the columns it treats.
            let mut advice: Vec<String> =
                flaw.iter().flat_map(|f| f.leave_out().into_iter().chain([f.sql.expression.clone()])).collect();
            let reasons = flaw.iter().map(|f| f.to_string());
            let others = failures
                .into_iter()
                .filter(|(index, _)| Some(self.columns[*index].0.as_str()) != flawed)
                .map(|(index, e)| {
                    let (reason, sql) = self.failure(index, e, raw);
                    advice.push(sql);
                    reason
                })
                .collect::<Vec<_>>();
            let reason = reasons.chain(others).collect::<Vec<_>>().join("; also ");
            let reason = format!("{reason}{}", literal_note(&advice.concat()));
            return Err(rejected(Reject { key: describe(&item), reason }));
        }
        if let Some(reason) =
            self.mistyped_key(&item).or_else(|| self.empty_index_key(&item)).or_else(|| self.over_limits(&item))
        {
            return Err(rejected(Reject { key: describe(&item), reason }));
        }
        let key_refs: Vec<&AttributeValue> = self.key_schema.iter().map(|(n, _)| &item[n]).collect();
        let key = hash::key_digest(&key_refs);
        let (hash, content_size) = hash::hash_and_size(&item, &self.excluded);
        let hex = hash::to_hex(&hash);
        let mut size = content_size + HASH_ATTR.len() + hex.len();
        item.insert(HASH_ATTR.to_string(), AttributeValue::S(hex));
        if self.bucketed {
            // Not content: added after the hash, and left out of it when a stored item is hashed.
            let number = bucket::bucket(&key).to_string();
            size += bucket::BUCKET_ATTR.len() + item::number_size(&number);
            item.insert(bucket::BUCKET_ATTR.to_string(), AttributeValue::N(number));
        }
        if size > MAX_ITEM_BYTES {
            return Err(rejected(Reject { key: describe(&item), reason: oversized(&item, size) }));
        }
        let units = item::write_units(size) + self.index_units(&item, size);
        Ok(Built { item, key, hash, size, units, entity: 0 })
    }

    /// Why column `index` did not convert, with the query's fix. A value a key uses and cannot
    /// spell has no place in a key: the fix is to leave its row out (a NULL instead would take
    /// the row's key away too), as for the key's first flaw.
    /// Also the SQL the advice holds (names and filter), to tell whether it needs a literal string.
    fn failure(&self, index: usize, e: ConvertError, raw: &[Cell]) -> (String, String) {
        let (name, ty) = &self.columns[index];
        let in_key = self.keys.iter().find_map(|key| match key {
            KeyPlan::Column { index: at, .. } => (*at == index).then_some(true),
            KeyPlan::Template { parts, .. } => template_columns(parts).contains(&index).then_some(false),
        });
        let unkeyable = match (in_key, raw.get(index)) {
            (Some(true), _) => Some(Unkeyable::from(e.clone())),
            (Some(false), Some(cell @ Cell::Refused { .. })) => cell.key_text().err(),
            // A JSON text that did not parse: it has no text in a key either.
            (Some(false), Some(Cell::Value(_))) => Some(Unkeyable::from(e.clone())),
            _ => None,
        };
        match unkeyable {
            Some(why) => {
                let flaw = self.flaw(index, Flaw::Value(why));
                let sql = format!("{}{}", flaw.sql.expression, flaw.leave_out().unwrap_or_default());
                (flaw.to_string(), sql)
            }
            None => {
                let (column, stands) = self.sql_column(index);
                let note = if stands { format!(" {}", stands_for(&column)) } else { String::new() };
                (
                    format!("{} \"{name}\": {}{note}", ty.noun(), ty.explain(&e, &column)),
                    column.expression + &column.name,
                )
            }
        }
    }

    /// The row's key for messages: each key attribute that was built, spelled as the item holds it
    /// (`SK="T#t2"`); for one that was not, the source columns it is made of, each with its value
    /// as the source gave it (`id=NULL`, `f=NaN`, `t="t2"`), which is how the row can be found.
    fn describe_row(&self, item: &Item, raw: &[Cell]) -> String {
        let mut parts = Vec::new();
        let mut shown: Vec<usize> = Vec::new();
        for key in &self.keys {
            let (attribute, columns) = match key {
                KeyPlan::Column { attribute, index } => (attribute, vec![*index]),
                KeyPlan::Template { attribute, parts } => (attribute, template_columns(parts)),
            };
            if item.contains_key(attribute) {
                parts.push(item::describe_key(item, &[attribute]));
                continue;
            }
            for index in columns {
                if !shown.contains(&index) {
                    shown.push(index);
                    parts.push(format!("{}={}", self.columns[index].0, self.source_value(index, item, raw)));
                }
            }
        }
        parts.join(", ")
    }

    /// A column's value as the source gave it, for [`Plan::describe_row`]: its attribute's text when it
    /// converted, else PostgreSQL's word for it (`NULL`, `NaN`, `infinity`) or its printed number.
    /// A JSON container is named, not quoted: a key is not the place for a document.
    fn source_value(&self, index: usize, item: &Item, raw: &[Cell]) -> String {
        let name = &self.columns[index].0;
        let cell = raw.get(index).unwrap_or(&Cell::Null);
        match (item.get(name), cell) {
            (Some(AttributeValue::M(_)), _) => "<JSON object>".into(),
            (Some(AttributeValue::L(_)), _) => "<JSON array>".into(),
            (Some(AttributeValue::Null(_)), Cell::Value(_)) => "<JSON null>".into(),
            (Some(value), _) => item::describe_value(value),
            (None, Cell::Null) => "NULL".into(),
            (None, cell) => match cell.key_text() {
                Ok(text) => shortened(text.into_owned()),
                Err(Unkeyable::NotFinite(word)) => word.into(),
                Err(Unkeyable::Infinite { value, .. }) => value.into(),
                Err(
                    Unkeyable::NotScalar(_) | Unkeyable::Number { .. } | Unkeyable::Surrogate(_) | Unkeyable::Other(_),
                ) => "<not convertible>".into(),
            },
        }
    }

    /// A key attribute whose value is not of the key's type: a source that types values, not
    /// columns (SQLite), can hold text in a column declared INTEGER. DynamoDB would refuse the item
    /// (and its whole batch); it is rejected here, by name.
    fn mistyped_key(&self, item: &Item) -> Option<String> {
        let table = self.key_schema.iter().map(|(name, ty)| (name, *ty, None));
        let indexes = self.index_attributes.iter().map(|(name, ty)| {
            let index = self.indexes.iter().find(|i| i.key_attributes().any(|a| a == name));
            (name, *ty, index.map(|i| i.name.as_str()))
        });
        table.chain(indexes).find_map(|(name, ty, index)| {
            let value = item.get(name)?;
            let found = match value {
                AttributeValue::S(_) => "S",
                AttributeValue::N(_) => "N",
                AttributeValue::B(_) => "B",
                _ => "",
            };
            (found != ty).then(|| {
                let (of, fix) = match index {
                    None => ("the table".to_string(), "return a value of that type in the query"),
                    Some(index) => (
                        format!("index \"{index}\""),
                        "return a value of that type in the query, or NULL to leave the item out of the index",
                    ),
                };
                format!(
                    "attribute \"{name}\" is a key of {of}, of type {ty} ({}), but this row's value is {} ({}); {fix}",
                    type_word(ty),
                    type_word(found),
                    item::describe_value(value)
                )
            })
        })
    }

    /// DynamoDB refuses an empty string or binary as an index key; NULL (no attribute) is how an
    /// item stays out of an index.
    fn empty_index_key(&self, item: &Item) -> Option<String> {
        self.index_attributes.iter().find_map(|(name, _)| {
            let empty = match item.get(name)? {
                AttributeValue::S(s) => s.is_empty(),
                AttributeValue::B(b) => b.as_ref().is_empty(),
                _ => false,
            };
            empty.then(|| {
                format!(
                    "attribute \"{name}\" is an index key and is empty, which DynamoDB refuses; \
                     return NULL instead to leave the item out of the index"
                )
            })
        })
    }

    /// The first DynamoDB limit the item breaks, other than its size (which needs the hash first):
    /// a table or index key over its size limit, a value nested too deep, an empty map key.
    fn over_limits(&self, item: &Item) -> Option<String> {
        let table_keys = self.key_schema.iter().enumerate().map(|(i, (name, _))| (name.as_str(), i == 0, None));
        let index_keys = self.indexes.iter().flat_map(|index| {
            let sort = index.sort_key.as_deref().map(|name| (name, false, Some(index.name.as_str())));
            std::iter::once((index.partition_key.as_str(), true, Some(index.name.as_str()))).chain(sort)
        });
        for (name, partition, index) in table_keys.chain(index_keys) {
            let Some(value) = item.get(name) else { continue };
            let (role, limit) = match partition {
                true => ("partition key", item::MAX_PARTITION_KEY_BYTES),
                false => ("sort key", item::MAX_SORT_KEY_BYTES),
            };
            let bytes = item::key_bytes(value);
            if bytes <= limit {
                continue;
            }
            return Some(match index {
                None => format!(
                    "{role} \"{name}\" is {bytes} bytes, over DynamoDB's limit of {limit} for a {role}; \
                     build it from shorter values ({})",
                    match self.columns.first().map(|(_, ty)| ty.dialect()) {
                        Some(Dialect::Sqlite) => "an id, or the start of a long one, such as substr(column, 1, 200)",
                        _ => "a hash of a long one, such as md5(column), for example",
                    }
                ),
                Some(index) => format!(
                    "attribute \"{name}\" is the {role} of index \"{index}\" and is {bytes} bytes, over DynamoDB's \
                     limit of {limit} for a {role}; return a shorter value, or NULL to leave the item out of the index"
                ),
            });
        }
        item.iter().find_map(|(name, value)| item::value_flaw(name, value)).map(|flaw| flaw.to_string())
    }

    /// Estimated write units of the index entries an item makes: one per index whose key
    /// attributes it all has, sized by what the index copies.
    fn index_units(&self, item: &Item, size: usize) -> u64 {
        // The bytes of the named attributes, each counted once (an index key may be a table key).
        let entry = |names: Vec<&str>| -> usize {
            distinct(names).into_iter().filter_map(|n| item.get(n).map(|v| n.len() + item::value_size(v))).sum()
        };
        self.indexes
            .iter()
            .filter(|index| index.key_attributes().all(|a| item.contains_key(a)))
            .map(|index| {
                let keys = self.key_schema.iter().map(|(n, _)| n.as_str()).chain(index.key_attributes());
                let bytes = match &index.projection {
                    Projection::All => size,
                    Projection::KeysOnly => entry(keys.collect()),
                    Projection::Include(extra) => entry(keys.chain(extra.iter().map(String::as_str)).collect()),
                };
                item::write_units(bytes)
            })
            .sum()
    }

    /// The key attributes' values as far as the row gives them, and why the first one that could
    /// not be built was not. `item` holds the row's converted values (and defaults); a column
    /// missing from it is NULL when `raw` has no value, and did not convert otherwise.
    fn key_values(&self, item: &Item, raw: &[Cell]) -> (Vec<(String, AttributeValue)>, Option<KeyFlaw>) {
        let mut values = Vec::with_capacity(self.keys.len());
        let mut first = None;
        for key in &self.keys {
            let value = match key {
                KeyPlan::Column { attribute, index } => self.column_key(*index, item, raw).map(|v| (attribute, v)),
                KeyPlan::Template { attribute, parts } => {
                    self.template_key(parts, item, raw).map(|t| (attribute, AttributeValue::S(t)))
                }
            };
            match value {
                Ok((attribute, value)) => values.push((attribute.clone(), value)),
                Err(flaw) => {
                    first.get_or_insert(flaw);
                }
            }
        }
        (values, first)
    }

    fn flaw(&self, index: usize, kind: Flaw) -> KeyFlaw {
        let (column, ty) = &self.columns[index];
        let json = ty.json();
        let (sql, stands) = self.sql_column(index);
        let entity = self.entity.as_deref().map(Box::from);
        let dialect = ty.dialect();
        KeyFlaw { column: column.clone(), sql: Box::new(sql), stands, dialect, json, kind, entity }
    }

    /// A column key's value: the column's attribute, which must be there and not empty.
    fn column_key(&self, index: usize, item: &Item, raw: &[Cell]) -> Result<AttributeValue, KeyFlaw> {
        let name = &self.columns[index].0;
        match item.get(name) {
            Some(AttributeValue::S(s)) if s.is_empty() => Err(self.flaw(index, Flaw::Empty)),
            Some(AttributeValue::B(b)) if b.as_ref().is_empty() => Err(self.flaw(index, Flaw::Empty)),
            Some(value) => Ok(value.clone()),
            None => match raw.get(index) {
                None | Some(Cell::Null) => Err(self.flaw(index, Flaw::Null)),
                // The value did not convert: say why, in a key's terms.
                Some(Cell::Refused { error, .. }) => Err(self.flaw(index, Flaw::Value(Unkeyable::from(error.clone())))),
                Some(Cell::Value(_)) => {
                    let why = Unkeyable::Other("its value was not converted".into());
                    Err(self.flaw(index, Flaw::Value(why)))
                }
            },
        }
    }

    /// A template key's text: each column spelled by [`Cell::key_text`], none NULL or empty.
    fn template_key(&self, parts: &[TemplatePart], item: &Item, raw: &[Cell]) -> Result<String, KeyFlaw> {
        let mut text = String::new();
        for part in parts {
            let index = match part {
                TemplatePart::Text(t) => {
                    text.push_str(t);
                    continue;
                }
                TemplatePart::Column(index) => *index,
            };
            let name = &self.columns[index].0;
            let value = match (item.get(name), raw.get(index).unwrap_or(&Cell::Null)) {
                // The attribute (or the mapping's default), spelled as the item holds it.
                (Some(value), _) => value::attribute_key_text(value).map(std::borrow::Cow::Borrowed),
                (None, Cell::Null) => return Err(self.flaw(index, Flaw::Null)),
                // A value that has no attribute may still have a text (1e300, as the source prints it).
                (None, cell) => cell.key_text(),
            };
            match value {
                Ok(value) if value.is_empty() => return Err(self.flaw(index, Flaw::Empty)),
                Ok(value) => text.push_str(&value),
                Err(why) => return Err(self.flaw(index, Flaw::Value(why))),
            }
        }
        Ok(text)
    }
}

/// What a DynamoDB type letter stands for, in messages.
fn type_word(ty: &str) -> &'static str {
    match ty {
        "S" => "a string",
        "N" => "a number",
        "B" => "bytes",
        _ => "not a string, number or bytes",
    }
}

/// A `json_columns` value: its text parsed into the maps and lists it holds. A value that is not
/// text (a number, bytes) is refused: it is not a document.
fn parse_json(value: &AttributeValue) -> Result<AttributeValue, ConvertError> {
    match value {
        AttributeValue::S(text) => value::json_value(text.as_bytes(), "JSON text"),
        _ => Err(ConvertError::Value(value::ValueError::Unreadable(format!(
            "it is listed in json_columns but holds {}, not JSON text",
            item::describe_value(value)
        )))),
    }
}

/// A value shown in a row's key, cut to its first 20 characters when it is long (a number beyond
/// DynamoDB's range may be printed with hundreds of digits): `10000000000000000000… (301 digits)`.
fn shortened(text: String) -> String {
    const SHOWN: usize = 20;
    let count = text.chars().count();
    if count <= SHOWN + 4 {
        return text;
    }
    let digits = text.chars().filter(char::is_ascii_digit).count();
    let what = if digits + 2 >= count { format!("{digits} digits") } else { format!("{count} characters") };
    format!("{}… ({what})", text.chars().take(SHOWN).collect::<String>())
}

/// The columns a key template uses, in order (a column used twice, twice).
fn template_columns(parts: &[TemplatePart]) -> Vec<usize> {
    parts
        .iter()
        .filter_map(|p| match p {
            TemplatePart::Column(index) => Some(*index),
            TemplatePart::Text(_) => None,
        })
        .collect()
}

/// Why an item is too big, naming its largest attribute: usually an embedded list of children,
/// which can become items of their own (an entity with its own sort key).
fn oversized(item: &Item, size: usize) -> String {
    let largest = item.iter().map(|(n, v)| (n.len() + item::value_size(v), n)).max();
    let mut reason = format!("the item is {} KB, over DynamoDB's 400 KB limit", size.div_ceil(1024));
    if let Some((bytes, name)) = largest {
        reason.push_str(&format!(
            "; its largest attribute, \"{name}\", is {} KB: store such children as items of their own \
             (an entity whose sort key names each child) instead of embedding them",
            bytes.div_ceil(1024)
        ));
    }
    reason
}

/// Every column whose type ddbsync does not convert, each with its type and the expression the
/// query can return instead (one that keeps the value's meaning, and why). The advice names a
/// column as the query returns it, which may be another column or an expression under that name
/// (`addr AS address`): PostgreSQL does not say which, so the message says the name stands for it.
fn unconverted_columns(columns: &[(&String, &ColType)]) -> String {
    let advice = |name: &str, ty: &ColType| {
        let column = Column::new(name);
        let Some(cast) = ty.unconverted(&column.expression) else { return String::new() };
        format!("{} AS {} instead — {}", cast.expression, column.name, cast.why)
    };
    match columns {
        [(name, ty)] => {
            let column = Column::new(name);
            let stands = match column.unnamed() {
                true => String::new(),
                false => format!(
                    " ({} being the column or expression the query selects as {})",
                    column.expression, column.name
                ),
            };
            format!(
                "column \"{name}\" has type {}, which ddbsync does not convert; {}in the query{stands}, return {}",
                ty.name(),
                column.preamble(),
                advice(name, ty),
            )
        }
        _ => {
            let mut text = format!(
                "{} columns have types ddbsync does not convert; in the query (each name being the column or \
                 expression it selects under that name), return:",
                columns.len()
            );
            for (name, ty) in columns {
                let preamble = Column::new(name).preamble();
                text.push_str(&format!("\n  column \"{name}\" ({}): {preamble}{}", ty.name(), advice(name, ty)));
            }
            text
        }
    }
}

/// A default stands in for a NULL column, so a key column's default becomes a key value: it must
/// have the key's type, or DynamoDB would refuse every item that uses it.
fn check_key_defaults(
    mapping: &Entity,
    columns: &[(String, ColType)],
    keys: &[KeyPlan],
    key_schema: &[(String, &'static str)],
    index_attributes: &[(String, &'static str)],
) -> Result<(), ProfileError> {
    let key_columns = keys.iter().zip(key_schema).filter_map(|(key, (_, ty))| match key {
        KeyPlan::Column { index, .. } => Some((columns[*index].0.as_str(), *ty, "the table")),
        KeyPlan::Template { .. } => None,
    });
    let index_columns = index_attributes.iter().map(|(name, ty)| (name.as_str(), *ty, "an index"));
    for (column, ty, of) in key_columns.chain(index_columns) {
        let Some((_, default)) = mapping.defaults.iter().find(|(name, _)| name == column) else { continue };
        let given = match default {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            _ => "not a string or number",
        };
        if given != ty {
            return Err(mapping.error(format!(
                "defaults.{column}: column \"{column}\" is a key of {of}, of type {ty}, but its default is {given}; \
                 give a default of type {ty}, or none"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::{KeySpec, Template};
    use crate::source::postgres::convert::{self, PgType};
    use std::sync::Arc;
    use tokio_postgres::types::Type;

    /// A plan of PostgreSQL columns, built from wire values as the PostgreSQL adapter converts them.
    #[derive(Debug)]
    struct P {
        plan: Plan,
        types: Vec<Type>,
    }

    impl P {
        fn new(mapping: &Entity, indexes: &[Index], columns: Vec<(String, Type)>) -> Result<P, ProfileError> {
            let types = columns.iter().map(|(_, t)| t.clone()).collect();
            let columns = columns.into_iter().map(|(n, t)| (n, Arc::new(PgType(t)) as ColType)).collect();
            Plan::new(mapping, indexes, columns).map(|plan| P { plan, types })
        }
        fn cells(&self, raw: &[Option<&[u8]>]) -> Vec<Cell> {
            self.types.iter().zip(raw).map(|(ty, raw)| convert::cell(ty, *raw)).collect()
        }
        fn build(&self, raw: &[Option<&[u8]>]) -> Result<Built, Reject> {
            self.plan.build(self.cells(raw)).map_err(|r| r.reject)
        }
        /// The row's key digest, built or rejected (`Rejected::key`), or why it has none.
        fn key_digest(&self, raw: &[Option<&[u8]>]) -> Result<Digest, KeyFlaw> {
            match self.plan.build(self.cells(raw)) {
                Ok(built) => Ok(built.key),
                Err(rejected) => rejected.key.map_err(|flaw| *flaw),
            }
        }
        fn sourced(self, origins: Vec<Option<String>>) -> P {
            P { plan: self.plan.sourced(origins), types: self.types }
        }
    }

    impl std::ops::Deref for P {
        type Target = Plan;
        fn deref(&self) -> &Plan {
            &self.plan
        }
    }

    fn mapping(partition: KeySpec, sort: Option<KeySpec>) -> Entity {
        Entity {
            name: "lessons".into(),
            query: "SELECT …".into(),
            params: vec![],
            partition_key: partition,
            sort_key: sort,
            excluded: Excluded::default(),
            defaults: vec![("rating".into(), AttributeValue::N("0".into()))],
            json_columns: vec![],
            label: "table \"lessons\"".into(),
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
        let err = P::new(&mapping(column_key("id"), None), &[], columns()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "envs/mappings/pni.toml: table \"lessons\": key column \"id\" is not in the query's columns (lesson_id, title, rating, updated_at)"
        );
    }

    #[test]
    fn unsupported_column_types_fail_before_any_row() {
        let mut cols = columns();
        cols.push(("duration".into(), Type::INTERVAL));
        let err = P::new(&mapping(column_key("lesson_id"), None), &[], cols).unwrap_err();
        assert_eq!(
            err.to_string(),
            "envs/mappings/pni.toml: table \"lessons\": column \"duration\" has type interval, which ddbsync does not \
             convert; in the query (duration being the column or expression the query selects as duration), return \
             EXTRACT(EPOCH FROM duration) AS duration instead — its length in seconds, a number that sorts and adds \
             up (a month counts as 30 days, a year as 365.25); or duration::text to keep PostgreSQL's spelling \
             (\"1 mon 2 days 03:04:05\")"
        );
    }

    #[test]
    fn every_unsupported_column_is_named_with_its_type_and_cast() {
        let mut cols = columns();
        cols.push(("Price".into(), Type::MONEY));
        cols.push(("tags".into(), Type::TEXT_ARRAY));
        cols.push(("spans".into(), Type::INTERVAL_ARRAY));
        cols.push(("net".into(), Type::INET));
        let err = P::new(&mapping(column_key("lesson_id"), None), &[], cols).unwrap_err().to_string();
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines[0],
            "envs/mappings/pni.toml: table \"lessons\": 3 columns have types ddbsync does not convert; in the \
             query (each name being the column or expression it selects under that name), return:"
        );
        assert!(
            lines[1].starts_with(
                "  column \"Price\" (money): \"Price\"::numeric AS \"Price\" instead — the amount as an exact number"
            ),
            "{err}"
        );
        assert_eq!(
            lines[2],
            "  column \"spans\" (interval[]): spans::text[] AS spans instead — a list of each element as PostgreSQL prints it"
        );
        assert!(
            lines[3].starts_with("  column \"net\" (inet): net::text AS net instead — the address with its netmask"),
            "{err}"
        );
        assert_eq!(lines.len(), 4, "text[] converts: {err}");
    }

    #[test]
    fn builds_items_with_hash_and_defaults() {
        let plan = P::new(&mapping(column_key("lesson_id"), None), &[], columns()).unwrap();
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
        let plan = P::new(&mapping(pk, Some(column_key("title"))), &[], columns()).unwrap();
        assert_eq!(plan.key_schema, vec![("PK".to_string(), "S"), ("title".to_string(), "S")]);
        let built = plan.build(&[Some(&3i32.to_be_bytes()), Some(b"T"), None, None]).unwrap();
        assert_eq!(built.item["PK"], AttributeValue::S("LESSON#3".into()));
        assert_eq!(built.item["lesson_id"], AttributeValue::N("3".into()));
    }

    #[test]
    fn null_or_empty_keys_are_rejected_with_the_key() {
        let plan = P::new(&mapping(column_key("lesson_id"), Some(column_key("title"))), &[], columns()).unwrap();
        let reject = plan.build(&[None, Some(b"T"), None, None]).unwrap_err();
        assert_eq!(
            reject,
            Reject { key: "lesson_id=NULL, title=\"T\"".into(), reason: "key column \"lesson_id\" is NULL".into() }
        );
        let reject = plan.build(&[Some(&1i32.to_be_bytes()), Some(b""), None, None]).unwrap_err();
        assert_eq!(
            (reject.key.as_str(), reject.reason.as_str()),
            ("lesson_id=1, title=\"\"", "key column \"title\" is empty")
        );
        // A key attribute named apart from its column: the row is named by the column.
        let id = KeySpec { attribute: "PK".into(), source: KeySource::Column("lesson_id".into()) };
        let plan = P::new(&mapping(id, None), &[], columns()).unwrap();
        assert_eq!(plan.build(&[None, Some(b"T"), None, None]).unwrap_err().key, "lesson_id=NULL");
    }

    #[test]
    fn conversion_failures_are_rejected_with_the_key() {
        let mut cols = columns();
        cols.push(("amount".into(), Type::FLOAT8));
        let plan = P::new(&mapping(column_key("lesson_id"), None), &[], cols).unwrap();
        let nan = f64::NAN.to_be_bytes();
        let reject = plan.build(&[Some(&9i32.to_be_bytes()), None, None, None, Some(&nan)]).unwrap_err();
        assert_eq!(reject.key, "lesson_id=9");
        assert!(reject.reason.starts_with("column \"amount\": NaN cannot be stored"), "{}", reject.reason);
    }

    #[test]
    fn a_reject_names_every_value_of_the_row_that_cannot_be_stored() {
        let mut cols = columns();
        cols.push(("amount".into(), Type::FLOAT8));
        cols.push(("at".into(), Type::TIMESTAMP));
        cols.push(("lesson".into(), Type::FLOAT8));
        let plan = P::new(&mapping(column_key("lesson_id"), None), &[], cols.clone()).unwrap();
        let (nan, inf) = (f64::NAN.to_be_bytes(), i64::MAX.to_be_bytes());
        let reject =
            plan.build(&[Some(&9i32.to_be_bytes()), None, None, None, Some(&nan), Some(&inf), None]).unwrap_err();
        let reasons: Vec<&str> = reject.reason.split("; also ").collect();
        assert_eq!(reasons.len(), 2, "{}", reject.reason);
        assert!(reasons[0].starts_with("column \"amount\": NaN cannot be stored"), "{}", reject.reason);
        assert!(reasons[1].starts_with("column \"at\": timestamp 'infinity' cannot be stored"), "{}", reject.reason);
        assert!(reasons[1].ends_with("(at::text AS at)"), "each column with its own fix: {}", reject.reason);
        // A key's flaw comes first, and the column it names is not named again.
        let plan = P::new(&mapping(column_key("lesson"), None), &[], cols).unwrap();
        let reject = plan.build(&[None, None, None, None, Some(&nan), None, Some(&nan)]).unwrap_err();
        let reasons: Vec<&str> = reject.reason.split("; also ").collect();
        assert_eq!(reasons.len(), 2, "{}", reject.reason);
        assert!(reasons[0].starts_with("column \"lesson\" is NaN, which has no place in a key"), "{}", reject.reason);
        assert!(reasons[1].starts_with("column \"amount\": NaN"), "{}", reject.reason);
    }

    #[test]
    fn oversized_items_are_rejected_naming_the_largest_attribute() {
        let plan = P::new(&mapping(column_key("lesson_id"), None), &[], columns()).unwrap();
        let big = vec![b'x'; MAX_ITEM_BYTES];
        let reject = plan.build(&[Some(&1i32.to_be_bytes()), Some(&big), None, None]).unwrap_err();
        assert_eq!(reject.key, "lesson_id=1");
        assert!(
            reject.reason.starts_with(
                "the item is 401 KB, over DynamoDB's 400 KB limit; its largest attribute, \"title\", is 401 KB: \
                 store such children as items of their own"
            ),
            "{}",
            reject.reason
        );
    }

    #[test]
    fn the_bucket_counts_toward_the_item_limit_and_is_not_content() {
        let mut plan = P::new(&mapping(column_key("lesson_id"), None), &[], columns()).unwrap();
        let build = |plan: &P, len: usize| plan.build(&[Some(&1i32.to_be_bytes()), Some(&vec![b'x'; len]), None, None]);
        // The largest title that fits without the bucket.
        let fits = (MAX_ITEM_BYTES - 200..MAX_ITEM_BYTES).take_while(|&len| build(&plan, len).is_ok()).last().unwrap();
        let plain = build(&plan, 10).unwrap();
        plan.plan.bucketed = true;
        let bucketed = build(&plan, 10).unwrap();
        assert_eq!(bucketed.hash, plain.hash, "the bucket is not content");
        assert_eq!(bucketed.item[bucket::BUCKET_ATTR], AttributeValue::N(bucket::bucket(&bucketed.key).to_string()));
        let number = bucketed.item[bucket::BUCKET_ATTR].as_n().unwrap();
        assert_eq!(bucketed.size, plain.size + bucket::BUCKET_ATTR.len() + item::number_size(number));
        let reject = build(&plan, fits).unwrap_err();
        assert!(reject.reason.contains("over DynamoDB's 400 KB limit"), "{}", reject.reason);
    }

    #[test]
    fn a_rejected_row_keeps_its_key_digest_when_its_key_could_be_built() {
        let mut cols = columns();
        cols.push(("amount".into(), Type::FLOAT8));
        let template = Template::parse("LESSON#{lesson_id}").unwrap();
        let keys = [
            (column_key("lesson_id"), None),
            (KeySpec { attribute: "PK".into(), source: KeySource::Template(template) }, Some(column_key("title"))),
        ];
        for (partition, sort) in keys {
            let plan = P::new(&mapping(partition, sort), &[], cols.clone()).unwrap();
            let (id, good, nan) = (9i32.to_be_bytes(), 1.5f64.to_be_bytes(), f64::NAN.to_be_bytes());
            let big = vec![b'x'; MAX_ITEM_BYTES];
            let written = plan.build(&[Some(&id), Some(b"T"), None, None, Some(&good)]).unwrap();
            let rows: [[Option<&[u8]>; 5]; 2] =
                [[Some(&id), Some(b"T"), None, None, Some(&nan)], [Some(&id), Some(b"T"), None, Some(&big), None]];
            for bad in rows {
                assert!(plan.build(&bad).is_err());
                assert_eq!(plan.key_digest(&bad).ok(), Some(written.key), "the stored item's key");
            }
            assert_eq!(
                plan.key_digest(&[None, Some(b"T"), None, None, Some(&nan)]).ok(),
                None,
                "a NULL key names no item"
            );
        }
        // A NULL key column with a default takes it, as in `build`.
        let mut with_default = mapping(column_key("rating"), None);
        with_default.defaults = vec![("rating".into(), AttributeValue::N("0".into()))];
        let plan = P::new(&with_default, &[], columns()).unwrap();
        let built = plan.build(&[Some(&1i32.to_be_bytes()), Some(b"T"), None, None]).unwrap();
        assert_eq!(plan.key_digest(&[Some(&1i32.to_be_bytes()), Some(b"T"), None, None]).ok(), Some(built.key));
    }

    fn template(attribute: &str, text: &str) -> KeySpec {
        KeySpec { attribute: attribute.into(), source: KeySource::Template(Template::parse(text).unwrap()) }
    }

    /// The finding's mapping: `PK = F#{f}` from a double, `SK = T#{t}#R#{r}`.
    fn float_template_plan() -> P {
        let cols = vec![
            ("id".into(), Type::INT4),
            ("f".into(), Type::FLOAT8),
            ("t".into(), Type::TEXT),
            ("r".into(), Type::TEXT),
        ];
        P::new(&mapping(template("PK", "F#{f}"), Some(template("SK", "T#{t}#R#{r}"))), &[], cols).unwrap()
    }

    #[test]
    fn unusable_template_values_are_named_truthfully_with_the_parts_that_were_built() {
        let plan = float_template_plan();
        let id = 1i32.to_be_bytes();
        let row = |f: f64| {
            let f = f.to_be_bytes().to_vec();
            plan.build(&[Some(&id), Some(&f), Some(b"a"), Some(b"b")])
        };
        let s = |v: &str| AttributeValue::S(v.into());

        let built = row(2.5).unwrap();
        assert_eq!((&built.item["PK"], &built.item["SK"]), (&s("F#2.5"), &s("T#a#R#b")));

        for (value, word) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity"), (f64::NEG_INFINITY, "-Infinity")] {
            let reject = row(value).unwrap_err();
            assert_eq!(reject.key, format!("f={word}, SK=\"T#a#R#b\""), "the sort key could be built");
            assert_eq!(
                reject.reason,
                format!(
                    "column \"f\" is {word}, which has no place in a key (DynamoDB numbers have no NaN or infinity); \
                     leave such rows out of the query (WHERE f IS DISTINCT FROM '{word}'), or build the key from other columns"
                )
            );
            let raw = value.to_be_bytes();
            let flaw = plan.key_digest(&[Some(&id), Some(&raw), Some(b"a"), Some(b"b")]).unwrap_err();
            assert_eq!(flaw.leave_out(), Some(format!("f IS DISTINCT FROM '{word}'")));
            assert_eq!(flaw.to_string(), reject.reason, "one reason for the row and for the deletes it holds");
        }

        // 1e300 makes a good string key; the row is rejected for its attribute alone, by its key.
        let reject = row(1e300).unwrap_err();
        assert_eq!(reject.key, "PK=\"F#1e+300\", SK=\"T#a#R#b\"");
        assert_eq!(
            reject.reason,
            "column \"f\": 1E+300 is outside DynamoDB's number range (1E-130 to 9.99E+125); cast the column to text \
             to store the number as a string, as PostgreSQL prints it (f::text AS f)"
        );
        let raw = 1e300f64.to_be_bytes();
        assert_eq!(
            plan.key_digest(&[Some(&id), Some(&raw), Some(b"a"), Some(b"b")]),
            Ok(hash::key_digest(&[&s("F#1e+300"), &s("T#a#R#b")])),
            "its stored item, if any, is named"
        );

        // NULL and empty parts keep their reasons, and the other key is still shown.
        let f = 2.5f64.to_be_bytes();
        let reject = plan.build(&[Some(&id), Some(&f), None, Some(b"b")]).unwrap_err();
        assert_eq!(
            (reject.key.as_str(), reject.reason.as_str()),
            ("PK=\"F#2.5\", t=NULL, r=\"b\"", "key column \"t\" is NULL")
        );
        let flaw = plan.key_digest(&[Some(&id), Some(&f), Some(b""), Some(b"b")]).unwrap_err();
        assert_eq!(
            (flaw.to_string().as_str(), flaw.leave_out()),
            ("key column \"t\" is empty", Some("t IS DISTINCT FROM ''".into()))
        );
    }

    #[test]
    fn column_keys_that_do_not_convert_say_why() {
        let cols = vec![
            ("f".to_string(), Type::FLOAT8),
            ("n".to_string(), Type::NUMERIC),
            ("at".to_string(), Type::TIMESTAMP),
        ];
        for (key, row, named, reason, leave_out) in [
            (
                "f",
                [Some(f64::NAN.to_be_bytes().to_vec()), None, None],
                "f=NaN",
                "column \"f\" is NaN, which has no place in a key",
                Some("f IS DISTINCT FROM 'NaN'"),
            ),
            (
                "f",
                [Some(1e300f64.to_be_bytes().to_vec()), None, None],
                "f=1e+300",
                "key column \"f\": 1E+300 is outside DynamoDB's number range (1E-130 to 9.99E+125), which has no \
                 place in a key; leave such rows out of the query (WHERE (f IS NULL OR f = 0 OR abs(f) >= 1e-130 AND \
                 abs(f) < 1e126)), or return the column as text (f::text AS f), which a key can hold",
                Some("(f IS NULL OR f = 0 OR abs(f) >= 1e-130 AND abs(f) < 1e126)"),
            ),
            (
                "at",
                [None, None, Some(i64::MAX.to_be_bytes().to_vec())],
                "at=infinity",
                "column \"at\" is timestamp 'infinity', which has no place in a key (it is not a point in time); \
                 leave such rows out of the query (WHERE at IS DISTINCT FROM 'infinity')",
                Some("at IS DISTINCT FROM 'infinity'"),
            ),
        ] {
            let mut entity = mapping(column_key(key), None);
            entity.defaults.clear();
            let plan = P::new(&entity, &[], cols.clone()).unwrap();
            let raw: Vec<Option<&[u8]>> = row.iter().map(|v| v.as_deref()).collect();
            let reject = plan.build(&raw).unwrap_err();
            assert_eq!(reject.key, named);
            assert!(reject.reason.starts_with(reason), "{}", reject.reason);
            assert_eq!(plan.key_digest(&raw).unwrap_err().leave_out().as_deref(), leave_out);
        }
    }

    #[test]
    fn advice_names_the_table_column_and_says_what_an_expression_name_stands_for() {
        let float = |name: &str| (name.to_string(), Type::FLOAT8);
        let cols = vec![("id".to_string(), Type::INT4), float("f"), float("g"), float("h")];
        let mut entity = mapping(template("PK", "F#{f}"), None);
        entity.defaults.clear();
        // `x AS f`, `y AS g`, and h an expression (`x * 2 AS h`).
        let origins = vec![Some("id".into()), Some("x".into()), Some("y".into()), None];
        let plan = P::new(&entity, &[], cols).unwrap().sourced(origins);
        let (id, nan, one) = (1i32.to_be_bytes(), f64::NAN.to_be_bytes(), 1.5f64.to_be_bytes());
        let raw = [Some(&id[..]), Some(&nan[..]), None, None];
        let reject = plan.build(&raw).unwrap_err();
        assert!(reject.reason.contains("(WHERE x IS DISTINCT FROM 'NaN')"), "{}", reject.reason);
        assert_eq!(plan.key_digest(&raw).unwrap_err().leave_out().as_deref(), Some("x IS DISTINCT FROM 'NaN'"));
        let reject = plan.build(&[Some(&id), Some(&one), Some(&nan), None]).unwrap_err();
        assert!(reject.reason.contains("(NULLIF(y, 'NaN') AS g)"), "{}", reject.reason);
        assert!(reject.reason.contains("(WHERE y IS DISTINCT FROM 'NaN')"), "{}", reject.reason);
        assert!(!reject.reason.contains("being the expression"), "{}", reject.reason);
        let reject = plan.build(&[Some(&id), Some(&one), None, Some(&nan)]).unwrap_err();
        assert!(
            reject.reason.contains("(NULLIF(h, 'NaN') AS h)")
                && reject.reason.ends_with(" (h being the expression the query selects as h)"),
            "{}",
            reject.reason
        );
    }

    #[test]
    fn a_second_value_a_key_cannot_hold_is_left_out_not_made_null() {
        let cols =
            vec![("id".to_string(), Type::INT4), ("f".to_string(), Type::FLOAT8), ("at".to_string(), Type::TIMESTAMP)];
        let mut entity = mapping(template("PK", "T#{f}#{at}"), None);
        entity.defaults.clear();
        let plan = P::new(&entity, &[], cols).unwrap();
        let (id, nan, minus) = (1i32.to_be_bytes(), f64::NAN.to_be_bytes(), i64::MIN.to_be_bytes());
        let reject = plan.build(&[Some(&id), Some(&nan), Some(&minus)]).unwrap_err();
        assert!(!reject.reason.contains("NULLIF(at"), "{}", reject.reason);
        assert!(
            reject.reason.contains(
                "; also column \"at\" is timestamp '-infinity', which has no place in a key (it is not a point in \
                 time); leave such rows out of the query (WHERE at IS DISTINCT FROM '-infinity')"
            ),
            "{}",
            reject.reason
        );
    }

    #[test]
    fn a_long_value_in_a_row_key_is_cut_short() {
        let long = format!("1{}", "0".repeat(300));
        assert_eq!(shortened(long), "10000000000000000000… (301 digits)");
        assert_eq!(shortened(format!("-{}e", "9".repeat(30))), format!("-{}… (30 digits)", "9".repeat(19)));
        assert_eq!(shortened("12345".into()), "12345");
        assert_eq!(shortened("x".repeat(30)), format!("{}… (30 characters)", "x".repeat(20)));
    }

    #[test]
    fn advice_holding_a_backslash_says_to_use_a_literal_string() {
        let cols =
            vec![("id".to_string(), Type::INT4), (r"a\b".to_string(), Type::FLOAT8), ("c".to_string(), Type::FLOAT8)];
        let mut entity = mapping(column_key("id"), None);
        entity.defaults.clear();
        let plan = P::new(&entity, &[], cols).unwrap();
        let (id, nan) = (1i32.to_be_bytes(), f64::NAN.to_be_bytes());
        let reject = plan.build(&[Some(&id), Some(&nan), None]).unwrap_err();
        assert!(reject.reason.contains(r#"(NULLIF("a\b", 'NaN') AS "a\b")"#), "{}", reject.reason);
        assert!(reject.reason.ends_with("write the query as a literal string ('''…'''), which TOML keeps as written"));
        let reject = plan.build(&[Some(&id), None, Some(&nan)]).unwrap_err();
        assert!(!reject.reason.contains("literal string"), "{}", reject.reason);
    }

    #[test]
    fn each_template_column_type_is_spelled_or_refused() {
        let cols = vec![
            ("n".to_string(), Type::NUMERIC),
            ("b".to_string(), Type::BOOL),
            ("at".to_string(), Type::TIMESTAMPTZ),
            ("doc".to_string(), Type::JSONB),
        ];
        let mut entity = mapping(template("PK", "{n}|{b}|{at}|{doc}"), None);
        entity.defaults.clear();
        let plan = P::new(&entity, &[], cols.clone()).unwrap();
        // numeric 1.50: canonical, as the item's attribute holds it.
        let n = [2u16, 0, 0, 2, 1, 5000].iter().flat_map(|w| w.to_be_bytes()).collect::<Vec<u8>>();
        let (b, at) = ([1u8], 0i64.to_be_bytes());
        let row = |doc: &[u8]| plan.build(&[Some(&n), Some(&b), Some(&at), Some(doc)]);
        let built = row(b"\x01\"x\"").unwrap();
        assert_eq!(built.item["PK"], AttributeValue::S("1.5|true|2000-01-01T00:00:00+00:00|x".into()));
        let reject = row(b"\x01{\"a\": 1}").unwrap_err();
        assert_eq!(reject.key, "n=1.5, b=true, at=\"2000-01-01T00:00:00+00:00\", doc=<JSON object>");
        assert_eq!(
            reject.reason,
            "column \"doc\" holds a JSON object, which has no place in a key (a key is one text); return one value \
             of it in the query instead (doc->>'name' AS …), or leave such rows out (WHERE (doc IS NULL OR \
             jsonb_typeof(doc) IN ('string', 'number', 'boolean')))"
        );
        assert!(row(b"\x01null").unwrap_err().reason.starts_with("column \"doc\" is JSON null, which has no place"));

        // Arrays and bytes never have one text: refused before any row is read.
        for (ty, why) in [
            (Type::TEXT_ARRAY, "is an array (text[]), which has no one text for a key; return one element (tags[1] AS …)"),
            (Type::BYTEA, "is bytea, whose bytes have no text of their own for a key; encode them in the query (encode(tags, 'hex') AS …)"),
        ] {
            let cols = vec![("id".to_string(), Type::INT4), ("tags".to_string(), ty)];
            let err = P::new(&mapping(template("PK", "T#{tags}"), None), &[], cols).unwrap_err();
            assert!(err.to_string().contains(&format!("key \"PK\": template \"T#{{tags}}\": column \"tags\" {why}")), "{err}");
        }
    }

    #[test]
    fn column_names_are_quoted_in_advice_when_sql_needs_it() {
        let sql_name = value::sql_name;
        assert_eq!(sql_name("f"), "f");
        assert_eq!(sql_name("unit_price2"), "unit_price2");
        assert_eq!(sql_name("Price"), "\"Price\"");
        assert_eq!(sql_name("a \"b\""), "\"a \"\"b\"\"\"");
        assert_eq!(sql_name("2x"), "\"2x\"");
        // Reserved words, which no query can use as a plain column name; others stay plain.
        assert_eq!(sql_name("select"), "\"select\"");
        assert_eq!(sql_name("left"), "\"left\"");
        assert_eq!(sql_name("time"), "time");
        assert_eq!(sql_name("a$1"), "a$1");
    }

    fn index(name: &str, pk: &str, projection: Projection) -> Index {
        Index { name: name.into(), local: false, partition_key: pk.into(), sort_key: None, projection }
    }

    #[test]
    fn index_entries_add_write_units_and_sparse_items_add_none() {
        let indexes = [index("by_title", "title", Projection::All), index("by_rating", "rating", Projection::KeysOnly)];
        let mut entity = mapping(column_key("lesson_id"), None);
        entity.defaults.clear();
        let plan = P::new(&entity, &indexes, columns()).unwrap();
        assert_eq!(plan.index_attributes, [("title".to_string(), "S"), ("rating".to_string(), "N")]);
        let id = 7i32.to_be_bytes();
        let title = vec![b't'; 1500];
        // In both indexes: 2 units for the item, 2 for its full copy, 1 for the keys-only entry.
        let both = plan.build(&[Some(&id), Some(&title), Some(&5i32.to_be_bytes()), None]).unwrap();
        assert_eq!(both.units, 2 + 2 + 1);
        // NULL rating: the item is not in by_rating (a sparse index).
        let sparse = plan.build(&[Some(&id), Some(&title), None, None]).unwrap();
        assert!(!sparse.item.contains_key("rating"));
        assert_eq!(sparse.units, 2 + 2);
    }

    #[test]
    fn an_empty_index_key_is_rejected_and_a_bad_type_refused() {
        let indexes = [index("by_title", "title", Projection::All)];
        let plan = P::new(&mapping(column_key("lesson_id"), None), &indexes, columns()).unwrap();
        let reject = plan.build(&[Some(&1i32.to_be_bytes()), Some(b""), None, None]).unwrap_err();
        assert_eq!(reject.key, "lesson_id=1");
        assert!(reject.reason.starts_with("attribute \"title\" is an index key and is empty"), "{}", reject.reason);
        let mut cols = columns();
        cols.push(("tags".into(), Type::JSONB));
        let err = P::new(&mapping(column_key("lesson_id"), None), &[index("by_tags", "tags", Projection::All)], cols)
            .unwrap_err();
        assert!(err.to_string().contains("column \"tags\" is a key of index \"by_tags\" but has type jsonb"), "{err}");
    }

    #[test]
    fn keys_over_dynamodb_size_limits_are_rejected_with_the_key() {
        let plan = P::new(&mapping(column_key("lesson_id"), Some(column_key("title"))), &[], columns()).unwrap();
        let id = 1i32.to_be_bytes();
        // UTF-8 bytes count: 512 × "é" is 1024 bytes, at the sort key limit; one more byte is over.
        let at_limit = "é".repeat(512);
        assert!(plan.build(&[Some(&id), Some(at_limit.as_bytes()), None, None]).is_ok());
        let over = format!("{at_limit}x");
        let reject = plan.build(&[Some(&id), Some(over.as_bytes()), None, None]).unwrap_err();
        assert_eq!(reject.key, format!("lesson_id=1, title=\"{}…\" (1025 bytes)", "é".repeat(30)));
        assert_eq!(
            reject.reason,
            "sort key \"title\" is 1025 bytes, over DynamoDB's limit of 1024 for a sort key; build it from shorter \
             values (a hash of a long one, such as md5(column), for example)"
        );
        let pk =
            KeySpec { attribute: "PK".into(), source: KeySource::Template(Template::parse("LESSON#{title}").unwrap()) };
        let plan = P::new(&mapping(pk, None), &[], columns()).unwrap();
        let long = "t".repeat(2041);
        assert!(plan.build(&[Some(&id), Some(long.as_bytes()), None, None]).is_ok(), "LESSON# + 2041 = 2048 bytes");
        let longer = "t".repeat(2042);
        let reject = plan.build(&[Some(&id), Some(longer.as_bytes()), None, None]).unwrap_err();
        assert!(
            reject.reason.starts_with("partition key \"PK\" is 2049 bytes, over DynamoDB's limit of 2048"),
            "{reject:?}"
        );
    }

    #[test]
    fn index_keys_over_dynamodb_size_limits_are_rejected() {
        let indexes = [Index {
            name: "by_title".into(),
            local: false,
            partition_key: "title".into(),
            sort_key: Some("updated_at".into()),
            projection: Projection::All,
        }];
        let plan = P::new(&mapping(column_key("lesson_id"), None), &indexes, columns()).unwrap();
        let id = 1i32.to_be_bytes();
        let ok = plan.build(&[Some(&id), Some(&[b't'; 2048]), None, Some(&[b'u'; 1024])]);
        assert!(ok.is_ok(), "{ok:?}");
        let reject = plan.build(&[Some(&id), Some(&[b't'; 2049]), None, Some(b"u")]).unwrap_err();
        assert_eq!(
            reject.reason,
            "attribute \"title\" is the partition key of index \"by_title\" and is 2049 bytes, over DynamoDB's limit \
             of 2048 for a partition key; return a shorter value, or NULL to leave the item out of the index"
        );
        let reject = plan.build(&[Some(&id), Some(b"t"), None, Some(&[b'u'; 1025])]).unwrap_err();
        assert!(reject
            .reason
            .starts_with("attribute \"updated_at\" is the sort key of index \"by_title\" and is 1025 bytes"));
        // Each index key attribute is held to its limit on its own, as DynamoDB checks an empty one.
        assert!(plan.build(&[Some(&id), None, None, Some(&[b'u'; 1025])]).is_err());
        assert!(plan.build(&[Some(&id), None, None, None]).is_ok());
    }

    #[test]
    fn values_dynamodb_refuses_are_rejected_with_the_key() {
        let mut cols = columns();
        cols.push(("doc".into(), Type::JSON));
        cols.push(("docs".into(), Type::JSON_ARRAY));
        let plan = P::new(&mapping(column_key("lesson_id"), None), &[], cols).unwrap();
        let id = 4i32.to_be_bytes();
        let row = |doc: &[u8]| plan.build(&[Some(&id), None, None, None, Some(doc), None]);
        let reject = row(br#"{"a": {"": 1}}"#).unwrap_err();
        assert_eq!(reject.key, "lesson_id=4");
        assert!(reject.reason.starts_with("attribute \"doc\" holds a map with an empty key (at doc.a)"), "{reject:?}");
        let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
        let reject = row(deep.as_bytes()).unwrap_err();
        assert!(
            reject.reason.starts_with("column \"doc\": the JSON document is nested more than 32 levels deep"),
            "{reject:?}"
        );
        // 31 levels inside an array element: level 32 inside the document, 33 in the item.
        let element = format!("{}1{}", "[".repeat(31), "]".repeat(31));
        let mut array = Vec::new();
        for word in [1i32, 0, 114, 1, 1, element.len() as i32] {
            array.extend_from_slice(&word.to_be_bytes());
        }
        array.extend_from_slice(element.as_bytes());
        let reject = plan.build(&[Some(&id), None, None, None, None, Some(&array)]).unwrap_err();
        assert!(
            reject.reason.starts_with("attribute \"docs\" is nested more than 32 levels deep (at docs[0]"),
            "{reject:?}"
        );
        assert!(row(br#"{"a": {"b": 1}}"#).is_ok());
    }

    #[test]
    fn reserved_column_names_are_profile_errors() {
        let mut cols = columns();
        cols.push((HASH_ATTR.into(), Type::TEXT));
        let err = P::new(&mapping(column_key("lesson_id"), None), &[], cols).unwrap_err();
        assert_eq!(
            err.to_string(),
            "envs/mappings/pni.toml: table \"lessons\": column \"_ddbsync_hash\": names starting with _ddbsync_ are \
             ddbsync's own (it keeps each item's content hash in _ddbsync_hash); rename the column in the query \
             (… AS ddbsync_hash)"
        );
    }

    #[test]
    fn a_key_column_default_must_have_the_key_type() {
        let mut entity = mapping(column_key("lesson_id"), None);
        entity.defaults = vec![("lesson_id".into(), AttributeValue::S("none".into()))];
        let err = P::new(&entity, &[], columns()).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "defaults.lesson_id: column \"lesson_id\" is a key of the table, of type N, but its default is S; \
                 give a default of type N, or none"
            ),
            "{err}"
        );
        let indexes = [index("by_rating", "rating", Projection::All)];
        let mut entity = mapping(column_key("lesson_id"), None);
        entity.defaults = vec![("rating".into(), AttributeValue::Bool(false))];
        let err = P::new(&entity, &indexes, columns()).unwrap_err();
        assert!(
            err.to_string().contains(
                "column \"rating\" is a key of an index, of type N, but its default is not a string or number"
            ),
            "{err}"
        );
        // The test mapping's own default (rating = 0) fits.
        assert!(P::new(&mapping(column_key("lesson_id"), None), &indexes, columns()).is_ok());
    }

    fn table(entities: Vec<Entity>, indexes: Vec<Index>) -> TableMapping {
        TableMapping {
            diff: Default::default(),
            name: "catalog".into(),
            table_name: "t-catalog".into(),
            entities,
            indexes,
            delete_missing: false,
            scope: None,
            promote: None,
            origin: "m.toml".into(),
        }
    }

    #[test]
    fn a_table_plan_joins_the_entities_schemas() {
        let pk = |t: &str| KeySpec { attribute: "PK".into(), source: KeySource::Template(Template::parse(t).unwrap()) };
        let mut artist = mapping(pk("ARTIST#{lesson_id}"), None);
        artist.name = "artist".into();
        let mut album = mapping(pk("ALBUM#{lesson_id}"), None);
        album.name = "album".into();
        // Its rating is text below: a number default would not fit the index key.
        album.defaults.clear();
        let indexes = vec![index("by_rating", "rating", Projection::All)];
        let plans = |cols_b: Vec<(String, Type)>| {
            vec![P::new(&artist, &indexes, columns()).unwrap().plan, P::new(&album, &indexes, cols_b).unwrap().plan]
        };
        let mapping = table(vec![artist.clone(), album.clone()], indexes.clone());
        // Only one entity has the index's attribute: the other's items stay out of it.
        let plan = TablePlan::new(&mapping, plans(columns()[..2].to_vec()), HashMap::new()).unwrap();
        assert_eq!(plan.schema.keys, [("PK".to_string(), "S".to_string())]);
        assert_eq!(plan.schema.indexes[0].keys, [("rating".to_string(), "N".to_string())]);
        let mut text_rating = columns();
        text_rating[2].1 = Type::TEXT;
        let err = TablePlan::new(&mapping, plans(text_rating), HashMap::new()).unwrap_err();
        assert!(
            err.to_string().ends_with(
                "index \"by_rating\": attribute \"rating\" is N in entity \"artist\" but S in entity \"album\"; an index key has one type"
            ),
            "{err}"
        );
        let lonely = table(vec![album.clone()], vec![index("by_x", "x", Projection::All)]);
        let plans = vec![P::new(&album, &lonely.indexes, columns()).unwrap().plan];
        let err = TablePlan::new(&lonely, plans, HashMap::new()).unwrap_err();
        assert!(err.to_string().contains("index \"by_x\": no query returns attribute \"x\""), "{err}");
    }
}
