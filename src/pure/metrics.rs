//! A sync's figures as metrics a scheduler alerts on, rendered from the run's report: the
//! Prometheus text format (for node_exporter's textfile collector and the Pushgateway) and
//! CloudWatch's embedded metric format (EMF, one JSON line per table and one per run).
//!
//! Every figure is a gauge (a run's figures replace the previous run's; none accumulates across
//! runs), named `ddbsync_*` with its unit in the name (`_usd`, `_seconds`, `_units`), labelled by
//! `env` and `table`. The last success time is the one figure a failed run does not have: it is
//! carried from what the previous run left ([`last_successes`], [`carried`]), so that an alert on
//! its age fires whatever the runs in between did. No label ever holds a run id: every run would
//! otherwise start new series, which a Pushgateway keeps for ever.
//!
//! Pure: the caller gives the clock's readings (`finished_at`, the duration).

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{json, Map, Value};

use crate::pure::report::{RunReport, TableReport};

/// The CloudWatch namespace of the EMF lines.
pub const NAMESPACE: &str = "ddbsync";

/// One table's figures from the run's report.
#[derive(Debug, Clone, PartialEq)]
pub struct TableFigures {
    pub table: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub deleted: u64,
    pub rejected: u64,
    /// Items not confirmed written (those of unknown outcome included), as the report counts them.
    pub failed: u64,
    pub write_units: f64,
    pub read_units: f64,
    pub cost_usd: f64,
    pub potential_usd: f64,
    pub saved_usd: f64,
}

impl TableFigures {
    pub fn of(t: &TableReport) -> TableFigures {
        TableFigures {
            table: t.table.clone(),
            created: t.created,
            updated: t.updated,
            unchanged: t.unchanged,
            deleted: t.deleted,
            rejected: t.rejected.len() as u64,
            failed: t.failed.len() as u64,
            write_units: t.write_units,
            read_units: t.read_units,
            cost_usd: t.cost.actual,
            potential_usd: t.cost.potential,
            saved_usd: t.cost.saved,
        }
    }

    /// The item counts by what the run did with them, as the `result` label spells them.
    fn items(&self) -> [(&'static str, u64); 6] {
        [
            ("created", self.created),
            ("updated", self.updated),
            ("unchanged", self.unchanged),
            ("deleted", self.deleted),
            ("rejected", self.rejected),
            ("failed", self.failed),
        ]
    }

    /// The measured figures with their name and unit (the name is the Prometheus metric's, less
    /// `ddbsync_`).
    fn amounts(&self) -> [(&'static str, f64, &'static str); 5] {
        [
            (
                "write_units",
                self.write_units,
                "write units DynamoDB billed for the run (deletes and index writes included)",
            ),
            ("read_units", self.read_units, "read units the diff's Scan consumed"),
            ("cost_usd", self.cost_usd, "cost of its writes and reads, in US dollars"),
            ("potential_usd", self.potential_usd, "cost had it rewritten every source item, in US dollars"),
            (
                "saved_usd",
                self.saved_usd,
                "saving: potential_usd less cost_usd (negative when the Scan cost more than it spared)",
            ),
        ]
    }
}

/// What a run's metrics are made of.
#[derive(Debug, Clone, PartialEq)]
pub struct RunFigures {
    pub env: String,
    pub dry_run: bool,
    /// The tables the run reported on (none when it failed before its first table).
    pub tables: Vec<TableFigures>,
    pub duration_seconds: f64,
    /// The process's exit code for the run.
    pub exit_code: u8,
    /// When the run ended, in seconds since the Unix epoch.
    pub finished_at: f64,
    /// Per table, when a run last succeeded, in seconds since the Unix epoch ([`carried`]).
    pub last_success: BTreeMap<String, f64>,
    /// The run's id, as its log events carry it: a property of the EMF lines (never a label or a
    /// dimension, which would start new series every run).
    pub run_id: String,
}

impl RunFigures {
    /// A run's figures: its report's tables, when it got as far as a report.
    pub fn new(env: &str, dry_run: bool, report: Option<&RunReport>, exit_code: u8) -> RunFigures {
        RunFigures {
            env: env.to_string(),
            dry_run,
            tables: report.map(|r| r.tables.iter().map(TableFigures::of).collect()).unwrap_or_default(),
            duration_seconds: 0.0,
            exit_code,
            finished_at: 0.0,
            last_success: BTreeMap::new(),
            run_id: String::new(),
        }
    }

