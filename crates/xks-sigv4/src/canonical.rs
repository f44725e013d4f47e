//! Step 2: the canonical request.
//!
//! ```text
//! <method> \n <canonical URI> \n <canonical query> \n <canonical headers> \n <signed headers> \n <payload hash>
//! ```
//!
//! This follows the standard (non-S3) SigV4 rules, as aws-sigv4's signer applies them with
//! its default settings: the path is normalised (dot segments and empty segments removed)
//! and then percent-encoded again ("double encoding"); query parameters are decoded,
//! re-encoded and sorted; the canonical headers are exactly those in `SignedHeaders`, with
//! values trimmed of spaces, runs of spaces collapsed, and repeated headers joined with `,`;
//! the payload hash is the hex SHA-256 of the raw body.

use http::header::HOST;

use crate::error::{VerifyError, VerifyErrorKind};
use crate::request::SignedRequest;
use crate::v4::sha256_hex;
use crate::verifier::UriPathNormalization;

/// Builds the canonical request for `request`, with the canonical headers taken from
/// `signed_headers` (the validated `SignedHeaders` list). Fails with `SignedHeaderMissing`
/// if a listed header is absent.
pub(crate) fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &str,
    normalization: UriPathNormalization,
) -> Result<Vec<u8>, VerifyError> {
    let mut out = Vec::with_capacity(256 + request.path.len());
    out.extend_from_slice(request.method.as_bytes());
    out.push(b'\n');
    push_canonical_uri(&mut out, request.path, normalization);
    out.push(b'\n');
    out.extend_from_slice(canonical_query(request.query).as_bytes());
    out.push(b'\n');
    push_canonical_headers(&mut out, request, signed_headers)?;
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash(request.body).as_bytes());
    Ok(out)
}

/// The hex SHA-256 of the raw body.
pub(crate) fn payload_hash(body: &[u8]) -> String {
    sha256_hex(body)
}

/// The canonical URI of a received (already percent-encoded) path.
#[cfg(test)]
pub(crate) fn canonical_uri(path: &str, normalization: UriPathNormalization) -> String {
    let mut out = Vec::with_capacity(path.len() + 1);
    push_canonical_uri(&mut out, path, normalization);
    // Only ASCII is written.
    String::from_utf8(out).unwrap_or_default()
}

fn push_canonical_uri(out: &mut Vec<u8>, path: &str, normalization: UriPathNormalization) {
    match normalization {
        UriPathNormalization::Enabled => {
            let normalized = normalize_path(path);
            percent_encode(out, &normalized, EncodeSet::Path);
        }
        UriPathNormalization::Disabled => {
            if path.is_empty() {
                out.push(b'/');
            } else {
                percent_encode(out, path, EncodeSet::Path);
            }
        }
    }
}

/// RFC 3986 §5.2.4 dot-segment removal, plus dropping empty segments (`//`), always
/// returning an absolute path. A trailing `/`, `/.` or `/..` leaves a trailing slash.
pub(crate) fn normalize_path(path: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    if path.starts_with('/') && !path.contains("//") && !path.contains('.') {
        return Cow::Borrowed(path);
    }
    let mut kept: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                kept.pop();
            }
            segment => kept.push(segment),
        }
    }
    let trailing_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut out = String::with_capacity(path.len() + 1);
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    Cow::Owned(out)
}

/// The canonical query string: parameters split on `&`, each decoded (`+` is a space,
/// `%XX` a byte, invalid UTF-8 replaced), re-encoded with only unreserved characters left
/// as they are, sorted by encoded name then value, and joined as `name=value` with `&`.
pub(crate) fn canonical_query(query: Option<&str>) -> String {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return String::new();
    };
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode_query_part(name), encode_query_part(value))
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() * 2);
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

fn encode_query_part(part: &str) -> String {
    let decoded = form_decode(part);
    let decoded = String::from_utf8_lossy(&decoded);
    let mut out = Vec::with_capacity(decoded.len());
    percent_encode(&mut out, &decoded, EncodeSet::Query);
    // Only ASCII is written.
    String::from_utf8(out).unwrap_or_default()
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` is a byte, and a
/// `%` not followed by two hex digits stays as it is.
fn form_decode(part: &str) -> Vec<u8> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let low = bytes.get(i + 2).and_then(|&l| hex_value(l));
                if let (Some(high), Some(low)) = (high, low) {
                    out.push(high << 4 | low);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum EncodeSet {
    /// Keep unreserved characters and `/`.
    Path,
    /// Keep unreserved characters only.
    Query,
}

/// Percent-encodes every byte except RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// and, for paths, `/`. A `%` becomes `%25`, which is what makes the path encoding "double".
fn percent_encode(out: &mut Vec<u8>, input: &str, set: EncodeSet) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in input.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (b == b'/' && set == EncodeSet::Path);
        if keep {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0x0f)]]);
        }
    }
}

/// `name:value\n` for each signed header, in `SignedHeaders` order (already sorted).
fn push_canonical_headers(
    out: &mut Vec<u8>,
    request: &SignedRequest<'_>,
    signed_headers: &str,
) -> Result<(), VerifyError> {
    for name in signed_headers.split(';') {
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        let mut values = request.headers.get_all(name).iter().peekable();
        if values.peek().is_none() {
            match (name == HOST.as_str(), request.authority) {
                (true, Some(authority)) => push_trimmed(out, authority.as_bytes()),
                _ => {
                    return Err(VerifyError::with_value(
                        VerifyErrorKind::SignedHeaderMissing,
                        name,
                    ));
                }
            }
        }
        for (index, value) in values.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            push_trimmed(out, value.as_bytes());
        }
        out.push(b'\n');
    }
    Ok(())
}

/// Appends `value` without leading and trailing spaces and with each run of spaces
/// collapsed to one. Only the space character counts, as in aws-sigv4.
fn push_trimmed(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != b' ');
    let end = value.iter().rposition(|&b| b != b' ');
    let (Some(start), Some(end)) = (start, end) else {
        return;
    };
    let mut previous_space = false;
    for &b in &value[start..=end] {
        let space = b == b' ';
        if !(space && previous_space) {
            out.push(b);
        }
        previous_space = space;
    }
}

#[cfg(test)]
mod tests;
