//! Configuration the way libpq and the AWS SDK read it: a connection string from the variable
//! `url_env` names, `pg_service.conf` services, the operating-system user as the default user, the
//! password file's mode rule; the region from AWS's chain, `AWS_MAX_ATTEMPTS`, and `check` naming
//! where each setting came from. Passwords are looked for in every output of failing connections.

use std::process::{Command, Stdio};

use crate::harness::{repo, servers, Ctx, PG_PASSWORD};

/// Writes `envs/<env>.toml` with exactly these `[source]` and `[target]` lines (the endpoint is
/// the test's proxy), the PNI mappings (or `mappings`), and these `[sync]` lines.
fn write(ctx: &Ctx, env: &str, source: &str, target: &str, sync: &str) {
    let mappings = ctx.envs.path().join("mappings/pni.toml");
    if !mappings.exists() {
        ctx.write_mappings("pni.toml", &std::fs::read_to_string(repo().join("envs/mappings/pni.toml")).unwrap());
    }
    let text = format!(
        "mappings = \"mappings/pni.toml\"\ntable_prefix = \"{}\"\n\n[source]\nconnect_timeout_secs = 5\n{source}\n\n\
         [target]\nendpoint_url = \"{}\"\n{target}\n\n[sync]\nscan_segments = 2\n{sync}\n",
        ctx.prefix, ctx.proxy.url
    );
    std::fs::write(ctx.envs.path().join(format!("{env}.toml")), text).unwrap();
    let aws_config = ctx.envs.path().join("aws-config");
    if !aws_config.exists() {
        std::fs::write(aws_config, "").unwrap();
    }
}

/// The ddbsync command for this test, with no libpq or AWS region setting inherited.
fn command(ctx: &Ctx, args: &[&str]) -> Command {
    let mut cmd = ctx.command(args);
    for var in [
        "PGHOST",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGSYSCONFDIR",
        "PGPASSFILE",
        "PGSSLMODE",
        "PGCONNECT_TIMEOUT",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_CONFIG_FILE",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ] {
        cmd.env_remove(var);
    }
    // Never wait on an instance metadata service that is not there.
    cmd.env("AWS_EC2_METADATA_DISABLED", "true").env("AWS_CONFIG_FILE", ctx.envs.path().join("aws-config"));
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs it: exit code, stdout, stderr.
fn run(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().expect("run ddbsync");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

/// Every output of a command at every log level, as one text, with the exit codes.
fn all_outputs(ctx: &Ctx, set: &[(&str, &str)]) -> (Vec<i32>, String) {
    let mut codes = Vec::new();
    let mut all = String::new();
    for args in [
        &["sync", "local", "--dry-run"][..],
        &["-vv", "sync", "local"],
        &["--json", "-vv", "sync", "local"],
        &["-vv", "check", "local"],
        &["--json", "check", "local"],
    ] {
        for log in [None, Some("trace")] {
            let mut cmd = command(ctx, args);
            cmd.envs(set.iter().copied());
            if let Some(level) = log {
                cmd.env("RUST_LOG", level);
            }
            let (code, out, err) = run(cmd);
            codes.push(code);
            all.push_str(&out);
            all.push_str(&err);
        }
    }
    (codes, all)
}

#[tokio::test]
async fn url_env_gives_the_connection_and_never_shows_its_password() {
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    write(&ctx, "local", "url_env = \"TEST_DB_URL\"", "region = \"us-east-1\"", "");
    let uri = format!("postgresql://pw_user:{PG_PASSWORD}@127.0.0.1:{port}/{}?sslmode=disable", ctx.db);
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("TEST_DB_URL", &uri);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("connected to pw_user@127.0.0.1:{port}/{}", ctx.db)), "{out}");
    assert!(!format!("{out}{err}").contains(PG_PASSWORD), "{out}{err}");

    // libpq's key=value form; the string's sslmode wins over the profile's.
    write(&ctx, "local", "url_env = \"TEST_DB_URL\"\nsslmode = \"verify-full\"", "region = \"us-east-1\"", "");
    let pairs =
        format!("host=127.0.0.1 port={port} dbname={} user=pw_user password='{PG_PASSWORD}' sslmode=disable", ctx.db);
    let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
    cmd.env("TEST_DB_URL", &pairs);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");

    // Unset, or empty: a profile error naming the variable and the file.
    for value in [None, Some(""), Some("  \t")] {
        let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
        if let Some(value) = value {
            cmd.env("TEST_DB_URL", value);
        } else {
            cmd.env_remove("TEST_DB_URL");
        }
        let (code, _, err) = run(cmd);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("local.toml: source.url_env names TEST_DB_URL, which is not set or is empty"), "{err}");
    }

    // A wrong password, and strings that cannot be used, in every output and at every log level.
    let wrong = "WrOnG-pAsSwOrD-19";
    let cases = [
        (format!("postgresql://pw_user:{wrong}@127.0.0.1:{port}/{}?sslmode=disable", ctx.db), 1),
        (format!("postgresql://pw_user:{wrong}@127.0.0.1,127.0.0.2:{port}/{}", ctx.db), 2),
        (format!("postgresql://pw_user:{wrong}%zz@127.0.0.1:{port}/db"), 2),
        (format!("host=127.0.0.1 password={wrong} {wrong}"), 2),
        (format!("postgresql://pw_user:{wrong}@127.0.0.1:{port}/db?port={wrong}"), 2),
    ];
    for (uri, want) in cases {
        let (codes, all) = all_outputs(&ctx, &[("TEST_DB_URL", &uri)]);
        assert!(codes.iter().all(|&c| c == want), "{uri}: {codes:?}\n{all}");
        assert!(!all.contains(wrong), "a password was shown:\n{all}");
        if want == 1 {
            assert!(all.contains("password authentication failed for user \"pw_user\""), "the server's reason: {all}");
            assert!(
                all.contains("(the password came from the connection string in TEST_DB_URL; correct it there)"),
                "{all}"
            );
        } else {
            let named = all
                .contains("local.toml: source.url_env names TEST_DB_URL, which holds a connection string that")
                || all.contains("the connection string in TEST_DB_URL (source.url_env in ");
            assert!(named && all.contains("local.toml"), "the variable and the file are named: {all}");
        }
    }
}

