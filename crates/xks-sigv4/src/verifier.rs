//! The server-side SigV4 verifier and its settings.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST};
use subtle::ConstantTimeEq;

use crate::authorization::{ParsedAuthorization, parse_authorization};
use crate::canonical::canonical_request;
use crate::clock::{Clock, SystemClock};
use crate::credentials::{AccessKeyId, CredentialStore};
use crate::date::{AmzDate, unix_seconds};
use crate::error::{SkewDirection, VerifyError, VerifyErrorKind};
use crate::request::SignedRequest;
use crate::v4::{signature, signing_key, string_to_sign};
use crate::{SERVICE, X_AMZ_DATE};

/// The default limit on the difference between `X-Amz-Date` and the server clock: five
/// minutes, either way.
pub const DEFAULT_MAX_CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);

/// Verifies AWS SigV4 (`AWS4-HMAC-SHA256`) signatures of requests to an XKS proxy, service
/// `kms-xks-proxy`.
///
/// A request passes when all of these hold, checked in this order:
///
/// 1. it has exactly one `Authorization` header, which [`parse_authorization`] accepts;
/// 2. the credential scope names service `kms-xks-proxy` and a region the
///    [`RegionPolicy`] allows;
/// 3. the access key id is in the [`CredentialStore`];
/// 4. it has exactly one well-formed `X-Amz-Date` header, whose day is the scope date, and
///    which is at most the maximum skew (default [`DEFAULT_MAX_CLOCK_SKEW`]) away from the
///    [`Clock`];
/// 5. `SignedHeaders` includes `host` and `x-amz-date`, and every listed header is present
///    (`host` may come from the authority, see [`SignedRequest`]);
/// 6. the signature recomputed over the canonical request equals the one in the header,
///    compared in constant time.
///
/// Any failure is a [`VerifyError`]; all of them mean XKS `AuthenticationFailedException`.
/// On a signature mismatch the verifier emits a `tracing` event at `TRACE` level with the
/// canonical request and string to sign it computed, to debug a client's signer; it logs
/// nothing else (logging failures is the caller's job).
///
/// Derived signing keys are cached per credential, day and region (see
/// [`SigningKeyCaching`]), so a request normally costs two SHA-256 passes (body and canonical
/// request) and one HMAC.
///
/// `verify` takes `&self` and is safe to call from many threads. The credentials can be
/// swapped at any time with [`replace_credentials`](Self::replace_credentials); requests
/// being verified at that moment finish with the store they started with.
///
/// **Conformance:** implements fact sheet §8.2 (SigV4 as XKS uses it), including the derived
/// checks on service, scope date and constant-time comparison, and §8.4 (rotation).
#[derive(Debug)]
pub struct Verifier {
    credentials: ArcSwap<CredentialStore>,
    region_policy: RegionPolicy,
    max_clock_skew: Duration,
    uri_path_normalization: UriPathNormalization,
    key_caching: SigningKeyCaching,
    clock: Arc<dyn Clock>,
}

/// Which credential-scope regions a [`Verifier`] accepts.
///
/// KMS signs with the region it calls from. The XKS spec neither requires nor forbids
/// checking it (fact sheet §8.2, §12.5); the AWS reference proxy pins one region.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RegionPolicy {
    /// Any syntactically valid region. The default.
    #[default]
    Any,
    /// Only these regions, compared exactly (e.g. `"us-east-1"`).
    AllowList(Vec<String>),
}

/// Whether the verifier normalises the request path before encoding it into the canonical
/// URI, as non-S3 SigV4 signers (aws-sigv4, the AWS SDKs, botocore) do.
///
/// Valid XKS paths contain no `.` or empty segments, so both settings agree on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UriPathNormalization {
    /// Remove `.` and `..` segments and empty segments (RFC 3986 §5.2.4) before encoding.
    /// Matches the signers. The default.
    #[default]
    Enabled,
    /// Encode the path exactly as received.
    Disabled,
}

/// Whether the verifier caches derived signing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SigningKeyCaching {
    /// Keep the signing keys that verified a request, per credential, day and region (a few
    /// per credential at most, wiped on eviction). The default.
    #[default]
    Enabled,
    /// Derive the signing key for every request (four more HMACs).
    Disabled,
}

/// Who signed a request that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    access_key_id: AccessKeyId,
    region: Box<str>,
    credential_label: Arc<str>,
}

// === impl Verifier ===

