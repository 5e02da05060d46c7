//! `ddbsync check`: everything a sync needs, checked without writing anything. The profile is
//! valid (or loading it fails first); the source database answers; every mapping's query compiles and
//! returns its key columns (prepared, not run); AWS credentials resolve and DynamoDB answers in the
//! region; each target table exists with the key schema its mapping gives, or will be created; each
//! table's `scope` is an expression DynamoDB accepts (a Scan of one item with it as the filter, the
//! only read `check` makes, or a Query of an empty partition of the metadata table) and reads
//! attributes the queries give. Every check runs even after one
//! fails, so that one run lists every problem.

use anyhow::Result;
use serde::Serialize;

use crate::engine::preflight::{self, Compared};
use crate::engine::sync;
use crate::exit::Exit;
use crate::profile::{scope_attributes, Profile, ProfileError, TableMapping};
use crate::pure::params::Params;
use crate::pure::plan::{show_schema, show_table_schema, TablePlan};
use crate::source;
use crate::target::dynamo;
use crate::target::Target;
use crate::target::TargetError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not a problem: something the next sync will do (create a table).
    Note,
    /// Not checked because an earlier check failed.
    Skipped,
    /// A sync can run, but likely not as meant.
    Warn,
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
                Status::Warn => "warn",
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
    let mappings = preflight::selected(profile, tables)?;
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

    let system = profile.source.kind.system();
    // A password file libpq ignores is said whether or not the login needs it: the next server
    // (or a changed pg_hba.conf) may.
    if profile.source.kind == crate::profile::SourceKind::Postgres {
        if let Ok(resolved) = source::postgres::resolve::resolve(profile) {
            if let Some(warning) = resolved.password_found.warning {
                report.push("PostgreSQL password file", Status::Warn, warning);
            }
        }
    }
    let source = match source::connect(profile).await {
        Ok(source) => {
            report.push(system, Status::Ok, format!("connected to {}", source.target()));
            Some(source)
        }
        Err(e) => {
            report.fail(system, &e.into());
            None
        }
    };
    let mut plans: Vec<Option<TablePlan>> = Vec::new();
    for mapping in &mappings {
        let what = match (&mapping.promote, mapping.is_multi()) {
            (Some(promote), _) => format!("source table {} of {}", promote.source_table, mapping.name),
            (None, true) => format!("queries of {} ({})", mapping.name, mapping.entities.len()),
            (None, false) => format!("query of {}", mapping.name),
        };
        let Some(source) = &source else {
            report.push(what, Status::Skipped, format!("not checked: no connection to {system} (above)"));
            plans.push(None);
            continue;
        };
        match preflight::plan(source.as_ref(), mapping).await {
            Ok(plan) => {
                let found = if mapping.promote.is_some() { "found" } else { "compiles" };
                report.push(what, Status::Ok, format!("{found}; key ({})", show_table_schema(&plan.schema)));
                plans.push(Some(plan));
            }
            Err(e) => {
                report.fail(what, &e);
                plans.push(None);
            }
        }
    }

    let target = &profile.target;
    report.push("AWS region", Status::Ok, format!("{} (from {})", target.region, target.region_origin));
    match dynamo::setup(target).await {
        Ok(setup) => {
            let (endpoint, origin) = &setup.endpoint;
            report.push("DynamoDB endpoint", Status::Ok, format!("{endpoint} (from {origin})"));
            report.push(
                "AWS retries",
                Status::Ok,
                format!(
                    "control-plane calls: {}; batch writes and Scan pages: {} attempts (sync.max_attempts), by \
                     ddbsync with the SDK's retries off; timeouts: {}",
                    setup.retries, profile.sync.max_attempts, setup.timeouts
                ),
            );
        }
        Err(e) => report.fail("AWS retries", &ProfileError::new(&profile.path, e).into()),
    }
    let dynamo = dynamo::connect(target).await;
    let mut metadata_exists = false;
    let reachable = match dynamo.credentials().await {
        Err(e) => {
            report.fail("AWS credentials", &anyhow::anyhow!("{e}"));
            Err("not checked: no AWS credentials to ask DynamoDB with")
        }
        Ok(provider) => {
            report.push(
                "AWS credentials",
                Status::Ok,
                format!("found by the chain's {provider} provider{}", source_of(&provider)),
            );
            match dynamo.describe(&profile.metadata_table).await {
                Ok(found) => {
                    metadata_exists = found.is_some();
                    let state = if found.is_some() { "exists" } else { "will be created by the first sync" };
                    report.push(
                        "DynamoDB",
                        Status::Ok,
                        format!("answers in {}; metadata table {} {state}", profile.location(), profile.metadata_table),
                    );
                    Ok(())
                }
                Err(e) => {
                    report.fail("DynamoDB", &anyhow::anyhow!("{} in {}", e, profile.location()));
                    Err("DynamoDB did not answer")
                }
            }
        }
    };
    for (mapping, plan) in mappings.iter().zip(&plans) {
        let (table, what) = (&mapping.table_name, format!("table {}", mapping.table_name));
        if let Err(why) = reachable {
            report.push(what, Status::Skipped, why);
            scope(&mut report, profile, mapping, plan.as_ref(), &*dynamo, Err(why)).await;
            continue;
        }
        let info = match dynamo.describe(table).await {
            Ok(info) => info,
            Err(e) => {
                report.fail(what, &e.into());
                scope(&mut report, profile, mapping, plan.as_ref(), &*dynamo, Err("the table could not be described"))
                    .await;
                continue;
            }
        };
        // The scope is tried on the table, or on the metadata table while the table does not exist
        // (a new table's first sync has nothing to scan, so a bad scope would fail only the second):
        // DynamoDB judges a filter the same on any table.
        let read_from = match (&info, metadata_exists) {
            (Some(_), _) => Ok(Probe::Table(table)),
            (None, true) => Ok(Probe::Metadata(&profile.metadata_table)),
            (None, false) => Err("neither the table nor the metadata table exists yet; the first sync tries it on \
                                  the new table before it writes"),
        };
        let (info, mismatch, missing) = match plan.as_ref() {
            Some(plan) => {
                let compared = Compared::of(info, mapping, plan);
                (compared.info, compared.mismatch, compared.missing)
            }
            None => (info, None, Vec::new()),
        };
        match (info, mismatch) {
            (None, _) => report.push(what, Status::Note, "does not exist; the next sync creates it"),
            (Some(_), Some(mismatch)) => report.fail(what, &anyhow::anyhow!("{mismatch}; `sync --clean` recreates it")),
            (Some(_), None) if !missing.is_empty() => report
                .fail(what, &anyhow::anyhow!("{}", preflight::missing_indexes_message(&missing, profile, mapping))),
            (Some(info), None) => {
                let checked = if plan.is_some() { "as the mapping gives" } else { "not compared: the query failed" };
                let mut detail = format!(
                    "{}, key ({}) {checked}, about {} items",
                    info.status,
                    show_schema(&info.key_schema),
                    info.item_count
                );
                if mapping.diff == crate::profile::DiffMode::Index {
                    // What the next sync's diff reads, and why not the index when it cannot.
                    let record = match metadata_exists {
                        true => crate::engine::diff_index::recorded(&*dynamo, profile, table).await,
                        false => Ok(None),
                    };
                    match record {
                        Ok(record) => {
                            match crate::engine::diff_index::choose(
                                mapping.diff,
                                false,
                                (
                                    &info,
                                    plan.as_ref().and_then(|p| {
                                        p.schema.indexes.iter().find(|i| i.name == crate::pure::bucket::INDEX_NAME)
                                    }),
                                ),
                                record.as_deref(),
                            ) {
                                (_, None) => detail.push_str("; the next sync's diff reads its hash index"),
                                (_, Some(why)) => detail.push_str(&format!("; it {why}")),
                            }
                        }
                        Err(e) => detail.push_str(&format!("; {e:#}")),
                    }
                }
                report.push(what, Status::Ok, detail);
            }
        }
        scope(&mut report, profile, mapping, plan.as_ref(), &*dynamo, read_from).await;
    }
    Ok(report)
}

