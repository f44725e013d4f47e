//! SigV4 credentials as KMS defines them for external key stores, and the store the verifier
//! looks them up in.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use zeroize::ZeroizeOnDrop;

use crate::cache::SigningKeyCache;
use crate::error::{CredentialError, CredentialErrorKind};

/// Allowed access key id lengths, in characters (KMS `XksProxyAuthenticationAccessKeyIdType`).
const ACCESS_KEY_ID_LEN: std::ops::RangeInclusive<usize> = 20..=30;
/// Allowed secret access key lengths, in characters (KMS `XksProxyAuthenticationRawSecretAccessKeyType`).
const SECRET_LEN: std::ops::RangeInclusive<usize> = 43..=64;

/// A SigV4 access key id: 20 to 30 characters of `A-Z` and `2-7` (the Base32 alphabet).
///
/// **Conformance:** KMS accepts only this format for `XksProxyAuthenticationCredential`
/// (fact sheet §8.3). An access key id is not secret; it may appear in logs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccessKeyId(Arc<str>);

/// A SigV4 secret access key: 43 to 64 characters of `A-Z a-z 0-9 + / =`, e.g. the output
/// of `openssl rand -base64 32`.
///
/// Wiped from memory when dropped. Neither `Debug` nor any other formatting shows it; there
/// is deliberately no `Display`.
///
/// **Conformance:** KMS accepts only this format for the raw secret access key (fact sheet
/// §8.3). The spec asks for at least 256 bits of entropy; this type cannot check that.
#[derive(Clone, ZeroizeOnDrop)]
pub struct SecretAccessKey {
    value: String,
}

/// One SigV4 credential: an access key id, its secret, and a label for logs.
///
/// `Debug` redacts the secret.
#[derive(Clone)]
pub struct Credential {
    access_key_id: AccessKeyId,
    secret: SecretAccessKey,
    label: Arc<str>,
}

/// The credentials a [`Verifier`](crate::Verifier) accepts, looked up by access key id in
/// constant time.
///
/// Holding several credentials at once is how rotation works: add the new credential, switch
/// KMS to it with `UpdateCustomKeyStore`, then remove the old one; requests signed with
/// either are accepted meanwhile. Build a new store and hand it to
/// [`Verifier::replace_credentials`](crate::Verifier::replace_credentials) to change the set
/// at run time.
///
/// **Conformance:** the XKS spec asks proxies to accept at least two credentials per path
/// prefix at the same time and to apply changes without a restart (fact sheet §8.4). Use one
/// store (and one verifier) per path prefix.
///
/// Each credential carries its own cache of derived signing keys, so replacing the store
/// also discards the cached keys of removed or changed credentials.
#[derive(Default)]
pub struct CredentialStore {
    entries: HashMap<AccessKeyId, StoreEntry>,
}

/// A credential and its signing-key cache.
pub(crate) struct StoreEntry {
    credential: Credential,
    cache: SigningKeyCache,
}

// === impl AccessKeyId ===

impl AccessKeyId {
    /// Checks the format: 20 to 30 characters, each `A-Z` or `2-7`.
    pub fn new(value: impl Into<String>) -> Result<Self, CredentialError> {
        let value = value.into();
        let kind = CredentialErrorKind::InvalidAccessKeyId;
        let len = value.chars().count();
        if !ACCESS_KEY_ID_LEN.contains(&len) {
            return Err(CredentialError::length(kind, len));
        }
        if let Some(position) = value
            .chars()
            .position(|c| !(c.is_ascii_uppercase() || ('2'..='7').contains(&c)))
        {
            return Err(CredentialError::charset(kind, Some(position + 1)));
        }
        Ok(Self(value.into()))
    }

    /// The access key id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AccessKeyId {
    type Err = CredentialError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::new(value)
    }
}

impl AsRef<str> for AccessKeyId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets the store be searched with a `&str` taken from a request.
impl Borrow<str> for AccessKeyId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AccessKeyId").field(&&*self.0).finish()
    }
}

impl fmt::Display for AccessKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// === impl SecretAccessKey ===

impl SecretAccessKey {
    /// Checks the format: 43 to 64 characters, each `A-Z`, `a-z`, `0-9`, `+`, `/` or `=`.
    ///
    /// On error the given string is wiped, and the error does not repeat it.
    pub fn new(value: impl Into<String>) -> Result<Self, CredentialError> {
        // Wrapping first means the value is wiped on every return path.
        let secret = Self {
            value: value.into(),
        };
        let kind = CredentialErrorKind::InvalidSecretAccessKey;
        let len = secret.value.chars().count();
        if !SECRET_LEN.contains(&len) {
            return Err(CredentialError::length(kind, len));
        }
        if !secret
            .value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        {
            return Err(CredentialError::charset(kind, None));
        }
        Ok(secret)
    }

