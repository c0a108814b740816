//! The proxy's one error type: where a failure came from, whether retrying it on another
//! instance is safe, and which status and short text the client sees.

use http::StatusCode;
use std::time::Duration;

/// Everything that can go wrong in the data plane, from binding a listener to relaying a
/// request. Request-path variants map to a client status with [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route of the listener matched the request (host, path prefix, headers).
    #[error("no route matches host {host:?} path {path:?}")]
    NoRoute {
        /// The request's host (empty when absent).
        host: String,
        /// The request path.
        path: String,
    },
    /// The matched pool has no instance that may take a request (all down, draining, or
    /// already tried).
    #[error("pool {pool:?} has no available instance")]
    NoInstance {
        /// The pool name.
        pool: String,
    },
    /// Every instance of the pool is ejected, behind an open circuit breaker, or busy
    /// with the pending queue full or waited out: 503 with `Retry-After`.
    #[error("pool {pool:?} is unavailable: {reason}")]
    Unavailable {
        /// The pool name.
        pool: String,
        /// Why: ejected/open instances, or the queue.
        reason: &'static str,
        /// When to try again (the `Retry-After` header, rounded up to seconds).
        retry_after: Duration,
    },
    /// A request held for a pool at zero instances (scale from zero) was refused: the
    /// hold queue was full, or no instance became ready within the hold timeout. 503 with
    /// `Retry-After`.
    #[error("pool {pool:?} has no instance yet: {reason}")]
    ColdStart {
        /// The pool name.
        pool: String,
        /// Why: the queue was full, or the wait timed out.
        reason: &'static str,
        /// When to try again (the `Retry-After` header, rounded up to seconds).
        retry_after: Duration,
    },
    /// A membership update (`ProxyServer::set_pool_instances`) was refused; nothing changed.
    #[error("pool {pool:?}: {field}: {reason}")]
    Membership {
        /// The pool name.
        pool: String,
        /// The field path, e.g. `instance[2].address`, or `pool` for an unknown pool.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A rate limit refused the request: 429 with `Retry-After` and `RateLimit-*`.
    #[error("rate limit of {limit} requests exceeded")]
    RateLimited {
        /// The limit's burst size (`RateLimit-Limit`).
        limit: u32,
        /// Until the next request would be allowed.
        retry_after: Duration,
        /// Until the bucket is full again (`RateLimit-Reset`).
        reset: Duration,
    },
    /// Connecting to the upstream failed (refused, unreachable, connect timeout). The
    /// request was not sent, so a retry elsewhere is safe.
    #[error("connecting to upstream {addr} failed: {source}")]
    Connect {
        /// The upstream address.
        addr: String,
        /// The OS error (`TimedOut` for the connect timeout).
        source: std::io::Error,
    },
    /// The upstream failed after the connection was made and before a response head
    /// arrived (reset, closed, protocol error).
    #[error("upstream {addr} failed before responding: {source}")]
    Upstream {
        /// The upstream address.
        addr: String,
        /// The I/O error (reset, closed, or the client's body failing meanwhile).
        source: std::io::Error,
    },
    /// The upstream answered with something the proxy cannot relay (e.g. `101` to a
    /// request that did not ask to upgrade).
    #[error("upstream {addr} sent an unusable response: {reason}")]
    UpstreamProtocol {
        /// The upstream address.
        addr: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The upstream did not send a response head within the `upstream_response` timeout.
    #[error("upstream {addr} sent no response within {after:?}")]
    UpstreamTimeout {
        /// The upstream address.
        addr: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The request body is larger than `limits.max_body_bytes`.
    #[error("request body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit in bytes.
        limit: u64,
    },
    /// The request is malformed in a way hyper let through (e.g. both Content-Length and
    /// Transfer-Encoding, which is how request smuggling starts).
    #[error("bad request: {reason}")]
    BadRequest {
        /// What is wrong.
        reason: &'static str,
    },
    /// A listener could not be bound.
    #[error("balancer {balancer:?}: cannot listen on {addr}: {source}")]
    Bind {
        /// The balancer name.
        balancer: String,
        /// The configured listen address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listen address is not `ip:port`.
    #[error("balancer {balancer:?}: listen address {addr:?} is not ip:port")]
    ListenAddr {
        /// The balancer name.
        balancer: String,
        /// The configured listen address.
        addr: String,
    },
    /// A TLS certificate or key could not be loaded.
    #[error("balancer {balancer:?}: tls: {reason}")]
    Tls {
        /// The balancer name.
        balancer: String,
        /// What failed, naming the file.
        reason: String,
    },
    /// A route cannot be built (unknown pool, bad header name, bad instance address);
    /// `ballast_core::config::validate` should have caught it first.
    #[error("balancer {balancer:?}: {field}: {reason}")]
    Route {
        /// The balancer name.
        balancer: String,
        /// The field path, e.g. `route[0].split[1].pool`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl ProxyError {
    /// The status the client sees for a request-path error.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::NoInstance { .. } | ProxyError::Unavailable { .. } | ProxyError::ColdStart { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } | ProxyError::UpstreamProtocol { .. } => {
                StatusCode::BAD_GATEWAY
            },
            ProxyError::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this failure happened before the request could have had any effect
    /// upstream, so that sending it to another instance is safe for any method.
    pub fn retry_safe(&self) -> bool {
        matches!(self, ProxyError::Connect { .. } | ProxyError::NoInstance { .. })
    }

    /// The `Retry-After` this error's response carries, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProxyError::Unavailable { retry_after, .. }
            | ProxyError::ColdStart { retry_after, .. }
            | ProxyError::RateLimited { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// The short text body sent to the client (no internal detail).
    pub fn client_text(&self) -> &'static str {
        match self {
            ProxyError::NoRoute { .. } => "no route\n",
            ProxyError::NoInstance { .. } => "no instance available\n",
            ProxyError::Unavailable { .. } => "service unavailable\n",
            ProxyError::ColdStart { .. } => "service is starting and no instance is ready yet; retry later\n",
            ProxyError::RateLimited { .. } => "too many requests\n",
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } | ProxyError::UpstreamProtocol { .. } => {
                "bad gateway\n"
            },
            ProxyError::UpstreamTimeout { .. } => "gateway timeout\n",
            ProxyError::BodyTooLarge { .. } => "request body too large\n",
            ProxyError::BadRequest { .. } => "bad request\n",
            _ => "internal error\n",
        }
    }
}
