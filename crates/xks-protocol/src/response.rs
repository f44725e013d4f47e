//! Response bodies of the four XKS APIs.
//!
//! Proxies build these and serialize them; only the spec's fields are written, and absent
//! optional fields are left out (fact sheet §9.7). Call `validate` before sending a response
//! built from backend output. Clients and conformance testers parse answers with `from_json` or
//! serde, which check every constraint of the spec and ignore unknown fields.

use std::{
    fmt,
    hash::{Hash, Hasher},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{
    AUTHENTICATION_TAG_LEN, CDIV_LEN, Plaintext,
    gcm::ciphertext_data_integrity_value,
    wire::{self, Bound, IV_BOUND, METADATA_BOUND, Object, Problem, WireError},
};

/// The GetHealthStatus answer.
///
/// **Conformance** (fact sheet §6): `xksProxyFleetSize` is at least 1, and `ekmFleetDetails`
/// has 1 to 10 entries.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthResponse {
    /// `xksProxyFleetSize`: the number of proxy instances, at least 1.
    pub xks_proxy_fleet_size: u32,
    /// `xksProxyVendor`.
    pub xks_proxy_vendor: String,
    /// `xksProxyModel`: should include the product name and version.
    pub xks_proxy_model: String,
    /// `ekmVendor`: the external key manager's vendor.
    pub ekm_vendor: String,
    /// `ekmFleetDetails`: one entry per key manager in the cluster, 1 to 10.
    pub ekm_fleet_details: Vec<EkmFleetDetail>,
}

/// One key manager of [`HealthResponse::ekm_fleet_details`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EkmFleetDetail {
    /// `id`: unique within the cluster.
    pub id: String,
    /// `model`: product name, hardware version, anything useful for troubleshooting.
    pub model: String,
    /// `healthStatus`.
    pub health_status: HealthStatus,
}

wire_enum! {
    /// `healthStatus` of one key manager.
    pub enum HealthStatus {
        /// `ACTIVE`: healthy.
        Active => "ACTIVE",
        /// `DEGRADED`: unhealthy, but can still serve traffic.
        Degraded => "DEGRADED",
        /// `UNAVAILABLE`: cannot serve traffic.
        Unavailable => "UNAVAILABLE",
    }
}

/// The GetKeyMetadata answer.
///
/// **Conformance** (fact sheet §3.1): `keyUsage` has at most 10 entries. KMS's `CreateKey`
/// also wants `AES_256`, both `ENCRYPT` and `DECRYPT`, and `ENABLED`; those are checks for the
/// caller, not rules of the format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetadataResponse {
    /// `keySpec`.
    pub key_spec: KeySpec,
    /// `keyUsage`: at most 10 entries.
    pub key_usage: Vec<KeyUsage>,
    /// `keyStatus`: report `Disabled` with a 200 for a disabled key (fact sheet §12.12).
    pub key_status: KeyStatus,
}

/// `keySpec`: `AES_256`, or any other string a proxy reports.
///
/// Equality and hashing compare wire strings, so `Other("AES_256")` equals `Aes256`;
/// `From<String>` gives the canonical variant.
#[derive(Debug, Clone, Eq)]
pub enum KeySpec {
    /// `AES_256`: a 256-bit AES key, the only spec of XKS v1.
    Aes256,
    /// Any other value.
    Other(String),
}

/// One `keyUsage` entry: `ENCRYPT`, `DECRYPT`, or any other string, such as `WRAP`.
///
/// Equality and hashing compare wire strings, like [`KeySpec`]. Matching is case-sensitive.
#[derive(Debug, Clone, Eq)]
pub enum KeyUsage {
    /// `ENCRYPT`.
    Encrypt,
    /// `DECRYPT`.
    Decrypt,
    /// Any other value.
    Other(String),
}

wire_enum! {
    /// `keyStatus` of the external key.
    pub enum KeyStatus {
        /// `ENABLED`.
        Enabled => "ENABLED",
        /// `DISABLED`.
        Disabled => "DISABLED",
    }
}

/// The Encrypt answer.
///
/// **Conformance** (fact sheet §3.2, §5): the IV has 12 or 16 bytes, the metadata at most 20,
/// the tag 16, and the CDIV 32; the CDIV must be present when the request asked for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptResponse {
    /// `ciphertext`, as long as the plaintext, without the tag.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub ciphertext: Vec<u8>,
    /// `ciphertextMetadata`: at most 20 bytes, bound into the tag by the GCM AAD.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::serialize_opt_base64"
    )]
    pub ciphertext_metadata: Option<Vec<u8>>,
    /// `initializationVector`: 12 or 16 bytes.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub initialization_vector: Vec<u8>,
    /// `authenticationTag`.
    #[serde(serialize_with = "wire::serialize_base64")]
    pub authentication_tag: [u8; AUTHENTICATION_TAG_LEN],
    /// `ciphertextDataIntegrityValue`; see [`EncryptResponse::integrity_value`].
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "wire::serialize_opt_base64"
    )]
    pub ciphertext_data_integrity_value: Option<[u8; CDIV_LEN]>,
}