    /// Whether the run counts as a success: it exited 0 and was not a rehearsal (a dry run syncs
    /// nothing).
    pub fn succeeded(&self) -> bool {
        self.exit_code == 0 && !self.dry_run
    }
}

/// The last success time per table after this run: `now` for every table of a run that
/// succeeded, the previous value for every other table, and for every table of a run that did
/// not succeed.
pub fn carried(previous: BTreeMap<String, f64>, run: &RunFigures) -> BTreeMap<String, f64> {
    let mut last = previous;
    if run.succeeded() {
        for t in &run.tables {
            last.insert(t.table.clone(), run.finished_at);
        }
    }
    last
}

/// The family header: `# HELP` then `# TYPE … gauge` (HELP text escapes `\` and newlines).
fn family(out: &mut String, name: &str, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP ddbsync_{name} {help}\n# TYPE ddbsync_{name} gauge");
}

/// A label value as the exposition format quotes it: `\`, `"` and newline escaped.
pub fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value as Prometheus parses it (`NaN`, `+Inf`, `-Inf` for what is not finite).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect();
    let _ = writeln!(out, "ddbsync_{name}{{{}}} {}", labels.join(","), number(value));
}

/// The run's metrics in the Prometheus text exposition format (version 0.0.4), every family with
/// its HELP and TYPE lines and its samples together.
pub fn prometheus(run: &RunFigures) -> String {
    let env = run.env.as_str();
    let mut out = String::new();
    if !run.tables.is_empty() {
        family(&mut out, "items", "Source rows and target items by what the last run did with them (label result)");
        for t in &run.tables {
            for (result, n) in t.items() {
                sample(&mut out, "items", &[("env", env), ("table", &t.table), ("result", result)], n as f64);
            }
        }
        let names = run.tables[0].amounts();
        for (at, (name, _, help)) in names.iter().enumerate() {
            family(&mut out, name, &format!("The last run's {help}"));
            for t in &run.tables {
                sample(&mut out, name, &[("env", env), ("table", &t.table)], t.amounts()[at].1);
            }
        }
    }
    let runs: [(&str, f64, &str); 4] = [
        ("run_duration_seconds", run.duration_seconds, "How long the last run took"),
        ("run_exit_code", f64::from(run.exit_code), "The last run's exit code (0 success, 3 differences; see README)"),
        ("run_finished_timestamp_seconds", run.finished_at, "When the last run ended, in seconds since the epoch"),
        ("run_dry_run", f64::from(u8::from(run.dry_run)), "1 when the last run was a dry run, which writes nothing"),
    ];
    for (name, value, help) in runs {
        family(&mut out, name, help);
        sample(&mut out, name, &[("env", env)], value);
    }
    if !run.last_success.is_empty() {
        let name = "last_success_timestamp_seconds";
        family(
            &mut out,
            name,
            "When a sync of the table last exited 0 (dry runs excluded), in seconds since the epoch",
        );
        for (table, at) in &run.last_success {
            sample(&mut out, name, &[("env", env), ("table", table)], *at);
        }
    }
    out
}

/// The last success times of environment `env` a previous [`prometheus`] text holds, per table
/// (lines that do not parse are passed over: the file is the previous run's, not a user's).
pub fn last_successes(text: &str, env: &str) -> BTreeMap<String, f64> {
    let prefix = "ddbsync_last_success_timestamp_seconds{";
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(prefix) else { continue };
        let Some((labels, value)) = parse_labels(rest) else { continue };
        let Ok(value) = value.trim().parse::<f64>() else { continue };
        if !value.is_finite() || labels.get("env").map(String::as_str) != Some(env) {
            continue;
        }
        if let Some(table) = labels.get("table") {
            found.insert(table.clone(), value);
        }
    }
    found
}

/// The environments whose metrics a previous [`prometheus`] text holds (its `env` labels).
pub fn environments(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("ddbsync_")?.split_once('{'))
        .filter_map(|(_, rest)| parse_labels(rest)?.0.remove("env"))
        .collect()
}

/// `k="v",k2="v2"} rest` → the labels (unescaped) and `rest`.
fn parse_labels(text: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches(',');
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.insert(name.to_string(), value);
        rest = &after[end + 1..];
    }
}

