//! The AAD fed to AES-GCM, and the ciphertext data integrity value (CDIV).

use base64::{Engine as _, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

use crate::{CDIV_LEN, ErrorName, XksError};

/// Why [`compose_gcm_aad`] cannot length-prefix its inputs.
///
/// As an [`XksError`], too-long AAD is `UnsupportedOperationException` (request input), and
/// too-long metadata is `InternalException` (metadata comes from the backend).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AadError(AadReason);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum AadReason {
    #[error("additionalAuthenticatedData is {0} bytes; a 2-byte length prefix allows 65535")]
    Aad(usize),
    #[error("ciphertextMetadata is {0} bytes; a 1-byte length prefix allows 255")]
    Metadata(usize),
}

/// Composes the AAD for AES-GCM:
/// `uint16_be(len(aad)) || aad || uint8(len(metadata)) || metadata`.
///
/// This is the one composition every backend uses, so that `ciphertextMetadata` is bound into
/// the tag and AAD and metadata cannot be confused with each other. Pass an empty slice for an
/// absent field: absent and empty give the same bytes.
///
/// **Conformance** (fact sheet §4): this is the spec's recommended layout, byte for byte.
///
/// # Errors
///
/// `aad` is longer than 65535 bytes, or `metadata` longer than 255.
pub fn compose_gcm_aad(aad: &[u8], metadata: &[u8]) -> Result<Vec<u8>, AadError> {
    let mut out = Vec::new();
    compose_gcm_aad_into(aad, metadata, &mut out)?;
    Ok(out)
}

/// Like [`compose_gcm_aad`], writing into `out`, which is cleared first, to reuse a buffer.
///
/// # Errors
///
/// As [`compose_gcm_aad`]; `out` is left empty.
pub fn compose_gcm_aad_into(
    aad: &[u8],
    metadata: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), AadError> {
    out.clear();
    let aad_len = u16::try_from(aad.len()).map_err(|_| AadError(AadReason::Aad(aad.len())))?;
    let metadata_len =
        u8::try_from(metadata.len()).map_err(|_| AadError(AadReason::Metadata(metadata.len())))?;
    out.reserve(3 + aad.len() + metadata.len());
    out.extend_from_slice(&aad_len.to_be_bytes());
    out.extend_from_slice(aad);
    out.push(metadata_len);
    out.extend_from_slice(metadata);
    Ok(())
}

/// The ciphertext data integrity value:
/// `SHA-256(aad || metadata || iv || ciphertext || tag)`, with no length prefixes.
///
/// `aad` is the request's AAD, the other inputs are the Encrypt response's fields; pass an
/// empty slice for an absent field.
///
/// **Conformance** (fact sheet §5): compute it over the key manager's output *before* the
/// verification decrypt that the spec recommends.
pub fn ciphertext_data_integrity_value(
    aad: &[u8],
    metadata: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> [u8; CDIV_LEN] {
    let mut hash = Sha256::new();
    for part in [aad, metadata, iv, ciphertext, tag] {
        hash.update(part);
    }
    hash.finalize().into()
}

/// [`ciphertext_data_integrity_value`] as standard Base64, the form it has on the wire.
pub fn ciphertext_data_integrity_value_base64(
    aad: &[u8],
    metadata: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
) -> String {
    STANDARD.encode(ciphertext_data_integrity_value(
        aad, metadata, iv, ciphertext, tag,
    ))
}

// === impl AadError ===

impl From<AadError> for XksError {
    fn from(error: AadError) -> Self {
        match error.0 {
            AadReason::Aad(_) => {
                Self::with_message(ErrorName::UnsupportedOperationException, error.to_string())
            }
            AadReason::Metadata(_) => Self::new(ErrorName::InternalException),
        }
    }
}

#[cfg(test)]
mod tests;
