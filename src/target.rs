//! The seam to DynamoDB, shaped like ddbsync's operations rather than like the SDK: write a batch and
//! learn what was not processed. Errors are typed apart: throttled, transient (worth retrying) and
//! fatal. The SDK implementation is in [`crate::dynamo`]; the retry loop above this seam is tested
//! without a server.

use std::future::Future;

use crate::item::Item;

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

/// Writes batches of at most 25 requests, never the same key twice in one batch.
pub trait BatchWriter: Send + Sync {
    /// Whether a batch may be sent now at all; asked before a batch waits for its turn (the pace,
    /// the units cap), so that a stopping run does not wait to refuse it.
    fn may_send(&self) -> Result<(), TargetError> {
        Ok(())
    }

    fn write_batch(
        &self,
        table: &str,
        requests: &[Request],
    ) -> impl Future<Output = Result<WriteReply, TargetError>> + Send;
}
