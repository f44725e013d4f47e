//! Encrypt: positive cases and input errors (rows 69-75, 77, 79-91).

use serde_json::{Value, json};
use xks_protocol::ErrorName;

use super::{Check, needs_key};
use crate::ctx::{Ctx, DecryptInput, EncryptInput, Sample, Sealed, random_bytes, random_hex};
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "encrypt.hello-world",
            [69],
            Encrypt,
            Required,
            "Encrypt of `Hello World!` returns a 12-byte ciphertext, a 12- or 16-byte IV and a 16-byte tag in standard Base64",
            hello_world
        ),
        check!(
            "encrypt.ciphertext-length",
            [70],
            Encrypt,
            Required,
            "The ciphertext is as long as the plaintext (1, 15, 16, 17, 1000 and 4300 bytes): no tag appended",
            ciphertext_length
        ),
        check!(
            "encrypt.max-sizes",
            [71],
            Encrypt,
            Required,
            "A 4300-byte plaintext with an 8192-byte AAD encrypts and round-trips through Decrypt",
            max_sizes
        ),
        check!(
            "encrypt.test-client-sizes",
            [72],
            Encrypt,
            Recommended,
            "A 4096-byte plaintext with an 8192-byte AAD round-trips (the official test client's case)",
            test_client_sizes
        ),
        check!(
            "encrypt.metadata-size",
            [73],
            Encrypt,
            Required,
            "ciphertextMetadata, when returned, is at most 20 bytes",
            metadata_size
        ),
        check!(
            "encrypt.cdiv",
            [74],
            Encrypt,
            Required,
            "With SHA_256 requested, ciphertextDataIntegrityValue equals SHA-256(AAD || metadata || IV || ciphertext || tag), with and without AAD",
            cdiv
        ),
        check!(
            "encrypt.no-unrequested-cdiv",
            [75],
            Encrypt,
            Recommended,
            "Without ciphertextDataIntegrityValueAlgorithm, no ciphertextDataIntegrityValue is returned",
            no_unrequested_cdiv
        ),
        check!(
            "encrypt.kms-operations",
            [77],
            Encrypt,
            Required,
            "kmsOperation Encrypt, ReEncrypt, GenerateDataKey and GenerateDataKeyWithoutPlaintext all succeed",
            kms_operations
        ),
        check!(
            "encrypt.missing-plaintext",
            [79],
            Encrypt,
            Required,
            "Encrypt without plaintext returns 400 ValidationException",
            missing_plaintext
        ),
        check!(
            "encrypt.missing-algorithm",
            [80],
            Encrypt,
            Required,
            "Encrypt without encryptionAlgorithm returns 400 ValidationException",
            missing_algorithm
        ),
        check!(
            "encrypt.unknown-algorithm",
            [81],
            Encrypt,
            Tolerant,
            "encryptionAlgorithm AES_CBC or AES_GCM_256: 400 ValidationException or 501 UnsupportedOperationException (reported)",
            unknown_algorithm
        ),
        check!(
            "encrypt.unknown-cdiv-algorithm",
            [82],
            Encrypt,
            Tolerant,
            "ciphertextDataIntegrityValueAlgorithm SHA_512: 400 ValidationException or 501 UnsupportedOperationException (reported)",
            unknown_cdiv_algorithm
        ),
        check!(
            "encrypt.bad-base64-plaintext",
            [83],
            Encrypt,
            Tolerant,
            "A plaintext that is not Base64 returns 400 ValidationException (URL-safe or unpadded input may be accepted; reported)",
            bad_base64_plaintext
        ),
        check!(
            "encrypt.bad-base64-aad",
            [84],
            Encrypt,
            Tolerant,
            "An AAD that is not Base64 returns 400 ValidationException (URL-safe or unpadded input may be accepted; reported)",
            bad_base64_aad
        ),
        check!(
            "encrypt.oversized-plaintext",
            [85],
            Encrypt,
            Tolerant,
            "A 64 KiB plaintext: 200, 501 UnsupportedOperationException or 400; never 500 or a dropped connection (reported)",
            oversized_plaintext
        ),
        check!(
            "encrypt.oversized-aad",
            [86],
            Encrypt,
            Tolerant,
            "An AAD of 65,536 bytes: 501 UnsupportedOperationException or 400 ValidationException, never 200 (reported)",
            oversized_aad
        ),
        check!(
            "encrypt.unknown-key",
            [87],
            Encrypt,
            Required,
            "Encrypt under a key that does not exist returns 404 KeyNotFoundException",
            unknown_key
        ),
        check!(
            "encrypt.decrypt-only-key",
            [88],
            Encrypt,
            Required,
            "Encrypt under a decrypt-only key returns 400 InvalidKeyUsageException",
            decrypt_only_key
        ),
        check!(
            "encrypt.no-usage-key",
            [89],
            Encrypt,
            Required,
            "Encrypt under a key with neither usage returns 400 InvalidKeyUsageException",
            no_usage_key
        ),
        check!(
            "encrypt.encrypt-only-cdiv",
            [90],
            Encrypt,
            Recommended,
            "Encrypt with a CDIV under an encrypt-only key returns 400 InvalidKeyUsageException (or a correct CDIV)",
            encrypt_only_cdiv
        ),
        check!(
            "encrypt.disabled-key",
            [91],
            Encrypt,
            Required,
            "Encrypt under a disabled key returns 400 InvalidStateException",
            disabled_key
        ),
    ]
}

