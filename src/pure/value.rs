//! ddbsync's own source values, shared by every source: what a source adapter turns its rows
//! and column types into, so that the pure core (item building, hashing, diffing) never sees a
//! driver's type. Pure.
//!
//! A row is a list of [`Cell`]s: NULL, a converted attribute value, or a value refused with the
//! reason ([`ConvertError`]) and, where it still has one, the text a key template can spell it by
//! (a number beyond DynamoDB's range, as the source prints it). A column's type is a
//! [`ColumnType`]: the few facts and the advice the core needs about it (its name in messages,
//! the DynamoDB type of a key made from it, the query's fix for a value it refuses), each written
//! by the source that knows the type.
//!
//! Also here, because every source needs them: the JSON parser that turns a document into
//! attributes ([`json_text`]), the ISO-8601 spelling of a point in time ([`iso`]), and
//! [`sql_name`], a column as SQL spells it.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::NaiveDateTime;

use crate::pure::item::{self, AttributeValue};
use crate::pure::number::{self, NumberError};

/// One value of a source row, as the source's adapter converted it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL: no attribute (or the mapping's default).
    Null,
    Value(AttributeValue),
    /// A value with no faithful DynamoDB form, and why; `text` is how the source prints it when a
    /// key template can still spell it (a number beyond DynamoDB's range).
    Refused {
        error: ConvertError,
        text: Option<String>,
    },
}

impl Cell {
    /// A refused value that has no text of its own in a key.
    pub fn refused(error: ConvertError) -> Cell {
        Cell::Refused { error, text: None }
    }

    /// The text the value takes in a key template: [`attribute_key_text`] of its attribute, or
    /// the source's spelling of a number DynamoDB cannot hold (`1e+300`).
    pub fn key_text(&self) -> Result<Cow<'_, str>, Unkeyable> {
        match self {
            Cell::Value(value) => attribute_key_text(value).map(Cow::Borrowed),
            Cell::Refused { text: Some(text), .. } => Ok(Cow::Borrowed(text)),
            Cell::Refused { error, text: None } => Err(Unkeyable::from(error.clone())),
            Cell::Null => Err(Unkeyable::Other("no value".into())),
        }
    }
}

/// A source row: one cell per column, in the order the source described them.
pub type Row = Vec<Cell>;

/// What the core needs to know about a column's type, answered by the source that knows it.
pub trait ColumnType: std::fmt::Debug + Send + Sync {
    /// The type as messages name it (`money[]`, `DATETIME`).
    fn name(&self) -> String;
    /// The SQL the source speaks, for advice.
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    /// The DynamoDB scalar type (`S`, `N`, `B`) of a key attribute made from the column; `None`
    /// when its values cannot be a key (a JSON document, a list).
    fn key_type(&self) -> Option<&'static str>;
    /// `Some` when the source does not convert values of this type: what the query can return
    /// instead, for `column` as SQL spells it. Checked before any row is read.
    fn unconverted(&self, column: &str) -> Option<Cast>;
    /// A refusal's reason with what the query can do about it, for a value of `column`.
    fn explain(&self, error: &ConvertError, column: &Column) -> String;
    /// The SQL function that tells a JSON column's values apart (`json` → `json_typeof`), for a
    /// filter that leaves out rows whose key it cannot hold; `None` for other types.
    fn json(&self) -> Option<&'static str> {
        None
    }
    /// Why values of the type can never go in a key template (checked before any row is read).
    fn unspellable(&self, column: &str) -> Option<String> {
        let _ = column;
        None
    }
    /// Why the column has no type of its own, when it has none (an expression in SQLite): a table
    /// key's type must be known before any row is read.
    fn untyped(&self) -> Option<&'static str> {
        None
    }
    /// A parameter's text as the items spell values of this type, for the scope's Scan filter
    /// (`2021-01-01 10:00` → `2021-01-01T10:00:00`, as a timestamp attribute holds it: compared as
    /// strings, the space would sort before the `T`); `Ok(None)` to use it as given; `Err` when the
    /// query could not read it as such (`--param to=2021-02-1` for a date) and the source would not
    /// say so itself.
    fn param_value(&self, value: &str) -> Result<Option<String>, &'static str> {
        let _ = value;
        Ok(None)
    }
    /// What a reject calls a value's place: `column` for SQL, `attribute` for a DynamoDB source.
    fn noun(&self) -> &'static str {
        "column"
    }
    /// Whether the column holds a map of the item's other attributes, each stored at the top
    /// level (a DynamoDB source's item, less the attributes the mapping names).
    fn spread(&self) -> bool {
        false
    }
}

