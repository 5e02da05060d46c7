//! The seam to DynamoDB, shaped like ddbsync's operations rather than like the SDK: describe,
//! create and delete a table, read a page of a Scan, write a batch and learn what was not
//! processed, read by key, write one item under a condition. Errors are typed apart: throttled,
//! transient (worth retrying), invalid and fatal.
//!
//! Every module above the seam holds a [`Target`] (`Arc<dyn Target>`): [`crate::target::dynamo::Dynamo`]
//! is the production implementation and the only module that calls the AWS SDK;
//! [`crate::target::dryrun::DryRun`] reads through it and records writes instead of sending them. The
//! waits, retries, pacing and batching live above this seam, so they are tested with scripted
//! targets and no server.

pub mod dryrun;
pub mod dynamo;
pub mod retry;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::pure::item::{AttributeValue, Item};

/// How long a table may take to be created or deleted.
pub const TABLE_WAIT: Duration = Duration::from_secs(300);

/// A key schema: attribute name and scalar type (`S`, `N`, `B`), partition key first.
pub type KeySchema = Vec<(String, String)>;

/// A secondary index as DynamoDB creates and describes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IndexSchema {
    pub name: String,
    pub local: bool,
    pub keys: KeySchema,
    pub projection: Projection,
}

/// What a table is created with: its key and its secondary indexes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TableSchema {
    pub keys: KeySchema,
    pub indexes: Vec<IndexSchema>,
}

/// A Scan's filter: the expression, its `:name` values and its `#name` attribute names.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub expression: String,
    pub values: HashMap<String, AttributeValue>,
    pub names: HashMap<String, String>,
}

/// What DescribeTable says about a table.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    pub status: String,
    pub key_schema: KeySchema,
    pub indexes: Vec<IndexSchema>,
    /// Global indexes still being built (after UpdateTable added them).
    pub indexes_building: usize,
    /// DynamoDB's item count (refreshed about every six hours; local servers may say 0).
    pub item_count: u64,
    /// When the table was created (seconds since the epoch): a table deleted and created again
    /// under the same name has another.
    pub created: Option<f64>,
}

/// The status of a table ready for reads and writes.
pub const ACTIVE: &str = "ACTIVE";

/// One page of a Scan.
#[derive(Debug, Default)]
pub struct ScanPage {
    pub items: Vec<Item>,
    pub consumed_units: f64,
    pub next: Option<HashMap<String, AttributeValue>>,
}

/// Which part of a table a Scan reads, and how: `attributes` only (whole items when empty), one
/// `segment` of how many, from `start`, at most `limit` items, leaving out what `filter` does not
/// cover (the items are read, and billed, all the same). With `index`, the entries of that global
/// index are read instead of the table's items (billed on the entries' size).
#[derive(Debug, Clone, Copy)]
pub struct ScanRequest<'a> {
    pub index: Option<&'a str>,
    pub attributes: &'a [String],
    pub segment: (i32, i32),
    pub start: Option<&'a HashMap<String, AttributeValue>>,
    pub limit: Option<i32>,
    pub filter: Option<&'a Filter>,
}

impl<'a> ScanRequest<'a> {
    /// A whole-item Scan of the whole table (one segment), from its start.
    pub fn whole() -> ScanRequest<'a> {
        ScanRequest { index: None, attributes: &[], segment: (0, 1), start: None, limit: None, filter: None }
    }
}

/// One page of a Query of a global index by the value of its partition key: the entries DynamoDB
/// keeps in the index (the table's keys and the index's projected attributes), from `start`,
/// leaving out what `filter` does not cover (read, and billed, all the same). Eventually
/// consistent: a global index cannot be read otherwise.
#[derive(Debug, Clone, Copy)]
pub struct IndexQuery<'a> {
    pub index: &'a str,
    /// The index's partition key attribute and the value read.
    pub partition: (&'a str, &'a AttributeValue),
    pub start: Option<&'a HashMap<String, AttributeValue>>,
    pub filter: Option<&'a Filter>,
}

/// What one BatchGetItem call returned.
#[derive(Debug, Default)]
pub struct Fetched {
    pub items: Vec<Item>,
    /// Keys the server did not read this time; ask again.
    pub unprocessed: Vec<Item>,
    pub consumed_units: f64,
}

/// A condition on a single-item write: `expression` with `:name` values. An entry named `#name`
/// (its value a string) is an attribute name the expression spells `#name`, for a key attribute
/// whose name DynamoDB reserves (`name`, `year`); kept in the one list so that the conditions the
/// lock writes need no change.
#[derive(Debug, Clone)]
pub struct Condition<'a> {
    pub expression: &'a str,
    pub values: Vec<(&'a str, AttributeValue)>,
}

