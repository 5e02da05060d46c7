//! The binary's surface as installed: `--version`, the completion scripts and the manual page
//! it prints, a shell it does not know, and the HTTPS client the release features keep.

use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::harness::repo;

fn ddbsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddbsync")).args(args).stdin(Stdio::null()).output().expect("run ddbsync")
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").current_dir(repo()).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `--version` and `-V` say the same: the package version, and, built from this checkout, the
/// commit git says HEAD is and that commit's date (`-dirty` when the built sources differ).
#[test]
fn version_names_the_commit_and_its_date() {
    let long = ddbsync(&["--version"]);
    let short = ddbsync(&["-V"]);
    assert_eq!(long.status.code(), Some(0));
    assert_eq!(long.stdout, short.stdout);
    let text = String::from_utf8(long.stdout).unwrap();
    let rest = text.strip_prefix(concat!("ddbsync ", env!("CARGO_PKG_VERSION"))).expect(&text);
    let top = git(&["rev-parse", "--show-toplevel"]).map(std::path::PathBuf::from);
    if top.and_then(|t| t.canonicalize().ok()) != repo().canonicalize().ok() {
        assert_eq!(rest, "\n", "not built from a checkout: the version alone");
        return;
    }
    let inner = rest.strip_prefix(" (").and_then(|r| r.strip_suffix(")\n")).expect(&text);
    let (hash, date) = inner.split_once(' ').expect(&text);
    let head = git(&["rev-parse", "HEAD"]).unwrap();
    let hash = hash.strip_suffix("-dirty").unwrap_or(hash);
    assert_eq!(hash.len(), 12, "{text}");
    assert!(head.starts_with(hash), "{text}: HEAD is {head}");
    let committed = git(&["show", "-s", "--format=%cI", "HEAD"]).unwrap();
    assert_eq!(date, &committed[..10], "{text}: committed {committed}");
}

/// The bash script the binary prints is valid bash, and bash, running it, completes the commands.
#[test]
fn bash_completion_script_parses_and_completes_the_commands() {
    let out = ddbsync(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("ddbsync");
    std::fs::write(&script, &out.stdout).unwrap();
    let syntax = Command::new("bash").arg("-n").arg(&script).output().unwrap();
    assert!(syntax.status.success(), "{}", String::from_utf8_lossy(&syntax.stderr));
    let program = format!(
        "source '{}'; COMP_WORDS=(ddbsync ''); COMP_CWORD=1; _ddbsync ddbsync '' ddbsync; echo \"${{COMPREPLY[*]}}\"",
        script.display()
    );
    let offered = Command::new("bash").args(["--norc", "-c", &program]).output().unwrap();
    let offered = String::from_utf8(offered.stdout).unwrap();
    for command in ["sync", "check", "verify", "backup", "restore", "tables", "completions", "man"] {
        assert!(offered.split_whitespace().any(|w| w == command), "{command} in {offered}");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_known_ones() {
    let out = ddbsync(&["completions", "tcsh"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'tcsh' for '<SHELL>'"), "{stderr}");
    assert!(stderr.contains("[possible values: bash, elvish, fish, powershell, zsh]"), "{stderr}");
    assert!(out.stdout.is_empty());
}

/// The page the binary prints, read by `man` where it is installed (else by groff, else only
/// checked for being a man page at all).
#[test]
fn the_man_page_reads_in_man() {
    let out = ddbsync(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    let page = String::from_utf8(out.stdout).unwrap();
    assert!(page.contains(".TH ddbsync 1"), "{page}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ddbsync.1");
    std::fs::write(&file, &page).unwrap();
    let man = Command::new("man").arg("-l").arg(&file).env("MANPAGER", "cat").env("MANWIDTH", "100").output();
    // scripts/setup.sh installs man-db (and groff-base with it): a machine without them fails here.
    let man = man
        .or_else(|_| Command::new("groff").args(["-man", "-Tutf8"]).arg(&file).output())
        .expect("neither man nor groff is installed: run scripts/setup.sh");
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(man.status.success(), "{}", String::from_utf8_lossy(&man.stderr));
    assert_eq!(String::from_utf8_lossy(&man.stderr), "", "warnings");
    // man(1) prints bold with backspaces to a pipe; what is read is the same.
    let plain: String = text.split('\u{8}').map(|part| part.chars().skip(1).collect::<String>()).collect();
    let plain = if text.contains('\u{8}') { plain } else { text.to_string() };
    for expected in ["ddbsync tables create", "--lock-timeout", "EXIT STATUS", "DDBSYNC_ENVS_DIR"] {
        assert!(plain.contains(expected), "{expected} in {plain}");
    }
}

/// The AWS SDK's HTTPS client is compiled in: an https:// endpoint gets a TLS handshake (a
/// ClientHello record: content type 22, version 3.x), not plain HTTP or a refusal to connect.
#[test]
fn an_https_endpoint_is_spoken_to_in_tls() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut first = [0u8; 3];
            let _ = tx.send(stream.read_exact(&mut first).map(|_| first));
        }
        // The listener is dropped here: every retry is refused, and the run ends.
    });
    let envs = tempfile::tempdir().unwrap();
    std::fs::create_dir(envs.path().join("mappings")).unwrap();
    std::fs::copy(repo().join("envs/mappings/pni.toml"), envs.path().join("mappings/pni.toml")).unwrap();
    let profile = format!(
        "mappings = \"mappings/pni.toml\"\ntable_prefix = \"t-\"\n[source]\nhost = \"127.0.0.1\"\ndbname = \"x\"\n\
         [target]\nregion = \"us-east-1\"\nendpoint_url = \"https://127.0.0.1:{port}\"\n"
    );
    std::fs::write(envs.path().join("tls.toml"), profile).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ddbsync"))
        .arg("--envs-dir")
        .arg(envs.path())
        .args(["history", "tls"])
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .env("HOME", envs.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("ddbsync connected").expect("it sent 3 bytes");
    assert_eq!(first[0], 22, "a TLS handshake record, not {:?}", String::from_utf8_lossy(&first));
    assert_eq!(first[1], 3, "TLS version 3.x: {first:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("(https://127.0.0.1:{port}): no answer from DynamoDB")), "{stderr}");
}
