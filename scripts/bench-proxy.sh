#!/usr/bin/env bash
# Benchmarks our XKS proxy with xks-mock-kms's load generator, on loopback, once per
# backend and operation:
#
#   - open loop at 1,800 requests/s (KMS's default quota per external key store),
#     requests sent on schedule whatever the latency;
#   - closed loop at concurrency 1, 8 and 64;
#
# each run for XKS_BENCH_DURATION (15 s), once per operation mix of XKS_BENCH_MIXES
# (Encrypt only, then Decrypt only). Encrypt is an XKS Encrypt of a 32-byte plaintext
# with a 64-byte AAD and the ciphertext data integrity value requested (as KMS sends);
# Decrypt decrypts a ciphertext made that way. Requests are signed KMS-style and sent
# over HTTP/2 (XKS_BENCH_HTTP) and TLS 1.3. The proxy's CPU time per request is read from
# /proc/<pid>/stat before and after each run; so is the key manager's, when it runs in a
# process of its own (Vault/OpenBao).
#
#   ./scripts/bench-proxy.sh                      soft backend, defaults
#   XKS_BENCH_DURATION=10s ./scripts/bench-proxy.sh
#   XKS_BENCH_BACKENDS="soft pkcs11 vault" ./scripts/bench-proxy.sh
#   XKS_BENCH_MIXES="encrypt=1" ./scripts/bench-proxy.sh       (Encrypt only)
#
# Backends:
#   soft     xks-soft, a key store file in the work directory
#   pkcs11   SoftHSM2: a configuration and a token of its own in the work directory
#            (needs softhsm2-util and libsofthsm2.so; scripts/ensure-softhsm.sh)
#   vault    OpenBao: `bao server -dev` on a random 127.0.0.1 port, Transit mounted
#            (the bao binary from scripts/ensure-openbao.sh, or XKS_BAO_BIN)
#
# Settings (environment):
#   XKS_BENCH_BACKENDS     backends to run, each needs a backend_<name> function below (soft)
#   XKS_BENCH_MIXES        operation mixes, one series each, as for `bench --mix`
#                          ("encrypt=1 decrypt=1")
#   XKS_BENCH_DURATION     length of each run (15s)
#   XKS_BENCH_RATE         open-loop rate, requests/s (1800; 0 skips the open loop)
#   XKS_BENCH_CONCURRENCY  closed-loop concurrencies ("1 8 64")
#   XKS_BENCH_HTTP         HTTP version the generator offers: http2 (default), http1, auto
#   XKS_BENCH_PROXY_THREADS      the proxy's server.worker_threads (default: one per CPU)
#   XKS_BENCH_GENERATOR_THREADS  the generator's runtime threads (default: one per CPU)
#   XKS_BENCH_PORT         proxy port on 127.0.0.1 (18443)
#   XKS_BENCH_OUT          where JSON results and summary.md go (target/bench-proxy)
#   XKS_BENCH_MANIFEST     Cargo.toml of the workspace to build (./Cargo.toml)
#   XKS_BENCH_PKCS11_SESSIONS  sessions_per_slot of the pkcs11 backend (4, the default)
#   XKS_BENCH_PKCS11_COPIES    session_key_copies of the pkcs11 backend: true, false, or
#                          auto (the default: unset, which is on for SoftHSM2)
#   XKS_BENCH_PKCS11_MODULE  the SoftHSM2 module (default: XKS_TEST_PKCS11_MODULE, else
#                          the usual libsofthsm2.so paths)
#   XKS_BAO_BIN            the OpenBao binary (default: what scripts/ensure-openbao.sh finds)
#   CARGO_TARGET_DIR       as usual (./target)
#
# Needs: cargo, openssl (test certificates), jq (the summary). The load generator runs on
# the same machine as the proxy (and the key manager) and competes with it for the same
# cores. Everything listens on 127.0.0.1 only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)

