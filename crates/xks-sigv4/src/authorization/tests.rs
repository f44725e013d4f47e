use proptest::prelude::*;

use super::*;

const SIG: &str = "5e07d8ad5067f7f7a07a52df8d45fa18d77bf32695f9c87bf8a83c6cd886a5d7";
const CREDENTIAL: &str = "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_request";

fn header(credential: &str, signed: &str, signature: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed}, Signature={signature}"
    )
}

fn kind(value: &str) -> VerifyErrorKind {
    parse_authorization(value).unwrap_err().kind()
}

#[test]
fn parses_the_spec_form() {
    let value = header(CREDENTIAL, "host;x-amz-date", SIG);
    let parsed = parse_authorization(&value).unwrap();
    assert_eq!(parsed.access_key_id(), "AKIAI2SFODNN7EXAMPLE");
    assert_eq!(parsed.scope_date(), "20230101");
    assert_eq!(parsed.region(), "us-east-1");
    assert_eq!(parsed.service(), "kms-xks-proxy");
    assert_eq!(parsed.signed_headers(), "host;x-amz-date");
    assert_eq!(
        parsed.signed_header_names().collect::<Vec<_>>(),
        ["host", "x-amz-date"]
    );
    assert_eq!(hex::encode(parsed.signature()), SIG);
    assert_eq!(
        parsed.scope(),
        &Scope {
            date: "20230101",
            region: "us-east-1",
            service: "kms-xks-proxy"
        }
    );
}

#[test]
fn tolerates_spacing_and_order() {
    for value in [
        format!(
            "AWS4-HMAC-SHA256 Credential={CREDENTIAL},SignedHeaders=host;x-amz-date,Signature={SIG}"
        ),
        format!(
            "AWS4-HMAC-SHA256   Credential={CREDENTIAL} ,  SignedHeaders=host;x-amz-date ,Signature={SIG}  "
        ),
        format!(
            "  AWS4-HMAC-SHA256\tCredential={CREDENTIAL},\tSignedHeaders=host;x-amz-date, Signature={SIG}"
        ),
        format!(
            "AWS4-HMAC-SHA256 Signature={SIG}, Credential={CREDENTIAL}, SignedHeaders=host;x-amz-date"
        ),
        format!(
            "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={SIG}, Credential={CREDENTIAL}"
        ),
    ] {
        let parsed = parse_authorization(&value).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(parsed.access_key_id(), "AKIAI2SFODNN7EXAMPLE");
        assert_eq!(hex::encode(parsed.signature()), SIG);
    }
}

#[test]
fn rejects_other_algorithms() {
    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Bearer token".to_owned(),
        "AWS4-HMAC-SHA512 Credential=x".to_owned(),
        "aws4-hmac-sha256 Credential=x".to_owned(),
        "AWS4-ECDSA-P256-SHA256 Credential=x".to_owned(),
        "garbage".to_owned(),
        header(CREDENTIAL, "host;x-amz-date", SIG)
            .replace("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA256,"),
    ] {
        assert_eq!(
            kind(&value),
            VerifyErrorKind::UnsupportedAlgorithm,
            "{value}"
        );
    }
}

#[test]
fn rejects_malformed_headers() {
    let good_signed = "host;x-amz-date";
    let cases = [
        String::new(),
        "   ".to_owned(),
        "AWS4-HMAC-SHA256".to_owned(),
        "AWS4-HMAC-SHA256 ".to_owned(),
        format!("AWS4-HMAC-SHA256 Credential={CREDENTIAL}, SignedHeaders={good_signed}"),
        format!("AWS4-HMAC-SHA256 Credential={CREDENTIAL}, Signature={SIG}"),
        format!("AWS4-HMAC-SHA256 SignedHeaders={good_signed}, Signature={SIG}"),
        format!("{}, Signature={SIG}", header(CREDENTIAL, good_signed, SIG)),
        format!(
            "{}, Credential={CREDENTIAL}",
            header(CREDENTIAL, good_signed, SIG)
        ),
        format!("{},", header(CREDENTIAL, good_signed, SIG)),
        format!("{}, Extra=1", header(CREDENTIAL, good_signed, SIG)),
        format!("{}, Extra", header(CREDENTIAL, good_signed, SIG)),
        header(CREDENTIAL, good_signed, SIG).replace("Credential=", "credential="),
        header(CREDENTIAL, good_signed, SIG).replace("Credential=", "Credential ="),
        header(CREDENTIAL, good_signed, SIG).replace(", ", " "),
        header(CREDENTIAL, good_signed, SIG).replace(", ", ",,"),
        header(CREDENTIAL, "Host;x-amz-date", SIG),
        header(CREDENTIAL, "x-amz-date;host", SIG),
        header(CREDENTIAL, "host;host;x-amz-date", SIG),
        header(CREDENTIAL, "host;;x-amz-date", SIG),
        header(CREDENTIAL, "host;x-amz-date;", SIG),
        header(CREDENTIAL, ";host;x-amz-date", SIG),
        header(CREDENTIAL, "", SIG),
        header(CREDENTIAL, "host;x amz date", SIG),
        header(CREDENTIAL, "host;x-amz-date:", SIG),
        header(CREDENTIAL, good_signed, &SIG[1..]),
        header(CREDENTIAL, good_signed, &format!("{SIG}0")),
        header(CREDENTIAL, good_signed, &SIG.to_uppercase()),
        header(CREDENTIAL, good_signed, &SIG.replace('e', "g")),
        header(CREDENTIAL, good_signed, ""),
        header(CREDENTIAL, good_signed, &format!("{}é", &SIG[..62])),
    ];
    for value in cases {
        assert_eq!(
            kind(&value),
            VerifyErrorKind::MalformedAuthorization,
            "{value:?}"
        );
    }
}

