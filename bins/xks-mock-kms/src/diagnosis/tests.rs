use super::*;

#[test]
fn families_pick_the_table_column() {
    let (store, create_key, code, _) = {
        let ((s, c), code, m) = xks_outcome(ErrorName::AuthenticationFailedException);
        (s, c, code, m)
    };
    assert_eq!(store, "XksProxyIncorrectAuthenticationCredentialException");
    assert_eq!(create_key, "CustomKeyStoreInvalidStateException");
    assert_eq!(code, "INVALID_CREDENTIALS");
    let ((store, create_key, ..), code, _) = {
        let ((s, c), code, m) = xks_outcome(ErrorName::KeyNotFoundException);
        ((s, c, ()), code, m)
    };
    assert_eq!(store, "XksProxyInvalidResponseException");
    assert_eq!(create_key, "XksKeyNotFoundException");
    assert_eq!(code, "XKS_PROXY_INVALID_CONFIGURATION");
}

#[test]
fn every_error_name_is_mapped_with_a_message() {
    for name in [
        ErrorName::ValidationException,
        ErrorName::InvalidStateException,
        ErrorName::InvalidCiphertextException,
        ErrorName::InvalidKeyUsageException,
        ErrorName::AuthenticationFailedException,
        ErrorName::AccessDeniedException,
        ErrorName::KeyNotFoundException,
        ErrorName::InvalidUriPathException,
        ErrorName::ThrottlingException,
        ErrorName::UnsupportedOperationException,
        ErrorName::DependencyTimeoutException,
        ErrorName::InternalException,
    ] {
        let ((store, create_key), code, message) = xks_outcome(name);
        assert!(store.ends_with("Exception") && create_key.ends_with("Exception"));
        assert!(code.chars().all(|c| c.is_ascii_uppercase() || c == '_'));
        assert!(message.len() > 40);
    }
}

#[test]
fn display_is_kms_style() {
    let d = Diagnosis::kms(KmsApi::CreateKey, "XksKeyNotFoundException", "not found")
        .with_code("XKS_PROXY_INVALID_CONFIGURATION");
    assert_eq!(
        d.to_string(),
        "An error occurred (XksKeyNotFoundException) when calling the CreateKey operation: \
         not found"
    );
    assert!(!KmsApi::Encrypt.is_key_store_operation());
    assert!(KmsApi::KmsHealthCheck.is_key_store_operation());
}
