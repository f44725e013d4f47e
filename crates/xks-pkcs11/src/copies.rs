//! Session-object copies of token keys, one set per worker
//! (`session_key_copies`).
//!
//! A worker copies a key's token object into its own session
//! (`C_CopyObject` with `CKA_TOKEN` false) the first time it uses it, and uses
//! the copy from then on. The copy lives in the module, like the original, and
//! keeps the original's attributes; it dies with the session. Some modules read
//! a token object back from storage on every use (SoftHSM2's file store opens,
//! locks and reads two files in each `C_EncryptInit` and `C_DecryptInit`); a
//! session object they keep in memory.
//!
//! A copy does not follow its original: if the token object is deleted or its
//! attributes change, the copy would go on working. So the token object is read
//! again (its attributes and label) before a copy is used when the last check is
//! more than [`CHECK_EVERY`] old; a difference, or a failed read, drops the copy
//! and sends the caller back to the token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cryptoki::object::{Attribute, AttributeType, ObjectHandle};
use cryptoki::session::Session;

use crate::error::CallDisplay;
use crate::keys::{self, KeyAttrs};

/// How long a check of the token object vouches for a copy.
pub(crate) const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Copies one worker holds at most; past that, the copy checked longest ago
/// is destroyed to make room.
pub(crate) const MAX_COPIES: usize = 1024;

/// One worker's copies, valid in one session.
pub(crate) struct KeyCopies {
    /// The session the copies live in (the worker counts its sessions).
    session: u64,
    /// By the handle number of the token object they were made from.
    by_token: HashMap<u64, Copy>,
    /// The module refused a copy once already (said once per worker).
    refusal_reported: bool,
}

/// What a worker uses for one token object.
struct Copy {
    /// The copy; `None` when the module would not make a fitting one, so the
    /// token object itself is used (until the worker's next session).
    handle: Option<ObjectHandle>,
    /// When the token object was last found unchanged.
    checked_at: Instant,
}

/// The token object to use, described as the worker's key cache knows it.
pub(crate) struct TokenKey<'a> {
    pub(crate) handle: ObjectHandle,
    pub(crate) label: &'a str,
    pub(crate) attrs: &'a KeyAttrs,
}

/// Why no handle can be given.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// A call failed in a way the worker recovers from (a lost session or
    /// device, a stale handle...).
    Call(cryptoki::error::Error),
    /// The token object is no longer the key the cache describes: it changed,
    /// or its handle names another object.
    Stale(&'static str),
}

impl KeyCopies {
    pub(crate) fn new() -> Self {
        Self {
            session: 0,
            by_token: HashMap::new(),
            refusal_reported: false,
        }
    }

    /// The handle to operate with for `key` in `session` (the worker's
    /// `session_number`-th): the worker's copy of it, made now if needed, or
    /// the token object if the module does not copy it. `recoverable` tells
    /// failed calls the worker recovers from (those are returned) from a
    /// module's refusal to copy (the token object is used then).
    pub(crate) fn handle(
        &mut self,
        session: &Session,
        session_number: u64,
        key: &TokenKey<'_>,
        recoverable: impl Fn(&cryptoki::error::Error) -> bool,
        made: &AtomicU64,
    ) -> Result<ObjectHandle, CopyError> {
        if self.session != session_number {
            // The copies died with the session they were made in.
            self.by_token.clear();
            self.session = session_number;
        }
        let now = Instant::now();
        let token = number(key.handle);
        if let Some(copy) = self.by_token.get(&token) {
            match copy.handle {
                // Not copied: the token object itself needs no check.
                None => return Ok(key.handle),
                Some(handle) if now.saturating_duration_since(copy.checked_at) < CHECK_EVERY => {
                    return Ok(handle);
                }
                Some(_) => {}
            }
        }
        // Checked before the first copy too: the cache's attributes may be older
        // than a second.
        if let Err(e) = check(session, key) {
            self.forget(session, token);
            return Err(e);
        }
        if let Some(copy) = self.by_token.get_mut(&token) {
            copy.checked_at = now;
            return Ok(copy.handle.unwrap_or(key.handle));
        }
        if self.by_token.len() >= MAX_COPIES
            && let Some(oldest) = self
                .by_token
                .iter()
                .min_by_key(|(_, copy)| copy.checked_at)
                .map(|(token, _)| *token)
        {
            self.forget(session, oldest);
        }
        let handle = match make(session, key) {
            Ok(handle) => {
                made.fetch_add(1, Ordering::Relaxed);
                Some(handle)
            }
            Err(Refusal::Call(error)) if recoverable(&error) => return Err(CopyError::Call(error)),
            Err(refusal) => {
                if !std::mem::replace(&mut self.refusal_reported, true) {
                    tracing::warn!(
                        key = key.label,
                        why = %refusal,
                        "session_key_copies: the PKCS#11 module made no usable copy of a key; \
                         using the token objects of such keys directly"
                    );
                }
                None
            }
        };
        self.by_token.insert(
            token,
            Copy {
                handle,
                checked_at: now,
            },
        );
        Ok(handle.unwrap_or(key.handle))
    }

