//! The `xks-mock-kms` binary end to end against our proxy on 127.0.0.1: every subcommand,
//! and KMS's diagnosis of every misconfiguration the issue names.
#![expect(
    clippy::unwrap_used,
    reason = "test fixtures: a failed unwrap is a failed test"
)]

#[path = "../../../crates/xks-client/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    AKID, OTHER_SECRET, ProxyOptions, SECRET, SlowMetadata, TestProxy, URI_PATH, canned_server,
    closed_port, silent_server, soft_keys,
};
use serde_json::Value;

/// Runs the binary with `args`, the secret in the environment.
async fn mock(args: Vec<String>, secret: &str) -> Output {
    let secret = secret.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xks-mock-kms"));
        command.args(&args).env_remove("XKS_MOCK_KMS_INTERNAL_KEY");
        if secret.is_empty() {
            command.env_remove("XKS_SECRET_ACCESS_KEY");
        } else {
            command.env("XKS_SECRET_ACCESS_KEY", secret);
        }
        command.output().unwrap()
    })
    .await
    .unwrap()
}

/// Settings for a proxy at `addr`: a KMS-valid endpoint (`https://localhost`) reached
/// through `--connect-to`, and a generous timeout unless the test is about timeouts.
fn settings(addr: SocketAddr, ca: &Path, dir: &Path) -> Vec<String> {
    [
        "--endpoint",
        "https://localhost",
        "--connect-to",
        &addr.to_string(),
        "--uri-path",
        URI_PATH,
        "--access-key-id",
        AKID,
        "--region",
        "eu-west-1",
        "--ca-file",
        &ca.display().to_string(),
        "--internal-key-file",
        &dir.join("internal.key").display().to_string(),
        "--timeout",
        "5s",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn with(mut base: Vec<String>, extra: &[&str]) -> Vec<String> {
    base.extend(extra.iter().map(|s| (*s).to_owned()));
    base
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subcommand_end_to_end() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let base = settings(proxy.addr, &proxy.ca_file(), proxy.dir.path());

    // create-key-store, from a profile file this time.
    let profile = common::write_file(
        proxy.dir.path(),
        "profile.toml",
        &format!(
            "endpoint = \"https://localhost\"\nconnect_to = \"{}\"\nuri_path = \"{URI_PATH}\"\n\
             access_key_id = \"{AKID}\"\nsecret_access_key = \"{SECRET}\"\nregion = \"eu-west-1\"\n\
             ca_file = \"ca.pem\"\ntimeout = \"5s\"\n",
            proxy.addr
        ),
    );
    let out = mock(
        vec![
            "--profile".into(),
            profile.display().to_string(),
            "--json".into(),
            "create-key-store".into(),
        ],
        "",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let store = &json(&out)["CustomKeyStore"];
    assert_eq!(store["ConnectionState"], "CONNECTED");
    assert_eq!(store["Health"]["KmsOperation"], "CreateCustomKeyStore");
    assert_eq!(store["Tls"]["Version"], "TLSv1.3");
    assert_eq!(store["Tls"]["SpecCipherSuite"], true);
    assert_eq!(store["Tls"]["Certificate"]["DnsNames"][0], "localhost");

    let out = mock(with(base.clone(), &["connect"]), SECRET).await;
    assert!(out.status.success(), "{}", text(&out));
    let report = text(&out);
    assert!(report.contains("ConnectionState CONNECTED"), "{report}");
    assert!(report.contains("Certificate validity"), "{report}");

    // create-key: accepted, refused (encrypt-only, disabled), not found.
    let out = mock(
        with(
            base.clone(),
            &["--json", "create-key", "--xks-key-id", "key-1"],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let key = &json(&out)["KeyMetadata"];
    assert!(
        key["Arn"]
            .as_str()
            .unwrap()
            .starts_with("arn:aws:kms:eu-west-1:111122223333:key/")
    );
    assert_eq!(key["ExternalKey"]["KeySpec"], "AES_256");
    for (id, exception) in [
        ("enc-only", "XksKeyInvalidConfigurationException"),
        ("disabled", "XksKeyInvalidConfigurationException"),
        ("no-such-key", "XksKeyNotFoundException"),
    ] {
        let out = mock(
            with(base.clone(), &["create-key", "--xks-key-id", id]),
            SECRET,
        )
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(exception), "{id}: {}", text(&out));
    }

    // encrypt / decrypt with an encryption context.
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "encrypt",
                "--xks-key-id",
                "key-1",
                "--plaintext",
                "hello",
                "--encryption-context",
                "purpose=test",
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let blob = json(&out)["CiphertextBlob"].as_str().unwrap().to_owned();
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "decrypt",
                "--ciphertext-blob",
                &blob,
                "--encryption-context",
                "purpose=test",
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(json(&out)["Plaintext"], "aGVsbG8=");
    // The wrong context: the proxy's InvalidCiphertextException, reported by KMS as
    // KMSInvalidStateException.
    let out = mock(
        with(
            base.clone(),
            &[
                "decrypt",
                "--ciphertext-blob",
                &blob,
                "--encryption-context",
                "purpose=other",
            ],
        ),
        SECRET,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(report.contains("KMSInvalidStateException"), "{report}");
    assert!(report.contains("InvalidCiphertextException"), "{report}");
    // A damaged blob never reaches the proxy.
    let out = mock(
        with(base.clone(), &["decrypt", "--ciphertext-blob", "AAAA"]),
        SECRET,
    )
    .await;
    assert!(
        text(&out).contains("InvalidCiphertextException"),
        "{}",
        text(&out)
    );

    // generate-data-key, then decrypt the data key.
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "generate-data-key",
                "--xks-key-id",
                "key-1",
                "--number-of-bytes",
                "32",
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let data_key = json(&out);
    let plaintext = data_key["Plaintext"].as_str().unwrap().to_owned();
    assert_eq!(plaintext.len(), 44);
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "decrypt",
                "--ciphertext-blob",
                data_key["CiphertextBlob"].as_str().unwrap(),
            ],
        ),
        SECRET,
    )
    .await;
    assert_eq!(json(&out)["Plaintext"], plaintext.as_str());

    // re-encrypt under key-2, through a blob file.
    let blob_file = common::write_file(proxy.dir.path(), "blob.txt", &blob);
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "re-encrypt",
                "--ciphertext-blob",
                &format!("@{}", blob_file.display()),
                "--source-encryption-context",
                "purpose=test",
                "--destination-xks-key-id",
                "key-2",
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let re = json(&out);
    assert_ne!(re["SourceKeyId"], re["KeyId"]);
    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "decrypt",
                "--ciphertext-blob",
                re["CiphertextBlob"].as_str().unwrap(),
                "--xks-key-id",
                "key-2",
            ],
        ),
        SECRET,
    )
    .await;
    assert_eq!(json(&out)["Plaintext"], "aGVsbG8=");

    // health-poll, twice.
    let out = mock(
        with(
            base.clone(),
            &["health-poll", "--count", "2", "--interval", "10ms"],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(text(&out).matches(": OK in").count(), 2, "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_proxy_diagnoses() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let ca = proxy.ca_file();
    let dir = proxy.dir.path();
    let base = settings(proxy.addr, &ca, dir);

    // Wrong credentials.
    let out = mock(with(base.clone(), &["create-key-store"]), OTHER_SECRET).await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(
        report.contains("XksProxyIncorrectAuthenticationCredentialException"),
        "{report}"
    );
    assert!(
        report.contains("ConnectionErrorCode: INVALID_CREDENTIALS"),
        "{report}"
    );

    // Wrong prefix.
    let mut wrong_prefix = base.clone();
    let at = wrong_prefix.iter().position(|a| a == URI_PATH).unwrap();
    wrong_prefix[at] = "/wrong/kms/xks/v1".into();
    let out = mock(with(wrong_prefix, &["--json", "connect"]), SECRET).await;
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["ConnectionState"], "FAILED");
    assert_eq!(
        report["Error"]["Code"],
        "XksProxyInvalidConfigurationException"
    );
    assert_eq!(
        report["ConnectionErrorCode"],
        "XKS_PROXY_INVALID_CONFIGURATION"
    );
    assert!(
        report["Cause"]
            .as_str()
            .unwrap()
            .contains("InvalidUriPathException")
    );

    // Nothing listens.
    let out = mock(
        settings(closed_port().await, &ca, dir)
            .into_iter()
            .chain(["create-key-store".into()])
            .collect(),
        SECRET,
    )
    .await;
    let report = text(&out);
    assert!(
        report.contains("XksProxyUriUnreachableException"),
        "{report}"
    );
    assert!(report.contains("XKS_PROXY_NOT_REACHABLE"), "{report}");

    // A web server that is not an XKS proxy.
    let html = canned_server(
        &proxy.pki,
        200,
        "text/html",
        "<html><body>Welcome to nginx!</body></html>",
    )
    .await;
    let out = mock(
        with(settings(html, &ca, dir), &["create-key-store"]),
        SECRET,
    )
    .await;
    let report = text(&out);
    assert!(
        report.contains("XksProxyInvalidResponseException"),
        "{report}"
    );
    assert!(report.contains("XKS_PROXY_INVALID_RESPONSE"), "{report}");
    assert!(report.contains("Welcome to nginx!"), "{report}");

    // Accepts and never answers: KMS's default 250 ms timeout.
    let mut silent = settings(silent_server().await, &ca, dir);
    silent.truncate(silent.len() - 2); // drop "--timeout 5s"
    let started = Instant::now();
    let out = mock(with(silent, &["create-key-store"]), SECRET).await;
    let report = text(&out);
    assert!(report.contains("XKS_PROXY_TIMED_OUT"), "{report}");
    assert!(report.contains("250 ms"), "{report}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // KMS's own parameter checks, before any call.
    let out = mock(
        with(
            base.clone(),
            &[
                "create-key-store",
                "--access-key-id",
                "lowercase-is-wrong-here",
            ],
        ),
        SECRET,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("ValidationException"), "{}", text(&out));
    let out = mock(
        with(
            base.clone(),
            &["create-key-store", "--endpoint", "http://localhost"],
        ),
        SECRET,
    )
    .await;
    assert!(
        text(&out).contains("must start with https://"),
        "{}",
        text(&out)
    );
    let out = mock(vec!["create-key-store".into()], "").await;
    assert_eq!(out.status.code(), Some(64), "{}", text(&out));
    assert!(text(&out).contains("--endpoint"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_diagnosis() {
    let proxy = TestProxy::start(ProxyOptions {
        expired_certificate: true,
        ..ProxyOptions::default()
    })
    .await;
    let base = settings(proxy.addr, &proxy.ca_file(), proxy.dir.path());
    let out = mock(with(base, &["connect"]), SECRET).await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(report.contains("ConnectionState FAILED"), "{report}");
    assert!(
        report.contains("XKS_PROXY_INVALID_TLS_CONFIGURATION"),
        "{report}"
    );
    assert!(report.contains("expired"), "{report}");
}

/// A proxy whose key manager needs 230 ms for GetKeyMetadata answers too late for a
/// 150 ms budget, whatever the machine's speed: the answer cannot come sooner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_proxy_times_out() {
    let proxy = TestProxy::start(ProxyOptions {
        key_manager: Arc::new(SlowMetadata {
            inner: soft_keys(),
            delay: Duration::from_millis(230),
        }),
        backend_timeout: "240ms",
        ..ProxyOptions::default()
    })
    .await;
    let mut base = settings(proxy.addr, &proxy.ca_file(), proxy.dir.path());
    base.truncate(base.len() - 2);
    let out = mock(
        with(
            base,
            &["--timeout", "150ms", "create-key", "--xks-key-id", "key-1"],
        ),
        SECRET,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out);
    assert!(
        report.contains("CustomKeyStoreInvalidStateException"),
        "{report}"
    );
    assert!(report.contains("XKS_PROXY_TIMED_OUT"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_short_runs() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let base = settings(proxy.addr, &proxy.ca_file(), proxy.dir.path());
    let pid = std::process::id().to_string();

    let out = mock(
        with(
            base.clone(),
            &[
                "--json",
                "bench",
                "--xks-key-id",
                "key-1",
                "--xks-key-id",
                "key-2",
                "--requests",
                "200",
                "--concurrency",
                "4",
                "--mix",
                "encrypt=2,decrypt=1,metadata=1,health=1",
                "--quiet",
                "--proxy-pid",
                &pid,
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let report = json(&out);
    assert_eq!(report["completed"], 200);
    assert_eq!(report["ok"], 200);
    assert_eq!(report["errors"].as_object().unwrap().len(), 0, "{report}");
    assert!(report["latency_ms"]["p50"].as_f64().unwrap() > 0.0);
    assert!(
        report["latency_ms"]["max"].as_f64().unwrap()
            >= report["latency_ms"]["p99"].as_f64().unwrap()
    );
    assert!(report["signer_us_per_request"].as_f64().unwrap() > 0.0);
    assert!(report["client_cpu_us_per_request"].is_number());
    assert!(report["proxy_cpu_us_per_request"].is_number());

    // Open loop at 100 req/s for 1.5 s on a one-thread runtime, text output, a progress
    // line once a second.
    let out = mock(
        with(
            base.clone(),
            &[
                "--threads",
                "1",
                "bench",
                "--xks-key-id",
                "key-1",
                "--mode",
                "open",
                "--rate",
                "100",
                "--duration",
                "1500ms",
            ],
        ),
        SECRET,
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("open loop, 100 req/s"), "{report}");
    assert!(report.contains("150 sent"), "{report}");
    assert!(report.contains("send lag ms  p50"), "{report}");
    assert!(report.contains("latency ms   p50"), "{report}");
    assert!(report.contains(" 0 failed"), "{report}");
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("[   1s] sent"), "{progress}");

    // A runtime needs at least one thread: a usage error (clap's status 2).
    let out = mock(
        with(base, &["--threads", "0", "bench", "--xks-key-id", "key-1"]),
        SECRET,
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--threads"), "{}", text(&out));
}