/// The SQL a source speaks, for advice that names SQL (`x::text` or `CAST(x AS TEXT)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

impl Dialect {
    /// `x` as text.
    pub fn as_text(self, column: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column}::text"),
            Dialect::Sqlite => format!("CAST({column} AS TEXT)"),
        }
    }

    /// The condition that keeps a row unless `column` is the non-finite number `word` (`NaN`,
    /// `Infinity`), NULL kept. SQLite has no NaN (it stores NULL) and compares infinities as numbers.
    pub fn finite(self, column: &str, word: &str) -> String {
        match self {
            Dialect::Postgres => format!("{column} IS DISTINCT FROM '{word}'"),
            Dialect::Sqlite => format!("({column} IS NULL OR abs({column}) < 9e999)"),
        }
    }
}

/// A column's type, shared by the plan and the rows' adapter.
pub type ColType = Arc<dyn ColumnType>;

/// What a query can return instead of a column whose type ddbsync does not convert: an expression
/// that keeps the value's meaning, and why it is that one rather than the obvious text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cast {
    /// `price::numeric`, for the select list (`… AS price`).
    pub expression: String,
    /// What the value becomes, and what another cast would lose.
    pub why: String,
}

/// JSON text that may not be read whole: the parser's error, boxed as `serde` gives it.
pub type WireResult<T> = Result<T, Box<dyn std::error::Error + Sync + Send>>;

/// A conversion's boxed error as a [`ConvertError`]: a number or value refused as such, anything
/// else the source's value as it could not be read (`ty` names its type).
pub fn wire_error(e: Box<dyn std::error::Error + Sync + Send>, ty: &str) -> ConvertError {
    match e.downcast::<NumberError>() {
        Ok(number) => ConvertError::Number(*number),
        Err(e) => match e.downcast::<ValueError>() {
            Ok(value) => ConvertError::Value(*value),
            Err(e) => ConvertError::Wire { ty: ty.into(), message: e.to_string() },
        },
    }
}

/// [`json_text`] with its error as a [`ConvertError`] (`ty` names the source type in a wire error).
pub fn json_value(text: &[u8], ty: &str) -> Result<AttributeValue, ConvertError> {
    json_text(text).map_err(|e| wire_error(e, ty))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConvertError {
    #[error("type {0} is not converted by ddbsync; cast it in the query (for example `column::text`)")]
    Unsupported(String),
    #[error(transparent)]
    Number(#[from] NumberError),
    #[error("{ty} value: {message}")]
    Wire { ty: String, message: String },
    #[error(transparent)]
    Value(#[from] ValueError),
    /// An array whose elements include more than one kind of value with no DynamoDB form (`NaN`
    /// and `-Infinity`): the first element's error, and each kind's word in the order met.
    #[error("{first}; the array also holds {}", others(words))]
    Elements { first: Box<ConvertError>, words: Vec<String> },
    /// A promotion cannot carry an item's ID or reference over (`pure::remap`): the reason.
    #[error("{0}")]
    Reference(String),
}

/// The words after the first, for [`ConvertError::Elements`]: `-Infinity`, `-Infinity and Infinity`.
fn others(words: &[String]) -> String {
    let rest: Vec<&str> = words.iter().skip(1).map(String::as_str).collect();
    match rest.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, init)) => format!("{} and {last}", init.join(", ")),
        None => String::new(),
    }
}

