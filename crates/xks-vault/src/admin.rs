//! Operator operations on Transit keys for XKS use.

use std::ffi::OsString;
use std::fmt;
use std::sync::Arc;

use http::Method;
use tokio::time::Instant;
use xks_protocol::KeyId;

use crate::config::VaultConfig;
use crate::core::Inner;
use crate::error::{Error, VaultError, VaultErrorKind};
use crate::http::{Call, status_error};
use crate::transit::{AES256_GCM96, Envelope, KeyDescription, KeyList};

/// The operator's handle on the Transit keys behind the proxy: create, rotate,
/// describe and list keys, and protect the mount against upserts. The proxy's
/// key subcommands call it.
///
/// Get one with [`VaultAdmin::connect`] (authenticates, checks nothing else)
/// or from a running key manager with
/// [`VaultKeyManager::admin`](crate::VaultKeyManager::admin).
///
/// Keys are named by external key id and mapped to Transit key names as the
/// key manager does (`[[backend.keys]]`, then the default mapping).
#[derive(Clone)]
pub struct VaultAdmin {
    inner: Arc<Inner>,
}

/// A Transit key as the operator sees it. Never any key material.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransitKeyInfo {
    /// The Transit key name.
    pub name: String,
    /// The Transit key type (`aes256-gcm96` for XKS keys).
    pub key_type: String,
    /// The newest version: what new encryptions use.
    pub latest_version: u32,
    /// The oldest version that may still decrypt.
    pub min_decryption_version: u32,
    /// The oldest version that may encrypt (0: any).
    pub min_encryption_version: u32,
    /// The versions whose material Transit still holds, ascending.
    pub versions: Vec<u32>,
    /// Soft-deleted (OpenBao): KMS sees the key as `DISABLED`.
    pub soft_deleted: bool,
    /// Whether the key may be deleted.
    pub deletion_allowed: bool,
    /// Whether the key material may be exported.
    pub exportable: bool,
    /// Whether a plaintext backup of the key may be taken.
    pub plaintext_backup_allowed: bool,
}

/// One key of the Transit mount, as [`VaultAdmin::list_keys`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListedKey {
    /// The Transit key name.
    pub transit_key: String,
    /// The external key id KMS reaches it through, if any.
    pub external_id: Option<KeyId>,
    /// Whether it is the health check canary key.
    pub canary: bool,
}

// === impl VaultAdmin ===

