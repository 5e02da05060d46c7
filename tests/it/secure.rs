//! TLS to PostgreSQL in every `sslmode`, against the test server's certificate (signed by a
//! throwaway CA, for `localhost` only), and secrets kept out of every output.

use crate::harness::{servers, Ctx, Profile, PG_PASSWORD};

/// Runs a dry run with these `[source]` lines; returns the exit code and stderr.
fn dry_run(ctx: &Ctx, source: &str) -> (i32, String) {
    ctx.write_profile_with("local", &Profile { source: Some(source), ..Profile::default() });
    let run = ctx.ddbsync(&["sync", "local", "--dry-run"]);
    (run.code(), run.stderr())
}

#[tokio::test]
async fn sslmodes_behave_like_libpq() {
    let ctx = Ctx::new(2).await;
    let ca = servers().pg_ca.display().to_string();
    // `tls_only` may connect only over TLS, `plain_only` only without.
    let src = |host: &str, user: &str, mode: &str, root: Option<&str>| {
        let root = root.map(|r| format!("sslrootcert = \"{r}\"")).unwrap_or_default();
        format!("host = \"{host}\"\nuser = \"{user}\"\nsslmode = \"{mode}\"\n{root}")
    };

    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "tls_only", "disable", None));
    assert_eq!(code, 1, "disable sends no TLS, which this user needs: {err}");
    assert!(err.contains("cannot connect to PostgreSQL at tls_only@127.0.0.1"), "{err}");
    assert!(err.contains("no encryption"), "the server's reason is passed on: {err}");

    for mode in ["prefer", "require"] {
        let (code, err) = dry_run(&ctx, &src("127.0.0.1", "tls_only", mode, None));
        assert_eq!(code, 0, "{mode} encrypts without checking the certificate: {err}");
    }
    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "plain_only", "prefer", None));
    assert_eq!(code, 1, "prefer does not fall back once the server has refused the TLS session: {err}");
    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "plain_only", "disable", None));
    assert_eq!(code, 0, "{err}");
    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "plain_only", "require", None));
    assert_eq!(code, 1, "require never falls back to plain TCP: {err}");

    let (code, err) = dry_run(&ctx, &src("localhost", "tls_only", "verify-full", Some(&ca)));
    assert_eq!(code, 0, "the certificate is signed by the CA and names localhost: {err}");
    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "tls_only", "verify-full", Some(&ca)));
    assert_eq!(code, 1, "the certificate does not name 127.0.0.1: {err}");
    assert!(err.contains("certificate not valid for name \"127.0.0.1\""), "{err}");
    assert!(err.contains("must be signed by a CA in source.sslrootcert"), "a hint follows: {err}");
    let (code, err) = dry_run(&ctx, &src("127.0.0.1", "tls_only", "verify-ca", Some(&ca)));
    assert_eq!(code, 0, "verify-ca checks the signature, not the name: {err}");

    let (code, err) = dry_run(&ctx, &src("localhost", "tls_only", "verify-full", None));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslmode verify-full needs the certificate of the CA"), "{err}");
    assert!(err.contains("set source.sslrootcert"), "{err}");

    // A CA that did not sign the server's certificate: the server's own certificate as "CA".
    let stranger = ctx.envs.path().join("stranger.crt");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=stranger", "-keyout"])
        .arg(ctx.envs.path().join("stranger.key"))
        .arg("-out")
        .arg(&stranger)
        .output()
        .expect("run openssl");
    assert!(out.status.success());
    let (code, err) = dry_run(&ctx, &src("localhost", "tls_only", "verify-full", Some(stranger.to_str().unwrap())));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");

    // `system`: the machine's CAs, none of which signed the test server's certificate; and only
    // with verify-full.
    let (code, err) = dry_run(&ctx, &src("localhost", "tls_only", "verify-full", Some("system")));
    assert_eq!(code, 1, "no CA of the system signed the throwaway CA's certificate: {err}");
    assert!(err.contains("UnknownIssuer"), "checked against the system's CAs, not accepted unchecked: {err}");
    // Without an sslmode, `system` makes verify-full the default, as in libpq 16.
    let (code, err) = dry_run(&ctx, "host = \"localhost\"\nuser = \"tls_only\"\nsslrootcert = \"system\"");
    assert_eq!(code, 1, "verify-full by default, then the same refusal of the certificate: {err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    let (code, err) = dry_run(&ctx, &src("localhost", "tls_only", "require", Some("system")));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sslrootcert=system trusts every CA of the operating system, so it needs sslmode=verify-full"));
}

