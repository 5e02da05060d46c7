//! A generated Amplify-like environment, deterministic from a seed: Properties, Contacts,
//! Requests, Projects, Quotes and QuoteItems with UUID ids, foreign-key fields, one reference in
//! a nested map (`Quotes.details.contactId`) and one in a list (`Projects.teamContactIds[]`),
//! Amplify's bookkeeping attributes (`createdAt`, `updatedAt`, `_version`, `_lastChangedAt`,
//! `__typename`), and a few references to IDs that no item has.
//!
//! The dataset is built in memory ([`generate`]) and written through the test's own client
//! ([`Dev::write`]), never through ddbsync, so the tests read it as an independent oracle.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, PutRequest, ScalarAttributeType,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;

use crate::harness::Item;

/// The tables, referenced ones first.
pub const TABLES: [&str; 6] = ["Properties", "Contacts", "Requests", "Projects", "Quotes", "QuoteItems"];

/// Each table's references: (path, referenced table), as the mappings file writes them.
pub fn references(table: &str) -> &'static [(&'static str, &'static str)] {
    match table {
        "Requests" => {
            &[("agentContactId", "Contacts"), ("homeownerContactId", "Contacts"), ("addressId", "Properties")]
        }
        "Projects" => &[
            ("agentContactId", "Contacts"),
            ("homeownerContactId", "Contacts"),
            ("addressId", "Properties"),
            ("teamContactIds[]", "Contacts"),
        ],
        "Quotes" => &[("projectId", "Projects"), ("agentContactId", "Contacts"), ("details.contactId", "Contacts")],
        "QuoteItems" => &[("projectId", "Projects"), ("quoteId", "Quotes")],
        _ => &[],
    }
}

/// The mappings file for the dataset: the repository's `envs/mappings/amplify.toml` (which
/// `scripts/demo.sh promote` uses), with `delete_missing` on every table or on none.
pub fn mappings(delete_missing: bool) -> String {
    let text = std::fs::read_to_string(crate::harness::repo().join("envs/mappings/amplify.toml")).unwrap();
    assert_eq!(text.matches("delete_missing = true").count(), TABLES.len());
    text.replace("delete_missing = true", &format!("delete_missing = {delete_missing}"))
}

/// SplitMix64: small, seedable, and the same on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// A version-4 UUID, lowercase, as Amplify's `@model` gives.
    pub fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        let h = format!("{a:016x}{b:016x}");
        format!(
            "{}-{}-4{}-{}{}-{}",
            &h[..8],
            &h[8..12],
            &h[13..16],
            ["8", "9", "a", "b"][(b & 3) as usize],
            &h[17..20],
            &h[20..]
        )
    }
}

