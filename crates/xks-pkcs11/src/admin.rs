//! Operator commands on one token: create keys and versions, show and list
//! keys, disable and enable them.

use std::fmt;
use std::sync::Arc;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use xks_keymanager::KeyVersion;

use crate::keys::{self, CalendarDate, FindError, KeyAttrs};
use crate::manager::read_pin;
use crate::module::Module;
use crate::{Error, Pkcs11Config};

/// Operator commands on one configured token, run on the calling thread
/// (they block). The proxy binary exposes them as subcommands.
///
/// Keys it creates are AES-256 secret keys that are token objects, private,
/// sensitive and never extractable, with the usage asked for. A new **version** of a key is a new key labelled
/// `<label>.v<n>` with the next `n` and the usage of the newest version; the
/// key manager encrypts with it once it sees it ([`refresh_keys`] or
/// `key_refresh_interval`). Old versions are kept so old ciphertexts decrypt.
///
/// It acts on one token only. When several tokens hold the same keys for
/// failover, replicating keys between them is the HSM's job (cluster
/// replication, or the vendor's backup and restore).
///
/// Nothing here reads or prints key values.
///
/// [`refresh_keys`]: crate::Pkcs11KeyManager::refresh_keys
pub struct Pkcs11Admin {
    session: Session,
    token: String,
    _module: Arc<Module>,
}

/// Which operations a new key allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// `CKA_ENCRYPT`.
    pub encrypt: bool,
    /// `CKA_DECRYPT`.
    pub decrypt: bool,
}

/// The attributes of one secret key object on the token. Never its value.
///
/// `Display` prints one attribute per line.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyObject {
    /// `CKA_LABEL`.
    pub label: String,
    /// The label of the key's version 1, and this object's version, when the
    /// label follows the `<label>.v<n>` convention.
    pub base_label: String,
    /// This object's version (1 for a label without a `.v<n>` suffix).
    pub version: u32,
    /// `CKA_KEY_TYPE`, e.g. `CKK_AES`.
    pub key_type: String,
    /// The key length in bits (`CKA_VALUE_LEN` × 8), when known.
    pub bits: Option<u64>,
    /// `CKA_ENCRYPT`.
    pub encrypt: bool,
    /// `CKA_DECRYPT`.
    pub decrypt: bool,
    /// `CKA_SIGN`.
    pub sign: bool,
    /// `CKA_VERIFY`.
    pub verify: bool,
    /// `CKA_WRAP`.
    pub wrap: bool,
    /// `CKA_UNWRAP`.
    pub unwrap: bool,
    /// `CKA_DERIVE`.
    pub derive: bool,
    /// `CKA_SENSITIVE`.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`.
    pub extractable: bool,
    /// `CKA_ALWAYS_SENSITIVE`.
    pub always_sensitive: bool,
    /// `CKA_NEVER_EXTRACTABLE`.
    pub never_extractable: bool,
    /// `CKA_PRIVATE`.
    pub private: bool,
    /// `CKA_MODIFIABLE`.
    pub modifiable: bool,
    /// `CKA_LOCAL`: generated on the token.
    pub local: bool,
    /// `CKA_END_DATE` as `YYYY-MM-DD`, when set and readable.
    pub end_date: Option<String>,
    /// Whether the key is disabled (a disabling marker exists, or the end date
    /// has passed): the proxy reports it `DISABLED`.
    pub disabled: bool,
    /// Why the proxy would refuse to serve the key, unless
    /// `allow_extractable_keys` is set.
    pub refusal: Option<String>,
}

// === impl Usage ===

impl Usage {
    /// Encrypt and decrypt: what XKS keys need.
    pub const ENCRYPT_DECRYPT: Self = Self {
        encrypt: true,
        decrypt: true,
    };
    /// Encrypt only.
    pub const ENCRYPT_ONLY: Self = Self {
        encrypt: true,
        decrypt: false,
    };
    /// Decrypt only.
    pub const DECRYPT_ONLY: Self = Self {
        encrypt: false,
        decrypt: true,
    };
    /// Neither.
    pub const NONE: Self = Self {
        encrypt: false,
        decrypt: false,
    };
}

