use base64::{Engine as _, engine::general_purpose::STANDARD};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::{ErrorMessage, ErrorName};

// Fact sheet §3 and §6, verbatim.
const METADATA_EXAMPLE: &str = r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice","kmsOperation":"CreateKey","kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8dfae"}}"#;
const ENCRYPT_EXAMPLE: &str = r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice",
  "kmsKeyArn":"arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab",
  "kmsOperation":"Encrypt","kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8dfae","kmsViaService":"ebs"},
 "additionalAuthenticatedData":"cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n",
 "plaintext":"SGVsbG8gV29ybGQh","encryptionAlgorithm":"AES_GCM","ciphertextDataIntegrityValueAlgorithm":"SHA_256"}"#;
const DECRYPT_EXAMPLE: &str = r#"{"requestMetadata":{"awsPrincipalArn":"arn:aws:iam::123456789012:user/Alice",
  "kmsKeyArn":"arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab",
  "kmsOperation":"Decrypt","kmsRequestId":"5112f4d6-db54-4af4-ae30-c55a22a8dfae","kmsViaService":"ebs"},
 "additionalAuthenticatedData":"cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n","encryptionAlgorithm":"AES_GCM",
 "ciphertext":"ghxkK1txeDNn3q8Y","ciphertextMetadata":"a2V5X3ZlcnNpb249MQ==",
 "initializationVector":"HMrlRw85cAJUd5Ax","authenticationTag":"vBxN2ncH1oEkR8WVXpmyYQ=="}"#;
const HEALTH_EXAMPLE: &str = r#"{"requestMetadata":{"kmsRequestId":"4112f4d6-db54-4af4-ae30-c55a22a8dfae","kmsOperation":"CreateCustomKeyStore"}}"#;

const AAD: &[u8] = b"project=nile,department=marketing";
const PRINCIPAL: &str = "arn:aws:iam::123456789012:user/Alice";
const KEY_ARN: &str =
    "arn:aws:kms:us-east-2:123456789012:/key/1234abcd-12ab-34cd-56ef-1234567890ab";

#[derive(Debug, Clone, Copy)]
enum Api {
    Health,
    Metadata,
    Encrypt,
    Decrypt,
}

const APIS: [Api; 4] = [Api::Health, Api::Metadata, Api::Encrypt, Api::Decrypt];

fn parse_with(api: Api, body: &[u8], limits: &Limits) -> Result<(), XksError> {
    match api {
        Api::Health => HealthRequest::from_json(body, limits).map(drop),
        Api::Metadata => MetadataRequest::from_json(body, limits).map(drop),
        Api::Encrypt => EncryptRequest::from_json(body, limits).map(drop),
        Api::Decrypt => DecryptRequest::from_json(body, limits).map(drop),
    }
}

fn parse(api: Api, body: &Value) -> Result<(), XksError> {
    parse_with(api, &serde_json::to_vec(body).unwrap(), &Limits::default())
}

fn example(api: Api) -> Value {
    let text = match api {
        Api::Health => HEALTH_EXAMPLE,
        Api::Metadata => METADATA_EXAMPLE,
        Api::Encrypt => ENCRYPT_EXAMPLE,
        Api::Decrypt => DECRYPT_EXAMPLE,
    };
    serde_json::from_str(text).unwrap()
}

/// Asserts a failure with `name` whose message starts with `message`.
#[track_caller]
fn assert_fails(api: Api, body: &Value, name: ErrorName, message: &str) {
    let error = parse(api, body).expect_err(&format!("{api:?} accepted {body}"));
    assert_eq!(error.name(), name, "{api:?} {body}: {error}");
    let text = error.message().unwrap().as_str();
    assert!(
        text.starts_with(message),
        "{api:?}: {text:?} does not start with {message:?}"
    );
}

fn with(mut body: Value, path: &[&str], value: Option<Value>) -> Value {
    let (last, parents) = path.split_last().unwrap();
    let mut object = &mut body;
    for key in parents {
        object = &mut object[*key];
    }
    let object = object.as_object_mut().unwrap();
    match value {
        Some(value) => object.insert((*last).to_owned(), value),
        None => object.remove(*last),
    };
    body
}

