//! Client WebSocket upgrades: the RFC 6455 handshake, the opening exchange with the origin, and
//! the hand-off to the long-lived session (`wsoh` for `over_http` routes).
//!
//! `open` runs inside the request's (boxed, short-lived) future and returns the session; the
//! session then runs in the connection's own small future for as long as the socket lives.

use std::net::SocketAddr;

use super::client::{ClientConn, ClientError, Outcome};
use super::proxy::Step;
use super::settings::RouteRef;
use super::wsoh::{self, WsohSession};
use super::wsoh_request::RequestTemplate;
use crate::metrics::WorkerMetrics;
use crate::origin::wsoh as origin_wsoh;
use crate::proto::http1::{self, HeadWriter, RequestHead, Version};
use crate::proto::ws;
use crate::proto::wsoh::{self as codec, Event};

/// A WebSocket that completed its handshake, ready to run.
pub enum WsSession {
    OverHttp(Box<WsohSession>),
    Passthrough(Box<super::ws_passthrough::PassSession>),
}

/// Runs an open WebSocket session. An async block rather than an async fn (whose future keeps
/// the arguments twice): this future is most of an idle WebSocket's memory. The passthrough
/// session's future is boxed: it is the larger one, and such a connection has an origin socket
/// and buffers anyway.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
pub fn run(conn: &mut ClientConn, session: WsSession) -> impl Future<Output = Outcome> + '_ {
    async move {
        match session {
            WsSession::OverHttp(s) => wsoh::run(conn, s).await,
            WsSession::Passthrough(s) => Box::pin(super::ws_passthrough::run(conn, s)).await,
        }
    }
}

fn header_pairs(head: &RequestHead) -> impl Iterator<Item = (&str, &[u8])> + Clone {
    head.headers
        .iter()
        .map(|h| (h.name.as_str(), h.value.as_slice()))
}

/// Handles an upgrade request for `route` up to the 101 (or a refusal).
pub async fn open(conn: &mut ClientConn, head: RequestHead, route: RouteRef) -> Step {
    let handshake = match ws::validate_handshake(
        &head.method,
        head.version == Version::Http11,
        header_pairs(&head),
    ) {
        Ok(h) => h,
        Err(e) => {
            tracing::info!(peer = %conn.peer, "websocket handshake refused: {e}");
            let body = format!("{e}\n");
            let extra: &[(&str, &str)] = if e.status() == 426 {
                &[("Sec-WebSocket-Version", "13")]
            } else {
                &[]
            };
            let resp =
                http1::simple_response(e.status(), "text/plain", extra, body.as_bytes(), true);
            let _ = conn.write(resp).await;
            return Step::Done(Outcome::Close);
        }
    };
    if !route.route().targets.iter().any(|t| t.over_http) {
        return super::ws_passthrough::open(conn, &head, route, &handshake.key).await;
    }
    open_over_http(conn, &head, route, &handshake.key).await
}

/// Headers of the origin's OPEN answer that the client's 101 carries (as Pushpin: all but the
/// ones about the WebSocket-over-HTTP exchange itself and hop-by-hop ones).
fn passes_to_101(name: &str) -> bool {
    const EXCHANGE: [&str; 6] = [
        "content-length",
        "content-type",
        "keep-alive-interval",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
    ];
    let lower = name.to_ascii_lowercase();
    !EXCHANGE.contains(&lower.as_str())
        && !lower.starts_with("set-meta-")
        && !lower.starts_with("grip-")
        && !http1::is_hop_by_hop(&lower)
}

fn connection_id(peer: SocketAddr) -> String {
    format!("{:016x}-{}", fastrand::u64(..), peer.port())
}

/// The OPEN exchange: the origin must answer 200 `application/websocket-events` starting with
/// OPEN; any other status is passed to the client, a malformed 200 is a 502.
async fn open_over_http(
    conn: &mut ClientConn,
    head: &RequestHead,
    route: RouteRef,
    key: &str,
) -> Step {
    let w = conn.w.clone();
    let built = RequestTemplate::new(head, route, conn.peer, conn.tls, &connection_id(conn.peer))
        .and_then(|template| {
            let request = template.build(&[Event::Open], &[])?;
            Ok((template, request))
        });
    let (template, request) = match built {
        Ok(built) => built,
        Err(e) => {
            WorkerMetrics::inc(&w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "websocket open: request not sent: {e}");
            conn.send_error(&ClientError::new(502, "Error while proxying to origin"))
                .await;
            return Step::Done(Outcome::Close);
        }
    };
    let reply = match origin_wsoh::exchange(
        &w.origin,
        &template.route(),
        template.host().as_deref(),
        request,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(peer = %conn.peer, "websocket open: {e}");
            let msg = if e.status() == 504 {
                "Timed out waiting for the origin"
            } else {
                "Error while proxying to origin"
            };
            conn.send_error(&ClientError::new(e.status(), msg)).await;
            return Step::Done(Outcome::Close);
        }
    };
    if !origin_wsoh::is_events(&reply) {
        return refuse_with_origin_answer(conn, &reply).await;
    }
    let mut events = match codec::decode_events(&reply.body) {
        Ok(events) if events.first() == Some(&Event::Open) => events,
        other => {
            tracing::warn!("websocket open: origin accepted without OPEN ({other:?})");
            conn.send_error(&ClientError::new(502, "Error while proxying to origin"))
                .await;
            return Step::Done(Outcome::Close);
        }
    };
    events.remove(0);
    let protocol = http1::header_value(&reply.headers, "sec-websocket-protocol")
        .and_then(|v| std::str::from_utf8(v).ok());
    let passed: Vec<(&str, &[u8])> = reply
        .headers
        .iter()
        .filter(|h| passes_to_101(&h.name))
        .map(|h| (h.name.as_str(), h.value.as_slice()))
        .collect();
    let resp101 = match ws::response_101(&ws::accept_key(key), protocol, &passed) {
        Ok(head) => head,
        Err(e) => {
            WorkerMetrics::inc(&w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "websocket open: origin's headers refused: {e}");
            conn.send_error(&ClientError::new(502, "Invalid response from origin"))
                .await;
            return Step::Done(Outcome::Close);
        }
    };
    if conn.write(resp101).await.is_err() {
        return Step::Done(Outcome::Close);
    }
    let session = WsohSession::new(&w, template, &reply, events);
    Step::WebSocket(WsSession::OverHttp(Box::new(session)))
}

/// The origin refused the WebSocket: the client gets its status, headers and body.
async fn refuse_with_origin_answer(conn: &mut ClientConn, reply: &origin_wsoh::Reply) -> Step {
    tracing::info!(code = reply.code, "websocket open refused by origin");
    let body = &reply.body[..reply.body.len().min(100_000)];
    let mut out = HeadWriter::response(Version::Http11, reply.code, &reply.reason, 256);
    for h in &reply.headers {
        let hop = http1::is_hop_by_hop(&h.name) || h.name.eq_ignore_ascii_case("content-length");
        if !hop && !crate::proto::grip::is_grip_header(&h.name) {
            out.header(&h.name, &h.value);
        }
    }
    out.header("Content-Length", body.len().to_string().as_bytes());
    out.header("Connection", b"close");
    match out.finish() {
        Ok(mut out) => {
            out.extend_from_slice(body);
            let _ = conn.write(out).await;
        }
        Err(e) => {
            WorkerMetrics::inc(&conn.w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "websocket refusal from origin refused: {e}");
            conn.send_error(&ClientError::new(502, "Invalid response from origin"))
                .await;
        }
    }
    Step::Done(Outcome::Close)
}
