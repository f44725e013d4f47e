//! KMS's double encryption for keys in an external key store, and the mock's ciphertext
//! blob.
//!
//! KMS encrypts data under an XKS key twice: first with key material of its own, unique
//! to the KMS key, then with the external key through the proxy. The mock does the same:
//!
//! 1. The **internal layer**: AES-256-GCM under a key derived from the mock's internal
//!    key and the KMS key ARN (HMAC-SHA256), with a fresh 12-byte IV, binding the key ARN
//!    and the encryption context as AAD. Its output, `iv || ciphertext || tag`, is 28
//!    bytes longer than the plaintext, so a 4,096-byte KMS plaintext stays within the
//!    4,300 bytes a proxy must accept (fact sheet §9.6).
//! 2. The **external layer**: XKS Encrypt of that output, with a 32-byte AAD (a digest of
//!    the key ARN and the encryption context; the proxy cannot read the context from it).
//!
//! The ciphertext blob holds what Decrypt needs, versioned, and travels as Base64:
//!
//! ```text
//! "XKM" 0x01                                  magic and version
//! u16 len, key ARN                            the KMS key
//! u8 len, external key id
//! u8 len, ciphertextMetadata                  0 = none
//! u8 len, initializationVector                12 or 16
//! 16 bytes authenticationTag
//! u16 len, ciphertext                         the external layer's ciphertext
//! ```
//!
//! Integers are big-endian. The blob is not KMS's format, which is not public.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The mock's own AES-256 key, from which it derives one key per KMS key.
///
/// `Debug` never shows it.
pub struct InternalKey(Zeroizing<[u8; 32]>);

/// An encryption context: string pairs bound to the ciphertext, as in KMS.
pub type EncryptionContext = BTreeMap<String, String>;

/// What the external key returned for the internal layer's output, and where it came
/// from: everything Decrypt needs.
#[derive(Clone, PartialEq, Eq)]
pub struct Blob {
    /// The KMS key ARN.
    pub key_arn: String,
    /// The external key id (`XksKeyId`).
    pub xks_key_id: String,
    /// `ciphertextMetadata` from the proxy, if any.
    pub ciphertext_metadata: Option<Vec<u8>>,
    /// `initializationVector` from the proxy.
    pub iv: Vec<u8>,
    /// `authenticationTag` from the proxy.
    pub tag: [u8; 16],
    /// `ciphertext` from the proxy.
    pub ciphertext: Vec<u8>,
}

/// Why a blob or an internal-layer ciphertext is unusable. The text names no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BlobError(&'static str);

const MAGIC: &[u8; 3] = b"XKM";
const VERSION: u8 = 1;
const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

// === impl InternalKey ===