/// The Decrypt answer. `Debug` shows the plaintext's length only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecryptResponse {
    /// `plaintext`, as long as the ciphertext.
    pub plaintext: Plaintext,
}

/// A proxy's answer breaks the spec: which field, and how. The text names no values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResponseError(WireError);

// === impl HealthResponse ===

impl HealthResponse {
    /// Parses and validates a GetHealthStatus answer.
    ///
    /// # Errors
    ///
    /// The body is not JSON, a field is missing or of the wrong type, or a constraint of
    /// [`HealthResponse::validate`] fails.
    pub fn from_json(body: &[u8]) -> Result<Self, ResponseError> {
        Ok(Object::parse(body).and_then(Self::read)?)
    }

    /// Checks the constraints the types cannot express.
    ///
    /// # Errors
    ///
    /// `xks_proxy_fleet_size` is 0, or `ekm_fleet_details` does not have 1 to 10 entries.
    pub fn validate(&self) -> Result<(), ResponseError> {
        Ok(self.check()?)
    }

    fn read(mut body: Object) -> Result<Self, WireError> {
        let response = Self {
            xks_proxy_fleet_size: body.req("xksProxyFleetSize", wire::u32)?,
            xks_proxy_vendor: body.req("xksProxyVendor", wire::string)?,
            xks_proxy_model: body.req("xksProxyModel", wire::string)?,
            ekm_vendor: body.req("ekmVendor", wire::string)?,
            ekm_fleet_details: body
                .req_objects("ekmFleetDetails")?
                .into_iter()
                .map(EkmFleetDetail::read)
                .collect::<Result<_, _>>()?,
        };
        response.check()?;
        Ok(response)
    }

    fn check(&self) -> Result<(), WireError> {
        if self.xks_proxy_fleet_size == 0 {
            return Err(WireError::new(
                "xksProxyFleetSize",
                Problem::OutOfRange("at least 1"),
            ));
        }
        Bound::Between(1, 10)
            .check_count(self.ekm_fleet_details.len())
            .map_err(|problem| WireError::new("ekmFleetDetails", problem))
    }
}

impl<'de> Deserialize<'de> for HealthResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_object(deserializer, Self::read)
    }
}

// === impl EkmFleetDetail ===

impl EkmFleetDetail {
    fn read(mut entry: Object) -> Result<Self, WireError> {
        Ok(Self {
            id: entry.req("id", wire::string)?,
            model: entry.req("model", wire::string)?,
            health_status: entry.req("healthStatus", wire::keyword)?,
        })
    }
}

// === impl MetadataResponse ===

impl MetadataResponse {
    /// Parses and validates a GetKeyMetadata answer.
    ///
    /// # Errors
    ///
    /// The body is not JSON, a field is missing or of the wrong type, `keyStatus` is neither
    /// `ENABLED` nor `DISABLED`, or `keyUsage` has more than 10 entries.
    pub fn from_json(body: &[u8]) -> Result<Self, ResponseError> {
        Ok(Object::parse(body).and_then(Self::read)?)
    }

    /// Checks the constraints the types cannot express.
    ///
    /// # Errors
    ///
    /// `key_usage` has more than 10 entries.
    pub fn validate(&self) -> Result<(), ResponseError> {
        Ok(self.check()?)
    }

    fn read(mut body: Object) -> Result<Self, WireError> {
        let key_spec = body.req("keySpec", wire::string)?.into();
        let key_usage = body
            .req("keyUsage", wire::array)?
            .into_iter()
            .enumerate()
            .map(|(i, usage)| {
                wire::string(usage)
                    .map(KeyUsage::from)
                    .map_err(|problem| WireError::new(format!("keyUsage[{i}]"), problem))
            })
            .collect::<Result<_, _>>()?;
        let response = Self {
            key_spec,
            key_usage,
            key_status: body.req("keyStatus", wire::keyword)?,
        };
        response.check()?;
        Ok(response)
    }

    fn check(&self) -> Result<(), WireError> {
        Bound::AtMost(10)
            .check_count(self.key_usage.len())
            .map_err(|problem| WireError::new("keyUsage", problem))
    }
}

