//! Strict JSON and Base64 reading shared by every request and response type.
//!
//! Bodies are parsed into a `serde_json::Value` tree whose objects are checked for duplicate
//! keys, then read field by field. Every failure is a [`WireError`] naming the field and the
//! problem, never the value, so its text is safe to send back as an `errorMessage`.

use std::{borrow::Cow, fmt};

use base64::{DecodeError, Engine as _, engine::general_purpose::STANDARD};
use serde::{
    Deserialize, Deserializer, Serializer,
    de::{self, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Number, Value, error::Category};
use zeroize::Zeroize;

use crate::{ErrorName, IV_LENS, MAX_CIPHERTEXT_METADATA_LEN, Plaintext, XksError};

/// The allowed IV lengths.
pub(crate) const IV_BOUND: Bound = Bound::Either(IV_LENS[0], IV_LENS[1]);

/// The allowed `ciphertextMetadata` lengths.
pub(crate) const METADATA_BOUND: Bound = Bound::AtMost(MAX_CIPHERTEXT_METADATA_LEN);

/// A closed set of keywords, such as `"AES_GCM"`, read from a JSON string.
pub(crate) trait WireEnum: Sized {
    /// Every accepted keyword.
    const WIRE: &'static [&'static str];

    /// The value for a keyword, if it is one.
    fn from_wire(s: &str) -> Option<Self>;
}

/// A JSON object being read field by field; `path` locates it in the body for messages.
#[derive(Debug)]
pub(crate) struct Object {
    map: Map<String, Value>,
    path: Cow<'static, str>,
}

/// A body that failed to parse or validate: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WireError {
    /// `None` for the body as a whole.
    field: Option<String>,
    problem: Problem,
}

/// What is wrong with a field. The texts name no values, only kinds and lengths.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Problem {
    #[error("is not valid JSON (line {line}, column {column})")]
    Syntax { line: usize, column: usize },
    #[error("has a duplicate key in a JSON object (line {line}, column {column})")]
    DuplicateKey { line: usize, column: usize },
    #[error("is required but missing")]
    Missing,
    #[error("must be {expected}, not {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("must be {}", one_of(.0))]
    Keyword(&'static [&'static str]),
    #[error("must be {0}")]
    OutOfRange(&'static str),
    #[error("is not valid padded standard Base64 (RFC 4648 section 4): {0}")]
    Base64(String),
    #[error("must decode to {expected} bytes, not {len}")]
    Length { len: usize, expected: Bound },
    #[error("must have {expected} entries, not {len}")]
    Count { len: usize, expected: Bound },
    #[error("is {len} bytes; this proxy accepts at most {max}")]
    TooLarge { len: usize, max: usize },
    #[error("has {chars} Base64 characters, more than this proxy's limit of {max} bytes")]
    TooLargeEncoded { chars: usize, max: usize },
}

/// The allowed values of a length or a count, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    Exactly(usize),
    AtMost(usize),
    Either(usize, usize),
    Between(usize, usize),
}

/// A JSON value whose objects, at every depth, have no duplicate keys.
struct Strict(Value);

struct StrictVisitor;

// === impl Object ===

impl Object {
    /// Parses a body that must be one JSON object.
    pub(crate) fn parse(body: &[u8]) -> Result<Self, WireError> {
        let Strict(value) = serde_json::from_slice(body).map_err(WireError::from_json)?;
        Self::body(value)
    }

    fn body(value: Value) -> Result<Self, WireError> {
        let map = object(value).map_err(|problem| WireError {
            field: None,
            problem,
        })?;
        Ok(Self {
            map,
            path: Cow::Borrowed(""),
        })
    }

    /// Reads an optional field; JSON `null` counts as absent.
    pub(crate) fn opt<T>(
        &mut self,
        name: &'static str,
        convert: impl FnOnce(Value) -> Result<T, Problem>,
    ) -> Result<Option<T>, WireError> {
        match self.map.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => convert(value)
                .map(Some)
                .map_err(|problem| self.error(name, problem)),
        }
    }

    /// Reads a required field; JSON `null` counts as missing.
    pub(crate) fn req<T>(
        &mut self,
        name: &'static str,
        convert: impl FnOnce(Value) -> Result<T, Problem>,
    ) -> Result<T, WireError> {
        self.opt(name, convert)?
            .ok_or_else(|| self.error(name, Problem::Missing))
    }

    /// Reads a required field that must be a JSON object.
    pub(crate) fn req_object(&mut self, name: &'static str) -> Result<Self, WireError> {
        let map = self.req(name, object)?;
        let path = if self.path.is_empty() {
            Cow::Borrowed(name)
        } else {
            Cow::Owned(self.field_path(name))
        };
        Ok(Self { map, path })
    }

    /// Reads a required field that must be an array of JSON objects.
    pub(crate) fn req_objects(&mut self, name: &'static str) -> Result<Vec<Self>, WireError> {
        let items = self.req(name, array)?;
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let entry = format!("{name}[{i}]");
                let map = object(item).map_err(|problem| self.error(&entry, problem))?;
                let path = self.field_path(&entry).into();
                Ok(Self { map, path })
            })
            .collect()
    }

    /// An error about the field `name` of this object.
    fn error(&self, name: &str, problem: Problem) -> WireError {
        WireError {
            field: Some(self.field_path(name)),
            problem,
        }
    }

    fn field_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }
}

