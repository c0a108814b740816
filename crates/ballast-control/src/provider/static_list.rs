//! The `static` provider: the pool's fixed instance list. Balancing only: it never
//! creates or destroys, so an autoscaled pool needs another kind.

use super::{BoxFuture, Instance, Provider, ProviderError};

/// Fixed addresses; the id of each instance is its address.
#[derive(Debug, Clone)]
pub struct StaticProvider {
    instances: Vec<Instance>,
}

impl StaticProvider {
    /// A provider over `addresses` (`host:port` each, as validated by the config).
    pub fn new(addresses: impl IntoIterator<Item = String>) -> Self {
        let instances = addresses.into_iter().map(|a| Instance { id: a.clone(), address: a }).collect();
        StaticProvider { instances }
    }
}

impl Provider for StaticProvider {
    fn kind(&self) -> &'static str {
        "static"
    }
    fn create(&self) -> BoxFuture<'_, Result<Instance, ProviderError>> {
        Box::pin(async { Err(ProviderError::Unsupported { kind: "static", action: "create instances" }) })
    }
    fn destroy<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Err(ProviderError::Unsupported { kind: "static", action: "destroy instances" }) })
    }
    fn list(&self) -> BoxFuture<'_, Result<Vec<Instance>, ProviderError>> {
        Box::pin(async { Ok(self.instances.clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_its_addresses_and_refuses_changes() {
        let p = StaticProvider::new(["127.0.0.1:1".to_string(), "127.0.0.1:2".to_string()]);
        let list = p.list().await.expect("list");
        assert_eq!(list.iter().map(|i| i.address.as_str()).collect::<Vec<_>>(), ["127.0.0.1:1", "127.0.0.1:2"]);
        let err = p.create().await.expect_err("static");
        assert_eq!(err.to_string(), "the static provider cannot create instances");
        assert!(p.destroy("127.0.0.1:1").await.is_err());
    }
}
