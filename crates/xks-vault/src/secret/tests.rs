use super::*;

fn no_env(_: &str) -> Option<OsString> {
    None
}

#[test]
fn debug_never_shows_the_secret() {
    let secret = Secret::new("s.very-secret-token".to_owned());
    assert_eq!(format!("{secret:?}"), "<redacted>");
    assert_eq!(secret.expose(), "s.very-secret-token");
}

#[test]
fn reads_from_the_environment_and_trims() {
    let env = |name: &str| (name == "TOKEN").then(|| OsString::from("  s.abc\n"));
    let secret = Secret::read("vault token", &SecretSource::Env("TOKEN".into()), &env).unwrap();
    assert_eq!(secret.expose(), "s.abc");
    let err = Secret::read("vault token", &SecretSource::Env("OTHER".into()), &no_env).unwrap_err();
    assert_eq!(
        crate::DisplayChain(&err).to_string(),
        "cannot read a vault credential: the vault token variable `OTHER` is not set"
    );
    let blank = |_: &str| Some(OsString::from(" \n"));
    let err = Secret::read("vault token", &SecretSource::Env("T".into()), &blank).unwrap_err();
    assert!(
        crate::DisplayChain(&err)
            .to_string()
            .ends_with("the vault token is empty")
    );
}

#[test]
fn reads_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret-id");
    std::fs::write(&path, "abc-123\n").unwrap();
    let secret = Secret::read("AppRole secret id", &SecretSource::File(path), &no_env).unwrap();
    assert_eq!(secret.expose(), "abc-123");
    let missing = dir.path().join("missing");
    let err = Secret::read("AppRole secret id", &SecretSource::File(missing), &no_env).unwrap_err();
    let text = crate::DisplayChain(&err).to_string();
    assert!(
        text.contains("cannot read the AppRole secret id file"),
        "{text}"
    );
}

#[test]
fn wiped_bytes_keep_their_content() {
    let bytes = wiped_bytes(b"plaintext".to_vec());
    let copy = bytes.clone();
    drop(bytes);
    assert_eq!(&copy[..], b"plaintext");
}
