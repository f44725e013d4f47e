use serde_json::json;

use super::*;

fn parse_err(body: &[u8]) -> String {
    Object::parse(body).unwrap_err().to_string()
}

fn field<T>(value: Value, convert: impl FnOnce(Value) -> Result<T, Problem>) -> Result<T, String> {
    let mut object = Object::body(json!({ "f": value })).unwrap();
    object.req("f", convert).map_err(|e| e.to_string())
}

#[test]
fn syntax_errors_give_line_and_column() {
    assert_eq!(parse_err(b""), "body is not valid JSON (line 1, column 0)");
    assert_eq!(
        parse_err(b"abc"),
        "body is not valid JSON (line 1, column 1)"
    );
    assert_eq!(
        parse_err(b"{\n\"a\":}"),
        "body is not valid JSON (line 2, column 5)"
    );
    assert_eq!(
        parse_err(b"{} {}"),
        "body is not valid JSON (line 1, column 4)"
    );
    assert_eq!(
        parse_err(b"{\"a\":\"\xff\"}"),
        "body is not valid JSON (line 1, column 7)"
    );
}

#[test]
fn the_body_must_be_an_object() {
    for (body, found) in [
        (&b"[]"[..], "an array"),
        (b"\"text\"", "a string"),
        (b"12", "a number"),
        (b"true", "a boolean"),
        (b"null", "null"),
    ] {
        assert_eq!(
            parse_err(body),
            format!("body must be a JSON object, not {found}")
        );
    }
}

