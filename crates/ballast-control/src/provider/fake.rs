//! The provider test double: instances are records, addresses are made up unless given,
//! and failures are scripted. For controller tests that do not need real processes.

use super::{BoxFuture, Exit, Instance, Provider, ProviderError};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
struct State {
    instances: Vec<Instance>,
    next: u32,
    fail_creates: u32,
    exits: Vec<Exit>,
    addresses: Vec<String>,
    calls: Vec<String>,
}

/// An in-memory provider. `create` hands out the addresses given to
/// [`FakeProvider::with_addresses`] in turn (then `127.0.0.1:<40000+n>`).
#[derive(Debug, Default)]
pub struct FakeProvider {
    state: Mutex<State>,
}

impl FakeProvider {
    /// No instances, no failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates hand out these addresses first.
    pub fn with_addresses(addresses: Vec<String>) -> Self {
        let p = Self::default();
        p.lock().addresses = addresses;
        p
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `n` creates fail.
    pub fn fail_creates(&self, n: u32) {
        self.lock().fail_creates = n;
    }

    /// Instance `id` vanishes and is reported by [`Provider::take_exits`] with `status`.
    pub fn crash(&self, id: &str, status: &str) {
        let mut s = self.lock();
        s.instances.retain(|i| i.id != id);
        s.exits.push(Exit { id: id.into(), status: status.into() });
    }

    /// Every call so far, e.g. `create ok fake-1`, `create failed`, `destroy fake-1`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }
}

impl Provider for FakeProvider {
    fn kind(&self) -> &'static str {
        "fake"
    }
    fn create(&self) -> BoxFuture<'_, Result<Instance, ProviderError>> {
        Box::pin(async {
            let mut s = self.lock();
            if s.fail_creates > 0 {
                s.fail_creates -= 1;
                s.calls.push("create failed".into());
                return Err(ProviderError::Failed { action: "create", reason: "scripted failure".into() });
            }
            s.next += 1;
            let n = s.next;
            let address = if s.addresses.is_empty() { format!("127.0.0.1:{}", 40_000 + n) } else { s.addresses.remove(0) };
            let i = Instance { id: format!("fake-{n}"), address };
            s.calls.push(format!("create ok {}", i.id));
            s.instances.push(i.clone());
            Ok(i)
        })
    }
    fn destroy<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let mut s = self.lock();
            s.calls.push(format!("destroy {id}"));
            let before = s.instances.len();
            s.instances.retain(|i| i.id != id);
            if s.instances.len() == before {
                return Err(ProviderError::UnknownInstance(id.into()));
            }
            Ok(())
        })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, ProviderError>> {
        Box::pin(async { Ok(self.lock().instances.clone()) })
    }
    fn take_exits(&self) -> Vec<Exit> {
        std::mem::take(&mut self.lock().exits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_failures_then_success() {
        let p = FakeProvider::new();
        p.fail_creates(2);
        assert!(p.create().await.is_err());
        assert!(p.create().await.is_err());
        let i = p.create().await.expect("third works");
        assert_eq!(p.list().await.expect("list"), vec![i.clone()]);
        p.crash(&i.id, "signal: 9");
        assert_eq!(p.take_exits(), vec![Exit { id: i.id.clone(), status: "signal: 9".into() }]);
        assert!(p.take_exits().is_empty());
        assert_eq!(p.destroy(&i.id).await, Err(ProviderError::UnknownInstance(i.id.clone())));
        assert_eq!(p.calls(), ["create failed", "create failed", "create ok fake-1", "destroy fake-1"]);
    }
}