/// Which attributes an index copies.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Projection {
    All,
    KeysOnly,
    /// The keys and these attributes.
    Include(Vec<String>),
}

/// One request of a BatchWriteItem call.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Write this whole item.
    Put(Item),
    /// Delete the item with this key (the key attributes only).
    Delete(Item),
}

impl Request {
    /// The item, or the key of the item to delete: enough to name it in messages.
    pub fn item(&self) -> &Item {
        match self {
            Request::Put(item) | Request::Delete(item) => item,
        }
    }
}

/// What DynamoDB did with one BatchWriteItem call.
#[derive(Debug, Default, Clone)]
pub struct WriteReply {
    /// Requests DynamoDB did not carry out this time (`UnprocessedItems`): send them again, later.
    pub unprocessed: Vec<Request>,
    /// Write units DynamoDB reported (`ConsumedCapacity`, indexes included).
    pub consumed_units: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The table, its partitions or the account is over its throughput: retry after a pause.
    #[error("throttled by DynamoDB ({0})")]
    Throttled(String),
    /// Worth retrying: a 5xx answer, a timeout, a dropped connection.
    #[error("{0}")]
    Transient(String),
    /// DynamoDB refused the request as invalid (`ValidationException`). Resending it cannot help,
    /// but a batch is refused whole for a single bad item: its other items may be written alone.
    #[error("{0}")]
    Invalid(String),
    /// Retrying cannot help: a missing table, access denied.
    #[error("{0}")]
    Fatal(String),
    /// The call was sent and its answer given up on (the lease ran out, the drain after a stop
    /// ended): it may or may not have been carried out, and it is not sent again.
    #[error("{0}")]
    Unanswered(String),
}

impl TargetError {
    pub fn is_retryable(&self) -> bool {
        !matches!(self, TargetError::Fatal(_) | TargetError::Invalid(_) | TargetError::Unanswered(_))
    }

    /// Whether the request may have been carried out although it failed: a server error (5xx) or
    /// no answer at all (a timeout, a connection dropped after sending, an answer given up on).
    /// A throttled or refused request was not carried out.
    pub fn may_have_written(&self) -> bool {
        matches!(self, TargetError::Transient(_) | TargetError::Unanswered(_))
    }
}

/// The answer of a target call, boxed so that [`Target`] can be used as `dyn Target`: calls are per
/// page or batch, so the allocation costs nothing measurable.
pub type Reply<'a, T> = Pin<Box<dyn Future<Output = Result<T, TargetError>> + Send + 'a>>;

/// The whole DynamoDB data plane the engine uses. Reads (`describe`, `scan`, `query_index`, `batch_get`,
/// `query_from`, `get_item`, `try_filter`) change nothing; everything else is a write, which a
/// dry run records instead of sending.
pub trait Target: Send + Sync {
    /// The region, and the endpoint when it is not AWS's: `us-east-1 (http://127.0.0.1:8000)`.
    fn endpoint(&self) -> &str;

    /// Whether writes only rehearse (the dry-run target records them and sends nothing): there is
    /// nothing a stopping run must hold back.
    fn rehearses(&self) -> bool {
        false
    }

    /// Checks that the credential chain yields credentials, before any call needs them; the name
    /// of the provider that gave them (`Environment`, `ProfileFile`, …).
    fn credentials(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>>;

    /// `None` when the table does not exist.
    fn describe<'a>(&'a self, table: &'a str) -> Reply<'a, Option<TableInfo>>;

    /// Starts creating an on-demand table with its indexes (see [`create_and_wait`]).
    fn create_table<'a>(&'a self, table: &'a str, schema: &'a TableSchema) -> Reply<'a, ()>;

    /// Starts adding a global secondary index to an existing table, which DynamoDB then fills from
    /// the table's items (a local index cannot be added after creation).
    fn add_index<'a>(&'a self, table: &'a str, keys: &'a KeySchema, index: &'a IndexSchema) -> Reply<'a, ()>;

    /// Starts deleting a table; a table that does not exist is no error.
    fn delete_table<'a>(&'a self, table: &'a str) -> Reply<'a, ()>;

