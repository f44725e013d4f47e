use base64::{Engine as _, engine::general_purpose::STANDARD};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

// Fact sheet §3, §6 and §10 (Appendix D), verbatim.
const METADATA_EXAMPLE: &str =
    r#"{"keySpec":"AES_256","keyUsage":["ENCRYPT","DECRYPT"],"keyStatus":"ENABLED"}"#;
const ENCRYPT_EXAMPLE: &str = r#"{"authenticationTag":"vBxN2ncH1oEkR8WVXpmyYQ==","ciphertext":"ghxkK1txeDNn3q8Y",
 "ciphertextDataIntegrityValue":"qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=",
 "ciphertextMetadata":"a2V5X3ZlcnNpb249MQ==","initializationVector":"HMrlRw85cAJUd5Ax"}"#;
const ENCRYPT_APPENDIX_D: &str = r#"{"ciphertext":"yhvo7e8vvg3UoCLP","initializationVector":"BejmaUXJA08WzxJZ","authenticationTag":"2wsU/8i0OvB7JJkDJeiWSQ=="}"#;
const DECRYPT_EXAMPLE: &str = r#"{"plaintext":"SGVsbG8gV29ybGQh"}"#;
const HEALTH_EXAMPLE: &str = r#"{"xksProxyFleetSize":2,"xksProxyVendor":"Acme Corp","xksProxyModel":"Acme XKS Proxy 1.0","ekmVendor":"Thales Group",
 "ekmFleetDetails":[{"id":"hsm-id-1","model":"Luna 5.0","healthStatus":"DEGRADED"},
                    {"id":"hsm-id-2","model":"Luna 5.1","healthStatus":"ACTIVE"}]}"#;
const HEALTH_APPENDIX_D: &str = r#"{"xksProxyFleetSize":1,"xksProxyVendor":"Acme","xksProxyModel":"Acme AWS XKS Proxy 1.0","ekmVendor":"Acme","ekmFleetDetails":[{"id":"Id-1","model":"Acme HSM 1.0","healthStatus":"ACTIVE"}]}"#;

const AAD: &[u8] = b"project=nile,department=marketing";

