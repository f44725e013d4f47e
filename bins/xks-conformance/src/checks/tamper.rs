//! Decrypt of tampered input must fail authentication: 400 InvalidCiphertextException
//! (rows 97-111).

use xks_protocol::ErrorName;

use super::{Check, flip};
use crate::ctx::{Ctx, DecryptInput, Sample, random_bytes};
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "tamper.aad-omitted",
            [97],
            Tamper,
            Required,
            "AAD used at Encrypt but omitted at Decrypt: 400 InvalidCiphertextException",
            aad_omitted
        ),
        check!(
            "tamper.aad-added",
            [98],
            Tamper,
            Required,
            "No AAD at Encrypt but AAD supplied at Decrypt: 400 InvalidCiphertextException",
            aad_added
        ),
        check!(
            "tamper.aad-different",
            [99],
            Tamper,
            Required,
            "A different AAD at Decrypt: 400 InvalidCiphertextException",
            aad_different
        ),
        check!(
            "tamper.aad-bit-flip",
            [100],
            Tamper,
            Required,
            "The AAD with one bit flipped: 400 InvalidCiphertextException",
            aad_bit_flip
        ),
        check!(
            "tamper.ciphertext-bit-flip",
            [101],
            Tamper,
            Required,
            "The ciphertext with one bit flipped (first byte, last byte): 400 InvalidCiphertextException",
            ciphertext_bit_flip
        ),
        check!(
            "tamper.ciphertext-length",
            [102],
            Tamper,
            Required,
            "The ciphertext truncated or extended by one byte: 400 InvalidCiphertextException",
            ciphertext_length
        ),
        check!(
            "tamper.tag-bit-flip",
            [103],
            Tamper,
            Required,
            "The tag with one bit flipped: 400 InvalidCiphertextException",
            tag_bit_flip
        ),
        check!(
            "tamper.iv-bit-flip",
            [104],
            Tamper,
            Required,
            "The IV with one bit flipped: 400 InvalidCiphertextException",
            iv_bit_flip
        ),
        check!(
            "tamper.metadata-bit-flip",
            [105],
            Tamper,
            Required,
            "ciphertextMetadata with one bit flipped: 400 InvalidCiphertextException (metadata is bound into the tag)",
            metadata_bit_flip
        ),
        check!(
            "tamper.metadata-omitted",
            [106],
            Tamper,
            Required,
            "ciphertextMetadata omitted at Decrypt: 400 InvalidCiphertextException",
            metadata_omitted
        ),
        check!(
            "tamper.metadata-added",
            [107],
            Tamper,
            Required,
            "ciphertextMetadata added (or lengthened) at Decrypt: 400 InvalidCiphertextException",
            metadata_added
        ),
        check!(
            "tamper.aad-metadata-confusion",
            [108],
            Tamper,
            Required,
            "Encrypt without AAD (metadata M), Decrypt with AAD = M and no metadata: 400 InvalidCiphertextException",
            aad_metadata_confusion
        ),
        check!(
            "tamper.other-key",
            [109],
            Tamper,
            Required,
            "A ciphertext of key A decrypted under key B: 400 InvalidCiphertextException",
            other_key
        ),
        check!(
            "tamper.all-zero",
            [110],
            Tamper,
            Required,
            "An all-zero ciphertext, IV and tag of valid lengths: 400 InvalidCiphertextException",
            all_zero
        ),
        check!(
            "tamper.random-16-byte-iv",
            [111],
            Tamper,
            Tolerant,
            "A random 16-byte IV: 400 InvalidCiphertextException, or 501 UnsupportedOperationException for 12-byte-only key managers (reported)",
            random_16_byte_iv
        ),
    ]
}

const INVALID: [Want; 1] = [Want::Error(ErrorName::InvalidCiphertextException)];

const NO_METADATA: &str = "not applicable: the proxy returns no ciphertextMetadata";

/// Encrypts a 32-byte sample under the main key (with `aad_len` bytes of AAD), then sends
/// each variant `variants` makes of its decrypt inputs, expecting `wants`.
async fn tamper(
    ctx: &Ctx,
    aad_len: Option<usize>,
    variants: impl FnOnce(&Sample, DecryptInput) -> Result<Vec<(String, DecryptInput)>, &'static str>,
) -> Verdict {
    let mut v = Verdict::new();
    let sample = match ctx.sample(32, aad_len.map(random_bytes)).await {
        Ok(s) => s,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    let cases = match variants(&sample, DecryptInput::of(&sample)) {
        Ok(c) => c,
        Err(not_applicable) => return Verdict::not_run(not_applicable),
    };
    for (label, input) in cases {
        let (ex, _) = ctx.decrypt(&label, ctx.main_key().as_str(), &input).await;
        if ex.status() == Some(200) {
            v.fail_on(
                &ex,
                "the tampered input decrypted (HTTP 200): tampering went undetected",
            );
        } else {
            v.expect(&ex, &INVALID);
        }
    }
    v
}

async fn aad_omitted(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(33), |_, mut d| {
        d.aad = None;
        Ok(vec![("decrypt without the AAD used at encrypt".into(), d)])
    })
    .await
}

async fn aad_added(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |_, mut d| {
        d.aad = Some(b"project=nile,department=marketing".to_vec());
        Ok(vec![(
            "decrypt with AAD the encrypt did not have".into(),
            d,
        )])
    })
    .await
}

async fn aad_different(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(33), |_, mut d| {
        d.aad = Some(b"project=blue,department=finance!!".to_vec());
        Ok(vec![("decrypt with a different AAD".into(), d)])
    })
    .await
}

