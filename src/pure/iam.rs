//! The least-privilege IAM policy for a profile: which DynamoDB actions each ddbsync command needs,
//! on which table ARNs. Pure: the policy is derived from the profile alone.
//!
//! Invariant: every DynamoDB operation the adapter ([`crate::target::dynamo`]) calls is granted for some
//! use; a unit test reads the adapter's source to hold this.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::profile::Profile;

/// What the policy is for; each maps to the commands that need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Use {
    /// `sync` (creates missing tables, records runs, takes the run lock).
    Sync,
    /// `sync --clean` and `tables create` / `tables drop`: delete and create tables, add indexes.
    Clean,
    /// `verify` and `check`.
    Verify,
    /// `backup`.
    Backup,
    /// `restore`: recreate tables and write items back.
    Restore,
    /// `history` and `report`: read the run records.
    Report,
    /// `status`: read the run lock's leases and the run records.
    Status,
}

impl Use {
    pub const ALL: [Use; 7] = [Use::Sync, Use::Clean, Use::Verify, Use::Backup, Use::Restore, Use::Report, Use::Status];

    /// The actions this use needs on the data tables and on the metadata table.
    fn actions(self) -> (&'static [&'static str], &'static [&'static str]) {
        const LOCK: &[&str] = &["DescribeTable", "CreateTable", "GetItem", "PutItem", "DeleteItem"];
        match self {
            Use::Sync => (&["DescribeTable", "CreateTable", "Scan", "BatchWriteItem"], LOCK),
            Use::Clean => {
                (&["DescribeTable", "CreateTable", "UpdateTable", "DeleteTable", "Scan", "BatchWriteItem"], LOCK)
            }
            Use::Verify => (&["DescribeTable", "Scan", "BatchGetItem"], &["DescribeTable"]),
            Use::Backup => (&["DescribeTable", "Scan"], LOCK),
            Use::Restore => (&["DescribeTable", "CreateTable", "DeleteTable", "BatchWriteItem"], LOCK),
            Use::Report => (&[], &["Query"]),
            // One Query of the leases, one of the records (`commands/status.rs`); DescribeTable
            // only when both find nothing, to tell a missing metadata table from an idle one.
            Use::Status => (&[], &["Query", "DescribeTable"]),
        }
    }
}

/// The ARN of a table; `*` for the account when the profile does not give it.
fn table_arn(profile: &Profile, table: &str) -> String {
    let account = profile.target.account_id.as_deref().unwrap_or("*");
    format!("arn:aws:dynamodb:{}:{account}:table/{table}", profile.target.region)
}

