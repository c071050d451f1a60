//! The AWS SDK configuration a Lambda function loads: the default chain (region,
//! credentials, endpoints) with an HTTPS client that trusts the roots AWS's endpoints chain
//! to.
//!
//! The SDK's default client reads the operating system's whole certificate store when its
//! first connector is built, at every cold start: on this project's machine 3–4 ms of a
//! 10 ms cold start, and a few hundred KB of memory, for about 150 roots of which AWS's
//! endpoints use one. [`load`] trusts only the roots of Amazon Trust Services
//! ([`TrustRoots::Amazon`]), embedded in the binary, where those are the roots the
//! endpoints chain to: no endpoint override and a region of the commercial partition.
//! Elsewhere — DynamoDB Local or another endpoint, China, GovCloud and the isolated
//! partitions — it keeps the system's store ([`TrustRoots::System`]). `SESSION_TLS_ROOTS`
//! chooses either explicitly: `system` behind a TLS-inspecting proxy, whose authority only
//! the system's store holds.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! // What each of this project's functions does once per cold start.
//! let aws = dynamodb_session_store::sdk::load(std::env::vars()).await?;
//! let dynamodb = aws_sdk_dynamodb::Client::new(&aws);
//! # drop(dynamodb); Ok(()) }
//! ```

use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// The variable that chooses the roots: `amazon` or `system`. Unset, [`TrustRoots::for_env`]
/// chooses.
pub const TRUST_ROOTS_VARIABLE: &str = "SESSION_TLS_ROOTS";

/// Amazon Root CA 1–4 and the Starfield root that cross-signs them (with their SHA-256
/// fingerprints in the file's header).
const AMAZON_ROOTS: &[u8] = include_bytes!("sdk/amazon-roots.pem");

/// Which certificates the HTTPS client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustRoots {
    /// Only Amazon Trust Services' roots, built into the binary: nothing is read at start,
    /// and no other authority can vouch for an AWS endpoint.
    Amazon,
    /// The operating system's certificate store (read once per process).
    System,
}

/// What `SESSION_TLS_ROOTS` may hold, for its error messages.
const EXPECTED: &str = "expected \"amazon\" or \"system\"";

/// `SESSION_TLS_ROOTS` holds neither `amazon` nor `system`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{TRUST_ROOTS_VARIABLE}={value:?}: {EXPECTED}")]
pub struct InvalidTrustRoots {
    /// The value found.
    pub value: String,
}

impl InvalidTrustRoots {
    /// As the library's error, for [`SessionStore::from_env`](crate::SessionStore::from_env):
    /// a configuration value refused, like the store's own variables. (Not a `From`: one
    /// more source type for the library's error would break `?`'s inference in callers.)
    pub(crate) fn into_library_error(self) -> crate::Error {
        crate::Error::invalid(TRUST_ROOTS_VARIABLE, self.value, EXPECTED)
    }
}

/// The value of `name` in `vars` when it is set and not blank.
fn var<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter()
        .find(|(key, value)| key == name && !value.trim().is_empty())
        .map(|(_, value)| value.as_str())
}

/// The region the SDK's default chain finds in the environment, which it reads first:
/// `AWS_REGION`, else `AWS_DEFAULT_REGION`.
fn env_region(vars: &[(String, String)]) -> Option<&str> {
    var(vars, "AWS_REGION").or_else(|| var(vars, "AWS_DEFAULT_REGION"))
}

impl TrustRoots {
    /// The roots for a process with these environment variables: `SESSION_TLS_ROOTS` when
    /// set (and not blank); otherwise [`Amazon`](Self::Amazon) when the SDK will call AWS's own endpoints in
    /// the commercial partition (no `AWS_ENDPOINT_URL*` variable, and `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` names such a region), [`System`](Self::System) in every other
    /// case, so that an endpoint whose certificate another authority signed keeps working.
    ///
    /// # Errors
    ///
    /// [`InvalidTrustRoots`] for any other value of `SESSION_TLS_ROOTS`.
    ///
    /// # Examples
    ///
    /// ```
    /// use dynamodb_session_store::sdk::TrustRoots;
    ///
    /// let lambda = [("AWS_REGION".to_string(), "eu-west-1".to_string())];
    /// assert_eq!(TrustRoots::for_env(lambda)?, TrustRoots::Amazon);
    ///
    /// let local = [
    ///     ("AWS_REGION".to_string(), "eu-west-1".to_string()),
    ///     ("AWS_ENDPOINT_URL_DYNAMODB".to_string(), "https://localhost:8000".to_string()),
    /// ];
    /// assert_eq!(TrustRoots::for_env(local)?, TrustRoots::System);
    /// # Ok::<(), dynamodb_session_store::sdk::InvalidTrustRoots>(())
    /// ```
    pub fn for_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, InvalidTrustRoots> {
        Self::of(&vars.into_iter().collect::<Vec<_>>())
    }

