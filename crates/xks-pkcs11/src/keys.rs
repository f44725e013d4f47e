//! Key objects on the token: labels and versions, attributes, and what they mean
//! for XKS (key spec, usage, status, and whether the key may be served).

use std::time::{SystemTime, UNIX_EPOCH};

use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use xks_keymanager::KeyVersion;
use xks_protocol::{KeySpec, KeyUsage};

/// The longest label accepted for a key's version 1, in bytes.
const MAX_LABEL_LEN: usize = 120;

/// What a disabling marker's label adds to the key's label.
const DISABLED_SUFFIX: &str = ".disabled";

/// The attributes of a secret key object that matter to the proxy. Never its
/// value: the value of a sensitive key cannot be read, and is never asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyAttrs {
    pub(crate) key_type: Option<KeyType>,
    pub(crate) value_len: Option<u64>,
    pub(crate) encrypt: bool,
    pub(crate) decrypt: bool,
    pub(crate) sign: bool,
    pub(crate) verify: bool,
    pub(crate) wrap: bool,
    pub(crate) unwrap: bool,
    pub(crate) derive: bool,
    pub(crate) extractable: bool,
    pub(crate) sensitive: bool,
    pub(crate) private: bool,
    pub(crate) modifiable: bool,
    pub(crate) local: bool,
    pub(crate) never_extractable: bool,
    pub(crate) always_sensitive: bool,
    /// `CKA_END_DATE`, when set: the last day the key may be used.
    pub(crate) end_date: Option<CalendarDate>,
}

/// A day of the Gregorian calendar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CalendarDate {
    pub(crate) year: u16,
    pub(crate) month: u8,
    pub(crate) day: u8,
}

/// Why a lookup by label found no single key.
#[derive(Debug)]
pub(crate) enum FindError {
    Call(cryptoki::error::Error),
    Duplicate,
}

/// The attributes [`read_attrs`] asks for, in the order it reads them.
const ATTRS: [AttributeType; 16] = [
    AttributeType::KeyType,
    AttributeType::ValueLen,
    AttributeType::Encrypt,
    AttributeType::Decrypt,
    AttributeType::Sign,
    AttributeType::Verify,
    AttributeType::Wrap,
    AttributeType::Unwrap,
    AttributeType::Derive,
    AttributeType::Extractable,
    AttributeType::Sensitive,
    AttributeType::Private,
    AttributeType::Modifiable,
    AttributeType::Local,
    AttributeType::NeverExtractable,
    AttributeType::AlwaysSensitive,
];

/// The label of `version` of the key whose version 1 is labelled `label`:
/// `label` itself for version 1, `label.v<n>` after.
pub(crate) fn version_label(label: &str, version: KeyVersion) -> String {
    if version == KeyVersion::FIRST {
        label.to_owned()
    } else {
        format!("{label}.v{}", version.get())
    }
}

/// Splits `label.v<n>` (n ≥ 2, decimal without leading zeros) into its base
/// label and version; `None` for a label without such a suffix.
pub(crate) fn parse_version_suffix(label: &str) -> Option<(&str, KeyVersion)> {
    let (base, digits) = label.rsplit_once(".v")?;
    if base.is_empty() || digits.is_empty() || digits.starts_with('0') {
        return None;
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = digits.parse().ok()?;
    if n < 2 {
        return None;
    }
    Some((base, KeyVersion::new(n)?))
}

/// Checks that `label` can name a key's version 1.
pub(crate) fn validate_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("the label is empty");
    }
    if label.len() > MAX_LABEL_LEN {
        return Err("the label is longer than 120 bytes");
    }
    if label.chars().any(char::is_control) {
        return Err("the label contains a control character");
    }
    if parse_version_suffix(label).is_some() {
        return Err("the label ends in `.v<n>`, which names a later version of another key");
    }
    Ok(())
}

/// The one secret key on the token labelled `label`, if any. Session objects
/// (such as the copies of `session_key_copies`, visible to every session of
/// the process) are not token keys and are not found.
pub(crate) fn find_key(session: &Session, label: &str) -> Result<Option<ObjectHandle>, FindError> {
    let template = [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::Token(true),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    let found = session.find_objects(&template).map_err(FindError::Call)?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(FindError::Duplicate),
    }
}

/// Reads the attributes of a secret key.
pub(crate) fn read_attrs(
    session: &Session,
    handle: ObjectHandle,
) -> Result<KeyAttrs, cryptoki::error::Error> {
    let mut attrs = KeyAttrs {
        key_type: None,
        value_len: None,
        encrypt: false,
        decrypt: false,
        sign: false,
        verify: false,
        wrap: false,
        unwrap: false,
        derive: false,
        // Unknown means the worst: a key whose attributes cannot be read is
        // treated as extractable and not sensitive.
        extractable: true,
        sensitive: false,
        private: false,
        modifiable: false,
        local: false,
        never_extractable: false,
        always_sensitive: false,
        end_date: None,
    };
    for attr in session.get_attributes(handle, &ATTRS)? {
        match attr {
            Attribute::KeyType(t) => attrs.key_type = Some(t),
            Attribute::ValueLen(len) => {
                attrs.value_len = u64::try_from(usize::from(len)).ok();
            }
            Attribute::Encrypt(b) => attrs.encrypt = b,
            Attribute::Decrypt(b) => attrs.decrypt = b,
            Attribute::Sign(b) => attrs.sign = b,
            Attribute::Verify(b) => attrs.verify = b,
            Attribute::Wrap(b) => attrs.wrap = b,
            Attribute::Unwrap(b) => attrs.unwrap = b,
            Attribute::Derive(b) => attrs.derive = b,
            Attribute::Extractable(b) => attrs.extractable = b,
            Attribute::Sensitive(b) => attrs.sensitive = b,
            Attribute::Private(b) => attrs.private = b,
            Attribute::Modifiable(b) => attrs.modifiable = b,
            Attribute::Local(b) => attrs.local = b,
            Attribute::NeverExtractable(b) => attrs.never_extractable = b,
            Attribute::AlwaysSensitive(b) => attrs.always_sensitive = b,
            _ => {}
        }
    }
    // Read on its own: SoftHSM 2.6 fails C_GetAttributeValue with
    // CKR_GENERAL_ERROR for the end date of a private object once one was set,
    // and that must not hide the other attributes. An unreadable date is no date.
    if let Ok(found) = session.get_attributes(handle, &[AttributeType::EndDate]) {
        for attr in found {
            if let Attribute::EndDate(date) = attr {
                attrs.end_date = CalendarDate::from_ck(&date.year, &date.month, &date.day);
            }
        }
    }
    Ok(attrs)
}

