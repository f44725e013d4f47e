use super::*;

const PT_LEN: usize = 5;

fn output(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn caller_mode_splits_ciphertext_and_tag_and_keeps_our_iv() {
    let iv = [7u8; IV_LEN];
    let out = split_output(
        IvMode::Caller,
        iv,
        output(&[b"ccccc", &[9; TAG_LEN]]),
        PT_LEN,
    )
    .unwrap();
    assert_eq!(
        out,
        GcmOutput {
            iv: iv.to_vec(),
            ciphertext: b"ccccc".to_vec(),
            tag: [9; TAG_LEN],
        }
    );
}

#[test]
fn empty_plaintext_is_all_tag() {
    let out = split_output(IvMode::Caller, [1; IV_LEN], vec![3; TAG_LEN], 0).unwrap();
    assert!(out.ciphertext.is_empty());
    assert_eq!(out.tag, [3; TAG_LEN]);
}

#[test]
fn writes_back_mode_takes_the_iv_the_module_wrote() {
    let written = [0xab; IV_LEN];
    let out = split_output(
        IvMode::HsmWritesBack,
        written,
        output(&[b"ccccc", &[9; TAG_LEN]]),
        PT_LEN,
    )
    .unwrap();
    assert_eq!(out.iv, written.to_vec());
    assert_eq!(out.ciphertext, b"ccccc");
}

#[test]
fn writes_back_mode_refuses_an_iv_left_zero() {
    let err = split_output(
        IvMode::HsmWritesBack,
        [0; IV_LEN],
        output(&[b"ccccc", &[9; TAG_LEN]]),
        PT_LEN,
    )
    .unwrap_err();
    assert!(err.contains("did not write an IV back"), "{err}");
}

/// The IV after the tag, 12 bytes or 16 (a Luna HSM in FIPS mode appends a
/// 128-bit IV, which the XKS API allows).
#[test]
fn appends_mode_takes_the_iv_after_the_tag() {
    for iv_len in [IV_LEN, 16] {
        let iv: Vec<u8> = (0..iv_len)
            .map(|i| u8::try_from(i).unwrap() + 100)
            .collect();
        let out = split_output(
            IvMode::HsmAppends,
            [0; IV_LEN],
            output(&[b"ccccc", &[9; TAG_LEN], &iv]),
            PT_LEN,
        )
        .unwrap();
        assert_eq!(
            out,
            GcmOutput {
                iv,
                ciphertext: b"ccccc".to_vec(),
                tag: [9; TAG_LEN],
            },
            "{iv_len}-byte IV"
        );
    }
}

#[test]
fn unexpected_lengths_are_refused_in_every_mode() {
    for mode in [IvMode::Caller, IvMode::HsmWritesBack, IvMode::HsmAppends] {
        // A 96-bit tag (SoftHSM would honour one if asked), a missing IV, IVs
        // of lengths the XKS API does not allow, extra bytes.
        for extra in [
            12,
            TAG_LEN - 1,
            TAG_LEN + 1,
            TAG_LEN + IV_LEN + 1,
            TAG_LEN + 8,
            TAG_LEN + 15,
            TAG_LEN + 17,
            TAG_LEN + 32,
            0,
        ] {
            let fits: &[usize] = match mode {
                IvMode::HsmAppends => &[TAG_LEN + 12, TAG_LEN + 16],
                _ => &[TAG_LEN],
            };
            if fits.contains(&extra) {
                continue;
            }
            let result = split_output(mode, [1; IV_LEN], vec![0; PT_LEN + extra], PT_LEN);
            assert!(result.is_err(), "{mode:?} with {extra} extra bytes");
        }
    }
}

#[test]
fn decrypt_input_is_ciphertext_then_tag() {
    assert_eq!(
        join_input(b"abc", &[1; TAG_LEN]),
        [&b"abc"[..], &[1; TAG_LEN]].concat()
    );
    assert_eq!(join_input(b"", &[2; TAG_LEN]), vec![2; TAG_LEN]);
}

#[test]
fn an_all_zero_random_batch_is_refused() {
    assert!(check_random(&[0; IV_LEN * IV_BATCH]).is_err());
    let mut bytes = [0; IV_LEN * IV_BATCH];
    bytes[IV_LEN * IV_BATCH - 1] = 1;
    assert!(check_random(&bytes).is_ok());
}
