//! The in-process harness of the service tests.
//!
//! - [`Harness`]: a proxy built by `Proxy::with_key_manager` from a TOML
//!   configuration with two tenants, over a [`ScriptedKm`] (an ephemeral software
//!   key store whose calls a test can delay or fail, and whose health it can set).
//! - [`Call`]: a request builder that signs with SigV4 as KMS does
//!   (`host;x-amz-date`) or as curl does (`content-type;host;x-amz-date`), at the
//!   real time or a shifted one, and can tamper with the request after signing.
//! - [`Reply`]: the answer, already checked for the spec's response format: JSON
//!   content type and body on every response (row 4), the error body rules on
//!   every error (rows 121-124), `Allow` on every 405.
//! - [`StreamBody`] and [`LogCapture`]: a request body that records how far the
//!   server read it, and a JSON log subscriber writing into memory.
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use hmac::{Hmac, KeyInit as _, Mac as _};
use http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, HOST as HOST_HEADER};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use xks_keymanager::{ErrorKind, KeyManager, KeyManagerError, NodeHealth, Sealed, SealedRef};
use xks_protocol::{
    ErrorName, HealthStatus, KeyId, Limits, MetadataResponse, OperationKind, Plaintext, Route,
};
use xks_server::config::HealthConfig;
use xks_server::{App, Config, HealthMonitor, KeyAccess, Proxy, Tenant};
use xks_sigv4::{Credential, CredentialStore, OutgoingRequest, SignedHeaderSet, Signer, Verifier};
use xks_soft::{KeyState, SoftKeyManager, Usage};

// ---------------------------------------------------------------------------
// Fixtures: credentials, tenants, keys
// ---------------------------------------------------------------------------

/// The host every request is signed for and sent to.
pub(crate) const HOST: &str = "xks.example.com";
/// `awsPrincipalArn` of every key request.
pub(crate) const PRINCIPAL: &str = "arn:aws:iam::111122223333:user/alice";
/// `kmsKeyArn` of every Encrypt and Decrypt.
pub(crate) const KMS_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A SigV4 credential: access key id and secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cred {
    pub(crate) access_key_id: &'static str,
    pub(crate) secret: &'static str,
}

/// Tenant A's first credential.
pub(crate) const A1: Cred = Cred {
    access_key_id: "56LDOJ4R7BTDGR5EXB6LCZMX",
    secret: "PVuADBa119WuGhzcbM47s8X+TXeoO0jlceCH3fpq/XA=",
};
/// Tenant A's second credential (rotation), its secret read from the environment.
pub(crate) const A2: Cred = Cred {
    access_key_id: "BFUKGZ3YJCWHCMJELVTBAFDX",
    secret: "AB4DJIX9AEl9HaolJ/qfv+kypL5fLu/IAheUFPYCFXo=",
};
/// Tenant B's credential.
pub(crate) const B1: Cred = Cred {
    access_key_id: "WRC4HRKFDYWINQAXRVUIBC5I",
    secret: "nTuGcQFqR7/yVmMx4Nmfz64z9xjPZj+KKCYeRxdmjGI=",
};
/// A well-formed credential no tenant has.
pub(crate) const UNKNOWN: Cred = Cred {
    access_key_id: "RTMVQSJK27DGAMCPRFOLRW4W",
    secret: "/UMjeP8VAMD+EGqHFpO+uKuRiCz8c5d4tCeZkyzBsmI=",
};
/// Every configured secret, for the log leak check.
pub(crate) const CONFIGURED_SECRETS: [&str; 3] = [A1.secret, A2.secret, B1.secret];

/// A tenant as the tests see it: where it lives and how its requests are signed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TenantSpec {
    pub(crate) name: &'static str,
    pub(crate) prefix: &'static str,
    pub(crate) cred: Cred,
    pub(crate) region: &'static str,
}

/// `/tenant-a`: two live credentials, any region, every key.
pub(crate) const TENANT_A: TenantSpec = TenantSpec {
    name: "tenant-a",
    prefix: "/tenant-a",
    cred: A1,
    region: "us-east-1",
};
/// The empty prefix: one credential, region pinned to eu-west-1, only [`KEY_2`].
pub(crate) const TENANT_B: TenantSpec = TenantSpec {
    name: "tenant-b",
    prefix: "",
    cred: B1,
    region: "eu-west-1",
};

/// Enabled, encrypt and decrypt.
pub(crate) const KEY_1: &str = "key-1";
/// Enabled, encrypt and decrypt; the only key tenant B may use.
pub(crate) const KEY_2: &str = "key-2";
/// Enabled, encrypt only.
pub(crate) const ENCRYPT_ONLY: &str = "encrypt-only";
/// Enabled, decrypt only.
pub(crate) const DECRYPT_ONLY: &str = "decrypt-only";
/// Enabled, neither encrypt nor decrypt.
pub(crate) const NO_USAGE: &str = "no-usage";
/// Disabled, otherwise encrypt and decrypt.
pub(crate) const DISABLED: &str = "disabled";
/// Well-formed, in no key store.
pub(crate) const ABSENT: &str = "no-such-key";

/// A 128-character key id with every allowed character class; it exists.
pub(crate) fn long_key_id() -> String {
    let mut id = String::from("Long.Key_Id-0123456789.");
    while id.len() < 128 {
        id.push('z');
    }
    id
}

/// `len` bytes of a recognisable pattern.
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add(u8::try_from(i % 251).unwrap_or(0)))
        .collect()
}

