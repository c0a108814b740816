//! Polling a connection's side futures (the stop signal, the watchdog timer) only on
//! the turns they woke the task for, not on every turn the connection wakes it.
//!
//! Each poll of a tokio sleep or a watch receiver's `changed()` re-registers the task's
//! waker (atomics, and for the watch a lock), and a busy connection's task wakes a few
//! times per request. The side futures are polled with [`SideWake::waker`] instead of
//! the task's: its wake-ups raise a flag and wake the task, and [`SideWake::due`] tells
//! whether this turn is theirs.

use futures_util::task::AtomicWaker;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

/// What the side futures' wake-ups reach.
#[derive(Debug, Default)]
struct Flag {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The gate in front of one task's side futures.
#[derive(Debug)]
pub struct SideWake {
    flag: Arc<Flag>,
    waker: Waker,
    due: bool,
    task: Option<Waker>,
}

impl Default for SideWake {
    fn default() -> Self {
        let flag = Arc::new(Flag::default());
        SideWake { waker: Waker::from(Arc::clone(&flag)), flag, due: true, task: None }
    }
}

impl SideWake {
    /// Makes the next [`due`](Self::due) true: a new side future must be polled once
    /// to register its waker.
    pub fn arm(&mut self) {
        self.due = true;
    }

    /// Whether the side futures are to be polled in this turn of the task `cx` belongs
    /// to: when one of them woke (or the task's waker changed, or after
    /// [`arm`](Self::arm)). Then their wake-ups are routed to `cx`'s waker; poll them
    /// with a context on [`waker`](Self::waker).
    pub fn due(&mut self, cx: &Context<'_>) -> bool {
        if !self.task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.task = Some(cx.waker().clone());
            self.due = true;
        }
        let fired = self.flag.fired.load(Ordering::Acquire) && self.flag.fired.swap(false, Ordering::AcqRel);
        if !(fired || std::mem::take(&mut self.due)) {
            return false;
        }
        // Registered before the side futures are polled: a wake-up after their poll
        // finds the task's waker.
        self.flag.task.register(cx.waker());
        true
    }

    /// The waker to poll the side futures with.
    pub fn waker(&self) -> &Waker {
        &self.waker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn due_once_after_arming_then_only_after_a_side_wake_which_wakes_the_task() {
        let count = Arc::new(Count::default());
        let task = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&task);
        let mut gate = SideWake::default();
        assert!(gate.due(&cx), "the first turn polls the side futures");
        assert!(!gate.due(&cx), "then not, while nothing woke them");
        gate.waker().wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a side wake-up wakes the task");
        assert!(gate.due(&cx));
        assert!(!gate.due(&cx));
        gate.arm();
        assert!(gate.due(&cx));
        assert!(!gate.due(&cx));
    }

    #[test]
    fn a_new_task_waker_makes_the_side_futures_due() {
        let a = Waker::from(Arc::new(Count::default()));
        let b_count = Arc::new(Count::default());
        let b = Waker::from(Arc::clone(&b_count));
        let mut gate = SideWake::default();
        assert!(gate.due(&Context::from_waker(&a)));
        assert!(gate.due(&Context::from_waker(&b)), "another task waker re-registers");
        gate.waker().wake_by_ref();
        assert_eq!(b_count.0.load(Ordering::SeqCst), 1, "the new waker is the one woken");
    }
}
