//! What sync, check, tables, verify and repair do before they read or write a table: the mappings
//! selected, each entity's query planned against the source (every problem of every mapping named
//! at once: [`PlanErrors`]), each table described and compared with what its mapping gives
//! ([`compare`]), and an entity's rows opened with its parameters.

use std::collections::HashMap;

use anyhow::{Context, Result};

use crate::profile::{compared_with, placeholders, Entity, Profile, ProfileError, TableMapping};
use crate::pure::params::Params;
use crate::pure::plan::{show_schema, Plan, TablePlan};
use crate::source::{self, Source, SourceError};
use crate::target::{IndexSchema, KeySchema, TableInfo, Target, TABLE_WAIT};

/// The mappings a run covers, in file order, or an error naming the unknown ones.
pub fn selected<'a>(profile: &'a Profile, names: &[String]) -> Result<Vec<&'a TableMapping>> {
    if let Some(unknown) = names.iter().find(|n| !profile.tables.iter().any(|t| &t.name == *n)) {
        let known: Vec<&str> = profile.tables.iter().map(|t| t.name.as_str()).collect();
        let message = format!("no table \"{unknown}\" in the mappings (tables: {})", known.join(", "));
        return Err(ProfileError::new(&profile.path, message).into());
    }
    Ok(profile.tables.iter().filter(|t| names.is_empty() || names.contains(&t.name)).collect())
}

/// Where a query's errors are reported: `envs/mappings/pni.toml: table "lessons": query`.
pub fn query_context(entity: &Entity) -> String {
    format!("{}: {}: query", entity.origin.display(), entity.label)
}

/// Checks a mapping against its queries' columns and parameters (they are prepared, not run).
/// Every entity is checked, even after one fails, so that one run names every problem.
pub async fn plan(source: &dyn Source, mapping: &TableMapping) -> Result<TablePlan> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    let mut param_types = HashMap::new();
    for entity in &mapping.entities {
        let described = match source.describe(&entity.query, &query_context(entity)).await {
            Ok(described) => described,
            Err(e) => {
                let e = anyhow::Error::from(e);
                if !PlanErrors::local(&e) {
                    errors.push(e);
                    return Err(PlanErrors::all(errors));
                }
                errors.push(e);
                continue;
            }
        };
        if described.params.len() != entity.params.len() {
            let listed = if entity.params.is_empty() { "none".to_string() } else { entity.params.join(", ") };
            errors.push(
                entity
                    .error(format!(
                        "the query has {} parameters ({}) but `params` names {} ({listed}); list one name per parameter, in order",
                        described.params.len(),
                        source.placeholders(),
                        entity.params.len()
                    ))
                    .into(),
            );
            continue;
        }
        for (name, ty) in entity.params.iter().zip(described.params) {
            param_types.entry(name.clone()).or_insert(ty);
        }
        match Plan::new(entity, &mapping.indexes, described.columns) {
            Ok(plan) => plans.push(plan.sourced(described.origins)),
            Err(e) => errors.push(e.into()),
        }
    }
    if !errors.is_empty() {
        return Err(PlanErrors::all(errors));
    }
    // A parameter the source does not type takes the type of the attribute the scope compares
    // it with (its values are then checked against that column's type), else a string's.
    let mut param_columns = Vec::new();
    let mut typed: HashMap<String, &'static str> = HashMap::new();
    for (name, ty) in param_types {
        let column = match ty {
            Some(ty) => Some((None, ty)),
            None => {
                let compared = mapping.scope.as_deref().map(|s| compared_with(s, &name)).unwrap_or_default();
                compared
                    .iter()
                    .find_map(|a| plans.iter().find_map(|p| p.column_type(a).map(|ty| (Some(a.clone()), ty.clone()))))
            }
        };
        let key_type = match &column {
            Some((_, ty)) => ty.key_type().filter(|_| ty.untyped().is_none()).unwrap_or("S"),
            None => "S",
        };
        typed.insert(name.clone(), key_type);
        if let Some((attribute, ty)) = column {
            param_columns.push((name, attribute, ty));
        }
    }
    let mut plan = TablePlan::new(mapping, plans, typed)?;
    plan.param_columns = param_columns;
    Ok(plan)
}

