//! Step 1: parsing the `Authorization` header.

use std::fmt;

use crate::error::{VerifyError, VerifyErrorKind};
use crate::v4::Scope;
use crate::{ALGORITHM, SCOPE_TERMINATOR};

/// Longest region name accepted in a credential scope.
const MAX_REGION_LEN: usize = 64;

/// A syntactically valid `Authorization` header value, borrowed from it.
///
/// [`parse_authorization`] checks the syntax and the shape of the credential scope; policy
/// (the service name, the allowed regions, the required signed headers) is checked by the
/// [`Verifier`](crate::Verifier). `Debug` does not show the signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedAuthorization<'a> {
    access_key_id: &'a str,
    scope: Scope<'a>,
    signed_headers: &'a str,
    signature: [u8; 32],
}

// === impl ParsedAuthorization ===

impl<'a> ParsedAuthorization<'a> {
    /// The access key id from the credential scope. Not checked against any format.
    pub fn access_key_id(&self) -> &'a str {
        self.access_key_id
    }

    /// The scope date, `YYYYMMDD` (eight digits; not checked as a calendar date).
    pub fn scope_date(&self) -> &'a str {
        self.scope.date
    }

    /// The scope region: 1 to 64 characters of `a-z`, `0-9` and `-`.
    pub fn region(&self) -> &'a str {
        self.scope.region
    }

    /// The scope service name (non-empty; `kms-xks-proxy` for XKS).
    pub fn service(&self) -> &'a str {
        self.scope.service
    }

    /// The `SignedHeaders` list as sent: lower-case names joined by `;`, strictly ascending.
    pub fn signed_headers(&self) -> &'a str {
        self.signed_headers
    }

    /// The signed header names, in order.
    pub fn signed_header_names(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        self.signed_headers.split(';')
    }

    pub(crate) fn scope(&self) -> &Scope<'a> {
        &self.scope
    }

    pub(crate) fn signature(&self) -> &[u8; 32] {
        &self.signature
    }
}

impl fmt::Debug for ParsedAuthorization<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedAuthorization")
            .field("access_key_id", &self.access_key_id)
            .field("scope", &self.scope)
            .field("signed_headers", &self.signed_headers)
            .field("signature", &format_args!("** redacted **"))
            .finish()
    }
}

/// Parses an `Authorization` header value of the form
///
/// ```text
/// AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request, SignedHeaders=<a;b;c>, Signature=<64 lower-case hex>
/// ```
///
/// The three components may come in any order, each exactly once; spaces around the commas
/// are optional. `SignedHeaders` must be lower-case header names in strictly ascending order
/// (so no duplicates). The error kinds are `MalformedAuthorization`, `UnsupportedAlgorithm`
/// and `MalformedScope`.
///
/// This is the entry point for fuzzing the header parser: it accepts any string, never
/// panics, and does not allocate unless it fails.
///
/// ```
/// let header = "AWS4-HMAC-SHA256 Credential=AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_request, \
///               SignedHeaders=host;x-amz-date, \
///               Signature=5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7";
/// let parsed = xks_sigv4::parse_authorization(header)?;
/// assert_eq!(parsed.access_key_id(), "AKIAI2SFODNN7EXAMPLE");
/// assert_eq!(parsed.region(), "us-east-1");
/// assert_eq!(parsed.signed_header_names().collect::<Vec<_>>(), ["host", "x-amz-date"]);
///
/// let err = xks_sigv4::parse_authorization("Basic dXNlcjpwYXNz").unwrap_err();
/// assert_eq!(err.kind(), xks_sigv4::VerifyErrorKind::UnsupportedAlgorithm);
/// # Ok::<(), xks_sigv4::VerifyError>(())
/// ```
pub fn parse_authorization(value: &str) -> Result<ParsedAuthorization<'_>, VerifyError> {
    let value = value.trim_matches(is_space);
    if value.is_empty() {
        return Err(VerifyError::malformed_authorization("the header is empty"));
    }
    let (algorithm, components) = match value.split_once(is_space) {
        Some((algorithm, rest)) => (algorithm, rest),
        None => (value, ""),
    };
    if algorithm != ALGORITHM {
        return Err(VerifyError::with_value(
            VerifyErrorKind::UnsupportedAlgorithm,
            algorithm,
        ));
    }

    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for component in components.split(',') {
        let component = component.trim_matches(is_space);
        let Some((name, component_value)) = component.split_once('=') else {
            return Err(VerifyError::malformed_authorization(
                if component.is_empty() {
                    "an empty component"
                } else {
                    "a component without '='"
                },
            ));
        };
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => return Err(VerifyError::malformed_authorization("an unknown component")),
        };
        if slot.replace(component_value).is_some() {
            return Err(VerifyError::malformed_authorization(
                "a duplicated component",
            ));
        }
    }
    let credential = credential
        .ok_or_else(|| VerifyError::malformed_authorization("no Credential component"))?;
    let signed_headers = signed_headers
        .ok_or_else(|| VerifyError::malformed_authorization("no SignedHeaders component"))?;
    let signature =
        signature.ok_or_else(|| VerifyError::malformed_authorization("no Signature component"))?;

    let (access_key_id, scope) = parse_credential(credential)?;
    check_signed_headers(signed_headers)?;
    let signature = parse_signature(signature)?;
    Ok(ParsedAuthorization {
        access_key_id,
        scope,
        signed_headers,
        signature,
    })
}

