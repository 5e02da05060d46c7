//! The dry-run target: a [`Target`] that reads through to the real one and records every write
//! instead of sending it, so that "a dry run writes nothing" holds by construction, whatever the
//! engine above does.
//!
//! A batch write is answered as fully processed, with the write units DynamoDB would bill for the
//! items' sizes; a conditional write as done. Tables created or deleted are recorded, and later reads
//! in the same run see the recorded state: a table "created" in a dry run is empty (and ACTIVE at
//! once), one "deleted" is gone. For `ddbsync plan` it also keeps every write request whole and
//! the keys the diff read ([`Capture`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::pure::hash::{self, Digest};
use crate::pure::item::{self, Item};
use crate::target::{
    Condition, Fetched, Filter, IndexQuery, IndexSchema, KeySchema, Reply, Request, ScanPage, ScanRequest, TableInfo,
    TableSchema, Target, TargetError, WriteReply, ACTIVE,
};

/// What a run does with DynamoDB, decided once from `--dry-run` ([`Mode::of`]), where its target
/// is chosen ([`Mode::target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Writes, under the run lock, and reports the units DynamoDB measured.
    #[default]
    Real,
    /// A dry run: its target ([`DryRun`]) reads through and records every write instead of sending
    /// it, so that nothing is written whatever the engine does. It takes no run lock (it must neither
    /// wait for a real run nor hold one up), is not paced by the units cap, keeps nothing outside
    /// DynamoDB (no backup before `--clean`), and prices the writes from the items' sizes.
    Rehearsal,
}

impl Mode {
    /// The one place `--dry-run` is decided.
    pub fn of(dry_run: bool) -> Mode {
        if dry_run {
            Mode::Rehearsal
        } else {
            Mode::Real
        }
    }

    /// The run's target: DynamoDB itself, or for a rehearsal the dry run that wraps it.
    pub fn target(self, dynamo: Arc<dyn Target>) -> Arc<dyn Target> {
        match self {
            Mode::Real => dynamo,
            Mode::Rehearsal => Arc::new(DryRun::new(dynamo)),
        }
    }

    pub fn is_rehearsal(self) -> bool {
        self == Mode::Rehearsal
    }

    /// Where a report's units come from.
    pub fn units(self) -> &'static str {
        match self {
            Mode::Real => "measured",
            Mode::Rehearsal => "estimated from item sizes",
        }
    }
}

/// What a run is doing to a table (`deleting`), or for a rehearsal what the real run would do
/// (`would delete`): a note says nothing a dry run did not do.
pub fn doing(mode: Mode, (ing, verb): (&str, &str)) -> String {
    match mode {
        Mode::Real => ing.to_string(),
        Mode::Rehearsal => format!("would {verb}"),
    }
}

/// A write a dry run did not send.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    CreateTable(String),
    AddIndex {
        table: String,
        index: String,
    },
    DeleteTable(String),
    /// A BatchWriteItem call: its puts and deletes.
    Batch {
        table: String,
        puts: usize,
        deletes: usize,
    },
    Put(String),
    PutIf(String),
    DeleteIf(String),
}

/// What `ddbsync plan` keeps of a dry run: every write request whole, and the keys the diff read
/// (a put of any other key is a create). It holds every item the plan holds, as the plan file does.
#[derive(Debug, Default)]
pub struct Capture {
    tables: Mutex<HashMap<String, Captured>>,
}

/// One table's part of a [`Capture`].
#[derive(Debug, Default, Clone)]
pub struct Captured {
    /// The key attribute names, from DescribeTable.
    pub key_names: Vec<String>,
    /// The keys the diff's read found an item at, with the item's `_ddbsync_hash` as read (the plan
    /// leaves out a change whose item moved before it read the item whole).
    pub stored: HashMap<Digest, Option<String>>,
    pub puts: Vec<Item>,
    pub deletes: Vec<Item>,
}

impl Capture {
    /// A table's captured writes and reads (empty when the run did not touch it).
    pub fn table(&self, table: &str) -> Captured {
        self.tables.lock().expect("capture lock").get(table).cloned().unwrap_or_default()
    }

    fn keys(&self, table: &str, info: &TableInfo) {
        let mut tables = self.tables.lock().expect("capture lock");
        tables.entry(table.to_string()).or_default().key_names =
            info.key_schema.iter().map(|(n, _)| n.clone()).collect();
    }

