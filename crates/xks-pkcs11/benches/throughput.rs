//! Throughput, latency percentiles and CPU time per operation of the PKCS#11
//! key manager alone (no HTTP, no TLS, no SigV4), on a SoftHSM2 token made for
//! the run, for Encrypt and Decrypt at concurrency 1, 8 and 64, with the
//! workers using the token objects (`session_key_copies = false`) and using
//! session copies of the key (`true`, the default for SoftHSM2).
//!
//! ```text
//! cargo bench -p xks-pkcs11 --bench throughput
//! XKS_BENCH_SECONDS=10 cargo bench -p xks-pkcs11 --bench throughput
//! ```
//!
//! Each scenario runs for `XKS_BENCH_SECONDS` (default 3) after a short
//! warm-up, and at most 2,000,000 operations. Results go to stdout and to
//! `docs/benchmarks-pkcs11.md`. CPU time is the whole process's user + system
//! time from `/proc/self/stat` (SoftHSM runs in-process, so it includes
//! SoftHSM's own work); a baseline of SoftHSM alone, called directly through
//! cryptoki on one thread with a cached key handle, shows what part of it is
//! the key manager's.
#![expect(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark program: it reports on stdout and stops at the first failure"
)]

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use xks_keymanager::{KeyManager, Sealed};
use xks_pkcs11::testing::SoftHsm;
use xks_pkcs11::{Pkcs11KeyManager, Usage};
use xks_protocol::KeyId;

const CONCURRENCY: [usize; 3] = [1, 8, 64];
const MAX_OPS: usize = 2_000_000;
const PLAINTEXT_LEN: usize = 32;
const AAD_LEN: usize = 64;
const TOKEN: usize = 0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
}

struct Row {
    what: String,
    concurrency: usize,
    ops: usize,
    seconds: f64,
    cpu_us_per_op: f64,
    p50: Duration,
    p90: Duration,
    p99: Duration,
    max: Duration,
}

fn main() {
    let seconds: u64 = std::env::var("XKS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let run_for = Duration::from_secs(seconds);
    let hsm = SoftHsm::shared();
    let label = SoftHsm::unique_label("bench");
    hsm.admin(TOKEN)
        .create_key(&label, Usage::ENCRYPT_DECRYPT)
        .unwrap();
    let key = KeyId::new(&label).unwrap();

    let mut rows = vec![baseline(hsm, &label, run_for)];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut sessions = 0;
    let (mut sessions_opened, mut logins) = (0, 0);
    for copies in [false, true] {
        let mut config = hsm.config(&[TOKEN]);
        config.session_key_copies = Some(copies);
        sessions = config.sessions_per_slot;
        let km = Arc::new(Pkcs11KeyManager::open(&config, SoftHsm::env()).unwrap());
        for op in [Op::Encrypt, Op::Decrypt] {
            for concurrency in CONCURRENCY {
                let mut row =
                    runtime.block_on(scenario(km.clone(), key.clone(), op, concurrency, run_for));
                row.what.push_str(if copies {
                    ", session copies"
                } else {
                    ", token object"
                });
                print_row(&row);
                rows.push(row);
            }
        }
        let stats = &km.stats()[0];
        sessions_opened += stats.sessions_opened;
        logins += stats.logins;
    }
    write_report(&rows, sessions, seconds, sessions_opened, logins);
}

/// SoftHSM alone: C_GenerateRandom(12) + C_EncryptInit + C_Encrypt with a cached
/// handle, one thread, as the key manager's workers call it.
fn baseline(hsm: &SoftHsm, label: &str, run_for: Duration) -> Row {
    let pkcs11 = cryptoki::context::Pkcs11::new(hsm.module()).unwrap();
    let slot = hsm.slot_of(&pkcs11, TOKEN);
    let session = pkcs11.open_ro_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&SoftHsm::USER_PIN.into()));
    let handle = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap()[0];
    let plaintext = [7u8; PLAINTEXT_LEN];
    let aad = [9u8; AAD_LEN];
    let mut latencies = Vec::new();
    let cpu_before = process_cpu();
    let started = Instant::now();
    while started.elapsed() < run_for && latencies.len() < MAX_OPS {
        let t = Instant::now();
        let mut iv = [0u8; 12];
        session.generate_random_slice(&mut iv).unwrap();
        let params = GcmParams::new(&mut iv, &aad, 128.into()).unwrap();
        let out = session
            .encrypt(&Mechanism::AesGcm(params), handle, &plaintext)
            .unwrap();
        assert_eq!(out.len(), PLAINTEXT_LEN + 16);
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu() - cpu_before;
    let row = summarize(
        "SoftHSM alone: RNG + GCM encrypt (cryptoki, 1 thread)".to_owned(),
        1,
        latencies,
        elapsed,
        cpu,
    );
    print_row(&row);
    row
}

