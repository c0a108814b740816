//! [`Reply`]: the response the request path hands to the client side, kept as the
//! upstream sent it when it was relayed, so our HTTP/1.1 loop can write its head as bytes
//! ([`ResponseHead::encode_client_head`]) and only hyper's connections (HTTP/2, and
//! HTTP/1.1 handed over) pay for turning it into an `http::Response`.

use crate::body::ResponseBody;
use crate::forward;
use crate::upstream::codec::ResponseHead;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

/// A response on its way to the client.
#[derive(Debug)]
pub enum Reply {
    /// Relayed from an upstream: its head as received (hop-by-hop fields marked, not yet
    /// removed), the fields ballast adds, and the body read off the upstream connection.
    Relayed {
        /// The upstream's head.
        head: ResponseHead,
        /// What ballast adds to it.
        added: Added,
        /// The body.
        body: ResponseBody,
    },
    /// Made by ballast (an error) or already an `http::Response` (a protocol switch).
    Local(Response<ResponseBody>),
}

/// The fields ballast adds to a relayed response.
#[derive(Debug)]
pub struct Added {
    /// `X-Request-Id`: the request's id (None: `request_id` forwarding is off).
    pub request_id: Option<HeaderValue>,
    /// `Set-Cookie` pinning the client to the instance (affinity), when the pick moved.
    pub set_cookie: Option<HeaderValue>,
}

impl Reply {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Relayed { head, .. } => head.status(),
            Reply::Local(resp) => resp.status(),
        }
    }

    /// The body.
    pub fn body(&self) -> &ResponseBody {
        match self {
            Reply::Relayed { body, .. } => body,
            Reply::Local(resp) => resp.body(),
        }
    }

    /// The body, taken.
    pub fn into_body(self) -> ResponseBody {
        match self {
            Reply::Relayed { body, .. } => body,
            Reply::Local(resp) => resp.into_body(),
        }
    }

    /// As an `http::Response` (for hyper): hop-by-hop fields removed, ours added.
    pub fn into_response(self) -> Response<ResponseBody> {
        match self {
            Reply::Relayed { head, added, body } => {
                let mut parts = head.into_client_parts();
                if let Some(id) = added.request_id {
                    parts.headers.insert(forward::X_REQUEST_ID.clone(), id);
                }
                if let Some(c) = added.set_cookie {
                    parts.headers.append(header::SET_COOKIE, c);
                }
                Response::from_parts(parts, body)
            }
            Reply::Local(resp) => resp,
        }
    }
}
