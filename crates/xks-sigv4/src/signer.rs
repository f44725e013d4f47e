//! Client-side signing for our own XKS clients (the conformance tester, examples, tests),
//! built on aws-sigv4.

use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::authorization::is_valid_region;
use crate::credentials::{AccessKeyId, Credential};
use crate::date::{days_from_civil, unix_seconds};
use crate::error::{SignError, SignErrorKind};
use crate::{SERVICE, X_AMZ_DATE};

/// The provider name aws-credential-types records for credentials built here.
const PROVIDER_NAME: &str = "xks-sigv4";

/// Signs requests to an XKS proxy with SigV4 (`AWS4-HMAC-SHA256`, service `kms-xks-proxy`)
/// the way KMS does, using aws-sigv4 with its default settings: the payload hash goes into
/// the canonical request and no `x-amz-content-sha256` header is added; the path is
/// normalised and double-encoded.
///
/// `Debug` does not show the secret.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use xks_sigv4::{Credential, OutgoingRequest, Signer};
///
/// let credential = Credential::from_config("AKIAI2SFODNN7EXAMPLE", "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE")?;
/// let signer = Signer::new(&credential, "us-east-1")?;
/// let body = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck","kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
/// let request = OutgoingRequest::new("POST", "https://xks.example.com/example/prefix/kms/xks/v1/health", body);
/// let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_672_531_200); // 2023-01-01T00:00:00Z
///
/// let headers = signer.sign(&request, time)?;
/// assert_eq!(headers.x_amz_date(), "20230101T000000Z");
/// assert!(headers.authorization().ends_with(
///     "SignedHeaders=host;x-amz-date, Signature=5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7"
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Signer {
    access_key_id: AccessKeyId,
    identity: Identity,
    region: Box<str>,
    signed_headers: SignedHeaderSet,
}

/// Which headers a [`Signer`] signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SignedHeaderSet {
    /// `host;x-amz-date`, as KMS signs. The default.
    #[default]
    HostAndDate,
    /// `content-type;host;x-amz-date`, as `curl --aws-sigv4` signs when given a
    /// `Content-Type` header (the official XKS test client does this). The request must have
    /// a content type.
    ContentTypeHostAndDate,
}

/// A request to sign: method, absolute URL, content type and body.
#[derive(Clone, Copy)]
pub struct OutgoingRequest<'a> {
    method: &'a str,
    url: &'a str,
    content_type: Option<&'a str>,
    body: &'a [u8],
}

/// The headers that carry a signature: `Authorization` and `X-Amz-Date`. Add both to the
/// request.
///
/// `Debug` shows the date but not the `Authorization` value.
#[derive(Clone, PartialEq, Eq)]
pub struct SignatureHeaders {
    authorization: String,
    x_amz_date: String,
}

// === impl Signer ===

impl Signer {
    /// A signer for `credential` and `region` (e.g. `"us-east-1"`), signing
    /// [`SignedHeaderSet::HostAndDate`]. The region must be 1 to 64 characters of `a-z`,
    /// `0-9` and `-`.
    pub fn new(credential: &Credential, region: impl Into<String>) -> Result<Self, SignError> {
        let region = region.into();
        if !is_valid_region(&region) {
            return Err(SignError::new(SignErrorKind::InvalidRegion));
        }
        let credentials = Credentials::new(
            credential.access_key_id().as_str(),
            credential.secret_access_key().expose_secret(),
            None,
            None,
            PROVIDER_NAME,
        );
        Ok(Self {
            access_key_id: credential.access_key_id().clone(),
            identity: credentials.into(),
            region: region.into_boxed_str(),
            signed_headers: SignedHeaderSet::HostAndDate,
        })
    }

    /// Sets which headers are signed.
    #[must_use]
    pub fn with_signed_headers(mut self, set: SignedHeaderSet) -> Self {
        self.signed_headers = set;
        self
    }

    /// The access key id that signs.
    pub fn access_key_id(&self) -> &AccessKeyId {
        &self.access_key_id
    }

