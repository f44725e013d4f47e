use super::*;

/// The backend enum the proxy embeds the configuration in.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Backend {
    Vault(VaultConfig),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    backend: Backend,
}

fn parse(text: &str) -> Result<VaultConfig, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let Backend::Vault(config) = file.backend;
    Ok(config)
}

const FULL: &str = r#"
[backend]
type = "vault"
addresses = ["https://bao-1.example:8200", "https://bao-2.example:8200/"]
mount = "xks/transit"
namespace = "team-a"
request_timeout = "120ms"
admin_timeout = "3s"
key_cache_ttl = "1s"
node_check_interval = "0s"
canary_key = "canary"
key_name_prefix = "xks_"
allow_unlisted_keys = false
coalesce = false
max_batch = 64
vendor = "HashiCorp"

[backend.tls]
ca_file = "/etc/xks/bao-ca.pem"
client_cert_file = "/etc/xks/client.pem"
client_key_file = "/etc/xks/client.key"

[backend.auth]
method = "approle"
role_id = { file = "/run/secrets/role-id" }
secret_id = { env = "XKS_VAULT_SECRET_ID" }

[[backend.keys]]
id = "payments-2024"
transit_key = "payments"
usage = "encrypt-only"

[[backend.keys]]
id = "-legacy"
disabled = true
"#;

#[test]
fn full_example_parses_and_validates() {
    let config = parse(FULL).unwrap();
    config.validate().unwrap();
    assert_eq!(config.addresses.len(), 2);
    assert_eq!(config.request_timeout, Duration::from_millis(120));
    assert_eq!(config.node_check_interval, Duration::ZERO);
    assert!(!config.coalesce);
    assert_eq!(
        config.auth_approle_mount(),
        Some("approle"),
        "the AppRole mount defaults to approle"
    );
    assert_eq!(config.keys[0].usage, KeyUsagePolicy::EncryptOnly);
    assert_eq!(config.transit_name_of(&config.keys[0]), "payments");
    // `-legacy` is not a Transit name; the prefix makes it one.
    assert_eq!(config.transit_name_of(&config.keys[1]), "xks_-legacy");
    assert!(config.keys[1].disabled);
}

#[test]
fn minimal_config_takes_the_defaults() {
    let config = parse(
        r#"
[backend]
type = "vault"
addresses = ["http://127.0.0.1:8200"]
auth = { method = "token", token = { env = "VAULT_TOKEN" } }
"#,
    )
    .unwrap();
    config.validate().unwrap();
    assert_eq!(config.mount, "transit");
    assert_eq!(config.request_timeout, Duration::from_millis(150));
    assert_eq!(config.canary_key, "xks-health-canary");
    assert!(config.coalesce);
    assert!(config.allow_unlisted_keys);
    assert!(matches!(
        config.auth,
        AuthConfig::Token { token: SecretSource::Env(ref v) } if v == "VAULT_TOKEN"
    ));
}

#[test]
fn unknown_fields_are_refused() {
    for text in [
        FULL.replace("vendor = \"HashiCorp\"", "vendr = \"x\""),
        FULL.replace("ca_file", "ca_fil"),
        FULL.replace("usage = \"encrypt-only\"", "usage = \"sign\""),
        FULL.replace("secret_id = { env", "secret_id = { value"),
        FULL.replace("method = \"approle\"", "method = \"kerberos\""),
    ] {
        assert!(parse(&text).is_err(), "{text}");
    }
}

fn token_config(addresses: &[&str]) -> VaultConfig {
    VaultConfig::new(
        addresses.iter().copied(),
        AuthConfig::Token {
            token: SecretSource::Env("T".to_owned()),
        },
    )
}

#[test]
fn validation_catches_mistakes() {
    let ok = token_config(&["http://127.0.0.1:8200"]);
    ok.validate().unwrap();
    type Change = Box<dyn Fn(&mut VaultConfig)>;
    let cases: Vec<(&str, Change)> = vec![
        ("no address", Box::new(|c| c.addresses.clear())),
        (
            "eleven addresses",
            Box::new(|c| c.addresses = (0..11).map(|i| format!("http://n{i}:8200")).collect()),
        ),
        ("ftp", Box::new(|c| c.addresses = vec!["ftp://x".into()])),
        (
            "no scheme",
            Box::new(|c| c.addresses = vec!["127.0.0.1:8200".into()]),
        ),
        (
            "duplicate",
            Box::new(|c| c.addresses = vec!["http://a:1".into(), "http://a:1/".into()]),
        ),
        (
            "https without CA",
            Box::new(|c| c.addresses = vec!["https://a:1".into()]),
        ),
        (
            "query",
            Box::new(|c| c.addresses = vec!["http://a:1/?x=1".into()]),
        ),
        (
            "user info",
            Box::new(|c| c.addresses = vec!["http://u:p@a:1".into()]),
        ),
        (
            "cert without key",
            Box::new(|c| c.tls.client_cert_file = Some("c.pem".into())),
        ),
        ("mount ..", Box::new(|c| c.mount = "a/../b".into())),
        ("mount slash", Box::new(|c| c.mount = "/transit".into())),
        (
            "zero timeout",
            Box::new(|c| c.request_timeout = Duration::ZERO),
        ),
        ("canary", Box::new(|c| c.canary_key = "-x".into())),
        ("prefix", Box::new(|c| c.key_name_prefix = "a/b".into())),
        ("batch", Box::new(|c| c.max_batch = 0)),
        ("big batch", Box::new(|c| c.max_batch = MAX_BATCH + 1)),
        ("namespace", Box::new(|c| c.namespace = Some("a b".into()))),
        (
            "key twice",
            Box::new(|c| {
                let key = KeyConfig {
                    id: KeyId::new("k").unwrap(),
                    transit_key: None,
                    usage: KeyUsagePolicy::default(),
                    disabled: false,
                };
                c.keys = vec![key.clone(), key];
            }),
        ),
        (
            "bad transit name",
            Box::new(|c| {
                c.keys = vec![KeyConfig {
                    id: KeyId::new("k").unwrap(),
                    transit_key: Some("-k".into()),
                    usage: KeyUsagePolicy::default(),
                    disabled: false,
                }];
            }),
        ),
        (
            "key is the canary",
            Box::new(|c| {
                c.keys = vec![KeyConfig {
                    id: KeyId::new("xks-health-canary").unwrap(),
                    transit_key: None,
                    usage: KeyUsagePolicy::default(),
                    disabled: false,
                }];
            }),
        ),
    ];
    for (what, change) in cases {
        let mut config = ok.clone();
        change(&mut config);
        assert!(
            matches!(config.validate(), Err(Error::Config(_))),
            "{what} was accepted"
        );
    }
}

#[test]
fn usage_policies() {
    use KeyUsagePolicy::*;
    assert!(EncryptDecrypt.encrypt() && EncryptDecrypt.decrypt());
    assert!(EncryptOnly.encrypt() && !EncryptOnly.decrypt());
    assert!(!DecryptOnly.encrypt() && DecryptOnly.decrypt());
    assert!(!None.encrypt() && !None.decrypt());
}

impl VaultConfig {
    fn auth_approle_mount(&self) -> Option<&str> {
        match &self.auth {
            AuthConfig::AppRole { mount, .. } => Some(mount),
            AuthConfig::Token { .. } => None,
        }
    }
}