/// The generated environment: items per table, and the (table, id) of each item with a reference
/// that no item holds (each such reference is listed once, in [`Dev::dangling`]).
pub struct Dev {
    pub items: BTreeMap<&'static str, Vec<Item>>,
    /// (table, item id, path of the bad reference, the missing id).
    pub dangling: Vec<(&'static str, String, &'static str, String)>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Amplify's bookkeeping attributes.
fn stamp(rng: &mut Rng, typename: &str, item: &mut Item) {
    let day = 1 + rng.below(28);
    let created = format!("2024-03-{day:02}T{:02}:{:02}:00.000Z", rng.below(24), rng.below(60));
    item.insert("createdAt".into(), s(created.clone()));
    item.insert("updatedAt".into(), s(created));
    item.insert("_version".into(), n(1 + rng.below(3)));
    item.insert("_lastChangedAt".into(), n(1_709_251_200_000u64 + rng.next() % 2_000_000_000));
    item.insert("__typename".into(), s(typename));
}

/// `count` items per table (QuoteItems twice as many), with a few dangling references.
pub fn generate(seed: u64, count: usize) -> Dev {
    let mut rng = Rng::new(seed);
    let mut items: BTreeMap<&'static str, Vec<Item>> = BTreeMap::new();
    let mut dangling = Vec::new();
    let mut ids: HashMap<&str, Vec<String>> = HashMap::new();
    for table in TABLES {
        let total = if table == "QuoteItems" { 2 * count } else { count };
        ids.insert(table, (0..total).map(|_| rng.uuid()).collect());
    }
    let pick = |rng: &mut Rng, ids: &HashMap<&str, Vec<String>>, table: &str| {
        let list = &ids[table];
        list[rng.below(list.len())].clone()
    };
    for table in TABLES {
        let mut list = Vec::new();
        for (i, id) in ids[table].iter().enumerate() {
            let mut item: Item = HashMap::new();
            item.insert("id".into(), s(id.clone()));
            match table {
                "Properties" => {
                    item.insert("street".into(), s(format!("{} Elm Street", 1 + rng.below(999))));
                    item.insert("city".into(), s(["Austin", "Denver", "Boise"][rng.below(3)]));
                    item.insert("zip".into(), s(format!("{:05}", rng.below(99_999))));
                }
                "Contacts" => {
                    item.insert("name".into(), s(format!("Contact {i}")));
                    item.insert("email".into(), s(format!("c{i}@example.com")));
                    if i % 3 == 0 {
                        item.insert("phone".into(), s(format!("+1512555{:04}", rng.below(9999))));
                    }
                }
                "Requests" => {
                    item.insert("agentContactId".into(), s(pick(&mut rng, &ids, "Contacts")));
                    item.insert("homeownerContactId".into(), s(pick(&mut rng, &ids, "Contacts")));
                    item.insert("addressId".into(), s(pick(&mut rng, &ids, "Properties")));
                    item.insert("status".into(), s(["NEW", "QUOTED", "CLOSED"][rng.below(3)]));
                }
                "Projects" => {
                    item.insert("agentContactId".into(), s(pick(&mut rng, &ids, "Contacts")));
                    item.insert("homeownerContactId".into(), s(pick(&mut rng, &ids, "Contacts")));
                    item.insert("addressId".into(), s(pick(&mut rng, &ids, "Properties")));
                    let team = (0..rng.below(4)).map(|_| s(pick(&mut rng, &ids, "Contacts"))).collect();
                    item.insert("teamContactIds".into(), AttributeValue::L(team));
                    item.insert("budget".into(), n(1000 + rng.below(90_000)));
                }
                "Quotes" => {
                    item.insert("projectId".into(), s(pick(&mut rng, &ids, "Projects")));
                    item.insert("agentContactId".into(), s(pick(&mut rng, &ids, "Contacts")));
                    let details: Item = [
                        ("contactId".to_string(), s(pick(&mut rng, &ids, "Contacts"))),
                        ("notes".to_string(), s(format!("quote {i}: roof and gutters"))),
                        ("validDays".to_string(), n(30)),
                    ]
                    .into();
                    item.insert("details".into(), AttributeValue::M(details));
                    item.insert("total".into(), n(format!("{}.{:02}", 100 + rng.below(20_000), rng.below(100))));
                }
                "QuoteItems" => {
                    item.insert("projectId".into(), s(pick(&mut rng, &ids, "Projects")));
                    item.insert("quoteId".into(), s(pick(&mut rng, &ids, "Quotes")));
                    item.insert("description".into(), s(format!("line {i}")));
                    item.insert("quantity".into(), n(1 + rng.below(20)));
                }
                _ => unreachable!(),
            }
            stamp(&mut rng, table.trim_end_matches('s'), &mut item);
            list.push(item);
        }
        items.insert(table, list);
    }
    // Dangling references: one per referencing path of some tables, at fixed positions.
    let mut dangle = |table: &'static str, at: usize, path: &'static str| {
        let missing = rng.uuid();
        let item = &mut items.get_mut(table).unwrap()[at];
        let id = match &item["id"] {
            AttributeValue::S(id) => id.clone(),
            _ => unreachable!(),
        };
        match path {
            "teamContactIds[]" => {
                item.insert("teamContactIds".into(), AttributeValue::L(vec![s(missing.clone())]));
            }
            "details.contactId" => {
                let AttributeValue::M(details) = item.get_mut("details").unwrap() else { unreachable!() };
                details.insert("contactId".into(), s(missing.clone()));
            }
            top => {
                item.insert(top.into(), s(missing.clone()));
            }
        }
        dangling.push((table, id, path, missing));
    };
    dangle("Requests", 5, "addressId");
    dangle("Projects", 7, "teamContactIds[]");
    dangle("Quotes", 3, "details.contactId");
    dangle("QuoteItems", 11, "quoteId");
    // Items whose parent is itself rejected: QuoteItems of the quote with a dangling contact.
    let bad_quote = items["Quotes"][3]["id"].clone();
    for at in [20, 21] {
        items.get_mut("QuoteItems").unwrap()[at].insert("quoteId".into(), bad_quote.clone());
    }
    Dev { items, dangling }
}

impl Dev {
    /// Creates each table `<prefix><Table><suffix>` (key `id`, a string) and writes its items.
    pub async fn write(&self, client: &Client, prefix: &str, suffix: &str) {
        for table in TABLES {
            create_table(client, &format!("{prefix}{table}{suffix}")).await;
        }
        for (table, items) in &self.items {
            put_all(client, &format!("{prefix}{table}{suffix}"), items).await;
        }
    }
}

pub async fn create_table(client: &Client, name: &str) {
    create_table_keyed(client, name, "id").await
}

/// Creates table `name` whose partition key is the string attribute `key`, and waits until it is active.
pub async fn create_table_keyed(client: &Client, name: &str, key: &str) {
    create_table_typed(client, name, key, ScalarAttributeType::S).await
}

/// Creates table `name` whose partition key is `key` of type `ty`, and waits until it is active.
pub async fn create_table_typed(client: &Client, name: &str, key: &str, ty: ScalarAttributeType) {
    client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(AttributeDefinition::builder().attribute_name(key).attribute_type(ty).build().unwrap())
        .key_schema(KeySchemaElement::builder().attribute_name(key).key_type(KeyType::Hash).build().unwrap())
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    for _ in 0..200 {
        let out = client.describe_table().table_name(name).send().await.unwrap();
        if out.table.and_then(|t| t.table_status).map(|s| s.as_str() == "ACTIVE").unwrap_or(false) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{name} did not become ACTIVE");
}

pub async fn put_all(client: &Client, table: &str, items: &[Item]) {
    for chunk in items.chunks(25) {
        let mut requests: Vec<WriteRequest> = chunk
            .iter()
            .map(|i| {
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(i.clone())).build().unwrap())
                    .build()
            })
            .collect();
        while !requests.is_empty() {
            let out = client
                .batch_write_item()
                .request_items(table, requests)
                .send()
                .await
                .unwrap_or_else(|e| panic!("write {table}: {e:?}"));
            requests = out.unprocessed_items.and_then(|mut u| u.remove(table)).unwrap_or_default();
        }
    }
}
