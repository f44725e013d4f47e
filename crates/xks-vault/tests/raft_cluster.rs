//! The Vault backend against a three-node OpenBao Raft cluster on 127.0.0.1:
//! the active node is killed (by PID) while traffic flows. The backend keeps
//! serving through the survivors, every ciphertext made before, during and
//! after the failover decrypts, and the errors in between are retryable
//! dependency errors that come within the time budget, never hangs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xks_keymanager::{ErrorKind, KeyManager, Sealed};
use xks_protocol::{HealthStatus, KeyId};
use xks_vault::testing::RaftCluster;
use xks_vault::{AuthConfig, SecretSource, VaultConfig, VaultKeyManager};

/// The per-call budget: the default. Calls may fail with Timeout under load,
/// but none may take much longer.
const BUDGET: Duration = Duration::from_millis(150);

/// How much later than the budget a failed call may return on a loaded,
/// shared test machine.
const SLACK: Duration = Duration::from_millis(250);

struct Made {
    sealed: Sealed,
    plaintext: Vec<u8>,
    aad: Vec<u8>,
}

#[derive(Default)]
struct Tally {
    ok: usize,
    errors: HashMap<ErrorKind, usize>,
    slowest: Duration,
    made: Vec<Made>,
}

async fn traffic(km: Arc<VaultKeyManager>, key: KeyId, task: u8, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut round = 0u32;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let plaintext = format!("task {task} round {round}").into_bytes();
        let aad = vec![task, 1, 2];
        let started = Instant::now();
        let result = km.encrypt(&key, &plaintext, &aad).await;
        tally.slowest = tally.slowest.max(started.elapsed());
        match result {
            Ok(sealed) => {
                tally.ok += 1;
                let started = Instant::now();
                let opened = km.decrypt(&key, sealed.as_ref(), &aad).await;
                tally.slowest = tally.slowest.max(started.elapsed());
                match opened {
                    Ok(p) => {
                        assert_eq!(p.as_bytes(), &plaintext[..]);
                        tally.ok += 1;
                    }
                    Err(e) => *tally.errors.entry(e.kind()).or_default() += 1,
                }
                tally.made.push(Made {
                    sealed,
                    plaintext,
                    aad,
                });
            }
            Err(e) => *tally.errors.entry(e.kind()).or_default() += 1,
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tally
}

/// Encrypts, retrying retryable errors (a loaded machine may miss the budget).
async fn encrypts(km: &VaultKeyManager, key: &KeyId, plaintext: &[u8], aad: &[u8]) -> Sealed {
    let mut last = None;
    for _ in 0..5 {
        match km.encrypt(key, plaintext, aad).await {
            Ok(sealed) => return sealed,
            Err(e) if e.kind().is_retryable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("encrypt failed: {e:?}"),
        }
    }
    panic!("encrypt failed: {last:?}");
}

/// Decrypts `made`, retrying retryable errors a few times.
async fn decrypts(km: &VaultKeyManager, key: &KeyId, made: &Made) {
    let mut last = None;
    for _ in 0..5 {
        match km.decrypt(key, made.sealed.as_ref(), &made.aad).await {
            Ok(p) => {
                assert_eq!(p.as_bytes(), &made.plaintext[..]);
                return;
            }
            Err(e) if e.kind().is_retryable() => {
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("ciphertext {:?} does not decrypt: {e:?}", made.sealed),
        }
    }
    panic!("ciphertext {:?} does not decrypt: {last:?}", made.sealed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_while_traffic_flows() {
    let mut cluster = tokio::task::spawn_blocking(|| RaftCluster::start(3))
        .await
        .unwrap();
    cluster.expect_ok(
        "POST",
        "transit/keys/raft-key",
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    let token = cluster.root_token().to_owned();
    let mut config = VaultConfig::new(
        cluster.addresses(),
        AuthConfig::Token {
            token: SecretSource::Env("TOKEN".to_owned()),
        },
    );
    config.request_timeout = BUDGET;
    config.node_check_interval = Duration::from_millis(500);
    let km = Arc::new(
        VaultKeyManager::connect(&config, move |_| Some(OsString::from(&token)))
            .await
            .unwrap(),
    );
    let key = KeyId::new("raft-key").unwrap();
    let leader = cluster.active_node().unwrap();
    assert_eq!(
        km.preferred_node(),
        cluster.addresses()[leader],
        "requests go to the active node"
    );
    let health = km.health().await;
    assert!(
        health.iter().all(|n| n.status == HealthStatus::Active),
        "{health:?}"
    );

    // Before.
    let mut before = Vec::new();
    for i in 0..20u8 {
        let plaintext = vec![i; 32];
        let sealed = encrypts(&km, &key, &plaintext, b"before").await;
        before.push(Made {
            sealed,
            plaintext,
            aad: b"before".to_vec(),
        });
    }

    // During: eight tasks of traffic; the leader dies after a second.
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..8u8)
        .map(|t| tokio::spawn(traffic(km.clone(), key.clone(), t, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed_at = Instant::now();
    let pid = cluster.pid(leader).unwrap();
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.kill(leader);
        let new_leader = cluster.wait_for_active(Duration::from_secs(60));
        (cluster, new_leader)
    })
    .await
    .unwrap();
    let (cluster, new_leader) = cluster;
    let elected_after = killed_at.elapsed();
    assert_ne!(new_leader, leader);
    // Keep the traffic on the new leader for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut during = Tally::default();
    for task in tasks {
        let t = task.await.unwrap();
        during.ok += t.ok;
        for (k, n) in t.errors {
            *during.errors.entry(k).or_default() += n;
        }
        during.slowest = during.slowest.max(t.slowest);
        during.made.extend(t.made);
    }
    println!(
        "killed node {leader} (pid {pid}); node {new_leader} active after {elected_after:?}; \
         {} calls succeeded, errors {:?}, slowest call {:?}",
        during.ok, during.errors, during.slowest
    );
    assert!(during.ok > 100, "traffic flowed: {} calls", during.ok);
    for kind in during.errors.keys() {
        assert!(
            matches!(
                kind,
                ErrorKind::Unavailable | ErrorKind::Timeout | ErrorKind::Throttled
            ),
            "errors during the failover are dependency errors, got {:?}",
            during.errors
        );
    }
    assert!(
        during.slowest < BUDGET + SLACK,
        "no call hangs: slowest {:?}",
        during.slowest
    );
    assert_ne!(
        km.preferred_node(),
        cluster.addresses()[leader],
        "the dead node is no longer tried first"
    );

    // After: new ciphertexts, and a rotation through the new leader.
    let mut after = Vec::new();
    for i in 0..20u8 {
        let plaintext = vec![i; 48];
        let sealed = encrypts(&km, &key, &plaintext, b"after").await;
        after.push(Made {
            sealed,
            plaintext,
            aad: b"after".to_vec(),
        });
    }
    let rotated = km.admin().rotate_key(&key).await.unwrap();
    assert_eq!(rotated.latest_version, 2);
    let plaintext = b"after rotation".to_vec();
    let sealed = encrypts(&km, &key, &plaintext, b"").await;
    assert_eq!(sealed.version.get(), 2);
    after.push(Made {
        sealed,
        plaintext,
        aad: Vec::new(),
    });

    // Every ciphertext decrypts, whenever it was made.
    for made in before.iter().chain(&during.made).chain(&after) {
        decrypts(&km, &key, made).await;
    }
    println!(
        "{} ciphertexts before, {} during, {} after the failover all decrypt",
        before.len(),
        during.made.len(),
        after.len()
    );

    // Health: the dead node is unavailable, the survivors serve.
    let health = km.health().await;
    for (i, node) in health.iter().enumerate() {
        let expected = if i == leader {
            HealthStatus::Unavailable
        } else {
            HealthStatus::Active
        };
        assert_eq!(node.status, expected, "{health:?}");
    }

    // Every node dead: fast Unavailable errors, no hang.
    let mut cluster = cluster;
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &survivors {
        cluster.kill(i);
    }
    let started = Instant::now();
    let err = km.encrypt(&key, b"x", b"").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    let err = km
        .decrypt(&key, after[0].sealed.as_ref(), b"after")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(
        started.elapsed() < BUDGET + SLACK,
        "{:?}",
        started.elapsed()
    );
    let health = km.health().await;
    assert!(
        health.iter().all(|n| n.status == HealthStatus::Unavailable),
        "{health:?}"
    );
}
