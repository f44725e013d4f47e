//! The connection layer on real sockets (plain HTTP on loopback, so the test
//! controls every byte): HTTP/1.1 keep-alive across parked idle periods,
//! pipelining, request heads and bodies split across pauses, `Expect:
//! 100-continue`, `Connection: close` and HTTP/1.0, the idle and header timeouts,
//! HTTP/2 with prior knowledge, and shutdown with parked connections.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures: a failed unwrap is a failed test"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use xks_protocol::KeyId;
use xks_server::{Config, Proxy, Server};
use xks_sigv4::{Credential, Signer};
use xks_soft::{KeyState, SoftKeyManager, Usage};

const AKID: &str = "AKIAI2SFODNN7EXAMPLE";
const SECRET: &str = "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE";
const HEALTH_BODY: &str =
    r#"{"requestMetadata":{"kmsRequestId":"conn-test","kmsOperation":"KmsHealthCheck"}}"#;
const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// Upper bound for anything a test waits for, so a bug fails instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

/// A plain-HTTP proxy on 127.0.0.1 with the given timeouts.
async fn start(handshake_timeout: &str, idle_timeout: &str) -> Running {
    let toml = format!(
        r#"
[server]
listen = ["127.0.0.1:0"]
insecure_plain_http = true
handshake_timeout = "{handshake_timeout}"
idle_timeout = "{idle_timeout}"
shutdown_grace = "30s"
[[tenant]]
name = "t"
path_prefix = "/p"
keys = ["*"]
[[tenant.credential]]
access_key_id = "{AKID}"
secret_access_key = "{SECRET}"
[backend]
type = "soft"
path = "unused"
"#
    );
    let config = Config::from_toml(&toml).unwrap();
    let env = std::collections::HashMap::<String, String>::new();
    let key = KeyId::new("key-1").unwrap();
    let km = Arc::new(
        SoftKeyManager::ephemeral([(key, Usage::ENCRYPT_DECRYPT, KeyState::Enabled)]).unwrap(),
    );
    let proxy = Proxy::with_key_manager(&config, &env, km).await.unwrap();
    let server = Server::bind(&config.server, proxy.tls, proxy.app)
        .await
        .unwrap();
    let addr = server.api_addrs().unwrap()[0];
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A signed health check as raw HTTP/1.1 bytes: (head, body).
fn signed_health(addr: SocketAddr, extra_headers: &str) -> (Vec<u8>, Vec<u8>) {
    let mut req = Request::post(format!("http://{addr}/p/kms/xks/v1/health"))
        .header("host", addr.to_string())
        .body(Bytes::from_static(HEALTH_BODY.as_bytes()))
        .unwrap();
    let signer = Signer::new(&Credential::from_config(AKID, SECRET).unwrap(), "eu-west-1").unwrap();
    signer.sign_request(&mut req, SystemTime::now()).unwrap();
    let mut head = String::from("POST /p/kms/xks/v1/health HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    head.push_str(&format!("content-length: {}\r\n", HEALTH_BODY.len()));
    head.push_str(extra_headers);
    head.push_str("\r\n");
    (head.into_bytes(), HEALTH_BODY.as_bytes().to_vec())
}

fn whole(request: (Vec<u8>, Vec<u8>)) -> Vec<u8> {
    let (mut head, body) = request;
    head.extend_from_slice(&body);
    head
}

/// One response read from a raw connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

/// Reads exactly one HTTP/1.x response (with a Content-Length) from `conn`,
/// keeping any bytes after it in `rest`.
async fn read_answer(conn: &mut TcpStream, rest: &mut Vec<u8>) -> Answer {
    let read = async {
        loop {
            if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(rest[..end].to_vec()).unwrap();
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if rest.len() >= end + 4 + length {
                    let body = rest[end + 4..end + 4 + length].to_vec();
                    rest.drain(..end + 4 + length);
                    return Answer {
                        status,
                        headers: head.to_ascii_lowercase(),
                        body,
                    };
                }
            }
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).await.unwrap();
            assert!(n > 0, "connection closed before a whole response: {rest:?}");
            rest.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(PATIENCE, read).await.unwrap()
}

/// Waits until the server closes `conn` (EOF or reset), failing after `PATIENCE`.
async fn assert_closed_by_server(conn: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(PATIENCE, conn.read(&mut buf))
        .await
        .expect("the server did not close the connection");
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("expected the connection to close, got {:?}", &buf[..n]),
    }
}

async fn stop(mut running: Running) {
    let _ = running.stop.take().unwrap().send(());
    tokio::time::timeout(PATIENCE, running.task)
        .await
        .expect("shutdown took longer than the test's patience")
        .unwrap();
}

/// One connection serves many requests, including across idle pauses in which
/// the connection is parked without hyper's state.
#[tokio::test]
async fn keep_alive_connection_serves_requests_across_idle_pauses() {
    let running = start("5s", "1m").await;
    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    let mut rest = Vec::new();
    for i in 0..20 {
        conn.write_all(&whole(signed_health(running.addr, "")))
            .await
            .unwrap();
        let answer = read_answer(&mut conn, &mut rest).await;
        assert_eq!(answer.status, 200, "request {i}: {answer:?}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains("xksProxyFleetSize"),
            "{answer:?}"
        );
        assert!(!answer.headers.contains("connection: close"), "{answer:?}");
        if i % 5 == 4 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        conn.write_all(PING).await.unwrap();
        let ping = read_answer(&mut conn, &mut rest).await;
        assert_eq!(ping.status, 200);
        assert_eq!(ping.body, br#"{"status":"ok"}"#);
    }
    assert!(rest.is_empty(), "unexpected bytes: {rest:?}");
    stop(running).await;
}

/// Requests written back to back in one segment are all answered, in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let running = start("5s", "1m").await;
    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    let mut burst = Vec::new();
    burst.extend_from_slice(PING);
    burst.extend_from_slice(&whole(signed_health(running.addr, "")));
    burst.extend_from_slice(b"GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n");
    burst.extend_from_slice(PING);
    conn.write_all(&burst).await.unwrap();
    let mut rest = Vec::new();
    let statuses = [
        read_answer(&mut conn, &mut rest).await,
        read_answer(&mut conn, &mut rest).await,
        read_answer(&mut conn, &mut rest).await,
        read_answer(&mut conn, &mut rest).await,
    ]
    .map(|a| a.status);
    assert_eq!(statuses, [200, 200, 404, 200]);
    stop(running).await;
}

/// A request whose head and body arrive in pieces, with pauses in between (and
/// a pipelined request cut in the middle of its head) is served whole.
#[tokio::test]
async fn requests_split_across_pauses_are_served() {
    let running = start("5s", "1m").await;
    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    let bytes = whole(signed_health(running.addr, ""));
    let mut rest = Vec::new();
    for cut in [1, 10, bytes.len() / 2, bytes.len() - 1] {
        conn.write_all(&bytes[..cut]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        conn.write_all(&bytes[cut..]).await.unwrap();
        assert_eq!(read_answer(&mut conn, &mut rest).await.status, 200);
    }
    // A whole ping followed by half of the next request's head in one write.
    let mut burst = PING.to_vec();
    burst.extend_from_slice(&bytes[..20]);
    conn.write_all(&burst).await.unwrap();
    assert_eq!(read_answer(&mut conn, &mut rest).await.status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(&bytes[20..]).await.unwrap();
    assert_eq!(read_answer(&mut conn, &mut rest).await.status, 200);
    stop(running).await;
}

/// `Expect: 100-continue`: the interim answer comes before the body is sent.
#[tokio::test]
async fn expect_continue_is_answered() {
    let running = start("5s", "1m").await;
    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    let (head, body) = signed_health(running.addr, "expect: 100-continue\r\n");
    conn.write_all(&head).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(PATIENCE, conn.read_exact(&mut interim))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.write_all(&body).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(read_answer(&mut conn, &mut rest).await.status, 200);
    stop(running).await;
}

/// `Connection: close` and HTTP/1.0 without keep-alive: one answer, then the
/// server closes.
#[tokio::test]
async fn connection_close_and_http10_close_after_the_answer() {
    let running = start("5s", "1m").await;

    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    conn.write_all(&whole(signed_health(running.addr, "connection: close\r\n")))
        .await
        .unwrap();
    let mut rest = Vec::new();
    let answer = read_answer(&mut conn, &mut rest).await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers.contains("connection: close"), "{answer:?}");
    assert_closed_by_server(&mut conn).await;

    let mut conn = TcpStream::connect(running.addr).await.unwrap();
    conn.write_all(b"GET /ping HTTP/1.0\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let answer = read_answer(&mut conn, &mut rest).await;
    assert_eq!(answer.status, 200);
    assert_closed_by_server(&mut conn).await;
    stop(running).await;
}

/// An idle keep-alive connection is closed after the idle timeout; one that
/// keeps being used more often than that stays open.
#[tokio::test]
async fn idle_timeout_closes_only_idle_connections() {
    let running = start("5s", "1s").await;
    let mut busy = TcpStream::connect(running.addr).await.unwrap();
    let mut idle = TcpStream::connect(running.addr).await.unwrap();
    let mut rest = Vec::new();
    idle.write_all(PING).await.unwrap();
    assert_eq!(read_answer(&mut idle, &mut rest).await.status, 200);
    // 2.4 s of traffic every 300 ms on `busy`: longer than the idle timeout.
    for _ in 0..8 {
        busy.write_all(PING).await.unwrap();
        assert_eq!(read_answer(&mut busy, &mut rest).await.status, 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_closed_by_server(&mut idle).await;
    busy.write_all(PING).await.unwrap();
    assert_eq!(read_answer(&mut busy, &mut rest).await.status, 200);
    stop(running).await;
}

/// A connection that sends nothing, or stops in the middle of a request head,
/// is closed after the header timeout, not the (longer) idle timeout.
#[tokio::test]
async fn silent_and_slow_heads_are_cut_by_the_header_timeout() {
    let running = start("500ms", "1h").await;
    let mut silent = TcpStream::connect(running.addr).await.unwrap();
    assert_closed_by_server(&mut silent).await;

    let mut slow = TcpStream::connect(running.addr).await.unwrap();
    slow.write_all(b"GET /ping HTTP/1.1\r\nHo").await.unwrap();
    assert_closed_by_server(&mut slow).await;

    // The same after a first request: the partial head is not parked forever.
    let mut later = TcpStream::connect(running.addr).await.unwrap();
    let mut burst = PING.to_vec();
    burst.extend_from_slice(b"GET /ping HTTP/1.1\r\nHo");
    later.write_all(&burst).await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(read_answer(&mut later, &mut rest).await.status, 200);
    assert_closed_by_server(&mut later).await;
    stop(running).await;
}

/// HTTP/2 with prior knowledge on a plain connection (no ALPN) is detected from
/// its preface and serves several requests.
#[tokio::test]
async fn http2_prior_knowledge_is_detected() {
    let running = start("5s", "1m").await;
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    for _ in 0..5 {
        let req = Request::get(format!("http://{}/ping", running.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), http::Version::HTTP_2);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"status":"ok"}"#);
    }
    stop(running).await;
}

/// An idle HTTP/2 connection is closed (GOAWAY, then the end of the connection)
/// after one to two idle timeouts; one with a request every 300 ms stays open.
#[tokio::test]
async fn idle_http2_connections_are_closed_busy_ones_are_not() {
    let running = start("5s", "1s").await;
    let handshake = |addr| async move {
        let tcp = TcpStream::connect(addr).await.unwrap();
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap()
    };
    let ping = |addr: SocketAddr| {
        Request::get(format!("http://{addr}/ping"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let (mut idle, idle_conn) = handshake(running.addr).await;
    let idle_conn = tokio::spawn(idle_conn);
    let (mut busy, busy_conn) = handshake(running.addr).await;
    let busy_conn = tokio::spawn(busy_conn);
    assert_eq!(
        idle.send_request(ping(running.addr))
            .await
            .unwrap()
            .status(),
        200
    );
    // 2.4 s of traffic on `busy`: longer than two idle timeouts.
    for _ in 0..8 {
        let resp = busy.send_request(ping(running.addr)).await.unwrap();
        assert_eq!(resp.status(), 200);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::timeout(PATIENCE, idle_conn)
        .await
        .expect("the idle HTTP/2 connection was not closed")
        .unwrap()
        .unwrap();
    assert!(
        !busy_conn.is_finished(),
        "the busy HTTP/2 connection was closed"
    );
    assert_eq!(
        busy.send_request(ping(running.addr))
            .await
            .unwrap()
            .status(),
        200
    );
    stop(running).await;
}

/// Shutdown closes parked connections at once instead of waiting out the grace
/// period (30 s here) for them.
#[tokio::test]
async fn shutdown_closes_parked_connections() {
    let running = start("5s", "1h").await;
    let mut conns = Vec::new();
    let mut rest = Vec::new();
    for _ in 0..20 {
        let mut conn = TcpStream::connect(running.addr).await.unwrap();
        conn.write_all(PING).await.unwrap();
        assert_eq!(read_answer(&mut conn, &mut rest).await.status, 200);
        conns.push(conn);
    }
    stop(running).await;
    for conn in &mut conns {
        assert_closed_by_server(conn).await;
    }
}
