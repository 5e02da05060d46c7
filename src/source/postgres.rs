//! The PostgreSQL adapter: connects the way libpq users expect and streams a query's rows.
//!
//! The session runs in UTC so that timestamps inside `json_agg` output are spelled the same on
//! every run, wherever the server is. Rows are streamed (the driver reads them as they are
//! consumed), never collected.
//!
//! Invariants: the source is only ever read: every query runs inside its own explicit
//! `BEGIN TRANSACTION READ ONLY` … `ROLLBACK` (under `on_reject = "fail"`, inside a savepoint of the
//! one `REPEATABLE READ READ ONLY` transaction, rolled back to after it), and nothing ddbsync opens
//! is ever committed. So PostgreSQL refuses a query that writes, and what a read-only transaction
//! still allows (`lo_create`, `set_config`, transaction-level advisory locks) is undone; session
//! advisory locks are released after each query. No wait on the server is longer than
//! `read_timeout_secs` (connecting: `connect_timeout_secs`), so a server that stops answering ends
//! the run instead of holding it, and its lock, for ever. A query ddbsync stops waiting for (a
//! timeout, a row stream dropped before its end, an error or a signal that ends the run) is
//! cancelled on the server, best effort, so that it does not keep loading it after the run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{CancelToken, Client, NoTls, Row, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Described, Rows, Source, SourceError};
use crate::profile::{Profile, SslMode, MAX_WAIT_SECS};
use crate::pure::params::Param;
use crate::pure::value::{Cell, ColType};

pub mod conninfo;
pub mod convert;
pub mod pgpass;
pub mod resolve;
pub mod tls;

/// A connection to a PostgreSQL database.
pub struct Postgres {
    client: Client,
    /// `user@host:port/dbname`, for messages (never the password).
    pub target: String,
    /// Longest wait for the server's next answer.
    read_timeout: Duration,
    /// Stops the query the connection is running, from another connection.
    canceller: Canceller,
    /// Set by [`Postgres::hold_snapshot`]: queries run in savepoints of the one snapshot transaction.
    snapshot: AtomicBool,
    /// A query's transaction (or savepoint) may still be open, its query perhaps still running
    /// (its rows were dropped before their end): it is rolled back before the next statement.
    open: AtomicBool,
}

/// The statements that open and close one query's scope, in a session of its own transactions or
/// inside the held snapshot. The close never commits: whatever a query did that a read-only
/// transaction allows is undone. Session advisory locks outlive a rollback, so they are released.
fn query_scope(snapshot: bool) -> (&'static str, &'static str) {
    if snapshot {
        (
            "SAVEPOINT ddbsync_query",
            "ROLLBACK TO SAVEPOINT ddbsync_query; RELEASE SAVEPOINT ddbsync_query; SELECT pg_advisory_unlock_all()",
        )
    } else {
        ("BEGIN TRANSACTION READ ONLY", "ROLLBACK; SELECT pg_advisory_unlock_all()")
    }
}

/// The TLS of the connection, which a cancel request uses too (a server that requires TLS refuses
/// a plain cancel request).
#[derive(Clone)]
enum CancelTls {
    Plain,
    Rustls(MakeRustlsConnect),
}

/// Sends cancel requests for the connection's running query, each bounded by the connect timeout.
#[derive(Clone)]
struct Canceller {
    token: CancelToken,
    tls: CancelTls,
    limit: Duration,
}

/// Cancel requests sent from `Drop` (a row stream dropped before its end, a wait given up), which
/// [`settle`] waits for before the process exits.
static CANCELS: Mutex<Vec<tokio::task::JoinHandle<()>>> = Mutex::new(Vec::new());

