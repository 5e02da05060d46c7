//! The SQLite adapter: a database file, opened read-only, its queries' rows streamed as cells.
//!
//! SQLite types values, not columns: each value has a storage class (INTEGER, REAL, TEXT, BLOB,
//! NULL), and a column's declared type only gives it an affinity. A value becomes an attribute by
//! its class — INTEGER and REAL → `N` (a REAL as the shortest decimal that reads back as the same
//! double, like PostgreSQL's `double precision`), TEXT → `S`, BLOB → `B`, NULL → no attribute —
//! with two exceptions the declared type asks for: a column declared `DATE`, `DATETIME` or
//! `TIMESTAMP` holds points in time, whose text in SQLite's time formats becomes the ISO-8601 text
//! a PostgreSQL `timestamp` (or `date`) gives, and a column declared `JSON`, or listed in the
//! mapping's `json_columns`, holds documents, parsed into maps and lists. A value with no faithful
//! form (an infinite REAL, a date column's text that is not a time, a number beyond DynamoDB's
//! range) is refused with the query's fix, which rejects its row and names its key.
//!
//! A key attribute's DynamoDB type comes from the declared type (INTEGER, REAL or NUMERIC affinity
//! → `N`; TEXT or a date → `S`; BLOB → `B`); an expression has no declared type and gives `S`. A
//! value of another class in a key (a column that mixes affinities) is refused by the core.
//!
//! Invariants: the file is opened with `SQLITE_OPEN_READ_ONLY` and `PRAGMA query_only`, and a
//! statement SQLite does not call read-only is refused before it runs, so nothing is ever written.
//! No wait is longer than `read_timeout_secs`: a lock another process holds is waited for that long
//! (`busy_timeout`), and a query that yields no row for that long is interrupted; dropping a row
//! stream before its end interrupts its query too. Queries run on a blocking thread, one at a time.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};

use super::{Described, Rows, Source, SourceError};
use crate::profile::Profile;
use crate::pure::item::AttributeValue;
use crate::pure::number::{self, NumberError};
use crate::pure::params::Param;
use crate::pure::value::{self, iso_time, Cast, Cell, ColType, Column, ColumnType, ConvertError, ValueError};

/// Rows converted ahead of the engine: enough to keep the blocking thread busy while the engine
/// works, few enough to bound memory.
const ROWS_AHEAD: usize = 256;

/// A SQLite database file, opened read-only.
pub struct Sqlite {
    connection: Arc<Mutex<Connection>>,
    interrupt: Arc<InterruptHandle>,
    /// The file, for messages.
    target: String,
    read_timeout: Duration,
}

