//! `xks-mock-kms`: plays AWS KMS against any XKS proxy, and loads it.
//!
//! The binary is a thin wrapper around this library, which tests drive directly:
//!
//! - [`MockKms`]: KMS's side of an external key store. `CreateCustomKeyStore` and
//!   `ConnectCustomKeyStore` (KMS's parameter rules, the TLS session reported,
//!   GetHealthStatus with every field checked), `CreateKey` (GetKeyMetadata with KMS's
//!   acceptance rule), and `Encrypt`, `Decrypt`, `GenerateDataKey`, `ReEncrypt` with KMS's
//!   double encryption ([`envelope`]): an internal layer under the mock's own key, then
//!   XKS Encrypt with realistic `requestMetadata` and the ciphertext data integrity value
//!   requested and checked.
//! - [`diagnosis`]: how KMS reports a failed call, the fact sheet's §7.4 table as one
//!   function: the KMS exception and the connection error code (`XKS_PROXY_TIMED_OUT`,
//!   `XKS_PROXY_INVALID_RESPONSE`, `INVALID_CREDENTIALS`, ...).
//! - [`bench`](mod@bench): a closed- and open-loop load generator with HDR latency percentiles,
//!   errors by XKS error name, and CPU time per request of the client and the proxy.
//!
//! Every call is bounded by KMS's 250 ms timeout (configurable), so a wrong endpoint, an
//! unreachable host or a proxy that never answers gives a diagnosis, never a hang.
//!
//! # Example
//!
//! ```
//! use xks_mock_kms::diagnosis::{KmsApi, diagnose};
//!
//! // What KMS's ConnectCustomKeyStore reports when the proxy cannot be reached in time:
//! let timeout = xks_client::Error::Timeout(
//!     # /*
//!     ...
//!     # */ timeout_error(),
//! );
//! let d = diagnose(KmsApi::ConnectCustomKeyStore, &timeout);
//! assert_eq!(d.exception, "XksProxyUriUnreachableException");
//! assert_eq!(d.connection_error_code, Some("XKS_PROXY_TIMED_OUT"));
//!
//! // The same failure during Encrypt is a KMSInvalidStateException.
//! assert_eq!(diagnose(KmsApi::Encrypt, &timeout).exception, "KMSInvalidStateException");
//! # fn timeout_error() -> xks_client::TimeoutError {
//! #     // A real timeout: a request to a port that accepts and never answers.
//! #     let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! #     rt.block_on(async {
//! #         let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! #         let addr = listener.local_addr().unwrap();
//! #         tokio::spawn(async move { let _held = listener.accept().await; std::future::pending::<()>().await });
//! #         let config = xks_client::ClientConfig::new(xks_client::Endpoint::parse("http://localhost").unwrap())
//! #             .with_connect_to(addr)
//! #             .with_timeout(std::time::Duration::from_millis(50));
//! #         let client = xks_client::Client::new(config).unwrap();
//! #         match client.send(xks_client::RawRequest::post("/kms/xks/v1/health", "{}")).await {
//! #             Err(xks_client::Error::Timeout(t)) => t,
//! #             other => panic!("{other:?}"),
//! #         }
//! #     })
//! # }
//! ```

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod app;
pub mod bench;
pub mod cli;
pub mod diagnosis;
pub mod envelope;
pub mod kms;
pub mod settings;

pub use diagnosis::Diagnosis;
pub use kms::MockKms;
pub use settings::Settings;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The command line, the profile or a local file is wrong (exit status 64).
    #[error("invalid settings")]
    Usage(#[source] UsageError),
    /// KMS reports an error (exit status 1).
    #[error("the KMS operation failed")]
    Kms(#[source] Box<Diagnosis>),
}

/// A usage problem, in words.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

impl Error {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self::Usage(UsageError(message.into()))
    }

    /// The diagnosis, if KMS reported an error.
    pub fn diagnosis(&self) -> Option<&Diagnosis> {
        match self {
            Self::Kms(d) => Some(d),
            Self::Usage(_) => None,
        }
    }
}
