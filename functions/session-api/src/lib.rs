//! The demo HTTP API: a Lambda handler wrapped in the DynamoDB session layer.
//!
//! `main.rs` only wires it up; [`routes`] is the function's contract and [`app`] builds
//! the layered service so tests drive exactly what Lambda runs.

mod invocation;
pub mod routes;
mod secret;

use std::time::Duration;

use aws_config::SdkConfig;
use dynamodb_session_store::deadline::Deadline;
use dynamodb_session_store::{Config, SessionLayer, SessionStore};

use lambda_http::tower::util::BoxCloneService;
use lambda_http::tower::{Layer, ServiceExt as _};
use lambda_http::{Body, Request, Response, service_fn};

pub use invocation::{TraceHeader, run, start};
pub use secret::{
    CURRENT, PENDING, PREVIOUS, SECRET_ARN_VARIABLE, SECRET_REFRESH_INTERVAL,
    SECRETS_MANAGER_ATTEMPT_TIMEOUT, SECRETS_MANAGER_OPERATION_TIMEOUT, SecretsManagerSource,
    secrets_manager_policy,
};

/// What can go wrong in session-api outside a request: its configuration, and reading the
/// signing secret.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session store's configuration is invalid.
    #[error(transparent)]
    Config(#[from] dynamodb_session_store::Error),
    /// A metrics variable is invalid, or the EMF recorder cannot be installed.
    #[error(transparent)]
    Metrics(#[from] dynamodb_session_store::metrics::emf::EmfError),
    /// The function cannot start: the secret key could not be read from Secrets Manager (the
    /// source says why).
    #[error("cannot read the session secret from Secrets Manager")]
    Secret(#[source] Box<Error>),
    /// Reading one version of the secret failed. Only its staging label and the error code
    /// (`AccessDeniedException`, `ThrottlingException`, `timeout`...) are kept: the service's
    /// message can name the secret.
    #[error("reading the {stage} version of the session secret failed: {code}")]
    SecretVersion {
        /// `AWSCURRENT`, `AWSPENDING` or `AWSPREVIOUS`.
        stage: &'static str,
        /// The service's error code, or the kind of transport failure.
        code: String,
    },
    /// A version of the secret holds no usable key.
    #[error("the {stage} version of the session secret is not a usable key: {reason}")]
    UnusableSecret {
        /// The version's staging label.
        stage: &'static str,
        /// Why it cannot be used.
        reason: &'static str,
    },
}

/// The name [`layer_from_env`]'s error had before it also covered secret refreshes.
pub type StartupError = Error;

/// The AWS clients session-api uses, each with its retry and timeout policy.
#[derive(Debug, Clone)]
pub struct Clients {
    /// Sessions ([`resilient`] policy).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The signing secret ([`secrets_manager_policy`]).
    pub secrets_manager: aws_sdk_secretsmanager::Client,
}

impl Clients {
    /// Both clients from the shared AWS configuration, with their policies.
    pub fn new(aws: &SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                resilient(aws.into()).interceptor(TraceHeader).build(),
            ),
            secrets_manager: aws_sdk_secretsmanager::Client::from_conf(
                secrets_manager_policy(aws.into())
                    .interceptor(TraceHeader)
                    .build(),
            ),
        }
    }
}

/// Builds the session layer from the environment: the store's options
/// (`AWS_DYNAMO_DB_SESSION_*`), the cookie options, and the secret key — from Secrets Manager
/// when `AWS_DYNAMO_DB_SESSION_SECRET_ARN` is set, otherwise from
/// `AWS_DYNAMO_DB_SESSION_SECRET_KEY`. The clients get their policies ([`Clients::new`]).
///
/// # Errors
///
/// As [`layer_with`].
pub async fn layer_from_env(
    aws: &SdkConfig,
    vars: Vec<(String, String)>,
) -> Result<SessionLayer, Error> {
    layer_with(Clients::new(aws), vars).await
}

