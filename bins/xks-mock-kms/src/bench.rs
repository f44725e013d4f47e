//! The load generator.
//!
//! - **Closed loop**: `concurrency` workers, each sending its next request when the last
//!   one is answered.
//! - **Open loop**: requests are sent on a fixed schedule (`rate` per second), whatever
//!   the latency, each on its own task, so queueing in the proxy shows as latency.
//!   Latency is measured from the scheduled send time, so a stalled generator cannot
//!   hide it (no coordinated omission). At most `max_in_flight` requests are
//!   outstanding; scheduled requests beyond that are counted as dropped.
//!
//! Both stop at the duration or the request count, whichever comes first; every request
//! is bounded by the client timeout (250 ms by default). Latencies go into an HDR
//! histogram (microseconds, 3 significant digits). CPU time is read from
//! `/proc/<pid>/stat` (user + system, in clock ticks of 10 ms) before and after the
//! load, for this process and optionally for the proxy.

use std::collections::BTreeMap;
use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use xks_client::XksClient;
use xks_protocol::{
    CdivAlgorithm, DecryptRequest, EncryptRequest, EncryptResponse, EncryptionAlgorithm,
    HealthRequest, KeyId, MetadataRequest, Plaintext,
};
use xks_sigv4::OutgoingRequest;

use crate::Error;
use crate::cli::{BenchArgs, LoadMode};
use crate::diagnosis::{Diagnosis, KmsApi, diagnose};
use crate::kms::{MockKms, request_id};

/// Default cap on the number of requests of one run.
pub const DEFAULT_MAX_REQUESTS: u64 = 10_000_000;

/// Latencies above this count as over KMS's budget.
const KMS_BUDGET: Duration = Duration::from_millis(250);

/// Linux reports process CPU times in clock ticks of 1/100 s (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `closed` or `open`.
    pub mode: &'static str,
    /// Closed loop: requests in flight.
    pub concurrency: Option<usize>,
    /// Open loop: target requests per second.
    pub target_rate: Option<f64>,
    /// The operation mix, as given.
    pub mix: String,
    /// Plaintext size of Encrypt.
    pub plaintext_bytes: usize,
    /// AAD size.
    pub aad_bytes: usize,
    /// Number of external keys used.
    pub keys: usize,
    /// HTTP version of the connection(s).
    pub http_version: Option<String>,
    /// TLS version.
    pub tls_version: Option<String>,
    /// TLS cipher suite.
    pub cipher_suite: Option<String>,
    /// Wall time of the load phase.
    pub elapsed_s: f64,
    /// Requests sent.
    pub sent: u64,
    /// Requests answered (successfully or not).
    pub completed: u64,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests by XKS error name or client error label.
    pub errors: BTreeMap<String, u64>,
    /// Open loop: scheduled requests not sent because `max_in_flight` were outstanding.
    pub dropped: u64,
    /// Completed requests per second.
    pub throughput_rps: f64,
    /// Latency percentiles, milliseconds.
    pub latency_ms: Latency,
    /// Requests (ok or not) that took longer than 250 ms.
    pub over_250ms: u64,
    /// Open loop: how late the generator started requests after their scheduled time
    /// (included in the latency), milliseconds.
    pub schedule_lag_ms: Option<Lag>,
    /// Connections opened during the run.
    pub connections_opened: u64,
    /// Cost of one SigV4 signature (xks-sigv4 Signer on an Encrypt request), µs.
    pub signer_us_per_request: f64,
    /// This process's CPU time per completed request, µs.
    pub client_cpu_us_per_request: Option<f64>,
    /// The proxy's pid, if given.
    pub proxy_pid: Option<u32>,
    /// The proxy's CPU time per completed request, µs.
    pub proxy_cpu_us_per_request: Option<f64>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Maximum.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// The generator's own lateness, milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    Metadata,
    Health,
}

