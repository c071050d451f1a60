//! The signing secret from AWS Secrets Manager.
//!
//! The template generates the secret; only its ARN is in the environment. The current
//! version signs, and the previous one (staging label `AWSPREVIOUS`, present after a
//! rotation) still verifies, so rotating the secret logs nobody out.

use aws_sdk_secretsmanager::Client;

use crate::StartupError;

/// The variable holding the secret's ARN.
pub const SECRET_ARN_VARIABLE: &str = "AWS_DYNAMO_DB_SESSION_SECRET_ARN";

pub(crate) struct SigningKeys {
    pub(crate) current: String,
    pub(crate) previous: Vec<String>,
}

pub(crate) async fn fetch(client: &Client, arn: &str) -> Result<SigningKeys, StartupError> {
    let current = version(client, arn, "AWSCURRENT")
        .await?
        .ok_or_else(|| StartupError::Secret("the secret has no current string value".into()))?;
    // Before the first rotation there is no previous version: that is not an error.
    let previous = version(client, arn, "AWSPREVIOUS").await.ok().flatten();
    Ok(SigningKeys {
        current,
        previous: previous.into_iter().collect(),
    })
}

async fn version(client: &Client, arn: &str, stage: &str) -> Result<Option<String>, StartupError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage(stage)
        .send()
        .await
        .map_err(|e| StartupError::Secret(Box::new(aws_sdk_secretsmanager::Error::from(e))))?;
    Ok(output.secret_string)
}
