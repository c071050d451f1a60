//! The CloudWatch Embedded Metric Format recorder (feature `emf`), as session-api and
//! session-gc install it: [`metrics_cloudwatch_embedded`]'s collector, configured from the
//! environment, flushed by the function after each invocation.
//!
//! | Variable | Default | Meaning |
//! |---|---|---|
//! | [`METRICS_VAR`] | `on` on Lambda (where `AWS_LAMBDA_FUNCTION_NAME` is set), else `off` | `on` or `off` |
//! | [`NAMESPACE_VAR`] | [`DEFAULT_NAMESPACE`] | the CloudWatch namespace |
//! | [`DIMENSIONS_VAR`] | `FunctionName=<AWS_LAMBDA_FUNCTION_NAME>` | `Name=value` pairs, comma-separated, on every metric; empty for none |

use std::io::Write as _;

use metrics_cloudwatch_embedded::{Builder, Collector};

use super::{OPERATION, STATUS};

/// Turns the EMF records on or off: `on` or `off`.
pub const METRICS_VAR: &str = "SESSION_METRICS";
/// The CloudWatch namespace of the metrics.
pub const NAMESPACE_VAR: &str = "SESSION_METRICS_NAMESPACE";
/// Dimensions on every metric: `Name=value` pairs separated by commas.
pub const DIMENSIONS_VAR: &str = "SESSION_METRICS_DIMENSIONS";
/// The namespace when [`NAMESPACE_VAR`] is unset.
pub const DEFAULT_NAMESPACE: &str = "DynamoDbSessions";

/// A metrics variable that does not parse, or a recorder that cannot be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmfError {
    /// [`METRICS_VAR`] is neither `on` nor `off`.
    #[error("{METRICS_VAR}={value:?}: expected `on` or `off`")]
    BadSwitch {
        /// The variable's value.
        value: String,
    },
    /// [`DIMENSIONS_VAR`] is not a list of `Name=value` pairs, or names a dimension twice or
    /// one the metrics carry themselves (`Operation`, `Status`).
    #[error(
        "{DIMENSIONS_VAR}={value:?}: expected distinct Name=value pairs separated by commas, none named {OPERATION} or {STATUS}"
    )]
    BadDimensions {
        /// The variable's value.
        value: String,
    },
    /// Another recorder is installed already, or the namespace is empty.
    #[error("cannot install the EMF recorder: {0}")]
    Install(String),
}

/// Where the EMF records go: namespace and fixed dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmfSettings {
    /// The CloudWatch namespace.
    pub namespace: String,
    /// Dimensions every metric carries, in order.
    pub dimensions: Vec<(String, String)>,
}

impl EmfSettings {
    /// The settings the variables give, `None` when the records are off.
    ///
    /// # Errors
    ///
    /// [`EmfError::BadSwitch`] and [`EmfError::BadDimensions`] for a variable that does
    /// not parse, naming it and its value.
    pub fn from_env<K, V>(vars: impl IntoIterator<Item = (K, V)>) -> Result<Option<Self>, EmfError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let (mut switch, mut namespace, mut dimensions, mut function) = (None, None, None, None);
        for (key, value) in vars {
            let value = value.as_ref().trim().to_owned();
            match key.as_ref() {
                METRICS_VAR => switch = Some(value),
                NAMESPACE_VAR => namespace = Some(value),
                DIMENSIONS_VAR => dimensions = Some(value),
                "AWS_LAMBDA_FUNCTION_NAME" => function = Some(value),
                _ => {}
            }
        }
        let on = match switch.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("") => function.is_some(),
            Some("on" | "true" | "1") => true,
            Some("off" | "false" | "0") => false,
            Some(_) => {
                return Err(EmfError::BadSwitch {
                    value: switch.unwrap_or_default(),
                });
            }
        };
        if !on {
            return Ok(None);
        }
        let dimensions = match dimensions {
            Some(list) => parse_dimensions(&list)?,
            None => function
                .map(|name| vec![("FunctionName".to_owned(), name)])
                .unwrap_or_default(),
        };
        Ok(Some(EmfSettings {
            namespace: namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned()),
            dimensions,
        }))
    }

    /// Installs the EMF collector as the process's recorder and describes the metrics'
    /// units ([`describe`](super::describe)). Nothing is written until [`Emf::flush`].
    ///
    /// # Errors
    ///
    /// [`EmfError::Install`] when a recorder is installed already.
    pub fn install(self) -> Result<Emf, EmfError> {
        let builder = self.dimensions.into_iter().fold(
            Builder::new().cloudwatch_namespace(self.namespace),
            |builder, (name, value)| builder.with_dimension(name, value),
        );
        let collector = builder
            .init()
            .map_err(|e| EmfError::Install(e.to_string()))?;
        super::describe();
        Ok(Emf(collector))
    }
}

