//! The four XKS operations, signed as KMS signs them, with their answers parsed,
//! validated and checked as KMS checks them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use xks_protocol::{
    DecryptRequest, DecryptResponse, EncryptRequest, EncryptResponse, HealthRequest,
    HealthResponse, KeyId, MetadataRequest, MetadataResponse, Operation, OperationKind,
    ResponseError, Route, XksError,
};
use xks_sigv4::Signer;

use crate::error::{NotXksAnswer, XksErrorAnswer};
use crate::{Client, Error, RawRequest, RawResponse, TlsInfo};

/// The part of `XksProxyUriPath` every XKS path ends with.
const API_ROOT: &str = "/kms/xks/v1";

/// An XKS client for one external key store: an endpoint (through its [`Client`]), a URI
/// path, and a SigV4 [`Signer`]. Cloning is cheap.
///
/// Every call signs its request KMS-style (`host;x-amz-date`, or whatever the signer is
/// set to), sends it within the client's timeout, and turns the answer into the
/// operation's response type or an [`Error`]:
///
/// - a 200 whose body passes the response type's `from_json` validation and, for Encrypt
///   and Decrypt, KMS's own checks (ciphertext as long as the plaintext, and the
///   ciphertext data integrity value present and correct when requested, fact sheet §5);
/// - an [`Error::Xks`] for an XKS error body, [`Error::NotXks`] for anything that is not
///   an XKS answer, [`Error::Protocol`] for a 200 that breaks the spec.
#[derive(Clone)]
pub struct XksClient {
    client: Client,
    prefix: Arc<str>,
    signer: Arc<Signer>,
}

/// A successful answer: the parsed body and facts about the exchange.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    /// The parsed, validated body.
    pub body: T,
    /// Status, HTTP version, TLS parameters and latency.
    pub exchange: Exchange,
}

/// Facts about one exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    status: u16,
    version: &'static str,
    tls: Option<Arc<TlsInfo>>,
    elapsed: Duration,
}

// === impl XksClient ===

impl XksClient {
    /// A client for the key store at `uri_path` (KMS's `XksProxyUriPath`:
    /// `[/<prefix>]/kms/xks/v1`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] if `uri_path` does not end in `/kms/xks/v1` or its prefix is
    /// not a valid XKS path prefix.
    pub fn new(client: Client, uri_path: &str, signer: Signer) -> Result<Self, Error> {
        let prefix = uri_path.strip_suffix(API_ROOT).ok_or_else(|| {
            Error::config(format!("URI path {uri_path:?} must end with {API_ROOT}"))
        })?;
        Route::new(prefix, Operation::Health)
            .map_err(|e| Error::config_with(format!("URI path {uri_path:?}"), e))?;
        Ok(Self {
            client,
            prefix: prefix.into(),
            signer: Arc::new(signer),
        })
    }

    /// The underlying client, for raw requests to the same endpoint and pool.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The URI path, `[/<prefix>]/kms/xks/v1`.
    pub fn uri_path(&self) -> String {
        format!("{}{API_ROOT}", self.prefix)
    }

    /// The signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// The request path of `operation` under this key store's URI path.
    pub fn path_of(&self, operation: &Operation) -> String {
        let mut path = self.prefix.to_string();
        path.push_str(API_ROOT);
        match operation {
            Operation::Health => path.push_str("/health"),
            Operation::Metadata(id) => path.push_str(&format!("/keys/{id}/metadata")),
            Operation::Encrypt(id) => path.push_str(&format!("/keys/{id}/encrypt")),
            Operation::Decrypt(id) => path.push_str(&format!("/keys/{id}/decrypt")),
        }
        path
    }

    /// A request for `operation` with `body`, signed as KMS signs, now: the starting
    /// point of a conformance tester's variations.
    ///
    /// # Errors
    ///
    /// [`Error::Sign`] if signing fails.
    pub fn signed_request(
        &self,
        operation: &Operation,
        body: impl Into<bytes::Bytes>,
    ) -> Result<RawRequest, Error> {
        let mut request = RawRequest::post(self.path_of(operation), body);
        request.sign(self.client.endpoint(), &self.signer, SystemTime::now())?;
        Ok(request)
    }

    /// GetHealthStatus.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; see the type's documentation.
    pub async fn get_health_status(
        &self,
        request: &HealthRequest,
    ) -> Result<Answer<HealthResponse>, Error> {
        let raw = self.call(&Operation::Health, request).await?;
        let body = interpret(OperationKind::Health, &raw, HealthResponse::from_json)?;
        Ok(Answer::new(body, &raw))
    }

    /// GetKeyMetadata of `key`.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; see the type's documentation.
    pub async fn get_key_metadata(
        &self,
        key: &KeyId,
        request: &MetadataRequest,
    ) -> Result<Answer<MetadataResponse>, Error> {
        let raw = self
            .call(&Operation::Metadata(key.clone()), request)
            .await?;
        let body = interpret(
            OperationKind::GetKeyMetadata,
            &raw,
            MetadataResponse::from_json,
        )?;
        Ok(Answer::new(body, &raw))
    }

