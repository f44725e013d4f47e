//! Transport and TLS (rows 1-6).

use std::time::{Duration, SystemTime};

use xks_client::{HttpVersions, Scheme, TlsErrorKind};

use super::Check;
use crate::ctx::Ctx;
use crate::evidence::{FailureKind, Scope};
use crate::tlsprobe::{self, Legacy};
use crate::verdict::{Verdict, Want};

/// A certificate closer to its end than this earns a warning.
const CERTIFICATE_MARGIN: Duration = Duration::from_secs(30 * 24 * 3600);

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "transport.tls-handshake",
            [1],
            Transport,
            Required,
            "A TLS 1.2 or 1.3 handshake succeeds with one of the four cipher suites the spec lists",
            tls_handshake
        ),
        check!(
            "transport.http1-fallback",
            [2],
            Transport,
            Required,
            "HTTP/1.1 works when h2 is not offered through ALPN (HTTP/2 support is reported)",
            http1_fallback
        ),
        check!(
            "transport.certificate",
            [3],
            Transport,
            Required,
            "The server certificate chains to the trust root and is valid for the endpoint's host name",
            certificate
        ),
        check!(
            "transport.certificate-lifetime",
            [3],
            Transport,
            Recommended,
            "The server certificate stays valid for at least 30 more days",
            certificate_lifetime
        ),
        check!(
            "transport.json-responses",
            [4],
            Transport,
            Required,
            "Every answer of the run, success or error, has Content-Type application/json and a JSON body",
            json_responses
        )
        .run_wide(),
        check!(
            "transport.keep-alive",
            [5],
            Transport,
            Recommended,
            "Several requests share one persistent connection",
            keep_alive
        ),
        check!(
            "transport.legacy-tls-rejected",
            [6],
            Transport,
            Recommended,
            "TLS 1.0 and TLS 1.1 handshakes are rejected",
            legacy_tls
        ),
    ]
}

fn plain_http(ctx: &Ctx) -> bool {
    ctx.settings().endpoint().scheme() == Scheme::Http
}

