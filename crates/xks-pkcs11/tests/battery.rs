//! The shared key manager battery, on a SoftHSM2 token made for this test run.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use xks_keymanager::KeyManager;
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Pkcs11Admin, Pkcs11KeyManager, Usage};
use xks_protocol::KeyId;

/// The token of this binary's battery.
const TOKEN: usize = 0;

/// One key per role, made with the operator commands; the disabled key is
/// disabled through its `CKA_END_DATE`, as an operator would.
const ROLES: [(KeyRole, &str, Usage); 7] = [
    (KeyRole::Primary, "primary", Usage::ENCRYPT_DECRYPT),
    (KeyRole::Other, "other", Usage::ENCRYPT_DECRYPT),
    (KeyRole::EncryptOnly, "encrypt-only", Usage::ENCRYPT_ONLY),
    (KeyRole::DecryptOnly, "decrypt-only", Usage::DECRYPT_ONLY),
    (KeyRole::NoUsage, "no-usage", Usage::NONE),
    (KeyRole::Disabled, "disabled", Usage::ENCRYPT_DECRYPT),
    (KeyRole::Rotating, "rotating", Usage::ENCRYPT_DECRYPT),
];

/// The key manager and operator session shared by every check of this binary:
/// PKCS#11 initialization is per process.
struct HsmFixture {
    km: Arc<Pkcs11KeyManager>,
    admin: Arc<Mutex<Pkcs11Admin>>,
}

fn shared() -> &'static (Arc<Pkcs11KeyManager>, Arc<Mutex<Pkcs11Admin>>) {
    static SHARED: OnceLock<(Arc<Pkcs11KeyManager>, Arc<Mutex<Pkcs11Admin>>)> = OnceLock::new();
    SHARED.get_or_init(|| {
        let hsm = SoftHsm::shared();
        let admin = hsm.admin(TOKEN);
        for (role, label, usage) in ROLES {
            admin.create_key(label, usage).unwrap();
            if role == KeyRole::Disabled {
                admin.set_disabled(label, true).unwrap();
            }
        }
        let km = Pkcs11KeyManager::open(&hsm.config(&[TOKEN]), SoftHsm::env()).unwrap();
        (Arc::new(km), Arc::new(Mutex::new(admin)))
    })
}

async fn fixture() -> HsmFixture {
    let (km, admin) = tokio::task::spawn_blocking(shared).await.unwrap();
    HsmFixture {
        km: km.clone(),
        admin: admin.clone(),
    }
}

#[async_trait]
impl Fixture for HsmFixture {
    fn key_manager(&self) -> Arc<dyn KeyManager> {
        self.km.clone()
    }

    fn key(&self, role: KeyRole) -> KeyId {
        let (_, label, _) = ROLES.into_iter().find(|(r, ..)| *r == role).unwrap();
        KeyId::new(label).unwrap()
    }

    async fn rotate(&self, key: &KeyId) {
        let admin = self.admin.clone();
        let label = key.as_str().to_owned();
        tokio::task::spawn_blocking(move || admin.lock().unwrap().create_version(&label).unwrap())
            .await
            .unwrap();
        self.km.refresh_keys();
    }
}

xks_keymanager::key_manager_battery!(fixture());
