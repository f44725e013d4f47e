//! The `xks-proxy` binary end to end: the README's demo command answered by the
//! curl commands it prints, the soft key store subcommands, `check-config`, and
//! `serve` with a SIGHUP reload (key rotation, credential rotation) and a SIGTERM
//! drain. Everything listens on 127.0.0.1.
#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_xks-proxy");
const PASSPHRASE: &str = "correct horse battery staple, but longer";

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("XKS_SOFT_PASSPHRASE", PASSPHRASE)
        .env_remove("XKS_SOFT_KEY_FILE")
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Kills the child if the test fails midway.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (bounded) for the child to exit and returns its status code.
fn wait_exit(guard: &mut Guard) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Some(status) = guard.0.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the proxy did not exit within 15 s");
}

fn sh(command: &str) -> serde_json::Value {
    let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
    assert!(out.status.success(), "{command}\n{}", stderr(&out));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn need_curl() {
    let ok = Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "curl (7.75 or newer) is needed: apt-get install -y curl"
    );
}

/// The README's first command: the demo prints working curl commands.
#[test]
fn demo_answers_the_curl_commands_it_prints() {
    need_curl();
    let child = Command::new(BIN)
        .args(["demo", "--json", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let mut out = BufReader::new(guard.0.stdout.take().unwrap());
    let mut json = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo exited early: {json}"
        );
        json.push_str(&line);
        if line.trim_end() == "}" {
            break;
        }
    }
    let info: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(info["uri_path"], "/demo/kms/xks/v1");
    assert_eq!(info["keys"].as_array().unwrap().len(), 5);

    let health = sh(info["curl_health"].as_str().unwrap());
    assert_eq!(health["ekmFleetDetails"][0]["healthStatus"], "ACTIVE");
    let encrypted = sh(info["curl_encrypt"].as_str().unwrap());
    assert_eq!(encrypted["ciphertext"].as_str().unwrap().len(), 16);
    assert_eq!(
        encrypted["ciphertextDataIntegrityValue"]
            .as_str()
            .unwrap()
            .len(),
        44
    );

    signal(&guard.0, "TERM");
    assert_eq!(wait_exit(&mut guard), Some(0));
    let mut logs = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("SIGTERM received"), "{logs}");
    // The demo's plaintext, "Hello World!", never reaches the logs.
    assert!(!logs.contains("Hello World!") && !logs.contains("SGVsbG8gV29ybGQh"));
}

