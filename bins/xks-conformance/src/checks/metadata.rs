//! GetKeyMetadata (rows 63-68).

use serde_json::Value;
use xks_protocol::ErrorName;

use super::{Check, needs_key};
use crate::ctx::{Ctx, kind, random_hex, success_json};
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "metadata.existing-key",
            [63],
            Metadata,
            Required,
            "An existing key returns 200 with AES_256, a keyUsage of at most 10 strings with ENCRYPT and DECRYPT, and a valid keyStatus",
            existing_key
        ),
        check!(
            "metadata.unknown-key",
            [64],
            Metadata,
            Required,
            "A well-formed key id that does not exist returns 404 KeyNotFoundException",
            unknown_key
        ),
        check!(
            "metadata.invalid-key-id",
            [65],
            Metadata,
            Tolerant,
            "A 129-character key id, or one with `@`: 404 KeyNotFoundException, 404 InvalidUriPathException or 400 ValidationException (reported)",
            invalid_key_id
        ),
        check!(
            "metadata.128-char-key-id",
            [66],
            Metadata,
            Required,
            "A 128-character key id of allowed characters is routed: 200 or 404 KeyNotFoundException, not InvalidUriPathException",
            long_key_id
        ),
        check!(
            "metadata.disabled-key",
            [67],
            Metadata,
            Required,
            "A disabled key returns 200 with keyStatus DISABLED",
            disabled_key
        ),
        check!(
            "metadata.restricted-usage",
            [68],
            Metadata,
            Recommended,
            "Encrypt-only, decrypt-only and no-usage keys report only their usages",
            restricted_usage
        ),
    ]
}

/// The decoded fields of a GetKeyMetadata answer, with every format problem recorded.
struct Fields {
    spec: Option<String>,
    usage: Vec<String>,
    status: Option<String>,
}

fn read_fields(v: &mut Verdict, key: &str, body: &Value) -> Fields {
    let mut fields = Fields {
        spec: None,
        usage: Vec::new(),
        status: None,
    };
    match body.get("keySpec") {
        Some(Value::String(s)) => fields.spec = Some(s.clone()),
        Some(other) => v.fail(format!("{key}: `keySpec` is {}, not a string", kind(other))),
        None => v.fail(format!("{key}: `keySpec` is missing")),
    }
    match body.get("keyUsage") {
        Some(Value::Array(items)) => {
            if items.len() > 10 {
                v.fail(format!(
                    "{key}: `keyUsage` has {} entries; at most 10 are allowed",
                    items.len()
                ));
            }
            for item in items {
                match item.as_str() {
                    Some(s) => fields.usage.push(s.to_owned()),
                    None => v.fail(format!(
                        "{key}: a `keyUsage` entry is {}, not a string",
                        kind(item)
                    )),
                }
            }
        }
        Some(other) => v.fail(format!(
            "{key}: `keyUsage` is {}, not an array",
            kind(other)
        )),
        None => v.fail(format!("{key}: `keyUsage` is missing")),
    }
    match body.get("keyStatus").and_then(Value::as_str) {
        Some(s @ ("ENABLED" | "DISABLED")) => fields.status = Some(s.to_owned()),
        Some(other) => v.fail(format!(
            "{key}: `keyStatus` is {other:?}, not ENABLED or DISABLED"
        )),
        None => v.fail(format!("{key}: `keyStatus` is missing or not a string")),
    }
    fields
}

/// GetKeyMetadata of `key`; its fields, or a recorded problem.
async fn fetch(ctx: &Ctx, v: &mut Verdict, key: &str) -> Option<Fields> {
    let ex = ctx.key_metadata(&format!("metadata of {key}"), key).await;
    match success_json(&ex) {
        Ok(body) => {
            // Shown only if the check finds a problem.
            v.keep(&ex);
            Some(read_fields(v, key, &body))
        }
        Err(e) => {
            v.fail_on(&ex, e);
            None
        }
    }
}

