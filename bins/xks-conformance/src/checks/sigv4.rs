//! SigV4 authentication (rows 18-35), each on health, metadata, encrypt and decrypt.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;
use http::header::AUTHORIZATION;
use serde_json::Value;
use xks_client::SignedHeaders;
use xks_protocol::{ErrorName, OperationKind};
use xks_sigv4::Credential;

use super::{APIS, Check, KEY_APIS, api_name};
use crate::ctx::{Ctx, DecryptInput, Req, b64, random_bytes};
use crate::evidence::Exchange;
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "sigv4.unknown-access-key",
            [18],
            Sigv4,
            Required,
            "An unknown access key id returns 401 AuthenticationFailedException",
            unknown_access_key
        ),
        check!(
            "sigv4.wrong-secret",
            [19],
            Sigv4,
            Required,
            "A signature made with a wrong secret returns 401 AuthenticationFailedException",
            wrong_secret
        ),
        check!(
            "sigv4.missing-authorization",
            [20],
            Sigv4,
            Required,
            "A request without an Authorization header returns 401",
            missing_authorization
        ),
        check!(
            "sigv4.malformed-authorization",
            [21],
            Sigv4,
            Required,
            "A malformed Authorization header (garbage, no Signature=, another algorithm) returns 401",
            malformed_authorization
        ),
        check!(
            "sigv4.body-tampered",
            [22],
            Sigv4,
            Required,
            "A body changed by one byte after signing returns 401",
            body_tampered
        ),
        check!(
            "sigv4.path-tampered",
            [23],
            Sigv4,
            Required,
            "A path changed after signing (another key id, same prefix) returns 401",
            path_tampered
        ),
        check!(
            "sigv4.service-kms",
            [24],
            Sigv4,
            Required,
            "A request signed for service `kms` instead of `kms-xks-proxy` returns 401",
            service_kms
        ),
        check!(
            "sigv4.skew-past-10min",
            [25],
            Sigv4,
            Required,
            "X-Amz-Date 10 minutes in the past, validly signed, returns 401",
            skew_past
        ),
        check!(
            "sigv4.skew-future-10min",
            [26],
            Sigv4,
            Required,
            "X-Amz-Date 10 minutes in the future, validly signed, returns 401",
            skew_future
        ),
        check!(
            "sigv4.skew-2min",
            [27],
            Sigv4,
            Recommended,
            "X-Amz-Date 2 minutes in the past or future is accepted",
            skew_small
        ),
        check!(
            "sigv4.missing-date",
            [28],
            Sigv4,
            Required,
            "A request without X-Amz-Date returns 401",
            missing_date
        ),
        check!(
            "sigv4.scope-date-mismatch",
            [29],
            Sigv4,
            Recommended,
            "A credential scope date other than the X-Amz-Date date returns 401",
            scope_date_mismatch
        ),
        check!(
            "sigv4.kms-style",
            [30],
            Sigv4,
            Required,
            "A signature over SignedHeaders=host;x-amz-date (as KMS signs) is accepted",
            kms_style
        ),
        check!(
            "sigv4.curl-style",
            [31],
            Sigv4,
            Recommended,
            "A signature over SignedHeaders=content-type;host;x-amz-date (as curl signs) is accepted",
            curl_style
        ),
        check!(
            "sigv4.other-region",
            [32],
            Sigv4,
            Tolerant,
            "A request signed for another region is accepted, or rejected with 401 (reported)",
            other_region
        ),
        check!(
            "sigv4.other-prefix-credential",
            [33],
            Sigv4,
            Recommended,
            "The credential of another path prefix returns 401 on this one",
            other_prefix_credential
        ),
        check!(
            "sigv4.rotation",
            [34],
            Sigv4,
            Recommended,
            "A second credential configured for the same prefix is accepted too (rotation)",
            rotation
        ),
        check!(
            "sigv4.no-key-disclosure",
            [35],
            Sigv4,
            Recommended,
            "A bad signature on an unknown key id returns 401, not 404: no key existence leaks",
            no_key_disclosure
        ),
    ]
}

/// One API's path and a valid body.
struct Case {
    api: OperationKind,
    path: String,
    body: Value,
}

