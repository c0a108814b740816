//! TLS for HTTPS listeners: a rustls `ServerConfig` whose certificate is chosen by SNI
//! among the listener's PEM files, offering `h2` and `http/1.1` by ALPN.

use crate::error::ProxyError;
use ballast_core::config::TlsCertConfig;
use rustls::crypto::ring;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

/// Picks a certificate by SNI: exact name, then a `*.suffix` wildcard covering one
/// label, then the default (the first certificate without names, else the first).
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl SniResolver {
    fn select(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.select(hello.server_name())
    }
}

/// Builds the listener's TLS configuration from its certificate entries.
pub fn server_config(balancer: &str, certs: &[TlsCertConfig]) -> Result<rustls::ServerConfig, ProxyError> {
    let err = |reason: String| ProxyError::Tls { balancer: balancer.to_string(), reason };
    let mut resolver = SniResolver { exact: HashMap::new(), wildcard: HashMap::new(), default: None };
    let mut first = None;
    for (i, c) in certs.iter().enumerate() {
        let key = Arc::new(load_certified_key(c).map_err(|r| err(format!("tls[{i}]: {r}")))?);
        first.get_or_insert_with(|| key.clone());
        if c.server_names.is_empty() && resolver.default.is_none() {
            resolver.default = Some(key.clone());
        }
        for name in &c.server_names {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => resolver.wildcard.insert(parent.to_string(), key.clone()),
                None => resolver.exact.insert(name, key.clone()),
            };
        }
    }
    if resolver.default.is_none() {
        resolver.default = first;
    }
    if resolver.default.is_none() {
        return Err(err("no certificate configured".into()));
    }
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| err(format!("protocol versions: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn load_certified_key(c: &TlsCertConfig) -> Result<CertifiedKey, String> {
    let cert_pem = std::fs::read(&c.cert).map_err(|e| format!("cert {:?}: {e}", c.cert))?;
    let chain: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cert {:?}: invalid PEM: {e}", c.cert))?;
    if chain.is_empty() {
        return Err(format!("cert {:?}: no CERTIFICATE block", c.cert));
    }
    let key_pem = std::fs::read(&c.key).map_err(|e| format!("key {:?}: {e}", c.key))?;
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| format!("key {:?}: invalid PEM: {e}", c.key))?
        .ok_or_else(|| format!("key {:?}: no PRIVATE KEY block", c.key))?;
    let signing = ring::sign::any_supported_type(&key).map_err(|e| format!("key {:?}: {e}", c.key))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| format!("cert {:?} and key {:?} do not match: {e}", c.cert, c.key))?;
    Ok(certified)
}
