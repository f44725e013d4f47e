//! Recovery from what happens to sessions, logins and the module underneath the
//! key manager. Each test disturbs the whole module in this process, so this
//! binary runs them one at a time and shares its module with no other test.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::slot::Slot;
use tokio::sync::Mutex;
use xks_keymanager::KeyManager;
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Pkcs11KeyManager, Usage};
use xks_protocol::{HealthStatus, KeyId};

/// The token of this binary.
const TOKEN: usize = 0;

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// A key manager with two workers, a key, and a good ciphertext made before
/// the disturbance.
async fn setup(prefix: &str) -> (Arc<Pkcs11KeyManager>, KeyId, xks_keymanager::Sealed) {
    let hsm = SoftHsm::shared();
    let label = SoftHsm::unique_label(prefix);
    hsm.admin(TOKEN)
        .create_key(&label, Usage::ENCRYPT_DECRYPT)
        .unwrap();
    let mut config = hsm.config(&[TOKEN]);
    config.sessions_per_slot = 2;
    let km = tokio::task::spawn_blocking(move || Pkcs11KeyManager::open(&config, SoftHsm::env()))
        .await
        .unwrap()
        .unwrap();
    let key = KeyId::new(&label).unwrap();
    let sealed = km.encrypt(&key, b"before", b"aad").await.unwrap();
    // C_Finalize while another thread is in a PKCS#11 call is undefined (SoftHSM
    // may crash): let the workers finish opening their sessions (two, and the
    // startup check's) before disturbing the module.
    let started = std::time::Instant::now();
    while km.stats()[0].sessions_opened < 3 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "workers did not start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (Arc::new(km), key, sealed)
}

/// Another handle on the same module (the library is loaded once per process,
/// so this reaches the key manager's module state), and the test token's slot.
fn other_handle() -> (Pkcs11, Slot) {
    let hsm = SoftHsm::shared();
    let pkcs11 = Pkcs11::new(hsm.module()).unwrap();
    // Initialized already by the key manager: that answer is expected.
    let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = hsm.slot_of(&pkcs11, TOKEN);
    (pkcs11, slot)
}

/// Traffic works (old and new ciphertexts), from many tasks at once so every
/// worker meets the disturbance.
async fn traffic_resumes(km: &Arc<Pkcs11KeyManager>, key: &KeyId, old: &xks_keymanager::Sealed) {
    xks_pkcs11::testing::traffic_works(km, key, old).await;
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Active, "{health:?}");
}

/// C_Finalize and C_Initialize by someone else: every session is closed and
/// the login is gone. Workers see CKR_SESSION_HANDLE_INVALID, open new
/// sessions, log in again, look their keys up again, and carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_closed_underneath() {
    let _serial = SERIAL.lock().await;
    let (km, key, old) = setup("closed-underneath").await;
    let before = km.stats()[0].clone();
    tokio::task::spawn_blocking(|| SoftHsm::shared().reinitialize_module())
        .await
        .unwrap();
    traffic_resumes(&km, &key, &old).await;
    let after = km.stats()[0].clone();
    assert!(after.sessions_lost > before.sessions_lost, "{after:?}");
    assert!(after.sessions_opened > before.sessions_opened, "{after:?}");
    assert!(after.logins > before.logins, "{after:?}");
}

/// C_Finalize by someone else: calls fail with CKR_CRYPTOKI_NOT_INITIALIZED
/// and the key manager initializes the module again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn module_finalized_underneath() {
    let _serial = SERIAL.lock().await;
    let (km, key, old) = setup("finalized-underneath").await;
    tokio::task::spawn_blocking(|| {
        let (pkcs11, _) = other_handle();
        pkcs11.finalize().unwrap();
    })
    .await
    .unwrap();
    traffic_resumes(&km, &key, &old).await;
    assert!(km.stats()[0].logins >= 1);
}

/// C_Logout by someone else: sessions stay, but turn public and the private
/// key handles stop working. The workers log in again and look the key up
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_out_underneath() {
    let _serial = SERIAL.lock().await;
    let (km, key, old) = setup("logged-out-underneath").await;
    let before = km.stats()[0].clone();
    tokio::task::spawn_blocking(|| {
        let (pkcs11, slot) = other_handle();
        let session = pkcs11.open_ro_session(slot).unwrap();
        session.logout().unwrap();
        // The login must really be gone for this test to mean anything.
        assert!(
            session
                .login(UserType::User, Some(&SoftHsm::USER_PIN.into()))
                .is_ok()
        );
        session.logout().unwrap();
    })
    .await
    .unwrap();
    traffic_resumes(&km, &key, &old).await;
    let after = km.stats()[0].clone();
    assert!(after.logins > before.logins, "{after:?}");
    assert_eq!(after.sessions_lost, before.sessions_lost, "{after:?}");
}
