//! This crate's error.

use std::fmt;

/// Why the tester could not run. Failed checks are not errors: they are in the
/// [`Report`](crate::Report).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The settings (flags, TOML file, referenced files) are invalid, or the HTTPS client
    /// they describe cannot be built (for example, no trust roots).
    #[error("invalid settings")]
    Settings(#[source] SettingsError),
}

/// Everything wrong with the settings, one problem per line, each naming the flag or TOML
/// key. Secrets are never quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    problems: Vec<String>,
}

// === impl SettingsError ===

impl SettingsError {
    pub(crate) fn new(problems: Vec<String>) -> Self {
        Self { problems }
    }

    pub(crate) fn single(problem: impl Into<String>) -> Self {
        Self {
            problems: vec![problem.into()],
        }
    }

    /// The problems, one per entry.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

impl From<SettingsError> for Error {
    fn from(e: SettingsError) -> Self {
        Self::Settings(e)
    }
}
