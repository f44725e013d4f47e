use std::fs;
use std::path::PathBuf;

use xks_protocol::KeyId;

use super::*;
use crate::keyset::{KeyState, Usage};
use crate::{HEALTH_CANARY_KEY_ID, Passphrase};

const FAST: KdfParams = KdfParams::INSECURE_FAST_FOR_TESTS;

fn passphrase(p: &str) -> Unlock {
    Unlock::Passphrase(Passphrase::new(p).unwrap())
}

fn sample_set() -> KeySet {
    let mut set = KeySet::with_canary(1_764_460_800).unwrap();
    for (id, usage, state) in [
        ("alpha", Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        ("beta.2", Usage::DECRYPT_ONLY, KeyState::Disabled),
    ] {
        set.insert(&KeyId::new(id).unwrap(), usage, state, 1_764_460_900)
            .unwrap();
    }
    set.get_mut(&KeyId::new("alpha").unwrap())
        .unwrap()
        .rotate(1_764_461_000)
        .unwrap();
    set
}

/// The key set as JSON, key material included, to compare sets.
fn json(set: &KeySet) -> String {
    serde_json::to_string(set).unwrap()
}

fn sealed_sample(unlock: &Unlock) -> (KeySet, Vec<u8>) {
    let set = sample_set();
    let key = StoreKey::generate(unlock, FAST).unwrap();
    let file = seal(&key, &set).unwrap();
    (set, file)
}

fn open_fresh(bytes: &[u8], unlock: &Unlock) -> Result<KeySet, Error> {
    open(bytes, unlock, &mut None)
}

#[test]
fn round_trip() {
    let unlock = passphrase("round trip passphrase");
    let (set, file) = sealed_sample(&unlock);
    let back = open_fresh(&file, &unlock).unwrap();
    assert_eq!(json(&back), json(&set));
}

#[test]
fn the_file_is_one_line_of_json_with_the_documented_layout() {
    let unlock = passphrase("layout passphrase");
    let (_, file) = sealed_sample(&unlock);
    assert_eq!(file.iter().filter(|&&b| b == b'\n').count(), 1);
    assert_eq!(file.last(), Some(&b'\n'));
    let value: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let header = &value["header"];
    assert_eq!(header["format"], "xks-soft-key-store");
    assert_eq!(header["version"], 1);
    assert_eq!(header["secret"], "passphrase");
    assert_eq!(header["kdf"]["algorithm"], "argon2id");
    assert_eq!(header["kdf"]["argon2-version"], 19);
    assert_eq!(header["kdf"]["memory-kib"], 8);
    assert_eq!(header["kdf"]["iterations"], 1);
    assert_eq!(header["kdf"]["parallelism"], 1);
    let salt = BASE64
        .decode(header["kdf"]["salt"].as_str().unwrap())
        .unwrap();
    assert_eq!(salt.len(), 16);
    assert_eq!(header["cipher"]["algorithm"], "aes-256-gcm");
    let nonce = BASE64
        .decode(header["cipher"]["nonce"].as_str().unwrap())
        .unwrap();
    assert_eq!(nonce.len(), 12);
    let ciphertext = BASE64
        .decode(value["ciphertext"].as_str().unwrap())
        .unwrap();
    assert_eq!(ciphertext.len(), json(&sample_set()).len() + 16);
    // Nothing in the clear but the header.
    let text = String::from_utf8(file).unwrap();
    assert!(!text.contains("alpha") && !text.contains(HEALTH_CANARY_KEY_ID));
}

#[test]
fn every_write_draws_a_new_nonce() {
    let unlock = passphrase("nonce passphrase");
    let key = StoreKey::generate(&unlock, FAST).unwrap();
    let set = sample_set();
    let a = seal(&key, &set).unwrap();
    let b = seal(&key, &set).unwrap();
    assert_ne!(a, b);
}

#[test]
fn wrong_passphrase_is_reported_as_such() {
    let (_, file) = sealed_sample(&passphrase("the right passphrase"));
    for wrong in [
        "the wrong passphrase",
        "the right passphras",
        "The right passphrase",
    ] {
        let err = open_fresh(&file, &passphrase(wrong)).unwrap_err();
        assert!(matches!(err, Error::WrongSecretOrTampered), "{err:?}");
    }
}

#[test]
fn the_other_kind_of_secret_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = Unlock::create_key_file(dir.path().join("k")).unwrap();
    let (_, file) = sealed_sample(&key_file);
    let err = open_fresh(&file, &passphrase("a passphrase")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::UnlockMismatch {
                store: SecretKind::KeyFile,
                given: SecretKind::Passphrase
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the key store is unlocked with a key file, not a passphrase"
    );
    assert!(open_fresh(&file, &key_file).is_ok());
}

#[test]
fn key_file_unlock_round_trips_and_needs_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    let unlock = Unlock::create_key_file(&path).unwrap();
    let (set, file) = sealed_sample(&unlock);
    assert_eq!(json(&open_fresh(&file, &unlock).unwrap()), json(&set));

    // The final newline is not part of the secret: an editor may drop or add it.
    let contents = fs::read(&path).unwrap();
    fs::write(&path, &contents[..64]).unwrap();
    assert!(open_fresh(&file, &unlock).is_ok());
    fs::write(&path, [&contents[..64], b"\r\n\n"].concat()).unwrap();
    assert!(open_fresh(&file, &unlock).is_ok());

    let other = Unlock::create_key_file(dir.path().join("other.key")).unwrap();
    assert!(matches!(
        open_fresh(&file, &other),
        Err(Error::WrongSecretOrTampered)
    ));
}

