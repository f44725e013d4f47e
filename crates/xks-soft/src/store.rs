//! Operator operations on a key store file.

use std::fmt;
use std::path::{Path, PathBuf};

use xks_protocol::KeyId;

use crate::format::{self, StoreKey};
use crate::fsio::{self, StoreLock};
use crate::keyset::{KeySet, now_secs};
use crate::{Error, KdfParams, KeyInfo, KeyState, Unlock, Usage};

/// An operator's handle on a key store file: create it, then create, rotate,
/// enable, disable and list keys.
///
/// Every change is one locked read-modify-write of the file: it takes the key
/// store's lock file, reads and decrypts the current file, applies the change,
/// and writes the whole key store to a new file that atomically replaces the old
/// one. Concurrent commands, in this process or others, therefore never lose each
/// other's changes, and a crash leaves the old or the new key store, never a mix.
///
/// The key derived from the passphrase or key file is kept in the handle while the
/// file's salt and parameters stay the same, so Argon2id runs once per handle, not
/// once per command. A running proxy does not see changes until it reloads
/// ([`SoftKeyManager::reload`](crate::SoftKeyManager::reload)).
///
/// All methods block on file I/O (and Argon2id, about a quarter of a second with
/// the recommended parameters); call them from a thread that may block.
pub struct KeyStore {
    path: PathBuf,
    unlock: Unlock,
    key: Option<StoreKey>,
}

// === impl KeyStore ===

impl KeyStore {
    /// Creates a new key store at `path` holding only the health check canary key
    /// ([`HEALTH_CANARY_KEY_ID`](crate::HEALTH_CANARY_KEY_ID)), encrypted with a
    /// key derived from `unlock` with `params`. The file gets mode 0600.
    ///
    /// # Errors
    ///
    /// [`Error::StoreExists`] if a file is already at `path`; [`Error::Read`] if
    /// the key file cannot be read; [`Error::Write`] or [`Error::Lock`] if the
    /// directory is not writable; [`Error::Random`].
    pub fn create(
        path: impl Into<PathBuf>,
        unlock: Unlock,
        params: KdfParams,
    ) -> Result<Self, Error> {
        let path = path.into();
        let _lock = StoreLock::acquire(&path)?;
        match path.try_exists() {
            Ok(false) => {}
            Ok(true) => return Err(Error::StoreExists { path }),
            Err(e) => return Err(Error::read(path, e)),
        }
        let key = StoreKey::generate(&unlock, params)?;
        let keys = KeySet::with_canary(now_secs())?;
        fsio::write_atomically(&path, &format::seal(&key, &keys)?)?;
        Ok(Self {
            path,
            unlock,
            key: Some(key),
        })
    }

    /// Opens the key store at `path`, checking that `unlock` decrypts it.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the file cannot be read; [`Error::Malformed`] or
    /// [`Error::UnsupportedVersion`] if it is not a key store this build reads;
    /// [`Error::UnlockMismatch`] or [`Error::WrongSecretOrTampered`] if `unlock`
    /// does not decrypt it.
    pub fn open(path: impl Into<PathBuf>, unlock: Unlock) -> Result<Self, Error> {
        let mut store = Self {
            path: path.into(),
            unlock,
            key: None,
        };
        store.read()?;
        Ok(store)
    }

    /// The key store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The Argon2id parameters the key store was last read or written with.
    pub fn kdf_params(&self) -> Option<KdfParams> {
        self.key.as_ref().map(StoreKey::params)
    }

    /// Every key, sorted by id, the health check canary included (marked
    /// [`KeyInfo::health_canary`]). Never any key material.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::open`].
    pub fn list_keys(&mut self) -> Result<Vec<KeyInfo>, Error> {
        Ok(self.read()?.keys.iter().map(|k| k.info()).collect())
    }

    /// The key `id`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`], or as [`KeyStore::open`].
    pub fn key_info(&mut self, id: &KeyId) -> Result<KeyInfo, Error> {
        let keys = self.read()?;
        keys.get(id.as_str())
            .map(|k| k.info())
            .ok_or_else(|| Error::key_not_found(id.as_str()))
    }