/// The soft subcommands, check-config, and serve with SIGHUP and SIGTERM.
#[test]
fn soft_store_check_config_serve_reload_and_drain() {
    need_curl();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(
        run(&["soft", "init", "--store", "keys.xks"], d)
            .status
            .success()
    );
    let again = run(&["soft", "init", "--store", "keys.xks"], d);
    assert!(!again.status.success(), "init never overwrites");
    let created = run(
        &[
            "soft",
            "create-key",
            "--store",
            "keys.xks",
            "--key-id",
            "k1",
        ],
        d,
    );
    assert!(created.status.success(), "{}", stderr(&created));
    for args in [
        &[
            "soft",
            "create-key",
            "--store",
            "keys.xks",
            "--key-id",
            "k-enc",
            "--usage",
            "encrypt",
        ][..],
        &[
            "soft", "disable", "--store", "keys.xks", "--key-id", "k-enc",
        ],
        &["soft", "enable", "--store", "keys.xks", "--key-id", "k-enc"],
    ] {
        let out = run(args, d);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let listed = stdout(&run(&["soft", "list", "--store", "keys.xks", "--json"], d));
    let keys: Vec<serde_json::Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        keys.iter()
            .any(|k| k["keyId"] == "k1" && k["usage"] == "ENCRYPT,DECRYPT")
    );
    assert!(
        keys.iter()
            .any(|k| k["keyId"] == "k-enc" && k["usage"] == "ENCRYPT" && k["status"] == "ENABLED")
    );
    assert!(keys.iter().any(|k| k["healthCanary"] == true));

    // A TLS certificate for localhost from a throwaway CA.
    let ca = xks_server::devpki::DevCa::new("cli test CA").unwrap();
    let server = ca.issue_server(&["localhost"]).unwrap();
    std::fs::write(d.join("ca.pem"), ca.cert_pem()).unwrap();
    std::fs::write(d.join("server.pem"), server.cert_pem).unwrap();
    std::fs::write(d.join("server.key"), server.key_pem).unwrap();
    let port = free_port();
    let config = |akid: &str| {
        format!(
            r#"
[server]
listen = ["127.0.0.1:{port}"]
# One runtime worker: serving, reloading and draining do not need more.
worker_threads = 1
[server.tls]
cert = "server.pem"
key = "server.key"
[[tenant]]
name = "t1"
path_prefix = "/t1"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{akid}"
secret_access_key_file = "secret"
[backend]
type = "soft"
path = "keys.xks"
"#
        )
    };
    let secret = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
    std::fs::write(d.join("secret"), secret).unwrap();
    let akid1 = "AKIAI2SFODNN7EXAMPLE";
    let akid2 = "HGIE2BUAFNDMBCMSQVWLGCEXAMPLE";
    std::fs::write(d.join("proxy.toml"), config(akid1)).unwrap();

    // check-config: valid, then a broken file explained problem by problem.
    let ok = run(&["check-config", "--config", "proxy.toml"], d);
    assert!(ok.status.success(), "{}", stderr(&ok));
    std::fs::write(
        d.join("bad.toml"),
        config("lowercase-id").replace("path_prefix = \"/t1\"", "path_prefix = \"t1/\""),
    )
    .unwrap();
    let bad = run(&["check-config", "--config", "bad.toml"], d);
    assert_eq!(bad.status.code(), Some(64));
    let why = stderr(&bad);
    assert!(
        why.contains("tenant[0].path_prefix") && why.contains("tenant[0].credential[0]"),
        "{why}"
    );

    let child = Command::new(BIN)
        .args(["serve", "--config", "proxy.toml"])
        .current_dir(d)
        .env("XKS_SOFT_PASSPHRASE", PASSPHRASE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let url = format!("https://localhost:{port}/t1/kms/xks/v1");
    let curl = |akid: &str, path: &str, body: &str| {
        format!(
            "curl -s --cacert {ca} --aws-sigv4 aws:amz:eu-west-1:kms-xks-proxy --user {akid}:{secret} -H 'Content-Type: application/json' -d '{body}' {url}{path}",
            ca = d.join("ca.pem").display()
        )
    };
    let encrypt = r#"{"requestMetadata":{"awsPrincipalArn":"p","kmsKeyArn":"k","kmsOperation":"Encrypt","kmsRequestId":"r"},"plaintext":"AAAA","encryptionAlgorithm":"AES_GCM"}"#;
    wait_ready(&curl(
        akid1,
        "/health",
        r#"{"requestMetadata":{"kmsRequestId":"h","kmsOperation":"KmsHealthCheck"}}"#,
    ));
    let before = sh(&curl(akid1, "/keys/k1/encrypt", encrypt));
    assert_eq!(before["ciphertextMetadata"], "AQAAAAE=", "version 1");

    // Rotate the key and the credential, then SIGHUP.
    assert!(
        run(
            &["soft", "rotate", "--store", "keys.xks", "--key-id", "k1"],
            d
        )
        .status
        .success()
    );
    std::fs::write(d.join("proxy.toml"), config(akid2)).unwrap();
    signal(&guard.0, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let answer = sh(&curl(akid2, "/keys/k1/encrypt", encrypt));
        if answer.get("ciphertextMetadata").is_some() || Instant::now() > deadline {
            break answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        after["ciphertextMetadata"], "AQAAAAI=",
        "version 2 after reload: {after}"
    );
    let old = sh(&curl(akid1, "/keys/k1/encrypt", encrypt));
    assert_eq!(old["errorName"], "AuthenticationFailedException");

    signal(&guard.0, "TERM");
    assert_eq!(wait_exit(&mut guard), Some(0));
    let mut logs = String::new();
    guard
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("configuration reloaded"), "{logs}");
    assert!(!logs.contains(secret) && !logs.contains(PASSPHRASE));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls the health endpoint until the proxy answers (bounded).
fn wait_ready(command: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let out = Command::new("sh").arg("-c").arg(command).output().unwrap();
        if out.status.success() && String::from_utf8_lossy(&out.stdout).contains("ACTIVE") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the proxy did not become ready within 30 s");
}

/// A configuration file whose `[backend]` section is `backend`.
fn config_with_backend(dir: &Path, backend: &str) -> std::path::PathBuf {
    let path = dir.join("proxy.toml");
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\ninsecure_plain_http = true\n\
         [[tenant]]\nname = \"t\"\npath_prefix = \"\"\nkeys = [\"*\"]\n\
         [[tenant.credential]]\naccess_key_id = \"AKIAI2SFODNN7EXAMPLE\"\n\
         secret_access_key = \"FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE\"\n{backend}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn run_ok(args: &[&str], env: (&str, &str)) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env(env.0, env.1)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

/// `xks-proxy pkcs11 ...` on a SoftHSM2 token: create, new version, describe,
/// disable, enable, list.
#[test]
fn pkcs11_key_commands() {
    use xks_pkcs11::testing::SoftHsm;
    let hsm = SoftHsm::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_backend(
        dir.path(),
        &format!(
            "[backend]\ntype = \"pkcs11\"\nmodule = \"{}\"\npin_env = \"{}\"\n\
             [[backend.slots]]\ntoken_label = \"{}\"\n",
            hsm.module().display(),
            SoftHsm::PIN_ENV,
            hsm.token(1)
        ),
    );
    let config = config.to_str().unwrap();
    let pin = (SoftHsm::PIN_ENV, SoftHsm::USER_PIN);
    let created = run_ok(
        &[
            "pkcs11",
            "create-key",
            "--config",
            config,
            "--label",
            "cli-key",
        ],
        pin,
    );
    assert!(created.contains("cli-key"), "{created}");
    let version = run_ok(
        &[
            "pkcs11",
            "new-version",
            "--config",
            config,
            "--label",
            "cli-key",
        ],
        pin,
    );
    assert!(version.contains("cli-key.v2"), "{version}");
    let described = run_ok(
        &[
            "pkcs11", "describe", "--config", config, "--label", "cli-key",
        ],
        pin,
    );
    assert!(
        described.contains("cli-key.v2") && described.contains("256 bits"),
        "{described}"
    );
    for command in ["disable", "enable"] {
        run_ok(
            &["pkcs11", command, "--config", config, "--label", "cli-key"],
            pin,
        );
    }
    let listed = run_ok(&["pkcs11", "list", "--config", config], pin);
    assert!(
        listed.contains("cli-key") && listed.contains("xks-health-canary"),
        "{listed}"
    );
    let wrong = Command::new(BIN)
        .args(["pkcs11", "list", "--config", config])
        .env(SoftHsm::PIN_ENV, "0000")
        .output()
        .unwrap();
    assert!(!wrong.status.success(), "a wrong PIN must fail");
}

/// `xks-proxy vault ...` on a real OpenBao server: create, rotate, describe, list.
#[test]
fn vault_key_commands() {
    use xks_vault::testing::DevServer;
    let bao = DevServer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = config_with_backend(
        dir.path(),
        &format!(
            "[backend]\ntype = \"vault\"\naddresses = [\"{}\"]\n\
             [backend.auth]\nmethod = \"token\"\ntoken = {{ env = \"XKS_TEST_VAULT_TOKEN\" }}\n",
            bao.address()
        ),
    );
    let config = config.to_str().unwrap();
    let token = ("XKS_TEST_VAULT_TOKEN", bao.root_token());
    let created = run_ok(
        &[
            "vault",
            "create-key",
            "--config",
            config,
            "--key-id",
            "cli-key",
        ],
        token,
    );
    assert!(created.contains("latest version:         1"), "{created}");
    let rotated = run_ok(
        &[
            "vault",
            "rotate-key",
            "--config",
            config,
            "--key-id",
            "cli-key",
        ],
        token,
    );
    assert!(rotated.contains("latest version:         2"), "{rotated}");
    let described = run_ok(
        &[
            "vault",
            "describe-key",
            "--config",
            config,
            "--key-id",
            "cli-key",
        ],
        token,
    );
    assert!(
        described.contains("exportable:             false"),
        "{described}"
    );
    let listed = run_ok(&["vault", "list-keys", "--config", config], token);
    assert!(listed.contains("cli-key"), "{listed}");
}
