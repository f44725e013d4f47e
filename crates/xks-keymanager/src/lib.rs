//! The key manager abstraction of the XKS toolkit.
//!
//! An XKS proxy answers AWS KMS with AES-256-GCM done by a key manager the customer
//! owns: an HSM over PKCS#11, HashiCorp Vault / OpenBao Transit, or software. This
//! crate is the contract between the proxy and those backends:
//!
//! - [`KeyManager`]: an object-safe async trait (`Arc<dyn KeyManager>`) for key
//!   metadata, versioned AES-256-GCM encryption and decryption, and a deep health
//!   probe that reports one entry per key-manager node.
//! - [`KeyVersion`]: the key version that encrypted, carried in XKS
//!   `ciphertextMetadata` and bound into the GCM tag through [`gcm_aad`], so keys can
//!   rotate behind one external key id on every backend.
//! - [`KeyManagerError`] and [`ErrorKind`]: what went wrong and who is at fault,
//!   mapped to the XKS error name in exactly one place ([`ErrorKind::error_name`]).
//! - [`encrypt_for_xks`] and [`decrypt_for_xks`]: the proxy-side sequence around a
//!   backend call (metadata encoding, the CDIV and its verification decrypt).
//!
//! # Crate features
//!
//! - `testing`: the shared test battery ([`testing`]) that every backend runs from
//!   its own tests, with the [`key_manager_battery!`] macro.
//!
//! # Writing a backend
//!
//! A backend implements [`KeyManager`]. For every encryption it picks the newest
//! enabled version of the key, builds the GCM additional data with
//! [`gcm_aad`]`(aad, version)`, encrypts with a fresh 96-bit IV and returns a
//! [`Sealed`]. For decryption it receives the version named in the ciphertext's
//! metadata and rebuilds the same additional data. It enforces the key's usage and
//! state itself and reports failures with the [`ErrorKind`] that says who is at
//! fault. The battery in [`testing`] checks all of this.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod ops;
mod version;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

use std::fmt;

use async_trait::async_trait;
use xks_protocol::{HealthStatus, KeyId, MetadataResponse, Plaintext};

pub use error::{DisplayChain, ErrorKind, KeyManagerError};
pub use ops::{XksEncryption, decrypt_for_xks, encrypt_for_xks};
pub use version::{KeyVersion, gcm_aad};

/// A key manager: the component that holds the key material and runs AES-256-GCM.
///
/// Implementations must be cheap to call concurrently from many tasks. A call that
/// blocks (an HSM call, for example) must run off the async worker threads, and a
/// saturated or stuck dependency must turn into a prompt
/// [`ErrorKind::Throttled`] or [`ErrorKind::Timeout`] error rather than a hang.
///
/// **Conformance**: the proxy calls [`KeyManager::key_metadata`] for GetKeyMetadata
/// (fact sheet §3.1), [`KeyManager::encrypt`] and [`KeyManager::decrypt`] for Encrypt
/// and Decrypt (§3.2, §3.3), and [`KeyManager::health`] for GetHealthStatus (§6).
#[async_trait]
pub trait KeyManager: Send + Sync + fmt::Debug + 'static {
    /// A short, static name of the backend, used as a metrics label (`soft`, `pkcs11`, `vault`).
    fn backend_name(&self) -> &'static str;

    /// The external key manager's vendor, reported as `ekmVendor` by GetHealthStatus.
    fn vendor(&self) -> &str;

    /// The key's type, allowed operations and status.
    ///
    /// A disabled key is not an error here: it is reported with
    /// [`KeyStatus::Disabled`](xks_protocol::KeyStatus::Disabled), which KMS reads.
    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError>;

    /// Encrypts `plaintext` under the newest version of `key`, binding `aad` and the
    /// version into the tag with [`gcm_aad`].
    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError>;

    /// Decrypts `sealed` with the version of `key` it names.
    ///
    /// Any authentication failure is [`ErrorKind::InvalidCiphertext`], and costs no
    /// more than a successful decryption.
    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError>;

    /// Encrypts like [`KeyManager::encrypt`], then computes the ciphertext data
    /// integrity value over the output and decrypts the output again to verify it,
    /// in that order (fact sheet §5, Appendix C). Returns the output and its CDIV.
    ///
    /// A key that cannot decrypt fails with [`ErrorKind::KeyUsage`]; a verification
    /// that does not give back the plaintext is [`ErrorKind::Internal`].
    ///
    /// The default makes two calls. A backend whose calls are round trips (to a
    /// device, a worker thread, a server) may override it to do all three steps
    /// in one, keeping the order.
    async fn encrypt_verified(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(Sealed, [u8; 32]), KeyManagerError> {
        let sealed = self.encrypt(key, plaintext, aad).await?;
        let cdiv = sealed.integrity_value(aad);
        let check = self.decrypt(key, sealed.as_ref(), aad).await?;
        verify_round_trip(check.as_bytes(), plaintext)?;
        Ok((sealed, cdiv))
    }

    /// A deep health probe: one entry per key-manager node, each checked with a real
    /// cryptographic operation on a dedicated canary key, never a customer key.
    ///
    /// The proxy runs this in the background and caches the answer (at most 60 s).
    async fn health(&self) -> Vec<NodeHealth>;

    /// Re-reads the key manager's keys or settings after an operator change (the
    /// proxy calls it on `SIGHUP`). In-flight and later calls must keep working
    /// throughout; on failure the previous state stays in use.
    ///
    /// It may block (file I/O): the proxy calls it from a blocking thread, never
    /// from the request path. The default has nothing to reload.
    async fn reload(&self) -> Result<(), KeyManagerError> {
        Ok(())
    }
}