impl<'de> Deserialize<'de> for MetadataResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_object(deserializer, Self::read)
    }
}

// === impl KeySpec ===

impl KeySpec {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Aes256 => "AES_256",
            Self::Other(other) => other,
        }
    }
}

impl From<String> for KeySpec {
    fn from(spec: String) -> Self {
        match spec.as_str() {
            "AES_256" => Self::Aes256,
            _ => Self::Other(spec),
        }
    }
}

impl From<&str> for KeySpec {
    fn from(spec: &str) -> Self {
        spec.to_owned().into()
    }
}

impl PartialEq for KeySpec {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for KeySpec {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KeySpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// === impl KeyUsage ===

impl KeyUsage {
    /// The wire string.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Encrypt => "ENCRYPT",
            Self::Decrypt => "DECRYPT",
            Self::Other(other) => other,
        }
    }
}

impl From<String> for KeyUsage {
    fn from(usage: String) -> Self {
        match usage.as_str() {
            "ENCRYPT" => Self::Encrypt,
            "DECRYPT" => Self::Decrypt,
            _ => Self::Other(usage),
        }
    }
}

impl From<&str> for KeyUsage {
    fn from(usage: &str) -> Self {
        usage.to_owned().into()
    }
}

impl PartialEq for KeyUsage {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Hash for KeyUsage {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Display for KeyUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for KeyUsage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

// === impl EncryptResponse ===

impl EncryptResponse {
    /// Parses and validates an Encrypt answer.
    ///
    /// # Errors
    ///
    /// The body is not JSON, a field is missing, of the wrong type or not strict Base64, or a
    /// length is wrong.
    pub fn from_json(body: &[u8]) -> Result<Self, ResponseError> {
        Ok(Object::parse(body).and_then(Self::read)?)
    }

    /// Checks the constraints the types cannot express.
    ///
    /// # Errors
    ///
    /// The IV is not 12 or 16 bytes, or the metadata is longer than 20 bytes.
    pub fn validate(&self) -> Result<(), ResponseError> {
        Ok(self.check()?)
    }

    /// The ciphertext data integrity value of this answer, given the request's AAD (empty if
    /// absent): what `ciphertext_data_integrity_value` must hold when the request asked for it.
    pub fn integrity_value(&self, aad: &[u8]) -> [u8; CDIV_LEN] {
        ciphertext_data_integrity_value(
            aad,
            self.ciphertext_metadata.as_deref().unwrap_or_default(),
            &self.initialization_vector,
            &self.ciphertext,
            &self.authentication_tag,
        )
    }

    fn read(mut body: Object) -> Result<Self, WireError> {
        Ok(Self {
            ciphertext: body.req("ciphertext", |v| wire::base64(v, None))?,
            ciphertext_metadata: body.opt("ciphertextMetadata", wire::ciphertext_metadata)?,
            initialization_vector: body.req("initializationVector", wire::iv)?,
            authentication_tag: body.req("authenticationTag", wire::base64_array)?,
            ciphertext_data_integrity_value: body
                .opt("ciphertextDataIntegrityValue", wire::base64_array)?,
        })
    }

    fn check(&self) -> Result<(), WireError> {
        IV_BOUND
            .check_len(self.initialization_vector.len())
            .map_err(|problem| WireError::new("initializationVector", problem))?;
        match &self.ciphertext_metadata {
            Some(metadata) => METADATA_BOUND
                .check_len(metadata.len())
                .map_err(|problem| WireError::new("ciphertextMetadata", problem)),
            None => Ok(()),
        }
    }
}

impl<'de> Deserialize<'de> for EncryptResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_object(deserializer, Self::read)
    }
}

// === impl DecryptResponse ===

impl DecryptResponse {
    /// Parses a Decrypt answer; the plaintext lands in a zeroizing buffer.
    ///
    /// # Errors
    ///
    /// The body is not JSON, or `plaintext` is missing, not a string, or not strict Base64.
    pub fn from_json(body: &[u8]) -> Result<Self, ResponseError> {
        Ok(Object::parse(body).and_then(Self::read)?)
    }

    fn read(mut body: Object) -> Result<Self, WireError> {
        Ok(Self {
            plaintext: body.req("plaintext", |v| wire::plaintext(v, None))?,
        })
    }
}

impl<'de> Deserialize<'de> for DecryptResponse {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        wire::deserialize_object(deserializer, Self::read)
    }
}

// === impl ResponseError ===

impl From<WireError> for ResponseError {
    fn from(error: WireError) -> Self {
        Self(error)
    }
}

#[cfg(test)]
mod tests;
