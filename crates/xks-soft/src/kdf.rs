//! Argon2id: from the passphrase or key file to the key that encrypts the key store.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

use crate::Error;
use crate::secret::KEY_LEN;

/// Argon2id cost parameters for deriving a key store's encryption key.
///
/// They are chosen when a key store is created (or its secret changed) and stored
/// in its header, so a key store always opens with the parameters it was written
/// with. [`KdfParams::RECOMMENDED`] is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KdfParams {
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
}

/// Floors that [`KdfParams::new`] enforces (OWASP's minimum Argon2id
/// configuration: 19 MiB, 2 iterations).
const MIN_MEMORY_KIB: u32 = 19 * 1024;
const MIN_ITERATIONS: u32 = 2;

/// Ceilings for any parameters, including those read from a file, so that a
/// damaged header cannot make opening take hours or exhaust memory.
const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
const MAX_ITERATIONS: u32 = 100;
const MAX_PARALLELISM: u32 = 16;

/// The salt length of new key stores, and the accepted range when reading.
pub(crate) const SALT_LEN: usize = 16;
pub(crate) const MIN_SALT_LEN: usize = 16;
pub(crate) const MAX_SALT_LEN: usize = 64;

// === impl KdfParams ===

impl KdfParams {
    /// 64 MiB of memory, 3 iterations, 1 lane: well above OWASP's minimum, and
    /// about a quarter of a second on a small server core.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// **Insecure**: 8 KiB and 1 iteration, which derives a key in microseconds
    /// and gives a stolen key store file no protection against guessing the
    /// passphrase. Only for tests and for throwaway demo key stores.
    pub const INSECURE_FAST_FOR_TESTS: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    /// Parameters of the caller's choice, at least as strong as OWASP's minimum
    /// (19 MiB, 2 iterations), at most 4 GiB, 100 iterations and 16 lanes.
    ///
    /// # Errors
    ///
    /// [`Error::KdfParams`] when a value is out of range.
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, Error> {
        if memory_kib < MIN_MEMORY_KIB {
            return Err(Error::kdf_params("memory below 19 MiB"));
        }
        if iterations < MIN_ITERATIONS {
            return Err(Error::kdf_params("fewer than 2 iterations"));
        }
        Self::within_limits(memory_kib, iterations, parallelism).map_err(Error::kdf_params)
    }

    /// Parameters read from a key store header: any that Argon2id accepts, within
    /// the ceilings.
    pub(crate) fn from_header(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, Error> {
        Self::within_limits(memory_kib, iterations, parallelism).map_err(Error::malformed)
    }

    fn within_limits(
        memory_kib: u32,
        iterations: u32,
        parallelism: u32,
    ) -> Result<Self, &'static str> {
        if !(1..=MAX_PARALLELISM).contains(&parallelism) {
            return Err("parallelism outside 1 to 16 lanes");
        }
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err("iterations outside 1 to 100");
        }
        if memory_kib < 8 * parallelism || memory_kib > MAX_MEMORY_KIB {
            return Err("memory outside 8 KiB per lane to 4 GiB");
        }
        Ok(Self {
            memory_kib,
            iterations,
            parallelism,
        })
    }

    /// Memory in KiB (Argon2 `m`).
    pub const fn memory_kib(self) -> u32 {
        self.memory_kib
    }

    /// Number of passes over the memory (Argon2 `t`).
    pub const fn iterations(self) -> u32 {
        self.iterations
    }

    /// Number of lanes (Argon2 `p`).
    pub const fn parallelism(self) -> u32 {
        self.parallelism
    }

    /// Whether these are at least OWASP's minimum, as [`KdfParams::new`] requires.
    /// A key store written with [`KdfParams::INSECURE_FAST_FOR_TESTS`] is not.
    pub const fn is_strong(self) -> bool {
        self.memory_kib >= MIN_MEMORY_KIB && self.iterations >= MIN_ITERATIONS
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// Derives the 32-byte key store encryption key from `secret` and `salt`.
pub(crate) fn derive(
    secret: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| Error::malformed_by("Argon2id parameters", e))?;
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    argon2
        .hash_password_into(secret, salt, &mut key[..])
        .map_err(|e| Error::malformed_by("Argon2id inputs", e))?;
    Ok(key)
}

#[cfg(test)]
mod tests;
