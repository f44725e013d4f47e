//! The injected clock used for the `X-Amz-Date` skew check.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::SystemTime;

/// A source of the current time.
///
/// The [`Verifier`](crate::Verifier) asks its clock once per request to check that
/// `X-Amz-Date` is recent. Production code uses [`SystemClock`]; tests inject a
/// [`FixedClock`] (or their own implementation) so the skew checks are deterministic.
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The operating system's wall clock, [`SystemTime::now`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

/// A clock that always returns the same instant. For tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedClock {
    now: SystemTime,
}

// === impl SystemClock ===

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

// === impl FixedClock ===

impl FixedClock {
    /// A clock stopped at `now`.
    pub fn new(now: SystemTime) -> Self {
        Self { now }
    }
}

impl Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.now
    }
}

// === impl Clock for Arc ===

/// Lets a test keep a handle on a clock it shares with a verifier.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
