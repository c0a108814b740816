//! The request path of one listener: match a route, pick an instance, rewrite and send
//! the request, retry safe failures elsewhere, relay the response (or the upgrade).

use crate::access_log::{AccessLog, Entry};
use crate::body::{ClientBody, RequestBody, ResponseBody, UpstreamBody};
use crate::conn_io::ConnInfo;
use crate::error::ProxyError;
use crate::forward;
use crate::reply::{Added, Reply};
use crate::upgrade::ClientUpgrade;
use crate::resilience_glue::{Admission, Refusal};
use crate::snapshot::{Pool, Snapshot};
use crate::stats_glue::Clock;
use crate::upstream::codec::{self, RequestFraming, ResponseHead};
use crate::upstream::{self, Outgoing, PooledConn, SendError};
use arc_swap::ArcSwap;
use ballast_core::balance::PickContext;
use ballast_core::config::AccessLogFormat;
use ballast_core::resilience::Outcome;
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Attempts per request at most: the first try plus two retries on other instances.
pub const MAX_ATTEMPTS: usize = 3;

/// What every request of one listener shares.
#[derive(Debug)]
pub struct ListenerState {
    /// The routing snapshot; reload swaps it.
    pub snapshot: ArcSwap<Snapshot>,
    /// Time base of the backend stats.
    pub clock: Clock,
    /// Where access-log lines go.
    pub access: AccessLog,
}

/// Decrements the connection's in-flight count when the handler finishes (or is
/// dropped because the client went away).
struct InFlight<'a>(&'a ConnInfo);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client request as the request path takes it, whichever server read it: hyper (HTTP/2,
/// and HTTP/1.1 connections handed over) or our own HTTP/1.1 loop ([`crate::conn::h1`]).
#[derive(Debug)]
pub struct ClientRequest {
    /// Method, target, version and header fields.
    pub parts: http::request::Parts,
    /// The body; `None` when the request has none.
    pub body: Option<ClientBody>,
    /// The client side of a protocol switch, for an HTTP/1.1 request that asks to upgrade.
    pub upgrade: Option<ClientUpgrade>,
}

impl ClientRequest {
    /// A request as hyper hands it over.
    pub fn from_hyper(mut req: Request<Incoming>) -> Self {
        let upgrade = (req.version() == Version::HTTP_11 && forward::wants_upgrade(req.headers()))
            .then(|| ClientUpgrade::Hyper(hyper::upgrade::on(&mut req)));
        let (parts, body) = req.into_parts();
        let body = (!body.is_end_stream()).then_some(ClientBody::Hyper(body));
        ClientRequest { parts, body, upgrade }
    }
}

/// Serves one request handed over by hyper: never fails, errors become short text responses.
///
/// Not an `async fn`: the request is converted here and the future holds it once, and the
/// layers below borrow it. An argument of an `async fn` takes two slots of its future
/// (the argument and the local it moves into), and every slot is copied each time the
/// future moves (into its box, for one).
pub fn handle(
    state: Arc<ListenerState>,
    info: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> impl Future<Output = Result<Response<ResponseBody>, Infallible>> + Send {
    let mut req = ClientRequest::from_hyper(req);
    async move { Ok(respond(&state, &info, &mut req).await.into_response()) }
}

/// Serves one request: errors become short text responses. Logs the access line. The
/// request is borrowed (see [`handle`]); its body and upgrade are taken out of it.
pub async fn respond(state: &ListenerState, info: &ConnInfo, req: &mut ClientRequest) -> Reply {
    info.requests.fetch_add(1, Ordering::Relaxed);
    info.in_flight.fetch_add(1, Ordering::Relaxed);
    let _in_flight = InFlight(info);
    let snap = state.snapshot.load_full();
    let format = snap.settings.access_log;
    let request_id = snap.settings.forwarding.request_id.then(|| forward::ensure_request_id(&mut req.parts.headers));
    // Boxed: most listeners log nothing, and the entry would widen the request future.
    let mut entry = (format != AccessLogFormat::Off).then(|| {
        let p = &req.parts;
        Box::new(Entry {
            started: state.clock.now(),
            time: SystemTime::now(),
            client: info.peer.ip(),
            method: p.method.clone(),
            uri: p.uri.clone(),
            version: p.version,
            host: p.headers.get(header::HOST).cloned(),
            referer: p.headers.get(header::REFERER).cloned(),
            user_agent: p.headers.get(header::USER_AGENT).cloned(),
            status: StatusCode::OK,
            bytes: None,
            duration: Default::default(),
            upstream: None,
            request_id: request_id.clone().or_else(|| p.headers.get(&forward::X_REQUEST_ID).cloned()),
        })
    });
    let (resp, upstream) = match proxy(state, &snap, info, req, request_id.as_ref()).await {
        Ok((resp, upstream)) => (resp, Some(upstream)),
        Err(e) => {
            if e.status().is_server_error() {
                tracing::warn!(balancer = %snap.name, error = %e, "request failed");
            } else {
                tracing::debug!(balancer = %snap.name, error = %e, "request refused");
            }
            (Reply::Local(error_response(&e, request_id.as_ref())), None)
        }
    };
    if let Some(entry) = entry.as_mut() {
        entry.status = resp.status();
        entry.bytes = resp.body().size_hint().exact();
        entry.duration = state.clock.now().saturating_sub(entry.started);
        entry.upstream = upstream;
        state.access.write(format, entry);
    }
    resp
}

/// A local response for a request-path error, carrying the request's id when it has one.
pub fn error_response(e: &ProxyError, request_id: Option<&HeaderValue>) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::text(e.client_text()));
    *resp.status_mut() = e.status();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    if let Some(id) = request_id {
        h.insert(forward::X_REQUEST_ID.clone(), id.clone());
    }
    if let Some(after) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(whole_secs(after)));
    }
    if let ProxyError::RateLimited { limit, reset, .. } = e {
        h.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(*limit));
        h.insert(RATELIMIT_REMAINING.clone(), HeaderValue::from(0u32));
        h.insert(RATELIMIT_RESET.clone(), HeaderValue::from(whole_secs(*reset)));
    }
    if matches!(e, ProxyError::BadRequest { .. } | ProxyError::BodyTooLarge { .. }) {
        // The rest of the connection's bytes cannot be trusted (or are not wanted).
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `RateLimit-Limit` (IETF draft `RateLimit` header fields).
pub static RATELIMIT_LIMIT: header::HeaderName = header::HeaderName::from_static("ratelimit-limit");
/// `RateLimit-Remaining`.
pub static RATELIMIT_REMAINING: header::HeaderName = header::HeaderName::from_static("ratelimit-remaining");
/// `RateLimit-Reset` (seconds).
pub static RATELIMIT_RESET: header::HeaderName = header::HeaderName::from_static("ratelimit-reset");

/// `d` in whole seconds, rounded up, at least 1 (for `Retry-After`).
fn whole_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE)
}