    fn read(&self, table: &str, items: &[Item]) {
        let mut tables = self.tables.lock().expect("capture lock");
        let captured = tables.entry(table.to_string()).or_default();
        for item in items {
            if let Some(key) = hash::item_key_digest(item, &captured.key_names) {
                let stored = item.get(crate::pure::item::HASH_ATTR).and_then(|h| h.as_s().ok()).cloned();
                captured.stored.insert(key, stored);
            }
        }
    }

    fn write(&self, table: &str, requests: &[Request]) {
        let mut tables = self.tables.lock().expect("capture lock");
        let captured = tables.entry(table.to_string()).or_default();
        for request in requests {
            match request {
                Request::Put(item) => captured.puts.push(item.clone()),
                Request::Delete(key) => captured.deletes.push(key.clone()),
            }
        }
    }
}

/// Reads through to `inner`; records writes.
pub struct DryRun {
    inner: Arc<dyn Target>,
    /// Tables this run created (`Some`, empty) or deleted (`None`), as its later reads see them.
    tables: Mutex<HashMap<String, Option<TableInfo>>>,
    writes: Mutex<Vec<Write>>,
    /// For a plan: the writes whole, and the hashes the diff read.
    capture: Option<Arc<Capture>>,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Target>) -> DryRun {
        DryRun { inner, tables: Mutex::default(), writes: Mutex::default(), capture: None }
    }

    /// A dry run that also keeps what a plan needs in `capture`.
    pub fn capturing(inner: Arc<dyn Target>, capture: Arc<Capture>) -> DryRun {
        DryRun { capture: Some(capture), ..DryRun::new(inner) }
    }

    /// Every write not sent, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().expect("dry run lock").clone()
    }

    /// Records a write; consecutive batches of one table are summed into one entry, so that what a
    /// dry run keeps does not grow with the items it rehearses.
    fn record(&self, write: Write) {
        let mut writes = self.writes.lock().expect("dry run lock");
        if let (Some(Write::Batch { table, puts, deletes }), Write::Batch { table: next, puts: p, deletes: d }) =
            (writes.last_mut(), &write)
        {
            if table == next {
                *puts += p;
                *deletes += d;
                return;
            }
        }
        writes.push(write);
    }

    /// The table as this run left it, when it created or deleted it.
    fn recorded(&self, table: &str) -> Option<Option<TableInfo>> {
        self.tables.lock().expect("dry run lock").get(table).cloned()
    }

    fn set(&self, table: &str, info: Option<TableInfo>) {
        self.tables.lock().expect("dry run lock").insert(table.to_string(), info);
    }
}

impl DryRun {
    /// A page of the diff's read, kept by a capturing dry run.
    fn read<'a>(&'a self, table: &'a str, page: Reply<'a, ScanPage>) -> Reply<'a, ScanPage> {
        match &self.capture {
            None => page,
            Some(capture) => Box::pin(async move {
                let page = page.await?;
                capture.read(table, &page.items);
                Ok(page)
            }),
        }
    }
}

/// What DynamoDB says of a table that does not exist, for a read of one this dry run deleted.
fn gone(table: &str) -> TargetError {
    TargetError::Fatal(format!("Requested resource not found: table {table} was deleted earlier in this dry run"))
}

/// What a dry run answers for a table it created or deleted, or `None` to read through.
fn answer<T>(
    recorded: Option<Option<TableInfo>>,
    table: &str,
    empty: impl FnOnce() -> T,
) -> Option<Result<T, TargetError>> {
    match recorded {
        None => None,
        Some(Some(_)) => Some(Ok(empty())),
        Some(None) => Some(Err(gone(table))),
    }
}

impl Target for DryRun {
    fn endpoint(&self) -> &str {
        self.inner.endpoint()
    }

