//! The KMS side: what KMS checks and sends for each of its operations on an external key
//! store, and what it makes of the answers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use sha2::{Digest, Sha256};
use xks_client::{
    Client, ClientConfig, ClientIdentity, Endpoint, Scheme, TlsInfo, TrustRoots, XksClient,
};
use xks_protocol::{
    CdivAlgorithm, DecryptRequest, EncryptRequest, EncryptionAlgorithm, HealthRequest,
    HealthResponse, HealthStatus, KeyId, KeySpec, KeyStatus, KeyUsage, MetadataRequest, Plaintext,
    RequestMetadata,
};
use xks_sigv4::{Credential, Signer};
use zeroize::Zeroizing;

use crate::diagnosis::{Diagnosis, KmsApi, diagnose};
use crate::envelope::{Blob, EncryptionContext, InternalKey, external_aad};
use crate::{Error, Settings};

/// KMS's plaintext limit for Encrypt.
pub const MAX_PLAINTEXT: usize = 4096;

/// A simulated KMS bound to one external key store.
#[derive(Debug)]
pub struct MockKms {
    settings: Settings,
    xks: XksClient,
    store_id: String,
    warnings: Vec<String>,
}

/// What `create-key-store` and `connect` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyStoreReport {
    /// `CustomKeyStoreId`, derived from the endpoint and path.
    pub custom_key_store_id: String,
    /// `CustomKeyStoreName`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_key_store_name: Option<String>,
    /// Always `EXTERNAL_KEY_STORE`.
    pub custom_key_store_type: &'static str,
    /// `XksProxyUriEndpoint`.
    pub xks_proxy_uri_endpoint: String,
    /// `XksProxyUriPath`.
    pub xks_proxy_uri_path: String,
    /// Always `PUBLIC_ENDPOINT` here.
    pub xks_proxy_connectivity: &'static str,
    /// `CONNECTED`.
    pub connection_state: &'static str,
    /// The TLS session.
    pub tls: Option<TlsReport>,
    /// The GetHealthStatus answer.
    pub health: HealthReport,
    /// Things KMS would accept that deserve attention.
    pub warnings: Vec<String>,
}

/// A TLS session as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TlsReport {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// IANA cipher suite name.
    pub cipher_suite: String,
    /// Whether the suite is one of the four the XKS spec lists.
    pub spec_cipher_suite: bool,
    /// ALPN protocol chosen.
    pub alpn: Option<String>,
    /// HTTP version used.
    pub http_version: String,
    /// The server certificate.
    pub certificate: Option<CertificateReport>,
}

/// The server certificate as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CertificateReport {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<String>,
    /// Start of validity (RFC 3339).
    pub not_before: String,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// Whole days of validity left.
    pub days_left: i64,
}

/// A GetHealthStatus answer as reported.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthReport {
    /// The `kmsOperation` sent.
    pub kms_operation: &'static str,
    /// Round trip, connecting included.
    pub latency_ms: f64,
    /// `xksProxyFleetSize`.
    pub xks_proxy_fleet_size: u32,
    /// `xksProxyVendor`.
    pub xks_proxy_vendor: String,
    /// `xksProxyModel`.
    pub xks_proxy_model: String,
    /// `ekmVendor`.
    pub ekm_vendor: String,
    /// `ekmFleetDetails`.
    pub ekm_fleet_details: Vec<EkmReport>,
}

/// One key manager of a health answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EkmReport {
    /// `id`.
    pub id: String,
    /// `model`.
    pub model: String,
    /// `healthStatus`.
    pub health_status: String,
}

/// What `create-key` reports, shaped like KMS's `KeyMetadata`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyReport {
    /// The KMS key id (a UUID derived from the key store and the external key id).
    pub key_id: String,
    /// The KMS key ARN.
    pub arn: String,
    /// `Enabled`.
    pub key_state: &'static str,
    /// `EXTERNAL_KEY_STORE`.
    pub origin: &'static str,
    /// The key store.
    pub custom_key_store_id: String,
    /// `SYMMETRIC_DEFAULT`.
    pub key_spec: &'static str,
    /// `ENCRYPT_DECRYPT`.
    pub key_usage: &'static str,
    /// The external key id.
    pub xks_key_id: String,
    /// What GetKeyMetadata said.
    pub external_key: ExternalKeyReport,
}

