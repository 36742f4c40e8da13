//! A client WebSocket bridged to the origin over HTTP (routes marked `over_http`).
//!
//! At most one request to the origin is in flight per connection; it runs as its own short task
//! and posts `ev::ORIGIN` when done, so the connection keeps reading client frames meanwhile.
//! Messages that arrive meanwhile queue up and go together in the next request (whole messages,
//! up to `websocket.batch_bytes_max`). A request that could not reach the origin is retried with
//! back-off; any other failure closes the client with 1011. Client pings are answered here and
//! not forwarded, so keep-alive traffic costs the origin nothing.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::client::{ClientConn, Outcome, Read, Wake};
use super::conns::{Sink, ev};
use super::grip_ws::{GripWs, queue_close, queue_frame};
use super::worker::Worker;
use super::ws_guard::ClientGuard;
use super::wsoh_request::RequestTemplate;
use crate::origin::client::OriginError;
use crate::origin::wsoh::{self as origin_wsoh, Reply};
use crate::proto::ws::{self, Message, Opcode};
use crate::proto::wsoh::{self, Event};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The client sent a close frame: the origin gets it with the queued events, and its answer
    /// (last messages, its close code) is relayed before the connection ends, as Pushpin does.
    ClientClosed,
    /// holdfast sent a close frame and waits for the client's, until the deadline.
    CloseSent {
        deadline_ms: u64,
    },
    /// The client vanished: the origin gets a last DISCONNECT, then the connection ends.
    Gone,
    /// Flush what is queued to the client and end.
    Ending,
}

/// The result slot shared with the task running one origin request.
type InFlight = Rc<RefCell<Option<Result<Reply, OriginError>>>>;

pub struct WsohSession {
    template: RequestTemplate,
    ws: ws::Session,
    grip: GripWs,
    guard: ClientGuard,
    queue: VecDeque<Event>,
    queue_bytes: usize,
    inflight: Option<InFlight>,
    /// The batch of the request in flight or waiting for a retry.
    batch: Vec<Event>,
    retries: u32,
    retry_at_ms: Option<u64>,
    refresh: bool,
    keep_alive_ms: Option<u64>,
    last_exchange_ms: u64,
    state: State,
    /// The client's close, until the origin's answer closes the client (or it is echoed).
    client_close: Option<(Option<u16>, String)>,
    /// When an unanswered client close is echoed anyway.
    client_close_deadline_ms: u64,
    /// Events of the OPEN answer after OPEN itself, delivered when the session starts.
    opening_events: Vec<Event>,
}

impl WsohSession {
    /// A session whose OPEN exchange succeeded with `reply` (events after OPEN in `rest`).
    pub fn new(w: &Worker, template: RequestTemplate, reply: &Reply, rest: Vec<Event>) -> Self {
        let cfg = &w.settings().config.websocket;
        let route_ref = template.route();
        let route = route_ref.route();
        let extensions: Vec<&[u8]> = reply
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"))
            .map(|h| h.value.as_slice())
            .collect();
        let prefix = if route.no_grip {
            None
        } else {
            wsoh::grip_extension(&extensions)
        };
        let mut session = WsohSession {
            ws: ws::Session::new(ws::SessionLimits {
                message_bytes_max: cfg.message_bytes_max,
                require_mask: true,
            }),
            grip: GripWs::new(prefix, route.prefix.clone()),
            guard: ClientGuard::default(),
            template,
            queue: VecDeque::new(),
            queue_bytes: 0,
            inflight: None,
            batch: Vec::new(),
            retries: 0,
            retry_at_ms: None,
            refresh: false,
            keep_alive_ms: None,
            last_exchange_ms: w.now_ms(),
            state: State::Open,
            client_close: None,
            client_close_deadline_ms: 0,
            opening_events: rest,
        };
        session.apply_reply_headers(reply);
        session
    }

