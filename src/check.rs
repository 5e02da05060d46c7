//! `ddbsync check`: everything a sync needs, checked without reading a table or writing anything.
//! The profile is valid (or loading it fails first); PostgreSQL answers; every mapping's query
//! compiles and returns its key columns (prepared, not run); AWS credentials resolve and DynamoDB
//! answers in the region; each target table exists with the key schema its mapping gives, or will
//! be created. Every check runs even after one fails, so that one run lists every problem.

use anyhow::Result;
use serde::Serialize;

use crate::build::{show_schema, show_table_schema, TablePlan};
use crate::dynamo::Dynamo;
use crate::exit::Exit;
use crate::profile::Profile;
use crate::source::Source;
use crate::sync;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not a problem: something the next sync will do (create a table).
    Note,
    /// Not checked because an earlier check failed.
    Skipped,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub status: Status,
    pub detail: String,
    /// What a failure makes the command exit with.
    #[serde(skip)]
    exit: Exit,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub environment: String,
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn exit(&self) -> Exit {
        self.checks.iter().filter(|c| c.status == Status::Fail).fold(Exit::Success, |e, c| e.max(c.exit))
    }

    fn push(&mut self, what: impl Into<String>, status: Status, detail: impl Into<String>) {
        let (what, detail) = (what.into(), detail.into());
        tracing::info!(?status, "{what}: {detail}");
        self.checks.push(Check { what, status, detail, exit: Exit::Success });
    }

    fn fail(&mut self, what: impl Into<String>, error: &anyhow::Error) {
        let exit = crate::exit_for(error);
        let what = what.into();
        tracing::info!("{what}: failed: {error:#}");
        self.checks.push(Check { what, status: Status::Fail, detail: format!("{error:#}"), exit });
    }

    /// A checklist: `[ ok ] what: detail`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let mark = match c.status {
                Status::Ok => " ok ",
                Status::Note => "note",
                Status::Skipped => "skip",
                Status::Fail => "FAIL",
            };
            out.push_str(&format!("[{mark}] {}: {}\n", c.what, c.detail));
        }
        let failed = self.checks.iter().filter(|c| c.status == Status::Fail).count();
        match failed {
            0 => out.push_str(&format!("{} is ready to sync.\n", self.environment)),
            1 => out.push_str("1 check failed.\n"),
            n => out.push_str(&format!("{n} checks failed.\n")),
        }
        out
    }
}

pub async fn run(profile: &Profile, tables: &[String]) -> Result<CheckReport> {
    let mappings = sync::selected(profile, tables)?;
    let mut report = CheckReport { environment: profile.env.clone(), checks: Vec::new() };
    report.push(
        "profile",
        Status::Ok,
        format!(
            "{} is valid: {} tables, region {}",
            profile.path.display(),
            profile.tables.len(),
            profile.target.region
        ),
    );

    let source = match Source::connect(profile).await {
        Ok(source) => {
            report.push("PostgreSQL", Status::Ok, format!("connected to {}", source.target));
            Some(source)
        }
        Err(e) => {
            report.fail("PostgreSQL", &e.into());
            None
        }
    };
    let mut plans: Vec<Option<TablePlan>> = Vec::new();
    for mapping in &mappings {
        let what = match mapping.is_multi() {
            true => format!("queries of {} ({})", mapping.name, mapping.entities.len()),
            false => format!("query of {}", mapping.name),
        };
        let Some(source) = &source else {
            report.push(what, Status::Skipped, "PostgreSQL did not answer");
            plans.push(None);
            continue;
        };
        match sync::plan(source, mapping).await {
            Ok(plan) => {
                report.push(what, Status::Ok, format!("compiles; key ({})", show_table_schema(&plan.schema)));
                plans.push(Some(plan));
            }
            Err(e) => {
                report.fail(what, &e);
                plans.push(None);
            }
        }
    }

    let dynamo = Dynamo::connect(&profile.target).await;
    let reachable = match dynamo.credentials().await {
        Err(e) => {
            report.fail(
                "AWS credentials",
                &anyhow::anyhow!("none found: {e} (set AWS_PROFILE, target.aws_profile or AWS_ACCESS_KEY_ID)"),
            );
            false
        }
        Ok(()) => {
            report.push("AWS credentials", Status::Ok, "found");
            match dynamo.describe(&profile.metadata_table).await {
                Ok(found) => {
                    let state = if found.is_some() { "exists" } else { "will be created by the first sync" };
                    report.push(
                        "DynamoDB",
                        Status::Ok,
                        format!(
                            "answers in {}; metadata table {} {state}",
                            sync::location(profile),
                            profile.metadata_table
                        ),
                    );
                    true
                }
                Err(e) => {
                    report.fail("DynamoDB", &anyhow::anyhow!("{} in {}", e, sync::location(profile)));
                    false
                }
            }
        }
    };
    for (mapping, plan) in mappings.iter().zip(&plans) {
        let (table, what) = (&mapping.table_name, format!("table {}", mapping.table_name));
        if !reachable {
            report.push(what, Status::Skipped, "DynamoDB did not answer");
            continue;
        }
        let info = match dynamo.describe(table).await {
            Ok(info) => info,
            Err(e) => {
                report.fail(what, &e.into());
                continue;
            }
        };
        let mismatch =
            info.as_ref().zip(plan.as_ref()).and_then(|(i, p)| sync::key_mismatch(&i.key_schema, mapping, p));
        let missing = info.as_ref().zip(plan.as_ref()).map(|(i, p)| sync::missing_indexes(i, p)).unwrap_or_default();
        match (info, mismatch) {
            (None, _) => report.push(what, Status::Note, "does not exist; the next sync creates it"),
            (Some(_), Some(mismatch)) => report.fail(what, &anyhow::anyhow!("{mismatch}; `sync --clean` recreates it")),
            (Some(_), None) if !missing.is_empty() => {
                report.fail(what, &anyhow::anyhow!("{}", sync::missing_indexes_message(&missing, profile, mapping)))
            }
            (Some(info), None) => {
                let checked = if plan.is_some() { "as the mapping gives" } else { "not compared: the query failed" };
                let detail = format!(
                    "{}, key ({}) {checked}, about {} items",
                    info.status,
                    show_schema(&info.key_schema),
                    info.item_count
                );
                report.push(what, Status::Ok, detail);
            }
        }
    }
    Ok(report)
}
