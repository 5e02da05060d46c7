//! The diff's read of the target: a parallel Scan returning only the key attributes and the stored
//! hash. Segments send pages of fingerprints (key digest, stored hash: about 34 bytes per item, never
//! whole items) to the table's sync, which folds them into the diff while it reads the source. Pages
//! are retried (and the retries counted) like batch writes. A sync starts every table's Scan at
//! once, so the server scans later tables while ddbsync syncs earlier ones.
//!
//! A dry run's Scan reads whole items instead (billed the same: a Scan is billed on the items it
//! reads, whatever it returns) and keeps of each only its [`Footprint`], so that it prices an update
//! or a delete as DynamoDB will bill it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::profile::Profile;
use crate::pure::bucket::Shard;
use crate::pure::cost::Footprint;
use crate::pure::hash::{self, Digest};
use crate::pure::item::{Item, HASH_ATTR};
use crate::target::retry::{self, RetryPolicy};
use crate::target::TargetError;
use crate::target::{Filter, IndexSchema, Target};

/// A target item as the diff sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: Digest,
    /// The stored content hash; `None` when the item was not written by ddbsync.
    pub stored: Option<Digest>,
    /// The key attributes themselves, kept only for tables that delete orphans.
    pub item_key: Option<Item>,
    /// What writing over or deleting the item is billed, in a dry run.
    pub old: Option<Footprint>,
}

/// One page of a Scan.
pub type Page = Vec<Seen>;

/// What a Scan cost in the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanCost {
    pub read_units: f64,
    pub retries: u64,
}

/// A running Scan: its pages, then its cost.
pub struct Feed {
    pub pages: mpsc::UnboundedReceiver<Page>,
    pub done: JoinHandle<Result<ScanCost, TargetError>>,
    /// DynamoDB's item count, to size the index once (a map that grows by doubling keeps the old
    /// and the new table resident while it rehashes).
    pub expected: u64,
}

/// Starts a table's parallel Scan; `keep_keys` returns each item's key attributes too, and
/// `filter` limits it to the items a parameterised run covers. With `footprints` (the table's
/// indexes), whole items are read and each one's [`Footprint`] is returned. Only the items whose
/// key digest `shard` owns are returned (a Scan still reads, and is billed for, the whole table).
#[allow(clippy::too_many_arguments)]
pub fn start(
    dynamo: Arc<dyn Target>,
    table: String,
    key_names: Vec<String>,
    (keep_keys, filter): (bool, Option<Filter>),
    footprints: Option<Vec<IndexSchema>>,
    expected: u64,
    profile: &Profile,
    shard: Shard,
) -> Feed {
    let (segments, policy) = (profile.sync.scan_segments, RetryPolicy::new(profile.sync.max_attempts));
    // Unbounded on purpose: pages hold fingerprints only, and a table whose sync has not begun
    // yet must not stall its Scan.
    let (tx, pages) = mpsc::unbounded_channel();
    let filter = filter.map(Arc::new);
    let footprints = footprints.map(Arc::new);
    let tasks: Vec<_> = (0..segments)
        .map(|segment| {
            let (dynamo, table, key_names, tx) = (dynamo.clone(), table.clone(), key_names.clone(), tx.clone());
            let at = Segment {
                number: segment,
                of: segments,
                keep_keys,
                filter: filter.clone(),
                footprints: footprints.clone(),
                shard,
            };
            tokio::spawn(async move { scan_segment(&*dynamo, &table, &key_names, at, policy, tx).await })
        })
        .collect();
    let done = tokio::spawn(async move {
        let mut cost = ScanCost::default();
        for task in tasks {
            let segment = task.await.map_err(|e| TargetError::Fatal(format!("scan task failed: {e}")))??;
            cost.read_units += segment.read_units;
            cost.retries += segment.retries;
        }
        Ok(cost)
    });
    Feed { pages, done, expected }
}

struct Segment {
    number: u32,
    of: u32,
    keep_keys: bool,
    filter: Option<Arc<Filter>>,
    /// The table's indexes, when each item's footprint is wanted.
    footprints: Option<Arc<Vec<IndexSchema>>>,
    /// The shard whose items are kept.
    shard: Shard,
}