/// The GetKeyMetadata answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ExternalKeyReport {
    /// `keySpec`.
    pub key_spec: String,
    /// `keyUsage`.
    pub key_usage: Vec<String>,
    /// `keyStatus`.
    pub key_status: String,
}

/// What `encrypt`, `generate-data-key` and `re-encrypt` return.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptOutput {
    /// The ciphertext blob, Base64.
    pub ciphertext_blob: String,
    /// The KMS key ARN.
    pub key_id: String,
    /// `SYMMETRIC_DEFAULT`.
    pub encryption_algorithm: &'static str,
}

/// What `decrypt` returns. `Debug` shows the plaintext's length only.
pub struct DecryptOutput {
    /// The KMS key ARN.
    pub key_id: String,
    /// The plaintext, wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
}

/// What `generate-data-key` returns.
pub struct DataKeyOutput {
    /// The encrypted data key.
    pub encrypted: EncryptOutput,
    /// The data key, unless `without_plaintext`.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
}

// === impl MockKms ===

impl MockKms {
    /// Checks the settings as KMS's `CreateCustomKeyStore` validates its parameters, and
    /// builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::Kms`] with KMS's `ValidationException` for a malformed endpoint, URI path
    /// or credential; [`Error::Usage`] for unusable local files (CA, client certificate).
    pub fn new(settings: Settings, operation: KmsApi) -> Result<Self, Error> {
        let invalid = |message: String| {
            Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "ValidationException",
                message,
            )))
        };
        let mut warnings = Vec::new();
        let endpoint = check_endpoint(&settings.endpoint, &mut warnings).map_err(invalid)?;
        check_uri_path(&settings.uri_path).map_err(invalid)?;
        let credential =
            Credential::from_config(&settings.access_key_id, settings.secret_access_key())
                .map_err(|e| invalid(format!("XksProxyAuthenticationCredential: {e}")))?;
        let signer = Signer::new(&credential, &settings.region)
            .map_err(|e| invalid(format!("region {:?}: {e}", settings.region)))?;
        let mut config = ClientConfig::new(endpoint)
            .with_timeout(settings.timeout)
            .with_http_versions(settings.http);
        if let Some(ca) = &settings.ca_file {
            config = config
                .with_trust(TrustRoots::from_pem_file(ca).map_err(|e| Error::usage(e.chain()))?);
        }
        if let Some((cert, key)) = &settings.client_identity {
            config = config.with_client_identity(
                ClientIdentity::from_pem_files(cert, key).map_err(|e| Error::usage(e.chain()))?,
            );
        }
        if let Some(addr) = settings.connect_to {
            config = config.with_connect_to(addr);
        }
        let client = Client::new(config).map_err(|e| Error::usage(e.chain()))?;
        let xks = XksClient::new(client, &settings.uri_path, signer)
            .map_err(|e| Error::usage(e.chain()))?;
        let digest = Sha256::digest(format!("{}|{}", settings.endpoint, settings.uri_path));
        let store_id = format!("cks-{}", &hex::encode(digest)[..17]);
        Ok(Self {
            settings,
            xks,
            store_id,
            warnings,
        })
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The XKS client (for the load generator).
    pub fn xks(&self) -> &XksClient {
        &self.xks
    }

    /// The simulated `CustomKeyStoreId`.
    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// The ARN of the KMS key over external key `xks_key_id` in this key store:
    /// deterministic, so `encrypt` needs no state from `create-key`.
    pub fn key_arn(&self, xks_key_id: &str) -> String {
        let digest = Sha256::digest(format!("{}|{xks_key_id}", self.store_id));
        let mut b = [0u8; 16];
        b.copy_from_slice(&digest[..16]);
        b[6] = (b[6] & 0x0f) | 0x80; // UUID version 8: custom
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 9562 variant
        format!(
            "arn:aws:kms:{}:{}:key/{}",
            self.settings.region,
            self.settings.account_id,
            uuid_text(&b)
        )
    }

    /// `requestMetadata` as KMS sends it for `operation`.
    pub fn request_metadata(&self, operation: KmsApi, key_arn: Option<&str>) -> RequestMetadata {
        let keyed = key_arn.is_some();
        RequestMetadata {
            aws_principal_arn: (operation != KmsApi::KmsHealthCheck
                && !operation.is_key_store_operation())
            .then(|| self.settings.principal_arn.clone()),
            kms_key_arn: key_arn.map(str::to_owned),
            kms_operation: operation.as_str().to_owned(),
            kms_request_id: request_id(),
            kms_via_service: if keyed {
                self.settings.via_service.clone()
            } else {
                None
            },
            ..RequestMetadata::default()
        }
    }

    /// `CreateCustomKeyStore` or `ConnectCustomKeyStore` (or a health poll): GetHealthStatus
    /// with the matching `kmsOperation`, every field of the answer checked, the TLS session
    /// reported.
    ///
    /// # Errors
    ///
    /// [`Error::Kms`] with KMS's diagnosis.
    pub async fn check_key_store(
        &self,
        operation: KmsApi,
        name: Option<&str>,
    ) -> Result<KeyStoreReport, Error> {
        let request = HealthRequest {
            request_metadata: self.request_metadata(operation, None),
        };
        let answer = self
            .xks
            .get_health_status(&request)
            .await
            .map_err(|e| Error::Kms(Box::new(diagnose(operation, &e))))?;
        let mut warnings = self.warnings.clone();
        let body = &answer.body;
        if body
            .ekm_fleet_details
            .iter()
            .all(|d| d.health_status == HealthStatus::Unavailable)
        {
            return Err(Error::Kms(Box::new(
                Diagnosis::kms(
                    operation,
                    "XksProxyUriUnreachableException",
                    "The external key store proxy reports that all external key manager \
                     instances are UNAVAILABLE. Check the external key manager.",
                )
                .with_code("XKS_PROXY_NOT_REACHABLE"),
            )));
        }
        for detail in &body.ekm_fleet_details {
            if detail.health_status != HealthStatus::Active {
                warnings.push(format!(
                    "key manager {} is {}",
                    detail.id, detail.health_status
                ));
            }
        }
        if body.ekm_fleet_details.len() == 1 {
            warnings.push("one external key manager instance: no redundancy".to_owned());
        }
        if body.xks_proxy_fleet_size == 1 {
            warnings.push("one proxy instance (xksProxyFleetSize 1): no redundancy".to_owned());
        }
        let latency = answer.exchange.elapsed();
        if latency > Duration::from_millis(100) {
            warnings.push(format!(
                "GetHealthStatus took {} ms of KMS's 250 ms budget",
                latency.as_millis()
            ));
        }
        let tls = answer
            .exchange
            .tls()
            .map(|info| tls_report(info, answer.exchange.http_version(), &mut warnings));
        Ok(KeyStoreReport {
            custom_key_store_id: self.store_id.clone(),
            custom_key_store_name: name.map(str::to_owned),
            custom_key_store_type: "EXTERNAL_KEY_STORE",
            xks_proxy_uri_endpoint: self.settings.endpoint.clone(),
            xks_proxy_uri_path: self.settings.uri_path.clone(),
            xks_proxy_connectivity: "PUBLIC_ENDPOINT",
            connection_state: "CONNECTED",
            tls,
            health: health_report(operation, &answer.body, latency),
            warnings,
        })
    }

    /// `CreateKey` with an external key: GetKeyMetadata, accepted only for `AES_256` with
    /// `ENCRYPT` and `DECRYPT`, `ENABLED` (fact sheet §3.1).
    ///
    /// # Errors
    ///
    /// [`Error::Kms`]: KMS's `ValidationException` for a malformed id, its
    /// `XksKeyInvalidConfigurationException` for a key it refuses, or the diagnosis of a
    /// failed call.
    pub async fn create_key(&self, xks_key_id: &str) -> Result<KeyReport, Error> {
        let op = KmsApi::CreateKey;
        let key = parse_key_id(op, xks_key_id)?;
        let request = MetadataRequest {
            request_metadata: self.request_metadata(op, None),
        };
        let answer = self
            .xks
            .get_key_metadata(&key, &request)
            .await
            .map_err(|e| Error::Kms(Box::new(diagnose(op, &e))))?;
        let md = answer.body;
        let mut problems = Vec::new();
        if md.key_spec != KeySpec::Aes256 {
            problems.push(format!("its keySpec is {}, not AES_256", md.key_spec));
        }
        for usage in [KeyUsage::Encrypt, KeyUsage::Decrypt] {
            if !md.key_usage.contains(&usage) {
                problems.push(format!("its keyUsage lacks {usage}"));
            }
        }
        if md.key_status != KeyStatus::Enabled {
            problems.push(format!("its keyStatus is {}", md.key_status));
        }
        if !problems.is_empty() {
            return Err(Error::Kms(Box::new(Diagnosis::kms(
                op,
                "XksKeyInvalidConfigurationException",
                format!(
                    "The external key {xks_key_id} cannot back a KMS key: {}. KMS needs an \
                     enabled AES_256 key that allows ENCRYPT and DECRYPT.",
                    problems.join("; ")
                ),
            ))));
        }
        let arn = self.key_arn(xks_key_id);
        Ok(KeyReport {
            key_id: arn.rsplit('/').next().unwrap_or_default().to_owned(),
            arn,
            key_state: "Enabled",
            origin: "EXTERNAL_KEY_STORE",
            custom_key_store_id: self.store_id.clone(),
            key_spec: "SYMMETRIC_DEFAULT",
            key_usage: "ENCRYPT_DECRYPT",
            xks_key_id: xks_key_id.to_owned(),
            external_key: ExternalKeyReport {
                key_spec: md.key_spec.to_string(),
                key_usage: md.key_usage.iter().map(ToString::to_string).collect(),
                key_status: md.key_status.to_string(),
            },
        })
    }

    /// `Encrypt` (or the encrypting half of `GenerateDataKey` and `ReEncrypt`): the internal
    /// layer, then XKS Encrypt with the CDIV requested and checked.
    ///
    /// # Errors
    ///
    /// [`Error::Kms`]: KMS's `ValidationException` for an empty or too long plaintext or
    /// a malformed key id, or the diagnosis of a failed call.
    pub async fn encrypt(
        &self,
        operation: KmsApi,
        internal: &InternalKey,
        xks_key_id: &str,
        plaintext: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptOutput, Error> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "ValidationException",
                format!(
                    "Plaintext must be 1 to {MAX_PLAINTEXT} bytes, not {}.",
                    plaintext.len()
                ),
            ))));
        }
        let key = parse_key_id(operation, xks_key_id)?;
        let arn = self.key_arn(xks_key_id);
        let inner = internal
            .seal(&arn, context, plaintext)
            .map_err(|e| internal_failure(operation, &e))?;
        let request = EncryptRequest {
            request_metadata: self.request_metadata(operation, Some(&arn)),
            plaintext: Plaintext::new(inner),
            encryption_algorithm: EncryptionAlgorithm::AesGcm,
            additional_authenticated_data: Some(external_aad(&arn, context)),
            ciphertext_data_integrity_value_algorithm: Some(CdivAlgorithm::Sha256),
        };
        let answer = self
            .xks
            .encrypt(&key, &request)
            .await
            .map_err(|e| Error::Kms(Box::new(diagnose(operation, &e))))?;
        let body = answer.body;
        let blob = Blob {
            key_arn: arn.clone(),
            xks_key_id: xks_key_id.to_owned(),
            ciphertext_metadata: body.ciphertext_metadata,
            iv: body.initialization_vector,
            tag: body.authentication_tag,
            ciphertext: body.ciphertext,
        };
        Ok(EncryptOutput {
            ciphertext_blob: blob
                .to_base64()
                .map_err(|e| internal_failure(operation, &e))?,
            key_id: arn,
            encryption_algorithm: "SYMMETRIC_DEFAULT",
        })
    }

    /// `Decrypt` (or the decrypting half of `ReEncrypt`): XKS Decrypt, then the internal
    /// layer.
    ///
    /// # Errors
    ///
    /// [`Error::Kms`]: KMS's `InvalidCiphertextException` for a blob it cannot parse or
    /// whose internal layer does not authenticate, `IncorrectKeyException` if
    /// `expected_xks_key_id` does not match, or the diagnosis of a failed call.
    pub async fn decrypt(
        &self,
        operation: KmsApi,
        internal: &InternalKey,
        ciphertext_blob: &str,
        context: &EncryptionContext,
        expected_xks_key_id: Option<&str>,
    ) -> Result<DecryptOutput, Error> {
        let invalid = |what: &str| {
            Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "InvalidCiphertextException",
                format!("The ciphertext blob is not valid: {what}."),
            )))
        };
        let blob = Blob::from_base64(ciphertext_blob).map_err(|e| invalid(&e.to_string()))?;
        if let Some(expected) = expected_xks_key_id
            && expected != blob.xks_key_id
        {
            return Err(Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "IncorrectKeyException",
                format!(
                    "The ciphertext was encrypted under external key {}, not {expected}.",
                    blob.xks_key_id
                ),
            ))));
        }
        let key = KeyId::new(&blob.xks_key_id).map_err(|_| invalid("bad external key id"))?;
        let tag = blob.tag;
        let request = DecryptRequest {
            request_metadata: self.request_metadata(operation, Some(&blob.key_arn)),
            ciphertext: blob.ciphertext,
            ciphertext_metadata: blob.ciphertext_metadata,
            encryption_algorithm: EncryptionAlgorithm::AesGcm,
            additional_authenticated_data: Some(external_aad(&blob.key_arn, context)),
            initialization_vector: blob.iv,
            authentication_tag: tag,
        };
        let answer = self
            .xks
            .decrypt(&key, &request)
            .await
            .map_err(|e| Error::Kms(Box::new(diagnose(operation, &e))))?;
        let plaintext = internal
            .open(&blob.key_arn, context, answer.body.plaintext.as_bytes())
            .map_err(|e| invalid(&e.to_string()))?;
        Ok(DecryptOutput {
            key_id: blob.key_arn,
            plaintext,
        })
    }

    /// `GenerateDataKey` (`GenerateDataKeyWithoutPlaintext` when `without_plaintext`).
    ///
    /// # Errors
    ///
    /// [`Error::Kms`]: KMS's `ValidationException` for a length outside 1-1024, or as
    /// [`MockKms::encrypt`].
    pub async fn generate_data_key(
        &self,
        internal: &InternalKey,
        xks_key_id: &str,
        number_of_bytes: usize,
        without_plaintext: bool,
        context: &EncryptionContext,
    ) -> Result<DataKeyOutput, Error> {
        let operation = if without_plaintext {
            KmsApi::GenerateDataKeyWithoutPlaintext
        } else {
            KmsApi::GenerateDataKey
        };
        if !(1..=1024).contains(&number_of_bytes) {
            return Err(Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "ValidationException",
                format!("NumberOfBytes must be 1 to 1024, not {number_of_bytes}."),
            ))));
        }
        let mut key = Zeroizing::new(vec![0u8; number_of_bytes]);
        getrandom::fill(&mut key).map_err(|_| {
            Error::Kms(Box::new(Diagnosis::kms(
                operation,
                "KMSInternalException",
                "The random number generator failed.",
            )))
        })?;
        let encrypted = self
            .encrypt(operation, internal, xks_key_id, &key, context)
            .await?;
        Ok(DataKeyOutput {
            encrypted,
            plaintext: (!without_plaintext).then_some(key),
        })
    }

    /// `ReEncrypt`: decrypt under the blob's key, encrypt under `destination`.
    ///
    /// # Errors
    ///
    /// As [`MockKms::decrypt`] and [`MockKms::encrypt`].
    pub async fn re_encrypt(
        &self,
        internal: &InternalKey,
        ciphertext_blob: &str,
        source_context: &EncryptionContext,
        destination: &str,
        destination_context: &EncryptionContext,
    ) -> Result<(String, EncryptOutput), Error> {
        let op = KmsApi::ReEncrypt;
        let opened = self
            .decrypt(op, internal, ciphertext_blob, source_context, None)
            .await?;
        let sealed = self
            .encrypt(
                op,
                internal,
                destination,
                &opened.plaintext,
                destination_context,
            )
            .await?;
        Ok((opened.key_id, sealed))
    }
}