async fn tls_handshake(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    if plain_http(&ctx) {
        v.fail("the endpoint is plain http://; KMS only calls proxies over HTTPS");
        return v;
    }
    let ex = ctx
        .health("GetHealthStatus on a default connection", "KmsHealthCheck")
        .await;
    let mut default_listed = false;
    match (&ex.result, ex.received().and_then(|r| r.tls.clone())) {
        (Err(f), _) => {
            v.fail_on(&ex, format!("no TLS connection: {}", f.text));
            return v;
        }
        (Ok(_), None) => v.note("the answer carried no TLS information"),
        (Ok(_), Some(tls)) => {
            default_listed = tls.is_spec_cipher_suite();
            v.outcome(format!(
                "default handshake: {} {}{}",
                tls.protocol_version(),
                tls.cipher_suite(),
                if default_listed { "" } else { " (not listed)" }
            ));
        }
    }
    let mut any_listed = default_listed;
    for (name, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        match tlsprobe::handshake(ctx.settings(), version, true).await {
            Ok(n) => {
                any_listed = true;
                v.outcome(format!("{name} with only the listed suites: {}", n.suite));
            }
            Err(e) => v.outcome(format!("{name} with only the listed suites: {e}")),
        }
    }
    if !any_listed {
        v.fail(
            "no handshake negotiated one of TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256, \
             TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 or TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        );
    } else if !default_listed {
        v.note(
            "the proxy prefers a suite the spec does not list, but accepts a listed one when \
             only those are offered",
        );
    }
    v
}

async fn http1_fallback(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for (label, versions) in [
        (
            "GetHealthStatus over HTTP/1.1, no ALPN",
            HttpVersions::Http1WithoutAlpn,
        ),
        (
            "GetHealthStatus over HTTP/1.1, ALPN http/1.1 only",
            HttpVersions::Http1,
        ),
    ] {
        if versions == HttpVersions::Http1WithoutAlpn && plain_http(&ctx) {
            continue;
        }
        let client = match ctx.new_client(|c| c.with_http_versions(versions)) {
            Ok(c) => c,
            Err(e) => {
                v.fail(format!("cannot build an HTTP/1.1 client: {e}"));
                return v;
            }
        };
        let body = ctx.health_body("KmsHealthCheck");
        let ex = ctx
            .send(ctx.signed_json(label, ctx.health_path(), &body).via(client))
            .await;
        if v.expect(&ex, &[Want::Success]).is_some()
            && let Some(r) = ex.received()
            && r.version != "HTTP/1.1"
        {
            v.fail_on(&ex, format!("answered over {}, not HTTP/1.1", r.version));
        }
    }
    let ex = ctx
        .health("GetHealthStatus offering h2 and http/1.1", "KmsHealthCheck")
        .await;
    match ex.received() {
        Some(r) if r.version == "HTTP/2" => v.outcome("HTTP/1.1 works; HTTP/2 also works"),
        Some(r) => v.outcome(format!(
            "HTTP/1.1 works; offered h2, the proxy chose {}",
            r.version
        )),
        None => v.outcome(format!("HTTP/2 unknown: {}", ex.summary())),
    }
    v
}

async fn certificate(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    if plain_http(&ctx) {
        v.fail("the endpoint is plain http://: there is no server certificate");
        return v;
    }
    let ex = ctx
        .health("GetHealthStatus (certificate)", "KmsHealthCheck")
        .await;
    let host = ctx.settings().endpoint().host().to_owned();
    if host.parse::<std::net::IpAddr>().is_ok() {
        v.note(format!(
            "the endpoint host {host} is an IP address; KMS requires a DNS name (fact sheet §1.2)"
        ));
    }
    match &ex.result {
        Err(f) => {
            let why = match f.kind {
                FailureKind::Tls(TlsErrorKind::CertificateNameMismatch) => {
                    format!("the certificate is not valid for {host}")
                }
                FailureKind::Tls(TlsErrorKind::CertificateExpired) => {
                    "the certificate has expired or is not valid yet".to_owned()
                }
                FailureKind::Tls(TlsErrorKind::UnknownIssuer) => {
                    "the certificate does not chain to the trust root".to_owned()
                }
                FailureKind::Tls(_) => "the TLS handshake failed".to_owned(),
                _ => "no connection".to_owned(),
            };
            v.fail_on(&ex, format!("{why}: {}", f.text));
        }
        Ok(r) => match r.tls.as_ref().and_then(|t| t.leaf_certificate()) {
            Some(leaf) => {
                v.outcome(format!(
                    "{}; DNS names [{}]; IP addresses [{}]; issuer {}; valid until {}",
                    leaf.subject(),
                    leaf.dns_names().join(", "),
                    leaf.ip_addresses().join(", "),
                    leaf.issuer(),
                    leaf.not_after_utc()
                ));
                if ctx.settings().trust_pem.is_some() {
                    v.note(
                        "verified against the --ca-file roots; real KMS only trusts the public \
                         CAs of its TrustedCertificateAuthorities list (fact sheet §8.6)",
                    );
                }
            }
            None => v.note("handshake verified, but the leaf certificate could not be parsed"),
        },
    }
    v
}

async fn certificate_lifetime(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    if plain_http(&ctx) {
        return Verdict::not_run("not applicable: the endpoint is plain http://");
    }
    let ex = ctx
        .health("GetHealthStatus (certificate lifetime)", "KmsHealthCheck")
        .await;
    let Some(leaf) = ex
        .received()
        .and_then(|r| r.tls.as_ref())
        .and_then(|t| t.leaf_certificate())
    else {
        v.fail_on(&ex, format!("no certificate to inspect: {}", ex.summary()));
        return v;
    };
    match leaf.remaining_at(SystemTime::now()) {
        None => v.fail(format!(
            "the certificate expired at {}",
            leaf.not_after_utc()
        )),
        Some(left) if left < CERTIFICATE_MARGIN => v.fail(format!(
            "the certificate expires in {} days, at {}",
            left.as_secs() / 86_400,
            leaf.not_after_utc()
        )),
        Some(left) => v.outcome(format!(
            "valid for {} more days (until {})",
            left.as_secs() / 86_400,
            leaf.not_after_utc()
        )),
    }
    v
}

async fn json_responses(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let mut answers = 0;
    let mut bad = 0;
    for ex in ctx.shared().exchanges() {
        if ex.scope == Scope::None {
            continue;
        }
        let Some(r) = ex.received() else { continue };
        answers += 1;
        let json_type = r.content_type.as_deref().is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        let json_body = r.json_body;
        if json_type && json_body {
            continue;
        }
        bad += 1;
        let mut what = Vec::new();
        if !json_type {
            what.push(format!(
                "Content-Type is {}",
                r.content_type
                    .as_deref()
                    .map_or_else(|| "absent".to_owned(), |ct| format!("{ct:?}"))
            ));
        }
        if !json_body {
            what.push("the body is not JSON".to_owned());
        }
        if bad <= 10 {
            v.fail_on(
                &ex,
                format!("(from {}) HTTP {}: {}", ex.check, r.status, what.join(", ")),
            );
        }
    }
    if bad > 10 {
        v.fail(format!("... and {} more answers like these", bad - 10));
    }
    if answers == 0 {
        v.fail("the proxy did not answer any request of the run");
    } else {
        v.outcome(format!("{answers} answers checked, {bad} not JSON"));
    }
    v
}

async fn keep_alive(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let requests = 5;
    for (what, versions) in [
        ("h2 or HTTP/1.1 by ALPN", HttpVersions::Auto),
        ("HTTP/1.1", HttpVersions::Http1),
    ] {
        let client = match ctx.new_client(|c| c.with_http_versions(versions)) {
            Ok(c) => c,
            Err(e) => {
                v.fail(format!("cannot build a client: {e}"));
                return v;
            }
        };
        let mut version = "";
        let mut last = None;
        let mut answered = true;
        for i in 1..=requests {
            let body = ctx.health_body("KmsHealthCheck");
            let ex = ctx
                .send(
                    ctx.signed_json(
                        format!("GetHealthStatus {i} of {requests} on one client ({what})"),
                        ctx.health_path(),
                        &body,
                    )
                    .via(client.clone()),
                )
                .await;
            if v.expect(&ex, &[Want::Success]).is_none() {
                answered = false;
                break;
            }
            version = ex.received().map_or("", |r| r.version);
            last = Some(ex);
        }
        let (true, Some(last)) = (answered, last) else {
            continue;
        };
        let opened = client.connections_opened();
        if opened > 1 {
            v.fail_on(
                &last,
                format!(
                    "{version}: {requests} sequential requests needed {opened} connections; the \
                 proxy closes connections after answering (KMS's 250 ms budget leaves no room \
                 for a TLS handshake per call)"
                ),
            );
        } else {
            v.outcome(format!(
                "{version}: {requests} requests on {opened} connection"
            ));
        }
    }
    v
}

async fn legacy_tls(ctx: Ctx) -> Verdict {
    if plain_http(&ctx) {
        return Verdict::not_run("not applicable: the endpoint is plain http://");
    }
    let mut v = Verdict::new();
    for (name, version) in [("TLS 1.0", 0x0301), ("TLS 1.1", 0x0302)] {
        match tlsprobe::legacy_hello(ctx.settings(), version).await {
            Ok(Legacy::Accepted(chosen)) => {
                v.fail(format!("{name}: the proxy accepted it ({chosen})"));
                v.outcome(format!("{name}: accepted"));
            }
            Ok(Legacy::Rejected(why)) => v.outcome(format!("{name}: rejected ({why})")),
            Err(e) => v.fail(format!("{name}: inconclusive: {e}")),
        }
    }
    v
}
