//! The access log: one line per request, combined format or JSON, written to stdout by
//! a dedicated thread so request tasks never block on (or contend for) stdout.
//!
//! Lines are logged when the response head is sent; `bytes` is the response's
//! `Content-Length` when known (`-` in combined format, `null` in JSON otherwise).

use ballast_core::config::AccessLogFormat;
use http::{HeaderValue, Method, StatusCode, Uri, Version};
use serde::Serialize;
use std::io::Write;
use std::net::IpAddr;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// Where access-log lines go. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<mpsc::Sender<String>>,
}

impl AccessLog {
    /// Lines are written to stdout by a background thread, flushed whenever the queue
    /// runs empty.
    pub fn stdout() -> Self {
        let (tx, rx) = mpsc::channel::<String>();
        let spawned = std::thread::Builder::new().name("ballast-access-log".into()).spawn(move || {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                while let Ok(more) = rx.try_recv() {
                    let _ = out.write_all(more.as_bytes());
                }
                let _ = out.flush();
            }
        });
        match spawned {
            Ok(_) => AccessLog { tx: Some(tx) },
            Err(e) => {
                tracing::error!(error = %e, "cannot start the access-log thread; access log disabled");
                AccessLog { tx: None }
            }
        }
    }

    /// Lines are sent to the returned receiver (tests, or a caller with its own sink).
    pub fn channel() -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel();
        (AccessLog { tx: Some(tx) }, rx)
    }

    /// Discards every line.
    pub fn off() -> Self {
        AccessLog { tx: None }
    }

    /// Formats and queues one entry.
    pub fn write(&self, format: AccessLogFormat, entry: &Entry) {
        let Some(tx) = &self.tx else { return };
        let line = match format {
            AccessLogFormat::Off => return,
            AccessLogFormat::Combined => entry.combined(),
            AccessLogFormat::Json => entry.json(),
        };
        let _ = tx.send(line);
    }
}

/// One request as the access log records it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Monotonic arrival time on the proxy clock (for `duration`).
    pub started: Duration,
    /// Wall-clock time the request arrived.
    pub time: SystemTime,
    /// Client address.
    pub client: IpAddr,
    /// Request method.
    pub method: Method,
    /// Request target as received.
    pub uri: Uri,
    /// Request protocol version.
    pub version: Version,
    /// `Host` (or `:authority`).
    pub host: Option<HeaderValue>,
    /// `Referer`.
    pub referer: Option<HeaderValue>,
    /// `User-Agent`.
    pub user_agent: Option<HeaderValue>,
    /// Response status.
    pub status: StatusCode,
    /// Response `Content-Length`, when known.
    pub bytes: Option<u64>,
    /// Time from request arrival to response head.
    pub duration: Duration,
    /// Upstream instance that answered (None for local responses).
    pub upstream: Option<String>,
    /// The request id sent upstream.
    pub request_id: Option<HeaderValue>,
}

#[derive(Serialize)]
struct JsonLine<'a> {
    time: String,
    client: String,
    method: &'a str,
    uri: String,
    protocol: &'a str,
    host: Option<&'a str>,
    status: u16,
    bytes: Option<u64>,
    duration_ms: f64,
    upstream: Option<&'a str>,
    request_id: Option<&'a str>,
    referer: Option<&'a str>,
    user_agent: Option<&'a str>,
}

impl Entry {
    /// Apache combined format plus request time (µs) and request id:
    /// `ip - - [10/Oct/2000:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "ref" "ua" 153 id`.
    pub fn combined(&self) -> String {
        let time = chrono::DateTime::<chrono::Utc>::from(self.time).format("%d/%b/%Y:%H:%M:%S %z");
        let bytes = self.bytes.map_or_else(|| "-".to_string(), |b| b.to_string());
        format!(
            "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\" {} {}\n",
            self.client,
            time,
            self.method,
            escape(&self.uri.to_string()),
            version_str(self.version),
            self.status.as_u16(),
            bytes,
            escape(header_str(&self.referer).unwrap_or("-")),
            escape(header_str(&self.user_agent).unwrap_or("-")),
            self.duration.as_micros(),
            header_str(&self.request_id).unwrap_or("-"),
        )
    }

    /// One JSON object per line.
    pub fn json(&self) -> String {
        let line = JsonLine {
            time: chrono::DateTime::<chrono::Utc>::from(self.time).to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            client: self.client.to_string(),
            method: self.method.as_str(),
            uri: self.uri.to_string(),
            protocol: version_str(self.version),
            host: header_str(&self.host),
            status: self.status.as_u16(),
            bytes: self.bytes,
            duration_ms: self.duration.as_secs_f64() * 1e3,
            upstream: self.upstream.as_deref(),
            request_id: header_str(&self.request_id),
            referer: header_str(&self.referer),
            user_agent: header_str(&self.user_agent),
        };
        let mut s = serde_json::to_string(&line).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        s.push('\n');
        s
    }
}

fn header_str(v: &Option<HeaderValue>) -> Option<&str> {
    v.as_ref().and_then(|v| v.to_str().ok())
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Escapes `"` and `\` and control bytes so a quoted field cannot break the line.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            started: Duration::ZERO,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136),
            client: "10.0.0.1".parse().expect("ip"),
            method: Method::GET,
            uri: "/a?b=1".parse().expect("uri"),
            version: Version::HTTP_11,
            host: Some(HeaderValue::from_static("api.test")),
            referer: None,
            user_agent: Some(HeaderValue::from_static("evil\" agent")),
            status: StatusCode::OK,
            bytes: Some(12),
            duration: Duration::from_micros(153),
            upstream: Some("127.0.0.1:9000".into()),
            request_id: Some(HeaderValue::from_static("abc")),
        }
    }

    #[test]
    fn combined_line_is_apache_combined_with_escaped_quotes() {
        assert_eq!(
            entry().combined(),
            "10.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /a?b=1 HTTP/1.1\" 200 12 \"-\" \"evil\\\" agent\" 153 abc\n"
        );
    }

    #[test]
    fn json_line_parses_back_with_every_field() {
        let line = entry().json();
        assert!(line.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).expect("valid json");
        assert_eq!(v["status"], 200);
        assert_eq!(v["uri"], "/a?b=1");
        assert_eq!(v["user_agent"], "evil\" agent");
        assert_eq!(v["upstream"], "127.0.0.1:9000");
        assert_eq!(v["time"], "2000-10-10T13:55:36.000Z");
        assert_eq!(v["referer"], serde_json::Value::Null);
    }

    #[test]
    fn off_format_writes_nothing() {
        let (log, rx) = AccessLog::channel();
        log.write(AccessLogFormat::Off, &entry());
        log.write(AccessLogFormat::Json, &entry());
        assert_eq!(rx.try_iter().count(), 1);
    }
}
