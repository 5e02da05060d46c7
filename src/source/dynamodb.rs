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

use super::{Described, Promotion, Rows, Source, SourceError};
use crate::profile::{DynamoSource as Settings, KeySource, Profile, Sample, TableMapping};
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
    /// What the tables read whole so far did to IDs.
    promotion: Mutex<Promotion>,
    /// `sync --limit`: what to sample, and once read, the sampled items per mapping name.
    sample: Option<Sample>,
    sampled: tokio::sync::OnceCell<HashMap<String, Vec<Item>>>,
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
            promotion: Mutex::default(),
            sample: settings.sample.clone(),
            sampled: tokio::sync::OnceCell::new(),
            last: Mutex::default(),
            rejected: Mutex::default(),
        }
    }

    /// A table read whole: what its promotion did goes to the run's [`Promotion`].
    fn finish(&self, reading: &mut Reading<'_>) {
        let promote = reading.mapping.promote.as_ref().expect("a DynamoDB source's mapping");
        let table = remap::Promoted {
            table: reading.mapping.name.clone(),
            source_table: promote.source_table.clone(),
            ids: reading.ids,
            references: promote.references.iter().map(|r| r.path.clone()).zip(reading.references.clone()).collect(),
        };
        let mut promotion = self.promotion.lock().unwrap_or_else(|p| p.into_inner());
        promotion.tables.retain(|t| t.table != table.table);
        promotion.tables.push(table);
        promotion.ids.retain(|(name, _, _)| *name != reading.mapping.name);
        promotion.ids.append(&mut reading.remapped);
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
        // The client is the target's kind: its advice names the target's keys, which here are the source's.
        let cause = cause
            .to_string()
            .replace("target.endpoint_url", "source.endpoint_url")
            .replace("target.region", "source.region");
        SourceError::Query { context: context.to_string(), cause: format!("DynamoDB at {}: {cause}", self.location) }
    }

    /// The IDs of mapping `name`'s source table that a reference may point at: known from an
    /// earlier read in this run, or read now with a Scan of the ID and reference attributes. An
    /// item whose own references dangle is never promoted, so its ID is left out, as a read of
    /// the whole table leaves it out; that needs the IDs of the tables it references, first. In a
    /// sampled run (`--limit`), the sampled items' IDs: the items the sample does not hold are
    /// not written, so a reference to one would dangle.
    async fn known_ids(&self, name: &str, context: &str) -> Result<Arc<HashSet<String>>, SourceError> {
        if let Some(ids) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            return Ok(ids.clone());
        }
        let Some(mapping) = self.tables.iter().find(|t| t.name == name) else {
            return Ok(Arc::default());
        };
        let Some(promote) = &mapping.promote else { return Ok(Arc::default()) };
        let Some(id) = &promote.id else { return Ok(Arc::default()) };
        if let Some(sampled) = self.sampled(context).await? {
            let items = sampled.get(name).map(Vec::as_slice).unwrap_or_default();
            return Ok(Arc::new(items.iter().filter_map(|i| i.get(id)).filter_map(remap::id_text).collect()));
        }
        let mut referenced = HashMap::new();
        for reference in promote.references.iter().filter(|r| r.table != name) {
            if !referenced.contains_key(&reference.table) {
                // The profile refuses cycles (but a table's references to itself), so this ends.
                let ids = Box::pin(self.known_ids(&reference.table, context)).await?;
                referenced.insert(reference.table.clone(), ids);
            }
        }
        let own_references = promote.references.iter().any(|r| r.table == name);
        tracing::info!(table = %promote.source_table, "reading the IDs of a referenced table");
        let mut attributes = vec![id.clone()];
        for reference in &promote.references {
            if !attributes.iter().any(|a| a == reference.attribute()) {
                attributes.push(reference.attribute().to_string());
            }
        }
        let mut items = Vec::new();
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
            items.extend(page.items);
            start = page.next;
            if start.is_none() {
                break;
            }
        }
        // The items the run would promote. A reference to an item of the same table must name one
        // of them too: from all the table's IDs, those whose items are refused are taken out until
        // none is (a chain of self-references is followed to its end).
        let mut ids: HashSet<String> = items.iter().filter_map(|i| i.get(id)).filter_map(remap::id_text).collect();
        loop {
            if own_references {
                referenced.insert(name.to_string(), Arc::new(ids.clone()));
            }
            let exists = |table: &str, id: &str| referenced.get(table).is_some_and(|ids| ids.contains(id));
            let source_table = |name: &str| self.source_table_of(name);
            let remapper = Remapper {
                namespace: &self.namespace,
                own: Some((promote.source_table.as_str(), id.as_str())),
                references: &promote.references,
                source_table: &source_table,
                exists: &exists,
            };
            let promoted: HashSet<String> = items
                .iter()
                .filter(|item| remapper.apply(&mut (*item).clone()).is_ok())
                .filter_map(|item| item.get(id).and_then(remap::id_text))
                .collect();
            if promoted == ids || !own_references {
                ids = promoted;
                break;
            }
            ids = promoted;
        }
        let ids = Arc::new(ids);
        self.known.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_string(), ids.clone());
        Ok(ids)
    }

    /// `sync --limit`: the sample, read once.
    async fn sampled(&self, context: &str) -> Result<Option<&HashMap<String, Vec<Item>>>, SourceError> {
        let Some(sample) = &self.sample else { return Ok(None) };
        self.sampled.get_or_try_init(|| self.take_sample(sample, context)).await.map(Some)
    }

    /// The first `limit` items of each root table (one Scan each, as few pages as that takes),
    /// then every item they reference, transitively, each read by its key.
    async fn take_sample(&self, sample: &Sample, context: &str) -> Result<HashMap<String, Vec<Item>>, SourceError> {
        let mut queue: std::collections::VecDeque<(String, Item)> = std::collections::VecDeque::new();
        for root in &sample.roots {
            let Some(promote) = self.tables.iter().find(|t| t.name == *root).and_then(|t| t.promote.as_ref()) else {
                continue;
            };
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            let mut taken = 0;
            while taken < sample.limit {
                let request = ScanRequest {
                    index: None,
                    attributes: &[],
                    segment: (0, 1),
                    start: start.as_ref(),
                    limit: Some((sample.limit - taken).min(1000) as i32),
                    filter: None,
                };
                let page = self.within(context, self.target.scan(&promote.source_table, request)).await?;
                let page = page.map_err(|e| self.error(context, format!("reading {}: {e}", promote.source_table)))?;
                taken += page.items.len();
                queue.extend(page.items.into_iter().map(|item| (root.clone(), item)));
                start = page.next;
                if start.is_none() {
                    break;
                }
            }
        }
        let mut sampled: HashMap<String, Vec<Item>> = HashMap::new();
        let mut seen: HashSet<(String, String)> = HashSet::new();
        while let Some((name, item)) = queue.pop_front() {
            let Some(promote) = self.tables.iter().find(|t| t.name == name).and_then(|t| t.promote.as_ref()) else {
                continue;
            };
            let id = promote.id.as_ref().and_then(|id| item.get(id)).and_then(remap::id_text);
            if id.is_some_and(|id| !seen.insert((name.clone(), id))) {
                continue;
            }
            for reference in &promote.references {
                for value in remap::referenced_ids(&item, reference) {
                    let Some(text) = remap::id_text(&value) else { continue };
                    if !seen.contains(&(reference.table.clone(), text)) {
                        if let Some(parent) = self.by_id(&reference.table, value, context).await? {
                            queue.push_back((reference.table.clone(), parent));
                        }
                    }
                }
            }
            sampled.entry(name).or_default().push(item);
        }
        Ok(sampled)
    }

    /// The item of mapping `name` whose ID is `id`, read by its key: the source table's key must
    /// be the ID attribute alone.
    async fn by_id(&self, name: &str, id: AttributeValue, context: &str) -> Result<Option<Item>, SourceError> {
        let promote = self.tables.iter().find(|t| t.name == name).and_then(|t| t.promote.as_ref());
        let Some((table, attribute)) = promote.and_then(|p| Some((&p.source_table, p.id.as_ref()?))) else {
            return Ok(None);
        };
        let info = self.within(context, self.target.describe(table)).await?;
        let info = info.map_err(|e| self.error(context, format!("describing {table}: {e}")))?;
        let keys: Vec<&str> = info.iter().flat_map(|i| i.key_schema.iter().map(|(n, _)| n.as_str())).collect();
        if keys != [attribute.as_str()] {
            return Err(self.error(
                context,
                format!(
                    "--limit reads each referenced item by its key, and the key of {table} is ({}), not its id attribute \"{attribute}\" alone; run without --limit",
                    keys.join(", ")
                ),
            ));
        }
        let key: Item = [(attribute.clone(), id)].into();
        let found =
            self.within(context, retry::retrying(&self.policy, || self.target.get_item(table, key.clone()))).await?;
        found.0.map_err(|e| self.error(context, format!("reading a referenced item of {table}: {e}")))
    }

    /// `call`, given up on after `read_timeout_secs`.
    async fn within<T>(&self, context: &str, call: impl std::future::Future<Output = T>) -> Result<T, SourceError> {
        tokio::time::timeout(self.read_timeout, call).await.map_err(|_| self.timeout(context))
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
    /// IDs remapped, and per reference of the mapping the IDs rewritten.
    ids: u64,
    references: Vec<u64>,
}

