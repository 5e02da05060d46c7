//! Table mappings, validated: which queries feed a table (its entities), their keys, and the
//! table's secondary indexes. Every error names the table (and entity) and how to fix it.

use std::path::{Path, PathBuf};

use super::{raw, ProfileError, Template};
use crate::pure::hash::Excluded;
use crate::pure::item::{self, AttributeValue, HASH_ATTR};

/// How one DynamoDB table is fed: by one query, or by several entity queries (single-table design).
#[derive(Debug, Clone)]
pub struct TableMapping {
    /// The mapping's name, without the environment's prefix (`lessons`).
    pub name: String,
    /// The DynamoDB table name (`pni-lessons`).
    pub table_name: String,
    /// At least one; all give the same key attribute names. A table with a single `query` has one
    /// entity named after the table.
    pub entities: Vec<Entity>,
    /// Secondary indexes created with the table.
    pub indexes: Vec<Index>,
    /// Delete target items whose source row is gone.
    pub delete_missing: bool,
    /// A filter expression limiting the diff to the items the parameters cover.
    pub scope: Option<String>,
    /// How the diff reads what the table holds.
    pub diff: DiffMode,
    /// A DynamoDB source's table and how its IDs become the target's (None for a SQL source).
    pub promote: Option<Promote>,
    /// The mappings file, for messages.
    pub origin: PathBuf,
}

/// How a table is promoted from a DynamoDB source: where its items are, and which attributes
/// hold IDs ([`crate::pure::remap`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Promote {
    /// The source table's name (`source.table_template` applied).
    pub source_table: String,
    /// The attribute whose value is the item's ID, replaced by its new ID; None: IDs copied.
    pub id: Option<String>,
    pub references: Vec<crate::pure::remap::Reference>,
}

/// How a sync's diff reads the target table (`diff` in the mappings file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DiffMode {
    /// A parallel Scan of the table, projecting keys and hashes (billed on whole items).
    #[default]
    Scan,
    /// Queries of the hash index ([`crate::pure::bucket::INDEX_NAME`]), bucket by bucket.
    Index,
}

impl DiffMode {
    pub fn name(self) -> &'static str {
        match self {
            DiffMode::Scan => "scan",
            DiffMode::Index => "index",
        }
    }
}

impl TableMapping {
    /// An error about this table, located in its mappings file.
    pub fn error(&self, message: impl std::fmt::Display) -> ProfileError {
        ProfileError::new(&self.origin, format!("table \"{}\": {message}", self.name))
    }

    /// The parameter names the table's queries use, each once, in order.
    pub fn params(&self) -> Vec<&str> {
        distinct(self.entities.iter().flat_map(|e| e.params.iter().map(String::as_str)))
    }

    /// Whether any of the table's queries takes parameters.
    pub fn takes_params(&self) -> bool {
        self.entities.iter().any(|e| !e.params.is_empty())
    }

    /// The hash index the diff reads when `diff = "index"`: keyed by each item's bucket, copying
    /// the content hash and the attributes the scope reads (a Query's filter sees only those); the
    /// table's keys come with every entry.
    pub fn diff_index(&self) -> Option<Index> {
        use crate::pure::{bucket, item};
        if self.diff != DiffMode::Index {
            return None;
        }
        let keys: Vec<&str> = self.entities[0].keys().map(|k| k.attribute.as_str()).collect();
        let scope = self.scope.as_deref().map(scope_attributes).unwrap_or_default();
        let copied = std::iter::once(item::HASH_ATTR.to_string())
            .chain(scope.into_iter().filter(|a| !keys.contains(&a.as_str())));
        Some(Index {
            name: bucket::INDEX_NAME.to_string(),
            local: false,
            partition_key: bucket::BUCKET_ATTR.to_string(),
            sort_key: None,
            projection: Projection::Include(copied.collect()),
        })
    }

    /// Whether the table has several entities (the report then shows each).
    pub fn is_multi(&self) -> bool {
        self.entities.len() > 1
    }
}

