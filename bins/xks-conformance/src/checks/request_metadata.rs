//! requestMetadata and body tolerance (rows 42-54).

use std::sync::Arc;

use http::HeaderValue;
use http::header::CONTENT_TYPE;
use serde_json::{Value, json};
use xks_protocol::{ErrorName, OperationKind};

use super::{APIS, Check, KEY_APIS, api_name};
use crate::ctx::{Ctx, DecryptInput, EncryptInput, random_bytes};
use crate::evidence::Exchange;
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "request-metadata.unknown-kms-operation",
            [42],
            RequestMetadata,
            Required,
            "An unknown kmsOperation gets no ValidationException on any API (success, or 403 if a policy denies)",
            unknown_kms_operation
        ),
        check!(
            "request-metadata.opaque-request-id",
            [43],
            RequestMetadata,
            Required,
            "A kmsRequestId that is not a UUID is accepted",
            opaque_request_id
        ),
        check!(
            "request-metadata.long-arns",
            [44],
            RequestMetadata,
            Required,
            "2048-character awsPrincipalArn and kmsKeyArn are accepted",
            long_arns
        ),
        check!(
            "request-metadata.unknown-fields",
            [45],
            RequestMetadata,
            Required,
            "Unknown fields in requestMetadata and in the body are ignored",
            unknown_fields
        ),
        check!(
            "request-metadata.legacy-fields",
            [46],
            RequestMetadata,
            Required,
            "GetKeyMetadata with the legacy kmsKeyArn and kmsViaService succeeds",
            legacy_fields
        ),
        check!(
            "request-metadata.vpc-fields",
            [47],
            RequestMetadata,
            Required,
            "The optional awsSourceVpc and awsSourceVpce are accepted",
            vpc_fields
        ),
        check!(
            "request-metadata.empty-body",
            [48],
            RequestMetadata,
            Tolerant,
            "GetKeyMetadata, Encrypt and Decrypt with body {} return 400 ValidationException (or, for GetKeyMetadata, succeed)",
            empty_body
        ),
        check!(
            "request-metadata.empty-metadata",
            [49],
            RequestMetadata,
            Tolerant,
            "An empty requestMetadata returns 400 ValidationException or is processed (reported)",
            empty_metadata
        ),
        check!(
            "request-metadata.missing-key-arn",
            [50],
            RequestMetadata,
            Tolerant,
            "Encrypt and Decrypt without kmsKeyArn return 400 ValidationException or succeed (reported)",
            missing_key_arn
        ),
        check!(
            "request-metadata.health-empty",
            [51],
            RequestMetadata,
            Tolerant,
            "GetHealthStatus with {} or an empty requestMetadata returns a 4xx error (reported)",
            health_empty
        ),
        check!(
            "request-metadata.non-json-body",
            [52],
            RequestMetadata,
            Required,
            "A body that is not JSON returns 400 ValidationException",
            non_json_body
        ),
        check!(
            "request-metadata.content-type-variants",
            [53],
            RequestMetadata,
            Tolerant,
            "No Content-Type, or `application/json; charset=utf-8`: processed or 400 ValidationException (reported)",
            content_type_variants
        ),
        check!(
            "request-metadata.null-fields",
            [54],
            RequestMetadata,
            Tolerant,
            "Optional fields sent as null are treated as absent or rejected with 400 ValidationException (reported)",
            null_fields
        ),
    ]
}

/// A body for `api` that succeeds as it is (Decrypt gets a real ciphertext).
async fn valid_body(ctx: &Ctx, api: OperationKind) -> Result<Value, (String, Arc<Exchange>)> {
    Ok(match api {
        OperationKind::Decrypt => {
            let sample = ctx.sample(32, None).await?;
            ctx.decrypt_body(&DecryptInput::of(&sample))
        }
        OperationKind::Encrypt => ctx.encrypt_body(&EncryptInput::new(random_bytes(32))),
        other => ctx.sample_body(other),
    })
}

/// Sends `body` to `api` on the main key, KMS-signed.
async fn call(ctx: &Ctx, api: OperationKind, label: String, body: &Value) -> Arc<Exchange> {
    let path = ctx.api_path(api, ctx.main_key().as_str());
    ctx.send(ctx.signed_json(label, path, body)).await
}