    fn apply_reply_headers(&mut self, reply: &Reply) {
        let route = self.template.route();
        let grip = &route.settings().config.grip;
        let limits = super::settings::name_limits(grip);
        for update in wsoh::set_meta_updates(reply.header_pairs(), &limits) {
            match update {
                Ok((name, value)) => self.grip.set_meta(name, value, grip.meta_entries_max),
                Err(e) => tracing::info!("websocket-over-http: Set-Meta ignored: {e}"),
            }
        }
        if let Some(interval) = wsoh::keep_alive_interval(reply.header_pairs()) {
            self.keep_alive_ms = interval.map(|s| u64::from(s) * 1000);
        }
    }
}

/// Runs an opened WebSocket-over-HTTP connection to its end.
pub async fn run(conn: &mut ClientConn, mut s: Box<WsohSession>) -> Outcome {
    let w = conn.w.clone();
    w.set_sink(conn.id, Sink::WebSocket);
    for event in std::mem::take(&mut s.opening_events) {
        s.on_origin_event(conn, event);
    }
    let header_max = w.settings().config.http.header_bytes_max;
    loop {
        s.maybe_send(conn);
        s.settle_client_close(conn);
        if !w.flush_conn(conn.id) {
            return Outcome::Close;
        }
        if s.finished() {
            return Box::pin(s.drain(conn)).await;
        }
        if let Some(at) = s.next_deadline(&w) {
            w.schedule(conn.id, at);
        }
        conn.release_idle_buffer();
        let read =
            s.wants_client_bytes(&w) && conn.inbuf().len() < header_max.max(ws::PENDING_BYTES_MAX);
        let blocked = w
            .conns
            .borrow()
            .get(conn.id)
            .is_some_and(|c| c.write_blocked);
        // The rare waits are boxed, so an idle WebSocket's future stays small.
        let woke = if blocked {
            Box::pin(conn.wait_writable(read)).await
        } else {
            conn.wait(read).await
        };
        match woke {
            Ok(Wake::Readable) => match conn.read_now() {
                Read::Bytes(_) => s.on_client_bytes(conn),
                Read::NotReady => {}
                Read::Eof | Read::Failed => s.client_gone(),
            },
            Ok(Wake::Writable) => {}
            Ok(Wake::Events(e)) => {
                if e & ev::DEAD != 0 {
                    return Outcome::Close;
                }
                s.on_events(conn, e);
            }
            Err(_) => s.client_gone(),
        }
    }
}

impl WsohSession {
    /// Echoes the client's close when the origin's answer did not close it (or took too long).
    fn settle_client_close(&mut self, conn: &ClientConn) {
        if self.client_close.is_none() {
            return;
        }
        let answered =
            self.inflight.is_none() && self.queue.is_empty() && self.retry_at_ms.is_none();
        let due = answered
            || conn.w.now_ms() >= self.client_close_deadline_ms
            || self.state == State::Ending;
        if due && let Some((code, reason)) = self.client_close.take() {
            match code {
                Some(c) => queue_close(conn, c, &reason),
                None => queue_frame(conn, Opcode::Close, &[]),
            }
        }
    }

    fn finished(&self) -> bool {
        match self.state {
            State::Ending => true,
            State::ClientClosed | State::Gone => {
                self.inflight.is_none() && self.queue.is_empty() && self.retry_at_ms.is_none()
            }
            _ => false,
        }
    }

    /// Writes what is queued for the client (bounded by the close timeout), then ends.
    async fn drain(&mut self, conn: &mut ClientConn) -> Outcome {
        let w = conn.w.clone();
        let deadline = w.now_ms() + w.settings().config.websocket.close_timeout_ms;
        loop {
            if !w.flush_conn(conn.id) {
                return Outcome::Close;
            }
            let pending = w
                .conns
                .borrow()
                .get(conn.id)
                .map_or(0, |c| c.outbox.bytes());
            if pending == 0 || w.now_ms() >= deadline {
                return Outcome::Close;
            }
            w.schedule(conn.id, deadline);
            match conn.wait_writable(false).await {
                Ok(Wake::Events(e)) if e & ev::DEAD != 0 => return Outcome::Close,
                Err(_) => return Outcome::Close,
                _ => {}
            }
        }
    }

