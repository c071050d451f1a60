//! The three sources of configuration — builder, environment, YAML file — each read into a
//! [`Settings`] (every option optional), reconciled on its own, then merged by precedence.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use cookie::SameSite;

use super::layer::{parse_header_name, parse_same_site};
use super::parse::{TimeUnit, parse_bool, parse_int, parse_lifetime, parse_time, yaml_text};
use super::{BillingMode, Concurrency, ENV_PREFIX, LEGACY_ENV_PREFIX, Lifetime, SecretKey};
use crate::error::{Error, Result};

/// Options [`Settings::set`] reads.
const CONFIG_OPTIONS: &[&str] = &[
    "table_name",
    "table_key",
    "secret_key",
    "previous_secret_keys",
    "consistent_read",
    "billing_mode",
    "read_capacity",
    "write_capacity",
    "raise_errors",
    "max_age",
    "max_stale",
    "enable_locking",
    "concurrency",
    "lock_expiry_time",
    "lock_retry_delay",
    "lock_max_wait_time",
    "serializer",
    "config_file",
    "touch_after",
    "seal_data",
    "accept_unsealed",
    "compress_above",
    "cookie_name",
    "cookie_domain",
    "cookie_path",
    "cookie_secure",
    "cookie_http_only",
    "cookie_same_site",
    "persistent_cookie",
    "defer",
    "expire_after",
    "deadline_margin",
    "header_name",
];

/// Options whose values are secrets: never echoed in an error or a log.
const SECRET_OPTIONS: &[&str] = &["secret_key", "previous_secret_keys"];

/// One configuration source: every option optional.
#[derive(Default)]
pub(super) struct Settings {
    pub(super) table_name: Option<String>,
    pub(super) table_key: Option<String>,
    pub(super) secret_key: Option<SecretKey>,
    pub(super) previous_secret_keys: Option<Vec<SecretKey>>,
    pub(super) consistent_read: Option<bool>,
    pub(super) billing_mode: Option<BillingMode>,
    pub(super) read_capacity: Option<i64>,
    pub(super) write_capacity: Option<i64>,
    pub(super) raise_errors: Option<bool>,
    pub(super) max_age: Option<Lifetime>,
    pub(super) max_stale: Option<Lifetime>,
    /// The gem's name for the concurrency setting; folded into `concurrency` by
    /// [`reconciled`](Self::reconciled).
    pub(super) enable_locking: Option<bool>,
    pub(super) concurrency: Option<Concurrency>,
    pub(super) lock_expiry_time: Option<Duration>,
    pub(super) lock_retry_delay: Option<Duration>,
    pub(super) lock_max_wait_time: Option<Duration>,
    pub(super) config_file: Option<PathBuf>,
    pub(super) touch_after: Option<Duration>,
    pub(super) seal_data: Option<bool>,
    pub(super) accept_unsealed: Option<bool>,
    pub(super) compress_above: Option<Option<usize>>,
    pub(super) cookie_name: Option<String>,
    pub(super) cookie_domain: Option<String>,
    pub(super) cookie_path: Option<String>,
    pub(super) cookie_secure: Option<bool>,
    pub(super) cookie_http_only: Option<bool>,
    pub(super) cookie_same_site: Option<SameSite>,
    pub(super) persistent_cookie: Option<bool>,
    pub(super) defer: Option<bool>,
    /// Rack's `max_stale` with a persistent cookie; resolved by the builder.
    pub(super) expire_after: Option<Duration>,
    pub(super) deadline_margin: Option<Duration>,
    pub(super) header_name: Option<http::HeaderName>,
    /// Option name → where its value came from (variable, `file:key`, builder method).
    pub(super) origins: BTreeMap<String, String>,
}

