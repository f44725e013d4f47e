//! Route parsing never panics, and every accepted path is written back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xks_protocol::Route;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(route) = Route::parse(path) {
        assert_eq!(route.to_string(), path);
        assert!(path.starts_with(route.prefix()));
    }
});