/// A path and body for each API. With `authentic`, Decrypt gets a real ciphertext of the
/// main key (for checks that expect success); otherwise an all-zero one.
async fn cases(
    ctx: &Ctx,
    apis: &[OperationKind],
    authentic: bool,
) -> Result<Vec<Case>, (String, Arc<Exchange>)> {
    let key = ctx.main_key().as_str().to_owned();
    let mut out = Vec::new();
    for &api in apis {
        let body = if api == OperationKind::Decrypt && authentic {
            let sample = ctx.sample(32, None).await?;
            ctx.decrypt_body(&DecryptInput::of(&sample))
        } else {
            ctx.sample_body(api)
        };
        out.push(Case {
            api,
            path: ctx.api_path(api, &key),
            body,
        });
    }
    Ok(out)
}

/// Sends, for every API, the request `build` makes, and expects `want`.
async fn each_api(
    ctx: &Ctx,
    apis: &[OperationKind],
    authentic: bool,
    want: Want,
    build: impl Fn(&Ctx, &Case) -> Req,
) -> Verdict {
    let mut v = Verdict::new();
    let cases = match cases(ctx, apis, authentic).await {
        Ok(c) => c,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    for case in &cases {
        let ex = ctx.send(build(ctx, case)).await;
        v.expect(&ex, &[want]);
    }
    v
}

fn label(case: &Case, what: &str) -> String {
    format!("{} {what}", api_name(case.api))
}

/// A well-formed credential no proxy has: random access key id and secret.
fn random_credential(access_key_id: Option<&str>) -> Result<Credential, String> {
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let akid: String = match access_key_id {
        Some(id) => id.to_owned(),
        None => random_bytes(24)
            .iter()
            .map(|b| char::from(BASE32[usize::from(b % 32)]))
            .collect(),
    };
    Credential::from_config(akid, b64(&random_bytes(32))).map_err(|e| e.to_string())
}

async fn unknown_access_key(ctx: Ctx) -> Verdict {
    let credential = match random_credential(None) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot make a credential: {e}")),
    };
    let params = ctx.params_for(&credential);
    each_api(
        &ctx,
        &APIS,
        false,
        Want::Error(ErrorName::AuthenticationFailedException),
        |ctx, case| {
            ctx.sign_with(
                ctx.post_json(
                    label(case, "signed with an unknown access key id"),
                    case.path.clone(),
                    &case.body,
                ),
                &params,
            )
        },
    )
    .await
}

async fn wrong_secret(ctx: Ctx) -> Verdict {
    let akid = ctx
        .settings()
        .credential
        .access_key_id()
        .as_str()
        .to_owned();
    let credential = match random_credential(Some(&akid)) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot make a credential: {e}")),
    };
    let params = ctx.params_for(&credential);
    each_api(
        &ctx,
        &APIS,
        false,
        Want::Error(ErrorName::AuthenticationFailedException),
        |ctx, case| {
            ctx.sign_with(
                ctx.post_json(
                    label(case, "signed with a wrong secret"),
                    case.path.clone(),
                    &case.body,
                ),
                &params,
            )
        },
    )
    .await
}

async fn missing_authorization(ctx: Ctx) -> Verdict {
    each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        ctx.sign(ctx.post_json(
            label(case, "without Authorization"),
            case.path.clone(),
            &case.body,
        ))
        .tweak(|r| {
            r.headers_mut().remove(AUTHORIZATION);
        })
    })
    .await
}

async fn malformed_authorization(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let cases = match cases(&ctx, &APIS, false).await {
        Ok(c) => c,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    type Mangle = fn(&str) -> String;
    let variants: [(&str, Mangle); 3] = [
        ("with Authorization: garbage", |_| "garbage".to_owned()),
        ("without Signature=", |a| {
            a.find(", Signature=")
                .map_or_else(|| a.to_owned(), |at| a[..at].to_owned())
        }),
        ("with algorithm AWS4-HMAC-SHA512", |a| {
            a.replacen("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512", 1)
        }),
    ];
    for case in &cases {
        for (what, mangle) in variants {
            let req = ctx
                .sign(ctx.post_json(label(case, what), case.path.clone(), &case.body))
                .tweak(|r| {
                    let mangled = mangle(r.authorization().unwrap_or_default());
                    if let Ok(value) = HeaderValue::from_str(&mangled) {
                        r.headers_mut().insert(AUTHORIZATION, value);
                    }
                });
            let ex = ctx.send(req).await;
            v.expect(&ex, &[Want::Status(401)]);
        }
    }
    v
}

/// The body with the last character of `kmsRequestId`'s value changed: one byte, still
/// valid JSON.
fn change_one_byte(body: &str) -> String {
    let marker = "\"kmsRequestId\":\"";
    let Some(start) = body.find(marker).map(|i| i + marker.len()) else {
        return format!("{body} ");
    };
    let Some(end) = body[start..].find('"').map(|i| start + i) else {
        return format!("{body} ");
    };
    if end == start {
        return format!("{body} ");
    }
    let mut bytes = body.as_bytes().to_vec();
    bytes[end - 1] = if bytes[end - 1] == b'0' { b'1' } else { b'0' };
    String::from_utf8(bytes).unwrap_or_else(|_| format!("{body} "))
}

async fn body_tampered(ctx: Ctx) -> Verdict {
    each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        let tampered = change_one_byte(&case.body.to_string());
        ctx.sign(ctx.post_json(
            label(case, "with its body changed after signing"),
            case.path.clone(),
            &case.body,
        ))
        .tweak(|r| r.set_body(tampered))
    })
    .await
}

