//! Verifier behaviour through the public API: each failure kind, the skew boundaries,
//! HTTP/2, rotation and run-time credential swaps.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::{HeaderMap, HeaderValue};
use xks_sigv4::{
    Credential, CredentialStore, FixedClock, RegionPolicy, SignedHeaderSet, SignedRequest,
    Verifier, VerifyError, VerifyErrorKind,
};

fn verify(
    verifier: &Verifier,
    headers: &HeaderMap,
) -> Result<xks_sigv4::Authenticated, VerifyError> {
    verifier.verify(&SignedRequest::new("POST", PATH, headers, BODY))
}

fn kind(verifier: &Verifier, headers: &HeaderMap) -> VerifyErrorKind {
    verify(verifier, headers).unwrap_err().kind()
}

/// Headers signed by the reference computation, so any scope can be produced.
fn reference_headers(
    akid: &str,
    amz_date: &str,
    scope_date: &str,
    region: &str,
    service: &str,
) -> HeaderMap {
    let headers = [("host", HOST), ("x-amz-date", amz_date)];
    let reference = Reference {
        scope_date,
        region,
        service,
        ..spec_reference(amz_date, &headers)
    };
    reference.header_map(akid)
}

fn set_authorization(headers: &mut HeaderMap, value: &str) {
    headers.insert("authorization", HeaderValue::from_str(value).unwrap());
}

/// Runs one scenario per failure kind, records the kinds seen, and checks that every kind
/// in `VerifyErrorKind::ALL` was produced.
#[test]
fn every_failure_kind_is_produced() {
    let seen = Mutex::new(HashSet::new());
    let expect = |result: Result<xks_sigv4::Authenticated, VerifyError>,
                  expected: VerifyErrorKind| {
        let err = result.expect_err("the request should fail");
        assert_eq!(err.kind(), expected, "{err}");
        seen.lock().unwrap().insert(err.kind());
    };
    let verifier = verifier_at(T0);
    let good = kms_headers(T0);
    assert!(verify(&verifier, &good).is_ok());

    // MissingAuthorization
    let mut headers = good.clone();
    headers.remove("authorization");
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::MissingAuthorization,
    );

    // MalformedAuthorization: garbage, two headers, non-ASCII bytes
    let mut headers = good.clone();
    set_authorization(&mut headers, "AWS4-HMAC-SHA256 garbage");
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::MalformedAuthorization,
    );
    let mut headers = good.clone();
    headers.append("authorization", good["authorization"].clone());
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::MalformedAuthorization,
    );
    let mut headers = good.clone();
    headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 \xff").unwrap(),
    );
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::MalformedAuthorization,
    );

    // UnsupportedAlgorithm
    let mut headers = good.clone();
    let value = good["authorization"]
        .to_str()
        .unwrap()
        .replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512");
    set_authorization(&mut headers, &value);
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::UnsupportedAlgorithm,
    );

    // UnknownAccessKeyId: well-formed, not configured
    let headers = reference_headers(
        "AKIAI2SFODNN7EXAMPLX",
        "20230101T000000Z",
        "20230101",
        "us-east-1",
        "kms-xks-proxy",
    );
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::UnknownAccessKeyId,
    );

    // WrongService: a valid signature for service "kms"
    let headers = reference_headers(AKID, "20230101T000000Z", "20230101", "us-east-1", "kms");
    expect(verify(&verifier, &headers), VerifyErrorKind::WrongService);

    // RegionNotAllowed
    let pinned = verifier_at(T0).with_region_policy(RegionPolicy::allow_list(["eu-west-1"]));
    expect(verify(&pinned, &good), VerifyErrorKind::RegionNotAllowed);

    // MalformedScope
    let mut headers = good.clone();
    let value = good["authorization"]
        .to_str()
        .unwrap()
        .replace("/aws4_request", "/aws5_request");
    set_authorization(&mut headers, &value);
    expect(verify(&verifier, &headers), VerifyErrorKind::MalformedScope);

    // MissingDate
    let mut headers = good.clone();
    headers.remove("x-amz-date");
    expect(verify(&verifier, &headers), VerifyErrorKind::MissingDate);

    // MalformedDate: bad format, two headers
    let mut headers = good.clone();
    headers.insert(
        "x-amz-date",
        HeaderValue::from_static("2023-01-01T00:00:00Z"),
    );
    expect(verify(&verifier, &headers), VerifyErrorKind::MalformedDate);
    let mut headers = good.clone();
    headers.append("x-amz-date", HeaderValue::from_static("20230101T000000Z"));
    expect(verify(&verifier, &headers), VerifyErrorKind::MalformedDate);

    // ScopeDateMismatch: scope says 2 January, X-Amz-Date 1 January
    let headers = reference_headers(
        AKID,
        "20230101T000000Z",
        "20230102",
        "us-east-1",
        "kms-xks-proxy",
    );
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::ScopeDateMismatch,
    );

    // ClockSkew
    expect(
        verify(&verifier_at(T0 + 600), &good),
        VerifyErrorKind::ClockSkew,
    );

    // RequiredHeaderNotSigned: only x-amz-date signed
    let headers_list = [("x-amz-date", "20230101T000000Z")];
    let mut headers = spec_reference("20230101T000000Z", &headers_list).header_map(AKID);
    headers.insert("host", HeaderValue::from_static(HOST));
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::RequiredHeaderNotSigned,
    );

    // SignedHeaderMissing: content-type signed, then dropped
    let mut headers = signed_headers(
        &credential(),
        "us-east-1",
        T0,
        "POST",
        PATH,
        BODY,
        SignedHeaderSet::ContentTypeHostAndDate,
    );
    assert!(verify(&verifier, &headers).is_ok());
    headers.remove("content-type");
    expect(
        verify(&verifier, &headers),
        VerifyErrorKind::SignedHeaderMissing,
    );

    // SignatureMismatch
    let result = verifier.verify(&SignedRequest::new("POST", PATH, &good, b"{}"));
    expect(result, VerifyErrorKind::SignatureMismatch);

    let seen = seen.into_inner().unwrap();
    for kind in VerifyErrorKind::ALL {
        assert!(seen.contains(kind), "no test produced {kind}");
    }
}

