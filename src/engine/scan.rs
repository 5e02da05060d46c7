//! The diff's read of the target: a parallel Scan returning only the key attributes and the stored
//! hash. Segments send pages of fingerprints (key digest, stored hash: about 34 bytes per item, never
//! whole items) to the table's sync, which folds them into the diff while it reads the source. Pages
//! are retried (and the retries counted) like batch writes. A sync starts every table's Scan at
//! once, so the server scans later tables while ddbsync syncs earlier ones.
//!
//! A table whose diff reads the hash index ([`Read::Index`]) is not scanned: its index is, with the
//! same parallel Scan (or, for some buckets only, Queried bucket by bucket), and each entry (the
//! item's keys, its bucket and its stored hash) becomes the same fingerprint. DynamoDB bills reads of
//! an index on the entries' few bytes.
//! The index is eventually consistent: see [`Read::Index`] for why a stale entry loses nothing.
//!
//! A dry run's Scan reads whole items instead (billed the same: a Scan is billed on the items it
//! reads, whatever it returns) and keeps of each only its [`Footprint`], so that it prices an update
//! or a delete as DynamoDB will bill it.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::profile::Profile;
use crate::pure::bucket::{self, Shard, BUCKET_ATTR, INDEX_NAME};
use crate::pure::cost::Footprint;
use crate::pure::hash::{self, Digest};
use crate::pure::item::{AttributeValue, Item, HASH_ATTR};
use crate::target::retry::{self, RetryPolicy};
use crate::target::TargetError;
use crate::target::{Filter, IndexQuery, IndexSchema, ScanRequest, Target};
use futures::StreamExt;

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

/// How the diff reads a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A parallel Scan of the whole table. `bucketed`: the table's items are to carry their bucket
    /// (its diff reads the hash index); an item without it, or with a wrong one, is taken as not
    /// written by ddbsync, so that it is rewritten with it.
    Scan { bucketed: bool },
    /// The hash index's entries, no sooner than `not_before`: all of them with a parallel Scan of the
    /// index, or `buckets` only, Queried bucket by bucket (a shard's).
    ///
    /// The index is eventually consistent: an entry may lag its item by DynamoDB's propagation
    /// delay. An entry that lags shows the item as an earlier run left it, and the diff then
    /// rewrites an item that had not changed (harmless), deletes again an item already gone
    /// (harmless), or creates again an item written a moment ago (harmless). Only two cases could
    /// lose a change, and both need an entry older than the run that wrote it: an item whose source
    /// went back to its earlier content (the lagging hash matches, so the new content is skipped),
    /// and an item written and then removed from the source (it is missing from the index, so it is
    /// not an orphan). Every write of a run happens before its lease ends, so a run that waits
    /// [`INDEX_SETTLE`] after taking the lock reads entries at least that old.
    Index { not_before: Option<tokio::time::Instant>, buckets: Option<std::ops::Range<u32>> },
}

/// How long after taking the lock a run waits before it reads the hash index, so that every write
/// of the run before it has reached the index. AWS documents the propagation as a fraction of a
/// second in normal conditions; `--full-scan` reconciles whatever a longer delay could hide.
pub const INDEX_SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// What a Scan cost in the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct ScanCost {
    pub read_units: f64,
    pub retries: u64,
    /// Items of a bucketed table found without their bucket (see [`Read::Scan`]).
    pub unbucketed: u64,
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
    read: Read,
    profile: &Profile,
    shard: Shard,
) -> Feed {
    let (segments, policy) = (profile.sync.scan_segments, RetryPolicy::new(profile.sync.max_attempts));
    // Unbounded on purpose: pages hold fingerprints only, and a table whose sync has not begun
    // yet must not stall its Scan.
    let (tx, pages) = mpsc::unbounded_channel();
    let (bucketed, index, not_before) = match read {
        Read::Index { not_before, buckets: Some(buckets) } => {
            let query = Entries { key_names, keep_keys, filter, policy, shard };
            let done = tokio::spawn(read_index(dynamo, table, query, (buckets, not_before), segments as usize, tx));
            return Feed { pages, done, expected };
        }
        // The whole index: a parallel Scan of it, billed per page of entries, not per bucket.
        // An entry in the wrong bucket (written by hand) is rewritten with the right one.
        Read::Index { not_before, buckets: None } => (true, Some(INDEX_NAME), not_before),
        Read::Scan { bucketed } => (bucketed, None, None),
    };
    let filter = filter.map(Arc::new);
    let footprints = footprints.map(Arc::new);
    let tasks: Vec<_> = (0..segments)
        .map(|segment| {
            let (dynamo, table, key_names, tx) = (dynamo.clone(), table.clone(), key_names.clone(), tx.clone());
            let at = Segment {
                number: segment,
                of: segments,
                index,
                not_before,
                keep_keys,
                bucketed,
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
            cost.unbucketed += segment.unbucketed;
        }
        Ok(cost)
    });
    Feed { pages, done, expected }
}

