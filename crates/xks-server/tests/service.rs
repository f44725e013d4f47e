//! In-process service tests of the XKS proxy.
//!
//! Every request goes through `App::handle`, built by `Proxy::with_key_manager`
//! from a TOML configuration (see `common`). The tests cover each row of the
//! conformance checklist (fact sheet §14) that applies without a network: not the
//! transport rows 1-6 (except 4), not mTLS (36-41), not secondary authorization or
//! throttling (125-128), which are not implemented. Row numbers are in each test's
//! comment. The harness checks every response for the spec's format: JSON content
//! type and body (row 4), the error body rules (rows 121-124) and `Allow` on 405.
//!
//! Beyond the checklist: request body limits, the key manager deadline, the deep
//! health check's outcomes and the mapping of backend failures. The request log
//! (rows 129, 130) is tested in `logs.rs`, its own test binary.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH};
use http::{HeaderValue, Method, Request, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use xks_keymanager::ErrorKind;
use xks_protocol::{ErrorName as E, HealthStatus, OperationKind};
use xks_server::{Config, Proxy};

use common::{
    A1, A2, ABSENT, B1, Ciphertext, DECRYPT_ONLY, DISABLED, ENCRYPT_ONLY, Harness, HarnessBuilder,
    KEY_1, KEY_2, KMS_KEY_ARN, NO_USAGE, Reply, ScriptedKm, StreamBody, TENANT_A, TENANT_B,
    UNKNOWN, long_key_id, node, pattern,
};

const AAD: &[u8] = b"project=nile,department=marketing";

/// Every API, in the spec's order.
const APIS: [OperationKind; 4] = OperationKind::ALL;

// ===========================================================================
// Routing and methods
// ===========================================================================

/// Rows 7-10: GET on each API URI is 405 with `Allow: POST` and a JSON body, on
/// both tenants, signed or not.
#[tokio::test]
async fn get_on_api_uris_is_405() {
    let h = Harness::new().await;
    for kind in APIS {
        for tenant in [&TENANT_A, &TENANT_B] {
            for signed in [true, false] {
                let call = h
                    .valid(kind, KEY_2)
                    .await
                    .tenant(tenant)
                    .method(Method::GET);
                let call = if signed { call } else { call.unsigned() };
                let r = call.send().await;
                assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{kind}");
            }
        }
    }
}

/// Row 11: PUT, DELETE, PATCH and HEAD on an API URI are 405 too (the spec also
/// tolerates 404).
#[tokio::test]
async fn other_methods_on_api_uris_are_405() {
    let h = Harness::new().await;
    for method in [Method::PUT, Method::DELETE, Method::PATCH, Method::HEAD] {
        for kind in APIS {
            let r = h
                .valid(kind, KEY_1)
                .await
                .method(method.clone())
                .send()
                .await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {kind}");
        }
    }
}

/// Row 12: a correctly signed POST under an unknown prefix is 404
/// InvalidUriPathException, for every API and whichever tenant's credential signs.
#[tokio::test]
async fn unknown_prefix_is_invalid_uri_path() {
    let h = Harness::new().await;
    let paths = [
        "/tenant-a/invalid/kms/xks/v1/health",
        "/invalid/kms/xks/v1/health",
        "/tenant-z/kms/xks/v1/keys/key-1/metadata",
        "/tenant-a/invalid/kms/xks/v1/keys/key-1/encrypt",
        "/tenant-A/kms/xks/v1/keys/key-1/decrypt",
    ];
    for path in paths {
        for tenant in [&TENANT_A, &TENANT_B] {
            let r = h.health().tenant(tenant).path(path).send().await;
            r.expect_error(E::InvalidUriPathException);
        }
    }
}

/// Rows 13-16: wrong version, unknown operation, no operation, extra segments,
/// and other paths that are not XKS API paths: 404 InvalidUriPathException.
#[tokio::test]
async fn malformed_api_paths_are_invalid_uri_path() {
    let h = Harness::new().await;
    let paths = [
        "/tenant-a/kms/xks/v2/health",                   // 13
        "/tenant-a/kms/xks/v2/keys/key-1/encrypt",       // 13
        "/tenant-a/kms/xks/v1/keys/key-1/sign",          // 14
        "/tenant-a/kms/xks/v1/keys/key-1/Encrypt",       // 14
        "/tenant-a/kms/xks/v1/keys/key-1",               // 15
        "/tenant-a/kms/xks/v1/keys/key-1/encrypt/extra", // 16
        "/tenant-a/kms/xks/v1/health/extra",             // 16
        "/tenant-a/kms/xks/v1/health/",                  // trailing slash
        "/tenant-a/kms/xks/v1/keys//encrypt",            // empty key id
        "/tenant-a//kms/xks/v1/health",                  // empty segment
        "/tenant-a/kms/xks/v1/keys/key%2D1/encrypt",     // percent-encoded
        "/tenant-a/kms/xks/v1",                          // no API
        "/",
    ];
    for path in paths {
        let r = h.encrypt(KEY_1).path(path).send().await;
        r.expect_error(E::InvalidUriPathException);
    }
}

/// Row 17: the load-balancer check answers GET (and HEAD) without SigV4; other
/// methods are 405 with an `Allow` header.
#[tokio::test]
async fn ping_answers_get_without_sigv4() {
    let h = Harness::new().await;
    for method in [Method::GET, Method::HEAD] {
        let r = h.request(method, "/ping").send().await;
        assert_eq!(r.ok(), &json!({"status": "ok"}));
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let r = h.request(method.clone(), "/ping").send().await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        let allow: HashSet<&str> = r.headers[ALLOW]
            .to_str()
            .unwrap()
            .split(',')
            .map(str::trim)
            .collect();
        assert_eq!(allow, HashSet::from(["GET", "HEAD"]), "{method}");
    }
    // Only the configured path is the ping path.
    let r = h.request(Method::GET, "/tenant-a/ping").send().await;
    r.expect_error(E::InvalidUriPathException);
}

/// Rows 65, 66: a 129-character key id and one with an illegal character are not
/// routed (404 InvalidUriPathException, which the spec tolerates); a 128-character
/// id of allowed characters is routed: 200 when it exists, KeyNotFoundException
/// when it does not.
#[tokio::test]
async fn key_id_length_and_characters() {
    let h = Harness::new().await;
    let long = long_key_id();
    assert_eq!(long.len(), 128);
    for bad in [format!("{long}z"), "key@1".to_owned(), "key~1".to_owned()] {
        let path = format!("/tenant-a/kms/xks/v1/keys/{bad}/metadata");
        let r = h.metadata(KEY_1).path(&path).send().await;
        r.expect_error(E::InvalidUriPathException);
    }

    let r = h.metadata(&long).send().await;
    assert_eq!(r.ok()["keyStatus"], "ENABLED");
    let ct = h.encrypt(&long).aad(AAD).send().await.ciphertext();
    assert_eq!(
        h.decrypt(&long, &ct).send().await.plaintext(),
        b"Hello World!"
    );

    let absent = format!("{}y", &long[..127]);
    h.metadata(&absent)
        .send()
        .await
        .expect_error(E::KeyNotFoundException);
}

// ===========================================================================
// SigV4 authentication (rows 18-35), each on health, metadata, encrypt, decrypt
// ===========================================================================

/// Row 18: an access key id no tenant has.
#[tokio::test]
async fn unknown_access_key_id_is_401() {
    let h = Harness::new().await;
    for kind in APIS {
        let r = h.valid(kind, KEY_1).await.cred(UNKNOWN).send().await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

/// Row 19: a configured access key id signed with the wrong secret.
#[tokio::test]
async fn wrong_secret_is_401() {
    let h = Harness::new().await;
    let wrong = common::Cred {
        access_key_id: A1.access_key_id,
        secret: UNKNOWN.secret,
    };
    for kind in APIS {
        let r = h.valid(kind, KEY_1).await.cred(wrong).send().await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

/// Rows 20, 21: no `Authorization` header, or a malformed one.
#[tokio::test]
async fn missing_or_malformed_authorization_is_401() {
    let h = Harness::new().await;
    type Edit = fn(&str) -> String;
    let edits: [(&str, Edit); 8] = [
        ("garbage", |_| "garbage".to_owned()),
        ("empty", |_| String::new()),
        ("no Signature=", |a| {
            a.split(", Signature=").next().unwrap().to_owned()
        }),
        ("wrong algorithm", |a| {
            a.replacen("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1)
        }),
        ("lower-case algorithm", |a| {
            a.replacen("AWS4-HMAC-SHA256", "aws4-hmac-sha256", 1)
        }),
        ("no Credential=", |a| {
            let (head, rest) = a.split_once(", SignedHeaders=").unwrap();
            let algorithm = head.split(' ').next().unwrap();
            format!("{algorithm} SignedHeaders={rest}")
        }),
        ("short signature", |a| a[..a.len() - 1].to_owned()),
        ("Basic", |_| "Basic dXNlcjpwYXNz".to_owned()),
    ];
    for kind in APIS {
        let r = h.valid(kind, KEY_1).await.unsigned().send().await;
        r.expect_error(E::AuthenticationFailedException);
        for (what, edit) in edits {
            let r = h.valid(kind, KEY_1).await.authorization(edit).send().await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{kind}: {what}");
            r.expect_error(E::AuthenticationFailedException);
        }
    }
}

/// Rows 22, 23: the body changed by one byte after signing; the path changed
/// after signing (another key id under the same prefix).
#[tokio::test]
async fn changes_after_signing_are_401() {
    let h = Harness::new().await;
    for kind in APIS {
        let r = h
            .valid(kind, KEY_1)
            .await
            .tamper(|request| {
                let body = request.body_mut();
                let at = find(body, b"\"req-") + 1;
                body[at] = b'R';
            })
            .send()
            .await;
        r.expect_error(E::AuthenticationFailedException);
    }
    for kind in [
        OperationKind::GetKeyMetadata,
        OperationKind::Encrypt,
        OperationKind::Decrypt,
    ] {
        let r = h
            .valid(kind, KEY_1)
            .await
            .tamper(|request| {
                let path = request.uri().path().replace("/key-1/", "/key-2/");
                *request.uri_mut() = path.parse().unwrap();
            })
            .send()
            .await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{} not found", String::from_utf8_lossy(needle)))
}

/// Rows 24, 29: signed for service `kms`, or with a scope date that is not the
/// `X-Amz-Date` day. The reference signer that makes them is first shown to
/// produce signatures the proxy accepts.
#[tokio::test]
async fn wrong_service_and_scope_date_are_401() {
    let h = Harness::new().await;
    for kind in APIS {
        let r = h
            .valid(kind, KEY_1)
            .await
            .service("kms-xks-proxy")
            .send()
            .await;
        r.ok();
        let r = h.valid(kind, KEY_1).await.service("kms").send().await;
        r.expect_error(E::AuthenticationFailedException);
        let r = h.valid(kind, KEY_1).await.scope_days_back(1).send().await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

/// Rows 25-27: `X-Amz-Date` 10 minutes in the past or future, with a signature
/// valid for that time, is 401; 2 minutes either way passes.
#[tokio::test]
async fn clock_skew() {
    let h = Harness::new().await;
    for kind in APIS {
        for secs in [-600, 600] {
            let r = h.valid(kind, KEY_1).await.skew(secs).send().await;
            r.expect_error(E::AuthenticationFailedException);
        }
        for secs in [-120, 120] {
            h.valid(kind, KEY_1).await.skew(secs).send().await.ok();
        }
    }
}

/// Row 28: no `X-Amz-Date` header.
#[tokio::test]
async fn missing_date_is_401() {
    let h = Harness::new().await;
    for kind in APIS {
        let r = h
            .valid(kind, KEY_1)
            .await
            .tamper(|request| {
                request.headers_mut().remove("x-amz-date");
            })
            .send()
            .await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

/// Rows 30, 31: KMS-style (`host;x-amz-date`) and curl-style
/// (`content-type;host;x-amz-date`) signatures are accepted on both tenants, and
/// so is a request arriving as over HTTP/2 (authority in the URI, no `Host`).
#[tokio::test]
async fn kms_and_curl_style_signatures_are_accepted() {
    let h = Harness::new().await;
    for tenant in [&TENANT_A, &TENANT_B] {
        for kind in APIS {
            h.valid(kind, KEY_2).await.tenant(tenant).send().await.ok();
            let r = h.valid(kind, KEY_2).await.tenant(tenant).curl_style();
            r.send().await.ok();
            h.valid(kind, KEY_2)
                .await
                .tenant(tenant)
                .h2()
                .send()
                .await
                .ok();
        }
    }
    // With curl style the content type is signed: changing it breaks the signature.
    let r = h
        .encrypt(KEY_1)
        .curl_style()
        .tamper(|request| {
            let value = HeaderValue::from_static("text/plain");
            request.headers_mut().insert("content-type", value);
        })
        .send()
        .await;
    r.expect_error(E::AuthenticationFailedException);
}

/// Row 32: tenant A accepts any region; tenant B pins eu-west-1 and answers 401
/// for any other.
#[tokio::test]
async fn region_policy_per_tenant() {
    let h = Harness::new().await;
    for kind in APIS {
        for region in ["us-east-1", "ap-southeast-2", "eu-central-1"] {
            h.valid(kind, KEY_2).await.region(region).send().await.ok();
        }
        let b = h.valid(kind, KEY_2).await.tenant(&TENANT_B);
        b.region("eu-west-1").send().await.ok();
        for region in ["us-east-1", "eu-west-2"] {
            let b = h.valid(kind, KEY_2).await.tenant(&TENANT_B);
            let r = b.region(region).send().await;
            r.expect_error(E::AuthenticationFailedException);
        }
    }
}

/// Row 33: one tenant's credential does not work under another tenant's prefix.
#[tokio::test]
async fn credentials_do_not_cross_tenants() {
    let h = Harness::new().await;
    for kind in APIS {
        for cred in [A1, A2] {
            let r = h.valid(kind, KEY_2).await.tenant(&TENANT_B).cred(cred);
            r.send()
                .await
                .expect_error(E::AuthenticationFailedException);
        }
        let r = h.valid(kind, KEY_2).await.cred(B1).send().await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

/// Row 34: both of tenant A's credentials (one inline, one from the environment)
/// are live at once.
#[tokio::test]
async fn both_rotation_credentials_are_accepted() {
    let h = Harness::new().await;
    for kind in APIS {
        for cred in [A1, A2] {
            h.valid(kind, KEY_1).await.cred(cred).send().await.ok();
        }
    }
}

/// Row 34 and §8.4 (rotation without a restart): `xks_server::reload` adds a new
/// credential next to the old one, then removes the old one, on the running
/// proxy; the other tenant is untouched.
#[tokio::test]
async fn credentials_rotate_without_a_restart() {
    let h = Harness::builder().tenant_a_credentials(&[A1]).build().await;
    let env = HarnessBuilder::env();
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let every_api = || {
        [
            h.health(),
            h.metadata(KEY_1),
            h.encrypt(KEY_1),
            h.decrypt(KEY_1, &ct),
        ]
    };
    let r = h.encrypt(KEY_1).cred(UNKNOWN).send().await;
    r.expect_error(E::AuthenticationFailedException);

    for (creds, accepted, refused) in [
        (&[A1, UNKNOWN][..], &[A1, UNKNOWN][..], &[][..]),
        (&[UNKNOWN][..], &[UNKNOWN][..], &[A1][..]),
    ] {
        let toml = Harness::builder().tenant_a_credentials(creds).toml();
        let config = Config::from_toml(&toml).unwrap();
        let report = xks_server::reload(&h.app, &config, &env).await.unwrap();
        assert!(report.needs_restart.is_empty(), "{report:?}");
        for cred in accepted {
            for call in every_api() {
                call.cred(*cred).send().await.ok();
            }
        }
        for cred in refused {
            for call in every_api() {
                let r = call.cred(*cred).send().await;
                r.expect_error(E::AuthenticationFailedException);
            }
        }
        h.health().tenant(&TENANT_B).send().await.ok();
    }
}

/// Row 35: an unauthenticated request never reveals whether a key exists: an
/// unknown key id, or a key outside the tenant's list, with a bad or missing
/// signature is 401, not 404.
#[tokio::test]
async fn unauthenticated_requests_do_not_reveal_keys() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    for (tenant, key) in [(&TENANT_A, ABSENT), (&TENANT_B, ABSENT), (&TENANT_B, KEY_1)] {
        let calls = [h.metadata(key), h.encrypt(key), h.decrypt(key, &ct)];
        for call in calls {
            let r = call.tenant(tenant).cred(UNKNOWN).send().await;
            r.expect_error(E::AuthenticationFailedException);
        }
        let r = h.encrypt(key).tenant(tenant).unsigned().send().await;
        r.expect_error(E::AuthenticationFailedException);
    }
}

// ===========================================================================
// requestMetadata handling (rows 42-54)
// ===========================================================================

/// Rows 42, 43, 77, 96: unknown kmsOperation values and non-UUID kmsRequestIds
/// are accepted by every API, as are all the kmsOperation values KMS sends.
#[tokio::test]
async fn kms_operation_and_request_id_are_not_validated() {
    let h = Harness::new().await;
    for kind in APIS {
        for operation in ["BulkEncrypt", "FutureOp", ""] {
            let r = h.valid(kind, KEY_1).await.kms_operation(operation);
            r.send().await.ok();
        }
        for id in ["not-a-uuid!!", "", "\u{00e9}t\u{00e9}"] {
            let r = h.valid(kind, KEY_1).await.md("kmsRequestId", id);
            r.send().await.ok();
        }
    }
    for operation in [
        "Encrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
    ] {
        let r = h.encrypt(KEY_1).kms_operation(operation).send().await;
        let ct = r.ciphertext();
        for operation in ["Decrypt", "ReEncrypt"] {
            let r = h.decrypt(KEY_1, &ct).kms_operation(operation).send().await;
            assert_eq!(r.plaintext(), b"Hello World!");
        }
    }
}

/// Rows 44, 45: 2048-character ARNs, and unknown fields in requestMetadata and in
/// the body, are accepted.
#[tokio::test]
async fn long_arns_and_unknown_fields_are_accepted() {
    let h = Harness::new().await;
    let principal = format!("arn:aws:iam::111122223333:user/{}", "p".repeat(2017));
    let key_arn = format!(
        "arn:aws:kms:us-east-1:111122223333:key/{}",
        "k".repeat(2009)
    );
    assert_eq!((principal.len(), key_arn.len()), (2048, 2048));
    for kind in APIS {
        let r = h.valid(kind, KEY_1).await;
        let r = if kind == OperationKind::Health {
            r
        } else {
            r.md("awsPrincipalArn", principal.as_str())
        };
        let r = if matches!(kind, OperationKind::Encrypt | OperationKind::Decrypt) {
            r.md("kmsKeyArn", key_arn.as_str())
        } else {
            r
        };
        r.send().await.ok();

        h.valid(kind, KEY_1)
            .await
            .md("SourceIdentity", "alice")
            .md("kmsRecipientAttestationPCR0", "00ff")
            .md("kmsRecipientAttestationImageSha384", "ab")
            .md("principalTags", json!({"team": ["a", "b"]}))
            .set("futureField", json!({"nested": [1, 2.5, null, true]}))
            .set("anotherOne", 7)
            .send()
            .await
            .ok();
    }
}

/// Rows 46, 47: GetKeyMetadata with the legacy kmsKeyArn and kmsViaService; the
/// optional awsSourceVpc and awsSourceVpce present or absent, on every key API.
#[tokio::test]
async fn legacy_and_optional_metadata_fields_are_accepted() {
    let h = Harness::new().await;
    h.metadata(KEY_1)
        .md("kmsKeyArn", KMS_KEY_ARN)
        .md("kmsViaService", "ebs")
        .kms_operation("DescribeKey")
        .send()
        .await
        .ok();
    for kind in [
        OperationKind::GetKeyMetadata,
        OperationKind::Encrypt,
        OperationKind::Decrypt,
    ] {
        h.valid(kind, KEY_1)
            .await
            .md("awsSourceVpc", "vpc-0123456789abcdef0")
            .md("awsSourceVpce", "vpce-0123456789abcdef0")
            .send()
            .await
            .ok();
        let r = h.valid(kind, KEY_1).await.md("kmsViaService", "ebs");
        r.send().await.ok();
    }
}

/// Rows 48, 49, 51: `{}` and an empty requestMetadata are 400 ValidationException
/// on every API, health included, as the official test client expects; so is a
/// missing kmsRequestId or kmsOperation.
#[tokio::test]
async fn empty_bodies_and_metadata_are_validation_errors() {
    let h = Harness::new().await;
    for kind in APIS {
        for body in [json!({}), json!({"requestMetadata": {}})] {
            let r = h.valid(kind, KEY_1).await.raw_body(body.to_string());
            r.send().await.expect_error(E::ValidationException);
        }
        for field in ["kmsRequestId", "kmsOperation"] {
            let r = h.valid(kind, KEY_1).await.md_remove(field).send().await;
            r.expect_error(E::ValidationException);
        }
        let r = h.valid(kind, KEY_1).await.set("requestMetadata", "x");
        r.send().await.expect_error(E::ValidationException);
    }
    let r = h.metadata(KEY_1).md_remove("awsPrincipalArn").send().await;
    r.expect_error(E::ValidationException);
}

/// Row 50: Encrypt or Decrypt whose requestMetadata lacks kmsKeyArn or
/// awsPrincipalArn is 400 ValidationException.
#[tokio::test]
async fn missing_required_key_metadata_is_a_validation_error() {
    let h = Harness::new().await;
    for kind in [OperationKind::Encrypt, OperationKind::Decrypt] {
        for field in ["kmsKeyArn", "awsPrincipalArn"] {
            let r = h.valid(kind, KEY_1).await.md_remove(field).send().await;
            r.expect_error(E::ValidationException);
        }
    }
}

/// Row 52: a body that is not JSON, or not a JSON object, is 400
/// ValidationException; so are duplicate keys.
#[tokio::test]
async fn non_json_bodies_are_validation_errors() {
    let h = Harness::new().await;
    let bodies: [&[u8]; 6] = [
        b"abc",
        b"",
        b"[]",
        b"\"x\"",
        b"{\"requestMetadata\":",
        b"\xff",
    ];
    for kind in [
        OperationKind::GetKeyMetadata,
        OperationKind::Encrypt,
        OperationKind::Decrypt,
    ] {
        for body in bodies {
            let r = h.valid(kind, KEY_1).await.raw_body(body).send().await;
            r.expect_error(E::ValidationException);
        }
    }
    let duplicate = br#"{"requestMetadata":{"awsPrincipalArn":"a","kmsOperation":"CreateKey","kmsRequestId":"1","kmsRequestId":"2"}}"#;
    let r = h.metadata(KEY_1).raw_body(&duplicate[..]).send().await;
    r.expect_error(E::ValidationException);
}

/// Row 53: the request Content-Type is not checked: requests without one, with a
/// charset parameter (signed, curl style) or with another type are processed.
#[tokio::test]
async fn content_type_is_not_required() {
    let h = Harness::new().await;
    for kind in APIS {
        h.valid(kind, KEY_1)
            .await
            .content_type(None)
            .send()
            .await
            .ok();
        h.valid(kind, KEY_1)
            .await
            .content_type(Some("application/json; charset=utf-8"))
            .curl_style()
            .send()
            .await
            .ok();
        let r = h.valid(kind, KEY_1).await.content_type(Some("text/plain"));
        r.send().await.ok();
    }
}

/// Row 54: optional fields sent as `null` count as absent.
#[tokio::test]
async fn null_optional_fields_are_absent() {
    let h = Harness::new().await;
    let r = h
        .encrypt(KEY_1)
        .set("additionalAuthenticatedData", Value::Null)
        .set("ciphertextDataIntegrityValueAlgorithm", Value::Null)
        .md("awsSourceVpc", Value::Null)
        .md("kmsViaService", Value::Null)
        .send()
        .await;
    let ct = r.ciphertext();
    assert_eq!((&ct.aad, &ct.cdiv), (&None, &None));
    let r = h
        .decrypt(KEY_1, &ct)
        .set("additionalAuthenticatedData", Value::Null)
        .send()
        .await;
    assert_eq!(r.plaintext(), b"Hello World!");
    let r = h
        .metadata(KEY_1)
        .md("awsSourceVpce", Value::Null)
        .send()
        .await;
    r.ok();
}

// ===========================================================================
// GetHealthStatus (rows 55-62)
// ===========================================================================

/// Rows 55-59: every kmsOperation KMS sends to health gets 200 with all five
/// fields: an integer fleet size of at least 1 and 1 to 10 fleet entries.
#[tokio::test]
async fn health_answers_with_a_complete_response() {
    let h = Harness::new().await;
    for operation in [
        "KmsHealthCheck",
        "CreateCustomKeyStore",
        "ConnectCustomKeyStore",
        "UpdateCustomKeyStore",
    ] {
        let r = h.health().kms_operation(operation).send().await;
        let body = r.ok().as_object().unwrap();
        let mut fields: Vec<&str> = body.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "ekmFleetDetails",
                "ekmVendor",
                "xksProxyFleetSize",
                "xksProxyModel",
                "xksProxyVendor"
            ]
        );
        assert!(body["xksProxyFleetSize"].as_u64().is_some_and(|n| n >= 1));
        for field in ["xksProxyVendor", "xksProxyModel", "ekmVendor"] {
            assert!(
                body[field].as_str().is_some_and(|s| !s.is_empty()),
                "{field}"
            );
        }
        let fleet = body["ekmFleetDetails"].as_array().unwrap();
        assert!((1..=10).contains(&fleet.len()));
        for entry in fleet {
            assert!(entry["id"].is_string() && entry["model"].is_string());
            let status = entry["healthStatus"].as_str().unwrap();
            assert!(["ACTIVE", "DEGRADED", "UNAVAILABLE"].contains(&status));
        }
    }
}

/// Row 60 (in part; there is no secondary authorization yet): health needs no
/// key and ignores the tenant's key list, and a key backend that refuses every
/// key call does not affect it.
#[tokio::test]
async fn health_needs_no_key_and_ignores_key_lists() {
    let h = Harness::new().await;
    h.health().tenant(&TENANT_B).send().await.ok();
    h.km.fail_calls(ErrorKind::KeyNotFound);
    h.health().send().await.ok();
    h.health().tenant(&TENANT_B).send().await.ok();
}

/// Every node UNAVAILABLE: 500 InternalException (the spec leaves the choice
/// between this and 200 with UNAVAILABLE entries open, §6).
#[tokio::test]
async fn health_with_every_node_unavailable_is_internal_exception() {
    let h = Harness::new().await;
    h.km.report_health(vec![
        node("hsm-1", HealthStatus::Unavailable),
        node("hsm-2", HealthStatus::Unavailable),
    ]);
    h.app.health().check_now().await;
    h.health().send().await.expect_error(E::InternalException);
}

/// DEGRADED and ACTIVE: 200 with both entries as reported; more than 10 nodes
/// are cut to 10 entries.
#[tokio::test]
async fn health_reports_each_node() {
    let h = Harness::new().await;
    h.km.report_health(vec![
        node("hsm-1", HealthStatus::Degraded),
        node("hsm-2", HealthStatus::Active),
    ]);
    h.app.health().check_now().await;
    let r = h.health().send().await;
    assert_eq!(
        r.ok()["ekmFleetDetails"],
        json!([
            {"id": "hsm-1", "model": "test HSM hsm-1", "healthStatus": "DEGRADED"},
            {"id": "hsm-2", "model": "test HSM hsm-2", "healthStatus": "ACTIVE"},
        ])
    );
    assert_eq!(r.ok()["ekmVendor"], "xks-toolkit service tests");

    let many = (0..11).map(|i| node(&format!("hsm-{i}"), HealthStatus::Degraded));
    h.km.report_health(many.collect());
    h.app.health().check_now().await;
    let r = h.health().send().await;
    assert_eq!(r.ok()["ekmFleetDetails"].as_array().unwrap().len(), 10);
}

/// Row 62: an outage shows at the next scheduled deep check (interval 10 s, well
/// under the 60 s cache limit), and so does the recovery. Paused tokio time.
#[tokio::test(start_paused = true)]
async fn health_reflects_an_outage_at_the_next_scheduled_check() {
    let h = Harness::builder()
        .health(r#"interval = "10s""#)
        .build()
        .await;
    let schedule = h.app.health().spawn();
    h.health().send().await.ok();

    h.km.report_health(vec![node("hsm-1", HealthStatus::Unavailable)]);
    tokio::time::sleep(Duration::from_secs(11)).await;
    h.health().send().await.expect_error(E::InternalException);

    h.km.report_health(vec![node("hsm-1", HealthStatus::Active)]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    h.health().send().await.ok();
    schedule.abort();
}

/// A cached result is never served older than 60 s: when the schedule stops (a
/// stuck check, a dead task), health turns into 503 DependencyTimeoutException at
/// 60 s, not later. Paused tokio time.
#[tokio::test(start_paused = true)]
async fn health_is_never_older_than_a_minute() {
    let h = Harness::builder().build().await;
    h.health().send().await.ok();
    tokio::time::advance(Duration::from_secs(59)).await;
    h.health().send().await.ok();
    tokio::time::advance(Duration::from_secs(2)).await;
    h.health()
        .send()
        .await
        .expect_error(E::DependencyTimeoutException);
    h.app.health().check_now().await;
    h.health().send().await.ok();
}

/// A deep check that outlives `health.timeout` reports the backend unavailable:
/// 500 InternalException. Paused tokio time.
#[tokio::test(start_paused = true)]
async fn health_check_timeout_reports_unavailable() {
    let h = Harness::builder().health(r#"timeout = "2s""#).build().await;
    h.km.delay_health(Duration::from_secs(30));
    let started = tokio::time::Instant::now();
    h.app.health().check_now().await;
    assert!(started.elapsed() < Duration::from_secs(30));
    h.health().send().await.expect_error(E::InternalException);
}

/// With no deep check completed (the monitor has never run), health is 503
/// DependencyTimeoutException rather than a guess; one check fixes it.
#[tokio::test]
async fn health_without_a_completed_check_is_dependency_timeout() {
    let h = Harness::without_health_check();
    h.health()
        .send()
        .await
        .expect_error(E::DependencyTimeoutException);
    h.app.health().check_now().await;
    h.health().send().await.ok();
}

// ===========================================================================
// GetKeyMetadata (rows 63-68)
// ===========================================================================

/// Row 63: an enabled encrypt+decrypt key.
#[tokio::test]
async fn metadata_of_an_enabled_key() {
    let h = Harness::new().await;
    for (tenant, key) in [(&TENANT_A, KEY_1), (&TENANT_B, KEY_2)] {
        let r = h.metadata(key).tenant(tenant).send().await;
        let body = r.ok();
        assert_eq!(body["keySpec"], "AES_256");
        assert_eq!(body["keyStatus"], "ENABLED");
        let usage = body["keyUsage"].as_array().unwrap();
        assert!(usage.len() <= 10);
        assert!(usage.contains(&json!("ENCRYPT")) && usage.contains(&json!("DECRYPT")));
    }
}

/// Row 64: a well-formed key id that does not exist is 404 KeyNotFoundException;
/// so is an existing key outside tenant B's key list.
#[tokio::test]
async fn metadata_of_an_unknown_key_is_key_not_found() {
    let h = Harness::new().await;
    h.metadata(ABSENT)
        .send()
        .await
        .expect_error(E::KeyNotFoundException);
    for key in [ABSENT, KEY_1, ENCRYPT_ONLY] {
        let r = h.metadata(key).tenant(&TENANT_B).send().await;
        r.expect_error(E::KeyNotFoundException);
    }
}

/// Rows 67, 68: a disabled key is 200 with DISABLED; single-usage keys report only
/// their usage; a key with no usage reports none.
#[tokio::test]
async fn metadata_of_disabled_and_restricted_keys() {
    let h = Harness::new().await;
    let cases = [
        (DISABLED, json!(["ENCRYPT", "DECRYPT"]), "DISABLED"),
        (ENCRYPT_ONLY, json!(["ENCRYPT"]), "ENABLED"),
        (DECRYPT_ONLY, json!(["DECRYPT"]), "ENABLED"),
        (NO_USAGE, json!([]), "ENABLED"),
    ];
    for (key, usage, status) in cases {
        let r = h.metadata(key).send().await;
        assert_eq!(r.ok()["keyUsage"], usage, "{key}");
        assert_eq!(r.ok()["keyStatus"], status, "{key}");
        assert_eq!(r.ok()["keySpec"], "AES_256", "{key}");
    }
}

// ===========================================================================
// Encrypt (rows 69-91)
// ===========================================================================

/// Rows 69, 73, 75: `Hello World!` without AAD: 12-byte ciphertext, 12- or
/// 16-byte IV, 16-byte tag, metadata of at most 20 bytes, no CDIV unasked, all
/// strict standard Base64 (checked by the harness).
#[tokio::test]
async fn encrypt_hello_world() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    assert_eq!(ct.ciphertext.len(), 12);
    assert!([12, 16].contains(&ct.iv.len()));
    assert_eq!(ct.tag.len(), 16);
    assert!(ct.metadata.as_ref().is_none_or(|m| m.len() <= 20));
    assert_eq!(ct.cdiv, None);
}

/// Row 70: ciphertext length equals plaintext length, including the empty
/// plaintext the spec does not address; each round-trips.
#[tokio::test]
async fn ciphertext_length_equals_plaintext_length() {
    let h = Harness::new().await;
    for len in [0, 1, 15, 16, 17, 1000, 4300] {
        let plaintext = pattern(len, 3);
        let ct = h
            .encrypt(KEY_1)
            .plaintext(&plaintext)
            .send()
            .await
            .ciphertext();
        assert_eq!(ct.ciphertext.len(), len);
        assert_eq!(h.decrypt(KEY_1, &ct).send().await.plaintext(), plaintext);
    }
}

/// Rows 71, 72, 94: 4300- and 4096-byte plaintexts with an 8192-byte AAD round-trip,
/// with and without the CDIV.
#[tokio::test]
async fn largest_required_sizes_round_trip() {
    let h = Harness::new().await;
    let aad = pattern(8192, 11);
    for len in [4300, 4096] {
        let plaintext = pattern(len, 5);
        for with_cdiv in [false, true] {
            let call = h.encrypt(KEY_1).plaintext(&plaintext).aad(&aad);
            let call = if with_cdiv { call.cdiv() } else { call };
            let ct = call.send().await.ciphertext();
            assert_eq!(ct.cdiv.is_some(), with_cdiv);
            assert_eq!(h.decrypt(KEY_1, &ct).send().await.plaintext(), plaintext);
        }
    }
}

/// Row 74: with `SHA_256` requested, the CDIV is SHA-256 over AAD, metadata, IV,
/// ciphertext and tag, computed here independently; with and without AAD.
#[tokio::test]
async fn cdiv_matches_an_independent_computation() {
    let h = Harness::new().await;
    for aad in [Some(AAD), None, Some(&b""[..])] {
        let call = h.encrypt(KEY_1).cdiv();
        let call = match aad {
            Some(aad) => call.aad(aad),
            None => call,
        };
        let ct = call.send().await.ciphertext();
        let metadata = ct.metadata.clone().unwrap_or_default();
        let aad = aad.unwrap_or_default();
        let mut hash = Sha256::new();
        for part in [aad, &metadata, &ct.iv, &ct.ciphertext, &ct.tag] {
            hash.update(part);
        }
        let expected = hash.finalize().to_vec();
        assert_eq!(ct.cdiv.as_deref(), Some(&expected[..]));
        let protocol = xks_protocol::ciphertext_data_integrity_value(
            aad,
            &metadata,
            &ct.iv,
            &ct.ciphertext,
            &ct.tag,
        );
        assert_eq!(expected, protocol);
        assert_eq!(
            h.decrypt(KEY_1, &ct).send().await.plaintext(),
            b"Hello World!"
        );
    }
}

/// Row 76: 1000 encryptions of one plaintext under one key never repeat an IV.
#[tokio::test]
async fn ivs_do_not_repeat() {
    let h = Harness::new().await;
    let mut ivs = HashSet::new();
    for _ in 0..1000 {
        let ct = h.encrypt(KEY_1).send().await.ciphertext();
        assert!(ivs.insert(ct.iv), "IV repeated");
    }
}

/// Rows 79-84: a missing plaintext or algorithm, an unknown algorithm or CDIV
/// algorithm, and bad Base64 (wrong alphabet, bad or missing padding, whitespace)
/// in the plaintext or AAD are 400 ValidationException; wrong JSON types too.
#[tokio::test]
async fn encrypt_input_validation() {
    let h = Harness::new().await;
    // Wrong alphabet, URL-safe alphabet, missing padding, non-zero trailing bits,
    // whitespace, padding only.
    let bad_base64 = [
        "@@@",
        "SGVsbG8-V29ybGQ_",
        "SGVsbG8",
        "SGVsbG9=",
        "SGVs bG8h",
        "====",
    ];
    let mut calls = vec![
        h.encrypt(KEY_1).remove("plaintext"),                   // 79
        h.encrypt(KEY_1).remove("encryptionAlgorithm"),         // 80
        h.encrypt(KEY_1).set("encryptionAlgorithm", "AES_CBC"), // 81
        h.encrypt(KEY_1).set("encryptionAlgorithm", "AES_GCM_256"),
        h.encrypt(KEY_1).set("encryptionAlgorithm", "aes_gcm"),
        h.encrypt(KEY_1)
            .set("ciphertextDataIntegrityValueAlgorithm", "SHA_512"), // 82
        h.encrypt(KEY_1).set("plaintext", 12),
        h.encrypt(KEY_1).set("plaintext", json!(["SGVsbG8h"])),
        h.encrypt(KEY_1).set("additionalAuthenticatedData", true),
        h.encrypt(KEY_1).remove("requestMetadata"),
    ];
    for bad in bad_base64 {
        calls.push(h.encrypt(KEY_1).set("plaintext", bad)); // 83
        calls.push(h.encrypt(KEY_1).set("additionalAuthenticatedData", bad)); // 84
    }
    for call in calls {
        call.send().await.expect_error(E::ValidationException);
    }
}

/// Rows 85, 86: a plaintext or AAD above this proxy's limits (4300 and 8192 bytes
/// by default) is 501 UnsupportedOperationException, also when the whole body is
/// over the body limit; an AAD of 65,536 bytes is never accepted.
#[tokio::test]
async fn encrypt_over_the_limits_is_unsupported() {
    let h = Harness::new().await;
    let calls = [
        h.encrypt(KEY_1).plaintext(&pattern(4301, 1)),
        h.encrypt(KEY_1).plaintext(&pattern(64 * 1024, 1)), // 85 (over the body limit)
        h.encrypt(KEY_1).aad(&pattern(8193, 1)),
    ];
    for call in calls {
        call.send()
            .await
            .expect_error(E::UnsupportedOperationException);
    }
    let r = h.encrypt(KEY_1).aad(&pattern(65_536, 1)).send().await; // 86
    r.expect_one_of(&[E::UnsupportedOperationException, E::ValidationException]);
}

/// Rows 85, 86 with the limits raised as far as they go: a 64 KiB plaintext with a
/// 65,535-byte AAD round-trips, a 65,536-byte AAD is still refused, and a limit
/// the AAD length prefix cannot encode is a configuration error.
#[tokio::test]
async fn raised_limits_stop_at_the_aad_length_prefix() {
    let h = Harness::builder()
        .limits("max_plaintext_bytes = 65536")
        .limits("max_ciphertext_bytes = 65536")
        .limits("max_aad_bytes = 65535")
        .build()
        .await;
    let plaintext = pattern(65_536, 9);
    let aad = pattern(65_535, 4);
    let ct = h
        .encrypt(KEY_1)
        .plaintext(&plaintext)
        .aad(&aad)
        .cdiv()
        .send()
        .await
        .ciphertext();
    assert_eq!(h.decrypt(KEY_1, &ct).send().await.plaintext(), plaintext);
    let r = h.encrypt(KEY_1).aad(&pattern(65_536, 4)).send().await;
    r.expect_one_of(&[E::UnsupportedOperationException, E::ValidationException]);

    let builder = HarnessBuilder::default().limits("max_aad_bytes = 65536");
    let config = Config::from_toml(&builder.toml()).unwrap();
    let km = std::sync::Arc::new(ScriptedKm::new());
    assert!(
        Proxy::with_key_manager(&config, &HarnessBuilder::env(), km)
            .await
            .is_err()
    );
}

/// Rows 87-91: unknown key, decrypt-only key, key with no usage, encrypt-only key
/// with a CDIV (whose verification decrypt it cannot do), disabled key.
#[tokio::test]
async fn encrypt_key_errors() {
    let h = Harness::new().await;
    let cases = [
        (h.encrypt(ABSENT), E::KeyNotFoundException), // 87
        (h.encrypt(DECRYPT_ONLY), E::InvalidKeyUsageException), // 88
        (h.encrypt(DECRYPT_ONLY).cdiv(), E::InvalidKeyUsageException),
        (h.encrypt(NO_USAGE), E::InvalidKeyUsageException), // 89
        (h.encrypt(ENCRYPT_ONLY).cdiv(), E::InvalidKeyUsageException), // 90
        (h.encrypt(DISABLED), E::InvalidStateException),    // 91
        (h.encrypt(DISABLED).cdiv(), E::InvalidStateException),
        (h.encrypt(KEY_1).tenant(&TENANT_B), E::KeyNotFoundException),
    ];
    for (call, name) in cases {
        call.send().await.expect_error(name);
    }
    // Without a CDIV the encrypt-only key encrypts.
    let ct = h.encrypt(ENCRYPT_ONLY).send().await.ciphertext();
    assert_eq!(ct.ciphertext.len(), 12);
}

// ===========================================================================
// Decrypt (rows 92-120)
// ===========================================================================

/// Rows 92, 93, 95: round trips without and with AAD, passing back the returned
/// ciphertextMetadata; tenant B decrypts what tenant A encrypted under its key.
#[tokio::test]
async fn decrypt_round_trips() {
    let h = Harness::new().await;
    for aad in [None, Some(AAD)] {
        let call = h.encrypt(KEY_2).plaintext(b"round trip");
        let call = match aad {
            Some(aad) => call.aad(aad),
            None => call,
        };
        let ct = call.send().await.ciphertext();
        assert!(ct.metadata.is_some(), "this proxy always returns metadata");
        for tenant in [&TENANT_A, &TENANT_B] {
            let r = h.decrypt(KEY_2, &ct).tenant(tenant).send().await;
            assert_eq!(r.plaintext(), b"round trip");
        }
    }
}

/// Rows 97-100: AAD omitted, added, different, or with one bit flipped at decrypt.
#[tokio::test]
async fn aad_tampering_is_invalid_ciphertext() {
    let h = Harness::new().await;
    let with_aad = h.encrypt(KEY_1).aad(AAD).send().await.ciphertext();
    let without_aad = h.encrypt(KEY_1).send().await.ciphertext();
    let mut flipped = AAD.to_vec();
    flipped[0] ^= 0x01;
    let mut last_flipped = AAD.to_vec();
    *last_flipped.last_mut().unwrap() ^= 0x80;
    let calls = [
        h.decrypt(KEY_1, &with_aad).no_aad(), // 97
        h.decrypt(KEY_1, &with_aad).aad(b""),
        h.decrypt(KEY_1, &without_aad).aad(AAD), // 98
        h.decrypt(KEY_1, &with_aad)
            .aad(b"project=blue,department=finance"), // 99
        h.decrypt(KEY_1, &with_aad).aad(&flipped), // 100
        h.decrypt(KEY_1, &with_aad).aad(&last_flipped),
    ];
    for call in calls {
        call.send()
            .await
            .expect_error(E::InvalidCiphertextException);
    }
    // An absent and an empty AAD are the same GCM input (fact sheet §4).
    let r = h.decrypt(KEY_1, &without_aad).aad(b"").send().await;
    assert_eq!(r.plaintext(), b"Hello World!");
}

/// Rows 101-104: one bit flipped in the ciphertext (first and last byte), the tag
/// or the IV; the ciphertext one byte shorter or longer.
#[tokio::test]
async fn ciphertext_tag_and_iv_tampering_is_invalid_ciphertext() {
    let h = Harness::new().await;
    let plaintext = pattern(100, 7);
    let ct = h
        .encrypt(KEY_1)
        .plaintext(&plaintext)
        .aad(AAD)
        .send()
        .await
        .ciphertext();
    type Edit = fn(&mut Ciphertext);
    let edits: [(&str, Edit); 8] = [
        ("first ciphertext byte", |c| c.ciphertext[0] ^= 0x01),
        ("last ciphertext byte", |c| {
            *c.ciphertext.last_mut().unwrap() ^= 0x80;
        }),
        ("ciphertext truncated", |c| {
            c.ciphertext.pop();
        }),
        ("ciphertext extended", |c| c.ciphertext.push(0)),
        ("first tag byte", |c| c.tag[0] ^= 0x01),
        ("last tag byte", |c| c.tag[15] ^= 0x80),
        ("first IV byte", |c| c.iv[0] ^= 0x01),
        ("last IV byte", |c| *c.iv.last_mut().unwrap() ^= 0x80),
    ];
    for (what, edit) in edits {
        let mut bad = ct.clone();
        edit(&mut bad);
        let r = h.decrypt(KEY_1, &bad).send().await;
        assert_eq!(
            r.error_name(),
            Some(E::InvalidCiphertextException),
            "{what}"
        );
    }
    assert_eq!(h.decrypt(KEY_1, &ct).send().await.plaintext(), plaintext);
}

/// Rows 105-107: ciphertextMetadata with any one bit flipped, omitted, or replaced
/// by foreign metadata. This proxy always returns metadata, so row 107's "added
/// when none was returned" becomes "replaced by metadata it never issues".
#[tokio::test]
async fn metadata_tampering_is_invalid_ciphertext() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).aad(AAD).send().await.ciphertext();
    let metadata = ct.metadata.clone().unwrap();
    for byte in 0..metadata.len() {
        for bit in 0..8 {
            let mut bad = ct.clone();
            bad.metadata.as_mut().unwrap()[byte] ^= 1 << bit;
            let r = h.decrypt(KEY_1, &bad).send().await;
            assert_eq!(
                r.error_name(),
                Some(E::InvalidCiphertextException),
                "metadata byte {byte} bit {bit}"
            );
        }
    }
    let foreign = B64.decode("a2V5X3ZlcnNpb249MQ==").unwrap();
    let cases = [None, Some(Vec::new()), Some(foreign), Some(vec![0; 20])];
    for replacement in cases {
        let bad = Ciphertext {
            metadata: replacement.clone(),
            ..ct.clone()
        };
        let r = h.decrypt(KEY_1, &bad).send().await;
        assert_eq!(
            r.error_name(),
            Some(E::InvalidCiphertextException),
            "metadata {replacement:?}"
        );
    }
}

/// Row 108: encrypt without AAD (metadata M), then decrypt with AAD = M and no
/// metadata, or with AAD = M and metadata M: both fail.
#[tokio::test]
async fn aad_and_metadata_confusion_fails() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let metadata = ct.metadata.clone().unwrap();
    let moved = Ciphertext {
        metadata: None,
        aad: Some(metadata.clone()),
        ..ct.clone()
    };
    let doubled = Ciphertext {
        aad: Some(metadata),
        ..ct.clone()
    };
    for bad in [moved, doubled] {
        let r = h.decrypt(KEY_1, &bad).send().await;
        r.expect_error(E::InvalidCiphertextException);
    }
}

/// Rows 109-111: a ciphertext of key A decrypted under key B; all-zero
/// ciphertext, IV and tag; a 16-byte IV (a legal length this backend never
/// produces): 400 InvalidCiphertextException.
#[tokio::test]
async fn foreign_and_forged_ciphertexts_are_invalid_ciphertext() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).aad(AAD).send().await.ciphertext();
    let zero = Ciphertext {
        ciphertext: vec![0; 12],
        iv: vec![0; 12],
        tag: vec![0; 16],
        ..ct.clone()
    };
    let calls = [
        h.decrypt(KEY_2, &ct),   // 109
        h.decrypt(KEY_1, &zero), // 110
        h.decrypt(
            KEY_1,
            &Ciphertext {
                metadata: None,
                ..zero.clone()
            },
        ),
        h.decrypt(
            KEY_1,
            &Ciphertext {
                iv: pattern(16, 0x5a),
                ..ct.clone()
            },
        ), // 111
    ];
    for call in calls {
        call.send()
            .await
            .expect_error(E::InvalidCiphertextException);
    }
}

/// Rows 112-117: a missing required field, an IV of the wrong length, a tag of
/// the wrong length, metadata over 20 bytes, bad Base64 in any binary field, or
/// another algorithm: 400 ValidationException.
#[tokio::test]
async fn decrypt_input_validation() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).aad(AAD).send().await.ciphertext();
    let d = || h.decrypt(KEY_1, &ct);
    let mut calls = Vec::new();
    for field in [
        "ciphertext",
        "initializationVector",
        "authenticationTag",
        "encryptionAlgorithm",
        "requestMetadata",
    ] {
        calls.push(d().remove(field)); // 112
    }
    for len in [0, 8, 11, 13, 32] {
        calls.push(d().set_b64("initializationVector", &pattern(len, 1))); // 113
    }
    for len in [0, 12, 15, 17] {
        calls.push(d().set_b64("authenticationTag", &pattern(len, 1))); // 114
    }
    calls.push(d().set_b64("ciphertextMetadata", &pattern(21, 1))); // 115
    for field in [
        "ciphertext",
        "ciphertextMetadata",
        "initializationVector",
        "authenticationTag",
        "additionalAuthenticatedData",
    ] {
        for bad in ["@@@", "AAAA-_==", "AAAAAA", "AA AA"] {
            calls.push(d().set(field, bad)); // 116
        }
        calls.push(d().set(field, 5));
    }
    for algorithm in ["AES_CBC", "AES_GCM_256", ""] {
        calls.push(d().set("encryptionAlgorithm", algorithm)); // 117
    }
    for call in calls {
        call.send().await.expect_error(E::ValidationException);
    }
}

/// Rows 118-120: unknown key, encrypt-only key, disabled key, and (tenant B) a key
/// outside the tenant's list.
#[tokio::test]
async fn decrypt_key_errors() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let cases = [
        (h.decrypt(ABSENT, &ct), E::KeyNotFoundException), // 118
        (h.decrypt(ENCRYPT_ONLY, &ct), E::InvalidKeyUsageException), // 119
        (h.decrypt(NO_USAGE, &ct), E::InvalidKeyUsageException),
        (h.decrypt(DISABLED, &ct), E::InvalidStateException), // 120
        (
            h.decrypt(KEY_1, &ct).tenant(&TENANT_B),
            E::KeyNotFoundException,
        ),
    ];
    for (call, name) in cases {
        call.send().await.expect_error(name);
    }
}

/// A ciphertext or AAD over this proxy's limits is 501 on Decrypt too.
#[tokio::test]
async fn decrypt_over_the_limits_is_unsupported() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let calls = [
        h.decrypt(
            KEY_1,
            &Ciphertext {
                ciphertext: pattern(4301, 2),
                ..ct.clone()
            },
        ),
        h.decrypt(KEY_1, &ct).aad(&pattern(8193, 2)),
    ];
    for call in calls {
        call.send()
            .await
            .expect_error(E::UnsupportedOperationException);
    }
}

// ===========================================================================
// Error bodies and backend failures (rows 121-124)
// ===========================================================================

/// Rows 121-124, explicitly: one response for every error name this proxy can
/// produce (all but AccessDeniedException, which needs secondary authorization),
/// each checked by the harness for its body, status, message and API.
#[tokio::test(start_paused = true)]
async fn every_producible_error_name_has_a_conformant_body() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let mut seen = HashSet::new();
    let mut note = |r: Reply| {
        seen.insert(r.error_name().expect("an error"));
    };
    note(h.metadata(KEY_1).raw_body("abc").send().await);
    note(h.encrypt(DISABLED).send().await);
    note(h.decrypt(KEY_1, &ct).aad(AAD).send().await);
    note(h.encrypt(DECRYPT_ONLY).send().await);
    note(h.health().cred(UNKNOWN).send().await);
    note(h.metadata(ABSENT).send().await);
    note(h.health().path("/nowhere").send().await);
    note(h.encrypt(KEY_1).plaintext(&[0; 4301]).send().await);
    h.km.fail_calls(ErrorKind::Throttled);
    note(h.encrypt(KEY_1).send().await);
    h.km.fail_calls(ErrorKind::Internal);
    note(h.decrypt(KEY_1, &ct).send().await);
    h.km.reset();
    h.km.delay_calls(Duration::from_secs(3600));
    note(h.metadata(KEY_1).send().await);

    let all: HashSet<E> = E::ALL.iter().copied().collect();
    let missing: Vec<_> = all.difference(&seen).collect();
    assert_eq!(missing, [&E::AccessDeniedException]);
}

/// Backend failures map through the one rescue function to the XKS error of
/// their kind, and the client never sees the backend's detail.
#[tokio::test]
async fn backend_failures_map_to_xks_errors_without_internals() {
    let h = Harness::new().await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    let any_api = [
        (ErrorKind::Unavailable, E::InternalException),
        (ErrorKind::Internal, E::InternalException),
        (ErrorKind::Timeout, E::DependencyTimeoutException),
        (ErrorKind::Throttled, E::ThrottlingException),
        (ErrorKind::Unsupported, E::UnsupportedOperationException),
        (ErrorKind::KeyNotFound, E::KeyNotFoundException),
        (ErrorKind::KeyDisabled, E::InvalidStateException),
    ];
    for (kind, name) in any_api {
        h.km.fail_calls(kind);
        for call in [h.metadata(KEY_1), h.encrypt(KEY_1), h.decrypt(KEY_1, &ct)] {
            let r = call.send().await;
            r.expect_error(name);
            assert!(!r.json.to_string().contains("7c1e"), "{}", r.json);
        }
    }
    h.km.fail_calls(ErrorKind::KeyUsage);
    for call in [h.encrypt(KEY_1), h.decrypt(KEY_1, &ct)] {
        call.send().await.expect_error(E::InvalidKeyUsageException);
    }
    h.km.fail_calls(ErrorKind::InvalidCiphertext);
    let r = h.decrypt(KEY_1, &ct).send().await;
    r.expect_error(E::InvalidCiphertextException);
    // Row 124: a backend error whose name the spec's table does not allow for the
    // operation reaches KMS as InternalException, never as the disallowed name.
    for call in [h.metadata(KEY_1), h.encrypt(KEY_1)] {
        call.send().await.expect_error(E::InternalException);
    }
    h.km.fail_calls(ErrorKind::KeyUsage);
    h.metadata(KEY_1)
        .send()
        .await
        .expect_error(E::InternalException);
    h.km.reset();
    h.decrypt(KEY_1, &ct).send().await.ok();
}

// ===========================================================================
// Body limits
// ===========================================================================

/// A declared Content-Length over the body limit: a request whose headers
/// authenticate is refused with 501 before its body is polled; one whose headers
/// do not is 401, with no more than the limit plus one frame read and discarded.
#[tokio::test]
async fn declared_length_over_the_limit_is_refused_unread() {
    const FRAME: usize = 16 * 1024;
    let h = Harness::new().await;
    for signed in [true, false] {
        let call = h.encrypt(KEY_1);
        let call = if signed { call } else { call.unsigned() };
        let (request, _) = call.build();
        let (mut parts, _) = request.into_parts();
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(h.max_body() + 1));
        let (body, probe) = StreamBody::endless(FRAME);
        let r = h.exchange(Request::from_parts(parts, body)).await;
        if signed {
            r.expect_error(E::UnsupportedOperationException);
            assert_eq!(probe.polls(), 0);
        } else {
            r.expect_error(E::AuthenticationFailedException);
            assert!(probe.bytes() <= h.max_body() + FRAME, "{}", probe.bytes());
        }
    }
}

/// A request that cannot authenticate from its headers alone (no Authorization,
/// a stale or future date, an unknown access key id, a region tenant B does not
/// accept, another service, no date) is 401, and its endless body is read no
/// further than the body limit plus one frame. (The proxy drains and discards
/// that much so an HTTP/1.1 client sees the 401 rather than a reset connection.)
#[tokio::test]
async fn unauthenticated_streaming_body_is_refused_at_the_limit() {
    const FRAME: usize = 16 * 1024;
    let h = Harness::new().await;
    for (i, call) in unauthenticated_calls(&h).into_iter().enumerate() {
        let (request, _) = call.build();
        let (parts, _) = request.into_parts();
        let (body, probe) = StreamBody::endless(FRAME);
        let r = h.exchange(Request::from_parts(parts, body)).await;
        r.expect_error(E::AuthenticationFailedException);
        assert!(
            probe.bytes() <= h.max_body() + FRAME,
            "case {i}: read {}",
            probe.bytes()
        );
    }
}

/// An unauthenticated request whose body never arrives still gets its 401: the
/// proxy stops waiting for the body (after 2 s; paused tokio time).
#[tokio::test(start_paused = true)]
async fn unauthenticated_stalled_body_is_refused() {
    let h = Harness::new().await;
    for (i, call) in unauthenticated_calls(&h).into_iter().enumerate() {
        let (request, _) = call.build();
        let (parts, _) = request.into_parts();
        let (body, _probe) = StreamBody::stalled();
        let started = tokio::time::Instant::now();
        let r = h.exchange(Request::from_parts(parts, body)).await;
        r.expect_error(E::AuthenticationFailedException);
        assert!(started.elapsed() <= Duration::from_secs(10), "case {i}");
    }
}

/// Requests whose headers alone show they cannot authenticate.
fn unauthenticated_calls(h: &Harness) -> Vec<common::Call<'_>> {
    vec![
        h.encrypt(KEY_1).unsigned(),
        h.encrypt(KEY_1).skew(-600),
        h.encrypt(KEY_1).skew(600),
        h.encrypt(KEY_1).cred(UNKNOWN),
        h.encrypt(KEY_2).tenant(&TENANT_B).region("us-east-1"),
        h.encrypt(KEY_1).service("kms"),
        h.encrypt(KEY_1).tamper(|request| {
            request.headers_mut().remove("x-amz-date");
        }),
    ]
}

