//! The shared test battery every [`KeyManager`] backend runs.
//!
//! A backend's tests provide a [`Fixture`] (a key manager with keys in the roles of
//! [`KeyRole`]) and stamp out one test per check with [`key_manager_battery!`](crate::key_manager_battery):
//!
//! ```text
//! async fn fixture() -> MyFixture { /* start the backend, create the keys */ }
//! xks_keymanager::key_manager_battery!(fixture());
//! ```
//!
//! Each check is also a public `async fn(&dyn Fixture)`, so a backend can call a
//! single one with its own setup. The checks panic with a message on failure.
#![expect(
    clippy::expect_used,
    reason = "the battery is test code: a failed expectation is a failed test"
)]

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use xks_protocol::{HealthStatus, KeyId, KeySpec, KeyStatus, KeyUsage};

use crate::{ErrorKind, KeyManager, KeyManagerError, KeyVersion, Sealed, SealedRef};

/// The keys a fixture provides. Every key is an AES-256 key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyRole {
    /// Enabled, allows encrypt and decrypt.
    Primary,
    /// A second enabled encrypt+decrypt key, distinct material from `Primary`.
    Other,
    /// Enabled, allows encrypt only.
    EncryptOnly,
    /// Enabled, allows decrypt only.
    DecryptOnly,
    /// Enabled, allows neither encrypt nor decrypt.
    NoUsage,
    /// Disabled, otherwise allows encrypt and decrypt.
    Disabled,
    /// Enabled, encrypt and decrypt; the battery rotates it with [`Fixture::rotate`].
    Rotating,
}

/// What a backend's tests provide to the battery.
#[async_trait]
pub trait Fixture: Send + Sync {
    /// The key manager under test.
    fn key_manager(&self) -> Arc<dyn KeyManager>;

    /// The external key id of the key in `role`.
    fn key(&self, role: KeyRole) -> KeyId;

    /// Adds a new version to `key`, which becomes the version new encryptions use.
    async fn rotate(&self, key: &KeyId);

    /// The length of the IVs the backend makes: 12 bytes, unless it is set up
    /// to make 16-byte IVs (which the XKS API also allows).
    fn iv_len(&self) -> usize {
        12
    }
}

/// Sizes of plaintext every backend must round-trip, up to the spec's 4300 bytes.
pub const PLAINTEXT_SIZES: [usize; 9] = [0, 1, 15, 16, 17, 100, 1000, 4096, 4300];

/// Stamps out one `#[tokio::test]` per battery check for a backend.
///
/// `$fixture` is an expression evaluating to a future of a [`Fixture`]; it is
/// evaluated once per test. The calling crate needs `tokio` (with `macros` and
/// `rt-multi-thread`) among its dev-dependencies.
#[macro_export]
macro_rules! key_manager_battery {
    ($fixture:expr) => {
        $crate::key_manager_battery!(@tests $fixture;
            metadata_of_every_role,
            unknown_key_is_not_found,
            round_trips_at_all_sizes,
            ciphertext_length_equals_plaintext_length,
            ivs_never_repeat,
            tampered_ciphertext_is_rejected,
            tampered_tag_is_rejected,
            tampered_iv_is_rejected,
            tampered_aad_is_rejected,
            wrong_version_is_rejected,
            other_keys_ciphertext_is_rejected,
            malformed_sealed_input_is_rejected,
            usage_is_enforced,
            disabled_key_is_refused,
            rotation_keeps_old_ciphertexts,
            cdiv_and_verification_decrypt,
            concurrent_mixed_traffic,
            health_reports_active_nodes,
        );
    };
    (@tests $fixture:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let fixture = $fixture.await;
                $crate::testing::$check(&fixture).await;
            }
        )*
    };
}

const AAD: &[u8] = b"project=nile,department=marketing";

async fn seal(f: &dyn Fixture, role: KeyRole, pt: &[u8], aad: &[u8]) -> Sealed {
    f.key_manager()
        .encrypt(&f.key(role), pt, aad)
        .await
        .unwrap_or_else(|e| panic!("encrypt with {role:?} key failed: {e:?}"))
}

async fn open(
    f: &dyn Fixture,
    role: KeyRole,
    sealed: SealedRef<'_>,
    aad: &[u8],
) -> Result<Vec<u8>, KeyManagerError> {
    f.key_manager()
        .decrypt(&f.key(role), sealed, aad)
        .await
        .map(|pt| pt.as_bytes().to_vec())
}

