//! An independent SigV4 computation for the raw mode: any service name, region, time,
//! signed-header list or scope date, so a conformance tester can build every negative
//! case. It is written from the SigV4 algorithm with `hmac` and `sha2`, separately from
//! xks-sigv4's aws-sigv4-based `Signer` and from the proxy's verifier, and tested against
//! both and against the spec's example (fact sheet §8.5).

use std::fmt;
use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};
use xks_sigv4::Credential;
use zeroize::Zeroizing;

use crate::time::{unix_seconds, utc_parts};
use crate::{Endpoint, Error};

type HmacSha256 = Hmac<Sha256>;

const BLOCK_LEN: usize = 64;

/// Settings of one raw-mode signature. `Debug` redacts the secret.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use xks_client::{RawRequest, SigV4Params, SignedHeaders, Endpoint};
/// use xks_sigv4::Credential;
///
/// let credential = Credential::from_config("AKIAI2SFODNN7EXAMPLE", "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE")?;
/// let endpoint = Endpoint::parse("https://xks.example.com")?;
/// let body = r#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
/// let mut request = RawRequest::post("/example/prefix/kms/xks/v1/health", body);
///
/// // The spec's example (fact sheet §8.5), signed KMS-style.
/// let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_672_531_200);
/// request.sign_with(&endpoint, &SigV4Params::new(&credential, "us-east-1").with_time(time))?;
/// assert!(request.authorization().unwrap().ends_with(
///     "Signature=5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7"
/// ));
///
/// // A negative case: signed for service "kms", which a proxy must reject.
/// let params = SigV4Params::new(&credential, "us-east-1").with_service("kms").with_time(time);
/// request.sign_with(&endpoint, &params)?;
/// assert!(request.authorization().unwrap().contains("/us-east-1/kms/aws4_request"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SigV4Params {
    credential: Credential,
    region: String,
    service: String,
    time: Option<SystemTime>,
    signed_headers: SignedHeaders,
    scope_date: Option<String>,
}

/// Which headers a raw-mode signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignedHeaders {
    /// `host;x-amz-date`, as KMS signs. The default.
    #[default]
    HostAndDate,
    /// `content-type;host;x-amz-date`, as `curl --aws-sigv4` signs with a content type.
    ContentTypeHostAndDate,
    /// Any list of header names (case-insensitive). A listed header the request lacks
    /// is signed with an empty value; `host` is the request's `Host` header or the
    /// endpoint's authority.
    List(Vec<String>),
}

// === impl SigV4Params ===

impl SigV4Params {
    /// Service `kms-xks-proxy`, signed at the moment of signing, `host;x-amz-date`, the
    /// scope date taken from the signing time.
    pub fn new(credential: &Credential, region: impl Into<String>) -> Self {
        Self {
            credential: credential.clone(),
            region: region.into(),
            service: xks_sigv4::SERVICE.to_owned(),
            time: None,
            signed_headers: SignedHeaders::HostAndDate,
            scope_date: None,
        }
    }

    /// Signs for another service name (e.g. `kms`, which a proxy must reject).
    #[must_use]
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// Signs for another region.
    #[must_use]
    pub fn with_region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Signs as of `time` (e.g. 10 minutes in the past) instead of now.
    #[must_use]
    pub fn with_time(mut self, time: SystemTime) -> Self {
        self.time = Some(time);
        self
    }

    /// Sets the signed headers.
    #[must_use]
    pub fn with_signed_headers(mut self, headers: SignedHeaders) -> Self {
        self.signed_headers = headers;
        self
    }

    /// Puts `yyyymmdd` in the credential scope instead of the signing date (a scope that
    /// disagrees with `X-Amz-Date`, fact sheet §14 check 29).
    #[must_use]
    pub fn with_scope_date(mut self, yyyymmdd: impl Into<String>) -> Self {
        self.scope_date = Some(yyyymmdd.into());
        self
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }
}

impl fmt::Debug for SigV4Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigV4Params")
            .field("credential", &self.credential)
            .field("region", &self.region)
            .field("service", &self.service)
            .field("time", &self.time)
            .field("signed_headers", &self.signed_headers)
            .field("scope_date", &self.scope_date)
            .finish()
    }
}

