//! WebSocket-over-HTTP requests to the origin: the request built from the client's handshake
//! (fixed for the connection) plus each batch of events, and one exchange that reads the answer
//! whole. Header rules follow Pushpin (see `proto::wsoh`'s module docs).

use std::net::SocketAddr;
use std::rc::Rc;

use super::client::{self, FullResponse, OriginError};
use crate::proto::http1::{self, RequestHead, header_value};
use crate::proto::wsoh::{self, Event};
use crate::runtime::worker::Worker;

/// Client handshake headers that never reach the origin in a WebSocket-over-HTTP request.
const DROPPED: [&str; 15] = [
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
    "connection-id",
    "content-length",
    "content-type",
    "x-forwarded-for",
    "x-forwarded-proto",
];

/// The parts of every request of one connection that never change.
pub struct RequestTemplate {
    route_index: usize,
    /// Request line and fixed headers, ending with a CRLF (no blank line yet). Boxed to its
    /// exact length: it lives as long as the WebSocket.
    head: Box<[u8]>,
    /// The Host header sent (a TLS origin's certificate is checked against it); shared with
    /// each exchange's task rather than copied per request.
    host: Option<Rc<[u8]>>,
}

/// The origin's answer to one request.
pub type Reply = FullResponse;

/// Whether an answer is a WebSocket-over-HTTP answer (200 with the exact content type).
pub fn is_events(reply: &Reply) -> bool {
    reply.code == 200
        && header_value(&reply.headers, "content-type") == Some(wsoh::CONTENT_TYPE.as_bytes())
}

fn dropped(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    DROPPED.contains(&lower.as_str())
        || lower.starts_with("grip-")
        || lower.starts_with("meta-")
        || http1::is_hop_by_hop(&lower)
}

impl RequestTemplate {
    /// Fixes the request line and headers from the client's handshake.
    pub fn new(
        w: &Worker,
        head: &RequestHead,
        route_index: usize,
        peer: SocketAddr,
        tls: bool,
        connection_id: &str,
    ) -> RequestTemplate {
        let settings = w.settings();
        let route = settings.routes.route(route_index);
        let mut out = Vec::with_capacity(1024);
        let path = route.origin_path(&head.target);
        out.extend_from_slice(format!("POST {path} HTTP/1.1\r\n").as_bytes());
        let host_override = route
            .as_host
            .as_deref()
            .or(route.targets.first().and_then(|t| t.host_header.as_deref()));
        let host = host_override
            .map(str::as_bytes)
            .or_else(|| header_value(&head.headers, "host"));
        if let Some(host) = host {
            http1::encode_header(&mut out, "Host", host);
        }
        for h in head.headers.iter().filter(|h| !dropped(&h.name)) {
            http1::encode_header(&mut out, &h.name, &h.value);
        }
        let cfg = &w.settings().config.origin;
        if cfg.x_forwarded_for {
            let mut xff: Vec<u8> = head
                .headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("x-forwarded-for"))
                .flat_map(|h| h.value.iter().copied().chain(*b", "))
                .collect();
            xff.extend_from_slice(peer.ip().to_string().as_bytes());
            http1::encode_header(&mut out, "X-Forwarded-For", &xff);
        }
        if cfg.x_forwarded_proto {
            http1::encode_header(
                &mut out,
                "X-Forwarded-Proto",
                if tls { &b"https"[..] } else { b"http" },
            );
        }
        if !route.no_grip {
            http1::encode_header(&mut out, "Sec-WebSocket-Extensions", b"grip");
        }
        http1::encode_header(&mut out, "Accept", wsoh::CONTENT_TYPE.as_bytes());
        http1::encode_header(&mut out, "Content-Type", wsoh::CONTENT_TYPE.as_bytes());
        http1::encode_header(&mut out, "Connection-Id", connection_id.as_bytes());
        RequestTemplate {
            route_index,
            head: out.into_boxed_slice(),
            host: host.map(Rc::from),
        }
    }

    /// One request carrying `events`, with the connection's current meta.
    pub fn build(&self, w: &Worker, events: &[Event], meta: &[(String, String)]) -> Vec<u8> {
        let body_len: usize = events.iter().map(wsoh::encoded_len).sum();
        let mut out = Vec::with_capacity(self.head.len() + 512 + body_len);
        out.extend_from_slice(&self.head);
        if let Some(token) = w
            .settings()
            .signers
            .for_route(self.route_index)
            .and_then(|s| s.token())
        {
            http1::encode_header(&mut out, "Grip-Sig", token.as_bytes());
            http1::encode_header(
                &mut out,
                "Grip-Feature",
                crate::runtime::proxy::GRIP_FEATURES.as_bytes(),
            );
        }
        for (name, value) in meta {
            http1::encode_header(&mut out, &format!("Meta-{name}"), value.as_bytes());
        }
        http1::encode_header(&mut out, "Content-Length", body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        for e in events {
            wsoh::encode_event(&mut out, e);
        }
        out
    }

    pub fn route_index(&self) -> usize {
        self.route_index
    }

    pub fn host(&self) -> Option<Rc<[u8]>> {
        self.host.clone()
    }
}

/// Sends one request to the route's targets (in order) and reads the answer whole.
pub async fn exchange(
    w: Rc<Worker>,
    route_index: usize,
    host: Option<Rc<[u8]>>,
    request: Vec<u8>,
) -> Result<Reply, OriginError> {
    let max = w.settings().config.websocket.origin_body_bytes_max;
    client::fetch(&w, route_index, host.as_deref(), "POST", request, max).await
}

/// True when an error means the request never reached the origin, so sending it again cannot
/// duplicate anything (Pushpin retries exactly these).
pub fn is_retryable(e: &OriginError) -> bool {
    matches!(
        e,
        OriginError::Connect { .. } | OriginError::ConnectTimeout(_)
    )
}
