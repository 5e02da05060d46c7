//! The PostgreSQL adapter: connects the way libpq users expect and streams a query's rows.
//!
//! The session runs in UTC so that timestamps inside `json_agg` output are spelled the same on
//! every run, wherever the server is. Rows are streamed (the driver reads them as they are
//! consumed), never collected.
//!
//! Invariants: the source is only ever read: the session's transactions are read-only (set when
//! connecting and again before every query, so that a query cannot turn it off for the next one),
//! so PostgreSQL itself refuses a query that writes, dry run or not. No wait on the server is
//! longer than `read_timeout_secs` (connecting: `connect_timeout_secs`), so a server that stops
//! answering ends the run instead of holding it, and its lock, for ever.

use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::profile::{Profile, SslMode, MAX_WAIT_SECS};
use crate::{pgpass, tls};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: source.password_env names {var}, which is not set; export it, or remove password_env to use PGPASSWORD or ~/.pgpass")]
    MissingPassword { path: String, var: String },
    /// `origin` is the profile file, or the variable that chose the sslmode.
    #[error("{origin}: {message}")]
    Tls { origin: String, message: String },
    /// A libpq variable (`PGSSLMODE`, `PGPORT`…) whose value cannot be used.
    #[error("{var}=\"{value}\" {problem}")]
    Environment { var: &'static str, value: String, problem: String },
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("{context}: {cause}")]
    Query { context: String, cause: String },
    /// PostgreSQL refused a query because it writes, which a read-only transaction forbids.
    #[error(
        "{context}: PostgreSQL refused it: {cause}. ddbsync only ever reads the source (every query runs in a \
         read-only transaction, dry run or not): make the query a SELECT that changes nothing"
    )]
    Writes { context: String, cause: String },
    /// PostgreSQL sent nothing for `read_timeout_secs`.
    #[error(
        "{context}: no answer from PostgreSQL at {target} for {}s (source.read_timeout_secs); check that the \
         server is up and the query is not waiting on a lock (pg_stat_activity shows it), or raise \
         source.read_timeout_secs if the query is that slow",
        waited.as_secs()
    )]
    Timeout { context: String, target: String, waited: Duration },
}

/// A connection to the source database.
pub struct Source {
    client: Client,
    /// `user@host:port/dbname`, for messages (never the password).
    pub target: String,
    /// Longest wait for the server's next answer.
    read_timeout: Duration,
}

/// Makes every later transaction of the session read-only; sent before each query.
const READ_ONLY: &str = "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY";

/// The sslmode to use and where it came from, libpq's way: the profile's, else `PGSSLMODE`, else
/// `prefer`.
pub fn resolve_sslmode(profile: Option<SslMode>, env: Option<&str>) -> Result<(SslMode, &'static str), SourceError> {
    match (profile, env) {
        (Some(mode), _) => Ok((mode, "source.sslmode")),
        (None, Some(text)) => match SslMode::parse(text) {
            Some(mode) => Ok((mode, "PGSSLMODE")),
            None => Err(SourceError::Environment {
                var: "PGSSLMODE",
                value: text.to_string(),
                problem: "is not supported; use disable, prefer, require, verify-ca or verify-full (or set \
                          source.sslmode, which wins)"
                    .into(),
            }),
        },
        (None, None) => Ok((SslMode::Prefer, "the default sslmode")),
    }
}

/// The connect timeout and where it came from: the profile's, else `PGCONNECT_TIMEOUT`, else 10
/// seconds. Unlike libpq, 0 (wait for ever) is refused: an unattended run must end.
pub fn resolve_connect_timeout(
    profile: Option<Duration>,
    env: Option<&str>,
) -> Result<(Duration, &'static str), SourceError> {
    match (profile, env) {
        (Some(limit), _) => Ok((limit, "source.connect_timeout_secs")),
        (None, Some(text)) => match text.trim().parse::<u64>() {
            Ok(secs) if (1..=MAX_WAIT_SECS).contains(&secs) => Ok((Duration::from_secs(secs), "PGCONNECT_TIMEOUT")),
            _ => Err(SourceError::Environment {
                var: "PGCONNECT_TIMEOUT",
                value: text.to_string(),
                problem: format!(
                    "is not a number of seconds from 1 to {MAX_WAIT_SECS} (0, libpq's \"wait for ever\", is not \
                     allowed); fix it or set source.connect_timeout_secs, which wins"
                ),
            }),
        },
        (None, None) => Ok((Duration::from_secs(10), "source.connect_timeout_secs")),
    }
}