impl Verifier {
    /// A verifier for `credentials`, with the defaults: any region, five minutes of skew,
    /// path normalisation on, key caching on, the system clock.
    pub fn new(credentials: CredentialStore) -> Self {
        Self {
            credentials: ArcSwap::from_pointee(credentials),
            region_policy: RegionPolicy::Any,
            max_clock_skew: DEFAULT_MAX_CLOCK_SKEW,
            uri_path_normalization: UriPathNormalization::Enabled,
            key_caching: SigningKeyCaching::Enabled,
            clock: Arc::new(SystemClock),
        }
    }

    /// Sets which regions are accepted.
    #[must_use]
    pub fn with_region_policy(mut self, policy: RegionPolicy) -> Self {
        self.region_policy = policy;
        self
    }

    /// Sets the largest accepted difference between `X-Amz-Date` and the clock, either way.
    /// Compared in whole seconds: a request exactly at the limit passes, one second more
    /// fails.
    #[must_use]
    pub fn with_max_clock_skew(mut self, max: Duration) -> Self {
        self.max_clock_skew = max;
        self
    }

    /// Sets the clock, e.g. a [`FixedClock`](crate::FixedClock) in tests.
    #[must_use]
    pub fn with_clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets whether the path is normalised before it is encoded.
    #[must_use]
    pub fn with_uri_path_normalization(mut self, mode: UriPathNormalization) -> Self {
        self.uri_path_normalization = mode;
        self
    }

    /// Sets whether derived signing keys are cached.
    #[must_use]
    pub fn with_signing_key_caching(mut self, caching: SigningKeyCaching) -> Self {
        self.key_caching = caching;
        self
    }

    /// Replaces the credential store. Requests already being verified keep using the store
    /// they loaded; later requests see the new one.
    pub fn replace_credentials(&self, credentials: CredentialStore) {
        self.credentials.store(Arc::new(credentials));
    }

    /// The current credential store.
    pub fn credentials(&self) -> Arc<CredentialStore> {
        self.credentials.load_full()
    }

    /// The region policy.
    pub fn region_policy(&self) -> &RegionPolicy {
        &self.region_policy
    }

    /// The maximum clock skew.
    pub fn max_clock_skew(&self) -> Duration {
        self.max_clock_skew
    }

    /// The checks that need only the headers: the Authorization header's syntax,
    /// algorithm, service, region, a known access key id, `X-Amz-Date` and its skew,
    /// and that `host` and `x-amz-date` are signed.
    ///
    /// A server runs this before reading the body, so a request that cannot
    /// authenticate never has its body read. [`Verifier::verify`] repeats these
    /// checks; passing `precheck` proves nothing on its own.
    pub fn precheck(&self, headers: &HeaderMap) -> Result<(), VerifyError> {
        self.check_headers(headers).map(|_| ())
    }