/// The policy document for `uses` (all of them when empty).
pub fn policy(profile: &Profile, uses: &[Use]) -> Value {
    let uses: BTreeSet<Use> = if uses.is_empty() { Use::ALL.into() } else { uses.iter().copied().collect() };
    let (mut data, mut meta) = (BTreeSet::new(), BTreeSet::new());
    for u in &uses {
        let (d, m) = u.actions();
        data.extend(d.iter().map(|a| format!("dynamodb:{a}")));
        meta.extend(m.iter().map(|a| format!("dynamodb:{a}")));
    }
    // A diff that reads the hash index Queries it (on the index's ARN, below).
    let indexed = profile.tables.iter().any(|t| t.diff == crate::profile::DiffMode::Index);
    if indexed && uses.iter().any(|u| matches!(u, Use::Sync | Use::Clean)) {
        data.insert("dynamodb:Query".to_string());
    }
    let mut tables: Vec<String> = Vec::new();
    for t in &profile.tables {
        tables.push(table_arn(profile, &t.table_name));
        // Reads and writes through a secondary index are authorised on the index's ARN.
        tables.push(format!("{}/index/*", table_arn(profile, &t.table_name)));
    }
    let mut statements = Vec::new();
    if !data.is_empty() {
        statements.push(json!({
            "Sid": "DdbsyncTables",
            "Effect": "Allow",
            "Action": data,
            "Resource": tables,
        }));
    }
    // A promotion reads its source tables, in the source's region (and, with its own AWS
    // profile, perhaps another account: `*` unless that is the target's).
    if let crate::profile::SourceKind::DynamoDb(source) = &profile.source.kind {
        let reads = uses.iter().any(|u| matches!(u, Use::Sync | Use::Clean | Use::Verify));
        if reads {
            let region = source.region.as_deref().unwrap_or(&profile.target.region);
            let account = match source.aws_profile {
                None => profile.target.account_id.as_deref().unwrap_or("*"),
                Some(_) => "*",
            };
            let arns: Vec<String> = profile
                .tables
                .iter()
                .filter_map(|t| t.promote.as_ref())
                .map(|p| format!("arn:aws:dynamodb:{region}:{account}:table/{}", p.source_table))
                .collect();
            statements.push(json!({
                "Sid": "DdbsyncSourceTables",
                "Effect": "Allow",
                "Action": ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Scan"],
                "Resource": arns,
            }));
        }
    }
    if !meta.is_empty() {
        statements.push(json!({
            "Sid": "DdbsyncRunRecordsAndLock",
            "Effect": "Allow",
            "Action": meta,
            "Resource": [table_arn(profile, &profile.metadata_table)],
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile() -> Profile {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("envs");
        let mut p = crate::profile::load(&dir, "prod").expect("envs/prod.toml loads");
        p.target.account_id = Some("123456789012".into());
        p
    }

    fn actions(policy: &Value) -> BTreeSet<String> {
        let statements = policy["Statement"].as_array().unwrap();
        statements.iter().flat_map(|s| s["Action"].as_array().unwrap()).map(|a| a.as_str().unwrap().into()).collect()
    }

    /// `self.client.batch_write_item()` in the adapter → `dynamodb:BatchWriteItem`.
    fn adapter_operations() -> BTreeSet<String> {
        let source = include_str!("../target/dynamo.rs");
        source
            .split(".client")
            .skip(1)
            .filter_map(|rest| {
                let call = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '.');
                let name: String = call.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                (!name.is_empty()).then_some(name)
            })
            .map(|name| {
                let pascal: String = name.split('_').map(|w| w[..1].to_uppercase() + &w[1..]).collect();
                format!("dynamodb:{pascal}")
            })
            .collect()
    }

    #[test]
    fn every_operation_the_adapter_calls_is_granted() {
        let ops = adapter_operations();
        assert!(ops.len() >= 9, "the scan of dynamo.rs found too few calls: {ops:?}");
        let granted = actions(&policy(&profile(), &[]));
        let missing: Vec<&String> = ops.iter().filter(|op| !granted.contains(*op)).collect();
        assert!(missing.is_empty(), "the policy lacks {missing:?}");
    }

    #[test]
    fn a_nightly_sync_cannot_delete_tables() {
        let p = profile();
        let sync = policy(&p, &[Use::Sync]);
        assert!(!actions(&sync).contains("dynamodb:DeleteTable"));
        let statement = &sync["Statement"][0];
        assert_eq!(statement["Resource"][0], "arn:aws:dynamodb:eu-west-1:123456789012:table/pni-lessons");
        assert_eq!(statement["Resource"][1], "arn:aws:dynamodb:eu-west-1:123456789012:table/pni-lessons/index/*");
        assert_eq!(
            sync["Statement"][1]["Resource"][0],
            "arn:aws:dynamodb:eu-west-1:123456789012:table/pni-cache-metadata"
        );
        assert!(actions(&policy(&p, &[Use::Clean])).contains("dynamodb:DeleteTable"));
    }

    #[test]
    fn a_sync_queries_the_data_tables_only_when_a_diff_reads_the_hash_index() {
        let mut p = profile();
        let data = |p: &Profile| policy(p, &[Use::Sync])["Statement"][0]["Action"].clone();
        assert!(!data(&p).as_array().unwrap().contains(&json!("dynamodb:Query")));
        p.tables[0].diff = crate::profile::DiffMode::Index;
        assert!(data(&p).as_array().unwrap().contains(&json!("dynamodb:Query")));
    }

    #[test]
    fn reports_only_query_the_metadata_table() {
        let report = policy(&profile(), &[Use::Report]);
        let statements = report["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(statements[0]["Action"], json!(["dynamodb:Query"]));
    }

    #[test]
    fn status_only_reads_the_metadata_table_and_calls_nothing_else() {
        // The target calls `status` makes, read from its source: `dynamo.query_from(` → Query,
        // `.describe(` → DescribeTable.
        let source = include_str!("../commands/status.rs");
        let methods = ["describe", "scan", "query_from", "get_item", "put_item", "put_if", "delete_if", "batch"];
        let called: BTreeSet<&str> = methods.into_iter().filter(|m| source.contains(&format!(".{m}("))).collect();
        assert_eq!(
            called,
            BTreeSet::from(["query_from", "describe"]),
            "status calls more than Query and DescribeTable"
        );
        let status = policy(&profile(), &[Use::Status]);
        let statements = status["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1, "nothing on the data tables");
        assert_eq!(statements[0]["Sid"], "DdbsyncRunRecordsAndLock");
        assert_eq!(statements[0]["Action"], json!(["dynamodb:DescribeTable", "dynamodb:Query"]));
    }

    #[test]
    fn without_an_account_the_arns_match_any() {
        let mut p = profile();
        p.target.account_id = None;
        let doc = policy(&p, &[Use::Backup]);
        assert_eq!(doc["Statement"][0]["Resource"][0], "arn:aws:dynamodb:eu-west-1:*:table/pni-lessons");
    }

    #[test]
    fn a_promotion_may_read_its_source_tables_and_nothing_more() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("mappings")).unwrap();
        std::fs::write(
            dir.path().join("p.toml"),
            "mappings = \"mappings/m.toml\"\ntable_suffix = \"-prod\"\n[source]\nkind = \"dynamodb\"\n\
             table_template = \"{table}-dev\"\nregion = \"us-west-1\"\n[target]\nregion = \"eu-west-1\"\n\
             account_id = \"123456789012\"\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("mappings/m.toml"), "[tables.Quotes]\npartition_key = \"id\"\nid = \"id\"\n")
            .unwrap();
        let p = crate::profile::load(dir.path(), "p").unwrap();
        let policy = policy(&p, &[Use::Sync]);
        let source =
            policy["Statement"].as_array().unwrap().iter().find(|s| s["Sid"] == "DdbsyncSourceTables").unwrap();
        assert_eq!(source["Resource"], json!(["arn:aws:dynamodb:us-west-1:123456789012:table/Quotes-dev"]));
        assert_eq!(source["Action"], json!(["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:Scan"]));
        let writes: Vec<&Value> = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Resource"].to_string().contains("Quotes-dev"))
            .collect();
        assert_eq!(writes.len(), 1, "no write is ever granted on the source");
        let report = crate::pure::iam::policy(&p, &[Use::Report]);
        assert!(!report.to_string().contains("Quotes-dev"), "history does not read the source");
    }
}