/// For each API: a valid body changed by `change`, expecting one of `wants(api)`.
async fn each(
    ctx: &Ctx,
    apis: &[OperationKind],
    what: &str,
    reported: bool,
    change: impl Fn(OperationKind, &mut Value),
    wants: impl Fn(OperationKind) -> Vec<Want>,
) -> Verdict {
    let mut v = Verdict::new();
    for &api in apis {
        let mut body = match valid_body(ctx, api).await {
            Ok(b) => b,
            Err(e) => {
                v.setup_failed(e);
                continue;
            }
        };
        change(api, &mut body);
        let ex = call(ctx, api, format!("{} {what}", api_name(api)), &body).await;
        if reported {
            v.expect_reported(&ex, &wants(api));
        } else {
            v.expect(&ex, &wants(api));
        }
    }
    v
}

fn set_metadata(body: &mut Value, field: &str, value: Value) {
    if let Some(m) = body
        .get_mut("requestMetadata")
        .and_then(Value::as_object_mut)
    {
        m.insert(field.to_owned(), value);
    }
}

fn success() -> Vec<Want> {
    vec![Want::Success]
}

async fn unknown_kms_operation(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &APIS,
        "with an unknown kmsOperation",
        false,
        |api, body| {
            let op = if api == OperationKind::Health {
                "FutureHealthCheck"
            } else {
                "BulkEncrypt"
            };
            set_metadata(body, "kmsOperation", json!(op));
        },
        |api| {
            if api == OperationKind::Health {
                vec![Want::Success]
            } else {
                vec![Want::Success, Want::Error(ErrorName::AccessDeniedException)]
            }
        },
    )
    .await
}

async fn opaque_request_id(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &APIS,
        "with kmsRequestId `not-a-uuid!!`",
        false,
        |_, body| set_metadata(body, "kmsRequestId", json!("not-a-uuid!!")),
        |_| success(),
    )
    .await
}

fn arn(prefix: &str) -> String {
    let mut arn = prefix.to_owned();
    while arn.len() < 2048 {
        arn.push('x');
    }
    arn
}

async fn long_arns(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &KEY_APIS,
        "with 2048-character ARNs",
        false,
        |api, body| {
            set_metadata(
                body,
                "awsPrincipalArn",
                json!(arn("arn:aws:iam::111122223333:role/long-")),
            );
            if api != OperationKind::GetKeyMetadata {
                set_metadata(
                    body,
                    "kmsKeyArn",
                    json!(arn("arn:aws:kms:us-east-1:111122223333:key/long-")),
                );
            }
        },
        |_| success(),
    )
    .await
}

async fn unknown_fields(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &APIS,
        "with unknown fields",
        false,
        |_, body| {
            set_metadata(body, "SourceIdentity", json!("alice"));
            set_metadata(body, "kmsRecipientAttestationPCR0", json!("00ff"));
            set_metadata(body, "principalTags", json!({"team": ["a", "b"]}));
            if let Some(b) = body.as_object_mut() {
                b.insert(
                    "futureField".into(),
                    json!({"nested": [1, 2.5, null, true]}),
                );
            }
        },
        |_| success(),
    )
    .await
}

async fn legacy_fields(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for op in ["CreateKey", "DescribeKey"] {
        let mut body = ctx.metadata_body();
        set_metadata(&mut body, "kmsOperation", json!(op));
        set_metadata(&mut body, "kmsKeyArn", json!(ctx.settings().kms_key_arn));
        set_metadata(&mut body, "kmsViaService", json!("ebs"));
        let ex = call(
            &ctx,
            OperationKind::GetKeyMetadata,
            format!("metadata ({op}) with kmsKeyArn and kmsViaService"),
            &body,
        )
        .await;
        v.expect(&ex, &[Want::Success]);
    }
    v
}

async fn vpc_fields(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &KEY_APIS,
        "with awsSourceVpc and awsSourceVpce",
        false,
        |_, body| {
            set_metadata(body, "awsSourceVpc", json!("vpc-0a1b2c3d4e5f67890"));
            set_metadata(body, "awsSourceVpce", json!("vpce-0a1b2c3d4e5f67890"));
        },
        |_| success(),
    )
    .await
}