/// Deserializes one JSON object with duplicate-key checks, then reads it with `parse`.
pub(crate) fn deserialize_object<'de, D, T>(
    deserializer: D,
    parse: fn(Object) -> Result<T, WireError>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let Strict(value) = Strict::deserialize(deserializer)?;
    Object::body(value)
        .and_then(parse)
        .map_err(de::Error::custom)
}

// === Converters from a present, non-null JSON value ===

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(expected: &'static str, value: &Value) -> Problem {
    Problem::WrongType {
        expected,
        found: kind(value),
    }
}

pub(crate) fn string(value: Value) -> Result<String, Problem> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(wrong_type("a string", &other)),
    }
}

fn object(value: Value) -> Result<Map<String, Value>, Problem> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(wrong_type("a JSON object", &other)),
    }
}

pub(crate) fn array(value: Value) -> Result<Vec<Value>, Problem> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(wrong_type("an array", &other)),
    }
}

/// A JSON number that is an integer from 0 to `u32::MAX`.
pub(crate) fn u32(value: Value) -> Result<u32, Problem> {
    match &value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or(Problem::OutOfRange("an integer from 0 to 4294967295")),
        other => Err(wrong_type("a number", other)),
    }
}

pub(crate) fn keyword<T: WireEnum>(value: Value) -> Result<T, Problem> {
    let s = string(value)?;
    T::from_wire(&s).ok_or(Problem::Keyword(T::WIRE))
}

/// Standard Base64 text decoded to bytes, with an optional limit on the decoded length.
pub(crate) fn base64(value: Value, max: Option<usize>) -> Result<Vec<u8>, Problem> {
    let text = string(value)?;
    check_encoded_len(&text, max)?;
    let bytes = STANDARD.decode(&text).map_err(base64_problem)?;
    check_len(bytes.len(), max)?;
    Ok(bytes)
}

/// Like [`base64`] for plaintext: the Base64 text is zeroized once decoded.
pub(crate) fn plaintext(value: Value, max: Option<usize>) -> Result<Plaintext, Problem> {
    let mut text = string(value)?;
    let decoded = check_encoded_len(&text, max)
        .and_then(|()| Plaintext::from_base64(&text).map_err(base64_problem));
    text.zeroize();
    let plaintext = decoded?;
    check_len(plaintext.len(), max)?;
    Ok(plaintext)
}

/// Base64 text that must decode to exactly `N` bytes.
pub(crate) fn base64_array<const N: usize>(value: Value) -> Result<[u8; N], Problem> {
    let bytes = base64(value, None)?;
    let len = bytes.len();
    bytes.try_into().map_err(|_| Problem::Length {
        len,
        expected: Bound::Exactly(N),
    })
}

/// `initializationVector`: 12 or 16 bytes.
pub(crate) fn iv(value: Value) -> Result<Vec<u8>, Problem> {
    let bytes = base64(value, None)?;
    IV_BOUND.check_len(bytes.len())?;
    Ok(bytes)
}

/// `ciphertextMetadata`: at most 20 bytes.
pub(crate) fn ciphertext_metadata(value: Value) -> Result<Vec<u8>, Problem> {
    let bytes = base64(value, None)?;
    METADATA_BOUND.check_len(bytes.len())?;
    Ok(bytes)
}

/// Rejects text too long to decode within `max`, before decoding it.
fn check_encoded_len(text: &str, max: Option<usize>) -> Result<(), Problem> {
    match max {
        Some(max) if text.len() > encoded_len(max) => Err(Problem::TooLargeEncoded {
            chars: text.len(),
            max,
        }),
        _ => Ok(()),
    }
}

fn check_len(len: usize, max: Option<usize>) -> Result<(), Problem> {
    match max {
        Some(max) if len > max => Err(Problem::TooLarge { len, max }),
        _ => Ok(()),
    }
}

