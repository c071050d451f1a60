//! `sessionctl`: the operator's command line for a DynamoDB session table.
//!
//! Configured exactly like the library (`AWS_DYNAMO_DB_SESSION_*`, `--config-file`, flags for
//! the common options; flags win over the environment, which wins over the file), with the
//! standard AWS endpoint, region, credential and profile resolution. One module per command,
//! plus `context` (configuration and the client), `output` (text, JSON, errors and exit
//! codes) and `progress` (the collector's progress bar or log lines). When a session is dead
//! or locked is the library's rule (`StoredItem::ends_at`, `is_expired`, `is_locked`).
//!
//! Exit codes: 0 success, 1 failure, 2 usage, 130 interrupted (Ctrl-C; progress is kept).

mod context;
mod create_table;
mod delete_table;
mod gc;
mod inspect;
mod output;
mod progress;
mod revoke;
mod stats;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::context::{Context, GlobalArgs};
use crate::output::Failure;

/// Operate a DynamoDB session table of dynamodb-session-store: create and delete it, collect
/// its garbage, count its sessions, inspect and revoke sessions.
///
/// Configuration is the library's: AWS_DYNAMO_DB_SESSION_* variables (TABLE_NAME, TABLE_KEY,
/// SECRET_KEY, PREVIOUS_SECRET_KEYS, MAX_AGE, MAX_STALE, CONFIG_FILE, ...), a YAML file, and
/// the flags below, which win over both. The DynamoDB endpoint, region, credentials and
/// profile come from the standard AWS configuration (AWS_REGION, AWS_PROFILE,
/// AWS_ENDPOINT_URL_DYNAMODB, ~/.aws/config, ...) or from --region, --profile and
/// --endpoint-url.
///
/// Exit codes: 0 success, 1 failure, 2 usage error, 130 interrupted by Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "sessionctl", version, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The commands; each one's help is its `Args` doc comment.
#[derive(Debug, Subcommand)]
enum Command {
    CreateTable(create_table::Args),
    DeleteTable(delete_table::Args),
    Gc(gc::Args),
    Stats(stats::Args),
    Inspect(inspect::Args),
    Revoke(revoke::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return output::usage_error(&error),
    };
    init_logs(cli.global.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return Failure::Failed(format!("cannot start the async runtime: {e}")).exit();
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.exit(),
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let context = Context::new(cli.global)?;
    match cli.command {
        Command::CreateTable(args) => create_table::run(&context, args).await,
        Command::DeleteTable(args) => delete_table::run(&context, args).await,
        Command::Gc(args) => gc::run(&context, args).await,
        Command::Stats(args) => stats::run(&context, args).await,
        Command::Inspect(args) => inspect::run(&context, args).await,
        Command::Revoke(args) => revoke::run(&context, args).await,
    }
}

/// The library's and the SDK's logs on stderr: warnings by default, `-v` info, `-vv` debug;
/// `RUST_LOG` overrides. Colours only on a terminal. By default the AWS configuration loader's
/// warnings are left out (without a region it warns, in several long lines, that the EC2
/// metadata service had none; `sessionctl` says what to set in one line instead).
fn init_logs(verbose: u8) {
    let default = match verbose {
        0 => "warn,aws_config=error",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_has_help() {
        let mut cli = Cli::command();
        for command in cli.get_subcommands_mut() {
            let help = command.render_help().to_string();
            assert!(help.contains("Usage: "), "{help}");
            assert!(help.contains("--help"), "{help}");
        }
    }
}
