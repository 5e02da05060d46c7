//! Query parameters: `--param name=value` over the mappings' `param_defaults`. Pure.
//!
//! Each query lists the names bound to its `$1`, `$2`, … (SQLite: `?1`, `?2`, …); the values travel
//! as text parameters of the prepared statement (never spliced into the SQL): PostgreSQL parses them
//! as the types the query gives them, SQLite compares them by its affinity rules. A table's `scope` reuses the same values as a Scan filter, so the diff
//! and the deletes only see the items those values cover.

use std::collections::{BTreeMap, HashMap};

use crate::exit::UsageError;
use crate::profile::{distinct, placeholders, Entity, Profile, TableMapping};
use crate::pure::item::AttributeValue;
use crate::target::Filter;

/// `name=value` from the command line.
pub fn parse(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_string(), value.to_string())),
        _ => Err(format!("expected name=value, got {arg:?}")),
    }
}

/// One value bound to a query: its text, and whether it is bound as a number (for a source that
/// does not type its parameters, SQLite, when the scope compares it with a number column: SQLite
/// would compare text with an expression's number as text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub text: String,
    pub number: bool,
}

/// The parameter values of a run, every one the selected queries use known.
#[derive(Debug, Clone, Default)]
pub struct Params {
    values: BTreeMap<String, String>,
    /// Parameters bound as numbers ([`Param::number`]).
    numbers: Vec<String>,
    /// The names given with `--param` (the others are the mappings' defaults).
    given: Vec<String>,
}

impl Params {
    /// Merges the command line over the defaults and checks that each query's parameters have a
    /// value and that each given name is used.
    pub fn new(
        profile: &Profile,
        mappings: &[&TableMapping],
        given: &[(String, String)],
    ) -> Result<Params, UsageError> {
        let used = distinct(mappings.iter().flat_map(|m| m.params()));
        let mut values = profile.param_defaults.clone();
        for (at, (name, value)) in given.iter().enumerate() {
            if given[..at].iter().any(|(earlier, _)| earlier == name) {
                // Taking the last (or the first) silently could run a slice nobody meant.
                return Err(UsageError(format!("--param {name} is given twice; give each parameter once")));
            }
            if !used.contains(&name.as_str()) {
                let known = if used.is_empty() { "they take none".to_string() } else { used.join(", ") };
                return Err(UsageError(format!(
                    "--param {name}: no query of the selected tables uses a parameter \"{name}\" ({known})"
                )));
            }
            values.insert(name.clone(), value.clone());
        }
        for entity in mappings.iter().flat_map(|m| &m.entities) {
            if let Some(missing) = entity.params.iter().find(|p| !values.contains_key(*p)) {
                return Err(UsageError(format!(
                    "{}: {}: parameter \"{missing}\" has no value; pass --param {missing}=… or set \
                     param_defaults.{missing} in the mappings file",
                    entity.origin.display(),
                    entity.label
                )));
            }
        }
        Ok(Params { values, numbers: Vec::new(), given: given.iter().map(|(name, _)| name.clone()).collect() })
    }

    /// Where a parameter's value comes from, for messages: `--param to=2021-02-1`, or
    /// `param_defaults.to = "2021-02-1"` of the mappings file.
    pub fn origin(&self, name: &str) -> String {
        let value = self.value(name).unwrap_or_default();
        match self.given.iter().any(|g| g == name) {
            true => format!("--param {name}={value}"),
            false => format!("param_defaults.{name} = \"{value}\" (the mappings file's default)"),
        }
    }

    /// Values for checking a table's scope without a run (`check`): the mappings' defaults, and
    /// `0`, which reads as a number and as a string, for a parameter that has none.
    pub fn stand_ins(profile: &Profile, mapping: &TableMapping) -> Params {
        let mut values = profile.param_defaults.clone();
        for name in mapping.params() {
            values.entry(name.to_string()).or_insert_with(|| "0".to_string());
        }
        Params { values, numbers: Vec::new(), given: Vec::new() }
    }

    /// The mappings' defaults alone, as a run without `--param` has them (`check` checks them).
    pub fn defaults(profile: &Profile) -> Params {
        Params { values: profile.param_defaults.clone(), numbers: Vec::new(), given: Vec::new() }
    }

    /// The value of a parameter, given or defaulted.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The values bound to an entity's `$1`, `$2`, …
    pub fn for_entity(&self, entity: &Entity) -> Vec<Param> {
        let param = |p: &String| Param {
            text: self.values.get(p).cloned().unwrap_or_default(),
            number: self.numbers.contains(p),
        };
        entity.params.iter().map(param).collect()
    }

    /// Binds `name` as a number from now on.
    pub fn bind_as_number(&mut self, name: &str) {
        if !self.numbers.iter().any(|n| n == name) {
            self.numbers.push(name.to_string());
        }
    }

