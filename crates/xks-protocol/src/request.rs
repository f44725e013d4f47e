//! Request bodies of the four XKS APIs.
//!
//! Each type's `from_json` makes every `ValidationException` and
//! `UnsupportedOperationException` decision for its body. Fields are checked in the order of
//! the struct, `requestMetadata` first, and the first failure is answered. Error messages name
//! the field and give lengths, never values.
//!
//! **Conformance** (fact sheet §2.4, §7.3, §9.7): unknown fields are ignored at every level,
//! JSON `null` counts as absent, and a duplicate key, a wrong JSON type or a body that is not a
//! JSON object is a `ValidationException`. Base64 is strict standard RFC 4648 §4 with padding.

use serde::Serialize;

use crate::{
    AUTHENTICATION_TAG_LEN, AadError, Limits, OperationKind, Plaintext, XksError,
    gcm::compose_gcm_aad,
    wire::{self, Object, WireError},
};

/// The `requestMetadata` object: who called KMS, on which key, for which KMS operation.
///
/// Which fields a request must carry depends on the API (fact sheet §2.1); a missing required
/// field is a `ValidationException`, for GetHealthStatus too, as the official test client expects
/// (fact sheet §12.1, §12.17):
///
/// | Field | GetHealthStatus | GetKeyMetadata | Encrypt, Decrypt |
/// |---|---|---|---|
/// | `awsPrincipalArn` | ignored | required | required |
/// | `awsSourceVpc`, `awsSourceVpce` | ignored | optional | optional |
/// | `kmsKeyArn` | ignored | optional (legacy) | required |
/// | `kmsOperation`, `kmsRequestId` | required | required | required |
/// | `kmsViaService` | ignored | optional (legacy) | optional |
///
/// "Ignored" fields are not part of that API and read as `None`.
///
/// **Conformance** (fact sheet §1.5, §2.2, §2.3): `kmsOperation` is never checked against a list
/// of operations, `kmsRequestId` is opaque, and ARNs are neither length-limited nor parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata {
    /// `awsPrincipalArn`: the principal that called the KMS API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_principal_arn: Option<String>,
    /// `awsSourceVpc`: the VPC the KMS request came from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_source_vpc: Option<String>,
    /// `awsSourceVpce`: the VPC endpoint the KMS request came through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_source_vpce: Option<String>,
    /// `kmsKeyArn`: the KMS key the KMS API was called on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<String>,
    /// `kmsOperation`: the KMS API behind this call, such as `GenerateDataKey`.
    pub kms_operation: String,
    /// `kmsRequestId`: the KMS request id, for matching CloudTrail entries to proxy logs.
    pub kms_request_id: String,
    /// `kmsViaService`: the AWS service that called KMS for the customer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_via_service: Option<String>,
}

/// The body of GetHealthStatus (`POST …/health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthRequest {
    /// `requestMetadata`, with `kmsRequestId` and `kmsOperation`.
    pub request_metadata: RequestMetadata,
}

/// The body of GetKeyMetadata (`POST …/keys/<id>/metadata`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataRequest {
    /// `requestMetadata`.
    pub request_metadata: RequestMetadata,
}

/// The body of Encrypt (`POST …/keys/<id>/encrypt`).
///
/// `Debug` shows the plaintext's length only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptRequest {
    /// `requestMetadata`.
    pub request_metadata: RequestMetadata,
    /// `plaintext`, decoded. It may be empty (the spec does not forbid it, fact sheet §12.14).
    pub plaintext: Plaintext,
    /// `encryptionAlgorithm`.
    pub encryption_algorithm: EncryptionAlgorithm,
    /// `additionalAuthenticatedData`, decoded. Absent and empty compose the same GCM AAD.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::serialize_opt_base64"
    )]
    pub additional_authenticated_data: Option<Vec<u8>>,
    /// `ciphertextDataIntegrityValueAlgorithm`: if present, the response must carry the CDIV.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ciphertext_data_integrity_value_algorithm: Option<CdivAlgorithm>,
}

