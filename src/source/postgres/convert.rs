//! PostgreSQL values → DynamoDB attribute values. Pure: a column's type and its binary wire value in,
//! an attribute out.
//!
//! The mapping is fixed and documented in the README: integers and numerics → `N` (at most 38
//! significant digits), floats → `N` (no NaN/infinity), text-like and enums → `S`, uuid → `S`,
//! bool → `BOOL`, json/jsonb → `M`/`L`/scalars recursively (JSON null → `NULL`), arrays → `L`,
//! bytea → `B`, timestamp/timestamptz/date → ISO-8601 `S` (timestamptz in UTC, spelled the way
//! PostgreSQL's own JSON spells it, so top-level and embedded timestamps look alike). SQL NULL is
//! `None`: the caller omits the attribute or uses the mapping's default.
//!
//! Numbers are stored as the value PostgreSQL prints, never as a binary approximation of it: a
//! `real` is spelled as the shortest decimal that reads back as the same `f32`. A value that has no
//! faithful DynamoDB form (NaN, infinite numbers, `infinity` timestamps, JSON nested deeper than
//! DynamoDB allows) is an error, which rejects the row, rather than a stand-in value;
//! [`ConvertError::explain`] words it with the fix the query can use as written, for the column
//! at hand (`NULLIF(f, 'NaN') AS f`, `WHERE f IS DISTINCT FROM 'NaN'`, `n::text AS n`). A filter
//! it advises keeps the rows where the column is NULL (`f <> 'NaN'` would drop them too, and with
//! `delete_missing` delete their items). Every value of an array that cannot be stored is named,
//! each kind once. No reason quotes a JSON document or the parser's position in it, and no advice
//! holds a backslash, so each can be pasted into a TOML `"""…"""` string as it is.
//!
//! [`sql_name`] spells a column as SQL needs it (quoted when it is not a plain lower-case name or
//! is a reserved word); [`UNNAMED`] is what PostgreSQL calls an expression the query does not name,
//! which advice cannot refer to.
//!
//! A type with no mapping here is refused before any row is read; [`cast_for`] gives the
//! expression a query can return instead, chosen to keep what the value means (`money::numeric`,
//! not its `::text`, which is `$1,234.56`).

use aws_sdk_dynamodb::primitives::Blob;
use chrono::{DateTime, NaiveDate};
use fallible_iterator::FallibleIterator;
use postgres_protocol::types as wire;
use tokio_postgres::types::{Kind, Type};

use crate::pure::item::AttributeValue;
use crate::pure::number::{self, NumberError};
use crate::pure::value::{iso, json_text, Cast, Cell, Column, ColumnType, ConvertError, ValueError, WireResult};

/// The reason with what the query can do about it, for a value of `column` of type `ty`: a
/// NULLIF, a filter or a cast that can be used as written (with the expression in place of the
/// placeholder, for an expression the query does not name).
pub fn explain(error: &ConvertError, column: &Column, ty: &Type) -> String {
    let (c, name) = (column.expression.as_str(), column.name.as_str());
    let base = base_type(ty);
    let array = matches!(base.kind(), Kind::Array(_));
    let as_text = format!("{c}::text{} AS {name}", if array { "[]" } else { "" });
    let json = [Type::JSON, Type::JSONB].contains(base)
        || matches!(base.kind(), Kind::Array(e) if [Type::JSON, Type::JSONB].contains(base_type(e)));
    let whole = if json { "the document" } else { "the number" };
    let fix = match error {
        ConvertError::Number(NumberError::NotFinite(word)) => {
            Some(leave_out_words(column, &[word.as_str()], array, &as_text))
        }
        ConvertError::Value(ValueError::Infinite { value, .. }) => {
            Some(leave_out_words(column, &[value], array, &as_text))
        }
        ConvertError::Elements { words, .. } => {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            Some(leave_out_words(column, &words, array, &as_text))
        }
        ConvertError::Number(NumberError::OutOfRange(_) | NumberError::TooManyDigits { .. }) => {
            Some(format!("cast the column to text to store {whole} as a string, as PostgreSQL prints it ({as_text})"))
        }
        ConvertError::Value(ValueError::OutOfRange { .. }) => {
            Some(format!("cast the column to text to store the value as PostgreSQL prints it ({as_text})"))
        }
        // No rewrite of the text is offered: a replace() cannot tell a lone half from half of a
        // pair, or an escape from the same letters after an escaped backslash.
        ConvertError::Value(ValueError::LoneSurrogate { .. } | ValueError::Unreadable(_)) => Some(format!(
            "cast the column to text to store the document as a string, as PostgreSQL prints it ({as_text}), \
             or leave the row out of the query"
        )),
        _ => None,
    };
    match fix {
        Some(fix) => format!("{error}; {}{fix}", column.preamble()),
        None => error.to_string(),
    }
}

/// How a query keeps values such as `NaN` or `infinity` out: NULL instead, no such rows, or their
/// text. The filter keeps the rows where the column is NULL, and works on arrays of any dimension.
fn leave_out_words(column: &Column, words: &[&str], array: bool, as_text: &str) -> String {
    let (c, name) = (column.expression.as_str(), column.name.as_str());
    if array {
        let replaced = words.iter().fold(c.to_string(), |inner, w| format!("array_replace({inner}, '{w}', NULL)"));
        let kept: Vec<String> = words.iter().map(|w| format!("('{w}' = ANY({c})) IS NOT TRUE")).collect();
        format!(
            "return NULL for such elements ({replaced} AS {name}), leave such rows out (WHERE {}), or cast the \
             column to text to store the words ({as_text})",
            kept.join(" AND ")
        )
    } else {
        let word = words.first().copied().unwrap_or_default();
        format!(
            "return NULL in the query instead (NULLIF({c}, '{word}') AS {name}), leave such rows out \
             (WHERE {c} IS DISTINCT FROM '{word}'), or cast the column to text to store the word ({as_text})"
        )
    }
}
/// A domain's base type (through domains over domains); any other type itself.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        Kind::Domain(base) => base_type(base),
        _ => ty,
    }
}

/// One value of a row as a [`Cell`]: its attribute, NULL, or why it has none; a number DynamoDB
/// cannot hold (`1e300`, 39 digits) keeps its text as PostgreSQL prints it (`1e+300`), which a
/// key template can still spell. NaN, infinities, JSON objects and the like have no text.
pub fn cell(ty: &Type, raw: Option<&[u8]>) -> Cell {
    match convert(ty, raw) {
        Ok(Some(value)) => Cell::Value(value),
        Ok(None) => Cell::Null,
        Err(error @ ConvertError::Number(NumberError::OutOfRange(_) | NumberError::TooManyDigits { .. })) => {
            let text = raw.and_then(|raw| printed_number(base_type(ty), raw));
            Cell::Refused { error, text }
        }
        Err(error) => Cell::refused(error),
    }
}

/// The text a value takes in a key template, from its binary wire value ([`Cell::key_text`]).
pub fn key_text(ty: &Type, raw: &[u8]) -> Result<String, crate::pure::value::Unkeyable> {
    cell(ty, Some(raw)).key_text().map(|t| t.into_owned())
}

