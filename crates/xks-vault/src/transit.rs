//! The Transit API: the shapes of its requests and answers, the ciphertext
//! blob, and the mapping of its errors to [`ErrorKind`]s.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer};
use xks_keymanager::{ErrorKind, KeyVersion};
use zeroize::Zeroizing;

/// The only Transit key type this backend uses.
pub(crate) const AES256_GCM96: &str = "aes256-gcm96";

/// The GCM nonce length Transit uses.
pub(crate) const NONCE_LEN: usize = 12;

/// The GCM tag length Transit uses.
pub(crate) const TAG_LEN: usize = 16;

/// Vault's answer envelope.
#[derive(Deserialize)]
pub(crate) struct Envelope<T> {
    pub(crate) data: Option<T>,
}

/// A Transit key as `GET <mount>/keys/<name>` describes it (the fields used).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct KeyDescription {
    #[serde(rename = "type")]
    pub(crate) key_type: String,
    pub(crate) latest_version: u32,
    #[serde(default)]
    pub(crate) min_decryption_version: u32,
    #[serde(default)]
    pub(crate) min_encryption_version: u32,
    #[serde(default)]
    pub(crate) soft_deleted: bool,
    #[serde(default)]
    pub(crate) deletion_allowed: bool,
    #[serde(default)]
    pub(crate) exportable: bool,
    #[serde(default)]
    pub(crate) allow_plaintext_backup: bool,
    #[serde(default = "yes")]
    pub(crate) supports_encryption: bool,
    #[serde(default = "yes")]
    pub(crate) supports_decryption: bool,
    /// Version number → creation time; only the keys are used.
    #[serde(default)]
    pub(crate) keys: BTreeMap<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

/// `LIST <mount>/keys`.
#[derive(Deserialize)]
pub(crate) struct KeyList {
    #[serde(default)]
    pub(crate) keys: Vec<String>,
}

/// One result of encrypt or decrypt, single or batch.
#[derive(Deserialize)]
pub(crate) struct ItemResult {
    #[serde(default)]
    pub(crate) ciphertext: Option<String>,
    #[serde(default)]
    pub(crate) plaintext: Option<WipedString>,
    #[serde(default)]
    pub(crate) error: Option<String>,
}

/// The answer of a batch call.
#[derive(Deserialize)]
pub(crate) struct BatchResults {
    #[serde(default)]
    pub(crate) batch_results: Vec<ItemResult>,
}

/// A string wiped from memory when dropped (Base64 plaintext).
pub(crate) struct WipedString(pub(crate) Zeroizing<String>);

// === impl KeyDescription ===

impl KeyDescription {
    /// The newest version, if the key has any.
    pub(crate) fn latest(&self) -> Option<KeyVersion> {
        KeyVersion::new(self.latest_version)
    }

    pub(crate) fn is_aes256_gcm(&self) -> bool {
        self.key_type == AES256_GCM96
    }
}

// === impl WipedString ===

impl<'de> Deserialize<'de> for WipedString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|s| Self(Zeroizing::new(s)))
    }
}

impl fmt::Debug for WipedString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The JSON object of one encryption: the body of a single call, or one
/// element of a batch. Wiped when dropped, since it holds the plaintext.
pub(crate) fn encrypt_item(
    plaintext: &[u8],
    gcm_aad: &[u8],
    version: KeyVersion,
) -> Zeroizing<String> {
    let mut item = Zeroizing::new(String::with_capacity(
        plaintext.len() * 4 / 3 + gcm_aad.len() * 4 / 3 + 80,
    ));
    item.push_str("{\"plaintext\":\"");
    STANDARD.encode_string(plaintext, &mut item);
    item.push_str("\",\"associated_data\":\"");
    STANDARD.encode_string(gcm_aad, &mut item);
    item.push_str("\",\"key_version\":");
    item.push_str(&version.get().to_string());
    item.push('}');
    item
}

