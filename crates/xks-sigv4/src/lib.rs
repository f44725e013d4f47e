//! AWS Signature Version 4 for the AWS KMS External Key Store (XKS) proxy API: server-side
//! verification, a credential store with rotation, and client-side signing.
//!
//! KMS authenticates every call to an XKS proxy with SigV4 (`AWS4-HMAC-SHA256`) for the
//! service `kms-xks-proxy`, using an access key id and secret that the key store
//! administrator configured in both KMS and the proxy. This crate provides:
//!
//! - [`Verifier`]: checks a received request (a borrowed [`SignedRequest`] view, HTTP/1.1 or
//!   HTTP/2) against a [`CredentialStore`] and returns who signed it ([`Authenticated`]) or a
//!   [`VerifyError`]. It is a from-scratch implementation with `hmac` and `sha2` that caches
//!   derived signing keys, cross-tested against aws-sigv4's signer.
//! - [`Credential`], [`AccessKeyId`], [`SecretAccessKey`] and [`CredentialStore`]: the KMS
//!   credential formats, checked on construction; secrets are wiped on drop and never
//!   printed.
//! - [`Signer`]: signs requests for our own clients, built on aws-sigv4.
//! - [`parse_authorization`]: the `Authorization` header parser, public for fuzzing.
//!
//! The verifier mirrors aws-sigv4's structure: each step of the SigV4 pipeline (parse the
//! header, build the canonical request, the string to sign, the signing key, the signature)
//! is a separate function, tested on its own against the XKS spec's example and against
//! aws-sigv4.
//!
//! **Conformance:** every verification failure maps to the XKS error
//! `AuthenticationFailedException`, HTTP 401 (XKS proxy API fact sheet §7.2, §8.2). That
//! mapping belongs to the server crate; this crate does not depend on the wire types.
//!
//! # Example
//!
//! Sign a request as a client would, then verify it as the proxy would. The request goes
//! over HTTP/2 here, so it has no `Host` header and the verifier takes the host from the URI
//! authority.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use xks_sigv4::{Credential, CredentialStore, FixedClock, RegionPolicy, SignedRequest, Signer, Verifier};
//!
//! let credential = Credential::from_config(
//!     "AKIAI2SFODNN7EXAMPLE",
//!     "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE",
//! )?
//! .with_label("kms-2023");
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_672_531_200); // 2023-01-01T00:00:00Z
//!
//! // Client side: sign.
//! let body = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
//! let mut request = http::Request::post("https://xks.example.com/example/prefix/kms/xks/v1/health")
//!     .header("content-type", "application/json")
//!     .body(body.to_vec())?;
//! Signer::new(&credential, "us-east-1")?.sign_request(&mut request, now)?;
//!
//! // Server side: verify, with the clock injected.
//! let verifier = Verifier::new(CredentialStore::new([credential])?)
//!     .with_region_policy(RegionPolicy::allow_list(["us-east-1"]))
//!     .with_clock(FixedClock::new(now + Duration::from_secs(2)));
//! let (parts, body) = request.into_parts();
//! let who = verifier.verify(&SignedRequest::from_parts(&parts, &body))?;
//! assert_eq!(who.access_key_id().as_str(), "AKIAI2SFODNN7EXAMPLE");
//! assert_eq!(who.region(), "us-east-1");
//! assert_eq!(who.credential_label(), "kms-2023");
//!
//! // A changed body fails, with a kind for the log.
//! let err = verifier.verify(&SignedRequest::from_parts(&parts, b"{}")).unwrap_err();
//! assert_eq!(err.kind().as_str(), "signature_mismatch");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Crate features
//!
//! None.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod authorization;
mod cache;
mod canonical;
mod clock;
mod credentials;
mod date;
mod error;
mod request;
mod signer;
mod v4;
mod verifier;

pub use authorization::{ParsedAuthorization, parse_authorization};
pub use clock::{Clock, FixedClock, SystemClock};
pub use credentials::{AccessKeyId, Credential, CredentialStore, SecretAccessKey};
pub use error::{
    CredentialError, CredentialErrorKind, SignError, SignErrorKind, VerifyError, VerifyErrorKind,
};
pub use request::SignedRequest;
pub use signer::{OutgoingRequest, SignatureHeaders, SignedHeaderSet, Signer};
pub use verifier::{
    Authenticated, DEFAULT_MAX_CLOCK_SKEW, RegionPolicy, SigningKeyCaching, UriPathNormalization,
    Verifier,
};

/// The SigV4 service name of the XKS proxy API.
pub const SERVICE: &str = "kms-xks-proxy";

/// The only signing algorithm XKS uses.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last part of every SigV4 credential scope.
pub(crate) const SCOPE_TERMINATOR: &str = "aws4_request";

/// The header carrying the request time, lower-case.
pub(crate) const X_AMZ_DATE: &str = "x-amz-date";
