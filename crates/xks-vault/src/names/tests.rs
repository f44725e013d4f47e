use super::*;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

#[test]
fn transit_name_pattern() {
    for good in ["a", "_", "k1", "a.b-c_d", "a..b", "A-9", "x_"] {
        assert!(is_transit_key_name(good), "{good}");
    }
    for bad in ["", "-a", "a-", ".a", "a.", "-", ".", "a/b", "a b", "é"] {
        assert!(!is_transit_key_name(bad), "{bad}");
    }
}

#[test]
fn valid_names_map_to_themselves() {
    assert_eq!(
        default_transit_name("", &id("payments-2024")),
        "payments-2024"
    );
    assert_eq!(default_transit_name("xks_", &id("a.b")), "xks_a.b");
    // A prefix can make a leading `-` acceptable.
    assert_eq!(default_transit_name("xks_", &id("-a")), "xks_-a");
}

#[test]
fn names_transit_refuses_are_encoded() {
    assert_eq!(default_transit_name("", &id("-abc")), "xks-hex-2d616263");
    assert_eq!(default_transit_name("", &id("key.")), "xks-hex-6b65792e");
    assert_eq!(default_transit_name("p-", &id("x-")), "p-xks-hex-782d");
    // The reserved prefix itself is encoded, so the mapping stays one to one.
    let tricky = id("xks-hex-2d616263");
    let mapped = default_transit_name("", &tricky);
    assert_ne!(mapped, default_transit_name("", &id("-abc")));
    assert!(is_transit_key_name(&mapped));
}

#[test]
fn mapping_is_reversible_and_always_valid() {
    let ids = [
        "a",
        "-",
        ".-",
        "-abc",
        "key.",
        "..a",
        "a..",
        "xks-hex-00",
        "Payments_2024",
        "-.-._",
    ];
    for prefix in ["", "xks_", "p."] {
        for s in ids {
            let name = default_transit_name(prefix, &id(s));
            assert!(is_transit_key_name(&name), "{prefix:?} {s:?} -> {name:?}");
            assert_eq!(external_id_of(prefix, &name), Some(id(s)), "{name}");
        }
    }
    let long = "-".repeat(128);
    let name = default_transit_name("", &id(&long));
    assert_eq!(name.len(), ENCODED_NAME_PREFIX.len() + 256);
    assert_eq!(external_id_of("", &name), Some(id(&long)));
}

#[test]
fn foreign_names_have_no_external_id() {
    assert_eq!(external_id_of("xks_", "other"), None);
    assert_eq!(external_id_of("", "xks-hex-zz"), None);
    assert_eq!(external_id_of("", "xks-hex-616"), None);
    // `xks-hex-61` decodes to `a`, whose name is `a`, not `xks-hex-61`.
    assert_eq!(external_id_of("", "xks-hex-61"), None);
}

#[test]
fn prefixes() {
    assert!(is_name_prefix(""));
    assert!(is_name_prefix("xks_"));
    assert!(is_name_prefix("team.a-"));
    assert!(!is_name_prefix("-x"));
    assert!(!is_name_prefix("a/b"));
}
