//! Mutual TLS (rows 36-41), when the operator supplies the client certificate the proxy
//! accepts. Each case uses a fresh connection.

use rcgen::{CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use xks_client::{CertificateSummary, ClientIdentity};

use super::Check;
use crate::ctx::Ctx;
use crate::evidence::{FailureKind, Scope};
use crate::settings::Identity;
use crate::verdict::{Verdict, Want};

/// The subject KMS presents, for the self-signed certificate when the accepted one's
/// cannot be read.
const KMS_CN_FALLBACK: &str = "cks.kms.us-east-1.amazonaws.com";

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "mtls.no-certificate",
            [36],
            Mtls,
            Required,
            "Without a client certificate the handshake is rejected",
            no_certificate
        ),
        check!(
            "mtls.self-signed",
            [37],
            Mtls,
            Required,
            "A self-signed client certificate (made by the tester) is rejected",
            self_signed
        ),
        check!(
            "mtls.expired",
            [38],
            Mtls,
            Required,
            "An expired client certificate from the accepted CA is rejected",
            expired
        ),
        check!(
            "mtls.wrong-subject",
            [39],
            Mtls,
            Required,
            "A client certificate from the accepted CA with another subject CN is rejected",
            wrong_subject
        ),
        check!(
            "mtls.other-ca",
            [40],
            Mtls,
            Required,
            "A client certificate with the accepted CN from another CA is rejected",
            other_ca
        ),
        check!(
            "mtls.accepted",
            [41],
            Mtls,
            Required,
            "The accepted client certificate gets through",
            accepted
        ),
    ]
}

const NEEDS_MTLS: &str = "needs the client certificate the proxy accepts: supply --client-cert \
                          and --client-key (only for proxies configured for mTLS)";

/// Sends a signed health request presenting `identity` (or none) on a fresh connection;
/// expects the proxy to refuse the handshake (or, with `accept`, to answer 200).
async fn attempt(
    ctx: &Ctx,
    label: &str,
    identity: Option<ClientIdentity>,
    accept: bool,
) -> Verdict {
    let mut v = Verdict::new();
    let mut config = ctx.config_without_identity().with_pool_max_idle_per_host(0);
    if let Some(identity) = identity {
        config = config.with_client_identity(identity);
    }
    let client = match xks_client::Client::new(config) {
        Ok(c) => c,
        Err(e) => {
            v.fail(format!("cannot build the client: {}", e.chain()));
            return v;
        }
    };
    let body = ctx.health_body("KmsHealthCheck");
    let mut req = ctx
        .signed_json(label, ctx.health_path(), &body)
        .via(client)
        .scope(Scope::None);
    if !accept {
        req = req.expect_transport_failure();
    }
    let ex = ctx.send(req).await;
    if accept {
        if v.expect(&ex, &[Want::Success]).is_some() {
            v.outcome("accepted");
        }
        return v;
    }
    if v.expect(&ex, &[Want::NoAnswer]).is_some() {
        match &ex.result {
            Err(f) if f.kind == FailureKind::Timeout => v.fail_on(
                &ex,
                "the proxy neither answered nor aborted the handshake within the timeout",
            ),
            Err(f) => v.outcome(format!("rejected: {}", f.text)),
            Ok(_) => {}
        }
    }
    v
}

async fn no_certificate(ctx: Ctx) -> Verdict {
    if ctx.settings().mtls.is_none() {
        return Verdict::not_run(NEEDS_MTLS);
    }
    attempt(&ctx, "health without a client certificate", None, false).await
}

async fn self_signed(ctx: Ctx) -> Verdict {
    let Some(mtls) = ctx.settings().mtls.clone() else {
        return Verdict::not_run(NEEDS_MTLS);
    };
    let cn = common_name(&mtls.good).unwrap_or_else(|| KMS_CN_FALLBACK.to_owned());
    let identity = match self_signed_identity(&cn) {
        Ok(i) => i,
        Err(e) => {
            let mut v = Verdict::new();
            v.fail(format!("cannot make a self-signed certificate: {e}"));
            return v;
        }
    };
    attempt(
        &ctx,
        &format!("health with a self-signed certificate for {cn}"),
        Some(identity),
        false,
    )
    .await
}

async fn negative(
    ctx: Ctx,
    pick: fn(&crate::settings::Mtls) -> Option<&Identity>,
    flag: &str,
    what: &str,
) -> Verdict {
    let Some(mtls) = ctx.settings().mtls.clone() else {
        return Verdict::not_run(NEEDS_MTLS);
    };
    let Some(identity) = pick(&mtls) else {
        return Verdict::not_run(format!(
            "needs {what}: supply --{flag}-client-cert and --{flag}-client-key"
        ));
    };
    attempt(
        &ctx,
        &format!("health with {what} ({})", identity.source),
        Some(identity.client.clone()),
        false,
    )
    .await
}

async fn expired(ctx: Ctx) -> Verdict {
    negative(
        ctx,
        |m| m.expired.as_ref(),
        "expired",
        "an expired client certificate",
    )
    .await
}

async fn wrong_subject(ctx: Ctx) -> Verdict {
    negative(
        ctx,
        |m| m.wrong_cn.as_ref(),
        "wrong-cn",
        "a certificate with another subject CN",
    )
    .await
}

async fn other_ca(ctx: Ctx) -> Verdict {
    negative(
        ctx,
        |m| m.other_ca.as_ref(),
        "other-ca",
        "a certificate from another CA",
    )
    .await
}

async fn accepted(ctx: Ctx) -> Verdict {
    let Some(mtls) = ctx.settings().mtls.clone() else {
        return Verdict::not_run(NEEDS_MTLS);
    };
    attempt(
        &ctx,
        &format!(
            "health with the accepted certificate ({})",
            mtls.good.source
        ),
        Some(mtls.good.client.clone()),
        true,
    )
    .await
}

/// The subject CN of the accepted certificate.
fn common_name(identity: &Identity) -> Option<String> {
    let der = CertificateDer::pem_slice_iter(&identity.cert_pem)
        .next()?
        .ok()?;
    let summary = CertificateSummary::from_der(der.as_ref())?;
    summary
        .subject()
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("CN="))
        .map(str::to_owned)
}

fn self_signed_identity(cn: &str) -> Result<ClientIdentity, String> {
    let mut params = CertificateParams::new(vec![cn.to_owned()]).map_err(|e| e.to_string())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    ClientIdentity::from_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes())
        .map_err(|e| e.chain())
}