impl Sqlite {
    /// Opens the file read-only and checks that it is a SQLite database.
    pub async fn open(profile: &Profile, path: &Path) -> Result<Sqlite, SourceError> {
        let target = path.display().to_string();
        let fail = |cause: String| SourceError::Open {
            path: target.clone(),
            cause,
            profile: profile.path.display().to_string(),
        };
        if !path.is_file() {
            return Err(fail(match path.exists() {
                true => "it is not a file".into(),
                false => "no such file".into(),
            }));
        }
        let read_timeout = profile.source.read_timeout;
        let file = path.to_path_buf();
        let opened = tokio::task::spawn_blocking(move || match open_read_only(&file, read_timeout, false) {
            // A database in WAL mode is read through its `-shm` file, which a read-only directory
            // cannot hold: such a file is read as immutable (nothing can write it there either).
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) => {
                open_read_only(&file, read_timeout, true)
            }
            other => other,
        })
        .await
        .map_err(|e| fail(e.to_string()))?;
        let opened = match opened {
            // An empty file opens as an empty database: every query would fail with "no such table".
            Ok((_, 0)) => return Err(fail("it holds no tables (an empty file opens as an empty database)".into())),
            Ok((connection, _)) => connection,
            Err(e) if is_busy(&e) => {
                return Err(Sqlite::timeout_for(&target, read_timeout, "opening the SQLite database"))
            }
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) && wal_beside(path) => {
                return Err(fail(format!(
                    "{e}: the database is in WAL mode, and SQLite reads it through a -shm file it could not \
                     create beside it; let ddbsync's user write to that directory, or checkpoint the database \
                     (PRAGMA wal_checkpoint(TRUNCATE)) with the -wal file's owner"
                )))
            }
            Err(e) => return Err(fail(e.to_string())),
        };
        let interrupt = Arc::new(opened.get_interrupt_handle());
        Ok(Sqlite { connection: Arc::new(Mutex::new(opened)), interrupt, target, read_timeout })
    }

    /// Runs `work` on the connection on a blocking thread, interrupted after `read_timeout`.
    async fn blocking<T: Send + 'static>(
        &self,
        context: &str,
        work: impl FnOnce(&Connection) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let connection = self.connection.clone();
        let task = tokio::task::spawn_blocking(move || {
            let connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&connection)
        });
        match tokio::time::timeout(self.read_timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(e)) => Err(SourceError::Query { context: context.into(), cause: e.to_string() }),
            Err(_) => {
                self.interrupt.interrupt();
                Err(self.timeout(context))
            }
        }
    }

    fn timeout(&self, context: &str) -> SourceError {
        Sqlite::timeout_for(&self.target, self.read_timeout, context)
    }

    fn timeout_for(target: &str, waited: Duration, context: &str) -> SourceError {
        SourceError::Timeout {
            system: "SQLite",
            context: context.into(),
            target: target.to_string(),
            waited,
            hint: "another process may hold a lock on the file (a write in progress)",
        }
    }
}

/// Opens the file read-only (`immutable`: as a file nothing writes), with the lock wait bounded,
/// and reads its schema, which tells a database from another file: the connection and how many
/// objects the schema has.
fn open_read_only(path: &Path, wait: Duration, immutable: bool) -> rusqlite::Result<(Connection, i64)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let connection = match immutable {
        false => Connection::open_with_flags(path, flags)?,
        true => {
            let url = url::Url::from_file_path(path.canonicalize().unwrap_or_else(|_| path.to_path_buf()))
                .map_err(|()| rusqlite::Error::InvalidPath(path.to_path_buf()))?;
            Connection::open_with_flags(format!("{url}?immutable=1"), flags)?
        }
    };
    connection.busy_timeout(wait)?;
    connection.pragma_update(None, "query_only", true)?;
    let objects: i64 = connection.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))?;
    Ok((connection, objects))
}

/// Whether a `-wal` file lies beside the database.
fn wal_beside(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Path::new(&wal).exists()
}

/// SQLite gave up waiting for a lock another connection holds.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// A refusal of SQLite's, in a query's terms: a write is said as such.
fn query_error(context: &str, e: &rusqlite::Error) -> SourceError {
    let cause = e.to_string();
    match e {
        rusqlite::Error::MultipleStatement => SourceError::Query {
            context: context.into(),
            cause: "the query holds more than one statement; a mapping's query is one SELECT".into(),
        },
        _ if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) => writes(context, cause),
        _ => SourceError::Query { context: context.into(), cause },
    }
}

fn writes(context: &str, cause: String) -> SourceError {
    SourceError::Writes { system: "SQLite", how: "the file is opened read-only", context: context.into(), cause }
}

/// Prepares a query and refuses one that would write.
fn prepare<'c>(connection: &'c Connection, query: &str, context: &str) -> Result<rusqlite::Statement<'c>, SourceError> {
    let statement = connection.prepare(query).map_err(|e| query_error(context, &e))?;
    if !statement.readonly() {
        return Err(writes(context, "the statement writes to the database".into()));
    }
    // Values are bound by position, from the mapping's `params` list: a named parameter would be
    // bound by its place in the query, not by its name.
    if let Some(name) =
        (1..=statement.parameter_count()).find_map(|i| statement.parameter_name(i).filter(|n| !n.starts_with('?')))
    {
        return Err(SourceError::Query {
            context: context.into(),
            cause: format!(
                "the query names a parameter {name}; ddbsync binds the values of `params` by position: write \
                 ?1, ?2, … in the order `params` lists them"
            ),
        });
    }
    Ok(statement)
}

