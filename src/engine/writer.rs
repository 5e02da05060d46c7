//! The writer: groups changed items into BatchWriteItem calls, keeps several in flight, and resends
//! what DynamoDB did not process.
//!
//! Items reach the writer through a [`Queue`], wait in a shuffle window and each batch is drawn from
//! it at random, so that writes are not issued in the source's (often sorted) key order, which makes
//! rolling hot partitions. The number of calls in flight follows [`Pace`]: throttling halves it,
//! unthrottled calls grow it back, and an optional cap spaces calls out to a number of write units
//! per second.
//!
//! Invariants: what the writer holds (the queue, the window and the batches in flight) is bounded by
//! the queue's byte budget, counted in memory ([`item::memory_size`], and for a call in flight the
//! copies the SDK sends), not in items, so that a table of 300 KB items holds no more than one of
//! 2 KB items (a single item over a quarter of the budget counts as a quarter); a batch holds at
//! most 25 items and never the same key twice; every item handed to the writer ends either written
//! or in [`WriteOutcome::failed`] with its key and the reason; an item DynamoDB refuses fails alone,
//! never its batch; write units are summed from what DynamoDB reported, never estimated. An item
//! given up on after a call whose answer was lost or was a server error (which DynamoDB may have
//! applied) is not said to be unwritten: it is counted in [`WriteOutcome::unknown`], its reason says
//! it may or may not have been written.

use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::engine::pace::Pace;
use crate::pure::hash::Digest;
use crate::pure::item;
use crate::pure::plan::Reject;
use crate::target::retry::RetryPolicy;
use crate::target::{BatchWriter, Request, TargetError};

/// Longest wait of an item in a window the source does not fill: a trickling source is written as
/// it is read (in batches of what has come), not when the window is finally full.
const FLUSH_AFTER: Duration = Duration::from_millis(500);

/// How the reason of an item whose write may or may not have happened begins.
pub const OUTCOME_UNKNOWN: &str = "outcome unknown";

/// BatchWriteItem's limit on requests per call.
pub const MAX_BATCH: usize = 25;

/// A put or a delete on its way to DynamoDB.
#[derive(Debug, Clone)]
pub struct Pending {
    pub key: Digest,
    pub request: Request,
    /// Estimated write units, for the units-per-second cap.
    pub units: u64,
}

/// The way into a writer: [`Queue::send`] waits while the requests the writer holds, from the queue
/// to the calls in flight, use its byte budget. Cloned for each producer; the writer ends when every
/// clone is dropped.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Held>,
    bytes: Arc<Semaphore>,
    /// The most one request counts for: a quarter of the budget, so that a producer waiting for
    /// room always finds the writer holding enough to start a call and free some.
    largest: usize,
}

/// The writer's side of a [`Queue`].
pub struct Inbox {
    rx: mpsc::Receiver<Held>,
    bytes: Arc<Semaphore>,
    budget: usize,
}

/// The writer ended before the request was handed over; its outcome says why.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed;

/// A request and its share of the byte budget, given back when the request is dropped: written,
/// failed, or never sent.
struct Held {
    pending: Pending,
    bytes: usize,
    /// Held for its drop.
    permit: OwnedSemaphorePermit,
}

/// A queue whose writer holds at most `budget` bytes of requests (and, whatever their size, at most
/// `count` waiting in the queue itself).
pub fn queue(budget: usize, count: usize) -> (Queue, Inbox) {
    // The semaphore counts in u32 permits per acquisition, and a quarter of the budget is one request's most.
    let budget = budget.clamp(4, 4 * u32::MAX as usize);
    let (tx, rx) = mpsc::channel(count.max(1));
    let bytes = Arc::new(Semaphore::new(budget));
    (Queue { tx, bytes: bytes.clone(), largest: budget / 4 }, Inbox { rx, bytes, budget })
}

impl Queue {
    /// Hands `pending` to the writer, once the bytes it holds leave room for it.
    pub async fn send(&self, pending: Pending) -> Result<(), Closed> {
        if self.tx.is_closed() {
            return Err(Closed);
        }
        let bytes = footprint(pending.request.item()).clamp(1, self.largest);
        let permit = self.bytes.clone().acquire_many_owned(bytes as u32).await.map_err(|_| Closed)?;
        self.tx.send(Held { pending, bytes, permit }).await.map_err(|_| Closed)
    }

