//! A recording HTTP proxy between ddbsync and the DynamoDB-compatible server. It forwards every
//! request unchanged and keeps each operation's name and response body, so that tests can add up
//! what the server itself reported (consumed capacity) and compare it with ddbsync's report.

use std::convert::Infallible;
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

/// One exchange: the `X-Amz-Target` operation (`BatchWriteItem`…) and the response body.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: String,
    pub response: serde_json::Value,
}

pub struct Proxy {
    pub url: String,
    log: Arc<Mutex<Vec<Exchange>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` (`http://127.0.0.1:port`) on a free loopback port. It runs on a
    /// thread of its own, so that tests may block while ddbsync talks through it.
    pub fn start(upstream: &str) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (upstream, task_log) = (upstream.to_string(), log.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move { serve(TcpListener::from_std(listener).unwrap(), upstream, task_log).await });
        });
        Proxy { url: format!("http://{addr}"), log }
    }

    /// Every exchange of one operation so far.
    pub fn exchanges(&self, operation: &str) -> Vec<Exchange> {
        self.log.lock().unwrap().iter().filter(|e| e.operation == operation).cloned().collect()
    }

    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }
}

async fn serve(listener: TcpListener, upstream: String, log: Arc<Mutex<Vec<Exchange>>>) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    loop {
        let Ok((stream, _)) = listener.accept().await else { return };
        let (client, upstream, log) = (client.clone(), upstream.clone(), log.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let (client, upstream, log) = (client.clone(), upstream.clone(), log.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, &log, req).await) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn forward(
    client: &Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    log: &Mutex<Vec<Exchange>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split('.').next_back())
        .unwrap_or("")
        .to_string();
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut upstream_req = Request::builder().method(parts.method).uri(uri);
    for (name, value) in &parts.headers {
        upstream_req = upstream_req.header(name, value);
    }
    let response = match client.request(upstream_req.body(Full::new(body)).unwrap()).await {
        Ok(r) => r,
        Err(e) => return Response::builder().status(502).body(Full::new(Bytes::from(e.to_string()))).unwrap(),
    };
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let parsed = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    log.lock().unwrap().push(Exchange { operation, response: parsed });
    let mut out = Response::builder().status(parts.status);
    for (name, value) in &parts.headers {
        out = out.header(name, value);
    }
    out.body(Full::new(bytes)).unwrap()
}
