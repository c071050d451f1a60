//! Parsers for option values given as text (environment variables, YAML scalars).

use std::time::Duration;

use super::Lifetime;
use crate::error::{Error, Result};

/// The unit a bare integer means for a time option: the gem's unit.
#[derive(Clone, Copy)]
pub(crate) enum TimeUnit {
    Seconds,
    Millis,
}

pub(crate) fn parse_bool(value: &str, origin: &str) -> Result<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::invalid(origin, value, "expected true or false")),
    }
}

pub(super) fn parse_int(value: &str, origin: &str) -> Result<i64> {
    value
        .parse()
        .map_err(|_| Error::invalid(origin, value, "expected an integer"))
}

pub(crate) fn parse_time(value: &str, origin: &str, unit: TimeUnit) -> Result<Duration> {
    if value.starts_with('-') {
        return Err(Error::invalid(origin, value, "a time must not be negative"));
    }
    if let Ok(n) = value.parse::<u64>() {
        return Ok(match unit {
            TimeUnit::Seconds => Duration::from_secs(n),
            TimeUnit::Millis => Duration::from_millis(n),
        });
    }
    humantime::parse_duration(value).map_err(|_| {
        let unit = match unit {
            TimeUnit::Seconds => "seconds",
            TimeUnit::Millis => "milliseconds",
        };
        Error::invalid(
            origin,
            value,
            format!("expected a whole number of {unit} or a value such as 500ms, 90s, 30m"),
        )
    })
}

/// A lifetime in seconds (or suffixed), or `none` for no limit.
pub(crate) fn parse_lifetime(value: &str, origin: &str) -> Result<Lifetime> {
    if value.eq_ignore_ascii_case("none") || value.eq_ignore_ascii_case("unlimited") {
        return Ok(Lifetime::Unlimited);
    }
    parse_time(value, origin, TimeUnit::Seconds)
        .map(Lifetime::After)
        .map_err(|_| {
            Error::invalid(
                origin,
                value,
                "expected a whole number of seconds, a value such as 30m or 7d, or `none`",
            )
        })
}

/// Turns a YAML value into the text form the option parsers take; a list is allowed only
/// for `previous_secret_keys`. Refused values are described, never echoed: a misplaced
/// secret must not reach a startup log.
pub(super) fn yaml_text(
    option: &str,
    value: &serde_yaml_ng::Value,
    origin: &str,
    secret: bool,
) -> Result<String> {
    use serde_yaml_ng::Value;
    let refused = |what: &str, expected: &str| {
        Error::invalid(origin, format!("<{what}, not shown>"), expected.to_owned())
    };
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Sequence(items) if option == "previous_secret_keys" => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(refused("a list item", "expected a list of strings")),
            })
            .collect::<Result<Vec<_>>>()
            .map(|keys| keys.join(",")),
        Value::Sequence(_) => Err(refused(
            "a list",
            "expected a string, a number or a boolean",
        )),
        Value::Mapping(_) => Err(refused("a map", "expected a string, a number or a boolean")),
        Value::Null if secret => Err(refused("an empty value", "expected a string")),
        Value::Null => Err(refused("an empty value", "expected a value")),
        Value::Tagged(_) => Err(refused(
            "a tagged value",
            "expected a string, a number or a boolean",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_read_none_and_durations() {
        assert_eq!(parse_lifetime("none", "x").unwrap(), Lifetime::Unlimited);
        assert_eq!(
            parse_lifetime("90", "x").unwrap(),
            Lifetime::After(Duration::from_secs(90))
        );
        assert_eq!(
            parse_lifetime("7d", "x").unwrap(),
            Lifetime::After(Duration::from_secs(7 * 86_400))
        );
        let err = parse_lifetime("forever", "VAR").unwrap_err().to_string();
        assert!(err.contains("VAR") && err.contains("forever"), "{err}");
    }

    #[test]
    fn refused_yaml_values_are_never_echoed() {
        let list: serde_yaml_ng::Value = serde_yaml_ng::from_str("[hunter2-a, hunter2-b]").unwrap();
        let err = yaml_text("secret_key", &list, "f:secret_key", true).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let map: serde_yaml_ng::Value = serde_yaml_ng::from_str("{k: hunter2}").unwrap();
        let err = yaml_text("table_name", &map, "f:table_name", false).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