#[test]
fn required_headers_are_checked_individually() {
    let verifier = verifier_at(T0);
    // Signed over host only: x-amz-date is required.
    let mut headers = spec_reference("20230101T000000Z", &[("host", HOST)]).header_map(AKID);
    headers.insert("x-amz-date", HeaderValue::from_static("20230101T000000Z"));
    let err = verify(&verifier, &headers).unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::RequiredHeaderNotSigned);
    assert!(err.to_string().contains("x-amz-date"), "{err}");
}

#[test]
fn skew_boundaries() {
    for (offset, ok) in [
        (0, true),
        (120, true),
        (-120, true),
        (299, true),
        (-299, true),
        (300, true),
        (-300, true),
        (301, false),
        (-301, false),
        (600, false),
        (-600, false),
        (86_400, false),
    ] {
        // The clock is `offset` seconds after the request time.
        let result = verify(&verifier_at(T0 + offset), &kms_headers(T0));
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(err)) => {
                assert_eq!(err.kind(), VerifyErrorKind::ClockSkew, "{offset}");
                let direction = if offset > 0 { "behind" } else { "ahead of" };
                assert!(err.to_string().contains(direction), "{err}");
            }
            (ok, result) => panic!("offset {offset}: expected ok={ok}, got {result:?}"),
        }
    }
}

#[test]
fn skew_is_compared_in_whole_seconds() {
    let headers = kms_headers(T0);
    // 5:00.999 after the request still counts as 5:00.
    let clock = FixedClock::new(at(T0 + 300) + Duration::from_millis(999));
    let verifier = verifier_at(T0).with_clock(clock);
    assert!(verify(&verifier, &headers).is_ok());
    let clock = FixedClock::new(at(T0 + 301));
    assert_eq!(
        kind(&verifier_at(T0).with_clock(clock), &headers),
        VerifyErrorKind::ClockSkew
    );
}