/// As [`layer_from_env`], with the clients given.
///
/// With a secret ARN, the secret's `AWSCURRENT` version signs and its `AWSPENDING` and
/// `AWSPREVIOUS` versions verify (see [`SecretsManagerSource::fetch_at_startup`]); a cookie
/// that none of them verifies makes the store read the secret again, at most once per
/// [`SECRET_REFRESH_INTERVAL`], so a rotation logs nobody out of a warm instance.
///
/// # Errors
///
/// [`Error::Config`] naming the bad variable; [`Error::Secret`] when the secret's current
/// version cannot be read.
pub async fn layer_with(
    clients: Clients,
    vars: Vec<(String, String)>,
) -> Result<SessionLayer, Error> {
    let mut config = Config::builder()
        .env(vars.clone())
        .also_reads([SECRET_ARN_VARIABLE])
        .dynamo_db_client(clients.dynamodb);
    let mut source = None;
    if let Some((_, arn)) = vars.iter().find(|(name, _)| name == SECRET_ARN_VARIABLE) {
        let secrets = SecretsManagerSource::new(clients.secrets_manager, arn);
        let keys = secrets
            .fetch_at_startup()
            .await
            .map_err(|e| Error::Secret(Box::new(e)))?;
        config = config
            .secret_key(keys.current)
            .previous_secret_keys(keys.others);
        source = Some(secrets);
    }
    let mut store = SessionStore::new(config.build()?)?;
    if let Some(source) = source {
        store = store.with_secret_source(source, SECRET_REFRESH_INTERVAL);
    }
    Ok(SessionLayer::new(store))
}

/// The API function's `Timeout` in `template.yaml` (a test checks that they agree).
///
/// The time budget of a request follows from it: session work stops
/// [`DEFAULT_DEADLINE_MARGIN`](dynamodb_session_store::service::DEFAULT_DEADLINE_MARGIN) (1 s) before
/// the invocation's deadline, so a request has 9 s; the lock wait is the lesser of
/// `lock_max_wait_time` and what is left of them; every DynamoDB call ends by then (503 with
/// `Retry-After` otherwise), and the lock is released by 250 ms before the deadline.
pub const FUNCTION_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts per DynamoDB call (the SDK's default is 3).
pub const DYNAMODB_MAX_ATTEMPTS: u32 = 5;

/// Longest single DynamoDB attempt.
pub const DYNAMODB_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest DynamoDB call, retries and backoff included: shorter than the request budget
/// ([`FUNCTION_TIMEOUT`] less the margin), so a stuck call fails as a timeout of its own
/// with time left to answer — a backstop, since the layer also ends every call at the
/// budget's end.
pub const DYNAMODB_OPERATION_TIMEOUT: Duration = Duration::from_secs(6);

/// The DynamoDB client's retry and timeout policy, chosen for a request path rather than
/// left to the SDK's defaults:
///
/// * standard retry mode, [`DYNAMODB_MAX_ATTEMPTS`] attempts with exponential backoff from
///   **20 ms** capped at **1 s**: throttling, 5xx and dropped connections are retried, so a
///   brief fault costs latency instead of a failed request;
/// * [`DYNAMODB_ATTEMPT_TIMEOUT`] per attempt, [`DYNAMODB_OPERATION_TIMEOUT`] per call: a
///   request never hangs on a stuck connection. The layer bounds each call by the request's
///   remaining budget as well (see [`FUNCTION_TIMEOUT`]), whichever comes first.
///
/// Retries of a write whose response was lost can meet their own first attempt's effect;
/// the store's writes are conditional, so that is never a double write: a save of sealed
/// data recognises its own write (success), anything else surfaces as an error.
pub fn resilient(config: aws_sdk_dynamodb::config::Builder) -> aws_sdk_dynamodb::config::Builder {
    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
    config
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(DYNAMODB_MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(DYNAMODB_ATTEMPT_TIMEOUT)
                .operation_timeout(DYNAMODB_OPERATION_TIMEOUT)
                .build(),
        )
}

/// The routes as a boxed service: one nameable type for `main` and the tests.
pub type Routes = BoxCloneService<Request, Response<Body>, lambda_http::Error>;

/// The variable that gives the function its own Timeout in whole seconds. The template does
/// not set it: without it the function trusts [`FUNCTION_TIMEOUT`], which a unit test keeps
/// equal to the template's `Timeout`.
pub const FUNCTION_TIMEOUT_VARIABLE: &str = "FUNCTION_TIMEOUT";

/// The function's own Timeout: `FUNCTION_TIMEOUT` seconds when set to a positive whole
/// number, else [`FUNCTION_TIMEOUT`]. A bad value is warned about, not fatal: the default
/// is the template's.
pub fn function_timeout(vars: &[(String, String)]) -> Duration {
    let Some((_, value)) = vars
        .iter()
        .find(|(name, _)| name == FUNCTION_TIMEOUT_VARIABLE)
    else {
        return FUNCTION_TIMEOUT;
    };
    match value.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
        _ => {
            tracing::warn!(
                variable = FUNCTION_TIMEOUT_VARIABLE,
                value = %value,
                "not a positive number of seconds; using the template's Timeout"
            );
            FUNCTION_TIMEOUT
        }
    }
}

