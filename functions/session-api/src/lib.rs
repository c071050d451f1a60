//! The demo HTTP API: a Lambda handler wrapped in the DynamoDB session layer.
//!
//! `main.rs` only wires it up; [`routes`] is the function's contract and [`app`] builds
//! the layered service so tests drive exactly what Lambda runs.

pub mod routes;
mod secret;

use aws_config::SdkConfig;
use dynamodb_session_store::{Config, SessionLayer, SessionService, SessionStore};

use lambda_http::tower::Layer;
use lambda_http::tower::util::BoxCloneService;
use lambda_http::{Body, Request, Response, service_fn};

pub use secret::SECRET_ARN_VARIABLE;

/// What can stop the function from starting.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The session store's configuration is invalid.
    #[error(transparent)]
    Config(#[from] dynamodb_session_store::Error),
    /// The secret key could not be read from Secrets Manager.
    #[error("cannot read the session secret from Secrets Manager")]
    Secret(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Builds the session layer from the environment: the store's options
/// (`AWS_DYNAMO_DB_SESSION_*`), the cookie options, and the secret key — from Secrets Manager
/// when `AWS_DYNAMO_DB_SESSION_SECRET_ARN` is set (read once, at cold start), otherwise from
/// `AWS_DYNAMO_DB_SESSION_SECRET_KEY`.
///
/// # Errors
///
/// [`StartupError`] naming the bad variable, or the Secrets Manager failure.
pub async fn layer_from_env(
    aws: &SdkConfig,
    vars: Vec<(String, String)>,
) -> Result<SessionLayer, StartupError> {
    let mut config =
        Config::builder()
            .env(vars.clone())
            .dynamo_db_client(aws_sdk_dynamodb::Client::from_conf(
                resilient(aws.into()).build(),
            ));
    if let Some((_, arn)) = vars.iter().find(|(name, _)| name == SECRET_ARN_VARIABLE) {
        let keys = secret::fetch(&aws_sdk_secretsmanager::Client::new(aws), arn).await?;
        config = config
            .secret_key(keys.current)
            .previous_secret_keys(keys.previous);
    }
    let store = SessionStore::new(config.build()?)?;
    Ok(SessionLayer::new(store).with_env(vars)?)
}

/// The DynamoDB client's retry and timeout policy, chosen for a request path rather than
/// left to the SDK's defaults:
///
/// * standard retry mode, **5 attempts** (the default is 3) with exponential backoff from
///   **20 ms** capped at **1 s**: throttling, 5xx and dropped connections are retried, so a
///   brief fault costs latency instead of a failed request;
/// * **2 s per attempt, 6 s per operation**: a request never hangs on a stuck connection,
///   and the Lambda (10 s timeout in the template) always answers.
///
/// Retries of a write whose response was lost can meet their own first attempt's effect;
/// the store's writes are conditional, so that surfaces as an error, never as a double write.
pub fn resilient(config: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    use std::time::Duration;
    config
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(5)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_secs(2))
                .operation_timeout(Duration::from_secs(6))
                .build(),
        )
}

/// The routes as a boxed service: one nameable type for `main` and the tests.
pub type Routes = BoxCloneService<Request, Response<Body>, lambda_http::Error>;

/// The handler wrapped in the session layer: the service Lambda runs.
pub fn app(layer: SessionLayer) -> SessionService<Routes> {
    layer.layer(BoxCloneService::new(service_fn(routes::handle)))
}