/// What a credential provider's name means, for the checklist: where the keys were (never the keys).
fn source_of(provider: &str) -> &'static str {
    // The names aws-config gives its providers.
    match provider {
        "EnvironmentVariable" => " (the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        "ProfileFile" => " (a profile of ~/.aws/credentials or ~/.aws/config)",
        "AssumeRoleProvider" => " (a role the AWS profile assumes)",
        "WebIdentityToken" => " (web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN)",
        "EcsContainer" => " (the ECS container credentials endpoint)",
        "IMDSv2" => " (the EC2 instance metadata service)",
        "SSO" => " (AWS IAM Identity Center, `aws sso login`)",
        "CredentialProcess" => " (a credential_process of the AWS profile)",
        "Login" => " (`aws login`)",
        _ => "",
    }
}

/// Where a scope is tried: a Scan of one item of the table, or, while it does not exist, a Query
/// of an empty partition of the metadata table (whose `pk` and `sk` a scope cannot name there).
enum Probe<'a> {
    Table(&'a str),
    Metadata(&'a str),
}

/// Checks a table's `scope`: DynamoDB accepts it as a filter (see [`Probe`]), and every attribute
/// it reads is one some query returns. A scope DynamoDB refuses
/// would fail every sync of the table at its Scan; one that reads an attribute no item has cannot
/// select the slice's items, so each sync rewrites the slice and never finds its orphans (or,
/// through `attribute_not_exists`, takes every item for one).
async fn scope(
    report: &mut CheckReport,
    profile: &Profile,
    mapping: &TableMapping,
    plan: Option<&TablePlan>,
    dynamo: &dyn Target,
    read_from: std::result::Result<Probe<'_>, &str>,
) {
    let Some(expression) = &mapping.scope else { return };
    let what = format!("scope of {}", mapping.name);
    let param_types = plan.map(|p| p.param_types.clone()).unwrap_or_default();
    // A default a run could not use fails every run that does not override it; the others are
    // spelled as a run spells them.
    let mut checked = plan.cloned().into_iter().collect::<Vec<_>>();
    if let Err(e) = preflight::check_params(&mut Params::defaults(profile), &[mapping], &mut checked) {
        report.fail(&what, &e);
    }
    let spelled = checked.pop().map(|p| p.scope_values).unwrap_or_default();
    let Some(filter) = Params::stand_ins(profile, mapping).filter(mapping, &param_types, &spelled) else { return };
    let read = scope_attributes(expression);
    // A Query refuses a filter on its table's key: a scope naming the metadata table's is not tried there.
    let read_from = match read_from {
        Ok(Probe::Metadata(_)) if read.iter().any(|a| a == "pk" || a == "sk") => {
            Err("the table does not exist yet, and the scope names pk or sk, the metadata table's key")
        }
        other => other,
    };
    let attempt = match read_from {
        Ok(Probe::Table(table)) => {
            Ok(dynamo.scan_limited(table, &[], (0, 1), None, Some(1), Some(&filter)).await.map(|_| ()))
        }
        Ok(Probe::Metadata(table)) => match dynamo.try_filter(table, ("pk", "SCOPE-CHECK"), &filter).await {
            // A sync's policy has no Query on the metadata table: that is no failure of the scope.
            Err(TargetError::Fatal(denied)) if denied.starts_with("AccessDenied") => Err(format!(
                "not tried on DynamoDB: the table does not exist yet, and these credentials may not Query the \
                 metadata table {table} to try it there (`ddbsync iam-policy {} --for report` grants it): {denied}",
                profile.env
            )),
            outcome => Ok(outcome),
        },
        Err(why) => Err(format!("not tried on DynamoDB: {why}")),
    };
    let tried = match attempt {
        Err(not_tried) => Err(not_tried),
        Ok(Ok(())) => Ok("DynamoDB accepts it".to_string()),
        Ok(Err(TargetError::Invalid(refusal))) => {
            report.fail(what, &sync::scope_refused(mapping, &refusal).into());
            return;
        }
        Ok(Err(e)) => {
            report.fail(what, &anyhow::anyhow!("could not be tried on DynamoDB: {e}"));
            return;
        }
    };
    let Some(plan) = plan else {
        let detail = match &tried {
            Ok(accepted) => format!("{accepted}; its attributes not compared: the query failed"),
            Err(not_tried) => format!("{not_tried}; its attributes not compared: the query failed"),
        };
        let status = if tried.is_ok() { Status::Ok } else { Status::Skipped };
        report.push(what, status, detail);
        return;
    };
    let missing: Vec<String> = read.iter().filter(|a| !plan.gives(a)).map(|a| format!("\"{a}\"")).collect();
    let tried_text = match &tried {
        Ok(text) | Err(text) => text.clone(),
    };
    if !missing.is_empty() {
        let (noun, it) = if missing.len() == 1 { ("attribute", "it") } else { ("attributes", "them") };
        let detail = format!(
            "{tried_text}, but it reads {noun} {}, which no query of the table returns: no item has {it}, so the \
             scope cannot select the slice's items (each sync rewrites the slice and never deletes its orphans); \
             return {it} from a query, or correct the name in {}",
            missing.join(", "),
            mapping.origin.display()
        );
        report.push(what, Status::Warn, detail);
        return;
    }
    let status = if tried.is_ok() { Status::Ok } else { Status::Skipped };
    let detail = match read.is_empty() {
        true => tried_text,
        false => format!("{tried_text}; it reads {}, which the queries return", read.join(", ")),
    };
    report.push(what, status, detail);
}
