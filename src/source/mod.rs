//! The seam to the source database: describe a query without reading it, and stream its rows as
//! ddbsync's own values ([`crate::pure::value::Cell`]), read-only, each wait bounded. Each source
//! converts its own types in its adapter, so the pure core never sees a driver's type.
//!
//! [`postgres`] is PostgreSQL (libpq habits, TLS, cancel on abandon); [`sqlite`] a SQLite file
//! opened read-only; [`dynamodb`] another environment's DynamoDB tables. [`connect`] picks the one the profile names.

pub mod dynamodb;
pub mod postgres;
pub mod sqlite;

use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::profile::{Profile, SourceKind};
use crate::pure::params::Param;
use crate::pure::value::{ColType, Row};

pub use postgres::settle;

/// A `*_env` key's variable, as a message names it: by its name when it is written as environment
/// variables are (capitals, digits, `_`), else not at all, since a lowercase or mixed word there
/// is as likely the password itself, typed where its variable's name belongs.
fn shown_var(var: &str) -> String {
    if var.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_') {
        var.to_string()
    } else {
        "a variable whose name is not shown (it is not written in capitals, as environment variables are, so it \
         may be the password itself)"
            .to_string()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: source.password_env names {}, which is not set; export it, or remove password_env to use PGPASSWORD or ~/.pgpass", shown_var(.var))]
    MissingPassword { path: String, var: String },
    /// `url_env` names a variable that is unset or empty, or whose text is not a connection
    /// string (`problem` never quotes it: it may hold a password).
    #[error("{path}: source.url_env names {}, which {problem}", shown_var(.var))]
    Url { path: String, var: String, problem: String },
    /// A libpq service that is not defined, or a service file that cannot be read or parsed.
    #[error("{0}")]
    Service(String),
    /// A setting of a connection string or a service that cannot be used; `origin` says where it
    /// was written (never its value when it may be secret).
    #[error("{origin}: {problem}")]
    Setting { origin: String, problem: String },
    /// `origin` is the profile file, or the variable that chose the sslmode.
    #[error("{origin}: {message}")]
    Tls { origin: String, message: String },
    /// A libpq variable (`PGSSLMODE`, `PGPORT`…) whose value cannot be used.
    #[error("{var}=\"{value}\" {problem}")]
    Environment { var: &'static str, value: String, problem: String },
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
    /// The SQLite file cannot be opened for reading.
    #[error("cannot open the SQLite database {path}: {cause}; check source.path in {profile} (relative to that file)")]
    Open { path: String, cause: String, profile: String },
    #[error("{context}: {cause}")]
    Query { context: String, cause: String },
    /// The source refused a query because it writes: `how` says why it can only read.
    #[error(
        "{context}: {system} refused it: {cause}. ddbsync only ever reads the source ({how}, dry run or not): make \
         the query a SELECT that changes nothing"
    )]
    Writes { system: &'static str, how: &'static str, context: String, cause: String },
    /// The source sent nothing for `read_timeout_secs`; `hint` says what to look at.
    #[error(
        "{context}: no answer from {system} at {target} for {}s (source.read_timeout_secs); {hint}, or raise \
         source.read_timeout_secs if the query is that slow",
        waited.as_secs()
    )]
    Timeout { system: &'static str, context: String, target: String, waited: Duration, hint: &'static str },
}

/// What a query returns, learnt without running it.
pub struct Described {
    /// Each column's name and type, in order.
    pub columns: Vec<(String, ColType)>,
    /// Per column, the name of the table column it comes from; `None` for an expression (advice
    /// names a column by it).
    pub origins: Vec<Option<String>>,
    /// Per parameter (`$1`, `?1`, …), its type as the source infers it, so that a scope's values
    /// are typed and spelled like the items'; `None` when the source does not type its parameters
    /// (SQLite): the scope's comparisons type them.
    pub params: Vec<Option<ColType>>,
}

/// What a promotion (a DynamoDB source) did to IDs: per table read whole, and every ID it
/// remapped as (mapping name, source ID, new ID), in the order read.
#[derive(Debug, Clone, Default)]
pub struct Promotion {
    pub tables: Vec<crate::pure::remap::Promoted>,
    pub ids: Vec<(String, crate::pure::item::AttributeValue, crate::pure::item::AttributeValue)>,
}

/// A query's rows, one after another; an error ends the stream.
pub type Rows<'a> = BoxStream<'a, Result<Row, SourceError>>;

/// A source database, as the engine uses it. Every query is read-only, and no wait on the source
/// is longer than the profile's `read_timeout_secs`; dropping a row stream before its end stops
/// the query.
pub trait Source: Send + Sync {
    /// `PostgreSQL` or `SQLite`, for messages.
    fn system(&self) -> &'static str;
    /// Where the source is (`user@host:port/dbname`, a file), for messages: never a password.
    fn target(&self) -> &str;
    /// How its queries write parameters, for messages: `$1, $2, …`.
    fn placeholders(&self) -> &'static str;
    /// The columns a query returns and its parameters' types, without running it.
    fn describe<'a>(&'a self, query: &'a str, context: &'a str) -> BoxFuture<'a, Result<Described, SourceError>>;
    /// Streams a query's rows, `params` bound in order (`$1`, `$2`, … or `?1`, `?2`, …), as text
    /// unless the source binds a number as one; `context` names the query in errors.
    fn rows<'a>(
        &'a self,
        query: &'a str,
        params: Vec<Param>,
        context: String,
    ) -> BoxFuture<'a, Result<Rows<'a>, SourceError>>;
    /// From now on every query sees one snapshot of the source (`on_reject = "fail"` checks the
    /// rows it then writes).
    fn hold_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>>;
    /// Ends the held snapshot.
    fn end_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>>;
    /// What the tables read so far did to IDs, for a source that remaps them (DynamoDB).
    fn promotion(&self) -> Option<Promotion> {
        None
    }
    /// The row that `query`'s stream gave last was rejected when its item was built (a value
    /// with no DynamoDB form, an item over 400 KB); told before the next row is read. A
    /// promotion takes note, so that no reference may point at that item.
    fn rejected_last(&self, _query: &str) {}
}

/// Connects to the source the profile names.
pub async fn connect(profile: &Profile) -> Result<Box<dyn Source>, SourceError> {
    Ok(match &profile.source.kind {
        SourceKind::Postgres => Box::new(postgres::Postgres::connect(profile).await?),
        SourceKind::Sqlite { path } => Box::new(sqlite::Sqlite::open(profile, path).await?),
        SourceKind::DynamoDb(settings) => Box::new(dynamodb::DynamoDb::connect(profile, settings).await),
    })
}

#[cfg(test)]
mod tests {
    use super::SourceError;

    #[test]
    fn a_variable_name_not_in_capitals_is_not_shown() {
        let missing = |var: &str| SourceError::MissingPassword { path: "envs/p.toml".into(), var: var.into() };
        assert!(missing("PGPASSWORD_PROD").to_string().contains("names PGPASSWORD_PROD, which is not set"));
        for secret in ["correcthorsebatterystaple", "Xy7abc123", "pg_pass"] {
            let text = missing(secret).to_string();
            assert!(!text.contains(secret), "{text}");
            assert!(text.contains("a variable whose name is not shown"), "{text}");
        }
        let url = SourceError::Url { path: "p".into(), var: "s3cretPW".into(), problem: "is not set".into() };
        assert!(!url.to_string().contains("s3cretPW"), "{url}");
    }
}