/// A PostgreSQL value that has no faithful DynamoDB form. The messages state the fact;
/// [`ConvertError::explain`] adds what the query can do about it, naming the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("{ty} '{value}' cannot be stored: it is not a point in time, and ddbsync does not invent one")]
    Infinite { ty: &'static str, value: &'static str },
    #[error("{ty} value is beyond the years ddbsync converts (about 262,000 BC to 262,000 AD)")]
    OutOfRange { ty: &'static str },
    #[error(
        "the JSON document is nested more than {} levels deep, DynamoDB's limit; flatten it in the query, \
         or cast the column to text to store it as a string",
        item::MAX_DEPTH
    )]
    TooDeep,
    /// A `\uD800`–`\uDFFF` escape without its other half, which PostgreSQL's json type keeps as
    /// written. `escape` is the first such escape, six characters: never more of the document.
    #[error(
        "the JSON text holds {escape} (for example: the first such escape), half of a UTF-16 surrogate pair \
         without its other half: it stands for no character, and DynamoDB strings hold only characters \
         (PostgreSQL's json type keeps such an escape as written; jsonb refuses it)"
    )]
    LoneSurrogate { escape: String },
    /// Text that is not UTF-8 (SQLite keeps whatever bytes it is given as text).
    #[error("the text is not valid UTF-8, and DynamoDB strings are")]
    NotUtf8,
    /// A column declared as a point in time (SQLite's `DATETIME`) holding something that is not one
    /// in a form ddbsync reads: `found` says what (`the text "31/12/2020"`, `the integer 1600000000`).
    #[error("column declared {declared} holds {found}, which is not a date and time in a form ddbsync reads (YYYY-MM-DD, then optionally HH:MM[:SS[.SSS]], and Z or ±HH:MM)")]
    NotATime { declared: String, found: String },
    /// JSON text the parser refuses for another reason: its reason, without the parser's position
    /// (which says little without the document, and the document is not quoted).
    #[error("the JSON text cannot be read: {0}")]
    Unreadable(String),
}

/// What PostgreSQL names a select-list expression that has no name of its own (`SELECT a + b`).
pub const UNNAMED: &str = "?column?";

/// How advice refers to a query's column: `expression` is what the advice wraps (`f`, or `(…)` for
/// an expression the query does not name), `name` what the advice returns it as (`AS f`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub expression: String,
    pub name: String,
}

impl Column {
    /// The column the query returns as `name` (as PostgreSQL describes it).
    pub fn new(name: &str) -> Self {
        if name == UNNAMED {
            return Column { expression: "(…)".into(), name: "name".into() };
        }
        let name = sql_name(name);
        Column { expression: name.clone(), name }
    }

    /// Whether the query left the expression unnamed, so the advice holds a placeholder.
    pub fn unnamed(&self) -> bool {
        self.expression == "(…)"
    }

    /// What to say before advice that uses a placeholder for the expression; empty otherwise.
    pub fn preamble(&self) -> &'static str {
        if self.unnamed() {
            "the query does not name this expression (PostgreSQL calls it ?column?): name it, and in the advice \
             that follows put the expression in place of (…): "
        } else {
            ""
        }
    }
}

