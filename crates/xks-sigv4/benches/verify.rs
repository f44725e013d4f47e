//! Micro-benchmarks of SigV4 verification for a typical XKS Encrypt request (a body of about
//! 600 bytes, signed KMS-style over `host;x-amz-date`), with the derived signing key cached
//! and derived per request, plus the header parser and the client signer for scale.
//!
//! Run with `cargo bench -p xks-sigv4`. Results: `docs/benchmarks-sigv4.md`.
#![expect(
    clippy::expect_used,
    reason = "benchmark setup: a broken fixture should stop the run at once"
)]

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use xks_sigv4::{
    Credential, CredentialStore, FixedClock, OutgoingRequest, SignedRequest, Signer,
    SigningKeyCaching, Verifier, parse_authorization,
};

const HOST: &str = "xks.example.com";
const PATH: &str = "/example/prefix/kms/xks/v1/keys/b42c7fbf-de61-441c-ae24-123456789012/encrypt";

/// An Encrypt request body of the usual shape: request metadata with two ARNs, a 32-byte
/// data key as plaintext and an encryption-context AAD.
fn encrypt_body() -> Vec<u8> {
    let body = concat!(
        r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:role/ExampleApplicationRole","#,
        r#""awsSourceVpc":"vpc-0123456789abcdef0","awsSourceVpce":"vpce-0123456789abcdef0","#,
        r#""kmsKeyArn":"arn:aws:kms:us-east-1:123456789012:key/a1b2c3d4-5678-90ab-cdef-EXAMPLE11111","#,
        r#""kmsOperation":"GenerateDataKey","kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8abcd","#,
        r#""kmsViaService":"ebs"},"#,
        r#""additionalAuthenticatedData":"cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5nLGVudmlyb25tZW50PXByb2R1Y3Rpb24=","#,
        r#""plaintext":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","#,
        r#""encryptionAlgorithm":"AES_GCM","ciphertextDataIntegrityValueAlgorithm":"SHA_256"}"#,
    );
    body.as_bytes().to_vec()
}

fn bench_verify(c: &mut Criterion) {
    let credential = Credential::from_config(
        "AKIAI2SFODNN7EXAMPLE",
        "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE",
    )
    .expect("valid credential");
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_672_531_200);
    let body = encrypt_body();
    let url = format!("https://{HOST}{PATH}");
    let signature = Signer::new(&credential, "us-east-1")
        .expect("valid region")
        .sign(&OutgoingRequest::new("POST", &url, &body), now)
        .expect("signing succeeds");
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static(HOST));
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    signature
        .apply_to(&mut headers)
        .expect("valid header values");
    let request = SignedRequest::new("POST", PATH, &headers, &body);

    let verifier = |caching| {
        Verifier::new(CredentialStore::new([credential.clone()]).expect("one credential"))
            .with_clock(FixedClock::new(now))
            .with_signing_key_caching(caching)
    };
    let cached = verifier(SigningKeyCaching::Enabled);
    let uncached = verifier(SigningKeyCaching::Disabled);
    assert!(cached.verify(&request).is_ok() && uncached.verify(&request).is_ok());

    let mut group = c.benchmark_group("verify_encrypt_600b");
    group.bench_function("signing_key_cached", |b| {
        b.iter(|| cached.verify(black_box(&request)));
    });
    group.bench_function("signing_key_derived", |b| {
        b.iter(|| uncached.verify(black_box(&request)));
    });
    group.finish();

    let authorization = signature.authorization().to_owned();
    c.bench_function("parse_authorization", |b| {
        b.iter(|| parse_authorization(black_box(&authorization)).map(|p| p.region().len()));
    });

    let signer = Signer::new(&credential, "us-east-1").expect("valid region");
    c.bench_function("sign_encrypt_600b_aws_sigv4", |b| {
        b.iter(|| signer.sign(black_box(&OutgoingRequest::new("POST", &url, &body)), now));
    });
}

fn config() -> Criterion {
    // Short runs: the whole bench finishes in well under a minute on two cores.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_verify
}
criterion_main!(benches);
