//! The failure classes the host must tell apart, and the one place that maps errors to them.

use thiserror::Error;
use vm_status::FailureClass;

/// Errors that mean something specific to the host. Everything else is an `anyhow` error and
/// reported as `MICRODROID_UNKNOWN_RUNTIME_ERROR|<detail>`.
#[derive(Debug, Error)]
pub enum MicrodroidError {
    #[error("Cannot connect to virtualization service: {0}")]
    FailedToConnectToVirtualizationService(String),
    #[error("Payload has changed: {0}")]
    PayloadChanged(String),
    #[error("Payload verification has failed: {0}")]
    PayloadVerificationFailed(String),
    #[error("Payload config is invalid: {0}")]
    PayloadInvalidConfig(String),
}

/// Maps an error chain to its failure class: the first `MicrodroidError` in the chain decides.
pub fn failure_class(err: &anyhow::Error) -> FailureClass {
    match err
        .chain()
        .find_map(|e| e.downcast_ref::<MicrodroidError>())
    {
        Some(MicrodroidError::FailedToConnectToVirtualizationService(_)) => {
            FailureClass::FailedToConnectToVirtualizationService
        }
        Some(MicrodroidError::PayloadChanged(_)) => FailureClass::PayloadChanged,
        Some(MicrodroidError::PayloadVerificationFailed(_)) => {
            FailureClass::PayloadVerificationFailed
        }
        Some(MicrodroidError::PayloadInvalidConfig(_)) => FailureClass::PayloadInvalidConfig,
        None => FailureClass::UnknownRuntimeError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn classifies_through_context() {
        let err = anyhow::Error::from(MicrodroidError::PayloadInvalidConfig("x".into()))
            .context("loading");
        assert_eq!(failure_class(&err), FailureClass::PayloadInvalidConfig);
        let err: anyhow::Error = Err::<(), _>(std::io::Error::other("disk"))
            .context("reading")
            .unwrap_err();
        assert_eq!(failure_class(&err), FailureClass::UnknownRuntimeError);
    }
}