/// Standard Base64.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// A `NodeHealth` entry.
pub(crate) fn node(id: &str, status: HealthStatus) -> NodeHealth {
    NodeHealth {
        id: id.to_owned(),
        model: format!("test HSM {id}"),
        status,
    }
}

// ---------------------------------------------------------------------------
// The scripted key manager
// ---------------------------------------------------------------------------

/// What every injected backend error says; it must reach the log, never the client.
pub(crate) const FAULT_DETAIL: &str = "injected fault 7c1e: backend-internal detail";

/// An ephemeral [`SoftKeyManager`] with keys in every role, whose calls a test can
/// delay or fail, and whose deep health report it can replace.
#[derive(Debug)]
pub(crate) struct ScriptedKm {
    inner: Arc<dyn KeyManager>,
    script: Mutex<Script>,
}

#[derive(Debug, Default, Clone)]
struct Script {
    delay: Option<Duration>,
    fault: Option<ErrorKind>,
    health: Option<Vec<NodeHealth>>,
    health_delay: Option<Duration>,
}

impl ScriptedKm {
    pub(crate) fn new() -> Self {
        let keys = [
            (KEY_1.to_owned(), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
            (KEY_2.to_owned(), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
            (
                ENCRYPT_ONLY.to_owned(),
                Usage::ENCRYPT_ONLY,
                KeyState::Enabled,
            ),
            (
                DECRYPT_ONLY.to_owned(),
                Usage::DECRYPT_ONLY,
                KeyState::Enabled,
            ),
            (NO_USAGE.to_owned(), Usage::NONE, KeyState::Enabled),
            (
                DISABLED.to_owned(),
                Usage::ENCRYPT_DECRYPT,
                KeyState::Disabled,
            ),
            (long_key_id(), Usage::ENCRYPT_DECRYPT, KeyState::Enabled),
        ]
        .map(|(id, usage, state)| (KeyId::new(&id).unwrap(), usage, state));
        Self {
            inner: Arc::new(SoftKeyManager::ephemeral(keys).unwrap()),
            script: Mutex::default(),
        }
    }

    /// Scripts another key manager, which must hold the same keys in the same
    /// roles (KEY_1, KEY_2, ENCRYPT_ONLY, DECRYPT_ONLY, NO_USAGE, DISABLED).
    pub(crate) fn wrapping(inner: Arc<dyn KeyManager>) -> Self {
        Self {
            inner,
            script: Mutex::default(),
        }
    }

    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every metadata, encrypt and decrypt call first sleeps for `delay` (tokio time).
    pub(crate) fn delay_calls(&self, delay: Duration) {
        self.script().delay = Some(delay);
    }

    /// Every metadata, encrypt and decrypt call fails with `kind`.
    pub(crate) fn fail_calls(&self, kind: ErrorKind) {
        self.script().fault = Some(kind);
    }

    /// The deep health check reports `nodes`.
    pub(crate) fn report_health(&self, nodes: Vec<NodeHealth>) {
        self.script().health = Some(nodes);
    }

    /// The deep health check first sleeps for `delay` (tokio time).
    pub(crate) fn delay_health(&self, delay: Duration) {
        self.script().health_delay = Some(delay);
    }

    /// Back to plain forwarding.
    pub(crate) fn reset(&self) {
        *self.script() = Script::default();
    }

    async fn gate(&self) -> Result<(), KeyManagerError> {
        let Script { delay, fault, .. } = self.script().clone();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        match fault {
            Some(kind) => Err(KeyManagerError::new(kind, FAULT_DETAIL)),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl KeyManager for ScriptedKm {
    fn backend_name(&self) -> &'static str {
        "scripted"
    }

    fn vendor(&self) -> &str {
        "xks-toolkit service tests"
    }

    async fn key_metadata(&self, key: &KeyId) -> Result<MetadataResponse, KeyManagerError> {
        self.gate().await?;
        self.inner.key_metadata(key).await
    }

    async fn encrypt(
        &self,
        key: &KeyId,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<Sealed, KeyManagerError> {
        self.gate().await?;
        self.inner.encrypt(key, plaintext, aad).await
    }

    async fn decrypt(
        &self,
        key: &KeyId,
        sealed: SealedRef<'_>,
        aad: &[u8],
    ) -> Result<Plaintext, KeyManagerError> {
        self.gate().await?;
        self.inner.decrypt(key, sealed, aad).await
    }

    async fn health(&self) -> Vec<NodeHealth> {
        let Script {
            health,
            health_delay,
            ..
        } = self.script().clone();
        if let Some(delay) = health_delay {
            tokio::time::sleep(delay).await;
        }
        match health {
            Some(nodes) => nodes,
            None => self.inner.health().await,
        }
    }
}

// ---------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------

/// A proxy, its scripted key manager, and request builders.
#[derive(Debug)]
pub(crate) struct Harness {
    pub(crate) app: Arc<App>,
    pub(crate) km: Arc<ScriptedKm>,
    max_body: usize,
    next_id: AtomicU64,
}

/// Sections added to the harness configuration.
#[derive(Debug, Default)]
pub(crate) struct HarnessBuilder {
    backend: Option<Arc<dyn KeyManager>>,
    limits: Vec<String>,
    health: Vec<String>,
    tenant_a_creds: Option<Vec<Cred>>,
}

impl HarnessBuilder {
    /// Serves from this key manager (holding the harness's keys) instead of the
    /// ephemeral software one.
    pub(crate) fn backend(mut self, km: Arc<dyn KeyManager>) -> Self {
        self.backend = Some(km);
        self
    }

    /// A line for the `[limits]` section, e.g. `max_aad_bytes = 65535`.
    pub(crate) fn limits(mut self, line: &str) -> Self {
        self.limits.push(line.to_owned());
        self
    }

    /// A line for the `[health]` section, e.g. `interval = "10s"`.
    pub(crate) fn health(mut self, line: &str) -> Self {
        self.health.push(line.to_owned());
        self
    }

    /// Tenant A's credentials, all inline, instead of A1 inline and A2 from the
    /// environment.
    pub(crate) fn tenant_a_credentials(mut self, creds: &[Cred]) -> Self {
        self.tenant_a_creds = Some(creds.to_vec());
        self
    }

    fn tenant_a_credential_sections(&self) -> String {
        let Some(creds) = &self.tenant_a_creds else {
            return format!(
                "[[tenant.credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n\
                 [[tenant.credential]]\naccess_key_id = \"{}\"\n\
                 secret_access_key_env = \"TENANT_A_SECOND_SECRET\"",
                A1.access_key_id, A1.secret, A2.access_key_id
            );
        };
        creds
            .iter()
            .map(|c| {
                format!(
                    "[[tenant.credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"",
                    c.access_key_id, c.secret
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The configuration file.
    pub(crate) fn toml(&self) -> String {
        let (a, b) = (TENANT_A, TENANT_B);
        format!(
            r#"
[server]
listen = ["127.0.0.1:0"]
insecure_plain_http = true

[limits]
{limits}

[health]
{health}

[[tenant]]
name = "{a_name}"
path_prefix = "{a_prefix}"
keys = ["*"]
{a_credentials}

[[tenant]]
name = "{b_name}"
path_prefix = "{b_prefix}"
regions = ["{b_region}"]
keys = ["{KEY_2}"]
[[tenant.credential]]
access_key_id = "{b1}"
secret_access_key = "{b1_secret}"

[backend]
type = "soft"
path = "not-opened-by-in-process-tests.xks"
"#,
            limits = self.limits.join("\n"),
            health = self.health.join("\n"),
            a_name = a.name,
            a_prefix = a.prefix,
            a_credentials = self.tenant_a_credential_sections(),
            b_name = b.name,
            b_prefix = b.prefix,
            b_region = b.region,
            b1 = B1.access_key_id,
            b1_secret = B1.secret,
        )
    }

    /// The environment the configuration reads A2's secret from.
    pub(crate) fn env() -> HashMap<String, String> {
        HashMap::from([("TENANT_A_SECOND_SECRET".to_owned(), A2.secret.to_owned())])
    }

    /// Builds the proxy, which runs one deep health check.
    pub(crate) async fn build(self) -> Harness {
        let config = Config::from_toml(&self.toml()).unwrap();
        let km = Arc::new(match self.backend {
            Some(inner) => ScriptedKm::wrapping(inner),
            None => ScriptedKm::new(),
        });
        let proxy = Proxy::with_key_manager(&config, &Self::env(), Arc::clone(&km) as _)
            .await
            .unwrap();
        assert!(proxy.tls.is_none(), "in-process tests run without TLS");
        Harness {
            app: proxy.app,
            km,
            max_body: config.protocol_limits().unwrap().max_body_bytes(),
            next_id: AtomicU64::new(1),
        }
    }
}

impl Harness {
    /// The standard proxy.
    pub(crate) async fn new() -> Self {
        Self::builder().build().await
    }

    /// A proxy with configuration changes.
    pub(crate) fn builder() -> HarnessBuilder {
        HarnessBuilder::default()
    }

    /// Tenant A alone, assembled with `App::new` around a health monitor that has
    /// not run yet (`Proxy` always runs one check before returning).
    pub(crate) fn without_health_check() -> Self {
        let km = Arc::new(ScriptedKm::new());
        let verifier = Verifier::new(CredentialStore::new([credential(A1)]).unwrap());
        let tenant = Tenant::new(TENANT_A.name.to_owned(), verifier, KeyAccess::All);
        let limits = Limits::default();
        let app = App::new(
            [(TENANT_A.prefix.to_owned(), tenant)],
            Arc::clone(&km) as _,
            limits,
            Duration::from_millis(200),
            HealthMonitor::new(Arc::clone(&km) as _, HealthConfig::default()),
            "/ping".to_owned(),
        );
        Self {
            app: Arc::new(app),
            km,
            max_body: limits.max_body_bytes(),
            next_id: AtomicU64::new(1),
        }
    }

    /// The request body limit.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    fn request_id(&self) -> String {
        format!("req-{:04}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    fn call(&self, method: Method, rest: String, body: Value) -> Call<'_> {
        Call {
            h: self,
            method,
            prefix: TENANT_A.prefix.to_owned(),
            rest,
            path: None,
            body: CallBody::Json(body),
            content_type: Some("application/json".to_owned()),
            signing: Some(Signing::for_tenant(&TENANT_A)),
            h2: false,
            tampers: Vec::new(),
        }
    }

    /// An unsigned request with an empty body to a full path, e.g. `GET /ping`.
    pub(crate) fn request(&self, method: Method, path: &str) -> Call<'_> {
        let mut call = self.call(method, String::new(), Value::Null).path(path);
        call.body = CallBody::Raw(Vec::new());
        call.content_type = None;
        call.unsigned()
    }

    /// GetHealthStatus on tenant A, kmsOperation `KmsHealthCheck`.
    pub(crate) fn health(&self) -> Call<'_> {
        let body = json!({"requestMetadata": {
            "kmsRequestId": self.request_id(),
            "kmsOperation": "KmsHealthCheck",
        }});
        self.call(Method::POST, "/kms/xks/v1/health".to_owned(), body)
    }

    /// GetKeyMetadata of `key` on tenant A, kmsOperation `CreateKey`.
    pub(crate) fn metadata(&self, key: &str) -> Call<'_> {
        let body = json!({"requestMetadata": {
            "awsPrincipalArn": PRINCIPAL,
            "kmsOperation": "CreateKey",
            "kmsRequestId": self.request_id(),
        }});
        self.call(
            Method::POST,
            format!("/kms/xks/v1/keys/{key}/metadata"),
            body,
        )
    }

    fn key_metadata(&self, operation: &str) -> Value {
        json!({
            "awsPrincipalArn": PRINCIPAL,
            "kmsKeyArn": KMS_KEY_ARN,
            "kmsOperation": operation,
            "kmsRequestId": self.request_id(),
        })
    }

    /// Encrypt of `Hello World!` under `key` on tenant A, no AAD, no CDIV.
    pub(crate) fn encrypt(&self, key: &str) -> Call<'_> {
        let body = json!({
            "requestMetadata": self.key_metadata("Encrypt"),
            "plaintext": b64(b"Hello World!"),
            "encryptionAlgorithm": "AES_GCM",
        });
        self.call(
            Method::POST,
            format!("/kms/xks/v1/keys/{key}/encrypt"),
            body,
        )
    }

    /// Decrypt of `ct` under `key` on tenant A, with the AAD `ct` was made with.
    pub(crate) fn decrypt(&self, key: &str, ct: &Ciphertext) -> Call<'_> {
        let mut body = json!({
            "requestMetadata": self.key_metadata("Decrypt"),
            "ciphertext": b64(&ct.ciphertext),
            "encryptionAlgorithm": "AES_GCM",
            "initializationVector": b64(&ct.iv),
            "authenticationTag": b64(&ct.tag),
        });
        if let Some(metadata) = &ct.metadata {
            body["ciphertextMetadata"] = b64(metadata).into();
        }
        if let Some(aad) = &ct.aad {
            body["additionalAuthenticatedData"] = b64(aad).into();
        }
        self.call(
            Method::POST,
            format!("/kms/xks/v1/keys/{key}/decrypt"),
            body,
        )
    }

    /// A request of API `kind` on `key` (ignored for health) that succeeds on
    /// tenant A; a Decrypt first encrypts under `key` through tenant A.
    pub(crate) async fn valid(&self, kind: OperationKind, key: &str) -> Call<'_> {
        match kind {
            OperationKind::Health => self.health(),
            OperationKind::GetKeyMetadata => self.metadata(key),
            OperationKind::Encrypt => self.encrypt(key),
            OperationKind::Decrypt => {
                let ct = self.encrypt(key).send().await.ciphertext();
                self.decrypt(key, &ct)
            }
        }
    }

    /// Sends any request through `App::handle` and checks the response format.
    pub(crate) async fn exchange<B>(&self, request: Request<B>) -> Reply
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        self.exchange_json(request, None).await
    }

    async fn exchange_json<B>(&self, request: Request<B>, sent: Option<Value>) -> Reply
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let path = request.uri().path().to_owned();
        let kind = Route::parse(&path).ok().map(|r| r.operation().kind());
        let response = self.app.handle(request, None).await;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        let json = check_response(parts.status, &parts.headers, &body, kind, &path);
        Reply {
            status: parts.status,
            headers: parts.headers,
            json,
            sent,
        }
    }
}

/// The `xks_sigv4` credential for `cred`.
pub(crate) fn credential(cred: Cred) -> Credential {
    Credential::from_config(cred.access_key_id, cred.secret).unwrap()
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

type Tamper = Box<dyn FnOnce(&mut Request<Vec<u8>>)>;

/// One request being built; [`Call::send`] signs, tampers and sends it.
pub(crate) struct Call<'h> {
    h: &'h Harness,
    method: Method,
    prefix: String,
    rest: String,
    path: Option<String>,
    body: CallBody,
    content_type: Option<String>,
    signing: Option<Signing>,
    h2: bool,
    tampers: Vec<Tamper>,
}

enum CallBody {
    Json(Value),
    Raw(Vec<u8>),
}

/// How a request is signed.
#[derive(Clone, Debug)]
struct Signing {
    cred: Cred,
    region: String,
    skew_secs: i64,
    headers: SignedHeaderSet,
    service: &'static str,
    scope_days_back: u64,
}

impl Signing {
    fn for_tenant(tenant: &TenantSpec) -> Self {
        Self {
            cred: tenant.cred,
            region: tenant.region.to_owned(),
            skew_secs: 0,
            headers: SignedHeaderSet::HostAndDate,
            service: xks_sigv4::SERVICE,
            scope_days_back: 0,
        }
    }

