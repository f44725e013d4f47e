//! The SigV4 Authorization header parser never panics, and what it accepts is
//! internally consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = xks_sigv4::parse_authorization(text) {
        assert!(!parsed.access_key_id().is_empty());
        assert!(text.contains(parsed.access_key_id()));
    }
});
