use std::time::Duration;

use super::*;

fn parse(text: &str) -> Result<Pkcs11Config, toml::de::Error> {
    toml::from_str(text)
}

const MINIMAL: &str = r#"
module = "/usr/lib/softhsm/libsofthsm2.so"
pin_env = "XKS_PKCS11_PIN"
[[slots]]
token_label = "xks"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let config = parse(MINIMAL).unwrap();
    config.validate().unwrap();
    assert_eq!(config.iv_mode, IvMode::Caller);
    assert!(!config.allow_extractable_keys);
    assert!(config.default_key_mapping);
    assert_eq!(config.sessions_per_slot, 4);
    assert_eq!(config.queue_depth, 256);
    assert_eq!(config.call_timeout, Duration::from_millis(200));
    assert_eq!(config.module_restart_backoff, Duration::from_secs(1));
    assert_eq!(config.module_restart_backoff_max, Duration::from_secs(60));
    assert_eq!(config.canary_label, "xks-health-canary");
    assert_eq!(
        config.slots[0].selector().unwrap(),
        TokenSelector::Label("xks".to_owned())
    );
}

#[test]
fn full_config_parses() {
    let config = parse(
        r#"
module = "/usr/lib/softhsm/libsofthsm2.so"
pin_file = "/run/secrets/pin"
iv_mode = "hsm_writes_back"
allow_extractable_keys = true
default_key_mapping = false
sessions_per_slot = 8
queue_depth = 64
call_timeout = "150ms"
key_refresh_interval = "5m"
failover_backoff = "2s"
module_restart_backoff = "500ms"
module_restart_backoff_max = "5m"
canary_label = "canary"
vendor = "Acme HSM"

[[slots]]
token_serial = "1234abcd"

[[slots]]
token_label = "replica"
module = "/opt/hsm/lib.so"
pin_env = "REPLICA_PIN"

[[keys]]
id = "payments"
label = "payments-aes"

[[keys]]
id = "old"
disabled = true
"#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.iv_mode, IvMode::HsmWritesBack);
    assert_eq!(config.call_timeout, Duration::from_millis(150));
    assert_eq!(config.key_refresh_interval, Duration::from_secs(300));
    assert_eq!(config.module_restart_backoff, Duration::from_millis(500));
    assert_eq!(config.module_restart_backoff_max, Duration::from_secs(300));
    assert_eq!(
        config.pin_of(&config.slots[0]).unwrap(),
        PinSource::File("/run/secrets/pin".into())
    );
    assert_eq!(
        config.pin_of(&config.slots[1]).unwrap(),
        PinSource::Env("REPLICA_PIN".into())
    );
    assert_eq!(
        config.module_of(&config.slots[1]).unwrap(),
        PathBuf::from("/opt/hsm/lib.so")
    );
    let payments = KeyId::new("payments").unwrap();
    assert_eq!(config.label_of(&payments), Some(("payments-aes", false)));
    let old = KeyId::new("old").unwrap();
    assert_eq!(config.label_of(&old), Some(("old", true)));
    assert_eq!(config.label_of(&KeyId::new("unlisted").unwrap()), None);
}

#[test]
fn appends_mode_parses() {
    let config = parse(&format!("iv_mode = \"hsm_appends\"\n{MINIMAL}")).unwrap();
    assert_eq!(config.iv_mode, IvMode::HsmAppends);
}

#[test]
fn unknown_fields_and_values_are_refused() {
    assert!(parse(&format!("pin = \"1234\"\n{MINIMAL}")).is_err());
    assert!(parse(&format!("iv_mode = \"random\"\n{MINIMAL}")).is_err());
    assert!(parse(&format!("{MINIMAL}slot = 0\n")).is_err());
}

#[test]
fn default_mapping_skips_version_labels_and_the_canary() {
    let config = parse(MINIMAL).unwrap();
    let id = |s| KeyId::new(s).unwrap();
    assert_eq!(config.label_of(&id("payments")), Some(("payments", false)));
    assert_eq!(config.label_of(&id("payments.v2")), None);
    assert_eq!(config.label_of(&id("xks-health-canary")), None);
}

#[test]
fn invalid_configs_say_what_is_wrong() {
    let cases = [
        ("pin_env = \"P\"\nslots = []", "at least one"),
        (
            "module = \"/m.so\"\n[[slots]]\ntoken_label = \"x\"",
            "pin_env or pin_file",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\npin_file = \"/p\"\n[[slots]]\ntoken_label = \"x\"",
            "only one",
        ),
        (
            "pin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"",
            "no module",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\n",
            "token_label or token_serial",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"\ntoken_serial = \"y\"",
            "both",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"\n[[slots]]\ntoken_label = \"x\"",
            "same token",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\nsessions_per_slot = 0\n[[slots]]\ntoken_label = \"x\"",
            "sessions_per_slot",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\ncall_timeout = \"0s\"\n[[slots]]\ntoken_label = \"x\"",
            "call_timeout",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\nmodule_restart_backoff = \"0s\"\n[[slots]]\ntoken_label = \"x\"",
            "module_restart_backoff must be more than zero",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\nmodule_restart_backoff = \"2m\"\n[[slots]]\ntoken_label = \"x\"",
            "module_restart_backoff_max must be at least",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"\n[[keys]]\nid = \"a\"\n[[keys]]\nid = \"a\"",
            "twice",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"\n[[keys]]\nid = \"a\"\nlabel = \"b.v2\"",
            ".v<n>",
        ),
        (
            "module = \"/m.so\"\npin_env = \"P\"\n[[slots]]\ntoken_label = \"x\"\n[[keys]]\nid = \"a\"\nlabel = \"xks-health-canary\"",
            "health check",
        ),
    ];
    for (text, expected) in cases {
        let config = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let err = config.validate().expect_err(text);
        let Error::Config(what) = &err else {
            panic!("{text}: {err:?}")
        };
        assert!(what.to_string().contains(expected), "{text}: {what}");
    }
    let many: String = (0..11)
        .map(|i| format!("[[slots]]\ntoken_label = \"t{i}\"\n"))
        .collect();
    let config = parse(&format!("module = \"/m.so\"\npin_env = \"P\"\n{many}")).unwrap();
    assert!(config.validate().is_err());
}

#[test]
fn debug_shows_the_pin_source_not_a_pin() {
    let config = parse(MINIMAL).unwrap();
    let debug = format!("{config:?}");
    assert!(debug.contains("XKS_PKCS11_PIN"));
}