    /// `(Authorization, X-Amz-Date)` for the request.
    fn sign(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (String, String) {
        let url = format!("https://{HOST}{path}");
        let time = shifted(SystemTime::now(), self.skew_secs);
        let signer = Signer::new(&credential(self.cred), self.region.as_str())
            .unwrap()
            .with_signed_headers(self.headers);
        let mut request = OutgoingRequest::new(method, &url, body);
        if let Some(content_type) = content_type {
            request = request.with_content_type(content_type);
        }
        let signed = signer.sign(&request, time).unwrap();
        if self.service == xks_sigv4::SERVICE && self.scope_days_back == 0 {
            return (
                signed.authorization().to_owned(),
                signed.x_amz_date().to_owned(),
            );
        }
        // What the Signer will not do: take the scope date from an earlier day.
        let earlier = time - Duration::from_secs(86_400 * self.scope_days_back);
        let scope_date = signer.sign(&request, earlier).unwrap().x_amz_date()[..8].to_owned();
        let amz_date = signed.x_amz_date();
        let authorization = reference_authorization(
            self.cred,
            &scope_date,
            &self.region,
            self.service,
            amz_date,
            method,
            path,
            body,
        );
        (authorization, amz_date.to_owned())
    }
}

fn shifted(time: SystemTime, secs: i64) -> SystemTime {
    let by = Duration::from_secs(secs.unsigned_abs());
    if secs >= 0 { time + by } else { time - by }
}

/// SigV4 written out from the AWS documentation, KMS style (`host;x-amz-date`),
/// for any service name and scope date.
#[expect(
    clippy::too_many_arguments,
    reason = "one argument per SigV4 input keeps the computation readable"
)]
fn reference_authorization(
    cred: Cred,
    scope_date: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> String {
    fn hmac(key: &[u8], data: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
    let canonical_request = format!(
        "{method}\n{path}\n\nhost:{HOST}\nx-amz-date:{amz_date}\n\nhost;x-amz-date\n{}",
        hex::encode(Sha256::digest(body))
    );
    let scope = format!("{scope_date}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{}", cred.secret).as_bytes(), scope_date);
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part);
    }
    let signature = hex::encode(hmac(&key, &string_to_sign));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-date, Signature={signature}",
        cred.access_key_id
    )
}