/// The port: the profile's, else `PGPORT`, else 5432. A `PGPORT` that is not a port is an error,
/// as in libpq, rather than silently 5432.
fn resolve_port(profile: Option<u16>, env: Option<&str>) -> Result<u16, SourceError> {
    match (profile, env) {
        (Some(port), _) => Ok(port),
        (None, Some(text)) => {
            text.trim().parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| SourceError::Environment {
                var: "PGPORT",
                value: text.to_string(),
                problem: "is not a port number; fix it or set source.port, which wins".into(),
            })
        }
        (None, None) => Ok(5432),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A query's error: a write refused by the read-only transaction is told apart.
fn query_error(context: &str, e: &tokio_postgres::Error) -> SourceError {
    let (context, cause) = (context.to_string(), db_error(e));
    match e.code() {
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => SourceError::Writes { context, cause },
        _ => SourceError::Query { context, cause },
    }
}

fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" (hint: {hint})"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

impl Source {
    /// Connects, resolving settings like libpq: profile, then `PG*` variables, then defaults; the
    /// password from the profile's `password_env`, else `PGPASSWORD`, else the password file.
    pub async fn connect(profile: &Profile) -> Result<Source, SourceError> {
        let cfg = &profile.source;
        let host = cfg.host.clone().or_else(|| env("PGHOST")).unwrap_or_else(|| "localhost".into());
        let port = resolve_port(cfg.port, env("PGPORT").as_deref())?;
        let (sslmode, sslmode_origin) = resolve_sslmode(cfg.sslmode, env("PGSSLMODE").as_deref())?;
        let (connect_timeout, timeout_origin) =
            resolve_connect_timeout(cfg.connect_timeout, env("PGCONNECT_TIMEOUT").as_deref())?;
        let user =
            cfg.user.clone().or_else(|| env("PGUSER")).or_else(|| env("USER")).unwrap_or_else(|| "postgres".into());
        let dbname = cfg.dbname.clone().or_else(|| env("PGDATABASE")).unwrap_or_else(|| user.clone());
        let password = match &cfg.password_env {
            Some(var) => Some(env(var).ok_or_else(|| SourceError::MissingPassword {
                path: profile.path.display().to_string(),
                var: var.clone(),
            })?),
            None => env("PGPASSWORD").or_else(|| {
                let file = env("PGPASSFILE")
                    .map(PathBuf::from)
                    .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".pgpass")))?;
                pgpass::lookup(&std::fs::read_to_string(file).ok()?, &host, port, &dbname, &user)
            }),
        };
        let target = format!("{user}@{host}:{port}/{dbname}");
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&dbname)
            .application_name("ddbsync")
            // Read-only from the first statement on; see READ_ONLY for why it is repeated.
            .options("-c TimeZone=UTC -c default_transaction_read_only=on")
            .connect_timeout(connect_timeout)
            .ssl_mode(match sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        if let Some(password) = &password {
            config.password(password);
        }
        let limit = (connect_timeout, timeout_origin);
        let connected = match sslmode {
            SslMode::Disable => connect(config, NoTls, limit).await,
            mode => {
                let roots = tls::root_cert(cfg.sslrootcert.as_deref());
                let origin = match sslmode_origin {
                    "PGSSLMODE" => format!("PGSSLMODE={}", env("PGSSLMODE").unwrap_or_default()),
                    _ => profile.path.display().to_string(),
                };
                let tls = tls::client_config(mode, roots.as_deref())
                    .map_err(|message| SourceError::Tls { origin, message })?;
                connect(config, MakeRustlsConnect::new(tls), limit).await
            }
        };
        let client = connected.map_err(|mut cause| {
            if cause.contains("invalid peer certificate") {
                cause.push_str(
                    " (the server's certificate must be signed by a CA in source.sslrootcert and, for verify-full, \
                     name the host connected to)",
                );
            }
            if cause.contains("server does not support TLS") {
                cause.push_str(&format!(
                    " (sslmode {}, from {sslmode_origin}, never falls back to an unencrypted connection: enable TLS on \
                     the server, or choose another sslmode)",
                    sslmode.name()
                ));
            }
            SourceError::Connect { target: target.clone(), cause }
        })?;
        Ok(Source { client, target, read_timeout: cfg.read_timeout })
    }

    /// Waits at most `read_timeout` for an answer from the server.
    async fn bounded<T>(
        &self,
        context: &str,
        answer: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SourceError> {
        match tokio::time::timeout(self.read_timeout, answer).await {
            Ok(result) => result.map_err(|e| query_error(context, &e)),
            Err(_) => Err(timeout(context, &self.target, self.read_timeout)),
        }
    }

    /// Runs every later query in one `REPEATABLE READ READ ONLY` transaction, so that they all read
    /// the same snapshot of the database (`on_reject = "fail"`: the check and the sync see the same
    /// rows). The transaction lasts as long as the connection.
    pub async fn hold_snapshot(&self) -> Result<(), SourceError> {
        let begin = self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        self.bounded("starting a read-only transaction on the source", begin).await
    }

    /// The columns a query returns (name and type) and the types PostgreSQL infers for its
    /// parameters, without running it.
    pub async fn describe(&self, query: &str, context: &str) -> Result<Described, SourceError> {
        let statement = self.bounded(context, self.client.prepare(query)).await?;
        Ok(Described {
            columns: statement.columns().iter().map(|c| (c.name().to_string(), c.type_().clone())).collect(),
            params: statement.params().to_vec(),
        })
    }

    /// Streams a query's rows, with `params` bound to `$1`, `$2`, ….
    pub async fn rows(
        &self,
        query: &str,
        params: &[String],
        context: &str,
    ) -> Result<impl Stream<Item = Result<Row, SourceError>> + use<'_>, SourceError> {
        // A query that set the session's default back to read-write (set_config) cannot pass that
        // on to the next one.
        self.bounded(context, self.client.batch_execute(READ_ONLY)).await?;
        let params = params.iter().map(|p| TextParam(p));
        let stream = self.bounded(context, self.client.query_raw(query, params)).await?;
        // Each row is awaited at most `read_timeout`; the clock for a row starts when it is first
        // asked for, and a row the driver already holds is never late. After an error the stream
        // ends.
        let state = Some((Box::pin(stream), context.to_string(), self.target.clone(), self.read_timeout));
        Ok(futures::stream::unfold(state, |state| async move {
            let (mut rows, context, target, limit) = state?;
            match tokio::time::timeout(limit, rows.next()).await {
                Ok(Some(Ok(row))) => Some((Ok(row), Some((rows, context, target, limit)))),
                Ok(Some(Err(e))) => Some((Err(query_error(&context, &e)), None)),
                Ok(None) => None,
                Err(_) => Some((Err(timeout(&context, &target, limit)), None)),
            }
        }))
    }
}

