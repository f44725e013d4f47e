use std::fs;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::*;
use crate::{KdfParams, KeyStore, Passphrase};

const FAST: KdfParams = KdfParams::INSECURE_FAST_FOR_TESTS;
const PASSPHRASE: &str = "manager test passphrase";

fn unlock() -> Unlock {
    Unlock::Passphrase(Passphrase::new(PASSPHRASE).unwrap())
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn b64(s: &str) -> Vec<u8> {
    BASE64.decode(s).unwrap()
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

/// A key store with key `k` (encrypt and decrypt, enabled), and the key manager.
fn store_and_manager(dir: &Path) -> (KeyStore, SoftKeyManager) {
    let mut store = KeyStore::create(dir.join("keys.json"), unlock(), FAST).unwrap();
    store
        .create_key(&id("k"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled)
        .unwrap();
    let km = SoftKeyManager::open(store.path(), unlock()).unwrap();
    (store, km)
}

fn kind<T>(result: Result<T, KeyManagerError>) -> ErrorKind {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.kind(),
    }
}

fn fact_sheet_cipher() -> Aes256Gcm {
    let key: [u8; 32] = std::array::from_fn(|i| u8::try_from(i).unwrap());
    Aes256Gcm::new((&key).into())
}

/// Fact sheet §10: key 00..1f, IV `HMrlRw85cAJUd5Ax`, plaintext `Hello World!`,
/// with and without AAD and metadata, GCM AAD composed by the spec's layout.
#[test]
fn known_answers_of_the_fact_sheet() {
    let cipher = fact_sheet_cipher();
    let iv: [u8; 12] = b64("HMrlRw85cAJUd5Ax").try_into().unwrap();
    let aad = b"project=nile,department=marketing";
    let metadata = b"key_version=1";
    let cases: [(&[u8], &[u8], &str); 4] = [
        (aad, metadata, "Hlq5hSgZuRo2Qx7eEWUYfQ=="),
        (aad, b"", "cTn6idGqmWeYwI3qacirQA=="),
        (b"", metadata, "HRAWgpVm7mmyZZxfr1IamA=="),
        (b"", b"", "KTHMR5Qu6RPqRJ7P68F5XA=="),
    ];
    for (aad, metadata, tag) in cases {
        let gcm_aad = xks_protocol::compose_gcm_aad(aad, metadata).unwrap();
        let sealed =
            seal_with_iv(&cipher, KeyVersion::FIRST, iv, &gcm_aad, b"Hello World!").unwrap();
        assert_eq!(sealed.iv, iv);
        assert_eq!(sealed.ciphertext, b64("qNtNoLf/0yh1Cm1F"), "{tag}");
        assert_eq!(sealed.tag[..], b64(tag)[..], "{tag}");
    }
}

/// The same key, IV and plaintext with this backend's own metadata (format byte
/// 1, big-endian version) through [`gcm_aad`], encrypting and decrypting by the
/// production path; tags computed with Python `cryptography` by
/// `tests/data/make_v1_fixture.py`.
#[test]
fn known_answers_with_version_metadata() {
    let aad = b"project=nile,department=marketing";
    let iv: [u8; 12] = b64("HMrlRw85cAJUd5Ax").try_into().unwrap();
    let key = LoadedKey {
        usage: Usage::ENCRYPT_DECRYPT,
        state: KeyState::Enabled,
        versions: vec![fact_sheet_cipher(), fact_sheet_cipher()],
    };
    for (version, tag) in [
        (1, "09d5f9b1954a56583ceac2486645102b"),
        (2, "c749799682fb375ff44e97e3ac303321"),
    ] {
        let version = KeyVersion::new(version).unwrap();
        let gcm_aad = gcm_aad(aad, version).unwrap();
        let sealed =
            seal_with_iv(&fact_sheet_cipher(), version, iv, &gcm_aad, b"Hello World!").unwrap();
        assert_eq!(sealed.ciphertext, unhex("a8db4da0b7ffd328750a6d45"));
        assert_eq!(sealed.tag[..], unhex(tag)[..]);
        let opened = key.open(sealed.as_ref(), aad).unwrap();
        assert_eq!(opened.as_bytes(), b"Hello World!");
    }
}

/// A ciphertext made with Python `cryptography` under the fixture key store's
/// `fixture-a` version 1 decrypts through the whole stack: file, Argon2id,
/// key set, version lookup, GCM AAD.
#[tokio::test]
async fn decrypts_what_an_independent_implementation_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.json");
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-passphrase.json"),
        &path,
    )
    .unwrap();
    let km = SoftKeyManager::open(
        &path,
        Unlock::Passphrase(Passphrase::new("xks-soft fixture passphrase").unwrap()),
    )
    .unwrap();
    let aad = b"project=nile,department=marketing";
    let iv = unhex("d0d1d2d3d4d5d6d7d8d9dadb");
    let ciphertext = unhex("64c28a020787a6ce2a334c9e");
    let tag = unhex("eff20f9b0f51b756edaac62daae93ee3");
    let sealed = SealedRef {
        version: KeyVersion::FIRST,
        iv: &iv,
        ciphertext: &ciphertext,
        tag: &tag,
    };
    let plaintext = km.decrypt(&id("fixture-a"), sealed, aad).await.unwrap();
    assert_eq!(plaintext.as_bytes(), b"Hello World!");
    // New encryptions use version 2.
    let out = km.encrypt(&id("fixture-a"), b"x", b"").await.unwrap();
    assert_eq!(out.version.get(), 2);
    // fixture-b is disabled (and encrypt-only).
    assert_eq!(
        kind(km.encrypt(&id("fixture-b"), b"x", b"").await),
        ErrorKind::KeyDisabled
    );
}

