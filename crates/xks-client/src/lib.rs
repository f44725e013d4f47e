//! A client for the AWS KMS External Key Store (XKS) proxy API: what KMS does when it calls
//! a proxy, as a library, for the mock KMS, the conformance tester and anyone testing a
//! proxy.
//!
//! - [`XksClient`]: the four XKS operations (GetHealthStatus, GetKeyMetadata, Encrypt,
//!   Decrypt). Requests are SigV4-signed for service `kms-xks-proxy` by xks-sigv4's
//!   [`Signer`](xks_sigv4::Signer); answers are parsed and validated with xks-protocol and
//!   checked as KMS checks them (ciphertext lengths, the ciphertext data integrity value).
//! - [`Client`]: the transport. HTTPS through rustls (aws-lc-rs), TLS 1.2 and 1.3, trust
//!   roots from the system or a PEM file, an optional client certificate for mTLS,
//!   HTTP/2 or HTTP/1.1 chosen by ALPN, pooled keep-alive connections, and a timeout per
//!   request that covers connecting (250 ms by default, like KMS). Each answer carries what
//!   its connection's TLS handshake negotiated ([`TlsInfo`]).
//! - The raw mode, for conformance testing: [`RawRequest`] is any method, path, headers
//!   and body; sign it as KMS does ([`RawRequest::sign`]) or with any service, region,
//!   time, header list or scope date ([`RawRequest::sign_with`], [`SigV4Params`]), then
//!   change whatever the test needs and [`Client::send`] it; [`RawResponse`] is the
//!   answer as received.
//! - [`Error`]: one enum that tells apart what KMS tells apart (fact sheet §7.4): no TCP
//!   connection, a TLS failure (with rustls's reason), no answer in time, an XKS error
//!   answer, a non-XKS answer (status and a sanitized excerpt), and a 200 answer that
//!   breaks the protocol.
//!
//! # Example
//!
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use xks_client::{Client, ClientConfig, Endpoint, Error, RawRequest, SigV4Params, TrustRoots, XksClient};
//! use xks_protocol::{HealthRequest, Operation, RequestMetadata};
//! use xks_sigv4::{Credential, Signer};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let credential = Credential::from_config(
//!     "AKIAI2SFODNN7EXAMPLE",
//!     "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE",
//! )?;
//! let config = ClientConfig::new(Endpoint::parse("https://xks.example.com")?)
//!     .with_trust(TrustRoots::from_pem_file("ca.pem".as_ref())?);
//! let client = Client::new(config)?;
//! let xks = XksClient::new(client.clone(), "/example/kms/xks/v1", Signer::new(&credential, "us-east-1")?)?;
//!
//! // Typed: GetHealthStatus as KMS's periodic health check sends it.
//! let request = HealthRequest {
//!     request_metadata: RequestMetadata {
//!         kms_operation: "KmsHealthCheck".into(),
//!         kms_request_id: "1124f4d6-db54-4af4-ae30-c55a22a8abcd".into(),
//!         ..RequestMetadata::default()
//!     },
//! };
//! match xks.get_health_status(&request).await {
//!     Ok(answer) => println!("{} key managers, {:?}", answer.body.ekm_fleet_details.len(), answer.exchange.tls()),
//!     Err(Error::Xks(answer)) => println!("XKS error {}", answer.name()),
//!     Err(other) => println!("{}", other.chain()),
//! }
//!
//! // Raw: the same request signed 10 minutes in the past; a proxy must answer 401.
//! let body = serde_json::to_vec(&request)?;
//! let mut raw = RawRequest::post(xks.path_of(&Operation::Health), body);
//! let stale = SystemTime::now() - Duration::from_secs(600);
//! raw.sign_with(client.endpoint(), &SigV4Params::new(&credential, "us-east-1").with_time(stale))?;
//! let answer = client.send(raw).await?;
//! assert_eq!(answer.status(), 401);
//! # Ok(())
//! # }
//! ```
//!
//! # Crate features
//!
//! This crate has no optional features.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

mod config;
mod connector;
mod endpoint;
mod error;
mod raw;
mod sigv4;
mod time;
mod tls_info;
mod transport;
mod xks;

pub use config::{
    ClientConfig, ClientIdentity, DEFAULT_MAX_ANSWER_BYTES, DEFAULT_TIMEOUT, HttpVersions,
    TlsVersions, TrustRoots,
};
pub use endpoint::{Endpoint, Scheme};
pub use error::{
    ConfigError, ConnectError, ConnectErrorKind, Error, HttpError, NotXksAnswer, ProtocolViolation,
    SignFailure, TimeoutError, TlsError, TlsErrorKind, XksErrorAnswer,
};
pub use raw::{RawRequest, RawResponse};
pub use sigv4::{SigV4Params, SignedHeaders};
pub use tls_info::{CertificateSummary, TlsInfo};
pub use transport::Client;
pub use xks::{Answer, Exchange, XksClient};

/// Formats a Unix time (seconds) as RFC 3339 UTC, e.g. `2030-01-01T00:00:00Z`.
pub fn format_utc(unix_seconds: i64) -> String {
    time::format_rfc3339(unix_seconds)
}
