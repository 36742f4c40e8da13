//! A client WebSocket proxied to the origin's own WebSocket (routes without `over_http`).
//!
//! Frames are decoded on both sides (so both are validated and control frames answered here),
//! client messages are re-sent masked to the origin, origin messages go to the client through the
//! outbox behind publishes. When the origin accepts the `grip` extension its `c:` control messages
//! subscribe the connection like over HTTP, and its messages carry the prefix that is stripped.

use std::io;

use super::client::{ClientConn, ClientError, Outcome, Read};
use super::conns::{Sink, ev};
use super::grip_ws::{GripWs, queue_close, queue_frame};
use super::proxy::{GRIP_FEATURES, Step};
use super::settings::RouteRef;
use super::websocket::WsSession;
use super::ws_guard::ClientGuard;
use crate::metrics::WorkerMetrics;
use crate::origin::client::{self as origin, OriginResponse};
use crate::origin::stream::OriginStream;
use crate::proto::grip;
use crate::proto::http1::{self, EncodeError, HeadWriter, RequestHead, Version, header_value};
use crate::proto::ws::{self, Message, Opcode};
use crate::proto::wsoh;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// One side sent a close frame; waiting for the other's until the deadline.
    Closing {
        deadline_ms: u64,
    },
    Ending,
}

pub struct PassSession {
    origin: OriginStream,
    /// Unparsed bytes from the origin (empty and unallocated while idle).
    origin_buf: Vec<u8>,
    client_ws: ws::Session,
    origin_ws: ws::Session,
    grip: GripWs,
    guard: ClientGuard,
    state: State,
}

/// Client handshake headers that the origin does not get as they are.
fn dropped(name: &str) -> bool {
    const DROPPED: [&str; 5] = [
        "host",
        "sec-websocket-extensions",
        "x-forwarded-for",
        "x-forwarded-proto",
        "content-length",
    ];
    (http1::is_hop_by_hop(name) && !name.eq_ignore_ascii_case("upgrade"))
        || DROPPED.iter().any(|d| name.eq_ignore_ascii_case(d))
        || grip::is_proxy_only_request_header(name)
}

fn upgrade_request(
    conn: &ClientConn,
    head: &RequestHead,
    route: &RouteRef,
    host: Option<&[u8]>,
) -> Result<Vec<u8>, EncodeError> {
    let r = route.route();
    let cfg = &route.settings().config.origin;
    let mut out = HeadWriter::request("GET", &r.origin_path(&head.target), 1024);
    if let Some(host) = host.or_else(|| header_value(&head.headers, "host")) {
        out.header("Host", host);
    }
    out.header("Connection", b"Upgrade");
    for h in head.headers.iter().filter(|h| !dropped(&h.name)) {
        out.header(&h.name, &h.value);
    }
    if cfg.x_forwarded_for {
        out.header("X-Forwarded-For", conn.peer.ip().to_string().as_bytes());
    }
    if cfg.x_forwarded_proto {
        let proto = if conn.tls { &b"https"[..] } else { b"http" };
        out.header("X-Forwarded-Proto", proto);
    }
    if !r.no_grip {
        out.header("Sec-WebSocket-Extensions", b"grip");
    }
    if let Some(token) = route.signer().and_then(|s| s.token()) {
        out.header("Grip-Sig", token.as_bytes());
        out.header("Grip-Feature", GRIP_FEATURES.as_bytes());
    }
    out.finish()
}

