use std::fs;
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::fsio::tests::{dir_entries, fail_next_rename};
use crate::{HEALTH_CANARY_KEY_ID, Passphrase};

const FAST: KdfParams = KdfParams::INSECURE_FAST_FOR_TESTS;

fn passphrase(p: &str) -> Unlock {
    Unlock::Passphrase(Passphrase::new(p).unwrap())
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn new_store(dir: &Path) -> KeyStore {
    KeyStore::create(dir.join("keys.json"), passphrase("store passphrase"), FAST).unwrap()
}

#[test]
fn create_writes_a_private_store_with_the_canary() {
    let dir = tempfile::tempdir().unwrap();
    let before = SystemTime::now() - Duration::from_secs(1);
    let mut store = new_store(dir.path());
    assert_eq!(store.kdf_params(), Some(FAST));
    let keys = store.list_keys().unwrap();
    assert_eq!(keys.len(), 1);
    let canary = &keys[0];
    assert_eq!(canary.id.as_str(), HEALTH_CANARY_KEY_ID);
    assert!(canary.health_canary);
    assert_eq!(
        (canary.usage, canary.state, canary.versions),
        (Usage::ENCRYPT_DECRYPT, KeyState::Enabled, 1)
    );
    assert!(canary.created >= before && canary.created <= SystemTime::now());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(dir_entries(dir.path()), ["keys.json", "keys.json.lock"]);
}

#[test]
fn create_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    fs::write(&path, b"something precious").unwrap();
    let err = KeyStore::create(&path, passphrase("p"), FAST).unwrap_err();
    assert!(matches!(err, Error::StoreExists { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), b"something precious");

    let missing_dir = dir.path().join("no/such/dir/keys.json");
    assert!(KeyStore::create(missing_dir, passphrase("p"), FAST).is_err());
}

#[test]
fn key_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let k = id("payments-2024");

    let created = store
        .create_key(&k, Usage::ENCRYPT_ONLY, KeyState::Enabled)
        .unwrap();
    assert_eq!(
        (created.usage, created.state, created.versions),
        (Usage::ENCRYPT_ONLY, KeyState::Enabled, 1)
    );
    assert!(!created.health_canary);
    assert!(matches!(
        store.create_key(&k, Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        Err(Error::KeyExists { .. })
    ));

    let rotated = store.rotate_key(&k).unwrap();
    assert_eq!((rotated.versions, rotated.current_version.get()), (2, 2));
    assert_eq!(rotated.created, created.created);
    assert!(rotated.rotated >= created.rotated);

    assert_eq!(store.disable_key(&k).unwrap().state, KeyState::Disabled);
    assert_eq!(
        store.disable_key(&k).unwrap().state,
        KeyState::Disabled,
        "idempotent"
    );
    assert_eq!(store.enable_key(&k).unwrap().state, KeyState::Enabled);
    assert_eq!(
        store.set_usage(&k, Usage::ENCRYPT_DECRYPT).unwrap().usage,
        Usage::ENCRYPT_DECRYPT
    );

    // Everything is on disk: a fresh handle sees it.
    let mut again = KeyStore::open(store.path(), passphrase("store passphrase")).unwrap();
    let info = again.key_info(&k).unwrap();
    assert_eq!(
        (info.usage, info.state, info.versions),
        (Usage::ENCRYPT_DECRYPT, KeyState::Enabled, 2)
    );
    let ids: Vec<String> = again
        .list_keys()
        .unwrap()
        .into_iter()
        .map(|i| i.id.to_string())
        .collect();
    assert_eq!(ids, ["payments-2024", HEALTH_CANARY_KEY_ID]);
}

#[test]
fn unknown_and_reserved_keys_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let missing = id("missing");
    assert!(matches!(
        store.key_info(&missing),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.rotate_key(&missing),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        store.disable_key(&missing),
        Err(Error::KeyNotFound { .. })
    ));
    let canary = id(HEALTH_CANARY_KEY_ID);
    assert!(matches!(
        store.create_key(&canary, Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        Err(Error::ReservedKeyId)
    ));
    assert!(matches!(
        store.rotate_key(&canary),
        Err(Error::ReservedKeyId)
    ));
    assert!(matches!(
        store.disable_key(&canary),
        Err(Error::ReservedKeyId)
    ));
    assert!(matches!(
        store.set_usage(&canary, Usage::NONE),
        Err(Error::ReservedKeyId)
    ));
    // The canary can still be looked at.
    assert!(store.key_info(&canary).unwrap().health_canary);
}

#[test]
fn unchanged_state_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let k = id("k");
    store
        .create_key(&k, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let before = fs::read(store.path()).unwrap();
    store.enable_key(&k).unwrap();
    store.set_usage(&k, Usage::ENCRYPT_DECRYPT).unwrap();
    assert_eq!(fs::read(store.path()).unwrap(), before);
}

#[test]
fn a_failed_write_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let k = id("k");
    store
        .create_key(&k, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let before = fs::read(store.path()).unwrap();

    fail_next_rename();
    assert!(matches!(store.rotate_key(&k), Err(Error::Write { .. })));
    assert_eq!(fs::read(store.path()).unwrap(), before);
    assert_eq!(store.key_info(&k).unwrap().versions, 1);
    assert_eq!(dir_entries(dir.path()), ["keys.json", "keys.json.lock"]);

    // And the store still works.
    assert_eq!(store.rotate_key(&k).unwrap().versions, 2);
}

#[test]
fn concurrent_operators_never_lose_updates() {
    let dir = tempfile::tempdir().unwrap();
    let path = new_store(dir.path()).path().to_owned();
    let shared = id("shared");
    KeyStore::open(&path, passphrase("store passphrase"))
        .unwrap()
        .create_key(&shared, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();

    const THREADS: usize = 4;
    const ROUNDS: usize = 6;
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let path = &path;
            let shared = &shared;
            scope.spawn(move || {
                // One handle per thread, as separate operator processes would have.
                let mut store = KeyStore::open(path, passphrase("store passphrase")).unwrap();
                for r in 0..ROUNDS {
                    store
                        .create_key(
                            &id(&format!("t{t}-k{r}")),
                            Usage::ENCRYPT_DECRYPT,
                            KeyState::Enabled,
                        )
                        .unwrap();
                    store.rotate_key(shared).unwrap();
                }
            });
        }
    });

    let mut store = KeyStore::open(&path, passphrase("store passphrase")).unwrap();
    let keys = store.list_keys().unwrap();
    assert_eq!(
        keys.len(),
        2 + THREADS * ROUNDS,
        "every created key is there"
    );
    let versions = store.key_info(&shared).unwrap().versions as usize;
    assert_eq!(versions, 1 + THREADS * ROUNDS, "every rotation is there");
    assert_eq!(dir_entries(dir.path()), ["keys.json", "keys.json.lock"]);
}

