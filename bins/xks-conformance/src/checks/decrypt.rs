//! Decrypt: round trips and key errors (rows 92-96, 118-120).

use xks_protocol::ErrorName;

use super::encrypt::round_trip;
use super::{Check, needs_key};
use crate::ctx::{Ctx, DecryptInput, random_hex};
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "decrypt.round-trip",
            [92],
            Decrypt,
            Required,
            "Decrypt of an Encrypt answer without AAD returns the original plaintext",
            round_trip_plain
        ),
        check!(
            "decrypt.round-trip-aad",
            [93],
            Decrypt,
            Required,
            "Decrypt with the AAD used at Encrypt returns the original plaintext",
            round_trip_aad
        ),
        check!(
            "decrypt.max-sizes",
            [94],
            Decrypt,
            Required,
            "A 4300-byte ciphertext with an 8192-byte AAD decrypts",
            max_sizes
        ),
        check!(
            "decrypt.metadata-passed-back",
            [95],
            Decrypt,
            Required,
            "Decrypt passing back the returned ciphertextMetadata works",
            metadata_passed_back
        ),
        check!(
            "decrypt.kms-operations",
            [96],
            Decrypt,
            Required,
            "kmsOperation Decrypt and ReEncrypt both work",
            kms_operations
        ),
        check!(
            "decrypt.unknown-key",
            [118],
            Decrypt,
            Required,
            "Decrypt under a key that does not exist returns 404 KeyNotFoundException",
            unknown_key
        ),
        check!(
            "decrypt.encrypt-only-key",
            [119],
            Decrypt,
            Required,
            "Decrypt under an encrypt-only (or no-usage) key returns 400 InvalidKeyUsageException",
            encrypt_only_key
        ),
        check!(
            "decrypt.disabled-key",
            [120],
            Decrypt,
            Required,
            "Decrypt under a disabled key returns 400 InvalidStateException",
            disabled_key
        ),
    ]
}

async fn round_trip_plain(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    round_trip(&ctx, &mut v, "32 B, no AAD", 32, None, "Decrypt").await;
    v
}

async fn round_trip_aad(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    round_trip(&ctx, &mut v, "32 B, 33 B AAD", 32, Some(33), "Decrypt").await;
    v
}

async fn max_sizes(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    round_trip(
        &ctx,
        &mut v,
        "4300 B, 8192 B AAD",
        4300,
        Some(8192),
        "Decrypt",
    )
    .await;
    v
}

async fn metadata_passed_back(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    if let Some(sample) = round_trip(&ctx, &mut v, "32 B, 16 B AAD", 32, Some(16), "Decrypt").await
    {
        match &sample.sealed.metadata {
            Some(m) => v.outcome(format!("{}-byte ciphertextMetadata passed back", m.len())),
            None => {
                return Verdict::not_run("not applicable: the proxy returns no ciphertextMetadata");
            }
        }
    }
    v
}

async fn kms_operations(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for op in ["Decrypt", "ReEncrypt"] {
        round_trip(&ctx, &mut v, &format!("kmsOperation {op}"), 32, None, op).await;
    }
    v
}

async fn key_error(ctx: &Ctx, key: &str, what: &str, name: ErrorName) -> Verdict {
    let mut v = Verdict::new();
    let input = match ctx.sample(32, None).await {
        Ok(sample) => DecryptInput::of(&sample),
        Err(e) => {
            v.note(format!(
                "{}; decrypting an all-zero ciphertext instead",
                e.0
            ));
            DecryptInput::zeros()
        }
    };
    let (ex, _) = ctx
        .decrypt(&format!("decrypt under {what}"), key, &input)
        .await;
    v.expect(&ex, &[Want::Error(name)]);
    v
}

async fn unknown_key(ctx: Ctx) -> Verdict {
    let key = format!("xks-conformance-absent-{}", random_hex(12));
    key_error(
        &ctx,
        &key,
        "a key that does not exist",
        ErrorName::KeyNotFoundException,
    )
    .await
}

async fn encrypt_only_key(ctx: Ctx) -> Verdict {
    let keys = ctx.settings().keys.clone();
    if keys.encrypt_only.is_none() && keys.no_usage.is_none() {
        return needs_key(
            "--encrypt-only-key-id (or --no-usage-key-id)",
            "a key without DECRYPT",
        );
    }
    let mut v = Verdict::new();
    for (key, what) in [
        (keys.encrypt_only, "the encrypt-only key"),
        (keys.no_usage, "the no-usage key"),
    ] {
        if let Some(key) = key {
            v.absorb(
                key_error(
                    &ctx,
                    key.as_str(),
                    what,
                    ErrorName::InvalidKeyUsageException,
                )
                .await,
            );
        }
    }
    v
}

async fn disabled_key(ctx: Ctx) -> Verdict {
    let Some(key) = ctx.settings().keys.disabled.clone() else {
        return needs_key("--disabled-key-id", "a disabled key");
    };
    key_error(
        &ctx,
        key.as_str(),
        "the disabled key",
        ErrorName::InvalidStateException,
    )
    .await
}