struct Segment {
    number: u32,
    of: u32,
    /// The hash index, when its entries are read instead of the table's items.
    index: Option<&'static str>,
    /// No sooner than this (see [`Read::Index`]).
    not_before: Option<tokio::time::Instant>,
    keep_keys: bool,
    bucketed: bool,
    filter: Option<Arc<Filter>>,
    /// The table's indexes, when each item's footprint is wanted.
    footprints: Option<Arc<Vec<IndexSchema>>>,
    /// The shard whose items are kept.
    shard: Shard,
}

impl Segment {
    /// The Scan of this segment's page from `start`.
    fn request<'a>(
        &'a self,
        attributes: &'a [String],
        start: Option<&'a HashMap<String, AttributeValue>>,
    ) -> ScanRequest<'a> {
        let segment = (self.number as i32, self.of as i32);
        ScanRequest { index: self.index, attributes, segment, start, limit: None, filter: self.filter.as_deref() }
    }
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
        None => key_names
            .iter()
            .cloned()
            .chain([HASH_ATTR.to_string()])
            .chain(at.bucketed.then(|| BUCKET_ATTR.to_string()))
            .collect(),
    };
    if let Some(at) = at.not_before {
        tokio::time::sleep_until(at).await;
    }
    let mut cost = ScanCost::default();
    let mut start = None;
    loop {
        let (page, retries) =
            retry::retrying(&policy, || dynamo.scan(table, at.request(&attributes, start.as_ref()))).await;
        cost.retries += retries;
        let page = page?;
        cost.read_units += page.consumed_units;
        let mut unbucketed = 0;
        let fingerprints = page
            .items
            .into_iter()
            .filter_map(|mut item| {
                let key = hash::item_key_digest(&item, key_names).filter(|key| at.shard.owns(key))?;
                let stored = match at.bucketed && !in_bucket(&item, &key) {
                    // Rewritten, so that the hash index holds it.
                    true => {
                        unbucketed += 1;
                        None
                    }
                    false => stored_hash(&item),
                };
                let old = at.footprints.as_deref().map(|indexes| Footprint::of(&item, key_names, indexes));
                let item_key = at.keep_keys.then(|| {
                    item.retain(|name, _| key_names.contains(name));
                    item
                });
                Some(Seen { key, stored, item_key, old })
            })
            .collect();
        cost.unbucketed += unbucketed;
        if tx.send(fingerprints).is_err() {
            return Ok(cost); // the sync stopped listening (it failed)
        }
        start = page.next;
        if start.is_none() {
            return Ok(cost);
        }
    }
}

fn stored_hash(item: &Item) -> Option<Digest> {
    item.get(HASH_ATTR).and_then(|h| h.as_s().ok()).and_then(|h| hash::from_hex(h))
}

/// Whether a stored item carries the bucket its key belongs in.
fn in_bucket(item: &Item, key: &Digest) -> bool {
    item.get(BUCKET_ATTR).and_then(|b| b.as_n().ok()).and_then(|b| b.parse::<u32>().ok()) == Some(bucket::bucket(key))
}

/// What an index read returns of each entry, and how it retries a page.
struct Entries {
    key_names: Vec<String>,
    /// Only its items are kept (a bucket on a shard's boundary holds some of the next shard's).
    shard: Shard,
    keep_keys: bool,
    filter: Option<Filter>,
    policy: RetryPolicy,
}