    fn wants_client_bytes(&self, w: &Worker) -> bool {
        let open = matches!(self.state, State::Open | State::CloseSent { .. });
        open && !self.ws.is_closed()
            && self.queue_bytes < w.settings().config.websocket.queue_bytes_max
    }

    fn next_deadline(&self, w: &Worker) -> Option<u64> {
        let mut at = self.retry_at_ms;
        let mut consider = |t: u64| at = Some(at.map_or(t, |a| a.min(t)));
        if let State::CloseSent { deadline_ms } = self.state {
            consider(deadline_ms);
        }
        if let (Some(ka), None, State::Open) = (self.keep_alive_ms, &self.inflight, self.state) {
            consider(self.last_exchange_ms + ka);
        }
        if let Some(k) = self.grip.keep_alive_at() {
            consider(k);
        }
        if self.client_close.is_some() {
            consider(self.client_close_deadline_ms);
        }
        if let Some(t) = self.guard.deadline(&w.settings().config.websocket) {
            consider(t);
        }
        at.map(|a| a.max(w.now_ms()))
    }

    fn on_events(&mut self, conn: &mut ClientConn, e: u16) {
        let w = conn.w.clone();
        if e & ev::ORIGIN != 0 {
            self.on_origin_done(conn);
        }
        if e & ev::SHUTDOWN != 0 {
            self.close_client(conn, ws::CLOSE_GOING_AWAY, "server shutting down");
        }
        if e & ev::CLOSE != 0 && self.state == State::Open {
            // A published close frame is already queued by the fan-out.
            let deadline_ms = w.now_ms() + w.settings().config.websocket.close_timeout_ms;
            self.state = State::CloseSent { deadline_ms };
        }
        if e & ev::REFRESH != 0 {
            self.refresh = true;
        }
        if e & ev::TIMER != 0 {
            self.on_timer(conn);
        }
    }

    fn on_timer(&mut self, conn: &mut ClientConn) {
        let w = conn.w.clone();
        let now = w.now_ms();
        if let State::CloseSent { deadline_ms } = self.state
            && now >= deadline_ms
        {
            tracing::debug!("websocket: client did not answer the close frame in time");
            self.queue_event(Event::Disconnect);
            self.state = State::Gone;
        }
        self.grip.keep_alive_tick(conn);
        if self.state == State::Open
            && let Some(v) = self.guard.check_time(now, &w.settings().config.websocket)
        {
            self.client_failed(conn, v.code, v.reason);
        }
    }

