//! Request bodies: parsing and validation of all four XKS requests never panics, and
//! every accepted request survives serialize -> parse unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xks_protocol::{DecryptRequest, EncryptRequest, HealthRequest, Limits, MetadataRequest};

fn round_trip<T, E>(data: &[u8], parse: impl Fn(&[u8]) -> Result<T, E>)
where
    T: serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(request) = parse(data) {
        let json = serde_json::to_vec(&request).expect("a parsed request serializes");
        let again = parse(&json).unwrap_or_else(|_| panic!("re-parse of {request:?}"));
        assert_eq!(again, request);
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    round_trip(data, |b| HealthRequest::from_json(b, &limits));
    round_trip(data, |b| MetadataRequest::from_json(b, &limits));
    round_trip(data, |b| EncryptRequest::from_json(b, &limits));
    round_trip(data, |b| DecryptRequest::from_json(b, &limits));
});
