//! Subscriber worker process: one tokio current-thread runtime driving N client connections of
//! one kind. All connections read into one shared buffer and parse in place; only a line or
//! message prefix that spans two reads is kept per connection. Reports progress and final
//! per-client results to the parent as JSON lines on stdout; takes `go` / `stop` on stdin.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

use crate::hist::{Hist, HistWire};
use crate::http::{Body, Framing, LineScan, head_end, parse_response_head, parse_stamp};
use crate::util::{die_with_parent, now_ns, raise_nofile};
use crate::ws::{OP_PONG, OP_TEXT, WsEvent, WsParser, encode_frame};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// HTTP streaming (Grip-Hold: stream), messages are lines
    Stream,
    /// Server-Sent Events, messages are `data:` lines
    Sse,
    /// WebSocket, messages are text frames
    Ws,
    /// HTTP long-polling (Grip-Hold: response), re-requests after every answer
    Poll,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Sse => "sse",
            Kind::Ws => "ws",
            Kind::Poll => "poll",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SendSpec {
    pub messages: u64,
    pub size: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WorkerSpec {
    pub kind: Kind,
    pub host: String,
    pub addr: SocketAddr,
    /// Path template; `{ch}` is replaced by the client's channel.
    pub path: String,
    /// Global index of this worker's first client (channels are assigned round-robin globally).
    pub first_index: u64,
    pub clients: u64,
    pub channels: u64,
    pub channel_prefix: String,
    pub source_ips: Vec<IpAddr>,
    /// Connections per second for this worker; 0 = as fast as possible.
    pub connect_rate: f64,
    /// Connections being set up at once.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    pub retries: u32,
    /// Messages each client should get (0 = unknown).
    pub expect: u64,
    /// WebSocket clients that send instead of (only) receiving.
    pub send: Option<SendSpec>,
    pub progress_ms: u64,
    pub read_buf: usize,
}

#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    pub ready: u64,
    pub failed: u64,
    pub received: u64,
    pub done: u64,
    pub closed: u64,
    pub sent: u64,
    pub senders_done: u64,
    pub reconnects: u64,
}

impl Progress {
    pub fn add(&mut self, o: &Progress) {
        self.ready += o.ready;
        self.failed += o.failed;
        self.received += o.received;
        self.done += o.done;
        self.closed += o.closed;
        self.sent += o.sent;
        self.senders_done += o.senders_done;
        self.reconnects += o.reconnects;
    }
}

