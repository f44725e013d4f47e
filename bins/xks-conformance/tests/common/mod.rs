//! Test support: our proxy on 127.0.0.1 with TLS from a throwaway CA, two tenants, two
//! credentials on the first, keys in every role, optionally mTLS; and helpers to run the
//! tester against it.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the support code"
)]

pub(crate) mod faulty;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser as _;
use xks_conformance::{Cli, Report, Selection, Settings, Status};
use xks_keymanager::KeyManager;
use xks_protocol::KeyId;
use xks_server::devpki::{DevCa, Validity, self_signed_client};
use xks_server::{Config, Proxy, Server};
use xks_soft::{KeyState, SoftKeyManager, Usage};

/// A SigV4 credential.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cred {
    pub(crate) id: &'static str,
    pub(crate) secret: &'static str,
}

/// Tenant A's first credential.
pub(crate) const A1: Cred = Cred {
    id: "AKIAI2SFODNN7EXAMPLE",
    secret: "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE",
};
/// Tenant A's second credential (rotation).
pub(crate) const A2: Cred = Cred {
    id: "BFUKGZ3YJCWHCMJELVTBAFDX",
    secret: "AB4DJIX9AEl9HaolJ/qfv+kypL5fLu/IAheUFPYCFXo=",
};
/// Tenant B's credential.
pub(crate) const B1: Cred = Cred {
    id: "WRC4HRKFDYWINQAXRVUIBC5I",
    secret: "nTuGcQFqR7/yVmMx4Nmfz64z9xjPZj+KKCYeRxdmjGI=",
};

/// The subject KMS presents for mTLS.
pub(crate) const KMS_CN: &str = "cks.kms.eu-west-1.amazonaws.com";

/// The key ids of every role.
pub(crate) const KEY_1: &str = "key-1";
pub(crate) const KEY_2: &str = "key-2";
pub(crate) const ENCRYPT_ONLY: &str = "encrypt-only";
pub(crate) const DECRYPT_ONLY: &str = "decrypt-only";
pub(crate) const NO_USAGE: &str = "no-usage";
pub(crate) const DISABLED: &str = "disabled";

/// A CA and files written for it in a temporary directory.
pub(crate) struct Pki {
    pub(crate) ca: DevCa,
    pub(crate) dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let pki = Self {
            ca: DevCa::new("xks-conformance test CA").unwrap(),
            dir: tempfile::tempdir().unwrap(),
        };
        pki.write("ca.pem", &pki.ca.cert_pem());
        let server = pki.ca.issue_server(&["localhost", "127.0.0.1"]).unwrap();
        pki.write("server.pem", &server.cert_pem);
        pki.write("server.key", &server.key_pem);
        pki
    }

    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Client certificates: the accepted one, and expired, wrong-CN and other-CA ones.
    pub(crate) fn client_certificates(&self) {
        let good = self.ca.issue_client(KMS_CN, Validity::Current).unwrap();
        self.write("client.pem", &good.cert_pem);
        self.write("client.key", &good.key_pem);
        let expired = self.ca.issue_client(KMS_CN, Validity::Expired).unwrap();
        self.write("expired.pem", &expired.cert_pem);
        self.write("expired.key", &expired.key_pem);
        let wrong = self
            .ca
            .issue_client("cks.kms.evil.example.com", Validity::Current)
            .unwrap();
        self.write("wrong-cn.pem", &wrong.cert_pem);
        self.write("wrong-cn.key", &wrong.key_pem);
        let other = DevCa::new("another CA")
            .unwrap()
            .issue_client(KMS_CN, Validity::Current)
            .unwrap();
        self.write("other-ca.pem", &other.cert_pem);
        self.write("other-ca.key", &other.key_pem);
        // Unused by the tester (it makes its own), kept to show the fixture is complete.
        let selfsigned = self_signed_client(KMS_CN).unwrap();
        self.write("self-signed.pem", &selfsigned.cert_pem);
    }
}

/// Our proxy, running until dropped.
pub(crate) struct OurProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: Pki,
    pub(crate) mtls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Which key manager serves the proxy.
pub(crate) enum Backend {
    /// An ephemeral software key store with keys in every role.
    Soft,
    /// A `[backend]` TOML section opened by `Proxy::build`, with its environment.
    Toml(String, HashMap<String, String>),
}