/// The handler wrapped in the session layer: the service Lambda runs, with the demo routes
/// as [`routes::DEMO_ROUTES_VARIABLE`] says and the function's Timeout read from the
/// environment ([`function_timeout`]).
pub fn app(layer: SessionLayer) -> Routes {
    let vars: Vec<(String, String)> = std::env::vars().collect();
    app_with(
        layer,
        routes::DemoRoutes::from_env(),
        function_timeout(&vars),
    )
}

/// As [`app`], with the demo routes on or off and the function's own Timeout given.
///
/// Each request's budget is the earliest of the invocation's deadline (from its
/// `lambda_http::Context`), a [`Deadline`] already in its extensions, and `timeout` from its
/// arrival: an emulator that reports a longer budget than the function's Timeout
/// (`cargo lambda watch` says 600 s) cannot make a waiter outlive the function, and on
/// Lambda the invocation's own deadline, being earlier, wins.
pub fn app_with(layer: SessionLayer, demo: routes::DemoRoutes, timeout: Duration) -> Routes {
    let app = layer.layer(BoxCloneService::new(service_fn(move |request| {
        routes::handle(request, demo)
    })));
    BoxCloneService::new(app.map_request(move |mut request: Request| {
        let own = Deadline::after(timeout);
        let invocation = request
            .extensions()
            .get::<lambda_http::Context>()
            .and_then(|context| Deadline::from_lambda_millis(context.deadline));
        let given = request.extensions().get::<Deadline>().copied();
        let budget = [Some(own), invocation, given].into_iter().flatten().min();
        if let Some(budget) = budget {
            request.extensions_mut().insert(budget);
        }
        request
    }))
}

#[cfg(test)]
mod tests {
    use dynamodb_session_store::service::DEFAULT_DEADLINE_MARGIN;

    use super::*;

    /// The API function's `Timeout` in the template: its own, or the one in `Globals`.
    fn template_timeout() -> Duration {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let text = std::fs::read_to_string(path).expect("template.yaml at the workspace root");
        let template: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("valid YAML");
        let own = &template["Resources"]["SessionApiFunction"]["Properties"]["Timeout"];
        let global = &template["Globals"]["Function"]["Timeout"];
        let seconds = own
            .as_u64()
            .or_else(|| global.as_u64())
            .expect("a Timeout for SessionApiFunction");
        Duration::from_secs(seconds)
    }

    #[test]
    fn the_function_timeout_comes_from_the_environment_or_the_template() {
        let var = |value: &str| vec![(FUNCTION_TIMEOUT_VARIABLE.to_owned(), value.to_owned())];
        assert_eq!(function_timeout(&[]), FUNCTION_TIMEOUT);
        assert_eq!(function_timeout(&var("3")), Duration::from_secs(3));
        assert_eq!(function_timeout(&var(" 7 ")), Duration::from_secs(7));
        for bad in ["0", "-1", "ten", ""] {
            assert_eq!(function_timeout(&var(bad)), FUNCTION_TIMEOUT, "{bad:?}");
        }
    }

    #[test]
    fn every_sdk_call_fits_in_the_request_budget_the_template_gives() {
        assert_eq!(
            template_timeout(),
            FUNCTION_TIMEOUT,
            "template.yaml's Timeout for SessionApiFunction and FUNCTION_TIMEOUT must agree"
        );
        let budget = FUNCTION_TIMEOUT - DEFAULT_DEADLINE_MARGIN;
        assert!(DYNAMODB_ATTEMPT_TIMEOUT <= DYNAMODB_OPERATION_TIMEOUT);
        assert!(DYNAMODB_OPERATION_TIMEOUT < budget);
        assert!(SECRETS_MANAGER_ATTEMPT_TIMEOUT <= SECRETS_MANAGER_OPERATION_TIMEOUT);
        // A refresh runs inside a request; the first read runs in Lambda's 10 s init phase.
        assert!(SECRETS_MANAGER_OPERATION_TIMEOUT < budget);
        assert!(SECRETS_MANAGER_OPERATION_TIMEOUT < Duration::from_secs(10));
    }
}