/// The label of the marker object that disables the key labelled `label`.
pub(crate) fn disabled_marker_label(label: &str) -> String {
    format!("{label}{DISABLED_SUFFIX}")
}

/// Whether a disabling marker (a data object labelled `<label>.disabled`)
/// exists for the key labelled `label`.
pub(crate) fn has_disabled_marker(
    session: &Session,
    label: &str,
) -> Result<bool, cryptoki::error::Error> {
    Ok(!find_markers(session, label)?.is_empty())
}

/// The disabling markers of the key labelled `label`.
pub(crate) fn find_markers(
    session: &Session,
    label: &str,
) -> Result<Vec<ObjectHandle>, cryptoki::error::Error> {
    session.find_objects(&[
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Label(disabled_marker_label(label).into_bytes()),
    ])
}

// === impl KeyAttrs ===

impl KeyAttrs {
    /// Whether this is a 256-bit AES key.
    pub(crate) fn is_aes_256(&self) -> bool {
        self.key_type == Some(KeyType::AES) && self.value_len == Some(32)
    }

    /// The XKS `keySpec`: `AES_256`, or a descriptive other value.
    pub(crate) fn key_spec(&self) -> KeySpec {
        match (self.key_type, self.value_len) {
            (Some(KeyType::AES), Some(32)) => KeySpec::Aes256,
            (Some(KeyType::AES), Some(len)) => KeySpec::Other(format!("AES_{}", len * 8)),
            (Some(other), _) => KeySpec::Other(other.to_string()),
            (None, _) => KeySpec::Other("UNKNOWN".to_owned()),
        }
    }

    /// The XKS `keyUsage`, PKCS#11 style: at most 7 entries.
    pub(crate) fn key_usage(&self) -> Vec<KeyUsage> {
        let mut usage = Vec::new();
        if self.encrypt {
            usage.push(KeyUsage::Encrypt);
        }
        if self.decrypt {
            usage.push(KeyUsage::Decrypt);
        }
        for (allowed, name) in [
            (self.sign, "SIGN"),
            (self.verify, "VERIFY"),
            (self.wrap, "WRAP"),
            (self.unwrap, "UNWRAP"),
            (self.derive, "DERIVE"),
        ] {
            if allowed {
                usage.push(KeyUsage::Other(name.to_owned()));
            }
        }
        usage
    }

    /// Whether `CKA_END_DATE` is before `today`: the key is disabled.
    pub(crate) fn is_expired(&self, today: CalendarDate) -> bool {
        self.end_date.is_some_and(|end| end < today)
    }

    /// Why the proxy must not serve this key, if it must not.
    pub(crate) fn refusal(&self, allow_extractable: bool) -> Option<&'static str> {
        if self.key_type != Some(KeyType::AES) {
            return Some("it is not an AES key");
        }
        if allow_extractable {
            return None;
        }
        if self.extractable {
            return Some(
                "it is extractable (CKA_EXTRACTABLE is true); set allow_extractable_keys to serve it anyway",
            );
        }
        if !self.sensitive {
            return Some(
                "it is not sensitive (CKA_SENSITIVE is false); set allow_extractable_keys to serve it anyway",
            );
        }
        None
    }
}

fn unix_days_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    i64::try_from(secs / 86_400).unwrap_or(0)
}

// === impl CalendarDate ===

impl CalendarDate {
    /// Today in UTC.
    pub(crate) fn today() -> Self {
        Self::from_unix_days(unix_days_now())
    }

    /// The date `days` days after 1970-01-01 (Howard Hinnant's civil-from-days).
    pub(crate) fn from_unix_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Self {
            year: u16::try_from(year).unwrap_or(u16::MAX),
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        }
    }

    /// Parses a `CK_DATE` (ASCII digits); `None` when empty or not a date.
    pub(crate) fn from_ck(year: &[u8; 4], month: &[u8; 2], day: &[u8; 2]) -> Option<Self> {
        fn digits(bytes: &[u8]) -> Option<u16> {
            let s = std::str::from_utf8(bytes).ok()?;
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        let date = Self {
            year: digits(year)?,
            month: u8::try_from(digits(month)?).ok()?,
            day: u8::try_from(digits(day)?).ok()?,
        };
        let valid = date.year > 0 && (1..=12).contains(&date.month) && (1..=31).contains(&date.day);
        valid.then_some(date)
    }
}

impl std::fmt::Display for CalendarDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests;
