//! The key store file format, version 1 (described in the crate documentation).

use std::io;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use zeroize::Zeroizing;

use crate::keyset::KeySet;
use crate::secret::KEY_LEN;
use crate::{Error, KdfParams, SecretKind, Unlock, kdf};

/// The `format` field of every key store header.
pub(crate) const FORMAT_NAME: &str = "xks-soft-key-store";

/// The format version this build writes and reads.
pub(crate) const FORMAT_VERSION: u64 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The file: the header (kept as its exact bytes, which are the AAD) and the
/// sealed key set.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeIn<'a> {
    #[serde(borrow)]
    header: &'a RawValue,
    #[serde(borrow)]
    ciphertext: &'a str,
}

#[derive(Serialize)]
struct EnvelopeOut<'a> {
    header: &'a RawValue,
    ciphertext: &'a str,
}

/// The first look at a header, before its version is known.
#[derive(Deserialize)]
struct HeaderProbe<'a> {
    #[serde(borrow)]
    format: Option<&'a str>,
    version: Option<u64>,
}

/// The version 1 header.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u64,
    secret: SecretKind,
    kdf: KdfHeader,
    cipher: CipherHeader,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct KdfHeader {
    algorithm: KdfAlgorithm,
    argon2_version: u32,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum KdfAlgorithm {
    Argon2id,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CipherHeader {
    algorithm: CipherAlgorithm,
    nonce: String,
}

#[derive(Serialize, Deserialize)]
enum CipherAlgorithm {
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
}

/// Where JSON parsing failed, without the message, which may quote the input.
#[derive(Debug)]
struct JsonPosition {
    line: usize,
    column: usize,
    eof: bool,
}

/// The key that encrypts a key store, with the inputs it was derived from, so a
/// holder can reuse it while the header's salt and parameters stay the same.
pub(crate) struct StoreKey {
    kind: SecretKind,
    params: KdfParams,
    salt: Vec<u8>,
    key: Zeroizing<[u8; KEY_LEN]>,
}

// === impl StoreKey ===

impl StoreKey {
    /// A key for a new key store (or a new secret): a fresh salt, then Argon2id.
    pub(crate) fn generate(unlock: &Unlock, params: KdfParams) -> Result<Self, Error> {
        let mut salt = vec![0; kdf::SALT_LEN];
        getrandom::fill(&mut salt).map_err(Error::random)?;
        Self::derive(unlock, params, salt)
    }

    fn derive(unlock: &Unlock, params: KdfParams, salt: Vec<u8>) -> Result<Self, Error> {
        let secret = unlock.secret()?;
        let key = kdf::derive(&secret, &salt, params)?;
        Ok(Self {
            kind: unlock.kind(),
            params,
            salt,
            key,
        })
    }

    pub(crate) fn params(&self) -> KdfParams {
        self.params
    }

    fn matches(&self, kind: SecretKind, params: KdfParams, salt: &[u8]) -> bool {
        self.kind == kind && self.params == params && self.salt == salt
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.key).into())
    }
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreKey")
            .field("kind", &self.kind)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Serializes and encrypts `keys` under `key`: the bytes of a key store file.
pub(crate) fn seal(key: &StoreKey, keys: &KeySet) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce).map_err(Error::random)?;
    let header = Header {
        format: FORMAT_NAME.to_owned(),
        version: FORMAT_VERSION,
        secret: key.kind,
        kdf: KdfHeader {
            algorithm: KdfAlgorithm::Argon2id,
            argon2_version: 0x13,
            memory_kib: key.params.memory_kib(),
            iterations: key.params.iterations(),
            parallelism: key.params.parallelism(),
            salt: BASE64.encode(&key.salt),
        },
        cipher: CipherHeader {
            algorithm: CipherAlgorithm::Aes256Gcm,
            nonce: BASE64.encode(nonce),
        },
    };
    let header = serde_json::value::to_raw_value(&header)
        .map_err(|_| Error::internal("serializing the key store header"))?;

    // Serialize into a buffer sized exactly beforehand, so it never reallocates
    // and leaves no copy of the key material behind; it is wiped when dropped.
    let len = serialized_len(keys)?;
    let mut sealed = Zeroizing::new(Vec::with_capacity(len + TAG_LEN));
    serde_json::to_writer(&mut *sealed, keys)
        .map_err(|_| Error::internal("serializing the key set"))?;
    let tag = key
        .cipher()
        .encrypt_inout_detached(
            &Nonce::from(nonce),
            header.get().as_bytes(),
            sealed.as_mut_slice().into(),
        )
        .map_err(|_| Error::internal("encrypting the key set"))?;
    sealed.extend_from_slice(&tag);

    let ciphertext = BASE64.encode(&*sealed);
    let mut file = serde_json::to_vec(&EnvelopeOut {
        header: &header,
        ciphertext: &ciphertext,
    })
    .map_err(|_| Error::internal("serializing the key store"))?;
    file.push(b'\n');
    Ok(file)
}