/// A PostgreSQL type as the core sees it ([`ColumnType`]).
#[derive(Debug, Clone)]
pub struct PgType(pub Type);

impl ColumnType for PgType {
    fn name(&self) -> String {
        type_name(&self.0)
    }

    fn key_type(&self) -> Option<&'static str> {
        keyable(&self.0).then(|| key_type(&self.0))
    }

    fn unconverted(&self, column: &str) -> Option<Cast> {
        supported(&self.0).err().map(|_| cast_for(&self.0, column))
    }

    fn explain(&self, error: &ConvertError, column: &Column) -> String {
        explain(error, column, &self.0)
    }

    fn json(&self) -> Option<&'static str> {
        match *base_type(&self.0) {
            Type::JSON => Some("json"),
            Type::JSONB => Some("jsonb"),
            _ => None,
        }
    }

    fn unspellable(&self, column: &str) -> Option<String> {
        unspellable(column, &self.0)
    }

    /// A time or number the scope compares, in the spelling the items hold (the session runs in
    /// UTC): `2021-01-01 10:00` → `2021-01-01T10:00:00` for a timestamp. The scope compares strings,
    /// so a form only PostgreSQL reads (`Jan 1 2021`, an offset `+02`, `UTC`) is refused: given as
    /// it is, it would sort apart from the items' spelling and take items the query leaves out
    /// for deleted.
    fn param_value(&self, value: &str) -> Result<Option<String>, &'static str> {
        const NOT_ISO: &str = "is not a date and time the scope can compare: give it as YYYY-MM-DD, then optionally \
                               HH:MM[:SS[.ffffff]] and, for a timestamptz, Z or ±HH:MM (the items hold ISO-8601 text)";
        let ty = base_type(&self.0);
        let iso = || crate::pure::value::iso_time(value).ok_or(NOT_ISO);
        let zoned = |iso: &str| iso.ends_with("+00:00");
        Ok(Some(match *ty {
            Type::TIMESTAMP => match iso()? {
                t if zoned(&t) => {
                    return Err("carries a time zone, which a timestamp without time zone ignores; give the time alone")
                }
                t if t.len() == 10 => t + "T00:00:00",
                t => t,
            },
            Type::TIMESTAMPTZ => match iso()? {
                t if t.len() == 10 => t + "T00:00:00+00:00",
                t if zoned(&t) => t,
                t => t + "+00:00",
            },
            Type::DATE => iso()?[..10].to_string(),
            _ if key_type(ty) == "N" => match number::normalize(value.trim()) {
                Ok(n) => n.into_owned(),
                Err(_) => return Err("is not a number DynamoDB can hold"),
            },
            _ => return Ok(None),
        }))
    }
}

/// Column types a key (table or index) may come from: DynamoDB keys are strings, numbers or bytes.
fn keyable(ty: &Type) -> bool {
    key_type(ty) != "S"
        || [
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
}

/// Why values of a column's type can never go in a key template (checked before any row is read).
fn unspellable(column: &str, ty: &Type) -> Option<String> {
    match ty.kind() {
        Kind::Domain(base) => unspellable(column, base),
        Kind::Array(elem) => Some(format!(
            "is an array ({}[]), which has no one text for a key; return one element ({column}[1] AS …) or join \
             them (array_to_string({column}, ',') AS …) in the query",
            elem.name()
        )),
        _ if *ty == Type::BYTEA => Some(format!(
            "is bytea, whose bytes have no text of their own for a key; encode them in the query \
             (encode({column}, 'hex') AS …)"
        )),
        _ => None,
    }
}

/// A finite float or numeric as PostgreSQL prints it; `None` for other types (a JSON number that
/// DynamoDB cannot hold keeps its error).
fn printed_number(ty: &Type, raw: &[u8]) -> Option<String> {
    match *ty {
        Type::FLOAT4 => wire::float4_from_sql(raw).ok().filter(|v| v.is_finite()).map(number::printed_f32),
        Type::FLOAT8 => wire::float8_from_sql(raw).ok().filter(|v| v.is_finite()).map(number::printed_f64),
        Type::NUMERIC => numeric_printed(raw).ok(),
        _ => None,
    }
}

/// Whether values of `ty` can be converted; checked once per query, before any row is read.
pub fn supported(ty: &Type) -> Result<(), ConvertError> {
    match ty.kind() {
        Kind::Array(elem) => supported(elem),
        Kind::Domain(base) => supported(base),
        Kind::Enum(_) => Ok(()),
        _ if SCALARS.contains(ty) => Ok(()),
        _ => Err(ConvertError::Unsupported(ty.name().to_string())),
    }
}

const SCALARS: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::TEXT,
    Type::VARCHAR,
    Type::BPCHAR,
    Type::NAME,
    Type::CHAR,
    Type::UUID,
    Type::JSON,
    Type::JSONB,
    Type::BYTEA,
    Type::TIMESTAMP,
    Type::TIMESTAMPTZ,
    Type::DATE,
];

/// The expression to return for `column` (its name as SQL spells it), whose type `ty` is not
/// converted: for each type the one that keeps what the value means, not only its text.
pub fn cast_for(ty: &Type, column: &str) -> Cast {
    let c = column;
    let to = |target: &str, why: String| Cast { expression: format!("{c}::{target}"), why };
    let call = |expression: String, why: &str| Cast { expression, why: why.to_string() };
    match ty.kind() {
        Kind::Domain(base) => return cast_for(base, column),
        Kind::Array(elem) => return array_cast(elem, column),
        Kind::Range(_) => {
            return to(
                "text",
                format!(
                    "the range as PostgreSQL prints it, each bound marked included or not ({}); or lower({c}) and \
                     upper({c}) as two columns, to query by either bound",
                    range_example(ty)
                ),
            )
        }
        Kind::Multirange(_) => {
            return to("text", format!("the ranges as PostgreSQL prints them ({})", range_example(ty)))
        }
        Kind::Composite(_) => return call(format!("to_jsonb({c})"), "a map of its fields by name"),
        _ => {}
    }
    match *ty {
        Type::MONEY => to(
            "numeric",
            format!(
                "the amount as an exact number; {c}::text would store it as lc_monetary spells it, with a currency \
                 symbol and separators (\"$1,234.56\")"
            ),
        ),
        Type::INTERVAL => call(
            format!("EXTRACT(EPOCH FROM {c})"),
            &format!(
                "its length in seconds, a number that sorts and adds up (a month counts as 30 days, a year as \
                 365.25); or {c}::text to keep PostgreSQL's spelling (\"1 mon 2 days 03:04:05\")"
            ),
        ),
        Type::TIME => to("text", "\"13:45:00.5\", which sorts as the times do".into()),
        Type::TIMETZ => to("text", "the time with its UTC offset (\"13:45:00+02\")".into()),
        Type::INET => to("text", format!("the address with its netmask (\"10.0.0.1/32\"), which host({c}) would drop")),
        Type::CIDR => to("text", "the network with its prefix length (\"10.0.0.0/8\")".into()),
        Type::MACADDR => to("text", "the address as PostgreSQL prints it (\"08:00:2b:01:02:03\")".into()),
        Type::MACADDR8 => to("text", "the address as PostgreSQL prints it (\"08:00:2b:01:02:03:04:05\")".into()),
        Type::BIT | Type::VARBIT => {
            to("text", "the bits as a string of 0s and 1s, leading zeros kept (a number would drop them)".into())
        }
        Type::TS_VECTOR => to("text", "its lexemes and positions as PostgreSQL prints them ('cat':3 'fat':2)".into()),
        Type::TSQUERY => to("text", "the query as PostgreSQL prints it ('fat' & 'cat')".into()),
        Type::XML => to("text", "the document's text".into()),
        Type::POINT => to("text", format!("\"(1.5,2)\"; or {c}[0] and {c}[1] as two number columns")),
        Type::LINE | Type::LSEG | Type::BOX | Type::PATH | Type::POLYGON | Type::CIRCLE => {
            to("text", "its coordinates as PostgreSQL prints them".into())
        }
        Type::RECORD => call(format!("to_jsonb({c})"), "a map of its fields by name"),
        _ => match ty.name() {
            "citext" => to("text", "its text, case kept (citext only compares without case)".into()),
            "hstore" => call(format!("hstore_to_jsonb({c})"), "a map of its keys and values"),
            "geometry" | "geography" => call(format!("ST_AsGeoJSON({c})::jsonb"), "the shape as a GeoJSON map"),
            _ => to("text", "the value as PostgreSQL prints it".into()),
        },
    }
}