// === impl Pkcs11Admin ===

impl Pkcs11Admin {
    /// Opens a read-write session on the configured token named `token` (a
    /// token label or serial number of one of `config.slots`), or on the first
    /// configured slot's token when `None`, and logs in with its PIN (`env`
    /// looks up environment variables).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no configured slot has that token, and as
    /// [`Pkcs11KeyManager::open`](crate::Pkcs11KeyManager::open) for modules,
    /// PINs and tokens.
    pub fn open(
        config: &Pkcs11Config,
        env: impl Fn(&str) -> Option<String>,
        token: Option<&str>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let slot = match token {
            None => config.slots.first(),
            Some(token) => config.slots.iter().find(|s| {
                s.token_label.as_deref() == Some(token) || s.token_serial.as_deref() == Some(token)
            }),
        }
        .ok_or_else(|| Error::config("no configured slot has this token label or serial"))?;
        let module = Module::load(&config.module_of(slot)?)?;
        let pin = read_pin(&config.pin_of(slot)?, &env)?;
        let selector = slot.selector()?;
        let (slot_id, info) = module
            .find_slot(&selector)
            .map_err(|e| Error::call("listing slots", e))?
            .ok_or_else(|| Error::TokenNotFound {
                module: module.path().to_owned(),
                selector: selector.to_string(),
            })?;
        let session = module
            .pkcs11()
            .open_rw_session(slot_id)
            .map_err(|e| Error::call("opening a session", e))?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::UserAlreadyLoggedIn,
                _,
            )) => {}
            Err(e) => return Err(Error::call("logging in", e)),
        }
        Ok(Self {
            session,
            token: info.label().trim_end().to_owned(),
            _module: module,
        })
    }

    /// The label of the token this acts on.
    pub fn token_label(&self) -> &str {
        &self.token
    }

    /// Creates version 1 of a key labelled `label` with `usage`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a label that cannot name a key (empty, or ending
    /// in `.v<n>`), [`Error::KeyExists`], [`Error::Call`].
    pub fn create_key(&self, label: &str, usage: Usage) -> Result<KeyObject, Error> {
        keys::validate_label(label).map_err(Error::config)?;
        if self.find(label)?.is_some() {
            return Err(Error::KeyExists {
                label: label.to_owned(),
            });
        }
        self.generate(label, usage)
    }

    /// Creates the next version of the key labelled `label` (`<label>.v<n>`),
    /// with the usage of its newest version. New encryptions use it; older
    /// versions stay for decryption.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`] when the key has no version 1,
    /// [`Error::TooManyVersions`], [`Error::Call`].
    pub fn create_version(&self, label: &str) -> Result<KeyObject, Error> {
        let versions = self.describe_key(label)?;
        let Some(newest) = versions.last() else {
            return Err(Error::key_not_found(label));
        };
        let next = KeyVersion::new(newest.version)
            .and_then(KeyVersion::next)
            .ok_or_else(|| Error::TooManyVersions {
                label: label.to_owned(),
            })?;
        let usage = Usage {
            encrypt: newest.encrypt,
            decrypt: newest.decrypt,
        };
        self.generate(&keys::version_label(label, next), usage)
    }

    /// The attributes of every version of the key labelled `label`, version 1
    /// first.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`], [`Error::DuplicateLabel`], [`Error::Call`].
    pub fn describe_key(&self, label: &str) -> Result<Vec<KeyObject>, Error> {
        let mut found = Vec::new();
        let mut version = KeyVersion::FIRST;
        loop {
            let version_label = keys::version_label(label, version);
            let Some(handle) = self.find(&version_label)? else {
                break;
            };
            found.push(self.object(handle, version_label)?);
            match version.next() {
                Some(next) => version = next,
                None => break,
            }
        }
        if found.is_empty() {
            return Err(Error::key_not_found(label));
        }
        Ok(found)
    }

    /// Every secret key on the token (that this user may see), sorted by label.
    ///
    /// # Errors
    ///
    /// [`Error::Call`].
    pub fn list_keys(&self) -> Result<Vec<KeyObject>, Error> {
        let handles = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(true),
            ])
            .map_err(|e| Error::call("listing keys", e))?;
        let mut objects = Vec::with_capacity(handles.len());
        for handle in handles {
            let label = self.label_of(handle)?;
            objects.push(self.object(handle, label)?);
        }
        objects.sort_by(|a, b| {
            (a.base_label.as_str(), a.version).cmp(&(b.base_label.as_str(), b.version))
        });
        Ok(objects)
    }

    /// Disables (`true`) or enables (`false`) the key labelled `label`, all
    /// its versions: creates or destroys its **disabling marker**, a private
    /// data object (`CKO_DATA`) labelled `<label>.disabled` on the token. The
    /// key manager then reports the key `DISABLED` and refuses to use it
    /// (after [`refresh_keys`](crate::Pkcs11KeyManager::refresh_keys) or within
    /// `key_refresh_interval`). The key itself is not changed, so this works
    /// for keys that are not modifiable.
    ///
    /// # Errors
    ///
    /// [`Error::KeyNotFound`], [`Error::Call`].
    pub fn set_disabled(&self, label: &str, disabled: bool) -> Result<(), Error> {
        if self.find(label)?.is_none() {
            return Err(Error::key_not_found(label));
        }
        let markers = keys::find_markers(&self.session, label)
            .map_err(|e| Error::call("finding a disabling marker", e))?;
        if disabled {
            if markers.is_empty() {
                let template = [
                    Attribute::Class(ObjectClass::DATA),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Label(keys::disabled_marker_label(label).into_bytes()),
                    Attribute::Application(b"xks-toolkit".to_vec()),
                    Attribute::Value(b"disabled".to_vec()),
                ];
                self.session
                    .create_object(&template)
                    .map_err(|e| Error::call("creating a disabling marker", e))?;
            }
        } else {
            for marker in markers {
                self.session
                    .destroy_object(marker)
                    .map_err(|e| Error::call("destroying a disabling marker", e))?;
            }
        }
        Ok(())
    }

    fn generate(&self, label: &str, usage: Usage) -> Result<KeyObject, Error> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen(32.into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(usage.encrypt),
            Attribute::Decrypt(usage.decrypt),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Derive(false),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let handle = self
            .session
            .generate_key(&Mechanism::AesKeyGen, &template)
            .map_err(|e| Error::call("generating an AES-256 key", e))?;
        self.object(handle, label.to_owned())
    }

    /// Imports raw key material: for tests only (replicas of one key on
    /// several tokens, extractable keys).
    #[cfg(feature = "testing")]
    pub(crate) fn import(
        &self,
        label: &str,
        material: &[u8; 32],
        usage: Usage,
        extractable: bool,
        sensitive: bool,
    ) -> Result<KeyObject, Error> {
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Value(material.to_vec()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(sensitive),
            Attribute::Extractable(extractable),
            Attribute::Modifiable(true),
            Attribute::Encrypt(usage.encrypt),
            Attribute::Decrypt(usage.decrypt),
            Attribute::Label(label.as_bytes().to_vec()),
        ];
        let handle = self
            .session
            .create_object(&template)
            .map_err(|e| Error::call("importing a key", e))?;
        self.object(handle, label.to_owned())
    }

    fn find(&self, label: &str) -> Result<Option<ObjectHandle>, Error> {
        match keys::find_key(&self.session, label) {
            Ok(found) => Ok(found),
            Err(FindError::Duplicate) => Err(Error::DuplicateLabel {
                label: label.to_owned(),
            }),
            Err(FindError::Call(e)) => Err(Error::call("finding a key by label", e)),
        }
    }

    fn label_of(&self, handle: ObjectHandle) -> Result<String, Error> {
        let attrs = self
            .session
            .get_attributes(handle, &[cryptoki::object::AttributeType::Label])
            .map_err(|e| Error::call("reading a key's label", e))?;
        Ok(attrs
            .into_iter()
            .find_map(|a| match a {
                Attribute::Label(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                _ => None,
            })
            .unwrap_or_default())
    }

    fn object(&self, handle: ObjectHandle, label: String) -> Result<KeyObject, Error> {
        let attrs = keys::read_attrs(&self.session, handle)
            .map_err(|e| Error::call("reading a key's attributes", e))?;
        let mut object = KeyObject::new(label, &attrs);
        if keys::has_disabled_marker(&self.session, &object.base_label)
            .map_err(|e| Error::call("finding a disabling marker", e))?
        {
            object.disabled = true;
        }
        Ok(object)
    }
}

