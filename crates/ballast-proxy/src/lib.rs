//! ballast-proxy: the data plane. HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN) in,
//! pooled keep-alive HTTP/1.1 out, on tokio and rustls. Our own lean HTTP/1.1 loop serves
//! HTTP/1.1 clients (upgrades included) and hyper 1.x the rest (HTTP/2, malformed heads); our own
//! lean HTTP/1.1 client (httparse heads, hand-written framing) talks upstream.
//!
//! # The request path
//!
//! 1. **Accept** ([`server`]): each `[[balancer]]` is a listener. A connection waits for
//!    a permit of the listener's semaphore (`limits.max_connections`) before it is
//!    accepted, gets `TCP_NODELAY`, and runs in its own task ([`conn`]).
//! 2. **Connection** ([`conn`]): TLS handshake when the listener has certificates (the
//!    certificate is chosen by SNI, ALPN offers `h2` and `http/1.1`: [`tls`]); then our
//!    HTTP/1.1 loop ([`conn::h1`]) reads request heads and bodies itself and serves them
//!    in place, with the `header_read` timeout from a head's first byte (slowloris: 408)
//!    and `max_header_bytes`. The first request it does not take (an unusual framing or
//!    expectation, the HTTP/2 preface, a malformed or oversized head) hands the connection
//!    with the bytes read so far to hyper-util's auto builder, which serves HTTP/2 or
//!    HTTP/1.1 from there on (431 for large heads, 400 for malformed ones). ALPN `h2`
//!    goes to hyper at once. An idle watchdog closes connections with no request for
//!    `timeouts.idle`. The read side is scanned for heads that carry both
//!    `Content-Length` and `Transfer-Encoding` ([`conn_io`]).
//! 3. **Request** ([`proxy`]): the routing [`Snapshot`] is loaded from an `ArcSwap`
//!    (no lock). CL+TE conflicts and CONNECT get 400, a declared body over
//!    `max_body_bytes` gets 413. The client address is resolved through the trusted
//!    proxies' `X-Forwarded-For` ([`client`]) and the listener's rate limit applied
//!    ([`ratelimit`]: 429 with `Retry-After` and `RateLimit-*`). The first matching
//!    route (host exact or `*.suffix`, path prefix, headers: [`route`]) applies its own
//!    rate limit, then picks a pool: the first override (header or cookie) that
//!    applies, else the weighted split; when the route has a backup pool and the chosen
//!    pool has fewer healthy instances than `min_healthy`, the backup. The pool's
//!    `Balancer` picks an instance from live atomics ([`BackendStats`], kept across
//!    reloads in the [`StatsRegistry`]), given the affinity cookie, the consistent-hash
//!    key and, for `zone_aware` pools, the client's zone. The pick must pass the pool's
//!    guard ([`resilience_glue`]): ejected instances and open breakers are skipped,
//!    instances at `max_in_flight_per_instance` make the request wait in the pending
//!    queue. No route: 404; no instance: 503; every instance ejected or open, or the
//!    queue full or waited out: 503 with `Retry-After`. A pool with no instance whose
//!    scaling may go to zero holds the request instead ([`hold`]: bounded queue and
//!    timeout, body unread) until the controller gives it instances
//!    ([`ProxyServer::set_pool_instances`]), then picks as usual.
//! 4. **Rewrite** ([`forward`]): hop-by-hop headers (and those named in `Connection`)
//!    removed; `X-Forwarded-For` appended, `X-Forwarded-Proto`/`-Host` set;
//!    `X-Request-Id` kept or generated; `traceparent` continued with a new parent id,
//!    or started.
//! 5. **Send** ([`upstream`]): an idle keep-alive connection of the instance is taken
//!    from its pool, or a new one opened within `timeouts.connect` (`TCP_NODELAY`). The
//!    request head is encoded once (a retry re-sends the same bytes); the body streams
//!    through a byte cap ([`body`]: 413 when passed), chunk-encoded when its length is
//!    unknown, full duplex with the response; the response head
//!    must come within `upstream_response` (504). Retries, at most [`MAX_ATTEMPTS`]
//!    instances in all, each avoiding those already tried: a connect failure moves the
//!    untouched request (body included) to another instance; a pooled connection found
//!    closed hands the request back unsent and a fresh connection is tried; a failure
//!    after sending is retried only for bodyless idempotent requests (GET, HEAD, ...).
//!    Retries are capped by `[pool.retry] attempts` and the pool's retry budget. Each
//!    attempt's outcome (status class, connect failure, timeout) goes to the instance's
//!    circuit breaker and outlier detector; transitions are logged in the shared
//!    `EventLog` ([`ProxyServer::events`]). All failed: 502.
//!
//! Per pool, background tasks follow the config across reloads: the active
//! [`health`] checker (it flips `BackendStats::healthy` after `rise`/`fall` results)
//! and, for `adaptive` pools, the latency [`probe`]r.
//! 6. **Respond** ([`reply`]): the upstream's head stays as received (bytes and field
//!    offsets); hop-by-hop headers are left out when it is written, `X-Request-Id` and
//!    (when the pick moved) the affinity `Set-Cookie` added. Our HTTP/1.1 loop writes it
//!    as bytes; hyper's connections get it as an `http::Response`. The upstream body
//!    streams back frame by frame,
//!    and once it has been read to the end its connection returns to the pool.
//!    `101 Switching Protocols` splices the two upgraded connections (WebSocket).
//!    Stats record in-flight, failures, a peak-EWMA latency and a latency histogram
//!    (p50/p95/p99 for the controller's sampler) ([`stats_glue`]); an
//!    access-log line (combined or JSON) is queued to a writer thread ([`access_log`]).
//!
//! Reload ([`ProxyServer::reload`]) swaps snapshots and certificates in place; a
//! membership update ([`ProxyServer::set_pool_instances`]) rebuilds one pool only; open
//! connections keep going. Shutdown ([`ProxyServer::shutdown`]) stops accepting, asks
//! every connection to finish its in-flight requests, and waits up to a grace period.

pub mod access_log;
pub mod body;
pub mod client;
pub mod conn;
pub mod conn_io;
pub mod error;
pub mod forward;
pub mod health;
pub mod hold;
pub mod membership;
pub mod probe;
pub mod proxy;
pub mod ratelimit;
pub mod reply;
pub mod resilience_glue;
pub mod route;
pub mod server;
pub mod snapshot;
pub mod stats_glue;
pub mod tls;
pub mod upgrade;
pub mod upstream;
pub mod workers;

#[cfg(test)]
mod test_io;

pub use access_log::AccessLog;
pub use ballast_core::balance::BackendStats;
pub use error::ProxyError;
pub use proxy::MAX_ATTEMPTS;
pub use server::{ProxyServer, ReloadSummary};
pub use snapshot::{Snapshot, StatsRegistry};
pub use workers::Workers;