/// One client's result: index, state (0 connecting, 1 ready, 2 failed, 3 closed after ready), ready time,
/// received, distinct, lost, duplicated, reordered, first / last / complete receive times (ns).
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ClientRow(
    pub u64,
    pub u8,
    pub u64,
    pub u32,
    pub u32,
    pub u64,
    pub u32,
    pub u32,
    pub u64,
    pub u64,
    pub u64,
);

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct WorkerResult {
    pub progress: Progress,
    pub clients: Vec<ClientRow>,
    pub latency: HistWire,
    /// Publish -> the kernel's receive timestamp (SO_TIMESTAMPNS) of the segment that carried
    /// the message: the proxy and the network, without this tool's own queueing on its core.
    #[serde(default)]
    pub kernel_latency: HistWire,
    pub errors: BTreeMap<String, u64>,
    /// First connection attempt.
    pub start_ns: u64,
    pub go_ns: u64,
    /// When the last sending client had written everything.
    pub sent_ns: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum WorkerMsg {
    Progress(Progress),
    Result(WorkerResult),
}

pub const STATE_READY: u8 = 1;
pub const STATE_FAILED: u8 = 2;
pub const STATE_CLOSED: u8 = 3;

/// Above this sequence number duplicates are no longer tracked exactly.
const SEEN_CAP: u64 = 1 << 22;

#[derive(Default)]
struct ClientStat {
    state: u8,
    ready_ns: u64,
    received: u32,
    distinct: u32,
    dup: u32,
    reord: u32,
    highest: Option<u64>,
    first_ns: u64,
    last_ns: u64,
    done_ns: u64,
    seen: Vec<u64>,
}

impl ClientStat {
    fn lost(&self, expect: u64) -> u64 {
        if expect > 0 {
            expect.saturating_sub(self.distinct as u64)
        } else {
            self.highest
                .map_or(0, |h| (h + 1).saturating_sub(self.distinct as u64))
        }
    }
}

struct Shared {
    spec: WorkerSpec,
    rbuf: RefCell<Vec<u8>>,
    stats: RefCell<Vec<ClientStat>>,
    hist: RefCell<Hist>,
    khist: RefCell<Hist>,
    prog: RefCell<Progress>,
    errors: RefCell<BTreeMap<String, u64>>,
    go: Cell<bool>,
    go_notify: Notify,
    go_ns: Cell<u64>,
    sent_ns: Cell<u64>,
    start_ns: Cell<u64>,
}

impl Shared {
    fn error(&self, e: impl Into<String>) {
        let mut m = self.errors.borrow_mut();
        let e = e.into();
        if m.len() < 64 || m.contains_key(&e) {
            *m.entry(e).or_default() += 1;
        } else {
            *m.entry("(other)".into()).or_default() += 1;
        }
    }

    fn set_state(&self, local: usize, state: u8, err: Option<String>) {
        let mut stats = self.stats.borrow_mut();
        let st = &mut stats[local];
        let mut p = self.prog.borrow_mut();
        match state {
            STATE_READY => {
                st.ready_ns = now_ns();
                p.ready += 1;
            }
            STATE_FAILED => p.failed += 1,
            STATE_CLOSED => p.closed += 1,
            _ => {}
        }
        st.state = state;
        drop(p);
        drop(stats);
        if let Some(e) = err {
            self.error(e);
        }
    }
}

/// Where received bytes go: the client's stats and the worker's histogram.
struct Rec<'a> {
    st: &'a mut ClientStat,
    hist: &'a mut Hist,
    khist: &'a mut Hist,
    prog: &'a mut Progress,
    now: u64,
    /// When the kernel received the bytes being fed (0: not known).
    kernel_ns: u64,
    expect: u64,
}

impl Rec<'_> {
    #[inline]
    fn payload(&mut self, p: &[u8]) {
        let Some((seq, ts)) = parse_stamp(p) else {
            return;
        };
        let st = &mut *self.st;
        st.received += 1;
        self.prog.received += 1;
        if st.first_ns == 0 {
            st.first_ns = self.now;
        }
        st.last_ns = self.now;
        self.hist.add(self.now.saturating_sub(ts));
        if self.kernel_ns > 0 {
            self.khist.add(self.kernel_ns.saturating_sub(ts));
        }
        let fresh = if seq < SEEN_CAP {
            let w = (seq / 64) as usize;
            if w >= st.seen.len() {
                st.seen.resize(w + 1, 0);
            }
            let bit = 1u64 << (seq % 64);
            let fresh = st.seen[w] & bit == 0;
            st.seen[w] |= bit;
            fresh
        } else {
            st.highest.is_none_or(|h| seq > h)
        };
        if !fresh {
            st.dup += 1;
            return;
        }
        st.distinct += 1;
        match st.highest {
            Some(h) if seq < h => st.reord += 1,
            _ => st.highest = Some(seq),
        }
        if self.expect > 0 && st.done_ns == 0 && st.distinct as u64 >= self.expect {
            st.done_ns = self.now;
            self.prog.done += 1;
        }
    }
}

/// Protocol state of one connection.
struct Conn {
    kind: Kind,
    in_head: bool,
    head: Vec<u8>,
    body: Body,
    lines: LineScan,
    ws: WsParser,
    /// Bytes to write once this read is processed (pongs, the next long-poll request).
    out: Vec<u8>,
    /// The initial response (or 101) arrived; for long-polling: the request was written.
    ready: bool,
    /// The server ended the stream (close frame, end of a streamed body).
    ended: bool,
    /// Long-polling: open a new connection for the next request.
    reconnect: bool,
    close_after_body: bool,
    responses: u64,
}

