//! The HTTP/1.1 request-header read limit without a tokio timer per request.
//!
//! hyper enforces `header_read_timeout` with a sleep from the connection's [`Timer`]: it
//! creates one each time it starts waiting for a request head and drops it when the head
//! is in. With a tokio sleep that is a timer-wheel insert and removal per request. The
//! [`HeadTimer`] given to hyper instead hands out [`HeadSleep`]s that only record their
//! deadline in the connection's [`HeadWatch`] (atomics, no wheel); the connection's one
//! watchdog timer ([`super::serve`]) calls [`HeadWatch::check`], which either reports the
//! deadline still ahead (the watchdog sleeps until it) or marks it passed, after which the
//! sleep is ready the next time hyper polls it.
//!
//! A [`HeadSleep`] never registers a waker: it relies on being polled by the same task as
//! the watchdog, which holds for HTTP/1.1 (hyper drives the connection inside
//! [`super::serve`]'s task, and the watchdog wakes that task).

use hyper::rt::{Sleep, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The header-read deadline of one connection, shared by its [`HeadTimer`] (which arms
/// it) and its watchdog (which checks it).
#[derive(Debug)]
pub struct HeadWatch {
    /// Time origin of the offsets below.
    base: Instant,
    /// The armed deadline as nanoseconds after `base`, plus one; 0 when none is armed.
    armed: AtomicU64,
    /// The watchdog has seen the clock at this offset (same encoding): a deadline at or
    /// before it has passed.
    passed: AtomicU64,
}

/// What [`HeadWatch::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadCheck {
    /// No request head is being waited for.
    Unarmed,
    /// A head is awaited until this deadline, still ahead.
    Until(Instant),
    /// The deadline has passed: hyper ends the connection the next time it polls.
    Expired,
}

impl HeadWatch {
    /// A watch with nothing armed, its offsets counted from `base`.
    pub fn new(base: Instant) -> Self {
        HeadWatch { base, armed: AtomicU64::new(0), passed: AtomicU64::new(0) }
    }

    fn offset(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.base).as_nanos();
        u64::try_from(ns).unwrap_or(u64::MAX - 1) + 1
    }

    fn instant(&self, offset: u64) -> Instant {
        let after = Duration::from_nanos(offset.saturating_sub(1));
        // Past what the platform's clock can hold: a year from the base is as good.
        self.base.checked_add(after).unwrap_or(self.base + Duration::from_secs(365 * 86_400))
    }

    /// Looks at the armed deadline at `now` (the watchdog's clock reading). A deadline at
    /// or before `now` is marked passed, so its [`HeadSleep`] becomes ready.
    pub fn check(&self, now: Instant) -> HeadCheck {
        let armed = self.armed.load(Ordering::Acquire);
        if armed == 0 {
            return HeadCheck::Unarmed;
        }
        let now = self.offset(now);
        if armed <= now {
            self.passed.fetch_max(now, Ordering::Release);
            HeadCheck::Expired
        } else {
            HeadCheck::Until(self.instant(armed))
        }
    }
}

/// The [`Timer`] of one HTTP/1.1 connection: its sleeps are [`HeadSleep`]s on the
/// connection's [`HeadWatch`]. hyper uses an HTTP/1.1 server timer only for
/// `header_read_timeout`.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    watch: Arc<HeadWatch>,
}

impl HeadTimer {
    /// A timer arming `watch`.
    pub fn new(watch: Arc<HeadWatch>) -> Self {
        HeadTimer { watch }
    }
}

impl HeadTimer {
    fn arm(&self, deadline: u64) -> Pin<Box<dyn Sleep>> {
        self.watch.armed.store(deadline, Ordering::Release);
        Box::pin(HeadSleep { watch: Arc::clone(&self.watch), deadline })
    }
}

impl Timer for HeadTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        match self.now().checked_add(duration) {
            Some(deadline) => self.sleep_until(deadline),
            None => self.arm(u64::MAX),
        }
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        self.arm(self.watch.offset(deadline))
    }

    fn now(&self) -> Instant {
        // tokio's clock, so tests with a paused clock and the watchdog agree.
        tokio::time::Instant::now().into_std()
    }
}

/// A header-read deadline armed in a [`HeadWatch`]; ready once the watchdog has seen it
/// pass. Dropping it disarms the watch.
#[derive(Debug)]
pub struct HeadSleep {
    watch: Arc<HeadWatch>,
    deadline: u64,
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.watch.passed.load(Ordering::Acquire) >= self.deadline {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Sleep for HeadSleep {}

impl Drop for HeadSleep {
    fn drop(&mut self) {
        // Only this sleep's own deadline: a newer sleep may have armed the watch since.
        let _ = self.watch.armed.compare_exchange(self.deadline, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll(s: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        s.as_mut().poll(&mut Context::from_waker(Waker::noop()))
    }

    #[test]
    fn a_sleep_arms_the_watch_and_is_ready_only_once_the_watchdog_saw_its_deadline() {
        let base = Instant::now();
        let watch = Arc::new(HeadWatch::new(base));
        let timer = HeadTimer::new(Arc::clone(&watch));
        assert_eq!(watch.check(base), HeadCheck::Unarmed);
        let deadline = base + Duration::from_secs(10);
        let mut s = timer.sleep_until(deadline);
        assert_eq!(watch.check(base + Duration::from_secs(3)), HeadCheck::Until(deadline));
        assert_eq!(poll(&mut s), Poll::Pending, "not ready before the watchdog saw the deadline");
        assert_eq!(watch.check(deadline - Duration::from_nanos(1)), HeadCheck::Until(deadline));
        assert_eq!(poll(&mut s), Poll::Pending);
        assert_eq!(watch.check(deadline), HeadCheck::Expired);
        assert_eq!(poll(&mut s), Poll::Ready(()));
        drop(s);
        assert_eq!(watch.check(deadline + Duration::from_secs(1)), HeadCheck::Unarmed, "dropping disarms");
    }

    #[test]
    fn a_new_deadline_is_not_expired_by_an_older_check_and_an_old_sleep_does_not_disarm_it() {
        let base = Instant::now();
        let watch = Arc::new(HeadWatch::new(base));
        let timer = HeadTimer::new(Arc::clone(&watch));
        let first = timer.sleep_until(base + Duration::from_secs(1));
        assert_eq!(watch.check(base + Duration::from_secs(2)), HeadCheck::Expired);
        let later = base + Duration::from_secs(12);
        let mut second = timer.sleep_until(later);
        drop(first);
        assert_eq!(watch.check(base + Duration::from_secs(5)), HeadCheck::Until(later));
        assert_eq!(poll(&mut second), Poll::Pending, "the earlier expiry does not cover the new deadline");
        drop(second);
        assert_eq!(watch.check(later), HeadCheck::Unarmed);
    }

    #[test]
    fn deadlines_before_the_base_or_far_ahead_are_clamped() {
        let base = Instant::now() + Duration::from_secs(5);
        let watch = Arc::new(HeadWatch::new(base));
        let timer = HeadTimer::new(Arc::clone(&watch));
        let mut early = timer.sleep_until(base - Duration::from_secs(1));
        assert_eq!(watch.check(base), HeadCheck::Expired, "a deadline before the base counts as the base");
        assert_eq!(poll(&mut early), Poll::Ready(()));
        drop(early);
        let far = timer.sleep(Duration::from_secs(u64::MAX / 4));
        assert!(matches!(watch.check(base), HeadCheck::Until(_)));
        drop(far);
    }
}
