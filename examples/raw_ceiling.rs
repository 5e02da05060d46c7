//! The DynamoDB-compatible server's raw ceilings, measured the simplest way possible so that
//! ddbsync's own figures can be read against them on a noisy machine: a parallel Scan returning the
//! same attributes ddbsync's diff reads (keys and hash), and a minimal concurrent BatchWriteItem
//! writer copying the same items into a fresh table (no retries beyond resending unprocessed items
//! at once). The writer runs twice, into a fresh table each time: plain, and asking for
//! `ReturnConsumedCapacity=INDEXES` as ddbsync does (it reports the units DynamoDB billed, and
//! those of each index), which costs some servers a good share of their write throughput, so that
//! ddbsync is compared like with like.
//! Used by `scripts/bench.sh`; prints one JSON line.
//!
//! usage: raw_ceiling ENDPOINT TABLE[,TABLE…] CONCURRENCY SEGMENTS

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::types::{
    AttributeValue, BillingMode, PutRequest, ReturnConsumedCapacity, TableStatus, WriteRequest,
};
use aws_sdk_dynamodb::Client;

type Item = HashMap<String, AttributeValue>;

async fn scan(client: &Client, table: &str, segments: i32, projection: Option<&[String]>) -> Vec<Item> {
    let tasks: Vec<_> = (0..segments)
        .map(|segment| {
            let (client, table, projection) = (client.clone(), table.to_string(), projection.map(|p| p.to_vec()));
            tokio::spawn(async move {
                let mut items = Vec::new();
                let mut start = None;
                loop {
                    let mut req = client.scan().table_name(&table).segment(segment).total_segments(segments);
                    if let Some(names) = &projection {
                        let holders: Vec<String> = (0..names.len()).map(|i| format!("#a{i}")).collect();
                        req = req.projection_expression(holders.join(","));
                        for (h, n) in holders.iter().zip(names) {
                            req = req.expression_attribute_names(h, n);
                        }
                    }
                    let out = req.set_exclusive_start_key(start).send().await.expect("scan");
                    items.extend(out.items.unwrap_or_default());
                    start = out.last_evaluated_key.filter(|k| !k.is_empty());
                    if start.is_none() {
                        return items;
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

async fn write(client: &Client, table: &str, items: Vec<Item>, concurrency: usize, capacity: bool) {
    let queue = Arc::new(Mutex::new(items));
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, table, queue) = (client.clone(), table.to_string(), queue.clone());
            tokio::spawn(async move {
                loop {
                    let batch: Vec<Item> = {
                        let mut q = queue.lock().unwrap();
                        let n = q.len().min(25);
                        let at = q.len() - n;
                        q.split_off(at)
                    };
                    if batch.is_empty() {
                        return;
                    }
                    let mut requests: Vec<WriteRequest> = batch
                        .into_iter()
                        .map(|i| {
                            WriteRequest::builder()
                                .put_request(PutRequest::builder().set_item(Some(i)).build().unwrap())
                                .build()
                        })
                        .collect();
                    while !requests.is_empty() {
                        let mut call = client.batch_write_item().request_items(&table, requests);
                        if capacity {
                            call = call.return_consumed_capacity(ReturnConsumedCapacity::Indexes);
                        }
                        let out = call.send().await.expect("write");
                        requests = out.unprocessed_items.unwrap_or_default().into_values().flatten().collect();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// Deletes `table` if it exists and waits until it is gone (a table being deleted cannot be created again).
async fn drop_table(client: &Client, table: &str) {
    let _ = client.delete_table().table_name(table).send().await;
    while client.describe_table().table_name(table).send().await.is_ok() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, tables, concurrency, segments] = &args[..] else {
        panic!("usage: raw_ceiling ENDPOINT TABLE[,TABLE…] CONCURRENCY SEGMENTS")
    };
    let (concurrency, segments): (usize, i32) = (concurrency.parse().unwrap(), segments.parse().unwrap());
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new("bench", "bench", None, None, "bench"))
        .build();
    let client = Client::from_conf(conf);
    let (mut scanned, mut scan_secs, mut written, mut write_secs, mut write_rcc_secs) =
        (0usize, 0f64, 0usize, 0f64, 0f64);
    for table in tables.split(',') {
        let desc = client.describe_table().table_name(table).send().await.expect("describe").table.unwrap();
        let mut projection: Vec<String> = desc.key_schema().iter().map(|k| k.attribute_name().to_string()).collect();
        projection.push("_ddbsync_hash".into());

        let start = Instant::now();
        scanned += scan(&client, table, segments, Some(&projection)).await.len();
        scan_secs += start.elapsed().as_secs_f64();

        let items = scan(&client, table, segments, None).await;
        let copy = format!("{table}-rawcopy");
        for capacity in [false, true] {
            drop_table(&client, &copy).await;
            client
                .create_table()
                .table_name(&copy)
                .billing_mode(BillingMode::PayPerRequest)
                .set_key_schema(Some(desc.key_schema().to_vec()))
                .set_attribute_definitions(Some(desc.attribute_definitions().to_vec()))
                .send()
                .await
                .expect("create copy");
            while client.describe_table().table_name(&copy).send().await.unwrap().table.unwrap().table_status()
                != Some(&TableStatus::Active)
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let start = Instant::now();
            write(&client, &copy, items.clone(), concurrency, capacity).await;
            let secs = start.elapsed().as_secs_f64();
            if capacity {
                write_rcc_secs += secs;
            } else {
                (written, write_secs) = (written + items.len(), write_secs + secs);
            }
            drop_table(&client, &copy).await;
        }
    }
    println!(
        r#"{{"scan_items": {scanned}, "scan_items_per_s": {:.0}, "write_items": {written}, "write_items_per_s": {:.0}, "write_capacity_items_per_s": {:.0}}}"#,
        scanned as f64 / scan_secs,
        written as f64 / write_secs,
        written as f64 / write_rcc_secs
    );
}
