use std::time::{Duration, SystemTime};

use http::HeaderValue;
use xks_sigv4::{Credential, SignedHeaderSet, Signer};

use super::*;
use crate::RawRequest;

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const BODY: &str = r#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
const PATH: &str = "/example/prefix/kms/xks/v1/health";

fn time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_672_531_200)
}

fn credential() -> Credential {
    Credential::from_config(AKID, SECRET).unwrap()
}

fn endpoint() -> Endpoint {
    Endpoint::parse("https://xks.example.com").unwrap()
}

fn signature(request: &RawRequest) -> &str {
    request
        .authorization()
        .unwrap()
        .rsplit_once("Signature=")
        .unwrap()
        .1
}

/// The fact sheet's verified vectors (§8.5), both signed-header sets.
#[test]
fn spec_vectors() {
    let mut request = RawRequest::post(PATH, BODY);
    let params = SigV4Params::new(&credential(), "us-east-1").with_time(time());
    request.sign_with(&endpoint(), &params).unwrap();
    assert_eq!(
        signature(&request),
        "5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7"
    );
    assert_eq!(request.headers()["x-amz-date"], "20230101T000000Z");
    assert_eq!(
        request.authorization().unwrap(),
        "AWS4-HMAC-SHA256 Credential=AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7"
    );

    let params = params.with_signed_headers(SignedHeaders::ContentTypeHostAndDate);
    request.sign_with(&endpoint(), &params).unwrap();
    assert_eq!(
        signature(&request),
        "53b05178127808970b27b98d980e76e2216431b523d38083fad811a7f204a277"
    );
}

/// The independent computation agrees with xks-sigv4's aws-sigv4-based signer.
#[test]
fn agrees_with_xks_sigv4_signer() {
    let endpoint = Endpoint::parse("https://localhost:8443").unwrap();
    for (set, ours) in [
        (SignedHeaderSet::HostAndDate, SignedHeaders::HostAndDate),
        (
            SignedHeaderSet::ContentTypeHostAndDate,
            SignedHeaders::ContentTypeHostAndDate,
        ),
    ] {
        let signer = Signer::new(&credential(), "eu-west-1")
            .unwrap()
            .with_signed_headers(set);
        let mut a = RawRequest::post("/p/kms/xks/v1/keys/k-1.a_b/encrypt", BODY);
        a.sign(&endpoint, &signer, time()).unwrap();
        let mut b = RawRequest::post("/p/kms/xks/v1/keys/k-1.a_b/encrypt", BODY);
        let params = SigV4Params::new(&credential(), "eu-west-1")
            .with_time(time())
            .with_signed_headers(ours);
        b.sign_with(&endpoint, &params).unwrap();
        assert_eq!(a.authorization(), b.authorization());
        assert_eq!(a.headers()["x-amz-date"], b.headers()["x-amz-date"]);
    }
}

#[test]
fn negative_settings_show_in_the_header() {
    let mut request = RawRequest::post(PATH, BODY);
    let params = SigV4Params::new(&credential(), "us-east-1")
        .with_time(time())
        .with_service("kms")
        .with_region("eu-central-1")
        .with_scope_date("20221231")
        .with_signed_headers(SignedHeaders::List(vec![
            "X-Amz-Date".into(),
            "host".into(),
            "x-extra".into(),
        ]));
    request
        .headers_mut()
        .insert("x-extra", HeaderValue::from_static("  a   b "));
    request.sign_with(&endpoint(), &params).unwrap();
    let auth = request.authorization().unwrap();
    assert!(
        auth.contains("/20221231/eu-central-1/kms/aws4_request"),
        "{auth}"
    );
    assert!(
        auth.contains("SignedHeaders=host;x-amz-date;x-extra"),
        "{auth}"
    );
    assert_eq!(request.headers()["x-amz-date"], "20230101T000000Z");
}

#[test]
fn canonical_query_sorts() {
    assert_eq!(canonical_query("b=2&a=1&a=0"), "a=0&a=1&b=2");
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("flag"), "flag=");
}

#[test]
fn debug_redacts_the_secret() {
    let params = SigV4Params::new(&credential(), "us-east-1");
    let text = format!("{params:?}");
    assert!(!text.contains(SECRET));
    assert!(text.contains("redacted"));
}