/// An authenticated body without Content-Length that grows past the limit is 501,
/// and is read no further than the limit plus one frame.
#[tokio::test]
async fn chunked_body_over_the_limit_is_refused_at_the_limit() {
    let h = Harness::new().await;
    const FRAME: usize = 16 * 1024;
    let data = vec![b' '; 4 * h.max_body()];
    let (request, _) = h.encrypt(KEY_1).raw_body(data.clone()).build();
    let (parts, _) = request.into_parts();
    let (body, probe) = StreamBody::new(data, FRAME);
    let r = h.exchange(Request::from_parts(parts, body)).await;
    r.expect_error(E::UnsupportedOperationException);
    assert!(probe.bytes() > h.max_body(), "read {}", probe.bytes());
    assert!(
        probe.bytes() <= h.max_body() + FRAME,
        "read {}",
        probe.bytes()
    );
}

/// An authenticated body within the limit, arriving in small frames, is served.
#[tokio::test]
async fn chunked_body_within_the_limit_is_served() {
    let h = Harness::new().await;
    let (request, _) = h.encrypt(KEY_1).aad(&pattern(8192, 0)).build();
    let (parts, body) = request.into_parts();
    let len = body.len();
    let (body, probe) = StreamBody::new(Bytes::from(body), 7);
    let r = h.exchange(Request::from_parts(parts, body)).await;
    assert_eq!(r.ciphertext().ciphertext.len(), 12);
    assert_eq!(probe.bytes(), len);
}

// ===========================================================================
// The key manager deadline
// ===========================================================================

/// A key manager slower than `limits.backend_timeout` is 503
/// DependencyTimeoutException once the deadline passes, for every key API
/// (Encrypt with CDIV included); health is served from its cache meanwhile.
/// Paused tokio time: the deadline is checked on tokio's clock.
#[tokio::test(start_paused = true)]
async fn slow_key_manager_is_dependency_timeout() {
    let h = Harness::builder()
        .limits(r#"backend_timeout = "50ms""#)
        .build()
        .await;
    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    h.km.delay_calls(Duration::from_secs(3600));
    let calls = [
        h.metadata(KEY_1),
        h.encrypt(KEY_1),
        h.encrypt(KEY_1).cdiv(),
        h.decrypt(KEY_1, &ct),
    ];
    for call in calls {
        let started = tokio::time::Instant::now();
        call.send()
            .await
            .expect_error(E::DependencyTimeoutException);
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(3600), "{waited:?}");
    }
    h.health().send().await.ok();
    h.km.reset();
    h.decrypt(KEY_1, &ct).send().await.ok();
}
