//! Checks that need the verifier's internals; the behaviour seen from outside is covered by
//! the integration tests in `tests/`.

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::clock::FixedClock;
use crate::credentials::Credential;
use crate::signer::{OutgoingRequest, Signer};

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const T0: u64 = 1_672_531_200; // 2023-01-01T00:00:00Z

fn credential() -> Credential {
    Credential::from_config(AKID, SECRET).unwrap()
}

fn signed_headers(region: &str, seconds: u64) -> HeaderMap {
    let signer = Signer::new(&credential(), region).unwrap();
    let request = OutgoingRequest::new("POST", "https://xks.example.com/kms/xks/v1/health", b"{}");
    let signature = signer
        .sign(&request, UNIX_EPOCH + Duration::from_secs(seconds))
        .unwrap();
    let mut headers = HeaderMap::new();
    signature.apply_to(&mut headers).unwrap();
    headers.insert("host", HeaderValue::from_static("xks.example.com"));
    headers
}

fn verifier(caching: SigningKeyCaching) -> Verifier {
    Verifier::new(CredentialStore::new([credential()]).unwrap())
        .with_clock(FixedClock::new(UNIX_EPOCH + Duration::from_secs(T0)))
        .with_signing_key_caching(caching)
}

fn cached_keys(verifier: &Verifier) -> usize {
    verifier.credentials().entry(AKID).unwrap().cache().len()
}

#[test]
fn only_verified_keys_are_cached() {
    let verifier = verifier(SigningKeyCaching::Enabled);
    let headers = signed_headers("us-east-1", T0);
    assert!(
        verifier
            .verify(&SignedRequest::new(
                "POST",
                "/kms/xks/v1/health",
                &headers,
                b"{}"
            ))
            .is_ok()
    );
    assert_eq!(cached_keys(&verifier), 1);
    // A second request uses the cached key.
    assert!(
        verifier
            .verify(&SignedRequest::new(
                "POST",
                "/kms/xks/v1/health",
                &headers,
                b"{}"
            ))
            .is_ok()
    );
    assert_eq!(cached_keys(&verifier), 1);

    // A request for another region with a bad signature leaves the cache alone.
    let headers = signed_headers("eu-west-1", T0);
    let err = verifier
        .verify(&SignedRequest::new(
            "POST",
            "/kms/xks/v1/health",
            &headers,
            b"{tampered}",
        ))
        .unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::SignatureMismatch);
    assert_eq!(cached_keys(&verifier), 1);
    // And a good one is added.
    assert!(
        verifier
            .verify(&SignedRequest::new(
                "POST",
                "/kms/xks/v1/health",
                &headers,
                b"{}"
            ))
            .is_ok()
    );
    assert_eq!(cached_keys(&verifier), 2);
}

#[test]
fn a_cached_key_still_rejects_bad_signatures() {
    let verifier = verifier(SigningKeyCaching::Enabled);
    let headers = signed_headers("us-east-1", T0);
    let good = SignedRequest::new("POST", "/kms/xks/v1/health", &headers, b"{}");
    assert!(verifier.verify(&good).is_ok());
    let bad = SignedRequest::new("POST", "/kms/xks/v1/health", &headers, b"{ }");
    assert_eq!(
        verifier.verify(&bad).unwrap_err().kind(),
        VerifyErrorKind::SignatureMismatch
    );
}

#[test]
fn caching_can_be_disabled() {
    let verifier = verifier(SigningKeyCaching::Disabled);
    let headers = signed_headers("us-east-1", T0);
    for _ in 0..3 {
        assert!(
            verifier
                .verify(&SignedRequest::new(
                    "POST",
                    "/kms/xks/v1/health",
                    &headers,
                    b"{}"
                ))
                .is_ok()
        );
    }
    assert_eq!(cached_keys(&verifier), 0);
}

#[test]
fn replacing_credentials_drops_their_cached_keys() {
    let verifier = verifier(SigningKeyCaching::Enabled);
    let headers = signed_headers("us-east-1", T0);
    let request = SignedRequest::new("POST", "/kms/xks/v1/health", &headers, b"{}");
    assert!(verifier.verify(&request).is_ok());
    assert_eq!(cached_keys(&verifier), 1);
    // Same access key id, another secret: the old derived key must not be reused.
    let rotated = Credential::from_config(AKID, "A".repeat(44)).unwrap();
    verifier.replace_credentials(CredentialStore::new([rotated]).unwrap());
    assert_eq!(cached_keys(&verifier), 0);
    assert_eq!(
        verifier.verify(&request).unwrap_err().kind(),
        VerifyErrorKind::SignatureMismatch
    );
}

#[test]
fn defaults() {
    let verifier = Verifier::new(CredentialStore::empty());
    assert_eq!(verifier.max_clock_skew(), Duration::from_secs(300));
    assert_eq!(verifier.region_policy(), &RegionPolicy::Any);
    assert_eq!(
        verifier.uri_path_normalization,
        UriPathNormalization::Enabled
    );
    assert_eq!(verifier.key_caching, SigningKeyCaching::Enabled);
    let debug = format!("{verifier:?}");
    assert!(debug.contains("SystemClock"), "{debug}");
}

#[test]
fn region_policy() {
    assert!(RegionPolicy::Any.allows("anything"));
    let policy = RegionPolicy::allow_list(["us-east-1", "eu-west-1"]);
    assert!(policy.allows("us-east-1"));
    assert!(policy.allows("eu-west-1"));
    assert!(!policy.allows("us-east-2"));
    assert!(!policy.allows("US-EAST-1"));
    assert!(!RegionPolicy::allow_list(Vec::<String>::new()).allows("us-east-1"));
}