impl<'h> Call<'h> {
    /// Sends to `tenant`'s prefix, signed with its credential and region.
    pub(crate) fn tenant(mut self, tenant: &TenantSpec) -> Self {
        tenant.prefix.clone_into(&mut self.prefix);
        if let Some(signing) = &mut self.signing {
            signing.cred = tenant.cred;
            tenant.region.clone_into(&mut signing.region);
        }
        self
    }

    fn signing(&mut self) -> &mut Signing {
        self.signing
            .get_or_insert_with(|| Signing::for_tenant(&TENANT_A))
    }

    /// Signs with `cred`.
    pub(crate) fn cred(mut self, cred: Cred) -> Self {
        self.signing().cred = cred;
        self
    }

    /// Signs for `region`.
    pub(crate) fn region(mut self, region: &str) -> Self {
        region.clone_into(&mut self.signing().region);
        self
    }

    /// Signs at the real time shifted by `secs`.
    pub(crate) fn skew(mut self, secs: i64) -> Self {
        self.signing().skew_secs = secs;
        self
    }

    /// Signs `content-type;host;x-amz-date`, as curl does.
    pub(crate) fn curl_style(mut self) -> Self {
        self.signing().headers = SignedHeaderSet::ContentTypeHostAndDate;
        self
    }

    /// Signs with the reference computation for service `service`.
    pub(crate) fn service(mut self, service: &'static str) -> Self {
        self.signing().service = service;
        self
    }

