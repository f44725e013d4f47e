//! End to end against our proxy on 127.0.0.1 (TLS from a test CA): the typed
//! operations, the raw mode's negative cases, and every kind of failure the error type
//! tells apart.
#![expect(
    clippy::unwrap_used,
    reason = "test fixtures: a failed unwrap is a failed test"
)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{
    AKID, KMS_CN, OTHER_AKID, OTHER_SECRET, ProxyOptions, SECRET, TestProxy, URI_PATH,
    canned_server, closed_port, silent_server,
};
use http::{HeaderValue, Method};
use xks_client::{
    Client, ClientConfig, ClientIdentity, ConnectErrorKind, Endpoint, Error, HttpVersions,
    RawRequest, SigV4Params, SignedHeaders, TlsErrorKind, TlsVersions, TrustRoots, XksClient,
};
use xks_protocol::{
    CdivAlgorithm, DecryptRequest, EncryptRequest, EncryptionAlgorithm, ErrorName, HealthRequest,
    KeyId, KeySpec, KeyStatus, MetadataRequest, Operation, Plaintext, RequestMetadata,
};
use xks_sigv4::{Credential, Signer};

fn config(proxy_addr: std::net::SocketAddr, ca: &std::path::Path) -> ClientConfig {
    ClientConfig::new(Endpoint::parse("https://localhost").unwrap())
        .with_connect_to(proxy_addr)
        .with_trust(TrustRoots::from_pem_file(ca).unwrap())
        // Generous: debug builds on shared cores; the timeout itself is tested below.
        .with_timeout(Duration::from_secs(5))
}

fn xks(client: Client, akid: &str, secret: &str, uri_path: &str) -> XksClient {
    let signer = Signer::new(&Credential::from_config(akid, secret).unwrap(), "eu-west-1").unwrap();
    XksClient::new(client, uri_path, signer).unwrap()
}

fn metadata(operation: &str) -> RequestMetadata {
    RequestMetadata {
        aws_principal_arn: Some("arn:aws:iam::111122223333:user/test".into()),
        kms_key_arn: Some("arn:aws:kms:eu-west-1:111122223333:key/test".into()),
        kms_operation: operation.into(),
        kms_request_id: "2a1bd3e4-1111-4222-8333-444455556666".into(),
        ..RequestMetadata::default()
    }
}

fn health_request() -> HealthRequest {
    HealthRequest {
        request_metadata: RequestMetadata {
            kms_operation: "KmsHealthCheck".into(),
            kms_request_id: "r-1".into(),
            ..RequestMetadata::default()
        },
    }
}

fn encrypt_request(plaintext: &[u8], aad: Option<&[u8]>) -> EncryptRequest {
    EncryptRequest {
        request_metadata: metadata("Encrypt"),
        plaintext: Plaintext::new(plaintext.to_vec()),
        encryption_algorithm: EncryptionAlgorithm::AesGcm,
        additional_authenticated_data: aad.map(<[u8]>::to_vec),
        ciphertext_data_integrity_value_algorithm: Some(CdivAlgorithm::Sha256),
    }
}

