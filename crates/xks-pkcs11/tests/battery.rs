//! The shared key manager battery, on SoftHSM2 tokens made for this test run:
//! once with the workers using the token objects, once with
//! `session_key_copies` (each worker using its session copies of the keys),
//! each on a token of its own.
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

/// The key manager and operator session shared by every check of this binary:
/// PKCS#11 initialization is per process.
struct HsmFixture {
    km: Arc<Pkcs11KeyManager>,
    admin: Arc<Mutex<Pkcs11Admin>>,
}

type Shared = OnceLock<(Arc<Pkcs11KeyManager>, Arc<Mutex<Pkcs11Admin>>)>;

/// The battery's key manager, with or without `session_key_copies`, on token
/// 0 or 1, made once.
fn shared(copies: bool) -> &'static (Arc<Pkcs11KeyManager>, Arc<Mutex<Pkcs11Admin>>) {
    static DIRECT: Shared = OnceLock::new();
    static COPIES: Shared = OnceLock::new();
    let (cell, token) = if copies { (&COPIES, 1) } else { (&DIRECT, 0) };
    cell.get_or_init(|| {
        let hsm = SoftHsm::shared();
        let admin = hsm.admin(token);
        testing::create_battery_keys(&admin);
        let mut config = hsm.config(&[token]);
        config.session_key_copies = Some(copies);
        let km = Pkcs11KeyManager::open(&config, SoftHsm::env()).unwrap();
        (Arc::new(km), Arc::new(Mutex::new(admin)))
    })
}

async fn fixture(copies: bool) -> HsmFixture {
    let (km, admin) = tokio::task::spawn_blocking(move || shared(copies))
        .await
        .unwrap();
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

/// The workers use the token objects (the default).
mod token_objects {
    use super::fixture;

    xks_keymanager::key_manager_battery!(fixture(false));
}

/// The workers use session copies of the keys (`session_key_copies`).
mod session_copies {
    use xks_keymanager::KeyManager as _;

    use super::{fixture, shared};

    xks_keymanager::key_manager_battery!(fixture(true));

    /// The battery above ran on copies, not on the token objects.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_workers_used_copies() {
        let fixture = fixture(true).await;
        let key = xks_pkcs11::testing::battery_key(xks_keymanager::testing::KeyRole::Primary);
        let sealed = fixture.km.encrypt(&key, b"copied", b"aad").await.unwrap();
        let got = fixture
            .km
            .decrypt(&key, sealed.as_ref(), b"aad")
            .await
            .unwrap();
        assert_eq!(got.as_bytes(), b"copied");
        let (km, _) = shared(true);
        assert!(km.stats()[0].key_copies >= 1, "{:?}", km.stats());
    }
}
