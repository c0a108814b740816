use super::secs;
use crate::resilience::{EventCounts, EventKind, EventLog, Health, HealthEvent};

fn ev(instance: &str) -> HealthEvent {
    HealthEvent::new(
        secs(1),
        "api",
        instance,
        EventKind::Health { from: Health::Healthy, to: Health::Unhealthy },
        "3 failed checks in a row (fall 3)",
        EventCounts { consecutive_successes: 0, consecutive_failures: 3 },
    )
}

#[test]
fn the_ring_keeps_the_newest_and_numbers_them() {
    let log = EventLog::new(3);
    assert!(log.is_empty());
    for i in 0..5 {
        assert_eq!(log.push(ev(&format!("i{i}"))), i + 1);
    }
    assert_eq!(log.len(), 3);
    assert_eq!(log.dropped(), 2);
    let ids: Vec<_> = log.recent(10).into_iter().map(|e| (e.seq, e.instance)).collect();
    assert_eq!(ids, vec![(3, "i2".to_string()), (4, "i3".to_string()), (5, "i4".to_string())]);
    assert_eq!(log.recent(1)[0].seq, 5);
    assert_eq!(log.since(3).iter().map(|e| e.seq).collect::<Vec<_>>(), vec![4, 5]);
    assert!(log.since(5).is_empty());
}

#[test]
fn a_zero_capacity_keeps_one() {
    let log = EventLog::new(0);
    log.push(ev("a"));
    log.push(ev("b"));
    assert_eq!(log.capacity(), 1);
    assert_eq!(log.recent(5)[0].instance, "b");
}

#[test]
fn events_serialise_with_a_tagged_kind() {
    let json = serde_json::to_value(ev("i1")).expect("serialises");
    assert_eq!(json["kind"]["type"], "health");
    assert_eq!(json["kind"]["to"], "unhealthy");
    assert_eq!(json["counts"]["consecutive_failures"], 3);
}

#[test]
fn transitions_become_log_entries() {
    use crate::config::CircuitBreakerConfig;
    use crate::resilience::{CircuitState, CircuitTransition, OutlierTransition};
    const RATE_REASON: &str = "5 failures in a row (failure_threshold 5), or at least 50% of at least 20 requests in 10s \
                               failed (failure_rate_threshold 0.5, min_requests 20)";
    let cb = CircuitBreakerConfig::default();
    let t = CircuitTransition { from: CircuitState::Closed, to: CircuitState::Open };
    let e = t.event(secs(3), "api", "i-1", &cb);
    assert_eq!((e.at, e.pool.as_str(), e.instance.as_str()), (secs(3), "api", "i-1"));
    assert_eq!(e.kind, EventKind::Circuit { from: CircuitState::Closed, to: CircuitState::Open });
    assert_eq!((e.counts.consecutive_failures, e.reason.as_str()), (5, RATE_REASON));
    let t = CircuitTransition { from: CircuitState::Open, to: CircuitState::HalfOpen };
    assert_eq!(t.event(secs(33), "api", "i-1", &cb).reason, "recovery_timeout 30s passed; letting trial requests through");
    let o = OutlierTransition::Ejected { duration: secs(30), ejections: 2, consecutive_failures: 5 };
    let e = o.event(secs(4), "api", "i-2");
    assert_eq!(e.kind, EventKind::Ejected { for_ms: 30_000, ejections: 2 });
    assert_eq!(e.counts.consecutive_failures, 5);
    assert_eq!(OutlierTransition::Returned.event(secs(34), "api", "i-2").reason, "ejection time passed");
}