fn expect_kind<T>(what: &str, result: Result<T, KeyManagerError>, kinds: &[ErrorKind]) {
    match result {
        Ok(_) => panic!("{what}: succeeded, expected one of {kinds:?}"),
        Err(e) => assert!(
            kinds.contains(&e.kind()),
            "{what}: got {e:?}, expected one of {kinds:?}"
        ),
    }
}

fn rejected(what: &str, result: Result<Vec<u8>, KeyManagerError>) {
    expect_kind(what, result, &[ErrorKind::InvalidCiphertext]);
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap_or(0)))
        .collect()
}

/// GetKeyMetadata reports AES_256, the usages and the status of every role.
pub async fn metadata_of_every_role(f: &dyn Fixture) {
    let km = f.key_manager();
    let cases = [
        (KeyRole::Primary, true, true, KeyStatus::Enabled),
        (KeyRole::Other, true, true, KeyStatus::Enabled),
        (KeyRole::EncryptOnly, true, false, KeyStatus::Enabled),
        (KeyRole::DecryptOnly, false, true, KeyStatus::Enabled),
        (KeyRole::NoUsage, false, false, KeyStatus::Enabled),
        (KeyRole::Disabled, true, true, KeyStatus::Disabled),
    ];
    for (role, encrypt, decrypt, status) in cases {
        let md = km
            .key_metadata(&f.key(role))
            .await
            .unwrap_or_else(|e| panic!("metadata of {role:?}: {e:?}"));
        assert_eq!(md.key_spec, KeySpec::Aes256, "{role:?}");
        assert_eq!(md.key_status, status, "{role:?}");
        assert!(md.key_usage.len() <= 10, "{role:?}: at most 10 usages");
        assert_eq!(
            md.key_usage.contains(&KeyUsage::Encrypt),
            encrypt,
            "{role:?}"
        );
        assert_eq!(
            md.key_usage.contains(&KeyUsage::Decrypt),
            decrypt,
            "{role:?}"
        );
    }
}

/// A well-formed but unknown key id is `KeyNotFound` for every operation.
pub async fn unknown_key_is_not_found(f: &dyn Fixture) {
    let km = f.key_manager();
    let missing = KeyId::new("battery-no-such-key-7f3a").expect("valid key id");
    expect_kind(
        "metadata",
        km.key_metadata(&missing).await,
        &[ErrorKind::KeyNotFound],
    );
    expect_kind(
        "encrypt",
        km.encrypt(&missing, b"x", b"").await,
        &[ErrorKind::KeyNotFound],
    );
    let sealed = seal(f, KeyRole::Primary, b"x", b"").await;
    expect_kind(
        "decrypt",
        km.decrypt(&missing, sealed.as_ref(), b"").await,
        &[ErrorKind::KeyNotFound],
    );
}

/// Every plaintext size up to 4300 bytes, with no AAD, some AAD and 8192 bytes of
/// AAD, decrypts to what was encrypted.
pub async fn round_trips_at_all_sizes(f: &dyn Fixture) {
    let big_aad = pattern(8192, 3);
    for size in PLAINTEXT_SIZES {
        for aad in [&b""[..], AAD, &big_aad] {
            let pt = pattern(size, 11);
            let sealed = seal(f, KeyRole::Primary, &pt, aad).await;
            assert_eq!(sealed.iv.len(), f.iv_len(), "the backend's IV length");
            let got = open(f, KeyRole::Primary, sealed.as_ref(), aad)
                .await
                .unwrap_or_else(|e| panic!("decrypt of {size} bytes: {e:?}"));
            assert_eq!(
                got,
                pt,
                "round trip of {size} bytes, {} AAD bytes",
                aad.len()
            );
        }
    }
}

/// GCM is a stream mode: the ciphertext (without tag) is as long as the plaintext.
pub async fn ciphertext_length_equals_plaintext_length(f: &dyn Fixture) {
    for size in PLAINTEXT_SIZES {
        let sealed = seal(f, KeyRole::Primary, &pattern(size, 5), b"").await;
        assert_eq!(sealed.ciphertext.len(), size);
    }
}

