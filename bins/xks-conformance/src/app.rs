//! The command-line application: settings, run, report, exit status. The binary is a
//! thin wrapper around [`run`].

use std::io::Write;
use std::time::Duration;

use crate::{Cli, Format, Selection, Settings, catalog, render};

/// Exit status when no check failed (warnings and checks not run allowed).
pub const EXIT_OK: u8 = 0;
/// Exit status when a check failed, or the run was cut short by its deadline.
pub const EXIT_FAILED: u8 = 1;
/// Exit status for invalid settings (including an unwritable `--junit` file):
/// `EX_USAGE` of sysexits.h, as the other binaries of the toolkit. Command-line
/// syntax errors are reported by the argument parser, with 2.
pub const EXIT_USAGE: u8 = 64;

/// Extra time past `--max-duration` before the application gives up on the run itself
/// (the runner keeps to the deadline; this is a second guard).
const GRACE: Duration = Duration::from_secs(30);

/// Runs the command line: lists the checks, validates the settings, or runs the checks
/// and writes the report (stdout in the chosen format, plus the JUnit file). Diagnostics
/// go to `err`. Returns the exit status.
pub async fn run(cli: Cli, out: &mut impl Write, err: &mut impl Write) -> u8 {
    let all = catalog();
    let selection = Selection::only(cli.only.iter().cloned());
    let unmatched = selection.unmatched(&all);
    if !unmatched.is_empty() {
        let _ = writeln!(
            err,
            "error: --only {} matches no check (see --list)",
            unmatched.join(", ")
        );
        return EXIT_USAGE;
    }
    if cli.list {
        let listed: Vec<_> = all.into_iter().filter(|c| selection.matches(c)).collect();
        let text = match cli.format {
            Format::Text => render::list_text(&listed),
            Format::Markdown => render::list_markdown(&listed),
            Format::Json => render::list_json(&listed),
        };
        return write_out(out, err, &text);
    }
    if cli.format == Format::Markdown {
        let _ = writeln!(err, "error: --format markdown is for --list only");
        return EXIT_USAGE;
    }
    let settings = match Settings::load(&cli.settings, cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "error: invalid settings:");
            for p in e.problems() {
                let _ = writeln!(err, "  - {p}");
            }
            return EXIT_USAGE;
        }
    };
    if cli.validate {
        let _ = writeln!(
            err,
            "settings OK: {}{} (region {}), main key {}",
            settings.endpoint(),
            settings.uri_path(),
            settings.region(),
            settings.keys().main
        );
        return EXIT_OK;
    }
    let limit = settings.max_duration() + GRACE;
    let report = match tokio::time::timeout(limit, crate::run(settings, &selection)).await {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            let _ = writeln!(err, "error: {e}");
            match &e {
                crate::Error::Settings(inner) => {
                    for p in inner.problems() {
                        let _ = writeln!(err, "  - {p}");
                    }
                }
            }
            return EXIT_USAGE;
        }
        Err(_) => {
            let _ = writeln!(err, "error: the run did not finish within {limit:?}");
            return EXIT_FAILED;
        }
    };
    let text = match cli.format {
        Format::Json => render::json(&report),
        Format::Text | Format::Markdown => render::text(&report),
    };
    let written = write_out(out, err, &text);
    if written != EXIT_OK {
        return written;
    }
    if let Some(path) = &cli.junit
        && let Err(e) = std::fs::write(path, render::junit(&report))
    {
        let _ = writeln!(err, "error: cannot write {}: {e}", path.display());
        return EXIT_USAGE;
    }
    if report.is_success() {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

fn write_out(out: &mut impl Write, err: &mut impl Write, text: &str) -> u8 {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            let _ = writeln!(err, "error: cannot write the report: {e}");
            EXIT_USAGE
        }
    }
}