impl Canceller {
    /// Asks the server to stop the connection's running query. Best effort: the server says
    /// nothing back, and a failure to reach it is only logged (the run already has its error).
    async fn cancel(self) {
        let sent = match self.tls {
            CancelTls::Plain => tokio::time::timeout(self.limit, self.token.cancel_query(NoTls)).await,
            CancelTls::Rustls(tls) => tokio::time::timeout(self.limit, self.token.cancel_query(tls)).await,
        };
        match sent {
            Ok(Ok(())) => tracing::debug!("asked PostgreSQL to cancel the running query"),
            Ok(Err(e)) => tracing::warn!("could not cancel the running query on PostgreSQL: {}", db_error(&e)),
            Err(_) => tracing::warn!(
                "could not cancel the running query on PostgreSQL: no answer within {}s",
                self.limit.as_secs()
            ),
        }
    }

    /// [`Canceller::cancel`] from a place that cannot wait (`Drop`); [`settle`] waits for it.
    fn cancel_later(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let task = runtime.spawn(self.clone().cancel());
            CANCELS.lock().unwrap_or_else(|e| e.into_inner()).push(task);
        }
    }
}

/// Waits for the cancel requests still being sent (each is bounded by the connect timeout). Called
/// before the process exits, and before the connection is used again after a query was abandoned.
pub async fn settle() {
    loop {
        let pending = std::mem::take(&mut *CANCELS.lock().unwrap_or_else(|e| e.into_inner()));
        if pending.is_empty() {
            return;
        }
        for task in pending {
            let _ = task.await;
        }
    }
}

/// Held while a statement may be running on the server; dropped before [`InFlight::done`] (the
/// waiting future or the row stream was dropped), it cancels the statement.
struct InFlight(Option<Canceller>);

impl InFlight {
    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(canceller) = self.0.take() {
            canceller.cancel_later();
        }
    }
}

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