struct Sample {
    latency: Duration,
    /// Open loop: from the scheduled send time to the request task's start.
    lag: Option<Duration>,
    outcome: Result<(), &'static str>,
}

/// What every request needs, shared by all tasks.
struct Work {
    xks: XksClient,
    ops: Vec<Op>,
    keys: Vec<(KeyId, String)>,
    plaintext: Vec<u8>,
    aad: Option<Vec<u8>>,
    cdiv: bool,
    sealed: Vec<EncryptResponse>,
    principal: String,
}

struct Counters {
    sent: AtomicU64,
    in_flight: AtomicUsize,
    dropped: AtomicU64,
}

// === run ===

/// Runs the load described by `args` against the key store of `kms`.
///
/// # Errors
///
/// [`Error::Usage`] for bad options; [`Error::Kms`] if preparing (encrypting the
/// ciphertexts decrypts will use) fails.
pub async fn run(kms: &MockKms, args: &BenchArgs) -> Result<BenchReport, Error> {
    let ops = parse_mix(&args.mix)?;
    if args.keys.is_empty() {
        return Err(Error::usage("bench needs at least one --xks-key-id"));
    }
    if args.mode == LoadMode::Closed && args.concurrency == 0 {
        return Err(Error::usage("--concurrency must be at least 1"));
    }
    if args.mode == LoadMode::Open && !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(Error::usage("--rate must be a positive number"));
    }
    let mut keys = Vec::with_capacity(args.keys.len());
    for id in &args.keys {
        let key = KeyId::new(id).map_err(|e| Error::usage(format!("--xks-key-id {id:?}: {e}")))?;
        keys.push((key, kms.key_arn(id)));
    }
    let plaintext = pattern(args.plaintext_size, 0x5a);
    let aad = (args.aad_size > 0).then(|| pattern(args.aad_size, 0xa5));
    let signer_us = measure_signer(kms, &keys[0].0, &plaintext, aad.as_deref());

    let mut work = Work {
        xks: kms.xks().clone(),
        ops,
        keys,
        plaintext,
        aad,
        cdiv: !args.no_cdiv,
        sealed: Vec::new(),
        principal: kms.settings().principal_arn.clone(),
    };
    // One ciphertext per key for Decrypt, which also opens the first connection.
    let mut first = None;
    for i in 0..work.keys.len() {
        let answer = work
            .xks
            .encrypt(&work.keys[i].0, &work.encrypt_request(i))
            .await
            .map_err(|e| Error::Kms(Box::new(prepare_failure(&e))))?;
        if first.is_none() {
            first = Some(answer.exchange.clone());
        }
        work.sealed.push(answer.body);
    }
    let work = Arc::new(work);
    let connections_before = work.xks.client().connections_opened();

    let max_requests = args.requests.unwrap_or(DEFAULT_MAX_REQUESTS);
    let counters = Arc::new(Counters {
        sent: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        dropped: AtomicU64::new(0),
    });
    let (tx, rx) = mpsc::unbounded_channel::<Sample>();
    let progress = !args.quiet;
    let histograms = (new_histogram()?, new_histogram()?, new_histogram()?);
    let collector = tokio::spawn(collect(rx, Arc::clone(&counters), progress, histograms));

    let self_cpu = cpu_ticks("self");
    let proxy_cpu = args.proxy_pid.and_then(|pid| cpu_ticks(&pid.to_string()));
    let start = Instant::now();
    let end = start + args.duration;
    match args.mode {
        LoadMode::Closed => {
            closed_loop(&work, &counters, &tx, args.concurrency, max_requests, end).await;
        }
        LoadMode::Open => {
            let cap = args.max_in_flight.max(1);
            open_loop(
                &work,
                &counters,
                &tx,
                args.rate,
                cap,
                max_requests,
                start,
                end,
            )
            .await;
        }
    }
    let elapsed = start.elapsed();
    let self_cpu_after = cpu_ticks("self");
    let proxy_cpu_after = args.proxy_pid.and_then(|pid| cpu_ticks(&pid.to_string()));
    drop(tx);
    let stats = collector
        .await
        .map_err(|e| Error::usage(format!("the result collector failed: {e}")))?;

    let completed = stats.completed;
    let per_request = |before: Option<u64>, after: Option<u64>| {
        let (before, after) = (before?, after?);
        (completed > 0).then(|| {
            after.saturating_sub(before) as f64 / TICKS_PER_SECOND * 1e6 / completed as f64
        })
    };
    let tls = first.as_ref().and_then(|e| e.tls().cloned());
    Ok(BenchReport {
        mode: match args.mode {
            LoadMode::Closed => "closed",
            LoadMode::Open => "open",
        },
        concurrency: (args.mode == LoadMode::Closed).then_some(args.concurrency),
        target_rate: (args.mode == LoadMode::Open).then_some(args.rate),
        mix: args.mix.clone(),
        plaintext_bytes: args.plaintext_size,
        aad_bytes: args.aad_size,
        keys: work.keys.len(),
        http_version: first.as_ref().map(|e| e.http_version().to_owned()),
        tls_version: tls.as_ref().map(|t| t.protocol_version().to_owned()),
        cipher_suite: tls.as_ref().map(|t| t.cipher_suite().to_owned()),
        elapsed_s: elapsed.as_secs_f64(),
        sent: counters.sent.load(Ordering::Relaxed),
        completed,
        ok: stats.ok,
        errors: stats.errors,
        dropped: counters.dropped.load(Ordering::Relaxed),
        throughput_rps: completed as f64 / elapsed.as_secs_f64().max(1e-9),
        latency_ms: latency(&stats.histogram),
        over_250ms: stats.over_budget,
        schedule_lag_ms: (args.mode == LoadMode::Open && !stats.lag.is_empty()).then(|| Lag {
            p50: ms(stats.lag.value_at_quantile(0.5)),
            p99: ms(stats.lag.value_at_quantile(0.99)),
            max: ms(stats.lag.max()),
        }),
        connections_opened: work
            .xks
            .client()
            .connections_opened()
            .saturating_sub(connections_before),
        signer_us_per_request: signer_us,
        client_cpu_us_per_request: per_request(self_cpu, self_cpu_after),
        proxy_pid: args.proxy_pid,
        proxy_cpu_us_per_request: per_request(proxy_cpu, proxy_cpu_after),
    })
}