#[test]
fn open_checks_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let store = new_store(dir.path());
    let err = KeyStore::open(store.path(), passphrase("not the passphrase")).unwrap_err();
    assert!(matches!(err, Error::WrongSecretOrTampered), "{err:?}");
    let err = KeyStore::open(dir.path().join("missing.json"), passphrase("p")).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
}

#[test]
fn change_unlock_reencrypts_under_the_new_secret() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let k = id("k");
    store
        .create_key(&k, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let key_file = Unlock::create_key_file(dir.path().join("store.key")).unwrap();
    store.change_unlock(key_file.clone(), FAST).unwrap();

    assert!(matches!(
        KeyStore::open(store.path(), passphrase("store passphrase")),
        Err(Error::UnlockMismatch { .. })
    ));
    let mut reopened = KeyStore::open(store.path(), key_file).unwrap();
    assert_eq!(reopened.key_info(&k).unwrap().versions, 1);
    // The handle that changed it keeps working.
    assert_eq!(store.rotate_key(&k).unwrap().versions, 2);
}

/// The one test with the recommended (slow) parameters.
#[test]
fn recommended_parameters_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.json");
    let started = Instant::now();
    let mut store = KeyStore::create(
        &path,
        passphrase("a long random passphrase"),
        KdfParams::RECOMMENDED,
    )
    .unwrap();
    store
        .create_key(&id("k"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let mut reopened = KeyStore::open(&path, passphrase("a long random passphrase")).unwrap();
    assert_eq!(reopened.kdf_params(), Some(KdfParams::RECOMMENDED));
    assert_eq!(reopened.list_keys().unwrap().len(), 2);
    let header: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(header["header"]["kdf"]["memory-kib"], 65_536);
    assert_eq!(header["header"]["kdf"]["iterations"], 3);
    // Two derivations (create and open); the handle reuses its key for the change.
    assert!(started.elapsed() < Duration::from_secs(120));
}

#[test]
fn debug_shows_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = new_store(dir.path());
    let info = store
        .create_key(&id("k"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let text = format!("{store:?} {store:#?} {info:?}");
    assert!(!text.contains("store passphrase"), "{text}");
    assert!(text.contains("keys.json"), "{text}");
}