/// Checks the lengths of an Encrypt answer's fields; returns whether they are right.
fn check_lengths(v: &mut Verdict, what: &str, plaintext_len: usize, sealed: &Sealed) -> bool {
    let mut ok = true;
    if sealed.ciphertext.len() != plaintext_len {
        let hint = if sealed.ciphertext.len() == plaintext_len + 16 {
            " (the authentication tag seems to be left on the ciphertext)"
        } else {
            ""
        };
        v.fail(format!(
            "{what}: the ciphertext is {} bytes for a {plaintext_len}-byte plaintext{hint}",
            sealed.ciphertext.len()
        ));
        ok = false;
    }
    if !matches!(sealed.iv.len(), 12 | 16) {
        v.fail(format!(
            "{what}: the IV is {} bytes, not 12 or 16",
            sealed.iv.len()
        ));
        ok = false;
    }
    if sealed.tag.len() != 16 {
        v.fail(format!(
            "{what}: the tag is {} bytes, not 16",
            sealed.tag.len()
        ));
        ok = false;
    }
    ok
}

/// Encrypts `input` under the main key and checks the answer's lengths.
async fn encrypt_checked(
    ctx: &Ctx,
    v: &mut Verdict,
    label: &str,
    input: &EncryptInput,
) -> Option<Sealed> {
    let (ex, sealed) = ctx.encrypt(label, ctx.main_key().as_str(), input).await;
    match sealed {
        Ok(sealed) => {
            if !check_lengths(v, label, input.plaintext.len(), &sealed) {
                v.keep(&ex);
            }
            Some(sealed)
        }
        Err(e) => {
            v.fail_on(&ex, e);
            None
        }
    }
}

/// Encrypts, checks lengths, decrypts, and compares the plaintext.
pub(super) async fn round_trip(
    ctx: &Ctx,
    v: &mut Verdict,
    what: &str,
    plaintext_len: usize,
    aad_len: Option<usize>,
    kms_operation: &'static str,
) -> Option<Sample> {
    let input = EncryptInput {
        aad: aad_len.map(random_bytes),
        ..EncryptInput::new(random_bytes(plaintext_len))
    };
    let sealed = encrypt_checked(ctx, v, &format!("encrypt ({what})"), &input).await?;
    let sample = Sample {
        plaintext: input.plaintext,
        aad: input.aad,
        sealed,
    };
    let decrypt = DecryptInput {
        kms_operation,
        ..DecryptInput::of(&sample)
    };
    let (ex, plaintext) = ctx
        .decrypt(
            &format!("decrypt ({what})"),
            ctx.main_key().as_str(),
            &decrypt,
        )
        .await;
    match plaintext {
        Ok(p) if p == sample.plaintext => Some(sample),
        Ok(p) => {
            v.fail_on(
                &ex,
                format!(
                    "the decrypted plaintext ({} bytes) differs from the original ({} bytes)",
                    p.len(),
                    sample.plaintext.len()
                ),
            );
            None
        }
        Err(e) => {
            v.fail_on(&ex, e);
            None
        }
    }
}