impl Reading<'_> {
    /// Records a remapped ID; refuses it when another source ID already took its new ID.
    fn taken(&mut self, (old, new): (AttributeValue, AttributeValue)) -> Option<remap::Refusal> {
        let (old_text, new_text) = (remap::id_text(&old)?, remap::id_text(&new)?);
        match self.taken.get(&new_text) {
            Some(first) if *first != old_text => Some(remap::Refusal {
                attribute: self.mapping.promote.as_ref()?.id.clone()?,
                reason: format!(
                    "its new ID {} is also the new ID of source ID {}: IDs of this shape have too few values to \
                     stay apart; lengthen the IDs in the source (source item ID {})",
                    remap::show_id(&new),
                    &first[2..],
                    remap::show_id(&old)
                ),
            }),
            _ => {
                self.taken.insert(new_text, old_text);
                self.ids += 1;
                self.remapped.push((self.mapping.name.clone(), old, new));
                None
            }
        }
    }

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
            Ok(applied) => {
                for (count, more) in self.references.iter_mut().zip(&applied.references) {
                    *count += more;
                }
                applied.ids.and_then(|ids| self.taken(ids))
            }
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
                    // Out of the rest too: the refused value must not reach the item.
                    item.remove(name);
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
                ids: 0,
                references: vec![0; mapping.promote.as_ref().map_or(0, |p| p.references.len())],
            };
            let (pages, queue) = match self.sampled(&context).await? {
                // A sample is in memory already: no Scan.
                Some(sampled) => {
                    let items = sampled.get(&mapping.name).cloned().unwrap_or_default();
                    (Pages::none(), items.into())
                }
                None => (self.scan(query.to_string(), context.clone()), std::collections::VecDeque::new()),
            };
            let state = Some((pages, reading, queue));
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
                                let before = reading.remapped.len();
                                reading
                                    .remapped
                                    .retain(|(_, old, _)| remap::id_text(old).is_none_or(|id| !rejected.contains(&id)));
                                reading.ids -= (before - reading.remapped.len()) as u64;
                                self.finish(&mut reading);
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

    fn promotion(&self) -> Option<Promotion> {
        Some(self.promotion.lock().unwrap_or_else(|p| p.into_inner()).clone())
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

impl Pages {
    /// No pages: the rows come from elsewhere.
    fn none() -> Pages {
        let (_, receiver) = tokio::sync::mpsc::channel(1);
        Pages { receiver, tasks: Vec::new() }
    }
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
                                let e = e.to_string().replace("target.endpoint_url", "source.endpoint_url");
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