/// The body of Decrypt (`POST …/keys/<id>/decrypt`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecryptRequest {
    /// `requestMetadata`.
    pub request_metadata: RequestMetadata,
    /// `ciphertext`, decoded; without the tag.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub ciphertext: Vec<u8>,
    /// `ciphertextMetadata`, decoded: at most 20 bytes.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::serialize_opt_base64"
    )]
    pub ciphertext_metadata: Option<Vec<u8>>,
    /// `encryptionAlgorithm`.
    pub encryption_algorithm: EncryptionAlgorithm,
    /// `additionalAuthenticatedData`, decoded.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::serialize_opt_base64"
    )]
    pub additional_authenticated_data: Option<Vec<u8>>,
    /// `initializationVector`, decoded: 12 or 16 bytes.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub initialization_vector: Vec<u8>,
    /// `authenticationTag`, decoded.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub authentication_tag: [u8; AUTHENTICATION_TAG_LEN],
}

wire_enum! {
    /// `encryptionAlgorithm`.
    ///
    /// **Conformance** (fact sheet §3.2, §7.3): any other value is a `ValidationException`.
    pub enum EncryptionAlgorithm {
        /// `AES_GCM`: AES-256-GCM, the only algorithm of XKS v1.
        AesGcm => "AES_GCM",
    }
}

wire_enum! {
    /// `ciphertextDataIntegrityValueAlgorithm`.
    ///
    /// **Conformance** (fact sheet §5, §7.3): any other value is a `ValidationException` (the
    /// guide's recommended answer; `UnsupportedOperationException` would also be tolerated).
    pub enum CdivAlgorithm {
        /// `SHA_256`: SHA-256, the only algorithm of XKS v1.
        Sha256 => "SHA_256",
    }
}

/// How an API treats a `requestMetadata` field.
#[derive(Clone, Copy)]
enum Presence {
    Required,
    Optional,
    Ignored,
}

// === impl RequestMetadata ===

impl RequestMetadata {
    fn read(body: &mut Object, operation: OperationKind) -> Result<Self, WireError> {
        use Presence::{Ignored, Optional, Required};
        // awsPrincipalArn, kmsKeyArn, awsSourceVpc(e), kmsViaService (fact sheet §2.1).
        let (principal, key_arn, vpc, via) = match operation {
            OperationKind::Health => (Ignored, Ignored, Ignored, Ignored),
            // KMS before spec 1.0.3 and the official test client still send kmsKeyArn and
            // kmsViaService to GetKeyMetadata.
            OperationKind::GetKeyMetadata => (Required, Optional, Optional, Optional),
            OperationKind::Encrypt | OperationKind::Decrypt => {
                (Required, Required, Optional, Optional)
            }
        };
        let m = &mut body.req_object("requestMetadata")?;
        Ok(Self {
            aws_principal_arn: string_field(m, "awsPrincipalArn", principal)?,
            aws_source_vpc: string_field(m, "awsSourceVpc", vpc)?,
            aws_source_vpce: string_field(m, "awsSourceVpce", vpc)?,
            kms_key_arn: string_field(m, "kmsKeyArn", key_arn)?,
            kms_operation: m.req("kmsOperation", wire::string)?,
            kms_request_id: m.req("kmsRequestId", wire::string)?,
            kms_via_service: string_field(m, "kmsViaService", via)?,
        })
    }
}

fn string_field(
    object: &mut Object,
    name: &'static str,
    presence: Presence,
) -> Result<Option<String>, WireError> {
    match presence {
        Presence::Required => object.req(name, wire::string).map(Some),
        Presence::Optional => object.opt(name, wire::string),
        Presence::Ignored => Ok(None),
    }
}

fn parse<T>(body: &[u8], read: impl FnOnce(Object) -> Result<T, WireError>) -> Result<T, XksError> {
    Object::parse(body)
        .and_then(read)
        .map_err(WireError::into_xks_error)
}

// === impl HealthRequest ===

impl HealthRequest {
    /// Parses and validates a GetHealthStatus body.
    ///
    /// `limits` is unused here; every request type takes it, so they all parse alike.
    ///
    /// # Errors
    ///
    /// `ValidationException` for a malformed body or a missing `kmsRequestId` or
    /// `kmsOperation`.
    pub fn from_json(body: &[u8], _limits: &Limits) -> Result<Self, XksError> {
        parse(body, |mut body| {
            Ok(Self {
                request_metadata: RequestMetadata::read(&mut body, OperationKind::Health)?,
            })
        })
    }
}