async fn connect(
    conn: &ClientConn,
    head: &RequestHead,
    route: &RouteRef,
) -> Result<OriginResponse, origin::OriginError> {
    let w = &conn.w;
    let mut last = None;
    for (t, target) in route.route().targets.iter().enumerate() {
        let host = route
            .route()
            .as_host
            .as_deref()
            .or(target.host_header.as_deref())
            .map(str::as_bytes);
        let request = upgrade_request(conn, head, route, host).map_err(|e| {
            WorkerMetrics::inc(&w.metrics.heads_refused);
            origin::OriginError::RequestHead(e)
        })?;
        let tls_host = host.or_else(|| header_value(&head.headers, "host"));
        let dest = match origin::dest(route, t, tls_host) {
            Ok(d) => d,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        match origin::send(&w.origin, &route.settings().config, &dest, "GET", request).await {
            Ok(resp) => return Ok(resp),
            Err(e @ origin::OriginError::Timeout(_)) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(origin::OriginError::Closed(conn.peer)))
}

/// Opens the origin's WebSocket and answers the client's handshake with its result.
pub async fn open(conn: &mut ClientConn, head: &RequestHead, route: RouteRef, key: &str) -> Step {
    let w = conn.w.clone();
    let mut resp = match connect(conn, head, &route).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(peer = %conn.peer, "websocket passthrough: {e}");
            conn.send_error(&ClientError::new(
                e.status(),
                "Error while proxying to origin",
            ))
            .await;
            return Step::Done(Outcome::Close);
        }
    };
    if resp.head.code != 101 {
        return refuse(conn, resp).await;
    }
    let accept = ws::accept_key(key);
    if header_value(&resp.head.headers, "sec-websocket-accept") != Some(accept.as_bytes()) {
        tracing::warn!("websocket passthrough: origin sent a wrong Sec-WebSocket-Accept");
        conn.send_error(&ClientError::new(502, "Error while proxying to origin"))
            .await;
        return Step::Done(Outcome::Close);
    }
    let r = route.route();
    let extensions: Vec<&[u8]> = resp
        .head
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
        .map(|h| h.value.as_slice())
        .collect();
    let prefix = if r.no_grip {
        None
    } else {
        wsoh::grip_extension(&extensions)
    };
    let protocol = header_value(&resp.head.headers, "sec-websocket-protocol")
        .and_then(|v| std::str::from_utf8(v).ok());
    let resp101 = match ws::response_101(&accept, protocol, &[]) {
        Ok(head) => head,
        Err(e) => {
            WorkerMetrics::inc(&w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "websocket passthrough: origin's 101 refused: {e}");
            conn.send_error(&ClientError::new(502, "Invalid response from origin"))
                .await;
            return Step::Done(Outcome::Close);
        }
    };
    if conn.write(resp101).await.is_err() {
        return Step::Done(Outcome::Close);
    }
    let limits = |require_mask| ws::SessionLimits {
        message_bytes_max: route.settings().config.websocket.message_bytes_max,
        require_mask,
    };
    let grip = GripWs::new(prefix, r.prefix.clone());
    resp.buf.shrink_to_fit();
    let (origin, origin_buf) = resp.into_upgraded();
    let session = PassSession {
        origin,
        origin_buf,
        client_ws: ws::Session::new(limits(true)),
        origin_ws: ws::Session::new(limits(false)),
        grip,
        guard: ClientGuard::default(),
        state: State::Open,
    };
    Step::WebSocket(WsSession::Passthrough(Box::new(session)))
}

/// The origin did not switch protocols: the client gets its answer.
async fn refuse(conn: &mut ClientConn, mut resp: OriginResponse) -> Step {
    let cfg = &conn.w.settings().config.origin;
    let body = resp
        .read_body(cfg.instruct_body_bytes_max, cfg.response_timeout_ms)
        .await
        .unwrap_or_default();
    let head = resp.head.clone();
    resp.finish(&conn.w.origin, false);
    let mut out = HeadWriter::response(Version::Http11, head.code, &head.reason, 256);
    for (name, value) in super::proxy::client_visible(&head.headers, true) {
        out.header(&name, &value);
    }
    out.header("Content-Length", body.len().to_string().as_bytes());
    out.header("Connection", b"close");
    match out.finish() {
        Ok(mut out) => {
            out.extend_from_slice(&body);
            let _ = conn.write(out).await;
        }
        Err(e) => {
            WorkerMetrics::inc(&conn.w.metrics.heads_refused);
            tracing::warn!(peer = %conn.peer, "websocket passthrough refusal refused: {e}");
            conn.send_error(&ClientError::new(502, "Invalid response from origin"))
                .await;
        }
    }
    Step::Done(Outcome::Close)
}

enum Woke {
    Client,
    Origin,
    Writable,
    Events(u16),
}

async fn wait(
    conn: &ClientConn,
    origin: &OriginStream,
    read_client: bool,
    read_origin: bool,
    write: bool,
) -> io::Result<Woke> {
    let w = &conn.w;
    let id = conn.id;
    let events = std::future::poll_fn(|cx| w.poll_events(id, cx));
    monoio::select! {
        e = events => Ok(Woke::Events(e)),
        r = conn.stream.readable(false), if read_client => r.map(|_| Woke::Client),
        r = origin.readable(), if read_origin => r.map(|_| Woke::Origin),
        r = conn.stream.writable(false), if write => r.map(|_| Woke::Writable),
    }
}

