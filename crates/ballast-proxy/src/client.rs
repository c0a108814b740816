//! Who the client is: its address, believed from `X-Forwarded-For` only as far as the
//! chain runs through trusted proxies, and its zone, from a header or the balancer's
//! CIDR map.

use ballast_core::config::{Cidr, ClientZoneConfig};
use http::{HeaderMap, HeaderName};
use std::net::IpAddr;

/// The client address of a request that came from `peer`. When `peer` is a trusted
/// proxy, `X-Forwarded-For` is read right to left, skipping trusted hops; the first
/// untrusted address is the client. A hop that does not parse stops the walk (the last
/// trusted address is then the client: a forged entry cannot pick any address).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if trusted.is_empty() || !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    // Later header lines are appended by nearer proxies: walk lines, then hops, backwards.
    for line in headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(line) = line.to_str() else { return client };
        for hop in line.rsplit(',') {
            let Some(ip) = parse_hop(hop.trim()) else { return client };
            client = ip;
            if !is_trusted(ip) {
                return ip;
            }
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an IP, optionally `[v6]` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    hop.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

/// The client's zone: the `header` value when configured and present, else the first
/// CIDR of `zones` containing `client`.
pub fn client_zone<'a>(
    client: IpAddr,
    headers: &'a HeaderMap,
    header: Option<&HeaderName>,
    zones: &'a [ClientZoneConfig],
) -> Option<&'a str> {
    if let Some(v) = header.and_then(|h| headers.get(h)).and_then(|v| v.to_str().ok()) {
        return Some(v);
    }
    zones.iter().find(|z| z.cidr.contains(client)).map(|z| z.zone.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| Cidr(c.parse().expect("cidr"))).collect()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_for_is_believed_only_through_trusted_proxies() {
        let trusted = cidrs(&["10.0.0.0/8"]);
        let cases: &[(&str, &[&str], &str)] = &[
            ("untrusted peer: its header is ignored", &["1.1.1.1"], "192.0.2.9"),
            ("trusted peer: last untrusted hop", &["6.6.6.6, 1.1.1.1, 10.0.0.2"], "10.0.0.1"),
            ("no header", &[], "10.0.0.1"),
            ("garbage stops the walk", &["1.1.1.1, bogus"], "10.0.0.1"),
            ("two header lines", &["7.7.7.7", "10.0.0.3"], "10.0.0.1"),
            ("v6 and ports", &["[2001:db8::1]:443"], "10.0.0.1"),
            ("v4 with port", &["2.2.2.2:5000"], "10.0.0.1"),
            ("all trusted: the farthest", &["10.1.1.1, 10.2.2.2"], "10.0.0.1"),
        ];
        let want = [
            "192.0.2.9", "1.1.1.1", "10.0.0.1", "10.0.0.1", "7.7.7.7", "2001:db8::1", "2.2.2.2", "10.1.1.1",
        ];
        for ((name, headers, peer), want) in cases.iter().zip(want) {
            assert_eq!(client_ip(ip(peer), &xff(headers), &trusted), ip(want), "{name}");
        }
        assert_eq!(client_ip(ip("10.0.0.1"), &xff(&["1.1.1.1"]), &[]), ip("10.0.0.1"), "nothing trusted");
    }

    #[test]
    fn zone_from_header_then_cidr_map() {
        let zones = vec![
            ClientZoneConfig { cidr: Cidr("10.1.0.0/16".parse().expect("cidr")), zone: "a".into() },
            ClientZoneConfig { cidr: Cidr("10.0.0.0/8".parse().expect("cidr")), zone: "b".into() },
        ];
        let h = HeaderName::from_static("x-zone");
        let mut headers = HeaderMap::new();
        assert_eq!(client_zone(ip("10.1.2.3"), &headers, Some(&h), &zones), Some("a"), "first match wins");
        assert_eq!(client_zone(ip("10.9.2.3"), &headers, Some(&h), &zones), Some("b"));
        assert_eq!(client_zone(ip("192.0.2.1"), &headers, Some(&h), &zones), None);
        headers.insert("x-zone", "c".parse().expect("value"));
        assert_eq!(client_zone(ip("10.1.2.3"), &headers, Some(&h), &zones), Some("c"), "header wins");
        assert_eq!(client_zone(ip("10.1.2.3"), &headers, None, &zones), Some("a"), "header not configured");
    }
}
