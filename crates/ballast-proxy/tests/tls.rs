//! HTTPS listeners: the certificate is chosen by SNI (exact and wildcard names), ALPN
//! negotiates h2 or http/1.1, and bad certificate files are refused with the file named.

mod common;

use common::*;
use http::{Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpStream;

struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    alpha: CertificateDer<'static>,
    beta: CertificateDer<'static>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A CA and two leaf certificates (`alpha.test`, `*.beta.test`) written as PEM files.
fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("ballast-tls-{}-{}", std::process::id(), fastrand::u64(..)));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let leaf = |name: &str, file: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_string()]).expect("params").signed_by(&key, &ca).expect("sign");
        std::fs::write(dir.join(format!("{file}.crt")), cert.pem()).expect("write cert");
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).expect("write key");
        cert.der().clone()
    };
    let alpha = leaf("alpha.test", "alpha");
    let beta = leaf("*.beta.test", "beta");
    Pki { ca: ca.der().clone(), alpha, beta, dir }
}

fn tls_toml(pki: &Pki) -> String {
    let d = pki.dir.display();
    format!(
        "[[balancer.tls]]\ncert = \"{d}/alpha.crt\"\nkey = \"{d}/alpha.key\"\nserver_names = [\"alpha.test\"]\n\
         [[balancer.tls]]\ncert = \"{d}/beta.crt\"\nkey = \"{d}/beta.key\"\nserver_names = [\"*.beta.test\"]\n"
    )
}

async fn connect(
    addr: SocketAddr,
    pki: &Pki,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("root");
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).expect("server name");
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await
}

#[tokio::test]
async fn sni_selects_the_certificate_and_alpn_h2_is_served() {
    let pki = pki();
    let b = echo("a").await;
    let (_proxy, addr) = proxy(&simple_config(&[b.addr], &tls_toml(&pki), "")).await;

    let tls = connect(addr, &pki, "alpha.test", &[b"h2", b"http/1.1"]).await.expect("handshake alpha");
    let (_, session) = tls.get_ref();
    assert_eq!(session.peer_certificates().expect("certs")[0], pki.alpha);
    assert_eq!(session.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls)).await.expect("h2");
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::get("https://alpha.test/secure").body(empty()).expect("req"))
        .await
        .expect("response");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let got = collect(resp).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.seen_header("x-forwarded-proto"), ["https"]);

    let tls = connect(addr, &pki, "www.beta.test", &[b"http/1.1"]).await.expect("handshake beta");
    let (_, session) = tls.get_ref();
    assert_eq!(session.peer_certificates().expect("certs")[0], pki.beta, "wildcard name");
    assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.expect("h1");
    tokio::spawn(conn);
    let resp = sender
        .send_request(Request::get("/x").header("host", "www.beta.test").body(empty()).expect("req"))
        .await
        .expect("response");
    assert_eq!(collect(resp).await.status, StatusCode::OK);

    // An unknown name gets the default (first) certificate, which does not cover it.
    let err = connect(addr, &pki, "other.test", &[b"h2"]).await.expect_err("name mismatch");
    assert!(err.to_string().contains("certificate"), "{err}");
    // Plain HTTP on the TLS port does not get through.
    let plain = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("hs");
        tokio::spawn(conn);
        sender.send_request(get("/")).await
    })
    .await
    .expect("the proxy answers or closes");
    assert!(plain.is_err());
}

#[tokio::test]
async fn unreadable_or_mismatched_certificates_are_refused_naming_the_file() {
    let pki = pki();
    let b = echo("a").await;
    let d = pki.dir.display();
    let cases = [
        (format!("cert = \"{d}/missing.crt\"\nkey = \"{d}/alpha.key\""), "missing.crt"),
        (format!("cert = \"{d}/alpha.key\"\nkey = \"{d}/alpha.key\""), "no CERTIFICATE block"),
        (format!("cert = \"{d}/alpha.crt\"\nkey = \"{d}/alpha.crt\""), "no PRIVATE KEY block"),
        (format!("cert = \"{d}/alpha.crt\"\nkey = \"{d}/beta.key\""), "do not match"),
    ];
    for (tls, want) in cases {
        let toml = simple_config(&[b.addr], &format!("[[balancer.tls]]\n{tls}\n"), "");
        let err = ballast_proxy::ProxyServer::start(&config(&toml), ballast_proxy::AccessLog::off())
            .expect_err("bad tls");
        let msg = err.to_string();
        assert!(msg.contains("balancer \"web\": tls: tls[0]") && msg.contains(want), "{msg}");
    }
}
