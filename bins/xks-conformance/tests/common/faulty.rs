//! A small XKS proxy with switchable faults: real AES-256-GCM (aes-gcm), real SigV4
//! verification (xks-sigv4), request parsing from xks-protocol, TLS (rustls) with HTTP/1.1
//! and HTTP/2 (hyper). Fault-free it follows the spec; each [`Fault`] breaks one rule.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use xks_protocol::{
    DecryptRequest, EncryptRequest, ErrorName, HealthRequest, KeyId, Limits, MetadataRequest,
    Operation, Route, XksError, compose_gcm_aad,
};
use xks_sigv4::{Credential, CredentialStore, SignedRequest, Verifier};

use super::{A1, DECRYPT_ONLY, DISABLED, ENCRYPT_ONLY, KEY_1, KEY_2, NO_USAGE, Pki};

/// The faulty proxy's path prefix.
pub(crate) const PREFIX: &str = "/t";

/// The principal the proxy's secondary authorization denies (key APIs only).
pub(crate) const DENIED_PRINCIPAL: &str = "arn:aws:iam::111122223333:user/denied";

/// GetKeyMetadata quota: a token bucket of this many requests, refilled at this many per
/// second; beyond it, 429 ThrottlingException.
const QUOTA: f64 = 100.0;

/// One broken rule at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Follows the spec.
    None,
    /// The CDIV is computed, then one byte of it is changed.
    WrongCdiv,
    /// The authentication tag is left appended to the ciphertext.
    TagOnCiphertext,
    /// GET on an API path is 404 InvalidUriPathException instead of 405.
    No405ForGet,
    /// GET on …/health answers 200 with a health body.
    GetHealth200,
    /// X-Amz-Date may be a day off.
    SkewNotEnforced,
    /// ciphertextMetadata is returned but not bound into the GCM AAD.
    MetadataNotBound,
    /// The GCM AAD is AAD || metadata, without length prefixes.
    AadMetadataConcatenated,
    /// An unknown kmsOperation is a ValidationException.
    ValidationForUnknownKmsOperation,
    /// KeyNotFoundException comes with HTTP 400.
    ErrorStatusMismatch,
    /// errorMessage has non-ASCII characters.
    NonAsciiErrorMessage,
    /// An unknown key id is answered 404 before SigV4 is checked.
    KeyLookupBeforeAuth,
    /// IVs come from a counter that wraps every 16 encryptions.
    IvReuse,
    /// GetHealthStatus reports xksProxyFleetSize 0 and no key managers.
    HealthFleetEmpty,
    /// The CDIV is returned even when nobody asked for it.
    CdivAlways,
    /// Error answers are plain text.
    ErrorBodyNotJson,
    /// Key usage is not enforced: a decrypt-only key encrypts.
    IgnoresKeyUsage,
    /// GetKeyMetadata of a disabled key is 400 InvalidStateException.
    DisabledMetadataError,
    /// Every answer carries `Connection: close`.
    NoKeepAlive,
    /// Encrypt answers 500 InternalException for plaintexts over 4096 bytes.
    SmallPlaintextLimit,
    /// Secondary authorization applies to GetHealthStatus too: every health call is 403.
    HealthDenied,
    /// The deny policy is not enforced.
    PolicyIgnored,
    /// Over the quota, the request is dropped (stream or connection reset), not answered 429.
    ThrottleByDropping,
}

/// The faulty proxy, running until the test ends; `set` switches the fault.
pub(crate) struct FaultyProxy {
    pub(crate) addr: SocketAddr,
    pub(crate) pki: Pki,
    state: Arc<State>,
}

struct State {
    fault: Mutex<Fault>,
    keys: HashMap<String, KeyEntry>,
    strict: Verifier,
    lenient: Verifier,
    counter: AtomicU64,
    bucket: Mutex<(f64, Instant)>,
}

struct KeyEntry {
    cipher: Aes256Gcm,
    encrypt: bool,
    decrypt: bool,
    enabled: bool,
}

/// The metadata every encryption returns: format 1, key version 1.
const METADATA: [u8; 5] = [1, 0, 0, 0, 1];

