//! The files of `deploy/`: each passes its validator (kubernetes-validate, systemd-analyze verify,
//! the GitHub workflow schema through check-jsonschema), and what no validator knows is checked
//! here: every ddbsync command line in them parses with the real command line, the exit codes the
//! podFailurePolicy names are those of `exit.rs`, each with the action it deserves, the grace
//! periods allow ddbsync's graceful stop, and the ConfigMap's profile loads. A validator that is
//! missing fails the test (`scripts/setup.sh` installs them); none is skipped. Each validator is
//! also shown a broken copy, which it must refuse: a validator that passes everything proves nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use clap::Parser;
use ddbsync::cli::Cli;
use ddbsync::exit::Exit;
use serde_json::Value;

use crate::harness::{repo, tools};

fn validator(name: &str) -> PathBuf {
    let path = tools().join("validators/bin").join(name);
    assert!(path.exists(), "{name} is not installed at {}: run scripts/setup.sh", path.display());
    path
}

fn run(mut command: Command) -> Output {
    let shown = format!("{command:?}");
    command.output().unwrap_or_else(|e| panic!("{shown}: {e}; run scripts/setup.sh"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// A file of `deploy/`.
fn deploy(path: &str) -> PathBuf {
    repo().join("deploy").join(path)
}

/// A copy of `path` with `from` replaced by `to` (which must be there), in `dir`.
fn broken(dir: &Path, path: &Path, from: &str, to: &str) -> PathBuf {
    let original = std::fs::read_to_string(path).unwrap();
    assert!(original.contains(from), "{from:?} in {}", path.display());
    let copy = dir.join(path.file_name().unwrap());
    std::fs::write(&copy, original.replacen(from, to, 1)).unwrap();
    copy
}

/// The YAML documents of a file, as JSON (through the validators' own PyYAML).
fn yaml(path: &Path) -> Vec<Value> {
    let mut python = Command::new(validator("python"));
    python.args(["-c", "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)"]);
    let out = run({
        python.arg(path);
        python
    });
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cronjob() -> Value {
    let docs = yaml(&deploy("kubernetes/ddbsync.yaml"));
    docs.into_iter().find(|d| d["kind"] == "CronJob").expect("a CronJob")
}

/// The lines of the systemd service whose key is `key` (`ExecStart`), their values.
fn unit_values(key: &str) -> Vec<String> {
    let unit = std::fs::read_to_string(deploy("systemd/ddbsync-sync.service")).unwrap();
    unit.lines().filter_map(|l| l.strip_prefix(&format!("{key}="))).map(str::to_string).collect()
}

#[test]
fn the_kubernetes_manifests_pass_kubernetes_validate_strict() {
    let check = |path: &Path| {
        let mut command = Command::new(validator("kubernetes-validate"));
        command.args(["--strict", "--kubernetes-version", "1.31"]).arg(path);
        run(command)
    };
    let out = check(&deploy("kubernetes/ddbsync.yaml"));
    assert!(out.status.success(), "{}", text(&out));
    for resource in ["serviceaccount/ddbsync", "configmap/ddbsync-profile", "cronjob/ddbsync-nightly"] {
        assert!(text(&out).contains(&format!("passed for resource {resource}")), "{}", text(&out));
    }
    let dir = tempfile::tempdir().unwrap();
    let grace = ("terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: a minute");
    let bad = broken(dir.path(), &deploy("kubernetes/ddbsync.yaml"), grace.0, grace.1);
    let out = check(&bad);
    assert!(!out.status.success(), "a grace period that is not a number is refused: {}", text(&out));
    let bad = broken(dir.path(), &deploy("kubernetes/ddbsync.yaml"), "backoffLimit: 3", "backofLimit: 3");
    assert!(!check(&bad).status.success(), "--strict refuses an unknown field");
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    // The unit names /usr/local/bin/ddbsync, which systemd-analyze checks is executable: the copy
    // names the binary under test instead.
    let dir = tempfile::tempdir().unwrap();
    let service = broken(
        dir.path(),
        &deploy("systemd/ddbsync-sync.service"),
        "ExecStart=/usr/local/bin/ddbsync ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_ddbsync")),
    );
    std::fs::copy(deploy("systemd/ddbsync-sync.timer"), dir.path().join("ddbsync-sync.timer")).unwrap();
    let verify = |files: &[PathBuf]| {
        let mut command = Command::new("systemd-analyze");
        command.args(["verify", "--man=no"]).args(files);
        run(command)
    };
    let units = [service.clone(), dir.path().join("ddbsync-sync.timer")];
    let out = verify(&units);
    // systemd-analyze only warns about an unknown key or a bad value, and exits 0: nothing may be said.
    assert!(out.status.success() && text(&out).trim().is_empty(), "{}", text(&out));

    let bad = dir.path().join("bad");
    std::fs::create_dir(&bad).unwrap();
    let stop = broken(&bad, &service, "TimeoutStopSec=60s", "TimeoutStopSec=sixty");
    std::fs::copy(dir.path().join("ddbsync-sync.timer"), bad.join("ddbsync-sync.timer")).unwrap();
    let out = verify(&[stop, bad.join("ddbsync-sync.timer")]);
    assert!(text(&out).contains("Failed to parse"), "a bad value is reported: {}", text(&out));
    // Units are found by name: the broken timer goes beside a good service, away from the good timer.
    let worse = dir.path().join("worse");
    std::fs::create_dir(&worse).unwrap();
    std::fs::copy(&service, worse.join("ddbsync-sync.service")).unwrap();
    let on = ("OnCalendar=*-*-* 02:30:00 UTC", "OnCalendar=nightly");
    let timer = broken(&worse, &deploy("systemd/ddbsync-sync.timer"), on.0, on.1);
    let out = verify(&[worse.join("ddbsync-sync.service"), timer]);
    assert!(!out.status.success(), "a timer that never fires is refused: {}", text(&out));
}

#[test]
fn the_github_workflow_passes_the_workflow_schema() {
    let check = |path: &Path| {
        let mut command = Command::new(validator("check-jsonschema"));
        command.args(["--builtin-schema", "vendor.github-workflows"]).arg(path);
        run(command)
    };
    let out = check(&deploy("github/ddbsync-nightly.yml"));
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let bad = broken(dir.path(), &deploy("github/ddbsync-nightly.yml"), "runs-on:", "runs_on:");
    assert!(!check(&bad).status.success(), "a job without runs-on is refused");

    let workflow = &yaml(&deploy("github/ddbsync-nightly.yml"))[0];
    assert_eq!(workflow["permissions"]["id-token"], "write", "OIDC needs the id token");
    assert_eq!(workflow["concurrency"]["cancel-in-progress"], false, "a running sync is never cancelled");
    // YAML 1.1 (PyYAML) reads the key `on` as true.
    let on = workflow.get("on").or_else(|| workflow.get("true")).expect("on:");
    assert!(on["schedule"][0]["cron"].is_string(), "{on}");
    let steps = workflow["jobs"]["sync"]["steps"].as_array().unwrap();
    let uses = |prefix: &str| steps.iter().find(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix)));
    let aws = uses("aws-actions/configure-aws-credentials@").expect("OIDC credentials");
    assert!(aws["with"]["role-to-assume"].is_string() && aws["with"].get("aws-access-key-id").is_none());
    let upload = uses("actions/upload-artifact@").expect("the report uploaded");
    assert_eq!(upload["if"], "always()", "the report is uploaded whatever the exit code");
    assert!(upload["with"]["path"].as_str().unwrap().contains("report.json"));
    let sync = steps.iter().find(|s| s["run"].as_str().is_some_and(|r| r.contains("ddbsync "))).unwrap();
    assert!(
        sync["run"].as_str().unwrap().contains("--json") && sync["run"].as_str().unwrap().contains("> report.json")
    );
}