fn is_space(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// `<akid>/<yyyymmdd>/<region>/<service>/aws4_request`.
fn parse_credential(credential: &str) -> Result<(&str, Scope<'_>), VerifyError> {
    let mut parts = credential.split('/');
    let (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(VerifyError::malformed_scope(
            "it must have five '/'-separated parts",
        ));
    };
    if terminator != SCOPE_TERMINATOR {
        return Err(VerifyError::malformed_scope("it must end in aws4_request"));
    }
    if access_key_id.is_empty() {
        return Err(VerifyError::malformed_scope("the access key id is empty"));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(VerifyError::malformed_scope("the date must be YYYYMMDD"));
    }
    if !is_valid_region(region) {
        return Err(VerifyError::malformed_scope(
            "the region must be 1 to 64 characters of a-z, 0-9 and '-'",
        ));
    }
    if service.is_empty() {
        return Err(VerifyError::malformed_scope("the service is empty"));
    }
    Ok((
        access_key_id,
        Scope {
            date,
            region,
            service,
        },
    ))
}

/// Whether `region` is an acceptable scope region: 1 to 64 characters of `a-z`, `0-9`, `-`.
pub(crate) fn is_valid_region(region: &str) -> bool {
    (1..=MAX_REGION_LEN).contains(&region.len())
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Lower-case header-name tokens, separated by `;`, strictly ascending.
fn check_signed_headers(list: &str) -> Result<(), VerifyError> {
    let mut previous: Option<&str> = None;
    for name in list.split(';') {
        if name.is_empty() {
            return Err(VerifyError::malformed_authorization(
                "SignedHeaders has an empty header name",
            ));
        }
        if !name.bytes().all(is_lowercase_token_byte) {
            return Err(VerifyError::malformed_authorization(
                "SignedHeaders must hold lower-case header names",
            ));
        }
        if previous.is_some_and(|previous| previous >= name) {
            return Err(VerifyError::malformed_authorization(
                "SignedHeaders must be sorted, without duplicates",
            ));
        }
        previous = Some(name);
    }
    Ok(())
}

/// An RFC 9110 `tchar` other than an upper-case letter.
fn is_lowercase_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase()
        || b.is_ascii_digit()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Exactly 64 lower-case hex digits.
fn parse_signature(signature: &str) -> Result<[u8; 32], VerifyError> {
    let is_lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if signature.len() != 64 || !signature.bytes().all(is_lower_hex) {
        return Err(VerifyError::malformed_authorization(
            "Signature must be 64 lower-case hex digits",
        ));
    }
    let mut out = [0_u8; 32];
    hex::decode_to_slice(signature, &mut out).map_err(|_| {
        VerifyError::malformed_authorization("Signature must be 64 lower-case hex digits")
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests;
