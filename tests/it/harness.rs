//! The shared test harness: real servers on loopback, started once per test binary, and one
//! [`Ctx`] per test with its own database and its own table prefix.
//!
//! PostgreSQL is started with `scripts/pg.sh` (the demo uses the same script). The DynamoDB-compatible
//! server is dynoxide or dynalite, chosen by `DDBSYNC_TEST_SERVER` (default dynoxide), found under
//! `DDBSYNC_TOOLS` (default `~/.cache/ddbsync-tools`, where `scripts/setup.sh` installs them). A
//! missing server fails the tests: it never skips them. Every server is stopped by a watchdog
//! process when the test binary exits.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use crate::proxy::Proxy;

pub type Item = HashMap<String, AttributeValue>;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn tools() -> PathBuf {
    std::env::var_os("DDBSYNC_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/ddbsync-tools"))
}

/// A fresh name: each `RandomState` has its own random keys, so hashing nothing is already random.
pub fn random_name(prefix: &str) -> String {
    let h = std::collections::hash_map::RandomState::new().build_hasher();
    format!("{prefix}{:012x}", h.finish() & 0xffff_ffff_ffff)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not open port {port} within 60s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` in a shell that ends it (and runs `cleanup`) once this test process is gone.
#[expect(clippy::zombie_processes, reason = "the watchdog must outlive the test process, which never waits for it")]
fn watched(command: &str, cleanup: &str) {
    let script = format!(
        "{command} & child=$!; while kill -0 {pid} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done; kill $child 2>/dev/null; {cleanup}",
        pid = std::process::id()
    );
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a watchdog shell");
}

/// `psql` on the test server's database `db`, stopping at the first error.
fn psql(db: &str) -> Command {
    psql_on(servers().pg_port, db)
}

/// The `psql` command line for database `db`, for a session a test runs beside ddbsync.
pub fn psql_command(db: &str) -> Command {
    psql(db)
}

fn psql_on(port: u16, db: &str) -> Command {
    let mut cmd = Command::new("psql");
    cmd.args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1"])
        .arg("-p")
        .arg(port.to_string())
        .arg("-d")
        .arg(db)
        .env("PGSSLMODE", "disable");
    cmd
}

pub struct Servers {
    pub pg_port: u16,
    pub dynamo_url: String,
    /// The CA that signed PostgreSQL's certificate (for `localhost` only).
    pub pg_ca: PathBuf,
}

/// Roles of the test PostgreSQL server: `tls_only` may connect only over TLS, `plain_only` only
/// without, and `pw_user` only with its password, [`PG_PASSWORD`].
const HBA: &str = "hostssl all tls_only 127.0.0.1/32 trust
hostnossl all tls_only 127.0.0.1/32 reject
hostnossl all plain_only 127.0.0.1/32 trust
hostssl all plain_only 127.0.0.1/32 reject
host all pw_user 127.0.0.1/32 scram-sha-256
";

/// A password nobody would write by chance: tests look for it in every output.
pub const PG_PASSWORD: &str = "Pw-sEcReT-7f3a9c";

/// The DynamoDB-compatible server under test: `dynoxide` (the default) or `dynalite`.
pub fn server_kind() -> String {
    std::env::var("DDBSYNC_TEST_SERVER").unwrap_or_else(|_| "dynoxide".into())
}

pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let pg_port = free_port();
        let dir = std::env::temp_dir().join(random_name("ddbsync-pg-"));
        let pg = repo().join("scripts/pg.sh");
        let status = Command::new("bash")
            .arg(&pg)
            .arg("start")
            .arg(&dir)
            .arg(pg_port.to_string())
            .arg("tls")
            .status()
            .expect("run scripts/pg.sh");
        assert!(status.success(), "PostgreSQL did not start (scripts/pg.sh start): run scripts/setup.sh");
        let hba = dir.join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        std::fs::write(&hba, format!("{HBA}{rules}")).expect("write pg_hba.conf");
        // `exec`: the watchdog's kill then ends the sleep itself, which would otherwise outlive the
        // tests holding every descriptor they inherited (a build lock among them).
        watched(
            "exec sleep infinity",
            &format!("bash {} stop {} ; rm -rf {}", pg.display(), dir.display(), dir.display()),
        );

        let kind = server_kind();
        let port = free_port();
        let command = match kind.as_str() {
            "dynoxide" => format!("{} serve -p {port} --log quiet", tools().join("dynoxide/bin/dynoxide").display()),
            "dynalite" => format!(
                "{} --port {port} --createTableMs 20 --deleteTableMs 20",
                tools().join("dynalite/node_modules/.bin/dynalite").display()
            ),
            other => panic!("DDBSYNC_TEST_SERVER={other}: use dynoxide or dynalite"),
        };
        let binary = command.split(' ').next().unwrap();
        assert!(Path::new(binary).exists(), "{kind} is not installed at {binary}: run scripts/setup.sh");
        watched(&command, "");
        wait_for_port(port, &kind);
        let servers =
            Servers { pg_port, dynamo_url: format!("http://127.0.0.1:{port}"), pg_ca: dir.join("tls/ca.crt") };
        let roles = format!(
            "CREATE ROLE tls_only LOGIN SUPERUSER; CREATE ROLE plain_only LOGIN SUPERUSER; \
             CREATE ROLE pw_user LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'; SELECT pg_reload_conf();"
        );
        let out = psql_on(pg_port, "postgres").arg("-c").arg(roles).output().expect("run psql");
        assert!(out.status.success(), "creating test roles: {}", String::from_utf8_lossy(&out.stderr));
        servers
    })
}

/// One test's world: a fresh database with the PNI sample, a random table prefix, profiles in a
/// temporary directory, and clients to inspect both sides.
pub struct Ctx {
    pub db: String,
    pub prefix: String,
    pub envs: tempfile::TempDir,
    pub dynamo: Client,
    pub proxy: Proxy,
}

impl Ctx {
    /// A test world with the PNI sample at this scale (lessons).
    pub async fn new(scale: u32) -> Ctx {
        let db = random_name("t");
        Self::psql("postgres", &[&format!("CREATE DATABASE {db}")]);
        let out = psql(&db)
            .arg("-v")
            .arg(format!("scale={scale}"))
            .arg("-f")
            .arg(repo().join("scripts/pni/schema.sql"))
            .arg("-f")
            .arg(repo().join("scripts/pni/load.sql"))
            .output()
            .expect("run psql");
        assert!(out.status.success(), "loading PNI data: {}", String::from_utf8_lossy(&out.stderr));
        Self::with_db(db)
    }

    /// A test world with the Chinook the tests generate ([`crate::chinook_data`]) in both its
    /// schemas: this test's PostgreSQL database, and the SQLite file [`Ctx::sqlite_file`]. Profile
    /// `local` syncs the database with `envs/mappings/chinook.toml` into this test's prefix; profile
    /// `lite` syncs the file with `envs/mappings/chinook-sqlite.toml` into [`Ctx::lite_prefix`].
    pub async fn chinook_generated() -> Ctx {
        let db = random_name("t");
        Self::psql("postgres", &[&format!("CREATE DATABASE {db}")]);
        let ctx = Self::with_db(db);
        let data = crate::chinook_data::generate();
        let inserts = ctx.envs.path().join("chinook-data.sql");
        std::fs::write(&inserts, data.postgres_inserts()).unwrap();
        let out = psql(&ctx.db)
            .arg("-f")
            .arg(repo().join("tests/data/chinook/postgres.sql"))
            .arg("-f")
            .arg(&inserts)
            .output()
            .expect("run psql");
        assert!(out.status.success(), "loading the generated Chinook: {}", String::from_utf8_lossy(&out.stderr));
        data.write_sqlite(&ctx.sqlite_file());
        let mappings = repo().join("envs/mappings/chinook.toml");
        ctx.write_profile_with("local", &Profile { mappings: Some(&mappings), ..Profile::default() });
        let lite = repo().join("envs/mappings/chinook-sqlite.toml");
        ctx.write_sqlite_profile("lite", &lite, "chinook.sqlite", &ctx.lite_prefix(), "");
        ctx
    }

    /// The generated Chinook's SQLite file, in the profiles directory.
    pub fn sqlite_file(&self) -> PathBuf {
        self.envs.path().join("chinook.sqlite")
    }

    /// The table prefix of profile `lite`: the SQLite-fed tables beside the PostgreSQL-fed ones.
    pub fn lite_prefix(&self) -> String {
        format!("{}lite-", self.prefix)
    }

    /// Writes `envs/<env>.toml` reading the SQLite file `path` (relative to the profile) with the
    /// mappings file `mappings`, into tables named with `prefix`, with `extra` lines in `[sync]`.
    pub fn write_sqlite_profile(&self, env: &str, mappings: &Path, path: &str, prefix: &str, extra: &str) {
        let source = format!("kind = \"sqlite\"\npath = \"{path}\"");
        self.write_env(env, (mappings, prefix), ("", &source), extra);
    }

    /// A mappings file as a profile may name it: inside the profiles directory, where ddbsync reads
    /// them only (one from elsewhere, the repository's, is copied in).
    fn mappings_in_envs(&self, mappings: &Path) -> PathBuf {
        if mappings.starts_with(self.envs.path()) {
            return mappings.to_path_buf();
        }
        let copy = self.envs.path().join("mappings").join(mappings.file_name().unwrap());
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(mappings, &copy).unwrap_or_else(|e| panic!("copying {}: {e}", mappings.display()));
        copy
    }

    /// Writes `envs/<env>.toml`: the mappings file and table prefix, lines at the top, the
    /// `[source]` section's lines, and lines of `[sync]`; the target is this test's server.
    fn write_env(&self, env: &str, (mappings, prefix): (&Path, &str), (top, source): (&str, &str), sync: &str) {
        self.write_env_at(self.envs.path(), &self.proxy.url, env, (mappings, prefix), (top, source), sync);
    }

    /// [`Ctx::write_env`] into the profiles directory `dir`, DynamoDB reached at `url`.
    fn write_env_at(
        &self,
        dir: &Path,
        url: &str,
        env: &str,
        (mappings, prefix): (&Path, &str),
        (top, source): (&str, &str),
        sync: &str,
    ) {
        let mappings = match dir == self.envs.path() {
            true => self.mappings_in_envs(mappings),
            false => {
                let copy = dir.join("mappings").join(mappings.file_name().unwrap());
                std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
                std::fs::copy(mappings, &copy).unwrap();
                copy
            }
        };
        let text = format!(
            r#"description = "integration test"
mappings = "{mappings}"
table_prefix = "{prefix}"
{top}

[source]
{source}

[target]
region = "us-east-1"
endpoint_url = "{url}"

[sync]
scan_segments = 3
{sync}
"#,
            mappings = mappings.display(),
        );
        std::fs::write(dir.join(format!("{env}.toml")), text).unwrap();
    }

    /// A profiles directory of its own holding profile `local` as [`Ctx::write_profile_with`]
    /// writes it, but reaching DynamoDB through `proxy` and naming tables with `prefix`: one
    /// process of a sharded run, whose calls its own proxy records.
    pub fn envs_via(&self, proxy: &Proxy, prefix: &str, mappings: &Path) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let extra = "host = \"127.0.0.1\"\nuser = \"postgres\"\nsslmode = \"disable\"";
        let source =
            format!("port = {}\ndbname = \"{}\"\nconnect_timeout_secs = 5\n{extra}", servers().pg_port, self.db);
        self.write_env_at(dir.path(), &proxy.url, "local", (mappings, prefix), ("", &source), "");
        dir
    }

    /// The ddbsync command line with the profiles directory `envs`.
    pub fn command_in(&self, envs: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddbsync"));
        cmd.arg("--envs-dir")
            .arg(envs)
            .args(args)
            .current_dir(envs)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLROOTCERT")
            .env_remove("DDBSYNC_RUN_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("AWS_BATCH_JOB_ARRAY_INDEX")
            .env_remove("AWS_BATCH_JOB_ID")
            .env("HOME", envs);
        cmd
    }

    fn with_db(db: String) -> Ctx {
        let servers = servers();
        let ctx_prefix = format!("{}-", random_name("t"));
        let proxy = Proxy::start(&servers.dynamo_url);
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
            .endpoint_url(&servers.dynamo_url)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests"))
            .build();
        let ctx =
            Ctx { db, prefix: ctx_prefix, envs: tempfile::tempdir().unwrap(), dynamo: Client::from_conf(conf), proxy };
        ctx.write_profile("local", "");
        ctx
    }

    /// Writes `envs/<env>.toml` for this test's servers, database and prefix, plus `extra` lines
    /// in its `[sync]` section.
    pub fn write_profile(&self, env: &str, extra: &str) {
        self.write_profile_with(env, &Profile { sync: extra, ..Profile::default() });
    }

    /// Writes a mappings file under the profiles directory; returns its path.
    pub fn write_mappings(&self, name: &str, text: &str) -> PathBuf {
        std::fs::create_dir_all(self.envs.path().join("mappings")).unwrap();
        let path = self.envs.path().join("mappings").join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the mappings file `name` and the `local` profile that uses it.
    pub fn use_mappings(&self, name: &str, text: &str) -> PathBuf {
        let path = self.write_mappings(name, text);
        self.write_profile_with("local", &Profile { mappings: Some(&path), ..Profile::default() });
        path
    }

    pub fn write_profile_with(&self, env: &str, p: &Profile) {
        let mappings = p.mappings.map(Path::to_path_buf).unwrap_or_else(|| repo().join("envs/mappings/pni.toml"));
        let extra = p.source.unwrap_or("host = \"127.0.0.1\"\nuser = \"postgres\"\nsslmode = \"disable\"");
        let source =
            format!("port = {}\ndbname = \"{}\"\nconnect_timeout_secs = 5\n{extra}", servers().pg_port, self.db);
        self.write_env(env, (&mappings, &self.prefix), (p.top, &source), p.sync);
    }

    pub fn table(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Runs the ddbsync binary against this test's profiles, in the profiles directory (where
    /// rejects and backups go by default).
    pub fn ddbsync(&self, args: &[&str]) -> Run {
        let started = Instant::now();
        let output = self.command(args).stdin(Stdio::null()).output().expect("run ddbsync");
        Run { output, elapsed: started.elapsed() }
    }

    /// The ddbsync command line, ready to run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ddbsync"));
        cmd.arg("--envs-dir")
            .arg(self.envs.path())
            .args(args)
            .current_dir(self.envs.path())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("RUST_LOG")
            .env_remove("PGPASSWORD")
            .env_remove("PGSSLROOTCERT")
            .env("HOME", self.envs.path());
        cmd
    }

    /// `ddbsync --json sync local <args>`, which must succeed; returns the report.
    pub fn sync(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json", "sync", "local"];
        all.extend_from_slice(args);
        let run = self.ddbsync(&all);
        assert_eq!(run.code(), 0, "ddbsync {all:?} failed:\n{}", run.stderr());
        serde_json::from_str(&run.stdout()).expect("a JSON report")
    }

    pub fn psql(db: &str, statements: &[&str]) {
        let mut cmd = psql(db);
        for statement in statements {
            cmd.arg("-c").arg(statement);
        }
        let out = cmd.output().expect("run psql");
        assert!(out.status.success(), "psql {statements:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    pub fn sql(&self, statements: &[&str]) {
        Self::psql(&self.db, statements);
    }

    /// One value per row of a query, as text.
    pub fn query(&self, sql: &str) -> Vec<String> {
        let out = psql(&self.db).args(["-A", "-t", "-c", sql]).output().expect("run psql");
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect()
    }

    /// Every item of a table, read back with a consistent Scan.
    pub async fn scan(&self, name: &str) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamo
                .scan()
                .table_name(self.table(name))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap_or_else(|e| panic!("scan {name}: {e:?}"));
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key.filter(|k| !k.is_empty());
            if start.is_none() {
                return items;
            }
        }
    }

    /// Key (as text) → stored content hash, for one table.
    pub async fn hashes(&self, name: &str, key: &str) -> HashMap<String, String> {
        self.scan(name).await.into_iter().map(|item| (text(&item[key]), text(&item["_ddbsync_hash"]))).collect()
    }

    /// Writes the lease of a live run of `environment` on another machine (`batch-7`, pid 4242) on
    /// table `name`, expiring in an hour, as the engine writes one; `lease_secs` is the lease's own
    /// length, which a forced takeover waits out (without it, the taker's profile gives it).
    pub async fn hold_lease(&self, name: &str, environment: &str, lease_secs: Option<u64>) {
        let now = chrono::Utc::now();
        let mut lease: Item = [
            ("pk", "LOCK".to_string()),
            ("sk", format!("TABLE#{}", self.table(name))),
            ("run_id", "batch-7:4242:1".into()),
            ("environment", environment.into()),
            ("host", "batch-7".into()),
            ("host_id", "another-machine/pid:[1]".into()),
            ("started_at", now.to_rfc3339()),
            ("expires_at", (now + chrono::Duration::hours(1)).to_rfc3339()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), AttributeValue::S(v)))
        .collect();
        lease.insert("pid".into(), AttributeValue::N("4242".into()));
        if let Some(secs) = lease_secs {
            lease.insert("lease_secs".into(), AttributeValue::N(secs.to_string()));
        }
        self.dynamo.put_item().table_name(self.table("cache-metadata")).set_item(Some(lease)).send().await.unwrap();
    }

    /// The lease items of the run lock in the metadata table (`pk = LOCK`), whatever they lock.
    pub async fn leases(&self) -> Vec<Item> {
        let out = self
            .dynamo
            .query()
            .table_name(self.table("cache-metadata"))
            .key_condition_expression("pk = :lock")
            .expression_attribute_values(":lock", AttributeValue::S("LOCK".into()))
            .consistent_read(true)
            .send()
            .await;
        out.map(|o| o.items.unwrap_or_default()).unwrap_or_default()
    }

    /// Creates an on-demand table of this test's prefix keyed by the string `key`, as a tool other
    /// than ddbsync would, and waits until it is ACTIVE (dynalite creates tables asynchronously).
    pub async fn create_table(&self, name: &str, key: &str) {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let table = self.table(name);
        self.dynamo
            .create_table()
            .table_name(&table)
            .key_schema(KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build().unwrap())
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .unwrap(),
            )
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("creating {table}: {e:?}"));
        for _ in 0..300 {
            let described = self.dynamo.describe_table().table_name(&table).send().await.unwrap();
            if described.table().and_then(|t| t.table_status()).map(|s| s.as_str()) == Some("ACTIVE") {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{table} did not become ACTIVE within 15 s");
    }

    pub async fn table_exists(&self, name: &str) -> bool {
        self.dynamo.describe_table().table_name(self.table(name)).send().await.is_ok()
    }
}

/// What a test profile differs in; [`Ctx::write_profile_with`].
#[derive(Default)]
pub struct Profile<'a> {
    /// Lines at the top of the file (`protected = true`).
    pub top: &'a str,
    /// The `[source]` lines after port, dbname and timeout; default host 127.0.0.1, user postgres, no TLS.
    pub source: Option<&'a str>,
    /// Lines of the `[sync]` section.
    pub sync: &'a str,
    /// A mappings file other than PNI's.
    pub mappings: Option<&'a Path>,
}

/// A scalar attribute as text (`S`, `N`, `BOOL`).
pub fn text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

pub struct Run {
    pub output: Output,
    pub elapsed: Duration,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
}

/// A table's figure from a JSON report: `count(&report, "pni-lessons", "created")`.
pub fn figure(report: &serde_json::Value, table: &str, field: &str) -> f64 {
    let tables = report["tables"].as_array().expect("tables");
    let t = tables.iter().find(|t| t["table"] == table).unwrap_or_else(|| panic!("no table {table} in {report}"));
    t[field].as_f64().unwrap_or_else(|| panic!("no {field} for {table}"))
}

/// Sends a signal (`TERM`, `INT`, `STOP`, `CONT`) to a child process.
pub fn signal(child: &std::process::Child, name: &str) {
    let status = std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.unwrap().success(), "kill -{name}");
}

/// Waits for a child with a bound; its exit code, output and how long it took after `since`.
pub fn finish(child: std::process::Child, since: Instant, limit: Duration) -> (i32, String, String, Duration) {
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    while !waiter.is_finished() {
        if since.elapsed() > limit {
            let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
            let out = waiter.join().unwrap();
            panic!("ddbsync did not end within {limit:?}: {}", text(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = waiter.join().unwrap();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr), since.elapsed())
}

/// A Prometheus Pushgateway (Debian's `prometheus-pushgateway`, which `scripts/setup.sh` installs)
/// of the calling test's own, on a loopback port, keeping nothing on disk; its base URL. A missing
/// binary fails the test.
pub fn pushgateway() -> String {
    let binary = std::env::var_os("DDBSYNC_PUSHGATEWAY_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/prometheus-pushgateway"), PathBuf::from);
    assert!(binary.exists(), "the Pushgateway is not installed at {}: run scripts/setup.sh", binary.display());
    let port = free_port();
    // Debian's build persists to /var/lib/prometheus/pushgateway.data unless told otherwise: every
    // instance would start with the groups of the ones before it. An empty path keeps nothing.
    watched(&format!("exec {} --web.listen-address=127.0.0.1:{port} --persistence.file=''", binary.display()), "");
    wait_for_port(port, "prometheus-pushgateway");
    format!("http://127.0.0.1:{port}")
}

/// The body of `GET <url>` (HTTP/1.0, so that the server closes the connection at its end); panics
/// unless the answer is 200.
pub fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read the answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"), "GET {url}: {head}");
    body.to_string()
}
