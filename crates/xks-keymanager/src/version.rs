//! Key versions, their `ciphertextMetadata` encoding, and the GCM additional data.

use std::fmt;
use std::num::NonZeroU32;

use crate::{ErrorKind, KeyManagerError};

/// A version of the key material behind one external key id, counted from 1.
///
/// New encryptions use a key's newest version; a decryption uses the version named
/// in the ciphertext's metadata. Rotation therefore never breaks old ciphertexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(NonZeroU32);

/// The first byte of our `ciphertextMetadata`: the layout of what follows.
const METADATA_FORMAT_V1: u8 = 1;

/// Length of our `ciphertextMetadata`: the format byte and a big-endian `u32`.
const METADATA_LEN: usize = 5;

// === impl KeyVersion ===

impl KeyVersion {
    /// The first version of every key.
    pub const FIRST: Self = Self(NonZeroU32::MIN);

    /// A version from its number; `None` for 0.
    pub const fn new(n: u32) -> Option<Self> {
        match NonZeroU32::new(n) {
            Some(n) => Some(Self(n)),
            None => None,
        }
    }

    /// The version number, at least 1.
    pub const fn get(self) -> u32 {
        self.0.get()
    }

    /// The next version; `None` when the counter would overflow.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }

    /// The `ciphertextMetadata` bytes naming this version: format byte 1, then the
    /// version as a big-endian `u32` (5 bytes, well inside the spec's 20).
    pub fn to_metadata(self) -> [u8; METADATA_LEN] {
        let [a, b, c, d] = self.get().to_be_bytes();
        [METADATA_FORMAT_V1, a, b, c, d]
    }

    /// Reads the version from `ciphertextMetadata` written by [`KeyVersion::to_metadata`].
    ///
    /// Absent, truncated or foreign metadata cannot name a version of ours, so the
    /// ciphertext cannot be ours either: [`ErrorKind::InvalidCiphertext`].
    pub fn from_metadata(metadata: &[u8]) -> Result<Self, KeyManagerError> {
        let invalid = || {
            KeyManagerError::new(
                ErrorKind::InvalidCiphertext,
                "ciphertextMetadata does not name a key version of this proxy",
            )
        };
        let [METADATA_FORMAT_V1, a, b, c, d] = metadata else {
            return Err(invalid());
        };
        Self::new(u32::from_be_bytes([*a, *b, *c, *d])).ok_or_else(invalid)
    }
}

impl fmt::Display for KeyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The additional authenticated data a backend feeds to AES-GCM for `aad` (from the
/// request) and `version`: the fact sheet's length-prefixed layout over the request
/// AAD and the version's `ciphertextMetadata`, built by
/// [`xks_protocol::compose_gcm_aad`].
///
/// **Conformance**: the metadata is bound into the tag, so any change to it is
/// detected (fact sheet §4).
pub fn gcm_aad(aad: &[u8], version: KeyVersion) -> Result<Vec<u8>, KeyManagerError> {
    xks_protocol::compose_gcm_aad(aad, &version.to_metadata()).map_err(|e| {
        KeyManagerError::new(
            ErrorKind::Unsupported,
            "additional authenticated data longer than 65,535 bytes cannot be length-prefixed",
        )
        .with_source(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips() {
        for n in [1, 2, 255, 256, 65_536, u32::MAX] {
            let v = KeyVersion::new(n).unwrap();
            assert_eq!(KeyVersion::from_metadata(&v.to_metadata()).unwrap(), v);
        }
    }

    #[test]
    fn foreign_metadata_is_invalid_ciphertext() {
        for bad in [
            &b""[..],
            &[1, 0, 0, 0],
            &[1, 0, 0, 0, 0],
            &[2, 0, 0, 0, 1],
            &[1, 0, 0, 0, 1, 0],
            b"key_version=1",
        ] {
            let err = KeyVersion::from_metadata(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidCiphertext, "{bad:?}");
        }
    }

    #[test]
    fn gcm_aad_uses_the_length_prefixed_layout() {
        let v = KeyVersion::new(7).unwrap();
        let got = gcm_aad(b"ab", v).unwrap();
        assert_eq!(got, [0, 2, b'a', b'b', 5, 1, 0, 0, 0, 7]);
    }

    #[test]
    fn gcm_aad_refuses_what_cannot_be_prefixed() {
        let err = gcm_aad(&vec![0; 65_536], KeyVersion::FIRST).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn versions_count_up() {
        assert_eq!(KeyVersion::FIRST.next().unwrap().get(), 2);
        assert!(KeyVersion::new(u32::MAX).unwrap().next().is_none());
        assert!(KeyVersion::new(0).is_none());
    }
}