    /// Signs with the reference computation, the scope date `days` before the
    /// `X-Amz-Date` day.
    pub(crate) fn scope_days_back(mut self, days: u64) -> Self {
        self.signing().scope_days_back = days;
        self
    }

    /// Sends without `Authorization` and `X-Amz-Date`.
    pub(crate) fn unsigned(mut self) -> Self {
        self.signing = None;
        self
    }

    /// Sends as HTTP/2 would arrive: an absolute URI and no `Host` header.
    pub(crate) fn h2(mut self) -> Self {
        self.h2 = true;
        self
    }

    /// The HTTP method (signed as given).
    pub(crate) fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Replaces the whole path, prefix included.
    pub(crate) fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_owned());
        self
    }

    /// Sets or removes the `Content-Type` header.
    pub(crate) fn content_type(mut self, content_type: Option<&str>) -> Self {
        self.content_type = content_type.map(str::to_owned);
        self
    }

    fn json(&mut self) -> &mut Map<String, Value> {
        match &mut self.body {
            CallBody::Json(Value::Object(map)) => map,
            _ => panic!("this request has no JSON object body"),
        }
    }

    /// Sets a top-level body field.
    pub(crate) fn set(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.json().insert(name.to_owned(), value.into());
        self
    }

    /// Sets a top-level body field to the Base64 of `bytes`.
    pub(crate) fn set_b64(self, name: &str, bytes: &[u8]) -> Self {
        self.set(name, b64(bytes))
    }

    /// Removes a top-level body field.
    pub(crate) fn remove(mut self, name: &str) -> Self {
        self.json().remove(name);
        self
    }

    fn request_metadata(&mut self) -> &mut Map<String, Value> {
        self.json()
            .entry("requestMetadata")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("requestMetadata is an object")
    }

    /// Sets a `requestMetadata` field.
    pub(crate) fn md(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.request_metadata()
            .insert(name.to_owned(), value.into());
        self
    }

    /// Removes a `requestMetadata` field.
    pub(crate) fn md_remove(mut self, name: &str) -> Self {
        self.request_metadata().remove(name);
        self
    }

    /// `kmsOperation`.
    pub(crate) fn kms_operation(self, operation: &str) -> Self {
        self.md("kmsOperation", operation)
    }

    /// `plaintext`.
    pub(crate) fn plaintext(self, plaintext: &[u8]) -> Self {
        self.set_b64("plaintext", plaintext)
    }

    /// `additionalAuthenticatedData`.
    pub(crate) fn aad(self, aad: &[u8]) -> Self {
        self.set_b64("additionalAuthenticatedData", aad)
    }

    /// No `additionalAuthenticatedData`.
    pub(crate) fn no_aad(self) -> Self {
        self.remove("additionalAuthenticatedData")
    }

    /// `ciphertextDataIntegrityValueAlgorithm: SHA_256`.
    pub(crate) fn cdiv(self) -> Self {
        self.set("ciphertextDataIntegrityValueAlgorithm", "SHA_256")
    }

    /// Replaces the body with exact bytes.
    pub(crate) fn raw_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = CallBody::Raw(body.into());
        self
    }

    /// Changes the request after it was signed.
    pub(crate) fn tamper(mut self, tamper: impl FnOnce(&mut Request<Vec<u8>>) + 'static) -> Self {
        self.tampers.push(Box::new(tamper));
        self
    }

    /// Rewrites the `Authorization` header after signing.
    pub(crate) fn authorization(self, edit: impl FnOnce(&str) -> String + 'static) -> Self {
        self.tamper(move |request| {
            let old = request.headers()[AUTHORIZATION]
                .to_str()
                .unwrap()
                .to_owned();
            let new = HeaderValue::from_str(&edit(&old)).unwrap();
            request.headers_mut().insert(AUTHORIZATION, new);
        })
    }

    /// The request as it will be sent, and its JSON body.
    pub(crate) fn build(self) -> (Request<Vec<u8>>, Option<Value>) {
        let path = self.path.unwrap_or_else(|| self.prefix + &self.rest);
        let (body, json) = match self.body {
            CallBody::Json(value) => (serde_json::to_vec(&value).unwrap(), Some(value)),
            CallBody::Raw(bytes) => (bytes, None),
        };
        let uri = if self.h2 {
            format!("https://{HOST}{path}")
        } else {
            path.clone()
        };
        let mut builder = Request::builder().method(self.method.clone()).uri(uri);
        if !self.h2 {
            builder = builder.header(HOST_HEADER, HOST);
        }
        if let Some(content_type) = &self.content_type {
            builder = builder.header(CONTENT_TYPE, content_type);
        }
        if let Some(signing) = &self.signing {
            let (authorization, amz_date) = signing.sign(
                self.method.as_str(),
                &path,
                self.content_type.as_deref(),
                &body,
            );
            builder = builder
                .header(AUTHORIZATION, authorization)
                .header("x-amz-date", amz_date);
        }
        let mut request = builder.body(body).unwrap();
        for tamper in self.tampers {
            tamper(&mut request);
        }
        (request, json)
    }

    /// Signs, tampers, sends, and checks the response format.
    pub(crate) async fn send(self) -> Reply {
        let h = self.h;
        let (request, json) = self.build();
        let request = request.map(|body| Full::new(Bytes::from(body)));
        h.exchange_json(request, json).await
    }
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

