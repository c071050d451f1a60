//! What every command needs: the library's configuration (environment, YAML file and flags)
//! and a DynamoDB client from the standard AWS configuration.

use std::path::PathBuf;

use aws_config::{BehaviorVersion, Region};
use aws_sdk_dynamodb::Client;
use dynamodb_session_store::gc::{
    GC_MAX_AGE_VAR, GC_MAX_STALE_VAR, GC_PAGE_SIZE_VAR, GC_RATE_LIMIT_VAR, GC_SEGMENTS_VAR,
};
use dynamodb_session_store::{Config, ConfigBuilder, Error, Lifetime, SessionStore};

use crate::output::{Failure, Output};

/// Flags every command takes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// YAML configuration file [default: AWS_DYNAMO_DB_SESSION_CONFIG_FILE]
    #[arg(long, global = true, value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Session table [default: AWS_DYNAMO_DB_SESSION_TABLE_NAME, else `sessions`]
    #[arg(long, short = 't', global = true, value_name = "NAME")]
    pub table_name: Option<String>,
    /// The table's hash key attribute [default: AWS_DYNAMO_DB_SESSION_TABLE_KEY, else
    /// `session_id`]
    #[arg(long, global = true, value_name = "ATTRIBUTE")]
    pub table_key: Option<String>,
    /// Read the secret key from this file (a trailing newline is ignored) instead of
    /// AWS_DYNAMO_DB_SESSION_SECRET_KEY; secrets on a command line are visible to other users
    #[arg(long, global = true, value_name = "PATH")]
    pub secret_key_file: Option<PathBuf>,
    /// AWS region [default: the standard AWS configuration, e.g. AWS_REGION]
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// AWS profile [default: AWS_PROFILE, else `default`]
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// DynamoDB endpoint, e.g. http://127.0.0.1:8000 for DynamoDB Local [default:
    /// AWS_ENDPOINT_URL_DYNAMODB, else AWS's]
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Print nothing but errors (and --json output): the exit code tells
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Print the result as JSON on standard output, for scripts
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on standard error (-v info, -vv debug); RUST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The session lifetimes, for the commands that judge whether a session is dead.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Lifetimes {
    /// Absolute lifetime since creation: 90 (seconds), 30m, 12h, 7d or `none` [default:
    /// AWS_DYNAMO_DB_SESSION_MAX_AGE, else none]
    #[arg(long, value_name = "DURATION", value_parser = parse_max_age)]
    pub max_age: Option<Lifetime>,
    /// Idle limit since the last write: 90 (seconds), 30m, 12h, 7d or `none` [default:
    /// AWS_DYNAMO_DB_SESSION_MAX_STALE, else 1d]
    #[arg(long, value_name = "DURATION", value_parser = parse_max_stale)]
    pub max_stale: Option<Lifetime>,
}

impl Lifetimes {
    pub fn apply(self, mut builder: ConfigBuilder) -> ConfigBuilder {
        if let Some(max_age) = self.max_age {
            builder = builder.max_age(max_age);
        }
        if let Some(max_stale) = self.max_stale {
            builder = builder.max_stale(max_stale);
        }
        builder
    }
}

/// A lifetime in exactly the forms the library reads (it parses it): whole seconds, a
/// suffixed value (`30m`, `12h`, `7d`, `1h 30m`) or `none`.
fn parse_lifetime(variable: &str, text: &str) -> Result<Lifetime, String> {
    let config = Config::builder()
        .env([(variable, text)])
        .build()
        .map_err(|e| match e {
            Error::InvalidConfig { reason, .. } => reason,
            other => other.to_string(),
        })?;
    let limit = if variable.ends_with("MAX_AGE") {
        config.max_age
    } else {
        config.max_stale
    };
    Ok(limit.map_or(Lifetime::Unlimited, Lifetime::After))
}

fn parse_max_age(text: &str) -> Result<Lifetime, String> {
    parse_lifetime("AWS_DYNAMO_DB_SESSION_MAX_AGE", text)
}

fn parse_max_stale(text: &str) -> Result<Lifetime, String> {
    parse_lifetime("AWS_DYNAMO_DB_SESSION_MAX_STALE", text)
}

/// The global flags, resolved once.
pub struct Context {
    global: GlobalArgs,
    pub output: Output,
}

