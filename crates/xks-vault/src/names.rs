//! Transit key names: which names Transit accepts, and the default mapping from
//! external key ids to Transit key names.

use xks_protocol::KeyId;

/// The start of every Transit key name that encodes an external key id in
/// hexadecimal (see [`default_transit_name`]).
pub const ENCODED_NAME_PREFIX: &str = "xks-hex-";

/// Whether Transit accepts `name` as a key name: the pattern
/// `\w(([\w-.]+)?\w)?` with ASCII word characters, so one or more of
/// `A-Z a-z 0-9 _ - .` that starts and ends with one of `A-Z a-z 0-9 _`.
pub fn is_transit_key_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    is_word(first) && is_word(last) && bytes.iter().all(|&b| is_word(b) || b == b'-' || b == b'.')
}

/// The Transit key name of external key id `id` when no `[[backend.keys]]`
/// entry names one: `prefix` followed by the id itself when that is a valid
/// Transit key name, or by [`ENCODED_NAME_PREFIX`] and the lowercase hexadecimal
/// of the id's bytes otherwise.
///
/// External key ids allow `-` and `.` at either end, which Transit refuses
/// (`-abc`, `key.`): those ids are encoded rather than refused. Ids that start
/// with [`ENCODED_NAME_PREFIX`] are encoded too, so two different ids never map
/// to the same name.
pub fn default_transit_name(prefix: &str, id: &KeyId) -> String {
    let id = id.as_str();
    let plain = format!("{prefix}{id}");
    if is_transit_key_name(&plain) && !id.starts_with(ENCODED_NAME_PREFIX) {
        return plain;
    }
    let mut name = String::with_capacity(prefix.len() + ENCODED_NAME_PREFIX.len() + 2 * id.len());
    name.push_str(prefix);
    name.push_str(ENCODED_NAME_PREFIX);
    for b in id.bytes() {
        name.push(hex_digit(b >> 4));
        name.push(hex_digit(b & 0xf));
    }
    name
}

/// The external key id that [`default_transit_name`] maps to `name`, if any.
pub fn external_id_of(prefix: &str, name: &str) -> Option<KeyId> {
    let body = name.strip_prefix(prefix)?;
    match body.strip_prefix(ENCODED_NAME_PREFIX) {
        Some(hex) => {
            let bytes = decode_hex(hex)?;
            let id = KeyId::new(std::str::from_utf8(&bytes).ok()?).ok()?;
            (default_transit_name(prefix, &id) == name).then_some(id)
        }
        None => {
            let id = KeyId::new(body).ok()?;
            (default_transit_name(prefix, &id) == name).then_some(id)
        }
    }
}

/// Whether `prefix` can start Transit key names: empty, or word characters,
/// `-` and `.`, starting with a word character.
pub(crate) fn is_name_prefix(prefix: &str) -> bool {
    prefix.is_empty()
        || (prefix.as_bytes().first().copied().is_some_and(is_word)
            && prefix.bytes().all(|b| is_word(b) || b == b'-' || b == b'.'))
}

const fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0xf)])
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests;