BACKENDS=${XKS_BENCH_BACKENDS:-soft}
MIXES=${XKS_BENCH_MIXES:-"encrypt=1 decrypt=1"}
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
MOCK_PID=
CURRENT_BACKEND=
CLK_TCK=$(getconf CLK_TCK)

# Stops a process we started: SIGTERM, up to 10 s, then SIGKILL. By PID only.
stop_pid() {
    local pid=$1
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    if [ -n "$MOCK_PID" ]; then
        stop_pid "$MOCK_PID"
        MOCK_PID=
    fi
    if [ -n "$PROXY_PID" ]; then
        stop_pid "$PROXY_PID"
        PROXY_PID=
    fi
    if [ -n "$CURRENT_BACKEND" ] && declare -F "backend_${CURRENT_BACKEND}_cleanup" >/dev/null; then
        "backend_${CURRENT_BACKEND}_cleanup" "$WORK/$CURRENT_BACKEND" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
# A signal must end the script through the EXIT trap, or the proxy and the key manager
# would be left running.
trap 'exit 130' INT
trap 'exit 143' TERM HUP
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
# backend_<name>_cleanup DIR is called after that backend's runs, and on exit if the
# script stops early (so it must be idempotent). BACKEND_NOTE describes it in the
# summary. A key manager running in a process of its own sets BACKEND_PID, so that its
# CPU time per request is reported too.
#
# The proxy's operator subcommands (`xks-proxy pkcs11 ...`, `xks-proxy vault ...`) read
# the whole proxy configuration: set BACKEND_TOML, then `write_config DIR` makes
# DIR/proxy.toml for them.

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

# --- pkcs11: SoftHSM2 -------------------------------------------------------------------

PKCS11_TOKEN=xks-bench
PKCS11_CANARY=xks-health-canary

pkcs11_module() {
    local m
    for m in "${XKS_BENCH_PKCS11_MODULE:-}" "${XKS_TEST_PKCS11_MODULE:-}" \
        /usr/lib/softhsm/libsofthsm2.so \
        /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
        /usr/lib64/pkcs11/libsofthsm2.so \
        /usr/local/lib/softhsm/libsofthsm2.so; do
        if [ -n "$m" ] && [ -f "$m" ]; then
            echo "$m"
            return 0
        fi
    done
    return 1
}

backend_pkcs11() {
    local dir=$1 module so_pin
    "$ROOT/scripts/ensure-softhsm.sh" >&2 || die "SoftHSM2 is needed for the pkcs11 backend"
    module=$(pkcs11_module) || die "libsofthsm2.so not found; set XKS_BENCH_PKCS11_MODULE"
    # A SoftHSM2 configuration and token directory of our own; the proxy (which loads
    # SoftHSM in its own process) and softhsm2-util read it through SOFTHSM2_CONF.
    mkdir -p "$dir/softhsm/tokens"
    printf '%s\n' "directories.tokendir = $dir/softhsm/tokens" "objectstore.backend = file" \
        "log.level = ERROR" "slots.removable = false" >"$dir/softhsm/softhsm2.conf"
    export SOFTHSM2_CONF=$dir/softhsm/softhsm2.conf
    export XKS_BENCH_PKCS11_PIN
    XKS_BENCH_PKCS11_PIN=$(openssl rand -hex 12)
    so_pin=$(openssl rand -hex 12)
    softhsm2-util --init-token --free --label "$PKCS11_TOKEN" \
        --so-pin "$so_pin" --pin "$XKS_BENCH_PKCS11_PIN" >&2
    local sessions=${XKS_BENCH_PKCS11_SESSIONS:-4}
    local copies=${XKS_BENCH_PKCS11_COPIES:-auto} copies_line=
    case $copies in
        true | false) copies_line="session_key_copies = $copies" ;;
        auto) ;;
        *) die "XKS_BENCH_PKCS11_COPIES must be true, false or auto, not '$copies'" ;;
    esac
    BACKEND_TOML=$(printf '[backend]\ntype = "pkcs11"\nmodule = "%s"\npin_env = "XKS_BENCH_PKCS11_PIN"\nsessions_per_slot = %s\n%s\n[[backend.slots]]\ntoken_label = "%s"\n' \
        "$module" "$sessions" "$copies_line" "$PKCS11_TOKEN")
    write_config "$dir"
    # The bench key, and the health check key the backend needs on every token.
    timeout 60 "$PROXY" pkcs11 create-key --config "$dir/proxy.toml" --label "$KEY_ID" >&2
    timeout 60 "$PROXY" pkcs11 create-key --config "$dir/proxy.toml" --label "$PKCS11_CANARY" >&2
    BACKEND_NOTE="xks-pkcs11 on SoftHSM2 $(softhsm2-util --version) ($module), in the proxy's process; $sessions sessions (worker threads); session_key_copies: $copies"
}

