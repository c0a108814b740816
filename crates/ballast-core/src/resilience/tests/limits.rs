use super::secs;
use crate::config::{ConfigDuration, PoolLimitsConfig};
use crate::resilience::{try_acquire_in_flight, PendingGate, QueueFull};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

fn gate(max_pending: u32, timeout_ms: u64) -> Arc<PendingGate> {
    Arc::new(PendingGate::new(&PoolLimitsConfig {
        max_in_flight_per_instance: Some(1),
        max_pending,
        queue_timeout: ConfigDuration::from_millis(timeout_ms),
    }))
}

#[test]
fn in_flight_slots_stop_at_the_limit() {
    let n = AtomicU32::new(0);
    assert!(try_acquire_in_flight(&n, Some(2)));
    assert!(try_acquire_in_flight(&n, Some(2)));
    assert!(!try_acquire_in_flight(&n, Some(2)));
    assert_eq!(n.load(Ordering::SeqCst), 2);
    n.fetch_sub(1, Ordering::SeqCst);
    assert!(try_acquire_in_flight(&n, Some(2)));
    assert!(try_acquire_in_flight(&n, None), "no limit");
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[test]
fn the_queue_admits_up_to_max_pending_and_frees_on_drop() {
    let g = gate(2, 10_000);
    let a = g.try_enter().expect("first");
    let _b = g.try_enter().expect("second");
    assert_eq!(g.try_enter().expect_err("full"), QueueFull { retry_after: secs(10) });
    assert_eq!(g.pending(), 2);
    drop(a);
    assert!(g.try_enter().is_ok());
    assert_eq!(g.queue_timeout(), secs(10));
}

#[test]
fn zero_pending_fails_fast_with_at_least_one_second() {
    let g = gate(0, 200);
    assert_eq!(g.try_enter().expect_err("fail fast").retry_after, secs(1));
}

#[test]
fn racing_threads_never_exceed_the_limits() {
    let g = gate(5, 1000);
    let slots = Arc::new(AtomicU32::new(0));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (g, slots) = (Arc::clone(&g), Arc::clone(&slots));
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    if let Ok(p) = g.try_enter() {
                        assert!(g.pending() <= 5);
                        drop(p);
                    }
                    if try_acquire_in_flight(&slots, Some(3)) {
                        assert!(slots.load(Ordering::SeqCst) <= 3);
                        slots.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    assert_eq!((g.pending(), slots.load(Ordering::SeqCst)), (0, 0));
}
