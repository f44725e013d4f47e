use std::collections::HashSet;
use std::error::Error as _;

use super::*;

#[test]
fn kind_names_are_unique_snake_case_and_cover_all_kinds() {
    let names: HashSet<&str> = VerifyErrorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names.len(), VerifyErrorKind::ALL.len());
    assert_eq!(VerifyErrorKind::ALL.len(), 14);
    for name in names {
        assert!(
            name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{name}"
        );
    }
    assert_eq!(
        VerifyErrorKind::SignatureMismatch.to_string(),
        "signature_mismatch"
    );
}

#[test]
fn every_kind_has_a_message_with_and_without_detail() {
    for &kind in VerifyErrorKind::ALL {
        let bare = VerifyError::new(kind).to_string();
        assert!(!bare.is_empty());
        let with_value = VerifyError::with_value(kind, "value").to_string();
        assert!(!with_value.is_empty());
        assert_eq!(VerifyError::new(kind).kind(), kind);
        assert!(VerifyError::new(kind).source().is_none());
    }
}

#[test]
fn messages_show_context() {
    let err = VerifyError::with_value(VerifyErrorKind::UnknownAccessKeyId, "AKIAEXAMPLE");
    assert_eq!(err.to_string(), "unknown access key id \"AKIAEXAMPLE\"");
    let err = VerifyError::with_value(VerifyErrorKind::WrongService, "kms");
    assert_eq!(
        err.to_string(),
        "the credential scope names service \"kms\", expected \"kms-xks-proxy\""
    );
    let err = VerifyError::clock_skew(601, SkewDirection::Behind, Duration::from_secs(300));
    assert_eq!(
        err.to_string(),
        "X-Amz-Date is 601s behind the server clock, more than the 300s allowed"
    );
    let err = VerifyError::malformed_authorization("no Signature component");
    assert_eq!(
        err.to_string(),
        "malformed Authorization header: no Signature component"
    );
}

#[test]
fn echoed_values_are_sanitised_and_bounded() {
    let hostile = format!("AKIA\r\nlevel=error \"x\\y\u{7f}é{}", "Z".repeat(500));
    let message =
        VerifyError::with_value(VerifyErrorKind::UnknownAccessKeyId, &hostile).to_string();
    assert!(!message.contains('\r'));
    assert!(!message.contains('\n'));
    assert!(!message.contains('\u{7f}'));
    assert!(!message.contains('é'));
    assert!(message.len() < 120, "{message}");
    assert!(message.contains("AKIA??level=error ?x?y??"), "{message}");
    assert!(message.ends_with("...\""), "{message}");
}

#[test]
fn sanitize_keeps_short_printable_values() {
    assert_eq!(&*sanitize("us-east-1", 64), "us-east-1");
    assert_eq!(&*sanitize("", 64), "");
    assert_eq!(sanitize(&"a".repeat(64), 64).len(), 64);
    assert_eq!(
        &*sanitize(&"a".repeat(65), 64),
        format!("{}...", "a".repeat(64))
    );
    assert_eq!(&*sanitize("abcdef", 3), "abc...");
}

#[test]
fn credential_error_messages() {
    let err = CredentialError::length(CredentialErrorKind::InvalidAccessKeyId, 12);
    assert_eq!(err.kind(), CredentialErrorKind::InvalidAccessKeyId);
    assert_eq!(
        err.to_string(),
        "invalid access key id: it must be 20 to 30 characters long, not 12"
    );
    let err = CredentialError::charset(CredentialErrorKind::InvalidAccessKeyId, Some(3));
    assert!(err.to_string().contains("character 3"));
    let err = CredentialError::charset(CredentialErrorKind::InvalidSecretAccessKey, None);
    assert_eq!(
        err.to_string(),
        "invalid secret access key: only A-Z, a-z, 0-9, '+', '/' and '=' are allowed"
    );
    let err = CredentialError::duplicate("AKIAI2SFODNN7EXAMPLE");
    assert_eq!(err.kind(), CredentialErrorKind::DuplicateAccessKeyId);
    assert_eq!(
        err.to_string(),
        "access key id \"AKIAI2SFODNN7EXAMPLE\" is configured twice"
    );
}

#[test]
fn sign_error_keeps_its_source_out_of_display() {
    let source = std::io::Error::other("inner detail");
    let err = SignError::with_source(SignErrorKind::Signing, source);
    assert_eq!(err.kind(), SignErrorKind::Signing);
    assert!(!err.to_string().contains("inner detail"));
    assert_eq!(
        err.source().map(ToString::to_string).as_deref(),
        Some("inner detail")
    );
    assert!(SignError::new(SignErrorKind::InvalidUrl).source().is_none());
}