/// The run's figures as CloudWatch embedded-metric-format lines: one per table (dimensions `env`
/// and `table`) and one for the run (dimension `env`), each a JSON object on one line.
/// `timestamp_ms` is when the run ended, in milliseconds since the epoch.
pub fn emf(run: &RunFigures, timestamp_ms: i64) -> Vec<String> {
    let mut lines = Vec::new();
    for t in &run.tables {
        let mut metrics: Vec<(&str, f64, &str)> = t.items().iter().map(|&(n, v)| (n, v as f64, "Count")).collect();
        metrics
            .extend(t.amounts().iter().map(|&(n, v, _)| (n, v, if n.ends_with("_units") { "Count" } else { "None" })));
        let dims = [("env", run.env.as_str()), ("table", t.table.as_str())];
        lines.push(emf_line(&dims, &metrics, run, timestamp_ms));
    }
    let metrics = [
        ("duration_seconds", run.duration_seconds, "Seconds"),
        ("exit_code", f64::from(run.exit_code), "None"),
        // A count CloudWatch can alarm on when it is missing or 0 over a period.
        ("succeeded", f64::from(u8::from(run.succeeded())), "Count"),
    ];
    lines.push(emf_line(&[("env", run.env.as_str())], &metrics, run, timestamp_ms));
    lines
}

