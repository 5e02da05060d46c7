//! The README's first screen, held to what it says: its "your own database" quick start is run
//! exactly as written (the SQL, the two profile files, every `ddbsync` command line, in a fresh
//! directory), against this test's PostgreSQL and DynamoDB server, and what it wrote is read back
//! from DynamoDB; the Rust version and the Debian packages it names are those of `Cargo.toml` and
//! `scripts/setup.sh`.

use std::path::Path;
use std::process::Command;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::harness::{repo, servers, text, Ctx};

/// The README up to "## Using it".
fn first_screen() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let end = readme.find("\n## Using it").expect("a section \"Using it\"");
    readme[..end].to_string()
}

/// The code block after each `<!-- quickstart: WHAT -->` marker: (WHAT, the block's text).
fn quickstart(readme: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        let Some(what) = line.strip_prefix("<!-- quickstart: ").and_then(|l| l.strip_suffix(" -->")) else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(fence.starts_with("```"), "a code block right after the marker {what:?}, not {fence:?}");
        let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
        blocks.push((what.to_string(), body.join("\n") + "\n"));
    }
    blocks
}

/// The cells of the report's row for `table` (new, updated, unchanged, …).
fn report_row(report: &str, table: &str) -> Vec<String> {
    let row = report.lines().find(|l| l.contains(&format!(" {table} "))).unwrap_or_else(|| panic!("{report}"));
    row.trim_matches(|c| c == '│' || c == ' ').split('┆').map(|c| c.trim().to_string()).collect()
}