backend_pkcs11_cleanup() {
    local dir=$1
    # The token (its key files) goes with the work directory; forget it now.
    rm -rf "$dir/softhsm"
    unset SOFTHSM2_CONF XKS_BENCH_PKCS11_PIN
}

# --- vault: OpenBao dev server ------------------------------------------------------------

BAO_PID=

# Whether something listens on 127.0.0.1:$1.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Waits at most 30 s for the dev server at $1 to answer unsealed; fails at once if it
# exited (a port taken in the meantime, say).
bao_wait_ready() {
    local deadline=$((SECONDS + 30))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$BAO_PID" 2>/dev/null || return 1
        if BAO_ADDR=$1 timeout 5 "$BAO" status >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.25
    done
    return 1
}

backend_vault() {
    local dir=$1 port address attempt
    BAO=$("$ROOT/scripts/ensure-openbao.sh") || die "OpenBao is needed for the vault backend"
    export XKS_BENCH_VAULT_TOKEN
    XKS_BENCH_VAULT_TOKEN=$(openssl rand -hex 20)
    for attempt in 1 2 3; do
        # A random port whose successor is free too (dev mode's cluster port).
        port=$((20000 + RANDOM % 40000))
        if port_in_use "$port" || port_in_use $((port + 1)) || [ "$port" = "$PORT" ] ||
            [ $((port + 1)) = "$PORT" ]; then
            continue
        fi
        address=http://127.0.0.1:$port
        # In-memory storage, unsealed, plain HTTP on loopback only; the root token from
        # the environment (not the command line), HOME in the work directory.
        HOME=$dir BAO_DEV_ROOT_TOKEN_ID=$XKS_BENCH_VAULT_TOKEN "$BAO" server -dev \
            -dev-listen-address="127.0.0.1:$port" -dev-no-store-token -log-level=warn \
            >"$OUT/vault-bao.log" 2>&1 &
        BAO_PID=$!
        if bao_wait_ready "$address"; then
            break
        fi
        echo "bao did not start on port $port (attempt $attempt); see $OUT/vault-bao.log" >&2
        stop_pid "$BAO_PID"
        BAO_PID=
    done
    [ -n "$BAO_PID" ] || die "the OpenBao dev server did not start; see $OUT/vault-bao.log"
    BACKEND_PID=$BAO_PID
    BAO_ADDR=$address BAO_TOKEN=$XKS_BENCH_VAULT_TOKEN HOME=$dir \
        timeout 30 "$BAO" secrets enable transit >&2
    BACKEND_TOML=$(printf '[backend]\ntype = "vault"\naddresses = ["%s"]\n[backend.auth]\nmethod = "token"\ntoken = { env = "XKS_BENCH_VAULT_TOKEN" }\n' \
        "$address")
    write_config "$dir"
    # The root token may create keys, so the proxy refuses to start unless the mount
    # forbids upserts.
    timeout 60 "$PROXY" vault disable-upsert --config "$dir/proxy.toml" >&2
    timeout 60 "$PROXY" vault create-key --config "$dir/proxy.toml" --key-id "$KEY_ID" >&2
    timeout 60 "$PROXY" vault create-canary --config "$dir/proxy.toml" >&2
    BACKEND_NOTE="xks-vault on OpenBao $("$BAO" version | awk '{print $2}') dev server (in-memory, plain HTTP on loopback, pid $BAO_PID), Transit aes256-gcm96, coalescing on (default)"
}

