use super::*;

fn id(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

/// A key set JSON with the given keys (id, versions) around a valid canary.
fn set_json(keys: &[(&str, &[u32])]) -> String {
    let material = "00".repeat(32);
    let records: Vec<String> = keys
        .iter()
        .map(|(id, versions)| {
            let versions: Vec<String> = versions
                .iter()
                .map(|v| format!(r#"{{"version":{v},"created":1,"material":"{material}"}}"#))
                .collect();
            format!(
                r#"{{"id":"{id}","usage":["ENCRYPT","DECRYPT"],"state":"ENABLED","created":1,"versions":[{}]}}"#,
                versions.join(",")
            )
        })
        .collect();
    format!(r#"{{"keys":[{}]}}"#, records.join(","))
}

fn parse(json: &str) -> Result<KeySet, Error> {
    let set: KeySet = serde_json::from_str(json).map_err(|e| Error::malformed_by("test", e))?;
    set.validate()?;
    Ok(set)
}

#[test]
fn a_new_set_holds_a_usable_canary() {
    let set = KeySet::with_canary(1_764_460_800).unwrap();
    set.validate().unwrap();
    let info = set.get(HEALTH_CANARY_KEY_ID).unwrap().info();
    assert!(info.health_canary);
    assert_eq!(info.usage, Usage::ENCRYPT_DECRYPT);
    assert_eq!(info.state, KeyState::Enabled);
    assert_eq!(info.versions, 1);
    assert_eq!(
        info.created,
        UNIX_EPOCH + Duration::from_secs(1_764_460_800)
    );
}

#[test]
fn validation_rejects_what_serde_cannot() {
    let c = HEALTH_CANARY_KEY_ID;
    assert!(parse(&set_json(&[("a", &[1, 2]), (c, &[1])])).is_ok());
    for (what, json) in [
        ("unsorted", set_json(&[(c, &[1]), ("a", &[1])])),
        (
            "duplicate",
            set_json(&[("a", &[1]), ("a", &[1]), (c, &[1])]),
        ),
        ("no versions", set_json(&[("a", &[]), (c, &[1])])),
        ("gap", set_json(&[("a", &[1, 3]), (c, &[1])])),
        ("not from 1", set_json(&[("a", &[2]), (c, &[1])])),
        ("out of order", set_json(&[("a", &[2, 1]), (c, &[1])])),
        ("no canary", set_json(&[("a", &[1])])),
    ] {
        assert!(matches!(parse(&json), Err(Error::Malformed(_))), "{what}");
    }
    let disabled_canary = set_json(&[(c, &[1])]).replace("ENABLED", "DISABLED");
    assert!(matches!(parse(&disabled_canary), Err(Error::Malformed(_))));
}

#[test]
fn serde_rejects_bad_records() {
    let good = set_json(&[("a", &[1]), (HEALTH_CANARY_KEY_ID, &[1])]);
    for (from, to) in [
        (r#""id":"a""#, r#""id":"a/b""#),
        (r#""id":"a""#, r#""id":"""#),
        (
            r#""version":1,"created":1,"material":"0000"#,
            r#""version":0,"created":1,"material":"0000"#,
        ),
        (r#"["ENCRYPT","DECRYPT"]"#, r#"["ENCRYPT","ENCRYPT"]"#),
        (r#"["ENCRYPT","DECRYPT"]"#, r#"["SIGN"]"#),
        (r#""state":"ENABLED""#, r#""state":"enabled""#),
        (r#""created":1,"versions""#, r#""created":-1,"versions""#),
        (r#"{"keys":["#, r#"{"extra":1,"keys":["#),
    ] {
        let bad = good.replacen(from, to, 1);
        assert_ne!(bad, good, "{from} must occur");
        assert!(serde_json::from_str::<KeySet>(&bad).is_err(), "{to}");
    }
}

#[test]
fn usage_is_written_as_the_xks_list() {
    for (usage, json) in [
        (Usage::ENCRYPT_DECRYPT, r#"["ENCRYPT","DECRYPT"]"#),
        (Usage::ENCRYPT_ONLY, r#"["ENCRYPT"]"#),
        (Usage::DECRYPT_ONLY, r#"["DECRYPT"]"#),
        (Usage::NONE, "[]"),
    ] {
        assert_eq!(serde_json::to_string(&usage).unwrap(), json);
        assert_eq!(serde_json::from_str::<Usage>(json).unwrap(), usage);
        assert_eq!(format!("{usage:?}").replace(' ', ""), json);
    }
    let reversed: Usage = serde_json::from_str(r#"["DECRYPT","ENCRYPT"]"#).unwrap();
    assert_eq!(reversed, Usage::ENCRYPT_DECRYPT);
    assert_eq!(
        Usage::ENCRYPT_DECRYPT.key_usage(),
        [
            xks_protocol::KeyUsage::Encrypt,
            xks_protocol::KeyUsage::Decrypt
        ]
    );
    assert!(Usage::NONE.key_usage().is_empty());
}

#[test]
fn inserts_keep_ids_sorted_and_unique() {
    let mut set = KeySet::with_canary(1).unwrap();
    for name in ["zeta", "alpha", "mid", "A-upper"] {
        set.insert(&id(name), Usage::ENCRYPT_DECRYPT, KeyState::Enabled, 2)
            .unwrap();
    }
    set.validate().unwrap();
    let ids: Vec<&str> = set.keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(
        ids,
        ["A-upper", "alpha", "mid", HEALTH_CANARY_KEY_ID, "zeta"]
    );
    assert!(matches!(
        set.insert(&id("mid"), Usage::NONE, KeyState::Enabled, 3),
        Err(Error::KeyExists { id }) if id == "mid"
    ));
    // Fresh material per key.
    let a = &set.get("alpha").unwrap().versions[0].material;
    let z = &set.get("zeta").unwrap().versions[0].material;
    assert_ne!(a.as_bytes(), z.as_bytes());
}

#[test]
fn the_canary_cannot_be_created_or_changed() {
    let mut set = KeySet::with_canary(1).unwrap();
    let canary = id(HEALTH_CANARY_KEY_ID);
    assert!(matches!(
        set.insert(&canary, Usage::ENCRYPT_DECRYPT, KeyState::Enabled, 1),
        Err(Error::ReservedKeyId)
    ));
    assert!(matches!(set.get_mut(&canary), Err(Error::ReservedKeyId)));
    assert!(matches!(set.get_mut(&id("nope")), Err(Error::KeyNotFound { id }) if id == "nope"));
}

#[test]
fn rotation_adds_fresh_versions() {
    let mut set = KeySet::with_canary(1).unwrap();
    set.insert(&id("k"), Usage::ENCRYPT_DECRYPT, KeyState::Enabled, 10)
        .unwrap();
    let key = set.get_mut(&id("k")).unwrap();
    key.rotate(20).unwrap();
    key.rotate(30).unwrap();
    let info = key.info();
    assert_eq!((info.versions, info.current_version.get()), (3, 3));
    assert_eq!(info.created, UNIX_EPOCH + Duration::from_secs(10));
    assert_eq!(info.rotated, UNIX_EPOCH + Duration::from_secs(30));
    assert_ne!(
        key.versions[1].material.as_bytes(),
        key.versions[2].material.as_bytes()
    );
    set.validate().unwrap();

    // The last possible version cannot be rotated.
    let key = set.get_mut(&id("k")).unwrap();
    key.versions.last_mut().unwrap().version = KeyVersionNumber(KeyVersion::new(u32::MAX).unwrap());
    assert!(matches!(key.rotate(40), Err(Error::TooManyVersions { .. })));
}