#[test]
fn skew_limit_is_configurable() {
    let headers = kms_headers(T0);
    let strict = verifier_at(T0 + 31).with_max_clock_skew(Duration::from_secs(30));
    assert_eq!(kind(&strict, &headers), VerifyErrorKind::ClockSkew);
    let strict = verifier_at(T0 + 30).with_max_clock_skew(Duration::from_secs(30));
    assert!(verify(&strict, &headers).is_ok());
    let lenient = verifier_at(T0 + 900).with_max_clock_skew(Duration::from_secs(900));
    assert!(verify(&lenient, &headers).is_ok());
    assert_eq!(lenient.max_clock_skew(), Duration::from_secs(900));
}

#[test]
fn requests_around_midnight() {
    // Signed at 23:59:59 on 31 December, verified two seconds later on 1 January.
    let headers = kms_headers(T0 - 1);
    assert!(verify(&verifier_at(T0 + 1), &headers).is_ok());
    // A scope date of the server's day but an X-Amz-Date of the day before.
    let headers = reference_headers(
        AKID,
        "20221231T235959Z",
        "20230101",
        "us-east-1",
        "kms-xks-proxy",
    );
    assert_eq!(
        kind(&verifier_at(T0), &headers),
        VerifyErrorKind::ScopeDateMismatch
    );
}

#[test]
fn http2_requests_use_the_authority() {
    let verifier = verifier_at(T0);
    let mut headers = kms_headers(T0);
    headers.remove("host");
    assert_eq!(
        kind(&verifier, &headers),
        VerifyErrorKind::SignedHeaderMissing
    );
    let request = SignedRequest::new("POST", PATH, &headers, BODY).with_authority(Some(HOST));
    assert!(verifier.verify(&request).is_ok());
    let request = request.with_authority(Some("evil.example.com"));
    assert_eq!(
        verifier.verify(&request).unwrap_err().kind(),
        VerifyErrorKind::SignatureMismatch
    );

    // From hyper-style request parts: HTTP/2, absolute URI, no Host header.
    let mut builder = http::Request::builder()
        .method("POST")
        .version(http::Version::HTTP_2)
        .uri(format!("https://{HOST}{PATH}"));
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    assert!(
        verifier
            .verify(&SignedRequest::from_parts(&parts, BODY))
            .is_ok()
    );
}

#[test]
fn http1_request_parts() {
    // HTTP/1.1 origin-form: the URI has no authority, the Host header is used.
    let headers = kms_headers(T0);
    let mut builder = http::Request::builder().method("POST").uri(PATH);
    for (name, value) in &headers {
        builder = builder.header(name, value);
    }
    let (parts, ()) = builder.body(()).unwrap().into_parts();
    let request = SignedRequest::from_parts(&parts, BODY);
    assert_eq!(request.authority(), None);
    assert_eq!(request.path(), PATH);
    assert_eq!(request.method(), "POST");
    assert_eq!(request.query(), None);
    assert_eq!(request.body(), BODY);
    assert!(verifier_at(T0).verify(&request).is_ok());
}

#[test]
fn rotation_accepts_both_credentials() {
    let verifier = Verifier::new(
        CredentialStore::new([
            credential().with_label("old"),
            credential2().with_label("new"),
        ])
        .unwrap(),
    )
    .with_clock(FixedClock::new(at(T0)));
    for (credential, label) in [(credential(), "old"), (credential2(), "new")] {
        let headers = signed_headers(
            &credential,
            "us-east-1",
            T0,
            "POST",
            PATH,
            BODY,
            SignedHeaderSet::HostAndDate,
        );
        let who = verify(&verifier, &headers).unwrap();
        assert_eq!(who.access_key_id(), credential.access_key_id());
        assert_eq!(who.credential_label(), label);
    }
    // A request signed with the new id but the old secret fails.
    let mixed = Credential::from_config(AKID2, SECRET).unwrap();
    let headers = signed_headers(
        &mixed,
        "us-east-1",
        T0,
        "POST",
        PATH,
        BODY,
        SignedHeaderSet::HostAndDate,
    );
    assert_eq!(
        kind(&verifier, &headers),
        VerifyErrorKind::SignatureMismatch
    );
}