    /// Decodes the client's bytes into messages and acts on them.
    fn on_client_bytes(&mut self, conn: &mut ClientConn) {
        let mut buf = std::mem::take(conn.inbuf());
        let mut used = 0;
        let mut messages = Vec::new();
        let mut failure = None;
        while used < buf.len() {
            match self.ws.decode(&mut buf[used..]) {
                Ok((0, None)) => break,
                Ok((n, msg)) => {
                    used += n;
                    messages.extend(msg);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        buf.drain(..used);
        *conn.inbuf() = buf;
        let cfg = &conn.w.settings().config.websocket;
        let broken = self
            .guard
            .after_decode(conn.w.now_ms(), &messages, self.ws.in_message(), cfg);
        // A batch that breaks a limit is not acted on: the client is closed instead.
        if broken.is_none() {
            for m in messages {
                self.on_client_message(conn, m);
            }
        }
        let failure = failure
            .map(|e| (e.code, e.reason))
            .or(broken.map(|v| (v.code, v.reason)));
        if let Some((code, reason)) = failure {
            self.client_failed(conn, code, reason);
        }
    }

    /// The client broke the protocol or a limit: close it with `code`, tell the origin.
    fn client_failed(&mut self, conn: &mut ClientConn, code: u16, reason: &'static str) {
        tracing::info!(peer = %conn.peer, "websocket client closed with {code}: {reason}");
        queue_close(conn, code, reason);
        self.queue_event(Event::Close {
            code: Some(code),
            reason: reason.as_bytes().to_vec(),
        });
        // Nothing more is read from the client; the origin still gets the CLOSE, then it ends.
        self.state = State::ClientClosed;
    }

    fn on_client_message(&mut self, conn: &mut ClientConn, m: Message) {
        match m {
            Message::Text(data) => self.queue_event(Event::Text(data)),
            Message::Binary(data) => self.queue_event(Event::Binary(data)),
            Message::Ping(payload) => queue_frame(conn, Opcode::Pong, &payload),
            Message::Pong(_) => {}
            Message::Close { code, reason } => {
                if self.state == State::Open {
                    // The origin hears the close first; its answer closes the client.
                    self.queue_event(Event::Close {
                        code,
                        reason: reason.as_bytes().to_vec(),
                    });
                    self.client_close = Some((code, reason));
                    let timeout = conn.w.settings().config.websocket.close_timeout_ms;
                    self.client_close_deadline_ms = conn.w.now_ms() + timeout;
                    self.state = State::ClientClosed;
                } else {
                    // The client answered holdfast's close: the origin hears of it too.
                    self.queue_event(Event::Close {
                        code,
                        reason: reason.into_bytes(),
                    });
                    self.state = State::ClientClosed;
                }
            }
        }
    }

    fn queue_event(&mut self, e: Event) {
        if self.grip.detached && !matches!(e, Event::Close { .. } | Event::Disconnect) {
            return;
        }
        self.queue_bytes += wsoh::encoded_len(&e);
        self.queue.push_back(e);
    }

    fn client_gone(&mut self) {
        if matches!(self.state, State::Open | State::CloseSent { .. }) {
            self.queue_event(Event::Disconnect);
            self.state = State::Gone;
        } else if self.state != State::Gone {
            self.state = State::Ending;
        }
    }

    /// Sends holdfast's own close frame and waits for the client's answer.
    fn close_client(&mut self, conn: &mut ClientConn, code: u16, reason: &str) {
        if matches!(self.state, State::Open) {
            queue_close(conn, code, reason);
            let deadline_ms = conn.w.now_ms() + conn.w.settings().config.websocket.close_timeout_ms;
            self.state = State::CloseSent { deadline_ms };
        } else if !matches!(self.state, State::CloseSent { .. }) {
            self.state = State::Ending;
        }
    }
}

impl WsohSession {
    /// Starts the next origin request if none is in flight and there is a reason to send one.
    fn maybe_send(&mut self, conn: &mut ClientConn) {
        if self.inflight.is_some() || self.state == State::Ending {
            return;
        }
        let w = conn.w.clone();
        let now = w.now_ms();
        if let Some(at) = self.retry_at_ms {
            if now < at {
                return;
            }
            self.retry_at_ms = None;
        } else if !self.queue.is_empty() {
            self.take_batch(w.settings().config.websocket.batch_bytes_max);
        } else {
            let keep_alive_due = self
                .keep_alive_ms
                .is_some_and(|ka| now >= self.last_exchange_ms + ka);
            if !(self.state == State::Open && (keep_alive_due || self.refresh)) {
                return;
            }
            self.refresh = false;
            self.batch.clear();
        }
        let request = match self.template.build(&self.batch, &self.grip.meta) {
            Ok(request) => request,
            Err(e) => {
                crate::metrics::WorkerMetrics::inc(&w.metrics.heads_refused);
                return self.on_origin_error(conn, OriginError::RequestHead(e));
            }
        };
        let slot: InFlight = Rc::new(RefCell::new(None));
        self.inflight = Some(slot.clone());
        let route = self.template.route();
        let host = self.template.host();
        let id = conn.id;
        monoio::spawn(async move {
            let result = origin_wsoh::exchange(&w.origin, &route, host.as_deref(), request).await;
            *slot.borrow_mut() = Some(result);
            w.conns.borrow_mut().notify(id, ev::ORIGIN);
        });
    }

    /// Moves whole events from the queue into the batch, up to `max` event bytes (at least one).
    fn take_batch(&mut self, max: usize) {
        self.batch.clear();
        let mut bytes = 0;
        while let Some(e) = self.queue.front() {
            let len = wsoh::encoded_len(e);
            if !self.batch.is_empty() && bytes + len > max {
                break;
            }
            bytes += len;
            self.queue_bytes -= len;
            if let Some(e) = self.queue.pop_front() {
                self.batch.push(e);
            }
        }
    }

    fn on_origin_done(&mut self, conn: &mut ClientConn) {
        let Some(slot) = self.inflight.take() else {
            return;
        };
        let Some(result) = slot.borrow_mut().take() else {
            return;
        };
        let w = conn.w.clone();
        self.last_exchange_ms = w.now_ms();
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => return self.on_origin_error(conn, e),
        };
        if !origin_wsoh::is_events(&reply) {
            tracing::warn!(
                code = reply.code,
                "websocket-over-http: origin answered {} {}",
                reply.code,
                reply.reason
            );
            return self.fail(conn);
        }
        let events = match wsoh::decode_events(&reply.body) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!("websocket-over-http: invalid events from origin: {e}");
                return self.fail(conn);
            }
        };
        self.retries = 0;
        self.batch.clear();
        self.apply_reply_headers(&reply);
        for event in events {
            self.on_origin_event(conn, event);
        }
    }

