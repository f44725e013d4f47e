//! The key set: what the key store file holds once decrypted.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use xks_keymanager::KeyVersion;
use xks_protocol::KeyId;

use crate::secret::KeyMaterial;
use crate::{Error, HEALTH_CANARY_KEY_ID};

/// The operations a key allows: encrypt, decrypt, both or neither.
///
/// KMS requires both to create a KMS key over an external key; a key that allows
/// only one (or neither) can serve a key being retired or brought in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Usage {
    encrypt: bool,
    decrypt: bool,
}

/// Whether a key may be used.
///
/// A disabled key still answers GetKeyMetadata (with `DISABLED`), and refuses to
/// encrypt and decrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KeyState {
    /// The key encrypts and decrypts as its [`Usage`] allows.
    Enabled,
    /// The key refuses to encrypt and decrypt.
    Disabled,
}

/// Everything the key store file holds, once decrypted: the keys, sorted by id.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<KeyRecord>,
}

/// One key: its id, usage, state and every version of its material.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyRecord {
    pub(crate) id: KeyId,
    pub(crate) usage: Usage,
    pub(crate) state: KeyState,
    /// Seconds since the Unix epoch.
    pub(crate) created: u64,
    /// Version `n` at index `n - 1`; never empty.
    pub(crate) versions: Vec<VersionRecord>,
}

/// One version of a key's material.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VersionRecord {
    pub(crate) version: KeyVersionNumber,
    /// Seconds since the Unix epoch.
    pub(crate) created: u64,
    pub(crate) material: KeyMaterial,
}

/// A key version as a JSON number, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub(crate) struct KeyVersionNumber(pub(crate) KeyVersion);

/// What an operator sees of a key: never its material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// The external key id.
    pub id: KeyId,
    /// The operations the key allows.
    pub usage: Usage,
    /// Whether the key is enabled.
    pub state: KeyState,
    /// How many versions the key has; they are numbered 1 to this.
    pub versions: u32,
    /// The newest version, used by new encryptions.
    pub current_version: KeyVersion,
    /// When the key was created (to the second).
    pub created: SystemTime,
    /// When the newest version was created (to the second); equal to `created`
    /// for a key never rotated.
    pub rotated: SystemTime,
    /// Whether this is the health check canary key ([`HEALTH_CANARY_KEY_ID`]),
    /// which KMS never sees and operators cannot change.
    pub health_canary: bool,
}

// === impl Usage ===

impl Usage {
    /// Encrypt and decrypt: what KMS needs.
    pub const ENCRYPT_DECRYPT: Self = Self::new(true, true);
    /// Encrypt only.
    pub const ENCRYPT_ONLY: Self = Self::new(true, false);
    /// Decrypt only.
    pub const DECRYPT_ONLY: Self = Self::new(false, true);
    /// Neither encrypt nor decrypt.
    pub const NONE: Self = Self::new(false, false);

    /// A usage from its two flags.
    pub const fn new(encrypt: bool, decrypt: bool) -> Self {
        Self { encrypt, decrypt }
    }

    /// Whether the key may encrypt.
    pub const fn encrypt(self) -> bool {
        self.encrypt
    }

    /// Whether the key may decrypt.
    pub const fn decrypt(self) -> bool {
        self.decrypt
    }

    /// The XKS `keyUsage` list for GetKeyMetadata.
    pub(crate) fn key_usage(self) -> Vec<xks_protocol::KeyUsage> {
        let mut usage = Vec::with_capacity(2);
        if self.encrypt {
            usage.push(xks_protocol::KeyUsage::Encrypt);
        }
        if self.decrypt {
            usage.push(xks_protocol::KeyUsage::Decrypt);
        }
        usage
    }
}

impl fmt::Debug for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.encrypt.then_some("ENCRYPT"))
            .entries(self.decrypt.then_some("DECRYPT"))
            .finish()
    }
}

/// Written as the XKS list, `["ENCRYPT", "DECRYPT"]`, `["ENCRYPT"]`, ... or `[]`.
impl Serialize for Usage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        if self.encrypt {
            seq.serialize_element("ENCRYPT")?;
        }
        if self.decrypt {
            seq.serialize_element("DECRYPT")?;
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for Usage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UsageList;

        impl<'de> Visitor<'de> for UsageList {
            type Value = Usage;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of distinct \"ENCRYPT\" and \"DECRYPT\"")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Usage, A::Error> {
                let mut usage = Usage::NONE;
                while let Some(name) = seq.next_element::<&str>()? {
                    let flag = match name {
                        "ENCRYPT" => &mut usage.encrypt,
                        "DECRYPT" => &mut usage.decrypt,
                        _ => return Err(de::Error::unknown_variant(name, &["ENCRYPT", "DECRYPT"])),
                    };
                    if std::mem::replace(flag, true) {
                        return Err(de::Error::custom("a usage is listed twice"));
                    }
                }
                Ok(usage)
            }
        }

        deserializer.deserialize_seq(UsageList)
    }
}

// === impl KeyState ===

impl KeyState {
    /// Whether this is [`KeyState::Enabled`].
    pub const fn is_enabled(self) -> bool {
        matches!(self, Self::Enabled)
    }
}