async fn hello_world(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let input = EncryptInput::new(b"Hello World!".to_vec());
    if let Some(s) = encrypt_checked(&ctx, &mut v, "encrypt `Hello World!`", &input).await {
        v.outcome(format!(
            "ciphertext {} B, IV {} B, tag {} B, metadata {}",
            s.ciphertext.len(),
            s.iv.len(),
            s.tag.len(),
            s.metadata
                .as_ref()
                .map_or_else(|| "none".to_owned(), |m| format!("{} B", m.len()))
        ));
    }
    v
}

async fn ciphertext_length(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for len in [1, 15, 16, 17, 1000, 4300] {
        let input = EncryptInput::new(random_bytes(len));
        encrypt_checked(&ctx, &mut v, &format!("encrypt {len} bytes"), &input).await;
    }
    v
}

async fn max_sizes(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    if round_trip(
        &ctx,
        &mut v,
        "4300 B plaintext, 8192 B AAD",
        4300,
        Some(8192),
        "Decrypt",
    )
    .await
    .is_some()
    {
        v.outcome("round trip of 4300 B with 8192 B of AAD");
    }
    v
}

async fn test_client_sizes(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    round_trip(
        &ctx,
        &mut v,
        "4096 B plaintext, 8192 B AAD",
        4096,
        Some(8192),
        "Decrypt",
    )
    .await;
    v
}

async fn metadata_size(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let mut seen = Vec::new();
    for aad in [None, Some(random_bytes(33))] {
        let input = EncryptInput {
            aad,
            ..EncryptInput::new(random_bytes(32))
        };
        let (ex, sealed) = ctx
            .encrypt("encrypt", ctx.main_key().as_str(), &input)
            .await;
        match sealed {
            Err(e) => v.fail_on(&ex, e),
            Ok(s) => match s.metadata {
                Some(m) if m.len() > 20 => {
                    v.fail_on(
                        &ex,
                        format!("ciphertextMetadata is {} bytes; at most 20", m.len()),
                    );
                }
                Some(m) => seen.push(format!("{} B", m.len())),
                None => seen.push("none".to_owned()),
            },
        }
    }
    if !seen.is_empty() {
        v.outcome(format!("ciphertextMetadata: {}", seen.join(", ")));
    }
    v
}

async fn cdiv(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for (what, aad) in [("without AAD", None), ("with AAD", Some(random_bytes(41)))] {
        let input = EncryptInput {
            aad: aad.clone(),
            cdiv: true,
            ..EncryptInput::new(random_bytes(24))
        };
        let label = format!("encrypt with SHA_256 CDIV, {what}");
        let (ex, sealed) = ctx.encrypt(&label, ctx.main_key().as_str(), &input).await;
        let sealed = match sealed {
            Ok(s) => s,
            Err(e) => {
                v.fail_on(&ex, e);
                continue;
            }
        };
        let expected = sealed.expected_cdiv(aad.as_deref());
        match &sealed.cdiv {
            None => v.fail_on(&ex, "`ciphertextDataIntegrityValue` is missing"),
            Some(got) if got.len() != 32 => v.fail_on(
                &ex,
                format!(
                    "`ciphertextDataIntegrityValue` is {} bytes, not 32",
                    got.len()
                ),
            ),
            Some(got) if *got != expected => v.fail_on(
                &ex,
                format!(
                    "`ciphertextDataIntegrityValue` is {}, but SHA-256(AAD || metadata || IV || \
                     ciphertext || tag) is {}",
                    crate::ctx::b64(got),
                    crate::ctx::b64(&expected)
                ),
            ),
            Some(_) => {}
        }
    }
    v
}

async fn no_unrequested_cdiv(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let input = EncryptInput::new(random_bytes(24));
    let (ex, sealed) = ctx
        .encrypt(
            "encrypt without a CDIV algorithm",
            ctx.main_key().as_str(),
            &input,
        )
        .await;
    match sealed {
        Err(e) => v.fail_on(&ex, e),
        Ok(s) if s.cdiv.is_some() => {
            v.fail_on(
                &ex,
                "the answer carries a ciphertextDataIntegrityValue nobody asked for",
            );
        }
        Ok(_) => {}
    }
    v
}

