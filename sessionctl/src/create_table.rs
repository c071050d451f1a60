//! `sessionctl create-table`: the library's `SessionTable::create`.

use dynamodb_session_store::attributes::USER_INDEX;
use dynamodb_session_store::config::BillingMode;
use dynamodb_session_store::table::{Creation, SessionTable};
use serde_json::json;

use crate::context::Context;
use crate::output::Failure;

/// Create the session table, or finish preparing an existing one
///
/// A new table gets the configured hash key (type S), the billing mode, TTL on expire_at
/// and the user index (user_hash-index); the command waits until it is active. An existing
/// table is left as it is (its billing mode and capacity are not changed), except that TTL
/// on expire_at and the user index are added if missing.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `pay-per-request` (on-demand) or `provisioned` [default:
    /// AWS_DYNAMO_DB_SESSION_BILLING_MODE, else pay-per-request]
    #[arg(long, value_name = "MODE", value_parser = parse_billing_mode)]
    billing_mode: Option<BillingMode>,
    /// Read capacity units of a provisioned table [default:
    /// AWS_DYNAMO_DB_SESSION_READ_CAPACITY, else 10]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    read_capacity: Option<i64>,
    /// Write capacity units of a provisioned table [default:
    /// AWS_DYNAMO_DB_SESSION_WRITE_CAPACITY, else 5]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i64).range(1..))]
    write_capacity: Option<i64>,
}

fn parse_billing_mode(text: &str) -> Result<BillingMode, String> {
    text.parse()
}

pub async fn run(context: &Context, args: Args) -> Result<(), Failure> {
    let config = context.config(|mut b| {
        if let Some(mode) = args.billing_mode {
            b = b.billing_mode(mode);
        }
        if let Some(read) = args.read_capacity {
            b = b.read_capacity(read);
        }
        if let Some(write) = args.write_capacity {
            b = b.write_capacity(write);
        }
        b
    })?;
    if config.billing_mode == BillingMode::PayPerRequest
        && (args.read_capacity.is_some() || args.write_capacity.is_some())
    {
        return Err(Failure::Usage(
            "--read-capacity and --write-capacity need --billing-mode provisioned".into(),
        ));
    }
    let client = context.client().await?;
    let table = SessionTable::from_config(&config);
    let creation = table.create_if_missing(&client).await?;
    context.output.note(&match creation {
        Creation::Created => format!(
            "sessionctl: creating table {}; waiting until it is active",
            table.name
        ),
        Creation::AlreadyExists => format!(
            "sessionctl: table {} exists; checking TTL and the user index",
            table.name
        ),
    });
    let arn = table.prepare(&client).await?;
    let created = creation == Creation::Created;
    let mode = match table.billing_mode {
        BillingMode::PayPerRequest => "PAY_PER_REQUEST".to_owned(),
        BillingMode::Provisioned => format!(
            "PROVISIONED, {} RCU / {} WCU",
            table.read_capacity, table.write_capacity
        ),
    };
    context.output.result(
        || {
            if created {
                format!(
                    "created table {} ({mode}): key {}, TTL on {}, user index {USER_INDEX}\n{arn}",
                    table.name, table.key, table.ttl_attribute
                )
            } else {
                format!(
                    "table {} already exists: left as it is (billing unchanged), TTL on {} \
                     and user index {USER_INDEX} ensured\n{arn}",
                    table.name, table.ttl_attribute
                )
            }
        },
        || {
            json!({
                "table": table.name,
                "arn": arn,
                "created": created,
                "key": table.key,
                "billing_mode": table.billing_mode.as_str(),
                "ttl_attribute": table.ttl_attribute,
                "user_index": USER_INDEX,
            })
        },
    );
    Ok(())
}