/// A checked response.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: Value,
    sent: Option<Value>,
}

/// An Encrypt answer, decoded, with the AAD the request carried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ciphertext {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) iv: Vec<u8>,
    pub(crate) tag: Vec<u8>,
    pub(crate) metadata: Option<Vec<u8>>,
    pub(crate) cdiv: Option<Vec<u8>>,
    pub(crate) aad: Option<Vec<u8>>,
}

impl Reply {
    /// Asserts a 200 and returns the body.
    #[track_caller]
    pub(crate) fn ok(&self) -> &Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected 200, got {}",
            self.json
        );
        &self.json
    }

    /// The XKS error name, if this is an error with one.
    pub(crate) fn error_name(&self) -> Option<ErrorName> {
        let name = self.json.get("errorName")?.as_str()?;
        ErrorName::from_str(name).ok()
    }

    /// Asserts the error name (the harness already checked the status matches it).
    #[track_caller]
    pub(crate) fn expect_error(&self, name: ErrorName) {
        assert_eq!(
            self.error_name(),
            Some(name),
            "expected {name}, got {} {}",
            self.status,
            self.json
        );
    }

    /// Asserts the error name is one of `names`, and returns it.
    #[track_caller]
    pub(crate) fn expect_one_of(&self, names: &[ErrorName]) -> ErrorName {
        match self.error_name() {
            Some(name) if names.contains(&name) => name,
            _ => panic!(
                "expected one of {names:?}, got {} {}",
                self.status, self.json
            ),
        }
    }

    /// The `kmsRequestId` that was sent.
    pub(crate) fn request_id(&self) -> Option<&str> {
        self.sent.as_ref()?["requestMetadata"]["kmsRequestId"].as_str()
    }

    /// Asserts a 200 Encrypt answer with only the spec's fields, in strict
    /// standard Base64, and decodes it.
    #[track_caller]
    pub(crate) fn ciphertext(&self) -> Ciphertext {
        let json = self.ok();
        for field in json.as_object().unwrap().keys() {
            assert!(
                matches!(
                    field.as_str(),
                    "ciphertext"
                        | "ciphertextMetadata"
                        | "initializationVector"
                        | "authenticationTag"
                        | "ciphertextDataIntegrityValue"
                ),
                "unexpected field {field} in {json}"
            );
        }
        let aad = self
            .sent
            .as_ref()
            .and_then(|sent| sent.get("additionalAuthenticatedData"))
            .and_then(Value::as_str)
            .map(|aad| B64.decode(aad).unwrap());
        Ciphertext {
            ciphertext: b64_field(json, "ciphertext").unwrap(),
            iv: b64_field(json, "initializationVector").unwrap(),
            tag: b64_field(json, "authenticationTag").unwrap(),
            metadata: b64_field(json, "ciphertextMetadata"),
            cdiv: b64_field(json, "ciphertextDataIntegrityValue"),
            aad,
        }
    }

    /// Asserts a 200 Decrypt answer and decodes its plaintext.
    #[track_caller]
    pub(crate) fn plaintext(&self) -> Vec<u8> {
        let json = self.ok();
        assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
        b64_field(json, "plaintext").unwrap()
    }
}

