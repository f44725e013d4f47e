//! Decrypt of malformed input (rows 112-117).

use serde_json::{Value, json};
use xks_protocol::ErrorName;

use super::Check;
use crate::ctx::{Ctx, DecryptInput, b64, random_bytes};
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "malformed.missing-field",
            [112],
            Malformed,
            Required,
            "Decrypt without ciphertext, initializationVector, authenticationTag or encryptionAlgorithm returns 400 ValidationException",
            missing_field
        ),
        check!(
            "malformed.iv-length",
            [113],
            Malformed,
            Tolerant,
            "An IV of 8, 11, 13 or 32 bytes: 400 ValidationException or InvalidCiphertextException (reported)",
            iv_length
        ),
        check!(
            "malformed.tag-length",
            [114],
            Malformed,
            Tolerant,
            "A tag of 12, 15 or 17 bytes: 400 ValidationException or InvalidCiphertextException (reported)",
            tag_length
        ),
        check!(
            "malformed.metadata-length",
            [115],
            Malformed,
            Tolerant,
            "21 bytes of ciphertextMetadata: 400 ValidationException or InvalidCiphertextException (reported)",
            metadata_length
        ),
        check!(
            "malformed.bad-base64",
            [116],
            Malformed,
            Tolerant,
            "Bad Base64 in any binary field: 400 ValidationException or InvalidCiphertextException (reported)",
            bad_base64
        ),
        check!(
            "malformed.unknown-algorithm",
            [117],
            Malformed,
            Tolerant,
            "Decrypt with encryptionAlgorithm AES_CBC: 400 ValidationException or 501 UnsupportedOperationException (reported)",
            unknown_algorithm
        ),
    ]
}

const BAD_INPUT: [Want; 2] = [
    Want::Error(ErrorName::ValidationException),
    Want::Error(ErrorName::InvalidCiphertextException),
];

/// A well-formed Decrypt body for the main key (from a real encryption when possible).
async fn base(ctx: &Ctx) -> Value {
    let input = match ctx.sample(32, Some(random_bytes(8))).await {
        Ok(sample) => DecryptInput::of(&sample),
        Err(_) => DecryptInput::zeros(),
    };
    ctx.decrypt_body(&input)
}

/// Sends variants of a valid Decrypt body, each changed by its function.
async fn variants(
    ctx: &Ctx,
    cases: Vec<(String, Change)>,
    wants: &[Want],
    reported: bool,
) -> Verdict {
    let mut v = Verdict::new();
    let path = ctx.key_path(ctx.main_key().as_str(), "decrypt");
    for (label, change) in cases {
        let mut body = base(ctx).await;
        change(&mut body);
        let ex = ctx.send(ctx.signed_json(label, path.clone(), &body)).await;
        if reported {
            v.expect_reported(&ex, wants);
        } else {
            v.expect(&ex, wants);
        }
    }
    v
}

type Change = Box<dyn FnOnce(&mut Value) + Send>;

fn set(field: &'static str, value: Value) -> Change {
    Box::new(move |b: &mut Value| b[field] = value)
}

async fn missing_field(ctx: Ctx) -> Verdict {
    let cases: Vec<(String, Change)> = [
        "ciphertext",
        "initializationVector",
        "authenticationTag",
        "encryptionAlgorithm",
    ]
    .into_iter()
    .map(|field| {
        let change: Change = Box::new(move |b: &mut Value| {
            if let Some(o) = b.as_object_mut() {
                o.remove(field);
            }
        });
        (format!("decrypt without {field}"), change)
    })
    .collect();
    variants(
        &ctx,
        cases,
        &[Want::Error(ErrorName::ValidationException)],
        false,
    )
    .await
}

async fn iv_length(ctx: Ctx) -> Verdict {
    let cases = [8, 11, 13, 32]
        .into_iter()
        .map(|n| {
            (
                format!("decrypt with a {n}-byte IV"),
                set("initializationVector", json!(b64(&random_bytes(n)))),
            )
        })
        .collect();
    variants(&ctx, cases, &BAD_INPUT, true).await
}

async fn tag_length(ctx: Ctx) -> Verdict {
    let cases = [12, 15, 17]
        .into_iter()
        .map(|n| {
            (
                format!("decrypt with a {n}-byte tag"),
                set("authenticationTag", json!(b64(&random_bytes(n)))),
            )
        })
        .collect();
    variants(&ctx, cases, &BAD_INPUT, true).await
}

async fn metadata_length(ctx: Ctx) -> Verdict {
    let cases = vec![(
        "decrypt with 21 bytes of ciphertextMetadata".to_owned(),
        set("ciphertextMetadata", json!(b64(&random_bytes(21)))),
    )];
    variants(&ctx, cases, &BAD_INPUT, true).await
}

async fn bad_base64(ctx: Ctx) -> Verdict {
    let cases = [
        "ciphertext",
        "initializationVector",
        "authenticationTag",
        "ciphertextMetadata",
        "additionalAuthenticatedData",
    ]
    .into_iter()
    .map(|field| {
        (
            format!("decrypt with {field} `@@@@`"),
            set(field, json!("@@@@")),
        )
    })
    .collect();
    variants(&ctx, cases, &BAD_INPUT, true).await
}

async fn unknown_algorithm(ctx: Ctx) -> Verdict {
    let cases = vec![(
        "decrypt with encryptionAlgorithm AES_CBC".to_owned(),
        set("encryptionAlgorithm", json!("AES_CBC")),
    )];
    variants(
        &ctx,
        cases,
        &[
            Want::Error(ErrorName::ValidationException),
            Want::Error(ErrorName::UnsupportedOperationException),
        ],
        true,
    )
    .await
}
