//! Fixed sizes of the protocol, and the configurable implementation limits.

use crate::wire::encoded_len;

/// Length of the GCM authentication tag, in bytes (fact sheet §3.2, §4).
pub const AUTHENTICATION_TAG_LEN: usize = 16;

/// The two allowed IV lengths, in bytes: 96 and 128 bits (fact sheet §3.2, §4).
pub const IV_LENS: [usize; 2] = [12, 16];

/// The longest `ciphertextMetadata`, in bytes before Base64 encoding (fact sheet §3.2, §9.6).
pub const MAX_CIPHERTEXT_METADATA_LEN: usize = 20;

/// Length of the SHA-256 `ciphertextDataIntegrityValue`, in bytes (fact sheet §5).
pub const CDIV_LEN: usize = 32;

/// The longest ARN the spec requires a proxy to accept, in characters (fact sheet §1.5).
const MAX_ARN_LEN: usize = 2048;

/// This implementation's limits on decoded request sizes.
///
/// **Conformance** (fact sheet §7.2, §9.6): a proxy must accept at least 4300 bytes of plaintext
/// and of ciphertext and 8192 bytes of AAD, and may accept more. The setters reject values below
/// those minimums. A request above a limit is answered with `UnsupportedOperationException`
/// (501). The AAD limit never exceeds [`Limits::MAX_AAD_BYTES`], because the GCM AAD length
/// prefix has two bytes; larger AAD is therefore always a 501.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    max_plaintext_bytes: usize,
    max_ciphertext_bytes: usize,
    max_aad_bytes: usize,
}

/// Why limits were rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LimitsError(LimitsReason);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum LimitsReason {
    #[error("{field} = {value} is below the spec's minimum of {minimum} bytes")]
    BelowMinimum {
        field: &'static str,
        value: usize,
        minimum: usize,
    },
    #[error("max_aad_bytes = {0} is above 65535, the most a 2-byte length prefix can encode")]
    AadNotEncodable(usize),
}

// === impl Limits ===

impl Limits {
    /// The spec's minimums: 4300 bytes of plaintext, 4300 of ciphertext, 8192 of AAD.
    /// This is also the default.
    pub const SPEC_MINIMUM: Self = Self {
        max_plaintext_bytes: 4300,
        max_ciphertext_bytes: 4300,
        max_aad_bytes: 8192,
    };

    /// The largest AAD that the GCM AAD length prefix can encode.
    pub const MAX_AAD_BYTES: usize = u16::MAX as usize;

    /// Raises the plaintext limit (Encrypt).
    ///
    /// # Errors
    ///
    /// `bytes` is below the spec's minimum of 4300.
    pub fn with_max_plaintext_bytes(self, bytes: usize) -> Result<Self, LimitsError> {
        let minimum = Self::SPEC_MINIMUM.max_plaintext_bytes;
        at_least("max_plaintext_bytes", bytes, minimum)?;
        Ok(Self {
            max_plaintext_bytes: bytes,
            ..self
        })
    }

    /// Raises the ciphertext limit (Decrypt).
    ///
    /// # Errors
    ///
    /// `bytes` is below the spec's minimum of 4300.
    pub fn with_max_ciphertext_bytes(self, bytes: usize) -> Result<Self, LimitsError> {
        let minimum = Self::SPEC_MINIMUM.max_ciphertext_bytes;
        at_least("max_ciphertext_bytes", bytes, minimum)?;
        Ok(Self {
            max_ciphertext_bytes: bytes,
            ..self
        })
    }

    /// Raises the AAD limit (Encrypt and Decrypt).
    ///
    /// # Errors
    ///
    /// `bytes` is below the spec's minimum of 8192, or above [`Self::MAX_AAD_BYTES`].
    pub fn with_max_aad_bytes(self, bytes: usize) -> Result<Self, LimitsError> {
        at_least("max_aad_bytes", bytes, Self::SPEC_MINIMUM.max_aad_bytes)?;
        if bytes > Self::MAX_AAD_BYTES {
            return Err(LimitsError(LimitsReason::AadNotEncodable(bytes)));
        }
        Ok(Self {
            max_aad_bytes: bytes,
            ..self
        })
    }

    /// The plaintext limit, in decoded bytes.
    pub const fn max_plaintext_bytes(&self) -> usize {
        self.max_plaintext_bytes
    }

    /// The ciphertext limit, in decoded bytes.
    pub const fn max_ciphertext_bytes(&self) -> usize {
        self.max_ciphertext_bytes
    }

    /// The AAD limit, in decoded bytes.
    pub const fn max_aad_bytes(&self) -> usize {
        self.max_aad_bytes
    }

    /// A safe upper bound on the size of a legitimate request body under these limits, for the
    /// HTTP layer's body limit. Never below 64 KiB.
    ///
    /// It adds the Base64 text of the largest plaintext or ciphertext, AAD, metadata, IV and
    /// tag, two 2048-character ARNs, and 32 KiB for field names, the other metadata and fields
    /// that KMS may add (fact sheet §2.4, §9.6). It assumes compact JSON from KMS; a client that
    /// escapes every `/` as `\/` could exceed it with maximal payloads.
    pub fn max_body_bytes(&self) -> usize {
        const SLACK: usize = 32 * 1024;
        const FLOOR: usize = 64 * 1024;
        let fixed = encoded_len(MAX_CIPHERTEXT_METADATA_LEN)
            + encoded_len(IV_LENS[1])
            + encoded_len(AUTHENTICATION_TAG_LEN)
            + 2 * MAX_ARN_LEN
            + SLACK;
        encoded_len(self.max_plaintext_bytes.max(self.max_ciphertext_bytes))
            .saturating_add(encoded_len(self.max_aad_bytes))
            .saturating_add(fixed)
            .max(FLOOR)
    }
}

fn at_least(field: &'static str, value: usize, minimum: usize) -> Result<(), LimitsError> {
    if value < minimum {
        Err(LimitsError(LimitsReason::BelowMinimum {
            field,
            value,
            minimum,
        }))
    } else {
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::SPEC_MINIMUM
    }
}

#[cfg(test)]
mod tests;
