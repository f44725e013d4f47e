//! Recovery from lost devices, on SoftHSM2 behind a fault-injecting PKCS#11
//! module (`crates/xks-pkcs11-faultwrap`, built by `tests/common` into
//! `CARGO_TARGET_TMPDIR`): device errors that a new session cures, device
//! errors only a module restart cures, outages with failover to another module,
//! the restart backoff, restarts whose `C_Initialize` fails, the quiescing of
//! calls around a restart, and a module that cannot copy keys
//! (`session_key_copies`).
//!
//! Each test wraps its own copy of the SoftHSM library, so it has a SoftHSM
//! instance (and a module restart state) of its own, apart from the instance
//! the test support uses to make tokens and keys. The tests run one at a time:
//! they measure how fast errors come and how often the module restarts.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xks_keymanager::{ErrorKind, KeyManager, Sealed};
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Pkcs11Config, Pkcs11KeyManager, SlotStats, Usage};
use xks_protocol::{HealthStatus, KeyId};

use crate::common::FaultWrap;

/// One test at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The wait between module restarts these tests configure (doubling).
const RESTART_BACKOFF: Duration = Duration::from_millis(300);

/// A failing call, restart included, must answer well within this (the call
/// timeout is 5 s): errors during an outage are fast.
const FAST: Duration = Duration::from_secs(1);

/// A configuration for `tokens` with the restart backoff of these tests and
/// two workers per slot.
fn config(tokens: &[usize]) -> Pkcs11Config {
    let mut config = SoftHsm::shared().config(tokens);
    config.sessions_per_slot = 2;
    config.module_restart_backoff = RESTART_BACKOFF;
    config.module_restart_backoff_max = Duration::from_secs(2);
    config
}

async fn open(config: Pkcs11Config) -> Arc<Pkcs11KeyManager> {
    let km = tokio::task::spawn_blocking(move || Pkcs11KeyManager::open(&config, SoftHsm::env()))
        .await
        .unwrap()
        .unwrap();
    Arc::new(km)
}

/// A new key on `token` (through the test support's own SoftHSM instance).
fn new_key(token: usize, prefix: &str) -> KeyId {
    let label = SoftHsm::unique_label(prefix);
    SoftHsm::shared()
        .admin(token)
        .create_key(&label, Usage::ENCRYPT_DECRYPT)
        .unwrap();
    KeyId::new(&label).unwrap()
}

/// A key manager on `token` through `wrap`, a key, and a ciphertext made
/// before any fault.
async fn wrapped_km(
    wrap: &FaultWrap,
    token: usize,
    prefix: &str,
) -> (Arc<Pkcs11KeyManager>, KeyId, Sealed) {
    let key = new_key(token, prefix);
    let mut config = config(&[token]);
    config.module = Some(wrap.module());
    let km = open(config).await;
    let sealed = km.encrypt(&key, b"before", b"aad").await.unwrap();
    workers_ready(&km, 0, 2).await;
    (km, key, sealed)
}