async fn existing_key(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let mut keys = vec![ctx.main_key().as_str().to_owned()];
    if let Some(second) = &ctx.settings().keys.second {
        keys.push(second.as_str().to_owned());
    }
    for key in keys {
        let Some(f) = fetch(&ctx, &mut v, &key).await else {
            continue;
        };
        if let Some(spec) = &f.spec
            && spec != "AES_256"
        {
            v.fail(format!("{key}: keySpec is {spec:?}, not AES_256"));
        }
        for usage in ["ENCRYPT", "DECRYPT"] {
            if !f.usage.iter().any(|u| u == usage) {
                v.fail(format!(
                    "{key}: keyUsage {:?} lacks {usage} (the main and second keys must have both)",
                    f.usage
                ));
            }
        }
        if f.status.as_deref() == Some("DISABLED") {
            v.fail(format!(
                "{key} is DISABLED: the main and second keys must be enabled keys"
            ));
        }
        v.outcome(format!(
            "{key}: {} {:?} {}",
            f.spec.as_deref().unwrap_or("?"),
            f.usage,
            f.status.as_deref().unwrap_or("?")
        ));
    }
    v
}

async fn unknown_key(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let key = format!("xks-conformance-absent-{}", random_hex(12));
    let ex = ctx
        .key_metadata("metadata of a key that does not exist", &key)
        .await;
    v.expect(&ex, &[Want::Error(ErrorName::KeyNotFoundException)]);
    v
}

async fn invalid_key_id(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let long = format!("k{}", "0".repeat(128));
    for (what, key) in [
        ("metadata of a 129-character key id", long.as_str()),
        ("metadata of key id `key@1`", "key@1"),
    ] {
        let ex = ctx.key_metadata(what, key).await;
        let got = v.expect_reported(
            &ex,
            &[
                Want::Error(ErrorName::KeyNotFoundException),
                Want::Error(ErrorName::InvalidUriPathException),
                Want::Error(ErrorName::ValidationException),
            ],
        );
        if got.is_none() && ex.status() == Some(401) {
            v.note(
                "a 401 suggests the proxy authenticates before routing and canonicalizes the \
                 path differently from the signer; route first (fact sheet §7.3)",
            );
        }
    }
    v
}

async fn long_key_id(ctx: Ctx) -> Verdict {
    let mut id = String::from("xks-conformance.Long_Id-");
    id.push_str(&random_hex(16));
    while id.len() < 128 {
        id.push('z');
    }
    let path = ctx.key_path(&id, "metadata");
    let url_len = ctx.settings().endpoint().url(&path).len();
    if url_len > 256 {
        return Verdict::not_run(format!(
            "not applicable: with this endpoint and URI path a 128-character key id makes a \
             {url_len}-character URI, over the spec's 256"
        ));
    }
    let mut v = Verdict::new();
    let ex = ctx
        .key_metadata("metadata of a 128-character key id", &id)
        .await;
    v.expect_reported(
        &ex,
        &[Want::Success, Want::Error(ErrorName::KeyNotFoundException)],
    );
    v
}

async fn disabled_key(ctx: Ctx) -> Verdict {
    let Some(key) = ctx.settings().keys.disabled.clone() else {
        return needs_key("--disabled-key-id", "a disabled key");
    };
    let mut v = Verdict::new();
    if let Some(f) = fetch(&ctx, &mut v, key.as_str()).await {
        match f.status.as_deref() {
            Some("DISABLED") => v.outcome("keyStatus DISABLED"),
            Some(other) => v.fail(format!("{key}: keyStatus is {other}, not DISABLED")),
            None => {}
        }
    }
    v
}

async fn restricted_usage(ctx: Ctx) -> Verdict {
    let keys = &ctx.settings().keys;
    let roles = [
        (keys.encrypt_only.clone(), true, false, "encrypt-only"),
        (keys.decrypt_only.clone(), false, true, "decrypt-only"),
        (keys.no_usage.clone(), false, false, "no-usage"),
    ];
    if roles.iter().all(|(k, ..)| k.is_none()) {
        return needs_key(
            "--encrypt-only-key-id, --decrypt-only-key-id or --no-usage-key-id",
            "a key with restricted usage",
        );
    }
    let mut v = Verdict::new();
    for (key, encrypt, decrypt, role) in roles {
        let Some(key) = key else { continue };
        let Some(f) = fetch(&ctx, &mut v, key.as_str()).await else {
            continue;
        };
        let has = |u: &str| f.usage.iter().any(|x| x == u);
        if has("ENCRYPT") != encrypt || has("DECRYPT") != decrypt {
            v.fail(format!("{key} ({role}): keyUsage is {:?}", f.usage));
        } else {
            v.outcome(format!("{key} ({role}): {:?}", f.usage));
        }
    }
    v
}
