use proptest::prelude::*;

use super::*;

fn key(id: &str) -> KeyId {
    KeyId::new(id).unwrap()
}

fn reason(path: &str) -> RouteReason {
    Route::parse(path).unwrap_err().0
}

#[test]
fn valid_paths() {
    let cases = [
        ("/kms/xks/v1/health", "", Operation::Health),
        ("/a/kms/xks/v1/health", "/a", Operation::Health),
        (
            "/path/kms/xks/v1/keys/k1/metadata",
            "/path",
            Operation::Metadata(key("k1")),
        ),
        (
            "/a/b-c/D_9/kms/xks/v1/keys/k.1_x-y/encrypt",
            "/a/b-c/D_9",
            Operation::Encrypt(key("k.1_x-y")),
        ),
        (
            "/kms/xks/v1/keys/b42c7fbf-de61-441c-ae24-123456789012/decrypt",
            "",
            Operation::Decrypt(key("b42c7fbf-de61-441c-ae24-123456789012")),
        ),
        // The prefix may itself contain the API root; parsing works from the end.
        (
            "/kms/xks/v1/kms/xks/v1/health",
            "/kms/xks/v1",
            Operation::Health,
        ),
        // Key ids may look like segment names.
        (
            "/kms/xks/v1/keys/keys/encrypt",
            "",
            Operation::Encrypt(key("keys")),
        ),
        (
            "/kms/xks/v1/keys/health/metadata",
            "",
            Operation::Metadata(key("health")),
        ),
        (
            "/kms/xks/v1/keys/.../decrypt",
            "",
            Operation::Decrypt(key("...")),
        ),
    ];
    for (path, prefix, operation) in cases {
        let route = Route::parse(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(route.prefix(), prefix, "{path}");
        assert_eq!(route.operation(), &operation, "{path}");
        assert_eq!(route.to_string(), path);
    }
}

#[test]
fn longest_key_id_with_every_allowed_character_routes() {
    // Checklist item 66.
    let id = format!("{}-._xy", "aZ9".repeat(41));
    assert_eq!(id.len(), KeyId::MAX_LEN);
    let path = format!("/t/kms/xks/v1/keys/{id}/metadata");
    let route = Route::parse(&path).unwrap();
    assert_eq!(route.operation().key_id().unwrap().as_str(), id);
}

#[test]
fn longest_valid_path_routes() {
    let prefix = format!("/{}", "p".repeat(MAX_URI_PATH_LEN - API_ROOT.len() - 1));
    let path = format!(
        "{prefix}/kms/xks/v1/keys/{}/metadata",
        "k".repeat(KeyId::MAX_LEN)
    );
    assert_eq!(path.len(), Route::MAX_PATH_LEN);
    assert_eq!(Route::parse(&path).unwrap().prefix(), prefix);

    let longer_prefix = format!("/{}", "p".repeat(MAX_URI_PATH_LEN - API_ROOT.len()));
    let path = format!("{longer_prefix}/kms/xks/v1/health");
    assert_eq!(reason(&path), RouteReason::BadPrefix);
    assert_eq!(reason(&format!("/x{path}")), RouteReason::BadPrefix);
}

#[test]
fn not_api_paths() {
    for path in [
        "",
        "/",
        "health",
        "/health",
        "/kms/xks/v1",
        "/kms/xks/v1/",
        "kms/xks/v1/health",
        "/kms/xks/v2/health",
        "/kms/xks/v10/health",
        "/kms/xks/V1/health",
        "/kms/xks/v1/health/",
        "/kms/xks/v1/health/extra",
        "/kms/xks/v1//health",
        "/kms/xks/v1/keys/k1",
        "/kms/xks/v1/keys/k1/encrypt/",
        "/kms/xks/v1/keys/k1/encrypt/extra",
        "/kms/xks/v1/keys/k1/health",
        "/kms/xks/v1/key/k1/encrypt",
        "/kms/xks/v1/k1/encrypt",
        "/kms/xks/v1/encrypt",
        "/kms/xks/v2/keys/k1/encrypt",
        "/kms/xks/v1//keys/k1/encrypt",
        "/kms/xks/v1/keys/a/b/encrypt",
    ] {
        assert_eq!(reason(path), RouteReason::NotApiPath, "{path:?}");
    }
}

#[test]
fn unknown_operations() {
    for path in [
        "/kms/xks/v1/keys/k1/sign",
        "/kms/xks/v1/keys/k1/Encrypt",
        "/kms/xks/v1/keys/k1/",
        "/p/kms/xks/v1/keys/k1/ENCRYPT",
    ] {
        let result = reason(path);
        assert!(
            matches!(
                result,
                RouteReason::UnknownOperation | RouteReason::NotApiPath
            ),
            "{path:?}: {result:?}"
        );
    }
    assert_eq!(
        reason("/kms/xks/v1/keys/k1/sign"),
        RouteReason::UnknownOperation
    );
}

#[test]
fn bad_prefixes() {
    for path in [
        "//kms/xks/v1/health",
        "/a//kms/xks/v1/health",
        "//a/kms/xks/v1/health",
        "/a/kms/xks/v1/health".trim_start_matches('/'),
        "x/kms/xks/v1/health",
        "/a.b/kms/xks/v1/health",
        "/a b/kms/xks/v1/health",
        "/a~/kms/xks/v1/keys/k/encrypt",
        "/a/./kms/xks/v1/health",
        "/a/../kms/xks/v1/health",
        "/é/kms/xks/v1/health",
        "/a?x=1/kms/xks/v1/health",
    ] {
        assert_eq!(reason(path), RouteReason::BadPrefix, "{path:?}");
    }
}

#[test]
fn bad_key_ids() {
    let long = "k".repeat(KeyId::MAX_LEN + 1);
    let cases = [
        ("/kms/xks/v1/keys//encrypt".to_owned(), KeyIdReason::Empty),
        (
            "/kms/xks/v1/keys/./encrypt".to_owned(),
            KeyIdReason::DotSegment,
        ),
        (
            "/kms/xks/v1/keys/../decrypt".to_owned(),
            KeyIdReason::DotSegment,
        ),
        (
            "/kms/xks/v1/keys/key@1/metadata".to_owned(),
            KeyIdReason::IllegalChar { position: 3 },
        ),
        (
            "/kms/xks/v1/keys/k:1/metadata".to_owned(),
            KeyIdReason::IllegalChar { position: 1 },
        ),
        (
            format!("/kms/xks/v1/keys/{long}/metadata"),
            KeyIdReason::TooLong,
        ),
    ];
    for (path, expected) in cases {
        assert_eq!(reason(&path), RouteReason::KeyId(expected), "{path}");
    }
}

#[test]
fn percent_encoding_is_rejected_anywhere() {
    for path in [
        "/kms/xks/v1/keys/k%31/encrypt",
        "/a%2Fb/kms/xks/v1/health",
        "/kms/xks/v1/keys/%2e%2e/encrypt",
        "%2Fkms/xks/v1/health",
    ] {
        assert_eq!(reason(path), RouteReason::PercentEncoded, "{path}");
    }
}

#[test]
fn overlong_paths_are_rejected_first() {
    let path = format!(
        "/kms/xks/v1/keys/{}/encrypt",
        "%".repeat(Route::MAX_PATH_LEN)
    );
    assert_eq!(reason(&path), RouteReason::TooLong);
}

#[test]
fn errors_map_to_invalid_uri_path() {
    let error = XksError::from(Route::parse("/kms/xks/v2/health").unwrap_err());
    assert_eq!(error.name(), ErrorName::InvalidUriPathException);
    assert_eq!(error.http_status(), 404);
    assert!(
        error
            .message()
            .unwrap()
            .as_str()
            .starts_with("the path is not")
    );
}

#[test]
fn operation_kinds() {
    let cases = [
        (
            Operation::Health,
            OperationKind::Health,
            "GetHealthStatus",
            None,
        ),
        (
            Operation::Metadata(key("k")),
            OperationKind::GetKeyMetadata,
            "GetKeyMetadata",
            Some("k"),
        ),
        (
            Operation::Encrypt(key("k")),
            OperationKind::Encrypt,
            "Encrypt",
            Some("k"),
        ),
        (
            Operation::Decrypt(key("k")),
            OperationKind::Decrypt,
            "Decrypt",
            Some("k"),
        ),
    ];
    for (operation, kind, name, key_id) in cases {
        assert_eq!(operation.kind(), kind);
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.to_string(), name);
        assert!(OperationKind::ALL.contains(&kind));
        assert_eq!(operation.key_id().map(KeyId::as_str), key_id);
    }
}