#[test]
fn rejects_malformed_scopes() {
    for credential in [
        "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy",
        "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_request/extra",
        "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/aws4_reques",
        "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1/kms-xks-proxy/AWS4_REQUEST",
        "/20230101/us-east-1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/2023011/us-east-1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/2023-01-01/us-east-1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/2023010a/us-east-1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/20230101//kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/20230101/US-EAST-1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/20230101/us_east_1/kms-xks-proxy/aws4_request",
        "AKIAI2SFODNN7EXAMPLE/20230101/us-east-1//aws4_request",
        "",
        "AKIAI2SFODNN7EXAMPLE",
    ] {
        let value = header(credential, "host;x-amz-date", SIG);
        assert_eq!(
            kind(&value),
            VerifyErrorKind::MalformedScope,
            "{credential}"
        );
    }
    let long_region = format!(
        "AKIA/20230101/{}/kms-xks-proxy/aws4_request",
        "a".repeat(65)
    );
    assert_eq!(
        kind(&header(&long_region, "host;x-amz-date", SIG)),
        VerifyErrorKind::MalformedScope
    );
    let ok_region = format!(
        "AKIA/20230101/{}/kms-xks-proxy/aws4_request",
        "a".repeat(64)
    );
    assert!(parse_authorization(&header(&ok_region, "host;x-amz-date", SIG)).is_ok());
}

#[test]
fn policy_is_left_to_the_verifier() {
    // Other services and access key id formats parse; the verifier rejects them.
    let value = header(
        "not-a-kms-akid/20230101/eu-west-1/kms/aws4_request",
        "content-type;host;x-amz-date",
        SIG,
    );
    let parsed = parse_authorization(&value).unwrap();
    assert_eq!(parsed.service(), "kms");
    assert_eq!(parsed.access_key_id(), "not-a-kms-akid");
    // A scope date that is not a calendar date is caught when compared with X-Amz-Date.
    let value = header(
        "AKIA/20231399/eu-west-1/kms-xks-proxy/aws4_request",
        "host",
        SIG,
    );
    assert!(parse_authorization(&value).is_ok());
}

#[test]
fn debug_hides_the_signature() {
    let value = header(CREDENTIAL, "host;x-amz-date", SIG);
    let parsed = parse_authorization(&value).unwrap();
    let debug = format!("{parsed:?}");
    assert!(!debug.contains(SIG), "{debug}");
    assert!(!debug.contains(&SIG[..16]), "{debug}");
    assert!(debug.contains("AKIAI2SFODNN7EXAMPLE"));
}

#[test]
fn errors_never_echo_the_signature() {
    let value = header(CREDENTIAL, "Host;x-amz-date", SIG);
    let err = parse_authorization(&value).unwrap_err();
    assert!(!err.to_string().contains(SIG));
    let value = format!("{SIG} Credential=x");
    let err = parse_authorization(&value).unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::UnsupportedAlgorithm);
    // The echoed algorithm is cut short, so a long token is never repeated whole.
    let err = parse_authorization(&format!("{SIG}{SIG}")).unwrap_err();
    assert!(!err.to_string().contains(&format!("{SIG}{SIG}")));
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("Credential={CREDENTIAL}")),
        Just("SignedHeaders=host;x-amz-date".to_owned()),
        Just(format!("Signature={SIG}")),
        "[A-Za-z]{0,14}=[ -~]{0,80}",
        "[ -~]{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_text(value in "\\PC{0,300}") {
        let _ = parse_authorization(&value);
    }

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let value = String::from_utf8_lossy(&bytes);
        let _ = parse_authorization(&value);
    }

    #[test]
    fn never_panics_on_near_valid_headers(
        algorithm in prop_oneof![Just("AWS4-HMAC-SHA256".to_owned()), "[ -~]{0,20}"],
        separator in "[ ,\t]{0,3}",
        components in proptest::collection::vec(component(), 0..5),
    ) {
        let value = format!("{algorithm} {}", components.join(&format!(",{separator}")));
        if let Ok(parsed) = parse_authorization(&value) {
            // Anything accepted is well-formed.
            prop_assert_eq!(parsed.scope().service, "kms-xks-proxy");
            prop_assert!(parsed.signed_header_names().all(|n| !n.is_empty()));
        }
    }

    #[test]
    fn accepts_every_sorted_signed_header_list(mut names in proptest::collection::btree_set("[a-z0-9-]{1,12}", 1..6)) {
        names.insert("host".to_owned());
        let list: Vec<String> = names.into_iter().collect();
        let value = header(CREDENTIAL, &list.join(";"), SIG);
        let parsed = parse_authorization(&value).unwrap();
        prop_assert_eq!(parsed.signed_header_names().collect::<Vec<_>>(), list);
    }
}