fn b64(bytes: &[u8]) -> Value {
    Value::String(STANDARD.encode(bytes))
}

fn metadata(arn: Option<&str>, key_arn: Option<&str>, operation: &str) -> RequestMetadata {
    RequestMetadata {
        aws_principal_arn: arn.map(str::to_owned),
        kms_key_arn: key_arn.map(str::to_owned),
        kms_operation: operation.to_owned(),
        kms_request_id: "4112f4d6-db54-4af4-ae30-c55a22a8dfae".to_owned(),
        ..RequestMetadata::default()
    }
}

// --- The spec's examples ---

#[test]
fn spec_metadata_example() {
    let request = MetadataRequest::from_json(METADATA_EXAMPLE.as_bytes(), &Limits::default());
    let expected = metadata(Some(PRINCIPAL), None, "CreateKey");
    assert_eq!(request.unwrap().request_metadata, expected);
}

#[test]
fn spec_health_examples() {
    let request = HealthRequest::from_json(HEALTH_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        request.request_metadata,
        metadata(None, None, "CreateCustomKeyStore")
    );

    let appendix_d = br#"{"requestMetadata":{"kmsOperation":"KmsHealthCheck",
        "kmsRequestId":"1124f4d6-db54-4af4-ae30-c55a22a8abcd"}}"#;
    let request = HealthRequest::from_json(appendix_d, &Limits::default()).unwrap();
    assert_eq!(request.request_metadata.kms_operation, "KmsHealthCheck");
}

