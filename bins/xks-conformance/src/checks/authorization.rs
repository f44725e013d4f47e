//! Secondary authorization and throttling, when the operator says they are configured
//! (rows 125-127).

use serde_json::json;
use tokio::task::JoinSet;
use xks_protocol::{ErrorName, OperationKind};

use super::{Check, KEY_APIS, api_name};
use crate::ctx::{Ctx, DecryptInput, EncryptInput, random_bytes};
use crate::evidence::FailureKind;
use crate::verdict::{Verdict, Want};

/// Requests of a throttling burst in flight at once.
const BURST_CONCURRENCY: u32 = 64;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "authorization.denied-principal",
            [125],
            Authorization,
            Required,
            "Requests from a denied principal return 403 AccessDeniedException; others succeed",
            denied_principal
        ),
        check!(
            "authorization.health-exempt",
            [126],
            Authorization,
            Required,
            "A deny policy never affects GetHealthStatus, even with the denied principal in the body",
            health_exempt
        ),
        check!(
            "authorization.throttling",
            [127],
            Authorization,
            Tolerant,
            "A burst beyond the proxy's quota gets 429 ThrottlingException, and every request an answer (reported)",
            throttling
        ),
    ]
}

const NEEDS_POLICY: &str = "needs a secondary authorization policy: configure the proxy to deny \
                            a principal and supply it with --denied-principal";

async fn denied_principal(ctx: Ctx) -> Verdict {
    let Some(denied) = ctx.settings().denied_principal.clone() else {
        return Verdict::not_run(NEEDS_POLICY);
    };
    let mut v = Verdict::new();
    for api in KEY_APIS {
        let mut body = match api {
            OperationKind::Decrypt => match ctx.sample(32, None).await {
                Ok(sample) => ctx.decrypt_body(&DecryptInput::of(&sample)),
                Err(e) => {
                    v.setup_failed(e);
                    continue;
                }
            },
            OperationKind::Encrypt => ctx.encrypt_body(&EncryptInput::new(random_bytes(16))),
            _ => ctx.metadata_body(),
        };
        let path = ctx.api_path(api, ctx.main_key().as_str());
        let allowed = ctx
            .send(ctx.signed_json(
                format!("{} as the usual principal", api_name(api)),
                path.clone(),
                &body,
            ))
            .await;
        v.expect(&allowed, &[Want::Success]);
        body["requestMetadata"]["awsPrincipalArn"] = json!(denied);
        body["requestMetadata"]["kmsRequestId"] = json!(ctx.request_id());
        let ex = ctx
            .send(ctx.signed_json(
                format!("{} as the denied principal", api_name(api)),
                path,
                &body,
            ))
            .await;
        v.expect(&ex, &[Want::Error(ErrorName::AccessDeniedException)]);
    }
    v
}

async fn health_exempt(ctx: Ctx) -> Verdict {
    let Some(denied) = ctx.settings().denied_principal.clone() else {
        return Verdict::not_run(NEEDS_POLICY);
    };
    let mut v = Verdict::new();
    let mut body = ctx.health_body("KmsHealthCheck");
    body["requestMetadata"]["awsPrincipalArn"] = json!(denied);
    let ex = ctx
        .send(ctx.signed_json(
            "health with the denied principal in requestMetadata",
            ctx.health_path(),
            &body,
        ))
        .await;
    v.expect(&ex, &[Want::Success]);
    v
}

async fn throttling(ctx: Ctx) -> Verdict {
    let Some(burst) = ctx.settings().throttle_burst else {
        return Verdict::not_run(
            "needs a request quota on the proxy: supply --throttle-burst N with N above the \
             quota (row 127 only applies to proxies that throttle)",
        );
    };
    let mut v = Verdict::new();
    let workers = burst.min(BURST_CONCURRENCY);
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let ctx = ctx.clone();
        let share = burst / workers + u32::from(w < burst % workers);
        tasks.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..share {
                let body = ctx.metadata_body();
                let path = ctx.key_path(ctx.main_key().as_str(), "metadata");
                let req = ctx
                    .signed_json("metadata (burst)", path, &body)
                    .expect_transport_failure();
                out.push(ctx.send(req).await);
            }
            out
        });
    }
    let (mut ok, mut throttled, mut dropped, mut other) = (0, 0, 0, 0);
    while let Some(joined) = tasks.join_next().await {
        let Ok(exchanges) = joined else {
            v.fail("a burst task failed");
            continue;
        };
        for ex in exchanges {
            if Want::Success.matches(&ex) {
                ok += 1;
            } else if Want::Error(ErrorName::ThrottlingException).matches(&ex) {
                throttled += 1;
            } else if ex
                .result
                .as_ref()
                .is_err_and(|f| f.kind != FailureKind::NotSent)
            {
                dropped += 1;
                if dropped <= 3 {
                    v.fail_on(&ex, format!("no answer: {}", ex.summary()));
                }
            } else {
                other += 1;
                if other <= 3 {
                    v.fail_on(&ex, format!("unexpected answer: {}", ex.summary()));
                }
            }
        }
    }
    v.outcome(format!(
        "{burst} requests: {ok} succeeded, {throttled} got 429 ThrottlingException, {dropped} got \
         no answer, {other} got another answer"
    ));
    if throttled == 0 {
        v.fail(format!(
            "no ThrottlingException in a burst of {burst}; raise --throttle-burst above the quota"
        ));
    }
    v
}