    /// [`Queue::send`] from a blocking task (`spawn_blocking`), as `mpsc::Sender::blocking_send`:
    /// never from an async task.
    pub fn blocking_send(&self, pending: Pending) -> Result<(), Closed> {
        tokio::runtime::Handle::current().block_on(self.send(pending))
    }
}

/// What an item costs the writer, in bytes: itself, and in its call the SDK's copy of it and the
/// request's JSON, each about its DynamoDB size (a 300 KB item in flight holds about 900 KB).
fn footprint(item: &item::Item) -> usize {
    item::memory_size(item) + 2 * item::item_size(item)
}

impl Inbox {
    /// Bytes of the budget in use: requests in the queue, the window and the calls in flight.
    fn used(&self) -> usize {
        self.budget - self.bytes.available_permits()
    }
}

/// What writing a stream of items did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct WriteOutcome {
    pub written: u64,
    /// Write units DynamoDB reported.
    pub consumed_units: f64,
    /// Calls sent again after throttling, errors or unprocessed items.
    pub retries: u64,
    /// Calls answered with throttling or with unprocessed items.
    pub throttled: u64,
    /// Items that could not be written, with their key and the last error.
    pub failed: Vec<Reject>,
    /// Of those, items that may have been written all the same: a call that held them was
    /// answered with a server error or not at all ([`TargetError::may_have_written`]). Their
    /// reason begins with [`OUTCOME_UNKNOWN`].
    pub unknown: u64,
    /// The estimated write units ([`Pending::units`]) of the items not written: what writing
    /// them would have taken.
    pub failed_units: u64,
    /// Their key digests, in the same order (`None` for an item without its key attributes), so
    /// that a caller can tell which of its items were not written.
    #[serde(skip)]
    pub failed_keys: Vec<Option<Digest>>,
    /// Set when a batch got no answer from DynamoDB in all its attempts: the writer sends nothing
    /// more (every item after it is failed with this reason at once), and the run ends with it.
    #[serde(skip)]
    pub silent: Option<String>,
}

impl WriteOutcome {
    fn absorb(&mut self, other: WriteOutcome) {
        self.written += other.written;
        self.consumed_units += other.consumed_units;
        self.retries += other.retries;
        self.throttled += other.throttled;
        self.failed.extend(other.failed);
        self.failed_keys.extend(other.failed_keys);
        self.unknown += other.unknown;
        self.failed_units += other.failed_units;
        if self.silent.is_none() {
            self.silent = other.silent;
        }
    }

    /// Records `requests` as not written, for `reason`.
    fn fail(&mut self, requests: &[Request], key_names: &[&str], reason: &str) {
        for request in requests {
            self.failed.push(reject(request, key_names, reason.to_string()));
            self.failed_keys.push(crate::pure::hash::item_key_digest(request.item(), key_names));
        }
    }
}

/// Writes one batch, resending throttled, failed and unprocessed items with backoff.
///
/// DynamoDB refuses a whole batch for one item it will not store (`ValidationException`), so a
/// refused batch is split in halves, each sent on its own, down to single items: every other item
/// is written and only the bad one fails, with the server's reason. Each half sent counts as a retry.
pub async fn write_with_retry<W: BatchWriter + ?Sized>(
    writer: &W,
    table: &str,
    pending: Vec<Request>,
    policy: &RetryPolicy,
    pace: &Pace,
    key_names: &[&str],
) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    let mut work = vec![pending];
    while let Some(batch) = work.pop() {
        let Some((mut refused, error)) = attempt(writer, table, batch, policy, pace, key_names, &mut outcome).await
        else {
            continue;
        };
        if refused.len() > 1 {
            let second = refused.split_off(refused.len().div_ceil(2));
            outcome.retries += 2;
            work.push(second);
            work.push(refused);
        } else {
            outcome.fail(&refused, key_names, &error.to_string());
        }
    }
    outcome
}

fn reject(request: &Request, key_names: &[&str], reason: String) -> Reject {
    Reject { key: item::describe_key(request.item(), key_names), reason }
}

