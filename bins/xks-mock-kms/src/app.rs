//! Runs a parsed command line and renders its outcome, as text or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::bench::{self, BenchReport};
use crate::cli::{Cli, Command, PlaintextArgs};
use crate::diagnosis::{Diagnosis, KmsApi};
use crate::envelope::EncryptionContext;
use crate::kms::{KeyReport, KeyStoreReport, MockKms};
use crate::{Error, Settings};

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: KMS reported an error (the diagnosis is printed).
pub const EXIT_KMS_ERROR: u8 = 1;
/// Exit status: bad command line or settings (`EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;

/// Runs `cli`, writing results to `out` and errors to `err` (with `--json`, errors go to
/// `out` too, as JSON). Returns the exit status.
pub async fn run(cli: Cli, out: &mut dyn Write, err: &mut dyn Write) -> u8 {
    let json = cli.settings.json;
    let outcome = match Settings::resolve(&cli.settings) {
        Ok(settings) => execute(cli.command, settings, json, out).await,
        Err(e) => Err(e),
    };
    match outcome {
        Ok(code) => code,
        Err(Error::Kms(diagnosis)) => {
            if json {
                let _ = writeln!(out, "{}", pretty(&diagnosis_json(&diagnosis)));
            } else {
                let _ = writeln!(err, "{}", diagnosis_text(&diagnosis));
            }
            EXIT_KMS_ERROR
        }
        Err(e) => {
            let _ = writeln!(err, "error: {}", chain(&e));
            EXIT_USAGE
        }
    }
}