/// A value of a range or multirange type as PostgreSQL prints it, for the advice's example.
fn range_example(ty: &Type) -> &'static str {
    match *ty {
        Type::INT4_RANGE | Type::INT8_RANGE => "\"[1,10)\"",
        Type::NUM_RANGE => "\"[1.5,10)\"",
        Type::DATE_RANGE => "\"[2024-01-01,2024-02-01)\"",
        Type::TS_RANGE => "[\"2024-01-01 00:00:00\",\"2024-02-01 00:00:00\")",
        Type::TSTZ_RANGE => "[\"2024-01-01 00:00:00+00\",\"2024-02-01 00:00:00+00\")",
        Type::INT4MULTI_RANGE | Type::INT8MULTI_RANGE => "\"{[1,3),[5,7)}\"",
        Type::NUMMULTI_RANGE => "\"{[1.5,3),[5,7.5)}\"",
        Type::DATEMULTI_RANGE => "\"{[2024-01-01,2024-02-01),[2024-03-01,2024-04-01)}\"",
        Type::TSMULTI_RANGE => "{[\"2024-01-01 00:00:00\",\"2024-02-01 00:00:00\")}",
        Type::TSTZMULTI_RANGE => "{[\"2024-01-01 00:00:00+00\",\"2024-02-01 00:00:00+00\")}",
        _ => "\"[1,10)\"",
    }
}

/// An array of a type that is not converted: each element cast as [`cast_for`] casts one, where
/// that is a plain cast; otherwise each element's text.
fn array_cast(elem: &Type, column: &str) -> Cast {
    let one = cast_for(elem, column);
    if let Some(target) = one.expression.strip_prefix(&format!("{column}::")) {
        return Cast {
            expression: format!("{column}::{target}[]"),
            why: format!("a list of the elements, each cast to {target}"),
        };
    }
    if one.expression == format!("to_jsonb({column})") {
        return Cast { expression: one.expression, why: "a list of maps, each element's fields by name".into() };
    }
    Cast { expression: format!("{column}::text[]"), why: "a list of each element as PostgreSQL prints it".into() }
}

/// A type as a message names it: `money[]`, `price_t (a domain over money)`, and for an array of
/// a domain the array first, as for any other array: `price_t[] (price_t being a domain over money)`.
pub fn type_name(ty: &Type) -> String {
    match ty.kind() {
        Kind::Array(elem) => match elem.kind() {
            Kind::Domain(base) => {
                format!("{}[] ({} being a domain over {})", elem.name(), elem.name(), type_name(base))
            }
            _ => format!("{}[]", type_name(elem)),
        },
        Kind::Domain(base) => format!("{} (a domain over {})", ty.name(), type_name(base)),
        _ => ty.name().to_string(),
    }
}

/// The DynamoDB scalar type a key column of this type produces (`S`, `N` or `B`).
pub fn key_type(ty: &Type) -> &'static str {
    match ty.kind() {
        Kind::Domain(base) => key_type(base),
        _ if [Type::INT2, Type::INT4, Type::INT8, Type::OID, Type::NUMERIC, Type::FLOAT4, Type::FLOAT8]
            .contains(ty) =>
        {
            "N"
        }
        _ if *ty == Type::BYTEA => "B",
        _ => "S",
    }
}

/// Converts one value; `Ok(None)` for SQL NULL.
pub fn convert(ty: &Type, raw: Option<&[u8]>) -> Result<Option<AttributeValue>, ConvertError> {
    let Some(raw) = raw else { return Ok(None) };
    let wire_err = |e: Box<dyn std::error::Error + Sync + Send>| ConvertError::Wire {
        ty: ty.name().into(),
        message: e.to_string(),
    };
    let value = match ty.kind() {
        Kind::Domain(base) => return convert(base, Some(raw)),
        Kind::Enum(_) => AttributeValue::S(wire::text_from_sql(raw).map_err(wire_err)?.to_string()),
        Kind::Array(elem) => array(elem, raw)?,
        _ => scalar(ty, raw).map_err(|e| match crate::pure::value::wire_error(e, ty.name()) {
            ConvertError::Wire { .. } if !SCALARS.contains(ty) => ConvertError::Unsupported(ty.name().to_string()),
            other => other,
        })?,
    };
    Ok(Some(value))
}

fn n(text: &str) -> WireResult<AttributeValue> {
    Ok(AttributeValue::N(number::normalize(text)?.into_owned()))
}

fn scalar(ty: &Type, raw: &[u8]) -> WireResult<AttributeValue> {
    Ok(match *ty {
        Type::BOOL => AttributeValue::Bool(wire::bool_from_sql(raw)?),
        Type::INT2 => AttributeValue::N(wire::int2_from_sql(raw)?.to_string()),
        Type::INT4 => AttributeValue::N(wire::int4_from_sql(raw)?.to_string()),
        Type::INT8 => AttributeValue::N(wire::int8_from_sql(raw)?.to_string()),
        Type::OID => AttributeValue::N(wire::oid_from_sql(raw)?.to_string()),
        Type::FLOAT4 => AttributeValue::N(number::from_f32(wire::float4_from_sql(raw)?)?),
        Type::FLOAT8 => AttributeValue::N(number::from_f64(wire::float8_from_sql(raw)?)?),
        Type::NUMERIC => n(&numeric_text(raw)?)?,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
            AttributeValue::S(wire::text_from_sql(raw)?.to_string())
        }
        Type::CHAR => AttributeValue::S(char::from(raw.first().copied().unwrap_or(b' ')).to_string()),
        Type::UUID => AttributeValue::S(uuid_text(&wire::uuid_from_sql(raw)?)),
        Type::JSON => json_text(raw)?,
        // jsonb's binary form is a version byte (1), then the text.
        Type::JSONB => match raw.split_first() {
            Some((1, text)) => json_text(text)?,
            _ => return Err("unknown jsonb version".into()),
        },
        Type::BYTEA => AttributeValue::B(Blob::new(wire::bytea_from_sql(raw).to_vec())),
        Type::TIMESTAMP => AttributeValue::S(timestamp_text(wire::timestamp_from_sql(raw)?, false)?),
        Type::TIMESTAMPTZ => AttributeValue::S(timestamp_text(wire::timestamp_from_sql(raw)?, true)?),
        Type::DATE => AttributeValue::S(date_text(wire::date_from_sql(raw)?)?),
        _ => return Err("unsupported".into()),
    })
}

