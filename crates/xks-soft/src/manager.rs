//! The `KeyManager` over a key set held in memory.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use arc_swap::ArcSwap;
use async_trait::async_trait;
use xks_keymanager::{
    ErrorKind, KeyManager, KeyManagerError, KeyVersion, NodeHealth, Sealed, SealedRef, gcm_aad,
};
use xks_protocol::{HealthStatus, KeyId, KeySpec, KeyStatus, MetadataResponse, Plaintext};

use crate::format::{self, StoreKey};
use crate::fsio;
use crate::keyset::{KeyRecord, KeySet, now_secs};
use crate::{Error, HEALTH_CANARY_KEY_ID, KeyState, Unlock, Usage};

/// The only IV length this backend produces and accepts.
const IV_LEN: usize = 12;

/// The only tag length this backend produces and accepts.
const TAG_LEN: usize = 16;

/// What the health probe encrypts, and the AAD it binds.
const PROBE_PLAINTEXT: &[u8] = b"xks-soft health probe";
const PROBE_AAD: &[u8] = b"xks-health-canary";

/// `xksProxyModel`-style model string of this backend's single node.
const MODEL: &str = concat!("xks-soft ", env!("CARGO_PKG_VERSION"));

/// The software AES-256-GCM [`KeyManager`]: the keys of a key store file (or of an
/// ephemeral in-memory set), held in memory with one ready cipher per key version.
///
/// - **Lookups** go through a `HashMap` by key id.
/// - **Reloads** ([`SoftKeyManager::reload`]) read and decrypt the file, build a
///   whole new key set, and swap it in atomically (`ArcSwap`): requests in flight
///   finish on the set they started with, and no request ever waits for a reload.
/// - **Encryption** uses the key's newest version, a fresh 96-bit IV from the
///   operating system's random number generator, and
///   [`gcm_aad`]`(aad, version)` as the GCM additional data.
/// - **Decryption** uses the version named by the [`SealedRef`]; an unknown
///   version, an IV other than 12 bytes or a tag other than 16 bytes is
///   [`ErrorKind::InvalidCiphertext`].
/// - The key's state and usage are checked before any cryptography:
///   [`ErrorKind::KeyDisabled`], then [`ErrorKind::KeyUsage`].
/// - The crypto takes microseconds, so it runs inline on the calling task.
///
/// The health check canary key ([`HEALTH_CANARY_KEY_ID`]) is used by
/// [`KeyManager::health`] only; for every other call it does not exist. Health
/// reports the single node `Active` when an encryption and decryption with the
/// canary succeed, `Unavailable` otherwise. It checks the keys in memory, which
/// serve requests; problems with the file (deleted, damaged, re-encrypted under
/// another secret) surface as errors of [`SoftKeyManager::reload`].
///
/// `Debug` shows the node id, vendor and number of keys, never key material.
pub struct SoftKeyManager {
    keys: ArcSwap<Snapshot>,
    source: Source,
    node_id: String,
    vendor: String,
}

/// Where the keys come from.
enum Source {
    File {
        path: PathBuf,
        unlock: Unlock,
        /// The derived key store key, reused across reloads while the salt and
        /// parameters are unchanged; the lock also serialises reloads.
        key: Mutex<Option<StoreKey>>,
    },
    Ephemeral,
}

/// One immutable key set, as swapped in by a reload.
struct Snapshot {
    keys: HashMap<KeyId, LoadedKey>,
    canary: LoadedKey,
}

/// A key ready for use: version `n` is the cipher at index `n - 1`.
struct LoadedKey {
    usage: Usage,
    state: KeyState,
    versions: Vec<Aes256Gcm>,
}

// === impl SoftKeyManager ===

impl SoftKeyManager {
    /// The default `ekmVendor`.
    pub const DEFAULT_VENDOR: &'static str = "xks-toolkit";

    /// Loads the key store at `path`, unlocked with `unlock`.
    ///
    /// This blocks on file I/O and Argon2id; call it before serving, or from a
    /// thread that may block.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::open`](crate::KeyStore::open).
    pub fn open(path: impl Into<PathBuf>, unlock: Unlock) -> Result<Self, Error> {
        let path = path.into();
        let mut key = None;
        let set = read(&path, &unlock, &mut key)?;
        let node_id = match path.file_name() {
            Some(name) => format!("soft:{}", name.to_string_lossy()),
            None => "soft:key-store".to_owned(),
        };
        Ok(Self::from_snapshot(
            Snapshot::build(&set)?,
            Source::File {
                path,
                unlock,
                key: Mutex::new(key),
            },
            node_id,
        ))
    }