    /// One page of a Scan. Sent once: the caller retries (and counts the retries).
    fn scan<'a>(&'a self, table: &'a str, request: ScanRequest<'a>) -> Reply<'a, ScanPage>;

    /// One page of a Query of a global index (see [`IndexQuery`]). Sent once: the caller retries.
    fn query_index<'a>(&'a self, table: &'a str, query: IndexQuery<'a>) -> Reply<'a, ScanPage>;

    /// One BatchWriteItem call of at most 25 requests. Sent once: the caller retries.
    fn batch_write<'a>(&'a self, table: &'a str, requests: &'a [Request]) -> Reply<'a, WriteReply>;

    /// Reads up to 100 items by key with strongly consistent reads. Sent once: the caller retries.
    fn batch_get<'a>(&'a self, table: &'a str, keys: Vec<Item>) -> Reply<'a, Fetched>;

    /// Whether DynamoDB accepts `filter`, tried as the filter of a Query of one partition
    /// (`pk_name = pk`, where no item should be) of at most one item.
    fn try_filter<'a>(&'a self, table: &'a str, partition: (&'a str, &'a str), filter: &'a Filter) -> Reply<'a, ()>;

    /// Every item of one partition (`pk_name = pk`) whose sort key is at least `sk_from`, in order;
    /// none when the table does not exist.
    fn query_from<'a>(
        &'a self,
        table: &'a str,
        partition: (&'a str, &'a str),
        sort_from: (&'a str, &'a str),
    ) -> Reply<'a, Vec<Item>>;

    /// Reads one item with a strongly consistent read.
    fn get_item<'a>(&'a self, table: &'a str, key: Item) -> Reply<'a, Option<Item>>;

    /// Writes one item (run records); returns the units consumed.
    fn put_item<'a>(&'a self, table: &'a str, item: Item) -> Reply<'a, f64>;

    /// Writes one item if `condition` holds; `Ok(false)` when it does not.
    fn put_if<'a>(&'a self, table: &'a str, item: Item, condition: Condition<'a>) -> Reply<'a, bool>;

    /// Deletes one item if `condition` holds; `Ok(false)` when it does not.
    fn delete_if<'a>(&'a self, table: &'a str, key: Item, condition: Condition<'a>) -> Reply<'a, bool>;
}

