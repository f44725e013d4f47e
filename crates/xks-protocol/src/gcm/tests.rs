use aes_gcm::{
    AesGcm, KeyInit,
    aead::{AeadInOut, Tag, consts::U16},
    aes::Aes256,
};
use base64::{Engine as _, engine::general_purpose::STANDARD};

use super::*;

const AAD: &[u8] = b"project=nile,department=marketing";
const METADATA: &[u8] = b"key_version=1";
const PLAINTEXT: &[u8] = b"Hello World!";

fn b64(text: &str) -> Vec<u8> {
    STANDARD.decode(text).unwrap()
}

fn key() -> [u8; 32] {
    std::array::from_fn(|i| u8::try_from(i).unwrap())
}

/// AES-256-GCM with `N`-byte IVs over the composed AAD: (ciphertext, tag).
fn seal<N>(iv: &[u8], aad: &[u8], metadata: &[u8]) -> (Vec<u8>, [u8; 16])
where
    N: aes_gcm::aead::array::ArraySize,
{
    let cipher = AesGcm::<Aes256, N>::new_from_slice(&key()).unwrap();
    let gcm_aad = compose_gcm_aad(aad, metadata).unwrap();
    let mut buffer = PLAINTEXT.to_vec();
    let tag = cipher
        .encrypt_inout_detached(
            &iv.try_into().unwrap(),
            &gcm_aad,
            buffer.as_mut_slice().into(),
        )
        .unwrap();
    (buffer, tag.into())
}

fn open(iv: &[u8], aad: &[u8], metadata: &[u8], ciphertext: &[u8], tag: &[u8]) -> bool {
    let cipher = aes_gcm::Aes256Gcm::new_from_slice(&key()).unwrap();
    let gcm_aad = compose_gcm_aad(aad, metadata).unwrap();
    let mut buffer = ciphertext.to_vec();
    let tag = Tag::<aes_gcm::Aes256Gcm>::try_from(tag).unwrap();
    cipher
        .decrypt_inout_detached(
            &iv.try_into().unwrap(),
            &gcm_aad,
            buffer.as_mut_slice().into(),
            &tag,
        )
        .is_ok_and(|()| buffer == PLAINTEXT)
}

#[test]
fn spec_aad_byte_example() {
    // Fact sheet §4.
    let expected = hex::decode(
        "0021\
         70726f6a6563743d6e696c652c6465706172746d656e743d6d61726b6574696e67\
         0d\
         6b65795f76657273696f6e3d31",
    )
    .unwrap();
    let gcm_aad = compose_gcm_aad(AAD, METADATA).unwrap();
    assert_eq!(gcm_aad.len(), 49);
    assert_eq!(gcm_aad, expected);
}

#[test]
fn absent_fields_still_get_length_bytes() {
    assert_eq!(compose_gcm_aad(b"", b"").unwrap(), [0, 0, 0]);
    assert_eq!(compose_gcm_aad(b"ab", b"").unwrap(), [0, 2, b'a', b'b', 0]);
    assert_eq!(compose_gcm_aad(b"", b"m").unwrap(), [0, 0, 1, b'm']);
}

#[test]
fn aad_and_metadata_cannot_be_confused() {
    // Fact sheet §4: encrypt with metadata M and no AAD, decrypt with AAD = M and no metadata.
    let encrypt_side = compose_gcm_aad(b"", METADATA).unwrap();
    let decrypt_side = compose_gcm_aad(METADATA, b"").unwrap();
    assert_eq!(encrypt_side[..3], [0x00, 0x00, 0x0d]);
    assert_eq!(decrypt_side[..2], [0x00, 0x0d]);
    assert_eq!(decrypt_side.last(), Some(&0));
    assert_ne!(encrypt_side, decrypt_side);

    let iv = b64("HMrlRw85cAJUd5Ax");
    let (ciphertext, tag) = seal::<aes_gcm::aead::consts::U12>(&iv, b"", METADATA);
    assert!(open(&iv, b"", METADATA, &ciphertext, &tag));
    assert!(!open(&iv, METADATA, b"", &ciphertext, &tag));
}

#[test]
fn length_prefix_limits() {
    let big = vec![0; 65_536];
    assert!(compose_gcm_aad(&big[..65_535], &big[..255]).is_ok());
    let error = compose_gcm_aad(&big, b"").unwrap_err();
    assert_eq!(
        error.to_string(),
        "additionalAuthenticatedData is 65536 bytes; a 2-byte length prefix allows 65535"
    );
    assert_eq!(
        XksError::from(error).name(),
        ErrorName::UnsupportedOperationException
    );
    let error = compose_gcm_aad(b"", &big[..256]).unwrap_err();
    assert_eq!(
        XksError::from(error),
        XksError::new(ErrorName::InternalException)
    );
}

