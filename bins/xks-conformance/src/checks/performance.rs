//! IV uniqueness and latency (rows 61, 76, 78, 128).

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Check;
use crate::ctx::{Ctx, EncryptInput};
use crate::verdict::{Verdict, Want};

/// KMS's timeout for one call to a proxy (fact sheet §9.5).
const BUDGET: Duration = Duration::from_millis(250);

/// Encryptions in flight at once in the IV check.
const IV_CONCURRENCY: u32 = 8;

/// Calls before measuring, to warm connections and caches.
const WARM_UP: u32 = 3;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "performance.health-latency",
            [61],
            Performance,
            Recommended,
            "GetHealthStatus answers within 250 ms on a warm connection (p99)",
            health_latency
        ),
        check!(
            "performance.iv-uniqueness",
            [76],
            Performance,
            Recommended,
            "Encrypting the same plaintext many times (--iv-count, default 1000) never repeats an IV",
            iv_uniqueness
        ),
        check!(
            "performance.encrypt-latency",
            [78],
            Performance,
            Recommended,
            "Encrypt answers within 250 ms on a warm connection (p99)",
            encrypt_latency
        ),
        check!(
            "performance.sustained-load",
            [128],
            Performance,
            Recommended,
            "Sustained load at the target TPS stays under 250 ms p99 (manual)",
            sustained_load
        ),
    ]
}

/// Sends `samples` sequential requests made by `call` after a warm-up; reports p50, p99
/// and max, and a problem when p99 reaches the budget.
async fn latency<F, Fut>(ctx: &Ctx, what: &str, call: F) -> Verdict
where
    F: Fn(Ctx) -> Fut,
    Fut: Future<Output = std::sync::Arc<crate::evidence::Exchange>>,
{
    let mut v = Verdict::new();
    for _ in 0..WARM_UP {
        let ex = call(ctx.clone()).await;
        if v.expect(&ex, &[Want::Success]).is_none() {
            return v;
        }
    }
    let samples = ctx.settings().latency_samples;
    let mut times = Vec::with_capacity(usize::try_from(samples).unwrap_or(0));
    for _ in 0..samples {
        let ex = call(ctx.clone()).await;
        if v.expect(&ex, &[Want::Success]).is_none() {
            return v;
        }
        if let Some(r) = ex.received() {
            times.push(r.elapsed);
        }
    }
    times.sort_unstable();
    let (Some(p50), Some(p99), Some(max)) = (
        percentile(&times, 50),
        percentile(&times, 99),
        times.last().copied(),
    ) else {
        v.fail("no latency measured");
        return v;
    };
    v.outcome(format!(
        "{what} over {samples} warm calls: p50 {}, p99 {}, max {}",
        ms(p50),
        ms(p99),
        ms(max)
    ));
    if p99 >= BUDGET {
        v.fail(format!(
            "p99 {} reaches KMS's 250 ms budget for the whole call (network included)",
            ms(p99)
        ));
    }
    v
}

/// `1.2 ms`.
fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The `pct`th percentile of sorted `times` (nearest rank).
fn percentile(times: &[Duration], pct: usize) -> Option<Duration> {
    if times.is_empty() {
        return None;
    }
    let rank = (times.len() * pct).div_ceil(100).max(1);
    times.get(rank - 1).copied()
}

async fn health_latency(ctx: Ctx) -> Verdict {
    latency(&ctx, "GetHealthStatus", |ctx| async move {
        ctx.health("health (latency)", "KmsHealthCheck").await
    })
    .await
}

async fn encrypt_latency(ctx: Ctx) -> Verdict {
    latency(&ctx, "Encrypt", |ctx| async move {
        let input = EncryptInput::new(crate::ctx::random_bytes(32));
        ctx.encrypt("encrypt (latency)", ctx.main_key().as_str(), &input)
            .await
            .0
    })
    .await
}

async fn iv_uniqueness(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let count = ctx.settings().iv_count;
    let workers = count.min(IV_CONCURRENCY);
    let plaintext = b"the same plaintext, every time".to_vec();
    let mut tasks = JoinSet::new();
    for w in 0..workers {
        let ctx = ctx.clone();
        let plaintext = plaintext.clone();
        let share = count / workers + u32::from(w < count % workers);
        tasks.spawn(async move {
            let mut out = Vec::new();
            for _ in 0..share {
                let input = EncryptInput::new(plaintext.clone());
                out.push(
                    ctx.encrypt("encrypt (IV uniqueness)", ctx.main_key().as_str(), &input)
                        .await,
                );
            }
            out
        });
    }
    let mut ivs = HashSet::new();
    let mut repeats = 0;
    let mut failures = 0;
    while let Some(joined) = tasks.join_next().await {
        let Ok(results) = joined else {
            v.fail("an encryption task failed");
            continue;
        };
        for (ex, sealed) in results {
            match sealed {
                Ok(s) => {
                    if !ivs.insert(s.iv.clone()) {
                        repeats += 1;
                        if repeats <= 3 {
                            v.fail_on(
                                &ex,
                                format!("IV {} was returned before", crate::ctx::b64(&s.iv)),
                            );
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures <= 3 {
                        v.fail_on(&ex, e);
                    }
                }
            }
        }
    }
    if repeats > 0 {
        v.fail(format!(
            "{repeats} of {count} encryptions under one key repeated an IV: GCM loses all \
             confidentiality and authenticity when an IV repeats"
        ));
    }
    if failures > 3 {
        v.fail(format!("{failures} encryptions failed in all"));
    }
    v.outcome(format!("{} distinct IVs in {count} encryptions", ivs.len()));
    v
}

async fn sustained_load(_ctx: Ctx) -> Verdict {
    Verdict::not_run(
        "manual: load-test at the target rate (KMS's default quota is 1800 requests per second \
         per key store), e.g. `xks-mock-kms bench --mode open --rate 1800`, and compare the p99 \
         with 250 ms",
    )
}
