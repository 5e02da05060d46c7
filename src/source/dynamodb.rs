//! The DynamoDB adapter: another environment's tables as a source, for promoting data between
//! environments. It reads through the [`Target`] seam (its own client, with the source's region,
//! endpoint and credentials), only ever with Scan, DescribeTable and GetItem calls.
//!
//! A mapping's "query" is its source table's name. An item becomes a row of cells: first the
//! attributes the mapping names (key columns and template parts, the ID, the attributes that hold
//! references, index keys), then one cell holding every other attribute, which the plan spreads
//! back into the item ([`ColumnType::spread`]). So keys, templates, hashing, limits and rejects
//! work as for a SQL source. ddbsync's own attributes (`_ddbsync_*`, in a source that ddbsync
//! itself fills) are left out: the target's are computed afresh.
//!
//! Before a row leaves, [`remap::Remapper`] gives the item its new ID and rewrites its references;
//! an item it refuses (a reference to an ID the referenced source table does not hold, an ID that
//! is not one) has that attribute's cell refused, which rejects the row with its key and reason.
//! The IDs each referenced table holds are known from reading it earlier in the run (tables are
//! read referenced ones first), or else from a Scan of its ID and reference attributes, which
//! leaves out the items whose own references dangle (they are never promoted either).
//!
//! Invariants: nothing is written to the source. Scan pages are retried as the target's are
//! (`sync.max_attempts`), and no wait for the next page is longer than `read_timeout_secs`.
//! Dropping a row stream stops its Scan tasks.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use super::{Described, Rows, Source, SourceError};
use crate::profile::{DynamoSource as Settings, KeySource, Profile, TableMapping};
use crate::pure::item::{self, AttributeValue, Item};
use crate::pure::params::Param;
use crate::pure::remap::{self, Remapper};
use crate::pure::value::{Cast, Cell, ColType, Column, ColumnType, ConvertError};
use crate::target::retry::{self, RetryPolicy};
use crate::target::{ScanRequest, Target};

/// The name of the cell that holds every attribute the mapping does not name.
pub const REST: &str = "*";

/// Pages read ahead of the engine, per table.
const PAGES_AHEAD: usize = 8;

pub struct DynamoDb {
    target: Arc<dyn Target>,
    location: String,
    segments: u32,
    policy: RetryPolicy,
    read_timeout: Duration,
    namespace: String,
    tables: Vec<TableMapping>,
    /// Per mapping name, the typed IDs ([`remap::id_text`]) its source table holds, once read whole.
    known: Mutex<HashMap<String, Arc<HashSet<String>>>>,
    /// Every ID remapped so far: (mapping name, source ID, new ID), for `--id-map`.
    ids: Mutex<Vec<(String, AttributeValue, AttributeValue)>>,
    /// Per source table being read, the typed source ID of the row it gave last, and the IDs of
    /// its rows that the engine rejected after (their items could not be built): neither is
    /// known to the tables that reference it.
    last: Mutex<HashMap<String, String>>,
    rejected: Mutex<HashMap<String, HashSet<String>>>,
}

impl DynamoDb {
    pub async fn connect(profile: &Profile, settings: &Settings) -> DynamoDb {
        let mut config = profile.target.clone();
        if let Some(region) = &settings.region {
            config.region = region.clone();
        }
        config.endpoint_url = settings.endpoint_url.clone();
        if settings.aws_profile.is_some() {
            config.aws_profile = settings.aws_profile.clone();
        }
        let location = match &config.endpoint_url {
            Some(url) => format!("{} ({url})", config.region),
            None => config.region.clone(),
        };
        DynamoDb {
            target: crate::target::dynamo::connect(&config).await,
            location,
            segments: settings.scan_segments,
            policy: RetryPolicy::new(profile.sync.max_attempts),
            read_timeout: profile.source.read_timeout,
            namespace: profile.id_namespace.clone(),
            tables: profile.tables.clone(),
            known: Mutex::default(),
            ids: Mutex::default(),
            last: Mutex::default(),
            rejected: Mutex::default(),
        }
    }

