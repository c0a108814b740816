//! The proxy's time base for live per-backend stats. The stats themselves are written
//! through `BackendStats::on_request_start` / `on_request_end` (ballast-core), so the
//! balancers read exactly what the proxy recorded.

use std::time::Duration;

/// The proxy's monotonic time base: `now()` is the time since the proxy started, the
/// origin every `BackendStats` timestamp and `PickContext::now` share. It reads tokio's
/// clock, so tests with a paused clock control it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: tokio::time::Instant,
}

impl Clock {
    /// A clock whose origin is this instant.
    pub fn start() -> Self {
        Clock { origin: tokio::time::Instant::now() }
    }

    /// The origin instant (for tasks that take it, like the latency prober).
    pub fn origin(&self) -> tokio::time::Instant {
        self.origin
    }

    /// Time since the origin.
    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