/// The configuration of our proxy: two tenants (A with two credentials), TLS, optional
/// mTLS, and `backend`.
fn config_toml(pki: &Pki, mtls: bool, backend: &str) -> String {
    let client_auth = if mtls {
        format!(
            "[server.tls.client_auth]\nca = \"{}\"\nallowed_subjects = [\"{KMS_CN}\"]\n",
            pki.path("ca.pem").display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
shutdown_grace = "1s"
[server.tls]
cert = "{cert}"
key = "{key}"
{client_auth}
[limits]
backend_timeout = "240ms"

[[tenant]]
name = "tenant-a"
path_prefix = "/tenant-a"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{a1}"
secret_access_key = "{a1s}"
[[tenant.credential]]
access_key_id = "{a2}"
secret_access_key = "{a2s}"

[[tenant]]
name = "tenant-b"
path_prefix = "/tenant-b"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{b1}"
secret_access_key = "{b1s}"

{backend}
"#,
        cert = pki.path("server.pem").display(),
        key = pki.path("server.key").display(),
        a1 = A1.id,
        a1s = A1.secret,
        a2 = A2.id,
        a2s = A2.secret,
        b1 = B1.id,
        b1s = B1.secret,
    )
}

/// An ephemeral software key store holding a key in every role.
pub(crate) fn soft_keys() -> Arc<dyn KeyManager> {
    let keys = [
        (KEY_1, Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        (KEY_2, Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        (ENCRYPT_ONLY, Usage::ENCRYPT_ONLY, KeyState::Enabled),
        (DECRYPT_ONLY, Usage::DECRYPT_ONLY, KeyState::Enabled),
        (NO_USAGE, Usage::NONE, KeyState::Enabled),
        (DISABLED, Usage::ENCRYPT_DECRYPT, KeyState::Disabled),
    ]
    .map(|(id, usage, state)| (KeyId::new(id).unwrap(), usage, state));
    Arc::new(SoftKeyManager::ephemeral(keys).unwrap())
}

impl OurProxy {
    pub(crate) async fn start(backend: Backend, mtls: bool) -> Self {
        let pki = Pki::new();
        if mtls {
            pki.client_certificates();
        }
        let (section, env, km) = match backend {
            Backend::Soft => (
                "[backend]\ntype = \"soft\"\npath = \"unused\"\n".to_owned(),
                HashMap::new(),
                Some(soft_keys()),
            ),
            Backend::Toml(section, env) => (section, env, None),
        };
        let config = Config::from_toml(&config_toml(&pki, mtls, &section)).unwrap();
        let proxy = match km {
            Some(km) => Proxy::with_key_manager(&config, &env, km).await.unwrap(),
            None => Proxy::build(&config, &env).await.unwrap(),
        };
        let server = Server::bind(&config.server, proxy.tls, proxy.app)
            .await
            .unwrap();
        let addr = server.api_addrs().unwrap()[0];
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = rx.await;
        }));
        Self {
            addr,
            pki,
            mtls,
            stop: Some(tx),
        }
    }

    /// The tester's arguments for this proxy: every role, both tenants, both credentials,
    /// the ping path, and (with mTLS) every client certificate.
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = target_args(self.addr, &self.pki.path("ca.pem"), "/tenant-a");
        args.extend(
            [
                "--second-access-key-id",
                A2.id,
                "--second-secret-access-key",
                A2.secret,
                "--other-access-key-id",
                B1.id,
                "--other-secret-access-key",
                B1.secret,
                "--other-uri-path",
                "/tenant-b/kms/xks/v1",
                "--second-key-id",
                KEY_2,
                "--encrypt-only-key-id",
                ENCRYPT_ONLY,
                "--decrypt-only-key-id",
                DECRYPT_ONLY,
                "--no-usage-key-id",
                NO_USAGE,
                "--disabled-key-id",
                DISABLED,
                "--ping-path",
                "/ping",
            ]
            .map(str::to_owned),
        );
        if self.mtls {
            for (flag, file) in [
                ("--client-cert", "client.pem"),
                ("--client-key", "client.key"),
                ("--expired-client-cert", "expired.pem"),
                ("--expired-client-key", "expired.key"),
                ("--wrong-cn-client-cert", "wrong-cn.pem"),
                ("--wrong-cn-client-key", "wrong-cn.key"),
                ("--other-ca-client-cert", "other-ca.pem"),
                ("--other-ca-client-key", "other-ca.key"),
            ] {
                args.push(flag.to_owned());
                args.push(self.pki.path(file).display().to_string());
            }
        }
        args
    }
}

impl Drop for OurProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The tester's target arguments: endpoint `https://localhost:<port>` reached at `addr`,
/// the CA file, URI path `<prefix>/kms/xks/v1`, credential A1, main key `key-1`, and
/// counts small enough for a test.
pub(crate) fn target_args(addr: SocketAddr, ca: &Path, prefix: &str) -> Vec<String> {
    [
        "--endpoint".to_owned(),
        format!("https://localhost:{}", addr.port()),
        "--connect-to".to_owned(),
        addr.to_string(),
        "--ca-file".to_owned(),
        ca.display().to_string(),
        "--uri-path".to_owned(),
        format!("{prefix}/kms/xks/v1"),
        "--access-key-id".to_owned(),
        A1.id.to_owned(),
        "--secret-access-key".to_owned(),
        A1.secret.to_owned(),
        "--key-id".to_owned(),
        KEY_1.to_owned(),
        "--iv-count".to_owned(),
        "200".to_owned(),
        "--latency-samples".to_owned(),
        "10".to_owned(),
    ]
    .into()
}

/// Parses `args` as the command line would.
pub(crate) fn cli(args: &[String]) -> Cli {
    let mut argv = vec!["xks-conformance".to_owned()];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).unwrap()
}

/// Runs the checks `only` selects (all when empty) with `args`.
pub(crate) async fn run_tester(args: &[String], only: &[&str]) -> Report {
    let cli = cli(args);
    let settings = Settings::load(&cli.settings, None).unwrap();
    xks_conformance::run(settings, &Selection::only(only.iter().copied()))
        .await
        .unwrap()
}

/// Fails the test, showing the report, if any check failed.
pub(crate) fn assert_no_failures(report: &Report) {
    let failed: Vec<&str> = report
        .results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| r.info.id)
        .collect();
    assert!(
        failed.is_empty() && report.incomplete.is_none(),
        "failed: {failed:?}\n{}",
        report.to_text()
    );
}

/// The status of check `id`, which must have been selected.
pub(crate) fn status(report: &Report, id: &str) -> Status {
    report
        .result(id)
        .unwrap_or_else(|| panic!("{id} was not run"))
        .status
}
