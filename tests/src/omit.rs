//! A DynamoDB-compatible server that does not return the old item on a failed condition:
//! an interceptor that strips `Item` from every `ConditionalCheckFailedException` and every
//! transaction cancellation reason, as servers without `ReturnValuesOnConditionCheckFailure`
//! answer. The store must then find out by reading, never assume the session is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextMut;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_smithy_runtime_api::client::interceptors::context::Error as TypeErasedError;
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;

/// Strips the old item from conditional-check failures; counts how many it stripped.
#[derive(Debug, Clone, Default)]
pub struct OmitOldItems(Arc<AtomicUsize>);

impl OmitOldItems {
    /// Failures whose old item was stripped so far.
    pub fn stripped(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    fn strip(&self, error: &TypeErasedError) -> Option<TypeErasedError> {
        let stripped = if let Some(UpdateItemError::ConditionalCheckFailedException(e)) =
            error.downcast_ref::<UpdateItemError>()
        {
            let mut e = e.clone();
            e.item.take()?;
            TypeErasedError::erase(UpdateItemError::ConditionalCheckFailedException(e))
        } else if let Some(DeleteItemError::ConditionalCheckFailedException(e)) =
            error.downcast_ref::<DeleteItemError>()
        {
            let mut e = e.clone();
            e.item.take()?;
            TypeErasedError::erase(DeleteItemError::ConditionalCheckFailedException(e))
        } else if let Some(TransactWriteItemsError::TransactionCanceledException(e)) =
            error.downcast_ref::<TransactWriteItemsError>()
        {
            let mut e = e.clone();
            let reasons = e.cancellation_reasons.as_mut()?;
            if reasons.iter().all(|r| r.item.is_none()) {
                return None;
            }
            for reason in reasons {
                reason.item = None;
            }
            TypeErasedError::erase(TransactWriteItemsError::TransactionCanceledException(e))
        } else {
            return None;
        };
        self.0.fetch_add(1, Ordering::SeqCst);
        Some(stripped)
    }
}

impl Intercept for OmitOldItems {
    fn name(&self) -> &'static str {
        "OmitOldItems"
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Err(error)) = context.output_or_error_mut() {
            let replacement = error.as_operation_error().and_then(|e| self.strip(e));
            if let Some(replacement) = replacement {
                *error = OrchestratorError::operation(replacement);
            }
        }
        Ok(())
    }
}