impl std::fmt::Debug for DecryptOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecryptOutput")
            .field("key_id", &self.key_id)
            .field("plaintext_len", &self.plaintext.len())
            .finish()
    }
}

impl std::fmt::Debug for DataKeyOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKeyOutput")
            .field("encrypted", &self.encrypted)
            .field("plaintext_len", &self.plaintext.as_ref().map(|p| p.len()))
            .finish()
    }
}

fn parse_key_id(operation: KmsApi, id: &str) -> Result<KeyId, Error> {
    KeyId::new(id).map_err(|e| {
        Error::Kms(Box::new(Diagnosis::kms(
            operation,
            "ValidationException",
            format!("XksKeyId {id:?} is not valid: {e}."),
        )))
    })
}

fn internal_failure(operation: KmsApi, error: &dyn std::error::Error) -> Error {
    Error::Kms(Box::new(Diagnosis::kms(
        operation,
        "KMSInternalException",
        format!("KMS failed internally: {error}."),
    )))
}

/// KMS's `XksProxyUriEndpoint` rule: `https://` and a host of `a-z A-Z 0-9 . -`, 10 to
/// 128 characters. A port is accepted with a warning, so tests can use one.
fn check_endpoint(text: &str, warnings: &mut Vec<String>) -> Result<Endpoint, String> {
    let endpoint =
        Endpoint::parse(text).map_err(|e| format!("XksProxyUriEndpoint: {}", e.chain()))?;
    if endpoint.scheme() != Scheme::Https {
        return Err("XksProxyUriEndpoint must start with https://".to_owned());
    }
    let host = endpoint.host();
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(format!(
            "XksProxyUriEndpoint host {host:?} may only contain a-z A-Z 0-9 . -"
        ));
    }
    let len = "https://".len() + host.len();
    if !(10..=128).contains(&len) {
        return Err(format!(
            "XksProxyUriEndpoint must be 10 to 128 characters, not {len}"
        ));
    }
    if let Some(port) = endpoint.explicit_port() {
        warnings.push(format!(
            "port {port} in the endpoint: KMS only connects to port 443 (use --connect-to \
             to reach a proxy elsewhere while keeping a KMS-valid endpoint)"
        ));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        warnings.push("the endpoint is an IP address; KMS needs a DNS name".to_owned());
    }
    Ok(endpoint)
}