/// Waits until the `workers` worker threads of `slot` have opened their
/// sessions (they do so as they start), so counters taken next stay put.
async fn workers_ready(km: &Pkcs11KeyManager, slot: usize, workers: u64) {
    let started = Instant::now();
    // The startup check's session, and one per worker.
    while stats(km, slot).sessions_opened < 1 + workers {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "workers did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn stats(km: &Pkcs11KeyManager, slot: usize) -> SlotStats {
    km.stats()[slot].clone()
}

/// Traffic works from many tasks at once: old and new ciphertexts decrypt.
async fn traffic_works(km: &Arc<Pkcs11KeyManager>, key: &KeyId, old: &Sealed) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let (km, key, old) = (km.clone(), key.clone(), old.clone());
        tasks.spawn(async move {
            for round in 0..10u8 {
                let got = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
                assert_eq!(got.as_bytes(), b"before");
                let pt = [i ^ round; 40];
                let sealed = km.encrypt(&key, &pt, b"aad").await.unwrap();
                let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
                assert_eq!(got.as_bytes(), &pt);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

/// Persistent device errors (the module's link to the HSM is broken): every
/// call fails fast as `Unavailable`; the module is restarted at once, then
/// again only after the backoff (300 ms, doubling), never in a loop; health
/// says `UNAVAILABLE`. Once the fault clears, traffic resumes by itself and the
/// ciphertexts from before the outage decrypt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_device_errors_fail_fast_restart_with_backoff_and_heal() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("persistent");
    let (km, key, old) = wrapped_km(&wrap, 0, "persistent").await;
    assert_eq!(stats(&km, 0).module_restarts, 0);

    wrap.set("device_error");
    let outage = Instant::now();
    let mut calls = 0;
    while outage.elapsed() < Duration::from_millis(1500) {
        let started = Instant::now();
        let error = if calls % 2 == 0 {
            km.encrypt(&key, b"during", b"aad").await.unwrap_err()
        } else {
            km.decrypt(&key, old.as_ref(), b"aad").await.unwrap_err()
        };
        let took = started.elapsed();
        assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
        assert!(took < FAST, "a failing call took {took:?}");
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = stats(&km, 0);
    // Restarts at 0, 300 ms and 900 ms (the next is due at 2.1 s): without the
    // backoff there would be one per call.
    assert!(
        (2..=3).contains(&during.module_restarts),
        "{} restarts for {calls} calls: {during:?}",
        during.module_restarts
    );
    let restarts = usize::try_from(during.module_restarts).unwrap();
    assert_eq!(
        wrap.events("C_Finalize 0x0"),
        restarts,
        "what the module saw"
    );
    // The first initialization, then one per restart.
    assert_eq!(wrap.events("C_Initialize 0x0"), restarts + 1);
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Unavailable, "{health:?}");

    wrap.set("ok");
    traffic_works(&km, &key, &old).await;
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Active, "{health:?}");
    let after = stats(&km, 0);
    assert_eq!(
        after.module_restarts, during.module_restarts,
        "healing needed no restart: {after:?}"
    );
    assert!(
        after.logins > during.logins,
        "logged in again after the restarts: {after:?}"
    );
}

/// A fault that persists until the module is finalized and initialized again
/// (only a restart cures it): the request that meets it fails over a new
/// session, restarts the module, and succeeds; one restart, seen by the module
/// as one `C_Finalize` and one `C_Initialize`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_only_a_restart_cures_is_cured_within_the_request() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("until-initialize");
    let (km, key, old) = wrapped_km(&wrap, 0, "until-initialize").await;
    let before = stats(&km, 0);

    wrap.set("device_error until_initialize");
    let started = Instant::now();
    let sealed = km.encrypt(&key, b"across", b"aad").await.unwrap();
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert_eq!(
        wrap.fault(),
        "ok",
        "the restart's C_Initialize cured the fault"
    );
    assert_eq!(wrap.events("C_Finalize 0x0"), 1);
    assert_eq!(wrap.events("C_Initialize 0x0"), 2);
    let after = stats(&km, 0);
    assert_eq!(
        after.module_restarts,
        before.module_restarts + 1,
        "{after:?}"
    );
    assert!(after.sessions_lost > before.sessions_lost, "{after:?}");

    let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"across");
    traffic_works(&km, &key, &old).await;
    assert_eq!(stats(&km, 0).module_restarts, after.module_restarts);
}

/// A restart whose `C_Initialize` fails, as when the device is not back yet:
/// the module stays uninitialized and every call fails fast as `Unavailable`
/// (health too); the key manager initializes it again only after the backoff
/// (300 ms, doubling), not once per call. When `C_Initialize` works again the
/// fault is cured, and new and old ciphertexts work with no further restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_whose_initialize_fails_is_retried_after_the_backoff() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("initialize-fails");
    let (km, key, old) = wrapped_km(&wrap, 0, "initialize-fails").await;

    wrap.set("device_error until_initialize initialize_fails=2");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    let sealed = loop {
        let started = Instant::now();
        match km.encrypt(&key, b"across", b"aad").await {
            Ok(sealed) => break sealed,
            Err(error) => {
                let took = started.elapsed();
                assert_eq!(error.kind(), ErrorKind::Unavailable, "{error}");
                assert!(took < FAST, "a failing call took {took:?}");
                failures += 1;
                if failures == 1 {
                    let health = km.health().await;
                    assert_eq!(health[0].status, HealthStatus::Unavailable, "{health:?}");
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no recovery after {failures} failures; fault switch: {}",
            wrap.fault()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        wrap.fault(),
        "ok",
        "the C_Initialize that worked cured the fault"
    );
    assert_eq!(
        wrap.events("inject C_Initialize"),
        2,
        "both failures were used"
    );
    // The first initialization, and the one that worked.
    assert_eq!(wrap.events("C_Initialize 0x0"), 2);
    assert!(wrap.events("C_Finalize") >= 1, "the module was restarted");
    // Three initializations in all (two failed) over the outage, while calls
    // kept coming every 20 ms: the backoff held, there was no retry loop.
    assert!(
        failures >= 3,
        "{failures} failed calls: the outage lasted at least two backoffs"
    );

    let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"across");
    let healed = stats(&km, 0);
    traffic_works(&km, &key, &old).await;
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Active, "{health:?}");
    assert_eq!(stats(&km, 0).module_restarts, healed.module_restarts);
    assert_eq!(wrap.events("inject C_Initialize"), 2);
}

