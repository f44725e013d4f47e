//! Exchanges with the proxy: what was sent, what came back, and their redacted,
//! truncated form for reports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use xks_client::{TlsErrorKind, TlsInfo};
use xks_protocol::OperationKind;

/// How many characters of a body a report shows.
const BODY_SHOWN: usize = 1000;

/// One request and its answer (or why there was none), as the tester saw it.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// The check that sent it.
    pub(crate) check: &'static str,
    /// What the request is, e.g. `encrypt with a 4300-byte plaintext`.
    pub(crate) label: String,
    /// The XKS operation the path names, when it names one.
    pub(crate) operation: Option<OperationKind>,
    /// Which run-wide checks (rows 4, 121-124) look at it.
    pub(crate) scope: Scope,
    pub(crate) request: Sent,
    pub(crate) result: Result<Received, Failure>,
}

/// Which run-wide checks look at an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Row 4 (JSON on every answer) and, for error answers, rows 121-124.
    All,
    /// Row 4 only: answers with no defined XKS error body (405).
    JsonOnly,
    /// Neither: the load-balancer check, mTLS and TLS probes.
    None,
}

#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) status: u16,
    pub(crate) version: &'static str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) content_type: Option<String>,
    /// Whether the whole body parses as JSON (computed before any truncation).
    pub(crate) json_body: bool,
    pub(crate) body: Bytes,
    pub(crate) elapsed: Duration,
    pub(crate) tls: Option<Arc<TlsInfo>>,
}

/// Why there was no answer.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) kind: FailureKind,
    pub(crate) text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Not sent: signing failed, or the tester stopped sending after repeated failures.
    NotSent,
    Timeout,
    Connect,
    Tls(TlsErrorKind),
    Http,
    Other,
}

/// An exchange as a report shows it: the request (the `Authorization` signature and any
/// configured secret redacted, the body truncated) and the answer or transport error.
#[derive(Debug, Clone, Serialize)]
pub struct Evidence {
    /// The check that sent the request.
    pub check: String,
    /// What the request was for.
    pub label: String,
    /// What was sent.
    pub request: RequestEvidence,
    /// What came back, if anything did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseEvidence>,
    /// Why nothing came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport_error: Option<String>,
}

/// A request in a report.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEvidence {
    /// The method.
    pub method: String,
    /// The path (and query, if any).
    pub path: String,
    /// The headers, in order; `Authorization` with its signature redacted.
    pub headers: Vec<(String, String)>,
    /// The body as text, truncated.
    pub body: String,
    /// The body's full length in bytes.
    pub body_bytes: usize,
}

/// An answer in a report.
#[derive(Debug, Clone, Serialize)]
pub struct ResponseEvidence {
    /// The HTTP status.
    pub status: u16,
    /// `HTTP/1.1` or `HTTP/2`.
    pub http_version: String,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text, truncated.
    pub body: String,
    /// The body's full length in bytes.
    pub body_bytes: usize,
    /// Time from sending to the end of the body, in milliseconds.
    pub elapsed_ms: u64,
}

/// Replaces configured secrets in report text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    secrets: Vec<String>,
}

// === impl Exchange ===

impl Exchange {
    /// This exchange with the answer body cut to `max` bytes (a copy, so the rest is
    /// freed): for the run-wide log, which must not hold every large answer.
    pub(crate) fn truncated(&self, max: usize) -> Self {
        let mut copy = self.clone();
        if let Ok(r) = &mut copy.result
            && r.body.len() > max
        {
            r.body = Bytes::copy_from_slice(&r.body[..max]);
        }
        copy
    }