fn key(id: &str) -> KeyId {
    KeyId::new(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_operations_round_trip_over_http2() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let client = Client::new(config(proxy.addr, &proxy.ca_file())).unwrap();
    let xks = xks(client.clone(), AKID, SECRET, URI_PATH);

    let health = xks.get_health_status(&health_request()).await.unwrap();
    assert!(!health.body.ekm_fleet_details.is_empty());
    assert_eq!(health.exchange.http_version(), "HTTP/2");
    let tls = health.exchange.tls().unwrap();
    assert_eq!(tls.alpn(), Some("h2"));
    assert!(tls.is_spec_cipher_suite(), "{}", tls.cipher_suite());
    let leaf = tls.leaf_certificate().unwrap();
    assert_eq!(leaf.dns_names(), ["localhost"]);
    assert_eq!(leaf.ip_addresses(), ["127.0.0.1"]);
    assert!(leaf.remaining_at(SystemTime::now()).is_some());

    let md = xks
        .get_key_metadata(
            &key("key-1"),
            &MetadataRequest {
                request_metadata: metadata("CreateKey"),
            },
        )
        .await
        .unwrap();
    assert_eq!(md.body.key_spec, KeySpec::Aes256);
    assert_eq!(md.body.key_status, KeyStatus::Enabled);

    let aad = b"project=nile";
    let sealed = xks
        .encrypt(&key("key-1"), &encrypt_request(b"Hello World!", Some(aad)))
        .await
        .unwrap()
        .body;
    assert_eq!(sealed.ciphertext.len(), 12);
    let opened = xks
        .decrypt(
            &key("key-1"),
            &DecryptRequest {
                request_metadata: metadata("Decrypt"),
                ciphertext: sealed.ciphertext.clone(),
                ciphertext_metadata: sealed.ciphertext_metadata.clone(),
                encryption_algorithm: EncryptionAlgorithm::AesGcm,
                additional_authenticated_data: Some(aad.to_vec()),
                initialization_vector: sealed.initialization_vector.clone(),
                authentication_tag: sealed.authentication_tag,
            },
        )
        .await
        .unwrap();
    assert_eq!(opened.body.plaintext.as_bytes(), b"Hello World!");

    // Keep-alive: one HTTP/2 connection carried all four requests.
    assert_eq!(client.connections_opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_tls12_and_keep_alive() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    for http in [HttpVersions::Http1, HttpVersions::Http1WithoutAlpn] {
        let client = Client::new(
            config(proxy.addr, &proxy.ca_file())
                .with_http_versions(http)
                .with_tls_versions(TlsVersions::Tls12Only),
        )
        .unwrap();
        let xks = xks(client.clone(), AKID, SECRET, URI_PATH);
        for _ in 0..3 {
            // hyper returns an HTTP/1.1 connection to the pool from a task of its own once
            // the answer is read; give it a moment, as time passes between KMS's calls.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let answer = xks.get_health_status(&health_request()).await.unwrap();
            assert_eq!(answer.exchange.http_version(), "HTTP/1.1");
            assert_eq!(answer.exchange.tls().unwrap().protocol_version(), "TLSv1.2");
        }
        assert_eq!(client.connections_opened(), 1, "{http:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xks_error_answers_are_typed() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let client = Client::new(config(proxy.addr, &proxy.ca_file())).unwrap();

    let wrong_secret = xks(client.clone(), AKID, OTHER_SECRET, URI_PATH);
    let err = wrong_secret
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    let Error::Xks(answer) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(answer.name(), ErrorName::AuthenticationFailedException);
    assert_eq!(answer.status(), 401);
    assert!(answer.status_matches_name());

    let unknown_key_id = xks(client.clone(), OTHER_AKID, OTHER_SECRET, URI_PATH);
    let err = unknown_key_id
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert_eq!(err.label(), "AuthenticationFailedException");

    let wrong_prefix = xks(client.clone(), AKID, SECRET, "/wrong/kms/xks/v1");
    let err = wrong_prefix
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert_eq!(
        err.xks_error_name(),
        Some(ErrorName::InvalidUriPathException)
    );

    let good = xks(client, AKID, SECRET, URI_PATH);
    let err = good
        .encrypt(&key("no-such-key"), &encrypt_request(b"x", None))
        .await
        .unwrap_err();
    assert_eq!(err.xks_error_name(), Some(ErrorName::KeyNotFoundException));
    let err = good
        .encrypt(&key("disabled"), &encrypt_request(b"x", None))
        .await
        .unwrap_err();
    assert_eq!(err.xks_error_name(), Some(ErrorName::InvalidStateException));
}

/// The raw mode builds what a conformance tester needs: tampering after signing, wrong
/// service, skewed time, missing headers, other header sets, other methods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_mode_negative_cases() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let client = Client::new(config(proxy.addr, &proxy.ca_file())).unwrap();
    let endpoint = client.endpoint().clone();
    let xks = xks(client.clone(), AKID, SECRET, URI_PATH);
    let credential = Credential::from_config(AKID, SECRET).unwrap();
    let body = serde_json::to_vec(&health_request()).unwrap();
    let path = xks.path_of(&Operation::Health);
    let params = || SigV4Params::new(&credential, "eu-west-1");

    let status = |request: RawRequest| {
        let client = client.clone();
        async move { client.send(request).await.unwrap().status().as_u16() }
    };

    // The baseline, signed by xks-sigv4's Signer, then by the independent signer.
    let baseline = xks
        .signed_request(&Operation::Health, body.clone())
        .unwrap();
    assert_eq!(status(baseline.clone()).await, 200);
    let mut request = RawRequest::post(path.clone(), body.clone());
    request.sign_with(&endpoint, &params()).unwrap();
    assert_eq!(status(request).await, 200);

    // curl style, with content-type signed.
    let mut request = RawRequest::post(path.clone(), body.clone());
    request
        .sign_with(
            &endpoint,
            &params().with_signed_headers(SignedHeaders::ContentTypeHostAndDate),
        )
        .unwrap();
    assert_eq!(status(request).await, 200);

    // The body changed by one byte after signing.
    let mut request = baseline.clone();
    let mut tampered = body.clone();
    let last = tampered.len() - 2;
    tampered[last] ^= 1;
    request.set_body(tampered);
    assert_eq!(status(request).await, 401);

    // Signed for service `kms`.
    let mut request = RawRequest::post(path.clone(), body.clone());
    request
        .sign_with(&endpoint, &params().with_service("kms"))
        .unwrap();
    assert_eq!(status(request).await, 401);

    // Ten minutes in the past.
    let mut request = RawRequest::post(path.clone(), body.clone());
    let stale = SystemTime::now() - Duration::from_secs(600);
    request
        .sign_with(&endpoint, &params().with_time(stale))
        .unwrap();
    assert_eq!(status(request).await, 401);

    // X-Amz-Date removed after signing; no Authorization at all.
    let mut request = baseline.clone();
    request.headers_mut().remove("x-amz-date");
    assert_eq!(status(request).await, 401);
    let mut request = baseline.clone();
    request.headers_mut().remove("authorization");
    assert_eq!(status(request).await, 401);

    // A garbage Authorization header.
    let mut request = baseline.clone();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 nonsense"),
    );
    assert_eq!(status(request).await, 401);

    // GET on an API path.
    let mut request = baseline.clone();
    request.set_method(Method::GET);
    let answer = client.send(request).await.unwrap();
    assert_eq!(answer.status(), 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_failures_are_told_apart() {
    let proxy = TestProxy::start(ProxyOptions::default()).await;
    let ca = proxy.ca_file();

    // Nothing listens.
    let client = Client::new(config(closed_port().await, &ca)).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    let Error::Connect(connect) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(connect.kind(), ConnectErrorKind::Refused);

    // Accepts, never answers: the default 250 ms timeout, bounded.
    let client =
        Client::new(config(silent_server().await, &ca).with_timeout(Duration::from_millis(250)))
            .unwrap();
    let started = Instant::now();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{}", err.chain());
    assert!(started.elapsed() < Duration::from_secs(3));

    // An HTML page.
    let html = canned_server(
        &proxy.pki,
        200,
        "text/html",
        "<html><body>It works!</body></html>",
    )
    .await;
    let client = Client::new(config(html, &ca)).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    let Error::NotXks(answer) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.excerpt(), "<html><body>It works!</body></html>");

    // A 502 from a load balancer, no XKS body.
    let bad_gateway = canned_server(&proxy.pki, 502, "text/plain", "Bad Gateway").await;
    let client = Client::new(config(bad_gateway, &ca)).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert_eq!(err.label(), "NotXksAnswer");

    // A trust root that did not sign the server certificate.
    let other = common::Pki::new("other CA");
    let client = Client::new(
        config(proxy.addr, &ca)
            .with_trust(TrustRoots::from_pem(other.ca_pem().as_bytes()).unwrap()),
    )
    .unwrap();
    let err = client
        .send(RawRequest::post("/p/kms/xks/v1/health", "{}"))
        .await
        .unwrap_err();
    let Error::Tls(tls) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(tls.kind(), TlsErrorKind::UnknownIssuer);

    // A host name the certificate does not cover.
    let client = Client::new(
        ClientConfig::new(Endpoint::parse("https://xks.example.com").unwrap())
            .with_connect_to(proxy.addr)
            .with_trust(TrustRoots::from_pem_file(&ca).unwrap()),
    )
    .unwrap();
    let err = client
        .send(RawRequest::post("/p/kms/xks/v1/health", "{}"))
        .await
        .unwrap_err();
    let Error::Tls(tls) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(tls.kind(), TlsErrorKind::CertificateNameMismatch);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_server_certificate_is_a_tls_failure() {
    let proxy = TestProxy::start(ProxyOptions {
        expired_certificate: true,
        ..ProxyOptions::default()
    })
    .await;
    let client = Client::new(config(proxy.addr, &proxy.ca_file())).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    let Error::Tls(tls) = &err else {
        panic!("{}", err.chain())
    };
    assert_eq!(tls.kind(), TlsErrorKind::CertificateExpired);
    assert!(tls.reason().contains("expired"), "{}", tls.reason());
}

/// 200 answers that break the protocol are told apart from non-XKS answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_violations_in_200_answers() {
    let pki = common::Pki::new("ca");
    let dir = tempfile::tempdir().unwrap();
    let ca = common::write_file(dir.path(), "ca.pem", &pki.ca_pem());
    let cases: [(&str, &str, &str); 3] = [
        // IV of 13 bytes.
        (
            "application/json",
            r#"{"ciphertext":"AA==","initializationVector":"AAAAAAAAAAAAAAAAAA==","authenticationTag":"AAAAAAAAAAAAAAAAAAAAAA=="}"#,
            "initializationVector",
        ),
        // No CDIV although the request asked for one.
        (
            "application/json",
            r#"{"ciphertext":"AA==","initializationVector":"AAAAAAAAAAAAAAAA","authenticationTag":"AAAAAAAAAAAAAAAAAAAAAA=="}"#,
            "ciphertextDataIntegrityValue",
        ),
        // Not JSON content.
        (
            "text/plain",
            r#"{"ciphertext":"AA==","initializationVector":"AAAAAAAAAAAAAAAA","authenticationTag":"AAAAAAAAAAAAAAAAAAAAAA==","ciphertextDataIntegrityValue":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#,
            "Content-Type",
        ),
    ];
    for (content_type, body, what) in cases {
        let addr = canned_server(&pki, 200, content_type, body).await;
        let client = Client::new(config(addr, &ca)).unwrap();
        let err = xks(client, AKID, SECRET, URI_PATH)
            .encrypt(&key("key-1"), &encrypt_request(b"x", None))
            .await
            .unwrap_err();
        let Error::Protocol(violation) = &err else {
            panic!("{}", err.chain())
        };
        assert!(violation.what().contains(what), "{}", violation.what());
    }

    // A health answer missing a field.
    let addr = canned_server(&pki, 200, "application/json", r#"{"xksProxyFleetSize":1}"#).await;
    let client = Client::new(config(addr, &ca)).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert!(err.chain().contains("xksProxyVendor"), "{}", err.chain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_client_certificate() {
    let proxy = TestProxy::start(ProxyOptions {
        mtls: true,
        ..ProxyOptions::default()
    })
    .await;
    let (cert, key_file) = proxy.client_identity_files(KMS_CN);
    let identity = ClientIdentity::from_pem_files(&cert, &key_file).unwrap();
    assert!(!format!("{identity:?}").contains("PRIVATE"));
    let client =
        Client::new(config(proxy.addr, &proxy.ca_file()).with_client_identity(identity)).unwrap();
    xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap();

    // Without a certificate the proxy aborts the handshake (TLS 1.3: on the first read).
    let client = Client::new(config(proxy.addr, &proxy.ca_file())).unwrap();
    let err = xks(client, AKID, SECRET, URI_PATH)
        .get_health_status(&health_request())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Tls(_) | Error::Http(_)),
        "{}",
        err.chain()
    );
}