impl Conn {
    fn new(kind: Kind) -> Conn {
        Conn {
            kind,
            in_head: true,
            head: Vec::new(),
            body: Body::Done,
            lines: LineScan::default(),
            ws: WsParser::default(),
            out: Vec::new(),
            ready: false,
            ended: false,
            reconnect: false,
            close_after_body: false,
            responses: 0,
        }
    }

    fn feed(&mut self, mut d: &[u8], rec: &mut Rec<'_>, req: &[u8]) -> Result<(), String> {
        while !d.is_empty() {
            if self.ended {
                return Ok(());
            }
            if self.in_head {
                if self.head.is_empty() {
                    if let Some(end) = head_end(d) {
                        let h = parse_response_head(&d[..end])?;
                        d = &d[end..];
                        self.on_head(h, req)?;
                        continue;
                    }
                    self.head.extend_from_slice(d);
                } else {
                    let before = self.head.len();
                    self.head.extend_from_slice(d);
                    let from = before.saturating_sub(3);
                    if let Some(e) = head_end(&self.head[from..]) {
                        let end = from + e;
                        let h = parse_response_head(&self.head[..end])?;
                        self.head.clear();
                        d = &d[end - before..];
                        self.on_head(h, req)?;
                        continue;
                    }
                }
                if self.head.len() > 64 * 1024 {
                    return Err("response head too large".into());
                }
                return Ok(());
            }
            if self.kind == Kind::Ws {
                let out = &mut self.out;
                let mut ended = false;
                self.ws
                    .feed(d, &mut |ev| match ev {
                        WsEvent::Message(m) => rec.payload(m),
                        WsEvent::Ping(p) => encode_frame(out, OP_PONG, p, [0x5a, 0x13, 0x77, 0x01]),
                        WsEvent::Close => ended = true,
                    })
                    .map_err(|e| e.to_string())?;
                if ended {
                    self.ended = true;
                }
                return Ok(());
            }
            let lines = &mut self.lines;
            let (n, done) = self
                .body
                .feed(d, &mut |piece| lines.feed(piece, &mut |l| rec.payload(l)))
                .map_err(|e| e.to_string())?;
            d = &d[n..];
            if done {
                self.lines.flush(&mut |l| rec.payload(l));
                self.on_body_end(req);
            }
        }
        Ok(())
    }

    fn on_head(&mut self, h: crate::http::Head, req: &[u8]) -> Result<(), String> {
        self.in_head = false;
        match self.kind {
            Kind::Ws => {
                if h.status != 101 {
                    return Err(format!("status {}", h.status));
                }
                self.ready = true;
            }
            Kind::Stream | Kind::Sse => {
                if h.status != 200 {
                    return Err(format!("status {}", h.status));
                }
                self.ready = true;
                self.body = Body::new(h.framing);
                if matches!(self.body, Body::Done) {
                    self.ended = true;
                }
            }
            Kind::Poll => {
                self.close_after_body = h.close || h.framing == Framing::Close;
                self.body = Body::new(h.framing);
                if matches!(self.body, Body::Done) {
                    self.on_body_end(req);
                }
            }
        }
        Ok(())
    }

    fn on_body_end(&mut self, req: &[u8]) {
        match self.kind {
            Kind::Poll => {
                self.responses += 1;
                self.in_head = true;
                self.lines = LineScan::default();
                if self.close_after_body {
                    self.reconnect = true;
                    self.ended = true;
                } else {
                    self.out.extend_from_slice(req);
                }
            }
            _ => self.ended = true,
        }
    }
}

