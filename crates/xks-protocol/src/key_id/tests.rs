use proptest::prelude::*;

use super::*;

#[test]
fn valid_ids() {
    let longest = "a-._".repeat(32);
    for id in [
        "a",
        "b42c7fbf-de61-441c-ae24-123456789012",
        "key_1.v2",
        "...",
        ".hidden",
        "UPPER-lower-0123456789",
        longest.as_str(),
    ] {
        let key_id = KeyId::new(id).unwrap();
        assert_eq!(key_id.as_str(), id);
        assert_eq!(key_id.to_string(), id);
        assert_eq!(key_id.as_ref(), id);
    }
}

#[test]
fn invalid_ids() {
    let too_long = "k".repeat(KeyId::MAX_LEN + 1);
    let cases = [
        ("", "the external key id is empty"),
        (
            too_long.as_str(),
            "the external key id is longer than 128 characters",
        ),
        (
            "key@1",
            "the external key id has a character outside A-Z a-z 0-9 - . _ at position 3",
        ),
        (
            "a/b",
            "the external key id has a character outside A-Z a-z 0-9 - . _ at position 1",
        ),
        (
            "a%20b",
            "the external key id has a character outside A-Z a-z 0-9 - . _ at position 1",
        ),
        (
            "a b",
            "the external key id has a character outside A-Z a-z 0-9 - . _ at position 1",
        ),
        (
            "clé",
            "the external key id has a character outside A-Z a-z 0-9 - . _ at position 2",
        ),
        (".", "the external key id must not be \".\" or \"..\""),
        ("..", "the external key id must not be \".\" or \"..\""),
    ];
    for (id, message) in cases {
        assert_eq!(KeyId::new(id).unwrap_err().to_string(), message, "{id:?}");
    }
}

#[test]
fn multi_byte_ids_over_the_limit_are_too_long() {
    // 65 two-byte characters: 130 bytes.
    let id = "é".repeat(65);
    assert_eq!(KeyId::new(&id).unwrap_err().0, KeyIdReason::TooLong);
}

#[test]
fn debug_shows_the_id() {
    assert_eq!(format!("{:?}", KeyId::new("k1").unwrap()), r#"KeyId("k1")"#);
}

#[test]
fn serde_round_trip_and_validation() {
    let id = KeyId::new("key-1").unwrap();
    assert_eq!(serde_json::to_string(&id).unwrap(), r#""key-1""#);
    assert_eq!(serde_json::from_str::<KeyId>(r#""key-1""#).unwrap(), id);
    for bad in [r#""""#, r#"".""#, r#""a b""#, "5", "null"] {
        assert!(serde_json::from_str::<KeyId>(bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn valid_ids_round_trip(id in "[A-Za-z0-9._-]{1,128}") {
        prop_assume!(id != "." && id != "..");
        let key_id = KeyId::new(&id).unwrap();
        prop_assert_eq!(key_id.as_str(), id.as_str());
        prop_assert_eq!(key_id, KeyId::new(&id).unwrap());
    }

    #[test]
    fn new_never_panics_and_accepts_only_the_charset(id in any::<String>()) {
        if let Ok(key_id) = KeyId::new(&id) {
            prop_assert_eq!(key_id.as_str(), id.as_str());
            prop_assert!(id.len() <= KeyId::MAX_LEN);
            prop_assert!(id.bytes().all(is_key_id_byte));
        }
    }
}
