//! The WebSocket-over-HTTP requests of one connection: the request line and the headers fixed by
//! the client's handshake (validated once, kept as a `HeadPrefix`), then per request the
//! signature, the connection's meta and the events. Header rules follow Pushpin (see
//! `proto::wsoh`'s module docs); every byte goes through the one head encoder.

use std::net::SocketAddr;
use std::rc::Rc;

use super::settings::RouteRef;
use crate::proto::grip;
use crate::proto::http1::{self, EncodeError, HeadPrefix, HeadWriter, RequestHead, header_value};
use crate::proto::wsoh::{self, Event};

/// Client handshake headers that never reach the origin in a WebSocket-over-HTTP request
/// (besides hop-by-hop ones and those only the proxy sets).
const DROPPED: [&str; 12] = [
    "host",
    "connection",
    "keep-alive",
    "accept-encoding",
    "content-encoding",
    "transfer-encoding",
    "expect",
    "sec-websocket-extensions",
    "upgrade",
    "accept",
    "content-length",
    "content-type",
];

/// The parts of every request of one connection that never change.
pub struct RequestTemplate {
    /// The route the handshake took, with the settings snapshot it belongs to: every request
    /// of the connection goes to this route's origin, signed with its key, whatever a reload
    /// does to the routes table meanwhile.
    route: RouteRef,
    /// Request line and fixed headers (no blank line yet), validated once.
    head: HeadPrefix,
    /// The Host header sent (a TLS origin's certificate is checked against it); shared with
    /// each exchange's task rather than copied per request.
    host: Option<Rc<[u8]>>,
}

fn dropped(name: &str) -> bool {
    DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
        || grip::is_proxy_only_request_header(name)
        || http1::is_hop_by_hop(name)
        || name.eq_ignore_ascii_case("x-forwarded-for")
        || name.eq_ignore_ascii_case("x-forwarded-proto")
}

impl RequestTemplate {
    /// Fixes the request line and headers from the client's handshake.
    pub fn new(
        head: &RequestHead,
        route: RouteRef,
        peer: SocketAddr,
        tls: bool,
        connection_id: &str,
    ) -> Result<RequestTemplate, EncodeError> {
        let r = route.route();
        let path = r.origin_path(&head.target);
        let mut out = HeadWriter::request("POST", &path, 1024);
        let host_override = r
            .as_host
            .as_deref()
            .or(r.targets.first().and_then(|t| t.host_header.as_deref()));
        let host = host_override
            .map(str::as_bytes)
            .or_else(|| header_value(&head.headers, "host"));
        if let Some(host) = host {
            out.header("Host", host);
        }
        for h in head.headers.iter().filter(|h| !dropped(&h.name)) {
            out.header(&h.name, &h.value);
        }
        let cfg = &route.settings().config.origin;
        if cfg.x_forwarded_for {
            let mut xff: Vec<u8> = head
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
                .flat_map(|h| h.value.iter().copied().chain(*b", "))
                .collect();
            xff.extend_from_slice(peer.ip().to_string().as_bytes());
            out.header("X-Forwarded-For", &xff);
        }
        if cfg.x_forwarded_proto {
            out.header(
                "X-Forwarded-Proto",
                if tls { &b"https"[..] } else { b"http" },
            );
        }
        if !r.no_grip {
            out.header("Sec-WebSocket-Extensions", b"grip");
        }
        out.header("Accept", wsoh::CONTENT_TYPE.as_bytes());
        out.header("Content-Type", wsoh::CONTENT_TYPE.as_bytes());
        out.header("Connection-Id", connection_id.as_bytes());
        let head = out.into_prefix()?;
        let host = host.map(Rc::from);
        Ok(RequestTemplate { route, head, host })
    }

    /// One request carrying `events`, with the connection's current meta.
    pub fn build(
        &self,
        events: &[Event],
        meta: &[(String, String)],
    ) -> Result<Vec<u8>, EncodeError> {
        let body_len: usize = events.iter().map(wsoh::encoded_len).sum();
        let mut out = HeadWriter::resume(&self.head, 512);
        if let Some(token) = self.route.signer().and_then(|s| s.token()) {
            out.header("Grip-Sig", token.as_bytes());
            out.header("Grip-Feature", super::proxy::GRIP_FEATURES.as_bytes());
        }
        for (name, value) in meta {
            out.header(&format!("Meta-{name}"), value.as_bytes());
        }
        out.header("Content-Length", body_len.to_string().as_bytes());
        let mut out = out.finish()?;
        out.reserve(body_len);
        for e in events {
            wsoh::encode_event(&mut out, e);
        }
        Ok(out)
    }

    pub fn route(&self) -> RouteRef {
        self.route.clone()
    }

    pub fn host(&self) -> Option<Rc<[u8]>> {
        self.host.clone()
    }
}
