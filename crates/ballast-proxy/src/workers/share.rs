//! Two busy workers on one core take short turns instead of tick-long ones.
//!
//! The kernel switches between two threads that never sleep only at a scheduler tick
//! (4 ms at 250 Hz, a common setting). When the scheduler puts two busy workers on the
//! same core, each then runs a whole tick while the other's connections wait: measured
//! at 2 threads beside wrk and nginx on a 2-core machine, about 150 turns of 4 ms in 3 s
//! and a p99 of 5 ms where HAProxy's threads (which sleep more and so get switched on
//! wake-up) had none and a p99 of 3 ms.
//!
//! So on a 1 ms beat an active worker notes the core it runs on, and gives the core up
//! (`sched_yield`) when another active worker last noted the same one. It never yields
//! because of anything else on the core: giving the core to other programs would only
//! lengthen its own wait. The check that finds the worker has just waited for its core
//! does not yield. An idle worker notes no core and looks again only every 50 ms: an idle
//! proxy's worker then wakes about 35 times a second (measured: the 20 checks and the
//! timer wheel's own wake-ups), where it woke never without this.
//!
//! Measured in the peer benchmark at 2 threads (HTTP/1.1, 6 runs): p99 0.86× HAProxy's
//! (median; 0.82–1.07), against 1.70× without this. Checking more often made it worse
//! (every 0.5 ms by timer; at request starts every 0.25–1 ms, p99 14–28 ms), most likely
//! because each `sched_yield` pushes the yielder's scheduling deadline back and frequent
//! yields starve it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often an active worker checks whether it shares its core.
const ACTIVE_CHECK: Duration = Duration::from_millis(1);
/// How often an idle worker looks again.
const IDLE_CHECK: Duration = Duration::from_millis(50);
/// Consecutive quiet checks (see [`Pace`]) after which a worker counts as idle.
const QUIET_CHECKS_TO_IDLE: u32 = 20;
/// How much later than asked a worker must wake to have waited for a core (a timer
/// rounds up to its millisecond and fires up to a millisecond late on its own).
const LATE: Duration = Duration::from_millis(3);
/// No core noted (the worker is idle, or not known yet).
const NONE: usize = usize::MAX;

/// The core each active worker last ran on, one slot per worker.
#[derive(Debug)]
pub struct Cores(Vec<AtomicUsize>);

impl Cores {
    /// Slots for `workers` workers, none noted.
    pub fn new(workers: usize) -> Self {
        Cores((0..workers).map(|_| AtomicUsize::new(NONE)).collect())
    }

    /// Notes that worker `me` is active on `core`; whether another active worker last
    /// noted the same core.
    fn note_active(&self, me: usize, core: usize) -> bool {
        self.0[me].store(core, Ordering::Relaxed);
        self.0.iter().enumerate().any(|(other, c)| other != me && c.load(Ordering::Relaxed) == core)
    }

    /// Notes that worker `me` is idle: no other worker yields because of it.
    fn note_idle(&self, me: usize) {
        self.0[me].store(NONE, Ordering::Relaxed);
    }
}

/// What a worker saw between two checks.
#[derive(Debug, Clone, Copy)]
struct Interval {
    /// The beat it was on: the check was due at most this long after the last one
    /// (sooner when it caught up with a missed beat).
    asked: Duration,
    /// How long it was until the check ran.
    wall: Duration,
    /// How much CPU the worker used in that time.
    cpu: Duration,
}

impl Interval {
    /// Whether the check ran [`LATE`]: the worker waited for a core (or ran tasks that
    /// long without a pause). Either way it is not idle.
    fn late(&self) -> bool {
        self.wall > self.asked + LATE
    }

    /// Whether the worker ran under a tenth of the time and woke on time.
    fn quiet(&self) -> bool {
        self.cpu * 10 < self.wall && !self.late()
    }
}

/// Whether a worker is active or idle, from its recent [`Interval`]s.
///
/// Only a run of quiet intervals makes it idle, so a loaded worker that the scheduler
/// happens to give little of one millisecond stays active; any interval that is not
/// quiet makes it active again.
#[derive(Debug, Default)]
struct Pace {
    quiet_checks: u32,
}

impl Pace {
    /// Whether the worker is idle after `interval`.
    fn idle_after(&mut self, interval: Interval) -> bool {
        self.quiet_checks = if interval.quiet() { self.quiet_checks.saturating_add(1) } else { 0 };
        self.quiet_checks >= QUIET_CHECKS_TO_IDLE
    }
}

/// The CPU time this thread has used so far.
fn thread_cpu() -> Option<Duration> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok()?;
    Some(Duration::from(t))
}

