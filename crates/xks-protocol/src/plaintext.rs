//! The plaintext buffer: zeroized on drop, never printed.

use std::fmt;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Serialize, Serializer};
use zeroize::Zeroizing;

/// Plaintext bytes: the Encrypt request's input and the Decrypt response's output.
///
/// The buffer is zeroized when dropped, and `Debug` prints only the length. Parsing zeroizes
/// the intermediate Base64 text too, and serializing goes through a zeroized temporary string.
/// The request body, the serializer's output and the JSON parser's scratch space (used only for
/// strings with escapes) belong to the caller.
///
/// **Conformance** (fact sheet §9.2): plaintext must never be logged, so no type of this crate
/// prints it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

// === impl Plaintext ===

impl Plaintext {
    /// Takes ownership of `bytes` without copying them.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The plaintext bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The plaintext bytes, mutable, for example to decrypt in place into this buffer.
    pub fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut self.0
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes strict standard Base64 into a buffer that is zeroized even when decoding fails.
    pub(crate) fn from_base64(text: &str) -> Result<Self, base64::DecodeError> {
        // Reserving the decoder's own estimate up front means it never reallocates, so no
        // unzeroized copy of the plaintext is left behind.
        let mut buffer =
            Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(text.len())));
        STANDARD.decode_vec(text, &mut buffer)?;
        Ok(Self(buffer))
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plaintext")
            .field("len", &self.len())
            .finish()
    }
}

impl Serialize for Plaintext {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(STANDARD.encode(self.as_bytes()));
        serializer.serialize_str(&encoded)
    }
}
