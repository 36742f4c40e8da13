//! A client connection's task: reads requests in order (keep-alive, pipelining), enforces the
//! head/body limits and timeouts, and hands each request to `proxy`.
//!
//! Waiting is always "readable, or the worker posted an event" (events carry timer expiry,
//! deliveries that need the task, shutdown). The read buffer is borrowed from the worker's pool
//! only while there are bytes to parse, so an idle keep-alive connection owns none.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::conns::ev;
use super::hold;
use super::proxy;
use super::worker::Worker;
use crate::hub::ConnId;
use crate::io::tls_io;
use crate::metrics::WorkerMetrics;
use crate::proto::http1::{self, BodyKind, HeadLimits, Parsed, RequestHead};

/// What woke a waiting connection.
pub enum Wake {
    Readable,
    Writable,
    Events(u16),
}

pub use crate::io::Read;

/// Why reading from the client stopped.
#[derive(Debug)]
pub enum ReadStop {
    /// The client closed its side.
    Eof,
    TimedOut,
    /// Shutdown, a dead socket, or an I/O error: close without answering.
    Gone,
}

/// A request that cannot be served: the status and a short reason for the client and the log.
#[derive(Debug)]
pub struct ClientError {
    pub status: u16,
    pub message: String,
}

impl ClientError {
    pub fn new(status: u16, message: impl Into<String>) -> ClientError {
        ClientError {
            status,
            message: message.into(),
        }
    }
}

/// After a request: serve the next one, or close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    KeepAlive,
    Close,
}

pub struct ClientConn {
    pub w: Rc<Worker>,
    pub id: ConnId,
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// Accepted on a TLS listener: the session is in the connection's slot.
    pub tls: bool,
    /// Unparsed bytes from the client; None while there are none.
    inbuf: Option<Vec<u8>>,
}

/// Serves one accepted client connection (already registered as `id`, with its TLS session in
/// the slot if `tls`).
pub async fn serve(w: Rc<Worker>, id: ConnId, stream: TcpStream, peer: SocketAddr, tls: bool) {
    let mut conn = ClientConn {
        w,
        id,
        stream,
        peer,
        tls,
        inbuf: None,
    };
    if tls {
        let done = conn.tls_handshake().await;
        let m = &conn.w.metrics;
        crate::metrics::WorkerMetrics::inc(if done {
            &m.tls_handshakes
        } else {
            &m.tls_handshake_failures
        });
        if !done {
            conn.finish();
            return;
        }
    }
    serve_requests(conn, None).await;
}

/// What a connection does after its request loop stops.
enum Next {
    Close,
    Hold(hold::HeldRequest, Box<hold::HoldSpec>),
    WebSocket(super::websocket::WsSession),
}

/// Serves requests until the connection closes or enters a long-lived mode. A long-lived mode
/// (a hold, a WebSocket) runs in a task of its own, sized for that mode alone: this future is
/// large (it can serve any request) and must not stay allocated for hours per idle connection.
async fn serve_requests(mut conn: ClientConn, first: Option<Box<proxy::Retry>>) {
    match conn.run(first).await {
        Next::Close => conn.finish(),
        Next::Hold(held, spec) => {
            monoio::spawn(held_task(conn, held, spec));
        }
        Next::WebSocket(session) => {
            monoio::spawn(websocket_task(conn, session));
        }
    }
}

/// An async block rather than an async fn: an async fn's future holds its arguments twice (as
/// captured and as moved-in locals), and this future lives as long as the hold.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
fn held_task(
    mut conn: ClientConn,
    held: hold::HeldRequest,
    spec: Box<hold::HoldSpec>,
) -> impl Future<Output = ()> {
    async move {
        let (outcome, retry) = match hold::run(&mut conn, held, spec).await {
            hold::HoldEnd::Done(outcome) => (outcome, None),
            hold::HoldEnd::Retry(r) => (Outcome::KeepAlive, Some(r)),
        };
        if outcome == Outcome::KeepAlive && !conn.w.is_stopping() {
            // Back to serving requests, in a fresh task (the request path's future is the big one).
            monoio::spawn(Box::pin(serve_requests(conn, retry)));
        } else {
            conn.finish();
        }
    }
}

/// An async block, like [`held_task`]: this future lives as long as the WebSocket.
#[allow(clippy::manual_async_fn)] // the async block keeps the arguments once
fn websocket_task(
    mut conn: ClientConn,
    session: super::websocket::WsSession,
) -> impl Future<Output = ()> {
    async move {
        super::websocket::run(&mut conn, session).await;
        conn.finish();
    }
}