/// A strictly decoded standard-Base64 string field, `None` if absent.
#[track_caller]
fn b64_field(json: &Value, name: &str) -> Option<Vec<u8>> {
    let value = json.get(name)?;
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{name} is not a string: {json}"));
    Some(
        B64.decode(text)
            .unwrap_or_else(|e| panic!("{name} is not standard Base64 ({e}): {json}")),
    )
}

/// Rows 4 and 121-124, and the 405 rules, on one response.
#[track_caller]
fn check_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    kind: Option<OperationKind>,
    path: &str,
) -> Value {
    let context = format!("{status} for {path}");
    assert_eq!(
        headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "{context}: Content-Type"
    );
    let json: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{context}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(json.is_object(), "{context}: body is not an object: {json}");
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = headers.get(ALLOW).and_then(|v| v.to_str().ok());
        match kind {
            Some(_) => assert_eq!(allow, Some("POST"), "{context}: Allow"),
            None => assert!(allow.is_some(), "{context}: 405 without Allow"),
        }
    } else if !status.is_success() {
        check_error_body(status, &json, kind, &context);
    }
    json
}

/// Rows 121-124: `errorName` is one of the 12 and matches the status, an
/// `errorMessage` is at most 511 printable ASCII characters, nothing else is in
/// the body, and the name is one the error table allows for the API.
#[track_caller]
fn check_error_body(status: StatusCode, json: &Value, kind: Option<OperationKind>, context: &str) {
    let body = json.as_object().unwrap();
    for field in body.keys() {
        assert!(
            field == "errorName" || field == "errorMessage",
            "{context}: unexpected field {field}: {json}"
        );
    }
    let name = body
        .get("errorName")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{context}: no string errorName: {json}"));
    let name = ErrorName::from_str(name)
        .unwrap_or_else(|_| panic!("{context}: {name} is not an XKS error name"));
    assert_eq!(status.as_u16(), name.http_status(), "{context}: {name}");
    if let Some(message) = body.get("errorMessage") {
        let message = message
            .as_str()
            .unwrap_or_else(|| panic!("{context}: errorMessage is not a string"));
        assert!(message.len() <= 511, "{context}: errorMessage too long");
        assert!(
            message.bytes().all(|b| (0x20..=0x7e).contains(&b)),
            "{context}: errorMessage not printable ASCII: {message:?}"
        );
    }
    if let Some(kind) = kind {
        // The one tolerated departure from the table: ValidationException for a
        // malformed health body, which the official test client expects (§12.1).
        let tolerated = kind == OperationKind::Health && name == ErrorName::ValidationException;
        assert!(
            name.allowed_for(kind) || tolerated,
            "{context}: the error table does not allow {name} for {kind}"
        );
    }
}

// ---------------------------------------------------------------------------
// Streaming request bodies
// ---------------------------------------------------------------------------

/// How often a [`StreamBody`] was polled and how many bytes it handed out.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe(Arc<(AtomicUsize, AtomicUsize)>);

impl Probe {
    /// Calls of `poll_frame`.
    pub(crate) fn polls(&self) -> usize {
        self.0.0.load(Ordering::SeqCst)
    }

    /// Bytes handed out.
    pub(crate) fn bytes(&self) -> usize {
        self.0.1.load(Ordering::SeqCst)
    }
}

/// A request body of unknown length (as with chunked encoding), handed out in
/// frames of `chunk` bytes, that records how far it was read.
#[derive(Debug)]
pub(crate) struct StreamBody {
    data: Bytes,
    chunk: usize,
    sent: usize,
    mode: StreamMode,
    probe: Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamMode {
    /// The data, then the end.
    Finite,
    /// The same frame forever.
    Endless,
    /// Never a frame, never the end: a client that stopped sending.
    Stalled,
}

impl StreamBody {
    /// `data` in frames of `chunk` bytes.
    pub(crate) fn new(data: impl Into<Bytes>, chunk: usize) -> (Self, Probe) {
        let probe = Probe::default();
        let body = Self {
            data: data.into(),
            chunk,
            sent: 0,
            mode: StreamMode::Finite,
            probe: probe.clone(),
        };
        (body, probe)
    }

    /// Frames of `chunk` spaces, forever.
    pub(crate) fn endless(chunk: usize) -> (Self, Probe) {
        let (mut body, probe) = Self::new(vec![b' '; chunk], chunk);
        body.mode = StreamMode::Endless;
        (body, probe)
    }

    /// A body that never sends anything (and never wakes its reader).
    pub(crate) fn stalled() -> (Self, Probe) {
        let (mut body, probe) = Self::new(Bytes::new(), 1);
        body.mode = StreamMode::Stalled;
        (body, probe)
    }
}

impl Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        this.probe.0.0.fetch_add(1, Ordering::SeqCst);
        let frame = if this.mode == StreamMode::Stalled {
            return Poll::Pending;
        } else if this.mode == StreamMode::Endless {
            this.data.clone()
        } else if this.sent < this.data.len() {
            let end = (this.sent + this.chunk).min(this.data.len());
            let frame = this.data.slice(this.sent..end);
            this.sent = end;
            frame
        } else {
            return Poll::Ready(None);
        };
        this.probe.0.1.fetch_add(frame.len(), Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

// ---------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------

/// JSON log lines of every level, written to memory by a subscriber installed
/// for the current thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Makes the capture the current thread's subscriber until the guard drops.
    pub(crate) fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        let bytes = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        String::from_utf8(bytes).unwrap()
    }

