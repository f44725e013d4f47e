use std::collections::HashMap;

use super::*;
use crate::devpki::DevCa;

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";

/// A directory with a server certificate, its key, a client CA and a key store file.
fn files() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::new("config test CA").unwrap();
    let server = ca.issue_server(&["xks.example.com"]).unwrap();
    std::fs::write(dir.path().join("server.pem"), server.cert_pem).unwrap();
    std::fs::write(dir.path().join("server.key"), server.key_pem).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(dir.path().join("keys.xks"), b"not checked here").unwrap();
    std::fs::write(dir.path().join("secret"), format!("{SECRET}\n")).unwrap();
    dir
}

const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:8443", "[::1]:8443"]
ping_listen = "127.0.0.1:8080"
shutdown_grace = "20s"
[server.tls]
cert = "server.pem"
key = "server.key"
[server.tls.client_auth]
ca = "ca.pem"
allowed_subjects = ["cks.kms.eu-west-1.amazonaws.com"]

[limits]
max_plaintext_bytes = 8192
backend_timeout = "150ms"

[health]
fleet_size = 3
interval = "20s"

[logging]
format = "json"

[[tenant]]
name = "eu"
path_prefix = "/keystores/eu-1"
regions = ["eu-west-1", "eu-central-1"]
keys = ["payments", "ledger.v2"]
[[tenant.credential]]
access_key_id = "AKIAI2SFODNN7EXAMPLE"
secret_access_key_file = "secret"
[[tenant.credential]]
access_key_id = "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE"
secret_access_key_env = "XKS_TEST_SECRET"

[[tenant]]
name = "root"
path_prefix = ""
keys = ["*"]
[[tenant.credential]]
access_key_id = "BETWEEN2TENAND3TENCHARACTERS"
secret_access_key = "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456"

[backend]
type = "soft"
path = "keys.xks"
"#;

fn env() -> HashMap<String, String> {
    HashMap::from([(
        "XKS_TEST_SECRET".to_owned(),
        "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456".to_owned(),
    )])
}

fn load(dir: &tempfile::TempDir, text: &str) -> Result<Config, ConfigErrors> {
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    Config::from_file(&path)
}

fn problems(dir: &tempfile::TempDir, text: &str) -> Vec<String> {
    match load(dir, text).and_then(|c| c.validate(&env())) {
        Ok(()) => Vec::new(),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_complete_configuration_is_valid_and_paths_are_resolved() {
    let dir = files();
    let config = load(&dir, GOOD).unwrap();
    config.validate(&env()).unwrap();
    let tls = config.server.tls.as_ref().unwrap();
    assert_eq!(tls.cert, dir.path().join("server.pem"));
    assert_eq!(config.limits.max_plaintext_bytes, 8192);
    assert_eq!(config.limits.max_aad_bytes, 8192);
    assert_eq!(config.limits.backend_timeout, Duration::from_millis(150));
    assert_eq!(config.logging.format, LogFormat::Json);
    assert_eq!(config.tenants.len(), 2);
    let secret = config.tenants[0].credentials[0]
        .to_credential(&env())
        .unwrap();
    assert_eq!(secret.access_key_id().as_str(), AKID);
}

#[test]
fn every_problem_is_reported_with_its_location() {
    let dir = files();
    let bad = GOOD
        .replace(
            "shutdown_grace = \"20s\"",
            "max_connections = 0\nworker_threads = 0",
        )
        .replace("backend_timeout = \"150ms\"", "backend_timeout = \"300ms\"")
        .replace("max_plaintext_bytes = 8192", "max_plaintext_bytes = 100")
        .replace("fleet_size = 3", "fleet_size = 0")
        .replace("interval = \"20s\"", "interval = \"58s\"")
        .replace("/keystores/eu-1", "/keystores/eu-1/")
        .replace("\"eu-central-1\"", "\"EU CENTRAL\"")
        .replace("\"ledger.v2\"", "\"..\"")
        .replace(
            "secret_access_key_env = \"XKS_TEST_SECRET\"",
            "secret_access_key_env = \"XKS_UNSET\"",
        )
        .replace("BETWEEN2TENAND3TENCHARACTERS", AKID)
        .replace("keys.xks", "missing.xks");
    let found = problems(&dir, &bad);
    for expected in [
        "server.max_connections",
        "server.worker_threads: must be between 1 and 1024",
        "limits.backend_timeout",
        "limits: ",
        "health.fleet_size",
        "health: interval + timeout",
        "tenant[0].path_prefix",
        "tenant[0].regions: \"EU CENTRAL\"",
        "tenant[0].keys: \"..\"",
        "tenant[0].credential[1]: environment variable XKS_UNSET",
        "tenant[1].credential[0].access_key_id: access key ids must be unique",
        "backend.path: key store",
    ] {
        assert!(
            found.iter().any(|p| p.starts_with(expected)),
            "missing {expected:?} in {found:#?}"
        );
    }
}

#[test]
fn tls_is_required_unless_explicitly_insecure() {
    let dir = files();
    let start = GOOD.find("[server.tls]").unwrap();
    let end = GOOD.find("[limits]").unwrap();
    let no_tls = format!("{}{}", &GOOD[..start], &GOOD[end..]);
    let found = problems(&dir, &no_tls);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("server.tls: TLS is required")),
        "{found:?}"
    );
    let insecure = no_tls.replace("[server]\n", "[server]\ninsecure_plain_http = true\n");
    assert_eq!(problems(&dir, &insecure), Vec::<String>::new());
    let both = GOOD.replace("[server]\n", "[server]\ninsecure_plain_http = true\n");
    assert!(
        problems(&dir, &both)
            .iter()
            .any(|p| p.starts_with("server.insecure_plain_http"))
    );
}