/// `session_key_copies` (on: the wrapped module is SoftHSM) on a module that
/// cannot copy objects (`C_CopyObject` answers `CKR_FUNCTION_NOT_SUPPORTED`):
/// the workers use the token objects, ask for a copy once per key and session
/// rather than on every use, and traffic works. A device error from
/// `C_CopyObject` is recovered from as any other call's: a new session, and
/// the copy made there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_does_not_copy_keys_is_used_through_the_token_objects() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("no-copy");
    wrap.set("function_not_supported only=C_CopyObject");
    let (km, key, old) = wrapped_km(&wrap, 0, "no-copy").await;
    traffic_works(&km, &key, &old).await;
    let before = stats(&km, 0);
    assert!(before.uses_key_copies, "{before:?}");
    assert_eq!(before.key_copies, 0, "{before:?}");
    let refused = wrap.events("inject C_CopyObject 0x54");
    // The key and the canary, per worker (2), and the canary for the startup
    // check's session; traffic made a hundred and more key uses.
    assert!(
        (1..=5).contains(&refused),
        "{refused} refused copies: one per key and session, not per use"
    );

    let other = new_key(0, "no-copy-then-device-error");
    wrap.set("device_error only=C_CopyObject count=1");
    let sealed = km.encrypt(&other, b"copied", b"aad").await.unwrap();
    let got = km.decrypt(&other, sealed.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"copied");
    assert_eq!(wrap.events("inject C_CopyObject 0x30"), 1);
    let after = stats(&km, 0);
    assert!(after.sessions_lost > before.sessions_lost, "{after:?}");
    assert!(
        after.key_copies >= 1,
        "copied in the new session: {after:?}"
    );
    assert_eq!(after.module_restarts, 0, "{after:?}");
}

