//! The PKCS#11 key manager under load and failure, on SoftHSM2 tokens made for
//! this test run: concurrency, bad tags among good traffic, throttling and
//! timeouts, failover, refused keys, disabled keys, and the operator commands.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use xks_keymanager::{ErrorKind, KeyManager, SealedRef};
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Error, KeyConfig, Pkcs11Admin, Pkcs11KeyManager, SlotConfig, Usage};
use xks_protocol::{HealthStatus, KeyId, KeySpec, KeyStatus, KeyUsage};

/// This binary's main token; the failover tests also use token 2.
const TOKEN: usize = 1;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

/// The tests of this file run one at a time: with them in parallel on one token,
/// SoftHSM 2.6 sometimes answered CKR_GENERAL_ERROR to an operator's C_GenerateKey
/// (about one run in three on two busy cores). Each test still drives its own
/// concurrent traffic.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh key on `TOKEN`, and its external key id.
fn new_key(prefix: &str, usage: Usage) -> KeyId {
    let label = SoftHsm::unique_label(prefix);
    SoftHsm::shared()
        .admin(TOKEN)
        .create_key(&label, usage)
        .unwrap();
    id(&label)
}

async fn open(config: xks_pkcs11::Pkcs11Config) -> Result<Arc<Pkcs11KeyManager>, Error> {
    tokio::task::spawn_blocking(move || Pkcs11KeyManager::open(&config, SoftHsm::env()))
        .await
        .unwrap()
        .map(Arc::new)
}

async fn km_on(tokens: &[usize]) -> Arc<Pkcs11KeyManager> {
    let config = SoftHsm::shared().config(tokens);
    open(config).await.unwrap()
}

fn pattern(len: usize, seed: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i * 31 + seed) % 251).unwrap())
        .collect()
}