fn timeout(context: &str, target: &str, waited: Duration) -> SourceError {
    SourceError::Timeout { context: context.to_string(), target: target.to_string(), waited }
}

/// Connects and runs the connection on its own task; the error is the text for a user. `limit` is
/// the time allowed and the setting it came from.
async fn connect<T>(config: tokio_postgres::Config, tls: T, limit: (Duration, &str)) -> Result<Client, String>
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Send + 'static,
{
    let (limit, origin) = limit;
    let (client, connection) = match tokio::time::timeout(limit, config.connect(tls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(db_error(&e)),
        Err(_) => return Err(format!("no answer within {}s ({origin})", limit.as_secs())),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!("PostgreSQL connection closed: {e}");
        }
    });
    Ok(client)
}

/// What preparing a query tells.
pub struct Described {
    pub columns: Vec<(String, Type)>,
    pub params: Vec<Type>,
}

/// A parameter sent as text, as `psql` sends it: PostgreSQL parses it as whatever type the query
/// gives `$n` (a date, a number…), so the value is never spliced into the SQL and never converted
/// here.
#[derive(Debug)]
struct TextParam<'a>(&'a str);

impl ToSql for TextParam<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    fn encode_format(&self, _: &Type) -> Format {
        Format::Text
    }
    to_sql_checked!();
}

