//! `application/problem+json` answers (RFC 9457) for requests the admin listener
//! refuses: unknown path, wrong method, a scrape that could not be encoded.

use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

/// Longest part of a request path repeated in a problem body; a longer one is cut and
/// marked with `…` (a hostile client must not make the answer as large as its request).
pub const MAX_ECHOED_PATH: usize = 256;

/// A problem document: `status`, `title` (the status' reason) and `detail`; `instance`
/// names the request path at fault.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status' reason phrase, e.g. `Not Found`.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, in words.
    pub detail: String,
    /// The request path (cut to [`MAX_ECHOED_PATH`] bytes).
    pub instance: String,
    /// Methods the path answers, for `405`.
    #[serde(skip)]
    pub allow: Option<&'static str>,
}

impl Problem {
    /// A problem with `status` about request path `path`.
    pub fn new(status: StatusCode, path: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            instance: echo_path(path),
            allow: None,
        }
    }

    /// `404`: nothing is served at `path`.
    pub fn not_found(path: &str) -> Self {
        let shown = echo_path(path);
        Problem::new(StatusCode::NOT_FOUND, path, format!("no such endpoint: {shown}"))
    }

    /// `405`: `path` exists but not for `method`; it answers `allow`.
    pub fn method_not_allowed(method: &http::Method, path: &str, allow: &'static str) -> Self {
        let shown = echo_path(path);
        let method: String = method.as_str().chars().take(32).collect();
        let mut p = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            path,
            format!("{shown} answers {allow}, not {method}"),
        );
        p.allow = Some(allow);
        p
    }
}

/// `path` cut to [`MAX_ECHOED_PATH`] bytes at a character boundary.
fn echo_path(path: &str) -> String {
    if path.len() <= MAX_ECHOED_PATH {
        return path.to_string();
    }
    let mut end = MAX_ECHOED_PATH;
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &path[..end])
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_at_a_character_boundary() {
        let long = format!("/{}", "é".repeat(400));
        let p = Problem::not_found(&long);
        assert!(p.instance.ends_with('…'));
        assert!(p.instance.len() <= MAX_ECHOED_PATH + '…'.len_utf8());
        assert_eq!(p.status, 404);
        assert_eq!(p.title, "Not Found");
        assert_eq!(Problem::not_found("/x").instance, "/x");
        assert_eq!(Problem::not_found("/x").detail, "no such endpoint: /x");
    }

    #[test]
    fn method_not_allowed_names_the_methods() {
        let p = Problem::method_not_allowed(&http::Method::DELETE, "/metrics", "GET, HEAD");
        assert_eq!(p.detail, "/metrics answers GET, HEAD, not DELETE");
        assert_eq!(p.allow, Some("GET, HEAD"));
        let r = p.into_response();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
