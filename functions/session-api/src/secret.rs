//! The signing secret from AWS Secrets Manager: read at cold start, and read again when a
//! cookie signed by a secret this instance does not know arrives (a rotation happened while
//! it was warm). See [`SecretsManagerSource`].

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use dynamodb_session_store::config::{MIN_SECRET_KEY_LEN, SecretKey};
use dynamodb_session_store::keys::{SecretSource, SigningSecrets};

use crate::Error;

/// The variable holding the secret's ARN (or name).
pub const SECRET_ARN_VARIABLE: &str = "AWS_DYNAMO_DB_SESSION_SECRET_ARN";

/// At most one read of the secret per this interval, however many cookies fail
/// verification: forged cookies cannot turn into a stream of Secrets Manager calls.
pub const SECRET_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Longest single `GetSecretValue` attempt.
pub const SECRETS_MANAGER_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest `GetSecretValue` call, retries included. The three versions are read
/// concurrently, so this also bounds a whole read of the secret.
pub const SECRETS_MANAGER_OPERATION_TIMEOUT: Duration = Duration::from_secs(3);

/// The label of the version that signs.
pub const CURRENT: &str = "AWSCURRENT";
/// The label of the version a rotation under way will make current.
pub const PENDING: &str = "AWSPENDING";
/// The label of the version the last rotation replaced.
pub const PREVIOUS: &str = "AWSPREVIOUS";

/// The error code of Secrets Manager's "no such version" answer.
const NOT_FOUND: &str = "ResourceNotFoundException";

/// The Secrets Manager client's retry and timeout policy: standard retries, 3 attempts, with
/// backoff from 20 ms capped at 500 ms; [`SECRETS_MANAGER_ATTEMPT_TIMEOUT`] per attempt and
/// [`SECRETS_MANAGER_OPERATION_TIMEOUT`] per call. A read of the secret inside a request
/// thus stays well inside the request's budget, and a cold start never hangs on it.
pub fn secrets_manager_policy(
    config: aws_sdk_secretsmanager::config::Builder,
) -> aws_sdk_secretsmanager::config::Builder {
    config
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(20))
                .with_max_backoff(Duration::from_millis(500)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(SECRETS_MANAGER_ATTEMPT_TIMEOUT)
                .operation_timeout(SECRETS_MANAGER_OPERATION_TIMEOUT)
                .build(),
        )
}

/// The signing secrets in one Secrets Manager secret. Register it with
/// [`SessionStore::with_secret_source`](dynamodb_session_store::SessionStore::with_secret_source)
/// so a warm instance picks up a rotation.
///
/// The template generates the secret; only its ARN is in the environment. Three versions
/// (staging labels) matter during a rotation:
///
/// | label | role | missing |
/// |---|---|---|
/// | `AWSCURRENT` | signs new ids, verifies | an error: the function cannot start |
/// | `AWSPENDING` | the next secret, while a rotation is under way: verifies | normal outside a rotation |
/// | `AWSPREVIOUS` | the secret before the last rotation: verifies, so nobody is logged out | normal before the first rotation |
///
/// Only `ResourceNotFoundException` — Secrets Manager's answer for a label attached to no
/// version — means a version is absent. Every other failure (`AccessDeniedException`,
/// throttling, a KMS `DecryptionFailure`, a timeout) is an error, reported as the label and
/// the service's error code only ([`Error::SecretVersion`]): the service's message can name
/// the secret, and the value is never part of an error.
///
/// * At cold start ([`fetch_at_startup`](Self::fetch_at_startup)) `AWSCURRENT` must be
///   read. A failure on `AWSPENDING` or `AWSPREVIOUS` is logged at error level and the
///   function starts with the versions it could read: the current secret verifies every
///   cookie signed since the last rotation and signs all new ones, whereas refusing to start
///   would turn a partial — often transient — failure (one throttled call of three) into a
///   total outage. The versions left out are read again by the first cookie that fails
///   verification (at most once per [`SECRET_REFRESH_INTERVAL`]).
/// * During a refresh ([`SecretSource::fetch`], [`fetch_all`](Self::fetch_all)) any error
///   fails the whole read: the store keeps the keys it has, logs the error and counts it
///   ([`StoreOps::secret_refresh_failures`](dynamodb_session_store::ops::StoreOps::secret_refresh_failures)),
///   rather than drop a version that may still be verifying live cookies.
///
/// A version whose value is not a usable key (binary, or shorter than
/// [`MIN_SECRET_KEY_LEN`]) is skipped with a warning unless it is `AWSCURRENT`: no instance
/// can have signed with it, since none starts with such a key. A version carrying two labels
/// counts once.
#[derive(Clone)]
pub struct SecretsManagerSource {
    client: Client,
    secret_id: String,
}