async fn execute(
    command: Command,
    settings: Settings,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let api = match &command {
        Command::CreateKeyStore { .. } => KmsApi::CreateCustomKeyStore,
        Command::Connect => KmsApi::ConnectCustomKeyStore,
        Command::CreateKey { .. } => KmsApi::CreateKey,
        Command::Encrypt { .. } | Command::Bench(_) => KmsApi::Encrypt,
        Command::Decrypt { .. } => KmsApi::Decrypt,
        Command::GenerateDataKey { .. } => KmsApi::GenerateDataKey,
        Command::ReEncrypt { .. } => KmsApi::ReEncrypt,
        Command::HealthPoll { .. } => KmsApi::KmsHealthCheck,
    };
    let kms = MockKms::new(settings, api)?;
    let text = match command {
        Command::CreateKeyStore { name } => {
            let report = kms.check_key_store(api, Some(&name)).await?;
            if json {
                pretty(&json!({ "CustomKeyStore": report }))
            } else {
                key_store_text("CreateCustomKeyStore succeeded (simulated)", &report)
            }
        }
        Command::Connect => match kms.check_key_store(api, None).await {
            Ok(report) => {
                if json {
                    pretty(&json!({ "CustomKeyStore": report }))
                } else {
                    key_store_text("ConnectCustomKeyStore: ConnectionState CONNECTED", &report)
                }
            }
            Err(Error::Kms(diagnosis)) => {
                let text = if json {
                    let mut value = diagnosis_json(&diagnosis);
                    value["ConnectionState"] = json!("FAILED");
                    pretty(&value)
                } else {
                    format!(
                        "ConnectCustomKeyStore: ConnectionState FAILED\n  ConnectionErrorCode  {}\n  Message              {}\n  Cause                {}",
                        diagnosis.connection_error_code.unwrap_or("-"),
                        diagnosis.message,
                        diagnosis.cause.as_deref().unwrap_or("-"),
                    )
                };
                write_out(out, &text)?;
                return Ok(EXIT_KMS_ERROR);
            }
            Err(other) => return Err(other),
        },
        Command::CreateKey { xks_key_id } => {
            let report = kms.create_key(&xks_key_id).await?;
            if json {
                pretty(&json!({ "KeyMetadata": report }))
            } else {
                key_text(&report)
            }
        }
        Command::Encrypt {
            xks_key_id,
            plaintext,
            context,
        } => {
            let internal = kms.settings().internal_key()?;
            let plaintext = read_plaintext(&plaintext)?;
            let output = kms
                .encrypt(
                    api,
                    &internal,
                    &xks_key_id,
                    &plaintext,
                    &context_of(context),
                )
                .await?;
            if json {
                pretty(&json!(output))
            } else {
                format!(
                    "CiphertextBlob       {}\nKeyId                {}\nEncryptionAlgorithm  {}",
                    output.ciphertext_blob, output.key_id, output.encryption_algorithm
                )
            }
        }
        Command::Decrypt {
            ciphertext_blob,
            context,
            xks_key_id,
        } => {
            let internal = kms.settings().internal_key()?;
            let blob = read_blob(&ciphertext_blob)?;
            let output = kms
                .decrypt(
                    api,
                    &internal,
                    &blob,
                    &context_of(context),
                    xks_key_id.as_deref(),
                )
                .await?;
            let encoded = zeroize::Zeroizing::new(BASE64.encode(output.plaintext.as_slice()));
            if json {
                pretty(&json!({
                    "KeyId": output.key_id,
                    "Plaintext": encoded.as_str(),
                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            } else {
                let mut text = format!(
                    "KeyId                {}\nPlaintext (Base64)   {}",
                    output.key_id,
                    encoded.as_str()
                );
                if let Ok(utf8) = std::str::from_utf8(&output.plaintext)
                    && utf8.chars().all(|c| !c.is_control() || c == '\n')
                {
                    let _ = write!(text, "\nPlaintext (UTF-8)    {utf8}");
                }
                text
            }
        }
        Command::GenerateDataKey {
            xks_key_id,
            number_of_bytes,
            without_plaintext,
            context,
        } => {
            let internal = kms.settings().internal_key()?;
            let output = kms
                .generate_data_key(
                    &internal,
                    &xks_key_id,
                    number_of_bytes,
                    without_plaintext,
                    &context_of(context),
                )
                .await?;
            let plaintext = output
                .plaintext
                .as_ref()
                .map(|p| zeroize::Zeroizing::new(BASE64.encode(p.as_slice())));
            if json {
                let mut value = json!({
                    "CiphertextBlob": output.encrypted.ciphertext_blob,
                    "KeyId": output.encrypted.key_id,
                });
                if let Some(p) = &plaintext {
                    value["Plaintext"] = json!(p.as_str());
                }
                pretty(&value)
            } else {
                let mut text = format!(
                    "CiphertextBlob       {}\nKeyId                {}",
                    output.encrypted.ciphertext_blob, output.encrypted.key_id
                );
                if let Some(p) = &plaintext {
                    let _ = write!(text, "\nPlaintext (Base64)   {}", p.as_str());
                }
                text
            }
        }
        Command::ReEncrypt {
            ciphertext_blob,
            source_context,
            destination_xks_key_id,
            destination_context,
        } => {
            let internal = kms.settings().internal_key()?;
            let blob = read_blob(&ciphertext_blob)?;
            let (source, output) = kms
                .re_encrypt(
                    &internal,
                    &blob,
                    &context_of(source_context),
                    &destination_xks_key_id,
                    &context_of(destination_context),
                )
                .await?;
            if json {
                pretty(&json!({
                    "CiphertextBlob": output.ciphertext_blob,
                    "SourceKeyId": source,
                    "KeyId": output.key_id,
                    "SourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "DestinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
                }))
            } else {
                format!(
                    "CiphertextBlob       {}\nSourceKeyId          {source}\nKeyId                {}",
                    output.ciphertext_blob, output.key_id
                )
            }
        }
        Command::HealthPoll { count, interval } => {
            return health_poll(&kms, count, interval, json, out).await;
        }
        Command::Bench(args) => {
            let report = bench::run(&kms, &args).await?;
            if json {
                pretty(&json!(report))
            } else {
                bench_text(&report)
            }
        }
    };
    write_out(out, &text)?;
    Ok(EXIT_OK)
}

/// KMS's periodic health check, `count` times; fails if any poll failed.
async fn health_poll(
    kms: &MockKms,
    count: u32,
    interval: Duration,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Error> {
    let mut polls = Vec::new();
    let mut failed = false;
    for n in 1..=count.max(1) {
        if n > 1 {
            tokio::time::sleep(interval).await;
        }
        let result = kms.check_key_store(KmsApi::KmsHealthCheck, None).await;
        match result {
            Ok(report) => {
                let fleet: Vec<String> = report
                    .health
                    .ekm_fleet_details
                    .iter()
                    .map(|d| format!("{} {}", d.id, d.health_status))
                    .collect();
                if json {
                    polls.push(json!({ "Poll": n, "Ok": true, "Health": report.health }));
                } else {
                    write_out(
                        out,
                        &format!(
                            "KmsHealthCheck {n}/{count}: OK in {:.1} ms; key managers: {}",
                            report.health.latency_ms,
                            fleet.join(", ")
                        ),
                    )?;
                }
            }
            Err(Error::Kms(diagnosis)) => {
                failed = true;
                if json {
                    let mut value = diagnosis_json(&diagnosis);
                    value["Poll"] = json!(n);
                    value["Ok"] = json!(false);
                    polls.push(value);
                } else {
                    write_out(
                        out,
                        &format!(
                            "KmsHealthCheck {n}/{count}: FAILED\n{}",
                            diagnosis_text(&diagnosis)
                        ),
                    )?;
                }
            }
            Err(other) => return Err(other),
        }
    }
    if json {
        write_out(out, &pretty(&json!({ "Polls": polls })))?;
    }
    Ok(if failed { EXIT_KMS_ERROR } else { EXIT_OK })
}

fn key_store_text(title: &str, r: &KeyStoreReport) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "{title}");
    let _ = writeln!(t, "  CustomKeyStoreId       {}", r.custom_key_store_id);
    if let Some(name) = &r.custom_key_store_name {
        let _ = writeln!(t, "  CustomKeyStoreName     {name}");
    }
    let _ = writeln!(t, "  XksProxyUriEndpoint    {}", r.xks_proxy_uri_endpoint);
    let _ = writeln!(t, "  XksProxyUriPath        {}", r.xks_proxy_uri_path);
    let _ = writeln!(t, "  ConnectionState        {}", r.connection_state);
    if let Some(tls) = &r.tls {
        let _ = writeln!(t, "TLS");
        let _ = writeln!(t, "  Version                {}", tls.version);
        let _ = writeln!(
            t,
            "  CipherSuite            {}{}",
            tls.cipher_suite,
            if tls.spec_cipher_suite {
                " (one of the XKS spec's four)"
            } else {
                " (NOT one of the XKS spec's four)"
            }
        );
        let _ = writeln!(
            t,
            "  ALPN / HTTP            {} / {}",
            tls.alpn.as_deref().unwrap_or("none"),
            tls.http_version
        );
        if let Some(cert) = &tls.certificate {
            let mut names: Vec<String> =
                cert.dns_names.iter().map(|n| format!("DNS {n}")).collect();
            names.extend(cert.ip_addresses.iter().map(|n| format!("IP {n}")));
            let _ = writeln!(t, "  Certificate subject    {}", cert.subject);
            let _ = writeln!(t, "  Certificate names      {}", names.join(", "));
            let _ = writeln!(t, "  Certificate issuer     {}", cert.issuer);
            let _ = writeln!(
                t,
                "  Certificate validity   {} to {} ({} days left)",
                cert.not_before, cert.not_after, cert.days_left
            );
        }
    }
    let h = &r.health;
    let _ = writeln!(
        t,
        "GetHealthStatus (kmsOperation {}): {:.1} ms",
        h.kms_operation, h.latency_ms
    );
    let _ = writeln!(t, "  xksProxyVendor         {}", h.xks_proxy_vendor);
    let _ = writeln!(t, "  xksProxyModel          {}", h.xks_proxy_model);
    let _ = writeln!(t, "  xksProxyFleetSize      {}", h.xks_proxy_fleet_size);
    let _ = writeln!(t, "  ekmVendor              {}", h.ekm_vendor);
    for d in &h.ekm_fleet_details {
        let _ = writeln!(
            t,
            "  ekmFleetDetails        {} ({}): {}",
            d.id, d.model, d.health_status
        );
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(t, "Warnings");
        for w in &r.warnings {
            let _ = writeln!(t, "  - {w}");
        }
    }
    t.trim_end().to_owned()
}

fn key_text(r: &KeyReport) -> String {
    format!(
        "CreateKey succeeded (simulated)\n  KeyId                {}\n  Arn                  {}\n  KeyState             {}\n  Origin               {}\n  CustomKeyStoreId     {}\n  XksKeyId             {}\n  External key         {}, {}, {}",
        r.key_id,
        r.arn,
        r.key_state,
        r.origin,
        r.custom_key_store_id,
        r.xks_key_id,
        r.external_key.key_spec,
        r.external_key.key_usage.join(" "),
        r.external_key.key_status,
    )
}

fn bench_text(r: &BenchReport) -> String {
    let mut t = String::new();
    let load = match (r.concurrency, r.target_rate) {
        (Some(c), _) => format!("closed loop, concurrency {c}"),
        (None, Some(rate)) => format!("open loop, {rate} req/s"),
        _ => r.mode.to_owned(),
    };
    let _ = writeln!(
        t,
        "load         {load}; mix {}; plaintext {} B, AAD {} B; {} key(s)",
        r.mix, r.plaintext_bytes, r.aad_bytes, r.keys
    );
    let _ = writeln!(
        t,
        "connection   {} {} {}; {} connection(s) opened during the run",
        r.http_version.as_deref().unwrap_or("-"),
        r.tls_version.as_deref().unwrap_or("-"),
        r.cipher_suite.as_deref().unwrap_or("-"),
        r.connections_opened
    );
    let _ = writeln!(
        t,
        "requests     {} sent, {} completed, {} ok, {} failed, {} dropped (in-flight cap) in {:.2} s",
        r.sent,
        r.completed,
        r.ok,
        r.errors.values().sum::<u64>(),
        r.dropped,
        r.elapsed_s
    );
    let _ = writeln!(t, "throughput   {:.1} req/s", r.throughput_rps);
    let l = &r.latency_ms;
    let _ = writeln!(
        t,
        "latency ms   p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}",
        l.p50, l.p90, l.p99, l.p99_9, l.max, l.mean
    );
    let _ = writeln!(t, "over 250 ms  {}", r.over_250ms);
    if let Some(lag) = &r.schedule_lag_ms {
        let _ = writeln!(
            t,
            "send lag ms  p50 {:.3}  p99 {:.3}  max {:.3} (generator lateness, included above)",
            lag.p50, lag.p99, lag.max
        );
    }
    if !r.errors.is_empty() {
        let list: Vec<String> = r.errors.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(t, "errors       {}", list.join(", "));
    }
    let _ = writeln!(
        t,
        "signer       {:.2} µs per signature (xks-sigv4 Signer)",
        r.signer_us_per_request
    );
    if let Some(cpu) = r.client_cpu_us_per_request {
        let _ = writeln!(t, "client CPU   {cpu:.1} µs per request");
    }
    if let (Some(pid), Some(cpu)) = (r.proxy_pid, r.proxy_cpu_us_per_request) {
        let _ = writeln!(t, "proxy CPU    {cpu:.1} µs per request (pid {pid})");
    }
    t.trim_end().to_owned()
}

/// The AWS CLI's way of reporting an error, plus the connection error code and cause.
pub fn diagnosis_text(d: &Diagnosis) -> String {
    let mut text = d.to_string();
    if let Some(code) = d.connection_error_code {
        let label = if d.operation.is_key_store_operation() {
            "ConnectionErrorCode"
        } else {
            "Cause code (as a ConnectionErrorCode)"
        };
        let _ = write!(text, "\n  {label}: {code}");
    }
    if let Some(cause) = &d.cause {
        let _ = write!(text, "\n  Cause: {cause}");
    }
    text
}

fn diagnosis_json(d: &Diagnosis) -> Value {
    json!({
        "Error": { "Code": d.exception, "Message": d.message },
        "Operation": d.operation,
        "ConnectionErrorCode": d.connection_error_code,
        "Cause": d.cause,
    })
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

fn write_out(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    writeln!(out, "{text}").map_err(|e| Error::usage(format!("cannot write the output: {e}")))
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

fn context_of(pairs: Vec<(String, String)>) -> EncryptionContext {
    pairs.into_iter().collect::<BTreeMap<_, _>>()
}

fn read_plaintext(args: &PlaintextArgs) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
    let bytes = if let Some(text) = &args.plaintext {
        text.as_bytes().to_vec()
    } else if let Some(b64) = &args.plaintext_base64 {
        BASE64
            .decode(b64.trim())
            .map_err(|_| Error::usage("--plaintext-base64 is not valid Base64"))?
    } else if let Some(path) = &args.plaintext_file {
        std::fs::read(path)
            .map_err(|e| Error::usage(format!("cannot read {}: {e}", path.display())))?
    } else {
        return Err(Error::usage(
            "give --plaintext, --plaintext-base64 or --plaintext-file",
        ));
    };
    Ok(zeroize::Zeroizing::new(bytes))
}

fn read_blob(arg: &str) -> Result<String, Error> {
    match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map(|t| t.trim().to_owned())
            .map_err(|e| Error::usage(format!("cannot read {path}: {e}"))),
        None => Ok(arg.trim().to_owned()),
    }
}