/// Sends a batch until it is written or fails for good (recorded in `outcome`); returns the
/// requests DynamoDB refused as invalid, with its error, for the caller to split.
async fn attempt<W: BatchWriter + ?Sized>(
    writer: &W,
    table: &str,
    mut pending: Vec<Request>,
    policy: &RetryPolicy,
    pace: &Pace,
    key_names: &[&str],
    outcome: &mut WriteOutcome,
) -> Option<(Vec<Request>, TargetError)> {
    let mut delays = policy.delays();
    // A call that held these requests may have been applied although it failed.
    let mut uncertain = false;
    loop {
        let epoch = pace.epoch();
        let error = match writer.write_batch(table, &pending).await {
            Ok(reply) => {
                outcome.consumed_units += reply.consumed_units;
                outcome.written += (pending.len() - reply.unprocessed.len()) as u64;
                if reply.unprocessed.is_empty() {
                    pace.succeeded();
                    return None;
                }
                pending = reply.unprocessed;
                TargetError::Throttled("UnprocessedItems".into())
            }
            Err(error @ TargetError::Invalid(_)) => return Some((pending, error)),
            Err(error) => error,
        };
        if let TargetError::Throttled(_) = error {
            outcome.throttled += 1;
            pace.throttled(epoch);
        }
        uncertain |= error.may_have_written();
        let delay = if error.is_retryable() { delays.next() } else { None };
        let Some(delay) = delay else {
            let reason = match (uncertain, &error) {
                (true, TargetError::Unanswered(_)) => error.to_string(),
                (true, _) => format!(
                    "{OUTCOME_UNKNOWN}: DynamoDB answered a call that held it with a server error or not at all, \
                     so it may or may not have been written (given up after {} attempts, the last: {error}); the \
                     next run checks",
                    policy.max_attempts
                ),
                (false, _) if error.is_retryable() => {
                    format!("not written after {} attempts: {error}", policy.max_attempts)
                }
                (false, _) => error.to_string(),
            };
            if uncertain {
                outcome.unknown += pending.len() as u64;
            }
            outcome.fail(&pending, key_names, &reason);
            if matches!(&error, TargetError::Transient(m) if m.starts_with("no answer from DynamoDB")) {
                outcome.silent = Some(error.to_string());
            }
            return None;
        };
        tracing::debug!(table, items = pending.len(), ?delay, %error, "retrying batch");
        outcome.retries += 1;
        tokio::time::sleep(delay).await;
    }
}

/// Waits for a batch's turn under the pace and the units cap, unless the batch may no longer be
/// sent (a stopping run): then at once, and within a tenth of a second if that happens while it waits.
async fn wait_turn<W: BatchWriter + ?Sized>(writer: &W, pace: &Pace, units: u64) -> Result<(), TargetError> {
    writer.may_send()?;
    let spend = pace.spend(units);
    tokio::pin!(spend);
    loop {
        tokio::select! {
            () = &mut spend => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(100)) => writer.may_send()?,
        }
    }
}

/// Settings of one writer.
#[derive(Debug, Clone)]
pub struct WriterSettings {
    pub table: String,
    pub key_names: Vec<String>,
    pub policy: RetryPolicy,
    /// Items held back to interleave writes; at least one batch.
    pub shuffle_window: usize,
}

/// Draws up to one batch at random from the window, never two items with the same key.
fn draw(window: &mut Vec<Held>) -> Vec<Held> {
    let mut batch: Vec<Held> = Vec::with_capacity(MAX_BATCH);
    let mut tries = 0;
    while batch.len() < MAX_BATCH && !window.is_empty() && tries < 4 * MAX_BATCH {
        tries += 1;
        let at = fastrand::usize(..window.len());
        if batch.iter().any(|h| h.pending.key == window[at].pending.key) {
            continue; // stays for a later batch
        }
        batch.push(window.swap_remove(at));
    }
    batch
}

