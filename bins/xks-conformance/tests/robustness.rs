//! The tester does not trust the proxy: a proxy that accepts connections and never
//! answers, one that answers HTML, one that resets every connection, and one that speaks
//! plain HTTP on the TLS port all give failed checks with reasons, within a bound, without
//! a panic; and the run's deadline cuts a slow run short.
#![expect(
    clippy::unwrap_used,
    reason = "misbehaving test servers: a failed setup step is a failed test"
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Pki, run_tester, target_args};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use xks_conformance::{Report, Status};

/// Accepts TCP connections and never sends a byte.
async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    addr
}

/// Accepts TCP connections and resets them at once.
async fn resetting() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_zero_linger();
            drop(tcp);
        }
    });
    addr
}

/// Answers anything with a plain-text HTTP/1.0 response, without TLS.
async fn plain_http() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0_u8; 1024];
                let _ = tcp.read(&mut buf).await;
                let _ = tcp
                    .write_all(
                        b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n\r\nnot TLS",
                    )
                    .await;
            });
        }
    });
    addr
}

/// A TLS server (certificate from `pki`) answering every request with an HTML page.
async fn html(pki: &Pki) -> SocketAddr {
    let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    let mut r = http::Response::new(Full::new(Bytes::from_static(
                        b"<html><body><h1>It works!</h1>\x00\xff</body></html>",
                    )));
                    r.headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("text/html"));
                    Ok::<_, std::convert::Infallible>(r)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

fn args(addr: SocketAddr, pki: &Pki, extra: &[&str]) -> Vec<String> {
    let mut args = target_args(addr, &pki.path("ca.pem"), "/p");
    args.extend(
        [
            "--timeout",
            "300ms",
            "--check-timeout",
            "10s",
            "--max-duration",
            "60s",
        ]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned()),
    );
    args
}

/// Runs every check against `addr`; asserts the run ends in time with failures and
/// without a tester panic.
async fn run_against(addr: SocketAddr, pki: &Pki, bound: Duration) -> Report {
    let started = Instant::now();
    let report = run_tester(&args(addr, pki, &[]), &[]).await;
    let took = started.elapsed();
    eprintln!("{}\n(took {took:?})", report.to_text());
    assert!(took < bound, "the run took {took:?}");
    assert!(!report.is_success());
    assert!(report.summary.failed > 20, "{}", report.summary());
    for r in &report.results {
        for p in &r.problems {
            assert!(
                !p.contains("internal error of the tester"),
                "{}: {p}",
                r.info.id
            );
        }
        if r.status == Status::Failed {
            assert!(
                !r.problems.is_empty(),
                "{} failed without a reason",
                r.info.id
            );
        }
    }
    assert_eq!(
        report.result("transport.tls-handshake").unwrap().status,
        Status::Failed
    );
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_proxy_gives_failed_checks_quickly() {
    let pki = Pki::new();
    let report = run_against(silent().await, &pki, Duration::from_secs(30)).await;
    let text = report.to_text();
    assert!(
        text.contains("did not answer in time") || text.contains("no handshake within"),
        "{text}"
    );
    assert!(text.contains("stopped sending"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_html_answering_proxy_gives_failed_checks() {
    let pki = Pki::new();
    let addr = html(&pki).await;
    let started = Instant::now();
    let report = run_tester(&args(addr, &pki, &[]), &[]).await;
    eprintln!("{}", report.to_text());
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(report.summary.failed > 50, "{}", report.summary());
    // TLS itself is fine; everything above it fails, with the HTML shown.
    assert_eq!(
        report.result("transport.tls-handshake").unwrap().status,
        Status::Passed
    );
    let json = report.result("transport.json-responses").unwrap();
    assert_eq!(json.status, Status::Failed);
    assert!(
        json.problems[0].contains("text/html"),
        "{:?}",
        json.problems
    );
    let health = report.result("health.kms-health-check").unwrap();
    assert_eq!(health.status, Status::Failed);
    assert!(
        health.evidence[0]
            .response
            .as_ref()
            .unwrap()
            .body
            .contains("It works!")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resetting_proxy_gives_failed_checks_quickly() {
    let pki = Pki::new();
    run_against(resetting().await, &pki, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_http_server_on_the_tls_port_gives_failed_checks() {
    let pki = Pki::new();
    let report = run_against(plain_http().await, &pki, Duration::from_secs(30)).await;
    let handshake = report.result("transport.tls-handshake").unwrap();
    assert!(
        handshake.problems[0].contains("TLS"),
        "{:?}",
        handshake.problems
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_deadline_cuts_a_slow_run_short() {
    let pki = Pki::new();
    let addr = silent().await;
    let mut args = target_args(addr, &pki.path("ca.pem"), "/p");
    args.extend(
        ["--timeout", "2s", "--max-duration", "3s"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let started = Instant::now();
    let report = run_tester(&args, &[]).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(report.incomplete.is_some());
    assert!(!report.is_success());
    assert!(report.results.iter().any(|r| {
        r.status == Status::NotRun
            && r.not_run_reason
                .as_deref()
                .is_some_and(|w| w.contains("not reached"))
    }));
    assert_eq!(report.summary.total, xks_conformance::catalog().len());
}
