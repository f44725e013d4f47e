//! The Vault backend against a real OpenBao dev server, started once for this
//! test binary on a free loopback port and killed by PID when the process ends.
//!
//! The shared key manager battery runs twice (with and without coalescing);
//! the other tests cover key states, name mapping, the upsert check, AppRole
//! and token renewal, failover and timeouts, TLS, namespaces and the operator
//! operations. Each test uses its own Transit keys.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use xks_keymanager::testing::{Fixture, KeyRole};
use xks_keymanager::{ErrorKind, KeyManager, KeyManagerError};
use xks_protocol::{HealthStatus, KeyId, KeyStatus, KeyUsage};
use xks_vault::testing::{DevServer, free_port, unique};
use xks_vault::{
    AuthConfig, Error, KeyConfig, KeyUsagePolicy, SecretSource, VaultAdmin, VaultConfig,
    VaultKeyManager,
};

const TOKEN_VAR: &str = "XKS_TEST_VAULT_TOKEN";

static SERVER: OnceLock<DevServer> = OnceLock::new();

/// The dev server of this test binary, with the battery's keys.
fn server() -> &'static DevServer {
    SERVER.get_or_init(|| {
        let server = DevServer::start();
        // Tokens that cannot create keys need the canary to exist.
        server.create_key("xks-health-canary");
        for prefix in ["co", "di"] {
            for (_, suffix, _) in ROLES {
                server.create_key(&format!("{prefix}-{suffix}"));
            }
            server.expect_ok(
                "DELETE",
                &format!("transit/keys/{prefix}-disabled/soft-delete"),
                None,
            );
        }
        server
    })
}

async fn shared() -> &'static DevServer {
    tokio::task::spawn_blocking(server).await.unwrap()
}

fn env(token: &str) -> impl Fn(&str) -> Option<OsString> + use<> {
    let vars = HashMap::from([(TOKEN_VAR.to_owned(), OsString::from(token))]);
    move |name| vars.get(name).cloned()
}

/// A configuration for `server` with the root token (from the environment
/// lookup) and a budget loose enough for a shared, loaded test machine.
fn config_for(server: &DevServer) -> VaultConfig {
    let mut config = VaultConfig::new(
        [server.address()],
        AuthConfig::Token {
            token: SecretSource::Env(TOKEN_VAR.to_owned()),
        },
    );
    config.request_timeout = Duration::from_secs(1);
    config
}

async fn connect(config: &VaultConfig) -> VaultKeyManager {
    let server = shared().await;
    VaultKeyManager::connect(config, env(server.root_token()))
        .await
        .unwrap_or_else(|e| panic!("connect: {}", xks_vault::DisplayChain(&e)))
}

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

/// A fresh Transit key with a unique name; returns the name.
fn fresh_key(server: &DevServer, what: &str) -> String {
    let name = format!("{what}-{}", unique());
    server.create_key(&name);
    name
}

