//! A recording, fault-injecting HTTP proxy between ddbsync and the DynamoDB-compatible server.
//!
//! It keeps each operation's name and response body, so that tests can add up what the server itself
//! reported (consumed capacity) and compare it with ddbsync's report. With [`Faults`] set, a chosen
//! fraction of the data-plane calls (BatchWriteItem and Scan) fail the way real DynamoDB fails under
//! load and no local server does: throttling errors, part of a batch returned as `UnprocessedItems`,
//! a 500, or a connection dropped before or after the server applied the request. Choices come from
//! a seeded generator, so a failing run can be replayed. With a refusal marker set, every
//! BatchWriteItem call whose body holds the marker is refused with a `ValidationException`, as
//! DynamoDB refuses a whole call for one item it will not store. With a "written, then failed"
//! marker set, every BatchWriteItem call whose body holds it reaches the server, which applies it,
//! and is then answered with a 500: a write whose outcome the client cannot know. With a lagging
//! index set, reads of ddbsync's hash index are answered from entries the test read earlier, as
//! an eventually consistent global index answers before the latest writes have reached it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One exchange: the `X-Amz-Target` operation (`BatchWriteItem`…), the request as the server got
/// it, and the response body.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: String,
    pub request: serde_json::Value,
    pub response: serde_json::Value,
}

/// Which calls fail, and how.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Fraction of BatchWriteItem and Scan calls that get a fault.
    pub fraction: f64,
    pub seed: u64,
}

/// The faults the proxy can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    ProvisionedThroughputExceeded,
    Throttling,
    Unprocessed,
    ServerError,
    DropBefore,
    DropAfter,
    /// The caller's policy does not allow the call.
    AccessDenied,
}

const FAULTS: [Fault; 6] = [
    Fault::ProvisionedThroughputExceeded,
    Fault::Throttling,
    Fault::Unprocessed,
    Fault::ServerError,
    Fault::DropBefore,
    Fault::DropAfter,
];

#[derive(Default)]
struct State {
    log: Vec<Exchange>,
    faults: Option<Faults>,
    rng: u64,
    injected: Vec<Fault>,
    /// Faults for the next calls of an operation, whatever `faults` says: (operation, fault).
    once: Vec<(String, Fault)>,
    /// While set, no request gets an answer: a DynamoDB that stops answering.
    stalled: bool,
    /// While set, no call of this operation gets an answer (the others do).
    stalled_operation: Option<String>,
    /// An operation stalled (as `stalled_operation`) once this many more of its calls have passed.
    stall_after: Option<(String, usize)>,
    /// BatchWriteItem calls holding this text are refused as invalid.
    refuse: Option<String>,
    /// How many calls were refused for it.
    refused: usize,
    /// BatchWriteItem calls holding this text are applied by the server, then answered with a 500.
    written_then_failed: Option<String>,
    /// An operation that fails (500) once this many more of its calls have passed.
    outage: Option<(String, usize)>,
    /// How many calls the outage failed.
    outage_failed: usize,
    /// Entries (DynamoDB JSON) that Queries of the hash index are answered from instead of the server.
    lagging_index: Option<Vec<serde_json::Value>>,
}

impl State {
    /// xorshift64*: deterministic for a seed.
    fn next(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self, operation: &str) -> Option<Fault> {
        if let Some(at) = self.once.iter().position(|(op, _)| op == operation) {
            let (_, fault) = self.once.remove(at);
            self.injected.push(fault);
            return Some(fault);
        }
        let faults = self.faults?;
        if operation != "BatchWriteItem" && operation != "Scan" {
            return None;
        }
        if (self.next() % 10_000) as f64 >= faults.fraction * 10_000.0 {
            return None;
        }
        let mut fault = FAULTS[(self.next() % FAULTS.len() as u64) as usize];
        if fault == Fault::Unprocessed && operation != "BatchWriteItem" {
            fault = Fault::Throttling;
        }
        self.injected.push(fault);
        Some(fault)
    }
}

