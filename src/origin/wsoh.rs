//! WebSocket-over-HTTP requests to the origin: the request built from the client's handshake
//! (fixed for the connection) plus each batch of events, and one exchange that reads the answer
//! whole. Header rules follow Pushpin (see `proto::wsoh`'s module docs).

use std::net::SocketAddr;
use std::rc::Rc;

use super::client::{self, FullResponse, OriginError};
use crate::proto::grip;
use crate::proto::http1::{self, EncodeError, HeadPrefix, HeadWriter, RequestHead, header_value};
use crate::proto::wsoh::{self, Event};
use crate::runtime::settings::RouteRef;
use crate::runtime::worker::Worker;

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

/// The origin's answer to one request.
pub type Reply = FullResponse;

/// Whether an answer is a WebSocket-over-HTTP answer (200 with the exact content type).
pub fn is_events(reply: &Reply) -> bool {
    reply.code == 200
        && header_value(&reply.headers, "content-type") == Some(wsoh::CONTENT_TYPE.as_bytes())
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
            out.header(
                "Grip-Feature",
                crate::runtime::proxy::GRIP_FEATURES.as_bytes(),
            );
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

/// Sends one request to the route's targets (in order) and reads the answer whole.
pub async fn exchange(
    w: Rc<Worker>,
    route: RouteRef,
    host: Option<Rc<[u8]>>,
    request: Vec<u8>,
) -> Result<Reply, OriginError> {
    let max = route.settings().config.websocket.origin_body_bytes_max;
    client::fetch(&w, &route, host.as_deref(), "POST", request, max).await
}

/// True when an error means the request never reached the origin, so sending it again cannot
/// duplicate anything (Pushpin retries exactly these).
pub fn is_retryable(e: &OriginError) -> bool {
    matches!(
        e,
        OriginError::Connect { .. } | OriginError::ConnectTimeout(_)
    )
}
