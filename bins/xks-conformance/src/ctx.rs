//! What a check works with: the settings, the clients, request builders, and `send`,
//! which records every exchange (for evidence and the run-wide checks) and stops sending
//! after repeated transport failures.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::Method;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use xks_client::{Client, ClientConfig, RawRequest, SigV4Params};
use xks_protocol::{KeyId, OperationKind};
use xks_sigv4::{Credential, Signer};

use crate::evidence::{Exchange, Failure, FailureKind, Received, Redactor, Scope, Sent};
use crate::{Settings, SettingsError};

/// Consecutive transport failures after which the run stops sending (each later request
/// fails at once, saying why): a hanging proxy must not cost a timeout per request.
const BREAKER_THRESHOLD: u32 = 5;

/// The largest answer body read. XKS answers are a few kilobytes; a 64 KiB plaintext's
/// ciphertext is under 90 KB.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Answer bodies kept in the run-wide log are cut to this size (the checks that sent them
/// saw them whole; the run-wide checks need error bodies, which are small).
const LOGGED_BODY_BYTES: usize = 16 * 1024;

/// State shared by every check of a run.
pub(crate) struct Shared {
    pub(crate) settings: Arc<Settings>,
    client: Client,
    signer: Signer,
    pub(crate) redactor: Redactor,
    log: Mutex<Vec<Arc<Exchange>>>,
    breaker: Breaker,
    counter: AtomicU64,
}

/// A check's handle on the run: the shared state and the check's id.
#[derive(Clone)]
pub(crate) struct Ctx {
    shared: Arc<Shared>,
    check: &'static str,
}

#[derive(Default)]
struct Breaker {
    consecutive: AtomicU32,
    open: Mutex<Option<String>>,
}

/// A request being prepared.
pub(crate) struct Req {
    label: String,
    op: Option<OperationKind>,
    raw: RawRequest,
    client: Option<Client>,
    breaker: bool,
    scope: Scope,
    error: Option<String>,
}

/// An Encrypt request's inputs.
#[derive(Debug, Clone)]
pub(crate) struct EncryptInput {
    pub(crate) plaintext: Vec<u8>,
    pub(crate) aad: Option<Vec<u8>>,
    pub(crate) cdiv: bool,
    pub(crate) kms_operation: &'static str,
}

/// A Decrypt request's inputs.
#[derive(Debug, Clone)]
pub(crate) struct DecryptInput {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) metadata: Option<Vec<u8>>,
    pub(crate) iv: Vec<u8>,
    pub(crate) tag: Vec<u8>,
    pub(crate) aad: Option<Vec<u8>>,
    pub(crate) kms_operation: &'static str,
}

/// An Encrypt answer's fields, decoded but not length-checked (the checks do that).
#[derive(Debug, Clone)]
pub(crate) struct Sealed {
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) metadata: Option<Vec<u8>>,
    pub(crate) iv: Vec<u8>,
    pub(crate) tag: Vec<u8>,
    pub(crate) cdiv: Option<Vec<u8>>,
}

/// A round trip's parts, for the tamper checks.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) plaintext: Vec<u8>,
    pub(crate) aad: Option<Vec<u8>>,
    pub(crate) sealed: Sealed,
}

// === impl Shared ===

impl Shared {
    pub(crate) fn new(settings: Arc<Settings>) -> Result<Self, SettingsError> {
        let client = Client::new(base_config(&settings))
            .map_err(|e| SettingsError::single(format!("client setup: {}", e.chain())))?;
        let signer = Signer::new(&settings.credential, settings.region.clone())
            .map_err(|e| SettingsError::single(format!("SigV4 signer: {e}")))?;
        Ok(Self {
            redactor: Redactor::new(settings.secrets()),
            settings,
            client,
            signer,
            log: Mutex::new(Vec::new()),
            breaker: Breaker::default(),
            counter: AtomicU64::new(0),
        })
    }

