//! No formatting of credentials, stores, verifiers, signers or requests shows a secret, and
//! request views do not show signatures or bodies.

mod common;

use common::*;
use xks_sigv4::{
    AccessKeyId, Credential, CredentialStore, SecretAccessKey, SignedRequest, Signer, Verifier,
};

fn assert_hidden(text: &str, hidden: &[&str]) {
    for secret in hidden {
        assert!(!text.contains(secret), "{secret:?} leaked in {text}");
    }
}

#[test]
fn secret_access_key_is_never_formatted() {
    let secret = SecretAccessKey::new(SECRET).unwrap();
    assert_eq!(format!("{secret:?}"), "SecretAccessKey(** redacted **)");
    assert_hidden(&format!("{secret:#?}"), &[SECRET]);
    // There is no Display; the only way to the value is the explicit accessor.
    assert_eq!(secret.expose_secret(), SECRET);
}

#[test]
fn credentials_and_stores_hide_secrets() {
    let first = credential().with_label("primary");
    let second = credential2();
    let store = CredentialStore::new([first.clone(), second.clone()]).unwrap();
    let verifier = Verifier::new(CredentialStore::new([first.clone(), second.clone()]).unwrap());
    let signer = Signer::new(&first, "us-east-1").unwrap();
    for text in [
        format!("{first:?}"),
        format!("{first:#?}"),
        format!("{second:?}"),
        format!("{store:?}"),
        format!("{store:#?}"),
        format!("{verifier:?}"),
        format!("{verifier:#?}"),
        format!("{:?}", verifier.credentials()),
        format!("{signer:?}"),
        format!("{signer:#?}"),
    ] {
        assert_hidden(&text, &[SECRET, SECRET2]);
    }
    // The ids and labels are shown: they are what operators need to see.
    let text = format!("{store:?}");
    assert!(
        text.contains(AKID) && text.contains(AKID2) && text.contains("primary"),
        "{text}"
    );
}

#[test]
fn access_key_ids_display_as_themselves() {
    let akid = AccessKeyId::new(AKID).unwrap();
    assert_eq!(akid.to_string(), AKID);
    assert_eq!(credential().access_key_id(), &akid);
}

#[test]
fn configuration_errors_hide_secrets() {
    let bad_secret = format!("{SECRET}!");
    let err = Credential::from_config(AKID, bad_secret.as_str()).unwrap_err();
    assert_hidden(&format!("{err} {err:?}"), &[SECRET]);
    let err = Credential::from_config("short", SECRET).unwrap_err();
    assert_hidden(&format!("{err} {err:?}"), &[SECRET]);
}

#[test]
fn request_views_hide_the_signature_and_body() {
    let headers = kms_headers(T0);
    let authorization = headers["authorization"].to_str().unwrap().to_owned();
    let signature = authorization.rsplit('=').next().unwrap();
    let request = SignedRequest::new("POST", PATH, &headers, BODY);
    let text = format!("{request:?}");
    assert_hidden(&text, &[signature, "KmsHealthCheck"]);
    assert!(text.contains("authorization"), "{text}");
    assert!(text.contains(&BODY.len().to_string()), "{text}");

    let who = verifier_at(T0).verify(&request).unwrap();
    assert_hidden(&format!("{who:?}"), &[SECRET, signature]);
}