/// A query's error: a write refused by the read-only transaction is told apart.
fn query_error(context: &str, e: &tokio_postgres::Error) -> SourceError {
    let (context, cause) = (context.to_string(), db_error(e));
    match e.code() {
        Some(code) if *code == SqlState::READ_ONLY_SQL_TRANSACTION => SourceError::Writes {
            system: "PostgreSQL",
            how: "every query runs in a read-only transaction",
            context,
            cause,
        },
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

/// A host for `user@host:port`: an IPv6 address in brackets, as in a URI.
fn bracketed(host: &str) -> String {
    match host.contains(':') && !host.starts_with('/') {
        true => format!("[{host}]"),
        false => host.to_string(),
    }
}

impl Postgres {
    /// Connects with the settings [`resolve::resolve`] finds, libpq's way.
    pub async fn connect(profile: &Profile) -> Result<Postgres, SourceError> {
        let cfg = &profile.source;
        let resolve::Resolved {
            host,
            port,
            dbname,
            user,
            password,
            sslmode,
            sslmode_origin,
            tls_origin,
            sslrootcert,
            connect_timeout,
            timeout_origin,
            password_found,
        } = resolve::resolve(profile)?;
        let target = format!("{user}@{}:{port}/{dbname}", bracketed(&host));
        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&dbname)
            .application_name("ddbsync")
            // Read-only from the first statement on (preparing runs outside a query's own
            // transaction).
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
        let limit = (connect_timeout, timeout_origin.as_str());
        let connected = match sslmode {
            SslMode::Disable => connect(config, NoTls, limit).await.map(|c| (c, CancelTls::Plain)),
            mode => {
                let roots = tls::root_cert(sslrootcert.as_deref());
                let origin = tls_origin;
                let tls = tls::client_config(mode, roots.as_deref())
                    .map_err(|message| SourceError::Tls { origin, message })?;
                let tls = MakeRustlsConnect::new(tls);
                connect(config, tls.clone(), limit).await.map(|c| (c, CancelTls::Rustls(tls)))
            }
        };
        let (client, cancel_tls) = connected.map_err(|mut cause| {
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
            if cause.contains("password missing") {
                cause = password_found.missing();
            } else if cause.contains("password authentication failed") {
                if let Some(origin) = &password_found.origin {
                    cause.push_str(&format!(" (the password came from {origin}; correct it there)"));
                }
            }
            SourceError::Connect { target: target.clone(), cause }
        })?;
        let canceller = Canceller { token: client.cancel_token(), tls: cancel_tls, limit: connect_timeout };
        Ok(Postgres {
            client,
            target,
            read_timeout: cfg.read_timeout,
            canceller,
            snapshot: AtomicBool::new(false),
            open: AtomicBool::new(false),
        })
    }

    /// Waits at most `read_timeout` for an answer from the server; the outer error is the timeout.
    /// A statement given up on, by the timeout or because this future was dropped, is cancelled.
    async fn within<T>(
        &self,
        context: &str,
        answer: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<Result<T, tokio_postgres::Error>, SourceError> {
        let in_flight = InFlight(Some(self.canceller.clone()));
        let answered = tokio::time::timeout(self.read_timeout, answer).await;
        in_flight.done();
        match answered {
            Ok(result) => Ok(result),
            Err(_) => {
                // Waited for here, not left to a task: the run is about to end on this error.
                self.canceller.clone().cancel().await;
                Err(timeout(context, &self.target, self.read_timeout))
            }
        }
    }

    /// [`Postgres::within`], with the server's error told apart.
    async fn bounded<T>(
        &self,
        context: &str,
        answer: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, SourceError> {
        self.within(context, answer).await?.map_err(|e| query_error(context, &e))
    }

    /// Closes the scope of a query left open (its rows were dropped before their end, or it
    /// failed): waits for its cancel request, then rolls back, so that the next statement starts
    /// clean.
    async fn reset(&self, context: &str) -> Result<(), SourceError> {
        if !self.open.load(Ordering::SeqCst) {
            return Ok(());
        }
        settle().await;
        let (_, close) = query_scope(self.snapshot.load(Ordering::SeqCst));
        // A cancel request that reached the server late can stop the rollback itself; once more
        // is enough, as nothing else is running then.
        for last in [false, true] {
            match self.within(context, self.client.batch_execute(close)).await? {
                Ok(()) => {
                    self.open.store(false, Ordering::SeqCst);
                    return Ok(());
                }
                Err(e) if !last && e.code() == Some(&SqlState::QUERY_CANCELED) => continue,
                Err(e) => return Err(query_error(context, &e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Runs every later query in one `REPEATABLE READ READ ONLY` transaction, so that they all read
    /// the same snapshot of the database (`on_reject = "fail"`: the check and the sync see the same
    /// rows). It is never committed: [`Postgres::end_snapshot`] rolls it back, and so does the server
    /// when the connection closes.
    async fn hold(&self) -> Result<(), SourceError> {
        let context = "starting a read-only transaction on the source";
        self.reset(context).await?;
        let begin = self.client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        self.bounded(context, begin).await?;
        self.snapshot.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Rolls back the snapshot transaction of [`Postgres::hold_snapshot`]; later queries run in
    /// transactions of their own again. After a query was abandoned (the run is ending on an error
    /// or a signal) it sends nothing, rather than wait behind that query: the server rolls the
    /// transaction back when the connection closes.
    async fn release(&self) -> Result<(), SourceError> {
        let context = "ending the read-only transaction on the source";
        if self.open.load(Ordering::SeqCst) {
            return Ok(());
        }
        if self.snapshot.swap(false, Ordering::SeqCst) {
            self.bounded(context, self.client.batch_execute("ROLLBACK")).await?;
        }
        Ok(())
    }

    /// The columns a query returns (name and type), the table column each comes from, and the
    /// types PostgreSQL infers for its parameters, without running it. The table columns' names
    /// are read from the catalog in one query (read-only, as every query here).
    async fn prepare_described(&self, query: &str, context: &str) -> Result<Described, SourceError> {
        self.reset(context).await?;
        let statement = self.bounded(context, self.client.prepare(query)).await?;
        let columns = statement.columns();
        // One row back, whatever the number of columns: the name of each (table, column) pair.
        let traced: Vec<(u32, i16)> = columns.iter().filter_map(|c| c.table_oid().zip(c.column_id())).collect();
        let mut names: HashMap<(u32, i16), String> = HashMap::new();
        if !traced.is_empty() {
            let catalog = "SELECT array_agg(a.attname::text ORDER BY c.ord) \
                           FROM unnest($1::oid[], $2::int2[]) WITH ORDINALITY AS c(rel, num, ord) \
                           LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.rel AND a.attnum = c.num";
            let (tables, numbers): (Vec<u32>, Vec<i16>) = traced.iter().copied().unzip();
            let row = self.bounded(context, self.client.query_one(catalog, &[&tables, &numbers])).await?;
            let found: Vec<Option<String>> = row.get(0);
            names.extend(traced.into_iter().zip(found).filter_map(|(pair, name)| Some((pair, name?))));
        }
        // A column PostgreSQL traces to a table whose catalog row was not found keeps its own name.
        let origin = |c: &tokio_postgres::Column| match (c.table_oid(), c.column_id()) {
            (Some(table), Some(column)) => {
                Some(names.get(&(table, column)).cloned().unwrap_or_else(|| c.name().into()))
            }
            _ => None,
        };
        let column_type = |c: &tokio_postgres::Column| -> ColType { Arc::new(convert::PgType(c.type_().clone())) };
        Ok(Described {
            columns: columns.iter().map(|c| (c.name().to_string(), column_type(c))).collect(),
            origins: columns.iter().map(origin).collect(),
            params: statement
                .params()
                .iter()
                .map(|ty| Some(Arc::new(convert::PgType(ty.clone())) as ColType))
                .collect(),
        })
    }

    /// Streams a query's rows, with `params` bound to `$1`, `$2`, …. The query runs in a read-only
    /// transaction (a savepoint, under a held snapshot) that is rolled back after its last row;
    /// dropping the stream before then cancels the query, and the next statement rolls it back.
    async fn stream(
        &self,
        query: &str,
        params: &[String],
        context: &str,
    ) -> Result<impl Stream<Item = Result<Row, SourceError>> + use<'_>, SourceError> {
        self.reset(context).await?;
        let (open, _) = query_scope(self.snapshot.load(Ordering::SeqCst));
        // Marked before it is sent: whatever happens to it, the next statement rolls back first.
        self.open.store(true, Ordering::SeqCst);
        self.bounded(context, self.client.batch_execute(open)).await?;
        let params = params.iter().map(|p| TextParam(p));
        let stream = self.bounded(context, self.client.query_raw(query, params)).await?;
        // Each row is awaited at most `read_timeout`; the clock for a row starts when it is first
        // asked for, and a row the driver already holds is never late. After an error the stream
        // ends. Until the last row, dropping the stream drops `InFlight`, which cancels the query.
        let in_flight = InFlight(Some(self.canceller.clone()));
        let state = Some((Box::pin(stream), context.to_string(), in_flight));
        Ok(futures::stream::unfold(state, move |state| async move {
            let (mut rows, context, in_flight) = state?;
            match tokio::time::timeout(self.read_timeout, rows.next()).await {
                Ok(Some(Ok(row))) => Some((Ok(row), Some((rows, context, in_flight)))),
                Ok(Some(Err(e))) => {
                    // The query ended on the server; its transaction is rolled back before the
                    // next statement (or by the server when the connection closes).
                    in_flight.done();
                    Some((Err(query_error(&context, &e)), None))
                }
                Ok(None) => {
                    in_flight.done();
                    let (_, close) = query_scope(self.snapshot.load(Ordering::SeqCst));
                    match self.bounded(&context, self.client.batch_execute(close)).await {
                        Ok(()) => {
                            self.open.store(false, Ordering::SeqCst);
                            None
                        }
                        Err(e) => Some((Err(e), None)),
                    }
                }
                Err(_) => {
                    in_flight.done();
                    // Waited for here: the run ends on this error, and the query must not go on
                    // loading the server after it.
                    self.canceller.clone().cancel().await;
                    Some((Err(timeout(&context, &self.target, self.read_timeout)), None))
                }
            }
        }))
    }
}

impl Source for Postgres {
    fn system(&self) -> &'static str {
        "PostgreSQL"
    }

    fn target(&self) -> &str {
        &self.target
    }

    fn placeholders(&self) -> &'static str {
        "$1, $2, …"
    }

    fn describe<'a>(&'a self, query: &'a str, context: &'a str) -> BoxFuture<'a, Result<Described, SourceError>> {
        Box::pin(self.prepare_described(query, context))
    }

    fn rows<'a>(
        &'a self,
        query: &'a str,
        params: Vec<Param>,
        context: String,
    ) -> BoxFuture<'a, Result<Rows<'a>, SourceError>> {
        Box::pin(async move {
            // As text, always: PostgreSQL parses each as the type the query gives it.
            let params: Vec<String> = params.into_iter().map(|p| p.text).collect();
            let rows = self.stream(query, &params, &context).await?;
            // Each value converted here, by its column's type: the core sees cells only.
            let cells = rows.map(|row| {
                row.map(|row| {
                    let columns = row.columns().iter().enumerate();
                    columns.map(|(i, c)| convert::cell(c.type_(), raw_value(&row, i))).collect::<Vec<Cell>>()
                })
            });
            Ok(Box::pin(cells) as Rows<'a>)
        })
    }

    fn hold_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(self.hold())
    }

    fn end_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(self.release())
    }
}

fn timeout(context: &str, target: &str, waited: Duration) -> SourceError {
    SourceError::Timeout {
        system: "PostgreSQL",
        context: context.to_string(),
        target: target.to_string(),
        waited,
        hint: "check that the server is up and the query is not waiting on a lock (pg_stat_activity shows it)",
    }
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
    // In the run's span: its warning carries the run id.
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            if let Err(e) = connection.await {
                tracing::warn!("PostgreSQL connection closed: {e}");
            }
        },
        tracing::Span::current(),
    ));
    Ok(client)
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

