//! Where a sync's metrics go: a file for node_exporter's textfile collector (`--metrics-file`), a
//! Prometheus Pushgateway (`--pushgateway`, the one HTTP client ddbsync has, on the hyper stack
//! the AWS SDK builds), and CloudWatch embedded-metric-format lines on stderr (`--emf`). What the
//! metrics say is [`crate::pure::metrics`]'s; this module delivers it.
//!
//! Invariants: a delivery that fails is a warning, never a change of the run's exit code (the
//! data were synced, or not, whatever the monitoring heard); every wait is bounded
//! ([`PUSH_TIMEOUT`]); credentials in the Pushgateway URL are sent as a Basic `Authorization`
//! header and never shown (messages name the URL without them); a metrics file is replaced
//! whole, by a rename, so the collector never reads half of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::MetricsArgs;
use crate::exit::UsageError;
use crate::printer::Printer;
use crate::pure::metrics::{self, RunFigures};

/// The Pushgateway's job label: one group per environment under it.
pub const JOB: &str = "ddbsync";

/// The longest a push may take, connection and answer included: a monitoring endpoint that does
/// not answer must not hold a finished sync (nor a scheduler's grace period) for long.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a connection to the Pushgateway may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the run's metrics go, checked before the run starts.
#[derive(Debug, Default)]
pub struct Outputs {
    file: Option<PathBuf>,
    push: Option<Pushgateway>,
    emf: bool,
}

impl Outputs {
    /// Checks the flags before anything runs: a metrics file's directory must exist, and the
    /// Pushgateway URL must be an `http` or `https` URL with a host.
    pub fn of(args: &MetricsArgs) -> Result<Outputs, UsageError> {
        if let Some(file) = &args.metrics_file {
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() || file.file_name().is_none() {
                return Err(UsageError(format!(
                    "--metrics-file {}: {} is not a directory; give a file in an existing directory (the one \
                     node_exporter's --collector.textfile.directory reads, for the textfile collector)",
                    file.display(),
                    dir.display()
                )));
            }
        }
        // An empty DDBSYNC_PUSHGATEWAY is no Pushgateway, as an unset one.
        let push = args.pushgateway.as_deref().filter(|u| !u.is_empty()).map(Pushgateway::parse).transpose()?;
        Ok(Outputs { file: args.metrics_file.clone(), push, emf: args.emf })
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.push.is_none() && !self.emf
    }

    /// Delivers the run's figures everywhere asked; each failure is a warning. `run` comes without
    /// its last success times: they are carried here from the previous metrics file.
    pub async fn publish(&self, mut run: RunFigures, printer: &Printer) {
        let previous = self.file.as_deref().map(|f| previous_successes(f, &run.env)).unwrap_or_default();
        run.last_success = metrics::carried(previous, &run);
        if self.emf {
            let ms = (run.finished_at * 1000.0).round() as i64;
            for line in metrics::emf(&run, ms) {
                printer.metrics_line(&line);
            }
        }
        let text = metrics::prometheus(&run);
        if let Some(file) = &self.file {
            if let Err(e) = write_atomically(file, &text) {
                printer.warn(format!(
                    "--metrics-file {}: not written: {e}; the run's outcome stands (exit code unchanged), and the \
                     file keeps the previous run's metrics",
                    file.display()
                ));
            }
        }
        if let Some(gateway) = &self.push {
            // A run that did not succeed adds to the group instead of replacing it, so that the group keeps
            // the last success time that the run does not have.
            let replace = run.succeeded();
            if let Err(e) = gateway.push(&run.env, text, replace).await {
                printer.warn(format!(
                    "--pushgateway {}: the metrics were not pushed: {e}; the run's outcome stands (exit code \
                     unchanged)",
                    gateway.shown
                ));
            }
        }
    }
}

/// The last success times the previous metrics file holds for `env` (none when there is none).
fn previous_successes(file: &Path, env: &str) -> BTreeMap<String, f64> {
    std::fs::read_to_string(file).map(|text| metrics::last_successes(&text, env)).unwrap_or_default()
}

