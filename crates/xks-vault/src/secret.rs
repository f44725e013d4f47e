//! Secrets (tokens, AppRole ids): read from the environment or a file, wiped
//! from memory when dropped, never shown by `Debug`.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;

use bytes::Bytes;
use zeroize::{Zeroize, Zeroizing};

use crate::config::SecretSource;
use crate::error::{Error, SecretError};

/// The largest secret file read, in bytes.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A secret string, wiped from memory when dropped. `Debug` shows `<redacted>`.
#[derive(Clone)]
pub(crate) struct Secret(Zeroizing<String>);

/// Heap bytes that are wiped when the last [`Bytes`] handle on them drops: the
/// owner of request bodies that hold plaintext and of token header values.
struct Wiped(Vec<u8>);

// === impl Secret ===

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Reads the secret `what` from `source`: an environment variable looked up
    /// through `env`, or a file. Surrounding white space is removed; an empty
    /// secret is an error.
    pub(crate) fn read(
        what: &'static str,
        source: &SecretSource,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        let raw = match source {
            SecretSource::Env(name) => {
                let value = env(name).ok_or_else(|| SecretError::missing_var(what, name))?;
                Zeroizing::new(
                    value
                        .into_string()
                        .map_err(|_| SecretError::not_unicode(what))?,
                )
            }
            SecretSource::File(path) => {
                let mut text = Zeroizing::new(String::new());
                std::fs::File::open(path)
                    .and_then(|f| f.take(MAX_SECRET_FILE).read_to_string(&mut text))
                    .map_err(|e| SecretError::file(what, path, e))?;
                text
            }
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(SecretError::empty(what).into());
        }
        Ok(Self::new(trimmed.to_owned()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `bytes` as a [`Bytes`] whose memory is wiped when the last handle drops.
pub(crate) fn wiped_bytes(bytes: Vec<u8>) -> Bytes {
    Bytes::from_owner(Wiped(bytes))
}

// === impl Wiped ===

impl AsRef<[u8]> for Wiped {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests;