/// A column's raw binary value, whatever its type: conversion happens in [`convert`].
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

/// A column's raw value in a row (`None` for NULL).
fn raw_value(row: &Row, index: usize) -> Option<&[u8]> {
    row.try_get::<_, Raw>(index).map(|r| r.0).unwrap_or(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_host_is_shown_in_brackets() {
        assert_eq!(format!("alice@{}:5432/pni", bracketed("::1")), "alice@[::1]:5432/pni");
        assert_eq!(bracketed("db.example.com"), "db.example.com");
        assert_eq!(bracketed("/var/run/postgresql"), "/var/run/postgresql");
    }

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
    fn a_query_scope_never_commits() {
        for snapshot in [false, true] {
            let (open, close) = query_scope(snapshot);
            let all = format!("{open}; {close}").to_uppercase();
            assert!(!all.contains("COMMIT") && !all.contains("END"), "{all}");
            assert!(close.starts_with("ROLLBACK"), "{close}");
            assert!(close.ends_with("SELECT pg_advisory_unlock_all()"), "{close}");
        }
        // Its own read-only transaction, or a savepoint of the held snapshot (which a BEGIN would
        // only warn about, and a ROLLBACK would end).
        assert_eq!(query_scope(false).0, "BEGIN TRANSACTION READ ONLY");
        assert_eq!(query_scope(true).0, "SAVEPOINT ddbsync_query");
        assert!(query_scope(true).1.starts_with("ROLLBACK TO SAVEPOINT ddbsync_query;"));
    }

    #[tokio::test]
    async fn settle_returns_once_every_cancel_request_is_done() {
        let done = std::sync::Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        CANCELS.lock().unwrap().push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        }));
        settle().await;
        assert!(done.load(Ordering::SeqCst));
        assert!(CANCELS.lock().unwrap().is_empty());
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
