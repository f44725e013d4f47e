//! Secrets: the passphrase or key file that unlocks a key store, and key material.

use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::UnlockProblem;
use crate::{Error, fsio};

/// The fewest bytes a key file may hold, trailing whitespace excluded.
pub(crate) const KEY_FILE_MIN_LEN: usize = 16;

/// The most bytes a key file may hold.
pub(crate) const KEY_FILE_MAX_LEN: u64 = 64 * 1024;

/// The length of an AES-256 key.
pub(crate) const KEY_LEN: usize = 32;

/// The secret that unlocks a key store: a passphrase, or a key file.
///
/// Either one goes through Argon2id (with the parameters and salt in the key
/// store's header) to derive the key that encrypts the key store.
///
/// The `Debug` output never shows the passphrase; it shows the key file's path,
/// never its contents.
#[derive(Clone)]
#[non_exhaustive]
pub enum Unlock {
    /// A passphrase typed or injected by the operator.
    Passphrase(Passphrase),
    /// A file whose contents are the secret. Trailing ASCII whitespace (such as the
    /// final newline an editor adds) is ignored; at least 16 bytes must remain. The
    /// file is read whenever the key store's key has to be derived again.
    KeyFile(PathBuf),
}

/// Which kind of secret unlocks a key store; recorded in the key store header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SecretKind {
    /// A passphrase ([`Unlock::Passphrase`]).
    Passphrase,
    /// A key file ([`Unlock::KeyFile`]).
    KeyFile,
}

/// A non-empty passphrase, wiped from memory when dropped.
#[derive(Clone)]
pub struct Passphrase(Zeroizing<String>);

/// 32 bytes of AES-256 key material at one heap address, wiped when dropped.
pub(crate) struct KeyMaterial(Box<[u8; KEY_LEN]>);

// === impl Unlock ===

impl Unlock {
    /// The environment variable holding the passphrase.
    pub const PASSPHRASE_VAR: &'static str = "XKS_SOFT_PASSPHRASE";

    /// The environment variable holding the path of the key file.
    pub const KEY_FILE_VAR: &'static str = "XKS_SOFT_KEY_FILE";

    /// Reads the secret from the process environment: exactly one of
    /// [`XKS_SOFT_PASSPHRASE`](Self::PASSPHRASE_VAR) (the passphrase itself) or
    /// [`XKS_SOFT_KEY_FILE`](Self::KEY_FILE_VAR) (the path of a key file) must be
    /// set. An empty variable counts as unset.
    ///
    /// The environment keeps its own copy of a passphrase for the life of the
    /// process; a key file keeps the secret out of the environment.
    ///
    /// # Errors
    ///
    /// [`Error::Unlock`] when neither or both are set, or when the passphrase is not
    /// valid Unicode.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_vars(|name| std::env::var_os(name))
    }

    /// Like [`Unlock::from_env`], reading variables through `var` instead of the
    /// process environment (for tests and for configuration layers).
    ///
    /// # Errors
    ///
    /// As [`Unlock::from_env`].
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Self, Error> {
        let non_empty = |name| var(name).filter(|v: &OsString| !v.is_empty());
        match (
            non_empty(Self::PASSPHRASE_VAR),
            non_empty(Self::KEY_FILE_VAR),
        ) {
            (Some(passphrase), None) => {
                let passphrase = passphrase
                    .into_string()
                    .map_err(|_| Error::unlock(UnlockProblem::PassphraseNotUnicode))?;
                Ok(Self::Passphrase(Passphrase::new(passphrase)?))
            }
            (None, Some(path)) => Ok(Self::KeyFile(PathBuf::from(path))),
            (None, None) => Err(Error::unlock(UnlockProblem::NeitherVariableSet)),
            (Some(_), Some(_)) => Err(Error::unlock(UnlockProblem::BothVariablesSet)),
        }
    }

    /// Writes a new key file at `path` (which must not exist): 32 random bytes as
    /// 64 hexadecimal digits and a newline, readable and writable by the owner only
    /// (mode 0600), flushed to disk. Returns the [`Unlock::KeyFile`] for it.
    ///
    /// # Errors
    ///
    /// [`Error::Write`] if the file exists or cannot be written, [`Error::Random`] if
    /// the random number generator fails.
    pub fn create_key_file(path: impl Into<PathBuf>) -> Result<Self, Error> {
        let path = path.into();
        let key = KeyMaterial::generate()?;
        let mut text = Zeroizing::new([0u8; 2 * KEY_LEN + 1]);
        hex::encode_to_slice(key.as_bytes(), &mut text[..2 * KEY_LEN])
            .map_err(|_| Error::internal("hex encoding of a key file"))?;
        text[2 * KEY_LEN] = b'\n';
        let mut file = fsio::create_new_private(&path).map_err(|e| Error::write(&path, e))?;
        file.write_all(&text[..])
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::write(&path, e))?;
        fsio::sync_parent_dir(&path)?;
        Ok(Self::KeyFile(path))
    }

    /// The kind of this secret.
    pub fn kind(&self) -> SecretKind {
        match self {
            Self::Passphrase(_) => SecretKind::Passphrase,
            Self::KeyFile(_) => SecretKind::KeyFile,
        }
    }

    /// The secret bytes fed to the key derivation function.
    pub(crate) fn secret(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        match self {
            Self::Passphrase(p) => Ok(Zeroizing::new(p.0.as_bytes().to_vec())),
            Self::KeyFile(path) => read_key_file(path),
        }
    }
}

