//! Runs the selected checks, each in its own task with a time limit, under the run's
//! deadline.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::checks::{self, Check, Phase};
use crate::ctx::{Ctx, Shared};
use crate::evidence::Redactor;
use crate::report::{CheckResult, Report, Status};
use crate::verdict::Verdict;
use crate::{Error, Selection, Settings};

/// Runs the checks `selection` selects against the proxy `settings` describe, one after
/// the other, and reports on every one of them.
///
/// Every request is bounded by the settings' timeout, every check by its time limit and
/// the run by its deadline; checks the deadline leaves out are reported as not run and
/// mark the report incomplete. A check that panics is reported as failed.
///
/// # Errors
///
/// [`Error::Settings`] if the HTTPS client cannot be built (for example, no trust roots
/// in the system store).
pub async fn run(settings: Settings, selection: &Selection) -> Result<Report, Error> {
    let started = Instant::now();
    let deadline = started + settings.max_duration;
    let settings = Arc::new(settings);
    let shared = Arc::new(Shared::new(Arc::clone(&settings))?);
    let selected: Vec<Check> = checks::all()
        .into_iter()
        .filter(|c| selection.matches(&c.info))
        .collect();

    let mut results: Vec<Option<CheckResult>> = vec![None; selected.len()];
    let mut incomplete = None;
    for phase in [Phase::Normal, Phase::RunWide] {
        let mut in_phase = selected
            .iter()
            .enumerate()
            .filter(|(_, c)| c.phase == phase)
            .peekable();
        if in_phase.peek().is_none() {
            continue;
        }
        if phase == Phase::RunWide && Instant::now() < deadline {
            // The run-wide error checks also provoke a few errors of their own, so they
            // have answers to judge when selected alone.
            let ctx = Ctx::new(Arc::clone(&shared), "errors.sample");
            let limit = settings.check_timeout.min(deadline - Instant::now());
            let _ = tokio::time::timeout(limit, checks::errors::provoke(ctx)).await;
        }
        for (i, check) in in_phase {
            let (result, cut_short) = run_one(&shared, check, deadline).await;
            if cut_short && incomplete.is_none() {
                incomplete = Some(format!(
                    "the run's time limit of {} ran out",
                    humanize(settings.max_duration)
                ));
            }
            results[i] = Some(result);
        }
    }
    let results = results.into_iter().flatten().collect();
    Ok(Report::new(
        &settings,
        results,
        incomplete,
        started.elapsed(),
    ))
}

/// Runs one check in its own task; returns its result and whether the run's deadline cut
/// it short.
async fn run_one(shared: &Arc<Shared>, check: &Check, deadline: Instant) -> (CheckResult, bool) {
    let started = Instant::now();
    let redactor = &shared.redactor;
    if started >= deadline {
        let verdict = Verdict::not_run(format!(
            "not reached: the run's time limit of {} ran out first",
            humanize(shared.settings.max_duration)
        ));
        return (result_of(check, verdict, Duration::ZERO, redactor), true);
    }
    let check_limit = shared.settings.check_timeout;
    let limit = check_limit.min(deadline - started);
    let ctx = Ctx::new(Arc::clone(shared), check.info.id);
    let mut task = tokio::spawn((check.run)(ctx));
    let (verdict, cut_short) = match tokio::time::timeout(limit, &mut task).await {
        Ok(Ok(verdict)) => (verdict, false),
        Ok(Err(join)) => {
            let mut v = Verdict::new();
            let why = if join.is_panic() {
                panic_text(join.into_panic())
            } else {
                "the check was cancelled".to_owned()
            };
            v.fail(format!("internal error of the tester: {why}"));
            (v, false)
        }
        Err(_) => {
            task.abort();
            let by_deadline = limit < check_limit;
            let mut v = Verdict::new();
            if by_deadline {
                v.fail(format!(
                    "the run's time limit of {} ran out during this check",
                    humanize(shared.settings.max_duration)
                ));
            } else {
                v.fail(format!(
                    "the check did not finish within its time limit of {} (--check-timeout)",
                    humanize(check_limit)
                ));
            }
            (v, by_deadline)
        }
    };
    (
        result_of(check, verdict, started.elapsed(), redactor),
        cut_short,
    )
}

fn result_of(
    check: &Check,
    verdict: Verdict,
    elapsed: Duration,
    redactor: &Redactor,
) -> CheckResult {
    let status = if verdict.not_run.is_some() {
        Status::NotRun
    } else if verdict.problems.is_empty() {
        Status::Passed
    } else {
        Status::of_miss(check.info.grade)
    };
    let mut notes: Vec<String> = verdict.notes.iter().map(|n| redactor.clean(n)).collect();
    let evidence = if matches!(status, Status::Failed | Status::Warning) {
        if verdict.evidence_dropped > 0 {
            notes.push(format!(
                "{} more exchanges with problems are not shown",
                verdict.evidence_dropped
            ));
        }
        verdict
            .evidence
            .iter()
            .map(|e| e.evidence(redactor))
            .collect()
    } else {
        Vec::new()
    };
    CheckResult {
        info: check.info,
        status,
        outcome: (!verdict.outcomes.is_empty())
            .then(|| redactor.clean(&verdict.outcomes.join("; "))),
        not_run_reason: verdict.not_run.as_deref().map(|r| redactor.clean(r)),
        problems: verdict.problems.iter().map(|p| redactor.clean(p)).collect(),
        notes,
        evidence,
        elapsed,
    }
}

fn panic_text(payload: Box<dyn Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("a panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("a panic: {s}")
    } else {
        "a panic".to_owned()
    }
}

/// `250ms`, `5s`, `10m`.
pub(crate) fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.as_secs() < 120 || !d.as_secs().is_multiple_of(60) {
        format!("{}s", d.as_secs_f64())
    } else {
        format!("{}m", d.as_secs() / 60)
    }
}