async fn path_tampered(ctx: Ctx) -> Verdict {
    let other = ctx.settings().keys.second.as_ref().map_or_else(
        || format!("xks-conformance-other-{}", crate::ctx::random_hex(8)),
        |k| k.as_str().to_owned(),
    );
    let main = ctx.main_key().as_str().to_owned();
    let mut v = each_api(&ctx, &KEY_APIS, false, Want::Status(401), |ctx, case| {
        let moved = case
            .path
            .replacen(&format!("/keys/{main}/"), &format!("/keys/{other}/"), 1);
        ctx.sign(ctx.post_json(
            label(case, "sent to another key id after signing"),
            case.path.clone(),
            &case.body,
        ))
        .tweak(|r| r.set_path(moved))
    })
    .await;
    v.note("health has no key id in its path; it is not part of this check");
    v
}

async fn service_kms(ctx: Ctx) -> Verdict {
    let params = ctx.params().with_service("kms");
    each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "signed for service kms"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await
}

async fn skewed(ctx: &Ctx, skew: Duration, past: bool, want: Want, authentic: bool) -> Verdict {
    let now = SystemTime::now();
    let time = if past { now - skew } else { now + skew };
    let params = ctx.params().with_time(time);
    let what = format!(
        "signed {} minutes in the {}",
        skew.as_secs() / 60,
        if past { "past" } else { "future" }
    );
    each_api(ctx, &APIS, authentic, want, |ctx, case| {
        ctx.sign_with(
            ctx.post_json(label(case, &what), case.path.clone(), &case.body),
            &params,
        )
    })
    .await
}

async fn skew_past(ctx: Ctx) -> Verdict {
    skewed(
        &ctx,
        Duration::from_secs(600),
        true,
        Want::Status(401),
        false,
    )
    .await
}

async fn skew_future(ctx: Ctx) -> Verdict {
    skewed(
        &ctx,
        Duration::from_secs(600),
        false,
        Want::Status(401),
        false,
    )
    .await
}

async fn skew_small(ctx: Ctx) -> Verdict {
    let mut v = skewed(&ctx, Duration::from_secs(120), true, Want::Success, true).await;
    let future = skewed(&ctx, Duration::from_secs(120), false, Want::Success, true).await;
    v.absorb(future);
    v
}

async fn missing_date(ctx: Ctx) -> Verdict {
    let params = ctx.params();
    each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "without X-Amz-Date"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
        .tweak(|r| {
            r.headers_mut().remove("x-amz-date");
        })
    })
    .await
}

async fn scope_date_mismatch(ctx: Ctx) -> Verdict {
    let yesterday = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(86_400);
    let date: String = xks_client::format_utc(i64::try_from(yesterday).unwrap_or(0))
        .chars()
        .take(10)
        .filter(char::is_ascii_digit)
        .collect();
    let params = ctx.params().with_scope_date(date);
    each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "with yesterday's date in the credential scope"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await
}

