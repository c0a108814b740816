//! ICMP echo ("ping") probes over a raw socket (needs root or `CAP_NET_RAW`) or, failing
//! that, an unprivileged ICMP datagram socket (Linux, when `net.ipv4.ping_group_range`
//! includes the process's group). When neither opens, the check says so plainly.

use super::error::HealthError;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PAYLOAD: &[u8; 16] = b"ballast-health\0\0";

/// Sequence numbers shared by every ping of the process, so replies match their request.
static SEQ: AtomicU16 = AtomicU16::new(1);

/// An open ICMP socket and how it frames what it reads.
struct IcmpSocket {
    socket: Socket,
    /// Raw IPv4 sockets deliver the IP header too, and see every echo reply of the host.
    raw: bool,
    v6: bool,
}

fn open(v6: bool) -> Result<IcmpSocket, String> {
    let (domain, proto) = if v6 { (Domain::IPV6, Protocol::ICMPV6) } else { (Domain::IPV4, Protocol::ICMPV4) };
    match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(socket) => Ok(IcmpSocket { socket, raw: true, v6 }),
        Err(raw_err) => match Socket::new(domain, Type::DGRAM, Some(proto)) {
            Ok(socket) => Ok(IcmpSocket { socket, raw: false, v6 }),
            Err(dgram_err) => Err(not_permitted(v6, &raw_err, &dgram_err)),
        },
    }
}

fn not_permitted(v6: bool, raw_err: &std::io::Error, dgram_err: &std::io::Error) -> String {
    let family = if v6 { "ICMPv6" } else { "ICMP" };
    format!(
        "cannot open a raw {family} socket ({raw_err}; needs root or CAP_NET_RAW) nor an \
         unprivileged one ({dgram_err}; needs this process's group in sysctl \
         net.ipv4.ping_group_range); use a tcp or http check instead"
    )
}

/// Whether this process can send ICMP echo requests (IPv4). `ballast check` and start-up
/// call it for pools with `kind = "icmp"` and print the error as it is.
pub fn icmp_available() -> Result<(), String> {
    open(false).map(|_| ())
}

/// Sends one echo request to `ip` and waits for its reply (the caller bounds the wait).
pub(super) async fn ping(ip: IpAddr) -> Result<String, HealthError> {
    let s = open(ip.is_ipv6()).map_err(HealthError::IcmpNotPermitted)?;
    let io_err = |source| HealthError::Icmp { addr: ip.to_string(), source };
    s.socket.set_nonblocking(true).map_err(io_err)?;
    // Connecting filters replies to this peer (raw sockets too, on Linux).
    s.socket.connect(&SockAddr::from(SocketAddr::new(ip, 0))).map_err(io_err)?;
    let id = fastrand::u16(..);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let packet = echo_request(s.v6, id, seq);
    let (raw, v6) = (s.raw, s.v6);
    // tokio's UDP socket is a plain datagram socket to the reactor: send/recv on a
    // connected ICMP socket work the same, without any unsafe fd registration.
    let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(s.socket)).map_err(io_err)?;
    let started = tokio::time::Instant::now();
    sock.send(&packet).await.map_err(io_err)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io_err)?;
        if let Some((reply_id, reply_seq)) = parse_reply(&buf[..n], raw && !v6, v6) {
            // Unprivileged sockets get their identifier rewritten by the kernel.
            if reply_seq == seq && (reply_id == id || !raw) {
                return Ok(format!("echo reply in {}µs", started.elapsed().as_micros()));
            }
        }
    }
}

/// An echo request with identifier `id`, sequence `seq` and a fixed payload. The ICMPv4
/// checksum is filled in; for ICMPv6 the kernel computes it (it covers a pseudo-header).
fn echo_request(v6: bool, id: u16, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(8 + PAYLOAD.len());
    p.push(if v6 { ECHO_REQUEST_V6 } else { ECHO_REQUEST_V4 });
    p.push(0);
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(PAYLOAD);
    if !v6 {
        let sum = checksum(&p);
        p[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

/// The internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `(identifier, sequence)` of an echo reply, or `None` for anything else. `with_ip_header`
/// for raw IPv4 sockets, whose reads start with the IP header.
fn parse_reply(buf: &[u8], with_ip_header: bool, v6: bool) -> Option<(u16, u16)> {
    let icmp = if with_ip_header {
        let ihl = usize::from(buf.first()? & 0x0f) * 4;
        buf.get(ihl..)?
    } else {
        buf
    };
    let header = icmp.get(..8)?;
    let reply = if v6 { ECHO_REPLY_V6 } else { ECHO_REPLY_V4 };
    (header[0] == reply && header[1] == 0).then(|| {
        (u16::from_be_bytes([header[4], header[5]]), u16::from_be_bytes([header[6], header[7]]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_checksums_to_zero() {
        let p = echo_request(false, 0x1234, 7);
        assert_eq!(checksum(&p), 0, "a correct checksum makes the sum fold to zero");
        assert_eq!(&p[4..8], &[0x12, 0x34, 0, 7]);
        assert_eq!(&echo_request(true, 1, 1)[..4], &[ECHO_REQUEST_V6, 0, 0, 0]);
        assert_eq!(checksum(&[0xff]), !0xff00);
    }

    #[test]
    fn replies_parse_and_everything_else_is_ignored() {
        let mut reply = echo_request(false, 9, 3);
        reply[0] = ECHO_REPLY_V4;
        assert_eq!(parse_reply(&reply, false, false), Some((9, 3)));
        let mut with_ip = vec![0x45; 20];
        with_ip.extend_from_slice(&reply);
        assert_eq!(parse_reply(&with_ip, true, false), Some((9, 3)));
        assert_eq!(parse_reply(&echo_request(false, 9, 3), false, false), None, "a request is not a reply");
        assert_eq!(parse_reply(&reply[..7], false, false), None, "truncated");
        assert_eq!(parse_reply(&[0x4f], true, false), None, "IHL past the end");
        assert_eq!(parse_reply(&[], true, false), None);
        let mut v6 = echo_request(true, 2, 5);
        v6[0] = ECHO_REPLY_V6;
        assert_eq!(parse_reply(&v6, false, true), Some((2, 5)));
    }

    #[test]
    fn the_refusal_names_both_ways_and_the_fix() {
        let e = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let msg = not_permitted(false, &e, &e);
        assert!(msg.contains("CAP_NET_RAW") && msg.contains("ping_group_range"), "{msg}");
    }
}