/// A column name as SQL needs it: quoted unless it is a plain lower-case identifier that is not a
/// reserved word (`"Price"`, `"select"`, `"2x"`).
pub fn sql_name(name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain && RESERVED.binary_search(&name).is_err() {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// PostgreSQL's reserved key words, which cannot name a column unquoted: those the documentation's
/// key word table (appendix C) marks "reserved" or "reserved (can be function or type)", the
/// words `pg_get_keywords()` gives category R or T. Sorted, for the binary search.
#[rustfmt::skip]
pub(crate) const RESERVED: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "binary",
    "both", "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint", "create",
    "cross", "current_catalog", "current_date", "current_role", "current_schema", "current_time",
    "current_timestamp", "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end",
    "except", "false", "fetch", "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike",
    "in", "initially", "inner", "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like",
    "limit", "localtime", "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or",
    "order", "outer", "overlaps", "placing", "primary", "references", "returning", "right", "select",
    "session_user", "similar", "some", "symmetric", "system_user", "table", "tablesample", "then", "to",
    "trailing", "true", "union", "unique", "user", "using", "variadic", "verbose", "when", "where", "window",
    "with",
];

impl ConvertError {
    /// The words (`NaN`, `-Infinity`, `infinity`) of the values that have no DynamoDB form, as
    /// PostgreSQL spells them; empty for any other error.
    pub fn words(&self) -> Vec<&str> {
        match self {
            ConvertError::Number(NumberError::NotFinite(word)) => vec![word],
            ConvertError::Value(ValueError::Infinite { value, .. }) => vec![value],
            ConvertError::Elements { words, .. } => words.iter().map(String::as_str).collect(),
            _ => vec![],
        }
    }
}

/// Why a value cannot be spelled in a key: the value itself, never its absence (NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unkeyable {
    /// NaN, Infinity or -Infinity, spelled as PostgreSQL spells it.
    NotFinite(&'static str),
    /// A timestamp or date `infinity` / `-infinity`.
    Infinite { ty: &'static str, value: &'static str },
    /// A JSON object, array or null: no one text. Says what the value is (`holds a JSON object`).
    NotScalar(&'static str),
    /// A number beyond DynamoDB's range (`range`) or digits, as a number key would hold it: the reason.
    Number { reason: String, range: bool },
    /// A JSON text with an escape of half a surrogate pair: the reason.
    Surrogate(String),
    /// Any other value that does not convert: the conversion's reason.
    Other(String),
}

impl From<ConvertError> for Unkeyable {
    fn from(e: ConvertError) -> Self {
        match e {
            // Floats arrive spelled by Rust (`inf`), numerics by PostgreSQL (`Infinity`).
            ConvertError::Number(NumberError::NotFinite(text)) => {
                Unkeyable::NotFinite(match text.to_ascii_lowercase() {
                    t if t.contains("nan") => "NaN",
                    t if t.starts_with('-') => "-Infinity",
                    _ => "Infinity",
                })
            }
            ConvertError::Value(ValueError::Infinite { ty, value }) => Unkeyable::Infinite { ty, value },
            ConvertError::Number(e @ (NumberError::OutOfRange(_) | NumberError::TooManyDigits { .. })) => {
                Unkeyable::Number { range: matches!(e, NumberError::OutOfRange(_)), reason: e.to_string() }
            }
            e @ ConvertError::Value(ValueError::LoneSurrogate { .. }) => Unkeyable::Surrogate(e.to_string()),
            e => Unkeyable::Other(e.to_string()),
        }
    }
}

/// The text a converted value takes in a key template: strings as they are, numbers in their
/// canonical spelling (the one the item's `N` attribute has, so `1.50` and `1.5` make one key),
/// booleans as `true` / `false`.
pub fn attribute_key_text(value: &AttributeValue) -> Result<&str, Unkeyable> {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => Ok(s),
        AttributeValue::Bool(b) => Ok(if *b { "true" } else { "false" }),
        AttributeValue::Null(_) => Err(Unkeyable::NotScalar("is JSON null")),
        AttributeValue::M(_) => Err(Unkeyable::NotScalar("holds a JSON object")),
        AttributeValue::L(_) => Err(Unkeyable::NotScalar("holds a JSON array")),
        AttributeValue::B(_) => Err(Unkeyable::Other(
            "holds bytes, which have no text of their own for a key; return them encoded as text in the query \
             (hex, base64)"
                .into(),
        )),
        _ => Err(Unkeyable::NotScalar("holds no single value")),
    }
}

/// JSON text → attribute value, parsed straight into attributes (no intermediate JSON tree).
/// Numbers keep their exact text: serde_json's `arbitrary_precision` hands them over as a one-entry
/// map under its private key, which [`JsonVisitor`] recognises.
///
/// Parsing stops at the first value deeper than DynamoDB's nesting limit: such a document cannot be
/// stored whole, and stopping there keeps a hostile document (PostgreSQL allows thousands of levels)
/// from costing more than the limit's worth of recursion.
pub fn json_text(text: &[u8]) -> WireResult<AttributeValue> {
    let refused = std::cell::Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(text);
    let parsed = serde::Deserializer::deserialize_any(&mut de, JsonVisitor { level: 1, refused: &refused })
        .and_then(|value| de.end().map(|()| value));
    match (parsed, refused.take()) {
        (Ok(value), _) => Ok(value),
        // The value's own reason, typed, rather than serde_json's text of it.
        (Err(_), Some(Refused::TooDeep)) => Err(Box::new(ValueError::TooDeep)),
        (Err(_), Some(Refused::Number(e))) => Err(Box::new(e)),
        (Err(e), None) => Err(Box::new(match lone_surrogate(text) {
            Some(escape) => ValueError::LoneSurrogate { escape },
            None => ValueError::Unreadable(without_position(&e)),
        })),
    }
}

/// serde_json's reason without the ` at line 1 column 207` it appends, which locates nothing for
/// a reader who is not shown the document.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&position).unwrap_or(&text).to_string()
}