impl InternalKey {
    /// Reads the key from `path` (Base64 of 32 bytes), or creates the file with a fresh
    /// random key, readable by the owner only.
    ///
    /// # Errors
    ///
    /// The file cannot be read or written, or does not hold a Base64 32-byte key.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                Self::from_base64(text.trim())
                    .map_err(|e| format!("internal key file {}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::random()?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
                let encoded = Zeroizing::new(BASE64.encode(key.0.as_ref()));
                write_private(path, &encoded)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                Ok(key)
            }
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// A key from Base64 text.
    ///
    /// # Errors
    ///
    /// Not Base64, or not 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = Zeroizing::new(
            BASE64
                .decode(text.trim())
                .map_err(|_| "the internal key is not Base64".to_owned())?,
        );
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| "the internal key must be 32 bytes".to_owned())?;
        Ok(Self(Zeroizing::new(key)))
    }

    /// A fresh random key.
    ///
    /// # Errors
    ///
    /// The OS random number generator failed.
    pub fn random() -> Result<Self, String> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| "the OS random number generator failed")?;
        Ok(Self(key))
    }

    /// The internal layer: encrypts `plaintext` for `key_arn` and `context`; returns
    /// `iv || ciphertext || tag`.
    ///
    /// # Errors
    ///
    /// The random number generator or the cipher failed.
    pub fn seal(
        &self,
        key_arn: &str,
        context: &EncryptionContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, BlobError> {
        let cipher = self.cipher(key_arn)?;
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|_| BlobError("the random number generator failed"))?;
        let aad = binding(b"xks-mock-kms/v1/inner", key_arn, context);
        let mut out = Vec::with_capacity(IV_LEN + plaintext.len() + TAG_LEN);
        out.extend_from_slice(&iv);
        out.extend_from_slice(plaintext);
        let tag = cipher
            .encrypt_inout_detached(&Nonce::from(iv), &aad, (&mut out[IV_LEN..]).into())
            .map_err(|_| BlobError("the internal layer failed to encrypt"))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Opens the internal layer; the plaintext is wiped when dropped.
    ///
    /// # Errors
    ///
    /// The input is too short, or authentication fails (wrong key, context or data).
    pub fn open(
        &self,
        key_arn: &str,
        context: &EncryptionContext,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, BlobError> {
        if sealed.len() < IV_LEN + TAG_LEN {
            return Err(BlobError("the inner ciphertext is too short"));
        }
        let cipher = self.cipher(key_arn)?;
        let (iv, rest) = sealed.split_at(IV_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| BlobError("bad IV"))?;
        let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| BlobError("bad tag"))?;
        let aad = binding(b"xks-mock-kms/v1/inner", key_arn, context);
        let mut plaintext = Zeroizing::new(body.to_vec());
        cipher
            .decrypt_inout_detached(
                &Nonce::from(iv),
                &aad,
                plaintext.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| BlobError("the ciphertext or encryption context does not authenticate"))?;
        Ok(plaintext)
    }

    fn cipher(&self, key_arn: &str) -> Result<Aes256Gcm, BlobError> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.as_ref())
            .map_err(|_| BlobError("key derivation failed"))?;
        mac.update(b"xks-mock-kms/v1/key ");
        mac.update(key_arn.as_bytes());
        let derived = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
        Aes256Gcm::new_from_slice(derived.as_ref()).map_err(|_| BlobError("bad key length"))
    }
}

impl fmt::Debug for InternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InternalKey(** redacted **)")
    }
}

/// The AAD of the external layer, as the proxy sees it: 32 bytes binding the key ARN
/// and the encryption context.
pub fn external_aad(key_arn: &str, context: &EncryptionContext) -> Vec<u8> {
    Sha256::digest(binding(b"xks-mock-kms/v1/outer", key_arn, context)).to_vec()
}

/// `label || u16 len || key ARN || (u16 len || name || u16 len || value)*`, names sorted.
fn binding(label: &[u8], key_arn: &str, context: &EncryptionContext) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + key_arn.len());
    out.extend_from_slice(label);
    push_u16_prefixed(&mut out, key_arn.as_bytes());
    for (name, value) in context {
        push_u16_prefixed(&mut out, name.as_bytes());
        push_u16_prefixed(&mut out, value.as_bytes());
    }
    out
}

fn push_u16_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

// === impl Blob ===

impl Blob {
    /// The binary blob.
    ///
    /// # Errors
    ///
    /// A field is longer than its length prefix allows.
    pub fn to_bytes(&self) -> Result<Vec<u8>, BlobError> {
        let mut out = Vec::with_capacity(64 + self.key_arn.len() + self.ciphertext.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        let too_long = BlobError("a blob field is too long");
        let arn_len = u16::try_from(self.key_arn.len()).map_err(|_| too_long.clone())?;
        out.extend_from_slice(&arn_len.to_be_bytes());
        out.extend_from_slice(self.key_arn.as_bytes());
        for field in [
            self.xks_key_id.as_bytes(),
            self.ciphertext_metadata.as_deref().unwrap_or_default(),
            &self.iv,
        ] {
            out.push(u8::try_from(field.len()).map_err(|_| too_long.clone())?);
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.tag);
        let ct_len = u16::try_from(self.ciphertext.len()).map_err(|_| too_long)?;
        out.extend_from_slice(&ct_len.to_be_bytes());
        out.extend_from_slice(&self.ciphertext);
        Ok(out)
    }

    /// The blob as KMS hands it out: standard Base64.
    ///
    /// # Errors
    ///
    /// As [`Blob::to_bytes`].
    pub fn to_base64(&self) -> Result<String, BlobError> {
        Ok(BASE64.encode(self.to_bytes()?))
    }

    /// Parses a blob.
    ///
    /// # Errors
    ///
    /// Wrong magic or version, truncated, or trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlobError> {
        let mut r = Reader(bytes);
        if r.take(3)? != MAGIC {
            return Err(BlobError("not a ciphertext blob of this mock"));
        }
        if r.take(1)? != [VERSION] {
            return Err(BlobError("unsupported ciphertext blob version"));
        }
        let arn_len = r.u16()?;
        let key_arn = text(r.take(arn_len)?)?;
        let id_len = r.u8()?;
        let xks_key_id = text(r.take(id_len)?)?;
        let md_len = r.u8()?;
        let metadata = r.take(md_len)?.to_vec();
        let iv_len = r.u8()?;
        let iv = r.take(iv_len)?.to_vec();
        let tag: [u8; 16] = r
            .take(16)?
            .try_into()
            .map_err(|_| BlobError("truncated ciphertext blob"))?;
        let ct_len = r.u16()?;
        let ciphertext = r.take(ct_len)?.to_vec();
        if !r.0.is_empty() {
            return Err(BlobError("trailing bytes after the ciphertext blob"));
        }
        Ok(Self {
            key_arn,
            xks_key_id,
            ciphertext_metadata: (!metadata.is_empty()).then_some(metadata),
            iv,
            tag,
            ciphertext,
        })
    }