/// Signs: inserts `X-Amz-Date`, then `Authorization`, computed over `method`,
/// `path_and_query`, the listed headers of `headers`, and `body`.
pub(crate) fn sign(
    params: &SigV4Params,
    endpoint: &Endpoint,
    method: &str,
    path_and_query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
) -> Result<(), Error> {
    let time = params.time.unwrap_or_else(SystemTime::now);
    let (date, clock) = utc_parts(unix_seconds(time));
    let amz_date = format!("{date}T{clock}Z");
    headers.insert("x-amz-date", header_value(&amz_date)?);
    let scope_date = params.scope_date.as_deref().unwrap_or(&date);
    let scope = format!(
        "{scope_date}/{}/{}/aws4_request",
        params.region, params.service
    );

    let mut names: Vec<String> = match &params.signed_headers {
        SignedHeaders::HostAndDate => vec!["host".into(), "x-amz-date".into()],
        SignedHeaders::ContentTypeHostAndDate => {
            vec!["content-type".into(), "host".into(), "x-amz-date".into()]
        }
        SignedHeaders::List(list) => list.iter().map(|n| n.to_ascii_lowercase()).collect(),
    };
    names.sort();
    names.dedup();

    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut canonical = String::with_capacity(256 + path.len());
    canonical.push_str(method);
    canonical.push('\n');
    canonical.push_str(path);
    canonical.push('\n');
    canonical.push_str(&canonical_query(query));
    canonical.push('\n');
    for name in &names {
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(&header_text(name, headers, endpoint));
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(&names.join(";"));
    canonical.push('\n');
    canonical.push_str(&hex::encode(Sha256::digest(body)));

    let string_to_sign = format!(
        "{}\n{amz_date}\n{scope}\n{}",
        xks_sigv4::ALGORITHM,
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let secret = Zeroizing::new(format!(
        "AWS4{}",
        params.credential.secret_access_key().expose_secret()
    ));
    let k_date = Zeroizing::new(hmac(secret.as_bytes(), scope_date.as_bytes()));
    let k_region = Zeroizing::new(hmac(k_date.as_ref(), params.region.as_bytes()));
    let k_service = Zeroizing::new(hmac(k_region.as_ref(), params.service.as_bytes()));
    let k_signing = Zeroizing::new(hmac(k_service.as_ref(), b"aws4_request"));
    let signature = hex::encode(hmac(k_signing.as_ref(), string_to_sign.as_bytes()));
    let authorization = format!(
        "{} Credential={}/{scope}, SignedHeaders={}, Signature={signature}",
        xks_sigv4::ALGORITHM,
        params.credential.access_key_id(),
        names.join(";"),
    );
    headers.insert(http::header::AUTHORIZATION, header_value(&authorization)?);
    Ok(())
}

fn header_value(text: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(text).map_err(|e| {
        Error::sign(
            "a signing value is not a valid header value",
            Some(Box::new(e)),
        )
    })
}

/// The header's canonical value: all values joined with `,`, trimmed, inner runs of
/// spaces collapsed. `host` falls back to the endpoint's authority.
fn header_text(name: &str, headers: &HeaderMap, endpoint: &Endpoint) -> String {
    let values: Vec<String> = headers
        .get_all(name)
        .iter()
        .map(|v| collapse(&String::from_utf8_lossy(v.as_bytes())))
        .collect();
    if values.is_empty() && name == "host" {
        return endpoint.authority();
    }
    values.join(",")
}

fn collapse(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Query parameters sorted by name, then value; taken as already percent-encoded.
fn canonical_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort_unstable();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// HMAC-SHA256 of `data` under `key`, with RFC 2104's key handling done here so the
/// infallible `KeyInit::new` applies.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = Zeroizing::new([0_u8; BLOCK_LEN]);
    if key.len() > BLOCK_LEN {
        let digest = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(key)));
        block[..digest.len()].copy_from_slice(digest.as_ref());
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut mac = <HmacSha256 as KeyInit>::new((&*block).into());
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests;
