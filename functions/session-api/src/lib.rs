//! The demo HTTP API: a Lambda handler wrapped in the DynamoDB session layer.
//!
//! `main.rs` only wires it up; [`routes`] is the function's contract and [`app`] builds
//! the layered service so tests drive exactly what Lambda runs.

pub mod routes;
mod secret;

use aws_config::SdkConfig;
use dynamodb_session_store::{Config, SessionLayer, SessionService, SessionStore};
use lambda_http::tower::Layer;
use lambda_http::{Request, service_fn};

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
    let mut config = Config::builder()
        .env(vars.clone())
        .dynamo_db_client(aws_sdk_dynamodb::Client::new(aws));
    if let Some((_, arn)) = vars.iter().find(|(name, _)| name == SECRET_ARN_VARIABLE) {
        let keys = secret::fetch(&aws_sdk_secretsmanager::Client::new(aws), arn).await?;
        config = config
            .secret_key(keys.current)
            .previous_secret_keys(keys.previous);
    }
    let store = SessionStore::new(config.build()?)?;
    Ok(SessionLayer::new(store).with_env(vars)?)
}

/// The handler wrapped in the session layer: the service Lambda runs.
pub fn app(layer: SessionLayer) -> SessionService<impl RoutesService> {
    layer.layer(service_fn(routes::handle))
}

/// The routes as a tower service (what [`app`] wraps).
pub trait RoutesService:
    lambda_http::Service<
        Request,
        Response = lambda_http::Response<lambda_http::Body>,
        Error = std::convert::Infallible,
        Future: Send,
    > + Clone
    + Send
    + 'static
{
}

impl<T> RoutesService for T where
    T: lambda_http::Service<
            Request,
            Response = lambda_http::Response<lambda_http::Body>,
            Error = std::convert::Infallible,
            Future: Send,
        > + Clone
        + Send
        + 'static
{
}
