//! The PostgreSQL adapter: connects the way libpq users expect and streams a query's rows.
//!
//! The session runs in UTC so that timestamps inside `json_agg` output are spelled the same on
//! every run, wherever the server is. Rows are streamed (the driver reads them as they are
//! consumed), never collected.

use std::path::PathBuf;

use bytes::BytesMut;
use futures::{Stream, StreamExt};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{to_sql_checked, Format, FromSql, IsNull, ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::profile::{Profile, SslMode};
use crate::{pgpass, tls};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: source.password_env names {var}, which is not set; export it, or remove password_env to use PGPASSWORD or ~/.pgpass")]
    MissingPassword { path: String, var: String },
    #[error("{path}: {message}")]
    Tls { path: String, message: String },
    #[error("cannot connect to PostgreSQL at {target}: {cause}")]
    Connect { target: String, cause: String },
    #[error("{context}: {cause}")]
    Query { context: String, cause: String },
}

/// A connection to the source database.
pub struct Source {
    client: Client,
    /// `user@host:port/dbname`, for messages (never the password).
    pub target: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
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
        let port = cfg.port.or_else(|| env("PGPORT").and_then(|p| p.parse().ok())).unwrap_or(5432);
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
            .options("-c TimeZone=UTC")
            .connect_timeout(cfg.connect_timeout)
            .ssl_mode(match cfg.sslmode {
                SslMode::Disable => tokio_postgres::config::SslMode::Disable,
                SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
            });
        if let Some(password) = &password {
            config.password(password);
        }
        let connected = match cfg.sslmode {
            SslMode::Disable => connect(config, NoTls, cfg.connect_timeout).await,
            mode => {
                let roots = tls::root_cert(cfg.sslrootcert.as_deref());
                let tls = tls::client_config(mode, roots.as_deref())
                    .map_err(|message| SourceError::Tls { path: profile.path.display().to_string(), message })?;
                connect(config, MakeRustlsConnect::new(tls), cfg.connect_timeout).await
            }
        };
        let client = connected.map_err(|mut cause| {
            if cause.contains("invalid peer certificate") {
                cause.push_str(
                    " (the server's certificate must be signed by a CA in source.sslrootcert and, for verify-full, \
                     name the host connected to)",
                );
            }
            SourceError::Connect { target: target.clone(), cause }
        })?;
        Ok(Source { client, target })
    }

    /// The columns a query returns (name and type) and the types PostgreSQL infers for its
    /// parameters, without running it.
    pub async fn describe(&self, query: &str, context: &str) -> Result<Described, SourceError> {
        let statement = self
            .client
            .prepare(query)
            .await
            .map_err(|e| SourceError::Query { context: context.to_string(), cause: db_error(&e) })?;
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
        let wrap = |e: tokio_postgres::Error| SourceError::Query { context: context.to_string(), cause: db_error(&e) };
        let params = params.iter().map(|p| TextParam(p));
        let stream = self.client.query_raw(query, params).await.map_err(wrap)?;
        let context = context.to_string();
        Ok(stream.map(move |r| r.map_err(|e| SourceError::Query { context: context.clone(), cause: db_error(&e) })))
    }
}

/// Connects and runs the connection on its own task; the error is the text for a user.
async fn connect<T>(config: tokio_postgres::Config, tls: T, limit: std::time::Duration) -> Result<Client, String>
where
    T: MakeTlsConnect<Socket> + Send + 'static,
    T::Stream: Send + 'static,
{
    let (client, connection) = match tokio::time::timeout(limit, config.connect(tls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return Err(db_error(&e)),
        Err(_) => return Err(format!("no answer within {}s (source.connect_timeout_secs)", limit.as_secs())),
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