impl Settings {
    /// Every field `None` in `self` takes the value from `lower`.
    pub(super) fn or(self, lower: Settings) -> Settings {
        let mut origins = lower.origins;
        origins.extend(self.origins);
        macro_rules! pick {
            ($($field:ident),*) => { Settings { $($field: self.$field.or(lower.$field)),*, origins } };
        }
        pick!(
            table_name,
            table_key,
            secret_key,
            previous_secret_keys,
            consistent_read,
            billing_mode,
            read_capacity,
            write_capacity,
            raise_errors,
            max_age,
            max_stale,
            enable_locking,
            concurrency,
            lock_expiry_time,
            lock_retry_delay,
            lock_max_wait_time,
            config_file,
            touch_after,
            seal_data,
            accept_unsealed,
            compress_above,
            cookie_name,
            cookie_domain,
            cookie_path,
            cookie_secure,
            cookie_http_only,
            cookie_same_site,
            persistent_cookie,
            defer,
            expire_after,
            deadline_margin,
            header_name
        )
    }

    /// Folds `enable_locking` into `concurrency` within this one source, so that precedence
    /// between sources holds whichever name each uses.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming both when this source sets them to different modes.
    pub(super) fn reconciled(mut self) -> Result<Settings> {
        let Some(locking) = self.enable_locking.take() else {
            return Ok(self);
        };
        let from_locking = if locking {
            Concurrency::Pessimistic
        } else {
            Concurrency::None
        };
        let locking_origin = self
            .origins
            .remove("enable_locking")
            .unwrap_or_else(|| "enable_locking".into());
        match self.concurrency {
            None => {
                self.concurrency = Some(from_locking);
                self.origins.insert("concurrency".into(), locking_origin);
            }
            // `enable_locking: false` only says "not pessimistic".
            Some(mode)
                if mode == from_locking || (!locking && mode != Concurrency::Pessimistic) => {}
            Some(mode) => {
                let origin = self
                    .origins
                    .get("concurrency")
                    .cloned()
                    .unwrap_or_else(|| "concurrency".into());
                return Err(Error::invalid(
                    format!("{origin} and {locking_origin}"),
                    format!("{} and {locking}", format!("{mode:?}").to_lowercase()),
                    "the two name one setting and disagree; set only one of them",
                ));
            }
        }
        Ok(self)
    }