#[tokio::test]
async fn a_service_gives_the_connection_over_the_environment() {
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    let services = ctx.envs.path().join("services.conf");
    let service = |password: &str| {
        format!(
            "# test services\n[other]\nhost=192.0.2.1\n\n[ddbsync_it]\nhost=127.0.0.1\nport={port}\ndbname={}\n\
             user=pw_user\npassword={password}\nsslmode=disable\n",
            ctx.db
        )
    };
    std::fs::write(&services, service(PG_PASSWORD)).unwrap();
    let file = services.to_str().unwrap();
    // The service wins over PGHOST and PGPORT, which point nowhere.
    let wrong_env = [("PGSERVICEFILE", file), ("PGHOST", "192.0.2.1"), ("PGPORT", "1")];
    write(&ctx, "local", "service = \"ddbsync_it\"", "region = \"us-east-1\"", "");
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.envs(wrong_env);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("connected to pw_user@127.0.0.1:{port}/{}", ctx.db)), "{out}");

    // PGSERVICE names it when the profile does not; the profile's keys win over the service's.
    write(&ctx, "local", "", "region = \"us-east-1\"", "");
    let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
    cmd.envs(wrong_env).env("PGSERVICE", "ddbsync_it");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    write(&ctx, "local", "user = \"plain_only\"", "region = \"us-east-1\"", "");
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.envs(wrong_env).env("PGSERVICE", "ddbsync_it");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("connected to plain_only@127.0.0.1:{port}/")), "{out}");

    // A service no file defines: a profile error naming every file looked in.
    let sysconf = ctx.envs.path().join("sysconf");
    let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
    cmd.env("PGSERVICEFILE", file).env("PGSYSCONFDIR", &sysconf).env("PGSERVICE", "absent_svc");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("service \"absent_svc\" (named by PGSERVICE) is not defined"), "{err}");
    assert!(err.contains(&format!("{file} (no [absent_svc] section)")), "{err}");
    assert!(err.contains(&format!("{} (absent)", sysconf.join("pg_service.conf").display())), "{err}");

    // PGSERVICEFILE naming a directory: said as such, with its own fix (not "give read access").
    let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
    cmd.env("PGSERVICEFILE", ctx.envs.path()).env("PGSERVICE", "ddbsync_it");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is a directory, not a connection service file") && err.contains("point PGSERVICEFILE at"),
        "{err}"
    );
    assert!(!err.contains("read access"), "{err}");

    // The system file is read when the user's lacks the service.
    std::fs::create_dir_all(&sysconf).unwrap();
    std::fs::write(sysconf.join("pg_service.conf"), service(PG_PASSWORD).replace("ddbsync_it", "sys_svc")).unwrap();
    let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
    cmd.env("PGSERVICEFILE", file).env("PGSYSCONFDIR", &sysconf).env("PGSERVICE", "sys_svc");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");

    // A wrong password in the service file is never shown.
    let wrong = "WrOnG-sErViCe-pw-88";
    std::fs::write(&services, service(wrong)).unwrap();
    write(&ctx, "local", "service = \"ddbsync_it\"", "region = \"us-east-1\"", "");
    let (codes, all) = all_outputs(&ctx, &[("PGSERVICEFILE", file)]);
    assert!(codes.iter().all(|&c| c == 1), "{codes:?}\n{all}");
    assert!(all.contains("password authentication failed for user \"pw_user\""), "{all}");
    assert!(!all.contains(wrong), "a password was shown:\n{all}");
    // Nor is a line of a service file that cannot be read.
    std::fs::write(&services, format!("[ddbsync_it]\nhost=127.0.0.1\n{wrong}\n")).unwrap();
    let (codes, all) = all_outputs(&ctx, &[("PGSERVICEFILE", file)]);
    assert!(codes.iter().all(|&c| c == 2), "{codes:?}\n{all}");
    assert!(all.contains(&format!("{file}: line 3: not key=value")), "{all}");
    assert!(!all.contains(wrong), "a line was shown:\n{all}");
}