fn parse_dimensions(list: &str) -> Result<Vec<(String, String)>, EmfError> {
    let bad = || EmfError::BadDimensions {
        value: list.to_owned(),
    };
    let mut dimensions: Vec<(String, String)> = Vec::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or_else(bad)?;
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty()
            || value.is_empty()
            || name == OPERATION
            || name == STATUS
            || dimensions.iter().any(|(seen, _)| seen == name)
        {
            return Err(bad());
        }
        dimensions.push((name.to_owned(), value.to_owned()));
    }
    Ok(dimensions)
}

/// The installed EMF collector.
#[derive(Clone, Copy)]
pub struct Emf(&'static Collector);

impl std::fmt::Debug for Emf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emf").finish_non_exhaustive()
    }
}

impl Emf {
    /// Writes what was recorded since the last flush to stdout, one EMF record (a JSON
    /// line) per set of dimensions, and starts counting afresh. The records go out in one
    /// write under stdout's lock, so a log line of a concurrent invocation cannot land
    /// inside one.
    ///
    /// # Errors
    ///
    /// The I/O error of writing to stdout.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut records = Vec::new();
        self.flush_to(&mut records)?;
        if records.is_empty() {
            return Ok(());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&records)?;
        out.flush()
    }

    /// As [`flush`](Self::flush), to `writer`.
    ///
    /// # Errors
    ///
    /// The I/O error of writing to `writer`.
    pub fn flush_to(&self, writer: impl std::io::Write) -> std::io::Result<()> {
        self.0.flush(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_by_default_on_lambda_with_the_function_as_dimension() {
        let lambda = [("AWS_LAMBDA_FUNCTION_NAME", "session-api")];
        let settings = EmfSettings::from_env(lambda).unwrap().unwrap();
        assert_eq!(settings.namespace, DEFAULT_NAMESPACE);
        assert_eq!(
            settings.dimensions,
            [("FunctionName".to_owned(), "session-api".to_owned())]
        );
        assert_eq!(EmfSettings::from_env([("HOME", "/root")]).unwrap(), None);
        let off = [("AWS_LAMBDA_FUNCTION_NAME", "f"), (METRICS_VAR, "off")];
        assert_eq!(EmfSettings::from_env(off).unwrap(), None);
    }

    #[test]
    fn namespace_and_dimensions_come_from_the_variables() {
        let vars = [
            (METRICS_VAR, "on"),
            (NAMESPACE_VAR, "Shop"),
            (DIMENSIONS_VAR, "Service=cart, Stage=prod"),
        ];
        let settings = EmfSettings::from_env(vars).unwrap().unwrap();
        assert_eq!(settings.namespace, "Shop");
        let names: Vec<_> = settings
            .dimensions
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        assert_eq!(names, ["Service=cart", "Stage=prod"]);
        let none = [(METRICS_VAR, "on"), (DIMENSIONS_VAR, "")];
        assert!(
            EmfSettings::from_env(none)
                .unwrap()
                .unwrap()
                .dimensions
                .is_empty()
        );
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = EmfSettings::from_env([(METRICS_VAR, "maybe")]).unwrap_err();
        assert!(
            error.to_string().contains("SESSION_METRICS=\"maybe\""),
            "{error}"
        );
        for bad in [
            "Stage",
            "=x",
            "Stage=",
            "A=1,A=2",
            "Operation=x",
            "Status=1",
        ] {
            let vars = [(METRICS_VAR, "on"), (DIMENSIONS_VAR, bad)];
            let error = EmfSettings::from_env(vars).unwrap_err();
            assert!(
                matches!(error, EmfError::BadDimensions { .. }),
                "{bad}: {error}"
            );
        }
    }
}