    fn rehearses(&self) -> bool {
        true
    }

    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, String>> + Send + '_>> {
        self.inner.credentials()
    }

    fn describe<'a>(&'a self, table: &'a str) -> Reply<'a, Option<TableInfo>> {
        match (self.recorded(table), &self.capture) {
            (Some(info), _) => Box::pin(async move { Ok(info) }),
            (None, None) => self.inner.describe(table),
            (None, Some(capture)) => Box::pin(async move {
                let info = self.inner.describe(table).await?;
                if let Some(info) = &info {
                    capture.keys(table, info);
                }
                Ok(info)
            }),
        }
    }

    fn create_table<'a>(&'a self, table: &'a str, schema: &'a TableSchema) -> Reply<'a, ()> {
        self.record(Write::CreateTable(table.to_string()));
        let info = TableInfo {
            status: ACTIVE.to_string(),
            key_schema: schema.keys.clone(),
            indexes: schema.indexes.clone(),
            indexes_building: 0,
            item_count: 0,
            created: None,
        };
        self.set(table, Some(info));
        Box::pin(async { Ok(()) })
    }

    fn add_index<'a>(&'a self, table: &'a str, _keys: &'a KeySchema, index: &'a IndexSchema) -> Reply<'a, ()> {
        self.record(Write::AddIndex { table: table.to_string(), index: index.name.clone() });
        Box::pin(async move {
            // Later describes show the index, as DynamoDB's would once it is built.
            let info = match self.recorded(table) {
                Some(info) => info,
                None => self.inner.describe(table).await?,
            };
            let Some(mut info) = info else { return Err(gone(table)) };
            info.indexes.push(index.clone());
            self.set(table, Some(info));
            Ok(())
        })
    }

    fn delete_table<'a>(&'a self, table: &'a str) -> Reply<'a, ()> {
        self.record(Write::DeleteTable(table.to_string()));
        self.set(table, None);
        Box::pin(async { Ok(()) })
    }

    fn scan<'a>(&'a self, table: &'a str, request: ScanRequest<'a>) -> Reply<'a, ScanPage> {
        match answer(self.recorded(table), table, ScanPage::default) {
            Some(page) => Box::pin(async move { page }),
            None => self.read(table, self.inner.scan(table, request)),
        }
    }

    fn query_index<'a>(&'a self, table: &'a str, query: IndexQuery<'a>) -> Reply<'a, ScanPage> {
        match answer(self.recorded(table), table, ScanPage::default) {
            Some(page) => Box::pin(async move { page }),
            None => self.read(table, self.inner.query_index(table, query)),
        }
    }

    fn batch_write<'a>(&'a self, table: &'a str, requests: &'a [Request]) -> Reply<'a, WriteReply> {
        if let Some(capture) = &self.capture {
            capture.write(table, requests);
        }
        let puts = requests.iter().filter(|r| matches!(r, Request::Put(_))).count();
        self.record(Write::Batch { table: table.to_string(), puts, deletes: requests.len() - puts });
        // A delete is billed by the size of the item it deletes, which a key alone does not tell:
        // one unit, DynamoDB's least.
        let consumed_units = requests
            .iter()
            .map(|r| match r {
                Request::Put(item) => item::write_units(item::item_size(item)),
                Request::Delete(_) => 1,
            })
            .sum::<u64>() as f64;
        Box::pin(async move { Ok(WriteReply { unprocessed: Vec::new(), consumed_units }) })
    }

    fn batch_get<'a>(&'a self, table: &'a str, keys: Vec<Item>) -> Reply<'a, Fetched> {
        match answer(self.recorded(table), table, Fetched::default) {
            Some(fetched) => Box::pin(async move { fetched }),
            None => self.inner.batch_get(table, keys),
        }
    }

    fn try_filter<'a>(&'a self, table: &'a str, partition: (&'a str, &'a str), filter: &'a Filter) -> Reply<'a, ()> {
        self.inner.try_filter(table, partition, filter)
    }

    fn query_from<'a>(
        &'a self,
        table: &'a str,
        partition: (&'a str, &'a str),
        sort_from: (&'a str, &'a str),
    ) -> Reply<'a, Vec<Item>> {
        match answer(self.recorded(table), table, Vec::new) {
            Some(items) => Box::pin(async move { items }),
            None => self.inner.query_from(table, partition, sort_from),
        }
    }

    fn get_item<'a>(&'a self, table: &'a str, key: Item) -> Reply<'a, Option<Item>> {
        match answer(self.recorded(table), table, || None) {
            Some(item) => Box::pin(async move { item }),
            None => self.inner.get_item(table, key),
        }
    }

    fn put_item<'a>(&'a self, table: &'a str, item: Item) -> Reply<'a, f64> {
        self.record(Write::Put(table.to_string()));
        let units = item::write_units(item::item_size(&item)) as f64;
        Box::pin(async move { Ok(units) })
    }

    fn put_if<'a>(&'a self, table: &'a str, _item: Item, _condition: Condition<'a>) -> Reply<'a, bool> {
        self.record(Write::PutIf(table.to_string()));
        Box::pin(async { Ok(true) })
    }

    fn delete_if<'a>(&'a self, table: &'a str, _key: Item, _condition: Condition<'a>) -> Reply<'a, bool> {
        self.record(Write::DeleteIf(table.to_string()));
        Box::pin(async { Ok(true) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::AttributeValue;
    use crate::target::scripted::{info, Scripted};
    use crate::target::TABLE_WAIT;

    fn item(id: &str) -> Item {
        Item::from([("id".to_string(), AttributeValue::S(id.into()))])
    }

    fn dry(inner: &Arc<Scripted>) -> Arc<dyn Target> {
        Arc::new(DryRun::new(inner.clone()))
    }

    #[tokio::test]
    async fn a_dry_run_sends_no_write_to_the_target_it_wraps() {
        // The inner target fails the test on any write.
        let inner = Arc::new(Scripted::read_only());
        let rehearsal = DryRun::new(inner.clone());
        let target: &dyn Target = &rehearsal;
        let schema = TableSchema { keys: vec![("id".into(), "S".into())], indexes: Vec::new() };
        let index = IndexSchema {
            name: "by_name".into(),
            local: false,
            keys: vec![("name".into(), "S".into())],
            projection: crate::profile::Projection::All,
        };
        let condition = || Condition { expression: "attribute_not_exists(pk)", values: Vec::new() };
        target.drop_table("old").await.unwrap();
        target.make_table("new", &schema).await.unwrap();
        target.build_index("new", &schema.keys, &index).await.unwrap();
        let batch = [Request::Put(item("1")), Request::Put(item("2")), Request::Delete(item("3"))];
        let reply = target.batch_write("new", &batch).await.unwrap();
        assert!(reply.unprocessed.is_empty());
        assert_eq!(reply.consumed_units, 3.0, "two small puts and a delete, as DynamoDB bills them");
        // A second batch of the table adds to the first's entry: the record does not grow per batch.
        target.batch_write("new", &batch[..1]).await.unwrap();
        assert_eq!(target.put_item("meta", item("run")).await.unwrap(), 1.0);
        assert!(target.put_if("meta", item("lock"), condition()).await.unwrap());
        assert!(target.delete_if("meta", item("lock"), condition()).await.unwrap());

        assert_eq!(
            rehearsal.writes(),
            [
                Write::DeleteTable("old".into()),
                Write::CreateTable("new".into()),
                Write::AddIndex { table: "new".into(), index: "by_name".into() },
                Write::Batch { table: "new".into(), puts: 3, deletes: 1 },
                Write::Put("meta".into()),
                Write::PutIf("meta".into()),
                Write::DeleteIf("meta".into()),
            ]
        );
        // The only calls that reached the inner target: none, as every table was the dry run's own.
        assert_eq!(inner.calls(), Vec::<String>::new());
    }

    #[tokio::test]
    async fn a_capturing_dry_run_keeps_the_writes_whole_and_the_keys_it_read() {
        let inner = Arc::new(Scripted::read_only());
        inner.describes.lock().unwrap().push_back(Ok(Some(crate::target::scripted::info(ACTIVE, 0))));
        inner
            .scans
            .lock()
            .unwrap()
            .push_back(Ok(ScanPage { items: vec![item("1"), item("2")], ..ScanPage::default() }));
        let capture = Arc::new(Capture::default());
        let target: Arc<dyn Target> = Arc::new(DryRun::capturing(inner.clone(), capture.clone()));
        target.describe("t").await.unwrap();
        target.scan_page("t", &[], (0, 1), None, None).await.unwrap();
        target
            .batch_write("t", &[Request::Put(item("2")), Request::Put(item("3")), Request::Delete(item("1"))])
            .await
            .unwrap();
        let captured = capture.table("t");
        assert_eq!(captured.key_names, ["id"]);
        let read = |id: &str| captured.stored.contains_key(&hash::item_key_digest(&item(id), &["id"]).unwrap());
        assert!(read("1") && read("2") && !read("3"), "a put of 3 is a create");
        assert_eq!((captured.puts, captured.deletes), (vec![item("2"), item("3")], vec![item("1")]));
        assert_eq!(inner.calls(), ["describe t", "scan t"], "nothing written");
    }

    #[tokio::test]
    async fn reads_go_through_to_the_target_it_wraps() {
        let inner = Arc::new(Scripted::read_only());
        inner.describes.lock().unwrap().push_back(Ok(Some(info(ACTIVE, 0))));
        inner.scans.lock().unwrap().push_back(Ok(ScanPage { items: vec![item("1")], ..ScanPage::default() }));
        inner.gets.lock().unwrap().push_back(Ok(Some(item("lock"))));
        let target = dry(&inner);
        assert_eq!(target.describe("live").await.unwrap(), Some(info(ACTIVE, 0)));
        assert_eq!(target.scan_page("live", &[], (0, 1), None, None).await.unwrap().items, [item("1")]);
        assert_eq!(target.get_item("meta", item("lock")).await.unwrap(), Some(item("lock")));
        target.batch_get("live", vec![item("1")]).await.unwrap();
        target.query_from("meta", ("pk", "RUN"), ("sk", "")).await.unwrap();
        assert_eq!(inner.calls(), ["describe live", "scan live", "get_item meta", "batch_get live", "query_from meta"]);
    }

    #[tokio::test]
    async fn a_table_created_in_a_dry_run_is_empty_and_one_deleted_is_gone() {
        let inner = Arc::new(Scripted::read_only());
        // The real tables hold items: the dry run's own state hides them.
        inner
            .scans
            .lock()
            .unwrap()
            .extend((0..4).map(|_| Ok(ScanPage { items: vec![item("1")], ..ScanPage::default() })));
        inner.gets.lock().unwrap().extend((0..4).map(|_| Ok(Some(item("1")))));
        let target = dry(&inner);
        let schema = TableSchema { keys: vec![("id".into(), "S".into())], indexes: Vec::new() };

        target.drop_table("recreated").await.unwrap();
        assert_eq!(target.describe("recreated").await.unwrap(), None);
        let gone = target.scan_page("recreated", &[], (0, 1), None, None).await.unwrap_err();
        assert!(matches!(&gone, TargetError::Fatal(m) if m.contains("deleted earlier in this dry run")), "{gone}");

        target.make_table("recreated", &schema).await.unwrap();
        target.wait("recreated", false, TABLE_WAIT).await.unwrap();
        let created = target.describe("recreated").await.unwrap().expect("created");
        assert_eq!((created.status.as_str(), created.item_count, created.key_schema), (ACTIVE, 0, schema.keys.clone()));
        assert!(target.scan_page("recreated", &[], (0, 1), None, None).await.unwrap().items.is_empty());
        assert_eq!(target.get_item("recreated", item("1")).await.unwrap(), None);
        assert!(target.batch_get("recreated", vec![item("1")]).await.unwrap().items.is_empty());
        assert_eq!(inner.calls(), Vec::<String>::new(), "nothing of a table of its own is read from DynamoDB");
    }

    #[tokio::test]
    async fn a_rehearsal_writer_writes_every_item_and_sends_none() {
        // The writer a sync starts, on a rehearsal's target: every batch is answered as written.
        let inner = Arc::new(Scripted::read_only());
        let target = Mode::Rehearsal.target(inner.clone());
        let settings = crate::profile::SyncSettings {
            scan_segments: 1,
            max_in_flight: 4,
            max_attempts: 3,
            max_write_units_per_second: None,
            fail_on_reject: false,
            max_delete_fraction: 0.1,
            lock_lease: std::time::Duration::from_secs(60),
            stall_limit: std::time::Duration::from_secs(300),
        };
        let (fence, stop) = (crate::engine::lock::Fence::open(), crate::engine::stop::Stop::never());
        let (tx, task) = crate::engine::guard::spawn_writer(
            target,
            (&fence, &stop),
            (&settings, None),
            ("t", vec!["id".into()]),
            |_, _| {},
        );
        for n in 0..60 {
            let item = item(&n.to_string());
            let key = crate::pure::hash::key_digest(&[&item["id"]]);
            tx.send(crate::engine::writer::Pending { key, request: Request::Put(item), units: 1 }).await.unwrap();
        }
        drop(tx);
        let outcome = task.await.unwrap();
        assert_eq!((outcome.written, outcome.failed.len(), outcome.consumed_units), (60, 0, 60.0));
        assert_eq!(inner.calls(), Vec::<String>::new());
    }

    #[test]
    fn only_dry_run_is_a_rehearsal_and_only_a_rehearsal_wraps_its_target() {
        assert_eq!((Mode::of(true), Mode::of(false)), (Mode::Rehearsal, Mode::Real));
        let inner: Arc<dyn Target> = Arc::new(Scripted::default());
        assert!(Arc::ptr_eq(&Mode::Real.target(inner.clone()), &inner), "a real run writes to DynamoDB itself");
        assert!(!Arc::ptr_eq(&Mode::Rehearsal.target(inner.clone()), &inner));
    }
}