    /// Parses one option given as text. `option` is the lower-case option name; `origin`
    /// names the variable or file key for error messages. Returns `false` for an unknown
    /// option.
    fn set(&mut self, option: &str, raw: &str, origin: &str) -> Result<bool> {
        let value = raw.trim();
        match option {
            "table_name" => self.table_name = Some(value.to_owned()),
            "table_key" => self.table_key = Some(value.to_owned()),
            "secret_key" => self.secret_key = Some(SecretKey::new(value)),
            "previous_secret_keys" => {
                self.previous_secret_keys = Some(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(SecretKey::new)
                        .collect(),
                )
            }
            "consistent_read" => self.consistent_read = Some(parse_bool(value, origin)?),
            "billing_mode" => {
                self.billing_mode = Some(
                    value
                        .parse()
                        .map_err(|reason: String| Error::invalid(origin, value, reason))?,
                )
            }
            "read_capacity" => self.read_capacity = Some(parse_int(value, origin)?),
            "write_capacity" => self.write_capacity = Some(parse_int(value, origin)?),
            "raise_errors" => self.raise_errors = Some(parse_bool(value, origin)?),
            "max_age" => self.max_age = Some(parse_lifetime(value, origin)?),
            "max_stale" => self.max_stale = Some(parse_lifetime(value, origin)?),
            "enable_locking" => self.enable_locking = Some(parse_bool(value, origin)?),
            "concurrency" => {
                self.concurrency = Some(
                    value
                        .parse()
                        .map_err(|reason: String| Error::invalid(origin, value, reason))?,
                )
            }
            "lock_expiry_time" => {
                self.lock_expiry_time = Some(parse_time(value, origin, TimeUnit::Millis)?)
            }
            "lock_retry_delay" => {
                self.lock_retry_delay = Some(parse_time(value, origin, TimeUnit::Millis)?)
            }
            "lock_max_wait_time" => {
                self.lock_max_wait_time = Some(parse_time(value, origin, TimeUnit::Seconds)?)
            }
            "touch_after" => self.touch_after = Some(parse_time(value, origin, TimeUnit::Seconds)?),
            "serializer" => {
                if !value.eq_ignore_ascii_case("json") {
                    return Err(Error::invalid(
                        origin,
                        value,
                        "only `json` can be named here; plug other serializers in with ConfigBuilder::serializer",
                    ));
                }
                // Naming the default changes nothing; only its validity is checked.
            }
            "config_file" => self.config_file = Some(PathBuf::from(value)),
            "seal_data" => self.seal_data = Some(parse_bool(value, origin)?),
            "accept_unsealed" => self.accept_unsealed = Some(parse_bool(value, origin)?),
            "compress_above" => {
                self.compress_above = Some(if value.eq_ignore_ascii_case("none") {
                    None
                } else {
                    Some(parse_int(value, origin).and_then(|n| {
                        usize::try_from(n).map_err(|_| {
                            Error::invalid(origin, value, "expected a byte count or `none`")
                        })
                    })?)
                })
            }
            "cookie_name" => self.cookie_name = Some(value.to_owned()),
            "cookie_domain" => self.cookie_domain = Some(value.to_owned()),
            "cookie_path" => self.cookie_path = Some(value.to_owned()),
            "cookie_secure" => self.cookie_secure = Some(parse_bool(value, origin)?),
            "cookie_http_only" => self.cookie_http_only = Some(parse_bool(value, origin)?),
            "cookie_same_site" => self.cookie_same_site = Some(parse_same_site(value, origin)?),
            "persistent_cookie" => self.persistent_cookie = Some(parse_bool(value, origin)?),
            "defer" => self.defer = Some(parse_bool(value, origin)?),
            "expire_after" => {
                self.expire_after = Some(parse_time(value, origin, TimeUnit::Seconds)?)
            }
            "deadline_margin" => {
                self.deadline_margin = Some(parse_time(value, origin, TimeUnit::Seconds)?)
            }
            "header_name" => self.header_name = Some(parse_header_name(value, origin)?),
            _ => return Ok(false),
        }
        self.origins.insert(option.to_owned(), origin.to_owned());
        Ok(true)
    }

    /// `also_known`: options the caller reads itself under the same prefix (lower-case), so
    /// that they are not reported as typos.
    pub(super) fn from_env(vars: &[(String, String)], also_known: &[String]) -> Result<Settings> {
        static LEGACY_WARNING: Once = Once::new();
        let mut settings = Settings::default();
        // Legacy first, so the current form overwrites it when both are set.
        let mut legacy_names = Vec::new();
        for (prefix, legacy) in [(LEGACY_ENV_PREFIX, true), (ENV_PREFIX, false)] {
            for (name, value) in vars {
                let Some(option) = name.strip_prefix(prefix) else {
                    continue;
                };
                // `AWS_DYNAMO_DB_SESSION_X` also ends with `DYNAMO_DB_SESSION_X`, but
                // strip_prefix only matches at the start, so the two forms never mix.
                let option = option.to_ascii_lowercase();
                if settings.set(&option, value, name)? && legacy {
                    legacy_names.push(name.clone());
                }
            }
        }
        warn_unknown_variables(vars.iter().map(|(name, _)| name.as_str()), also_known);
        if !legacy_names.is_empty() {
            LEGACY_WARNING.call_once(|| {
                tracing::warn!(
                    variables = ?legacy_names,
                    "DYNAMO_DB_SESSION_* environment variables are deprecated; \
                     rename them to AWS_DYNAMO_DB_SESSION_*"
                );
            });
        }
        Ok(settings)
    }

