//! The proxy-side sequence around a key manager call for XKS Encrypt and Decrypt.

use std::fmt;

use xks_protocol::{KeyId, Plaintext};

use crate::{KeyManager, KeyManagerError, KeyVersion, Sealed, SealedRef};

/// The result of [`encrypt_for_xks`]: the sealed output (its `ciphertextMetadata`
/// is `sealed.version.to_metadata()`) and the ciphertext data integrity value
/// when one was requested.
#[derive(Clone, PartialEq, Eq)]
pub struct XksEncryption {
    /// The key manager's output.
    pub sealed: Sealed,
    /// SHA-256 over AAD, metadata, IV, ciphertext and tag (fact sheet §5).
    pub cdiv: Option<[u8; 32]>,
}

/// Encrypts for an XKS Encrypt request.
///
/// With `with_cdiv`, it follows the sequence the spec recommends (fact sheet §5,
/// Appendix C) through [`KeyManager::encrypt_verified`]: encrypt, compute the CDIV
/// over that output, then run a verification decrypt with the same inputs and
/// compare the plaintext. A key that cannot decrypt therefore fails with
/// [`ErrorKind::KeyUsage`](crate::ErrorKind::KeyUsage), as the official test client expects; a verification
/// that does not return the plaintext is [`ErrorKind::Internal`](crate::ErrorKind::Internal) and nothing is
/// returned to KMS.
pub async fn encrypt_for_xks(
    km: &dyn KeyManager,
    key: &KeyId,
    plaintext: &[u8],
    aad: &[u8],
    with_cdiv: bool,
) -> Result<XksEncryption, KeyManagerError> {
    let (sealed, cdiv) = if with_cdiv {
        let (sealed, cdiv) = km.encrypt_verified(key, plaintext, aad).await?;
        (sealed, Some(cdiv))
    } else {
        (km.encrypt(key, plaintext, aad).await?, None)
    };
    Ok(XksEncryption { sealed, cdiv })
}

/// Decrypts for an XKS Decrypt request: reads the key version from
/// `ciphertextMetadata` (absent or foreign metadata is
/// [`ErrorKind::InvalidCiphertext`](crate::ErrorKind::InvalidCiphertext)) and calls the key manager.
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
