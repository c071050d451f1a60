//! Secrets Manager on the local moto server (it serves every AWS service at one endpoint),
//! and an interceptor that counts `GetSecretValue` calls by staging label and can answer
//! `AccessDeniedException` for chosen labels, as IAM would — moto does not model denials.

use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_secretsmanager::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_secretsmanager::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
    SharedCredentialsProvider,
};
use aws_sdk_secretsmanager::error::BoxError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueInput;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use crate::{Endpoint, endpoint};

/// The shared AWS configuration for the local moto server, or `None` when the suite runs
/// against another endpoint (which may not serve Secrets Manager).
pub fn moto_sdk_config() -> Option<SdkConfig> {
    let Endpoint::Moto(url) = endpoint() else {
        return None;
    };
    Some(
        SdkConfig::builder()
            .endpoint_url(url)
            .region(Region::new("us-east-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "test", "test", None, None, "tests",
            )))
            .behavior_version(BehaviorVersion::latest())
            .build(),
    )
}

/// A Secrets Manager client with session-api's policy and `calls` installed.
pub fn instrumented_client(aws: &SdkConfig, calls: &SecretCalls) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::from_conf(
        session_api::secrets_manager_policy(aws.into())
            .interceptor(calls.clone())
            .build(),
    )
}

#[derive(Debug, Default)]
struct State {
    stages: Vec<String>,
    denied: Vec<String>,
}

/// Counts `GetSecretValue` calls by staging label (once per call, not per retry), and
/// answers `AccessDeniedException` — HTTP 400 with the message naming the secret, as AWS
/// does — for the labels given to [`deny`](Self::deny).
#[derive(Debug, Clone, Default)]
pub struct SecretCalls(Arc<Mutex<State>>);

impl SecretCalls {
    /// The labels read since the last `take`, sorted.
    pub fn take(&self) -> Vec<String> {
        let mut stages = std::mem::take(&mut self.0.lock().unwrap().stages);
        stages.sort();
        stages
    }

    /// Denies reads of these labels from now on (replacing the previous list).
    pub fn deny(&self, stages: &[&str]) {
        self.0.lock().unwrap().denied = stages.iter().map(|s| (*s).to_owned()).collect();
    }
}

/// Marks a call to be denied, between the interceptor's two hooks.
#[derive(Debug, Clone)]
struct Denied(String);

impl Storable for Denied {
    type Storer = StoreReplace<Self>;
}

impl Intercept for SecretCalls {
    fn name(&self) -> &'static str {
        "SecretCalls"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(input) = context.input().downcast_ref::<GetSecretValueInput>() else {
            return Ok(());
        };
        let stage = input.version_stage().unwrap_or("AWSCURRENT").to_owned();
        let mut state = self.0.lock().unwrap();
        if state.denied.contains(&stage) {
            let secret = input.secret_id().unwrap_or_default().to_owned();
            cfg.interceptor_state().store_put(Denied(secret));
        }
        state.stages.push(stage);
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(Denied(secret)) = cfg.load::<Denied>() else {
            return Ok(());
        };
        let body = serde_json::json!({
            "__type": "AccessDeniedException",
            "message": format!(
                "User: arn:aws:sts::123456789012:assumed-role/session-api/fn is not authorized \
                 to perform: secretsmanager:GetSecretValue on resource: {secret} because no \
                 identity-based policy allows the secretsmanager:GetSecretValue action"
            ),
        })
        .to_string();
        let response = context.response_mut();
        *response.status_mut() = 400u16.try_into()?;
        let headers = response.headers_mut();
        headers.insert("content-type", "application/x-amz-json-1.1");
        headers.insert("content-length", body.len().to_string());
        headers.insert("x-amzn-errortype", "AccessDeniedException");
        *response.body_mut() = body.into();
        Ok(())
    }
}
