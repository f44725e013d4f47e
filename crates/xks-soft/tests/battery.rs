//! The shared key manager battery, run on a key store file.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tempfile::TempDir;
use xks_keymanager::KeyManager;
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_protocol::KeyId;
use xks_soft::{KdfParams, KeyState, KeyStore, Passphrase, SoftKeyManager, Unlock, Usage};

/// A key store in a temporary directory with one key per role, and the key
/// manager loaded from it. Rotation goes through the operator API and a reload,
/// as it does in production.
struct SoftFixture {
    km: Arc<SoftKeyManager>,
    store: Mutex<KeyStore>,
    _dir: TempDir,
}

const ROLES: [(KeyRole, &str, Usage, KeyState); 7] = [
    (
        KeyRole::Primary,
        "primary",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Enabled,
    ),
    (
        KeyRole::Other,
        "other",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Enabled,
    ),
    (
        KeyRole::EncryptOnly,
        "encrypt-only",
        Usage::ENCRYPT_ONLY,
        KeyState::Enabled,
    ),
    (
        KeyRole::DecryptOnly,
        "decrypt-only",
        Usage::DECRYPT_ONLY,
        KeyState::Enabled,
    ),
    (KeyRole::NoUsage, "no-usage", Usage::NONE, KeyState::Enabled),
    (
        KeyRole::Disabled,
        "disabled",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Disabled,
    ),
    (
        KeyRole::Rotating,
        "rotating",
        Usage::ENCRYPT_DECRYPT,
        KeyState::Enabled,
    ),
];

async fn fixture() -> SoftFixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let unlock = Unlock::Passphrase(Passphrase::new("battery passphrase").unwrap());
    let mut store =
        KeyStore::create(&path, unlock.clone(), KdfParams::INSECURE_FAST_FOR_TESTS).unwrap();
    for (_, id, usage, state) in ROLES {
        store
            .create_key(&KeyId::new(id).unwrap(), usage, state)
            .unwrap();
    }
    let km = SoftKeyManager::open(&path, unlock).unwrap();
    SoftFixture {
        km: Arc::new(km),
        store: Mutex::new(store),
        _dir: dir,
    }
}

#[async_trait]
impl Fixture for SoftFixture {
    fn key_manager(&self) -> Arc<dyn KeyManager> {
        self.km.clone()
    }

    fn key(&self, role: KeyRole) -> KeyId {
        let (_, id, _, _) = ROLES
            .into_iter()
            .find(|(r, ..)| *r == role)
            .expect("a key for every role");
        KeyId::new(id).unwrap()
    }

    async fn rotate(&self, key: &KeyId) {
        self.store.lock().unwrap().rotate_key(key).unwrap();
        self.km.reload().unwrap();
    }
}

xks_keymanager::key_manager_battery!(fixture());