    /// The parameters and values a run used, for the report.
    pub fn used_by(&self, mappings: &[&TableMapping]) -> BTreeMap<String, String> {
        let used = distinct(mappings.iter().flat_map(|m| m.params()));
        self.values.iter().filter(|(k, _)| used.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The Scan filter of a table's `scope`: each `:name` gets the parameter's value, a number when
    /// the source types that parameter as one (as the items store it), else a string; each `#name`
    /// stands for the attribute of that name.
    /// `spelled` holds values in the items' spelling, used instead of the given text
    /// (`preflight::check_params`).
    pub fn filter(
        &self,
        mapping: &TableMapping,
        param_types: &HashMap<String, &'static str>,
        spelled: &HashMap<String, String>,
    ) -> Option<Filter> {
        let expression = mapping.scope.clone()?;
        let values = placeholders(&expression, ':')
            .into_iter()
            .map(|name| {
                let text = spelled.get(name).or_else(|| self.values.get(name)).cloned().unwrap_or_default();
                let value = match param_types.get(name).copied() {
                    Some("N") => AttributeValue::N(text),
                    _ => AttributeValue::S(text),
                };
                (format!(":{name}"), value)
            })
            .collect();
        let names = placeholders(&expression, '#').into_iter().map(|n| (format!("#{n}"), n.to_string())).collect();
        Some(Filter { expression, values, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::load;

    const ENV: &str = "mappings = \"m.toml\"\n[source]\n[target]\nregion = \"us-east-1\"\n";
    const MAPPINGS: &str = r##"
param_defaults = { end = "2100-01-01" }

[tables.invoices]
partition_key = "invoice_id"
params = ["start", "end"]
scope = "#date >= :start AND #date < :end AND total > :min"
query = "SELECT invoice_id FROM invoice WHERE invoice_date >= $1 AND invoice_date < $2"

[tables.customers]
partition_key = "customer_id"
query = "SELECT customer_id FROM customer"
"##;

    fn profile(mappings: &str) -> Profile {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev.toml"), ENV).unwrap();
        std::fs::write(dir.path().join("m.toml"), mappings).unwrap();
        load(dir.path(), "dev").unwrap()
    }

    fn given(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn parses_name_value_pairs() {
        assert_eq!(parse("start=2024-01-01").unwrap(), ("start".into(), "2024-01-01".into()));
        assert_eq!(parse("q=a=b").unwrap(), ("q".into(), "a=b".into()));
        assert!(parse("start").is_err());
        assert!(parse("=x").is_err());
    }

    #[test]
    fn command_line_values_override_defaults_in_query_order() {
        let p = profile(&MAPPINGS.replace(" AND total > :min", ""));
        let all: Vec<&TableMapping> = p.tables.iter().collect();
        let params = Params::new(&p, &all, &given(&[("start", "2024-01-01")])).unwrap();
        let invoices = p.tables.iter().find(|t| t.name == "invoices").unwrap();
        let texts = |ps: Vec<Param>| ps.into_iter().map(|p| p.text).collect::<Vec<_>>();
        assert_eq!(texts(params.for_entity(&invoices.entities[0])), ["2024-01-01", "2100-01-01"]);
        let params = Params::new(&p, &all, &given(&[("start", "2024-01-01"), ("end", "2024-02-01")])).unwrap();
        assert_eq!(texts(params.for_entity(&invoices.entities[0])), ["2024-01-01", "2024-02-01"]);
        assert_eq!(params.used_by(&all).len(), 2);
    }

    #[test]
    fn a_missing_or_unknown_parameter_is_a_usage_error() {
        let p = profile(&MAPPINGS.replace(" AND total > :min", ""));
        let all: Vec<&TableMapping> = p.tables.iter().collect();
        let err = Params::new(&p, &all, &[]).unwrap_err().0;
        assert!(err.ends_with("table \"invoices\": parameter \"start\" has no value; pass --param start=… or set param_defaults.start in the mappings file"), "{err}");
        let err = Params::new(&p, &all, &given(&[("start", "x"), ("stop", "y")])).unwrap_err().0;
        assert_eq!(err, "--param stop: no query of the selected tables uses a parameter \"stop\" (start, end)");
        // Only the selected tables count.
        let customers: Vec<&TableMapping> = p.tables.iter().filter(|t| t.name == "customers").collect();
        assert!(Params::new(&p, &customers, &[]).is_ok());
        assert!(Params::new(&p, &customers, &given(&[("start", "x")])).unwrap_err().0.contains("(they take none)"));
        let err = Params::new(&p, &all, &given(&[("start", "x"), ("start", "y")])).unwrap_err().0;
        assert_eq!(err, "--param start is given twice; give each parameter once");
    }

    #[test]
    fn a_scope_naming_no_parameter_of_the_queries_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev.toml"), ENV).unwrap();
        std::fs::write(dir.path().join("m.toml"), MAPPINGS).unwrap();
        let err = load(dir.path(), "dev").unwrap_err().to_string();
        assert!(
            err.ends_with(
                "table \"invoices\": scope uses `:min`, which is not a parameter of the table's queries (start, end)"
            ),
            "{err}"
        );
    }

    #[test]
    fn the_scope_becomes_a_typed_filter() {
        let p = profile(&MAPPINGS.replace("total > :min", "total > :start"));
        let all: Vec<&TableMapping> = p.tables.iter().collect();
        let params = Params::new(&p, &all, &given(&[("start", "7")])).unwrap();
        let invoices = p.tables.iter().find(|t| t.name == "invoices").unwrap();
        let types: HashMap<String, &'static str> = [("start".to_string(), "N"), ("end".to_string(), "S")].into();
        let filter = params.filter(invoices, &types, &HashMap::new()).unwrap();
        assert_eq!(filter.values[":start"], AttributeValue::N("7".into()));
        assert_eq!(filter.values[":end"], AttributeValue::S("2100-01-01".into()));
        assert_eq!(filter.names, HashMap::from([("#date".to_string(), "date".to_string())]));
        let customers = p.tables.iter().find(|t| t.name == "customers").unwrap();
        assert!(params.filter(customers, &types, &HashMap::new()).is_none());
    }
}