    fn of(vars: &[(String, String)]) -> Result<Self, InvalidTrustRoots> {
        if let Some(value) = var(vars, TRUST_ROOTS_VARIABLE) {
            return match value.trim().to_ascii_lowercase().as_str() {
                "amazon" => Ok(Self::Amazon),
                "system" => Ok(Self::System),
                _ => Err(InvalidTrustRoots {
                    value: value.to_string(),
                }),
            };
        }
        let endpoint_override = vars
            .iter()
            .any(|(name, value)| name.starts_with("AWS_ENDPOINT_URL") && !value.trim().is_empty());
        let commercial = env_region(vars).is_some_and(in_commercial_partition);
        Ok(if commercial && !endpoint_override {
            Self::Amazon
        } else {
            Self::System
        })
    }

    /// The HTTPS client (rustls on aws-lc, as the SDK's default client) trusting these
    /// roots. For an SDK config loader's `http_client`.
    pub fn http_client(self) -> SharedHttpClient {
        let trust = match self {
            Self::Amazon => TrustStore::empty().with_pem_certificate(AMAZON_ROOTS),
            Self::System => TrustStore::default(),
        };
        let context = TlsContext::builder()
            .with_trust_store(trust)
            .build()
            .expect("a TLS context without additional server names always builds");
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https()
    }
}