    /// Encrypt under `key`.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; [`Error::Protocol`] also when the ciphertext is not as long as the
    /// plaintext, or when the request asked for a ciphertext data integrity value and the
    /// answer's is missing or wrong.
    pub async fn encrypt(
        &self,
        key: &KeyId,
        request: &EncryptRequest,
    ) -> Result<Answer<EncryptResponse>, Error> {
        let raw = self.call(&Operation::Encrypt(key.clone()), request).await?;
        let body = interpret(OperationKind::Encrypt, &raw, EncryptResponse::from_json)?;
        check_encrypt(request, &body)?;
        Ok(Answer::new(body, &raw))
    }

    /// Decrypt under `key`.
    ///
    /// # Errors
    ///
    /// Any [`Error`]; [`Error::Protocol`] also when the plaintext is not as long as the
    /// ciphertext.
    pub async fn decrypt(
        &self,
        key: &KeyId,
        request: &DecryptRequest,
    ) -> Result<Answer<DecryptResponse>, Error> {
        let raw = self.call(&Operation::Decrypt(key.clone()), request).await?;
        let body = interpret(OperationKind::Decrypt, &raw, DecryptResponse::from_json)?;
        if body.plaintext.len() != request.ciphertext.len() {
            return Err(Error::protocol(
                Some(OperationKind::Decrypt),
                format!(
                    "the plaintext is {} bytes for a ciphertext of {} bytes",
                    body.plaintext.len(),
                    request.ciphertext.len()
                ),
            ));
        }
        Ok(Answer::new(body, &raw))
    }

    async fn call(
        &self,
        operation: &Operation,
        request: &impl Serialize,
    ) -> Result<RawResponse, Error> {
        let body = serde_json::to_vec(request)
            .map_err(|e| Error::sign("the request does not serialize", Some(Box::new(e))))?;
        let request = self.signed_request(operation, body)?;
        self.client.send(request).await
    }
}

impl fmt::Debug for XksClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XksClient")
            .field("client", &self.client)
            .field("uri_path", &self.uri_path())
            .field("signer", &self.signer)
            .finish()
    }
}

/// KMS's checks of an Encrypt answer beyond the format (fact sheet §3.2, §5).
fn check_encrypt(request: &EncryptRequest, answer: &EncryptResponse) -> Result<(), Error> {
    let violation = |what: String| Error::protocol(Some(OperationKind::Encrypt), what);
    if answer.ciphertext.len() != request.plaintext.len() {
        return Err(violation(format!(
            "the ciphertext is {} bytes for a plaintext of {} bytes",
            answer.ciphertext.len(),
            request.plaintext.len()
        )));
    }
    if request.ciphertext_data_integrity_value_algorithm.is_some() {
        let aad = request
            .additional_authenticated_data
            .as_deref()
            .unwrap_or_default();
        match answer.ciphertext_data_integrity_value {
            None => {
                return Err(violation(
                    "`ciphertextDataIntegrityValue` is missing though the request asked for it"
                        .to_owned(),
                ));
            }
            Some(cdiv) if cdiv != answer.integrity_value(aad) => {
                return Err(violation(
                    "`ciphertextDataIntegrityValue` is not SHA-256(AAD || metadata || IV || \
                     ciphertext || tag)"
                        .to_owned(),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Turns an answer into the operation's body or an error (see [`XksClient`]).
pub(crate) fn interpret<T>(
    operation: OperationKind,
    raw: &RawResponse,
    parse: impl FnOnce(&[u8]) -> Result<T, ResponseError>,
) -> Result<T, Error> {
    let status = raw.status().as_u16();
    if status == 200 {
        return match parse(raw.body()) {
            Ok(body) if raw.is_json() => Ok(body),
            Ok(_) => Err(Error::protocol(
                Some(operation),
                format!(
                    "Content-Type is {}, not application/json",
                    raw.content_type()
                        .map_or_else(|| "absent".to_owned(), |ct| format!("{ct:?}"))
                ),
            )),
            Err(e) if is_json_object(raw.body()) => {
                Err(Error::protocol(Some(operation), e.to_string()))
            }
            Err(_) => Err(Error::NotXks(NotXksAnswer::new(
                status,
                raw.content_type(),
                raw.body(),
            ))),
        };
    }
    match XksError::from_json(raw.body()) {
        Ok(error) => Err(Error::Xks(XksErrorAnswer::new(
            status,
            error,
            Some(operation),
        ))),
        Err(_) => Err(Error::NotXks(NotXksAnswer::new(
            status,
            raw.content_type(),
            raw.body(),
        ))),
    }
}

fn is_json_object(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(body).is_ok()
}

// === impl Answer ===

impl<T> Answer<T> {
    fn new(body: T, raw: &RawResponse) -> Self {
        Self {
            body,
            exchange: Exchange {
                status: raw.status().as_u16(),
                version: raw.version_str(),
                tls: raw.tls().cloned(),
                elapsed: raw.elapsed(),
            },
        }
    }
}

// === impl Exchange ===

impl Exchange {
    /// The HTTP status (200).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// `HTTP/1.1` or `HTTP/2`.
    pub fn http_version(&self) -> &'static str {
        self.version
    }

    /// What the connection's TLS handshake negotiated; `None` over plain HTTP.
    pub fn tls(&self) -> Option<&Arc<TlsInfo>> {
        self.tls.as_ref()
    }

    /// From sending (connecting included) to the end of the answer.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}