/// Reads items from `inbox` until every [`Queue`] is dropped and writes them all; `on_written` hears
/// of each finished batch.
///
/// A batch leaves when the window is full (by count), or when the requests held use most of the byte
/// budget and the window holds a batch's worth (25 items or a quarter of the budget), or when its
/// oldest item has waited [`FLUSH_AFTER`], or when the queue has closed.
pub async fn write_all<W: BatchWriter + ?Sized + 'static>(
    writer: Arc<W>,
    settings: WriterSettings,
    pace: Arc<Pace>,
    mut inbox: Inbox,
    on_written: impl Fn(u64, f64) + Send,
) -> WriteOutcome {
    let key_names: Vec<&str> = settings.key_names.iter().map(String::as_str).collect();
    let window_size = settings.shuffle_window.max(MAX_BATCH);
    let launch = |batch: Vec<Held>| {
        let (writer, table, policy, pace, names) =
            (writer.clone(), settings.table.clone(), settings.policy, pace.clone(), &key_names);
        async move {
            let units = batch.iter().map(|h| h.pending.units).sum();
            let estimates: Vec<(Digest, u64)> = batch.iter().map(|h| (h.pending.key, h.pending.units)).collect();
            // The batch's share of the byte budget is given back when the call is over.
            let (requests, _permits): (Vec<Request>, Vec<OwnedSemaphorePermit>) =
                batch.into_iter().map(|h| (h.pending.request, h.permit)).unzip();
            let mut outcome = match wait_turn(&*writer, &pace, units).await {
                Err(error) => {
                    let mut outcome = WriteOutcome::default();
                    outcome.fail(&requests, names, &error.to_string());
                    outcome
                }
                Ok(()) => write_with_retry(&*writer, &table, requests, &policy, &pace, names).await,
            };
            outcome.failed_units = outcome
                .failed_keys
                .iter()
                .flatten()
                .filter_map(|k| estimates.iter().find(|(key, _)| key == k).map(|(_, u)| u))
                .sum();
            outcome
        }
    };
    let mut outcome = WriteOutcome::default();
    let mut in_flight = FuturesUnordered::new();
    let mut window: Vec<Held> = Vec::with_capacity(window_size);
    let mut window_bytes = 0;
    let mut closed = false;
    // When the window's items started waiting: a window a slow source cannot fill is written
    // after FLUSH_AFTER all the same.
    let mut waiting_since: Option<Instant> = None;
    while !closed || !window.is_empty() || !in_flight.is_empty() {
        let full = window.len() >= window_size;
        let crowded =
            inbox.used() >= inbox.budget / 4 * 3 && (window.len() >= MAX_BATCH || window_bytes >= inbox.budget / 4);
        let due = waiting_since.is_some_and(|t| t.elapsed() >= FLUSH_AFTER);
        // DynamoDB stopped answering: nothing more is sent, and what is held is failed at once (the
        // source keeps being read into the queue, and failed, until it ends, so that no producer waits).
        if let Some(silence) = outcome.silent.clone() {
            let reason = format!("not sent: DynamoDB stopped answering ({silence})");
            outcome.failed_units += window.iter().map(|h| h.pending.units).sum::<u64>();
            let held: Vec<Request> = window.drain(..).map(|h| h.pending.request).collect();
            window_bytes = 0;
            waiting_since = None;
            outcome.fail(&held, &key_names, &reason);
            tokio::select! {
                received = inbox.rx.recv(), if !closed => match received {
                    Some(held) => {
                        outcome.failed_units += held.pending.units;
                        outcome.fail(&[held.pending.request], &key_names, &reason)
                    }
                    None => closed = true,
                },
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    let done: WriteOutcome = done;
                    on_written(done.written, done.consumed_units);
                    outcome.absorb(done);
                }
                else => {}
            }
            continue;
        }
        if (full || crowded || closed || due) && !window.is_empty() && in_flight.len() < pace.allowed() {
            let batch = draw(&mut window);
            window_bytes -= batch.iter().map(|h| h.bytes).sum::<usize>();
            in_flight.push(launch(batch));
            waiting_since = (!window.is_empty()).then(Instant::now);
            continue;
        }
        let flush_at = waiting_since.map_or_else(Instant::now, |t| t + FLUSH_AFTER);
        tokio::select! {
            received = inbox.rx.recv(), if !closed && !full => match received {
                Some(held) => {
                    waiting_since.get_or_insert_with(Instant::now);
                    window_bytes += held.bytes;
                    window.push(held);
                }
                None => closed = true,
            },
            _ = tokio::time::sleep_until(flush_at), if !due && waiting_since.is_some() => {}
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                on_written(done.written, done.consumed_units);
                outcome.absorb(done);
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::{AttributeValue, Item};
    use crate::target::WriteReply;
    use std::collections::VecDeque;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A scripted writer: answers each call with the next scripted reply, records every call.
    #[derive(Default)]
    struct Scripted {
        script: Mutex<VecDeque<Script>>,
        calls: Mutex<Vec<Vec<Request>>>,
        /// A call holding the item with this id is refused as invalid, as DynamoDB refuses a batch.
        poison: Option<usize>,
    }

    enum Script {
        Ok,
        LeaveUnprocessed(usize),
        Fail(TargetError),
    }

    impl BatchWriter for Scripted {
        async fn write_batch(&self, _table: &str, items: &[Request]) -> Result<WriteReply, TargetError> {
            self.calls.lock().unwrap().push(items.to_vec());
            if items.iter().any(|r| Some(id(r)) == self.poison) {
                return Err(TargetError::Invalid("ValidationException: Item size has exceeded the maximum".into()));
            }
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

    fn items(n: usize) -> Vec<Request> {
        (0..n).map(|i| Request::Put(Item::from([("id".to_string(), AttributeValue::N(i.to_string()))]))).collect()
    }

    fn id(request: &Request) -> usize {
        request.item()["id"].as_n().unwrap().parse().unwrap()
    }

    fn pace() -> Pace {
        Pace::new(4, None)
    }

    fn fast(max_attempts: u32) -> RetryPolicy {
        RetryPolicy { max_attempts, min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2) }
    }

    #[tokio::test]
    async fn unprocessed_items_are_resent_alone() {
        let w = Scripted { script: Mutex::new([Script::LeaveUnprocessed(3), Script::Ok].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(10), &fast(5), &pace(), &["id"]).await;
        assert_eq!((out.written, out.consumed_units, out.retries), (10, 10.0, 1));
        let calls = w.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1], items(10)[7..].to_vec(), "only the unprocessed items go again");
    }

    #[tokio::test]
    async fn throttling_is_retried_then_succeeds() {
        let throttled = || Script::Fail(TargetError::Throttled("ThrottlingException".into()));
        let w = Scripted { script: Mutex::new([throttled(), throttled(), Script::Ok].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(4), &fast(5), &pace(), &["id"]).await;
        assert_eq!((out.written, out.retries), (4, 2));
        assert!(out.failed.is_empty());
    }

    #[tokio::test]
    async fn fatal_errors_fail_every_item_with_its_key() {
        let w = Scripted {
            script: Mutex::new([Script::Fail(TargetError::Fatal("ResourceNotFoundException: bad".into()))].into()),
            ..Default::default()
        };
        let out = write_with_retry(&w, "t", items(2), &fast(5), &pace(), &["id"]).await;
        assert_eq!(out.written, 0);
        assert_eq!(out.retries, 0, "fatal errors are not retried");
        assert_eq!(
            out.failed,
            vec![
                Reject { key: "id=0".into(), reason: "ResourceNotFoundException: bad".into() },
                Reject { key: "id=1".into(), reason: "ResourceNotFoundException: bad".into() }
            ]
        );
    }

    #[tokio::test]
    async fn a_refused_batch_is_split_until_the_bad_item_is_alone() {
        let w = Scripted { poison: Some(13), ..Default::default() };
        let out = write_with_retry(&w, "t", items(25), &fast(5), &pace(), &["id"]).await;
        assert_eq!((out.written, out.consumed_units), (24, 24.0), "every other item written, units as reported");
        assert_eq!(
            out.failed,
            vec![Reject {
                key: "id=13".into(),
                reason: "ValidationException: Item size has exceeded the maximum".into()
            }]
        );
        let calls = w.calls.lock().unwrap();
        let refused: Vec<usize> = calls.iter().filter(|c| c.iter().any(|r| id(r) == 13)).map(Vec::len).collect();
        // Halves 0..13 and 13..25, then 13..19, 13..16, 13..15, 13: each refused call is split.
        assert_eq!(refused, [25, 12, 6, 3, 2, 1]);
        assert_eq!(out.retries, 10, "each half sent counts as a retry");
        assert_eq!(out.throttled, 0);
        let mut written: Vec<usize> =
            calls.iter().filter(|c| !c.iter().any(|r| id(r) == 13)).flatten().map(id).collect();
        written.sort();
        assert_eq!(written, (0..25).filter(|&i| i != 13).collect::<Vec<_>>(), "each good item sent once");
    }

    #[tokio::test]
    async fn a_refused_single_item_fails_at_once_and_halves_still_retry_throttling() {
        let w = Scripted { poison: Some(0), ..Default::default() };
        let out = write_with_retry(&w, "t", items(1), &fast(5), &pace(), &["id"]).await;
        assert_eq!((out.written, out.failed.len(), out.retries), (0, 1, 0));
        assert_eq!(w.calls.lock().unwrap().len(), 1);

        // The half without the bad item is throttled once, then written.
        let throttled = Script::Fail(TargetError::Throttled("ThrottlingException".into()));
        let w = Scripted { poison: Some(3), script: Mutex::new([throttled].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(4), &fast(5), &pace(), &["id"]).await;
        assert_eq!((out.written, out.failed.len(), out.throttled), (3, 1, 1));
        assert_eq!(out.failed[0].key, "id=3");
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let script = (0..10).map(|_| Script::LeaveUnprocessed(1)).collect();
        let w = Scripted { script: Mutex::new(script), ..Default::default() };
        let out = write_with_retry(&w, "t", items(3), &fast(3), &pace(), &["id"]).await;
        assert_eq!(w.calls.lock().unwrap().len(), 3);
        assert_eq!(out.written, 2);
        assert_eq!(out.failed.len(), 1);
        assert!(out.failed[0].reason.starts_with("not written after 3 attempts"), "{:?}", out.failed);
        assert_eq!(out.unknown, 0, "an item only ever throttled was not written");
    }

    #[tokio::test]
    async fn an_item_given_up_on_after_a_server_error_may_have_been_written() {
        // A 500 (DynamoDB may have applied the call), then throttling until the last attempt.
        let server = Script::Fail(TargetError::Transient("InternalServerError: try again".into()));
        let throttled = || Script::Fail(TargetError::Throttled("ThrottlingException".into()));
        let w = Scripted { script: Mutex::new([server, throttled(), throttled()].into()), ..Default::default() };
        let out = write_with_retry(&w, "t", items(3), &fast(3), &pace(), &["id"]).await;
        assert_eq!((out.written, out.failed.len(), out.unknown), (0, 3, 3));
        let reason = &out.failed[0].reason;
        assert!(reason.starts_with("outcome unknown: "), "{reason}");
        assert!(reason.contains("may or may not have been written"), "{reason}");
        assert!(reason.contains("the last: throttled by DynamoDB (ThrottlingException)"), "{reason}");
    }

    #[tokio::test]
    async fn write_all_sums_the_estimated_units_of_the_items_not_written() {
        let w = Arc::new(Scripted { poison: Some(2), ..Default::default() });
        let (tx, rx) = queue(1 << 30, 8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 100 };
        let task = tokio::spawn(write_all(w, settings, Arc::new(Pace::new(3, None)), rx, |_, _| {}));
        for (i, item) in items(5).into_iter().enumerate() {
            let key = crate::pure::hash::item_key_digest(item.item(), &["id"]).unwrap();
            tx.send(Pending { key, request: item, units: 10 + i as u64 }).await.unwrap();
        }
        drop(tx);
        let out = task.await.unwrap();
        assert_eq!((out.written, out.failed.len(), out.failed_units), (4, 1, 12));
    }

    #[tokio::test]
    async fn a_dynamodb_that_stops_answering_ends_the_writer_not_each_batch_in_turn() {
        let silence = || Script::Fail(TargetError::Transient("no answer from DynamoDB in time: timed out".into()));
        let w = Arc::new(Scripted { script: Mutex::new((0..1000).map(|_| silence()).collect()), ..Default::default() });
        let (tx, rx) = queue(1 << 30, 8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 100 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(3, None)), rx, |_, _| {}));
        // A queue of 8: the producer would wait for ever if the writer stopped taking items.
        for item in items(300) {
            let key = crate::pure::hash::item_key_digest(item.item(), &["id"]).unwrap();
            tx.send(Pending { key, request: item, units: 1 }).await.unwrap();
        }
        drop(tx);
        let out = tokio::time::timeout(Duration::from_secs(10), task).await.expect("the writer ends").unwrap();
        assert_eq!((out.written, out.failed.len()), (0, 300), "every item failed, none lost");
        assert!(out.silent.as_deref().unwrap().starts_with("no answer from DynamoDB"));
        let calls = w.calls.lock().unwrap().len();
        assert!(calls <= 9, "at most the batches in flight, 3 attempts each, then nothing more: {calls} calls");
        assert!(out.failed.iter().any(|r| r.reason.starts_with("not sent: DynamoDB stopped answering")));
    }

    #[tokio::test]
    async fn write_all_batches_by_25_without_repeating_a_key() {
        let w = Arc::new(Scripted::default());
        let (tx, rx) = queue(1 << 30, 8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 100 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(3, None)), rx, |_, _| {}));
        for (i, item) in items(300).into_iter().enumerate() {
            // Keys repeat every 150 items: two items with one key may share the window.
            tx.send(Pending { key: [(i % 150) as u8; 16], request: item, units: 1 }).await.unwrap();
        }
        drop(tx);
        let out = task.await.unwrap();
        assert_eq!(out.written, 300);
        let calls = w.calls.lock().unwrap();
        assert!(calls.iter().all(|c| c.len() <= MAX_BATCH));
        for call in calls.iter() {
            let ids: Vec<usize> = call.iter().map(|r| id(r) % 150).collect();
            let mut unique = ids.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), ids.len(), "a key twice in one batch: {ids:?}");
        }
        let mut all: Vec<usize> = calls.iter().flatten().map(id).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 300, "every item written exactly once");
    }

    #[tokio::test]
    async fn writes_are_not_issued_in_source_order() {
        let w = Arc::new(Scripted::default());
        let (tx, rx) = queue(1 << 30, 8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 200 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(1, None)), rx, |_, _| {}));
        for (i, item) in items(400).into_iter().enumerate() {
            tx.send(Pending { key: (i as u128).to_be_bytes(), request: item, units: 1 }).await.unwrap();
        }
        drop(tx);
        task.await.unwrap();
        let first: Vec<usize> = w.calls.lock().unwrap()[0].iter().map(id).collect();
        let spread = first.iter().max().unwrap() - first.iter().min().unwrap();
        assert!(spread > 50, "the first batch is drawn from the whole window, not the first 25 rows: {first:?}");
    }

    #[tokio::test]
    async fn a_window_the_source_does_not_fill_is_written_after_a_moment() {
        let w = Arc::new(Scripted::default());
        let (tx, rx) = queue(1 << 30, 8);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 1000 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(3, None)), rx, |_, _| {}));
        for (i, item) in items(3).into_iter().enumerate() {
            tx.send(Pending { key: [i as u8; 16], request: item, units: 1 }).await.unwrap();
        }
        tokio::time::sleep(FLUSH_AFTER * 2).await;
        assert_eq!(w.calls.lock().unwrap().iter().flatten().count(), 3, "written while the source is still open");
        drop(tx);
        assert_eq!(task.await.unwrap().written, 3);
    }

    /// A writer whose calls wait until the gate opens, counting the items it was handed.
    #[derive(Default)]
    struct Gated {
        open: tokio::sync::Notify,
        items: std::sync::atomic::AtomicUsize,
    }

    impl BatchWriter for Gated {
        async fn write_batch(&self, _: &str, requests: &[Request]) -> Result<WriteReply, TargetError> {
            self.items.fetch_add(requests.len(), std::sync::atomic::Ordering::SeqCst);
            self.open.notified().await;
            Ok(WriteReply { unprocessed: vec![], consumed_units: requests.len() as f64 })
        }
    }

    fn sized(i: usize, bytes: usize) -> Pending {
        let item = Item::from([
            ("id".to_string(), AttributeValue::N(i.to_string())),
            ("body".into(), AttributeValue::S("x".repeat(bytes))),
        ]);
        Pending { key: (i as u128).to_be_bytes(), request: Request::Put(item), units: 1 }
    }

    /// How many items of `bytes` a producer hands over to a writer whose calls never end, under a
    /// budget of `budget` bytes.
    async fn held(bytes: usize, budget: usize) -> usize {
        let w = Arc::new(Gated::default());
        let (tx, rx) = queue(budget, 1024);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 1000 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(8, None)), rx, |_, _| {}));
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = sent.clone();
        let producer = tokio::spawn(async move {
            for i in 0..5000 {
                if tx.send(sized(i, bytes)).await.is_err() {
                    return;
                }
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // Long enough for a window that is not full to be written (FLUSH_AFTER).
        tokio::time::sleep(FLUSH_AFTER * 3).await;
        let handed = sent.load(std::sync::atomic::Ordering::SeqCst);
        producer.abort();
        task.abort();
        handed
    }

    #[tokio::test]
    async fn what_the_writer_holds_is_bounded_by_bytes_not_items() {
        const BUDGET: usize = 8 << 20;
        // 300 KB items: 9 fit in 8 MB (each counts itself and, in its call, the SDK's copy and the
        // JSON), whatever the window's and the queue's counts.
        let (large, per) = (held(300_000, BUDGET).await, footprint(sized(0, 300_000).request.item()));
        assert!((850_000..950_000).contains(&per), "{per}");
        assert_eq!(large, BUDGET / per, "items of 300 KB held under an 8 MB budget");
        // 2 KB items: as many as the same bytes hold, more than the window's count.
        let (small, per) = (held(2_000, BUDGET).await, footprint(sized(0, 2_000).request.item()));
        // (Longer ids, longer numbers: a few items fewer than the first one's size says.)
        assert!((BUDGET / per - 8..=BUDGET / per).contains(&small), "{small} items of 2 KB held under an 8 MB budget");
        assert!(small > 1000, "{small}");
        // Far under the budget, a large item still goes through (alone).
        assert!(held(300_000, 1 << 20).await >= 1);
    }

    #[tokio::test]
    async fn large_items_under_a_full_budget_are_written_without_waiting_for_the_window() {
        let w = Arc::new(Scripted::default());
        // 4 MB: about 13 items of 300 KB; the window (1,000 items) never fills by count.
        let (tx, rx) = queue(4 << 20, 1024);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 1000 };
        let task = tokio::spawn(write_all(w.clone(), settings, Arc::new(Pace::new(4, None)), rx, |_, _| {}));
        let start = std::time::Instant::now();
        for i in 0..150 {
            tx.send(sized(i, 300_000)).await.unwrap();
        }
        let took = start.elapsed();
        drop(tx);
        assert_eq!(task.await.unwrap().written, 150);
        // Waiting FLUSH_AFTER for each window would take more than 5 s.
        assert!(took < FLUSH_AFTER * 4, "150 items handed over in {took:?}");
    }

    /// A writer that may send until it is told to stop (a stopping run).
    #[derive(Default)]
    struct Stoppable(std::sync::atomic::AtomicBool);

    impl BatchWriter for Stoppable {
        fn may_send(&self) -> Result<(), TargetError> {
            match self.0.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err(TargetError::Fatal("stopped".into())),
                false => Ok(()),
            }
        }

        async fn write_batch(&self, _: &str, requests: &[Request]) -> Result<WriteReply, TargetError> {
            self.may_send()?;
            Ok(WriteReply { unprocessed: vec![], consumed_units: requests.len() as f64 })
        }
    }

    #[tokio::test]
    async fn a_stop_while_batches_wait_for_the_units_cap_ends_the_wait() {
        let (tx, rx) = queue(1 << 30, 1000);
        let settings =
            WriterSettings { table: "t".into(), key_names: vec!["id".into()], policy: fast(3), shuffle_window: 50 };
        // One unit a second: the batches would wait for minutes.
        let cap = Arc::new(crate::engine::pace::Cap::new(std::num::NonZeroU32::new(1).unwrap()));
        let writer = Arc::new(Stoppable::default());
        let task = tokio::spawn(write_all(writer.clone(), settings, Arc::new(Pace::new(2, Some(cap))), rx, |_, _| {}));
        for (i, item) in items(200).into_iter().enumerate() {
            tx.send(Pending { key: (i as u128).to_be_bytes(), request: item, units: 1 }).await.unwrap();
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(300)).await;
        writer.0.store(true, std::sync::atomic::Ordering::SeqCst);
        let out = tokio::time::timeout(Duration::from_secs(2), task).await.expect("the wait ended").unwrap();
        assert_eq!(out.written + out.failed.len() as u64, 200);
        assert!(out.failed.len() >= 150, "{}", out.failed.len());
        assert!(out.failed.iter().all(|r| r.reason == "stopped"));
    }

    #[tokio::test]
    async fn throttling_lowers_the_calls_in_flight() {
        let throttled = || Script::Fail(TargetError::Throttled("ThrottlingException".into()));
        let w =
            Scripted { script: Mutex::new([throttled(), Script::LeaveUnprocessed(1)].into()), ..Default::default() };
        let pace = Pace::new(8, None);
        let out = write_with_retry(&w, "t", items(5), &fast(5), &pace, &["id"]).await;
        assert_eq!((out.written, out.throttled, out.retries), (5, 2, 2));
        assert_eq!(pace.allowed(), 2, "two throttles in two epochs: 8 → 4 → 2, then one success adds half a call");
    }
}