impl Context {
    pub fn new(global: GlobalArgs) -> Result<Context, Failure> {
        let output = Output {
            json: global.json,
            quiet: global.quiet,
        };
        Ok(Context { global, output })
    }

    /// The library's configuration: builder (these flags and `more`) over the environment
    /// over the file over the defaults.
    pub fn config(
        &self,
        more: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<Config, Failure> {
        let global = &self.global;
        // `sessionctl gc` reads the collector's variables itself.
        let mut builder = Config::builder().env_from_process().also_reads([
            GC_MAX_AGE_VAR,
            GC_MAX_STALE_VAR,
            GC_PAGE_SIZE_VAR,
            GC_RATE_LIMIT_VAR,
            GC_SEGMENTS_VAR,
        ]);
        if let Some(path) = &global.config_file {
            builder = builder.config_file(path.clone());
        }
        if let Some(name) = &global.table_name {
            builder = builder.table_name(name.clone());
        }
        if let Some(key) = &global.table_key {
            builder = builder.table_key(key.clone());
        }
        if let Some(path) = &global.secret_key_file {
            let secret = std::fs::read(path).map_err(|e| {
                Failure::Failed(format!(
                    "cannot read --secret-key-file {}: {e}",
                    path.display()
                ))
            })?;
            let trimmed = secret.trim_ascii_end();
            builder = builder.secret_key(trimmed);
        }
        more(builder).build().map_err(Failure::from)
    }

    /// A DynamoDB client from the standard AWS configuration and the flags.
    pub async fn client(&self) -> Result<Client, Failure> {
        let global = &self.global;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &global.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(profile) = &global.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(url) = &global.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let aws = loader.load().await;
        if aws.region().is_none() {
            return Err(Failure::Failed(
                "no AWS region: set AWS_REGION, pass --region, or give your AWS profile a region"
                    .into(),
            ));
        }
        Ok(Client::new(&aws))
    }

    /// A store on the configured table (which needs the secret key).
    pub async fn store(
        &self,
        more: impl FnOnce(ConfigBuilder) -> ConfigBuilder,
    ) -> Result<SessionStore, Failure> {
        let config = self.config(more)?;
        if config.secret_key.is_none() {
            return Err(Failure::from(Error::MissingSecretKey));
        }
        let client = self.client().await?;
        let mut config = config;
        config.dynamo_db_client = Some(client);
        SessionStore::new(config).map_err(Failure::from)
    }
}

/// A cookie as given on the command line: its value, or `name=value` (with attributes after
/// `;`, as in a `Set-Cookie` header), or `-` to read it from standard input (keeping it out
/// of the shell's history and the process list).
pub fn cookie_value(given: &str) -> Result<String, Failure> {
    let text = if given == "-" {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| {
            Failure::Failed(format!("cannot read the cookie from standard input: {e}"))
        })?;
        line
    } else {
        given.to_owned()
    };
    let pair = text.split(';').next().unwrap_or_default().trim();
    // Signed values are base64url with a dot: never an `=`.
    let value = pair
        .rsplit_once('=')
        .map_or(pair, |(_, value)| value)
        .trim();
    if value.is_empty() {
        return Err(Failure::Usage("the cookie is empty".into()));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_take_the_librarys_forms() {
        assert_eq!(
            parse_max_age("90"),
            Ok(Lifetime::After(Duration::from_secs(90)))
        );
        assert_eq!(
            parse_max_stale("30m"),
            Ok(Lifetime::After(Duration::from_secs(1800)))
        );
        assert_eq!(
            parse_max_age("7d"),
            Ok(Lifetime::After(Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(parse_max_age("none"), Ok(Lifetime::Unlimited));
        assert_eq!(parse_max_stale("none"), Ok(Lifetime::Unlimited));
        assert!(parse_max_age("7x").unwrap_err().contains("30m or 7d"));
        assert!(parse_max_stale("0").unwrap_err().contains("positive"));
        assert!(parse_max_stale("-5").is_err());
    }

    #[test]
    fn cookies_are_taken_bare_or_as_pairs() {
        assert_eq!(cookie_value("abc.def").unwrap(), "abc.def");
        assert_eq!(cookie_value("session=abc.def").unwrap(), "abc.def");
        assert_eq!(
            cookie_value("session=abc.def; Path=/; HttpOnly").unwrap(),
            "abc.def"
        );
        assert!(cookie_value(" ").is_err());
    }
}