#[test]
fn new_checks_the_prefix() {
    let route = Route::new("/tenant-1", Operation::Encrypt(key("k1"))).unwrap();
    assert_eq!(route.to_string(), "/tenant-1/kms/xks/v1/keys/k1/encrypt");
    assert_eq!(route.into_operation(), Operation::Encrypt(key("k1")));
    assert_eq!(
        Route::new("", Operation::Health).unwrap().to_string(),
        "/kms/xks/v1/health"
    );
    for prefix in ["/", "tenant", "/a/", "/a//b", "/a.b"] {
        assert!(Route::new(prefix, Operation::Health).is_err(), "{prefix}");
    }
}

fn any_operation() -> impl Strategy<Value = Operation> {
    let id = "[A-Za-z0-9._-]{1,128}"
        .prop_filter("dot segments", |id| id != "." && id != "..")
        .prop_map(|id| key(&id));
    prop_oneof![
        Just(Operation::Health),
        id.clone().prop_map(Operation::Metadata),
        id.clone().prop_map(Operation::Encrypt),
        id.prop_map(Operation::Decrypt),
    ]
}

proptest! {
    #[test]
    fn valid_routes_round_trip(
        prefix in prop_oneof![Just(String::new()), "(/[A-Za-z0-9_-]{1,12}){1,5}"],
        operation in any_operation(),
    ) {
        let route = Route::new(&prefix, operation).unwrap();
        let path = route.to_string();
        prop_assert_eq!(Route::parse(&path).unwrap(), route);
    }

    #[test]
    fn parse_never_panics(path in any::<String>()) {
        if let Ok(route) = Route::parse(&path) {
            prop_assert_eq!(route.to_string(), path);
        }
    }

    #[test]
    fn parse_never_panics_on_path_like_input(
        path in "[/a-z0-9%._-]{0,40}(/kms/xks/v[0-9])?(/keys)?(/[a-z.%]{0,6}){0,3}",
    ) {
        if let Ok(route) = Route::parse(&path) {
            prop_assert_eq!(route.to_string(), path);
        }
    }
}