    /// Every ID remapped so far, in the order read: (mapping name, source ID, new ID).
    pub fn id_map(&self) -> Vec<(String, AttributeValue, AttributeValue)> {
        self.ids.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn mapping(&self, source_table: &str) -> Option<&TableMapping> {
        self.tables.iter().find(|t| t.promote.as_ref().is_some_and(|p| p.source_table == source_table))
    }

    /// The source table of mapping `name` (every reference names a mapping with one: the profile checks).
    fn source_table_of(&self, name: &str) -> &str {
        self.tables
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.promote.as_ref())
            .map_or("", |p| p.source_table.as_str())
    }

    fn error(&self, context: &str, cause: impl std::fmt::Display) -> SourceError {
        SourceError::Query { context: context.to_string(), cause: format!("DynamoDB at {}: {cause}", self.location) }
    }

    /// The IDs of mapping `name`'s source table that a reference may point at: known from an
    /// earlier read in this run, or read now with a Scan of the ID and reference attributes. An
    /// item whose own references dangle is never promoted, so its ID is left out, as a read of
    /// the whole table leaves it out; that needs the IDs of the tables it references, first.
    async fn known_ids(&self, name: &str, context: &str) -> Result<Arc<HashSet<String>>, SourceError> {
        if let Some(ids) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(ids.clone());
        }
        let Some(mapping) = self.tables.iter().find(|t| t.name == name) else {
            return Ok(Arc::default());
        };
        let Some(promote) = &mapping.promote else { return Ok(Arc::default()) };
        let Some(id) = &promote.id else { return Ok(Arc::default()) };
        let mut referenced = HashMap::new();
        for reference in &promote.references {
            if !referenced.contains_key(&reference.table) {
                // The profile refuses cycles, so this ends.
                let ids = Box::pin(self.known_ids(&reference.table, context)).await?;
                referenced.insert(reference.table.clone(), ids);
            }
        }
        tracing::info!(table = %promote.source_table, "reading the IDs of a referenced table");
        let mut attributes = vec![id.clone()];
        for reference in &promote.references {
            if !attributes.iter().any(|a| a == reference.attribute()) {
                attributes.push(reference.attribute().to_string());
            }
        }
        let mut ids = HashSet::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let request = ScanRequest {
                index: None,
                attributes: &attributes,
                segment: (0, 1),
                start: start.as_ref(),
                limit: None,
                filter: None,
            };
            let page = tokio::time::timeout(
                self.read_timeout,
                retry::retrying(&self.policy, || self.target.scan(&promote.source_table, request)),
            )
            .await
            .map_err(|_| self.timeout(context))?
            .0
            .map_err(|e| self.error(context, format!("reading the IDs of {}: {e}", promote.source_table)))?;
            let exists = |table: &str, id: &str| referenced.get(table).is_some_and(|ids| ids.contains(id));
            let source_table = |name: &str| self.source_table_of(name);
            let remapper = Remapper {
                namespace: &self.namespace,
                own: Some((promote.source_table.as_str(), id.as_str())),
                references: &promote.references,
                source_table: &source_table,
                exists: &exists,
            };
            for mut item in page.items {
                let Some(text) = item.get(id).and_then(remap::id_text) else { continue };
                if remapper.apply(&mut item).is_ok() {
                    ids.insert(text);
                }
            }
            start = page.next;
            if start.is_none() {
                break;
            }
        }
        let ids = Arc::new(ids);
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), ids.clone());
        Ok(ids)
    }

    fn timeout(&self, context: &str) -> SourceError {
        SourceError::Timeout {
            system: "DynamoDB",
            context: context.to_string(),
            target: self.location.clone(),
            waited: self.read_timeout,
            hint: "check that the source's endpoint answers",
        }
    }
}

/// The attributes a mapping names, in the order its rows give them; the rest follows in [`REST`].
fn named_attributes(mapping: &TableMapping) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    };
    for key in mapping.entities[0].keys() {
        match &key.source {
            KeySource::Column(column) => add(column),
            KeySource::Template(template) => template.columns().for_each(&mut add),
        }
    }
    if let Some(promote) = &mapping.promote {
        if let Some(id) = &promote.id {
            add(id);
        }
        for reference in &promote.references {
            add(reference.attribute());
        }
    }
    for index in &mapping.indexes {
        index.key_attributes().for_each(&mut add);
    }
    names
}

