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
use crate::engine::stop::Stop;
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
    /// Checks the flags before anything runs: a metrics file must be a regular file, or not
    /// exist yet in an existing directory, and hold no other environment's metrics; the
    /// Pushgateway URL must be an `http` or `https` URL with a host.
    pub fn of(args: &MetricsArgs, env: &str) -> Result<Outputs, UsageError> {
        let file = match &args.metrics_file {
            Some(file) => {
                let target = metrics_target(file).map_err(UsageError)?;
                // One file per environment: the file is replaced whole, so a second environment
                // writing it would drop the first one's series (its last success times with them).
                let previous = read_previous(&target).map_err(|why| {
                    UsageError(format!(
                        "--metrics-file {}: the file was not read ({why}), and the run would replace it whole; \
                         give a file of its own, or delete that one",
                        file.display()
                    ))
                })?;
                if let Some(text) = previous {
                    // A file of something else (a typo'd path: a profile, another job's metrics) would
                    // be lost: only an empty file or one of ddbsync's is replaced.
                    if !text.trim().is_empty() && !text.contains("ddbsync_") {
                        return Err(UsageError(format!(
                            "--metrics-file {}: the file holds something other than ddbsync's metrics (no \
                             ddbsync_ series), which the run would replace whole; give a file of its own, such as \
                             ddbsync-{env}.prom, or delete that one",
                            file.display()
                        )));
                    }
                    if let Some(other) = metrics::environments(&text).into_iter().find(|e| e != env) {
                        return Err(UsageError(format!(
                            "--metrics-file {}: the file holds the metrics of environment \"{other}\", which this \
                             run of \"{env}\" would replace (the file is rewritten whole); give each environment \
                             its own file, such as ddbsync-{env}.prom, or delete the file",
                            file.display()
                        )));
                    }
                }
                Some(target)
            }
            None => None,
        };
        // An empty DDBSYNC_PUSHGATEWAY is no Pushgateway, as an unset one.
        let push = args.pushgateway.as_deref().filter(|u| !u.is_empty()).map(Pushgateway::parse).transpose()?;
        Ok(Outputs { file, push, emf: args.emf })
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.push.is_none() && !self.emf
    }

    /// Delivers the run's figures everywhere asked; each failure is a warning. `run` comes without
    /// its last success times: they are carried here from the previous metrics file. The run's
    /// outcome is decided by now: a signal during the delivery cuts it short ([`Stop::delivering`])
    /// and the exit code stays the run's.
    pub async fn publish(&self, run: RunFigures, printer: &Printer, stop: &Stop) {
        if let Err(signal) = stop.delivering(run.exit_code, self.deliver(run, printer)).await {
            let push = self.push.as_ref().map(|g| format!(" (the push to --pushgateway {} did not finish)", g.shown));
            printer.warn(format!(
                "{signal}: the metrics' delivery was cut short{}; the run's outcome stands (exit code unchanged)",
                push.unwrap_or_default()
            ));
        }
    }

    async fn deliver(&self, mut run: RunFigures, printer: &Printer) {
        // Checked again: the path may have become something else while the run ran.
        let file = self.file.as_deref().map(|f| (f, metrics_target(f)));
        let previous = match &file {
            Some((_, Ok(target))) => match read_previous(target) {
                Ok(text) => text.map(|t| metrics::last_successes(&t, &run.env)).unwrap_or_default(),
                Err(why) => {
                    printer.warn(format!(
                        "--metrics-file {}: the previous metrics were not read ({why}); the last success times \
                         start again from this run",
                        target.display()
                    ));
                    BTreeMap::new()
                }
            },
            _ => BTreeMap::new(),
        };
        run.last_success = metrics::carried(previous, &run);
        if self.emf {
            let ms = (run.finished_at * 1000.0).round() as i64;
            for line in metrics::emf(&run, ms) {
                printer.metrics_line(&line);
            }
        }
        let text = metrics::prometheus(&run);
        if let Some((file, target)) = file {
            let written = target.and_then(|t| write_atomically(&t, &text).map_err(|e| e.to_string()));
            if let Err(e) = written {
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

/// The largest previous metrics file read for its last success times: a file ddbsync wrote is a
/// few kilobytes a table; anything much larger is not one, and is not read into memory.
pub const PREVIOUS_LIMIT: u64 = 16 * 1024 * 1024;

/// The file `--metrics-file` names, checked: a regular file, or a path where none exists yet in
/// an existing directory. A symbolic link is followed: the file it names is the one written
/// (atomically, in that file's own directory); a link to nothing is refused. Anything else (a
/// device such as /dev/null, a FIFO, a socket, a directory) is refused, as replacing the file by
/// a rename would replace it.
pub fn metrics_target(file: &Path) -> Result<PathBuf, String> {
    replaced_file(
        "--metrics-file",
        file,
        " (a *.prom file in the directory node_exporter's --collector.textfile.directory reads, for the textfile \
         collector)",
    )
}

/// The file an output option (`flag`) names, when the file is written whole and renamed over it
/// (`--metrics-file`, `--id-map`, `plan -o`), checked as [`metrics_target`] says: renaming over a
/// device such as /dev/null would replace the device itself. `hint` ends the message's fix.
pub fn replaced_file(flag: &str, file: &Path, hint: &str) -> Result<PathBuf, String> {
    let refuse = |why: String| {
        format!(
            "{flag} {}: {why}; give the path of a regular file or of one that does not exist yet{hint}",
            file.display()
        )
    };
    match std::fs::symlink_metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            // `dir/name/` names a directory that does not exist, not a file (Path drops the slash).
            if file.as_os_str().as_encoded_bytes().ends_with(b"/") {
                return Err(refuse(format!("ends in /, which names a directory: {} is not one", file.display())));
            }
            if !dir.is_dir() || file.file_name().is_none() {
                return Err(refuse(format!("{} is not a directory", dir.display())));
            }
            Ok(file.to_path_buf())
        }
        Err(e) => Err(refuse(format!("cannot be examined: {e}"))),
        Ok(meta) if meta.file_type().is_symlink() => match std::fs::metadata(file) {
            Ok(target) if target.is_file() => {
                std::fs::canonicalize(file).map_err(|e| refuse(format!("cannot be resolved: {e}")))
            }
            Ok(target) => Err(refuse(format!("is a symbolic link to {}, not to a regular file", kind(&target)))),
            Err(e) => Err(refuse(format!("is a symbolic link that leads nowhere ({e})"))),
        },
        Ok(meta) if meta.is_file() => Ok(file.to_path_buf()),
        Ok(meta) => Err(refuse(format!(
            "is {}, not a regular file: the file is replaced whole (a new file renamed over it), which would replace \
             it",
            kind(&meta)
        ))),
    }
}

/// What a path that is not a regular file is, as a message says it.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_char_device() {
            return "a character device";
        } else if t.is_block_device() {
            return "a block device";
        } else if t.is_fifo() {
            return "a FIFO (named pipe)";
        } else if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// The previous metrics file's text, when it is a regular file of at most [`PREVIOUS_LIMIT`]