/// Checks each parameter's value against its type and spells it for the scope as the items hold
/// it: a value a SQLite query cannot read as a date (`to=2021-02-1`) would select no rows while
/// the scope still covers the items, which would then look deleted; and `2021-01-01 10:00`,
/// compared as a string with items holding `2021-01-01T09:00:00`, would put an item the query
/// leaves out in the scope.
pub fn check_params(params: &mut Params, mappings: &[&TableMapping], plans: &mut [TablePlan]) -> Result<()> {
    for (mapping, plan) in mappings.iter().zip(plans) {
        // Only what the scope compares is spelled (or refused): the queries read the text as given.
        let scoped = mapping.scope.as_deref().map(|s| placeholders(s, ':')).unwrap_or_default();
        for (name, attribute, ty) in &plan.param_columns {
            if !scoped.contains(&name.as_str()) {
                continue;
            }
            let Some(value) = params.value(name).map(str::to_string) else { continue };
            // A parameter typed by the scope (SQLite's) as a number is bound as one.
            if attribute.is_some() && plan.param_types.get(name) == Some(&"N") {
                params.bind_as_number(name);
            }
            match ty.param_value(&value) {
                Ok(Some(spelled)) => {
                    plan.scope_values.insert(name.clone(), spelled);
                }
                Ok(None) => {}
                Err(flaw) => {
                    let compared = match attribute {
                        Some(attribute) => format!("compares it with {attribute} (declared {})", ty.name()),
                        None => format!("uses it as {}", ty.name()),
                    };
                    return Err(crate::exit::UsageError(format!(
                        "{} {flaw}: the scope of table {} {compared}; nothing was done",
                        params.origin(name),
                        mapping.name,
                    ))
                    .into());
                }
            }
        }
    }
    Ok(())
}

/// Several problems found while checking mappings against their queries, each in full: every
/// entity of every mapping is checked, so that an unconvertible column in one query does not hide
/// one in the next. The exit code is the worst of theirs (a profile error's, 2, as for one).
#[derive(Debug)]
pub struct PlanErrors(Vec<anyhow::Error>);

impl PlanErrors {
    /// The one error, or all of them, flattened (`errors` is not empty).
    fn all(errors: Vec<anyhow::Error>) -> anyhow::Error {
        let mut flat = Vec::new();
        for error in errors {
            match error.downcast::<PlanErrors>() {
                Ok(several) => flat.extend(several.0),
                Err(one) => flat.push(one),
            }
        }
        match flat.len() {
            1 => flat.remove(0),
            _ => PlanErrors(flat).into(),
        }
    }

    /// Whether checking can go on to the next query after `error`: a mapping or a query is at
    /// fault (PostgreSQL refused the statement), not the connection.
    fn local(error: &anyhow::Error) -> bool {
        match error.downcast_ref::<PlanErrors>() {
            Some(several) => several.0.iter().all(PlanErrors::local),
            None => !matches!(error.downcast_ref::<SourceError>(), Some(e) if !matches!(e, SourceError::Query { .. })),
        }
    }

    /// The worst exit code of the problems.
    pub fn exit(&self) -> crate::exit::Exit {
        self.0.iter().map(crate::exit_for).fold(crate::exit::Exit::Success, crate::exit::Exit::max)
    }
}

/// `3 problems with the mappings' queries:`, then each on its own lines, indented.
impl std::fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problems with the mappings' queries:", self.0.len())?;
        for error in &self.0 {
            write!(f, "\n  {}", format!("{error:#}").replace('\n', "\n    "))?;
        }
        Ok(())
    }
}

impl std::error::Error for PlanErrors {}

/// A mapping's table as DynamoDB describes it, compared with what the mapping gives: the one
/// comparison sync, check, tables create and verify each react to in their own way.
#[derive(Debug)]
pub struct Compared<'p> {
    /// `None`: the table does not exist.
    pub info: Option<TableInfo>,
    /// `has key (id S) but … gives (lesson_id N)`, when the table's key is not the mapping's.
    pub mismatch: Option<String>,
    /// The indexes the mapping declares that the table lacks (or has with another key).
    pub missing: Vec<&'p IndexSchema>,
}

impl<'p> Compared<'p> {
    /// Compares a description (`None`: no such table) with the mapping's plan.
    pub fn of(info: Option<TableInfo>, mapping: &TableMapping, plan: &'p TablePlan) -> Compared<'p> {
        let mismatch = info.as_ref().and_then(|i| key_mismatch(&i.key_schema, mapping, plan));
        let missing = info.as_ref().map(|i| missing_indexes(i, plan)).unwrap_or_default();
        Compared { info, mismatch, missing }
    }
}

/// Describes a mapping's table and compares it with the mapping. With `settle`, a table another
/// run left deleting or creating is waited for first (one being deleted is then absent), as a run
/// that goes on to write it needs.
pub async fn compare<'p>(
    target: &dyn Target,
    profile: &Profile,
    mapping: &TableMapping,
    plan: &'p TablePlan,
    settle: bool,
) -> Result<Compared<'p>> {
    let table = &mapping.table_name;
    let context = || format!("reading DynamoDB table {table} in {}", profile.location());
    let mut info = target.describe(table).await.with_context(context)?;
    if settle {
        match info.as_ref().map(|i| i.status.as_str()) {
            Some("DELETING") => {
                target.wait(table, true, TABLE_WAIT).await.with_context(context)?;
                info = None;
            }
            Some("CREATING" | "UPDATING") => target.wait(table, false, TABLE_WAIT).await.with_context(context)?,
            _ => {}
        }
    }
    Ok(Compared::of(info, mapping, plan))
}