#[test]
fn spec_encrypt_example() {
    let request =
        EncryptRequest::from_json(ENCRYPT_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    let expected = EncryptRequest {
        request_metadata: RequestMetadata {
            kms_via_service: Some("ebs".to_owned()),
            ..metadata(Some(PRINCIPAL), Some(KEY_ARN), "Encrypt")
        },
        plaintext: Plaintext::new(b"Hello World!".to_vec()),
        encryption_algorithm: EncryptionAlgorithm::AesGcm,
        additional_authenticated_data: Some(AAD.to_vec()),
        ciphertext_data_integrity_value_algorithm: Some(CdivAlgorithm::Sha256),
    };
    assert_eq!(request, expected);
    assert_eq!(request.gcm_aad(b"key_version=1").unwrap().len(), 49);
}

#[test]
fn spec_decrypt_example() {
    let request =
        DecryptRequest::from_json(DECRYPT_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        request.request_metadata.kms_request_id,
        "5112f4d6-db54-4af4-ae30-c55a22a8dfae"
    );
    assert_eq!(
        request.ciphertext,
        hex::decode("821c642b5b71783367deaf18").unwrap()
    );
    assert_eq!(
        request.ciphertext_metadata.as_deref(),
        Some(&b"key_version=1"[..])
    );
    assert_eq!(request.additional_authenticated_data.as_deref(), Some(AAD));
    assert_eq!(
        request.initialization_vector,
        hex::decode("1ccae5470f39700254779031").unwrap()
    );
    assert_eq!(
        request.authentication_tag.to_vec(),
        hex::decode("bc1c4dda7707d6812447c5955e99b261").unwrap()
    );
    assert_eq!(
        request.gcm_aad().unwrap(),
        compose_gcm_aad(AAD, b"key_version=1").unwrap()
    );
}

#[test]
fn appendix_d_encrypt_without_aad() {
    let body = with(
        example(Api::Encrypt),
        &["additionalAuthenticatedData"],
        None,
    );
    let body = with(body, &["ciphertextDataIntegrityValueAlgorithm"], None);
    let request =
        EncryptRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    assert_eq!(request.additional_authenticated_data, None);
    assert_eq!(request.ciphertext_data_integrity_value_algorithm, None);
    assert_eq!(request.gcm_aad(b"").unwrap(), [0, 0, 0]);
}

// --- Bodies that are not requests ---

#[test]
fn empty_and_bare_bodies_are_validation_errors_for_every_api() {
    for api in APIS {
        assert_fails(
            api,
            &json!({}),
            ErrorName::ValidationException,
            "`requestMetadata` is required",
        );
        assert_fails(
            api,
            &json!({"requestMetadata": null}),
            ErrorName::ValidationException,
            "`requestMetadata` is required",
        );
        assert_fails(
            api,
            &json!({"requestMetadata": {}}),
            ErrorName::ValidationException,
            "`requestMetadata.",
        );
        assert_fails(
            api,
            &json!({"requestMetadata": "x"}),
            ErrorName::ValidationException,
            "`requestMetadata` must be a JSON object, not a string",
        );
        assert_fails(
            api,
            &json!({"requestMetadata": []}),
            ErrorName::ValidationException,
            "`requestMetadata` must be a JSON object, not an array",
        );
        for body in [
            &b""[..],
            b"abc",
            b"[]",
            b"null",
            b"\"x\"",
            b"{",
            b"{\"requestMetadata\":{}}x",
        ] {
            let error = parse_with(api, body, &Limits::default()).unwrap_err();
            assert_eq!(error.name(), ErrorName::ValidationException);
            assert!(error.message().unwrap().as_str().starts_with("body "));
        }
    }
}

#[test]
fn duplicate_keys_are_validation_errors() {
    let body = ENCRYPT_EXAMPLE.replace(r#""plaintext":"#, r#""plaintext":"QQ==","plaintext":"#);
    let error = EncryptRequest::from_json(body.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(error.name(), ErrorName::ValidationException);
    let body = HEALTH_EXAMPLE.replace(
        r#""kmsOperation":"#,
        r#""kmsOperation":"A","kmsOperation":"#,
    );
    let error = HealthRequest::from_json(body.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(error.name(), ErrorName::ValidationException);
}

// --- requestMetadata ---

/// (field, required by) for every API in `APIS` order; `None` where the API ignores it.
const METADATA_FIELDS: [(&str, [Option<bool>; 4]); 7] = [
    (
        "awsPrincipalArn",
        [None, Some(true), Some(true), Some(true)],
    ),
    (
        "awsSourceVpc",
        [None, Some(false), Some(false), Some(false)],
    ),
    (
        "awsSourceVpce",
        [None, Some(false), Some(false), Some(false)],
    ),
    ("kmsKeyArn", [None, Some(false), Some(true), Some(true)]),
    ("kmsOperation", [Some(true); 4]),
    ("kmsRequestId", [Some(true); 4]),
    (
        "kmsViaService",
        [None, Some(false), Some(false), Some(false)],
    ),
];

#[test]
fn every_metadata_field_missing_null_and_mistyped() {
    for (i, api) in APIS.into_iter().enumerate() {
        for (name, rules) in METADATA_FIELDS {
            let path = ["requestMetadata", name];
            let full = format!("`requestMetadata.{name}`");
            for absent in [None, Some(Value::Null)] {
                let body = with(example(api), &path, absent);
                match rules[i] {
                    Some(true) => assert_fails(
                        api,
                        &body,
                        ErrorName::ValidationException,
                        &format!("{full} is required but missing"),
                    ),
                    _ => parse(api, &body).unwrap(),
                }
            }
            for wrong in [json!(5), json!(true), json!([]), json!({}), json!(["arn"])] {
                let body = with(example(api), &path, Some(wrong));
                match rules[i] {
                    Some(_) => assert_fails(
                        api,
                        &body,
                        ErrorName::ValidationException,
                        &format!("{full} must be a string"),
                    ),
                    // Not a field of this API: ignored like any unknown field.
                    None => parse(api, &body).unwrap(),
                }
            }
        }
    }
}

#[test]
fn optional_metadata_fields_are_read() {
    let body = with(
        example(Api::Decrypt),
        &["requestMetadata", "awsSourceVpc"],
        Some(json!("vpc-1")),
    );
    let body = with(
        body,
        &["requestMetadata", "awsSourceVpce"],
        Some(json!("vpce-1")),
    );
    let request =
        DecryptRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    let metadata = request.request_metadata;
    assert_eq!(metadata.aws_source_vpc.as_deref(), Some("vpc-1"));
    assert_eq!(metadata.aws_source_vpce.as_deref(), Some("vpce-1"));
    assert_eq!(metadata.kms_via_service.as_deref(), Some("ebs"));
}

#[test]
fn metadata_accepts_legacy_fields() {
    // Checklist item 46: the official test client sends these with DescribeKey.
    let body = with(
        example(Api::Metadata),
        &["requestMetadata", "kmsKeyArn"],
        Some(json!(KEY_ARN)),
    );
    let body = with(
        body,
        &["requestMetadata", "kmsViaService"],
        Some(json!("ebs")),
    );
    let body = with(
        body,
        &["requestMetadata", "kmsOperation"],
        Some(json!("DescribeKey")),
    );
    let request =
        MetadataRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default())
            .unwrap();
    assert_eq!(
        request.request_metadata.kms_key_arn.as_deref(),
        Some(KEY_ARN)
    );
    assert_eq!(
        request.request_metadata.kms_via_service.as_deref(),
        Some("ebs")
    );
}

#[test]
fn health_ignores_fields_of_other_apis() {
    let body = with(
        example(Api::Health),
        &["requestMetadata", "awsPrincipalArn"],
        Some(json!(PRINCIPAL)),
    );
    let request =
        HealthRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    assert_eq!(request.request_metadata.aws_principal_arn, None);
}

#[test]
fn kms_operation_and_request_id_are_opaque() {
    for api in APIS {
        for operation in ["BulkEncrypt", "FutureOp", "", "not an operation at all"] {
            parse(
                api,
                &with(
                    example(api),
                    &["requestMetadata", "kmsOperation"],
                    Some(json!(operation)),
                ),
            )
            .unwrap();
        }
        for id in ["not-a-uuid!!", "", "\u{1F511}", "x".repeat(5000).as_str()] {
            parse(
                api,
                &with(
                    example(api),
                    &["requestMetadata", "kmsRequestId"],
                    Some(json!(id)),
                ),
            )
            .unwrap();
        }
    }
}

#[test]
fn long_arns_are_accepted() {
    for len in [2048, 10_000] {
        let arn = format!("arn:aws:kms:{}", "a".repeat(len - 12));
        for api in [Api::Metadata, Api::Encrypt, Api::Decrypt] {
            let body = with(
                example(api),
                &["requestMetadata", "awsPrincipalArn"],
                Some(json!(arn)),
            );
            let body = with(body, &["requestMetadata", "kmsKeyArn"], Some(json!(arn)));
            parse(api, &body).unwrap();
        }
    }
}

#[test]
fn unknown_fields_are_ignored_everywhere() {
    for api in APIS {
        let body = with(
            example(api),
            &["requestMetadata", "SourceIdentity"],
            Some(json!("x")),
        );
        let body = with(
            body,
            &["requestMetadata", "kmsRecipientAttestationPCR0"],
            Some(json!({"a": [1, null]})),
        );
        let body = with(body, &["futureField"], Some(json!([{"x": 1}, 2.5, null])));
        let body = with(body, &["keyId"], Some(json!(7)));
        parse(api, &body).unwrap();
    }
}

// --- Encrypt and Decrypt fields ---

/// Top-level fields of Encrypt and Decrypt that hold Base64.
const BINARY_FIELDS: [(Api, &str, bool); 7] = [
    (Api::Encrypt, "plaintext", true),
    (Api::Encrypt, "additionalAuthenticatedData", false),
    (Api::Decrypt, "ciphertext", true),
    (Api::Decrypt, "ciphertextMetadata", false),
    (Api::Decrypt, "additionalAuthenticatedData", false),
    (Api::Decrypt, "initializationVector", true),
    (Api::Decrypt, "authenticationTag", true),
];

#[test]
fn every_top_level_field_missing_null_and_mistyped() {
    let mut fields = BINARY_FIELDS.to_vec();
    fields.extend([
        (Api::Encrypt, "encryptionAlgorithm", true),
        (Api::Decrypt, "encryptionAlgorithm", true),
        (Api::Encrypt, "ciphertextDataIntegrityValueAlgorithm", false),
    ]);
    for (api, name, required) in fields {
        for absent in [None, Some(Value::Null)] {
            let body = with(example(api), &[name], absent);
            if required {
                assert_fails(
                    api,
                    &body,
                    ErrorName::ValidationException,
                    &format!("`{name}` is required but missing"),
                );
            } else {
                parse(api, &body).unwrap();
            }
        }
        for wrong in [
            json!(5),
            json!(false),
            json!([]),
            json!({"a": "b"}),
            json!(["QQ=="]),
        ] {
            assert_fails(
                api,
                &with(example(api), &[name], Some(wrong)),
                ErrorName::ValidationException,
                &format!("`{name}` must be a string"),
            );
        }
    }
}

#[test]
fn every_binary_field_rejects_bad_base64() {
    for (api, name, _) in BINARY_FIELDS {
        for text in [
            "@@@@",
            "QQ",
            "QQ=",
            "QR==",
            "-_-_",
            "ab_c",
            "ab+c/d-=",
            "SGVs bG8=",
            " QQ==",
            "QQ==\n",
            "Q",
            "QQ==QQ==",
        ] {
            let body = with(example(api), &[name], Some(json!(text)));
            assert_fails(
                api,
                &body,
                ErrorName::ValidationException,
                &format!("`{name}` is not valid padded standard Base64"),
            );
        }
    }
}

#[test]
fn encryption_algorithm_must_be_aes_gcm() {
    for api in [Api::Encrypt, Api::Decrypt] {
        for algorithm in ["AES_CBC", "AES_GCM_256", "aes_gcm", "AES_GCM ", ""] {
            let body = with(
                example(api),
                &["encryptionAlgorithm"],
                Some(json!(algorithm)),
            );
            assert_fails(
                api,
                &body,
                ErrorName::ValidationException,
                r#"`encryptionAlgorithm` must be "AES_GCM""#,
            );
        }
    }
}

#[test]
fn cdiv_algorithm_must_be_sha_256() {
    for algorithm in ["SHA_512", "SHA256", "sha_256", ""] {
        let body = with(
            example(Api::Encrypt),
            &["ciphertextDataIntegrityValueAlgorithm"],
            Some(json!(algorithm)),
        );
        assert_fails(
            Api::Encrypt,
            &body,
            ErrorName::ValidationException,
            r#"`ciphertextDataIntegrityValueAlgorithm` must be "SHA_256""#,
        );
    }
}

#[test]
fn payload_limits_are_unsupported_operations() {
    let limits = Limits::default();
    let cases = [
        (Api::Encrypt, "plaintext", limits.max_plaintext_bytes()),
        (
            Api::Encrypt,
            "additionalAuthenticatedData",
            limits.max_aad_bytes(),
        ),
        (Api::Decrypt, "ciphertext", limits.max_ciphertext_bytes()),
        (
            Api::Decrypt,
            "additionalAuthenticatedData",
            limits.max_aad_bytes(),
        ),
    ];
    for (api, name, max) in cases {
        parse(api, &with(example(api), &[name], Some(b64(&vec![7; max])))).unwrap();
        // One byte over: same Base64 length, caught after decoding.
        let over = with(example(api), &[name], Some(b64(&vec![7; max + 1])));
        assert_fails(
            api,
            &over,
            ErrorName::UnsupportedOperationException,
            &format!(
                "`{name}` is {} bytes; this proxy accepts at most {max}",
                max + 1
            ),
        );
        // Far over: caught on the Base64 length, before decoding.
        for len in [max + 3, 64 * 1024, 65_536, 100_000] {
            let over = with(example(api), &[name], Some(b64(&vec![7; len])));
            assert_fails(
                api,
                &over,
                ErrorName::UnsupportedOperationException,
                &format!("`{name}` has "),
            );
        }
    }
}

#[test]
fn raised_limits_accept_more() {
    let limits = Limits::default()
        .with_max_plaintext_bytes(65_536)
        .and_then(|l| l.with_max_aad_bytes(65_535))
        .unwrap();
    let body = with(
        example(Api::Encrypt),
        &["plaintext"],
        Some(b64(&[1; 65_536])),
    );
    let body = with(
        body,
        &["additionalAuthenticatedData"],
        Some(b64(&[2; 65_535])),
    );
    let body = serde_json::to_vec(&body).unwrap();
    let request = EncryptRequest::from_json(&body, &limits).unwrap();
    assert_eq!(request.plaintext.len(), 65_536);
    // AAD that cannot be length-prefixed is always refused.
    let body = with(
        example(Api::Encrypt),
        &["additionalAuthenticatedData"],
        Some(b64(&[2; 65_536])),
    );
    let error =
        EncryptRequest::from_json(&serde_json::to_vec(&body).unwrap(), &limits).unwrap_err();
    assert_eq!(error.name(), ErrorName::UnsupportedOperationException);
}

#[test]
fn empty_payloads_are_allowed() {
    let body = with(example(Api::Encrypt), &["plaintext"], Some(json!("")));
    let body = with(body, &["additionalAuthenticatedData"], Some(json!("")));
    let request =
        EncryptRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    assert!(request.plaintext.is_empty());
    assert_eq!(request.additional_authenticated_data, Some(Vec::new()));
    assert_eq!(request.gcm_aad(b"").unwrap(), [0, 0, 0]);
    parse(
        Api::Decrypt,
        &with(example(Api::Decrypt), &["ciphertext"], Some(json!(""))),
    )
    .unwrap();
}

#[test]
fn decrypt_iv_tag_and_metadata_lengths() {
    let api = Api::Decrypt;
    for len in [12, 16] {
        parse(
            api,
            &with(
                example(api),
                &["initializationVector"],
                Some(b64(&vec![1; len])),
            ),
        )
        .unwrap();
    }
    for len in [0, 8, 11, 13, 15, 17, 32] {
        let body = with(
            example(api),
            &["initializationVector"],
            Some(b64(&vec![1; len])),
        );
        assert_fails(
            api,
            &body,
            ErrorName::ValidationException,
            &format!("`initializationVector` must decode to 12 or 16 bytes, not {len}"),
        );
    }
    for len in [0, 12, 15, 17, 32] {
        let body = with(
            example(api),
            &["authenticationTag"],
            Some(b64(&vec![1; len])),
        );
        assert_fails(
            api,
            &body,
            ErrorName::ValidationException,
            &format!("`authenticationTag` must decode to exactly 16 bytes, not {len}"),
        );
    }
    for len in [0, 1, 20] {
        parse(
            api,
            &with(
                example(api),
                &["ciphertextMetadata"],
                Some(b64(&vec![1; len])),
            ),
        )
        .unwrap();
    }
    for len in [21, 28, 255] {
        let body = with(
            example(api),
            &["ciphertextMetadata"],
            Some(b64(&vec![1; len])),
        );
        assert_fails(
            api,
            &body,
            ErrorName::ValidationException,
            &format!("`ciphertextMetadata` must decode to at most 20 bytes, not {len}"),
        );
    }
}

#[test]
fn the_first_failing_field_is_reported() {
    let body = json!({"plaintext": "@@@", "encryptionAlgorithm": "AES_CBC"});
    assert_fails(
        Api::Encrypt,
        &body,
        ErrorName::ValidationException,
        "`requestMetadata`",
    );
    let body = with(example(Api::Encrypt), &["plaintext"], Some(json!("@@@")));
    let body = with(body, &["encryptionAlgorithm"], Some(json!("AES_CBC")));
    assert_fails(
        Api::Encrypt,
        &body,
        ErrorName::ValidationException,
        "`plaintext`",
    );
    // A limit on an earlier field wins over a malformed later one.
    let body = with(
        example(Api::Decrypt),
        &["ciphertext"],
        Some(b64(&[0; 5000])),
    );
    let body = with(body, &["authenticationTag"], Some(json!("x")));
    assert_fails(
        Api::Decrypt,
        &body,
        ErrorName::UnsupportedOperationException,
        "`ciphertext`",
    );
}

#[test]
fn plaintext_never_reaches_messages_or_debug() {
    let secret = b"TOP-SECRET-PLAINTEXT";
    let body = with(example(Api::Encrypt), &["plaintext"], Some(b64(secret)));
    let request =
        EncryptRequest::from_json(&serde_json::to_vec(&body).unwrap(), &Limits::default()).unwrap();
    let debug = format!("{request:?}");
    assert!(debug.contains("Plaintext { len: 20 }"), "{debug}");
    assert!(
        !debug.contains("SECRET") && !debug.contains("84, 79, 80"),
        "{debug}"
    );

    let encoded = STANDARD.encode(secret);
    for text in [
        format!("{encoded}!"),
        format!("{} {}", &encoded[..8], &encoded[8..]),
        encoded.replace('=', ""),
    ] {
        let body = with(example(Api::Encrypt), &["plaintext"], Some(json!(text)));
        let error = parse(Api::Encrypt, &body).unwrap_err().to_string();
        assert!(
            !error.contains(&encoded[..8]) && !error.contains("SECRET"),
            "{error}"
        );
    }
}

#[test]
fn largest_legitimate_body_fits_the_body_limit() {
    let limits = Limits::default();
    let arn = "a".repeat(2048);
    let body = json!({
        "requestMetadata": {
            "awsPrincipalArn": arn, "kmsKeyArn": arn, "kmsOperation": "ReEncrypt",
            "kmsRequestId": "5112f4d6-db54-4af4-ae30-c55a22a8dfae", "kmsViaService": "ebs",
            "awsSourceVpc": "vpc-0123456789abcdef0", "awsSourceVpce": "vpce-0123456789abcdef0",
        },
        "ciphertext": b64(&vec![0; limits.max_ciphertext_bytes()]),
        "ciphertextMetadata": b64(&[0; 20]),
        "encryptionAlgorithm": "AES_GCM",
        "additionalAuthenticatedData": b64(&vec![0; limits.max_aad_bytes()]),
        "initializationVector": b64(&[0; 16]),
        "authenticationTag": b64(&[0; 16]),
    });
    let body = serde_json::to_vec_pretty(&body).unwrap();
    assert!(body.len() < limits.max_body_bytes(), "{}", body.len());
    DecryptRequest::from_json(&body, &limits).unwrap();
}

// --- Serialization and round trips ---

#[test]
fn serialization_uses_the_spec_names_and_skips_absent_fields() {
    let request =
        EncryptRequest::from_json(ENCRYPT_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        example(Api::Encrypt)
    );
    let request =
        DecryptRequest::from_json(DECRYPT_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        example(Api::Decrypt)
    );
    let request = HealthRequest::from_json(HEALTH_EXAMPLE.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        serde_json::to_string(&request).unwrap().len(),
        HEALTH_EXAMPLE.len()
    );
    assert_eq!(
        serde_json::to_value(&request).unwrap(),
        example(Api::Health)
    );
}

fn text() -> impl Strategy<Value = String> {
    any::<String>()
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn request_metadata(api: Api) -> impl Strategy<Value = RequestMetadata> {
    let (principal, key_arn, others) = match api {
        Api::Health => (false, false, false),
        Api::Metadata => (true, false, true),
        Api::Encrypt | Api::Decrypt => (true, true, true),
    };
    (
        text(),
        text(),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
        text(),
        text(),
    )
        .prop_map(
            move |(arn, key, vpc, vpce, opt_key, via, operation, id)| RequestMetadata {
                aws_principal_arn: principal.then_some(arn),
                aws_source_vpc: vpc.filter(|_| others),
                aws_source_vpce: vpce.filter(|_| others),
                kms_key_arn: if key_arn {
                    Some(key)
                } else {
                    opt_key.filter(|_| others)
                },
                kms_operation: operation,
                kms_request_id: id,
                kms_via_service: via.filter(|_| others),
            },
        )
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn encrypt_request() -> impl Strategy<Value = EncryptRequest> {
    (
        request_metadata(Api::Encrypt),
        bytes(4300),
        proptest::option::of(bytes(300)),
        any::<bool>(),
    )
        .prop_map(|(request_metadata, plaintext, aad, cdiv)| EncryptRequest {
            request_metadata,
            plaintext: Plaintext::new(plaintext),
            encryption_algorithm: EncryptionAlgorithm::AesGcm,
            additional_authenticated_data: aad,
            ciphertext_data_integrity_value_algorithm: cdiv.then_some(CdivAlgorithm::Sha256),
        })
}

fn decrypt_request() -> impl Strategy<Value = DecryptRequest> {
    (
        request_metadata(Api::Decrypt),
        bytes(300),
        proptest::option::of(bytes(20)),
        proptest::option::of(bytes(300)),
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 12),
            proptest::collection::vec(any::<u8>(), 16),
        ],
        any::<[u8; 16]>(),
    )
        .prop_map(
            |(request_metadata, ciphertext, metadata, aad, iv, tag)| DecryptRequest {
                request_metadata,
                ciphertext,
                ciphertext_metadata: metadata,
                encryption_algorithm: EncryptionAlgorithm::AesGcm,
                additional_authenticated_data: aad,
                initialization_vector: iv,
                authentication_tag: tag,
            },
        )
}

/// A JSON value of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[A-Za-z0-9+/=_-]{0,12}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map("[a-zA-Z]{0,8}", inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// A valid body of `api` with one field, at the top or in `requestMetadata`, replaced.
fn mutated_body() -> impl Strategy<Value = (Api, Value)> {
    const NAMES: [&str; 14] = [
        "requestMetadata",
        "plaintext",
        "encryptionAlgorithm",
        "additionalAuthenticatedData",
        "ciphertextDataIntegrityValueAlgorithm",
        "ciphertext",
        "ciphertextMetadata",
        "initializationVector",
        "authenticationTag",
        "awsPrincipalArn",
        "kmsKeyArn",
        "kmsOperation",
        "kmsRequestId",
        "awsSourceVpc",
    ];
    (
        prop::sample::select(&APIS[..]),
        prop::sample::select(&NAMES[..]),
        any::<bool>(),
        proptest::option::of(any_json()),
    )
        .prop_map(|(api, name, nested, value)| {
            let path: &[&str] = if nested {
                &["requestMetadata", name]
            } else {
                &[name]
            };
            (api, with(example(api), path, value))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn health_requests_round_trip(request_metadata in request_metadata(Api::Health)) {
        let request = HealthRequest { request_metadata };
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(HealthRequest::from_json(&body, &Limits::default()).unwrap(), request);
    }

    #[test]
    fn metadata_requests_round_trip(request_metadata in request_metadata(Api::Metadata)) {
        let request = MetadataRequest { request_metadata };
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(MetadataRequest::from_json(&body, &Limits::default()).unwrap(), request);
    }

    #[test]
    fn encrypt_requests_round_trip(request in encrypt_request()) {
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(EncryptRequest::from_json(&body, &Limits::default()).unwrap(), request);
    }

    #[test]
    fn decrypt_requests_round_trip(request in decrypt_request()) {
        let body = serde_json::to_vec(&request).unwrap();
        prop_assert_eq!(DecryptRequest::from_json(&body, &Limits::default()).unwrap(), request);
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(body in bytes(512)) {
        for api in APIS {
            if parse_with(api, &body, &Limits::default()).is_ok() {
                prop_assert!(serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object()));
            }
        }
    }

    #[test]
    fn parsing_arbitrary_json_gives_only_body_errors(value in any_json()) {
        for api in APIS {
            if let Err(error) = parse(api, &value) {
                prop_assert_eq!(error.name(), ErrorName::ValidationException);
                prop_assert!(ErrorMessage::is_conformant(error.message().unwrap().as_str()));
            }
        }
    }

    #[test]
    fn mutated_bodies_give_only_body_errors((api, body) in mutated_body()) {
        if let Err(error) = parse(api, &body) {
            prop_assert!(matches!(
                error.name(),
                ErrorName::ValidationException | ErrorName::UnsupportedOperationException
            ));
        }
    }
}