impl fmt::Debug for Unlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Passphrase(p) => f.debug_tuple("Passphrase").field(p).finish(),
            Self::KeyFile(path) => f.debug_tuple("KeyFile").field(path).finish(),
        }
    }
}

fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, Error> {
    let file = fs::File::open(path).map_err(|e| Error::read(path, e))?;
    let mut contents = Zeroizing::new(Vec::with_capacity(256));
    file.take(KEY_FILE_MAX_LEN + 1)
        .read_to_end(&mut contents)
        .map_err(|e| Error::read(path, e))?;
    if contents.len() as u64 > KEY_FILE_MAX_LEN {
        return Err(Error::unlock(UnlockProblem::KeyFileTooLong));
    }
    let len = contents.trim_ascii_end().len();
    if len < KEY_FILE_MIN_LEN {
        return Err(Error::unlock(UnlockProblem::KeyFileTooShort));
    }
    // Shortening never reallocates, so no copy of the secret is left behind.
    contents.truncate(len);
    Ok(contents)
}

// === impl SecretKind ===

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Passphrase => "passphrase",
            Self::KeyFile => "key file",
        })
    }
}

// === impl Passphrase ===

impl Passphrase {
    /// A passphrase; the string is moved in, not copied.
    ///
    /// # Errors
    ///
    /// [`Error::Unlock`] if it is empty.
    pub fn new(passphrase: impl Into<String>) -> Result<Self, Error> {
        let passphrase = Zeroizing::new(passphrase.into());
        if passphrase.is_empty() {
            return Err(Error::unlock(UnlockProblem::EmptyPassphrase));
        }
        Ok(Self(passphrase))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

// === impl KeyMaterial ===

impl KeyMaterial {
    /// Fresh key material from the operating system's random number generator.
    pub(crate) fn generate() -> Result<Self, Error> {
        let mut key = Self(Box::new([0; KEY_LEN]));
        getrandom::fill(&mut key.0[..]).map_err(Error::random)?;
        Ok(key)
    }

    /// Key material given by the caller (test vectors).
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Box::new(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyMaterial(<redacted>)")
    }
}

/// Written as 64 lowercase hexadecimal digits, through a buffer that is wiped.
impl Serialize for KeyMaterial {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = Zeroizing::new([0u8; 2 * KEY_LEN]);
        hex::encode_to_slice(self.as_bytes(), &mut text[..])
            .map_err(|_| serde::ser::Error::custom("hex encoding of key material"))?;
        let text = std::str::from_utf8(&text[..])
            .map_err(|_| serde::ser::Error::custom("hex encoding of key material"))?;
        serializer.serialize_str(text)
    }
}

/// Read from 64 hexadecimal digits straight into the wiped heap buffer.
impl<'de> Deserialize<'de> for KeyMaterial {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HexKey;

        impl Visitor<'_> for HexKey {
            type Value = KeyMaterial;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("64 hexadecimal digits of AES-256 key material")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<KeyMaterial, E> {
                let mut key = KeyMaterial(Box::new([0; KEY_LEN]));
                hex::decode_to_slice(text, &mut key.0[..])
                    .map_err(|_| E::custom("key material is not 64 hexadecimal digits"))?;
                Ok(key)
            }
        }

        deserializer.deserialize_str(HexKey)
    }
}

#[cfg(test)]
mod tests;
