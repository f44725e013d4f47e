//! The PKCS#11 key manager of the XKS toolkit: AES-256-GCM on any HSM with a
//! PKCS#11 module, through [`cryptoki`](https://docs.rs/cryptoki).
//!
//! - [`Pkcs11KeyManager`]: the [`KeyManager`](xks_keymanager::KeyManager) over
//!   one or more tokens, built from a [`Pkcs11Config`] by
//!   [`Pkcs11KeyManager::open`].
//! - [`Pkcs11Admin`]: the operator commands behind the proxy's key
//!   subcommands: create a key or a new version of it, show a key's attributes,
//!   list keys, disable and enable keys.
//! - [`Pkcs11Config`]: the `[backend]` section with `type = "pkcs11"`.
//!
//! ```no_run
//! use xks_pkcs11::{Pkcs11Config, Pkcs11KeyManager};
//!
//! let config: Pkcs11Config = toml::from_str(r#"
//!     module = "/usr/lib/softhsm/libsofthsm2.so"
//!     pin_env = "XKS_PKCS11_PIN"
//!     [[slots]]
//!     token_label = "xks"
//! "#)?;
//! config.validate()?;
//! let km = Pkcs11KeyManager::open(&config, |name| std::env::var(name).ok())?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Keys, versions and state
//!
//! An XKS external key id maps to the **label** (`CKA_LABEL`) of an AES-256
//! secret key on the token: the `label` of its `[[backend.keys]]` entry, or by
//! default the key id itself (`default_key_mapping = true`). That object is
//! **version 1**; version `n` ≥ 2 is the object labelled `<label>.v<n>`. New
//! encryptions use the highest version present, and each ciphertext names its
//! version in `ciphertextMetadata`, bound into the GCM tag through
//! [`xks_keymanager::gcm_aad`], so decryption uses the version that encrypted.
//! [`Pkcs11Admin::create_version`] adds the next version.
//!
//! A key is **disabled** (reported `DISABLED`, refused for encrypt and decrypt
//! with [`ErrorKind::KeyDisabled`](xks_keymanager::ErrorKind::KeyDisabled))
//! when any of these holds:
//!
//! - its `[[backend.keys]]` entry says `disabled = true`;
//! - a **disabling marker** exists on the token: a data object (`CKO_DATA`)
//!   labelled `<label>.disabled`. [`Pkcs11Admin::set_disabled`] creates and
//!   destroys it. A marker rather than an attribute of the key, because keys on
//!   real HSMs are often not modifiable, and because SoftHSM 2.6 cannot read back
//!   the `CKA_END_DATE` of a private key once it was set;
//! - the `CKA_END_DATE` of any version, when set (by vendor tools) and readable,
//!   is before today (UTC).
//!
//! Metadata comes from the newest version's attributes: `CKA_KEY_TYPE` and
//! `CKA_VALUE_LEN` give the key spec (`AES_256`, or e.g. `AES_128`), and
//! `CKA_ENCRYPT`, `CKA_DECRYPT`, `CKA_SIGN`, `CKA_VERIFY`, `CKA_WRAP`,
//! `CKA_UNWRAP` and `CKA_DERIVE` the key usage. A key any of whose versions is
//! **extractable or not sensitive** is refused (an error on every call, and at
//! startup for listed keys) unless `allow_extractable_keys = true`: its value
//! could leave the HSM. The health check key (`canary_label`) is never served.
//!
//! # Threading model
//!
//! PKCS#11 calls block, so none runs on an async worker thread:
//!
//! - Each module is loaded and initialized once per process, with
//!   `CKF_OS_LOCKING_OK` (without it SoftHSM crashes under threads), and shared.
//! - Each configured slot has `sessions_per_slot` dedicated **worker threads**,
//!   each owning one session, fed by a bounded queue of `queue_depth` jobs. A
//!   call queues its job without waiting and awaits the answer on a oneshot
//!   channel.
//! - A **full queue** fails the call at once with
//!   [`ErrorKind::Throttled`](xks_keymanager::ErrorKind::Throttled) (after
//!   trying the other slots). A call that gets no answer within
//!   `call_timeout` (queueing and failover included) fails with
//!   [`ErrorKind::Timeout`](xks_keymanager::ErrorKind::Timeout); a stuck HSM
//!   therefore costs callers at most `call_timeout`, then fills the queue, after
//!   which calls fail immediately. A job whose caller gave up is skipped.
//! - The application **logs in once**: a new session that finds the token
//!   public logs in (`CKR_USER_ALREADY_LOGGED_IN` counts as success), and the
//!   login lasts while any of our sessions is open, which is always. (PKCS#11
//!   logins belong to the process and token: a token this process is logged in
//!   to already, through another key manager, does not check the PIN again.)
//! - **Key handles** and attributes are cached per slot, so a request makes no
//!   `C_FindObjects`. They are read again after `key_refresh_interval`, after
//!   [`Pkcs11KeyManager::refresh_keys`], when a decryption names an unknown
//!   version (at most once a second per key), and on
//!   `CKR_OBJECT_HANDLE_INVALID` / `CKR_KEY_HANDLE_INVALID`. Keys are looked up
//!   among token objects only (`CKA_TOKEN` true).
//! - With **`session_key_copies`** (unset: on for SoftHSM2, whose `C_GetInfo`
//!   manufacturer is `SoftHSM`, off for other modules) each worker copies a key
//!   version into its own session (`C_CopyObject`, `CKA_TOKEN` false) on first
//!   use and encrypts and decrypts with the copy, which keeps the
//!   original's attributes (checked: a copy that differs is not used) and dies
//!   with the session. This is for modules that read a token object back from
//!   storage on every use: SoftHSM2's file store opens, locks and reads two
//!   files in every `C_EncryptInit` and `C_DecryptInit`, and with copies its CPU
//!   per encrypt-and-verify falls from about 45 to 15 µs. A copy does not follow
//!   its original, so before a copy is used the token object is read again
//!   (label and attributes) if the last check is more than a second old: a key
//!   deleted or changed on the token stops being used within about a second,
//!   where the token object itself stops at once. Modules that refuse the copy
//!   are used through the token object (one warning per worker).
//!
//! # Recovery
//!
//! A worker whose call fails recovers and retries the call once:
//!
//! | Return value | Recovery |
//! |---|---|
//! | `CKR_SESSION_HANDLE_INVALID`, `CKR_SESSION_CLOSED`, `CKR_DEVICE_REMOVED`, `CKR_DEVICE_ERROR`, `CKR_TOKEN_NOT_PRESENT`, `CKR_TOKEN_NOT_RECOGNIZED`, `CKR_SLOT_ID_INVALID` | forget the session (never close it: its handle number may belong to a new session), find the token's slot again, open a session, log in if needed |
//! | `CKR_CRYPTOKI_NOT_INITIALIZED` | initialize the module again (once, whichever worker sees it first), then as above; sessions, slots and handles of the old generation are forgotten |
//! | `CKR_KEY_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID`, `CKR_USER_NOT_LOGGED_IN` | log in again if the session is public, look the key up again |
//! | `CKR_OPERATION_ACTIVE` | close the session, open another |
//!
//! A failed tag check is **not** a failure of the session: it costs one
//! `C_DecryptInit` and `C_Decrypt` like a good decryption, and never closes a
//! session or logs in again.
//!
//! ## Module restarts
//!
//! When **device errors outlast a new session** — the retry after the
//! recovery above fails again with `CKR_DEVICE_ERROR`, `CKR_DEVICE_REMOVED`,
//! `CKR_TOKEN_NOT_PRESENT` or `CKR_TOKEN_NOT_RECOGNIZED`, or opening the new
//! session does, or the token found before is in no slot any more — the
//! module's own state (its connection to the HSM) is taken to be broken, and
//! the worker **restarts the module**: `C_Finalize`, then `C_Initialize`. Then
//! it opens a session and tries the call a last time.
//!
//! - **One restarter.** A module is shared by every slot (and key manager)
//!   that names it; one thread restarts it, and the others find it restarted
//!   (their sessions, slot ids and key handles belong to the old generation and
//!   are forgotten, exactly as after a re-initialization).
//! - **Quiesced.** PKCS#11 leaves `C_Finalize` while other threads are in
//!   calls undefined (SoftHSM crashes). Every worker makes its calls through
//!   the module's call gate; a restart (and a re-initialization) closes the
//!   gate, waits until no call of any slot on the module is in progress (at
//!   most 5 s; past that it gives up until its next chance), and opens it
//!   again after `C_Initialize`. A job that finds the gate closed waits for
//!   the reset, at most `call_timeout` (its caller gives up then), and fails as
//!   `Unavailable` after that.
//! - **Backoff.** The first restart of a series runs at once; each further one
//!   waits `module_restart_backoff` (default 1 s), doubled per restart, at most
//!   `module_restart_backoff_max` (default 60 s), after the previous one. A call
//!   that succeeds on a worker that had met the trouble ends the series.
//!   Meanwhile calls fail fast as `Unavailable` (a dead HSM is not restarted in
//!   a loop). Re-initializations after `CKR_CRYPTOKI_NOT_INITIALIZED` count in
//!   the same series and wait the same way.
//! - **Failover.** A slot that restarts its module is passed over for
//!   `failover_backoff`, like a slot that failed, so traffic goes to the other
//!   slots during the restart and the outage. A module shared by several slots
//!   restarts for all of them: their sessions are opened again (and the login
//!   made again) on their next call.
//! - **Visible.** Each restart logs one warning with the module's path, the
//!   failed call that caused it, the attempt number in the series and what
//!   `C_Finalize` and `C_Initialize` returned (never the PIN), and counts in
//!   [`SlotStats::module_restarts`] of the slot whose worker restarted it.
//!
//! A transient device error that a new session cures never restarts the
//! module; nor does a token that was never found (a configuration error).
//! [`Pkcs11Admin`] sessions do not go through the call gate: run operator
//! commands in their own process (as the proxy's subcommands do), not beside a
//! key manager whose module may restart.
//!
//! The tests (`tests/device_loss.rs`) drive all of this on SoftHSM2 through a
//! fault-injecting module that wraps it (`crates/xks-pkcs11-faultwrap`).
//!
//! # Error mapping
//!
//! | Condition | [`ErrorKind`](xks_keymanager::ErrorKind) | XKS error |
//! |---|---|---|
//! | `C_Decrypt` returns `CKR_GENERAL_ERROR` (SoftHSM), `CKR_FUNCTION_FAILED` (nShield), `CKR_ENCRYPTED_DATA_INVALID` or `CKR_ENCRYPTED_DATA_LEN_RANGE`; an IV other than 12 or 16 bytes; a tag other than 16 bytes; a version the key does not have | `InvalidCiphertext` | `InvalidCiphertextException` |
//! | `CKR_KEY_FUNCTION_NOT_PERMITTED`, `CKR_KEY_TYPE_INCONSISTENT`; the key's `CKA_ENCRYPT`/`CKA_DECRYPT` forbids the operation; not AES-256; extractable or not sensitive | `KeyUsage` | `InvalidKeyUsageException` |
//! | key id not mapped, or no object with its label | `KeyNotFound` | `KeyNotFoundException` |
//! | disabled by configuration or `CKA_END_DATE` | `KeyDisabled` | `InvalidStateException` |
//! | session, device, token, module, login or PIN failure that the recovery above did not fix; a module restart in progress or in backoff | `Unavailable` | `InternalException` (after failing over) |
//! | every slot's queue full | `Throttled` | `ThrottlingException` |
//! | no answer within `call_timeout` | `Timeout` | `DependencyTimeoutException` |
//! | anything else | `Internal` | `InternalException` |
//!
//! The failed call's function and return value stay in the error's source chain
//! ([`Pkcs11CallError`]), for the proxy's logs.
//!
//! # AES-GCM and IV modes
//!
//! The proxy enforces the IV length (96 bits; 96 or 128 bits where the module
//! appends the IV, as the XKS API allows both) and a 128-bit tag itself
//! (SoftHSM checks neither) and splits the module's `ciphertext ‖ tag` output.
//! Decryption accepts 12- and 16-byte IVs. `iv_mode` says
//! who makes the IV ([`IvMode`]): the proxy from `C_GenerateRandom` (`caller`,
//! SoftHSM and most modules), the module writing it into a zeroed buffer
//! (`hsm_writes_back`, CloudHSM and nShield), or the module appending it after
//! the tag (`hsm_appends`, Luna).
//!
//! All three run against a module in this crate's tests: `caller` on
//! SoftHSM2 itself, and the other two (`tests/iv_modes.rs`) on SoftHSM2
//! behind the test-only module `crates/xks-pkcs11-faultwrap`, configured to
//! emulate the vendor's way: it writes the IV it draws into the zeroed buffer
//! and refuses any other IV (`hsm_writes_back`), or appends the IV it draws to
//! the output of an encryption given no IV and refuses a caller's
//! (`hsm_appends`, with 12-byte IVs and, as a Luna HSM in FIPS mode makes them,
//! 16-byte IVs). For each, the shared key manager battery runs through a key
//! manager configured with the mode, the IVs returned are checked to be the
//! ones the module made, ciphertexts decrypt in `caller` mode on plain SoftHSM
//! (same token and key) and the other way round, and a mode that does not fit
//! the module fails the startup check with an error that says why. This
//! emulates what the proxy expects of those modules; it is not a test on
//! CloudHSM, nShield or Luna hardware. Thales documents that a Luna HSM
//! appends a 16-byte IV unless `ulIvBits` asks for 96 bits (firmware 7.9.3 and
//! later); the proxy passes `ulIvBits` 0 and takes either length.
//!
//! # Failover and health
//!
//! Several slots, of one or several modules, may hold the same keys (an HSM
//! cluster's replicas). Traffic goes to the first slot, in configuration order,
//! that has not failed recently. A slot that answers `Unavailable` or times out
//! is passed over for `failover_backoff` and the call moves to the next one; when
//! every slot has failed, all are tried anyway.
//!
//! [`KeyManager::health`](xks_keymanager::KeyManager::health) reports one node
//! per slot, `pkcs11:<token label>` (or `pkcs11:serial:<serial>`), with the
//! token's manufacturer, model, firmware and serial as its model. Each is
//! checked deeply: an encryption and a decryption with the canary key through
//! the slot's own queue. `ACTIVE` when that works, `DEGRADED` when the slot's
//! queue is full but it serves, `UNAVAILABLE` otherwise. A success ends the
//! slot's backoff.
//!
//! # Testing on SoftHSM2
//!
//! The tests run on real SoftHSM2 tokens made by `testing::SoftHsm` (feature
//! `testing`); its documentation says how they find the module and configure it.
//!
//! # Crate features
//!
//! - `testing`: the `testing` module, the SoftHSM2 test support shared by this crate's
//!   tests and the proxy's end-to-end tests.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod admin;
mod config;
mod copies;
mod error;
mod gcm;
mod keys;
mod manager;
mod module;
mod pool;

#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use admin::{KeyObject, Pkcs11Admin, Usage};
pub use config::{IvMode, KeyConfig, Pkcs11Config, SlotConfig};
pub use error::{ConfigError, Error, PinError, Pkcs11CallError};
pub use manager::{Pkcs11KeyManager, SlotStats};