/// One EMF object: the `_aws` metadata naming the dimension set and the metrics, then the
/// dimensions (strings) and the values (numbers) as top-level members, then the properties
/// (`dry_run`, and `run_id`, which leads to the run's log events).
fn emf_line(dims: &[(&str, &str)], metrics: &[(&str, f64, &str)], run: &RunFigures, timestamp_ms: i64) -> String {
    let names: Vec<&str> = dims.iter().map(|(k, _)| *k).collect();
    let definitions: Vec<Value> = metrics.iter().map(|(n, _, unit)| json!({ "Name": n, "Unit": unit })).collect();
    let mut object = Map::new();
    object.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{ "Namespace": NAMESPACE, "Dimensions": [names], "Metrics": definitions }],
        }),
    );
    for (k, v) in dims {
        object.insert((*k).into(), Value::String((*v).into()));
    }
    for (n, v, _) in metrics {
        // EMF values are numbers; JSON has no NaN or infinity, and no figure here is either.
        let v = serde_json::Number::from_f64(*v).map_or(Value::Null, Value::Number);
        object.insert((*n).into(), v);
    }
    object.insert("dry_run".into(), Value::Bool(run.dry_run));
    object.insert("run_id".into(), Value::String(run.run_id.clone()));
    Value::Object(object).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableFigures {
        TableFigures {
            table: name.into(),
            created: 3,
            updated: 2,
            unchanged: 40,
            deleted: 1,
            rejected: 4,
            failed: 5,
            write_units: 7.5,
            read_units: 2.0,
            cost_usd: 0.0000125,
            potential_usd: 0.00008,
            saved_usd: -0.5,
        }
    }

    fn run(exit_code: u8, dry_run: bool) -> RunFigures {
        RunFigures {
            env: "prod".into(),
            dry_run,
            tables: vec![table("p-lessons"), table("p-topics")],
            duration_seconds: 12.25,
            exit_code,
            finished_at: 1_700_000_000.5,
            last_success: BTreeMap::new(),
            run_id: String::new(),
        }
    }

    /// The samples of a text: metric name with labels → value.
    fn samples(text: &str) -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (k, v) = l.rsplit_once(' ').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    }

    #[test]
    fn every_figure_of_every_table_is_a_sample_labelled_by_env_and_table() {
        let text = prometheus(&run(0, false));
        let s = samples(&text);
        assert_eq!(s[r#"ddbsync_items{env="prod",table="p-lessons",result="created"}"#], "3");
        assert_eq!(s[r#"ddbsync_items{env="prod",table="p-topics",result="failed"}"#], "5");
        assert_eq!(s[r#"ddbsync_items{env="prod",table="p-topics",result="rejected"}"#], "4");
        assert_eq!(s[r#"ddbsync_items{env="prod",table="p-topics",result="deleted"}"#], "1");
        assert_eq!(s[r#"ddbsync_write_units{env="prod",table="p-lessons"}"#], "7.5");
        assert_eq!(s[r#"ddbsync_cost_usd{env="prod",table="p-lessons"}"#], "0.0000125");
        assert_eq!(s[r#"ddbsync_saved_usd{env="prod",table="p-lessons"}"#], "-0.5");
        assert_eq!(s[r#"ddbsync_run_duration_seconds{env="prod"}"#], "12.25");
        assert_eq!(s[r#"ddbsync_run_exit_code{env="prod"}"#], "0");
        assert_eq!(s[r#"ddbsync_run_finished_timestamp_seconds{env="prod"}"#], "1700000000.5");
        assert_eq!(s.len(), 2 * 6 + 2 * 5 + 4, "{text}");
    }

    #[test]
    fn each_family_has_help_then_type_gauge_then_all_its_samples() {
        let text = prometheus(&RunFigures { last_success: [("t".to_string(), 1.0)].into(), ..run(3, false) });
        let mut seen = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            let name = line.strip_prefix("# HELP ").expect("a family starts with HELP").split(' ').next().unwrap();
            assert!(name.starts_with("ddbsync_"), "{name}");
            assert!(
                ["_usd", "_seconds", "_units"].iter().any(|unit| name.ends_with(unit))
                    || ["ddbsync_items", "ddbsync_run_exit_code", "ddbsync_run_dry_run"].contains(&name),
                "a unit in the name: {name}"
            );
            assert!(!seen.contains(&name.to_string()), "{name} twice");
            seen.push(name.to_string());
            assert_eq!(lines.next(), Some(format!("# TYPE {name} gauge").as_str()));
            let mut n = 0;
            while lines.peek().is_some_and(|l| !l.starts_with('#')) {
                let sample = lines.next().unwrap();
                assert!(sample.starts_with(&format!("{name}{{")), "{sample} under {name}");
                n += 1;
            }
            assert!(n > 0, "{name} has samples");
        }
        assert!(text.ends_with('\n'));
        assert!(seen.contains(&"ddbsync_last_success_timestamp_seconds".to_string()));
    }

    #[test]
    fn label_values_are_escaped_and_read_back() {
        assert_eq!(label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(label_value("a\nb"), r"a\nb");
        let mut odd = run(0, false);
        odd.env = "e\"v\\\n".into();
        odd.finished_at = 42.0;
        odd.last_success = carried(BTreeMap::new(), &odd);
        let text = prometheus(&odd);
        assert!(text.contains(r#"ddbsync_run_exit_code{env="e\"v\\\n"} 0"#), "{text}");
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), samples(&text).len(), "one line per sample");
        let back = last_successes(&text, &odd.env);
        assert_eq!(back, [("p-lessons".to_string(), 42.0), ("p-topics".to_string(), 42.0)].into());
        assert!(last_successes(&text, "prod").is_empty(), "another environment's lines are not ours");
    }

    #[test]
    fn values_that_are_not_finite_are_spelled_as_prometheus_reads_them() {
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NEG_INFINITY), "-Inf");
        assert_eq!(number(1e-9), "0.000000001");
    }

    #[test]
    fn a_success_stamps_its_tables_and_a_failure_or_a_dry_run_keeps_the_previous_times() {
        let previous: BTreeMap<String, f64> = [("p-lessons".into(), 10.0), ("p-other".into(), 5.0)].into();
        let done = carried(previous.clone(), &run(0, false));
        assert_eq!(
            done,
            [("p-lessons".into(), 1_700_000_000.5), ("p-other".into(), 5.0), ("p-topics".into(), 1_700_000_000.5)]
                .into()
        );
        for (code, dry) in [(1, false), (3, false), (5, false), (0, true)] {
            assert_eq!(carried(previous.clone(), &run(code, dry)), previous, "exit {code}, dry run {dry}");
        }
    }

    #[test]
    fn a_run_that_failed_before_its_tables_still_says_its_exit_code_and_keeps_the_last_success() {
        let mut failed = RunFigures::new("prod", false, None, 1);
        failed.last_success = carried([("p-lessons".into(), 10.0)].into(), &failed);
        let s = samples(&prometheus(&failed));
        assert_eq!(s[r#"ddbsync_run_exit_code{env="prod"}"#], "1");
        assert_eq!(s[r#"ddbsync_last_success_timestamp_seconds{env="prod",table="p-lessons"}"#], "10");
        assert!(!s.keys().any(|k| k.starts_with("ddbsync_items")));
    }

    #[test]
    fn the_previous_file_is_read_leniently() {
        let text = "garbage\nddbsync_last_success_timestamp_seconds{env=\"prod\",table=\"a\"} 12.5\n\
                    ddbsync_last_success_timestamp_seconds{env=\"prod\",table=\"b\"} NaN\n\
                    ddbsync_last_success_timestamp_seconds{env=\"prod\",table=\"c\" 1\n\
                    ddbsync_last_success_timestamp_seconds{env=\"prod\"} 3\n";
        assert_eq!(last_successes(text, "prod"), [("a".to_string(), 12.5)].into());
    }

    /// The EMF specification's rules: `_aws` with an integer `Timestamp` and `CloudWatchMetrics`;
    /// each directive a `Namespace`, `Dimensions` (arrays of at most 30 names, each a top-level
    /// string member) and at most 100 `Metrics` with `Name` and a CloudWatch `Unit`, each a top-level
    /// number member; one JSON object per line.
    #[test]
    fn emf_lines_follow_the_specification() {
        const UNITS: &[&str] = &["Seconds", "Microseconds", "Milliseconds", "Bytes", "Count", "Percent", "None"];
        let figures = run(3, false);
        let lines = emf(&figures, 1_700_000_000_500);
        assert_eq!(lines.len(), 3, "one per table and one for the run");
        for line in &lines {
            assert!(!line.contains('\n'));
            let v: Value = serde_json::from_str(line).unwrap();
            let aws = &v["_aws"];
            assert_eq!(aws["Timestamp"].as_i64(), Some(1_700_000_000_500), "{line}");
            let directives = aws["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(directives.len(), 1);
            let d = &directives[0];
            assert_eq!(d["Namespace"], NAMESPACE);
            for set in d["Dimensions"].as_array().unwrap() {
                let set = set.as_array().unwrap();
                assert!(!set.is_empty() && set.len() <= 30);
                for name in set {
                    assert!(v[name.as_str().unwrap()].is_string(), "dimension {name} is a string: {line}");
                }
            }
            let metrics = d["Metrics"].as_array().unwrap();
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for m in metrics {
                let name = m["Name"].as_str().unwrap();
                assert!(!name.is_empty() && name.len() <= 255);
                assert!(UNITS.contains(&m["Unit"].as_str().unwrap()), "{m}");
                assert!(v[name].is_number(), "metric {name} is a number: {line}");
            }
        }
        let lessons: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!((lessons["env"].as_str(), lessons["table"].as_str()), (Some("prod"), Some("p-lessons")));
        assert_eq!(lessons["created"].as_f64(), Some(3.0));
        assert_eq!(lessons["write_units"].as_f64(), Some(7.5));
        let whole: Value = serde_json::from_str(&lines[2]).unwrap();
        assert_eq!(whole["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["env"]]));
        assert_eq!((whole["exit_code"].as_f64(), whole["succeeded"].as_f64()), (Some(3.0), Some(0.0)));
        assert_eq!(whole["duration_seconds"].as_f64(), Some(12.25));
    }

    #[test]
    fn every_emf_line_carries_the_run_id_as_a_property_not_a_dimension() {
        let mut figures = run(0, false);
        figures.run_id = "host:42:1700000000000000".into();
        for line in emf(&figures, 1) {
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["run_id"], "host:42:1700000000000000", "{line}");
            let dims = &v["_aws"]["CloudWatchMetrics"][0]["Dimensions"];
            assert!(!dims.to_string().contains("run_id"), "{line}");
        }
    }

    #[test]
    fn every_help_text_reads_as_a_sentence() {
        let text = prometheus(&run(0, false));
        for help in text.lines().filter_map(|l| l.strip_prefix("# HELP ")) {
            let help = help.split_once(' ').unwrap().1;
            assert!(!help.contains("run's what") && !help.contains("run's potential_usd"), "{help}");
        }
        assert!(text.contains("# HELP ddbsync_cost_usd The last run's cost of its writes and reads, in US dollars\n"));
    }

    #[test]
    fn the_environments_of_a_previous_file_are_its_env_labels() {
        let text = "# HELP x\nddbsync_run_exit_code{env=\"prod\"} 0\n\
                    ddbsync_items{env=\"dev\",table=\"t\",result=\"created\"} 1\ngarbage{env=\"other\"} 1\n";
        let found: Vec<String> = environments(text).into_iter().collect();
        assert_eq!(found, ["dev", "prod"]);
    }

    #[test]
    fn the_figures_come_from_the_report_tables() {
        let t = TableReport {
            table: "x".into(),
            table_created: false,
            created: 1,
            updated: 2,
            unchanged: 3,
            stale: 0,
            orphans: 4,
            orphans_counted: true,
            delete_missing: true,
            deleted: 4,
            deleted_keys: vec![],
            deletes_refused: None,
            write_units: 9.0,
            read_units: 1.5,
            potential_write_units: 20.0,
            retries: 0,
            throttled: 0,
            cost: crate::pure::cost::Savings { actual: 0.1, potential: 0.3, saved: 0.2, saved_percent: 66.7 },
            rejected: vec![],
            failed: vec![],
            unknown: 0,
            diff: Default::default(),
            entities: vec![],
        };
        let f = TableFigures::of(&t);
        assert_eq!((f.created, f.updated, f.unchanged, f.deleted), (1, 2, 3, 4));
        assert_eq!((f.write_units, f.read_units, f.cost_usd, f.potential_usd, f.saved_usd), (9.0, 1.5, 0.1, 0.3, 0.2));
    }
}