/// The first `\uXXXX` escape of a UTF-16 surrogate that is not half of a pair (a high half
/// followed at once by an escaped low half), as written. The parser refuses such a document with a
/// reason that names neither the escape nor the cause ("unexpected end of hex escape").
pub(crate) fn lone_surrogate(text: &[u8]) -> Option<String> {
    let unit = |at: usize| -> Option<u16> {
        let digits = text.get(at..at + 4)?;
        let digits = std::str::from_utf8(digits).ok().filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))?;
        u16::from_str_radix(digits, 16).ok()
    };
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            i += 1;
            continue;
        }
        let Some(code) = (text.get(i + 1) == Some(&b'u')).then(|| unit(i + 2)).flatten() else {
            // Any other escape is two characters (`\\` among them, which must not start a `\u`).
            i += 2;
            continue;
        };
        let escape = || String::from_utf8_lossy(&text[i..i + 6]).into_owned();
        match code {
            0xD800..=0xDBFF => {
                let low = (text.get(i + 6..i + 8) == Some(&b"\\u"[..])).then(|| unit(i + 8)).flatten();
                if !matches!(low, Some(0xDC00..=0xDFFF)) {
                    return Some(escape());
                }
                i += 12;
            }
            0xDC00..=0xDFFF => return Some(escape()),
            _ => i += 6,
        }
    }
    None
}

/// Why a well-formed JSON document was refused.
enum Refused {
    TooDeep,
    Number(NumberError),
}

/// serde_json's private map key for numbers under `arbitrary_precision`.
const JSON_NUMBER_KEY: &str = "$serde_json::private::Number";

/// Visits one JSON value at `level` (the document itself is level 1, as a top-level attribute's
/// value is for DynamoDB); `refused` records why parsing stopped when the document was well-formed.
#[derive(Clone, Copy)]
struct JsonVisitor<'a> {
    level: usize,
    refused: &'a std::cell::Cell<Option<Refused>>,
}

impl JsonVisitor<'_> {
    /// The visitor for a container's elements.
    fn child(self) -> Self {
        JsonVisitor { level: self.level + 1, ..self }
    }

    /// Stops the parse at a number DynamoDB cannot hold, keeping the reason.
    fn number_error<E: serde::de::Error>(self, e: NumberError) -> E {
        let error = E::custom(&e);
        self.refused.set(Some(Refused::Number(e)));
        error
    }
}