#[test]
fn broken_tls_files_are_explained() {
    let dir = files();
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let found = problems(&dir, GOOD);
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("server.tls: private key") && p.contains("server.key")),
        "{found:?}"
    );
}

#[test]
fn secrets_come_from_exactly_one_place() {
    let dir = files();
    let two = GOOD.replace(
        "secret_access_key_file = \"secret\"",
        "secret_access_key_file = \"secret\"\nsecret_access_key = \"x\"",
    );
    assert!(
        problems(&dir, &two)
            .iter()
            .any(|p| p.contains("set exactly one of"))
    );
    let short = GOOD.replace(
        "VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456\"\n\n[backend]",
        "short\"\n\n[backend]",
    );
    assert!(
        problems(&dir, &short)
            .iter()
            .any(|p| p.starts_with("tenant[1].credential[0]"))
    );
}

#[test]
fn syntax_and_unknown_keys_are_errors() {
    let dir = files();
    let typo = GOOD.replace("fleet_size = 3", "fleet_sise = 3");
    let found = problems(&dir, &typo);
    assert_eq!(found.len(), 1);
    assert!(found[0].contains("fleet_sise"), "{found:?}");
    assert!(!problems(&dir, "[server").is_empty());
}

#[test]
fn prefixes_must_be_unique_and_well_formed() {
    for (prefix, ok) in [
        ("", true),
        ("/a", true),
        ("/a/b-c_D9", true),
        ("a", false),
        ("/a/", false),
        ("/a//b", false),
        ("/a.b", false),
        ("/a%20", false),
        ("/x/kms/xks/v1", true),
    ] {
        assert_eq!(check_prefix(prefix).is_ok(), ok, "{prefix:?}");
    }
    assert!(check_prefix(&format!("/{}", "a".repeat(117))).is_err());
    let dir = files();
    let dup = GOOD.replace("path_prefix = \"\"", "path_prefix = \"/keystores/eu-1\"");
    assert!(
        problems(&dir, &dup)
            .iter()
            .any(|p| p.contains("already used by tenant[0]"))
    );
}

#[test]
fn debug_never_shows_inline_secrets() {
    let dir = files();
    let config = load(&dir, GOOD).unwrap();
    let text = format!("{config:?}");
    assert!(
        !text.contains("VU6W2byoiBrhDqNGbx703oL0syCAmhlQgwNUT123456"),
        "{text}"
    );
    assert!(text.contains("<redacted>"));
}
