//! Embedding `xks-protocol` alone: a toy XKS endpoint that parses and answers XKS
//! requests with nothing but the protocol crate and `aes-gcm`.
//!
//! It shows the pieces an existing service (an HSM vendor's gateway, a KMS
//! emulator) reuses: route parsing, body validation with limits, the length-prefixed
//! GCM AAD, the CDIV, response and error bodies. There is no HTTP server and no
//! SigV4 here: feed it a path and a body, get a status and a body.
//!
//! Usage: `cargo run -p xks-examples --bin embed_protocol`
//!
//! Example code: unwrap is acceptable here, not in a real service.
#![expect(clippy::unwrap_used, reason = "example code")]

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use xks_protocol::{
    DecryptRequest, DecryptResponse, EkmFleetDetail, EncryptRequest, EncryptResponse, ErrorName,
    HealthRequest, HealthResponse, HealthStatus, KeySpec, KeyStatus, KeyUsage, Limits,
    MetadataRequest, MetadataResponse, Operation, Plaintext, Route, XksError,
};

/// One key, one version: this toy puts the literal version tag in every ciphertext's
/// metadata and refuses any other.
const METADATA: &[u8] = b"toy-v1";

struct ToyEndpoint {
    key_id: &'static str,
    cipher: Aes256Gcm,
    limits: Limits,
}

impl ToyEndpoint {
    /// Answers one request: (HTTP status, JSON body).
    fn answer(&self, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        match self.dispatch(path, body) {
            Ok(json) => (200, json),
            Err(error) => (error.http_status(), error.to_json_body()),
        }
    }

    fn dispatch(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, XksError> {
        let route = Route::parse(path)?;
        if route
            .operation()
            .key_id()
            .is_some_and(|k| k.as_str() != self.key_id)
        {
            return Err(XksError::new(ErrorName::KeyNotFoundException));
        }
        let json = match route.operation() {
            Operation::Health => {
                HealthRequest::from_json(body, &self.limits)?;
                to_json(&HealthResponse {
                    xks_proxy_fleet_size: 1,
                    xks_proxy_vendor: "Toy".to_owned(),
                    xks_proxy_model: "Toy XKS endpoint 1.0".to_owned(),
                    ekm_vendor: "Toy".to_owned(),
                    ekm_fleet_details: vec![EkmFleetDetail {
                        id: "toy-1".to_owned(),
                        model: "in-process AES-GCM".to_owned(),
                        health_status: HealthStatus::Active,
                    }],
                })?
            }
            Operation::Metadata(_) => {
                MetadataRequest::from_json(body, &self.limits)?;
                to_json(&MetadataResponse {
                    key_spec: KeySpec::Aes256,
                    key_usage: vec![KeyUsage::Encrypt, KeyUsage::Decrypt],
                    key_status: KeyStatus::Enabled,
                })?
            }
            Operation::Encrypt(_) => {
                to_json(&self.encrypt(&EncryptRequest::from_json(body, &self.limits)?)?)?
            }
            Operation::Decrypt(_) => {
                to_json(&self.decrypt(&DecryptRequest::from_json(body, &self.limits)?)?)?
            }
        };
        Ok(json)
    }

    fn encrypt(&self, request: &EncryptRequest) -> Result<EncryptResponse, XksError> {
        let mut iv = [0u8; 12];
        getrandom::fill(&mut iv).map_err(|_| XksError::new(ErrorName::InternalException))?;
        // The one AAD layout of the spec: the metadata is bound into the tag.
        let gcm_aad = request.gcm_aad(METADATA)?;
        let mut ciphertext = request.plaintext.as_bytes().to_vec();
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(iv),
                &gcm_aad,
                ciphertext.as_mut_slice().into(),
            )
            .map_err(|_| XksError::new(ErrorName::InternalException))?;
        let mut response = EncryptResponse {
            ciphertext,
            ciphertext_metadata: Some(METADATA.to_vec()),
            initialization_vector: iv.to_vec(),
            authentication_tag: tag.into(),
            ciphertext_data_integrity_value: None,
        };
        if request.ciphertext_data_integrity_value_algorithm.is_some() {
            let aad = request
                .additional_authenticated_data
                .as_deref()
                .unwrap_or_default();
            response.ciphertext_data_integrity_value = Some(response.integrity_value(aad));
        }
        Ok(response)
    }