fn value(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

fn with(mut body: Value, key: &str, value: Option<Value>) -> Value {
    let object = body.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert(key.to_owned(), value),
        None => object.remove(key),
    };
    body
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

#[track_caller]
fn assert_rejected<T: fmt::Debug>(
    parse: fn(&[u8]) -> Result<T, ResponseError>,
    body: &Value,
    message: &str,
) {
    let error = parse(&serde_json::to_vec(body).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with(message),
        "{body}: {error:?} does not start with {message:?}"
    );
}

// --- The spec's examples ---

#[test]
fn spec_metadata_example() {
    let response = MetadataResponse::from_json(METADATA_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(
        response,
        MetadataResponse {
            key_spec: KeySpec::Aes256,
            key_usage: vec![KeyUsage::Encrypt, KeyUsage::Decrypt],
            key_status: KeyStatus::Enabled,
        }
    );
    assert_eq!(serde_json::to_string(&response).unwrap(), METADATA_EXAMPLE);
}

#[test]
fn spec_encrypt_example_and_its_cdiv() {
    let response = EncryptResponse::from_json(ENCRYPT_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(
        response.ciphertext_metadata.as_deref(),
        Some(&b"key_version=1"[..])
    );
    assert_eq!(
        response.ciphertext_data_integrity_value,
        Some(response.integrity_value(AAD))
    );
    assert_ne!(
        response.ciphertext_data_integrity_value,
        Some(response.integrity_value(b""))
    );
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        value(ENCRYPT_EXAMPLE)
    );
}

#[test]
fn appendix_d_encrypt_example_has_no_optional_fields() {
    let response = EncryptResponse::from_json(ENCRYPT_APPENDIX_D.as_bytes()).unwrap();
    assert_eq!(response.ciphertext.len(), 12);
    assert_eq!(response.initialization_vector.len(), 12);
    assert_eq!(response.ciphertext_metadata, None);
    assert_eq!(response.ciphertext_data_integrity_value, None);
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        ENCRYPT_APPENDIX_D
    );
}

#[test]
fn spec_decrypt_example() {
    let response = DecryptResponse::from_json(DECRYPT_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(response.plaintext.as_bytes(), b"Hello World!");
    assert_eq!(
        format!("{response:?}"),
        "DecryptResponse { plaintext: Plaintext { len: 12 } }"
    );
    assert_eq!(serde_json::to_string(&response).unwrap(), DECRYPT_EXAMPLE);
}

#[test]
fn spec_health_examples() {
    let response = HealthResponse::from_json(HEALTH_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(response.xks_proxy_fleet_size, 2);
    assert_eq!(response.ekm_vendor, "Thales Group");
    assert_eq!(
        response.ekm_fleet_details,
        [
            EkmFleetDetail {
                id: "hsm-id-1".to_owned(),
                model: "Luna 5.0".to_owned(),
                health_status: HealthStatus::Degraded,
            },
            EkmFleetDetail {
                id: "hsm-id-2".to_owned(),
                model: "Luna 5.1".to_owned(),
                health_status: HealthStatus::Active,
            },
        ]
    );
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        value(HEALTH_EXAMPLE)
    );

    let response = HealthResponse::from_json(HEALTH_APPENDIX_D.as_bytes()).unwrap();
    assert_eq!(serde_json::to_string(&response).unwrap(), HEALTH_APPENDIX_D);
}

#[test]
fn serde_deserialize_matches_from_json() {
    let response: HealthResponse = serde_json::from_str(HEALTH_EXAMPLE).unwrap();
    assert_eq!(
        response,
        HealthResponse::from_json(HEALTH_EXAMPLE.as_bytes()).unwrap()
    );
    let response: EncryptResponse = serde_json::from_str(ENCRYPT_EXAMPLE).unwrap();
    assert_eq!(response.authentication_tag.len(), 16);
    let response: MetadataResponse = serde_json::from_str(METADATA_EXAMPLE).unwrap();
    assert_eq!(response.key_status, KeyStatus::Enabled);
    let response: DecryptResponse = serde_json::from_str(DECRYPT_EXAMPLE).unwrap();
    assert_eq!(response.plaintext.len(), 12);

    let error = serde_json::from_str::<MetadataResponse>(r#"{"keySpec":"AES_256"}"#);
    assert!(
        error
            .unwrap_err()
            .to_string()
            .starts_with("`keyUsage` is required but missing")
    );
    let error = serde_json::from_str::<DecryptResponse>(r#"{"plaintext":"a","plaintext":"b"}"#);
    assert!(error.unwrap_err().to_string().starts_with("duplicate key"));
    assert!(serde_json::from_str::<HealthResponse>("[]").is_err());
}

// --- Tolerance ---

#[test]
fn unknown_fields_and_null_optionals_are_accepted() {
    let body = with(
        value(ENCRYPT_APPENDIX_D),
        "ciphertextMetadata",
        Some(Value::Null),
    );
    let body = with(body, "ciphertextDataIntegrityValue", Some(Value::Null));
    let body = with(body, "requestId", Some(json!({"a": [1]})));
    EncryptResponse::from_json(&serde_json::to_vec(&body).unwrap()).unwrap();

    let mut body = with(value(HEALTH_EXAMPLE), "vendorExtras", Some(json!(true)));
    body["ekmFleetDetails"][0]["firmware"] = json!("7.8");
    HealthResponse::from_json(&serde_json::to_vec(&body).unwrap()).unwrap();
}

#[test]
fn open_key_specs_and_usages() {
    let body = json!({
        "keySpec": "AES_128",
        "keyUsage": ["WRAP", "encrypt", "DECRYPT"],
        "keyStatus": "DISABLED",
    });
    let response = MetadataResponse::from_json(&serde_json::to_vec(&body).unwrap()).unwrap();
    assert_eq!(response.key_spec, KeySpec::Other("AES_128".to_owned()));
    assert_eq!(response.key_usage[0], KeyUsage::Other("WRAP".to_owned()));
    assert_eq!(response.key_usage[1].as_str(), "encrypt");
    assert_ne!(response.key_usage[1], KeyUsage::Encrypt);
    assert_eq!(response.key_usage[2], KeyUsage::Decrypt);
    assert_eq!(response.key_status, KeyStatus::Disabled);

    // Wire strings decide equality, whatever the variant.
    assert_eq!(KeySpec::Other("AES_256".to_owned()), KeySpec::Aes256);
    assert_eq!(KeyUsage::Other("ENCRYPT".to_owned()), KeyUsage::Encrypt);
    assert_eq!(KeySpec::from("AES_256"), KeySpec::Aes256);
    assert!(matches!(KeyUsage::from("DECRYPT"), KeyUsage::Decrypt));
    assert_eq!(KeyUsage::Other("SIGN".to_owned()).to_string(), "SIGN");
    assert_eq!(KeySpec::Aes256.to_string(), "AES_256");
}

// --- Constraints ---

#[test]
fn health_constraints() {
    let parse = HealthResponse::from_json;
    let body = value(HEALTH_EXAMPLE);
    for (size, message) in [
        (json!(0), "`xksProxyFleetSize` must be at least 1"),
        (json!(-1), "`xksProxyFleetSize` must be an integer"),
        (json!(1.5), "`xksProxyFleetSize` must be an integer"),
        (
            json!(4_294_967_296_u64),
            "`xksProxyFleetSize` must be an integer",
        ),
        (
            json!("2"),
            "`xksProxyFleetSize` must be a number, not a string",
        ),
    ] {
        assert_rejected(
            parse,
            &with(body.clone(), "xksProxyFleetSize", Some(size)),
            message,
        );
    }
    for name in [
        "xksProxyFleetSize",
        "xksProxyVendor",
        "xksProxyModel",
        "ekmVendor",
        "ekmFleetDetails",
    ] {
        assert_rejected(
            parse,
            &with(body.clone(), name, None),
            &format!("`{name}` is required"),
        );
    }
    for name in ["xksProxyVendor", "xksProxyModel", "ekmVendor"] {
        assert_rejected(
            parse,
            &with(body.clone(), name, Some(json!(1))),
            &format!("`{name}` must be a string"),
        );
    }

    let entry = json!({"id": "a", "model": "b", "healthStatus": "ACTIVE"});
    let details = |n: usize| Some(Value::Array(vec![entry.clone(); n]));
    HealthResponse::from_json(
        &serde_json::to_vec(&with(body.clone(), "ekmFleetDetails", details(10))).unwrap(),
    )
    .unwrap();
    for (n, message) in [
        (0, "must have 1 to 10 entries, not 0"),
        (11, "must have 1 to 10 entries, not 11"),
    ] {
        assert_rejected(
            parse,
            &with(body.clone(), "ekmFleetDetails", details(n)),
            &format!("`ekmFleetDetails` {message}"),
        );
    }
    assert_rejected(
        parse,
        &with(body.clone(), "ekmFleetDetails", Some(json!({}))),
        "`ekmFleetDetails` must be an array",
    );
    assert_rejected(
        parse,
        &with(body.clone(), "ekmFleetDetails", Some(json!([entry, "x"]))),
        "`ekmFleetDetails[1]` must be a JSON object",
    );

    for (field, bad, message) in [
        ("id", None, "`ekmFleetDetails[0].id` is required"),
        (
            "model",
            Some(json!(5)),
            "`ekmFleetDetails[0].model` must be a string",
        ),
        (
            "healthStatus",
            None,
            "`ekmFleetDetails[0].healthStatus` is required",
        ),
        (
            "healthStatus",
            Some(json!("HEALTHY")),
            concat!(
                r#"`ekmFleetDetails[0].healthStatus` must be one of "#,
                r#""ACTIVE", "DEGRADED", "UNAVAILABLE""#
            ),
        ),
        (
            "healthStatus",
            Some(json!("active")),
            "`ekmFleetDetails[0].healthStatus` must be one of",
        ),
    ] {
        let mut body = body.clone();
        let object = body["ekmFleetDetails"][0].as_object_mut().unwrap();
        match bad {
            Some(bad) => object.insert(field.to_owned(), bad),
            None => object.remove(field),
        };
        assert_rejected(parse, &body, message);
    }
}

#[test]
fn metadata_constraints() {
    let parse = MetadataResponse::from_json;
    let body = value(METADATA_EXAMPLE);
    let usages = |n: usize| Some(Value::Array(vec![json!("ENCRYPT"); n]));
    MetadataResponse::from_json(
        &serde_json::to_vec(&with(body.clone(), "keyUsage", usages(10))).unwrap(),
    )
    .unwrap();
    MetadataResponse::from_json(
        &serde_json::to_vec(&with(body.clone(), "keyUsage", usages(0))).unwrap(),
    )
    .unwrap();
    assert_rejected(
        parse,
        &with(body.clone(), "keyUsage", usages(11)),
        "`keyUsage` must have at most 10 entries, not 11",
    );
    assert_rejected(
        parse,
        &with(body.clone(), "keyUsage", Some(json!("ENCRYPT"))),
        "`keyUsage` must be an array, not a string",
    );
    assert_rejected(
        parse,
        &with(body.clone(), "keyUsage", Some(json!(["ENCRYPT", 1]))),
        "`keyUsage[1]` must be a string, not a number",
    );
    assert_rejected(
        parse,
        &with(body.clone(), "keyStatus", Some(json!("PENDING"))),
        r#"`keyStatus` must be one of "ENABLED", "DISABLED""#,
    );
    for name in ["keySpec", "keyUsage", "keyStatus"] {
        assert_rejected(
            parse,
            &with(body.clone(), name, None),
            &format!("`{name}` is required"),
        );
        assert_rejected(
            parse,
            &with(body.clone(), name, Some(Value::Null)),
            &format!("`{name}` is required"),
        );
    }
}

#[test]
fn encrypt_constraints() {
    let parse = EncryptResponse::from_json;
    let body = value(ENCRYPT_EXAMPLE);
    for name in ["ciphertext", "initializationVector", "authenticationTag"] {
        assert_rejected(
            parse,
            &with(body.clone(), name, None),
            &format!("`{name}` is required"),
        );
    }
    for name in [
        "ciphertext",
        "ciphertextMetadata",
        "initializationVector",
        "authenticationTag",
        "ciphertextDataIntegrityValue",
    ] {
        assert_rejected(
            parse,
            &with(body.clone(), name, Some(json!("QQ"))),
            &format!("`{name}` is not valid padded standard Base64"),
        );
        assert_rejected(
            parse,
            &with(body.clone(), name, Some(json!(["QQ=="]))),
            &format!("`{name}` must be a string"),
        );
    }
    for (name, len, message) in [
        (
            "initializationVector",
            13,
            "must decode to 12 or 16 bytes, not 13",
        ),
        (
            "authenticationTag",
            15,
            "must decode to exactly 16 bytes, not 15",
        ),
        (
            "authenticationTag",
            17,
            "must decode to exactly 16 bytes, not 17",
        ),
        (
            "ciphertextMetadata",
            21,
            "must decode to at most 20 bytes, not 21",
        ),
        (
            "ciphertextDataIntegrityValue",
            31,
            "must decode to exactly 32 bytes, not 31",
        ),
        (
            "ciphertextDataIntegrityValue",
            33,
            "must decode to exactly 32 bytes, not 33",
        ),
    ] {
        assert_rejected(
            parse,
            &with(body.clone(), name, Some(b64(&vec![0; len]))),
            &format!("`{name}` {message}"),
        );
    }
}

#[test]
fn decrypt_constraints() {
    let parse = DecryptResponse::from_json;
    assert_rejected(parse, &json!({}), "`plaintext` is required");
    assert_rejected(
        parse,
        &json!({"plaintext": "SGVsbG8gV29ybGQ"}),
        "`plaintext` is not valid",
    );
    assert_rejected(
        parse,
        &json!({"plaintext": 12}),
        "`plaintext` must be a string",
    );
    assert_rejected(parse, &json!("plaintext"), "body must be a JSON object");
}

#[test]
fn validate_checks_built_responses() {
    let mut encrypt = EncryptResponse::from_json(ENCRYPT_EXAMPLE.as_bytes()).unwrap();
    encrypt.validate().unwrap();
    encrypt.initialization_vector.push(0);
    assert_eq!(
        encrypt.validate().unwrap_err().to_string(),
        "`initializationVector` must decode to 12 or 16 bytes, not 13"
    );
    encrypt.initialization_vector = vec![0; 16];
    encrypt.ciphertext_metadata = Some(vec![0; 21]);
    assert!(encrypt.validate().is_err());

    let mut health = HealthResponse::from_json(HEALTH_EXAMPLE.as_bytes()).unwrap();
    health.validate().unwrap();
    health.xks_proxy_fleet_size = 0;
    assert_eq!(
        health.validate().unwrap_err().to_string(),
        "`xksProxyFleetSize` must be at least 1"
    );
    health.xks_proxy_fleet_size = 1;
    health.ekm_fleet_details.clear();
    assert!(health.validate().is_err());

    let mut metadata = MetadataResponse::from_json(METADATA_EXAMPLE.as_bytes()).unwrap();
    metadata.validate().unwrap();
    metadata.key_usage = vec![KeyUsage::Encrypt; 11];
    assert!(metadata.validate().is_err());
}

// --- Round trips and robustness ---

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn health_response() -> impl Strategy<Value = HealthResponse> {
    let detail = (
        any::<String>(),
        any::<String>(),
        prop::sample::select(HealthStatus::ALL),
    )
        .prop_map(|(id, model, health_status)| EkmFleetDetail {
            id,
            model,
            health_status,
        });
    (
        1..=u32::MAX,
        any::<String>(),
        any::<String>(),
        any::<String>(),
        proptest::collection::vec(detail, 1..=10),
    )
        .prop_map(
            |(size, vendor, model, ekm_vendor, details)| HealthResponse {
                xks_proxy_fleet_size: size,
                xks_proxy_vendor: vendor,
                xks_proxy_model: model,
                ekm_vendor,
                ekm_fleet_details: details,
            },
        )
}

fn metadata_response() -> impl Strategy<Value = MetadataResponse> {
    (
        any::<String>().prop_map(KeySpec::from),
        proptest::collection::vec(
            prop_oneof![
                Just("ENCRYPT".to_owned()),
                Just("DECRYPT".to_owned()),
                any::<String>()
            ]
            .prop_map(KeyUsage::from),
            0..=10,
        ),
        prop::sample::select(KeyStatus::ALL),
    )
        .prop_map(|(key_spec, key_usage, key_status)| MetadataResponse {
            key_spec,
            key_usage,
            key_status,
        })
}

fn encrypt_response() -> impl Strategy<Value = EncryptResponse> {
    (
        bytes(4300),
        proptest::option::of(bytes(20)),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 12),
            proptest::collection::vec(any::<u8>(), 16),
        ],
        any::<[u8; 16]>(),
        proptest::option::of(any::<[u8; 32]>()),
    )
        .prop_map(|(ciphertext, metadata, iv, tag, cdiv)| EncryptResponse {
            ciphertext,
            ciphertext_metadata: metadata,
            initialization_vector: iv,
            authentication_tag: tag,
            ciphertext_data_integrity_value: cdiv,
        })
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[A-Z_]{0,10}".prop_map(Value::from),
        "[A-Za-z0-9+/]{0,8}={0,2}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::from),
            proptest::collection::btree_map(
                prop::sample::select(
                    &[
                        "keySpec",
                        "keyUsage",
                        "keyStatus",
                        "ciphertext",
                        "initializationVector",
                        "authenticationTag",
                        "plaintext",
                        "xksProxyFleetSize",
                        "ekmFleetDetails",
                        "healthStatus",
                        "id",
                        "model",
                        "other",
                    ][..]
                ),
                inner,
                0..8,
            )
            .prop_map(|map| map
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Value>()),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn health_responses_round_trip(response in health_response()) {
        response.validate().unwrap();
        let body = serde_json::to_vec(&response).unwrap();
        prop_assert_eq!(HealthResponse::from_json(&body).unwrap(), response);
    }

    #[test]
    fn metadata_responses_round_trip(response in metadata_response()) {
        let body = serde_json::to_vec(&response).unwrap();
        prop_assert_eq!(MetadataResponse::from_json(&body).unwrap(), response);
    }

    #[test]
    fn encrypt_responses_round_trip(response in encrypt_response()) {
        response.validate().unwrap();
        let body = serde_json::to_vec(&response).unwrap();
        prop_assert_eq!(EncryptResponse::from_json(&body).unwrap(), response);
    }

    #[test]
    fn decrypt_responses_round_trip(plaintext in bytes(4300)) {
        let response = DecryptResponse { plaintext: Plaintext::new(plaintext) };
        let body = serde_json::to_vec(&response).unwrap();
        prop_assert_eq!(DecryptResponse::from_json(&body).unwrap(), response);
    }

    #[test]
    fn parsing_arbitrary_input_never_panics(
        raw in proptest::collection::vec(any::<u8>(), 0..256),
        json in any_json(),
    ) {
        let json = serde_json::to_vec(&json).unwrap();
        for body in [&raw, &json] {
            let _ = HealthResponse::from_json(body);
            let _ = MetadataResponse::from_json(body);
            if let Ok(response) = EncryptResponse::from_json(body) {
                response.validate().unwrap();
            }
            let _ = DecryptResponse::from_json(body);
            let _ = crate::XksError::from_json(body);
        }
    }
}