impl Source for Sqlite {
    fn system(&self) -> &'static str {
        "SQLite"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn placeholders(&self) -> &'static str {
        "?1, ?2, …"
    }

    fn describe<'a>(&'a self, query: &'a str, context: &'a str) -> BoxFuture<'a, Result<Described, SourceError>> {
        let (query, owned_context) = (query.to_string(), context.to_string());
        Box::pin(self.blocking(context, move |connection| {
            let statement = prepare(connection, &query, &owned_context)?;
            let columns = statement.columns();
            let described = Described {
                columns: columns
                    .iter()
                    .map(|c| {
                        let ty: ColType = Arc::new(SqliteType::declared(c.decl_type()));
                        (c.name().to_string(), ty)
                    })
                    .collect(),
                origins: statement
                    .columns_with_metadata()
                    .iter()
                    .map(|c| c.origin_name().map(str::to_string))
                    .collect(),
                // Bound as text, and typed by SQLite's affinity where they are compared.
                params: vec![None; statement.parameter_count()],
            };
            Ok(described)
        }))
    }

    fn rows<'a>(
        &'a self,
        query: &'a str,
        params: Vec<Param>,
        context: String,
    ) -> BoxFuture<'a, Result<Rows<'a>, SourceError>> {
        Box::pin(async move {
            let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<Cell>, SourceError>>(ROWS_AHEAD);
            let connection = self.connection.clone();
            let (query, owned_context) = (query.to_string(), context.clone());
            // The thread ends when the rows do, on an error, or when the stream is dropped (the
            // send fails; a query still computing is interrupted by the guard below).
            tokio::task::spawn_blocking(move || {
                let connection = connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let result = (|| -> Result<(), SourceError> {
                    let mut statement = prepare(&connection, &query, &owned_context)?;
                    let types: Vec<SqliteType> =
                        statement.columns().iter().map(|c| SqliteType::declared(c.decl_type())).collect();
                    let bound = rusqlite::params_from_iter(params.iter().map(bind));
                    let mut rows = statement.query(bound).map_err(|e| query_error(&owned_context, &e))?;
                    while let Some(row) = rows.next().map_err(|e| query_error(&owned_context, &e))? {
                        let cells = (0..types.len())
                            .map(|i| row.get_ref(i).map(|v| types[i].cell(v)))
                            .collect::<Result<Vec<Cell>, _>>()
                            .map_err(|e| query_error(&owned_context, &e))?;
                        if sender.blocking_send(Ok(cells)).is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                })();
                if let Err(e) = result {
                    let _ = sender.blocking_send(Err(e));
                }
            });
            let guard = Interrupt { handle: Some(self.interrupt.clone()) };
            let state = Some((receiver, guard));
            let stream = futures::stream::unfold(state, move |state| {
                let context = context.clone();
                async move {
                    let (mut receiver, mut guard) = state?;
                    match tokio::time::timeout(self.read_timeout, receiver.recv()).await {
                        Ok(Some(Ok(row))) => Some((Ok(row), Some((receiver, guard)))),
                        Ok(Some(Err(e))) => {
                            guard.handle = None;
                            Some((Err(e), None))
                        }
                        Ok(None) => {
                            guard.handle = None;
                            None
                        }
                        Err(_) => Some((Err(self.timeout(&context)), None)),
                    }
                }
            });
            Ok(stream.boxed())
        })
    }

    fn hold_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        let context = "starting a read transaction on the source";
        Box::pin(self.blocking(context, move |c| c.execute_batch("BEGIN").map_err(|e| query_error(context, &e))))
    }

    fn end_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        let context = "ending the read transaction on the source";
        Box::pin(self.blocking(context, move |c| match c.is_autocommit() {
            true => Ok(()),
            false => c.execute_batch("ROLLBACK").map_err(|e| query_error(context, &e)),
        }))
    }
}

