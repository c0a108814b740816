//! Worker threads for the sharded mode: N single-threaded tokio runtimes, each accepting
//! on its own `SO_REUSEPORT` socket of every listener, so a connection lives on one
//! thread from accept to close and no task migrates or wakes across threads.
//!
//! With [`crate::ProxyServer::start`] instead, the caller's runtime (e.g. one
//! multi-thread runtime) runs everything.
//!
//! With two workers or more, busy workers that the kernel puts on one core take short
//! turns there ([`share`]).

mod share;

use std::cell::Cell;
use std::io;
use std::sync::mpsc;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The index of the worker running the current thread (0 outside workers).
pub fn current_worker() -> usize {
    WORKER.with(Cell::get)
}

/// N threads, each driving a current-thread runtime until [`Workers::stop`].
#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Workers {
    /// Starts `n` (at least 1) worker threads named `ballast-worker-{i}`.
    pub fn start(n: usize) -> io::Result<Workers> {
        let mut w = Workers { handles: Vec::new(), stops: Vec::new(), threads: Vec::new() };
        let n = n.max(1);
        let cores = std::sync::Arc::new(share::Cores::new(n));
        for i in 0..n {
            let cores = cores.clone();
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            let (ready, is_ready) = mpsc::channel();
            let thread = std::thread::Builder::new().name(format!("ballast-worker-{i}")).spawn(move || {
                WORKER.with(|c| c.set(i));
                let _ = ready.send(runtime.handle().clone());
                runtime.block_on(async {
                    if n > 1 {
                        tokio::spawn(share::take_short_turns(i, cores));
                    }
                    let _ = stopped.await;
                });
            })?;
            let handle = is_ready.recv().map_err(|_| io::Error::other("worker thread died at start"))?;
            w.handles.push(handle);
            w.stops.push(stop);
            w.threads.push(thread);
        }
        Ok(w)
    }

    /// The workers' runtime handles, in worker order.
    pub fn handles(&self) -> &[Handle] {
        &self.handles
    }

    /// Stops every worker runtime (tasks still running are dropped: drain with
    /// [`crate::ProxyServer::shutdown`] first) and joins the threads.
    pub fn stop(self) {
        for s in self.stops {
            let _ = s.send(());
        }
        for t in self.threads {
            let _ = t.join();
        }
    }
}