/// An attribute of a DynamoDB source item: typed when the source table declares it (a key of
/// the table or of one of its indexes), or the spread rest of the item.
#[derive(Debug)]
struct Attribute {
    key_type: Option<&'static str>,
    spread: bool,
}

impl ColumnType for Attribute {
    fn name(&self) -> String {
        match (self.spread, self.key_type) {
            (true, _) => "the item's other attributes".into(),
            (false, Some(ty)) => format!("a DynamoDB attribute of type {ty}"),
            (false, None) => "a DynamoDB attribute".into(),
        }
    }

    fn key_type(&self) -> Option<&'static str> {
        self.key_type
    }

    fn unconverted(&self, _column: &str) -> Option<Cast> {
        None
    }

    fn explain(&self, error: &ConvertError, _column: &Column) -> String {
        error.to_string()
    }

    fn untyped(&self) -> Option<&'static str> {
        (self.key_type.is_none()).then_some(
            "the source table does not declare its type: it is a key of neither the table nor one of its indexes",
        )
    }

    fn spread(&self) -> bool {
        self.spread
    }

    fn noun(&self) -> &'static str {
        "attribute"
    }
}

fn key_type(ty: &str) -> Option<&'static str> {
    match ty {
        "S" => Some("S"),
        "N" => Some("N"),
        "B" => Some("B"),
        _ => None,
    }
}

/// What a table's rows share while they are read: the remapping and what it has seen.
struct Reading<'a> {
    source: &'a DynamoDb,
    mapping: &'a TableMapping,
    columns: Vec<String>,
    /// The IDs of each referenced table (by mapping name).
    referenced: HashMap<String, Arc<HashSet<String>>>,
    /// This table's source IDs that were promoted (not refused), known once the whole table is read.
    own: HashSet<String>,
    /// New ID → the source ID that took it: a second source ID with the same new ID is refused.
    taken: HashMap<String, String>,
    remapped: Vec<(String, AttributeValue, AttributeValue)>,
}

impl Reading<'_> {
    fn row(&mut self, mut item: Item) -> Vec<Cell> {
        item.retain(|name, _| !item::is_reserved(name));
        let promote = self.mapping.promote.as_ref().expect("a DynamoDB source's mapping");
        let source_table = |name: &str| self.source.source_table_of(name);
        let referenced = &self.referenced;
        let exists = |table: &str, id: &str| referenced.get(table).is_some_and(|ids| ids.contains(id));
        let remapper = Remapper {
            namespace: &self.source.namespace,
            own: promote.id.as_deref().map(|id| (promote.source_table.as_str(), id)),
            references: &promote.references,
            source_table: &source_table,
            exists: &exists,
        };
        let original = promote.id.as_ref().and_then(|id| item.get(id).map(|v| (id, v.clone())));
        let original_id = original.as_ref().and_then(|(_, v)| remap::id_text(v));
        let mut refused = match remapper.apply(&mut item) {
            Ok(Some((old, new))) => {
                let (old_text, new_text) = (remap::id_text(&old), remap::id_text(&new));
                match (old_text, new_text) {
                    (Some(old_text), Some(new_text)) => match self.taken.get(&new_text) {
                        Some(first) if *first != old_text => Some(remap::Refusal {
                            attribute: promote.id.clone().unwrap_or_default(),
                            reason: format!(
                                "its new ID {} is also the new ID of source ID {}: IDs of this shape have too few \
                                 values to stay apart; lengthen the IDs in the source",
                                remap::show_id(&new),
                                &first[2..]
                            ),
                        }),
                        _ => {
                            self.taken.insert(new_text, old_text);
                            self.remapped.push((self.mapping.name.clone(), old, new));
                            None
                        }
                    },
                    _ => None,
                }
            }
            Ok(None) => None,
            // The key a reject shows is the new one: the source item is named by its own ID.
            Err(mut refusal) => {
                if let Some((attribute, id)) = original.as_ref().filter(|(a, _)| **a != refusal.attribute) {
                    refusal.reason = format!("{} (source item {attribute}={})", refusal.reason, remap::show_id(id));
                }
                Some(refusal)
            }
        };
        // Only a promoted item's ID is one that references may point at: an item that references
        // a refused one would point at nothing in the target.
        let mut last = self.source.last.lock().unwrap_or_else(|p| p.into_inner());
        match original_id.filter(|_| refused.is_none()) {
            Some(id) => {
                last.insert(promote.source_table.clone(), id.clone());
                self.own.insert(id);
            }
            None => {
                last.remove(&promote.source_table);
            }
        }
        drop(last);
        let mut cells: Vec<Cell> = self
            .columns
            .iter()
            .map(|name| {
                if refused.as_ref().is_some_and(|r| r.attribute == *name) {
                    let reason = refused.take().expect("checked").reason;
                    return Cell::refused(ConvertError::Reference(reason));
                }
                item.remove(name).map_or(Cell::Null, Cell::Value)
            })
            .collect();
        // A refusal of an attribute the mapping does not name (it names every one it remaps).
        if let Some(refusal) = refused {
            cells
                .push(Cell::refused(ConvertError::Reference(format!("\"{}\": {}", refusal.attribute, refusal.reason))));
        } else {
            cells.push(Cell::Value(AttributeValue::M(item)));
        }
        cells
    }
}