#[tokio::test]
async fn the_operating_system_user_is_the_default_user() {
    let ctx = Ctx::new(2).await;
    // The user the tests run as, by the system's own account (not $USER), gets a role.
    let out = Command::new("id").arg("-un").output().expect("run id");
    let me = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!me.is_empty());
    Ctx::psql(
        "postgres",
        &[&format!(
            "DO $$ BEGIN CREATE ROLE \"{me}\" LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object OR unique_violation \
             THEN NULL; END $$"
        )],
    );
    let port = servers().pg_port;
    let source = format!("host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nsslmode = \"disable\"", ctx.db);
    write(&ctx, "local", &source, "region = \"us-east-1\"", "");
    let mut cmd = command(&ctx, &["check", "local"]);
    // $USER is anyone's to set; libpq takes the account the process runs as.
    cmd.env("USER", "not-a-role-here").env("LOGNAME", "not-a-role-here");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("connected to {me}@127.0.0.1:{port}/{}", ctx.db)), "{out}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_password_file_others_may_read_is_ignored_with_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"pw_user\"\nsslmode = \"disable\"",
        ctx.db
    );
    write(&ctx, "local", &source, "region = \"us-east-1\"", "");
    // HOME is the profiles directory (the harness sets it).
    let pgpass = ctx.envs.path().join(".pgpass");
    std::fs::write(&pgpass, format!("127.0.0.1:{port}:*:pw_user:{PG_PASSWORD}\n")).unwrap();
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (code, out, err) = run(command(&ctx, &["sync", "local", "--dry-run"]));
    assert_eq!(code, 1, "the file is ignored, so no password is sent: {out}{err}");
    // The login's failure says why: where ddbsync looked, the file it ignored and the fix.
    assert!(
        err.contains("the server asks for a password and none was found (looked at: PGPASSWORD (not set)"),
        "{err}"
    );
    assert!(err.contains(&format!("{} (ignored: mode 0644", pgpass.display())), "{err}");
    assert!(err.contains(&format!("`chmod 0600 {}` to use it", pgpass.display())), "{err}");
    assert!(!err.contains("invalid configuration: password missing"), "{err}");
    // check lists it, as a warning of its own, in its text and its JSON.
    {
        let (_, out, _) = run(command(&ctx, &["--json", "check", "local"]));
        let checks: serde_json::Value = serde_json::from_str(&out).unwrap();
        let warned = checks["checks"].as_array().unwrap().iter().any(|c| {
            c["what"] == "PostgreSQL password file"
                && c["status"] == "warn"
                && c["detail"].as_str().unwrap().contains("mode 0644")
        });
        assert!(warned, "{out}");
        // PGPASSFILE a directory; a file with no line for this connection.
        let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
        cmd.env("PGPASSFILE", ctx.envs.path());
        let (code, _, err) = run(cmd);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("(PGPASSFILE) (ignored: it is a directory)") && err.contains("point PGPASSFILE at"),
            "{err}"
        );
        let other = ctx.envs.path().join("other.pgpass");
        std::fs::write(&other, format!("elsewhere:{port}:*:pw_user:{PG_PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
        cmd.env("PGPASSFILE", &other);
        let (code, _, err) = run(cmd);
        assert_eq!(code, 1, "{err}");
        assert!(err.contains(&format!("(no line matches 127.0.0.1:{port}:{}:pw_user", ctx.db)), "{err}");
    }
    assert!(
        err.contains(&format!("password file {} has mode 0644", pgpass.display())) && err.contains("chmod 0600"),
        "{err}"
    );
    assert!(!format!("{out}{err}").contains(PG_PASSWORD));
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, err) = run(command(&ctx, &["sync", "local", "--dry-run"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!err.contains("password file"), "{err}");
}

#[tokio::test]
async fn the_region_comes_from_awss_chain_when_the_profile_has_none() {
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    write(&ctx, "local", &source, "", "");
    const SECRET: &str = "AwsSeCrEt-chain-5521";

    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_REGION", "eu-west-1").env("AWS_SECRET_ACCESS_KEY", SECRET);
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("AWS region: eu-west-1 (from AWS_REGION)"), "{out}");
    assert!(out.contains(&format!("DynamoDB endpoint: {} (from target.endpoint_url)", ctx.proxy.url)), "{out}");
    assert!(
        out.contains(
            "AWS credentials: found by the chain's EnvironmentVariable provider (the environment: AWS_ACCESS_KEY_ID"
        ),
        "{out}"
    );
    assert!(!format!("{out}{err}").contains(SECRET), "{out}{err}");

    // A sync in that region: priced at its prices, its items read back through the server.
    let mut cmd = command(&ctx, &["--json", "sync", "local"]);
    cmd.env("AWS_REGION", "eu-west-1");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["region"], "eu-west-1", "{out}");
    assert!(out.contains("built-in 2024-11-01 eu-west-1"), "the region's prices: {out}");
    let lessons = ctx.query("SELECT count(*) FROM lessons");
    assert_eq!(ctx.scan("lessons").await.len().to_string(), lessons[0]);

    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_DEFAULT_REGION", "us-east-1");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("AWS region: us-east-1 (from AWS_DEFAULT_REGION)"), "{out}");

    // The AWS profile's region, in the shared config file.
    let config = ctx.envs.path().join("aws-config");
    std::fs::write(&config, "[profile it]\nregion = eu-west-1\n").unwrap();
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_PROFILE", "it");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("AWS region: eu-west-1 (from region of AWS profile \"it\" (AWS_PROFILE) in"), "{out}");

    // Nothing gives one: a profile error saying where ddbsync looked.
    std::fs::write(&config, "").unwrap();
    let (code, out, err) = run(command(&ctx, &["sync", "local", "--dry-run"]));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("local.toml: no AWS region"), "{err}");
    for looked in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS profile \"default\"",
        "(AWS_CONFIG_FILE)",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        assert!(err.contains(looked), "{looked}: {err}");
    }
    assert!(err.contains("set target.region"), "{err}");
}

