use super::*;

#[test]
fn default_is_the_spec_minimum() {
    let limits = Limits::default();
    assert_eq!(limits, Limits::SPEC_MINIMUM);
    assert_eq!(limits.max_plaintext_bytes(), 4300);
    assert_eq!(limits.max_ciphertext_bytes(), 4300);
    assert_eq!(limits.max_aad_bytes(), 8192);
}

#[test]
fn limits_can_be_raised() {
    let limits = Limits::default()
        .with_max_plaintext_bytes(65_536)
        .and_then(|l| l.with_max_ciphertext_bytes(4301))
        .and_then(|l| l.with_max_aad_bytes(Limits::MAX_AAD_BYTES))
        .unwrap();
    assert_eq!(limits.max_plaintext_bytes(), 65_536);
    assert_eq!(limits.max_ciphertext_bytes(), 4301);
    assert_eq!(limits.max_aad_bytes(), 65_535);
}

#[test]
fn limits_below_the_spec_minimum_are_rejected() {
    let limits = Limits::default();
    assert_eq!(
        limits
            .with_max_plaintext_bytes(4299)
            .unwrap_err()
            .to_string(),
        "max_plaintext_bytes = 4299 is below the spec's minimum of 4300 bytes"
    );
    assert!(limits.with_max_ciphertext_bytes(0).is_err());
    assert!(limits.with_max_aad_bytes(8191).is_err());
}

#[test]
fn aad_limit_stops_at_the_length_prefix() {
    assert_eq!(
        Limits::default()
            .with_max_aad_bytes(65_536)
            .unwrap_err()
            .to_string(),
        "max_aad_bytes = 65536 is above 65535, the most a 2-byte length prefix can encode"
    );
}

#[test]
fn body_limit_has_a_floor_of_64_kib() {
    assert_eq!(Limits::default().max_body_bytes(), 64 * 1024);
}

#[test]
fn body_limit_grows_with_the_limits() {
    let limits = Limits::default()
        .with_max_plaintext_bytes(1 << 20)
        .and_then(|l| l.with_max_aad_bytes(65_535))
        .unwrap();
    let body = limits.max_body_bytes();
    assert!(body > encoded_len(1 << 20) + encoded_len(65_535) + 2 * MAX_ARN_LEN);

    let huge = Limits::default()
        .with_max_ciphertext_bytes(usize::MAX)
        .unwrap();
    assert_eq!(huge.max_body_bytes(), usize::MAX);
}
