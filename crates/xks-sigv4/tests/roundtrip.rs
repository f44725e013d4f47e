//! Property tests: requests signed by aws-sigv4 (through `Signer`, and directly) verify, any
//! change to a signed part fails with the right kind, and the verifier agrees with an
//! independent reference computation.
#![expect(
    clippy::unwrap_used,
    reason = "fixture code of a test: a failed unwrap is a failed test"
)]

mod common;

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use common::*;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use xks_sigv4::{
    Credential, CredentialStore, FixedClock, OutgoingRequest, SignedHeaderSet, SignedRequest,
    Signer, Verifier, VerifyErrorKind,
};

/// 2000-01-01 and 2100-01-01.
const YEAR_2000: i64 = 946_684_800;
const YEAR_2100: i64 = 4_102_444_800;

#[derive(Debug, Clone)]
struct Case {
    access_key_id: String,
    secret: String,
    region: String,
    host: String,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    time: i64,
    /// How far the verifier's clock is after the signing time.
    clock_offset: i64,
    set: SignedHeaderSet,
    http2: bool,
}

#[derive(Debug, Clone)]
enum Mutation {
    Method,
    Path,
    BodyByte(prop::sample::Index),
    BodyAppend(u8),
    Host,
    ContentType,
    DateShift(i64),
    WrongSecret,
    UnknownAccessKeyId,
}

fn path_strategy() -> impl Strategy<Value = String> {
    let segment = "([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-F]{2}){0,8}";
    prop::collection::vec(segment, 0..6).prop_map(|segments| format!("/{}", segments.join("/")))
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (
        "[A-Z2-7]{20,30}",
        "[A-Za-z0-9+/=]{43,64}",
        "[a-z]{2}-[a-z]{4,9}-[1-9]",
        "[a-z][a-z0-9-]{0,10}\\.example\\.com(:[1-9][0-9]{3})?",
        prop::sample::select(vec!["POST", "PUT", "GET"]),
        path_strategy(),
        prop::collection::vec(any::<u8>(), 0..1024),
        YEAR_2000..YEAR_2100,
        -300_i64..=300,
        prop::sample::select(vec![
            SignedHeaderSet::HostAndDate,
            SignedHeaderSet::ContentTypeHostAndDate,
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(
                access_key_id,
                secret,
                region,
                host,
                method,
                path,
                body,
                time,
                clock_offset,
                set,
                http2,
            )| Case {
                access_key_id,
                secret,
                region,
                host,
                method,
                path,
                body,
                time,
                clock_offset,
                set,
                http2,
            },
        )
}

fn mutation_strategy() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Method),
        Just(Mutation::Path),
        any::<prop::sample::Index>().prop_map(Mutation::BodyByte),
        any::<u8>().prop_map(Mutation::BodyAppend),
        Just(Mutation::Host),
        Just(Mutation::ContentType),
        prop_oneof![-3_i64..=-1, 1_i64..=3].prop_map(Mutation::DateShift),
        Just(Mutation::WrongSecret),
        Just(Mutation::UnknownAccessKeyId),
    ]
}

/// A request as the server receives it.
struct Received {
    method: String,
    path: String,
    headers: HeaderMap,
    authority: Option<String>,
    body: Vec<u8>,
}

impl Received {
    fn view(&self) -> SignedRequest<'_> {
        SignedRequest::new(&self.method, &self.path, &self.headers, &self.body)
            .with_authority(self.authority.as_deref())
    }
}

impl Case {
    fn credential(&self) -> Credential {
        Credential::from_config(self.access_key_id.as_str(), self.secret.as_str()).unwrap()
    }

    fn sign_at(&self, time: i64) -> xks_sigv4::SignatureHeaders {
        let url = format!("https://{}{}", self.host, self.path);
        let signer = Signer::new(&self.credential(), self.region.as_str())
            .unwrap()
            .with_signed_headers(self.set);
        let request = OutgoingRequest::new(self.method, &url, &self.body)
            .with_content_type("application/json");
        signer.sign(&request, at(time)).unwrap()
    }

    fn received(&self) -> Received {
        let mut headers = HeaderMap::new();
        self.sign_at(self.time).apply_to(&mut headers).unwrap();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let authority = if self.http2 {
            Some(self.host.clone())
        } else {
            headers.insert("host", HeaderValue::from_str(&self.host).unwrap());
            None
        };
        Received {
            method: self.method.to_owned(),
            path: self.path.clone(),
            headers,
            authority,
            body: self.body.clone(),
        }
    }

