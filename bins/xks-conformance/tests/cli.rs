//! The command line through `app::run`: listing, filters, settings errors, a TOML file
//! with flags over it, JSON and JUnit output, exit statuses, and secrets kept out of every
//! output.

mod common;

use common::faulty::{Fault, FaultyProxy};
use common::{A1, Backend, KEY_1, OurProxy, cli};
use xks_conformance::app::{self, EXIT_FAILED, EXIT_OK, EXIT_USAGE};

/// Runs the command line with `args`; returns the exit status, stdout and stderr.
async fn run(args: &[&str]) -> (u8, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = app::run(cli(&args), &mut out, &mut err).await;
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[tokio::test]
async fn list_shows_every_check_in_each_format() {
    let (code, out, _) = run(&["--list"]).await;
    assert_eq!(code, EXIT_OK);
    for info in xks_conformance::catalog() {
        assert!(out.contains(info.id), "{} missing", info.id);
    }
    assert!(out.contains(&format!("{} checks", xks_conformance::catalog().len())));

    let (code, out, _) = run(&["--list", "--only", "tamper", "--format", "json"]).await;
    assert_eq!(code, EXIT_OK);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 15);
    assert_eq!(listed[0]["grade"], "required");

    let (code, out, _) = run(&["--list", "--format", "markdown"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(out.contains("| `encrypt.cdiv` | #74 | required |"));
}

#[tokio::test]
async fn usage_errors_exit_with_2() {
    let (code, _, err) = run(&["--list", "--only", "no-such-check"]).await;
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("no-such-check"), "{err}");

    let (code, _, err) = run(&["--endpoint", "ftp://x"]).await;
    assert_eq!(code, EXIT_USAGE);
    for wanted in ["--endpoint", "--uri-path", "--access-key-id", "--key-id"] {
        assert!(err.contains(wanted), "{wanted} not in {err}");
    }

    let (code, _, err) = run(&[
        "--endpoint",
        "https://xks.example.com",
        "--uri-path",
        "/p/kms/xks/v2",
        "--access-key-id",
        A1.id,
        "--secret-access-key",
        "too-short-and-secret",
        "--key-id",
        "key@1",
    ])
    .await;
    assert_eq!(code, EXIT_USAGE);
    assert!(
        err.contains("--uri-path") && err.contains("--key-id"),
        "{err}"
    );
    assert!(
        !err.contains("too-short-and-secret"),
        "the secret leaked: {err}"
    );

    let (code, _, err) = run(&["--format", "markdown"]).await;
    assert_eq!(code, EXIT_USAGE);
    assert!(err.contains("markdown"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toml_file_with_flags_over_it_json_and_junit() {
    let proxy = OurProxy::start(Backend::Soft, false).await;
    let secret_file = proxy.pki.write("secret", &format!("{}\n", A1.secret));
    let toml = format!(
        r#"
endpoint = "https://localhost:{port}"
connect_to = "{addr}"
uri_path = "/tenant-a/kms/xks/v1"
region = "eu-west-1"
ca_file = "ca.pem"

[credential]
access_key_id = "{akid}"
secret_access_key_file = "{secret_file}"

[keys]
main = "{KEY_1}"
second = "key-2"

[proxy]
ping_path = "/ping"

[run]
timeout = "3s"
iv_count = 20
latency_samples = 3
"#,
        port = proxy.addr.port(),
        addr = proxy.addr,
        akid = A1.id,
        secret_file = secret_file.display(),
    );
    let config = proxy.pki.write("conformance.toml", &toml);
    let config = config.display().to_string();

    // Flags override the file.
    let (code, _, err) = run(&["--config", &config, "--region", "us-west-1", "--validate"]).await;
    assert_eq!(code, EXIT_OK, "{err}");
    assert!(err.contains("region us-west-1"), "{err}");

    let junit = proxy.pki.path("report.xml");
    let junit_arg = junit.display().to_string();
    let (code, out, err) = run(&[
        "--config", &config, "--only", "health", "--only", "routing", "--only", "tamper", "--only",
        "errors", "--format", "json", "--junit", &junit_arg,
    ])
    .await;
    assert_eq!(code, EXIT_OK, "{out}\n{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["summary"]["failed"], 0);
    assert_eq!(report["region"], "eu-west-1");
    assert_eq!(report["uri_path"], "/tenant-a/kms/xks/v1");
    let results = report["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .all(|r| r["id"].as_str().unwrap().starts_with("health.")
                || r["id"].as_str().unwrap().starts_with("routing.")
                || r["id"].as_str().unwrap().starts_with("tamper.")
                || r["id"].as_str().unwrap().starts_with("errors."))
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"));
    assert!(xml.contains("<testsuite name=\"tamper\""));
    assert!(xml.contains("name=\"routing.get-health-405 (#7)\""));
    assert!(xml.contains("<skipped message=\"needs a secondary authorization policy"));
    for text in [&out, &err, &xml] {
        assert!(!text.contains(A1.secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_required_check_exits_with_1_and_shows_the_exchange() {
    let proxy = FaultyProxy::start().await;
    proxy.set(Fault::WrongCdiv);
    let mut args: Vec<String> = proxy.args();
    args.extend(["--only", "encrypt.cdiv", "--only", "encrypt.hello-world"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, _) = run(&args).await;
    assert_eq!(code, EXIT_FAILED, "{out}");
    assert!(out.contains("FAIL     #74"), "{out}");
    assert!(out.contains("Failures and warnings"), "{out}");
    assert!(
        out.contains("> POST /t/kms/xks/v1/keys/key-1/encrypt"),
        "{out}"
    );
    assert!(out.contains("Signature=<redacted>"), "{out}");
    assert!(out.contains("< HTTP/2 200"), "{out}");
    assert!(
        out.contains("2 checks: 1 passed, 0 warnings, 1 failed, 0 not run"),
        "{out}"
    );
    assert!(!out.contains(A1.secret));

    // Warnings alone do not fail the run.
    proxy.set(Fault::CdivAlways);
    let mut args: Vec<String> = proxy.args();
    args.extend(["--only", "encrypt.no-unrequested-cdiv"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, _) = run(&args).await;
    assert_eq!(code, EXIT_OK, "{out}");
    assert!(out.contains("WARN"), "{out}");
}

/// `docs/conformance.md`, next to the workspace root.
fn guide() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/conformance.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn the_guide_lists_the_current_checks() {
    let (code, list, _) = run(&["--list", "--format", "markdown"]).await;
    assert_eq!(code, EXIT_OK);
    assert!(
        guide().contains(&list),
        "docs/conformance.md is stale: regenerate its check list with \
         `xks-conformance --list --format markdown`"
    );
}

#[test]
fn the_guides_toml_example_is_a_valid_settings_file() {
    let guide = guide();
    let start = guide.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + guide[start..].find("```").unwrap();
    let example = &guide[start..end];
    let dir = tempfile::tempdir().unwrap();
    let errors =
        xks_conformance::Settings::from_toml(example, dir.path(), &Default::default()).unwrap_err();
    // Only the files and environment variables it names are missing here.
    for problem in errors.problems() {
        assert!(
            problem.contains("No such file")
                || problem.contains("is not set")
                || problem.contains("os error 2"),
            "{problem}"
        );
    }
}
