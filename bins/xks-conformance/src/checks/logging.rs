//! Log hygiene (rows 129, 130): the tester sends marked requests and tells the operator
//! what to look for in the proxy's logs.

use serde_json::json;

use super::Check;
use crate::ctx::{Ctx, DecryptInput, EncryptInput, Sample, b64, random_hex};
use crate::verdict::Verdict;

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "logging.no-plaintext",
            [129],
            Logging,
            Required,
            "Plaintext (Encrypt input, Decrypt output) never appears in the proxy's logs (manual)",
            no_plaintext
        ),
        check!(
            "logging.request-metadata",
            [130],
            Logging,
            Recommended,
            "kmsRequestId and requestMetadata are logged for each call (manual)",
            request_metadata
        ),
    ]
}

async fn no_plaintext(ctx: Ctx) -> Verdict {
    let marker = format!("XKS-CONFORMANCE-MARKER-{}", random_hex(16));
    let input = EncryptInput::new(marker.clone().into_bytes());
    let (_, sealed) = ctx
        .encrypt(
            "encrypt the marker plaintext",
            ctx.main_key().as_str(),
            &input,
        )
        .await;
    let sent = match sealed {
        Ok(sealed) => {
            let sample = Sample {
                plaintext: input.plaintext.clone(),
                aad: None,
                sealed,
            };
            let _ = ctx
                .decrypt(
                    "decrypt the marker plaintext",
                    ctx.main_key().as_str(),
                    &DecryptInput::of(&sample),
                )
                .await;
            "encrypted and decrypted"
        }
        Err(_) => "sent for encryption",
    };
    Verdict::not_run(format!(
        "manual: the marker plaintext {marker} (Base64 {}) was {sent}; search the proxy's and \
         the key manager's logs for both forms: neither may appear",
        b64(marker.as_bytes())
    ))
}

async fn request_metadata(ctx: Ctx) -> Verdict {
    let request_id = format!("xks-conformance-{}", random_hex(16));
    let mut body = ctx.metadata_body();
    body["requestMetadata"]["kmsRequestId"] = json!(request_id);
    let path = ctx.key_path(ctx.main_key().as_str(), "metadata");
    let ex = ctx
        .send(ctx.signed_json("metadata with a marked kmsRequestId", path, &body))
        .await;
    Verdict::not_run(format!(
        "manual: find kmsRequestId {request_id} in the proxy's logs, with the operation, the \
         outcome ({}), the processing time and requestMetadata",
        ex.summary()
    ))
}