/// The output of an encryption: everything the proxy returns to KMS.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The key version that encrypted; it travels in `ciphertextMetadata`.
    pub version: KeyVersion,
    /// The initialization vector, 12 bytes.
    pub iv: Vec<u8>,
    /// The ciphertext, as long as the plaintext, without the tag.
    pub ciphertext: Vec<u8>,
    /// The 16-byte GCM authentication tag.
    pub tag: [u8; 16],
}

/// A borrowed ciphertext to decrypt, as KMS sends it back.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SealedRef<'a> {
    /// The key version named by the ciphertext's metadata.
    pub version: KeyVersion,
    /// The initialization vector (12 or 16 bytes on the wire).
    pub iv: &'a [u8],
    /// The ciphertext without the tag.
    pub ciphertext: &'a [u8],
    /// The authentication tag (16 bytes on the wire).
    pub tag: &'a [u8],
}

/// The health of one key-manager node, as reported in `ekmFleetDetails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeHealth {
    /// A stable, unique id of the node within the backend (an HSM slot, a Vault address).
    pub id: String,
    /// Product name and version, and anything that helps troubleshooting.
    pub model: String,
    /// Whether the node can serve traffic.
    pub status: HealthStatus,
}

/// Checks that a verification decrypt gave back the plaintext just encrypted.
pub fn verify_round_trip(decrypted: &[u8], plaintext: &[u8]) -> Result<(), KeyManagerError> {
    if decrypted == plaintext {
        Ok(())
    } else {
        Err(KeyManagerError::new(
            ErrorKind::Internal,
            "verification decrypt did not return the plaintext just encrypted",
        ))
    }
}

// === impl Sealed ===

impl Sealed {
    /// The ciphertext data integrity value of this output for the request's `aad`:
    /// SHA-256 over AAD, `ciphertextMetadata`, IV, ciphertext and tag (fact sheet §5).
    pub fn integrity_value(&self, aad: &[u8]) -> [u8; 32] {
        xks_protocol::ciphertext_data_integrity_value(
            aad,
            &self.version.to_metadata(),
            &self.iv,
            &self.ciphertext,
            &self.tag,
        )
    }

    /// Borrows this output as the input of a decryption.
    pub fn as_ref(&self) -> SealedRef<'_> {
        SealedRef {
            version: self.version,
            iv: &self.iv,
            ciphertext: &self.ciphertext,
            tag: &self.tag,
        }
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("version", &self.version)
            .field("iv_len", &self.iv.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

// === impl SealedRef ===

impl fmt::Debug for SealedRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedRef")
            .field("version", &self.version)
            .field("iv_len", &self.iv.len())
            .field("ciphertext_len", &self.ciphertext.len())
            .field("tag_len", &self.tag.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verification_that_does_not_round_trip_is_internal() {
        verify_round_trip(b"same", b"same").unwrap();
        let err = verify_round_trip(b"other", b"same").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Internal);
        assert_eq!(err.error_name(), xks_protocol::ErrorName::InternalException);
    }

    #[test]
    fn integrity_value_covers_the_version_metadata() {
        let sealed = Sealed {
            version: KeyVersion::FIRST,
            iv: vec![1; 12],
            ciphertext: b"ct".to_vec(),
            tag: [2; 16],
        };
        let expected = xks_protocol::ciphertext_data_integrity_value(
            b"aad",
            &KeyVersion::FIRST.to_metadata(),
            &sealed.iv,
            &sealed.ciphertext,
            &sealed.tag,
        );
        assert_eq!(sealed.integrity_value(b"aad"), expected);
        let rotated = Sealed {
            version: KeyVersion::new(2).unwrap(),
            ..sealed
        };
        assert_ne!(rotated.integrity_value(b"aad"), expected);
    }
}