/// The JSON object of one decryption: Transit's blob rebuilt from the parts.
pub(crate) fn decrypt_item(
    version: KeyVersion,
    nonce: &[u8],
    ciphertext: &[u8],
    tag: &[u8],
    gcm_aad: &[u8],
) -> Zeroizing<String> {
    let mut raw = Vec::with_capacity(nonce.len() + ciphertext.len() + tag.len());
    raw.extend_from_slice(nonce);
    raw.extend_from_slice(ciphertext);
    raw.extend_from_slice(tag);
    let mut item = Zeroizing::new(String::with_capacity(
        raw.len() * 4 / 3 + gcm_aad.len() * 4 / 3 + 80,
    ));
    item.push_str("{\"ciphertext\":\"vault:v");
    item.push_str(&version.get().to_string());
    item.push(':');
    STANDARD.encode_string(&raw, &mut item);
    item.push_str("\",\"associated_data\":\"");
    STANDARD.encode_string(gcm_aad, &mut item);
    item.push_str("\"}");
    item
}

/// The body of a batch call over `items`.
pub(crate) fn batch_body<'a>(items: impl IntoIterator<Item = &'a str>) -> Zeroizing<String> {
    let mut body = Zeroizing::new(String::from("{\"batch_input\":["));
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push_str("]}");
    body
}

/// A ciphertext split into nonce, ciphertext and tag.
pub(crate) struct SplitBlob {
    pub(crate) nonce: [u8; NONCE_LEN],
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) tag: [u8; TAG_LEN],
}

/// Splits Transit's ciphertext `vault:v<version>:<Base64>` into nonce,
/// ciphertext and tag, checking the version and the lengths.
pub(crate) fn split_blob(
    blob: &str,
    version: KeyVersion,
    plaintext_len: usize,
) -> Result<SplitBlob, &'static str> {
    let rest = blob
        .strip_prefix("vault:v")
        .ok_or("the ciphertext does not start with `vault:v`")?;
    let (number, b64) = rest
        .split_once(':')
        .ok_or("the ciphertext has no version separator")?;
    if number.parse::<u32>().ok() != Some(version.get()) {
        return Err("the ciphertext names another key version than the one requested");
    }
    let raw = STANDARD
        .decode(b64)
        .map_err(|_| "the ciphertext is not valid Base64")?;
    if raw.len() != NONCE_LEN + plaintext_len + TAG_LEN {
        return Err("the ciphertext is not nonce, ciphertext and tag of the expected lengths");
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(plaintext_len);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| "nonce length")?;
    let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| "tag length")?;
    Ok(SplitBlob {
        nonce,
        ciphertext: ciphertext.to_vec(),
        tag,
    })
}

/// Decodes Transit's Base64 plaintext into memory wiped when dropped.
pub(crate) fn decode_plaintext(b64: &str) -> Option<Vec<u8>> {
    STANDARD.decode(b64).ok()
}

/// What a Transit error means, from its HTTP status and free-text messages.
///
/// Transit reports almost everything as HTTP 400 with a message; the messages
/// matched here are those of OpenBao 2.7 and Vault.
pub(crate) fn classify(status: u16, messages: &[String]) -> ErrorKind {
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    match status {
        400 => {
            if has("soft-deleted") {
                ErrorKind::KeyDisabled
            } else if has("key not found") || has("no existing key named") {
                ErrorKind::KeyNotFound
            } else if has("message authentication failed")
                || has("invalid ciphertext")
                || has("too old")
                || has("version is too new")
                || has("disallowed by policy")
                || has("unable to decode")
                || has("failed to decode")
                || has("ciphertext")
            {
                ErrorKind::InvalidCiphertext
            } else if has("does not support encryption") || has("does not support decryption") {
                ErrorKind::KeyUsage
            } else {
                ErrorKind::Internal
            }
        }
        404 => ErrorKind::KeyNotFound,
        429 => ErrorKind::Throttled,
        412 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

/// Whether an encryption failed because the cached key description is stale
/// (the requested version is below the key's minimum encryption version, or
/// above its newest): refresh the description and retry.
pub(crate) fn is_stale_version(messages: &[String]) -> bool {
    messages.iter().any(|m| {
        m.contains("minimum encryption key version")
            || m.contains("higher than the latest key version")
    })
}

#[cfg(test)]
mod tests;