    fn decrypt(&self, request: &DecryptRequest) -> Result<DecryptResponse, XksError> {
        let invalid = || {
            XksError::with_message(
                ErrorName::InvalidCiphertextException,
                "authentication failed",
            )
        };
        if request.ciphertext_metadata.as_deref() != Some(METADATA) {
            return Err(invalid());
        }
        let iv: [u8; 12] = request
            .initialization_vector
            .as_slice()
            .try_into()
            .map_err(|_| invalid())?;
        let mut plaintext = Plaintext::new(request.ciphertext.clone());
        self.cipher
            .decrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(iv),
                &request.gcm_aad()?,
                plaintext.as_mut_bytes().into(),
                &Tag::<Aes256Gcm>::from(request.authentication_tag),
            )
            .map_err(|_| invalid())?;
        Ok(DecryptResponse { plaintext })
    }
}

fn to_json(value: &impl serde::Serialize) -> Result<Vec<u8>, XksError> {
    serde_json::to_vec(value).map_err(|_| XksError::new(ErrorName::InternalException))
}

#[expect(clippy::print_stdout, reason = "an example prints what it does")]
fn show(what: &str, (status, body): (u16, Vec<u8>)) -> Vec<u8> {
    println!("{what}\n  -> {status} {}\n", String::from_utf8_lossy(&body));
    body
}

fn main() {
    let endpoint = ToyEndpoint {
        key_id: "toy-key",
        cipher: Aes256Gcm::new_from_slice(&[7; 32]).unwrap(),
        limits: Limits::default(),
    };
    let prefix = "/toy/kms/xks/v1";
    let metadata = r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::111122223333:user/a","kmsKeyArn":"arn:aws:kms:eu-west-1:111122223333:key/k","kmsOperation":"Encrypt","kmsRequestId":"r-1"}"#;

    show(
        "GetKeyMetadata",
        endpoint.answer(
            &format!("{prefix}/keys/toy-key/metadata"),
            br#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::111122223333:user/a","kmsOperation":"CreateKey","kmsRequestId":"r-0"}}"#,
        ),
    );
    let encrypted = show(
        "Encrypt 'Hello World!' with AAD and a CDIV",
        endpoint.answer(
            &format!("{prefix}/keys/toy-key/encrypt"),
            format!(r#"{metadata},"plaintext":"SGVsbG8gV29ybGQh","additionalAuthenticatedData":"YWFk","encryptionAlgorithm":"AES_GCM","ciphertextDataIntegrityValueAlgorithm":"SHA_256"}}"#).as_bytes(),
        ),
    );
    let out = EncryptResponse::from_json(&encrypted).unwrap();
    let b64 = |bytes: &[u8]| serde_json::to_value(Plaintext::new(bytes.to_vec())).unwrap();
    let decrypt_body = |aad: &str| {
        format!(
            r#"{metadata},"ciphertext":{},"ciphertextMetadata":{},"initializationVector":{},"authenticationTag":{},"additionalAuthenticatedData":"{aad}","encryptionAlgorithm":"AES_GCM"}}"#,
            b64(&out.ciphertext),
            b64(out.ciphertext_metadata.as_deref().unwrap_or_default()),
            b64(&out.initialization_vector),
            b64(&out.authentication_tag),
        )
    };
    let path = format!("{prefix}/keys/toy-key/decrypt");
    show(
        "Decrypt with the same AAD",
        endpoint.answer(&path, decrypt_body("YWFk").as_bytes()),
    );
    show(
        "Decrypt with another AAD",
        endpoint.answer(&path, decrypt_body("YmFk").as_bytes()),
    );
    show(
        "GetHealthStatus",
        endpoint.answer(
            &format!("{prefix}/health"),
            br#"{"requestMetadata":{"kmsRequestId":"r-3","kmsOperation":"KmsHealthCheck"}}"#,
        ),
    );
    show(
        "A wrong API version",
        endpoint.answer("/toy/kms/xks/v2/health", b"{}"),
    );
    show(
        "A body that is not JSON",
        endpoint.answer(&path, b"not json"),
    );
}