#[tokio::test]
async fn malformed_inputs_are_invalid_ciphertext() {
    let dir = tempfile::tempdir().unwrap();
    let (_, km) = store_and_manager(dir.path());
    let k = id("k");
    let sealed = km.encrypt(&k, b"Hello World!", b"aad").await.unwrap();
    let iv16 = [&sealed.iv[..], &[0; 4]].concat();
    let long_tag = [&sealed.tag[..], &[0]].concat();
    for (what, bad) in [
        (
            "16-byte IV",
            SealedRef {
                iv: &iv16,
                ..sealed.as_ref()
            },
        ),
        (
            "8-byte IV",
            SealedRef {
                iv: &sealed.iv[..8],
                ..sealed.as_ref()
            },
        ),
        (
            "15-byte tag",
            SealedRef {
                tag: &sealed.tag[..15],
                ..sealed.as_ref()
            },
        ),
        (
            "17-byte tag",
            SealedRef {
                tag: &long_tag,
                ..sealed.as_ref()
            },
        ),
        (
            "empty tag",
            SealedRef {
                tag: &[],
                ..sealed.as_ref()
            },
        ),
        (
            "unknown version",
            SealedRef {
                version: KeyVersion::new(2).unwrap(),
                ..sealed.as_ref()
            },
        ),
        (
            "last version",
            SealedRef {
                version: KeyVersion::new(u32::MAX).unwrap(),
                ..sealed.as_ref()
            },
        ),
    ] {
        assert_eq!(
            kind(km.decrypt(&k, bad, b"aad").await),
            ErrorKind::InvalidCiphertext,
            "{what}"
        );
    }
    assert_eq!(
        km.decrypt(&k, sealed.as_ref(), b"aad")
            .await
            .unwrap()
            .as_bytes(),
        b"Hello World!"
    );
}

#[tokio::test]
async fn aad_too_long_to_prefix_is_unsupported() {
    let km =
        SoftKeyManager::ephemeral([(id("k"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled)]).unwrap();
    let aad = vec![0; 65_536];
    assert_eq!(
        kind(km.encrypt(&id("k"), b"x", &aad).await),
        ErrorKind::Unsupported
    );
}

#[tokio::test]
async fn state_is_checked_before_usage() {
    let km = SoftKeyManager::ephemeral([(id("off"), Usage::NONE, KeyState::Disabled)]).unwrap();
    assert_eq!(
        kind(km.encrypt(&id("off"), b"x", b"").await),
        ErrorKind::KeyDisabled
    );
    let md = km.key_metadata(&id("off")).await.unwrap();
    assert_eq!(md.key_status, KeyStatus::Disabled);
    assert!(md.key_usage.is_empty());
}

#[tokio::test]
async fn the_canary_is_invisible_to_kms() {
    let dir = tempfile::tempdir().unwrap();
    let (_, km) = store_and_manager(dir.path());
    let canary = id(HEALTH_CANARY_KEY_ID);
    assert_eq!(kind(km.key_metadata(&canary).await), ErrorKind::KeyNotFound);
    assert_eq!(
        kind(km.encrypt(&canary, b"x", b"").await),
        ErrorKind::KeyNotFound
    );
    let sealed = km.keys.load().canary.seal(b"x", b"").unwrap();
    assert_eq!(
        kind(km.decrypt(&canary, sealed.as_ref(), b"").await),
        ErrorKind::KeyNotFound
    );
    assert_eq!(km.key_count(), 1);
}

#[tokio::test]
async fn health_reports_one_active_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_, km) = store_and_manager(dir.path());
    assert_eq!(km.backend_name(), "soft");
    assert_eq!(km.vendor(), "xks-toolkit");
    let nodes = km.health().await;
    assert_eq!(
        nodes,
        [NodeHealth {
            id: "soft:keys.json".to_owned(),
            model: format!("xks-soft {}", env!("CARGO_PKG_VERSION")),
            status: HealthStatus::Active,
        }]
    );
    let km = km.with_vendor("Acme Corp");
    assert_eq!(km.vendor(), "Acme Corp");

    let ephemeral = SoftKeyManager::ephemeral([]).unwrap();
    let nodes = ephemeral.health().await;
    assert_eq!(nodes[0].id, "soft:ephemeral");
    assert_eq!(nodes[0].status, HealthStatus::Active);
}

