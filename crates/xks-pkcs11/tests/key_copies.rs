//! `session_key_copies`: workers use session copies of the keys, and the
//! copies follow the token objects they were made from: a key deleted or
//! changed on the token stops being used within seconds, and copies lost with
//! their sessions are made again. (The shared battery runs with copies too, in
//! `battery.rs`.) The tests change keys and sessions under the key manager, so
//! they run one at a time.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::{Session, UserType};
use tokio::sync::Mutex;
use xks_keymanager::{ErrorKind, KeyManager, KeyManagerError, Sealed};
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Pkcs11KeyManager, Usage};
use xks_protocol::KeyId;

/// The token of this binary.
const TOKEN: usize = 0;

/// Worker threads of the key managers here.
const WORKERS: usize = 2;

/// How long a change on the token may go unnoticed: the copies' check
/// interval (1 s) with room for a slow machine.
const NOTICED_WITHIN: Duration = Duration::from_secs(10);

/// One test at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

async fn key_manager(copies: bool) -> Arc<Pkcs11KeyManager> {
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.sessions_per_slot = WORKERS;
    config.session_key_copies = Some(copies);
    let km = tokio::task::spawn_blocking(move || Pkcs11KeyManager::open(&config, SoftHsm::env()))
        .await
        .unwrap()
        .unwrap();
    Arc::new(km)
}

fn new_key(prefix: &str) -> KeyId {
    let label = SoftHsm::unique_label(prefix);
    SoftHsm::shared()
        .admin(TOKEN)
        .create_key(&label, Usage::ENCRYPT_DECRYPT)
        .unwrap();
    KeyId::new(&label).unwrap()
}

/// Makes the next version of `key` on the token.
async fn new_version(key: &KeyId) {
    let label = key.as_str().to_owned();
    tokio::task::spawn_blocking(move || {
        SoftHsm::shared()
            .admin(TOKEN)
            .create_version(&label)
            .unwrap()
    })
    .await
    .unwrap();
}

/// Runs `f` on a read/write session of this binary's token, logged in, opened
/// on the module the key managers use (loaded once per process).
async fn on_token<T: Send + 'static>(f: impl FnOnce(&Session) -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(move || {
        let hsm = SoftHsm::shared();
        let pkcs11 = Pkcs11::new(hsm.module()).unwrap();
        // Initialized already by the key manager: that answer is expected.
        let _ = pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = hsm.slot_of(&pkcs11, TOKEN);
        let session = pkcs11.open_rw_session(slot).unwrap();
        // The key managers logged the application in already.
        let _ = session.login(UserType::User, Some(&SoftHsm::USER_PIN.into()));
        f(&session)
    })
    .await
    .unwrap()
}

/// The token object labelled `key`.
fn token_object(session: &Session, key: &str) -> cryptoki::object::ObjectHandle {
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(key.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1, "one token object labelled {key}");
    found[0]
}

/// Encrypts under `key` from two tasks at once until every worker holds a
/// copy of it (and of the canary key: the health check runs on the workers
/// too), so that what follows meets copies whichever worker serves it.
async fn copies_on_every_worker(km: &Pkcs11KeyManager, key: &KeyId) {
    let deadline = Instant::now() + NOTICED_WITHIN;
    let mut i = 0u8;
    loop {
        for _ in 0..WORKERS {
            km.health().await;
        }
        let (one, two) = ([i; 8], [i; 9]);
        let (a, b) = tokio::join!(km.encrypt(key, &one, b"aad"), km.encrypt(key, &two, b"aad"));
        a.unwrap();
        b.unwrap();
        if km.stats()[0].key_copies >= 2 * WORKERS as u64 {
            return;
        }
        i = i.wrapping_add(1);
        assert!(Instant::now() < deadline, "a worker never made its copies");
    }
}