    /// The region that signs.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs `request` as of `time`, which must lie between 1970 and 9999 (UTC) and should be
    /// `SystemTime::now()` outside tests. The `host` value is the URL's host, with the port
    /// only if it is not the scheme's default, as HTTP clients send it.
    pub fn sign(
        &self,
        request: &OutgoingRequest<'_>,
        time: SystemTime,
    ) -> Result<SignatureHeaders, SignError> {
        check_url(request.url)?;
        check_time(time)?;
        let mut headers: Vec<(&str, &str)> = Vec::with_capacity(1);
        match self.signed_headers {
            SignedHeaderSet::HostAndDate => {}
            SignedHeaderSet::ContentTypeHostAndDate => {
                let content_type = request
                    .content_type
                    .ok_or_else(|| SignError::new(SignErrorKind::MissingContentType))?;
                if HeaderValue::from_str(content_type).is_err() {
                    return Err(SignError::new(SignErrorKind::InvalidHeaderValue));
                }
                headers.push((CONTENT_TYPE.as_str(), content_type));
            }
        }
        let signable = SignableRequest::new(
            request.method,
            request.url,
            headers.into_iter(),
            SignableBody::Bytes(request.body),
        )
        .map_err(|e| SignError::with_source(SignErrorKind::Signing, e))?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name(SERVICE)
            .time(time)
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError::with_source(SignErrorKind::Signing, e))?
            .into();
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SignError::with_source(SignErrorKind::Signing, e))?
            .into_parts();
        let (added, _params) = instructions.into_parts();
        let find = |name: &str| {
            added
                .iter()
                .find(|header| header.name().eq_ignore_ascii_case(name))
                .map(|header| header.value().to_owned())
                .ok_or_else(|| SignError::new(SignErrorKind::Signing))
        };
        Ok(SignatureHeaders {
            authorization: find(AUTHORIZATION.as_str())?,
            x_amz_date: find(X_AMZ_DATE)?,
        })
    }

    /// Signs an `http::Request` whose URI is absolute and whose body is in memory, then
    /// inserts `Authorization` and `X-Amz-Date` (replacing any present). With
    /// [`SignedHeaderSet::ContentTypeHostAndDate`] the request's `Content-Type` is signed.
    pub fn sign_request<B: AsRef<[u8]>>(
        &self,
        request: &mut http::Request<B>,
        time: SystemTime,
    ) -> Result<(), SignError> {
        let url = request.uri().to_string();
        let content_type = match request.headers().get(CONTENT_TYPE) {
            Some(value) => Some(
                value
                    .to_str()
                    .map_err(|_| SignError::new(SignErrorKind::InvalidHeaderValue))?,
            ),
            None => None,
        };
        let outgoing = OutgoingRequest {
            method: request.method().as_str(),
            url: &url,
            content_type,
            body: request.body().as_ref(),
        };
        let signature = self.sign(&outgoing, time)?;
        signature.apply_to(request.headers_mut())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("access_key_id", &self.access_key_id.as_str())
            .field("secret_access_key", &format_args!("** redacted **"))
            .field("region", &&*self.region)
            .field("signed_headers", &self.signed_headers)
            .finish()
    }
}

/// An absolute `http` or `https` URL with a non-empty host (aws-sigv4 needs the host).
fn check_url(url: &str) -> Result<(), SignError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| SignError::with_source(SignErrorKind::InvalidUrl, e))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|host| !host.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err(SignError::new(SignErrorKind::InvalidUrl))
    }
}

/// Between 1970-01-01 and 9999-12-31 (UTC), so `X-Amz-Date` has a four-digit year.
fn check_time(time: SystemTime) -> Result<(), SignError> {
    let last = (days_from_civil(10_000, 1, 1) * 86_400) - 1;
    if (0..=last).contains(&unix_seconds(time)) {
        Ok(())
    } else {
        Err(SignError::new(SignErrorKind::InvalidTime))
    }
}

// === impl OutgoingRequest ===

impl<'a> OutgoingRequest<'a> {
    /// A request without content type. `url` is absolute and already percent-encoded, e.g.
    /// `https://xks.example.com/prefix/kms/xks/v1/keys/k1/encrypt`.
    pub fn new(method: &'a str, url: &'a str, body: &'a [u8]) -> Self {
        Self {
            method,
            url,
            content_type: None,
            body,
        }
    }

    /// Sets the `Content-Type` value, signed only with
    /// [`SignedHeaderSet::ContentTypeHostAndDate`].
    #[must_use]
    pub fn with_content_type(mut self, content_type: &'a str) -> Self {
        self.content_type = Some(content_type);
        self
    }
}

impl fmt::Debug for OutgoingRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingRequest")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

// === impl SignatureHeaders ===

impl SignatureHeaders {
    /// The `Authorization` header value.
    pub fn authorization(&self) -> &str {
        &self.authorization
    }

    /// The `X-Amz-Date` header value, `YYYYMMDD'T'HHMMSS'Z'`.
    pub fn x_amz_date(&self) -> &str {
        &self.x_amz_date
    }

    /// `(name, value)` pairs with lower-case names: `authorization`, then `x-amz-date`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            (AUTHORIZATION.as_str(), self.authorization.as_str()),
            (X_AMZ_DATE, self.x_amz_date.as_str()),
        ]
        .into_iter()
    }

    /// Inserts both headers into `headers`, replacing existing values.
    pub fn apply_to(&self, headers: &mut HeaderMap) -> Result<(), SignError> {
        for (name, value) in self.iter() {
            let value = HeaderValue::from_str(value)
                .map_err(|e| SignError::with_source(SignErrorKind::InvalidHeaderValue, e))?;
            headers.insert(HeaderName::from_static(name), value);
        }
        Ok(())
    }
}

impl fmt::Debug for SignatureHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureHeaders")
            .field("authorization", &format_args!("** redacted **"))
            .field("x_amz_date", &self.x_amz_date)
            .finish()
    }
}

#[cfg(test)]
mod tests;
