//! The writer: groups changed items into BatchWriteItem calls, keeps several in flight, and resends
//! what DynamoDB did not process.
//!
//! Invariants: a batch holds at most 25 items and never the same key twice; every item handed to the
//! writer ends either written or in [`WriteOutcome::failed`] with its key and the reason; write units
//! are summed from what DynamoDB reported, never estimated.

use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::build::Reject;
use crate::hash::Digest;
use crate::item::{self, Item};
use crate::retry::RetryPolicy;
use crate::target::{BatchWriter, TargetError};

/// BatchWriteItem's limit on requests per call.
pub const MAX_BATCH: usize = 25;

/// What writing a stream of items did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WriteOutcome {
    pub written: u64,
    /// Write units DynamoDB reported.
    pub consumed_units: f64,
    /// Calls sent again after throttling, errors or unprocessed items.
    pub retries: u64,
    /// Items that could not be written, with their key and the last error.
    pub failed: Vec<Reject>,
}

impl WriteOutcome {
    fn absorb(&mut self, other: WriteOutcome) {
        self.written += other.written;
        self.consumed_units += other.consumed_units;
        self.retries += other.retries;
        self.failed.extend(other.failed);
    }
}

/// Writes one batch, resending throttled, failed and unprocessed items with backoff.
pub async fn write_with_retry<W: BatchWriter>(
    writer: &W,
    table: &str,
    mut pending: Vec<Item>,
    policy: &RetryPolicy,
    key_names: &[&str],
) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    let mut delays = policy.delays();
    loop {
        let error = match writer.write_batch(table, &pending).await {
            Ok(reply) => {
                outcome.consumed_units += reply.consumed_units;
                outcome.written += (pending.len() - reply.unprocessed.len()) as u64;
                if reply.unprocessed.is_empty() {
                    return outcome;
                }
                pending = reply.unprocessed;
                TargetError::Throttled("UnprocessedItems".into())
            }
            Err(error) => error,
        };
        let delay = if error.is_retryable() { delays.next() } else { None };
        let Some(delay) = delay else {
            let reason = if error.is_retryable() {
                format!("not written after {} attempts: {error}", policy.max_attempts)
            } else {
                error.to_string()
            };
            outcome.failed.extend(
                pending.iter().map(|i| Reject { key: item::describe_key(i, key_names), reason: reason.clone() }),
            );
            return outcome;
        };
        tracing::debug!(table, items = pending.len(), ?delay, %error, "retrying batch");
        outcome.retries += 1;
        tokio::time::sleep(delay).await;
    }
}

/// Settings of one writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub table: String,
    pub key_names: Vec<String>,
    pub max_in_flight: usize,
    pub policy: RetryPolicy,
}