async fn scenario(
    km: Arc<Pkcs11KeyManager>,
    key: KeyId,
    op: Op,
    concurrency: usize,
    run_for: Duration,
) -> Row {
    let plaintext = [7u8; PLAINTEXT_LEN];
    let aad = [9u8; AAD_LEN];
    let sealed: Arc<Sealed> = Arc::new(km.encrypt(&key, &plaintext, &aad).await.unwrap());
    // Warm-up: every worker has its session, every handle is cached.
    warm(&km, &key, &sealed, op).await;

    let per_task = MAX_OPS / concurrency;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (km, key, sealed) = (km.clone(), key.clone(), sealed.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline && latencies.len() < per_task {
                let t = Instant::now();
                match op {
                    Op::Encrypt => {
                        km.encrypt(&key, &plaintext, &aad).await.unwrap();
                    }
                    Op::Decrypt => {
                        km.decrypt(&key, Sealed::as_ref(&sealed), &aad)
                            .await
                            .unwrap();
                    }
                }
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu() - cpu_before;
    let what = match op {
        Op::Encrypt => "Encrypt",
        Op::Decrypt => "Decrypt",
    };
    summarize(what.to_owned(), concurrency, latencies, elapsed, cpu)
}

async fn warm(km: &Arc<Pkcs11KeyManager>, key: &KeyId, sealed: &Sealed, op: Op) {
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (km, key, sealed) = (km.clone(), key.clone(), sealed.clone());
            batch.spawn(async move {
                match op {
                    Op::Encrypt => drop(km.encrypt(&key, b"warm", b"").await.unwrap()),
                    Op::Decrypt => drop(
                        km.decrypt(&key, Sealed::as_ref(&sealed), &[9; AAD_LEN])
                            .await
                            .unwrap(),
                    ),
                }
            });
        }
        while let Some(done) = batch.join_next().await {
            done.unwrap();
        }
    }
}

fn summarize(
    what: String,
    concurrency: usize,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
    cpu: Duration,
) -> Row {
    latencies.sort_unstable();
    let ops = latencies.len();
    // Nearest rank: the smallest latency with at least `per_mille`/1000 of
    // the calls at or below it.
    let at = |per_mille: usize| latencies[(ops * per_mille).div_ceil(1000).clamp(1, ops) - 1];
    Row {
        what,
        concurrency,
        ops,
        seconds: elapsed.as_secs_f64(),
        cpu_us_per_op: cpu.as_secs_f64() * 1e6 / ops as f64,
        p50: at(500),
        p90: at(900),
        p99: at(990),
        max: latencies[ops - 1],
    }
}

/// User + system CPU time of the whole process, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s: Linux's fixed USER_HZ).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name (field 2) may contain spaces; the fields after it do not.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3, so fields 14 and 15 are at 11 and 12.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

fn print_row(row: &Row) {
    println!(
        "{:<55} c={:<3} {:>8.0} ops/s  p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  max {:>7} us  CPU {:>5.1} us/op",
        row.what,
        row.concurrency,
        row.ops as f64 / row.seconds,
        micros(row.p50),
        micros(row.p90),
        micros(row.p99),
        micros(row.max),
        row.cpu_us_per_op,
    );
}

fn write_report(rows: &[Row], sessions: usize, seconds: u64, sessions_opened: u64, logins: u64) {
    let mut md = String::new();
    md.push_str("# PKCS#11 backend benchmark (SoftHSM2)\n\n");
    md.push_str(
        "Written by `cargo bench -p xks-pkcs11 --bench throughput` \
         (`crates/xks-pkcs11/benches/throughput.rs`); rerun it to refresh this page.\n\n",
    );
    let _ = writeln!(
        md,
        "What is measured: `Pkcs11KeyManager` alone (no HTTP, TLS or SigV4), called \
         from a Tokio runtime with 2 worker threads, on a SoftHSM2 token made for the run, \
         with {sessions} HSM worker threads (`sessions_per_slot`), a {PLAINTEXT_LEN}-byte plaintext \
         and {AAD_LEN} bytes of AAD. Each scenario runs {seconds} s after a 0.3 s warm-up. \
         Latency is per call, as the caller sees it (queueing included). CPU is the whole \
         process's user + system time (`/proc/self/stat`) divided by the operations: it \
         includes SoftHSM's own work, which runs in-process; the first row is SoftHSM alone \
         through cryptoki for comparison. Rows marked \"token object\" ran with \
         `session_key_copies = false` (the workers use the key's token object), rows marked \
         \"session copies\" with `true`, SoftHSM2's default (each worker uses a copy of the \
         key in its session): two key managers, on the same token and key. Sessions opened during the whole run (both key \
         managers): {sessions_opened}; logins: {logins}.\n"
    );
    let _ = writeln!(
        md,
        "Machine: {} ({} CPUs, shared with other work, so figures vary between runs), `{}`.\n",
        std::fs::read_to_string("/etc/debian_version")
            .map(|v| format!("Debian {}", v.trim()))
            .unwrap_or_else(|_| "Linux".to_owned()),
        std::thread::available_parallelism().map_or(0, usize::from),
        softhsm_version(),
    );
    md.push_str(
        "| Operation | Concurrency | Operations | ops/s | p50 µs | p90 µs | p99 µs | max µs | CPU µs/op |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {:.1} |",
            row.what,
            row.concurrency,
            row.ops,
            row.ops as f64 / row.seconds,
            micros(row.p50),
            micros(row.p90),
            micros(row.p99),
            micros(row.max),
            row.cpu_us_per_op,
        );
    }
    md.push_str(
        "\nThe issue's targets are for the whole proxy (HTTP, TLS, SigV4 and JSON \
         included): at most 100 µs of proxy CPU per Encrypt and at least 16,000 Encrypts \
         per second. The key manager's share is the difference between its CPU per \
         operation and SoftHSM's alone.\n",
    );
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/benchmarks-pkcs11.md"
    );
    std::fs::write(path, md).unwrap();
    println!("wrote {path}");
}

fn softhsm_version() -> String {
    std::process::Command::new("softhsm2-util")
        .arg("--version")
        .output()
        .ok()
        .map(|o| format!("softhsm2 {}", String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| "softhsm2".to_owned())
}
