//! The files of `deploy/`: each passes its validator (kubernetes-validate, systemd-analyze verify,
//! the GitHub workflow schema through check-jsonschema, botocore's model of the AWS Batch API
//! through its own parameter validator), and what no validator knows is checked
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
    cronjob_of("kubernetes/ddbsync.yaml")
}

fn cronjob_of(path: &str) -> Value {
    let docs = yaml(&deploy(path));
    docs.into_iter().find(|d| d["kind"] == "CronJob").expect("a CronJob")
}

/// The sharded CronJob's container, and its ddbsync command line.
fn sharded_container() -> (Value, Vec<String>) {
    let job = cronjob_of("kubernetes/ddbsync-sharded.yaml");
    let container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0].clone();
    let strings = |v: &Value| v.as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect::<Vec<_>>();
    let mut args = strings(&container["command"]);
    args.extend(strings(&container["args"]));
    (container, args)
}

fn json_file(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(deploy(path)).unwrap()).unwrap()
}

/// The Batch job definition's command, its `Ref::` parameters replaced by the values `submit`
/// (the submit-job example) gives them, as AWS Batch does.
fn batch_command() -> Vec<String> {
    let definition = json_file("aws-batch/ddbsync-sharded.json");
    let submit = json_file("aws-batch/submit-job.json");
    let command = definition["containerProperties"]["command"].as_array().unwrap();
    command
        .iter()
        .map(|v| {
            let arg = v.as_str().unwrap();
            match arg.strip_prefix("Ref::") {
                Some(name) => submit["parameters"][name].as_str().unwrap_or_else(|| panic!("{name} submitted")).into(),
                None => arg.to_string(),
            }
        })
        .collect()
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
    lines.push(("the sharded CronJob".to_string(), sharded_container().1));
    lines.push(("the AWS Batch job definition".to_string(), batch_command()));
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
    assert_eq!(lines.len(), 5, "one in each file: {lines:?}");
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
    let files = [
        "kubernetes/ddbsync.yaml",
        "kubernetes/ddbsync-sharded.yaml",
        "systemd/ddbsync-sync.service",
        "github/ddbsync-nightly.yml",
        "README.md",
    ];
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
            // Only a run with --max-cost exits 7, and the job passes none (below).
            Exit::OverBudget => {
                assert!(actions.is_empty(), "exit 7 is never the job's: {actions:?}");
                continue;
            }
            Exit::Success => unreachable!(),
        };
        assert_eq!(actions, [wanted], "exit {} ({meaning})", *exit as u8);
    }
    let container = &spec["template"]["spec"]["containers"][0];
    assert!(!container.to_string().contains("--max-cost"), "the job's sync exits 7 only with --max-cost");
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

