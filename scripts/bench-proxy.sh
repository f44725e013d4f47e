#!/usr/bin/env bash
# Benchmarks our XKS proxy with xks-mock-kms's load generator, on loopback, once per
# backend:
#
#   - open loop at 1,800 requests/s (KMS's default quota per external key store),
#     requests sent on schedule whatever the latency;
#   - closed loop at concurrency 1, 8 and 64;
#
# every run an XKS Encrypt of a 32-byte plaintext with a 64-byte AAD and the ciphertext
# data integrity value requested (as KMS sends), signed KMS-style, over HTTP/2 and
# TLS 1.3, for XKS_BENCH_DURATION (15 s) each. The proxy's CPU time per request is read
# from /proc/<pid>/stat before and after each run.
#
#   ./scripts/bench-proxy.sh                      soft backend, defaults
#   XKS_BENCH_DURATION=20s ./scripts/bench-proxy.sh
#   XKS_BENCH_BACKENDS="soft vault" ./scripts/bench-proxy.sh   (once a vault section exists)
#
# Settings (environment):
#   XKS_BENCH_BACKENDS     backends to run, each needs a backend_<name> function below (soft)
#   XKS_BENCH_DURATION     length of each run (15s)
#   XKS_BENCH_RATE         open-loop rate, requests/s (1800)
#   XKS_BENCH_CONCURRENCY  closed-loop concurrencies ("1 8 64")
#   XKS_BENCH_PORT         proxy port on 127.0.0.1 (18443)
#   XKS_BENCH_OUT          where JSON results and summary.md go (target/bench-proxy)
#   XKS_BENCH_MANIFEST     Cargo.toml of the workspace to build (./Cargo.toml)
#   CARGO_TARGET_DIR       as usual (./target)
#
# Needs: cargo, openssl (test certificates), jq (the summary). The load generator runs on
# the same machine as the proxy and competes with it for the same cores.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BACKENDS=${XKS_BENCH_BACKENDS:-soft}
DURATION=${XKS_BENCH_DURATION:-15s}
RATE=${XKS_BENCH_RATE:-1800}
CONCURRENCY=${XKS_BENCH_CONCURRENCY:-"1 8 64"}
PORT=${XKS_BENCH_PORT:-18443}
OUT=${XKS_BENCH_OUT:-$ROOT/target/bench-proxy}
MANIFEST=${XKS_BENCH_MANIFEST:-$ROOT/Cargo.toml}
TARGET_DIR=${CARGO_TARGET_DIR:-$(dirname "$MANIFEST")/target}
KEY_ID=bench-key-1
PREFIX=/bench

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
for tool in cargo openssl jq; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is needed"
done

echo "=== building xks-proxy and xks-mock-kms (release)" >&2
cargo build --release --manifest-path "$MANIFEST" -p xks-proxy -p xks-mock-kms >&2
PROXY=$TARGET_DIR/release/xks-proxy
MOCK=$TARGET_DIR/release/xks-mock-kms