/// bytes (none when there is no file). Bytes that are not UTF-8 are replaced, so that the lines
/// around them are still read.
fn read_previous(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let opened = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta = opened.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err(format!("it is {}, not a regular file", kind(&meta)));
    }
    let mut bytes = Vec::new();
    opened.take(PREVIOUS_LIMIT + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > PREVIOUS_LIMIT {
        return Err(format!("it is larger than {} MiB, which no file ddbsync writes is", PREVIOUS_LIMIT >> 20));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
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
    /// `Authorization` header. Refusals never quote the credentials, whatever the text.
    pub fn parse(text: &str) -> Result<Pushgateway, UsageError> {
        let refuse = |why: &str, shown: &str| {
            UsageError(format!(
                "--pushgateway {shown}: {why}; give the Pushgateway's URL, such as http://pushgateway:9091 (user and \
                 password, if it asks for them, as http://user:password@host:9091)"
            ))
        };
        // Before any parse: without `://` the URL parser takes `user:password@host` for a scheme
        // (`user`) and a path, and would show the password as part of either.
        let shown = without_userinfo(text);
        if !text.contains("://") {
            return Err(refuse("it has no http:// or https:// (add http://, or https:// for TLS)", &shown));
        }
        let mut url = url::Url::parse(text).map_err(|e| refuse(&format!("not a URL ({e})"), &shown))?;
        let user = percent_decoded(url.username());
        let password = url.password().map(percent_decoded);
        let authorization = (!user.is_empty() || password.is_some()).then(|| {
            let pair = format!("{user}:{}", password.unwrap_or_default());
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        let _ = url.set_password(None);
        let _ = url.set_username("");
        // Shown without a query or fragment, which may hold a token (and are refused below).
        let shown = without_userinfo(url.as_str());
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

    /// The group's URL: `<base>/metrics/job/ddbsync/env/<env>` (the environment in base64 when a
    /// path segment cannot hold it as it is, as the Pushgateway's API allows: a character outside
    /// `A-Za-z0-9-_.`, or `.` and `..`, which HTTP clients and servers resolve as "this" and "the
    /// parent" directory).
    pub fn group_url(&self, env: &str) -> String {
        let plain =
            !matches!(env, "" | "." | "..") && env.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
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
    let answer = client.request(request).await.map_err(|e| {
        let text = chain(&e);
        // rustls's words when the answer to its hello is not TLS (a plain-HTTP server).
        if text.contains("InvalidContentType") || text.contains("corrupt message") {
            format!("{text}; the server does not speak TLS at that address: use http://")
        } else {
            text
        }
    })?;
    let status = answer.status();
    if status.is_success() {
        return Ok(());
    }
    let location =
        answer.headers().get(hyper::header::LOCATION).map(|l| without_userinfo(&String::from_utf8_lossy(l.as_bytes())));
    // The Pushgateway says why in plain text (an inconsistent metric, a bad label).
    let body = answer.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let why: String = shown_text(String::from_utf8_lossy(&body).trim()).chars().take(300).collect();
    let fix = match status.as_u16() {
        300..=399 => format!(
            " (a redirect{}, which a push does not follow); give the Pushgateway's own URL",
            location.map(|l| format!(" to {l}")).unwrap_or_default()
        ),
        401 | 403 => "; check the user and password in the URL".into(),
        404 => "; check the URL's path (the Pushgateway's own, without /metrics)".into(),
        _ => String::new(),
    };
    Err(format!("it answered {status}{}{fix}", if why.is_empty() { String::new() } else { format!(": {why}") }))
}

/// A server's text as a message may show it: control characters (a terminal's escape sequences,
/// line breaks) escaped, so that it cannot rewrite the screen or forge log lines.
fn shown_text(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
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

/// The URL as a message may show it: everything up to the last `@` after the scheme (the user
/// and password, wherever a malformed URL puts them) left out, whether the text parses or not; a
/// text that does not look like an address at all is not quoted.
fn without_userinfo(text: &str) -> String {
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), text),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    // A query or a fragment may carry a token: never shown.
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    // Without a scheme or an `@`, `user:password` reads as a host and a port that is not a number.
    let port = |after: &str| after.split('/').next().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if scheme.is_empty() && rest.split_once(':').is_some_and(|(_, after)| !port(after)) {
        return "(the URL given)".into();
    }
    let shown = format!("{scheme}{rest}");
    if shown.is_empty() || shown.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "(the URL given)".into()
    } else {
        shown
    }
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
            ("not a url topsecret", "no http://"),
            ("unix:/var/run/push.sock", "no http://"),
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
        let e = Outputs::of(&args, "dev").unwrap_err().0;
        assert!(e.contains("/no/such/dir is not a directory"), "{e}");
        let args = MetricsArgs { metrics_file: Some("x.prom".into()), ..MetricsArgs::default() };
        assert!(Outputs::of(&args, "dev").is_ok(), "a file in the working directory");
    }

    fn refusal(path: &Path) -> String {
        let args = MetricsArgs { metrics_file: Some(path.into()), ..MetricsArgs::default() };
        Outputs::of(&args, "dev").unwrap_err().0
    }

    #[cfg(unix)]
    #[test]
    fn a_metrics_file_that_is_not_a_regular_file_is_refused_before_the_run() {
        let e = refusal(Path::new("/dev/null"));
        assert!(e.starts_with("--metrics-file /dev/null: is a character device"), "{e}");
        assert!(e.contains("give the path of a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.prom");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let e = refusal(&fifo);
        assert!(e.contains("is a FIFO (named pipe), not a regular file"), "{e}");
        assert!(refusal(dir.path()).contains("is a directory, not a regular file"));
        let dangling = dir.path().join("dangling.prom");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(refusal(&dangling).contains("is a symbolic link that leads nowhere"));
        let to_device = dir.path().join("null.prom");
        std::os::unix::fs::symlink("/dev/null", &to_device).unwrap();
        assert!(refusal(&to_device).contains("is a symbolic link to a character device"));
        // Nothing was replaced.
        assert!(std::fs::symlink_metadata(&to_device).unwrap().file_type().is_symlink());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symbolic_link_is_followed_and_the_file_it_names_is_written_in_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        let real_dir = dir.path().join("real");
        std::fs::create_dir(&real_dir).unwrap();
        let real = real_dir.join("ddbsync.prom");
        std::fs::write(&real, "ddbsync_last_success_timestamp_seconds{env=\"dev\",table=\"t\"} 1700000000\n").unwrap();
        let link = dir.path().join("link.prom");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let args = MetricsArgs { metrics_file: Some(link.clone()), ..MetricsArgs::default() };
        let outputs = Outputs::of(&args, "dev").unwrap();
        let mut run = RunFigures::new("dev", false, None, 1);
        run.finished_at = 1_800_000_000.0;
        outputs.publish(run, &Printer::new(false, true, false), &Stop::never()).await;
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link stays a link");
        let text = std::fs::read_to_string(&real).unwrap();
        assert!(text.contains("ddbsync_run_exit_code{env=\"dev\"} 1"), "{text}");
        assert_eq!(metrics::last_successes(&text, "dev").get("t"), Some(&1_700_000_000.0), "carried through the link");
    }

    #[test]
    fn the_previous_file_is_read_only_when_bounded_and_whatever_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ddbsync.prom");
        let mut bytes = b"# garbage \xff\xfe\n".to_vec();
        bytes.extend_from_slice(b"ddbsync_last_success_timestamp_seconds{env=\"dev\",table=\"t\"} 1700000000\n");
        std::fs::write(&path, &bytes).unwrap();
        let text = read_previous(&path).unwrap().unwrap();
        assert_eq!(
            metrics::last_successes(&text, "dev").get("t"),
            Some(&1_700_000_000.0),
            "not dropped for one bad byte"
        );
        assert_eq!(read_previous(&dir.path().join("none.prom")).unwrap(), None);
        let big = std::fs::File::create(&path).unwrap();
        big.set_len(PREVIOUS_LIMIT + 1).unwrap();
        let e = read_previous(&path).unwrap_err();
        assert!(e.contains("larger than 16 MiB"), "{e}");
    }

    #[test]
    fn a_metrics_file_holding_another_environment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ddbsync.prom");
        std::fs::write(&path, "ddbsync_run_exit_code{env=\"prod\"} 0\n").unwrap();
        let e = refusal(&path);
        assert!(e.contains("holds the metrics of environment \"prod\""), "{e}");
        assert!(e.contains("ddbsync-dev.prom"), "{e}");
        std::fs::write(&path, "ddbsync_run_exit_code{env=\"dev\"} 0\n").unwrap();
        let args = MetricsArgs { metrics_file: Some(path.clone()), ..MetricsArgs::default() };
        assert!(Outputs::of(&args, "dev").is_ok(), "its own environment's file");
    }

    #[test]
    fn a_file_that_is_not_ddbsyncs_metrics_is_refused_and_an_empty_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("victim.toml");
        let outputs = |path: &Path| {
            let args = MetricsArgs { metrics_file: Some(path.to_path_buf()), ..MetricsArgs::default() };
            Outputs::of(&args, "dev").map(|_| ()).map_err(|e| e.0)
        };
        std::fs::write(&path, "[source]\nhost = \"db\"\n").unwrap();
        let e = outputs(&path).unwrap_err();
        assert!(e.contains("holds something other than ddbsync's metrics"), "{e}");
        std::fs::write(&path, "other_job_last_run 1700000000\n").unwrap();
        assert!(outputs(&path).is_err(), "another job's textfile metrics");
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(outputs(&path), Ok(()), "an empty file is replaced");
        let big = std::fs::File::create(&path).unwrap();
        big.set_len(PREVIOUS_LIMIT + 1).unwrap();
        let e = outputs(&path).unwrap_err();
        assert!(e.contains("larger than 16 MiB") && e.contains("would replace it whole"), "{e}");
        let e = outputs(&dir.path().join("new.prom/")).unwrap_err();
        assert!(e.contains("ends in /"), "{e}");
    }

    #[test]
    fn a_url_without_a_scheme_is_told_so_and_never_shows_its_password() {
        for (url, shown) in [
            ("bob:hunter2@127.0.0.1:9091", "--pushgateway 127.0.0.1:9091: it has no http://"),
            ("bob:hunter2@host/path", "--pushgateway host/path: it has no http://"),
            ("http//bob:hunter2@host", "--pushgateway host: it has no http://"),
            ("http://bob:hunter2@[::1", "--pushgateway http://[::1: not a URL"),
            ("ht tp://bob:hunter2@h", "--pushgateway (the URL given): not a URL"),
            ("bob:hunter2", "--pushgateway (the URL given): it has no http://"),
            ("http://h:9091/?bob=hunter2", "--pushgateway http://h:9091/: "),
            ("http://h:9091/#hunter2bob", "--pushgateway http://h:9091/: "),
        ] {
            let e = Pushgateway::parse(url).unwrap_err().0;
            assert!(e.starts_with(shown), "{url}: {e}");
            assert!(!e.contains("hunter2") && !e.contains("bob"), "{url}: {e}");
        }
        let e = Pushgateway::parse("pushgateway:9091").unwrap_err().0;
        assert!(e.contains("add http://"), "{e}");
    }

    #[test]
    fn dot_and_dot_dot_are_sent_in_base64() {
        let g = Pushgateway::parse("http://h:9091").unwrap();
        for env in [".", ".."] {
            let encoded = base64::engine::general_purpose::URL_SAFE.encode(env);
            assert_eq!(g.group_url(env), format!("http://h:9091/metrics/job/ddbsync/env@base64/{encoded}"));
        }
        assert_eq!(g.group_url("a.b"), "http://h:9091/metrics/job/ddbsync/env/a.b");
    }

    /// A server that answers every connection with `answer`, as it is.
    fn answering(answer: &'static str) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut buf = [0u8; 4096];
                let _ = std::io::Read::read(&mut stream, &mut buf);
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        port
    }

    #[tokio::test]
    async fn a_redirect_and_a_control_character_laden_body_are_told_plainly() {
        let port = answering(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: http://elsewhere:9091/\r\nContent-Length: 9\r\n\r\ngo \x1b[2Jaway",
        );
        let g = Pushgateway::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let e = g.push("dev", "x 1\n".into(), true).await.unwrap_err();
        assert!(e.starts_with("it answered 301 Moved Permanently"), "{e}");
        assert!(e.contains("a redirect to http://elsewhere:9091/"), "{e}");
        assert!(e.contains("give the Pushgateway's own URL"), "{e}");
        assert!(!e.contains('\x1b') && e.contains("\\u{1b}[2J"), "{e}");
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_says_to_use_http() {
        let port = answering("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        let g = Pushgateway::parse(&format!("https://127.0.0.1:{port}")).unwrap();
        let e = g.push("dev", "x 1\n".into(), true).await.unwrap_err();
        assert!(e.contains("the server does not speak TLS at that address: use http://"), "{e}");
    }

    #[tokio::test]
    async fn a_signal_during_the_push_cuts_it_short_at_once() {
        // The kernel accepts the connection into the listener's backlog; nothing ever answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let g = Pushgateway::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let (stop, signal) = Stop::for_test();
        let started = std::time::Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            signal("SIGTERM");
        });
        let cut = stop.delivering(0, g.push("dev", "x 1\n".into(), true)).await;
        assert_eq!(cut.unwrap_err(), "SIGTERM");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        drop(listener);
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