#[test]
fn the_sharded_cronjob_passes_kubernetes_validate_and_its_indexed_job_runs_one_shard_per_index() {
    let check = |path: &Path| {
        let mut command = Command::new(validator("kubernetes-validate"));
        command.args(["--strict", "--kubernetes-version", "1.31"]).arg(path);
        run(command)
    };
    let path = deploy("kubernetes/ddbsync-sharded.yaml");
    let out = check(&path);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("passed for resource cronjob/ddbsync-nightly-sharded"), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let bad = broken(dir.path(), &path, "backoffLimitPerIndex: 2", "backoffLimitPerIndex: twice");
    assert!(!check(&bad).status.success(), "a limit that is not a number is refused");
    let bad = broken(dir.path(), &path, "completionMode: Indexed", "completionMod: Indexed");
    assert!(!check(&bad).status.success(), "--strict refuses an unknown field");

    let job = cronjob_of("kubernetes/ddbsync-sharded.yaml");
    assert_eq!(job["spec"]["concurrencyPolicy"], "Forbid");
    let spec = &job["spec"]["jobTemplate"]["spec"];
    assert_eq!(spec["completionMode"], "Indexed", "JOB_COMPLETION_INDEX is set only in an Indexed Job");
    let (container, args) = sharded_container();
    let cli = Cli::try_parse_from(&args).unwrap();
    let ddbsync::cli::Command::Sync(sync) = cli.command else { panic!("a sync") };
    let shards = sync.sharding.shards.expect("--shards N, the index from the scheduler");
    assert_eq!(spec["completions"].as_u64(), Some(u64::from(shards)), "one completion per shard");
    assert_eq!(spec["parallelism"].as_u64(), Some(u64::from(shards)), "the shards run at once");
    assert!(spec["backoffLimitPerIndex"].as_u64().is_some_and(|n| n >= 1), "a shard is retried on its own");
    assert!(spec.get("backoffLimit").is_none(), "per index, not for the Job");
    // The run id every pod of the Job shares: its name, from the downward API.
    let env = container["env"].as_array().unwrap();
    let run_id = env.iter().find(|e| e["name"] == "DDBSYNC_RUN_ID").expect("DDBSYNC_RUN_ID");
    assert_eq!(run_id["valueFrom"]["fieldRef"]["fieldPath"], "metadata.labels['batch.kubernetes.io/job-name']");
    // What each shard does with that: the index and the id resolve as in a pod of the Job.
    let pod = [("JOB_COMPLETION_INDEX", "3"), ("DDBSYNC_RUN_ID", "ddbsync-nightly-sharded-29402550")];
    let sharding = ddbsync::cli::ShardArgs { run_id: Some(pod[1].1.into()), ..sync.sharding };
    let var = |name: &str| pod.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let (shard, id) = sharding.resolve(var).unwrap();
    assert_eq!((shard.to_string(), id.as_deref()), (format!("3/{shards}"), Some(pod[1].1)));
    let pod_spec = &spec["template"]["spec"];
    assert_eq!(pod_spec["restartPolicy"], "Never", "podFailurePolicy requires it");
    let profile = cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"].clone();
    assert_eq!(pod_spec["volumes"], profile, "the profile of ddbsync.yaml's ConfigMap, mounted the same way");
    assert_eq!(
        pod_spec["terminationGracePeriodSeconds"],
        cronjob()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        "the same graceful stop"
    );
}

#[test]
fn the_sharded_pod_failure_policy_fails_the_job_on_a_profile_error_and_a_shard_on_its_differences() {
    let job = cronjob_of("kubernetes/ddbsync-sharded.yaml");
    let rules = job["spec"]["jobTemplate"]["spec"]["podFailurePolicy"]["rules"].as_array().unwrap().clone();
    let mut named = Vec::new();
    for rule in rules.iter().filter(|r| r.get("onExitCodes").is_some()) {
        assert_eq!(rule["onExitCodes"]["containerName"], "ddbsync");
        assert_eq!(rule["onExitCodes"]["operator"], "In");
        for code in rule["onExitCodes"]["values"].as_array().unwrap() {
            named.push((code.as_u64().unwrap() as u8, rule["action"].as_str().unwrap().to_string()));
        }
    }
    for (exit, meaning) in Exit::ALL.iter().filter(|(e, _)| *e != Exit::Success) {
        let actions: Vec<&str> = named.iter().filter(|(c, _)| *c == *exit as u8).map(|(_, a)| a.as_str()).collect();
        let wanted = match exit {
            // Every shard has the same profile: none is retried, the Job fails.
            Exit::Usage => "FailJob",
            // This shard's report needs a person; the others finish theirs.
            Exit::Differences => "FailIndex",
            Exit::Locked => "Ignore",
            Exit::Error | Exit::Interrupted => "Count",
            Exit::Pending | Exit::OverBudget => {
                assert!(actions.is_empty(), "exits 6 and 7 are never the job's: {actions:?}");
                continue;
            }
            Exit::Success => unreachable!(),
        };
        assert_eq!(actions, [wanted], "exit {} ({meaning})", *exit as u8);
    }
    assert!(
        rules.iter().any(|r| r["action"] == "Ignore" && r["onPodConditions"][0]["type"] == "DisruptionTarget"),
        "an evicted pod's exit 5 is not counted"
    );
}