impl Source for DynamoDb {
    fn system(&self) -> &'static str {
        "DynamoDB"
    }

    fn target(&self) -> &str {
        &self.location
    }

    fn placeholders(&self) -> &'static str {
        "none (a DynamoDB source takes no parameters)"
    }

    fn describe<'a>(&'a self, query: &'a str, context: &'a str) -> BoxFuture<'a, Result<Described, SourceError>> {
        Box::pin(async move {
            let Some(mapping) = self.mapping(query) else {
                return Err(self.error(context, format!("no mapping reads the source table {query}")));
            };
            let info = tokio::time::timeout(self.read_timeout, self.target.describe(query))
                .await
                .map_err(|_| self.timeout(context))?
                .map_err(|e| self.error(context, format!("describing {query}: {e}")))?;
            let Some(info) = info else {
                return Err(self.error(
                    context,
                    format!(
                        "the source table {query} does not exist; check source.table_template (and the mapping's \
                         source_table) in the environment file, and the source's region and account"
                    ),
                ));
            };
            let declared: HashMap<&str, &str> = info
                .key_schema
                .iter()
                .chain(info.indexes.iter().flat_map(|i| i.keys.iter()))
                .map(|(name, ty)| (name.as_str(), ty.as_str()))
                .collect();
            let mut columns: Vec<(String, ColType)> = named_attributes(mapping)
                .into_iter()
                .map(|name| {
                    let ty = declared.get(name.as_str()).and_then(|t| key_type(t));
                    let col: ColType = Arc::new(Attribute { key_type: ty, spread: false });
                    (name, col)
                })
                .collect();
            columns.push((REST.to_string(), Arc::new(Attribute { key_type: None, spread: true })));
            // Every column is an attribute of the item, not an expression.
            let origins = columns.iter().map(|(name, _)| Some(name.clone())).collect();
            Ok(Described { columns, origins, params: Vec::new() })
        })
    }

    fn rows<'a>(
        &'a self,
        query: &'a str,
        params: Vec<Param>,
        context: String,
    ) -> BoxFuture<'a, Result<Rows<'a>, SourceError>> {
        Box::pin(async move {
            if !params.is_empty() {
                return Err(self.error(&context, "a DynamoDB source takes no parameters"));
            }
            let Some(mapping) = self.mapping(query) else {
                return Err(self.error(&context, format!("no mapping reads the source table {query}")));
            };
            let mut referenced = HashMap::new();
            for reference in mapping.promote.iter().flat_map(|p| p.references.iter()) {
                if !referenced.contains_key(&reference.table) {
                    let ids = self.known_ids(&reference.table, &context).await?;
                    referenced.insert(reference.table.clone(), ids);
                }
            }
            let reading = Reading {
                source: self,
                mapping,
                columns: named_attributes(mapping),
                referenced,
                own: HashSet::new(),
                taken: HashMap::new(),
                remapped: Vec::new(),
            };
            let pages = self.scan(query.to_string(), context.clone());
            let state = Some((pages, reading, std::collections::VecDeque::<Item>::new()));
            let stream = futures::stream::unfold(state, move |state| {
                let context = context.clone();
                async move {
                    let (mut pages, mut reading, mut queue) = state?;
                    loop {
                        if let Some(item) = queue.pop_front() {
                            let row = reading.row(item);
                            return Some((Ok(row), Some((pages, reading, queue))));
                        }
                        match tokio::time::timeout(self.read_timeout, pages.receiver.recv()).await {
                            Ok(Some(Ok(items))) => queue.extend(items),
                            Ok(Some(Err(e))) => return Some((Err(e), None)),
                            Ok(None) => {
                                // The whole table was read: its IDs are known to the tables that
                                // reference it, and its remapped IDs go to the ID map.
                                let name = reading.mapping.name.clone();
                                let rejected = self
                                    .rejected
                                    .lock()
                                    .unwrap_or_else(|p| p.into_inner())
                                    .remove(query)
                                    .unwrap_or_default();
                                let mut own = std::mem::take(&mut reading.own);
                                own.retain(|id| !rejected.contains(id));
                                self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(name, Arc::new(own));
                                let mut remapped = std::mem::take(&mut reading.remapped);
                                remapped
                                    .retain(|(_, old, _)| remap::id_text(old).is_none_or(|id| !rejected.contains(&id)));
                                self.ids.lock().unwrap_or_else(|p| p.into_inner()).extend(remapped);
                                return None;
                            }
                            Err(_) => return Some((Err(self.timeout(&context)), None)),
                        }
                    }
                }
            });
            Ok(Box::pin(stream) as Rows<'a>)
        })
    }

    fn hold_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        // DynamoDB has no snapshot to hold: `on_reject = "fail"` reads the source twice.
        Box::pin(async { Ok(()) })
    }

    fn end_snapshot(&self) -> BoxFuture<'_, Result<(), SourceError>> {
        Box::pin(async { Ok(()) })
    }

    fn rejected_last(&self, query: &str) {
        if let Some(id) = self.last.lock().unwrap_or_else(|p| p.into_inner()).remove(query) {
            self.rejected.lock().unwrap_or_else(|p| p.into_inner()).entry(query.to_string()).or_default().insert(id);
        }
    }
}