#[test]
fn duplicate_keys_are_rejected_at_any_depth() {
    for body in [
        &br#"{"a":1,"a":1}"#[..],
        br#"{"a":{"b":1,"b":2}}"#,
        br#"{"a":[{"b":1},{"c":1,"c":1}]}"#,
        br#"{"unknown":1,"unknown":null}"#,
    ] {
        assert!(parse_err(body).starts_with("body has a duplicate key in a JSON object"));
    }
    assert!(Object::parse(br#"{"a":{"b":1},"b":{"a":1}}"#).is_ok());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let body = format!("{{\"a\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse_err(body.as_bytes()).starts_with("body is not valid JSON"));
}

#[test]
fn null_is_absent_and_paths_are_reported() {
    let mut body = Object::parse(br#"{"n":null,"o":{"p":{"q":5}},"list":[{"x":1},7]}"#).unwrap();
    assert_eq!(body.opt("n", string), Ok(None));
    assert_eq!(
        body.req("n", string).unwrap_err().to_string(),
        "`n` is required but missing"
    );
    let mut p = body.req_object("o").unwrap().req_object("p").unwrap();
    assert_eq!(
        p.req("q", string).unwrap_err().to_string(),
        "`o.p.q` must be a string, not a number"
    );
    assert_eq!(
        body.req_objects("list").unwrap_err().to_string(),
        "`list[1]` must be a JSON object, not a number"
    );
}

#[test]
fn base64_is_strict_standard_with_padding() {
    assert_eq!(
        field(json!("SGVsbG8gV29ybGQh"), |v| base64(v, None)).unwrap(),
        b"Hello World!"
    );
    assert_eq!(field(json!("QQ=="), |v| base64(v, None)).unwrap(), b"A");
    assert_eq!(field(json!(""), |v| base64(v, None)).unwrap(), b"");
    let cases = [
        ("QQ", "missing or wrong '=' padding"),
        ("QQ=", "missing or wrong '=' padding"),
        (
            "QR==",
            "non-zero trailing bits in the character at offset 1",
        ),
        ("-_-_", "a character outside A-Z a-z 0-9 + / at offset 0"),
        ("ab_c", "a character outside A-Z a-z 0-9 + / at offset 2"),
        (
            "SGVs bG8=",
            "a character outside A-Z a-z 0-9 + / at offset 4",
        ),
        (
            "SGVsbG8=\n",
            "a character outside A-Z a-z 0-9 + / at offset 8",
        ),
        ("@@@@", "a character outside A-Z a-z 0-9 + / at offset 0"),
        ("QQ==QQ==", "misplaced '=' at offset 2"),
        ("Q", "the length is not valid"),
    ];
    for (text, reason) in cases {
        assert_eq!(
            field(json!(text), |v| base64(v, None)).unwrap_err(),
            format!("`f` is not valid padded standard Base64 (RFC 4648 section 4): {reason}"),
            "{text:?}"
        );
    }
}

#[test]
fn size_limits_apply_before_and_after_decoding() {
    // 5 bytes encode to 8 characters; 6 bytes to 8 as well.
    assert_eq!(
        field(json!("AAAAAAA="), |v| base64(v, Some(5)))
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        field(json!("AAAAAAAA"), |v| base64(v, Some(5))).unwrap_err(),
        "`f` is 6 bytes; this proxy accepts at most 5"
    );
    // Too long to fit: rejected before decoding, even though it is not Base64 at all.
    assert_eq!(
        field(json!("@@@@@@@@@@@@"), |v| base64(v, Some(5))).unwrap_err(),
        "`f` has 12 Base64 characters, more than this proxy's limit of 5 bytes"
    );
    assert_eq!(
        field(json!("@@@@@@@@@@@@"), |v| plaintext(v, Some(5))).unwrap_err(),
        "`f` has 12 Base64 characters, more than this proxy's limit of 5 bytes"
    );
    assert_eq!(
        field(json!("AAAAAAAA"), |v| plaintext(v, Some(5))).unwrap_err(),
        "`f` is 6 bytes; this proxy accepts at most 5"
    );
}

#[test]
fn plaintext_errors_do_not_echo_the_value() {
    let message = field(json!("TOP SECRET=="), |v| plaintext(v, None)).unwrap_err();
    assert!(
        !message.contains("TOP") && !message.contains("SECRET"),
        "{message}"
    );
}

#[test]
fn fixed_lengths() {
    assert_eq!(
        field(json!("AAAAAAAAAAAAAAAAAAAAAA=="), base64_array::<16>).unwrap(),
        [0; 16]
    );
    assert_eq!(
        field(json!("AAAAAAAAAAAAAAAAAAAA"), base64_array::<16>).unwrap_err(),
        "`f` must decode to exactly 16 bytes, not 15"
    );
    assert_eq!(field(json!("AAAAAAAAAAAAAAAA"), iv).unwrap().len(), 12);
    assert_eq!(
        field(json!("AAAAAAAAAAAAAAAAAA=="), iv).unwrap_err(),
        "`f` must decode to 12 or 16 bytes, not 13"
    );
    assert_eq!(
        field(json!("AAAAAAAAAAAAAAAAAAAAAAAAAAA="), ciphertext_metadata)
            .unwrap()
            .len(),
        20
    );
    assert_eq!(
        field(json!("A".repeat(28)), ciphertext_metadata).unwrap_err(),
        "`f` must decode to at most 20 bytes, not 21"
    );
}

#[test]
fn keywords_and_integers() {
    #[derive(Debug, PartialEq)]
    struct Yes;
    impl WireEnum for Yes {
        const WIRE: &'static [&'static str] = &["YES"];
        fn from_wire(s: &str) -> Option<Self> {
            (s == "YES").then_some(Self)
        }
    }
    assert_eq!(field(json!("YES"), keyword::<Yes>), Ok(Yes));
    assert_eq!(
        field(json!("yes"), keyword::<Yes>).unwrap_err(),
        "`f` must be \"YES\""
    );
    assert_eq!(
        field(json!(1), keyword::<Yes>).unwrap_err(),
        "`f` must be a string, not a number"
    );
    assert_eq!(field(json!(7), u32), Ok(7));
    assert_eq!(field(json!(4_294_967_295_u64), u32), Ok(u32::MAX));
    for bad in [json!(-1), json!(1.5), json!(4_294_967_296_u64)] {
        assert_eq!(
            field(bad, u32).unwrap_err(),
            "`f` must be an integer from 0 to 4294967295"
        );
    }
    assert_eq!(
        field(json!("7"), u32).unwrap_err(),
        "`f` must be a number, not a string"
    );
}

#[test]
fn bounds_describe_themselves() {
    assert_eq!(Bound::Exactly(16).to_string(), "exactly 16");
    assert_eq!(Bound::AtMost(20).to_string(), "at most 20");
    assert_eq!(Bound::Either(12, 16).to_string(), "12 or 16");
    assert_eq!(Bound::Between(1, 10).to_string(), "1 to 10");
    assert!(Bound::Between(1, 10).check_count(0).is_err());
    assert!(Bound::Between(1, 10).check_count(10).is_ok());
    assert_eq!(
        Bound::AtMost(10).check_count(11).unwrap_err().to_string(),
        "must have at most 10 entries, not 11"
    );
}

#[test]
fn limit_problems_map_to_unsupported_operation() {
    let error = WireError::new("plaintext", Problem::TooLarge { len: 9, max: 8 });
    assert_eq!(
        error.into_xks_error().name(),
        ErrorName::UnsupportedOperationException
    );
    let error = WireError::new("plaintext", Problem::Missing);
    let error = error.into_xks_error();
    assert_eq!(error.name(), ErrorName::ValidationException);
    assert_eq!(
        error.message().unwrap().as_str(),
        "`plaintext` is required but missing"
    );
}