/// 64 tasks on 4 runtime threads and 8 HSM sessions, 150 round trips each with
/// their own plaintexts, keys and AAD: no crash, no wrong result, one session per
/// worker and no re-login.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_stress_returns_every_callers_own_result() {
    let _serial = SERIAL.lock().await;
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.sessions_per_slot = 8;
    let km = open(config).await.unwrap();
    let keys = [
        new_key("stress-a", Usage::ENCRYPT_DECRYPT),
        new_key("stress-b", Usage::ENCRYPT_DECRYPT),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..64usize {
        let km = km.clone();
        let keys = keys.clone();
        tasks.spawn(async move {
            for round in 0..150usize {
                let key = &keys[(task + round) % 2];
                let pt = pattern((task * 97 + round * 13) % 600, task ^ round);
                let aad = format!("task {task} round {round}").into_bytes();
                let sealed = km.encrypt(key, &pt, &aad).await.unwrap();
                let got = km.decrypt(key, sealed.as_ref(), &aad).await.unwrap();
                assert_eq!(got.as_bytes(), &pt[..], "task {task} round {round}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let stats = &km.stats()[0];
    assert!(stats.requests >= 64 * 150 * 2, "{stats:?}");
    // Eight workers, plus the startup check's own session.
    assert!(stats.sessions_opened <= 9, "{stats:?}");
    assert_eq!(stats.sessions_lost, 0, "{stats:?}");
    assert!(stats.logins <= 1, "{stats:?}");
}

/// Failed tag checks mixed into good traffic are `InvalidCiphertext`, do not
/// disturb good decryptions, and cost no session, login or key lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_tags_among_good_traffic_cost_no_session_or_login() {
    let _serial = SERIAL.lock().await;
    let km = km_on(&[TOKEN]).await;
    let key = new_key("bad-tags", Usage::ENCRYPT_DECRYPT);
    let aad = b"aad".to_vec();
    let mut good = Vec::new();
    for i in 0..32 {
        let pt = pattern(100 + i, i);
        let sealed = km.encrypt(&key, &pt, &aad).await.unwrap();
        good.push((pt, sealed));
    }
    let before = km.stats()[0].clone();
    let good = Arc::new(good);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16usize {
        let (km, key, good, aad) = (km.clone(), key.clone(), good.clone(), aad.clone());
        tasks.spawn(async move {
            for round in 0..50usize {
                let (pt, sealed) = &good[(task + round) % good.len()];
                if (task + round) % 2 == 0 {
                    let mut tag = sealed.tag;
                    tag[round % 16] ^= 0x40;
                    let bad = SealedRef {
                        tag: &tag,
                        ..sealed.as_ref()
                    };
                    let err = km.decrypt(&key, bad, &aad).await.unwrap_err();
                    assert_eq!(err.kind(), ErrorKind::InvalidCiphertext, "{err:?}");
                } else {
                    let got = km.decrypt(&key, sealed.as_ref(), &aad).await.unwrap();
                    assert_eq!(got.as_bytes(), &pt[..]);
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let after = km.stats()[0].clone();
    assert_eq!(after.requests - before.requests, 16 * 50);
    // One session per worker (4) and the startup check's: none was replaced.
    assert!(after.sessions_opened <= 5, "{after:?}");
    assert_eq!(after.sessions_lost, 0, "{after:?}");
    assert_eq!(after.logins, before.logins, "{after:?}");
    assert_eq!(after.key_lookups, before.key_lookups, "{after:?}");
}

/// A saturated pool answers at once with `Throttled`; nothing hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_queue_throttles_at_once() {
    let _serial = SERIAL.lock().await;
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.sessions_per_slot = 1;
    config.queue_depth = 1;
    let km = open(config).await.unwrap();
    let key = new_key("throttle", Usage::ENCRYPT_DECRYPT);
    let plaintext = vec![7u8; 4300];
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..256 {
        let (km, key, plaintext) = (km.clone(), key.clone(), plaintext.clone());
        tasks.spawn(async move {
            let started = Instant::now();
            let result = km.encrypt(&key, &plaintext, b"").await;
            (result.map(|_| ()).map_err(|e| e.kind()), started.elapsed())
        });
    }
    let (mut ok, mut throttled) = (0, 0);
    while let Some(done) = tasks.join_next().await {
        let (result, took) = done.unwrap();
        match result {
            Ok(()) => ok += 1,
            Err(ErrorKind::Throttled) => {
                throttled += 1;
                assert!(
                    took < Duration::from_secs(1),
                    "a throttled call took {took:?}"
                );
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(ok >= 1, "{ok} ok, {throttled} throttled");
    assert!(throttled >= 1, "{ok} ok, {throttled} throttled");
}

/// A call that gets no answer within `call_timeout` is `Timeout`, promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_past_the_deadline_time_out_promptly() {
    let _serial = SERIAL.lock().await;
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.sessions_per_slot = 1;
    config.queue_depth = 1024;
    config.call_timeout = Duration::from_micros(50);
    let km = open(config).await.unwrap();
    let key = new_key("timeout", Usage::ENCRYPT_DECRYPT);
    let plaintext = vec![1u8; 4300];
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // 512 calls on one session take tens of milliseconds, far past the deadline
    // (which tokio's timer rounds up to a millisecond) for most of them.
    for _ in 0..512 {
        let (km, key, plaintext) = (km.clone(), key.clone(), plaintext.clone());
        tasks.spawn(async move { km.encrypt(&key, &plaintext, b"").await.map(|_| ()) });
    }
    let mut timeouts = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Timeout => timeouts += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(timeouts >= 1, "no call timed out");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A slot whose token is missing is reported unavailable and passed over while
/// the other serves; ciphertexts of one replica decrypt on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_skips_a_failed_slot() {
    let _serial = SERIAL.lock().await;
    let hsm = SoftHsm::shared();
    let label = SoftHsm::unique_label("replicated");
    let material: [u8; 32] = std::array::from_fn(|i| u8::try_from(i * 7 % 256).unwrap());
    hsm.import_key(&[TOKEN, 2], &label, &material, false, true);
    let key = id(&label);

    // Token TOKEN alone encrypts; token 2 alone decrypts it: same key material.
    let first = km_on(&[TOKEN]).await;
    let sealed = first
        .encrypt(&key, b"replicated secret", b"aad")
        .await
        .unwrap();
    let second = km_on(&[2]).await;
    let got = second.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"replicated secret");

    // A missing token first in line: passed over, reported unavailable.
    let mut config = hsm.config(&[TOKEN]);
    config
        .slots
        .insert(0, SlotConfig::by_label("no-such-token"));
    config.failover_backoff = Duration::from_millis(200);
    let km = open(config).await.unwrap();
    let health = km.health().await;
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].id, "pkcs11:no-such-token");
    assert_eq!(health[0].status, HealthStatus::Unavailable);
    assert_eq!(health[1].status, HealthStatus::Active);
    assert!(health[1].model.contains("SoftHSM"), "{health:?}");
    for _ in 0..3 {
        let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
        assert_eq!(
            km.decrypt(&key, sealed.as_ref(), b"")
                .await
                .unwrap()
                .as_bytes(),
            b"x"
        );
        // Past the backoff the failed slot is tried first again, fails, and the
        // call moves on within the same deadline.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// No usable slot at all: `open` says so.
#[tokio::test]
async fn open_fails_without_a_usable_slot() {
    let _serial = SERIAL.lock().await;
    let mut config = SoftHsm::shared().config(&[]);
    config.slots = vec![SlotConfig::by_label("no-such-token")];
    let err = open(config).await.unwrap_err();
    assert!(matches!(err, Error::NoUsableSlot { .. }), "{err:?}");
    let mut config = SoftHsm::shared().config(&[TOKEN]);
    config.pin_env = Some("UNSET_PIN_VARIABLE".to_owned());
    let err = open(config).await.unwrap_err();
    assert!(matches!(err, Error::Pin(_)), "{err:?}");
}

/// Extractable and non-sensitive keys are refused, at startup when listed and
/// on use otherwise, unless allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extractable_and_non_sensitive_keys_are_refused() {
    let _serial = SERIAL.lock().await;
    let hsm = SoftHsm::shared();
    let extractable = SoftHsm::unique_label("extractable");
    let plain = SoftHsm::unique_label("not-sensitive");
    hsm.import_key(&[TOKEN], &extractable, &[1; 32], true, true);
    hsm.import_key(&[TOKEN], &plain, &[2; 32], false, false);

    let mut config = hsm.config(&[TOKEN]);
    config.keys = vec![KeyConfig::new(id("listed"), extractable.clone())];
    match open(config).await.unwrap_err() {
        Error::KeyRefused { label, reason, .. } => {
            assert_eq!(label, extractable);
            assert!(reason.contains("extractable"), "{reason}");
        }
        other => panic!("{other:?}"),
    }

    let km = km_on(&[TOKEN]).await;
    for label in [&extractable, &plain] {
        let key = id(label);
        let err = km.encrypt(&key, b"x", b"").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyUsage, "{err:?}");
        let err = km.key_metadata(&key).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::KeyUsage, "{err:?}");
    }

    let mut config = hsm.config(&[TOKEN]);
    config.allow_extractable_keys = true;
    let km = open(config).await.unwrap();
    for label in [&extractable, &plain] {
        let sealed = km.encrypt(&id(label), b"x", b"").await.unwrap();
        assert_eq!(
            km.decrypt(&id(label), sealed.as_ref(), b"")
                .await
                .unwrap()
                .as_bytes(),
            b"x"
        );
    }
}

/// Keys are disabled by configuration or by their marker object; metadata says
/// so and encryption is refused. Re-enabling works after a refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_by_config_or_marker() {
    let _serial = SERIAL.lock().await;
    let hsm = SoftHsm::shared();
    let by_config = new_key("disabled-config", Usage::ENCRYPT_DECRYPT);
    let by_marker = new_key("disabled-marker", Usage::ENCRYPT_DECRYPT);
    let mut config = hsm.config(&[TOKEN]);
    let mut entry = KeyConfig::new(by_config.clone(), by_config.as_str());
    entry.disabled = true;
    config.keys = vec![entry];
    let km = open(config).await.unwrap();

    let md = km.key_metadata(&by_config).await.unwrap();
    assert_eq!(md.key_status, KeyStatus::Disabled);
    let err = km.encrypt(&by_config, b"x", b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyDisabled);

    let sealed = km.encrypt(&by_marker, b"x", b"").await.unwrap();
    let admin = hsm.admin(TOKEN);
    admin.set_disabled(by_marker.as_str(), true).unwrap();
    km.refresh_keys();
    assert_eq!(
        km.key_metadata(&by_marker).await.unwrap().key_status,
        KeyStatus::Disabled
    );
    let err = km
        .decrypt(&by_marker, sealed.as_ref(), b"")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyDisabled);
    assert!(admin.describe_key(by_marker.as_str()).unwrap()[0].disabled);

    admin.set_disabled(by_marker.as_str(), false).unwrap();
    km.refresh_keys();
    assert_eq!(
        km.key_metadata(&by_marker).await.unwrap().key_status,
        KeyStatus::Enabled
    );
    assert_eq!(
        km.decrypt(&by_marker, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"x"
    );
}

/// The operator commands: create, version, describe, list; refusals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands() {
    let _serial = SERIAL.lock().await;
    let hsm = SoftHsm::shared();
    let admin: Pkcs11Admin = hsm.admin(TOKEN);
    assert_eq!(admin.token_label(), hsm.token(TOKEN));
    let label = SoftHsm::unique_label("operator");
    let v1 = admin.create_key(&label, Usage::ENCRYPT_DECRYPT).unwrap();
    assert_eq!(
        (v1.version, v1.bits, v1.key_type.as_str()),
        (1, Some(256), "CKK_AES")
    );
    assert!(v1.sensitive && !v1.extractable && v1.never_extractable && v1.private && v1.local);
    assert!(v1.refusal.is_none() && !v1.disabled);
    assert!(matches!(
        admin.create_key(&label, Usage::ENCRYPT_DECRYPT),
        Err(Error::KeyExists { .. })
    ));
    assert!(matches!(
        admin.create_key("bad.v3", Usage::ENCRYPT_DECRYPT),
        Err(Error::Config(_))
    ));
    let v2 = admin.create_version(&label).unwrap();
    assert_eq!(
        (v2.label.as_str(), v2.version),
        (format!("{label}.v2").as_str(), 2)
    );
    let v3 = admin.create_version(&label).unwrap();
    assert_eq!(v3.version, 3);
    let versions = admin.describe_key(&label).unwrap();
    assert_eq!(
        versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(matches!(
        admin.describe_key("no-such-key"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        admin.create_version("no-such-key"),
        Err(Error::KeyNotFound { .. })
    ));
    let listed = admin.list_keys().unwrap();
    let mine: Vec<u32> = listed
        .iter()
        .filter(|k| k.base_label == label)
        .map(|k| k.version)
        .collect();
    assert_eq!(mine, [1, 2, 3]);
    let printed = v1.to_string();
    assert!(
        printed.contains("usage:             encrypt, decrypt"),
        "{printed}"
    );
    assert!(printed.contains("status:            ENABLED"), "{printed}");

    // The key manager encrypts with the newest version and reports the metadata.
    let km = km_on(&[TOKEN]).await;
    let key = id(&label);
    let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
    assert_eq!(sealed.version.get(), 3);
    let md = km.key_metadata(&key).await.unwrap();
    assert_eq!(md.key_spec, KeySpec::Aes256);
    assert_eq!(md.key_usage, vec![KeyUsage::Encrypt, KeyUsage::Decrypt]);
    assert_eq!(md.key_status, KeyStatus::Enabled);
}

/// An explicit mapping serves the label under another key id, and nothing else
/// when the default mapping is off; the canary is never served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_mapping() {
    let _serial = SERIAL.lock().await;
    let hsm = SoftHsm::shared();
    let target = new_key("mapped", Usage::ENCRYPT_DECRYPT);
    let mut config = hsm.config(&[TOKEN]);
    config.keys = vec![KeyConfig::new(id("alias"), target.as_str())];
    config.default_key_mapping = false;
    let km = open(config).await.unwrap();
    let sealed = km.encrypt(&id("alias"), b"x", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&id("alias"), sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"x"
    );
    let err = km.encrypt(&target, b"x", b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);

    let km = km_on(&[TOKEN]).await;
    let err = km.key_metadata(&id("xks-health-canary")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::KeyNotFound);
    assert_eq!(km.backend_name(), "pkcs11");
    assert_eq!(km.vendor(), "SoftHSM");
    let debug = format!("{km:?}");
    assert!(!debug.contains(SoftHsm::USER_PIN), "{debug}");
}
