//! The validated `externalKeyId`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid `externalKeyId`: 1 to 128 characters of `A-Z a-z 0-9 - . _`, and not `.` or `..`.
///
/// It is stored inline (no heap allocation), so routing a request allocates nothing.
///
/// **Conformance** (fact sheet §1.3): the character set and length are the spec's. Ids `.` and
/// `..` are rejected as well, because HTTP stacks treat them as path navigation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyId {
    len: u8,
    bytes: [u8; Self::MAX_LEN],
}

/// Why a string is not a valid [`KeyId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyIdError(KeyIdReason);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyIdReason {
    #[error("the external key id is empty")]
    Empty,
    #[error("the external key id is longer than 128 characters")]
    TooLong,
    #[error("the external key id has a character outside A-Z a-z 0-9 - . _ at position {position}")]
    IllegalChar { position: usize },
    #[error("the external key id must not be \".\" or \"..\"")]
    DotSegment,
}

// === impl KeyId ===

impl KeyId {
    /// The longest external key id, in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates `id`.
    ///
    /// # Errors
    ///
    /// `id` is empty, longer than [`Self::MAX_LEN`], has a character outside
    /// `A-Z a-z 0-9 - . _`, or is `.` or `..`.
    pub fn new(id: &str) -> Result<Self, KeyIdError> {
        Self::parse(id).map_err(KeyIdError)
    }

    pub(crate) fn parse(id: &str) -> Result<Self, KeyIdReason> {
        if id.is_empty() {
            return Err(KeyIdReason::Empty);
        }
        let len = u8::try_from(id.len())
            .ok()
            .filter(|&len| usize::from(len) <= Self::MAX_LEN)
            .ok_or(KeyIdReason::TooLong)?;
        if let Some(position) = id.bytes().position(|b| !is_key_id_byte(b)) {
            return Err(KeyIdReason::IllegalChar { position });
        }
        if id == "." || id == ".." {
            return Err(KeyIdReason::DotSegment);
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..id.len()].copy_from_slice(id.as_bytes());
        Ok(Self { len, bytes })
    }

    /// The id as a string.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so the conversion cannot fail.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

const fn is_key_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')
}

impl AsRef<str> for KeyId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyId").field(&self.as_str()).finish()
    }
}

impl Serialize for KeyId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for KeyId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Self::new(&id).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