/// Answers 503 to a connection over the worker's limit and closes it; a TLS connection is
/// closed at once (there is no session yet to say it in).
pub async fn reject_over_limit(w: Rc<Worker>, mut stream: TcpStream, tls: bool) {
    crate::metrics::WorkerMetrics::inc(&w.metrics.rejected);
    tracing::warn!(
        worker = w.index,
        tls,
        "connection limit reached: refusing a connection"
    );
    if tls {
        return;
    }
    let body = b"Too many connections\n";
    let resp = http1::simple_response(503, "text/plain", &[], body, true);
    let _ = stream.write_all(resp).await;
}

impl ClientConn {
    /// Unregisters the connection, then closes its socket (in that order, so the fan-out never
    /// writes to a reused fd).
    fn finish(mut self) {
        if let Some(buf) = self.inbuf.take() {
            self.w.bufs.give(buf);
        }
        if self.tls {
            self.send_close_notify();
        }
        self.w.unregister(self.id, self.peer.ip());
    }

    /// Says goodbye the TLS way (best effort: the socket closes right after).
    fn send_close_notify(&self) {
        let mut conns = self.w.conns.borrow_mut();
        if let Some(slot) = conns.get_mut(self.id)
            && let Some(tls) = slot.tls.as_deref_mut()
            && !tls.is_handshaking()
        {
            tls.send_close_notify();
            let _ = tls_io::write_pending(tls, slot.fd);
        }
    }

