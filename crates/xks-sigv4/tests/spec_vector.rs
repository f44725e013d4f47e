//! The verifiable SigV4 vector of the XKS fact sheet §8.5, end to end through the public API.
//! (The step-by-step checks of the same vector are unit tests in `src/v4/tests.rs`.)
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

mod common;

use common::*;
use http::{HeaderMap, HeaderValue};
use xks_sigv4::{
    OutgoingRequest, RegionPolicy, SignedHeaderSet, SignedRequest, Signer, parse_authorization,
};

const SIG_KMS: &str = "5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7";
const SIG_CURL: &str = "53b05178127808970b27b98d980e76e2216431b523d38083fad811a7f204a277";

fn spec_request_headers(signed: &str, signature: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert("x-amz-date", HeaderValue::from_static("20230101T000000Z"));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={AKID}/20230101/us-east-1/kms-xks-proxy/aws4_request, SignedHeaders={signed}, Signature={signature}"
    );
    headers.insert(
        "authorization",
        HeaderValue::from_str(&authorization).unwrap(),
    );
    headers
}

#[test]
fn verifier_accepts_both_spec_signatures() {
    let verifier = verifier_at(T0).with_region_policy(RegionPolicy::allow_list(["us-east-1"]));
    for (signed, signature) in [
        ("host;x-amz-date", SIG_KMS),
        ("content-type;host;x-amz-date", SIG_CURL),
    ] {
        let headers = spec_request_headers(signed, signature);
        let who = verifier
            .verify(&SignedRequest::new("POST", PATH, &headers, BODY))
            .unwrap_or_else(|e| panic!("{signed}: {e}"));
        assert_eq!(who.access_key_id().as_str(), AKID);
        assert_eq!(who.region(), "us-east-1");
        assert_eq!(who.credential_label(), AKID);
    }
}

#[test]
fn verifier_rejects_the_spec_signatures_swapped() {
    let verifier = verifier_at(T0);
    for (signed, signature) in [
        ("host;x-amz-date", SIG_CURL),
        ("content-type;host;x-amz-date", SIG_KMS),
    ] {
        let headers = spec_request_headers(signed, signature);
        let err = verifier
            .verify(&SignedRequest::new("POST", PATH, &headers, BODY))
            .unwrap_err();
        assert_eq!(err.kind(), xks_sigv4::VerifyErrorKind::SignatureMismatch);
        assert!(!err.to_string().contains(signature));
    }
}

#[test]
fn signer_reproduces_both_spec_signatures() {
    let url = format!("https://{HOST}{PATH}");
    let request = OutgoingRequest::new("POST", &url, BODY).with_content_type("application/json");
    for (set, signed, signature) in [
        (SignedHeaderSet::HostAndDate, "host;x-amz-date", SIG_KMS),
        (
            SignedHeaderSet::ContentTypeHostAndDate,
            "content-type;host;x-amz-date",
            SIG_CURL,
        ),
    ] {
        let signer = Signer::new(&credential(), "us-east-1")
            .unwrap()
            .with_signed_headers(set);
        let headers = signer.sign(&request, at(T0)).unwrap();
        let parsed = parse_authorization(headers.authorization()).unwrap();
        assert_eq!(parsed.signed_headers(), signed);
        assert!(
            headers
                .authorization()
                .ends_with(&format!("Signature={signature}"))
        );
    }
}

#[test]
fn reference_computation_reproduces_both_spec_signatures() {
    let kms = [("host", HOST), ("x-amz-date", "20230101T000000Z")];
    assert_eq!(
        spec_reference("20230101T000000Z", &kms).signature(),
        SIG_KMS
    );
    let curl = [
        ("content-type", "application/json"),
        ("host", HOST),
        ("x-amz-date", "20230101T000000Z"),
    ];
    assert_eq!(
        spec_reference("20230101T000000Z", &curl).signature(),
        SIG_CURL
    );
}

#[test]
fn spec_vector_over_http2_uses_the_authority() {
    let verifier = verifier_at(T0);
    let mut headers = spec_request_headers("host;x-amz-date", SIG_KMS);
    headers.remove("host");
    let request = SignedRequest::new("POST", PATH, &headers, BODY);
    assert_eq!(
        verifier.verify(&request).unwrap_err().kind(),
        xks_sigv4::VerifyErrorKind::SignedHeaderMissing
    );
    assert!(verifier.verify(&request.with_authority(Some(HOST))).is_ok());
    assert_eq!(
        verifier
            .verify(&request.with_authority(Some("xks.example.com:443")))
            .unwrap_err()
            .kind(),
        xks_sigv4::VerifyErrorKind::SignatureMismatch
    );
}
