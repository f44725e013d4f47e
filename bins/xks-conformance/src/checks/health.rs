//! GetHealthStatus (rows 55-60, 62).

use std::collections::HashSet;

use serde_json::Value;

use super::Check;
use crate::ctx::{Ctx, kind, success_json};
use crate::verdict::{Verdict, Want};

const FIELDS: [&str; 5] = [
    "xksProxyFleetSize",
    "xksProxyVendor",
    "xksProxyModel",
    "ekmVendor",
    "ekmFleetDetails",
];

pub(super) fn checks() -> Vec<Check> {
    vec![
        check!(
            "health.kms-health-check",
            [55],
            Health,
            Required,
            "GetHealthStatus with kmsOperation KmsHealthCheck returns 200",
            kms_health_check
        ),
        check!(
            "health.key-store-operations",
            [56],
            Health,
            Required,
            "GetHealthStatus for CreateCustomKeyStore, ConnectCustomKeyStore and UpdateCustomKeyStore returns 200",
            key_store_operations
        ),
        check!(
            "health.fields-present",
            [57],
            Health,
            Required,
            "The answer has xksProxyFleetSize, xksProxyVendor, xksProxyModel, ekmVendor and ekmFleetDetails",
            fields_present
        ),
        check!(
            "health.fleet-size",
            [58],
            Health,
            Required,
            "xksProxyFleetSize is a JSON integer of at least 1",
            fleet_size
        ),
        check!(
            "health.ekm-fleet-details",
            [59],
            Health,
            Required,
            "ekmFleetDetails has 1-10 entries, each with string id and model and a valid healthStatus",
            ekm_fleet_details
        ),
        check!(
            "health.not-denied",
            [60],
            Health,
            Required,
            "With a deny policy configured, GetHealthStatus still returns 200",
            not_denied
        ),
        check!(
            "health.outage-reflected",
            [62],
            Health,
            Recommended,
            "GetHealthStatus reflects a key manager outage within 60 s (manual)",
            outage_reflected
        ),
    ]
}

/// A KmsHealthCheck answer's body, or a verdict with the problem. The exchange is kept as
/// evidence (it is shown only if the check finds a problem).
async fn health_body(ctx: &Ctx, v: &mut Verdict) -> Option<Value> {
    let ex = ctx
        .health("health (KmsHealthCheck)", "KmsHealthCheck")
        .await;
    match success_json(&ex) {
        Ok(body) => {
            v.keep(&ex);
            Some(body)
        }
        Err(e) => {
            v.fail_on(&ex, e);
            None
        }
    }
}

async fn kms_health_check(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let ex = ctx
        .health("health (KmsHealthCheck)", "KmsHealthCheck")
        .await;
    if v.expect(&ex, &[Want::Success]).is_some()
        && let Some(body) = ex.json()
    {
        let text = |f: &str| {
            body.get(f)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_owned()
        };
        v.outcome(format!(
            "{} {} over {} {}",
            text("xksProxyVendor"),
            text("xksProxyModel"),
            text("ekmVendor"),
            body.get("ekmFleetDetails")
                .and_then(Value::as_array)
                .map_or_else(String::new, |a| format!("({} key managers)", a.len()))
        ));
    }
    v
}

async fn key_store_operations(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    for op in [
        "CreateCustomKeyStore",
        "ConnectCustomKeyStore",
        "UpdateCustomKeyStore",
    ] {
        let ex = ctx.health(&format!("health ({op})"), op).await;
        v.expect(&ex, &[Want::Success]);
    }
    v
}

async fn fields_present(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let Some(body) = health_body(&ctx, &mut v).await else {
        return v;
    };
    let missing: Vec<&str> = FIELDS
        .iter()
        .copied()
        .filter(|f| body.get(*f).is_none_or(Value::is_null))
        .collect();
    if !missing.is_empty() {
        v.fail(format!("missing: {}", missing.join(", ")));
    }
    for f in ["xksProxyVendor", "xksProxyModel", "ekmVendor"] {
        if let Some(value) = body.get(f).filter(|x| !x.is_null())
            && !value.is_string()
        {
            v.fail(format!("`{f}` is {}, not a string", kind(value)));
        }
    }
    v
}