/// One query feeding a table, and how its rows become items.
#[derive(Debug, Clone)]
pub struct Entity {
    /// The entity's name (`album`); the table's name for a table with a single query.
    pub name: String,
    pub query: String,
    /// Parameter names bound to `$1`, `$2`, … in order.
    pub params: Vec<String>,
    pub partition_key: KeySpec,
    pub sort_key: Option<KeySpec>,
    pub excluded: Excluded,
    /// Attribute → value used when the column is NULL.
    pub defaults: Vec<(String, AttributeValue)>,
    /// Columns whose text is parsed as a JSON document.
    pub json_columns: Vec<String>,
    /// `table "lessons"` or `table "catalog": entity "album"`, for messages.
    pub label: String,
    /// The mappings file, for messages.
    pub origin: PathBuf,
}

impl Entity {
    pub fn keys(&self) -> impl Iterator<Item = &KeySpec> {
        std::iter::once(&self.partition_key).chain(self.sort_key.as_ref())
    }

    /// An error about this entity, located in its mappings file.
    pub fn error(&self, message: impl std::fmt::Display) -> ProfileError {
        ProfileError::new(&self.origin, format!("{}: {message}", self.label))
    }
}

/// A secondary index declared in a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub name: String,
    /// A local index shares the table's partition key and exists only if created with the table.
    pub local: bool,
    pub partition_key: String,
    pub sort_key: Option<String>,
    pub projection: Projection,
}

impl Index {
    pub fn key_attributes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.partition_key.as_str()).chain(self.sort_key.as_deref())
    }
}

pub use crate::target::Projection;

/// A key attribute and where its value comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySpec {
    pub attribute: String,
    pub source: KeySource,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeySource {
    /// The value of this column, with its own type (`N` for integers, `S` for text…).
    Column(String),
    /// A string built from columns.
    Template(Template),
}