    pub(super) fn from_file(path: &Path) -> Result<Settings> {
        let file_error = |source: Box<dyn std::error::Error + Send + Sync>| Error::ConfigFile {
            path: path.to_owned(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(Box::new(e)))?;
        let map: BTreeMap<String, serde_yaml_ng::Value> = if text.trim().is_empty() {
            BTreeMap::new()
        } else {
            serde_yaml_ng::from_str(&text).map_err(|e| file_error(Box::new(e)))?
        };
        let mut settings = Settings::default();
        for (key, value) in map {
            let origin = format!("{}:{key}", path.display());
            let option = key.trim_start_matches(':').to_ascii_lowercase();
            let secret = SECRET_OPTIONS.contains(&option.as_str());
            let text = yaml_text(&option, &value, &origin, secret)?;
            if option == "config_file" {
                return Err(Error::invalid(
                    origin,
                    text,
                    "a configuration file cannot name another one",
                ));
            }
            if !settings.set(&option, &text, &origin)? {
                // The value is not shown: a misspelt `secret_key` would be a secret.
                return Err(Error::invalid(
                    origin,
                    "<not shown>",
                    format!(
                        "unknown option; did you mean `{}`?",
                        closest_option(&option, &[])
                    ),
                ));
            }
        }
        Ok(settings)
    }
}

/// Warns, once per variable and process, about each `AWS_DYNAMO_DB_SESSION_*` or
/// `DYNAMO_DB_SESSION_*` variable that names neither an option nor one of `also_known`, with
/// the closest valid one. The value is never logged.
fn warn_unknown_variables<'a>(names: impl IntoIterator<Item = &'a str>, also_known: &[String]) {
    static WARNED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
    for name in names {
        let Some(option) = name
            .strip_prefix(ENV_PREFIX)
            .or_else(|| name.strip_prefix(LEGACY_ENV_PREFIX))
        else {
            continue;
        };
        let option = option.to_ascii_lowercase();
        if is_known(&option, also_known) {
            continue;
        }
        let mut warned = WARNED.lock().unwrap_or_else(|e| e.into_inner());
        if warned
            .get_or_insert_with(HashSet::new)
            .insert(name.to_owned())
        {
            let suggestion = format!(
                "{ENV_PREFIX}{}",
                closest_option(&option, also_known).to_uppercase()
            );
            tracing::warn!(
                variable = name,
                did_you_mean = %suggestion,
                "unknown session store variable ignored"
            );
        }
    }
}

fn is_known(option: &str, also_known: &[String]) -> bool {
    CONFIG_OPTIONS.contains(&option) || also_known.iter().any(|known| known == option)
}

/// The known option nearest to `option` by edit distance.
fn closest_option<'a>(option: &str, also_known: &'a [String]) -> &'a str {
    CONFIG_OPTIONS
        .iter()
        .copied()
        .chain(also_known.iter().map(String::as_str))
        .min_by_key(|known| strsim::levenshtein(option, known))
        .unwrap_or("table_name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closest_option_is_named() {
        assert_eq!(closest_option("tabel_name", &[]), "table_name");
        assert_eq!(closest_option("enable_lock", &[]), "enable_locking");
        assert_eq!(closest_option("cookie_samesite", &[]), "cookie_same_site");
        // A caller's own option is known once the caller declares it, and only then.
        let gc = ["gc_segments".to_owned()];
        assert!(is_known("gc_segments", &gc) && !is_known("max_stail", &gc));
        assert!(!is_known("gc_segments", &[]));
        assert_eq!(closest_option("gc_segment", &gc), "gc_segments");
    }

    #[test]
    fn one_source_may_not_disagree_with_itself() {
        let mut settings = Settings::default();
        settings.set("concurrency", "optimistic", "A").unwrap();
        settings.set("enable_locking", "true", "B").unwrap();
        let err = settings.reconciled().err().expect("a conflict");
        let message = err.to_string();
        assert!(message.contains('A') && message.contains('B'), "{message}");

        let mut agreeing = Settings::default();
        agreeing.set("concurrency", "optimistic", "A").unwrap();
        agreeing.set("enable_locking", "false", "B").unwrap();
        let settings = agreeing.reconciled().unwrap();
        assert_eq!(settings.concurrency, Some(Concurrency::Optimistic));
    }
}