    /// Creates key `id` with fresh random material as version 1.
    ///
    /// # Errors
    ///
    /// [`Error::KeyExists`]; [`Error::ReservedKeyId`] for the canary's id; or as
    /// [`KeyStore::open`] and the write errors of [`KeyStore::create`].
    pub fn create_key(
        &mut self,
        id: &KeyId,
        usage: Usage,
        state: KeyState,
    ) -> Result<KeyInfo, Error> {
        self.update(|keys, now| Ok(keys.insert(id, usage, state, now)?.info()))
    }

    /// Adds a version with fresh random material to key `id`. New encryptions use
    /// it; older versions keep decrypting what they encrypted.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`]; [`Error::ReservedKeyId`] for the canary;
    /// [`Error::TooManyVersions`]; or as [`KeyStore::create_key`].
    pub fn rotate_key(&mut self, id: &KeyId) -> Result<KeyInfo, Error> {
        self.update(|keys, now| {
            let key = keys.get_mut(id)?;
            key.rotate(now)?;
            Ok(key.info())
        })
    }

    /// Enables key `id`; no change (and no write) if it is enabled.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::rotate_key`].
    pub fn enable_key(&mut self, id: &KeyId) -> Result<KeyInfo, Error> {
        self.set_state(id, KeyState::Enabled)
    }

    /// Disables key `id`; no change (and no write) if it is disabled. A disabled
    /// key refuses to encrypt and decrypt once the proxy has reloaded.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::rotate_key`].
    pub fn disable_key(&mut self, id: &KeyId) -> Result<KeyInfo, Error> {
        self.set_state(id, KeyState::Disabled)
    }

    /// Changes what key `id` may do; no change (and no write) if it is the same.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::rotate_key`].
    pub fn set_usage(&mut self, id: &KeyId, usage: Usage) -> Result<KeyInfo, Error> {
        self.update_if(|keys, _| {
            let key = keys.get_mut(id)?;
            let changed = key.usage != usage;
            key.usage = usage;
            Ok((key.info(), changed))
        })
    }

    /// Re-encrypts the key store under a new passphrase or key file (or new
    /// Argon2id parameters), with a fresh salt. The keys are unchanged.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::create_key`].
    pub fn change_unlock(&mut self, unlock: Unlock, params: KdfParams) -> Result<(), Error> {
        let _lock = StoreLock::acquire(&self.path)?;
        let keys = self.read()?;
        let key = StoreKey::generate(&unlock, params)?;
        fsio::write_atomically(&self.path, &format::seal(&key, &keys)?)?;
        self.unlock = unlock;
        self.key = Some(key);
        Ok(())
    }

    fn set_state(&mut self, id: &KeyId, state: KeyState) -> Result<KeyInfo, Error> {
        self.update_if(|keys, _| {
            let key = keys.get_mut(id)?;
            let changed = key.state != state;
            key.state = state;
            Ok((key.info(), changed))
        })
    }

    fn update<T>(
        &mut self,
        change: impl FnOnce(&mut KeySet, u64) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.update_if(|keys, now| Ok((change(keys, now)?, true)))
    }

    /// The locked read-modify-write; `change` says whether it changed anything.
    fn update_if<T>(
        &mut self,
        change: impl FnOnce(&mut KeySet, u64) -> Result<(T, bool), Error>,
    ) -> Result<T, Error> {
        let _lock = StoreLock::acquire(&self.path)?;
        let mut keys = self.read()?;
        let (result, changed) = change(&mut keys, now_secs())?;
        if changed {
            let key = self
                .key
                .as_ref()
                .ok_or_else(|| Error::internal("no key after reading the key store"))?;
            fsio::write_atomically(&self.path, &format::seal(key, &keys)?)?;
        }
        Ok(result)
    }

    fn read(&mut self) -> Result<KeySet, Error> {
        let bytes = fsio::read_store_file(&self.path)?;
        format::open(&bytes, &self.unlock, &mut self.key)
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("path", &self.path)
            .field("unlock", &self.unlock)
            .field("kdf_params", &self.kdf_params())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