/// A thousand encryptions of the same plaintext never reuse an IV.
pub async fn ivs_never_repeat(f: &dyn Fixture) {
    let mut seen = HashSet::new();
    for _ in 0..1000 {
        let sealed = seal(f, KeyRole::Primary, b"same plaintext", b"").await;
        assert!(seen.insert(sealed.iv.clone()), "IV repeated");
    }
}

/// Any change to the ciphertext fails authentication.
pub async fn tampered_ciphertext_is_rejected(f: &dyn Fixture) {
    let pt = pattern(64, 1);
    let sealed = seal(f, KeyRole::Primary, &pt, AAD).await;
    let last = sealed.ciphertext.len() - 1;
    for (what, ct) in [
        ("first bit flipped", flip(&sealed.ciphertext, 0)),
        ("last bit flipped", flip(&sealed.ciphertext, last * 8 + 7)),
        ("truncated", sealed.ciphertext[..last].to_vec()),
        ("extended", [&sealed.ciphertext[..], &[0]].concat()),
        ("emptied", Vec::new()),
    ] {
        let bad = SealedRef {
            ciphertext: &ct,
            ..sealed.as_ref()
        };
        rejected(
            &format!("ciphertext {what}"),
            open(f, KeyRole::Primary, bad, AAD).await,
        );
    }
}

/// Any change to the tag fails authentication.
pub async fn tampered_tag_is_rejected(f: &dyn Fixture) {
    let sealed = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    for bit in [0, 64, 127] {
        let tag = flip(&sealed.tag, bit);
        let bad = SealedRef {
            tag: &tag,
            ..sealed.as_ref()
        };
        rejected(
            &format!("tag bit {bit}"),
            open(f, KeyRole::Primary, bad, AAD).await,
        );
    }
}

/// Any change to the IV fails authentication, and so does a 16-byte IV this
/// backend never produced (or it is refused as unsupported).
pub async fn tampered_iv_is_rejected(f: &dyn Fixture) {
    let sealed = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    for bit in [0, 95] {
        let iv = flip(&sealed.iv, bit);
        let bad = SealedRef {
            iv: &iv,
            ..sealed.as_ref()
        };
        rejected(
            &format!("IV bit {bit}"),
            open(f, KeyRole::Primary, bad, AAD).await,
        );
    }
    let iv16 = [&sealed.iv[..], &[0, 0, 0, 0]].concat();
    let bad = SealedRef {
        iv: &iv16,
        ..sealed.as_ref()
    };
    expect_kind(
        "16-byte IV",
        open(f, KeyRole::Primary, bad, AAD).await,
        &[ErrorKind::InvalidCiphertext, ErrorKind::Unsupported],
    );
}

/// The AAD must be exactly the one used at encryption: not missing, not added, not
/// different, not one bit off.
pub async fn tampered_aad_is_rejected(f: &dyn Fixture) {
    let with = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    let without = seal(f, KeyRole::Primary, b"Hello World!", b"").await;
    rejected(
        "AAD omitted",
        open(f, KeyRole::Primary, with.as_ref(), b"").await,
    );
    rejected(
        "AAD added",
        open(f, KeyRole::Primary, without.as_ref(), AAD).await,
    );
    rejected(
        "other AAD",
        open(
            f,
            KeyRole::Primary,
            with.as_ref(),
            b"project=blue,department=finance",
        )
        .await,
    );
    rejected(
        "AAD bit flipped",
        open(f, KeyRole::Primary, with.as_ref(), &flip(AAD, 9)).await,
    );
    // The confusion case of fact sheet §4: the metadata passed off as AAD.
    let meta = without.version.to_metadata();
    rejected(
        "metadata as AAD",
        open(f, KeyRole::Primary, without.as_ref(), &meta).await,
    );
}

/// A ciphertext decrypted with another version than the one that made it fails,
/// whether that version exists or not.
pub async fn wrong_version_is_rejected(f: &dyn Fixture) {
    let sealed = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    for version in [sealed.version.next(), KeyVersion::new(u32::MAX)]
        .into_iter()
        .flatten()
    {
        let bad = SealedRef {
            version,
            ..sealed.as_ref()
        };
        rejected(
            &format!("version {version}"),
            open(f, KeyRole::Primary, bad, AAD).await,
        );
    }
}

