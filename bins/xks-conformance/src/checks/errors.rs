//! The error body on every error answer of the run (rows 121-124).

use std::cell::Cell;
use std::str::FromStr as _;

use serde_json::Value;
use xks_protocol::{ErrorMessage, ErrorName, OperationKind};

use super::Check;
use crate::ctx::{Ctx, DecryptInput, random_bytes, random_hex};
use crate::evidence::{Exchange, Scope};
use crate::verdict::Verdict;

/// Problems shown in full; the rest are counted.
const SHOWN: usize = 10;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "errors.body-format",
            [121],
            Errors,
            Required,
            "Every error answer is a JSON object with a string errorName, one of the 12 defined names",
            body_format
        )
        .run_wide(),
        check!(
            "errors.status-matches-name",
            [122],
            Errors,
            Required,
            "Every error answer's HTTP status is the one its errorName has in the spec",
            status_matches_name
        )
        .run_wide(),
        check!(
            "errors.message-format",
            [123],
            Errors,
            Required,
            "Every errorMessage is a string of at most 511 printable ASCII characters",
            message_format
        )
        .run_wide(),
        check!(
            "errors.name-allowed-for-api",
            [124],
            Errors,
            Recommended,
            "Every errorName is one the spec's error table allows for that API",
            name_allowed_for_api
        )
        .run_wide(),
    ]
}

/// Provokes a few error answers, so the error checks have something to judge when
/// selected alone: an unknown key, a bad signature, an unknown prefix, a body that is not
/// JSON, and a forged ciphertext.
pub(crate) async fn provoke(ctx: Ctx) {
    let absent = format!("xks-conformance-absent-{}", random_hex(12));
    let _ = ctx
        .key_metadata("metadata of a key that does not exist", &absent)
        .await;
    let body = ctx.health_body("KmsHealthCheck");
    let wrong = xks_sigv4::Credential::from_config(
        ctx.settings().credential.access_key_id().as_str(),
        crate::ctx::b64(&random_bytes(32)),
    );
    if let Ok(wrong) = wrong {
        let params = ctx.params_for(&wrong);
        let req = ctx.sign_with(
            ctx.post_json("health with a wrong secret", ctx.health_path(), &body),
            &params,
        );
        let _ = ctx.send(req).await;
    }
    let path = format!("{}/invalid/kms/xks/v1/health", ctx.settings().prefix());
    let _ = ctx
        .send(ctx.signed_json("health under an unknown prefix", path, &body))
        .await;
    let path = ctx.key_path(ctx.main_key().as_str(), "encrypt");
    let _ = ctx
        .send(ctx.sign(ctx.post("encrypt with body `abc`", path, "abc")))
        .await;
    let _ = ctx
        .decrypt(
            "decrypt an all-zero ciphertext",
            ctx.main_key().as_str(),
            &DecryptInput::zeros(),
        )
        .await;
}

/// Applies `judge` to every error answer of the run (scope `All`, status 400 and above).
fn each_error(ctx: &Ctx, judge: impl Fn(&Exchange) -> Option<String>) -> Verdict {
    let mut v = Verdict::new();
    let mut answers = 0;
    let mut bad = 0;
    for ex in ctx.shared().exchanges() {
        if ex.scope != Scope::All || ex.status().is_none_or(|s| s < 400) {
            continue;
        }
        answers += 1;
        if let Some(problem) = judge(&ex) {
            bad += 1;
            if bad <= SHOWN {
                v.fail_on(&ex, format!("(from {}) {problem}", ex.check));
            }
        }
    }
    if bad > SHOWN {
        v.fail(format!(
            "... and {} more error answers like these",
            bad - SHOWN
        ));
    }
    if answers == 0 {
        return Verdict::not_run("no error answer was received in this run");
    }
    v.outcome(format!(
        "{answers} error answers checked, {bad} with problems"
    ));
    v
}

/// The error body as a JSON object, or what is wrong with it.
fn object(ex: &Exchange) -> Result<serde_json::Map<String, Value>, String> {
    match ex.json() {
        Some(Value::Object(o)) => Ok(o),
        Some(other) => Err(format!(
            "HTTP {}: the body is JSON {}, not an object",
            ex.status().unwrap_or_default(),
            crate::ctx::kind(&other)
        )),
        None => Err(format!(
            "HTTP {}: the body is not JSON",
            ex.status().unwrap_or_default()
        )),
    }
}

/// The error name of a well-formed body.
fn name(ex: &Exchange) -> Option<ErrorName> {
    ex.error_name().and_then(|n| ErrorName::from_str(&n).ok())
}

async fn body_format(ctx: Ctx) -> Verdict {
    each_error(&ctx, |ex| {
        let body = match object(ex) {
            Ok(b) => b,
            Err(e) => return Some(e),
        };
        let status = ex.status().unwrap_or_default();
        match body.get("errorName") {
            None => Some(format!("HTTP {status}: no errorName")),
            Some(Value::String(n)) if ErrorName::from_str(n).is_err() => Some(format!(
                "HTTP {status}: errorName {n:?} is not one of the 12 names"
            )),
            Some(Value::String(_)) => None,
            Some(other) => Some(format!(
                "HTTP {status}: errorName is {}, not a string",
                crate::ctx::kind(other)
            )),
        }
    })
}

async fn status_matches_name(ctx: Ctx) -> Verdict {
    each_error(&ctx, |ex| {
        let name = name(ex)?;
        let status = ex.status().unwrap_or_default();
        (status != name.http_status()).then(|| {
            format!(
                "{name} came with HTTP {status}; the spec gives it HTTP {}",
                name.http_status()
            )
        })
    })
}

async fn message_format(ctx: Ctx) -> Verdict {
    each_error(&ctx, |ex| {
        let body = object(ex).ok()?;
        match body.get("errorMessage") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if ErrorMessage::is_conformant(m) => None,
            Some(Value::String(m)) => {
                let chars = m.chars().count();
                let odd = m.chars().find(|c| !matches!(c, ' '..='~'));
                Some(match odd {
                    Some(c) => format!(
                        "errorMessage has a character outside printable ASCII: {:?} (U+{:04X})",
                        c,
                        u32::from(c)
                    ),
                    None => format!("errorMessage is {chars} characters; at most 511"),
                })
            }
            Some(other) => Some(format!(
                "errorMessage is {}, not a string",
                crate::ctx::kind(other)
            )),
        }
    })
}

async fn name_allowed_for_api(ctx: Ctx) -> Verdict {
    let tolerated = Cell::new(0_usize);
    let mut v = each_error(&ctx, |ex| {
        let name = name(ex)?;
        let op = ex.operation?;
        if name.allowed_for(op) {
            return None;
        }
        // The official test client expects ValidationException for a health body without
        // requestMetadata (fact sheet §12.1), though the table excludes it: tolerated.
        if op == OperationKind::Health && name == ErrorName::ValidationException {
            tolerated.set(tolerated.get() + 1);
            return None;
        }
        Some(format!(
            "{name} is not in the spec's error table for {}",
            op_name(op)
        ))
    });
    if tolerated.get() > 0 {
        v.note(format!(
            "{} ValidationException answers from GetHealthStatus are tolerated: the official \
             test client expects them for a malformed health body (fact sheet §12.1)",
            tolerated.get()
        ));
    }
    v
}

fn op_name(op: OperationKind) -> &'static str {
    match op {
        OperationKind::Health => "GetHealthStatus",
        OperationKind::GetKeyMetadata => "GetKeyMetadata",
        OperationKind::Encrypt => "Encrypt",
        OperationKind::Decrypt => "Decrypt",
    }
}