/// botocore's validation of `path` as the input of the Batch operation `operation`.
fn botocore_validates(operation: &str, path: &Path) -> Output {
    let script = "import json, sys\n\
        try:\n    import botocore.session\nexcept ImportError:\n    sys.exit('botocore is not installed in the validators: run scripts/setup.sh')\n\
        from botocore.validate import ParamValidator\n\
        model = botocore.session.get_session().get_service_model('batch')\n\
        shape = model.operation_model(sys.argv[1]).input_shape\n\
        report = ParamValidator().validate(json.load(open(sys.argv[2])), shape)\n\
        print(report.generate_report() or 'valid')\n\
        sys.exit(1 if report.has_errors() else 0)\n";
    let mut python = Command::new(validator("python"));
    python.args(["-c", script, operation]).arg(path);
    run(python)
}

#[test]
fn the_aws_batch_job_definition_and_its_submission_pass_botocores_model_of_the_batch_api() {
    let definition = deploy("aws-batch/ddbsync-sharded.json");
    let submit = deploy("aws-batch/submit-job.json");
    let out = botocore_validates("RegisterJobDefinition", &definition);
    assert!(out.status.success(), "{}", text(&out));
    let out = botocore_validates("SubmitJob", &submit);
    assert!(out.status.success(), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    for (path, operation, from, to) in [
        (&definition, "RegisterJobDefinition", "\"attempts\": 3", "\"attempts\": \"3\""),
        (&definition, "RegisterJobDefinition", "\"containerProperties\"", "\"containerProperty\""),
        (&submit, "SubmitJob", "\"size\": 4", "\"size\": \"four\""),
        (&submit, "SubmitJob", "\"jobQueue\"", "\"queue\""),
    ] {
        let out = botocore_validates(operation, &broken(dir.path(), path, from, to));
        assert!(!out.status.success(), "{from} → {to} is refused: {}", text(&out));
    }

    // One shard per child of the array job, each told N by the submitted parameter.
    let submit = json_file("aws-batch/submit-job.json");
    let definition = json_file("aws-batch/ddbsync-sharded.json");
    assert_eq!(submit["jobDefinition"], definition["jobDefinitionName"]);
    let size = submit["arrayProperties"]["size"].as_u64().unwrap();
    assert_eq!(
        submit["parameters"]["shards"].as_str().unwrap().parse::<u64>().ok(),
        Some(size),
        "--shards is the array's size"
    );
    assert_eq!(definition["parameters"]["shards"], submit["parameters"]["shards"], "the default agrees");
    let cli = Cli::try_parse_from(batch_command()).unwrap();
    let ddbsync::cli::Command::Sync(sync) = cli.command else { panic!("a sync") };
    // A child's environment as AWS Batch sets it: its index, and the parent's id with `:index`.
    let child = [("AWS_BATCH_JOB_ARRAY_INDEX", "2"), ("AWS_BATCH_JOB_ID", "5f3b7e1c-9b1d-4c11-a3f2-0d6c4f1e2a77:2")];
    let var = |name: &str| child.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
    let (shard, run_id) = sync.sharding.resolve(var).unwrap();
    assert_eq!(shard.to_string(), format!("2/{size}"));
    assert_eq!(run_id.as_deref(), Some("5f3b7e1c-9b1d-4c11-a3f2-0d6c4f1e2a77"), "the shards share the parent's id");

    // Every failing exit code of exit.rs has its action; Batch retries a code no entry names.
    let entries = definition["retryStrategy"]["evaluateOnExit"].as_array().unwrap();
    assert!(entries.len() <= 5, "AWS Batch takes at most 5 entries");
    // Exits 6 and 7 come only with --exit-code and --max-cost, which the job passes neither of.
    let never = [Exit::Success, Exit::Pending, Exit::OverBudget];
    for (exit, meaning) in Exit::ALL.iter().filter(|(e, _)| !never.contains(e)) {
        let code = (*exit as u8).to_string();
        let actions: Vec<&str> = entries
            .iter()
            .filter(|e| e["onExitCode"] == code.as_str())
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        let wanted = match exit {
            Exit::Usage | Exit::Differences => "EXIT",
            _ => "RETRY",
        };
        assert_eq!(actions, [wanted], "exit {code} ({meaning})");
    }
    assert!(definition["retryStrategy"]["attempts"].as_u64().is_some_and(|n| n >= 2));
}