/// KMS's `XksProxyUriPath` rule: `[/<prefix>]/kms/xks/v<1-2 digits>`, prefix characters
/// `a-z A-Z 0-9 / _ -`, 10 to 128 characters. This mock speaks version 1 only.
fn check_uri_path(path: &str) -> Result<(), String> {
    if !(10..=128).contains(&path.len()) {
        return Err(format!(
            "XksProxyUriPath must be 10 to 128 characters, not {}",
            path.len()
        ));
    }
    let Some(at) = path.rfind("/kms/xks/v") else {
        return Err("XksProxyUriPath must end with /kms/xks/v1".to_owned());
    };
    let (prefix, rest) = path.split_at(at);
    let version = &rest["/kms/xks/v".len()..];
    if version.is_empty() || version.len() > 2 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err("XksProxyUriPath must end with /kms/xks/v<version>".to_owned());
    }
    let prefix_ok = prefix.is_empty()
        || (prefix.starts_with('/')
            && prefix.len() > 1
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-')));
    if !prefix_ok {
        return Err(format!(
            "the XksProxyUriPath prefix {prefix:?} may only contain a-z A-Z 0-9 / _ -"
        ));
    }
    if version != "1" {
        return Err(format!(
            "XksProxyUriPath version v{version}: this mock speaks XKS API version 1 only"
        ));
    }
    Ok(())
}