fn array(elem: &Type, raw: &[u8]) -> Result<AttributeValue, ConvertError> {
    let wire_err = |e: Box<dyn std::error::Error + Sync + Send>| ConvertError::Wire {
        ty: format!("{}[]", elem.name()),
        message: e.to_string(),
    };
    let array = wire::array_from_sql(raw).map_err(wire_err)?;
    let dims: Vec<usize> = array.dimensions().map(|d| Ok(d.len as usize)).collect().map_err(wire_err)?;
    let mut elements = array.values();
    let mut values: Vec<AttributeValue> = Vec::with_capacity(elements.size_hint().0);
    while let Some(v) = elements.next().map_err(wire_err)? {
        match convert(elem, v) {
            Ok(value) => values.push(value.unwrap_or(AttributeValue::Null(true))),
            Err(e) => return Err(every_word(e, elem, elements)),
        }
    }
    // A multi-dimensional array becomes nested lists, innermost dimension last.
    let mut level = values;
    for &len in dims.iter().skip(1).rev() {
        let mut chunks = Vec::with_capacity(level.len() / len.max(1));
        let mut iter = level.into_iter().peekable();
        while iter.peek().is_some() {
            chunks.push(AttributeValue::L(iter.by_ref().take(len).collect()));
        }
        level = chunks;
    }
    Ok(AttributeValue::L(level))
}

/// An array element's error, with the words of the other kinds of value with no DynamoDB form
/// that the rest of the array holds (`NaN`, then `-Infinity`): one reject names them all, so one
/// change to the query fixes the row. Only a rejected array is read on.
fn every_word(first: ConvertError, elem: &Type, mut rest: wire::ArrayValues<'_>) -> ConvertError {
    let mut words: Vec<String> = first.words().into_iter().map(str::to_string).collect();
    if words.is_empty() {
        return first;
    }
    while let Ok(Some(v)) = rest.next() {
        if let Err(e) = convert(elem, v) {
            for word in e.words() {
                if !words.iter().any(|w| w == word) {
                    words.push(word.to_string());
                }
            }
        }
    }
    match words.len() {
        1 => first,
        _ => ConvertError::Elements { first: Box::new(first), words },
    }
}

/// NUMERIC's binary form: digit count, weight, sign, display scale, then base-10000 digits.
fn numeric_text(raw: &[u8]) -> WireResult<String> {
    let word = |i: usize| -> WireResult<u16> {
        raw.get(2 * i..2 * i + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "truncated numeric".into())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i64;
    let sign = word(2)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err(Box::new(NumberError::NotFinite("NaN".into()))),
        0xF000 => return Err(Box::new(NumberError::NotFinite("-Infinity".into()))),
        _ => return Err(Box::new(NumberError::NotFinite("Infinity".into()))),
    }
    if ndigits == 0 {
        return Ok("0".into());
    }
    let mut text = String::with_capacity(ndigits * 4 + 8);
    if sign == 0x4000 {
        text.push('-');
    }
    for i in 0..ndigits {
        text.push_str(&format!("{:04}", word(4 + i)?));
    }
    // value = digits × 10000^(weight − ndigits + 1)
    text.push_str(&format!("e{}", 4 * (weight - ndigits as i64 + 1)));
    Ok(text)
}

/// A finite NUMERIC as PostgreSQL prints it (`numeric_out`): plain decimal, with as many fraction
/// digits as its display scale (`1.50` stays `1.50`), never an exponent.
fn numeric_printed(raw: &[u8]) -> WireResult<String> {
    let word = |i: usize| -> WireResult<u16> {
        raw.get(2 * i..2 * i + 2).map(|b| u16::from_be_bytes([b[0], b[1]])).ok_or_else(|| "truncated numeric".into())
    };
    let (ndigits, weight, sign, dscale) = (word(0)? as i64, word(1)? as i16 as i64, word(2)?, word(3)? as usize);
    if sign != 0x0000 && sign != 0x4000 {
        return Err("not a finite numeric".into());
    }
    // The base-10000 digit at position `i` (0 is the first, of weight `weight`), zero outside.
    let digit = |i: i64| -> WireResult<u16> {
        if (0..ndigits).contains(&i) {
            word(4 + i as usize)
        } else {
            Ok(0)
        }
    };
    let mut text = String::new();
    if sign == 0x4000 {
        text.push('-');
    }
    if weight < 0 {
        text.push('0');
    } else {
        text.push_str(&digit(0)?.to_string());
        for i in 1..=weight {
            text.push_str(&format!("{:04}", digit(i)?));
        }
    }
    if dscale > 0 {
        let mut fraction = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while fraction.len() < dscale {
            fraction.push_str(&format!("{:04}", digit(i)?));
            i += 1;
        }
        fraction.truncate(dscale);
        text.push('.');
        text.push_str(&fraction);
    }
    Ok(text)
}