/// Writes `text` to `path` as node_exporter's textfile collector requires: into a temporary file
/// in the same directory, then renamed over `path`, so that a scrape never reads part of it. The
/// file is readable by all (the collector runs as another user; metrics hold no secret).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // A name the collector passes over (it reads only `*.prom`) while the file is being written.
    let mut temp = tempfile::Builder::new().prefix(".ddbsync-metrics-").suffix(".tmp").tempfile_in(dir)?;
    temp.write_all(text.as_bytes())?;
    temp.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A Pushgateway: its base URL without credentials, and the Basic credentials its URL held.
#[derive(Debug)]
pub struct Pushgateway {
    base: url::Url,
    authorization: Option<String>,
    /// The URL as messages show it: without the credentials.
    shown: String,
}

impl Pushgateway {
    /// `http(s)://[user:password@]host[:port][/path]`; the credentials become a Basic
    /// `Authorization` header. Refusals never quote the credentials.
    pub fn parse(text: &str) -> Result<Pushgateway, UsageError> {
        let refuse = |why: &str, shown: &str| {
            UsageError(format!(
                "--pushgateway {shown}: {why}; give the Pushgateway's URL, such as http://pushgateway:9091 (user and \
                 password, if it asks for them, as http://user:password@host:9091)"
            ))
        };
        let mut url = url::Url::parse(text).map_err(|e| refuse(&format!("not a URL ({e})"), "(the URL given)"))?;
        let user = percent_decoded(url.username());
        let password = url.password().map(percent_decoded);
        let authorization = (!user.is_empty() || password.is_some()).then(|| {
            let pair = format!("{user}:{}", password.unwrap_or_default());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        let _ = url.set_password(None);
        let _ = url.set_username("");
        let shown = url.to_string();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refuse(&format!("the scheme is {}, not http or https", url.scheme()), &shown));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(refuse("it names no host", &shown));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(refuse("it has a query or a fragment, which the Pushgateway's API does not take", &shown));
        }
        Ok(Pushgateway { base: url, authorization, shown })
    }

    /// The group's URL: `<base>/metrics/job/ddbsync/env/<env>` (the environment in base64 when it
    /// holds a character a path segment cannot, as the Pushgateway's API allows).
    pub fn group_url(&self, env: &str) -> String {
        let plain = !env.is_empty() && env.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let env = if plain {
            format!("env/{env}")
        } else {
            format!("env@base64/{}", base64::engine::general_purpose::URL_SAFE.encode(env))
        };
        format!("{}/metrics/job/{JOB}/{env}", self.base.as_str().trim_end_matches('/'))
    }

    /// Pushes `text` to the environment's group: PUT replaces the group (`replace`), POST replaces
    /// only the metrics it names. Bounded by [`PUSH_TIMEOUT`].
    pub async fn push(&self, env: &str, text: String, replace: bool) -> Result<(), String> {
        self.push_within(env, text, replace, PUSH_TIMEOUT).await
    }

    async fn push_within(&self, env: &str, text: String, replace: bool, limit: Duration) -> Result<(), String> {
        let url = self.group_url(env);
        let sending = async {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(CONNECT_TIMEOUT));
            if self.base.scheme() == "https" {
                http.enforce_http(false);
                let tls = https(http)?;
                send(Client::builder(TokioExecutor::new()).build(tls), self, &url, text, replace).await
            } else {
                send(Client::builder(TokioExecutor::new()).build(http), self, &url, text, replace).await
            }
        };
        match tokio::time::timeout(limit, sending).await {
            Ok(done) => done,
            Err(_) => Err(format!("no answer within {}", humantime::format_duration(limit))),
        }
    }
}

/// The TLS connector: the system's CA certificates, rustls with the crypto provider ddbsync
/// already uses for PostgreSQL.
fn https(http: HttpConnector) -> Result<hyper_rustls::HttpsConnector<HttpConnector>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("no CA certificate found on this system to check the Pushgateway's (install ca-certificates, \
                    or set SSL_CERT_FILE)"
            .into());
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .wrap_connector(http))
}

