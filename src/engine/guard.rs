//! The last check before a write leaves: the run still holds its lease ([`Fence`]) and nobody asked
//! it to stop ([`Stop`]). Wraps the target's batch writer so that every BatchWriteItem call, first
//! attempt or retry, passes both, and a call still in flight is bounded by them.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::engine::lock::{self, Fence};
use crate::engine::pace::{Cap, Pace};
use crate::engine::stop::{Stop, DRAIN};
use crate::engine::writer::{self, Queue, WriteOutcome, WriterSettings, MAX_BATCH};
use crate::profile::SyncSettings;
use crate::target::retry::RetryPolicy;
use crate::target::{BatchWriter, Request, Target, TargetError, WriteReply};

/// Bytes of memory a writer may hold, from the diff (or a restore's reader) to the calls in flight:
/// enough to keep every call in flight busy and a window to shuffle, few enough that memory stays
/// flat whatever the source's size and whatever its items' size (see BENCHMARKS.md).
pub const WRITE_BYTES: usize = 16 << 20;

/// Requests waiting between the diff and a writer, at most, however small.
pub const WRITE_QUEUE: usize = 1024;

/// Items a writer holds back to interleave writes (about 40 batches), as far as [`WRITE_BYTES`]
/// allows: rows that arrive in key order would otherwise write one partition at a time.
pub const SHUFFLE_WINDOW: usize = 40 * MAX_BATCH;

/// A writer task for `table`, as every writing run starts one: the profile's attempts and calls in
/// flight, the run's units cap (`cap`), and its batches guarded by `fence` and `stop`. Requests go
/// in through the queue; `on_written` hears of each batch written.
pub fn spawn_writer(
    target: Arc<dyn Target>,
    (fence, stop): (&Fence, &Stop),
    (settings, cap): (&SyncSettings, Option<Arc<Cap>>),
    (table, key_names): (&str, Vec<String>),
    on_written: impl Fn(u64, f64) + Send + 'static,
) -> (Queue, JoinHandle<WriteOutcome>) {
    let (tx, rx) = writer::queue(WRITE_BYTES, WRITE_QUEUE);
    let writer_settings = WriterSettings {
        table: table.to_string(),
        key_names,
        policy: RetryPolicy::new(settings.max_attempts),
        shuffle_window: SHUFFLE_WINDOW,
    };
    let pace = Arc::new(Pace::new(settings.max_in_flight, cap));
    let target = Arc::new(Guarded::new(target, fence.clone(), stop.clone()));
    // In the run's span: the writer's events (its retries) carry the run id.
    let writing = writer::write_all(target, writer_settings, pace, rx, on_written);
    (tx, tokio::spawn(tracing::Instrument::instrument(writing, tracing::Span::current())))
}

/// Why a batch was not sent because the run was stopping: the writer reports its items as not
/// written with this reason, and the sync counts them apart from failures.
pub const NOT_SENT: &str = "not written: the run was stopped before this batch was sent";

/// Polls a call only while the fence is open: each step of it is taken after checking the clock, so
/// a run resumed after a pause past its lease (SIGSTOP, a frozen machine) takes no further step of a
/// call it had begun (a request not yet handed to the network is then never sent; the timer that
/// would end the wait may not have fired yet when the task wakes).
async fn while_open<T>(fence: &Fence, call: impl Future<Output = Result<T, TargetError>>) -> Result<T, TargetError> {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| match fence.check() {
        Err(lost) => std::task::Poll::Ready(Err(TargetError::Unanswered(format!(
            "outcome unknown: {lost}; this batch may or may not have been written, and the next run checks"
        )))),
        Ok(()) => call.as_mut().poll(cx),
    })
    .await
}

/// A batch writer that writes only while the fence is open and no stop was asked for (a writer
/// that only rehearses is not held back by a stop: it sends nothing).
pub struct Guarded<W: ?Sized> {
    inner: Arc<W>,
    fence: Fence,
    stop: Stop,
}

impl<W: ?Sized> Guarded<W> {
    pub fn new(inner: Arc<W>, fence: Fence, stop: Stop) -> Guarded<W> {
        Guarded { inner, fence, stop }
    }
}

impl<W: BatchWriter + ?Sized> BatchWriter for Guarded<W> {
    fn may_send(&self) -> Result<(), TargetError> {
        if let Some(signal) = self.stop.requested().filter(|_| !self.inner.rehearses()) {
            return Err(TargetError::Fatal(format!("{NOT_SENT} ({signal})")));
        }
        self.fence.check().map_err(|lost| TargetError::Fatal(lost.to_string()))?;
        self.inner.may_send()
    }

    async fn write_batch(&self, table: &str, requests: &[Request]) -> Result<WriteReply, TargetError> {
        self.may_send()?;
        let limit = self.fence.remaining().unwrap_or_default();
        // A call may not outlive the lease, nor the drain after a stop.
        let reply = tokio::select! {
            reply = tokio::time::timeout(limit, while_open(&self.fence, self.inner.write_batch(table, requests))) => match reply {
                Ok(reply) => reply,
                Err(_) => Err(TargetError::Unanswered(self.fence.check().err().map_or_else(
                    || {
                        "outcome unknown: DynamoDB had not answered when the run lock's lease ran out, so this \
                         batch may or may not have been written; the next run checks"
                            .to_string()
                    },
                    |lost| lost.to_string(),
                ))),
            },
            signal = self.stop.expired(DRAIN) => Err(TargetError::Unanswered(format!(
                "outcome unknown: abandoned {} s after {signal}: DynamoDB had not answered, so this batch may or may \
                 not have been written; the next run checks",
                DRAIN.as_secs()
            ))),
        };
        if reply.is_ok() {
            lock::beat();
        }
        reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pure::item::Item;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl BatchWriter for Counting {
        async fn write_batch(&self, _: &str, _: &[Request]) -> Result<WriteReply, TargetError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(WriteReply::default())
        }
    }

    #[tokio::test]
    async fn an_open_fence_and_no_stop_let_the_batch_through() {
        let inner = Arc::new(Counting::default());
        let guarded = Guarded::new(inner.clone(), Fence::open(), Stop::never());
        guarded.write_batch("t", &[Request::Put(Item::new())]).await.unwrap();
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    }
}