// === impl MetadataRequest ===

impl MetadataRequest {
    /// Parses and validates a GetKeyMetadata body.
    ///
    /// `limits` is unused here; every request type takes it, so they all parse alike.
    ///
    /// # Errors
    ///
    /// `ValidationException` for a malformed body or missing required metadata.
    pub fn from_json(body: &[u8], _limits: &Limits) -> Result<Self, XksError> {
        parse(body, |mut body| {
            Ok(Self {
                request_metadata: RequestMetadata::read(&mut body, OperationKind::GetKeyMetadata)?,
            })
        })
    }
}

// === impl EncryptRequest ===

impl EncryptRequest {
    /// Parses and validates an Encrypt body.
    ///
    /// # Errors
    ///
    /// `UnsupportedOperationException` if the plaintext or AAD exceeds `limits`, checked on the
    /// Base64 length before decoding where possible; `ValidationException` for anything else
    /// that is wrong.
    pub fn from_json(body: &[u8], limits: &Limits) -> Result<Self, XksError> {
        parse(body, |mut body| {
            Ok(Self {
                request_metadata: RequestMetadata::read(&mut body, OperationKind::Encrypt)?,
                plaintext: body.req("plaintext", |v| {
                    wire::plaintext(v, Some(limits.max_plaintext_bytes()))
                })?,
                encryption_algorithm: body.req("encryptionAlgorithm", wire::keyword)?,
                additional_authenticated_data: body.opt("additionalAuthenticatedData", |v| {
                    wire::base64(v, Some(limits.max_aad_bytes()))
                })?,
                ciphertext_data_integrity_value_algorithm: body
                    .opt("ciphertextDataIntegrityValueAlgorithm", wire::keyword)?,
            })
        })
    }

    /// The GCM AAD for this request and the `metadata` the backend will return,
    /// by [`compose_gcm_aad`].
    ///
    /// # Errors
    ///
    /// `metadata` is longer than 255 bytes, or the AAD longer than 65535 (impossible after
    /// [`EncryptRequest::from_json`]).
    pub fn gcm_aad(&self, metadata: &[u8]) -> Result<Vec<u8>, AadError> {
        compose_gcm_aad(
            self.additional_authenticated_data
                .as_deref()
                .unwrap_or_default(),
            metadata,
        )
    }
}

// === impl DecryptRequest ===

impl DecryptRequest {
    /// Parses and validates a Decrypt body.
    ///
    /// **Conformance** (fact sheet §7.3): an IV of other than 12 or 16 bytes, a tag of other
    /// than 16 bytes and metadata over 20 bytes are `ValidationException`s.
    ///
    /// # Errors
    ///
    /// `UnsupportedOperationException` if the ciphertext or AAD exceeds `limits`, checked on the
    /// Base64 length before decoding where possible; `ValidationException` for anything else
    /// that is wrong.
    pub fn from_json(body: &[u8], limits: &Limits) -> Result<Self, XksError> {
        parse(body, |mut body| {
            Ok(Self {
                request_metadata: RequestMetadata::read(&mut body, OperationKind::Decrypt)?,
                ciphertext: body.req("ciphertext", |v| {
                    wire::base64(v, Some(limits.max_ciphertext_bytes()))
                })?,
                ciphertext_metadata: body.opt("ciphertextMetadata", wire::ciphertext_metadata)?,
                encryption_algorithm: body.req("encryptionAlgorithm", wire::keyword)?,
                additional_authenticated_data: body.opt("additionalAuthenticatedData", |v| {
                    wire::base64(v, Some(limits.max_aad_bytes()))
                })?,
                initialization_vector: body.req("initializationVector", wire::iv)?,
                authentication_tag: body.req("authenticationTag", wire::base64_array)?,
            })
        })
    }

    /// The GCM AAD for this request, by [`compose_gcm_aad`].
    ///
    /// # Errors
    ///
    /// Never after [`DecryptRequest::from_json`], which bounds both inputs.
    pub fn gcm_aad(&self) -> Result<Vec<u8>, AadError> {
        compose_gcm_aad(
            self.additional_authenticated_data
                .as_deref()
                .unwrap_or_default(),
            self.ciphertext_metadata.as_deref().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests;
