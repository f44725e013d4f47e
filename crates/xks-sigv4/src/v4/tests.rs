//! The XKS fact sheet §8.5 vector, checked step by step, and the HMAC helper against the
//! `hmac` crate's own key handling.

use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;
use crate::canonical::{canonical_request, payload_hash};
use crate::request::SignedRequest;
use crate::verifier::UriPathNormalization;

const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const BODY: &[u8] = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
const PATH: &str = "/example/prefix/kms/xks/v1/health";
const SCOPE: Scope<'static> = Scope {
    date: "20230101",
    region: "us-east-1",
    service: "kms-xks-proxy",
};

fn spec_headers(content_type: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("xks.example.com"));
    headers.insert("x-amz-date", HeaderValue::from_static("20230101T000000Z"));
    if content_type {
        headers.insert("content-type", HeaderValue::from_static("application/json"));
    }
    headers
}

fn secret() -> SecretAccessKey {
    SecretAccessKey::new(SECRET).unwrap()
}

#[test]
fn spec_vector_payload_hash() {
    assert_eq!(
        payload_hash(BODY),
        "ebb9c8419d64a08529aa7a6da1bc3f485c284714a613aeb6e94b30bc5b3c2f23"
    );
}

#[test]
fn spec_vector_canonical_request_and_its_hash() {
    let headers = spec_headers(false);
    let request = SignedRequest::new("POST", PATH, &headers, BODY);
    let creq =
        canonical_request(&request, "host;x-amz-date", UriPathNormalization::Enabled).unwrap();
    let expected = "POST\n\
                    /example/prefix/kms/xks/v1/health\n\
                    \n\
                    host:xks.example.com\n\
                    x-amz-date:20230101T000000Z\n\
                    \n\
                    host;x-amz-date\n\
                    ebb9c8419d64a08529aa7a6da1bc3f485c284714a613aeb6e94b30bc5b3c2f23";
    assert_eq!(String::from_utf8(creq.clone()).unwrap(), expected);
    assert_eq!(
        sha256_hex(&creq),
        "6fb7450d56ab83a0b721875be1eed9839abdf72659e8e386e3d14b031624b20d"
    );
}

#[test]
fn spec_vector_string_to_sign() {
    let headers = spec_headers(false);
    let request = SignedRequest::new("POST", PATH, &headers, BODY);
    let creq =
        canonical_request(&request, "host;x-amz-date", UriPathNormalization::Enabled).unwrap();
    assert_eq!(
        string_to_sign("20230101T000000Z", &SCOPE, &creq),
        "AWS4-HMAC-SHA256\n\
         20230101T000000Z\n\
         20230101/us-east-1/kms-xks-proxy/aws4_request\n\
         6fb7450d56ab83a0b721875be1eed9839abdf72659e8e386e3d14b031624b20d"
    );
}

#[test]
fn spec_vector_signing_key() {
    let key = signing_key(&secret(), &SCOPE);
    assert_eq!(
        hex::encode(key.as_bytes()),
        "1b4688cf5b9735509169815ab6a90b2c975f7f19b345450a13823404f0eeef42"
    );
    assert_eq!(format!("{key:?}"), "SigningKey(** redacted **)");
}

#[test]
fn spec_vector_signatures() {
    let key = signing_key(&secret(), &SCOPE);
    for (content_type, signed, expected) in [
        (
            false,
            "host;x-amz-date",
            "5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7",
        ),
        (
            true,
            "content-type;host;x-amz-date",
            "53b05178127808970b27b98d980e76e2216431b523d38083fad811a7f204a277",
        ),
    ] {
        let headers = spec_headers(content_type);
        let request = SignedRequest::new("POST", PATH, &headers, BODY);
        let creq = canonical_request(&request, signed, UriPathNormalization::Enabled).unwrap();
        let sts = string_to_sign("20230101T000000Z", &SCOPE, &creq);
        assert_eq!(hex::encode(signature(&key, &sts)), expected, "{signed}");
    }
}

#[test]
fn hmac_matches_rfc_4231_long_key_case() {
    // RFC 4231 test case 6: a 131-byte key, longer than the block, is hashed first.
    let key = [0xaa_u8; 131];
    let mac = hmac_sha256(
        &key,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
    );
    assert_eq!(
        hex::encode(mac),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );
}

proptest! {
    #[test]
    fn hmac_matches_the_hmac_crate(key in proptest::collection::vec(any::<u8>(), 0..150), data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut reference = <HmacSha256 as KeyInit>::new_from_slice(&key).unwrap();
        reference.update(&data);
        let expected: [u8; 32] = reference.finalize().into_bytes().into();
        prop_assert_eq!(hmac_sha256(&key, &data), expected);
    }
}
