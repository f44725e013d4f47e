//! A conformance tester for AWS KMS External Key Store (XKS) proxies.
//!
//! It runs the fact sheet's conformance checklist (section 14, 130 rows) against any XKS
//! proxy, over the network only, through [`xks_client`]: transport and TLS, routing and
//! methods, SigV4, mutual TLS, `requestMetadata` tolerance, GetHealthStatus,
//! GetKeyMetadata, Encrypt and Decrypt with every tamper case, malformed input, size
//! limits, the error body format on every error answer, secondary authorization,
//! throttling, IV uniqueness and latency.
//!
//! Every check has an id (`sigv4.skew-past-10min`), the checklist rows it covers, an
//! [`Area`], a [`Grade`] and a title ([`CheckInfo`], [`catalog`]):
//!
//! - [`Grade::Required`]: a spec MUST; a miss is a failure.
//! - [`Grade::Recommended`]: a SHOULD or good practice; a miss is a warning.
//! - [`Grade::Tolerant`]: the spec allows several outcomes; any listed one passes and is
//!   reported, anything else fails.
//!
//! A check that needs something the operator did not supply (an encrypt-only key, client
//! certificates, a second credential, a deny policy) is reported as not run, saying what to
//! supply ([`Status::NotRun`]).
//!
//! The tester does not trust the proxy: every request has a timeout, every check a time
//! limit and the run a deadline; answers are parsed defensively, and a proxy that hangs,
//! resets connections or answers garbage produces failed checks with reasons, never a hang
//! or a panic.
//!
//! # Example
//!
//! ```no_run
//! use clap::Parser as _;
//! use xks_conformance::{Cli, Selection, Settings, run};
//!
//! # async fn example() -> Result<(), xks_conformance::Error> {
//! let cli = Cli::parse_from([
//!     "xks-conformance",
//!     "--endpoint", "https://xks.example.com",
//!     "--uri-path", "/example/kms/xks/v1",
//!     "--access-key-id", "AKIAI2SFODNN7EXAMPLE",
//!     "--secret-access-key", "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE",
//!     "--key-id", "key-1",
//! ]);
//! let settings = Settings::load(&cli.settings, cli.config.as_deref())?;
//! let report = run(settings, &Selection::all()).await?;
//! println!("{}", report.summary());
//! # Ok(())
//! # }
//! ```
//!
//! The `xks-conformance` binary wraps [`app::run`]; `docs/conformance.md` is the operator
//! guide.
//!
//! # Crate features
//!
//! This crate has no optional features.

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod app;
mod catalog;
mod checks;
mod cli;
mod ctx;
mod error;
mod evidence;
mod render;
mod report;
mod runner;
mod settings;
mod tlsprobe;
mod verdict;

pub use catalog::{Area, CheckInfo, Grade, Selection, catalog};
pub use cli::{Cli, Format, SecretArg, SettingsArgs};
pub use error::{Error, SettingsError};
pub use evidence::{Evidence, RequestEvidence, ResponseEvidence};
pub use report::{CheckResult, Report, Status, Summary};
pub use runner::run;
pub use settings::{KeyRoles, Settings};