// === impl KeyVersionNumber ===

impl TryFrom<u32> for KeyVersionNumber {
    type Error = &'static str;

    fn try_from(n: u32) -> Result<Self, Self::Error> {
        KeyVersion::new(n)
            .map(Self)
            .ok_or("key versions count from 1")
    }
}

impl From<KeyVersionNumber> for u32 {
    fn from(v: KeyVersionNumber) -> Self {
        v.0.get()
    }
}

// === impl KeySet ===

impl KeySet {
    /// A new key set holding only a fresh health check canary key.
    pub(crate) fn with_canary(now: u64) -> Result<Self, Error> {
        let canary =
            KeyRecord::generate(canary_id()?, Usage::ENCRYPT_DECRYPT, KeyState::Enabled, now)?;
        Ok(Self { keys: vec![canary] })
    }

    /// Checks what serde cannot: ids sorted and unique, versions numbered 1, 2, ...
    /// in order, and the canary key present and usable.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.keys.is_sorted_by(|a, b| a.id.as_str() < b.id.as_str()) {
            return Err(Error::malformed("key ids are not sorted and unique"));
        }
        for key in &self.keys {
            let dense = key
                .versions
                .iter()
                .zip(1u32..)
                .all(|(v, n)| v.version.0.get() == n);
            if key.versions.is_empty() || !dense {
                return Err(Error::malformed("key versions are not numbered 1, 2, ..."));
            }
        }
        match self.get(HEALTH_CANARY_KEY_ID) {
            Some(c) if c.usage == Usage::ENCRYPT_DECRYPT && c.state.is_enabled() => Ok(()),
            _ => Err(Error::malformed(
                "the health check canary key is missing or unusable",
            )),
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&KeyRecord> {
        self.position(id).ok().map(|i| &self.keys[i])
    }

    /// The customer key `id` for a change: not the canary, and present.
    pub(crate) fn get_mut(&mut self, id: &KeyId) -> Result<&mut KeyRecord, Error> {
        refuse_canary(id)?;
        match self.position(id.as_str()) {
            Ok(i) => Ok(&mut self.keys[i]),
            Err(_) => Err(Error::key_not_found(id.as_str())),
        }
    }

    /// Adds a customer key with fresh material, keeping the keys sorted.
    pub(crate) fn insert(
        &mut self,
        id: &KeyId,
        usage: Usage,
        state: KeyState,
        now: u64,
    ) -> Result<&KeyRecord, Error> {
        refuse_canary(id)?;
        match self.position(id.as_str()) {
            Ok(_) => Err(Error::KeyExists {
                id: id.as_str().to_owned(),
            }),
            Err(i) => {
                let record = KeyRecord::generate(id.clone(), usage, state, now)?;
                self.keys.insert(i, record);
                Ok(&self.keys[i])
            }
        }
    }

    fn position(&self, id: &str) -> Result<usize, usize> {
        self.keys.binary_search_by(|k| k.id.as_str().cmp(id))
    }
}

fn canary_id() -> Result<KeyId, Error> {
    KeyId::new(HEALTH_CANARY_KEY_ID).map_err(|_| Error::internal("the canary key id is invalid"))
}

fn refuse_canary(id: &KeyId) -> Result<(), Error> {
    if id.as_str() == HEALTH_CANARY_KEY_ID {
        return Err(Error::ReservedKeyId);
    }
    Ok(())
}

// === impl KeyRecord ===

impl KeyRecord {
    fn generate(id: KeyId, usage: Usage, state: KeyState, now: u64) -> Result<Self, Error> {
        let first = VersionRecord {
            version: KeyVersionNumber(KeyVersion::FIRST),
            created: now,
            material: KeyMaterial::generate()?,
        };
        Ok(Self {
            id,
            usage,
            state,
            created: now,
            versions: vec![first],
        })
    }

    /// Adds a version with fresh material, which new encryptions will use.
    pub(crate) fn rotate(&mut self, now: u64) -> Result<(), Error> {
        let next = self
            .current_version()
            .next()
            .ok_or_else(|| Error::TooManyVersions {
                id: self.id.as_str().to_owned(),
            })?;
        self.versions.push(VersionRecord {
            version: KeyVersionNumber(next),
            created: now,
            material: KeyMaterial::generate()?,
        });
        Ok(())
    }

    pub(crate) fn current_version(&self) -> KeyVersion {
        self.versions
            .last()
            .map_or(KeyVersion::FIRST, |v| v.version.0)
    }

    pub(crate) fn info(&self) -> KeyInfo {
        let current = self.current_version();
        let rotated = self.versions.last().map_or(self.created, |v| v.created);
        KeyInfo {
            id: self.id.clone(),
            usage: self.usage,
            state: self.state,
            versions: current.get(),
            current_version: current,
            created: time_from_secs(self.created),
            rotated: time_from_secs(rotated),
            health_canary: self.id.as_str() == HEALTH_CANARY_KEY_ID,
        }
    }
}

/// Now, in whole seconds since the Unix epoch (0 for a clock before 1970).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn time_from_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH)
}

#[cfg(test)]
mod tests;
