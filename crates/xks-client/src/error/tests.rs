use super::*;

#[test]
fn excerpt_is_printable_and_short() {
    let body = b"<html>\n  <body>\xff\x00 Hello   world</body></html>";
    assert_eq!(excerpt(body), "<html> <body>?? Hello world</body></html>");
    let long = vec![b'a'; 500];
    let text = excerpt(&long);
    assert_eq!(text.len(), EXCERPT_LEN + 3);
    assert!(text.ends_with("..."));
}

#[test]
fn display_never_repeats_the_source() {
    let answer = XksErrorAnswer::new(
        401,
        XksError::with_message(ErrorName::AuthenticationFailedException, "bad signature"),
        Some(OperationKind::Health),
    );
    let error = Error::Xks(answer);
    assert_eq!(
        error.to_string(),
        "the XKS proxy answered with an XKS error"
    );
    assert_eq!(
        error.chain(),
        "the XKS proxy answered with an XKS error: HTTP 401 AuthenticationFailedException: bad signature"
    );
    assert_eq!(error.label(), "AuthenticationFailedException");
    assert_eq!(
        error.xks_error_name(),
        Some(ErrorName::AuthenticationFailedException)
    );
}

#[test]
fn status_mismatch_is_reported() {
    let answer = XksErrorAnswer::new(
        500,
        XksError::new(ErrorName::KeyNotFoundException),
        Some(OperationKind::Health),
    );
    assert!(!answer.status_matches_name());
    assert_eq!(answer.allowed_for_operation(), Some(false));
    assert!(
        answer
            .to_string()
            .contains("the spec gives KeyNotFoundException HTTP 404")
    );
}

#[test]
fn not_xks_answer_shows_an_excerpt() {
    let answer = NotXksAnswer::new(200, Some("text/html"), b"<h1>It works!</h1>");
    assert_eq!(
        answer.to_string(),
        "HTTP 200 (text/html, 18 bytes): \"<h1>It works!</h1>\""
    );
    assert_eq!(Error::NotXks(answer).label(), "NotXksAnswer");
}

#[test]
fn tls_errors_are_classified() {
    let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
    assert_eq!(
        TlsError::from_rustls(&expired, None).kind(),
        TlsErrorKind::CertificateExpired
    );
    let io = io::Error::new(io::ErrorKind::InvalidData, expired);
    let tls = TlsError::from_io(io, None);
    assert_eq!(tls.kind(), TlsErrorKind::CertificateExpired);
    assert!(
        tls.reason().to_lowercase().contains("expired"),
        "{}",
        tls.reason()
    );
    let eof = TlsError::from_io(io::Error::from(io::ErrorKind::UnexpectedEof), None);
    assert_eq!(eof.kind(), TlsErrorKind::ConnectionClosed);
}
