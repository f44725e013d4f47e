//! The shared key manager battery, on a SoftHSM2 token made for this test run.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use xks_keymanager::KeyManager;
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_pkcs11::testing::{self, SoftHsm};
use xks_pkcs11::{Pkcs11Admin, Pkcs11KeyManager};
use xks_protocol::KeyId;

/// The token of this binary's battery.
const TOKEN: usize = 0;

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
        testing::create_battery_keys(&admin);
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
        testing::battery_key(role)
    }

    async fn rotate(&self, key: &KeyId) {
        testing::rotate_battery_key(&self.admin, &self.km, key).await;
    }
}

xks_keymanager::key_manager_battery!(fixture());