    fn verifier(&self, credential: Credential) -> Verifier {
        Verifier::new(CredentialStore::new([credential]).unwrap())
            .with_clock(FixedClock::new(at(self.time + self.clock_offset)))
    }

    /// Applies `mutation`; returns the verifier to use and the expected failure, or `None`
    /// if the change touches nothing signed.
    fn mutate(
        &self,
        received: &mut Received,
        mutation: &Mutation,
    ) -> (Verifier, Option<VerifyErrorKind>) {
        let mismatch = Some(VerifyErrorKind::SignatureMismatch);
        let mut verifier = self.verifier(self.credential());
        let expected = match mutation {
            Mutation::Method => {
                received.method = if self.method == "POST" { "PUT" } else { "POST" }.to_owned();
                mismatch
            }
            Mutation::Path => {
                received.path.push_str("/z");
                mismatch
            }
            Mutation::BodyByte(index) if !received.body.is_empty() => {
                let i = index.index(received.body.len());
                received.body[i] ^= 0x01;
                mismatch
            }
            Mutation::BodyByte(_) | Mutation::BodyAppend(_) => {
                let byte = if let Mutation::BodyAppend(b) = mutation {
                    *b
                } else {
                    b'x'
                };
                received.body.push(byte);
                mismatch
            }
            Mutation::Host => {
                match &mut received.authority {
                    Some(authority) => *authority = "other.example.net".to_owned(),
                    None => {
                        received
                            .headers
                            .insert("host", HeaderValue::from_static("other.example.net"));
                    }
                }
                mismatch
            }
            Mutation::ContentType => {
                received
                    .headers
                    .insert("content-type", HeaderValue::from_static("text/plain"));
                match self.set {
                    SignedHeaderSet::ContentTypeHostAndDate => mismatch,
                    _ => None,
                }
            }
            Mutation::DateShift(delta) => {
                let shifted = self.time + delta;
                let date = self.sign_at(shifted).x_amz_date().to_owned();
                received
                    .headers
                    .insert("x-amz-date", HeaderValue::from_str(&date).unwrap());
                let now = self.time + self.clock_offset;
                if shifted.div_euclid(86_400) != self.time.div_euclid(86_400) {
                    Some(VerifyErrorKind::ScopeDateMismatch)
                } else if (shifted - now).abs() > 300 {
                    Some(VerifyErrorKind::ClockSkew)
                } else {
                    mismatch
                }
            }
            Mutation::WrongSecret => {
                let other_secret = format!("Z{}", &self.secret[1..]);
                let other_secret = if other_secret == self.secret {
                    format!("Y{}", &self.secret[1..])
                } else {
                    other_secret
                };
                let credential =
                    Credential::from_config(self.access_key_id.as_str(), other_secret).unwrap();
                verifier = self.verifier(credential);
                mismatch
            }
            Mutation::UnknownAccessKeyId => {
                let other = if self.access_key_id.starts_with('A') {
                    "B"
                } else {
                    "A"
                };
                let akid = format!("{other}{}", &self.access_key_id[1..]);
                let credential = Credential::from_config(akid, self.secret.as_str()).unwrap();
                verifier = self.verifier(credential);
                Some(VerifyErrorKind::UnknownAccessKeyId)
            }
        };
        (verifier, expected)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn signed_requests_verify(case in case_strategy()) {
        let received = case.received();
        let who = case
            .verifier(case.credential())
            .verify(&received.view())
            .map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(who.access_key_id().as_str(), case.access_key_id.as_str());
        prop_assert_eq!(who.region(), case.region.as_str());
    }

    #[test]
    fn any_change_fails_with_the_right_kind(case in case_strategy(), mutation in mutation_strategy()) {
        let mut received = case.received();
        let (verifier, expected) = case.mutate(&mut received, &mutation);
        let result = verifier.verify(&received.view());
        match expected {
            Some(kind) => prop_assert_eq!(result.map(|_| ()).map_err(|e| e.kind()), Err(kind)),
            None => prop_assert!(result.is_ok(), "{:?}", result),
        }
    }

    /// XKS-shaped requests (paths whose characters need no encoding) against the
    /// independent reference computation in `common`.
    #[test]
    fn verifier_agrees_with_the_reference(
        prefix in "[a-z0-9]{1,8}",
        key_id in "[A-Za-z0-9._-]{1,20}",
        operation in prop::sample::select(vec!["encrypt", "decrypt", "metadata"]),
        body in prop::collection::vec(any::<u8>(), 0..800),
        region in "[a-z]{2}-[a-z]{4,9}-[1-9]",
        time in YEAR_2000..YEAR_2100,
        content_type in prop::option::of("[a-z]{1,10}/[a-z]{1,10}"),
    ) {
        prop_assume!(key_id != "." && key_id != "..");
        let path = format!("/{prefix}/kms/xks/v1/keys/{key_id}/{operation}");
        let credential = credential();
        let signer = Signer::new(&credential, region.as_str()).unwrap().with_signed_headers(
            if content_type.is_some() { SignedHeaderSet::ContentTypeHostAndDate } else { SignedHeaderSet::HostAndDate },
        );
        let url = format!("https://{HOST}{path}");
        let mut outgoing = OutgoingRequest::new("POST", &url, &body);
        if let Some(content_type) = &content_type {
            outgoing = outgoing.with_content_type(content_type);
        }
        let signature = signer.sign(&outgoing, at(time)).unwrap();
        let amz_date = signature.x_amz_date().to_owned();

        let mut listed = vec![("host", HOST), ("x-amz-date", amz_date.as_str())];
        if let Some(content_type) = &content_type {
            listed.push(("content-type", content_type.as_str()));
        }
        let reference = Reference {
            secret: SECRET,
            amz_date: &amz_date,
            scope_date: &amz_date[..8],
            region: &region,
            service: "kms-xks-proxy",
            method: "POST",
            canonical_uri: &path,
            canonical_query: "",
            headers: &listed,
            body: &body,
        };
        // aws-sigv4 and the reference produce the same Authorization header...
        prop_assert_eq!(signature.authorization(), reference.authorization(AKID));
        // ...and the verifier accepts it.
        let headers = reference.header_map(AKID);
        let verifier = Verifier::new(CredentialStore::new([credential]).unwrap())
            .with_clock(FixedClock::new(at(time)));
        prop_assert!(verifier.verify(&SignedRequest::new("POST", &path, &headers, &body)).is_ok());
    }

    /// aws-sigv4 used directly, signing extra headers (repeated, with odd spacing) and a
    /// query string: the verifier's header and query canonicalisation match its signer.
    #[test]
    fn verifier_agrees_with_aws_sigv4_on_headers_and_queries(
        extra in prop::collection::vec(("x-[a-z]{1,6}", "( {1,3}|[!-~]{1,4}){0,6}"), 0..5),
        query in prop::collection::vec(
            ("([A-Za-z0-9._~+-]|%[0-9A-F]{2}){0,6}", prop::option::of("([A-Za-z0-9._~+=-]|%[0-9A-F]{2}){0,6}")),
            0..5,
        ),
        path in path_strategy(),
        body in prop::collection::vec(any::<u8>(), 0..256),
        time in YEAR_2000..YEAR_2100,
    ) {
        let query: Vec<String> = query
            .into_iter()
            .map(|(k, v)| match v { Some(v) => format!("{k}={v}"), None => k })
            .collect();
        let query = query.join("&");
        let url = if query.is_empty() { format!("https://{HOST}{path}") } else { format!("https://{HOST}{path}?{query}") };

        let identity: Identity = Credentials::new(AKID, SECRET, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("kms-xks-proxy")
            .time(at(time))
            .settings(SigningSettings::default())
            .build()
            .unwrap()
            .into();
        let signable = SignableRequest::new(
            "POST",
            url.as_str(),
            extra.iter().map(|(name, value)| (name.as_str(), value.as_str())),
            SignableBody::Bytes(&body),
        )
        .unwrap();
        let (instructions, _) = sign(signable, &params).unwrap().into_parts();

        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static(HOST));
        for (name, value) in &extra {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        for (name, value) in instructions.headers() {
            headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let verifier = verifier_at(time);
        let request = SignedRequest::new("POST", &path, &headers, &body)
            .with_query(Some(query.as_str()).filter(|q| !q.is_empty()));
        let result = verifier.verify(&request);
        prop_assert!(result.is_ok(), "{:?} for {}", result, url);
    }
}

#[test]
fn system_clock_rejects_old_signatures() {
    // The default clock is the system clock: a request signed in 2023 is far too old.
    let verifier = Verifier::new(CredentialStore::new([credential()]).unwrap());
    let headers = kms_headers(T0);
    let err = verifier
        .verify(&SignedRequest::new("POST", PATH, &headers, BODY))
        .unwrap_err();
    assert_eq!(err.kind(), VerifyErrorKind::ClockSkew);
    // And one signed now passes.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let headers = kms_headers(i64::try_from(now).unwrap());
    assert!(
        verifier
            .verify(&SignedRequest::new("POST", PATH, &headers, BODY))
            .is_ok()
    );
}
