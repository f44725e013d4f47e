use proptest::prelude::*;

use super::*;

/// Fact sheet §7.2, row by row.
const TABLE: [(ErrorName, &str, u16); 12] = [
    (ErrorName::ValidationException, "ValidationException", 400),
    (
        ErrorName::InvalidStateException,
        "InvalidStateException",
        400,
    ),
    (
        ErrorName::InvalidCiphertextException,
        "InvalidCiphertextException",
        400,
    ),
    (
        ErrorName::InvalidKeyUsageException,
        "InvalidKeyUsageException",
        400,
    ),
    (
        ErrorName::AuthenticationFailedException,
        "AuthenticationFailedException",
        401,
    ),
    (
        ErrorName::AccessDeniedException,
        "AccessDeniedException",
        403,
    ),
    (ErrorName::KeyNotFoundException, "KeyNotFoundException", 404),
    (
        ErrorName::InvalidUriPathException,
        "InvalidUriPathException",
        404,
    ),
    (ErrorName::ThrottlingException, "ThrottlingException", 429),
    (
        ErrorName::UnsupportedOperationException,
        "UnsupportedOperationException",
        501,
    ),
    (
        ErrorName::DependencyTimeoutException,
        "DependencyTimeoutException",
        503,
    ),
    (ErrorName::InternalException, "InternalException", 500),
];

#[test]
fn names_and_statuses_match_the_spec_table() {
    assert_eq!(ErrorName::ALL.len(), TABLE.len());
    for (name, text, status) in TABLE {
        assert!(ErrorName::ALL.contains(&name));
        assert_eq!(name.as_str(), text);
        assert_eq!(name.to_string(), text);
        assert_eq!(name.http_status(), status, "{name}");
        assert_eq!(text.parse::<ErrorName>(), Ok(name));
    }
}

#[test]
fn unknown_names_do_not_parse() {
    for text in [
        "",
        "validationexception",
        "Validation",
        "IncorrectKeyException",
    ] {
        assert_eq!(text.parse::<ErrorName>(), Err(Error::UnknownErrorName));
    }
}

#[test]
fn allowed_for_follows_the_table() {
    use OperationKind::{Decrypt, Encrypt, GetKeyMetadata, Health};
    let cases = [
        (ErrorName::ValidationException, [false, true, true, true]),
        (ErrorName::AccessDeniedException, [false, true, true, true]),
        (ErrorName::KeyNotFoundException, [false, true, true, true]),
        (
            ErrorName::InvalidCiphertextException,
            [false, false, false, true],
        ),
        (
            ErrorName::InvalidKeyUsageException,
            [false, false, true, true],
        ),
        (ErrorName::InvalidStateException, [true; 4]),
        (ErrorName::InternalException, [true; 4]),
    ];
    for (name, expected) in cases {
        let actual = [Health, GetKeyMetadata, Encrypt, Decrypt].map(|op| name.allowed_for(op));
        assert_eq!(actual, expected, "{name}");
    }
}

#[test]
fn message_keeps_printable_ascii() {
    let text = r#"plain text with "quotes", \backslash\ and ~ all kept"#;
    assert_eq!(ErrorMessage::new(text).as_str(), text);
}

#[test]
fn message_replaces_control_and_non_ascii_characters() {
    let message = ErrorMessage::new("tab\there\nnew line\u{7f}\u{0}é日本🔑");
    assert_eq!(message.as_str(), "tab?here?new line??????");
}

#[test]
fn message_of_exactly_max_len_is_kept() {
    let text = "x".repeat(ErrorMessage::MAX_LEN);
    assert_eq!(ErrorMessage::new(&text).as_str(), text);
}

#[test]
fn long_message_is_cut_with_ellipsis() {
    let message = ErrorMessage::new("y".repeat(ErrorMessage::MAX_LEN + 1));
    assert_eq!(message.as_str().len(), ErrorMessage::MAX_LEN);
    assert!(message.as_str().ends_with("y..."));

    // Multi-byte input is cut by characters, not bytes.
    let message = ErrorMessage::new("é".repeat(10_000));
    assert_eq!(message.as_str().len(), ErrorMessage::MAX_LEN);
    assert!(ErrorMessage::is_conformant(message.as_str()));
}

#[test]
fn is_conformant_checks_length_and_characters() {
    assert!(ErrorMessage::is_conformant(""));
    assert!(ErrorMessage::is_conformant(&"a".repeat(511)));
    assert!(!ErrorMessage::is_conformant(&"a".repeat(512)));
    assert!(!ErrorMessage::is_conformant("line\nbreak"));
    assert!(!ErrorMessage::is_conformant("café"));
}