/// Refuses what must not be forwarded: smuggling-shaped framing, CONNECT, a declared
/// body over the limit.
fn check_request(req: &ClientRequest, info: &ConnInfo, max_body: u64) -> Result<(), ProxyError> {
    let h = &req.parts.headers;
    if h.contains_key(header::TRANSFER_ENCODING)
        && (h.contains_key(header::CONTENT_LENGTH) || info.smuggle_suspect.swap(false, Ordering::Relaxed))
    {
        return Err(ProxyError::BadRequest { reason: "both Content-Length and Transfer-Encoding" });
    }
    if req.parts.method == Method::CONNECT {
        return Err(ProxyError::BadRequest { reason: "CONNECT is not supported" });
    }
    if max_body > 0 && req.body.as_ref().is_some_and(|b| b.size_hint().lower() > max_body) {
        return Err(ProxyError::BodyTooLarge { limit: max_body });
    }
    Ok(())
}

async fn proxy(
    state: &ListenerState,
    snap: &Snapshot,
    info: &ConnInfo,
    req: &mut ClientRequest,
    request_id: Option<&HeaderValue>,
) -> Result<(Reply, String), ProxyError> {
    let max_body = snap.settings.max_body_bytes;
    check_request(req, info, max_body)?;
    let (body, client_upgrade) = (req.body.take(), req.upgrade.take());
    let parts = &mut req.parts;
    let client_ip = crate::client::client_ip(info.peer.ip(), &parts.headers, &snap.client.trusted);
    if let Some(limit) = &snap.client.rate_limit {
        limit.check(client_ip, &parts.headers)?;
    }
    let pool = {
        let host = crate::route::request_host(&parts.uri, &parts.headers);
        let path = parts.uri.path();
        let route = snap
            .routes
            .iter()
            .find(|r| r.matches(host, path, &parts.headers))
            .ok_or_else(|| ProxyError::NoRoute { host: host.to_string(), path: path.to_string() })?;
        if let Some(limit) = &route.rate_limit {
            limit.check(client_ip, &parts.headers)?;
        }
        let i = route.choose(&parts.headers, fastrand::u64(..)).ok_or(ProxyError::NoInstance { pool: String::new() })?;
        match &route.backup {
            // Failover: the backup takes the traffic only while the chosen pool is short.
            Some(b) if !snap.pools[i].healthy_at_least(b.min_healthy, state.clock.now()) => &snap.pools[b.pool],
            _ => &snap.pools[i],
        }
    };
    // Scale from zero: a pool with no instance that may run at zero holds the request.
    // Boxed and behind the check so the hot path neither awaits it nor carries its state.
    let woken: Arc<Snapshot>;
    let held = if pool.hold.is_some() && pool.authorities.is_empty() {
        Box::pin(crate::hold::hold_if_empty(&state.snapshot, pool)).await?
    } else {
        None
    };
    let (snap, pool) = match held {
        Some((s, i)) => {
            woken = s;
            (&*woken, &woken.pools[i])
        }
        None => (snap, pool),
    };
    let upgrade = client_upgrade.is_some();
    let original_host = parts
        .headers
        .get(header::HOST)
        .cloned()
        .or_else(|| parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok()));
    forward::strip_hop_by_hop(&mut parts.headers, upgrade);
    let forwarding = snap.settings.forwarding;
    if forwarding.x_forwarded {
        forward::add_forwarded_value(&mut parts.headers, &info.forwarded_for, snap.settings.https, original_host.clone());
    }
    forward::trace_context(&mut parts.headers, forwarding.trace_context);
    if let (false, Some(host)) = (parts.headers.contains_key(header::HOST), original_host) {
        // HTTP/2 carries the host in :authority; HTTP/1.1 upstreams need a Host header.
        parts.headers.insert(header::HOST, host);
    }
    // Origin form: HTTP/1.1 upstreams get the path; the host travels in `Host`. The head
    // is encoded once: every attempt sends the same bytes.
    let pq = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    let bodyless = body.is_none();
    let framing = body.as_ref().map_or(RequestFraming::Empty, |b| codec::request_framing(&b.size_hint(), false));
    let head = codec::encode_request_head(&parts.method, &pq, &parts.headers, framing);
    let head_request = parts.method == Method::HEAD;
    let is_idempotent = idempotent(&parts.method);
    // A request that went out may be sent again only when that cannot do harm twice and
    // there is no body to replay; one that did not go out may always go elsewhere.
    let resend_ok = bodyless && is_idempotent;
    let mut body = Some(body.map_or_else(RequestBody::empty, |b| RequestBody::capped(b, max_body)));
    let mut unsent: Option<Outgoing> = None;
    let guard = &pool.guard;
    let max_attempts = (1 + guard.retries()).min(MAX_ATTEMPTS);
    // Instances tried or refused by this request; allocates only once one is.
    let mut avoid: Vec<usize> = Vec::new();
    let mut tried = 0;
    let mut paid = 0;
    let mut reconnect_to: Option<(usize, Admission<'_>)> = None;
    let mut last_err = None;
    // One clock read serves the retry budget, the first pick and the first attempt.
    let mut t0 = state.clock.now();
    guard.first_attempt(t0);
    let mut first = true;
    while tried < max_attempts {
        if !std::mem::take(&mut first) {
            t0 = state.clock.now();
        }
        if tried > paid {
            // A retry: only within the pool's budget, so retries cannot amplify an outage.
            if !guard.may_retry(t0) {
                tracing::debug!(pool = %pool.name, "retry budget exhausted");
                break;
            }
            paid = tried;
        }
        let reuse = reconnect_to.is_none();
        let sticky = pool.sticky.as_ref().and_then(|s| forward::cookie(&parts.headers, &s.cookie));
        let (idx, admission) = match reconnect_to.take() {
            Some(again) => again,
            None => {
                let ctx = PickContext {
                    now: t0,
                    rand: 0,
                    client_ip: Some(info.peer.ip()),
                    hash_key: pool.hash_on.as_ref().and_then(|h| forward::hash_key(h, &parts.headers, parts.uri.path())),
                    sticky,
                    avoid: &[],
                    client_zone: if pool.zone_aware {
                        crate::client::client_zone(
                            client_ip,
                            &parts.headers,
                            snap.client.zone_header.as_ref(),
                            &snap.client.zones,
                        )
                    } else {
                        None
                    },
                };
                match select(state, pool, ctx, &mut avoid, tried).await? {
                    Some(picked) => picked,
                    None => break,
                }
            }
        };
        let pinned = sticky == Some(pool.balancer.backends()[idx].id.as_str());
        let authority = &pool.authorities[idx];
        let req = match (unsent.take(), body.take()) {
            // A request handed back unsent goes out again; the spare empty body of a
            // resendable request stays for the attempt after this one.
            (Some(back), spare) => {
                body = spare;
                back
            }
            (None, Some(b)) => {
                if resend_ok {
                    body = Some(RequestBody::empty());
                }
                Outgoing { head: head.clone(), body: b, framing, head_request, idempotent: is_idempotent }
            }
            (None, None) => break,
        };
        let stats = pool.balancer.stats(idx);
        stats.on_request_start();
        let checked_out = if reuse { pool.conns[idx].checkout() } else { None };
        let mut sender = match checked_out {
            Some(s) => s,
            None => match upstream::connect(authority, snap.settings.connect).await {
                Ok(s) => s,
                Err(e) => {
                    let t1 = state.clock.now();
                    stats.on_request_end(t1, t1.saturating_sub(t0), false);
                    guard.finish(admission, Some(Outcome::ConnectFailure), t1);
                    tracing::debug!(error = %e, "connect failed; trying another instance");
                    avoid.push(idx);
                    tried += 1;
                    unsent = Some(req);
                    last_err = Some(e);
                    continue;
                }
            },
        };
        let result = upstream::send(&mut sender, req, authority, snap.settings.upstream_response).await;
        let t1 = state.clock.now();
        match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                stats.on_request_end(t1, t1.saturating_sub(t0), status < 500);
                guard.finish(admission, Some(Outcome::from_status(status)), t1);
                let resp = relay(resp, pool, idx, sender, pinned, client_upgrade, request_id)?;
                return Ok((resp, authority.to_string()));
            }
            Err(SendError::NotSent(back, source)) => {
                unsent = Some(*back);
                if reuse {
                    // A pooled connection the instance had closed: open a fresh one to
                    // the same instance (a connect error then moves on).
                    stats.on_request_end(t1, t1.saturating_sub(t0), true);
                    reconnect_to = Some((idx, admission));
                } else {
                    // Even a fresh connection closed at once: try another instance.
                    stats.on_request_end(t1, t1.saturating_sub(t0), false);
                    guard.finish(admission, Some(Outcome::ConnectFailure), t1);
                    avoid.push(idx);
                    tried += 1;
                    last_err = Some(ProxyError::Upstream { addr: authority.to_string(), source });
                }
            }
            Err(SendError::Failed(e)) => {
                // A body over its cap or malformed is the client's doing, not the instance's.
                let client_fault = matches!(e, ProxyError::BodyTooLarge { .. } | ProxyError::BadRequest { .. });
                stats.on_request_end(t1, t1.saturating_sub(t0), client_fault);
                let outcome = match &e {
                    ProxyError::BodyTooLarge { .. } | ProxyError::BadRequest { .. } => None,
                    ProxyError::UpstreamTimeout { .. } => Some(Outcome::Timeout),
                    _ => Some(Outcome::ServerError),
                };
                guard.finish(admission, outcome, t1);
                if !(resend_ok && matches!(e, ProxyError::Upstream { .. })) {
                    return Err(e);
                }
                tracing::debug!(error = %e, "upstream failed before responding; trying another instance");
                avoid.push(idx);
                tried += 1;
                last_err = Some(e);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| ProxyError::NoInstance { pool: pool.name.clone() }))
}

