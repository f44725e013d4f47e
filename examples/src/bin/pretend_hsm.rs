//! A `KeyManager` for a new (pretend) HSM, written from scratch against the trait
//! and run through the shared battery every backend must pass.
//!
//! The "HSM" is a single device behind a lock that holds AES-256 keys by label, with
//! versions, usage flags and an enabled bit: the shape of a real vendor's API. The
//! adapter maps XKS key ids to labels, builds the GCM additional data with
//! `xks_keymanager::gcm_aad`, and reports failures with the `ErrorKind` that says who
//! is at fault.
//!
//! Usage: `cargo run -p xks-examples --bin pretend_hsm` runs the battery and prints
//! each check; `cargo test -p xks-examples` runs it as tests.
//!
//! Example code: unwrap is acceptable here, not in a real backend.
#![expect(clippy::unwrap_used, reason = "example code")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{AeadInOut, Nonce, Tag};
use aes_gcm::{Aes256Gcm, KeyInit};
use async_trait::async_trait;
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_keymanager::{
    ErrorKind, KeyManager, KeyManagerError, KeyVersion, NodeHealth, Sealed, SealedRef, gcm_aad,
};
use xks_protocol::{
    HealthStatus, KeyId, KeySpec, KeyStatus, KeyUsage, MetadataResponse, Plaintext,
};

/// The pretend device: keys by label, each a list of versions.
#[derive(Default)]
struct Device {
    keys: HashMap<String, DeviceKey>,
}

struct DeviceKey {
    versions: Vec<Aes256Gcm>,
    encrypt: bool,
    decrypt: bool,
    enabled: bool,
}

/// The adapter: XKS key ids are device labels prefixed with `xks/`.
#[derive(Clone)]
struct PretendHsm {
    device: Arc<Mutex<Device>>,
}

impl std::fmt::Debug for PretendHsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PretendHsm")
    }
}

impl PretendHsm {
    fn label(key: &KeyId) -> String {
        format!("xks/{key}")
    }

    /// Device administration: create a key, or add a version to it.
    fn provision(&self, label: &str, encrypt: bool, decrypt: bool, enabled: bool) {
        let mut material = [0u8; 32];
        getrandom::fill(&mut material).unwrap();
        let cipher = Aes256Gcm::new_from_slice(&material).unwrap();
        let mut device = self.device.lock().unwrap();
        let key = device
            .keys
            .entry(label.to_owned())
            .or_insert_with(|| DeviceKey {
                versions: Vec::new(),
                encrypt,
                decrypt,
                enabled,
            });
        key.versions.push(cipher);
    }

    /// Runs `f` on the key's entry with the device locked (microseconds, no await).
    fn with_key<T>(
        &self,
        key: &KeyId,
        f: impl FnOnce(&DeviceKey) -> Result<T, KeyManagerError>,
    ) -> Result<T, KeyManagerError> {
        let device = self
            .device
            .lock()
            .map_err(|_| KeyManagerError::new(ErrorKind::Internal, "device lock poisoned"))?;
        let entry = device.keys.get(&Self::label(key)).ok_or_else(|| {
            KeyManagerError::new(ErrorKind::KeyNotFound, "no such label on the device")
        })?;
        f(entry)
    }
}

fn check(entry: &DeviceKey, allowed: bool) -> Result<(), KeyManagerError> {
    if !entry.enabled {
        return Err(KeyManagerError::new(
            ErrorKind::KeyDisabled,
            "key disabled on the device",
        ));
    }
    if !allowed {
        return Err(KeyManagerError::new(
            ErrorKind::KeyUsage,
            "the key does not allow this",
        ));
    }
    Ok(())
}

