//! Benchmark of the session garbage collector: sessions deleted per second and DynamoDB calls
//! per 1,000 expired sessions, for each segment count given.
//!
//! Run it through `bench/gc.sh`, which starts a local DynamoDB (moto) and points this at it:
//!
//! ```text
//! bench/gc.sh [SESSIONS] [SEGMENTS...]      # default: 5000 sessions, 1 and 4 segments
//! ```
//!
//! Every run gets a fresh table holding only expired sessions, so every session scanned is
//! deleted. Calls are counted by an SDK interceptor per operation, retries included.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use dynamodb_session_store::Config;
use dynamodb_session_store::gc::GarbageCollector;
use dynamodb_session_store::table::SessionTable;

/// Counts the requests sent, by operation (`X-Amz-Target`), retries included.
#[derive(Debug, Clone, Default)]
struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.split('.').nth(1))
            .unwrap_or("unknown")
            .to_owned();
        *self.0.lock().unwrap().entry(operation).or_default() += 1;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let sessions: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let mut segment_counts: Vec<u32> = args.map(|a| a.parse()).collect::<Result<_, _>>()?;
    if segment_counts.is_empty() {
        segment_counts = vec![1, 4];
    }
    if std::env::var_os("AWS_ENDPOINT_URL_DYNAMODB").is_none() {
        return Err("set AWS_ENDPOINT_URL_DYNAMODB (bench/gc.sh starts a local DynamoDB)".into());
    }
    let aws = aws_config::load_from_env().await;
    let plain = Client::new(&aws);

    println!(
        "| segments | sessions | seconds | deleted/s | calls per 1,000 | Scan | DeleteItem | other |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for segments in segment_counts {
        let table = format!("gc-bench-{segments}-{}", std::process::id());
        SessionTable::new(&table).create(&plain).await?;
        seed_expired(&plain, &table, sessions).await?;

        let counter = CallCounter::default();
        let counted = Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&aws)
                .interceptor(counter.clone())
                .build(),
        );
        // Expired sessions: garbage by the default rule, no cap needed.
        let config = Config::builder().table_name(&table).build()?;
        let collector = GarbageCollector::new(counted, &config)?.with_segments(segments);
        let started = Instant::now();
        let report = collector.collect_all().await?;
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.deleted, sessions as u64, "{report:?}");

        let calls = counter.0.lock().unwrap().clone();
        let total: u64 = calls.values().sum();
        let scans = calls.get("Scan").copied().unwrap_or(0);
        let deletes = calls.get("DeleteItem").copied().unwrap_or(0);
        let per_thousand = |n: u64| n as f64 * 1000.0 / sessions as f64;
        println!(
            "| {segments} | {sessions} | {seconds:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} |",
            sessions as f64 / seconds,
            per_thousand(total),
            per_thousand(scans),
            per_thousand(deletes),
            per_thousand(total - scans - deletes),
        );
        SessionTable::new(&table).delete(&plain).await?;
    }
    Ok(())
}

/// Writes `count` sessions that expired an hour ago: BatchWriteItem, 25 per request, 8
/// requests at a time.
async fn seed_expired(client: &Client, table: &str, count: usize) -> Result<(), BoxError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let number = |n: i64| AttributeValue::N(n.to_string());
    let requests: Vec<WriteRequest> = (0..count)
        .map(|i| {
            let item = HashMap::from([
                (
                    "session_id".to_owned(),
                    AttributeValue::S(format!("{i:043}")),
                ),
                ("data".to_owned(), AttributeValue::S("{}".into())),
                ("created_at".to_owned(), number(now - 7200)),
                ("updated_at".to_owned(), number(now - 7200)),
                ("expire_at".to_owned(), number(now - 3600)),
            ]);
            PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map(|put| WriteRequest::builder().put_request(put).build())
        })
        .collect::<Result<_, _>>()?;
    let batches = Arc::new(Mutex::new(
        requests.chunks(25).map(<[_]>::to_vec).collect::<Vec<_>>(),
    ));
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, table, batches) = (client.clone(), table.to_owned(), batches.clone());
        writers.spawn(async move {
            loop {
                let Some(mut batch) = batches.lock().unwrap().pop() else {
                    return Ok::<_, BoxError>(());
                };
                while !batch.is_empty() {
                    let out = client
                        .batch_write_item()
                        .request_items(&table, batch)
                        .send()
                        .await?;
                    batch = out
                        .unprocessed_items
                        .and_then(|mut unprocessed| unprocessed.remove(&table))
                        .unwrap_or_default();
                }
            }
        });
    }
    for result in writers.join_all().await {
        result?;
    }
    Ok(())
}
