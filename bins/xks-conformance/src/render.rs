//! Reports as text, JSON and JUnit XML, and the check list as text, Markdown and JSON.

use std::fmt::Write as _;

use crate::{Area, CheckInfo, CheckResult, Evidence, Report, Status};

// --- the report ----------------------------------------------------------------------

/// The readable report: a table grouped by area, then every failure and warning in
/// detail, then the summary line.
pub(crate) fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "XKS proxy conformance: {}{} (region {}), xks-conformance {}",
        report.endpoint, report.uri_path, report.region, report.tester_version
    );
    for area in Area::ALL {
        let mut results = report.area(area).peekable();
        if results.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "\n{}", area.title());
        for r in results {
            let _ = writeln!(
                out,
                "  {:<7}  {:<9} {:<42} {:<11} {}",
                r.status.label(),
                r.info.rows_text(),
                r.info.id,
                r.info.grade.name(),
                r.info.title
            );
            let detail = match r.status {
                Status::NotRun => r.not_run_reason.clone(),
                Status::Failed | Status::Warning => r.problems.first().map(|p| {
                    if r.problems.len() > 1 {
                        format!("{p} (+{} more)", r.problems.len() - 1)
                    } else {
                        p.clone()
                    }
                }),
                Status::Passed => r.outcome.clone(),
            };
            if let Some(detail) = detail {
                let _ = writeln!(out, "{:>21}{}", "", one_line(&detail, 200));
            }
        }
    }
    let problems: Vec<&CheckResult> = report
        .results
        .iter()
        .filter(|r| matches!(r.status, Status::Failed | Status::Warning))
        .collect();
    if !problems.is_empty() {
        let _ = writeln!(out, "\nFailures and warnings");
        for r in problems {
            details(&mut out, r);
        }
    }
    let _ = writeln!(out, "\n{}", report.summary());
    out
}

fn details(out: &mut String, r: &CheckResult) {
    let _ = writeln!(
        out,
        "\n[{}] {} ({}, {}): {}",
        r.status.label(),
        r.info.id,
        r.info.rows_text(),
        r.info.grade.name(),
        r.info.title
    );
    for p in &r.problems {
        let _ = writeln!(out, "  problem: {p}");
    }
    if let Some(outcome) = &r.outcome {
        let _ = writeln!(out, "  outcome: {outcome}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    for e in &r.evidence {
        evidence(out, e);
    }
}

fn evidence(out: &mut String, e: &Evidence) {
    let _ = writeln!(out, "  exchange: {} (sent by {})", e.label, e.check);
    let _ = writeln!(out, "    > {} {}", e.request.method, e.request.path);
    for (n, v) in &e.request.headers {
        let _ = writeln!(out, "    > {n}: {v}");
    }
    if e.request.body_bytes > 0 {
        let _ = writeln!(
            out,
            "    > body ({} bytes): {}",
            e.request.body_bytes, e.request.body
        );
    }
    match (&e.response, &e.transport_error) {
        (Some(r), _) => {
            let _ = writeln!(
                out,
                "    < {} {} ({} ms)",
                r.http_version, r.status, r.elapsed_ms
            );
            for (n, v) in &r.headers {
                let _ = writeln!(out, "    < {n}: {v}");
            }
            let _ = writeln!(out, "    < body ({} bytes): {}", r.body_bytes, r.body);
        }
        (None, Some(error)) => {
            let _ = writeln!(out, "    < no answer: {error}");
        }
        (None, None) => {}
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    }
}

/// The report as one JSON document.
pub(crate) fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize the report: {e}\"}}"))
}

/// The report as JUnit XML: one test suite per area, one test case per check; failures
/// are `<failure>`, checks not run `<skipped>`, warnings pass with a `<system-out>` note.
pub(crate) fn junit(report: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &report.summary;
    let _ = writeln!(
        out,
        "<testsuites name=\"xks-conformance\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{:.3}\">",
        s.total,
        s.failed,
        s.not_run,
        report.elapsed.as_secs_f64()
    );
    for area in Area::ALL {
        let results: Vec<&CheckResult> = report.area(area).collect();
        if results.is_empty() {
            continue;
        }
        let failed = results
            .iter()
            .filter(|r| r.status == Status::Failed)
            .count();
        let skipped = results
            .iter()
            .filter(|r| r.status == Status::NotRun)
            .count();
        let time: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
            xml(area.name()),
            results.len()
        );
        for r in results {
            let _ = write!(
                out,
                "    <testcase classname=\"xks-conformance.{}\" name=\"{} ({})\" time=\"{:.3}\"",
                xml(area.name()),
                xml(r.info.id),
                xml(&r.info.rows_text()),
                r.elapsed.as_secs_f64()
            );
            match r.status {
                Status::Passed if r.outcome.is_none() && r.notes.is_empty() => {
                    out.push_str("/>\n");
                }
                Status::Passed => {
                    out.push_str(">\n");
                    let mut text = r.outcome.clone().unwrap_or_default();
                    for n in &r.notes {
                        text.push_str("\nnote: ");
                        text.push_str(n);
                    }
                    let _ = writeln!(out, "      <system-out>{}</system-out>", xml(&text));
                    out.push_str("    </testcase>\n");
                }
                Status::NotRun => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(r.not_run_reason.as_deref().unwrap_or("not run"))
                    );
                }
                Status::Failed => {
                    let mut body = String::new();
                    details(&mut body, r);
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>",
                        xml(r.problems.first().map_or("failed", String::as_str)),
                        r.info.grade.name(),
                        xml(&body)
                    );
                }
                Status::Warning => {
                    let mut body = String::new();
                    details(&mut body, r);
                    let _ = writeln!(
                        out,
                        ">\n      <system-out>WARNING (recommended check missed)\n{}</system-out>\n    </testcase>",
                        xml(&body)
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot carry.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#9;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || matches!(c, '\u{FFFE}' | '\u{FFFF}') => {
                out.push('?');
            }
            c => out.push(c),
        }
    }
    out
}

// --- the check list ------------------------------------------------------------------

/// The check list as a text table.
pub(crate) fn list_text(catalog: &[CheckInfo]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<42} {:<9} {:<17} {:<11} TITLE",
        "ID", "ROWS", "AREA", "GRADE"
    );
    for c in catalog {
        let _ = writeln!(
            out,
            "{:<42} {:<9} {:<17} {:<11} {}",
            c.id,
            c.rows_text(),
            c.area.name(),
            c.grade.name(),
            c.title
        );
    }
    let _ = writeln!(out, "\n{} checks", catalog.len());
    out
}

/// The check list as Markdown tables, one per area.
pub(crate) fn list_markdown(catalog: &[CheckInfo]) -> String {
    let mut out = String::new();
    for area in Area::ALL {
        let checks: Vec<&CheckInfo> = catalog.iter().filter(|c| c.area == area).collect();
        if checks.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {} (`{}`)\n", area.title(), area.name());
        let _ = writeln!(out, "| Id | Rows | Grade | Checks that |");
        let _ = writeln!(out, "|---|---|---|---|");
        for c in checks {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} |",
                c.id,
                c.rows_text(),
                c.grade.name(),
                c.title.replace('|', "\\|")
            );
        }
        out.push('\n');
    }
    out
}

/// The check list as JSON.
pub(crate) fn list_json(catalog: &[CheckInfo]) -> String {
    serde_json::to_string_pretty(catalog)
        .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize the list: {e}\"}}"))
}

#[cfg(test)]
mod tests;