impl fmt::Debug for Pkcs11Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Admin")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

// === impl KeyObject ===

impl KeyObject {
    fn new(label: String, attrs: &KeyAttrs) -> Self {
        let (base_label, version) = match keys::parse_version_suffix(&label) {
            Some((base, version)) => (base.to_owned(), version.get()),
            None => (label.clone(), 1),
        };
        Self {
            base_label,
            version,
            key_type: attrs
                .key_type
                .map_or_else(|| "unknown".to_owned(), |t| t.to_string()),
            bits: attrs.value_len.map(|len| len * 8),
            encrypt: attrs.encrypt,
            decrypt: attrs.decrypt,
            sign: attrs.sign,
            verify: attrs.verify,
            wrap: attrs.wrap,
            unwrap: attrs.unwrap,
            derive: attrs.derive,
            sensitive: attrs.sensitive,
            extractable: attrs.extractable,
            always_sensitive: attrs.always_sensitive,
            never_extractable: attrs.never_extractable,
            private: attrs.private,
            modifiable: attrs.modifiable,
            local: attrs.local,
            end_date: attrs.end_date.map(|d| d.to_string()),
            disabled: attrs.is_expired(CalendarDate::today()),
            refusal: attrs.refusal(false).map(str::to_owned),
            label,
        }
    }
}