    /// An in-memory key manager for demos and tests: the given keys, each with one
    /// version of fresh random material, and a canary key. Nothing is written to
    /// disk, the keys are gone when it is dropped, and [`SoftKeyManager::reload`]
    /// does nothing.
    ///
    /// Its node id is `soft:ephemeral`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyExists`] for a repeated id, [`Error::ReservedKeyId`] for the
    /// canary's id, [`Error::Random`].
    pub fn ephemeral(
        keys: impl IntoIterator<Item = (KeyId, Usage, KeyState)>,
    ) -> Result<Self, Error> {
        let now = now_secs();
        let mut set = KeySet::with_canary(now)?;
        for (id, usage, state) in keys {
            set.insert(&id, usage, state, now)?;
        }
        Ok(Self::from_snapshot(
            Snapshot::build(&set)?,
            Source::Ephemeral,
            "soft:ephemeral".to_owned(),
        ))
    }

    fn from_snapshot(snapshot: Snapshot, source: Source, node_id: String) -> Self {
        Self {
            keys: ArcSwap::from_pointee(snapshot),
            source,
            node_id,
            vendor: Self::DEFAULT_VENDOR.to_owned(),
        }
    }

    /// Sets the `ekmVendor` reported by GetHealthStatus.
    #[must_use]
    pub fn with_vendor(mut self, vendor: impl Into<String>) -> Self {
        self.vendor = vendor.into();
        self
    }

    /// Reads the key store file again and swaps the new key set in, atomically:
    /// after it returns, requests see every key, version, state and usage change
    /// made by operators. Requests are never blocked by a reload.
    ///
    /// On error the current key set stays in use. Concurrent reloads run one
    /// after the other. An ephemeral key manager has nothing to reload.
    ///
    /// This blocks on file I/O (and on Argon2id if the key store's secret or
    /// parameters changed); call it from `tokio::task::spawn_blocking` or a thread
    /// that may block.
    ///
    /// # Errors
    ///
    /// As [`KeyStore::open`](crate::KeyStore::open).
    pub fn reload(&self) -> Result<(), Error> {
        let Source::File { path, unlock, key } = &self.source else {
            return Ok(());
        };
        let mut key = key.lock().unwrap_or_else(PoisonError::into_inner);
        let set = read(path, unlock, &mut key)?;
        self.keys.store(Arc::new(Snapshot::build(&set)?));
        Ok(())
    }

    /// The number of customer keys loaded (the canary not counted).
    pub fn key_count(&self) -> usize {
        self.keys.load().keys.len()
    }

    /// The id reported for this backend's single node: `soft:<key store file
    /// name>`, or `soft:ephemeral`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    fn probe(&self) -> Result<(), KeyManagerError> {
        let keys = self.keys.load();
        let sealed = keys.canary.seal(PROBE_PLAINTEXT, PROBE_AAD)?;
        let opened = keys.canary.open(sealed.as_ref(), PROBE_AAD)?;
        if opened.as_bytes() != PROBE_PLAINTEXT {
            return Err(KeyManagerError::new(
                ErrorKind::Internal,
                "the health probe decrypted to another plaintext",
            ));
        }
        Ok(())
    }
}

fn read(
    path: &std::path::Path,
    unlock: &Unlock,
    key: &mut Option<StoreKey>,
) -> Result<KeySet, Error> {
    let bytes = fsio::read_store_file(path)?;
    format::open(&bytes, unlock, key)
}

#[async_trait]
impl KeyManager for SoftKeyManager {
    fn backend_name(&self) -> &'static str {
        "soft"
    }

    fn vendor(&self) -> &str {
        &self.vendor
    }

    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        let keys = self.keys.load();
        let key = keys.get(key)?;
        Ok(MetadataResponse {
            key_spec: KeySpec::Aes256,
            key_usage: key.usage.key_usage(),
            key_status: match key.state {
                KeyState::Enabled => KeyStatus::Enabled,
                KeyState::Disabled => KeyStatus::Disabled,
            },
        })
    }

    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError> {
        let keys = self.keys.load();
        let key = keys.get(key)?;
        key.check(key.usage.encrypt())?;
        key.seal(plaintext, aad)
    }

    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        let keys = self.keys.load();
        let key = keys.get(key)?;
        key.check(key.usage.decrypt())?;
        key.open(sealed, aad)
    }

    async fn health(&self) -> Vec<NodeHealth> {
        let status = match self.probe() {
            Ok(()) => HealthStatus::Active,
            Err(_) => HealthStatus::Unavailable,
        };
        vec![NodeHealth {
            id: self.node_id.clone(),
            model: MODEL.to_owned(),
            status,
        }]
    }

    /// Re-reads the key store file ([`SoftKeyManager::reload`]); blocks on file I/O.
    async fn reload(&self) -> Result<(), KeyManagerError> {
        Self::reload(self).map_err(|e| {
            KeyManagerError::new(
                ErrorKind::Unavailable,
                "the key store could not be reloaded; the previous keys stay in use",
            )
            .with_source(e)
        })
    }
}

