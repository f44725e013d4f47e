//! Routing and methods (rows 7-17).

use http::Method;
use xks_protocol::{ErrorName, OperationKind};

use super::Check;
use crate::ctx::Ctx;
use crate::evidence::Scope;
use crate::verdict::{Verdict, Want};

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "routing.get-health-405",
            [7],
            Routing,
            Required,
            "GET on …/health returns 405",
            get_health
        ),
        check!(
            "routing.get-metadata-405",
            [8],
            Routing,
            Required,
            "GET on …/keys/<id>/metadata returns 405",
            get_metadata
        ),
        check!(
            "routing.get-encrypt-405",
            [9],
            Routing,
            Required,
            "GET on …/keys/<id>/encrypt returns 405",
            get_encrypt
        ),
        check!(
            "routing.get-decrypt-405",
            [10],
            Routing,
            Required,
            "GET on …/keys/<id>/decrypt returns 405",
            get_decrypt
        ),
        check!(
            "routing.other-methods",
            [11],
            Routing,
            Tolerant,
            "PUT and DELETE on an API URI return 405 or 404 InvalidUriPathException",
            other_methods
        ),
        check!(
            "routing.unknown-prefix",
            [12],
            Routing,
            Required,
            "A correctly signed POST under an unknown path prefix returns 404 InvalidUriPathException",
            unknown_prefix
        ),
        check!(
            "routing.wrong-version",
            [13],
            Routing,
            Required,
            "A POST to …/kms/xks/v2/health returns 404 InvalidUriPathException",
            wrong_version
        ),
        check!(
            "routing.unknown-operation",
            [14],
            Routing,
            Required,
            "A POST to …/keys/<id>/sign returns 404 InvalidUriPathException",
            unknown_operation
        ),
        check!(
            "routing.missing-operation",
            [15],
            Routing,
            Required,
            "A POST to …/keys/<id> returns 404 InvalidUriPathException",
            missing_operation
        ),
        check!(
            "routing.extra-segment",
            [16],
            Routing,
            Required,
            "A POST to …/keys/<id>/encrypt/extra returns 404 InvalidUriPathException",
            extra_segment
        ),
        check!(
            "routing.lb-health-check",
            [17],
            Routing,
            Recommended,
            "The load-balancer health check URL answers GET with 200 without SigV4",
            lb_health_check
        ),
    ]
}

/// A signed GET on the path of `api`: a proxy may authenticate first, so the signature
/// is valid.
async fn get_405(ctx: Ctx, api: OperationKind) -> Verdict {
    let mut v = Verdict::new();
    let path = ctx.api_path(api, ctx.main_key().as_str());
    let label = format!("GET {}", super::api_name(api));
    let req = ctx
        .sign(ctx.request(label, Method::GET, path))
        .op(api)
        .scope(Scope::JsonOnly);
    let ex = ctx.send(req).await;
    if v.expect(&ex, &[Want::Status(405)]).is_some() {
        let allow = ex.received().and_then(|r| {
            r.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("allow"))
                .map(|(_, v)| v.clone())
        });
        match allow {
            Some(allow) => v.outcome(format!("405, Allow: {allow}")),
            None => v.note("405 without an Allow header (RFC 9110 asks for one)"),
        }
    }
    v
}

async fn get_health(ctx: Ctx) -> Verdict {
    get_405(ctx, OperationKind::Health).await
}

async fn get_metadata(ctx: Ctx) -> Verdict {
    get_405(ctx, OperationKind::GetKeyMetadata).await
}

async fn get_encrypt(ctx: Ctx) -> Verdict {
    get_405(ctx, OperationKind::Encrypt).await
}

async fn get_decrypt(ctx: Ctx) -> Verdict {
    get_405(ctx, OperationKind::Decrypt).await
}

async fn other_methods(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let path = ctx.key_path(ctx.main_key().as_str(), "encrypt");
    let body = ctx.sample_body(OperationKind::Encrypt).to_string();
    for method in [Method::PUT, Method::DELETE] {
        let label = format!("{method} encrypt");
        let req = ctx
            .post(label, path.clone(), body.clone())
            .tweak(|r| r.set_method(method));
        let ex = ctx.send(ctx.sign(req).scope(Scope::JsonOnly)).await;
        v.expect_reported(
            &ex,
            &[
                Want::Status(405),
                Want::Error(ErrorName::InvalidUriPathException),
            ],
        );
    }
    v
}

/// A correctly signed POST of a health body to `path`: expects 404 InvalidUriPathException.
async fn invalid_path(ctx: Ctx, label: &str, path: String, body: &serde_json::Value) -> Verdict {
    let mut v = Verdict::new();
    let ex = ctx.send(ctx.signed_json(label, path, body)).await;
    v.expect(&ex, &[Want::Error(ErrorName::InvalidUriPathException)]);
    v
}

async fn unknown_prefix(ctx: Ctx) -> Verdict {
    let path = format!("{}/invalid/kms/xks/v1/health", ctx.settings().prefix());
    let body = ctx.health_body("KmsHealthCheck");
    invalid_path(ctx, "POST health under an unknown prefix", path, &body).await
}

async fn wrong_version(ctx: Ctx) -> Verdict {
    let path = format!("{}/kms/xks/v2/health", ctx.settings().prefix());
    let body = ctx.health_body("KmsHealthCheck");
    invalid_path(ctx, "POST …/kms/xks/v2/health", path, &body).await
}

async fn unknown_operation(ctx: Ctx) -> Verdict {
    let path = ctx.key_path(ctx.main_key().as_str(), "sign");
    let body = ctx.sample_body(OperationKind::Encrypt);
    invalid_path(ctx, "POST …/keys/<id>/sign", path, &body).await
}

async fn missing_operation(ctx: Ctx) -> Verdict {
    let path = format!("{}/keys/{}", ctx.settings().uri_path(), ctx.main_key());
    let body = ctx.sample_body(OperationKind::GetKeyMetadata);
    invalid_path(ctx, "POST …/keys/<id>", path, &body).await
}

async fn extra_segment(ctx: Ctx) -> Verdict {
    let path = format!("{}/extra", ctx.key_path(ctx.main_key().as_str(), "encrypt"));
    let body = ctx.sample_body(OperationKind::Encrypt);
    invalid_path(ctx, "POST …/keys/<id>/encrypt/extra", path, &body).await
}

async fn lb_health_check(ctx: Ctx) -> Verdict {
    let Some(path) = ctx.settings().ping_path.clone() else {
        return Verdict::not_run(
            "needs the load-balancer health check path: supply --ping-path (e.g. /ping)",
        );
    };
    let mut v = Verdict::new();
    let req = ctx
        .request("GET the load-balancer check, unsigned", Method::GET, path)
        .scope(Scope::None);
    let ex = ctx.send(req).await;
    if v.expect(&ex, &[Want::Status(200)]).is_some() {
        v.outcome(ex.summary());
    }
    v
}
