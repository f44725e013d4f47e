//! What a check concludes, before its grade turns problems into a status.

use std::sync::Arc;

use xks_protocol::ErrorName;

use crate::evidence::{Exchange, FailureKind};

/// How many exchanges a check keeps as evidence.
const MAX_EVIDENCE: usize = 4;

/// An acceptable answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// HTTP 200 with a JSON object body.
    Success,
    /// The error's status with that `errorName`.
    Error(ErrorName),
    /// This status, whatever the body.
    Status(u16),
    /// Any 4xx status.
    ClientError,
    /// No HTTP answer at all (a rejected TLS handshake).
    NoAnswer,
}

/// The findings of one check.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    pub(crate) not_run: Option<String>,
    pub(crate) problems: Vec<String>,
    pub(crate) notes: Vec<String>,
    pub(crate) outcomes: Vec<String>,
    pub(crate) evidence: Vec<Arc<Exchange>>,
    pub(crate) evidence_dropped: usize,
}

// === impl Want ===

impl Want {
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Success => "HTTP 200".to_owned(),
            Self::Error(name) => format!("HTTP {} {name}", name.http_status()),
            Self::Status(code) => format!("HTTP {code}"),
            Self::ClientError => "an HTTP 4xx error".to_owned(),
            Self::NoAnswer => "no HTTP answer (handshake rejected)".to_owned(),
        }
    }

    pub(crate) fn matches(self, exchange: &Exchange) -> bool {
        match self {
            Self::NoAnswer => exchange
                .result
                .as_ref()
                .is_err_and(|f| f.kind != FailureKind::NotSent),
            Self::Status(code) => exchange.status() == Some(code),
            Self::ClientError => exchange.status().is_some_and(|s| (400..500).contains(&s)),
            Self::Success => {
                exchange.status() == Some(200) && exchange.json().is_some_and(|v| v.is_object())
            }
            Self::Error(name) => {
                exchange.status() == Some(name.http_status())
                    && exchange.error_name().as_deref() == Some(name.as_str())
            }
        }
    }
}

// === impl Verdict ===

impl Verdict {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The check did not run, and why (what to supply).
    pub(crate) fn not_run(reason: impl Into<String>) -> Self {
        Self {
            not_run: Some(reason.into()),
            ..Self::default()
        }
    }

    /// A problem not tied to one exchange.
    pub(crate) fn fail(&mut self, what: impl Into<String>) {
        self.problems.push(what.into());
    }

    /// A problem shown with the exchange behind it.
    pub(crate) fn fail_on(&mut self, exchange: &Arc<Exchange>, what: impl AsRef<str>) {
        self.problems
            .push(format!("{}: {}", exchange.label, what.as_ref()));
        self.keep(exchange);
    }

    /// An observation that does not change the status.
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }

    /// Part of the one-line outcome.
    pub(crate) fn outcome(&mut self, text: impl Into<String>) {
        self.outcomes.push(text.into());
    }

    /// Keeps `exchange` as evidence.
    pub(crate) fn keep(&mut self, exchange: &Arc<Exchange>) {
        if self.evidence.iter().any(|e| Arc::ptr_eq(e, exchange)) {
            return;
        }
        if self.evidence.len() < MAX_EVIDENCE {
            self.evidence.push(Arc::clone(exchange));
        } else {
            self.evidence_dropped += 1;
        }
    }

    /// Checks that `exchange` got one of `wants`; records a problem otherwise. Returns the
    /// matching want.
    pub(crate) fn expect(&mut self, exchange: &Arc<Exchange>, wants: &[Want]) -> Option<Want> {
        if let Some(want) = wants.iter().copied().find(|w| w.matches(exchange)) {
            return Some(want);
        }
        let expected: Vec<String> = wants.iter().map(|w| w.describe()).collect();
        let mut what = format!(
            "expected {}, got {}",
            expected.join(" or "),
            exchange.summary()
        );
        if wants.contains(&Want::Success) && exchange.status() == Some(200) {
            what.push_str(" (the body is not a JSON object)");
        }
        self.fail_on(exchange, what);
        None
    }

    /// Like [`Verdict::expect`], and records what happened as part of the outcome (for
    /// tolerant checks, whose outcome is reported).
    pub(crate) fn expect_reported(
        &mut self,
        exchange: &Arc<Exchange>,
        wants: &[Want],
    ) -> Option<Want> {
        let matched = self.expect(exchange, wants);
        self.outcome(format!("{}: {}", exchange.label, exchange.summary()));
        matched
    }

    /// Adds `other`'s findings to these.
    pub(crate) fn absorb(&mut self, other: Self) {
        self.problems.extend(other.problems);
        self.notes.extend(other.notes);
        self.outcomes.extend(other.outcomes);
        for e in &other.evidence {
            self.keep(e);
        }
        self.evidence_dropped += other.evidence_dropped;
    }

    /// A setup step failed: the check cannot judge the proxy, which counts against it.
    pub(crate) fn setup_failed(&mut self, (what, exchange): (String, Arc<Exchange>)) {
        self.problems.push(what);
        self.keep(&exchange);
    }
}