async fn kms_operations(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for op in [
        "Encrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
    ] {
        let input = EncryptInput {
            kms_operation: op,
            ..EncryptInput::new(random_bytes(32))
        };
        encrypt_checked(&ctx, &mut v, &format!("encrypt ({op})"), &input).await;
    }
    v
}

/// Sends an Encrypt body changed by `change` to `key`; expects one of `wants`.
async fn encrypt_variant(
    ctx: &Ctx,
    v: &mut Verdict,
    key: &str,
    label: &str,
    change: impl FnOnce(&mut Value),
    wants: &[Want],
    reported: bool,
) -> Option<Want> {
    let mut body = ctx.encrypt_body(&EncryptInput::new(random_bytes(32)));
    change(&mut body);
    let ex = ctx
        .send(ctx.signed_json(label, ctx.key_path(key, "encrypt"), &body))
        .await;
    if reported {
        v.expect_reported(&ex, wants)
    } else {
        v.expect(&ex, wants)
    }
}

fn remove(body: &mut Value, field: &str) {
    if let Some(b) = body.as_object_mut() {
        b.remove(field);
    }
}

async fn missing_plaintext(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let key = ctx.main_key().as_str().to_owned();
    encrypt_variant(
        &ctx,
        &mut v,
        &key,
        "encrypt without plaintext",
        |b| remove(b, "plaintext"),
        &[Want::Error(ErrorName::ValidationException)],
        false,
    )
    .await;
    v
}

async fn missing_algorithm(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let key = ctx.main_key().as_str().to_owned();
    encrypt_variant(
        &ctx,
        &mut v,
        &key,
        "encrypt without encryptionAlgorithm",
        |b| remove(b, "encryptionAlgorithm"),
        &[Want::Error(ErrorName::ValidationException)],
        false,
    )
    .await;
    v
}

const VALIDATION_OR_UNSUPPORTED: [Want; 2] = [
    Want::Error(ErrorName::ValidationException),
    Want::Error(ErrorName::UnsupportedOperationException),
];

async fn unknown_algorithm(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let key = ctx.main_key().as_str().to_owned();
    for alg in ["AES_CBC", "AES_GCM_256"] {
        encrypt_variant(
            &ctx,
            &mut v,
            &key,
            &format!("encrypt with encryptionAlgorithm {alg}"),
            |b| b["encryptionAlgorithm"] = json!(alg),
            &VALIDATION_OR_UNSUPPORTED,
            true,
        )
        .await;
    }
    v
}

async fn unknown_cdiv_algorithm(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let key = ctx.main_key().as_str().to_owned();
    encrypt_variant(
        &ctx,
        &mut v,
        &key,
        "encrypt with CDIV algorithm SHA_512",
        |b| b["ciphertextDataIntegrityValueAlgorithm"] = json!("SHA_512"),
        &VALIDATION_OR_UNSUPPORTED,
        true,
    )
    .await;
    v
}

/// Not Base64 at all, then two variants a lenient decoder may accept.
async fn bad_base64(ctx: &Ctx, field: &str) -> Verdict {
    let mut v = Verdict::new();
    let key = ctx.main_key().as_str().to_owned();
    let strict = [Want::Error(ErrorName::ValidationException)];
    let lenient = [Want::Error(ErrorName::ValidationException), Want::Success];
    for (what, value, wants) in [
        ("`@@@@`", "@@@@", &strict[..]),
        ("URL-safe `-_-_`", "-_-_", &lenient[..]),
        ("unpadded `SGVsbG8`", "SGVsbG8", &lenient[..]),
    ] {
        let got = encrypt_variant(
            ctx,
            &mut v,
            &key,
            &format!("encrypt with {field} {what}"),
            |b| b[field] = json!(value),
            wants,
            true,
        )
        .await;
        if got == Some(Want::Success) {
            v.note(format!(
                "{field} {what} was decoded leniently; the spec names standard padded Base64 \
                 (fact sheet §9.7 leaves leniency open)"
            ));
        }
    }
    v
}

async fn bad_base64_plaintext(ctx: Ctx) -> Verdict {
    bad_base64(&ctx, "plaintext").await
}

