use super::*;

fn v(n: u32) -> KeyVersion {
    KeyVersion::new(n).unwrap()
}

#[test]
fn version_labels_follow_the_convention() {
    assert_eq!(version_label("payments", KeyVersion::FIRST), "payments");
    assert_eq!(version_label("payments", v(2)), "payments.v2");
    assert_eq!(version_label("a.b", v(17)), "a.b.v17");
}

#[test]
fn version_suffixes_parse_only_when_exact() {
    assert_eq!(
        parse_version_suffix("payments.v2"),
        Some(("payments", v(2)))
    );
    assert_eq!(parse_version_suffix("a.v1.v10"), Some(("a.v1", v(10))));
    for label in [
        "payments",
        "payments.v1",
        "payments.v0",
        "payments.v02",
        "payments.v",
        ".v2",
        "payments.vx",
        "payments.v2a",
        "payments.v99999999999",
    ] {
        assert_eq!(parse_version_suffix(label), None, "{label}");
    }
}

#[test]
fn labels_that_name_versions_are_refused() {
    assert!(validate_label("payments").is_ok());
    assert!(validate_label("payments.v1").is_ok());
    assert!(validate_label("payments.v2").is_err());
    assert!(validate_label("").is_err());
    assert!(validate_label("tab\there").is_err());
    assert!(validate_label(&"x".repeat(121)).is_err());
}

#[test]
fn civil_dates_from_unix_days() {
    let d = |year, month, day| CalendarDate { year, month, day };
    assert_eq!(CalendarDate::from_unix_days(0), d(1970, 1, 1));
    assert_eq!(CalendarDate::from_unix_days(59), d(1970, 3, 1));
    assert_eq!(CalendarDate::from_unix_days(11_016), d(2000, 2, 29));
    assert_eq!(CalendarDate::from_unix_days(20_454), d(2026, 1, 1));
    assert!(CalendarDate::from_unix_days(20_000) < CalendarDate::today());
}

#[test]
fn ck_dates_parse_and_empty_is_none() {
    let date = CalendarDate {
        year: 2031,
        month: 7,
        day: 4,
    };
    assert_eq!(CalendarDate::from_ck(b"2031", b"07", b"04"), Some(date));
    assert_eq!(CalendarDate::from_ck(&[0; 4], &[0; 2], &[0; 2]), None);
    assert_eq!(CalendarDate::from_ck(b"    ", b"  ", b"  "), None);
    assert_eq!(CalendarDate::from_ck(b"2031", b"13", b"01"), None);
    assert_eq!(date.to_string(), "2031-07-04");
}

fn aes256() -> KeyAttrs {
    KeyAttrs {
        key_type: Some(KeyType::AES),
        value_len: Some(32),
        encrypt: true,
        decrypt: true,
        sign: false,
        verify: false,
        wrap: false,
        unwrap: false,
        derive: false,
        extractable: false,
        sensitive: true,
        private: true,
        modifiable: true,
        local: true,
        never_extractable: true,
        always_sensitive: true,
        end_date: None,
    }
}

#[test]
fn key_spec_and_usage_from_attributes() {
    let attrs = aes256();
    assert_eq!(attrs.key_spec(), KeySpec::Aes256);
    assert_eq!(
        attrs.key_usage(),
        vec![KeyUsage::Encrypt, KeyUsage::Decrypt]
    );
    let aes128 = KeyAttrs {
        value_len: Some(16),
        ..aes256()
    };
    assert_eq!(aes128.key_spec(), KeySpec::Other("AES_128".to_owned()));
    let everything = KeyAttrs {
        sign: true,
        verify: true,
        wrap: true,
        unwrap: true,
        derive: true,
        ..aes256()
    };
    let names: Vec<String> = everything
        .key_usage()
        .iter()
        .map(|u| format!("{u:?}"))
        .collect();
    assert_eq!(everything.key_usage().len(), 7, "{names:?}");
    assert!(
        everything
            .key_usage()
            .contains(&KeyUsage::Other("DERIVE".to_owned()))
    );
    let none = KeyAttrs {
        encrypt: false,
        decrypt: false,
        ..aes256()
    };
    assert!(none.key_usage().is_empty());
}

#[test]
fn extractable_or_non_sensitive_keys_are_refused_unless_allowed() {
    assert_eq!(aes256().refusal(false), None);
    let extractable = KeyAttrs {
        extractable: true,
        ..aes256()
    };
    assert!(extractable.refusal(false).unwrap().contains("extractable"));
    assert_eq!(extractable.refusal(true), None);
    let plain = KeyAttrs {
        sensitive: false,
        ..aes256()
    };
    assert!(plain.refusal(false).unwrap().contains("not sensitive"));
    assert_eq!(plain.refusal(true), None);
    let des = KeyAttrs {
        key_type: Some(KeyType::DES3),
        ..aes256()
    };
    assert!(des.refusal(true).unwrap().contains("not an AES key"));
}

#[test]
fn end_date_disables_after_it_passes() {
    let today = CalendarDate {
        year: 2030,
        month: 6,
        day: 15,
    };
    let ends = |year, month, day| KeyAttrs {
        end_date: Some(CalendarDate { year, month, day }),
        ..aes256()
    };
    assert!(!aes256().is_expired(today));
    assert!(
        !ends(2030, 6, 15).is_expired(today),
        "usable on its end date"
    );
    assert!(ends(2030, 6, 14).is_expired(today));
    assert!(ends(1999, 12, 31).is_expired(today));
}