fn tls_report(info: &Arc<TlsInfo>, http_version: &str, warnings: &mut Vec<String>) -> TlsReport {
    if !info.is_spec_cipher_suite() {
        warnings.push(format!(
            "cipher suite {} is not one of the four the XKS spec requires a proxy to offer",
            info.cipher_suite()
        ));
    }
    let certificate = info.leaf_certificate().map(|cert| {
        let days_left = cert.remaining_at(SystemTime::now()).map_or(0, |d| {
            i64::try_from(d.as_secs() / 86_400).unwrap_or(i64::MAX)
        });
        if days_left < 30 {
            warnings.push(format!(
                "the server certificate expires in {days_left} days ({})",
                cert.not_after_utc()
            ));
        }
        CertificateReport {
            subject: cert.subject().to_owned(),
            issuer: cert.issuer().to_owned(),
            dns_names: cert.dns_names().to_vec(),
            ip_addresses: cert.ip_addresses().to_vec(),
            not_before: cert.not_before_utc(),
            not_after: cert.not_after_utc(),
            days_left,
        }
    });
    TlsReport {
        version: info.protocol_version().to_owned(),
        cipher_suite: info.cipher_suite().to_owned(),
        spec_cipher_suite: info.is_spec_cipher_suite(),
        alpn: info.alpn().map(str::to_owned),
        http_version: http_version.to_owned(),
        certificate,
    }
}

