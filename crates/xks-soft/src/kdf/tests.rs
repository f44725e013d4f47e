use super::*;

#[test]
fn recommended_is_the_default_and_strong() {
    assert_eq!(KdfParams::default(), KdfParams::RECOMMENDED);
    let p = KdfParams::RECOMMENDED;
    assert_eq!(
        (p.memory_kib(), p.iterations(), p.parallelism()),
        (65_536, 3, 1)
    );
    assert!(p.is_strong());
    assert!(!KdfParams::INSECURE_FAST_FOR_TESTS.is_strong());
}

#[test]
fn new_enforces_the_floors_and_ceilings() {
    assert!(KdfParams::new(19 * 1024, 2, 1).is_ok());
    assert!(KdfParams::new(4 * 1024 * 1024, 100, 16).is_ok());
    for (m, t, p) in [
        (19 * 1024 - 1, 2, 1),
        (19 * 1024, 1, 1),
        (19 * 1024, 2, 0),
        (19 * 1024, 2, 17),
        (19 * 1024, 101, 1),
        (4 * 1024 * 1024 + 1, 2, 1),
    ] {
        assert!(
            matches!(KdfParams::new(m, t, p), Err(Error::KdfParams(_))),
            "m={m} t={t} p={p}"
        );
    }
}

#[test]
fn header_params_only_need_to_be_usable() {
    assert_eq!(
        KdfParams::from_header(8, 1, 1).unwrap(),
        KdfParams::INSECURE_FAST_FOR_TESTS
    );
    for (m, t, p) in [
        (7, 1, 1),
        (15, 1, 2),
        (8, 0, 1),
        (8, 1, 0),
        (8, 101, 1),
        (u32::MAX, 1, 1),
    ] {
        assert!(
            matches!(KdfParams::from_header(m, t, p), Err(Error::Malformed(_))),
            "m={m} t={t} p={p}"
        );
    }
}

/// Argon2id known answer, computed with Python `cryptography` (OpenSSL) by
/// `tests/data/make_v1_fixture.py`.
#[test]
fn argon2id_known_answer() {
    let salt: Vec<u8> = (0x40..0x50).collect();
    let key = derive(
        b"xks-soft fixture passphrase",
        &salt,
        KdfParams::INSECURE_FAST_FOR_TESTS,
    )
    .unwrap();
    assert_eq!(
        hex::encode(*key),
        "6b593fc4c58d57424a1af370d6d60a81f5ca1e6f54c1691c34ba93e9f63880d3"
    );
}

#[test]
fn derivation_depends_on_every_input() {
    let salt = [1u8; 16];
    let fast = KdfParams::INSECURE_FAST_FOR_TESTS;
    let base = derive(b"secret", &salt, fast).unwrap();
    assert_eq!(*base, *derive(b"secret", &salt, fast).unwrap());
    assert_ne!(*base, *derive(b"secret!", &salt, fast).unwrap());
    assert_ne!(*base, *derive(b"secret", &[2u8; 16], fast).unwrap());
    let slower = KdfParams::from_header(16, 2, 1).unwrap();
    assert_ne!(*base, *derive(b"secret", &salt, slower).unwrap());
}
