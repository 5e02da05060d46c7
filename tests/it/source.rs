//! The source side of an unattended run: PostgreSQL is only ever read (PostgreSQL itself refuses a
//! query that writes, what a read-only transaction allows is rolled back, and `on_reject = "fail"`
//! reads one snapshot twice), no wait on it is unbounded and a query given up on is cancelled on the
//! server, libpq's variables are followed, and the files ddbsync reads and leaves are kept to
//! the environments directory and to their owner.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{servers, text, Ctx, Profile, Run};
use crate::pgproxy::{PgFault, PgProxy};

/// Runs a ddbsync command, killing it if it has not ended within `limit` (the old behaviour of a
/// hang must fail the test, not hang it).
fn run_within(cmd: &mut Command, limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    while child.try_wait().unwrap().is_none() && started.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    Run { output, elapsed: started.elapsed() }
}

/// Writes profile `env` with these `[source]` lines and `[sync]` lines, connecting to `port`.
fn profile_on_port(ctx: &Ctx, env: &str, port: u16, profile: &Profile) {
    ctx.write_profile_with(env, profile);
    let path = ctx.envs.path().join(format!("{env}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().find(|l| l.starts_with("port = ")).unwrap().to_string();
    std::fs::write(&path, text.replace(&line, &format!("port = {port}"))).unwrap();
}

#[tokio::test]
async fn a_server_that_stops_answering_mid_stream_ends_the_run() {
    let ctx = Ctx::new(40).await;
    let proxy = PgProxy::start(servers().pg_port, PgFault::StallAfterRows(10));
    let source = "host = \"127.0.0.1\"\nuser = \"postgres\"\nsslmode = \"disable\"\nread_timeout_secs = 2";
    profile_on_port(&ctx, "local", proxy.port, &Profile { source: Some(source), ..Profile::default() });
    let run = run_within(&mut ctx.command(&["--json", "sync", "local"]), Duration::from_secs(60));
    let err = run.stderr();
    assert_eq!(run.code(), 1, "{err}");
    assert!(run.elapsed < Duration::from_secs(30), "took {:?}: {err}", run.elapsed);
    // The rows read before the stall were written, and the report and the record say so.
    let failed: serde_json::Value = serde_json::from_str(&run.stdout()).expect("the report of the failed run");
    assert_eq!(failed["outcome"]["status"], "failed");
    let stored = ctx.scan("lessons").await.len() as u64;
    assert!(stored > 0, "the rows read before the stall were written");
    assert_eq!(failed["tables"][0]["created"].as_u64(), Some(stored), "{failed}");
    let history = ctx.ddbsync(&["--json", "history", "local"]);
    let runs = serde_json::from_str::<serde_json::Value>(&history.stdout()).unwrap()["runs"].take();
    assert_eq!(
        (runs[0]["outcome"]["status"].as_str(), runs[0]["created"].as_u64()),
        (Some("failed"), Some(stored)),
        "{runs}"
    );
    let want = format!(
        "table \"lessons\": query: no answer from PostgreSQL at postgres@127.0.0.1:{}/{} for 2s \
         (source.read_timeout_secs); check that the server is up and the query is not waiting on a lock \
         (pg_stat_activity shows it), or raise source.read_timeout_secs if the query is that slow",
        proxy.port, ctx.db
    );
    assert!(err.contains(&want), "{err}");
    assert!(proxy.rows() > 10, "the server stopped in the middle of the rows, not before them");
    // The lock was released: a run straight to the server right after completes the table.
    let report = {
        ctx.write_profile("direct", "");
        let run = ctx.ddbsync(&["--json", "sync", "direct"]);
        assert_eq!(run.code(), 0, "{}", run.stderr());
        serde_json::from_str::<serde_json::Value>(&run.stdout()).unwrap()
    };
    assert_eq!(ctx.scan("lessons").await.len(), 40, "{report}");
}

#[tokio::test]
async fn a_query_waiting_on_a_lock_ends_the_run() {
    let ctx = Ctx::new(3).await;
    // Another session holds the table: preparing a query that reads it waits for the lock.
    let holder = crate::harness::psql_command(&ctx.db)
        .args(["-c", "BEGIN; LOCK TABLE passages IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let locked = "SELECT count(*) FROM pg_locks WHERE relation = 'passages'::regclass AND mode = 'AccessExclusiveLock'";
    let started = Instant::now();
    while ctx.query(locked) != ["1"] {
        assert!(started.elapsed() < Duration::from_secs(30), "the lock was never taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let source = "host = \"127.0.0.1\"\nuser = \"postgres\"\nsslmode = \"disable\"\nread_timeout_secs = 2";
    ctx.write_profile_with("local", &Profile { source: Some(source), ..Profile::default() });
    let run = run_within(&mut ctx.command(&["sync", "local", "--dry-run"]), Duration::from_secs(60));
    let mut holder = holder;
    let _ = holder.kill();
    let _ = holder.wait();
    let err = run.stderr();
    assert_eq!(run.code(), 1, "{err}");
    assert!(run.elapsed < Duration::from_secs(15), "took {:?}", run.elapsed);
    assert!(
        err.contains(&format!(
            "table \"passages\": query: no answer from PostgreSQL at postgres@127.0.0.1:{}/{} for 2s",
            servers().pg_port,
            ctx.db
        )),
        "{err}"
    );
}

/// A mapping whose one table is fed by `query`, keyed by `lesson_id`.
fn one_query(query: &str) -> String {
    format!("[tables.lessons]\npartition_key = \"lesson_id\"\nquery = \"\"\"\n{query}\n\"\"\"\n")
}

#[tokio::test]
async fn a_query_that_writes_is_refused_and_the_source_is_unchanged() {
    let ctx = Ctx::new(3).await;
    ctx.sql(&["CREATE SEQUENCE ids", "CREATE TABLE audit (n int)", "INSERT INTO audit VALUES (7)"]);
    let state = || {
        [
            ctx.query("SELECT id || ':' || title FROM lessons ORDER BY id"),
            ctx.query("SELECT n FROM audit ORDER BY n"),
            ctx.query("SELECT last_value || ':' || is_called FROM ids"),
        ]
    };
    let before = state();
    // A query that sets the session back to read-write cannot pass that on to the next query.
    let escape = "[tables.lessons.entities.first]\npartition_key = \"lesson_id\"\n\
                  query = \"SELECT id AS lesson_id, set_config('default_transaction_read_only', 'off', false) AS s FROM lessons\"\n\
                  [tables.lessons.entities.second]\npartition_key = \"lesson_id\"\n\
                  query = \"UPDATE lessons SET title = 'escaped' RETURNING id + 100 AS lesson_id\"\n";
    let cases = [
        (
            one_query("UPDATE lessons SET title = title || ' (touched)' RETURNING id AS lesson_id, title"),
            "table \"lessons\": query: PostgreSQL refused it: cannot execute UPDATE in a read-only transaction",
        ),
        (
            one_query("INSERT INTO audit VALUES (1) RETURNING n AS lesson_id"),
            "table \"lessons\": query: PostgreSQL refused it: cannot execute INSERT in a read-only transaction",
        ),
        (
            one_query("SELECT nextval('ids') AS lesson_id, title FROM lessons"),
            "table \"lessons\": query: PostgreSQL refused it: cannot execute nextval() in a read-only transaction",
        ),
        (
            // PostgreSQL names the statement, a SELECT, not the DELETE inside it.
            one_query("WITH gone AS (DELETE FROM audit RETURNING n) SELECT id AS lesson_id FROM lessons"),
            "table \"lessons\": query: PostgreSQL refused it: cannot execute SELECT in a read-only transaction",
        ),
        (
            escape.to_string(),
            "table \"lessons\": entity \"second\": query: PostgreSQL refused it: cannot execute UPDATE in a \
             read-only transaction",
        ),
    ];
    for (mapping, want) in cases {
        let path = ctx.write_mappings("writes.toml", &mapping);
        ctx.write_profile_with("w", &Profile { mappings: Some(&path), ..Profile::default() });
        for args in [&["sync", "w", "--dry-run"][..], &["sync", "w"], &["verify", "w", "--full"]] {
            let run = ctx.ddbsync(args);
            let err = run.stderr();
            assert_eq!(run.code(), 1, "{args:?} {mapping}: {err}");
            assert!(err.contains(&format!("writes.toml: {want}")), "{args:?}: {err}");
            assert!(
                err.contains(
                    "ddbsync only ever reads the source (every query runs in a read-only transaction, dry run or \
                     not): make the query a SELECT that changes nothing"
                ),
                "{err}"
            );
            assert_eq!(state(), before, "{args:?} {mapping}: psql sees the source unchanged");
        }
    }
}

#[tokio::test]
async fn on_reject_fail_checks_and_writes_one_snapshot() {
    let ctx = Ctx::new(5).await;
    // Row 1 takes three seconds to compute, in each pass: a window to change the source in.
    ctx.sql(&["CREATE FUNCTION slow(i int) RETURNS int LANGUAGE sql AS \
               $$ SELECT CASE WHEN i = 1 THEN (SELECT 1 FROM pg_sleep(3)) ELSE 0 END $$"]);
    let mapping = one_query("SELECT id AS lesson_id, title, slow(id) AS slow FROM lessons ORDER BY id");
    let path = ctx.write_mappings("slow.toml", &mapping);
    let profile = Profile { mappings: Some(&path), sync: "on_reject = \"fail\"", ..Profile::default() };
    ctx.write_profile_with("local", &profile);
    let original = ctx.query("SELECT title FROM lessons WHERE id = 2");

    let started = Instant::now();
    let child =
        ctx.command(&["--json", "sync", "local"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // The first sleep is the check pass's: PostgreSQL shows it waiting in pg_sleep.
    let sleeping = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'ddbsync' AND datname = '{}' \
         AND wait_event = 'PgSleep'",
        ctx.db
    );
    while ctx.query(&sleeping) != ["1"] {
        assert!(started.elapsed() < Duration::from_secs(30), "the check pass never reached row 1");
        std::thread::sleep(Duration::from_millis(50));
    }
    ctx.sql(&["UPDATE lessons SET title = 'changed between the passes' WHERE id = 2"]);
    let output = child.wait_with_output().unwrap();
    let run = Run { output, elapsed: started.elapsed() };
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert!(run.elapsed >= Duration::from_secs(6), "both passes read row 1 ({:?})", run.elapsed);

    assert_eq!(ctx.query("SELECT title FROM lessons WHERE id = 2"), ["changed between the passes"]);
    let items = ctx.scan("lessons").await;
    let lesson_2 = items.iter().find(|i| text(&i["lesson_id"]) == "2").expect("lesson 2 written");
    assert_eq!(
        [text(&lesson_2["title"])],
        [original[0].clone()],
        "the sync wrote the row as the check read it, before the change"
    );
    // The next run reads a new snapshot and writes the change.
    ctx.sync(&[]);
    let items = ctx.scan("lessons").await;
    let lesson_2 = items.iter().find(|i| text(&i["lesson_id"]) == "2").unwrap();
    assert_eq!(text(&lesson_2["title"]), "changed between the passes");
}

/// `sync --dry-run` with these `[source]` lines, on `port`, with these variables set.
fn dry_run(ctx: &Ctx, port: u16, source: &str, vars: &[(&str, &str)]) -> (i32, String) {
    profile_on_port(ctx, "local", port, &Profile { source: Some(source), ..Profile::default() });
    let mut cmd = ctx.command(&["sync", "local", "--dry-run"]);
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let run = run_within(&mut cmd, Duration::from_secs(60));
    (run.code(), run.stderr())
}

#[tokio::test]
async fn pgsslmode_applies_when_the_profile_gives_no_sslmode() {
    let ctx = Ctx::new(2).await;
    let ca = servers().pg_ca.display().to_string();
    let pg = servers().pg_port;
    // A server without TLS: the proxy answers the TLS request with "no", as such a server does.
    let plain = PgProxy::start(pg, PgFault::NoTls);
    let no_mode = |host: &str, user: &str| format!("host = \"{host}\"\nuser = \"{user}\"");

    let (code, err) = dry_run(&ctx, plain.port, &no_mode("localhost", "plain_only"), &[]);
    assert_eq!(code, 0, "without PGSSLMODE, prefer falls back to plain TCP on a server without TLS: {err}");
    let verify = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca.as_str())];
    let (code, err) = dry_run(&ctx, plain.port, &no_mode("localhost", "plain_only"), &verify);
    assert_eq!(code, 1, "PGSSLMODE=verify-full never connects without TLS: {err}");
    assert!(err.contains("cannot connect to PostgreSQL at plain_only@localhost"), "{err}");
    assert!(err.contains("server does not support TLS"), "{err}");
    assert!(
        err.contains(
            "(sslmode verify-full, from PGSSLMODE, never falls back to an unencrypted connection: enable TLS on the \
             server, or choose another sslmode)"
        ),
        "{err}"
    );
    let (code, err) =
        dry_run(&ctx, plain.port, &(no_mode("localhost", "plain_only") + "\nsslmode = \"disable\""), &verify);
    assert_eq!(code, 0, "the profile's sslmode wins over PGSSLMODE: {err}");

    // Straight to the TLS server: verify-full checks the name, require does not.
    let (code, err) = dry_run(&ctx, pg, &no_mode("127.0.0.1", "tls_only"), &verify);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("certificate not valid for name \"127.0.0.1\""), "{err}");
    let (code, err) = dry_run(&ctx, pg, &no_mode("localhost", "tls_only"), &verify);
    assert_eq!(code, 0, "{err}");
    let (code, err) = dry_run(&ctx, pg, &no_mode("127.0.0.1", "tls_only"), &[("PGSSLMODE", "require")]);
    assert_eq!(code, 0, "{err}");
    let (code, err) = dry_run(&ctx, pg, &no_mode("127.0.0.1", "tls_only"), &[("PGSSLMODE", "disable")]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no encryption"), "{err}");

    let (code, err) = dry_run(&ctx, pg, &no_mode("localhost", "tls_only"), &[("PGSSLMODE", "verify-full")]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("PGSSLMODE=verify-full: sslmode verify-full needs the certificate of the CA"), "{err}");
    let (code, err) = dry_run(&ctx, pg, &no_mode("localhost", "tls_only"), &[("PGSSLMODE", "allow")]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("PGSSLMODE=\"allow\" is not supported; use disable, prefer, require, verify-ca or verify-full")
    );

    // PGCONNECT_TIMEOUT applies when the profile gives no connect_timeout_secs (the tests' do).
    let path = ctx.envs.path().join("local.toml");
    let without = std::fs::read_to_string(&path).unwrap().replace("connect_timeout_secs = 5\n", "");
    for (value, code) in [("0", 2), ("3", 0)] {
        std::fs::write(&path, &without).unwrap();
        let mut cmd = ctx.command(&["sync", "local", "--dry-run"]);
        let run = run_within(cmd.env("PGCONNECT_TIMEOUT", value), Duration::from_secs(60));
        assert_eq!(run.code(), code, "PGCONNECT_TIMEOUT={value}: {}", run.stderr());
    }
    let mut cmd = ctx.command(&["sync", "local", "--dry-run"]);
    let err = run_within(cmd.env("PGCONNECT_TIMEOUT", "0"), Duration::from_secs(60)).stderr();
    assert!(
        err.contains(
            "PGCONNECT_TIMEOUT=\"0\" is not a number of seconds from 1 to 86400 (0, libpq's \"wait for ever\", is \
             not allowed); fix it or set source.connect_timeout_secs, which wins"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn mappings_stay_in_the_environments_directory_and_are_never_quoted() {
    let ctx = Ctx::new(1).await;
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let line = profile.lines().find(|l| l.starts_with("mappings")).unwrap().to_string();
    let with = |env: &str, mappings: &str| {
        std::fs::write(ctx.envs.path().join(format!("{env}.toml")), profile.replace(&line, mappings)).unwrap();
        let run = ctx.ddbsync(&["sync", env]);
        (run.code(), run.stderr())
    };
    let passwd = Path::new("/etc/passwd").canonicalize().unwrap();
    let root_line = std::fs::read_to_string(&passwd).unwrap().lines().next().unwrap().to_string();
    let up = ctx.envs.path().ancestors().count() + 2;
    let relative = format!("{}etc/passwd", "../".repeat(up));
    for written in [relative.as_str(), "/etc/passwd"] {
        let (code, err) = with("outside", &format!("mappings = \"{written}\""));
        assert_eq!(code, 2, "{err}");
        let want = format!(
            "outside.toml: mappings = \"{written}\" leads to {}, outside the environments directory",
            passwd.display()
        );
        assert!(err.contains(&want), "{err}");
        assert!(!err.contains(&root_line), "{err}");
    }

    // Inside the directory but not a mappings file: where the error is, never the line.
    let secret = "AKIA-tHiS-iS-sEcReT";
    std::fs::write(ctx.envs.path().join("notes.txt"), format!("# deploy notes\naws key {secret}\n")).unwrap();
    let (code, err) = with("notes", "mappings = \"notes.txt\"");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("notes.txt: not valid TOML at line 2, column 5;"), "{err}");
    assert!(!err.contains(secret) && !err.contains("aws key"), "{err}");
    assert!(!ctx.table_exists("lessons").await, "nothing was created");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn rejects_files_and_backups_are_readable_by_their_owner_only() {
    let ctx = Ctx::new(3).await;
    let mapping = one_query("SELECT CASE WHEN id = 2 THEN NULL ELSE id END AS lesson_id, title FROM lessons");
    let path = ctx.use_mappings("reject.toml", &mapping);
    let run = ctx.ddbsync(&["--json", "sync", "local"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    let report: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let file = ctx.envs.path().join(report["rejects_file"].as_str().expect("a rejects file"));
    assert_eq!(mode(&file), 0o600, "{}", file.display());
    let chosen = ctx.envs.path().join("chosen/rejects.jsonl");
    let run = ctx.ddbsync(&["sync", "local", "--dry-run", "--rejects-file", chosen.to_str().unwrap()]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(mode(&chosen), 0o600);

    let fail = Profile { mappings: Some(&path), sync: "on_reject = \"fail\"", ..Profile::default() };
    ctx.write_profile_with("strict", &fail);
    let run = ctx.ddbsync(&["sync", "strict", "--rejects-file", "strict.jsonl"]);
    assert_eq!(run.code(), 3, "{}", run.stderr());
    assert_eq!(mode(&ctx.envs.path().join("strict.jsonl")), 0o600);

    let backup = ctx.envs.path().join("saved/b.tar");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let run = ctx.ddbsync(&["backup", "local", "-o", backup.to_str().unwrap()]);
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(mode(&backup), 0o600);
}

/// What a read-only transaction still allows is undone: a query that creates a large object (or
/// takes an advisory lock) leaves the source as it was, in a dry run, a real run and the held
/// snapshot of `on_reject = "fail"`, because ddbsync never commits.
#[tokio::test]
async fn what_a_read_only_transaction_allows_is_rolled_back() {
    let ctx = Ctx::new(3).await;
    let objects = || ctx.query("SELECT count(*) FROM pg_largeobject_metadata");
    let before = objects();
    let mapping = one_query("SELECT id AS lesson_id, title, lo_create(0)::text AS lo FROM lessons");
    let path = ctx.use_mappings("lo.toml", &mapping);
    let fail = Profile { mappings: Some(&path), sync: "on_reject = \"fail\"", ..Profile::default() };
    ctx.write_profile_with("strict", &fail);
    for args in [&["sync", "local", "--dry-run"][..], &["sync", "local"], &["sync", "strict"]] {
        let run = ctx.ddbsync(args);
        assert_eq!(run.code(), 0, "{args:?}: {}", run.stderr());
        assert_eq!(objects(), before, "{args:?}: psql sees no new large object");
    }
    assert_eq!(ctx.scan("lessons").await.len(), 3, "the rows were read and written all the same");

    // A session advisory lock outlives a rollback: it is released after the query that took it,
    // not held while the rest of the run reads.
    let mapping = "[tables.lessons.entities.first]\npartition_key = \"lesson_id\"\n\
                   query = \"SELECT id AS lesson_id, pg_try_advisory_lock(4242) AS locked FROM lessons WHERE id = 1\"\n\
                   [tables.lessons.entities.second]\npartition_key = \"lesson_id\"\n\
                   query = \"SELECT id + 100 AS lesson_id, (SELECT 1 FROM pg_sleep(4)) AS slept FROM lessons WHERE id = 1\"\n";
    let path = ctx.write_mappings("advisory.toml", mapping);
    ctx.write_profile_with("advisory", &Profile { mappings: Some(&path), ..Profile::default() });
    let started = Instant::now();
    let child = ctx.command(&["sync", "advisory", "--dry-run"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let child = child.unwrap();
    let ours = format!("a.application_name = 'ddbsync' AND a.datname = '{}'", ctx.db);
    let sleeping = format!("SELECT count(*) FROM pg_stat_activity a WHERE {ours} AND a.wait_event = 'PgSleep'");
    while ctx.query(&sleeping) != ["1"] {
        assert!(started.elapsed() < Duration::from_secs(30), "the second query never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let locks = ctx.query(&format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE l.locktype = 'advisory' AND {ours}"
    ));
    let output = child.wait_with_output().unwrap();
    let run = Run { output, elapsed: started.elapsed() };
    assert_eq!(run.code(), 0, "{}", run.stderr());
    assert_eq!(locks, ["0"], "the first query's advisory lock was released before the second query ran");
}

/// ddbsync's queries that PostgreSQL is still running for this test's database.
fn active_queries(ctx: &Ctx) -> Vec<String> {
    ctx.query(&format!(
        "SELECT pid || ' ' || state || ': ' || query FROM pg_stat_activity WHERE application_name = 'ddbsync' \
         AND datname = '{}' AND state = 'active'",
        ctx.db
    ))
}

/// Waits up to `limit` for PostgreSQL to show no query of ddbsync still running.
fn until_no_active_query(ctx: &Ctx, limit: Duration, what: &str) {
    let started = Instant::now();
    loop {
        let active = active_queries(ctx);
        if active.is_empty() {
            return;
        }
        assert!(started.elapsed() < limit, "{what}: still running on PostgreSQL {limit:?} later: {active:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
async fn a_query_that_timed_out_is_cancelled_on_the_server() {
    let ctx = Ctx::new(3).await;
    let mapping = one_query("SELECT id AS lesson_id, title FROM lessons, pg_sleep(20)");
    let path = ctx.write_mappings("slow.toml", &mapping);
    // Plain TCP, and TLS (the cancel request goes over TLS too, as the connection did).
    for (user, sslmode) in [("postgres", "disable"), ("tls_only", "require")] {
        let source = format!("host = \"127.0.0.1\"\nuser = \"{user}\"\nsslmode = \"{sslmode}\"\nread_timeout_secs = 2");
        ctx.write_profile_with(
            "local",
            &Profile { source: Some(&source), mappings: Some(&path), ..Profile::default() },
        );
        for args in [&["sync", "local", "--dry-run"][..], &["sync", "local"]] {
            let run = run_within(&mut ctx.command(args), Duration::from_secs(60));
            let err = run.stderr();
            assert_eq!(run.code(), 1, "{user} {args:?}: {err}");
            assert!(
                err.contains(&format!(
                    "slow.toml: table \"lessons\": query: no answer from PostgreSQL at {user}@127.0.0.1"
                )),
                "{err}"
            );
            assert!(run.elapsed < Duration::from_secs(15), "took {:?}", run.elapsed);
            until_no_active_query(&ctx, Duration::from_secs(3), &format!("{user} {args:?}: the query that timed out"));
        }
    }
}

#[tokio::test]
async fn a_query_stopped_by_sigterm_is_cancelled_on_the_server() {
    let ctx = Ctx::new(3).await;
    let mapping = one_query("SELECT id AS lesson_id, title FROM lessons, pg_sleep(30)");
    ctx.use_mappings("slow.toml", &mapping);
    for args in [&["sync", "local", "--dry-run"][..], &["sync", "local"]] {
        let started = Instant::now();
        let child = ctx.command(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let child = child.unwrap();
        while active_queries(&ctx).iter().all(|q| !q.contains("pg_sleep")) {
            assert!(started.elapsed() < Duration::from_secs(30), "{args:?}: the query never ran");
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        assert!(status.success());
        let signalled = Instant::now();
        let output = child.wait_with_output().unwrap();
        let run = Run { output, elapsed: signalled.elapsed() };
        assert_eq!(run.code(), 5, "{args:?}: {}", run.stderr());
        // The wait for the first row ends at once, and the run reports what it did (nothing).
        assert!(run.elapsed < Duration::from_secs(3), "{args:?}: took {:?} after the signal", run.elapsed);
        assert!(run.stdout().contains("Stopped early: interrupted by SIGTERM"), "{args:?}: {}", run.stdout());
        until_no_active_query(&ctx, Duration::from_secs(3), &format!("{args:?}: the query stopped by SIGTERM"));
    }
}