impl FaultyProxy {
    pub(crate) async fn start() -> Self {
        let pki = Pki::new();
        let mut keys = HashMap::new();
        for (i, (id, encrypt, decrypt, enabled)) in [
            (KEY_1, true, true, true),
            (KEY_2, true, true, true),
            (ENCRYPT_ONLY, true, false, true),
            (DECRYPT_ONLY, false, true, true),
            (NO_USAGE, false, false, true),
            (DISABLED, true, true, false),
        ]
        .into_iter()
        .enumerate()
        {
            let material = [u8::try_from(i).unwrap() + 1; 32];
            keys.insert(
                id.to_owned(),
                KeyEntry {
                    cipher: Aes256Gcm::new_from_slice(&material).unwrap(),
                    encrypt,
                    decrypt,
                    enabled,
                },
            );
        }
        let store =
            || CredentialStore::new([Credential::from_config(A1.id, A1.secret).unwrap()]).unwrap();
        let state = Arc::new(State {
            fault: Mutex::new(Fault::None),
            keys,
            strict: Verifier::new(store()),
            lenient: Verifier::new(store()).with_max_clock_skew(Duration::from_secs(86_400)),
            counter: AtomicU64::new(0),
            bucket: Mutex::new((QUOTA, Instant::now())),
        });

        let certs = CertificateDer::pem_file_iter(pki.path("server.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = Arc::clone(&served);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = Arc::clone(&state);
                        async move { state.handle(req).await }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, pki, state }
    }

    /// Switches the fault for the requests that follow.
    pub(crate) fn set(&self, fault: Fault) {
        *self
            .state
            .fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }

    /// The tester's arguments for this proxy (keys in every role, the ping path).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = super::target_args(self.addr, &self.pki.path("ca.pem"), PREFIX);
        args.extend(
            [
                "--second-key-id",
                KEY_2,
                "--encrypt-only-key-id",
                ENCRYPT_ONLY,
                "--decrypt-only-key-id",
                DECRYPT_ONLY,
                "--no-usage-key-id",
                NO_USAGE,
                "--disabled-key-id",
                DISABLED,
                "--ping-path",
                "/ping",
                "--denied-principal",
                DENIED_PRINCIPAL,
                "--throttle-burst",
                "300",
            ]
            .map(str::to_owned),
        );
        args
    }
}

type Answer = Response<Full<Bytes>>;

