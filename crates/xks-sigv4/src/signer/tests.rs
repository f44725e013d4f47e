use std::time::{Duration, UNIX_EPOCH};

use super::*;

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const URL: &str = "https://xks.example.com/example/prefix/kms/xks/v1/health";
const BODY: &[u8] = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;

fn credential() -> Credential {
    Credential::from_config(AKID, SECRET).unwrap()
}

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_672_531_200)
}

#[test]
fn signs_the_spec_vector_kms_style() {
    let signer = Signer::new(&credential(), "us-east-1").unwrap();
    let headers = signer
        .sign(
            &OutgoingRequest::new("POST", URL, BODY).with_content_type("application/json"),
            t0(),
        )
        .unwrap();
    assert_eq!(headers.x_amz_date(), "20230101T000000Z");
    assert_eq!(
        headers.authorization(),
        "AWS4-HMAC-SHA256 Credential=AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_request, \
         SignedHeaders=host;x-amz-date, \
         Signature=5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7"
    );
}

#[test]
fn signs_the_spec_vector_curl_style() {
    let signer = Signer::new(&credential(), "us-east-1")
        .unwrap()
        .with_signed_headers(SignedHeaderSet::ContentTypeHostAndDate);
    let headers = signer
        .sign(
            &OutgoingRequest::new("POST", URL, BODY).with_content_type("application/json"),
            t0(),
        )
        .unwrap();
    assert!(headers.authorization().ends_with(
        "SignedHeaders=content-type;host;x-amz-date, \
         Signature=53b05178127808970b27b98d980e76e2216431b523d38083fad811a7f204a277"
    ));
}

#[test]
fn sign_request_adds_the_headers() {
    let signer = Signer::new(&credential(), "us-east-1")
        .unwrap()
        .with_signed_headers(SignedHeaderSet::ContentTypeHostAndDate);
    let mut request = http::Request::post(URL)
        .header("content-type", "application/json")
        .header("x-amz-date", "stale")
        .body(BODY)
        .unwrap();
    signer.sign_request(&mut request, t0()).unwrap();
    assert_eq!(request.headers().get_all("x-amz-date").iter().count(), 1);
    assert_eq!(request.headers()["x-amz-date"], "20230101T000000Z");
    assert!(
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .ends_with(
                "Signature=53b05178127808970b27b98d980e76e2216431b523d38083fad811a7f204a277"
            )
    );
}

#[test]
fn rejects_bad_input() {
    let kind = |result: Result<Signer, SignError>| result.unwrap_err().kind();
    for region in ["", "US-EAST-1", "us east 1", "us/east", &"a".repeat(65)] {
        assert_eq!(
            kind(Signer::new(&credential(), region)),
            SignErrorKind::InvalidRegion,
            "{region:?}"
        );
    }

    let signer = Signer::new(&credential(), "us-east-1").unwrap();
    for url in [
        "/kms/xks/v1/health",
        "xks.example.com/kms/xks/v1/health",
        "ftp://xks.example.com/kms",
        "https:///kms",
        "https://xks.example.com/a b",
        "",
    ] {
        let err = signer
            .sign(&OutgoingRequest::new("POST", url, b""), t0())
            .unwrap_err();
        assert_eq!(err.kind(), SignErrorKind::InvalidUrl, "{url:?}");
    }

    for time in [
        UNIX_EPOCH - Duration::from_secs(1),
        UNIX_EPOCH + Duration::from_secs(253_402_300_800),
    ] {
        let err = signer
            .sign(&OutgoingRequest::new("POST", URL, b""), time)
            .unwrap_err();
        assert_eq!(err.kind(), SignErrorKind::InvalidTime);
    }
    assert!(
        signer
            .sign(
                &OutgoingRequest::new("POST", URL, b""),
                UNIX_EPOCH + Duration::from_secs(253_402_300_799)
            )
            .is_ok()
    );

    let curl = Signer::new(&credential(), "us-east-1")
        .unwrap()
        .with_signed_headers(SignedHeaderSet::ContentTypeHostAndDate);
    let err = curl
        .sign(&OutgoingRequest::new("POST", URL, b""), t0())
        .unwrap_err();
    assert_eq!(err.kind(), SignErrorKind::MissingContentType);
    let err = curl
        .sign(
            &OutgoingRequest::new("POST", URL, b"").with_content_type("a\nb"),
            t0(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), SignErrorKind::InvalidHeaderValue);
}

#[test]
fn debug_output_has_no_secret_or_signature() {
    let signer = Signer::new(&credential(), "us-east-1").unwrap();
    let debug = format!("{signer:?} {signer:#?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains(AKID));
    assert_eq!(signer.access_key_id().as_str(), AKID);
    assert_eq!(signer.region(), "us-east-1");

    let headers = signer
        .sign(&OutgoingRequest::new("POST", URL, BODY), t0())
        .unwrap();
    let debug = format!("{headers:?}");
    assert!(!debug.contains("5e07d8ad"), "{debug}");
    assert!(debug.contains("20230101T000000Z"));
    let request_debug = format!("{:?}", OutgoingRequest::new("POST", URL, BODY));
    assert!(!request_debug.contains("KmsHealthCheck"), "{request_debug}");
    let pairs: Vec<_> = headers.iter().map(|(name, _)| name).collect();
    assert_eq!(pairs, ["authorization", "x-amz-date"]);
}