/// A container's element: refused, before it is parsed, when it lies past DynamoDB's nesting
/// limit (an empty container at the last level is fine: it has no element there).
impl<'de> serde::de::DeserializeSeed<'de> for JsonVisitor<'_> {
    type Value = AttributeValue;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<AttributeValue, D::Error> {
        if self.level > item::MAX_DEPTH {
            self.refused.set(Some(Refused::TooDeep));
            return Err(serde::de::Error::custom(ValueError::TooDeep));
        }
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonVisitor<'_> {
    type Value = AttributeValue;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Null(true))
    }
    fn visit_bool<E>(self, v: bool) -> Result<AttributeValue, E> {
        Ok(AttributeValue::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::N(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<AttributeValue, E> {
        Ok(AttributeValue::N(v.to_string()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<AttributeValue, E> {
        number::from_f64(v).map(AttributeValue::N).map_err(|e| self.number_error(e))
    }
    fn visit_str<E>(self, v: &str) -> Result<AttributeValue, E> {
        Ok(AttributeValue::S(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<AttributeValue, E> {
        Ok(AttributeValue::S(v))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AttributeValue, A::Error> {
        let child = self.child();
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(item) = seq.next_element_seed(child)? {
            items.push(item);
        }
        Ok(AttributeValue::L(items))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AttributeValue, A::Error> {
        let mut entries = std::collections::HashMap::with_capacity(map.size_hint().unwrap_or(8));
        let child = self.child();
        while let Some(key) = map.next_key::<String>()? {
            if key == JSON_NUMBER_KEY {
                let text: String = map.next_value()?;
                let n = number::normalize(&text).map_err(|e| self.number_error(e))?;
                return Ok(AttributeValue::N(n.into_owned()));
            }
            entries.insert(key, map.next_value_seed(child)?);
        }
        Ok(AttributeValue::M(entries))
    }
}

/// `YYYY-MM-DDTHH:MM:SS` and, when there is one, the fraction in 3 or 6 digits, as `%.f` would
/// print it; written out by hand because parsing a format string per value is most of the cost.
pub fn iso(at: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    use std::fmt::Write;
    let mut text = String::with_capacity(32);
    let _ = write!(
        text,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    let micros = at.nanosecond() / 1000;
    if micros != 0 {
        if micros.is_multiple_of(1000) {
            let _ = write!(text, ".{:03}", micros / 1000);
        } else {
            let _ = write!(text, ".{micros:06}");
        }
    }
    text
}

/// A time value in one of SQLite's formats — `YYYY-MM-DD`, optionally followed (after `T` or a
/// space) by `HH:MM`, `:SS` and a fraction, then optionally `Z` or `±HH:MM` — as PostgreSQL's
/// conversion spells it: a date alone as `2021-01-01`; a date and time as `2021-01-01T10:00:00`,
/// rounded to the microsecond as a `timestamp` is (fraction in 3 or 6 digits, second 60 being the
/// next minute's first); with an offset, in UTC and marked `+00:00` (as a `timestamptz`). Anything
/// else (other separators, one-digit fields, spaces around it, a year with a sign) is `None`.
pub fn iso_time(text: &str) -> Option<String> {
    use chrono::{Datelike, NaiveDate, TimeDelta};
    let b = text.as_bytes();
    let digits = |from: usize, to: usize| b.get(from..to).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    let number = |from: usize, to: usize| text[from..to].parse::<u32>().ok();
    if !(digits(0, 4) && b.get(4) == Some(&b'-') && digits(5, 7) && b.get(7) == Some(&b'-') && digits(8, 10)) {
        return None;
    }
    // Year 0 is no year in PostgreSQL's calendar (1 BC comes before 1 AD).
    let date = NaiveDate::from_ymd_opt(number(0, 4)? as i32, number(5, 7)?, number(8, 10)?).filter(|d| d.year() > 0)?;
    if b.len() == 10 {
        return Some(text.to_string());
    }
    if !(matches!(b[10], b' ' | b'T') && digits(11, 13) && b.get(13) == Some(&b':') && digits(14, 16)) {
        return None;
    }
    let (hour, minute) = (number(11, 13)?, number(14, 16)?);
    let (mut second, mut micros, mut at) = (0, 0u32, 16);
    if b.get(at) == Some(&b':') {
        if !digits(at + 1, at + 3) {
            return None;
        }
        second = number(at + 1, at + 3)?;
        at += 3;
        if b.get(at) == Some(&b'.') {
            let end = (at + 1..=b.len()).find(|&i| i == b.len() || !b[i].is_ascii_digit())?;
            let fraction = &text[at + 1..end];
            if fraction.is_empty() {
                return None;
            }
            // Rounded to the microsecond; the carry, if any, is added below.
            let six: String = fraction.chars().chain(std::iter::repeat('0')).take(6).collect();
            micros = six.parse().ok()?;
            micros += u32::from(fraction.as_bytes().get(6).is_some_and(|d| *d >= b'5'));
            at = end;
        }
    }
    let offset = match &text[at..] {
        "" => None,
        "Z" | "z" => Some(0i64),
        zone if zone.len() == 6
            && matches!(b[at], b'+' | b'-')
            && digits(at + 1, at + 3)
            && b[at + 3] == b':'
            && digits(at + 4, at + 6) =>
        {
            // PostgreSQL's range of offsets; beyond it, not a time.
            let (hours, mins) = (number(at + 1, at + 3)?, number(at + 4, at + 6)?);
            if hours > 15 || mins > 59 {
                return None;
            }
            let minutes = i64::from(hours) * 60 + i64::from(mins);
            Some(if b[at] == b'-' { -minutes } else { minutes })
        }
        _ => return None,
    };
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut naive = date.and_hms_opt(hour, minute, second.min(59))?;
    naive += TimeDelta::seconds(i64::from(second == 60)) + TimeDelta::microseconds(i64::from(micros));
    Some(match offset {
        None => iso(&naive),
        Some(minutes) => format!("{}+00:00", iso(&(naive - TimeDelta::minutes(minutes)))),
    })
}
