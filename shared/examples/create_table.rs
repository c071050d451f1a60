//! Creates the session table the environment describes (`AWS_DYNAMO_DB_SESSION_TABLE_NAME`,
//! `..._TABLE_KEY`, `..._BILLING_MODE`, ...) with the library's own `create_table`: waits
//! until it is active and turns TTL on for `expire_at`. An existing table is fine.

use dynamodb_session_store::Config;
use dynamodb_session_store::table::SessionTable;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::from_env()?;
    let aws = aws_config::load_from_env().await;
    let client = aws_sdk_dynamodb::Client::new(&aws);
    let arn = SessionTable::from_config(&config).create(&client).await?;
    println!("table ready: {arn}");
    Ok(())
}