/// Picks an instance that admits the request: ejected instances and open breakers are
/// skipped (added to `avoid`); when every instance is at its in-flight limit the request
/// waits in the pool's pending queue. `Ok(None)`: no instance left to try (the caller
/// answers with the last error). When the first attempt finds every instance ejected or
/// open: 503 with the soonest `Retry-After`.
async fn select<'p>(
    state: &ListenerState,
    pool: &'p Pool,
    base: PickContext<'_>,
    avoid: &mut Vec<usize>,
    tried: usize,
) -> Result<Option<(usize, Admission<'p>)>, ProxyError> {
    let unavailable = |reason, retry_after| ProxyError::Unavailable { pool: pool.name.clone(), reason, retry_after };
    let first_skipped = avoid.len();
    let mut soonest: Option<Duration> = None;
    let mut queued = None;
    let mut deadline = None;
    let mut now = base.now;
    loop {
        let mut busy = false;
        loop {
            let ctx = PickContext { now, rand: fastrand::u64(..), avoid: avoid.as_slice(), ..base };
            let Some(i) = pool.balancer.pick(&ctx) else { break };
            if avoid.contains(&i) {
                // Panic mode hands back an avoided instance only when all are avoided.
                break;
            }
            match pool.guard.admit(i, now) {
                Ok(admission) => return Ok(Some((i, admission))),
                Err(Refusal::Unavailable(after)) => {
                    soonest = Some(soonest.map_or(after, |s| s.min(after)));
                    avoid.push(i);
                }
                Err(Refusal::Busy) => {
                    busy = true;
                    avoid.push(i);
                }
            }
        }
        if !busy {
            return match soonest {
                Some(after) if tried == 0 => Err(unavailable("every instance is ejected or its breaker is open", after)),
                _ => Ok(None),
            };
        }
        // Every instance left is at its in-flight limit: wait for room, bounded.
        if queued.is_none() {
            let permit = pool
                .guard
                .enter_queue()
                .map_err(|full| unavailable("the pending queue is full", full.retry_after))?;
            queued = Some(permit);
            deadline = Some(tokio::time::Instant::now() + pool.guard.queue_timeout());
        }
        let until = deadline.unwrap_or_else(tokio::time::Instant::now);
        if tokio::time::timeout_at(until, pool.guard.room()).await.is_err() {
            let after = pool.guard.queue_timeout().max(Duration::from_secs(1));
            return Err(unavailable("timed out in the pending queue", after));
        }
        avoid.truncate(first_skipped);
        now = state.clock.now();
    }
}