#[tokio::test]
async fn health_is_unavailable_when_the_canary_fails() {
    let km = SoftKeyManager::ephemeral([]).unwrap();
    // A canary without versions cannot encrypt.
    let broken = Snapshot {
        keys: HashMap::new(),
        canary: LoadedKey {
            usage: Usage::ENCRYPT_DECRYPT,
            state: KeyState::Enabled,
            versions: Vec::new(),
        },
    };
    km.keys.store(Arc::new(broken));
    assert_eq!(km.health().await[0].status, HealthStatus::Unavailable);
}

#[tokio::test]
async fn reload_picks_up_rotation_disable_and_new_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, km) = store_and_manager(dir.path());
    let k = id("k");
    let before = km.encrypt(&k, b"before", b"").await.unwrap();
    assert_eq!(before.version.get(), 1);

    store.rotate_key(&k).unwrap();
    let late = id("late");
    store
        .create_key(&late, Usage::DECRYPT_ONLY, KeyState::Enabled)
        .unwrap();
    // Not visible until the reload.
    assert_eq!(km.encrypt(&k, b"x", b"").await.unwrap().version.get(), 1);
    assert_eq!(kind(km.key_metadata(&late).await), ErrorKind::KeyNotFound);

    km.reload().unwrap();
    let after = km.encrypt(&k, b"after", b"").await.unwrap();
    assert_eq!(after.version.get(), 2);
    assert_eq!(
        km.decrypt(&k, before.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"before"
    );
    assert_eq!(
        km.key_metadata(&late).await.unwrap().key_usage,
        [xks_protocol::KeyUsage::Decrypt]
    );
    assert_eq!(km.key_count(), 2);

    store.disable_key(&k).unwrap();
    km.reload().unwrap();
    assert_eq!(
        kind(km.encrypt(&k, b"x", b"").await),
        ErrorKind::KeyDisabled
    );
    assert_eq!(
        kind(km.decrypt(&k, after.as_ref(), b"").await),
        ErrorKind::KeyDisabled
    );
    assert_eq!(
        km.key_metadata(&k).await.unwrap().key_status,
        KeyStatus::Disabled
    );

    store.enable_key(&k).unwrap();
    store.set_usage(&k, Usage::DECRYPT_ONLY).unwrap();
    km.reload().unwrap();
    assert_eq!(kind(km.encrypt(&k, b"x", b"").await), ErrorKind::KeyUsage);
    assert_eq!(
        km.decrypt(&k, after.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"after"
    );
}

#[tokio::test]
async fn a_failed_reload_keeps_the_current_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, km) = store_and_manager(dir.path());
    let k = id("k");
    let sealed = km.encrypt(&k, b"kept", b"").await.unwrap();

    // Corrupted file.
    let good = fs::read(store.path()).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 1;
    fs::write(store.path(), &bad).unwrap();
    assert!(km.reload().is_err());
    assert_eq!(
        km.decrypt(&k, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"kept"
    );

    // Missing file.
    fs::remove_file(store.path()).unwrap();
    assert!(matches!(km.reload(), Err(Error::Read { .. })));
    assert_eq!(km.health().await[0].status, HealthStatus::Active);
    fs::write(store.path(), &good).unwrap();
    km.reload().unwrap();

    // Re-encrypted under another secret: the running proxy's secret is stale.
    store
        .change_unlock(Unlock::Passphrase(Passphrase::new("new").unwrap()), FAST)
        .unwrap();
    assert!(matches!(km.reload(), Err(Error::WrongSecretOrTampered)));
    assert_eq!(
        km.decrypt(&k, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"kept"
    );
}

#[tokio::test]
async fn reload_is_safe_under_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, km) = store_and_manager(dir.path());
    let km = Arc::new(km);
    let k = id("k");
    let traffic: Vec<_> = (0..4)
        .map(|t| {
            let km = km.clone();
            let k = k.clone();
            tokio::spawn(async move {
                for i in 0..300u32 {
                    let pt = format!("task {t} message {i}");
                    let sealed = km.encrypt(&k, pt.as_bytes(), b"aad").await.unwrap();
                    let back = km.decrypt(&k, sealed.as_ref(), b"aad").await.unwrap();
                    assert_eq!(back.as_bytes(), pt.as_bytes());
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for _ in 0..10 {
        store.rotate_key(&k).unwrap();
        let km = km.clone();
        tokio::task::spawn_blocking(move || km.reload())
            .await
            .unwrap()
            .unwrap();
    }
    for task in traffic {
        task.await.unwrap();
    }
    assert_eq!(km.encrypt(&k, b"x", b"").await.unwrap().version.get(), 11);
}

#[tokio::test]
async fn ephemeral_keys_work_without_a_file() {
    let km = SoftKeyManager::ephemeral([
        (id("demo"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        (id("demo-off"), Usage::ENCRYPT_DECRYPT, KeyState::Disabled),
    ])
    .unwrap();
    assert_eq!(km.key_count(), 2);
    let sealed = km.encrypt(&id("demo"), b"hello", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&id("demo"), sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"hello"
    );
    km.reload().unwrap();
    assert_eq!(km.key_count(), 2);

    let dup = SoftKeyManager::ephemeral([
        (id("a"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        (id("a"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
    ]);
    assert!(matches!(dup, Err(Error::KeyExists { .. })));
    let reserved =
        SoftKeyManager::ephemeral([(id(HEALTH_CANARY_KEY_ID), Usage::NONE, KeyState::Enabled)]);
    assert!(matches!(reserved, Err(Error::ReservedKeyId)));
}

/// No `Debug` output, and no error message, shows key material or the passphrase.
#[tokio::test]
async fn debug_output_never_shows_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, km) = store_and_manager(dir.path());
    let k = id("k");
    let sealed = km.encrypt(&k, b"plaintext marker", b"").await.unwrap();

    // Every key's material, read back from the file, in the forms it could leak in.
    let set = format::open(&fs::read(store.path()).unwrap(), &unlock(), &mut None).unwrap();
    let mut secrets: Vec<String> = vec![PASSPHRASE.to_owned(), "plaintext marker".to_owned()];
    for key in &set.keys {
        for v in &key.versions {
            let bytes = v.material.as_bytes();
            secrets.push(hex::encode(bytes));
            secrets.push(hex::encode_upper(bytes));
            secrets.push(
                format!("{:?}", &bytes[..8])
                    .trim_end_matches(']')
                    .to_owned(),
            );
            secrets.push(BASE64.encode(bytes));
        }
    }

    let mut key_cache = None;
    format::open(&fs::read(store.path()).unwrap(), &unlock(), &mut key_cache).unwrap();
    let snapshot = km.keys.load();
    let plaintext = km.decrypt(&k, sealed.as_ref(), b"").await.unwrap();
    let errors: Vec<Error> = vec![
        KeyStore::open(
            store.path(),
            Unlock::Passphrase(Passphrase::new("wrong").unwrap()),
        )
        .unwrap_err(),
        store.rotate_key(&id("nope")).unwrap_err(),
        Unlock::from_vars(|_| Some(PASSPHRASE.into())).unwrap_err(),
        format::open(b"{}", &unlock(), &mut None).unwrap_err(),
    ];
    let km_error = km
        .decrypt(
            &k,
            SealedRef {
                tag: &[0; 16],
                ..sealed.as_ref()
            },
            b"",
        )
        .await
        .unwrap_err();

    let mut outputs = vec![
        format!("{km:?}"),
        format!("{km:#?}"),
        format!("{store:?}"),
        format!("{:?}", unlock()),
        format!("{:?}", store.list_keys().unwrap()),
        format!("{set:?}"),
        format!("{key_cache:?}"),
        format!("{:?}", snapshot.keys.len()),
        format!("{plaintext:?}"),
        format!("{sealed:?}"),
        format!("{km_error:?} {km_error}"),
        format!(
            "{:?} {:?} {:?} {:?}",
            FAST,
            Usage::ENCRYPT_ONLY,
            KeyState::Disabled,
            crate::SecretKind::KeyFile
        ),
    ];
    for e in &errors {
        outputs.push(format!("{e:?}"));
        outputs.push(e.to_string());
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            outputs.push(s.to_string());
            source = s.source();
        }
    }
    for output in &outputs {
        for secret in &secrets {
            assert!(
                !output.contains(secret.as_str()),
                "{output:?} contains a secret"
            );
        }
    }
    // The key set's Debug is exercised, and redacts.
    assert!(
        outputs[5].contains("KeyMaterial(<redacted>)"),
        "{}",
        outputs[5]
    );
}
