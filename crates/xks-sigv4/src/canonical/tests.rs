use http::{HeaderMap, HeaderValue};
use proptest::prelude::*;

use super::*;

const ENABLED: UriPathNormalization = UriPathNormalization::Enabled;
const DISABLED: UriPathNormalization = UriPathNormalization::Disabled;

#[test]
fn xks_paths_are_unchanged() {
    for path in [
        "/kms/xks/v1/health",
        "/example/prefix/kms/xks/v1/keys/b42c7fbf-de61-441c-ae24-123456789012/encrypt",
        "/p/kms/xks/v1/keys/Key_1.v2-x/decrypt",
        "/",
    ] {
        assert_eq!(canonical_uri(path, ENABLED), path);
        assert_eq!(canonical_uri(path, DISABLED), path);
    }
}

#[test]
fn path_is_encoded_twice() {
    // The received path is already encoded once; SigV4 (non-S3) encodes it again.
    assert_eq!(canonical_uri("/a%20b", ENABLED), "/a%2520b");
    assert_eq!(canonical_uri("/a%2Fb", ENABLED), "/a%252Fb");
    assert_eq!(canonical_uri("/a b", ENABLED), "/a%20b");
    assert_eq!(canonical_uri("/~user/x_y.z-1", ENABLED), "/~user/x_y.z-1");
    assert_eq!(
        canonical_uri("/!$&'()*+,;=:@", ENABLED),
        "/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40"
    );
    assert_eq!(canonical_uri("/é", ENABLED), "/%C3%A9");
}

#[test]
fn path_normalisation() {
    for (path, normalized) in [
        ("", "/"),
        ("/", "/"),
        ("a/b", "/a/b"),
        ("/a//b", "/a/b"),
        ("//a", "/a"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../a", "/a"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/b/", "/a/b/"),
        ("/a/..", "/"),
        ("/..", "/"),
        ("./", "/"),
        ("/a.b/c..d/.e", "/a.b/c..d/.e"),
    ] {
        assert_eq!(normalize_path(path), normalized, "{path:?}");
        assert_eq!(canonical_uri(path, ENABLED), normalized, "{path:?}");
    }
    assert_eq!(canonical_uri("/a/./b//c", DISABLED), "/a/./b//c");
    assert_eq!(canonical_uri("", DISABLED), "/");
}

#[test]
fn query_canonicalisation() {
    assert_eq!(canonical_query(None), "");
    assert_eq!(canonical_query(Some("")), "");
    assert_eq!(canonical_query(Some("b=2&a=1")), "a=1&b=2");
    assert_eq!(canonical_query(Some("a=2&a=1")), "a=1&a=2");
    assert_eq!(canonical_query(Some("flag&x=")), "flag=&x=");
    assert_eq!(canonical_query(Some("&&a=1&")), "a=1");
    assert_eq!(canonical_query(Some("a=b+c")), "a=b%20c");
    assert_eq!(canonical_query(Some("a=b%20c")), "a=b%20c");
    assert_eq!(canonical_query(Some("a=%2f%2F")), "a=%2F%2F");
    assert_eq!(canonical_query(Some("a=/")), "a=%2F");
    assert_eq!(canonical_query(Some("a=%zz%4")), "a=%25zz%254");
    assert_eq!(canonical_query(Some("a=%ff")), "a=%EF%BF%BD");
    assert_eq!(canonical_query(Some("k=a=b")), "k=a%3Db");
    assert_eq!(canonical_query(Some("~k=-_.")), "~k=-_.");
}

#[test]
fn payload_hash_of_empty_body() {
    assert_eq!(
        payload_hash(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn request_text(
    headers: &HeaderMap,
    signed: &str,
    authority: Option<&str>,
) -> Result<String, VerifyError> {
    let request = SignedRequest::new("POST", "/p", headers, b"").with_authority(authority);
    canonical_request(&request, signed, ENABLED).map(|bytes| String::from_utf8(bytes).unwrap())
}

#[test]
fn header_values_are_trimmed_and_joined() {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("xks.example.com"));
    headers.append("x-multi", HeaderValue::from_static("  a   b  "));
    headers.append("x-multi", HeaderValue::from_static("c\t d"));
    headers.append("x-multi", HeaderValue::from_static(""));
    headers.insert("x-spaces", HeaderValue::from_static("    "));
    headers.insert("x-unsigned", HeaderValue::from_static("ignored"));
    let text = request_text(&headers, "host;x-multi;x-spaces", None).unwrap();
    let expected_headers = "host:xks.example.com\nx-multi:a b,c\t d,\nx-spaces:\n";
    assert!(text.contains(expected_headers), "{text}");
    assert!(!text.contains("ignored"));
    assert!(text.ends_with(
        "\nhost;x-multi;x-spaces\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    ));
}

#[test]
fn host_falls_back_to_the_authority() {
    let headers = HeaderMap::new();
    let text = request_text(&headers, "host", Some("xks.example.com")).unwrap();
    assert!(text.contains("\nhost:xks.example.com\n"), "{text}");
    // A Host header wins over the authority.
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("from-header.example"));
    let text = request_text(&headers, "host", Some("xks.example.com")).unwrap();
    assert!(text.contains("\nhost:from-header.example\n"), "{text}");
}

#[test]
fn missing_signed_headers_are_reported() {
    let headers = HeaderMap::new();
    let err = request_text(&headers, "host", None).unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::SignedHeaderMissing);
    assert!(err.to_string().contains("\"host\""));
    let err = request_text(&headers, "content-type;host", Some("xks.example.com")).unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::SignedHeaderMissing);
    assert!(err.to_string().contains("\"content-type\""));
}

#[test]
fn non_utf8_header_bytes_are_hashed_as_they_are() {
    let mut headers = HeaderMap::new();
    headers.insert("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    let request = SignedRequest::new("POST", "/p", &headers, b"");
    let bytes = canonical_request(&request, "x-bin", ENABLED).unwrap();
    assert!(bytes.windows(10).any(|w| w == b"x-bin:caf\xe9"));
}

proptest! {
    #[test]
    fn trimming_matches_a_naive_model(value in "[ a-c\t]{0,20}") {
        let mut out = Vec::new();
        push_trimmed(&mut out, value.as_bytes());
        let words: Vec<&str> = value.split(' ').filter(|w| !w.is_empty()).collect();
        prop_assert_eq!(String::from_utf8(out).unwrap(), words.join(" "));
    }

    #[test]
    fn encoded_output_is_plain_ascii(path in "\\PC{0,40}") {
        let uri = canonical_uri(&path, ENABLED);
        prop_assert!(uri.starts_with('/'));
        prop_assert!(uri.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/%".contains(&b)));
    }

    #[test]
    fn normalised_paths_are_fixed_points(path in "[a./]{0,20}") {
        let once = normalize_path(&path).into_owned();
        prop_assert_eq!(normalize_path(&once).into_owned(), once.as_str());
        prop_assert!(!once.contains("//"));
    }
}