/// A column's raw binary value, whatever its type: conversion happens in [`crate::convert`].
pub struct Raw<'a>(pub Option<&'a [u8]>);

impl<'a> FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(Some(raw)))
    }
    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(None))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// The raw values of a row, in column order.
pub fn raw_values(row: &Row) -> Vec<Option<&[u8]>> {
    (0..row.len()).map(|i| row.try_get::<_, Raw>(i).map(|r| r.0).unwrap_or(None)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_precedence_is_libpqs() {
        let mode = |profile, env| resolve_sslmode(profile, env).map_err(|e| e.to_string());
        assert_eq!(mode(Some(SslMode::Disable), Some("verify-full")), Ok((SslMode::Disable, "source.sslmode")));
        assert_eq!(mode(None, Some("verify-full")), Ok((SslMode::VerifyFull, "PGSSLMODE")));
        assert_eq!(mode(None, Some("require")), Ok((SslMode::Require, "PGSSLMODE")));
        assert_eq!(mode(None, None), Ok((SslMode::Prefer, "the default sslmode")));
        let err = mode(None, Some("allow")).unwrap_err();
        assert!(err.starts_with("PGSSLMODE=\"allow\" is not supported; use disable, prefer,"), "{err}");
        assert_eq!(mode(Some(SslMode::Require), Some("bogus")), Ok((SslMode::Require, "source.sslmode")));
    }

    #[test]
    fn connect_timeout_precedence_and_bounds() {
        let limit = |profile: Option<u64>, env| {
            resolve_connect_timeout(profile.map(Duration::from_secs), env)
                .map(|(d, origin)| (d.as_secs(), origin))
                .map_err(|e| e.to_string())
        };
        assert_eq!(limit(Some(3), Some("7")), Ok((3, "source.connect_timeout_secs")));
        assert_eq!(limit(None, Some("7")), Ok((7, "PGCONNECT_TIMEOUT")));
        assert_eq!(limit(None, None), Ok((10, "source.connect_timeout_secs")));
        for bad in ["0", "-1", "soon", "86401", "99999999999999999999"] {
            let err = limit(None, Some(bad)).unwrap_err();
            assert!(err.starts_with(&format!("PGCONNECT_TIMEOUT=\"{bad}\" is not a number of seconds from 1 to 86400")));
        }
    }

    #[test]
    fn a_bad_pgport_is_an_error_not_5432() {
        assert_eq!(resolve_port(Some(6000), Some("x")).unwrap(), 6000);
        assert_eq!(resolve_port(None, Some("6432")).unwrap(), 6432);
        assert_eq!(resolve_port(None, None).unwrap(), 5432);
        for bad in ["x", "0", "70000"] {
            let err = resolve_port(None, Some(bad)).unwrap_err().to_string();
            assert_eq!(err, format!("PGPORT=\"{bad}\" is not a port number; fix it or set source.port, which wins"));
        }
    }

    #[test]
    fn a_timeout_names_the_server_the_query_and_the_fix() {
        let err = timeout("m.toml: table \"lessons\": query", "u@h:5432/d", Duration::from_secs(2)).to_string();
        assert_eq!(
            err,
            "m.toml: table \"lessons\": query: no answer from PostgreSQL at u@h:5432/d for 2s \
             (source.read_timeout_secs); check that the server is up and the query is not waiting on a lock \
             (pg_stat_activity shows it), or raise source.read_timeout_secs if the query is that slow"
        );
    }
}