#[tokio::test]
async fn aws_max_attempts_is_honoured_and_never_multiplies_ddbsyncs_retries() {
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );

    // A control-plane call (check's DescribeTable of the metadata table) that always fails.
    write(&ctx, "local", &source, "region = \"us-east-1\"", "");
    ctx.proxy.fail_after(Some(("DescribeTable", 0)));
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_MAX_ATTEMPTS", "2");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("standard mode (the SDK's default), 2 attempts (AWS_MAX_ATTEMPTS)"), "{out}");
    assert_eq!(ctx.proxy.outage_failed(), 2, "AWS_MAX_ATTEMPTS bounds the SDK's attempts");
    // The profile's setting wins.
    write(&ctx, "local", &source, "region = \"us-east-1\"\nmax_attempts = 3", "");
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_MAX_ATTEMPTS", "2");
    let (_, out, _) = run(cmd);
    assert!(out.contains("3 attempts (target.max_attempts)"), "{out}");
    assert_eq!(ctx.proxy.outage_failed(), 2 + 3);
    // The shared config's max_attempts, when neither the profile nor the environment gives one.
    write(&ctx, "local", &source, "region = \"us-east-1\"", "");
    std::fs::write(ctx.envs.path().join("aws-config"), "[default]\nmax_attempts = 4\n").unwrap();
    let (_, out, _) = run(command(&ctx, &["check", "local"]));
    assert!(out.contains("4 attempts (the AWS profile's max_attempts)"), "{out}");
    assert_eq!(ctx.proxy.outage_failed(), 2 + 3 + 4);
    ctx.proxy.fail_after(None);
    // One the SDK would panic on is a profile error.
    std::fs::write(ctx.envs.path().join("aws-config"), "[default]\nmax_attempts = many\n").unwrap();
    let (code, _, err) = run(command(&ctx, &["check", "local"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("the AWS profile \"default\" in ") && !err.contains("panicked"), "{err}");
    assert!(err.contains("has max_attempts = many, which cannot be used (a number of attempts"), "{err}");
    std::fs::write(ctx.envs.path().join("aws-config"), "[default]\nretry_mode = legacy\n").unwrap();
    let (code, _, err) = run(command(&ctx, &["check", "local"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has retry_mode = legacy, which cannot be used (standard or adaptive)"), "{err}");
    std::fs::write(ctx.envs.path().join("aws-config"), "").unwrap();

    // A bad value is a profile error, not the SDK's panic.
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_MAX_ATTEMPTS", "0");
    let (code, _, err) = run(cmd);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("AWS_MAX_ATTEMPTS=\"0\" is not a number of attempts from 1 to 100"), "{err}");

    // Batch writes: one item, every BatchWriteItem refused with a 500. ddbsync makes
    // sync.max_attempts attempts of it, the SDK none of its own, whatever AWS_MAX_ATTEMPTS says.
    ctx.write_mappings("one.toml", "[tables.one]\npartition_key = \"id\"\nquery = \"SELECT 1 AS id\"\n");
    let text = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    let one = text
        .replace("mappings/pni.toml", "mappings/one.toml")
        .replace("scan_segments = 2", "scan_segments = 2\nmax_attempts = 2");
    std::fs::write(ctx.envs.path().join("local.toml"), one).unwrap();
    let before = ctx.proxy.outage_failed();
    ctx.proxy.fail_after(Some(("BatchWriteItem", 0)));
    let mut cmd = command(&ctx, &["sync", "local"]);
    cmd.env("AWS_MAX_ATTEMPTS", "5");
    let (code, out, err) = run(cmd);
    ctx.proxy.fail_after(None);
    assert_eq!(code, 3, "the row is not written: {out}{err}");
    assert_eq!(ctx.proxy.outage_failed() - before, 2, "sync.max_attempts, not 2 × 5: {err}");
}

#[tokio::test]
async fn the_profiles_timeouts_bound_a_dynamodb_that_stops_answering() {
    let ctx = Ctx::new(2).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    let target = "region = \"us-east-1\"\nmax_attempts = 1\nattempt_timeout_secs = 1\noperation_timeout_secs = 2";
    write(&ctx, "local", &source, target, "");
    ctx.proxy.set_stalled(true);
    let started = std::time::Instant::now();
    let (code, out, err) = run(command(&ctx, &["check", "local"]));
    let took = started.elapsed();
    ctx.proxy.set_stalled(false);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("timeouts: connect 3s, attempt 1s, call 2s"), "{out}");
    assert!(out.contains("[FAIL] DynamoDB: "), "{out}");
    // One DescribeTable given up after a second; the default would wait 30.
    assert!(took < std::time::Duration::from_secs(15), "took {took:?}: {out}");
}

/// Values pasted where a variable's name goes, and a password written in the profile: refused by
/// key, line and column, in every output (`--json` error documents and JSON logs included).
#[tokio::test]
async fn a_secret_written_in_the_profile_is_never_echoed() {
    let ctx = Ctx::new(1).await;
    const SECRET: &str = "Xy7-SECRET";
    let sources = [
        (format!("url_env = \"postgresql://a:{SECRET}@h/d\""), "source.url_env is not an environment variable's name"),
        (format!("url_env = \"host=h password={SECRET}\""), "source.url_env is not an environment variable's name"),
        (
            format!("host = \"127.0.0.1\"\npassword_env = \"Xy7@:/-{SECRET}\""),
            "source.password_env is not an environment variable's name",
        ),
        (format!("host = \"127.0.0.1\"\npassword = \"{SECRET}\""), "source.password: unknown field `password`"),
    ];
    for (source, want) in sources {
        write(&ctx, "local", &source, "region = \"us-east-1\"", "");
        let mut all = String::new();
        for args in [
            &["sync", "local", "--dry-run"][..],
            &["--json", "sync", "local"],
            &["--log-format", "json", "-vv", "check", "local"],
            &["--json", "check", "local"],
        ] {
            let mut cmd = command(&ctx, args);
            cmd.env("RUST_LOG", "trace");
            let (code, out, err) = run(cmd);
            assert_eq!(code, 2, "{args:?}: {out}{err}");
            all.push_str(&out);
            all.push_str(&err);
        }
        assert!(all.contains(want), "{source}: {all}");
        assert!(!all.contains("SECRET"), "{source}: the value is shown: {all}");
    }
}

/// An empty or blank `AWS_REGION` is unset (the SDK's reader takes it as the region ""); a
/// region from AWS's chain is checked as `target.region` is, naming where it came from.
#[tokio::test]
async fn a_region_from_awss_chain_is_checked_and_an_empty_one_is_unset() {
    let ctx = Ctx::new(1).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    write(&ctx, "local", &source, "", "");
    for empty in ["", "  "] {
        let mut cmd = command(&ctx, &["check", "local"]);
        cmd.env("AWS_REGION", empty).env("AWS_DEFAULT_REGION", "eu-west-1");
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("AWS region: eu-west-1 (from AWS_DEFAULT_REGION)"), "{out}");
    }
    for (var, value) in [("AWS_REGION", "EU West"), ("AWS_DEFAULT_REGION", "eu_west_1")] {
        let mut cmd = command(&ctx, &["sync", "local", "--dry-run"]);
        cmd.env(var, value);
        let (code, out, err) = run(cmd);
        assert_eq!(code, 2, "{out}{err}");
        let want = format!("local.toml: {var} gives the region \"{value}\", which is not an AWS region name");
        assert!(err.contains(&want) && err.contains("set target.region"), "{err}");
    }
    let config = ctx.envs.path().join("aws-config");
    std::fs::write(&config, "[profile it]\nregion = EU West\n").unwrap();
    let mut cmd = command(&ctx, &["check", "local"]);
    cmd.env("AWS_PROFILE", "it");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("region of AWS profile \"it\" (AWS_PROFILE) in") && err.contains("not an AWS region name"),
        "{err}"
    );

    // No region: the message says what the config file holds, not that a profile lacks a region.
    let (code, _, err) = run(command(&ctx, &["sync", "local", "--dry-run"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("has no AWS profile \"default\" (the default)"), "{err}");
    std::fs::remove_file(&config).unwrap();
    let (code, _, err) = run(command(&ctx, &["sync", "local", "--dry-run"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{} (AWS_CONFIG_FILE) does not exist", config.display())), "{err}");
    std::fs::write(&config, "").unwrap();
}

/// A server that answers HTTP but is not DynamoDB: said as such, not as the SDK's dump of the
/// raw response.
#[tokio::test]
async fn an_endpoint_that_is_not_dynamodb_is_said_so() {
    use std::io::{Read, Write};
    let ctx = Ctx::new(1).await;
    let port = servers().pg_port;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let body = "<html><body><h1>404 Not Found</h1></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    write(&ctx, "local", &source, "region = \"us-east-1\"", "");
    let profile = std::fs::read_to_string(ctx.envs.path().join("local.toml")).unwrap();
    std::fs::write(ctx.envs.path().join("local.toml"), profile.replace(&ctx.proxy.url, &url)).unwrap();
    for args in [&["check", "local"][..], &["sync", "local"]] {
        let (code, out, err) = run(command(&ctx, args));
        assert_ne!(code, 0, "{out}{err}");
        let all = format!("{out}{err}");
        assert!(all.contains("the endpoint answered HTTP 404 without a DynamoDB error code"), "{args:?}: {all}");
        assert!(all.contains("check target.endpoint_url"), "{all}");
        assert!(!all.contains("ServiceError") && !all.contains("StatusCode("), "the SDK's dump: {all}");
    }
}

/// A stalled DynamoDB ends a sync after one `operation_timeout_secs`, not two: the run record is
/// given a short wait once the target failed to answer.
#[tokio::test]
async fn a_stalled_dynamodb_ends_a_sync_within_one_timeout() {
    let ctx = Ctx::new(1).await;
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    let target = "region = \"us-east-1\"\nmax_attempts = 1\nattempt_timeout_secs = 6\noperation_timeout_secs = 6";
    write(&ctx, "local", &source, target, "");
    ctx.proxy.set_stalled(true);
    let started = std::time::Instant::now();
    let (code, out, err) = run(command(&ctx, &["sync", "local"]));
    let took = started.elapsed();
    ctx.proxy.set_stalled(false);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("target.operation_timeout_secs bounds each call"), "the fix: {err}");
    // One call's 6 s, the record's short wait, start-up; two full waits would be 11 s or more.
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}: {err}");
}

/// Profile `local` on the test's database with short DynamoDB timeouts, 2 attempts and 2 calls in
/// flight: a stalled write is given up on within seconds.
fn stalls_quickly(ctx: &Ctx) {
    let port = servers().pg_port;
    let source = format!(
        "host = \"127.0.0.1\"\nport = {port}\ndbname = \"{}\"\nuser = \"postgres\"\nsslmode = \"disable\"",
        ctx.db
    );
    let target = "region = \"us-east-1\"\nattempt_timeout_secs = 1\noperation_timeout_secs = 2";
    write(ctx, "local", &source, target, "max_attempts = 2\nmax_in_flight = 2");
}

/// A DynamoDB that stops answering the writes (and only them: the lease is still renewed) ends the
/// run once a batch has had no answer in all its attempts, instead of grinding through every
/// batch in turn; every row is accounted for.
#[tokio::test]
async fn a_dynamodb_that_stops_answering_writes_ends_the_run_after_one_batch() {
    let ctx = Ctx::new(200).await;
    stalls_quickly(&ctx);
    ctx.proxy.stall_operation(Some("BatchWriteItem"));
    let started = std::time::Instant::now();
    let (code, out, err) = run(command(&ctx, &["--json", "sync", "local"]));
    let took = started.elapsed();
    ctx.proxy.stall_operation(None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no answer from DynamoDB"), "{err}");
    // 2 batches in flight × 2 attempts of 1 s, the backoff, start-up: far from 20 batches in turn.
    assert!(took < std::time::Duration::from_secs(20), "took {took:?}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    // Every lesson accounted for: created (confirmed) or listed as not written; the later tables
    // are named as not synced.
    let lessons = &report["tables"][0];
    let failed = lessons["failed"].as_array().unwrap();
    assert_eq!(lessons["created"].as_u64().unwrap() + failed.len() as u64, 200, "{lessons}");
    assert!(failed.iter().any(|f| f["reason"].as_str().unwrap().starts_with("not sent: DynamoDB stopped answering")));
    assert!(report["notes"].to_string().contains("not synced"), "{}", report["notes"]);
}

/// The same for `verify --repair`: it ends with the error once DynamoDB stops answering its writes.
#[tokio::test]
async fn a_repair_ends_once_dynamodb_stops_answering_its_writes() {
    let ctx = Ctx::new(120).await;
    stalls_quickly(&ctx);
    let (code, _, err) = run(command(&ctx, &["sync", "local"]));
    assert_eq!(code, 0, "{err}");
    ctx.sql(&["UPDATE lessons SET title = title || ' (changed)'"]);
    ctx.proxy.stall_operation(Some("BatchWriteItem"));
    let started = std::time::Instant::now();
    let (code, _, err) = run(command(&ctx, &["verify", "local", "--full", "--repair", "--yes", "--table", "lessons"]));
    ctx.proxy.stall_operation(None);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no answer from DynamoDB"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
}