#[test]
fn error_body_without_message() {
    let error = XksError::new(ErrorName::KeyNotFoundException);
    assert_eq!(
        error.to_json_body(),
        br#"{"errorName":"KeyNotFoundException"}"#
    );
    assert_eq!(error.http_status(), 404);
    assert_eq!(error.message(), None);
    assert_eq!(error.to_string(), "KeyNotFoundException");
    assert_eq!(XksError::from(ErrorName::KeyNotFoundException), error);
}

#[test]
fn error_body_with_message_escapes_json() {
    let error = XksError::with_message(ErrorName::ValidationException, r#"a "b" \c"#);
    assert_eq!(
        error.to_json_body(),
        br#"{"errorName":"ValidationException","errorMessage":"a \"b\" \\c"}"#
    );
    assert_eq!(error.to_string(), r#"ValidationException: a "b" \c"#);
    assert_eq!(error.to_json_body(), serde_json::to_vec(&error).unwrap());
}

#[test]
fn spec_error_example_parses() {
    // Fact sheet §7.1.
    let body = br#"{"errorName":"InvalidCiphertextException","errorMessage":"<free text>"}"#;
    let error = XksError::from_json(body).unwrap();
    assert_eq!(error.name(), ErrorName::InvalidCiphertextException);
    assert_eq!(error.http_status(), 400);
    assert_eq!(error.message().unwrap().as_str(), "<free text>");
}

#[test]
fn error_body_parsing_is_tolerant() {
    for body in [
        &br#"{"errorName":"ThrottlingException"}"#[..],
        br#"{"errorName":"ThrottlingException","errorMessage":null}"#,
        br#"{"errorName":"ThrottlingException","requestId":"abc","extra":[1,2]}"#,
    ] {
        let error = XksError::from_json(body).unwrap();
        assert_eq!(error, XksError::new(ErrorName::ThrottlingException));
    }
    let error = XksError::from_json(
        "{\"errorName\":\"InternalException\",\"errorMessage\":\"caf\u{e9}\\n\"}".as_bytes(),
    )
    .unwrap();
    assert_eq!(error.message().unwrap().as_str(), "caf??");
}

#[test]
fn bad_error_bodies_are_rejected() {
    for body in [
        &b""[..],
        b"[]",
        b"{}",
        br#"{"errorName":"NoSuchException"}"#,
        br#"{"errorName":404}"#,
        br#"{"errorName":"ThrottlingException","errorMessage":5}"#,
        br#"{"errorName":"ThrottlingException","errorName":"ThrottlingException"}"#,
    ] {
        assert!(
            XksError::from_json(body).is_err(),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

#[test]
fn serde_deserialize_matches_from_json() {
    let error: XksError =
        serde_json::from_str(r#"{"errorName":"AccessDeniedException","errorMessage":"no"}"#)
            .unwrap();
    assert_eq!(
        error,
        XksError::with_message(ErrorName::AccessDeniedException, "no")
    );
    assert!(serde_json::from_str::<XksError>(r#"{"errorName":"x"}"#).is_err());
}

#[test]
fn crate_error_wraps_without_repeating_the_source() {
    let error = Error::from(crate::KeyId::new("").unwrap_err());
    assert_eq!(error.to_string(), "invalid external key id");
    let source = std::error::Error::source(&error).unwrap();
    assert_eq!(source.to_string(), "the external key id is empty");
}

fn any_name() -> impl Strategy<Value = ErrorName> {
    prop::sample::select(ErrorName::ALL)
}

proptest! {
    #[test]
    fn any_text_gives_a_conformant_message(text in any::<String>()) {
        let message = ErrorMessage::new(&text);
        prop_assert!(ErrorMessage::is_conformant(message.as_str()));
        if ErrorMessage::is_conformant(&text) {
            prop_assert_eq!(message.as_str(), text);
        }
    }

    #[test]
    fn error_bodies_round_trip(name in any_name(), message in any::<Option<String>>()) {
        let error = match message {
            Some(message) => XksError::with_message(name, message),
            None => XksError::new(name),
        };
        let body = error.to_json_body();
        prop_assert_eq!(&body, &serde_json::to_vec(&error).unwrap());
        prop_assert_eq!(XksError::from_json(&body).unwrap(), error);
    }
}