impl Entries {
    /// The Query of one page of the bucket `value`.
    fn page<'a>(
        &'a self,
        value: &'a AttributeValue,
        start: Option<&'a HashMap<String, AttributeValue>>,
    ) -> IndexQuery<'a> {
        IndexQuery { index: INDEX_NAME, partition: (BUCKET_ATTR, value), start, filter: self.filter.as_ref() }
    }
}

/// Reads the hash index bucket by bucket, `parallel` buckets at once, into the pages the diff takes.
async fn read_index(
    dynamo: Arc<dyn Target>,
    table: String,
    query: Entries,
    (buckets, not_before): (std::ops::Range<u32>, Option<tokio::time::Instant>),
    parallel: usize,
    tx: mpsc::UnboundedSender<Page>,
) -> Result<ScanCost, TargetError> {
    if let Some(at) = not_before {
        tokio::time::sleep_until(at).await;
    }
    let (dynamo, table, query, tx) = (&*dynamo, table.as_str(), &query, &tx);
    let mut buckets = futures::stream::iter(buckets)
        .map(|bucket| read_bucket(dynamo, table, query, bucket, tx))
        .buffer_unordered(parallel.max(1));
    let mut cost = ScanCost::default();
    while let Some(read) = buckets.next().await {
        let read = read?;
        cost.read_units += read.read_units;
        cost.retries += read.retries;
    }
    Ok(cost)
}

async fn read_bucket(
    dynamo: &dyn Target,
    table: &str,
    query: &Entries,
    bucket: u32,
    tx: &mpsc::UnboundedSender<Page>,
) -> Result<ScanCost, TargetError> {
    let value = AttributeValue::N(bucket.to_string());
    let mut cost = ScanCost::default();
    let mut start = None;
    loop {
        let (page, retries) =
            retry::retrying(&query.policy, || dynamo.query_index(table, query.page(&value, start.as_ref()))).await;
        cost.retries += retries;
        let page = page?;
        cost.read_units += page.consumed_units;
        let fingerprints = page
            .items
            .into_iter()
            .filter_map(|mut entry| {
                let key = hash::item_key_digest(&entry, &query.key_names).filter(|key| query.shard.owns(key))?;
                // An entry in the wrong bucket (written by hand) is rewritten with the right one.
                let stored = if in_bucket(&entry, &key) { stored_hash(&entry) } else { None };
                let item_key = query.keep_keys.then(|| {
                    entry.retain(|name, _| query.key_names.contains(name));
                    entry
                });
                Some(Seen { key, stored, item_key, old: None })
            })
            .collect();
        if tx.send(fingerprints).is_err() {
            return Ok(cost);
        }
        start = page.next;
        if start.is_none() {
            return Ok(cost);
        }
    }
}

/// Reads every item of a table (whole, or only `attributes` when given) with one sequential Scan,
/// page by page, retrying each page; returns the read units consumed. For backups, `verify --full`
/// and `verify --references`.
pub async fn each_page(
    dynamo: &dyn Target,
    table: &str,
    policy: &RetryPolicy,
    (attributes, filter): (&[String], Option<&Filter>),
    mut on_page: impl FnMut(Vec<Item>) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let (mut start, mut units) = (None, 0.0);
    loop {
        let (page, _) =
            retry::retrying(policy, || dynamo.scan_page(table, attributes, (0, 1), start.clone(), filter)).await;
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
        let units = each_page(&target, "t", &RetryPolicy::new(3), (&[], None), |items| {
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
        let err = each_page(&target, "t", &RetryPolicy::new(3), (&[], None), |_| Ok(())).await.unwrap_err();
        assert_eq!(err.to_string(), "reading t: ResourceNotFoundException");
        assert_eq!(target.calls().len(), 1, "not sent again");

        let target = Scripted::read_only();
        target.scans.lock().unwrap().extend((0..5).map(|_| Err(TargetError::Transient("HTTP 503".into()))));
        let err = each_page(&target, "t", &RetryPolicy::new(2), (&[], None), |_| Ok(())).await.unwrap_err();
        assert_eq!(err.to_string(), "reading t: HTTP 503");
        assert_eq!(target.calls().len(), 2, "two attempts");
    }
}