/// Every `ddbsync …` command line of the three files, as arguments.
fn command_lines() -> Vec<(String, Vec<String>)> {
    let mut lines = Vec::new();
    let container = &cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> =
        container["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    args.extend(container["args"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    lines.push(("the CronJob".to_string(), args));
    for exec in unit_values("ExecStart") {
        lines.push(("the systemd service".into(), exec.split_whitespace().map(str::to_string).collect()));
    }
    let workflow = &yaml(&deploy("github/ddbsync-nightly.yml"))[0];
    for step in workflow["jobs"]["sync"]["steps"].as_array().unwrap() {
        for line in step["run"].as_str().unwrap_or_default().lines() {
            if line.trim_start().starts_with("ddbsync ") {
                // The command, without its redirection (no quoting in these lines).
                let command = line.split('>').next().unwrap();
                lines.push(("the workflow".into(), command.split_whitespace().map(str::to_string).collect()));
            }
        }
    }
    lines
}

#[test]
fn every_ddbsync_command_line_in_deploy_parses_with_the_real_command_line() {
    let lines = command_lines();
    assert_eq!(lines.len(), 3, "one in each file: {lines:?}");
    for (file, args) in lines {
        assert!(args[0].ends_with("ddbsync"), "{file}: {args:?}");
        let cli = Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{file}: {args:?}: {e}"));
        assert!(cli.json, "{file}: the report as JSON, for the logs");
        match cli.command {
            ddbsync::cli::Command::Sync(sync) => {
                assert_eq!(sync.env, "nightly", "{file}: the environment of the ConfigMap");
                let wait = sync.lock_timeout.unwrap_or_else(|| panic!("{file}: a scheduled run waits for the lock"));
                assert!(wait >= Duration::from_secs(60), "{file}: {wait:?}");
                assert!(!sync.dry_run && !sync.clean && !sync.force_unlock, "{file}");
            }
            other => panic!("{file}: a sync, not {other:?}"),
        }
    }
}

#[test]
fn every_ddbsync_command_their_comments_and_the_readme_quote_parses_too() {
    let mut quoted = Vec::new();
    let files = ["kubernetes/ddbsync.yaml", "systemd/ddbsync-sync.service", "github/ddbsync-nightly.yml", "README.md"];
    for file in files {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        for (i, part) in text.split('`').enumerate() {
            if i % 2 == 1 && part.starts_with("ddbsync ") {
                let args: Vec<&str> = part.split_whitespace().collect();
                Cli::try_parse_from(&args).unwrap_or_else(|e| panic!("{file}: `{part}`: {e}"));
                quoted.push(part.to_string());
            }
        }
    }
    assert!(quoted.len() >= 2, "{quoted:?}");
}

#[test]
fn the_pod_failure_policy_maps_every_exit_code_of_exit_rs() {
    let job = &cronjob()["spec"];
    assert_eq!(job["concurrencyPolicy"], "Forbid");
    let spec = &job["jobTemplate"]["spec"];
    assert_eq!(spec["template"]["spec"]["restartPolicy"], "Never", "podFailurePolicy requires it");
    assert!(spec["backoffLimit"].as_u64().is_some_and(|n| n >= 1), "exit codes 1 and 5 are retried");
    let rules = spec["podFailurePolicy"]["rules"].as_array().unwrap();
    let mut named = Vec::new();
    for rule in rules.iter().filter(|r| r.get("onExitCodes").is_some()) {
        let codes = &rule["onExitCodes"];
        assert_eq!(codes["operator"], "In");
        assert_eq!(codes["containerName"], "ddbsync");
        for code in codes["values"].as_array().unwrap() {
            named.push((code.as_u64().unwrap() as u8, rule["action"].as_str().unwrap().to_string()));
        }
    }
    // Each failing code of exit.rs exactly once, with the action its meaning calls for; a code
    // added to exit.rs fails here until the policy says what to do with it.
    for (exit, meaning) in Exit::ALL.iter().filter(|(e, _)| *e != Exit::Success) {
        let actions: Vec<&str> = named.iter().filter(|(c, _)| *c == *exit as u8).map(|(_, a)| a.as_str()).collect();
        let wanted = match exit {
            // Nothing was done, and retrying does the same / a person must read the report.
            Exit::Usage | Exit::Differences => "FailJob",
            // Another run held the lock past --lock-timeout: try again, not as a failure.
            Exit::Locked => "Ignore",
            // A server failed, or a signal stopped it: the next attempt completes the work.
            Exit::Error | Exit::Interrupted => "Count",
            // Only `sync --dry-run --exit-code` exits 6, and the job runs no such command (below).
            Exit::Pending => {
                assert!(actions.is_empty(), "exit 6 is never the job's: {actions:?}");
                continue;
            }
            Exit::Success => unreachable!(),
        };
        assert_eq!(actions, [wanted], "exit {} ({meaning})", *exit as u8);
    }
    let container = &spec["template"]["spec"]["containers"][0];
    assert!(!container.to_string().contains("--exit-code"), "the job's sync exits 6 only with --exit-code");
    let known: Vec<u8> = Exit::ALL.iter().map(|(e, _)| *e as u8).collect();
    assert!(named.iter().all(|(c, _)| known.contains(c) && *c != 0), "only codes ddbsync exits with: {named:?}");
    assert!(
        rules.iter().any(|r| r["action"] == "Ignore" && r["onPodConditions"][0]["type"] == "DisruptionTarget"),
        "an evicted pod's exit 5 is not counted"
    );
}

#[test]
fn the_grace_periods_allow_the_graceful_stop_and_the_configmap_profile_loads() {
    // The ConfigMap's files, where its volume puts them.
    let docs = yaml(&deploy("kubernetes/ddbsync.yaml"));
    let config = docs.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let job = cronjob();
    let pod = &job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let volume = pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "profile").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for item in volume["configMap"]["items"].as_array().unwrap() {
        let path = dir.path().join(item["path"].as_str().unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, config["data"][item["key"].as_str().unwrap()].as_str().unwrap()).unwrap();
    }
    let profile = ddbsync::profile::load(dir.path(), "nightly").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(profile.tables.len(), 1);

    // After SIGTERM: the work ends within STOPPED_WITHIN, then each cancel request of an abandoned
    // query may take the connect timeout.
    let connect = profile.source.connect_timeout.expect("the profile sets it, and the grace period counts on it");
    let stop = ddbsync::engine::stop::STOPPED_WITHIN + connect;
    let kubernetes = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(kubernetes >= stop, "terminationGracePeriodSeconds {kubernetes:?} < the stop's {stop:?}");
    let systemd = unit_values("TimeoutStopSec");
    let systemd = humantime::parse_duration(&systemd[0]).unwrap();
    assert!(systemd >= stop, "TimeoutStopSec {systemd:?} < the stop's {stop:?}");
    assert_eq!(unit_values("KillSignal"), ["SIGTERM"]);
    assert_eq!(unit_values("Type"), ["oneshot"]);
    let timer = std::fs::read_to_string(deploy("systemd/ddbsync-sync.timer")).unwrap();
    assert!(timer.lines().any(|l| l == "Persistent=true"), "a missed night runs at the next boot");
}