/// Two slots holding the same key: the first through the wrapped module, the
/// second through SoftHSM directly. While the wrapped module's device is lost,
/// every call succeeds on the second slot (the first is passed over, and
/// restarts its module in the background of failed attempts); the second
/// slot's module is never restarted and its sessions survive. When only a
/// restart can cure the fault, the next restart does, health turns `ACTIVE`,
/// and traffic returns to the first slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_fails_over_while_the_wrapped_module_restarts() {
    let _serial = SERIAL.lock().await;
    let (wrapped, plain) = (1, 2);
    let wrap = FaultWrap::new("failover");
    let hsm = SoftHsm::shared();
    let label = SoftHsm::unique_label("failover");
    hsm.import_key(&[wrapped, plain], &label, &[0x5a; 32], false, true);
    let key = KeyId::new(&label).unwrap();
    let mut config = config(&[wrapped, plain]);
    config.slots[0].module = Some(wrap.module());
    let km = open(config).await;
    let old = km.encrypt(&key, b"before", b"aad").await.unwrap();
    assert!(stats(&km, 0).requests > 0, "the first slot serves first");
    workers_ready(&km, 0, 2).await;
    workers_ready(&km, 1, 2).await;

    wrap.set("device_error");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let (km, key, old) = (km.clone(), key.clone(), old.clone());
        tasks.spawn(async move {
            for round in 0..25u8 {
                let started = Instant::now();
                let got = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
                assert_eq!(got.as_bytes(), b"before");
                let pt = [i ^ round; 33];
                let sealed = km.encrypt(&key, &pt, b"aad").await.unwrap();
                let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
                assert_eq!(got.as_bytes(), &pt);
                assert!(started.elapsed() < FAST * 3, "took {:?}", started.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let (first, second) = (stats(&km, 0), stats(&km, 1));
    assert!(first.module_restarts >= 1, "{first:?}");
    assert_eq!(
        wrap.events("C_Finalize 0x0"),
        usize::try_from(first.module_restarts).unwrap()
    );
    assert!(second.requests >= 8 * 25 * 3, "{second:?}");
    assert_eq!(second.module_restarts, 0, "{second:?}");
    assert_eq!(
        second.sessions_lost, 0,
        "the other module was left alone: {second:?}"
    );
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Unavailable, "{health:?}");
    assert_eq!(health[1].status, HealthStatus::Active, "{health:?}");

    // Now only a restart cures the device; the backoff allows one soon.
    wrap.set("device_error until_initialize");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let health = km.health().await;
        if health[0].status == HealthStatus::Active {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wrapped slot did not come back: {health:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(wrap.fault(), "ok");
    let healed = stats(&km, 0);
    assert!(healed.module_restarts > first.module_restarts, "{healed:?}");
    for round in 0..10u8 {
        let sealed = km.encrypt(&key, &[round; 8], b"aad").await.unwrap();
        let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
        assert_eq!(got.as_bytes(), &[round; 8]);
    }
    let got = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"before");
    let back = stats(&km, 0);
    assert!(
        back.requests >= healed.requests + 21,
        "traffic is back on the first slot: {back:?}"
    );
    assert_eq!(stats(&km, 1).module_restarts, 0);
}

/// One transient device error: the worker forgets its session, opens another
/// and succeeds; no module restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_device_error_reopens_the_session_without_a_restart() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("transient");
    let (km, key, old) = wrapped_km(&wrap, 0, "transient").await;
    let before = stats(&km, 0);

    wrap.set("device_error count=1");
    let sealed = km.encrypt(&key, b"blip", b"aad").await.unwrap();
    assert_eq!(wrap.fault(), "ok", "the one fault was used");
    assert_eq!(wrap.events("inject"), 1);
    let after = stats(&km, 0);
    assert_eq!(after.sessions_lost, before.sessions_lost + 1, "{after:?}");
    assert_eq!(
        after.sessions_opened,
        before.sessions_opened + 1,
        "{after:?}"
    );
    assert_eq!(after.module_restarts, 0, "{after:?}");
    assert_eq!(wrap.events("C_Finalize"), 0);

    let got = km.decrypt(&key, sealed.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"blip");
    traffic_works(&km, &key, &old).await;
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Active, "{health:?}");
}

/// A restart never finalizes the module under a call in progress: while three
/// workers run slow encryptions, a fourth, whose decryptions fail until the
/// module is initialized again, restarts the module only once their calls are
/// out (new calls wait for the restart meanwhile). The module saw no call in
/// progress at `C_Finalize`, and the decryption succeeds after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_waits_for_the_calls_in_progress() {
    let _serial = SERIAL.lock().await;
    let wrap = FaultWrap::new("quiesce");
    let key = new_key(0, "quiesce");
    let mut config = config(&[0]);
    config.module = Some(wrap.module());
    config.sessions_per_slot = 4;
    let km = open(config).await;
    let old = km.encrypt(&key, b"before", b"aad").await.unwrap();
    workers_ready(&km, 0, 4).await;

    wrap.set("device_error until_initialize only=C_Decrypt slow=20");
    let stop = Arc::new(AtomicBool::new(false));
    let mut encryptions = tokio::task::JoinSet::new();
    for i in 0..3u8 {
        let (km, key, stop) = (km.clone(), key.clone(), stop.clone());
        encryptions.spawn(async move {
            let (mut served, mut refused) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                match km.encrypt(&key, &[i; 16], b"aad").await {
                    Ok(_) => served += 1,
                    // Only a call that waited for the restart longer than
                    // call_timeout (5 s here) would fail; it would say so.
                    Err(e) => {
                        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
                        refused += 1;
                    }
                }
            }
            (served, refused)
        });
    }
    // Let the slow encryptions get under way.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = km.decrypt(&key, old.as_ref(), b"aad").await.unwrap();
    assert_eq!(got.as_bytes(), b"before");
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    while let Some(done) = encryptions.join_next().await {
        served += done.unwrap().0;
    }
    assert!(served > 0, "the encryptions ran");
    assert_eq!(wrap.fault(), "ok", "the restart cured the fault");
    assert_eq!(stats(&km, 0).module_restarts, 1);
    assert_eq!(
        wrap.events("C_Finalize 0x0 in_progress=0"),
        1,
        "C_Finalize came while calls were in progress: {} finalizations",
        wrap.events("C_Finalize")
    );
    traffic_works(&km, &key, &old).await;
}