#[test]
fn unknown_access_key_id_is_named_in_the_message() {
    let headers = signed_headers(
        &credential2(),
        "us-east-1",
        T0,
        "POST",
        PATH,
        BODY,
        SignedHeaderSet::HostAndDate,
    );
    let err = verify(&verifier_at(T0), &headers).unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::UnknownAccessKeyId);
    assert_eq!(
        err.to_string(),
        format!("unknown access key id \"{AKID2}\"")
    );
    assert!(!err.to_string().contains(SECRET2));
    // An empty store knows nobody.
    let empty = Verifier::new(CredentialStore::empty()).with_clock(FixedClock::new(at(T0)));
    assert_eq!(
        kind(&empty, &kms_headers(T0)),
        VerifyErrorKind::UnknownAccessKeyId
    );
}

#[test]
fn credentials_can_be_swapped_at_run_time() {
    let verifier = verifier_at(T0);
    let old = kms_headers(T0);
    let new = signed_headers(
        &credential2(),
        "us-east-1",
        T0,
        "POST",
        PATH,
        BODY,
        SignedHeaderSet::HostAndDate,
    );
    assert!(verify(&verifier, &old).is_ok());
    assert_eq!(kind(&verifier, &new), VerifyErrorKind::UnknownAccessKeyId);

    // Step 1 of the rotation: add the new credential.
    verifier.replace_credentials(CredentialStore::new([credential(), credential2()]).unwrap());
    assert!(verify(&verifier, &old).is_ok());
    assert!(verify(&verifier, &new).is_ok());
    assert_eq!(verifier.credentials().len(), 2);

    // Step 4: remove the old one.
    verifier.replace_credentials(CredentialStore::new([credential2()]).unwrap());
    assert_eq!(kind(&verifier, &old), VerifyErrorKind::UnknownAccessKeyId);
    assert!(verify(&verifier, &new).is_ok());
}

#[test]
fn swapping_while_verifying_on_other_threads() {
    let verifier = Arc::new(
        Verifier::new(CredentialStore::new([credential(), credential2()]).unwrap())
            .with_clock(FixedClock::new(at(T0))),
    );
    let headers = Arc::new(kms_headers(T0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let verifier = Arc::clone(&verifier);
            let headers = Arc::clone(&headers);
            std::thread::spawn(move || {
                for _ in 0..500 {
                    // The first credential is in every store swapped in below.
                    verify(&verifier, &headers).unwrap();
                }
            })
        })
        .collect();
    for i in 0..200 {
        let store = if i % 2 == 0 {
            CredentialStore::new([credential()]).unwrap()
        } else {
            CredentialStore::new([credential2(), credential()]).unwrap()
        };
        verifier.replace_credentials(store);
    }
    for worker in workers {
        worker.join().unwrap();
    }
}

#[test]
fn region_policy_allow_list() {
    let verifier =
        verifier_at(T0).with_region_policy(RegionPolicy::allow_list(["us-east-1", "eu-west-1"]));
    for (region, ok) in [
        ("us-east-1", true),
        ("eu-west-1", true),
        ("us-west-2", false),
    ] {
        let headers = signed_headers(
            &credential(),
            region,
            T0,
            "POST",
            PATH,
            BODY,
            SignedHeaderSet::HostAndDate,
        );
        match verify(&verifier, &headers) {
            Ok(who) => {
                assert!(ok, "{region}");
                assert_eq!(who.region(), region);
            }
            Err(err) => {
                assert!(!ok, "{region}: {err}");
                assert_eq!(err.kind(), VerifyErrorKind::RegionNotAllowed);
                assert!(err.to_string().contains(region));
            }
        }
    }
}