pub(super) fn table_mapping(
    origin: &Path,
    env_file: &Path,
    (prefix, suffix): (&str, &str),
    name: String,
    mut table: raw::TableSection,
    global_excluded: Option<&[String]>,
    source_template: Option<&str>,
) -> Result<TableMapping, ProfileError> {
    let err = |message: String| ProfileError::new(origin, format!("table \"{name}\": {message}"));
    let table_name = format!("{prefix}{name}{suffix}");
    let promote = promote(&name, &mut table, source_template).map_err(&err)?;
    if let Some(flaw) = name_flaw(&table_name) {
        // The file to blame is the one whose value breaks the rule: the environment's prefix only
        // when the mapping's name is fine alone and the prefix makes it too long.
        if bad_characters(&name).is_none() && name.len() <= MAX_NAME && table_name.len() > MAX_NAME {
            let (given, them) = match suffix.is_empty() {
                true => (format!("table_prefix = \"{prefix}\" makes"), "the prefix"),
                false => (format!("table_prefix = \"{prefix}\" and table_suffix = \"{suffix}\" make"), "them"),
            };
            return Err(ProfileError::new(
                env_file,
                format!(
                    "{given} the name of table \"{name}\" (of {}) \"{table_name}\", which {flaw}; shorten {them}",
                    origin.display()
                ),
            ));
        }
        return Err(err(format!("the table name \"{table_name}\" {flaw}; {NAME_RULE}: rename the mapping")));
    }
    let table_excluded = table.exclude_from_hash.as_deref().or(global_excluded);
    let entities = if table.entities.0.is_empty() {
        let (Some(query), Some(partition_key)) = (table.query, table.partition_key) else {
            return Err(err(
                "give a `query` and a `partition_key`, or [tables.<name>.entities.<entity>] sections with them".into(),
            ));
        };
        let section = raw::EntitySection {
            query,
            partition_key,
            sort_key: table.sort_key,
            exclude_from_hash: None,
            defaults: table.defaults,
            params: table.params,
            json_columns: table.json_columns,
        };
        vec![entity(origin, format!("table \"{name}\""), name.clone(), section, table_excluded)?]
    } else {
        let stray = [
            ("query", table.query.is_some()),
            ("partition_key", table.partition_key.is_some()),
            ("sort_key", table.sort_key.is_some()),
            ("params", !table.params.is_empty()),
            ("json_columns", !table.json_columns.is_empty()),
            ("defaults", !table.defaults.is_empty()),
        ];
        if let Some((key, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(err(format!(
                "`{key}` belongs in each [tables.{name}.entities.<entity>] section when the table has entities"
            )));
        }
        table
            .entities
            .0
            .into_iter()
            .map(|(entity_name, section)| {
                let label = format!("table \"{name}\": entity \"{entity_name}\"");
                entity(origin, label, entity_name, section, table_excluded)
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let first = &entities[0];
    for other in &entities[1..] {
        let names = |e: &Entity| (e.partition_key.attribute.clone(), e.sort_key.as_ref().map(|k| k.attribute.clone()));
        if names(other) != names(first) {
            let show = |e: &Entity| e.keys().map(|k| k.attribute.as_str()).collect::<Vec<_>>().join(", ");
            return Err(err(format!(
                "entity \"{}\" has key ({}) but entity \"{}\" has ({}); every entity of a table uses the same key attributes",
                other.name,
                show(other),
                first.name,
                show(first)
            )));
        }
    }
    let indexes = table
        .indexes
        .0
        .into_iter()
        .map(|(index_name, section)| index(first, index_name, section).map_err(&err))
        .collect::<Result<Vec<_>, _>>()?;
    for (kind, local, most) in [("global", false, 20), ("local", true, 5)] {
        if indexes.iter().filter(|i| i.local == local).count() > most {
            return Err(err(format!("DynamoDB allows at most {most} {kind} secondary indexes per table")));
        }
    }
    if let Some(scope) = &table.scope {
        let used = distinct(entities.iter().flat_map(|e| e.params.iter().map(String::as_str)));
        for placeholder in placeholders(scope, ':') {
            if !used.contains(&placeholder) {
                return Err(err(format!(
                    "scope uses `:{placeholder}`, which is not a parameter of the table's queries ({})",
                    if used.is_empty() { "they take none".to_string() } else { used.join(", ") }
                )));
            }
        }
    }
    let diff = match &table.diff {
        None => DiffMode::Scan,
        Some(toml::Value::String(s)) if s == "scan" => DiffMode::Scan,
        Some(toml::Value::String(s)) if s == "index" => DiffMode::Index,
        Some(other) => {
            return Err(err(format!(
                "diff = {other}: write \"scan\" (read the whole table, the default) or \"index\" (read the hash \
                 index, {})",
                crate::pure::bucket::INDEX_NAME
            )))
        }
    };
    if diff == DiffMode::Index && indexes.iter().filter(|i| !i.local).count() >= 20 {
        return Err(err(format!(
            "diff = \"index\" adds the global index {} and DynamoDB allows at most 20 per table; drop one of the \
             mapping's global indexes or leave the table's diff at \"scan\"",
            crate::pure::bucket::INDEX_NAME
        )));
    }
    if table.delete_missing && table.scope.is_none() && entities.iter().any(|e| !e.params.is_empty()) {
        return Err(err(
            "delete_missing needs a `scope` when the queries take parameters: without one, every item outside \
             the parameters' range would look deleted (scope = \"order_date >= :start AND order_date < :end\")"
                .into(),
        ));
    }
    Ok(TableMapping {
        name,
        table_name,
        entities,
        indexes,
        delete_missing: table.delete_missing,
        scope: table.scope,
        diff,
        promote,
        origin: origin.to_path_buf(),
    })
}

/// A DynamoDB source's settings of a table, checked: its source table and the attributes that
/// hold IDs. The table then has a single entity whose "query" is the source table's name. The
/// settings of the other kind of source are refused, not ignored.
fn promote(
    name: &str,
    table: &mut raw::TableSection,
    source_template: Option<&str>,
) -> Result<Option<Promote>, String> {
    let Some(template) = source_template else {
        let given = [
            ("source_table", table.source_table.is_some()),
            ("id", table.id.is_some()),
            ("references", !table.references.0.is_empty()),
        ];
        return match given.iter().find(|(_, set)| *set) {
            Some((key, _)) => Err(format!(
                "`{key}` is for a DynamoDB source (kind = \"dynamodb\" in the environment's [source]); this source \
                 is SQL: give the table a `query`"
            )),
            None => Ok(None),
        };
    };
    let sql_only = [
        ("query", table.query.is_some()),
        ("entities", !table.entities.0.is_empty()),
        ("params", !table.params.is_empty()),
        ("json_columns", !table.json_columns.is_empty()),
        ("scope", table.scope.is_some()),
    ];
    if let Some((key, _)) = sql_only.iter().find(|(_, set)| *set) {
        return Err(format!(
            "`{key}` is for SQL sources, and this environment's source is DynamoDB: the table's items come from \
             its source table (source_table, by default the mapping's name), every attribute copied"
        ));
    }
    let source_name = table.source_table.clone().unwrap_or_else(|| name.to_string());
    let source_table = template.replace("{table}", &source_name);
    if let Some(flaw) = name_flaw(&source_table) {
        return Err(format!(
            "its source table \"{source_table}\" (source.table_template with source_table = \"{source_name}\") {flaw}"
        ));
    }
    if let Some(id) = table.id.as_deref().filter(|id| id.is_empty() || item::is_reserved(id)) {
        return Err(format!("id = \"{id}\" is not an attribute ddbsync can remap; name the attribute holding the ID"));
    }
    let references = std::mem::take(&mut table.references)
        .0
        .into_iter()
        .map(|(path, referenced)| crate::pure::remap::Reference::parse(&path, &referenced))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(reference) =
        references.iter().find(|r| Some(r.attribute()) == table.id.as_deref() && r.steps.len() == 1)
    {
        return Err(format!(
            "reference \"{}\" is the table's own `id`, which is remapped as this table's ID; a reference names \
             another attribute",
            reference.path
        ));
    }
    // The entity reads the source table: its name stands where a SQL source has its query.
    table.query = Some(source_table.clone());
    Ok(Some(Promote { source_table, id: table.id.take(), references }))
}

/// A DynamoDB source's tables, checked together and put in dependency order: each reference
/// names a table of the mappings that has an `id`, and no references form a cycle.
pub(super) fn order_promotions(tables: &mut Vec<TableMapping>) -> Result<(), ProfileError> {
    for table in tables.iter() {
        let Some(promote) = &table.promote else { continue };
        for reference in &promote.references {
            let Some(referenced) = tables.iter().find(|t| t.name == reference.table) else {
                let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
                return Err(table.error(format!(
                    "reference \"{}\" names table \"{}\", which is not in the mappings ({}); name one of them",
                    reference.path,
                    reference.table,
                    names.join(", ")
                )));
            };
            if referenced.promote.as_ref().is_none_or(|p| p.id.is_none()) {
                return Err(table.error(format!(
                    "reference \"{}\" names table \"{}\", which has no `id`: its IDs are not remapped, so the \
                     reference could not follow them; add id = \"<attribute>\" to [tables.{}]",
                    reference.path, reference.table, reference.table
                )));
            }
        }
    }
    let graph: Vec<(String, Vec<String>)> = tables
        .iter()
        .map(|t| {
            let refs = t.promote.iter().flat_map(|p| p.references.iter().map(|r| r.table.clone()));
            (t.name.clone(), refs.collect())
        })
        .collect();
    match crate::pure::remap::dependency_order(&graph) {
        Ok(order) => {
            let mut slots: Vec<Option<TableMapping>> = std::mem::take(tables).into_iter().map(Some).collect();
            tables.extend(order.into_iter().filter_map(|i| slots[i].take()));
            Ok(())
        }
        Err(cycle) => {
            let first = tables.iter().find(|t| t.name == cycle[0]).expect("a table of the cycle");
            Err(first.error(format!(
                "its references form a cycle ({}): tables are written referenced ones first, which a cycle makes \
                 impossible; drop one of these references from the mappings",
                cycle.join(" → ")
            )))
        }
    }
}

/// DynamoDB's rule for table and index names: 3-255 of `[a-zA-Z0-9_.-]`.
fn valid_name(name: &str) -> bool {
    name_flaw(name).is_none()
}

/// DynamoDB's rule for table and index names, for messages.
pub(super) const NAME_RULE: &str = "DynamoDB names are 3 to 255 characters of a-z A-Z 0-9 _ . -";
pub(super) const MAX_NAME: usize = 255;

/// What DynamoDB finds wrong with a table name (`has characters …`, `is 2 characters …`), if anything.
pub(super) fn name_flaw(name: &str) -> Option<String> {
    if let Some(bad) = bad_characters(name) {
        return Some(format!("has characters DynamoDB refuses in a name ({bad})"));
    }
    match name.len() {
        n if n < 3 => Some(format!("is {n} characters, fewer than the 3 DynamoDB needs")),
        n if n > MAX_NAME => Some(format!("is {n} characters, more than the {MAX_NAME} DynamoDB allows")),
        _ => None,
    }
}

/// The characters of `name` that no DynamoDB table name may hold, each once: `" ", "/"`.
pub(super) fn bad_characters(name: &str) -> Option<String> {
    let mut bad: Vec<char> = Vec::new();
    for c in name.chars().filter(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c))) {
        if !bad.contains(&c) {
            bad.push(c);
        }
    }
    (!bad.is_empty()).then(|| bad.iter().map(|c| format!("{:?}", c.to_string())).collect::<Vec<_>>().join(", "))
}

pub(super) fn check_param_name(name: &str) -> Result<(), String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("parameter name {name:?} must be letters, digits and _"));
    }
    Ok(())
}

