//! The result of a run: one [`CheckResult`] per selected check, and the summary.

use std::time::Duration;

use serde::Serialize;

use crate::{Area, CheckInfo, Evidence, Grade};

/// What became of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Status {
    /// The proxy behaved as the spec requires (or, for a tolerant check, as it allows).
    Passed,
    /// A recommended check missed.
    Warning,
    /// A required check missed, or a tolerant check saw an outcome the spec does not list.
    Failed,
    /// The check did not run: it needs something that was not supplied, is a manual
    /// check, does not apply to this proxy, or the run's deadline came first.
    NotRun,
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// The check.
    #[serde(flatten)]
    pub info: CheckInfo,
    /// Passed, warning, failed, or not run.
    pub status: Status,
    /// What the proxy did, in one line (the outcome of a tolerant check, the negotiated
    /// cipher suite, a latency percentile).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// Why the check did not run, and what to supply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_run_reason: Option<String>,
    /// What went wrong, one entry per problem (empty when passed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Further observations that do not change the status.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// For failures and warnings: the exchanges behind the problems, what was sent and
    /// what came back, secrets redacted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// How long the check took.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The proxy endpoint, e.g. `https://xks.example.com`.
    pub endpoint: String,
    /// The URI path, e.g. `/example/kms/xks/v1`.
    pub uri_path: String,
    /// The SigV4 region.
    pub region: String,
    /// The version of this tester.
    pub tester_version: &'static str,
    /// One entry per selected check, in catalog order.
    pub results: Vec<CheckResult>,
    /// Set when the run was cut short (its deadline), saying why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incomplete: Option<String>,
    /// The counts.
    pub summary: Summary,
    /// How long the run took.
    #[serde(serialize_with = "serialize_millis", rename = "elapsed_ms")]
    pub elapsed: Duration,
}

/// How many checks ended in each status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// All selected checks.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Warnings.
    pub warnings: usize,
    /// Failed.
    pub failed: usize,
    /// Not run.
    pub not_run: usize,
}

// === impl Status ===

impl Status {
    /// `PASS`, `WARN`, `FAIL` or `NOT RUN`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Passed => "PASS",
            Self::Warning => "WARN",
            Self::Failed => "FAIL",
            Self::NotRun => "NOT RUN",
        }
    }

    /// The status a miss gets under `grade`.
    pub(crate) fn of_miss(grade: Grade) -> Self {
        match grade {
            Grade::Recommended => Self::Warning,
            Grade::Required | Grade::Tolerant => Self::Failed,
        }
    }
}

// === impl Report ===

impl Report {
    pub(crate) fn new(
        settings: &crate::Settings,
        results: Vec<CheckResult>,
        incomplete: Option<String>,
        elapsed: Duration,
    ) -> Self {
        let mut summary = Summary {
            total: results.len(),
            ..Summary::default()
        };
        for r in &results {
            match r.status {
                Status::Passed => summary.passed += 1,
                Status::Warning => summary.warnings += 1,
                Status::Failed => summary.failed += 1,
                Status::NotRun => summary.not_run += 1,
            }
        }
        Self {
            endpoint: settings.endpoint().to_string(),
            uri_path: settings.uri_path().to_owned(),
            region: settings.region().to_owned(),
            tester_version: env!("CARGO_PKG_VERSION"),
            results,
            incomplete,
            summary,
            elapsed,
        }
    }

    /// The result of check `id`, if it was selected.
    pub fn result(&self, id: &str) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.info.id == id)
    }

    /// The results of one area.
    pub fn area(&self, area: Area) -> impl Iterator<Item = &CheckResult> {
        self.results.iter().filter(move |r| r.info.area == area)
    }

    /// The readable report: a table grouped by area, the details of every failure and
    /// warning (with what was sent and what came back), and the summary line.
    pub fn to_text(&self) -> String {
        crate::render::text(self)
    }

    /// The report as one JSON document.
    pub fn to_json(&self) -> String {
        crate::render::json(self)
    }

    /// The report as JUnit XML: a test suite per area, a test case per check.
    pub fn to_junit(&self) -> String {
        crate::render::junit(self)
    }

    /// Whether the run is a success: no check failed and the run was not cut short.
    /// Warnings and checks not run do not count against it.
    pub fn is_success(&self) -> bool {
        self.summary.failed == 0 && self.incomplete.is_none()
    }

    /// The summary line, e.g. `131 checks: 120 passed, 2 warnings, 0 failed, 9 not run (3.1 s)`.
    pub fn summary(&self) -> String {
        let s = &self.summary;
        let mut line = format!(
            "{} checks: {} passed, {} warnings, {} failed, {} not run ({:.1} s)",
            s.total,
            s.passed,
            s.warnings,
            s.failed,
            s.not_run,
            self.elapsed.as_secs_f64()
        );
        if let Some(why) = &self.incomplete {
            line.push_str("; INCOMPLETE: ");
            line.push_str(why);
        }
        line
    }
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