async fn send<C>(
    client: Client<C, Full<Bytes>>,
    gateway: &Pushgateway,
    url: &str,
    text: String,
    replace: bool,
) -> Result<(), String>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let method = if replace { hyper::Method::PUT } else { hyper::Method::POST };
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    if let Some(authorization) = &gateway.authorization {
        request = request.header(hyper::header::AUTHORIZATION, authorization);
    }
    let request = request.body(Full::new(Bytes::from(text))).map_err(|e| format!("building the request: {e}"))?;
    let answer = client.request(request).await.map_err(|e| chain(&e))?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    // The Pushgateway says why in plain text (an inconsistent metric, a bad label).
    let body = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let why: String = String::from_utf8_lossy(&body).trim().chars().take(300).collect();
    let fix = match status.as_u16() {
        401 | 403 => "; check the user and password in the URL",
        404 => "; check the URL's path (the Pushgateway's own, without /metrics)",
        _ => "",
    };
    Err(format!("it answered {status}{}{fix}", if why.is_empty() { String::new() } else { format!(": {why}") }))
}

/// An error with its causes, as `{:#}` prints an anyhow chain.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_a_header_and_are_never_shown() {
        let g = Pushgateway::parse("https://mon%40ops:s3cr%3At@push.example:9091/base/").unwrap();
        assert_eq!(g.shown, "https://push.example:9091/base/");
        let expected = base64::engine::general_purpose::STANDARD.encode("mon@ops:s3cr:t");
        assert_eq!(g.authorization.as_deref(), Some(format!("Basic {expected}").as_str()));
        assert_eq!(g.group_url("prod"), "https://push.example:9091/base/metrics/job/ddbsync/env/prod");
        assert!(!format!("{g:?}").contains("s3cr"), "not even in Debug: {g:?}");
    }

    #[test]
    fn bad_urls_are_refused_without_their_credentials() {
        for (url, why) in [
            ("ftp://u:topsecret@host/", "the scheme is ftp"),
            ("http://u:topsecret@host:9091/?x=1", "a query"),
            ("not a url topsecret", "not a URL"),
            ("unix:/var/run/push.sock", "the scheme is unix"),
        ] {
            let e = Pushgateway::parse(url).unwrap_err().0;
            assert!(e.contains(why), "{url}: {e}");
            assert!(!e.contains("topsecret"), "{url}: {e}");
            assert!(e.starts_with("--pushgateway "), "{e}");
        }
    }

    #[test]
    fn an_environment_a_path_cannot_hold_is_sent_in_base64() {
        let g = Pushgateway::parse("http://h:9091").unwrap();
        assert_eq!(g.group_url("dev-1.a_b"), "http://h:9091/metrics/job/ddbsync/env/dev-1.a_b");
        let encoded = base64::engine::general_purpose::URL_SAFE.encode("a/b c");
        assert_eq!(g.group_url("a/b c"), format!("http://h:9091/metrics/job/ddbsync/env@base64/{encoded}"));
    }

    #[test]
    fn a_metrics_file_replaces_the_old_one_whole_and_is_readable_by_the_collector() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ddbsync.prom");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[test]
    fn a_metrics_file_in_a_missing_directory_is_refused_before_the_run() {
        let args = MetricsArgs { metrics_file: Some("/no/such/dir/x.prom".into()), ..MetricsArgs::default() };
        let e = Outputs::of(&args).unwrap_err().0;
        assert!(e.contains("/no/such/dir is not a directory"), "{e}");
        let args = MetricsArgs { metrics_file: Some("x.prom".into()), ..MetricsArgs::default() };
        assert!(Outputs::of(&args).is_ok(), "a file in the working directory");
    }

    #[tokio::test]
    async fn a_pushgateway_that_accepts_and_never_answers_is_given_up_on_in_time() {
        // The kernel accepts the connection into the listener's backlog; nothing ever answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let g = Pushgateway::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let started = std::time::Instant::now();
        let e = g.push_within("dev", "x 1\n".into(), true, Duration::from_millis(300)).await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3), "{e}");
        assert_eq!(e, "no answer within 300ms");
        drop(listener);
    }

    #[tokio::test]
    async fn a_pushgateway_that_does_not_listen_is_an_error_in_bounded_time() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let g = Pushgateway::parse(&format!("http://u:pw-XYZ@127.0.0.1:{port}")).unwrap();
        let started = std::time::Instant::now();
        let e = g.push("dev", "x 1\n".into(), true).await.unwrap_err();
        assert!(started.elapsed() < PUSH_TIMEOUT, "{e}");
        assert!(!e.contains("pw-XYZ"), "{e}");
    }
}