    /// The fields of every `xks::request` line, in order.
    pub(crate) fn request_lines(&self) -> Vec<Map<String, Value>> {
        self.text()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .filter(|line| line["target"] == "xks::request")
            .map(|line| line["fields"].as_object().unwrap().clone())
            .collect()
    }
}

impl io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// One end-to-end pass over a backend
// ---------------------------------------------------------------------------

/// The request path against a real backend holding the harness's keys: metadata
/// of every role, round trips with AAD, CDIV and the largest required sizes,
/// tampering, usage and state errors, unknown keys, and health.
pub(crate) async fn end_to_end(h: &Harness) {
    let roles = [
        (KEY_1, json!(["ENCRYPT", "DECRYPT"]), "ENABLED"),
        (KEY_2, json!(["ENCRYPT", "DECRYPT"]), "ENABLED"),
        (ENCRYPT_ONLY, json!(["ENCRYPT"]), "ENABLED"),
        (DECRYPT_ONLY, json!(["DECRYPT"]), "ENABLED"),
        (NO_USAGE, json!([]), "ENABLED"),
        (DISABLED, json!(["ENCRYPT", "DECRYPT"]), "DISABLED"),
    ];
    for (key, usage, status) in roles {
        let r = h.metadata(key).send().await;
        assert_eq!(r.ok()["keySpec"], "AES_256", "{key}");
        let mut got: Vec<Value> = r.ok()["keyUsage"].as_array().unwrap().clone();
        got.retain(|u| u == "ENCRYPT" || u == "DECRYPT");
        assert_eq!(Value::Array(got), usage, "{key}");
        assert_eq!(r.ok()["keyStatus"], status, "{key}");
    }
    h.metadata(ABSENT)
        .send()
        .await
        .expect_error(ErrorName::KeyNotFoundException);

    let aad = b"project=nile,department=marketing";
    for (plaintext, aad) in [
        (pattern(12, 1), None),
        (pattern(1000, 2), Some(&aad[..])),
        (pattern(4300, 3), Some(&pattern(8192, 4)[..])),
    ] {
        let call = h.encrypt(KEY_1).plaintext(&plaintext).cdiv();
        let call = match aad {
            Some(aad) => call.aad(aad),
            None => call,
        };
        let ct = call.send().await.ciphertext();
        assert_eq!(ct.ciphertext.len(), plaintext.len());
        assert_eq!(ct.tag.len(), 16);
        assert!(ct.metadata.as_ref().is_some_and(|m| m.len() <= 20));
        let expected = xks_protocol::ciphertext_data_integrity_value(
            aad.unwrap_or_default(),
            ct.metadata.as_deref().unwrap_or_default(),
            &ct.iv,
            &ct.ciphertext,
            &ct.tag,
        );
        assert_eq!(ct.cdiv.as_deref(), Some(&expected[..]));
        assert_eq!(h.decrypt(KEY_1, &ct).send().await.plaintext(), plaintext);

        // Tampering of each part, and another key, fail authentication.
        let mut bad = ct.clone();
        bad.tag[0] ^= 1;
        h.decrypt(KEY_1, &bad)
            .send()
            .await
            .expect_error(ErrorName::InvalidCiphertextException);
        let mut bad = ct.clone();
        bad.iv[0] ^= 1;
        h.decrypt(KEY_1, &bad)
            .send()
            .await
            .expect_error(ErrorName::InvalidCiphertextException);
        let mut bad = ct.clone();
        if let Some(m) = bad.metadata.as_mut() {
            m[0] ^= 1;
        }
        h.decrypt(KEY_1, &bad)
            .send()
            .await
            .expect_error(ErrorName::InvalidCiphertextException);
        h.decrypt(KEY_2, &ct)
            .send()
            .await
            .expect_error(ErrorName::InvalidCiphertextException);
        let r = h.decrypt(KEY_1, &ct);
        let r = if aad.is_some() {
            r.no_aad()
        } else {
            r.aad(b"added")
        };
        r.send()
            .await
            .expect_error(ErrorName::InvalidCiphertextException);
    }

    let ct = h.encrypt(KEY_1).send().await.ciphertext();
    for key in [DECRYPT_ONLY, NO_USAGE] {
        h.encrypt(key)
            .send()
            .await
            .expect_error(ErrorName::InvalidKeyUsageException);
    }
    for key in [ENCRYPT_ONLY, NO_USAGE] {
        h.decrypt(key, &ct)
            .send()
            .await
            .expect_error(ErrorName::InvalidKeyUsageException);
    }
    h.encrypt(ENCRYPT_ONLY).send().await.ciphertext();
    h.encrypt(ENCRYPT_ONLY)
        .cdiv()
        .send()
        .await
        .expect_error(ErrorName::InvalidKeyUsageException);
    h.encrypt(DISABLED)
        .send()
        .await
        .expect_error(ErrorName::InvalidStateException);
    h.decrypt(DISABLED, &ct)
        .send()
        .await
        .expect_error(ErrorName::InvalidStateException);
    h.encrypt(ABSENT)
        .send()
        .await
        .expect_error(ErrorName::KeyNotFoundException);

    let health = h.health().send().await;
    let nodes = health.ok()["ekmFleetDetails"].as_array().unwrap();
    assert!(!nodes.is_empty());
    assert!(
        nodes.iter().all(|n| n["healthStatus"] == "ACTIVE"),
        "{nodes:?}"
    );
}