async fn fleet_size(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let Some(body) = health_body(&ctx, &mut v).await else {
        return v;
    };
    match body.get("xksProxyFleetSize") {
        None => v.fail("`xksProxyFleetSize` is missing"),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => v.fail("`xksProxyFleetSize` is 0; it must be at least 1"),
            Some(size) => v.outcome(format!("xksProxyFleetSize {size}")),
            None => v.fail(format!(
                "`xksProxyFleetSize` is {n}, not a positive integer"
            )),
        },
        Some(other) => v.fail(format!(
            "`xksProxyFleetSize` is {}, not a number",
            kind(other)
        )),
    }
    v
}

async fn ekm_fleet_details(ctx: Ctx) -> Verdict {
    let mut v = Verdict::new();
    let Some(body) = health_body(&ctx, &mut v).await else {
        return v;
    };
    let Some(details) = body.get("ekmFleetDetails") else {
        v.fail("`ekmFleetDetails` is missing");
        return v;
    };
    let Some(entries) = details.as_array() else {
        v.fail(format!(
            "`ekmFleetDetails` is {}, not an array",
            kind(details)
        ));
        return v;
    };
    if !(1..=10).contains(&entries.len()) {
        v.fail(format!(
            "`ekmFleetDetails` has {} entries; it must have 1 to 10",
            entries.len()
        ));
    }
    let mut ids = HashSet::new();
    let mut statuses = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("ekmFleetDetails[{i}]");
        if !entry.is_object() {
            v.fail(format!("{at} is {}, not an object", kind(entry)));
            continue;
        }
        for field in ["id", "model"] {
            match entry.get(field) {
                Some(Value::String(_)) => {}
                Some(other) => v.fail(format!("{at}.{field} is {}, not a string", kind(other))),
                None => v.fail(format!("{at}.{field} is missing")),
            }
        }
        if let Some(id) = entry.get("id").and_then(Value::as_str)
            && !ids.insert(id.to_owned())
        {
            v.fail(format!("{at}.id {id:?} is not unique"));
        }
        match entry.get("healthStatus").and_then(Value::as_str) {
            Some(s @ ("ACTIVE" | "DEGRADED" | "UNAVAILABLE")) => statuses.push(s.to_owned()),
            Some(other) => v.fail(format!(
                "{at}.healthStatus is {other:?}; it must be ACTIVE, DEGRADED or UNAVAILABLE"
            )),
            None => v.fail(format!("{at}.healthStatus is missing or not a string")),
        }
    }
    if !statuses.is_empty() {
        v.outcome(statuses.join(", "));
        if statuses.iter().all(|s| s == "UNAVAILABLE") {
            v.note(
                "every key manager is UNAVAILABLE, yet the answer is 200 (the spec leaves this \
                 open, fact sheet §12.8)",
            );
        }
    }
    v
}

async fn not_denied(ctx: Ctx) -> Verdict {
    if ctx.settings().denied_principal.is_none() {
        return Verdict::not_run(
            "needs a secondary authorization policy: configure the proxy to deny a principal \
             and supply it with --denied-principal",
        );
    }
    let mut v = Verdict::new();
    for op in ["KmsHealthCheck", "ConnectCustomKeyStore"] {
        let ex = ctx
            .health(&format!("health ({op}) with the deny policy in place"), op)
            .await;
        v.expect(&ex, &[Want::Success]);
    }
    v
}

async fn outage_reflected(_ctx: Ctx) -> Verdict {
    Verdict::not_run(
        "manual: stop the key manager, poll GetHealthStatus (e.g. `xks-mock-kms health-poll`) \
         and expect an error or UNAVAILABLE within 60 seconds; a network tester cannot cause \
         the outage",
    )
}
