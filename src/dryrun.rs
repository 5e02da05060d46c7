//! The dry-run target: a [`Target`] that reads through to the real one and records every write
//! instead of sending it, so that "a dry run writes nothing" holds by construction, whatever the
//! engine above does.
//!
//! A batch write is answered as fully processed, with the write units DynamoDB would bill for the
//! items' sizes; a conditional write as done. Tables created or deleted are recorded, and later reads
//! in the same run see the recorded state: a table "created" in a dry run is empty (and ACTIVE at
//! once), one "deleted" is gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::item::{self, Item};
use crate::target::{
    Condition, Fetched, Filter, IndexSchema, KeySchema, Reply, Request, ScanPage, ScanRequest, TableInfo, TableSchema,
    Target, TargetError, WriteReply, ACTIVE,
};

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

/// Reads through to `inner`; records writes.
pub struct DryRun {
    inner: Arc<dyn Target>,
    /// Tables this run created (`Some`, empty) or deleted (`None`), as its later reads see them.
    tables: Mutex<HashMap<String, Option<TableInfo>>>,
    writes: Mutex<Vec<Write>>,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Target>) -> DryRun {
        DryRun { inner, tables: Mutex::default(), writes: Mutex::default() }
    }

    /// Every write not sent, in order.
    pub fn writes(&self) -> Vec<Write> {
        self.writes.lock().expect("dry run lock").clone()
    }

    fn record(&self, write: Write) {
        self.writes.lock().expect("dry run lock").push(write);
    }

    /// The table as this run left it, when it created or deleted it.
    fn recorded(&self, table: &str) -> Option<Option<TableInfo>> {
        self.tables.lock().expect("dry run lock").get(table).cloned()
    }

    fn set(&self, table: &str, info: Option<TableInfo>) {
        self.tables.lock().expect("dry run lock").insert(table.to_string(), info);
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

    fn credentials(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        self.inner.credentials()
    }

    fn describe<'a>(&'a self, table: &'a str) -> Reply<'a, Option<TableInfo>> {
        match self.recorded(table) {
            Some(info) => Box::pin(async move { Ok(info) }),
            None => self.inner.describe(table),
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
            None => self.inner.scan(table, request),
        }
    }

    fn batch_write<'a>(&'a self, table: &'a str, requests: &'a [Request]) -> Reply<'a, WriteReply> {
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
