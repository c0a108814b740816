//! Network-shaped config values: CIDR blocks, `host:port` addresses, DNS names and HTTP
//! tokens, with checks that explain what is wrong.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An IPv4 or IPv6 network written `"10.0.0.0/8"` or `"fd00::/8"`; a bare address means
/// a single host (`/32` or `/128`). Host bits are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr(pub ipnet::IpNet);

impl Cidr {
    /// Whether `ip` lies inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(net) => net,
            Err(_) => match s.parse::<IpAddr>() {
                Ok(ip) => ipnet::IpNet::from(ip),
                Err(_) => {
                    return Err(format!(
                        "{s:?} is not a CIDR block; write e.g. \"10.0.0.0/8\", \"192.168.1.7\" or \"fd00::/8\""
                    ))
                }
            },
        };
        Ok(Cidr(net.trunc()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct CidrVisitor;

impl Visitor<'_> for CidrVisitor {
    type Value = Cidr;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CIDR block string such as \"10.0.0.0/8\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cidr, E> {
        v.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(CidrVisitor)
    }
}

/// Checks a listen address: an IP literal and a port (`0.0.0.0:8080`, `[::1]:443`).
/// Port 0 is allowed and asks the OS for a free port.
pub fn check_listen_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse::<SocketAddr>().map_err(|_| {
        format!("{s:?} is not an IP:port listen address; write e.g. \"0.0.0.0:8080\" or \"[::1]:8443\"")
    })
}

/// Checks an upstream address: `host:port` where host is an IPv4 literal, a bracketed
/// IPv6 literal or a DNS name, and port is 1–65535.
pub fn check_host_port(s: &str) -> Result<(), String> {
    let hint = "write host:port, e.g. \"10.0.0.5:8080\", \"[fd00::5]:8080\" or \"api.internal:8080\"";
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("{s:?} has no port; {hint}"));
    };
    match port.parse::<u32>() {
        Ok(1..=65535) if !port.starts_with('+') => {}
        _ => return Err(format!("port {port:?} in {s:?} is not a number from 1 to 65535; {hint}")),
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(|_| ())
            .map_err(|_| format!("{host:?} in {s:?} is not an IPv6 address; {hint}"));
    }
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    check_dns_name(host).map_err(|e| format!("{e}; {hint}"))
}

/// Checks a DNS host name (RFC 1123): dot-separated labels of 1–63 letters, digits and
/// hyphens, not starting or ending with a hyphen, 253 characters at most.
pub fn check_dns_name(s: &str) -> Result<(), String> {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() {
        return Err("empty host name".to_string());
    }
    if name.len() > 253 {
        return Err(format!("host name is {} characters long; the limit is 253", name.len()));
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{s:?} is not a valid host name (labels of 1-63 letters, digits and '-', separated by '.')"
            ));
        }
    }
    Ok(())
}

/// Checks a host pattern for route matching and TLS server names: a DNS name, or a
/// wildcard `*.example.com` covering one or more labels.
pub fn check_host_pattern(s: &str) -> Result<(), String> {
    match s.strip_prefix("*.") {
        Some(rest) => check_dns_name(rest).map_err(|e| format!("after \"*.\": {e}")),
        None => check_dns_name(s),
    }
}

/// Checks an HTTP token (RFC 9110 `tchar`s): header names and cookie names.
pub fn check_token(s: &str) -> Result<(), String> {
    const EXTRA: &[u8] = b"!#$%&'*+-.^_`|~";
    if s.is_empty() {
        return Err("empty name".to_string());
    }
    if s.len() > 256 {
        return Err(format!("name is {} bytes long; the limit is 256", s.len()));
    }
    match s.bytes().find(|b| !(b.is_ascii_alphanumeric() || EXTRA.contains(b))) {
        None => Ok(()),
        Some(b) => Err(format!(
            "{s:?} contains {:?}, which is not allowed in a header or cookie name (letters, digits and !#$%&'*+-.^_`|~ only)",
            char::from(b)
        )),
    }
}

/// Checks a resource name or label (`what`: "name" of a balancer or pool, "zone"): 1–64
/// ASCII letters, digits, `-`, `_`, `.`. Names appear in URLs, metrics labels and log
/// lines, so they are kept plain.
pub fn check_name(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}; use 1-64 characters from A-Z a-z 0-9 - _ ."));
    }
    if s.len() > 64 {
        return Err(format!("{what} is {} bytes long; the limit is 64", s.len()));
    }
    if !s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err(format!("{what} {s:?} has characters outside A-Z a-z 0-9 - _ ."));
    }
    Ok(())
}

/// Clients in `cidr` are in `zone` (`[[balancer.client_zone]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientZoneConfig {
    /// Client network.
    pub cidr: Cidr,
    /// Zone label, matched against instance zones.
    pub zone: String,
}

