//! Results as text or JSON, errors as one line, and the exit codes.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use dynamodb_session_store::{Error, ops};

/// Where results go: text for people (unless `--quiet`), or JSON for scripts.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

impl Output {
    /// Prints the result: `json` with `--json` (even with `--quiet`), else `text` unless
    /// `--quiet`.
    pub fn result(&self, text: impl FnOnce() -> String, json: impl FnOnce() -> serde_json::Value) {
        if self.json {
            let value = json();
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values serialize")
            );
        } else if !self.quiet {
            let text = text();
            println!("{}", text.trim_end());
        }
    }

    /// Whether progress and notes may go to standard error.
    pub fn chatty(&self) -> bool {
        !self.quiet
    }

    /// A note on standard error (progress, what is being waited for), unless `--quiet`.
    pub fn note(&self, text: &str) {
        if self.chatty() {
            eprintln!("{text}");
        }
    }
}

/// Why a command did not succeed, and so its exit code.
#[derive(Debug)]
pub enum Failure {
    /// Exit 2: the command line cannot be used as given.
    Usage(String),
    /// Exit 1: the command failed.
    Failed(String),
    /// Exit 130: stopped by Ctrl-C; what was done is kept.
    Interrupted(String),
}

impl Failure {
    /// Prints the error in one line on standard error and gives the exit code.
    pub fn exit(self) -> ExitCode {
        let (message, code) = match self {
            Failure::Usage(message) => (message, 2),
            Failure::Failed(message) => (message, 1),
            Failure::Interrupted(message) => (message, 130),
        };
        let kind = if code == 130 { "interrupted" } else { "error" };
        eprintln!("sessionctl: {kind}: {}", one_line(&message));
        ExitCode::from(code)
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Failed(describe(&error))
    }
}

/// The library's error with what to do about it, in one line.
pub fn describe(error: &Error) -> String {
    match error {
        Error::MissingSecretKey => "missing secret key: set AWS_DYNAMO_DB_SESSION_SECRET_KEY, \
             secret_key in the configuration file, or pass --secret-key-file"
            .into(),
        Error::TableNotFound { table, .. } => table_not_found(table),
        Error::UserIndexMissing { table } => format!(
            "table {table:?} has no user index (user_hash-index): run `sessionctl \
             create-table` to add it to the existing table"
        ),
        other => chain(other),
    }
}

pub fn table_not_found(table: &str) -> String {
    format!(
        "table {table:?} does not exist: create it with `sessionctl create-table`, or name \
         another with --table-name or AWS_DYNAMO_DB_SESSION_TABLE_NAME"
    )
}

/// A failed SDK call on `table`, classified by the library and described as its errors are.
pub fn sdk_failure<E, R>(table: &str, error: SdkError<E, R>) -> Failure
where
    aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
{
    Failure::from(ops::sdk_error(table, error))
}

/// An error and its sources, joined with `: `, repeats dropped.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A command-line error: help and version as clap prints them (exit 0), anything else as
/// one line (exit 2).
pub fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(2)
        }
        _ => {
            // The message is the first paragraph (usage and tips follow a blank line).
            let rendered = error.render().to_string();
            let message: Vec<&str> = rendered
                .trim_start()
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = message.join(" ");
            let message = message.trim_start_matches("error: ");
            Failure::Usage(format!("{message} (see --help)")).exit()
        }
    }
}

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A size in bytes for people, in decimal units: `512 B`, `2.1 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A duration in its two largest units: `45s`, `12m 5s`, `3h 2m`, `2d 4h`.
pub fn span(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    if seconds == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    let mut rest = seconds;
    for (size, name) in UNITS {
        if rest >= size {
            parts.push(format!("{}{name}", rest / size));
            rest %= size;
        }
        if parts.len() == 2 || (!parts.is_empty() && rest == 0) {
            break;
        }
    }
    parts.join(" ")
}

/// A duration in seconds with one decimal: `38.1 s`.
pub fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

/// Unix seconds as RFC 3339 (UTC).
pub fn timestamp(unix: i64) -> String {
    let time = match u64::try_from(unix) {
        Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
        Err(_) => UNIX_EPOCH,
    };
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `t` relative to `now`: `3h 2m ago` or `in 20h 5m`.
pub fn relative(t: i64, now: i64) -> String {
    if t <= now {
        format!("{} ago", span(now.abs_diff(t)))
    } else {
        format!("in {}", span(t.abs_diff(now)))
    }
}

/// A lifetime for people: `7d`, `30m`, or `none`.
pub fn limit(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "none".into(), |d| span(d.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_spans_read_well() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(span(45), "45s");
        assert_eq!(span(725), "12m 5s");
        assert_eq!(span(3 * 3600 + 125), "3h 2m");
        assert_eq!(span(86_400), "1d");
        assert_eq!(span(2 * 86_400 + 4 * 3600 + 59), "2d 4h");
        assert_eq!(relative(100, 160), "1m ago");
        assert_eq!(relative(200, 160), "in 40s");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(2_100_000), "2.1 MB");
    }

    #[test]
    fn errors_are_one_line_with_what_to_fix() {
        let missing = describe(&Error::MissingSecretKey);
        assert!(missing.contains("AWS_DYNAMO_DB_SESSION_SECRET_KEY"));
        assert_eq!(one_line("a\n  b\tc"), "a b c");
        assert!(table_not_found("t").contains("sessionctl create-table"));
    }
}
