use std::sync::Arc;

use super::*;
use crate::credentials::SecretAccessKey;
use crate::v4::{Scope, signing_key};

fn key(n: u8) -> SigningKey {
    let secret =
        SecretAccessKey::new(format!("{}{}", "A".repeat(42), char::from(b'a' + n))).unwrap();
    signing_key(
        &secret,
        &Scope {
            date: "20230101",
            region: "us-east-1",
            service: "kms-xks-proxy",
        },
    )
}

#[test]
fn get_returns_what_was_inserted() {
    let cache = SigningKeyCache::new();
    assert!(cache.get(100, "us-east-1").is_none());
    cache.insert(100, "us-east-1", &key(1));
    assert_eq!(
        cache.get(100, "us-east-1").unwrap().as_bytes(),
        key(1).as_bytes()
    );
    assert!(cache.get(100, "eu-west-1").is_none());
    assert!(cache.get(101, "us-east-1").is_none());
    // A second insert for the same slot changes nothing.
    cache.insert(100, "us-east-1", &key(2));
    assert_eq!(cache.len(), 1);
    assert_eq!(
        cache.get(100, "us-east-1").unwrap().as_bytes(),
        key(1).as_bytes()
    );
}

#[test]
fn old_days_are_evicted() {
    let cache = SigningKeyCache::new();
    cache.insert(100, "us-east-1", &key(1));
    cache.insert(101, "us-east-1", &key(2));
    assert_eq!(cache.len(), 2);
    cache.insert(102, "us-east-1", &key(3));
    assert_eq!(cache.len(), 2);
    assert!(cache.get(100, "us-east-1").is_none());
    assert!(cache.get(101, "us-east-1").is_some());
    assert!(cache.get(102, "us-east-1").is_some());
}

#[test]
fn size_is_bounded() {
    let cache = SigningKeyCache::new();
    for region in 0..50 {
        cache.insert(100 + region % 2, &format!("region-{region}"), &key(1));
        assert!(cache.len() <= CAPACITY);
    }
    assert_eq!(cache.len(), CAPACITY);
    // The newest entry is always kept.
    assert!(cache.get(101, "region-49").is_some());
}

#[test]
fn concurrent_use() {
    let cache = Arc::new(SigningKeyCache::new());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..500_i64 {
                    let region = format!("r-{}", (i + t) % 5);
                    cache.insert(1000 + i / 100, &region, &key(1));
                    if let Some(found) = cache.get(1000 + i / 100, &region) {
                        assert_eq!(found.as_bytes(), key(1).as_bytes());
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert!(cache.len() <= CAPACITY);
}