/// The placeholders a filter expression introduces with `sigil` (`:` for values, `#` for
/// attribute names), each once, in order.
pub fn placeholders(expression: &str, sigil: char) -> Vec<&str> {
    distinct(expression.match_indices(sigil).filter_map(|(at, _)| {
        let rest = &expression[at + 1..];
        let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        (end > 0).then(|| &rest[..end])
    }))
}

/// The top-level attributes a filter expression reads, each once, in order: `#name` stands for
/// `name`, a path (`doc.a[0]`) reads its first part; function names, keywords and `:values` are
/// not attributes.
pub fn scope_attributes(expression: &str) -> Vec<String> {
    const KEYWORDS: [&str; 5] = ["and", "or", "not", "between", "in"];
    let mut out: Vec<String> = Vec::new();
    let chars: Vec<char> = expression.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if !(word(c) || c == '#' || c == ':') {
            at += 1;
            continue;
        }
        let start = if c == '#' || c == ':' { at + 1 } else { at };
        let mut end = start;
        while end < chars.len() && word(chars[end]) {
            end += 1;
        }
        let name: String = chars[start..end].iter().collect();
        // What the token is: a value, part of a path after its first, a function, a keyword, a number.
        let previous = chars[..at].iter().rev().find(|c| !c.is_whitespace());
        let next = chars[end..].iter().find(|c| !c.is_whitespace());
        let attribute = c != ':'
            && !name.is_empty()
            && previous != Some(&'.')
            && next != Some(&'(')
            && !(c != '#'
                && (KEYWORDS.contains(&name.to_ascii_lowercase().as_str())
                    || name.starts_with(|c: char| c.is_ascii_digit())));
        if attribute && !out.contains(&name) {
            out.push(name);
        }
        at = end.max(at + 1);
    }
    out
}