    /// Destroys every copy (after its handle failed: the cache is being
    /// re-read, and copies are made again as needed).
    pub(crate) fn clear(&mut self, session: Option<&Session>) {
        for (_, copy) in self.by_token.drain() {
            if let (Some(session), Some(handle)) = (session, copy.handle) {
                // A copy already gone is no loss.
                let _ = session.destroy_object(handle);
            }
        }
    }

    /// Destroys the copy of the token object numbered `token`, if any.
    fn forget(&mut self, session: &Session, token: u64) {
        if let Some(Copy {
            handle: Some(handle),
            ..
        }) = self.by_token.remove(&token)
        {
            let _ = session.destroy_object(handle);
        }
    }
}

/// A handle's number, as a map key (`ObjectHandle` is not `Hash`).
// `allow` rather than `expect`: `CK_ULONG` is `u64` here but `u32` on Windows,
// where the conversion is needed.
#[allow(
    clippy::useless_conversion,
    reason = "CK_OBJECT_HANDLE is not u64 on every platform"
)]
fn number(handle: ObjectHandle) -> u64 {
    u64::from(handle.handle())
}

/// Whether the token object is still the key `key` describes: its label and
/// the attributes the proxy relies on are unchanged.
fn check(session: &Session, key: &TokenKey<'_>) -> Result<(), CopyError> {
    let label = session
        .get_attributes(key.handle, &[AttributeType::Label])
        .map_err(CopyError::Call)?;
    if !matches!(label.as_slice(), [Attribute::Label(l)] if l.as_slice() == key.label.as_bytes()) {
        return Err(CopyError::Stale(
            "the key's token object handle now names another object",
        ));
    }
    let attrs = keys::read_attrs(session, key.handle).map_err(CopyError::Call)?;
    if attrs != *key.attrs {
        return Err(CopyError::Stale(
            "the key's attributes on the token changed since they were read",
        ));
    }
    Ok(())
}

/// Why no copy is used.
enum Refusal {
    /// `C_CopyObject` (or reading the copy) failed.
    Call(cryptoki::error::Error),
    /// The copy's attributes differ from the original's.
    Differs,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Call(e) => write!(f, "{}", CallDisplay(e)),
            Self::Differs => f.write_str("the copy's attributes differ from the token object's"),
        }
    }
}

/// Copies `key` into `session` and checks that the copy has the original's
/// attributes (a copy must not be weaker: extractable or not sensitive).
fn make(session: &Session, key: &TokenKey<'_>) -> Result<ObjectHandle, Refusal> {
    let copy = session
        .copy_object(key.handle, &[Attribute::Token(false)])
        .map_err(Refusal::Call)?;
    match keys::read_attrs(session, copy) {
        Ok(attrs) if attrs == *key.attrs => Ok(copy),
        Ok(_) => {
            let _ = session.destroy_object(copy);
            Err(Refusal::Differs)
        }
        Err(e) => {
            let _ = session.destroy_object(copy);
            Err(Refusal::Call(e))
        }
    }
}