    /// The secret itself, e.g. to write the KMS console configuration file. Handle with care:
    /// never log it.
    pub fn expose_secret(&self) -> &str {
        &self.value
    }
}

impl fmt::Debug for SecretAccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretAccessKey(** redacted **)")
    }
}

// === impl Credential ===

impl Credential {
    /// A credential from already validated parts. Its label is the access key id.
    pub fn new(access_key_id: AccessKeyId, secret_access_key: SecretAccessKey) -> Self {
        let label = Arc::clone(&access_key_id.0);
        Self {
            access_key_id,
            secret: secret_access_key,
            label,
        }
    }

    /// A credential from configuration strings, checking both formats. The error says which
    /// of the two is wrong and why, without repeating the secret.
    ///
    /// ```
    /// use xks_sigv4::{Credential, CredentialErrorKind};
    ///
    /// let ok = Credential::from_config("AKIAI2SFODNN7EXAMPLE", "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE");
    /// assert!(ok.is_ok());
    ///
    /// let err = Credential::from_config("akia-lowercase-0000000", "FYtE5EFA5FT0mCc3DrGUe2sti527BitkQ0Zr9MO9fvE")
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), CredentialErrorKind::InvalidAccessKeyId);
    /// ```
    pub fn from_config(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Result<Self, CredentialError> {
        // Validate the secret first so it is wiped even if the access key id is wrong.
        let secret = SecretAccessKey::new(secret_access_key)?;
        Ok(Self::new(AccessKeyId::new(access_key_id)?, secret))
    }

    /// Replaces the label, an operator-chosen name that [`Authenticated`](crate::Authenticated)
    /// reports for logs (e.g. `"kms-2024-06"`). It must not contain secrets.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into().into();
        self
    }

    /// The access key id.
    pub fn access_key_id(&self) -> &AccessKeyId {
        &self.access_key_id
    }

    /// The secret access key.
    pub fn secret_access_key(&self) -> &SecretAccessKey {
        &self.secret
    }

    /// The label; the access key id unless [`with_label`](Self::with_label) set one.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn label_arc(&self) -> &Arc<str> {
        &self.label
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id.as_str())
            .field("secret_access_key", &format_args!("** redacted **"))
            .field("label", &&*self.label)
            .finish()
    }
}

// === impl CredentialStore ===

impl CredentialStore {
    /// A store holding `credentials`. Fails if two share an access key id.
    pub fn new(credentials: impl IntoIterator<Item = Credential>) -> Result<Self, CredentialError> {
        let mut entries = HashMap::new();
        for credential in credentials {
            match entries.entry(credential.access_key_id.clone()) {
                Entry::Occupied(_) => {
                    return Err(CredentialError::duplicate(
                        credential.access_key_id.as_str(),
                    ));
                }
                Entry::Vacant(slot) => {
                    slot.insert(StoreEntry {
                        credential,
                        cache: SigningKeyCache::new(),
                    });
                }
            }
        }
        Ok(Self { entries })
    }

    /// A store with no credentials; every request fails with `UnknownAccessKeyId`.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The number of credentials.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store has no credentials.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether a credential with this access key id is in the store.
    pub fn contains(&self, access_key_id: &str) -> bool {
        self.entries.contains_key(access_key_id)
    }

    /// The credential with this access key id.
    pub fn get(&self, access_key_id: &str) -> Option<&Credential> {
        self.entries
            .get(access_key_id)
            .map(|entry| &entry.credential)
    }

    /// The access key ids in the store, sorted.
    pub fn access_key_ids(&self) -> Vec<&AccessKeyId> {
        let mut ids: Vec<_> = self.entries.keys().collect();
        ids.sort();
        ids
    }

    pub(crate) fn entry(&self, access_key_id: &str) -> Option<&StoreEntry> {
        self.entries.get(access_key_id)
    }
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut credentials: Vec<_> = self.entries.values().map(|e| &e.credential).collect();
        credentials.sort_by(|a, b| a.access_key_id.cmp(&b.access_key_id));
        f.debug_struct("CredentialStore")
            .field("credentials", &credentials)
            .finish()
    }
}

impl TryFrom<Vec<Credential>> for CredentialStore {
    type Error = CredentialError;

    fn try_from(credentials: Vec<Credential>) -> Result<Self, Self::Error> {
        Self::new(credentials)
    }
}

// === impl StoreEntry ===

impl StoreEntry {
    pub(crate) fn credential(&self) -> &Credential {
        &self.credential
    }

    pub(crate) fn cache(&self) -> &SigningKeyCache {
        &self.cache
    }
}

#[cfg(test)]
mod tests;