    /// The HTTP status, if an answer arrived.
    pub(crate) fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|r| r.status)
    }

    /// The answer, if one arrived.
    pub(crate) fn received(&self) -> Option<&Received> {
        self.result.as_ref().ok()
    }

    /// The answer body parsed as JSON, if it is JSON.
    pub(crate) fn json(&self) -> Option<serde_json::Value> {
        self.received()
            .and_then(|r| serde_json::from_slice(&r.body).ok())
    }

    /// The raw `errorName` string of an error body, if the body is a JSON object with a
    /// string `errorName`.
    pub(crate) fn error_name(&self) -> Option<String> {
        self.json().and_then(|v| {
            v.get("errorName")
                .and_then(|n| n.as_str().map(str::to_owned))
        })
    }

    /// One line: `HTTP 404 KeyNotFoundException`, `HTTP 200`, `HTTP 502 (text/html, 120
    /// bytes)`, or `no answer: ...`.
    pub(crate) fn summary(&self) -> String {
        match &self.result {
            Err(f) => format!("no answer ({})", f.text),
            Ok(r) => {
                if r.status >= 400
                    && let Some(name) = self.error_name()
                {
                    return format!("HTTP {} {name}", r.status);
                }
                if r.status == 200 && self.json().is_some_and(|v| v.is_object()) {
                    return "HTTP 200".to_owned();
                }
                let ct = r.content_type.as_deref().unwrap_or("no content type");
                if r.body.is_empty() {
                    format!("HTTP {} ({ct}, empty body)", r.status)
                } else {
                    format!(
                        "HTTP {} ({ct}, {} bytes: {})",
                        r.status,
                        r.body.len(),
                        excerpt(&r.body, 80)
                    )
                }
            }
        }
    }

    /// The report form of this exchange.
    pub(crate) fn evidence(&self, redactor: &Redactor) -> Evidence {
        let request = RequestEvidence {
            method: self.request.method.clone(),
            path: redactor.clean(&self.request.path),
            headers: self
                .request
                .headers
                .iter()
                .map(|(n, v)| {
                    let v = if n.eq_ignore_ascii_case("authorization") {
                        redact_authorization(v)
                    } else {
                        v.clone()
                    };
                    (n.clone(), redactor.clean(&v))
                })
                .collect(),
            body: redactor.clean(&show_body(&self.request.body)),
            body_bytes: self.request.body.len(),
        };
        let (response, transport_error) = match &self.result {
            Ok(r) => (
                Some(ResponseEvidence {
                    status: r.status,
                    http_version: r.version.to_owned(),
                    headers: r
                        .headers
                        .iter()
                        .map(|(n, v)| (n.clone(), redactor.clean(v)))
                        .collect(),
                    body: redactor.clean(&show_body(&r.body)),
                    body_bytes: r.body.len(),
                    elapsed_ms: u64::try_from(r.elapsed.as_millis()).unwrap_or(u64::MAX),
                }),
                None,
            ),
            Err(f) => (None, Some(redactor.clean(&f.text))),
        };
        Evidence {
            check: self.check.to_owned(),
            label: self.label.clone(),
            request,
            response,
            transport_error,
        }
    }
}

// === impl Redactor ===

impl Redactor {
    pub(crate) fn new(secrets: Vec<String>) -> Self {
        Self {
            secrets: secrets.into_iter().filter(|s| !s.is_empty()).collect(),
        }
    }

    /// `text` with every configured secret replaced by `<redacted>`.
    pub(crate) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// Keeps an `Authorization` value up to `Signature=`, then `<redacted>`.
pub(crate) fn redact_authorization(value: &str) -> String {
    match value.find("Signature=") {
        Some(at) => format!("{}Signature=<redacted>", &value[..at]),
        None => value.to_owned(),
    }
}

/// A body as text for reports: lossy UTF-8, control characters escaped, at most
/// [`BODY_SHOWN`] characters.
pub(crate) fn show_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::with_capacity(text.len().min(BODY_SHOWN + 32));
    for (shown, c) in text.chars().enumerate() {
        if shown == BODY_SHOWN {
            out.push_str(&format!("... ({} bytes in all)", body.len()));
            return out;
        }
        if c.is_control() {
            out.push_str(&c.escape_default().to_string());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most `len` characters of `body` as printable ASCII on one line.
pub(crate) fn excerpt(body: &[u8], len: usize) -> String {
    let mut out = String::new();
    for &b in body.iter().take(len) {
        out.push(if b.is_ascii_graphic() || b == b' ' {
            char::from(b)
        } else {
            '?'
        });
    }
    if body.len() > len {
        out.push_str("...");
    }
    out
}