#[test]
fn extra_signed_headers_and_repeated_values() {
    // A signer that signs more than host and x-amz-date, with a repeated header and spaces.
    let headers_list = [
        ("host", HOST),
        ("x-amz-date", "20230101T000000Z"),
        ("x-custom", "a b"),
        ("x-custom", "c"),
    ];
    let reference = spec_reference("20230101T000000Z", &headers_list);
    let mut headers = reference.header_map(AKID);
    assert!(verify(&verifier_at(T0), &headers).is_ok());
    // Extra spaces do not matter; a changed value does.
    let values: Vec<HeaderValue> = headers.get_all("x-custom").iter().cloned().collect();
    headers.remove("x-custom");
    headers.append("x-custom", HeaderValue::from_static("  a    b "));
    headers.append("x-custom", values[1].clone());
    assert!(verify(&verifier_at(T0), &headers).is_ok());
    headers.remove("x-custom");
    headers.append("x-custom", values[1].clone());
    headers.append("x-custom", values[0].clone());
    assert_eq!(
        kind(&verifier_at(T0), &headers),
        VerifyErrorKind::SignatureMismatch
    );
    // Unsigned headers can change freely.
    let mut headers = reference.header_map(AKID);
    headers.insert("user-agent", HeaderValue::from_static("changed"));
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    assert!(verify(&verifier_at(T0), &headers).is_ok());
}

#[test]
fn path_normalisation_setting() {
    // aws-sigv4 signs the normalised path; the verifier matches it by default.
    let headers = signed_headers(
        &credential(),
        "us-east-1",
        T0,
        "POST",
        "/a/./b//c",
        BODY,
        SignedHeaderSet::HostAndDate,
    );
    let verifier = verifier_at(T0);
    assert!(
        verifier
            .verify(&SignedRequest::new("POST", "/a/./b//c", &headers, BODY))
            .is_ok()
    );
    assert!(
        verifier
            .verify(&SignedRequest::new("POST", "/a/b/c", &headers, BODY))
            .is_ok()
    );
    let strict =
        verifier_at(T0).with_uri_path_normalization(xks_sigv4::UriPathNormalization::Disabled);
    assert_eq!(
        strict
            .verify(&SignedRequest::new("POST", "/a/./b//c", &headers, BODY))
            .unwrap_err()
            .kind(),
        VerifyErrorKind::SignatureMismatch
    );
    assert!(
        strict
            .verify(&SignedRequest::new("POST", "/a/b/c", &headers, BODY))
            .is_ok()
    );
}

#[test]
fn failure_messages_never_contain_secrets_or_signatures() {
    let verifier = verifier_at(T0 + 3600);
    let headers = kms_headers(T0);
    let signature = headers["authorization"]
        .to_str()
        .unwrap()
        .rsplit('=')
        .next()
        .unwrap()
        .to_owned();
    let mut messages = Vec::new();
    messages.push(verify(&verifier, &headers).unwrap_err());
    messages.push(
        verifier_at(T0)
            .verify(&SignedRequest::new("POST", PATH, &headers, b"x"))
            .unwrap_err(),
    );
    for err in messages {
        for text in [err.to_string(), format!("{err:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(&signature), "{text}");
        }
    }
}

/// `precheck` runs the header-only checks: it accepts what `verify` would accept
/// up to the signature, and refuses the header failures without seeing a body.
#[test]
fn precheck_refuses_header_failures_before_the_body() {
    let verifier = verifier_at(T0);
    let good = kms_headers(T0);
    verifier.precheck(&good).unwrap();

    let mut missing = good.clone();
    missing.remove("authorization");
    let stale = kms_headers(T0 - 600);
    let mut unknown_key = good.clone();
    let value = good["authorization"]
        .to_str()
        .unwrap()
        .replace(AKID, "AAAAAAAAAAAAAAAAAAAAAAAA");
    set_authorization(&mut unknown_key, &value);
    for (headers, kind) in [
        (missing, VerifyErrorKind::MissingAuthorization),
        (stale, VerifyErrorKind::ClockSkew),
        (unknown_key, VerifyErrorKind::UnknownAccessKeyId),
    ] {
        assert_eq!(verifier.precheck(&headers).unwrap_err().kind(), kind);
    }

    // A bad signature is only found by `verify`, which sees the body.
    let mut forged = good.clone();
    let value = good["authorization"].to_str().unwrap();
    let forged_value = format!("{}0000", &value[..value.len() - 4]);
    set_authorization(&mut forged, &forged_value);
    verifier.precheck(&forged).unwrap();
    assert_eq!(kind(&verifier, &forged), VerifyErrorKind::SignatureMismatch);
}
