//! A small per-credential cache of derived signing keys.
//!
//! Deriving `kSigning` costs four HMACs. The key depends only on the secret, the scope day,
//! the region and the service (always `kms-xks-proxy`), so a credential needs one key per
//! (day, region) in use: normally one, two around midnight UTC.
//!
//! The cache holds at most [`CAPACITY`] keys. Inserting a key evicts keys more than one day
//! away from it, then, if still full, the key for the earliest day. Keys are wiped on drop.
//! Only keys that verified a signature are inserted, so a client without the secret cannot
//! fill the cache with keys for arbitrary regions.
//!
//! Lookups take a read lock for a few comparisons and a 32-byte copy; inserts take the write
//! lock briefly. No lock is held while hashing.

use std::sync::{PoisonError, RwLock};

use crate::v4::SigningKey;

/// Most keys cached per credential.
pub(crate) const CAPACITY: usize = 8;

/// Cached signing keys of one credential.
#[derive(Debug, Default)]
pub(crate) struct SigningKeyCache {
    slots: RwLock<Vec<Slot>>,
}

#[derive(Debug)]
struct Slot {
    /// Days since the Unix epoch of the scope date.
    day: i64,
    region: Box<str>,
    key: SigningKey,
}

// === impl SigningKeyCache ===

impl SigningKeyCache {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A copy of the key for (`day`, `region`), if cached.
    pub(crate) fn get(&self, day: i64, region: &str) -> Option<SigningKey> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots
            .iter()
            .find(|slot| slot.day == day && *slot.region == *region)
            .map(|slot| slot.key.clone())
    }

    /// Caches `key` for (`day`, `region`), evicting old days first.
    pub(crate) fn insert(&self, day: i64, region: &str, key: &SigningKey) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        if slots
            .iter()
            .any(|slot| slot.day == day && *slot.region == *region)
        {
            return;
        }
        slots.retain(|slot| slot.day.abs_diff(day) <= 1);
        if slots.len() >= CAPACITY
            && let Some(oldest) = slots
                .iter()
                .enumerate()
                .min_by_key(|(_, slot)| slot.day)
                .map(|(index, _)| index)
        {
            slots.swap_remove(oldest);
        }
        slots.push(Slot {
            day,
            region: region.into(),
            key: key.clone(),
        });
    }

    /// The number of cached keys.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests;
