//! A fault-injecting HTTP proxy between the SDK and the DynamoDB server.
//!
//! Each request is, at the configured rates: answered with a throttling error (HTTP 400
//! `ProvisionedThroughputExceededException`), answered with HTTP 500 `InternalServerError`,
//! dropped before it reaches the server (the connection closes without an answer), dropped
//! after the server applied it (the answer is lost), or forwarded untouched.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// How often each fault happens, as fractions of all requests (`Default`: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    /// HTTP 400 `ProvisionedThroughputExceededException`.
    pub throttle: f64,
    /// HTTP 500 `InternalServerError`.
    pub server_error: f64,
    /// Connection closed before the request is forwarded.
    pub drop_before: f64,
    /// Request forwarded and applied, then the connection closed without the answer.
    pub drop_after: f64,
}

/// What the proxy did, by kind.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Requests forwarded and answered.
    pub forwarded: AtomicU64,
    /// Throttling errors injected.
    pub throttled: AtomicU64,
    /// 500 errors injected.
    pub server_errors: AtomicU64,
    /// Connections dropped before forwarding.
    pub dropped_before: AtomicU64,
    /// Connections dropped after the server applied the request.
    pub dropped_after: AtomicU64,
}

impl FaultCounts {
    /// All injected faults.
    pub fn injected(&self) -> u64 {
        [
            &self.throttled,
            &self.server_errors,
            &self.dropped_before,
            &self.dropped_after,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// A running proxy on 127.0.0.1; it stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// What it did so far.
    pub counts: Arc<FaultCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Shared {
    upstream: String,
    rates: FaultRates,
    rng: Mutex<StdRng>,
    counts: Arc<FaultCounts>,
    client: reqwest::Client,
}

enum Fault {
    Throttle,
    ServerError,
    DropBefore,
    DropAfter,
    None,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` (e.g. the moto URL) injecting faults at `rates`, with a
    /// seeded random source so a failing run can be replayed.
    pub async fn start(upstream: &str, rates: FaultRates, seed: u64) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let counts = Arc::new(FaultCounts::default());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            rates,
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            counts: counts.clone(),
            client: reqwest::Client::new(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let shared = shared.clone();
                        async move { shared.handle(request).await }
                    });
                    // A service error closes the connection without an answer: that is how
                    // the dropped-connection faults are made.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            url: format!("http://{addr}"),
            counts,
            task,
        }
    }
}

type ProxyResult = Result<Response<Full<Bytes>>, std::io::Error>;

impl Shared {
    fn pick(&self) -> Fault {
        let roll: f64 = self.rng.lock().unwrap().random();
        let r = self.rates;
        let mut edge = r.throttle;
        if roll < edge {
            return Fault::Throttle;
        }
        edge += r.server_error;
        if roll < edge {
            return Fault::ServerError;
        }
        edge += r.drop_before;
        if roll < edge {
            return Fault::DropBefore;
        }
        edge += r.drop_after;
        if roll < edge {
            return Fault::DropAfter;
        }
        Fault::None
    }

    async fn handle(&self, request: Request<Incoming>) -> ProxyResult {
        let fault = self.pick();
        let count = |c: &AtomicU64| c.fetch_add(1, Ordering::Relaxed);
        match fault {
            Fault::Throttle => {
                count(&self.counts.throttled);
                Ok(error_response(
                    StatusCode::BAD_REQUEST,
                    "ProvisionedThroughputExceededException",
                    "The level of configured provisioned throughput for the table was exceeded.",
                ))
            }
            Fault::ServerError => {
                count(&self.counts.server_errors);
                Ok(error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Internal server error",
                ))
            }
            Fault::DropBefore => {
                count(&self.counts.dropped_before);
                Err(std::io::Error::other(
                    "injected: connection dropped before forwarding",
                ))
            }
            Fault::DropAfter => {
                let _ = self.forward(request).await?;
                count(&self.counts.dropped_after);
                Err(std::io::Error::other(
                    "injected: connection dropped after the server applied the request",
                ))
            }
            Fault::None => {
                let response = self.forward(request).await?;
                count(&self.counts.forwarded);
                Ok(response)
            }
        }
    }

    async fn forward(&self, request: Request<Incoming>) -> ProxyResult {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut upstream = self
            .client
            .request(parts.method, format!("{}{path}", self.upstream))
            .body(body);
        for (name, value) in &parts.headers {
            if name != hyper::header::HOST && name != hyper::header::CONTENT_LENGTH {
                upstream = upstream.header(name, value);
            }
        }
        let answer = upstream.send().await.map_err(std::io::Error::other)?;
        let mut response = Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            if name != hyper::header::TRANSFER_ENCODING && name != hyper::header::CONNECTION {
                response = response.header(name, value);
            }
        }
        let body = answer.bytes().await.map_err(std::io::Error::other)?;
        response
            .body(Full::new(body))
            .map_err(std::io::Error::other)
    }
}

/// An error answer in DynamoDB's JSON protocol.
fn error_response(status: StatusCode, kind: &str, message: &str) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"),
        "message": message,
    });
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "fault-proxy")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("static response")
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("url", &self.url)
            .finish()
    }
}