/// Turns a GetHealthStatus answer into the report.
pub fn health_report(operation: KmsApi, body: &HealthResponse, latency: Duration) -> HealthReport {
    HealthReport {
        kms_operation: operation.as_str(),
        latency_ms: latency.as_secs_f64() * 1e3,
        xks_proxy_fleet_size: body.xks_proxy_fleet_size,
        xks_proxy_vendor: body.xks_proxy_vendor.clone(),
        xks_proxy_model: body.xks_proxy_model.clone(),
        ekm_vendor: body.ekm_vendor.clone(),
        ekm_fleet_details: body
            .ekm_fleet_details
            .iter()
            .map(|d| EkmReport {
                id: d.id.clone(),
                model: d.model.clone(),
                health_status: d.health_status.to_string(),
            })
            .collect(),
    }
}

/// A fresh random UUID (version 4), as KMS's request ids look.
pub fn request_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // Practically unreachable; a time-based id is still unique enough for a mock.
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = nanos.to_be_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

fn uuid_text(b: &[u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_path_rules() {
        assert!(check_uri_path("/kms/xks/v1").is_ok());
        assert!(check_uri_path("/example/prefix/kms/xks/v1").is_ok());
        assert!(
            check_uri_path("/kms/xks/v2")
                .unwrap_err()
                .contains("version 1 only")
        );
        assert!(check_uri_path("/a b/kms/xks/v1").is_err());
        assert!(check_uri_path("kms/xks/v1").is_err());
        assert!(check_uri_path("/p/kms/xks/vX").is_err());
    }

    #[test]
    fn endpoint_rules() {
        let mut warnings = Vec::new();
        assert!(check_endpoint("https://xks.example.com", &mut warnings).is_ok());
        assert!(warnings.is_empty());
        assert!(check_endpoint("http://xks.example.com", &mut warnings).is_err());
        assert!(check_endpoint("https://a", &mut warnings).is_err());
        assert!(check_endpoint("https://localhost:8443", &mut warnings).is_ok());
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn request_ids_are_uuids() {
        let id = request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, request_id());
    }
}
