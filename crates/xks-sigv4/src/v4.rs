//! The SigV4 cryptographic steps after the canonical request: string to sign, signing key and
//! signature (AWS4-HMAC-SHA256).

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::credentials::SecretAccessKey;
use crate::{ALGORITHM, SCOPE_TERMINATOR};

type HmacSha256 = Hmac<Sha256>;

/// SHA-256's block size, the length of an HMAC key block.
const BLOCK_LEN: usize = 64;

/// A derived SigV4 signing key, `kSigning`, for one (secret, day, region, service).
/// Wiped from memory on drop; `Debug` does not show it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SigningKey([u8; 32]);

/// The credential scope of a request: `<yyyymmdd>/<region>/<service>/aws4_request`, without
/// the access key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scope<'a> {
    pub(crate) date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
}

// === impl SigningKey ===

impl SigningKey {
    pub(crate) fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(** redacted **)")
    }
}

// === the pipeline steps ===

/// Lower-case hex SHA-256 of `data`: the payload hash, and the hash of the canonical request.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The string to sign:
/// `AWS4-HMAC-SHA256 \n <X-Amz-Date> \n <scope> \n hex(SHA-256(canonical request))`.
pub(crate) fn string_to_sign(
    amz_date: &str,
    scope: &Scope<'_>,
    canonical_request: &[u8],
) -> String {
    let hash = sha256_hex(canonical_request);
    let mut out = String::with_capacity(
        ALGORITHM.len()
            + amz_date.len()
            + scope.date.len()
            + scope.region.len()
            + scope.service.len()
            + 96,
    );
    for part in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        scope.date,
        "/",
        scope.region,
        "/",
    ] {
        out.push_str(part);
    }
    for part in [scope.service, "/", SCOPE_TERMINATOR, "\n", &hash] {
        out.push_str(part);
    }
    out
}

/// Derives `kSigning` = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service),
/// "aws4_request"). Every intermediate key is wiped.
pub(crate) fn signing_key(secret: &SecretAccessKey, scope: &Scope<'_>) -> SigningKey {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.expose_secret().len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.expose_secret().as_bytes());
    let k_date = Zeroizing::new(hmac_sha256(&k_secret, scope.date.as_bytes()));
    let k_region = Zeroizing::new(hmac_sha256(k_date.as_ref(), scope.region.as_bytes()));
    let k_service = Zeroizing::new(hmac_sha256(k_region.as_ref(), scope.service.as_bytes()));
    SigningKey(hmac_sha256(k_service.as_ref(), SCOPE_TERMINATOR.as_bytes()))
}

/// The raw signature, HMAC(kSigning, string to sign). Its lower-case hex form is what the
/// `Authorization` header carries.
pub(crate) fn signature(key: &SigningKey, string_to_sign: &str) -> [u8; 32] {
    hmac_sha256(key.as_bytes(), string_to_sign.as_bytes())
}

/// HMAC-SHA256 of `data` under `key` (any length).
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // RFC 2104 key handling: a key longer than the block is hashed first; a shorter one is
    // padded with zeros. Done here so the infallible `KeyInit::new` can be used.
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
