#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
#
# It installs what the suite needs when it is missing (cargo-deny, cargo-fuzz,
# SoftHSM2, OpenBao),
# then runs, in order: formatting, clippy, the tests, the docs, the fuzz targets
# (build plus a short smoke run of each), and cargo-deny.
#
#   ./scripts/test.sh            everything
#   XKS_FUZZ_SECONDS=60 ./scripts/test.sh   longer fuzz smoke runs
#
# Nothing is skipped silently: a missing prerequisite that cannot be installed
# stops the run with a message saying how to install it.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

FUZZ_SECONDS=${XKS_FUZZ_SECONDS:-8}
CARGO_DENY_VERSION=0.20.2
CARGO_FUZZ_VERSION=0.13.2

export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

started=$(date +%s)
stage() {
    printf '\n=== [%4ss] %s\n' "$(($(date +%s) - started))" "$*"
}
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# --- prerequisites ---------------------------------------------------------

need_cargo_tool() {
    # need_cargo_tool <binary> <crate> <version> [toolchain]
    local bin=$1 crate=$2 version=$3 toolchain=${4:-}
    if command -v "$bin" >/dev/null 2>&1; then
        return
    fi
    stage "installing $crate $version from crates.io (missing)"
    if [ -n "$toolchain" ]; then
        cargo "+$toolchain" install --locked "$crate" --version "$version" ||
            die "could not install $crate; install it by hand: cargo +$toolchain install --locked $crate --version $version"
    else
        cargo install --locked "$crate" --version "$version" ||
            die "could not install $crate; install it by hand: cargo install --locked $crate --version $version"
    fi
}

rustup run nightly rustc --version >/dev/null 2>&1 ||
    die "the nightly toolchain is needed for cargo-fuzz (sanitizers); install it with: rustup toolchain install nightly"

need_cargo_tool cargo-deny cargo-deny "$CARGO_DENY_VERSION"
need_cargo_tool cargo-fuzz cargo-fuzz "$CARGO_FUZZ_VERSION"

stage "SoftHSM2 (PKCS#11 tests)"
./scripts/ensure-softhsm.sh
stage "OpenBao (Vault Transit tests)"
XKS_BAO_BIN=$(./scripts/ensure-openbao.sh)
export XKS_BAO_BIN
echo "bao: $XKS_BAO_BIN"

command -v curl >/dev/null 2>&1 ||
    die "curl is needed by the demo's end-to-end test: apt-get install -y curl"

# --- the workspace ---------------------------------------------------------

stage "cargo fmt --check"
cargo fmt --all -- --check
cargo +nightly fmt --manifest-path fuzz/Cargo.toml --all -- --check

stage "cargo clippy (workspace, all targets, warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

stage "cargo test (workspace)"
cargo test --workspace --locked

stage "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

# --- fuzzing ---------------------------------------------------------------

stage "fuzz targets: clippy and build"
cargo +nightly clippy --manifest-path fuzz/Cargo.toml --locked --all-targets -- -D warnings
(cd fuzz && cargo +nightly fuzz build --release)

targets=$(cd fuzz && cargo +nightly fuzz list)
[ -n "$targets" ] || die "no fuzz targets found"
for target in $targets; do
    stage "fuzz smoke run: $target (${FUZZ_SECONDS}s)"
    # New inputs go to a scratch directory; the committed seed corpus is only read.
    scratch=$(mktemp -d)
    (cd fuzz && cargo +nightly fuzz run --release "$target" "$scratch" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -print_final_stats=1) 2>&1 |
        tail -n 20
    rm -rf "$scratch"
done

# --- supply chain ----------------------------------------------------------

stage "cargo deny check bans licenses sources"
cargo deny --locked check bans licenses sources

stage "all checks passed"