/// Encrypts under `key` every 20 ms until it fails, and returns the error; the
/// test fails if that takes longer than [`NOTICED_WITHIN`].
async fn first_failure(km: &Pkcs11KeyManager, key: &KeyId) -> KeyManagerError {
    let deadline = Instant::now() + NOTICED_WITHIN;
    loop {
        match km.encrypt(key, b"still?", b"aad").await {
            Ok(_) => assert!(
                Instant::now() < deadline,
                "the key was still used {NOTICED_WITHIN:?} after it changed on the token"
            ),
            Err(error) => return error,
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Unset, `session_key_copies` is on for SoftHSM2; `false` turns it off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unset_means_on_for_softhsm() {
    let _serial = SERIAL.lock().await;
    let key = new_key("default");
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.sessions_per_slot = WORKERS;
    assert_eq!(config.session_key_copies, None);
    let km = tokio::task::spawn_blocking(move || Pkcs11KeyManager::open(&config, SoftHsm::env()))
        .await
        .unwrap()
        .unwrap();
    km.encrypt(&key, b"default", b"aad").await.unwrap();
    let stats = km.stats()[0].clone();
    assert!(stats.uses_key_copies, "{stats:?}");
    assert!(stats.key_copies >= 1, "{stats:?}");
    let off = key_manager(false).await;
    off.encrypt(&key, b"off", b"aad").await.unwrap();
    let stats = off.stats()[0].clone();
    assert!(!stats.uses_key_copies, "{stats:?}");
    assert_eq!(stats.key_copies, 0, "{stats:?}");
}

/// Each worker copies a key version once and then uses its copy; what the
/// copies encrypt, a key manager using the token objects decrypts, and the
/// other way round, across a rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_are_made_once_per_worker_and_version_and_are_the_same_key() {
    let _serial = SERIAL.lock().await;
    let key = new_key("copies");
    let copying = key_manager(true).await;
    let direct = key_manager(false).await;

    let mut sealed: Vec<(Vec<u8>, Sealed)> = Vec::new();
    for i in 0..200u8 {
        let plaintext = vec![i; 1 + usize::from(i % 40)];
        let by_copy = copying.encrypt(&key, &plaintext, b"aad").await.unwrap();
        let got = direct
            .decrypt(&key, by_copy.as_ref(), b"aad")
            .await
            .unwrap();
        assert_eq!(got.as_bytes(), plaintext.as_slice());
        let by_token = direct.encrypt(&key, &plaintext, b"aad").await.unwrap();
        let got = copying
            .decrypt(&key, by_token.as_ref(), b"aad")
            .await
            .unwrap();
        assert_eq!(got.as_bytes(), plaintext.as_slice());
        sealed.push((plaintext, by_copy));
    }
    // Per worker: a copy of the key and one of the health check's canary key.
    let made = copying.stats()[0].key_copies;
    assert!(
        (1..=2 * WORKERS as u64).contains(&made),
        "{made} copies for one version, the canary and {WORKERS} workers"
    );
    assert_eq!(direct.stats()[0].key_copies, 0);

    // A new version: copied once per worker as well; the old one still decrypts.
    new_version(&key).await;
    copying.refresh_keys();
    direct.refresh_keys();
    for i in 0..50u8 {
        let by_copy = copying.encrypt(&key, &[i; 16], b"aad").await.unwrap();
        let got = direct
            .decrypt(&key, by_copy.as_ref(), b"aad")
            .await
            .unwrap();
        assert_eq!(got.as_bytes(), &[i; 16]);
    }
    for (plaintext, old) in &sealed {
        let got = copying.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
        assert_eq!(got.as_bytes(), plaintext.as_slice());
    }
    let made = copying.stats()[0].key_copies;
    assert!(
        made <= 3 * WORKERS as u64,
        "{made} copies for two versions, the canary and {WORKERS} workers"
    );
}

/// A key deleted from the token: its copies stop being used within seconds,
/// and the key is then not found, as without copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_deleted_on_the_token_stops_working() {
    let _serial = SERIAL.lock().await;
    let key = new_key("deleted");
    let km = key_manager(true).await;
    let old = km.encrypt(&key, b"before", b"aad").await.unwrap();
    copies_on_every_worker(&km, &key).await;

    let label = key.as_str().to_owned();
    on_token(move |session| {
        let object = token_object(session, &label);
        session.destroy_object(object).unwrap();
    })
    .await;
    let error = first_failure(&km, &key).await;
    assert_eq!(error.kind(), ErrorKind::KeyNotFound, "{error}");
    let error = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::KeyNotFound, "{error}");
}

/// A key version whose usage changes on the token (`CKA_ENCRYPT` of version 2
/// turned off): within seconds encryption is refused as with the token
/// object, and decryption, still allowed, goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_changed_on_the_token_is_read_again() {
    let _serial = SERIAL.lock().await;
    let key = new_key("changed");
    new_version(&key).await;
    let km = key_manager(true).await;
    let old = km.encrypt(&key, b"before", b"aad").await.unwrap();
    assert_eq!(old.version.get(), 2);
    copies_on_every_worker(&km, &key).await;

    let label = format!("{}.v2", key.as_str());
    on_token(move |session| {
        let object = token_object(session, &label);
        session
            .update_attributes(object, &[Attribute::Encrypt(false)])
            .unwrap();
    })
    .await;
    let error = first_failure(&km, &key).await;
    assert_eq!(error.kind(), ErrorKind::KeyUsage, "{error}");
    // From now on, on every worker.
    for _ in 0..20 {
        let error = km.encrypt(&key, b"again", b"aad").await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::KeyUsage, "{error}");
        let got = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
        assert_eq!(got.as_bytes(), b"before");
    }
}

/// Every session closed by someone else (the module restarted under the key
/// manager): the copies
/// went with them; workers open new sessions, copy again and carry on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_lost_with_their_sessions_are_made_again() {
    let _serial = SERIAL.lock().await;
    let key = new_key("sessions-closed");
    let km = key_manager(true).await;
    let old = km.encrypt(&key, b"before", b"aad").await.unwrap();
    copies_on_every_worker(&km, &key).await;
    let before = km.stats()[0].clone();

    // C_Finalize and C_Initialize by someone else close every session (the
    // workers are idle now: finalizing during a call is undefined).
    tokio::task::spawn_blocking(|| SoftHsm::shared().reinitialize_module())
        .await
        .unwrap();

    xks_pkcs11::testing::traffic_works(&km, &key, &old).await;
    let after = km.stats()[0].clone();
    assert!(after.sessions_lost > before.sessions_lost, "{after:?}");
    assert!(after.key_copies > before.key_copies, "{after:?}");
}
