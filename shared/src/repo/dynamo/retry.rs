//! What may be tried again, and what an error means. DynamoDB errors are classified once here:
//! "try again later" ones become a 503 ([`RepoError::Unavailable`]), anything else a 500; and
//! each single-item write says whether the SDK may resend it ([`Resend`]).

use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::interceptors::context::InterceptorContext;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use uuid::Uuid;

use crate::repo::RepoError;

/// How often a transaction (or a batch, or a counter's race) that lost to a concurrent write is
/// tried again before the request gives up with a 503. Conflicts clear in milliseconds.
pub(super) const ATTEMPTS: u32 = 8;

/// A short, jittered pause before attempt `attempt + 1`.
pub(super) async fn backoff(attempt: u32) {
    // Jitter from the random bits of a v4 UUID keeps racing requests from retrying in lockstep.
    let jitter = (Uuid::new_v4().as_u128() % 20) as u64;
    tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt) + jitter)).await;
}

/// Error codes with which DynamoDB refused a request without applying it.
const REFUSED_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TransactionConflictException",
];

/// Cancellation reasons of a transaction that wrote nothing and may simply be tried again.
pub(super) const TRANSIENT_CANCELLATIONS: &[&str] =
    &["TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"];

/// Error codes that mean "try again later" rather than "this request is wrong".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "LimitExceededException",
    "TransactionInProgressException",
    "TransactionConflictException",
];

/// How the SDK may resend a single-item write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// A write that must not apply twice (`ADD`, a counter's conditional put): resent only when
    /// DynamoDB refused it. After a timeout, a lost response or a 500 it may have landed, and
    /// sending it again would bump a version or a counter twice; the client gets a 503 instead.
    /// (Transactions need no such care: the SDK gives each an idempotency token.)
    OnlyRefused,
    /// A write that may apply twice (an unconditional delete): the SDK's own retries, and also
    /// after a conflict with a transaction on the same item, which the SDK does not retry.
    Idempotent,
}

#[derive(Debug)]
struct ResendClassifier<E>(Resend, std::marker::PhantomData<fn() -> E>);

impl<E> ClassifyRetry for ResendClassifier<E>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = error.as_operation_error().and_then(|e| e.downcast_ref::<E>()).and_then(|e| e.code());
        match (self.0, code) {
            (_, Some("TransactionConflictException")) => RetryAction::throttling_error(),
            (Resend::OnlyRefused, Some(c)) if REFUSED_CODES.contains(&c) => RetryAction::throttling_error(),
            (Resend::OnlyRefused, _) => RetryAction::RetryForbidden,
            (Resend::Idempotent, _) => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "ResendClassifier"
    }
}

/// The configuration override that makes the SDK resend an operation of error type `E` as
/// `mode` allows.
pub(super) fn resend<E>(mode: Resend) -> aws_sdk_dynamodb::config::Builder
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    aws_sdk_dynamodb::config::Builder::default()
        .retry_classifier(ResendClassifier::<E>(mode, std::marker::PhantomData))
}

/// A failed call as the repository error it means.
/// A conditional single-item write's outcome: `Ok(true)` when it was applied, `Ok(false)` when
/// its condition failed (for the caller, nothing to do), else the error as [`sdk_error`] reads it.
pub(super) fn applied<T, E, R>(op: &str, result: Result<T, SdkError<E, R>>) -> Result<bool, RepoError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(err) => Err(sdk_error(op, err)),
    }
}

pub(super) fn sdk_error<E, R>(op: &str, err: SdkError<E, R>) -> RepoError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let transient = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(_) => err.code().is_some_and(|c| TRANSIENT_CODES.contains(&c)),
        _ => false,
    };
    let message = format!("{op}: {}", DisplayErrorContext(&err));
    if transient { RepoError::Unavailable(message) } else { RepoError::Internal(message) }
}

/// A request that could not be built: a bug.
pub(super) fn build_error(e: impl std::fmt::Display) -> RepoError {
    RepoError::Internal(format!("building a DynamoDB request: {e}"))
}