    /// Runs the TLS handshake within the head timeout. False: it failed (logged) or timed out.
    async fn tls_handshake(&mut self) -> bool {
        let deadline = self.w.now_ms() + self.w.settings().config.http.header_timeout_ms;
        loop {
            let (handshaking, flushed) = {
                let mut conns = self.w.conns.borrow_mut();
                let Some(slot) = conns.get_mut(self.id) else {
                    return false;
                };
                let fd = slot.fd;
                let Some(tls) = slot.tls.as_deref_mut() else {
                    return false;
                };
                match tls_io::write_pending(tls, fd) {
                    Ok(flushed) => (tls.is_handshaking(), flushed),
                    Err(_) => return false,
                }
            };
            if !handshaking && flushed {
                // Clears a "blocked" mark an earlier flush may have left.
                return self.w.flush_conn(self.id);
            }
            self.w.schedule(self.id, deadline);
            let woke = if flushed {
                self.wait(true).await
            } else {
                self.wait_writable(true).await
            };
            match woke {
                Ok(Wake::Readable) => match self.read_tls() {
                    Ok(Read::Bytes(_) | Read::NotReady) => {}
                    Ok(Read::Eof | Read::Failed) => return false,
                    Err(reason) => {
                        tracing::info!(peer = %self.peer, "TLS handshake failed: {reason}");
                        return false;
                    }
                },
                Ok(Wake::Writable) => {}
                Ok(Wake::Events(e)) => {
                    if e & (ev::SHUTDOWN | ev::DEAD) != 0 {
                        return false;
                    }
                    if self.w.now_ms() >= deadline {
                        tracing::info!(peer = %self.peer, "TLS handshake timed out");
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
    }

    async fn run(&mut self, mut first: Option<Box<proxy::Retry>>) -> Next {
        loop {
            if let Some(retry) = first.take() {
                match Box::pin(proxy::retry(self, retry)).await {
                    proxy::Step::Done(Outcome::Close) => return Next::Close,
                    proxy::Step::Done(Outcome::KeepAlive) => continue,
                    proxy::Step::Hold(req, spec) => {
                        return Next::Hold(hold::HeldRequest::from(&req), spec);
                    }
                    proxy::Step::WebSocket(session) => return Next::WebSocket(session),
                }
            }
            let head = match self.read_head().await {
                Ok(head) => head,
                Err(Ok(stop)) => {
                    if matches!(stop, ReadStop::TimedOut) && self.has_pending_bytes() {
                        self.send_error(&ClientError::new(408, "request head timed out"))
                            .await;
                    }
                    return Next::Close;
                }
                Err(Err(e)) => {
                    tracing::info!(peer = %self.peer, "bad request: {}", e.message);
                    self.send_error(&e).await;
                    return Next::Close;
                }
            };
            let outcome = match Box::pin(proxy::handle(self, head)).await {
                proxy::Step::Done(outcome) => outcome,
                proxy::Step::Hold(req, spec) => {
                    return Next::Hold(hold::HeldRequest::from(&req), spec);
                }
                proxy::Step::WebSocket(session) => return Next::WebSocket(session),
            };
            if outcome == Outcome::Close || self.w.is_stopping() {
                return Next::Close;
            }
        }
    }

    fn has_pending_bytes(&self) -> bool {
        self.inbuf.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// Gives the read buffer back to the pool when it holds nothing.
    pub fn release_idle_buffer(&mut self) {
        if self.inbuf.as_ref().is_some_and(|b| b.is_empty())
            && let Some(buf) = self.inbuf.take()
        {
            self.w.bufs.give(buf);
        }
    }

    /// Reads the next request head: Ok, a reason to stop quietly, or an error to answer.
    async fn read_head(&mut self) -> Result<RequestHead, Result<ReadStop, ClientError>> {
        let w = self.w.clone();
        let cfg = &w.settings().config.http;
        let limits = HeadLimits {
            bytes_max: cfg.header_bytes_max,
            headers_max: cfg.headers_count_max,
        };
        let mut deadline = w.now_ms() + cfg.keepalive_timeout_ms;
        let mut started = false;
        loop {
            if let Some(buf) = self.inbuf.as_mut().filter(|b| !b.is_empty()) {
                match http1::parse_request(buf, limits) {
                    Ok(Parsed::Complete(head, used)) => {
                        buf.drain(..used);
                        WorkerMetrics::inc(&w.metrics.requests);
                        return Ok(head);
                    }
                    Ok(Parsed::NeedMore) => {}
                    Err(e) => return Err(Err(ClientError::new(e.status(), e.to_string()))),
                }
                if !started {
                    // The head timeout runs from the first byte: a slowloris client that sends
                    // one byte at a time is cut off at header_timeout_ms, not kept forever.
                    started = true;
                    deadline = w.now_ms() + cfg.header_timeout_ms;
                }
            }
            match self.read_some(deadline).await {
                Ok(0) => return Err(Ok(ReadStop::Eof)),
                Ok(_) => {}
                Err(stop) => return Err(Ok(stop)),
            }
        }
    }

    /// Waits (until `deadline_ms`) for bytes from the client and appends them to the buffer.
    pub async fn read_some(&mut self, deadline_ms: u64) -> Result<usize, ReadStop> {
        loop {
            self.release_idle_buffer();
            self.w.schedule(self.id, deadline_ms);
            match self.wait(true).await {
                Ok(Wake::Readable) => match self.read_now() {
                    Read::Bytes(n) => return Ok(n),
                    Read::Eof => return Ok(0),
                    Read::NotReady => {}
                    Read::Failed => return Err(ReadStop::Gone),
                },
                Ok(Wake::Writable) => {}
                Ok(Wake::Events(e)) => {
                    if e & (ev::SHUTDOWN | ev::DEAD) != 0 {
                        return Err(ReadStop::Gone);
                    }
                    if self.w.now_ms() >= deadline_ms {
                        return Err(ReadStop::TimedOut);
                    }
                }
                Err(_) => return Err(ReadStop::Gone),
            }
        }
    }

    /// Reads once, without blocking, into the (pooled) buffer. Called after a readiness poll
    /// said the socket is readable, so a direct `recv` suffices: no I/O future (and none of its
    /// state) is kept per connection.
    pub fn read_now(&mut self) -> Read {
        if self.tls {
            return self.read_now_tls();
        }
        let mut buf = self.inbuf.take().unwrap_or_else(|| self.w.bufs.take());
        if buf.len() == buf.capacity() {
            buf.reserve(self.w.bufs.buffer_size());
        }
        let spare = buf.spare_capacity_mut();
        // SAFETY: recv writes at most `spare.len()` bytes into the vector's spare capacity,
        // which `set_len` below then covers exactly (only the bytes recv reported).
        let n = unsafe {
            libc::recv(
                self.stream.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                spare.len(),
                libc::MSG_DONTWAIT,
            )
        };
        let result = match n {
            0 => Read::Eof,
            n if n > 0 => {
                // SAFETY: the kernel initialised the first `n` spare bytes.
                unsafe { buf.set_len(buf.len() + n as usize) };
                Read::Bytes(n as usize)
            }
            _ => match io::Error::last_os_error().kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Read::NotReady,
                _ => Read::Failed,
            },
        };
        self.inbuf = Some(buf);
        result
    }

    /// [`Self::read_now`] for a TLS connection: decrypts what arrived, then lets rustls send
    /// whatever the read asked for (handshake messages, key updates, alerts).
    fn read_now_tls(&mut self) -> Read {
        self.read_tls().unwrap_or_else(|reason| {
            tracing::debug!(peer = %self.peer, "TLS: {reason}");
            Read::Failed
        })
    }

    /// [`Self::read_now_tls`], with the reason a read failed.
    fn read_tls(&mut self) -> Result<Read, String> {
        let mut buf = self.inbuf.take().unwrap_or_else(|| self.w.bufs.take());
        let result = {
            let mut conns = self.w.conns.borrow_mut();
            match conns.get_mut(self.id) {
                Some(slot) => match slot.tls.as_deref_mut() {
                    Some(tls) => tls_io::read_checked(tls, slot.fd, &mut buf),
                    None => Err("no TLS session".into()),
                },
                None => Err("connection gone".into()),
            }
        };
        self.inbuf = Some(buf);
        if result.is_ok() && !self.w.flush_conn(self.id) {
            return Err("write failed".into());
        }
        result
    }

    /// Waits for readability (if `read`) or worker events.
    pub async fn wait(&self, read: bool) -> io::Result<Wake> {
        let w = &self.w;
        let id = self.id;
        let events = std::future::poll_fn(|cx| w.poll_events(id, cx));
        monoio::select! {
            e = events => Ok(Wake::Events(e)),
            r = self.stream.readable(false), if read => r.map(|_| Wake::Readable),
        }
    }

    /// Waits for writability, readability (if `read`) or worker events; only for a connection
    /// whose socket buffer is full, so the common wait stays small.
    pub async fn wait_writable(&self, read: bool) -> io::Result<Wake> {
        let w = &self.w;
        let id = self.id;
        let events = std::future::poll_fn(|cx| w.poll_events(id, cx));
        monoio::select! {
            e = events => Ok(Wake::Events(e)),
            r = self.stream.readable(false), if read => r.map(|_| Wake::Readable),
            r = self.stream.writable(false) => r.map(|_| Wake::Writable),
        }
    }

    /// The buffered, unparsed client bytes (for body reading).
    pub fn inbuf(&mut self) -> &mut Vec<u8> {
        self.inbuf.get_or_insert_with(Vec::new)
    }

    /// Reads a whole request body within the configured size limit and time: each read within
    /// `header_timeout_ms` of the last, the whole body within `body_timeout_ms` (408 past either:
    /// a client dripping a byte a second does not hold the connection for as long as it likes).
    pub async fn read_body(&mut self, head: &RequestHead) -> Result<Vec<u8>, ClientError> {
        let max = self.w.settings().config.http.body_bytes_max;
        let idle_timeout = self.w.settings().config.http.header_timeout_ms;
        let body_timeout = self.w.settings().config.http.body_timeout_ms;
        let body_deadline = self.w.now_ms() + body_timeout;
        if let BodyKind::Length(n) = head.body
            && n > max as u64
        {
            return Err(ClientError::new(
                413,
                format!("request body over {max} bytes"),
            ));
        }
        if head.expect_continue && head.body != BodyKind::None && !self.has_pending_bytes() {
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n".to_vec())
                .await
                .map_err(|_| ClientError::new(400, "client went away"))?;
        }
        let mut decoder = http1::BodyDecoder::new(head.body);
        let mut body = Vec::new();
        loop {
            let buf = self.inbuf();
            let progress = decoder
                .decode(buf, &mut body)
                .map_err(|e| ClientError::new(e.status(), e.to_string()))?;
            buf.drain(..progress.consumed);
            if body.len() > max {
                return Err(ClientError::new(
                    413,
                    format!("request body over {max} bytes"),
                ));
            }
            if progress.done {
                return Ok(body);
            }
            let deadline = body_deadline.min(self.w.now_ms() + idle_timeout);
            match self.read_some(deadline).await {
                Ok(0) | Err(ReadStop::Eof | ReadStop::Gone) => {
                    return Err(ClientError::new(400, "request body incomplete"));
                }
                Err(ReadStop::TimedOut) => {
                    crate::metrics::WorkerMetrics::inc(&self.w.metrics.body_timeouts);
                    let why = if self.w.now_ms() >= body_deadline {
                        format!("request body not complete within {body_timeout} ms")
                    } else {
                        format!("request body: nothing received for {idle_timeout} ms")
                    };
                    return Err(ClientError::new(408, why));
                }
                Ok(_) => {}
            }
        }
    }

    /// Writes bytes to the client (non-held connections; held ones use the outbox).
    pub async fn write(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        if self.tls {
            return self.write_tls(&bytes).await;
        }
        let (res, _) = self.stream.write_all(bytes).await;
        res.map(|_| ())
    }

    /// Encrypts through the slot's session (the same one the fan-out writes through, so the
    /// order of bytes on the wire is the order they were handed over) and writes it out.
    async fn write_tls(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        loop {
            let flushed = {
                let mut conns = self.w.conns.borrow_mut();
                let slot = conns.get_mut(self.id).ok_or(io::ErrorKind::BrokenPipe)?;
                let fd = slot.fd;
                let tls = slot.tls.as_deref_mut().ok_or(io::ErrorKind::BrokenPipe)?;
                if !bytes.is_empty() {
                    let taken = tls_io::encrypt(tls, &[io::IoSlice::new(bytes)])?;
                    bytes = &bytes[taken..];
                }
                tls_io::write_pending(tls, fd)?
            };
            match (flushed, bytes.is_empty()) {
                (true, true) => {
                    // Clears a "blocked" mark and sends whatever the fan-out queued meanwhile.
                    self.w.flush_conn(self.id);
                    return Ok(());
                }
                // The session's buffer is empty again: encrypt the next part.
                (true, false) => {}
                (false, _) => {
                    self.stream.writable(false).await?;
                }
            }
        }
    }

    /// Answers with an error status and a one-line text body, then the connection closes.
    pub async fn send_error(&mut self, e: &ClientError) {
        let body = format!("{}\n", e.message);
        let resp = http1::simple_response(e.status, "text/plain", &[], body.as_bytes(), true);
        let _ = self.write(resp).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::hub::inbox::Inbox;
    use crate::origin::targets::RoutePlan;
    use crate::routes::RouteTable;
    use crate::runtime::Shared;
    use std::sync::Arc;

    /// The connection task is allocated once per connection for its whole life: its size is
    /// part of the memory an idle held connection costs. Printed for the record.
    #[test]
    fn connection_task_size() {
        let shared = Arc::new(Shared {
            config: Config::default(),
            initial: crate::runtime::settings::Settings {
                config: Config::default(),
                routes: RoutePlan::resolve(RouteTable::parse("").unwrap()).unwrap(),
                tls: None,
                origin_tls: None,
            },
            inboxes: vec![Arc::new(Inbox::new(1))],
            commands: vec![Arc::default()],
            metrics: vec![Arc::default()],
            publish_metrics: Arc::default(),
            admission: crate::runtime::admission::Admission::new(0, 0),
            cluster: None,
            zmq: None,
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let stream = TcpStream::connect(addr).await.unwrap();
            let w = Rc::new(Worker::new(0, shared));
            let mut conn = ClientConn {
                w: w.clone(),
                id: ConnId {
                    key: 0,
                    generation: 0,
                },
                stream,
                peer: addr,
                tls: false,
                inbuf: None,
            };
            let head = match http1::parse_request(
                b"GET / HTTP/1.1\r\n\r\n",
                HeadLimits {
                    bytes_max: 100,
                    headers_max: 10,
                },
            ) {
                Ok(Parsed::Complete(h, _)) => h,
                other => panic!("{other:?}"),
            };
            let spec = Box::new(hold::HoldSpec {
                mode: None,
                channels: vec![],
                timeout_secs: 0,
                keep_alive: None,
                code: 200,
                reason: String::new(),
                headers: vec![],
                body: vec![],
                base_url: None,
                next_link: None,
                gone_link: None,
                prev_ids: vec![],
                channel_prefix: String::new(),
                filters: vec![],
                meta: vec![],
                original: None,
                route: crate::runtime::settings::RouteRef::for_tests("* 127.0.0.1:8080\n"),
            });
            println!(
                "size_of ClientConn = {} bytes",
                std::mem::size_of::<ClientConn>()
            );
            let (stream_size, response_size) = hold::future_sizes(&mut conn, spec.clone());
            println!("size_of stream hold loop = {stream_size} bytes, long-poll hold = {response_size} bytes");
            // A held (stream or long-poll) connection lives in this task, for hours: it is the
            // memory an idle held connection costs, with its slot.
            let held = held_task(conn, hold::HeldRequest::from(&head), spec);
            let held_size = std::mem::size_of_val(&held);
            println!("size_of held connection task future = {held_size} bytes");
            // With monoio's task header and trailer (48 bytes) the task must stay within
            // mimalloc's 512-byte size class: the next one up is 640.
            assert!(held_size <= 464, "held task grew to {held_size} bytes");
            drop(held);
            // The request-serving task exists only while requests are being served.
            let stream = TcpStream::connect(addr).await.unwrap();
            let task = serve(
                w,
                ConnId {
                    key: 1,
                    generation: 0,
                },
                stream,
                addr,
                false,
            );
            let size = std::mem::size_of_val(&task);
            println!("size_of request-serving task future = {size} bytes");
            assert!(size <= 1536, "request task grew to {size} bytes");
        });
    }
}