/// A ciphertext made by one key does not decrypt under another.
pub async fn other_keys_ciphertext_is_rejected(f: &dyn Fixture) {
    let sealed = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    rejected(
        "key A's ciphertext under key B",
        open(f, KeyRole::Other, sealed.as_ref(), AAD).await,
    );
}

/// All-zero and wrongly sized inputs are rejected without a panic.
pub async fn malformed_sealed_input_is_rejected(f: &dyn Fixture) {
    let zeros = [0u8; 16];
    let cases: [(&str, SealedRef<'_>); 4] = [
        (
            "all zero",
            SealedRef {
                version: KeyVersion::FIRST,
                iv: &zeros[..12],
                ciphertext: &zeros,
                tag: &zeros,
            },
        ),
        (
            "11-byte IV",
            SealedRef {
                version: KeyVersion::FIRST,
                iv: &zeros[..11],
                ciphertext: &zeros,
                tag: &zeros,
            },
        ),
        (
            "15-byte tag",
            SealedRef {
                version: KeyVersion::FIRST,
                iv: &zeros[..12],
                ciphertext: &zeros,
                tag: &zeros[..15],
            },
        ),
        (
            "empty IV",
            SealedRef {
                version: KeyVersion::FIRST,
                iv: &[],
                ciphertext: &zeros,
                tag: &zeros,
            },
        ),
    ];
    for (what, sealed) in cases {
        expect_kind(
            what,
            open(f, KeyRole::Primary, sealed, b"").await,
            &[ErrorKind::InvalidCiphertext, ErrorKind::Unsupported],
        );
    }
}

/// Encrypt-only, decrypt-only and no-usage keys allow exactly what they say.
pub async fn usage_is_enforced(f: &dyn Fixture) {
    let km = f.key_manager();
    // Encrypt-only: encrypts; its own ciphertext cannot be decrypted.
    let sealed = seal(f, KeyRole::EncryptOnly, b"Hello World!", AAD).await;
    expect_kind(
        "decrypt with encrypt-only key",
        open(f, KeyRole::EncryptOnly, sealed.as_ref(), AAD).await,
        &[ErrorKind::KeyUsage],
    );
    for role in [KeyRole::DecryptOnly, KeyRole::NoUsage] {
        expect_kind(
            &format!("encrypt with {role:?} key"),
            km.encrypt(&f.key(role), b"Hello World!", AAD).await,
            &[ErrorKind::KeyUsage],
        );
    }
    let any = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    expect_kind(
        "decrypt with no-usage key",
        open(f, KeyRole::NoUsage, any.as_ref(), AAD).await,
        &[ErrorKind::KeyUsage],
    );
    // Decrypt-only: usage passes, so a foreign ciphertext fails authentication.
    rejected(
        "foreign ciphertext under decrypt-only key",
        open(f, KeyRole::DecryptOnly, any.as_ref(), AAD).await,
    );
}

/// A disabled key refuses to encrypt and decrypt with `KeyDisabled`.
pub async fn disabled_key_is_refused(f: &dyn Fixture) {
    let km = f.key_manager();
    expect_kind(
        "encrypt with disabled key",
        km.encrypt(&f.key(KeyRole::Disabled), b"Hello World!", AAD)
            .await,
        &[ErrorKind::KeyDisabled],
    );
    let any = seal(f, KeyRole::Primary, b"Hello World!", AAD).await;
    expect_kind(
        "decrypt with disabled key",
        open(f, KeyRole::Disabled, any.as_ref(), AAD).await,
        &[ErrorKind::KeyDisabled],
    );
}

/// After a rotation new encryptions use a newer version, and ciphertexts of every
/// version still decrypt.
pub async fn rotation_keeps_old_ciphertexts(f: &dyn Fixture) {
    let key = f.key(KeyRole::Rotating);
    let before = seal(f, KeyRole::Rotating, b"before rotation", AAD).await;
    f.rotate(&key).await;
    let after = seal(f, KeyRole::Rotating, b"after rotation", AAD).await;
    assert!(
        after.version > before.version,
        "new encryptions use the new version ({} then {})",
        before.version,
        after.version
    );
    assert_eq!(
        open(f, KeyRole::Rotating, before.as_ref(), AAD)
            .await
            .expect("old version decrypts"),
        b"before rotation"
    );
    assert_eq!(
        open(f, KeyRole::Rotating, after.as_ref(), AAD)
            .await
            .expect("new version decrypts"),
        b"after rotation"
    );
    // The version is bound into the tag: the new ciphertext under the old version fails.
    let swapped = SealedRef {
        version: before.version,
        ..after.as_ref()
    };
    rejected(
        "new ciphertext under old version",
        open(f, KeyRole::Rotating, swapped, AAD).await,
    );
    let md = f
        .key_manager()
        .key_metadata(&key)
        .await
        .expect("metadata after rotation");
    assert_eq!(md.key_status, KeyStatus::Enabled);
}

/// The proxy's CDIV sequence: the value matches an independent computation, the
/// verification decrypt runs, and an encrypt-only key therefore fails with
/// `KeyUsage` when a CDIV is requested.
pub async fn cdiv_and_verification_decrypt(f: &dyn Fixture) {
    let km = f.key_manager();
    for aad in [&b""[..], AAD] {
        let out =
            crate::encrypt_for_xks(&*km, &f.key(KeyRole::Primary), b"Hello World!", aad, true)
                .await
                .expect("encrypt with CDIV");
        let cdiv = out.cdiv.expect("CDIV requested");
        let expected = xks_protocol::ciphertext_data_integrity_value(
            aad,
            &out.sealed.version.to_metadata(),
            &out.sealed.iv,
            &out.sealed.ciphertext,
            &out.sealed.tag,
        );
        assert_eq!(cdiv, expected);
        let plain = crate::decrypt_for_xks(
            &*km,
            &f.key(KeyRole::Primary),
            &out.sealed.version.to_metadata(),
            &out.sealed.iv,
            &out.sealed.ciphertext,
            &out.sealed.tag,
            aad,
        )
        .await
        .expect("decrypt of CDIV output");
        assert_eq!(plain.as_bytes(), b"Hello World!");
    }
    let no_cdiv = crate::encrypt_for_xks(&*km, &f.key(KeyRole::EncryptOnly), b"x", b"", false)
        .await
        .expect("encrypt-only key encrypts without CDIV");
    assert!(no_cdiv.cdiv.is_none());
    expect_kind(
        "encrypt-only key with CDIV",
        crate::encrypt_for_xks(&*km, &f.key(KeyRole::EncryptOnly), b"x", b"", true).await,
        &[ErrorKind::KeyUsage],
    );
}

/// 32 tasks encrypt and decrypt concurrently, with failed decryptions mixed in;
/// every good round trip returns its own plaintext and every bad one fails cleanly.
pub async fn concurrent_mixed_traffic(f: &dyn Fixture) {
    let mut tasks = Vec::new();
    for task in 0..32u8 {
        let km = f.key_manager();
        let key = f.key(if task % 2 == 0 {
            KeyRole::Primary
        } else {
            KeyRole::Other
        });
        tasks.push(tokio::spawn(async move {
            for round in 0..25u8 {
                let pt = pattern(usize::from(round) * 37 % 4301, task ^ round);
                let aad = [task, round];
                let sealed = km.encrypt(&key, &pt, &aad).await.expect("encrypt");
                if round % 3 == 0 {
                    let tag = flip(&sealed.tag, usize::from(round));
                    let bad = SealedRef {
                        tag: &tag,
                        ..sealed.as_ref()
                    };
                    let err = km.decrypt(&key, bad, &aad).await.expect_err("bad tag");
                    assert_eq!(err.kind(), ErrorKind::InvalidCiphertext);
                }
                let got = km
                    .decrypt(&key, sealed.as_ref(), &aad)
                    .await
                    .expect("decrypt");
                assert_eq!(got.as_bytes(), &pt[..], "task {task} round {round}");
            }
        }));
    }
    for result in futures::future::join_all(tasks).await {
        result.expect("task panicked");
    }
}

/// The deep health probe reports 1 to 10 uniquely named nodes, all active.
pub async fn health_reports_active_nodes(f: &dyn Fixture) {
    let nodes = f.key_manager().health().await;
    assert!((1..=10).contains(&nodes.len()), "{nodes:?}");
    let ids: HashSet<_> = nodes.iter().map(|n| &n.id).collect();
    assert_eq!(ids.len(), nodes.len(), "node ids are unique: {nodes:?}");
    for node in &nodes {
        assert_eq!(node.status, HealthStatus::Active, "{node:?}");
        assert!(!node.model.is_empty(), "{node:?}");
    }
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}
