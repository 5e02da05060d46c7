//! The diff's read of the target: a parallel Scan returning only the key attributes and the stored
//! hash, folded into the [`Index`]. Pages are retried (and the retries counted) like batch writes;
//! each segment's pages flow through a bounded channel, so memory holds the index, not the pages.
//! A sync starts every table's Scan at once, so that the server scans later tables while ddbsync
//! reads the source of earlier ones.

use std::sync::Arc;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::diff::Index;
use crate::dynamo::Dynamo;
use crate::hash::{self, Digest};
use crate::item::{AttributeValue, HASH_ATTR};
use crate::printer::Printer;
use crate::profile::Profile;
use crate::retry::{self, RetryPolicy};

/// What the diff's Scan found and cost.
pub struct Scanned {
    pub index: Index,
    pub read_units: f64,
    pub retries: u64,
}

impl Scanned {
    /// Nothing to scan: a new or just recreated table.
    pub fn empty() -> Scanned {
        Scanned { index: Index::default(), read_units: 0.0, retries: 0 }
    }
}

/// Starts reading a table's key → hash index with a parallel Scan; the task ends with the index.
/// `expected` (DynamoDB's item count) sizes the index once: a map that grows by doubling keeps
/// the old and the new table resident while it rehashes.
pub fn start(
    dynamo: Arc<Dynamo>,
    table: String,
    key_names: Vec<String>,
    expected: u64,
    profile: &Profile,
    printer: &Printer,
) -> JoinHandle<Result<Scanned>> {
    let (segments, policy) = (profile.sync.scan_segments, RetryPolicy::new(profile.sync.max_attempts));
    let bar = printer.counter(format!("{table}: reading target hashes"));
    // The count lags by up to six hours: leave room for what was added since.
    let index = Index::with_capacity((expected + expected / 8) as usize);
    tokio::spawn(async move { scan_index(&dynamo, &table, &key_names, segments, policy, bar, index).await })
}

async fn scan_index(
    dynamo: &Dynamo,
    table: &str,
    key_names: &[String],
    segments: u32,
    policy: RetryPolicy,
    bar: ProgressBar,
    mut index: Index,
) -> Result<Scanned> {
    let mut attributes = key_names.to_vec();
    attributes.push(HASH_ATTR.to_string());
    let (tx, mut rx) = mpsc::channel::<Vec<(Digest, Option<Digest>)>>(segments as usize * 2);
    let mut tasks = Vec::new();
    for segment in 0..segments {
        let (dynamo, table, attributes, tx, key_names) =
            (dynamo.clone(), table.to_string(), attributes.clone(), tx.clone(), key_names.to_vec());
        tasks.push(tokio::spawn(async move {
            let (mut units, mut retries) = (0.0, 0);
            let mut start = None;
            loop {
                let (page, tries) = retry::retrying(&policy, || {
                    dynamo.scan_page(&table, &attributes, segment as i32, segments as i32, start.clone())
                })
                .await;
                retries += tries;
                let page = page?;
                units += page.consumed_units;
                let fingerprints = page
                    .items
                    .iter()
                    .filter_map(|item| {
                        let keys: Option<Vec<&AttributeValue>> = key_names.iter().map(|k| item.get(k)).collect();
                        let stored = item.get(HASH_ATTR).and_then(|h| h.as_s().ok()).and_then(|h| hash::from_hex(h));
                        Some((hash::key_digest(&keys?), stored))
                    })
                    .collect();
                if tx.send(fingerprints).await.is_err() {
                    break;
                }
                start = page.next;
                if start.is_none() {
                    break;
                }
            }
            Ok::<(f64, u64), crate::target::TargetError>((units, retries))
        }));
    }
    drop(tx);
    while let Some(page) = rx.recv().await {
        bar.inc(page.len() as u64);
        for (key, stored) in page {
            index.insert(key, stored);
        }
    }
    bar.finish_and_clear();
    let (mut read_units, mut retries) = (0.0, 0);
    for task in tasks {
        let (units, tries) = task.await.context("scan task panicked")??;
        read_units += units;
        retries += tries;
    }
    Ok(Scanned { index, read_units, retries })
}
