//! The AWS KMS External Key Store (XKS) proxy API as plain Rust types: request and response
//! bodies with their validation, the twelve error names and the error body, path routing,
//! the GCM AAD composition and the ciphertext data integrity value (CDIV).
//!
//! The crate does no I/O and has no async runtime, so any HTTP stack, key manager or test tool
//! can embed it. Section numbers (§) refer to the project's XKS proxy API fact sheet, which
//! summarizes spec version 1.0.3.
//!
//! # Example
//!
//! A minimal Encrypt handler, from path and body to status and body. The AES-GCM key stands in
//! for a key manager.
//!
//! ```
//! use aes_gcm::{Aes256Gcm, KeyInit, aead::{AeadInOut, Nonce}};
//! use xks_protocol::{
//!     EncryptRequest, EncryptResponse, ErrorName, Limits, Operation, Route, XksError,
//! };
//!
//! fn handle(path: &str, body: &[u8], key: &Aes256Gcm) -> (u16, Vec<u8>) {
//!     match encrypt(path, body, key) {
//!         Ok(body) => (200, body),
//!         Err(error) => (error.http_status(), error.to_json_body()),
//!     }
//! }
//!
//! fn encrypt(path: &str, body: &[u8], key: &Aes256Gcm) -> Result<Vec<u8>, XksError> {
//!     let route = Route::parse(path)?; // InvalidUriPathException
//!     let Operation::Encrypt(_key_id) = route.operation() else {
//!         return Err(XksError::new(ErrorName::UnsupportedOperationException));
//!     };
//!     // ValidationException, or UnsupportedOperationException above the limits.
//!     let request = EncryptRequest::from_json(body, &Limits::default())?;
//!
//!     // A real proxy uses a fresh random IV for every call.
//!     let iv = [7; 12];
//!     let metadata = b"key_version=1".to_vec();
//!     let gcm_aad = request.gcm_aad(&metadata)?;
//!     let mut ciphertext = request.plaintext.as_bytes().to_vec();
//!     let internal = XksError::new(ErrorName::InternalException);
//!     let nonce = Nonce::<Aes256Gcm>::from(iv);
//!     let tag = key
//!         .encrypt_inout_detached(&nonce, &gcm_aad, ciphertext.as_mut_slice().into())
//!         .map_err(|_| internal.clone())?;
//!
//!     let mut response = EncryptResponse {
//!         ciphertext,
//!         ciphertext_metadata: Some(metadata),
//!         initialization_vector: iv.to_vec(),
//!         authentication_tag: tag.into(),
//!         ciphertext_data_integrity_value: None,
//!     };
//!     if request.ciphertext_data_integrity_value_algorithm.is_some() {
//!         let aad = request.additional_authenticated_data.as_deref().unwrap_or_default();
//!         response.ciphertext_data_integrity_value = Some(response.integrity_value(aad));
//!     }
//!     response.validate().map_err(|_| internal.clone())?;
//!     serde_json::to_vec(&response).map_err(|_| internal)
//! }
//!
//! let key = Aes256Gcm::new_from_slice(&[0; 32])?;
//! let body = br#"{
//!     "requestMetadata": {
//!         "awsPrincipalArn": "arn:aws:iam::123456789012:user/Alice",
//!         "kmsKeyArn": "arn:aws:kms:us-east-2:123456789012:/key/1234abcd",
//!         "kmsOperation": "Encrypt",
//!         "kmsRequestId": "4112f4d6-db54-4af4-ae30-c55a22a8dfae"
//!     },
//!     "plaintext": "SGVsbG8gV29ybGQh",
//!     "encryptionAlgorithm": "AES_GCM",
//!     "ciphertextDataIntegrityValueAlgorithm": "SHA_256"
//! }"#;
//!
//! let (status, answer) = handle("/tenant-1/kms/xks/v1/keys/key-1/encrypt", body, &key);
//! assert_eq!(status, 200);
//! let answer = EncryptResponse::from_json(&answer)?;
//! assert_eq!(answer.ciphertext.len(), 12);
//!
//! let (status, answer) = handle("/tenant-1/kms/xks/v2/keys/key-1/encrypt", body, &key);
//! assert_eq!(status, 404);
//! assert!(answer.starts_with(br#"{"errorName":"InvalidUriPathException","errorMessage":"#));
//!
//! let (status, answer) = handle("/kms/xks/v1/keys/key-1/encrypt", b"{}", &key);
//! assert_eq!(status, 400);
//! assert_eq!(XksError::from_json(&answer)?.name(), ErrorName::ValidationException);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Conformance notes
//!
//! Items marked **Conformance** state which spec rule they implement. Choices where the spec
//! leaves room:
//!
//! - Routing comes first and every routing failure is `InvalidUriPathException` (404), also for
//!   malformed key ids (see [`Route`]). A server should verify SigV4 next, and parse the body
//!   only after that (§7.3 ordering).
//! - Body failures are `ValidationException` (400), including missing `requestMetadata` on
//!   GetHealthStatus, as the official test client expects (§12.1). The exception is a
//!   plaintext, ciphertext or AAD above [`Limits`]: `UnsupportedOperationException` (501).
//!   Fields are checked in a fixed order and the first failure is answered. Unknown
//!   `kmsOperation` values are never an error (§2.2).
//! - Wrong IV, tag or metadata lengths and bad Base64 are `ValidationException`, never
//!   `InvalidCiphertextException`; the latter is left for failed authentication (§7.3).
//! - Unknown fields are ignored, `null` is absent, duplicate keys are rejected, and Base64 is
//!   strict padded standard Base64 (§9.7).
//! - Plaintext lives in [`Plaintext`], zeroized on drop and never printed (§9.2).
//!
//! # Crate features
//!
//! This crate has no optional features.

#![cfg_attr(docsrs, feature(doc_cfg))]

#[macro_use]
mod macros;

mod error;
mod gcm;
mod key_id;
mod limits;
mod plaintext;
mod request;
mod response;
mod route;
mod wire;

pub use error::{Error, ErrorMessage, ErrorName, XksError};
pub use gcm::{
    AadError, ciphertext_data_integrity_value, ciphertext_data_integrity_value_base64,
    compose_gcm_aad, compose_gcm_aad_into,
};
pub use key_id::{KeyId, KeyIdError};
pub use limits::{
    AUTHENTICATION_TAG_LEN, CDIV_LEN, IV_LENS, Limits, LimitsError, MAX_CIPHERTEXT_METADATA_LEN,
};
pub use plaintext::Plaintext;
pub use request::{
    CdivAlgorithm, DecryptRequest, EncryptRequest, EncryptionAlgorithm, HealthRequest,
    MetadataRequest, RequestMetadata,
};
pub use response::{
    DecryptResponse, EkmFleetDetail, EncryptResponse, HealthResponse, HealthStatus, KeySpec,
    KeyStatus, KeyUsage, MetadataResponse, ResponseError,
};
pub use route::{Operation, OperationKind, Route, RouteError};