    fn check_headers<'h>(
        &self,
        headers: &'h HeaderMap,
    ) -> Result<(ParsedAuthorization<'h>, AmzDate<'h>), VerifyError> {
        let header = authorization_header(headers)?;
        let auth = parse_authorization(header)?;
        let scope = auth.scope();
        if scope.service != SERVICE {
            return Err(VerifyError::with_value(
                VerifyErrorKind::WrongService,
                scope.service,
            ));
        }
        if !self.region_policy.allows(scope.region) {
            return Err(VerifyError::with_value(
                VerifyErrorKind::RegionNotAllowed,
                scope.region,
            ));
        }
        if !self.credentials.load().contains(auth.access_key_id()) {
            return Err(VerifyError::with_value(
                VerifyErrorKind::UnknownAccessKeyId,
                auth.access_key_id(),
            ));
        }

        let amz_date = amz_date_header(headers)?;
        if amz_date.date_part() != scope.date {
            return Err(VerifyError::new(VerifyErrorKind::ScopeDateMismatch));
        }
        self.check_skew(&amz_date)?;

        for required in [HOST.as_str(), X_AMZ_DATE] {
            if !auth.signed_header_names().any(|name| name == required) {
                return Err(VerifyError::with_value(
                    VerifyErrorKind::RequiredHeaderNotSigned,
                    required,
                ));
            }
        }
        Ok((auth, amz_date))
    }

    /// Verifies the SigV4 signature of `request`. See the [type docs](Self) for the checks.
    pub fn verify(&self, request: &SignedRequest<'_>) -> Result<Authenticated, VerifyError> {
        let (auth, amz_date) = self.check_headers(request.headers)?;
        let scope = auth.scope();
        let store = self.credentials.load();
        // The store may have been replaced since the header checks.
        let entry = store.entry(auth.access_key_id()).ok_or_else(|| {
            VerifyError::with_value(VerifyErrorKind::UnknownAccessKeyId, auth.access_key_id())
        })?;

        let creq = canonical_request(request, auth.signed_headers(), self.uri_path_normalization)?;
        let sts = string_to_sign(amz_date.as_str(), scope, &creq);

        let secret = entry.credential().secret_access_key();
        let cached = match self.key_caching {
            SigningKeyCaching::Enabled => entry.cache().get(amz_date.day(), scope.region),
            SigningKeyCaching::Disabled => None,
        };
        let was_cached = cached.is_some();
        let key = cached.unwrap_or_else(|| signing_key(secret, scope));
        let expected = signature(&key, &sts);
        if !bool::from(expected.ct_eq(auth.signature())) {
            // What the client should have signed, to compare with its own canonical request.
            // Neither holds a secret, a signature or the body (only its hash).
            tracing::trace!(
                canonical_request = %String::from_utf8_lossy(&creq),
                string_to_sign = %sts,
                "SigV4 signature mismatch"
            );
            return Err(VerifyError::new(VerifyErrorKind::SignatureMismatch));
        }
        if !was_cached && self.key_caching == SigningKeyCaching::Enabled {
            entry.cache().insert(amz_date.day(), scope.region, &key);
        }

        let credential = entry.credential();
        Ok(Authenticated {
            access_key_id: credential.access_key_id().clone(),
            region: scope.region.into(),
            credential_label: Arc::clone(credential.label_arc()),
        })
    }

    fn check_skew(&self, amz_date: &AmzDate<'_>) -> Result<(), VerifyError> {
        let now = unix_seconds(self.clock.now());
        let request = amz_date.unix_seconds();
        let max = self.max_clock_skew.as_secs();
        let skew = request.abs_diff(now);
        let direction = if request >= now {
            SkewDirection::Ahead
        } else {
            SkewDirection::Behind
        };
        if skew > max {
            return Err(VerifyError::clock_skew(
                skew,
                direction,
                self.max_clock_skew,
            ));
        }
        Ok(())
    }
}

/// The single `Authorization` header, as text.
fn authorization_header(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::new(VerifyErrorKind::MissingAuthorization));
    };
    if values.next().is_some() {
        return Err(VerifyError::malformed_authorization(
            "the request has more than one Authorization header",
        ));
    }
    value
        .to_str()
        .map_err(|_| VerifyError::malformed_authorization("the header is not visible ASCII"))
}

/// The single, well-formed `X-Amz-Date` header.
fn amz_date_header(headers: &HeaderMap) -> Result<AmzDate<'_>, VerifyError> {
    let mut values = headers.get_all(X_AMZ_DATE).iter();
    let Some(value) = values.next() else {
        return Err(VerifyError::new(VerifyErrorKind::MissingDate));
    };
    if values.next().is_some() {
        return Err(VerifyError::with_reason(
            VerifyErrorKind::MalformedDate,
            "the request has more than one X-Amz-Date header",
        ));
    }
    let text = value
        .to_str()
        .map_err(|_| VerifyError::with_reason(VerifyErrorKind::MalformedDate, "it is not ASCII"))?;
    AmzDate::parse(text.trim_matches(' '))
        .map_err(|reason| VerifyError::with_reason(VerifyErrorKind::MalformedDate, reason))
}

// === impl RegionPolicy ===

impl RegionPolicy {
    /// Accept only `regions`.
    pub fn allow_list<I>(regions: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::AllowList(regions.into_iter().map(Into::into).collect())
    }

    /// Whether requests signed for `region` are accepted.
    pub fn allows(&self, region: &str) -> bool {
        match self {
            Self::Any => true,
            Self::AllowList(regions) => regions.iter().any(|allowed| allowed == region),
        }
    }
}

// === impl Authenticated ===

impl Authenticated {
    /// The access key id that signed the request.
    pub fn access_key_id(&self) -> &AccessKeyId {
        &self.access_key_id
    }

    /// The region of the credential scope, i.e. the AWS region KMS called from.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The label of the matching credential, for logs (see
    /// [`Credential::with_label`](crate::Credential::with_label)).
    pub fn credential_label(&self) -> &str {
        &self.credential_label
    }
}

#[cfg(test)]
mod tests;