impl VaultAdmin {
    /// Validates `config` and authenticates to Vault. Unlike
    /// [`VaultKeyManager::connect`](crate::VaultKeyManager::connect) it checks
    /// nothing else and starts no background task.
    ///
    /// # Errors
    ///
    /// [`Error::Config`], [`Error::Secret`], [`Error::Tls`], [`Error::Auth`].
    pub async fn connect(
        config: &VaultConfig,
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Self, Error> {
        let inner = Arc::new(Inner::new(config, &env)?);
        inner
            .login(Instant::now() + inner.settings.admin_timeout)
            .await?;
        Ok(Self { inner })
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// The Transit key name of external key `id`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotConfigured`] for an unlisted id when unlisted keys are
    /// not allowed; [`Error::ReservedKey`] when it maps to the canary key.
    pub fn transit_name(&self, id: &KeyId) -> Result<String, Error> {
        self.inner.resolve(id).map(|(name, _)| name)
    }

    /// Creates the Transit key of external key `id` for XKS use:
    /// `aes256-gcm96`, not exportable, no plaintext backup, deletion not
    /// allowed.
    ///
    /// # Errors
    ///
    /// [`Error::KeyExists`], the errors of [`VaultAdmin::transit_name`], or
    /// [`Error::Request`].
    pub async fn create_key(&self, id: &KeyId) -> Result<TransitKeyInfo, Error> {
        let name = self.transit_name(id)?;
        self.create_name(&name).await
    }

    /// Creates the health check canary key (configured as `canary_key`) like
    /// [`VaultAdmin::create_key`]; nothing to do if it exists and is
    /// `aes256-gcm96`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongKeyType`] if a key of another type has its name;
    /// [`Error::Request`].
    pub async fn create_canary(&self) -> Result<TransitKeyInfo, Error> {
        let name = self.inner.settings.canary.clone();
        match self.describe_name(&name).await {
            Ok(info) if info.is_aes256_gcm() => Ok(info),
            Ok(info) => Err(Error::WrongKeyType {
                name,
                found: info.key_type,
            }),
            Err(Error::KeyNotFound { .. }) => self.create_name(&name).await,
            Err(e) => Err(e),
        }
    }

    /// Adds a new version to the Transit key of external key `id`; new
    /// encryptions use it, older versions keep decrypting. A key manager
    /// sharing this handle sees the new version at once, others within their
    /// `key_cache_ttl`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`], the errors of [`VaultAdmin::transit_name`], or
    /// [`Error::Request`].
    pub async fn rotate_key(&self, id: &KeyId) -> Result<TransitKeyInfo, Error> {
        let name = self.transit_name(id)?;
        self.describe_name(&name).await?;
        let path = format!("{}/keys/{name}/rotate", self.inner.settings.mount);
        self.post(&path, "{}").await?;
        self.inner.invalidate(&self.inner.slot(&name));
        self.describe_name(&name).await
    }

    /// Describes the Transit key of external key `id`.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`], the errors of [`VaultAdmin::transit_name`], or
    /// [`Error::Request`].
    pub async fn describe_key(&self, id: &KeyId) -> Result<TransitKeyInfo, Error> {
        let name = self.transit_name(id)?;
        self.describe_name(&name).await
    }

    /// Lists the keys of the Transit mount, with the external key id each one
    /// is reached through.
    ///
    /// # Errors
    ///
    /// [`Error::Request`].
    pub async fn list_keys(&self) -> Result<Vec<ListedKey>, Error> {
        let path = format!("{}/keys?list=true", self.inner.settings.mount);
        let call = self.call_of(Method::GET, &path, None);
        let answer = self
            .inner
            .call(&call, self.deadline())
            .await
            .map_err(Error::Request)?;
        let names = match answer.status {
            200 => serde_json::from_slice::<Envelope<KeyList>>(&answer.body)
                .ok()
                .and_then(|e| e.data)
                .map(|l| l.keys)
                .ok_or_else(|| decode(&call, "unreadable key list"))?,
            // An empty mount answers 404.
            404 => Vec::new(),
            _ => return Err(Error::Request(status_error(&call, None, &answer))),
        };
        Ok(names
            .into_iter()
            .map(|name| ListedKey {
                external_id: self.inner.external_id_of(&name),
                canary: name == self.inner.settings.canary,
                transit_key: name,
            })
            .collect())
    }

    /// Sets `disable_upsert` on the Transit mount, so that encrypting with a
    /// missing key fails instead of creating it.
    ///
    /// # Errors
    ///
    /// [`Error::Request`].
    pub async fn disable_upsert(&self) -> Result<(), Error> {
        let path = format!("{}/config/keys", self.inner.settings.mount);
        self.post(&path, r#"{"disable_upsert":true}"#).await
    }

    /// Describes Transit key `name`.
    pub(crate) async fn describe_name(&self, name: &str) -> Result<TransitKeyInfo, Error> {
        let slot = self.inner.slot(name);
        match self
            .inner
            .describe(&slot, self.deadline(), Some(Instant::now()))
            .await
        {
            Ok(Some(d)) => Ok(TransitKeyInfo::new(name, &d)),
            Ok(None) => Err(Error::KeyNotFound {
                name: name.to_owned(),
            }),
            Err(f) => Err(Error::Request(f.error)),
        }
    }

    /// Makes sure the canary key exists, creating it if needed and allowed.
    pub(crate) async fn ensure_canary(&self) -> Result<(), Error> {
        match self.create_canary().await {
            Ok(_) => Ok(()),
            Err(e @ Error::WrongKeyType { .. }) => Err(e),
            Err(e) => {
                tracing::error!(error = %crate::DisplayChain(&e), "cannot create the health check canary key");
                Err(Error::CanaryMissing {
                    name: self.inner.settings.canary.clone(),
                })
            }
        }
    }

    async fn create_name(&self, name: &str) -> Result<TransitKeyInfo, Error> {
        match self.describe_name(name).await {
            Ok(_) => {
                return Err(Error::KeyExists {
                    name: name.to_owned(),
                });
            }
            Err(Error::KeyNotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let path = format!("{}/keys/{name}", self.inner.settings.mount);
        let body = format!(
            r#"{{"type":"{AES256_GCM96}","exportable":false,"allow_plaintext_backup":false}}"#
        );
        self.post(&path, &body).await?;
        self.describe_name(name).await
    }

    async fn post(&self, path: &str, body: &str) -> Result<(), Error> {
        let call = self.call_of(Method::POST, path, Some(body));
        let answer = self
            .inner
            .call(&call, self.deadline())
            .await
            .map_err(Error::Request)?;
        if !(200..300).contains(&answer.status) {
            return Err(Error::Request(status_error(&call, None, &answer)));
        }
        Ok(())
    }

    fn call_of<'a>(&self, method: Method, path: &'a str, body: Option<&str>) -> Call<'a> {
        Call {
            method: method.clone(),
            path,
            body: body.map(|b| b.as_bytes().to_vec().into()),
            token: true,
            namespace: true,
            // Creating or rotating twice is not harmless; reads are.
            idempotent: method == Method::GET,
        }
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.inner.settings.admin_timeout
    }
}

fn decode(call: &Call<'_>, what: &'static str) -> Error {
    Error::Request(VaultError::new(
        call.method.clone(),
        call.path,
        None,
        VaultErrorKind::Decode(what),
    ))
}

impl fmt::Debug for VaultAdmin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultAdmin")
            .field("mount", &self.inner.settings.mount)
            .field("auth", &self.inner.auth.method())
            .finish_non_exhaustive()
    }
}

// === impl TransitKeyInfo ===

impl TransitKeyInfo {
    fn new(name: &str, d: &KeyDescription) -> Self {
        let mut versions: Vec<u32> = d.keys.keys().filter_map(|v| v.parse().ok()).collect();
        versions.sort_unstable();
        Self {
            name: name.to_owned(),
            key_type: d.key_type.clone(),
            latest_version: d.latest_version,
            min_decryption_version: d.min_decryption_version,
            min_encryption_version: d.min_encryption_version,
            versions,
            soft_deleted: d.soft_deleted,
            deletion_allowed: d.deletion_allowed,
            exportable: d.exportable,
            plaintext_backup_allowed: d.allow_plaintext_backup,
        }
    }

    /// Whether the key is an `aes256-gcm96` key, the only type XKS uses.
    pub fn is_aes256_gcm(&self) -> bool {
        self.key_type == AES256_GCM96
    }
}
