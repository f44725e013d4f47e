//! Shared fixtures for the integration tests, and an independent, deliberately
//! straightforward SigV4 computation to check the verifier against.

// Each test binary uses a different subset of this module, so some items are unused in
// each; `expect` would fail in the binaries that happen to use them all.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different subset"
)]
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use xks_sigv4::{
    Credential, CredentialStore, FixedClock, OutgoingRequest, SignedHeaderSet, Signer, Verifier,
};

/// The fact sheet §8.5 credential.
pub const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
pub const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
/// A second credential, for rotation (fact sheet Appendix D ids, secret made up here).
pub const AKID2: &str = "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE";
pub const SECRET2: &str = "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456";

pub const HOST: &str = "xks.example.com";
pub const PATH: &str = "/example/prefix/kms/xks/v1/health";
pub const BODY: &[u8] = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
/// 2023-01-01T00:00:00Z.
pub const T0: i64 = 1_672_531_200;

pub fn at(unix_seconds: i64) -> SystemTime {
    if unix_seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix_seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(unix_seconds.unsigned_abs())
    }
}

pub fn credential() -> Credential {
    Credential::from_config(AKID, SECRET).unwrap()
}

pub fn credential2() -> Credential {
    Credential::from_config(AKID2, SECRET2).unwrap()
}

/// A verifier for the first credential whose clock reads `now`.
pub fn verifier_at(now: i64) -> Verifier {
    Verifier::new(CredentialStore::new([credential()]).unwrap())
        .with_clock(FixedClock::new(at(now)))
}

/// Signs with our aws-sigv4-based signer and returns the request headers an HTTP/1.1 server
/// would see: `Host`, `Content-Type`, `X-Amz-Date` and `Authorization`.
pub fn signed_headers(
    credential: &Credential,
    region: &str,
    time: i64,
    method: &str,
    path: &str,
    body: &[u8],
    set: SignedHeaderSet,
) -> HeaderMap {
    let url = format!("https://{HOST}{path}");
    let signer = Signer::new(credential, region)
        .unwrap()
        .with_signed_headers(set);
    let request = OutgoingRequest::new(method, &url, body).with_content_type("application/json");
    let signature = signer.sign(&request, at(time)).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    signature.apply_to(&mut headers).unwrap();
    headers
}

/// The common case: KMS-style signature of `POST PATH` with `BODY` at `time`.
pub fn kms_headers(time: i64) -> HeaderMap {
    signed_headers(
        &credential(),
        "us-east-1",
        time,
        "POST",
        PATH,
        BODY,
        SignedHeaderSet::HostAndDate,
    )
}

/// Everything the reference computation needs. Header names must be lower case and values
/// already canonical; `canonical_uri` and `canonical_query` are used as given.
pub struct Reference<'a> {
    pub secret: &'a str,
    pub amz_date: &'a str,
    pub scope_date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub method: &'a str,
    pub canonical_uri: &'a str,
    pub canonical_query: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl Reference<'_> {
    pub fn signed_headers(&self) -> String {
        let mut names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        names.join(";")
    }

    /// The SigV4 signature, written out from the AWS documentation's four steps.
    pub fn signature(&self) -> String {
        // Repeated headers become one line, values joined with ',' in request order.
        let mut grouped: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (name, value) in self.headers {
            grouped.entry(name).or_default().push(value);
        }
        let canonical_headers: String = grouped
            .iter()
            .map(|(name, values)| format!("{name}:{}\n", values.join(",")))
            .collect();
        let canonical_request = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.canonical_uri,
            self.canonical_query,
            canonical_headers,
            self.signed_headers(),
            hex::encode(Sha256::digest(self.body)),
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}/{}/{}/aws4_request\n{}",
            self.amz_date,
            self.scope_date,
            self.region,
            self.service,
            hex::encode(Sha256::digest(canonical_request.as_bytes())),
        );
        let k_date = hmac(format!("AWS4{}", self.secret).as_bytes(), self.scope_date);
        let k_region = hmac(&k_date, self.region);
        let k_service = hmac(&k_region, self.service);
        let k_signing = hmac(&k_service, "aws4_request");
        hex::encode(hmac(&k_signing, &string_to_sign))
    }

    /// The `Authorization` header for `access_key_id`.
    pub fn authorization(&self, access_key_id: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{}/{}/{}/aws4_request, SignedHeaders={}, Signature={}",
            self.scope_date,
            self.region,
            self.service,
            self.signed_headers(),
            self.signature()
        )
    }

    /// A header map holding the listed headers plus `Authorization`.
    pub fn header_map(&self, access_key_id: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map.insert(
            "authorization",
            HeaderValue::from_str(&self.authorization(access_key_id)).unwrap(),
        );
        map
    }
}

/// A reference computation of the spec's health request at `amz_date`.
pub fn spec_reference<'a>(amz_date: &'a str, headers: &'a [(&'a str, &'a str)]) -> Reference<'a> {
    Reference {
        secret: SECRET,
        amz_date,
        scope_date: &amz_date[..8],
        region: "us-east-1",
        service: "kms-xks-proxy",
        method: "POST",
        canonical_uri: PATH,
        canonical_query: "",
        headers,
        body: BODY,
    }
}