async fn bad_base64_aad(ctx: Ctx) -> Verdict {
    bad_base64(&ctx, "additionalAuthenticatedData").await
}

async fn oversized_plaintext(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let input = EncryptInput::new(random_bytes(64 * 1024));
    let body = ctx.encrypt_body(&input);
    let ex = ctx
        .send(ctx.signed_json(
            "encrypt a 64 KiB plaintext",
            ctx.key_path(ctx.main_key().as_str(), "encrypt"),
            &body,
        ))
        .await;
    let got = v.expect_reported(
        &ex,
        &[
            Want::Success,
            Want::Error(ErrorName::UnsupportedOperationException),
            Want::Error(ErrorName::ValidationException),
        ],
    );
    if got == Some(Want::Success)
        && let Some(Ok(s)) = ex.json().map(|j| Sealed::parse(&j))
    {
        check_lengths(
            &mut v,
            "encrypt a 64 KiB plaintext",
            input.plaintext.len(),
            &s,
        );
    }
    v
}

async fn oversized_aad(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let input = EncryptInput {
        aad: Some(random_bytes(65_536)),
        ..EncryptInput::new(random_bytes(16))
    };
    let body = ctx.encrypt_body(&input);
    let ex = ctx
        .send(ctx.signed_json(
            "encrypt with a 65,536-byte AAD",
            ctx.key_path(ctx.main_key().as_str(), "encrypt"),
            &body,
        ))
        .await;
    if ex.status() == Some(200) {
        v.fail_on(
            &ex,
            "a 65,536-byte AAD was accepted, but the GCM AAD's 2-byte length prefix cannot encode it",
        );
        v.outcome(format!("{}: {}", ex.label, ex.summary()));
    } else {
        v.expect_reported(&ex, &VALIDATION_OR_UNSUPPORTED);
    }
    v
}

async fn key_error(ctx: &Ctx, key: &str, what: &str, name: ErrorName, cdiv: bool) -> Verdict {
    let mut v = Verdict::new();
    let input = EncryptInput {
        cdiv,
        ..EncryptInput::new(random_bytes(32))
    };
    let (ex, _) = ctx
        .encrypt(&format!("encrypt under {what}"), key, &input)
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
        false,
    )
    .await
}

async fn decrypt_only_key(ctx: Ctx) -> Verdict {
    let Some(key) = ctx.settings().keys.decrypt_only.clone() else {
        return needs_key("--decrypt-only-key-id", "a decrypt-only key");
    };
    key_error(
        &ctx,
        key.as_str(),
        "the decrypt-only key",
        ErrorName::InvalidKeyUsageException,
        false,
    )
    .await
}

async fn no_usage_key(ctx: Ctx) -> Verdict {
    let Some(key) = ctx.settings().keys.no_usage.clone() else {
        return needs_key(
            "--no-usage-key-id",
            "a key with neither ENCRYPT nor DECRYPT",
        );
    };
    key_error(
        &ctx,
        key.as_str(),
        "the no-usage key",
        ErrorName::InvalidKeyUsageException,
        false,
    )
    .await
}

async fn encrypt_only_cdiv(ctx: Ctx) -> Verdict {
    let Some(key) = ctx.settings().keys.encrypt_only.clone() else {
        return needs_key("--encrypt-only-key-id", "an encrypt-only key");
    };
    let mut v = Verdict::new();
    let input = EncryptInput {
        cdiv: true,
        ..EncryptInput::new(random_bytes(32))
    };
    let (ex, sealed) = ctx
        .encrypt(
            "encrypt with a CDIV under the encrypt-only key",
            key.as_str(),
            &input,
        )
        .await;
    if Want::Error(ErrorName::InvalidKeyUsageException).matches(&ex) {
        v.outcome("400 InvalidKeyUsageException (the verification decrypt needs DECRYPT)");
        return v;
    }
    match sealed {
        Ok(s) if s.cdiv.as_deref() == Some(&s.expected_cdiv(None)[..]) => v.outcome(
            "200 with a correct CDIV (acceptable; the official test client expects \
             InvalidKeyUsageException)",
        ),
        _ => {
            v.expect(&ex, &[Want::Error(ErrorName::InvalidKeyUsageException)]);
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
        false,
    )
    .await
}