async fn closed_loop(
    work: &Arc<Work>,
    counters: &Arc<Counters>,
    tx: &mpsc::UnboundedSender<Sample>,
    concurrency: usize,
    max_requests: u64,
    end: Instant,
) {
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (work, counters, tx) = (Arc::clone(work), Arc::clone(counters), tx.clone());
        workers.spawn(async move {
            loop {
                if Instant::now() >= end {
                    return;
                }
                let i = counters.sent.fetch_add(1, Ordering::Relaxed);
                if i >= max_requests {
                    counters.sent.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
                counters.in_flight.fetch_add(1, Ordering::Relaxed);
                let begun = Instant::now();
                let outcome = work.one(i).await;
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(Sample {
                    latency: begun.elapsed(),
                    lag: None,
                    outcome,
                });
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

#[expect(
    clippy::too_many_arguments,
    reason = "the loop's whole state, passed once"
)]
async fn open_loop(
    work: &Arc<Work>,
    counters: &Arc<Counters>,
    tx: &mpsc::UnboundedSender<Sample>,
    rate: f64,
    cap: usize,
    max_requests: u64,
    start: Instant,
    end: Instant,
) {
    // The schedule runs on its own thread with the OS's sleep (tens of microseconds of
    // slack) rather than Tokio's millisecond timer, which would delay most requests of
    // a 1,800/s schedule by up to a millisecond and count that as latency.
    let period = Duration::from_secs_f64(1.0 / rate);
    let (start, end) = (start.into_std(), end.into_std());
    let handle = tokio::runtime::Handle::current();
    let timeout = work.xks.client().timeout();
    let (work, shared, tx) = (Arc::clone(work), Arc::clone(counters), tx.clone());
    let scheduler = tokio::task::spawn_blocking(move || {
        let mut n: u64 = 0;
        loop {
            let scheduled = start + period.mul_f64(n as f64);
            if n >= max_requests || scheduled >= end {
                return;
            }
            let now = std::time::Instant::now();
            if scheduled > now {
                std::thread::sleep(scheduled - now);
            }
            n += 1;
            if shared.in_flight.load(Ordering::Relaxed) >= cap {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let i = shared.sent.fetch_add(1, Ordering::Relaxed);
            shared.in_flight.fetch_add(1, Ordering::Relaxed);
            let (work, counters, tx) = (Arc::clone(&work), Arc::clone(&shared), tx.clone());
            handle.spawn(async move {
                let lag = scheduled.elapsed();
                let outcome = work.one(i).await;
                counters.in_flight.fetch_sub(1, Ordering::Relaxed);
                let _ = tx.send(Sample {
                    latency: scheduled.elapsed(),
                    lag: Some(lag),
                    outcome,
                });
            });
        }
    });
    let _ = scheduler.await;
    // Every request is bounded by the client's timeout; wait for the last ones.
    let drain = Instant::now() + timeout + Duration::from_secs(1);
    while counters.in_flight.load(Ordering::Relaxed) > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// === impl Work ===

impl Work {
    async fn one(&self, i: u64) -> Result<(), &'static str> {
        let slot = usize::try_from(i).unwrap_or(0);
        let op = self.ops[slot % self.ops.len()];
        let k = slot % self.keys.len();
        let key = &self.keys[k].0;
        let result = match op {
            Op::Encrypt => self
                .xks
                .encrypt(key, &self.encrypt_request(k))
                .await
                .map(drop),
            Op::Decrypt => {
                let sealed = &self.sealed[k];
                let request = DecryptRequest {
                    request_metadata: self.metadata("Decrypt", Some(k)),
                    ciphertext: sealed.ciphertext.clone(),
                    ciphertext_metadata: sealed.ciphertext_metadata.clone(),
                    encryption_algorithm: EncryptionAlgorithm::AesGcm,
                    additional_authenticated_data: self.aad.clone(),
                    initialization_vector: sealed.initialization_vector.clone(),
                    authentication_tag: sealed.authentication_tag,
                };
                self.xks.decrypt(key, &request).await.map(drop)
            }
            Op::Metadata => {
                let request = MetadataRequest {
                    request_metadata: self.metadata("CreateKey", None),
                };
                self.xks.get_key_metadata(key, &request).await.map(drop)
            }
            Op::Health => {
                let mut request_metadata = self.metadata("KmsHealthCheck", None);
                request_metadata.aws_principal_arn = None;
                let request = HealthRequest { request_metadata };
                self.xks.get_health_status(&request).await.map(drop)
            }
        };
        result.map_err(|e| e.label())
    }

    fn encrypt_request(&self, k: usize) -> EncryptRequest {
        EncryptRequest {
            request_metadata: self.metadata("Encrypt", Some(k)),
            plaintext: Plaintext::new(self.plaintext.clone()),
            encryption_algorithm: EncryptionAlgorithm::AesGcm,
            additional_authenticated_data: self.aad.clone(),
            ciphertext_data_integrity_value_algorithm: self.cdiv.then_some(CdivAlgorithm::Sha256),
        }
    }

    fn metadata(&self, operation: &str, key: Option<usize>) -> xks_protocol::RequestMetadata {
        xks_protocol::RequestMetadata {
            aws_principal_arn: Some(self.principal.clone()),
            kms_key_arn: key.map(|k| self.keys[k].1.clone()),
            kms_operation: operation.to_owned(),
            kms_request_id: request_id(),
            ..xks_protocol::RequestMetadata::default()
        }
    }
}

fn prepare_failure(error: &xks_client::Error) -> Diagnosis {
    let mut diagnosis = diagnose(KmsApi::Encrypt, error);
    diagnosis.message = format!(
        "preparing the benchmark (one Encrypt per key) failed: {}",
        diagnosis.message
    );
    diagnosis
}

/// Times xks-sigv4's `Signer` on an Encrypt request like the benchmark's.
fn measure_signer(kms: &MockKms, key: &KeyId, plaintext: &[u8], aad: Option<&[u8]>) -> f64 {
    const ROUNDS: u32 = 2000;
    let xks = kms.xks();
    let request = EncryptRequest {
        request_metadata: xks_protocol::RequestMetadata {
            aws_principal_arn: Some(kms.settings().principal_arn.clone()),
            kms_key_arn: Some(kms.key_arn(key.as_str())),
            kms_operation: "Encrypt".into(),
            kms_request_id: request_id(),
            ..xks_protocol::RequestMetadata::default()
        },
        plaintext: Plaintext::new(plaintext.to_vec()),
        encryption_algorithm: EncryptionAlgorithm::AesGcm,
        additional_authenticated_data: aad.map(<[u8]>::to_vec),
        ciphertext_data_integrity_value_algorithm: Some(CdivAlgorithm::Sha256),
    };
    let body = serde_json::to_vec(&request).unwrap_or_default();
    let url = xks
        .client()
        .endpoint()
        .url(&xks.path_of(&xks_protocol::Operation::Encrypt(key.clone())));
    let outgoing = OutgoingRequest::new("POST", &url, &body).with_content_type("application/json");
    let started = std::time::Instant::now();
    let now = SystemTime::now();
    for _ in 0..ROUNDS {
        let _ = std::hint::black_box(xks.signer().sign(&outgoing, now));
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(ROUNDS)
}

struct Stats {
    histogram: Histogram<u64>,
    lag: Histogram<u64>,
    completed: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    over_budget: u64,
}

/// Records samples; prints a progress line once per second.
async fn collect(
    mut rx: mpsc::UnboundedReceiver<Sample>,
    counters: Arc<Counters>,
    progress: bool,
    (histogram, mut window, lag): (Histogram<u64>, Histogram<u64>, Histogram<u64>),
) -> Stats {
    let mut stats = Stats {
        histogram,
        lag,
        completed: 0,
        ok: 0,
        errors: BTreeMap::new(),
        over_budget: 0,
    };
    let mut window_count = 0u64;
    let started = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let tty = std::io::stderr().is_terminal();
    loop {
        tokio::select! {
            sample = rx.recv() => {
                let Some(sample) = sample else { break };
                let micros = u64::try_from(sample.latency.as_micros()).unwrap_or(u64::MAX).max(1);
                stats.histogram.saturating_record(micros);
                window.saturating_record(micros);
                if let Some(lag) = sample.lag {
                    let lag = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX).max(1);
                    stats.lag.saturating_record(lag);
                }
                window_count += 1;
                stats.completed += 1;
                if sample.latency > KMS_BUDGET {
                    stats.over_budget += 1;
                }
                match sample.outcome {
                    Ok(()) => stats.ok += 1,
                    Err(label) => *stats.errors.entry(label.to_owned()).or_default() += 1,
                }
            }
            _ = ticker.tick(), if progress => {
                let (p50, p99) = (ms(window.value_at_quantile(0.5)), ms(window.value_at_quantile(0.99)));
                let errors: u64 = stats.errors.values().sum();
                let line = format!(
                    "[{:>4.0}s] sent {} done {} errors {} in-flight {} dropped {} | last 1s: {} req/s, p50 {:.2} ms, p99 {:.2} ms",
                    started.elapsed().as_secs_f64(),
                    counters.sent.load(Ordering::Relaxed),
                    stats.completed,
                    errors,
                    counters.in_flight.load(Ordering::Relaxed),
                    counters.dropped.load(Ordering::Relaxed),
                    window_count,
                    p50,
                    p99,
                );
                let mut err = std::io::stderr().lock();
                let _ = if tty { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
                window.reset();
                window_count = 0;
            }
        }
    }
    if progress && tty {
        let _ = writeln!(std::io::stderr());
    }
    stats
}

/// Microseconds from 1 µs to 60 s, 3 significant digits.
fn new_histogram() -> Result<Histogram<u64>, Error> {
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .map_err(|e| Error::usage(format!("cannot create the latency histogram: {e}")))
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1e3
}

fn latency(h: &Histogram<u64>) -> Latency {
    if h.is_empty() {
        return Latency {
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p99_9: 0.0,
            max: 0.0,
            mean: 0.0,
        };
    }
    Latency {
        p50: ms(h.value_at_quantile(0.50)),
        p90: ms(h.value_at_quantile(0.90)),
        p99: ms(h.value_at_quantile(0.99)),
        p99_9: ms(h.value_at_quantile(0.999)),
        max: ms(h.max()),
        mean: h.mean() / 1e3,
    }
}

/// Parses `encrypt=8,decrypt=2` into a repeating sequence that interleaves the
/// operations in proportion (smooth weighted round robin).
fn parse_mix(text: &str) -> Result<Vec<Op>, Error> {
    let mut weights: Vec<(Op, i64)> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let op = match name.trim() {
            "encrypt" => Op::Encrypt,
            "decrypt" => Op::Decrypt,
            "metadata" => Op::Metadata,
            "health" => Op::Health,
            other => {
                return Err(Error::usage(format!(
                    "--mix: unknown operation {other:?} (encrypt, decrypt, metadata, health)"
                )));
            }
        };
        let weight: i64 = weight
            .trim()
            .parse()
            .ok()
            .filter(|w| (0..=1000).contains(w))
            .ok_or_else(|| Error::usage(format!("--mix: weight of {name} must be 0 to 1000")))?;
        if weight > 0 {
            weights.push((op, weight));
        }
    }
    let total: i64 = weights.iter().map(|(_, w)| w).sum();
    if total == 0 {
        return Err(Error::usage(
            "--mix: at least one operation needs a weight above 0",
        ));
    }
    let mut current = vec![0i64; weights.len()];
    let mut sequence = Vec::new();
    for _ in 0..total {
        for (c, (_, w)) in current.iter_mut().zip(&weights) {
            *c += w;
        }
        let mut best = 0;
        for i in 1..current.len() {
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        sequence.push(weights[best].0);
    }
    Ok(sequence)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap_or(0)))
        .collect()
}

/// User plus system CPU time of process `pid` (`self` for this one), in clock ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat)
}

/// Fields 14 (utime) and 15 (stime) of `/proc/<pid>/stat`, counted after the command
/// name, which is in parentheses and may contain spaces.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_interleaved_in_proportion() {
        let seq = parse_mix("encrypt=2,decrypt=1").unwrap();
        assert_eq!(seq, [Op::Encrypt, Op::Decrypt, Op::Encrypt]);
        let seq = parse_mix("encrypt=8,decrypt=1,metadata=1,health=0").unwrap();
        assert_eq!(seq.len(), 10);
        assert_eq!(seq.iter().filter(|o| **o == Op::Encrypt).count(), 8);
        assert!(parse_mix("sign=1").is_err());
        assert!(parse_mix("encrypt=0").is_err());
    }

    #[test]
    fn proc_stat_parsing() {
        let stat = "1234 (xks proxy) S 1 2 3 4 5 6 7 8 9 10 250 130 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(380));
        assert!(cpu_ticks("self").is_some());
    }
}