/// Reads items from `rx` until it closes and writes them all; `on_written` hears of each finished batch.
pub async fn write_all<W: BatchWriter + 'static>(
    writer: Arc<W>,
    settings: WriterSettings,
    mut rx: mpsc::Receiver<(Digest, Item)>,
    on_written: impl Fn(u64) + Send,
) -> WriteOutcome {
    let key_names: Vec<&str> = settings.key_names.iter().map(String::as_str).collect();
    let mut outcome = WriteOutcome::default();
    let launch = |items: Vec<Item>| {
        let (writer, table, policy, names) = (writer.clone(), settings.table.clone(), settings.policy, &key_names);
        async move { write_with_retry(&*writer, &table, items, &policy, names).await }
    };
    let mut in_flight = FuturesUnordered::new();
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    let mut keys: Vec<Digest> = Vec::with_capacity(MAX_BATCH);
    let mut closed = false;
    while !closed || !batch.is_empty() || !in_flight.is_empty() {
        let full = batch.len() == MAX_BATCH;
        let ready = full || (closed && !batch.is_empty());
        if ready && in_flight.len() < settings.max_in_flight {
            keys.clear();
            in_flight.push(launch(std::mem::take(&mut batch)));
            continue;
        }
        tokio::select! {
            received = rx.recv(), if !closed && !full => match received {
                Some((key, item)) => {
                    // The diff never hands over one key twice; if it ever did, the batch is cut here
                    // rather than sent and rejected whole.
                    if keys.contains(&key) {
                        keys.clear();
                        in_flight.push(launch(std::mem::take(&mut batch)));
                    }
                    keys.push(key);
                    batch.push(item);
                }
                None => closed = true,
            },
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                on_written(done.written);
                outcome.absorb(done);
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::AttributeValue;
    use crate::target::WriteReply;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A scripted writer: answers each call with the next scripted reply, records every call.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Script>>,
        calls: Mutex<Vec<Vec<Item>>>,
    }

    enum Script {
        Ok,
        LeaveUnprocessed(usize),
        Fail(TargetError),
    }

    impl BatchWriter for Scripted {
        async fn write_batch(&self, _table: &str, items: &[Item]) -> Result<WriteReply, TargetError> {
            self.calls.lock().unwrap().push(items.to_vec());
            let step = self.script.lock().unwrap().pop_front().unwrap_or(Script::Ok);
            match step {
                Script::Ok => Ok(WriteReply { unprocessed: vec![], consumed_units: items.len() as f64 }),
                Script::LeaveUnprocessed(n) => Ok(WriteReply {
                    unprocessed: items[items.len() - n..].to_vec(),
                    consumed_units: (items.len() - n) as f64,
                }),
                Script::Fail(e) => Err(e),
            }
        }
    }

    fn items(n: usize) -> Vec<Item> {
        (0..n).map(|i| Item::from([("id".to_string(), AttributeValue::N(i.to_string()))])).collect()
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) }
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_alone() {
        let w = Scripted { script: Mutex::new([Script::LeaveUnprocessed(3), Script::Ok].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(10), &fast(5), &["id"]).await;
        assert_eq!((out.written, out.consumed_units, out.retries), (10, 10.0, 1));
        let calls = w.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], items(10)[7..].to_vec(), "only the unprocessed items go again");
    }

    #[tokio::test]
    async fn throttling_is_retried_then_succeeds() {
        let throttled = || Script::Fail(TargetError::Throttled("ThrottlingException".into()));
        let w = Scripted { script: Mutex::new([throttled(), throttled(), Script::Ok].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(4), &fast(5), &["id"]).await;
        assert_eq!((out.written, out.retries), (4, 2));
        assert!(out.failed.is_empty());
    }

    #[tokio::test]
    async fn fatal_errors_fail_every_item_with_its_key() {
        let w = Scripted {
            script: Mutex::new([Script::Fail(TargetError::Fatal("ValidationException: bad".into()))].into()),
            ..Default::default()
        };
        let out = write_with_retry(&w, "t", items(2), &fast(5), &["id"]).await;
        assert_eq!(out.written, 0);
        assert_eq!(out.retries, 0, "fatal errors are not retried");
        assert_eq!(
            out.failed,
            vec![
                Reject { key: "id=0".into(), reason: "ValidationException: bad".into() },
                Reject { key: "id=1".into(), reason: "ValidationException: bad".into() }
            ]
        );
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let script = (0..10).map(|_| Script::LeaveUnprocessed(1)).collect();
        let w = Scripted { script: Mutex::new(script), ..Default::default() };
        let out = write_with_retry(&w, "t", items(3), &fast(3), &["id"]).await;
        assert_eq!(w.calls.lock().unwrap().len(), 3);
        assert_eq!(out.written, 2);
        assert_eq!(out.failed.len(), 1);
        assert!(out.failed[0].reason.starts_with("not written after 3 attempts"), "{:?}", out.failed);
    }

    #[tokio::test]
    async fn write_all_batches_by_25_without_repeating_a_key() {
        let w = Arc::new(Scripted::default());
        let (tx, rx) = mpsc::channel(8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], max_in_flight: 3, policy: fast(3) };
        let task = tokio::spawn(write_all(w.clone(), settings, rx, |_| {}));
        for (i, item) in items(60).into_iter().enumerate() {
            // Key 30 arrives twice: the second must start a new batch.
            let key = [(if i == 31 { 30 } else { i }) as u8; 16];
            tx.send((key, item)).await.unwrap();
        }
        drop(tx);
        let out = task.await.unwrap();
        assert_eq!(out.written, 60);
        let calls = w.calls.lock().unwrap();
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        let mut sorted = sizes.clone();
        sorted.sort();
        assert_eq!(sorted, vec![4, 6, 25, 25], "{sizes:?}");
        assert!(calls.iter().all(|c| c.len() <= MAX_BATCH));
    }
}