fn build_request(spec: &WorkerSpec, channel: &str) -> Vec<u8> {
    let path = spec.path.replace("{ch}", channel);
    let host = &spec.host;
    let s = match spec.kind {
        Kind::Ws => format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: holdfast-load\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        ),
        Kind::Sse => format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: holdfast-load\r\n\
             Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
        ),
        Kind::Stream | Kind::Poll => format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: holdfast-load\r\nAccept: */*\r\n\r\n"
        ),
    };
    s.into_bytes()
}

pub async fn connect_from(addr: SocketAddr, src: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let sock = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = src {
        if ip.is_ipv4() {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt on a valid fd with a c_int option value.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::IPPROTO_IP,
                    libc::IP_BIND_ADDRESS_NO_PORT,
                    &one as *const libc::c_int as *const libc::c_void,
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let s = sock.connect(addr).await?;
    s.set_nodelay(true)?;
    enable_rx_timestamps(s.as_raw_fd());
    Ok(s)
}

/// Asks the kernel to stamp received data (SO_TIMESTAMPNS), read back by [`recv_stamped`].
fn enable_rx_timestamps(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt on a valid fd with a c_int option value.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// recvmsg(2) into `buf`: the byte count and the kernel's receive time of the data (ns since
/// the epoch, the clock `now_ns` reads; 0 when the kernel gave none).
fn recv_stamped(fd: std::os::fd::RawFd, buf: &mut [u8]) -> std::io::Result<(usize, u64)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero msghdr is valid; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: fd is an open socket, msg points at live buffers of the stated sizes.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut stamp = 0u64;
    // SAFETY: the CMSG_* macros walk the control buffer the kernel just filled, within
    // msg_controllen; SCM_TIMESTAMPNS carries a struct timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                stamp = ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64;
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, stamp))
}

fn short_io_error(what: &str, e: &std::io::Error) -> String {
    format!("{what}: {}", e.kind())
}

enum ReadOutcome {
    Data,
    WouldBlock,
    Eof,
    Err(String),
}

async fn client_task(sh: Rc<Shared>, local: usize, permit: OwnedSemaphorePermit) {
    let spec = &sh.spec;
    let gidx = spec.first_index + local as u64;
    let channel = crate::util::channel_name(&spec.channel_prefix, gidx % spec.channels.max(1));
    let req = build_request(spec, &channel);
    let src = if spec.source_ips.is_empty() {
        None
    } else {
        Some(spec.source_ips[(gidx % spec.source_ips.len() as u64) as usize])
    };
    let connect_timeout = Duration::from_millis(spec.connect_timeout_ms);
    let mut permit = Some(permit);
    let mut failures = 0u32;
    'conn: loop {
        let deadline = Instant::now() + connect_timeout;
        let fail = |e: String, failures: &mut u32| -> bool {
            // true: give up
            *failures += 1;
            if *failures > spec.retries {
                true
            } else {
                sh.error(format!("retried: {e}"));
                false
            }
        };
        let stream = match timeout_at(deadline, connect_from(spec.addr, src)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let e = short_io_error("connect", &e);
                if fail(e.clone(), &mut failures) {
                    give_up(&sh, local, permit.is_some(), e);
                    return;
                }
                sleep(Duration::from_millis(200 * failures as u64)).await;
                continue 'conn;
            }
            Err(_) => {
                let e = "connect: timeout".to_string();
                if fail(e.clone(), &mut failures) {
                    give_up(&sh, local, permit.is_some(), e);
                    return;
                }
                continue 'conn;
            }
        };
        let mut stream = stream;
        let mut conn = Conn::new(spec.kind);
        conn.out.extend_from_slice(&req);
        let mut sending_done = spec.send.is_none();
        loop {
            if conn.ready && permit.is_some() {
                permit = None;
                failures = 0;
                sh.set_state(local, STATE_READY, None);
            }
            if !conn.out.is_empty() {
                let w = if permit.is_some() {
                    timeout_at(deadline, stream.write_all(&conn.out))
                        .await
                        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                } else {
                    stream.write_all(&conn.out).await
                };
                conn.out.clear();
                if let Err(e) = w {
                    let e = short_io_error("write", &e);
                    if permit.is_some() {
                        if fail(e.clone(), &mut failures) {
                            give_up(&sh, local, true, e);
                            return;
                        }
                        continue 'conn;
                    }
                    if spec.kind == Kind::Poll && failures < 3 {
                        failures += 1;
                        sh.prog.borrow_mut().reconnects += 1;
                        continue 'conn;
                    }
                    sh.set_state(local, STATE_CLOSED, Some(e));
                    return;
                }
                if spec.kind == Kind::Poll && !conn.ready {
                    conn.ready = true;
                    continue;
                }
            }
            if conn.ended {
                if conn.reconnect {
                    sh.prog.borrow_mut().reconnects += 1;
                    continue 'conn;
                }
                sh.set_state(local, STATE_CLOSED, Some("closed by server".into()));
                return;
            }
            if !sending_done && conn.ready && permit.is_none() {
                sending_done = true;
                if let Err(e) = send_messages(&sh, &mut stream, gidx).await {
                    sh.set_state(local, STATE_CLOSED, Some(short_io_error("send", &e)));
                    return;
                }
            }
            let readable = if permit.is_some() {
                match timeout_at(deadline, stream.readable()).await {
                    Ok(r) => r,
                    Err(_) => {
                        let e = "initial response: timeout".to_string();
                        if fail(e.clone(), &mut failures) {
                            give_up(&sh, local, true, e);
                            return;
                        }
                        continue 'conn;
                    }
                }
            } else {
                stream.readable().await
            };
            if let Err(e) = readable {
                sh.set_state(local, STATE_CLOSED, Some(short_io_error("read", &e)));
                return;
            }
            let outcome = {
                let mut buf = sh.rbuf.borrow_mut();
                let fd = stream.as_raw_fd();
                match stream.try_io(Interest::READABLE, || recv_stamped(fd, &mut buf[..])) {
                    Ok((0, _)) => ReadOutcome::Eof,
                    Ok((n, kernel_ns)) => {
                        let mut stats = sh.stats.borrow_mut();
                        let mut hist = sh.hist.borrow_mut();
                        let mut khist = sh.khist.borrow_mut();
                        let mut prog = sh.prog.borrow_mut();
                        let mut rec = Rec {
                            st: &mut stats[local],
                            hist: &mut hist,
                            khist: &mut khist,
                            prog: &mut prog,
                            now: now_ns(),
                            kernel_ns,
                            expect: spec.expect,
                        };
                        match conn.feed(&buf[..n], &mut rec, &req) {
                            Ok(()) => ReadOutcome::Data,
                            Err(e) => ReadOutcome::Err(e),
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => ReadOutcome::WouldBlock,
                    Err(e) => ReadOutcome::Err(short_io_error("read", &e)),
                }
            };
            match outcome {
                ReadOutcome::Data | ReadOutcome::WouldBlock => {}
                ReadOutcome::Eof | ReadOutcome::Err(_) => {
                    let e = match outcome {
                        ReadOutcome::Err(e) => e,
                        _ => "eof".to_string(),
                    };
                    if permit.is_some() {
                        if fail(e.clone(), &mut failures) {
                            give_up(&sh, local, true, e);
                            return;
                        }
                        sleep(Duration::from_millis(100 * failures as u64)).await;
                        continue 'conn;
                    }
                    if spec.kind == Kind::Poll && e == "eof" && conn.in_head && failures < 3 {
                        // The proxy closed an idle keep-alive connection: ask again.
                        failures += 1;
                        sh.prog.borrow_mut().reconnects += 1;
                        continue 'conn;
                    }
                    sh.set_state(local, STATE_CLOSED, Some(format!("after ready: {e}")));
                    return;
                }
            }
            if spec.kind == Kind::Poll && conn.responses > 0 {
                failures = 0;
            }
        }
    }
}

fn give_up(sh: &Shared, local: usize, before_ready: bool, e: String) {
    if before_ready {
        sh.set_state(local, STATE_FAILED, Some(e));
    } else {
        sh.set_state(local, STATE_CLOSED, Some(e));
    }
}

/// WebSocket-over-HTTP batching scenario: once `go` arrives, write `messages` text frames as
/// fast as the socket takes them.
async fn send_messages(sh: &Shared, stream: &mut TcpStream, gidx: u64) -> std::io::Result<()> {
    let Some(send) = sh.spec.send.clone() else {
        return Ok(());
    };
    let notified = sh.go_notify.notified();
    if !sh.go.get() {
        notified.await;
    }
    let filler = vec![b'x'; send.size];
    let mut out = Vec::with_capacity(128 * 1024);
    let mut msg = Vec::with_capacity(send.size + 64);
    let mask = (gidx as u32).wrapping_mul(0x9e37_79b9).to_be_bytes();
    let mut seq = 0;
    while seq < send.messages {
        out.clear();
        let mut batch = 0;
        while seq < send.messages && out.len() < 64 * 1024 {
            msg.clear();
            let _ = write!(msg, "seq={seq} ts={} ", now_ns());
            let pad = send.size.saturating_sub(msg.len());
            msg.extend_from_slice(&filler[..pad]);
            encode_frame(&mut out, OP_TEXT, &msg, mask);
            seq += 1;
            batch += 1;
        }
        stream.write_all(&out).await?;
        sh.prog.borrow_mut().sent += batch;
    }
    sh.prog.borrow_mut().senders_done += 1;
    sh.sent_ns.set(now_ns());
    Ok(())
}

async fn spawner(sh: Rc<Shared>) {
    let sem = Arc::new(Semaphore::new(sh.spec.concurrency.max(1)));
    let start = Instant::now();
    sh.start_ns.set(now_ns());
    for local in 0..sh.spec.clients as usize {
        if sh.spec.connect_rate > 0.0 {
            sleep_until(start + Duration::from_secs_f64(local as f64 / sh.spec.connect_rate)).await;
        }
        let Ok(permit) = sem.clone().acquire_owned().await else {
            return;
        };
        tokio::task::spawn_local(client_task(sh.clone(), local, permit));
    }
}

fn emit(msg: &WorkerMsg) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, msg);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn result(sh: &Shared) -> WorkerResult {
    let stats = sh.stats.borrow();
    let expect = sh.spec.expect;
    let clients = stats
        .iter()
        .enumerate()
        .map(|(i, s)| {
            ClientRow(
                sh.spec.first_index + i as u64,
                s.state,
                s.ready_ns,
                s.received,
                s.distinct,
                if s.state == STATE_READY || s.state == STATE_CLOSED {
                    s.lost(expect)
                } else {
                    0
                },
                s.dup,
                s.reord,
                s.first_ns,
                s.last_ns,
                s.done_ns,
            )
        })
        .collect();
    WorkerResult {
        progress: sh.prog.borrow().clone(),
        clients,
        latency: sh.hist.borrow().to_wire(),
        kernel_latency: sh.khist.borrow().to_wire(),
        errors: sh.errors.borrow().clone(),
        start_ns: sh.start_ns.get(),
        go_ns: sh.go_ns.get(),
        sent_ns: sh.sent_ns.get(),
    }
}

pub fn worker_main(spec_json: &str) -> Result<(), String> {
    die_with_parent();
    let limit = raise_nofile();
    let spec: WorkerSpec = serde_json::from_str(spec_json).map_err(|e| format!("bad spec: {e}"))?;
    if spec.clients + 64 > limit {
        return Err(format!(
            "worker needs {} sockets but the open-files limit is {limit}: use more --procs",
            spec.clients
        ));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    let n = spec.clients as usize;
    let sh = Rc::new(Shared {
        rbuf: RefCell::new(vec![0; spec.read_buf.max(4096)]),
        stats: RefCell::new((0..n).map(|_| ClientStat::default()).collect()),
        hist: RefCell::new(Hist::new()),
        khist: RefCell::new(Hist::new()),
        prog: RefCell::new(Progress::default()),
        errors: RefCell::new(BTreeMap::new()),
        go: Cell::new(false),
        go_notify: Notify::new(),
        go_ns: Cell::new(0),
        sent_ns: Cell::new(0),
        start_ns: Cell::new(0),
        spec,
    });
    if sh.spec.expect > 0 && sh.spec.expect < SEEN_CAP {
        let words = sh.spec.expect.div_ceil(64) as usize;
        for s in sh.stats.borrow_mut().iter_mut() {
            s.seen = vec![0; words];
        }
    }
    local.block_on(&rt, async move {
        tokio::task::spawn_local(spawner(sh.clone()));
        let progress_sh = sh.clone();
        tokio::task::spawn_local(async move {
            let mut last = Progress::default();
            let mut last_emit = Instant::now();
            let period = Duration::from_millis(progress_sh.spec.progress_ms.max(10));
            loop {
                sleep(period).await;
                let p = progress_sh.prog.borrow().clone();
                if p != last || last_emit.elapsed() >= Duration::from_secs(1) {
                    emit(&WorkerMsg::Progress(p.clone()));
                    last = p;
                    last_emit = Instant::now();
                }
            }
        });
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        loop {
            match lines.next_line().await {
                Ok(Some(l)) => match l.trim() {
                    "go" => {
                        sh.go_ns.set(now_ns());
                        sh.go.set(true);
                        sh.go_notify.notify_waiters();
                    }
                    "stop" => {
                        emit(&WorkerMsg::Result(result(&sh)));
                        std::process::exit(0);
                    }
                    _ => {}
                },
                _ => std::process::exit(0),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(conn: &mut Conn, st: &mut ClientStat, input: &[u8], split: usize, req: &[u8]) {
        let mut hist = Hist::new();
        let mut khist = Hist::new();
        let mut prog = Progress::default();
        for piece in input.chunks(split) {
            let mut rec = Rec {
                st,
                hist: &mut hist,
                khist: &mut khist,
                prog: &mut prog,
                now: 2_000,
                kernel_ns: 1_500,
                expect: 3,
            };
            conn.feed(piece, &mut rec, req).unwrap();
        }
    }

    #[test]
    fn sse_stream_chunked() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n\
            9\r\n: open\n\n\r\n\
            19\r\ndata: seq=0 ts=1000 xxx\n\n\r\n\
            32\r\ndata: seq=2 ts=1000 xxx\n\ndata: seq=1 ts=1000 xxx\n\n\r\n\
            19\r\ndata: seq=1 ts=1000 xxx\n\n\r\n";
        for split in [1, 5, 13, input.len()] {
            let mut c = Conn::new(Kind::Sse);
            let mut st = ClientStat::default();
            feed_all(&mut c, &mut st, input, split, b"");
            assert!(c.ready);
            assert_eq!(
                (st.received, st.distinct, st.reord, st.dup),
                (4, 3, 1, 1),
                "split {split}"
            );
            assert_eq!(st.done_ns, 2_000);
            assert_eq!(st.lost(3), 0);
        }
    }

    #[test]
    fn poll_asks_again() {
        let req = b"GET /poll/c0 HTTP/1.1\r\n\r\n";
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\nseq=0 ts=1000\n\
            HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n\
            HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\ne\r\nseq=1 ts=1000\n\r\n0\r\n\r\n";
        for split in [1, 7, input.len()] {
            let mut c = Conn::new(Kind::Poll);
            let mut st = ClientStat::default();
            feed_all(&mut c, &mut st, input, split, req);
            assert_eq!(c.responses, 3);
            assert_eq!(c.out, req.repeat(3));
            assert_eq!(st.distinct, 2);
            assert!(!c.reconnect);
        }
    }

    #[test]
    fn websocket_frames_and_ping() {
        let mut input = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n".to_vec();
        input.extend_from_slice(&[0x81, 13]);
        input.extend_from_slice(b"seq=0 ts=1000");
        input.extend_from_slice(&[0x89, 1, b'p']);
        input.extend_from_slice(&[0x81, 13]);
        input.extend_from_slice(b"seq=1 ts=1000");
        let mut c = Conn::new(Kind::Ws);
        let mut st = ClientStat::default();
        feed_all(&mut c, &mut st, &input, 3, b"");
        assert!(c.ready);
        assert_eq!(st.distinct, 2);
        // A masked pong with the ping's payload.
        assert_eq!(&c.out[..2], &[0x8a, 0x81]);
    }

    #[test]
    fn rejects_bad_status() {
        let mut c = Conn::new(Kind::Stream);
        let mut st = ClientStat::default();
        let mut hist = Hist::new();
        let mut khist = Hist::new();
        let mut prog = Progress::default();
        let mut rec = Rec {
            st: &mut st,
            hist: &mut hist,
            khist: &mut khist,
            prog: &mut prog,
            now: 1,
            kernel_ns: 0,
            expect: 0,
        };
        let r = c.feed(
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n",
            &mut rec,
            b"",
        );
        assert_eq!(r, Err("status 502".to_string()));
    }
}