impl std::fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret's id is kept out of logs, like its value.
        f.debug_struct("SecretsManagerSource")
            .finish_non_exhaustive()
    }
}

/// Whether a failure on an optional version fails the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Cold start: log it and go on with the versions read.
    Startup,
    /// Refresh: fail, so the keys in use stay.
    Refresh,
}

/// One version as Secrets Manager returned it.
struct Version {
    value: Option<String>,
}

impl SecretsManagerSource {
    /// Reads the secret `secret_id` (an ARN or a name) with `client` (configure it with
    /// [`secrets_manager_policy`]).
    pub fn new(client: Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource {
            client,
            secret_id: secret_id.into(),
        }
    }

    /// The cold start's read: `AWSCURRENT` is required; a failure reading `AWSPENDING` or
    /// `AWSPREVIOUS` is logged at error level (label and error code, never the secret or
    /// its id) and leaves that version out.
    ///
    /// # Errors
    ///
    /// [`Error::SecretVersion`] when `AWSCURRENT` cannot be read (or does not exist),
    /// [`Error::UnusableSecret`] when its value is not a usable key.
    pub async fn fetch_at_startup(&self) -> Result<SigningSecrets, Error> {
        self.read(Mode::Startup).await
    }

    /// A refresh's read: every version must be read or found absent.
    ///
    /// # Errors
    ///
    /// As [`fetch_at_startup`](Self::fetch_at_startup), and [`Error::SecretVersion`] for a
    /// failure reading `AWSPENDING` or `AWSPREVIOUS` other than "not found".
    pub async fn fetch_all(&self) -> Result<SigningSecrets, Error> {
        self.read(Mode::Refresh).await
    }

    async fn read(&self, mode: Mode) -> Result<SigningSecrets, Error> {
        let (current, pending, previous) = tokio::join!(
            self.version(CURRENT),
            self.version(PENDING),
            self.version(PREVIOUS)
        );
        let current = current?.ok_or_else(|| Error::SecretVersion {
            stage: CURRENT,
            code: NOT_FOUND.to_owned(),
        })?;
        let mut secrets = SigningSecrets {
            current: usable(CURRENT, &current)?,
            others: Vec::new(),
        };
        // Newest first: the pending version, then the previous one.
        for (stage, read) in [(PENDING, pending), (PREVIOUS, previous)] {
            let version = match read {
                Ok(Some(version)) => version,
                Ok(None) => continue,
                Err(error) if mode == Mode::Startup => {
                    tracing::error!(
                        stage,
                        %error,
                        "cannot read a version of the session secret; starting without it \
                         (it is read again when a cookie fails verification)"
                    );
                    continue;
                }
                Err(error) => return Err(error),
            };
            // After a rotation one version can carry two labels; its key is then already
            // in, and the comparison below skips it.
            match usable(stage, &version) {
                Ok(key) if key != secrets.current && !secrets.others.contains(&key) => {
                    secrets.others.push(key);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(stage, %error, "session secret version skipped"),
            }
        }
        Ok(secrets)
    }

    /// The version under `stage`; `None` only when Secrets Manager says there is none.
    async fn version(&self, stage: &'static str) -> Result<Option<Version>, Error> {
        let read = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .version_stage(stage)
            .send()
            .await;
        match read {
            Ok(output) => Ok(Some(Version {
                value: output.secret_string,
            })),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    GetSecretValueError::ResourceNotFoundException(_)
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(Error::SecretVersion {
                stage,
                code: failure_code(&error),
            }),
        }
    }
}

#[async_trait::async_trait]
impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<SigningSecrets, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.fetch_all().await?)
    }
}

