//! A proxy with switchable faults: each fault is caught by the check meant for it (failed
//! for a required or tolerant check, a warning for a recommended one), and the same
//! checks pass once the fault is switched off.

mod common;

use common::faulty::{Fault, FaultyProxy};
use common::{assert_no_failures, run_tester};
use xks_conformance::{Grade, Status};

/// Each fault, and the checks that must catch it.
const CASES: &[(Fault, &[&str])] = &[
    (Fault::WrongCdiv, &["encrypt.cdiv"]),
    (
        Fault::TagOnCiphertext,
        &["encrypt.hello-world", "encrypt.ciphertext-length"],
    ),
    (
        Fault::No405ForGet,
        &[
            "routing.get-health-405",
            "routing.get-metadata-405",
            "routing.get-encrypt-405",
            "routing.get-decrypt-405",
        ],
    ),
    (Fault::GetHealth200, &["routing.get-health-405"]),
    (
        Fault::SkewNotEnforced,
        &["sigv4.skew-past-10min", "sigv4.skew-future-10min"],
    ),
    (
        Fault::MetadataNotBound,
        &[
            "tamper.metadata-bit-flip",
            "tamper.metadata-omitted",
            "tamper.metadata-added",
        ],
    ),
    (
        Fault::AadMetadataConcatenated,
        &["tamper.aad-metadata-confusion"],
    ),
    (
        Fault::ValidationForUnknownKmsOperation,
        &["request-metadata.unknown-kms-operation"],
    ),
    (
        Fault::ErrorStatusMismatch,
        &["errors.status-matches-name", "metadata.unknown-key"],
    ),
    (Fault::NonAsciiErrorMessage, &["errors.message-format"]),
    (Fault::KeyLookupBeforeAuth, &["sigv4.no-key-disclosure"]),
    (Fault::IvReuse, &["performance.iv-uniqueness"]),
    (
        Fault::HealthFleetEmpty,
        &["health.fleet-size", "health.ekm-fleet-details"],
    ),
    (Fault::CdivAlways, &["encrypt.no-unrequested-cdiv"]),
    (
        Fault::ErrorBodyNotJson,
        &["transport.json-responses", "errors.body-format"],
    ),
    (
        Fault::IgnoresKeyUsage,
        &[
            "encrypt.decrypt-only-key",
            "encrypt.no-usage-key",
            "decrypt.encrypt-only-key",
        ],
    ),
    (Fault::DisabledMetadataError, &["metadata.disabled-key"]),
    (Fault::NoKeepAlive, &["transport.keep-alive"]),
    (
        Fault::SmallPlaintextLimit,
        &["encrypt.ciphertext-length", "encrypt.max-sizes"],
    ),
    (
        Fault::HealthDenied,
        &["health.not-denied", "authorization.health-exempt"],
    ),
    (Fault::PolicyIgnored, &["authorization.denied-principal"]),
    // Last: the bursts empty the quota for a moment.
    (Fault::ThrottleByDropping, &["authorization.throttling"]),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fault_is_caught_by_its_check() {
    let proxy = FaultyProxy::start().await;
    let args = proxy.args();
    let mut missed = Vec::new();
    for &(fault, ids) in CASES {
        proxy.set(fault);
        let report = run_tester(&args, ids).await;
        for &id in ids {
            let result = report.result(id).unwrap();
            let expected = match result.info.grade {
                Grade::Recommended => Status::Warning,
                _ => Status::Failed,
            };
            if result.status != expected {
                missed.push(format!(
                    "{fault:?}: {id} is {:?}, expected {expected:?}\n{}",
                    result.status,
                    report.to_text()
                ));
            } else {
                assert!(!result.problems.is_empty(), "{id} has no problem text");
                assert!(
                    !result.evidence.is_empty(),
                    "{fault:?}: {id} shows no exchange"
                );
            }
        }

        proxy.set(Fault::None);
        let report = run_tester(&args, ids).await;
        for &id in ids {
            let status = report.result(id).unwrap().status;
            if status != Status::Passed {
                missed.push(format!(
                    "{fault:?} switched off: {id} is {status:?}\n{}",
                    report.to_text()
                ));
            }
        }
    }
    assert!(missed.is_empty(), "{}", missed.join("\n\n"));
}

/// Fault-free, the test proxy passes the whole run: the faults above are the only reason
/// those checks fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_free_test_proxy_passes_every_check() {
    let proxy = FaultyProxy::start().await;
    let report = run_tester(&proxy.args(), &[]).await;
    eprintln!("{}", report.to_text());
    assert_no_failures(&report);
    assert_eq!(report.summary.warnings, 0, "{}", report.to_text());
    // It has a deny policy and a quota, so the authorization checks run too.
    for id in [
        "health.not-denied",
        "authorization.denied-principal",
        "authorization.health-exempt",
        "authorization.throttling",
    ] {
        assert_eq!(
            report.result(id).unwrap().status,
            Status::Passed,
            "{id}\n{}",
            report.to_text()
        );
    }
}

/// A failure report shows what was sent and what came back, with the signature and the
/// secret redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_show_the_exchange_with_secrets_redacted() {
    let proxy = FaultyProxy::start().await;
    proxy.set(Fault::WrongCdiv);
    let report = run_tester(&proxy.args(), &["encrypt.cdiv"]).await;
    let result = report.result("encrypt.cdiv").unwrap();
    assert_eq!(result.status, Status::Failed);
    let evidence = &result.evidence[0];
    assert_eq!(evidence.request.method, "POST");
    assert!(evidence.request.path.ends_with("/keys/key-1/encrypt"));
    let auth = &evidence
        .request
        .headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .unwrap()
        .1;
    assert!(auth.ends_with("Signature=<redacted>"), "{auth}");
    assert!(evidence.request.body.contains("SHA_256"));
    let response = evidence.response.as_ref().unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body.contains("ciphertextDataIntegrityValue"));
    for text in [report.to_text(), report.to_json(), report.to_junit()] {
        assert!(!text.contains(common::A1.secret));
        assert!(
            text.contains("Signature=&lt;redacted&gt;") || text.contains("Signature=<redacted>")
        );
    }
}