async fn scan_segment(
    dynamo: &dyn Target,
    table: &str,
    key_names: &[String],
    at: Segment,
    policy: RetryPolicy,
    tx: mpsc::UnboundedSender<Page>,
) -> Result<ScanCost, TargetError> {
    // No projection reads whole items: a footprint needs each one's size.
    let attributes = match at.footprints {
        Some(_) => Vec::new(),
        None => key_names.iter().cloned().chain([HASH_ATTR.to_string()]).collect(),
    };
    let mut cost = ScanCost::default();
    let mut start = None;
    loop {
        let (page, retries) = retry::retrying(&policy, || {
            dynamo.scan_page(table, &attributes, (at.number as i32, at.of as i32), start.clone(), at.filter.as_deref())
        })
        .await;
        cost.retries += retries;
        let page = page?;
        cost.read_units += page.consumed_units;
        let fingerprints = page
            .items
            .into_iter()
            .filter_map(|mut item| {
                let key = hash::item_key_digest(&item, key_names).filter(|key| at.shard.owns(key))?;
                let stored = item.get(HASH_ATTR).and_then(|h| h.as_s().ok()).and_then(|h| hash::from_hex(h));
                let old = at.footprints.as_deref().map(|indexes| Footprint::of(&item, key_names, indexes));
                let item_key = at.keep_keys.then(|| {
                    item.retain(|name, _| key_names.contains(name));
                    item
                });
                Some(Seen { key, stored, item_key, old })
            })
            .collect();
        if tx.send(fingerprints).is_err() {
            return Ok(cost); // the sync stopped listening (it failed)
        }
        start = page.next;
        if start.is_none() {
            return Ok(cost);
        }
    }
}

/// Reads every whole item of a table with one sequential Scan, page by page, retrying each page;
/// returns the read units consumed. For backups and `verify --full`, which need whole items.
pub async fn each_page(
    dynamo: &dyn Target,
    table: &str,
    policy: &RetryPolicy,
    filter: Option<&Filter>,
    mut on_page: impl FnMut(Vec<Item>) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let (mut start, mut units) = (None, 0.0);
    loop {
        let (page, _) = retry::retrying(policy, || dynamo.scan_page(table, &[], (0, 1), start.clone(), filter)).await;
        let page = page.map_err(|e| anyhow::anyhow!("reading {table}: {e}"))?;
        units += page.consumed_units;
        crate::engine::lock::beat();
        on_page(page.items)?;
        start = page.next;
        if start.is_none() {
            return Ok(units);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::AttributeValue;
    use crate::target::scripted::Scripted;
    use crate::target::ScanPage;

    fn page(ids: &[&str], next: Option<&str>) -> ScanPage {
        let item = |id: &str| Item::from([("id".to_string(), AttributeValue::S(id.into()))]);
        ScanPage { items: ids.iter().map(|id| item(id)).collect(), consumed_units: 0.5, next: next.map(item) }
    }

    #[tokio::test]
    async fn each_page_retries_a_throttled_or_failed_page_and_follows_the_next_key() {
        let target = Scripted::read_only();
        target.scans.lock().unwrap().extend([
            Err(TargetError::Throttled("ProvisionedThroughputExceededException".into())),
            Ok(page(&["1", "2"], Some("2"))),
            Err(TargetError::Transient("HTTP 500".into())),
            Ok(page(&["3"], None)),
        ]);
        let mut seen = Vec::new();
        let units = each_page(&target, "t", &RetryPolicy::new(3), None, |items| {
            seen.extend(items.into_iter().map(|i| i["id"].as_s().unwrap().clone()));
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(seen, ["1", "2", "3"]);
        assert_eq!(units, 1.0, "the pages read, not the failed calls");
        assert_eq!(target.calls().len(), 4);
    }

    #[tokio::test]
    async fn each_page_stops_at_an_error_retrying_cannot_help_or_after_its_attempts() {
        let target = Scripted::read_only();
        target.scans.lock().unwrap().push_back(Err(TargetError::Fatal("ResourceNotFoundException".into())));
        let err = each_page(&target, "t", &RetryPolicy::new(3), None, |_| Ok(())).await.unwrap_err();
        assert_eq!(err.to_string(), "reading t: ResourceNotFoundException");
        assert_eq!(target.calls().len(), 1, "not sent again");

        let target = Scripted::read_only();
        target.scans.lock().unwrap().extend((0..5).map(|_| Err(TargetError::Transient("HTTP 503".into()))));
        let err = each_page(&target, "t", &RetryPolicy::new(2), None, |_| Ok(())).await.unwrap_err();
        assert_eq!(err.to_string(), "reading t: HTTP 503");
        assert_eq!(target.calls().len(), 2, "two attempts");
    }
}
