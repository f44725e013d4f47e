//! The software AES-256-GCM key manager of the XKS toolkit, and the proxy's
//! embedded default backend.
//!
//! Keys live in one **key store file**, encrypted at rest under a passphrase or a
//! key file. This crate gives:
//!
//! - [`KeyStore`]: the operator operations behind the proxy's key subcommands:
//!   create a key store, then create, rotate, enable, disable and list keys. Each
//!   change is a locked, atomic, durable rewrite of the file.
//! - [`SoftKeyManager`]: the [`KeyManager`](xks_keymanager::KeyManager) over the
//!   keys of a key store, held in memory and swapped atomically by
//!   [`SoftKeyManager::reload`] (the proxy calls it on `SIGHUP`), or over an
//!   ephemeral in-memory key set ([`SoftKeyManager::ephemeral`]) for demos.
//! - [`Unlock`]: the passphrase or key file, read from `XKS_SOFT_PASSPHRASE` or
//!   `XKS_SOFT_KEY_FILE` by [`Unlock::from_env`].
//!
//! ```
//! use xks_protocol::KeyId;
//! use xks_soft::{KdfParams, KeyState, KeyStore, Passphrase, SoftKeyManager, Unlock, Usage};
//!
//! # let dir = tempfile::tempdir()?;
//! let path = dir.path().join("keys.json");
//! let unlock = Unlock::Passphrase(Passphrase::new("correct horse battery staple")?);
//! // Real key stores use `KdfParams::RECOMMENDED`; this example must be fast.
//! let mut store = KeyStore::create(&path, unlock.clone(), KdfParams::INSECURE_FAST_FOR_TESTS)?;
//! let id = KeyId::new("payments-2024")?;
//! store.create_key(&id, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)?;
//!
//! let km = SoftKeyManager::open(&path, unlock)?;
//! assert_eq!(km.key_count(), 1);
//!
//! let info = store.rotate_key(&id)?;
//! assert_eq!(info.versions, 2);
//! km.reload()?; // new encryptions now use version 2
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Keys
//!
//! Every key is an AES-256 key with an XKS key id, a [`Usage`] (encrypt, decrypt,
//! both or neither), a [`KeyState`] (enabled or disabled), a creation time, and
//! one or more **versions** of key material, counted from 1. Rotation adds a
//! version; new encryptions use the newest, and each ciphertext names its version
//! in its `ciphertextMetadata` (bound into the GCM tag by
//! [`xks_keymanager::gcm_aad`]), so rotation never breaks old ciphertexts. Versions
//! are never removed.
//!
//! Every key store also holds the **health check canary** key,
//! [`HEALTH_CANARY_KEY_ID`], created with the key store. GetHealthStatus encrypts
//! and decrypts with it, never with a customer key (fact sheet §6). It is invisible
//! to KMS (GetKeyMetadata, Encrypt and Decrypt answer `KeyNotFound` for it) and
//! operators cannot create, rotate, disable or otherwise change it.
//!
//! # File format, version 1
//!
//! The file is one line of JSON (UTF-8) with two members, in this order:
//!
//! ```text
//! {"header":{"format":"xks-soft-key-store","version":1,"secret":"passphrase",
//!            "kdf":{"algorithm":"argon2id","argon2-version":19,"memory-kib":65536,
//!                   "iterations":3,"parallelism":1,"salt":"<Base64, 16 bytes>"},
//!            "cipher":{"algorithm":"aes-256-gcm","nonce":"<Base64, 12 bytes>"}},
//!  "ciphertext":"<Base64 of the encrypted key set followed by its 16-byte tag>"}
//! ```
//!
//! - `header.format` is always `xks-soft-key-store` and `header.version` is the
//!   format version. A reader checks both before anything else and refuses other
//!   versions ([`Error::UnsupportedVersion`]).
//! - `header.secret` is `passphrase` or `key-file`: which kind of [`Unlock`] the
//!   key store needs.
//! - `header.kdf`: Argon2id (version 0x13 = 19) with memory in KiB, iterations
//!   and parallelism ([`KdfParams`]), and the salt (16 random bytes, standard
//!   Base64). It derives a 32-byte key from the passphrase's UTF-8 bytes, or from
//!   the key file's bytes without trailing ASCII whitespace.
//! - `header.cipher`: AES-256-GCM under the derived key, with a 12-byte nonce
//!   drawn at random on every write.
//! - The GCM additional data is **the exact bytes of the `header` value as they
//!   appear in the file**, so any change to the header, including the KDF
//!   parameters, the salt or the version, makes decryption fail.
//! - `ciphertext` is the standard Base64 of the GCM ciphertext with the tag
//!   appended. The plaintext it encrypts is the **key set**, in JSON:
//!
//! ```text
//! {"keys":[{"id":"xks-health-canary","usage":["ENCRYPT","DECRYPT"],"state":"ENABLED",
//!           "created":1764460800,
//!           "versions":[{"version":1,"created":1764460800,"material":"<64 hex digits>"}]}]}
//! ```
//!
//! Keys are sorted by `id` (unique, valid XKS key ids); `usage` lists
//! `ENCRYPT`/`DECRYPT`; `state` is `ENABLED` or `DISABLED`; times are seconds since
//! the Unix epoch; versions are numbered 1, 2, ... in order; `material` is the
//! AES-256 key in lowercase hexadecimal. Unknown members are refused everywhere.
//! Do not edit the file by hand: any change, even to white space in the header, is
//! reported as [`Error::WrongSecretOrTampered`] or [`Error::Malformed`].
//!
//! Beside the key store, `<file>.lock` is the lock file that serialises operator
//! changes, and `.<file>.tmp-*` names the temporary file of a write in progress
//! (a crash may leave one behind; it is never read and can be deleted).
//!
//! # Threat model
//!
//! At-rest encryption protects the key material **in copies of the file**: backups,
//! snapshots, a stolen or decommissioned disk, a file readable by the wrong
//! account. Without the passphrase or key file, such a copy reveals nothing about
//! the keys: their ids, usages, states, versions, times and material are all in the
//! encrypted key set, and only the Argon2id parameters and, through the file's
//! size, roughly how many keys and versions there are, show. Argon2id makes each
//! guess at a passphrase cost [`KdfParams::RECOMMENDED`] (64 MiB, 3 passes), so a
//! long random passphrase resists offline guessing; a short one does not, and
//! [`KdfParams::INSECURE_FAST_FOR_TESTS`] gives no such resistance at all. The
//! file is also authenticated: a modified file never loads, so it cannot inject
//! keys or change a key's usage or state.
//!
//! It does **not** protect against:
//!
//! - Anyone who can read the proxy's memory or act as its user (root, a debugger,
//!   the proxy user itself): the keys are in memory in the clear while it runs,
//!   and a passphrase given in `XKS_SOFT_PASSPHRASE` is readable in the process
//!   environment. Key material is wiped from memory when dropped, on a best-effort
//!   basis (copies made by the compiler or the operating system, such as swap, are
//!   out of reach).
//! - A key file kept beside the key store, or in the same backups: whoever has
//!   both has the keys.
//! - **Rollback**: whoever can write the file can put back an older, authentic
//!   copy, undoing rotations, re-enabling a disabled key or bringing back an old
//!   usage. Protect the file's directory against writes by anyone but the proxy's
//!   operators.
//! - Deletion or corruption of the file (loss of every key): keep backups.
//! - Anyone holding the passphrase or key file: software keys are exportable by
//!   design. Use an HSM backend when keys must never leave hardware.
//!
//! Every new file, and every rewrite, is created with mode 0600 by the user
//! running the command; run operator commands as the proxy's user so it can still
//! read the file.
//!
//! # Crate features
//!
//! This crate has no optional features.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod format;
mod fsio;
mod kdf;
mod keyset;
mod manager;
mod secret;
mod store;

pub use error::{Error, InternalError, KdfParamsError, MalformedError, RandomError, UnlockError};
pub use kdf::KdfParams;
pub use keyset::{KeyInfo, KeyState, Usage};
pub use manager::SoftKeyManager;
pub use secret::{Passphrase, SecretKind, Unlock};
pub use store::KeyStore;

/// The key id of the health check canary key that every key store holds.
///
/// GetHealthStatus encrypts and decrypts with it; KMS never sees it, and
/// operators cannot create, rotate, disable or otherwise change it.
pub const HEALTH_CANARY_KEY_ID: &str = "xks-health-canary";
