use std::collections::HashMap;

use super::*;

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let map: HashMap<String, OsString> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
        .collect();
    move |name| map.get(name).cloned()
}

fn unlock_problem(result: Result<Unlock, Error>) -> String {
    match result {
        Err(Error::Unlock(e)) => e.to_string(),
        other => panic!("expected an unlock error, got {other:?}"),
    }
}

#[test]
fn env_passphrase_alone() {
    let unlock = Unlock::from_vars(vars(&[("XKS_SOFT_PASSPHRASE", "hunter2 but longer")])).unwrap();
    assert_eq!(unlock.kind(), SecretKind::Passphrase);
    assert_eq!(&*unlock.secret().unwrap(), b"hunter2 but longer");
}

#[test]
fn env_key_file_alone() {
    let unlock = Unlock::from_vars(vars(&[("XKS_SOFT_KEY_FILE", "/etc/xks/store.key")])).unwrap();
    match unlock {
        Unlock::KeyFile(path) => assert_eq!(path, Path::new("/etc/xks/store.key")),
        other => panic!("expected a key file, got {other:?}"),
    }
}

#[test]
fn env_needs_exactly_one() {
    let neither = unlock_problem(Unlock::from_vars(vars(&[])));
    assert!(neither.contains("neither"), "{neither}");
    assert!(neither.contains("XKS_SOFT_PASSPHRASE") && neither.contains("XKS_SOFT_KEY_FILE"));

    let both = unlock_problem(Unlock::from_vars(vars(&[
        ("XKS_SOFT_PASSPHRASE", "secret passphrase"),
        ("XKS_SOFT_KEY_FILE", "/k"),
    ])));
    assert!(both.contains("both"), "{both}");
    // The message names the variables, never the passphrase.
    assert!(!both.contains("secret passphrase"));

    // An empty variable counts as unset.
    let empty = Unlock::from_vars(vars(&[
        ("XKS_SOFT_PASSPHRASE", ""),
        ("XKS_SOFT_KEY_FILE", "/k"),
    ]));
    assert!(matches!(empty, Ok(Unlock::KeyFile(_))));
    let all_empty = unlock_problem(Unlock::from_vars(vars(&[
        ("XKS_SOFT_PASSPHRASE", ""),
        ("XKS_SOFT_KEY_FILE", ""),
    ])));
    assert!(all_empty.contains("neither"));
}

#[cfg(unix)]
#[test]
fn env_passphrase_must_be_unicode() {
    use std::os::unix::ffi::OsStringExt;
    let invalid = OsString::from_vec(vec![b'a', 0xff, b'b']);
    let result =
        Unlock::from_vars(move |name| (name == Unlock::PASSPHRASE_VAR).then(|| invalid.clone()));
    assert!(unlock_problem(result).contains("Unicode"));
}

#[test]
fn from_env_reads_the_process_environment() {
    // The test process sets neither variable (and tests must not set them).
    if std::env::var_os(Unlock::PASSPHRASE_VAR).is_none()
        && std::env::var_os(Unlock::KEY_FILE_VAR).is_none()
    {
        assert!(unlock_problem(Unlock::from_env()).contains("neither"));
    }
}

#[test]
fn empty_passphrase_is_refused() {
    assert!(matches!(Passphrase::new(""), Err(Error::Unlock(_))));
}

#[test]
fn debug_never_shows_the_passphrase() {
    let passphrase = Passphrase::new("correct horse battery staple").unwrap();
    let unlock = Unlock::Passphrase(passphrase.clone());
    for text in [
        format!("{passphrase:?}"),
        format!("{unlock:?}"),
        format!("{unlock:#?}"),
    ] {
        assert!(!text.contains("correct horse"), "{text}");
        assert!(text.contains("redacted"), "{text}");
    }
}

#[test]
fn created_key_file_is_private_and_unlocks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    let unlock = Unlock::create_key_file(&path).unwrap();
    assert_eq!(unlock.kind(), SecretKind::KeyFile);

    let contents = fs::read(&path).unwrap();
    assert_eq!(contents.len(), 65);
    assert_eq!(contents[64], b'\n');
    assert!(contents[..64].iter().all(u8::is_ascii_hexdigit));
    // The trailing newline is not part of the secret.
    assert_eq!(&*unlock.secret().unwrap(), &contents[..64]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Never overwrites.
    assert!(matches!(
        Unlock::create_key_file(&path),
        Err(Error::Write { .. })
    ));
    assert_eq!(fs::read(&path).unwrap(), contents);
    // Two key files differ.
    let other = Unlock::create_key_file(dir.path().join("other.key")).unwrap();
    assert_ne!(*other.secret().unwrap(), *unlock.secret().unwrap());
}

#[test]
fn key_file_contents_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    let secret = |bytes: &[u8]| {
        fs::write(&path, bytes).unwrap();
        Unlock::KeyFile(path.clone()).secret()
    };
    // Binary contents are used as they are, only trailing white space is dropped.
    let raw: Vec<u8> = (0..32).map(|i| i * 7 + 1).collect();
    assert_eq!(&*secret(&raw).unwrap(), &raw[..]);
    assert_eq!(
        &*secret(b"0123456789abcdef \r\n\t").unwrap(),
        b"0123456789abcdef"
    );
    for short in [
        &b""[..],
        b"\n",
        b"0123456789abcde\n",
        b"               \n                 ",
    ] {
        assert!(
            matches!(secret(short), Err(Error::Unlock(_))),
            "{short:?} is too short"
        );
    }
    assert!(matches!(
        secret(&vec![b'a'; 64 * 1024 + 1]),
        Err(Error::Unlock(_))
    ));
    assert!(secret(&vec![b'a'; 64 * 1024]).is_ok());

    let missing = Unlock::KeyFile(dir.path().join("missing")).secret();
    assert!(matches!(missing, Err(Error::Read { .. })));
}

#[test]
fn key_material_round_trips_as_hex_and_never_prints() {
    let bytes: [u8; KEY_LEN] = std::array::from_fn(|i| u8::try_from(i * 3).unwrap());
    let key = KeyMaterial::from_bytes(bytes);
    let json = serde_json::to_string(&key).unwrap();
    assert_eq!(json, format!("\"{}\"", hex::encode(bytes)));
    let back: KeyMaterial = serde_json::from_str(&json).unwrap();
    assert_eq!(back.as_bytes(), &bytes);

    let debug = format!("{key:?}");
    assert!(
        !debug.contains(&hex::encode(bytes)) && !debug.contains("0, 3, 6"),
        "{debug}"
    );

    for bad in [
        "\"00\"",
        "\"zz\"",
        &format!("\"{}\"", "g".repeat(64)),
        "[0,1]",
        "7",
    ] {
        assert!(serde_json::from_str::<KeyMaterial>(bad).is_err(), "{bad}");
    }
}

#[test]
fn generated_material_differs() {
    let a = KeyMaterial::generate().unwrap();
    let b = KeyMaterial::generate().unwrap();
    assert_ne!(a.as_bytes(), b.as_bytes());
    assert_ne!(a.as_bytes(), &[0; KEY_LEN]);
}