impl State {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a token of the GetKeyMetadata quota.
    fn within_quota(&self) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let tokens = (tokens + now.duration_since(last).as_secs_f64() * QUOTA).min(QUOTA);
        *bucket = (tokens - 1.0, now);
        tokens >= 1.0
    }

    /// The answer, or an error that makes hyper reset the stream (a dropped request).
    async fn handle(&self, req: Request<Incoming>) -> Result<Answer, std::io::Error> {
        let fault = self.fault();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, 1 << 20).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => return Ok(error(fault, ErrorName::UnsupportedOperationException)),
        };
        let mut answer = match self.answer(fault, &parts, &body) {
            Reply::Answer(a) => a,
            Reply::Drop => return Err(std::io::Error::other("dropped")),
        };
        if fault == Fault::NoKeepAlive {
            answer
                .headers_mut()
                .insert("connection", http::HeaderValue::from_static("close"));
        }
        Ok(answer)
    }

    fn answer(&self, fault: Fault, parts: &http::request::Parts, body: &Bytes) -> Reply {
        if parts.method == Method::GET && parts.uri.path() == "/ping" {
            return reply(StatusCode::OK, "text/plain", "ok".into()).into();
        }
        let path = parts.uri.path().to_owned();
        let operation = match Route::parse(&path) {
            Ok(route) if route.prefix() == PREFIX => route.into_operation(),
            _ => return error(fault, ErrorName::InvalidUriPathException).into(),
        };
        if parts.method != Method::POST {
            return match fault {
                Fault::No405ForGet => error(fault, ErrorName::InvalidUriPathException),
                Fault::GetHealth200 if operation == Operation::Health => self.health(fault),
                _ => {
                    let mut r = reply(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "application/json",
                        r#"{"errorMessage":"use POST"}"#.into(),
                    );
                    r.headers_mut()
                        .insert("allow", http::HeaderValue::from_static("POST"));
                    r
                }
            }
            .into();
        }
        if fault == Fault::KeyLookupBeforeAuth
            && let Some(key) = key_of(&operation)
            && !self.keys.contains_key(key.as_str())
        {
            return error(fault, ErrorName::KeyNotFoundException).into();
        }
        let verifier = if fault == Fault::SkewNotEnforced {
            &self.lenient
        } else {
            &self.strict
        };
        if verifier
            .verify(&SignedRequest::from_parts(parts, body))
            .is_err()
        {
            return error(fault, ErrorName::AuthenticationFailedException).into();
        }
        let limits = Limits::default();
        let result = match operation {
            Operation::Health => HealthRequest::from_json(body, &limits)
                .map(|r| (r.request_metadata.kms_operation, None)),
            Operation::Metadata(key) => MetadataRequest::from_json(body, &limits).map(|r| {
                (
                    r.request_metadata.kms_operation,
                    Some((key, Body::Metadata)),
                )
            }),
            Operation::Encrypt(key) => EncryptRequest::from_json(body, &limits).map(|r| {
                (
                    r.request_metadata.kms_operation.clone(),
                    Some((key, Body::Encrypt(Box::new(r)))),
                )
            }),
            Operation::Decrypt(key) => DecryptRequest::from_json(body, &limits).map(|r| {
                (
                    r.request_metadata.kms_operation.clone(),
                    Some((key, Body::Decrypt(Box::new(r)))),
                )
            }),
        };
        let (kms_operation, call) = match result {
            Ok(parsed) => parsed,
            Err(e) => return error(fault, e.name()).into(),
        };
        const KNOWN: [&str; 11] = [
            "CreateKey",
            "DescribeKey",
            "Encrypt",
            "ReEncrypt",
            "GenerateDataKey",
            "GenerateDataKeyWithoutPlaintext",
            "Decrypt",
            "KmsHealthCheck",
            "CreateCustomKeyStore",
            "ConnectCustomKeyStore",
            "UpdateCustomKeyStore",
        ];
        if fault == Fault::ValidationForUnknownKmsOperation
            && !KNOWN.contains(&kms_operation.as_str())
        {
            return error(fault, ErrorName::ValidationException).into();
        }
        let Some((key, call)) = call else {
            if fault == Fault::HealthDenied {
                return error(fault, ErrorName::AccessDeniedException).into();
            }
            return self.health(fault).into();
        };
        let principal = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            v.pointer("/requestMetadata/awsPrincipalArn")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if principal.as_deref() == Some(DENIED_PRINCIPAL) && fault != Fault::PolicyIgnored {
            return error(fault, ErrorName::AccessDeniedException).into();
        }
        let Some(entry) = self.keys.get(key.as_str()) else {
            return error(fault, ErrorName::KeyNotFoundException).into();
        };
        match call {
            Body::Metadata => {
                if !self.within_quota() {
                    return if fault == Fault::ThrottleByDropping {
                        Reply::Drop
                    } else {
                        error(fault, ErrorName::ThrottlingException).into()
                    };
                }
                if !entry.enabled && fault == Fault::DisabledMetadataError {
                    return error(fault, ErrorName::InvalidStateException).into();
                }
                let mut usage = Vec::new();
                if entry.encrypt {
                    usage.push("ENCRYPT");
                }
                if entry.decrypt {
                    usage.push("DECRYPT");
                }
                let status = if entry.enabled { "ENABLED" } else { "DISABLED" };
                json_reply(&json!({"keySpec": "AES_256", "keyUsage": usage, "keyStatus": status}))
                    .into()
            }
            Body::Encrypt(r) => self.encrypt(fault, entry, &r).into(),
            Body::Decrypt(r) => decrypt(fault, entry, &r).into(),
        }
    }

    fn health(&self, fault: Fault) -> Answer {
        let (size, nodes) = if fault == Fault::HealthFleetEmpty {
            (0, json!([]))
        } else {
            (
                1,
                json!([{"id": "node-1", "model": "aes-gcm in memory", "healthStatus": "ACTIVE"}]),
            )
        };
        json_reply(&json!({
            "xksProxyFleetSize": size,
            "xksProxyVendor": "xks-conformance tests",
            "xksProxyModel": "faulty proxy 1",
            "ekmVendor": "none",
            "ekmFleetDetails": nodes,
        }))
    }

    fn encrypt(&self, fault: Fault, entry: &KeyEntry, r: &EncryptRequest) -> Answer {
        if !entry.enabled {
            return error(fault, ErrorName::InvalidStateException);
        }
        if !entry.encrypt && fault != Fault::IgnoresKeyUsage {
            return error(fault, ErrorName::InvalidKeyUsageException);
        }
        let cdiv_requested = r.ciphertext_data_integrity_value_algorithm.is_some();
        if cdiv_requested && !entry.decrypt {
            // The verification decrypt of the spec's CDIV sequence needs DECRYPT.
            return error(fault, ErrorName::InvalidKeyUsageException);
        }
        if fault == Fault::SmallPlaintextLimit && r.plaintext.len() > 4096 {
            return error(fault, ErrorName::InternalException);
        }
        let aad = r
            .additional_authenticated_data
            .as_deref()
            .unwrap_or_default();
        let mut iv = [0_u8; 12];
        if fault == Fault::IvReuse {
            let n = self.counter.fetch_add(1, Ordering::Relaxed) % 16;
            iv[11] = u8::try_from(n).unwrap();
        } else {
            getrandom::fill(&mut iv).unwrap();
        }
        let Some(gcm_aad) = gcm_aad(fault, aad, &METADATA) else {
            return error(fault, ErrorName::UnsupportedOperationException);
        };
        let mut ciphertext = r.plaintext.as_bytes().to_vec();
        let tag = entry
            .cipher
            .encrypt_inout_detached(&Nonce::from(iv), &gcm_aad, ciphertext.as_mut_slice().into())
            .unwrap();
        let tag: [u8; 16] = tag.into();
        let mut cdiv =
            xks_protocol::ciphertext_data_integrity_value(aad, &METADATA, &iv, &ciphertext, &tag);
        if fault == Fault::WrongCdiv {
            cdiv[0] ^= 0xff;
        }
        let mut shown_ciphertext = ciphertext.clone();
        if fault == Fault::TagOnCiphertext {
            shown_ciphertext.extend_from_slice(&tag);
        }
        let mut body = json!({
            "ciphertext": B64.encode(&shown_ciphertext),
            "ciphertextMetadata": B64.encode(METADATA),
            "initializationVector": B64.encode(iv),
            "authenticationTag": B64.encode(tag),
        });
        if cdiv_requested || fault == Fault::CdivAlways {
            body["ciphertextDataIntegrityValue"] = json!(B64.encode(cdiv));
        }
        json_reply(&body)
    }
}