async fn kms_style(ctx: Ctx) -> Verdict {
    let params = ctx.params().with_signed_headers(SignedHeaders::HostAndDate);
    each_api(&ctx, &APIS, true, Want::Success, |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "signed over host;x-amz-date"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await
}

async fn curl_style(ctx: Ctx) -> Verdict {
    let params = ctx
        .params()
        .with_signed_headers(SignedHeaders::ContentTypeHostAndDate);
    each_api(&ctx, &APIS, true, Want::Success, |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "signed over content-type;host;x-amz-date"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await
}

async fn other_region(ctx: Ctx) -> Verdict {
    let region = ctx.settings().other_region.clone();
    let params = ctx.params().with_region(region.clone());
    let mut v = Verdict::new();
    let cases = match cases(&ctx, &APIS, true).await {
        Ok(c) => c,
        Err(e) => {
            v.setup_failed(e);
            return v;
        }
    };
    let mut accepted = 0;
    let mut pinned = 0;
    for case in &cases {
        let req = ctx.sign_with(
            ctx.post_json(
                label(case, &format!("signed for region {region}")),
                case.path.clone(),
                &case.body,
            ),
            &params,
        );
        let ex = ctx.send(req).await;
        match v.expect(&ex, &[Want::Success, Want::Status(401)]) {
            Some(Want::Success) => accepted += 1,
            Some(_) => pinned += 1,
            None => {}
        }
    }
    match (accepted, pinned) {
        (a, 0) if a > 0 => v.outcome(format!(
            "region {region} accepted: the proxy does not pin its region"
        )),
        (0, p) if p > 0 => v.outcome(format!(
            "region {region} rejected with 401: the proxy pins its region"
        )),
        (a, p) => v.outcome(format!(
            "region {region}: {a} APIs accepted it, {p} rejected it"
        )),
    }
    v
}

async fn other_prefix_credential(ctx: Ctx) -> Verdict {
    let Some(other) = ctx.settings().other_tenant.clone() else {
        return Verdict::not_run(
            "needs the credential of another path prefix: supply --other-access-key-id and \
             --other-secret-access-key (and --other-uri-path to confirm it works there)",
        );
    };
    let params = ctx.params_for(&other.credential);
    let mut v = Verdict::new();
    if let Some(path) = &other.uri_path {
        let body = ctx.health_body("KmsHealthCheck");
        let req = ctx.sign_with(
            ctx.post_json(
                "health on its own prefix with the other credential",
                format!("{path}/health"),
                &body,
            ),
            &params,
        );
        let ex = ctx.send(req).await;
        if !Want::Success.matches(&ex) {
            v.note(format!(
                "the other credential did not work on its own path {path} either ({}), so the \
                 401s below prove less",
                ex.summary()
            ));
        }
    }
    let more = each_api(&ctx, &APIS, false, Want::Status(401), |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "signed with another prefix's credential"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await;
    v.absorb(more);
    v
}

async fn rotation(ctx: Ctx) -> Verdict {
    let Some(second) = ctx.settings().second_credential.clone() else {
        return Verdict::not_run(
            "needs a second credential of the same prefix: supply --second-access-key-id and \
             --second-secret-access-key",
        );
    };
    let params = ctx.params_for(&second);
    let mut v = each_api(&ctx, &APIS, true, Want::Success, |ctx, case| {
        ctx.sign_with(
            ctx.post_json(
                label(case, "signed with the second credential"),
                case.path.clone(),
                &case.body,
            ),
            &params,
        )
    })
    .await;
    let first = each_api(
        &ctx,
        &[OperationKind::Health],
        false,
        Want::Success,
        |ctx, case| {
            ctx.sign(ctx.post_json(
                label(case, "signed with the first credential"),
                case.path.clone(),
                &case.body,
            ))
        },
    )
    .await;
    v.absorb(first);
    if v.problems.is_empty() {
        v.outcome("both credentials accepted");
    }
    v
}

async fn no_key_disclosure(ctx: Ctx) -> Verdict {
    let akid = ctx
        .settings()
        .credential
        .access_key_id()
        .as_str()
        .to_owned();
    let credential = match random_credential(Some(&akid)) {
        Ok(c) => c,
        Err(e) => return failed(format!("cannot make a credential: {e}")),
    };
    let params = ctx.params_for(&credential);
    let absent = format!("xks-conformance-absent-{}", crate::ctx::random_hex(12));
    let main = ctx.main_key().as_str().to_owned();
    each_api(&ctx, &KEY_APIS, false, Want::Status(401), |ctx, case| {
        let path = case
            .path
            .replacen(&format!("/keys/{main}/"), &format!("/keys/{absent}/"), 1);
        ctx.sign_with(
            ctx.post_json(
                label(case, "with a bad signature on an unknown key id"),
                path,
                &case.body,
            ),
            &params,
        )
    })
    .await
}

fn failed(what: String) -> Verdict {
    let mut v = Verdict::new();
    v.fail(what);
    v
}
