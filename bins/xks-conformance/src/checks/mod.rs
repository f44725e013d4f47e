//! The checks, one module per area. Each module's `checks()` lists its checks in report
//! order; each check is an `async fn(Ctx) -> Verdict`.

use std::future::Future;
use std::pin::Pin;

use xks_protocol::OperationKind;

use crate::CheckInfo;
use crate::ctx::Ctx;
use crate::verdict::Verdict;

/// Declares a check: id, rows, area, grade, title, and the `async fn(Ctx) -> Verdict`.
macro_rules! check {
    ($id:literal, [$($row:literal),+], $area:ident, $grade:ident, $title:literal, $f:path) => {
        crate::checks::Check {
            info: crate::CheckInfo {
                id: $id,
                rows: &[$($row),+],
                area: crate::Area::$area,
                grade: crate::Grade::$grade,
                title: $title,
            },
            run: |ctx: crate::ctx::Ctx| -> crate::checks::CheckFuture { Box::pin($f(ctx)) },
            phase: crate::checks::Phase::Normal,
        }
    };
}

mod authorization;
mod decrypt;
mod encrypt;
pub(crate) mod errors;
mod health;
mod logging;
mod malformed;
mod metadata;
mod mtls;
mod performance;
mod request_metadata;
mod routing;
mod sigv4;
mod tamper;
mod transport;

/// A running check.
pub(crate) type CheckFuture = Pin<Box<dyn Future<Output = Verdict> + Send>>;

/// One check: what it is and how to run it.
pub(crate) struct Check {
    pub(crate) info: CheckInfo,
    pub(crate) run: fn(Ctx) -> CheckFuture,
    pub(crate) phase: Phase,
}

/// When a check runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// In catalog order.
    Normal,
    /// After every normal check: it judges every exchange of the run (rows 4, 121-124).
    RunWide,
}

// === impl Check ===

impl Check {
    /// This check, run after the others.
    pub(crate) fn run_wide(mut self) -> Self {
        self.phase = Phase::RunWide;
        self
    }
}

/// Every check, in report order.
pub(crate) fn all() -> Vec<Check> {
    let mut all = transport::checks();
    all.extend(routing::checks());
    all.extend(sigv4::checks());
    all.extend(mtls::checks());
    all.extend(request_metadata::checks());
    all.extend(health::checks());
    all.extend(metadata::checks());
    all.extend(encrypt::checks());
    all.extend(decrypt::checks());
    all.extend(tamper::checks());
    all.extend(malformed::checks());
    all.extend(errors::checks());
    all.extend(authorization::checks());
    all.extend(performance::checks());
    all.extend(logging::checks());
    all
}

/// The four APIs, in the order checks exercise them.
pub(crate) const APIS: [OperationKind; 4] = [
    OperationKind::Health,
    OperationKind::GetKeyMetadata,
    OperationKind::Encrypt,
    OperationKind::Decrypt,
];

/// The three key APIs.
pub(crate) const KEY_APIS: [OperationKind; 3] = [
    OperationKind::GetKeyMetadata,
    OperationKind::Encrypt,
    OperationKind::Decrypt,
];

/// `health`, `metadata`, `encrypt`, `decrypt`.
pub(crate) fn api_name(api: OperationKind) -> &'static str {
    match api {
        OperationKind::Health => "health",
        OperationKind::GetKeyMetadata => "metadata",
        OperationKind::Encrypt => "encrypt",
        OperationKind::Decrypt => "decrypt",
    }
}

/// What to say when a key role was not supplied.
pub(crate) fn needs_key(flag: &str, what: &str) -> Verdict {
    Verdict::not_run(format!("needs {what}: supply {flag}"))
}

/// Flips bit `bit` of byte `at` (from the end when `from_end`).
pub(crate) fn flip(bytes: &[u8], at: usize, from_end: bool) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if out.is_empty() {
        return out;
    }
    let i = if from_end {
        out.len() - 1 - at.min(out.len() - 1)
    } else {
        at.min(out.len() - 1)
    };
    out[i] ^= 0x01;
    out
}