pub struct Proxy {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:port`) on a free loopback port. It runs on a
    /// thread of its own, so that tests may block while ddbsync talks through it.
    pub fn start(upstream: &str) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (upstream, task_state) = (upstream.to_string(), state.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime
                .block_on(async move { serve(TcpListener::from_std(listener).unwrap(), upstream, task_state).await });
        });
        Proxy { url: format!("http://{addr}"), state }
    }

    /// Starts (or with `None` stops) injecting faults.
    pub fn set_faults(&self, faults: Option<Faults>) {
        let mut state = self.state.lock().unwrap();
        state.faults = faults;
        state.rng = faults.map_or(1, |f| f.seed.max(1));
    }

    /// Injects `fault` into the next call of `operation` (`PutItem`…), once.
    pub fn fault_next(&self, operation: &str, fault: Fault) {
        self.state.lock().unwrap().once.push((operation.to_string(), fault));
    }

    /// Stops (or resumes) answering every request: they wait until the client gives up.
    pub fn set_stalled(&self, stalled: bool) {
        self.state.lock().unwrap().stalled = stalled;
    }

    /// Stops (or with `None` resumes) answering the calls of one operation (`BatchWriteItem`).
    pub fn stall_operation(&self, operation: Option<&str>) {
        self.state.lock().unwrap().stalled_operation = operation.map(str::to_string);
    }

    /// Lets `passes` more calls of `operation` through, then stalls it as [`Proxy::stall_operation`]
    /// does (until `stall_operation(None)`).
    pub fn stall_operation_after(&self, operation: &str, passes: usize) {
        self.state.lock().unwrap().stall_after = Some((operation.to_string(), passes));
    }

    /// Refuses (or with `None` stops refusing) every BatchWriteItem call whose body holds `marker`
    /// with a `ValidationException`, before it reaches the server.
    pub fn refuse_batches_holding(&self, marker: Option<&str>) {
        self.state.lock().unwrap().refuse = marker.map(str::to_string);
    }

    /// Forwards (or with `None` stops) every BatchWriteItem call whose body holds `marker` to the
    /// server, which applies it, then answers it with a 500 (`InternalServerError`).
    pub fn fail_after_writing(&self, marker: Option<&str>) {
        self.state.lock().unwrap().written_then_failed = marker.map(str::to_string);
    }

    /// How many BatchWriteItem calls were refused for the marker.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    /// Lets the next `pass` calls of `operation` through, then fails every later one with a 500
    /// (a server going away half-way), until `None`.
    pub fn fail_after(&self, outage: Option<(&str, usize)>) {
        self.state.lock().unwrap().outage = outage.map(|(op, pass)| (op.to_string(), pass));
    }

    /// How many calls [`Proxy::fail_after`]'s outage has failed so far.
    pub fn outage_failed(&self) -> usize {
        self.state.lock().unwrap().outage_failed
    }

    /// The faults injected so far.
    pub fn injected(&self) -> Vec<Fault> {
        self.state.lock().unwrap().injected.clone()
    }

    /// Every exchange of one operation so far.
    pub fn exchanges(&self, operation: &str) -> Vec<Exchange> {
        self.state.lock().unwrap().log.iter().filter(|e| e.operation == operation).cloned().collect()
    }

    /// The requests of `operation` the server got, in order.
    pub fn requests(&self, operation: &str) -> Vec<serde_json::Value> {
        self.exchanges(operation).into_iter().map(|e| e.request).collect()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().log.clear();
    }

    /// Answers every read of the hash index (`_ddbsync_diff_b64`) from `entries`, whatever the
    /// server holds now: an index whose entries lag their items.
    pub fn lag_index(&self, entries: Option<Vec<serde_json::Value>>) {
        self.state.lock().unwrap().lagging_index = entries;
    }
}

/// The answer of a lagging hash index: to a Query of one bucket, the entries of that bucket; to a
/// parallel Scan of the index, every entry in its first segment; on one page, billed half a unit.
fn lagging_answer(operation: &str, body: &[u8], entries: &[serde_json::Value]) -> Option<serde_json::Value> {
    let request: serde_json::Value = serde_json::from_slice(body).ok()?;
    if request["IndexName"] != "_ddbsync_diff_b64" {
        return None;
    }
    let items: Vec<&serde_json::Value> = match operation {
        "Query" => {
            let bucket = &request["ExpressionAttributeValues"][":p"];
            entries.iter().filter(|e| &e["_ddbsync_bucket"] == bucket).collect()
        }
        "Scan" if request["Segment"].as_u64().unwrap_or(0) == 0 => entries.iter().collect(),
        _ => Vec::new(),
    };
    Some(serde_json::json!({
        "Items": items,
        "Count": items.len(),
        "ScannedCount": items.len(),
        "ConsumedCapacity": { "TableName": request["TableName"], "CapacityUnits": 0.5 },
    }))
}

async fn serve(listener: TcpListener, upstream: String, state: Arc<Mutex<State>>) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let (client, upstream, state) = (client.clone(), upstream.clone(), state.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (client, upstream, state) = (client.clone(), upstream.clone(), state.clone());
                // An error from the service makes hyper close the connection without an answer.
                async move { forward(&client, &upstream, &state, req).await.ok_or("connection dropped") }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn error_response(status: u16, kind: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "injected by the test proxy" });
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

/// Splits a BatchWriteItem request: the first half goes to the server, the rest comes back unprocessed.
fn split_batch(body: &[u8]) -> Option<(Bytes, serde_json::Value)> {
    let mut request: serde_json::Value = serde_json::from_slice(body).ok()?;
    let tables = request["RequestItems"].as_object_mut()?;
    let (table, requests) = tables.iter_mut().next()?;
    let requests = requests.as_array_mut()?;
    let keep = requests.len().div_ceil(2).min(requests.len() - 1);
    if requests.len() < 2 {
        return None;
    }
    let rest: Vec<serde_json::Value> = requests.split_off(keep);
    let unprocessed = serde_json::json!({ table.clone(): rest });
    Some((Bytes::from(request.to_string()), unprocessed))
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    state: &Mutex<State>,
    req: Request<Incoming>,
) -> Option<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let mut body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('.').next_back())
        .unwrap_or("")
        .to_string();
    {
        let mut state = state.lock().unwrap();
        match &mut state.stall_after {
            Some((op, 0)) if *op == operation => {
                state.stalled_operation = Some(operation.clone());
                state.stall_after = None;
            }
            Some((op, passes)) if *op == operation => *passes -= 1,
            _ => {}
        }
    }
    while state.lock().unwrap().stalled
        || state.lock().unwrap().stalled_operation.as_deref() == Some(operation.as_str())
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    {
        let mut state = state.lock().unwrap();
        let holds = |m: &String| body.windows(m.len()).any(|w| w == m.as_bytes());
        if operation == "BatchWriteItem" && state.refuse.as_ref().is_some_and(holds) {
            state.refused += 1;
            return Some(error_response(400, "ValidationException"));
        }
    }
    let lagging = match &state.lock().unwrap().lagging_index {
        Some(entries) if operation == "Query" || operation == "Scan" => lagging_answer(&operation, &body, entries),
        _ => None,
    };
    if let Some(answer) = lagging {
        let request = serde_json::from_slice(&body).unwrap_or_default();
        state.lock().unwrap().log.push(Exchange { operation, response: answer.clone(), request });
        let out = Response::builder().status(200).header("content-type", "application/x-amz-json-1.0");
        return Some(out.body(Full::new(Bytes::from(answer.to_string()))).unwrap());
    }
    let down = match &mut state.lock().unwrap().outage {
        Some((op, 0)) if *op == operation => true,
        Some((op, pass)) if *op == operation => {
            *pass -= 1;
            false
        }
        _ => false,
    };
    if down {
        state.lock().unwrap().outage_failed += 1;
        return Some(error_response(500, "InternalServerError"));
    }
    let written_then_failed = {
        let state = state.lock().unwrap();
        let holds = |m: &String| body.windows(m.len()).any(|w| w == m.as_bytes());
        operation == "BatchWriteItem" && state.written_then_failed.as_ref().is_some_and(holds)
    };
    let fault = state.lock().unwrap().pick(&operation);
    let mut unprocessed = None;
    match fault {
        Some(Fault::ProvisionedThroughputExceeded) => {
            return Some(error_response(400, "ProvisionedThroughputExceededException"))
        }
        Some(Fault::Throttling) => return Some(error_response(400, "ThrottlingException")),
        Some(Fault::ServerError) => return Some(error_response(500, "InternalServerError")),
        Some(Fault::AccessDenied) => return Some(error_response(400, "AccessDeniedException")),
        Some(Fault::DropBefore) => return None,
        Some(Fault::Unprocessed) => match split_batch(&body) {
            Some((kept, rest)) => {
                body = kept;
                unprocessed = Some(rest);
            }
            None => return Some(error_response(400, "ProvisionedThroughputExceededException")),
        },
        Some(Fault::DropAfter) | None => {}
    }
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let mut upstream_req = Request::builder().method(parts.method).uri(uri);
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n != "content-length") {
        upstream_req = upstream_req.header(name, value);
    }
    let response = match client.request(upstream_req.body(Full::new(body)).unwrap()).await {
        Ok(r) => r,
        Err(e) => return Some(Response::builder().status(502).body(Full::new(Bytes::from(e.to_string()))).unwrap()),
    };
    let (parts, body) = response.into_parts();
    let mut bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let mut parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if let Some(rest) = unprocessed {
        parsed["UnprocessedItems"] = rest;
        bytes = Bytes::from(parsed.to_string());
    }
    state.lock().unwrap().log.push(Exchange { operation, request: sent, response: parsed });
    if fault == Some(Fault::DropAfter) {
        return None;
    }
    if written_then_failed {
        return Some(error_response(500, "InternalServerError"));
    }
    let mut out = Response::builder().status(parts.status);
    // The body may have changed: its length and checksum headers would lie.
    for (name, value) in parts.headers.iter().filter(|(n, _)| *n != "content-length" && *n != "x-amz-crc32") {
        out = out.header(name, value);
    }
    Some(out.body(Full::new(bytes)).unwrap())
}