async fn empty_body(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for api in KEY_APIS {
        let ex = call(
            &ctx,
            api,
            format!("{} with body {{}}", api_name(api)),
            &json!({}),
        )
        .await;
        let mut wants = vec![Want::Error(ErrorName::ValidationException)];
        if api == OperationKind::GetKeyMetadata {
            wants.push(Want::Success);
        }
        v.expect_reported(&ex, &wants);
    }
    v
}

async fn empty_metadata(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &KEY_APIS,
        "with requestMetadata {}",
        true,
        |_, body| body["requestMetadata"] = json!({}),
        |_| vec![Want::Error(ErrorName::ValidationException), Want::Success],
    )
    .await
}

async fn missing_key_arn(ctx: Ctx) -> Verdict {
    each(
        &ctx,
        &[OperationKind::Encrypt, OperationKind::Decrypt],
        "without kmsKeyArn",
        true,
        |_, body| {
            if let Some(m) = body
                .get_mut("requestMetadata")
                .and_then(Value::as_object_mut)
            {
                m.remove("kmsKeyArn");
            }
        },
        |_| vec![Want::Error(ErrorName::ValidationException), Want::Success],
    )
    .await
}

async fn health_empty(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for (what, body) in [
        ("health with body {}", json!({})),
        (
            "health with requestMetadata {}",
            json!({"requestMetadata": {}}),
        ),
    ] {
        let ex = call(&ctx, OperationKind::Health, what.to_owned(), &body).await;
        v.expect_reported(&ex, &[Want::ClientError]);
    }
    v
}

async fn non_json_body(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for api in KEY_APIS {
        let path = ctx.api_path(api, ctx.main_key().as_str());
        let req = ctx.sign(ctx.post(format!("{} with body `abc`", api_name(api)), path, "abc"));
        let ex = ctx.send(req).await;
        v.expect(&ex, &[Want::Error(ErrorName::ValidationException)]);
    }
    v
}

async fn content_type_variants(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for api in [OperationKind::GetKeyMetadata, OperationKind::Encrypt] {
        let body = match valid_body(&ctx, api).await {
            Ok(b) => b,
            Err(e) => {
                v.setup_failed(e);
                continue;
            }
        };
        let path = ctx.api_path(api, ctx.main_key().as_str());
        for (what, content_type) in [
            ("without Content-Type", None),
            (
                "with Content-Type application/json; charset=utf-8",
                Some("application/json; charset=utf-8"),
            ),
        ] {
            let req = ctx
                .signed_json(format!("{} {what}", api_name(api)), path.clone(), &body)
                .tweak(|r| match content_type {
                    None => {
                        r.headers_mut().remove(CONTENT_TYPE);
                    }
                    Some(ct) => {
                        r.headers_mut()
                            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
                    }
                });
            let ex = ctx.send(req).await;
            let got = v.expect_reported(
                &ex,
                &[Want::Success, Want::Error(ErrorName::ValidationException)],
            );
            if content_type.is_some() && got == Some(Want::Error(ErrorName::ValidationException)) {
                v.note(format!(
                    "{}: the charset parameter is rejected; accepting it is recommended",
                    api_name(api)
                ));
            }
        }
    }
    v
}

async fn null_fields(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let mut encrypt = ctx.encrypt_body(&EncryptInput::new(random_bytes(16)));
    encrypt["additionalAuthenticatedData"] = Value::Null;
    encrypt["ciphertextDataIntegrityValueAlgorithm"] = Value::Null;
    let ex = call(
        &ctx,
        OperationKind::Encrypt,
        "encrypt with AAD and CDIV algorithm null".to_owned(),
        &encrypt,
    )
    .await;
    v.expect_reported(
        &ex,
        &[Want::Success, Want::Error(ErrorName::ValidationException)],
    );
    let mut metadata = ctx.metadata_body();
    set_metadata(&mut metadata, "awsSourceVpc", Value::Null);
    set_metadata(&mut metadata, "awsSourceVpce", Value::Null);
    let ex = call(
        &ctx,
        OperationKind::GetKeyMetadata,
        "metadata with awsSourceVpc null".to_owned(),
        &metadata,
    )
    .await;
    v.expect_reported(
        &ex,
        &[Want::Success, Want::Error(ErrorName::ValidationException)],
    );
    v
}