/// Whether `region` is one of the `aws` partition's (`eu-west-1`, `ap-southeast-7`…), whose
/// endpoints' certificates Amazon Trust Services signs. A region of a partition this does
/// not know (or a future naming) answers `false`: the system's store is the safe side.
fn in_commercial_partition(region: &str) -> bool {
    let mut parts = region.split('-');
    let (Some(area), Some(place), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    const AREAS: [&str; 9] = ["af", "ap", "ca", "eu", "il", "me", "mx", "sa", "us"];
    AREAS.contains(&area)
        && !place.is_empty()
        && place.bytes().all(|b| b.is_ascii_lowercase())
        && !place.contains("iso")
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The shared AWS configuration from the default chain, as `aws_config::load_from_env`
/// loads it, with the HTTPS client of [`TrustRoots::for_env`]`(vars)`. `vars` is the
/// process's environment.
///
/// Where the environment holds the region (`AWS_REGION`, `AWS_DEFAULT_REGION`) and a key
/// pair (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`), as Lambda's always does, those are
/// what the default chains would pick, since they look there first; taking them from there
/// directly skips building the chains' other providers — an STS client for web identity and
/// an IMDS client, a tenth of the process's work before its first request.
///
/// # Errors
///
/// [`InvalidTrustRoots`] for a bad `SESSION_TLS_ROOTS`: better a failed start than a
/// function that trusts what its operator did not choose.
pub async fn load(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<SdkConfig, InvalidTrustRoots> {
    let vars: Vec<(String, String)> = vars.into_iter().collect();
    let roots = TrustRoots::of(&vars)?;
    tracing::debug!(?roots, "TLS roots for AWS calls");
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).http_client(roots.http_client());
    if let Some(region) = env_region(&vars) {
        loader = loader.region(Region::new(region.to_string()));
    }
    if var(&vars, "AWS_ACCESS_KEY_ID").is_some() && var(&vars, "AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    Ok(loader.load().await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use sha2::{Digest, Sha256};

    /// Which credentials provider a loaded configuration holds, by its name.
    fn credentials_of(config: &SdkConfig) -> String {
        format!("{:?}", config.credentials_provider().unwrap())
    }

    fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
        vars.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn the_embedded_roots_are_the_five_fingerprinted_in_the_file() {
        let header = std::str::from_utf8(AMAZON_ROOTS).unwrap();
        let fingerprints: Vec<String> = header
            .lines()
            .filter_map(|line| line.strip_prefix("#   "))
            .map(|line| line.rsplit(": ").next().unwrap().replace(':', ""))
            .collect();
        let certificates: Vec<String> = CertificateDer::pem_slice_iter(AMAZON_ROOTS)
            .map(|der| {
                Sha256::digest(der.unwrap().as_ref())
                    .iter()
                    .map(|b| format!("{b:02X}"))
                    .collect()
            })
            .collect();
        assert_eq!(fingerprints.len(), 5);
        assert_eq!(certificates, fingerprints);
        assert_eq!(
            fingerprints[0], "8ECDE6884F3D87B1125BA31AC3FCB13D7016DE7F57CC904FE1CB97C6AE98196E",
            "Amazon Root CA 1, as amazontrust.com publishes it"
        );
    }

    #[test]
    fn aws_endpoints_in_the_commercial_partition_get_amazon_roots() {
        for region in [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-7",
            "mx-central-1",
            "il-central-1",
        ] {
            let roots = TrustRoots::for_env(env(&[("AWS_REGION", region)])).unwrap();
            assert_eq!(roots, TrustRoots::Amazon, "{region}");
        }
        let roots = TrustRoots::for_env(env(&[("AWS_DEFAULT_REGION", "ca-west-1")])).unwrap();
        assert_eq!(roots, TrustRoots::Amazon);
        // As the SDK's chain reads them: a blank AWS_REGION leaves AWS_DEFAULT_REGION.
        let blank = env(&[("AWS_REGION", " "), ("AWS_DEFAULT_REGION", "ca-west-1")]);
        assert_eq!(TrustRoots::for_env(blank).unwrap(), TrustRoots::Amazon);
    }

    #[test]
    fn other_partitions_endpoints_and_unknown_regions_keep_the_system_store() {
        for region in [
            "cn-north-1",
            "us-gov-west-1",
            "us-iso-east-1",
            "us-isob-east-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
            "local",
            "",
        ] {
            let roots = TrustRoots::for_env(env(&[("AWS_REGION", region)])).unwrap();
            assert_eq!(roots, TrustRoots::System, "{region:?}");
        }
        assert_eq!(TrustRoots::for_env(env(&[])).unwrap(), TrustRoots::System);
        for endpoint in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_STS",
        ] {
            let vars = env(&[
                ("AWS_REGION", "us-east-1"),
                (endpoint, "https://localhost:8000"),
            ]);
            assert_eq!(
                TrustRoots::for_env(vars).unwrap(),
                TrustRoots::System,
                "{endpoint}"
            );
        }
    }

    /// Lambda's environment (region and key pair) is taken as the chains would take it; anything
    /// less keeps the whole default chain (profile, web identity, container, IMDS).
    #[tokio::test]
    async fn the_region_and_keys_in_the_environment_are_used_without_the_chains() {
        let lambda = env(&[
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "example"),
        ]);
        let config = load(lambda).await.unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
        let provider = credentials_of(&config);
        assert!(
            provider.contains("EnvironmentVariableCredentialsProvider"),
            "{provider}"
        );

        let preferred = env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ]);
        let config = load(preferred).await.unwrap();
        assert_eq!(config.region().map(|r| r.as_ref()), Some("us-east-2"));
        let provider = credentials_of(&config);
        assert!(
            provider.contains("DefaultCredentialsChain"),
            "no keys: {provider}"
        );

        let empty_secret = env(&[
            ("AWS_REGION", "us-east-2"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", " "),
        ]);
        let config = load(empty_secret).await.unwrap();
        let provider = credentials_of(&config);
        assert!(
            provider.contains("DefaultCredentialsChain"),
            "empty secret: {provider}"
        );
    }

    #[test]
    fn the_variable_chooses_over_the_guess_and_a_bad_value_is_an_error() {
        let vars = env(&[
            ("AWS_REGION", "cn-north-1"),
            (TRUST_ROOTS_VARIABLE, "Amazon"),
        ]);
        assert_eq!(TrustRoots::for_env(vars).unwrap(), TrustRoots::Amazon);
        let vars = env(&[
            ("AWS_REGION", "us-east-1"),
            (TRUST_ROOTS_VARIABLE, "system"),
        ]);
        assert_eq!(TrustRoots::for_env(vars).unwrap(), TrustRoots::System);
        let blank = env(&[("AWS_REGION", "us-east-1"), (TRUST_ROOTS_VARIABLE, " ")]);
        assert_eq!(
            TrustRoots::for_env(blank).unwrap(),
            TrustRoots::Amazon,
            "blank is unset"
        );
        let error = TrustRoots::for_env(env(&[(TRUST_ROOTS_VARIABLE, "webpki")])).unwrap_err();
        assert_eq!(error.value, "webpki");
        assert_eq!(
            error.to_string(),
            "SESSION_TLS_ROOTS=\"webpki\": expected \"amazon\" or \"system\""
        );
        match error.into_library_error() {
            crate::Error::InvalidConfig {
                origin,
                value,
                reason,
            } => assert_eq!(
                (origin.as_str(), value.as_str(), reason.as_str()),
                (TRUST_ROOTS_VARIABLE, "webpki", EXPECTED),
                "the library's error names the variable, as SessionStore::from_env returns it"
            ),
            other => panic!("not InvalidConfig: {other:?}"),
        }
    }
}