#[test]
fn a_cached_key_skips_the_derivation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    let unlock = Unlock::create_key_file(&path).unwrap();
    let (_, file) = sealed_sample(&unlock);
    let mut cache = None;
    open(&file, &unlock, &mut cache).unwrap();
    assert!(cache.is_some());
    // Without the key file, only the cached key can open the store.
    fs::remove_file(&path).unwrap();
    open(&file, &unlock, &mut cache).unwrap();
    // A store with another salt needs a new derivation, which now fails.
    let other_salt = StoreKey {
        kind: SecretKind::KeyFile,
        params: FAST,
        salt: vec![9; 16],
        key: Zeroizing::new([0; KEY_LEN]),
    };
    let resealed = seal(&other_salt, &sample_set()).unwrap();
    let err = open(&resealed, &unlock, &mut cache).unwrap_err();
    assert!(matches!(err, Error::Read { .. }), "{err:?}");
}

#[test]
fn any_corrupted_byte_is_detected() {
    let unlock = passphrase("corruption passphrase");
    let (_, file) = sealed_sample(&unlock);
    let mut cache = None;
    for i in 0..file.len() {
        for flip in [0x01, 0x20, 0x80] {
            let mut bad = file.clone();
            bad[i] ^= flip;
            match open(&bad, &unlock, &mut cache) {
                Err(
                    Error::WrongSecretOrTampered
                    | Error::Malformed(_)
                    | Error::UnsupportedVersion { .. }
                    | Error::UnlockMismatch { .. },
                ) => {}
                Ok(_) => panic!("byte {i} ^ {flip:#04x} went unnoticed"),
                Err(other) => panic!("byte {i} ^ {flip:#04x}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn header_changes_that_stay_valid_json_fail_authentication() {
    let unlock = passphrase("header passphrase");
    let (_, file) = sealed_sample(&unlock);
    let text = String::from_utf8(file).unwrap();
    for (from, to) in [
        (r#""iterations":1"#, r#""iterations":2"#),
        (r#""memory-kib":8"#, r#""memory-kib":16"#),
        (r#"{"format""#, r#"{ "format""#),
        (r#""version":1"#, r#""version":1.0"#),
    ] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text);
        let err = open_fresh(bad.as_bytes(), &unlock).unwrap_err();
        assert!(
            matches!(err, Error::WrongSecretOrTampered | Error::Malformed(_)),
            "{to}: {err:?}"
        );
    }
    // The header is authenticated even when only its formatting changes.
    let spaced = text.replacen(r#"{"format""#, r#"{ "format""#, 1);
    assert!(matches!(
        open_fresh(spaced.as_bytes(), &unlock),
        Err(Error::WrongSecretOrTampered)
    ));
}

#[test]
fn truncated_files_are_malformed() {
    let unlock = passphrase("truncation passphrase");
    let (_, file) = sealed_sample(&unlock);
    let mut cache = None;
    for len in 0..file.len() - 1 {
        let err = open(&file[..len], &unlock, &mut cache).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "length {len}: {err:?}");
    }
    // Only the final newline can go.
    assert!(open(&file[..file.len() - 1], &unlock, &mut cache).is_ok());
}

#[test]
fn a_shortened_ciphertext_fails_authentication_or_is_malformed() {
    let unlock = passphrase("short ciphertext");
    let (_, file) = sealed_sample(&unlock);
    let value: serde_json::Value = serde_json::from_slice(&file).unwrap();
    let ciphertext = BASE64
        .decode(value["ciphertext"].as_str().unwrap())
        .unwrap();
    let text = String::from_utf8(file).unwrap();
    let original = BASE64.encode(&ciphertext);
    for keep in [0, 1, 15, 16, 17, ciphertext.len() - 1] {
        let bad = text.replace(&original, &BASE64.encode(&ciphertext[..keep]));
        let err = open_fresh(bad.as_bytes(), &unlock).unwrap_err();
        let expected = if keep < 16 {
            matches!(err, Error::Malformed(_))
        } else {
            matches!(err, Error::WrongSecretOrTampered)
        };
        assert!(expected, "{keep} bytes: {err:?}");
    }
}

#[test]
fn other_format_versions_are_unsupported() {
    let unlock = passphrase("version passphrase");
    let (_, file) = sealed_sample(&unlock);
    let text = String::from_utf8(file).unwrap();
    let v2 = text.replacen(r#""version":1"#, r#""version":2"#, 1);
    let err = open_fresh(v2.as_bytes(), &unlock).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 2 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the key store has format version 2, this build reads version 1"
    );
    // A future version may lay out everything else differently.
    let future = r#"{"header":{"format":"xks-soft-key-store","version":7,"kdf":"scrypt","nonce":3},"ciphertext":"AAAA"}"#;
    assert!(matches!(
        open_fresh(future.as_bytes(), &unlock),
        Err(Error::UnsupportedVersion { found: 7 })
    ));
}

#[test]
fn files_that_are_not_key_stores_are_malformed() {
    let unlock = passphrase("malformed passphrase");
    let cases: [&[u8]; 12] = [
        b"",
        b"\n",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        br#"{"keys":[]}"#,
        br#"{"header":{},"ciphertext":""}"#,
        br#"{"header":{"format":"something-else","version":1},"ciphertext":""}"#,
        br#"{"header":{"format":"xks-soft-key-store"},"ciphertext":""}"#,
        br#"{"header":{"format":"xks-soft-key-store","version":"1"},"ciphertext":""}"#,
        br#"{"header":{"format":"xks-soft-key-store","version":1},"ciphertext":""}"#,
        br#"{"header":[1],"ciphertext":""}"#,
    ];
    for bytes in cases {
        let err = open_fresh(bytes, &unlock).unwrap_err();
        assert!(
            matches!(err, Error::Malformed(_)),
            "{}: {err:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn malformed_header_fields_are_reported_before_any_derivation() {
    let unlock = passphrase("fields passphrase");
    let (_, file) = sealed_sample(&unlock);
    let text = String::from_utf8(file).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let salt = value["header"]["kdf"]["salt"].as_str().unwrap().to_owned();
    let nonce = value["header"]["cipher"]["nonce"]
        .as_str()
        .unwrap()
        .to_owned();
    for (from, to) in [
        (r#""argon2-version":19"#, r#""argon2-version":16"#),
        (r#""algorithm":"argon2id""#, r#""algorithm":"argon2i""#),
        (
            r#""algorithm":"aes-256-gcm""#,
            r#""algorithm":"aes-128-gcm""#,
        ),
        (r#""iterations":1"#, r#""iterations":0"#),
        (r#""parallelism":1"#, r#""parallelism":99"#),
        (r#""memory-kib":8"#, r#""memory-kib":4294967295"#),
        (r#""secret":"passphrase""#, r#""secret":"pin""#),
        (salt.as_str(), "AAAA"),
        (salt.as_str(), "not base64!"),
        (nonce.as_str(), "AAAAAAAAAAAAAAAAAAAAAAAA"),
        (r#""cipher":{"#, r#""extra":true,"cipher":{"#),
    ] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{from}");
        let err = open_fresh(bad.as_bytes(), &unlock).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{to}: {err:?}");
    }
}

#[test]
fn errors_never_panic_on_random_input() {
    let unlock = passphrase("fuzz passphrase");
    let (_, file) = sealed_sample(&unlock);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut cache = None;
    for _ in 0..2000 {
        let mut bad = file.clone();
        for _ in 0..=(next() % 4) {
            let i = usize::try_from(next() % bad.len() as u64).unwrap();
            bad[i] = next().to_le_bytes()[0];
        }
        assert!(open(&bad, &unlock, &mut cache).is_err() || bad == file);
    }
}

/// A version 1 key store written by `tests/data/make_v1_fixture.py` from the
/// format description alone, with Python's `cryptography` (OpenSSL): this build
/// must keep reading it.
#[test]
fn reads_the_independently_written_v1_fixture() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/v1-passphrase.json");
    let bytes = fs::read(path).unwrap();
    let set = open_fresh(&bytes, &passphrase("xks-soft fixture passphrase")).unwrap();
    let ids: Vec<&str> = set.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["fixture-a", "fixture-b", HEALTH_CANARY_KEY_ID]);
    let a = set.get("fixture-a").unwrap();
    assert_eq!(a.usage, Usage::ENCRYPT_DECRYPT);
    assert_eq!(a.versions.len(), 2);
    let k1: Vec<u8> = (0x00..0x20).collect();
    let k2: Vec<u8> = (0x20..0x40).collect();
    assert_eq!(&a.versions[0].material.as_bytes()[..], &k1[..]);
    assert_eq!(&a.versions[1].material.as_bytes()[..], &k2[..]);
    let b = set.get("fixture-b").unwrap();
    assert_eq!(
        (b.usage, b.state),
        (Usage::ENCRYPT_ONLY, KeyState::Disabled)
    );
    assert!(matches!(
        open_fresh(&bytes, &passphrase("xks-soft fixture passphrasf")),
        Err(Error::WrongSecretOrTampered)
    ));
}

#[test]
fn errors_never_quote_the_file() {
    let unlock = passphrase("quote passphrase");
    // For example the key file, given by mistake as the key store.
    for bytes in [
        &br#""0123456789abcdef0123456789abcdef""#[..],
        br#"{"header":"0123456789abcdef"}"#,
    ] {
        let err = open_fresh(bytes, &unlock).unwrap_err();
        let mut chain = vec![err.to_string(), format!("{err:?}")];
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            chain.push(s.to_string());
            source = s.source();
        }
        assert!(
            chain.iter().all(|m| !m.contains("0123456789abcdef")),
            "{chain:?}"
        );
        assert!(chain.iter().any(|m| m.contains("line 1")), "{chain:?}");
    }
}