/// An answer, or a dropped request.
enum Reply {
    Answer(Answer),
    Drop,
}

impl From<Answer> for Reply {
    fn from(answer: Answer) -> Self {
        Self::Answer(answer)
    }
}

enum Body {
    Metadata,
    Encrypt(Box<EncryptRequest>),
    Decrypt(Box<DecryptRequest>),
}

fn decrypt(fault: Fault, entry: &KeyEntry, r: &DecryptRequest) -> Answer {
    if !entry.enabled {
        return error(fault, ErrorName::InvalidStateException);
    }
    if !entry.decrypt && fault != Fault::IgnoresKeyUsage {
        return error(fault, ErrorName::InvalidKeyUsageException);
    }
    let aad = r
        .additional_authenticated_data
        .as_deref()
        .unwrap_or_default();
    let metadata = r.ciphertext_metadata.as_deref().unwrap_or_default();
    let Some(gcm_aad) = gcm_aad(fault, aad, metadata) else {
        return error(fault, ErrorName::UnsupportedOperationException);
    };
    // This key manager only does 12-byte IVs; any other IV cannot have come from it.
    let Ok(iv) = <[u8; 12]>::try_from(r.initialization_vector.as_slice()) else {
        return error(fault, ErrorName::InvalidCiphertextException);
    };
    let mut plaintext = r.ciphertext.clone();
    let opened = entry.cipher.decrypt_inout_detached(
        &Nonce::from(iv),
        &gcm_aad,
        plaintext.as_mut_slice().into(),
        &Tag::from(r.authentication_tag),
    );
    if opened.is_err() {
        return error(fault, ErrorName::InvalidCiphertextException);
    }
    json_reply(&json!({"plaintext": B64.encode(&plaintext)}))
}

/// The GCM AAD under `fault`: the spec's layout, or a broken one.
fn gcm_aad(fault: Fault, aad: &[u8], metadata: &[u8]) -> Option<Vec<u8>> {
    match fault {
        Fault::MetadataNotBound => compose_gcm_aad(aad, &[]).ok(),
        Fault::AadMetadataConcatenated => Some([aad, metadata].concat()),
        _ => compose_gcm_aad(aad, metadata).ok(),
    }
}

fn key_of(operation: &Operation) -> Option<&KeyId> {
    match operation {
        Operation::Health => None,
        Operation::Metadata(k) | Operation::Encrypt(k) | Operation::Decrypt(k) => Some(k),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", http::HeaderValue::from_static(content_type));
    r
}

fn json_reply(body: &Value) -> Answer {
    reply(StatusCode::OK, "application/json", body.to_string().into())
}

/// An error answer for `name`, as `fault` bends it.
fn error(fault: Fault, name: ErrorName) -> Answer {
    let mut status = name.http_status();
    if fault == Fault::ErrorStatusMismatch && name == ErrorName::KeyNotFoundException {
        status = 400;
    }
    let status = StatusCode::from_u16(status).unwrap();
    match fault {
        Fault::ErrorBodyNotJson => reply(status, "text/plain", format!("error: {name}").into()),
        Fault::NonAsciiErrorMessage => reply(
            status,
            "application/json",
            json!({"errorName": name.as_str(), "errorMessage": "clé inconnue — ünknown"})
                .to_string()
                .into(),
        ),
        _ => reply(
            status,
            "application/json",
            XksError::with_message(name, "faulty proxy says no")
                .to_json_body()
                .into(),
        ),
    }
}