backend_vault_cleanup() {
    if [ -n "$BAO_PID" ]; then
        stop_pid "$BAO_PID"
        BAO_PID=
    fi
}

# --- runs -------------------------------------------------------------------------------

mock() {
    "$MOCK" --endpoint https://localhost --connect-to "127.0.0.1:$PORT" \
        --uri-path "$PREFIX/kms/xks/v1" --access-key-id "$AKID" --ca-file "$WORK/ca.pem" \
        --region us-east-1 --internal-key-file "$WORK/internal.key" "$@"
}

# Writes DIR/proxy.toml: the listener, TLS, the bench tenant and $BACKEND_TOML.
write_config() {
    local dir=$1
    cat >"$dir/proxy.toml" <<TOML
[server]
listen = ["127.0.0.1:$PORT"]
shutdown_grace = "2s"
${XKS_BENCH_PROXY_THREADS:+worker_threads = $XKS_BENCH_PROXY_THREADS}
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
}

start_proxy() {
    local backend=$1 dir=$2
    write_config "$dir"
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

# CPU time (user + system, clock ticks) of process $1 so far; empty if it is gone.
cpu_ticks() {
    # Fields 14 and 15; the command name (field 2) may hold spaces, so cut after ')'.
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}

bench() {
    local name=$1 mix=$2
    shift 2
    local before='' after=''
    echo "=== $name" >&2
    [ -z "$BACKEND_PID" ] || before=$(cpu_ticks "$BACKEND_PID")
    # In the background, so that a signal interrupts `wait` and stops it at once.
    mock --json --http "${XKS_BENCH_HTTP:-http2}" \
        ${XKS_BENCH_GENERATOR_THREADS:+--threads "$XKS_BENCH_GENERATOR_THREADS"} bench --xks-key-id "$KEY_ID" \
        --plaintext-size 32 --aad-size 64 --mix "$mix" --duration "$DURATION" --quiet --proxy-pid "$PROXY_PID" "$@" \
        >"$OUT/$name.json" &
    MOCK_PID=$!
    local rc=0
    wait "$MOCK_PID" || rc=$?
    MOCK_PID=
    [ "$rc" = 0 ] || die "the load generator failed (status $rc) in $name"
    [ -z "$BACKEND_PID" ] || after=$(cpu_ticks "$BACKEND_PID")
    if [ -n "$before" ] && [ -n "$after" ]; then
        # The key manager's CPU per request; its window also covers the generator's
        # start (one Encrypt per key), negligible against a run.
        jq --argjson ticks $((after - before)) --argjson hz "$CLK_TCK" --argjson pid "$BACKEND_PID" \
            '.backend_pid = $pid | .backend_cpu_us_per_request = (if .completed > 0 then $ticks * 1e6 / $hz / .completed else null end)' \
            "$OUT/$name.json" >"$OUT/$name.json.tmp"
        mv "$OUT/$name.json.tmp" "$OUT/$name.json"
    fi
    jq -r '"    \(.completed) requests, \(.throughput_rps | floor) req/s, p99 \(.latency_ms.p99) ms, errors \(.errors), proxy CPU \(.proxy_cpu_us_per_request // 0 | floor) µs/request\(if .backend_cpu_us_per_request then ", key manager CPU \(.backend_cpu_us_per_request | floor) µs/request" else "" end)"' \
        "$OUT/$name.json" >&2
}

# A name for a mix in file names and the summary: encrypt=1 -> encrypt,
# encrypt=8,decrypt=2 -> encrypt8-decrypt2.
mix_label() {
    printf '%s' "$1" | sed -E 's/=1(,|$)/\1/g; s/=//g; s/,/-/g'
}

SUMMARY=$OUT/summary.md
{
    echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(uname -sr), $(rustc --version)"
    echo "Load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "Runs of $DURATION each; operation mixes: $MIXES. Encrypt: 32-byte plaintext, 64-byte AAD, CDIV requested; Decrypt: of such a ciphertext. ${XKS_BENCH_HTTP:-http2} over TLS 1.3 on loopback; proxy worker threads: ${XKS_BENCH_PROXY_THREADS:-one per CPU}; generator threads: ${XKS_BENCH_GENERATOR_THREADS:-one per CPU}."
    echo
    echo "| Backend | Operation | Load | Throughput (req/s) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | > 250 ms | Errors | Proxy CPU µs/req | Key manager process CPU µs/req | Generator CPU µs/req | Send lag p99 ms |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$SUMMARY"

: >"$OUT/backends.txt"
FIRST_RUN=
for backend in $BACKENDS; do
    declare -F "backend_$backend" >/dev/null || die "no backend_$backend function in $0"
    dir=$WORK/$backend
    mkdir -p "$dir"
    echo "=== backend $backend (load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    BACKEND_TOML=
    BACKEND_NOTE=
    BACKEND_PID=
    CURRENT_BACKEND=$backend
    "backend_$backend" "$dir"
    start_proxy "$backend" "$dir"
    mock create-key-store >"$OUT/$backend-create-key-store.txt"

    runs=()
    for mix in $MIXES; do
        label=$(mix_label "$mix")
        if [ "$RATE" != 0 ]; then
            runs+=("$backend-$label-open-$RATE")
            bench "$backend-$label-open-$RATE" "$mix" --mode open --rate "$RATE"
        fi
        for c in $CONCURRENCY; do
            runs+=("$backend-$label-closed-$c")
            bench "$backend-$label-closed-$c" "$mix" --mode closed --concurrency "$c"
        done
    done
    FIRST_RUN=${FIRST_RUN:-${runs[0]}}
    stop_proxy
    if declare -F "backend_${backend}_cleanup" >/dev/null; then
        "backend_${backend}_cleanup" "$dir"
    fi
    CURRENT_BACKEND=

    for run in "${runs[@]}"; do
        jq -r --arg backend "$backend" '
            def r: . * 100 | round / 100;
            def num: if type == "number" then r else . end;
            def load: if .mode == "open" then "open loop \(.target_rate) req/s" else "closed loop, concurrency \(.concurrency)" end;
            def errs: if (.errors | length) == 0 then "0" else (.errors | to_entries | map("\(.key) \(.value)") | join(", ")) end;
            "| \($backend) | \(.mix | gsub("=1(?=,|$)"; "")) | \(load) | \(.throughput_rps | r) | \(.latency_ms.p50 | r) | \(.latency_ms.p90 | r) | \(.latency_ms.p99 | r) | \(.latency_ms.p99_9 | r) | \(.latency_ms.max | r) | \(.over_250ms) | \(errs) | \(.proxy_cpu_us_per_request // "?" | num) | \(.backend_cpu_us_per_request // "-" | num) | \(.client_cpu_us_per_request // "?" | num) | \(.schedule_lag_ms.p99 // "-" | num) |"' \
            "$OUT/$run.json" >>"$SUMMARY"
    done
    echo "$backend: $BACKEND_NOTE" >>"$OUT/backends.txt"
done

{
    echo
    echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "Signer (xks-sigv4 Signer, aws-sigv4) per signature, as measured by the generator: $(jq -r '.signer_us_per_request | . * 100 | round / 100' "$OUT/$FIRST_RUN.json") µs."
} >>"$SUMMARY"
echo >&2
cat "$SUMMARY"
