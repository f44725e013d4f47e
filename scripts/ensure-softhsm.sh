#!/usr/bin/env bash
# Makes sure SoftHSM2 is installed: the PKCS#11 backend's tests (crates/xks-pkcs11)
# run on a real SoftHSM2 token. Idempotent: does nothing when `softhsm2-util`
# and libsofthsm2.so are present; otherwise installs the Debian package
# `softhsm2` with apt-get (as root, or through sudo).
#
# The tests make their own tokens and configuration file; see
# `xks_pkcs11::testing` and the `[env]` section of .cargo/config.toml.
set -euo pipefail

module_present() {
    if [ -n "${XKS_TEST_PKCS11_MODULE:-}" ]; then
        [ -f "$XKS_TEST_PKCS11_MODULE" ]
        return
    fi
    local m
    for m in /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib64/pkcs11/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        [ -f "$m" ] && return 0
    done
    return 1
}

if command -v softhsm2-util >/dev/null 2>&1 && module_present; then
    exit 0
fi

fail() {
    cat >&2 <<MSG
error: SoftHSM2 is missing and could not be installed ($*).
The PKCS#11 tests need it. Install it by hand, then rerun:
    Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y softhsm2
    Fedora/RHEL:    sudo dnf install -y softhsm
    macOS:          brew install softhsm   (then set XKS_TEST_PKCS11_MODULE to libsofthsm2.so)
MSG
    exit 1
}

command -v apt-get >/dev/null 2>&1 || fail "apt-get not found"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and sudo not found"
    SUDO=sudo
fi

echo "installing softhsm2 (missing) with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends softhsm2 >&2; then
    # The package lists may be missing or stale: refresh them once and retry.
    $SUDO apt-get update >&2 || fail "apt-get update failed"
    $SUDO apt-get install -y --no-install-recommends softhsm2 >&2 || fail "apt-get install softhsm2 failed"
fi

command -v softhsm2-util >/dev/null 2>&1 || fail "softhsm2-util still not found after installing"
module_present || fail "libsofthsm2.so still not found after installing"
echo "softhsm2 installed: $(softhsm2-util --version)" >&2