#[async_trait]
impl KeyManager for PretendHsm {
    fn backend_name(&self) -> &'static str {
        "pretend-hsm"
    }

    fn vendor(&self) -> &str {
        "Pretend HSM Co."
    }

    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        self.with_key(key, |entry| {
            let mut usage = Vec::new();
            if entry.encrypt {
                usage.push(KeyUsage::Encrypt);
            }
            if entry.decrypt {
                usage.push(KeyUsage::Decrypt);
            }
            Ok(MetadataResponse {
                key_spec: KeySpec::Aes256,
                key_usage: usage,
                key_status: if entry.enabled {
                    KeyStatus::Enabled
                } else {
                    KeyStatus::Disabled
                },
            })
        })
    }

    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError> {
        self.with_key(key, |entry| {
            check(entry, entry.encrypt)?;
            let count = u32::try_from(entry.versions.len()).unwrap_or(0);
            let (Some(cipher), Some(version)) = (entry.versions.last(), KeyVersion::new(count))
            else {
                return Err(KeyManagerError::new(
                    ErrorKind::Internal,
                    "key without versions",
                ));
            };
            let mut iv = [0u8; 12];
            getrandom::fill(&mut iv).map_err(|e| {
                KeyManagerError::new(ErrorKind::Internal, "RNG failed").with_source(e)
            })?;
            let mut ciphertext = plaintext.to_vec();
            let tag = cipher
                .encrypt_inout_detached(
                    &Nonce::<Aes256Gcm>::from(iv),
                    &gcm_aad(aad, version)?,
                    ciphertext.as_mut_slice().into(),
                )
                .map_err(|_| KeyManagerError::new(ErrorKind::Internal, "device encrypt failed"))?;
            Ok(Sealed {
                version,
                iv: iv.to_vec(),
                ciphertext,
                tag: tag.into(),
            })
        })
    }

    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        let invalid =
            || KeyManagerError::new(ErrorKind::InvalidCiphertext, "authentication failed");
        self.with_key(key, |entry| {
            check(entry, entry.decrypt)?;
            let index = usize::try_from(sealed.version.get() - 1).map_err(|_| invalid())?;
            let cipher = entry.versions.get(index).ok_or_else(invalid)?;
            let iv: [u8; 12] = sealed.iv.try_into().map_err(|_| invalid())?;
            let tag: [u8; 16] = sealed.tag.try_into().map_err(|_| invalid())?;
            let mut plaintext = Plaintext::new(sealed.ciphertext.to_vec());
            cipher
                .decrypt_inout_detached(
                    &Nonce::<Aes256Gcm>::from(iv),
                    &gcm_aad(aad, sealed.version)?,
                    plaintext.as_mut_bytes().into(),
                    &Tag::<Aes256Gcm>::from(tag),
                )
                .map_err(|_| invalid())?;
            Ok(plaintext)
        })
    }

    async fn health(&self) -> Vec<NodeHealth> {
        // A deep check: a real round trip on the device's canary key.
        let canary = KeyId::new("canary").unwrap();
        let ok = match self.encrypt(&canary, b"health", b"").await {
            Ok(sealed) => self.decrypt(&canary, sealed.as_ref(), b"").await.is_ok(),
            Err(_) => false,
        };
        vec![NodeHealth {
            id: "pretend-hsm-1".to_owned(),
            model: "Pretend HSM 1.0".to_owned(),
            status: if ok {
                HealthStatus::Active
            } else {
                HealthStatus::Unavailable
            },
        }]
    }
}

/// The battery's view of the pretend HSM.
struct PretendFixture {
    hsm: PretendHsm,
}

#[async_trait]
impl Fixture for PretendFixture {
    fn key_manager(&self) -> Arc<dyn KeyManager> {
        Arc::new(self.hsm.clone())
    }

    fn key(&self, role: KeyRole) -> KeyId {
        KeyId::new(&format!("{role:?}").to_lowercase()).unwrap()
    }

    async fn rotate(&self, key: &KeyId) {
        self.hsm
            .provision(&PretendHsm::label(key), true, true, true);
    }
}

async fn fixture() -> PretendFixture {
    let hsm = PretendHsm {
        device: Arc::default(),
    };
    let f = PretendFixture { hsm: hsm.clone() };
    for (role, encrypt, decrypt, enabled) in [
        (KeyRole::Primary, true, true, true),
        (KeyRole::Other, true, true, true),
        (KeyRole::EncryptOnly, true, false, true),
        (KeyRole::DecryptOnly, false, true, true),
        (KeyRole::NoUsage, false, false, true),
        (KeyRole::Disabled, true, true, false),
        (KeyRole::Rotating, true, true, true),
    ] {
        hsm.provision(&PretendHsm::label(&f.key(role)), encrypt, decrypt, enabled);
    }
    hsm.provision("xks/canary", true, true, true);
    f
}

#[expect(clippy::print_stdout, reason = "an example prints what it does")]
fn main() {
    use xks_keymanager::testing as t;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let f = fixture().await;
        t::metadata_of_every_role(&f).await;
        t::unknown_key_is_not_found(&f).await;
        t::round_trips_at_all_sizes(&f).await;
        t::tampered_ciphertext_is_rejected(&f).await;
        t::tampered_aad_is_rejected(&f).await;
        t::usage_is_enforced(&f).await;
        t::disabled_key_is_refused(&f).await;
        t::rotation_keeps_old_ciphertexts(&f).await;
        t::cdiv_and_verification_decrypt(&f).await;
        t::concurrent_mixed_traffic(&f).await;
        t::health_reports_active_nodes(&f).await;
    });
    println!(
        "the pretend HSM passes the battery's checks; `cargo test -p xks-examples` runs all of them"
    );
}

#[cfg(test)]
mod tests {
    use super::fixture;

    xks_keymanager::key_manager_battery!(fixture());
}
