//! The DynamoDB figures, from an SDK interceptor on the store's client: every operation the
//! store and the collector send passes through it, so no call site is missed.

use std::time::Instant;

use ::metrics::{Key, Label};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use super::{DYNAMODB_CALLS, DYNAMODB_LATENCY, OPERATION, count_key, record_key};

/// The operations the store and the collector send, each with its label (static, so that
/// recording allocates nothing); any other is `Other`, the last.
macro_rules! operations {
    ($($name:literal),* $(,)?) => {
        const OPERATIONS: [&str; [$($name),*].len()] = [$($name),*];
        static LABELS: [[Label; 1]; OPERATIONS.len()] =
            [$([Label::from_static_parts(OPERATION, $name)]),*];
    };
}

operations!(
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "Query",
    "BatchGetItem",
    "BatchWriteItem",
    "Scan",
    "DescribeTable",
    "Other",
);

/// When this call was sent: per call, so concurrent calls on one client keep their own.
#[derive(Debug, Clone, Copy)]
struct Sent(Instant);

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

/// Counts each DynamoDB call and records its latency, by operation.
#[derive(Debug)]
pub(crate) struct DynamoDbCalls;

impl DynamoDbCalls {
    /// `client` with this interceptor added (the caller's own client is left as it was).
    pub(crate) fn on(client: aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(DynamoDbCalls)
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }
}

impl Intercept for DynamoDbCalls {
    fn name(&self) -> &'static str {
        "SessionStoreMetrics"
    }

    fn read_before_execution(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state().store_put(Sent(Instant::now()));
        Ok(())
    }

    fn read_after_execution(
        &self,
        _context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg.load::<Metadata>().map_or("Other", Metadata::name);
        let index = OPERATIONS
            .iter()
            .position(|known| *known == operation)
            .unwrap_or(OPERATIONS.len() - 1);
        let labels = &LABELS[index];
        count_key(&Key::from_static_parts(DYNAMODB_CALLS, labels), 1);
        if let Some(Sent(sent)) = cfg.load::<Sent>() {
            record_key(
                &Key::from_static_parts(DYNAMODB_LATENCY, labels),
                sent.elapsed(),
            );
        }
        Ok(())
    }
}