WORK=$(mktemp -d -t xks-bench-XXXXXX)
PROXY_PID=
cleanup() {
    if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
        kill "$PROXY_PID" 2>/dev/null || true
        wait "$PROXY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT"

# --- certificates and credentials ---------------------------------------------------

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=xks bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
    -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "extendedKeyUsage=serverAuth" \
    "keyUsage=critical,digitalSignature" "basicConstraints=critical,CA:FALSE" >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -extfile "$WORK/server.ext" -out "$WORK/server.pem" 2>/dev/null

# KMS's formats: 20-30 of A-Z2-7, and 44 Base64 characters.
AKID=BENCHAKIDZZ234567ABCDEFGHIJ
export XKS_SECRET_ACCESS_KEY
XKS_SECRET_ACCESS_KEY=$(openssl rand -base64 32)

# --- backends -------------------------------------------------------------------------
#
# backend_<name> DIR prepares a key manager in DIR with the AES-256 key $KEY_ID (ENCRYPT
# and DECRYPT, enabled), exports whatever the proxy needs in its environment, and sets
# BACKEND_TOML to the [backend] section of the proxy configuration. An optional
# backend_<name>_cleanup is called after that backend's runs. BACKEND_NOTE describes it
# in the summary.

backend_soft() {
    local dir=$1
    openssl rand -hex 32 >"$dir/store.key"
    chmod 600 "$dir/store.key"
    export XKS_SOFT_KEY_FILE=$dir/store.key
    "$PROXY" soft init --store "$dir/keys.xks" >&2
    "$PROXY" soft create-key --store "$dir/keys.xks" --key-id "$KEY_ID" >&2
    BACKEND_TOML=$(printf '[backend]\ntype = "soft"\npath = "%s"\n' "$dir/keys.xks")
    BACKEND_NOTE="xks-soft: AES-256-GCM in process (aes-gcm), key store file on local disk"
}

# --- runs -------------------------------------------------------------------------------

mock() {
    "$MOCK" --endpoint https://localhost --connect-to "127.0.0.1:$PORT" \
        --uri-path "$PREFIX/kms/xks/v1" --access-key-id "$AKID" --ca-file "$WORK/ca.pem" \
        --region us-east-1 --internal-key-file "$WORK/internal.key" "$@"
}

start_proxy() {
    local backend=$1 dir=$2
    cat >"$dir/proxy.toml" <<TOML
[server]
listen = ["127.0.0.1:$PORT"]
shutdown_grace = "2s"
[server.tls]
cert = "$WORK/server.pem"
key = "$WORK/server.key"

[[tenant]]
name = "bench"
path_prefix = "$PREFIX"
keys = ["*"]
[[tenant.credential]]
access_key_id = "$AKID"
secret_access_key_env = "XKS_SECRET_ACCESS_KEY"

$BACKEND_TOML
TOML
    # The proxy logs one line per request, as in production; to a file here.
    RUST_LOG=${RUST_LOG:-info} "$PROXY" serve --config "$dir/proxy.toml" \
        >"$OUT/$backend-proxy.log" 2>&1 &
    PROXY_PID=$!
    for _ in $(seq 1 120); do
        kill -0 "$PROXY_PID" 2>/dev/null || die "the proxy exited; see $OUT/$backend-proxy.log"
        if mock connect >/dev/null 2>&1; then
            return
        fi
        sleep 0.5
    done
    die "the proxy did not become ready; see $OUT/$backend-proxy.log"
}

stop_proxy() {
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    PROXY_PID=
}

bench() {
    local name=$1
    shift
    echo "=== $name" >&2
    mock --json bench --xks-key-id "$KEY_ID" --plaintext-size 32 --aad-size 64 \
        --mix encrypt=1 --duration "$DURATION" --quiet --proxy-pid "$PROXY_PID" "$@" \
        >"$OUT/$name.json"
    jq -r '"    \(.completed) requests, \(.throughput_rps | floor) req/s, p99 \(.latency_ms.p99) ms, errors \(.errors), proxy CPU \(.proxy_cpu_us_per_request // 0 | floor) µs/request"' \
        "$OUT/$name.json" >&2
}

SUMMARY=$OUT/summary.md
{
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr), $(rustc --version)"
    echo "Runs of $DURATION each; Encrypt, 32-byte plaintext, 64-byte AAD, CDIV requested; HTTP/2 over TLS 1.3 on loopback."
    echo
    echo "| Backend | Load | Throughput (req/s) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | > 250 ms | Errors | Proxy CPU µs/req | Generator CPU µs/req | Send lag p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$SUMMARY"

for backend in $BACKENDS; do
    declare -F "backend_$backend" >/dev/null || die "no backend_$backend function in $0"
    dir=$WORK/$backend
    mkdir -p "$dir"
    echo "=== backend $backend" >&2
    BACKEND_TOML=
    BACKEND_NOTE=
    "backend_$backend" "$dir"
    start_proxy "$backend" "$dir"
    mock create-key-store >"$OUT/$backend-create-key-store.txt"

    runs=("$backend-open-$RATE")
    bench "$backend-open-$RATE" --mode open --rate "$RATE"
    for c in $CONCURRENCY; do
        runs+=("$backend-closed-$c")
        bench "$backend-closed-$c" --mode closed --concurrency "$c"
    done
    stop_proxy
    if declare -F "backend_${backend}_cleanup" >/dev/null; then
        "backend_${backend}_cleanup" "$dir"
    fi

    for run in "${runs[@]}"; do
        jq -r --arg backend "$backend" '
            def r: . * 100 | round / 100;
            def load: if .mode == "open" then "open loop \(.target_rate) req/s" else "closed loop, concurrency \(.concurrency)" end;
            def errs: if (.errors | length) == 0 then "0" else (.errors | to_entries | map("\(.key) \(.value)") | join(", ")) end;
            "| \($backend) | \(load) | \(.throughput_rps | r) | \(.latency_ms.p50 | r) | \(.latency_ms.p90 | r) | \(.latency_ms.p99 | r) | \(.latency_ms.p99_9 | r) | \(.latency_ms.max | r) | \(.over_250ms) | \(errs) | \(.proxy_cpu_us_per_request // "?" | if type == "number" then r else . end) | \(.client_cpu_us_per_request // "?" | if type == "number" then r else . end) | \(.schedule_lag_ms.p99 // "-" | if type == "number" then r else . end) |"' \
            "$OUT/$run.json" >>"$SUMMARY"
    done
    echo "$backend: $BACKEND_NOTE" >>"$OUT/backends.txt"
done

{
    echo
    echo "Signer (xks-sigv4 Signer, aws-sigv4) per signature, as measured by the generator: $(jq -r '.signer_us_per_request | . * 100 | round / 100' "$OUT/${BACKENDS%% *}-open-$RATE.json") µs."
} >>"$SUMMARY"
echo >&2
cat "$SUMMARY"