#[tokio::test]
async fn the_quick_start_works_exactly_as_the_readme_writes_it() {
    let readme = first_screen();
    let blocks = quickstart(&readme);
    let kinds: Vec<&str> = blocks.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(kinds, ["sql", "file envs/shop.toml", "file envs/mappings/shop.toml", "commands"]);
    let ctx = Ctx::new(1).await;
    let dir = tempfile::tempdir().unwrap();
    let mut commands = Vec::new();
    for (what, body) in &blocks {
        if what == "sql" {
            ctx.sql(&[body]);
        } else if let Some(path) = what.strip_prefix("file ") {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        } else {
            commands.extend(body.lines().map(str::to_string));
        }
    }
    // The connection the README's `export` line names, with this test's values (and its port,
    // and no TLS: the test server's certificate is its own).
    let export = commands.iter().find(|l| l.starts_with("export ")).expect("the export line");
    let names: Vec<&str> = export
        .split(" #")
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .map(|pair| pair.split_once('=').expect("NAME=value").0)
        .collect();
    assert_eq!(names, ["PGHOST", "PGDATABASE", "PGUSER"]);
    let port = servers().pg_port.to_string();
    let env = [
        ("PGHOST", "127.0.0.1"),
        ("PGDATABASE", ctx.db.as_str()),
        ("PGUSER", "postgres"),
        ("PGPORT", port.as_str()),
        ("PGSSLMODE", "disable"),
        ("AWS_ENDPOINT_URL_DYNAMODB", ctx.proxy.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("HOME", dir.path().to_str().unwrap()),
    ];
    let ddbsync = |args: &[&str], dir: &Path| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ddbsync"));
        command.args(args).current_dir(dir).env_remove("AWS_PROFILE").env_remove("PGPASSWORD").envs(env);
        command.output().unwrap()
    };
    let mut outputs = Vec::new();
    for line in commands.iter().filter(|l| l.starts_with("ddbsync ")) {
        let args: Vec<&str> = line.split(" #").next().unwrap().split_whitespace().skip(1).collect();
        let out = ddbsync(&args, dir.path());
        let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "`{line}`:\n{shown}");
        outputs.push((line.clone(), String::from_utf8_lossy(&out.stdout).into_owned()));
    }
    assert_eq!(outputs.len(), 5, "{outputs:?}");

    // What DynamoDB holds, read back through the server: one item per row, as PostgreSQL has it.
    let scan = ctx.dynamo.scan().table_name("shop-customers").consistent_read(true).send().await.unwrap();
    let mut items: Vec<(String, String, Option<String>)> = scan
        .items
        .unwrap_or_default()
        .iter()
        .map(|i| (text(&i["customer_id"]), text(&i["name"]), i.get("email").filter(|e| !e.is_null()).map(text)))
        .collect();
    items.sort();
    let rows: Vec<(String, String, Option<String>)> = ctx
        .query("SELECT id || '|' || name || '|' || coalesce(email, '') FROM customers ORDER BY id")
        .iter()
        .map(|r| {
            let parts: Vec<&str> = r.split('|').collect();
            (parts[0].into(), parts[1].into(), Some(parts[2].to_string()).filter(|e| !e.is_empty()))
        })
        .collect();
    assert_eq!(items, rows);
    assert_eq!(items.len(), 2);
    assert!(matches!(
        ctx.dynamo
            .describe_table()
            .table_name("shop-customers")
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
            .key_schema
            .unwrap()[0]
            .attribute_name
            .as_str(),
        "customer_id"
    ));
    // The dry run wrote nothing and said what it would write; the first sync wrote both rows, the
    // second none.
    assert_eq!(report_row(&outputs[1].1, "shop-customers")[1..4], ["2", "0", "0"], "{}", outputs[1].1);
    assert_eq!(report_row(&outputs[2].1, "shop-customers")[1..4], ["2", "0", "0"], "{}", outputs[2].1);
    assert_eq!(report_row(&outputs[3].1, "shop-customers")[1..4], ["0", "0", "2"], "{}", outputs[3].1);

    // "Change a row … and sync again: one item is written."
    let update = readme.split('`').find(|s| s.starts_with("UPDATE customers")).expect("the UPDATE the README shows");
    ctx.sql(&[update]);
    let out = ddbsync(&["sync", "shop"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(report_row(&report, "shop-customers")[1..4], ["0", "1", "1"], "{report}");
    let key = [("customer_id".to_string(), AttributeValue::N("2".into()))].into();
    let grace = ctx.dynamo.get_item().table_name("shop-customers").set_key(Some(key)).consistent_read(true);
    let grace = grace.send().await.unwrap().item.unwrap();
    assert_eq!(text(&grace["email"]), "grace@example.com");
}

/// `rust-version` is a promise: a toolchain that old builds `cargo install --locked`. Each locked
/// crate's own `rust-version` (from the registry's sources, which the build has unpacked) is at
/// most ours, and the Dockerfile of deploy/README.md names the same minor version.
#[test]
fn the_rust_version_builds_every_locked_crate() {
    fn parse(v: &str) -> Vec<u32> {
        v.trim_matches('"').split('.').map(|n| n.parse().unwrap()).collect()
    }
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let ours = cargo.lines().find_map(|l| l.strip_prefix("rust-version = ")).expect("rust-version");
    let ours = parse(ours);
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let sources: Vec<_> = std::fs::read_dir(home.join("registry/src")).unwrap().map(|e| e.unwrap().path()).collect();
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let (mut checked, mut newer) = (0, Vec::new());
    for package in lock.split("[[package]]").filter(|p| p.contains("source = \"registry+")) {
        let field =
            |key: &str| package.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim_matches('"').to_string());
        let (name, version) = (field("name = ").unwrap(), field("version = ").unwrap());
        let Some(manifest) =
            sources.iter().map(|s| s.join(format!("{name}-{version}/Cargo.toml"))).find(|p| p.exists())
        else {
            continue; // a crate of another platform's dependencies, never unpacked here
        };
        checked += 1;
        let text = std::fs::read_to_string(manifest).unwrap();
        if let Some(theirs) = text.lines().find_map(|l| l.trim().strip_prefix("rust-version = ")) {
            if parse(theirs) > ours {
                newer.push(format!("{name} {version} needs {}", theirs.trim_matches('"')));
            }
        }
    }
    assert!(checked > 200, "only {checked} locked crates found unpacked under {}", home.display());
    assert!(newer.is_empty(), "rust-version {ours:?} is older than what they need: {newer:?}");
    let docker = std::fs::read_to_string(repo().join("deploy/README.md")).unwrap();
    assert!(
        docker.contains(&format!("FROM rust:{}.{}-", ours[0], ours[1])),
        "deploy/README.md's Dockerfile builds with {ours:?}"
    );
}

#[test]
fn the_first_screen_names_the_rust_version_and_every_debian_package_setup_installs() {
    let screen = first_screen();
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let version = cargo.lines().find_map(|l| l.strip_prefix("rust-version = ")).expect("rust-version");
    let version = version.trim_matches('"');
    assert!(screen.contains(&format!("Rust toolchain of version {version} or")), "Rust {version}");
    let setup = std::fs::read_to_string(repo().join("scripts/setup.sh")).unwrap();
    let mut packages = Vec::new();
    for line in setup.lines().filter(|l| !l.contains("apt_install()")) {
        if let Some((_, rest)) = line.split_once("apt_install ") {
            let words = rest.split(';').next().unwrap().split_whitespace();
            packages.extend(words.filter(|w| !w.starts_with('"') && !w.starts_with('$')).map(str::to_string));
        }
    }
    assert!(packages.len() >= 5, "{packages:?}");
    for package in packages {
        assert!(screen.contains(&format!("`{package}`")), "the README's first screen names `{package}`");
    }
    assert!(screen.contains("cargo install --locked --path ."));
    assert!(screen.contains("scripts/demo.sh") && screen.contains("scripts/test.sh"));
    assert!(!screen.contains("INSTALL_TIME"), "the install time is measured and written in");
}