/// A table's parallel Scan: one task per segment, pages sent in order of arrival. Dropping it
/// stops the tasks.
struct Pages {
    receiver: tokio::sync::mpsc::Receiver<Result<Vec<Item>, SourceError>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.tasks.iter().for_each(|t| t.abort());
    }
}

impl DynamoDb {
    fn scan(&self, table: String, context: String) -> Pages {
        let (sender, receiver) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let total = self.segments as i32;
        let tasks = (0..total)
            .map(|segment| {
                let (sender, target, policy) = (sender.clone(), self.target.clone(), self.policy);
                let (table, context, location) = (table.clone(), context.clone(), self.location.clone());
                tokio::spawn(async move {
                    let mut start: Option<HashMap<String, AttributeValue>> = None;
                    loop {
                        let request = ScanRequest {
                            index: None,
                            attributes: &[],
                            segment: (segment, total),
                            start: start.as_ref(),
                            limit: None,
                            filter: None,
                        };
                        let (page, _) = retry::retrying(&policy, || target.scan(&table, request)).await;
                        match page {
                            Ok(page) => {
                                start = page.next;
                                if sender.send(Ok(page.items)).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let cause = format!("DynamoDB at {location}: reading {table}: {e}");
                                let _ = sender.send(Err(SourceError::Query { context, cause })).await;
                                return;
                            }
                        }
                        if start.is_none() {
                            return;
                        }
                    }
                })
            })
            .collect();
        Pages { receiver, tasks }
    }
}