/// Runs on worker `me`'s runtime for as long as the runtime lives: see the module doc.
pub async fn take_short_turns(me: usize, cores: std::sync::Arc<Cores>) {
    let Some(mut cpu_before) = thread_cpu() else { return };
    let mut pace = Pace::default();
    let mut asked = ACTIVE_CHECK;
    let mut due = tokio::time::Instant::now();
    loop {
        let started = tokio::time::Instant::now();
        // On a fixed beat: a timer set `asked` from now fires on the first millisecond
        // tick after that, so turns grew to 1–2 ms (p99 3.7–3.8 ms against 2.9–3.0 on the
        // beat). A beat missed (the worker waited for its core) is checked at once; a
        // new beat from now instead gave p99 3.1–3.3 ms.
        due = (due + asked).max(started);
        tokio::time::sleep_until(due).await;
        let Some(cpu_now) = thread_cpu() else { return };
        let interval = Interval { asked, wall: started.elapsed(), cpu: cpu_now.saturating_sub(cpu_before) };
        cpu_before = cpu_now;
        if pace.idle_after(interval) {
            cores.note_idle(me);
            asked = IDLE_CHECK;
            continue;
        }
        asked = ACTIVE_CHECK;
        // Without the core to compare, there is nothing to do (the call does not fail
        // where it is supported).
        let Ok(core) = nix::sched::sched_getcpu() else { return };
        // A worker that has just waited for its core does not give it back at once.
        if cores.note_active(me, core) && !interval.late() {
            let _ = nix::sched::sched_yield();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_yields_only_to_another_active_worker_on_its_core() {
        let cores = Cores::new(3);
        assert!(!cores.note_active(0, 1), "alone on core 1");
        assert!(!cores.note_active(1, 0), "core 0 is nobody else's");
        assert!(cores.note_active(2, 1), "worker 0 is busy on core 1");
        cores.note_idle(0);
        assert!(!cores.note_active(2, 1), "worker 0 went idle");
        assert!(cores.note_active(2, 0), "worker 1 is busy on core 0");
    }

    fn interval(cpu_us: u64, wall_ms: u64, asked_ms: u64) -> Interval {
        let ms = Duration::from_millis;
        Interval { asked: ms(asked_ms), wall: ms(wall_ms), cpu: Duration::from_micros(cpu_us) }
    }

    #[test]
    fn an_interval_is_late_past_the_timer_slack_and_quiet_under_a_tenth() {
        assert!(!interval(0, 2, 1).late(), "a timer a millisecond late");
        assert!(interval(0, 5, 1).late(), "waited 4 ms for the core");
        assert!(interval(99, 1, 1).quiet());
        assert!(!interval(100, 1, 1).quiet(), "ran a tenth of the time");
        assert!(!interval(0, 5, 1).quiet(), "a late worker is not quiet");
        assert!(interval(4_999, 50, 50).quiet());
    }

    #[test]
    fn only_a_run_of_quiet_checks_makes_a_worker_idle() {
        let mut pace = Pace::default();
        for _ in 1..QUIET_CHECKS_TO_IDLE {
            assert!(!pace.idle_after(interval(50, 1, 1)), "quiet, but not for long yet");
        }
        assert!(pace.idle_after(interval(50, 1, 1)), "quiet for the whole run");
        assert!(pace.idle_after(interval(0, 50, 50)), "still quiet at the idle pace");
        assert!(!pace.idle_after(interval(6_000, 50, 50)), "ran 12% of the time: active again");
        let mut pace = Pace::default();
        for _ in 1..QUIET_CHECKS_TO_IDLE {
            pace.idle_after(interval(0, 1, 1));
        }
        assert!(!pace.idle_after(interval(0, 5, 1)), "woke late: it waited for the core");
        assert!(!pace.idle_after(interval(0, 1, 1)), "the run starts over");
    }

    #[tokio::test]
    async fn the_turn_taker_notes_its_core_while_busy_and_clears_it_once_idle() {
        let cores = std::sync::Arc::new(Cores::new(2));
        let turns = tokio::spawn(take_short_turns(0, cores.clone()));
        // Keep the thread busy for a few checks, then let it idle.
        let until = std::time::Instant::now() + Duration::from_millis(20);
        while std::time::Instant::now() < until {
            tokio::task::yield_now().await;
        }
        assert_ne!(cores.0[0].load(Ordering::Relaxed), NONE, "a busy worker notes its core");
        // Idle after a run of quiet checks (a loaded test machine may break a run: wait).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while cores.0[0].load(Ordering::Relaxed) != NONE {
            assert!(std::time::Instant::now() < deadline, "an idle worker notes no core");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!turns.is_finished(), "it keeps running while idle, at the idle pace");
        turns.abort();
    }
}
