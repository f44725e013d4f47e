//! What the test binaries that drive the test-only PKCS#11 module
//! `crates/xks-pkcs11-faultwrap` share: building it (once per test process,
//! into `CARGO_TARGET_TMPDIR`) and giving each test a private copy of it, of
//! the SoftHSM library it wraps, and of its configuration.
#![allow(
    dead_code,
    reason = "each test binary including this module uses a part of it; \
              `expect` would be unfulfilled in the binaries that use it all"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use xks_pkcs11::testing::SoftHsm;

/// Runs of the fault wrapper older than this are left-overs.
const STALE_RUN_AGE: Duration = Duration::from_secs(3600);

/// One test's wrapping module: a copy of the wrapper library beside its
/// configuration, wrapping a copy of SoftHSM, with its fault switch and its
/// events file.
pub(crate) struct FaultWrap {
    dir: PathBuf,
}

// === impl FaultWrap ===

impl FaultWrap {
    const LIBRARY: &'static str = "libxks_pkcs11_faultwrap.so";

    /// A wrapper of its own for test `name`, with no fault set.
    pub(crate) fn new(name: &str) -> Self {
        Self::with_conf(name, "")
    }

    /// A wrapper of its own for test `name`, with no fault set and `extra`
    /// appended to its configuration (lines of `key = value`, such as
    /// `iv_mode = hsm_appends`).
    pub(crate) fn with_conf(name: &str, extra: &str) -> Self {
        let built = built_wrapper();
        let dir = run_dir().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(built, dir.join(Self::LIBRARY)).unwrap();
        // Another file than the one the test support loads: another instance.
        let softhsm = dir.join("libsofthsm2-wrapped.so");
        std::fs::copy(SoftHsm::module_path(), &softhsm).unwrap();
        std::fs::write(
            dir.join("xks-faultwrap.conf"),
            format!("module = {}\n{extra}\n", softhsm.display()),
        )
        .unwrap();
        let wrap = Self { dir };
        wrap.set("ok");
        wrap
    }

    /// The module to configure.
    pub(crate) fn module(&self) -> PathBuf {
        self.dir.join(Self::LIBRARY)
    }

    /// Sets the fault switch (write and rename: the module never reads half a line).
    pub(crate) fn set(&self, line: &str) {
        let tmp = self.dir.join("xks-faultwrap.fault.tmp");
        std::fs::write(&tmp, format!("{line}\n")).unwrap();
        std::fs::rename(&tmp, self.dir.join("xks-faultwrap.fault")).unwrap();
    }

    /// The fault switch's line.
    pub(crate) fn fault(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("xks-faultwrap.fault")).unwrap();
        text.trim().to_owned()
    }

    /// How many events the module recorded that start with `prefix`
    /// (`C_Finalize`, `C_Initialize 0x0`, `inject`, `iv hsm_appends`, `refuse`).
    pub(crate) fn events(&self, prefix: &str) -> usize {
        std::fs::read_to_string(self.dir.join("xks-faultwrap.events"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.starts_with(prefix))
            .count()
    }
}

/// Builds the wrapper library once per test process, with the cargo running
/// the tests, into a target directory of its own (so it never waits for the
/// lock of the build that runs the tests), and returns its path.
fn built_wrapper() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faultwrap-target");
        let started = Instant::now();
        let output = Command::new(&cargo)
            .current_dir(&workspace)
            .args([
                "build",
                "-j1",
                "--locked",
                "--offline",
                "-p",
                "xks-pkcs11-faultwrap",
            ])
            .arg("--manifest-path")
            .arg(workspace.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", Path::new(&cargo).display()));
        assert!(
            output.status.success(),
            "building xks-pkcs11-faultwrap failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        eprintln!(
            "built xks-pkcs11-faultwrap in {:.1?} (into {})",
            started.elapsed(),
            target.display()
        );
        target.join("debug").join(FaultWrap::LIBRARY)
    })
}

/// This process's directory of wrapper copies; removes stale ones of earlier runs.
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let runs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faultwrap-runs");
        xks_pkcs11::testing::prune_stale(&runs, STALE_RUN_AGE);
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir = runs.join(format!("{}-{stamp}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}