fn kind<T: std::fmt::Debug>(result: Result<T, KeyManagerError>) -> ErrorKind {
    match result {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

// --- the shared battery --------------------------------------------------

const ROLES: [(KeyRole, &str, KeyUsagePolicy); 7] = [
    (KeyRole::Primary, "primary", KeyUsagePolicy::EncryptDecrypt),
    (KeyRole::Other, "other", KeyUsagePolicy::EncryptDecrypt),
    (
        KeyRole::EncryptOnly,
        "encrypt-only",
        KeyUsagePolicy::EncryptOnly,
    ),
    (
        KeyRole::DecryptOnly,
        "decrypt-only",
        KeyUsagePolicy::DecryptOnly,
    ),
    (KeyRole::NoUsage, "no-usage", KeyUsagePolicy::None),
    // Soft-deleted in Transit: reported DISABLED by the backend itself.
    (
        KeyRole::Disabled,
        "disabled",
        KeyUsagePolicy::EncryptDecrypt,
    ),
    (
        KeyRole::Rotating,
        "rotating",
        KeyUsagePolicy::EncryptDecrypt,
    ),
];

struct VaultFixture {
    km: Arc<VaultKeyManager>,
    prefix: &'static str,
}

async fn battery_fixture(prefix: &'static str, coalesce: bool) -> VaultFixture {
    let server = shared().await;
    let mut config = config_for(server);
    config.coalesce = coalesce;
    config.keys = ROLES
        .iter()
        .map(|(_, suffix, usage)| {
            let mut key = KeyConfig::new(id(&format!("{prefix}-{suffix}")));
            key.usage = *usage;
            key
        })
        .collect();
    VaultFixture {
        km: Arc::new(connect(&config).await),
        prefix,
    }
}

#[async_trait]
impl Fixture for VaultFixture {
    fn key_manager(&self) -> Arc<dyn KeyManager> {
        self.km.clone()
    }

    fn key(&self, role: KeyRole) -> KeyId {
        let (_, suffix, _) = ROLES.iter().find(|(r, ..)| *r == role).unwrap();
        id(&format!("{}-{suffix}", self.prefix))
    }

    async fn rotate(&self, key: &KeyId) {
        // Transit's rotate, through the operator API sharing the connection.
        self.km.admin().rotate_key(key).await.unwrap();
    }
}

mod battery_coalesced {
    xks_keymanager::key_manager_battery!(super::battery_fixture("co", true));
}

mod battery_direct {
    xks_keymanager::key_manager_battery!(super::battery_fixture("di", false));
}

// --- key states -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_and_min_decryption_version() {
    let server = shared().await;
    let name = fresh_key(server, "mindec");
    let km = connect(&config_for(server)).await;
    let key = id(&name);
    let v1 = km.encrypt(&key, b"one", b"aad").await.unwrap();
    assert_eq!(v1.version.get(), 1);
    let info = km.admin().rotate_key(&key).await.unwrap();
    assert_eq!(info.latest_version, 2);
    let v2 = km.encrypt(&key, b"two", b"aad").await.unwrap();
    assert_eq!(v2.version.get(), 2);
    assert_eq!(
        km.decrypt(&key, v1.as_ref(), b"aad")
            .await
            .unwrap()
            .as_bytes(),
        b"one"
    );

    server.expect_ok(
        "POST",
        &format!("transit/keys/{name}/config"),
        Some(r#"{"min_decryption_version":2}"#),
    );
    km.refresh_key(&key);
    assert_eq!(
        kind(km.decrypt(&key, v1.as_ref(), b"aad").await),
        ErrorKind::InvalidCiphertext,
        "a version below min_decryption_version"
    );
    assert_eq!(
        km.decrypt(&key, v2.as_ref(), b"aad")
            .await
            .unwrap()
            .as_bytes(),
        b"two"
    );
    let md = km.key_metadata(&key).await.unwrap();
    assert_eq!(md.key_status, KeyStatus::Enabled);
    assert_eq!(md.key_usage, [KeyUsage::Encrypt, KeyUsage::Decrypt]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cache_follows_min_encryption_version() {
    let server = shared().await;
    let name = fresh_key(server, "minenc");
    let mut config = config_for(server);
    config.key_cache_ttl = Duration::from_secs(60);
    let km = connect(&config).await;
    let key = id(&name);
    assert_eq!(km.encrypt(&key, b"x", b"").await.unwrap().version.get(), 1);
    // Rotated elsewhere, with encryption under old versions forbidden: the
    // cached description (version 1) is stale for another minute.
    server.expect_ok("POST", &format!("transit/keys/{name}/rotate"), None);
    server.expect_ok("POST", &format!("transit/keys/{name}/rotate"), None);
    server.expect_ok(
        "POST",
        &format!("transit/keys/{name}/config"),
        Some(r#"{"min_encryption_version":3}"#),
    );
    let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
    assert_eq!(
        sealed.version.get(),
        3,
        "described again after Transit refused"
    );
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"x"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_deleted_key_is_disabled() {
    let server = shared().await;
    let name = fresh_key(server, "soft");
    let km = connect(&config_for(server)).await;
    let key = id(&name);
    let sealed = km.encrypt(&key, b"secret", b"").await.unwrap();
    server.expect_ok("DELETE", &format!("transit/keys/{name}/soft-delete"), None);
    // The cached description still says enabled: Transit's refusal is mapped.
    assert_eq!(
        kind(km.encrypt(&key, b"x", b"").await),
        ErrorKind::KeyDisabled
    );
    // Now described afresh.
    let md = km.key_metadata(&key).await.unwrap();
    assert_eq!(md.key_status, KeyStatus::Disabled);
    assert_eq!(
        kind(km.encrypt(&key, b"x", b"").await),
        ErrorKind::KeyDisabled
    );
    assert_eq!(
        kind(km.decrypt(&key, sealed.as_ref(), b"").await),
        ErrorKind::KeyDisabled
    );
    server.expect_ok(
        "POST",
        &format!("transit/keys/{name}/soft-delete-restore"),
        None,
    );
    km.refresh_key(&key);
    assert_eq!(
        km.key_metadata(&key).await.unwrap().key_status,
        KeyStatus::Enabled
    );
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"secret"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_key_is_not_found() {
    let server = shared().await;
    let name = fresh_key(server, "gone");
    let km = connect(&config_for(server)).await;
    let key = id(&name);
    let sealed = km.encrypt(&key, b"secret", b"").await.unwrap();
    server.expect_ok(
        "POST",
        &format!("transit/keys/{name}/config"),
        Some(r#"{"deletion_allowed":true}"#),
    );
    server.expect_ok("DELETE", &format!("transit/keys/{name}"), None);
    // Stale cache: Transit answers "encryption key not found" (upsert is off).
    assert_eq!(
        kind(km.encrypt(&key, b"x", b"").await),
        ErrorKind::KeyNotFound
    );
    assert_eq!(kind(km.key_metadata(&key).await), ErrorKind::KeyNotFound);
    assert_eq!(
        kind(km.decrypt(&key, sealed.as_ref(), b"").await),
        ErrorKind::KeyNotFound
    );
    // And the key was not re-created by the encrypt.
    assert_eq!(
        server.api("GET", &format!("transit/keys/{name}"), None).0,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_side_usage_and_disabled_policies() {
    let server = shared().await;
    let names: Vec<String> = ["pol-a", "pol-b"]
        .iter()
        .map(|w| fresh_key(server, w))
        .collect();
    let mut config = config_for(server);
    config.allow_unlisted_keys = false;
    let mut disabled = KeyConfig::new(id("disabled-by-config"));
    disabled.transit_key = Some(names[0].clone());
    disabled.disabled = true;
    let mut decrypt_only = KeyConfig::new(id("decrypt-only"));
    decrypt_only.transit_key = Some(names[1].clone());
    decrypt_only.usage = KeyUsagePolicy::DecryptOnly;
    config.keys = vec![disabled, decrypt_only];
    let km = connect(&config).await;

    let md = km.key_metadata(&id("disabled-by-config")).await.unwrap();
    assert_eq!(md.key_status, KeyStatus::Disabled);
    assert_eq!(
        kind(km.encrypt(&id("disabled-by-config"), b"x", b"").await),
        ErrorKind::KeyDisabled
    );
    let md = km.key_metadata(&id("decrypt-only")).await.unwrap();
    assert_eq!(md.key_usage, [KeyUsage::Decrypt]);
    assert_eq!(
        kind(km.encrypt(&id("decrypt-only"), b"x", b"").await),
        ErrorKind::KeyUsage
    );
    // Unlisted ids do not exist, even when a Transit key has their name.
    assert_eq!(
        kind(km.key_metadata(&id(&names[0])).await),
        ErrorKind::KeyNotFound
    );
    // The canary is never reachable through KMS.
    let mut open = config_for(server);
    open.allow_unlisted_keys = true;
    let km = connect(&open).await;
    assert_eq!(
        kind(km.key_metadata(&id("xks-health-canary")).await),
        ErrorKind::KeyNotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_transit_cannot_hold_are_mapped() {
    let server = shared().await;
    let km = connect(&config_for(server)).await;
    let admin = km.admin();
    let tag = unique().replace('-', "");
    let ids = [
        format!("-lead{tag}"),
        format!("trail{tag}."),
        format!("xks-hex-{tag}"),
    ];
    for raw in &ids {
        let key = id(raw);
        let info = admin.create_key(&key).await.unwrap();
        assert!(info.name.starts_with("xks-hex-"), "{raw} -> {}", info.name);
        assert!(info.is_aes256_gcm() && !info.exportable && !info.deletion_allowed);
        let sealed = km.encrypt(&key, b"mapped", b"aad").await.unwrap();
        assert_eq!(
            km.decrypt(&key, sealed.as_ref(), b"aad")
                .await
                .unwrap()
                .as_bytes(),
            b"mapped"
        );
    }
    let listed = admin.list_keys().await.unwrap();
    for raw in &ids {
        assert!(
            listed
                .iter()
                .any(|k| k.external_id.as_ref() == Some(&id(raw))),
            "{raw} is listed with its external id"
        );
    }
    assert!(listed.iter().any(|k| k.canary && k.external_id.is_none()));
}

// --- startup checks ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_must_be_impossible() {
    let server = shared().await;
    let mount = format!("upsert-{}", unique());
    server.expect_ok(
        "POST",
        &format!("sys/mounts/{mount}"),
        Some(r#"{"type":"transit"}"#),
    );
    let mut config = config_for(server);
    config.mount = mount.clone();
    // The root token may create keys, and the mount does not forbid upserts.
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UpsertEnabled { .. }), "{err:?}");

    // A token that may only use keys is fine on that mount.
    let policy = format!(
        r#"path "{mount}/encrypt/*" {{ capabilities = ["update"] }}
path "{mount}/decrypt/*" {{ capabilities = ["update"] }}
path "{mount}/keys/*" {{ capabilities = ["read"] }}"#
    );
    server.expect_ok(
        "PUT",
        &format!("sys/policies/acl/{mount}"),
        Some(&serde_json::json!({ "policy": policy }).to_string()),
    );
    let token = server.expect_ok(
        "POST",
        "auth/token/create",
        Some(&serde_json::json!({ "policies": [mount], "ttl": "10m" }).to_string()),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its canary must exist, since it cannot create it.
    server.expect_ok(
        "POST",
        &format!("{mount}/keys/xks-health-canary"),
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    let km = VaultKeyManager::connect(&config, env(&token))
        .await
        .unwrap();
    server.expect_ok(
        "POST",
        &format!("{mount}/keys/k"),
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    let sealed = km.encrypt(&id("k"), b"x", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&id("k"), sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"x"
    );
    // A missing key is not created: the token cannot.
    assert_eq!(
        kind(km.encrypt(&id("missing"), b"x", b"").await),
        ErrorKind::KeyNotFound
    );
    // Deleted after it was described: Transit answers 403 (encrypting would
    // create it), and the backend finds out that the key is gone.
    server.expect_ok(
        "POST",
        &format!("{mount}/keys/k/config"),
        Some(r#"{"deletion_allowed":true}"#),
    );
    server.expect_ok("DELETE", &format!("{mount}/keys/k"), None);
    assert_eq!(
        kind(km.encrypt(&id("k"), b"x", b"").await),
        ErrorKind::KeyNotFound
    );

    // With disable_upsert, even the root token is fine.
    VaultAdmin::connect(&config, env(server.root_token()))
        .await
        .unwrap()
        .disable_upsert()
        .await
        .unwrap();
    VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_keys_must_exist_and_be_aes256_gcm96() {
    let server = shared().await;
    let mut config = config_for(server);
    let mut missing = KeyConfig::new(id("k"));
    missing.transit_key = Some(format!("missing-{}", unique()));
    config.keys = vec![missing];
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::KeyNotFound { .. }), "{err:?}");

    let name = format!("chacha-{}", unique());
    server.expect_ok(
        "POST",
        &format!("transit/keys/{name}"),
        Some(r#"{"type":"chacha20-poly1305"}"#),
    );
    config.keys[0].transit_key = Some(name.clone());
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::WrongKeyType { ref found, .. } if found == "chacha20-poly1305"),
        "{err:?}"
    );
    // Unlisted, such a key is reported with its type and no usage.
    let km = connect(&config_for(server)).await;
    let md = km.key_metadata(&id(&name)).await.unwrap();
    assert!(md.key_usage.is_empty());
    assert_eq!(
        kind(km.encrypt(&id(&name), b"x", b"").await),
        ErrorKind::KeyUsage
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_refused() {
    let server = shared().await;
    let config = config_for(server);
    let err = VaultKeyManager::connect(&config, env("not-a-token"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(ref e) if e.status() == Some(403)),
        "{err:?}"
    );
    let err = VaultKeyManager::connect(&config, |_| None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Secret(_)), "{err:?}");
    assert!(err.to_string().contains("credential"));
    assert!(!format!("{err:?}").contains(server.root_token()));
}

// --- authentication ------------------------------------------------------------

/// A policy allowing the transit operations and the upsert check.
fn user_policy(server: &DevServer) -> String {
    let name = format!("xks-user-{}", unique());
    let policy = r#"path "transit/encrypt/*" { capabilities = ["update"] }
path "transit/decrypt/*" { capabilities = ["update"] }
path "transit/keys/*" { capabilities = ["read"] }
path "transit/config/keys" { capabilities = ["read"] }"#;
    server.expect_ok(
        "PUT",
        &format!("sys/policies/acl/{name}"),
        Some(&serde_json::json!({ "policy": policy }).to_string()),
    );
    name
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_login_renewal_and_relogin() {
    let server = shared().await;
    let key = fresh_key(server, "approle");
    let policy = user_policy(server);
    let mount = format!("approle-{}", unique());
    server.expect_ok(
        "POST",
        &format!("sys/auth/{mount}"),
        Some(r#"{"type":"approle"}"#),
    );
    // Tokens live 2 s and at most 5 s: the backend must renew them, then log
    // in again once they cannot be renewed any more.
    server.expect_ok(
        "POST",
        &format!("auth/{mount}/role/xks"),
        Some(
            &serde_json::json!({ "token_policies": [policy], "token_ttl": "2s", "token_max_ttl": "5s" })
                .to_string(),
        ),
    );
    let role_id = server.expect_ok("GET", &format!("auth/{mount}/role/xks/role-id"), None)["data"]
        ["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = server.expect_ok("POST", &format!("auth/{mount}/role/xks/secret-id"), None)
        ["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_file = server.dir().join(format!("{mount}.secret-id"));
    std::fs::write(&secret_file, format!("{secret_id}\n")).unwrap();
    let mut config = config_for(server);
    config.auth = AuthConfig::AppRole {
        mount: mount.clone(),
        role_id: SecretSource::Env("XKS_ROLE_ID".to_owned()),
        secret_id: SecretSource::File(secret_file),
    };
    let vars = HashMap::from([("XKS_ROLE_ID".to_owned(), OsString::from(&role_id))]);
    let km = VaultKeyManager::connect(&config, move |name| vars.get(name).cloned())
        .await
        .unwrap();
    assert!(!format!("{km:?}").contains(&secret_id));
    let key = id(&key);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let sealed = km
            .encrypt(&key, b"still authorized", b"")
            .await
            .unwrap_or_else(|e| {
                panic!("after {:?}: {e:?}", started.elapsed());
            });
        assert_eq!(
            km.decrypt(&key, sealed.as_ref(), b"")
                .await
                .unwrap()
                .as_bytes(),
            b"still authorized"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewable_token_is_renewed() {
    let server = shared().await;
    let key = fresh_key(server, "renew");
    let policy = user_policy(server);
    let token = server.expect_ok(
        "POST",
        "auth/token/create",
        Some(
            &serde_json::json!({ "policies": [policy], "ttl": "3s", "renewable": true })
                .to_string(),
        ),
    )["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_file = server.dir().join(format!("token-{}", unique()));
    std::fs::write(&token_file, &token).unwrap();
    let mut config = config_for(server);
    config.auth = AuthConfig::Token {
        token: SecretSource::File(token_file),
    };
    let km = VaultKeyManager::connect(&config, |_| None).await.unwrap();
    let key = id(&key);
    // More than twice its TTL later, the token still works: it was renewed in
    // time (reading the same file again cannot revive an expired token).
    tokio::time::sleep(Duration::from_secs(7)).await;
    let sealed = km.encrypt(&key, b"renewed", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"renewed"
    );
}

// --- nodes, failover, timeouts -------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_a_dead_first_address() {
    let server = shared().await;
    let name = fresh_key(server, "failover");
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut config = config_for(server);
    config.addresses = vec![dead.clone(), server.address().to_owned()];
    let km = connect(&config).await;
    assert_eq!(km.preferred_node(), server.address());
    let key = id(&name);
    for _ in 0..10 {
        let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
        km.decrypt(&key, sealed.as_ref(), b"").await.unwrap();
    }
    let health = km.health().await;
    assert_eq!(health.len(), 2);
    assert_eq!(health[0].id, dead);
    assert_eq!(health[0].status, HealthStatus::Unavailable);
    assert_eq!(health[1].status, HealthStatus::Active);
    assert!(health[1].model.contains("active"), "{health:?}");
}

/// A fake node answering every request with `status` and `body`, like a
/// sealed node (503) or a standby that redirects instead of forwarding (307).
async fn fake_node(status: &'static str, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head and the body (Content-Length), then answer.
                loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if rest.len() >= length {
                            break;
                        }
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_sealed_and_redirecting_nodes() {
    let server = shared().await;
    let name = fresh_key(server, "sealed");
    let sealed = fake_node(
        "503 Service Unavailable",
        r#"{"errors":["Vault is sealed"]}"#,
    )
    .await;
    let redirecting = fake_node("307 Temporary Redirect", "").await;
    let mut config = config_for(server);
    config.addresses = vec![
        sealed.clone(),
        redirecting.clone(),
        server.address().to_owned(),
    ];
    let km = connect(&config).await;
    let key = id(&name);
    let sealed_ct = km.encrypt(&key, b"x", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&key, sealed_ct.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"x"
    );
    assert_eq!(km.preferred_node(), server.address());
    let health = km.health().await;
    let statuses: Vec<_> = health.iter().map(|n| n.status).collect();
    assert_eq!(
        statuses,
        [
            HealthStatus::Unavailable,
            HealthStatus::Unavailable,
            HealthStatus::Active
        ],
        "{health:?}"
    );
    assert!(health[0].model.contains("sealed"), "{health:?}");

    // Only sealed nodes: Unavailable, at once.
    let mut config = config_for(server);
    config.addresses = vec![sealed];
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(ref e) if e.status() == Some(503)),
        "{err:?}"
    );
}

/// A TCP relay to `upstream` that can be frozen (it then holds everything it
/// receives, like a hung node) or closed (connections drop, new ones are
/// refused, like a dead node).
struct Relay {
    address: String,
    frozen: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
    accept: tokio::task::JoinHandle<()>,
}

async fn relay(upstream: &str) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_owned();
    let frozen = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicBool::new(false));
    let (f, c) = (frozen.clone(), closed.clone());
    let accept = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(&upstream).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, f.clone(), c.clone()));
            tokio::spawn(pump(sr, cw, f.clone(), c.clone()));
        }
    });
    Relay {
        address,
        frozen,
        closed,
        accept,
    }
}

impl Relay {
    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.accept.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
) {
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        while frozen.load(Ordering::Relaxed) && !closed.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if closed.load(Ordering::Relaxed) || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_node_is_a_timeout_never_a_hang() {
    let server = shared().await;
    let name = fresh_key(server, "hung");
    let relay = relay(server.address()).await;
    let mut config = config_for(server);
    config.addresses = vec![relay.address.clone()];
    config.request_timeout = Duration::from_millis(150);
    let km = connect(&config).await;
    let key = id(&name);
    let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
    relay.frozen.store(true, Ordering::Relaxed);
    for coalesce_waiters in [1, 8] {
        let started = Instant::now();
        let calls = (0..coalesce_waiters).map(|_| km.encrypt(&key, b"x", b""));
        for result in futures::future::join_all(calls).await {
            assert_eq!(kind(result), ErrorKind::Timeout);
        }
        assert!(
            started.elapsed() < Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }
    assert_eq!(
        kind(km.decrypt(&key, sealed.as_ref(), b"").await),
        ErrorKind::Timeout
    );
    // Health says so too, within its own budget.
    let health = km.health().await;
    assert_eq!(health[0].status, HealthStatus::Unavailable);

    // With a second, healthy node the hung one costs half the budget, no more.
    relay.frozen.store(false, Ordering::Relaxed);
    let mut two = config_for(server);
    two.addresses = vec![relay.address.clone(), server.address().to_owned()];
    two.request_timeout = Duration::from_millis(400);
    let km = connect(&two).await;
    assert_eq!(km.preferred_node(), relay.address);
    relay.frozen.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let sealed = km.encrypt(&key, b"y", b"").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_eq!(
        km.preferred_node(),
        server.address(),
        "the answering node is remembered"
    );
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"y"
    );
    relay.frozen.store(false, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_node_is_unavailable() {
    let server = shared().await;
    let name = fresh_key(server, "down");
    let relay = relay(server.address()).await;
    let mut config = config_for(server);
    config.addresses = vec![relay.address.clone()];
    let km = connect(&config).await;
    let key = id(&name);
    let sealed = km.encrypt(&key, b"x", b"").await.unwrap();
    relay.close();
    let started = Instant::now();
    assert_eq!(
        kind(km.encrypt(&key, b"x", b"").await),
        ErrorKind::Unavailable
    );
    assert_eq!(
        kind(km.decrypt(&key, sealed.as_ref(), b"").await),
        ErrorKind::Unavailable
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(km.health().await[0].status, HealthStatus::Unavailable);
    // Nothing listening at all: connecting fails with a connection error.
    config.addresses = vec![format!("http://127.0.0.1:{}", free_port())];
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(ref e) if e.is_connect()),
        "{err:?}"
    );
}

// --- coalescing -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_coalesced_into_batches() {
    let server = shared().await;
    let name = fresh_key(server, "coalesce");
    let km = Arc::new(connect(&config_for(server)).await);
    let key = id(&name);
    let tasks: Vec<_> = (0..64u8)
        .map(|i| {
            let km = km.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let pt = vec![i; usize::from(i)];
                let sealed = km.encrypt(&key, &pt, &[i]).await.unwrap();
                let opened = km.decrypt(&key, sealed.as_ref(), &[i]).await.unwrap();
                assert_eq!(opened.as_bytes(), &pt[..]);
                // A wrong AAD fails alone, not its batch.
                let bad = km.decrypt(&key, sealed.as_ref(), &[i, 0]).await;
                assert_eq!(kind(bad), ErrorKind::InvalidCiphertext);
            })
        })
        .collect();
    for task in futures::future::join_all(tasks).await {
        task.unwrap();
    }
    let stats = km.coalescing_stats();
    assert!(stats.batch_calls > 0, "{stats:?}");
    assert_eq!(
        stats.single_calls + stats.batched_items,
        3 * 64,
        "{stats:?}"
    );
}

// --- TLS and namespaces ---------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca() {
    let server = tokio::task::spawn_blocking(DevServer::start_tls)
        .await
        .unwrap();
    server.create_key("tls-key");
    let mut config = VaultConfig::new(
        [server.address()],
        AuthConfig::Token {
            token: SecretSource::Env(TOKEN_VAR.to_owned()),
        },
    );
    config.tls.ca_file = server.ca_file().map(Into::into);
    config.request_timeout = Duration::from_secs(1);
    let km = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap();
    let key = id("tls-key");
    let sealed = km.encrypt(&key, b"over tls", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"over tls"
    );
    assert!(
        km.health()
            .await
            .iter()
            .all(|n| n.status == HealthStatus::Active)
    );
    // The server certificate itself is no CA: the handshake fails.
    config.tls.ca_file = Some(server.dir().join("vault-cert.pem"));
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Auth(ref e) if e.is_transport()),
        "{err:?}"
    );
    config.tls.ca_file = Some(server.dir().join("missing.pem"));
    let err = VaultKeyManager::connect(&config, env(server.root_token()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_header_selects_the_namespace() {
    let server = shared().await;
    let ns = format!("ns{}", unique().replace('-', ""));
    server.expect_ok("POST", &format!("sys/namespaces/{ns}"), None);
    server.expect_ok(
        "POST",
        &format!("{ns}/sys/mounts/transit"),
        Some(r#"{"type":"transit"}"#),
    );
    server.expect_ok(
        "POST",
        &format!("{ns}/transit/config/keys"),
        Some(r#"{"disable_upsert":true}"#),
    );
    server.expect_ok(
        "POST",
        &format!("{ns}/transit/keys/in-ns"),
        Some(r#"{"type":"aes256-gcm96"}"#),
    );
    let mut config = config_for(server);
    config.namespace = Some(ns);
    let km = connect(&config).await;
    let key = id("in-ns");
    let sealed = km.encrypt(&key, b"namespaced", b"").await.unwrap();
    assert_eq!(
        km.decrypt(&key, sealed.as_ref(), b"")
            .await
            .unwrap()
            .as_bytes(),
        b"namespaced"
    );
    // Outside the namespace there is no such key.
    let root = connect(&config_for(server)).await;
    assert_eq!(kind(root.key_metadata(&key).await), ErrorKind::KeyNotFound);
}

// --- operator operations ----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_operations() {
    let server = shared().await;
    let admin = VaultAdmin::connect(&config_for(server), env(server.root_token()))
        .await
        .unwrap();
    let key = id(&format!("op-{}", unique()));
    let created = admin.create_key(&key).await.unwrap();
    assert_eq!(created.name, key.as_str());
    assert_eq!(
        (created.latest_version, created.versions.clone()),
        (1, vec![1])
    );
    assert!(created.is_aes256_gcm());
    assert!(!created.exportable && !created.deletion_allowed && !created.plaintext_backup_allowed);
    assert!(matches!(
        admin.create_key(&key).await,
        Err(Error::KeyExists { .. })
    ));
    let rotated = admin.rotate_key(&key).await.unwrap();
    assert_eq!(
        (rotated.latest_version, rotated.versions.clone()),
        (2, vec![1, 2])
    );
    assert_eq!(admin.describe_key(&key).await.unwrap(), rotated);
    let listed = admin.list_keys().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|k| k.external_id.as_ref() == Some(&key) && !k.canary)
    );
    assert!(matches!(
        admin.rotate_key(&id(&format!("none-{}", unique()))).await,
        Err(Error::KeyNotFound { .. })
    ));
    assert!(matches!(
        admin.transit_name(&id("xks-health-canary")),
        Err(Error::ReservedKey { .. })
    ));
    let canary = admin.create_canary().await.unwrap();
    assert_eq!(canary.name, "xks-health-canary");
}