/// The attributes a filter expression compares `:param` with: `a >= :p`, `:p < a`,
/// `a BETWEEN :p AND :q`, `a IN (:q, :p)`; `#name` stands for `name`. A source that does not type
/// its parameters (SQLite) types each like the attribute it is compared with.
pub fn compared_with(expression: &str, param: &str) -> Vec<String> {
    #[derive(Debug, PartialEq)]
    enum T {
        Word(String),
        Attribute(String),
        Value(String),
        Op,
        Open,
        Comma,
        Other,
    }
    let chars: Vec<char> = expression.chars().collect();
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c.is_whitespace() {
            at += 1;
            continue;
        }
        if word(c) || ((c == '#' || c == ':') && chars.get(at + 1).is_some_and(|n| word(*n))) {
            let start = if word(c) { at } else { at + 1 };
            let mut end = start;
            while end < chars.len() && word(chars[end]) {
                end += 1;
            }
            let name: String = chars[start..end].iter().collect();
            tokens.push(match c {
                ':' => T::Value(name),
                '#' => T::Attribute(name),
                _ => T::Word(name),
            });
            at = end;
            continue;
        }
        let two: String = chars[at..(at + 2).min(chars.len())].iter().collect();
        let (token, len) = match c {
            _ if ["<=", ">=", "<>"].contains(&two.as_str()) => (T::Op, 2),
            '=' | '<' | '>' => (T::Op, 1),
            '(' => (T::Open, 1),
            ',' => (T::Comma, 1),
            _ => (T::Other, 1),
        };
        tokens.push(token);
        at += len;
    }
    let attribute = |i: usize| -> Option<String> {
        match tokens.get(i)? {
            T::Attribute(name) => Some(name.clone()),
            T::Word(name)
                if !["and", "or", "not", "between", "in"].contains(&name.to_ascii_lowercase().as_str())
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && tokens.get(i + 1) != Some(&T::Open) =>
            {
                Some(name.clone())
            }
            _ => None,
        }
    };
    let keyword = |i: usize, k: &str| matches!(tokens.get(i), Some(T::Word(w)) if w.eq_ignore_ascii_case(k));
    let mut out: Vec<String> = Vec::new();
    for i in 0..tokens.len() {
        if tokens[i] != T::Value(param.to_string()) {
            continue;
        }
        let mut found = Vec::new();
        if i >= 2 && tokens[i - 1] == T::Op {
            found.extend(attribute(i - 2));
        }
        if tokens.get(i + 1) == Some(&T::Op) {
            found.extend(attribute(i + 2));
        }
        if i >= 2 && keyword(i - 1, "between") {
            found.extend(attribute(i - 2));
        }
        if i >= 4 && keyword(i - 1, "and") && matches!(tokens[i - 2], T::Value(_)) && keyword(i - 3, "between") {
            found.extend(attribute(i - 4));
        }
        // `a IN (…, :p, …)`: back over the list to its parenthesis.
        let mut j = i;
        while j > 0 && matches!(tokens[j - 1], T::Value(_) | T::Comma) {
            j -= 1;
        }
        if j >= 3 && tokens[j - 1] == T::Open && keyword(j - 2, "in") {
            found.extend(attribute(j - 3));
        }
        for name in found {
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// Each name once, in the order first seen.
pub fn distinct<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out = Vec::new();
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn entity(
    origin: &Path,
    label: String,
    name: String,
    section: raw::EntitySection,
    table_excluded: Option<&[String]>,
) -> Result<Entity, ProfileError> {
    let err = |message: String| ProfileError::new(origin, format!("{label}: {message}"));
    if section.query.trim().is_empty() {
        return Err(err("query is empty".into()));
    }
    let partition_key = key_spec(&section.partition_key).map_err(|m| err(format!("partition_key: {m}")))?;
    if let KeySource::Template(t) = &partition_key.source {
        if t.columns().next().is_none() {
            return Err(err(format!(
                "partition_key: template \"{t}\" names no column; a partition key built from no column is the same for every row"
            )));
        }
    }
    let sort_key = section.sort_key.as_ref().map(key_spec).transpose().map_err(|m| err(format!("sort_key: {m}")))?;
    for (role, spec) in [("partition_key", Some(&partition_key)), ("sort_key", sort_key.as_ref())] {
        let names = spec.into_iter().flat_map(|s| match &s.source {
            KeySource::Column(column) => vec![&s.attribute, column],
            KeySource::Template(_) => vec![&s.attribute],
        });
        if let Some(name) = names.into_iter().find(|n| item::is_reserved(n)) {
            return Err(err(format!("{role}: {}", reserved(name))));
        }
        if let Some(spec) = spec.filter(|s| s.attribute.len() > MAX_KEY_NAME_BYTES) {
            return Err(err(format!("{role}: {}", too_long(&spec.attribute))));
        }
    }
    if sort_key.as_ref().is_some_and(|s| s.attribute == partition_key.attribute) {
        return Err(err("sort_key and partition_key name the same attribute".into()));
    }
    for param in &section.params {
        check_param_name(param).map_err(|m| err(format!("params: {m}")))?;
    }
    let excluded = match section.exclude_from_hash.as_deref().or(table_excluded) {
        Some(names) => Excluded::new(names.iter().cloned()),
        None => Excluded::default(),
    };
    let defaults = section
        .defaults
        .iter()
        .map(|(k, v)| {
            let value = if item::is_reserved(k) { Err(reserved(k)) } else { toml_value(v) };
            value.map(|v| (k.clone(), v)).map_err(|m| err(format!("defaults.{k}: {m}")))
        })
        .collect::<Result<_, _>>()?;
    Ok(Entity {
        name,
        query: section.query,
        params: section.params,
        partition_key,
        sort_key,
        excluded,
        defaults,
        json_columns: section.json_columns,
        label,
        origin: origin.to_path_buf(),
    })
}

fn index(table_key: &Entity, name: String, section: raw::IndexSection) -> Result<Index, String> {
    let err = |message: String| format!("index \"{name}\": {message}");
    if !valid_name(&name) {
        return Err(err("is not a valid index name (3-255 of a-z A-Z 0-9 _ . -)".into()));
    }
    if crate::pure::item::is_reserved(&name) {
        return Err(err(format!(
            "names starting with {} are ddbsync's own (its hash index is {}); rename the index",
            crate::pure::item::RESERVED_PREFIX,
            crate::pure::bucket::INDEX_NAME
        )));
    }
    let local = match section.kind.as_deref() {
        None | Some("global") => false,
        Some("local") => true,
        Some(other) => return Err(err(format!("kind = \"{other}\" is not supported; use \"global\" or \"local\""))),
    };
    let table_partition = &table_key.partition_key.attribute;
    let partition_key = match (local, section.partition_key) {
        (false, Some(pk)) => pk,
        (false, None) => return Err(err("partition_key is missing".into())),
        (true, Some(pk)) if pk != *table_partition => {
            return Err(err(format!(
                "a local index has the table's partition key \"{table_partition}\", not \"{pk}\"; remove partition_key"
            )))
        }
        (true, _) => table_partition.clone(),
    };
    if local && (section.sort_key.is_none() || table_key.sort_key.is_none()) {
        return Err(err("a local index needs a sort_key, on a table that has a sort key".into()));
    }
    let projection = match &section.projection {
        None => Projection::All,
        Some(toml::Value::String(s)) if s == "all" => Projection::All,
        Some(toml::Value::String(s)) if s == "keys_only" => Projection::KeysOnly,
        Some(toml::Value::Array(list)) => Projection::Include(
            list.iter()
                .map(|v| v.as_str().map(str::to_string).ok_or_else(|| err("projection lists attribute names".into())))
                .collect::<Result<_, _>>()?,
        ),
        Some(_) => return Err(err("projection is \"all\", \"keys_only\" or a list of attribute names".into())),
    };
    if [Some(&partition_key), section.sort_key.as_ref()].into_iter().flatten().any(|a| a.is_empty()) {
        return Err(err("its key attributes must be named".into()));
    }
    if let Some(name) =
        [Some(&partition_key), section.sort_key.as_ref()].into_iter().flatten().find(|a| item::is_reserved(a))
    {
        return Err(err(reserved(name)));
    }
    let projected = match &section.projection {
        Some(toml::Value::Array(list)) => list.iter().filter_map(toml::Value::as_str).collect(),
        _ => Vec::new(),
    };
    let names = [Some(partition_key.as_str()), section.sort_key.as_deref()].into_iter().flatten().chain(projected);
    if let Some(long) = names.into_iter().find(|n| n.len() > MAX_KEY_NAME_BYTES) {
        return Err(err(too_long(long)));
    }
    Ok(Index { name, local, partition_key, sort_key: section.sort_key, projection })
}

/// DynamoDB's limit on the names of key attributes (table and index) and of attributes an index
/// projects; other attribute names may be longer.
const MAX_KEY_NAME_BYTES: usize = 255;

fn too_long(name: &str) -> String {
    format!(
        "attribute name \"{}…\" is {} bytes; DynamoDB allows at most {MAX_KEY_NAME_BYTES} for a key or projected \
         attribute; use a shorter name",
        name.chars().take(20).collect::<String>(),
        name.len()
    )
}

/// Why an attribute name ddbsync owns cannot be the user's.
fn reserved(name: &str) -> String {
    format!(
        "\"{name}\" is a name ddbsync keeps for its own attributes (names starting with {}; it stores each \
         item's content hash in {HASH_ATTR}); use another name, renaming the column in the query (… AS {}) if it is one",
        item::RESERVED_PREFIX,
        name.trim_start_matches('_')
    )
}

fn key_spec(value: &toml::Value) -> Result<KeySpec, String> {
    const FORMS: &str = "write a column name (\"lesson_id\") or { name = \"PK\", template = \"LESSON#{lesson_id}\" }";
    match value {
        toml::Value::String(column) if !column.trim().is_empty() => {
            Ok(KeySpec { attribute: column.clone(), source: KeySource::Column(column.clone()) })
        }
        toml::Value::Table(t) => {
            if let Some(unknown) = t.keys().find(|k| !["name", "template", "column"].contains(&k.as_str())) {
                return Err(format!("unknown key `{unknown}`; {FORMS}"));
            }
            let text =
                |k: &str| t.get(k).map(|v| v.as_str().map(str::to_string).ok_or(format!("`{k}` must be a string")));
            let name = text("name").ok_or(format!("`name` is missing; {FORMS}"))??;
            let source = match (text("template").transpose()?, text("column").transpose()?) {
                (Some(template), None) => KeySource::Template(Template::parse(&template)?),
                (None, Some(column)) => KeySource::Column(column),
                (None, None) => KeySource::Column(name.clone()),
                (Some(_), Some(_)) => return Err("give either `template` or `column`, not both".into()),
            };
            Ok(KeySpec { attribute: name, source })
        }
        _ => Err(FORMS.into()),
    }
}

fn toml_value(value: &toml::Value) -> Result<AttributeValue, String> {
    use crate::pure::number;
    Ok(match value {
        toml::Value::String(s) => AttributeValue::S(s.clone()),
        toml::Value::Integer(i) => AttributeValue::N(i.to_string()),
        toml::Value::Float(f) => AttributeValue::N(number::from_f64(*f).map_err(|e| e.to_string())?),
        toml::Value::Boolean(b) => AttributeValue::Bool(*b),
        toml::Value::Datetime(d) => AttributeValue::S(d.to_string()),
        toml::Value::Array(items) => AttributeValue::L(items.iter().map(toml_value).collect::<Result<_, _>>()?),
        toml::Value::Table(t) => {
            AttributeValue::M(t.iter().map(|(k, v)| Ok((k.clone(), toml_value(v)?))).collect::<Result<_, String>>()?)
        }
    })
}
