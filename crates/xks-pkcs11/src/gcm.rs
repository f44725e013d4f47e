//! AES-256-GCM through PKCS#11 `CKM_AES_GCM`, with the proxy's own checks: a
//! 96-bit IV and a 128-bit tag, whatever the module accepts, and the vendor's
//! way of handling the IV ([`IvMode`]).

use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::ObjectHandle;
use cryptoki::session::Session;
use xks_protocol::Plaintext;

use crate::IvMode;

/// The IV length the proxy makes (`caller` mode) and asks modules for.
pub(crate) const IV_LEN: usize = 12;

/// The IV lengths the XKS API allows, and so the proxy accepts: 96 bits, or 128
/// bits (what a Thales Luna HSM in FIPS mode appends in `hsm_appends` mode).
pub(crate) const IV_LENS: [usize; 2] = xks_protocol::IV_LENS;

/// The only tag length the proxy produces and accepts.
pub(crate) const TAG_LEN: usize = 16;

/// GCM tag length in bits, as `CK_GCM_PARAMS.ulTagBits` wants it.
const TAG_BITS: u64 = 128;

/// IVs fetched per `C_GenerateRandom` call in the `caller` IV mode.
pub(crate) const IV_BATCH: usize = 32;

/// IVs for the `caller` mode, from the module's RNG, fetched in bulk: one
/// `C_GenerateRandom` per [`IV_BATCH`] encryptions rather than one each (on
/// SoftHSM a call costs several µs of locking and checks whatever its length).
/// Each IV is handed out once. One pool per worker thread.
pub(crate) struct IvPool {
    bytes: [u8; IV_LEN * IV_BATCH],
    /// IVs of `bytes` already handed out.
    used: usize,
}

/// What went wrong in a GCM call.
#[derive(Debug)]
pub(crate) enum GcmError {
    /// The module failed the call.
    Call(cryptoki::error::Error),
    /// The module answered something this IV mode does not allow.
    Layout(&'static str),
}

impl IvPool {
    /// An empty pool: the first IV fetches a batch.
    pub(crate) const fn new() -> Self {
        Self {
            bytes: [0; IV_LEN * IV_BATCH],
            used: IV_BATCH,
        }
    }

    /// The next unused IV, fetching a batch from `session`'s module when the pool
    /// is empty.
    pub(crate) fn next(&mut self, session: &Session) -> Result<[u8; IV_LEN], GcmError> {
        if self.used == IV_BATCH {
            session.generate_random_slice(&mut self.bytes)?;
            check_random(&self.bytes).map_err(GcmError::Layout)?;
            self.used = 0;
        }
        let start = self.used * IV_LEN;
        let mut iv = [0u8; IV_LEN];
        iv.copy_from_slice(&self.bytes[start..start + IV_LEN]);
        self.used += 1;
        Ok(iv)
    }
}

/// Refuses what no working RNG returns in practice: all zeros (384 bytes), the
/// mark of a module that "succeeded" without filling the buffer. Repeated IVs
/// would break GCM completely.
pub(crate) fn check_random(bytes: &[u8]) -> Result<(), &'static str> {
    if bytes.iter().all(|b| *b == 0) {
        return Err(
            "the module's C_GenerateRandom returned only zeros; refusing to use them as IVs",
        );
    }
    Ok(())
}

/// An encryption's output, split into its parts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GcmOutput {
    /// 12 bytes, or 16 where the module appended a 128-bit IV.
    pub(crate) iv: Vec<u8>,
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) tag: [u8; TAG_LEN],
}

impl From<cryptoki::error::Error> for GcmError {
    fn from(e: cryptoki::error::Error) -> Self {
        Self::Call(e)
    }
}