impl fmt::Debug for SoftKeyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::File { path, unlock, .. } => format!("file {} ({:?})", path.display(), unlock),
            Source::Ephemeral => "ephemeral".to_owned(),
        };
        f.debug_struct("SoftKeyManager")
            .field("node_id", &self.node_id)
            .field("vendor", &self.vendor)
            .field("source", &source)
            .field("keys", &self.key_count())
            .finish_non_exhaustive()
    }
}

// === impl Snapshot ===

impl Snapshot {
    fn build(set: &KeySet) -> Result<Self, Error> {
        let mut keys = HashMap::with_capacity(set.keys.len());
        let mut canary = None;
        for record in &set.keys {
            let loaded = LoadedKey::build(record);
            if record.id.as_str() == HEALTH_CANARY_KEY_ID {
                canary = Some(loaded);
            } else {
                keys.insert(record.id.clone(), loaded);
            }
        }
        let canary =
            canary.ok_or_else(|| Error::malformed("the health check canary key is missing"))?;
        Ok(Self { keys, canary })
    }

    fn get(&self, key: &KeyId) -> Result<&LoadedKey, KeyManagerError> {
        self.keys.get(key).ok_or_else(|| {
            KeyManagerError::new(ErrorKind::KeyNotFound, "no such key in the soft key store")
        })
    }
}

// === impl LoadedKey ===

impl LoadedKey {
    fn build(record: &KeyRecord) -> Self {
        Self {
            usage: record.usage,
            state: record.state,
            versions: record
                .versions
                .iter()
                .map(|v| Aes256Gcm::new(v.material.as_bytes().into()))
                .collect(),
        }
    }

    /// State first, then usage: a disabled key is disabled whatever it allows.
    fn check(&self, allowed: bool) -> Result<(), KeyManagerError> {
        if !self.state.is_enabled() {
            return Err(KeyManagerError::new(
                ErrorKind::KeyDisabled,
                "the key is disabled in the soft key store",
            ));
        }
        if !allowed {
            return Err(KeyManagerError::new(
                ErrorKind::KeyUsage,
                "the key's usage does not allow this operation",
            ));
        }
        Ok(())
    }

    /// Encrypts under the newest version with a fresh random IV.
    fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, KeyManagerError> {
        let (Some(cipher), Some(version)) = (self.versions.last(), self.current_version()) else {
            return Err(KeyManagerError::new(
                ErrorKind::Internal,
                "a key without versions",
            ));
        };
        let gcm_aad = gcm_aad(aad, version)?;
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|e| {
            KeyManagerError::new(ErrorKind::Internal, "the OS random number generator failed")
                .with_source(e)
        })?;
        seal_with_iv(cipher, version, iv, &gcm_aad, plaintext)
    }

    /// Decrypts with the version `sealed` names.
    fn open(&self, sealed: SealedRef<'_>, aad: &[u8]) -> Result<Plaintext, KeyManagerError> {
        let invalid = |detail| KeyManagerError::new(ErrorKind::InvalidCiphertext, detail);
        let iv: [u8; IV_LEN] = sealed
            .iv
            .try_into()
            .map_err(|_| invalid("the IV is not 12 bytes, so this backend did not produce it"))?;
        let tag: [u8; TAG_LEN] = sealed
            .tag
            .try_into()
            .map_err(|_| invalid("the authentication tag is not 16 bytes"))?;
        let index = usize::try_from(sealed.version.get() - 1).unwrap_or(usize::MAX);
        let cipher = self
            .versions
            .get(index)
            .ok_or_else(|| invalid("the key has no such version"))?;
        let gcm_aad = gcm_aad(aad, sealed.version)?;
        let mut plaintext = Plaintext::new(sealed.ciphertext.to_vec());
        cipher
            .decrypt_inout_detached(
                &Nonce::from(iv),
                &gcm_aad,
                plaintext.as_mut_bytes().into(),
                &Tag::from(tag),
            )
            .map_err(|_| invalid("AES-GCM authentication failed"))?;
        Ok(plaintext)
    }

    fn current_version(&self) -> Option<KeyVersion> {
        u32::try_from(self.versions.len())
            .ok()
            .and_then(KeyVersion::new)
    }
}

/// AES-256-GCM encryption with a given IV and GCM additional data. Production
/// callers pass a fresh random IV; tests pass known-answer vectors.
fn seal_with_iv(
    cipher: &Aes256Gcm,
    version: KeyVersion,
    iv: [u8; IV_LEN],
    gcm_aad: &[u8],
    plaintext: &[u8],
) -> Result<Sealed, KeyManagerError> {
    let mut ciphertext = plaintext.to_vec();
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(iv), gcm_aad, ciphertext.as_mut_slice().into())
        .map_err(|_| KeyManagerError::new(ErrorKind::Unsupported, "input too long for AES-GCM"))?;
    let tag: [u8; TAG_LEN] = tag.into();
    Ok(Sealed {
        version,
        iv: iv.to_vec(),
        ciphertext,
        tag,
    })
}

#[cfg(test)]
mod tests;
