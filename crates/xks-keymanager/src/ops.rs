//! The proxy-side sequence around a key manager call for XKS Encrypt and Decrypt.

use std::fmt;

use xks_protocol::{KeyId, Plaintext, ciphertext_data_integrity_value};

use crate::{ErrorKind, KeyManager, KeyManagerError, KeyVersion, Sealed, SealedRef};

/// The result of [`encrypt_for_xks`]: the sealed output, its `ciphertextMetadata`,
/// and the ciphertext data integrity value when one was requested.
#[derive(Clone, PartialEq, Eq)]
pub struct XksEncryption {
    /// The key manager's output.
    pub sealed: Sealed,
    /// The `ciphertextMetadata` naming the key version.
    pub metadata: [u8; 5],
    /// SHA-256 over AAD, metadata, IV, ciphertext and tag (fact sheet §5).
    pub cdiv: Option<[u8; 32]>,
}

/// Encrypts for an XKS Encrypt request.
///
/// With `with_cdiv`, it follows the sequence the spec recommends (fact sheet §5,
/// Appendix C): encrypt, compute the CDIV over that output, then run a verification
/// decrypt with the same inputs and compare the plaintext. A key that cannot
/// decrypt therefore fails with [`ErrorKind::KeyUsage`], as the official test
/// client expects; a verification that does not return the plaintext is
/// [`ErrorKind::Internal`] and nothing is returned to KMS.
pub async fn encrypt_for_xks(
    km: &dyn KeyManager,
    key: &KeyId,
    plaintext: &[u8],
    aad: &[u8],
    with_cdiv: bool,
) -> Result<XksEncryption, KeyManagerError> {
    let sealed = km.encrypt(key, plaintext, aad).await?;
    let metadata = sealed.version.to_metadata();
    if !with_cdiv {
        return Ok(XksEncryption {
            sealed,
            metadata,
            cdiv: None,
        });
    }
    // The CDIV is computed before the verification decrypt, so corruption of the held
    // output after this point is caught by KMS's own check.
    let cdiv = ciphertext_data_integrity_value(
        aad,
        &metadata,
        &sealed.iv,
        &sealed.ciphertext,
        &sealed.tag,
    );
    let check = km.decrypt(key, sealed.as_ref(), aad).await?;
    if check.as_bytes() != plaintext {
        return Err(KeyManagerError::new(
            ErrorKind::Internal,
            "verification decrypt did not return the plaintext just encrypted",
        ));
    }
    Ok(XksEncryption {
        sealed,
        metadata,
        cdiv: Some(cdiv),
    })
}

/// Decrypts for an XKS Decrypt request: reads the key version from
/// `ciphertextMetadata` (absent or foreign metadata is
/// [`ErrorKind::InvalidCiphertext`]) and calls the key manager.
pub async fn decrypt_for_xks(
    km: &dyn KeyManager,
    key: &KeyId,
    metadata: &[u8],
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    aad: &[u8],
) -> Result<Plaintext, KeyManagerError> {
    let version = KeyVersion::from_metadata(metadata)?;
    let sealed = SealedRef {
        version,
        iv,
        ciphertext,
        tag,
    };
    km.decrypt(key, sealed, aad).await
}

// === impl XksEncryption ===

impl fmt::Debug for XksEncryption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XksEncryption")
            .field("sealed", &self.sealed)
            .field("cdiv", &self.cdiv.is_some())
            .finish_non_exhaustive()
    }
}