/// Waits until the table and its indexes are ACTIVE (`gone = false`) or the table no longer
/// exists (`gone = true`), polling quickly at first (local servers answer at once) and every
/// second at most (AWS takes seconds, and minutes to fill a new index).
pub async fn wait(target: &dyn Target, table: &str, gone: bool, limit: Duration) -> Result<(), TargetError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    loop {
        let info = target.describe(table).await?;
        let done = match &info {
            None => gone,
            Some(info) => !gone && info.status == ACTIVE && info.indexes_building == 0,
        };
        if done {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            let state = match info {
                None => "absent".to_string(),
                Some(i) if i.indexes_building > 0 => format!("{}, building {} indexes,", i.status, i.indexes_building),
                Some(i) => i.status,
            };
            return Err(TargetError::Fatal(format!("table {table} is still {state} after {}s", limit.as_secs())));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

impl dyn Target + '_ {
    /// Waits for `table`: see [`wait`].
    pub async fn wait(&self, table: &str, gone: bool, limit: Duration) -> Result<(), TargetError> {
        wait(self, table, gone, limit).await
    }

    /// Creates an on-demand table and waits until it is ACTIVE.
    pub async fn make_table(&self, table: &str, schema: &TableSchema) -> Result<(), TargetError> {
        self.create_table(table, schema).await?;
        self.wait(table, false, TABLE_WAIT).await
    }

    /// Deletes a table if it exists and waits until it is gone.
    pub async fn drop_table(&self, table: &str) -> Result<(), TargetError> {
        self.delete_table(table).await?;
        self.wait(table, true, TABLE_WAIT).await
    }

    /// Adds a global secondary index and waits until DynamoDB has filled it.
    pub async fn build_index(&self, table: &str, keys: &KeySchema, index: &IndexSchema) -> Result<(), TargetError> {
        self.add_index(table, keys, index).await?;
        self.wait(table, false, TABLE_WAIT).await
    }

    /// One page of one Scan segment: see [`ScanRequest`].
    pub async fn scan_page(
        &self,
        table: &str,
        attributes: &[String],
        segment: (i32, i32),
        start: Option<HashMap<String, AttributeValue>>,
        filter: Option<&Filter>,
    ) -> Result<ScanPage, TargetError> {
        self.scan_limited(table, attributes, segment, start, None, filter).await
    }

    /// [`Self::scan_page`] reading at most `limit` items (a sample costs only what it reads).
    pub async fn scan_limited(
        &self,
        table: &str,
        attributes: &[String],
        segment: (i32, i32),
        start: Option<HashMap<String, AttributeValue>>,
        limit: Option<i32>,
        filter: Option<&Filter>,
    ) -> Result<ScanPage, TargetError> {
        self.scan(table, ScanRequest { index: None, attributes, segment, start: start.as_ref(), limit, filter }).await
    }
}

/// Every target writes batches: the writer ([`crate::engine::writer`]) and the guard ([`crate::engine::guard`])
/// take any [`BatchWriter`], so that their tests script one.
impl BatchWriter for dyn Target {
    fn rehearses(&self) -> bool {
        Target::rehearses(self)
    }

    async fn write_batch(&self, table: &str, requests: &[Request]) -> Result<WriteReply, TargetError> {
        self.batch_write(table, requests).await
    }
}

/// Writes batches of at most 25 requests, never the same key twice in one batch.
pub trait BatchWriter: Send + Sync {
    /// Whether a batch may be sent now at all; asked before a batch waits for its turn (the pace,
    /// the units cap), so that a stopping run does not wait to refuse it.
    fn may_send(&self) -> Result<(), TargetError> {
        Ok(())
    }

    /// Whether batches go nowhere (a dry run's): a stop then holds none back, so that an
    /// interrupted dry run reports every row it read, as it would have been written.
    fn rehearses(&self) -> bool {
        false
    }

    fn write_batch(
        &self,
        table: &str,
        requests: &[Request],
    ) -> impl Future<Output = Result<WriteReply, TargetError>> + Send;
}

/// A target that answers from a script, for the tests of the logic above the seam.
#[cfg(test)]
pub mod scripted {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;

    /// Answers each operation with the next answer scripted for it (a harmless default when none
    /// is left) and logs every call as `operation table`.
    #[derive(Default)]
    pub struct Scripted {
        pub calls: Mutex<Vec<String>>,
        pub describes: Mutex<VecDeque<Result<Option<TableInfo>, TargetError>>>,
        pub scans: Mutex<VecDeque<Result<ScanPage, TargetError>>>,
        pub gets: Mutex<VecDeque<Result<Option<Item>, TargetError>>>,
        pub conditionals: Mutex<VecDeque<Result<bool, TargetError>>>,
        /// Fails the test on any write: the inner target of a dry run.
        pub read_only: bool,
    }

    impl Scripted {
        pub fn read_only() -> Scripted {
            Scripted { read_only: true, ..Scripted::default() }
        }

        pub fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }

        fn log(&self, call: String) {
            self.calls.lock().unwrap().push(call);
        }

        fn write(&self, call: String) {
            assert!(!self.read_only, "a write reached the target: {call}");
            self.log(call);
        }

        fn next<T>(queue: &Mutex<VecDeque<Result<T, TargetError>>>, default: T) -> Result<T, TargetError> {
            queue.lock().unwrap().pop_front().unwrap_or(Ok(default))
        }
    }

    /// A table as DescribeTable says it, in this status.
    pub fn info(status: &str, indexes_building: usize) -> TableInfo {
        TableInfo {
            status: status.to_string(),
            key_schema: vec![("id".into(), "S".into())],
            indexes: Vec::new(),
            indexes_building,
            item_count: 7,
            created: None,
        }
    }

    impl Target for Scripted {
        fn endpoint(&self) -> &str {
            "scripted"
        }

        fn credentials(&self) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + '_>> {
            Box::pin(async { Ok("Scripted".to_string()) })
        }

        fn describe<'a>(&'a self, table: &'a str) -> Reply<'a, Option<TableInfo>> {
            self.log(format!("describe {table}"));
            let answer = Self::next(&self.describes, None);
            Box::pin(async move { answer })
        }

        fn create_table<'a>(&'a self, table: &'a str, _: &'a TableSchema) -> Reply<'a, ()> {
            self.write(format!("create_table {table}"));
            Box::pin(async { Ok(()) })
        }

        fn add_index<'a>(&'a self, table: &'a str, _: &'a KeySchema, _: &'a IndexSchema) -> Reply<'a, ()> {
            self.write(format!("add_index {table}"));
            Box::pin(async { Ok(()) })
        }

        fn delete_table<'a>(&'a self, table: &'a str) -> Reply<'a, ()> {
            self.write(format!("delete_table {table}"));
            Box::pin(async { Ok(()) })
        }

        fn scan<'a>(&'a self, table: &'a str, _: ScanRequest<'a>) -> Reply<'a, ScanPage> {
            self.log(format!("scan {table}"));
            let answer = Self::next(&self.scans, ScanPage::default());
            Box::pin(async move { answer })
        }

        fn query_index<'a>(&'a self, table: &'a str, query: IndexQuery<'a>) -> Reply<'a, ScanPage> {
            self.log(format!("query_index {table} {}", query.index));
            let answer = Self::next(&self.scans, ScanPage::default());
            Box::pin(async move { answer })
        }

        fn batch_write<'a>(&'a self, table: &'a str, _: &'a [Request]) -> Reply<'a, WriteReply> {
            self.write(format!("batch_write {table}"));
            Box::pin(async { Ok(WriteReply::default()) })
        }

        fn batch_get<'a>(&'a self, table: &'a str, _: Vec<Item>) -> Reply<'a, Fetched> {
            self.log(format!("batch_get {table}"));
            Box::pin(async { Ok(Fetched::default()) })
        }

        fn try_filter<'a>(&'a self, table: &'a str, _: (&'a str, &'a str), _: &'a Filter) -> Reply<'a, ()> {
            self.log(format!("try_filter {table}"));
            Box::pin(async { Ok(()) })
        }

        fn query_from<'a>(
            &'a self,
            table: &'a str,
            _: (&'a str, &'a str),
            _: (&'a str, &'a str),
        ) -> Reply<'a, Vec<Item>> {
            self.log(format!("query_from {table}"));
            Box::pin(async { Ok(Vec::new()) })
        }

        fn get_item<'a>(&'a self, table: &'a str, _: Item) -> Reply<'a, Option<Item>> {
            self.log(format!("get_item {table}"));
            let answer = Self::next(&self.gets, None);
            Box::pin(async move { answer })
        }

        fn put_item<'a>(&'a self, table: &'a str, _: Item) -> Reply<'a, f64> {
            self.write(format!("put_item {table}"));
            Box::pin(async { Ok(1.0) })
        }

        fn put_if<'a>(&'a self, table: &'a str, _: Item, condition: Condition<'a>) -> Reply<'a, bool> {
            self.write(format!("put_if {table} {}", condition.expression));
            let answer = Self::next(&self.conditionals, true);
            Box::pin(async move { answer })
        }

        fn delete_if<'a>(&'a self, table: &'a str, _: Item, condition: Condition<'a>) -> Reply<'a, bool> {
            self.write(format!("delete_if {table} {}", condition.expression));
            let answer = Self::next(&self.conditionals, true);
            Box::pin(async move { answer })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::scripted::{info, Scripted};
    use super::*;

    #[tokio::test]
    async fn wait_polls_until_the_table_and_its_indexes_are_active() {
        let target = Scripted::default();
        target.describes.lock().unwrap().extend([
            Ok(Some(info("CREATING", 0))),
            Ok(Some(info(ACTIVE, 1))),
            Ok(Some(info(ACTIVE, 0))),
            Ok(Some(info("DELETING", 0))),
        ]);
        wait(&target, "t", false, TABLE_WAIT).await.unwrap();
        assert_eq!(target.calls(), ["describe t"; 3], "it stops at the first ACTIVE table with no index building");
    }

    #[tokio::test]
    async fn wait_for_a_table_to_go_ends_when_it_is_absent() {
        let target = Scripted::default();
        target.describes.lock().unwrap().extend([Ok(Some(info("DELETING", 0))), Ok(None)]);
        wait(&target, "t", true, TABLE_WAIT).await.unwrap();
        assert_eq!(target.calls().len(), 2);
    }

    #[tokio::test]
    async fn wait_gives_up_after_its_limit_saying_what_the_table_is() {
        let target = Scripted::default();
        target.describes.lock().unwrap().extend((0..100).map(|_| Ok(Some(info(ACTIVE, 2)))));
        let err = wait(&target, "t", false, Duration::from_millis(30)).await.unwrap_err();
        assert_eq!(err, TargetError::Fatal("table t is still ACTIVE, building 2 indexes, after 0s".into()));
    }

    #[tokio::test]
    async fn wait_passes_on_a_failed_describe() {
        let target = Scripted::default();
        target.describes.lock().unwrap().push_back(Err(TargetError::Fatal("AccessDeniedException".into())));
        let err = wait(&target, "t", false, TABLE_WAIT).await.unwrap_err();
        assert_eq!(err, TargetError::Fatal("AccessDeniedException".into()));
    }

    #[tokio::test]
    async fn make_table_creates_then_waits_and_drop_table_deletes_then_waits() {
        let scripted = std::sync::Arc::new(Scripted::default());
        scripted.describes.lock().unwrap().extend([Ok(None), Ok(Some(info("CREATING", 0))), Ok(Some(info(ACTIVE, 0)))]);
        let target: std::sync::Arc<dyn Target> = scripted.clone();
        target.drop_table("old").await.unwrap();
        target.make_table("new", &TableSchema::default()).await.unwrap();
        assert_eq!(
            scripted.calls(),
            ["delete_table old", "describe old", "create_table new", "describe new", "describe new"]
        );
    }
}
