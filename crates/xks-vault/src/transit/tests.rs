use super::*;

fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).unwrap()
}

fn messages(m: &str) -> Vec<String> {
    vec![m.to_owned()]
}

#[test]
fn transit_messages_map_to_kinds() {
    let cases = [
        (
            400,
            "cipher: message authentication failed",
            ErrorKind::InvalidCiphertext,
        ),
        (
            400,
            "invalid ciphertext: version is too new",
            ErrorKind::InvalidCiphertext,
        ),
        (
            400,
            "invalid ciphertext length",
            ErrorKind::InvalidCiphertext,
        ),
        (
            400,
            "ciphertext or signature version is disallowed by policy (too old)",
            ErrorKind::InvalidCiphertext,
        ),
        (400, "encryption key not found", ErrorKind::KeyNotFound),
        (
            400,
            "refusing to use soft-deleted key",
            ErrorKind::KeyDisabled,
        ),
        (
            400,
            "requested version for encryption is less than the minimum encryption key version",
            ErrorKind::Internal,
        ),
        (403, "permission denied", ErrorKind::Internal),
        (404, "", ErrorKind::KeyNotFound),
        (
            429,
            "request path \"transit/encrypt/k\": rate limit quota exceeded",
            ErrorKind::Throttled,
        ),
        (
            500,
            "local node not active but active cluster node not found",
            ErrorKind::Unavailable,
        ),
        (503, "Vault is sealed", ErrorKind::Unavailable),
        (412, "", ErrorKind::Unavailable),
    ];
    for (status, message, kind) in cases {
        assert_eq!(
            classify(status, &messages(message)),
            kind,
            "{status} {message}"
        );
    }
}

#[test]
fn stale_version_messages() {
    assert!(is_stale_version(&messages(
        "requested version for encryption is less than the minimum encryption key version"
    )));
    assert!(is_stale_version(&messages(
        "requested version for encryption is higher than the latest key version"
    )));
    assert!(!is_stale_version(&messages("encryption key not found")));
}

#[test]
fn blob_split_and_rebuild_are_inverse() {
    let nonce = [7u8; 12];
    let ciphertext = b"hello world".to_vec();
    let tag = [9u8; 16];
    let item = decrypt_item(v(3), &nonce, &ciphertext, &tag, b"aad");
    let json: serde_json::Value = serde_json::from_str(&item).unwrap();
    let blob = json["ciphertext"].as_str().unwrap();
    assert!(blob.starts_with("vault:v3:"));
    assert_eq!(json["associated_data"], STANDARD.encode(b"aad"));
    let split = split_blob(blob, v(3), ciphertext.len()).unwrap();
    assert_eq!(
        (split.nonce, split.ciphertext, split.tag),
        (nonce, ciphertext.clone(), tag)
    );
    // Another version, another length, a foreign prefix: refused.
    assert!(split_blob(blob, v(2), ciphertext.len()).is_err());
    assert!(split_blob(blob, v(3), ciphertext.len() + 1).is_err());
    assert!(split_blob(&blob.replace("vault:", "bao:"), v(3), ciphertext.len()).is_err());
    assert!(split_blob("vault:v3:!!", v(3), 0).is_err());
}

#[test]
fn empty_plaintext_blob() {
    let raw = [1u8; 28];
    let blob = format!("vault:v1:{}", STANDARD.encode(raw));
    let split = split_blob(&blob, v(1), 0).unwrap();
    assert_eq!(split.nonce, [1; 12]);
    assert!(split.ciphertext.is_empty());
    assert_eq!(split.tag, [1; 16]);
}

#[test]
fn encrypt_items_are_json_with_the_version() {
    let item = encrypt_item(b"\x00secret\"", b"\x01\x02", v(42));
    let json: serde_json::Value = serde_json::from_str(&item).unwrap();
    assert_eq!(json["plaintext"], STANDARD.encode(b"\x00secret\""));
    assert_eq!(json["associated_data"], STANDARD.encode(b"\x01\x02"));
    assert_eq!(json["key_version"], 42);
    let body = batch_body([item.as_str(), item.as_str()]);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["batch_input"].as_array().unwrap().len(), 2);
}

#[test]
fn descriptions_parse() {
    let text = r#"{"data":{"allow_plaintext_backup":false,"auto_rotate_period":0,"deletion_allowed":false,
        "derived":false,"exportable":false,"imported_key":false,"keys":{"2":1795998646},"latest_version":2,
        "min_available_version":0,"min_decryption_version":2,"min_encryption_version":0,"name":"k1",
        "soft_deleted":true,"supports_decryption":true,"supports_derivation":true,"supports_encryption":true,
        "supports_signing":false,"type":"aes256-gcm96"}}"#;
    let d = serde_json::from_str::<Envelope<KeyDescription>>(text)
        .unwrap()
        .data
        .unwrap();
    assert!(d.is_aes256_gcm());
    assert_eq!(d.latest(), Some(v(2)));
    assert_eq!(d.min_decryption_version, 2);
    assert!(d.soft_deleted);
}