/// Turns the upstream response into the client's [`Reply`]: its head with the request id
/// and affinity cookie to add (hop-by-hop fields go when it is written), and for
/// `101 Switching Protocols` a tunnel between the two upgraded connections.
fn relay(
    resp: ResponseHead,
    pool: &Pool,
    idx: usize,
    conn: Box<PooledConn>,
    pinned: bool,
    client_upgrade: Option<ClientUpgrade>,
    request_id: Option<&HeaderValue>,
) -> Result<Reply, ProxyError> {
    let (kind, reusable) = (resp.body, resp.reusable);
    let set_cookie = match (&pool.sticky, pinned) {
        (Some(s), false) => forward::affinity_cookie(&s.cookie, &pool.balancer.backends()[idx].id, s.max_age),
        _ => None,
    };
    let added = Added { request_id: request_id.cloned(), set_cookie };
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        // The body reads itself off the connection, which returns to the pool at its end.
        let body = ResponseBody::Upstream(UpstreamBody::new(conn, pool.conns[idx].clone(), kind, reusable));
        return Ok(Reply::Relayed { head: resp, added, body });
    }
    let switched = Reply::Relayed { head: resp, added, body: ResponseBody::Full(None) }.into_response();
    let Some(client_side) = client_upgrade else {
        return Err(ProxyError::UpstreamProtocol {
            addr: pool.authorities[idx].to_string(),
            reason: "101 to a request that did not upgrade",
        });
    };
    // After a switch the connection belongs to the tunnel, with any bytes the upstream
    // sent past its head.
    let mut upstream_side = conn.into_tunnel();
    tokio::spawn(async move {
        match client_side.connection().await {
            Ok(mut c) => {
                if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut upstream_side).await {
                    tracing::debug!(error = %e, "upgraded tunnel closed with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    Ok(Reply::Local(switched))
}