/// The version's value as a key, if it is one.
fn usable(stage: &'static str, version: &Version) -> Result<SecretKey, Error> {
    match &version.value {
        None => Err(Error::UnusableSecret {
            stage,
            reason: "no string value",
        }),
        Some(value) if value.len() < MIN_SECRET_KEY_LEN => Err(Error::UnusableSecret {
            stage,
            reason: "shorter than the minimum key length",
        }),
        Some(value) => Ok(SecretKey::new(value)),
    }
}

/// What went wrong, without the service's message (which can name the secret).
fn failure_code<R>(error: &SdkError<GetSecretValueError, R>) -> String {
    match error {
        SdkError::ServiceError(service) => service
            .err()
            .code()
            .unwrap_or("unidentified service error")
            .to_owned(),
        SdkError::TimeoutError(_) => "timeout".to_owned(),
        SdkError::DispatchFailure(_) => "connection failure".to_owned(),
        SdkError::ResponseError(_) => "unreadable response".to_owned(),
        SdkError::ConstructionFailure(_) => "request not constructed".to_owned(),
        _ => "unidentified SDK error".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_secretsmanager::config::retry::RetryConfig;
    use aws_sdk_secretsmanager::error::ErrorMetadata;
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueOutput;
    use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:1:secret:the-secret";
    const V1: &str = "version-one-secret-0123456789abcdef0123456789";
    const V2: &str = "version-two-secret-0123456789abcdef0123456789";
    const V3: &str = "version-three-secret-0123456789abcdef01234567";

    fn found(stage: &'static str, id: &'static str, value: &'static str) -> Rule {
        mock!(Client::get_secret_value)
            .match_requests(move |input| input.version_stage() == Some(stage))
            .then_output(move || {
                GetSecretValueOutput::builder()
                    .version_id(id)
                    .secret_string(value)
                    .build()
            })
    }

    fn missing(stage: &'static str) -> Rule {
        mock!(Client::get_secret_value)
            .match_requests(move |input| input.version_stage() == Some(stage))
            .then_error(|| {
                GetSecretValueError::ResourceNotFoundException(
                    ResourceNotFoundException::builder()
                        .message("Secrets Manager can't find the specified secret value")
                        .build(),
                )
            })
    }

    /// An error the model does not name, as IAM denials and throttling arrive; its message
    /// names the secret, as AWS's do.
    fn failing(stage: &'static str, code: &'static str) -> Rule {
        mock!(Client::get_secret_value)
            .match_requests(move |input| input.version_stage() == Some(stage))
            .then_error(move || {
                GetSecretValueError::generic(
                    ErrorMetadata::builder()
                        .code(code)
                        .message(format!("not authorized on resource: {ARN}"))
                        .build(),
                )
            })
    }

    /// A source answered by `rules`, one call per rule.
    fn answered_by(rules: &[Rule]) -> SecretsManagerSource {
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, rules, |c| c
            .retry_config(RetryConfig::disabled()));
        SecretsManagerSource::new(client, ARN)
    }

    fn keys(secrets: SigningSecrets) -> (SecretKey, Vec<SecretKey>) {
        (secrets.current, secrets.others)
    }

    fn key(value: &str) -> SecretKey {
        SecretKey::new(value)
    }

    fn all_three() -> [Rule; 3] {
        [
            found(CURRENT, "v2", V2),
            found(PENDING, "v3", V3),
            found(PREVIOUS, "v1", V1),
        ]
    }

    #[tokio::test]
    async fn all_three_versions_verify_newest_first() {
        let expected = (key(V2), vec![key(V3), key(V1)]);
        let refreshed = answered_by(&all_three()).fetch_all().await.unwrap();
        assert_eq!(keys(refreshed), expected);
        let started = answered_by(&all_three()).fetch_at_startup().await.unwrap();
        assert_eq!(keys(started), expected);
    }

    #[tokio::test]
    async fn only_not_found_means_absent() {
        let source = answered_by(&[
            found(CURRENT, "v1", V1),
            missing(PENDING),
            missing(PREVIOUS),
        ]);
        assert_eq!(keys(source.fetch_all().await.unwrap()), (key(V1), vec![]));
    }

    #[tokio::test]
    async fn a_refresh_fails_on_any_other_error_naming_only_the_label_and_code() {
        for code in ["AccessDeniedException", "ThrottlingException"] {
            let source = answered_by(&[
                found(CURRENT, "v2", V2),
                missing(PENDING),
                failing(PREVIOUS, code),
            ]);
            let error = source.fetch_all().await.unwrap_err();
            assert!(
                matches!(&error, Error::SecretVersion { stage: PREVIOUS, code: c } if c == code),
                "{error:?}"
            );
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains("the-secret"), "{shown}");
        }
    }

    #[tokio::test]
    async fn at_startup_an_optional_version_that_fails_is_left_out() {
        let source = answered_by(&[
            found(CURRENT, "v2", V2),
            found(PENDING, "v3", V3),
            failing(PREVIOUS, "AccessDeniedException"),
        ]);
        let started = source.fetch_at_startup().await.unwrap();
        assert_eq!(keys(started), (key(V2), vec![key(V3)]));
    }

    #[tokio::test]
    async fn the_current_version_is_required_in_both_modes() {
        for startup in [true, false] {
            let denied = answered_by(&[
                failing(CURRENT, "AccessDeniedException"),
                missing(PENDING),
                found(PREVIOUS, "v1", V1),
            ]);
            let absent = answered_by(&[
                missing(CURRENT),
                missing(PENDING),
                found(PREVIOUS, "v1", V1),
            ]);
            let (denied, absent) = if startup {
                (
                    denied.fetch_at_startup().await,
                    absent.fetch_at_startup().await,
                )
            } else {
                (denied.fetch_all().await, absent.fetch_all().await)
            };
            assert!(
                matches!(&denied, Err(Error::SecretVersion { stage: CURRENT, code }) if code == "AccessDeniedException"),
                "{denied:?}"
            );
            assert!(
                matches!(&absent, Err(Error::SecretVersion { stage: CURRENT, code }) if code == NOT_FOUND),
                "{absent:?}"
            );
        }
    }

    #[tokio::test]
    async fn unusable_and_duplicate_versions_are_skipped_but_not_an_unusable_current_one() {
        // After a rotation AWSPENDING may still label the current version.
        let source = answered_by(&[
            found(CURRENT, "v2", V2),
            found(PENDING, "v2", V2),
            found(PREVIOUS, "v1", "too short"),
        ]);
        assert_eq!(keys(source.fetch_all().await.unwrap()), (key(V2), vec![]));
        let source = answered_by(&[
            found(CURRENT, "v9", "short"),
            missing(PENDING),
            missing(PREVIOUS),
        ]);
        let error = source.fetch_all().await.unwrap_err();
        assert!(
            matches!(error, Error::UnusableSecret { stage: CURRENT, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn debug_shows_neither_the_secret_nor_its_id() {
        let shown = format!("{:?}", answered_by(&[]));
        assert!(!shown.contains("the-secret"), "{shown}");
    }
}