/// Decrypts the key store file `bytes` with `unlock`, reusing `cache` if it was
/// derived for this file's salt and parameters, and replacing it otherwise.
pub(crate) fn open(
    bytes: &[u8],
    unlock: &Unlock,
    cache: &mut Option<StoreKey>,
) -> Result<KeySet, Error> {
    // Whatever file this is, its contents stay out of the error: only the position.
    let envelope: EnvelopeIn<'_> = serde_json::from_slice(bytes).map_err(|e| {
        Error::malformed_by("the file is not a key store envelope", JsonPosition::of(&e))
    })?;
    let header_bytes = envelope.header.get().as_bytes();

    let probe: HeaderProbe<'_> = serde_json::from_slice(header_bytes)
        .map_err(|e| Error::malformed_by("the key store header is not a JSON object", e))?;
    if probe.format != Some(FORMAT_NAME) {
        return Err(Error::malformed(
            "the header does not name the xks-soft key store format",
        ));
    }
    match probe.version {
        Some(FORMAT_VERSION) => {}
        Some(found) => return Err(Error::UnsupportedVersion { found }),
        None => return Err(Error::malformed("the header has no format version")),
    }

    let header: Header = serde_json::from_slice(header_bytes)
        .map_err(|e| Error::malformed_by("the key store header is invalid", e))?;
    if header.kdf.argon2_version != 0x13 {
        return Err(Error::malformed("unsupported Argon2 version"));
    }
    let params = KdfParams::from_header(
        header.kdf.memory_kib,
        header.kdf.iterations,
        header.kdf.parallelism,
    )?;
    let salt = decode_base64(&header.kdf.salt, "the KDF salt")?;
    if !(kdf::MIN_SALT_LEN..=kdf::MAX_SALT_LEN).contains(&salt.len()) {
        return Err(Error::malformed("the KDF salt is not 16 to 64 bytes"));
    }
    let nonce: [u8; NONCE_LEN] = decode_base64(&header.cipher.nonce, "the nonce")?
        .try_into()
        .map_err(|_| Error::malformed("the nonce is not 12 bytes"))?;
    let mut sealed = Zeroizing::new(decode_base64(envelope.ciphertext, "the ciphertext")?);
    let Some(body_len) = sealed.len().checked_sub(TAG_LEN) else {
        return Err(Error::malformed("the ciphertext is shorter than a tag"));
    };

    if header.secret != unlock.kind() {
        return Err(Error::UnlockMismatch {
            store: header.secret,
            given: unlock.kind(),
        });
    }
    let key = match cache.take() {
        Some(key) if key.matches(header.secret, params, &salt) => key,
        _ => StoreKey::derive(unlock, params, salt)?,
    };
    let key = cache.insert(key);

    let (body, tag) = sealed.split_at_mut(body_len);
    let tag: [u8; TAG_LEN] = (&*tag)
        .try_into()
        .map_err(|_| Error::internal("tag length"))?;
    key.cipher()
        .decrypt_inout_detached(
            &Nonce::from(nonce),
            header_bytes,
            body.into(),
            &Tag::from(tag),
        )
        .map_err(|_| Error::WrongSecretOrTampered)?;

    // serde_json's messages may quote values, which here could be key material.
    let keys: KeySet = serde_json::from_slice(body).map_err(|e| {
        Error::malformed_by("the decrypted key set is invalid", JsonPosition::of(&e))
    })?;
    keys.validate()?;
    Ok(keys)
}

// === impl JsonPosition ===

impl JsonPosition {
    fn of(e: &serde_json::Error) -> Self {
        Self {
            line: e.line(),
            column: e.column(),
            eof: e.is_eof(),
        }
    }
}

impl std::fmt::Display for JsonPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.eof {
            write!(
                f,
                "unexpected end of JSON at line {}, column {}",
                self.line, self.column
            )
        } else {
            write!(
                f,
                "invalid JSON at line {}, column {}",
                self.line, self.column
            )
        }
    }
}

impl std::error::Error for JsonPosition {}

fn decode_base64(text: &str, what: &'static str) -> Result<Vec<u8>, Error> {
    BASE64
        .decode(text)
        .map_err(|e| Error::malformed_by(what, e))
}

/// The length of the JSON serialization of `keys`, counted without storing it.
fn serialized_len(keys: &KeySet) -> Result<usize, Error> {
    struct Counter(usize);

    impl io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    let mut counter = Counter(0);
    serde_json::to_writer(&mut counter, keys)
        .map_err(|_| Error::internal("serializing the key set"))?;
    Ok(counter.0)
}

#[cfg(test)]
mod tests;
