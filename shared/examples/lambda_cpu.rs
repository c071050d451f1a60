//! The function `bench/cpu.sh` measures: one `lambda_http` handler, bare or behind
//! [`SessionLayer`], for the CPU time a request costs the function's process.
//!
//! `CPU_BENCH_MODE=bare` runs the handler alone, `CPU_BENCH_MODE=layer` behind the layer
//! (store from the environment, as a deployed function builds it). The route, the last
//! segment of the path, picks what the handler does:
//!
//! | route | handler |
//! |---|---|
//! | `/untouched` | answers without touching the session (the bare handler's only route) |
//! | `/read` | reads `n` from the session |
//! | `/change` | reads `n` and stores `n + 1` |
//! | `/sdk-read` | (bare) the same GetItem the layer makes for `/read`, by hand |
//! | `/sdk-change` | (bare) GetItem + UpdateItem by hand, the calls of `/change` |
//!
//! The two `sdk-` routes separate what the AWS SDK's calls cost from what the layer itself
//! costs. Not a test and not an example to copy: `bench/cpu.sh` runs it.

use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_sdk_dynamodb::types::AttributeValue;
use dynamodb_session_store::{RequestSessionExt, SessionLayer, SessionStore};
use lambda_http::tower::ServiceBuilder;
use lambda_http::{Body, Error, Request, Response, service_fn};

/// The key the `sdk-` routes read and write (not a session: the layer never reads it).
const SDK_KEY: &str = "cpu-bench-sdk-item";

/// `CPU_BENCH_RUNTIME` picks the tokio runtime, so `bench/cpu.sh` can measure the flavours
/// side by side: `multi_thread` (the default, what `#[tokio::main]` builds: a worker per
/// CPU), `multi_thread:N` (N workers) or `current_thread`.
fn main() -> Result<(), Error> {
    let flavour = std::env::var("CPU_BENCH_RUNTIME").unwrap_or_default();
    let mut builder = match flavour.split_once(':') {
        _ if flavour == "current_thread" => tokio::runtime::Builder::new_current_thread(),
        Some(("multi_thread", workers)) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(workers.parse()?);
            builder
        }
        _ if flavour.is_empty() || flavour == "multi_thread" => {
            tokio::runtime::Builder::new_multi_thread()
        }
        _ => return Err(format!("CPU_BENCH_RUNTIME={flavour:?}").into()),
    };
    builder.enable_all().build()?.block_on(run())
}

async fn run() -> Result<(), Error> {
    let mode = std::env::var("CPU_BENCH_MODE").unwrap_or_default();
    match mode.as_str() {
        "bare" => {
            let client = aws_sdk_dynamodb::Client::new(&sdk_config().await);
            let table = std::env::var("AWS_DYNAMO_DB_SESSION_TABLE_NAME")?;
            lambda_http::run(service_fn(move |req: Request| {
                let (client, table) = (client.clone(), table.clone());
                async move { bare(req, &client, &table).await }
            }))
            .await
        }
        "layer" => {
            let mut config = dynamodb_session_store::Config::from_env()?;
            config.dynamo_db_client = Some(aws_sdk_dynamodb::Client::new(&sdk_config().await));
            let store = SessionStore::new(config)?;
            let app = ServiceBuilder::new()
                .layer(SessionLayer::new(store))
                .service(service_fn(with_session));
            lambda_http::run(app).await
        }
        other => Err(format!("CPU_BENCH_MODE={other:?}: expected bare or layer").into()),
    }
}

/// The SDK configuration both modes use: the default one, or without the stalled-stream
/// protection (which watches every body's throughput) when
/// `CPU_BENCH_SDK=no-stall-protection`, to measure what it costs a call.
async fn sdk_config() -> aws_config::SdkConfig {
    let loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    match std::env::var("CPU_BENCH_SDK").as_deref() {
        Ok("no-stall-protection") => {
            loader
                .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
                .load()
                .await
        }
        _ => loader.load().await,
    }
}

fn route(req: &Request) -> &str {
    req.uri().path().rsplit('/').next().unwrap_or_default()
}

fn answer(text: String) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from(text))?)
}

/// The handler without the layer.
async fn bare(
    req: Request,
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Response<Body>, Error> {
    let key = || AttributeValue::S(SDK_KEY.into());
    match route(&req) {
        "untouched" => answer("ok".into()),
        "sdk-read" | "sdk-change" => {
            let got = client
                .get_item()
                .table_name(table)
                .key("session_id", key())
                .consistent_read(true)
                .send()
                .await?;
            let n: u64 = got
                .item
                .as_ref()
                .and_then(|item| item.get("n"))
                .and_then(|n| n.as_n().ok())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if route(&req) == "sdk-change" {
                client
                    .update_item()
                    .table_name(table)
                    .key("session_id", key())
                    .update_expression("SET n = :n")
                    .expression_attribute_values(":n", AttributeValue::N((n + 1).to_string()))
                    .send()
                    .await?;
            }
            answer(n.to_string())
        }
        other => Err(format!("no route {other:?} without the layer").into()),
    }
}

/// The same handler behind the layer.
async fn with_session(req: Request) -> Result<Response<Body>, Error> {
    let session = req.session().ok_or("not behind the session layer")?;
    match route(&req) {
        "untouched" => answer("ok".into()),
        "read" => {
            let n: u64 = session.get("n").await?.unwrap_or(0);
            answer(n.to_string())
        }
        "change" => {
            let n: u64 = session.get("n").await?.unwrap_or(0) + 1;
            session.insert("n", n).await?;
            answer(n.to_string())
        }
        other => Err(format!("no route {other:?}").into()),
    }
}