/// The indexes a mapping declares that the table lacks (or has with another key).
fn missing_indexes<'p>(info: &TableInfo, plan: &'p TablePlan) -> Vec<&'p IndexSchema> {
    plan.schema
        .indexes
        .iter()
        .filter(|want| !info.indexes.iter().any(|have| have.name == want.name && have.keys == want.keys))
        .collect()
}

/// `lacks index GenreIndex that … declares; …` with the fix: `tables create` adds a global index to
/// the table as it is; a local one exists only if the table is created with it.
pub fn missing_indexes_message(missing: &[&IndexSchema], profile: &Profile, mapping: &TableMapping) -> String {
    let names: Vec<&str> = missing.iter().map(|i| i.name.as_str()).collect();
    let fix = if missing.iter().any(|i| i.local) {
        format!(
            "a local index exists only if the table is created with it: `sync {} --clean --table {}`",
            profile.env, mapping.name
        )
    } else {
        format!("`ddbsync tables create {} --table {}` adds it", profile.env, mapping.name)
    };
    format!("lacks index {} that {} declares; {fix}", names.join(", "), mapping.origin.display())
}

/// `has key (id S) but envs/mappings/pni.toml gives (lesson_id N)` when a table's key is not the
/// one its mapping gives; the callers say what follows from it.
pub fn key_mismatch(found: &KeySchema, mapping: &TableMapping, plan: &TablePlan) -> Option<String> {
    let wanted = &plan.schema.keys;
    (found != wanted).then(|| {
        format!("has key ({}) but {} gives ({})", show_schema(found), mapping.origin.display(), show_schema(wanted))
    })
}

/// Checks every mapping against its query on an open source, in order; every problem of every
/// mapping is named (unless the connection itself fails).
pub async fn plans(source: &dyn Source, mappings: &[&TableMapping]) -> Result<Vec<TablePlan>> {
    let mut plans = Vec::new();
    let mut errors = Vec::new();
    for mapping in mappings {
        match plan(source, mapping).await {
            Ok(plan) => plans.push(plan),
            Err(e) => {
                let go_on = PlanErrors::local(&e);
                errors.push(e);
                if !go_on {
                    break;
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(PlanErrors::all(errors));
    }
    Ok(plans)
}

/// A query's rows, one after another.
pub use source::Rows;

/// Runs an entity's query with its parameters.
pub async fn open_rows<'s>(source: &'s dyn Source, params: &Params, entity: &'s Entity) -> Result<Rows<'s>> {
    Ok(source.rows(&entity.query, params.for_entity(entity), query_context(entity)).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Exit;
    use std::path::Path;

    fn profile_error(message: &str) -> anyhow::Error {
        ProfileError::new(Path::new("m.toml"), message).into()
    }

    #[test]
    fn every_plan_problem_is_listed_once_and_the_worst_exit_code_wins() {
        // One problem is itself: its message and exit code are unchanged.
        let one = PlanErrors::all(vec![profile_error("table \"a\": column \"x\" has type money")]);
        assert_eq!(format!("{one:#}"), "m.toml: table \"a\": column \"x\" has type money");
        assert_eq!(crate::exit_for(&one), Exit::Usage);

        // Several: each on its own lines (its own lines indented under it), nested lists flattened.
        let query: anyhow::Error =
            SourceError::Query { context: "m.toml: table \"b\": query".into(), cause: "syntax error".into() }.into();
        let inner =
            PlanErrors::all(vec![profile_error("table \"a\": 2 columns:\n  column \"x\"\n  column \"y\""), query]);
        assert_eq!(crate::exit_for(&inner), Exit::Usage, "a profile error's code, worse than a query's");
        let all = PlanErrors::all(vec![inner, profile_error("table \"c\": column \"z\" has type interval")]);
        assert_eq!(
            format!("{all:#}"),
            "3 problems with the mappings' queries:\n  m.toml: table \"a\": 2 columns:\n      column \"x\"\n      \
             column \"y\"\n  m.toml: table \"b\": query: syntax error\n  m.toml: table \"c\": column \"z\" has type \
             interval"
        );
        let queries: Vec<anyhow::Error> =
            (0..2).map(|_| SourceError::Query { context: "q".into(), cause: "no such column".into() }.into()).collect();
        assert_eq!(crate::exit_for(&PlanErrors::all(queries)), Exit::Error);
    }

    #[test]
    fn checking_goes_on_past_a_refused_query_but_not_past_a_lost_connection() {
        assert!(PlanErrors::local(&profile_error("x")));
        assert!(PlanErrors::local(&SourceError::Query { context: "q".into(), cause: "c".into() }.into()));
        let lost: anyhow::Error = SourceError::Connect { target: "t".into(), cause: "c".into() }.into();
        assert!(!PlanErrors::local(&lost));
    }
}