/// A parameter as SQLite gets it: text, or a number when the scope compares it with a number
/// column (an INTEGER when it is a whole number that fits, else a REAL).
fn bind(param: &Param) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match param.number {
        true => match param.text.parse::<i64>() {
            Ok(i) => Value::Integer(i),
            Err(_) => param.text.parse::<f64>().map_or_else(|_| Value::Text(param.text.clone()), Value::Real),
        },
        false => Value::Text(param.text.clone()),
    }
}

/// Interrupts the query of a row stream dropped before its end (or given up on).
struct Interrupt {
    handle: Option<Arc<InterruptHandle>>,
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.interrupt();
        }
    }
}

/// What a column's declared type asks of its values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteType {
    /// The declared type as written (`NVARCHAR(70)`); `None` for an expression.
    declared: Option<String>,
    affinity: Affinity,
    /// Declared as a point in time (`DATE`, `DATETIME`, `TIMESTAMP`).
    time: bool,
    /// Declared with a time of day (`DATETIME`, `TIMESTAMP`): a date alone is that day's midnight,
    /// as PostgreSQL's `timestamp` gives it.
    with_time: bool,
    /// Declared `JSON`: its text is parsed.
    json: bool,
}

/// SQLite's column affinities (section 3.1 of its datatype documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Affinity {
    Integer,
    Text,
    Blob,
    Real,
    Numeric,
}

impl SqliteType {
    /// The type a declared type gives, by SQLite's own rules for its affinity.
    pub fn declared(declared: Option<&str>) -> SqliteType {
        let upper = declared.unwrap_or_default().to_ascii_uppercase();
        let affinity = if upper.contains("INT") {
            Affinity::Integer
        } else if ["CHAR", "CLOB", "TEXT"].iter().any(|w| upper.contains(w)) {
            Affinity::Text
        } else if upper.contains("BLOB") || upper.trim().is_empty() {
            Affinity::Blob
        } else if ["REAL", "FLOA", "DOUB"].iter().any(|w| upper.contains(w)) {
            Affinity::Real
        } else {
            Affinity::Numeric
        };
        let time = affinity == Affinity::Numeric && (upper.contains("DATE") || upper.contains("TIMESTAMP"));
        let with_time = time && upper.contains("TIME");
        let json = upper.trim() == "JSON";
        SqliteType { declared: declared.map(str::to_string), affinity, time, with_time, json }
    }

    /// One value as a cell, by its storage class and what the declared type asks.
    pub fn cell(&self, value: ValueRef<'_>) -> Cell {
        match value {
            ValueRef::Null => Cell::Null,
            ValueRef::Integer(i) if self.time => Cell::refused(self.not_a_time(&format!("the integer {i}"))),
            ValueRef::Real(r) if self.time => Cell::refused(self.not_a_time(&format!("the number {}", real_text(r)))),
            ValueRef::Integer(i) => Cell::Value(AttributeValue::N(i.to_string())),
            ValueRef::Real(r) => real(r),
            ValueRef::Text(bytes) => {
                // SQLite keeps whatever bytes it is given as text; DynamoDB strings are UTF-8.
                let Ok(text) = std::str::from_utf8(bytes) else {
                    return Cell::refused(ConvertError::Value(ValueError::NotUtf8));
                };
                if self.json {
                    return match value::json_value(text.as_bytes(), "JSON") {
                        Ok(v) => Cell::Value(v),
                        Err(e) => Cell::refused(e),
                    };
                }
                if self.time {
                    return match iso_time(text) {
                        Some(iso) if self.with_time && iso.len() == 10 => {
                            Cell::Value(AttributeValue::S(iso + "T00:00:00"))
                        }
                        Some(iso) => Cell::Value(AttributeValue::S(iso)),
                        None => Cell::refused(self.not_a_time(&format!("the text {:?}", shorten(text)))),
                    };
                }
                Cell::Value(AttributeValue::S(text.to_string()))
            }
            ValueRef::Blob(bytes) => Cell::Value(AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes))),
        }
    }

    fn not_a_time(&self, found: &str) -> ConvertError {
        ConvertError::Value(ValueError::NotATime {
            declared: self.declared.clone().unwrap_or_default(),
            found: found.to_string(),
        })
    }
}

