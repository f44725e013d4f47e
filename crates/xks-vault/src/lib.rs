//! The HashiCorp Vault / OpenBao Transit key manager of the XKS toolkit.
//!
//! Many teams keep their keys in Vault or OpenBao. This crate is a
//! [`KeyManager`](xks_keymanager::KeyManager) over the **Transit secrets
//! engine**: the AES-256 keys stay in Vault (`aes256-gcm96` Transit keys,
//! never exported), and the proxy asks Transit to encrypt and decrypt.
//!
//! - [`VaultKeyManager`]: the key manager. [`VaultKeyManager::connect`] checks
//!   the setup and starts token renewal; then it serves GetKeyMetadata,
//!   Encrypt, Decrypt and the deep health check.
//! - [`VaultConfig`]: the `[backend]` section with `type = "vault"`.
//! - [`VaultAdmin`]: the operator operations (create, rotate, describe and list
//!   Transit keys for XKS use; forbid upserts on the mount).
//!
//! ```no_run
//! use xks_protocol::KeyId;
//! use xks_keymanager::KeyManager;
//! use xks_vault::{VaultConfig, VaultKeyManager};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // The fields of the `[backend]` section (the proxy's backend enum reads `type`).
//! let config: VaultConfig = toml::from_str(r#"
//!     addresses = ["https://bao-1.example:8200", "https://bao-2.example:8200"]
//!     tls = { ca_file = "/etc/xks/bao-ca.pem" }
//!     auth = { method = "token", token = { env = "VAULT_TOKEN" } }
//! "#)?;
//! let km = VaultKeyManager::connect(&config, |name| std::env::var_os(name)).await?;
//! let key = KeyId::new("payments-2024")?;
//! let sealed = km.encrypt(&key, b"data key", b"aad").await?;
//! let plaintext = km.decrypt(&key, sealed.as_ref(), b"aad").await?;
//! assert_eq!(plaintext.as_bytes(), b"data key");
//! # Ok(())
//! # }
//! ```
//!
//! # Keys
//!
//! An external key id names a Transit key in the configured mount: the
//! `transit_key` of its `[[backend.keys]]` entry, else (when
//! `allow_unlisted_keys`, the default) the **default mapping**
//! [`default_transit_name`]: `key_name_prefix` followed by the id itself.
//! Transit refuses names that start or end with `-` or `.` (its pattern is
//! `\w(([\w-.]+)?\w)?`), which XKS ids allow; such ids, and ids starting with
//! [`ENCODED_NAME_PREFIX`], map to `xks-hex-` and the id's bytes in lowercase
//! hexadecimal (`-abc` → `xks-hex-2d616263`), so every id has exactly one
//! Transit name and no two ids share one.
//!
//! Each key reports `AES_256` with the usages its entry allows (by default
//! `ENCRYPT` and `DECRYPT`). Transit's `aes256-gcm96` keys always allow both;
//! `usage = "encrypt-only" | "decrypt-only" | "none"` and `disabled = true` are
//! a **proxy-side policy** on top, enforced by this crate. A key that Transit
//! has soft-deleted (OpenBao) is reported `DISABLED` too. A Transit key of
//! another type is reported with its type as key spec and no usage.
//!
//! The health check canary key (`canary_key`, default `xks-health-canary`) is
//! used by the deep health check only and is never reachable by KMS.
//!
//! # Rotation and the ciphertext layout
//!
//! A Transit key has versions 1, 2, …; rotation adds one. The backend keeps each
//! key's description (`GET <mount>/keys/<name>`: versions, minimum versions,
//! state) in a cache for `key_cache_ttl` (default 2 s) and encrypts with an
//! **explicit `key_version`**, the newest. That version travels in the XKS
//! `ciphertextMetadata` ([`KeyVersion::to_metadata`](xks_keymanager::KeyVersion::to_metadata))
//! and is bound into the tag: Transit's `associated_data` is
//! [`gcm_aad`](xks_keymanager::gcm_aad)`(aad, version)`, the spec's
//! length-prefixed AAD over the request AAD and the metadata.
//!
//! Transit chooses the nonce itself; it is returned to KMS as the
//! initialization vector. Transit's ciphertext and the XKS fields relate as:
//!
//! ```text
//! vault:v<version>:<Base64( nonce[12] || ciphertext[len(plaintext)] || tag[16] )>
//!         |                  |           |                             |
//!   ciphertextMetadata   initializationVector  ciphertext      authenticationTag
//! ```
//!
//! Decrypt rebuilds that string from the request: the version from the
//! metadata, then IV, ciphertext and tag (an IV other than 12 bytes or a tag
//! other than 16 is `InvalidCiphertext` without a call). So rotation never
//! breaks old ciphertexts: each names its version. Transit enforces
//! `min_decryption_version` (older ciphertexts fail as `InvalidCiphertext`, the
//! key's metadata is unaffected) and `min_encryption_version`; when Transit
//! refuses a version because the cached description is stale, the backend
//! describes the key again and retries once.
//!
//! # Protection against upserts
//!
//! Transit's encrypt **creates a missing key** unless the mount sets
//! `disable_upsert`. A typo in a key id would then mint a new key and make
//! ciphertexts nobody can trace. [`VaultKeyManager::connect`] therefore refuses
//! to start ([`Error::UpsertEnabled`]) unless the mount sets `disable_upsert`
//! ([`VaultAdmin::disable_upsert`]) or
//! the token has neither `create` nor `root` on the encrypt paths
//! (`sys/capabilities-self`). It also checks that every listed key exists and is
//! `aes256-gcm96`, and creates the canary key if it is missing and the token may.
//!
//! # Nodes and failover
//!
//! `addresses` lists the nodes of a cluster (or several load balancer
//! addresses). One hyper client with a keep-alive connection pool (TLS by
//! rustls with aws-lc-rs, HTTP/2 when the node offers it) serves all of them:
//!
//! - Requests go to the **preferred node**: the node that reports itself active
//!   on `/v1/sys/health` (checked at startup, every `node_check_interval`, and
//!   by each health check), or else the last node that answered.
//! - On a connection failure, a `3xx` (a standby that does not forward), `412`
//!   or a `5xx` (sealed, no active node, forwarding failed), the request goes to
//!   the next node, and a node that answers becomes the preferred one. A
//!   request that may have reached a node (a timeout, a connection lost
//!   mid-request) is repeated elsewhere only if that is harmless: encrypt,
//!   decrypt and reads are, creating and rotating keys are not.
//! - Everything happens within `request_timeout` (default 150 ms, well inside
//!   the 250 ms KMS allows), failover included. While other nodes are left, a
//!   node gets half of the time left, so a hung node cannot use the whole
//!   budget. Past the budget the call fails with `Timeout`: never a hang.
//!
//! OpenBao standbys serve Transit encrypt and decrypt themselves (they do not
//! write to storage), so a leader election is invisible to traffic that
//! reaches a standby; writes (rotation) are forwarded to the active node.
//!
//! # Errors
//!
//! Transit answers almost every failure with HTTP 400 and a free-text message.
//! Failures become [`KeyManagerError`](xks_keymanager::KeyManagerError)s
//! with this [`ErrorKind`](xks_keymanager::ErrorKind), and a [`VaultError`]
//! (method, path, node, status, Vault's messages) in their source chain:
//!
//! | Vault's answer | `ErrorKind` | XKS error |
//! |---|---|---|
//! | 400 `cipher: message authentication failed` | `InvalidCiphertext` | `InvalidCiphertextException` |
//! | 400 `invalid ciphertext…`, `…version is too new`, `…disallowed by policy (too old)` | `InvalidCiphertext` | `InvalidCiphertextException` |
//! | 400 `encryption key not found`; 404 on the key | `KeyNotFound` | `KeyNotFoundException` |
//! | 400 `refusing to use soft-deleted key` | `KeyDisabled` | `InvalidStateException` |
//! | 400 `requested version for encryption is less than the minimum…` / `…higher than the latest…` | describe again and retry once, then `Internal` | `InternalException` |
//! | 400, any other message | `Internal` | `InternalException` |
//! | 403 `permission denied` (after one new login, at most every 5 s) | `Internal`, logged with a hint on the token's policy | `InternalException` |
//! | 429 (rate limit quota) | `Throttled` | `ThrottlingException` |
//! | 412, 5xx (sealed, no active node) on every node | `Unavailable` | `InternalException` |
//! | no connection to any node | `Unavailable` | `InternalException` |
//! | `request_timeout` exceeded | `Timeout` | `DependencyTimeoutException` |
//!
//! Checks made before any call: an unknown or unlisted id, or the canary's, is
//! `KeyNotFound`; a disabled key (configuration or soft delete) is
//! `KeyDisabled`, checked before the usage; a usage the policy does not allow,
//! or a key of another type, is `KeyUsage`.
//!
//! # Health
//!
//! [`KeyManager::health`](xks_keymanager::KeyManager::health) reports one entry per configured node (its
//! address is the id), from its `/v1/sys/health`, plus a deep check: an encrypt
//! and decrypt with the canary key on the active node (or through failover when
//! no node says it is active).
//!
//! | Node | Deep check passes | Deep check times out | Deep check fails |
//! |---|---|---|---|
//! | active | `ACTIVE` | `DEGRADED` | `UNAVAILABLE` |
//! | standby, performance standby | `ACTIVE` | `DEGRADED` | `DEGRADED` |
//! | sealed, not initialized, DR secondary, unreachable | `UNAVAILABLE` | `UNAVAILABLE` | `UNAVAILABLE` |
//!
//! A healthy standby counts as `ACTIVE`: it serves traffic (itself, or by
//! forwarding) and takes over when the active node fails; reporting it
//! `DEGRADED` would tell KMS that a healthy cluster is at risk. When the
//! cluster fails the deep check, standbys are up but cannot serve: `DEGRADED`.
//!
//! # Coalescing
//!
//! With `coalesce = true` (the default), requests for the same key and
//! operation that arrive while a call for that key is in flight wait, and go
//! out together as one Transit `batch_input` call as soon as it returns. The
//! first request is sent at once, so a lone request pays nothing; under
//! concurrency many requests share one HTTP exchange, one token check and one
//! key lookup in Vault. Each request keeps its own deadline and its own
//! result: a bad ciphertext fails alone. See `docs/benchmarks-vault.md` for
//! the measurements behind the default.
//!
//! # Authentication
//!
//! - `method = "token"`: a token from an environment variable or a file. A
//!   renewable token with a TTL is renewed after two thirds of its TTL; a token
//!   file is read again when renewal fails, so a token rotated by an agent is
//!   picked up.
//! - `method = "approle"`: role id and secret id from the environment or files;
//!   the token is renewed, and the backend logs in again when it can no longer
//!   be renewed for long enough (at its maximum TTL). A secret id file is read
//!   at every login.
//!
//! A `403` answer also triggers one new login (at most every 5 s). Tokens and
//! secret ids are kept in memory wiped on drop, sent in a header marked
//! sensitive, and never appear in `Debug`, logs or errors; request bodies
//! carrying plaintext are wiped when sent (a best effort: hyper and the kernel
//! copy buffers this crate cannot reach).
//!
//! # The token's policy
//!
//! The proxy's token needs, for a mount at `transit`:
//!
//! ```hcl
//! path "transit/encrypt/*"   { capabilities = ["update"] }
//! path "transit/decrypt/*"   { capabilities = ["update"] }
//! path "transit/keys/*"      { capabilities = ["read"] }
//! path "transit/config/keys" { capabilities = ["read"] }
//! ```
//!
//! No `create` on the encrypt paths, so that a missing key can never be
//! created by an encrypt; the canary key must then exist (an operator creates
//! it with [`VaultAdmin::create_canary`]). `sys/capabilities-self`, used by the
//! upsert check when `transit/config/keys` is not readable, is in Vault's
//! `default` policy. The operator operations need `create` and `update` on
//! `transit/keys/*` (create, rotate), `list` on `transit/keys` and `update` on
//! `transit/config/keys` (disable upserts).
//!
//! # Crate features
//!
//! - `testing`: the module `xks_vault::testing`, which starts real OpenBao servers (a dev server
//!   and a Raft cluster on loopback) for this crate's tests and other crates'
//!   end-to-end tests.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod auth;
mod config;
mod core;
mod error;
mod http;
mod manager;
mod names;
mod secret;
mod transit;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use admin::{ListedKey, TransitKeyInfo, VaultAdmin};
pub use config::{
    AuthConfig, KeyConfig, KeyUsagePolicy, MAX_ADDRESSES, MAX_BATCH, SecretSource, TlsConfig,
    VaultConfig,
};
pub use error::{ConfigError, Error, SecretError, TlsError, VaultError};
pub use manager::{CoalescingStats, VaultKeyManager};
pub use names::{ENCODED_NAME_PREFIX, default_transit_name, external_id_of, is_transit_key_name};

/// Displays an error and its whole source chain on one line (`a: b: c`), for logs.
pub use xks_keymanager::DisplayChain;