/// The length of the padded standard Base64 encoding of `bytes` bytes.
pub(crate) const fn encoded_len(bytes: usize) -> usize {
    bytes.div_ceil(3).saturating_mul(4)
}

/// Describes a decoding failure by position only: the offending character may be secret.
fn base64_problem(error: DecodeError) -> Problem {
    Problem::Base64(match error {
        DecodeError::InvalidByte(offset, b'=') => format!("misplaced '=' at offset {offset}"),
        DecodeError::InvalidByte(offset, _) => {
            format!("a character outside A-Z a-z 0-9 + / at offset {offset}")
        }
        DecodeError::InvalidLength(_) => "the length is not valid".to_owned(),
        DecodeError::InvalidLastSymbol { offset, .. } => {
            format!("non-zero trailing bits in the character at offset {offset}")
        }
        DecodeError::InvalidPadding => "missing or wrong '=' padding".to_owned(),
    })
}

fn one_of(keywords: &[&str]) -> String {
    match keywords {
        [only] => format!("\"{only}\""),
        _ => {
            let quoted: Vec<String> = keywords.iter().map(|k| format!("\"{k}\"")).collect();
            format!("one of {}", quoted.join(", "))
        }
    }
}

/// Base64 serialization for `serialize_with`.
pub(crate) fn serialize_base64<S: Serializer>(
    bytes: &impl AsRef<[u8]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&STANDARD.encode(bytes))
}

/// Base64 serialization of an optional field, for `serialize_with` with
/// `skip_serializing_if = "Option::is_none"`.
pub(crate) fn serialize_opt_base64<S: Serializer, B: AsRef<[u8]>>(
    bytes: &Option<B>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => serialize_base64(bytes, serializer),
        None => serializer.serialize_none(),
    }
}

// === impl Bound ===

impl Bound {
    fn allows(self, n: usize) -> bool {
        match self {
            Self::Exactly(m) => n == m,
            Self::AtMost(m) => n <= m,
            Self::Either(a, b) => n == a || n == b,
            Self::Between(a, b) => (a..=b).contains(&n),
        }
    }

    /// Checks a decoded length in bytes.
    pub(crate) fn check_len(self, len: usize) -> Result<(), Problem> {
        if self.allows(len) {
            Ok(())
        } else {
            Err(Problem::Length {
                len,
                expected: self,
            })
        }
    }

    /// Checks the number of entries of an array.
    pub(crate) fn check_count(self, len: usize) -> Result<(), Problem> {
        if self.allows(len) {
            Ok(())
        } else {
            Err(Problem::Count {
                len,
                expected: self,
            })
        }
    }
}

impl fmt::Display for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exactly(n) => write!(f, "exactly {n}"),
            Self::AtMost(n) => write!(f, "at most {n}"),
            Self::Either(a, b) => write!(f, "{a} or {b}"),
            Self::Between(a, b) => write!(f, "{a} to {b}"),
        }
    }
}

// === impl WireError ===

impl WireError {
    /// An error about a top-level field, or a path such as `keyUsage[3]`.
    pub(crate) fn new(field: impl Into<String>, problem: Problem) -> Self {
        Self {
            field: Some(field.into()),
            problem,
        }
    }

    fn from_json(error: serde_json::Error) -> Self {
        let (line, column) = (error.line(), error.column());
        let problem = match error.classify() {
            // The strict visitor accepts every value, so its only data error is a duplicate key.
            Category::Data => Problem::DuplicateKey { line, column },
            Category::Io | Category::Syntax | Category::Eof => Problem::Syntax { line, column },
        };
        Self {
            field: None,
            problem,
        }
    }

    /// The XKS answer for a request that failed here: a limit beyond the spec's minimum is
    /// `UnsupportedOperationException` (501), anything else `ValidationException` (400).
    pub(crate) fn into_xks_error(self) -> XksError {
        let name = match self.problem {
            Problem::TooLarge { .. } | Problem::TooLargeEncoded { .. } => {
                ErrorName::UnsupportedOperationException
            }
            _ => ErrorName::ValidationException,
        };
        XksError::with_message(name, self.to_string())
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "`{field}` {}", self.problem),
            None => write!(f, "body {}", self.problem),
        }
    }
}

// === impl Strict ===

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(Strict)
    }
}

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot hold a non-finite number; other formats' NaN reads as null.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Strict::deserialize(deserializer).map(|Strict(value)| value)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                return Err(de::Error::custom("duplicate key in a JSON object"));
            }
            let Strict(value) = access.next_value()?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests;