    /// Parses a Base64 blob.
    ///
    /// # Errors
    ///
    /// Not Base64, or as [`Blob::from_bytes`].
    pub fn from_base64(text: &str) -> Result<Self, BlobError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| BlobError("the ciphertext blob is not Base64"))?;
        Self::from_bytes(&bytes)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("key_arn", &self.key_arn)
            .field("xks_key_id", &self.xks_key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        if self.0.len() < n {
            return Err(BlobError("truncated ciphertext blob"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<usize, BlobError> {
        Ok(usize::from(self.take(1)?[0]))
    }

    fn u16(&mut self) -> Result<usize, BlobError> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
}

fn text(bytes: &[u8]) -> Result<String, BlobError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| BlobError("a blob field is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> Blob {
        Blob {
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/abc".into(),
            xks_key_id: "key-1".into(),
            ciphertext_metadata: Some(b"v1".to_vec()),
            iv: vec![7; 12],
            tag: [9; 16],
            ciphertext: vec![1, 2, 3, 4],
        }
    }

    #[test]
    fn blob_round_trips_and_rejects_damage() {
        let b = blob();
        let text = b.to_base64().unwrap();
        assert_eq!(Blob::from_base64(&text).unwrap(), b);
        let bytes = b.to_bytes().unwrap();
        assert!(Blob::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Blob::from_bytes(&longer).is_err());
        let mut other = bytes;
        other[3] = 2;
        assert!(Blob::from_bytes(&other).is_err());
        let none = Blob {
            ciphertext_metadata: None,
            ..blob()
        };
        assert_eq!(Blob::from_bytes(&none.to_bytes().unwrap()).unwrap(), none);
    }

    #[test]
    fn internal_layer_binds_key_and_context() {
        let key = InternalKey::random().unwrap();
        let mut ctx = EncryptionContext::new();
        ctx.insert("purpose".into(), "test".into());
        let sealed = key.seal("arn:a", &ctx, b"secret").unwrap();
        assert_eq!(sealed.len(), 6 + 28);
        assert_eq!(
            key.open("arn:a", &ctx, &sealed).unwrap().as_slice(),
            b"secret"
        );
        assert!(key.open("arn:b", &ctx, &sealed).is_err());
        assert!(
            key.open("arn:a", &EncryptionContext::new(), &sealed)
                .is_err()
        );
        let other = InternalKey::random().unwrap();
        assert!(other.open("arn:a", &ctx, &sealed).is_err());
        assert_ne!(external_aad("arn:a", &ctx), external_aad("arn:b", &ctx));
        assert!(!format!("{key:?}").contains(&BASE64.encode(key.0.as_ref())));
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/internal.key");
        let a = InternalKey::load_or_create(&path).unwrap();
        let b = InternalKey::load_or_create(&path).unwrap();
        assert_eq!(a.0.as_ref(), b.0.as_ref());
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