#[test]
fn into_variant_reuses_and_clears_the_buffer() {
    let mut out = b"stale contents".to_vec();
    compose_gcm_aad_into(AAD, METADATA, &mut out).unwrap();
    assert_eq!(out, compose_gcm_aad(AAD, METADATA).unwrap());
    assert!(compose_gcm_aad_into(&[0; 70_000], b"", &mut out).is_err());
    assert!(out.is_empty());
}

#[test]
fn spec_cdiv_vector() {
    // Fact sheet §5.
    let iv = hex::decode("1ccae5470f39700254779031").unwrap();
    let ciphertext = hex::decode("821c642b5b71783367deaf18").unwrap();
    let tag = hex::decode("bc1c4dda7707d6812447c5955e99b261").unwrap();
    let cdiv = ciphertext_data_integrity_value(AAD, METADATA, &iv, &ciphertext, &tag);
    assert_eq!(
        hex::encode(cdiv),
        "a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7"
    );
    assert_eq!(
        ciphertext_data_integrity_value_base64(AAD, METADATA, &iv, &ciphertext, &tag),
        "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="
    );
}

#[test]
fn derived_gcm_vectors_with_a_12_byte_iv() {
    // Fact sheet §10: key 00..1f, plaintext "Hello World!", IV HMrlRw85cAJUd5Ax.
    let iv = b64("HMrlRw85cAJUd5Ax");
    let cases: [(&[u8], &[u8], &str, &str); 4] = [
        (
            AAD,
            METADATA,
            "Hlq5hSgZuRo2Qx7eEWUYfQ==",
            "xEyN0+xVFRXCXS74nHMytBPdLUpnMU9e2WBEPwakvIQ=",
        ),
        (
            AAD,
            b"",
            "cTn6idGqmWeYwI3qacirQA==",
            "ycKEoKFhUnA0TescpYG0UR00qPeSgoQdCSownl7AJiw=",
        ),
        (
            b"",
            METADATA,
            "HRAWgpVm7mmyZZxfr1IamA==",
            "UKbJqTwLacq9R73D4jgOp4kOX2MIIKZdYCcOxLwt8lQ=",
        ),
        (
            b"",
            b"",
            "KTHMR5Qu6RPqRJ7P68F5XA==",
            "wiY5/ncIG3ik16CV9CxN1lE4GmftqPdrpTvAsyN027A=",
        ),
    ];
    for (aad, metadata, tag, cdiv) in cases {
        let (ciphertext, actual_tag) = seal::<aes_gcm::aead::consts::U12>(&iv, aad, metadata);
        assert_eq!(STANDARD.encode(&ciphertext), "qNtNoLf/0yh1Cm1F");
        assert_eq!(STANDARD.encode(actual_tag), tag);
        assert_eq!(
            ciphertext_data_integrity_value_base64(aad, metadata, &iv, &ciphertext, &actual_tag),
            cdiv
        );
        assert!(open(&iv, aad, metadata, &ciphertext, &actual_tag));
    }
}

#[test]
fn derived_gcm_vector_with_a_16_byte_iv() {
    let iv = b64("AAECAwQFBgcICQoLDA0ODw==");
    let (ciphertext, tag) = seal::<U16>(&iv, AAD, METADATA);
    assert_eq!(STANDARD.encode(ciphertext), "LwnMGlbEHUfvk78I");
    assert_eq!(STANDARD.encode(tag), "VXTIxe/VTTh8N8Swgf21qw==");
}

#[test]
fn tampering_with_any_input_fails() {
    let iv = b64("HMrlRw85cAJUd5Ax");
    let (ciphertext, tag) = seal::<aes_gcm::aead::consts::U12>(&iv, AAD, METADATA);
    let flip = |bytes: &[u8]| {
        let mut bytes = bytes.to_vec();
        bytes[0] ^= 1;
        bytes
    };
    assert!(!open(&iv, &flip(AAD), METADATA, &ciphertext, &tag));
    assert!(!open(&iv, AAD, &flip(METADATA), &ciphertext, &tag));
    assert!(!open(&iv, AAD, b"", &ciphertext, &tag));
    assert!(!open(&iv, b"", METADATA, &ciphertext, &tag));
    assert!(!open(&flip(&iv), AAD, METADATA, &ciphertext, &tag));
    assert!(!open(&iv, AAD, METADATA, &flip(&ciphertext), &tag));
    assert!(!open(&iv, AAD, METADATA, &ciphertext, &flip(&tag)));
}