fn uuid_text(bytes: &[u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
const PG_EPOCH_DAYS: i32 = 10_957;

/// PostgreSQL's `infinity` and `-infinity` are the extreme values of the wire format.
fn timestamp_text(micros: i64, utc: bool) -> Result<String, ValueError> {
    let ty = if utc { "timestamptz" } else { "timestamp" };
    match micros {
        i64::MAX => return Err(ValueError::Infinite { ty, value: "infinity" }),
        i64::MIN => return Err(ValueError::Infinite { ty, value: "-infinity" }),
        _ => {}
    }
    let at = micros
        .checked_add(PG_EPOCH_MICROS)
        .and_then(DateTime::from_timestamp_micros)
        .ok_or(ValueError::OutOfRange { ty })?;
    let mut text = iso(&at.naive_utc());
    if utc {
        text.push_str("+00:00");
    }
    Ok(text)
}

fn date_text(days: i32) -> Result<String, ValueError> {
    let ty = "date";
    match days {
        i32::MAX => Err(ValueError::Infinite { ty, value: "infinity" }),
        i32::MIN => Err(ValueError::Infinite { ty, value: "-infinity" }),
        _ => days
            .checked_add(PG_EPOCH_DAYS + 719_163)
            .and_then(NaiveDate::from_num_days_from_ce_opt)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .ok_or(ValueError::OutOfRange { ty }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::value::{lone_surrogate, sql_name, Unkeyable, RESERVED, UNNAMED};
    use bytes_util::*;

    mod bytes_util {
        pub fn numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&(digits.len() as u16).to_be_bytes());
            out.extend_from_slice(&weight.to_be_bytes());
            out.extend_from_slice(&sign.to_be_bytes());
            out.extend_from_slice(&dscale.to_be_bytes());
            for d in digits {
                out.extend_from_slice(&d.to_be_bytes());
            }
            out
        }
    }

    #[test]
    fn scope_parameters_are_spelled_as_the_items_hold_them_or_refused() {
        let spell = |ty: Type, v: &str| PgType(ty).param_value(v);
        assert_eq!(spell(Type::TIMESTAMP, "2021-01-01 10:00"), Ok(Some("2021-01-01T10:00:00".into())));
        assert_eq!(spell(Type::TIMESTAMP, "2021-01-01"), Ok(Some("2021-01-01T00:00:00".into())));
        assert_eq!(spell(Type::TIMESTAMPTZ, "2021-01-01 10:00-05:00"), Ok(Some("2021-01-01T15:00:00+00:00".into())));
        assert_eq!(spell(Type::TIMESTAMPTZ, "2021-01-01"), Ok(Some("2021-01-01T00:00:00+00:00".into())));
        assert_eq!(spell(Type::DATE, "2021-01-01"), Ok(Some("2021-01-01".into())));
        assert_eq!(spell(Type::NUMERIC, " 1.50"), Ok(Some("1.5".into())));
        for (ty, v) in [
            (Type::TIMESTAMP, "2021-01-01 10:00+05:00"),
            (Type::TIMESTAMPTZ, "2021-01-01 10:00+00"),
            (Type::TIMESTAMPTZ, "2021-01-01 10:00 UTC"),
            (Type::DATE, "May 8 2022"),
            (Type::NUMERIC, "NaN"),
            (Type::INT4, "1e200"),
        ] {
            assert!(spell(ty.clone(), v).is_err(), "{ty} {v}");
        }
        assert_eq!(spell(Type::TEXT, "anything"), Ok(None), "text is compared as given");
    }

    fn conv(ty: &Type, raw: &[u8]) -> AttributeValue {
        convert(ty, Some(raw)).unwrap().unwrap()
    }

    #[test]
    fn integers_and_numerics_become_numbers() {
        assert_eq!(conv(&Type::INT4, &42i32.to_be_bytes()), AttributeValue::N("42".into()));
        assert_eq!(conv(&Type::INT8, &(-7i64).to_be_bytes()), AttributeValue::N("-7".into()));
        // 1234.5600 = [1234, 5600] with weight 0
        assert_eq!(conv(&Type::NUMERIC, &numeric(0, 0, 4, &[1234, 5600])), AttributeValue::N("1234.56".into()));
        // -0.0015 = [15] at weight -1 (0.0015 = 15 × 10000^-1)
        assert_eq!(conv(&Type::NUMERIC, &numeric(-1, 0x4000, 4, &[15])), AttributeValue::N("-0.0015".into()));
        // 20000 = [2] at weight 1
        assert_eq!(conv(&Type::NUMERIC, &numeric(1, 0, 0, &[2])), AttributeValue::N("20000".into()));
        assert_eq!(conv(&Type::NUMERIC, &numeric(0, 0, 2, &[])), AttributeValue::N("0".into()));
    }

    #[test]
    fn numerics_dynamodb_cannot_hold_are_errors() {
        // 40 significant digits: ten groups of 4.
        let wide = numeric(9, 0, 0, &[1234; 10]);
        assert!(matches!(
            convert(&Type::NUMERIC, Some(&wide)),
            Err(ConvertError::Number(NumberError::TooManyDigits { digits: 40, .. }))
        ));
        let minus_infinity = convert(&Type::NUMERIC, Some(&numeric(0, 0xF000, 0, &[]))).unwrap_err();
        assert_eq!(minus_infinity.to_string(), "-Infinity cannot be stored: DynamoDB numbers have no NaN or infinity");
        let nan = numeric(0, 0xC000, 0, &[]);
        assert!(matches!(convert(&Type::NUMERIC, Some(&nan)), Err(ConvertError::Number(NumberError::NotFinite(_)))));
        assert!(matches!(convert(&Type::FLOAT8, Some(&f64::INFINITY.to_be_bytes())), Err(ConvertError::Number(_))));
    }

    #[test]
    fn timestamps_become_iso_8601() {
        // 2024-03-05T06:07:08.5 is this many microseconds after 2000-01-01.
        let micros = (chrono::NaiveDate::from_ymd_opt(2024, 3, 5)
            .unwrap()
            .and_hms_milli_opt(6, 7, 8, 500)
            .unwrap()
            .and_utc()
            .timestamp_micros())
            - PG_EPOCH_MICROS;
        assert_eq!(
            conv(&Type::TIMESTAMPTZ, &micros.to_be_bytes()),
            AttributeValue::S("2024-03-05T06:07:08.500+00:00".into())
        );
        let whole = micros - 500_000;
        assert_eq!(conv(&Type::TIMESTAMP, &whole.to_be_bytes()), AttributeValue::S("2024-03-05T06:07:08".into()));
        let micro = whole + 123_456;
        assert_eq!(
            conv(&Type::TIMESTAMP, &micro.to_be_bytes()),
            AttributeValue::S("2024-03-05T06:07:08.123456".into())
        );
        assert_eq!(conv(&Type::DATE, &0i32.to_be_bytes()), AttributeValue::S("2000-01-01".into()));
        assert_eq!(conv(&Type::DATE, &(-1i32).to_be_bytes()), AttributeValue::S("1999-12-31".into()));
    }

    #[test]
    fn json_keeps_structure_and_exact_numbers() {
        let raw = br#"{"a": [1.50, "x", null, true], "b": {"c": 12345678901234567890123, "d": -7, "e": 1e2}}"#;
        let value = conv(&Type::JSON, raw);
        let AttributeValue::M(map) = value else { panic!("{value:?}") };
        assert_eq!(
            map["a"],
            AttributeValue::L(vec![
                AttributeValue::N("1.5".into()),
                AttributeValue::S("x".into()),
                AttributeValue::Null(true),
                AttributeValue::Bool(true)
            ])
        );
        assert_eq!(
            map["b"],
            AttributeValue::M(
                [
                    ("c".to_string(), AttributeValue::N("12345678901234567890123".into())),
                    ("d".to_string(), AttributeValue::N("-7".into())),
                    ("e".to_string(), AttributeValue::N("100".into())),
                ]
                .into()
            )
        );
        // Numbers DynamoDB cannot hold are errors, and so is text that is not JSON.
        let wide = convert(&Type::JSON, Some(b"[1234567890123456789012345678901234567891]")).unwrap_err();
        assert!(matches!(wide, ConvertError::Number(NumberError::TooManyDigits { digits: 40, .. })), "{wide:?}");
        let tiny = convert(&Type::JSON, Some(b"{\"a\": [1.5e-9223372036854775808]}")).unwrap_err();
        assert_eq!(tiny.to_string(), NumberError::OutOfRange("1.5e-9223372036854775808".into()).to_string());
        assert!(convert(&Type::JSON, Some(b"{\"a\": }")).is_err());
        // jsonb's binary form is a version byte, then the text.
        let mut jsonb = vec![1u8];
        jsonb.extend_from_slice(b"[1]");
        assert_eq!(conv(&Type::JSONB, &jsonb), AttributeValue::L(vec![AttributeValue::N("1".into())]));
    }

    #[test]
    fn reals_are_stored_as_postgresql_prints_them() {
        // `SELECT x::real::text` prints each of these: the shortest text that reads back as the f32.
        for (value, want) in
            [(32.38f32, "32.38"), (0.1, "0.1"), (3.4028235e38, "340282350000000000000000000000000000000")]
        {
            assert_eq!(conv(&Type::FLOAT4, &value.to_be_bytes()), AttributeValue::N(want.into()), "{value:e}");
        }
        assert_eq!(conv(&Type::FLOAT8, &32.38f64.to_be_bytes()), AttributeValue::N("32.38".into()));
        assert!(matches!(
            convert(&Type::FLOAT4, Some(&f32::NAN.to_be_bytes())),
            Err(ConvertError::Number(NumberError::NotFinite(_)))
        ));
        // real[] elements go the same way.
        let mut raw = Vec::new();
        for word in [1i32, 0, 700, 1, 1] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw.extend_from_slice(&4i32.to_be_bytes());
        raw.extend_from_slice(&32.38f32.to_be_bytes());
        assert_eq!(conv(&Type::FLOAT4_ARRAY, &raw), AttributeValue::L(vec![AttributeValue::N("32.38".into())]));
    }

    #[test]
    fn infinite_timestamps_and_dates_are_errors_with_a_fix() {
        let cases: [(Type, Vec<u8>, &str, &str); 6] = [
            (Type::TIMESTAMP, i64::MAX.to_be_bytes().to_vec(), "timestamp", "infinity"),
            (Type::TIMESTAMP, i64::MIN.to_be_bytes().to_vec(), "timestamp", "-infinity"),
            (Type::TIMESTAMPTZ, i64::MAX.to_be_bytes().to_vec(), "timestamptz", "infinity"),
            (Type::TIMESTAMPTZ, i64::MIN.to_be_bytes().to_vec(), "timestamptz", "-infinity"),
            (Type::DATE, i32::MAX.to_be_bytes().to_vec(), "date", "infinity"),
            (Type::DATE, i32::MIN.to_be_bytes().to_vec(), "date", "-infinity"),
        ];
        for (ty, raw, name, value) in cases {
            let err = convert(&ty, Some(&raw)).unwrap_err();
            assert!(matches!(err, ConvertError::Value(ValueError::Infinite { .. })), "{err:?}");
            assert_eq!(
                explain(&err, &Column::new("at"), &ty),
                format!(
                    "{name} '{value}' cannot be stored: it is not a point in time, and ddbsync does not invent one; \
                     return NULL in the query instead (NULLIF(at, '{value}') AS at), leave such rows out \
                     (WHERE at IS DISTINCT FROM '{value}'), or cast the column to text to store the word (at::text AS at)"
                )
            );
        }
        // Beyond chrono's years (PostgreSQL's go to 294276 AD): an error, not a number in a string.
        let far = (i64::MAX - 1).to_be_bytes();
        assert!(matches!(
            convert(&Type::TIMESTAMP, Some(&far)),
            Err(ConvertError::Value(ValueError::OutOfRange { .. }))
        ));
        let far_date = (i32::MAX - 1).to_be_bytes();
        assert!(matches!(
            convert(&Type::DATE, Some(&far_date)),
            Err(ConvertError::Value(ValueError::OutOfRange { .. }))
        ));
    }

    fn nested_json(levels: usize, inner: &str) -> Vec<u8> {
        format!("{}{inner}{}", "[".repeat(levels), "]".repeat(levels)).into_bytes()
    }

    #[test]
    fn json_nested_past_dynamodb_limit_is_an_error() {
        // The document is level 1: 31 arrays around a number put the number at level 32, the last.
        assert!(convert(&Type::JSON, Some(&nested_json(31, "1"))).is_ok());
        assert!(
            convert(&Type::JSON, Some(&nested_json(32, ""))).is_ok(),
            "an empty array at level 32 holds nothing deeper"
        );
        let too_deep =
            |doc: &[u8]| matches!(convert(&Type::JSON, Some(doc)), Err(ConvertError::Value(ValueError::TooDeep)));
        assert!(too_deep(&nested_json(32, "1")));
        assert!(too_deep(&nested_json(40, "1")));
        assert!(too_deep(format!("{}1{}", "{\"a\": ".repeat(32), "}".repeat(32)).as_bytes()));
        // Parsing stops at the limit: no stack overflow, however deep PostgreSQL let the document go.
        assert!(too_deep(&nested_json(100_000, "1")));
        let mut jsonb = vec![1u8];
        jsonb.extend_from_slice(&nested_json(10_000, "{}"));
        assert!(matches!(convert(&Type::JSONB, Some(&jsonb)), Err(ConvertError::Value(ValueError::TooDeep))));
        assert_eq!(
            ValueError::TooDeep.to_string(),
            "the JSON document is nested more than 32 levels deep, DynamoDB's limit; flatten it in the query, \
             or cast the column to text to store it as a string"
        );
        // Numbers are scalars, even as serde_json hands them over (a one-entry map).
        assert!(convert(&Type::JSON, Some(&nested_json(31, "1.5"))).is_ok());
        // Malformed JSON is still reported as such.
        assert!(matches!(convert(&Type::JSON, Some(b"[[1]")), Err(ConvertError::Value(ValueError::Unreadable(_)))));
    }

    #[test]
    fn other_scalars() {
        assert_eq!(conv(&Type::TEXT, "héllo".as_bytes()), AttributeValue::S("héllo".into()));
        assert_eq!(conv(&Type::BOOL, &[1]), AttributeValue::Bool(true));
        assert_eq!(conv(&Type::BYTEA, &[0, 255]), AttributeValue::B(Blob::new(vec![0, 255])));
        let uuid: [u8; 16] = [0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(conv(&Type::UUID, &uuid), AttributeValue::S("12345678-9abc-def0-0001-020304050607".into()));
        assert_eq!(convert(&Type::TEXT, None).unwrap(), None);
    }

    #[test]
    fn arrays_become_lists() {
        // int4[] {1,NULL,3}: ndim 1, has-null 1, elem oid 23, dim len 3, lower bound 1, then elements.
        let mut raw = Vec::new();
        for word in [1i32, 1, 23, 3, 1] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        for elem in [Some(1i32), None, Some(3)] {
            match elem {
                Some(v) => {
                    raw.extend_from_slice(&4i32.to_be_bytes());
                    raw.extend_from_slice(&v.to_be_bytes());
                }
                None => raw.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            conv(&Type::INT4_ARRAY, &raw),
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::Null(true),
                AttributeValue::N("3".into())
            ])
        );
    }

    #[test]
    fn key_text_spells_each_type_stably() {
        let text = |ty: &Type, raw: &[u8]| key_text(ty, raw);
        // Numbers DynamoDB holds: the canonical spelling of the item's attribute.
        assert_eq!(text(&Type::FLOAT8, &1.5f64.to_be_bytes()), Ok("1.5".into()));
        assert_eq!(text(&Type::FLOAT8, &1e20f64.to_be_bytes()), Ok("100000000000000000000".into()));
        assert_eq!(text(&Type::NUMERIC, &numeric(0, 0, 2, &[1, 5000])), Ok("1.5".into()), "1.50 and 1.5: one key");
        assert_eq!(text(&Type::INT8, &(-7i64).to_be_bytes()), Ok("-7".into()));
        // Numbers it does not: as PostgreSQL prints them.
        assert_eq!(text(&Type::FLOAT8, &1e300f64.to_be_bytes()), Ok("1e+300".into()));
        assert_eq!(text(&Type::FLOAT8, &5e-324f64.to_be_bytes()), Ok("5e-324".into()));
        assert_eq!(text(&Type::FLOAT8, &(-1e-131f64).to_be_bytes()), Ok("-1e-131".into()));
        assert_eq!(text(&Type::NUMERIC, &numeric(32, 0, 0, &[1])), Ok(format!("1{}", "0".repeat(128))));
        let wide = numeric(9, 0x4000, 2, &[1234; 10]);
        assert_eq!(text(&Type::NUMERIC, &wide), Ok(format!("-{}.00", "1234".repeat(10))));
        // NaN and infinities have none, spelled as PostgreSQL spells them.
        assert_eq!(text(&Type::FLOAT8, &f64::NAN.to_be_bytes()), Err(Unkeyable::NotFinite("NaN")));
        assert_eq!(text(&Type::FLOAT4, &f32::NEG_INFINITY.to_be_bytes()), Err(Unkeyable::NotFinite("-Infinity")));
        assert_eq!(text(&Type::NUMERIC, &numeric(0, 0xD000, 0, &[])), Err(Unkeyable::NotFinite("Infinity")));
        assert_eq!(text(&Type::NUMERIC, &numeric(0, 0xC000, 0, &[])), Err(Unkeyable::NotFinite("NaN")));
        // Other scalars: the attribute's text.
        assert_eq!(text(&Type::BOOL, &[1]), Ok("true".into()));
        assert_eq!(text(&Type::TIMESTAMP, &0i64.to_be_bytes()), Ok("2000-01-01T00:00:00".into()));
        assert_eq!(text(&Type::TIMESTAMPTZ, &0i64.to_be_bytes()), Ok("2000-01-01T00:00:00+00:00".into()));
        assert_eq!(text(&Type::DATE, &0i32.to_be_bytes()), Ok("2000-01-01".into()));
        assert_eq!(
            text(&Type::TIMESTAMP, &i64::MAX.to_be_bytes()),
            Err(Unkeyable::Infinite { ty: "timestamp", value: "infinity" })
        );
        // JSON: scalars by their text, containers and null not at all.
        assert_eq!(text(&Type::JSONB, b"\x01\"abc\""), Ok("abc".into()));
        assert_eq!(text(&Type::JSON, b"1.50"), Ok("1.5".into()));
        assert_eq!(text(&Type::JSON, b"true"), Ok("true".into()));
        assert_eq!(text(&Type::JSON, b"null"), Err(Unkeyable::NotScalar("is JSON null")));
        assert_eq!(text(&Type::JSONB, b"\x01{\"a\": 1}"), Err(Unkeyable::NotScalar("holds a JSON object")));
        assert_eq!(text(&Type::JSON, b"[1]"), Err(Unkeyable::NotScalar("holds a JSON array")));
        assert!(
            matches!(text(&Type::JSON, b"1e300"), Err(Unkeyable::Number { reason, range: true }) if reason.contains("number range"))
        );
    }

    #[test]
    fn unsupported_types_are_named_with_a_fix() {
        let err = supported(&Type::INTERVAL).unwrap_err();
        assert_eq!(
            err.to_string(),
            "type interval is not converted by ddbsync; cast it in the query (for example `column::text`)"
        );
        assert!(supported(&Type::TEXT_ARRAY).is_ok());
        assert_eq!(key_type(&Type::INT8), "N");
        assert_eq!(key_type(&Type::UUID), "S");
    }

    #[test]
    fn number_reasons_say_how_to_fix_them_naming_the_column() {
        let nan = convert(&Type::FLOAT8, Some(&f64::NAN.to_be_bytes())).unwrap_err();
        assert_eq!(
            explain(&nan, &Column::new("f"), &Type::FLOAT8),
            "NaN cannot be stored: DynamoDB numbers have no NaN or infinity; return NULL in the query instead \
             (NULLIF(f, 'NaN') AS f), leave such rows out (WHERE f IS DISTINCT FROM 'NaN'), or cast the column to \
             text to store the word (f::text AS f)"
        );
        // Infinities are spelled as PostgreSQL spells them, which the filter compares with.
        let inf = convert(&Type::FLOAT4, Some(&f32::NEG_INFINITY.to_be_bytes())).unwrap_err();
        assert!(
            explain(&inf, &Column::new("r"), &Type::FLOAT4).contains("(WHERE r IS DISTINCT FROM '-Infinity')"),
            "{inf}"
        );
        let inf = convert(&Type::NUMERIC, Some(&numeric(0, 0xD000, 0, &[]))).unwrap_err();
        assert!(
            explain(&inf, &Column::new("N"), &Type::NUMERIC).contains("(NULLIF(\"N\", 'Infinity') AS \"N\")"),
            "{inf}"
        );
        // An array's elements: array_replace, a filter that works on any array and keeps NULL ones, text[].
        let mut raw = Vec::new();
        for word in [1i32, 0, 701, 1, 1, 8] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        raw.extend_from_slice(&f64::NAN.to_be_bytes());
        let in_array = convert(&Type::FLOAT8_ARRAY, Some(&raw)).unwrap_err();
        assert_eq!(
            explain(&in_array, &Column::new("fs"), &Type::FLOAT8_ARRAY),
            "NaN cannot be stored: DynamoDB numbers have no NaN or infinity; return NULL for such elements \
             (array_replace(fs, 'NaN', NULL) AS fs), leave such rows out (WHERE ('NaN' = ANY(fs)) IS NOT TRUE), \
             or cast the column to text to store the words (fs::text[] AS fs)"
        );
        // Every kind of value the array holds that cannot be stored, each once, in one reason.
        let mut raw = Vec::new();
        for word in [1i32, 0, 701, 5, 1] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        for value in [1.0, f64::NAN, f64::NEG_INFINITY, f64::NAN, 2.0] {
            raw.extend_from_slice(&8i32.to_be_bytes());
            raw.extend_from_slice(&f64::to_be_bytes(value));
        }
        let kinds = convert(&Type::FLOAT8_ARRAY, Some(&raw)).unwrap_err();
        assert_eq!(
            explain(&kinds, &Column::new("fs"), &Type::FLOAT8_ARRAY),
            "NaN cannot be stored: DynamoDB numbers have no NaN or infinity; the array also holds -Infinity; return \
             NULL for such elements (array_replace(array_replace(fs, 'NaN', NULL), '-Infinity', NULL) AS fs), leave \
             such rows out (WHERE ('NaN' = ANY(fs)) IS NOT TRUE AND ('-Infinity' = ANY(fs)) IS NOT TRUE), or cast \
             the column to text to store the words (fs::text[] AS fs)"
        );
        // A column the query does not name: the advice says to name it, with a placeholder.
        assert_eq!(
            explain(&nan, &Column::new(UNNAMED), &Type::FLOAT8),
            "NaN cannot be stored: DynamoDB numbers have no NaN or infinity; the query does not name this expression \
             (PostgreSQL calls it ?column?): name it, and in the advice that follows put the expression in place of \
             (…): return NULL in the query instead (NULLIF((…), 'NaN') AS name), leave such rows out (WHERE (…) IS \
             DISTINCT FROM 'NaN'), or cast the column to text to store the word ((…)::text AS name)"
        );
        // A reserved word is quoted.
        assert!(
            explain(&nan, &Column::new("select"), &Type::FLOAT8).contains("(NULLIF(\"select\", 'NaN') AS \"select\")")
        );
        // Out of range or too many digits: the text cast, for a number or for the document holding it.
        let wide = convert(&Type::NUMERIC, Some(&numeric(9, 0, 0, &[1234; 10]))).unwrap_err();
        assert_eq!(
            explain(&wide, &Column::new("n"), &Type::NUMERIC),
            "1.234123412341234123412341234123412341234E+39 has 40 significant digits; DynamoDB keeps at most 38; \
             cast the column to text to store the number as a string, as PostgreSQL prints it (n::text AS n)"
        );
        let in_json = convert(&Type::JSON, Some(b"[1e99999999999999999999]")).unwrap_err();
        assert_eq!(
            explain(&in_json, &Column::new("doc"), &Type::JSON),
            "1e+99999999999999999999 is outside DynamoDB's number range (1E-130 to 9.99E+125); cast the column to \
             text to store the document as a string, as PostgreSQL prints it (doc::text AS doc)"
        );
    }

    #[test]
    fn unreadable_json_is_named_without_the_parser_position_or_the_document() {
        // What PostgreSQL's json type keeps and no JSON parser reads: half a surrogate pair.
        let secret = r#"{"token": "sk_live_0123456789", "a": "\ud83d"}"#;
        let err = convert(&Type::JSON, Some(secret.as_bytes())).unwrap_err();
        assert_eq!(err.to_string(), ValueError::LoneSurrogate { escape: "\\ud83d".into() }.to_string());
        let explained = explain(&err, &Column::new("doc"), &Type::JSON);
        assert_eq!(
            explained,
            "the JSON text holds \\ud83d (for example: the first such escape), half of a UTF-16 surrogate pair without \
             its other half: it stands for no character, and DynamoDB strings hold only characters (PostgreSQL's json \
             type keeps such an escape as written; jsonb refuses it); cast the column to text to store the document as \
             a string, as PostgreSQL prints it (doc::text AS doc), or leave the row out of the query"
        );
        assert!(!explained.contains("sk_live") && !explained.contains("line 1"), "{explained}");
        // No advice holds a backslash, which a TOML """…""" string would take for an escape.
        let (_, advice) = explained.split_once("jsonb refuses it); ").unwrap();
        assert!(!advice.contains('\\'), "{advice}");
        // A low half alone, a high half followed by no low half, and pairs that are fine.
        for (doc, escape) in [
            (r#""\uDC00x""#, Some("\\uDC00")),
            (r#"["\ud800\u0041"]"#, Some("\\ud800")),
            (r#""\\ud800""#, None),
            (r#""\ud83d\ude00 \u00e9""#, None),
        ] {
            assert_eq!(lone_surrogate(doc.as_bytes()).as_deref(), escape, "{doc}");
        }
        assert!(convert(&Type::JSON, Some(r#""\ud83d\ude00""#.as_bytes())).is_ok());
        // Any other refusal: the parser's reason alone.
        let cut = convert(&Type::JSON, Some(b"[1, 2")).unwrap_err();
        assert_eq!(
            explain(&cut, &Column::new("doc"), &Type::JSON),
            "the JSON text cannot be read: EOF while parsing a list; cast the column to text to store the document \
             as a string, as PostgreSQL prints it (doc::text AS doc), or leave the row out of the query"
        );
    }

    #[test]
    fn each_unconverted_type_has_a_cast_that_keeps_its_meaning() {
        let cast = |ty: &Type| {
            let c = cast_for(ty, "c");
            assert!(!c.why.is_empty());
            c.expression
        };
        for (ty, want) in [
            (Type::MONEY, "c::numeric"),
            (Type::INTERVAL, "EXTRACT(EPOCH FROM c)"),
            (Type::TIME, "c::text"),
            (Type::TIMETZ, "c::text"),
            (Type::INET, "c::text"),
            (Type::CIDR, "c::text"),
            (Type::MACADDR, "c::text"),
            (Type::MACADDR8, "c::text"),
            (Type::BIT, "c::text"),
            (Type::VARBIT, "c::text"),
            (Type::TS_VECTOR, "c::text"),
            (Type::TSQUERY, "c::text"),
            (Type::INT4_RANGE, "c::text"),
            (Type::TSTZ_RANGE, "c::text"),
            (Type::INT4MULTI_RANGE, "c::text"),
            (Type::XML, "c::text"),
            (Type::POINT, "c::text"),
            (Type::POLYGON, "c::text"),
            (Type::RECORD, "to_jsonb(c)"),
            (Type::MONEY_ARRAY, "c::numeric[]"),
            (Type::INTERVAL_ARRAY, "c::text[]"),
            (Type::INT4_RANGE_ARRAY, "c::text[]"),
            (Type::PG_LSN, "c::text"),
        ] {
            assert!(supported(&ty).is_err(), "{ty}");
            assert_eq!(cast(&ty), want, "{ty}");
        }
        // Why money is not cast to text: its text is lc_monetary's, not a number.
        assert!(cast_for(&Type::MONEY, "c").why.contains("\"$1,234.56\""));
        // Domains go by their base type; composite types become maps.
        let price = Type::new("price_t".into(), 90001, Kind::Domain(Type::MONEY), "public".into());
        assert_eq!(cast(&price), "c::numeric");
        assert_eq!(type_name(&price), "price_t (a domain over money)");
        let pair = Type::new("pair".into(), 90002, Kind::Composite(vec![]), "public".into());
        assert_eq!(cast(&pair), "to_jsonb(c)");
        let hstore = Type::new("hstore".into(), 90003, Kind::Simple, "public".into());
        assert_eq!(cast(&hstore), "hstore_to_jsonb(c)");
        assert_eq!(type_name(&Type::MONEY_ARRAY), "money[]");
        let prices = Type::new("_price_t".into(), 90004, Kind::Array(price.clone()), "public".into());
        assert_eq!(type_name(&prices), "price_t[] (price_t being a domain over money)");
        assert_eq!(cast(&prices), "c::numeric[]");
        // Each example as PostgreSQL prints a value of the type: no space a multirange would not
        // have, an eight-byte macaddr8, a range of the type's own values.
        let why = |ty: &Type| cast_for(ty, "c").why;
        assert!(why(&Type::MACADDR8).contains("\"08:00:2b:01:02:03:04:05\""));
        assert!(why(&Type::INT4MULTI_RANGE).contains("\"{[1,3),[5,7)}\""));
        assert!(why(&Type::NUM_RANGE).contains("\"[1.5,10)\""));
        assert!(why(&Type::TSTZ_RANGE).contains("[\"2024-01-01 00:00:00+00\",\"2024-02-01 00:00:00+00\")"));
    }

    #[test]
    fn reserved_words_are_sorted_for_the_search() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sql_name("select"), "\"select\"");
        assert_eq!(sql_name("selected"), "selected");
    }
}