    fn on_origin_error(&mut self, conn: &mut ClientConn, e: OriginError) {
        let max = conn.w.settings().config.websocket.retries_max;
        if origin_wsoh::is_retryable(&e) && self.retries < max {
            let backoff = 1000u64 << self.retries.min(10);
            self.retries += 1;
            self.retry_at_ms = Some(conn.w.now_ms() + backoff + fastrand::u64(0..1000));
            tracing::info!("websocket-over-http: {e}; retry {} of {max}", self.retries);
            return;
        }
        tracing::warn!("websocket-over-http: {e}; closing the client");
        self.fail(conn);
    }

    /// The origin failed for good: close the client with 1011.
    fn fail(&mut self, conn: &mut ClientConn) {
        self.queue.clear();
        self.queue_bytes = 0;
        self.batch.clear();
        self.retry_at_ms = None;
        if matches!(self.state, State::Open) {
            self.close_client(conn, ws::CLOSE_INTERNAL_ERROR, "origin error");
        } else {
            self.state = State::Ending;
        }
    }

    fn on_origin_event(&mut self, conn: &mut ClientConn, event: Event) {
        match event {
            Event::Text(payload) => {
                if let Some((code, reason)) = self.grip.origin_text(conn, &payload) {
                    self.close_client(conn, code, &reason);
                }
            }
            Event::Binary(payload) => self.grip.origin_binary(conn, &payload),
            Event::Ping(p) => queue_frame(conn, Opcode::Ping, &p),
            Event::Pong(p) => queue_frame(conn, Opcode::Pong, &p),
            Event::Close { code, reason } => {
                let reason = String::from_utf8_lossy(&reason).into_owned();
                if let Some((client_code, _)) = self.client_close.take() {
                    // The origin answers the client's close: with its own code when it is one a
                    // client may receive (serve-grip sends 0), else the client's.
                    let code = code
                        .filter(|&c| ws::is_valid_close_code(c))
                        .or(client_code)
                        .unwrap_or(ws::CLOSE_NORMAL);
                    queue_close(conn, code, &reason);
                    return;
                }
                match (self.state, code) {
                    (State::Open, Some(c)) if ws::is_valid_close_code(c) => {
                        self.close_client(conn, c, &reason)
                    }
                    (State::Open, Some(_)) => self.close_client(conn, ws::CLOSE_NORMAL, &reason),
                    (State::Open, None) => {
                        queue_frame(conn, Opcode::Close, &[]);
                        let timeout = conn.w.settings().config.websocket.close_timeout_ms;
                        let deadline_ms = conn.w.now_ms() + timeout;
                        self.state = State::CloseSent { deadline_ms };
                    }
                    _ => {}
                }
            }
            Event::Disconnect => self.state = State::Ending,
            Event::Open => {
                tracing::warn!("websocket-over-http: origin sent OPEN on an open connection");
                self.fail(conn);
            }
        }
    }
}