impl fmt::Display for KeyObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "label:             {}", self.label)?;
        writeln!(
            f,
            "version:           {} of `{}`",
            self.version, self.base_label
        )?;
        match self.bits {
            Some(bits) => writeln!(f, "key type:          {} ({bits} bits)", self.key_type)?,
            None => writeln!(f, "key type:          {}", self.key_type)?,
        }
        let flags = [
            ("encrypt", self.encrypt),
            ("decrypt", self.decrypt),
            ("sign", self.sign),
            ("verify", self.verify),
            ("wrap", self.wrap),
            ("unwrap", self.unwrap),
            ("derive", self.derive),
        ];
        let usage: Vec<&str> = flags
            .iter()
            .filter(|(_, on)| *on)
            .map(|(name, _)| *name)
            .collect();
        writeln!(f, "usage:             {}", usage.join(", "))?;
        writeln!(f, "sensitive:         {}", self.sensitive)?;
        writeln!(f, "extractable:       {}", self.extractable)?;
        writeln!(f, "always sensitive:  {}", self.always_sensitive)?;
        writeln!(f, "never extractable: {}", self.never_extractable)?;
        writeln!(f, "private:           {}", self.private)?;
        writeln!(f, "modifiable:        {}", self.modifiable)?;
        writeln!(f, "generated on HSM:  {}", self.local)?;
        writeln!(
            f,
            "end date:          {}",
            self.end_date.as_deref().unwrap_or("none")
        )?;
        writeln!(
            f,
            "status:            {}",
            if self.disabled { "DISABLED" } else { "ENABLED" }
        )?;
        if let Some(refusal) = &self.refusal {
            writeln!(f, "refused:           {refusal}")?;
        }
        Ok(())
    }
}