#[tokio::test]
async fn no_secret_appears_in_any_output() {
    let ctx = Ctx::new(3).await;
    const AWS_SECRET: &str = "AwsSeCrEt-0b5e2d41";
    let source = "host = \"127.0.0.1\"\nuser = \"pw_user\"\nsslmode = \"disable\"\npassword_env = \"TEST_PG_PW\"";
    let profile = Profile { source: Some(source), ..Profile::default() };
    ctx.write_profile_with("local", &profile);
    ctx.write_profile_with("prod", &Profile { top: "protected = true\nbackup_dir = \"saved\"", ..profile });
    let backup = ctx.envs.path().join("b.tar");
    let runs: Vec<(&str, Vec<&str>, &str)> = vec![
        ("sync", vec!["-vv", "sync", "local"], PG_PASSWORD),
        ("json", vec!["--json", "-vv", "sync", "local"], PG_PASSWORD),
        ("dry run", vec!["-vv", "sync", "local", "--dry-run"], PG_PASSWORD),
        ("clean of a protected env", vec!["-vv", "sync", "prod", "--clean", "--yes"], PG_PASSWORD),
        ("backup", vec!["-vv", "backup", "local", "-o", backup.to_str().unwrap()], PG_PASSWORD),
        ("restore", vec!["-vv", "restore", backup.to_str().unwrap(), "--yes"], PG_PASSWORD),
        ("check", vec!["-vv", "check", "local"], PG_PASSWORD),
        ("verify", vec!["-vv", "verify", "local", "--full"], PG_PASSWORD),
        ("history", vec!["-vv", "history", "local"], PG_PASSWORD),
        ("report", vec!["--json", "-vv", "report", "local"], PG_PASSWORD),
        ("iam-policy", vec!["-vv", "iam-policy", "local"], PG_PASSWORD),
        ("wrong password", vec!["-vv", "sync", "local"], "WrOnG-pAsSwOrD-19"),
    ];
    for (what, args, password) in runs {
        for log in [None, Some("trace")] {
            let mut cmd = ctx.command(&args);
            cmd.env("TEST_PG_PW", password).env("AWS_SECRET_ACCESS_KEY", AWS_SECRET);
            if let Some(level) = log {
                cmd.env("RUST_LOG", level);
            }
            let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
            let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            if what == "wrong password" {
                assert!(all.contains("password authentication failed for user \"pw_user\""), "{all}");
            } else {
                assert!(out.status.success(), "{what}: {all}");
            }
            for secret in [PG_PASSWORD, "WrOnG-pAsSwOrD-19", AWS_SECRET] {
                assert!(!all.contains(secret), "{what} (RUST_LOG={log:?}) printed a secret:\n{all}");
            }
        }
    }
    // Nor in what ddbsync leaves behind: run records, backups, reject lists.
    let mut files = String::new();
    for entry in walk(ctx.envs.path()) {
        files.push_str(&String::from_utf8_lossy(&std::fs::read(entry).unwrap()));
    }
    let records = format!("{:?}", ctx.scan("cache-metadata").await);
    assert!(records.contains("RUN"), "the run records were read");
    for secret in [PG_PASSWORD, AWS_SECRET] {
        assert!(!files.contains(secret) && !records.contains(secret));
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
