use super::*;

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";

#[test]
fn access_key_id_length_bounds() {
    for len in [0, 1, 19, 31, 52] {
        let err = AccessKeyId::new("A".repeat(len)).unwrap_err();
        assert_eq!(err.kind(), CredentialErrorKind::InvalidAccessKeyId, "{len}");
        assert!(err.to_string().contains(&format!("not {len}")));
    }
    for len in [20, 25, 30] {
        assert!(AccessKeyId::new("A".repeat(len)).is_ok(), "{len}");
    }
}

#[test]
fn access_key_id_alphabet_is_base32() {
    assert!(AccessKeyId::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").is_err()); // 32 chars
    assert!(AccessKeyId::new("ABCDEFGHIJKLMNOPQRSTUVWXYZ2345").is_ok());
    assert!(AccessKeyId::new("HGIE2BUAFNDMBCMSQVWLGCEXAMPLE").is_ok());
    assert!(AccessKeyId::new("BETWEEN2TENAND3TENCHARACTERS").is_ok());
    for bad in ['0', '1', '8', '9', 'a', 'z', '-', '_', '/', '=', ' ', 'É'] {
        let value = format!("AKIAI2SFODNN7EXAMPL{bad}");
        let err = AccessKeyId::new(value).unwrap_err();
        assert_eq!(err.kind(), CredentialErrorKind::InvalidAccessKeyId);
        assert!(err.to_string().contains("character 20"), "{err}");
    }
}

#[test]
fn access_key_id_formats() {
    let akid: AccessKeyId = AKID.parse().unwrap();
    assert_eq!(akid.as_str(), AKID);
    assert_eq!(akid.to_string(), AKID);
    assert_eq!(format!("{akid:?}"), format!("AccessKeyId({AKID:?})"));
    assert_eq!(AsRef::<str>::as_ref(&akid), AKID);
}

#[test]
fn secret_length_bounds() {
    for len in [0, 40, 42, 65, 100] {
        let err = SecretAccessKey::new("a".repeat(len)).unwrap_err();
        assert_eq!(err.kind(), CredentialErrorKind::InvalidSecretAccessKey);
        assert!(err.to_string().contains(&format!("not {len}")));
    }
    for len in [43, 44, 64] {
        assert!(SecretAccessKey::new("a".repeat(len)).is_ok(), "{len}");
    }
}

#[test]
fn secret_alphabet() {
    let ok = format!("{}+/=Zz09", "A".repeat(40));
    assert!(SecretAccessKey::new(ok).is_ok());
    for bad in ['-', '_', ' ', '.', '\n', 'é', '!'] {
        let value = format!("{}{bad}", "A".repeat(43));
        let err = SecretAccessKey::new(value.clone()).unwrap_err();
        assert_eq!(err.kind(), CredentialErrorKind::InvalidSecretAccessKey);
        assert!(!err.to_string().contains(&value));
    }
}

#[test]
fn errors_never_repeat_the_secret() {
    let secret = format!("{}-", SECRET);
    let err = Credential::from_config(AKID, secret).unwrap_err();
    assert!(!err.to_string().contains(SECRET));
    assert!(!format!("{err:?}").contains(SECRET));
    // Both wrong: the secret is reported (and wiped) first.
    let err = Credential::from_config("bad", "short").unwrap_err();
    assert_eq!(err.kind(), CredentialErrorKind::InvalidSecretAccessKey);
}

#[test]
fn credential_debug_and_label() {
    let credential = Credential::from_config(AKID, SECRET).unwrap();
    assert_eq!(credential.label(), AKID);
    assert_eq!(credential.secret_access_key().expose_secret(), SECRET);
    let debug = format!("{credential:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains(AKID));
    assert!(debug.contains("** redacted **"));
    let alternate = format!("{credential:#?}");
    assert!(!alternate.contains(SECRET));
    let labelled = credential.with_label("kms-2024");
    assert_eq!(labelled.label(), "kms-2024");
    assert_eq!(
        format!("{:?}", labelled.secret_access_key()),
        "SecretAccessKey(** redacted **)"
    );
}

#[test]
fn store_lookup_and_duplicates() {
    let first = Credential::from_config(AKID, SECRET).unwrap();
    let second = Credential::from_config("HGIE2BUAFNDMBCMSQVWLGCEXAMPLE", SECRET).unwrap();
    let store = CredentialStore::new([second.clone(), first.clone()]).unwrap();
    assert_eq!(store.len(), 2);
    assert!(!store.is_empty());
    assert!(store.contains(AKID));
    assert!(!store.contains("AKIAI2SFODNN7EXAMPLX"));
    assert_eq!(store.get(AKID).unwrap().access_key_id().as_str(), AKID);
    assert!(store.entry("HGIE2BUAFNDMBCMSQVWLGCEXAMPLE").is_some());
    let ids: Vec<&str> = store
        .access_key_ids()
        .into_iter()
        .map(AccessKeyId::as_str)
        .collect();
    assert_eq!(ids, [AKID, "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE"]);

    let err = CredentialStore::new([first.clone(), second, first.with_label("again")]).unwrap_err();
    assert_eq!(err.kind(), CredentialErrorKind::DuplicateAccessKeyId);
    assert!(err.to_string().contains(AKID));

    let empty = CredentialStore::empty();
    assert!(empty.is_empty());
    assert!(CredentialStore::try_from(Vec::new()).unwrap().is_empty());
}

#[test]
fn store_debug_is_redacted() {
    let store = CredentialStore::new([Credential::from_config(AKID, SECRET).unwrap()]).unwrap();
    for text in [format!("{store:?}"), format!("{store:#?}")] {
        assert!(!text.contains(SECRET), "{text}");
        assert!(text.contains(AKID));
    }
}