pub async fn run(conn: &mut ClientConn, mut s: Box<PassSession>) -> Outcome {
    let w = conn.w.clone();
    w.set_sink(conn.id, Sink::WebSocket);
    let mut to_origin = s.on_origin_bytes(conn);
    loop {
        if !to_origin.is_empty()
            && s.send_to_origin(std::mem::take(&mut to_origin))
                .await
                .is_err()
        {
            s.origin_gone(conn);
        }
        if !w.flush_conn(conn.id) {
            return Outcome::Close;
        }
        if s.state == State::Ending {
            return Outcome::Close;
        }
        if let Some(at) = s.next_deadline(&w.settings().config.websocket) {
            w.schedule(conn.id, at);
        }
        conn.release_idle_buffer();
        let read_client =
            !s.client_ws.is_closed() && conn.inbuf().len() < ws::PENDING_BYTES_MAX.max(16_384);
        let read_origin = !s.origin_ws.is_closed();
        let blocked = w
            .conns
            .borrow()
            .get(conn.id)
            .is_some_and(|c| c.write_blocked);
        match wait(conn, &s.origin, read_client, read_origin, blocked).await {
            Ok(Woke::Client) => match conn.read_now() {
                Read::Bytes(_) => to_origin = s.on_client_bytes(conn),
                Read::NotReady => {}
                Read::Eof | Read::Failed => s.state = State::Ending,
            },
            Ok(Woke::Origin) => match s.read_origin(conn).await {
                Ok(n) if n > 0 => to_origin = s.on_origin_bytes(conn),
                _ => s.origin_gone(conn),
            },
            Ok(Woke::Writable) => {}
            Ok(Woke::Events(e)) => {
                if e & ev::DEAD != 0 {
                    return Outcome::Close;
                }
                to_origin = s.on_events(conn, e);
            }
            Err(_) => s.state = State::Ending,
        }
    }
}

