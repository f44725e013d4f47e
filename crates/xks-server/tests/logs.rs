//! The request log (checklist rows 129, 130), in-process.
//!
//! The log is captured by a subscriber installed for the test's thread. This test
//! has its own binary because tracing caches each callsite's interest process-wide:
//! while other tests run on other threads, a callsite they register first can be
//! cached as uninteresting, and the thread-local subscriber then misses events.

mod common;

use std::time::Duration;

use http::{Method, StatusCode};
use xks_keymanager::ErrorKind;
use xks_protocol::ErrorName as E;

use common::{
    A2, CONFIGURED_SECRETS, DECRYPT_ONLY, FAULT_DETAIL, Harness, KEY_1, KEY_2, LogCapture,
    PRINCIPAL, Reply, TENANT_B, UNKNOWN, b64,
};

/// What one request's log line must say.
struct Expected {
    reply: Reply,
    operation: &'static str,
    tenant: &'static str,
    key_id: &'static str,
    /// Whether the body was parsed, so the line carries the request metadata.
    parsed: bool,
}

/// Rows 129, 130: each request writes exactly one `xks::request` line with the
/// KMS request id, API, tenant, key, outcome, status, error name and latency;
/// neither the plaintext (encrypt input, decrypt output) nor the AAD, in any
/// encoding, nor a secret access key or a signature appears anywhere in the logs,
/// at any level. The backend's error detail does reach the log.
#[tokio::test(start_paused = true)]
async fn request_logs_carry_the_request_and_never_plaintext_or_secrets() {
    // 33 and 30 bytes: multiples of 3, so their Base64 is a prefix of the Base64
    // of any value that starts with them.
    const MARKER: &[u8] = b"PLAINTEXT-MARKER-5d1c9e7a4b2f0386";
    const AAD_MARKER: &[u8] = b"AAD-MARKER-e0b7a91c33d24f58aa1";
    assert_eq!((MARKER.len() % 3, AAD_MARKER.len() % 3), (0, 0));

    let logs = LogCapture::default();
    let _guard = logs.install();
    let h = Harness::builder()
        .limits(r#"backend_timeout = "50ms""#)
        .build()
        .await;
    let mut expected = Vec::new();
    let mut expect = |reply, operation, tenant, key_id, parsed| {
        expected.push(Expected {
            reply,
            operation,
            tenant,
            key_id,
            parsed,
        });
    };

    let r = h
        .encrypt(KEY_1)
        .plaintext(MARKER)
        .aad(AAD_MARKER)
        .cdiv()
        .send()
        .await;
    let ct = r.ciphertext();
    expect(r, "Encrypt", "tenant-a", KEY_1, true);
    let r = h.decrypt(KEY_1, &ct).send().await;
    assert_eq!(r.plaintext(), MARKER);
    expect(r, "Decrypt", "tenant-a", KEY_1, true);
    let r = h
        .decrypt(KEY_2, &ct)
        .tenant(&TENANT_B)
        .curl_style()
        .send()
        .await;
    r.expect_error(E::InvalidCiphertextException);
    expect(r, "Decrypt", "tenant-b", KEY_2, true);
    let r = h.decrypt(KEY_1, &ct).no_aad().send().await;
    r.expect_error(E::InvalidCiphertextException);
    expect(r, "Decrypt", "tenant-a", KEY_1, true);
    let r = h.encrypt(DECRYPT_ONLY).plaintext(MARKER).send().await;
    r.expect_error(E::InvalidKeyUsageException);
    expect(r, "Encrypt", "tenant-a", DECRYPT_ONLY, true);
    let r = h
        .encrypt(KEY_1)
        .tenant(&TENANT_B)
        .plaintext(MARKER)
        .send()
        .await;
    r.expect_error(E::KeyNotFoundException);
    expect(r, "Encrypt", "tenant-b", KEY_1, true);
    let wrong_secret = common::Cred {
        access_key_id: A2.access_key_id,
        secret: UNKNOWN.secret,
    };
    let r = h
        .encrypt(KEY_1)
        .plaintext(MARKER)
        .cred(wrong_secret)
        .send()
        .await;
    r.expect_error(E::AuthenticationFailedException);
    expect(r, "Encrypt", "tenant-a", KEY_1, false);
    let r = h.encrypt(KEY_1).plaintext(&MARKER.repeat(200)).send().await;
    r.expect_error(E::UnsupportedOperationException);
    // Authenticated, but the body fails validation: the line still names the request.
    expect(r, "Encrypt", "tenant-a", KEY_1, true);
    let r = h
        .encrypt(KEY_1)
        .plaintext(MARKER)
        .set("additionalAuthenticatedData", "not base64!")
        .send()
        .await;
    r.expect_error(E::ValidationException);
    expect(r, "Encrypt", "tenant-a", KEY_1, true);
    let r = h
        .encrypt(KEY_1)
        .plaintext(MARKER)
        .path("/tenant-z/kms/xks/v1/keys/key-1/encrypt")
        .send()
        .await;
    r.expect_error(E::InvalidUriPathException);
    expect(r, "Encrypt", "-", "-", false);
    let r = h
        .encrypt(KEY_1)
        .plaintext(MARKER)
        .method(Method::GET)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    expect(r, "Encrypt", "tenant-a", KEY_1, false);
    h.km.fail_calls(ErrorKind::Internal);
    let r = h.encrypt(KEY_1).plaintext(MARKER).send().await;
    r.expect_error(E::InternalException);
    expect(r, "Encrypt", "tenant-a", KEY_1, true);
    h.km.reset();
    h.km.delay_calls(Duration::from_secs(3600));
    let r = h.decrypt(KEY_1, &ct).send().await;
    r.expect_error(E::DependencyTimeoutException);
    expect(r, "Decrypt", "tenant-a", KEY_1, true);
    h.km.reset();
    let r = h.health().tenant(&TENANT_B).send().await;
    expect(r, "GetHealthStatus", "tenant-b", "-", true);
    let r = h.metadata(KEY_1).send().await;
    expect(r, "GetKeyMetadata", "tenant-a", KEY_1, true);
    let r = h.request(Method::GET, "/ping").send().await;
    expect(r, "Ping", "-", "-", false);

    let lines = logs.request_lines();
    assert_eq!(lines.len(), expected.len(), "one line per request");
    for (want, line) in expected.iter().zip(&lines) {
        let reply = &want.reply;
        let field = |name: &str| {
            line.get(name)
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .clone()
        };
        assert_eq!(field("operation"), want.operation, "{line:?}");
        assert_eq!(field("tenant"), want.tenant, "{line:?}");
        assert_eq!(field("key_id"), want.key_id, "{line:?}");
        let request_id = if want.parsed {
            reply.request_id().unwrap()
        } else {
            "-"
        };
        assert_eq!(field("kms_request_id"), request_id, "{line:?}");
        let outcome = if reply.status.is_success() {
            "ok"
        } else {
            "error"
        };
        assert_eq!(field("outcome"), outcome, "{line:?}");
        assert_eq!(field("status"), reply.status.as_u16(), "{line:?}");
        let error_name = reply.error_name().map_or("-", E::as_str);
        assert_eq!(field("error_name"), error_name, "{line:?}");
        assert!(field("latency_us").is_u64(), "{line:?}");
        if want.parsed {
            assert_ne!(field("kms_operation"), "-", "{line:?}");
            if want.key_id != "-" {
                assert_eq!(field("principal"), PRINCIPAL, "{line:?}");
            }
        }
        if reply.status == StatusCode::OK && want.operation != "Ping" {
            assert_ne!(field("access_key_id"), "-", "{line:?}");
        }
    }

    let text = logs.text();
    assert!(
        text.contains(FAULT_DETAIL),
        "the cause is logged server-side"
    );
    let mut forbidden = vec![
        String::from_utf8(MARKER.to_vec()).unwrap(),
        String::from_utf8(AAD_MARKER.to_vec()).unwrap(),
        b64(MARKER),
        b64(AAD_MARKER),
        hex::encode(MARKER),
        hex::encode(AAD_MARKER),
        "Signature=".to_owned(),
    ];
    for encoded in &forbidden[2..4] {
        assert!(
            encoded.bytes().all(|b| b.is_ascii_alphanumeric()),
            "{encoded}"
        );
    }
    forbidden.extend(CONFIGURED_SECRETS.map(str::to_owned));
    forbidden.push(UNKNOWN.secret.to_owned());
    for needle in &forbidden {
        assert!(!text.contains(needle.as_str()), "the logs contain {needle}");
    }
}
