use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

use super::*;

fn gate() -> Gate {
    Gate {
        state: AtomicUsize::new(0),
    }
}

fn policy(backoff_ms: u64, max_ms: u64) -> ResetPolicy {
    ResetPolicy {
        backoff: Duration::from_millis(backoff_ms),
        backoff_max: Duration::from_millis(max_ms),
        quiesce: Duration::from_secs(1),
    }
}

#[test]
fn the_first_reset_of_a_series_runs_at_once_then_the_wait_doubles_up_to_the_cap() {
    let p = policy(100, 1000);
    let waits: Vec<u128> = (0..8).map(|n| p.wait_after(n).as_millis()).collect();
    assert_eq!(waits, [0, 100, 200, 400, 800, 1000, 1000, 1000]);
    // No overflow however long the series.
    assert_eq!(p.wait_after(u32::MAX), Duration::from_millis(1000));
}

#[test]
fn a_closed_gate_admits_nobody_and_an_open_one_everybody() {
    let gate = gate();
    let first = gate.enter().unwrap();
    let second = gate.enter().unwrap();
    drop((first, second));
    assert!(gate.close(Duration::from_millis(10)));
    assert!(gate.enter().is_none(), "closed for the reset");
    gate.open();
    assert!(gate.enter().is_some());
}

#[test]
fn closing_waits_for_the_calls_in_progress() {
    let gate = Arc::new(gate());
    let (entered, proceed) = (
        Arc::new(std::sync::Barrier::new(2)),
        Duration::from_millis(50),
    );
    let worker = {
        let (gate, entered) = (gate.clone(), entered.clone());
        std::thread::spawn(move || {
            let call = gate.enter().unwrap();
            entered.wait();
            std::thread::sleep(proceed);
            drop(call);
        })
    };
    entered.wait();
    let started = Instant::now();
    assert!(gate.close(Duration::from_secs(5)));
    assert!(
        started.elapsed() >= proceed / 2,
        "closed while a call was in progress"
    );
    worker.join().unwrap();
    gate.open();
}

#[test]
fn closing_gives_up_and_reopens_when_a_call_does_not_end() {
    let gate = gate();
    let stuck = gate.enter().unwrap();
    assert!(!gate.close(Duration::from_millis(20)));
    // Open again: others may call while the stuck call goes on.
    let other = gate.enter();
    assert!(other.is_some());
    drop((other, stuck));
    assert_eq!(gate.state.load(Ordering::Acquire), 0);
}