impl PassSession {
    fn next_deadline(&self, cfg: &crate::config::WebSocketConfig) -> Option<u64> {
        let closing = match self.state {
            State::Closing { deadline_ms } => Some(deadline_ms),
            _ => self.guard.deadline(cfg),
        };
        match (closing, self.grip.keep_alive_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn closing(&mut self, conn: &ClientConn) {
        if self.state == State::Open {
            let deadline_ms = conn.w.now_ms() + conn.w.settings().config.websocket.close_timeout_ms;
            self.state = State::Closing { deadline_ms };
        }
    }

    fn on_events(&mut self, conn: &ClientConn, e: u16) -> Vec<u8> {
        let mut to_origin = Vec::new();
        if e & ev::SHUTDOWN != 0 && self.state == State::Open {
            queue_close(conn, ws::CLOSE_GOING_AWAY, "server shutting down");
            ws::encode_close_frame(&mut to_origin, ws::CLOSE_GOING_AWAY, "", Some(mask()));
            self.closing(conn);
        }
        if e & ev::CLOSE != 0 {
            self.closing(conn);
        }
        if e & ev::TIMER != 0 {
            if let State::Closing { deadline_ms } = self.state
                && conn.w.now_ms() >= deadline_ms
            {
                self.state = State::Ending;
            }
            self.grip.keep_alive_tick(conn);
            let cfg = &conn.w.settings().config.websocket;
            if self.state == State::Open
                && let Some(v) = self.guard.check_time(conn.w.now_ms(), cfg)
            {
                queue_close(conn, v.code, v.reason);
                ws::encode_close_frame(&mut to_origin, ws::CLOSE_GOING_AWAY, "", Some(mask()));
                self.state = State::Ending;
            }
        }
        to_origin
    }

    async fn read_origin(&mut self, conn: &ClientConn) -> io::Result<usize> {
        let mut buf = std::mem::take(&mut self.origin_buf);
        if buf.capacity() == 0 {
            buf = conn.w.bufs.take();
        } else if buf.len() == buf.capacity() {
            buf.reserve(16_384);
        }
        let res = self.origin.read_into(&mut buf).await;
        self.origin_buf = buf;
        res
    }

    async fn send_to_origin(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.origin.write_all(bytes).await.0.map(|_| ())
    }

    fn origin_gone(&mut self, conn: &ClientConn) {
        if self.state == State::Open {
            tracing::info!("websocket passthrough: origin closed the connection");
            queue_close(conn, ws::CLOSE_INTERNAL_ERROR, "origin went away");
        }
        self.state = State::Ending;
    }

    /// Client messages, re-framed (masked) for the origin; control frames handled here.
    fn on_client_bytes(&mut self, conn: &mut ClientConn) -> Vec<u8> {
        let mut buf = std::mem::take(conn.inbuf());
        let (messages, used, failure) = decode_all(&mut self.client_ws, &mut buf);
        buf.drain(..used);
        *conn.inbuf() = buf;
        let cfg = &conn.w.settings().config.websocket;
        let broken =
            self.guard
                .after_decode(conn.w.now_ms(), &messages, self.client_ws.in_message(), cfg);
        let mut to_origin = Vec::new();
        // A batch that breaks a limit is not acted on: the client is closed instead.
        let messages = if broken.is_some() {
            Vec::new()
        } else {
            messages
        };
        for m in messages {
            match m {
                Message::Text(d) if !self.grip.detached => {
                    frame_for_origin(&mut to_origin, Opcode::Text, &d)
                }
                Message::Binary(d) if !self.grip.detached => {
                    frame_for_origin(&mut to_origin, Opcode::Binary, &d)
                }
                Message::Text(_) | Message::Binary(_) | Message::Pong(_) => {}
                Message::Ping(p) => queue_frame(conn, Opcode::Pong, &p),
                Message::Close { code, reason } => {
                    let code = code.unwrap_or(ws::CLOSE_NORMAL);
                    ws::encode_close_frame(&mut to_origin, code, &reason, Some(mask()));
                    if self.state == State::Open {
                        // Echo now; the origin's own close answer is not passed on twice.
                        queue_close(conn, code, &reason);
                        self.closing(conn);
                    } else {
                        self.state = State::Ending;
                    }
                }
            }
        }
        let failure = failure
            .map(|e| (e.code, e.reason))
            .or(broken.map(|v| (v.code, v.reason)));
        if let Some((code, reason)) = failure {
            tracing::info!(peer = %conn.peer, "websocket client closed with {code}: {reason}");
            queue_close(conn, code, reason);
            ws::encode_close_frame(&mut to_origin, ws::CLOSE_GOING_AWAY, "", Some(mask()));
            self.state = State::Ending;
        }
        to_origin
    }

    /// Origin messages to the client (through GRIP when the extension is on).
    fn on_origin_bytes(&mut self, conn: &ClientConn) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.origin_buf);
        let (messages, used, failure) = decode_all(&mut self.origin_ws, &mut buf);
        buf.drain(..used);
        if buf.is_empty() {
            conn.w.bufs.give(buf);
        } else {
            self.origin_buf = buf;
        }
        let mut to_origin = Vec::new();
        for m in messages {
            match m {
                Message::Text(d) => {
                    if let Some((code, reason)) = self.grip.origin_text(conn, &d) {
                        queue_close(conn, code, &reason);
                        self.closing(conn);
                    }
                }
                Message::Binary(d) => self.grip.origin_binary(conn, &d),
                Message::Ping(p) => frame_for_origin(&mut to_origin, Opcode::Pong, &p),
                Message::Pong(_) => {}
                Message::Close { code, reason } => {
                    if self.state == State::Open {
                        queue_close(conn, code.unwrap_or(ws::CLOSE_NORMAL), &reason);
                        self.closing(conn);
                    } else {
                        self.state = State::Ending;
                    }
                }
            }
        }
        if let Some(e) = failure {
            tracing::warn!("websocket passthrough: origin broke the protocol: {e}");
            queue_close(conn, ws::CLOSE_INTERNAL_ERROR, "origin error");
            self.state = State::Ending;
        }
        to_origin
    }
}

/// Decodes every complete message in `buf`; returns them, the bytes consumed, and an error.
fn decode_all(
    session: &mut ws::Session,
    buf: &mut [u8],
) -> (Vec<Message>, usize, Option<ws::WsError>) {
    let mut used = 0;
    let mut messages = Vec::new();
    while used < buf.len() {
        match session.decode(&mut buf[used..]) {
            Ok((0, None)) => break,
            Ok((n, m)) => {
                used += n;
                messages.extend(m);
            }
            Err(e) => return (messages, used, Some(e)),
        }
    }
    (messages, used, None)
}

fn mask() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

/// Frames toward the origin are masked (holdfast is the client there).
fn frame_for_origin(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    ws::encode_frame(out, true, opcode, payload, Some(mask()));
}