/// Encrypts `plaintext` under `key` with `gcm_aad` as additional data; in the
/// `caller` mode with the next IV of `ivs`.
pub(crate) fn encrypt(
    session: &Session,
    key: ObjectHandle,
    mode: IvMode,
    ivs: &mut IvPool,
    plaintext: &[u8],
    gcm_aad: &[u8],
) -> Result<GcmOutput, GcmError> {
    let mut iv = [0u8; IV_LEN];
    if mode == IvMode::Caller {
        iv = ivs.next(session)?;
    }
    let output = {
        let mut no_iv: [u8; 0] = [];
        let iv_param: &mut [u8] = match mode {
            IvMode::HsmAppends => &mut no_iv,
            IvMode::Caller | IvMode::HsmWritesBack => &mut iv,
        };
        let params = GcmParams::new(iv_param, gcm_aad, TAG_BITS.into())?;
        session.encrypt(&Mechanism::AesGcm(params), key, plaintext)?
    };
    split_output(mode, iv, output, plaintext.len()).map_err(GcmError::Layout)
}

/// Decrypts `ciphertext` with `tag` under `key`; the IV (one of [`IV_LENS`])
/// and tag lengths must already have been checked.
pub(crate) fn decrypt(
    session: &Session,
    key: ObjectHandle,
    iv: &[u8],
    ciphertext: &[u8],
    tag: &[u8; TAG_LEN],
    gcm_aad: &[u8],
) -> Result<Plaintext, GcmError> {
    let mut buffer = [0u8; 16];
    let Some(iv_copy) = buffer.get_mut(..iv.len()) else {
        return Err(GcmError::Layout("an IV longer than 16 bytes"));
    };
    iv_copy.copy_from_slice(iv);
    let input = join_input(ciphertext, tag);
    let params = GcmParams::new(iv_copy, gcm_aad, TAG_BITS.into())?;
    let plaintext = Plaintext::new(session.decrypt(&Mechanism::AesGcm(params), key, &input)?);
    if plaintext.len() != ciphertext.len() {
        return Err(GcmError::Layout(
            "the module returned a plaintext of another length than the ciphertext",
        ));
    }
    Ok(plaintext)
}

/// The module's `C_Decrypt` input: the ciphertext followed by the tag.
pub(crate) fn join_input(ciphertext: &[u8], tag: &[u8; TAG_LEN]) -> Vec<u8> {
    let mut input = Vec::with_capacity(ciphertext.len() + TAG_LEN);
    input.extend_from_slice(ciphertext);
    input.extend_from_slice(tag);
    input
}

/// Splits the module's `C_Encrypt` output for `mode`:
///
/// - `Caller`: `ciphertext ‖ tag`; the IV is the one the proxy passed in.
/// - `HsmWritesBack`: `ciphertext ‖ tag`; the IV is the one the module wrote
///   into the zeroed buffer (still zero means it did not, a misconfiguration).
/// - `HsmAppends`: `ciphertext ‖ tag ‖ iv`, with a 12-byte IV or a 16-byte
///   one (Luna in FIPS mode makes 128-bit IVs unless told otherwise).
///
/// Any other length means the module did not honour the 128-bit tag or an IV
/// length the XKS API allows, and the output is refused.
pub(crate) fn split_output(
    mode: IvMode,
    iv: [u8; IV_LEN],
    mut output: Vec<u8>,
    plaintext_len: usize,
) -> Result<GcmOutput, &'static str> {
    let fits = match mode {
        IvMode::Caller | IvMode::HsmWritesBack => output.len() == plaintext_len + TAG_LEN,
        IvMode::HsmAppends => IV_LENS
            .iter()
            .any(|iv_len| output.len() == plaintext_len + TAG_LEN + iv_len),
    };
    if !fits {
        return Err(
            "the module's GCM output has an unexpected length (tag or IV not as configured)",
        );
    }
    let iv = match mode {
        IvMode::Caller => iv.to_vec(),
        IvMode::HsmWritesBack => {
            if iv == [0; IV_LEN] {
                return Err(
                    "the module did not write an IV back; iv_mode hsm_writes_back does not fit this module",
                );
            }
            iv.to_vec()
        }
        IvMode::HsmAppends => output.split_off(plaintext_len + TAG_LEN),
    };
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&output[plaintext_len..]);
    output.truncate(plaintext_len);
    Ok(GcmOutput {
        iv,
        ciphertext: output,
        tag,
    })
}

#[cfg(test)]
mod tests;