async fn aad_bit_flip(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(33), |s, mut d| {
        d.aad = s.aad.as_deref().map(|a| flip(a, 0, false));
        Ok(vec![("decrypt with one bit of the AAD flipped".into(), d)])
    })
    .await
}

async fn ciphertext_bit_flip(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |s, d| {
        let first = DecryptInput {
            ciphertext: flip(&s.sealed.ciphertext, 0, false),
            ..d.clone()
        };
        let last = DecryptInput {
            ciphertext: flip(&s.sealed.ciphertext, 0, true),
            ..d
        };
        Ok(vec![
            (
                "decrypt with the first ciphertext byte's low bit flipped".into(),
                first,
            ),
            (
                "decrypt with the last ciphertext byte's low bit flipped".into(),
                last,
            ),
        ])
    })
    .await
}

async fn ciphertext_length(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |s, d| {
        let mut short = s.sealed.ciphertext.clone();
        short.pop();
        let mut long = s.sealed.ciphertext.clone();
        long.push(0x5a);
        Ok(vec![
            (
                "decrypt with the ciphertext one byte short".into(),
                DecryptInput {
                    ciphertext: short,
                    ..d.clone()
                },
            ),
            (
                "decrypt with one byte added to the ciphertext".into(),
                DecryptInput {
                    ciphertext: long,
                    ..d
                },
            ),
        ])
    })
    .await
}

async fn tag_bit_flip(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |s, mut d| {
        d.tag = flip(&s.sealed.tag, 0, false);
        Ok(vec![("decrypt with one bit of the tag flipped".into(), d)])
    })
    .await
}

async fn iv_bit_flip(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |s, mut d| {
        d.iv = flip(&s.sealed.iv, 0, false);
        Ok(vec![("decrypt with one bit of the IV flipped".into(), d)])
    })
    .await
}

async fn metadata_bit_flip(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(16), |s, d| {
        let Some(m) = s.sealed.metadata.as_ref().filter(|m| !m.is_empty()) else {
            return Err(NO_METADATA);
        };
        Ok(vec![
            (
                "decrypt with the first metadata byte's low bit flipped".into(),
                DecryptInput {
                    metadata: Some(flip(m, 0, false)),
                    ..d.clone()
                },
            ),
            (
                "decrypt with the last metadata byte's low bit flipped".into(),
                DecryptInput {
                    metadata: Some(flip(m, 0, true)),
                    ..d
                },
            ),
        ])
    })
    .await
}

async fn metadata_omitted(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(16), |s, mut d| {
        if s.sealed.metadata.as_ref().is_none_or(Vec::is_empty) {
            return Err(NO_METADATA);
        }
        d.metadata = None;
        Ok(vec![("decrypt without the returned metadata".into(), d)])
    })
    .await
}

async fn metadata_added(ctx: Ctx) -> Verdict {
    tamper(&ctx, Some(16), |s, mut d| {
        let label = match &s.sealed.metadata {
            None => {
                d.metadata = Some(b"key_version=1".to_vec());
                "decrypt with metadata `key_version=1` the encrypt did not return"
            }
            Some(m) if m.len() < 20 => {
                let mut longer = m.clone();
                longer.push(0x01);
                d.metadata = Some(longer);
                "decrypt with one byte added to the returned metadata"
            }
            Some(_) => {
                d.metadata = Some(b"key_version=1".to_vec());
                "decrypt with foreign metadata `key_version=1` instead of the returned one"
            }
        };
        Ok(vec![(label.into(), d)])
    })
    .await
}

async fn aad_metadata_confusion(ctx: Ctx) -> Verdict {
    tamper(&ctx, None, |s, mut d| {
        let Some(m) = s.sealed.metadata.clone().filter(|m| !m.is_empty()) else {
            return Err(NO_METADATA);
        };
        d.aad = Some(m);
        d.metadata = None;
        Ok(vec![(
            "decrypt with AAD = the returned metadata and no metadata".into(),
            d,
        )])
    })
    .await
}

async fn other_key(ctx: Ctx) -> Verdict {
    let Some(second) = ctx.settings().keys.second.clone() else {
        return super::needs_key("--second-key-id", "a second encrypt+decrypt key");
    };
    let mut v = Verdict::new();
    let sample = match ctx.sample(32, None).await {
        Ok(s) => s,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    let (ex, _) = ctx
        .decrypt(
            "decrypt the main key's ciphertext under the second key",
            second.as_str(),
            &DecryptInput::of(&sample),
        )
        .await;
    if ex.status() == Some(200) {
        v.fail_on(&ex, "another key's ciphertext decrypted (HTTP 200)");
    } else {
        v.expect(&ex, &INVALID);
    }
    v
}

async fn all_zero(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let (ex, _) = ctx
        .decrypt(
            "decrypt an all-zero ciphertext, IV and tag",
            ctx.main_key().as_str(),
            &DecryptInput::zeros(),
        )
        .await;
    v.expect(&ex, &INVALID);
    v
}

async fn random_16_byte_iv(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let sample = match ctx.sample(32, None).await {
        Ok(s) => s,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    let input = DecryptInput {
        iv: random_bytes(16),
        ..DecryptInput::of(&sample)
    };
    let (ex, _) = ctx
        .decrypt(
            "decrypt with a random 16-byte IV",
            ctx.main_key().as_str(),
            &input,
        )
        .await;
    v.expect_reported(
        &ex,
        &[
            Want::Error(ErrorName::InvalidCiphertextException),
            Want::Error(ErrorName::UnsupportedOperationException),
        ],
    );
    v
}