/// A REAL as an attribute: its shortest round-trip decimal; an infinite one has no DynamoDB form,
/// and one beyond DynamoDB's range keeps that text for a key template. (SQLite stores NaN as NULL.)
fn real(r: f64) -> Cell {
    match number::from_f64(r) {
        Ok(n) => Cell::Value(AttributeValue::N(n)),
        Err(error @ (NumberError::OutOfRange(_) | NumberError::TooManyDigits { .. })) => {
            Cell::Refused { error: ConvertError::Number(error), text: Some(real_text(r)) }
        }
        Err(error) => Cell::refused(ConvertError::Number(error)),
    }
}

/// The shortest decimal that reads back as `r` (`1e300`, `0.1`).
fn real_text(r: f64) -> String {
    ryu::Buffer::new().format(r).trim_end_matches(".0").to_string()
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

impl ColumnType for SqliteType {
    fn name(&self) -> String {
        match &self.declared {
            Some(declared) => declared.clone(),
            None => "an expression (no declared type)".into(),
        }
    }

    fn dialect(&self) -> value::Dialect {
        value::Dialect::Sqlite
    }

    fn key_type(&self) -> Option<&'static str> {
        if self.json {
            return None;
        }
        Some(match (self.time, self.declared.is_some(), self.affinity) {
            (true, _, _) | (false, false, _) => "S",
            (_, _, Affinity::Integer | Affinity::Real | Affinity::Numeric) => "N",
            (_, _, Affinity::Text) => "S",
            (_, _, Affinity::Blob) => "B",
        })
    }

    fn unconverted(&self, _column: &str) -> Option<Cast> {
        None
    }

    fn explain(&self, error: &ConvertError, column: &Column) -> String {
        let (c, name) = (column.expression.as_str(), column.name.as_str());
        let fix = match error {
            ConvertError::Number(NumberError::NotFinite(_)) => Some(format!(
                "return NULL in the query instead (CASE WHEN abs({c}) < 9e999 THEN {c} END AS {name}), or leave such \
                 rows out (WHERE {c} IS NULL OR abs({c}) < 9e999)"
            )),
            ConvertError::Number(_) => {
                Some(format!("store the number as text, as SQLite prints it (CAST({c} AS TEXT) AS {name})"))
            }
            ConvertError::Value(ValueError::NotUtf8) => Some(format!(
                "store its bytes instead (CAST({c} AS BLOB) AS {name}) or their hex (hex({c}) AS {name}), or leave \
                 such rows out"
            )),
            ConvertError::Value(ValueError::NotATime { .. }) => Some(format!(
                "keep the value as it is, as text (CAST({c} AS TEXT) AS {name}: an expression has no declared \
                 type), or convert it in the query (datetime({c}, 'unixepoch') AS {name} for Unix seconds), or \
                 leave such rows out"
            )),
            ConvertError::Value(_) => Some(format!(
                "store the text as a string (CAST({c} AS TEXT) AS {name}, and no json_columns entry), or leave \
                 the row out of the query"
            )),
            _ => None,
        };
        match fix {
            Some(fix) => format!("{error}; {}{fix}", column.preamble()),
            None => error.to_string(),
        }
    }

    fn untyped(&self) -> Option<&'static str> {
        self.declared.is_none().then_some("SQLite declares no type for an expression")
    }

    /// A parameter compared with a date column is spelled as the items hold it (in UTC, without a
    /// zone: SQLite's datetime() reads times as UTC), and must be a time datetime() reads too; one
    /// compared with a number column must be a number DynamoDB can hold.
    fn param_value(&self, value: &str) -> Result<Option<String>, &'static str> {
        const NOT_A_TIME: &str =
            "is not a date and time in a form ddbsync and SQLite both read (YYYY-MM-DD, then optionally HH:MM[:SS])";
        match self.affinity {
            _ if self.time => {
                // SQLite's datetime() has no second 60 and no offset beyond 14 hours.
                let offset_hours = value.len().checked_sub(6).and_then(|at| value.get(at + 1..at + 3));
                let zoned = value.len() > 6 && matches!(value.as_bytes()[value.len() - 6], b'+' | b'-');
                let far = zoned && offset_hours.and_then(|h| h.parse::<u32>().ok()).is_some_and(|h| h > 14);
                let leap = value.get(17..19) == Some("60");
                let iso = iso_time(value).filter(|_| !far && !leap).ok_or(NOT_A_TIME)?;
                let naive = iso.strip_suffix("+00:00").unwrap_or(&iso).to_string();
                Ok(Some(if self.with_time && naive.len() == 10 { naive + "T00:00:00" } else { naive }))
            }
            Affinity::Integer | Affinity::Real | Affinity::Numeric if self.declared.is_some() => {
                match number::normalize(value) {
                    Ok(n) => Ok(Some(n.into_owned())),
                    Err(_) => Err("is not a number DynamoDB can hold"),
                }
            }
            _ => Ok(None),
        }
    }

    fn unspellable(&self, column: &str) -> Option<String> {
        (self.declared.is_some() && self.affinity == Affinity::Blob && !self.json).then(|| {
            format!(
                "is declared {}, whose bytes have no text of their own for a key; encode them in the query \
                 (hex({column}) AS …)",
                self.name()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Cell {
        Cell::Value(AttributeValue::N(text.into()))
    }

    fn s(text: &str) -> Cell {
        Cell::Value(AttributeValue::S(text.into()))
    }

    #[test]
    fn affinity_follows_sqlites_rules() {
        let key = |declared: Option<&str>| SqliteType::declared(declared).key_type();
        assert_eq!(key(Some("INTEGER")), Some("N"));
        assert_eq!(key(Some("BIGINT")), Some("N"));
        assert_eq!(key(Some("NVARCHAR(70)")), Some("S"));
        assert_eq!(key(Some("CLOB")), Some("S"));
        assert_eq!(key(Some("BLOB")), Some("B"));
        assert_eq!(key(Some("REAL")), Some("N"));
        assert_eq!(key(Some("DOUBLE PRECISION")), Some("N"));
        assert_eq!(key(Some("NUMERIC(10,2)")), Some("N"));
        assert_eq!(key(Some("DATETIME")), Some("S"), "a date is kept as ISO text");
        assert_eq!(key(Some("JSON")), None);
        // "INT" wins over "CHAR" (rule 1 before rule 2): SQLite's own example, CHARINT.
        assert_eq!(key(Some("CHARINT")), Some("N"));
        assert_eq!(key(None), Some("S"), "an expression has no declared type");
    }

    #[test]
    fn each_storage_class_converts_by_itself() {
        let any = SqliteType::declared(Some("NUMERIC"));
        assert_eq!(any.cell(ValueRef::Integer(9_007_199_254_740_993)), n("9007199254740993"));
        assert_eq!(any.cell(ValueRef::Real(0.1)), n("0.1"));
        assert_eq!(any.cell(ValueRef::Real(1e-7)), n("0.0000001"));
        assert_eq!(any.cell(ValueRef::Text(b"abc")), s("abc"));
        assert_eq!(any.cell(ValueRef::Null), Cell::Null);
        assert!(matches!(any.cell(ValueRef::Blob(&[1, 2])), Cell::Value(AttributeValue::B(_))));
        // Beyond DynamoDB's range: refused, its text kept for a key template.
        match any.cell(ValueRef::Real(1e300)) {
            Cell::Refused { text: Some(text), .. } => assert_eq!(text, "1e300"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(any.cell(ValueRef::Real(f64::INFINITY)), Cell::Refused { text: None, .. }));
    }

    #[test]
    fn dates_become_postgresql_spelling() {
        assert_eq!(iso_time("2021-01-01").as_deref(), Some("2021-01-01"));
        assert_eq!(iso_time("2021-01-01 00:00:00").as_deref(), Some("2021-01-01T00:00:00"));
        assert_eq!(iso_time("2021-01-01T10:30").as_deref(), Some("2021-01-01T10:30:00"));
        assert_eq!(iso_time("2021-01-01 10:30:00.5").as_deref(), Some("2021-01-01T10:30:00.500"));
        assert_eq!(iso_time("2021-01-01 10:30:00Z").as_deref(), Some("2021-01-01T10:30:00+00:00"));
        assert_eq!(iso_time("2021-01-01 10:30:00+02:00").as_deref(), Some("2021-01-01T08:30:00+00:00"));
        assert_eq!(iso_time("31/12/2020"), None);
        assert_eq!(iso_time("2021-01-01 00:00:00+99:99"), None, "no such offset");
        assert_eq!(iso_time("2021-01-01 00:00:00+16:00"), None);
        assert_eq!(iso_time("0000-01-01"), None, "no year 0");
        let when = SqliteType::declared(Some("DATETIME"));
        assert_eq!(when.param_value("2021-01-01 10:00"), Ok(Some("2021-01-01T10:00:00".into())), "as items hold it");
        assert_eq!(when.param_value("2021-01-01"), Ok(Some("2021-01-01T00:00:00".into())));
        assert_eq!(when.param_value("2021-01-01T10:00:00-05:00"), Ok(Some("2021-01-01T15:00:00".into())));
        for unread in ["2021-02-1", "2021-01-01 10:00:60", "2021-01-01 10:00+15:00"] {
            assert!(when.param_value(unread).is_err(), "{unread}");
        }
        let amount = SqliteType::declared(Some("NUMERIC"));
        assert_eq!(amount.param_value("1.50"), Ok(Some("1.5".into())));
        for bad in [" 5", "Infinity", "NaN", "1e200", "0x10"] {
            assert!(amount.param_value(bad).is_err(), "{bad}");
        }
        assert_eq!(iso_time("2021-01-01 23:59:60").as_deref(), Some("2021-01-02T00:00:00"), "a leap second");
        assert_eq!(iso_time("2021-01-01 10:00:00.1234567").as_deref(), Some("2021-01-01T10:00:00.123457"));
        assert_eq!(iso_time("2021-01-01 10:00:00.9999996").as_deref(), Some("2021-01-01T10:00:01"));
        for loose in [" 2021-01-01 ", "2021-01-01 1:2", "-001-01-01", "2021-01-01 10:00:", "2021-01-01 24:00"] {
            assert_eq!(iso_time(loose), None, "{loose:?}");
        }
        assert_eq!(iso_time("2021-02-30"), None);
        let date = SqliteType::declared(Some("DATETIME"));
        assert_eq!(date.cell(ValueRef::Text(b"2009-01-01 00:00:00")), s("2009-01-01T00:00:00"));
        assert_eq!(date.cell(ValueRef::Text(b"2009-01-01")), s("2009-01-01T00:00:00"), "a timestamp's midnight");
        let day = SqliteType::declared(Some("DATE"));
        assert_eq!(day.cell(ValueRef::Text(b"2009-01-01")), s("2009-01-01"));
        for bad in [ValueRef::Text(b"yesterday"), ValueRef::Integer(1_600_000_000)] {
            let Cell::Refused { error, .. } = date.cell(bad) else { panic!("a bad date is refused") };
            let advice = date.explain(&error, &Column::new("d"));
            assert!(advice.contains("CAST(d AS TEXT) AS d") && advice.contains("unixepoch"), "{advice}");
        }
    }

    #[test]
    fn json_declared_columns_are_parsed() {
        let json = SqliteType::declared(Some("JSON"));
        assert!(matches!(json.cell(ValueRef::Text(br#"{"a":[1,2]}"#)), Cell::Value(AttributeValue::M(_))));
        assert!(matches!(json.cell(ValueRef::Text(b"{not json")), Cell::Refused { .. }));
    }
}