    /// Every exchange of the run so far.
    pub(crate) fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The client configuration every client of the run starts from: endpoint, trust roots,
/// timeout, `--connect-to`, and the accepted client certificate if any.
fn base_config(settings: &Settings) -> ClientConfig {
    let mut config = ClientConfig::new(settings.endpoint.clone())
        .with_trust(settings.trust.clone())
        .with_timeout(settings.timeout)
        .with_max_answer_bytes(MAX_ANSWER_BYTES);
    if let Some(addr) = settings.connect_to {
        config = config.with_connect_to(addr);
    }
    if let Some(mtls) = &settings.mtls {
        config = config.with_client_identity(mtls.good.client.clone());
    }
    config
}

// === impl Ctx ===

impl Ctx {
    pub(crate) fn new(shared: Arc<Shared>, check: &'static str) -> Self {
        Self { shared, check }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The main key.
    pub(crate) fn main_key(&self) -> &KeyId {
        &self.settings().keys.main
    }

    /// A new client: the run's base configuration changed by `adjust`.
    pub(crate) fn new_client(
        &self,
        adjust: impl FnOnce(ClientConfig) -> ClientConfig,
    ) -> Result<Client, String> {
        Client::new(adjust(base_config(self.settings()))).map_err(|e| e.chain())
    }

    /// The base configuration without a client certificate (mTLS checks add their own).
    pub(crate) fn config_without_identity(&self) -> ClientConfig {
        let s = self.settings();
        let mut config = ClientConfig::new(s.endpoint.clone())
            .with_trust(s.trust.clone())
            .with_timeout(s.timeout)
            .with_max_answer_bytes(MAX_ANSWER_BYTES);
        if let Some(addr) = s.connect_to {
            config = config.with_connect_to(addr);
        }
        config
    }

    // --- paths ---------------------------------------------------------------------

    /// `<uri path>/health`.
    pub(crate) fn health_path(&self) -> String {
        format!("{}/health", self.settings().uri_path)
    }

    /// `<uri path>/keys/<key>/<op>` for `op` in metadata, encrypt, decrypt.
    pub(crate) fn key_path(&self, key: &str, op: &str) -> String {
        format!("{}/keys/{key}/{op}", self.settings().uri_path)
    }

    /// The path of `api` on `key` (health ignores the key).
    pub(crate) fn api_path(&self, api: OperationKind, key: &str) -> String {
        match api {
            OperationKind::Health => self.health_path(),
            OperationKind::GetKeyMetadata => self.key_path(key, "metadata"),
            OperationKind::Encrypt => self.key_path(key, "encrypt"),
            OperationKind::Decrypt => self.key_path(key, "decrypt"),
        }
    }

    // --- bodies --------------------------------------------------------------------

    /// A fresh `kmsRequestId` (a random UUID, as KMS sends).
    pub(crate) fn request_id(&self) -> String {
        let b = random_bytes(16);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-4{}-a{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[13..16],
            &hex[17..20],
            &hex[20..32]
        )
    }

    /// The `requestMetadata` KMS sends to `api` with `kms_operation`.
    pub(crate) fn request_metadata(&self, api: OperationKind, kms_operation: &str) -> Value {
        let s = self.settings();
        let mut m = Map::new();
        if api != OperationKind::Health {
            m.insert("awsPrincipalArn".into(), json!(s.principal_arn));
        }
        if matches!(api, OperationKind::Encrypt | OperationKind::Decrypt) {
            m.insert("kmsKeyArn".into(), json!(s.kms_key_arn));
        }
        m.insert("kmsOperation".into(), json!(kms_operation));
        m.insert("kmsRequestId".into(), json!(self.request_id()));
        Value::Object(m)
    }

    pub(crate) fn health_body(&self, kms_operation: &str) -> Value {
        json!({ "requestMetadata": self.request_metadata(OperationKind::Health, kms_operation) })
    }

    pub(crate) fn metadata_body(&self) -> Value {
        json!({ "requestMetadata": self.request_metadata(OperationKind::GetKeyMetadata, "CreateKey") })
    }

    pub(crate) fn encrypt_body(&self, input: &EncryptInput) -> Value {
        let mut body = json!({
            "requestMetadata": self.request_metadata(OperationKind::Encrypt, input.kms_operation),
            "plaintext": b64(&input.plaintext),
            "encryptionAlgorithm": "AES_GCM",
        });
        if let Some(aad) = &input.aad {
            body["additionalAuthenticatedData"] = json!(b64(aad));
        }
        if input.cdiv {
            body["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_256");
        }
        body
    }

    pub(crate) fn decrypt_body(&self, input: &DecryptInput) -> Value {
        let mut body = json!({
            "requestMetadata": self.request_metadata(OperationKind::Decrypt, input.kms_operation),
            "ciphertext": b64(&input.ciphertext),
            "encryptionAlgorithm": "AES_GCM",
            "initializationVector": b64(&input.iv),
            "authenticationTag": b64(&input.tag),
        });
        if let Some(metadata) = &input.metadata {
            body["ciphertextMetadata"] = json!(b64(metadata));
        }
        if let Some(aad) = &input.aad {
            body["additionalAuthenticatedData"] = json!(b64(aad));
        }
        body
    }

    /// A valid body for `api`: health and metadata as KMS sends them, Encrypt of 32 random
    /// bytes, Decrypt of an all-zero ciphertext (well-formed, never authentic).
    pub(crate) fn sample_body(&self, api: OperationKind) -> Value {
        match api {
            OperationKind::Health => self.health_body("KmsHealthCheck"),
            OperationKind::GetKeyMetadata => self.metadata_body(),
            OperationKind::Encrypt => self.encrypt_body(&EncryptInput::new(random_bytes(32))),
            OperationKind::Decrypt => self.decrypt_body(&DecryptInput::zeros()),
        }
    }

    // --- requests ------------------------------------------------------------------

    /// An unsigned POST of `body` (with `Content-Type: application/json`) to `path`.
    pub(crate) fn post(
        &self,
        label: impl Into<String>,
        path: String,
        body: impl Into<Bytes>,
    ) -> Req {
        Req {
            label: label.into(),
            op: xks_protocol::Route::parse(&path)
                .ok()
                .map(|r| r.operation().kind()),
            raw: RawRequest::post(path, body),
            client: None,
            breaker: true,
            scope: Scope::All,
            error: None,
        }
    }

    /// An unsigned POST of a JSON body.
    pub(crate) fn post_json(&self, label: impl Into<String>, path: String, body: &Value) -> Req {
        self.post(label, path, body.to_string())
    }

    /// An unsigned request with any method and no body.
    pub(crate) fn request(&self, label: impl Into<String>, method: Method, path: String) -> Req {
        let mut req = self.post(label, path, Bytes::new());
        req.raw.set_method(method);
        req.raw.headers_mut().remove(http::header::CONTENT_TYPE);
        req
    }

    /// Signs `req` as KMS does (aws-sigv4, `host;x-amz-date`), now.
    pub(crate) fn sign(&self, mut req: Req) -> Req {
        if let Err(e) = req.raw.sign(
            self.settings().endpoint(),
            &self.shared.signer,
            SystemTime::now(),
        ) {
            req.error = Some(format!("signing failed: {}", e.chain()));
        }
        req
    }

    /// Signs `req` with the raw-mode signer and `params`.
    pub(crate) fn sign_with(&self, mut req: Req, params: &SigV4Params) -> Req {
        if let Err(e) = req.raw.sign_with(self.settings().endpoint(), params) {
            req.error = Some(format!("signing failed: {}", e.chain()));
        }
        req
    }

    /// Raw-mode signing parameters for the run's credential and region.
    pub(crate) fn params(&self) -> SigV4Params {
        SigV4Params::new(&self.settings().credential, self.settings().region.clone())
    }

    /// Raw-mode signing parameters for `credential` and the run's region.
    pub(crate) fn params_for(&self, credential: &Credential) -> SigV4Params {
        SigV4Params::new(credential, self.settings().region.clone())
    }

    /// A KMS-signed POST of a JSON body to `path`.
    pub(crate) fn signed_json(&self, label: impl Into<String>, path: String, body: &Value) -> Req {
        self.sign(self.post_json(label, path, body))
    }

    /// Sends `req` and records the exchange.
    pub(crate) async fn send(&self, req: Req) -> Arc<Exchange> {
        let Req {
            label,
            op,
            raw,
            client,
            breaker,
            scope,
            error,
        } = req;
        let sent = Sent {
            method: raw.method().to_string(),
            path: raw.path().to_owned(),
            headers: raw
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: Bytes::copy_from_slice(raw.body()),
        };
        let open = if breaker {
            self.shared.breaker.open_reason()
        } else {
            None
        };
        let result = if let Some(error) = error {
            Err(Failure {
                kind: FailureKind::NotSent,
                text: format!("not sent: {error}"),
            })
        } else if let Some(reason) = open {
            Err(Failure {
                kind: FailureKind::NotSent,
                text: format!("not sent: {reason}"),
            })
        } else {
            let client = client.unwrap_or_else(|| self.shared.client.clone());
            match client.send(raw).await {
                Ok(response) => {
                    if breaker {
                        self.shared.breaker.success();
                    }
                    Ok(Received {
                        status: response.status().as_u16(),
                        version: response.version_str(),
                        headers: response
                            .headers()
                            .iter()
                            .map(|(n, v)| {
                                (
                                    n.as_str().to_owned(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        content_type: response.content_type().map(str::to_owned),
                        json_body: serde_json::from_slice::<serde::de::IgnoredAny>(response.body())
                            .is_ok(),
                        body: response.body().clone(),
                        elapsed: response.elapsed(),
                        tls: response.tls().cloned(),
                    })
                }
                Err(e) => {
                    let failure = failure_of(&e);
                    if breaker {
                        self.shared.breaker.failure(&failure);
                    }
                    Err(failure)
                }
            }
        };
        let exchange = Arc::new(Exchange {
            check: self.check,
            label,
            operation: op,
            scope,
            request: sent,
            result,
        });
        let logged = if exchange
            .received()
            .is_some_and(|r| r.body.len() > LOGGED_BODY_BYTES)
        {
            Arc::new(exchange.truncated(LOGGED_BODY_BYTES))
        } else {
            Arc::clone(&exchange)
        };
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(logged);
        self.shared.counter.fetch_add(1, Ordering::Relaxed);
        exchange
    }

    // --- operations ----------------------------------------------------------------

    /// GetHealthStatus with `kms_operation`, KMS-signed.
    pub(crate) async fn health(&self, label: &str, kms_operation: &str) -> Arc<Exchange> {
        let body = self.health_body(kms_operation);
        self.send(self.signed_json(label, self.health_path(), &body))
            .await
    }

    /// GetKeyMetadata of `key`, KMS-signed.
    pub(crate) async fn key_metadata(&self, label: &str, key: &str) -> Arc<Exchange> {
        let body = self.metadata_body();
        self.send(self.signed_json(label, self.key_path(key, "metadata"), &body))
            .await
    }

    /// Encrypt under `key`; the answer's fields if it is a 200 JSON object.
    pub(crate) async fn encrypt(
        &self,
        label: &str,
        key: &str,
        input: &EncryptInput,
    ) -> (Arc<Exchange>, Result<Sealed, String>) {
        let body = self.encrypt_body(input);
        let exchange = self
            .send(self.signed_json(label, self.key_path(key, "encrypt"), &body))
            .await;
        let sealed = success_json(&exchange).and_then(|v| Sealed::parse(&v));
        (exchange, sealed)
    }

    /// Decrypt under `key`; the plaintext if the answer is a 200 JSON object with one.
    pub(crate) async fn decrypt(
        &self,
        label: &str,
        key: &str,
        input: &DecryptInput,
    ) -> (Arc<Exchange>, Result<Vec<u8>, String>) {
        let body = self.decrypt_body(input);
        let exchange = self
            .send(self.signed_json(label, self.key_path(key, "decrypt"), &body))
            .await;
        let plaintext = success_json(&exchange).and_then(|v| {
            let text = v
                .get("plaintext")
                .and_then(Value::as_str)
                .ok_or("the answer has no string `plaintext`")?;
            B64.decode(text)
                .map_err(|e| format!("`plaintext` is not standard Base64: {e}"))
        });
        (exchange, plaintext)
    }

    /// Encrypts `plaintext` (with `aad`) under the main key: the starting point of the
    /// round-trip and tamper checks.
    pub(crate) async fn sample(
        &self,
        plaintext_len: usize,
        aad: Option<Vec<u8>>,
    ) -> Result<Sample, (String, Arc<Exchange>)> {
        self.sample_under(self.main_key().as_str(), plaintext_len, aad)
            .await
    }

    /// Like [`Ctx::sample`] under any key.
    pub(crate) async fn sample_under(
        &self,
        key: &str,
        plaintext_len: usize,
        aad: Option<Vec<u8>>,
    ) -> Result<Sample, (String, Arc<Exchange>)> {
        let plaintext = random_bytes(plaintext_len);
        let input = EncryptInput {
            aad: aad.clone(),
            ..EncryptInput::new(plaintext.clone())
        };
        let (exchange, sealed) = self.encrypt("encrypt (setup)", key, &input).await;
        match sealed {
            Ok(sealed) => Ok(Sample {
                plaintext,
                aad,
                sealed,
            }),
            Err(e) => Err((format!("setup: encrypt under {key} failed: {e}"), exchange)),
        }
    }
}

// === impl Req ===

impl Req {
    /// Sends through `client` instead of the run's main client.
    pub(crate) fn via(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Transport failures of this request do not count towards stopping the run (the
    /// check expects them, e.g. a rejected client certificate).
    pub(crate) fn expect_transport_failure(mut self) -> Self {
        self.breaker = false;
        self
    }

    /// Which run-wide checks look at the answer.
    pub(crate) fn scope(mut self, scope: Scope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the operation the run-wide error checks attribute the answer to.
    pub(crate) fn op(mut self, op: OperationKind) -> Self {
        self.op = Some(op);
        self
    }

    /// Changes the request (after signing, to build a negative case).
    pub(crate) fn tweak(mut self, f: impl FnOnce(&mut RawRequest)) -> Self {
        f(&mut self.raw);
        self
    }
}

// === impl Breaker ===

impl Breaker {
    fn open_reason(&self) -> Option<String> {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn success(&self) {
        self.consecutive.store(0, Ordering::Relaxed);
    }

    fn failure(&self, failure: &Failure) {
        let n = self.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= BREAKER_THRESHOLD {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if open.is_none() {
                *open = Some(format!(
                    "the tester stopped sending after {n} requests in a row got no answer \
                     (the last: {})",
                    failure.text
                ));
            }
        }
    }
}

// === impl EncryptInput, DecryptInput, Sealed ===

impl EncryptInput {
    /// `plaintext`, no AAD, no CDIV, kmsOperation `Encrypt`.
    pub(crate) fn new(plaintext: Vec<u8>) -> Self {
        Self {
            plaintext,
            aad: None,
            cdiv: false,
            kms_operation: "Encrypt",
        }
    }
}

impl DecryptInput {
    /// The inputs that decrypt `sample` as it was encrypted.
    pub(crate) fn of(sample: &Sample) -> Self {
        Self {
            ciphertext: sample.sealed.ciphertext.clone(),
            metadata: sample.sealed.metadata.clone(),
            iv: sample.sealed.iv.clone(),
            tag: sample.sealed.tag.clone(),
            aad: sample.aad.clone(),
            kms_operation: "Decrypt",
        }
    }

    /// An all-zero 16-byte ciphertext, 12-byte IV and 16-byte tag: well-formed, never
    /// authentic.
    pub(crate) fn zeros() -> Self {
        Self {
            ciphertext: vec![0; 16],
            metadata: None,
            iv: vec![0; 12],
            tag: vec![0; 16],
            aad: None,
            kms_operation: "Decrypt",
        }
    }
}

impl Sealed {
    /// Decodes an Encrypt answer's fields; each binary field must be standard Base64.
    pub(crate) fn parse(v: &Value) -> Result<Self, String> {
        let field = |name: &str, required: bool| -> Result<Option<Vec<u8>>, String> {
            match v.get(name) {
                None | Some(Value::Null) if required => Err(format!("the answer has no `{name}`")),
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => B64
                    .decode(text)
                    .map(Some)
                    .map_err(|e| format!("`{name}` is not standard padded Base64: {e}")),
                Some(other) => Err(format!("`{name}` is not a string but {}", kind(other))),
            }
        };
        Ok(Self {
            ciphertext: field("ciphertext", true)?.unwrap_or_default(),
            metadata: field("ciphertextMetadata", false)?,
            iv: field("initializationVector", true)?.unwrap_or_default(),
            tag: field("authenticationTag", true)?.unwrap_or_default(),
            cdiv: field("ciphertextDataIntegrityValue", false)?,
        })
    }

    /// SHA-256(AAD || metadata || IV || ciphertext || tag), computed here.
    pub(crate) fn expected_cdiv(&self, aad: Option<&[u8]>) -> Vec<u8> {
        let mut hash = Sha256::new();
        hash.update(aad.unwrap_or_default());
        hash.update(self.metadata.as_deref().unwrap_or_default());
        hash.update(&self.iv);
        hash.update(&self.ciphertext);
        hash.update(&self.tag);
        hash.finalize().to_vec()
    }
}

// --- helpers -------------------------------------------------------------------------

/// The body of a 200 answer whose body is a JSON object, or why not.
pub(crate) fn success_json(exchange: &Exchange) -> Result<Value, String> {
    let received = exchange.received().ok_or_else(|| exchange.summary())?;
    if received.status != 200 {
        return Err(format!("expected HTTP 200, got {}", exchange.summary()));
    }
    match serde_json::from_slice::<Value>(&received.body) {
        Ok(v) if v.is_object() => Ok(v),
        Ok(v) => Err(format!("the 200 body is JSON {}, not an object", kind(&v))),
        Err(_) => Err(format!(
            "the 200 body is not JSON: {}",
            crate::evidence::excerpt(&received.body, 80)
        )),
    }
}

/// The JSON type of `v`, in words.
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Standard Base64.
pub(crate) fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// `n` random bytes from the OS; if the OS source fails, bytes from a hash of the time and
/// a counter (the tester needs variety, not secrecy).
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0; n];
    if getrandom::fill(&mut out).is_ok() {
        return out;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut filled = 0;
    while filled < n {
        let mut hash = Sha256::new();
        hash.update(nanos.to_le_bytes());
        hash.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        let block = hash.finalize();
        let take = (n - filled).min(block.len());
        out[filled..filled + take].copy_from_slice(&block[..take]);
        filled += take;
    }
    out
}

/// A random lower-case hex string of `len` characters.
pub(crate) fn random_hex(len: usize) -> String {
    random_bytes(len.div_ceil(2))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .take(len)
        .collect()
}

fn failure_of(e: &xks_client::Error) -> Failure {
    let kind = match e {
        xks_client::Error::Timeout(_) => FailureKind::Timeout,
        xks_client::Error::Connect(_) => FailureKind::Connect,
        xks_client::Error::Tls(t) => FailureKind::Tls(t.kind()),
        xks_client::Error::Http(_) => FailureKind::Http,
        xks_client::Error::Config(_) | xks_client::Error::Sign(_) => FailureKind::NotSent,
        _ => FailureKind::Other,
    };
    Failure {
        kind,
        text: e.chain(),
    }
}
